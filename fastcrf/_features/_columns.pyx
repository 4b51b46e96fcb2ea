# Compiled reading of column files through a CRF++ template (Dataset.from_conll).
#
# Design
# ------
# a) fastcrf._features._conll feeds a file's bytes, a block at a time, into a
#    ColumnReader's bytearray; `parse` cuts whole sentences out of it (the rules of
#    fastcrf.io._parse, in C: _columns.h), `expand` turns a chunk of sentences into
#    attribute ids.  Neither creates a Python object per token or per attribute: a
#    field is a byte range of the buffer, an attribute an int32.
# b) Every name is looked up by its UTF-8 bytes in a C table that numbers keys in
#    insertion order: one table per template column (field -> column code, CRF++'s
#    16 boundary tokens first), one per unigram line (its cells' column codes ->
#    attribute), one for the attributes (bytes -> global id, so ids are first-seen,
#    token-major and in line order, exactly as Template.encode + Dataset._Builder
#    number them) and one for the labels.  The strings are made once, at the end.
# c) The C functions run without the GIL on the buffer's memoryview; the export
#    keeps the bytearray from being resized meanwhile.  They report a bad line by
#    its number and byte range; the Python driver formats io.py's message from it.
#
# Compiler directives live in setup.py.

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import numpy as np

cdef extern from "_columns.h" nogil:
    ctypedef struct fcol_table:
        int64_t n
        int64_t *off
        unsigned char *arena
    int fcol_table_init(fcol_table *t)
    void fcol_table_free(fcol_table *t)
    int64_t fcol_table_id(fcol_table *t, const unsigned char *p, size_t n)
    void fcrf_seed_hash(uint64_t seed)

    ctypedef struct fcol_parser:
        int64_t *fields
        int64_t *seq_len
        int64_t n_tokens, n_seq, n_fields, first_line, lineno, pos
        const unsigned char *sep
        int64_t sep_len
        int docstart
        int64_t err_line, err_start, err_end, err_fields
    int fcol_parse(fcol_parser *ps, const unsigned char *buf, int64_t len,
                   int64_t max_sentences, int final)
    int fcol_intern(const fcol_parser *ps, const unsigned char *buf, int64_t field,
                    fcol_table *table, int32_t *out)

    ctypedef struct fcol_combos:
        void *slots
    int fcol_combos_init(fcol_combos *t)

    ctypedef struct fcol_rule:
        int n_cells
        int32_t *keys
        int32_t *attr
        int64_t *seen
        const int32_t *rows
        const int32_t *cols
        const unsigned char *const *pieces
        const int64_t *piece_len
        fcol_combos small
        fcol_table combos
    ctypedef struct fcol_hashing:
        uint32_t n_buckets
        uint32_t seed
    int fcol_expand(fcol_rule *rules, int n_rules, int32_t *const *codes,
                    const fcol_table *columns, const int64_t *seq_len, int64_t n_seq,
                    fcol_table *names, const fcol_hashing *hashing, int32_t *out,
                    int n_threads,
                    int32_t **work, int64_t *work_cap)
    void fcol_counts(const fcol_rule *rules, int n_rules, int64_t *counts,
                     int64_t n_names)

    enum:
        FCOL_FULL
        FCOL_MORE
        FCOL_NOMEM
        FCOL_DECODE
        FCOL_RAGGED

FULL, MORE, DECODE, RAGGED = FCOL_FULL, FCOL_MORE, FCOL_DECODE, FCOL_RAGGED

#: The most macros one template line may hold here (the key buffer of fcol_expand).
MAX_CELLS = 64

_BOUNDARY = [f"_B-{k}".encode() for k in range(1, 9)] + [f"_B+{k}".encode()
                                                         for k in range(1, 9)]

cdef unsigned char _EMPTY = 0


def seed(uint64_t value):
    """Set the tables' hash keys (the ids never depend on them)."""
    fcrf_seed_hash(value)


cdef inline const unsigned char *_data(const unsigned char[::1] view):
    return &view[0] if view.shape[0] else &_EMPTY


