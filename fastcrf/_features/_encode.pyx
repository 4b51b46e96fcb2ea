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
#    over-allocation (resize_smart); nothing is kept per occurrence.
# c) Names are looked up in Tables: open addressing over 32-byte slots (hash tag,
#    id, name, offset of a packed copy of the name's characters), linear probing, at
#    most 2/3 full; names are hashed by fcrf_str_hash, not CPython's SipHash.  A
#    token's lookups are independent, so the token is done in three passes: hash
#    every name and prefetch its slot; prefetch the characters each slot holds
#    (needed for the string comparison); then resolve.  The cache misses of one token then overlap instead
#    of queueing, which is most of the speed-up: a vocabulary of 10^5-10^6 names
#    does not fit in cache, and a dict lookup costs two or three dependent misses.
#    Without ``grow``, names are looked up in ``vocab``, a read-only Table of the
#    whole vocabulary (name_table, Table.add_names), or else in the dict ``index``
#    through the pass's own cache.  With ``grow``, the pass's cache holds every name
#    (the Python path adds names through ``id_of``), so a name it lacks is new: it
#    gets the next id and is appended to ``names`` (and added to ``index``, when
#    one is given: fit_encode keeps no dict).  After the pass, the cache is the
#    vocabulary's name table: Table.renumber follows the vocabulary when its ids
#    change (min_freq, sort_by_frequency) and drops the pairs (see d).
# d) A "key:value" pair of a dict token with a str value is cached as the pair
#    (key, value), so a pair seen before builds no string.
# e) Without ``grow`` an unseen name is cached as DROP and its entries are left out
#    here, so no -1 ids are written.
# f) Every object the loop inspects is held by an owned reference while it is used,
#    and containers are re-measured before they are indexed: a garbage collection
#    (which any allocation may start) can run arbitrary finalizers.
# g) Runs of sequences that are lists/tuples of list/tuple tokens take a faster path:
#    their tokens are listed, then OpenMP threads work on their names in C while this
#    thread keeps the GIL and runs no Python code (so no object can change or go
#    away, and no reference need be taken).  Prediction (a vocabulary table, no
#    growth; Encoder._run_lists) looks the names up there (fcrf_lookup_tokens);
#    fitting (Encoder._run_lists_grow) only hashes them there (fcrf_hash_tokens) and
#    numbers them in order here, prefetching ahead.  Any other sequence goes through
#    the loop above.  CoNLL-2000: prediction encoding 0.057 -> 0.028 s, fitting
#    0.31 -> 0.25 s.
#
# Compiler directives live in setup.py, not here (a header would override the
# FASTCRF_CYTHON_DEBUG switch).

cimport cython
from cpython.array cimport array, resize_smart
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.object cimport PyObject, Py_SIZE
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.sequence cimport PySequence_Fast_GET_ITEM
from libc.math cimport isfinite
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

cdef extern from "Python.h":
    # Error-free variants: the loop tests for the error itself and bails.
    double PyLong_AsDouble(object) noexcept
    long PyLong_AsLongAndOverflow(object, int*) noexcept
    PyObject* PyErr_Occurred() noexcept
    void PyErr_Clear() noexcept

cdef extern from "_names.h":
    void FCRF_PREFETCH(const void*) noexcept nogil
    int fcrf_str_ready(PyObject*) noexcept
    PyObject** fcrf_list_items(PyObject*) noexcept
    void fcrf_advise_huge(void*, size_t) noexcept
    size_t fcrf_key_size(PyObject*) noexcept
    char* fcrf_key_put(char*, PyObject*) noexcept
    const char* fcrf_key_match(const char*, PyObject*) noexcept
    const char* fcrf_key_skip(const char*) noexcept
    ctypedef struct Slot "fcrf_slot":
        uint32_t tag
        int32_t id
        PyObject* a
        PyObject* b
        uint64_t key
    void fcrf_seed_hash(uint64_t seed) noexcept
    uint64_t fcrf_hash_k0
    Py_hash_t fcrf_str_hash(PyObject*) noexcept
    void fcrf_hash_tokens(PyObject** tokens, const int64_t* item_off, Py_ssize_t n_tok,
                          PyObject** flat, Py_hash_t* hashes, unsigned char* bad,
                          int n_threads) noexcept
    void fcrf_lookup_tokens(PyObject** tokens, const int64_t* item_off, Py_ssize_t n_tok,
                            const Slot* slots, size_t mask, const char* arena,
                            int32_t* out, unsigned char* bad, int n_threads) noexcept

# Ids are >= 0; the resolvers also return these.
cdef enum:
    DROP = -1    # unseen, and the vocabulary is fixed: leave the entry out
    BAIL = -2    # the Python path must take this sequence

cdef enum:
    MIN_SLOTS = 1024
    # Fitting's fast path (Encoder._run_lists_grow) takes this many names at a time
    # (its hashes and string pointers then stay in cache), and prefetches a name's
    # slot, string and key this many names before resolving it.
    GROW_CHUNK = 16384
    AHEAD = 32
    # Prediction's fast path (Encoder._run_lists) takes at most this many names at a
    # time, which bounds its buffers and the work redone when a run stops early.
    LOOKUP_CHUNK = 1 << 16
    # After a fast pass stopped at an item only the serial loop takes (np.str_, a str
    # subclass, bytes), that many sequences go through the serial loop before the
    # next try, twice as many after each further stop, up to MAX_SERIAL.
    MAX_SERIAL = 1 << 12
    # Positions of dict-token keys whose hashes an Encoder keeps (_key_hash).
    KEY_CACHE = 64


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


cdef bint _seeded = False


def _seed_hash(uint64_t seed):
    """Set the keys of fcrf_str_hash from ``seed``; only the first call counts
    (fastcrf._encoding makes it at import), as every Table of the process must hash
    alike."""
    global _seeded
    if not _seeded:
        fcrf_seed_hash(seed)
        _seeded = True


def fcrf_seed_for_tests():
    """A key of fcrf_str_hash (for the tests)."""
    return fcrf_hash_k0


