"""partial_fit and warm-started fits keep SGD's whole state (fastcrf._train.sgd_state):
the calls run the engine on as one run of epochs would, through pickling too, with new
labels and attributes extending the state, the same for any thread count."""

import functools
import pickle
import warnings
from dataclasses import replace

import numpy as np
import pytest

from fastcrf import CRF
from fastcrf._train import TRAINERS
from fastcrf._train.sgd import SGDSettings, _epoch, _State
from fastcrf.datasets import make_sequences

ARRAYS = ("U", "Uhat", "V", "Vhat", "qU", "qV", "GU", "EU", "GV", "GA", "EA",
          "ada_stamp", "l1_stamp", "scalars")


@pytest.fixture(scope="module")
def data():
    X, y = make_sequences(n_sequences=60, random_state=0)[:2]
    return X, y


@pytest.fixture
def recorded(monkeypatch):
    """The (data, layout, chain_mask) of every 'asgd' fit the test runs."""
    calls = []
    original = TRAINERS["asgd"]

    @functools.wraps(original.fit)
    def fit(data, settings, *, layout, chain_mask, **kw):
        calls.append((data, layout, chain_mask.copy()))
        return original.fit(data, settings, layout=layout, chain_mask=chain_mask, **kw)

    monkeypatch.setitem(TRAINERS, "asgd", replace(original, fit=fit))
    return calls


