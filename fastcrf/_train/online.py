"""Online trainers decoded by Viterbi: averaged perceptron ('ap'),
passive-aggressive ('pa') and AROW ('arow', whose trainer record is in
:mod:`fastcrf._train.arow`), as in CRFsuite.

Each sequence is decoded with the current weights; where the best path differs
from the gold one the weights move along ``Phi(gold) - Phi(best)``: by 1 for the
perceptron (Collins 2002), by PA's closed-form step for passive-aggressive
(Crammer et al. 2006; PA-I caps it at ``c``, PA-II damps it by ``1 / (2c)``).  The
cost of PA is ``score(best) - score(gold) + sqrt(#errors)`` (or ``+ 1`` when not
``error_sensitive``).  With averaging the result is CRFsuite's average,
``W - Wsum / (c + 1)`` after ``c`` sequences (the mean of the weights before the
first sequence and after every one).  Training runs ``max_iterations`` epochs unless
the mean loss of one falls strictly below ``epsilon`` (CRFsuite's test, so the
default 0 never stops early: an epoch without errors still moves the average
towards the weights that make none).  The loop is serial (each step needs the previous weights) and
compiled: :func:`fastcrf._kernels._online_engine.online_epoch`.
"""

import time
from dataclasses import dataclass

import numpy as np

from .._kernels import _online_engine
from .._sample_weight import weighted_sum
from .._training import sum_of_squares
from .base import LayoutWeights, Trainer, pick_fields, state_mask


@dataclass
class OnlineSettings:
    """Settings of the online trainers (see :class:`fastcrf.CRF`)."""

    algorithm: str = "ap"
    max_iterations: int = 100
    averaging: bool = True
    epsilon: float = 0.0
    pa_type: int = 1
    c: float = 1.0
    error_sensitive: bool = True
    variance: float = 1.0
    gamma: float = 1.0

    @classmethod
    def from_params(cls, params):
        """The settings of the estimator's validated parameters."""
        def given(name, default):
            return default if params.get(name) is None else params[name]

        return pick_fields(cls, params, pa_type=params["pa_type"] or 0,
                           c=given("c", 1.0), error_sensitive=bool(params["error_sensitive"]),
                           variance=given("variance", 1.0), gamma=given("gamma", 1.0))


