"""Dense numpy API: log-partition, log-likelihood (+ gradient), marginals, Viterbi.

A batch holds ``B`` sequences padded to ``T`` positions over ``K`` labels.  The score
of a label path ``y`` of length ``n`` is::

    start[y[0]] + sum_t emissions[t, y[t]] + sum_{t>=1} transitions[y[t-1], y[t]]
    + end[y[n-1]]

``transitions[i, j]`` scores moving from label ``i`` to label ``j``.  Positions at or
past a sequence's length are ignored; they come back as 0 in marginals and
gradients and as -1 in paths.  A sequence of length 0 has log Z = 0, an empty path
and score 0.

Every function validates its inputs (``ValueError``/``TypeError`` naming the
argument) before any compiled code runs.  Results do not depend on ``n_jobs``.
"""

from typing import NamedTuple, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._kernels import _core
from ._parallel import effective_n_threads
from ._validation import check_allowed, check_batch, check_tags


class Gradients(NamedTuple):
    """Gradient of ``log_likelihood(...).sum()``.

    Attributes
    ----------
    emissions : ndarray of shape (B, T, K)
        ``[y_t == k] - P(y_t = k)``; 0 past each sequence's length.
    transitions : ndarray of shape (K, K)
        Observed minus expected transition counts, summed over the batch.
    start, end : ndarray of shape (K,)
        Observed minus expected first / last labels, summed over the batch.
    """

    emissions: np.ndarray
    transitions: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _run_forward_backward(batch, tags, want_marginals, n_jobs):
    """Call the compiled driver; return ``(logz, path_scores, node, chunk_sums)``."""
    B, T, K = batch.shape
    n_chunks = -(-B // _core.chunk_size())
    n_threads = effective_n_threads(n_jobs, n_chunks)
    with_tags = tags is not None
    logz = np.zeros(B)
    score = np.zeros(B)
    node = np.zeros((B, T, K) if want_marginals else (0, 0, 0), dtype=batch.dtype)
    chunk_sums = np.zeros((n_chunks, K * K + 2 * K) if with_tags and want_marginals else (0, 0))
    _core.forward_backward(
        batch.emissions,
        batch.lengths,
        tags if with_tags else np.zeros((0, 0), dtype=np.int64),
        batch.transitions,
        batch.start,
        batch.end,
        logz,
        score,
        node,
        chunk_sums,
        n_threads,
    )
    return logz, score, node, chunk_sums


def _as_result(values, dtype, what):
    """Cast per-sequence results to ``dtype``; overflow there is an error, not inf."""
    with np.errstate(over="ignore"):  # reported below as a ValueError
        out = values.astype(dtype, copy=False)
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise ValueError(
            f"the {what} of sequence {bad} ({values[bad]:.3g}) overflows {dtype}; "
            "pass float64 emissions or rescale the scores"
        )
    return out


def log_partition(
    emissions: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    n_jobs: Optional[int] = None,
) -> NDArray[np.floating]:
    """Log-partition function log Z of each sequence.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
        Per-position label scores.
    transitions : array-like of shape (K, K)
        ``transitions[i, j]`` scores the move from label i to label j.
    start, end : array-like of shape (K,), optional
        Scores of the first and last label; zeros by default.
    lengths : array-like of int of shape (B,), optional
        True length of each sequence, in ``[0, T]``; all ``T`` by default.
    n_jobs : int or None, default=None
        OpenMP threads: None or -1 for all, 1 for serial (scikit-learn convention).

    Returns
    -------
    ndarray of shape (B,)
        ``log sum_y exp(score(y))`` in the dtype of the scores.

    Examples
    --------
    >>> import numpy as np, fastcrf
    >>> fastcrf.log_partition(np.zeros((1, 3, 2)), np.zeros((2, 2)))  # log 2**3
    array([2.07944154])
    """
    batch = check_batch(emissions, transitions, start, end, lengths)
    logz, _, _, _ = _run_forward_backward(batch, None, False, n_jobs)
    return _as_result(logz, batch.dtype, "log-partition")


def log_likelihood(
    emissions: ArrayLike,
    tags: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    n_jobs: Optional[int] = None,
    return_grad: bool = False,
):
    """Log-likelihood ``score(tags) - log Z`` of each sequence, optionally with gradients.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
    tags : array-like of int of shape (B, T)
        Gold label indices in ``[0, K)``; entries past a sequence's length are ignored.
    transitions : array-like of shape (K, K)
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional
    n_jobs : int or None, default=None
    return_grad : bool, default=False
        Also return the gradient of ``ll.sum()``.

    Returns
    -------
    ll : ndarray of shape (B,)
    grads : Gradients
        Only with ``return_grad=True``: attributes ``emissions`` (B, T, K),
        ``transitions`` (K, K), ``start`` (K,) and ``end`` (K,).
    """
    batch = check_batch(emissions, transitions, start, end, lengths)
    gold = check_tags(tags, batch)
    logz, score, node, chunk_sums = _run_forward_backward(batch, gold, bool(return_grad), n_jobs)
    ll = _as_result(score - logz, batch.dtype, "log-likelihood")
    if not return_grad:
        return ll
    K = batch.shape[2]
    # Rows are per-chunk sums; adding them here, in order, keeps the result
    # independent of how the chunks were spread over threads.
    totals = chunk_sums.sum(axis=0) if chunk_sums.shape[0] else np.zeros(K * K + 2 * K)
    grads = Gradients(
        emissions=node,
        transitions=totals[: K * K].reshape(K, K).astype(batch.dtype),
        start=totals[K * K : K * K + K].astype(batch.dtype),
        end=totals[K * K + K :].astype(batch.dtype),
    )
    return ll, grads


def marginals(
    emissions: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    n_jobs: Optional[int] = None,
) -> NDArray[np.floating]:
    """Node marginals ``P(y_t = k)`` of each sequence.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
    transitions : array-like of shape (K, K)
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional
    n_jobs : int or None, default=None

    Returns
    -------
    ndarray of shape (B, T, K)
        Each valid row sums to 1; rows past a sequence's length are 0.
    """
    batch = check_batch(emissions, transitions, start, end, lengths)
    _, _, node, _ = _run_forward_backward(batch, None, True, n_jobs)
    return node


def path_score(
    emissions: ArrayLike,
    tags: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
) -> NDArray[np.floating]:
    """Unnormalised score of the given label paths.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K)
    tags : array-like of int of shape (B, T)
    transitions : array-like of shape (K, K)
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional

    Returns
    -------
    ndarray of shape (B,)
        ``start[y0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_last]``.
    """
    batch = check_batch(emissions, transitions, start, end, lengths)
    gold = check_tags(tags, batch)
    score = np.zeros(batch.shape[0])
    _core.path_scores(
        batch.emissions, batch.lengths, gold, batch.transitions, batch.start, batch.end, score
    )
    return _as_result(score, batch.dtype, "path score")


def viterbi(
    emissions: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    allowed: Optional[ArrayLike] = None,
    n_jobs: Optional[int] = None,
) -> Tuple[NDArray[np.int64], NDArray[np.floating]]:
    """Most probable label path of each sequence (max-product decoding).

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
    transitions : array-like of shape (K, K)
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2), optional
        Constrained decoding: ``allowed[i, j]`` False forbids the transition i -> j,
        which then never appears in a path.  In the (K + 2, K + 2) form (AllenNLP's
        ``allowed_transitions``) row K constrains the first label and column K + 1
        the last one.
    n_jobs : int or None, default=None

    Returns
    -------
    paths : ndarray of shape (B, T), int64
        Label indices; -1 past each sequence's length.
    scores : ndarray of shape (B,)
        Score of each best path.  Ties are broken as CRFsuite does: the lowest last
        label, then, walking back, the lowest previous label at each step.

    Raises
    ------
    ValueError
        When ``allowed`` leaves some sequence without any permitted path.
    """
    batch = check_batch(emissions, transitions, start, end, lengths)
    B, T, K = batch.shape
    n_threads = effective_n_threads(n_jobs, -(-B // _core.chunk_size()))
    trans, st, en = batch.transitions, batch.start, batch.end
    if allowed is not None:
        ok, st_ok, en_ok = check_allowed(allowed, K)
        trans = np.where(ok, trans, -np.inf)
        st = np.where(st_ok, st, -np.inf)
        en = np.where(en_ok, en, -np.inf)
    paths = np.full((B, T), -1, dtype=np.int64)
    scores = np.zeros(B)
    _core.viterbi(batch.emissions, batch.lengths, trans, st, en, paths, scores, n_threads)
    if allowed is not None and np.isneginf(scores).any():
        bad = np.flatnonzero(np.isneginf(scores))
        raise ValueError(
            f"allowed permits no label path for sequence(s) {bad[:10].tolist()} "
            f"(lengths {batch.lengths[bad[:10]].tolist()})"
        )
    return paths, _as_result(scores, batch.dtype, "best path score")
