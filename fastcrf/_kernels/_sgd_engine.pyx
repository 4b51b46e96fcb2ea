# The SGD epoch engine: one pass of (averaged) SGD over mini-batches of an encoded
# training set, on the scaled weights of fastcrf/_sgd.py.
#
# Design
# ------
# a) A mini-batch runs in three generations of work items (KIND_EMISSIONS,
#    KIND_SEQUENCE, KIND_STEP): the emission scores of its sequences, one weight part
#    at a time; then the marginals and transition gradient of each sequence, with the
#    weights frozen; then the step, one weight part at a time.  Every item writes
#    only its own slots, and the step applies the updates in mini-batch order, so the
#    result never depends on which thread ran what, nor on the thread count.  The
#    mini-batch size is a parameter, never the thread count.
# b) Thread 0 (the master) runs the epoch and publishes each generation; the other
#    threads (helpers) only take items of the published generation (_sync.h) and
#    never block the master.
# c) The weights are split into N_PARTS parts (_prep.pxd, made by _prep.split_parts)
#    so that each core keeps its part's weight rows in cache.
# d) Inputs are trusted: fastcrf/_sgd.py checks the arrays (_check_layout is a bounds
#    check of the weights' size).  Scores that come out non-finite or beyond
#    MAX_SCORE (diverging weights) end the epoch with status -1.
# e) Transition attributes (observation-conditioned transitions, _edges.pyx) are one
#    more layout of weight rows: attribute f owns the K*K weights W[f][i][j] (label i
#    followed by j), a dense row padded to a multiple of 4, and a position's pairwise
#    marginals are its "label distribution" over the K*K pairs.  So the row kernels
#    of the state weights (_rows.h, _l1.h, _adagrad.h) update them unchanged, with the
#    same scale, averaging, L1 and AdaGrad bookkeeping.  Part 0 of each generation
#    owns them (their catch-up, their step); a sequence with a transition attribute
#    runs the recursions of _edges.pyx over its positions' own matrices (scaled, with
#    the log-space ones as fallback), every other sequence the kernels it ran before.

from cython.parallel cimport parallel, threadid
from libc.math cimport exp, fabs, pow, INFINITY
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memset

from ._core cimport (Chain, Work, _add_path_counts, _chain_bind, _chain_doubles,
                     _transition_gradient,
                     _transition_gradient_rows, _chain_scaled, _path_score, _sequence_marginals,
                     _work_bind, _work_doubles)
from ._edges cimport _backward, _exp_matrix, _forward, _path, _scaled
from ._limits cimport MAX_SCORE
from ._prep cimport BLOCK_SHIFT, N_PARTS
from ._rows cimport (_check_layout, _ids, _values, fcrf_add_parts, fcrf_emissions,
                     fcrf_layout, fcrf_prefetch_rows, fcrf_update_token)

cdef extern from "_l1.h":
    void fcrf_l1_clip_token(const fcrf_layout* L, double* U, double* Uhat, double* qU,
                            int64_t* stamp, int64_t step, const int32_t* ids, int64_t e0,
                            int64_t e1, double u, double beta, int averaging) noexcept nogil
    void fcrf_l1_clip_run(double* x, double* hat, double* q, Py_ssize_t n, double u,
                          double beta, int averaging) noexcept nogil
    void fcrf_l1_fold(double* qU, Py_ssize_t nU, double* qV, Py_ssize_t nV, double* u,
                      double alpha) noexcept nogil

cdef extern from "_adagrad.h":
    double FCRF_ADA_DELTA
    void fcrf_ada_catch_up_token(const fcrf_layout* L, double* U, double* Uhat, const double* G,
                                 const double* E, int64_t* stamp, const int32_t* ids,
                                 int64_t e0, int64_t e1, int64_t step, double c,
                                 int averaging) noexcept nogil
    void fcrf_ada_sync(const fcrf_layout* L, Py_ssize_t n_attributes, double* U, double* Uhat,
                       const double* G, const double* E, int64_t* stamp, int64_t step,
                       double c, int averaging) noexcept nogil
    void fcrf_ada_step_token(const fcrf_layout* L, double* U, double* Uhat, double* G,
                             double* gU, double* E, int64_t* stamp, const int32_t* ids,
                             int64_t e0, int64_t e1, int64_t step, double eta, double c,
                             double c_full, int averaging) noexcept nogil
    void fcrf_ada_step_run(double* x, double* hat, double* G, double* g, Py_ssize_t n,
                           double eta, double c, int averaging) noexcept nogil
    void fcrf_adarow_catch_up_token(const fcrf_layout* L, double* U, double* Uhat,
                                    const double* GA, const double* EA, int64_t* stamp,
                                    const int32_t* ids, int64_t e0, int64_t e1, int64_t step,
                                    double c, int averaging) noexcept nogil
    void fcrf_adarow_sync(const fcrf_layout* L, Py_ssize_t n_attributes, double* U,
                          double* Uhat, const double* GA, const double* EA, int64_t* stamp,
                          int64_t step, double c, int averaging) noexcept nogil
    void fcrf_adarow_step_token(const fcrf_layout* L, double* U, double* Uhat, double* GA,
                                double* EA, double* gU, int64_t* stamp, const int32_t* ids,
                                int64_t e0, int64_t e1, int64_t step, double eta, double c,
                                double c_full, int averaging) noexcept nogil
    ctypedef struct fcrf_adarow_rec:
        double G
        double E
        int64_t stamp
        int64_t slot
    void fcrf_adarec_sync(const fcrf_layout* L, Py_ssize_t n_attributes, double* U,
                          double* Uhat, fcrf_adarow_rec* rec, int64_t step, double c, int full,
                          int averaging) noexcept nogil
    void fcrf_adarec_prefetch(const fcrf_adarow_rec* rec, const int32_t* ids,
                              const int64_t* tok_start, const int64_t* tok_end,
                              Py_ssize_t T) noexcept nogil
    void fcrf_adarec_catch_up_token(const fcrf_layout* L, double* U, double* Uhat,
                                    fcrf_adarow_rec* rec, int32_t* slot_rows,
                                    const int32_t* ids, int64_t e0, int64_t e1, int64_t step,
                                    double c, int full, int averaging,
                                    int64_t* n_slots) noexcept nogil
    void fcrf_adarec_update_token(const fcrf_layout* L, const fcrf_adarow_rec* rec, double* g,
                                  const int32_t* ids, const double* vals, int64_t e0,
                                  int64_t e1, const double* p, int64_t y,
                                  double gain) noexcept nogil
    void fcrf_adarec_step_slots(const fcrf_layout* L, double* U, double* Uhat,
                                fcrf_adarow_rec* rec, const double* g, const int32_t* slot_rows,
                                int64_t n_slots, int64_t step, double eta, double c,
                                double c_full, int averaging) noexcept nogil

from ._padded cimport (_padded_bind, fcrf_padded_available, fcrf_padded_lattice,
                       fcrf_padded_marginals, fcrf_padded_work_doubles,
                       fcrf_path_score_strided)


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
#          [5] u, the cumulative L1 penalty in U-space (_l1.h; used when lam1 > 0)
#
# With adagrad (a per-weight step, _adagrad.h) the weights are stored as they are
# (alpha stays 1, nothing is folded), Uhat and Vhat hold the running sums of the
# averaged iterates, and each attribute's stamp says up to which step its weights are
# current: a mini-batch first brings the rows it reads up to date (in the emissions
# pass of their part), then sums its gradient into gU, then steps those rows.  With
# ada_rows (learning_rate='adagrad_row') the state weights have one accumulator per
# attribute row (GA) instead of one per weight (GU, EU), in a record per row with its
# EA, stamp and slot (ada_rec), and the gradient goes to a per-part buffer of the
# mini-batch's rows (gbuf, by slot) instead of gU; the chain scores V keep the
# per-weight step (GV) in both.

cdef enum:
    S_ALPHA = 0
    S_BETA = 1
    S_GAMMA = 2
    S_T = 3
    S_STEP = 4
    S_L1 = 5


cdef void _fold(double* U, double* Uhat, Py_ssize_t nU, double* V, double* Vhat,
                Py_ssize_t nV, double* scalars, bint averaging) noexcept nogil:
    # Rewrite (U, V, Uhat, Vhat, alpha, beta, gamma) with alpha = gamma = 1; the
    # iterate and the average stay the same.  O(n_weights): once per epoch, or when
    # alpha gets small enough to cost precision.
    _fold_run(U, Uhat, nU, scalars, averaging)
    _fold_run(V, Vhat, nV, scalars, averaging)
    scalars[S_BETA] = 0.0 if averaging else 1.0
    scalars[S_ALPHA] = 1.0
    scalars[S_GAMMA] = 1.0


