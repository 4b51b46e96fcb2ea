"""``CRF.fit(X, y, sample_weight=...)``: one weight per sequence, for every trainer.

L-BFGS / OWL-QN weight the log-likelihood exactly (a weight of 2 is the sequence
given twice, and the gradient matches finite differences); SGD scales each
sequence's step and the online trainers its update, which the tests check by the
model they converge to.
"""

import warnings

import numpy as np
import pytest

from crf_data import sample_hmm
from fastcrf import CRF, Dataset
from fastcrf._layout import StateLayout
from fastcrf._train.lbfgs import _Objective
from fastcrf._training import chain_mask, encode_training

ALGORITHMS = ["asgd", "l2sgd", "lbfgs", "ap", "pa", "arow"]


@pytest.fixture(scope="module")
def corpus():
    X, y, _ = sample_hmm(80, seed=2)
    return X, y


def _fit(algorithm, X, y, sample_weight=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # SGD on a small corpus warns
        kw.setdefault("random_state", 0)
        return CRF(algorithm=algorithm, **kw).fit(
            X, y, sample_weight=sample_weight)


def _same_model(a, b, atol):
    keys = set(a.state_features_) | set(b.state_features_)
    diff = max(abs(a.state_features_.get(k, 0.0) - b.state_features_.get(k, 0.0))
               for k in keys)
    assert diff <= atol
    assert a.classes_ == b.classes_
    np.testing.assert_allclose(a.transition_weights_, b.transition_weights_, atol=atol)
    np.testing.assert_allclose(a.start_weights_, b.start_weights_, atol=atol)


@pytest.mark.parametrize("bad, match", [
    ([1.0] * 79, "sample_weight has 79 weights but X has 80"),
    ([np.nan] + [1.0] * 79, "sample_weight must be finite"),
    ([-1.0] + [1.0] * 79, "sample_weight must be >= 0"),
    ([0.0] * 80, "sample_weight is 0 for every sequence"),
    ([[1.0] * 80], "sample_weight must be 1-D"),
])
def test_bad_weights_are_value_errors_naming_sample_weight(corpus, bad, match):
    X, y = corpus
    with pytest.raises(ValueError, match=match):
        CRF(algorithm="lbfgs", max_iterations=2).fit(X, y, sample_weight=bad)


@pytest.mark.parametrize("bad", ["abc", 3.0, ["a"] * 80, [True] * 80])
def test_weights_that_are_not_numbers_are_type_errors(corpus, bad):
    X, y = corpus
    with pytest.raises(TypeError, match="sample_weight"):
        CRF(algorithm="lbfgs", max_iterations=2).fit(X, y, sample_weight=bad)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unit_weights_are_the_unweighted_fit(corpus, algorithm):
    X, y = corpus
    a = _fit(algorithm, X, y, max_iterations=4)
    b = _fit(algorithm, X, y, np.ones(len(X)), max_iterations=4)
    np.testing.assert_array_equal(a.state_weights_, b.state_weights_)
    np.testing.assert_array_equal(a.transition_weights_, b.transition_weights_)


@pytest.mark.parametrize("c1", [0.0, 0.05])
def test_lbfgs_weight_two_is_the_sequence_twice(corpus, c1):
    X, y = corpus
    w = np.ones(len(X))
    w[[0, 7]] = 2.0
    w[3] = 0.0
    X2 = [x for i, x in enumerate(X) if i != 3] + [X[0], X[7]]
    y2 = [s for i, s in enumerate(y) if i != 3] + [y[0], y[7]]
    kw = dict(c1=c1, c2=0.1, all_possible_states=True, epsilon=1e-9, delta=0.0)
    weighted = _fit("lbfgs", X, y, w, **kw)
    repeated = _fit("lbfgs", X2, y2, **kw)
    _same_model(weighted, repeated, atol=1e-5)
    assert (weighted.training_log_.iterations[-1]["loss"]
            == pytest.approx(repeated.training_log_.iterations[-1]["loss"], rel=1e-6))


def test_weighted_gradient_matches_finite_differences(corpus):
    X, y = corpus
    vocabulary, classes, data = encode_training(X, y, 0, 1)
    data.weights = np.random.default_rng(0).uniform(0.0, 3.0, data.n_sequences)
    layout = StateLayout.for_training(data, None, counts=vocabulary.counts)
    fun = _Objective(data, layout, chain_mask(data, True), 0.1, 1)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.3, layout.size + len(chain_mask(data, True)))
    _, g = fun(x)
    g = g.copy()
    h = 1e-6
    for i in rng.choice(len(x), 25, replace=False).tolist() + [len(x) - 1, layout.size]:
        e = np.zeros_like(x)
        e[i] = h
        numeric = (fun(x + e)[0] - fun(x - e)[0]) / (2 * h)
        assert numeric == pytest.approx(g[i], rel=1e-5, abs=1e-5)


