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
``n_buckets`` whatever the vocabulary.  Training still reads every distinct name
once (the encoder numbers them before they are hashed); prediction encodes each
batch with a vocabulary of that batch only.
"""

import numpy as np

from ._encode import hash_buckets, murmur3_32, renumber_ids

__all__ = ["MAX_BUCKETS", "HashedVocabulary", "bucket_of", "hash_training", "murmur3_32"]

#: Row ids are int32, and a model may use every bucket.
MAX_BUCKETS = 2 ** 31 - 1


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
    f = data.features
    ids = np.array(f.attr_ids, dtype=np.int32)
    renumber_ids(ids, row_of_used[inverse].astype(np.int32))
    # The SGD trainer reorders the entries of a token (ids and values together) in
    # place when the ids are writeable, as these new ones are.
    values = f.values if f.values.flags.writeable else f.values.copy()
    features = EncodedSequences(ids, values, f.token_offsets, f.seq_offsets, len(used))
    return hashed, TrainingData(features, data.labels, data.n_labels, data.max_length,
                                data.weights)
