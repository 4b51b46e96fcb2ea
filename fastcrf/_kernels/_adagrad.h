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
 *
 * The catch-up needs no exp: each step of a weight also stores E[j] = r_j - 1 =
 * expm1(-c s_j) for the full batch's c, and r_j^m - 1 is computed from it by binary
 * powering in that minus-one form ((1 + a)(1 + b) - 1 = a + b + ab, which keeps the
 * precision of small a and b): ~2 log2(m) multiply-adds per weight instead of a
 * square root, a division and one or two exp.  (On a loaded machine the epoch times
 * of the two versions did not separate: ~5x the 'calibrated' step's on CoNLL-2000,
 * K = 22, either way.)  Only the catch-up after a short mini-batch (a different c,
 * once per epoch) goes back to G.
 */
#ifndef FASTCRF_ADAGRAD_H
#define FASTCRF_ADAGRAD_H

#include <math.h>
#include <stdint.h>
#include "_rows.h"

#define FCRF_ADA_DELTA 1e-6

/* exp and expm1 run over spans of up to FCRF_ADA_CHUNK weights through
 * fcrf_exp_shifted (_kernels.h), the polynomial the compiler vectorises, rather than
 * libm's exp per weight. */
#define FCRF_ADA_CHUNK 32

/* expm1(x) for |x| <= 0.35, by its Taylor polynomial (degree 13: truncation below
 * 1e-17 relative); beyond, the caller uses exp(x) - 1, which does not cancel there. */
static inline double fcrf_ada_expm1_small(double x)
{
    return fcrf_expm1_ratio(x) * x;
}

/* out = expm1(x) over n (<= FCRF_ADA_CHUNK) values x <= 0. */
FCRF_MULTIVERSION
static void fcrf_ada_expm1_span(const double* FCRF_RESTRICT x, double* FCRF_RESTRICT out,
                                ptrdiff_t n)
{
    double e[FCRF_ADA_CHUNK];
    int big = 0;
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        big |= x[j] <= -0.35;
        out[j] = fcrf_ada_expm1_small(x[j]);
    }
    if (!big)
        return;
    fcrf_exp_shifted(x, 0.0, e, n);
    for (j = 0; j < n; j++)
        out[j] = x[j] > -0.35 ? out[j] : e[j] - 1.0;
}

/* out = (1 + E)^m - 1 over n (<= FCRF_ADA_CHUNK) values E, m >= 1: binary powering in
 * the minus-one form (see the top of the file). */
static inline void fcrf_ada_powm1(const double* FCRF_RESTRICT E, double* FCRF_RESTRICT out,
                                  ptrdiff_t n, int64_t m)
{
    double p[FCRF_ADA_CHUNK];
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        out[j] = 0.0;
        p[j] = E[j];
    }
    for (;;) {
        if (m & 1)
            for (j = 0; j < n; j++)
                out[j] = out[j] + p[j] + out[j] * p[j];
        m >>= 1;
        if (!m)
            break;
        for (j = 0; j < n; j++)
            p[j] = p[j] * (2.0 + p[j]);
    }
}

/* fcrf_ada_skip_span from E (the full batch's expm1(-c s_j)) instead of G. */
FCRF_MULTIVERSION
static void fcrf_ada_skip_span_e(double* FCRF_RESTRICT w, double* FCRF_RESTRICT hat,
                                 const double* FCRF_RESTRICT E, ptrdiff_t n, int64_t m,
                                 int averaging)
{
    double em[FCRF_ADA_CHUNK];
    ptrdiff_t j;
    fcrf_ada_powm1(E, em, n, m);
    if (averaging)
        for (j = 0; j < n; j++)
            hat[j] += E[j] != 0.0 ? w[j] * ((1.0 + E[j]) * (em[j] / E[j])) : (double) m * w[j];
    for (j = 0; j < n; j++)
        w[j] *= 1.0 + em[j];
}

/* s_j of each of the n weights of G */
static inline void fcrf_ada_scales(const double* FCRF_RESTRICT G, double* FCRF_RESTRICT s,
                                   ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; j++)
        s[j] = G[j] > 0.0 ? 1.0 / (FCRF_ADA_DELTA + sqrt(G[j])) : 0.0;
}

/* The n (<= FCRF_ADA_CHUNK) weights w over m skipped steps of decay exp(-c s_j); with
 * averaging, hat += the m skipped iterates. */
