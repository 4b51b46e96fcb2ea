# Declarations of the single-sequence kernels of _edges.pyx (per-position
# transitions), which the SGD engine (_sgd_engine.pyx) and the online engine
# (_online_engine.pyx) reuse for sequences with transition attributes.

from libc.stdint cimport int64_t


cdef double _forward(Py_ssize_t T, Py_ssize_t K, const double* em, Py_ssize_t ld,
                     const double** tp, const double* start, const double* end,
                     double* alpha, double* tmp) noexcept nogil
cdef void _backward(Py_ssize_t T, Py_ssize_t K, const double* em, Py_ssize_t ld,
                    const double** tp, const double* end, double* beta,
                    double* tmp) noexcept nogil
cdef double _path(Py_ssize_t T, Py_ssize_t K, const double* em, Py_ssize_t ld,
                  const double** tp, const double* start, const double* end,
                  const int64_t* y) noexcept nogil
cdef double _viterbi(Py_ssize_t T, Py_ssize_t K, const double* em, Py_ssize_t ld,
                     const double** tp, const double* start, const double* end,
                     double* delta, int64_t* back, int64_t* path) noexcept nogil
cdef void _exp_matrix(Py_ssize_t K, const double* tr, double* E, double* c) noexcept nogil
cdef bint _scaled(Py_ssize_t T, Py_ssize_t K, const double* em, Py_ssize_t ld,
                  const double** Ep, const double* c, const double* start, const double* end,
                  double* a, double* b, double* emf, double* logz) noexcept nogil
