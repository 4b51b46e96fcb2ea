# Compiled kernels for linear chains whose transition scores change with the
# position: observation-conditioned transitions (CRF++'s B templates with macros).
#
# Design
# ------
# a) The transition into position t >= 1 scores
#        trans_t[i][j] = trans[i][j] + sum_f x[t][f] * W[f][i][j]
#    over the edge attributes f active at t (CRF++ `B01:%x[0,1]`).  A sequence's
#    recursions read one pointer per position, tp[t] -> [K][K]: `trans` itself where t
#    has no edge attribute, or the position's own matrix, built into per-thread scratch
#    only for the positions that have some (sized by the batch's largest count of such
#    positions), so a batch with few edge attributes never materialises (T, K, K).
# b) The recursions run in log space (max-subtracted log-sum-exp): per-position
#    matrices change the edge constants at every step, which is what the scaled
#    recursion of _core amortises, and log space keeps -inf (constraints) exact with
#    no underflow fallback.  Viterbi is max-plus; ties go to the lowest label (strict <).
# c) Drivers prange over fixed chunks of sequences (CHUNK) and write only their own
#    sequences' outputs and their own chunk's row of chain counts, so results never
#    depend on the thread count.  The gradient of W is reduced per range of edge
#    attributes (edge_gradient): the range's thread scans the tokens in order, so each
#    weight adds its terms in token order whatever the thread count.
# d) Inputs are trusted: fastcrf/_edges.py and fastcrf/_dense.py validate shapes, ids
#    and offsets.  Scores beyond MAX_SCORE (diverging weights) are reported through a
#    status, never passed to the recursions.

import numpy as np

from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, exp, fabs, log
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from ._core cimport CHUNK, _nbest_one
from ._limits cimport MAX_SCORE
from ._rows cimport _check_layout, _ids, _ptr, _values, fcrf_emissions, fcrf_layout, fcrf_max_abs


cdef extern from "_kernels.h":
    # exp(x - shift) by a polynomial the compiler vectorises, to about 1 ulp; 0 below
    # -708 (so exp(-inf) is 0, as libm's)
    void fcrf_exp_shifted(const double* x, double shift, double* out, Py_ssize_t K) noexcept nogil


# The sparse drivers take the model and the data as tuples, unpacked here:
#   state = (U, S, D, tail_ptr, tail_label)   StateLayout.kernel_args(flat), as _sparse
#   batch = (ids, vals, tok_off, seq_off)     EncodedSequences.kernel_args(), as _sparse
#   edges = (eids, evals, etok_off)           the edge attributes of every token (CSR
#       eids        [n_edge_entries] int32 edge-attribute ids
#       evals       [n_edge_entries] their values, or [0]: all 1.0
#       etok_off    [n_tokens + 1] entries of each token; a sequence's first token has
#                   none (the Python layer drops them)


cdef double[::1] _NO_WEIGHTS = np.zeros(0)


# --------------------------------------------------------------------------- #
# Single-sequence kernels (log space).                                          #
# --------------------------------------------------------------------------- #

cdef inline double _lse(const double* x, Py_ssize_t n) noexcept nogil:
    # log sum_i exp(x[i]); -inf when every term is -inf.
    cdef Py_ssize_t i
    cdef double m = -INFINITY, s = 0.0
    for i in range(n):
        if x[i] > m:
            m = x[i]
    if m == -INFINITY:
        return -INFINITY
    for i in range(n):
        s += exp(x[i] - m)
    return m + log(s)


cdef double _forward(
    Py_ssize_t T, Py_ssize_t K,
    const double* em, Py_ssize_t ld,        # IN  [T][ld] emission scores (first K used)
    const double** tp,                      # IN  [T] tp[t] -> [K][K] trans_t (t >= 1)
    const double* start, const double* end, # IN  [K], [K]
    double* alpha,                          # OUT [T][K] log-sum of paths ending at (t, j)
    double* tmp,                            # scratch [K]
) noexcept nogil:
    # alpha[0][j] = start[j] + em[0][j]
    # alpha[t][j] = em[t][j] + log sum_i exp(alpha[t-1][i] + trans_t[i][j])
    # log Z = log sum_j exp(alpha[T-1][j] + end[j])
    cdef Py_ssize_t t, i, j
    cdef const double* tr
    for j in range(K):
        alpha[j] = start[j] + em[j]
    for t in range(1, T):
        tr = tp[t]
        for j in range(K):
            for i in range(K):
                tmp[i] = alpha[(t - 1) * K + i] + tr[i * K + j]
            alpha[t * K + j] = em[t * ld + j] + _lse(tmp, K)
    for j in range(K):
        tmp[j] = alpha[(T - 1) * K + j] + end[j]
    return _lse(tmp, K)


cdef void _backward(
    Py_ssize_t T, Py_ssize_t K,
    const double* em, Py_ssize_t ld,        # IN  [T][ld] emission scores
    const double** tp,                      # IN  [T] per-position transitions
    const double* end,                      # IN  [K]
    double* beta,                           # OUT [T][K] log-sum of paths leaving (t, i),
                                            #     without em[t]
    double* tmp,                            # scratch [K]
) noexcept nogil:
    # beta[T-1][i] = end[i]
    # beta[t][i] = log sum_j exp(trans_{t+1}[i][j] + em[t+1][j] + beta[t+1][j])
    cdef Py_ssize_t t, i, j
    cdef const double* tr
    for i in range(K):
        beta[(T - 1) * K + i] = end[i]
    for t in range(T - 2, -1, -1):
        tr = tp[t + 1]
        for i in range(K):
            for j in range(K):
                tmp[j] = tr[i * K + j] + em[(t + 1) * ld + j] + beta[(t + 1) * K + j]
            beta[t * K + i] = _lse(tmp, K)


