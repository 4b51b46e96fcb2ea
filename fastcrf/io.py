"""CoNLL-style column files: read, load and write.

A column file holds one token per line, its fields separated by whitespace (or by a
chosen separator such as a tab), and a blank line after each sentence::

    The DT B-NP
    cat NN I-NP
    ...

    Dogs NNS B-NP
    ...

Lines whose first field is ``-DOCSTART-`` (CoNLL-2003 document breaks) end the current
sentence and are skipped.  Files ending in ``.gz`` (or starting with gzip's magic
bytes) are decompressed on the fly, on reading and writing.  Reading streams: a
sentence is built only when it is asked for.

Every row of a file must have the same number of fields; a ragged row raises a
``ValueError`` naming the file and the line, as does text that does not decode.
"""

import gzip
import io
import os

from ._atomic import atomic_file

__all__ = ["load_conll", "read_conll", "write_conll"]

DOCSTART = "-DOCSTART-"
_GZIP_MAGIC = b"\x1f\x8b"


def _check_sep(sep):
    if sep is None:
        return None
    if not isinstance(sep, str):
        raise TypeError(f"sep must be None (any whitespace) or a str, got {type(sep).__name__}")
    if sep == "" or "\n" in sep or "\r" in sep:
        raise ValueError(f"sep must be a non-empty str without line breaks, got {sep!r}")
    return sep


def _open_binary(source):
    """Return ``(binary_file, name, close)`` for a path; gzip is detected by magic bytes."""
    path = os.fspath(source)
    raw = open(path, "rb")
    try:
        magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    except OSError:
        magic = b""
    if magic == _GZIP_MAGIC or str(path).endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb"), str(path), raw
    return raw, str(path), None


def read_conll(source, *, columns=None, sep=None, docstart=True, encoding="utf-8"):
    """Iterate over the sentences of a column file.

    Parameters
    ----------
    source : str, path-like or file object
        A path (``.gz`` files are decompressed) or an open file in text or binary mode.
    columns : int, optional
        The number of fields every row must have.  By default the first row of the
        file sets it.
    sep : str, optional
        Field separator.  ``None`` (default) splits at any run of whitespace; ``"\\t"``
        keeps spaces inside fields.
    docstart : bool, default=True
        Skip ``-DOCSTART-`` lines (and end the sentence there).  With ``False`` they
        are ordinary rows.
    encoding : str, default="utf-8"
        Text encoding for paths and binary files; it must encode ``"\\n"`` as one byte
        (UTF-8, Latin-1, cp1252...).  A UTF-8 byte-order mark is dropped.

    Yields
    ------
    sentence : list of tuple of str
        The rows of one sentence, each a tuple of ``columns`` fields.  Sentences are
        never empty.

    Raises
    ------
    ValueError
        For a row with a different number of fields than the file's other rows, or a
        line that does not decode, naming the file and the line number (1-based).
    TypeError
        For a ``source`` that is neither a path nor a file object.
    """
    sep = _check_sep(sep)
    if columns is not None:
        if isinstance(columns, bool) or not isinstance(columns, int):
            raise TypeError(f"columns must be an int or None, got {type(columns).__name__}")
        if columns < 1:
            raise ValueError(f"columns must be >= 1, got {columns}")
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be a str, got {type(encoding).__name__}")
    "\n".encode(encoding)  # LookupError now for an unknown encoding, not mid-stream
    if isinstance(source, (str, bytes, os.PathLike)):
        if isinstance(source, bytes):
            source = os.fsdecode(source)
        if not os.path.exists(source):
            raise FileNotFoundError(f"no such file: {os.fspath(source)!r}")
    elif not hasattr(source, "read"):
        raise TypeError(
            f"source must be a path or a file object, got {type(source).__name__}"
        )
    return _read(source, columns, sep, docstart, encoding)


