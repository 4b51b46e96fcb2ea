"""`Dataset`: a training or tagging set encoded once, as flat arrays.

A :class:`Dataset` is built by streaming: sentences are read and encoded a chunk at a
time (:func:`Dataset.from_conll` through a CRF++ template, :func:`Dataset.from_sequences`
from token features in any format the estimator accepts), and each chunk's local
attribute ids are mapped into one growing vocabulary.  No Python object per token
outlives its chunk, so the peak memory is the flat arrays plus one chunk.

The attributes are numbered as :meth:`fastcrf.CRF.fit` numbers them (first seen,
then the ``min_freq`` cut-off, then by decreasing frequency, ties in first-seen
order), so fitting a Dataset gives bitwise the model of fitting the same lists.

:meth:`Dataset.save` writes a directory of ``.npy`` files plus a versioned JSON
header (never a pickle); :meth:`Dataset.load` validates every array before use and
can memory-map them.
"""

import itertools
import json
import os
import re
import shutil
import tempfile

import numpy as np

from ._atomic import atomic_file
from ._features._hashing import MAX_BUCKETS, HashedVocabulary, bucket_of
from ._features._encoding import (
    EncodedSequences,
    _check_min_freq,
    _drop_unmapped,
    encode_labels,
    fit_encode,
)

__all__ = ["Dataset"]

#: The header's name in a dataset directory, and what it says it is.
HEADER = "dataset.json"
FORMAT = "fastcrf-dataset"
FORMAT_VERSION = 1

#: Sentences encoded at a time: large enough that numpy's per-call costs vanish,
#: small enough that one chunk's Python objects stay a few tens of MB.
DEFAULT_CHUNK_SIZE = 20000

# The arrays of a saved dataset: name -> dtype.
_ARRAYS = {
    "attr_ids": np.int32, "values": np.float64, "token_offsets": np.int64,
    "seq_offsets": np.int64, "labels": np.int32, "counts": np.int64,
    "names_utf8": np.uint8, "names_offsets": np.int64,
}

# Values are validated this many at a time, so loading a memory-mapped dataset
# never materialises a temporary as large as the corpus.
_BLOCK = 1 << 22


