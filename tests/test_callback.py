"""``CRF.fit(callback=...)``: called once per epoch / iteration with the log entry
(and, on request, a model of the current weights); a true return value stops the fit
with a usable model; an exception leaves the estimator as it was."""

import numpy as np
import pytest

from crf_data import sample_hmm
from fastcrf import CRF

ALGORITHMS = ["asgd", "l2sgd", "lbfgs", "ap", "pa"]


@pytest.fixture(scope="module")
def corpus():
    X, y, _ = sample_hmm(200, seed=3)
    return X, y


def _crf(algorithm, **kw):
    kw.setdefault("max_iterations", 6)
    return CRF(algorithm=algorithm, random_state=0, **kw)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_called_once_per_iteration_with_the_log_entry(corpus, algorithm):
    X, y = corpus
    seen = []
    crf = _crf(algorithm).fit(X, y, callback=seen.append)
    assert len(seen) == len(crf.training_log_) == crf.n_iter_ >= 1
    assert [e["num"] for e in seen] == [e["num"] for e in crf.training_log_.iterations]
    for entry, logged in zip(seen, crf.training_log_.iterations):
        assert entry == logged
        assert entry is not logged           # the user's dict is a copy
        for key in ("loss", "objective", "feature_norm", "time"):
            assert type(entry[key]) is float


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_true_return_stops_with_a_usable_model(corpus, algorithm):
    X, y = corpus
    crf = _crf(algorithm, max_iterations=20).fit(
        X, y, callback=lambda info: info["num"] >= 2)
    assert crf.n_iter_ == 2
    assert len(crf.training_log_) == 2
    pred = crf.predict(X)
    assert [len(p) for p in pred] == [len(s) for s in y]
    accuracy = np.mean([a == b for p, t in zip(pred, y) for a, b in zip(p, t)])
    assert accuracy > 0.5     # trained, not left at zero weights


@pytest.mark.parametrize("algorithm", ["asgd", "lbfgs", "ap"])
def test_model_argument_holds_the_current_weights(corpus, algorithm):
    X, y = corpus
    snapshots = []

    def keep(info, model):
        assert isinstance(model, CRF)
        assert model.n_iter_ == info["num"]
        snapshots.append((info["num"], model.predict_marginals(X[:20])))

    crf = _crf(algorithm).fit(X, y, callback=keep)
    assert len(snapshots) == crf.n_iter_
    # The last iteration's model is the fitted model.
    assert snapshots[-1][1] == crf.predict_marginals(X[:20])
    # Earlier models differ: each snapshot is its own copy of the weights.
    assert snapshots[0][1] != snapshots[-1][1]


def test_model_argument_with_a_dev_set_and_a_user_metric(corpus):
    X, y = corpus
    X_dev, y_dev, _ = sample_hmm(50, seed=4)
    scores = []

    def dev_f1(info, model):
        pred = model.predict(X_dev)
        scores.append(np.mean([a == b for p, t in zip(pred, y_dev) for a, b in zip(p, t)]))
        assert info["dev_accuracy"] == pytest.approx(scores[-1])

    _crf("asgd").fit(X, y, X_dev, y_dev, callback=dev_f1)
    assert len(scores) == 6


def test_exception_in_callback_keeps_the_previous_model(corpus):
    X, y = corpus
    crf = _crf("asgd").fit(X, y)
    before = crf.predict_marginals(X[:10])

    def boom(info):
        if info["num"] == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        crf.set_params(c2=10.0).fit(X, y, callback=boom)
    assert crf.predict_marginals(X[:10]) == before


def test_keyboard_interrupt_in_callback_leaves_an_unfitted_estimator_unfitted(corpus):
    from fastcrf import NotFittedError

    X, y = corpus

    def interrupt(info):
        raise KeyboardInterrupt

    crf = _crf("lbfgs")
    with pytest.raises(KeyboardInterrupt):
        crf.fit(X, y, callback=interrupt)
    with pytest.raises(NotFittedError):
        crf.predict(X[:1])


def test_not_callable_is_a_type_error_before_the_data_is_read():
    class Unreadable:
        def __iter__(self):
            raise AssertionError("the data was read")

    with pytest.raises(TypeError, match="callback must be callable"):
        CRF().fit(Unreadable(), Unreadable(), callback="print")


def test_bound_method_and_varargs_callbacks(corpus):
    X, y = corpus

    class Recorder:
        def __init__(self):
            self.models = []

        def on_epoch(self, info, model):
            self.models.append(model)

    rec = Recorder()
    _crf("asgd", max_iterations=3).fit(X, y, callback=rec.on_epoch)
    assert len(rec.models) == 3 and all(isinstance(m, CRF) for m in rec.models)

    got = []
    _crf("asgd", max_iterations=3).fit(X, y, callback=lambda *args: got.append(len(args)))
    assert got == [2, 2, 2]
