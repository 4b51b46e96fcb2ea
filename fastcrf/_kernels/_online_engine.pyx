# The perceptron / passive-aggressive / AROW epoch engine (CRFsuite's 'ap', 'pa' and
# 'arow'): one serial pass over an encoded training set, decoding each sequence with
# the current weights (fastcrf/_train/online.py holds the Python side).  Inputs are trusted: the
# Python layer validates ids, offsets and labels and sizes the scratch D.

from libc.math cimport INFINITY, fabs, sqrt
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset

from ._core cimport (Chain, _add_path_counts, _chain_bind, _chain_decoder, _chain_doubles,
                     _path_score, _viterbi_one)
from ._edges cimport _path, _viterbi
from ._limits cimport MAX_SCORE
from ._rows cimport _ids, _values, fcrf_emissions, fcrf_layout, fcrf_max_abs


# --------------------------------------------------------------------------- #
# Averaged perceptron, passive-aggressive and AROW (CRFsuite's 'ap', 'pa', 'arow'). #
# --------------------------------------------------------------------------- #
#
# All decode each sequence with the current weights and, where the best path
# differs from the gold one, move the weights along
#     delta = Phi(x, y_gold) - Phi(x, y_best)
# by tau (1 for the perceptron; PA's closed form otherwise).  Averaging keeps
#     Wsum += c * tau * delta   (c counts the sequences seen, from 1)
# so that, as in CRFsuite, the average is W - Wsum / (c + 1), computed once at the
# end (Daume's trick).  AROW (Mejer and Crammer 2010, as CRFsuite's train_arow.c)
# keeps a variance per weight instead of an average: with the cost
# score(best) - score(gold) + #errors, it moves each weight by
#     alpha * var * delta,   alpha = cost / (gamma + sum(var * delta^2))
# and shrinks its variance to 1 / (1 / var + delta^2 / gamma).
# delta is gathered in the dense scratch D (all zeros between sequences) so that
# repeated attributes cancel exactly and ||delta||^2 is exact.
#
# Transition attributes (observation-conditioned transitions, _edges.pyx) have their
# own weights WE[f][i*K + j] and scratch DE: a sequence with some is decoded by
# _edges' Viterbi over its positions' own matrices trans + sum_f x[t][f] WE[f], and
# delta gains, at each position whose gold and best label pairs differ, +x for the
# gold pair and -x for the best one of each of its attributes.  The updates, norms
# and variances treat those cells as more weights.

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
    int pa_type,                           # IN  -1: perceptron; 0, 1, 2: PA, PA-I, PA-II;
                                           #     -2: AROW
    double C,                              # IN  PA aggressiveness; AROW's gamma
    bint error_sensitive,                  # IN  PA: cost sqrt(#errors) instead of 1
    double[::1] counter,                   # INOUT [1] sequences seen (c)
    double[::1] loss_out,                  # OUT [n_visit] error ratio (ap) or cost
    double[:, ::1] W_var,                  # INOUT [A][K] AROW's variances, or (0, 0)
    double[::1] V_var,                     # INOUT [K*K + 2K] AROW's variances, or (0,)
    const double[::1] seq_weight=None,     # IN  [n_seq] sample weights, or None: all 1.
                                           #     A sequence's update is scaled by its
                                           #     weight (AROW: also its variance shrink)
    tuple edges=None,                      # IN  transition attributes (eids, evals, etok)
                                           #     as _sgd_engine.sgd_epoch's; None: none
    double[:, ::1] WE=None,                # INOUT [F][K*K] their weights
    double[:, ::1] WEsum=None,             # INOUT [F][K*K] averaging accumulator
    double[:, ::1] DE=None,                # SCRATCH [F][K*K], zeros on entry and exit
    double[:, ::1] WE_var=None,            # INOUT [F][K*K] AROW's variances, or None
):
    """One pass of the perceptron / passive-aggressive / AROW; returns 0 or -1 (bad
    scores)."""
    cdef const double* vp = _values(vals)
    cdef const int32_t* ip = _ids(ids)
    cdef Py_ssize_t K = W.shape[1]
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t nV = KK + 2 * K
    cdef Py_ssize_t n_visit = order.shape[0]
    cdef bint masked = W_mask.shape[0] > 0
    # lem [Tmax][K], delta [Tmax][K], bound [K], dv [nV], then the chain's constants
    cdef double* lem = <double*> malloc((2 * Tmax * K + K + nV + _chain_doubles(K))
                                        * sizeof(double))
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
    cdef double best, gold, d, cost, norm2, tau, cnt, x, frac, sw = 1.0
    cdef const double* swp = &seq_weight[0] if seq_weight is not None \
        and seq_weight.shape[0] > 0 else NULL
    cdef double* Wv = &W_var[0, 0] if pa_type == -2 else NULL
    cdef int status = 0
    cdef _Edges ed
    cdef bint has_e
    cdef Py_ssize_t n_ecells = 0

    ed.F = -1
    if edges is not None:
        try:
            _bind_edges(&ed, edges, WE, WEsum, DE, WE_var, K, Tmax, tok_off.shape[0],
                        seq_off, pa_type == -2)
        except BaseException:
            free(lem); free(rows); free(path); free(cell); free(cval)
            raise

    if lem == NULL or rows == NULL or path == NULL or cell == NULL or cval == NULL:
        free(lem); free(rows); free(path); free(cell); free(cval)
        _free_edges(&ed)
        raise MemoryError("fastcrf: could not allocate the online-training workspace")
    dv = lem + 2 * Tmax * K + K
    L.K = K
    L.S = K
    L.D = W.shape[0]
    L.ptr = NULL
    L.label = NULL
    c = _chain_bind(K, &V[0], &V[KK], &V[KK + K], dv + nV)
    with nogil:
        _chain_decoder(&c)
        for i in range(n_visit):
            s = order[i]
            if swp != NULL:
                sw = swp[s]
            t0 = seq_off[s]
            T = seq_off[s + 1] - t0
            y = &labels[t0]
            fcrf_emissions(&L, &W[0, 0], ip, vp, &tok_off[t0], &tok_off[t0 + 1], T, 1.0,
                           lem, K)
            if not (fcrf_max_abs(lem, T * K) <= MAX_SCORE):
                status = -1
                break
            has_e = ed.F >= 0 and ed.etok[t0 + T] > ed.etok[t0]
            if has_e:
                if not _bind_positions(&ed, &c, t0, T):
                    status = -1
                    break
                best = _viterbi(T, K, lem, K, ed.tp, c.start, c.end, ed.delta, ed.back, path)
            else:
                best = _viterbi_one(&c, lem, T, lem + Tmax * K, lem + 2 * Tmax * K, rows,
                                    path)
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
            n_ecells = _edge_delta(&ed, t0, T, y, path) if has_e else 0
            memset(dv, 0, nV * sizeof(double))
            _add_path_counts(y, T, K, 1.0, dv)
            _add_path_counts(path, T, K, -1.0, dv)
            for m in range(nV):
                dv[m] *= V_mask[m]
            if pa_type == -2:
                # AROW: each weight moves by its own variance, which then shrinks.
                gold = _path(T, K, lem, K, ed.tp, c.start, c.end, y) if has_e \
                    else _path_score(&c, lem, T, y)
                cost = best - gold + d
                frac = C
                for m in range(n_cells):
                    frac += cval[m] * cval[m] * Wv[cell[m]]
                for m in range(n_ecells):
                    frac += ed.cval[m] * ed.cval[m] * ed.var[ed.cell[m]]
                for m in range(nV):
                    frac += dv[m] * dv[m] * V_var[m]
                loss_out[i] = cost
                tau = sw * cost / frac
                for m in range(n_cells):
                    idx = cell[m]
                    W[idx // K, idx % K] += tau * Wv[idx] * cval[m]
                    Wv[idx] = 1.0 / (1.0 / Wv[idx] + sw * cval[m] * cval[m] / C)
                for m in range(n_ecells):
                    idx = ed.cell[m]
                    ed.W[idx] += tau * ed.var[idx] * ed.cval[m]
                    ed.var[idx] = 1.0 / (1.0 / ed.var[idx] + sw * ed.cval[m] * ed.cval[m] / C)
                for m in range(nV):
                    if dv[m] != 0.0:
                        V[m] += tau * V_var[m] * dv[m]
                        V_var[m] = 1.0 / (1.0 / V_var[m] + sw * dv[m] * dv[m] / C)
                _chain_decoder(&c)
                continue
            if pa_type == -1:
                tau = 1.0
                # CRFsuite's loss of the perceptron: the share of wrong labels.
                loss_out[i] = d / T
            else:
                gold = _path(T, K, lem, K, ed.tp, c.start, c.end, y) if has_e \
                    else _path_score(&c, lem, T, y)
                cost = best - gold + (sqrt(d) if error_sensitive else 1.0)
                norm2 = 0.0
                for m in range(n_cells):
                    norm2 += cval[m] * cval[m]
                for m in range(n_ecells):
                    norm2 += ed.cval[m] * ed.cval[m]
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
            tau = tau * sw
            for m in range(n_cells):
                W[cell[m] // K, cell[m] % K] += tau * cval[m]
                Wsum[cell[m] // K, cell[m] % K] += cnt * tau * cval[m]
            for m in range(n_ecells):
                ed.W[ed.cell[m]] += tau * ed.cval[m]
                ed.Wsum[ed.cell[m]] += cnt * tau * ed.cval[m]
            for m in range(nV):
                V[m] += tau * dv[m]
                Vsum[m] += cnt * tau * dv[m]
            _chain_decoder(&c)
    free(lem)
    free(rows)
    free(path)
    free(cell)
    free(cval)
    _free_edges(&ed)
    return status


cdef struct _Edges:
    # The transition attributes of online_epoch (F = -1: none) and their scratch.
    Py_ssize_t F
    Py_ssize_t K
    const int32_t* eids
    const double* evals   # NULL: all 1.0
    const int64_t* etok
    double* W             # [F][K*K]
    double* Wsum          # [F][K*K]
    double* D             # [F][K*K] zeros between sequences
    double* var           # [F][K*K] AROW's variances, or NULL
    double* mats          # [Tmax][K][K] the positions' own transitions
    const double** tp     # [Tmax] each position's transitions
    double* delta         # [Tmax][K] Viterbi scores
    int64_t* back         # [Tmax][K] back pointers
    int64_t* cell         # [2 * most entries of a sequence] distinct cells of DE
    double* cval          # [the same] their values


cdef int _bind_edges(_Edges* ed, tuple edges, double[:, ::1] WE, double[:, ::1] WEsum,
                     double[:, ::1] DE, double[:, ::1] WE_var, Py_ssize_t K,
                     Py_ssize_t Tmax, Py_ssize_t n_tok_off, const int64_t[::1] seq_off,
                     bint arow) except -1:
    # Bounds checks of the arrays' sizes (the Python layer builds them), then the
    # scratch (freed by _free_edges).
    cdef const int32_t[::1] eids = edges[0]
    cdef const double[::1] evals = edges[1]
    cdef const int64_t[::1] etok = edges[2]
    cdef Py_ssize_t s, most = 0
    ed.F = -1
    if (WE is None or WEsum is None or DE is None or WE.shape[1] != K * K
            or WEsum.shape[0] != WE.shape[0] or WEsum.shape[1] != K * K
            or DE.shape[0] != WE.shape[0] or DE.shape[1] != K * K
            or (arow and (WE_var is None or WE_var.shape[0] != WE.shape[0]
                          or WE_var.shape[1] != K * K))):
        raise ValueError("online_epoch: WE, WEsum, DE or WE_var have the wrong shape")
    if etok.shape[0] != n_tok_off or etok[n_tok_off - 1] != eids.shape[0] or (
            evals.shape[0] not in (0, eids.shape[0])):
        raise ValueError("online_epoch: the transition attributes do not match the tokens")
    for s in range(seq_off.shape[0] - 1):
        if etok[seq_off[s + 1]] - etok[seq_off[s]] > most:
            most = etok[seq_off[s + 1]] - etok[seq_off[s]]
    ed.K = K
    ed.eids = &eids[0] if eids.shape[0] > 0 else NULL
    ed.evals = &evals[0] if evals.shape[0] > 0 else NULL
    ed.etok = &etok[0]
    ed.W = &WE[0, 0] if WE.shape[0] > 0 else NULL
    ed.Wsum = &WEsum[0, 0] if WE.shape[0] > 0 else NULL
    ed.D = &DE[0, 0] if WE.shape[0] > 0 else NULL
    ed.var = &WE_var[0, 0] if arow and WE.shape[0] > 0 else NULL
    ed.mats = <double*> malloc((Tmax * K * K + Tmax * K + 1) * sizeof(double))
    ed.delta = ed.mats + Tmax * K * K
    ed.tp = <const double**> malloc((Tmax + 1) * sizeof(double*))
    ed.back = <int64_t*> malloc((Tmax * K + 1) * sizeof(int64_t))
    ed.cell = <int64_t*> malloc((2 * most + 1) * sizeof(int64_t))
    ed.cval = <double*> malloc((2 * most + 1) * sizeof(double))
    ed.F = WE.shape[0]
    if ed.mats == NULL or ed.tp == NULL or ed.back == NULL or ed.cell == NULL \
            or ed.cval == NULL:
        _free_edges(ed)
        raise MemoryError("fastcrf: could not allocate the online-training workspace")
    return 0


cdef void _free_edges(_Edges* ed) noexcept:
    if ed.F < 0:
        return
    free(ed.mats)
    free(<void*> ed.tp)
    free(ed.back)
    free(ed.cell)
    free(ed.cval)
    ed.F = -1


cdef bint _bind_positions(_Edges* ed, const Chain* c, int64_t t0,
                          Py_ssize_t T) noexcept nogil:
    # ed.tp[t]: the chain's transitions where position t has no transition attribute,
    # else trans + sum_f x[t][f] WE[f] (-inf stays -inf).  False when a score leaves
    # the range.
    cdef Py_ssize_t K = ed.K
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t t, m, n = 0
    cdef int64_t e
    cdef double v
    cdef const double* w
    cdef double* out
    ed.tp[0] = c.trans
    for t in range(1, T):
        if ed.etok[t0 + t + 1] == ed.etok[t0 + t]:
            ed.tp[t] = c.trans
            continue
        out = ed.mats + n * KK
        n += 1
        for m in range(KK):
            out[m] = c.trans[m]
        for e in range(ed.etok[t0 + t], ed.etok[t0 + t + 1]):
            v = ed.evals[e] if ed.evals != NULL else 1.0
            w = ed.W + <Py_ssize_t> ed.eids[e] * KK
            for m in range(KK):
                out[m] += v * w[m]
        for m in range(KK):
            if out[m] != -INFINITY and not (fabs(out[m]) <= MAX_SCORE):
                return False
        ed.tp[t] = out
    return True


cdef Py_ssize_t _edge_delta(_Edges* ed, int64_t t0, Py_ssize_t T, const int64_t* y,
                            const int64_t* path) noexcept nogil:
    # The transition-attribute cells of delta = Phi(gold) - Phi(best) into ed.cell and
    # ed.cval (each distinct non-zero cell once, DE cleared behind); returns their count.
    cdef Py_ssize_t K = ed.K
    cdef Py_ssize_t KK = K * K
    cdef Py_ssize_t t, m, n_touched = 0, n_cells = 0
    cdef int64_t e, gold, best, idx
    cdef double v, x
    for t in range(1, T):
        gold = y[t - 1] * K + y[t]
        best = path[t - 1] * K + path[t]
        if gold == best:
            continue
        for e in range(ed.etok[t0 + t], ed.etok[t0 + t + 1]):
            v = ed.evals[e] if ed.evals != NULL else 1.0
            idx = <int64_t> ed.eids[e] * KK + gold
            if ed.D[idx] == 0.0:
                ed.cell[n_touched] = idx
                n_touched += 1
            ed.D[idx] += v
            idx = <int64_t> ed.eids[e] * KK + best
            if ed.D[idx] == 0.0:
                ed.cell[n_touched] = idx
                n_touched += 1
            ed.D[idx] -= v
    for m in range(n_touched):
        idx = ed.cell[m]
        x = ed.D[idx]
        if x != 0.0:
            ed.D[idx] = 0.0
            ed.cell[n_cells] = idx
            ed.cval[n_cells] = x
            n_cells += 1
    return n_cells