class Dataset:
    """Encoded sequences (and optionally their labels) with their attribute names.

    Build one with :meth:`from_conll`, :meth:`from_sequences`,
    :meth:`from_encoded` or :meth:`from_sparse`, or read one with :meth:`load`; pass it to
    :meth:`fastcrf.CRF.fit` as ``X`` (with ``y=None``) or to ``predict``.

    Attributes
    ----------
    features : EncodedSequences
        The attribute ids, values (empty when all are 1.0), token and sequence
        offsets.  Ids index ``attributes``.
    attributes : list of str
        Attribute names, by decreasing count (ties: first seen first).
    counts : ndarray of shape (n_attributes,), int64
        Occurrences of each attribute in the data.
    labels : ndarray of shape (n_tokens,), int32, or None
        Label code of every token (indices into ``classes``); None without labels.
    classes : list of str or None
        The labels, in first-seen order.
    min_freq : float
        The cut-off the attributes were built with.
    metadata : dict
        JSON data saved with the dataset: :meth:`from_conll` records the template
        text, ``n_fields``, ``label_column`` and ``sep`` (what ``fastcrf train``
        needs to tag with the model later).
    """

    def __init__(self, features, attributes, counts, labels=None, classes=None, min_freq=0,
                 metadata=None):
        self.features = features
        self.attributes = attributes
        self.counts = counts
        self.labels = labels
        self.classes = classes
        self.min_freq = min_freq
        self.metadata = {} if metadata is None else metadata

    # ------------------------------------------------------------------ #
    # Sizes                                                                #
    # ------------------------------------------------------------------ #

    @property
    def n_sequences(self):
        """Number of sequences."""
        return self.features.n_sequences

    @property
    def n_tokens(self):
        """Number of tokens over all sequences."""
        return self.features.n_tokens

    def __len__(self):
        return self.n_sequences

    @property
    def hashing(self):
        """``(n_buckets, seed)`` of a dataset built with ``hash_features``, else None."""
        h = self.metadata.get("hashing")
        return None if h is None else (h["n_buckets"], h["seed"])

    def buckets(self):
        """The bucket of every attribute of a hashed dataset (int64 ndarray)."""
        if self.hashing is None:
            raise ValueError("the dataset is not hashed (build it with hash_features)")
        return np.array([int(a[1:]) for a in self.attributes], dtype=np.int64)

    def __repr__(self):
        labelled = f", {len(self.classes)} labels" if self.classes is not None else ""
        return (f"<Dataset of {self.n_sequences:,} sequences, {self.n_tokens:,} tokens, "
                f"{len(self.attributes):,} attributes{labelled}>")

    # ------------------------------------------------------------------ #
    # Building                                                             #
    # ------------------------------------------------------------------ #

    @classmethod
    def from_sequences(cls, X, y=None, *, min_freq=0, chunk_size=DEFAULT_CHUNK_SIZE,
                       n_jobs=None):
        """Encode sequences of token features, a chunk at a time.

        Parameters
        ----------
        X : iterable of sequences of token features
            Any token format :meth:`fastcrf.CRF.fit` accepts; may be a generator (it
            is read once).
        y : iterable of sequences of str, optional
            One label per token; read alongside ``X``.
        min_freq : float, default=0
            Attributes seen fewer times are left out (as ``CRF(min_freq=...)``).
        chunk_size : int, default=20000
            Sequences encoded at a time.
        n_jobs : int, optional
            Threads of the encoder (the result does not depend on it).

        Returns
        -------
        Dataset

        Raises
        ------
        ValueError, TypeError
            For malformed sequences, labels or arguments, naming the position in
            ``X`` or ``y``.
        """
        _check_min_freq(min_freq)
        chunk_size = _check_chunk_size(chunk_size)
        X_it = _iterate(X, "X")
        y_it = None if y is None else _iterate(y, "y")
        builder = _Builder(labelled=y is not None)
        start = 0
        while True:
            X_chunk = list(itertools.islice(X_it, chunk_size))
            y_chunk = None if y_it is None else list(itertools.islice(y_it, chunk_size))
            if y_chunk is not None and len(y_chunk) != len(X_chunk):
                raise ValueError(
                    "X and y must have the same number of sequences: "
                    f"{'y' if len(y_chunk) < len(X_chunk) else 'X'} ends after "
                    f"{start + min(len(X_chunk), len(y_chunk))} sequences, the other does not")
            if not X_chunk:
                break
            with _shifted_positions(start):
                vocabulary, encoded = fit_encode(X_chunk, dense_values=False, n_jobs=n_jobs)
                builder.add(vocabulary.names, encoded, y_chunk)
            start += len(X_chunk)
            del X_chunk, y_chunk
        if start == 0:
            raise ValueError("X contains no sequences")
        return builder.finish(min_freq)

    @classmethod
    def from_conll(cls, paths, template, *, label_column=-1, sep=None, min_freq=0,
                   chunk_size=DEFAULT_CHUNK_SIZE, docstart=True, encoding="utf-8",
                   hash_features=None, hash_seed=0):
        """Read column files and encode them through a CRF++ template, streaming.

        The result equals ``Dataset.from_sequences(template.transform(X), y)`` for
        ``X, y`` read by :func:`fastcrf.io.load_conll`, without building the
        per-token feature lists.  UTF-8 files given as paths or binary streams are
        parsed and expanded by compiled code (no Python object per token); other
        encodings and text streams go through :func:`fastcrf.io.read_conll`.  Both
        give bitwise the same Dataset and the same errors.

        Parameters
        ----------
        paths : str, path-like, file object, or a list of them
            Column files (``.gz`` ones are decompressed), read in order.
        template : fastcrf.templates.Template or str
            The template, or its text.
        label_column : int or None, default=-1
            The column of the labels (negative counts from the end); None reads every
            column as a token column, for a dataset without labels.
        sep : str, optional
            Field separator (default: any whitespace), as in :func:`fastcrf.io.read_conll`.
        min_freq : float, default=0
            Attributes seen fewer times are left out.
        chunk_size : int, default=20000
            Sentences encoded at a time.
        docstart : bool, default=True
            Skip ``-DOCSTART-`` lines.
        encoding : str, default="utf-8"
        hash_features : int >= 2, optional
            Feature hashing, as ``CRF(hash_features=...)``: each attribute is replaced
            by its bucket while reading (``attributes`` are ``"#<bucket>"``, in
            first-seen order before the count order; ``min_freq`` cuts buckets), so
            no attribute name is held, whatever the vocabulary.  ``metadata["hashing"]``
            records the bucket count and seed; fit the dataset with the same
            ``hash_features`` and ``hash_seed``.
        hash_seed : int in [0, 2**32), default=0
            The MurmurHash3 seed of ``hash_features``.

        Returns
        -------
        Dataset

        Raises
        ------
        ValueError
            For a malformed file (naming it and the line), files with different
            numbers of columns, rows too short for the template, no sentences, or
            ``hash_features`` / ``hash_seed`` out of range.
        TypeError
            For a ``template`` that is neither a Template nor a str.
        """
        from ._features import _conll
        from .templates import Template

        if isinstance(template, str):
            template = Template(template)
        elif not isinstance(template, Template):
            raise TypeError("template must be a fastcrf.templates.Template or its text, "
                            f"got {type(template).__name__}")
        if label_column is not None and (isinstance(label_column, bool)
                                         or not isinstance(label_column, int)):
            raise TypeError(
                f"label_column must be an int or None, got {type(label_column).__name__}")
        _check_min_freq(min_freq)
        chunk_size = _check_chunk_size(chunk_size)
        hashing = _check_hashing(hash_features, hash_seed)
        if isinstance(paths, (str, bytes, os.PathLike)) or hasattr(paths, "read"):
            paths = [paths]
        paths = list(paths)
        if not paths:
            raise ValueError("paths must name at least one column file")
        builder = _Builder(labelled=label_column is not None)
        if _conll.eligible(paths, template, encoding):
            n_fields = _conll.read(
                paths, template, builder, label_column=label_column, sep=sep,
                docstart=docstart, encoding=encoding, chunk_size=chunk_size,
                check_columns=_check_columns, name_of=_name, hashing=hashing)
        else:
            n_fields = cls._read_python(paths, template, builder, label_column, sep,
                                        docstart, encoding, chunk_size, hashing)
        if n_fields is None:
            raise ValueError(f"no sentences in {', '.join(map(_name, paths))}")
        dataset = builder.finish(min_freq)
        dataset.metadata = {
            "template": template.text, "n_fields": n_fields, "sep": sep,
            "label_column": None if label_column is None else label_column % n_fields}
        if hashing is not None:
            dataset.metadata["hashing"] = {"n_buckets": hashing[0], "seed": hashing[1]}
        return dataset

    @staticmethod
    def _read_python(paths, template, builder, label_column, sep, docstart, encoding,
                     chunk_size, hashing=None):
        """The Python path of :meth:`from_conll` (``io.read_conll`` rows through
        ``Template.encode``): the number of fields per row, None without sentences."""
        from .io import read_conll

        n_fields = None
        for path in paths:
            sentences = read_conll(path, sep=sep, docstart=docstart, encoding=encoding)
            while True:
                chunk = list(itertools.islice(sentences, chunk_size))
                if not chunk:
                    break
                n = len(chunk[0][0])
                if n_fields is None:
                    n_fields = n
                    _check_columns(template, label_column, n, path)
                elif n != n_fields:
                    raise ValueError(f"{_name(path)} has {n} fields per row but the first "
                                     f"file has {n_fields}")
                if label_column is None:
                    X, y = chunk, None
                else:
                    k = label_column % n
                    y = [[row[k] for row in s] for s in chunk]
                    X = [[row[:k] + row[k + 1:] for row in s] for s in chunk]
                del chunk
                names, encoded = template.encode(X)
                del X
                if hashing is not None:
                    # Names of one bucket become one attribute in builder.add.
                    names = [f"#{b}" for b in bucket_of(names, *hashing).tolist()]
                builder.add(names, encoded, y)
        return n_fields

    @classmethod
    def from_sparse(cls, X, y=None, *, lengths, feature_names=None):
        """A Dataset of a scipy.sparse token matrix (seqlearn's ``X``, ``lengths``).

        Row ``t`` of ``X`` is a token whose attributes are its stored entries: column
        ``j`` is the attribute ``feature_names[j]`` (default ``str(j)``) with the
        entry as its weight.  Entries of the same cell are summed and a stored 0 is
        no entry (scipy's canonical form).  The attributes are numbered as a fit
        numbers those of the equivalent token dicts, so ``CRF.fit`` on this Dataset
        gives bitwise the model of the dicts.  ``CRF.fit(X, y, lengths=...)`` builds
        it for you.

        Parameters
        ----------
        X : scipy.sparse matrix or array of shape (n_tokens, n_features)
            Real, finite entries (any sparse format; converted to CSR).
        y : sequence of str, or sequence of sequences of str, optional
            One label per row, flat (seqlearn's convention) or one list per
            sequence.
        lengths : array-like of int of shape (n_sequences,)
            Rows per sequence, each >= 1, summing to ``n_tokens``.
        feature_names : sequence of str of length n_features, optional
            Distinct attribute names of the columns (e.g. a DictVectorizer's
            ``get_feature_names_out()``).

        Returns
        -------
        Dataset

        Raises
        ------
        ValueError, TypeError
            Naming ``X``, ``y``, ``lengths`` or ``feature_names``.
        """
        from ._sparse_input import sparse_dataset

        return sparse_dataset(X, y, lengths=lengths, feature_names=feature_names)

    @classmethod
    def from_encoded(cls, encoded, y=None, *, attributes=None):
        """A Dataset of already encoded sequences (e.g. ``Template.encode``'s).

        Parameters
        ----------
        encoded : EncodedSequences
        y : iterable of sequences of str, optional
            One label per token.
        attributes : list of str, optional
            The name of every attribute id (``Template.encode``'s ``names``); by
            default the ids written as str (``"0"``, ``"1"``, ...).

        Returns
        -------
        Dataset
        """
        if not isinstance(encoded, EncodedSequences):
            raise TypeError(
                f"encoded must be an EncodedSequences, got {type(encoded).__name__}")
        _check_features(encoded, "encoded")
        if attributes is None:
            attributes = [str(i) for i in range(encoded.n_attributes)]
        else:
            attributes = _check_names(attributes, encoded.n_attributes, "attributes")
        builder = _Builder(labelled=y is not None)
        builder.add(attributes, encoded, None if y is None else list(_iterate(y, "y")))
        return builder.finish(0)

    # ------------------------------------------------------------------ #
    # Use                                                                  #
    # ------------------------------------------------------------------ #

    def encoded_for(self, vocabulary):
        """The features in the ids of ``vocabulary`` (a fitted model's): attributes it
        lacks are dropped.  Returns an EncodedSequences."""
        table = vocabulary._name_table()
        if self.hashing is not None:
            if not getattr(vocabulary, "hashed", False) or (
                    vocabulary.n_buckets, vocabulary.seed) != self.hashing:
                raise ValueError(f"the dataset is hashed into {self.hashing[0]} buckets "
                                 f"with seed {self.hashing[1]}: the model must be too")
            remap = vocabulary.rows_of_buckets(self.buckets())
        elif getattr(vocabulary, "hashed", False):  # fastcrf._features._hashing
            remap = vocabulary.ids_of(self.attributes)
        elif table is not None:
            remap = np.fromiter(map(table.lookup, self.attributes), dtype=np.int32,
                                count=len(self.attributes))
        else:
            index = vocabulary.index
            remap = np.fromiter((index.get(name, -1) for name in self.attributes),
                                dtype=np.int32, count=len(self.attributes))
        f = self.features
        ids = remap[f.attr_ids] if len(remap) else np.zeros(0, np.int32)
        ids, values, token_offsets = _drop_unmapped(ids, f.values, f.token_offsets)
        return EncodedSequences(ids, values, token_offsets, f.seq_offsets, len(vocabulary))

    # ------------------------------------------------------------------ #
    # Files                                                                #
    # ------------------------------------------------------------------ #

    def save(self, path):
        """Write the dataset to directory ``path`` (created; replaced if it holds a
        dataset).

        The directory holds one ``.npy`` file per array and ``dataset.json`` (format,
        version, sizes, labels, cut-off).  It is written beside ``path`` and renamed
        into place, so a reader never sees half a dataset.

        Parameters
        ----------
        path : str or path-like

        Raises
        ------
        ValueError
            When ``path`` exists and is not a dataset directory.
        """
        path = os.fsdecode(os.fspath(path))
        if os.path.exists(path) and not os.path.isfile(os.path.join(path, HEADER)):
            raise ValueError(f"path {path!r} exists and is not a dataset directory: "
                             "refusing to replace it")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise ValueError(f"cannot write the dataset: no such folder {parent!r}")
        tmp = tempfile.mkdtemp(prefix=".fastcrf-dataset-", dir=parent)
        try:
            names = "".join(self.attributes).encode("utf-8", "surrogatepass")
            lengths = np.fromiter((len(n.encode("utf-8", "surrogatepass"))
                                   for n in self.attributes), np.int64,
                                  count=len(self.attributes))
            f = self.features
            arrays = {
                "attr_ids": f.attr_ids, "values": f.values,
                "token_offsets": f.token_offsets, "seq_offsets": f.seq_offsets,
                "counts": self.counts,
                "names_utf8": np.frombuffer(names, dtype=np.uint8),
                "names_offsets": np.concatenate(([0], np.cumsum(lengths))),
            }
            if self.labels is not None:
                arrays["labels"] = self.labels
            for name, array in arrays.items():
                with open(os.path.join(tmp, name + ".npy"), "wb") as out:
                    np.save(out, np.ascontiguousarray(array, dtype=_ARRAYS[name]),
                            allow_pickle=False)
                    out.flush()
                    os.fsync(out.fileno())
            header = {
                "format": FORMAT, "version": FORMAT_VERSION,
                "n_sequences": self.n_sequences, "n_tokens": self.n_tokens,
                "n_entries": int(len(f.attr_ids)), "n_attributes": len(self.attributes),
                "classes": self.classes, "min_freq": self.min_freq,
                "metadata": self.metadata,
            }
            try:
                text = json.dumps(header, indent=1)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"metadata must hold only JSON data ({exc})") from None
            with atomic_file(os.path.join(tmp, HEADER), "w", encoding="utf-8") as out:
                out.write(text)
            if os.path.exists(path):
                old = tempfile.mkdtemp(prefix=".fastcrf-dataset-old-", dir=parent)
                os.rename(path, os.path.join(old, "d"))
                os.rename(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path, *, mmap=True):
        """Read a dataset directory written by :meth:`save`.

        Every array is checked (dtype, shape, offsets, id and label ranges, finite
        values) before the dataset is returned: a damaged or hostile directory is a
        ``ValueError``, never a crash.  Nothing in it is executed (no pickle).

        Parameters
        ----------
        path : str or path-like
        mmap : bool, default=True
            Memory-map the arrays (read-only) rather than reading them into memory.
            SGD then reads a mapped dataset larger than its window (1 GiB) a window
            of shuffled blocks at a time (:meth:`fastcrf.CRF.fit`).

        Returns
        -------
        Dataset

        Raises
        ------
        ValueError
            For a missing, malformed or inconsistent file, or an unsupported version.
        """
        path = os.fsdecode(os.fspath(path))
        head_path = os.path.join(path, HEADER)
        if not os.path.isfile(head_path):
            raise ValueError(f"{path!r} is not a dataset directory (no {HEADER})")
        try:
            with open(head_path, encoding="utf-8") as f:
                header = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{head_path}: not a valid JSON header ({exc})") from None
        head = _check_header(header, head_path)
        arrays = {}
        for name, dtype in _ARRAYS.items():
            if name == "labels" and head["classes"] is None:
                continue
            arrays[name] = _load_array(os.path.join(path, name + ".npy"), dtype, mmap)
        return _validated(arrays, head, path)


