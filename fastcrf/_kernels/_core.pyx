# Compiled linear-chain CRF kernels.
#
# Design
# ------
# a) Single-sequence kernels are ``cdef ... noexcept nogil`` functions over raw,
#    row-major double buffers: ``[T][K]`` means ``buf[t * K + k]``.  They know
#    nothing about batches, dtypes or Python.
# b) One batch driver per operation runs a single ``prange`` over fixed-size
#    chunks of sequences.  Every chunk writes only its own rows of the outputs and
#    its own row of ``chunk_out``; the Python layer sums those rows in index
#    order.  The chunk size never depends on the thread count, so every result is
#    bitwise identical for any ``n_threads``.
# c) ``def`` wrappers only unpack memoryviews.  All validation and the allocation of
#    every output happen in ``fastcrf/_validation.py`` and ``fastcrf/_dense.py``: this
#    module trusts its inputs (finite scores, 0 <= lengths <= T, tags in range).  The
#    constants derived from the transitions (Chain: E, ET, tmax, raw_edges, rowmax,
#    transT) are built here, once per call, and nowhere else (_chain_scaled,
#    _chain_decoder; the sparse drivers and the epoch engines use the same ones).
# d) Sums are scaled probabilities (CRFsuite, Wapiti): scores are exponentiated
#    once, each forward/backward row is renormalised and its normaliser kept, so
#    the O(K^2) inner loops are multiply-adds the compiler vectorises instead of
#    one exp per label pair.  Each row carries a rigorous bound on the mass it may
#    have lost to underflow (see _forward_scaled); when that bound could matter
#    (scores whose range is several hundred) the one sequence is recomputed in
#    exact log space.
# e) Everything is accumulated in double, whatever the input dtype.
#
# Names follow CRFsuite: T items, K labels, t position, i/j previous/next label.
# Compiler directives live in setup.py, not here (a header would override the
# FASTCRF_CYTHON_DEBUG switch).

from cython.parallel cimport parallel, prange
from libc.math cimport exp, fabs, log, INFINITY
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset

from cython cimport floating

cdef extern from "_openmp.h":
    int omp_get_max_threads() noexcept nogil
    int FASTCRF_OPENMP

cdef extern from "_kernels.h":
    void fcrf_vecmat(const double* x, const double* M, double* y, Py_ssize_t K) noexcept nogil
    void fcrf_edge_accumulate(const double* a, const double* E, const double* w, double* acc,
                              Py_ssize_t K) noexcept nogil
    void fcrf_outer_accumulate(const double* a, const double* w, double* acc,
                               Py_ssize_t K) noexcept nogil
    void fcrf_maxplus(const double* d, const double* M, const double* rowmax, double* bound,
                      Py_ssize_t* rows, double* y, Py_ssize_t K) noexcept nogil
    Py_ssize_t fcrf_argmax_shifted(const double* d, const double* c, double* scratch,
                                   Py_ssize_t K) noexcept nogil
    void fcrf_exp_shifted(const double* x, double shift, double* out, Py_ssize_t K) noexcept nogil
    int fcrf_multiversioned() noexcept nogil

# CHUNK, the number of sequences per parallel work item, is set in _core.pxd; the
# numeric limits (UNDERFLOW_TERM, LOSS_TOL, ...) in _limits.h.
from . cimport _limits

# The limits, for the Python layer (fastcrf._validation, fastcrf._dense).
MAX_SCORE = _limits.MAX_SCORE
RAW_EDGE_RANGE = _limits.RAW_EDGE_RANGE
UNDERFLOW_TERM = _limits.UNDERFLOW_TERM
LOSS_TOL = _limits.LOSS_TOL


def openmp_enabled():
    """Return True when the extension was compiled with OpenMP."""
    return bool(FASTCRF_OPENMP)


def max_threads():
    """Return ``omp_get_max_threads()`` (1 without OpenMP)."""
    return omp_get_max_threads()


def simd_dispatch():
    """Return True when the row kernels carry an AVX2/FMA clone chosen at load time."""
    return bool(fcrf_multiversioned())


def chunk_size():
    """Return the number of sequences per parallel work item."""
    return CHUNK


# --------------------------------------------------------------------------- #
# Model constants shared by every sequence of a batch.                          #
# --------------------------------------------------------------------------- #

# Chain and Work (the per-thread scratch) are declared in _core.pxd, which other
# kernel modules cimport.


cdef Py_ssize_t _chain_doubles(Py_ssize_t K) noexcept nogil:
    # E, ET, transT: [K][K] each; rowmax: [K].
    return 3 * K * K + K


cdef Chain _chain_bind(Py_ssize_t K, const double* trans, const double* start,
                       const double* end, double* buf) noexcept nogil:
    # A Chain over the caller's scores whose derived constants will live in buf
    # ([_chain_doubles(K)]); _chain_scaled and _chain_decoder fill them.  Returned by
    # value for the reason given at _work_bind.
    cdef Chain c
    c.K = K
    c.trans = trans
    c.start = start
    c.end = end
    c.E = buf
    c.ET = buf + K * K
    c.transT = buf + 2 * K * K
    c.rowmax = buf + 3 * K * K
    c.tmax = 0.0
    c.raw_edges = False
    return c