def _read(source, columns, sep, docstart, encoding):
    to_close = []
    if hasattr(source, "read"):
        f = source
        name = getattr(source, "name", None)
        name = str(name) if isinstance(name, (str, os.PathLike)) else "<stream>"
    else:
        f, name, raw = _open_binary(source)
        to_close = [f] + ([raw] if raw is not None else [])
    try:
        yield from _parse(f, name, columns, sep, docstart, encoding)
    finally:
        for g in to_close:
            g.close()


def _parse(lines, name, columns, sep, docstart, encoding):
    sentence = []
    first_line = None
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    for lineno, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{name}, line {lineno}: not valid {encoding} text "
                    f"(byte {line[exc.start:exc.start + 1]!r} at column {exc.start + 1})"
                ) from None
        if lineno == 1 and utf8 and line.startswith("\ufeff"):
            line = line[1:]
        if sep is None:
            fields = line.split()
        else:
            line = line.rstrip("\r\n")
            fields = line.split(sep) if line.strip() else []
        if not fields:
            if sentence:
                yield sentence
                sentence = []
            continue
        if docstart and fields[0] == DOCSTART:
            if sentence:
                yield sentence
                sentence = []
            continue
        if columns is None:
            columns, first_line = len(fields), lineno
        elif len(fields) != columns:
            origin = f"as on line {first_line}" if first_line else "the columns argument"
            raise ValueError(
                f"{name}, line {lineno}: expected {columns} fields ({origin}), found "
                f"{len(fields)}: {line.rstrip()!r}"
            )
        sentence.append(tuple(fields))
    if sentence:
        yield sentence


def load_conll(source, *, label_column=-1, **kwargs):
    """Read a whole column file as token columns and labels.

    Parameters
    ----------
    source : str, path-like or file object
        As in :func:`read_conll`.
    label_column : int or None, default=-1
        The column that holds the labels (negative counts from the end).  ``None``
        reads every column as a token column and returns no labels.
    **kwargs
        ``columns``, ``sep``, ``docstart`` and ``encoding`` of :func:`read_conll`.

    Returns
    -------
    X : list of list of tuple of str
        Per sentence, per token, the fields other than the label: the input of
        :meth:`fastcrf.templates.Template.transform`.
    y : list of list of str or None
        Per sentence, the labels.

    Examples
    --------
    >>> import io
    >>> X, y = load_conll(io.StringIO("He PRP B-NP\\nran VBD B-VP\\n\\nGo VB B-VP\\n"))
    >>> X[0], y
    ([('He', 'PRP'), ('ran', 'VBD')], [['B-NP', 'B-VP'], ['B-VP']])
    """
    if label_column is not None and (
        isinstance(label_column, bool) or not isinstance(label_column, int)
    ):
        raise TypeError(
            f"label_column must be an int or None, got {type(label_column).__name__}"
        )
    X, y = [], []
    k = None
    for sentence in read_conll(source, **kwargs):
        if label_column is None:
            X.append(sentence)
            continue
        if k is None:
            n = len(sentence[0])
            if not -n <= label_column < n:
                raise ValueError(
                    f"label_column={label_column} is out of range for a file with {n} "
                    "columns"
                )
            if n == 1:
                raise ValueError(
                    "the file has a single column: no token columns beside the labels"
                )
            k = label_column % n
        y.append([row[k] for row in sentence])
        X.append([row[:k] + row[k + 1:] for row in sentence])
    return X, (None if label_column is None else y)


def _check_field(field, i, j, c, sep):
    if not isinstance(field, str):
        raise TypeError(
            f"sentences[{i}][{j}][{c}] must be a str, got {field!r} ({type(field).__name__})"
        )
    # A space-separated file is read back by splitting at any whitespace.
    spaces = sep.strip(" ") == ""
    bad = (field == "" or "\n" in field or "\r" in field
           or (field.split() != [field] if spaces else sep in field))
    if bad:
        raise ValueError(
            f"sentences[{i}][{j}][{c}] = {field!r} cannot be written: fields must be "
            "non-empty, without line breaks"
            + (" or whitespace" if spaces else f" or {sep!r}")
            + " so that the file reads back the same"
        )