FCRF_MULTIVERSION
static void fcrf_ada_skip_span(double* FCRF_RESTRICT w, double* FCRF_RESTRICT hat,
                               const double* FCRF_RESTRICT G, ptrdiff_t n, double m,
                               double c, int averaging)
{
    double a1[FCRF_ADA_CHUNK], am[FCRF_ADA_CHUNK], e[FCRF_ADA_CHUNK], em[FCRF_ADA_CHUNK];
    ptrdiff_t j;
    fcrf_ada_scales(G, a1, n);
    for (j = 0; j < n; j++) {
        a1[j] *= -c;
        am[j] = a1[j] * m;
    }
    fcrf_exp_shifted(am, 0.0, em, n);
    if (!averaging) {
        for (j = 0; j < n; j++)
            w[j] *= em[j];
        return;
    }
    fcrf_exp_shifted(a1, 0.0, e, n);
    for (j = 0; j < n; j++) {
        const double e1 = a1[j] > -0.35 ? fcrf_ada_expm1_small(a1[j]) : e[j] - 1.0;
        const double emm = am[j] > -0.35 ? fcrf_ada_expm1_small(am[j]) : em[j] - 1.0;
        /* r (1 - r^m) / (1 - r), which is m when c s_j underflows to r = 1 */
        hat[j] += e1 != 0.0 ? w[j] * ((1.0 + e1) * (emm / e1)) : m * w[j];
        w[j] *= 1.0 + emm;
    }
}

/* One step of the n (<= FCRF_ADA_CHUNK) weights w with gradients g (zeroed): see the
 * top of the file.  c: this step's eta lambda n_b; E (when not NULL) receives
 * expm1(-c_full s_j) for the next catch-ups, which is also this step's decay minus 1
 * when c == c_full (every mini-batch but an epoch's short last one). */
FCRF_MULTIVERSION
static void fcrf_ada_step_span(double* FCRF_RESTRICT w, double* FCRF_RESTRICT hat,
                               double* FCRF_RESTRICT G, double* FCRF_RESTRICT g,
                               double* FCRF_RESTRICT E, ptrdiff_t n, double eta, double c,
                               double c_full, int averaging)
{
    double s[FCRF_ADA_CHUNK], x[FCRF_ADA_CHUNK], d[FCRF_ADA_CHUNK];
    ptrdiff_t j;
    for (j = 0; j < n; j++)
        G[j] += g[j] * g[j];
    fcrf_ada_scales(G, s, n);
    for (j = 0; j < n; j++)
        x[j] = -c_full * s[j];
    fcrf_ada_expm1_span(x, d, n);
    if (E)
        for (j = 0; j < n; j++)
            E[j] = d[j];
    if (c == c_full) {
        for (j = 0; j < n; j++)
            d[j] += 1.0;
    } else {
        for (j = 0; j < n; j++)
            x[j] = -c * s[j];
        fcrf_exp_shifted(x, 0.0, d, n);
    }
    for (j = 0; j < n; j++) {
        w[j] = d[j] * w[j] + eta * g[j] * s[j];
        g[j] = 0.0;
    }
    if (averaging)
        for (j = 0; j < n; j++)
            hat[j] += w[j];
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
 * those of the skipped steps): from E when the skipped steps were full mini-batches
 * (E not NULL), else from G. */
static inline void fcrf_ada_catch_up_row(const fcrf_layout* L, double* FCRF_RESTRICT U,
                                         double* FCRF_RESTRICT Uhat,
                                         const double* FCRF_RESTRICT G,
                                         const double* FCRF_RESTRICT E,
                                         int64_t* FCRF_RESTRICT stamp, ptrdiff_t a,
                                         int64_t step, double c, int averaging)
{
    const int64_t m = step - stamp[a];
    int64_t j, lo, hi, n;
    if (m <= 0)
        return;
    stamp[a] = step;
    fcrf_ada_row(L, a, &lo, &hi);
    for (j = lo; j < hi; j += FCRF_ADA_CHUNK) {
        n = hi - j < FCRF_ADA_CHUNK ? hi - j : FCRF_ADA_CHUNK;
        if (E)
            fcrf_ada_skip_span_e(U + j, Uhat + j, E + j, n, m, averaging);
        else
            fcrf_ada_skip_span(U + j, Uhat + j, G + j, n, (double) m, c, averaging);
    }
}

/* Bring the attributes of one token's entries [e0, e1) up to step `step`, before the
 * emission scores read them. */
static void fcrf_ada_catch_up_token(const fcrf_layout* L, double* U, double* Uhat,
                                    const double* G, const double* E, int64_t* stamp,
                                    const int32_t* ids, int64_t e0, int64_t e1,
                                    int64_t step, double c, int averaging)
{
    int64_t e;
    for (e = e0; e < e1; e++)
        fcrf_ada_catch_up_row(L, U, Uhat, G, E, stamp, ids[e], step, c, averaging);
}

/* Bring every attribute [0, n_attributes) up to step `step`: O(n_weights), when the
 * step's n_b or averaging flag is about to change, and at the end of an epoch. */
static void fcrf_ada_sync(const fcrf_layout* L, ptrdiff_t n_attributes, double* U,
                          double* Uhat, const double* G, const double* E, int64_t* stamp,
                          int64_t step, double c, int averaging)
{
    ptrdiff_t a;
    for (a = 0; a < n_attributes; a++)
        fcrf_ada_catch_up_row(L, U, Uhat, G, E, stamp, a, step, c, averaging);
}

