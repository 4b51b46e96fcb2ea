# Compiled drivers for CRFs over sparse token features (the estimator's kernels).
#
# Design
# ------
# a) A token's emission row is a sparse-dense product: the token lists attributes
#    ``a`` with values ``v`` and row[k] = scale * sum v * W[a][k].  W is [A][K]
#    row-major, so one attribute costs one contiguous K-vector.  ``scale`` lets the
#    SGD trainer keep W = scale * U (L2 decay is one scalar multiply).
# b) Each sequence then goes through the dense single-sequence kernels of _core
#    (scaled forward-backward with its exact log-space fallback, Viterbi), so the
#    sparse and dense APIs share one set of numerics.
# c) Batch drivers ``prange`` over fixed chunks of sequences (CHUNK, from _core.pxd)
#    and write only their own outputs: results never depend on the thread count.
# d) The gradient of the state weights, sum over tokens of v * (onehot - P), is
#    reduced per attribute through an attribute-major (CSC) index of the entries:
#    each attribute's row is one thread's, and its entries are added in a fixed
#    order.  No per-thread copies of W, no atomics.
# e) SGD (sgd_epoch) runs mini-batches: the per-sequence marginals of a batch are
#    computed in parallel with the weights frozen, then applied in a fixed order by
#    one thread.  The mini-batch size is a parameter, never the thread count.
# f) Inputs are trusted: fastcrf/_training.py and fastcrf/_estimator.py validate ids,
#    offsets and labels.  Emission rows that come out non-finite or beyond
#    MAX_SCORE (diverging weights, huge feature values) are reported through a flag,
#    never passed to the recursions.

from cython.parallel cimport parallel, prange, threadid
from libc.math cimport exp, fabs, pow, sqrt, INFINITY
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset

cdef extern from "_rows.h":
    ctypedef struct fcrf_layout:
        Py_ssize_t K
        Py_ssize_t S
        Py_ssize_t D
        const int64_t* ptr
        const int32_t* label
    void fcrf_emissions(const fcrf_layout* L, const double* U, const int32_t* ids,
                          const double* vals, const int64_t* tok_start,
                          const int64_t* tok_end, Py_ssize_t T, double scale, double* lem,
                          Py_ssize_t stride) noexcept nogil
    double fcrf_add_parts(const double* p0, const double* p1, double* out,
                          Py_ssize_t n) noexcept nogil
    double fcrf_max_abs(const double* x, Py_ssize_t n) noexcept nogil
    void fcrf_prefetch_rows(const fcrf_layout* L, const double* U, const double* Uhat,
                            const int32_t* ids, const int64_t* tok_start,
                            const int64_t* tok_end, Py_ssize_t T) noexcept nogil
    void fcrf_update_token(const fcrf_layout* L, double* U, double* Uhat, const int32_t* ids,
                           const double* vals, int64_t e0, int64_t e1, const double* p,
                           int64_t y, double gain, double beta,
                           int averaging) noexcept nogil

cdef extern from "_kernels.h":
    void fcrf_exp_shifted(const double* x, double shift, double* out,
                          Py_ssize_t K) noexcept nogil

cdef extern from "_chain.h":
    ctypedef struct fcrf_padded_chain:
        Py_ssize_t K
        Py_ssize_t S
        const double* start
        const double* end
        const double* E
        const double* ET
        double tmax
    Py_ssize_t fcrf_chain_work_doubles(Py_ssize_t T, Py_ssize_t S) noexcept nogil
    int fcrf_chain_padded_available(Py_ssize_t S) noexcept nogil
    int fcrf_chain_marginals(const fcrf_padded_chain* c, const double* lem, Py_ssize_t T,
                             double* work, double* marg, double* edge,
                             double* logz) noexcept nogil
    double fcrf_path_score_strided(const double* trans, const double* start,
                                   const double* end, const double* lem, Py_ssize_t T,
                                   Py_ssize_t K, Py_ssize_t S, const int64_t* y) noexcept nogil

from ._core cimport (CHUNK, Chain, Work, _add_path_counts, _chain_gradient,
                     _chain_gradient_rows, _work_doubles,
                     _work_bind, _sequence_marginals, _path_score, _viterbi_one)

# Emission scores beyond this magnitude are rejected (as fastcrf._validation.MAX_SCORE).
cdef double MAX_SCORE = 1e150
# The transition-range limit of the raw edge sums (fastcrf._dense.RAW_EDGE_RANGE).
cdef double RAW_EDGE_RANGE = 300.0


cdef int _check_layout(const double[::1] U, Py_ssize_t K, Py_ssize_t S, Py_ssize_t D,
                       const int64_t[::1] tail_ptr, const int32_t[::1] tail_label,
                       fcrf_layout* L) except -1:
    # Fill L after checking that U has the size the layout says (the Python layer
    # builds both; this catches a mismatch before any kernel reads out of bounds).
    if S < K or D < 0 or U.shape[0] != D * S + tail_label.shape[0] or (
            tail_label.shape[0] > 0 and tail_ptr.shape[0] < 2):
        raise ValueError("the state weights do not match their layout")
    L.K = K
    L.S = S
    L.D = D
    L.ptr = &tail_ptr[0] if tail_ptr.shape[0] > 0 else NULL
    L.label = &tail_label[0] if tail_label.shape[0] > 0 else NULL
    return 0


cdef inline const double* _ptr(const double[::1] x):
    return &x[0] if x.shape[0] > 0 else NULL


cdef inline const double* _values(const double[::1] vals):
    # An empty values array stands for "every value is 1.0" (binary attributes): the
    # common case, which then needs no n_entries doubles of memory.
    return &vals[0] if vals.shape[0] > 0 else NULL


cdef inline const int32_t* _ids(const int32_t[::1] ids):
    # No entries at all (every token without attributes) is valid input.
    return &ids[0] if ids.shape[0] > 0 else NULL


cdef void _chain_constants(const double* trans, Py_ssize_t K, double* E, double* ET,
                           double* tmax, bint* raw_edges) noexcept nogil:
    # E = exp(trans - max(trans)), its transpose, and whether the raw edge sums of
    # the scaled backward pass are safe for this range (see fastcrf._dense).
    cdef Py_ssize_t i, j
    cdef double hi = trans[0], lo = trans[0]
    for i in range(K * K):
        if trans[i] > hi:
            hi = trans[i]
        if trans[i] < lo:
            lo = trans[i]
    # The vectorised exp (_kernels.h): libm's took ~7 us per mini-batch for K = 22.
    fcrf_exp_shifted(trans, hi, E, K * K)
    for i in range(K):
        for j in range(K):
            ET[j * K + i] = E[i * K + j]
    tmax[0] = hi
    raw_edges[0] = (hi - lo) <= RAW_EDGE_RANGE


# --------------------------------------------------------------------------- #
# Log-likelihood, marginals and gradient over a whole encoded batch.            #
# --------------------------------------------------------------------------- #

