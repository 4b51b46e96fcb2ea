"""One fit, from token features to a :class:`~fastcrf._model.CRFModel`.

:func:`fit_model` is what :meth:`fastcrf.CRF.fit` runs (and what
``fastcrf.pycrfsuite.Trainer.train`` runs, without start/end scores and with a
listener that writes CRFsuite's log): resolve the parameters, encode the data,
choose the state layout and the trainable chain scores, run the trainer of the
registry, and build the model.
"""

import time

from ._dataset import Dataset, dev_set, is_encoded, training_set
from ._layout import StateLayout
from ._model import CRFModel
from ._params import as_generator, for_data, resolve
from ._train import TRAINERS
from ._train.progress import Progress, encode_dev, hold_out
from ._training import chain_mask, encode_training


def fit_model(params, X, y, X_dev=None, y_dev=None, *, ends=True, listener=None):
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
    listener : object, optional
        Told what happens: ``listener.prepared(data, layout, mask, vocabulary,
        classes)`` once the data are encoded, then ``listener.iteration(epoch, info,
        weights_fn, layout)`` after each epoch / iteration (returning True stops the
        training, like the trainer's own callback).

    Returns
    -------
    CRFModel
    """
    p = resolve(params)
    if (X_dev is None) != (y_dev is None) and not isinstance(X_dev, Dataset):
        raise ValueError("X_dev and y_dev must be given together")
    rng = as_generator(p["random_state"])
    if p["early_stopping"] and X_dev is None:
        if is_encoded(X):
            raise ValueError("early_stopping with a Dataset X needs X_dev: give a dev "
                             "set (a Dataset or lists)")
        X, y, X_dev, y_dev = hold_out(X, y, p["validation_fraction"], rng)
    started = time.perf_counter()
    if is_encoded(X):
        vocabulary, classes, data = training_set(X, y, p["min_freq"])
    elif y is None:
        raise ValueError("y is required unless X is a fastcrf.Dataset with labels")
    else:
        vocabulary, classes, data = encode_training(X, y, p["min_freq"], p["n_jobs"])
    p, note = for_data(params, p, data.n_sequences)
    if isinstance(X_dev, Dataset):
        dev = dev_set(X_dev, y_dev, vocabulary, classes)
    else:
        dev = None if X_dev is None else encode_dev(X_dev, y_dev, vocabulary, classes,
                                                    p["n_jobs"])
    states = p["all_possible_states"]
    layout = StateLayout.for_training(data, None if states is None else bool(states),
                                      counts=vocabulary.counts)
    mask = chain_mask(data, p["all_possible_transitions"])
    if not ends:
        mask[data.n_labels ** 2:] = 0.0
    progress = Progress(p["algorithm"], layout, dev, verbose=p["verbose"],
                        n_jobs=p["n_jobs"], started=started,
                        n_iter_no_change=p["n_iter_no_change"] if p["early_stopping"]
                        else None)
    progress.announce(data, note)
    callback = progress.callback
    if listener is not None:
        listener.prepared(data, layout, mask, vocabulary, classes)

        def callback(epoch, info, weights_fn):
            stop = progress.callback(epoch, info, weights_fn)
            return listener.iteration(epoch, info, weights_fn, layout) or stop

    trainer = TRAINERS[p["algorithm"]]
    weights, n_iter = trainer.fit(
        data, trainer.Settings.from_params(p), layout=layout, chain_mask=mask,
        random_state=rng, n_jobs=p["n_jobs"], callback=callback, log=progress.message)
    weights = progress.best_weights or weights
    return CRFModel(classes, vocabulary, layout, weights.state, weights.chain,
                    training_log=progress.log, n_iter=n_iter)