def fcrf_hash_for_tests(str name not None):
    """fcrf_str_hash of ``name`` (for the tests)."""
    return _name_hash(name)


cdef inline Py_hash_t _name_hash(str name) except? -1:
    # fcrf_str_hash of an exact str from Python code.
    if fcrf_str_ready(<PyObject*> name) < 0:
        raise MemoryError()
    return fcrf_str_hash(<PyObject*> name)


cdef inline Py_hash_t _pair_hash(Py_hash_t ha, Py_hash_t hb) noexcept nogil:
    cdef uint64_t h = <uint64_t> ha * 0x9E3779B97F4A7C15ULL + <uint64_t> hb
    return <Py_hash_t> (h ^ (h >> 29))


cdef inline Py_ssize_t _as_id(PyObject* p) noexcept:
    # An id read from the index, or BAIL when it is not an int in [0, 2**31) (the
    # Python path then does whatever Python does with it).
    cdef int overflow = 0
    cdef long v
    if type(<object> p) is not int:
        return BAIL
    v = PyLong_AsLongAndOverflow(<object> p, &overflow)
    if overflow or v < 0 or v > INT32_MAX:
        return BAIL
    return v


cdef inline size_t _n_slots(Py_ssize_t n) noexcept:
    # The fewest slots (a power of two, at least MIN_SLOTS) that hold n entries;
    # beyond 2**32 slots, a size that _alloc_slots refuses.
    cdef size_t size = MIN_SLOTS
    cdef size_t m
    if n > (<Py_ssize_t> 1) << 32:
        return (<size_t> 1) << 33
    m = <size_t> n if n > 0 else 0
    while 3 * m > 2 * size:
        size *= 2
    return size


cdef inline Slot* _alloc_slots(size_t n) except NULL:
    cdef Slot* slots
    if n > (<size_t> 1) << 32:
        raise MemoryError("fastcrf: too many attributes for the encoding table")
    slots = <Slot*> calloc(n, sizeof(Slot))
    if slots == NULL:
        raise MemoryError()
    fcrf_advise_huge(slots, n * sizeof(Slot))
    return slots


