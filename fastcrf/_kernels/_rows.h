/* The per-token state-weight operations of the SGD trainer (fastcrf/_kernels/_sgd_engine.pyx,
 * sgd_epoch), in C so that they are built for x86-64-v3 as well (see _kernels.h).
 *
 * State weights follow a two-part layout (fastcrf/_layout.py):
 *   - attributes a < D ("dense") own a row of K weights, U[a * S + k], where the row
 *     stride S is K rounded up to a multiple of 4: rows are whole 4-double vectors and
 *     the S - K padding weights are always exactly 0;
 *   - attributes a >= D ("tail") own only the labels listed in
 *     label[ptr[a - D] .. ptr[a - D + 1]), with their weights at U[D * S + j].
 * The tail holds the attributes that are too rare to earn a weight for every label
 * (the (attribute, label) pairs never seen in training stay exactly zero there).
 *
 * An SGD epoch executes ~10^4 instructions per token; these two functions were a
 * third of them with plain loops over K (a scalar remainder per row, the emission
 * row reloaded and stored for every attribute).  Here the emission row of a token is
 * summed in registers, 8 labels at a time, and rows are updated in whole vectors.
 */
#ifndef FASTCRF_ROWS_H
#define FASTCRF_ROWS_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "_kernels.h"

typedef struct {
    ptrdiff_t K;                 /* labels */
    ptrdiff_t S;                 /* dense row stride: K rounded up to a multiple of 4 */
    ptrdiff_t D;                 /* dense attributes: ids [0, D) */
    const int64_t* ptr;          /* [A - D + 1] tail offsets (NULL when A == D) */
    const int32_t* label;        /* [n_tail] label of each tail weight */
} fcrf_layout;

#if defined(__GNUC__) || defined(__clang__)
/* Four doubles; aligned(8) so that loads and stores need no 32-byte alignment, and
 * may_alias because they read and write arrays of double. */
typedef double fcrf_v4d __attribute__((vector_size(32), aligned(8), may_alias));
#  define FCRF_VECTORS 1
#else
#  define FCRF_VECTORS 0
#endif

#if FCRF_VECTORS
/* Columns [c0, c0 + 4N) of one token's emission row: the dense entries' weight rows
 * summed in N registers over the token's entries (the tail entries are left for a
 * second loop), then stored, the padding lanes included when stride is S (sums of
 * zero weights: exact zeros). */
#define FCRF_EMISSION_PASS(N)                                                      \
    do {                                                                           \
        fcrf_v4d acc_[N];                                                          \
        double out_[4 * (N)];                                                      \
        const ptrdiff_t n_out_ = stride - c0 < 4 * (N) ? stride - c0 : 4 * (N);    \
        int q_;                                                                    \
        for (q_ = 0; q_ < N; q_++)                                                 \
            acc_[q_] = (fcrf_v4d) {0.0, 0.0, 0.0, 0.0};                            \
        for (e = e0; e < e1; e++) {                                                \
            const ptrdiff_t a_ = ids[e];                                           \
            const double* w_;                                                      \
            double x_;                                                             \
            if (a_ >= D) {                                                         \
                has_tail = 1;                                                      \
                continue;                                                          \
            }                                                                      \
            x_ = (vals ? vals[e] : 1.0) * scale;                                   \
            w_ = U + a_ * S + c0;                                                  \
            for (q_ = 0; q_ < N; q_++)                                             \
                acc_[q_] += x_ * *(const fcrf_v4d*) (w_ + 4 * q_);                 \
        }                                                                          \
        memcpy(out_, acc_, sizeof acc_);                                           \
        memcpy(row + c0, out_, (size_t) n_out_ * sizeof(double));                  \
        c0 += 4 * (N);                                                             \
    } while (0)
#endif

/* lem[t][k] (k < K; row stride `stride`, K or S) = scale * sum over the entries e of
 * token t of x_e * w(ids[e], k), for T tokens whose entries are
 * [tok_start[t], tok_end[t]) (tok_end = tok_start + 1 for a CSR offset array);
 * x_e = vals[e], or 1.0 when vals is NULL.  With stride S, the padding columns
 * k >= K are set to 0. */
