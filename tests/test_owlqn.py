"""OWL-QN (fastcrf._train.owlqn) against closed forms and a bound-constrained solver."""

import numpy as np
import pytest
from scipy.optimize import minimize

from fastcrf._train.owlqn import minimize_owlqn, pseudo_gradient


def _pseudo_gradient_loop(x, g, c1):
    # The definition, one coordinate at a time (Andrew and Gao 2007, eq. 4).
    out = np.zeros_like(x)
    for i in range(len(x)):
        if x[i] > 0:
            out[i] = g[i] + c1
        elif x[i] < 0:
            out[i] = g[i] - c1
        elif g[i] + c1 < 0:
            out[i] = g[i] + c1
        elif g[i] - c1 > 0:
            out[i] = g[i] - c1
    return out


def test_pseudo_gradient_matches_definition(rng):
    x = rng.standard_normal(200)
    x[::3] = 0.0
    g = rng.standard_normal(200) * 2
    g[5] = 0.5   # |g| == c1 at a zero coordinate: both one-sided derivatives >= 0
    x[5] = 0.0
    out = np.empty(200)
    np.testing.assert_array_equal(pseudo_gradient(x, g, 0.5, out),
                                  _pseudo_gradient_loop(x, g, 0.5))


def _separable(a, b):
    # f(x) = 0.5 sum a_i (x_i - b_i)^2, whose L1 solution is a soft threshold.
    def fun(x):
        r = x - b
        return 0.5 * float(np.sum(a * r * r)), a * r
    return fun


def test_separable_quadratic_soft_threshold(rng):
    a = rng.uniform(0.5, 3.0, 50)
    b = rng.standard_normal(50) * 2
    c1 = 0.7
    res = minimize_owlqn(_separable(a, b), np.zeros(50), c1, epsilon=1e-12, delta=0.0,
                         max_iterations=500)
    expected = np.sign(b) * np.maximum(np.abs(b) - c1 / a, 0.0)
    np.testing.assert_allclose(res.x, expected, atol=1e-8)
    # The clipped coordinates are exactly zero, not merely small.
    np.testing.assert_array_equal(res.x == 0, expected == 0)
    assert (expected == 0).sum() > 5


def test_large_c1_keeps_everything_at_zero(rng):
    a = np.ones(20)
    b = rng.uniform(-1, 1, 20)
    res = minimize_owlqn(_separable(a, b), np.zeros(20), 5.0)
    assert res.status == "converged"
    assert not np.any(res.x)


def _logistic(X, t, c2):
    def fun(w):
        z = X @ w
        # sum log(1 + exp(-t z)) + c2 |w|^2, computed stably
        m = -t * z
        loss = float(np.sum(np.logaddexp(0.0, m))) + c2 * float(w @ w)
        p = 1.0 / (1.0 + np.exp(-m))
        grad = X.T @ (-t * p) + 2.0 * c2 * w
        return loss, grad
    return fun


def test_l1_logistic_regression_matches_split_lbfgsb(rng):
    n, d = 300, 40
    X = rng.standard_normal((n, d))
    w_true = np.zeros(d)
    w_true[:6] = rng.standard_normal(6) * 2
    t = np.where(X @ w_true + 0.3 * rng.standard_normal(n) > 0, 1.0, -1.0)
    c1, c2 = 3.0, 0.05
    fun = _logistic(X, t, c2)
    res = minimize_owlqn(fun, np.zeros(d), c1, epsilon=1e-10, delta=0.0,
                         max_iterations=2000)

    def split(x):
        f, g = fun(x[:d] - x[d:])
        return f + c1 * x.sum(), np.concatenate((g + c1, -g + c1))

    ref = minimize(split, np.zeros(2 * d), jac=True, method="L-BFGS-B",
                   bounds=[(0, None)] * (2 * d),
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000})
    w_ref = ref.x[:d] - ref.x[d:]
    assert res.fun <= ref.fun * (1 + 1e-9)
    np.testing.assert_allclose(res.x, w_ref, atol=1e-4)
    # Sparse solution, exactly: the coordinates L-BFGS-B leaves near 0 are 0 here.
    assert np.count_nonzero(res.x) < d
    assert np.all(res.x[np.abs(w_ref) < 1e-6] == 0)


def test_objective_never_increases(rng):
    n, d = 200, 30
    X = rng.standard_normal((n, d))
    t = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
    seen = []
    minimize_owlqn(_logistic(X, t, 0.0), np.zeros(d), 2.0, max_iterations=50,
                   callback=lambda k, x, F, pg: seen.append(F))
    assert len(seen) > 3
    assert np.all(np.diff(seen) <= 1e-12)


def test_c1_zero_is_lbfgs(rng):
    d = 25
    M = rng.standard_normal((d, d))
    A = M @ M.T + d * np.eye(d)
    b = rng.standard_normal(d)
    res = minimize_owlqn(lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b), np.zeros(d), 0.0,
                         epsilon=1e-12, delta=0.0, max_iterations=1000)
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-7, atol=1e-9)


def test_stops_at_max_iterations_and_by_callback(rng):
    a = rng.uniform(0.1, 10.0, 30)
    b = rng.standard_normal(30)
    res = minimize_owlqn(_separable(a, b), np.zeros(30), 0.01, max_iterations=2,
                         epsilon=0.0, delta=0.0)
    assert (res.status, res.n_iterations) == ("max_iterations", 2)
    res = minimize_owlqn(_separable(a, b), np.zeros(30), 0.01, epsilon=0.0, delta=0.0,
                         callback=lambda k, x, F, pg: k == 3)
    assert (res.status, res.n_iterations) == ("callback", 3)


def test_delta_test_stops_on_a_flat_objective(rng):
    a = rng.uniform(0.1, 10.0, 30)
    b = rng.standard_normal(30)
    res = minimize_owlqn(_separable(a, b), np.zeros(30), 0.01, epsilon=0.0, delta=1e-3,
                         period=2)
    assert res.status == "delta"
    assert "relative" in res.message


def test_failed_line_search_keeps_the_last_good_point():
    x0 = np.array([1.0, -2.0])

    def fun(x):
        # Finite only at the start: every trial point is rejected.
        if np.array_equal(x, x0):
            return 1.0, np.array([1.0, 1.0])
        return np.nan, np.full(2, np.nan)

    res = minimize_owlqn(fun, x0, 0.1, max_linesearch=5)
    assert res.status == "linesearch"
    np.testing.assert_array_equal(res.x, x0)
    assert res.n_evaluations == 6
    assert "no step" in res.message


def test_bad_arguments():
    fun = _separable(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="c1"):
        minimize_owlqn(fun, np.zeros(3), -1.0)
    with pytest.raises(ValueError, match="c1"):
        minimize_owlqn(fun, np.zeros(3), float("nan"))
    with pytest.raises(FloatingPointError, match="starting point"):
        minimize_owlqn(lambda x: (np.inf, np.zeros(3)), np.zeros(3), 0.1)
