"""The one-pass vector steps of OWL-QN (fastcrf/_kernels/_vector.pyx) against the
numpy expressions they replace."""

import numpy as np
import pytest

from fastcrf._kernels import _vector


def _vectors(seed, n=1001):
    # Exact zeros, ties at +-c1 and both signs, so every branch is taken.
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    x[rng.random(n) < 0.4] = 0.0
    g = rng.standard_normal(n)
    g[rng.random(n) < 0.1] = 0.3
    g[rng.random(n) < 0.1] = -0.3
    return rng, x, g


def numpy_pseudo_gradient(x, g, c1):
    out = np.copysign(np.maximum(np.abs(g) - c1, 0.0), g)
    out = np.where(x > 0, g + c1, out)
    return np.where(x < 0, g - c1, out)


@pytest.mark.parametrize("c1", [0.0, 0.3, 2.0])
def test_pseudo_gradient_matches_numpy(c1):
    _, x, g = _vectors(1)
    out = np.full_like(x, np.nan)
    sq = _vector.pseudo_gradient(x, g, c1, out)
    expected = numpy_pseudo_gradient(x, g, c1)
    np.testing.assert_array_equal(out, expected)
    assert sq == pytest.approx(float(expected @ expected), rel=1e-13)
    # Every case of the definition, one coordinate each.
    x = np.array([1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    g = np.array([0.5, 0.5, 0.5, -0.5, 0.1, -0.1])
    out = np.empty(6)
    _vector.pseudo_gradient(x, g, 0.2, out)
    np.testing.assert_allclose(out, [0.7, 0.3, 0.3, -0.3, 0.0, 0.0], rtol=0, atol=1e-15)


def test_pseudo_gradient_keeps_nan():
    out = np.empty(2)
    assert np.isnan(_vector.pseudo_gradient(np.zeros(2), np.array([np.nan, 0.0]), 0.1, out))
    assert np.isnan(out[0]) and out[1] == 0.0


@pytest.mark.parametrize("step", [1.0, 0.37, 1e-3])
def test_project_step_matches_numpy(step):
    rng, xp, pg = _vectors(2)
    d = rng.standard_normal(len(xp))
    d[rng.random(len(xp)) < 0.2] = 0.0
    x = np.full_like(xp, np.nan)
    l1, descent = _vector.project_step(xp, d, step, pg, x)
    orthant = np.where(xp == 0, -pg, xp)
    expected = d * step + xp
    expected[expected * orthant <= 0] = 0.0
    np.testing.assert_array_equal(x, expected)
    assert np.count_nonzero(x) < np.count_nonzero(d * step + xp)  # the projection acted
    assert l1 == pytest.approx(float(np.abs(expected).sum()), rel=1e-13)
    assert descent == pytest.approx(float((expected - xp) @ pg), rel=1e-12, abs=1e-12)


def test_correction_pair_matches_numpy():
    rng, x, g = _vectors(3)
    xp, gp = rng.standard_normal(len(x)), rng.standard_normal(len(x))
    s, y = np.empty_like(x), np.empty_like(x)
    ys, yy = _vector.correction_pair(x, xp, g, gp, s, y)
    np.testing.assert_array_equal(s, x - xp)
    np.testing.assert_array_equal(y, g - gp)
    assert ys == pytest.approx(float(y @ s), rel=1e-13)
    assert yy == pytest.approx(float(y @ y), rel=1e-13)


def test_keep_descent_matches_numpy():
    rng, d, pg = _vectors(4)
    d = d * np.where(rng.random(len(d)) < 0.5, 1.0, -1.0)
    expected = d.copy()
    expected[expected * pg >= 0] = 0.0
    left = _vector.keep_descent(d, pg)
    np.testing.assert_array_equal(d, expected)
    assert left == np.count_nonzero(expected) > 0
    assert _vector.keep_descent(np.ones(3), np.ones(3)) == 0


def test_dot_and_axpy_match_numpy():
    rng, a, b = _vectors(5)
    assert _vector.dot(a, b) == pytest.approx(float(a @ b), rel=1e-13)
    # Summed in index order: exactly the serial loop's rounding.
    acc = 0.0
    for u, v in zip(a[:50], b[:50]):
        acc += u * v
    assert _vector.dot(a[:50].copy(), b[:50].copy()) == acc
    y = b.copy()
    _vector.axpy(-0.7, a, y)
    np.testing.assert_array_equal(y, b - a * 0.7)
    assert _vector.dot(np.zeros(0), np.zeros(0)) == 0.0


@pytest.mark.parametrize("c2", [0.0, 0.1, 3.0])
def test_objective_gradient_l2_matches_numpy(c2):
    rng, x, g = _vectors(6)
    grad = g.copy()
    squares = _vector.objective_gradient_l2(grad, x, c2)
    np.testing.assert_array_equal(grad, -g + x * (2.0 * c2))
    assert squares == pytest.approx(float(x @ x), rel=1e-13)


def test_fused_updates_equal_update_then_dot_bitwise():
    rng, x, z = _vectors(7)
    y = rng.standard_normal(len(x))
    y1, y2 = y.copy(), y.copy()
    s = _vector.axpy_dot(0.37, x, y1, z)
    _vector.axpy(0.37, x, y2)
    np.testing.assert_array_equal(y1, y2)
    assert s == _vector.dot(z, y2)
    y1, y2 = y.copy(), y * 1.7
    s = _vector.scale_dot(1.7, y1, z)
    np.testing.assert_array_equal(y1, y2)
    assert s == _vector.dot(z, y2)
