# Declarations of the register-blocked padded lattice kernels (_padded.h), shared by the
# SGD engine (_sgd_engine.pyx) and the sparse forward-backward (_sparse.pyx).

from libc.stdint cimport int64_t
from libc.string cimport memset

from ._core cimport Chain

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


cdef inline void _padded_bind(const Chain* c, Py_ssize_t S, double* buf,
                              fcrf_padded_lattice* pc) noexcept nogil:
    # pc over buf ([2][K][S] doubles, written here): the chain constants of c (after
    # _chain_scaled) in rows padded to S, zero beyond K; E then ET.
    cdef Py_ssize_t K = c.K
    cdef Py_ssize_t i, j
    memset(buf, 0, 2 * K * S * sizeof(double))
    for i in range(K):
        for j in range(K):
            buf[i * S + j] = c.E[i * K + j]
            buf[K * S + i * S + j] = c.ET[i * K + j]
    pc.K = K
    pc.S = S
    pc.start = c.start
    pc.end = c.end
    pc.E = buf
    pc.ET = buf + K * S
    pc.tmax = c.tmax
