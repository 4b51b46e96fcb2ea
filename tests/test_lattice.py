"""Every lattice query against brute-force enumeration of all K**T label paths.

Tiny ragged batches with random -inf scores, ``allowed`` and ``label_mask``: log Z,
node and edge marginals, the partial-label likelihood and its gradient (also against
finite differences), Viterbi, k-best and posterior decoding; float32 against float64
and thread counts bitwise.
"""

import itertools

import numpy as np
import pytest

import fastcrf

NINF = -np.inf


def _all_paths(em, trans, start, end, n):
    """Every path of length ``n`` with its score (float64; -inf for impossible ones)."""
    K = em.shape[1]
    out = []
    for y in itertools.product(range(K), repeat=n):
        s = start[y[0]] + end[y[-1]] + sum(em[t, k] for t, k in enumerate(y))
        s += sum(trans[a, b] for a, b in zip(y[:-1], y[1:]))
        out.append((y, s))
    return out


def _fold(em, trans, start, end, allowed, label_mask):
    """The scores with what ``allowed`` / ``label_mask`` forbid set to -inf."""
    em, trans, start, end = (np.array(x, dtype=np.float64) for x in (em, trans, start, end))
    K = trans.shape[0]
    if allowed is not None:
        trans[~allowed[:K, :K]] = NINF
        if allowed.shape[0] == K + 2:
            start[~allowed[K, :K]] = NINF
            end[~allowed[:K, K + 1]] = NINF
    if label_mask is not None:
        em[~label_mask] = NINF
    return em, trans, start, end


def _oracle(em, trans, start, end, n):
    """log Z, node (n, K), edges (n-1, K, K), paths sorted as the k-best order."""
    K = em.shape[1]
    paths = [(y, s) for y, s in _all_paths(em, trans, start, end, n) if s > NINF]
    scores = np.array([s for _, s in paths])
    logz = np.logaddexp.reduce(scores) if paths else NINF
    node = np.zeros((n, K))
    edge = np.zeros((max(n - 1, 0), K, K))
    for y, s in paths:
        p = np.exp(s - logz)
        for t, k in enumerate(y):
            node[t, k] += p
        for t, (a, b) in enumerate(zip(y[:-1], y[1:])):
            edge[t, a, b] += p
    # Descending score, ties by the path read backwards in increasing label order.
    ranked = sorted(paths, key=lambda ys: (-ys[1], ys[0][::-1]))
    return logz, node, edge, ranked


def _problem(seed, B=4, T=4, K=3, p_inf=0.15, integer=False):
    """A ragged batch with random -inf scores in every array and NaN in the padding."""
    rng = np.random.default_rng(seed)
    draw = (lambda *s: rng.integers(-2, 3, size=s).astype(float)) if integer else (
        lambda *s: rng.normal(size=s))
    em, trans, start, end = draw(B, T, K), draw(K, K), draw(K), draw(K)
    for x in (em, trans, start, end):
        x[rng.random(x.shape) < p_inf] = NINF
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    for b, n in enumerate(lengths):
        em[b, n:] = np.nan  # padding is ignored whatever it holds
    return em, trans, start, end, lengths


def _possible(em, trans, start, end, lengths):
    return all(any(s > NINF for _, s in _all_paths(em[b], trans, start, end, n))
               for b, n in enumerate(lengths))


def _problems(n, **kw):
    """``n`` random problems in which every sequence has a possible path."""
    out, seed = [], 0
    while len(out) < n:
        prob = _problem(seed, **kw)
        if _possible(*prob):
            out.append(prob)
        seed += 1
    return out


PROBLEMS = _problems(6)


@pytest.mark.parametrize("prob", PROBLEMS)
def test_log_partition_and_marginals_match_enumeration(prob):
    em, trans, start, end, lengths = prob
    logz = fastcrf.log_partition(em, trans, start, end, lengths)
    node = fastcrf.marginals(em, trans, start, end, lengths)
    edges = fastcrf.edge_marginals(em, trans, start, end, lengths)
    for b, n in enumerate(lengths):
        z, nd, ed, _ = _oracle(em[b], trans, start, end, n)
        assert logz[b] == pytest.approx(z, abs=1e-10)
        np.testing.assert_allclose(node[b, :n], nd, atol=1e-12)
        assert not node[b, n:].any()
        np.testing.assert_allclose(edges[b, : n - 1], ed, atol=1e-12)
        assert not edges[b, n - 1:].any()


