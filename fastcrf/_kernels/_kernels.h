/* The O(K^2) row operations of the chain recursions, in C so that the compiler can
 * build them twice: once for the baseline ISA a wheel must run on, and once for
 * x86-64-v3 (AVX2 + FMA), picked at load time by GCC/clang function multi-versioning
 * (target_clones, through glibc's ifunc).  Everything else in fastcrf is Cython
 * (_core.pyx); these four loops are where the time goes for K >= 20.
 *
 * Buffers are row-major: M[i * K + j].  A process always runs the same clone, so
 * results stay bitwise identical across thread counts; they may differ in the last
 * bits between machines with and without FMA.
 */
#ifndef FASTCRF_KERNELS_H
#define FASTCRF_KERNELS_H

#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) \
    && !defined(FASTCRF_NO_MULTIVERSION)
#  define FCRF_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#  define FCRF_MULTIVERSIONED 1
#else
#  define FCRF_MULTIVERSION
#  define FCRF_MULTIVERSIONED 0
#endif

#if defined(_MSC_VER)
#  define FCRF_RESTRICT __restrict
#else
#  define FCRF_RESTRICT __restrict__
#endif

/* (exp(x) - 1) / x = 1 + x/2! + ... + x^12/13!, by Horner: the Taylor polynomial of
 * degree 13 that fcrf_exp_shifted (exp(r) = 1 + r * this) and the AdaGrad step's
 * expm1 (_adagrad.h: x * this) share; truncation below 1e-17 relative for |x| <=
 * ln2 / 2, and for |x| <= 0.35. */
static inline double fcrf_expm1_ratio(double x)
{
    double p = x * (1.0 / 6227020800.0) + 1.0 / 479001600.0;
    p = p * x + 1.0 / 39916800.0;
    p = p * x + 1.0 / 3628800.0;
    p = p * x + 1.0 / 362880.0;
    p = p * x + 1.0 / 40320.0;
    p = p * x + 1.0 / 5040.0;
    p = p * x + 1.0 / 720.0;
    p = p * x + 1.0 / 120.0;
    p = p * x + 1.0 / 24.0;
    p = p * x + 1.0 / 6.0;
    p = p * x + 0.5;
    return p * x + 1.0;
}

/* out[j] = exp(x[j] - shift), to about 1 ulp; out may be x.  A polynomial the compiler
 * vectorises (the libm call it replaces cost ~50 instructions per element and was a
 * tenth of an SGD epoch).  x - shift = n ln2 + r with |r| <= ln2 / 2, exp(r) by its
 * Taylor polynomial of degree 13 (truncation < 1e-17 relative), times 2^n built in
 * the exponent bits.  Arguments below -708 give 0 (exp underflows to subnormals
 * there, which the scaled recursions treat as lost mass anyway); above 709, the
 * value at 709.  NaN stays NaN.  Needs -fno-trapping-math to vectorise (setup.py). */
