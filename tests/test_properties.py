"""Property-based tests (hypothesis) of the dense API against brute-force enumeration
of every label path: random small shapes (B <= 3, T <= 4, K <= 3), random lengths,
scores from tiny to huge magnitudes; float32 against float64; results bitwise equal
for every thread count."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from brute_force import enumerate_chain, path_score  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import fastcrf  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)


@st.composite
def problems(draw, max_abs=None):
    """``(em, tags, trans, start, end, lengths, allowed)`` of a random small batch."""
    B = draw(st.integers(1, 3))
    T = draw(st.integers(1, 4))
    K = draw(st.integers(1, 3))
    bound = max_abs if max_abs is not None else \
        draw(st.sampled_from([1e-3, 1.0, 50.0, 1e4, 1e8]))
    # Every value from the bound's range, hypothesis's own edge cases (0, the bound,
    # subnormals) included.
    scores = st.floats(-bound, bound, allow_nan=False, allow_infinity=False)

    def arr(shape):
        return draw(hnp.arrays(np.float64, shape, elements=scores))

    em, trans, start, end = arr((B, T, K)), arr((K, K)), arr((K,)), arr((K,))
    lengths = np.array(draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    tags = np.array(draw(st.lists(st.lists(st.integers(0, K - 1), min_size=T, max_size=T),
                                  min_size=B, max_size=B))).reshape(B, T)
    tags[np.arange(T)[None, :] >= lengths[:, None]] = -1  # padding
    allowed = np.array(draw(st.lists(st.booleans(), min_size=K * K, max_size=K * K)))
    allowed = allowed.reshape(K, K) | np.eye(K, dtype=bool)  # a path always exists
    return em, tags, trans, start, end, lengths, allowed


def tolerance(em, trans, start, end, T, eps):
    """Absolute error allowed: a few ulps of the largest path score, per operation."""
    m = max(1.0, *(float(np.abs(a).max(initial=0.0)) for a in (em, trans, start, end)))
    return 64 * eps * m * (T + 2)


@SETTINGS
@given(problems())
def test_dense_api_matches_brute_force(problem):
    em, tags, trans, start, end, lengths, allowed = problem
    T = em.shape[1]
    atol = tolerance(em, trans, start, end, T, np.finfo(np.float64).eps)
    logz = fastcrf.log_partition(em, trans, start, end, lengths)
    marg = fastcrf.marginals(em, trans, start, end, lengths)
    ll = fastcrf.log_likelihood(em, tags, trans, start, end, lengths)
    paths, best = fastcrf.viterbi(em, trans, start, end, lengths)
    cpaths, cbest = fastcrf.viterbi(em, trans, start, end, lengths, allowed=allowed)
    for b, n in enumerate(lengths.tolist()):
        z, node, _, top_path, top = enumerate_chain(em[b, :n], trans, start, end)
        np.testing.assert_allclose(logz[b], z, rtol=0, atol=atol)
        # A marginal is exp(score - log Z): its error is about the error of that
        # difference, relative to the marginal.
        np.testing.assert_allclose(marg[b, :n], node, rtol=0, atol=min(1.0, 4 * atol) + 1e-12)
        assert not marg[b, n:].any()
        if n:
            np.testing.assert_allclose(marg[b, :n].sum(axis=1), 1.0, atol=1e-9)
        s = path_score(em[b, :n], tags[b, :n], trans, start, end) if n else 0.0
        np.testing.assert_allclose(ll[b], s - z, rtol=0, atol=2 * atol)
        assert ll[b] <= atol
        # Viterbi: the best score, and the path that scores it (CRFsuite's tie rule).
        np.testing.assert_allclose(best[b], top, rtol=0, atol=atol)
        assert paths[b, :n].tolist() == top_path
        assert (paths[b, n:] == -1).all() or n == T
        _, _, _, c_path, c_top = enumerate_chain(em[b, :n], trans, start, end, allowed)
        np.testing.assert_allclose(cbest[b], c_top, rtol=0, atol=atol)
        assert cpaths[b, :n].tolist() == c_path


@SETTINGS
@given(problems(max_abs=1e3))
def test_float32_matches_float64(problem):
    em, tags, trans, start, end, lengths, _ = problem
    T = em.shape[1]
    # The float32 inputs, seen in float64: the two runs get the same numbers.
    em32, trans32, start32, end32 = (a.astype(np.float32) for a in (em, trans, start, end))
    em64, trans64, start64, end64 = (a.astype(np.float64) for a in (em32, trans32, start32,
                                                                     end32))
    atol = tolerance(em64, trans64, start64, end64, T, np.finfo(np.float32).eps)
    for fn in (fastcrf.log_partition, fastcrf.marginals):
        r32 = fn(em32, trans32, start32, end32, lengths)
        r64 = fn(em64, trans64, start64, end64, lengths)
        assert r32.dtype == np.float32 and r64.dtype == np.float64
        np.testing.assert_allclose(r32, r64, rtol=0, atol=min(1.0, 4 * atol) + 1e-6)
    ll32 = fastcrf.log_likelihood(em32, tags, trans32, start32, end32, lengths)
    ll64 = fastcrf.log_likelihood(em64, tags, trans64, start64, end64, lengths)
    np.testing.assert_allclose(ll32, ll64, rtol=0, atol=2 * atol + 1e-6)
    _, s32 = fastcrf.viterbi(em32, trans32, start32, end32, lengths)
    _, s64 = fastcrf.viterbi(em64, trans64, start64, end64, lengths)
    np.testing.assert_allclose(s32, s64, rtol=0, atol=atol + 1e-6)


@SETTINGS
@given(problems(), st.sampled_from([np.float32, np.float64]))
def test_results_do_not_depend_on_the_thread_count(problem, dtype):
    em, tags, trans, start, end, lengths, allowed = problem
    em = em.astype(dtype)
    if dtype == np.float32 and np.abs(em).max(initial=0) > 1e30:
        return

    def run(n_jobs):
        ll, grads = fastcrf.log_likelihood(em, tags, trans, start, end, lengths,
                                           return_grad=True, n_jobs=n_jobs)
        return (fastcrf.log_partition(em, trans, start, end, lengths, n_jobs=n_jobs),
                fastcrf.marginals(em, trans, start, end, lengths, n_jobs=n_jobs), ll,
                grads.emissions, grads.transitions, grads.start, grads.end,
                *fastcrf.viterbi(em, trans, start, end, lengths, allowed=allowed,
                                 n_jobs=n_jobs))

    serial = run(1)
    for n_jobs in (2, 3, None):
        for a, b in zip(run(n_jobs), serial):
            np.testing.assert_array_equal(a, b)