def forward_backward(
    const double[::1] U,                   # IN  state weights in the layout (S, D, tail_ptr,
    Py_ssize_t S,                          #     tail_label) described in _rows.h; a dense
    Py_ssize_t D,                          #     [A][K] matrix is S = K, D = A, no tail
    const int64_t[::1] tail_ptr,
    const int32_t[::1] tail_label,
    const int32_t[::1] ids,                # IN  [n_entries] attribute ids
    const double[::1] vals,                # IN  [n_entries] attribute values, or [0]: all 1.0
    const int64_t[::1] tok_off,            # IN  [n_tokens + 1]
    const int64_t[::1] seq_off,            # IN  [n_seq + 1] token offsets
    const int64_t[::1] labels,             # IN  [n_tokens] (length 0 without labels)
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    Py_ssize_t Tmax,                       # IN  longest sequence
    double[::1] logz_out,                  # OUT [n_seq]
    double[::1] score_out,                 # OUT [n_seq] path score of the labels
    double[:, ::1] marg_out,               # OUT [n_tokens][K] P(y_t = k) (or shape (0, K))
    double[:, ::1] chunk_out,              # OUT [n_chunks][K*K + 2K] with labels: observed
                                           #     minus expected transition, start, end counts
    int n_threads,
):
    """Log Z, path scores, marginals and transition gradients; returns 0 or -1 (bad scores)."""
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef Py_ssize_t n_seq = seq_off.shape[0] - 1
    cdef Py_ssize_t K = trans.shape[0]
    cdef Py_ssize_t n_chunks = (n_seq + CHUNK - 1) // CHUNK
    cdef bint with_labels = labels.shape[0] > 0
    cdef bint want_marginals = marg_out.shape[0] > 0
    cdef bint want_edges = with_labels and want_marginals
    cdef Chain c
    cdef fcrf_layout L
    cdef const double* Up = _ptr(U)
    cdef double* E = <double*> malloc(2 * K * K * sizeof(double))
    cdef Py_ssize_t ch, s, s_end, T, t, k, i
    cdef int64_t t0
    cdef double* buf
    cdef const int64_t* y
    cdef Work w
    cdef int failed = 0, bad = 0
    cdef int* failed_p = &failed
    cdef int* bad_p = &bad

    if E == NULL:
        raise MemoryError()
    try:
        _check_layout(U, K, S, D, tail_ptr, tail_label, &L)
    except ValueError:
        free(E)
        raise
    c.K = K
    c.trans = &trans[0, 0]
    c.start = &start[0]
    c.end = &end[0]
    c.E = E
    c.ET = E + K * K
    _chain_constants(&trans[0, 0], K, E, E + K * K, &c.tmax, &c.raw_edges)
    try:
        with nogil, parallel(num_threads=n_threads):
            buf = <double*> malloc(_work_doubles(Tmax, K) * sizeof(double))
            w = _work_bind(buf, Tmax, K)
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
                    fcrf_emissions(&L, Up, ip, vp, &tok_off[t0], &tok_off[t0 + 1], T, 1.0,
                                   w.lem, K)
                    if not (fcrf_max_abs(w.lem, T * K) <= MAX_SCORE):
                        bad_p[0] = 1
                        logz_out[s] = INFINITY
                        continue
                    logz_out[s] = _sequence_marginals(&c, T, &w, want_marginals, want_edges)
                    if want_marginals:
                        for t in range(T):
                            for k in range(K):
                                marg_out[t0 + t, k] = w.alpha[t * K + k]
                    if with_labels:
                        y = &labels[t0]
                        score_out[s] = _path_score(&c, w.lem, T, y)
                    if want_edges:
                        _chain_gradient(&w, y, T, K, &chunk_out[ch, 0])
            free(buf)
    finally:
        free(E)
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread workspace")
    return -1 if bad else 0


def state_gradient(
    const int64_t[::1] attr_ptr,           # IN  [A + 1] CSC: entries of attribute a are
    const int64_t[::1] entry_token,        # IN  [n_entries] token of each (sorted) entry
    const double[::1] entry_value,         # IN  [n_entries] value of each (sorted) entry
    const double[:, ::1] marg,             # IN  [n_tokens][K] P(y_t = k)
    const int64_t[::1] labels,             # IN  [n_tokens]
    double[:, ::1] grad_out,               # OUT [A][K] sum v * ([y_t == k] - P(y_t = k))
    int n_threads,
):
    """Gradient of the log-likelihood with respect to the state weights."""
    cdef Py_ssize_t A = attr_ptr.shape[0] - 1
    cdef Py_ssize_t K = marg.shape[1]
    cdef Py_ssize_t a, k
    cdef int64_t e, tok
    cdef double v
    cdef double* g
    cdef const double* p
    cdef int unit = entry_value.shape[0] == 0
    with nogil:
        for a in prange(A, schedule="static", num_threads=n_threads):
            g = &grad_out[a, 0]
            for k in range(K):
                g[k] = 0.0
            for e in range(attr_ptr[a], attr_ptr[a + 1]):
                tok = entry_token[e]
                v = entry_value[e] if unit == 0 else 1.0
                p = &marg[tok, 0]
                for k in range(K):
                    g[k] -= v * p[k]
                g[labels[tok]] += v


def layout_gradient(
    const int32_t[::1] ids,                # IN  [n_entries] attribute id of each entry
    const double[::1] vals,                # IN  [n_entries] value of each entry; empty: 1.0
    const int64_t[::1] tok_off,            # IN  [n_tokens + 1] entries of token t are
                                           #     tok_off[t] .. tok_off[t + 1] - 1
    const double[:, ::1] marg,             # IN  [n_tokens][K] P(y_t = k)
    const int64_t[::1] labels,             # IN  [n_tokens]
    Py_ssize_t S,                          # IN  dense row stride (K padded)
    Py_ssize_t D,                          # IN  attributes < D own a dense row
    const int64_t[::1] tail_ptr,           # IN  [A - D + 1] tail attribute a keeps the
    const int32_t[::1] tail_label,         # IN  labels tail_label[tail_ptr[a - D] ..]
    const int64_t[::1] part_bounds,        # IN  [P + 1] part p is attributes
                                           #     part_bounds[p] .. part_bounds[p + 1] - 1
    double[::1] grad_out,                  # OUT [D * S + n_tail] the gradient, flat in the
                                           #     layout (fastcrf._layout.StateLayout)
    int n_threads,
):
    """Gradient of the log-likelihood with respect to the state weights of a layout.

        grad[a][k] = sum over entries (t, a, v) of  v * ([y_t == k] - P(y_t = k))

    written straight into the layout's flat vector: a dense row (padding 0) for
    attributes ``< D``, one value per kept label for the others.  Each part of the
    attributes is one work item: its thread scans the tokens in order and adds the
    entries of its attributes, so every weight sums its entries in token order
    whatever the parts and the thread count (the result equals
    :func:`state_gradient`'s, bitwise).  The marginals are read in order, not
    gathered by attribute.
    """
    cdef Py_ssize_t n_tokens = tok_off.shape[0] - 1
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
    const double[::1] U,                   # IN  state weights in a layout (as forward_backward)
    Py_ssize_t S,
    Py_ssize_t D,
    const int64_t[::1] tail_ptr,
    const int32_t[::1] tail_label,
    const int32_t[::1] ids,                # IN  [n_entries]
    const double[::1] vals,                # IN  [n_entries]
    const int64_t[::1] tok_off,            # IN  [n_tokens + 1]
    const int64_t[::1] seq_off,            # IN  [n_seq + 1]
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    const double[::1] rowmax,              # IN  [K] max_j trans[i][j]
    const double[:, ::1] transT,           # IN  [K][K]
    Py_ssize_t Tmax,                       # IN  longest sequence
    int64_t[::1] paths_out,                # OUT [n_tokens] best label of every token
    double[::1] score_out,                 # OUT [n_seq]
    int n_threads,
):
    """Best label path of every sequence; returns 0 or -1 (bad scores)."""
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef Py_ssize_t n_seq = seq_off.shape[0] - 1
    cdef Py_ssize_t K = trans.shape[0]
    cdef Py_ssize_t n_chunks = (n_seq + CHUNK - 1) // CHUNK
    cdef Chain c
    cdef fcrf_layout L
    cdef const double* Up = _ptr(U)
    cdef Py_ssize_t ch, s, s_end, T
    cdef int64_t t0
    cdef double* dbuf
    cdef Py_ssize_t* rows
    cdef int failed = 0, bad = 0
    cdef int* failed_p = &failed
    cdef int* bad_p = &bad

    _check_layout(U, K, S, D, tail_ptr, tail_label, &L)
    c.K = K
    c.trans = &trans[0, 0]
    c.start = &start[0]
    c.end = &end[0]
    c.rowmax = &rowmax[0]
    c.transT = &transT[0, 0]
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
    if failed:
        raise MemoryError("fastcrf: could not allocate the per-thread Viterbi workspace")
    return -1 if bad else 0


