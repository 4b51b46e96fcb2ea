"""Dense numpy API: log-partition, log-likelihood (+ gradient), marginals, Viterbi.

A batch holds ``B`` sequences padded to ``T`` positions over ``K`` labels.  The score
of a label path ``y`` of length ``n`` is::

    start[y[0]] + sum_t emissions[t, y[t]] + sum_{t>=1} transitions[y[t-1], y[t]]
    + end[y[n-1]]

``transitions[i, j]`` scores moving from label ``i`` to label ``j``.  Positions at or
past a sequence's length are ignored, whatever they hold (NaN too); they come back as
0 in marginals and gradients and as -1 in paths.  A sequence of length 0 has log Z =
0, an empty path and score 0.

A score of -inf means "impossible": the paths through it have probability 0 and are
never decoded.  ``allowed`` (forbidden transitions, first and last labels) and
``label_mask`` (the labels each position may take) are the same thing said with
booleans: they set the scores they forbid to -inf.  A sequence left without any
possible path is a ``ValueError`` naming it.

Every function validates its inputs (``ValueError``/``TypeError`` naming the
argument) before any compiled code runs.  Results do not depend on ``n_jobs``.
"""

from typing import NamedTuple, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _dense_edges
from ._kernels import _core
from ._parallel import effective_n_threads
from ._validation import DenseBatch, check_batch, check_label_mask, check_tags, constrain


