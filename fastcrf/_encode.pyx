# Compiled feature-encoding loop for fastcrf._encoding (python-crfsuite-style features).
#
# Design
# ------
# a) The loop handles exactly the common shapes, with the C API: X a list or tuple of
#    list/tuple sequences whose tokens are lists/tuples of exact str, or dicts with
#    exact str keys and exact str, finite float, int or bool values.  Anything else
#    (str subclasses, bytes, Mappings, nested values, NaN, ints beyond float64, empty
#    or non-list sequences, a corrupted index) makes it stop *before* that sequence,
#    with every buffer back at the sequence's start.  fastcrf._encoding then encodes
#    that one sequence on its pure-Python path, which raises the precise error or
#    handles the odd input, and calls back for the rest.  So this module never
#    formats an error and never needs to guess one.
# b) Output goes straight into the array.array buffers that the Python side owns:
#    ids ('i'), token and sequence offsets ('q'), and the entries whose weight is not
#    1.0 as (position 'q', weight 'd') exceptions.  They grow with amortised
#    over-allocation (resize_smart); no Python object is kept per occurrence.
# c) Names map to ids through ``index`` (str -> int).  A "name:value" pair of a dict
#    token maps through the cache ``by_key[name][value]``: a pair seen before costs
#    two probes with strings that already exist (hashes cached) and builds no string.
# d) With ``grow`` an unseen name gets the next id (appended to ``names``); without,
#    its entry is dropped here, so no -1 ids are written.
# e) Every object the loop inspects is held by an owned reference, and a container's
#    size is re-read after anything that may allocate (a garbage collection can run
#    arbitrary finalizers): the loop bails out rather than index past an end.
#
# Compiler directives live in setup.py, not here (a header would override the
# FASTCRF_CYTHON_DEBUG switch).

from cpython.array cimport array, resize_smart
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.object cimport PyObject, Py_SIZE
from cpython.sequence cimport PySequence_Fast_GET_ITEM
from libc.math cimport isfinite
from libc.stdint cimport INT32_MAX, int64_t

cdef extern from "Python.h":
    # Error-free variants: the loop tests for the error itself and bails.
    double PyLong_AsDouble(object) noexcept
    long PyLong_AsLongAndOverflow(object, int*) noexcept
    PyObject* PyErr_Occurred() noexcept
    void PyErr_Clear() noexcept

# Return codes of the lookups: an id is >= 0.
cdef enum:
    DROP = -1    # unseen, and the vocabulary is fixed: leave the entry out
    BAIL = -2    # the Python path must take this sequence


cdef inline int _push_q(array a, int64_t x) except -1:
    cdef Py_ssize_t n = Py_SIZE(a)
    resize_smart(a, n + 1)
    a.data.as_longlongs[n] = x
    return 0


cdef inline int _push_d(array a, double x) except -1:
    cdef Py_ssize_t n = Py_SIZE(a)
    resize_smart(a, n + 1)
    a.data.as_doubles[n] = x
    return 0


cdef inline Py_ssize_t _index_id(PyObject* p) noexcept:
    # An id read from the index, or BAIL when it is not an int32 >= 0 (then the
    # Python path does whatever Python does with it).
    cdef int overflow = 0
    cdef long v
    if type(<object> p) is not int:
        return BAIL
    v = PyLong_AsLongAndOverflow(<object> p, &overflow)
    if overflow or v < 0 or v > INT32_MAX:
        return BAIL
    return v


