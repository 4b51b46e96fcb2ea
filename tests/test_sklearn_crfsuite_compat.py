"""fastcrf.CRF against sklearn_crfsuite.CRF: the same code on both, and what a user
observes compared (accuracy of the online trainers, model_filename, size_,
num_attributes_, tagger_, the compatibility parameters)."""

import os
import warnings

import numpy as np
import pytest

from fastcrf import CRF, NotFittedError

sklearn_crfsuite = pytest.importorskip("sklearn_crfsuite")


def tiny(seed):
    """One 10-token sequence over a few words and labels (CRFsuite's 'ap' fits such
    a sequence better than fastcrf's did before it followed CRFsuite's stopping test)."""
    rng = np.random.default_rng(seed)
    n_words, n_labels = rng.integers(2, 6), rng.integers(2, 5)
    words, labels = rng.integers(0, n_words, 10), rng.integers(0, n_labels, 10)
    return [[{"w": f"w{w}", "bias": 1.0} for w in words]], [[f"L{k}" for k in labels]]


def accuracy(pred, y):
    return float(np.mean([a == b for ps, ys in zip(pred, y) for a, b in zip(ps, ys)]))


@pytest.mark.parametrize("algorithm", ["ap", "pa", "arow"])
def test_online_trainers_fit_tiny_sequences_as_crfsuite(algorithm):
    ours, theirs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(20):
            X, y = tiny(seed)
            ours.append(accuracy(CRF(algorithm=algorithm, random_state=0).fit(X, y)
                                 .predict(X), y))
            theirs.append(accuracy(sklearn_crfsuite.CRF(algorithm=algorithm).fit(X, y)
                                   .predict(X), y))
    assert np.mean(ours) >= np.mean(theirs) - 0.01, (ours, theirs)


def test_ap_matches_crfsuite_exactly_with_its_feature_set(tmp_path):
    # Without start/end scores and with only the seen pairs (CRFsuite's model), the
    # averaged perceptron is CRFsuite's: same predictions on every tiny sequence.
    from fastcrf import pycrfsuite

    for seed in range(10):
        X, y = tiny(seed)
        trainer = pycrfsuite.Trainer(verbose=False)
        trainer.select("ap")
        trainer.append(X[0], y[0])
        path = str(tmp_path / f"ap{seed}.crfsuite")
        trainer.train(path)
        tagger = pycrfsuite.Tagger()
        tagger.open(path)
        ours = tagger.tag(X[0])
        theirs = list(sklearn_crfsuite.CRF(algorithm="ap").fit(X, y).predict(X)[0])
        assert ours == theirs, seed


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    X, y = [], []
    for _ in range(60):
        T = int(rng.integers(3, 9))
        labels = rng.integers(0, 3, T)
        X.append([{"w": f"w{k}{rng.integers(0, 3)}", "bias": 1.0} for k in labels])
        y.append([f"L{k}" for k in labels])
    return X, y


def test_model_filename_loads_a_crfsuite_model_without_fit(corpus, tmp_path):
    X, y = corpus
    path = str(tmp_path / "model.crfsuite")
    theirs = sklearn_crfsuite.CRF(algorithm="lbfgs", model_filename=path).fit(X, y)
    ours = CRF(model_filename=path)
    assert ours.predict(X) == [list(p) for p in theirs.predict(X)]
    assert ours.classes_ == theirs.classes_
    assert ours.size_ == theirs.size_ == os.path.getsize(path)
    assert isinstance(ours.size_, int)
    assert ours.num_attributes_ == theirs.num_attributes_
    assert ours.state_features_ == pytest.approx(theirs.state_features_, abs=1e-6)
    marg = ours.predict_marginals_single(X[0])
    ref = theirs.predict_marginals_single(X[0])
    for a, b in zip(marg, ref):
        assert a == pytest.approx(b, abs=1e-6)


def test_fit_writes_model_filename_and_a_new_estimator_uses_it(corpus, tmp_path):
    X, y = corpus
    path = str(tmp_path / "model.npz")
    fitted = CRF(random_state=0, model_filename=path).fit(X, y)
    assert os.path.getsize(path) == fitted.size_
    again = CRF(model_filename=path)
    assert again.predict(X) == fitted.predict(X)
    with pytest.raises(NotFittedError, match="names no file"):
        CRF(model_filename=str(tmp_path / "missing")).predict(X)


