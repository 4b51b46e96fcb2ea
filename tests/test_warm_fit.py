"""``CRF(warm_start=True).fit`` and ``CRF.partial_fit``: training goes on from the
current weights, with the model's labels and its attributes kept."""

import warnings

import numpy as np
import pytest

from crf_data import sample_hmm
from fastcrf import CRF


@pytest.fixture(scope="module")
def corpus():
    X, y, _ = sample_hmm(300, seed=1, n_words=30)
    Xt, yt, _ = sample_hmm(200, seed=9, n_words=30)
    return X, y, Xt, yt


def test_warm_start_is_a_parameter():
    crf = CRF(warm_start=True)
    assert crf.get_params()["warm_start"] is True
    assert "warm_start=True" in repr(crf)
    sklearn_base = pytest.importorskip("sklearn.base")
    assert sklearn_base.clone(crf).warm_start is True
    with pytest.raises(TypeError, match="warm_start must be a bool"):
        CRF(warm_start="yes").fit([[{"w": "a"}]], [["X"]])


def test_warm_fit_on_the_same_data_starts_at_the_optimum(corpus):
    X, y, _, _ = corpus
    cold = CRF(algorithm="lbfgs", warm_start=True).fit(X, y)
    final = cold.training_log_.iterations[-1]["objective"]
    seen = []
    cold.fit(X, y, callback=seen.append)
    assert seen[0]["objective"] <= final * (1 + 1e-6)


def test_warm_fit_converges_in_fewer_iterations_than_a_cold_one(corpus):
    X, y, _, _ = corpus
    cold = CRF(algorithm="lbfgs").fit(X, y)
    warm = CRF(algorithm="lbfgs", warm_start=True).fit(X[:150], y[:150]).fit(X, y)
    assert warm.n_iter_ < cold.n_iter_
    assert warm.training_log_.iterations[-1]["objective"] == pytest.approx(
        cold.training_log_.iterations[-1]["objective"], rel=1e-4)


def test_without_warm_start_fit_starts_from_zero(corpus):
    X, y, _, _ = corpus
    crf = CRF(algorithm="lbfgs").fit(X, y)
    seen = []
    crf.fit(X, y, callback=seen.append)
    assert crf.n_iter_ > 10


def test_a_new_label_extends_the_model(corpus):
    X, y, _, _ = corpus
    crf = CRF(algorithm="ap", warm_start=True, max_iterations=3, random_state=0)
    crf.fit(X, y)
    old = crf.state_features_
    trans = crf.transition_weights_.copy()
    K = len(crf.classes_)
    # A sequence of one new label: the perceptron's update touches only the pairs of
    # the wrong and the right label; everything else keeps its weight.
    x_new = [[{"w": "w1"}, {"w": "w2"}]]
    predicted = crf.predict(x_new)[0]
    crf.set_params(averaging=False, max_iterations=1).fit(x_new, [["NEW", "NEW"]])
    assert crf.classes_[K:] == ["NEW"] and crf.transition_weights_.shape == (K + 1, K + 1)
    touched = {("w:w1",), ("w:w2",)}
    for (attribute, label), w in old.items():
        if (attribute,) not in touched:
            assert crf.state_features_[(attribute, label)] == pytest.approx(w)
    assert crf.state_features_[("w:w1", "NEW")] > 0
    keep = [i for i in range(K) if crf.classes_[i] not in predicted]
    np.testing.assert_allclose(crf.transition_weights_[np.ix_(keep, keep)],
                               trans[np.ix_(keep, keep)])
    assert crf.predict(x_new) == [["NEW", "NEW"]]


def test_new_attributes_start_at_zero_and_old_ones_keep_their_weights(corpus):
    X, y, _, _ = corpus
    crf = CRF(algorithm="ap", warm_start=True, max_iterations=5, random_state=0)
    crf.fit(X, y)
    old = crf.state_features_
    # One more epoch on data of other attributes only, whose labels it predicts
    # right: no update, so the old weights stay and the new attributes stay 0.
    X2 = [[{"zz": "q"}]]
    y2 = [[crf.predict(X2)[0][0]]]
    crf.set_params(averaging=False, max_iterations=1).fit(X2, y2)
    assert "zz:q" in crf.attributes_
    new = crf.state_features_
    assert {k: v for k, v in new.items() if not k[0].startswith("zz")} == pytest.approx(
        {k: v for k, v in old.items()})


def test_partial_fit_refuses_lbfgs_and_late_classes(corpus):
    X, y, _, _ = corpus
    with pytest.raises(ValueError, match="partial_fit needs an online trainer"):
        CRF(algorithm="lbfgs").partial_fit(X, y)
    crf = CRF(algorithm="ap", random_state=0).partial_fit(X, y, classes=["L2", "L0", "L1"])
    assert crf.classes_ == ["L2", "L0", "L1"] and crf.n_iter_ == 1
    with pytest.raises(ValueError, match="classes is only for the first call"):
        crf.partial_fit(X, y, classes=["L0"])


@pytest.mark.parametrize("algorithm", ["asgd", "l2sgd", "ap", "pa", "arow"])
def test_partial_fit_over_halves_learns_like_fit(corpus, algorithm):
    X, y, Xt, yt = corpus
    crf = CRF(algorithm=algorithm, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no "too few steps" warning per batch
        for _ in range(3):
            crf.partial_fit(X[:150], y[:150]).partial_fit(X[150:], y[150:])
    full = CRF(algorithm=algorithm, random_state=0, max_iterations=6).fit(X, y)
    assert crf.score(Xt, yt) >= full.score(Xt, yt) - 0.02
    assert crf.score(Xt, yt) > 0.9


def test_partial_fit_moves_from_the_current_weights(corpus):
    X, y, _, _ = corpus
    crf = CRF(algorithm="pa", random_state=0).partial_fit(X, y)
    first = crf.state_weights_.copy()
    crf.partial_fit(X, y, sample_weight=np.ones(len(X)))
    second = crf.state_weights_
    # The second epoch starts where the first ended: a fresh one-epoch fit differs.
    fresh = CRF(algorithm="pa", random_state=0).partial_fit(X, y).state_weights_
    np.testing.assert_array_equal(fresh, first)
    assert not np.array_equal(second, first)
