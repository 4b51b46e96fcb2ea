"""The trainer contract: what a training algorithm declares, takes and returns.

A trainer is a :class:`Trainer` record in :data:`fastcrf._train.TRAINERS`.  The
estimator validates its parameters (fastcrf._params), fills in the trainer's
``defaults``, builds the trainer's settings with ``Settings.from_params(params)`` and
calls::

    weights, n_iter = trainer.fit(data, settings, layout=layout, chain_mask=chain_mask,
                                  random_state=rng, n_jobs=n_jobs, callback=callback,
                                  log=log)

``weights`` is a :class:`LayoutWeights`: the state weights flat in ``layout`` (the
kept (attribute, label) pairs, fastcrf._layout) and the chain vector (transitions,
start, end).  That is the model's own representation, so the estimator stores it as
it is, whatever the algorithm.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import numpy as np


@dataclass(eq=False)
class LayoutWeights:
    """Weights in a model's layout.

    Attributes
    ----------
    state : ndarray of shape (layout.size,)
        The kept state weights, flat as :class:`fastcrf._layout.StateLayout` orders them.
    chain : ndarray of shape (K*K + 2K,)
        Transition scores (row-major, ``[i, j]``: label i followed by j), then the start
        and the end scores.
    schedule : dict or None
        Only on a warm start's ``init``: where the optimiser goes on from.
    optimizer : object or None
        On a warm start's ``init``, the optimizer state of the previous fit moved into
        this layout; on a trainer's result, its final state when asked to keep it
        (SGD's :class:`fastcrf._train.sgd_state.SGDState`).  None otherwise.
    edge : ndarray of shape (n_edge_attributes, K, K) or None
        Only from a trainer given transition attributes (``edges=``,
        ``CRF(transition_prefix=...)``): their weights, ``edge[f, i, j]``.
    """

    state: np.ndarray
    chain: np.ndarray
    # SGD's {"eta0": ..., "t": ...} (fastcrf._warm.carried_schedule); None: afresh.
    schedule: dict = None
    optimizer: object = None
    edge: np.ndarray = None

    @classmethod
    def from_dense(cls, layout, state, chain):
        """The weights of a dense ``(n_attributes, n_labels)`` state matrix in ``layout``
        (pairs the layout does not keep are dropped) and a flat chain vector."""
        return cls(layout.from_dense(state), np.array(chain, dtype=np.float64))


@dataclass(frozen=True)
class Trainer:
    """One training algorithm, as the estimator sees it.

    Attributes
    ----------
    name : str
        The ``algorithm`` value that selects it.
    Settings : type
        A dataclass with a ``from_params(params)`` classmethod that builds the settings
        from the estimator's validated parameters (a dict, defaults filled in).
    fit : callable
        ``fit(data, settings, *, layout, chain_mask, random_state, n_jobs=None,
        callback=None, log=None, init=None) -> (LayoutWeights, n_iterations)`` where ``data`` is a
        :class:`fastcrf._training.TrainingData`, ``layout`` the trainable state pairs,
        ``chain_mask`` 1.0 for trainable transition / start / end scores, ``random_state``
        a numpy Generator.  ``init``, a :class:`LayoutWeights` in ``layout`` or None
        (zeros), is where the weights start: a warm start, and what ``fastcrf.dask``'s
        parameter mixing hands each worker every round.  ``callback(iteration, info,
        weights_fn)`` is called after
        every epoch / iteration with ``info`` holding at least ``loss``, ``objective``,
        ``weight_norm`` and ``seconds``; ``weights_fn()`` returns the
        :class:`LayoutWeights` the model would have now; a true return value stops
        training.  ``log(text)`` receives progress messages.
    defaults : mapping
        Values of the estimator parameters left at None under this algorithm.
    supports_l1 : bool
        Whether ``c1 > 0`` is allowed.
    """

    name: str
    Settings: type
    fit: Callable
    defaults: Mapping = field(default_factory=dict)
    supports_l1: bool = False


def pick_fields(cls, params, **overrides):
    """``cls(**...)`` from the entries of ``params`` named like ``cls``'s fields."""
    names = {f.name for f in fields(cls)}
    return cls(**{**{k: v for k, v in params.items() if k in names}, **overrides})


def state_mask(layout):
    """The 0/1 ``(n_attributes, n_labels)`` matrix of the kept state pairs, or None when
    every pair is kept (the trainers that work on a dense matrix then mask nothing)."""
    return None if layout.n_dense == layout.n_attributes else layout.mask()
