/* Scaled forward-backward of one sequence over label rows padded to S = K rounded up
 * to a multiple of 4, register-blocked: the lattice part of an SGD step
 * (fastcrf/_kernels/_sgd_engine.pyx, _batch_sequence).
 *
 * It computes what _core.pyx's _forward_scaled + _backward_scaled compute (same
 * recurrences, same underflow bounds, same fallback signal), but
 *   - every row is a whole number of 4-double vectors (the S - K padding lanes hold
 *     exact zeros, so no loop has a scalar remainder and no lane needs masking);
 *   - a row times the transition matrix keeps up to 24 outputs in registers for the
 *     whole pass over the K input labels (the plain loop reloads and stores them);
 *   - the summed edge marginals sum_t alpha_{t-1}[i] v_t[j] are one register-blocked
 *     product of two [T][S] matrices after the backward pass instead of a rank-1
 *     update of a [K][K] matrix in memory per position.
 * On CoNLL-2000 (K = 22) this was half of an SGD epoch's instructions before.
 * Measured against _core's kernels on identical inputs (one sequence, T = 24): 1.5x
 * (K = 5), 1.8x (K = 22), 1.7x (K = 50) faster; a single-thread CoNLL-2000 fit ~20%
 * faster (CPU time).  tests/test_padded.py checks that the two agree.
 *
 * Buffers are row-major; [T][S] means buf[t * S + k].  Needs S % 4 == 0 and the GCC
 * vector extensions (fcrf_padded_available); callers use the _core.pyx kernels
 * otherwise, and whenever a function here returns -1.
 */
#ifndef FASTCRF_PADDED_H
#define FASTCRF_PADDED_H

#include <math.h>
#include <stddef.h>
#include <string.h>
#include "_limits.h"
#include "_rows.h"

/* As in _core.pyx: one product that underflows loses at most FCRF_UNDERFLOW_TERM; a
 * row whose lost mass could exceed FCRF_LOSS_TOL of its sum sends the sequence to
 * the exact log-space kernels (_limits.h). */

typedef struct {
    ptrdiff_t K;              /* labels */
    ptrdiff_t S;              /* row stride: K rounded up to a multiple of 4 */
    const double* start;      /* [K] start scores */
    const double* end;        /* [K] end scores */
    const double* E;          /* [K][S] exp(trans[i][j] - tmax), zero for j >= K */
    const double* ET;         /* [K][S] its transpose, zero for i >= K */
    double tmax;              /* max of the transition scores */
} fcrf_padded_lattice;

/* Doubles of scratch fcrf_padded_marginals needs for T positions. */
static inline ptrdiff_t fcrf_padded_work_doubles(ptrdiff_t T, ptrdiff_t S)
{
    return 3 * T * S + 2 * T + 2 * S;
}

static inline int fcrf_padded_available(ptrdiff_t S)
{
#if FCRF_VECTORS
    return S % 4 == 0;
#else
    (void) S;
    return 0;
#endif
}

#if FCRF_VECTORS

#define FCRF_LD(p) (*(const fcrf_v4d*) (p))
#define FCRF_ST(p) (*(fcrf_v4d*) (p))

static inline __attribute__((always_inline)) double fcrf_hsum(fcrf_v4d v)
{
    return (v[0] + v[2]) + (v[1] + v[3]);
}

/* y[c0 .. c0 + 4N) = sum_{i < K} x[i] M[i][c0 .. c0 + 4N), the N output vectors
 * held in registers over the whole pass. */
#define FCRF_VECMAT_PASS(N)                                                        \
    do {                                                                           \
        fcrf_v4d acc_[N];                                                          \
        int q_;                                                                    \
        ptrdiff_t i_;                                                              \
        for (q_ = 0; q_ < N; q_++)                                                 \
            acc_[q_] = zero;                                                       \
        for (i_ = 0; i_ < K; i_++) {                                               \
            const double x_ = x[i_];                                               \
            const double* m_ = M + i_ * S + c0;                                    \
            for (q_ = 0; q_ < N; q_++)                                             \
                acc_[q_] += x_ * FCRF_LD(m_ + 4 * q_);                             \
        }                                                                          \
        for (q_ = 0; q_ < N; q_++)                                                 \
            FCRF_ST(y + c0 + 4 * q_) = acc_[q_];                                   \
        c0 += 4 * (N);                                                             \
    } while (0)

