"""The per-row AdaGrad step (``learning_rate='adagrad_row'``) against a dense reference.

The reference keeps every weight, one accumulator ``G_a`` per attribute row and
(from the first averaged step on) the running sum of the iterates, and applies each
step to every weight: ``G_a += sum_k g_ak^2 / K``, then
``w_ak <- exp(-eta lambda n_b s_a) w_ak + eta g_ak s_a`` with
``s_a = 1 / (delta + sqrt(G_a))`` (0 where ``G_a = 0``), and the per-weight rule of
tests/test_sgd_adagrad.py for the transition, start and end scores.  A tail
attribute's missing label pairs have no weight: their gradient is masked to 0, so
they add nothing to ``G_a``.  The engine does the same lazily
(fastcrf/_kernels/_adagrad.h, fcrf_adarow_*), so the two agree to rounding.
"""

import numpy as np
import pytest
from test_sgd_adagrad import _accuracy, _orders, _rare_attribute_data
from test_sparse import random_data

from fastcrf import CRF
from fastcrf._kernels import _sgd_engine
from fastcrf._layout import StateLayout
from fastcrf._train.base import LayoutWeights
from fastcrf._train.sgd import SGDSettings, _epoch, _part_offsets, _State
from fastcrf._training import Weights, log_likelihood
from fastcrf.datasets import make_sequences

RTOL = 1e-10
ATOL = 1e-9
DELTA = _sgd_engine.ADAGRAD_DELTA


def _scale(G):
    return np.where(G > 0, 1.0 / (DELTA + np.sqrt(G)), 0.0)


def naive_adagrad_row(data, batches, eta, lam, avg_start, mask=None, init=None):
    """Dense averaged per-row AdaGrad over explicit mini-batches (lists of sequence
    indices, in order).  Returns the final iterate, the average of the iterates of
    the steps numbered above ``avg_start`` (None when there is none) and ``G_a``."""
    A, K = data.features.n_attributes, data.n_labels
    w = Weights.zeros(A, K) if init is None else init
    GA = np.zeros(A)
    GV = np.zeros_like(w.chain)
    total = [np.zeros_like(w.state), np.zeros_like(w.chain)]
    n_avg = 0
    for step, idx in enumerate(batches, start=1):
        _, g = log_likelihood(data.subset(np.asarray(idx)), w, n_jobs=1)
        gs = g.state if mask is None else g.state * mask
        GA += (gs * gs).sum(axis=1) / K
        s = _scale(GA)[:, None]
        state = np.exp(-eta * lam * len(idx) * s) * w.state + eta * gs * s
        GV += g.chain * g.chain
        sv = _scale(GV)
        chain = np.exp(-eta * lam * len(idx) * sv) * w.chain + eta * g.chain * sv
        w = Weights.from_flat(state, chain)
        if avg_start >= 0 and step > avg_start:
            total[0] += w.state
            total[1] += w.chain
            n_avg += 1
    avg = Weights.from_flat(total[0] / n_avg, total[1] / n_avg) if n_avg else None
    return w, avg, GA


def _batches(epochs, batch):
    return [order[pos:pos + batch] for order in epochs for pos in range(0, len(order), batch)]


def run_engine(data, layout, epochs, eta, lam, batch, avg_start, n_threads=1, init=None):
    """The trainer's epochs (``_epoch``: several compiled calls each), per-row rule."""
    state = _State(layout, adagrad=True, avg_start=avg_start, rows=True)
    if init is not None:
        state.U[:] = init.state
        state.V[:] = init.chain
    K = data.n_labels
    losses = [_epoch(state, data, np.asarray(order), SGDSettings(batch_size=batch), eta,
                     lam, avg_start, np.ones(K * K + 2 * K), n_threads)
              for order in epochs]
    return state, np.concatenate(losses)