def test_size_of_a_fitted_model_is_its_file_size(corpus, tmp_path):
    X, y = corpus
    crf = CRF(random_state=0).fit(X, y)
    crf.save(tmp_path / "m.npz")
    assert crf.size_ == os.path.getsize(tmp_path / "m.npz")
    assert 0 < crf.n_nonzero_weights_ <= crf._model.n_weights
    assert crf.num_attributes_ <= len(crf.attributes_)


def test_compatibility_parameters_survive_clone():
    base = pytest.importorskip("sklearn.base")
    ours = CRF(keep_tempfiles=True, trainer_cls=object)
    theirs = sklearn_crfsuite.CRF(keep_tempfiles=True, trainer_cls=object)
    for crf in (ours, theirs):
        params = base.clone(crf).get_params()
        assert params["keep_tempfiles"] is True and params["trainer_cls"] is object
    assert set(theirs.get_params()) <= set(ours.get_params())
    with pytest.raises(TypeError, match="keep_tempfiles must be a bool"):
        CRF(keep_tempfiles="yes").fit(*tiny(0))


def test_tagger_answers_as_sklearn_crfsuites(corpus, tmp_path):
    X, y = corpus
    path = str(tmp_path / "model.crfsuite")
    theirs = sklearn_crfsuite.CRF(algorithm="lbfgs", model_filename=path).fit(X, y)
    ours = CRF(model_filename=path)
    a, b = ours.tagger_, theirs.tagger_
    assert a.labels() == b.labels()
    assert a.tag(X[1]) == b.tag(X[1])
    assert type(a.marginal(y[1][0], 0)) is type(b.marginal(y[1][0], 0)) is float
    assert a.marginal(y[1][0], 0) == pytest.approx(b.marginal(y[1][0], 0), abs=1e-6)
    assert a.probability(y[1]) == pytest.approx(b.probability(y[1]), abs=1e-6)
    assert a.info().state_features == pytest.approx(b.info().state_features, abs=1e-6)
    # (python-crfsuite prints the weights of info() with 6 decimals.)
    # Over a model fitted here, too.
    fitted = CRF(random_state=0).fit(X, y)
    assert fitted.tagger_.tag(X[0]) == fitted.predict_single(X[0])


@pytest.mark.parametrize("labels", [None, ["L0", "L2"], ["L2", "L1", "L0"]])
@pytest.mark.parametrize("digits", [2, 4])
def test_flat_classification_report_as_sklearn_crfsuites(corpus, monkeypatch, labels, digits):
    from sklearn_crfsuite import metrics as theirs

    from fastcrf import metrics

    X, y = corpus
    pred = CRF(algorithm="ap", max_iterations=2, random_state=0).fit(X, y).predict(X)
    expected = theirs.flat_classification_report(y, pred, labels=labels, digits=digits)
    assert metrics.flat_classification_report(y, pred, labels=labels,
                                              digits=digits) == expected
    # The same text without scikit-learn.
    monkeypatch.setitem(__import__("sys").modules, "sklearn", None)
    assert metrics.flat_classification_report(y, pred, labels=labels,
                                              digits=digits) == expected


def test_tagger_after_predict_holds_the_last_sequence():
    # sklearn-crfsuite tags through tagger_, so after predict it holds the last
    # sequence and tagger_.marginal reads it (the README's snippet relies on it).
    X, y = [], []
    for seed in range(4):
        Xs, ys = tiny(seed)
        X += Xs
        y += ys
    for first_access_before_predict in (False, True):
        crf = CRF(algorithm="lbfgs", max_iterations=20).fit(X, y)
        if first_access_before_predict:
            crf.tagger_.labels()
        crf.predict(X[:3])
        label = crf.classes_[0]
        expected = crf.predict_marginals([X[2]])[0][0][label]
        assert crf.tagger_.marginal(label, 0) == pytest.approx(expected, abs=1e-9)