cdef inline void _pair(
    Py_ssize_t K,
    const double* alpha_prev,               # IN  [K] alpha[t-1]
    const double* tr,                       # IN  [K][K] trans_t
    const double* em_t,                     # IN  [K] em[t]
    const double* beta_t,                   # IN  [K] beta[t]
    double logz,
    double* P,                              # OUT [K][K] P(y_{t-1} = i, y_t = j)
) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double a, x
    for i in range(K):
        a = alpha_prev[i] - logz
        for j in range(K):
            x = a + tr[i * K + j] + em_t[j] + beta_t[j]
            P[i * K + j] = exp(x) if x > -INFINITY else 0.0


cdef double _path(
    Py_ssize_t T, Py_ssize_t K, const double* em, Py_ssize_t ld, const double** tp,
    const double* start, const double* end,
    const int64_t* y,                       # IN  [T] the labels
) noexcept nogil:
    cdef Py_ssize_t t
    cdef double s = start[y[0]] + em[y[0]] + end[y[T - 1]]
    for t in range(1, T):
        s += tp[t][y[t - 1] * K + y[t]] + em[t * ld + y[t]]
    return s


cdef double _viterbi(
    Py_ssize_t T, Py_ssize_t K, const double* em, Py_ssize_t ld, const double** tp,
    const double* start, const double* end,
    double* delta,                          # scratch [T][K] best score ending at (t, j)
    int64_t* back,                          # scratch [T][K] its previous label
    int64_t* path,                          # OUT [T] best path (lowest labels on ties)
) noexcept nogil:
    # delta[t][j] = em[t][j] + max_i (delta[t-1][i] + trans_t[i][j])
    cdef Py_ssize_t t, i, j
    cdef int64_t arg
    cdef double best, x
    cdef const double* tr
    for j in range(K):
        delta[j] = start[j] + em[j]
    for t in range(1, T):
        tr = tp[t]
        for j in range(K):
            best = -INFINITY
            arg = 0
            for i in range(K):
                x = delta[(t - 1) * K + i] + tr[i * K + j]
                if x > best:
                    best = x
                    arg = i
            delta[t * K + j] = em[t * ld + j] + best
            back[t * K + j] = arg
    best = -INFINITY
    arg = 0
    for j in range(K):
        x = delta[(T - 1) * K + j] + end[j]
        if x > best:
            best = x
            arg = j
    path[T - 1] = arg
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t * K + path[t]]
    return best


cdef inline void _edge_sum(
    Py_ssize_t K, const double* trans, const double* W,
    const int32_t* eids, const double* evals, int64_t e0, int64_t e1,
    double* out,                            # OUT [K][K] trans + sum_e v_e W[f_e]
) noexcept nogil:
    cdef Py_ssize_t m, KK = K * K
    cdef int64_t e
    cdef double v
    cdef const double* w
    memcpy(out, trans, KK * sizeof(double))
    for e in range(e0, e1):
        v = evals[e] if evals != NULL else 1.0
        w = W + <Py_ssize_t> eids[e] * KK
        for m in range(KK):
            out[m] += v * w[m]


cdef inline bint _in_range(const double* x, Py_ssize_t n) noexcept nogil:
    # Every score finite within MAX_SCORE, or -inf (a constrained transition stays
    # impossible whatever its attributes add).
    cdef Py_ssize_t m
    for m in range(n):
        if x[m] != -INFINITY and not (fabs(x[m]) <= MAX_SCORE):
            return False
    return True


cdef inline bint _factor(
    Py_ssize_t K, const double* E0, double c0,
    const double* EW, const double* cW,     # IN  [F][K][K] exp(W[f] - cW[f]), [F] cW
    const int32_t* eids, const double* evals, int64_t e0, int64_t e1,
    double* E,                              # OUT [K][K] exp(trans_t - c)
    double* c,                              # OUT the offset c
) noexcept nogil:
    # exp(trans + sum_f W[f]) as the product of the factors exp(trans) and exp(W[f]),
    # computed once per pass: no exp per position.  Binary attributes only (a value
    # other than 1 returns False, as does an offset beyond MAX_SCORE).
    cdef Py_ssize_t m, KK = K * K
    cdef int64_t e
    cdef const double* w
    c[0] = c0
    for e in range(e0, e1):
        if evals != NULL and evals[e] != 1.0:
            return False
        c[0] += cW[eids[e]]
    if not (fabs(c[0]) <= MAX_SCORE):
        return False
    memcpy(E, E0, KK * sizeof(double))
    for e in range(e0, e1):
        w = EW + <Py_ssize_t> eids[e] * KK
        for m in range(KK):
            E[m] *= w[m]
    return True


cdef double _path_edges(
    Py_ssize_t T, Py_ssize_t K, const double* em, Py_ssize_t ld, const double* trans,
    const double* W, const int32_t* eids, const double* evals, const int64_t* etok,
    const double* start, const double* end,
    const int64_t* y,                       # IN  [T] the labels
) noexcept nogil:
    # The path score read off trans and W, without the positions' matrices.
    cdef Py_ssize_t t
    cdef int64_t e, m
    cdef double s = start[y[0]] + em[y[0]] + end[y[T - 1]]
    for t in range(1, T):
        m = y[t - 1] * K + y[t]
        s += trans[m] + em[t * ld + y[t]]
        for e in range(etok[t], etok[t + 1]):
            s += (evals[e] if evals != NULL else 1.0) * W[<Py_ssize_t> eids[e] * K * K + m]
    return s


cdef bint _bind_positions(
    Py_ssize_t T, Py_ssize_t K, const double* trans, const double* W,
    const int32_t* eids, const double* evals, const int64_t* etok,   # etok: [T + 1]
    double* mats,                           # scratch [n_edge_positions][K][K]
    const double** tp,                      # OUT [T]
) noexcept nogil:
    # tp[t] = trans where position t has no edge attribute, else its own matrix.
    # Returns False when a built matrix leaves the score range.
    cdef Py_ssize_t t, n = 0
    tp[0] = trans
    for t in range(1, T):
        if etok[t + 1] > etok[t]:
            _edge_sum(K, trans, W, eids, evals, etok[t], etok[t + 1], mats + n * K * K)
            if not _in_range(mats + n * K * K, K * K):
                return False
            tp[t] = mats + n * K * K
            n += 1
        else:
            tp[t] = trans
    return True