# --------------------------------------------------------------------------- #
# Averaged SGD (Bottou's crfasgd; Xu 2011) over mini-batches.                   #
# --------------------------------------------------------------------------- #
#
# The weights are never stored as such.  With U the state weights and V the
# transition, start and end scores (one flat vector), the current iterate is
#     w = alpha * (U, V)
# and the running average is
#     wbar = (Uhat + beta * U, Vhat + beta * V) / gamma.
# A step w <- (1 - eta lambda n_b) w + eta g (g: the summed log-likelihood gradient
# of the n_b sequences of the mini-batch) becomes
#     alpha <- alpha (1 - eta lambda n_b);  dU = (eta / alpha) g;  U += dU,
# and the averaging step wbar <- (1 - mu) wbar + mu w becomes
#     Uhat -= beta dU;  gamma <- gamma / (1 - mu);  beta <- beta + mu gamma alpha,
# so a step only touches the weights of the attributes the mini-batch holds.
# While mu = 1 (before averaging starts) wbar = w: Uhat = 0, beta = alpha, gamma = 1.
#
# scalars: [0] alpha  [1] beta  [2] gamma  [3] t (sequences seen)  [4] steps taken

cdef enum:
    S_ALPHA = 0
    S_BETA = 1
    S_GAMMA = 2
    S_T = 3
    S_STEP = 4


cdef void _fold(double* U, double* Uhat, Py_ssize_t nU, double* V, double* Vhat,
                Py_ssize_t nV, double* scalars, bint averaging) noexcept nogil:
    # Rewrite (U, V, Uhat, Vhat, alpha, beta, gamma) with alpha = gamma = 1; the
    # iterate and the average stay the same.  O(n_weights): once per epoch, or when
    # alpha gets small enough to cost precision.
    cdef Py_ssize_t i
    cdef double alpha = scalars[S_ALPHA]
    cdef double beta = scalars[S_BETA]
    cdef double inv_gamma = 1.0 / scalars[S_GAMMA]
    if averaging:
        for i in range(nU):
            Uhat[i] = (Uhat[i] + beta * U[i]) * inv_gamma
            U[i] *= alpha
        for i in range(nV):
            Vhat[i] = (Vhat[i] + beta * V[i]) * inv_gamma
            V[i] *= alpha
        scalars[S_BETA] = 0.0
    else:
        for i in range(nU):
            U[i] *= alpha
        for i in range(nV):
            V[i] *= alpha
        scalars[S_BETA] = 1.0
    scalars[S_ALPHA] = 1.0
    scalars[S_GAMMA] = 1.0


cdef extern from "_sync.h":
    int64_t fcrf_sync_load(volatile int64_t* p) noexcept nogil
    void fcrf_sync_store(volatile int64_t* p, int64_t v) noexcept nogil
    void fcrf_sync_add(volatile int64_t* p, int64_t v) noexcept nogil
    void fcrf_sync_wait(int64_t* spins) noexcept nogil
    int64_t fcrf_claim_word(int64_t gen, int64_t n) noexcept nogil
    int64_t fcrf_claim(volatile int64_t* word, int64_t gen, int from_back) noexcept nogil

# The largest mini-batch: a batch is claimed through a 16-bit field (_sync.h).
MAX_BATCH = 65535

cdef enum:
    # The state weights are split into this many parts (split_parts) for the emission
    # scores and the step, whatever the thread count: a sequence's emission scores
    # are its parts' sums added in part order, so results do not depend on it.
    # Thread 0 takes items from the front and helpers from the back (_sync.h), so
    # thread 0 runs part 0 and a helper part 1 unless the other is late: each part's
    # weight rows then stay in one core's cache (with every row visited by both
    # cores, the step took three times as long).
    N_PARTS = 2
    # Attributes go to the parts in blocks of 2**BLOCK_SHIFT consecutive ids
    # (balanced_parts), not one by one, because neighbouring rows share cache lines
    # and the hardware prefetchers fetch the lines next to a row: a line of one part
    # that the other core's cache holds must be taken from it before it is written.
    # The weights are 64-byte aligned (fastcrf._sgd), so a block of dense rows is
    # whole lines.  CoNLL-2000 on a 2-vCPU Xeon: with blocks of 16 ids, the update
    # on two threads took as long as on one (each half at ~2x the one-thread cost
    # per entry); with 64, an epoch is ~20% faster.  Larger blocks balance worse:
    # the first ones hold the frequent attributes, whose rows stay in cache.
    BLOCK_SHIFT = 6
    # The three kinds of work items of a mini-batch, in the order they run.
    KIND_EMISSIONS = 0     # item p: part p of every sequence's emission scores
    KIND_SEQUENCE = 1      # item i: marginals and chain gradient of sequence i
    KIND_STEP = 2          # item p: part p of the SGD step

# For the Python layer (thread counts).
WEIGHT_PARTS = N_PARTS




cdef struct SGDBatch:
    # What every thread reads to compute the marginals of one mini-batch.
    const fcrf_layout* L
    const Chain* c
    const fcrf_padded_chain* pc   # the same chain with rows padded to S (_chain.h)
    bint padded           # use pc: S % 4 == 0, and the transition range allows raw edges
    const double* U
    const double* scalars
    const int32_t* ids
    const double* vals
    const int64_t* tok_off
    const int64_t* tok_mid   # [n_tokens] first entry of part 1 of each token (split_parts)
    const int64_t* seq_off
    const int64_t* labels
    const int64_t* order
    double* part_lem      # [N_PARTS][batch][Tmax][S] emission scores, from each part
    double* marg          # [batch][Tmax][S] node marginals, rows zero-padded to S
    double* dv            # [batch][nV] observed minus expected chain counts
    double* loss          # [n_visit] -log p(y|x) of each visit
    Py_ssize_t Tmax
    Py_ssize_t S
    Py_ssize_t nV
    Py_ssize_t pos        # the batch is visits pos .. pos + nb - 1
    Py_ssize_t nb
    Py_ssize_t batch_size
    int kind              # what the current generation's items are: KIND_EMISSIONS,
                          # KIND_SEQUENCE or KIND_STEP
    # The step (kind 1): weights, and the step's scalars
    double* Uw
    double* Uhat
    double* V
    double* Vhat
    const double* V_mask
    double gain
    double beta
    int averaging


