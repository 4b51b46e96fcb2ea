"""Batch training with L-BFGS ('lbfgs'): scipy's L-BFGS-B for L2, OWL-QN with L1.

The objective ``sum_i -log p(y_i|x_i) + c1 ||w||_1 + c2 ||w||^2`` and its gradient
come from compiled passes over all sequences (:func:`fastcrf._kernels._sparse.forward_backward`
for the likelihood and the node marginals, then :func:`fastcrf._kernels._sparse.layout_gradient`
for the state gradient), on the variables the model keeps: the flat state vector of
the :class:`fastcrf._layout.StateLayout` followed by the transition, start and end
scores.  With ``c1 > 0`` the optimiser is OWL-QN (:mod:`fastcrf._train.owlqn`), as
in CRFsuite, on the same variables (no split ``w = p - n``); with ``c1 = 0`` it is
scipy's L-BFGS-B without bounds.

Stopping follows CRFsuite: after ``max_iterations`` iterations, when
``||g|| / max(||w||, 1) < epsilon`` (``g`` the pseudo-gradient with L1), or when the
objective improved by less than ``delta`` (relative) over the last ``period``
iterations.
"""

import time
from dataclasses import dataclass

import numpy as np

from .._kernels import _vector
from .._parallel import effective_n_threads
from .._sample_weight import token_weights
from .._kernels._core import chunk_size
from .._training import (_forward_pass, attribute_parts, sequence_blocks, state_gradient,
                         sum_of_squares)
from .base import LayoutWeights, Trainer, pick_fields
from .owlqn import minimize_owlqn


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


class _Objective:
    """``x -> (f, grad)`` of the training objective without its L1 term.

    ``x`` is ``[state (layout.size), chain (K*K + 2K)]``.  The gradient is written
    into one buffer reused by every call (both optimisers copy what they keep), and so
    are the node marginals and the per-chunk chain gradients of the forward pass, which
    hold one block of sequences (:func:`fastcrf._training.sequence_blocks`) at a time:
    an evaluation allocates nothing of the data's size, and the marginals take at most
    a block's memory, not ``n_tokens * n_labels`` doubles.
    """

    def __init__(self, data, layout, chain_mask, c2, n_jobs, forbidden=None):
        self.data = data
        # The constraints' forbidden chain scores: -inf in the lattice, 0 (masked) in x.
        self.chain_fixed = None if forbidden is None else np.where(forbidden, -np.inf, 0.0)
        self.layout = layout
        self.n_state = layout.size
        self.chain_mask = None if np.all(chain_mask == 1.0) else chain_mask
        self.c2 = float(c2)
        self.n_jobs = n_jobs
        self.n_threads = effective_n_threads(n_jobs)
        self.part_bounds = attribute_parts(data.features, self.n_threads)
        # The sequences a block at a time (sequence_blocks): one block's marginals and
        # chain sums in memory, in buffers sized for the largest block and reused.
        self.blocks = sequence_blocks(data)
        self.block_token_weights = [token_weights(block) for block in self.blocks]
        self.buffers = _largest_buffers(self.blocks, data.n_labels)
        n = self.n_state + len(chain_mask)
        self.grad = np.empty(n)
        self.loss = np.nan

    def log_likelihood(self, x):
        """``(ll, grad)``: the log-likelihood of the data at ``x`` and its gradient
        (masked; in the reused buffer), or ``(-inf, grad)`` when a score is out of
        range.  ``fastcrf.dask`` sums these over the workers' partitions."""
        L, n_state, grad = self.layout, self.n_state, self.grad
        state, chain = x[:n_state], x[n_state:]
        if self.chain_fixed is not None:
            chain = chain + self.chain_fixed
        state_args = L.kernel_args(state)
        layout_args = (L.stride, L.n_dense, L.tail_ptr, L.tail_labels)
        ll = 0.0
        chain_grad = grad[n_state:]
        chain_grad.fill(0.0)
        for i, block in enumerate(self.blocks):
            try:
                part_ll, marg, chunks = _forward_pass(
                    block, state_args, chain, self.n_jobs, True,
                    out=_leading(self.buffers, block))
            except FloatingPointError:
                return -np.inf, grad
            ll += part_ll
            state_gradient(block, marg, layout_args, grad[:n_state], self.n_jobs,
                           self.part_bounds, self.block_token_weights[i], accumulate=i > 0)
            chain_grad += np.sum(chunks, axis=0)
        if self.chain_mask is not None:
            # Before the negation of regularized(): the same values as masking after it.
            grad[n_state:] *= self.chain_mask
        return ll, grad

    def __call__(self, x):
        ll, grad = self.log_likelihood(x)
        f, _ = regularized(ll, grad, x, self.c2)
        if np.isfinite(ll):
            self.loss = -ll
        return f, grad


