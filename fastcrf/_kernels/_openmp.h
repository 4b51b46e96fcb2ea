/* OpenMP shim: the only place fastcrf touches the OpenMP runtime.
 *
 * Cython already guards its prange pragmas, so the module builds without OpenMP;
 * this header gives the few omp_* calls we make a serial fallback and tells the
 * Python side whether the build is parallel. */
#ifndef FASTCRF_OPENMP_H
#define FASTCRF_OPENMP_H

#ifdef _OPENMP
#  include <omp.h>
#  define FASTCRF_OPENMP 1
#else
#  define FASTCRF_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
#endif

#endif