cdef class ColumnReader:
    """Parses column-file bytes and expands a template's unigram lines over them.

    Parameters
    ----------
    rules : list of (rows, cols, pieces)
        Per unigram line: its macros' rows and template columns (lists of int, at
        most MAX_CELLS) and its literal pieces (``len(rows) + 1`` bytes, UTF-8).
    sep : bytes or None
        The field separator, UTF-8; None splits at whitespace.
    docstart : bool
        Whether a ``-DOCSTART-`` row ends the sentence and is skipped.
    n_threads : int, default=1
        OpenMP threads of ``expand`` (the ids do not depend on it).
    n_buckets : int, default=0
        Feature hashing: with n_buckets > 0 an attribute is the bucket of its name
        (MurmurHash3 with ``seed``, as ``CRF(hash_features=...)``), the ids number
        the buckets in first-seen order (:meth:`attribute_buckets`), and no name is
        kept.
    seed : int, default=0
    """

    cdef fcol_parser ps
    cdef fcol_rule *rules
    cdef int n_rules
    cdef fcol_table *columns      # one per template column a rule reads
    cdef int n_columns
    cdef fcol_table names
    cdef fcol_hashing hashing
    cdef fcol_table labels
    cdef int32_t *work           # fcol_expand's scratch, kept between chunks
    cdef int64_t work_cap
    cdef object keep              # the Python objects the C structs point into
    cdef list column_of           # template column -> index into columns
    cdef bytes sep
    cdef int n_threads

    def __cinit__(self, rules, sep, docstart, int n_threads=1, uint32_t n_buckets=0,
                  uint32_t seed=0):
        cdef int r, j
        memset(&self.ps, 0, sizeof(self.ps))
        memset(&self.names, 0, sizeof(self.names))
        memset(&self.labels, 0, sizeof(self.labels))
        self.work = NULL
        self.work_cap = 0
        self.hashing.n_buckets = n_buckets
        self.hashing.seed = seed
        used = sorted({c for _, cols, _ in rules for c in cols})
        self.column_of = [-1] * (max(used) + 1 if used else 0)
        for k, c in enumerate(used):
            self.column_of[c] = k
        self.keep = []
        self.n_threads = max(n_threads, 1)
        self.sep = sep
        # Not a conditional expression: Cython gives it a non-const C type, and the
        # assignment would discard the qualifier.
        cdef const unsigned char *sep_bytes = NULL
        if sep is not None:
            sep_bytes = <const unsigned char *>self.sep
        self.ps.sep = sep_bytes
        self.ps.sep_len = 0 if sep is None else len(sep)
        self.ps.docstart = 1 if docstart else 0
        self.ps.n_fields = -1
        self.n_rules = len(rules)
        self.rules = <fcol_rule *>malloc(max(self.n_rules, 1) * sizeof(fcol_rule))
        self.n_columns = len(used)
        self.columns = <fcol_table *>malloc(max(self.n_columns, 1) * sizeof(fcol_table))
        if self.rules == NULL or self.columns == NULL:
            raise MemoryError()
        memset(self.rules, 0, max(self.n_rules, 1) * sizeof(fcol_rule))
        memset(self.columns, 0, max(self.n_columns, 1) * sizeof(fcol_table))
        for j in range(self.n_columns):
            if fcol_table_init(&self.columns[j]):
                raise MemoryError()
            for b in _BOUNDARY:
                if fcol_table_id(&self.columns[j], <const unsigned char *><bytes>b, len(b)) < 0:
                    raise MemoryError()
        if fcol_table_init(&self.names) or fcol_table_init(&self.labels):
            raise MemoryError()
        cdef int32_t[::1] rows_v, cols_v
        cdef int64_t[::1] plen_v
        cdef const unsigned char **ptrs
        for r, (rows, cols, pieces) in enumerate(rules):
            rows_a = np.asarray(rows, dtype=np.int32).reshape(-1)
            cols_a = np.asarray([self.column_of[c] for c in cols], dtype=np.int32).reshape(-1)
            plen_a = np.asarray([len(p) for p in pieces], dtype=np.int64)
            rows_v, cols_v, plen_v = rows_a, cols_a, plen_a
            ptrs = <const unsigned char **>malloc(len(pieces) * sizeof(void *))
            if ptrs == NULL:
                raise MemoryError()
            for j, p in enumerate(pieces):
                ptrs[j] = <const unsigned char *><bytes>p
            self.keep.append((rows_a, cols_a, plen_a, list(pieces)))
            self.rules[r].n_cells = len(rows)
            self.rules[r].rows = &rows_v[0] if len(rows) else NULL
            self.rules[r].cols = &cols_v[0] if len(rows) else NULL
            self.rules[r].pieces = ptrs
            self.rules[r].piece_len = &plen_v[0]
            if fcol_table_init(&self.rules[r].combos) or fcol_combos_init(
                    &self.rules[r].small):
                raise MemoryError()

    def __dealloc__(self):
        cdef int j
        free(self.ps.fields)
        free(self.ps.seq_len)
        if self.rules != NULL:
            for j in range(self.n_rules):
                free(<void *>self.rules[j].pieces)
                free(self.rules[j].attr)
                free(self.rules[j].seen)
                free(self.rules[j].keys)
                fcol_table_free(&self.rules[j].combos)
                free(self.rules[j].small.slots)
            free(self.rules)
        if self.columns != NULL:
            for j in range(self.n_columns):
                fcol_table_free(&self.columns[j])
            free(self.columns)
        fcol_table_free(&self.names)
        fcol_table_free(&self.labels)
        free(self.work)

    # -- one file at a time ---------------------------------------------------

    def start_file(self):
        """Line numbers and the field count start afresh."""
        self.ps.n_fields = -1
        self.ps.first_line = 0
        self.ps.lineno = 0
        self.ps.pos = 0
        self.ps.n_tokens = 0
        self.ps.n_seq = 0

    def parse(self, bytearray buf, int64_t max_sentences, bint final):
        """Add whole sentences from ``buf`` to the chunk, until it holds
        ``max_sentences`` (FULL) or the buffer ends (MORE; FULL when ``final``)."""
        cdef const unsigned char[::1] view = buf
        cdef const unsigned char *p = _data(view)
        cdef int64_t n = view.shape[0]
        cdef int status
        with nogil:
            status = fcol_parse(&self.ps, p, n, max_sentences, final)
        if status == FCOL_NOMEM:
            raise MemoryError()
        return status

    def rebase(self, bytearray buf):
        """Drop the parsed bytes from ``buf`` (the chunk must be expanded first)."""
        del buf[:self.ps.pos]
        self.ps.pos = 0

    @property
    def n_fields(self):
        return self.ps.n_fields

    @property
    def first_line(self):
        return self.ps.first_line

    @property
    def n_sequences(self):
        return self.ps.n_seq

    @property
    def error(self):
        """``(line number, start, end, fields found)`` of the line parse stopped at."""
        return (self.ps.err_line, self.ps.err_start, self.ps.err_end, self.ps.err_fields)

    def expand(self, bytearray buf, fields, int64_t label_field):
        """The chunk's arrays, then an empty chunk.

        ``fields[c]`` is the file's field of template column ``c``; ``label_field``
        the labels' (-1: none).  Returns ``(ids, seq_lengths, labels or None)``:
        ``ids`` int32 of shape (n_tokens * n_rules,), token-major.
        """
        cdef const unsigned char[::1] view = buf
        cdef const unsigned char *p = _data(view)
        cdef int64_t T = self.ps.n_tokens, S = self.ps.n_seq, j
        cdef int status = 0
        ids = np.empty(T * self.n_rules, dtype=np.int32)
        seq_len = np.empty(S, dtype=np.int64)
        labels = np.empty(T, dtype=np.int32) if label_field >= 0 else None
        codes_a = np.empty((max(self.n_columns, 1), T), dtype=np.int32)
        field_of = np.asarray([fields[c] for c in range(len(self.column_of))
                               if self.column_of[c] >= 0], dtype=np.int64)
        cdef int32_t[::1] ids_v = ids
        cdef int64_t[::1] seq_v = seq_len
        cdef int32_t[:, ::1] codes_v = codes_a
        cdef int64_t[::1] field_v = field_of
        cdef int32_t[::1] lab_v
        cdef int32_t *lab = NULL
        if labels is not None:
            lab_v = labels
            lab = &lab_v[0] if T else NULL
        cdef int32_t **codes = <int32_t **>malloc(max(self.n_columns, 1) * sizeof(int32_t *))
        if codes == NULL:
            raise MemoryError()
        try:
            for j in range(self.n_columns):
                codes[j] = &codes_v[j, 0] if T else NULL
            for j in range(S):
                seq_v[j] = self.ps.seq_len[j]
            with nogil:
                for j in range(self.n_columns):
                    if fcol_intern(&self.ps, p, field_v[j], &self.columns[j], codes[j]):
                        status = -1
                        break
                if status == 0 and lab != NULL:
                    status = fcol_intern(&self.ps, p, label_field, &self.labels, lab)
                if status == 0 and T:
                    status = fcol_expand(self.rules, self.n_rules, codes, self.columns,
                                         self.ps.seq_len, S, &self.names, &self.hashing,
                                         &ids_v[0],
                                         self.n_threads, &self.work, &self.work_cap)
        finally:
            free(codes)
        if status:
            raise MemoryError()
        self.ps.n_tokens = 0
        self.ps.n_seq = 0
        return ids, seq_len, labels

    # -- the vocabularies -----------------------------------------------------

    def counts_array(self):
        """Occurrences of each attribute id, int64."""
        out = np.zeros(self.names.n, dtype=np.int64)
        cdef int64_t[::1] v = out
        if self.names.n:
            fcol_counts(self.rules, self.n_rules, &v[0], self.names.n)
        return out

    def attribute_names(self):
        """The attributes by id, as str (a hashed reader: ``"#<bucket>"``)."""
        if self.hashing.n_buckets:
            return [f"#{b}" for b in self.attribute_buckets().tolist()]
        return _strings(&self.names, "surrogatepass")

    def attribute_buckets(self):
        """The bucket of every attribute id of a hashed reader, int64."""
        cdef int64_t n = self.names.n
        if not self.hashing.n_buckets:
            raise ValueError("the reader does not hash (n_buckets=0)")
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        # Every key is one uint32, so the keys lie end to end.
        cdef bytes blob = (<char *>self.names.arena)[:4 * n]
        return np.frombuffer(blob, dtype=np.uint32).astype(np.int64)

    def label_names(self):
        """The labels by code, as str."""
        return _strings(&self.labels, "strict")


cdef list _strings(fcol_table *t, str errors):
    cdef int64_t i, n = t.n
    cdef bytes blob = (<char *>t.arena)[:t.off[n]] if n and t.off[n] else b""
    cdef list out = []
    for i in range(n):
        out.append(blob[t.off[i]:t.off[i + 1]].decode("utf-8", errors))
    return out