def check_against_reference(data, layout, epochs, eta, lam, batch, avg_start,
                            n_threads=1, init=None):
    state, losses = run_engine(data, layout, epochs, eta, lam, batch, avg_start, n_threads,
                               init=None if init is None else LayoutWeights(
                                   layout.from_dense(init.state), init.chain))
    assert np.isfinite(losses).all()
    mask = None if layout.n_dense == layout.n_attributes else layout.mask()
    w_ref, avg_ref, GA = naive_adagrad_row(data, _batches(epochs, batch), eta, lam,
                                           avg_start, mask, init)
    it = state.iterate()
    assert np.abs(w_ref.state).max() > 0.1   # the test is not about zeros
    np.testing.assert_allclose(state.GA, GA, rtol=RTOL)
    np.testing.assert_allclose(it.state, w_ref.state, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(it.chain, w_ref.chain, rtol=RTOL, atol=ATOL)
    if avg_ref is not None:
        assert state.has_average(True, avg_start)
        avg = state.average()
        np.testing.assert_allclose(avg.state, avg_ref.state, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(avg.chain, avg_ref.chain, rtol=RTOL, atol=ATOL)
    assert (state.ada_stamp == state.scalars[4]).all()   # every row current
    assert (state.ada_rec.view(np.int64)[:, 3] == -1).all()   # every slot given back
    return state


@pytest.mark.parametrize("batch", [1, 3, 4])
@pytest.mark.parametrize("avg_start", [-1.0, 0.0, 5.0, 7.0])
def test_adagrad_row_epochs_match_the_dense_reference(batch, avg_start):
    # 11 sequences: batches of 3 and 4 leave a short last batch in every epoch; the
    # averaging starts at an epoch boundary (7 = two epochs of 4) or inside one (5).
    rng = np.random.default_rng(5)
    data = random_data(rng, n_seq=11, A=15)
    layout = StateLayout.dense(data.features.n_attributes, data.n_labels)
    check_against_reference(data, layout, _orders(rng, 11, 3), 0.7, 0.05, batch, avg_start)


@pytest.mark.parametrize("n_dense", [0, 4, 9])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("K", [3, 6])
def test_adagrad_row_with_a_partial_layout_matches_the_masked_reference(n_dense, n_threads,
                                                                        K):
    # Tail attributes keep only the labels they were seen with: the sum of squares
    # runs over those, still divided by K.
    rng = np.random.default_rng(11)
    data = random_data(rng, n_seq=12, K=K, A=12)
    layout = StateLayout.build(data, n_dense)
    check_against_reference(data, layout, _orders(rng, 12, 2), 1.0, 0.1, 3, 6.0, n_threads)


@pytest.mark.parametrize("K", [3, 22])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_adagrad_row_over_both_weight_parts_matches_the_reference(K, n_threads):
    # Enough attributes (> 64, _prep.pxd BLOCK_SHIFT) for both weight parts.
    rng = np.random.default_rng(21)
    data = random_data(rng, n_seq=13, K=K, A=150, max_feats=9)
    layout = StateLayout.build(data, 70)
    check_against_reference(data, layout, _orders(rng, 13, 2), 1.0, 0.05, 3, 5.0, n_threads)


def test_adagrad_row_with_sample_weights_matches_the_reference():
    rng = np.random.default_rng(8)
    data = random_data(rng, n_seq=10, A=12)
    data.weights = rng.uniform(0.2, 3.0, size=data.n_sequences)
    layout = StateLayout.dense(data.features.n_attributes, data.n_labels)
    check_against_reference(data, layout, _orders(rng, 10, 2), 1.0, 0.1, 3, 3.0)


def test_adagrad_row_rows_untouched_for_many_steps_match_the_reference():
    rng = np.random.default_rng(2)
    data = _rare_attribute_data(rng)
    n = data.n_sequences
    first_last = [np.concatenate(([0], rng.permutation(np.arange(1, n)))),
                  np.concatenate((rng.permutation(np.arange(1, n)), [0]))]
    layout = StateLayout.dense(data.features.n_attributes, data.n_labels)
    for avg_start in (-1.0, 10.0):
        state = check_against_reference(data, layout, first_last + first_last, 1.0, 0.2, 2,
                                        avg_start)
        # The rare rows decayed (and stepped) without being read for ~20 steps.
        assert np.abs(state.iterate().state[:5]).max() > 0


def test_adagrad_row_warm_start_keeps_rows_without_gradient():
    rng = np.random.default_rng(3)
    data = _rare_attribute_data(rng, n_seq=12)
    A, K = data.features.n_attributes, data.n_labels
    init = Weights(rng.normal(size=(A, K)), rng.normal(size=(K, K)), rng.normal(size=K),
                   rng.normal(size=K))
    layout = StateLayout.dense(A, K)
    orders = [rng.permutation(np.arange(1, 12)) for _ in range(2)]   # never sequence 0
    state = check_against_reference(data, layout, orders, 1.0, 0.1, 3, 4.0, init=init)
    np.testing.assert_array_equal(state.iterate().state[:5], init.state[:5])
    assert not state.GA[:5].any()


def test_adagrad_row_differs_from_the_per_weight_rule():
    # The reference above could equal the per-weight one only if every row had one
    # label; with K = 5 the two rules' models differ.
    rng = np.random.default_rng(9)
    data = random_data(rng, n_seq=12, K=5, A=20)
    layout = StateLayout.dense(data.features.n_attributes, data.n_labels)
    orders = _orders(rng, 12, 2)
    rows, _ = run_engine(data, layout, orders, 1.0, 0.1, 3, 4.0)
    per_weight = _State(layout, adagrad=True, avg_start=4.0)
    for order in orders:
        _epoch(per_weight, data, order, SGDSettings(batch_size=3), 1.0, 0.1, 4.0,
               np.ones(5 * 5 + 10), 1)
    assert rows.GU is None and per_weight.GA is None
    diff = np.abs(rows.iterate().state - per_weight.iterate().state).max()
    assert diff > 1e-3
    # The chain scores follow the same per-weight rule in both, from different
    # emission weights: close, not equal.
    assert not np.array_equal(rows.iterate().chain, per_weight.iterate().chain)


def _engine_call(state, data, order, *, batch, eta, lam, avg_start, fold, n_threads=1,
                 **kw):
    f = data.features
    L = state.layout
    K = data.n_labels
    losses = np.zeros(len(order))
    args = {"adagrad": True, "GV": state.GV, "ada_rows": True, "ada_rec": state.ada_rec}
    args.update(kw)
    status = _sgd_engine.sgd_epoch(
        state.U, state.Uhat, state.V, state.Vhat, K, L.n_dense, L.tail_ptr, L.tail_labels,
        np.ones(K * K + 2 * K), state.scalars, f.attr_ids, f.values, f.token_offsets,
        _part_offsets(data), f.seq_offsets, data.labels, np.asarray(order, np.int64),
        data.max_length, batch, eta, lam, 0.75, avg_start, losses, n_threads, fold=fold,
        **args)
    return status, losses


@pytest.mark.parametrize("avg_start", [-1.0, 4.0])
def test_adagrad_row_calls_over_uneven_slices_match_the_reference(avg_start):
    # Slices whose lengths are not multiples of the batch size end in a short batch
    # and leave the next call's rows stale (fold=False).
    rng = np.random.default_rng(6)
    data = random_data(rng, n_seq=30, K=5, A=90, max_feats=6)
    layout = StateLayout.build(data, 40)
    order = rng.permutation(data.n_sequences)
    sliced = _State(layout, adagrad=True, avg_start=avg_start, rows=True)
    slices = ((0, 7), (7, 8), (8, 21), (21, 30))
    for lo, hi in slices:
        status, losses = _engine_call(sliced, data, order[lo:hi], batch=4, eta=0.8,
                                      lam=0.05, avg_start=avg_start, fold=hi == 30)
        assert status == 0 and np.isfinite(losses).all()
    batches = [order[lo:hi][i:i + 4] for lo, hi in slices for i in range(0, hi - lo, 4)]
    w_ref, avg_ref, GA = naive_adagrad_row(data, batches, 0.8, 0.05, avg_start,
                                           layout.mask())
    np.testing.assert_allclose(sliced.GA, GA, rtol=RTOL)
    np.testing.assert_allclose(sliced.iterate().state, w_ref.state, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(sliced.iterate().chain, w_ref.chain, rtol=RTOL, atol=ATOL)
    if avg_ref is not None:
        np.testing.assert_allclose(sliced.average().state, avg_ref.state, rtol=RTOL,
                                   atol=ATOL)
        np.testing.assert_allclose(sliced.average().chain, avg_ref.chain, rtol=RTOL,
                                   atol=ATOL)
    assert (sliced.ada_stamp == sliced.scalars[4]).all()
    assert (sliced.ada_rec.view(np.int64)[:, 3] == -1).all()


def test_adagrad_row_is_bitwise_identical_for_any_thread_count():
    rng = np.random.default_rng(4)
    data = random_data(rng, n_seq=60, K=22, A=200, max_len=12, max_feats=12)
    data.weights = rng.uniform(0.5, 2.0, size=data.n_sequences)
    layout = StateLayout.build(data, 90)
    orders = _orders(rng, 60, 2)
    names = ("U", "Uhat", "V", "Vhat", "scalars", "GA", "GV", "ada_stamp")
    runs = []
    for n_threads in (1, 2, 3):
        state, losses = run_engine(data, layout, orders, 1.0, 0.01, 7, 9.0, n_threads)
        runs.append([losses] + [getattr(state, name) for name in names])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_adagrad_row_divergence_gives_every_gradient_slot_back():
    # A huge step size drives the emission scores out of range while the chain stays
    # at 0 (no trainable chain score): the call stops inside a mini-batch, after its
    # catch-up gave its rows slots in the gradient buffer and before the step that
    # gives them back.  The next call must find none taken.
    rng = np.random.default_rng(5)
    data = random_data(rng, n_seq=20, K=4, A=40, max_feats=5)
    K = data.n_labels
    state = _State(StateLayout.build(data, 20), adagrad=True, rows=True)
    f = data.features
    L = state.layout
    order = np.arange(data.n_sequences, dtype=np.int64)
    status = _sgd_engine.sgd_epoch(
        state.U, state.Uhat, state.V, state.Vhat, K, L.n_dense, L.tail_ptr, L.tail_labels,
        np.zeros(K * K + 2 * K), state.scalars, f.attr_ids, f.values, f.token_offsets,
        _part_offsets(data), f.seq_offsets, data.labels, order, data.max_length, 2, 1e300,
        0.0, 0.75, -1.0, np.zeros(len(order)), 1, fold=True, adagrad=True, GV=state.GV,
        ada_rows=True, ada_rec=state.ada_rec)
    assert status == -1
    assert np.abs(state.U).max() > 1e250   # it stopped on the weights, not the chain
    assert (state.ada_rec.view(np.int64)[:, 3] == -1).all()


def test_adagrad_row_engine_checks_its_arrays():
    rng = np.random.default_rng(0)
    data = random_data(rng)
    K = data.n_labels
    state = _State(StateLayout.dense(data.features.n_attributes, K), adagrad=True, rows=True)
    order = np.arange(data.n_sequences)
    kw = {"batch": 2, "eta": 1.0, "lam": 0.1, "avg_start": -1.0, "fold": True}
    with pytest.raises(ValueError, match="ada_rec"):
        _engine_call(state, data, order, ada_rec=state.ada_rec[:-1], **kw)
    with pytest.raises(ValueError, match="ada_rec"):
        _engine_call(state, data, order, ada_rec=None, **kw)
    with pytest.raises(ValueError, match="ada_rec"):
        _engine_call(state, data, order, ada_rec=np.zeros((len(state.GA), 3)), **kw)
    with pytest.raises(ValueError, match="ada_rows needs adagrad"):
        _engine_call(state, data, order, adagrad=False, **kw)
    with pytest.raises(ValueError, match="L1"):
        _engine_call(state, data, order, lam1=0.1, qU=np.zeros_like(state.U),
                     qV=np.zeros_like(state.V), l1_stamp=np.zeros(len(state.GA), np.int64),
                     **kw)
    assert not state.U.any()   # nothing ran


# --------------------------------------------------------------------------- #
# The estimator                                                                #
# --------------------------------------------------------------------------- #

@pytest.fixture(scope="module")
def hmm():
    X, y = make_sequences(500, n_labels=4, n_attributes=300, noise=0.3, context=1,
                          random_state=0)
    return X[:350], y[:350], X[350:], y[350:]


def test_adagrad_row_learns_as_well_as_the_calibrated_step(hmm):
    X, y, X_test, y_test = hmm
    row = CRF(learning_rate="adagrad_row", random_state=0).fit(X, y)
    cal = CRF(learning_rate="calibrated", random_state=0).fit(X, y)
    ada = CRF(learning_rate="adagrad", random_state=0).fit(X, y)
    assert row.get_params()["learning_rate"] == "adagrad_row"
    assert row.training_log_.algorithm == "asgd"
    assert not np.array_equal(row.state_weights_, ada.state_weights_)
    assert _accuracy(row, X_test, y_test) > _accuracy(cal, X_test, y_test) - 0.02
    assert _accuracy(row, X_test, y_test) > 0.6
    # No calibration: the step size is the constant.
    assert row.training_log_.last_iteration["eta0"] == 0.5


def test_adagrad_row_fit_does_not_depend_on_n_jobs(hmm):
    X, y, *_ = hmm
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=len(X))
    kw = {"learning_rate": "adagrad_row", "random_state": 3, "max_iterations": 3}
    one = CRF(n_jobs=1, **kw).fit(X, y, sample_weight=w)
    two = CRF(n_jobs=2, **kw).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(one.state_weights_, two.state_weights_)
    np.testing.assert_array_equal(one.transition_weights_, two.transition_weights_)


def test_adagrad_row_eta0_sets_its_step(hmm):
    X, y, *_ = hmm
    small = CRF(learning_rate="adagrad_row", eta0=0.01, random_state=0, max_iterations=2)
    big = CRF(learning_rate="adagrad_row", eta0=1.0, random_state=0, max_iterations=2)
    assert (np.abs(small.fit(X, y).state_weights_).sum()
            < 0.5 * np.abs(big.fit(X, y).state_weights_).sum())


def test_adagrad_row_warm_start_and_partial_fit(hmm):
    X, y, *_ = hmm
    crf = CRF(learning_rate="adagrad_row", random_state=0, max_iterations=2, warm_start=True)
    first = crf.fit(X[:200], y[:200]).state_weights_.copy()
    crf.fit(X[200:], y[200:])
    assert crf.state_weights_.shape[0] >= first.shape[0]
    part = CRF(learning_rate="adagrad_row", random_state=0)
    part.partial_fit(X[:100], y[:100])
    part.partial_fit(X[100:200], y[100:200])
    assert _accuracy(part, X[:200], y[:200]) > 0.5


@pytest.mark.parametrize("params, match", [
    ({"learning_rate": "adagrad_rows"}, "learning_rate"),
    ({"learning_rate": "adagrad_row", "c1": 0.1}, "learning_rate='adagrad_row'.*c1"),
    ({"learning_rate": "adagrad_row", "algorithm": "lbfgs"},
     "learning_rate='adagrad_row'.*asgd"),
    ({"learning_rate": "adagrad_row", "algorithm": "l2sgd"},
     "learning_rate='adagrad_row'.*asgd"),
])
def test_bad_adagrad_row_use_is_a_value_error_naming_it(hmm, params, match):
    X, y, *_ = hmm
    with pytest.raises(ValueError, match=match):
        CRF(**params).fit(X[:50], y[:50])


def test_the_default_rule_falls_back_to_calibrated_where_adagrad_cannot_serve(hmm, tmp_path):
    X, y, *_ = hmm
    # c1 > 0: only 'calibrated' has the L1 clip (an explicit AdaGrad rule is refused).
    l1 = CRF(c1=0.1, random_state=0, max_iterations=2).fit(X, y)
    cal = CRF(c1=0.1, learning_rate="calibrated", random_state=0, max_iterations=2).fit(X, y)
    np.testing.assert_array_equal(l1.state_weights_, cal.state_weights_)
    with pytest.raises(ValueError, match="learning_rate"):
        CRF(c1=0.1, learning_rate="adagrad_row").fit(X, y)
    # partial_fit goes on with the default rule and its accumulators; from a model
    # file, which holds no optimizer state, the calibrated schedule goes on instead.
    online = CRF(random_state=np.random.default_rng(0))
    online.partial_fit(X, y)
    online.partial_fit(X, y)
    assert online._model.optimizer_state.rule == "adagrad_row"
    assert {e["eta0"] for e in online.training_log_.iterations} == {0.5}
    online.save(tmp_path / "m.npz")
    loaded = CRF.load(tmp_path / "m.npz")
    loaded.set_params(random_state=0)
    loaded.partial_fit(X, y)
    assert loaded._model.optimizer_state.rule == "calibrated"
    loaded.partial_fit(X, y)
    etas = {e["eta0"] for e in loaded.training_log_.iterations[-1:]}
    assert loaded._model.optimizer_state.rule == "calibrated" and etas != {0.5}