def _largest_buffers(blocks, n_labels):
    """:func:`forward_buffers` for the largest of ``blocks`` in each dimension."""
    K = n_labels
    C = chunk_size()
    n_seq = max(b.n_sequences for b in blocks)
    n_tok = max(b.features.n_tokens for b in blocks)
    return (np.zeros(n_seq), np.zeros(n_seq), np.zeros((n_tok, K)),
            np.zeros((-(-n_seq // C), K * K + 2 * K)))


def _leading(buffers, block):
    """The leading parts of ``buffers`` (:func:`_largest_buffers`) that ``block``'s
    forward pass fills: views, C-contiguous as the kernel needs them."""
    logz, score, marg, chunks = buffers
    n_seq, n_tok = block.n_sequences, block.features.n_tokens
    return (logz[:n_seq], score[:n_seq], marg[:n_tok],
            chunks[:-(-n_seq // chunk_size())])


def regularized(ll, grad, x, c2):
    """The objective ``-ll + c2 ||x||^2`` and its gradient, from the log-likelihood
    ``ll`` and its gradient ``grad`` (overwritten by the objective's, in one pass).

    A non-finite ``ll`` (scores out of range at a trial point) gives ``inf``: the line
    searches then step back.
    """
    if not np.isfinite(ll):
        return np.inf, grad
    squares = _vector.objective_gradient_l2(grad, x, c2)
    f = -ll
    if c2 > 0.0:
        f += c2 * squares
    return f, grad


def fit_lbfgs(data, settings, *, layout, chain_mask, random_state=None, n_jobs=None,
              callback=None, log=None, init=None, forbidden=None):
    """Train by L-BFGS (L2) or OWL-QN (L1 and elastic net): the ``fit`` of the trainer
    contract (:class:`fastcrf._train.base.Trainer`), with ``settings`` an
    :class:`LBFGSSettings`.

    ``random_state`` is unused (L-BFGS is deterministic); ``log`` receives a message
    when OWL-QN stops on a line search that found no lower point (CRFsuite's "error
    code -998", which is how it usually ends near the optimum); the callback's
    ``info`` also holds ``active_features``.  ``forbidden`` (bool over the chain, as
    :func:`fastcrf._constraints.forbidden_chain` gives it): the scores the constraints
    forbid, -inf in every lattice (``chain_mask`` keeps them at 0 in ``x``).

    Raises
    ------
    FloatingPointError
        When the objective is not finite at the start (feature values too large).
    """
    fun = _Objective(data, layout, chain_mask, settings.c2, n_jobs, forbidden)
    return minimize_objective(fun, layout.size, data.n_labels, settings,
                              callback=callback, log=log, init=init)


def minimize_objective(fun, n_state, n_labels, settings, *, callback=None, log=None,
                       init=None):
    """Minimise a training objective by L-BFGS-B (L2) or OWL-QN (``settings.c1 > 0``):
    the optimiser of :func:`fit_lbfgs`, for any objective over the same variables.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, grad)``: the objective without its L1 term at
        ``x = [state (n_state), chain (K*K + 2K)]``, as :class:`_Objective` computes it
        (``fastcrf.dask`` sums it over the workers instead).  ``fun.loss`` is the
        negative log-likelihood at the last point evaluated and ``fun.grad`` the
        gradient returned there.
    n_state : int
        Length of the state part of ``x`` (the layout's ``size``).
    n_labels : int
    settings : LBFGSSettings
    callback, log, init
        As in :func:`fit_lbfgs`.

    Returns
    -------
    weights : LayoutWeights
    n_iter : int
    """
    K = n_labels
    c1 = float(settings.c1)
    started = time.perf_counter()
    stop = {"iteration": 0}

    def split(x):
        return x[:n_state].copy(), x[n_state:].copy()

    def report(iteration, x, F):
        stop["iteration"] = iteration
        info = {
            "loss": fun.loss,
            "objective": F,
            "weight_norm": float(np.sqrt(sum_of_squares(x))),
            "active_features": int(np.count_nonzero(x)),
            "seconds": time.perf_counter() - started,
        }
        return callback is not None and callback(
            iteration, info, lambda: LayoutWeights(*split(x)))

    x0 = np.zeros(n_state + K * K + 2 * K)
    if init is not None:
        x0[:n_state] = init.state
        x0[n_state:] = init.chain
    if c1 > 0.0:
        result = minimize_owlqn(
            fun, x0, c1, num_memories=settings.num_memories, epsilon=settings.epsilon,
            max_iterations=settings.max_iterations, period=settings.period,
            delta=settings.delta, max_linesearch=settings.max_linesearch,
            callback=lambda k, x, F, pg: report(k, x, F))
        if result.status == "linesearch" and log is not None:
            log(f"lbfgs: {result.message}")
        x = result.x
    else:
        x = _minimize_lbfgsb(fun, x0, settings, report, log)
    if not np.all(np.isfinite(x)):
        raise FloatingPointError("L-BFGS produced non-finite weights")
    return LayoutWeights(*split(x)), stop["iteration"]


def _minimize_lbfgsb(fun, x0, settings, report, log=None):
    """scipy's L-BFGS-B without bounds, with CRFsuite's stopping tests.

    A stop of scipy's own (no lower objective, or no lower point on the line, which is
    how it usually ends at the optimum to within rounding) goes to ``log`` in words.
    """
    from scipy.optimize import minimize

    history = []
    iteration = 0
    last = {"x": x0}

    def on_iteration(intermediate_result):
        nonlocal iteration
        iteration += 1
        x = intermediate_result.x
        last["x"] = x
        f = float(intermediate_result.fun)
        history.append(f)
        if report(iteration, x, f):
            raise StopIteration
        # fun's gradient buffer holds the gradient at x: the accepted point is the
        # last one evaluated.
        gnorm = float(np.sqrt(sum_of_squares(fun.grad)))
        if gnorm / max(float(np.sqrt(sum_of_squares(x))), 1.0) < settings.epsilon:
            raise StopIteration
        p = settings.period
        if settings.delta > 0 and len(history) > p:
            if (history[-p - 1] - f) / max(abs(f), 1e-300) < settings.delta:
                raise StopIteration

    def fun_copy(x):
        # scipy keeps the gradient it is given between calls: not fun's buffer.
        f, g = fun(x)
        return f, g.copy()

    max_iter = settings.max_iterations if settings.max_iterations is not None else 100000
    result = minimize(
        fun_copy, x0, jac=True, method="L-BFGS-B", callback=on_iteration,
        options={"maxiter": int(max_iter), "maxcor": int(settings.num_memories),
                 "maxls": int(settings.max_linesearch), "ftol": 0.0, "gtol": 0.0,
                 "maxfun": 10 * int(max_iter) + 20},
    )
    if not np.isfinite(result.fun):
        raise FloatingPointError("the objective is not finite at the starting point")
    # 1: max_iterations, 99: one of the tests above; anything else is scipy's own stop.
    if result.status not in (1, 99) and log is not None:
        log(f"lbfgs: stopped at iteration {iteration}: the objective no longer decreases "
            "(it is at its minimum to within rounding, or the line search found no lower "
            f"point); the last iterate is kept (scipy: {result.message})")
    return result.x


# CRFsuite's own defaults (what sklearn-crfsuite gets when it passes None).
LBFGS = Trainer("lbfgs", LBFGSSettings, fit_lbfgs,
                defaults={"c1": 0.0, "c2": 0.5, "max_iterations": None, "period": 10,
                          "delta": 1e-5},
                supports_l1=True)