# ---------------------------------------------------------------------- #
# The streaming build                                                      #
# ---------------------------------------------------------------------- #


class _Builder:
    """Collects encoded chunks, mapping each chunk's attribute and label ids into
    global ones (in first-seen order across chunks), and counts the attributes."""

    def __init__(self, labelled):
        self.index = {}  # attribute name -> global first-seen id
        self.class_index = {}
        self.labelled = labelled
        self.chunks = []  # (ids, values or None, token lengths (int32), seq lengths, labels)
        self.counts = np.zeros(0, dtype=np.int64)
        self.non_unit = False

    def add(self, names, encoded, y):
        """Add one chunk: local ``names`` (id i is ``names[i]``), its ``encoded``
        arrays, and its label sequences ``y`` (or None)."""
        index = self.index
        # setdefault's default is evaluated first: a new name gets the next id.
        remap = np.fromiter((index.setdefault(n, len(index)) for n in names),
                            dtype=np.int32, count=len(names))
        ids = remap[encoded.attr_ids] if len(remap) else np.zeros(0, np.int32)
        counts = np.bincount(ids, minlength=len(index))
        counts[:len(self.counts)] += self.counts
        self.counts = counts
        values = encoded.values
        if len(values) and np.all(values == 1.0):
            values = None
        elif len(values):
            self.non_unit = True
        else:
            values = None
        labels = None
        if self.labelled:
            local, codes = encode_labels(y, lengths=encoded.lengths)
            cindex = self.class_index
            to_global = np.fromiter((cindex.setdefault(c, len(cindex)) for c in local),
                                    dtype=np.int32, count=len(local))
            labels = to_global[codes]
        self.chunks.append((ids, values, np.diff(encoded.token_offsets),
                            np.diff(encoded.seq_offsets), labels))

    def add_global(self, ids, n_rules, seq_lengths, labels):
        """Add one chunk whose attribute and label ids are already global (the
        compiled reader's: ``n_rules`` entries per token, all 1.0); the names come
        with :meth:`set_vocabulary`."""
        self.chunks.append((ids, None, np.full(len(ids) // max(n_rules, 1), n_rules,
                                               dtype=np.int64), seq_lengths, labels))

    def set_vocabulary(self, names, counts, classes):
        """The names of the global ids of :meth:`add_global`'s chunks (first-seen
        order), their counts, and the labels (None without)."""
        self.index = names
        self.counts = counts
        if classes is not None:
            self.class_index = classes

    def finish(self, min_freq):
        """The Dataset: attributes cut at ``min_freq``, numbered by decreasing count
        (ties: first seen); the chunks are moved into flat arrays one at a time, so
        the peak is the arrays plus one chunk."""
        counts = self.counts
        keep = counts >= min_freq
        kept = np.flatnonzero(keep)
        order = kept[np.argsort(-counts[kept], kind="stable")]
        rank = np.full(len(counts), -1, dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        names = list(self.index)
        attributes = [names[i] for i in order.tolist()]
        del names
        self.index = None
        dropping = not keep.all()
        n_entries = int(counts[kept].sum())
        n_tokens = sum(len(c[2]) for c in self.chunks)
        n_seq = sum(len(c[3]) for c in self.chunks)
        attr_ids = np.empty(n_entries, dtype=np.int32)
        values = np.empty(n_entries if self.non_unit else 0, dtype=np.float64)
        tok_len = np.empty(n_tokens, dtype=np.int64)
        seq_len = np.empty(n_seq, dtype=np.int64)
        labels = np.empty(n_tokens, dtype=np.int32) if self.labelled else None
        e = t = s = 0
        chunks = self.chunks
        chunks.reverse()  # popped in order, each freed once copied
        while chunks:
            ids, vals, lens, slens, labs = chunks.pop()
            if dropping:
                ids = rank[ids]
                kept_before = np.concatenate(([0], np.cumsum(ids >= 0, dtype=np.int64)))
                lens = np.diff(kept_before[_offsets(lens)])
                if vals is not None:
                    vals = vals[ids >= 0]
                ids = ids[ids >= 0]
                attr_ids[e:e + len(ids)] = ids
            else:
                # Straight into place: no temporary as large as the chunk.
                # (mode="clip": the ids are in range, and "raise" would buffer the output)
                np.take(rank, ids, out=attr_ids[e:e + len(ids)], mode="clip")
            if self.non_unit:
                values[e:e + len(ids)] = 1.0 if vals is None else vals
            tok_len[t:t + len(lens)] = lens
            seq_len[s:s + len(slens)] = slens
            if labels is not None:
                labels[t:t + len(lens)] = labs
            e += len(ids)
            t += len(lens)
            s += len(slens)
        token_offsets = _offsets(tok_len)
        seq_offsets = _offsets(seq_len)
        del tok_len, seq_len
        features = EncodedSequences(attr_ids, values, token_offsets, seq_offsets,
                                    len(attributes))
        classes = list(self.class_index) if self.labelled else None
        return Dataset(features, attributes, counts[order], labels, classes, min_freq)


def _offsets(lengths):
    out = np.empty(len(lengths) + 1, dtype=np.int64)
    out[0] = 0
    np.cumsum(lengths, out=out[1:])
    return out


class _shifted_positions:
    """Re-raise a chunk's ValueError/TypeError with ``X[i]``/``y[i]`` counted from the
    start of the whole input rather than of the chunk."""

    _POS = re.compile(r"\b([Xy])\[(\d+)\]")

    def __init__(self, start):
        self.start = start

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, (ValueError, TypeError)) or not self.start:
            return False
        message = self._POS.sub(
            lambda m: f"{m.group(1)}[{int(m.group(2)) + self.start}]", str(exc))
        raise type(exc)(message) from None


