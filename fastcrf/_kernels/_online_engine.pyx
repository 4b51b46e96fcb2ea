# The perceptron / passive-aggressive / AROW epoch engine (CRFsuite's 'ap', 'pa' and
# 'arow'): one serial pass over an encoded training set, decoding each sequence with
# the current weights (fastcrf/_train/online.py holds the Python side).  Inputs are trusted: the
# Python layer validates ids, offsets and labels and sizes the scratch D.

from libc.math cimport sqrt
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset

from ._core cimport (Chain, _add_path_counts, _chain_bind, _chain_decoder, _chain_doubles,
                     _path_score, _viterbi_one)
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

    if lem == NULL or rows == NULL or path == NULL or cell == NULL or cval == NULL:
        free(lem); free(rows); free(path); free(cell); free(cval)
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
            if pa_type == -2:
                # AROW: each weight moves by its own variance, which then shrinks.
                gold = _path_score(&c, lem, T, y)
                cost = best - gold + d
                frac = C
                for m in range(n_cells):
                    frac += cval[m] * cval[m] * Wv[cell[m]]
                for m in range(nV):
                    frac += dv[m] * dv[m] * V_var[m]
                loss_out[i] = cost
                tau = sw * cost / frac
                for m in range(n_cells):
                    idx = cell[m]
                    W[idx // K, idx % K] += tau * Wv[idx] * cval[m]
                    Wv[idx] = 1.0 / (1.0 / Wv[idx] + sw * cval[m] * cval[m] / C)
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
            tau = tau * sw
            for m in range(n_cells):
                W[cell[m] // K, cell[m] % K] += tau * cval[m]
                Wsum[cell[m] // K, cell[m] % K] += cnt * tau * cval[m]
            for m in range(nV):
                V[m] += tau * dv[m]
                Vsum[m] += cnt * tau * dv[m]
            _chain_decoder(&c)
    free(lem)
    free(rows)
    free(path)
    free(cell)
    free(cval)
    return status