@cython.final
cdef class Table:
    """(name) or (key, str value) -> id: open addressing, linear probing, at most 2/3
    full.  Holds a reference to every string it keys on.  ``size_hint`` entries fit
    without a resize.

    A lookup compares characters with a copy of each key in ``arena``, not with the
    key's str object: those objects lie wherever the input put them (fit keeps the
    first occurrence of each name, scattered over the whole training set), so each
    comparison was a cache and TLB miss; the copies are packed in one block.  (With
    the names of a vocabulary copied into fresh contiguous str, tagging CoNLL-2000's
    test set encoded 20% faster, which is what the arena does for every table.)
    """

    cdef Slot* slots   # [mask + 1]
    cdef size_t mask
    cdef size_t used
    cdef readonly size_t n_pairs   # entries that are (key, str value) pairs
    cdef char* arena   # [arena_cap] key records (fcrf_key_put), 8-byte aligned
    cdef size_t arena_used
    cdef size_t arena_cap

    def __cinit__(self, Py_ssize_t size_hint=0):
        cdef size_t n = _n_slots(size_hint)
        self.slots = _alloc_slots(n)
        self.mask = n - 1

    def __dealloc__(self):
        cdef size_t i
        if self.slots != NULL:
            for i in range(self.mask + 1):
                Py_XDECREF(self.slots[i].a)
                Py_XDECREF(self.slots[i].b)
            free(self.slots)
        free(self.arena)

    @property
    def n_names(self):
        """Number of names (entries that are not pairs)."""
        return self.used - self.n_pairs

    cdef inline Slot* first(self, Py_hash_t h) noexcept:
        return self.slots + (<size_t> <uint32_t> h & self.mask)

    cdef inline Slot* find(self, Py_hash_t h, PyObject* a, PyObject* b) noexcept:
        # The slot holding (a, b), or the empty slot where it would go.
        cdef uint32_t tag = <uint32_t> h
        cdef size_t i = tag & self.mask
        cdef Slot* s
        while True:
            s = self.slots + i
            if s.a == NULL:
                return s
            if s.tag == tag and (s.b == NULL) == (b == NULL) and (
                    (s.a == a and s.b == b) or self.key_equals(s, a, b)):
                return s
            i = (i + 1) & self.mask

    cdef inline bint key_equals(self, const Slot* s, PyObject* a, PyObject* b) noexcept:
        # Whether slot s holds (a, b), a and b not both the objects it holds.  A pair
        # of a dict token usually has the very key object the slot holds.
        cdef const char* p = self.arena + s.key
        p = fcrf_key_skip(p) if s.a == a else fcrf_key_match(p, a)
        return p != NULL and (b == NULL or s.b == b or fcrf_key_match(p, b) != NULL)

    cdef inline const char* key_of(self, const Slot* s) noexcept:
        return self.arena + s.key

    cdef inline int reserve(self) except -1:
        # Room for one more entry (find's slot is stale after a resize).
        if 3 * (self.used + 1) > 2 * (self.mask + 1):
            self._grow()
        return 0

    cdef inline int fill(self, Slot* s, Py_hash_t h, PyObject* a, PyObject* b,
                         Py_ssize_t aid) except -1:
        # Store (a, b) -> aid in s, the empty slot find returned after reserve.
        cdef size_t size = fcrf_key_size(a) + (fcrf_key_size(b) if b != NULL else 0)
        cdef char* p
        if self.arena_used + size > self.arena_cap:
            self._grow_arena(size)
        p = fcrf_key_put(self.arena + self.arena_used, a)
        if b != NULL:
            fcrf_key_put(p, b)
        Py_INCREF(<object> a)
        if b != NULL:
            Py_INCREF(<object> b)
            self.n_pairs += 1
        s.tag = <uint32_t> h
        s.id = <int32_t> aid
        s.a = a
        s.b = b
        s.key = self.arena_used
        self.arena_used += size
        self.used += 1
        return 0

    cdef int _grow_arena(self, size_t size) except -1:
        cdef size_t cap = max(2 * self.arena_cap, self.arena_used + size, 1 << 16)
        cdef void* p = realloc(self.arena, cap)
        if p == NULL:
            raise MemoryError()
        self.arena = <char*> p
        self.arena_cap = cap
        fcrf_advise_huge(self.arena, cap)
        return 0

    cdef int insert(self, Py_hash_t h, PyObject* a, PyObject* b, Py_ssize_t aid) except -1:
        # Map (a, b) -> aid; (a, b) is not in the table.
        self.reserve()
        self.fill(self.find(h, a, b), h, a, b, aid)
        return 0

    cdef int _grow(self) except -1:
        cdef size_t n = 2 * (self.mask + 1)
        free(self._move(_alloc_slots(n), n, NULL, False))
        return 0

    cdef Slot* _move(self, Slot* new, size_t n, const int32_t* new_id,
                     bint names_only) noexcept:
        # Move the entries into ``new`` ([n], empty) and use it; return the old slots,
        # for the caller to free.  ``names_only`` leaves the pairs out; with
        # ``new_id``, a name gets the id new_id[id] and is left out when that is < 0.
        cdef Slot* old = self.slots
        cdef size_t i, j
        cdef Slot s
        for i in range(self.mask + 1):
            s = old[i]
            if s.a == NULL or (names_only and s.b != NULL):
                continue
            if new_id != NULL:
                if new_id[s.id] < 0:
                    continue
                s.id = new_id[s.id]
            j = s.tag & (n - 1)
            while new[j].a != NULL:
                j = (j + 1) & (n - 1)
            new[j] = s
        self.slots = new
        self.mask = n - 1
        return old

    def add_names(self, list names not None):
        """Map ``names[i]`` -> ``i``, in order, up to the first name that is not an
        exact str or is in the table already; return its position, or ``len(names)``
        when every name was added."""
        cdef Py_ssize_t i = 0
        cdef PyObject* p
        cdef Py_hash_t h
        cdef Slot* s
        if Py_SIZE(names) > INT32_MAX:
            return 0
        while i < Py_SIZE(names):
            p = PySequence_Fast_GET_ITEM(names, i)
            if i + 8 < Py_SIZE(names):
                FCRF_PREFETCH(PySequence_Fast_GET_ITEM(names, i + 8))
            if type(<object> p) is not str or fcrf_str_ready(p) < 0:
                PyErr_Clear()
                return i
            h = fcrf_str_hash(p)  # exact and ready
            self.reserve()
            s = self.find(h, p, NULL)
            if s.a != NULL:
                return i
            self.fill(s, h, p, NULL, i)
            i += 1
        return i

    def lookup(self, str name not None):
        """The id of exact str ``name``, or -1 when the table lacks it."""
        cdef Slot* s
        if type(name) is not str:
            raise TypeError("lookup needs an exact str")
        s = self.find(_name_hash(name), <PyObject*> name, NULL)
        return -1 if s.a == NULL or s.id < 0 else s.id

    def renumber(self, const int32_t[::1] new_id):
        """Give every name the id ``new_id[id]`` (None: keep the ids), leaving out the
        names whose new id is negative, and leave out the (key, value) pairs: the
        table then maps names only.  In place when nothing is left out."""
        cdef const int32_t* to = NULL
        cdef Py_ssize_t n = 0
        cdef size_t i, size, n_old, n_keep = 0
        cdef Slot* s
        cdef Slot* old
        if new_id is not None:
            n = new_id.shape[0]
            if n > 0:
                to = &new_id[0]
        for i in range(self.mask + 1):
            s = self.slots + i
            if s.a == NULL:
                continue
            if new_id is not None and not 0 <= s.id < n:
                raise ValueError(f"renumber: the table holds id {s.id}, not in [0, {n})")
            if s.b == NULL and (to == NULL or to[s.id] >= 0):
                n_keep += 1
        if n_keep == self.used:
            if to != NULL:
                for i in range(self.mask + 1):
                    s = self.slots + i
                    if s.a != NULL:
                        s.id = to[s.id]
            return
        size = _n_slots(n_keep)
        n_old = self.mask + 1
        old = self._move(_alloc_slots(size), size, to, True)
        self.used = n_keep
        self.n_pairs = 0
        # Release what was left out (exact str: no code runs).
        for i in range(n_old):
            s = old + i
            if s.a != NULL and (s.b != NULL or (to != NULL and to[s.id] < 0)):
                Py_XDECREF(s.a)
                Py_XDECREF(s.b)
        free(old)
        self._compact_arena()

    cdef int _compact_arena(self) except -1:
        # Keep only the keys of the entries left (renumber drops the pairs and, with
        # min_freq, rare names: a fit's vocabulary table would carry their bytes).
        cdef size_t i, used = 0, n
        cdef const char* p
        cdef char* arena
        for i in range(self.mask + 1):
            if self.slots[i].a != NULL:
                p = self.arena + self.slots[i].key
                used += <size_t> (fcrf_key_skip(fcrf_key_skip(p) if self.slots[i].b != NULL
                                                else p) - p)
        arena = <char*> malloc(max(used, 8))
        if arena == NULL:
            raise MemoryError()
        fcrf_advise_huge(arena, max(used, 8))
        used = 0
        for i in range(self.mask + 1):
            if self.slots[i].a != NULL:
                p = self.arena + self.slots[i].key
                n = <size_t> (fcrf_key_skip(fcrf_key_skip(p) if self.slots[i].b != NULL
                                            else p) - p)
                memcpy(arena + used, p, n)
                self.slots[i].key = used
                used += n
        free(self.arena)
        self.arena = arena
        self.arena_used = used
        self.arena_cap = max(used, 8)
        return 0