class Gradients(NamedTuple):
    """Gradient of ``log_likelihood(...).sum()``.

    Attributes
    ----------
    emissions : ndarray of shape (B, T, K)
        ``[y_t == k] - P(y_t = k)``; 0 past each sequence's length.
    transitions : ndarray of shape (K, K), or (B, T, K, K)
        Observed minus expected transition counts, summed over the batch; per
        position (0 at position 0 and past each length) when the transitions were.
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


def _check_possible(logz, what="label path"):
    """Raise naming the sequences whose log-sum (``logz``) is -inf: no possible path."""
    bad = np.flatnonzero(np.isneginf(logz))
    if bad.size:
        raise ValueError(
            f"sequence(s) {bad[:10].tolist()} have no possible {what}: every one has a "
            "-inf score (from emissions, transitions, start, end, allowed or label_mask)"
        )


def _batch(emissions, transitions, start, end, lengths, allowed=None, label_mask=None):
    """The validated batch with ``allowed`` and ``label_mask`` folded into its scores."""
    if _dense_edges.is_per_position(transitions):
        batch = _dense_edges.check_batch(emissions, transitions, start, end, lengths)
        return _dense_edges.constrain(batch, allowed, label_mask)
    batch = check_batch(emissions, transitions, start, end, lengths)
    return constrain(batch, allowed, label_mask)


def _per_position(batch):
    # A 4-D transitions array: the per-position kernels (fastcrf._dense_edges).
    return batch.transitions.ndim == 4


def _run_partial(batch, tags, label_mask, want_grad, n_jobs):
    """Partial labels: ``(logz, log-sum over compatible paths, node grad, chunk sums)``."""
    B, T, K = batch.shape
    compatible = (np.ones((B, T, K), bool) if label_mask is None
                  else check_label_mask(label_mask, batch).copy())
    known = tags >= 0
    compatible &= ~known[:, :, None] | (np.arange(K) == tags[:, :, None])
    n_chunks = -(-B // _core.chunk_size())
    n_threads = effective_n_threads(n_jobs, n_chunks)
    logz = np.zeros(B)
    clamped = np.zeros(B)
    node = np.zeros((B, T, K) if want_grad else (0, 0, 0), dtype=batch.dtype)
    chunk_sums = np.zeros((n_chunks, K * K + 2 * K) if want_grad else (0, 0))
    _core.forward_backward_partial(
        batch.emissions, batch.lengths, compatible.view(np.uint8), batch.transitions,
        batch.start, batch.end, logz, clamped, node, chunk_sums, n_threads)
    return logz, clamped, node, chunk_sums


def _as_result(values, dtype, what, neg_inf=False):
    """Cast per-sequence results to ``dtype``; overflow there is an error, not inf.

    With ``neg_inf``, -inf (an impossible path's score) is a result, not an error.
    """
    with np.errstate(over="ignore"):  # reported below as a ValueError
        out = values.astype(dtype, copy=False)
    wrong = ~np.isfinite(out) & ~(np.isneginf(values) if neg_inf else False)
    if wrong.any():
        bad = int(np.flatnonzero(wrong)[0])
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
    allowed: Optional[ArrayLike] = None,
    label_mask: Optional[ArrayLike] = None,
    n_jobs: Optional[int] = None,
) -> NDArray[np.floating]:
    """Log-partition function log Z of each sequence (over its possible paths).

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
        Per-position label scores.
    transitions : array-like of shape (K, K) or (B, T, K, K)
        ``transitions[i, j]`` scores the move from label i to label j.  The 4-D form
        gives every position its own scores: ``transitions[b, t, i, j]`` scores label
        i at position t - 1 followed by j at t (observation-conditioned transitions;
        position 0 and the positions past a length are ignored).
    start, end : array-like of shape (K,), optional
        Scores of the first and last label; zeros by default.
    lengths : array-like of int of shape (B,), optional
        True length of each sequence, in ``[0, T]``; all ``T`` by default.
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2), optional
        ``allowed[i, j]`` False forbids the transition i -> j (its score becomes
        -inf).  In the (K + 2, K + 2) form (AllenNLP's, as built by
        :func:`allowed_transitions`) row K constrains the first label and column
        K + 1 the last one.
    label_mask : array-like of bool of shape (B, T, K), optional
        ``label_mask[b, t, k]`` False forbids label k at position t of sequence b
        (forced decoding when one label is left).  Ignored past each length.
    n_jobs : int or None, default=None
        OpenMP threads: None or -1 for all, 1 for serial (scikit-learn convention).

    Returns
    -------
    ndarray of shape (B,)
        ``log sum_y exp(score(y))`` in the dtype of the scores.

    Raises
    ------
    ValueError
        When some sequence has no possible path (all of them score -inf).

    Examples
    --------
    >>> import numpy as np, fastcrf
    >>> fastcrf.log_partition(np.zeros((1, 3, 2)), np.zeros((2, 2)))  # log 2**3
    array([2.07944154])
    """
    batch = _batch(emissions, transitions, start, end, lengths, allowed, label_mask)
    if _per_position(batch):
        logz = _dense_edges.forward_backward(batch, n_jobs=n_jobs)[0]
    else:
        logz, _, _, _ = _run_forward_backward(batch, None, False, n_jobs)
    _check_possible(logz)
    return _as_result(logz, batch.dtype, "log-partition")


def log_likelihood(
    emissions: ArrayLike,
    tags: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    allowed: Optional[ArrayLike] = None,
    label_mask: Optional[ArrayLike] = None,
    n_jobs: Optional[int] = None,
    return_grad: bool = False,
):
    """Log-likelihood ``score(tags) - log Z`` of each sequence, optionally with gradients.

    With ``allowed`` the normaliser sums over the allowed paths only (constrained
    training).  With ``label_mask`` or tags of -1 the labelling is partial: the
    likelihood is that of every path compatible with it,
    ``log sum_{y compatible} exp(score(y)) - log Z`` (partial-label training).

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
    tags : array-like of int of shape (B, T)
        Gold label indices in ``[0, K)``, or -1 where the label is unknown (any label
        the mask allows); entries past a sequence's length are ignored.
    transitions : array-like of shape (K, K) or (B, T, K, K)
        Per-position transitions as in :func:`log_partition`.
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2), optional
        Forbidden transitions (see :func:`viterbi`): they score -inf in the
        numerator and the normaliser alike.
    label_mask : array-like of bool of shape (B, T, K), optional
        The labels each position may take in the *numerator* only: the tags then
        narrow it further where they are not -1.
    n_jobs : int or None, default=None
    return_grad : bool, default=False
        Also return the gradient of ``ll.sum()``.

    Returns
    -------
    ll : ndarray of shape (B,)
    grads : Gradients
        Only with ``return_grad=True``: attributes ``emissions`` (B, T, K),
        ``transitions`` (K, K) (or (B, T, K, K), as given), ``start`` (K,) and
        ``end`` (K,).

    Raises
    ------
    ValueError
        When some sequence has no possible path, or its labelling has probability 0
        (every compatible path scores -inf); for ``label_mask`` or -1 tags with
        (B, T, K, K) transitions (partial labels take shared transitions).
    """
    batch = _batch(emissions, transitions, start, end, lengths, allowed)
    if _per_position(batch):
        return _per_position_likelihood(batch, tags, label_mask, return_grad, n_jobs)
    gold = check_tags(tags, batch, unknown=True)
    valid = np.arange(batch.shape[1])[None, :] < batch.lengths[:, None]
    if label_mask is None and not (valid & (gold < 0)).any():
        logz, score, node, chunk_sums = _run_forward_backward(
            batch, gold, bool(return_grad), n_jobs)
    else:
        logz, score, node, chunk_sums = _run_partial(
            batch, gold, label_mask, bool(return_grad), n_jobs)
    _check_possible(logz)
    _check_possible(score, "path compatible with tags and label_mask")
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


def _per_position_likelihood(batch, tags, label_mask, return_grad, n_jobs):
    # log_likelihood with (B, T, K, K) transitions: complete tags only.
    if label_mask is not None:
        raise ValueError("label_mask (partial labels) is not supported with per-position "
                         "transitions of shape (B, T, K, K); pass (K, K) transitions")
    logz, score, grads = _dense_edges.log_likelihood(batch, tags, return_grad=return_grad,
                                                     n_jobs=n_jobs)
    _check_possible(logz)
    _check_possible(score, "path compatible with tags and label_mask")
    ll = _as_result(score - logz, batch.dtype, "log-likelihood")
    if not return_grad:
        return ll
    return ll, Gradients(*(g.astype(batch.dtype) for g in grads))


def marginals(
    emissions: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    allowed: Optional[ArrayLike] = None,
    label_mask: Optional[ArrayLike] = None,
    n_jobs: Optional[int] = None,
) -> NDArray[np.floating]:
    """Node marginals ``P(y_t = k)`` of each sequence.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
    transitions : array-like of shape (K, K) or (B, T, K, K)
        Per-position transitions as in :func:`log_partition`.
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2), optional
        ``allowed[i, j]`` False forbids the transition i -> j (its score becomes
        -inf).  In the (K + 2, K + 2) form (AllenNLP's, as built by
        :func:`allowed_transitions`) row K constrains the first label and column
        K + 1 the last one.
    label_mask : array-like of bool of shape (B, T, K), optional
        ``label_mask[b, t, k]`` False forbids label k at position t of sequence b
        (forced decoding when one label is left).  Ignored past each length.
    n_jobs : int or None, default=None

    Returns
    -------
    ndarray of shape (B, T, K)
        Each valid row sums to 1; rows past a sequence's length are 0.

    Raises
    ------
    ValueError
        When some sequence has no possible path.
    """
    batch = _batch(emissions, transitions, start, end, lengths, allowed, label_mask)
    if _per_position(batch):
        logz, _, node, _, _ = _dense_edges.forward_backward(batch, node=True, n_jobs=n_jobs)
        _check_possible(logz)
        return node.astype(batch.dtype)
    logz, _, node, _ = _run_forward_backward(batch, None, True, n_jobs)
    _check_possible(logz)
    return node


def edge_marginals(
    emissions: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    allowed: Optional[ArrayLike] = None,
    label_mask: Optional[ArrayLike] = None,
    n_jobs: Optional[int] = None,
) -> NDArray[np.floating]:
    """Pairwise marginals ``P(y_t = i, y_{t+1} = j)`` of each sequence.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
    transitions : array-like of shape (K, K) or (B, T, K, K)
        Per-position transitions as in :func:`log_partition`.
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2), optional
        ``allowed[i, j]`` False forbids the transition i -> j (its score becomes
        -inf).  In the (K + 2, K + 2) form (AllenNLP's, as built by
        :func:`allowed_transitions`) row K constrains the first label and column
        K + 1 the last one.
    label_mask : array-like of bool of shape (B, T, K), optional
        ``label_mask[b, t, k]`` False forbids label k at position t of sequence b
        (forced decoding when one label is left).  Ignored past each length.
    n_jobs : int or None, default=None

    Returns
    -------
    ndarray of shape (B, max(T - 1, 0), K, K)
        ``[b, t, i, j]``; each block within a length sums to 1 and is 0 past it.

    Raises
    ------
    ValueError
        When some sequence has no possible path.
    """
    batch = _batch(emissions, transitions, start, end, lengths, allowed, label_mask)
    B, T, K = batch.shape
    if _per_position(batch):
        logz, _, _, pair, _ = _dense_edges.forward_backward(batch, pair=True, n_jobs=n_jobs)
        _check_possible(logz)
        return pair[:, 1:].astype(batch.dtype)
    n_threads = effective_n_threads(n_jobs, -(-B // _core.chunk_size()))
    logz = np.zeros(B)
    out = np.zeros((B, max(T - 1, 0), K, K), dtype=batch.dtype)
    if T > 1:
        _core.edge_marginals(batch.emissions, batch.lengths, batch.transitions, batch.start,
                             batch.end, logz, out, n_threads)
    else:
        logz = log_partition(batch.emissions, batch.transitions, batch.start, batch.end,
                             batch.lengths, n_jobs=n_jobs).astype(np.float64)
    _check_possible(logz)
    return out


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
    transitions : array-like of shape (K, K) or (B, T, K, K)
        Per-position transitions as in :func:`log_partition`.
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional

    Returns
    -------
    ndarray of shape (B,)
        ``start[y0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_last]``;
        -inf for a path through an impossible (-inf) score.
    """
    if _dense_edges.is_per_position(transitions):
        batch = _dense_edges.check_batch(emissions, transitions, start, end, lengths)
        _, score, _, _, _ = _dense_edges.forward_backward(batch, check_tags(tags, batch))
        return _as_result(score, batch.dtype, "path score", neg_inf=True)
    batch = check_batch(emissions, transitions, start, end, lengths)
    gold = check_tags(tags, batch)
    score = np.zeros(batch.shape[0])
    _core.path_scores(
        batch.emissions, batch.lengths, gold, batch.transitions, batch.start, batch.end, score
    )
    return _as_result(score, batch.dtype, "path score", neg_inf=True)


