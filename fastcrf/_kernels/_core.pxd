# Declarations shared by the compiled kernel modules: the chain constants, the
# per-thread scratch and the single-sequence kernels of _core.pyx, which the sparse
# drivers (_sparse.pyx) and the epoch engines (_sgd_engine.pyx, _online_engine.pyx)
# reuse.  See _core.pyx for the design notes.

from libc.stdint cimport int64_t
from cython cimport floating

# Sequences per parallel work item.  Fixed, so that per-chunk sums (and hence
# gradients) do not depend on the thread count.
cdef enum:
    CHUNK = 4


cdef struct Chain:
    # The scores of a linear chain and the constants derived from them (_chain_scaled
    # for forward-backward, _chain_decoder for Viterbi), built once per batch.
    Py_ssize_t K
    const double* trans     # [K][K] transition scores, [i][j] scores i -> j
    const double* start     # [K]    start scores
    const double* end       # [K]    end scores
    const double* E         # [K][K] exp(trans[i][j] - tmax)
    const double* ET        # [K][K] transpose of E (backward pass reads rows)
    const double* rowmax    # [K]    max_j trans[i][j] (Viterbi pruning bound)
    const double* transT    # [K][K] trans transposed (Viterbi backtracking reads columns)
    double tmax
    bint raw_edges          # accumulate a[i] w[j] and multiply by E once per sequence


cdef struct Work:
    # Per-thread scratch, sized for the longest sequence of the batch.
    double* lem     # [T][K] emission scores of the current sequence, as double
    double* emf     # [T][K] exp(lem[t][j] - max_j lem[t][j]); log-alpha in the fallback
    double* alpha   # [T][K] normalised forward rows, overwritten by node marginals
    double* asum    # [T]    normaliser of each forward row
    double* aloss   # [T]    bound on the relative mass each forward row lost to underflow
    double* b0      # [K]    backward row t
    double* b1      # [K]    backward row t - 1
    double* v       # [K]    emf[t][j] * beta_t[j]
    double* edge    # [K][K] sum_t P(y_{t-1} = i, y_t = j) for this sequence


cdef Py_ssize_t _chain_doubles(Py_ssize_t K) noexcept nogil
cdef Chain _chain_bind(Py_ssize_t K, const double* trans, const double* start,
                       const double* end, double* buf) noexcept nogil
cdef double* _chain_new(Chain* c, Py_ssize_t K, const double* trans, const double* start,
                        const double* end) except NULL
cdef void _chain_scaled(Chain* c) noexcept nogil
cdef void _chain_decoder(Chain* c) noexcept nogil
cdef Py_ssize_t _work_doubles(Py_ssize_t T, Py_ssize_t K) noexcept nogil
cdef Work _work_bind(double* buf, Py_ssize_t T, Py_ssize_t K) noexcept nogil
cdef double _sequence_marginals(const Chain* c, Py_ssize_t T, Work* w,
                                bint want_marginals, bint want_edges) noexcept nogil
cdef void _add_path_counts(const int64_t* y, Py_ssize_t T, Py_ssize_t K, double weight,
                           double* acc) noexcept nogil
cdef void _transition_gradient(const Work* w, const int64_t* y, Py_ssize_t T, Py_ssize_t K,
                          double* acc) noexcept nogil
cdef void _transition_gradient_rows(const double* edge, const double* marg, Py_ssize_t stride,
                               const int64_t* y, Py_ssize_t T, Py_ssize_t K,
                               double* acc) noexcept nogil
cdef double _path_score(const Chain* c, const floating* lem, Py_ssize_t T,
                        const int64_t* y) noexcept nogil
cdef double _viterbi_one(const Chain* c, const double* lem, Py_ssize_t T,
                         double* delta, double* bound, Py_ssize_t* rows,
                         int64_t* path) noexcept nogil
cdef Py_ssize_t _nbest_one(Py_ssize_t K, const double* trans, const double* rowmax,
                           const double* tmax, Py_ssize_t step, const double* start,
                           const double* end, const double* lem, Py_ssize_t T,
                           Py_ssize_t k, double* kth, double* hit, double* delta,
                           int64_t* back, int64_t* order, double* top, int64_t* top_ids,
                           int64_t* paths, Py_ssize_t Tpad, double* scores) noexcept nogil