FCRF_MULTIVERSION
static void fcrf_emissions(const fcrf_layout* L, const double* FCRF_RESTRICT U,
                             const int32_t* ids, const double* vals,
                             const int64_t* tok_start, const int64_t* tok_end, ptrdiff_t T,
                             double scale, double* FCRF_RESTRICT lem, ptrdiff_t stride)
{
    const ptrdiff_t K = L->K, S = L->S, D = L->D;
    const double* FCRF_RESTRICT tail = U + D * S;
    /* Rows read as whole vectors need the padded stride (a dense [A][K] matrix with
     * K % 4 != 0, as the L-BFGS trainer passes, takes the plain loop). */
    const int vector_rows = S % 4 == 0;
    ptrdiff_t t, k;
    int64_t e, j;
    for (t = 0; t < T; t++) {
        double* FCRF_RESTRICT row = lem + t * stride;
        const int64_t e0 = tok_start[t], e1 = tok_end[t];
        int has_tail = 0;
#if FCRF_VECTORS
        if (vector_rows) {
            ptrdiff_t c0 = 0;
            while (S - c0 >= 24)
                FCRF_EMISSION_PASS(6);
            switch ((S - c0) / 4) {
            case 5: FCRF_EMISSION_PASS(5); break;
            case 4: FCRF_EMISSION_PASS(4); break;
            case 3: FCRF_EMISSION_PASS(3); break;
            case 2: FCRF_EMISSION_PASS(2); break;
            case 1: FCRF_EMISSION_PASS(1); break;
            default: break;
            }
        } else
#endif
        {
            for (k = 0; k < stride; k++)
                row[k] = 0.0;
            for (e = e0; e < e1; e++) {
                const ptrdiff_t a = ids[e];
                const double x = (vals ? vals[e] : 1.0) * scale;
                if (a >= D) {
                    has_tail = 1;
                    continue;
                }
                for (k = 0; k < K; k++)
                    row[k] += x * U[a * S + k];
            }
        }
        if (has_tail) {
            for (e = e0; e < e1; e++) {
                const ptrdiff_t a = ids[e];
                double x;
                if (a < D)
                    continue;
                x = (vals ? vals[e] : 1.0) * scale;
                for (j = L->ptr[a - D]; j < L->ptr[a - D + 1]; j++)
                    row[L->label[j]] += x * tail[j];
            }
        }
    }
}

/* max_k |x[k]| over n values (NaN if any is NaN): whether scores are in range. */
FCRF_MULTIVERSION
static double fcrf_max_abs(const double* x, ptrdiff_t n)
{
    double big = 0.0;
    ptrdiff_t k = 0;
#if FCRF_VECTORS
    typedef int64_t fcrf_v4i __attribute__((vector_size(32)));
    const fcrf_v4i sign = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    fcrf_v4d bv = {0.0, 0.0, 0.0, 0.0};
    double lanes[4];
    for (; k + 4 <= n; k += 4) {
        fcrf_v4d m;
        fcrf_v4i keep;
        memcpy(&m, x + k, sizeof m);
        m = (fcrf_v4d) ((fcrf_v4i) m & sign);
        /* a NaN replaces the maximum (m <= bv is false) and then stays (bv != bv) */
        keep = (m <= bv) | (bv != bv);
        bv = (fcrf_v4d) (((fcrf_v4i) bv & keep) | ((fcrf_v4i) m & ~keep));
    }
    memcpy(lanes, &bv, sizeof lanes);
    for (int q = 0; q < 4; q++)
        if (!(lanes[q] <= big) && big == big)
            big = lanes[q];
#endif
    for (; k < n; k++) {
        const double m = fabs(x[k]);
        if (!(m <= big) && big == big)   /* a NaN fails every comparison: keep it */
            big = m;
    }
    return big;
}

/* out = p0 + p1 over n doubles (a sequence's emission scores from its two parts,
 * always added in this order); returns max |out| (NaN if any is NaN).  The rows'
 * padding columns are zeros in both parts, so they do not change the maximum. */
FCRF_MULTIVERSION
static double fcrf_add_parts(const double* FCRF_RESTRICT p0, const double* FCRF_RESTRICT p1,
                             double* FCRF_RESTRICT out, ptrdiff_t n)
{
    ptrdiff_t k;
    for (k = 0; k < n; k++)
        out[k] = p0[k] + p1[k];
    return fcrf_max_abs(out, n);
}

/* Start loading the 64-byte lines of the n doubles at x. */
static inline void fcrf_prefetch_lines(const double* x, ptrdiff_t n)
{
#if defined(__GNUC__) || defined(__clang__)
    const uintptr_t last = (uintptr_t) (x + n - 1);
    uintptr_t line;
    for (line = (uintptr_t) x & ~(uintptr_t) 63; line <= last; line += 64)
        __builtin_prefetch((const void*) line, 0, 3);
#else
    (void) x; (void) n;
#endif
}

