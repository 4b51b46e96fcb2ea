"""The sparse-feature kernels against the dense API, finite differences and a naive
reference implementation of the averaged SGD step."""

import numpy as np
import pytest

import fastcrf
from fastcrf._kernels import _core, _prep, _sparse
from fastcrf._encoding import EncodedSequences
from fastcrf._layout import StateLayout, dense_kernel_args
from fastcrf._train.sgd import SGDSettings, _State
from fastcrf._training import TrainingData, Weights, log_likelihood
from brute_force import enumerate_chain, path_score
from helpers import run_epoch, sgd_engine_call


def random_data(rng, n_seq=7, K=4, A=9, max_len=6, max_feats=4):
    """Random encoded sequences with repeated attributes and real values."""
    lengths = rng.integers(1, max_len + 1, size=n_seq)
    n_tok = int(lengths.sum())
    per_tok = rng.integers(0, max_feats + 1, size=n_tok)
    ids = rng.integers(0, A, size=int(per_tok.sum())).astype(np.int32)
    vals = rng.choice([1.0, 0.5, -2.0, 3.0], size=len(ids))
    token_offsets = np.concatenate(([0], np.cumsum(per_tok))).astype(np.int64)
    enc = EncodedSequences(ids, vals, token_offsets,
                           np.concatenate(([0], np.cumsum(lengths))).astype(np.int64), A)
    labels = rng.integers(0, K, size=n_tok)
    return TrainingData.build(enc, labels, K)


def random_weights(rng, A, K, scale=1.0):
    return Weights(rng.normal(scale=scale, size=(A, K)), rng.normal(scale=scale, size=(K, K)),
                   rng.normal(scale=scale, size=K), rng.normal(scale=scale, size=K))


def dense_emissions(data, weights):
    """(B, T, K) emissions of the encoded batch, built in numpy."""
    f = data.features
    B, T, K = f.n_sequences, data.max_length, data.n_labels
    em = np.zeros((B, T, K))
    tags = np.zeros((B, T), dtype=np.int64)
    for s in range(B):
        for t, tok in enumerate(range(f.seq_offsets[s], f.seq_offsets[s + 1])):
            lo, hi = f.token_offsets[tok], f.token_offsets[tok + 1]
            em[s, t] = f.values[lo:hi] @ weights.state[f.attr_ids[lo:hi]]
            tags[s, t] = data.labels[tok]
    return em, tags, f.lengths