cdef Py_ssize_t _most_edge_positions(const int64_t[::1] seq_off,
                                     const int64_t[::1] etok_off) noexcept:
    # The largest count of positions with edge attributes in one sequence.
    cdef Py_ssize_t s, t, n, best = 0
    for s in range(seq_off.shape[0] - 1):
        n = 0
        for t in range(seq_off[s], seq_off[s + 1]):
            if etok_off[t + 1] > etok_off[t]:
                n += 1
        if n > best:
            best = n
    return best


cdef Py_ssize_t _longest(const int64_t[::1] seq_off) noexcept:
    cdef Py_ssize_t s, T = 0
    for s in range(seq_off.shape[0] - 1):
        if seq_off[s + 1] - seq_off[s] > T:
            T = seq_off[s + 1] - seq_off[s]
    return T


# --------------------------------------------------------------------------- #
# Sparse drivers: the estimator's inference and L-BFGS objective.               #
# --------------------------------------------------------------------------- #

cdef void _exp_matrix(Py_ssize_t K, const double* tr, double* E, double* c) noexcept nogil:
    # E[i][j] = exp(tr[i][j] - c) with c the largest finite entry (0 when all are -inf).
    cdef Py_ssize_t m, KK = K * K
    cdef double top = -INFINITY
    for m in range(KK):
        if tr[m] > top:
            top = tr[m]
    if top == -INFINITY:
        top = 0.0
    c[0] = top
    # K*K exponentials per position with transition attributes: libm's exp here was a
    # fifth of an SGD epoch with them (CoNLL-2000, B01 + B02).
    fcrf_exp_shifted(tr, top, E, KK)


cdef bint _scaled(
    Py_ssize_t T, Py_ssize_t K,
    const double* em, Py_ssize_t ld,        # IN  [T][ld] emission scores
    const double** Ep,                      # IN  [T] Ep[t] -> [K][K] exp(trans_t - c[t])
    const double* c,                        # IN  [T] the offsets c[t] (t >= 1)
    const double* start, const double* end, # IN  [K], [K]
    double* a,                              # OUT [T][K] forward rows, each summing to 1
    double* b,                              # OUT [T][K] backward rows, max 1
    double* emf,                            # OUT [T][K] exp(em[t][j] - max_j em[t][j])
    double* logz,                           # OUT log Z
) noexcept nogil:
    # The scaled recursion (CRFsuite, Wapiti) over per-position edge factors:
    #   a[t][j] = emf[t][j] * sum_i a[t-1][i] * E_t[i][j] / s[t]
    #   log Z = sum_t (log s[t] + max em[t] + c[t]) + log sum_j a[T-1][j] exp(end[j])
    #   b[t][i] = sum_j E_{t+1}[i][j] * emf[t+1][j] * b[t+1][j] / u[t]
    # Returns False when a row's mass, or the mass of a position's node marginals, falls
    # below 1e-100 (or is not finite): terms may then have underflowed, and the caller
    # redoes the sequence in log space.  Above it every pairwise total
    # (s[t] * sum_j a[t][j] b[t][j]) stays above 1e-200.
    cdef Py_ssize_t t, i, j
    cdef double m, ssum, x, acc, bmax
    cdef const double* E
    for t in range(T):
        m = -INFINITY
        for j in range(K):
            x = em[t * ld + j] + (start[j] if t == 0 else 0.0)
            if x > m:
                m = x
        if m == -INFINITY:
            return False
        if t == 0:
            for j in range(K):
                emf[j] = exp(start[j] + em[j] - m)
        else:
            fcrf_exp_shifted(em + t * ld, m, emf + t * K, K)
        if t == 0:
            logz[0] = m
            for j in range(K):
                a[j] = emf[j]
        else:
            logz[0] += m + c[t]
            E = Ep[t]
            for j in range(K):
                a[t * K + j] = 0.0
            for i in range(K):
                x = a[(t - 1) * K + i]
                if x == 0.0:
                    continue
                for j in range(K):
                    a[t * K + j] += x * E[i * K + j]
            for j in range(K):
                a[t * K + j] *= emf[t * K + j]
        ssum = 0.0
        for j in range(K):
            ssum += a[t * K + j]
        if not (ssum >= 1e-100 and ssum <= 1e100):
            return False
        for j in range(K):
            a[t * K + j] /= ssum
        logz[0] += log(ssum)
    m = -INFINITY
    for j in range(K):
        if end[j] > m:
            m = end[j]
    if m == -INFINITY:
        return False
    ssum = 0.0
    for j in range(K):
        b[(T - 1) * K + j] = exp(end[j] - m)
        ssum += a[(T - 1) * K + j] * b[(T - 1) * K + j]
    if not (ssum >= 1e-100):
        return False
    logz[0] += m + log(ssum)
    # The first row's emf holds the start scores: emf[0] is not read below.
    for t in range(T - 2, -1, -1):
        E = Ep[t + 1]
        bmax = 0.0
        for i in range(K):
            acc = 0.0
            for j in range(K):
                acc += E[i * K + j] * emf[(t + 1) * K + j] * b[(t + 1) * K + j]
            b[t * K + i] = acc
            if acc > bmax:
                bmax = acc
        if not (bmax >= 1e-100 and bmax <= 1e100):
            return False
        for i in range(K):
            b[t * K + i] /= bmax
    for t in range(T):
        ssum = 0.0
        for j in range(K):
            ssum += a[t * K + j] * b[t * K + j]
        if not (ssum >= 1e-100):
            return False
    return True


