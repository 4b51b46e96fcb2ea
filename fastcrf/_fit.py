"""One fit, from token features to a :class:`~fastcrf._model.CRFModel`.

:func:`fit_model` is what :meth:`fastcrf.CRF.fit` runs (and what
``fastcrf.pycrfsuite.Trainer.train`` runs, without start/end scores and with a
listener that writes CRFsuite's log): resolve the parameters, encode the data,
choose the state layout and the trainable chain scores, run the trainer of the
registry, and build the model.
"""

import dataclasses
import inspect
import time

import numpy as np

from . import _edges
from ._constraints import check_allowed_labels, forbidden_chain, resolve_constraints
from ._dataset import Dataset, dev_set, is_encoded, training_set
from ._features._hashing import hash_encode_training, hash_training
from ._layout import StateLayout
from ._model import CRFModel
from ._params import as_generator, for_data, resolve
from ._sample_weight import check_sample_weight
from ._train import TRAINERS
from ._train.bar import epoch_bar
from ._train.progress import Progress, encode_dev, hold_out
from ._training import chain_mask, encode_training, keep_frequent_features
from ._warm import (align_labels, carried_schedule, carry_optimizer, carry_weights,
                    extend_vocabulary)


def fit_model(params, X, y, X_dev=None, y_dev=None, *, ends=True, transitions=True,
              listener=None, on_iteration=None, min_feature_freq=None, classes=None,
              sample_weight=None, init_model=None, keep_optimizer_state=False,
              continuing=None):
    """Train a CRF with the estimator parameters ``params``.

    Parameters
    ----------
    params : dict
        :meth:`fastcrf.CRF.get_params` of the estimator (None for a default).
    X, y, X_dev, y_dev
        As :meth:`fastcrf.CRF.fit`.
    ends : bool, default=True
        Whether the start and end scores are trained; with False they stay 0 (a
        CRFsuite model has none).
    transitions : bool, default=True
        Whether the label-transition scores are trained; with False they stay 0 (a
        CRF++ template without a ``B`` line asks for none).
    listener : object, optional
        Told what happens: ``listener.prepared(data, layout, mask, vocabulary,
        classes)`` once the data are encoded, then ``listener.iteration(epoch, info,
        weights_fn, layout)`` after each epoch / iteration (returning True stops the
        training, like the trainer's own callback).
    on_iteration : callable, optional
        ``on_iteration(entry, model_fn)`` after each epoch / iteration, once the
        entry is logged: ``entry`` is a copy of the training log's entry (plain
        Python numbers) and ``model_fn()`` builds a :class:`CRFModel` of the weights
        the model would have now.  A true return value stops the training.
    min_feature_freq : float, optional
        CRFsuite's ``feature.minfreq``: drop the (attribute, label) and transition
        features seen less often than this
        (:func:`~fastcrf._training.keep_frequent_features`); None drops none.
    classes : list of str, optional
        The labels in code order (CRFsuite numbers them as the instances are
        appended, holdout ones included); by default those of ``y`` as first seen.
    sample_weight : array-like of shape (n_sequences,), optional
        As :meth:`fastcrf.CRF.fit` (:mod:`fastcrf._sample_weight`).
    init_model : CRFModel, optional
        A warm start (:mod:`fastcrf._warm`): train from this model's weights, with its
        labels, its attributes kept beside the new data's; and from its
        ``optimizer_state`` when it has one.
    keep_optimizer_state : bool, default=False
        Keep the trainer's final state on the model (``CRFModel.optimizer_state``)
        for the next warm start, when the trainer has one to keep ('asgd', 'l2sgd').
    continuing : {"partial_fit", "warm_start"}, optional
        The user's call that passed ``init_model`` (:meth:`fastcrf.CRF.partial_fit`,
        or :meth:`fastcrf.CRF.fit` under ``warm_start=True``): a refusal names it.

    Returns
    -------
    CRFModel
    """
    p = resolve(params)
    if (X_dev is None) != (y_dev is None) and not isinstance(X_dev, Dataset):
        raise ValueError("X_dev and y_dev must be given together")
    # Checked before the data are read; the length once they are encoded.
    weights = check_sample_weight(sample_weight)
    if weights is None and sample_weight is not None:
        weights = np.ones(len(sample_weight))   # all 1: the length is still checked
    rng = as_generator(p["random_state"])
    if p["early_stopping"] and X_dev is None:
        if is_encoded(X):
            raise ValueError("early_stopping with a Dataset X needs X_dev: give a dev "
                             "set (a Dataset or lists)")
        if weights is not None and hasattr(X, "__len__") and len(weights) != len(X):
            check_sample_weight(weights, len(X))
        X, y, X_dev, y_dev, weights = hold_out(X, y, p["validation_fraction"], rng,
                                               weights)
    started = time.perf_counter()
    if p["transition_prefix"] is not None and p["hash_features"] is not None:
        raise ValueError("transition_prefix cannot be combined with hash_features yet: "
                         "the transition attributes are kept by name")
    edges = _edges.Fit.start(p, X, X_dev, init_model, continuing)
    if edges is not None:
        X, X_dev = edges.state_tokens, edges.dev_state_tokens
    if is_encoded(X):
        if classes is not None:
            raise ValueError("classes cannot be given with an encoded X: its labels "
                             "are already numbered")
        vocabulary, classes, data = training_set(X, y, p["min_freq"])
        hashing = getattr(X, "hashing", None)
        if hashing is not None and hashing != (p["hash_features"], p["hash_seed"]):
            raise ValueError(f"X is a Dataset hashed into {hashing[0]} buckets with seed "
                             f"{hashing[1]}: fit it with hash_features={hashing[0]}, "
                             f"hash_seed={hashing[1]}")
    elif y is None:
        raise ValueError("y is required unless X is a fastcrf.Dataset with labels")
    elif p["hash_features"] is not None and init_model is None:
        # Names go to buckets chunk by chunk: the vocabulary is never built.
        vocabulary, classes, data = hash_encode_training(
            X, y, p["hash_features"], p["hash_seed"], min_freq=p["min_freq"],
            n_jobs=p["n_jobs"], classes=classes)
    else:
        vocabulary, classes, data = encode_training(X, y, p["min_freq"], p["n_jobs"],
                                                    classes)
    if not getattr(vocabulary, "hashed", False) and (
            p["hash_features"] is not None
            or getattr(getattr(init_model, "vocabulary", None), "hashed", False)):
        vocabulary, data = _hashed(vocabulary, data, p, init_model)
    if init_model is not None:
        classes, data = align_labels(init_model, classes, data)
        vocabulary, data = extend_vocabulary(init_model, vocabulary, data)
    if weights is not None:
        data.weights = check_sample_weight(weights, data.n_sequences)
    if edges is not None:
        edges.encode(p)
    p, note = for_data(params, p, data.n_sequences)
    if isinstance(X_dev, Dataset):
        dev = dev_set(X_dev, y_dev, vocabulary, classes)
    else:
        dev = None if X_dev is None else encode_dev(X_dev, y_dev, vocabulary, classes,
                                                    p["n_jobs"])
    if edges is not None and dev is not None:
        dev = edges.dev(dev, p["n_jobs"])
    states = p["all_possible_states"]
    layout = StateLayout.for_training(data, None if states is None else bool(states),
                                      counts=vocabulary.counts)
    mask = chain_mask(data, p["all_possible_transitions"])
    if not ends:
        mask[data.n_labels ** 2:] = 0.0
    if not transitions:
        mask[:data.n_labels ** 2] = 0.0
    if min_feature_freq is not None:
        layout, mask = keep_frequent_features(data, layout, mask, min_feature_freq)
    allowed, forbidden = _training_constraints(p, data, classes, mask)
    init = None
    if init_model is not None:
        layout, init = carry_weights(init_model, vocabulary, layout)
        init.schedule = carried_schedule(init_model, p["algorithm"])
        init.optimizer = carry_optimizer(init_model, vocabulary, layout)
        if forbidden is not None:
            init.chain = _weights_only(init.chain, forbidden)
    bar = epoch_bar(p["max_iterations"], p["algorithm"]) if p["progress_bar"] else None
    progress = Progress(p["algorithm"], layout, dev, verbose=p["verbose"],
                        n_jobs=p["n_jobs"], started=started,
                        n_iter_no_change=p["n_iter_no_change"] if p["early_stopping"]
                        else None, bar=bar)
    progress.announce(data, note)
    if listener is not None:
        listener.prepared(data, layout, mask, vocabulary, classes)

    def callback(epoch, info, weights_fn):
        if forbidden is not None:
            weights_fn = _constrained_weights(weights_fn, forbidden)
        stop = progress.callback(epoch, info, weights_fn)
        if listener is not None:
            stop = listener.iteration(epoch, info, weights_fn, layout) or stop
        if on_iteration is not None:
            def model_fn():
                w = weights_fn()
                if edges is not None:   # the model of the epoch, W included
                    return edges.model(classes, vocabulary, layout, w, w.edge,
                                       progress.log.copy(), epoch, allowed, forbidden)
                return CRFModel(classes, vocabulary, layout, w.state,
                                _weights_only(w.chain, forbidden),
                                training_log=progress.log.copy(), n_iter=epoch,
                                constraints=allowed)
            # Every hook runs (bool(), not `or`), each seeing the same epoch.
            stop = bool(on_iteration(dict(progress.log.iterations[-1]), model_fn)) or stop
        return stop

    trainer = TRAINERS[p["algorithm"]]
    keep = keep_optimizer_state and "keep_state" in inspect.signature(trainer.fit).parameters
    if edges is not None:
        return edges.fit(data, p, classes, vocabulary, layout, mask, callback, progress, bar,
                         rng, init, allowed, forbidden)
    try:
        weights, n_iter = trainer.fit(
            data, trainer.Settings.from_params(p), layout=layout, chain_mask=mask,
            random_state=rng, n_jobs=p["n_jobs"], callback=callback, log=progress.message,
            # Only a warm start passes init: a registered trainer may not take it.
            **({} if init is None else {"init": init}),
            **({} if forbidden is None else {"forbidden": forbidden}),
            **({"keep_state": True} if keep else {}))
    finally:
        if bar is not None:
            bar.close()
    optimizer = weights.optimizer
    weights = progress.best_weights or weights
    model = CRFModel(classes, vocabulary, layout, weights.state,
                     _weights_only(weights.chain, forbidden), training_log=progress.log,
                     n_iter=n_iter, constraints=allowed)
    model.optimizer_state = optimizer
    return model


