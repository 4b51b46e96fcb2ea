"""Orthant-wise limited-memory quasi-Newton (OWL-QN) for L1-regularised objectives.

Minimises ``F(x) = f(x) + c1 * ||x||_1`` for a smooth ``f`` given with its gradient
(Andrew and Gao 2007, "Scalable training of L1-regularized log-linear models"), as
CRFsuite does through liblbfgs:

- the *pseudo-gradient* ``pg`` replaces the gradient: at ``x_i != 0`` it is
  ``g_i + c1 sign(x_i)``; at ``x_i = 0`` it is the one-sided derivative that points
  downhill, ``g_i + c1`` if that is negative, ``g_i - c1`` if that is positive, else 0;
- the search direction ``d = -H pg`` comes from the usual two-loop recursion over the
  last ``m`` pairs ``(s, y)`` of the smooth part (``y = g_{k+1} - g_k``), and every
  ``d_i`` whose sign disagrees with ``-pg_i`` is set to 0;
- each trial point of the backtracking line search is projected onto the orthant of
  the current point (``x_i`` where it is non-zero, else that of ``-pg_i``): a
  coordinate that would cross zero stops at exactly 0, which is what gives sparse
  solutions;
- a trial is accepted when ``F(x_t) <= F(x) + ftol * pg . (x_t - x)`` (Armijo on the
  projected step).

Unlike L-BFGS-B on split variables ``x = p - n`` (twice the unknowns, bound
constraints), this works on the variables themselves, so an iteration costs one
gradient pass and a few vector updates.

Vectors are updated in place and the work buffers are allocated once: memory is
``6 + 2 m`` vectors of ``len(x0)`` doubles besides what ``fun`` allocates.  Each vector step is one compiled pass that also returns the
reductions it needs (:mod:`fastcrf._kernels._vector`: serial loops, no temporaries).
"""

from dataclasses import dataclass

import numpy as np

from .._kernels import _vector

#: liblbfgs's Armijo constant and step-halving factor of its OWL-QN backtracking.
FTOL = 1e-4
BACKTRACK = 0.5
MIN_STEP = 1e-20


@dataclass
class OWLQNResult:
    """What :func:`minimize_owlqn` returns.

    Attributes
    ----------
    x : ndarray
        The best point found (the last accepted iterate).
    fun : float
        ``F(x)``, the smooth part plus ``c1 * ||x||_1``.
    n_iterations : int
        Accepted iterations.
    n_evaluations : int
        Calls of ``fun``.
    status : str
        Why it stopped: ``'converged'`` (pseudo-gradient test), ``'delta'`` (relative
        improvement over ``period`` iterations below ``delta``), ``'max_iterations'``,
        ``'callback'`` or ``'linesearch'`` (no step along the direction lowered
        ``F``; ``x`` is then the last point that did).
    message : str
        ``status`` in words, for a log.
    """

    x: np.ndarray
    fun: float
    n_iterations: int
    n_evaluations: int
    status: str
    message: str


def _dot(a, b):
    # Not np.dot: BLAS worker threads keep spinning after a call and take the cores
    # from the OpenMP threads of the next gradient pass.
    return _vector.dot(a, b)


def pseudo_gradient(x, g, c1, out):
    """Write the pseudo-gradient of ``f + c1 ||x||_1`` at ``x`` into ``out``.

    Parameters
    ----------
    x, g : ndarray of shape (n,)
        The point and the gradient of the smooth part there.
    c1 : float
        The L1 coefficient, >= 0.
    out : ndarray of shape (n,)
        Overwritten.

    Returns
    -------
    out : ndarray
    """
    _vector.pseudo_gradient(x, g, float(c1), out)
    return out


