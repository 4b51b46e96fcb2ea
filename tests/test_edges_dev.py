"""Transition attributes with a dev set: ``fit(X, y, X_dev, y_dev)``,
``early_stopping`` and ``validation_fraction`` (every algorithm)."""

import warnings

import numpy as np
import pytest
from test_edges import pos_pairs_corpus

import fastcrf
from fastcrf import _edges
from fastcrf._train.progress import hold_out

ALGORITHMS = ["lbfgs", "asgd", "l2sgd", "ap", "pa", "arow"]


def noisy_corpus(rng, n_seq, flip=0.15):
    """:func:`pos_pairs_corpus` with a share of the transition attributes flipped, so
    that no model is right everywhere and the dev accuracy moves between epochs."""
    X, y = pos_pairs_corpus(rng, n_seq)
    for seq in X:
        for tok in seq[1:]:
            if rng.random() < flip:
                tok["E:rel"] = "same" if tok["E:rel"] == "flip" else "flip"
    return X, y


def accuracy(predicted, y):
    return float(np.mean([a == b for p, t in zip(predicted, y) for a, b in zip(p, t)]))


def fit_recording(crf, X, y, X_dev=None, y_dev=None):
    """Fit ``crf`` and return the per-epoch models (CRFModel) of the callback's
    estimators."""
    models = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # 'too few epochs to converge'
        crf.fit(X, y, X_dev, y_dev,
                callback=lambda info, snapshot: models.append(snapshot._model))
    return models


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_dev_accuracy_is_that_of_predict(algorithm):
    rng = np.random.default_rng(0)
    X, y = noisy_corpus(rng, 60)
    X_dev, y_dev = noisy_corpus(rng, 40)
    crf = fastcrf.CRF(algorithm=algorithm, transition_prefix="E:", max_iterations=6,
                      random_state=0)
    models = fit_recording(crf, X, y, X_dev, y_dev)
    log = crf.training_log_.iterations
    assert len(models) == len(log)
    for entry, model in zip(log, models):
        # The callback's model of the epoch has its transition attributes, and the
        # logged dev accuracy is how well it tags X_dev.
        assert isinstance(model, _edges.EdgeCRFModel)
        expected = accuracy(model.predict(X_dev), y_dev)
        assert entry["dev_accuracy"] == expected


def test_dev_accuracy_counts_the_transition_attributes():
    # Only the transition attributes can solve this task: a dev accuracy computed
    # without them stays far below 1.
    rng = np.random.default_rng(1)
    X, y = pos_pairs_corpus(rng, 80)
    X_dev, y_dev = pos_pairs_corpus(rng, 40)
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=60)
    crf.fit(X, y, X_dev, y_dev)
    assert crf.training_log_.iterations[-1]["dev_accuracy"] == 1.0
    plain = fastcrf.CRF(algorithm="lbfgs", max_iterations=60).fit(X, y, X_dev, y_dev)
    assert plain.training_log_.iterations[-1]["dev_accuracy"] < 0.8


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_early_stopping_keeps_the_best_dev_epoch(algorithm):
    rng = np.random.default_rng(2)
    X, y = noisy_corpus(rng, 60)
    X_dev, y_dev = noisy_corpus(rng, 40)
    crf = fastcrf.CRF(algorithm=algorithm, transition_prefix="E:", max_iterations=12,
                      early_stopping=True, n_iter_no_change=2, random_state=0)
    models = fit_recording(crf, X, y, X_dev, y_dev)
    log = crf.training_log_
    scores = [entry["dev_accuracy"] for entry in log.iterations]
    best = int(np.argmax(scores)) + 1         # the first of the best epochs
    assert log.best_iteration == best
    assert len(scores) <= best + 2
    kept, at_best = crf._model, models[best - 1]
    np.testing.assert_array_equal(kept.edge_weights, at_best.edge_weights)
    np.testing.assert_array_equal(kept.state, at_best.state)
    np.testing.assert_array_equal(kept.chain, at_best.chain)
    assert accuracy(crf.predict(X_dev), y_dev) == max(scores)