cdef void _fold_run(double* U, double* Uhat, Py_ssize_t n, const double* scalars,
                    bint averaging) noexcept nogil:
    # _fold's rewrite of n weights, the scalars left as they are.
    cdef Py_ssize_t i
    cdef double alpha = scalars[S_ALPHA]
    cdef double beta = scalars[S_BETA]
    cdef double inv_gamma = 1.0 / scalars[S_GAMMA]
    if averaging:
        for i in range(n):
            Uhat[i] = (Uhat[i] + beta * U[i]) * inv_gamma
            U[i] *= alpha
    else:
        for i in range(n):
            U[i] *= alpha


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
    # The three kinds of work items of a mini-batch, in the order they run.
    KIND_EMISSIONS = 0     # item p: part p of every sequence's emission scores
    KIND_SEQUENCE = 1      # item i: marginals and transition gradient of sequence i
    KIND_STEP = 2          # item p: part p of the SGD step

# For the Python layer (thread counts).
WEIGHT_PARTS = N_PARTS
# The delta of the AdaGrad step's 1 / (delta + sqrt(G)) (_adagrad.h), for the tests.
ADAGRAD_DELTA = FCRF_ADA_DELTA


cdef struct SGDEdges:
    # The transition attributes and their weights (design note e); the arrays are
    # those of the state weights' names, for the layout LW.
    fcrf_layout LW        # K*K "labels", stride SW = K*K rounded up to 4, D = F rows
    const int32_t* eids   # [n_edge_entries] transition-attribute ids
    const double* evals   # [n_edge_entries] their values, or NULL: all 1.0
    const int64_t* etok   # [n_tokens + 1] entries of each token (none at a first token)
    double* W             # [F][SW] scaled weights, as U
    double* What          # [F][SW] as Uhat
    double* qW            # [F][SW] L1 penalty received, or NULL
    int64_t* l1_stamp     # [F] or NULL
    double* GW            # [F][SW] AdaGrad's summed squared gradients, or NULL
    double* EW            # [F][SW] its decays minus 1, or NULL
    double* gW            # [F][SW] the step's summed gradient (zeros between steps)
    int64_t* ada_stamp    # [F] or NULL
    double* GA            # [F] the per-row rule's accumulators, or NULL
    double* EA            # [F] or NULL
    Py_ssize_t F
    double* emarg         # [batch][Tmax][SW] pairwise marginals at the positions with
                          #     transition attributes, zero-padded
    Py_ssize_t work       # offset of the edge lattice's scratch in a thread's buffer


cdef struct SGDBatch:
    # What every thread reads to compute the marginals of one mini-batch.
    const fcrf_layout* L
    const Chain* c
    const fcrf_padded_lattice* pc   # the same constants in rows padded to S (_padded.h)
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
    double* dv            # [batch][nV] observed minus expected transition, start, end counts
    double* loss          # [n_visit] -log p(y|x) of each visit
    Py_ssize_t Tmax
    Py_ssize_t S
    Py_ssize_t nU
    Py_ssize_t nV
    Py_ssize_t pos        # the batch is visits pos .. pos + nb - 1
    Py_ssize_t nb
    Py_ssize_t batch_size
    int kind              # what the current generation's items are: KIND_EMISSIONS,
                          # KIND_SEQUENCE or KIND_STEP
    # The step (KIND_STEP): the weights, and the step's scalars (_begin_step)
    double* Uw
    double* Uhat
    double* V
    double* Vhat
    const double* V_mask
    const unsigned char* V_forbid   # [nV] 1: a score the constraints forbid (-inf), or NULL
    const double* seq_weight   # [n_seq] each sequence's step factor, or NULL: all 1
    double gain
    double beta
    int averaging
    # L1 (_l1.h): clip the touched weights by the cumulative penalty l1_u after the
    # step's updates; qU, qV: the penalty each weight received so far
    int l1
    double l1_u
    double* qU
    double* qV
    int64_t* l1_stamp     # [A] the last step that clipped each attribute's weights
    int64_t l1_step
    # AdaGrad (_adagrad.h): G, the summed squared gradients of U and V; gU, gV the
    # step's summed gradient (zero between steps); EU the full batch's decay minus 1
    # of each U; ada_stamp [A] the step up to which each attribute's weights are current
    int ada
    double* EU
    double* GU
    double* GV
    double* gU
    double* gV
    int64_t* ada_stamp
    int ada_rows          # the per-row step: the records rec [A] (GA, EA, stamp and
                          # slot of each row, _adagrad.h) instead of GU, EU and ada_stamp,
                          # and the gradient buffers gbuf instead of gU
    fcrf_adarow_rec* rec
    double* gbuf          # [N_PARTS][gcap][S] each part's rows of the step's gradient
                          # (zeros between steps), by slot
    Py_ssize_t gcap       # rows of a part's buffer: the most a mini-batch's part touches
    int64_t* gused        # [N_PARTS] the rows of each part's buffer this mini-batch uses
    int32_t* slot_rows    # [N_PARTS][gcap + 1] the attribute of each slot of each part
    Py_ssize_t n_attributes
    int64_t ada_step      # steps taken before this mini-batch
    double ada_eta
    double ada_c          # eta lambda n_b of the skipped steps (full batches)
    int ada_avg           # whether the skipped steps averaged
    double ada_c_step     # eta lambda n_b of this step
    int ada_avg_step      # whether this step averages
    SGDEdges* ed          # the transition attributes, or NULL


cdef inline const int64_t* _part_starts(const SGDBatch* b, Py_ssize_t part) noexcept nogil:
    # Token t's entries of part p are [_part_starts(p)[t], _part_starts(p + 1)[t]):
    # part 0 starts at tok_off[t], part 1 at tok_mid[t], and part 1 ends at tok_off[t + 1].
    if part == 0:
        return b.tok_off
    return b.tok_mid if part == 1 else b.tok_off + 1


cdef inline Py_ssize_t _visit(const SGDBatch* b, Py_ssize_t i, int64_t* t0) noexcept nogil:
    # The i-th sequence of the batch: its first token (t0) and its length.
    cdef int64_t s = b.order[b.pos + i]
    t0[0] = b.seq_off[s]
    return b.seq_off[s + 1] - t0[0]


cdef void _batch_emissions(const SGDBatch* b, Py_ssize_t part) noexcept nogil:
    # Part ``part`` of the emission scores of every sequence of the batch.  The thread
    # that runs it usually runs the same part of the step (see N_PARTS), so the
    # weight rows it loads here are still in its core's cache then.
    cdef Py_ssize_t S = b.S
    cdef Py_ssize_t i
    cdef int64_t t0, T, t
    # b.averaging: whether the previous step averaged, so that this one will too.
    cdef const double* hat = b.Uhat if b.averaging else NULL
    cdef const int64_t* start = _part_starts(b, part)
    cdef const int64_t* end = _part_starts(b, part + 1)
    cdef int64_t n_slots = 0
    if b.ada:
        hat = b.Uhat if b.ada_avg else NULL
    for i in range(b.nb):
        T = _visit(b, i, &t0)
        fcrf_prefetch_rows(b.L, b.U, hat, b.ids, start + t0, end + t0, T)
        if b.l1:
            fcrf_prefetch_rows(b.L, b.qU, NULL, b.ids, start + t0, end + t0, T)
        if b.ada:
            # The rows this sequence reads, brought up to the current step.
            if b.ada_rows:
                # ... each given its slot in the part's gradient buffer (n_slots: the
                # rows of this part of the batch so far).
                fcrf_adarec_prefetch(b.rec, b.ids, start + t0, end + t0, T)
                for t in range(T):
                    fcrf_adarec_catch_up_token(b.L, b.Uw, b.Uhat, b.rec,
                                               b.slot_rows + part * (b.gcap + 1), b.ids,
                                               start[t0 + t], end[t0 + t], b.ada_step,
                                               b.ada_c, 1, b.ada_avg, &n_slots)
            else:
                fcrf_prefetch_rows(b.L, b.GU, b.gU, b.ids, start + t0, end + t0, T)
                for t in range(T):
                    fcrf_ada_catch_up_token(b.L, b.Uw, b.Uhat, b.GU, b.EU, b.ada_stamp,
                                            b.ids, start[t0 + t], end[t0 + t], b.ada_step,
                                            b.ada_c, b.ada_avg)
        fcrf_emissions(b.L, b.U, b.ids, b.vals, start + t0, end + t0, T, b.scalars[S_ALPHA],
                       b.part_lem + (part * b.batch_size + i) * b.Tmax * S, S)
        if b.ada and b.ed != NULL and part == 0:
            _edge_catch_up(b, t0, T)
    if b.ada_rows:
        b.gused[part] = n_slots


