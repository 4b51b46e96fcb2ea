"""Warm start: a new fit that begins at a fitted model's weights.

``CRF(warm_start=True).fit``, :meth:`fastcrf.CRF.partial_fit` and ``fastcrf train
--init`` train on new data from the current model:

- the labels are the model's, in its order, followed by the labels of the new ``y``
  that it does not have (their state, transition, start and end weights start at 0);
- the attributes are the new data's plus the model's others (appended, never seen in
  the new data); every attribute and (attribute, label) pair the model kept keeps
  its weight, the new ones start at 0;
- the trainer starts at those weights (the trainers' ``init=``).  What is not kept:
  the optimiser's state (L-BFGS's curvature pairs, SGD's step counter and average,
  the averaging of the online trainers, AROW's variances) starts afresh from there.
"""

import numpy as np

from ._features._encoding import AttributeVocabulary, EncodedSequences
from ._train.base import LayoutWeights


def align_labels(model, classes, data):
    """Renumber ``data``'s label codes to the model's labels followed by the new
    ones; return ``(classes, data)``."""
    merged = list(model.classes) + [label for label in classes
                                    if label not in set(model.classes)]
    index = {label: k for k, label in enumerate(merged)}
    codes = np.array([index[label] for label in classes], dtype=np.int64)
    data.labels = codes[data.labels]
    data.n_labels = len(merged)
    return merged, data


def extend_vocabulary(model, vocabulary, data):
    """The new data's attributes plus the model's others: ``(vocabulary, data)``.

    The model's attributes missing from ``vocabulary`` are appended (with count 0), so
    their weights survive; ``data``'s ids are unchanged, only its attribute count grows.
    """
    old = model.vocabulary.names
    present = set(vocabulary.names)
    extra = [name for name in old if name not in present]
    if not extra:
        return vocabulary, data
    counts = vocabulary.counts
    if counts is not None:
        counts = np.concatenate((np.asarray(counts), np.zeros(len(extra), np.int64)))
    merged = AttributeVocabulary(list(vocabulary.names) + extra, counts)
    f = data.features
    data.features = EncodedSequences(f.attr_ids, f.values, f.token_offsets,
                                     f.seq_offsets, len(merged.names))
    return merged, data


def carry_weights(model, vocabulary, layout):
    """The model's weights in the new ``(vocabulary, layout)``: ``(layout, init)``.

    ``layout`` grows by the pairs the model kept that it lacks; pairs new to the
    model, and every weight of a new label, start at 0.  The model's labels are the
    first codes (:func:`align_labels`).
    """
    K, k = layout.n_labels, len(model.classes)
    new_id = np.array([vocabulary.index[name] for name in model.vocabulary.names],
                      dtype=np.int64)
    old_rows, old_cols = model.layout.pairs()
    rows, cols = layout.pairs()
    keys = np.union1d(rows * K + cols, new_id[old_rows] * K + old_cols)
    if len(keys) != len(rows):
        # The dense head (every label of attributes < D) holds already; the model's
        # pairs join the tail.
        A, D = layout.n_attributes, layout.n_dense
        keys = keys[keys // K >= D]
        counts = np.bincount(keys // K - D, minlength=A - D)
        ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        layout = type(layout)(A, K, D, ptr, (keys % K).astype(np.int32))
    dense = np.zeros((layout.n_attributes, K))
    dense[new_id, :k] = model.layout.to_dense(model.state)
    transitions = np.zeros((K, K))
    transitions[:k, :k] = model.transitions
    start, end = np.zeros(K), np.zeros(K)
    start[:k], end[:k] = model.start, model.end
    chain = np.concatenate((transitions.ravel(), start, end))
    return layout, LayoutWeights.from_dense(layout, dense, chain)