def write_conll(target, sentences, *, sep=" ", encoding="utf-8"):
    """Write sentences as a column file, a blank line after each sentence.

    Parameters
    ----------
    target : str, path-like or file object
        A path (written atomically: to a temporary file in the same folder, then
        renamed; gzip-compressed when it ends in ``.gz``) or an open text or binary
        file.
    sentences : iterable of sequences of rows
        A row is a tuple or list of str fields (a str alone is a one-field row).
        Every row must have the same number of fields.
    sep : str, default=" "
        Field separator.
    encoding : str, default="utf-8"

    Returns
    -------
    int
        The number of sentences written.

    Raises
    ------
    ValueError
        For an empty sentence, a ragged row, or a field that would not read back the
        same (empty, or containing a line break or the separator; with a whitespace
        separator, any whitespace).
    TypeError
        For a field that is not a str.

    Examples
    --------
    Writing a tagger's output next to the gold labels, for conlleval::

        rows = [[(*tok, t, p) for tok, t, p in zip(x, yt, yp)]
                for x, yt, yp in zip(X_test, y_test, y_pred)]
        write_conll("output.txt", rows)
    """
    sep = " " if sep is None else _check_sep(sep)
    if isinstance(sentences, (str, bytes)) or not hasattr(sentences, "__iter__"):
        raise TypeError(
            f"sentences must be an iterable of sentences, got {type(sentences).__name__}"
        )
    if isinstance(target, (str, bytes, os.PathLike)):
        path = os.fsdecode(os.fspath(target))
        with atomic_file(path, prefix=".tmp-", suffix=".conll") as raw:
            if path.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                    n = _write(gz, sentences, sep, encoding, binary=True)
            else:
                n = _write(raw, sentences, sep, encoding, binary=True)
        return n
    if not hasattr(target, "write"):
        raise TypeError(f"target must be a path or a file object, got {type(target).__name__}")
    binary = not isinstance(target, io.TextIOBase) and (
        isinstance(target, (io.RawIOBase, io.BufferedIOBase))
        or "b" in str(getattr(target, "mode", ""))
    )
    return _write(target, sentences, sep, encoding, binary=binary)


def _write(f, sentences, sep, encoding, binary):
    n_fields = None
    n = 0
    buf = []
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, (str, bytes)) or not hasattr(sentence, "__iter__"):
            raise TypeError(
                f"sentences[{i}] must be a sequence of rows, got {type(sentence).__name__}"
            )
        rows = list(sentence)
        if not rows:
            raise ValueError(f"sentences[{i}] is empty; a sentence needs at least one row")
        for j, row in enumerate(rows):
            if isinstance(row, str):
                row = (row,)
            elif not isinstance(row, (tuple, list)):
                raise TypeError(
                    f"sentences[{i}][{j}] must be a tuple or list of str fields, "
                    f"got {type(row).__name__}"
                )
            if n_fields is None:
                n_fields = len(row)
                if n_fields == 0:
                    raise ValueError(f"sentences[{i}][{j}] has no fields")
            elif len(row) != n_fields:
                raise ValueError(
                    f"sentences[{i}][{j}] has {len(row)} fields but the rows before it have "
                    f"{n_fields}"
                )
            for c, field in enumerate(row):
                _check_field(field, i, j, c, sep)
            buf.append(sep.join(row))
        buf.append("")
        n += 1
        if len(buf) > 8192:
            _flush(f, buf, encoding, binary)
    _flush(f, buf, encoding, binary)
    return n


def _flush(f, buf, encoding, binary):
    text = "".join(line + "\n" for line in buf)
    buf.clear()
    f.write(text.encode(encoding) if binary else text)
