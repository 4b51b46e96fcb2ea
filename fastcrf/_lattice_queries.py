"""The estimator's lattice queries beyond Viterbi and marginals, on the dense engine.

k-best decoding, posterior (MBR) decoding and pairwise marginals exist once, in the
compiled dense core (:mod:`fastcrf._dense`).  For a fitted :class:`CRFModel` this
module turns the sparse token features of a batch into their (B, T, K) emission
scores (features times state weights) and asks the dense API, with the model's
chain constrained as :func:`fastcrf._model.constrain_chain` does.
"""

import numpy as np

from . import _dense
from ._model import constrain_chain
from ._constraints import constraint_matrix
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


def _args(model, features, constraints):
    em, lengths = dense_scores(model, features)
    chain = constrain_chain(model.chain, constraint_matrix(constraints, model.classes))
    trans, start, end = split_chain(chain, len(model.classes))
    return em, trans, start, end, lengths


def nbest(model, features, k, n_jobs=None, constraints=None):
    """The k best labellings of every sequence with their probabilities.

    Returns
    -------
    list (one per sequence) of lists of ``(label codes ndarray, probability)``
    """
    em, trans, start, end, lengths = _args(model, features, constraints)
    paths, scores = _dense.viterbi(em, trans, start, end, lengths, k=k, n_jobs=n_jobs)
    logz = _dense.log_partition(em, trans, start, end, lengths, n_jobs=n_jobs)
    return [[(paths[b, r, :n], float(np.exp(scores[b, r] - logz[b])))
             for r in range(paths.shape[1]) if scores[b, r] > -np.inf]
            for b, n in enumerate(lengths.tolist())]


def posterior_codes(model, features, n_jobs=None, constraints=None):
    """MBR label codes of every sequence: list of int64 ndarrays."""
    em, trans, start, end, lengths = _args(model, features, constraints)
    paths = _dense.posterior_decode(em, trans, start, end, lengths, n_jobs=n_jobs)
    return [paths[b, :n] for b, n in enumerate(lengths.tolist())]


def edge_marginals(model, features, n_jobs=None, constraints=None):
    """``P(y_t = i, y_{t+1} = j | x)``: list of (T - 1, K, K) ndarrays."""
    em, trans, start, end, lengths = _args(model, features, constraints)
    edges = _dense.edge_marginals(em, trans, start, end, lengths, n_jobs=n_jobs)
    return [edges[b, : max(n - 1, 0)] for b, n in enumerate(lengths.tolist())]