/* The step of the attributes of one token's entries [e0, e1), whose gradients of the
 * whole mini-batch are summed in gU (zeroed here, for the next step): each attribute
 * once (its stamp goes from step - 1 to step). */
static void fcrf_ada_step_token(const fcrf_layout* L, double* FCRF_RESTRICT U,
                                double* FCRF_RESTRICT Uhat, double* FCRF_RESTRICT G,
                                double* FCRF_RESTRICT gU, double* FCRF_RESTRICT E,
                                int64_t* FCRF_RESTRICT stamp, const int32_t* ids,
                                int64_t e0, int64_t e1, int64_t step, double eta, double c,
                                double c_full, int averaging)
{
    int64_t e, j, lo, hi;
    for (e = e0; e < e1; e++) {
        const ptrdiff_t a = ids[e];
        if (stamp[a] == step)
            continue;
        stamp[a] = step;
        fcrf_ada_row(L, a, &lo, &hi);
        for (j = lo; j < hi; j += FCRF_ADA_CHUNK)
            fcrf_ada_step_span(U + j, Uhat + j, G + j, gU + j, E + j,
                               hi - j < FCRF_ADA_CHUNK ? hi - j : FCRF_ADA_CHUNK, eta, c,
                               c_full, averaging);
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
    for (i = 0; i < n; i += FCRF_ADA_CHUNK)
        fcrf_ada_step_span(x + i, hat + i, G + i, g + i, NULL,
                           n - i < FCRF_ADA_CHUNK ? n - i : FCRF_ADA_CHUNK, eta, c, c,
                           averaging);
}

/* ------------------------------------------------------------------------------- *
 * The per-row variant (learning_rate='adagrad_row'): one accumulator per attribute  *
 * row, shared by the row's weights.                                                 *
 * ------------------------------------------------------------------------------- *
 *
 * For attribute a, with g_ak the step's gradient of its weight for label k:
 *     GA[a] += (sum_k g_ak^2) / K;   s_a = 1 / (delta + sqrt(GA[a]))  (0 while GA[a] = 0)
 *     w_ak <- exp(-eta lambda n_b s_a) w_ak + eta s_a g_ak
 * (the sum over the row's stored weights: K for a dense row, a tail attribute's own
 * labels, whose missing pairs have no weight and so no gradient; dividing by K in
 * both keeps the mean over the row's K label weights).  One square root, division
 * and exp per row and step, then multiply-adds over the row's weights, where the
 * per-weight rule above pays a square root, a division and an exp per weight.
 *
 * A stale row's catch-up is the closed form of the per-weight rule with one
 * r_a = exp(-c s_a) for the whole row, from EA[a] = r_a - 1 of the full batch's c,
 * stored by the row's last step, by binary powering as above (no libm call); only the
 * catch-up after a short mini-batch goes back to GA.  With two libm expm1 per row and
 * catch-up and libm's exp in the step instead, an epoch took 1.7x the 'calibrated'
 * step's on CoNLL-2000 (23.1 s against 13.6 s, one round); the step's exp is now the
 * polynomial fcrf_ada_expm1_small where |x| <= 0.35 (all but rows with a tiny GA).
 */

static inline double fcrf_adarow_scale(double G)
{
    return G > 0.0 ? 1.0 / (FCRF_ADA_DELTA + sqrt(G)) : 0.0;
}

/* (1 + E)^m - 1, m >= 1: fcrf_ada_powm1 for one value */
static inline double fcrf_adarow_powm1(double E, int64_t m)
{
    double out = 0.0;
    for (;;) {
        if (m & 1)
            out = out + E + out * E;
        m >>= 1;
        if (!m)
            return out;
        E = E * (2.0 + E);
    }
}

/* Bring attribute a's weights from step stamp[a] up to step `step` (c and averaging:
 * those of the skipped steps, which all had the same n_b and averaging flag): from EA
 * when the skipped steps were full mini-batches (EA not NULL), else from GA. */
static inline void fcrf_adarow_catch_up_row(const fcrf_layout* L, double* FCRF_RESTRICT U,
                                            double* FCRF_RESTRICT Uhat,
                                            const double* FCRF_RESTRICT GA,
                                            const double* FCRF_RESTRICT EA,
                                            int64_t* FCRF_RESTRICT stamp, ptrdiff_t a,
                                            int64_t step, double c, int averaging)
{
    const int64_t m = step - stamp[a];
    int64_t j, lo, hi;
    double e1 = 0.0, em, r;
    if (m <= 0)
        return;
    stamp[a] = step;
    fcrf_ada_row(L, a, &lo, &hi);
    if (EA) {
        e1 = EA[a];
        em = fcrf_adarow_powm1(e1, m);
    } else {
        const double x = -c * fcrf_adarow_scale(GA[a]);
        em = expm1((double) m * x);
        if (averaging)
            e1 = expm1(x);
    }
    if (averaging) {
        /* r (1 - r^m) / (1 - r), which is m when c s_a underflows to r = 1 */
        const double f = e1 != 0.0 ? (1.0 + e1) * (em / e1) : (double) m;
        for (j = lo; j < hi; j++)
            Uhat[j] += U[j] * f;
    }
    r = 1.0 + em;
    for (j = lo; j < hi; j++)
        U[j] *= r;
}

/* The rows of one token are brought up to date and stepped FCRF_ADAROW_BATCH at a
 * time: first each row's scalars (the catch-up factors from EA by binary powering, or
 * the step's square root, division and expm1 polynomial) for the whole batch, then
 * the multiply-adds over each row's weights.  One row's scalars form a chain of ~20
 * dependent operations (~100 cycles), and the per-token loop of earlier versions
 * waited on it row after row: 40% of a CoNLL-2000 epoch.  Batched, the chains of the
 * ~20 rows of a token overlap.  Each row's operations are those of the one-row
 * functions above, in the same order. */
#define FCRF_ADAROW_BATCH 32

/* Multiply the n weights w by r and, with averaging, first add f times them to hat. */
static inline void fcrf_adarow_catch_up_span(double* FCRF_RESTRICT w, double* FCRF_RESTRICT hat,
                                      ptrdiff_t n, double r, double f, int averaging)
{
    ptrdiff_t j;
    if (averaging)
        for (j = 0; j < n; j++)
            hat[j] += w[j] * f;
    for (j = 0; j < n; j++)
        w[j] *= r;
}

/* em[i] = (1 + p[i])^ms[i] - 1 (em zeroed, p[i] = E, ms[i] >= 1; p and ms are
 * consumed) for n rows at once: fcrf_adarow_powm1's steps, the rows' bits in lockstep
 * and selected without a branch. */
static inline void fcrf_adarow_powm1_lanes(double* FCRF_RESTRICT em, double* FCRF_RESTRICT p,
                                    int64_t* FCRF_RESTRICT ms, ptrdiff_t n)
{
    ptrdiff_t i;
    for (;;) {
        int64_t left = 0;
        for (i = 0; i < n; i++) {
            const double u = em[i] + p[i] + em[i] * p[i];
            em[i] = ms[i] & 1 ? u : em[i];
            ms[i] >>= 1;
            left |= ms[i];
        }
        if (!left)
            return;
        for (i = 0; i < n; i++)
            p[i] = p[i] * (2.0 + p[i]);
    }
}

/* fcrf_ada_catch_up_token for rows */
FCRF_MULTIVERSION
static void fcrf_adarow_catch_up_token(const fcrf_layout* L, double* U, double* Uhat,
                                       const double* GA, const double* EA, int64_t* stamp,
                                       const int32_t* ids, int64_t e0, int64_t e1,
                                       int64_t step, double c, int averaging)
{
    ptrdiff_t rows[FCRF_ADAROW_BATCH];
    int64_t ms[FCRF_ADAROW_BATCH];
    double e1v[FCRF_ADAROW_BATCH], em[FCRF_ADAROW_BATCH], p[FCRF_ADAROW_BATCH];
    double mf[FCRF_ADAROW_BATCH];
    int64_t e = e0, lo, hi;
    ptrdiff_t n, i;
    while (e < e1) {
        /* the stale rows, each once (a row repeated in the token is current once
         * stamped) */
        for (n = 0; e < e1 && n < FCRF_ADAROW_BATCH; e++) {
            /* without a branch: whether a row is stale is a coin toss to the
             * predictor */
            const ptrdiff_t a = ids[e];
            const int64_t m = step - stamp[a];
            stamp[a] = m > 0 ? step : stamp[a];
            rows[n] = a;
            ms[n] = m;
            mf[n] = (double) m;
            n += m > 0;
        }
        if (!n)
            break;
        if (EA) {
            /* fcrf_adarow_powm1 for every row at once: the rows' bits in lockstep */
            for (i = 0; i < n; i++) {
                e1v[i] = EA[rows[i]];
                p[i] = e1v[i];
                em[i] = 0.0;
            }
            fcrf_adarow_powm1_lanes(em, p, ms, n);
        } else {
            for (i = 0; i < n; i++) {
                const double x = -c * fcrf_adarow_scale(GA[rows[i]]);
                em[i] = expm1(mf[i] * x);
                e1v[i] = averaging ? expm1(x) : 0.0;
            }
        }
        for (i = 0; i < n; i++) {
            /* r (1 - r^m) / (1 - r), which is m when c s_a underflows to r = 1 */
            double f = 0.0;
            if (averaging)
                f = e1v[i] != 0.0 ? (1.0 + e1v[i]) * (em[i] / e1v[i]) : mf[i];
            fcrf_ada_row(L, rows[i], &lo, &hi);
            fcrf_adarow_catch_up_span(U + lo, Uhat + lo, hi - lo, 1.0 + em[i], f, averaging);
        }
    }
}

/* fcrf_ada_sync for rows */
static void fcrf_adarow_sync(const fcrf_layout* L, ptrdiff_t n_attributes, double* U,
                             double* Uhat, const double* GA, const double* EA,
                             int64_t* stamp, int64_t step, double c, int averaging)
{
    ptrdiff_t a;
    for (a = 0; a < n_attributes; a++)
        fcrf_adarow_catch_up_row(L, U, Uhat, GA, EA, stamp, a, step, c, averaging);
}

/* One step of the n weights w of a row with gradients g (zeroed), decay d and gain es. */
static inline void fcrf_adarow_step_span(double* FCRF_RESTRICT w, double* FCRF_RESTRICT hat,
                                  double* FCRF_RESTRICT g, ptrdiff_t n, double d, double es,
                                  int averaging)
{
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        w[j] = d * w[j] + es * g[j];
        g[j] = 0.0;
    }
    if (averaging)
        for (j = 0; j < n; j++)
            hat[j] += w[j];
}