def _iterate(X, what):
    if isinstance(X, (str, bytes)) or not hasattr(X, "__iter__"):
        raise TypeError(f"{what} must be an iterable of sequences, got {type(X).__name__}")
    return iter(X)


def _check_hashing(n_buckets, seed):
    """``(n_buckets, seed)`` of ``hash_features`` / ``hash_seed``, or None."""
    if n_buckets is None:
        return None
    for name, value, low, high in (("hash_features", n_buckets, 2, MAX_BUCKETS),
                                   ("hash_seed", seed, 0, 2 ** 32 - 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not low <= value <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(n_buckets), int(seed)


def _check_chunk_size(chunk_size):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size must be an int, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return int(chunk_size)


def _check_columns(template, label_column, n, path):
    if label_column is not None:
        if not -n <= label_column < n:
            raise ValueError(f"label_column={label_column} is out of range for "
                             f"{_name(path)}, which has {n} columns")
        if n == 1:
            raise ValueError(f"{_name(path)}: rows have a single field; training needs "
                             "at least one token column and a label column")
        n -= 1
    if template.n_columns > n:
        raise ValueError(f"{_name(path)}: the template reads column {template.n_columns - 1} "
                         f"but the rows have {n} token columns")


def _name(path):
    if hasattr(path, "read"):
        return getattr(path, "name", "<stream>")
    return os.fsdecode(os.fspath(path))


def _check_names(names, n, what):
    names = list(names)
    if len(names) != n:
        raise ValueError(f"{what} must name every attribute id: {n} expected, got {len(names)}")
    for i, name in enumerate(names):
        if type(name) is not str:
            raise TypeError(f"{what}[{i}] must be a str, got {type(name).__name__}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must be distinct")
    return names


# ---------------------------------------------------------------------- #
# Loading, and the checks an untrusted directory must pass                 #
# ---------------------------------------------------------------------- #


def _check_header(header, where):
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{where}: not a fastcrf dataset header")
    version = header.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{where}: dataset format version {version!r} is not supported "
                         f"(this fastcrf reads version {FORMAT_VERSION})")
    head = {}
    for key in ("n_sequences", "n_tokens", "n_entries", "n_attributes"):
        value = header.get(key)
        if type(value) is not int or value < 0:
            raise ValueError(f"{where}: {key} must be a non-negative int, got {value!r}")
        head[key] = value
    classes = header.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(
            isinstance(c, str) for c in classes) or len(set(classes)) != len(classes)):
        raise ValueError(f"{where}: classes must be null or a list of distinct str")
    head["classes"] = classes
    min_freq = header.get("min_freq", 0)
    if isinstance(min_freq, bool) or not isinstance(min_freq, (int, float)):
        raise ValueError(f"{where}: min_freq must be a number, got {min_freq!r}")
    head["min_freq"] = min_freq
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: metadata must be a JSON object")
    head["metadata"] = metadata
    return head