FCRF_MULTIVERSION
static void fcrf_exp_shifted(const double* x, double shift, double* out, ptrdiff_t K)
{
    const double magic = 6755399441055744.0;   /* 1.5 * 2^52: t - magic rounds to int */
    ptrdiff_t j;
    for (j = 0; j < K; j++) {
        const double v = x[j] - shift;
        double w = v > -708.0 ? v : -708.0;
        double t, n, r, p, e;
        union { double d; int64_t i; } tb, sb;
        w = w < 709.0 ? w : 709.0;
        w = v != v ? v : w;                     /* keep NaN */
        t = w * 1.4426950408889634074 + magic;
        n = t - magic;
        r = (w - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
        p = fcrf_expm1_ratio(r) * r + 1.0;
        tb.d = t;
        sb.i = (int64_t)((uint64_t)(tb.i - 0x4338000000000000LL + 1023) << 52);
        e = p * sb.d;
        out[j] = v < -708.0 ? 0.0 : e;
    }
}

/* y[j] = sum_i x[i] M[i][j]   (a row vector times a K x K matrix).
 * Four rows of M per pass over y: a quarter of the loads and stores of y. */
FCRF_MULTIVERSION
static void fcrf_vecmat(const double* FCRF_RESTRICT x, const double* FCRF_RESTRICT M,
                        double* FCRF_RESTRICT y, ptrdiff_t K)
{
    ptrdiff_t i = 0, j;
    for (j = 0; j < K; j++)
        y[j] = 0.0;
    for (; i + 4 <= K; i += 4) {
        const double a0 = x[i], a1 = x[i + 1], a2 = x[i + 2], a3 = x[i + 3];
        const double* FCRF_RESTRICT m0 = M + i * K;
        const double* FCRF_RESTRICT m1 = m0 + K;
        const double* FCRF_RESTRICT m2 = m1 + K;
        const double* FCRF_RESTRICT m3 = m2 + K;
        for (j = 0; j < K; j++)
            y[j] += (a0 * m0[j] + a1 * m1[j]) + (a2 * m2[j] + a3 * m3[j]);
    }
    for (; i < K; i++) {
        const double a = x[i];
        const double* FCRF_RESTRICT m = M + i * K;
        for (j = 0; j < K; j++)
            y[j] += a * m[j];
    }
}

/* acc[i][j] += a[i] E[i][j] w[j]   (one step's edge marginals, summed over t). */
FCRF_MULTIVERSION
static void fcrf_edge_accumulate(const double* FCRF_RESTRICT a, const double* FCRF_RESTRICT E,
                                 const double* FCRF_RESTRICT w, double* FCRF_RESTRICT acc,
                                 ptrdiff_t K)
{
    ptrdiff_t i, j;
    for (i = 0; i < K; i++) {
        const double ai = a[i];
        const double* FCRF_RESTRICT e = E + i * K;
        double* FCRF_RESTRICT out = acc + i * K;
        for (j = 0; j < K; j++)
            out[j] += ai * e[j] * w[j];
    }
}

/* acc[i][j] += a[i] w[j]   (rank-1 update: edge sums before the factor E[i][j]). */
FCRF_MULTIVERSION
static void fcrf_outer_accumulate(const double* FCRF_RESTRICT a, const double* FCRF_RESTRICT w,
                                  double* FCRF_RESTRICT acc, ptrdiff_t K)
{
    ptrdiff_t i, j;
    for (i = 0; i < K; i++) {
        const double ai = a[i];
        double* FCRF_RESTRICT out = acc + i * K;
        for (j = 0; j < K; j++)
            out[j] += ai * w[j];
    }
}

/* y[j] |= max over the listed rows: y[j] = max(y[j], d[r] + M[r][j]) for r in rows. */
FCRF_MULTIVERSION
static void fcrf_maxplus_rows(const double* FCRF_RESTRICT d, const double* FCRF_RESTRICT M,
                              const ptrdiff_t* FCRF_RESTRICT rows, ptrdiff_t n_rows,
                              double* FCRF_RESTRICT y, ptrdiff_t K)
{
    ptrdiff_t r = 0, j;
    for (; r + 4 <= n_rows; r += 4) {
        const double a0 = d[rows[r]], a1 = d[rows[r + 1]];
        const double a2 = d[rows[r + 2]], a3 = d[rows[r + 3]];
        const double* FCRF_RESTRICT m0 = M + rows[r] * K;
        const double* FCRF_RESTRICT m1 = M + rows[r + 1] * K;
        const double* FCRF_RESTRICT m2 = M + rows[r + 2] * K;
        const double* FCRF_RESTRICT m3 = M + rows[r + 3] * K;
        for (j = 0; j < K; j++) {
            double x0 = a0 + m0[j], x1 = a1 + m1[j], x2 = a2 + m2[j], x3 = a3 + m3[j];
            double b01 = x0 > x1 ? x0 : x1;
            double b23 = x2 > x3 ? x2 : x3;
            double b = b01 > b23 ? b01 : b23;
            y[j] = b > y[j] ? b : y[j];
        }
    }
    for (; r < n_rows; r++) {
        const double a = d[rows[r]];
        const double* FCRF_RESTRICT m = M + rows[r] * K;
        for (j = 0; j < K; j++) {
            double x = a + m[j];
            y[j] = x > y[j] ? x : y[j];
        }
    }
}

/* max_i x[i] with four independent accumulators: the comparisons are not one long
 * dependency chain.  Exact (a max does not round). */
static inline double fcrf_max(const double* x, ptrdiff_t K)
{
    double m0 = x[0], m1 = x[0], m2 = x[0], m3 = x[0];
    ptrdiff_t i = 0;
    for (; i + 4 <= K; i += 4) {
        m0 = x[i] > m0 ? x[i] : m0;
        m1 = x[i + 1] > m1 ? x[i + 1] : m1;
        m2 = x[i + 2] > m2 ? x[i + 2] : m2;
        m3 = x[i + 3] > m3 ? x[i + 3] : m3;
    }
    for (; i < K; i++)
        m0 = x[i] > m0 ? x[i] : m0;
    m0 = m1 > m0 ? m1 : m0;
    m2 = m3 > m2 ? m3 : m2;
    return m2 > m0 ? m2 : m0;
}

/* min_j (a + m[j]) with four independent accumulators. */
static inline double fcrf_min_shifted(double a, const double* m, ptrdiff_t K)
{
    double m0 = a + m[0], m1 = m0, m2 = m0, m3 = m0;
    ptrdiff_t j = 0;
    for (; j + 4 <= K; j += 4) {
        double x0 = a + m[j], x1 = a + m[j + 1], x2 = a + m[j + 2], x3 = a + m[j + 3];
        m0 = x0 < m0 ? x0 : m0;
        m1 = x1 < m1 ? x1 : m1;
        m2 = x2 < m2 ? x2 : m2;
        m3 = x3 < m3 ? x3 : m3;
    }
    for (; j < K; j++) {
        double x = a + m[j];
        m0 = x < m0 ? x : m0;
    }
    m0 = m1 < m0 ? m1 : m0;
    m2 = m3 < m2 ? m3 : m2;
    return m2 < m0 ? m2 : m0;
}

/* y[j] = max_i d[i] + M[i][j]   (max-plus product; the maximum only: the Viterbi
 * back-pointer is recomputed from the same sums while backtracking).
 *
 * Exact pruning: a row's sums are at most its bound d[i] + rowmax[i].  Take one row
 * with the highest bound; every y[j] is at least that row's minimum, so a row whose
 * bound is not above it cannot raise any y[j] and is skipped.  The max of a set does
 * not depend on the order it is taken in, so y equals the full product.
 * bound and rows are scratch for K values. */
static void fcrf_maxplus(const double* d, const double* M, const double* rowmax,
                         double* bound, ptrdiff_t* rows, double* y, ptrdiff_t K)
{
    ptrdiff_t i, first = 0, n_rows = 0;
    double top, ymin;
    for (i = 0; i < K; i++)
        bound[i] = d[i] + rowmax[i];
    top = fcrf_max(bound, K);
    while (first < K - 1 && bound[first] != top)   /* bounded even if a NaN slipped in */
        first++;
    ymin = fcrf_min_shifted(d[first], M + first * K, K);
    for (i = 0; i < K; i++)
        y[i] = d[first] + M[first * K + i];
    for (i = 0; i < K; i++)
        if (bound[i] > ymin && i != first)   /* rarely true: a well-predicted branch */
            rows[n_rows++] = i;
    fcrf_maxplus_rows(d, M, rows, n_rows, y, K);
}

/* The lowest i maximising d[i] + c[i] (c: a column of the transitions, contiguous).
 * Two passes: an exact max with independent accumulators, then the first index that
 * reaches it; the sums are the same additions as in fcrf_maxplus, so bitwise equal. */
static ptrdiff_t fcrf_argmax_shifted(const double* d, const double* c, double* scratch,
                                     ptrdiff_t K)
{
    ptrdiff_t i = 0;
    double top;
    for (i = 0; i < K; i++)
        scratch[i] = d[i] + c[i];
    top = fcrf_max(scratch, K);
    i = 0;
    while (i < K - 1 && scratch[i] != top)   /* bounded even if a NaN slipped in */
        i++;
    return i;
}

static inline int fcrf_multiversioned(void) { return FCRF_MULTIVERSIONED; }

#endif