def viterbi(
    emissions: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    allowed: Optional[ArrayLike] = None,
    label_mask: Optional[ArrayLike] = None,
    k: Optional[int] = None,
    n_jobs: Optional[int] = None,
) -> Tuple[NDArray[np.int64], NDArray[np.floating]]:
    """Most probable label path of each sequence (max-product decoding), or the k best.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
    transitions : array-like of shape (K, K) or (B, T, K, K)
        Per-position transitions as in :func:`log_partition`.
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2), optional
        ``allowed[i, j]`` False forbids the transition i -> j (its score becomes
        -inf).  In the (K + 2, K + 2) form (AllenNLP's, as built by
        :func:`allowed_transitions`) row K constrains the first label and column
        K + 1 the last one.
    label_mask : array-like of bool of shape (B, T, K), optional
        ``label_mask[b, t, k]`` False forbids label k at position t of sequence b
        (forced decoding when one label is left).  Ignored past each length.
    k : int or None, default=None
        None: the best path.  An int >= 1: the exact k best distinct paths (list
        Viterbi, not a beam), in descending score.
    n_jobs : int or None, default=None

    Returns
    -------
    paths : ndarray of shape (B, T), or (B, k, T) with ``k``, int64
        Label indices; -1 past each sequence's length, and for the missing paths of a
        sequence that has fewer than k possible ones.
    scores : ndarray of shape (B,), or (B, k) with ``k``
        Score of each path; -inf for the missing ones.  Ties are broken as CRFsuite
        does: the lowest last label, then, walking back, the lowest previous label at
        each step (with ``k``, equal scores come in that order).

    Raises
    ------
    ValueError
        When some sequence has no possible path.
    """
    batch = _batch(emissions, transitions, start, end, lengths, allowed, label_mask)
    B, T, K = batch.shape
    if k is not None:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int or None, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
    if _per_position(batch):
        if k is None:
            paths, scores = _dense_edges.viterbi(batch, n_jobs)
            _check_possible(scores)
            return paths, _as_result(scores, batch.dtype, "best path score")
        paths, scores = _dense_edges.viterbi_nbest(batch, int(k), n_jobs)
        _check_possible(scores[:, 0])
        return paths, _as_result(scores.ravel(), batch.dtype, "path score",
                                 neg_inf=True).reshape(B, int(k))
    n_threads = effective_n_threads(n_jobs, -(-B // _core.chunk_size()))
    if k is None:
        paths = np.full((B, T), -1, dtype=np.int64)
        scores = np.zeros(B)
        _core.viterbi(batch.emissions, batch.lengths, batch.transitions, batch.start,
                      batch.end, paths, scores, n_threads)
        _check_possible(scores)
        return paths, _as_result(scores, batch.dtype, "best path score")
    paths = np.full((B, int(k), T), -1, dtype=np.int64)
    scores = np.full((B, int(k)), -np.inf)
    scores[batch.lengths == 0, 0] = 0.0  # the one (empty) path; -inf: no possible path
    _core.viterbi_nbest(batch.emissions, batch.lengths, batch.transitions, batch.start,
                        batch.end, paths, scores, n_threads)
    _check_possible(scores[:, 0])
    return paths, _as_result(scores.ravel(), batch.dtype, "path score",
                             neg_inf=True).reshape(B, int(k))


def posterior_decode(
    emissions: ArrayLike,
    transitions: ArrayLike,
    start: Optional[ArrayLike] = None,
    end: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    *,
    allowed: Optional[ArrayLike] = None,
    label_mask: Optional[ArrayLike] = None,
    n_jobs: Optional[int] = None,
) -> NDArray[np.int64]:
    """Minimum-Bayes-risk decoding: the possible path with the highest expected accuracy.

    The path maximises ``sum_t P(y_t)`` (the node marginals) among the paths of
    nonzero probability, so it honours ``allowed`` and ``label_mask``: marginals
    followed by one max-sum pass over them.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K), float32 or float64
    transitions : array-like of shape (K, K) or (B, T, K, K)
        Per-position transitions as in :func:`log_partition`.
    start, end : array-like of shape (K,), optional
    lengths : array-like of int of shape (B,), optional
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2), optional
        ``allowed[i, j]`` False forbids the transition i -> j (its score becomes
        -inf).  In the (K + 2, K + 2) form (AllenNLP's, as built by
        :func:`allowed_transitions`) row K constrains the first label and column
        K + 1 the last one.
    label_mask : array-like of bool of shape (B, T, K), optional
        ``label_mask[b, t, k]`` False forbids label k at position t of sequence b
        (forced decoding when one label is left).  Ignored past each length.
    n_jobs : int or None, default=None

    Returns
    -------
    ndarray of shape (B, T), int64
        Label indices; -1 past each sequence's length.  Ties as in :func:`viterbi`.

    Raises
    ------
    ValueError
        When some sequence has no possible path.
    """
    batch = _batch(emissions, transitions, start, end, lengths, allowed, label_mask)
    B, T, _ = batch.shape
    # The validated batch goes to the kernel as it is (marginals() would check it again).
    if _per_position(batch):
        logz, _, node, _, _ = _dense_edges.forward_backward(batch, node=True, n_jobs=n_jobs)
        trans0 = _dense_edges.possible_transitions(batch)
    else:
        logz, _, node, _ = _run_forward_backward(batch, None, True, n_jobs)
        trans0 = (np.where(np.isneginf(batch.transitions), -np.inf, 0.0)
                  if np.isneginf(batch.transitions).any() else None)
    _check_possible(logz)
    if trans0 is None and not (np.isneginf(batch.start).any() or np.isneginf(batch.end).any()):
        # No forbidden transition: any labels of nonzero marginal form a possible path,
        # so the best path takes the best label of each position; argmax keeps the
        # lowest label on ties, the Viterbi rule with all transitions 0.  (A label of
        # -inf emission has marginal 0 < the row's maximum: it is never chosen.)
        paths = node.argmax(axis=2)
        paths[np.arange(T)[None, :] >= batch.lengths[:, None]] = -1
        return paths
    # Only what is possible may be chosen: -inf stays -inf, everything else scores 0
    # (transitions) or its marginal probability (labels); the marginals buffer itself
    # when no emission is -inf.
    impossible = np.isneginf(batch.emissions)
    gain = np.where(impossible, -np.inf, node) if impossible.any() else node
    start0, end0 = (np.where(np.isneginf(x), -np.inf, 0.0) for x in (batch.start, batch.end))
    if _per_position(batch):
        if trans0 is None:
            trans0 = np.zeros(batch.transitions.shape)
        paths, _ = _dense_edges.viterbi(
            DenseBatch(gain, trans0, start0, end0, batch.lengths, batch.dtype), n_jobs)
        return paths
    if trans0 is None:
        trans0 = np.zeros(batch.transitions.shape)
    paths = np.full((B, T), -1, dtype=np.int64)
    n_threads = effective_n_threads(n_jobs, -(-B // _core.chunk_size()))
    _core.viterbi(gain, batch.lengths, trans0, start0, end0, paths, np.zeros(B), n_threads)
    return paths