cdef inline bint _scaled_pair(
    Py_ssize_t K, const double* a_prev, const double* E, const double* emf_t,
    const double* b_t,
    double* P,                              # OUT [K][K] P(y_{t-1} = i, y_t = j)
) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double total = 0.0, x
    for i in range(K):
        x = a_prev[i]
        for j in range(K):
            P[i * K + j] = x * E[i * K + j] * emf_t[j] * b_t[j]
            total += P[i * K + j]
    if not (total > 0.0):
        return False
    total = 1.0 / total
    for i in range(K * K):
        P[i] *= total
    return True


def forward_backward(
    tuple state,                           # IN  the state weights (see above)
    tuple batch,                           # IN  the encoded sequences
    tuple edges,                           # IN  the edge attributes of every token
    const double[::1] W,                   # IN  [F * K * K] edge weights, [f][i][j]
    const int64_t[::1] labels,             # IN  [n_tokens] (length 0 without labels)
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    double[::1] logz_out,                  # OUT [n_seq]
    double[::1] score_out,                 # OUT [n_seq] path score of the labels
    double[:, ::1] marg_out,               # OUT [n_tokens][K] P(y_t = k), or (0, K)
    double[:, ::1] alpha_out,              # OUT [n_tokens][K] log alpha, or (0, K)
    double[:, ::1] ebeta_out,              # OUT [n_tokens][K] em + log beta, or (0, K)
    double[:, ::1] chunk_out,              # OUT [n_chunks][K*K + 2K] with labels:
                                           #     observed minus expected chain counts
    double[:, ::1] wgrad_out,              # OUT [n_blocks][F*K*K] with labels: block b's
                                           #     share of W's gradient, or (0, 0)
    int n_threads,
    const double[::1] seq_weight=None,     # IN  [n_seq] or None / [0]: all 1
):
    """Log Z, path scores, marginals, lattice rows, chain gradients and W's gradient
    of a batch with per-position transitions; returns 0 or -1 (scores out of range).

    The work items are ``n_blocks`` fixed, contiguous blocks of chunks (one when
    ``wgrad_out`` is empty: then every chunk is one), each accumulating W's gradient
    in its own row in sequence order, so the result does not depend on the threads.
    """
    U, S, D, tail_ptr, tail_label = state
    ids, vals, tok_off, seq_off = batch
    eids, evals, etok_off = edges
    if seq_weight is None:
        seq_weight = _NO_WEIGHTS
    return _forward_backward(U, S, D, tail_ptr, tail_label, ids, vals, tok_off, seq_off,
                             eids, evals, etok_off, W, labels, trans, start, end,
                             logz_out, score_out, marg_out, alpha_out, ebeta_out,
                             chunk_out, wgrad_out, n_threads, seq_weight)