cdef inline const int64_t* _part_starts(const SGDBatch* b, Py_ssize_t part) noexcept nogil:
    # Token t's entries of part p are [_part_starts(p)[t], _part_starts(p + 1)[t]):
    # part 0 starts at tok_off[t], part 1 at tok_mid[t], and part 1 ends at tok_off[t + 1].
    if part == 0:
        return b.tok_off
    return b.tok_mid if part == 1 else b.tok_off + 1


cdef void _batch_emissions(const SGDBatch* b, Py_ssize_t part) noexcept nogil:
    # Part ``part`` of the emission scores of every sequence of the batch.  The thread
    # that runs it usually runs the same part of the step (see N_PARTS), so the
    # weight rows it loads here are still in its core's cache then.
    cdef Py_ssize_t S = b.S
    cdef Py_ssize_t i
    cdef int64_t s, t0, T
    # b.averaging: whether the previous step averaged, so that this one will too.
    cdef const double* hat = b.Uhat if b.averaging else NULL
    cdef const int64_t* start = _part_starts(b, part)
    cdef const int64_t* end = _part_starts(b, part + 1)
    for i in range(b.nb):
        s = b.order[b.pos + i]
        t0 = b.seq_off[s]
        T = b.seq_off[s + 1] - t0
        fcrf_prefetch_rows(b.L, b.U, hat, b.ids, start + t0, end + t0, T)
        fcrf_emissions(b.L, b.U, b.ids, b.vals, start + t0, end + t0, T, b.scalars[S_ALPHA],
                       b.part_lem + (part * b.batch_size + i) * b.Tmax * S, S)


cdef int _batch_sequence(const SGDBatch* b, Work* w, double* pw, Py_ssize_t i) noexcept nogil:
    # Marginals and chain gradient of the i-th sequence of the batch, into its own
    # slots; returns 1 when its scores are not finite or too large.  pw: the thread's
    # scratch for the padded kernels (_chain.h), then [Tmax][S] emission scores.
    cdef Py_ssize_t K = b.c.K
    cdef Py_ssize_t S = b.S
    cdef int64_t s = b.order[b.pos + i]
    cdef int64_t t0 = b.seq_off[s]
    cdef Py_ssize_t T = b.seq_off[s + 1] - t0
    cdef const int64_t* y = b.labels + t0
    cdef double* P = b.marg + i * b.Tmax * S
    cdef double* dv = b.dv + i * b.nV
    cdef Py_ssize_t t, k
    cdef double logz
    cdef double* plem = pw + fcrf_chain_work_doubles(b.Tmax, S)
    cdef Py_ssize_t part1 = b.batch_size * b.Tmax * S
    memset(dv, 0, b.nV * sizeof(double))
    if not (fcrf_add_parts(b.part_lem + i * b.Tmax * S, b.part_lem + part1 + i * b.Tmax * S,
                           plem, T * S) <= MAX_SCORE):
        b.loss[b.pos + i] = INFINITY
        memset(P, 0, T * S * sizeof(double))
        return 1
    if b.padded:
        if fcrf_chain_marginals(b.pc, plem, T, pw, P, w.edge, &logz) == 0:
            b.loss[b.pos + i] = logz - fcrf_path_score_strided(
                b.c.trans, b.c.start, b.c.end, plem, T, K, S, y)
            _chain_gradient_rows(w.edge, P, S, y, T, K, dv)
            return 0
    # Scores too extreme for the padded kernels: the exact ones of _core.pyx.
    for t in range(T):
        for k in range(K):
            w.lem[t * K + k] = plem[t * S + k]
    logz = _sequence_marginals(b.c, T, w, True, True)
    b.loss[b.pos + i] = logz - _path_score(b.c, w.lem, T, y)
    # Rows of stride S, zero-padded: the update reads whole vectors.
    for t in range(T):
        for k in range(K):
            P[t * S + k] = w.alpha[t * K + k]
        for k in range(K, S):
            P[t * S + k] = 0.0
    _chain_gradient(w, y, T, K, dv)
    return 0


cdef void _batch_update(const SGDBatch* b, Py_ssize_t part) noexcept nogil:
    # Part ``part`` of the step: the state rows of the attributes in that part
    # (_rows.h, fcrf_in_part), each receiving its updates in mini-batch order, and
    # with part 0 the chain scores.
    cdef Py_ssize_t S = b.S
    cdef Py_ssize_t i, t, m
    cdef int64_t s, t0, T
    cdef double x
    cdef const double* P
    cdef const double* dv
    cdef const int64_t* start = _part_starts(b, part)
    cdef const int64_t* end = _part_starts(b, part + 1)
    for i in range(b.nb):
        s = b.order[b.pos + i]
        t0 = b.seq_off[s]
        T = b.seq_off[s + 1] - t0
        P = b.marg + i * b.Tmax * S
        for t in range(T):
            fcrf_update_token(b.L, b.Uw, b.Uhat, b.ids, b.vals, start[t0 + t], end[t0 + t],
                              P + t * S, b.labels[t0 + t], b.gain, b.beta, b.averaging)
        if part == 0:
            dv = b.dv + i * b.nV
            for m in range(b.nV):
                x = b.gain * dv[m] * b.V_mask[m]
                b.V[m] += x
                if b.averaging:
                    b.Vhat[m] -= b.beta * x


cdef void _run_items(SGDBatch* b, Work* w, double* pw, volatile int64_t* sync, int64_t gen,
                     int* bad, int helper) noexcept nogil:
    # Take and run items of generation gen until none is left: the master (helper=0)
    # from the front, helpers from the back, so that each keeps its weight part.
    cdef int64_t i = fcrf_claim(&sync[1], gen, helper)
    while i >= 0:
        if b.kind == KIND_SEQUENCE:
            if _batch_sequence(b, w, pw, i):
                bad[0] = 1
        elif b.kind == KIND_EMISSIONS:
            _batch_emissions(b, i)
        else:
            _batch_update(b, i)
        fcrf_sync_add(&sync[2], 1)
        i = fcrf_claim(&sync[1], gen, helper)


cdef void _publish(SGDBatch* b, volatile int64_t* sync, int64_t gen, int kind,
                   Py_ssize_t n_items) noexcept nogil:
    b.kind = kind
    fcrf_sync_store(&sync[2], 0)
    fcrf_sync_store(&sync[1], fcrf_claim_word(gen, n_items))
    fcrf_sync_store(&sync[0], gen)


cdef void _await(volatile int64_t* sync, Py_ssize_t n_items) noexcept nogil:
    # Wait until the items of the current generation are done.
    cdef int64_t spins = 0
    while fcrf_sync_load(&sync[2]) < n_items:
        fcrf_sync_wait(&spins)