def name_table(dict index not None):
    """A :class:`Table` of the names of ``index`` (str -> id), for Encoder's ``vocab``;
    None when ``index`` holds anything but exact str names and ids in [0, 2**31)."""
    cdef Table t = Table(len(index))
    for name, aid in index.items():
        if type(name) is not str or _as_id(<PyObject*> aid) < 0:
            return None
        t.insert(_name_hash(name), <PyObject*> name, NULL, aid)
    return t


@cython.final
cdef class Encoder:
    """One encoding pass: its buffers, the vocabulary it reads or grows, its cache.

    ``ids``, ``token_offsets``, ``seq_offsets``, ``x_pos`` and ``x_val`` are the
    array.array buffers (types 'i', 'q', 'q', 'q', 'd') that the Python path appends
    to as well (see _encoding._encode).  Without ``grow``, names are looked up in
    ``table`` (a name_table) or, when it is None, in the dict ``index``.  With
    ``grow``, ``table`` (empty) or a new Table is the pass's cache, which ends up
    holding every name with its id; ``index``, when not None, is kept up to date too.
    """

    cdef readonly array ids             # [n_entries]
    cdef readonly array token_offsets   # [n_tokens + 1]
    cdef readonly array seq_offsets     # [n_sequences + 1]
    cdef readonly array x_pos           # entries whose weight is not 1.0
    cdef readonly array x_val           # their weights
    cdef dict index                     # name -> id, or None
    cdef list names                     # id -> name
    cdef str separator
    cdef bint grow
    cdef Table cache                    # this pass's names and pairs
    cdef Table vocab                    # all the names of the vocabulary, or None
    # [cap] one token's items: a, b and hash as in Slot, and the weight
    cdef PyObject** tok_a
    cdef PyObject** tok_b
    cdef Py_hash_t* tok_h
    cdef double* tok_x
    cdef Py_ssize_t cap
    cdef bint _stopped_on_item      # the last _run_lists* stopped at an item not exact str
    cdef Py_ssize_t _serial         # sequences for the serial loop before the next fast try
    cdef Py_ssize_t _backoff        # the next _serial after a fast pass stops on an item
    cdef PyObject* key_obj[KEY_CACHE]   # _key_hash's keys (owned references), by position
    cdef Py_hash_t key_hash[KEY_CACHE]
    cdef int n_threads              # for the runs of list tokens (_run_lists*)

    def __cinit__(self, dict index, list names not None, bint grow,
                  str separator not None, array ids not None, array token_offsets not None,
                  array seq_offsets not None, array x_pos not None, array x_val not None,
                  Table table=None, int n_threads=1):
        if (ids.ob_descr.itemsize != sizeof(int)
                or token_offsets.ob_descr.itemsize != sizeof(int64_t)
                or seq_offsets.ob_descr.itemsize != sizeof(int64_t)
                or x_pos.ob_descr.itemsize != sizeof(int64_t)
                or x_val.ob_descr.itemsize != sizeof(double)):
            raise TypeError("Encoder needs arrays of types 'i', 'q', 'q', 'q', 'd'")
        if n_threads < 1:
            raise ValueError("n_threads must be >= 1")
        self.n_threads = n_threads
        self._backoff = 1
        self.index = index
        self.names = names
        self.grow = grow
        self.separator = separator
        self.ids = ids
        self.token_offsets = token_offsets
        self.seq_offsets = seq_offsets
        self.x_pos = x_pos
        self.x_val = x_val
        if grow:
            if table is not None and table.used != 0:
                raise ValueError("a growing Encoder needs an empty table")
            self.cache = Table() if table is None else table
            if index is not None:
                # Every name of the index is cached (see _index_id).
                for name, aid in index.items():
                    if type(name) is not str or _as_id(<PyObject*> aid) < 0:
                        raise ValueError("index must map str names to ids in [0, 2**31)")
                    self.cache.insert(_name_hash(name), <PyObject*> name, NULL, aid)
        else:
            if table is None and index is None:
                raise ValueError("Encoder needs an index or a table")
            # A read-only table of the whole vocabulary, shared between passes.
            self.vocab = table
            self.cache = Table()

    def __dealloc__(self):
        cdef Py_ssize_t k
        free(self.tok_a)
        free(self.tok_b)
        free(self.tok_h)
        free(self.tok_x)
        for k in range(KEY_CACHE):
            Py_XDECREF(self.key_obj[k])

    cdef inline Py_hash_t _key_hash(self, PyObject* key, Py_ssize_t g) noexcept:
        # The hash of the g-th key of a dict token (an exact ready str).  Tokens of a
        # feature extractor repeat the same key objects in the same order, whose
        # hashes (CPython caches its own in the str; fastcrf's is not) are kept here
        # per position, with a reference so that the object cannot be another one.
        cdef Py_hash_t h
        if g < KEY_CACHE and self.key_obj[g] == key:
            return self.key_hash[g]
        h = fcrf_str_hash(key)
        if g < KEY_CACHE:
            Py_INCREF(<object> key)
            Py_XDECREF(self.key_obj[g])   # an exact str: freeing it runs no code
            self.key_obj[g] = key
            self.key_hash[g] = h
        return h

    def run(self, X, Py_ssize_t start):
        """Encode ``X[start:]`` (X a list or tuple) up to the first sequence that needs
        the Python path; return that sequence's position, or ``len(X)``."""
        cdef Py_ssize_t i = start
        cdef object seq
        if type(X) is not list and type(X) is not tuple:
            raise TypeError("Encoder.run needs a list or tuple")
        while 0 <= i < Py_SIZE(X):
            if self._serial == 0 and (
                    self.vocab is not None or (self.grow and self.index is None)):
                if self.vocab is not None:
                    i = self._run_lists(X, i)
                else:
                    i = self._run_lists_grow(X, i)
                # Input whose items the fast path cannot take would otherwise be
                # listed (and hashed) again and again, for nothing: the state is
                # kept across calls, as the Python path calls run once per sequence
                # it takes.
                if self._stopped_on_item:
                    self._serial = self._backoff
                    self._backoff = min(2 * self._backoff, MAX_SERIAL)
                else:
                    self._backoff = 1
                if i >= Py_SIZE(X):
                    break
            elif self._serial > 0:
                self._serial -= 1
            seq = <object> PySequence_Fast_GET_ITEM(X, i)
            if not self._sequence(seq):
                return i
            i += 1
        return i

    def one(self, seq):
        """Encode one sequence; False (nothing written) when it needs the Python path."""
        return bool(self._sequence(seq))

    def id_of(self, str name not None):
        """The id of a name (exact str) for the Python path: as the index says, a new
        one (grow), or -1 (unseen)."""
        cdef Py_ssize_t aid
        if type(name) is not str:
            raise TypeError("id_of needs an exact str")
        aid = self._resolve(_name_hash(name), <PyObject*> name, NULL)
        if aid == BAIL:
            if self.grow:
                raise ValueError("fastcrf: more than 2**31 - 1 distinct attributes")
            return self.index[name]  # a corrupted index: whatever it holds
        return aid

    cdef Py_ssize_t _list_run(self, object X, Py_ssize_t start, int64_t max_items,
                              Py_ssize_t* n_tok_out, int64_t* n_items_out) except -1:
        # The end of the run of sequences from X[start] that are non-empty lists/tuples
        # of list/tuple tokens, stopping once max_items names are in it (always taking
        # at least one sequence); its token and name counts.
        cdef Py_ssize_t i = start, j, n_tok = 0
        cdef int64_t n_items = 0, m
        cdef PyObject* seq
        cdef PyObject* tok
        while i < Py_SIZE(X) and n_items < max_items:
            seq = PySequence_Fast_GET_ITEM(X, i)
            if (type(<object> seq) is not list and type(<object> seq) is not tuple) or (
                    Py_SIZE(<object> seq) == 0):
                break
            m = 0
            for j in range(Py_SIZE(<object> seq)):
                tok = PySequence_Fast_GET_ITEM(<object> seq, j)
                if type(<object> tok) is not list and type(<object> tok) is not tuple:
                    break
                m += Py_SIZE(<object> tok)
            else:
                n_items += m
                n_tok += Py_SIZE(<object> seq)
                i += 1
                continue
            break
        n_tok_out[0] = n_tok
        n_items_out[0] = n_items
        return i

    cdef int _list_tokens(self, object X, Py_ssize_t start, Py_ssize_t end,
                          PyObject** tokens, int64_t* item_off) except -1:
        # The tokens of X[start:end] (a run of _list_run) and the offsets of their names.
        cdef Py_ssize_t i, j, t = 0
        cdef PyObject* seq
        cdef PyObject* tok
        item_off[0] = 0
        for i in range(start, end):
            seq = PySequence_Fast_GET_ITEM(X, i)
            for j in range(Py_SIZE(<object> seq)):
                tok = PySequence_Fast_GET_ITEM(<object> seq, j)
                tokens[t] = tok
                item_off[t + 1] = item_off[t] + Py_SIZE(<object> tok)
                t += 1
        return 0

    cdef Py_ssize_t _clean_end(self, object X, Py_ssize_t start, Py_ssize_t end,
                               const unsigned char* bad) noexcept:
        # The first sequence of the run X[start:end] with a token that bad marks (an
        # item not an exact ready str; _stopped_on_item is then set), or end.
        cdef Py_ssize_t i, j, n_seq, t = 0
        for i in range(start, end):
            n_seq = Py_SIZE(<object> PySequence_Fast_GET_ITEM(X, i))
            for j in range(n_seq):
                if bad[t + j]:
                    self._stopped_on_item = 1
                    return i
            t += n_seq
        return end

    cdef Py_ssize_t _tokens_before(self, object X, Py_ssize_t start,
                                   Py_ssize_t end) noexcept:
        # The tokens of the sequences X[start:end].
        cdef Py_ssize_t i, n = 0
        for i in range(start, end):
            n += Py_SIZE(<object> PySequence_Fast_GET_ITEM(X, i))
        return n

    cdef Py_ssize_t _run_lists_grow(self, object X, Py_ssize_t start) except -1:
        # Fitting's fast path: as _run_lists, but the names are only hashed on the
        # threads (fcrf_hash_tokens); they are resolved here, in order, since new names
        # get ids in first-seen order.  The hashing threads take the first touch of
        # each (fresh) string; this loop prefetches a name's slot, string and key
        # AHEAD names before it needs them.  Runs no Python code: no reference is
        # taken but by the table, for the names it keeps.  Returns the position of the
        # first sequence left for run's loop.
        cdef int64_t n_items = 0
        cdef Py_ssize_t n_tok = 0
        cdef Py_ssize_t end = self._list_run(X, start, GROW_CHUNK, &n_tok, &n_items)
        cdef PyObject** tokens = NULL
        cdef int64_t* item_off = NULL
        cdef PyObject** flat = NULL
        cdef Py_hash_t* hashes = NULL
        cdef unsigned char* bad = NULL
        cdef Py_ssize_t i, j, t, n_seq, n_ids, n_tok0, q, qa, c = 0, c0
        cdef Py_ssize_t aid
        cdef Table cache = self.cache
        cdef Slot* s
        self._stopped_on_item = 0
        if end == start:
            return start
        try:
            tokens = <PyObject**> malloc(n_tok * sizeof(PyObject*))
            item_off = <int64_t*> malloc((n_tok + 1) * sizeof(int64_t))
            flat = <PyObject**> malloc(max(n_items, 1) * sizeof(PyObject*))
            hashes = <Py_hash_t*> malloc(max(n_items, 1) * sizeof(Py_hash_t))
            bad = <unsigned char*> malloc(n_tok)
            if tokens == NULL or item_off == NULL or flat == NULL or hashes == NULL or (
                    bad == NULL):
                raise MemoryError()
            self._list_tokens(X, start, end, tokens, item_off)
            fcrf_hash_tokens(tokens, item_off, n_tok, flat, hashes, bad,
                             self.n_threads if n_items >= 4096 else 1)
            end = self._clean_end(X, start, end, bad)
            n_items = item_off[self._tokens_before(X, start, end)]
            n_ids = Py_SIZE(self.ids)
            resize_smart(self.ids, n_ids + n_items)
            t = 0
            q = 0
            for i in range(start, end):
                n_seq = Py_SIZE(<object> PySequence_Fast_GET_ITEM(X, i))
                n_tok0 = Py_SIZE(self.token_offsets)
                c0 = c
                for j in range(n_seq):
                    while q < item_off[t + 1]:
                        qa = q + AHEAD
                        if qa < n_items:
                            FCRF_PREFETCH(cache.first(hashes[qa]))
                            FCRF_PREFETCH(flat[qa])
                        qa = q + AHEAD // 2
                        if qa < n_items:
                            s = cache.first(hashes[qa])
                            if s.a != NULL and s.tag == <uint32_t> hashes[qa]:
                                FCRF_PREFETCH(cache.key_of(s))
                        aid = self._resolve(hashes[q], flat[q], NULL)
                        if aid < 0:
                            # BAIL (more than 2**31 - 1 names): run's loop takes this
                            # sequence, and the Python path says so.
                            resize_smart(self.token_offsets, n_tok0)
                            resize_smart(self.ids, n_ids + c0)
                            return i
                        self.ids.data.as_ints[n_ids + c] = <int> aid
                        c += 1
                        q += 1
                    _push_q(self.token_offsets, n_ids + c)
                    t += 1
                _push_q(self.seq_offsets, Py_SIZE(self.token_offsets) - 1)
            resize_smart(self.ids, n_ids + c)
        finally:
            free(tokens)
            free(item_off)
            free(flat)
            free(hashes)
            free(bad)
        return end

    cdef Py_ssize_t _run_lists(self, object X, Py_ssize_t start) except -1:
        # Prediction's fast path: encode X[start:] up to the first sequence that is
        # not a non-empty list/tuple of list/tuple tokens of exact str (or after about
        # LOOKUP_CHUNK names), looking the names up in the read-only vocab table on
        # several threads (fcrf_lookup_tokens); return the position of the first
        # sequence left, for run's loop.  Only the vocabulary table is read: every
        # name it lacks is dropped, which is what _sequence does too without grow.
        cdef int64_t n_items = 0
        cdef Py_ssize_t n_tok = 0
        cdef Py_ssize_t end = self._list_run(X, start, LOOKUP_CHUNK, &n_tok, &n_items)
        cdef Py_ssize_t i, j, t, q, c
        cdef PyObject** tokens = NULL
        cdef int64_t* item_off = NULL
        cdef int32_t* out = NULL
        cdef unsigned char* bad = NULL
        cdef Py_ssize_t n_ids
        cdef int n_threads
        cdef int32_t aid
        self._stopped_on_item = 0
        if end == start:
            return start
        try:
            tokens = <PyObject**> malloc(n_tok * sizeof(PyObject*))
            item_off = <int64_t*> malloc((n_tok + 1) * sizeof(int64_t))
            out = <int32_t*> malloc(max(n_items, 1) * sizeof(int32_t))
            bad = <unsigned char*> malloc(n_tok)
            if tokens == NULL or item_off == NULL or out == NULL or bad == NULL:
                raise MemoryError()
            self._list_tokens(X, start, end, tokens, item_off)
            # Threads pay off from ~10^4 names up (starting them costs ~10 us).
            n_threads = self.n_threads if n_items >= 16384 else 1
            fcrf_lookup_tokens(tokens, item_off, n_tok, self.vocab.slots, self.vocab.mask,
                               self.vocab.arena, out, bad, n_threads)
            # Append the sequences up to the first with a token that is not all exact
            # ready str (run's loop then takes that one).
            end = self._clean_end(X, start, end, bad)
            n_ids = Py_SIZE(self.ids)
            resize_smart(self.ids, n_ids + n_items)
            c = 0
            t = 0
            for i in range(start, end):
                for j in range(Py_SIZE(<object> PySequence_Fast_GET_ITEM(X, i))):
                    for q in range(item_off[t], item_off[t + 1]):
                        aid = out[q]
                        if aid >= 0:
                            self.ids.data.as_ints[n_ids + c] = aid
                            c += 1
                    _push_q(self.token_offsets, n_ids + c)
                    t += 1
                _push_q(self.seq_offsets, Py_SIZE(self.token_offsets) - 1)
            resize_smart(self.ids, n_ids + c)
        finally:
            free(tokens)
            free(item_off)
            free(out)
            free(bad)
        return end

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
            ok = self._token(tok)
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

    # -- one token ---------------------------------------------------------------

    cdef int _token(self, object tok) except -1:
        # Append one token's entries: 1 when done, 0 to bail (the caller rolls back).
        cdef Py_ssize_t g, q, c = 0, n = Py_SIZE(self.ids)
        cdef Py_ssize_t aid
        cdef int ok = 1
        cdef Slot* s
        cdef Table t
        if type(tok) is list or type(tok) is tuple:
            g = self._gather_list(tok)
        elif type(tok) is dict:
            g = self._gather_dict(tok)
        else:
            return 0
        if g < 0:
            return 0
        # Pass 2: the first slot of each item now is (or soon will be) in cache; fetch
        # the strings it holds, which the comparison reads unless they are the same
        # objects.
        for q in range(g):
            t = self._table(self.tok_b[q])
            s = t.first(self.tok_h[q])
            if s.a != NULL and s.tag == <uint32_t> self.tok_h[q] and s.a != self.tok_a[q]:
                FCRF_PREFETCH(t.key_of(s))
                FCRF_PREFETCH(t.key_of(s) + 40)
        # Pass 3: resolve in order (ids are handed out in first-seen order).
        try:
            resize_smart(self.ids, n + g)
            for q in range(g):
                aid = self._resolve(self.tok_h[q], self.tok_a[q], self.tok_b[q])
                if aid == BAIL:
                    ok = 0
                    break
                if aid == DROP:
                    continue
                if self.tok_x[q] != 1.0:
                    _push_q(self.x_pos, n + c)
                    _push_d(self.x_val, self.tok_x[q])
                self.ids.data.as_ints[n + c] = <int> aid
                c += 1
            resize_smart(self.ids, n + c)
        finally:
            self._release(g)
        return ok

    cdef int _reserve(self, Py_ssize_t m) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef void* p
        if m <= cap:
            return 0
        cap = max(m, 2 * cap, 64)
        p = realloc(self.tok_a, cap * sizeof(PyObject*))
        if p == NULL:
            raise MemoryError()
        self.tok_a = <PyObject**> p
        p = realloc(self.tok_b, cap * sizeof(PyObject*))
        if p == NULL:
            raise MemoryError()
        self.tok_b = <PyObject**> p
        p = realloc(self.tok_h, cap * sizeof(Py_hash_t))
        if p == NULL:
            raise MemoryError()
        self.tok_h = <Py_hash_t*> p
        p = realloc(self.tok_x, cap * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self.tok_x = <double*> p
        self.cap = cap
        return 0

    cdef void _release(self, Py_ssize_t g) noexcept:
        cdef Py_ssize_t q
        for q in range(g):
            Py_XDECREF(self.tok_a[q])
            Py_XDECREF(self.tok_b[q])

    cdef inline int _hold(self, Py_ssize_t q, PyObject* a, PyObject* b, Py_hash_t h,
                          double x) noexcept:
        # Item q of the token: keep references, prefetch its slot.
        Py_INCREF(<object> a)
        if b != NULL:
            Py_INCREF(<object> b)
        self.tok_a[q] = a
        self.tok_b[q] = b
        self.tok_h[q] = h
        self.tok_x[q] = x
        FCRF_PREFETCH(self._table(b).first(h))
        return 0

    cdef Py_ssize_t _gather_list(self, object tok) except -2:
        # Pass 1 for a list/tuple token: its names, held; -1 to bail.
        cdef Py_ssize_t m = Py_SIZE(tok), k
        cdef PyObject* p
        cdef Py_hash_t h
        self._reserve(m)
        for k in range(m):
            p = PySequence_Fast_GET_ITEM(tok, k)
            if type(<object> p) is not str or fcrf_str_ready(p) < 0:
                PyErr_Clear()
                self._release(k)
                return -1
            h = fcrf_str_hash(p)  # exact and ready
            self._hold(k, p, NULL, h, 1.0)
        return m

    cdef Py_ssize_t _gather_dict(self, dict tok) except -2:
        # Pass 1 for a dict token: its names or (key, str value) pairs and weights,
        # held; -1 to bail.
        cdef Py_ssize_t m = len(tok), pos = 0, g = 0
        cdef PyObject* kp
        cdef PyObject* vp
        cdef object value
        cdef double x
        cdef Py_hash_t h
        self._reserve(m)
        while PyDict_Next(tok, &pos, &kp, &vp):
            value = <object> vp
            if g == m or type(<object> kp) is not str or fcrf_str_ready(kp) < 0:
                break
            h = self._key_hash(kp, g)
            if type(value) is str:
                if fcrf_str_ready(vp) < 0:
                    break
                self._hold(g, kp, vp, _pair_hash(h, fcrf_str_hash(vp)), 1.0)
                g += 1
                continue
            if type(value) is float:
                x = PyFloat_AS_DOUBLE(value)
                if not isfinite(x):
                    break
            elif type(value) is int:
                x = PyLong_AsDouble(value)
                if x == -1.0 and PyErr_Occurred() != NULL:
                    break  # too large for a float64: the Python path says so
            elif type(value) is bool:
                x = 1.0 if value is True else 0.0
            else:
                break
            self._hold(g, kp, NULL, h, x)
            g += 1
        else:
            return g
        PyErr_Clear()
        self._release(g)
        return -1

    # -- ids ---------------------------------------------------------------------

    cdef inline Table _table(self, PyObject* b):
        # Where (a, b) is looked up: names in the vocabulary's table when there is one.
        return self.vocab if b == NULL and self.vocab is not None else self.cache

    cdef Py_ssize_t _resolve(self, Py_hash_t h, PyObject* a, PyObject* b) except -3:
        # The id of name a (b NULL) or of the name "a:b": an id, DROP or BAIL.
        cdef Table t = self._table(b)
        cdef Slot* s = t.find(h, a, b)
        cdef Py_ssize_t aid
        cdef object name
        if s.a != NULL:
            return s.id
        if t is self.vocab:
            return DROP
        if b == NULL:
            aid = self._index_id(<object> a)
        else:
            name = <object> a + self.separator + <object> b
            aid = self._resolve(_name_hash(name), <PyObject*> name, NULL)
        if aid != BAIL:
            self.cache.insert(h, a, b, aid)
        return aid

    cdef Py_ssize_t _index_id(self, object name) except -3:
        # The id of exact str ``name``, which is not cached: found in the index, or
        # DROP; or, growing, a new id (the cache then holds every name, so the name
        # cannot be in it).
        cdef PyObject* p
        cdef Py_ssize_t aid
        if not self.grow:
            p = PyDict_GetItemWithError(self.index, name)
            return DROP if p == NULL else _as_id(p)
        aid = len(self.names)
        if aid > INT32_MAX:
            return BAIL
        self.names.append(name)
        if self.index is not None:
            self.index[name] = aid
        return aid


# -- vocabulary upkeep and labels ---------------------------------------------------


def reorder(list items not None, const Py_ssize_t[::1] order not None):
    """Make ``items`` ``[items[order[0]], items[order[1]], ...]``, in place.

    ``order`` holds distinct positions of ``items``; the items it leaves out are
    released.  The references are moved rather than copied, so the items themselves
    are not touched (renumbering a vocabulary of 10^5-10^6 names would otherwise
    visit every name string).
    """
    cdef Py_ssize_t n = Py_SIZE(items), m = order.shape[0], i, j
    cdef PyObject** item = fcrf_list_items(<PyObject*> items)
    cdef PyObject** old = NULL
    cdef char* taken = NULL
    if m > n:
        raise ValueError(f"order has {m} positions for {n} items")
    if n == 0:
        return
    taken = <char*> calloc(n, 1)
    old = <PyObject**> malloc(n * sizeof(PyObject*))
    if taken == NULL or old == NULL:
        free(taken)
        free(old)
        raise MemoryError()
    for i in range(m):
        j = order[i]
        if not 0 <= j < n or taken[j]:
            free(taken)
            free(old)
            raise ValueError(f"order must hold distinct positions in [0, {n}); "
                             f"order[{i}] is {j}")
        taken[j] = 1
    memcpy(old, item, n * sizeof(PyObject*))
    for i in range(m):
        item[i] = old[order[i]]
    # The items left out go to the tail, which the slice deletion releases.
    i = m
    for j in range(n):
        if not taken[j]:
            item[i] = old[j]
            i += 1
    free(taken)
    free(old)
    del items[m:]


def renumber_ids(int32_t[::1] ids not None, const int32_t[::1] new_id not None):
    """``ids[e] = new_id[ids[e]]`` for every entry, in place (# IN/OUT ids)."""
    cdef Py_ssize_t e, n = new_id.shape[0], bad = -1
    with nogil:
        for e in range(ids.shape[0]):
            if not 0 <= ids[e] < n:
                bad = e
                break
        if bad < 0:
            for e in range(ids.shape[0]):
                ids[e] = new_id[ids[e]]
    if bad >= 0:
        raise ValueError(f"ids[{bad}] = {ids[bad]} is not in [0, {n})")


def count_ids(const int32_t[::1] ids not None, int64_t[::1] counts not None):
    """``counts[a] += 1`` for every id ``a`` of ``ids`` (# IN ids, # IN/OUT counts)."""
    cdef Py_ssize_t e, n = counts.shape[0], bad = -1
    with nogil:
        for e in range(ids.shape[0]):
            if not 0 <= ids[e] < n:
                bad = e
                break
            counts[ids[e]] += 1
    if bad >= 0:
        raise ValueError(f"ids[{bad}] = {ids[bad]} is not in [0, {n})")


def label_run(y, Py_ssize_t start, dict index not None, list classes not None, bint grow,
              const int64_t[::1] lengths, array codes not None):
    """Append the codes of the label sequences ``y[start:]`` (y a list or tuple) to
    ``codes`` ('i'), up to the first sequence that needs _encoding's Python path;
    return that sequence's position, or ``len(y)``.

    A sequence is done here when it is a non-empty list or tuple of exact str labels
    that are in ``index`` (str -> code) or, with ``grow``, are added to ``index`` and
    ``classes``; and, when ``lengths`` is not None, when it has ``lengths[i]``
    labels.  Otherwise ``codes`` is left as it was before the sequence.
    """
    cdef Py_ssize_t i = start, j, m, n
    cdef Py_ssize_t code
    cdef PyObject* p
    cdef object seq, label
    if codes.ob_descr.itemsize != sizeof(int):
        raise TypeError("label_run needs codes of type 'i'")
    if type(y) is not list and type(y) is not tuple:
        raise TypeError("label_run needs a list or tuple")
    while 0 <= i < Py_SIZE(y):
        seq = <object> PySequence_Fast_GET_ITEM(y, i)
        if type(seq) is not list and type(seq) is not tuple:
            return i
        m = Py_SIZE(seq)
        if m == 0 or (lengths is not None and (i >= lengths.shape[0] or lengths[i] != m)):
            return i
        n = Py_SIZE(codes)
        resize_smart(codes, n + m)
        j = 0
        while j < m:
            if j >= Py_SIZE(seq):
                break
            label = <object> PySequence_Fast_GET_ITEM(seq, j)
            if type(label) is not str:
                break
            p = PyDict_GetItemWithError(index, label)  # exact str: cannot fail
            if p != NULL:
                code = _as_id(p)
                if code < 0:
                    break
            elif grow and len(classes) <= INT32_MAX:
                code = len(classes)
                index[label] = code
                classes.append(label)
            else:
                break
            codes.data.as_ints[n + j] = <int> code
            j += 1
        if j < m:
            resize_smart(codes, n)
            return i
        i += 1
    return i


# ---------------------------------------------------------------------------
# Feature hashing (fastcrf._features._hashing): names -> buckets by MurmurHash3.
# ---------------------------------------------------------------------------

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL

cdef extern from "_murmur.h":
    uint32_t fcrf_murmur3_32(const unsigned char* data, size_t n, uint32_t seed) noexcept nogil


def murmur3_32(str name not None, uint32_t seed):
    """MurmurHash3_x86_32 of ``name``'s UTF-8 bytes, unsigned (scikit-learn's
    ``murmurhash3_32(name, seed, positive=True)``)."""
    cdef Py_ssize_t n
    cdef const char* s = PyUnicode_AsUTF8AndSize(name, &n)
    return fcrf_murmur3_32(<const unsigned char*>s, <size_t>n, seed)


def hash_buckets(list names not None,       # IN: str names, checked here
                 uint32_t seed,
                 uint32_t n_buckets,          # >= 1, checked by the caller
                 int64_t[::1] out not None):  # OUT: (len(names),)
    """``out[i] = murmur3_32(names[i], seed) % n_buckets``: the bucket of every name.
    A name that is not a str raises TypeError; one that has no UTF-8 form (a lone
    surrogate) UnicodeEncodeError."""
    cdef Py_ssize_t i, n
    cdef const char* s
    if out.shape[0] != len(names):
        raise ValueError("out must have one entry per name")
    for i in range(len(names)):
        name = names[i]
        if type(name) is not str:
            raise TypeError(f"names[{i}] must be a str, got {type(name).__name__}")
        s = PyUnicode_AsUTF8AndSize(name, &n)
        out[i] = fcrf_murmur3_32(<const unsigned char*>s, <size_t>n, seed) % n_buckets
