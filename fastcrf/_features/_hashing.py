"""Feature hashing: ``CRF(hash_features=n_buckets)``.

An attribute name goes to bucket ``murmur3_32(utf8(name), seed) % n_buckets``
(MurmurHash3_x86_32, unsigned: scikit-learn's ``murmurhash3_32(name, seed,
positive=True)``; fastcrf/_features/_murmur.h), whatever process or platform hashes
it.  Names that share a bucket share its weights: in a token, their values add up.
There is no alternating sign (scikit-learn's ``alternate_sign``): a CRF's binary
attributes then collide as one attribute that fires for either name, which the
weights of the others can still tell apart.

The model keeps a row of state weights only for the buckets the training data
reached, by decreasing count (so the frequent rows form the dense head of the
layout, as for named attributes), and no name: its size is bounded by
``n_buckets`` whatever the vocabulary.  A fit on token features encodes them a
chunk of sequences at a time (:func:`hash_encode_training`): each chunk's names are
numbered, hashed and dropped, so the names held at once are one chunk's, never the
whole vocabulary; prediction likewise encodes each batch with a vocabulary of that
batch only.  (A :class:`fastcrf.Dataset` keeps its names: a fit on one hashes them
with :func:`hash_training`.)
"""

import itertools

import numpy as np

from ._encode import hash_buckets, murmur3_32, renumber_ids

__all__ = ["MAX_BUCKETS", "HashedVocabulary", "bucket_of", "hash_encode_training",
           "hash_training", "murmur3_32"]

#: Row ids are int32, and a model may use every bucket.
MAX_BUCKETS = 2 ** 31 - 1

#: Sequences encoded at a time by :func:`hash_encode_training`: the distinct names
#: it holds at once are those of this many sequences.
CHUNK_SIZE = 20000


def bucket_of(names, n_buckets, seed):
    """The bucket of every name of ``names`` (a list of str): int64 ndarray."""
    names = names if type(names) is list else list(names)
    out = np.empty(len(names), dtype=np.int64)
    hash_buckets(names, seed, n_buckets, out)
    return out


class HashedVocabulary:
    """The attribute "vocabulary" of a feature-hashed model: buckets, not names.

    Parameters
    ----------
    n_buckets : int
        Size of the hash space (``hash_features``).
    seed : int
        The MurmurHash3 seed (``hash_seed``), in [0, 2**32).
    buckets : array-like of int of shape (n_rows,)
        ``buckets[i]`` is the bucket whose weights are row ``i`` of the state
        weights; distinct, in [0, n_buckets).
    counts : array-like of int of shape (n_rows,), optional
        Occurrences of each row's bucket in the training data.

    Attributes
    ----------
    names : list of str
        ``"#<bucket>"`` for every row (built on first use): what ``attributes_`` and
        ``state_features_`` show in place of attribute names.
    names_held : int or None
        The most distinct attribute names the training held at once while it encoded
        its data: one chunk's for a fit on token features (the memory the names take
        is bounded by the chunk, not by the vocabulary), every name for a fit on a
        :class:`fastcrf.Dataset` (which keeps them), 0 for one built with
        ``hash_features`` (its names were hashed as they were read).  None when not
        known (a loaded model).
    """

    hashed = True
    min_freq = 0

    def __init__(self, n_buckets, seed, buckets, counts=None):
        buckets = np.asarray(buckets, dtype=np.int64)
        if buckets.ndim != 1:
            raise ValueError("buckets must be 1-d")
        if len(buckets) and (buckets.min() < 0 or buckets.max() >= n_buckets):
            raise ValueError(f"buckets must lie in [0, {n_buckets})")
        if len(np.unique(buckets)) != len(buckets):
            raise ValueError("buckets must be distinct")
        self.n_buckets = int(n_buckets)
        self.seed = int(seed)
        self.buckets = buckets
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self._sorted = np.argsort(buckets, kind="stable")
        self._names = None
        self.names_held = None

    @property
    def names(self):
        if self._names is None:
            self._names = [f"#{b}" for b in self.buckets.tolist()]
        return self._names

    def __len__(self):
        return len(self.buckets)

    def __repr__(self):
        return (f"<HashedVocabulary of {len(self.buckets)} used buckets out of "
                f"{self.n_buckets}, seed {self.seed}>")

    def _name_table(self):
        """None: a hashed vocabulary has no name table (the model builds one for a
        named vocabulary when it is created)."""

    def ids_of(self, names):
        """The row of every name of ``names`` (its bucket's), -1 for a name whose
        bucket has no row: int32 ndarray."""
        return self.rows_of_buckets(bucket_of(names, self.n_buckets, self.seed))

    def rows_of_buckets(self, buckets):
        """The row of every bucket of ``buckets``, -1 for one without a row."""
        sorted_buckets = self.buckets[self._sorted]
        where = np.searchsorted(sorted_buckets, buckets)
        where = np.minimum(where, max(len(sorted_buckets) - 1, 0))
        rows = np.full(len(buckets), -1, dtype=np.int32)
        if len(sorted_buckets):
            hit = sorted_buckets[where] == buckets
            rows[hit] = self._sorted[where[hit]]
        return rows

    def encode(self, X, *, dense_values=True, n_jobs=None):
        """``X`` (token features) in this vocabulary's rows: EncodedSequences.  The
        batch's names are numbered by :func:`fit_encode` (a vocabulary of this batch
        only), then hashed; entries whose bucket has no row are dropped."""
        from ._encoding import EncodedSequences, fit_encode

        if not isinstance(X, (list, tuple)):
            X = list(X)
        if len(X) == 0:
            return EncodedSequences(np.zeros(0, np.int32), np.zeros(0), np.zeros(1, np.int64),
                                    np.zeros(1, np.int64), len(self))
        local, features = fit_encode(X, dense_values=dense_values, n_jobs=n_jobs)
        return self.encoded_from(local.names, features)

    def encoded_from(self, names, features):
        """``features`` (ids into ``names``) renumbered to this vocabulary's rows, the
        entries of buckets without a row dropped."""
        from ._encoding import EncodedSequences, _drop_unmapped

        ids = np.array(features.attr_ids, dtype=np.int32)
        renumber_ids(ids, self.ids_of(names))
        ids, values, token_offsets = _drop_unmapped(ids, features.values,
                                                    features.token_offsets)
        return EncodedSequences(ids, values, token_offsets, features.seq_offsets, len(self))

    # The sorted index is redundant with the buckets: rebuilt on unpickling.
    def __getstate__(self):
        return {"n_buckets": self.n_buckets, "seed": self.seed, "buckets": self.buckets,
                "counts": self.counts}

    def __setstate__(self, state):
        self.__init__(state["n_buckets"], state["seed"], state["buckets"], state["counts"])


