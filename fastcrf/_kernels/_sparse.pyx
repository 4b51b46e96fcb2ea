# Compiled drivers for CRFs over sparse token features: log Z, marginals and
# gradients, and Viterbi over a whole encoded batch (the estimator's inference).
#
# Design
# ------
# a) A token's emission row is a sparse-dense product: the token lists attributes
#    ``a`` with values ``v`` and row[k] = scale * sum v * W[a][k].  W is [A][K]
#    row-major, so one attribute costs one contiguous K-vector (_rows.h, with the
#    sparse tail layout of fastcrf/_layout.py).  ``scale`` lets the SGD engine keep
#    W = scale * U (L2 decay is one scalar multiply).
# b) Each sequence then goes through the dense single-sequence kernels of _core
#    (scaled forward-backward with its exact log-space fallback, Viterbi), so the
#    sparse and dense APIs share one set of numerics, and one set of chain constants
#    (_core's _chain_scaled / _chain_decoder, built once per call from the transitions).
#    Marginals take the register-blocked kernels of _padded.h first (rows padded to
#    S = K rounded up to 4, as the SGD engine does; 1.5-1.8x on the lattice), and
#    _core's exact ones whenever those decline a sequence or the chain.
# c) Batch drivers ``prange`` over fixed chunks of sequences (CHUNK, from _core.pxd)
#    and write only their own outputs: results never depend on the thread count.
# d) The gradient of the state weights, sum over tokens of v * (onehot - P), is
#    reduced per attribute (layout_gradient): each range of attributes is one work
#    item whose thread scans the tokens, so each weight's entries are added in token
#    order by one thread.  No per-thread copies of W, no atomics.
# e) Inputs are trusted: fastcrf/_training.py and fastcrf/_estimator.py validate ids,
#    offsets and labels (_check_layout is a bounds check of the weights' size).
#    Emission rows that come out non-finite or beyond MAX_SCORE (diverging weights,
#    huge feature values) are reported through a status, never passed to the
#    recursions.
#
# The SGD and perceptron/PA epoch engines are _sgd_engine.pyx and _online_engine.pyx.

import numpy as np

from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free

from libc.string cimport memset

from ._core cimport (CHUNK, Chain, Work, _chain_decoder, _chain_new,
                     _transition_gradient, _transition_gradient_rows, _chain_scaled,
                     _path_score, _sequence_marginals, _viterbi_one, _work_bind, _work_doubles)
from ._limits cimport MAX_SCORE
from ._rows cimport (_check_layout, _ids, _ptr, _values, fcrf_emissions, fcrf_layout,
                     fcrf_max_abs)

from ._padded cimport (_padded_bind, fcrf_padded_available, fcrf_padded_lattice,
                       fcrf_padded_marginals, fcrf_padded_work_doubles,
                       fcrf_path_score_strided)


# The public drivers take the model and the data as two tuples, unpacked here:
#   _STATE = (U, S, D, tail_ptr, tail_label)   StateLayout.kernel_args(flat)
#       U           [D * S + n_tail] state weights in the layout of _rows.h: attribute
#                   a < D owns U[a * S + k]; a dense [A][K] matrix is S = K, D = A
#       tail_ptr    [A - D + 1] (or [0]) offsets of the tail attributes' labels
#       tail_label  [n_tail] the labels whose weights U[D * S + j] they own
#   _BATCH = (ids, vals, tok_off, seq_off)     EncodedSequences.kernel_args()
#       ids         [n_entries] int32 attribute ids
#       vals        [n_entries] attribute values, or [0]: all 1.0
#       tok_off     [n_tokens + 1] entries of each token
#       seq_off     [n_seq + 1] tokens of each sequence (none empty)


# An empty weight vector: every sequence / token weighs 1.
cdef double[::1] _NO_WEIGHTS = np.zeros(0)


