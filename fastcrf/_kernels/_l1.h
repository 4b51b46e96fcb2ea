/* The L1 part of an SGD step (fastcrf/_kernels/_sgd_engine.pyx, sgd_epoch): Tsuruoka,
 * Tsujii and Ananiadou 2009, "Stochastic gradient descent training for L1-regularized
 * log-linear models with cumulative penalty", applied lazily to the weights a step touches.
 *
 * The trainer stores w = alpha * U.  An L1 subgradient step w -= c sign(w) (c = eta
 * lambda1 n_b) is U -= (c / alpha) sign(U) in U-space, and there it commutes with the
 * L2 shrink (which only changes alpha).  So, in U-space:
 *   u    = sum over the steps so far of eta lambda1 n_b / alpha (after that step's
 *          alpha update): the penalty any weight could have received;
 *   q[i] = the signed change the clips actually made to U[i] so far;
 * and after a step has added its gradient to U[i] = z, the clip
 *   z > 0:  U[i] = max(0, z - (u + q[i]))      z < 0:  U[i] = min(0, z + (u - q[i]))
 *   q[i] += U[i] - z.
 * When the clip leaves the weight non-zero, q[i] becomes -u (z > 0) or u (z < 0)
 * exactly; it is set so, not accumulated, so that clipping a weight a second time in
 * the same step is exactly a no-op.  A row touched by several tokens of a mini-batch
 * may then be clipped once per touch, after all of the step's updates, and the result
 * is that of clipping it once (a stamp per attribute skips the repeats, for speed).
 * The clip's change d is recorded in the average as the gradient's is (Uhat -= beta d).
 * Weights that are exactly 0 stay 0: the row padding, and the chain scores that do
 * not train (their gradient is masked), so the chain is clipped whole.
 */
#ifndef FASTCRF_L1_H
#define FASTCRF_L1_H

#include <stdint.h>
#include "_rows.h"

/* Clip the n weights x (with their q; when averaging, hat -= beta * change).
 * Branch-free: the signs are data, and mispredicted branches made the clip cost more
 * than the whole update.  A weight at 0 stays 0 whatever q is (q may pass u by
 * rounding). */
static inline void fcrf_l1_clip_span(double* FCRF_RESTRICT x, double* FCRF_RESTRICT hat,
                                     double* FCRF_RESTRICT q, ptrdiff_t n, double u,
                                     double beta, int averaging)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        const double z = x[i], qi = q[i];
        const double xp = z - (u + qi), xn = z + (u - qi);
        const double v = z > 0.0 ? (xp > 0.0 ? xp : 0.0)
                                 : (z < 0.0 ? (xn < 0.0 ? xn : 0.0) : 0.0);
        x[i] = v;
        q[i] = v != 0.0 ? (z > 0.0 ? -u : u) : qi - z;
        if (averaging)
            hat[i] -= beta * (v - z);
    }
}

#if FCRF_VECTORS
typedef int64_t fcrf_l1_v4i __attribute__((vector_size(32), aligned(8), may_alias));

/* The same on 4 weights (one vector of a dense row), to the bit. */
static inline void fcrf_l1_clip4(double* FCRF_RESTRICT x, double* FCRF_RESTRICT hat,
                                 double* FCRF_RESTRICT q, double u, double beta,
                                 int averaging)
{
    const fcrf_v4d zero = {0.0, 0.0, 0.0, 0.0};
    const fcrf_v4d uv = {u, u, u, u};
    const fcrf_v4d z = *(const fcrf_v4d*) x, qi = *(const fcrf_v4d*) q;
    const fcrf_v4d xp = z - (uv + qi), xn = z + (uv - qi);
    const fcrf_l1_v4i pos = (z > zero) & (xp > zero);
    const fcrf_l1_v4i neg = (z < zero) & (xn < zero);
    const fcrf_l1_v4i v = ((fcrf_l1_v4i) xp & pos) | ((fcrf_l1_v4i) xn & neg);
    const fcrf_l1_v4i qn = ((fcrf_l1_v4i) (-uv) & pos) | ((fcrf_l1_v4i) uv & neg)
                           | ((fcrf_l1_v4i) (qi - z) & ~(pos | neg));
    *(fcrf_v4d*) x = (fcrf_v4d) v;
    *(fcrf_v4d*) q = (fcrf_v4d) qn;
    if (averaging)
        *(fcrf_v4d*) hat -= beta * ((fcrf_v4d) v - z);
}
#endif

/* Clip the weights of one token's entries [e0, e1): the whole row of a dense
 * attribute (its padding weights are 0 and stay so), the tail weights of a tail one,
 * skipping the attributes whose stamp is already `step` (clipped in this step: a
 * second clip would change nothing, and three in four entries of a mini-batch of
 * CoNLL-2002 repeat an attribute of the batch), and stamping the others. */
FCRF_MULTIVERSION
static void fcrf_l1_clip_token(const fcrf_layout* L, double* FCRF_RESTRICT U,
                               double* FCRF_RESTRICT Uhat, double* FCRF_RESTRICT qU,
                               int64_t* FCRF_RESTRICT stamp, int64_t step,
                               const int32_t* ids, int64_t e0, int64_t e1, double u,
                               double beta, int averaging)
{
    const ptrdiff_t S = L->S, D = L->D;
    int64_t e, lo, hi;
    for (e = e0; e < e1; e++) {
        const ptrdiff_t a = ids[e];
        if (stamp[a] == step)
            continue;
        stamp[a] = step;
        if (a < D) {
            lo = a * S;
#if FCRF_VECTORS
            for (hi = lo; hi < lo + S; hi += 4)
                fcrf_l1_clip4(U + hi, Uhat + hi, qU + hi, u, beta, averaging);
            continue;
#else
            hi = lo + S;
#endif
        } else {
            lo = D * S + L->ptr[a - D];
            hi = D * S + L->ptr[a - D + 1];
        }
        fcrf_l1_clip_span(U + lo, Uhat + lo, qU + lo, hi - lo, u, beta, averaging);
    }
}

/* Clip n weights (the chain scores). */
static void fcrf_l1_clip_run(double* x, double* hat, double* q, ptrdiff_t n, double u,
                             double beta, int averaging)
{
    fcrf_l1_clip_span(x, hat, q, n, u, beta, averaging);
}

/* Fold the scale alpha into the L1 state (U-space quantities): u and q scale as U. */
static void fcrf_l1_fold(double* qU, ptrdiff_t nU, double* qV, ptrdiff_t nV,
                         double* u, double alpha)
{
    ptrdiff_t i;
    for (i = 0; i < nU; i++)
        qU[i] *= alpha;
    for (i = 0; i < nV; i++)
        qV[i] *= alpha;
    *u *= alpha;
}

#endif