def hash_training(vocabulary, data, n_buckets, seed):
    """A training set's attributes hashed into buckets: ``(HashedVocabulary, data)``.

    ``vocabulary``'s names are hashed; the rows are the buckets reached, by
    decreasing count (ties: lower bucket first); ``data``'s attribute ids become
    rows (in a new array: a Dataset's are read-only).
    """
    from .._training import TrainingData
    from ._encoding import EncodedSequences

    bucket = bucket_of(vocabulary.names, n_buckets, seed)
    counts = vocabulary.counts
    if counts is None:
        counts = np.bincount(data.features.attr_ids, minlength=len(vocabulary.names))
    used, inverse = np.unique(bucket, return_inverse=True)
    bucket_counts = np.zeros(len(used), dtype=np.int64)
    np.add.at(bucket_counts, inverse, np.asarray(counts, dtype=np.int64))
    order = np.argsort(-bucket_counts, kind="stable")  # used is sorted: ties by bucket
    row_of_used = np.empty(len(used), dtype=np.int32)
    row_of_used[order] = np.arange(len(used), dtype=np.int32)
    hashed = HashedVocabulary(n_buckets, seed, used[order], bucket_counts[order])
    hashed.names_held = len(vocabulary.names)
    f = data.features
    ids = np.array(f.attr_ids, dtype=np.int32)
    renumber_ids(ids, row_of_used[inverse].astype(np.int32))
    # The SGD trainer reorders the entries of a token (ids and values together) in
    # place when the ids are writeable, as these new ones are.
    values = f.values if f.values.flags.writeable else f.values.copy()
    features = EncodedSequences(ids, values, f.token_offsets, f.seq_offsets, len(used))
    return hashed, TrainingData(features, data.labels, data.n_labels, data.max_length,
                                data.weights)