cdef void _edge_catch_up(const SGDBatch* b, int64_t t0, Py_ssize_t T) noexcept nogil:
    # The transition-attribute rows of a sequence's tokens brought up to the current
    # step, before the sequence items read them (AdaGrad).
    cdef SGDEdges* ed = b.ed
    cdef Py_ssize_t t
    for t in range(T):
        if b.ada_rows:
            fcrf_adarow_catch_up_token(&ed.LW, ed.W, ed.What, ed.GA, ed.EA, ed.ada_stamp,
                                       ed.eids, ed.etok[t0 + t], ed.etok[t0 + t + 1],
                                       b.ada_step, b.ada_c, b.ada_avg)
        else:
            fcrf_ada_catch_up_token(&ed.LW, ed.W, ed.What, ed.GW, ed.EW, ed.ada_stamp,
                                    ed.eids, ed.etok[t0 + t], ed.etok[t0 + t + 1],
                                    b.ada_step, b.ada_c, b.ada_avg)


cdef inline bint _has_edges(const SGDEdges* ed, int64_t t0, Py_ssize_t T) noexcept nogil:
    # Whether a sequence has a transition attribute (its first token never has one).
    return ed != NULL and ed.etok[t0 + T] > ed.etok[t0]


cdef int _edge_sequence(const SGDBatch* b, double* ew, Py_ssize_t i, const double* plem,
                        double* P, double* dv, int64_t t0, Py_ssize_t T,
                        const int64_t* y) noexcept nogil:
    # _batch_sequence for a sequence with transition attributes: its positions' own
    # transition matrices, trans_t = trans + alpha sum_f x[t][f] W[f] (trans -inf where
    # the constraints forbid, whatever W adds), then _edges.pyx's scaled recursion over
    # their exponentials (one exp per pair and position with attributes, the shared
    # exp(trans) elsewhere), or its log-space one where that underflows.  Writes the
    # loss, the node marginals P, the chain gradient dv and the pairwise marginals of
    # the positions with attributes (ed.emarg); returns 1 when a score is out of range.
    #   P(y_{t-1} = i, y_t = j) = alpha[t-1][i] trans_t[i][j] em[t][j] beta[t][j] / Z
    # (products of factors, normalised per position in the scaled recursion).
    # ew: the thread's scratch, see _bind_edges.
    cdef const SGDEdges* ed = b.ed
    cdef Py_ssize_t K = b.c.K
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t S = b.S
    cdef Py_ssize_t SW = ed.LW.S
    cdef Py_ssize_t Tmax = b.Tmax
    cdef double* mats = ew                   # [Tmax][K][K] the positions' own scores
    cdef double* emats = mats + Tmax * KK    # [Tmax][K][K] their exp(scores - cst[t])
    cdef double* alpha = emats + Tmax * KK   # [Tmax][K] forward rows
    cdef double* beta = alpha + Tmax * K     # [Tmax][K] backward rows
    cdef double* emf = beta + Tmax * K       # [Tmax][K] exp(em - max em)
    cdef double* cst = emf + Tmax * K        # [Tmax] the offsets of Ep
    cdef double* tmp = cst + Tmax            # [K] terms
    cdef double* pair = tmp + K              # [K][K] one pairwise marginal
    cdef double* E0 = pair + KK              # [K][K] exp(trans - c0)
    cdef const double** tp = <const double**> (E0 + KK)      # [Tmax] scores
    cdef const double** Ep = tp + Tmax                        # [Tmax] exponentials
    cdef const double* trans = b.c.trans
    cdef double a = b.scalars[S_ALPHA]
    cdef double v, x, z, logz, c0 = 0.0
    cdef const double* w
    cdef double* out
    cdef double* em
    cdef Py_ssize_t t, k, m, n = 0
    cdef int64_t e
    cdef bint scaled
    tp[0] = trans
    _exp_matrix(K, trans, E0, &c0)
    for t in range(1, T):
        if ed.etok[t0 + t + 1] == ed.etok[t0 + t]:
            tp[t] = trans
            Ep[t] = E0
            cst[t] = c0
            continue
        out = mats + n * KK
        for m in range(KK):
            out[m] = trans[m]
        for e in range(ed.etok[t0 + t], ed.etok[t0 + t + 1]):
            v = a * (ed.evals[e] if ed.evals != NULL else 1.0)
            w = ed.W + <Py_ssize_t> ed.eids[e] * SW
            for m in range(KK):
                out[m] += v * w[m]
        for m in range(KK):
            if out[m] != -INFINITY and not (fabs(out[m]) <= MAX_SCORE):
                b.loss[b.pos + i] = INFINITY
                memset(P, 0, T * S * sizeof(double))
                return 1
        tp[t] = out
        _exp_matrix(K, out, emats + n * KK, &cst[t])
        Ep[t] = emats + n * KK
        n += 1
    scaled = _scaled(T, K, plem, S, Ep, cst, b.c.start, b.c.end, alpha, beta, emf, &logz)
    if not scaled:
        logz = _forward(T, K, plem, S, tp, b.c.start, b.c.end, alpha, tmp)
    if not (fabs(logz) <= MAX_SCORE):
        b.loss[b.pos + i] = INFINITY
        memset(P, 0, T * S * sizeof(double))
        return 1
    b.loss[b.pos + i] = logz - _path(T, K, plem, S, tp, b.c.start, b.c.end, y)
    if not scaled:
        _backward(T, K, plem, S, tp, b.c.end, beta, tmp)
    for t in range(T):
        z = 0.0
        for k in range(K):
            if scaled:
                x = alpha[t * K + k] * beta[t * K + k]
            else:
                x = alpha[t * K + k] + beta[t * K + k] - logz
                x = exp(x) if x > -INFINITY else 0.0
            P[t * S + k] = x
            z += x
        if scaled:
            # Above 1e-100 (see _scaled).
            for k in range(K):
                P[t * S + k] /= z
        for k in range(K, S):
            P[t * S + k] = 0.0
    for k in range(K):
        dv[KK + k] -= P[k]
        dv[KK + K + k] -= P[(T - 1) * S + k]
    _add_path_counts(y, T, K, 1.0, dv)
    for t in range(1, T):
        if scaled:
            z = 0.0
            for k in range(K):
                v = alpha[(t - 1) * K + k]
                for m in range(K):
                    x = v * Ep[t][k * K + m] * emf[t * K + m] * beta[t * K + m]
                    pair[k * K + m] = x
                    z += x
            z = 1.0 / z
            for m in range(KK):
                pair[m] *= z
        else:
            em = plem + t * S
            for k in range(K):
                v = alpha[(t - 1) * K + k] - logz
                for m in range(K):
                    x = v + tp[t][k * K + m] + em[m] + beta[t * K + m]
                    pair[k * K + m] = exp(x) if x > -INFINITY else 0.0
        for m in range(KK):
            dv[m] -= pair[m]
        if ed.etok[t0 + t + 1] > ed.etok[t0 + t]:
            out = ed.emarg + (i * Tmax + t) * SW
            for m in range(KK):
                out[m] = pair[m]
            for m in range(KK, SW):
                out[m] = 0.0
    return 0


cdef int _batch_sequence(const SGDBatch* b, Work* w, double* pw, Py_ssize_t i) noexcept nogil:
    # Marginals and transition gradient of the i-th sequence of the batch, into its own
    # slots; returns 1 when its scores are not finite or too large.  pw: the thread's
    # scratch for the padded kernels (_padded.h), then [Tmax][S] emission scores.
    cdef Py_ssize_t K = b.c.K
    cdef Py_ssize_t S = b.S
    cdef int64_t t0
    cdef Py_ssize_t T = _visit(b, i, &t0)
    cdef const int64_t* y = b.labels + t0
    cdef double* P = b.marg + i * b.Tmax * S
    cdef double* dv = b.dv + i * b.nV
    cdef Py_ssize_t t, k
    cdef double logz
    cdef double* plem = pw + fcrf_padded_work_doubles(b.Tmax, S)
    cdef Py_ssize_t part1 = b.batch_size * b.Tmax * S
    memset(dv, 0, b.nV * sizeof(double))
    if not (fcrf_add_parts(b.part_lem + i * b.Tmax * S, b.part_lem + part1 + i * b.Tmax * S,
                           plem, T * S) <= MAX_SCORE):
        b.loss[b.pos + i] = INFINITY
        memset(P, 0, T * S * sizeof(double))
        return 1
    if _has_edges(b.ed, t0, T):
        return _edge_sequence(b, pw + b.ed.work, i, plem, P, dv, t0, T, y)
    if b.padded:
        if fcrf_padded_marginals(b.pc, plem, T, pw, P, w.edge, &logz) == 0:
            b.loss[b.pos + i] = logz - fcrf_path_score_strided(
                b.c.trans, b.c.start, b.c.end, plem, T, K, S, y)
            _transition_gradient_rows(w.edge, P, S, y, T, K, dv)
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
    _transition_gradient(w, y, T, K, dv)
    return 0


