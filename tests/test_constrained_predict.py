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