/* sum_j g[j]^2 over a row's n gradients; a dense row's are summed over its whole
 * stride (`vector`: n = S, a multiple of 4, padding gradients +-0) in four lanes. */
static inline double fcrf_adarow_sumsq(const double* FCRF_RESTRICT g, ptrdiff_t n, int vector)
{
    double sq = 0.0;
    ptrdiff_t j;
#if FCRF_VECTORS
    if (vector) {
        fcrf_v4d acc = {0.0, 0.0, 0.0, 0.0};
        double lanes[4];
        for (j = 0; j < n; j += 4) {
            const fcrf_v4d v = *(const fcrf_v4d*) (g + j);
            acc += v * v;
        }
        memcpy(lanes, &acc, sizeof lanes);
        return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    }
#else
    (void) vector;
#endif
    for (j = 0; j < n; j++)
        sq += g[j] * g[j];
    return sq;
}

/* For n rows: s[i] <- s_a of GA = s[i] (fcrf_adarow_scale), x[i] = -c_full s[i] and
 * E[i] = its expm1 by the polynomial; returns whether some x[i] <= -0.35, where the
 * caller replaces E[i] by exp(x[i]) - 1 (no cancellation there).  Vectorised across rows:
 * one row's square root, division and polynomial are a chain of dependent steps. */
