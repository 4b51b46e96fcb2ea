"""Constrained prediction on the estimator (``constraints=``) and ``fastcrf tag``.

The constrained output of the sparse kernels must equal the dense API's on the same
scores: :func:`fastcrf.viterbi` / :func:`fastcrf.marginals` with ``allowed``, which
tests/test_lattice.py checks against enumeration.
"""

import numpy as np
import pytest

import fastcrf
from fastcrf.datasets import make_sequences


def _invalid_bio(seq):
    """Number of I-x tags that follow neither B-x nor I-x."""
    prev = "O"
    bad = 0
    for tag in seq:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            bad += 1
        prev = tag
    return bad


@pytest.fixture(scope="module")
def fitted():
    X, y = make_sequences(60, n_labels=3, scheme="BIO", noise=0.6, random_state=0)
    crf = fastcrf.CRF(algorithm="lbfgs", max_iterations=5, c2=0.01).fit(X, y)
    Xt, _ = make_sequences(80, n_labels=3, scheme="BIO", noise=0.6, random_state=1)
    return crf, Xt


def _emissions(crf, X):
    """Dense (B, T, K) scores of ``X`` from the model's state weights."""
    index = {c: k for k, c in enumerate(crf.classes_)}
    W = crf.state_features_
    T = max(map(len, X))
    em = np.zeros((len(X), T, len(index)))
    for b, seq in enumerate(X):
        for t, tok in enumerate(seq):
            for f in tok:
                for label, k in index.items():
                    em[b, t, k] += W.get((f, label), 0.0)
    return em, np.array([len(s) for s in X])


def test_bio_constraints_remove_invalid_transitions(fitted):
    crf, X = fitted
    free = crf.predict(X)
    assert sum(map(_invalid_bio, free)) > 0  # the weak model does produce some
    constrained = crf.predict(X, constraints="BIO")
    assert sum(map(_invalid_bio, constrained)) == 0
    # The dense API on the same scores gives the same paths and marginals.
    em, lengths = _emissions(crf, X)
    allowed = fastcrf.allowed_transitions(crf.classes_, "BIO")
    args = (em, crf.transition_weights_, crf.start_weights_, crf.end_weights_, lengths)
    paths, _ = fastcrf.viterbi(*args, allowed=allowed)
    codes = crf.predict_indices(X, constraints=allowed)
    for b, n in enumerate(lengths):
        assert codes[b].tolist() == paths[b, :n].tolist()
        assert [crf.classes_[k] for k in codes[b]] == constrained[b]
    node = fastcrf.marginals(*args, allowed=allowed)
    proba = crf.predict_proba(X, constraints="BIO")
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(proba[b], node[b, :n], atol=1e-9)
    marg = crf.predict_marginals(X[:1], constraints="BIO")
    assert marg[0][0] == pytest.approx(dict(zip(crf.classes_, proba[0][0])))


def test_constraints_as_pairs_and_errors(fitted):
    crf, X = fitted
    forbid = {(a, b): False for a in crf.classes_ for b in crf.classes_ if b == "O"}
    assert all(tag != "O" for seq in crf.predict(X, constraints=forbid) for tag in seq[1:])
    with pytest.raises(ValueError, match="does not have"):
        crf.predict(X, constraints={("O", "B-nope"): False})
    with pytest.raises(ValueError, match="scheme must be one of"):
        crf.predict(X, constraints="XYZ")
    K = len(crf.classes_)
    with pytest.raises(ValueError, match="allowed must have shape"):
        crf.predict(X, constraints=np.ones((K + 1, K + 1), bool))
    nothing = np.zeros((K, K), bool)  # no transition: sequences longer than 1 fail
    with pytest.raises(ValueError, match=r"leave sequence\(s\) \[0, 1"):
        crf.predict(X, constraints=nothing)


def _enumerate(em, trans, start, end, n, allowed):
    """All allowed paths of one sequence with their probabilities, best first."""
    import itertools

    K = trans.shape[0]
    out = []
    for y in itertools.product(range(K), repeat=n):
        if not (allowed[K, y[0]] and allowed[y[-1], K + 1]
                and all(allowed[a, b] for a, b in zip(y[:-1], y[1:]))):
            continue
        s = start[y[0]] + end[y[-1]] + sum(em[t, k] for t, k in enumerate(y))
        out.append((y, s + sum(trans[a, b] for a, b in zip(y[:-1], y[1:]))))
    z = np.logaddexp.reduce([s for _, s in out])
    return sorted(((y, np.exp(s - z)) for y, s in out), key=lambda yp: -yp[1])


def test_nbest_mbr_edges_and_sequence_probability(fitted):
    crf, X = fitted
    X = [seq[:4] for seq in X[:6]]  # short: 7 labels ** 4 paths to enumerate
    em, lengths = _emissions(crf, X)
    allowed = fastcrf.allowed_transitions(crf.classes_, "BIO")
    args = (em, crf.transition_weights_, crf.start_weights_, crf.end_weights_)
    best = crf.predict_nbest(X, 5, constraints="BIO")
    for b, n in enumerate(lengths):
        ranked = _enumerate(em[b], *args[1:], n, allowed)[:5]
        assert [lab for lab, _ in best[b]] == [[crf.classes_[k] for k in y] for y, _ in ranked]
        np.testing.assert_allclose([p for _, p in best[b]], [p for _, p in ranked], rtol=1e-9)
        # The probability of a given labelling, as Tagger.probability gives it.
        labs = [lab for lab, _ in best[b]]
        np.testing.assert_allclose(
            crf.sequence_probability([X[b]] * len(labs), labs, constraints="BIO"),
            [p for _, p in ranked], rtol=1e-9)
    # Without constraints the probabilities are over all paths and sum below 1.
    p_free = crf.sequence_probability(X, crf.predict(X))
    assert (p_free > 0).all() and (p_free <= 1).all()
    mbr = crf.predict(X, decoder="mbr", constraints="BIO")
    paths = fastcrf.posterior_decode(*args, lengths, allowed=allowed)
    assert mbr == [[crf.classes_[k] for k in paths[b, :n]] for b, n in enumerate(lengths)]
    edges = crf.predict_edge_marginals(X, constraints="BIO")
    ref = fastcrf.edge_marginals(*args, lengths, allowed=allowed)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(edges[b], ref[b, : n - 1], atol=1e-9)
    with pytest.raises(ValueError, match="decoder must be"):
        crf.predict(X, decoder="beam")
    with pytest.raises(ValueError, match="k must be a positive int"):
        crf.predict_nbest(X, 0)
    with pytest.raises(ValueError, match="does not have"):
        crf.sequence_probability(X[:1], [["nope"] * len(X[0])])