cdef enum:
    SORT_MAX = 64       # longer tokens keep their order (insertion sort is quadratic)


cdef void _sort_entries(int32_t* ids, double* vals, int64_t lo, int64_t hi) noexcept nogil:
    # Stable insertion sort of the entries [lo, hi) by attribute id.
    cdef int64_t e, j
    cdef int32_t a
    cdef double v = 0.0
    for e in range(lo + 1, hi):
        a = ids[e]
        if vals != NULL:
            v = vals[e]
        j = e
        while j > lo and ids[j - 1] > a:
            ids[j] = ids[j - 1]
            if vals != NULL:
                vals[j] = vals[j - 1]
            j -= 1
        ids[j] = a
        if vals != NULL:
            vals[j] = v


def tail_pairs(
    const int32_t[::1] ids,                # IN  [n_entries] attribute ids, < n_attributes
    const int64_t[::1] tok_off,            # IN  [n_tokens + 1]
    const int64_t[::1] labels,             # IN  [n_tokens] label codes, < n_labels
    Py_ssize_t n_dense,
    Py_ssize_t n_attributes,
    Py_ssize_t n_labels,
):
    """The (attribute, label) pairs seen in training, for attributes >= ``n_dense``.

    Returns ``(ptr, tail_labels)``: attribute ``n_dense + r`` was seen with the labels
    ``tail_labels[ptr[r]:ptr[r + 1]]``, in increasing order (StateLayout's tail).  One
    pass, with one byte per candidate pair as scratch.
    """
    import numpy as np

    cdef Py_ssize_t K = n_labels
    cdef Py_ssize_t R = n_attributes - n_dense
    cdef Py_ssize_t n_tok = tok_off.shape[0] - 1
    if R < 0 or K < 1 or labels.shape[0] != n_tok or (
            n_tok > 0 and (tok_off[0] < 0 or tok_off[n_tok] > ids.shape[0])):
        raise ValueError("tail_pairs: the arrays do not match")
    seen_arr = np.zeros(R * K, dtype=np.uint8)
    ptr_arr = np.zeros(R + 1, dtype=np.int64)
    cdef unsigned char[::1] seen = seen_arr
    cdef int64_t[::1] ptr = ptr_arr
    cdef Py_ssize_t t, r, k
    cdef int64_t e, y, a, j
    cdef int bad = 0
    for t in range(n_tok):
        if tok_off[t + 1] < tok_off[t]:
            raise ValueError("tail_pairs: tok_off must not decrease")
    with nogil:
        for t in range(n_tok):
            y = labels[t]
            if y < 0 or y >= K:
                bad = 1
                break
            for e in range(tok_off[t], tok_off[t + 1]):
                a = ids[e]
                if a >= n_dense:
                    if a >= n_attributes:
                        bad = 1
                        break
                    seen[(a - n_dense) * K + y] = 1
        if not bad:
            for r in range(R):
                j = 0
                for k in range(K):
                    j += seen[r * K + k]
                ptr[r + 1] = ptr[r] + j
    if bad:
        raise ValueError("tail_pairs: a label or attribute id is out of range")
    out_arr = np.empty(ptr[R], dtype=np.int32)
    cdef int32_t[::1] out = out_arr
    with nogil:
        j = 0
        for r in range(R):
            for k in range(K):
                if seen[r * K + k]:
                    out[j] = <int32_t> k
                    j += 1
    return ptr_arr, out_arr


def balanced_parts(const int32_t[::1] ids, Py_ssize_t n_attributes):
    """The weight part (0 or 1) of each block of ``2**BLOCK_SHIFT`` attribute ids.

    Blocks are taken in id order, each going to the part with fewer entries of
    ``ids`` so far: with ids numbered by decreasing frequency (fastcrf._encoding),
    the two parts get nearly as many entries, of frequent and rare attributes alike.

    Returns
    -------
    ndarray of shape (ceil(n_attributes / 2**BLOCK_SHIFT),), uint8
    """
    import numpy as np

    if n_attributes < 0:
        raise ValueError("balanced_parts: n_attributes must be >= 0")
    cdef Py_ssize_t n_blocks = (n_attributes + (1 << BLOCK_SHIFT) - 1) >> BLOCK_SHIFT
    counts_arr = np.zeros(n_blocks, dtype=np.int64)
    parts_arr = np.zeros(n_blocks, dtype=np.uint8)
    cdef int64_t[::1] counts = counts_arr
    cdef unsigned char[::1] parts = parts_arr
    cdef Py_ssize_t e, k
    cdef int64_t a, load0 = 0, load1 = 0
    cdef int bad = 0
    with nogil:
        for e in range(ids.shape[0]):
            a = ids[e]
            if a < 0 or a >= n_attributes:
                bad = 1
                break
            counts[a >> BLOCK_SHIFT] += 1
        for k in range(n_blocks):
            if load1 < load0:
                parts[k] = 1
                load1 += counts[k]
            else:
                load0 += counts[k]
    if bad:
        raise ValueError("balanced_parts: ids must be in [0, n_attributes)")
    return parts_arr


def split_parts(
    int32_t[::1] ids,                      # INOUT [n_entries] reordered within each token
    double[::1] vals,                      # INOUT [n_entries] or empty, reordered alike
    const int64_t[::1] tok_off,            # IN  [n_tokens + 1]
    int64_t[::1] tok_mid,                  # OUT [n_tokens]
    const unsigned char[::1] block_part,   # IN  [n_blocks] part of each block of ids
                                           #     (balanced_parts)
    int n_threads=1,
):
    """Put each token's part-0 entries before its part-1 entries, in place.

    ``sgd_epoch`` gives each of its two threads the weights of one part (attribute
    ``a`` is in part ``block_part[a >> BLOCK_SHIFT]``); it needs the entries of a
    token grouped by part, with ``tok_mid[t]`` the first of part 1.  Inside a part,
    entries are sorted by attribute id (stable) when the part has at most SORT_MAX of
    them: the dense attributes (low ids) then come before the tail ones, and the
    kernels' branch between the two is predicted.  Only speed depends on that order.
    """
    cdef Py_ssize_t n_tok = tok_off.shape[0] - 1
    cdef bint with_vals = vals.shape[0] > 0
    cdef Py_ssize_t t, longest = 0
    cdef int64_t e, lo, n0, n1
    cdef int32_t* tmp_id
    cdef double* tmp_val
    cdef int32_t* idp = &ids[0] if ids.shape[0] > 0 else NULL
    cdef double* valp = &vals[0] if with_vals else NULL
    cdef int failed = 0
    cdef int* failed_p = &failed     # assigned in prange, a plain int would be private
    cdef const unsigned char* part_of = &block_part[0] if block_part.shape[0] > 0 else NULL
    cdef int64_t n_ids = (<int64_t> block_part.shape[0]) << BLOCK_SHIFT
    if tok_mid.shape[0] != n_tok or (with_vals and vals.shape[0] != ids.shape[0]) or (
            n_tok > 0 and (tok_off[0] < 0 or tok_off[n_tok] > ids.shape[0])):
        raise ValueError("split_parts: the arrays do not match")
    for e in range(ids.shape[0]):
        if not 0 <= idp[e] < n_ids:
            raise ValueError("split_parts: an attribute id has no block in block_part")
    for t in range(n_tok):
        if tok_off[t + 1] < tok_off[t]:
            raise ValueError("split_parts: tok_off must not decrease")
        if tok_off[t + 1] - tok_off[t] > longest:
            longest = tok_off[t + 1] - tok_off[t]
    with nogil, parallel(num_threads=n_threads):
        tmp_id = <int32_t*> malloc((longest + 1) * sizeof(int32_t))
        tmp_val = <double*> malloc((longest + 1) * sizeof(double))
        for t in prange(n_tok, schedule="static"):
            if tmp_id == NULL or tmp_val == NULL:
                failed_p[0] = 1
                continue
            lo = tok_off[t]
            n0 = 0
            n1 = 0
            for e in range(lo, tok_off[t + 1]):
                if part_of[idp[e] >> BLOCK_SHIFT]:
                    tmp_id[n1] = idp[e]
                    if with_vals:
                        tmp_val[n1] = valp[e]
                    n1 = n1 + 1
                else:
                    idp[lo + n0] = idp[e]
                    if with_vals:
                        valp[lo + n0] = valp[e]
                    n0 = n0 + 1
            tok_mid[t] = lo + n0
            for e in range(n1):
                idp[lo + n0 + e] = tmp_id[e]
                if with_vals:
                    valp[lo + n0 + e] = tmp_val[e]
            if n0 <= SORT_MAX:
                _sort_entries(idp, valp, lo, lo + n0)
            if n1 <= SORT_MAX:
                _sort_entries(idp, valp, lo + n0, tok_off[t + 1])
        free(tmp_id)
        free(tmp_val)
    if failed:
        raise MemoryError("fastcrf: could not allocate the split_parts workspace")