@pytest.mark.parametrize("prob", PROBLEMS)
def test_allowed_and_label_mask_match_enumeration(prob):
    em, trans, start, end, lengths = prob
    rng = np.random.default_rng(7)
    B, T, K = em.shape
    for trial in range(20):
        allowed = rng.random((K + 2, K + 2)) < 0.8
        if trial % 2:
            allowed = allowed[:K, :K]
        mask = rng.random((B, T, K)) < 0.8
        f = _fold(em, trans, start, end, allowed, mask)
        if not _possible(*f, lengths):
            with pytest.raises(ValueError, match=r"sequence\(s\) \[.*\] have no possible"):
                fastcrf.log_partition(em, trans, start, end, lengths, allowed=allowed,
                                      label_mask=mask)
            continue
        kw = dict(allowed=allowed, label_mask=mask)
        logz = fastcrf.log_partition(em, trans, start, end, lengths, **kw)
        node = fastcrf.marginals(em, trans, start, end, lengths, **kw)
        edges = fastcrf.edge_marginals(em, trans, start, end, lengths, **kw)
        paths, scores = fastcrf.viterbi(em, trans, start, end, lengths, **kw)
        best, best_scores = fastcrf.viterbi(em, trans, start, end, lengths, k=4, **kw)
        mbr = fastcrf.posterior_decode(em, trans, start, end, lengths, **kw)
        for b, n in enumerate(lengths):
            z, nd, ed, ranked = _oracle(f[0][b], *f[1:], n)
            assert logz[b] == pytest.approx(z, abs=1e-10)
            np.testing.assert_allclose(node[b, :n], nd, atol=1e-12)
            np.testing.assert_allclose(edges[b, : n - 1], ed, atol=1e-12)
            assert list(paths[b, :n]) == list(ranked[0][0])
            assert scores[b] == pytest.approx(ranked[0][1])
            for r in range(4):
                if r < len(ranked):
                    assert list(best[b, r, :n]) == list(ranked[r][0])
                    assert best_scores[b, r] == pytest.approx(ranked[r][1])
                else:
                    assert (best[b, r] == -1).all() and best_scores[b, r] == NINF
            gains = {y: sum(nd[t, k] for t, k in enumerate(y)) for y, _ in ranked}
            assert sum(nd[t, k] for t, k in enumerate(mbr[b, :n])) == pytest.approx(
                max(gains.values()))
            assert tuple(mbr[b, :n]) in gains  # a possible path


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("masked", [False, True])
def test_mbr_without_forbidden_transitions_matches_enumeration(dtype, masked):
    # No -inf transition, start or end: posterior_decode's per-position argmax (no
    # Viterbi pass) must still give the possible path of the highest expected accuracy,
    # also with -inf emissions and with label_mask, and float32 like float64.
    rng = np.random.default_rng(11)
    for seed in range(8):
        em, trans, start, end, lengths = _problem(seed, p_inf=0.0)
        em[rng.random(em.shape) < 0.15] = NINF
        mask = rng.random(em.shape) < 0.8 if masked else None
        f = _fold(em, trans, start, end, None, mask)
        if not _possible(*f, lengths):
            continue
        mbr = fastcrf.posterior_decode(em.astype(dtype), trans, start, end, lengths,
                                       label_mask=mask)
        for b, n in enumerate(lengths):
            _, nd, _, ranked = _oracle(f[0][b], *f[1:], n)
            gains = {y: sum(nd[t, k] for t, k in enumerate(y)) for y, _ in ranked}
            assert tuple(mbr[b, :n]) in gains
            assert sum(nd[t, k] for t, k in enumerate(mbr[b, :n])) == pytest.approx(
                max(gains.values()), rel=1e-6)
            assert (mbr[b, n:] == -1).all()


