"""Bad input raises ValueError/TypeError naming the argument, before compiled code runs."""

import numpy as np
import pytest

import fastcrf

B, T, K = 2, 3, 4
EM = np.zeros((B, T, K))
TR = np.zeros((K, K))
TAGS = np.zeros((B, T), dtype=int)


def _all_calls(em=EM, tr=TR, start=None, end=None, lengths=None):
    """Every public function that takes the shared score arguments."""
    return [
        lambda: fastcrf.log_partition(em, tr, start, end, lengths),
        lambda: fastcrf.marginals(em, tr, start, end, lengths),
        lambda: fastcrf.log_likelihood(em, TAGS, tr, start, end, lengths, return_grad=True),
        lambda: fastcrf.path_score(em, TAGS, tr, start, end, lengths),
        lambda: fastcrf.viterbi(em, tr, start, end, lengths),
    ]


BAD = [
    # (kwargs, exception, message fragment)
    (dict(em=np.zeros((T, K))), ValueError, "emissions must be 3-D"),
    (dict(em=np.zeros((B, T, 0)), tr=np.zeros((0, 0))), ValueError, "at least one label"),
    (dict(em=np.full((B, T, K), np.nan)), ValueError, "emissions contains NaN"),
    (dict(em=np.full((B, T, K), np.inf)), ValueError, "emissions contains NaN"),
    (dict(em=np.zeros((B, T, K), dtype=bool)), TypeError, "emissions must hold real"),
    (dict(em=np.zeros((B, T, K), dtype=complex)), TypeError, "emissions must hold real"),
    (dict(em=np.full((B, T, K), "a")), TypeError, "emissions must hold real"),
    (dict(em=[[[0.0, 1.0]], [[0.0]]]), ValueError, "emissions could not be converted"),
    (dict(tr=np.zeros((K, K + 1))), ValueError, r"transitions must have shape \(4, 4\)"),
    (dict(tr=np.zeros(K)), ValueError, "transitions must have shape"),
    (dict(tr=np.full((K, K), np.nan)), ValueError, "transitions contains NaN"),
    (dict(tr=np.full((K, K), None)), TypeError, "transitions must hold real"),
    (dict(start=np.zeros(K + 1)), ValueError, "start must have shape"),
    (dict(start=np.array([np.nan] * K)), ValueError, "start contains NaN"),
    (dict(end=np.zeros((K, 1))), ValueError, "end must have shape"),
    (dict(end=np.array([np.inf] * K)), ValueError, "end contains NaN"),
    (dict(lengths=[1]), ValueError, r"lengths must have shape \(2,\)"),
    (dict(lengths=[[1, 2]]), ValueError, "lengths must have shape"),
    (dict(lengths=[-1, 2]), ValueError, r"lengths must lie in \[0, 3\]"),
    (dict(lengths=[4, 2]), ValueError, r"lengths must lie in \[0, 3\]"),
    (dict(lengths=[1.0, 2.0]), TypeError, "lengths must be integers"),
    (dict(lengths=[True, False]), TypeError, "lengths must be integers"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD, ids=[b[2] for b in BAD])
def test_bad_score_arguments(kwargs, exc, match):
    for call in _all_calls(**kwargs):
        with pytest.raises(exc, match=match):
            call()


@pytest.mark.parametrize(
    "tags,exc,match",
    [
        (np.full((B, T), K), ValueError, r"tags must lie in \[0, 3\].*tags\[0, 0\] = 4"),
        (np.full((B, T), -2), ValueError, "tags must lie in"),
        (np.zeros((B, T + 1), dtype=int), ValueError, r"tags must have shape \(2, 3\)"),
        (np.zeros((B, T)), TypeError, "tags must be integer"),
        (np.zeros((B, T), dtype=bool), TypeError, "tags must be integer"),
    ],
)
def test_bad_tags(tags, exc, match):
    with pytest.raises(exc, match=match):
        fastcrf.log_likelihood(EM, tags, TR)
    with pytest.raises(exc, match=match):
        fastcrf.path_score(EM, tags, TR)


def test_tags_past_the_length_are_ignored():
    tags = np.array([[0, 1, 99], [2, -5, -5]])
    ll = fastcrf.log_likelihood(EM, tags, TR, lengths=[2, 1])
    np.testing.assert_allclose(ll, [-2 * np.log(K), -np.log(K)])


@pytest.mark.parametrize(
    "allowed,exc,match",
    [
        (np.ones((K, K + 1), bool), ValueError, r"allowed must have shape \(4, 4\) or \(6, 6\)"),
        (np.full((K, K), 0.5), TypeError, "allowed must be a boolean"),
        (np.full((K, K), 2), TypeError, "allowed must be a boolean"),
    ],
)
def test_bad_allowed(allowed, exc, match):
    with pytest.raises(exc, match=match):
        fastcrf.viterbi(EM, TR, allowed=allowed)


def test_integer_zero_one_allowed_is_accepted():
    paths, _ = fastcrf.viterbi(EM, TR, allowed=np.eye(K, dtype=int))
    assert (paths == paths[:, :1]).all()


@pytest.mark.parametrize("call", _all_calls(em=np.full((B, T, K), 1e308)))
def test_scores_too_large_to_sum_are_rejected(call):
    with pytest.raises(ValueError, match=r"emissions has values of magnitude up to 1e\+308"):
        call()


def test_huge_scores_with_constraints_do_not_crash():
    # Found in review: inf + -inf made a NaN that sent a scan past its buffer.
    allowed = np.ones((2, 2), bool)
    allowed[0, :] = False
    with pytest.raises(ValueError, match="magnitude"):
        fastcrf.viterbi(np.full((1, 3, 2), 1e308), np.zeros((2, 2)), allowed=allowed)
    paths, _ = fastcrf.viterbi(np.full((1, 3, 2), 1e149), np.zeros((2, 2)), allowed=allowed)
    assert paths.tolist() == [[1, 1, 0]]  # ties with [1, 1, 1]: lowest last label


def test_float32_results_that_overflow_raise():
    em = np.full((1, 4, 2), 3e38, dtype=np.float32)
    with pytest.raises(ValueError, match="overflows float32"):
        fastcrf.log_partition(em, np.zeros((2, 2)))
    assert np.isfinite(fastcrf.log_partition(em.astype(np.float64), np.zeros((2, 2)))).all()
