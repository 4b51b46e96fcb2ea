"""Forward-backward kernels against brute-force enumeration of all K**T paths."""

import numpy as np
import pytest
from brute_force import enumerate_chain, path_score
from helpers import make_problem

import fastcrf

TINY_SHAPES = [(1, 1), (1, 6), (2, 5), (3, 4), (4, 3), (4, 6)]  # (K, T)


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("K,T", TINY_SHAPES)
@pytest.mark.parametrize("scale", [1.0, 300.0], ids=["scaled", "log-space-fallback"])
def test_everything_matches_brute_force(K, T, scale, dtype):
    rng = np.random.default_rng(K * 100 + T)
    B = 6
    em, tags, trans, start, end, lengths = make_problem(rng, B, T, K, scale=scale, dtype=dtype)
    # Oracles see exactly the numbers the kernels see.
    em64 = em.astype(np.float64)
    tol = _tol(dtype) if scale == 1.0 else dict(rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-9)

    logz = fastcrf.log_partition(em, trans, start, end, lengths)
    marg = fastcrf.marginals(em, trans, start, end, lengths)
    ll, grads = fastcrf.log_likelihood(em, tags, trans, start, end, lengths, return_grad=True)
    ll_only = fastcrf.log_likelihood(em, tags, trans, start, end, lengths)
    scores = fastcrf.path_score(em, tags, trans, start, end, lengths)
    assert logz.dtype == marg.dtype == ll.dtype == grads.emissions.dtype == dtype

    want_trans = np.zeros((K, K))
    want_start = np.zeros(K)
    want_end = np.zeros(K)
    for b in range(B):
        n = lengths[b]
        z, node, edge, _, _ = enumerate_chain(em64[b, :n], trans, start, end)
        np.testing.assert_allclose(logz[b], z, **tol)
        np.testing.assert_allclose(marg[b, :n], node, **tol)
        assert not marg[b, n:].any()
        y = tags[b, :n]
        s = path_score(em64[b, :n], y, trans, start, end) if n else 0.0
        np.testing.assert_allclose(scores[b], s, **tol)
        np.testing.assert_allclose(ll[b], s - z, **tol)
        np.testing.assert_allclose(ll_only[b], ll[b], **tol)
        onehot = np.eye(K)[y]
        np.testing.assert_allclose(grads.emissions[b, :n], onehot - node, **tol)
        assert not grads.emissions[b, n:].any()
        if n:
            want_start += np.eye(K)[y[0]] - node[0]
            want_end += np.eye(K)[y[-1]] - node[-1]
            np.add.at(want_trans, (y[:-1], y[1:]), 1.0)
            want_trans -= edge
    np.testing.assert_allclose(grads.transitions, want_trans, **tol)
    np.testing.assert_allclose(grads.start, want_start, **tol)
    np.testing.assert_allclose(grads.end, want_end, **tol)


def test_gradients_match_finite_differences(rng):
    B, T, K = 4, 5, 3
    em, tags, trans, start, end, lengths = make_problem(rng, B, T, K)
    params = {"emissions": em, "transitions": trans, "start": start, "end": end}

    def total(p):
        return fastcrf.log_likelihood(p["emissions"], tags, p["transitions"], p["start"],
                                      p["end"], lengths).sum()

    _, grads = fastcrf.log_likelihood(em, tags, trans, start, end, lengths, return_grad=True)
    eps = 1e-6
    for name, arr in params.items():
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            numeric[idx] = (total({**params, name: plus}) - total({**params, name: minus})) / (
                2 * eps)
        np.testing.assert_allclose(getattr(grads, name), numeric, rtol=1e-6, atol=1e-7,
                                   err_msg=name)


def test_float32_matches_float64(rng):
    em, tags, trans, start, end, lengths = make_problem(rng, 16, 40, 7, scale=2.0)
    em32 = em.astype(np.float32)
    em64 = em32.astype(np.float64)  # the same numbers, so differences are arithmetic only
    ll32, g32 = fastcrf.log_likelihood(em32, tags, trans, start, end, lengths, return_grad=True)
    ll64, g64 = fastcrf.log_likelihood(em64, tags, trans, start, end, lengths, return_grad=True)
    assert ll32.dtype == np.float32 and ll64.dtype == np.float64
    np.testing.assert_allclose(ll32, ll64, rtol=1e-5, atol=1e-4)
    for a, b in zip(g32, g64):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        fastcrf.marginals(em32, trans, start, end, lengths),
        fastcrf.marginals(em64, trans, start, end, lengths), atol=1e-6)
    p32, s32 = fastcrf.viterbi(em32, trans, start, end, lengths)
    p64, s64 = fastcrf.viterbi(em64, trans, start, end, lengths)
    np.testing.assert_array_equal(p32, p64)
    np.testing.assert_allclose(s32, s64, rtol=1e-6)


