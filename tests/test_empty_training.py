"""Empty sequences in training and scoring: sklearn-crfsuite trains past a pair of an
empty sentence and an empty label list, so fastcrf leaves such pairs out."""

import numpy as np
import pytest

from fastcrf import CRF
from fastcrf.datasets import make_sequences


@pytest.fixture(scope="module")
def data():
    X, y = make_sequences(60, n_labels=3, random_state=0)[:2]
    return X, y


def _with_empties(seqs):
    return [[]] + seqs[:10] + [[], []] + seqs[10:] + [[]]


@pytest.mark.parametrize("algorithm", ["asgd", "lbfgs", "l2sgd", "ap", "pa", "arow"])
def test_fit_leaves_empty_pairs_out(data, algorithm):
    X, y = data
    plain = CRF(algorithm=algorithm, max_iterations=3, random_state=0).fit(X, y)
    mixed = CRF(algorithm=algorithm, max_iterations=3, random_state=0).fit(
        _with_empties(X), _with_empties(y))
    assert mixed.state_features_ == plain.state_features_
    assert mixed.transition_features_ == plain.transition_features_


def test_sample_weight_of_empty_pairs_is_dropped(data):
    X, y = data
    w = np.linspace(0.5, 2.0, len(X))
    plain = CRF(algorithm="lbfgs", max_iterations=5).fit(X, y, sample_weight=w)
    w_mixed = _with_empties(list(w))
    w_mixed = [7.0 if isinstance(v, list) else v for v in w_mixed]
    mixed = CRF(algorithm="lbfgs", max_iterations=5).fit(
        _with_empties(X), _with_empties(y), sample_weight=w_mixed)
    assert mixed.state_features_ == plain.state_features_
    with pytest.raises(ValueError, match="sample_weight has 3 weights but X has 4"):
        CRF().fit([[]] + X[:3], [[]] + y[:3], sample_weight=[1.0, 1.0, 1.0])


def test_partial_fit_dev_set_and_score(data):
    X, y = data
    plain = CRF(algorithm="pa", random_state=0).partial_fit(X, y)
    mixed = CRF(algorithm="pa", random_state=0).partial_fit(_with_empties(X),
                                                            _with_empties(y))
    assert mixed.state_features_ == plain.state_features_
    crf = CRF(max_iterations=2, random_state=0)
    crf.fit(X, y, X_dev=_with_empties(X[:20]), y_dev=_with_empties(y[:20]))
    assert crf.training_log_.last_iteration["dev_accuracy"] == crf.score(X[:20], y[:20])
    assert crf.score(_with_empties(X[:20]), _with_empties(y[:20])) == crf.score(X[:20],
                                                                                y[:20])


def test_errors_stay_clear(data):
    X, y = data
    with pytest.raises(ValueError, match="all its 2 sequences are empty"):
        CRF().fit([[], []], [[], []])
    # An empty sequence with labels (or the reverse) is a mismatch, not left out.
    with pytest.raises(ValueError, match=r"X\[1\] is an empty sequence but y\[1\] has 1"):
        CRF().fit([X[0], []], [y[0], ["O"]])
    with pytest.raises(ValueError, match=r"y\[0\] is an empty sequence but X\[0\] has 2"):
        CRF().fit([X[0][:2], []], [[], []])
    crf = CRF(max_iterations=2).fit(X, y)
    with pytest.raises(ValueError, match=r"X\[2\] is an empty sequence but y\[2\]"):
        crf.score(X[:2] + [[]], y[:3])
    with pytest.raises(ValueError, match="feature values must be finite") as info:
        CRF().fit([[]] + X[:2] + [[{"a": float("nan")}]], [[]] + y[:2] + [["O"]])
    if hasattr(info.value, "__notes__"):
        assert "empty sequences, at 0, were left out" in info.value.__notes__[0]


def test_template_rows():
    rows = [[["a", "N"], ["b", "V"]], [["c", "N"]], [["b", "V"], ["a", "N"]]] * 3
    labels = [["A", "B"], ["A"], ["B", "A"]] * 3
    template = "U00:%x[0,0]\nU01:%x[0,1]\nB"
    plain = CRF(template=template, max_iterations=3, random_state=0).fit(rows, labels)
    mixed = CRF(template=template, max_iterations=3, random_state=0).fit(
        _with_empties(rows), _with_empties(labels))
    assert mixed.state_features_ == plain.state_features_
    assert mixed.predict([[], rows[0]]) == [[], ["A", "B"]]
