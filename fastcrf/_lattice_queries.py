"""The estimator's lattice queries beyond Viterbi and marginals, on the dense engine.

k-best decoding, posterior (MBR) decoding and pairwise marginals exist once, in the
compiled dense core (:mod:`fastcrf._dense`).  For a fitted :class:`CRFModel` this
module turns the sparse token features of a batch into their (B, T, K) emission
scores (features times state weights) and asks the dense API, with the model's
chain constrained as :meth:`fastcrf._model.CRFModel.constrained_chain` does; forced
decoding (``forced=``) is the dense API's ``label_mask``.

A model with transition attributes (:class:`fastcrf._edges.EdgeCRFModel`) asks the
dense API with per-position transitions, (B, T, K, K): the constrained chain plus
each token's transition attributes times their weights.  Those are built for a few
sequences at a time (:func:`batches`, at most :data:`MAX_DENSE_DOUBLES` doubles
each), so a long test set never materialises them all at once.
"""

import numpy as np

from . import _dense
from ._kernels._core import MAX_SCORE
from ._model import check_scores
from ._training import split_chain

#: The most doubles of (B, T, K, K) transitions built at once for a model with
#: transition attributes (32 MB); a single longer sequence is one batch of its own.
MAX_DENSE_DOUBLES = 1 << 22


def _csr(features, n_columns):
    """The batch's token features as a (n_tokens, n_columns) CSR matrix."""
    from scipy.sparse import csr_matrix

    ids, values, tok_off, _ = features.kernel_args()
    vals = values if len(values) == len(ids) else np.ones(len(ids))  # unit values dropped
    return csr_matrix((vals, ids, tok_off), shape=(features.n_tokens, n_columns))


def _padded(flat, lengths):
    """Token rows ``flat`` (n_tokens, ...) as (B, T, ...) zero-padded per sequence."""
    T = int(lengths.max()) if len(lengths) else 0
    out = np.zeros((len(lengths), T) + flat.shape[1:])
    out[np.arange(T)[None, :] < lengths[:, None]] = flat  # rows in token order
    return out


def dense_scores(model, features):
    """Emission scores of an encoded batch: ``(emissions (B, T, K), lengths (B,))``."""
    X = _csr(features, model.layout.n_attributes)
    lengths = np.diff(features.seq_offsets)
    return _padded(np.asarray(X @ model.state_weights()), lengths), lengths


def _in_range(x):
    """Every score finite within the kernels' limit, or -inf (a constrained one)."""
    finite = x[np.isfinite(x)]
    return (not np.isnan(x).any() and not np.isposinf(x).any()
            and np.abs(finite).max(initial=0.0) <= MAX_SCORE)


def _ranges(lengths, per_token):
    """Contiguous ranges ``(s0, s1)`` of sequences whose padded batch holds at most
    :data:`MAX_DENSE_DOUBLES` doubles at ``per_token`` doubles a position."""
    s0, longest = 0, 0
    for s, n in enumerate(lengths.tolist()):
        longest = max(longest, n)
        if s > s0 and (s + 1 - s0) * longest * per_token > MAX_DENSE_DOUBLES:
            yield s0, s
            s0, longest = s, n
    yield s0, len(lengths)


def batches(model, features, constraints=None, forced=None):
    """The dense form of an encoded batch, a range of sequences at a time.

    Yields
    ------
    s0 : int
        The batch's first sequence.
    args : tuple
        ``(emissions (B, T, K), transitions, start, end, lengths (B,), label_mask)``:
        the transitions are (K, K), or (B, T, K, K) for a model with transition
        attributes; ``label_mask`` is ``forced``'s (None without it).
    """
    em, lengths = dense_scores(model, features)
    K = len(model.classes)
    trans, start, end = split_chain(model.constrained_chain(constraints), K)
    mask = forced_mask(model.classes, forced, lengths)
    W = getattr(model, "edge_weights", None)
    if W is None:
        yield 0, (em, trans, start, end, lengths, mask)
        return
    E = _csr(features.edges, len(W))
    W = W.reshape(len(W), K * K)
    tok = features.seq_offsets
    for s0, s1 in _ranges(lengths, K * K):
        part = lengths[s0:s1]
        T = int(part.max()) if len(part) else 0
        # trans_t = trans + sum_f x[t, f] W[f]: a constrained (-inf) transition stays so.
        flat = np.asarray(E[tok[s0]:tok[s1]] @ W).reshape(-1, K, K) + trans
        if not _in_range(flat):
            check_scores(-1)  # the prediction kernels' error, as Viterbi gives it
        tr = _padded(flat, part)
        tr[np.arange(T)[None, :] >= part[:, None]] = trans
        yield s0, (em[s0:s1, :T], tr, start, end, part,
                   None if mask is None else mask[s0:s1, :T])