def test_kbest_ties_follow_the_documented_order():
    # Integer scores make many exact ties.
    for prob in _problems(6, integer=True, p_inf=0.1):
        em, trans, start, end, lengths = prob
        paths, scores = fastcrf.viterbi(em, trans, start, end, lengths, k=30)
        one, _ = fastcrf.viterbi(em, trans, start, end, lengths)
        for b, n in enumerate(lengths):
            ranked = _oracle(em[b], trans, start, end, n)[3][:30]
            assert [list(p[:n]) for p in paths[b, : len(ranked)]] == [list(y) for y, _ in ranked]
            assert scores[b, : len(ranked)].tolist() == [s for _, s in ranked]
            assert list(paths[b, 0, :n]) == list(one[b, :n])


def _partial_oracle(em, trans, start, end, n, tags, mask):
    """log sum over paths compatible with tags (-1: any) and mask, minus log Z."""
    z = _oracle(em, trans, start, end, n)[0]
    ok = [s for y, s in _all_paths(em, trans, start, end, n)
          if all((tags[t] < 0 or tags[t] == k) and (mask is None or mask[t, k])
                 for t, k in enumerate(y))]
    return np.logaddexp.reduce(ok) - z


@pytest.mark.parametrize("prob", PROBLEMS[:4])
def test_partial_likelihood_and_gradient(prob):
    em, trans, start, end, lengths = prob
    B, T, K = em.shape
    rng = np.random.default_rng(3)
    # A partial labelling built from a possible path, so it keeps probability > 0.
    _, _, _, ranked = zip(*(_oracle(em[b], trans, start, end, n) for b, n in enumerate(lengths)))
    tags = np.full((B, T), -1)
    mask = rng.random((B, T, K)) < 0.6
    for b, n in enumerate(lengths):
        y = ranked[b][rng.integers(len(ranked[b]))][0]
        for t in range(n):
            mask[b, t, y[t]] = True
            if rng.random() < 0.4:
                tags[b, t] = y[t]
    ll, g = fastcrf.log_likelihood(em, tags, trans, start, end, lengths, label_mask=mask,
                                   return_grad=True)
    for b, n in enumerate(lengths):
        assert ll[b] == pytest.approx(_partial_oracle(em[b], trans, start, end, n, tags[b],
                                                      mask[b]), abs=1e-10)
    # Finite differences over the finite scores (float64, central).
    clean = np.where(np.isnan(em), 0.0, em)

    def total(e=clean, tr=trans, st=start, en=end):
        return fastcrf.log_likelihood(e, tags, tr, st, en, lengths, label_mask=mask).sum()

    h = 1e-6
    for name, arr, grad in (("em", clean, g.emissions), ("tr", trans, g.transitions),
                            ("st", start, g.start), ("en", end, g.end)):
        for idx in zip(*np.nonzero(np.isfinite(arr))):
            hi, lo = arr.copy(), arr.copy()
            hi[idx] += h
            lo[idx] -= h
            args = {"em": "e", "tr": "tr", "st": "st", "en": "en"}[name]
            fd = (total(**{args: hi}) - total(**{args: lo})) / (2 * h)
            if name == "em" and idx[1] >= lengths[idx[0]]:
                assert grad[idx] == 0
                continue
            assert grad[idx] == pytest.approx(fd, abs=1e-6), (name, idx)


def test_full_tags_equal_the_partial_path():
    em, trans, start, end, lengths = PROBLEMS[0]
    paths, _ = fastcrf.viterbi(em, trans, start, end, lengths)
    ll, g = fastcrf.log_likelihood(em, paths, trans, start, end, lengths, return_grad=True)
    mask = np.ones(em.shape, bool)
    llp, gp = fastcrf.log_likelihood(em, paths, trans, start, end, lengths, label_mask=mask,
                                     return_grad=True)
    np.testing.assert_allclose(ll, llp, atol=1e-12)
    for a, b in zip(g, gp):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_constrained_likelihood_normalises_over_allowed_paths():
    em, trans, start, end, lengths = PROBLEMS[1]
    K = trans.shape[0]
    allowed = np.ones((K, K), bool)
    allowed[0, 1] = allowed[2, 2] = False
    paths, _ = fastcrf.viterbi(em, trans, start, end, lengths, allowed=allowed)
    ll = fastcrf.log_likelihood(em, paths, trans, start, end, lengths, allowed=allowed)
    f = _fold(em, trans, start, end, allowed, None)
    for b, n in enumerate(lengths):
        z = _oracle(f[0][b], *f[1:], n)[0]
        y = paths[b, :n]
        s = dict(_all_paths(f[0][b], *f[1:], n))[tuple(y)]
        assert ll[b] == pytest.approx(s - z, abs=1e-10)


