"""One vocabulary for every partition: attribute and label ids agreed across workers.

Each partition is encoded once, on its worker, with a vocabulary of its own
(:func:`encode_local`).  The partitions' names and counts are merged pairwise on the
cluster (:func:`merge_summaries`: the names of ``a``, then those of ``b`` not in
``a``, counts added), which gives the names in the order of their first occurrence in
the whole data set, as a single-machine fit sees them.  The driver then applies
``min_freq`` to the global counts and numbers the kept attributes by decreasing
frequency, ties in first-seen order (:func:`global_vocabulary`, as
:func:`fastcrf._training.sort_by_frequency` does), so a model trained on the cluster
has the ids of one trained on one machine.  Each worker finally renumbers its
partition to the global ids (:func:`globalize`), dropping the attributes under
``min_freq``; labels are merged and renumbered the same way.
"""

from dataclasses import dataclass

import numpy as np

from .._features._encode import renumber_ids
from .._features._encoding import (AttributeVocabulary, EncodedSequences, _drop_unmapped,
                                   encode, encode_labels, fit_encode)
from .._layout import StateLayout
from .._training import TrainingData, chain_mask
from ._cluster import realigned


@dataclass(eq=False)
class LocalPart:
    """A partition encoded with its own vocabulary (held on its worker).

    Attributes
    ----------
    names : list of str
        The partition's attributes, in first-seen order (local id = position).
    counts : ndarray of shape (len(names),), int64
    features : EncodedSequences
        Local attribute ids.
    classes : list of str
        The partition's labels, in first-seen order.
    labels : ndarray of shape (n_tokens,), int32
        Local label codes (None for a partition without labels).
    """

    names: list
    counts: np.ndarray
    features: EncodedSequences
    classes: list
    labels: np.ndarray


@dataclass(eq=False)
class Summary:
    """What the driver needs of one or more partitions: names, counts, sizes."""

    names: list
    counts: np.ndarray
    classes: list
    n_sequences: int
    n_tokens: int


def _in_partition(exc, index):
    """``exc`` with the partition named: its positions count from the partition's start."""
    return type(exc)(f"partition {index} of the bag: {exc}")


def encode_local(X, y, index):
    """Encode partition ``index`` (``X`` and ``y`` its sequences; ``y`` None when there
    are no labels) with a vocabulary of its own.  An empty partition gives None.

    Raises
    ------
    ValueError, TypeError
        For malformed sequences (as :meth:`fastcrf.CRF.fit` would), naming the partition.
    """
    X = list(X)
    y = None if y is None else list(y)
    if not X:
        if y:
            raise ValueError(f"partition {index}: X_bag has no sequence there but y_bag "
                             f"has {len(y)}: the bags must be partitioned alike")
        return None
    try:
        vocabulary, features = fit_encode(X, 0, dense_values=False, n_jobs=1)
        classes, labels = [], None
        if y is not None:
            classes, labels = encode_labels(y, lengths=features.lengths)
    except (ValueError, TypeError) as exc:
        raise _in_partition(exc, index) from None
    return LocalPart(vocabulary.names, vocabulary.counts, features, classes, labels)


def summarize(part):
    """The :class:`Summary` of a :class:`LocalPart` (None for an empty partition)."""
    if part is None:
        return None
    f = part.features
    return Summary(part.names, part.counts, part.classes, f.n_sequences, f.n_tokens)


def _merge_names(a, b):
    """``a`` then the names of ``b`` not in ``a``, and the merged position of each name
    of ``b``."""
    index = dict(zip(a, range(len(a))))
    names = list(a)
    where = np.empty(len(b), dtype=np.int64)
    for i, name in enumerate(b):
        k = index.get(name)
        if k is None:
            k = index[name] = len(names)
            names.append(name)
        where[i] = k
    return names, where


