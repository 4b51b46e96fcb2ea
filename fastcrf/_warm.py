"""Warm start: a new fit that begins at a fitted model's weights.

``CRF(warm_start=True).fit``, :meth:`fastcrf.CRF.partial_fit` and ``fastcrf train
--init`` train on new data from the current model:

- the labels are the model's, in its order, followed by the labels of the new ``y``
  that it does not have (their state, transition, start and end weights start at 0);
- the attributes are the new data's plus the model's others (appended, never seen in
  the new data); every attribute and (attribute, label) pair the model kept keeps
  its weight, the new ones start at 0;
- the trainer starts at those weights (the trainers' ``init=``);
- 'asgd' and 'l2sgd' go on with the step-size schedule of a model the same algorithm
  trained (:func:`carried_schedule`): its ``eta0`` (no new calibration) and its step
  counter ``t`` (sequences seen), so the steps keep decaying instead of restarting
  at ``eta0``.  Both ride in the model's training log, so a saved model (``fastcrf
  train --init``) carries them too; a model saved without ``t`` goes on from 0.

- when the fitted model carries the optimizer state of its fit
  (``CRFModel.optimizer_state``: kept by a fit under ``warm_start=True`` and by
  ``partial_fit``, never saved in a model file; :mod:`fastcrf._train.sgd_state`),
  'asgd' and 'l2sgd' go on with the whole engine instead (:func:`carry_optimizer`):
  the last iterate (not the averaged weights), the running average, the step
  counters, AdaGrad's summed squared gradients and the step rule, every array
  extended by the new attributes and labels.

What is not kept: without that state (a model loaded from a file), SGD's average and
AdaGrad's accumulators (the model holds the averaged weights, which become the new
first iterate, and the step rule is 'calibrated'); always, L-BFGS's curvature pairs,
the averaging of the online trainers, AROW's variances.
"""

import numpy as np

from ._features._encoding import AttributeVocabulary, EncodedSequences
from ._train.base import LayoutWeights
from ._train.sgd_state import chain_positions


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
    # Placed pair by pair, not through an (n_attributes, n_labels) matrix, which with
    # hundreds of labels would be hundreds of times the layout.
    old_rows, old_cols, old_vals = model.layout.nonzero(model.state)
    state = np.zeros(layout.size)
    state[layout.positions(new_id[old_rows], old_cols)] = old_vals
    transitions = np.zeros((K, K))
    transitions[:k, :k] = model.transitions
    start, end = np.zeros(K), np.zeros(K)
    start[:k], end[:k] = model.start, model.end
    chain = np.concatenate((transitions.ravel(), start, end))
    return layout, LayoutWeights(state, chain)


def carried_schedule(model, algorithm):
    """The SGD schedule a warm start goes on with: ``{"eta0", "t"}`` from the last
    entry of ``model``'s training log, when ``algorithm`` ('asgd' or 'l2sgd') trained
    it; else None (calibrate, start at t = 0).  After an AdaGrad rule only ``t``: its
    constant ``eta0`` is no step size for the 'calibrated' rule a warm start without
    the optimizer state takes, which then calibrates its own."""
    log = model.training_log
    if algorithm not in ("asgd", "l2sgd") or log is None or log.algorithm != algorithm:
        return None
    entries = [e for e in log.iterations if "eta0" in e]
    if not entries:
        return None
    t = float(entries[-1].get("t", 0.0))
    if log.step_rule in ("adagrad", "adagrad_row"):
        return {"t": t}
    return {"eta0": float(entries[-1]["eta0"]), "t": t}


def flat_positions(layout, rows, cols):
    """The positions in ``layout``'s flat vector of its kept pairs ``(rows, cols)``."""
    K, S, D = layout.n_labels, layout.stride, layout.n_dense
    keys_rows, keys_cols = layout.pairs()
    keys = keys_rows * K + keys_cols   # increasing: pairs() is in attribute, label order
    head = np.arange(D, dtype=np.int64)[:, None] * S + np.arange(K, dtype=np.int64)
    flat = np.concatenate((head.ravel(),
                           D * S + np.arange(len(layout.tail_labels), dtype=np.int64)))
    at = np.searchsorted(keys, rows * K + cols)
    if len(at) and (at.max() >= len(keys) or not np.array_equal(keys[at], rows * K + cols)):
        raise AssertionError("a pair is missing from the layout")
    return flat[at]


def carry_optimizer(model, vocabulary, layout):
    """``model.optimizer_state`` moved into the new ``(vocabulary, layout)`` (the one
    :func:`carry_weights` returned), or None when the model has none."""
    state = getattr(model, "optimizer_state", None)
    if state is None:
        return None
    new_id = np.array([vocabulary.index[name] for name in model.vocabulary.names],
                      dtype=np.int64)
    old_rows, old_cols = model.layout.pairs()
    weight_from = flat_positions(model.layout, old_rows, old_cols)
    weight_to = flat_positions(layout, new_id[old_rows], old_cols)
    K, k = layout.n_labels, len(model.classes)
    return state.moved(layout.size, weight_from, weight_to, layout.n_attributes, new_id,
                       chain_positions(k, K), K * K + 2 * K)
