"""Batch training with L-BFGS ('lbfgs') through scipy.optimize.

The objective ``sum_i -log p(y_i|x_i) + c1 ||w||_1 + c2 ||w||^2`` and its gradient
come from one parallel compiled pass over all sequences (:func:`log_likelihood`).
With ``c1 > 0`` the weights are split as ``w = p - n`` with ``p, n >= 0`` so the L1
term becomes the linear ``c1 * sum(p + n)`` and L-BFGS-B handles the bounds.

Stopping follows CRFsuite: after ``max_iterations`` iterations, when
``||g|| / max(||w||, 1) < epsilon``, or when the objective improved by less than
``delta`` (relative) over the last ``period`` iterations.
"""

import time
from dataclasses import dataclass

import numpy as np

from .._training import Weights, attribute_index, log_likelihood, sum_of_squares
from .base import LayoutWeights, Trainer, pick_fields, state_mask


@dataclass
class LBFGSSettings:
    """Settings of the L-BFGS trainer (see :class:`fastcrf.CRF`)."""

    c1: float = 0.0
    c2: float = 1.0
    max_iterations: int = None
    num_memories: int = 6
    epsilon: float = 1e-5
    period: int = 10
    delta: float = 1e-5
    max_linesearch: int = 20

    @classmethod
    def from_params(cls, params):
        """The settings of the estimator's validated parameters."""
        return pick_fields(cls, params)


def fit_lbfgs(data, settings, *, layout, chain_mask, random_state=None, n_jobs=None,
              callback=None, log=None):
    """Train by L-BFGS-B: the ``fit`` of the trainer contract
    (:class:`fastcrf._train.base.Trainer`), with ``settings`` an :class:`LBFGSSettings`.

    ``random_state`` and ``log`` are unused (L-BFGS is deterministic and quiet); the
    callback's ``info`` also holds ``active_features``.
    """
    from scipy.optimize import Bounds, minimize

    A = data.features.n_attributes
    K = data.n_labels
    n_state = A * K
    n = n_state + K * K + 2 * K
    # Fixed weights (all_possible_states / _transitions=False) get a zero gradient; no
    # n-sized mask at all in the common all-trainable case.
    trainable = state_mask(layout)
    mask = None
    if trainable is not None or not np.all(chain_mask == 1.0):
        mask = np.concatenate((np.ones(n_state) if trainable is None else trainable.ravel(),
                               chain_mask))
    csc = attribute_index(data.features)
    c1, c2 = float(settings.c1), float(settings.c2)
    split = c1 > 0.0
    started = time.perf_counter()
    cache = {}

    def signed(x):
        """The weights of an optimiser vector (p - n when split)."""
        return x[:n] - x[n:] if split else x

    def as_weights(w):
        return Weights.from_flat(w[:n_state].reshape(A, K), w[n_state:])

    def in_layout(w):
        return LayoutWeights.from_dense(layout, w[:n_state].reshape(A, K), w[n_state:])

    def fun(x):
        w = signed(x)
        weights = as_weights(w)
        ll, g = log_likelihood(data, weights, n_jobs, csc=csc)
        grad = np.concatenate((g.state.ravel(), g.chain))
        del g
        np.negative(grad, out=grad)
        if mask is not None:
            grad *= mask
        if c2 > 0.0:
            grad += (2.0 * c2) * w
        f = -ll + c2 * sum_of_squares(w)
        cache["loss"] = -ll
        cache["grad_norm"] = float(np.linalg.norm(grad))
        if split:
            f += c1 * float(x.sum())
            grad = np.concatenate((grad + c1, -grad + c1))
        return f, grad

    history = []
    iteration = 0

    def on_iteration(intermediate_result):
        nonlocal iteration
        iteration += 1
        x = intermediate_result.x
        w = signed(x)
        norm = float(np.linalg.norm(w))
        f = float(intermediate_result.fun)
        history.append(f)
        info = {
            "loss": cache.get("loss", np.nan),
            "objective": f,
            "weight_norm": norm,
            "active_features": int(np.count_nonzero(w)),
            "seconds": time.perf_counter() - started,
        }
        if callback is not None and callback(iteration, info, lambda: in_layout(w)):
            raise StopIteration
        if cache.get("grad_norm", np.inf) / max(norm, 1.0) < settings.epsilon:
            raise StopIteration
        p = settings.period
        if settings.delta > 0 and len(history) > p:
            if (history[-p - 1] - f) / max(abs(f), 1e-300) < settings.delta:
                raise StopIteration

    max_iter = settings.max_iterations if settings.max_iterations is not None else 100000
    x0 = np.zeros(2 * n if split else n)
    result = minimize(
        fun, x0, jac=True, method="L-BFGS-B",
        bounds=Bounds(np.zeros(2 * n), np.full(2 * n, np.inf)) if split else None,
        callback=on_iteration,
        options={"maxiter": int(max_iter), "maxcor": int(settings.num_memories),
                 "maxls": int(settings.max_linesearch), "ftol": 0.0, "gtol": 0.0,
                 "maxfun": 10 * int(max_iter) + 20},
    )
    if not np.all(np.isfinite(result.x)):
        raise FloatingPointError("L-BFGS produced non-finite weights")
    return in_layout(signed(result.x)), iteration


# CRFsuite's own defaults (what sklearn-crfsuite gets when it passes None).
LBFGS = Trainer("lbfgs", LBFGSSettings, fit_lbfgs,
                defaults={"c1": 0.0, "c2": 0.5, "max_iterations": None, "period": 10,
                          "delta": 1e-5},
                supports_l1=True)