def merge_summaries(a, b):
    """Two summaries as one, ``a``'s partitions first (associative, not commutative)."""
    if a is None or b is None:
        return b if a is None else a
    names, where = _merge_names(a.names, b.names)
    counts = np.zeros(len(names), dtype=np.int64)
    counts[: len(a.counts)] = a.counts
    counts[where] += b.counts  # where holds distinct positions
    classes, _ = _merge_names(a.classes, b.classes)
    return Summary(names, counts, classes, a.n_sequences + b.n_sequences,
                   a.n_tokens + b.n_tokens)


def global_vocabulary(summary, min_freq):
    """The attributes occurring at least ``min_freq`` times overall, numbered by
    decreasing count (ties: first seen first), as :func:`fastcrf._training.encode_training`
    numbers them.

    Raises
    ------
    ValueError
        When no attribute is frequent enough.
    """
    counts = summary.counts
    kept = np.flatnonzero(counts >= min_freq)
    if len(kept) == 0:
        raise ValueError(f"no attribute occurs at least min_freq={min_freq} times")
    order = kept[np.argsort(-counts[kept], kind="stable")]
    names = [summary.names[i] for i in order.tolist()]
    return AttributeVocabulary(names, counts[order], min_freq)


def global_ids(names, vocabulary):
    """The id in ``vocabulary`` of each name of ``names``, -1 where it has none."""
    if not names:
        return np.zeros(0, dtype=np.int32)
    # One token per name, through the compiled encoder: a token of an unknown name
    # comes out empty.
    enc = encode([[[name] for name in names]], vocabulary, dense_values=False, n_jobs=1)
    has = np.diff(enc.token_offsets) > 0
    ids = np.full(len(names), -1, dtype=np.int32)
    ids[has] = enc.attr_ids
    return ids


def globalize(part, vocabulary, classes):
    """A :class:`LocalPart` renumbered to the global vocabulary and label codes, as a
    :class:`fastcrf._training.TrainingData` (None for an empty partition)."""
    if part is None:
        return None
    vocabulary = realigned(vocabulary)
    f = part.features
    ids = np.array(f.attr_ids, dtype=np.int32)
    renumber_ids(ids, global_ids(part.names, vocabulary))
    ids, values, tok_offsets = _drop_unmapped(ids, f.values, f.token_offsets)
    features = EncodedSequences(ids, values, tok_offsets, f.seq_offsets, len(vocabulary))
    code = {label: k for k, label in enumerate(classes)}
    label_map = np.array([code[label] for label in part.classes], dtype=np.int64)
    return TrainingData.build(features, label_map[part.labels], len(classes))


def seen_pairs(data, n_dense, all_transitions):
    """What the layout and the chain mask need of a partition: the (attribute, label)
    pairs of the attributes ``>= n_dense`` it holds (as ``attribute * K + label``,
    increasing), and its label bigrams (``K * K`` 0/1, or None with
    ``all_transitions``)."""
    if data is None:
        return None
    K = data.n_labels
    tail = StateLayout.build(data, n_dense)
    rows = np.repeat(np.arange(tail.n_dense, tail.n_attributes, dtype=np.int64),
                     np.diff(tail.tail_ptr))
    pairs = rows * K + tail.tail_labels
    bigrams = None if all_transitions else chain_mask(data, False)[: K * K]
    return pairs, bigrams


def global_layout(seen, n_attributes, n_labels, n_dense):
    """The :class:`StateLayout` and the chain mask of the union of the partitions'
    :func:`seen_pairs` (None entries are empty partitions)."""
    K = n_labels
    seen = [s for s in seen if s is not None]
    pairs = np.unique(np.concatenate([s[0] for s in seen])) if seen else np.zeros(0, int)
    attrs = pairs // K
    per_attr = np.bincount(attrs - n_dense, minlength=n_attributes - n_dense)
    ptr = np.concatenate(([0], np.cumsum(per_attr))).astype(np.int64)
    layout = StateLayout(n_attributes, K, n_dense, ptr, (pairs % K).astype(np.int32))
    mask = np.ones(K * K + 2 * K)
    if seen and seen[0][1] is not None:
        mask[: K * K] = np.maximum.reduce([s[1] for s in seen])
    return layout, mask