cdef void _batch_update(const SGDBatch* b, Py_ssize_t part) noexcept nogil:
    # Part ``part`` of the step: the state rows of the attributes in that part
    # (_rows.h, fcrf_in_part), each receiving its updates in mini-batch order, and
    # with part 0 the transition, start and end scores.
    cdef Py_ssize_t S = b.S
    cdef Py_ssize_t i, t, m
    cdef int64_t t0, T
    cdef double x, gain
    cdef const double* P
    cdef const double* dv
    cdef const int64_t* start = _part_starts(b, part)
    cdef const int64_t* end = _part_starts(b, part + 1)
    if b.ada:
        _batch_ada_update(b, part)
        return
    for i in range(b.nb):
        T = _visit(b, i, &t0)
        P = b.marg + i * b.Tmax * S
        # A sequence's sample weight scales its step (fit(sample_weight=...)).
        gain = b.gain
        if b.seq_weight != NULL:
            gain = gain * b.seq_weight[b.order[b.pos + i]]
        for t in range(T):
            fcrf_update_token(b.L, b.Uw, b.Uhat, b.ids, b.vals, start[t0 + t], end[t0 + t],
                              P + t * S, b.labels[t0 + t], gain, b.beta, b.averaging)
        if part == 0:
            dv = b.dv + i * b.nV
            for m in range(b.nV):
                x = gain * dv[m] * b.V_mask[m]
                b.V[m] += x
                if b.averaging:
                    b.Vhat[m] -= b.beta * x
            if _has_edges(b.ed, t0, T):
                _edge_update(b, i, t0, T, b.ed.W, b.ed.What, gain, b.beta, b.averaging)
    if b.l1:
        _batch_l1_clip(b, part)


cdef void _edge_update(const SGDBatch* b, Py_ssize_t i, int64_t t0, Py_ssize_t T,
                       double* W, double* What, double gain, double beta,
                       int averaging) noexcept nogil:
    # The i-th sequence's share of the step of the transition-attribute rows, as
    # fcrf_update_token's of the state rows: the observed pair y_{t-1} y_t against the
    # position's pairwise marginals.
    cdef const SGDEdges* ed = b.ed
    cdef Py_ssize_t K = b.c.K
    cdef Py_ssize_t t
    cdef const int64_t* y = b.labels + t0
    for t in range(1, T):
        if ed.etok[t0 + t + 1] > ed.etok[t0 + t]:
            fcrf_update_token(&ed.LW, W, What, ed.eids, ed.evals, ed.etok[t0 + t],
                              ed.etok[t0 + t + 1], ed.emarg + (i * b.Tmax + t) * ed.LW.S,
                              y[t - 1] * K + y[t], gain, beta, averaging)


cdef void _batch_ada_update(const SGDBatch* b, Py_ssize_t part) noexcept nogil:
    # Part ``part`` of an AdaGrad step: the batch's gradient of the part's rows summed
    # into gU in mini-batch order, then each of those rows stepped once (_adagrad.h);
    # with part 0 the same for the chain scores, summed into gV.
    cdef Py_ssize_t S = b.S
    cdef Py_ssize_t i, t, m
    cdef int64_t t0, T
    cdef double sw
    cdef const double* P
    cdef const double* dv
    cdef const int64_t* start = _part_starts(b, part)
    cdef const int64_t* end = _part_starts(b, part + 1)
    cdef double* g = b.gbuf + part * b.gcap * S if b.ada_rows else NULL
    for i in range(b.nb):
        T = _visit(b, i, &t0)
        P = b.marg + i * b.Tmax * S
        sw = b.seq_weight[b.order[b.pos + i]] if b.seq_weight != NULL else 1.0
        for t in range(T):
            if b.ada_rows:
                fcrf_adarec_update_token(b.L, b.rec, g, b.ids, b.vals, start[t0 + t],
                                         end[t0 + t], P + t * S, b.labels[t0 + t], sw)
            else:
                fcrf_update_token(b.L, b.gU, b.gU, b.ids, b.vals, start[t0 + t],
                                  end[t0 + t], P + t * S, b.labels[t0 + t], sw, 0.0, 0)
        if part == 0:
            dv = b.dv + i * b.nV
            for m in range(b.nV):
                b.gV[m] += sw * dv[m] * b.V_mask[m]
            if _has_edges(b.ed, t0, T):
                _edge_update(b, i, t0, T, b.ed.gW, b.ed.gW, sw, 0.0, 0)
    for i in range(b.nb):
        T = _visit(b, i, &t0)
        if part == 0 and _has_edges(b.ed, t0, T):
            _edge_ada_step(b, t0, T)
        if not b.ada_rows:
            for t in range(T):
                fcrf_ada_step_token(b.L, b.Uw, b.Uhat, b.GU, b.gU, b.EU, b.ada_stamp, b.ids,
                                    start[t0 + t], end[t0 + t], b.ada_step + 1, b.ada_eta,
                                    b.ada_c_step, b.ada_c, b.ada_avg_step)
    if b.ada_rows:
        # The part's rows in slot order: the order in which its tokens name them, as
        # a loop over the tokens would step them (and the transition-attribute rows
        # stepped above are other weights).  Then the buffer's rows back to zeros.
        fcrf_adarec_step_slots(b.L, b.Uw, b.Uhat, b.rec, g, b.slot_rows + part * (b.gcap + 1),
                               b.gused[part], b.ada_step + 1, b.ada_eta, b.ada_c_step,
                               b.ada_c, b.ada_avg_step)
        memset(g, 0, b.gused[part] * S * sizeof(double))
    if part == 0:
        fcrf_ada_step_run(b.V, b.Vhat, b.GV, b.gV, b.nV, b.ada_eta, b.ada_c_step,
                          b.ada_avg_step)


cdef void _edge_ada_step(const SGDBatch* b, int64_t t0, Py_ssize_t T) noexcept nogil:
    # The AdaGrad step of a sequence's transition-attribute rows (each row once).
    cdef SGDEdges* ed = b.ed
    cdef Py_ssize_t t
    for t in range(T):
        if b.ada_rows:
            fcrf_adarow_step_token(&ed.LW, ed.W, ed.What, ed.GA, ed.EA, ed.gW, ed.ada_stamp,
                                   ed.eids, ed.etok[t0 + t], ed.etok[t0 + t + 1],
                                   b.ada_step + 1, b.ada_eta, b.ada_c_step, b.ada_c,
                                   b.ada_avg_step)
        else:
            fcrf_ada_step_token(&ed.LW, ed.W, ed.What, ed.GW, ed.gW, ed.EW, ed.ada_stamp,
                                ed.eids, ed.etok[t0 + t], ed.etok[t0 + t + 1],
                                b.ada_step + 1, b.ada_eta, b.ada_c_step, b.ada_c,
                                b.ada_avg_step)


cdef void _batch_l1_clip(const SGDBatch* b, Py_ssize_t part) noexcept nogil:
    # After part ``part`` of the step's updates: clip the weights they touched (the
    # same rows, so the same thread), and with part 0 the chain scores (the fixed ones
    # are 0, which a clip keeps).  The attributes of the part are clipped once each
    # (l1_stamp), after all of the step's updates: the order of the tokens does not
    # matter, and the step is the dense reference's (_l1.h).
    cdef Py_ssize_t i, t
    cdef int64_t t0, T
    cdef const int64_t* start = _part_starts(b, part)
    cdef const int64_t* end = _part_starts(b, part + 1)
    for i in range(b.nb):
        T = _visit(b, i, &t0)
        for t in range(T):
            fcrf_l1_clip_token(b.L, b.Uw, b.Uhat, b.qU, b.l1_stamp, b.l1_step, b.ids,
                               start[t0 + t], end[t0 + t], b.l1_u, b.beta, b.averaging)
    if part == 0:
        fcrf_l1_clip_run(b.V, b.Vhat, b.qV, b.nV, b.l1_u, b.beta, b.averaging)
    if part == 0 and b.ed != NULL:
        for i in range(b.nb):
            T = _visit(b, i, &t0)
            for t in range(T):
                fcrf_l1_clip_token(&b.ed.LW, b.ed.W, b.ed.What, b.ed.qW, b.ed.l1_stamp,
                                   b.l1_step, b.ed.eids, b.ed.etok[t0 + t],
                                   b.ed.etok[t0 + t + 1], b.l1_u, b.beta, b.averaging)


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


# --------------------------------------------------------------------------- #
# The step schedule.                                                            #
# --------------------------------------------------------------------------- #

cdef struct StepSchedule:
    double eta0           # initial step size
    double lam            # L2 strength per sequence (2 c2 / n_seq)
    double power          # decay exponent of the step size
    double avg_start      # steps before averaging starts (< 0: never)
    double lam1           # L1 strength per sequence (c1 / n_seq; 0: no L1)


cdef inline double _step_size(const StepSchedule* sch, double t) noexcept nogil:
    # eta_t = eta0 / (1 + lambda eta0 t)^power, t = sequences seen so far
    # (power 1: the 1/t schedule of Bottou's crfsgd; 0.75 with averaging, Xu 2011).
    return sch.eta0 / pow(1.0 + sch.lam * sch.eta0 * t, sch.power)


