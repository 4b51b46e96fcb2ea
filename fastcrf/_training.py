"""Training data, model weights and the objective shared by every trainer.

The model is CRFsuite's first-order CRF with state features over (attribute, label)
pairs plus dense transition, start and end scores.  The training objective is
CRFsuite's::

    f(w) = sum_i -log p(y_i | x_i; w) + c1 * ||w||_1 + c2 * ||w||_2^2

over all weights (state, transition, start, end).
"""

from dataclasses import dataclass

import numpy as np

from ._features._encode import renumber_ids
from ._features._encoding import EncodedSequences, encode_labels, fit_encode
from ._kernels import _core, _sparse
from ._layout import _NO_TAIL, dense_kernel_args
from ._parallel import effective_n_threads
from ._sample_weight import token_weights


@dataclass(eq=False)
class TrainingData:
    """An encoded training set, ready for the compiled kernels.

    Attributes
    ----------
    features : EncodedSequences
    labels : ndarray of shape (n_tokens,), int64
        Label code of every token.
    n_labels : int
    max_length : int
        Length of the longest sequence (sizes the per-thread workspaces).
    weights : ndarray of shape (n_sequences,) or None
        Sample weights (:mod:`fastcrf._sample_weight`); None: every sequence weighs 1.
    """

    features: EncodedSequences
    labels: np.ndarray
    n_labels: int
    max_length: int
    weights: np.ndarray = None

    @classmethod
    def build(cls, features, labels, n_labels):
        """Bundle encoded features with their int label codes."""
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        features = drop_unit_values(features)
        max_length = int(features.lengths.max()) if features.n_sequences else 0
        return cls(features, labels, int(n_labels), max_length)

    @property
    def n_sequences(self):
        """Number of training sequences."""
        return self.features.n_sequences

    def subset(self, index):
        """The sequences ``index`` (in that order), attribute ids unchanged."""
        f = self.features
        index = np.asarray(index, dtype=np.int64)
        # Differences at the chosen positions only: a memory-mapped set is read where
        # ``index`` points, not whole.
        tok_start = f.seq_offsets[index]
        seq_len = f.seq_offsets[index + 1] - tok_start
        tokens = _ranges(tok_start, seq_len)
        tok_len = f.token_offsets[tokens + 1] - f.token_offsets[tokens]
        entries = _ranges(f.token_offsets[tokens], tok_len)
        sub = EncodedSequences(
            f.attr_ids[entries],
            f.values[entries] if len(f.values) else f.values,
            np.concatenate(([0], np.cumsum(tok_len))).astype(np.int64),
            np.concatenate(([0], np.cumsum(seq_len))).astype(np.int64),
            f.n_attributes,
        )
        return TrainingData(sub, self.labels[tokens], self.n_labels,
                            int(seq_len.max()) if len(seq_len) else 0,
                            None if self.weights is None else self.weights[index])

    def compact(self):
        """Renumber the attributes to those present; return ``(data, used_ids)``.

        Ids keep their order (``used_ids`` increases).
        """
        f = self.features
        # A table over all ids rather than np.unique's sort: O(n + A), ~5x faster for
        # SGD calibration's sample of CoNLL-2000.
        present = np.bincount(f.attr_ids, minlength=f.n_attributes) > 0
        used = np.flatnonzero(present)
        new_id = np.cumsum(present, dtype=np.int32) - 1
        # A new array: the SGD trainer reorders ids (and values) within tokens in place.
        sub = EncodedSequences(new_id[f.attr_ids], f.values.copy(),
                               f.token_offsets, f.seq_offsets, len(used))
        return TrainingData(sub, self.labels, self.n_labels, self.max_length,
                            self.weights), used


def encode_training(X, y, min_freq, n_jobs, classes=None):
    """Encode a training set: ``(vocabulary, classes, data)``.

    The attributes occurring at least ``min_freq`` times are numbered by decreasing
    frequency (:func:`sort_by_frequency`); ``classes`` are the labels in code order
    (given, or those of ``y`` in the order first seen).

    Raises
    ------
    ValueError, TypeError
        For malformed ``X`` or ``y``, or when no attribute is frequent enough.
    """
    vocabulary, features = sort_by_frequency(
        *fit_encode(X, min_freq=min_freq, dense_values=False, n_jobs=n_jobs))
    classes, labels = encode_labels(y, classes, lengths=features.lengths)
    data = TrainingData.build(features, labels, len(classes))
    if data.features.n_attributes == 0:
        if min_freq <= 1:  # nothing was cut: no token has any attribute
            raise ValueError("X holds no attributes: every token's feature list is empty "
                             "(a CRF++ template with no U lines extracts none)")
        raise ValueError(f"no attribute occurs at least min_freq={min_freq} times")
    return vocabulary, classes, data