cdef int _forward_backward(
    const double[::1] U, Py_ssize_t S, Py_ssize_t D, const int64_t[::1] tail_ptr,
    const int32_t[::1] tail_label, const int32_t[::1] ids, const double[::1] vals,
    const int64_t[::1] tok_off, const int64_t[::1] seq_off, const int32_t[::1] eids,
    const double[::1] evals, const int64_t[::1] etok_off, const double[::1] W,
    const int64_t[::1] labels, const double[:, ::1] trans, const double[::1] start,
    const double[::1] end, double[::1] logz_out, double[::1] score_out,
    double[:, ::1] marg_out, double[:, ::1] alpha_out, double[:, ::1] ebeta_out,
    double[:, ::1] chunk_out, double[:, ::1] wgrad_out, int n_threads,
    const double[::1] seq_weight,
) except -2:
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef const double* evp = _values(evals)
    cdef const int32_t* eip = _ids(eids)
    cdef const double* Wp = _ptr(W)
    cdef const double* Up = _ptr(U)
    cdef Py_ssize_t n_seq = seq_off.shape[0] - 1
    cdef Py_ssize_t K = trans.shape[0]
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t n_chunks = (n_seq + CHUNK - 1) // CHUNK
    cdef bint want_wgrad = labels.shape[0] > 0 and wgrad_out.shape[0] > 0
    cdef Py_ssize_t n_blocks = wgrad_out.shape[0] if want_wgrad else n_chunks
    cdef Py_ssize_t Tmax = _longest(seq_off)
    cdef Py_ssize_t Emax = _most_edge_positions(seq_off, etok_off)
    cdef Py_ssize_t R = ((K if K > S else S) + 3) // 4 * 4
    cdef bint with_labels = labels.shape[0] > 0
    cdef bint want_marginals = marg_out.shape[0] > 0
    cdef bint want_rows = alpha_out.shape[0] > 0
    cdef bint want_chain = with_labels and chunk_out.shape[0] > 0
    cdef bint weighted = seq_weight.shape[0] > 0
    # [Tmax][R] emission rows, [Tmax][K] alpha, beta and emf, [Emax][K][K] the
    # positions' own transitions and [Emax][K][K] their exponentials, [Tmax] offsets,
    # [K][K] a pairwise marginal, [K] log-sum-exp terms.
    cdef Py_ssize_t n_work = Tmax * R + 3 * Tmax * K + 2 * Emax * KK + Tmax + KK + K
    cdef fcrf_layout L
    cdef Py_ssize_t blk, ch, ch0, ch1, s, s_end, T, t, k, m, f
    cdef int64_t t0, e, obs
    cdef double logz, x, z, wt, v, c0 = 0.0
    cdef double* buf
    cdef double* em
    cdef double* alpha
    cdef double* beta
    cdef double* emf
    cdef double* mats
    cdef double* emats
    cdef double* cst
    cdef double* P
    cdef double* tmp
    cdef double* g
    cdef double* E0
    cdef double* EW
    cdef Py_ssize_t F = W.shape[0] // KK if KK > 0 else 0
    cdef bint factored
    cdef const double** tp
    cdef const double** Ep
    cdef bint scaled
    cdef const double* trp = &trans[0, 0]
    cdef int failed = 0, bad = 0
    cdef int* failed_p = &failed
    cdef int* bad_p = &bad

    _check_layout(U, K, S, D, tail_ptr, tail_label, &L)
    # [K][K] exp(trans - c0), then [F][K][K] exp(W[f] - cW[f]) and [F] cW.
    E0 = <double*> malloc((KK + F * KK + F + 1) * sizeof(double))
    if E0 == NULL:
        raise MemoryError("fastcrf: could not allocate the transition factors")
    EW = E0 + KK
    _exp_matrix(K, trp, E0, &c0)
    for f in range(F):
        _exp_matrix(K, Wp + f * KK, EW + f * KK, EW + F * KK + f)
    if want_wgrad:
        wgrad_out[:, :] = 0.0
    with nogil, parallel(num_threads=n_threads):
        buf = <double*> malloc(n_work * sizeof(double))
        tp = <const double**> malloc(2 * (Tmax + 1) * sizeof(double*))
        Ep = tp + Tmax + 1
        em = buf
        alpha = em + Tmax * R
        beta = alpha + Tmax * K
        emf = beta + Tmax * K
        mats = emf + Tmax * K
        emats = mats + Emax * KK
        cst = emats + Emax * KK
        P = cst + Tmax
        tmp = P + KK
        for blk in prange(n_blocks, schedule="dynamic", chunksize=1):
            if buf == NULL or tp == NULL:
                failed_p[0] = 1
                continue
            ch0 = blk * n_chunks // n_blocks
            ch1 = (blk + 1) * n_chunks // n_blocks
            for ch in range(ch0, ch1):
                s_end = (ch + 1) * CHUNK
                if s_end > n_seq:
                    s_end = n_seq
                for s in range(ch * CHUNK, s_end):
                    t0 = seq_off[s]
                    T = seq_off[s + 1] - t0
                    fcrf_emissions(&L, Up, ip, vp, &tok_off[t0], &tok_off[t0 + 1], T, 1.0,
                                   em, R)
                    if not (fcrf_max_abs(em, T * R) <= MAX_SCORE):
                        bad_p[0] = 1
                        logz_out[s] = INFINITY
                        continue
                    # The edge factors: the shared ones, or the position's own product.
                    m = 0
                    factored = not want_rows
                    for t in range(1, T):
                        if not factored:
                            break
                        if etok_off[t0 + t + 1] == etok_off[t0 + t]:
                            Ep[t] = E0
                            cst[t] = c0
                        else:
                            factored = _factor(K, E0, c0, EW, EW + F * KK, eip, evp,
                                               etok_off[t0 + t], etok_off[t0 + t + 1],
                                               emats + m * KK, &cst[t])
                            Ep[t] = emats + m * KK
                            m = m + 1
                    scaled = factored and _scaled(T, K, em, R, Ep, cst, &start[0], &end[0],
                                                  alpha, beta, emf, &logz)
                    if not scaled:
                        # Log space, over the positions' own score matrices.
                        if not _bind_positions(T, K, trp, Wp, eip, evp, &etok_off[t0], mats,
                                               tp):
                            bad_p[0] = 1
                            logz_out[s] = INFINITY
                            continue
                        logz = _forward(T, K, em, R, tp, &start[0], &end[0], alpha, tmp)
                    logz_out[s] = logz
                    if with_labels:
                        score_out[s] = _path_edges(T, K, em, R, trp, Wp, eip, evp,
                                                   &etok_off[t0], &start[0], &end[0],
                                                   &labels[t0])
                    if not (want_marginals or want_rows or want_chain) \
                            or logz == -INFINITY:
                        continue
                    if not scaled:
                        _backward(T, K, em, R, tp, &end[0], beta, tmp)
                    for t in range(T):
                        for k in range(K):
                            if scaled:
                                tmp[k] = alpha[t * K + k] * beta[t * K + k]
                            else:
                                x = alpha[t * K + k] + beta[t * K + k] - logz
                                tmp[k] = exp(x) if x > -INFINITY else 0.0
                        if scaled:
                            z = 0.0
                            for k in range(K):
                                z = z + tmp[k]
                            for k in range(K):
                                tmp[k] = tmp[k] / z
                        for k in range(K):
                            if want_marginals:
                                marg_out[t0 + t, k] = tmp[k]
                            if want_rows:
                                alpha_out[t0 + t, k] = alpha[t * K + k]
                                ebeta_out[t0 + t, k] = em[t * R + k] + beta[t * K + k]
                            if want_chain and (t == 0 or t == T - 1):
                                wt = seq_weight[s] if weighted else 1.0
                                if t == 0:
                                    chunk_out[ch, KK + k] -= wt * tmp[k]
                                if t == T - 1:
                                    chunk_out[ch, KK + K + k] -= wt * tmp[k]
                    if not want_chain:
                        continue
                    wt = seq_weight[s] if weighted else 1.0
                    chunk_out[ch, KK + labels[t0]] += wt
                    chunk_out[ch, KK + K + labels[t0 + T - 1]] += wt
                    for t in range(1, T):
                        if scaled:
                            # Its total is above 1e-200 (see _scaled).
                            _scaled_pair(K, alpha + (t - 1) * K, Ep[t], emf + t * K,
                                         beta + t * K, P)
                        else:
                            _pair(K, alpha + (t - 1) * K, tp[t], em + t * R, beta + t * K,
                                  logz, P)
                        obs = labels[t0 + t - 1] * K + labels[t0 + t]
                        for m in range(KK):
                            chunk_out[ch, m] -= wt * P[m]
                        chunk_out[ch, obs] += wt
                        if not want_wgrad:
                            continue
                        for e in range(etok_off[t0 + t], etok_off[t0 + t + 1]):
                            v = (evp[e] if evp != NULL else 1.0) * wt
                            g = &wgrad_out[blk, 0] + <Py_ssize_t> eip[e] * KK
                            for m in range(KK):
                                g[m] -= v * P[m]
                            g[obs] += v
        free(buf)
        free(tp)
    free(E0)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace")
    return -1 if bad else 0