static inline int fcrf_adarow_scales_lanes(double* FCRF_RESTRICT s, double* FCRF_RESTRICT x,
                                    double* FCRF_RESTRICT E, ptrdiff_t n, double c_full)
{
    int big = 0;
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        const double G = s[i];
        s[i] = G > 0.0 ? 1.0 / (FCRF_ADA_DELTA + sqrt(G)) : 0.0;
        x[i] = -c_full * s[i];
        E[i] = fcrf_ada_expm1_small(x[i]);
        big |= x[i] <= -0.35;
    }
    return big;
}

/* fcrf_ada_step_token for rows: each attribute of the token's entries [e0, e1) that
 * this step has not stepped yet, FCRF_ADAROW_BATCH at a time (see above).  c: this
 * step's eta lambda n_b; EA[a] receives expm1(-c_full s_a), also this step's decay
 * minus 1 when c == c_full. */
FCRF_MULTIVERSION
static void fcrf_adarow_step_token(const fcrf_layout* L, double* FCRF_RESTRICT U,
                                   double* FCRF_RESTRICT Uhat, double* FCRF_RESTRICT GA,
                                   double* FCRF_RESTRICT EA, double* FCRF_RESTRICT gU,
                                   int64_t* FCRF_RESTRICT stamp, const int32_t* ids,
                                   int64_t e0, int64_t e1, int64_t step, double eta,
                                   double c, double c_full, int averaging)
{
    const double inv_k = 1.0 / (double) L->K;
    const int vector_rows = L->S % 4 == 0;
    ptrdiff_t rows[FCRF_ADAROW_BATCH];
    double sq[FCRF_ADAROW_BATCH], s[FCRF_ADAROW_BATCH], x[FCRF_ADAROW_BATCH];
    double E[FCRF_ADAROW_BATCH];
    int64_t e = e0, j, lo, hi;
    ptrdiff_t n, i;
    while (e < e1) {
        int big = 0;
        for (n = 0; e < e1 && n < FCRF_ADAROW_BATCH; e++) {
            const ptrdiff_t a = ids[e];
            const int fresh = stamp[a] != step;
            stamp[a] = step;
            rows[n] = a;
            n += fresh;
        }
        if (!n)
            break;
        /* The rows were loaded for the emission scores, but the whole mini-batch's
         * rows, gradients and state were touched since (several MB on CoNLL-2000):
         * ask for them again while the scalars below are computed. */
        for (i = 0; i < n; i++)
            if (rows[i] < L->D) {
                fcrf_prefetch_lines(U + rows[i] * L->S, L->S);
                if (averaging)
                    fcrf_prefetch_lines(Uhat + rows[i] * L->S, L->S);
            }
        for (i = 0; i < n; i++) {
            const ptrdiff_t a = rows[i];
            if (a < L->D)
                sq[i] = fcrf_adarow_sumsq(gU + a * L->S, vector_rows ? L->S : L->K,
                                          vector_rows);
            else {
                fcrf_ada_row(L, a, &lo, &hi);
                sq[i] = fcrf_adarow_sumsq(gU + lo, hi - lo, 0);
            }
        }
        for (i = 0; i < n; i++) {
            const ptrdiff_t a = rows[i];
            GA[a] += sq[i] * inv_k;
            s[i] = GA[a];
        }
        big = fcrf_adarow_scales_lanes(s, x, E, n, c_full);
        if (big)
            for (i = 0; i < n; i++)
                if (x[i] <= -0.35)
                    E[i] = exp(x[i]) - 1.0;
        for (i = 0; i < n; i++) {
            const ptrdiff_t a = rows[i];
            EA[a] = E[i];
            fcrf_ada_row(L, a, &lo, &hi);
            fcrf_adarow_step_span(U + lo, Uhat + lo, gU + lo, hi - lo,
                                  c == c_full ? 1.0 + E[i] : exp(-c * s[i]), eta * s[i],
                                  averaging);
            if (a < L->D)   /* the padding's gradient: zeros, perhaps negative ones */
                for (j = hi; j < lo + L->S; j++)
                    gU[j] = 0.0;
        }
    }
}