def test_impossible_labelling_is_an_error_naming_the_sequence():
    em = np.zeros((3, 2, 2))
    em[2, 1, 1] = NINF
    tags = np.zeros((3, 2), int)
    tags[2, 1] = 1
    with pytest.raises(ValueError, match=r"sequence\(s\) \[2\] have no possible path comp"):
        fastcrf.log_likelihood(em, tags, np.zeros((2, 2)))
    em[1, 0] = NINF
    for call in (fastcrf.log_partition, fastcrf.marginals, fastcrf.edge_marginals,
                 fastcrf.viterbi, fastcrf.posterior_decode):
        with pytest.raises(ValueError, match=r"sequence\(s\) \[1\] have no possible"):
            call(em, np.zeros((2, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_posinf_at_real_positions_is_an_error(bad):
    em = np.zeros((2, 3, 2))
    em[1, 2, 0] = bad
    with pytest.raises(ValueError, match="emissions contains NaN or \\+inf"):
        fastcrf.log_partition(em, np.zeros((2, 2)))
    # The same value in the padding is ignored.
    ref = fastcrf.log_partition(em[:, :2].copy(), np.zeros((2, 2)))
    np.testing.assert_array_equal(fastcrf.log_partition(em, np.zeros((2, 2)), lengths=[3, 2]),
                                  [fastcrf.log_partition(np.zeros((1, 3, 2)), np.zeros((2, 2)))[0],
                                   ref[1]])


def test_float32_matches_float64_and_threads_are_bitwise():
    em, trans, start, end, lengths = _problem(11, B=37, T=9, K=5, p_inf=0.05)
    allowed = np.ones((5, 5), bool)
    allowed[1, 2] = False
    em = np.where(np.isnan(em), 0.0, em)
    em[:, :2] = np.where(np.isneginf(em[:, :2]), -3.0, em[:, :2])  # -inf later on only
    tags = np.full(lengths.shape + (9,), -1)
    tags[:, 0] = 0
    kw = dict(allowed=allowed)
    calls = {
        "logz": lambda e, j: fastcrf.log_partition(e, trans, start, end, lengths, n_jobs=j, **kw),
        "node": lambda e, j: fastcrf.marginals(e, trans, start, end, lengths, n_jobs=j, **kw),
        "edge": lambda e, j: fastcrf.edge_marginals(e, trans, start, end, lengths, n_jobs=j, **kw),
        "ll": lambda e, j: fastcrf.log_likelihood(e, tags, trans, start, end, lengths, n_jobs=j,
                                                  return_grad=True, **kw)[1].transitions,
        "kbest": lambda e, j: fastcrf.viterbi(e, trans, start, end, lengths, n_jobs=j, k=3,
                                              **kw)[1],
        "mbr": lambda e, j: fastcrf.posterior_decode(e, trans, start, end, lengths, n_jobs=j,
                                                     **kw),
    }
    for name, call in calls.items():
        ref = call(em, 1)
        for j in (2, 3, 4):
            np.testing.assert_array_equal(call(em, j), ref, err_msg=name)
        np.testing.assert_allclose(call(em.astype(np.float32), 2), ref, rtol=1e-4, atol=1e-4,
                                   err_msg=name)


@pytest.mark.parametrize("kw,exc,match", [
    (dict(label_mask=np.ones((2, 3, 3), bool)), ValueError, r"label_mask must have shape"),
    (dict(label_mask=np.full((2, 3, 2), 0.5)), TypeError, "label_mask must be boolean"),
    (dict(k=0), ValueError, "k must be >= 1"),
    (dict(k=2.0), TypeError, "k must be an int"),
])
def test_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        fastcrf.viterbi(np.zeros((2, 3, 2)), np.zeros((2, 2)), **kw)
