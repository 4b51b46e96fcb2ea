# Layout preparation, run once before training: the (attribute, label) pairs of the
# sparse state layout (tail_pairs) and the two weight parts of the SGD engine
# (balanced_parts, split_parts).  Unlike the kernels these check their inputs and
# allocate their (small) outputs themselves: they run once per fit, on arrays the
# Python layer has not yet cross-checked, and tail_pairs only knows the size of its
# output after its first pass.

from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free


cdef enum:
    SORT_MAX = 64       # longer tokens keep their order (insertion sort is quadratic)


cdef void _sort_entries(int32_t* ids, double* vals, int64_t lo, int64_t hi) noexcept nogil:
    # Stable insertion sort of the entries [lo, hi) by attribute id.
    cdef int64_t e, j
    cdef int32_t a
    cdef double v = 0.0
    for e in range(lo + 1, hi):
        a = ids[e]
        if vals != NULL:
            v = vals[e]
        j = e
        while j > lo and ids[j - 1] > a:
            ids[j] = ids[j - 1]
            if vals != NULL:
                vals[j] = vals[j - 1]
            j -= 1
        ids[j] = a
        if vals != NULL:
            vals[j] = v


cdef _tail_pairs_marked(const int32_t[::1] ids, const int64_t[::1] tok_off,
                        const int64_t[::1] labels, Py_ssize_t n_dense, Py_ssize_t R,
                        Py_ssize_t K):
    # tail_pairs with one byte per candidate pair as scratch, on checked inputs.
    import numpy as np

    seen_arr = np.zeros(R * K, dtype=np.uint8)
    ptr_arr = np.zeros(R + 1, dtype=np.int64)
    cdef unsigned char[::1] seen = seen_arr
    cdef int64_t[::1] ptr = ptr_arr
    cdef Py_ssize_t n_tok = tok_off.shape[0] - 1
    cdef Py_ssize_t t, r, k
    cdef int64_t e, y, a, j
    with nogil:
        for t in range(n_tok):
            y = labels[t]
            for e in range(tok_off[t], tok_off[t + 1]):
                a = ids[e]
                if a >= n_dense:
                    seen[(a - n_dense) * K + y] = 1
        for r in range(R):
            j = 0
            for k in range(K):
                j += seen[r * K + k]
            ptr[r + 1] = ptr[r] + j
    out_arr = np.empty(ptr[R], dtype=np.int32)
    cdef int32_t[::1] out = out_arr
    with nogil:
        j = 0
        for r in range(R):
            for k in range(K):
                if seen[r * K + k]:
                    out[j] = <int32_t> k
                    j += 1
    return ptr_arr, out_arr