/* ------------------------------------------------------------------------------- *
 * The per-row variant on records: the state rows of the SGD engine.                *
 * ------------------------------------------------------------------------------- *
 *
 * The functions above keep a row's GA, EA and stamp in three arrays and sum a step's
 * gradient into gU, an array the size of the weights.  On CoNLL-2000 these are
 * ~9 MB (gU) and 3 x 2.7 MB, beside U and Uhat (~9 MB each): more than the L3
 * cache, so a row touched by a step cost ~12 cache lines: three of U, of Uhat and of
 * gU, one each of GA, EA and the stamp.  Here a row's scalars share one 32-byte
 * record (half a line), and a step's gradients go to a small buffer instead of gU:
 * the catch-up of the emissions pass (which reads every row the step will touch, in
 * the same weight part) gives each row a slot, its row in that part's buffer, and
 * the step gives it back.  The buffer holds only the rows of one mini-batch's part
 * (~1000 rows of CoNLL-2000: ~200 KB), so it stays in the core's L2.  The slots are
 * given in the order in which the batch's tokens first name the rows, the order in
 * which fcrf_adarow_step_token steps them, so the step runs over the slots (no second
 * pass over the entries, and the buffer read in order).  Each row's floating-point
 * operations, and their order, are those of the fcrf_adarow_* functions, so the
 * weights are the same to the bit.  (On CoNLL-2000 a fit took 0.92x the CPU time of
 * the array version with the records and buffer alone.) */
typedef struct {
    double G;          /* GA: the row's summed mean squared gradient */
    double E;          /* EA: expm1(-c_full s) of its last step */
    int64_t stamp;     /* the step up to which its weights are current */
    int64_t slot;      /* its row in the step's gradient buffer, or -1 (none) */
} fcrf_adarow_rec;

/* fcrf_adarow_catch_up_row on records (full: from E, else from G) */
static inline void fcrf_adarec_catch_up_row(const fcrf_layout* L, double* FCRF_RESTRICT U,
                                            double* FCRF_RESTRICT Uhat,
                                            fcrf_adarow_rec* FCRF_RESTRICT rec, ptrdiff_t a,
                                            int64_t step, double c, int full, int averaging)
{
    const int64_t m = step - rec[a].stamp;
    int64_t j, lo, hi;
    double e1 = 0.0, em, r;
    if (m <= 0)
        return;
    rec[a].stamp = step;
    fcrf_ada_row(L, a, &lo, &hi);
    if (full) {
        e1 = rec[a].E;
        em = fcrf_adarow_powm1(e1, m);
    } else {
        const double x = -c * fcrf_adarow_scale(rec[a].G);
        em = expm1((double) m * x);
        if (averaging)
            e1 = expm1(x);
    }
    if (averaging) {
        const double f = e1 != 0.0 ? (1.0 + e1) * (em / e1) : (double) m;
        for (j = lo; j < hi; j++)
            Uhat[j] += U[j] * f;
    }
    r = 1.0 + em;
    for (j = lo; j < hi; j++)
        U[j] *= r;
}