def forced_mask(classes, forced, lengths):
    """The (B, T, K) ``label_mask`` of ``forced`` (one list per sequence, a label or
    None per token; or None for a sequence left free), or None when ``forced`` is.

    Raises
    ------
    ValueError, TypeError
        Naming the entry of ``forced`` that does not fit (length, unknown label).
    """
    if forced is None:
        return None
    if isinstance(forced, (str, bytes)) or not hasattr(forced, "__len__"):
        raise TypeError(f"forced must be a list of lists (a label or None per token), "
                        f"got {type(forced).__name__}")
    lengths = np.asarray(lengths).tolist()
    if len(forced) != len(lengths):
        raise ValueError(f"forced has {len(forced)} sequences but X has {len(lengths)}")
    index = {label: k for k, label in enumerate(classes)}
    mask = np.ones((len(lengths), max(lengths, default=0), len(classes)), dtype=bool)
    for b, (seq, n) in enumerate(zip(forced, lengths)):
        if seq is None:
            continue
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__") or len(seq) != n:
            raise ValueError(f"forced[{b}] must be a list of {n} entries (a label or None "
                             f"per token of X[{b}]), got {seq!r}")
        for t, label in enumerate(seq):
            if label is None:
                continue
            if label not in index:
                raise ValueError(f"forced[{b}][{t}] is {label!r}, which the model does "
                                 f"not have; its labels are {list(classes)}")
            mask[b, t] = False
            mask[b, t, index[label]] = True
    return mask


def nbest(model, features, k, n_jobs=None, constraints=None, forced=None):
    """The k best labellings of every sequence with their probabilities (under
    ``forced``: among the labellings that agree with it).

    Returns
    -------
    list (one per sequence) of lists of ``(label codes ndarray, probability)``
    """
    out = []
    for _, (em, trans, start, end, lengths, mask) in batches(model, features, constraints,
                                                              forced):
        paths, scores = _dense.viterbi(em, trans, start, end, lengths, k=k, n_jobs=n_jobs,
                                       label_mask=mask)
        logz = _dense.log_partition(em, trans, start, end, lengths, n_jobs=n_jobs,
                                    label_mask=mask)
        out.extend([(paths[b, r, :n], float(np.exp(scores[b, r] - logz[b])))
                    for r in range(paths.shape[1]) if scores[b, r] > -np.inf]
                   for b, n in enumerate(lengths.tolist()))
    return out


def posterior_codes(model, features, n_jobs=None, constraints=None, forced=None):
    """MBR label codes of every sequence: list of int64 ndarrays."""
    out = []
    for _, (em, trans, start, end, lengths, mask) in batches(model, features, constraints,
                                                              forced):
        paths = _dense.posterior_decode(em, trans, start, end, lengths, n_jobs=n_jobs,
                                        label_mask=mask)
        out.extend(paths[b, :n] for b, n in enumerate(lengths.tolist()))
    return out


def forced_codes(model, features, forced, n_jobs=None, constraints=None):
    """Viterbi label codes of every sequence under ``forced``: list of int64 ndarrays."""
    out = []
    for _, (em, trans, start, end, lengths, mask) in batches(model, features, constraints,
                                                              forced):
        paths, _ = _dense.viterbi(em, trans, start, end, lengths, n_jobs=n_jobs,
                                  label_mask=mask)
        out.extend(paths[b, :n] for b, n in enumerate(lengths.tolist()))
    return out


def forced_marginals(model, features, forced, n_jobs=None, constraints=None):
    """Label marginals of every token under ``forced``: (n_tokens, K) float64."""
    out = [np.zeros((0, len(model.classes)))]
    for _, (em, trans, start, end, lengths, mask) in batches(model, features, constraints,
                                                              forced):
        marg = _dense.marginals(em, trans, start, end, lengths, n_jobs=n_jobs,
                                label_mask=mask)
        out.append(np.asarray(marg)[np.arange(marg.shape[1])[None, :] < lengths[:, None]])
    return np.concatenate(out)


def edge_marginals(model, features, n_jobs=None, constraints=None):
    """``P(y_t = i, y_{t+1} = j | x)``: list of (T - 1, K, K) ndarrays."""
    out = []
    for _, (em, trans, start, end, lengths, _) in batches(model, features, constraints):
        edges = _dense.edge_marginals(em, trans, start, end, lengths, n_jobs=n_jobs)
        out.extend(edges[b, : max(n - 1, 0)] for b, n in enumerate(lengths.tolist()))
    return out