cdef class Encoder:
    """One encoding pass: the buffers, the vocabulary being read or grown, the cache.

    ``ids``, ``token_offsets``, ``seq_offsets``, ``x_pos`` and ``x_val`` are the
    array.array buffers the Python path appends to as well (see _encoding._encode).
    """

    cdef readonly array ids             # 'i' [n_entries]
    cdef readonly array token_offsets   # 'q' [n_tokens + 1]
    cdef readonly array seq_offsets     # 'q' [n_sequences + 1]
    cdef readonly array x_pos           # 'q' entries whose weight is not 1.0
    cdef readonly array x_val           # 'd' their weights
    cdef dict index                     # name -> id
    cdef list names                     # id -> name
    cdef dict by_key                    # name -> {str value -> id, or DROP}
    cdef str separator
    cdef bint grow

    def __init__(self, dict index not None, list names not None, bint grow,
                 str separator not None, array ids not None, array token_offsets not None,
                 array seq_offsets not None, array x_pos not None, array x_val not None):
        if (ids.ob_descr.itemsize != sizeof(int)
                or token_offsets.ob_descr.itemsize != sizeof(int64_t)
                or seq_offsets.ob_descr.itemsize != sizeof(int64_t)
                or x_pos.ob_descr.itemsize != sizeof(int64_t)
                or x_val.ob_descr.itemsize != sizeof(double)):
            raise TypeError("Encoder needs arrays of types 'i', 'q', 'q', 'q', 'd'")
        self.index = index
        self.names = names
        self.grow = grow
        self.separator = separator
        self.by_key = {}
        self.ids = ids
        self.token_offsets = token_offsets
        self.seq_offsets = seq_offsets
        self.x_pos = x_pos
        self.x_val = x_val

    def run(self, X, Py_ssize_t start):
        """Encode ``X[start:]`` (X a list or tuple) up to the first sequence that needs
        the Python path; return that sequence's position, or ``len(X)``."""
        cdef Py_ssize_t i = start
        cdef object seq
        if type(X) is not list and type(X) is not tuple:
            raise TypeError("Encoder.run needs a list or tuple")
        while 0 <= i < Py_SIZE(X):
            seq = <object> PySequence_Fast_GET_ITEM(X, i)
            if not self._sequence(seq):
                return i
            i += 1
        return i

    def one(self, seq):
        """Encode one sequence; False (nothing written) when it needs the Python path."""
        return bool(self._sequence(seq))

    cdef int _sequence(self, object seq) except -1:
        # 1 when seq is encoded; 0 when it needs the Python path (buffers rolled back).
        cdef Py_ssize_t n_ids = Py_SIZE(self.ids)
        cdef Py_ssize_t n_tok = Py_SIZE(self.token_offsets)
        cdef Py_ssize_t n_x = Py_SIZE(self.x_pos)
        cdef Py_ssize_t j = 0
        cdef int ok
        cdef object tok
        if type(seq) is not list and type(seq) is not tuple:
            return 0
        if Py_SIZE(seq) == 0:
            return 0
        while j < Py_SIZE(seq):
            tok = <object> PySequence_Fast_GET_ITEM(seq, j)
            if type(tok) is list or type(tok) is tuple:
                ok = self._list_token(tok)
            elif type(tok) is dict:
                ok = self._dict_token(tok)
            else:
                ok = 0
            if not ok:
                resize_smart(self.ids, n_ids)
                resize_smart(self.token_offsets, n_tok)
                resize_smart(self.x_pos, n_x)
                resize_smart(self.x_val, n_x)
                return 0
            _push_q(self.token_offsets, Py_SIZE(self.ids))
            j += 1
        _push_q(self.seq_offsets, Py_SIZE(self.token_offsets) - 1)
        return 1

    cdef Py_ssize_t _lookup(self, object name) except -3:
        # The id of exact str ``name``: from the index, a new one (grow), or DROP.
        cdef PyObject* p = PyDict_GetItemWithError(self.index, name)
        cdef Py_ssize_t aid
        if p != NULL:
            return _index_id(p)
        if not self.grow:
            return DROP
        aid = len(self.names)
        if aid > INT32_MAX:
            return BAIL
        self.names.append(name)
        self.index[name] = aid
        return aid

    cdef Py_ssize_t _pair_id(self, object key, object value) except -3:
        # The id of "key:value" (both exact str), through the by_key cache.
        cdef PyObject* p = PyDict_GetItemWithError(self.by_key, key)
        cdef dict sub
        cdef Py_ssize_t aid
        cdef int overflow = 0
        if p == NULL:
            sub = {}
            self.by_key[key] = sub
        else:
            sub = <dict> p
        p = PyDict_GetItemWithError(sub, value)
        if p != NULL:
            return PyLong_AsLongAndOverflow(<object> p, &overflow)  # ours: DROP or an id
        aid = self._lookup(key + self.separator + value)
        if aid != BAIL:
            sub[value] = aid
        return aid

    cdef int _list_token(self, object tok) except -1:
        # A list/tuple of exact str; 1 when appended, 0 to bail.
        cdef Py_ssize_t m = Py_SIZE(tok), n = Py_SIZE(self.ids), k, c = 0
        cdef Py_ssize_t aid
        cdef int* out
        cdef object name
        resize_smart(self.ids, n + m)
        out = self.ids.data.as_ints + n
        for k in range(m):
            if Py_SIZE(tok) != m:
                return 0
            name = <object> PySequence_Fast_GET_ITEM(tok, k)
            if type(name) is not str:
                return 0
            aid = self._lookup(name)
            if aid >= 0:
                out[c] = <int> aid
                c += 1
            elif aid == BAIL:
                return 0
        resize_smart(self.ids, n + c)
        return 1

    cdef int _dict_token(self, dict tok) except -1:
        # A dict with exact str keys and exact str/float/int/bool values; 1 when
        # appended, 0 to bail.
        cdef Py_ssize_t m = len(tok), n = Py_SIZE(self.ids), pos = 0, c = 0
        cdef Py_ssize_t aid
        cdef PyObject* kp
        cdef PyObject* vp
        cdef object key, value
        cdef double x
        resize_smart(self.ids, n + m)
        while PyDict_Next(tok, &pos, &kp, &vp):
            key = <object> kp
            value = <object> vp
            if c == m or type(key) is not str:
                return 0
            if type(value) is str:
                x = 1.0
                aid = self._pair_id(key, value)
            else:
                if type(value) is float:
                    x = PyFloat_AS_DOUBLE(value)
                    if not isfinite(x):
                        return 0
                elif type(value) is int:
                    x = PyLong_AsDouble(value)
                    if x == -1.0 and PyErr_Occurred() != NULL:
                        PyErr_Clear()  # too large for a float64: Python says so
                        return 0
                elif type(value) is bool:
                    x = 1.0 if value is True else 0.0
                else:
                    return 0
                aid = self._lookup(key)
            if aid == BAIL:
                return 0
            if aid >= 0:
                if x != 1.0:
                    _push_q(self.x_pos, n + c)
                    _push_d(self.x_val, x)
                # The dict may have grown behind our back (see e): c < m was checked.
                self.ids.data.as_ints[n + c] = <int> aid
                c += 1
        resize_smart(self.ids, n + c)
        return 1