def fit_online(data, settings, *, layout, chain_mask, random_state, n_jobs=None,
               callback=None, log=None, init=None, forbidden=None, edges=None):
    """Train by averaged perceptron, passive-aggressive or AROW: the ``fit`` of the
    trainer contract (:class:`fastcrf._train.base.Trainer`), with ``settings`` an
    :class:`OnlineSettings` (AROW: ``averaging`` is ignored, its result is the mean
    of its weight distribution, as CRFsuite's).

    ``random_state`` shuffles the sequences every epoch; ``n_jobs`` and ``log`` are
    unused (the loop is serial and quiet).  ``init`` (LayoutWeights) is the first
    iterate; the average is over the iterates from there on.  With sample weights
    (``data.weights``) each sequence's update is multiplied by its weight (AROW: its
    variance shrinks by ``weight * delta^2 / gamma``), its loss counts that many
    times, and sequences of weight 0 are skipped.  ``forbidden`` (bool over the
    chain): the scores the constraints forbid, -inf while training, so that every
    decoding the updates compare with the gold labelling is an allowed one (the
    gold labels are allowed: their updates there are 0 and leave -inf as it is).
    ``edges`` (EncodedSequences): the transition attributes of ``data``'s tokens
    (``CRF(transition_prefix=...)``, fastcrf._edges); their weights move with the
    others (averaged, or with their own AROW variances) and are returned as the
    weights' ``edge`` (n_edge, K, K).
    """
    f = data.features
    A, K = f.n_attributes, data.n_labels
    W = np.zeros((A, K)) if init is None else layout.to_dense(init.state)
    Wsum = np.zeros((A, K))
    V = np.zeros(K * K + 2 * K) if init is None else np.array(init.chain, dtype=np.float64)
    if forbidden is not None:
        V[forbidden] = -np.inf
    Vsum = np.zeros(K * K + 2 * K)
    D = np.zeros((A, K))
    counter = np.zeros(1)
    entries = np.diff(f.token_offsets[f.seq_offsets])
    max_entries = int(entries.max()) if len(entries) else 0
    pa_type = {"ap": -1, "arow": -2}.get(settings.algorithm, settings.pa_type)
    arow = pa_type == -2
    # AROW's variance per weight, all starting at ``variance``.
    W_var = np.full((A, K), settings.variance) if arow else np.zeros((0, 0))
    V_var = np.full(K * K + 2 * K, settings.variance) if arow else np.zeros(0)
    c_or_gamma = settings.gamma if arow else settings.c
    edge_kw = {}
    if edges is not None:
        F = edges.n_attributes
        WE, WEsum = np.zeros((F, K * K)), np.zeros((F, K * K))
        edge_kw = {"edges": edges.kernel_args()[:3], "WE": WE, "WEsum": WEsum,
                   "DE": np.zeros((F, K * K)),
                   "WE_var": np.full((F, K * K), settings.variance) if arow else None}
    trainable = state_mask(layout)
    mask = np.zeros((0, 0)) if trainable is None else trainable
    n = data.n_sequences
    weights = data.weights
    # Sample weights scale each sequence's update; a sequence of weight 0 is not
    # visited at all (not even counted by the average), as if it were absent.
    total = n if weights is None else float(weights.sum())
    started = time.perf_counter()

    def result():
        averaged = settings.averaging and not arow and counter[0] > 0
        if averaged:
            c = counter[0] + 1.0
            weights = LayoutWeights.from_dense(layout, W - Wsum / c, V - Vsum / c)
        else:
            weights = LayoutWeights.from_dense(layout, W, V)
        if edges is not None:
            WE = edge_kw["WE"] - edge_kw["WEsum"] / c if averaged else edge_kw["WE"].copy()
            weights.edge = WE.reshape(-1, K, K)
        return weights

    epoch = 0
    for epoch in range(1, settings.max_iterations + 1):
        order = random_state.permutation(n).astype(np.int64)
        if weights is not None:
            order = order[weights[order] > 0]
        losses = np.zeros(len(order))
        status = _online_engine.online_epoch(
            W, Wsum, V, Vsum, D, mask, chain_mask, f.attr_ids, f.values, f.token_offsets,
            f.seq_offsets, data.labels, order, data.max_length, max_entries, int(pa_type),
            float(c_or_gamma), bool(settings.error_sensitive), counter, losses, W_var, V_var,
            weights, **edge_kw)
        if status != 0:
            raise FloatingPointError(
                f"the weights diverged in epoch {epoch}; scale the feature values down")
        loss = weighted_sum(losses, None if weights is None else weights[order])
        norm = float(np.sqrt(sum_of_squares(W.ravel())
                             + sum_of_squares(V if forbidden is None else V[~forbidden])
                             + (sum_of_squares(edge_kw["WE"].ravel()) if edge_kw else 0.0)))
        info = {"loss": loss, "objective": loss, "weight_norm": norm,
                "seconds": time.perf_counter() - started}
        if callback is not None and callback(epoch, info, result):
            break
        if loss / max(total, 1e-300) < settings.epsilon:
            break
    return result(), epoch


# CRFsuite's own defaults (what sklearn-crfsuite gets when it passes None).
AP = Trainer("ap", OnlineSettings, fit_online,
             defaults={"max_iterations": 100, "averaging": True, "epsilon": 0.0})
PA = Trainer("pa", OnlineSettings, fit_online,
             defaults={"max_iterations": 100, "averaging": True, "epsilon": 0.0,
                       "pa_type": 1, "c": 1.0, "error_sensitive": True})
