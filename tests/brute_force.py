"""Brute-force oracles: enumerate every label path of tiny chains."""

import itertools

import numpy as np


def path_score(em, y, trans, start, end):
    """Score of path ``y`` over ``em`` (T, K), in float64."""
    s = start[y[0]] + end[y[-1]] + sum(em[t, k] for t, k in enumerate(y))
    return s + sum(trans[a, b] for a, b in zip(y[:-1], y[1:]))


def enumerate_chain(em, trans, start, end, allowed=None):
    """Return log Z, node marginals (T, K), edge marginal sums (K, K), best path/score.

    ``allowed`` (K, K) bool restricts the best path only, as constrained decoding does.
    """
    em = np.asarray(em, dtype=np.float64)
    T, K = em.shape
    if T == 0:
        return 0.0, np.zeros((0, K)), np.zeros((K, K)), [], 0.0
    paths = list(itertools.product(range(K), repeat=T))
    scores = np.array([path_score(em, y, trans, start, end) for y in paths])
    logz = np.logaddexp.reduce(scores)
    p = np.exp(scores - logz)
    node = np.zeros((T, K))
    edge = np.zeros((K, K))
    for prob, y in zip(p, paths):
        for t, k in enumerate(y):
            node[t, k] += prob
        for a, b in zip(y[:-1], y[1:]):
            edge[a, b] += prob
    ok = np.ones(len(paths), bool)
    if allowed is not None:
        ok = np.array([all(allowed[a, b] for a, b in zip(y[:-1], y[1:])) for y in paths])
    masked = np.where(ok, scores, -np.inf)
    top = masked.max()
    # CRFsuite's tie rule: the lowest last label, then walking back the lowest previous
    # label, i.e. the smallest optimal path read from its end.
    best = min((y for y, s in zip(paths, masked) if s == top), key=lambda y: y[::-1])
    return logz, node, edge, list(best), float(top)


def enumerate_positions(em, trans4, start, end):
    """log Z, node marginals (T, K), pairwise marginals (T, K, K) (index t: the move
    into t), best path and score of one chain with per-position transitions."""
    T, K = em.shape
    paths = list(itertools.product(range(K), repeat=T))

    def score(y):
        s = start[y[0]] + end[y[-1]] + sum(em[t, k] for t, k in enumerate(y))
        return s + sum(trans4[t, y[t - 1], y[t]] for t in range(1, T))

    scores = np.array([score(y) for y in paths])
    logz = np.logaddexp.reduce(scores)
    p = np.exp(scores - logz)
    node = np.zeros((T, K))
    pair = np.zeros((T, K, K))
    for prob, y in zip(p, paths):
        for t, k in enumerate(y):
            node[t, k] += prob
        for t in range(1, T):
            pair[t, y[t - 1], y[t]] += prob
    top = scores.max()
    best = min((y for y, s in zip(paths, scores) if s == top), key=lambda y: y[::-1])
    return logz, node, pair, list(best), float(top), score