def tail_pairs(
    const int32_t[::1] ids,                # IN  [n_entries] attribute ids, < n_attributes
    const int64_t[::1] tok_off,            # IN  [n_tokens + 1]
    const int64_t[::1] labels,             # IN  [n_tokens] label codes, < n_labels
    Py_ssize_t n_dense,
    Py_ssize_t n_attributes,
    Py_ssize_t n_labels,
    Py_ssize_t max_scratch=-1,
):
    """The (attribute, label) pairs seen in training, for attributes >= ``n_dense``.

    Returns ``(ptr, tail_labels)``: attribute ``n_dense + r`` was seen with the labels
    ``tail_labels[ptr[r]:ptr[r + 1]]``, in increasing order (StateLayout's tail).

    Two ways, same result.  While one byte per candidate pair (``(n_attributes -
    n_dense) * n_labels``) is at most ``max_scratch`` bytes (default: 4 per entry of
    ``ids``, the size of ``ids`` itself), one pass in token order marks the pairs
    seen.  Beyond that (hundreds of labels) the tokens are visited in label order, a
    counting sort, so a pair is new exactly when its attribute's last label differs:
    the scratch is one int per attribute and per token, but the pass jumps between
    tokens (about 6x slower on CoNLL-2000 chunking, hence not always).
    """
    import numpy as np

    cdef Py_ssize_t K = n_labels
    cdef Py_ssize_t R = n_attributes - n_dense
    cdef Py_ssize_t n_tok = tok_off.shape[0] - 1
    if R < 0 or K < 1 or labels.shape[0] != n_tok or (
            n_tok > 0 and (tok_off[0] < 0 or tok_off[n_tok] > ids.shape[0])):
        raise ValueError("tail_pairs: the arrays do not match")
    first_arr = np.zeros(K + 1, dtype=np.int64)     # tokens of label k: order[first[k]:first[k+1]]
    cdef int64_t[::1] first = first_arr
    cdef int64_t[::1] ptr, last, order
    cdef Py_ssize_t t, r, k, i, p
    cdef int64_t e, y, a
    cdef int bad = 0
    for t in range(n_tok):
        if tok_off[t + 1] < tok_off[t]:
            raise ValueError("tail_pairs: tok_off must not decrease")
    with nogil:
        for t in range(n_tok):
            y = labels[t]
            if y < 0 or y >= K:
                bad = 1
                break
            first[y + 1] += 1
            for e in range(tok_off[t], tok_off[t + 1]):
                if ids[e] < 0 or ids[e] >= n_attributes:
                    bad = 1
                    break
            if bad:
                break
    if bad:
        raise ValueError("tail_pairs: a label or attribute id is out of range")
    if max_scratch < 0:
        max_scratch = 4 * ids.shape[0]
    if R * K <= max_scratch:
        return _tail_pairs_marked(ids, tok_off, labels, n_dense, R, K)
    ptr_arr = np.zeros(R + 1, dtype=np.int64)
    last_arr = np.full(R, -1, dtype=np.int64)
    order_arr = np.empty(n_tok, dtype=np.int64)
    ptr, last, order = ptr_arr, last_arr, order_arr
    with nogil:
        for k in range(K):
            first[k + 1] += first[k]
        for t in range(n_tok):          # first[y] walks to first[y + 1]...
            y = labels[t]
            order[first[y]] = t
            first[y] += 1
        for k in range(K, 0, -1):       # ...so shift it back
            first[k] = first[k - 1]
        first[0] = 0
        for k in range(K):
            for i in range(first[k], first[k + 1]):
                t = order[i]
                for e in range(tok_off[t], tok_off[t + 1]):
                    a = ids[e]
                    if a >= n_dense and last[a - n_dense] != k:
                        last[a - n_dense] = k
                        ptr[a - n_dense + 1] += 1
        for r in range(R):
            ptr[r + 1] += ptr[r]
            last[r] = -1
    out_arr = np.empty(ptr[R], dtype=np.int32)
    fill_arr = np.array(ptr_arr[:R])
    cdef int32_t[::1] out = out_arr
    cdef int64_t[::1] fill = fill_arr
    with nogil:
        for k in range(K):
            for i in range(first[k], first[k + 1]):
                t = order[i]
                for e in range(tok_off[t], tok_off[t + 1]):
                    a = ids[e]
                    if a >= n_dense and last[a - n_dense] != k:
                        last[a - n_dense] = k
                        p = fill[a - n_dense]
                        out[p] = <int32_t> k
                        fill[a - n_dense] = p + 1
    return ptr_arr, out_arr


def balanced_parts(const int32_t[::1] ids, Py_ssize_t n_attributes):
    """The weight part (0 or 1) of each block of ``2**BLOCK_SHIFT`` attribute ids.

    Blocks are taken in id order, each going to the part with fewer entries of
    ``ids`` so far: with ids numbered by decreasing frequency (fastcrf._encoding),
    the two parts get nearly as many entries, of frequent and rare attributes alike.

    Returns
    -------
    ndarray of shape (ceil(n_attributes / 2**BLOCK_SHIFT),), uint8
    """
    import numpy as np

    if n_attributes < 0:
        raise ValueError("balanced_parts: n_attributes must be >= 0")
    cdef Py_ssize_t n_blocks = (n_attributes + (1 << BLOCK_SHIFT) - 1) >> BLOCK_SHIFT
    counts_arr = np.zeros(n_blocks, dtype=np.int64)
    parts_arr = np.zeros(n_blocks, dtype=np.uint8)
    cdef int64_t[::1] counts = counts_arr
    cdef unsigned char[::1] parts = parts_arr
    cdef Py_ssize_t e, k
    cdef int64_t a, load0 = 0, load1 = 0
    cdef int bad = 0
    with nogil:
        for e in range(ids.shape[0]):
            a = ids[e]
            if a < 0 or a >= n_attributes:
                bad = 1
                break
            counts[a >> BLOCK_SHIFT] += 1
        for k in range(n_blocks):
            if load1 < load0:
                parts[k] = 1
                load1 += counts[k]
            else:
                load0 += counts[k]
    if bad:
        raise ValueError("balanced_parts: ids must be in [0, n_attributes)")
    return parts_arr