def edge_gradient(
    tuple batch,                           # IN  the encoded sequences (seq_off is read)
    tuple edges,                           # IN  the edge attributes of every token
    const double[::1] W,                   # IN  [F * K * K] edge weights
    const double[:, ::1] trans,            # IN  [K][K]
    const double[:, ::1] alpha,            # IN  [n_tokens][K] log alpha (forward_backward)
    const double[:, ::1] ebeta,            # IN  [n_tokens][K] em + log beta
    const double[::1] logz,                # IN  [n_seq]
    const int64_t[::1] labels,             # IN  [n_tokens]
    const int64_t[::1] part_bounds,        # IN  [P + 1] part p is edge attributes
                                           #     part_bounds[p] .. part_bounds[p + 1] - 1
    double[::1] grad_out,                  # OUT [F * K * K]
    int n_threads,
    const double[::1] seq_weight=None,     # IN  [n_seq] or None / [0]: all 1
):
    """Gradient of the log-likelihood with respect to the edge weights:

        grad[f][i][j] = sum over (t, f, v) of  v * ([y_{t-1} = i, y_t = j]
                                                    - P(y_{t-1} = i, y_t = j))

    Each part of the edge attributes is one work item whose thread scans the tokens in
    order: every weight adds its terms in token order whatever the thread count.
    """
    _, _, _, seq_off = batch
    eids, evals, etok_off = edges
    if seq_weight is None:
        seq_weight = _NO_WEIGHTS
    _edge_gradient(seq_off, eids, evals, etok_off, W, trans, alpha, ebeta, logz, labels,
                   part_bounds, grad_out, n_threads, seq_weight)