cdef double _begin_step(SGDBatch* b, const StepSchedule* sch, double* scalars,
                        Py_ssize_t nb) noexcept nogil:
    # Before the KIND_STEP items: the L2 shrink alpha <- alpha (1 - eta lambda n_b),
    # and the step's gain eta / alpha and averaging state for _batch_update.  Returns
    # the averaging weight mu (1 while averaging has not started).
    cdef double step = scalars[S_STEP] + 1.0
    cdef double eta = _step_size(sch, scalars[S_T])
    cdef double decay = 1.0 - eta * sch.lam * nb
    cdef double mu = 1.0
    if decay < 0.5:
        # Keep the L2 shrink of a single step from reversing the weights; only a huge
        # lambda (c2) together with a large eta gets here.
        decay = 0.5
    scalars[S_ALPHA] *= decay
    if b.l1:
        # The penalty of this step, in U-space after its L2 shrink (_l1.h).
        scalars[S_L1] += eta * sch.lam1 * nb / scalars[S_ALPHA]
        b.l1_u = scalars[S_L1]
        b.l1_step = <int64_t> step
    if sch.avg_start >= 0 and step > sch.avg_start + 1.0:
        mu = 1.0 / (step - sch.avg_start)
    b.gain = eta / scalars[S_ALPHA]
    b.beta = scalars[S_BETA]
    b.averaging = mu < 1.0
    return mu


cdef void _end_step(SGDBatch* b, double* scalars, double mu, Py_ssize_t nb) noexcept nogil:
    # After the KIND_STEP items: the averaging scalars (gamma, beta), the counters,
    # and a fold when alpha or gamma get extreme.
    if mu < 1.0:
        scalars[S_GAMMA] /= (1.0 - mu)
        scalars[S_BETA] = b.beta + mu * scalars[S_GAMMA] * scalars[S_ALPHA]
    else:
        scalars[S_BETA] = scalars[S_ALPHA]
    scalars[S_T] += nb
    scalars[S_STEP] += 1.0
    # u = w / alpha grows as alpha shrinks, and the average is a difference of terms
    # of size ~ u: fold before that costs more than ~1e-12.
    if scalars[S_ALPHA] < 1e-4 or scalars[S_GAMMA] > 1e9:
        _fold_edges(b.ed, scalars, b.l1, mu < 1.0)
        if b.l1:
            fcrf_l1_fold(b.qU, b.nU, b.qV, b.nV, &scalars[S_L1], scalars[S_ALPHA])
        _fold(b.Uw, b.Uhat, b.nU, b.V, b.Vhat, b.nV, scalars, mu < 1.0)


cdef void _fold_edges(const SGDEdges* ed, const double* scalars, bint l1,
                      bint averaging) noexcept nogil:
    # _fold's rewrite of the transition-attribute weights (and their L1 penalties),
    # before _fold resets the scalars.
    cdef double u = 0.0
    cdef Py_ssize_t n
    if ed == NULL:
        return
    n = ed.F * ed.LW.S
    if l1:
        fcrf_l1_fold(ed.qW, n, NULL, 0, &u, scalars[S_ALPHA])
    _fold_run(ed.W, ed.What, n, scalars, averaging)


cdef inline bint _ada_averages(const StepSchedule* sch, double step) noexcept nogil:
    # Whether step number ``step`` (1 for the first) adds its iterate to the average.
    return sch.avg_start >= 0 and step > sch.avg_start


cdef void _ada_sync(const SGDBatch* b, int64_t step, double c, int averaging,
                    bint full) noexcept nogil:
    # Every attribute's weights brought up to step ``step`` (the skipped steps' c and
    # averaging flag); ``full``: the skipped steps were full mini-batches, so that the
    # cached decays (EU, EA) apply.
    cdef SGDEdges* ed = b.ed
    if b.ada_rows:
        fcrf_adarec_sync(b.L, b.n_attributes, b.Uw, b.Uhat, b.rec, step, c, full, averaging)
    else:
        fcrf_ada_sync(b.L, b.n_attributes, b.Uw, b.Uhat, b.GU, b.EU if full else NULL,
                      b.ada_stamp, step, c, averaging)
    if ed != NULL and b.ada_rows:
        fcrf_adarow_sync(&ed.LW, ed.F, ed.W, ed.What, ed.GA, ed.EA if full else NULL,
                         ed.ada_stamp, step, c, averaging)
    elif ed != NULL:
        fcrf_ada_sync(&ed.LW, ed.F, ed.W, ed.What, ed.GW, ed.EW if full else NULL,
                      ed.ada_stamp, step, c, averaging)


cdef void _ada_before_batch(SGDBatch* b, const StepSchedule* sch, const double* scalars,
                            Py_ssize_t nb) noexcept nogil:
    # Before a mini-batch's emissions: what the rows it reads skipped.  Every row
    # that is not current skipped only full batches that averaged as the last step
    # taken did, because every row is brought up to date (fcrf_ada_sync) before a step
    # that changes either, and after a short one (_ada_end_step).
    cdef double k = scalars[S_STEP]
    b.ada_step = <int64_t> k
    b.ada_eta = sch.eta0
    b.ada_c = sch.eta0 * sch.lam * b.batch_size
    b.ada_avg = _ada_averages(sch, k)
    b.ada_c_step = sch.eta0 * sch.lam * nb
    b.ada_avg_step = _ada_averages(sch, k + 1.0)
    if nb != b.batch_size or b.ada_avg_step != b.ada_avg:
        _ada_sync(b, b.ada_step, b.ada_c, b.ada_avg, True)


cdef void _ada_end_step(SGDBatch* b, double* scalars, Py_ssize_t nb) noexcept nogil:
    # After an AdaGrad step's items: the counters, and after a short mini-batch every
    # row brought past it (the rows it did not touch decay by its own n_b).
    scalars[S_T] += nb
    scalars[S_STEP] += 1.0
    if nb != b.batch_size:
        _ada_sync(b, b.ada_step + 1, b.ada_c_step, b.ada_avg_step, False)


# --------------------------------------------------------------------------- #
# The master and helper loops.                                                  #
# --------------------------------------------------------------------------- #

cdef int _current_scores(const SGDBatch* b, double* scores) noexcept nogil:
    # scores[nV] = alpha * V, the transition, start and end scores of the current
    # iterate, -inf where the constraints forbid (V_mask keeps V at 0 there); returns 1
    # when one is not finite or beyond MAX_SCORE.
    cdef Py_ssize_t m
    cdef int bad = 0
    for m in range(b.nV):
        if b.V_forbid != NULL and b.V_forbid[m]:
            scores[m] = -INFINITY
            continue
        scores[m] = b.scalars[S_ALPHA] * b.V[m]
        if not (fabs(scores[m]) <= MAX_SCORE):
            bad = 1
    return bad


cdef void _lattice_constants(SGDBatch* b, Chain* c, fcrf_padded_lattice* pc) noexcept nogil:
    # The constants of the current scores (_core's _chain_scaled), and their copies in
    # rows padded to S when the padded kernels (_padded.h) can take this batch.
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t S = b.S
    cdef Py_ssize_t i, j
    _chain_scaled(c)
    # Forbidden (-inf) scores: _core's exact kernels, which define -inf as zero mass
    # (the padded ones' bounds assume every score finite).
    b.padded = c.raw_edges and fcrf_padded_available(S) and b.V_forbid == NULL
    if b.padded:
        pc.tmax = c.tmax
        for i in range(K):
            for j in range(K):
                (<double*> pc.E)[i * S + j] = c.E[i * K + j]
                (<double*> pc.ET)[i * S + j] = c.ET[i * K + j]


cdef int _master_loop(SGDBatch* b, Chain* c, fcrf_padded_lattice* pc, const StepSchedule* sch,
                      double* scalars, Work* w, double* pw, volatile int64_t* sync,
                      Py_ssize_t n_visit, int* bad) noexcept nogil:
    # Thread 0: every mini-batch of the call, as three published generations of work
    # items it runs too (see the design notes); returns 0, or -1 once scores diverge.
    cdef Py_ssize_t pos = 0, nb
    cdef int64_t gen = 0
    cdef double mu = 1.0
    cdef int status = 0
    while pos < n_visit:
        nb = b.batch_size
        if nb > n_visit - pos:
            nb = n_visit - pos
        if _current_scores(b, <double*> c.trans):
            bad[0] = 1
        if bad[0]:
            status = -1
            break
        b.pos = pos
        b.nb = nb
        if b.ada:
            _ada_before_batch(b, sch, scalars, nb)
        gen = gen + 1
        _publish(b, sync, gen, KIND_EMISSIONS, N_PARTS)
        _run_items(b, w, pw, sync, gen, bad, 0)
        # The lattice constants while a helper may still be on its part.
        _lattice_constants(b, c, pc)
        _await(sync, N_PARTS)
        gen = gen + 1
        _publish(b, sync, gen, KIND_SEQUENCE, nb)
        _run_items(b, w, pw, sync, gen, bad, 0)
        _await(sync, nb)
        if bad[0]:
            status = -1
            break
        # The step, in parts that any thread may take (see _batch_update).
        if not b.ada:
            mu = _begin_step(b, sch, scalars, nb)
        gen = gen + 1
        _publish(b, sync, gen, KIND_STEP, N_PARTS)
        _run_items(b, w, pw, sync, gen, bad, 0)
        _await(sync, N_PARTS)
        if b.ada:
            _ada_end_step(b, scalars, nb)
        else:
            _end_step(b, scalars, mu, nb)
        pos = pos + nb
    fcrf_sync_store(&sync[0], -1)
    return status