def minimize_owlqn(fun, x0, c1, *, num_memories=6, epsilon=1e-5, max_iterations=None,
                   period=10, delta=1e-5, max_linesearch=20, callback=None):
    """Minimise ``fun(x)[0] + c1 * ||x||_1`` by OWL-QN.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, g)``: the smooth part and its gradient (a new array, or one
        that ``fun`` does not touch again before its next call).  A non-finite ``f``
        makes the line search try a shorter step.
    x0 : ndarray of shape (n,)
        The starting point (not modified).
    c1 : float
        The L1 coefficient (0 gives plain L-BFGS with a backtracking line search).
    num_memories : int, default=6
        Correction pairs kept (``m``).
    epsilon : float, default=1e-5
        Stop when ``||pg|| / max(||x||, 1) <= epsilon``.
    max_iterations : int or None
        At most this many iterations (None: no limit).
    period, delta : int, float
        Stop when ``(F_{k-period} - F_k) / |F_k| < delta``; ``delta = 0`` disables
        the test.
    max_linesearch : int, default=20
        Trial points per line search.
    callback : callable, optional
        ``callback(k, x, F, pg_norm)`` after iteration ``k`` (1-based); returning
        True stops.  ``x`` is the optimiser's own vector: copy it to keep it.

    Returns
    -------
    OWLQNResult

    Raises
    ------
    ValueError
        For a negative or non-finite ``c1`` or a bad setting.
    FloatingPointError
        When ``fun`` is not finite at ``x0``.
    """
    c1 = float(c1)
    if not np.isfinite(c1) or c1 < 0:
        raise ValueError(f"c1 must be a finite number >= 0, got {c1}")
    if num_memories < 1 or max_linesearch < 1 or period < 1:
        raise ValueError("num_memories, max_linesearch and period must be >= 1")
    x = np.array(x0, dtype=np.float64)
    n = x.shape[0]
    xp = np.empty(n)
    gp = np.empty(n)
    pg = np.empty(n)
    d = np.empty(n)
    m = int(num_memories)
    s_hist, y_hist, ys_hist, yy_hist = [], [], [], []
    alpha = np.zeros(m)

    f, g = fun(x)
    n_eval = 1
    F = float(f) + c1 * float(np.abs(x).sum())
    if not np.isfinite(F):
        raise FloatingPointError("the objective is not finite at the starting point")
    # Our own copy: ``fun`` may hand back the same buffer at every call.
    g = np.array(g, dtype=np.float64)
    pg_norm = np.sqrt(_vector.pseudo_gradient(x, g, c1, pg))

    def result(status, message, k):
        return OWLQNResult(x, F, k, n_eval, status, message)

    if pg_norm / max(np.sqrt(_dot(x, x)), 1.0) <= epsilon:
        return result("converged", "the starting point is already optimal", 0)
    np.negative(pg, out=d)
    step = 1.0 / np.sqrt(_dot(d, d))
    history = [F]
    k = 0
    while True:
        np.copyto(xp, x)
        np.copyto(gp, g)
        Fp = F
        accepted = False
        for _ in range(int(max_linesearch)):
            # Projected onto the orthant of the line search: the sign of xp where it is
            # non-zero, else the sign of the steepest descent.
            l1, descent = _vector.project_step(xp, d, step, pg, x)
            f_new, g_new = fun(x)
            n_eval += 1
            np.copyto(g, g_new)
            F_new = float(f_new) + c1 * l1
            if np.isfinite(F_new) and F_new <= Fp + FTOL * descent:
                accepted = True
                break
            step *= BACKTRACK
            if step < MIN_STEP:
                break
        if not accepted:
            np.copyto(x, xp)
            F = Fp
            np.copyto(g, gp)
            return result(
                "linesearch",
                f"stopped at iteration {k}: no step along the search direction lowered "
                f"the objective in {max_linesearch} trials (it is at its minimum to "
                "within rounding, or the objective is not smooth enough there); the "
                "last iterate is kept", k)
        k += 1
        F = F_new
        pg_norm = np.sqrt(_vector.pseudo_gradient(x, g, c1, pg))
        history.append(F)
        if callback is not None and callback(k, x, F, pg_norm):
            return result("callback", f"stopped by the callback at iteration {k}", k)
        if pg_norm / max(np.sqrt(_dot(x, x)), 1.0) <= epsilon:
            return result("converged", f"converged at iteration {k} (gradient test)", k)
        if delta > 0 and len(history) > period:
            old = history[-period - 1]
            if (old - F) / max(abs(F), 1e-300) < delta:
                return result("delta", f"converged at iteration {k}: the objective "
                              f"improved by less than {delta:g} (relative) over the "
                              f"last {period} iterations", k)
        if max_iterations is not None and k >= max_iterations:
            return result("max_iterations", f"stopped after max_iterations={k}", k)

        # The new correction pair (the oldest is recycled once m are kept).
        if len(s_hist) < m:
            s_new, y_new = np.empty(n), np.empty(n)
        else:
            s_new, y_new = s_hist.pop(0), y_hist.pop(0)
            ys_hist.pop(0)
            yy_hist.pop(0)
        ys, yy = _vector.correction_pair(x, xp, g, gp, s_new, y_new)
        if ys > 0 and yy > 0:
            s_hist.append(s_new)
            y_hist.append(y_new)
            ys_hist.append(ys)
            yy_hist.append(yy)
        # Two-loop recursion: d = -H pg.  Each pass over d also takes the product the
        # next step needs (the same values as updating, then multiplying).
        np.negative(pg, out=d)
        h = len(s_hist)
        if h:
            sd = _dot(s_hist[-1], d)
            for i in range(h - 1, -1, -1):
                alpha[i] = sd / ys_hist[i]
                if i > 0:
                    sd = _vector.axpy_dot(-alpha[i], y_hist[i], d, s_hist[i - 1])
                else:
                    _vector.axpy(-alpha[i], y_hist[i], d)
            yd = _vector.scale_dot(ys_hist[-1] / yy_hist[-1], d, y_hist[0])
            for i in range(h):
                beta = yd / ys_hist[i]
                if i + 1 < h:
                    yd = _vector.axpy_dot(alpha[i] - beta, s_hist[i], d, y_hist[i + 1])
                else:
                    _vector.axpy(alpha[i] - beta, s_hist[i], d)
        # Keep only the coordinates that descend along -pg.
        if _vector.keep_descent(d, pg) == 0:
            return result("converged", f"converged at iteration {k}: no coordinate "
                          "can move downhill", k)
        step = 1.0
