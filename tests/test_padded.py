"""The padded forward-backward of the SGD engine (fastcrf/_kernels/_padded.h) against
_core's scaled kernels on identical inputs."""

import numpy as np
import pytest

from fastcrf._kernels import _core, _sgd_engine


def _both(lem, trans, start, end):
    T, K = lem.shape
    out = []
    for padded in (True, False):
        marg, edge = np.zeros((T, K)), np.zeros((K, K))
        logz = _sgd_engine._py_sequence_marginals(lem, trans, start, end, marg, edge, padded)
        out.append((logz, marg, edge))
    return out


@pytest.mark.parametrize("K", [1, 3, 4, 5, 22, 27, 30, 50])
@pytest.mark.parametrize("T", [1, 2, 7, 40])
def test_padded_kernels_agree_with_core(K, T):
    rng = np.random.default_rng(K * 100 + T)
    for scale in (0.5, 3.0, 20.0):
        lem = rng.standard_normal((T, K)) * scale
        trans = rng.standard_normal((K, K)) * scale
        start, end = rng.standard_normal(K), rng.standard_normal(K)
        (z_pad, m_pad, e_pad), (z_core, m_core, e_core) = _both(lem, trans, start, end)
        if np.isnan(z_pad):
            # Scores of range ~20 per position may lose mass to underflow: both kernels
            # then send the sequence to the log-space ones (here, _core's).
            assert scale > 3.0, "the padded kernels declined a moderate sequence"
            continue
        assert z_pad == pytest.approx(z_core, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(m_pad, m_core, rtol=0, atol=1e-12)
        np.testing.assert_allclose(e_pad, e_core, rtol=0, atol=1e-12)
        # Both are marginals: rows sum to 1, edge sums to T - 1.
        np.testing.assert_allclose(m_core.sum(axis=1), 1.0, atol=1e-12)
        assert e_core.sum() == pytest.approx(T - 1, abs=1e-12)


def test_padded_kernels_decline_a_wide_transition_range():
    # Beyond RAW_EDGE_RANGE the raw edge sums could overflow: the padded kernels are
    # not used (NaN here), and _core's per-step products take the sequence.
    rng = np.random.default_rng(0)
    K, T = 6, 9
    lem = rng.standard_normal((T, K))
    trans = rng.standard_normal((K, K))
    trans[0, 1] = _core.RAW_EDGE_RANGE + 10.0
    (z_pad, _, _), (z_core, m_core, _) = _both(lem, trans, np.zeros(K), np.zeros(K))
    assert np.isnan(z_pad)
    assert np.isfinite(z_core)
    np.testing.assert_allclose(m_core.sum(axis=1), 1.0, atol=1e-12)
