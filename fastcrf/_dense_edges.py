"""The dense API with per-position transitions: ``transitions`` of shape (B, T, K, K).

``transitions[b, t, i, j]`` scores label ``i`` at position ``t - 1`` followed by label
``j`` at position ``t`` of sequence ``b`` (as torch-struct's linear-chain potentials),
so position 0's matrix and the matrices at or past a sequence's length are ignored
(they may hold anything, NaN too).  :mod:`fastcrf._dense` sends a 4-D ``transitions``
here; the functions mirror its own and validate the same way before any compiled code
runs.  The recursions run in log space (:mod:`fastcrf._kernels._edges`), in float64
whatever the dtype of the emissions; results come back in that dtype.
"""

import numpy as np

from ._kernels import _core, _edges
from ._parallel import effective_n_threads
from ._validation import (
    DenseBatch,
    _as_real_array,
    _check_scores,
    _result_dtype,
    check_allowed,
    check_label_mask,
    check_lengths,
    check_tags,
)


def is_per_position(transitions):
    """Whether ``transitions`` is a (B, T, K, K) array (else the shared (K, K) form)."""
    return np.ndim(transitions) == 4


def check_batch(emissions, transitions, start=None, end=None, lengths=None):
    """Validate a batch with (B, T, K, K) transitions.

    Returns
    -------
    DenseBatch
        Its ``emissions`` are float64 (the kernels' type) and its ``transitions`` the
        (B, T, K, K) float64 array; ``dtype`` is the dtype of the results.
    """
    em = _as_real_array(emissions, "emissions")
    if em.ndim != 3:
        raise ValueError(
            f"emissions must be 3-D (batch, time, labels), got {em.ndim}-D with shape "
            f"{em.shape}")
    B, T, K = em.shape
    if K < 1:
        raise ValueError("emissions must have at least one label (K >= 1), got K = 0")
    dtype = _result_dtype(em)
    lengths = check_lengths(lengths, B, T)
    steps = np.arange(T)[None, :]
    valid = steps < lengths[:, None]
    em = _check_scores(em, "emissions", (B, T, K), np.float64, valid)
    # Only the transitions into positions 1 .. length - 1 are read.
    tr = _check_scores(transitions, "transitions", (B, T, K, K), np.float64,
                       valid & (steps >= 1))
    st = np.zeros(K) if start is None else _check_scores(start, "start", (K,), np.float64)
    en = np.zeros(K) if end is None else _check_scores(end, "end", (K,), np.float64)
    return DenseBatch(em, tr, st, en, lengths, dtype)


def constrain(batch, allowed=None, label_mask=None):
    """``batch`` with what ``allowed`` and ``label_mask`` forbid scored -inf (every
    position's transitions obey ``allowed``)."""
    em, tr, st, en = batch.emissions, batch.transitions, batch.start, batch.end
    if allowed is not None:
        ok, st_ok, en_ok = check_allowed(allowed, batch.shape[2])
        tr = np.where(ok, tr, -np.inf)
        st = np.where(st_ok, st, -np.inf)
        en = np.where(en_ok, en, -np.inf)
    if label_mask is not None:
        em = np.where(check_label_mask(label_mask, batch), em, -np.inf)
    return DenseBatch(em, tr, st, en, batch.lengths, batch.dtype)


def _threads(n_jobs, B):
    return effective_n_threads(n_jobs, -(-B // _core.chunk_size()))


def forward_backward(batch, tags=None, *, node=False, pair=False, ends=False, n_jobs=None):
    """One compiled pass: ``(logz, score, node, pair, ends)`` (empty where not asked).

    ``pair[b, t, i, j]`` is ``P(y_{t-1} = i, y_t = j)`` for ``1 <= t < length``;
    ``ends[b]`` holds ``P(y_0 = k)`` then ``P(y_{n-1} = k)``.
    """
    B, T, K = batch.shape
    logz = np.zeros(B)
    score = np.zeros(B)
    node_out = np.zeros((B, T, K) if node else (0, 0, 0))
    pair_out = np.zeros((B, T, K, K) if pair else (0, 0, 0, 0))
    ends_out = np.zeros((B, 2 * K) if ends else (0, 0))
    _edges.dense_forward_backward(
        batch.emissions, batch.lengths, batch.transitions, batch.start, batch.end,
        tags if tags is not None else np.zeros((0, 0), dtype=np.int64), logz, score,
        node_out, pair_out, ends_out, _threads(n_jobs, B))
    return logz, score, node_out, pair_out, ends_out


def log_likelihood(batch, tags, *, return_grad, n_jobs):
    """``(logz, score, grads)`` of complete tags; grads None without ``return_grad``.

    The transition gradient is per position, (B, T, K, K): the observed minus the
    expected transition into each position (0 at position 0 and past the length).
    """
    T, K = batch.shape[1:]
    gold = check_tags(tags, batch)
    logz, score, node, pair, ends = forward_backward(
        batch, gold, node=return_grad, pair=return_grad, ends=return_grad, n_jobs=n_jobs)
    if not return_grad:
        return logz, score, None
    valid = np.arange(T)[None, :] < batch.lengths[:, None]
    b, t = np.nonzero(valid)
    em_grad = -node
    em_grad[b, t, gold[b, t]] += 1.0
    tr_grad = -pair
    inner = valid.copy()
    inner[:, 0] = False
    b, t = np.nonzero(inner)
    tr_grad[b, t, gold[b, t - 1], gold[b, t]] += 1.0
    has = batch.lengths > 0
    rows = np.flatnonzero(has)
    st_grad = -ends[:, :K][has].sum(axis=0)
    en_grad = -ends[:, K:][has].sum(axis=0)
    np.add.at(st_grad, gold[rows, 0], 1.0)
    np.add.at(en_grad, gold[rows, batch.lengths[rows] - 1], 1.0)
    return logz, score, (em_grad, tr_grad, st_grad, en_grad)


def viterbi(batch, n_jobs):
    """``(paths (B, T) with -1 past each length, scores (B,))``."""
    B, T = batch.shape[:2]
    paths = np.full((B, T), -1, dtype=np.int64)
    scores = np.zeros(B)
    _edges.dense_viterbi(batch.emissions, batch.lengths, batch.transitions, batch.start,
                         batch.end, paths, scores, _threads(n_jobs, B))
    return paths, scores


def viterbi_nbest(batch, k, n_jobs):
    """``(paths (B, k, T), scores (B, k))``: the k best distinct paths of every
    sequence in descending score (-1 / -inf for the missing ones), ties as the
    shared-transition k-best (:func:`fastcrf._dense.viterbi`)."""
    B, T = batch.shape[:2]
    paths = np.full((B, k, T), -1, dtype=np.int64)
    scores = np.full((B, k), -np.inf)
    scores[batch.lengths == 0, 0] = 0.0  # the one (empty) path; -inf: no possible path
    _edges.dense_viterbi_nbest(batch.emissions, batch.lengths, batch.transitions,
                               batch.start, batch.end, paths, scores, _threads(n_jobs, B))
    return paths, scores


def possible_transitions(batch):
    """The batch's transition scores with every possible one 0 (the impossible ones
    stay -inf), or None when every transition it reads is possible."""
    B, T = batch.shape[:2]
    steps = np.arange(T)[None, :]
    read = (steps < batch.lengths[:, None]) & (steps >= 1)
    impossible = np.isneginf(batch.transitions) & read[:, :, None, None]
    if not impossible.any():
        return None
    return np.where(impossible, -np.inf, 0.0)
