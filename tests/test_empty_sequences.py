"""Empty sequences in prediction come back empty, as sklearn-crfsuite's do; the other
sequences get exactly what they get without them."""

import numpy as np
import pytest
import sklearn_crfsuite

from fastcrf import CRF
from fastcrf.datasets import make_sequences


@pytest.fixture(scope="module")
def fitted():
    X, y = make_sequences(120, n_labels=3, random_state=0)[:2]
    return CRF(random_state=0, max_iterations=3).fit(X, y), X


def test_predict_methods_keep_empty_sequences_in_place(fitted):
    crf, X = fitted
    X_mixed = [[], X[0], [], X[1], []]
    plain = X[:2]
    assert crf.predict(X_mixed) == [[], *crf.predict(plain)[:1], [], crf.predict(plain)[1], []]
    marg = crf.predict_marginals(X_mixed)
    assert marg[0] == marg[2] == marg[4] == []
    assert marg[1] == crf.predict_marginals(plain)[0]
    proba = crf.predict_proba(X_mixed)
    assert proba[0].shape == (0, len(crf.classes_))
    np.testing.assert_array_equal(proba[3], crf.predict_proba(plain)[1])
    idx = crf.predict_indices(X_mixed)
    assert idx[4].dtype == np.int64 and idx[4].size == 0
    np.testing.assert_array_equal(idx[1], crf.predict_indices(plain)[0])
    nbest = crf.predict_nbest(X_mixed, 2)
    assert nbest[0] == [([], 1.0)] and nbest[1] == crf.predict_nbest(plain, 2)[0]
    assert crf.predict_single([]) == [] and crf.predict_marginals_single([]) == []
    assert crf.predict([[]]) == [[]]


def test_forced_is_aligned_with_the_non_empty_sequences(fitted):
    crf, X = fitted
    forced = [None] * len(X[0])
    forced[0] = crf.classes_[0]
    got = crf.predict([[], X[0]], forced=[None, forced])
    assert got == [[], crf.predict([X[0]], forced=[forced])[0]]
    with pytest.raises(ValueError, match="forced"):
        crf.predict([[], X[0]], forced=[forced])


def test_like_sklearn_crfsuite(fitted):
    _, X = fitted
    y = make_sequences(120, n_labels=3, random_state=0)[1]
    theirs = sklearn_crfsuite.CRF(max_iterations=3).fit(X, y)
    ours = CRF(algorithm="lbfgs", max_iterations=3).fit(X, y)
    assert [list(s) for s in theirs.predict([[]])] == ours.predict([[]]) == [[]]