/* fcrf_adarow_sync on records */
static void fcrf_adarec_sync(const fcrf_layout* L, ptrdiff_t n_attributes, double* U,
                             double* Uhat, fcrf_adarow_rec* rec, int64_t step, double c,
                             int full, int averaging)
{
    ptrdiff_t a;
    for (a = 0; a < n_attributes; a++)
        fcrf_adarec_catch_up_row(L, U, Uhat, rec, a, step, c, full, averaging);
}

/* Start loading the records of the entries of T tokens, as fcrf_prefetch_rows (_rows.h)
 * does for the weight rows: the catch-up reads each row's stamp before anything else,
 * and one miss per row at a time was a fifth of the catch-up's time. */
static void fcrf_adarec_prefetch(const fcrf_adarow_rec* rec, const int32_t* ids,
                                 const int64_t* tok_start, const int64_t* tok_end,
                                 ptrdiff_t T)
{
#if defined(__GNUC__) || defined(__clang__)
    ptrdiff_t t;
    int64_t e;
    for (t = 0; t < T; t++)
        for (e = tok_start[t]; e < tok_end[t]; e++)
            __builtin_prefetch(rec + ids[e], 1, 3);
#else
    (void) rec; (void) ids; (void) tok_start; (void) tok_end; (void) T;
#endif
}

/* fcrf_adarow_catch_up_token on records, which also gives every row of the entries
 * [e0, e1) without a slot the next one, *n_slots (then incremented), and writes the
 * row's id to slot_rows[slot] (slot_rows: one more than the slots, as the index
 * *n_slots is written for every entry). */
FCRF_MULTIVERSION
static void fcrf_adarec_catch_up_token(const fcrf_layout* L, double* U, double* Uhat,
                                       fcrf_adarow_rec* rec, int32_t* slot_rows,
                                       const int32_t* ids, int64_t e0, int64_t e1,
                                       int64_t step, double c, int full, int averaging,
                                       int64_t* n_slots)
{
    ptrdiff_t rows[FCRF_ADAROW_BATCH];
    int64_t ms[FCRF_ADAROW_BATCH];
    double e1v[FCRF_ADAROW_BATCH], em[FCRF_ADAROW_BATCH], p[FCRF_ADAROW_BATCH];
    double mf[FCRF_ADAROW_BATCH];
    int64_t e = e0, lo, hi, next = *n_slots;
    ptrdiff_t n, i;
    while (e < e1) {
        for (n = 0; e < e1 && n < FCRF_ADAROW_BATCH; e++) {
            /* without branches, as fcrf_adarow_catch_up_token */
            const ptrdiff_t a = ids[e];
            fcrf_adarow_rec* r_ = rec + a;
            const int64_t m = step - r_->stamp;
            const int64_t slot = r_->slot;
            r_->stamp = m > 0 ? step : r_->stamp;
            r_->slot = slot < 0 ? next : slot;
            slot_rows[next] = (int32_t) a;
            next += slot < 0;
            rows[n] = a;
            ms[n] = m;
            mf[n] = (double) m;
            n += m > 0;
        }
        if (!n)
            continue;
        if (full) {
            for (i = 0; i < n; i++) {
                e1v[i] = rec[rows[i]].E;
                p[i] = e1v[i];
                em[i] = 0.0;
            }
            fcrf_adarow_powm1_lanes(em, p, ms, n);
        } else {
            for (i = 0; i < n; i++) {
                const double x = -c * fcrf_adarow_scale(rec[rows[i]].G);
                em[i] = expm1(mf[i] * x);
                e1v[i] = averaging ? expm1(x) : 0.0;
            }
        }
        for (i = 0; i < n; i++) {
            double f = 0.0;
            if (averaging)
                f = e1v[i] != 0.0 ? (1.0 + e1v[i]) * (em[i] / e1v[i]) : mf[i];
            fcrf_ada_row(L, rows[i], &lo, &hi);
            fcrf_adarow_catch_up_span(U + lo, Uhat + lo, hi - lo, 1.0 + em[i], f, averaging);
        }
    }
    *n_slots = next;
}

/* fcrf_update_token into the gradient buffer g (rows of S, by slot; averaging off):
 * one token's share of the step's summed gradient, the same operations in the same
 * order as fcrf_update_token's into gU.  A tail row's gradients are the first
 * hi - lo doubles of its slot. */