cdef void _helper_loop(SGDBatch* b, Work* w, double* pw, volatile int64_t* sync,
                       int* bad) noexcept nogil:
    # The other threads: wait for each new generation and take what items are left
    # of it (from the back, _sync.h), until the master ends the call.
    cdef int64_t seen = 0, gen, spins
    while True:
        spins = 0
        gen = fcrf_sync_load(&sync[0])
        while gen == seen:
            fcrf_sync_wait(&spins)
            gen = fcrf_sync_load(&sync[0])
        if gen < 0:
            break
        seen = gen
        _run_items(b, w, pw, sync, gen, bad, 1)


# --------------------------------------------------------------------------- #
# Scratch and bounds checks of one call.                                        #
# --------------------------------------------------------------------------- #

cdef struct SGDScratch:
    # The buffers of one sgd_epoch call (sizes in doubles), allocated together:
    double* marg          # [batch][Tmax][S] node marginals of each sequence (SGDBatch.marg)
    double* part_lem      # [N_PARTS][batch][Tmax][S] emission scores from each part
    double* dv            # [batch][nV] observed minus expected transition, start, end counts
    double* gV            # [nV] an AdaGrad step's summed chain gradient (zeros between steps)
    double* scores        # [nV] the current scores alpha * V, then [_chain_doubles(K)]
                          #     their constants (Chain), then [2][K][S] the padded copies
                          #     of E and ET (fcrf_padded_lattice), zero beyond K
    double* threads       # [n_threads][per_thread]: each thread's Work ([work]), then
                          #     the padded kernels' scratch and its [Tmax][S] emission rows,
                          #     then the edge lattice's scratch (SGDEdges.work)
    Py_ssize_t work       # _work_doubles(Tmax, K)
    Py_ssize_t per_thread


cdef int _scratch_alloc(SGDScratch* m, Py_ssize_t K, Py_ssize_t S, Py_ssize_t Tmax,
                        Py_ssize_t batch_size, Py_ssize_t nV, int n_threads,
                        Py_ssize_t extra) noexcept:
    # 0, or -1 (nothing left allocated) when the memory is not there.  extra: doubles
    # more per thread (the edge lattice's scratch, after the emission rows).
    m.work = _work_doubles(Tmax, K)
    m.per_thread = m.work + fcrf_padded_work_doubles(Tmax, S) + Tmax * S + extra
    m.marg = <double*> malloc(batch_size * Tmax * S * sizeof(double))
    m.part_lem = <double*> malloc(N_PARTS * batch_size * Tmax * S * sizeof(double))
    m.dv = <double*> malloc(batch_size * nV * sizeof(double))
    m.gV = <double*> calloc(nV, sizeof(double))
    m.scores = <double*> malloc((nV + _chain_doubles(K) + 2 * K * S) * sizeof(double))
    m.threads = <double*> malloc(n_threads * m.per_thread * sizeof(double))
    if (m.marg == NULL or m.part_lem == NULL or m.dv == NULL or m.gV == NULL
            or m.scores == NULL or m.threads == NULL):
        _scratch_free(m)
        return -1
    return 0


cdef void _scratch_free(SGDScratch* m) noexcept:
    free(m.marg)
    free(m.part_lem)
    free(m.dv)
    free(m.gV)
    free(m.scores)
    free(m.threads)
    m.marg = m.part_lem = m.dv = m.gV = m.scores = m.threads = NULL


cdef int _check_bounds(const double[::1] U, const double[::1] Uhat, const double[::1] V,
                       const double[::1] Vhat, const double[::1] V_mask, Py_ssize_t nV,
                       const int64_t[::1] tok_off, const int64_t[::1] tok_mid,
                       const int64_t[::1] seq_off, const int64_t[::1] order,
                       Py_ssize_t Tmax, Py_ssize_t batch_size) except -1:
    # Bounds checks, not validation: fastcrf/_sgd.py builds every array, but an
    # epoch runs as several calls over slices of ``order``, and a wrong index here
    # reads or writes out of bounds (the scratch is sized by Tmax, a batch is claimed
    # through a 16-bit field).  O(tokens visited), before anything is allocated.
    cdef Py_ssize_t m
    cdef int64_t vs, vt
    if (Uhat.shape[0] != U.shape[0] or V.shape[0] != nV or Vhat.shape[0] != nV
            or V_mask.shape[0] != nV):
        raise ValueError("sgd_epoch: the weight arrays do not match the layout")
    if tok_mid.shape[0] != tok_off.shape[0] - 1:
        raise ValueError("sgd_epoch: tok_mid does not match tok_off")
    for m in range(order.shape[0]):
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
    return 0


cdef int _check_l1(const double[::1] scalars, bint l1, const double[::1] qU,
                   const double[::1] qV, const int64_t[::1] l1_stamp, Py_ssize_t nU,
                   Py_ssize_t nV, Py_ssize_t n_attributes) except -1:
    # The L1 state's sizes (the clip indexes qU like U, qV like V, l1_stamp by
    # attribute) and the slot of the cumulative penalty.
    if scalars.shape[0] < 5 + l1 or (l1 and (
            qU is None or qV is None or l1_stamp is None or qU.shape[0] != nU
            or qV.shape[0] != nV or l1_stamp.shape[0] != n_attributes)):
        raise ValueError("sgd_epoch: scalars, qU, qV or l1_stamp do not match the layout")
    return 0