def chain_mask(data, all_transitions):
    """1.0 for the trainable transition / start / end scores: all of them, or with
    ``all_transitions`` False only the transitions of label bigrams seen in ``data``."""
    K = data.n_labels
    mask = np.ones(K * K + 2 * K)
    if not all_transitions:
        seen = np.zeros((K, K))
        y = data.labels
        same_seq = np.ones(len(y) - 1, dtype=bool) if len(y) > 1 else np.zeros(0, bool)
        same_seq[data.features.seq_offsets[1:-1] - 1] = False
        seen[y[:-1][same_seq], y[1:][same_seq]] = 1.0
        mask[: K * K] = seen.ravel()
    return mask


def keep_frequent_features(data, layout, mask, min_freq):
    """CRFsuite's ``feature.minfreq``: the layout and chain mask without the features
    whose frequency in ``data`` is below ``min_freq``.

    A state feature's frequency is the sum of its attribute's values over the tokens
    of its label, a transition's the count of its label bigram; a pair kept without
    being seen (``all_possible_states`` / ``all_possible_transitions``) has frequency 0.
    So at ``min_freq`` 0 only features whose values sum below 0 go, and above 0 the
    unseen pairs go too, as in CRFsuite (``crf1df_generate``).  Start and end scores
    are left as they are.

    Returns
    -------
    layout : StateLayout
        ``layout`` itself when no state feature goes.
    mask : ndarray
        A copy of ``mask`` with the dropped transitions at 0.
    """
    f = data.features
    K = data.n_labels
    lengths = np.diff(f.token_offsets)
    keys = f.attr_ids.astype(np.int64) * K + np.repeat(data.labels, lengths)
    seen, inverse = np.unique(keys, return_inverse=True)
    values = f.values if len(f.values) else None
    freq_seen = np.bincount(inverse, weights=values, minlength=len(seen))
    rows, cols = layout.pairs()
    kept_keys = rows * K + cols
    freq = np.zeros(len(kept_keys))
    if len(seen):
        where = np.minimum(np.searchsorted(seen, kept_keys), len(seen) - 1)
        hit = seen[where] == kept_keys
        freq[hit] = freq_seen[where[hit]]
    keep = freq >= min_freq
    if not keep.all():
        layout = type(layout).of_pairs(layout.n_attributes, K, rows[keep], cols[keep])
    y = data.labels
    same_seq = np.ones(max(len(y) - 1, 0), dtype=bool)
    same_seq[f.seq_offsets[1:-1] - 1] = False
    bigrams = np.bincount(y[:-1][same_seq] * K + y[1:][same_seq], minlength=K * K)
    mask = mask.copy()
    mask[: K * K][bigrams[: K * K] < min_freq] = 0.0
    return layout, mask


def drop_unit_values(features):
    """``features`` with an empty ``values`` array when every value is 1.0.

    The compiled kernels read an empty values array as "all 1.0": binary attributes,
    the common case, then cost no memory for their values.
    """
    values = features.values
    if len(values) == 0 or not np.all(values == 1.0):
        return features
    return EncodedSequences(features.attr_ids, np.zeros(0), features.token_offsets,
                            features.seq_offsets, features.n_attributes)