def sgd_epoch(
    double[::1] U,                         # INOUT [n_state] scaled state weights (layout below)
    double[::1] Uhat,                      # INOUT [n_state] averaging accumulator
    double[::1] V,                         # INOUT [K*K + 2K] scaled transitions, start, end
    double[::1] Vhat,                      # INOUT [K*K + 2K]
    Py_ssize_t K,                          # IN  labels
    Py_ssize_t D,                          # IN  dense attributes: U[a * S + k] for a < D, where
                                           #     S = K rounded up to a multiple of 4
    const int64_t[::1] tail_ptr,           # IN  [A - D + 1] tail offsets: attribute a >= D
    const int32_t[::1] tail_label,         # IN  [n_tail]    has the weights U[D*S + j] of
                                           #     labels tail_label[j], j in its offsets
    const double[::1] V_mask,              # IN  [K*K + 2K] 1 for trainable scores, else 0
    double[::1] scalars,                   # INOUT [5] alpha, beta, gamma, t, steps
    const int32_t[::1] ids,                # IN  [n_entries]
    const double[::1] vals,                # IN  [n_entries] or empty (all 1.0)
    const int64_t[::1] tok_off,            # IN  [n_tokens + 1]
    const int64_t[::1] tok_mid,            # IN  [n_tokens] from split_parts
    const int64_t[::1] seq_off,            # IN  [n_seq + 1]
    const int64_t[::1] labels,             # IN  [n_tokens]
    const int64_t[::1] order,              # IN  [n_visit] sequences, in visiting order
    Py_ssize_t Tmax,                       # IN  longest sequence
    Py_ssize_t batch_size,                 # IN  sequences per step
    double eta0,                           # IN  initial step size
    double lam,                            # IN  L2 strength per sequence (2 c2 / n_seq)
    double power,                          # IN  eta_t = eta0 / (1 + lam eta0 t)^power
    double avg_start,                      # IN  steps before averaging starts (< 0: never)
    double[::1] loss_out,                  # OUT [n_visit] -log p(y|x) of each visit, before
                                           #     its step
    int n_threads,
    bint fold=True,                        # IN  end with alpha = gamma = 1 (U, Uhat the
                                           #     iterate and the average); False leaves
                                           #     the scalars for the next call to go on
                                           #     with, saving an O(n_weights) pass
):
    """One pass of (averaged) SGD over ``order``; returns 0, or -1 if the weights diverged."""
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef Py_ssize_t nU = U.shape[0]
    cdef Py_ssize_t S = (K + 3) // 4 * 4
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t nV = KK + 2 * K
    cdef Py_ssize_t n_visit = order.shape[0]
    cdef bint averaging = avg_start >= 0
    cdef fcrf_layout L
    cdef double* Up = &U[0] if nU > 0 else NULL
    cdef double* Hp = &Uhat[0] if nU > 0 else NULL
    cdef Py_ssize_t wd = _work_doubles(Tmax, K)
    # Then the padded kernels' scratch and their [Tmax][S] emission rows.
    cdef Py_ssize_t pwd = fcrf_chain_work_doubles(Tmax, S) + Tmax * S
    # Per mini-batch: the node marginals of each sequence ([batch][Tmax][K]) and its
    # observed-minus-expected transition, start and end counts ([batch][nV]).
    cdef double* mb_marg = <double*> malloc(batch_size * Tmax * S * sizeof(double))
    cdef double* mb_part = <double*> malloc(N_PARTS * batch_size * Tmax * S * sizeof(double))
    cdef double* mb_v = <double*> malloc(batch_size * nV * sizeof(double))
    cdef double* trans = <double*> malloc((3 * KK + 2 * K + 2 * K * S) * sizeof(double))
    cdef double* thread_buf = <double*> malloc(n_threads * (wd + pwd) * sizeof(double))
    cdef double* pw
    cdef Chain c
    cdef fcrf_padded_chain pc
    cdef Work w
    cdef SGDBatch b
    cdef SGDBatch* bp = &b       # written through inside the parallel block: stays shared
    cdef int64_t sync[3]
    cdef Py_ssize_t pos, nb, m
    cdef int64_t i, gen, seen, spins, vs, vt
    cdef int tid
    cdef double eta, decay, beta, mu, step
    cdef int status = 0
    cdef int* status_p = &status
    cdef int bad = 0
    cdef int* bad_p = &bad

    try:
        _check_layout(U, K, S, D, tail_ptr, tail_label, &L)
        if (Uhat.shape[0] != nU or V.shape[0] != nV or Vhat.shape[0] != nV
                or V_mask.shape[0] != nV):
            raise ValueError("sgd_epoch: the weight arrays do not match the layout")
        if tok_mid.shape[0] != tok_off.shape[0] - 1:
            raise ValueError("sgd_epoch: tok_mid does not match tok_off")
        # Only what this call visits (an epoch runs as several calls).
        for m in range(n_visit):
            vs = order[m]
            if not 0 <= vs < seq_off.shape[0] - 1:
                raise ValueError("sgd_epoch: order holds a sequence not in seq_off")
            if not (0 <= seq_off[vs] <= seq_off[vs + 1] <= tok_mid.shape[0]
                    and seq_off[vs + 1] - seq_off[vs] <= Tmax):
                raise ValueError("sgd_epoch: seq_off does not match tok_off and Tmax")
            for vt in range(seq_off[vs], seq_off[vs + 1]):
                if not tok_off[vt] <= tok_mid[vt] <= tok_off[vt + 1]:
                    raise ValueError("sgd_epoch: tok_mid does not match tok_off")
        if batch_size < 1 or batch_size > MAX_BATCH:
            raise ValueError(f"batch_size must be in [1, {MAX_BATCH}]")
    except ValueError:
        free(mb_marg); free(mb_part); free(mb_v); free(trans); free(thread_buf)
        raise
    if (mb_marg == NULL or mb_part == NULL or mb_v == NULL or trans == NULL
            or thread_buf == NULL):
        free(mb_marg); free(mb_part); free(mb_v); free(trans); free(thread_buf)
        raise MemoryError("fastcrf: could not allocate the SGD workspace")
    c.K = K
    c.trans = trans
    c.start = trans + KK
    c.end = trans + KK + K
    c.E = trans + KK + 2 * K
    c.ET = trans + 2 * KK + 2 * K
    pc.K = K
    pc.S = S
    pc.start = c.start
    pc.end = c.end
    pc.E = trans + 3 * KK + 2 * K
    pc.ET = pc.E + K * S
    memset(<double*> pc.E, 0, 2 * K * S * sizeof(double))   # the padding stays 0
    b.L = &L
    b.c = &c
    b.pc = &pc
    b.U = Up
    b.scalars = &scalars[0]
    b.ids = ip
    b.vals = vp
    b.tok_off = &tok_off[0]
    b.tok_mid = &tok_mid[0] if tok_mid.shape[0] > 0 else NULL
    b.seq_off = &seq_off[0]
    b.labels = &labels[0] if labels.shape[0] > 0 else NULL
    b.order = &order[0] if n_visit > 0 else NULL
    b.marg = mb_marg
    b.part_lem = mb_part
    b.batch_size = batch_size
    b.dv = mb_v
    b.loss = &loss_out[0] if n_visit > 0 else NULL
    b.Tmax = Tmax
    b.S = S
    b.nV = nV
    b.Uw = Up
    b.Uhat = Hp
    b.V = &V[0]
    b.Vhat = &Vhat[0]
    b.V_mask = &V_mask[0]
    b.averaging = 0
    sync[0] = 0   # the published generation; -1: the epoch is over
    sync[1] = 0   # the claim word (_sync.h)
    sync[2] = 0   # sequences of the current batch done
    # Thread 0 runs the epoch; the others compute marginals of the batches they
    # manage to claim (see _sync.h), and never block thread 0.
    with nogil, parallel(num_threads=n_threads):
        tid = threadid()
        w = _work_bind(thread_buf + tid * (wd + pwd), Tmax, K)
        pw = thread_buf + tid * (wd + pwd) + wd
        if tid == 0:
            gen = 0
            pos = 0
            while pos < n_visit:
                nb = batch_size
                if nb > n_visit - pos:
                    nb = n_visit - pos
                # Scores of the current iterate: alpha * V.
                for m in range(nV):
                    trans[m] = scalars[S_ALPHA] * V[m]
                    if not (fabs(trans[m]) <= MAX_SCORE):
                        bad_p[0] = 1
                if bad_p[0]:
                    status_p[0] = -1
                    break
                bp.pos = pos
                bp.nb = nb
                gen = gen + 1
                _publish(bp, sync, gen, KIND_EMISSIONS, N_PARTS)
                _run_items(bp, &w, pw, sync, gen, bad_p, 0)
                # The chain's constants while a helper may still be on its part.
                _chain_constants(trans, K, <double*> c.E, <double*> c.ET, &c.tmax,
                                 &c.raw_edges)
                bp.padded = c.raw_edges and fcrf_chain_padded_available(S)
                if bp.padded:
                    pc.tmax = c.tmax
                    for i in range(K):
                        for m in range(K):
                            (<double*> pc.E)[i * S + m] = c.E[i * K + m]
                            (<double*> pc.ET)[i * S + m] = c.ET[i * K + m]
                _await(sync, N_PARTS)
                gen = gen + 1
                _publish(bp, sync, gen, KIND_SEQUENCE, nb)
                _run_items(bp, &w, pw, sync, gen, bad_p, 0)
                _await(sync, nb)
                if bad_p[0]:
                    status_p[0] = -1
                    break

                # The step, in parts that any thread may take (see _batch_update).
                step = scalars[S_STEP] + 1.0
                eta = eta0 / pow(1.0 + lam * eta0 * scalars[S_T], power)
                decay = 1.0 - eta * lam * nb
                if decay < 0.5:
                    # Keep the L2 shrink of a single step from reversing the weights;
                    # only a huge lambda (c2) together with a large eta gets here.
                    decay = 0.5
                scalars[S_ALPHA] *= decay
                mu = 1.0
                if averaging and step > avg_start + 1.0:
                    mu = 1.0 / (step - avg_start)
                beta = scalars[S_BETA]
                bp.gain = eta / scalars[S_ALPHA]
                bp.beta = beta
                bp.averaging = mu < 1.0
                gen = gen + 1
                _publish(bp, sync, gen, KIND_STEP, N_PARTS)
                _run_items(bp, &w, pw, sync, gen, bad_p, 0)
                _await(sync, N_PARTS)
                if mu < 1.0:
                    scalars[S_GAMMA] /= (1.0 - mu)
                    scalars[S_BETA] = beta + mu * scalars[S_GAMMA] * scalars[S_ALPHA]
                else:
                    scalars[S_BETA] = scalars[S_ALPHA]
                scalars[S_T] += nb
                scalars[S_STEP] = step
                # u = w / alpha grows as alpha shrinks, and the average is a difference
                # of terms of size ~ u: fold before that costs more than ~1e-12.
                if scalars[S_ALPHA] < 1e-4 or scalars[S_GAMMA] > 1e9:
                    _fold(Up, Hp, nU, &V[0], &Vhat[0], nV, &scalars[0], mu < 1.0)
                pos = pos + nb
            fcrf_sync_store(&sync[0], -1)
        else:
            seen = 0
            while True:
                spins = 0
                gen = fcrf_sync_load(&sync[0])
                while gen == seen:
                    fcrf_sync_wait(&spins)
                    gen = fcrf_sync_load(&sync[0])
                if gen < 0:
                    break
                seen = gen
                _run_items(bp, &w, pw, sync, gen, bad_p, 1)
    if status == 0 and fold:
        _fold(Up, Hp, nU, &V[0], &Vhat[0], nV, &scalars[0],
              averaging and scalars[S_STEP] > avg_start + 1.0)
    free(mb_marg)
    free(mb_part)
    free(mb_v)
    free(trans)
    free(thread_buf)
    return status