@pytest.mark.parametrize("seed", range(4))
def test_log_likelihood_and_gradient_match_dense_api(seed):
    rng = np.random.default_rng(seed)
    data = random_data(rng)
    w = random_weights(rng, data.features.n_attributes, data.n_labels)
    ll, grad = log_likelihood(data, w, n_jobs=1)
    em, tags, lengths = dense_emissions(data, w)
    ll_dense, g = fastcrf.log_likelihood(em, tags, w.transitions, w.start, w.end, lengths,
                                         return_grad=True)
    assert ll == pytest.approx(ll_dense.sum(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad.transitions, g.transitions, atol=1e-12)
    np.testing.assert_allclose(grad.start, g.start, atol=1e-12)
    np.testing.assert_allclose(grad.end, g.end, atol=1e-12)
    # Chain rule through emissions[s, t, k] = sum_e v_e W[a_e, k].
    f = data.features
    expected = np.zeros_like(w.state)
    for s in range(f.n_sequences):
        for t, tok in enumerate(range(f.seq_offsets[s], f.seq_offsets[s + 1])):
            for e in range(f.token_offsets[tok], f.token_offsets[tok + 1]):
                expected[f.attr_ids[e]] += f.values[e] * g.emissions[s, t]
    np.testing.assert_allclose(grad.state, expected, atol=1e-12)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(11)
    data = random_data(rng, n_seq=4, K=3, A=5)
    w = random_weights(rng, 5, 3, scale=0.5)
    _, grad = log_likelihood(data, w, n_jobs=1)
    flat = np.concatenate((w.state.ravel(), w.chain))
    g = np.concatenate((grad.state.ravel(), grad.chain))
    h = 1e-6
    for i in range(len(flat)):
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        f_up = log_likelihood(data, Weights.from_flat(up[:15].reshape(5, 3), up[15:]), 1,
                              with_gradient=False)[0]
        f_down = log_likelihood(data, Weights.from_flat(down[:15].reshape(5, 3), down[15:]),
                                1, with_gradient=False)[0]
        assert (f_up - f_down) / (2 * h) == pytest.approx(g[i], abs=1e-6)


def test_marginals_and_viterbi_match_dense_api():
    rng = np.random.default_rng(3)
    data = random_data(rng, n_seq=9)
    w = random_weights(rng, data.features.n_attributes, data.n_labels, scale=2.0)
    f = data.features
    K = data.n_labels
    marg = np.zeros((f.n_tokens, K))
    _sparse.forward_backward(dense_kernel_args(w.state), f.kernel_args(),
                             np.zeros(0, np.int64), w.transitions, w.start, w.end,
                             np.zeros(f.n_sequences), np.zeros(f.n_sequences),
                             marg, np.zeros((0, 0)), 2)
    em, _, lengths = dense_emissions(data, w)
    dense = fastcrf.marginals(em, w.transitions, w.start, w.end, lengths)
    paths = np.zeros(f.n_tokens, dtype=np.int64)
    _sparse.viterbi(dense_kernel_args(w.state), f.kernel_args(), w.transitions, w.start,
                    w.end, paths, np.zeros(f.n_sequences), 2)
    dense_paths, _ = fastcrf.viterbi(em, w.transitions, w.start, w.end, lengths)
    for s in range(f.n_sequences):
        lo, hi = f.seq_offsets[s], f.seq_offsets[s + 1]
        np.testing.assert_allclose(marg[lo:hi], dense[s, : hi - lo], atol=1e-12)
        np.testing.assert_array_equal(paths[lo:hi], dense_paths[s, : hi - lo])


def test_huge_feature_values_are_reported_not_propagated():
    rng = np.random.default_rng(0)
    data = random_data(rng)
    w = random_weights(rng, data.features.n_attributes, data.n_labels)
    w.state[:] = 1e200
    with pytest.raises(FloatingPointError, match="1e150"):
        log_likelihood(data, w, n_jobs=1)


def naive_sgd(data, order, eta0, lam, power, batch, avg_start, mask=None):
    """Minibatch (averaged) SGD written out densely: the reference for sgd_epoch.

    ``mask`` (A, K): 1 for the state weights that train, 0 for those fixed at 0."""
    A, K = data.features.n_attributes, data.n_labels
    w = Weights.zeros(A, K)
    avg = None
    f = data.features
    t = 0
    step = 0
    for pos in range(0, len(order), batch):
        idx = order[pos:pos + batch]
        sub = data.subset(idx)
        _, g = log_likelihood(sub, w, n_jobs=1)
        if mask is not None:
            g = Weights.from_flat(g.state * mask, g.chain)
        eta = eta0 / (1 + lam * eta0 * t) ** power
        nb = len(idx)
        state = (1 - eta * lam * nb) * w.state + eta * g.state
        chain = (1 - eta * lam * nb) * w.chain + eta * g.chain
        w = Weights.from_flat(state, chain)
        step += 1
        t += nb
        if avg_start >= 0 and step > avg_start + 1:
            mu = 1.0 / (step - avg_start)
            avg = Weights.from_flat((1 - mu) * avg.state + mu * w.state,
                                    (1 - mu) * avg.chain + mu * w.chain)
        else:
            avg = Weights.from_flat(w.state.copy(), w.chain.copy())
    del f
    return w, avg


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("avg_start", [-1.0, 0.0, 2.0])
def test_sgd_epoch_matches_naive_averaged_sgd(batch, avg_start):
    rng = np.random.default_rng(5)
    data = random_data(rng, n_seq=11)
    order = rng.permutation(data.n_sequences)
    K = data.n_labels
    eta0, lam = 0.3, 0.05
    state = _State(StateLayout.dense(data.features.n_attributes, K))
    losses = run_epoch(state, data, order, eta0=eta0, lam=lam, avg_start=avg_start,
                       n_threads=2, batch_size=batch, power=0.75)
    assert np.isfinite(losses).all()
    w_ref, avg_ref = naive_sgd(data, order, eta0, lam, 0.75, batch, avg_start)
    it = state.iterate()
    np.testing.assert_allclose(it.state, w_ref.state, atol=1e-10)
    np.testing.assert_allclose(it.chain, w_ref.chain, atol=1e-10)
    if avg_start >= 0 and state.scalars[4] > avg_start + 1:
        avg = state.average()
        np.testing.assert_allclose(avg.state, avg_ref.state, atol=1e-10)
        np.testing.assert_allclose(avg.chain, avg_ref.chain, atol=1e-10)


def _layout_epoch_matches_naive_sgd(data, layout, order, batch_size, n_threads):
    # One engine epoch over a restricted layout against dense SGD with the gradient
    # masked to the layout's pairs; returns the engine's state.
    state = _State(layout)
    run_epoch(state, data, order, eta0=0.3, lam=0.05, avg_start=1.0, n_threads=n_threads,
              batch_size=batch_size)
    w_ref, avg_ref = naive_sgd(data, order, 0.3, 0.05, 0.75, batch_size, 1.0,
                               mask=layout.mask())
    np.testing.assert_allclose(state.iterate().state, w_ref.state, atol=1e-10)
    np.testing.assert_allclose(state.average().state, avg_ref.state, atol=1e-10)
    np.testing.assert_allclose(state.average().chain, avg_ref.chain, atol=1e-10)
    return state


@pytest.mark.parametrize("n_dense", [0, 4, 9])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("K", [3, 4, 6, 9])
def test_sgd_epoch_with_a_partial_layout_matches_masked_naive_sgd(n_dense, n_threads, K):
    # Tail attributes (ids >= n_dense) keep only the labels they were seen with: the
    # same as dense SGD whose gradient is masked to those pairs.  K = 3, 6, 9: dense
    # rows are padded to whole 4-double vectors.
    rng = np.random.default_rng(11)
    data = random_data(rng, n_seq=13, K=K)
    layout = StateLayout.build(data, n_dense)
    order = rng.permutation(data.n_sequences)
    state = _layout_epoch_matches_naive_sgd(data, layout, order, 2, n_threads)
    assert np.all(state.average().state[layout.mask() == 0] == 0.0)


def test_sgd_epoch_survives_many_scale_folds():
    # lambda * eta summed over 1000 steps is ~26: the scale factor crosses its fold
    # threshold (1e-4, i.e. every ~9.2) twice, mid-epoch, with averaging on.
    rng = np.random.default_rng(8)
    data = random_data(rng, n_seq=40)
    order = np.tile(rng.permutation(data.n_sequences), 25)
    K = data.n_labels
    state = _State(StateLayout.dense(data.features.n_attributes, K))
    run_epoch(state, data, order, eta0=0.04, lam=5.0, avg_start=3.0, n_threads=1,
              batch_size=1, power=0.5)
    w_ref, avg_ref = naive_sgd(data, order, 0.04, 5.0, 0.5, 1, 3.0)
    decay = np.prod([1 - 0.04 / (1 + 0.2 * t) ** 0.5 * 5.0 for t in range(len(order))])
    assert decay < 1e-8
    np.testing.assert_allclose(state.iterate().state, w_ref.state, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(state.average().state, avg_ref.state, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(state.average().chain, avg_ref.chain, rtol=1e-9, atol=1e-12)


def test_unit_values_may_be_left_out():
    # An empty values array means "all 1.0": same results, less memory.
    from dataclasses import replace

    from fastcrf._training import drop_unit_values

    rng = np.random.default_rng(9)
    data = random_data(rng, n_seq=12)
    ones = replace(data.features, values=np.ones(len(data.features.attr_ids)))
    full = TrainingData.build(ones, data.labels, data.n_labels)
    assert len(full.features.values) == 0  # build drops them
    kept = TrainingData(ones, data.labels, data.n_labels, data.max_length)
    w = random_weights(rng, data.features.n_attributes, data.n_labels)
    ll_a, g_a = log_likelihood(full, w, n_jobs=2)
    ll_b, g_b = log_likelihood(kept, w, n_jobs=2)
    assert ll_a == ll_b
    np.testing.assert_array_equal(g_a.state, g_b.state)
    K = data.n_labels
    states = []
    for d in (full, kept):
        state = _State(StateLayout.dense(data.features.n_attributes, K))
        run_epoch(state, d, np.arange(12), eta0=0.1, lam=0.01, avg_start=1.0, n_threads=2,
                  batch_size=2)
        states.append(state.average().state)
    np.testing.assert_array_equal(states[0], states[1])
    assert drop_unit_values(data.features) is data.features  # real values are kept


# The SGD trainer splits the state weights into two parts, by blocks of 64 attribute
# ids (_prep.balanced_parts, split_parts): the tests above use fewer than 64
# attributes, so they exercise part 0 only.  These use enough for both.

@pytest.mark.parametrize("K", [3, 22, 27, 30])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_sgd_epoch_over_both_weight_parts_matches_masked_naive_sgd(K, n_threads):
    # K = 22, 27, 30: label rows of 24, 28 and 32 doubles, i.e. every register-block
    # width of the padded chain kernels (_padded.h) and the emission rows (_rows.h).
    rng = np.random.default_rng(21)
    data = random_data(rng, n_seq=13, K=K, A=70, max_feats=9)
    layout = StateLayout.build(data, 40)
    order = rng.permutation(data.n_sequences)
    _layout_epoch_matches_naive_sgd(data, layout, order, 3, n_threads)


@pytest.mark.parametrize("lam1", [0.0, 0.02], ids=["l2", "elastic-net"])
def test_sgd_epoch_is_bitwise_identical_for_any_thread_count(lam1):
    rng = np.random.default_rng(4)
    data = random_data(rng, n_seq=60, K=22, A=200, max_len=12, max_feats=12)
    layout = StateLayout.build(data, 90)
    order = np.tile(rng.permutation(data.n_sequences), 2)
    K = data.n_labels
    names = ("U", "Uhat", "V", "Vhat", "scalars") + (
        ("qU", "qV", "l1_stamp") if lam1 > 0 else ())
    runs = []
    for n_threads in (1, 2, 3):
        state = _State(layout, l1=lam1 > 0)
        losses = run_epoch(state, data, order, eta0=0.2, lam=0.01, avg_start=4.0,
                           chain_mask=np.ones(K * K + 2 * K), n_threads=n_threads,
                           lam1=lam1, batch_size=5)
        runs.append([losses] + [getattr(state, name) for name in names])
    if lam1 > 0:
        assert (runs[0][1] == 0).mean() > 0.1   # the penalty clipped weights
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("lam1", [0.0, 0.03], ids=["l2", "elastic-net"])
def test_an_epoch_in_slices_equals_one_pass(lam1):
    # _epoch runs SLICES compiled calls and folds the scale only after the last: the
    # result must be that of one call over the whole order, to the bit.  With L1 the
    # cumulative penalty rides in scalars[5] from one call to the next.
    rng = np.random.default_rng(6)
    data = random_data(rng, n_seq=90, K=6, A=120, max_len=9, max_feats=7)
    layout = StateLayout.build(data, 60)
    order = np.concatenate([rng.permutation(data.n_sequences) for _ in range(2)])
    K = data.n_labels
    mask = np.ones(K * K + 2 * K)
    power = SGDSettings().power
    l1 = lam1 > 0
    sliced = _State(layout, l1=l1)
    losses = run_epoch(sliced, data, order, eta0=0.2, lam=0.01, avg_start=10.0,
                       chain_mask=mask, n_threads=1, batch_size=3, power=power, lam1=lam1)
    whole = _State(layout, l1=l1)
    status, one = sgd_engine_call(whole, data, order, eta0=0.2, lam=0.01, avg_start=10.0,
                                  batch_size=3, power=power, chain_mask=mask, n_threads=1,
                                  lam1=lam1)
    assert status == 0
    np.testing.assert_array_equal(losses, one)
    names = ("U", "Uhat", "V", "Vhat", "scalars") + (("qU", "qV", "l1_stamp") if l1 else ())
    for name in names:
        np.testing.assert_array_equal(getattr(sliced, name), getattr(whole, name))
    assert (sliced.scalars[5] > 0) == l1


def test_trainer_weights_start_on_a_cache_line():
    # The two weight parts of the SGD engine are made of blocks of 64 (2**BLOCK_SHIFT)
    # consecutive attribute ids; blocks are whole cache lines only if the weights
    # start on one.
    rng = np.random.default_rng(5)
    for A in (7, 50, 333):
        data = random_data(rng, n_seq=10, K=5, A=A, max_len=6, max_feats=5)
        state = _State(StateLayout.build(data, A // 2))
        for w in (state.U, state.Uhat):
            assert w.ctypes.data % 64 == 0
            assert w.shape == (state.layout.size,) and not w.any()


@pytest.mark.parametrize("K", [4, 7])
def test_sgd_epoch_with_extreme_scores_matches_naive_sgd(K):
    # Steps so large that the transition range passes RAW_EDGE_RANGE (300) and the
    # emission rows span thousands: the padded kernels hand such sequences to the
    # exact log-space ones, and the result must not change.
    rng = np.random.default_rng(13)
    data = random_data(rng, n_seq=16, K=K, A=40, max_len=8, max_feats=5)
    order = rng.permutation(data.n_sequences)
    state = _State(StateLayout.dense(data.features.n_attributes, K))
    losses = run_epoch(state, data, order, eta0=150.0, lam=1e-4, avg_start=-1.0,
                       n_threads=2, batch_size=1, power=0.0)
    assert np.isfinite(losses).all()
    w_ref, _ = naive_sgd(data, order, 150.0, 1e-4, 0.0, 1, -1.0)
    it = state.iterate()
    assert np.ptp(it.transitions) > 300
    scale = max(1.0, np.abs(w_ref.state).max())
    np.testing.assert_allclose(it.state, w_ref.state, rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(it.chain, w_ref.chain, rtol=1e-9, atol=1e-9 * scale)


def test_split_parts_groups_each_tokens_entries_by_part():
    rng = np.random.default_rng(6)
    per_tok = rng.integers(0, 90, size=50)
    per_tok[:3] = [0, 1, 200]   # empty, single, and longer than the sorted limit
    off = np.concatenate(([0], np.cumsum(per_tok))).astype(np.int64)
    ids = rng.integers(0, 300, size=off[-1]).astype(np.int32)
    vals = rng.normal(size=off[-1])
    new_ids, new_vals = ids.copy(), vals.copy()
    mid = np.empty(len(per_tok), dtype=np.int64)
    block_part = rng.integers(0, 2, size=5).astype(np.uint8)  # ids < 5 * 64
    _prep.split_parts(new_ids, new_vals, off, mid, block_part)
    part = block_part[ids >> 6]
    for t in range(len(per_tok)):
        lo, hi = off[t], off[t + 1]
        assert lo <= mid[t] <= hi
        got = list(zip(new_ids[lo:hi], new_vals[lo:hi]))
        first = [(a, v) for a, v, p in zip(ids[lo:hi], vals[lo:hi], part[lo:hi]) if p == 0]
        second = [(a, v) for a, v, p in zip(ids[lo:hi], vals[lo:hi], part[lo:hi]) if p == 1]
        # A part of at most 64 entries is sorted by id (stably), a longer one kept.
        if len(first) <= 64:
            first = sorted(first, key=lambda p: p[0])
        if len(second) <= 64:
            second = sorted(second, key=lambda p: p[0])
        assert got == first + second
        assert mid[t] - lo == len(first)
    # Values may be left out (all 1.0); threads split the tokens, not the result.
    ids2 = ids.copy()
    mid2 = np.empty_like(mid)
    _prep.split_parts(ids2, np.zeros(0), off, mid2, block_part, 3)
    np.testing.assert_array_equal(ids2, new_ids)
    np.testing.assert_array_equal(mid2, mid)
    with pytest.raises(ValueError, match="split_parts"):
        _prep.split_parts(ids.copy(), vals[:-1].copy(), off, mid, block_part)
    with pytest.raises(ValueError, match="no block"):
        _prep.split_parts(ids.copy(), vals.copy(), off, mid, block_part[:4])


def test_balanced_parts_share_the_entries_evenly():
    rng = np.random.default_rng(7)
    A = 64 * 40 + 5
    # Zipf-like ids, as the encoder numbers attributes by decreasing frequency.
    ids = np.minimum(rng.zipf(1.3, size=20000) - 1, A - 1).astype(np.int32)
    parts = _prep.balanced_parts(ids, A)
    assert parts.dtype == np.uint8 and parts.shape == (41,) and set(parts) == {0, 1}
    counts = np.bincount(ids >> 6, minlength=41)
    load = [counts[parts == p].sum() for p in (0, 1)]
    # Greedy in id order: the parts differ by at most the largest block after the first.
    assert abs(load[0] - load[1]) <= max(counts[0] - counts[1:].sum(), counts[1:].max())
    assert parts[0] == 0
    np.testing.assert_array_equal(parts, _prep.balanced_parts(ids, A))
    assert _prep.balanced_parts(np.zeros(0, dtype=np.int32), 0).shape == (0,)
    for bad in (A, -1):
        with pytest.raises(ValueError, match="balanced_parts"):
            _prep.balanced_parts(np.array([0, bad], dtype=np.int32), A)


def test_thread_choice_follows_the_measured_speed():
    from fastcrf._train.sgd import _ThreadChoice

    choice = _ThreadChoice(2)
    assert [choice.pick() for _ in range(1)] == [2]
    choice.record(2, 1.0, 100)
    assert choice.pick() == 1            # every option is measured once
    choice.record(1, 1.5, 100)
    picks = [choice.pick() for _ in range(64)]
    assert picks.count(1) == 2           # two threads faster: a probe every 32 slices
    choice.record(2, 4.0, 100)           # the machine got busy: 2.5 s per 100 now
    assert choice.pick() == 1            # no probe needed to see it
    picks = [choice.pick() for _ in range(16)]
    assert picks.count(2) == 2           # one thread chosen: a probe every 8 slices
    choice.record(1, 1.2, 100)           # within MARGIN of two threads' 1.0 ...
    choice.record(2, 1.0, 100)
    choice.record(2, 1.0, 100)
    assert choice.pick() == 2            # ... is not enough to prefer one thread
    assert _ThreadChoice(1).pick() == 1


def test_nan_scores_are_reported_not_propagated():
    # A NaN weight must fail the score check wherever it sits in the emission row.
    rng = np.random.default_rng(1)
    data = random_data(rng, n_seq=5, K=9, A=30)
    for k in range(9):
        w = random_weights(rng, data.features.n_attributes, data.n_labels)
        w.state[:, k] = np.nan
        with pytest.raises(FloatingPointError):
            log_likelihood(data, w, n_jobs=1)


def test_sgd_epoch_rejects_offsets_that_do_not_match():
    rng = np.random.default_rng(2)
    data = random_data(rng, n_seq=6, K=3, A=40)
    f = data.features
    K = data.n_labels
    state = _State(StateLayout.dense(f.n_attributes, K))
    bad_mid = f.token_offsets[1:] + 1     # past the end of every token
    def run(tok_mid, order, Tmax=data.max_length):
        sgd_engine_call(state, data, order, eta0=0.1, lam=0.01, avg_start=-1.0,
                        batch_size=2, power=0.75, tok_mid=tok_mid, max_length=Tmax,
                        n_threads=1)

    with pytest.raises(ValueError, match="tok_mid"):
        run(bad_mid, np.arange(6))
    good_mid = f.token_offsets[:-1].copy()   # every entry in part 1
    with pytest.raises(ValueError, match="order"):
        run(good_mid, [0, 6])
    with pytest.raises(ValueError, match="order"):
        run(good_mid, [-1])
    longest = int(np.argmax(np.diff(f.seq_offsets)))
    with pytest.raises(ValueError, match="Tmax"):
        run(good_mid, [longest], Tmax=data.max_length - 1)
    assert np.all(state.U == 0)  # nothing ran
    run(good_mid, [longest, 0])
    with pytest.raises(ValueError, match="decrease"):
        _prep.split_parts(f.attr_ids.copy(), np.zeros(0), f.token_offsets[::-1].copy(),
                            np.empty(len(f.token_offsets) - 1, dtype=np.int64),
                            np.zeros(1, dtype=np.uint8))


def test_split_leaves_shared_read_only_features_consistent():
    # Read-only ids with real values: both are copied, neither is reordered in place.
    rng = np.random.default_rng(3)
    data = random_data(rng, n_seq=8, K=3, A=60)
    f = data.features
    ids_before, vals_before = f.attr_ids.copy(), f.values.copy()
    f.attr_ids.flags.writeable = False
    K = data.n_labels
    run_epoch(_State(StateLayout.dense(f.n_attributes, K)), data, np.arange(8), eta0=0.1,
              lam=0.01, avg_start=1.0, n_threads=2, batch_size=2)
    np.testing.assert_array_equal(f.attr_ids, ids_before)
    np.testing.assert_array_equal(f.values, vals_before)
    assert data.features is not f


def test_compact_renumbers_the_present_attributes_in_order():
    rng = np.random.default_rng(8)
    data = random_data(rng, n_seq=7, K=3, A=500, max_feats=4)
    sample, used = data.subset([5, 1]).compact()
    ids = data.subset([5, 1]).features.attr_ids
    np.testing.assert_array_equal(used, np.unique(ids))
    assert sample.features.n_attributes == len(used) < 500
    assert sample.features.attr_ids.dtype == np.int32
    np.testing.assert_array_equal(used[sample.features.attr_ids], ids)
    # Its own arrays: the SGD trainer regroups them in place.
    assert not np.shares_memory(sample.features.attr_ids, data.features.attr_ids)


def _sparse_forward_backward(data, state_args, w, n_threads):
    f = data.features
    K = data.n_labels
    n_chunks = -(-f.n_sequences // _core.chunk_size())
    logz, score = np.zeros(f.n_sequences), np.zeros(f.n_sequences)
    marg, chunks = np.zeros((f.n_tokens, K)), np.zeros((n_chunks, K * K + 2 * K))
    status = _sparse.forward_backward(state_args, f.kernel_args(), data.labels,
                                      w.transitions, w.start, w.end, logz, score, marg,
                                      chunks, n_threads)
    return status, logz, score, marg, chunks


@pytest.mark.parametrize("K", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("scale", [0.5, 3.0, 40.0, 400.0])
@pytest.mark.parametrize("layout", ["dense", "padded"])
def test_forward_backward_matches_brute_force(K, scale, layout):
    # Moderate scales take the padded kernels (_padded.h), large emissions make them
    # decline a sequence, and transitions spread over more than RAW_EDGE_RANGE make the
    # whole chain take _core's exact kernels: every path must give the enumerated answer.
    rng = np.random.default_rng(K * 1000 + int(scale))
    data = random_data(rng, n_seq=11, K=K, A=6, max_len=5)
    w = random_weights(rng, 6, K, scale=scale)
    if layout == "dense":
        args = dense_kernel_args(w.state)
    else:
        L = StateLayout.dense(6, K)
        args = L.kernel_args(L.from_dense(w.state))
    status, logz, score, marg, chunks = _sparse_forward_backward(data, args, w, 1)
    assert status == 0
    em, _, lengths = dense_emissions(data, w)
    f = data.features
    expected = np.zeros(K * K + 2 * K)
    for s in range(f.n_sequences):
        lo, hi = f.seq_offsets[s], f.seq_offsets[s + 1]
        y = data.labels[lo:hi]
        z, node, edge, _, _ = enumerate_chain(em[s, : hi - lo], w.transitions, w.start, w.end)
        tol = 1e-9 * max(1.0, abs(z))
        assert logz[s] == pytest.approx(z, rel=1e-12, abs=tol)
        assert score[s] == pytest.approx(
            path_score(em[s, : hi - lo], y, w.transitions, w.start, w.end), rel=1e-12,
            abs=tol)
        np.testing.assert_allclose(marg[lo:hi], node, rtol=0, atol=1e-9)
        observed = np.zeros((K, K))
        np.add.at(observed, (y[:-1], y[1:]), 1.0)
        expected[: K * K] += (observed - edge).ravel()
        expected[K * K:K * K + K] += np.eye(K)[y[0]] - node[0]
        expected[K * K + K:] += np.eye(K)[y[-1]] - node[-1]
    np.testing.assert_allclose(chunks.sum(axis=0), expected, rtol=0, atol=1e-8)
    # Each sequence's results are its own: bitwise the same for any thread count.
    for n_threads in (2, 3):
        again = _sparse_forward_backward(data, args, w, n_threads)
        for a, b in zip((status, logz, score, marg, chunks), again):
            np.testing.assert_array_equal(a, b)