def _ranges(starts, lengths):
    """Concatenate ``arange(s, s + n)`` for every pair: the flat index of ragged runs."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.asarray(starts, dtype=np.int64) - np.concatenate(
        ([0], np.cumsum(lengths)[:-1])), lengths)
    return offsets + np.arange(total, dtype=np.int64)


@dataclass(eq=False)
class Weights:
    """CRF parameters.

    Attributes
    ----------
    state : ndarray of shape (n_attributes, n_labels)
        ``state[a, k]`` weighs attribute ``a`` for label ``k``.
    transitions : ndarray of shape (n_labels, n_labels)
        ``transitions[i, j]`` scores label ``i`` followed by label ``j``.
    start, end : ndarray of shape (n_labels,)
        Scores of the first and last label of a sequence.
    """

    state: np.ndarray
    transitions: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def zeros(cls, n_attributes, n_labels):
        """All-zero weights."""
        K = n_labels
        return cls(np.zeros((n_attributes, K)), np.zeros((K, K)), np.zeros(K), np.zeros(K))

    @classmethod
    def from_flat(cls, state, chain):
        """Weights from a state matrix and a flat (transitions, start, end) vector."""
        return cls(np.ascontiguousarray(state), *split_chain(chain, state.shape[1]))

    @property
    def chain(self):
        """Transitions, start and end as one flat vector."""
        return np.concatenate((self.transitions.ravel(), self.start, self.end))

    def squared_norm(self):
        """``||w||_2^2`` over all weights."""
        return sum_of_squares(self.state.ravel()) + sum_of_squares(self.chain)

    def l1_norm(self):
        """``||w||_1`` over all weights."""
        return float(np.abs(self.state).sum() + np.abs(self.chain).sum())


def split_chain(chain, K):
    """``(transitions (K, K), start (K,), end (K,))`` of a flat chain vector."""
    return (np.ascontiguousarray(chain[: K * K].reshape(K, K)),
            np.ascontiguousarray(chain[K * K: K * K + K]),
            np.ascontiguousarray(chain[K * K + K:]))


def sum_of_squares(x):
    """``sum(x ** 2)`` of a 1-D float array, without BLAS.

    ``np.dot`` would call a threaded BLAS whose worker threads keep spinning after the
    call, taking cores from the OpenMP threads of the next compiled pass.
    """
    return float(np.einsum("i,i->", x, x))


def n_threads_for(n_jobs, n_sequences):
    """Threads for a pass over ``n_sequences`` sequences."""
    return effective_n_threads(n_jobs, -(-max(n_sequences, 1) // _core.chunk_size()))


def log_likelihood(data, weights, n_jobs=None, *, with_gradient=True):
    """Total log-likelihood of ``data`` and, optionally, its gradient.

    Parameters
    ----------
    data : TrainingData
    weights : Weights
    n_jobs : int or None
    with_gradient : bool

    Returns
    -------
    ll : float
    grad : Weights or None
        Gradient of ``ll`` (observed minus expected feature counts).

    Raises
    ------
    FloatingPointError
        When a sequence's scores are not finite or exceed 1e150 in magnitude.
    """
    ll, marg, chunks = _forward_pass(data, dense_kernel_args(weights.state),
                                     weights.chain, n_jobs, with_gradient)
    if not with_gradient:
        return ll, None
    A, K = weights.state.shape
    state_grad = np.empty((A, K))
    state_gradient(data, marg, (K, A) + _NO_TAIL, state_grad.reshape(-1), n_jobs)
    return ll, Weights.from_flat(state_grad, chunks.sum(axis=0))


def log_likelihood_of_flat(data, layout, state, chain, n_jobs=None):
    """Total log-likelihood of ``data`` under flat state weights in ``layout``.

    As :func:`log_likelihood` without the gradient, for weights kept as a trainer
    keeps them (a :class:`fastcrf._layout.StateLayout` and its flat vector ``state``;
    ``chain``: transitions, start and end scores, flat): no dense (n_attributes,
    n_labels) matrix is built.
    """
    return _forward_pass(data, layout.kernel_args(state), chain, n_jobs, False)[0]


def _forward_pass(data, state_args, chain, n_jobs, with_gradient, out=None):
    # (log-likelihood, node marginals, per-chunk chain gradients) from one compiled pass;
    # with sample weights the log-likelihood and the chain gradients are weighted (the
    # state gradient is weighted by state_gradient's token_weight).
    status, logz, score, marg, chunks = forward_backward(
        state_args, chain, data.n_labels, data.features, data.labels, n_jobs,
        marginals=with_gradient, chain_sums=with_gradient, out=out,
        seq_weight=data.weights)
    if status != 0:
        raise FloatingPointError("the scores of a sequence are not finite or exceed 1e150")
    if data.weights is None:
        return float(score.sum() - logz.sum()), marg, chunks
    return float(np.einsum("i,i->", score - logz, data.weights)), marg, chunks


def forward_backward(state_args, chain, n_labels, features, labels, n_jobs, *,
                     marginals, chain_sums, out=None, seq_weight=None):
    """One compiled forward-backward pass over an encoded batch (the one place that
    calls the sparse driver).

    Parameters
    ----------
    state_args : tuple
        The state weights as :meth:`fastcrf._layout.StateLayout.kernel_args` gives them.
    chain : ndarray of shape (K*K + 2K,)
    n_labels : int
    features : EncodedSequences
    labels : ndarray of shape (n_tokens,) or (0,), int64
        Gold label codes (their path scores and chain counts), or empty.
    n_jobs : int or None
    marginals, chain_sums : bool
        Whether to compute the node marginals / the per-chunk chain gradients.
    out : tuple of ndarray, optional
        ``(logz, score, marg, chunks)`` as :func:`forward_buffers` makes them, reused
        (overwritten) instead of allocating new arrays: a trainer that evaluates the
        objective a hundred times skips re-allocating, and page-faulting, ``marg``.
    seq_weight : ndarray of shape (n_sequences,), optional
        Sample weights of the chain gradients (``chunks``); None: all 1.

    Returns
    -------
    status : int
        0, or -1 when some scores are not finite or exceed 1e150.
    logz, score : ndarray of shape (n_sequences,)
    marg : ndarray of shape (n_tokens, K), or (0, K)
    chunks : ndarray of shape (n_chunks, K*K + 2K), or (0, 0)
    """
    K = n_labels
    n_seq = features.n_sequences
    if out is None:
        logz, score, marg, chunks = forward_buffers(features, n_labels, marginals=marginals,
                                                    chain_sums=chain_sums)
    else:
        logz, score, marg, chunks = out
        # The kernel adds each chunk's counts into its row; it writes the rest.
        chunks.fill(0.0)
    status = _sparse.forward_backward(
        state_args, features.kernel_args(), labels,
        *split_chain(np.asarray(chain, dtype=np.float64), K), logz, score, marg, chunks,
        n_threads_for(n_jobs, n_seq), seq_weight)
    return status, logz, score, marg, chunks


def forward_buffers(features, n_labels, *, marginals, chain_sums):
    """The output arrays of :func:`forward_backward` for ``features``: ``(logz, score,
    marg, chunks)``, zero-filled."""
    K = n_labels
    n_seq = features.n_sequences
    n_chunks = -(-n_seq // _core.chunk_size())
    logz = np.zeros(n_seq)
    score = np.zeros(n_seq)
    marg = np.zeros((features.n_tokens, K) if marginals else (0, K))
    chunks = np.zeros((n_chunks, K * K + 2 * K) if chain_sums else (0, 0))
    return logz, score, marg, chunks


#: The most doubles the marginals and chain sums of one block of sequences take in an
#: L-BFGS evaluation (:func:`sequence_blocks`): 16 MB, where holding them for the whole
#: set took ``n_tokens * K + n_sequences / 4 * (K*K + 2K)`` doubles (110 MB for
#: part-of-speech tags of CoNLL-2000, 44 labels), on top of what CRFsuite holds.
BLOCK_DOUBLES = 1 << 21


def sequence_blocks(data, max_doubles=None):
    """``data`` cut into consecutive blocks of whole sequences, for passes that need
    per-token marginals (``n_labels`` doubles a token) and per-chunk chain sums
    (``K*K + 2K`` doubles per :func:`fastcrf._kernels._core.chunk_size` sequences)
    but can take the sequences a block at a time.

    A block holds at least one chunk of sequences and otherwise at most
    ``max_doubles`` (default :data:`BLOCK_DOUBLES`) of those doubles; blocks start at
    multiples of the chunk size.
    Each block is a :class:`TrainingData` that shares ``data``'s arrays (its token
    offsets are a view; its attribute ids and values are ``data``'s own, read at the
    offsets' absolute entries).

    Returns
    -------
    list of TrainingData
        At least one (``[data]`` itself when it has no sequence).
    """
    if max_doubles is None:
        max_doubles = BLOCK_DOUBLES
    f = data.features
    n = f.n_sequences
    if n == 0:
        return [data]
    K = data.n_labels
    C = _core.chunk_size()
    seq_off = np.asarray(f.seq_offsets)
    # cost[i]: the doubles of sequences [0, i), chain sums counted per sequence.
    cost = seq_off.astype(np.float64) * K + np.arange(n + 1) * ((K * K + 2 * K) / C)
    bounds = [0]
    while bounds[-1] < n:
        s0 = bounds[-1]
        s1 = int(np.searchsorted(cost, cost[s0] + max_doubles, side="right")) - 1
        if s1 < n:
            s1 = max(s0 + C, s1 // C * C)
        bounds.append(min(s1, n))
    blocks = []
    for s0, s1 in zip(bounds[:-1], bounds[1:]):
        t0, t1 = int(seq_off[s0]), int(seq_off[s1])
        part = EncodedSequences(f.attr_ids, f.values, f.token_offsets[t0:t1 + 1],
                                seq_off[s0:s1 + 1] - t0, f.n_attributes)
        lengths = np.diff(part.seq_offsets)
        blocks.append(TrainingData(
            part, data.labels[t0:t1], K, int(lengths.max()) if len(lengths) else 0,
            None if data.weights is None else data.weights[s0:s1]))
    return blocks


def attribute_parts(features, n_parts):
    """Bounds of ``n_parts`` ranges of attribute ids holding about as many entries.

    The work items of :func:`fastcrf._kernels._sparse.layout_gradient`; they do not
    change its result, only how the work is shared.

    Returns
    -------
    ndarray of shape (n_parts + 1,), int64
    """
    A = features.n_attributes
    counts = np.bincount(features.attr_ids, minlength=A)
    cum = np.cumsum(counts)
    total = int(cum[-1]) if A else 0
    inner = np.searchsorted(cum, [total * p // n_parts for p in range(1, n_parts)],
                            side="right")
    return np.concatenate(([0], inner, [A])).astype(np.int64)


def state_gradient(data, marg, layout_args, out, n_jobs=None, parts=None,
                   token_weight=None, accumulate=False):
    """Write the log-likelihood's state gradient into ``out``, flat in a layout (with
    ``accumulate``: add it to what ``out`` holds).

    ``layout_args`` is ``(S, D, tail_ptr, tail_labels)`` (a layout's, or a dense
    matrix's: ``(K, A, [0], [])``); ``marg`` the node marginals of ``data``;
    ``parts`` the :func:`attribute_parts` to share the work (made when missing);
    ``token_weight`` each token's sample weight
    (:func:`fastcrf._sample_weight.token_weights`, made when missing and ``data`` is
    weighted).
    """
    n_threads = effective_n_threads(n_jobs)
    if parts is None:
        parts = attribute_parts(data.features, n_threads)
    if token_weight is None and data.weights is not None:
        token_weight = token_weights(data)
    _sparse.layout_gradient(data.features.kernel_args(), marg, data.labels, layout_args,
                            parts, out, n_threads, token_weight, accumulate)
    return out


def sort_by_frequency(vocabulary, features):
    """Renumber attributes by decreasing frequency (ties: first seen first), in place.

    The rows of the state weights are then ordered from hot to cold: the few
    attributes behind most occurrences share a compact block that stays in cache,
    which is what makes an SGD epoch over millions of weights fast (crfasgd does
    the same).

    The vocabulary is rewritten in place (its names, counts and compiled name
    table), and so are the attribute ids of ``features`` when they are a writeable
    int32 array: a copy of either would add tens of MB to the peak memory of a fit.

    Returns
    -------
    vocabulary : AttributeVocabulary
    features : EncodedSequences
    """
    counts = vocabulary.counts
    if counts is None:
        counts = np.bincount(features.attr_ids, minlength=features.n_attributes)
    vocabulary.counts = counts = np.asarray(counts)
    rank = vocabulary._reorder(np.argsort(-counts, kind="stable"))
    ids = features.attr_ids
    if not (ids.dtype == np.int32 and ids.flags.c_contiguous and ids.flags.writeable):
        ids = np.array(ids, dtype=np.int32)
    renumber_ids(ids, rank)
    sorted_features = EncodedSequences(ids, features.values, features.token_offsets,
                                       features.seq_offsets, features.n_attributes)
    return vocabulary, sorted_features
