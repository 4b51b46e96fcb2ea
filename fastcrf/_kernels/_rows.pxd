# Declarations of the state-weight row kernels (_rows.h) and the small helpers that
# turn the Python layer's arrays into the pointers they take, shared by the sparse
# drivers (_sparse.pyx) and the epoch engines (_sgd_engine.pyx, _online_engine.pyx).

from libc.stdint cimport int32_t, int64_t

cdef extern from "_rows.h":
    ctypedef struct fcrf_layout:
        Py_ssize_t K
        Py_ssize_t S
        Py_ssize_t D
        const int64_t* ptr
        const int32_t* label
    void fcrf_emissions(const fcrf_layout* L, const double* U, const int32_t* ids,
                          const double* vals, const int64_t* tok_start,
                          const int64_t* tok_end, Py_ssize_t T, double scale, double* lem,
                          Py_ssize_t stride) noexcept nogil
    double fcrf_add_parts(const double* p0, const double* p1, double* out,
                          Py_ssize_t n) noexcept nogil
    double fcrf_max_abs(const double* x, Py_ssize_t n) noexcept nogil
    void fcrf_prefetch_rows(const fcrf_layout* L, const double* U, const double* Uhat,
                            const int32_t* ids, const int64_t* tok_start,
                            const int64_t* tok_end, Py_ssize_t T) noexcept nogil
    void fcrf_update_token(const fcrf_layout* L, double* U, double* Uhat, const int32_t* ids,
                           const double* vals, int64_t e0, int64_t e1, const double* p,
                           int64_t y, double gain, double beta,
                           int averaging) noexcept nogil


cdef inline int _check_layout(const double[::1] U, Py_ssize_t K, Py_ssize_t S, Py_ssize_t D,
                              const int64_t[::1] tail_ptr, const int32_t[::1] tail_label,
                              fcrf_layout* L) except -1:
    # Fill L after checking that U has the size the layout says: a bounds check (the
    # Python layer builds both), which catches a mismatch before any kernel reads out
    # of bounds.
    if S < K or D < 0 or U.shape[0] != D * S + tail_label.shape[0] or (
            tail_label.shape[0] > 0 and tail_ptr.shape[0] < 2):
        raise ValueError("the state weights do not match their layout")
    L.K = K
    L.S = S
    L.D = D
    L.ptr = &tail_ptr[0] if tail_ptr.shape[0] > 0 else NULL
    L.label = &tail_label[0] if tail_label.shape[0] > 0 else NULL
    return 0


cdef inline const double* _ptr(const double[::1] x) noexcept:
    return &x[0] if x.shape[0] > 0 else NULL


cdef inline const double* _values(const double[::1] vals) noexcept:
    # An empty values array stands for "every value is 1.0" (binary attributes): the
    # common case, which then needs no n_entries doubles of memory.
    return &vals[0] if vals.shape[0] > 0 else NULL


cdef inline const int32_t* _ids(const int32_t[::1] ids) noexcept:
    # No entries at all (every token without attributes) is valid input.
    return &ids[0] if ids.shape[0] > 0 else NULL