cdef int _check_adagrad(bint ada, bint rows, const double[::1] GU, const double[::1] GV,
                        const double[::1] gU, const double[::1] EU,
                        const double[:, ::1] ada_rec,
                        const int64_t[::1] ada_stamp, Py_ssize_t nU, Py_ssize_t nV,
                        Py_ssize_t n_attributes, double lam1) except -1:
    # The AdaGrad state's sizes (G, gU and EU index like U, GV like V, the stamps and
    # the rows' records by attribute); its step has no L1.
    if rows and not ada:
        raise ValueError("sgd_epoch: ada_rows needs adagrad=True")
    if ada and (GV is None or GV.shape[0] != nV):
        raise ValueError("sgd_epoch: GV does not match the layout")
    if ada and not rows and (GU is None or EU is None or gU is None or ada_stamp is None
                             or GU.shape[0] != nU or EU.shape[0] != nU or gU.shape[0] != nU
                             or ada_stamp.shape[0] != n_attributes):
        raise ValueError("sgd_epoch: GU, EU, gU or ada_stamp do not match the layout")
    if rows and (ada_rec is None or ada_rec.shape[0] != n_attributes
                 or ada_rec.shape[1] != sizeof(fcrf_adarow_rec) // sizeof(double)):
        raise ValueError("sgd_epoch: ada_rec must have shape (n_attributes, 4)")
    if ada and lam1 > 0.0:
        raise ValueError("sgd_epoch: the adagrad step has no L1 (lam1 must be 0)")
    return 0


# --------------------------------------------------------------------------- #
# One call: a slice of an epoch.                                                #
# --------------------------------------------------------------------------- #

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
                                           #     (+ [5] u when lam1 > 0)
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
    double lam1=0.0,                       # IN  L1 strength per sequence (c1 / n_seq); > 0
                                           #     needs qU, qV, l1_stamp and scalars[5]
                                           #     (_l1.h)
    double[::1] qU=None,                   # INOUT [n_state] L1 penalty applied to each U
    double[::1] qV=None,                   # INOUT [K*K + 2K] the same for V
    int64_t[::1] l1_stamp=None,            # INOUT [A] last step that clipped each attribute
                                           #     (zeros at the start of training)
    const double[::1] seq_weight=None,     # IN  [n_seq] sample weights: each sequence's
                                           #     step is scaled by its weight (None: 1)
    bint adagrad=False,                    # IN  the AdaGrad step (_adagrad.h): eta = eta0
                                           #     constant, power ignored, lam1 must be 0;
                                           #     U, V are the weights (scalars[0] stays 1),
                                           #     Uhat, Vhat the sums of the averaged
                                           #     iterates; needs the four arrays below
    double[::1] GU=None,                   # INOUT [n_state] summed squared gradients of U
    double[::1] GV=None,                   # INOUT [K*K + 2K] the same for V
    double[::1] gU=None,                   # INOUT [n_state] scratch, zeros (and left so)
    int64_t[::1] ada_stamp=None,           # INOUT [A] the step up to which each attribute's
                                           #     weights are current (zeros at the start)
    double[::1] EU=None,                   # INOUT [n_state] expm1(-eta lam batch_size s) of
                                           #     each U's last step (zeros at the start)
    bint ada_rows=False,                   # IN  with adagrad: the per-row step (_adagrad.h,
                                           #     fcrf_adarec_*) on ada_rec; GU, EU, gU and
                                           #     ada_stamp unused
    double[:, ::1] ada_rec=None,           # INOUT [A][4] with ada_rows, each attribute row's
                                           #     record (_adagrad.h, fcrf_adarow_rec): its
                                           #     summed mean squared gradient GA, EA =
                                           #     expm1(-eta lam batch_size s_a) of its last
                                           #     step, its stamp (as ada_stamp) and its
                                           #     slot (int64 -1 between calls); zeros but
                                           #     the slots at the start
    const unsigned char[::1] V_forbid=None,  # IN  [K*K + 2K] 1 where the constraints forbid
                                           #     the score: -inf in every lattice (the
                                           #     padded kernels then decline, _core's run)
    tuple edges=None,                      # IN  transition attributes (eids, evals, etok):
                                           #     int32 ids, float64 values or [0] (all 1),
                                           #     int64 [n_tokens + 1] offsets, no entry at
                                           #     a sequence's first token; None: none
    double[::1] W=None,                    # INOUT [F * SW] their scaled weights, as U
                                           #     (SW = K*K rounded up to 4; [f][i*K + j])
    double[::1] What=None,                 # INOUT [F * SW] as Uhat
    double[::1] qW=None,                   # INOUT [F * SW] as qU (lam1 > 0)
    int64_t[::1] W_l1_stamp=None,          # INOUT [F] as l1_stamp (lam1 > 0)
    double[::1] GW=None,                   # INOUT [F * SW] as GU (adagrad, per weight)
    double[::1] EW=None,                   # INOUT [F * SW] as EU (adagrad, per weight)
    double[::1] gW=None,                   # INOUT [F * SW] as gU (adagrad)
    int64_t[::1] W_ada_stamp=None,         # INOUT [F] as ada_stamp (adagrad)
    double[::1] GAW=None,                  # INOUT [F] as GA (ada_rows)
    double[::1] EAW=None,                  # INOUT [F] as EA (ada_rows)
):
    """One pass of (averaged) SGD over ``order``; returns 0, or -1 if the weights diverged."""
    cdef Py_ssize_t nU = U.shape[0]
    cdef Py_ssize_t S = (K + 3) // 4 * 4
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t nV = KK + 2 * K
    cdef Py_ssize_t n_visit = order.shape[0]
    cdef bint l1 = lam1 > 0.0
    cdef fcrf_layout L
    cdef double* Up = &U[0] if nU > 0 else NULL
    cdef double* Hp = &Uhat[0] if nU > 0 else NULL
    cdef SGDScratch m
    cdef StepSchedule sch
    cdef double* pw
    cdef Chain c
    cdef fcrf_padded_lattice pc
    cdef Work w
    cdef SGDBatch b
    cdef SGDBatch* bp = &b       # written through inside the parallel block: stays shared
    cdef int64_t sync[3]
    cdef int tid
    cdef int status = 0
    cdef int* status_p = &status
    cdef int bad = 0
    cdef int* bad_p = &bad
    cdef SGDEdges ed
    cdef Py_ssize_t extra = 0
    cdef Py_ssize_t gcap = 0
    cdef double* gbuf = NULL
    cdef int32_t* slot_rows = NULL
    cdef Py_ssize_t i
    cdef int64_t gused[N_PARTS]

    _check_layout(U, K, S, D, tail_ptr, tail_label, &L)
    _check_bounds(U, Uhat, V, Vhat, V_mask, nV, tok_off, tok_mid, seq_off, order, Tmax,
                  batch_size)
    _check_l1(scalars, l1, qU, qV, l1_stamp, nU, nV, D + max(tail_ptr.shape[0] - 1, 0))
    _check_adagrad(adagrad, ada_rows, GU, GV, gU, EU, ada_rec, ada_stamp, nU, nV,
                   D + max(tail_ptr.shape[0] - 1, 0), lam1)
    if V_forbid is not None and V_forbid.shape[0] != nV:
        raise ValueError("sgd_epoch: V_forbid does not match the layout")
    if edges is not None:
        # Last of the checks: it allocates ed.emarg (freed below).
        extra = _bind_edges(&ed, edges, W, What, qW, W_l1_stamp, GW, EW, gW, W_ada_stamp,
                            GAW, EAW, K, Tmax, batch_size, tok_off.shape[0], l1, adagrad,
                            ada_rows)
    if ada_rows:
        gcap = _batch_rows(tok_off, seq_off, order, batch_size,
                           D + max(tail_ptr.shape[0] - 1, 0))
        gbuf = <double*> calloc(N_PARTS * gcap * S + 1, sizeof(double))
        slot_rows = <int32_t*> malloc(N_PARTS * (gcap + 1) * sizeof(int32_t))
    if (_scratch_alloc(&m, K, S, Tmax, batch_size, nV, n_threads, extra) != 0
            or (ada_rows and (gbuf == NULL or slot_rows == NULL))):
        if edges is not None:
            free(ed.emarg)
        free(gbuf)
        free(slot_rows)
        raise MemoryError("fastcrf: could not allocate the SGD workspace")
    if edges is not None:
        ed.work = m.per_thread - m.work - extra
    sch.eta0 = eta0
    sch.lam = lam
    sch.power = power
    sch.avg_start = avg_start
    sch.lam1 = lam1
    c = _chain_bind(K, m.scores, m.scores + KK, m.scores + KK + K, m.scores + nV)
    pc.K = K
    pc.S = S
    pc.start = c.start
    pc.end = c.end
    pc.E = m.scores + nV + _chain_doubles(K)
    pc.ET = pc.E + K * S
    memset(<double*> pc.E, 0, 2 * K * S * sizeof(double))   # the padding stays 0
    b.L = &L
    b.c = &c
    b.pc = &pc
    b.U = Up
    b.scalars = &scalars[0]
    b.ids = _ids(ids)
    b.vals = _values(vals)
    b.tok_off = &tok_off[0]
    b.tok_mid = &tok_mid[0] if tok_mid.shape[0] > 0 else NULL
    b.seq_off = &seq_off[0]
    b.labels = &labels[0] if labels.shape[0] > 0 else NULL
    b.order = &order[0] if n_visit > 0 else NULL
    b.marg = m.marg
    b.part_lem = m.part_lem
    b.batch_size = batch_size
    b.dv = m.dv
    b.loss = &loss_out[0] if n_visit > 0 else NULL
    b.Tmax = Tmax
    b.S = S
    b.nU = nU
    b.nV = nV
    b.Uw = Up
    b.Uhat = Hp
    b.V = &V[0]
    b.Vhat = &Vhat[0]
    b.V_mask = &V_mask[0]
    b.V_forbid = &V_forbid[0] if V_forbid is not None else NULL
    b.seq_weight = &seq_weight[0] if seq_weight is not None and seq_weight.shape[0] > 0 \
        else NULL
    b.averaging = 0
    b.l1 = l1
    b.l1_u = 0.0
    b.l1_step = 0
    b.qU = &qU[0] if l1 and nU > 0 else NULL
    b.qV = &qV[0] if l1 else NULL
    b.l1_stamp = &l1_stamp[0] if l1 and l1_stamp.shape[0] > 0 else NULL
    b.ada = adagrad
    b.ada_rows = ada_rows
    b.GU = &GU[0] if adagrad and not ada_rows and nU > 0 else NULL
    b.EU = &EU[0] if adagrad and not ada_rows and nU > 0 else NULL
    b.rec = <fcrf_adarow_rec*> &ada_rec[0, 0] if ada_rows and ada_rec.shape[0] > 0 else NULL
    b.gbuf = gbuf
    b.gcap = gcap
    b.gused = gused
    b.slot_rows = slot_rows
    b.gU = &gU[0] if adagrad and not ada_rows and nU > 0 else NULL
    b.GV = &GV[0] if adagrad else NULL
    b.gV = m.gV
    b.ada_stamp = &ada_stamp[0] if adagrad and not ada_rows and ada_stamp.shape[0] > 0 \
        else NULL
    b.n_attributes = D + max(tail_ptr.shape[0] - 1, 0)
    b.ed = &ed if edges is not None else NULL
    sync[0] = 0   # the published generation; -1: the call is over
    sync[1] = 0   # the claim word (_sync.h)
    sync[2] = 0   # items of the current generation done
    with nogil, parallel(num_threads=n_threads):
        tid = threadid()
        w = _work_bind(m.threads + tid * m.per_thread, Tmax, K)
        pw = m.threads + tid * m.per_thread + m.work
        if tid == 0:
            status_p[0] = _master_loop(bp, &c, &pc, &sch, &scalars[0], &w, pw, sync, n_visit,
                                       bad_p)
        else:
            _helper_loop(bp, &w, pw, sync, bad_p)
    if status == 0 and fold and adagrad:
        # Every row current: U, V the iterate and Uhat, Vhat the sums of the average.
        _ada_sync(&b, <int64_t> scalars[S_STEP], eta0 * lam * batch_size,
                  _ada_averages(&sch, scalars[S_STEP]), True)
    elif status == 0 and fold:
        _fold_edges(b.ed, &scalars[0], l1, avg_start >= 0 and scalars[S_STEP] > avg_start + 1.0)
        if l1:
            fcrf_l1_fold(b.qU, nU, b.qV, nV, &scalars[S_L1], scalars[S_ALPHA])
        _fold(Up, Hp, nU, &V[0], &Vhat[0], nV, &scalars[0],
              avg_start >= 0 and scalars[S_STEP] > avg_start + 1.0)
    if status != 0 and ada_rows:
        # A diverged batch ends before its step, which would have given the slots of
        # its rows back.
        for i in range(b.n_attributes):
            b.rec[i].slot = -1
    _scratch_free(&m)
    free(gbuf)
    free(slot_rows)
    if edges is not None:
        free(ed.emarg)
    return status


