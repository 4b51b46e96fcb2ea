# Declarations of the register-blocked padded lattice kernels (_padded.h), shared by the
# SGD engine (_sgd_engine.pyx) and the sparse forward-backward (_sparse.pyx).

from libc.stdint cimport int64_t

cdef extern from "_padded.h":
    ctypedef struct fcrf_padded_lattice:
        Py_ssize_t K
        Py_ssize_t S
        const double* start
        const double* end
        const double* E
        const double* ET
        double tmax
    Py_ssize_t fcrf_padded_work_doubles(Py_ssize_t T, Py_ssize_t S) noexcept nogil
    int fcrf_padded_available(Py_ssize_t S) noexcept nogil
    int fcrf_padded_marginals(const fcrf_padded_lattice* c, const double* lem, Py_ssize_t T,
                             double* work, double* marg, double* edge,
                             double* logz) noexcept nogil
    double fcrf_path_score_strided(const double* trans, const double* start,
                                   const double* end, const double* lem, Py_ssize_t T,
                                   Py_ssize_t K, Py_ssize_t S, const int64_t* y) noexcept nogil