def _partial_fits(crf, X, y, calls, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(calls):
            crf.partial_fit(X, y, sample_weight=sample_weight)
    return crf


def _same_state(a, b):
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(x, y), name


# Each rule with its L2 and, for 'calibrated', a fixed eta0 (no calibration draws).
RULES = [({}, "adagrad_row", 0.5),
         ({"learning_rate": "adagrad"}, "adagrad", 1.0),
         ({"learning_rate": "calibrated", "eta0": 0.05}, "calibrated", 0.05),
         ({"learning_rate": "calibrated", "eta0": 0.05, "c1": 0.05}, "calibrated", 0.05)]


@pytest.mark.parametrize("kw, rule, eta0", RULES)
@pytest.mark.parametrize("weighted", [False, True])
def test_partial_fit_twice_is_the_engine_going_on(data, recorded, kw, rule, eta0,
                                                  weighted):
    """Two partial_fit calls on the same data: the state, and the averaged weights of
    the model, are bitwise those of one engine state run through the same two
    shuffles (averaging from the first step), sample weights included."""
    X, y = data
    weights = np.random.default_rng(5).uniform(0.2, 2.0, len(X)) if weighted else None
    crf = _partial_fits(CRF(algorithm="asgd", random_state=np.random.default_rng(1),
                            **kw), X, y, 2, weights)
    assert len(recorded) == 2
    train, layout, mask = recorded[0]
    assert np.array_equal(recorded[1][0].features.attr_ids, train.features.attr_ids)
    if weighted:
        np.testing.assert_array_equal(train.weights, weights)
    rng = np.random.default_rng(1)
    c1 = kw.get("c1", 0.0)
    state = _State(layout, l1=c1 > 0, adagrad=rule != "calibrated", avg_start=0.0,
                   rows=rule == "adagrad_row")
    lam, n = 2 * 0.25 / len(X), len(X)
    for _ in range(2):
        _epoch(state, train, rng.permutation(n), SGDSettings(), eta0, lam, 0.0, mask, 1,
               lam1=c1 / n)
    kept = crf._model.optimizer_state
    assert kept.rule == rule and kept.scalars[4] == state.scalars[4] > 0
    _same_state(kept, state)
    expected = state.weights(True)
    np.testing.assert_array_equal(crf._model.state, expected.state)
    np.testing.assert_array_equal(crf._model.chain, expected.chain)


def test_partial_fit_takes_the_default_adagrad_row_and_keeps_its_accumulators(data):
    X, y = data
    crf = _partial_fits(CRF(random_state=0), X[:30], y[:30], 1)
    first_model = crf._model
    first = first_model.optimizer_state
    assert first.rule == "adagrad_row" and first.GA.max() > 0
    _partial_fits(crf, X[30:], y[30:], 1)
    second = crf._model.optimizer_state
    assert second.rule == "adagrad_row"
    # Summed squared gradients only grow: the second call starts from the first's.
    index = crf._model.vocabulary.index
    ids = [index[a] for a in first_model.vocabulary.names]
    assert np.all(second.GA[ids] >= first.GA) and np.any(second.GA[ids] > first.GA)


def test_pickling_midway_then_going_on_gives_the_same_weights(data):
    X, y = data
    kw = {"random_state": 0}
    straight = _partial_fits(CRF(**kw), X[:30], y[:30], 1)
    copy = pickle.loads(pickle.dumps(straight))
    assert copy._model.optimizer_state is not None
    _partial_fits(straight, X[30:], y[30:], 1)
    _partial_fits(copy, X[30:], y[30:], 1)
    np.testing.assert_array_equal(straight._model.state, copy._model.state)
    np.testing.assert_array_equal(straight._model.chain, copy._model.chain)
    _same_state(straight._model.optimizer_state, copy._model.optimizer_state)
    # Without the state (a model file holds none) the second call differs.
    stripped = _partial_fits(CRF(**kw), X[:30], y[:30], 1)
    stripped._model.optimizer_state = None
    _partial_fits(stripped, X[30:], y[30:], 1)
    assert not np.array_equal(stripped._model.state, straight._model.state)


def _dense_by_name(model, flat, rows_only=False):
    """{(attribute, label): value} of a flat per-weight array of ``model``'s layout."""
    dense = model.layout.to_dense(flat)
    names = model.vocabulary.names
    return {(names[a], model.classes[k]): dense[a, k]
            for a, k in zip(*model.layout.pairs())}


@pytest.mark.parametrize("kw", [{}, {"learning_rate": "calibrated", "eta0": 0.05,
                                     "c1": 0.05}])
def test_new_labels_and_attributes_extend_every_state_array(kw):
    """A second call brings a label and attributes the first never saw: the state of
    the first call's weights moves to their new places, the new ones start at 0."""
    from fastcrf._warm import carry_optimizer

    X, y = make_sequences(n_sequences=80, n_labels=4, random_state=2)[:2]
    X2 = [[list(t) + ["extra"] for t in seq] for seq in X[40:]]
    y2 = [[lab if lab != "L0" else "NEW" for lab in seq] for seq in y[40:]]
    first = _partial_fits(CRF(random_state=0, **kw), X[:40], y[:40], 1)
    old_model = first._model
    old = old_model.optimizer_state
    second = _partial_fits(pickle.loads(pickle.dumps(first)), X2, y2, 1)
    assert second.classes_[:len(old_model.classes)] == old_model.classes
    assert "NEW" in second.classes_ and "extra" in second.attributes_
    # Moved before training: the first call's arrays by (attribute, label) name.
    model = second._model
    moved = carry_optimizer(old_model, model.vocabulary, model.layout)
    for name in ("U", "Uhat", "qU", "GU", "EU"):
        if getattr(old, name) is None:
            continue
        before = _dense_by_name(old_model, getattr(old, name))
        after = _dense_by_name(model, getattr(moved, name))
        assert all(after[key] == value for key, value in before.items()), name
        new = [v for key, v in after.items() if key not in before]
        assert new and not np.any(new), name
    index = model.vocabulary.index
    new_ids = [index[a] for a in old_model.vocabulary.names]
    for name in ("GA", "EA", "ada_stamp", "l1_stamp"):
        if getattr(old, name) is not None:
            np.testing.assert_array_equal(getattr(moved, name)[new_ids], getattr(old, name))
    k, K = len(old_model.classes), len(model.classes)
    V = moved.V[:K * K].reshape(K, K)
    np.testing.assert_array_equal(V[:k, :k], old.V[:k * k].reshape(k, k))
    assert not V[k:].any() and not V[:, k:].any()
    # After training: every array has the new layout's size, the counters went on.
    kept = model.optimizer_state
    assert kept.U.shape == (model.layout.size,) and kept.V.shape == (K * K + 2 * K,)
    assert kept.scalars[3] == old.scalars[3] + len(X2)


@pytest.mark.parametrize("kw", [{}, {"learning_rate": "calibrated"}])
def test_partial_fit_and_warm_fit_bitwise_across_thread_counts(data, kw):
    X, y = data
    runs = []
    for n_jobs in (1, 2):
        crf = CRF(algorithm="asgd", random_state=0, n_jobs=n_jobs, **kw)
        _partial_fits(crf, X[:30], y[:30], 1)
        _partial_fits(crf, X[30:], y[30:], 1)
        warm = CRF(algorithm="asgd", random_state=0, n_jobs=n_jobs, warm_start=True,
                   max_iterations=2,
                   **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warm.fit(X[:30], y[:30]).fit(X[30:], y[30:])
        runs.append((crf, warm))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a._model.state, b._model.state)
        np.testing.assert_array_equal(a._model.chain, b._model.chain)
        _same_state(a._model.optimizer_state, b._model.optimizer_state)


def test_warm_fit_goes_on_with_the_average_and_the_counters(data):
    X, y = data
    crf = CRF(algorithm="asgd", random_state=0, warm_start=True, max_iterations=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crf.fit(X, y)
        first = crf._model.optimizer_state
        assert first.avg_start == 2 * 15 and first.scalars[4] == 4 * 15
        crf.fit(X, y)
    second = crf._model.optimizer_state
    assert second.avg_start == first.avg_start and second.scalars[4] == 8 * 15
    assert second.scalars[3] == 8 * len(X)


def test_a_cold_fit_keeps_no_state_and_a_model_file_none(data, tmp_path):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cold = CRF(algorithm="asgd", random_state=0, max_iterations=2).fit(X, y)
        assert cold._model.optimizer_state is None
        crf = CRF(algorithm="asgd", random_state=0, max_iterations=2, warm_start=True)
        crf.fit(X, y)
    assert crf._model.optimizer_state is not None
    crf.save(tmp_path / "m.npz")
    assert CRF.load(tmp_path / "m.npz")._model.optimizer_state is None



def test_adagrad_decays_of_rows_a_call_skips_follow_its_own_l2(data):
    """A call on half as many sequences doubles lambda: the cached decay of every row,
    also of the rows its data never touch, is that of the new lambda."""
    from fastcrf._kernels._sgd_engine import ADAGRAD_DELTA

    X, y = data
    only_first = [[list(t) + ["only_first"] for t in seq] for seq in X[:40]]
    crf = _partial_fits(CRF(algorithm="asgd", random_state=0), only_first, y[:40], 1)
    _partial_fits(crf, X[40:], y[40:], 1)
    kept = crf._model.optimizer_state
    assert kept.lam == 2 * 0.25 / 20
    row = crf.attributes_.index("only_first")
    assert kept.GA[row] > 0
    seen = kept.GA > 0
    c = kept.eta0 * kept.lam * kept.batch_size
    np.testing.assert_allclose(kept.EA[seen],
                               np.expm1(-c / (ADAGRAD_DELTA + np.sqrt(kept.GA[seen]))),
                               rtol=1e-12)
