/* The AdaGrad step of the SGD engine (fastcrf/_kernels/_sgd_engine.pyx, sgd_epoch with
 * adagrad), applied lazily to the weights a mini-batch touches.
 *
 * Per weight j: G[j] (the sum of the squares of its mini-batch gradients so far) and
 * s_j = 1 / (delta + sqrt(G[j])) (0 while G[j] = 0: a weight that never had a gradient
 * does not move, so the weights of a warm start keep their values until they are
 * touched).  delta (Duchi, Hazan and Singer 2011's delta I) keeps a gradient that is 0
 * up to rounding (~1e-17: at w = 0 the marginals are uniform, and counts minus 1/K
 * cancel) from taking a full step eta sign(g).
 * With g_j the summed log-likelihood gradient of the step's n_b sequences, a step is
 *     G[j] += g_j^2;   w_j <- exp(-eta lambda n_b s_j) w_j + eta g_j s_j
 * and, when the step averages, hat[j] += w_j (hat: the running sum of the iterates;
 * the average is hat / (steps averaged)).  The L2 decay is preconditioned like the
 * gradient, so the fixed point is the objective's optimum.
 *
 * A weight not touched by a step only decays, by r_j = exp(-c s_j), c = eta lambda
 * n_b, with s_j fixed while it is untouched.  Over m skipped steps of equal n_b:
 *     w_j <- r_j^m w_j,   hat[j] += w_j (r_j + ... + r_j^m) = w_j r_j (1 - r_j^m) / (1 - r_j),
 * with expm1 for 1 - r_j^m and 1 - r_j (r_j ~ 1 for rare weights).  So the weights
 * of an attribute (touched together: one stamp per attribute, the step up to which
 * its weights are current) are brought up to date exactly when next read; the
 * engine keeps n_b and the averaging flag equal within every run of skipped steps by
 * bringing every row up to date (fcrf_ada_sync) when either changes.
 */
#ifndef FASTCRF_ADAGRAD_H
#define FASTCRF_ADAGRAD_H

#include <math.h>
#include <stdint.h>
#include "_rows.h"

#define FCRF_ADA_DELTA 1e-6

/* Weight j over m skipped steps of decay exp(-c s_j); with averaging, hat += the m
 * skipped iterates. */
static inline void fcrf_ada_skip(double* FCRF_RESTRICT w, double* FCRF_RESTRICT hat,
                                 double G, double m, double c, int averaging)
{
    double cs, e1, em;
    if (!(G > 0.0)) {
        if (averaging)
            *hat += m * *w;
        return;
    }
    cs = c / (FCRF_ADA_DELTA + sqrt(G));
    if (!averaging) {
        *w *= exp(-cs * m);
        return;
    }
    e1 = expm1(-cs);
    em = expm1(-cs * m);
    /* r (1 - r^m) / (1 - r), which is m when c s underflows to r = 1 */
    *hat += e1 != 0.0 ? *w * ((1.0 + e1) * (em / e1)) : m * *w;
    *w *= 1.0 + em;
}

/* One step of weight j with gradient g (see the top of the file). */
static inline void fcrf_ada_step1(double* FCRF_RESTRICT w, double* FCRF_RESTRICT hat,
                                  double* FCRF_RESTRICT G, double g, double eta, double c,
                                  int averaging)
{
    const double G1 = *G + g * g;
    *G = G1;
    if (G1 > 0.0) {
        const double s = 1.0 / (FCRF_ADA_DELTA + sqrt(G1));
        *w = exp(-c * s) * *w + eta * g * s;
    }
    if (averaging)
        *hat += *w;
}

/* The weights [lo, hi) of attribute a in the layout: a dense row's K (its S - K
 * padding weights are 0 and never get a gradient), or a tail attribute's own. */