def _vote_corpus(n_x=6, n_y=12):
    # One-token sequences "a", labelled X n_x times and Y n_y times.
    X = [[{"w": "a"}] for _ in range(n_x + n_y)] + [[{"w": "b"}]] * 4
    y = [["X"]] * n_x + [["Y"]] * n_y + [["X"], ["Y"]] * 2
    return X, y


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_weights_decide_a_vote(algorithm):
    # Unweighted, Y is the majority after "a"; with X's weight 4 (24 against 12) the
    # model must say X: the weights really enter every trainer's updates.
    X, y = _vote_corpus()
    kw = dict(max_iterations=30, c2=0.01, all_possible_transitions=False)
    if algorithm == "l2sgd":
        kw["c2"] = 0.1
    assert _fit(algorithm, X, y, **kw).predict([[{"w": "a"}]]) == [["Y"]]
    w = np.array([4.0] * 6 + [1.0] * 12 + [1.0] * 4)
    assert _fit(algorithm, X, y, w, **kw).predict([[{"w": "a"}]]) == [["X"]]


@pytest.mark.parametrize("algorithm", ["asgd", "l2sgd", "lbfgs"])
def test_integer_weights_match_duplication_in_probability(algorithm):
    # p(X | a) of the weighted fit and of the fit on duplicated sequences agree, and
    # both approach the weighted share 24 / 36 of the unregularised optimum.
    X, y = _vote_corpus()
    w = np.array([4.0] * 6 + [1.0] * 12 + [1.0] * 4)
    X4 = [x for x, k in zip(X, w) for _ in range(int(k))]
    y4 = [s for s, k in zip(y, w) for _ in range(int(k))]
    kw = dict(max_iterations=60, c2=1e-3, all_possible_transitions=False)
    probs = []
    for seed in range(3):
        kw["random_state"] = seed
        a = _fit(algorithm, X, y, w, **kw)
        b = _fit(algorithm, X4, y4, **kw)
        pa, pb = (m.predict_marginals([[{"w": "a"}]])[0][0]["X"] for m in (a, b))
        probs.append((pa, pb))
    pa, pb = np.mean(probs, axis=0)
    assert pa == pytest.approx(pb, abs=0.03)
    assert pa == pytest.approx(24 / 36, abs=0.05)


@pytest.mark.parametrize("algorithm", ["ap", "pa", "arow"])
def test_online_weight_zero_skips_the_sequence(algorithm):
    X, y = _vote_corpus()
    w = np.array([1.0] * 6 + [0.0] * 12 + [1.0] * 4)   # the Y votes do not count
    assert _fit(algorithm, X, y, w, max_iterations=10).predict([[{"w": "a"}]]) == [["X"]]


@pytest.mark.parametrize("algorithm", ["lbfgs", "asgd", "ap"])
def test_weighted_fit_does_not_depend_on_the_thread_count(corpus, algorithm):
    X, y = corpus
    w = np.random.default_rng(0).uniform(0.0, 2.0, len(X))
    a = _fit(algorithm, X, y, w, n_jobs=1, max_iterations=5)
    b = _fit(algorithm, X, y, w, n_jobs=2, max_iterations=5)
    np.testing.assert_array_equal(a.state_weights_, b.state_weights_)
    np.testing.assert_array_equal(a.transition_weights_, b.transition_weights_)


def test_dataset_takes_sample_weight(corpus, tmp_path):
    X, y = corpus
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    lists = _fit("lbfgs", X, y, w, max_iterations=10)
    ds = _fit("lbfgs", Dataset.from_sequences(X, y), None, w, max_iterations=10)
    np.testing.assert_allclose(ds.transition_weights_, lists.transition_weights_,
                               atol=1e-10)
    with pytest.raises(ValueError, match="sample_weight has 3 weights"):
        CRF(algorithm="lbfgs").fit(Dataset.from_sequences(X, y), sample_weight=[1, 2, 3])


def test_early_stopping_holds_out_the_weights_with_their_sequences(corpus):
    X, y = corpus
    w = np.ones(len(X))
    crf = CRF(algorithm="lbfgs", early_stopping=True, max_iterations=5, random_state=0)
    crf.fit(X, y, sample_weight=w * 2.0)
    assert crf.n_iter_ >= 1
    with pytest.raises(ValueError, match="sample_weight has 79 weights but X has 80"):
        crf.fit(X, y, sample_weight=w[1:] * 2.0)