def hash_encode_training(X, y, n_buckets, seed, *, min_freq=0, n_jobs=None, classes=None,
                         chunk_size=None):
    """Encode a training set straight into hash buckets: ``(HashedVocabulary,
    classes, TrainingData)``, never holding the whole vocabulary.

    The sequences are encoded ``chunk_size`` at a time (:func:`fit_encode` numbers a
    chunk's names); the chunk's names are hashed, its entries kept as buckets, and
    its names dropped.  The rows are then the buckets reached, by decreasing count
    (ties: lower bucket first), as :func:`hash_training` numbers them: with
    ``min_freq`` <= 1 the result is bitwise that of :func:`hash_training` on the
    whole encoded set.  ``min_freq`` cuts buckets (a bucket's count is the sum of
    its names'), since the names' own counts are never all held.

    Parameters
    ----------
    X : iterable of sequences of token features
        Read once.
    y : iterable of sequences of str
        One label per token.
    n_buckets, seed : int
        ``hash_features`` and ``hash_seed``.
    min_freq : float, default=0
        Buckets seen fewer times are left out.
    n_jobs : int, optional
        Threads of the encoder (the result does not depend on it).
    classes : list of str, optional
        The labels in code order; by default those of ``y`` as first seen.
    chunk_size : int, optional
        Sequences encoded at a time (default :data:`CHUNK_SIZE`).

    Raises
    ------
    ValueError, TypeError
        For malformed ``X`` or ``y`` (positions counted over the whole input), or
        when no bucket is frequent enough.
    """
    from .._dataset import _iterate, _offsets, _shifted_positions
    from .._training import TrainingData
    from ._encoding import EncodedSequences, encode_labels, fit_encode

    chunk_size = CHUNK_SIZE if chunk_size is None else int(chunk_size)
    X_it = _iterate(X, "X")
    used = np.zeros(0, dtype=np.int64)      # the buckets reached, sorted
    counts = np.zeros(0, dtype=np.int64)    # their occurrences
    chunks = []     # per chunk: buckets (int32), values (or empty), token lengths, seq lengths
    start = names_held = 0
    while True:
        part = list(itertools.islice(X_it, chunk_size))
        if not part:
            break
        with _shifted_positions(start):
            local, encoded = fit_encode(part, dense_values=False, n_jobs=n_jobs)
        start += len(part)
        del part
        names_held = max(names_held, len(local.names))
        bucket = bucket_of(local.names, n_buckets, seed).astype(np.int32)
        seen, inverse = np.unique(bucket, return_inverse=True)
        seen_counts = np.zeros(len(seen), dtype=np.int64)
        np.add.at(seen_counts, inverse, np.asarray(local.counts, dtype=np.int64))
        used, counts = _merged_counts(used, counts, seen, seen_counts)
        chunks.append((bucket[encoded.attr_ids], encoded.values,
                       np.diff(encoded.token_offsets), np.diff(encoded.seq_offsets)))
        del local, encoded, bucket
    if start == 0:
        raise ValueError("X contains no sequences")
    keep = counts >= min_freq
    kept = np.flatnonzero(keep)
    order = kept[np.argsort(-counts[kept], kind="stable")]   # used is sorted: ties by bucket
    row_of_used = np.full(len(used), -1, dtype=np.int32)
    row_of_used[order] = np.arange(len(order), dtype=np.int32)
    hashed = HashedVocabulary(n_buckets, seed, used[order], counts[order])
    hashed.names_held = names_held
    non_unit = any(len(values) for _, values, _, _ in chunks)
    parts_ids, parts_values, parts_tok, parts_seq = [], [], [], []
    chunks.reverse()   # popped in order, each freed once mapped
    while chunks:
        buckets, values, tok_len, seq_len = chunks.pop()
        rows = row_of_used[np.searchsorted(used, buckets)] if len(used) else \
            np.zeros(0, np.int32)
        if non_unit and not len(values):
            values = np.ones(len(rows))
        if not keep.all():
            hit = rows >= 0
            kept_before = np.concatenate(([0], np.cumsum(hit, dtype=np.int64)))
            tok_len = np.diff(kept_before[_offsets(tok_len)])
            rows = rows[hit]
            values = values[hit] if len(values) else values
        parts_ids.append(rows)
        parts_values.append(values)
        parts_tok.append(tok_len)
        parts_seq.append(seq_len)
    ids = np.concatenate(parts_ids).astype(np.int32, copy=False)
    del parts_ids
    values = np.concatenate(parts_values) if non_unit else np.zeros(0)
    features = EncodedSequences(ids, values, _offsets(np.concatenate(parts_tok)),
                                _offsets(np.concatenate(parts_seq)), len(order))
    classes, labels = encode_labels(y, classes, lengths=features.lengths)
    data = TrainingData.build(features, labels, len(classes))
    if len(order) == 0:
        if min_freq <= 1:
            raise ValueError("X holds no attributes: every token's feature list is empty "
                             "(a CRF++ template with no U lines extracts none)")
        raise ValueError(f"no bucket of hash_features occurs at least min_freq={min_freq} "
                         "times")
    return hashed, classes, data


def _merged_counts(used, counts, seen, seen_counts):
    """The sorted union of buckets ``used`` and ``seen`` (both sorted) with their
    counts summed: a linear merge, as ``used`` may hold millions of buckets."""
    where = np.searchsorted(used, seen)
    found = where < len(used)
    found[found] = used[where[found]] == seen[found]
    counts = counts.copy()
    counts[where[found]] += seen_counts[found]
    new = ~found
    return (np.insert(used, where[new], seen[new]),
            np.insert(counts, where[new], seen_counts[new]))