cdef Py_ssize_t _batch_rows(const int64_t[::1] tok_off, const int64_t[::1] seq_off,
                            const int64_t[::1] order, Py_ssize_t batch_size,
                            Py_ssize_t n_attributes):
    # The rows a weight part's gradient buffer needs: the entries of the largest
    # mini-batch of ``order`` (the rows it touches are at most as many), at most the
    # attributes.  O(n_visit), after _check_bounds.
    cdef Py_ssize_t pos, i, best = 0
    cdef int64_t n, s
    for pos in range(0, order.shape[0], batch_size):
        n = 0
        for i in range(pos, min(pos + batch_size, order.shape[0])):
            s = order[i]
            n += tok_off[seq_off[s + 1]] - tok_off[seq_off[s]]
        best = max(best, n)
    return min(best, n_attributes)


cdef Py_ssize_t _bind_edges(SGDEdges* ed, tuple edges, double[::1] W, double[::1] What,
                            double[::1] qW, int64_t[::1] l1_stamp, double[::1] GW,
                            double[::1] EW, double[::1] gW, int64_t[::1] ada_stamp,
                            double[::1] GA, double[::1] EA, Py_ssize_t K, Py_ssize_t Tmax,
                            Py_ssize_t batch_size, Py_ssize_t n_tok_off, bint l1, bint ada,
                            bint rows) except -1:
    # Fill ed after bounds checks of its arrays' sizes (the Python layer builds them);
    # allocates ed.emarg and returns the doubles of edge scratch each thread needs.
    cdef const int32_t[::1] eids = edges[0]
    cdef const double[::1] evals = edges[1]
    cdef const int64_t[::1] etok = edges[2]
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t SW = (KK + 3) // 4 * 4
    cdef Py_ssize_t F, n
    if W is None or What is None or W.shape[0] % SW != 0 or What.shape[0] != W.shape[0]:
        raise ValueError("sgd_epoch: W and What must hold F rows of K*K rounded up to 4")
    F = W.shape[0] // SW
    n = F * SW
    if etok.shape[0] != n_tok_off or etok[n_tok_off - 1] != eids.shape[0] or (
            evals.shape[0] not in (0, eids.shape[0])):
        raise ValueError("sgd_epoch: the transition attributes do not match the tokens")
    if l1 and (qW is None or l1_stamp is None or qW.shape[0] != n or l1_stamp.shape[0] != F):
        raise ValueError("sgd_epoch: qW or W_l1_stamp do not match W")
    if ada and (gW is None or ada_stamp is None or gW.shape[0] != n
                or ada_stamp.shape[0] != F):
        raise ValueError("sgd_epoch: gW or W_ada_stamp do not match W")
    if ada and not rows and (GW is None or EW is None or GW.shape[0] != n or EW.shape[0] != n):
        raise ValueError("sgd_epoch: GW or EW do not match W")
    if rows and (GA is None or EA is None or GA.shape[0] != F or EA.shape[0] != F):
        raise ValueError("sgd_epoch: GAW or EAW do not match W")
    ed.LW.K = KK
    ed.LW.S = SW
    ed.LW.D = F
    ed.LW.ptr = NULL
    ed.LW.label = NULL
    ed.eids = _ids(eids)
    ed.evals = _values(evals)
    ed.etok = &etok[0]
    ed.W = &W[0] if n > 0 else NULL
    ed.What = &What[0] if n > 0 else NULL
    ed.qW = &qW[0] if l1 and n > 0 else NULL
    ed.l1_stamp = &l1_stamp[0] if l1 and F > 0 else NULL
    ed.GW = &GW[0] if ada and not rows and n > 0 else NULL
    ed.EW = &EW[0] if ada and not rows and n > 0 else NULL
    ed.gW = &gW[0] if ada and n > 0 else NULL
    ed.ada_stamp = &ada_stamp[0] if ada and F > 0 else NULL
    ed.GA = &GA[0] if rows and F > 0 else NULL
    ed.EA = &EA[0] if rows and F > 0 else NULL
    ed.F = F
    ed.work = 0
    ed.emarg = <double*> malloc((batch_size * Tmax * SW + 1) * sizeof(double))
    if ed.emarg == NULL:
        raise MemoryError("fastcrf: could not allocate the SGD workspace")
    # Per thread (_edge_sequence): [2][Tmax][K][K] the positions' scores and their
    # exponentials, [3][Tmax][K] alpha, beta and emf, [Tmax] offsets, [K] terms,
    # [2][K][K] a pairwise marginal and exp(trans), [2][Tmax] pointers (a double each).
    return 2 * Tmax * KK + 3 * Tmax * K + Tmax + K + 2 * KK + 2 * Tmax + 1


def _py_sequence_marginals(
    const double[:, ::1] lem,              # IN  [T][K] emission scores of one sequence
    const double[:, ::1] trans,            # IN  [K][K]
    const double[::1] start,               # IN  [K]
    const double[::1] end,                 # IN  [K]
    double[:, ::1] marg_out,               # OUT [T][K] node marginals
    double[:, ::1] edge_out,               # OUT [K][K] summed edge marginals
    bint padded,                           # IN  the padded kernels (_padded.h) or _core's
    Py_ssize_t repeats=1,                  # IN  run it this many times (timing)
):
    """Test and bench twin of the lattice part of _batch_sequence; returns log Z, or NaN
    when the padded kernels decline the sequence (then _core's take it)."""
    cdef Py_ssize_t T = lem.shape[0]
    cdef Py_ssize_t K = lem.shape[1]
    cdef Py_ssize_t S = (K + 3) // 4 * 4
    cdef Py_ssize_t wd = _work_doubles(T, K)
    cdef Py_ssize_t pwd = fcrf_padded_work_doubles(T, S)
    cdef double* buf = <double*> malloc((_chain_doubles(K) + 2 * K * S + wd + pwd + 2 * T * S)
                                        * sizeof(double))
    cdef double* pe
    cdef double* plem
    cdef double* P
    cdef Chain c
    cdef fcrf_padded_lattice pc
    cdef Work w
    cdef Py_ssize_t r, t, k, i
    cdef double logz = 0.0
    cdef int status = 0
    if buf == NULL:
        raise MemoryError()
    c = _chain_bind(K, &trans[0, 0], &start[0], &end[0], buf)
    _chain_scaled(&c)
    pe = buf + _chain_doubles(K)
    _padded_bind(&c, S, pe, &pc)
    w = _work_bind(pe + 2 * K * S, T, K)
    plem = pe + 2 * K * S + wd + pwd
    P = plem + T * S
    memset(plem, 0, T * S * sizeof(double))
    for t in range(T):
        for k in range(K):
            plem[t * S + k] = lem[t, k]
    with nogil:
        for r in range(repeats):
            if padded:
                status = fcrf_padded_marginals(&pc, plem, T, pe + 2 * K * S + wd, P, w.edge,
                                              &logz)
            else:
                for t in range(T):
                    for k in range(K):
                        w.lem[t * K + k] = lem[t, k]
                logz = _sequence_marginals(&c, T, &w, True, True)
    if padded and (status != 0 or not (c.raw_edges and fcrf_padded_available(S))):
        free(buf)
        return float("nan")
    for t in range(T):
        for k in range(K):
            marg_out[t, k] = P[t * S + k] if padded else w.alpha[t * K + k]
    for i in range(K * K):
        edge_out[i // K, i % K] = w.edge[i]
    free(buf)
    return logz