FCRF_MULTIVERSION
static void fcrf_adarec_update_token(const fcrf_layout* L, const fcrf_adarow_rec* rec,
                                     double* FCRF_RESTRICT g, const int32_t* ids,
                                     const double* vals, int64_t e0, int64_t e1,
                                     const double* FCRF_RESTRICT p, int64_t y, double gain)
{
    const ptrdiff_t S = L->S, D = L->D;
    ptrdiff_t k;
    int64_t e, j;
    for (e = e0; e < e1; e++) {
        const ptrdiff_t a = ids[e];
        const double gx = gain * (vals ? vals[e] : 1.0);
        double* FCRF_RESTRICT u = g + rec[a].slot * S;
        if (a < D) {
#if FCRF_VECTORS
            for (k = 0; k < S; k += 4) {
                const fcrf_v4d pv = *(const fcrf_v4d*) (p + k);
                *(fcrf_v4d*) (u + k) -= gx * pv;
            }
#else
            for (k = 0; k < S; k++)
                u[k] -= gx * p[k];
#endif
            u[y] += gx;
        } else {
            const int64_t off = L->ptr[a - D];
            for (j = off; j < L->ptr[a - D + 1]; j++) {
                const int32_t lab = L->label[j];
                u[j - off] += gx * ((lab == y) - p[lab]);
            }
        }
    }
}

/* fcrf_adarow_step_span without zeroing g: the step's caller clears the rows of the
 * buffer it used at once (one memset, where a call per row was ~8% of the step). */
static inline void fcrf_adarec_step_span(double* FCRF_RESTRICT w, double* FCRF_RESTRICT hat,
                                         const double* FCRF_RESTRICT g, ptrdiff_t n, double d,
                                         double es, int averaging)
{
    ptrdiff_t j;
    for (j = 0; j < n; j++)
        w[j] = d * w[j] + es * g[j];
    if (averaging)
        for (j = 0; j < n; j++)
            hat[j] += w[j];
}

/* fcrf_adarow_step_token on records, for the n_slots rows of a mini-batch's weight
 * part in slot order (slot_rows), which is the order in which the step's tokens
 * first name them: each row is stepped from its gradients, row `slot` of g (left for
 * the caller to zero), and gives its slot back; its stamp becomes `step`. */
FCRF_MULTIVERSION
static void fcrf_adarec_step_slots(const fcrf_layout* L, double* FCRF_RESTRICT U,
                                   double* FCRF_RESTRICT Uhat,
                                   fcrf_adarow_rec* FCRF_RESTRICT rec,
                                   const double* FCRF_RESTRICT g, const int32_t* slot_rows,
                                   int64_t n_slots, int64_t step, double eta, double c,
                                   double c_full, int averaging)
{
    const double inv_k = 1.0 / (double) L->K;
    const ptrdiff_t S = L->S;
    const int vector_rows = S % 4 == 0;
    ptrdiff_t rows[FCRF_ADAROW_BATCH];
    const double* gr[FCRF_ADAROW_BATCH];
    double sq[FCRF_ADAROW_BATCH], s[FCRF_ADAROW_BATCH], x[FCRF_ADAROW_BATCH];
    double E[FCRF_ADAROW_BATCH];
    int64_t k, lo, hi;
    ptrdiff_t n, i;
    for (k = 0; k < n_slots; k += n) {
        int big = 0;
        n = n_slots - k < FCRF_ADAROW_BATCH ? n_slots - k : FCRF_ADAROW_BATCH;
        for (i = 0; i < n; i++) {
            const ptrdiff_t a = slot_rows[k + i];
            rec[a].stamp = step;
            rec[a].slot = -1;
            rows[i] = a;
            gr[i] = g + (k + i) * S;
        }
        for (i = 0; i < n; i++)
            if (rows[i] < L->D) {
                fcrf_prefetch_lines(U + rows[i] * S, S);
                if (averaging)
                    fcrf_prefetch_lines(Uhat + rows[i] * S, S);
            }
        for (i = 0; i < n; i++) {
            const ptrdiff_t a = rows[i];
            if (a < L->D)
                sq[i] = fcrf_adarow_sumsq(gr[i], vector_rows ? S : L->K, vector_rows);
            else {
                fcrf_ada_row(L, a, &lo, &hi);
                sq[i] = fcrf_adarow_sumsq(gr[i], hi - lo, 0);
            }
        }
        for (i = 0; i < n; i++) {
            const ptrdiff_t a = rows[i];
            rec[a].G += sq[i] * inv_k;
            s[i] = rec[a].G;
        }
        big = fcrf_adarow_scales_lanes(s, x, E, n, c_full);
        if (big)
            for (i = 0; i < n; i++)
                if (x[i] <= -0.35)
                    E[i] = exp(x[i]) - 1.0;
        for (i = 0; i < n; i++) {
            const ptrdiff_t a = rows[i];
            rec[a].E = E[i];
            fcrf_ada_row(L, a, &lo, &hi);
            fcrf_adarec_step_span(U + lo, Uhat + lo, gr[i], hi - lo,
                                  c == c_full ? 1.0 + E[i] : exp(-c * s[i]), eta * s[i],
                                  averaging);
        }
    }
}

#endif