def _reference_log_partition(em, trans, start, end):
    """Plain numpy forward algorithm in log space (max-subtracted log-sum-exp)."""
    a = start + em[0]
    for t in range(1, len(em)):
        x = a[:, None] + trans
        m = x.max(axis=0)
        a = em[t] + m + np.log(np.exp(x - m).sum(axis=0))
    x = a + end
    return x.max() + np.log(np.exp(x - x.max()).sum())


def test_long_sequence_with_huge_scores_stays_finite_and_consistent():
    rng = np.random.default_rng(7)
    T, K = 100_000, 5
    em = rng.uniform(-1e3, 1e3, size=(1, T, K))
    trans = rng.uniform(-1e3, 1e3, size=(K, K))
    start = rng.uniform(-1e3, 1e3, size=K)
    end = rng.uniform(-1e3, 1e3, size=K)
    tags = rng.integers(0, K, size=(1, T))

    logz = fastcrf.log_partition(em, trans, start, end)
    ll, g = fastcrf.log_likelihood(em, tags, trans, start, end, return_grad=True)
    marg = fastcrf.marginals(em, trans, start, end)
    path, best = fastcrf.viterbi(em, trans, start, end)

    for arr in (logz, ll, marg, best, *g):
        assert np.isfinite(arr).all()
    np.testing.assert_allclose(logz[0], _reference_log_partition(em[0], trans, start, end),
                               rtol=1e-12)
    np.testing.assert_allclose(marg.sum(axis=2), 1.0, atol=1e-9)
    assert ll[0] <= 0.0
    # The best path's score is its own log-likelihood plus log Z, and cannot exceed log Z.
    np.testing.assert_allclose(
        fastcrf.path_score(em, path, trans, start, end), best, rtol=1e-12)
    assert best[0] <= logz[0] + 1e-6 * abs(logz[0])
    # Expected counts add up: every position has one label, every step one transition.
    np.testing.assert_allclose(g.emissions.sum(), 0.0, atol=1e-6)
    np.testing.assert_allclose(g.transitions.sum(), 0.0, atol=1e-6)


def test_long_sequence_moderate_scores_matches_reference():
    rng = np.random.default_rng(8)
    T, K = 20_000, 6
    em = rng.standard_normal((1, T, K)) * 3
    trans = rng.standard_normal((K, K))
    logz = fastcrf.log_partition(em, trans)
    np.testing.assert_allclose(
        logz[0], _reference_log_partition(em[0], trans, np.zeros(K), np.zeros(K)), rtol=1e-12)


def test_mixed_batch_of_easy_and_extreme_sequences_matches_per_sequence_results(rng):
    em, tags, trans, start, end, lengths = make_problem(rng, 9, 6, 3)
    em[::3] *= 500  # every third sequence needs the log-space fallback
    ll, g = fastcrf.log_likelihood(em, tags, trans, start, end, lengths, return_grad=True)
    for b in range(9):
        one, g1 = fastcrf.log_likelihood(em[b:b + 1], tags[b:b + 1], trans, start, end,
                                         lengths[b:b + 1], return_grad=True)
        np.testing.assert_allclose(ll[b], one[0], rtol=1e-12)
        np.testing.assert_allclose(g.emissions[b], g1.emissions[0], atol=1e-12)


def test_empty_batch_and_zero_length():
    trans = np.zeros((3, 3))
    assert fastcrf.log_partition(np.zeros((0, 4, 3)), trans).shape == (0,)
    assert fastcrf.log_partition(np.zeros((2, 0, 3)), trans).tolist() == [0.0, 0.0]
    paths, scores = fastcrf.viterbi(np.zeros((2, 0, 3)), trans)
    assert paths.shape == (2, 0) and scores.tolist() == [0.0, 0.0]
    ll, g = fastcrf.log_likelihood(np.ones((1, 3, 3)), np.full((1, 3), -1), trans,
                                   lengths=[0], return_grad=True)
    assert ll.tolist() == [0.0] and not g.emissions.any() and not g.transitions.any()


def test_uniform_scores_give_closed_form():
    # All-zero scores: Z = K**T and every marginal is 1/K.
    B, T, K = 3, 7, 4
    logz = fastcrf.log_partition(np.zeros((B, T, K)), np.zeros((K, K)))
    np.testing.assert_allclose(logz, T * np.log(K))
    np.testing.assert_allclose(fastcrf.marginals(np.zeros((B, T, K)), np.zeros((K, K))), 1 / K)