# --------------------------------------------------------------------------- #
# Averaged perceptron and passive-aggressive (CRFsuite's 'ap' and 'pa').        #
# --------------------------------------------------------------------------- #
#
# Both decode each sequence with the current weights and, where the best path
# differs from the gold one, move the weights along
#     delta = Phi(x, y_gold) - Phi(x, y_best)
# by tau (1 for the perceptron; PA's closed form otherwise).  Averaging keeps
#     Wsum += c * tau * delta   (c counts the sequences seen)
# so the average is W - Wsum / c, computed once at the end (Daume's trick).
# delta is gathered in the dense scratch D (all zeros between sequences) so that
# repeated attributes cancel exactly and ||delta||^2 is exact.

def online_epoch(
    double[:, ::1] W,                      # INOUT [A][K] state weights
    double[:, ::1] Wsum,                   # INOUT [A][K] averaging accumulator
    double[::1] V,                         # INOUT [K*K + 2K] transitions, start, end
    double[::1] Vsum,                      # INOUT
    double[:, ::1] D,                      # SCRATCH [A][K], all zeros on entry and exit
    const double[:, ::1] W_mask,           # IN  [A][K] or (0, 0) (all trainable)
    const double[::1] V_mask,              # IN  [K*K + 2K]
    const int32_t[::1] ids,
    const double[::1] vals,
    const int64_t[::1] tok_off,
    const int64_t[::1] seq_off,
    const int64_t[::1] labels,
    const int64_t[::1] order,              # IN  sequences in visiting order
    Py_ssize_t Tmax,                       # IN  longest sequence
    Py_ssize_t max_entries,                # IN  most feature entries in one sequence
    int pa_type,                           # IN  -1: perceptron; 0, 1, 2: PA, PA-I, PA-II
    double C,                              # IN  PA aggressiveness
    bint error_sensitive,                  # IN  PA: cost sqrt(#errors) instead of 1
    double[::1] counter,                   # INOUT [1] sequences seen (c)
    double[::1] loss_out,                  # OUT [n_visit] errors (ap) or cost (pa)
):
    """One pass of the perceptron / passive-aggressive; returns 0 or -1 (bad scores)."""
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef Py_ssize_t K = W.shape[1]
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t nV = KK + 2 * K
    cdef Py_ssize_t n_visit = order.shape[0]
    cdef bint masked = W_mask.shape[0] > 0
    # lem [Tmax][K], delta [Tmax][K], bound [K], dv [nV], rowmax [K], transT [K][K]
    cdef double* lem = <double*> malloc((2 * Tmax * K + 2 * K + nV + KK) * sizeof(double))
    cdef Py_ssize_t* rows = <Py_ssize_t*> malloc(K * sizeof(Py_ssize_t))
    cdef int64_t* path = <int64_t*> malloc(Tmax * sizeof(int64_t))
    # The distinct (attribute, label) cells of delta: flat index into D and value.
    cdef int64_t* cell = <int64_t*> malloc(2 * max_entries * sizeof(int64_t))
    cdef double* cval = <double*> malloc(2 * max_entries * sizeof(double))
    cdef double* dv
    cdef double* Dp = &D[0, 0]
    cdef Chain c
    cdef fcrf_layout L
    cdef Py_ssize_t i, s, T, t, k, m, j, n_touched, n_cells
    cdef int64_t t0, e, idx
    cdef const int64_t* y
    cdef double best, gold, d, cost, norm2, tau, cnt, x
    cdef int status = 0

    if lem == NULL or rows == NULL or path == NULL or cell == NULL or cval == NULL:
        free(lem); free(rows); free(path); free(cell); free(cval)
        raise MemoryError("fastcrf: could not allocate the online-training workspace")
    dv = lem + 2 * Tmax * K + K
    L.K = K
    L.S = K
    L.D = W.shape[0]
    L.ptr = NULL
    L.label = NULL
    c.K = K
    c.trans = &V[0]
    c.start = &V[KK]
    c.end = &V[KK + K]
    c.rowmax = dv + nV
    c.transT = dv + nV + K
    with nogil:
        _decoder_constants(&V[0], K, <double*> c.rowmax, <double*> c.transT)
        for i in range(n_visit):
            s = order[i]
            t0 = seq_off[s]
            T = seq_off[s + 1] - t0
            y = &labels[t0]
            fcrf_emissions(&L, &W[0, 0], ip, vp, &tok_off[t0], &tok_off[t0 + 1], T, 1.0,
                           lem, K)
            if not (fcrf_max_abs(lem, T * K) <= MAX_SCORE):
                status = -1
                break
            best = _viterbi_one(&c, lem, T, lem + Tmax * K, lem + 2 * Tmax * K, rows, path)
            counter[0] += 1.0
            cnt = counter[0]
            d = 0.0
            for t in range(T):
                if path[t] != y[t]:
                    d += 1.0
            loss_out[i] = 0.0
            if d == 0.0:
                continue
            # delta = Phi(gold) - Phi(best): only positions whose labels differ.
            n_touched = 0
            for t in range(T):
                if path[t] == y[t]:
                    continue
                for e in range(tok_off[t0 + t], tok_off[t0 + t + 1]):
                    idx = <int64_t> ids[e] * K + y[t]
                    if Dp[idx] == 0.0:
                        cell[n_touched] = idx
                        n_touched += 1
                    Dp[idx] += vp[e] if vp != NULL else 1.0
                    idx = <int64_t> ids[e] * K + path[t]
                    if Dp[idx] == 0.0:
                        cell[n_touched] = idx
                        n_touched += 1
                    Dp[idx] -= vp[e] if vp != NULL else 1.0
            # Collect each distinct non-zero cell once and clear D behind it.
            n_cells = 0
            for m in range(n_touched):
                idx = cell[m]
                x = Dp[idx]
                if x != 0.0:
                    Dp[idx] = 0.0
                    if masked and W_mask[idx // K, idx % K] == 0.0:
                        continue
                    cell[n_cells] = idx
                    cval[n_cells] = x
                    n_cells += 1
            memset(dv, 0, nV * sizeof(double))
            _add_path_counts(y, T, K, 1.0, dv)
            _add_path_counts(path, T, K, -1.0, dv)
            for m in range(nV):
                dv[m] *= V_mask[m]
            if pa_type < 0:
                tau = 1.0
                loss_out[i] = d
            else:
                gold = _path_score(&c, lem, T, y)
                cost = best - gold + (sqrt(d) if error_sensitive else 1.0)
                norm2 = 0.0
                for m in range(n_cells):
                    norm2 += cval[m] * cval[m]
                for m in range(nV):
                    norm2 += dv[m] * dv[m]
                loss_out[i] = cost
                if norm2 <= 0.0 or cost <= 0.0:
                    tau = 0.0
                elif pa_type == 0:
                    tau = cost / norm2
                elif pa_type == 1:
                    tau = cost / norm2
                    if tau > C:
                        tau = C
                else:
                    tau = cost / (norm2 + 0.5 / C)
            for m in range(n_cells):
                W[cell[m] // K, cell[m] % K] += tau * cval[m]
                Wsum[cell[m] // K, cell[m] % K] += cnt * tau * cval[m]
            for m in range(nV):
                V[m] += tau * dv[m]
                Vsum[m] += cnt * tau * dv[m]
            _decoder_constants(&V[0], K, <double*> c.rowmax, <double*> c.transT)
    free(lem)
    free(rows)
    free(path)
    free(cell)
    free(cval)
    return status


cdef void _decoder_constants(const double* trans, Py_ssize_t K, double* rowmax,
                             double* transT) noexcept nogil:
    # Viterbi's pruning bound max_j trans[i][j] and the transposed transitions.
    cdef Py_ssize_t i, j
    for i in range(K):
        rowmax[i] = trans[i * K]
        for j in range(K):
            transT[j * K + i] = trans[i * K + j]
            if trans[i * K + j] > rowmax[i]:
                rowmax[i] = trans[i * K + j]
