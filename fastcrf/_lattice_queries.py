"""The estimator's lattice queries beyond Viterbi and marginals, on the dense engine.

k-best decoding, posterior (MBR) decoding and pairwise marginals exist once, in the
compiled dense core (:mod:`fastcrf._dense`).  For a fitted :class:`CRFModel` this
module turns the sparse token features of a batch into their (B, T, K) emission
scores (features times state weights) and asks the dense API, with the model's
chain constrained as :meth:`fastcrf._model.CRFModel.constrained_chain` does; forced
decoding (``forced=``) is the dense API's ``label_mask``.
"""

import numpy as np

from . import _dense
from ._training import split_chain


def dense_scores(model, features):
    """Emission scores of an encoded batch: ``(emissions (B, T, K), lengths (B,))``."""
    from scipy.sparse import csr_matrix

    ids, values, tok_off, seq_off = features.kernel_args()
    n_tokens, K = features.n_tokens, len(model.classes)
    vals = values if len(values) == len(ids) else np.ones(len(ids))  # unit values dropped
    X = csr_matrix((vals, ids, tok_off), shape=(n_tokens, model.layout.n_attributes))
    flat = np.asarray(X @ model.state_weights())
    lengths = np.diff(seq_off)
    T = int(lengths.max()) if len(lengths) else 0
    em = np.zeros((len(lengths), T, K))
    em[np.arange(T)[None, :] < lengths[:, None]] = flat  # rows in token order
    return em, lengths


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


def _args(model, features, constraints, forced=None):
    em, lengths = dense_scores(model, features)
    chain = model.constrained_chain(constraints)
    trans, start, end = split_chain(chain, len(model.classes))
    mask = forced_mask(model.classes, forced, lengths)
    return em, trans, start, end, lengths, mask


def nbest(model, features, k, n_jobs=None, constraints=None, forced=None):
    """The k best labellings of every sequence with their probabilities (under
    ``forced``: among the labellings that agree with it).

    Returns
    -------
    list (one per sequence) of lists of ``(label codes ndarray, probability)``
    """
    em, trans, start, end, lengths, mask = _args(model, features, constraints, forced)
    paths, scores = _dense.viterbi(em, trans, start, end, lengths, k=k, n_jobs=n_jobs,
                                   label_mask=mask)
    logz = _dense.log_partition(em, trans, start, end, lengths, n_jobs=n_jobs,
                                label_mask=mask)
    return [[(paths[b, r, :n], float(np.exp(scores[b, r] - logz[b])))
             for r in range(paths.shape[1]) if scores[b, r] > -np.inf]
            for b, n in enumerate(lengths.tolist())]


def posterior_codes(model, features, n_jobs=None, constraints=None, forced=None):
    """MBR label codes of every sequence: list of int64 ndarrays."""
    em, trans, start, end, lengths, mask = _args(model, features, constraints, forced)
    paths = _dense.posterior_decode(em, trans, start, end, lengths, n_jobs=n_jobs,
                                    label_mask=mask)
    return [paths[b, :n] for b, n in enumerate(lengths.tolist())]


def forced_codes(model, features, forced, n_jobs=None, constraints=None):
    """Viterbi label codes of every sequence under ``forced``: list of int64 ndarrays."""
    em, trans, start, end, lengths, mask = _args(model, features, constraints, forced)
    paths, _ = _dense.viterbi(em, trans, start, end, lengths, n_jobs=n_jobs,
                              label_mask=mask)
    return [paths[b, :n] for b, n in enumerate(lengths.tolist())]


def forced_marginals(model, features, forced, n_jobs=None, constraints=None):
    """Label marginals of every token under ``forced``: (n_tokens, K) float64."""
    em, trans, start, end, lengths, mask = _args(model, features, constraints, forced)
    marg = _dense.marginals(em, trans, start, end, lengths, n_jobs=n_jobs, label_mask=mask)
    return np.asarray(marg)[np.arange(marg.shape[1])[None, :] < lengths[:, None]]


def edge_marginals(model, features, n_jobs=None, constraints=None):
    """``P(y_t = i, y_{t+1} = j | x)``: list of (T - 1, K, K) ndarrays."""
    em, trans, start, end, lengths, _ = _args(model, features, constraints)
    edges = _dense.edge_marginals(em, trans, start, end, lengths, n_jobs=n_jobs)
    return [edges[b, : max(n - 1, 0)] for b, n in enumerate(lengths.tolist())]