/* Start loading the weights the entries [e0, e1) will read and write: the dense rows
 * of U (and of Uhat, when not NULL), the tail offsets, then the tail labels and
 * weights.  On CoNLL-2000 the rows are ~20 MB visited in random order, and the
 * kernels above spend most of their time waiting for them one token at a time;
 * asking for a whole sequence's rows up front keeps many misses in flight at once.
 * The tail offsets are read in a second pass so that their misses overlap too.
 * Only a hint: nothing is written. */
static void fcrf_prefetch_rows(const fcrf_layout* L, const double* U, const double* Uhat,
                               const int32_t* ids, const int64_t* tok_start,
                               const int64_t* tok_end, ptrdiff_t T)
{
#if defined(__GNUC__) || defined(__clang__)
    const ptrdiff_t S = L->S, D = L->D;
    const double* tail = U + D * S;
    const double* tail_hat = Uhat ? Uhat + D * S : NULL;
    ptrdiff_t t;
    int64_t e;
    for (t = 0; t < T; t++) {
        for (e = tok_start[t]; e < tok_end[t]; e++) {
            const ptrdiff_t a = ids[e];
            if (a < D) {
                /* each 64-byte line the row touches, once: three for S = 24 on the
                 * 64-byte aligned weights of the SGD trainer */
                fcrf_prefetch_lines(U + a * S, S);
                if (Uhat)
                    fcrf_prefetch_lines(Uhat + a * S, S);
            } else {
                __builtin_prefetch(L->ptr + (a - D), 0, 3);
            }
        }
    }
    for (t = 0; t < T; t++) {
        for (e = tok_start[t]; e < tok_end[t]; e++) {
            const ptrdiff_t a = ids[e];
            if (a >= D) {
                const int64_t j = L->ptr[a - D];
                __builtin_prefetch(L->label + j, 0, 3);
                __builtin_prefetch(tail + j, 0, 3);
                if (tail_hat)
                    __builtin_prefetch(tail_hat + j, 0, 3);
            }
        }
    }
#else
    (void) L; (void) U; (void) Uhat; (void) ids; (void) tok_start; (void) tok_end;
    (void) T;
#endif
}

/* One token's share of an SGD step, for its entries [e0, e1):
 *     u += g x (onehot(y) - p)    and, when averaging,    uhat -= beta * (that change),
 * over the weights the layout has (a tail attribute without label y gets no onehot
 * term: that pair is not a weight).  p: the token's marginals, S values of which the
 * last S - K are 0 (so the padding weights stay 0). */
FCRF_MULTIVERSION
static void fcrf_update_token(const fcrf_layout* L, double* FCRF_RESTRICT U,
                              double* FCRF_RESTRICT Uhat, const int32_t* ids,
                              const double* vals, int64_t e0, int64_t e1,
                              const double* FCRF_RESTRICT p, int64_t y, double gain,
                              double beta, int averaging)
{
    const ptrdiff_t S = L->S, D = L->D;
    const ptrdiff_t n_dense = D * S;
    ptrdiff_t k;
    int64_t e, j;
    for (e = e0; e < e1; e++) {
        const ptrdiff_t a = ids[e];
        double gx, bx;
        gx = gain * (vals ? vals[e] : 1.0);
        bx = beta * gx;
        if (a < D) {
            double* FCRF_RESTRICT u = U + a * S;
            double* FCRF_RESTRICT h = Uhat + a * S;
#if FCRF_VECTORS
            for (k = 0; k < S; k += 4) {
                const fcrf_v4d pv = *(const fcrf_v4d*) (p + k);
                *(fcrf_v4d*) (u + k) -= gx * pv;
                if (averaging)
                    *(fcrf_v4d*) (h + k) += bx * pv;
            }
#else
            for (k = 0; k < S; k++) {
                u[k] -= gx * p[k];
                if (averaging)
                    h[k] += bx * p[k];
            }
#endif
            u[y] += gx;
            if (averaging)
                h[y] -= bx;
        } else {
            for (j = L->ptr[a - D]; j < L->ptr[a - D + 1]; j++) {
                const int32_t lab = L->label[j];
                const double d = gx * ((lab == y) - p[lab]);
                U[n_dense + j] += d;
                if (averaging)
                    Uhat[n_dense + j] -= beta * d;
            }
        }
    }
}

#endif
