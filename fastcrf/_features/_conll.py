"""The compiled path of :meth:`fastcrf.Dataset.from_conll`: column files read as bytes
and expanded through the template in C (``_columns.pyx``), chunk by chunk.

It gives bitwise the Dataset of the Python path (``io.read_conll`` rows through
``Template.encode``), with the same errors; :func:`eligible` says when it applies
(UTF-8 input from a path or a binary file, a template with unigram lines); the
Python path reads everything else.  ``FASTCRF_READER=python`` in the environment
forces the Python path (the benchmark compares the two).
"""

import io
import os

from . import _columns

_columns.seed(int.from_bytes(os.urandom(8), "little"))

#: Bytes read from a file at a time.
BLOCK = 1 << 22


def eligible(paths, template, encoding):
    """Whether the compiled reader gives the Python path's result for these inputs."""
    if os.environ.get("FASTCRF_READER") == "python":
        return False
    if not isinstance(encoding, str) or encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        return False
    rules = template._unigram
    if not rules or any(len(r.cells) > _columns.MAX_CELLS for r in rules):
        return False
    return all(isinstance(p, (str, bytes, os.PathLike, io.BufferedIOBase, io.RawIOBase))
               for p in paths)


def read(paths, template, builder, *, label_column, sep, docstart, encoding, chunk_size,
         check_columns, name_of, hashing=None):
    """Read ``paths`` into ``builder`` (a ``_dataset._Builder``); return the number
    of fields per row (None without sentences).

    ``hashing`` ``(n_buckets, seed)``: the attributes are the buckets of their
    names (``"#<bucket>"``), numbered first seen, and no name is held.

    ``check_columns(template, label_column, n, path)`` runs after each file's first
    chunk, as the Python path runs it; ``name_of(path)`` names a file in errors.
    """
    from .._parallel import effective_n_threads
    from ..io import _check_sep

    sep = _check_sep(sep)
    reader = _columns.ColumnReader(
        [([row for row, _ in r.cells], [c for _, c in r.cells],
          [p.encode("utf-8", "surrogatepass") for p in r.pieces]) for r in template._unigram],
        None if sep is None else sep.encode("utf-8", "surrogatepass"), docstart,
        effective_n_threads(None, len(template._unigram)),
        *((0, 0) if hashing is None else hashing))
    n_fields = None
    fields = label_field = None
    for path in paths:
        f, name, to_close = _open(path)
        try:
            reader.start_file()
            first = True
            for buf in _chunks(reader, f, name, encoding, chunk_size):
                n = reader.n_fields
                if n_fields is None:
                    n_fields = n
                    check_columns(template, label_column, n, path)
                    k = None if label_column is None else label_column % n
                    label_field = -1 if k is None else k
                    fields = [c if k is None or c < k else c + 1 for c in range(n)]
                elif first and n != n_fields:
                    raise ValueError(f"{name_of(path)} has {n} fields per row but the first "
                                     f"file has {n_fields}")
                first = False
                ids, seq_len, labels = reader.expand(buf, fields, label_field)
                builder.add_global(ids, len(template._unigram), seq_len, labels)
        finally:
            for g in to_close:
                g.close()
    if n_fields is not None:
        builder.set_vocabulary(reader.attribute_names(), reader.counts_array(),
                               reader.label_names() if label_column is not None else None)
    return n_fields


def _open(source):
    """``(binary file, name as io.read_conll gives it, files to close)``."""
    from ..io import _open_binary

    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return source, str(name) if isinstance(name, (str, os.PathLike)) else "<stream>", []
    if isinstance(source, bytes):
        source = os.fsdecode(source)
    if not os.path.exists(source):
        raise FileNotFoundError(f"no such file: {os.fspath(source)!r}")
    f, name, raw = _open_binary(source)
    return f, name, [f] + ([raw] if raw is not None else [])


def _chunks(reader, f, name, encoding, chunk_size):
    """Yield the buffer each time the reader holds a chunk of one file
    (``chunk_size`` sentences, the last one fewer); the caller expands it."""
    buf = bytearray()
    eof = False
    need = True
    while True:
        if need and not eof:
            block = f.read(BLOCK)
            if block:
                buf += block
            else:
                eof = True
        status = reader.parse(buf, chunk_size, eof)
        if status == _columns.MORE:
            need = True
            continue
        if status != _columns.FULL:
            _raise(reader, buf, status, name, encoding)
        if reader.n_sequences:
            yield buf
        reader.rebase(buf)
        if eof and not buf:
            return
        need = False


def _raise(reader, buf, status, name, encoding):
    lineno, start, end, found = reader.error
    line = bytes(buf[start:end])
    if status == _columns.DECODE:
        try:
            line.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{name}, line {lineno}: not valid {encoding} text "
                f"(byte {line[exc.start:exc.start + 1]!r} at column {exc.start + 1})"
            ) from None
        raise ValueError(f"{name}, line {lineno}: not valid {encoding} text")
    text = line.decode("utf-8").rstrip()
    raise ValueError(
        f"{name}, line {lineno}: expected {reader.n_fields} fields (as on line "
        f"{reader.first_line}), found {found}: {text!r}")
