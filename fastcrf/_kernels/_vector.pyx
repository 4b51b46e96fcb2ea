# Vector updates of the OWL-QN optimiser (fastcrf/_train/owlqn.py), one pass each.
#
# Design
# ------
# a) An OWL-QN iteration on CoNLL-2002 NER touches ~1M doubles about twenty times
#    (pseudo-gradient, two-loop recursion with m = 6, projected trial points, norms):
#    in numpy each is a full pass plus temporaries.  Here each step the optimiser
#    takes is one loop that also returns the reductions it needs (the pseudo-
#    gradient's squared norm, the trial point's L1 norm and directional term, ...).
# b) Serial, in index order: the results are the same for any thread count, and a
#    reduction is a plain left-to-right sum (numpy's differ from them by rounding).
# c) The Python side (owlqn.py) owns every array and checks nothing here: all
#    arguments have the same length n, and the outputs do not alias the inputs
#    unless a signature says so.

from libc.stdint cimport int64_t


def dot(
    const double[::1] a,                   # IN  [n]
    const double[::1] b,                   # IN  [n]
):
    """``sum_i a[i] b[i]``, summed in index order."""
    cdef Py_ssize_t i, n = a.shape[0]
    cdef double s = 0.0
    with nogil:
        for i in range(n):
            s += a[i] * b[i]
    return s


def axpy(
    double alpha,                          # IN
    const double[::1] x,                   # IN  [n]
    double[::1] y,                         # IN/OUT [n] y += alpha x
):
    """``y += alpha * x`` in place."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in range(n):
            y[i] += alpha * x[i]


def pseudo_gradient(
    const double[::1] x,                   # IN  [n] the point
    const double[::1] g,                   # IN  [n] the smooth part's gradient there
    double c1,                             # IN  the L1 coefficient, >= 0
    double[::1] out,                       # OUT [n] the pseudo-gradient
):
    """Pseudo-gradient of ``f + c1 ||x||_1`` into ``out``; returns its squared norm.

    ``g_i + c1 sign(x_i)`` where ``x_i != 0``; at ``x_i = 0`` the soft threshold of
    ``g_i`` by ``c1`` (the downhill one-sided derivative, 0 when there is none).
    """
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double gi, p, s = 0.0
    with nogil:
        for i in range(n):
            gi = g[i]
            if x[i] > 0.0:
                p = gi + c1
            elif x[i] < 0.0:
                p = gi - c1
            elif gi > c1:
                p = gi - c1
            elif gi < -c1:
                p = gi + c1
            elif gi == gi:
                p = 0.0
            else:
                p = gi          # NaN stays NaN
            out[i] = p
            s += p * p
    return s


def project_step(
    const double[::1] xp,                  # IN  [n] the current point
    const double[::1] d,                   # IN  [n] the search direction
    double step,                           # IN
    const double[::1] pg,                  # IN  [n] the pseudo-gradient at xp
    double[::1] x_out,                     # OUT [n] the projected trial point
):
    """The trial point of a line search, projected onto the orthant of ``xp``.

    ``x = xp + step d``, then every ``x_i`` whose sign differs from the orthant's
    (``sign(xp_i)`` where ``xp_i != 0``, else ``sign(-pg_i)``) is set to 0.

    Returns
    -------
    l1 : float
        ``||x||_1``.
    descent : float
        ``(x - xp) . pg``, the Armijo test's directional term.
    """
    cdef Py_ssize_t i, n = xp.shape[0]
    cdef double v, o, l1 = 0.0, descent = 0.0
    with nogil:
        for i in range(n):
            v = d[i] * step
            v = v + xp[i]
            o = xp[i] if xp[i] != 0.0 else -pg[i]
            if v * o <= 0.0:
                v = 0.0
            x_out[i] = v
            l1 += v if v >= 0.0 else -v
            descent += (v - xp[i]) * pg[i]
    return l1, descent


def correction_pair(
    const double[::1] x,                   # IN  [n] the new point
    const double[::1] xp,                  # IN  [n] the previous point
    const double[::1] g,                   # IN  [n] the gradient at x
    const double[::1] gp,                  # IN  [n] the gradient at xp
    double[::1] s_out,                     # OUT [n] x - xp
    double[::1] y_out,                     # OUT [n] g - gp
):
    """The L-BFGS correction pair ``s = x - xp``, ``y = g - gp``; returns ``(y.s, y.y)``."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double si, yi, ys = 0.0, yy = 0.0
    with nogil:
        for i in range(n):
            si = x[i] - xp[i]
            yi = g[i] - gp[i]
            s_out[i] = si
            y_out[i] = yi
            ys += yi * si
            yy += yi * yi
    return ys, yy


def keep_descent(
    double[::1] d,                         # IN/OUT [n] the search direction
    const double[::1] pg,                  # IN  [n] the pseudo-gradient
):
    """Set to 0 every ``d_i`` that does not descend along ``-pg_i`` (``d_i pg_i >= 0``);
    returns how many coordinates are left non-zero."""
    cdef Py_ssize_t i, n = d.shape[0]
    cdef int64_t left = 0
    with nogil:
        for i in range(n):
            if d[i] * pg[i] >= 0.0:
                d[i] = 0.0
            elif d[i] != 0.0:
                left += 1
    return left


def objective_gradient_l2(
    double[::1] grad,                      # IN/OUT [n] the log-likelihood's gradient, turned
                                           #     into the objective's: -grad + 2 c2 x
    const double[::1] x,                   # IN  [n] the point
    double c2,                             # IN  the L2 coefficient
):
    """``grad = -grad + (2 c2) x`` in place; returns ``||x||^2`` (summed in index order)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double two_c2 = 2.0 * c2, s = 0.0
    with nogil:
        for i in range(n):
            grad[i] = -grad[i] + two_c2 * x[i]
            s += x[i] * x[i]
    return s


def axpy_dot(
    double alpha,                          # IN
    const double[::1] x,                   # IN  [n]
    double[::1] y,                         # IN/OUT [n] y += alpha x
    const double[::1] z,                   # IN  [n]
):
    """``y += alpha * x``, then returns ``z . y`` (the new ``y``): the two steps of the
    two-loop recursion that follow each other, in one pass.  The same values as
    :func:`axpy` then :func:`dot`, bitwise."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v, s = 0.0
    with nogil:
        for i in range(n):
            v = y[i] + alpha * x[i]
            y[i] = v
            s += z[i] * v
    return s


def scale_dot(
    double c,                              # IN
    double[::1] y,                         # IN/OUT [n] y *= c
    const double[::1] z,                   # IN  [n]
):
    """``y *= c``, then returns ``z . y`` (the new ``y``), in one pass."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef double v, s = 0.0
    with nogil:
        for i in range(n):
            v = y[i] * c
            y[i] = v
            s += z[i] * v
    return s
