/* The numeric limits of fastcrf, defined once.  The kernels read them from here
 * (through _limits.pxd); the Python layer reads the same values from
 * fastcrf._kernels._core (MAX_SCORE, RAW_EDGE_RANGE, UNDERFLOW_TERM, LOSS_TOL). */
#ifndef FASTCRF_LIMITS_H
#define FASTCRF_LIMITS_H

/* Scores (emissions, transitions, start, end) and emission rows beyond this
 * magnitude are rejected: the Python layer raises on them, the kernels report them
 * through a status flag (diverging weights, huge feature values). */
#define FCRF_MAX_SCORE 1e150

/* Up to this range of transition scores, max(trans) - min(trans), the unnormalised
 * edge sums a[i] w[j] of the scaled recursion stay below exp(300) * T and are
 * multiplied by exp(trans - max) once per sequence; wider ranges take the per-step
 * product instead. */
#define FCRF_RAW_EDGE_RANGE 300.0

/* Scaled recursions: a product of factors <= 1 that underflows loses at most this
 * much (gradual underflow rounds to within 5e-324; the margin covers several
 * roundings). */
#define FCRF_UNDERFLOW_TERM 1e-300

/* Fall back to log space as soon as the mass a row may have lost to underflow,
 * relative to the row, could exceed this: far below double precision. */
#define FCRF_LOSS_TOL 1e-20

#endif