@pytest.mark.parametrize("algorithm", ["lbfgs", "ap"])
def test_early_stopping_changes_nothing_when_the_last_epoch_is_best(algorithm):
    rng = np.random.default_rng(0)
    X, y = noisy_corpus(rng, 60)
    X_dev, y_dev = noisy_corpus(rng, 40)
    n_iter = {"lbfgs": 3, "ap": 2}[algorithm]
    params = dict(algorithm=algorithm, transition_prefix="E:", max_iterations=n_iter,
                  random_state=0)
    early = fastcrf.CRF(early_stopping=True, n_iter_no_change=5, **params)
    fit_recording(early, X, y, X_dev, y_dev)
    scores = [entry["dev_accuracy"] for entry in early.training_log_.iterations]
    # This corpus's dev accuracy rises at every epoch (so the last one is kept) ...
    assert len(scores) == n_iter and all(np.diff(scores) > 0)
    assert early.training_log_.best_iteration == n_iter
    # ... and the model is the one trained without a dev set, bit for bit.
    plain = fastcrf.CRF(**params)
    fit_recording(plain, X, y)
    np.testing.assert_array_equal(early._model.edge_weights, plain._model.edge_weights)
    np.testing.assert_array_equal(early._model.state, plain._model.state)
    np.testing.assert_array_equal(early._model.chain, plain._model.chain)


def test_validation_fraction_holds_out_the_same_split():
    # early_stopping without X_dev trains on the rest of a random split: the same
    # model as giving that split explicitly (L-BFGS draws nothing else at random).
    rng = np.random.default_rng(3)
    X, y = noisy_corpus(rng, 80)
    params = dict(algorithm="lbfgs", transition_prefix="E:", max_iterations=15,
                  early_stopping=True, n_iter_no_change=3)
    held = fastcrf.CRF(validation_fraction=0.25, random_state=7, **params)
    fit_recording(held, X, y)
    X_tr, y_tr, X_dev, y_dev, _ = hold_out(X, y, 0.25, np.random.default_rng(7))
    given = fastcrf.CRF(**params)
    fit_recording(given, X_tr, y_tr, X_dev, y_dev)
    assert held.training_log_.iterations == [
        {**a, "time": b["time"]} for a, b in zip(given.training_log_.iterations,
                                                 held.training_log_.iterations)]
    np.testing.assert_array_equal(held._model.edge_weights, given._model.edge_weights)


@pytest.mark.parametrize("algorithm", ["lbfgs", "asgd"])
def test_early_stopping_under_training_constraints(algorithm):
    # The constrained dev decoding keeps the transition-attribute weights: the kept
    # model is the best epoch's, and it never leaves R.
    rng = np.random.default_rng(4)
    X, y = noisy_corpus(rng, 60)
    X = [seq + [{"w": "end", "E:rel": "end"}] for seq in X]
    y = [seq + ["R"] for seq in y]
    X_dev, y_dev = X[:20], y[:20]
    forbid = {("R", "P"): False, ("R", "Q"): False, ("R", "R"): False}
    crf = fastcrf.CRF(algorithm=algorithm, transition_prefix="E:", max_iterations=10,
                      early_stopping=True, n_iter_no_change=2, constraints=forbid,
                      random_state=0)
    models = fit_recording(crf, X[20:], y[20:], X_dev, y_dev)
    best = crf.training_log_.best_iteration
    np.testing.assert_array_equal(crf._model.edge_weights, models[best - 1].edge_weights)
    scores = [entry["dev_accuracy"] for entry in crf.training_log_.iterations]
    assert accuracy(crf.predict(X_dev), y_dev) == max(scores)
    r = crf._model.classes.index("R")
    assert not crf._model.transitions[r].any()


def test_an_encoded_dev_set_is_refused_by_name():
    rng = np.random.default_rng(5)
    X, y = pos_pairs_corpus(rng, 10)
    dev = fastcrf.Dataset.from_sequences(X, y)
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=2)
    with pytest.raises(TypeError, match="transition_prefix needs X_dev as lists"):
        crf.fit(X, y, dev)
