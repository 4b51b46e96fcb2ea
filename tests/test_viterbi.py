"""Viterbi decoding against brute force and a textbook HMM."""

import numpy as np
import pytest
from brute_force import enumerate_chain
from helpers import make_problem

import fastcrf


@pytest.mark.parametrize("K,T", [(1, 4), (2, 6), (3, 5), (4, 4), (4, 6)])
def test_viterbi_matches_brute_force(K, T, dtype):
    rng = np.random.default_rng(10 * K + T)
    em, _, trans, start, end, lengths = make_problem(rng, 8, T, K, dtype=dtype)
    paths, scores = fastcrf.viterbi(em, trans, start, end, lengths)
    assert paths.dtype == np.int64 and scores.dtype == dtype
    for b in range(8):
        n = lengths[b]
        _, _, _, best, best_score = enumerate_chain(em[b, :n].astype(float), trans, start, end)
        assert paths[b, :n].tolist() == best
        assert (paths[b, n:] == -1).all()
        np.testing.assert_allclose(scores[b], best_score, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("K,T", [(2, 5), (3, 5), (4, 4)])
def test_constrained_viterbi_matches_brute_force(K, T):
    rng = np.random.default_rng(K + T)
    em, _, trans, start, end, lengths = make_problem(rng, 8, T, K, scale=3.0)
    allowed = rng.random((K, K)) < 0.6
    allowed[np.arange(K), np.arange(K)] = True  # every length stays feasible
    paths, scores = fastcrf.viterbi(em, trans, start, end, lengths, allowed=allowed)
    for b in range(8):
        n = lengths[b]
        _, _, _, best, best_score = enumerate_chain(em[b, :n], trans, start, end, allowed)
        assert paths[b, :n].tolist() == best
        np.testing.assert_allclose(scores[b], best_score, rtol=1e-12)
        assert all(allowed[i, j] for i, j in zip(best[:-1], best[1:]))


def test_constraints_change_the_path_and_are_never_violated(rng):
    B, T, K = 20, 30, 5
    em, _, trans, start, end, _ = make_problem(rng, B, T, K, scale=2.0, ragged=False)
    trans[1, 3] = 50.0  # the unconstrained decoder loves 1 -> 3
    free, _ = fastcrf.viterbi(em, trans, start, end)
    assert ((free[:, :-1] == 1) & (free[:, 1:] == 3)).any()
    allowed = np.ones((K, K), bool)
    allowed[1, 3] = False
    paths, _ = fastcrf.viterbi(em, trans, start, end, allowed=allowed)
    assert not ((paths[:, :-1] == 1) & (paths[:, 1:] == 3)).any()


def test_allennlp_style_start_and_end_constraints(rng):
    K = 3
    em, _, trans, start, end, _ = make_problem(rng, 10, 4, K, ragged=False)
    allowed = np.ones((K + 2, K + 2), bool)
    allowed[K, 0] = False  # may not start with label 0
    allowed[2, K + 1] = False  # may not end with label 2
    paths, _ = fastcrf.viterbi(em, trans, start, end, allowed=allowed)
    assert (paths[:, 0] != 0).all() and (paths[:, -1] != 2).all()


def test_infeasible_constraints_raise():
    allowed = np.zeros((2, 2), bool)  # no transition at all
    with pytest.raises(ValueError, match=r"sequence\(s\) \[0, 1\] have no possible label path"):
        fastcrf.viterbi(np.zeros((2, 3, 2)), np.zeros((2, 2)), allowed=allowed)
    # Length-1 sequences need no transition, so they still decode.
    paths, _ = fastcrf.viterbi(np.zeros((1, 1, 2)), np.zeros((2, 2)), allowed=allowed)
    assert paths.tolist() == [[0]]


def test_ties_go_to_the_lowest_label():
    paths, scores = fastcrf.viterbi(np.zeros((2, 5, 4)), np.zeros((4, 4)))
    assert (paths == 0).all() and (scores == 0).all()
    # Two optimal paths, [0, 1] and [1, 0]: the lowest last label wins.
    paths, _ = fastcrf.viterbi(np.zeros((1, 2, 2)), [[-1.0, 0.0], [0.0, -1.0]])
    assert paths.tolist() == [[1, 0]]


@pytest.mark.parametrize("K,T", [(2, 5), (3, 4), (4, 4)])
def test_ties_follow_the_documented_rule(K, T):
    # Small integer scores: sums are exact, so ties are real and frequent.
    rng = np.random.default_rng(K * T)
    for _ in range(40):
        em = rng.integers(0, 2, size=(1, T, K)).astype(float)
        trans = rng.integers(-1, 1, size=(K, K)).astype(float)
        allowed = rng.random((K, K)) < 0.7
        np.fill_diagonal(allowed, True)
        for mask in (None, allowed):
            paths, score = fastcrf.viterbi(em, trans, allowed=mask)
            _, _, _, best, best_score = enumerate_chain(em[0], trans, np.zeros(K), np.zeros(K),
                                                        mask)
            assert paths[0].tolist() == best
            assert score[0] == best_score


def test_textbook_hmm():
    # The Wikipedia "Viterbi algorithm" example: states (Healthy, Fever), observations
    # normal, cold, dizzy; the best path is Healthy, Healthy, Fever with p = 0.01512.
    start_p = np.array([0.6, 0.4])
    trans_p = np.array([[0.7, 0.3], [0.4, 0.6]])
    emit_p = np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])
    obs = [0, 1, 2]
    em = np.log(emit_p[:, obs].T)[None]
    paths, scores = fastcrf.viterbi(em, np.log(trans_p), np.log(start_p))
    assert paths.tolist() == [[0, 0, 1]]
    np.testing.assert_allclose(np.exp(scores), [0.01512])
    # For an HMM with these log-probabilities, log Z is the log marginal likelihood.
    forward = start_p * emit_p[:, 0]
    for o in obs[1:]:
        forward = (forward @ trans_p) * emit_p[:, o]
    np.testing.assert_allclose(
        fastcrf.log_partition(em, np.log(trans_p), np.log(start_p)), [np.log(forward.sum())])