def split_parts(
    int32_t[::1] ids,                      # INOUT [n_entries] reordered within each token
    double[::1] vals,                      # INOUT [n_entries] or empty, reordered alike
    const int64_t[::1] tok_off,            # IN  [n_tokens + 1]
    int64_t[::1] tok_mid,                  # OUT [n_tokens]
    const unsigned char[::1] block_part,   # IN  [n_blocks] part of each block of ids
                                           #     (balanced_parts)
    int n_threads=1,
):
    """Put each token's part-0 entries before its part-1 entries, in place.

    ``sgd_epoch`` gives each of its two threads the weights of one part (attribute
    ``a`` is in part ``block_part[a >> BLOCK_SHIFT]``); it needs the entries of a
    token grouped by part, with ``tok_mid[t]`` the first of part 1.  Inside a part,
    entries are sorted by attribute id (stable) when the part has at most SORT_MAX of
    them: the dense attributes (low ids) then come before the tail ones, and the
    kernels' branch between the two is predicted.  Only speed depends on that order.
    """
    cdef Py_ssize_t n_tok = tok_off.shape[0] - 1
    cdef bint with_vals = vals.shape[0] > 0
    cdef Py_ssize_t t, longest = 0
    cdef int64_t e, lo, n0, n1
    cdef int32_t* tmp_id
    cdef double* tmp_val
    cdef int32_t* idp = &ids[0] if ids.shape[0] > 0 else NULL
    cdef double* valp = &vals[0] if with_vals else NULL
    cdef int failed = 0
    cdef int* failed_p = &failed     # assigned in prange, a plain int would be private
    cdef const unsigned char* part_of = &block_part[0] if block_part.shape[0] > 0 else NULL
    cdef int64_t n_ids = (<int64_t> block_part.shape[0]) << BLOCK_SHIFT
    if tok_mid.shape[0] != n_tok or (with_vals and vals.shape[0] != ids.shape[0]) or (
            n_tok > 0 and (tok_off[0] < 0 or tok_off[n_tok] > ids.shape[0])):
        raise ValueError("split_parts: the arrays do not match")
    for e in range(ids.shape[0]):
        if not 0 <= idp[e] < n_ids:
            raise ValueError("split_parts: an attribute id has no block in block_part")
    for t in range(n_tok):
        if tok_off[t + 1] < tok_off[t]:
            raise ValueError("split_parts: tok_off must not decrease")
        if tok_off[t + 1] - tok_off[t] > longest:
            longest = tok_off[t + 1] - tok_off[t]
    with nogil, parallel(num_threads=n_threads):
        tmp_id = <int32_t*> malloc((longest + 1) * sizeof(int32_t))
        tmp_val = <double*> malloc((longest + 1) * sizeof(double))
        for t in prange(n_tok, schedule="static"):
            if tmp_id == NULL or tmp_val == NULL:
                failed_p[0] = 1
                continue
            lo = tok_off[t]
            n0 = 0
            n1 = 0
            for e in range(lo, tok_off[t + 1]):
                if part_of[idp[e] >> BLOCK_SHIFT]:
                    tmp_id[n1] = idp[e]
                    if with_vals:
                        tmp_val[n1] = valp[e]
                    n1 = n1 + 1
                else:
                    idp[lo + n0] = idp[e]
                    if with_vals:
                        valp[lo + n0] = valp[e]
                    n0 = n0 + 1
            tok_mid[t] = lo + n0
            for e in range(n1):
                idp[lo + n0 + e] = tmp_id[e]
                if with_vals:
                    valp[lo + n0 + e] = tmp_val[e]
            if n0 <= SORT_MAX:
                _sort_entries(idp, valp, lo, lo + n0)
            if n1 <= SORT_MAX:
                _sort_entries(idp, valp, lo + n0, tok_off[t + 1])
        free(tmp_id)
        free(tmp_val)
    if failed:
        raise MemoryError("fastcrf: could not allocate the split_parts workspace")
