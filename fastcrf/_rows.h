/* The per-token state-weight operations of the SGD trainer (fastcrf/_sparse.pyx,
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

/* lem[t][k] (k < K, row stride K) = scale * sum over the entries e of token t of
 * x_e * w(ids[e], k), for the T tokens whose entry offsets are tok_off[0..T];
 * x_e = vals[e], or 1.0 when vals is NULL.  Returns the largest |lem| (NaN if any is
 * NaN). */
FCRF_MULTIVERSION
static double fcrf_emissions(const fcrf_layout* L, const double* FCRF_RESTRICT U,
                             const int32_t* ids, const double* vals,
                             const int64_t* tok_off, ptrdiff_t T, double scale,
                             double* FCRF_RESTRICT lem)
{
    const ptrdiff_t K = L->K, S = L->S, D = L->D;
    const double* FCRF_RESTRICT tail = U + D * S;
    /* Rows read as whole vectors need the padded stride (a dense [A][K] matrix with
     * K % 4 != 0, as the L-BFGS trainer passes, takes the plain loop). */
    const int vector_rows = S % 4 == 0;
    double big = 0.0;
    ptrdiff_t t, k;
    int64_t e, j;
    for (t = 0; t < T; t++) {
        double* FCRF_RESTRICT row = lem + t * K;
        const int64_t e0 = tok_off[t], e1 = tok_off[t + 1];
        int has_tail = 0;
#if FCRF_VECTORS
        if (vector_rows) {
            ptrdiff_t kb;
            for (kb = 0; kb < S; kb += 8) {
                const int two = kb + 8 <= S;
                fcrf_v4d a0 = {0.0, 0.0, 0.0, 0.0}, a1 = a0;
                double out[8];
                for (e = e0; e < e1; e++) {
                    const ptrdiff_t a = ids[e];
                    const double* w;
                    double x;
                    if (a >= D) {
                        has_tail = 1;
                        continue;
                    }
                    x = (vals ? vals[e] : 1.0) * scale;
                    w = U + a * S + kb;
                    a0 += x * *(const fcrf_v4d*) w;
                    if (two)
                        a1 += x * *(const fcrf_v4d*) (w + 4);
                }
                memcpy(out, &a0, sizeof a0);
                memcpy(out + 4, &a1, sizeof a1);
                memcpy(row + kb, out, (size_t) (K - kb < 8 ? K - kb : 8) * sizeof(double));
            }
        } else
#endif
        {
            for (k = 0; k < K; k++)
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
        for (k = 0; k < K; k++) {
            const double m = fabs(row[k]);
            if (!(m <= big))   /* NaN fails every comparison: keep it */
                big = m;
        }
    }
    return big;
}

/* One token's share of an SGD step, for the entries [e0, e1) whose attribute falls in
 * this thread's part (a % n_parts == part):
 *     u += g x (onehot(y) - p)    and, when averaging,    uhat -= beta * (that change),
 * over the weights the layout has (a tail attribute without label y gets no onehot
 * term: that pair is not a weight).  p: the token's marginals, S values of which the
 * last S - K are 0 (so the padding weights stay 0). */
FCRF_MULTIVERSION
static void fcrf_update_token(const fcrf_layout* L, double* FCRF_RESTRICT U,
                              double* FCRF_RESTRICT Uhat, const int32_t* ids,
                              const double* vals, int64_t e0, int64_t e1,
                              const double* FCRF_RESTRICT p, int64_t y, double gain,
                              double beta, int averaging, ptrdiff_t part, ptrdiff_t n_parts)
{
    const ptrdiff_t S = L->S, D = L->D;
    const ptrdiff_t n_dense = D * S;
    ptrdiff_t k;
    int64_t e, j;
    for (e = e0; e < e1; e++) {
        const ptrdiff_t a = ids[e];
        double gx, bx;
        if (n_parts > 1 && a % n_parts != part)
            continue;
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