/* y[j] = sum_{i < K} x[i] M[i][j] for j < S: a row vector times K rows of stride S. */
static inline __attribute__((always_inline)) void
fcrf_vecmat_padded(const double* FCRF_RESTRICT x, const double* FCRF_RESTRICT M,
                   double* FCRF_RESTRICT y, ptrdiff_t K, ptrdiff_t S)
{
    const fcrf_v4d zero = {0.0, 0.0, 0.0, 0.0};
    ptrdiff_t c0 = 0;
    while (S - c0 >= 24)
        FCRF_VECMAT_PASS(6);
    switch ((S - c0) / 4) {
    case 5: FCRF_VECMAT_PASS(5); break;
    case 4: FCRF_VECMAT_PASS(4); break;
    case 3: FCRF_VECMAT_PASS(3); break;
    case 2: FCRF_VECMAT_PASS(2); break;
    case 1: FCRF_VECMAT_PASS(1); break;
    default: break;
    }
}

/* Rows i and i + 1 of the edge sums, columns [c0, c0 + 4N):
 *   edge[r][j] = E[r][j] sum_{t=1}^{T-1} A[t-1][r] B[t][j],
 * accumulated in 2N registers over t.  Row i + 1 may be the padding row K (its A
 * column is zero); it is computed but not stored. */
#define FCRF_EDGE_PASS(N)                                                          \
    do {                                                                           \
        fcrf_v4d r0_[N], r1_[N];                                                   \
        double o0_[4 * (N)], o1_[4 * (N)];                                         \
        int q_;                                                                    \
        ptrdiff_t t_, j_;                                                          \
        for (q_ = 0; q_ < N; q_++)                                                 \
            r0_[q_] = r1_[q_] = zero;                                              \
        for (t_ = 1; t_ < T; t_++) {                                               \
            const double a0_ = A[(t_ - 1) * S + i], a1_ = A[(t_ - 1) * S + i + 1];  \
            const double* b_ = B + t_ * S + c0;                                    \
            for (q_ = 0; q_ < N; q_++) {                                           \
                const fcrf_v4d bv_ = FCRF_LD(b_ + 4 * q_);                         \
                r0_[q_] += a0_ * bv_;                                              \
                r1_[q_] += a1_ * bv_;                                              \
            }                                                                      \
        }                                                                          \
        memcpy(o0_, r0_, sizeof r0_);                                              \
        memcpy(o1_, r1_, sizeof r1_);                                              \
        for (j_ = c0; j_ < c0 + 4 * (N) && j_ < K; j_++) {                         \
            edge[i * K + j_] = o0_[j_ - c0] * E[i * S + j_];                       \
            if (i + 1 < K)                                                         \
                edge[(i + 1) * K + j_] = o1_[j_ - c0] * E[(i + 1) * S + j_];       \
        }                                                                          \
        c0 += 4 * (N);                                                             \
    } while (0)

static inline __attribute__((always_inline)) void
fcrf_edge_sums(const double* FCRF_RESTRICT A, const double* FCRF_RESTRICT B,
               const double* FCRF_RESTRICT E, ptrdiff_t T, ptrdiff_t K, ptrdiff_t S,
               double* FCRF_RESTRICT edge)
{
    const fcrf_v4d zero = {0.0, 0.0, 0.0, 0.0};
    ptrdiff_t i;
    for (i = 0; i < K; i += 2) {
        ptrdiff_t c0 = 0;
        while (S - c0 >= 24)
            FCRF_EDGE_PASS(6);
        switch ((S - c0) / 4) {
        case 5: FCRF_EDGE_PASS(5); break;
        case 4: FCRF_EDGE_PASS(4); break;
        case 3: FCRF_EDGE_PASS(3); break;
        case 2: FCRF_EDGE_PASS(2); break;
        case 1: FCRF_EDGE_PASS(1); break;
        default: break;
        }
    }
}