static inline void fcrf_ada_row(const fcrf_layout* L, ptrdiff_t a, int64_t* lo, int64_t* hi)
{
    if (a < L->D) {
        *lo = a * L->S;
        *hi = *lo + L->K;
    } else {
        *lo = L->D * L->S + L->ptr[a - L->D];
        *hi = L->D * L->S + L->ptr[a - L->D + 1];
    }
}

/* Bring attribute a's weights from step stamp[a] up to step `step` (c and averaging:
 * those of the skipped steps). */
static inline void fcrf_ada_catch_up_row(const fcrf_layout* L, double* FCRF_RESTRICT U,
                                         double* FCRF_RESTRICT Uhat,
                                         const double* FCRF_RESTRICT G,
                                         int64_t* FCRF_RESTRICT stamp, ptrdiff_t a,
                                         int64_t step, double c, int averaging)
{
    const int64_t m = step - stamp[a];
    int64_t j, lo, hi;
    if (m <= 0)
        return;
    stamp[a] = step;
    fcrf_ada_row(L, a, &lo, &hi);
    for (j = lo; j < hi; j++)
        fcrf_ada_skip(U + j, Uhat + j, G[j], (double) m, c, averaging);
}

/* Bring the attributes of one token's entries [e0, e1) up to step `step`, before the
 * emission scores read them. */
static void fcrf_ada_catch_up_token(const fcrf_layout* L, double* U, double* Uhat,
                                    const double* G, int64_t* stamp, const int32_t* ids,
                                    int64_t e0, int64_t e1, int64_t step, double c,
                                    int averaging)
{
    int64_t e;
    for (e = e0; e < e1; e++)
        fcrf_ada_catch_up_row(L, U, Uhat, G, stamp, ids[e], step, c, averaging);
}

/* Bring every attribute [0, n_attributes) up to step `step`: O(n_weights), when the
 * step's n_b or averaging flag is about to change, and at the end of an epoch. */
static void fcrf_ada_sync(const fcrf_layout* L, ptrdiff_t n_attributes, double* U,
                          double* Uhat, const double* G, int64_t* stamp, int64_t step,
                          double c, int averaging)
{
    ptrdiff_t a;
    for (a = 0; a < n_attributes; a++)
        fcrf_ada_catch_up_row(L, U, Uhat, G, stamp, a, step, c, averaging);
}

/* The step of the attributes of one token's entries [e0, e1), whose gradients of the
 * whole mini-batch are summed in gU (zeroed here, for the next step): each attribute
 * once (its stamp goes from step - 1 to step). */
static void fcrf_ada_step_token(const fcrf_layout* L, double* FCRF_RESTRICT U,
                                double* FCRF_RESTRICT Uhat, double* FCRF_RESTRICT G,
                                double* FCRF_RESTRICT gU, int64_t* FCRF_RESTRICT stamp,
                                const int32_t* ids, int64_t e0, int64_t e1, int64_t step,
                                double eta, double c, int averaging)
{
    int64_t e, j, lo, hi;
    for (e = e0; e < e1; e++) {
        const ptrdiff_t a = ids[e];
        if (stamp[a] == step)
            continue;
        stamp[a] = step;
        fcrf_ada_row(L, a, &lo, &hi);
        for (j = lo; j < hi; j++) {
            fcrf_ada_step1(U + j, Uhat + j, G + j, gU[j], eta, c, averaging);
            gU[j] = 0.0;
        }
        if (a < L->D)   /* the padding's gradient: zeros, perhaps negative ones */
            for (j = hi; j < lo + L->S; j++)
                gU[j] = 0.0;
    }
}

/* The step of n weights touched every step (the chain scores), gradient g (zeroed). */
static void fcrf_ada_step_run(double* FCRF_RESTRICT x, double* FCRF_RESTRICT hat,
                              double* FCRF_RESTRICT G, double* FCRF_RESTRICT g, ptrdiff_t n,
                              double eta, double c, int averaging)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        fcrf_ada_step1(x + i, hat + i, G + i, g[i], eta, c, averaging);
        g[i] = 0.0;
    }
}

#endif