def _hashed(vocabulary, data, p, init_model):
    """``CRF(hash_features=...)``: the training set's attributes hashed into buckets
    (:mod:`fastcrf._features._hashing`)."""
    if init_model is not None:
        raise ValueError("warm_start and partial_fit do not combine with feature hashing "
                         "(hash_features, or a hashed model): fit from scratch")
    return hash_training(vocabulary, data, p["hash_features"], p["hash_seed"])


def _training_constraints(p, data, classes, mask):
    """``(allowed, forbidden)`` of ``p["constraints"]`` over ``classes`` (both None
    without constraints); the forbidden chain scores leave ``mask`` (they are -inf,
    not weights).  Checks that the trainer honours them and that ``data``'s labellings
    satisfy them."""
    allowed = resolve_constraints(p["constraints"], classes)
    if allowed is None:
        return None, None
    if "forbidden" not in inspect.signature(TRAINERS[p["algorithm"]].fit).parameters:
        raise ValueError(f"algorithm={p['algorithm']!r} does not support constraints")
    check_allowed_labels(data.labels, data.features.seq_offsets, allowed, classes)
    forbidden = forbidden_chain(allowed)
    mask[forbidden] = 0.0
    return allowed, forbidden


def _constrained_weights(weights_fn, forbidden):
    """``weights_fn`` whose chain is -inf where the constraints forbid: the dev-set
    decoding of the progress report (and early stopping) runs under them."""
    def fn():
        w = weights_fn()
        # replace() keeps the transition-attribute weights (w.edge) of an edge fit.
        return dataclasses.replace(w, chain=np.where(forbidden, -np.inf, w.chain))
    return fn


def _weights_only(chain, forbidden):
    """The chain a model keeps: 0 where the constraints forbid (the trainers may hold
    -inf there; the model applies its constraints itself)."""
    if forbidden is None:
        return chain
    return np.where(forbidden, 0.0, chain)
