"""The dense API with per-position transitions, (B, T, K, K), against brute-force
enumeration of every label path; finite differences for the gradients; constraints;
thread counts bitwise; input checks."""

import numpy as np
import pytest
from brute_force import enumerate_positions

import fastcrf


def problem(rng, B=3, T=4, K=3, scale=1.0):
    em = rng.normal(size=(B, T, K)) * scale
    trans4 = rng.normal(size=(B, T, K, K)) * scale
    start, end = rng.normal(size=K), rng.normal(size=K)
    lengths = np.array([T, T - 1, 1][:B])
    tags = rng.integers(0, K, size=(B, T))
    return em, trans4, start, end, lengths, tags


@pytest.mark.parametrize("seed", range(4))
def test_per_position_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    em, trans4, start, end, lengths, tags = problem(rng, scale=2.0)
    logz = fastcrf.log_partition(em, trans4, start, end, lengths)
    marg = fastcrf.marginals(em, trans4, start, end, lengths)
    pair = fastcrf.edge_marginals(em, trans4, start, end, lengths)
    ll = fastcrf.log_likelihood(em, tags, trans4, start, end, lengths)
    paths, best = fastcrf.viterbi(em, trans4, start, end, lengths)
    scores = fastcrf.path_score(em, tags, trans4, start, end, lengths)
    for b, n in enumerate(lengths):
        z, node, pr, path, top, score = enumerate_positions(em[b, :n], trans4[b, :n],
                                                           start, end)
        np.testing.assert_allclose(logz[b], z, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(marg[b, :n], node, atol=1e-12)
        assert np.all(marg[b, n:] == 0)
        np.testing.assert_allclose(pair[b, : n - 1], pr[1:], atol=1e-12)
        np.testing.assert_allclose(ll[b], score(tags[b, :n]) - z, atol=1e-11)
        np.testing.assert_allclose(scores[b], score(tags[b, :n]), atol=1e-12)
        assert paths[b, :n].tolist() == path
        assert np.all(paths[b, n:] == -1)
        np.testing.assert_allclose(best[b], top, atol=1e-12)


def test_shared_matrix_everywhere_equals_the_k_by_k_api(rng):
    # (B, T, K, K) holding the same (K, K) at every position is the ordinary chain.
    em, _, start, end, lengths, tags = problem(rng)
    trans = rng.normal(size=(3, 3))
    trans4 = np.broadcast_to(trans, (3, 4, 3, 3))
    np.testing.assert_allclose(fastcrf.log_partition(em, trans4, start, end, lengths),
                               fastcrf.log_partition(em, trans, start, end, lengths),
                               rtol=1e-13)
    np.testing.assert_allclose(fastcrf.marginals(em, trans4, start, end, lengths),
                               fastcrf.marginals(em, trans, start, end, lengths), atol=1e-13)
    assert np.array_equal(fastcrf.viterbi(em, trans4, start, end, lengths)[0],
                          fastcrf.viterbi(em, trans, start, end, lengths)[0])
    _, g4 = fastcrf.log_likelihood(em, tags, trans4, start, end, lengths, return_grad=True)
    _, g = fastcrf.log_likelihood(em, tags, trans, start, end, lengths, return_grad=True)
    np.testing.assert_allclose(g4.transitions.sum(axis=(0, 1)), g.transitions, atol=1e-12)
    np.testing.assert_allclose(g4.emissions, g.emissions, atol=1e-12)
    np.testing.assert_allclose(g4.start, g.start, atol=1e-12)
    np.testing.assert_allclose(g4.end, g.end, atol=1e-12)


def test_gradients_match_finite_differences(rng):
    em, trans4, start, end, lengths, tags = problem(rng)
    _, g = fastcrf.log_likelihood(em, tags, trans4, start, end, lengths, return_grad=True)

    def total(em_, tr_, st_, en_):
        return float(fastcrf.log_likelihood(em_, tags, tr_, st_, en_, lengths).sum())

    h = 1e-6
    args = [em, trans4, start, end]
    for which, grad in enumerate([g.emissions, g.transitions, g.start, g.end]):
        x = args[which]
        for idx in np.ndindex(x.shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[which][idx] += h
            minus[which][idx] -= h
            fd = (total(*plus) - total(*minus)) / (2 * h)
            assert abs(fd - grad[idx]) < 1e-6, (which, idx, fd, grad[idx])


def test_constraints_respected(rng):
    em, trans4, start, end, lengths, _ = problem(rng)
    K = 3
    allowed = np.ones((K, K), bool)
    allowed[0, 1] = allowed[2, 2] = False
    paths, _ = fastcrf.viterbi(em, trans4, start, end, lengths, allowed=allowed)
    pair = fastcrf.edge_marginals(em, trans4, start, end, lengths, allowed=allowed)
    assert np.all(pair[:, :, 0, 1] == 0) and np.all(pair[:, :, 2, 2] == 0)
    masked = np.where(allowed, trans4, -np.inf)
    for b, n in enumerate(lengths):
        _, node, _, path, _, _ = enumerate_positions(em[b, :n], masked[b, :n], start, end)
        assert paths[b, :n].tolist() == path
        np.testing.assert_allclose(
            fastcrf.marginals(em, trans4, start, end, lengths, allowed=allowed)[b, :n],
            node, atol=1e-12)
    # -inf given directly in the per-position scores is "impossible" too.
    trans4[:, 1:, :, 0] = -np.inf
    paths, _ = fastcrf.viterbi(em, trans4, start, end, lengths)
    for b, n in enumerate(lengths):
        assert np.all(paths[b, 1:n] != 0)
    trans4[:, 1:] = -np.inf
    with pytest.raises(ValueError, match="no possible label path"):
        fastcrf.log_partition(em, trans4, start, end, lengths)


def test_padding_is_ignored_and_threads_bitwise(rng):
    em, trans4, start, end, lengths, tags = problem(rng, B=9, T=5)
    lengths = rng.integers(0, 6, size=9)
    ref = fastcrf.log_likelihood(em, tags, trans4, start, end, lengths, return_grad=True,
                                 n_jobs=1)
    em2, tr2 = em.copy(), trans4.copy()
    for b, n in enumerate(lengths):
        em2[b, n:] = np.nan
        tr2[b, n:] = np.nan
        tr2[b, 0] = np.nan
    out = fastcrf.log_likelihood(em2, tags, tr2, start, end, lengths, return_grad=True,
                                 n_jobs=2)
    assert np.array_equal(ref[0], out[0])
    for a, b in zip(ref[1], out[1]):
        assert np.array_equal(a, b)
    assert np.array_equal(fastcrf.viterbi(em, trans4, start, end, lengths, n_jobs=1)[0],
                          fastcrf.viterbi(em2, tr2, start, end, lengths, n_jobs=2)[0])


def test_float32_matches_float64(rng):
    em, trans4, start, end, lengths, tags = problem(rng)
    ll64 = fastcrf.log_likelihood(em, tags, trans4, start, end, lengths)
    ll32 = fastcrf.log_likelihood(em.astype(np.float32), tags, trans4, start, end, lengths)
    assert ll32.dtype == np.float32
    np.testing.assert_allclose(ll32, ll64, rtol=1e-5)


def test_bad_per_position_input(rng):
    em, trans4, start, end, lengths, tags = problem(rng)
    with pytest.raises(ValueError, match="transitions must have shape"):
        fastcrf.log_partition(em, trans4[:, :2], start, end, lengths)
    bad = trans4.copy()
    bad[0, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="transitions contains NaN"):
        fastcrf.marginals(em, bad, start, end, lengths)
    with pytest.raises(ValueError, match="k must be >= 1"):
        fastcrf.viterbi(em, trans4, start, end, lengths, k=0)
    with pytest.raises(ValueError, match="label_mask"):
        fastcrf.log_likelihood(em, tags, trans4, start, end, lengths,
                               label_mask=np.ones(em.shape, bool))