/* Neumaier's compensated sum (log Z adds T terms of very different magnitudes). */
static inline void fcrf_kahan_add(double* acc, double* comp, double x)
{
    const double t = *acc + x;
    if (fabs(*acc) >= fabs(x))
        *comp += (*acc - t) + x;
    else
        *comp += (x - t) + *acc;
    *acc = t;
}

/* Node marginals, summed edge marginals and log Z of one sequence.
 *
 *   lem   [T][S] emission scores (columns >= K are finite and otherwise ignored)
 *   work  fcrf_padded_work_doubles(T, S) doubles of scratch
 *   marg  [T][S] OUT P(y_t = k), zero for k >= K
 *   edge  [K][K] OUT sum_{t >= 1} P(y_{t-1} = i, y_t = j)
 *   logz  OUT log Z
 *
 * Forward, with emf[t][j] = exp(x[t][j] - mx_t), x = lem (+ start at t = 0, + end at
 * t = T - 1), mx_t = max_j x[t][j]:
 *   alpha'_0 = emf[0],  alpha'_t[j] = emf[t][j] sum_i alpha_{t-1}[i] E[i][j]
 *   alpha_t = alpha'_t / asum_t,  log Z = sum_t (mx_t + [t > 0] tmax + log asum_t)
 * Backward, each row renormalised:
 *   beta_{T-1} = 1 / K,  beta_{t-1}[i] ~ sum_j E[i][j] emf[t][j] beta_t[j]
 *   n_t = sum_i alpha_t[i] beta_t[i],  P(y_t = i) = alpha_t[i] beta_t[i] / n_t
 *   P(y_{t-1} = i, y_t = j) = alpha_{t-1}[i] E[i][j] v_t[j],
 *       v_t[j] = emf[t][j] beta_t[j] / (asum_t n_t).
 * The underflow bounds are those of _core.pyx (_forward_scaled): returns -1, with
 * the outputs undefined, when the lost mass could exceed FCRF_LOSS_TOL (or a sum is
 * not positive), and 0 otherwise.  The edge sums need E[i][j] >= ~1e-300 relative
 * to the largest (a transition range within RAW_EDGE_RANGE, checked by the caller),
 * or the raw sums could overflow. */