cdef double* _chain_new(Chain* c, Py_ssize_t K, const double* trans, const double* start,
                        const double* end) except NULL:
    # _chain_bind over a buffer of its own, which the caller frees.
    cdef double* buf = <double*> malloc(_chain_doubles(K) * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    c[0] = _chain_bind(K, trans, start, end, buf)
    return buf


cdef void _chain_scaled(Chain* c) noexcept nogil:
    # What the scaled forward-backward needs: tmax = max(trans), E = exp(trans - tmax),
    # its transpose ET, and raw_edges: whether the raw edge sums of the scaled
    # backward pass are safe for this range of transitions (_limits.h, RAW_EDGE_RANGE).
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t i, j
    cdef const double* trans = c.trans
    cdef double* E = <double*> c.E
    cdef double* ET = <double*> c.ET
    cdef double hi = trans[0], lo = trans[0]
    for i in range(K * K):
        if trans[i] > hi:
            hi = trans[i]
        if trans[i] < lo:
            lo = trans[i]
    # Every transition -inf (forbidden): E = 0 needs a finite shift (-inf - -inf is NaN).
    if hi == -INFINITY:
        hi = 0.0
    # The vectorised exp (_kernels.h): libm's took ~7 us per mini-batch for K = 22.
    # A -inf score gives exactly 0 there (forbidden transitions); lo = -inf then
    # turns raw_edges off, whose bound assumes every E[i][j] > 0.
    fcrf_exp_shifted(trans, hi, E, K * K)
    for i in range(K):
        for j in range(K):
            ET[j * K + i] = E[i * K + j]
    c.tmax = hi
    c.raw_edges = (hi - lo) <= _limits.RAW_EDGE_RANGE


cdef void _chain_decoder(Chain* c) noexcept nogil:
    # What Viterbi needs: its pruning bound rowmax[i] = max_j trans[i][j] and the
    # transposed transitions transT (backtracking reads columns).
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t i, j
    cdef const double* trans = c.trans
    cdef double* rowmax = <double*> c.rowmax
    cdef double* transT = <double*> c.transT
    for i in range(K):
        rowmax[i] = trans[i * K]
        for j in range(K):
            transT[j * K + i] = trans[i * K + j]
            if trans[i * K + j] > rowmax[i]:
                rowmax[i] = trans[i * K + j]


cdef Py_ssize_t _work_doubles(Py_ssize_t T, Py_ssize_t K) noexcept nogil:
    return 3 * T * K + 2 * T + 3 * K + K * K


cdef Work _work_bind(double* buf, Py_ssize_t T, Py_ssize_t K) noexcept nogil:
    # Returned by value: a struct assigned inside ``parallel()`` is thread-private,
    # one filled through a pointer would be shared.
    cdef Work w
    w.lem = buf
    w.emf = buf + T * K
    w.alpha = buf + 2 * T * K
    w.asum = buf + 3 * T * K
    w.aloss = w.asum + T
    w.b0 = w.aloss + T
    w.b1 = w.b0 + K
    w.v = w.b1 + K
    w.edge = w.v + K
    return w


# --------------------------------------------------------------------------- #
# Single-sequence kernels, scaled probabilities.                                #
# --------------------------------------------------------------------------- #

cdef inline void _kahan_add(double* acc, double* comp, double x) noexcept nogil:
    # Neumaier's compensated sum: log Z adds T terms of very different magnitudes.
    cdef double t = acc[0] + x
    if fabs(acc[0]) >= fabs(x):
        comp[0] += (acc[0] - t) + x
    else:
        comp[0] += (x - t) + acc[0]
    acc[0] = t


cdef inline double _row_scores(const Chain* c, const double* lrow, Py_ssize_t t,
                               Py_ssize_t T, double* x) noexcept nogil:
    # x[j] = lem[t][j] (+ start[j] at t = 0) (+ end[j] at t = T-1); returns max_j x[j].
    # Folding start and end into the first and last rows before exponentiating keeps a
    # label with a poor start score but a huge emission from underflowing on its own.
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t j
    cdef double mx
    for j in range(K):
        x[j] = lrow[j]
    if t == 0:
        for j in range(K):
            x[j] += c.start[j]
    if t == T - 1:
        for j in range(K):
            x[j] += c.end[j]
    mx = x[0]
    for j in range(1, K):
        if x[j] > mx:
            mx = x[j]
    return mx


cdef int _forward_scaled(const Chain* c, const double* lem, Py_ssize_t T,
                         double* emf,       # OUT [T][K] exp(x[t][j] - mx_t), x as in _row_scores
                         double* alpha,     # OUT [T][K] normalised forward rows
                         double* asum,      # OUT [T]    row normalisers
                         double* aloss,     # OUT [T]    bound on the relative mass lost to underflow
                         double* logz       # OUT scalar
                         ) noexcept nogil:
    # alpha'_0[j] = emf[0][j]
    # alpha'_t[j] = emf[t][j] sum_i alpha_{t-1}[i] E[i][j]
    # alpha_t = alpha'_t / asum_t,  asum_t = sum_j alpha'_t[j]
    # log Z = sum_t (mx_t + [t > 0] tmax + log asum_t)
    #
    # Every factor (alpha, E, emf) is <= 1, so a product that underflows loses at most
    # UNDERFLOW_TERM, and mass lost earlier can grow by at most 1 / asum_t per step:
    #   L_t <= (L_{t-1} + K^2 UNDERFLOW_TERM) / asum_t,
    # a bound on the mass missing from row t relative to its sum.  Returns -1 (log-space
    # fallback) once it could exceed LOSS_TOL, and 1 when some position has no possible
    # label (-inf scores: Z = 0).  A row of zeros (no path reaches it, or underflow)
    # takes the fallback, which tells the two apart.
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t t, j
    cdef double mx, s, inv
    cdef double loss = 0.0
    cdef double new_loss = K * K * _limits.UNDERFLOW_TERM
    cdef double acc = 0.0, comp = 0.0
    cdef double* row
    cdef double* frow
    for t in range(T):
        frow = emf + t * K
        mx = _row_scores(c, lem + t * K, t, T, frow)
        if mx == -INFINITY:
            return 1        # no label possible at t: Z = 0 (exp_shifted would give NaN)
        fcrf_exp_shifted(frow, mx, frow, K)
        row = alpha + t * K
        if t == 0:
            for j in range(K):
                row[j] = frow[j]
        else:
            fcrf_vecmat(alpha + (t - 1) * K, c.E, row, K)
            for j in range(K):
                row[j] *= frow[j]
        s = 0.0
        for j in range(K):
            s += row[j]
        if not (s > 0.0):
            return -1
        loss = (loss + new_loss) / s
        if not (loss <= _limits.LOSS_TOL):
            return -1
        asum[t] = s
        aloss[t] = loss
        inv = 1.0 / s
        for j in range(K):
            row[j] *= inv
        # mx and tmax may be huge and of opposite signs: add them first.
        _kahan_add(&acc, &comp, ((mx + c.tmax) if t > 0 else mx) + log(s))
    logz[0] = acc + comp
    return 0


cdef int _backward_scaled(const Chain* c, Py_ssize_t T, const double* emf,
                          double* alpha,      # IN [T][K] forward rows; OUT node marginals
                          const double* asum, const double* aloss,
                          Work* w,
                          double* edge,       # OUT [K][K] summed edge marginals (edge_step 0)
                                              #     or [T-1][K][K] one block per step; NULL: none
                          Py_ssize_t edge_step) noexcept nogil:
    # beta_{T-1}[i] = 1 / K                     (end scores are in emf[T-1])
    # beta_{t-1}[i] ~ sum_j E[i][j] emf[t][j] beta_t[j]      (each row renormalised)
    # n_t = sum_i alpha_t[i] beta_t[i];  P(y_t = i) = alpha_t[i] beta_t[i] / n_t
    # P(y_{t-1} = i, y_t = j) = alpha_{t-1}[i] E[i][j] emf[t][j] beta_t[j] / (asum_t n_t)
    # Row t of alpha is overwritten by its marginals once row t + 1 no longer needs it.
    # Lost mass is bounded as in the forward pass; the marginals at t miss at most
    # (La_t + Lb_t) / n_t of their mass, and the sequence falls back to log space
    # (-1) when that could exceed LOSS_TOL.
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t t, i, j
    cdef double s, n, inv
    cdef double loss = 0.0
    cdef double new_loss = K * K * _limits.UNDERFLOW_TERM
    cdef double* beta = w.b0
    cdef double* nxt = w.b1
    cdef double* tmp
    cdef double* v = w.v
    cdef double* row
    cdef const double* frow

    for i in range(K):
        beta[i] = 1.0 / K
    t = T - 1
    while t >= 0:
        row = alpha + t * K
        n = 0.0
        for i in range(K):
            n += row[i] * beta[i]
        if not (n > 0.0 and (aloss[t] + loss) / n <= _limits.LOSS_TOL):
            return -1
        if t > 0:
            frow = emf + t * K
            for j in range(K):
                v[j] = frow[j] * beta[j]
            fcrf_vecmat(v, c.ET, nxt, K)
            if edge != NULL:
                inv = 1.0 / (asum[t] * n)
                for j in range(K):
                    v[j] *= inv
                if c.raw_edges:
                    fcrf_outer_accumulate(alpha + (t - 1) * K, v, edge + (t - 1) * edge_step, K)
                else:
                    fcrf_edge_accumulate(alpha + (t - 1) * K, c.E, v,
                                         edge + (t - 1) * edge_step, K)
        inv = 1.0 / n
        for i in range(K):
            row[i] = row[i] * beta[i] * inv
        if t > 0:
            s = 0.0
            for i in range(K):
                s += nxt[i]
            if not (s > 0.0):
                return -1
            loss = (loss + new_loss) / s
            if not (loss <= _limits.LOSS_TOL):
                return -1
            inv = 1.0 / s
            for i in range(K):
                nxt[i] *= inv
            tmp = beta
            beta = nxt
            nxt = tmp
        t -= 1
    return 0


# --------------------------------------------------------------------------- #
# Single-sequence kernels, exact log space (fallback for extreme scores).       #
# --------------------------------------------------------------------------- #

cdef double _lse_column(const double* base, const double* trans, Py_ssize_t K,
                        Py_ssize_t j) noexcept nogil:
    # log sum_i exp(base[i] + trans[i][j])
    cdef Py_ssize_t i
    cdef double mx = -INFINITY, s = 0.0, x
    for i in range(K):
        x = base[i] + trans[i * K + j]
        if x > mx:
            mx = x
    if mx == -INFINITY:
        return mx
    for i in range(K):
        s += exp(base[i] + trans[i * K + j] - mx)
    return mx + log(s)


cdef double _lse_row(const double* a, const double* b, Py_ssize_t K) noexcept nogil:
    # log sum_j exp(a[j] + b[j])
    cdef Py_ssize_t j
    cdef double mx = -INFINITY, s = 0.0, x
    for j in range(K):
        x = a[j] + b[j]
        if x > mx:
            mx = x
    if mx == -INFINITY:
        return mx
    for j in range(K):
        s += exp(a[j] + b[j] - mx)
    return mx + log(s)


cdef double _forward_log(const Chain* c, const double* lem, Py_ssize_t T,
                         double* la        # OUT [T][K] log alpha
                         ) noexcept nogil:
    # la[0][j] = start[j] + lem[0][j]
    # la[t][j] = lem[t][j] + log sum_i exp(la[t-1][i] + trans[i][j])
    # log Z    = log sum_j exp(la[T-1][j] + end[j])
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t t, j
    for j in range(K):
        la[j] = c.start[j] + lem[j]
    for t in range(1, T):
        for j in range(K):
            la[t * K + j] = lem[t * K + j] + _lse_column(la + (t - 1) * K, c.trans, K, j)
    return _lse_row(la + (T - 1) * K, c.end, K)


cdef void _backward_log(const Chain* c, const double* lem, Py_ssize_t T,
                        const double* la,
                        double* marg,      # OUT [T][K] node marginals
                        Work* w,
                        double* edge,      # OUT as in _backward_scaled
                        Py_ssize_t edge_step) noexcept nogil:
    # lb[T-1][i] = end[i]
    # lb[t-1][i] = log sum_j exp(trans[i][j] + lem[t][j] + lb[t][j])
    # P(y_t = i) ~ exp(la[t][i] + lb[t][i])
    # P(y_{t-1} = i, y_t = j) ~ exp(la[t-1][i] + trans[i][j] + lem[t][j] + lb[t][j])
    # Each row and each step's edge block is normalised by its own sum, not by
    # log Z: with |log Z| ~ 1e8 the absolute rounding of la and lb is ~1e-8 per
    # step, which would otherwise add up over long sequences.
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t t, i, j
    cdef double* lb = w.b0
    cdef double* nxt = w.b1
    cdef double* tmp
    cdef double* v = w.v
    cdef double* blk
    cdef double x, mx, s
    for i in range(K):
        lb[i] = c.end[i]
    t = T - 1
    while t >= 0:
        mx = -INFINITY
        for i in range(K):
            x = la[t * K + i] + lb[i]
            if x > mx:
                mx = x
        s = 0.0
        for i in range(K):
            x = exp(la[t * K + i] + lb[i] - mx)
            marg[t * K + i] = x
            s += x
        for i in range(K):
            marg[t * K + i] /= s
        if t > 0:
            for j in range(K):
                v[j] = lem[t * K + j] + lb[j]
            for i in range(K):
                nxt[i] = _lse_row(c.trans + i * K, v, K)
            if edge != NULL:
                blk = edge + (t - 1) * edge_step
                mx = -INFINITY
                for i in range(K):
                    for j in range(K):
                        x = la[(t - 1) * K + i] + c.trans[i * K + j] + v[j]
                        if x > mx:
                            mx = x
                s = 0.0
                for i in range(K):
                    for j in range(K):
                        s += exp(la[(t - 1) * K + i] + c.trans[i * K + j] + v[j] - mx)
                for i in range(K):
                    for j in range(K):
                        # Same expression as in the sum above, so the block sums to 1.
                        blk[i * K + j] += (
                            exp(la[(t - 1) * K + i] + c.trans[i * K + j] + v[j] - mx) / s)
            tmp = lb
            lb = nxt
            nxt = tmp
        t -= 1


cdef double _sequence_marginals(const Chain* c, Py_ssize_t T, Work* w,
                                bint want_marginals, bint want_edges) noexcept nogil:
    # Log Z of the sequence in w.lem; with want_marginals, its node marginals in
    # w.alpha and, with want_edges, its summed edge marginals in w.edge.
    return _lattice(c, T, w, want_marginals, w.edge if want_edges else NULL, 0)


cdef double _lattice(const Chain* c, Py_ssize_t T, Work* w, bint want_marginals,
                     double* edge,          # OUT NULL, or edge marginals as in _backward_scaled
                     Py_ssize_t edge_step) noexcept nogil:
    # Log Z of the sequence in w.lem (-inf when no path is possible: -inf scores
    # forbid every one); with want_marginals its node marginals in w.alpha (all 0 for
    # an impossible sequence), with edge its edge marginals.
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t n_edge = K * K * (1 if edge_step == 0 else T - 1)
    cdef double logz = 0.0
    cdef int status
    cdef Py_ssize_t k
    if edge != NULL and n_edge > 0:
        memset(edge, 0, n_edge * sizeof(double))
    status = _forward_scaled(c, w.lem, T, w.emf, w.alpha, w.asum, w.aloss, &logz)
    if status == 0 and want_marginals:
        status = _backward_scaled(c, T, w.emf, w.alpha, w.asum, w.aloss, w, edge, edge_step)
        if status == 0 and edge != NULL and c.raw_edges:
            for k in range(n_edge):
                edge[k] *= c.E[k % (K * K)]
    if status == -1:
        if edge != NULL and n_edge > 0:
            memset(edge, 0, n_edge * sizeof(double))
        logz = _forward_log(c, w.lem, T, w.emf)
        if logz == -INFINITY:
            status = 1
        elif want_marginals:
            _backward_log(c, w.lem, T, w.emf, w.alpha, w, edge, edge_step)
    if status == 1:
        logz = -INFINITY
        if want_marginals:
            memset(w.alpha, 0, T * K * sizeof(double))
    return logz


cdef void _add_path_counts(const int64_t* y, Py_ssize_t T, Py_ssize_t K, double weight,
                           double* acc) noexcept nogil:
    # acc[K*K + 2K] (transitions, start, end) += weight * the counts of the path y.
    cdef Py_ssize_t t
    for t in range(1, T):
        acc[y[t - 1] * K + y[t]] += weight
    acc[K * K + y[0]] += weight
    acc[K * K + K + y[T - 1]] += weight


cdef void _transition_gradient(const Work* w, const int64_t* y, Py_ssize_t T, Py_ssize_t K,
                          double* acc) noexcept nogil:
    # acc[K*K + 2K] += observed minus expected transition, start and end counts of one
    # sequence, from the node marginals (w.alpha) and edge sums (w.edge) of
    # _sequence_marginals: the gradient of log p(y) with respect to those scores.
    _transition_gradient_rows(w.edge, w.alpha, K, y, T, K, acc)


cdef void _transition_gradient_rows(const double* edge, const double* marg, Py_ssize_t stride,
                               const int64_t* y, Py_ssize_t T, Py_ssize_t K,
                               double* acc) noexcept nogil:
    # _transition_gradient from edge sums [K][K] and node marginals [T] rows of ``stride``.
    cdef Py_ssize_t i, k
    for i in range(K * K):
        acc[i] -= edge[i]
    for k in range(K):
        acc[K * K + k] -= marg[k]
        acc[K * K + K + k] -= marg[(T - 1) * stride + k]
    _add_path_counts(y, T, K, 1.0, acc)


cdef double _path_score(const Chain* c, const floating* lem, Py_ssize_t T,
                        const int64_t* y) noexcept nogil:
    # start[y_0] + sum_t lem[t][y_t] + sum_{t>=1} trans[y_{t-1}][y_t] + end[y_{T-1}]
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t t
    cdef double s = c.start[y[0]] + c.end[y[T - 1]]
    for t in range(T):
        s += <double> lem[t * K + y[t]]
    for t in range(1, T):
        s += c.trans[y[t - 1] * K + y[t]]
    return s


cdef void _load_emissions(const floating* src, Py_ssize_t n, double* dst) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        dst[k] = src[k]


# --------------------------------------------------------------------------- #
# Batch driver: log Z, marginals, log-likelihood and its gradient.              #
# --------------------------------------------------------------------------- #

def forward_backward(
    const floating[:, :, ::1] emissions,   # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const int64_t[:, ::1] tags,            # IN  [B][T] (shape (0, 0) without tags)
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    double[::1] logz_out,                  # OUT [B]
    double[::1] score_out,                 # OUT [B] path score of tags (with tags)
    floating[:, :, ::1] node_out,          # OUT [B][T][K] marginals, or onehot - marginals with
                                           #     tags; shape (0, 0, 0): log Z (and scores) only
    double[:, ::1] chunk_out,              # OUT [n_chunks][K*K + 2K] tags: (empirical - expected)
                                           #     transition, start, end counts per chunk
    int n_threads,
):
    """Run forward(-backward) over a batch; see the module design notes."""
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t Tmax = emissions.shape[1]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t n_chunks = (B + CHUNK - 1) // CHUNK
    cdef bint with_tags = tags.shape[0] > 0
    cdef bint want_marginals = node_out.shape[0] > 0
    cdef bint want_edges = with_tags and want_marginals
    cdef Chain c
    cdef double* cbuf
    cdef Py_ssize_t ch, s, s_end, T, t, k, i, j
    cdef double* buf
    cdef const int64_t* y
    cdef Work w
    cdef int failed = 0
    cdef int* failed_p = &failed

    if B == 0 or Tmax == 0:
        return
    cbuf = _chain_new(&c, K, &trans[0, 0], &start[0], &end[0])
    _chain_scaled(&c)
    with nogil, parallel(num_threads=n_threads):
        buf = <double*> malloc(_work_doubles(Tmax, K) * sizeof(double))
        w = _work_bind(buf, Tmax, K)
        for ch in prange(n_chunks, schedule="dynamic"):
            if buf == NULL:
                failed_p[0] = 1
                continue
            s_end = (ch + 1) * CHUNK
            if s_end > B:
                s_end = B
            for s in range(ch * CHUNK, s_end):
                T = lengths[s]
                if T == 0:
                    logz_out[s] = 0.0
                    if with_tags:
                        score_out[s] = 0.0
                    continue
                _load_emissions(&emissions[s, 0, 0], T * K, w.lem)
                logz_out[s] = _sequence_marginals(&c, T, &w, want_marginals, want_edges)
                if logz_out[s] == -INFINITY:
                    continue        # no possible path: the Python layer raises
                if with_tags:
                    y = &tags[s, 0]
                    score_out[s] = _path_score(&c, w.lem, T, y)
                if want_marginals and not with_tags:
                    for t in range(T):
                        for k in range(K):
                            node_out[s, t, k] = <floating> w.alpha[t * K + k]
                elif want_marginals:
                    # d log p(y) / d emissions[t][k] = [y_t == k] - P(y_t = k)
                    for t in range(T):
                        for k in range(K):
                            node_out[s, t, k] = <floating> (-w.alpha[t * K + k])
                        node_out[s, t, y[t]] = <floating> (1.0 - w.alpha[t * K + y[t]])
                if want_edges:
                    _transition_gradient(&w, y, T, K, &chunk_out[ch, 0])
        free(buf)
    free(cbuf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace "
                          f"({_work_doubles(Tmax, K)} doubles)")


cdef void _load_clamped(const floating* src, const uint8_t* ok, Py_ssize_t n,
                        double* dst) noexcept nogil:
    # dst = src where ok, -inf elsewhere (the labels a partial labelling rules out).
    cdef Py_ssize_t k
    for k in range(n):
        dst[k] = src[k] if ok[k] else -INFINITY


cdef void _add_expected_counts(const double* edge, const double* marg, Py_ssize_t T,
                               Py_ssize_t K, double sign, double* acc) noexcept nogil:
    # acc[K*K + 2K] += sign * the expected transition, start and end counts.
    cdef Py_ssize_t i
    for i in range(K * K):
        acc[i] += sign * edge[i]
    for i in range(K):
        acc[K * K + i] += sign * marg[i]
        acc[K * K + K + i] += sign * marg[(T - 1) * K + i]


def forward_backward_partial(
    const floating[:, :, ::1] emissions,   # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const uint8_t[:, :, ::1] compatible,   # IN  [B][T][K] labels the partial labelling allows
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    double[::1] logz_out,                  # OUT [B] log Z
    double[::1] clamped_out,               # OUT [B] log-sum over the compatible paths
    floating[:, :, ::1] node_out,          # OUT [B][T][K] P(y_t = k | compatible) - P(y_t = k);
                                           #     shape (0, 0, 0): the two log sums only
    double[:, ::1] chunk_out,              # OUT [n_chunks][K*K + 2K] clamped minus expected
                                           #     transition, start, end counts per chunk
    int n_threads,
):
    """Partial-label log-likelihood terms and gradient: two lattices per sequence.

    log p(compatible) = log sum_{y compatible} exp score(y) - log Z, and its gradient
    with respect to every score is the clamped minus the free expected counts.
    """
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t Tmax = emissions.shape[1]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t n_chunks = (B + CHUNK - 1) // CHUNK
    cdef bint want_grad = node_out.shape[0] > 0
    cdef Chain c
    cdef double* cbuf
    cdef Py_ssize_t ch, s, s_end, T, t, k
    cdef double* buf
    cdef Work w
    cdef int failed = 0
    cdef int* failed_p = &failed

    if B == 0 or Tmax == 0:
        return
    cbuf = _chain_new(&c, K, &trans[0, 0], &start[0], &end[0])
    _chain_scaled(&c)
    with nogil, parallel(num_threads=n_threads):
        buf = <double*> malloc(_work_doubles(Tmax, K) * sizeof(double))
        w = _work_bind(buf, Tmax, K)
        for ch in prange(n_chunks, schedule="dynamic"):
            if buf == NULL:
                failed_p[0] = 1
                continue
            s_end = (ch + 1) * CHUNK
            if s_end > B:
                s_end = B
            for s in range(ch * CHUNK, s_end):
                T = lengths[s]
                if T == 0:
                    logz_out[s] = 0.0
                    clamped_out[s] = 0.0
                    continue
                # The clamped lattice first: its marginals go to node_out, then the
                # free lattice's are subtracted (one Work serves both).
                _load_clamped(&emissions[s, 0, 0], &compatible[s, 0, 0], T * K, w.lem)
                clamped_out[s] = _sequence_marginals(&c, T, &w, want_grad, want_grad)
                if clamped_out[s] == -INFINITY:
                    logz_out[s] = 0.0
                    continue        # no compatible path: the Python layer raises
                if want_grad:
                    for t in range(T):
                        for k in range(K):
                            node_out[s, t, k] = <floating> w.alpha[t * K + k]
                    _add_expected_counts(w.edge, w.alpha, T, K, 1.0, &chunk_out[ch, 0])
                _load_emissions(&emissions[s, 0, 0], T * K, w.lem)
                logz_out[s] = _sequence_marginals(&c, T, &w, want_grad, want_grad)
                if want_grad:
                    for t in range(T):
                        for k in range(K):
                            node_out[s, t, k] = <floating> (
                                <double> node_out[s, t, k] - w.alpha[t * K + k])
                    _add_expected_counts(w.edge, w.alpha, T, K, -1.0, &chunk_out[ch, 0])
        free(buf)
    free(cbuf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace "
                          f"({_work_doubles(Tmax, K)} doubles)")


def edge_marginals(
    const floating[:, :, ::1] emissions,   # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    double[::1] logz_out,                  # OUT [B]
    floating[:, :, :, ::1] edge_out,       # OUT [B][T-1][K][K] P(y_t = i, y_{t+1} = j), zero-filled
    int n_threads,
):
    """Pairwise marginals of every adjacent pair of positions of a batch."""
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t Tmax = emissions.shape[1]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t n_chunks = (B + CHUNK - 1) // CHUNK
    cdef Py_ssize_t KK = K * K
    cdef Chain c
    cdef double* cbuf
    cdef Py_ssize_t ch, s, s_end, T, k
    cdef double* buf
    cdef double* eb
    cdef Work w
    cdef int failed = 0
    cdef int* failed_p = &failed

    if B == 0 or Tmax == 0:
        return
    cbuf = _chain_new(&c, K, &trans[0, 0], &start[0], &end[0])
    _chain_scaled(&c)
    with nogil, parallel(num_threads=n_threads):
        buf = <double*> malloc((_work_doubles(Tmax, K) + Tmax * KK) * sizeof(double))
        w = _work_bind(buf, Tmax, K)
        eb = buf + _work_doubles(Tmax, K)         # [T-1][K][K] this sequence's edges
        for ch in prange(n_chunks, schedule="dynamic"):
            if buf == NULL:
                failed_p[0] = 1
                continue
            s_end = (ch + 1) * CHUNK
            if s_end > B:
                s_end = B
            for s in range(ch * CHUNK, s_end):
                T = lengths[s]
                if T == 0:
                    logz_out[s] = 0.0
                    continue
                _load_emissions(&emissions[s, 0, 0], T * K, w.lem)
                logz_out[s] = _lattice(&c, T, &w, True, eb, KK)
                if logz_out[s] == -INFINITY or T == 1:
                    continue
                for k in range((T - 1) * KK):
                    edge_out[s, k // KK, (k // K) % K, k % K] = <floating> eb[k]
        free(buf)
    free(cbuf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace")


# --------------------------------------------------------------------------- #
# Viterbi (max-plus, log space).                                                #
# --------------------------------------------------------------------------- #

cdef double _viterbi_one(const Chain* c, const double* lem, Py_ssize_t T,
                         double* delta,               # scratch [T][K]
                         double* bound,               # scratch [K]
                         Py_ssize_t* rows,            # scratch [K]
                         int64_t* path                # OUT [T]
                         ) noexcept nogil:
    # delta[0][j] = start[j] + lem[0][j]
    # delta[t][j] = lem[t][j] + max_i (delta[t-1][i] + trans[i][j])
    # best = max_j delta[T-1][j] + end[j]
    # Back-pointers are not stored: backtracking recomputes
    # argmax_i delta[t-1][i] + trans[i][y_t] from the same sums, so the forward loop is
    # a plain max the compiler vectorises.  Ties (CRFsuite's rule): the lowest last
    # label, then the lowest previous label at each step back.
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t t, i, j, arg
    cdef double x, best
    cdef double* row
    cdef const double* prev
    for j in range(K):
        delta[j] = c.start[j] + lem[j]
    for t in range(1, T):
        row = delta + t * K
        fcrf_maxplus(delta + (t - 1) * K, c.trans, c.rowmax, bound, rows, row, K)
        for j in range(K):
            row[j] += lem[t * K + j]
    row = delta + (T - 1) * K
    arg = 0
    best = row[0] + c.end[0]
    for j in range(1, K):
        x = row[j] + c.end[j]
        if x > best:
            best = x
            arg = j
    path[T - 1] = arg
    t = T - 1
    while t > 0:
        arg = fcrf_argmax_shifted(delta + (t - 1) * K, c.transT + arg * K, bound, K)
        path[t - 1] = arg
        t -= 1
    return best


def viterbi(
    const floating[:, :, ::1] emissions,   # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const double[:, ::1] trans,            # IN  [K][K], -inf where forbidden
    const double[::1] start,               # IN  [K], -inf where forbidden
    const double[::1] end,                 # IN  [K], -inf where forbidden
    int64_t[:, ::1] paths_out,             # OUT [B][T], pre-filled with -1
    double[::1] score_out,                 # OUT [B]
    int n_threads,
):
    """Best path and its score for every sequence of a batch."""
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t Tmax = emissions.shape[1]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t n_chunks = (B + CHUNK - 1) // CHUNK
    cdef Chain c
    cdef double* cbuf
    cdef Py_ssize_t ch, s, s_end, T
    cdef double* dbuf
    cdef Py_ssize_t* rows
    cdef int failed = 0
    cdef int* failed_p = &failed

    if B == 0 or Tmax == 0:
        return
    cbuf = _chain_new(&c, K, &trans[0, 0], &start[0], &end[0])
    _chain_decoder(&c)
    with nogil, parallel(num_threads=n_threads):
        dbuf = <double*> malloc((2 * Tmax * K + K) * sizeof(double))
        rows = <Py_ssize_t*> malloc(K * sizeof(Py_ssize_t))
        for ch in prange(n_chunks, schedule="dynamic"):
            if dbuf == NULL or rows == NULL:
                failed_p[0] = 1
                continue
            s_end = (ch + 1) * CHUNK
            if s_end > B:
                s_end = B
            for s in range(ch * CHUNK, s_end):
                T = lengths[s]
                if T == 0:
                    score_out[s] = 0.0
                    continue
                _load_emissions(&emissions[s, 0, 0], T * K, dbuf)
                score_out[s] = _viterbi_one(&c, dbuf, T, dbuf + Tmax * K,
                                            dbuf + 2 * Tmax * K, rows, &paths_out[s, 0])
        free(dbuf)
        free(rows)
    free(cbuf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread Viterbi workspace")


def path_scores(
    const floating[:, :, ::1] emissions,   # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const int64_t[:, ::1] tags,            # IN  [B][T]
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    double[::1] score_out,                 # OUT [B]
):
    """Score of the given label path of every sequence (serial: O(B T))."""
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t s, T
    cdef Chain c
    c.K = K
    c.trans = &trans[0, 0]
    c.start = &start[0]
    c.end = &end[0]
    with nogil:
        for s in range(B):
            T = lengths[s]
            score_out[s] = _path_score(&c, &emissions[s, 0, 0], T, &tags[s, 0]) if T else 0.0


# --------------------------------------------------------------------------- #
# k-best Viterbi (list Viterbi, exact).                                          #
# --------------------------------------------------------------------------- #

cdef inline bint _beats(double x, int64_t id, double y, int64_t yid) noexcept nogil:
    # The k-best order: a higher score first, equal scores by the lower id.
    return x > y or (x == y and id < yid)


cdef inline void _insert_best(double* vals, int64_t* ids, Py_ssize_t k, double x,
                              int64_t id) noexcept nogil:
    # vals[k] / ids[k] sorted in the k-best order (-inf: empty slot); insert (x, id)
    # where it belongs and drop the last entry.  A -inf candidate is never inserted.
    cdef Py_ssize_t r = k - 1
    if x == -INFINITY or not _beats(x, id, vals[r], ids[r]):
        return
    while r > 0 and _beats(x, id, vals[r - 1], ids[r - 1]):
        vals[r] = vals[r - 1]
        ids[r] = ids[r - 1]
        r -= 1
    vals[r] = x
    ids[r] = id


cdef void _order_desc(const double* delta, Py_ssize_t K, Py_ssize_t k,
                      int64_t* order) noexcept nogil:
    # order = the labels i by decreasing delta[i][0] (the best prefix ending in i):
    # insertion sort, K is small and this runs once per position, not per label.
    cdef Py_ssize_t a, b
    cdef int64_t x
    for a in range(K):
        x = a
        b = a
        while b > 0 and delta[order[b - 1] * k] < delta[x * k]:
            order[b] = order[b - 1]
            b -= 1
        order[b] = x


cdef Py_ssize_t _nbest_one(Py_ssize_t K,
                           const double* trans,  # IN  [K][K], or [T][K][K] with step 1
                           const double* rowmax, # IN  [K] max_j trans[i][j], or [T][K]
                           const double* tmax,   # IN  [1] max(trans), or [T]
                           Py_ssize_t step,      # 0: shared transitions; 1: position t
                                                 #    reads trans[t], rowmax[t], tmax[t]
                           const double* start, const double* end,   # IN  [K], [K]
                           const double* lem,    # IN  [T][K] emission scores
                           Py_ssize_t T, Py_ssize_t k,
                           double* kth,        # scratch [K] the k-th entry of each list
                           double* hit,        # scratch [K]
                           double* delta,      # scratch [T][K][k] the k best prefix scores
                           int64_t* back,      # scratch [T][K][k] (previous label) * k + rank
                           int64_t* order,     # scratch [K]
                           double* top,        # scratch [k]
                           int64_t* top_ids,   # scratch [k]
                           int64_t* paths,     # OUT [k][Tpad], rows pre-filled with -1
                           Py_ssize_t Tpad,
                           double* scores      # OUT [k], pre-filled with -inf
                           ) noexcept nogil:
    # delta[0][j]   = {start[j] + lem[0][j]}
    # delta[t][j]   = k-max over (i, r) of delta[t-1][i][r] + trans_t[i][j], plus lem[t][j]
    # best paths    = k-max over (j, r) of delta[T-1][j][r] + end[j]
    # Each list is kept in the k-best order: descending score, ties by the lower
    # id = i * k + r.  By induction equal scores come out ordered by the path read
    # backwards from its end, in increasing label order: CRFsuite's Viterbi rule for
    # k = 1.  Because the order is total, the scan order does not matter, so labels i
    # are scanned best first: once delta[t-1][i][0] + max(trans) (a bound on every
    # candidate of i and of all the labels after it) falls below every list's k-th
    # entry, the scan stops; within one i, scores only decrease, so it stops at the
    # first candidate that cannot enter.  The best label's candidates are copied into
    # the empty lists as they come, without the compares of an insertion (they are
    # already in the k-best order), and the lowest k-th entry is recomputed only after
    # a label changed some list.  Per-position transitions (step 1: observation-
    # conditioned ones, fastcrf._kernels._edges) change only which matrix and bounds
    # position t reads.  Returns the number of paths found.
    cdef Py_ssize_t t, i, j, r, n, o, found, n_hit
    cdef double tr, x, e, head, lowest
    cdef const double* row
    cdef const double* tr_t
    cdef const double* rowmax_t
    cdef double tmax_t
    cdef double* out
    cdef int64_t* ids
    cdef const double* prev
    cdef int64_t id
    for j in range(K):
        out = delta + j * k
        ids = back + j * k
        for r in range(k):
            out[r] = -INFINITY
            ids[r] = -1
        _insert_best(out, ids, k, start[j] + lem[j], 0)
    for t in range(1, T):
        tr_t = trans + t * step * K * K
        rowmax_t = rowmax + t * step * K
        tmax_t = tmax[t * step]
        _order_desc(delta + (t - 1) * K * k, K, k, order)
        lowest = -INFINITY          # min_j kth[j]
        for o in range(K):
            i = order[o]
            prev = delta + ((t - 1) * K + i) * k
            head = prev[0]
            row = tr_t + i * K
            if o == 0:
                # The lists start as the best label's k candidates, as they are (prev
                # is in the k-best order, and so is prev + tr): what inserting them
                # into empty lists gives, -inf entries as empty slots (id -1); all of
                # them when no path reaches t - 1.
                for j in range(K):
                    out = delta + (t * K + j) * k
                    ids = back + (t * K + j) * k
                    tr = row[j]
                    for r in range(k):
                        x = prev[r] + tr
                        out[r] = x
                        ids[r] = i * k + r if x != -INFINITY else -1
                    kth[j] = out[k - 1]
                lowest = kth[0]
                for j in range(1, K):
                    if kth[j] < lowest:
                        lowest = kth[j]
                continue
            if head == -INFINITY or head + tmax_t < lowest:
                break               # neither i nor any label after it can enter a list
            if head + rowmax_t[i] < lowest:
                continue            # i cannot enter any list
            # Which lists the best candidate of i may enter: a compare over j the
            # compiler vectorises; the insertions below are rare once lists fill.
            for j in range(K):
                hit[j] = (head + row[j]) >= kth[j]
            n_hit = 0
            for j in range(K):
                if not hit[j]:
                    continue
                n_hit += 1
                out = delta + (t * K + j) * k
                ids = back + (t * K + j) * k
                tr = row[j]
                for r in range(k):
                    x = prev[r] + tr
                    id = i * k + r
                    if x == -INFINITY or not _beats(x, id, out[k - 1], ids[k - 1]):
                        break
                    _insert_best(out, ids, k, x, id)
                kth[j] = out[k - 1]
            if n_hit:
                lowest = kth[0]
                for j in range(1, K):
                    if kth[j] < lowest:
                        lowest = kth[j]
        for j in range(K):
            out = delta + (t * K + j) * k
            e = lem[t * K + j]
            for r in range(k):
                out[r] += e
    for r in range(k):
        top[r] = -INFINITY
        top_ids[r] = -1
    for j in range(K):
        prev = delta + ((T - 1) * K + j) * k
        for r in range(k):
            x = prev[r] + end[j]
            id = j * k + r
            if x == -INFINITY or not _beats(x, id, top[k - 1], top_ids[k - 1]):
                break
            _insert_best(top, top_ids, k, x, id)
    found = 0
    for n in range(k):
        if top[n] == -INFINITY:
            break
        found += 1
        scores[n] = top[n]
        j = top_ids[n] // k
        r = top_ids[n] % k
        t = T - 1
        while True:
            paths[n * Tpad + t] = j
            if t == 0:
                break
            id = back[(t * K + j) * k + r]
            j = id // k
            r = id % k
            t -= 1
    return found


def viterbi_nbest(
    const floating[:, :, ::1] emissions,   # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const double[:, ::1] trans,            # IN  [K][K], -inf where forbidden
    const double[::1] start,               # IN  [K], -inf where forbidden
    const double[::1] end,                 # IN  [K], -inf where forbidden
    int64_t[:, :, ::1] paths_out,          # OUT [B][k][T], pre-filled with -1
    double[:, ::1] score_out,              # OUT [B][k], pre-filled with -inf
    int n_threads,
):
    """The k best paths of every sequence of a batch, in descending score."""
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t Tmax = emissions.shape[1]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t k = paths_out.shape[1]
    cdef Py_ssize_t n_chunks = (B + CHUNK - 1) // CHUNK
    cdef Chain c
    cdef double* cbuf
    cdef double tmax
    cdef Py_ssize_t ch, s, s_end, T, i
    cdef double* dbuf
    cdef int64_t* ibuf
    cdef int failed = 0
    cdef int* failed_p = &failed

    if B == 0 or Tmax == 0 or k == 0:
        return
    cbuf = _chain_new(&c, K, &trans[0, 0], &start[0], &end[0])
    _chain_decoder(&c)
    tmax = trans[0, 0]
    for i in range(K * K):
        if (&trans[0, 0])[i] > tmax:
            tmax = (&trans[0, 0])[i]
    with nogil, parallel(num_threads=n_threads):
        dbuf = <double*> malloc((Tmax * K + Tmax * K * k + k + 2 * K) * sizeof(double))
        ibuf = <int64_t*> malloc((Tmax * K * k + K + k) * sizeof(int64_t))
        for ch in prange(n_chunks, schedule="dynamic"):
            if dbuf == NULL or ibuf == NULL:
                failed_p[0] = 1
                continue
            s_end = (ch + 1) * CHUNK
            if s_end > B:
                s_end = B
            for s in range(ch * CHUNK, s_end):
                T = lengths[s]
                if T == 0:
                    score_out[s, 0] = 0.0       # the one (empty) path
                    continue
                _load_emissions(&emissions[s, 0, 0], T * K, dbuf)
                _nbest_one(K, c.trans, c.rowmax, &tmax, 0, c.start, c.end, dbuf, T, k,
                           dbuf + Tmax * K + Tmax * K * k + k,
                           dbuf + Tmax * K + Tmax * K * k + k + K, dbuf + Tmax * K, ibuf,
                           ibuf + Tmax * K * k, dbuf + Tmax * K + Tmax * K * k,
                           ibuf + Tmax * K * k + K, &paths_out[s, 0, 0], Tmax,
                           &score_out[s, 0])
        free(dbuf)
        free(ibuf)
    free(cbuf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread k-best workspace")