def test_inputs_are_not_modified(rng):
    em, tags, trans, start, end, lengths = make_problem(rng, 3, 4, 3)
    copies = [a.copy() for a in (em, tags, trans, start, end, lengths)]
    fastcrf.log_likelihood(em, tags, trans, start, end, lengths, return_grad=True)
    fastcrf.viterbi(em, trans, start, end, lengths, allowed=np.ones((3, 3), bool))
    for a, b in zip((em, tags, trans, start, end, lengths), copies):
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_and_integer_inputs(rng):
    em, tags, trans, start, end, lengths = make_problem(rng, 4, 5, 3, ragged=False)
    em_f = np.asfortranarray(em)
    np.testing.assert_allclose(fastcrf.log_partition(em_f, trans.T.copy().T),
                               fastcrf.log_partition(em, trans))
    ints = rng.integers(-3, 3, size=(2, 3, 2))
    np.testing.assert_allclose(fastcrf.log_partition(ints, np.zeros((2, 2), dtype=int)),
                               fastcrf.log_partition(ints.astype(float), np.zeros((2, 2))))


# Found in review: transitions spanning more than ~709 underflow exp(trans - max), and
# mass lost at one step can come to dominate later.  The loss bound must catch it.
WIDE_RANGE_CASES = [
    # (emissions (T, K), transitions, start, end)
    (np.array([[0.0, -800.0], [0, 0], [0, 0], [0, 0], [0, 0]]),
     np.array([[-300.0, -1000.0], [-1000.0, 0.0]]), np.zeros(2), np.zeros(2)),
    (np.zeros((7, 2)), np.array([[-300.0, -2000.0], [-2000.0, 0.0]]),
     np.array([0.0, -800.0]), np.array([0.0, -800.0])),
    # A start score that alone would underflow, rescued by a huge emission.
    (np.array([[0.0, 800.0], [0, 0], [0, 0]]), np.zeros((2, 2)),
     np.array([0.0, -800.0]), np.zeros(2)),
]


@pytest.mark.parametrize("case", range(len(WIDE_RANGE_CASES)))
def test_wide_score_ranges_match_brute_force(case):
    em, trans, start, end = WIDE_RANGE_CASES[case]
    T, K = em.shape
    tags = np.ones((1, T), dtype=int)
    z, node, edge, _, _ = enumerate_chain(em, trans, start, end)
    logz = fastcrf.log_partition(em[None], trans, start, end)
    ll, g = fastcrf.log_likelihood(em[None], tags, trans, start, end, return_grad=True)
    ll_only = fastcrf.log_likelihood(em[None], tags, trans, start, end)
    np.testing.assert_allclose(logz[0], z, rtol=1e-12)
    np.testing.assert_allclose(ll[0], path_score(em, tags[0], trans, start, end) - z,
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ll_only, ll, rtol=1e-12)
    np.testing.assert_allclose(fastcrf.marginals(em[None], trans, start, end)[0], node,
                               atol=1e-12)
    counts = np.zeros((K, K))
    np.add.at(counts, (tags[0, :-1], tags[0, 1:]), 1.0)
    np.testing.assert_allclose(g.transitions, counts - edge, atol=1e-9)


@pytest.mark.parametrize("scale", [100.0, 300.0, 1000.0])
def test_random_wide_transitions_match_brute_force(scale):
    rng = np.random.default_rng(int(scale))
    for _ in range(30):
        K, T = int(rng.integers(2, 4)), int(rng.integers(1, 6))
        em = rng.standard_normal((T, K)) * scale
        trans = rng.standard_normal((K, K)) * scale
        start, end = rng.standard_normal(K) * scale, rng.standard_normal(K) * scale
        z, node, _, _, _ = enumerate_chain(em, trans, start, end)
        np.testing.assert_allclose(fastcrf.log_partition(em[None], trans, start, end)[0], z,
                                   rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(fastcrf.marginals(em[None], trans, start, end)[0], node,
                                   atol=1e-9)


def test_large_offsets_keep_log_partition_accurate():
    # Offsets of +-1e6 that cancel between emissions and transitions: summing them step
    # by step (compensated) keeps log Z accurate, where adding (T-1) * max(trans) first
    # lost ~1e-4.
    rng = np.random.default_rng(5)
    T, K = 10_000, 3
    em = rng.standard_normal((1, T, K)) - 1e6
    trans = rng.standard_normal((K, K)) + 1e6
    want = _reference_log_partition(em[0] + 1e6, trans - 1e6, np.zeros(K), np.zeros(K))
    got = fastcrf.log_partition(em, trans)[0] + 1e6  # T offsets of -1e6, T-1 of +1e6
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