FCRF_MULTIVERSION
static int fcrf_padded_marginals(const fcrf_padded_lattice* c, const double* FCRF_RESTRICT lem,
                                ptrdiff_t T, double* FCRF_RESTRICT work,
                                double* FCRF_RESTRICT marg, double* FCRF_RESTRICT edge,
                                double* logz)
{
    const ptrdiff_t K = c->K, S = c->S;
    const double new_loss = (double) K * (double) K * FCRF_UNDERFLOW_TERM;
    double* FCRF_RESTRICT emf = work;               /* [T][S] */
    double* FCRF_RESTRICT alpha = emf + T * S;      /* [T][S] */
    double* FCRF_RESTRICT vb = alpha + T * S;       /* [T][S] v_t, for the edge sums */
    double* FCRF_RESTRICT asum = vb + T * S;        /* [T] */
    double* FCRF_RESTRICT aloss = asum + T;         /* [T] */
    double* beta = aloss + T;                       /* [S] */
    double* nxt = beta + S;                         /* [S] */
    const fcrf_v4d zero = {0.0, 0.0, 0.0, 0.0};
    double loss = 0.0, acc = 0.0, comp = 0.0;
    ptrdiff_t t, k;

    for (t = 0; t < T; t++) {
        double* FCRF_RESTRICT f = emf + t * S;
        double* FCRF_RESTRICT a = alpha + t * S;
        const double* l = lem + t * S;
        double mx, s, inv;
        fcrf_v4d sv = zero;
        for (k = 0; k < S; k += 4)
            FCRF_ST(f + k) = FCRF_LD(l + k);
        if (t == 0)
            for (k = 0; k < K; k++)
                f[k] += c->start[k];
        if (t == T - 1)
            for (k = 0; k < K; k++)
                f[k] += c->end[k];
        mx = fcrf_max(f, K);
        fcrf_exp_shifted(f, mx, f, S);   /* whole vectors; the padding is reset below */
        for (k = K; k < S; k++)
            f[k] = 0.0;
        if (t == 0) {
            for (k = 0; k < S; k += 4)
                FCRF_ST(a + k) = FCRF_LD(f + k);
        } else {
            fcrf_vecmat_padded(a - S, c->E, a, K, S);
            for (k = 0; k < S; k += 4)
                FCRF_ST(a + k) *= FCRF_LD(f + k);
        }
        for (k = 0; k < S; k += 4)
            sv += FCRF_LD(a + k);
        s = fcrf_hsum(sv);
        if (!(s > 0.0))
            return -1;
        loss = (loss + new_loss) / s;
        if (!(loss <= FCRF_LOSS_TOL))
            return -1;
        asum[t] = s;
        aloss[t] = loss;
        inv = 1.0 / s;
        for (k = 0; k < S; k += 4)
            FCRF_ST(a + k) *= inv;
        /* mx and tmax may be huge and of opposite signs: add them first. */
        fcrf_kahan_add(&acc, &comp, (t > 0 ? mx + c->tmax : mx) + log(s));
    }
    *logz = acc + comp;

    for (k = 0; k < S; k++)
        beta[k] = k < K ? 1.0 / (double) K : 0.0;
    loss = 0.0;
    for (t = T - 1; t >= 0; t--) {
        const double* a = alpha + t * S;
        double* FCRF_RESTRICT p = marg + t * S;
        fcrf_v4d nv = zero;
        double n, inv;
        for (k = 0; k < S; k += 4)
            nv += FCRF_LD(a + k) * FCRF_LD(beta + k);
        n = fcrf_hsum(nv);
        if (!(n > 0.0 && (aloss[t] + loss) / n <= FCRF_LOSS_TOL))
            return -1;
        inv = 1.0 / n;
        for (k = 0; k < S; k += 4)
            FCRF_ST(p + k) = FCRF_LD(a + k) * FCRF_LD(beta + k) * inv;
        if (t > 0) {
            double* FCRF_RESTRICT v = vb + t * S;
            const double* f = emf + t * S;
            const double vscale = 1.0 / (asum[t] * n);
            fcrf_v4d sv = zero;
            double s, *tmp;
            for (k = 0; k < S; k += 4)
                FCRF_ST(v + k) = FCRF_LD(f + k) * FCRF_LD(beta + k);
            fcrf_vecmat_padded(v, c->ET, nxt, K, S);
            for (k = 0; k < S; k += 4)
                FCRF_ST(v + k) *= vscale;
            for (k = 0; k < S; k += 4)
                sv += FCRF_LD(nxt + k);
            s = fcrf_hsum(sv);
            if (!(s > 0.0))
                return -1;
            loss = (loss + new_loss) / s;
            if (!(loss <= FCRF_LOSS_TOL))
                return -1;
            inv = 1.0 / s;
            for (k = 0; k < S; k += 4)
                FCRF_ST(nxt + k) *= inv;
            tmp = beta;
            beta = nxt;
            nxt = tmp;
        }
    }
    if (K > 0)
        fcrf_edge_sums(alpha, vb, c->E, T, K, S, edge);
    return 0;
}

#undef FCRF_LD
#undef FCRF_ST

#else   /* no vector extensions: callers take the _core.pyx kernels */

static int fcrf_padded_marginals(const fcrf_padded_lattice* c, const double* lem, ptrdiff_t T,
                                double* work, double* marg, double* edge, double* logz)
{
    (void) c; (void) lem; (void) T; (void) work; (void) marg; (void) edge; (void) logz;
    return -1;
}

#endif

/* start[y_0] + sum_t lem[t][y_t] + sum_{t >= 1} trans[y_{t-1}][y_t] + end[y_{T-1}],
 * lem with row stride S. */
static inline double fcrf_path_score_strided(const double* trans, const double* start,
                                             const double* end, const double* lem,
                                             ptrdiff_t T, ptrdiff_t K, ptrdiff_t S,
                                             const int64_t* y)
{
    double s = start[y[0]] + end[y[T - 1]];
    ptrdiff_t t;
    for (t = 0; t < T; t++)
        s += lem[t * S + y[t]];
    for (t = 1; t < T; t++)
        s += trans[y[t - 1] * K + y[t]];
    return s;
}

#endif
