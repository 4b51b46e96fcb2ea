"""The AdaGrad step of the averaged SGD engine against a naive dense reference.

The reference keeps every weight, its summed squared gradient ``G`` and (from the
first averaged step on) the running sum of the iterates, and applies each step to
every weight: ``G += g^2``, ``w <- exp(-eta lambda n_b s) w + eta g s`` with
``s = 1 / (delta + sqrt(G))`` (0 where ``G = 0``).  The engine does the same lazily
(only the rows a mini-batch touches, the skipped decays and averaged iterates in
closed form, fastcrf/_kernels/_adagrad.h), so the two agree to rounding: relative
1e-10, and absolute 1e-9 for the weights whose gradient is 0 up to rounding (at
w = 0 with K = 3, counts minus 1/3 cancel), where a rounding difference of ~1e-17
becomes a step of ~eta 1e-17 / delta.
"""

import numpy as np
import pytest
from test_sparse import random_data

from fastcrf import CRF
from fastcrf._encoding import EncodedSequences
from fastcrf._kernels import _sgd_engine
from fastcrf._layout import StateLayout
from fastcrf._train.base import LayoutWeights
from fastcrf._train.sgd import SGDSettings, _epoch, _part_offsets, _State
from fastcrf._training import TrainingData, Weights, log_likelihood
from fastcrf.datasets import make_sequences

RTOL = 1e-10
ATOL = 1e-9
DELTA = _sgd_engine.ADAGRAD_DELTA


def naive_adagrad(data, epochs, eta, lam, batch, avg_start, mask=None, init=None):
    """Dense averaged AdaGrad; ``epochs`` is a list of visiting orders (a mini-batch
    never spans two).  Returns the final iterate and the average of the iterates of
    the steps numbered above ``avg_start`` (None when there is none)."""
    A, K = data.features.n_attributes, data.n_labels
    w = Weights.zeros(A, K) if init is None else init
    G = [np.zeros_like(w.state), np.zeros_like(w.chain)]
    total = [np.zeros_like(w.state), np.zeros_like(w.chain)]
    n_avg = 0
    step = 0
    for order in epochs:
        for pos in range(0, len(order), batch):
            idx = order[pos:pos + batch]
            _, g = log_likelihood(data.subset(idx), w, n_jobs=1)
            grads = [g.state if mask is None else g.state * mask, g.chain]
            x = [w.state.copy(), w.chain.copy()]
            for i in range(2):
                G[i] += grads[i] * grads[i]
                s = np.where(G[i] > 0, 1.0 / (DELTA + np.sqrt(G[i])), 0.0)
                x[i] = np.exp(-eta * lam * len(idx) * s) * x[i] + eta * grads[i] * s
            w = Weights.from_flat(x[0], x[1])
            step += 1
            if avg_start >= 0 and step > avg_start:
                total[0] += w.state
                total[1] += w.chain
                n_avg += 1
    avg = Weights.from_flat(total[0] / n_avg, total[1] / n_avg) if n_avg else None
    return w, avg