cdef Py_ssize_t _longest(const int64_t[::1] seq_off) noexcept:
    # The longest sequence, which sizes the per-thread scratch.
    cdef Py_ssize_t s, T = 0
    for s in range(seq_off.shape[0] - 1):
        if seq_off[s + 1] - seq_off[s] > T:
            T = seq_off[s + 1] - seq_off[s]
    return T


# --------------------------------------------------------------------------- #
# Log-likelihood, marginals and gradient over a whole encoded batch.            #
# --------------------------------------------------------------------------- #

def forward_backward(
    tuple state,                           # IN  the state weights (see _STATE)
    tuple batch,                           # IN  the encoded sequences (see _BATCH)
    const int64_t[::1] labels,             # IN  [n_tokens] (length 0 without labels)
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    double[::1] logz_out,                  # OUT [n_seq]
    double[::1] score_out,                 # OUT [n_seq] path score of the labels
    double[:, ::1] marg_out,               # OUT [n_tokens][K] P(y_t = k) (or shape (0, K))
    double[:, ::1] chunk_out,              # OUT [n_chunks][K*K + 2K] with labels: observed
                                           #     minus expected transition, start, end counts
    int n_threads,
    const double[::1] seq_weight=None,     # IN  [n_seq] weight of each sequence's counts
                                           #     in chunk_out, or None / [0]: all 1
):
    """Log Z, path scores, marginals and transition gradients; returns 0 or -1 (bad scores)."""
    U, S, D, tail_ptr, tail_label = state
    ids, vals, tok_off, seq_off = batch
    if seq_weight is None:
        seq_weight = _NO_WEIGHTS
    return _forward_backward(U, S, D, tail_ptr, tail_label, ids, vals, tok_off, seq_off,
                             labels, trans, start, end, logz_out, score_out, marg_out,
                             chunk_out, n_threads, seq_weight)