def _load_array(path, dtype, mmap):
    if not os.path.isfile(path):
        raise ValueError(f"{path}: missing from the dataset directory")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a valid .npy array ({exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype != np.dtype(dtype).newbyteorder("=") \
            or array.ndim != 1:
        raise ValueError(f"{path}: expected a 1-d {np.dtype(dtype).name} array, got "
                         f"{getattr(array, 'dtype', type(array).__name__)} of shape "
                         f"{getattr(array, 'shape', '?')}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{path}: the array is not C-contiguous")
    return array


def _blocks(array):
    for i in range(0, len(array), _BLOCK):
        yield array[i:i + _BLOCK]


def _check_offsets(offsets, n, end, strict, what):
    if len(offsets) != n + 1:
        raise ValueError(f"{what} has {len(offsets)} entries, expected {n + 1}")
    if offsets[0] != 0 or offsets[-1] != end:
        raise ValueError(f"{what} must run from 0 to {end}")
    step = np.diff(offsets)
    if (step <= 0).any() if strict else (step < 0).any():
        raise ValueError(f"{what} must be {'strictly increasing' if strict else 'non-decreasing'}")


def _check_range(array, high, what):
    for block in _blocks(array):
        if len(block) and (block.min() < 0 or block.max() >= high):
            raise ValueError(f"{what} holds a value outside [0, {high})")


def _check_features(f, what):
    """The EncodedSequences invariants the kernels rely on (they check nothing)."""
    for name, dtype in (("attr_ids", np.int32), ("values", np.float64),
                        ("token_offsets", np.int64), ("seq_offsets", np.int64)):
        array = getattr(f, name)
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1 \
                or not array.flags.c_contiguous:
            raise ValueError(f"{what}.{name} must be a C-contiguous 1-d {np.dtype(dtype).name} "
                             "array")
    n_entries = len(f.attr_ids)
    if len(f.values) not in (0, n_entries):
        raise ValueError(f"{what}.values must be empty or as long as attr_ids")
    if len(f.seq_offsets) < 1 or len(f.token_offsets) < 1:
        raise ValueError(f"{what}: the offsets arrays must not be empty")
    _check_offsets(f.token_offsets, len(f.token_offsets) - 1, n_entries, False,
                   f"{what}.token_offsets")
    _check_offsets(f.seq_offsets, len(f.seq_offsets) - 1, len(f.token_offsets) - 1, True,
                   f"{what}.seq_offsets")
    _check_range(f.attr_ids, f.n_attributes, f"{what}.attr_ids")
    for block in _blocks(f.values):
        if not np.isfinite(block).all():
            raise ValueError(f"{what}.values must be finite")


def _validated(arrays, head, path):
    where = f"dataset {path!r}"
    n_attr = head["n_attributes"]
    for name, n in (("attr_ids", head["n_entries"]), ("counts", n_attr),
                    ("names_offsets", n_attr + 1)):
        if len(arrays[name]) != n:
            raise ValueError(f"{where}: {name} has {len(arrays[name])} entries, expected {n}")
    features = EncodedSequences(arrays["attr_ids"], arrays["values"],
                                arrays["token_offsets"], arrays["seq_offsets"], n_attr)
    if features.n_sequences != head["n_sequences"] or features.n_tokens != head["n_tokens"]:
        raise ValueError(f"{where}: the offsets do not match the header's sizes")
    _check_features(features, where)
    if (arrays["counts"] < 0).any():
        raise ValueError(f"{where}: counts must be non-negative")
    blob, offs = arrays["names_utf8"], arrays["names_offsets"]
    _check_offsets(offs, n_attr, len(blob), False, f"{where}: names_offsets")
    try:
        text = bytes(blob)
        starts, ends = offs[:-1].tolist(), offs[1:].tolist()
        names = [text[a:b].decode("utf-8", "surrogatepass") for a, b in zip(starts, ends)]
    except UnicodeDecodeError:
        raise ValueError(f"{where}: an attribute name is not valid UTF-8") from None
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: attribute names must be distinct")
    labels = arrays.get("labels")
    classes = head["classes"]
    if labels is not None:
        if len(labels) != features.n_tokens:
            raise ValueError(f"{where}: labels has {len(labels)} entries, expected "
                             f"{features.n_tokens}")
        _check_range(labels, len(classes), f"{where}: labels")
    return Dataset(features, names, arrays["counts"], labels, classes, head["min_freq"],
                   head["metadata"])


# ---------------------------------------------------------------------- #
# What a fit reads                                                         #
# ---------------------------------------------------------------------- #


def is_encoded(X):
    """Whether ``X`` is a Dataset or EncodedSequences (the fit's array path)."""
    return isinstance(X, (Dataset, EncodedSequences))


def training_set(X, y, min_freq):
    """``(vocabulary, classes, TrainingData)`` of a Dataset (``y`` None) or of
    EncodedSequences with their label sequences ``y``: what
    :func:`fastcrf._training.encode_training` returns for lists.

    The arrays are the dataset's own, read-only (a memory-mapped dataset is read by
    the trainer in place; a trainer that reorders entries copies them once).  A
    ``min_freq`` above the dataset's drops its rarest attributes, which are the last
    ids (they are numbered by decreasing count).
    """
    from ._features._encoding import AttributeVocabulary
    from ._training import TrainingData

    if isinstance(X, EncodedSequences):
        if y is None:
            raise ValueError("y is required when X is EncodedSequences (one label "
                             "sequence per sequence of X)")
        X = Dataset.from_encoded(X, y)
    elif y is not None:
        raise ValueError("y must be None when X is a Dataset: its labels are part of it")
    if X.labels is None:
        raise ValueError("X is a Dataset without labels: build it with labels "
                         "(label_column or y) to fit on it")
    f = X.features
    counts = np.asarray(X.counts)
    n_keep = int(np.count_nonzero(counts >= min_freq))
    if n_keep == 0:
        raise ValueError(f"no attribute occurs at least min_freq={min_freq} times")
    ids, values, token_offsets = f.attr_ids, f.values, f.token_offsets
    if n_keep < len(counts):
        keep = ids < n_keep
        token_offsets = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))[token_offsets]
        ids = ids[keep]
        values = values[keep] if len(values) else values
    if X.hashing is not None:
        vocabulary, ids = _hashed_rows(X, n_keep, ids)
    else:
        vocabulary = AttributeVocabulary(X.attributes[:n_keep], counts[:n_keep],
                                         max(min_freq, X.min_freq))
    features = EncodedSequences(_readonly(ids), _readonly(values), _readonly(token_offsets),
                                _readonly(f.seq_offsets), n_keep)
    data = TrainingData.build(features, X.labels, len(X.classes))
    return vocabulary, list(X.classes), data


