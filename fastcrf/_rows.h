/* The per-token state-weight operations of the SGD trainer (fastcrf/_sparse.pyx,
 * sgd_epoch), in C so that they are built for x86-64-v3 as well (see _kernels.h).
 *
 * State weights follow a two-part layout (fastcrf/_layout.py):
 *   - attributes a < D ("dense") own a row of K weights, U[a * K + k];
 *   - attributes a >= D ("tail") own only the labels listed in
 *     label[ptr[a - D] .. ptr[a - D + 1]), with their weights at U[D * K + j].
 * The tail holds the attributes that are too rare to earn a weight for every label
 * (the (attribute, label) pairs never seen in training stay exactly zero there).
 *
 * An SGD epoch is bound by the latency of the weight rows it reads and writes, which
 * mostly miss the caches: rows are prefetched one token ahead.
 */
#ifndef FASTCRF_ROWS_H
#define FASTCRF_ROWS_H

#include <math.h>
#include <stdint.h>
#include "_kernels.h"

#if defined(__GNUC__) || defined(__clang__)
#  define FCRF_PREFETCH_W(p) __builtin_prefetch((const void *)(p), 1, 3)
#  define FCRF_PREFETCH_R(p) __builtin_prefetch((const void *)(p), 0, 3)
#else
#  define FCRF_PREFETCH_W(p) ((void)(p))
#  define FCRF_PREFETCH_R(p) ((void)(p))
#endif

static int fcrf_pf_dist = 1;
static int fcrf_pf_upd = 1;

typedef struct {
    ptrdiff_t K;                 /* labels */
    ptrdiff_t D;                 /* dense attributes: ids [0, D) */
    const int64_t* ptr;          /* [A - D + 1] tail offsets (NULL when A == D) */
    const int32_t* label;        /* [n_tail] label of each tail weight */
} fcrf_layout;

/* Prefetch the weights of the entries [e0, e1) in U (and in Uhat when not NULL)
 * whose attribute is in part ``part`` of ``n_parts`` (a % n_parts == part). */
static inline void fcrf_prefetch_entries(const fcrf_layout* L, const double* U,
                                         const double* Uhat, const int32_t* ids,
                                         int64_t e0, int64_t e1, ptrdiff_t part,
                                         ptrdiff_t n_parts)
{
    const ptrdiff_t K = L->K, D = L->D;
    int64_t e;
    ptrdiff_t off, k;
    for (e = e0; e < e1; e++) {
        const ptrdiff_t a = ids[e];
        if (n_parts > 1 && a % n_parts != part)
            continue;
        if (a < D) {
            off = a * K;
            for (k = 0; k < K; k += 8) {
                FCRF_PREFETCH_W(U + off + k);
                if (Uhat) FCRF_PREFETCH_W(Uhat + off + k);
            }
            FCRF_PREFETCH_W(U + off + K - 1);
            if (Uhat) FCRF_PREFETCH_W(Uhat + off + K - 1);
        } else {
            FCRF_PREFETCH_R(L->ptr + (a - D));
        }
    }
}

/* lem[t][k] = scale * sum over the entries e of token t of x_e * w(ids[e], k), for the
 * T tokens whose entry offsets are tok_off[0..T]; x_e = vals[e], or 1.0 when vals is
 * NULL.  Returns the largest |lem| (NaN if any is NaN). */
FCRF_MULTIVERSION
static double fcrf_emissions(const fcrf_layout* L, const double* FCRF_RESTRICT U,
                             const int32_t* ids, const double* vals,
                             const int64_t* tok_off, ptrdiff_t T, double scale,
                             double* FCRF_RESTRICT lem)
{
    const ptrdiff_t K = L->K, D = L->D;
    const double* FCRF_RESTRICT tail = U + D * K;
    double big = 0.0;
    ptrdiff_t t, k;
    int64_t e, j;
    if (fcrf_pf_dist > 0)
        for (t = 0; t < T && t < fcrf_pf_dist; t++)
            fcrf_prefetch_entries(L, U, NULL, ids, tok_off[t], tok_off[t + 1], 0, 1);
    for (t = 0; t < T; t++) {
        double* FCRF_RESTRICT row = lem + t * K;
        if (fcrf_pf_dist > 0 && t + fcrf_pf_dist < T)
            fcrf_prefetch_entries(L, U, NULL, ids, tok_off[t + fcrf_pf_dist], tok_off[t + fcrf_pf_dist + 1], 0, 1);
        for (k = 0; k < K; k++)
            row[k] = 0.0;
        for (e = tok_off[t]; e < tok_off[t + 1]; e++) {
            const ptrdiff_t a = ids[e];
            const double x = (vals ? vals[e] : 1.0) * scale;
            if (a < D) {
                const double* FCRF_RESTRICT w = U + a * K;
                for (k = 0; k < K; k++)
                    row[k] += x * w[k];
            } else {
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
 * term: that pair is not a weight).  p: the token's K marginals. */
FCRF_MULTIVERSION
static void fcrf_update_token(const fcrf_layout* L, double* FCRF_RESTRICT U,
                              double* FCRF_RESTRICT Uhat, const int32_t* ids,
                              const double* vals, int64_t e0, int64_t e1,
                              const double* FCRF_RESTRICT p, int64_t y, double gain,
                              double beta, int averaging, ptrdiff_t part, ptrdiff_t n_parts)
{
    const ptrdiff_t K = L->K, D = L->D;
    const ptrdiff_t n_dense = D * K;
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
            double* FCRF_RESTRICT u = U + a * K;
            if (averaging) {
                double* FCRF_RESTRICT h = Uhat + a * K;
                for (k = 0; k < K; k++) {
                    u[k] -= gx * p[k];
                    h[k] += bx * p[k];
                }
                h[y] -= bx;
            } else {
                for (k = 0; k < K; k++)
                    u[k] -= gx * p[k];
            }
            u[y] += gx;
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