cdef int _forward_backward(
    const double[::1] U, Py_ssize_t S, Py_ssize_t D, const int64_t[::1] tail_ptr,
    const int32_t[::1] tail_label, const int32_t[::1] ids, const double[::1] vals,
    const int64_t[::1] tok_off, const int64_t[::1] seq_off, const int64_t[::1] labels,
    const double[:, ::1] trans, const double[::1] start, const double[::1] end,
    double[::1] logz_out, double[::1] score_out, double[:, ::1] marg_out,
    double[:, ::1] chunk_out, int n_threads, const double[::1] seq_weight,
) except -2:
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef Py_ssize_t n_seq = seq_off.shape[0] - 1
    cdef Py_ssize_t K = trans.shape[0]
    cdef Py_ssize_t n_chunks = (n_seq + CHUNK - 1) // CHUNK
    cdef Py_ssize_t Tmax = _longest(seq_off)
    # Emission rows of stride R: a whole number of 4-vectors, at least the layout's row
    # (fcrf_emissions writes S lanes when S % 4 == 0).
    cdef Py_ssize_t R = ((K if K > S else S) + 3) // 4 * 4
    cdef bint with_labels = labels.shape[0] > 0
    cdef bint want_marginals = marg_out.shape[0] > 0
    cdef bint want_edges = with_labels and want_marginals
    cdef bint weighted = seq_weight.shape[0] > 0
    cdef Py_ssize_t nV = K * K + 2 * K
    cdef Py_ssize_t m
    cdef double* acc
    cdef bint padded
    cdef Chain c
    cdef fcrf_padded_lattice pc
    cdef fcrf_layout L
    cdef const double* Up = _ptr(U)
    cdef double* cbuf
    cdef double* pbuf = NULL
    cdef Py_ssize_t ch, s, s_end, T, t, k, i, j
    cdef Py_ssize_t n_work = _work_doubles(Tmax, K) + fcrf_padded_work_doubles(Tmax, R) \
        + 2 * Tmax * R + 1 + nV
    cdef int64_t t0
    cdef double* logz
    cdef double* buf
    cdef double* lem
    cdef double* P
    cdef double* pw
    cdef const int64_t* y
    cdef Work w
    cdef int failed = 0, bad = 0
    cdef int* failed_p = &failed
    cdef int* bad_p = &bad

    _check_layout(U, K, S, D, tail_ptr, tail_label, &L)
    cbuf = _chain_new(&c, K, &trans[0, 0], &start[0], &end[0])
    _chain_scaled(&c)
    # The padded kernels need raw edge sums (a transition range _core allows them for)
    # and are only worth their setup when marginals are wanted.
    padded = want_marginals and c.raw_edges and fcrf_padded_available(R)
    try:
        if padded:
            pbuf = <double*> malloc(2 * K * R * sizeof(double))
            if pbuf == NULL:
                raise MemoryError("fastcrf: could not allocate the padded chain constants")
            _padded_bind(&c, R, pbuf, &pc)
        with nogil, parallel(num_threads=n_threads):
            # [_work_doubles] _core's scratch, [padded work] _padded.h's, then
            # [Tmax][R] emission rows, [Tmax][R] padded node marginals and log Z (the
            # kernel's output goes through memory: it must be the thread's own), then
            # [nV] one sequence's chain counts when they are weighted.
            buf = <double*> malloc(n_work * sizeof(double))
            w = _work_bind(buf, Tmax, K)
            pw = buf + _work_doubles(Tmax, K)
            lem = pw + fcrf_padded_work_doubles(Tmax, R)
            P = lem + Tmax * R
            logz = P + Tmax * R
            acc = logz + 1
            for ch in prange(n_chunks, schedule="dynamic"):
                if buf == NULL:
                    failed_p[0] = 1
                    continue
                s_end = (ch + 1) * CHUNK
                if s_end > n_seq:
                    s_end = n_seq
                for s in range(ch * CHUNK, s_end):
                    t0 = seq_off[s]
                    T = seq_off[s + 1] - t0
                    y = &labels[t0] if with_labels else NULL
                    if weighted and want_edges:
                        # The sequence's counts go to acc, then weighted into the chunk's
                        # row; unweighted they are added in place (bitwise as before).
                        memset(acc, 0, nV * sizeof(double))
                    fcrf_emissions(&L, Up, ip, vp, &tok_off[t0], &tok_off[t0 + 1], T, 1.0,
                                   lem, R)
                    # All R lanes: the padding lanes are read by the padded kernels.
                    if not (fcrf_max_abs(lem, T * R) <= MAX_SCORE):
                        bad_p[0] = 1
                        logz_out[s] = INFINITY
                        continue
                    if padded and fcrf_padded_marginals(&pc, lem, T, pw, P, w.edge,
                                                        logz) == 0:
                        logz_out[s] = logz[0]
                        for t in range(T):
                            for k in range(K):
                                marg_out[t0 + t, k] = P[t * R + k]
                        if with_labels:
                            score_out[s] = fcrf_path_score_strided(c.trans, c.start, c.end,
                                                                   lem, T, K, R, y)
                            _transition_gradient_rows(w.edge, P, R, y, T, K,
                                                      acc if weighted else &chunk_out[ch, 0])
                            if weighted:
                                for m in range(nV):
                                    chunk_out[ch, m] += seq_weight[s] * acc[m]
                        continue
                    # Without marginals, or scores too extreme for the padded kernels:
                    # the exact ones of _core.pyx.
                    for t in range(T):
                        for k in range(K):
                            w.lem[t * K + k] = lem[t * R + k]
                    logz_out[s] = _sequence_marginals(&c, T, &w, want_marginals, want_edges)
                    if want_marginals:
                        for t in range(T):
                            for k in range(K):
                                marg_out[t0 + t, k] = w.alpha[t * K + k]
                    if with_labels:
                        score_out[s] = _path_score(&c, w.lem, T, y)
                    if want_edges:
                        _transition_gradient(&w, y, T, K, acc if weighted else &chunk_out[ch, 0])
                        if weighted:
                            for m in range(nV):
                                chunk_out[ch, m] += seq_weight[s] * acc[m]
            free(buf)
    finally:
        free(cbuf)
        free(pbuf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace")
    return -1 if bad else 0


def layout_gradient(
    tuple batch,                           # IN  the encoded sequences (see _BATCH)
    const double[:, ::1] marg,             # IN  [n_tokens][K] P(y_t = k)
    const int64_t[::1] labels,             # IN  [n_tokens]
    tuple layout,                          # IN  (S, D, tail_ptr, tail_label): the layout
                                           #     of grad_out (see _STATE, without U)
    const int64_t[::1] part_bounds,        # IN  [P + 1] part p is attributes
                                           #     part_bounds[p] .. part_bounds[p + 1] - 1
    double[::1] grad_out,                  # OUT [D * S + n_tail] the gradient, flat in the
                                           #     layout (fastcrf._layout.StateLayout)
    int n_threads,
    const double[::1] token_weight=None,   # IN  [n_tokens] weight of each token's entries
                                           #     (its sequence's), or None / [0]: all 1
    bint accumulate=False,                 # add to grad_out instead of overwriting it
):
    """Gradient of the log-likelihood with respect to the state weights of a layout.

        grad[a][k] = sum over entries (t, a, v) of  v * ([y_t == k] - P(y_t = k))

    written straight into the layout's flat vector: a dense row (padding 0) for
    attributes ``< D``, one value per kept label for the others.  Each part of the
    attributes is one work item: its thread scans the tokens in order and adds the
    entries of its attributes, so every weight sums its entries in token order
    whatever the parts and the thread count.  The marginals are read in order, not
    gathered by attribute.  With ``accumulate``, a batch's gradient is added to what
    ``grad_out`` holds: the sequences can then be taken a block at a time (their
    marginals need not be held all at once), each weight still summing its entries in
    token order.
    """
    ids, vals, tok_off, _ = batch
    S, D, tail_ptr, tail_label = layout
    if token_weight is None:
        token_weight = _NO_WEIGHTS
    n_tokens = tok_off.shape[0] - 1
    if marg.shape[0] != n_tokens or labels.shape[0] != n_tokens or (
            token_weight.shape[0] not in (0, n_tokens)):
        raise ValueError("layout_gradient: marg, labels and token_weight must have one "
                         "row per token of the batch")
    _layout_gradient(ids, vals, tok_off, marg, labels, S, D, tail_ptr, tail_label,
                     part_bounds, grad_out, n_threads, token_weight, accumulate)


cdef void _layout_gradient(
    const int32_t[::1] ids, const double[::1] vals, const int64_t[::1] tok_off,
    const double[:, ::1] marg, const int64_t[::1] labels, Py_ssize_t S, Py_ssize_t D,
    const int64_t[::1] tail_ptr, const int32_t[::1] tail_label,
    const int64_t[::1] part_bounds, double[::1] grad_out, int n_threads,
    const double[::1] token_weight, bint accumulate,
):
    cdef Py_ssize_t n_tokens = tok_off.shape[0] - 1
    cdef bint weighted = token_weight.shape[0] > 0
    cdef Py_ssize_t K = marg.shape[1]
    cdef Py_ssize_t n_parts = part_bounds.shape[0] - 1
    cdef Py_ssize_t p, t, k, j, j0, j1
    cdef int64_t e, lo, hi, a, y, z0, z1
    cdef double v
    cdef double* g
    cdef double* tail = &grad_out[0] + D * S
    cdef const double* P
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    with nogil:
        for p in prange(n_parts, schedule="dynamic", chunksize=1, num_threads=n_threads):
            lo = part_bounds[p]
            hi = part_bounds[p + 1]
            # Zero the part's weights: its dense rows, then its tail entries.
            z0 = lo * S if lo < D else D * S
            z1 = hi * S if hi < D else D * S
            if hi > D:
                z1 = D * S + tail_ptr[hi - D]
            if lo > D:
                z0 = D * S + tail_ptr[lo - D]
            if not accumulate:
                for e in range(z0, z1):
                    grad_out[e] = 0.0
            for t in range(n_tokens):
                P = &marg[t, 0]
                y = labels[t]
                for e in range(tok_off[t], tok_off[t + 1]):
                    a = ip[e]
                    if a < lo or a >= hi:
                        continue
                    v = vp[e] if vp != NULL else 1.0
                    if weighted:
                        v = v * token_weight[t]
                    if a < D:
                        g = &grad_out[0] + a * S
                        for k in range(K):
                            g[k] -= v * P[k]
                        g[y] += v
                    else:
                        j0 = tail_ptr[a - D]
                        j1 = tail_ptr[a - D + 1]
                        for j in range(j0, j1):
                            tail[j] -= v * P[tail_label[j]]
                            if tail_label[j] == y:
                                tail[j] += v


# --------------------------------------------------------------------------- #
# Viterbi over a whole encoded batch.                                           #
# --------------------------------------------------------------------------- #

def viterbi(
    tuple state,                           # IN  the state weights (see _STATE)
    tuple batch,                           # IN  the encoded sequences (see _BATCH)
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    int64_t[::1] paths_out,                # OUT [n_tokens] best label of every token
    double[::1] score_out,                 # OUT [n_seq]
    int n_threads,
):
    """Best label path of every sequence; returns 0 or -1 (bad scores)."""
    U, S, D, tail_ptr, tail_label = state
    ids, vals, tok_off, seq_off = batch
    return _viterbi(U, S, D, tail_ptr, tail_label, ids, vals, tok_off, seq_off, trans, start,
                    end, paths_out, score_out, n_threads)


cdef int _viterbi(
    const double[::1] U, Py_ssize_t S, Py_ssize_t D, const int64_t[::1] tail_ptr,
    const int32_t[::1] tail_label, const int32_t[::1] ids, const double[::1] vals,
    const int64_t[::1] tok_off, const int64_t[::1] seq_off, const double[:, ::1] trans,
    const double[::1] start, const double[::1] end, int64_t[::1] paths_out,
    double[::1] score_out, int n_threads,
) except -2:
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef Py_ssize_t n_seq = seq_off.shape[0] - 1
    cdef Py_ssize_t K = trans.shape[0]
    cdef Py_ssize_t n_chunks = (n_seq + CHUNK - 1) // CHUNK
    cdef Py_ssize_t Tmax = _longest(seq_off)
    cdef Chain c
    cdef fcrf_layout L
    cdef const double* Up = _ptr(U)
    cdef double* cbuf
    cdef Py_ssize_t ch, s, s_end, T
    cdef int64_t t0
    cdef double* dbuf
    cdef Py_ssize_t* rows
    cdef int failed = 0, bad = 0
    cdef int* failed_p = &failed
    cdef int* bad_p = &bad

    _check_layout(U, K, S, D, tail_ptr, tail_label, &L)
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
            if s_end > n_seq:
                s_end = n_seq
            for s in range(ch * CHUNK, s_end):
                t0 = seq_off[s]
                T = seq_off[s + 1] - t0
                fcrf_emissions(&L, Up, ip, vp, &tok_off[t0], &tok_off[t0 + 1], T, 1.0, dbuf,
                               K)
                if not (fcrf_max_abs(dbuf, T * K) <= MAX_SCORE):
                    bad_p[0] = 1
                    score_out[s] = INFINITY
                    continue
                score_out[s] = _viterbi_one(&c, dbuf, T, dbuf + Tmax * K,
                                            dbuf + 2 * Tmax * K, rows, &paths_out[t0])
        free(dbuf)
        free(rows)
    free(cbuf)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread Viterbi workspace")
    return -1 if bad else 0