def _hashed_rows(X, n_keep, ids):
    """A hashed dataset's first ``n_keep`` attributes (buckets) as a
    :class:`HashedVocabulary` whose rows are ordered as ``hash_training`` orders
    them (decreasing count, ties: lower bucket first), and ``ids`` renumbered to
    those rows (a new array)."""
    from ._features._encode import renumber_ids

    buckets = X.buckets()[:n_keep]
    counts = np.asarray(X.counts[:n_keep], dtype=np.int64)
    order = np.lexsort((buckets, -counts))
    row = np.empty(n_keep, dtype=np.int32)
    row[order] = np.arange(n_keep, dtype=np.int32)
    ids = np.array(ids, dtype=np.int32)
    renumber_ids(ids, row)
    vocabulary = HashedVocabulary(X.hashing[0], X.hashing[1], buckets[order], counts[order])
    vocabulary.names_held = 0
    return vocabulary, ids


def dev_set(X_dev, y_dev, vocabulary, classes):
    """``(features, label codes)`` of a Dataset dev set (as ``encode_dev``): labels the
    training set lacks get -1."""
    if y_dev is not None:
        raise ValueError("y_dev must be None when X_dev is a Dataset")
    if X_dev.labels is None:
        raise ValueError("X_dev is a Dataset without labels")
    index = {label: k for k, label in enumerate(classes)}
    to_train = np.array([index.get(c, -1) for c in X_dev.classes], dtype=np.int64)
    return X_dev.encoded_for(vocabulary), to_train[X_dev.labels]


def _readonly(array):
    view = array.view()
    view.flags.writeable = False
    return view