def run_engine(data, layout, epochs, eta, lam, batch, avg_start, n_threads=1, init=None):
    """The trainer's epochs (``_epoch``: SLICES compiled calls each) with adagrad."""
    state = _State(layout, adagrad=True, avg_start=avg_start)
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
    w_ref, avg_ref = naive_adagrad(data, epochs, eta, lam, batch, avg_start, mask, init)
    it = state.iterate()
    assert np.abs(w_ref.state).max() > 0.1   # the test is not about zeros
    np.testing.assert_allclose(it.state, w_ref.state, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(it.chain, w_ref.chain, rtol=RTOL, atol=ATOL)
    if avg_ref is not None:
        assert state.has_average(True, avg_start)
        avg = state.average()
        np.testing.assert_allclose(avg.state, avg_ref.state, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(avg.chain, avg_ref.chain, rtol=RTOL, atol=ATOL)
    return state


def _orders(rng, n, n_epochs):
    return [rng.permutation(n) for _ in range(n_epochs)]


@pytest.mark.parametrize("batch", [1, 3, 4])
@pytest.mark.parametrize("avg_start", [-1.0, 0.0, 5.0, 7.0])
def test_adagrad_epochs_match_the_dense_reference(batch, avg_start):
    # 11 sequences: batches of 3 and 4 leave a short last batch in every epoch; the
    # averaging starts at an epoch boundary (7 = two epochs of 4) or inside one (5).
    rng = np.random.default_rng(5)
    data = random_data(rng, n_seq=11, A=15)
    layout = StateLayout.dense(data.features.n_attributes, data.n_labels)
    check_against_reference(data, layout, _orders(rng, 11, 3), 0.7, 0.05, batch, avg_start)


@pytest.mark.parametrize("n_dense", [0, 4, 9])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("K", [3, 4, 6])
def test_adagrad_with_a_partial_layout_matches_the_masked_reference(n_dense, n_threads, K):
    # Tail attributes keep only the labels they were seen with: their other pairs
    # never get a gradient, so their G stays 0 and the weight 0.
    rng = np.random.default_rng(11)
    data = random_data(rng, n_seq=12, K=K, A=12)
    layout = StateLayout.build(data, n_dense)
    check_against_reference(data, layout, _orders(rng, 12, 2), 1.0, 0.1, 3, 6.0, n_threads)


@pytest.mark.parametrize("K", [3, 22])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_adagrad_over_both_weight_parts_matches_the_reference(K, n_threads):
    # Enough attributes (> 64, _prep.pxd BLOCK_SHIFT) for both weight parts.
    rng = np.random.default_rng(21)
    data = random_data(rng, n_seq=13, K=K, A=150, max_feats=9)
    layout = StateLayout.build(data, 70)
    check_against_reference(data, layout, _orders(rng, 13, 2), 1.0, 0.05, 3, 5.0, n_threads)


def test_adagrad_with_sample_weights_matches_the_reference():
    rng = np.random.default_rng(8)
    data = random_data(rng, n_seq=10, A=12)
    data.weights = rng.uniform(0.2, 3.0, size=data.n_sequences)
    layout = StateLayout.dense(data.features.n_attributes, data.n_labels)
    check_against_reference(data, layout, _orders(rng, 10, 2), 1.0, 0.1, 3, 3.0)


def _rare_attribute_data(rng, n_seq=40, A=30, K=4):
    # Attributes 0-4 only in sequence 0 (visited first and last), the others
    # everywhere: rows untouched for ~n_seq / batch steps, before and while averaging.
    lengths = rng.integers(2, 5, size=n_seq)
    ids, offsets = [], [0]
    for s, T in enumerate(lengths):
        for _ in range(T):
            tok = rng.choice(np.arange(5, A), size=3, replace=False)
            if s == 0:
                tok = np.concatenate([tok, rng.choice(5, size=2, replace=False)])
            ids.extend(tok)
            offsets.append(len(ids))
    enc = EncodedSequences(np.array(ids, np.int32), np.ones(len(ids)),
                           np.array(offsets, np.int64),
                           np.concatenate(([0], np.cumsum(lengths))).astype(np.int64), A)
    return TrainingData.build(enc, rng.integers(0, K, size=int(lengths.sum())), K)


def test_adagrad_rows_untouched_for_many_steps_match_the_reference():
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


def test_adagrad_warm_start_keeps_weights_without_gradient():
    # G starts at 0: the initial weights of attributes that no step touches stay as
    # they are (their step size is undefined), the others move from theirs.
    rng = np.random.default_rng(3)
    data = _rare_attribute_data(rng, n_seq=12)
    A, K = data.features.n_attributes, data.n_labels
    init = Weights(rng.normal(size=(A, K)), rng.normal(size=(K, K)), rng.normal(size=K),
                   rng.normal(size=K))
    layout = StateLayout.dense(A, K)
    orders = [rng.permutation(np.arange(1, 12)) for _ in range(2)]   # never sequence 0
    state = check_against_reference(data, layout, orders, 1.0, 0.1, 3, 4.0, init=init)
    np.testing.assert_array_equal(state.iterate().state[:5], init.state[:5])


def _engine_call(state, data, order, *, batch, eta, lam, avg_start, fold, n_threads=1):
    f = data.features
    L = state.layout
    K = data.n_labels
    losses = np.zeros(len(order))
    status = _sgd_engine.sgd_epoch(
        state.U, state.Uhat, state.V, state.Vhat, K, L.n_dense, L.tail_ptr, L.tail_labels,
        np.ones(K * K + 2 * K), state.scalars, f.attr_ids, f.values, f.token_offsets,
        _part_offsets(data), f.seq_offsets, data.labels, np.asarray(order, np.int64),
        data.max_length, batch, eta, lam, 0.75, avg_start, losses, n_threads, fold=fold,
        adagrad=True, GU=state.GU, GV=state.GV, gU=state.gU, ada_stamp=state.ada_stamp,
        EU=state.EU)
    return status, losses


@pytest.mark.parametrize("avg_start", [-1.0, 4.0])
def test_adagrad_calls_over_uneven_slices_equal_one_call(avg_start):
    # Slices whose lengths are not multiples of the batch size end in a short batch
    # and leave the next call's rows stale (fold=False): bringing every row up to
    # date around a short batch keeps the run of skipped steps exact.
    rng = np.random.default_rng(6)
    data = random_data(rng, n_seq=30, K=5, A=90, max_feats=6)
    layout = StateLayout.build(data, 40)
    order = rng.permutation(data.n_sequences)
    whole = _State(layout, adagrad=True, avg_start=avg_start)
    status, one = _engine_call(whole, data, order, batch=4, eta=0.8, lam=0.05,
                               avg_start=avg_start, fold=True)
    assert status == 0
    sliced = _State(layout, adagrad=True, avg_start=avg_start)
    parts = []
    for lo, hi in ((0, 7), (7, 8), (8, 21), (21, 30)):
        status, losses = _engine_call(sliced, data, order[lo:hi], batch=4, eta=0.8,
                                      lam=0.05, avg_start=avg_start, fold=hi == 30)
        assert status == 0
        parts.append(losses)
    # Different batches: the two runs differ, but each equals the reference over its
    # own batches.
    assert not np.array_equal(np.concatenate(parts), one)
    batches = [order[lo:hi][i:i + 4] for lo, hi in ((0, 7), (7, 8), (8, 21), (21, 30))
               for i in range(0, hi - lo, 4)]
    w_ref, avg_ref = _reference_over_batches(data, batches, 0.8, 0.05, avg_start,
                                             layout.mask())
    np.testing.assert_allclose(sliced.iterate().state, w_ref.state, rtol=RTOL, atol=ATOL)
    if avg_ref is not None:
        np.testing.assert_allclose(sliced.average().state, avg_ref.state, rtol=RTOL,
                                   atol=ATOL)
        np.testing.assert_allclose(sliced.average().chain, avg_ref.chain, rtol=RTOL,
                                   atol=ATOL)
    assert (sliced.ada_stamp == sliced.scalars[4]).all()   # every row current
    assert not sliced.gU.any()                             # the scratch left at zero


def _reference_over_batches(data, batches, eta, lam, avg_start, mask):
    # naive_adagrad over explicit batches: each one as an "epoch" of one batch.
    return naive_adagrad(data, [np.asarray(b) for b in batches], eta, lam, 10**9, avg_start,
                         mask)


def test_adagrad_is_bitwise_identical_for_any_thread_count():
    rng = np.random.default_rng(4)
    data = random_data(rng, n_seq=60, K=22, A=200, max_len=12, max_feats=12)
    data.weights = rng.uniform(0.5, 2.0, size=data.n_sequences)
    layout = StateLayout.build(data, 90)
    orders = _orders(rng, 60, 2)
    names = ("U", "Uhat", "V", "Vhat", "scalars", "GU", "GV", "ada_stamp")
    runs = []
    for n_threads in (1, 2, 3):
        state, losses = run_engine(data, layout, orders, 1.0, 0.01, 7, 9.0, n_threads)
        runs.append([losses] + [getattr(state, name) for name in names])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_adagrad_engine_refuses_l1_and_missing_arrays():
    rng = np.random.default_rng(0)
    data = random_data(rng)
    f = data.features
    K = data.n_labels
    state = _State(StateLayout.dense(f.n_attributes, K), adagrad=True)
    L = state.layout
    with pytest.raises(ValueError, match="L1"):
        _sgd_engine.sgd_epoch(
            state.U, state.Uhat, state.V, state.Vhat, K, L.n_dense, L.tail_ptr,
            L.tail_labels, np.ones(K * K + 2 * K), state.scalars, f.attr_ids, f.values,
            f.token_offsets, _part_offsets(data), f.seq_offsets, data.labels,
            np.arange(data.n_sequences), data.max_length, 2, 1.0, 0.1, 0.75, -1.0,
            np.zeros(data.n_sequences), 1, lam1=0.1, qU=np.zeros_like(state.U),
            qV=np.zeros_like(state.V), l1_stamp=np.zeros(f.n_attributes, np.int64),
            adagrad=True, GU=state.GU, GV=state.GV, gU=state.gU, ada_stamp=state.ada_stamp,
            EU=state.EU)
    state.GU = state.GU[:-1]
    with pytest.raises(ValueError, match="GU"):
        _engine_call(state, data, np.arange(data.n_sequences), batch=2, eta=1.0, lam=0.1,
                     avg_start=-1.0, fold=True)


# --------------------------------------------------------------------------- #
# The estimator                                                                #
# --------------------------------------------------------------------------- #

@pytest.fixture(scope="module")
def hmm():
    X, y = make_sequences(500, n_labels=4, n_attributes=300, noise=0.3, context=1,
                          random_state=0)
    return X[:350], y[:350], X[350:], y[350:]


def _accuracy(crf, X, y):
    pred = crf.predict(X)
    return np.mean([a == b for p, g in zip(pred, y) for a, b in zip(p, g)])


def test_adagrad_learns_as_well_as_the_calibrated_step(hmm):
    X, y, X_test, y_test = hmm
    ada = CRF(learning_rate="adagrad", random_state=0).fit(X, y)
    cal = CRF(learning_rate="calibrated", random_state=0).fit(X, y)
    assert ada.get_params()["learning_rate"] == "adagrad"
    assert ada.training_log_.algorithm == "asgd"
    assert not np.array_equal(ada.state_weights_, cal.state_weights_)
    assert _accuracy(ada, X_test, y_test) > _accuracy(cal, X_test, y_test) - 0.02
    assert _accuracy(ada, X_test, y_test) > 0.6
    # No calibration: the step size is the constant.
    assert ada.training_log_.last_iteration["eta0"] == 1.0


def test_adagrad_fit_does_not_depend_on_n_jobs(hmm):
    X, y, *_ = hmm
    one = CRF(learning_rate="adagrad", n_jobs=1, random_state=3, max_iterations=3).fit(X, y)
    two = CRF(learning_rate="adagrad", n_jobs=2, random_state=3, max_iterations=3).fit(X, y)
    np.testing.assert_array_equal(one.state_weights_, two.state_weights_)
    np.testing.assert_array_equal(one.transition_weights_, two.transition_weights_)


def test_adagrad_sample_weight_two_is_about_half_the_l2(hmm):
    # Doubling every gradient doubles sqrt(G): the step eta g / (delta + sqrt(G)) is
    # unchanged and the decay's lambda / (delta + sqrt(G)) halves, i.e. c2 / 2, up to
    # delta.  So the fit with weights 2 is that of c2 / 2, not that of c2.
    X, y, *_ = hmm
    X, y = X[:120], y[:120]
    kw = {"learning_rate": "adagrad", "random_state": 1, "max_iterations": 3, "n_jobs": 1}
    weighted = CRF(c2=1.0, **kw).fit(X, y, sample_weight=np.full(len(X), 2.0))
    halved = CRF(c2=0.5, **kw).fit(X, y)
    same_c2 = CRF(c2=1.0, **kw).fit(X, y)
    near = np.abs(weighted.state_weights_ - halved.state_weights_).max()
    far = np.abs(weighted.state_weights_ - same_c2.state_weights_).max()
    assert near < 0.05 * far


def test_adagrad_eta0_sets_its_step(hmm):
    X, y, *_ = hmm
    small = CRF(learning_rate="adagrad", eta0=0.01, random_state=0, max_iterations=2)
    big = CRF(learning_rate="adagrad", eta0=1.0, random_state=0, max_iterations=2)
    assert (np.abs(small.fit(X, y).state_weights_).sum()
            < 0.5 * np.abs(big.fit(X, y).state_weights_).sum())


def test_adagrad_callbacks_and_early_stopping_see_the_average(hmm):
    X, y, X_dev, y_dev = hmm
    seen = []

    def callback(info, model):
        seen.append(model.transition_weights_.copy())

    crf = CRF(learning_rate="adagrad", random_state=0, max_iterations=4)
    crf.fit(X, y, callback=callback)
    assert len(seen) == 4
    # The last epoch's weights are the model's (the average of epochs 3-4).
    np.testing.assert_array_equal(seen[-1], crf.transition_weights_)
    assert not np.allclose(seen[0], seen[-1])
    stopped = CRF(learning_rate="adagrad", random_state=0, early_stopping=True,
                  n_iter_no_change=2, max_iterations=30).fit(X, y, X_dev, y_dev)
    assert stopped.training_log_.best_iteration is not None


def test_adagrad_warm_start_and_partial_fit(hmm):
    X, y, *_ = hmm
    crf = CRF(learning_rate="adagrad", random_state=0, max_iterations=2, warm_start=True)
    first = crf.fit(X[:200], y[:200]).state_weights_.copy()
    crf.fit(X[200:], y[200:])
    assert crf.state_weights_.shape[0] >= first.shape[0]
    part = CRF(learning_rate="adagrad", random_state=0)
    part.partial_fit(X[:100], y[:100])
    part.partial_fit(X[100:200], y[100:200])
    assert _accuracy(part, X[:200], y[:200]) > 0.5


def test_pickles_without_learning_rate_still_load(hmm):
    import pickle

    X, y, X_test, _ = hmm
    crf = CRF(max_iterations=1, random_state=0).fit(X[:60], y[:60])
    state = crf.__getstate__() if hasattr(crf, "__getstate__") else dict(crf.__dict__)
    state = {k: v for k, v in dict(state).items() if k != "learning_rate"}
    old = CRF.__new__(CRF)
    old.__setstate__(state)
    assert old.get_params()["learning_rate"] is None
    assert pickle.loads(pickle.dumps(old)).predict(X_test) == crf.predict(X_test)


@pytest.mark.parametrize("params, match", [
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"learning_rate": 1.0}, "learning_rate"),
    ({"learning_rate": "adagrad", "c1": 0.1}, "learning_rate='adagrad'.*c1"),
    ({"learning_rate": "adagrad", "algorithm": "lbfgs"}, "learning_rate='adagrad'.*asgd"),
    ({"learning_rate": "adagrad", "algorithm": "l2sgd"}, "learning_rate='adagrad'.*asgd"),
])
def test_bad_learning_rate_is_a_value_error_naming_it(hmm, params, match):
    X, y, *_ = hmm
    with pytest.raises(ValueError, match=match):
        CRF(**params).fit(X[:50], y[:50])