cdef int _edge_gradient(
    const int64_t[::1] seq_off, const int32_t[::1] eids, const double[::1] evals,
    const int64_t[::1] etok_off, const double[::1] W, const double[:, ::1] trans,
    const double[:, ::1] alpha, const double[:, ::1] ebeta, const double[::1] logz,
    const int64_t[::1] labels, const int64_t[::1] part_bounds, double[::1] grad_out,
    int n_threads, const double[::1] seq_weight,
) except -1:
    cdef Py_ssize_t K = trans.shape[0]
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t n_parts = part_bounds.shape[0] - 1
    cdef Py_ssize_t n_seq = seq_off.shape[0] - 1
    cdef const double* evp = _values(evals)
    cdef const int32_t* eip = _ids(eids)
    cdef const double* Wp = _ptr(W)
    cdef const double* trp = &trans[0, 0]
    cdef Py_ssize_t p, s, t, m, i, j
    cdef int64_t e, lo, hi, f, obs
    cdef bint weighted = seq_weight.shape[0] > 0
    cdef bint hit
    cdef double v, wt, x, z
    cdef double* buf
    cdef double* g
    cdef int failed = 0
    cdef int* failed_p = &failed
    with nogil, parallel(num_threads=n_threads):
        # [K][K] the position's transitions, then [K][K] its pairwise marginal.
        buf = <double*> malloc(2 * KK * sizeof(double))
        for p in prange(n_parts, schedule="dynamic", chunksize=1):
            if buf == NULL:
                failed_p[0] = 1
                continue
            lo = part_bounds[p]
            hi = part_bounds[p + 1]
            for m in range(lo * KK, hi * KK):
                grad_out[m] = 0.0
            for s in range(n_seq):
                if logz[s] == -INFINITY:
                    continue
                wt = seq_weight[s] if weighted else 1.0
                for t in range(seq_off[s] + 1, seq_off[s + 1]):
                    hit = False
                    for e in range(etok_off[t], etok_off[t + 1]):
                        if eip[e] >= lo and eip[e] < hi:
                            hit = True
                    if not hit:
                        continue
                    _edge_sum(K, trp, Wp, eip, evp, etok_off[t], etok_off[t + 1], buf)
                    for i in range(K):
                        for j in range(K):
                            x = alpha[t - 1, i] + buf[i * K + j] + ebeta[t, j] - logz[s]
                            buf[KK + i * K + j] = exp(x) if x > -INFINITY else 0.0
                    obs = labels[t - 1] * K + labels[t]
                    for e in range(etok_off[t], etok_off[t + 1]):
                        f = eip[e]
                        if f < lo or f >= hi:
                            continue
                        v = (evp[e] if evp != NULL else 1.0) * wt
                        g = &grad_out[0] + f * KK
                        for m in range(KK):
                            g[m] -= v * buf[KK + m]
                        g[obs] += v
        free(buf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace")
    return 0


def viterbi(
    tuple state,                           # IN  the state weights
    tuple batch,                           # IN  the encoded sequences
    tuple edges,                           # IN  the edge attributes of every token
    const double[::1] W,                   # IN  [F * K * K] edge weights
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    int64_t[::1] paths_out,                # OUT [n_tokens] best label of every token
    double[::1] score_out,                 # OUT [n_seq]
    int n_threads,
):
    """Best label path of every sequence; returns 0 or -1 (scores out of range)."""
    U, S, D, tail_ptr, tail_label = state
    ids, vals, tok_off, seq_off = batch
    eids, evals, etok_off = edges
    return _viterbi_batch(U, S, D, tail_ptr, tail_label, ids, vals, tok_off, seq_off,
                          eids, evals, etok_off, W, trans, start, end, paths_out,
                          score_out, n_threads)


cdef int _viterbi_batch(
    const double[::1] U, Py_ssize_t S, Py_ssize_t D, const int64_t[::1] tail_ptr,
    const int32_t[::1] tail_label, const int32_t[::1] ids, const double[::1] vals,
    const int64_t[::1] tok_off, const int64_t[::1] seq_off, const int32_t[::1] eids,
    const double[::1] evals, const int64_t[::1] etok_off, const double[::1] W,
    const double[:, ::1] trans, const double[::1] start, const double[::1] end,
    int64_t[::1] paths_out, double[::1] score_out, int n_threads,
) except -2:
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef const double* evp = _values(evals)
    cdef const int32_t* eip = _ids(eids)
    cdef const double* Wp = _ptr(W)
    cdef const double* Up = _ptr(U)
    cdef Py_ssize_t n_seq = seq_off.shape[0] - 1
    cdef Py_ssize_t K = trans.shape[0]
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t n_chunks = (n_seq + CHUNK - 1) // CHUNK
    cdef Py_ssize_t Tmax = _longest(seq_off)
    cdef Py_ssize_t Emax = _most_edge_positions(seq_off, etok_off)
    cdef Py_ssize_t R = ((K if K > S else S) + 3) // 4 * 4
    cdef fcrf_layout L
    cdef Py_ssize_t ch, s, s_end, T
    cdef int64_t t0
    cdef double* buf
    cdef int64_t* back
    cdef const double** tp
    cdef const double* trp = &trans[0, 0]
    cdef int failed = 0, bad = 0
    cdef int* failed_p = &failed
    cdef int* bad_p = &bad

    _check_layout(U, K, S, D, tail_ptr, tail_label, &L)
    with nogil, parallel(num_threads=n_threads):
        # [Tmax][R] emission rows, [Tmax][K] delta, [Emax][K][K] the positions' own
        # transitions; [Tmax][K] back pointers; [Tmax] transition pointers.
        buf = <double*> malloc((Tmax * R + Tmax * K + Emax * KK) * sizeof(double))
        back = <int64_t*> malloc((Tmax * K + 1) * sizeof(int64_t))
        tp = <const double**> malloc((Tmax + 1) * sizeof(double*))
        for ch in prange(n_chunks, schedule="dynamic"):
            if buf == NULL or back == NULL or tp == NULL:
                failed_p[0] = 1
                continue
            s_end = (ch + 1) * CHUNK
            if s_end > n_seq:
                s_end = n_seq
            for s in range(ch * CHUNK, s_end):
                t0 = seq_off[s]
                T = seq_off[s + 1] - t0
                fcrf_emissions(&L, Up, ip, vp, &tok_off[t0], &tok_off[t0 + 1], T, 1.0, buf,
                               R)
                if not (fcrf_max_abs(buf, T * R) <= MAX_SCORE) or not _bind_positions(
                        T, K, trp, Wp, eip, evp, &etok_off[t0],
                        buf + Tmax * R + Tmax * K, tp):
                    bad_p[0] = 1
                    score_out[s] = INFINITY
                    continue
                score_out[s] = _viterbi(T, K, buf, R, tp, &start[0], &end[0],
                                        buf + Tmax * R, back, &paths_out[t0])
        free(buf)
        free(back)
        free(tp)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace")
    return -1 if bad else 0


# --------------------------------------------------------------------------- #
# Dense drivers: per-position transitions given as a (B, T, K, K) array.        #
# --------------------------------------------------------------------------- #

def dense_forward_backward(
    const double[:, :, ::1] emissions,     # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const double[:, :, :, ::1] trans,      # IN  [B][T][K][K] trans[b][t] scores
                                           #     y_{t-1} -> y_t (t = 0 unused)
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    const int64_t[:, ::1] tags,            # IN  [B][T] gold labels, or (0, 0)
    double[::1] logz_out,                  # OUT [B]
    double[::1] score_out,                 # OUT [B] path scores of tags
    double[:, :, ::1] node_out,            # OUT [B][T][K] P(y_t = k), or (0, 0, 0)
    double[:, :, :, ::1] pair_out,         # OUT [B][T][K][K] P(y_{t-1} = i, y_t = j)
                                           #     (t >= 1), or (0, 0, 0, 0)
    double[:, ::1] ends_out,               # OUT [B][2K] P(y_0 = k), P(y_{n-1} = k),
                                           #     or (0, 0)
    int n_threads,
):
    """Log Z, path scores, node and pairwise marginals of a dense batch with
    per-position transitions (sequences of length 0 get log Z = 0)."""
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t Tm = emissions.shape[1]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t KK = K * K
    cdef bint with_tags = tags.shape[0] > 0
    cdef bint want_node = node_out.shape[0] > 0
    cdef bint want_pair = pair_out.shape[0] > 0
    cdef bint want_ends = ends_out.shape[0] > 0
    cdef Py_ssize_t b, T, t, k
    cdef double logz, x
    cdef double* buf
    cdef double* alpha
    cdef double* beta
    cdef double* tmp
    cdef const double** tp
    cdef int failed = 0
    cdef int* failed_p = &failed
    if B == 0 or Tm == 0:
        logz_out[:] = 0.0
        score_out[:] = 0.0
        return
    with nogil, parallel(num_threads=n_threads):
        # [Tm][K] alpha, [Tm][K] beta, [K] log-sum-exp terms; [Tm] transition pointers.
        buf = <double*> malloc((2 * Tm * K + K) * sizeof(double))
        tp = <const double**> malloc(Tm * sizeof(double*))
        alpha = buf
        beta = buf + Tm * K
        tmp = beta + Tm * K
        for b in prange(B, schedule="dynamic"):
            if buf == NULL or tp == NULL:
                failed_p[0] = 1
                continue
            T = lengths[b]
            if T == 0:
                logz_out[b] = 0.0
                score_out[b] = 0.0
                continue
            for t in range(T):
                tp[t] = &trans[b, t, 0, 0]
            logz = _forward(T, K, &emissions[b, 0, 0], K, tp, &start[0], &end[0], alpha,
                            tmp)
            logz_out[b] = logz
            if with_tags:
                score_out[b] = _path(T, K, &emissions[b, 0, 0], K, tp, &start[0], &end[0],
                                     &tags[b, 0])
            if logz == -INFINITY or not (want_node or want_pair or want_ends):
                continue
            _backward(T, K, &emissions[b, 0, 0], K, tp, &end[0], beta, tmp)
            if want_node:
                for t in range(T):
                    for k in range(K):
                        x = alpha[t * K + k] + beta[t * K + k] - logz
                        node_out[b, t, k] = exp(x) if x > -INFINITY else 0.0
            if want_ends:
                for k in range(K):
                    x = alpha[k] + beta[k] - logz
                    ends_out[b, k] = exp(x) if x > -INFINITY else 0.0
                    x = alpha[(T - 1) * K + k] + beta[(T - 1) * K + k] - logz
                    ends_out[b, K + k] = exp(x) if x > -INFINITY else 0.0
            if want_pair:
                for t in range(1, T):
                    _pair(K, alpha + (t - 1) * K, tp[t], &emissions[b, t, 0],
                          beta + t * K, logz, &pair_out[b, t, 0, 0])
        free(buf)
        free(tp)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace")


def dense_viterbi(
    const double[:, :, ::1] emissions,     # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const double[:, :, :, ::1] trans,      # IN  [B][T][K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    int64_t[:, ::1] paths_out,             # OUT [B][T] best paths (-1 past the length)
    double[::1] score_out,                 # OUT [B]
    int n_threads,
):
    """Best path of every sequence of a dense batch with per-position transitions."""
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t Tm = emissions.shape[1]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t b, T, t
    cdef double* delta
    cdef int64_t* back
    cdef const double** tp
    cdef int failed = 0
    cdef int* failed_p = &failed
    if B == 0 or Tm == 0:
        score_out[:] = 0.0
        return
    with nogil, parallel(num_threads=n_threads):
        # [Tm][K] delta, [Tm][K] back pointers, [Tm] transition pointers.
        delta = <double*> malloc(Tm * K * sizeof(double))
        back = <int64_t*> malloc(Tm * K * sizeof(int64_t))
        tp = <const double**> malloc(Tm * sizeof(double*))
        for b in prange(B, schedule="dynamic"):
            if delta == NULL or back == NULL or tp == NULL:
                failed_p[0] = 1
                continue
            T = lengths[b]
            for t in range(T, Tm):
                paths_out[b, t] = -1
            if T == 0:
                score_out[b] = 0.0
                continue
            for t in range(T):
                tp[t] = &trans[b, t, 0, 0]
            score_out[b] = _viterbi(T, K, &emissions[b, 0, 0], K, tp, &start[0], &end[0],
                                    delta, back, &paths_out[b, 0])
        free(delta)
        free(back)
        free(tp)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace")


cdef void _bounds(
    Py_ssize_t T, Py_ssize_t K,
    const double* trans,                    # IN  [T][K][K] trans_t (t >= 1)
    double* rowmax,                         # OUT [T][K] max_j trans_t[i][j]
    double* tmax,                           # OUT [T] max_i rowmax[t][i]
) noexcept nogil:
    # The pruning bounds of the k-best recursion (_core._nbest_one), per position.
    cdef Py_ssize_t t, i, j
    cdef const double* row
    cdef double m
    for t in range(1, T):
        tmax[t] = -INFINITY
        for i in range(K):
            row = trans + (t * K + i) * K
            m = row[0]
            for j in range(1, K):
                if row[j] > m:
                    m = row[j]
            rowmax[t * K + i] = m
            if m > tmax[t]:
                tmax[t] = m


def dense_viterbi_nbest(
    const double[:, :, ::1] emissions,     # IN  [B][T][K]
    const int64_t[::1] lengths,            # IN  [B]
    const double[:, :, :, ::1] trans,      # IN  [B][T][K][K], -inf where forbidden
    const double[::1] start,               # IN  [K], -inf where forbidden
    const double[::1] end,                 # IN  [K], -inf where forbidden
    int64_t[:, :, ::1] paths_out,          # OUT [B][k][T], pre-filled with -1
    double[:, ::1] score_out,              # OUT [B][k], pre-filled with -inf
    int n_threads,
):
    """The k best paths of every sequence of a dense batch with per-position
    transitions, in descending score (_core's list Viterbi, position by position)."""
    cdef Py_ssize_t B = emissions.shape[0]
    cdef Py_ssize_t Tm = emissions.shape[1]
    cdef Py_ssize_t K = emissions.shape[2]
    cdef Py_ssize_t k = paths_out.shape[1]
    cdef Py_ssize_t b, T
    cdef double* dbuf
    cdef int64_t* ibuf
    cdef double* rowmax
    cdef double* tmax
    cdef double* delta
    cdef double* top
    cdef double* kth
    cdef int failed = 0
    cdef int* failed_p = &failed
    if B == 0 or Tm == 0 or k == 0:
        return
    with nogil, parallel(num_threads=n_threads):
        # [Tm][K] rowmax, [Tm] tmax, [Tm][K][k] delta, [k] top, [2K] kth and hit;
        # [Tm][K][k] back pointers, [K] label order, [k] top ids.
        dbuf = <double*> malloc((Tm * K + Tm + Tm * K * k + k + 2 * K) * sizeof(double))
        ibuf = <int64_t*> malloc((Tm * K * k + K + k) * sizeof(int64_t))
        rowmax = dbuf
        tmax = rowmax + Tm * K
        delta = tmax + Tm
        top = delta + Tm * K * k
        kth = top + k
        for b in prange(B, schedule="dynamic"):
            if dbuf == NULL or ibuf == NULL:
                failed_p[0] = 1
                continue
            T = lengths[b]
            if T == 0:
                score_out[b, 0] = 0.0           # the one (empty) path
                continue
            _bounds(T, K, &trans[b, 0, 0, 0], rowmax, tmax)
            _nbest_one(K, &trans[b, 0, 0, 0], rowmax, tmax, 1, &start[0], &end[0],
                       &emissions[b, 0, 0], T, k, kth, kth + K, delta, ibuf,
                       ibuf + Tm * K * k, top, ibuf + Tm * K * k + K, &paths_out[b, 0, 0],
                       Tm, &score_out[b, 0])
        free(dbuf)
        free(ibuf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread k-best workspace")
