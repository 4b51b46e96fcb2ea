"""Every prediction query of a model with transition attributes, and the dense API's
k-best and MBR decoding with per-position transitions (B, T, K, K), against
brute-force enumeration of all label paths: k-best order and scores (ties too),
marginals, pairwise marginals, MBR, forced and constrained decoding; float32 against
float64, thread counts bitwise, the batching of long inputs, and the command lines."""

import itertools

import numpy as np
import pytest
from helpers import run_cli as run

import fastcrf
from fastcrf import _edges, _lattice_queries
from fastcrf.io import write_conll

NINF = -np.inf


# --------------------------------------------------------------------------- #
# The oracle                                                                    #
# --------------------------------------------------------------------------- #

def ranked_paths(em, trans4, start, end):
    """Every possible path of one chain with per-position transitions (``trans4[t]``:
    the move into t), in the k-best order: descending score, ties by the path read
    backwards in increasing label order.  Also log Z, node and pair marginals."""
    T, K = em.shape
    paths = []
    for y in itertools.product(range(K), repeat=T):
        s = start[y[0]] + end[y[-1]] + sum(em[t, k] for t, k in enumerate(y))
        s += sum(trans4[t, y[t - 1], y[t]] for t in range(1, T))
        if s > NINF:
            paths.append((y, s))
    logz = np.logaddexp.reduce([s for _, s in paths])
    node, pair = np.zeros((T, K)), np.zeros((T, K, K))
    for y, s in paths:
        p = np.exp(s - logz)
        for t, k in enumerate(y):
            node[t, k] += p
        for t in range(1, T):
            pair[t, y[t - 1], y[t]] += p
    return sorted(paths, key=lambda ys: (-ys[1], ys[0][::-1])), logz, node, pair


def check_mbr(path, node, ranked):
    """``path`` is a possible path of the highest expected accuracy."""
    gains = {y: sum(node[t, k] for t, k in enumerate(y)) for y, _ in ranked}
    assert tuple(path) in gains
    assert sum(node[t, k] for t, k in enumerate(path)) == pytest.approx(
        max(gains.values()), abs=1e-12)


# --------------------------------------------------------------------------- #
# The dense API with (B, T, K, K) transitions                                  #
# --------------------------------------------------------------------------- #

def dense_problem(seed, B=4, T=4, K=3, p_inf=0.15, integer=False):
    """A ragged batch with -inf scores everywhere and NaN in what is never read; every
    sequence keeps a possible path."""
    rng = np.random.default_rng(seed)
    while True:
        draw = ((lambda *s: rng.integers(-2, 3, size=s).astype(float)) if integer
                else (lambda *s: rng.normal(size=s)))
        em, tr, start, end = draw(B, T, K), draw(B, T, K, K), draw(K), draw(K)
        for x in (em, tr, start, end):
            x[rng.random(x.shape) < p_inf] = NINF
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T
        if all(ranked_paths(em[b, :n], tr[b, :n], start, end)[0]
               for b, n in enumerate(lengths)):
            break
    for b, n in enumerate(lengths):
        em[b, n:] = np.nan
        tr[b, n:] = np.nan
    tr[:, 0] = np.nan
    return em, tr, start, end, lengths


@pytest.mark.parametrize("seed", range(6))
def test_dense_kbest_and_mbr_match_enumeration(seed):
    em, tr, start, end, lengths = dense_problem(seed)
    B, T, K = em.shape
    rng = np.random.default_rng(100 + seed)
    for trial in range(6):
        kw = {}
        if trial:
            kw = dict(allowed=rng.random((K + 2, K + 2)) < 0.85,
                      label_mask=rng.random((B, T, K)) < 0.85)
        e, t4, s, n_ = em.copy(), tr.copy(), start.copy(), end.copy()
        if kw:
            a = kw["allowed"]
            t4[:, :, ~a[:K, :K]] = NINF
            s[~a[K, :K]] = NINF
            n_[~a[:K, K + 1]] = NINF
            e[~kw["label_mask"]] = NINF
        oracles = [ranked_paths(e[b, :n], t4[b, :n], s, n_) for b, n in enumerate(lengths)]
        if not all(o[0] for o in oracles):
            with pytest.raises(ValueError, match="no possible"):
                fastcrf.viterbi(em, tr, start, end, lengths, k=3, **kw)
            continue
        paths, scores = fastcrf.viterbi(em, tr, start, end, lengths, k=5, **kw)
        mbr = fastcrf.posterior_decode(em, tr, start, end, lengths, **kw)
        for b, n in enumerate(lengths):
            ranked, _, node, _ = oracles[b]
            for r in range(5):
                if r < len(ranked):
                    assert paths[b, r, :n].tolist() == list(ranked[r][0])
                    assert scores[b, r] == pytest.approx(ranked[r][1], abs=1e-12)
                    assert (paths[b, r, n:] == -1).all()
                else:
                    assert (paths[b, r] == -1).all() and scores[b, r] == NINF
            check_mbr(mbr[b, :n], node, ranked)
            assert (mbr[b, n:] == -1).all()


def test_dense_kbest_ties_follow_the_documented_order():
    for seed in range(6):
        em, tr, start, end, lengths = dense_problem(seed, integer=True, p_inf=0.1)
        paths, scores = fastcrf.viterbi(em, tr, start, end, lengths, k=30)
        one, _ = fastcrf.viterbi(em, tr, start, end, lengths)
        for b, n in enumerate(lengths):
            ranked = ranked_paths(em[b, :n], tr[b, :n], start, end)[0][:30]
            assert ([p[:n].tolist() for p in paths[b, :len(ranked)]]
                    == [list(y) for y, _ in ranked])
            assert scores[b, :len(ranked)].tolist() == [s for _, s in ranked]
            assert paths[b, 0, :n].tolist() == one[b, :n].tolist()


def test_dense_shared_matrix_everywhere_equals_the_k_by_k_kbest():
    rng = np.random.default_rng(3)
    em = rng.normal(size=(5, 6, 4))
    trans = rng.normal(size=(4, 4))
    trans[0, 2] = NINF
    start, end, lengths = rng.normal(size=4), rng.normal(size=4), np.array([6, 1, 3, 5, 6])
    trans4 = np.broadcast_to(trans, (5, 6, 4, 4))
    for a, b in zip(fastcrf.viterbi(em, trans4, start, end, lengths, k=7),
                    fastcrf.viterbi(em, trans, start, end, lengths, k=7)):
        assert np.array_equal(a, b)
    assert np.array_equal(fastcrf.posterior_decode(em, trans4, start, end, lengths),
                          fastcrf.posterior_decode(em, trans, start, end, lengths))


def test_dense_float32_matches_float64_and_threads_are_bitwise():
    rng = np.random.default_rng(5)
    B, T, K = 37, 7, 4
    em = rng.normal(size=(B, T, K))
    tr = rng.normal(size=(B, T, K, K))
    tr[rng.random(tr.shape) < 0.1] = NINF
    start, end = rng.normal(size=K), rng.normal(size=K)
    lengths = rng.integers(1, T + 1, size=B)
    p64, s64 = fastcrf.viterbi(em, tr, start, end, lengths, k=4)
    p32, s32 = fastcrf.viterbi(em.astype(np.float32), tr, start, end, lengths, k=4)
    assert s32.dtype == np.float32
    np.testing.assert_allclose(s32, s64, rtol=1e-5)
    assert np.array_equal(p32[:, 0], p64[:, 0])
    m64 = fastcrf.posterior_decode(em, tr, start, end, lengths)
    assert np.array_equal(fastcrf.posterior_decode(em.astype(np.float32), tr, start, end,
                                                   lengths), m64)
    for k in (None, 3):
        one = fastcrf.viterbi(em, tr, start, end, lengths, k=k, n_jobs=1)
        two = fastcrf.viterbi(em, tr, start, end, lengths, k=k, n_jobs=2)
        assert all(np.array_equal(a, b) for a, b in zip(one, two))
    assert np.array_equal(fastcrf.posterior_decode(em, tr, start, end, lengths, n_jobs=2), m64)


def test_dense_bad_k_with_per_position_transitions():
    em, tr, start, end, lengths = dense_problem(0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        fastcrf.viterbi(em, tr, start, end, lengths, k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        fastcrf.viterbi(em, tr, start, end, lengths, k=2.0)


# --------------------------------------------------------------------------- #
# The estimator                                                                 #
# --------------------------------------------------------------------------- #

LABELS = ("A", "B", "C")


def corpus(rng, n_seq, max_len=4):
    """Random tokens: state attributes ``w`` and transition attributes ``E:s``."""
    X, y = [], []
    for _ in range(n_seq):
        n = int(rng.integers(1, max_len + 1))
        X.append([{"w": f"w{rng.integers(4)}", "E:s": f"s{rng.integers(3)}"}
                  for _ in range(n)])
        y.append([LABELS[rng.integers(3)] for _ in range(n)])
    return X, y


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X, y = corpus(rng, 60)
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", c2=0.01,
                      max_iterations=40).fit(X, y)
    assert np.abs(crf._model.edge_weights).max() > 0.1
    return crf, corpus(np.random.default_rng(1), 5)[0]


def model_scores(model, seq, allowed=None):
    """``(em (T, K), trans4 (T, K, K), start, end)`` of one sequence, read off the
    model's named weights (not its kernels); what ``allowed`` forbids is -inf."""
    K = len(model.classes)
    index = {lab: k for k, lab in enumerate(model.classes)}
    state, edge = model.state_features(), model.edge_features()
    T = len(seq)
    em = np.zeros((T, K))
    trans4 = np.broadcast_to(model.transitions, (T, K, K)).copy()
    for t, tok in enumerate(seq):
        for key, value in tok.items():
            name = f"{key}:{value}"
            for lab, k in index.items():
                em[t, k] += state.get((name, lab), 0.0)
                if t and key.startswith("E:"):
                    for lab2, j in index.items():
                        trans4[t, j, k] += edge.get((name, lab2, lab), 0.0)
    start, end = model.start.copy(), model.end.copy()
    if allowed is not None:
        trans4[:, ~allowed[:K, :K]] = NINF
        start[~allowed[K, :K]] = NINF
        end[~allowed[:K, K + 1]] = NINF
    return em, trans4, start, end


def forced_for(rng, X, classes):
    return [[classes[rng.integers(len(classes))] if rng.random() < 0.4 else None
             for _ in seq] for seq in X]


@pytest.mark.parametrize("constrained", [False, True])
def test_every_query_matches_enumeration(fitted, constrained):
    crf, X = fitted
    model = crf._model
    K = len(model.classes)
    allowed = None
    kw = {}
    if constrained:
        allowed = np.ones((K + 2, K + 2), bool)
        allowed[0, 1] = allowed[2, 2] = allowed[K, 1] = False
        kw = {"constraints": allowed}
    forced = forced_for(np.random.default_rng(2), X, model.classes)
    nbest = crf.predict_nbest(X, 6, **kw)
    nbest_forced = crf.predict_nbest(X, 6, forced=forced, **kw)
    proba = crf.predict_proba(X, **kw)
    proba_forced = crf.predict_proba(X, forced=forced, **kw)
    marg_dicts = crf.predict_marginals(X, **kw)
    pairs = crf.predict_edge_marginals(X, **kw)
    mbr = crf.predict(X, decoder="mbr", **kw)
    viterbi = crf.predict(X, **kw)
    viterbi_forced = crf.predict(X, forced=forced, **kw)
    mbr_forced = crf.predict(X, decoder="mbr", forced=forced, **kw)
    index = {lab: k for k, lab in enumerate(model.classes)}
    for b, seq in enumerate(X):
        em, trans4, start, end = model_scores(model, seq, allowed)
        ranked, logz, node, pair = ranked_paths(em, trans4, start, end)
        names = [[model.classes[k] for k in y] for y, _ in ranked]
        assert [labels for labels, _ in nbest[b]] == names[:6]
        np.testing.assert_allclose([p for _, p in nbest[b]],
                                   [np.exp(s - logz) for _, s in ranked[:6]], rtol=1e-10)
        assert viterbi[b] == names[0]
        np.testing.assert_allclose(proba[b], node, atol=1e-12)
        assert [list(d.values()) for d in marg_dicts[b]] == proba[b].tolist()
        np.testing.assert_allclose(pairs[b], pair[1:], atol=1e-12)
        check_mbr([index[lab] for lab in mbr[b]], node, ranked)
        # Forced: the labellings that agree with forced[b], under the same scores.
        em_f = em.copy()
        for t, lab in enumerate(forced[b]):
            if lab is not None:
                em_f[t, np.arange(K) != index[lab]] = NINF
        ranked_f, logz_f, node_f, _ = ranked_paths(em_f, trans4, start, end)
        names_f = [[model.classes[k] for k in y] for y, _ in ranked_f]
        assert viterbi_forced[b] == names_f[0]
        assert [labels for labels, _ in nbest_forced[b]] == names_f[:6]
        np.testing.assert_allclose([p for _, p in nbest_forced[b]],
                                   [np.exp(s - logz_f) for _, s in ranked_f[:6]],
                                   rtol=1e-10)
        np.testing.assert_allclose(proba_forced[b], node_f, atol=1e-12)
        check_mbr([index[lab] for lab in mbr_forced[b]], node_f, ranked_f)


def test_stored_constraints_apply_to_every_query(fitted):
    crf, X = fitted
    model = crf._model
    K = len(model.classes)
    allowed = np.ones((K + 2, K + 2), bool)
    allowed[1, 0] = allowed[0, 0] = False
    stored = _edges.EdgeCRFModel(
        model.classes, model.vocabulary, model.layout, model.state, model.chain,
        constraints=allowed, transition_prefix="E:", edge_vocabulary=model.edge_vocabulary,
        edge_weights=model.edge_weights)
    assert stored.predict_nbest(X, 4) == model.predict_nbest(X, 4, constraints=allowed)
    for a, b in zip(stored.predict_proba(X), model.predict_proba(X, constraints=allowed)):
        assert np.array_equal(a, b)
    assert stored.predict(X, decoder="mbr") == model.predict(X, decoder="mbr",
                                                             constraints=allowed)
    for b, seq in enumerate(X):
        ranked = ranked_paths(*model_scores(model, seq, allowed))[0]
        assert stored.predict([seq])[0] == [model.classes[k] for k in ranked[0][0]]


def test_threads_and_batches_are_bitwise(fitted, monkeypatch):
    crf, _ = fitted
    X = corpus(np.random.default_rng(4), 150, max_len=9)[0]
    forced = forced_for(np.random.default_rng(5), X, crf.classes_)

    def queries(c):
        return (c.predict_nbest(X, 3), c.predict(X, decoder="mbr"),
                c.predict(X, forced=forced), np.concatenate(c.predict_proba(X, forced=forced)),
                np.concatenate(c.predict_edge_marginals(X)))

    def same(a, b):
        if isinstance(a, np.ndarray):
            return np.array_equal(a, b)
        return a == b

    one = queries(crf.set_params(n_jobs=1))
    two = queries(crf.set_params(n_jobs=2))
    assert all(same(a, b) for a, b in zip(one, two))
    # A few sequences at a time (many dense batches) gives the same answers.
    monkeypatch.setattr(_lattice_queries, "MAX_DENSE_DOUBLES", 200)
    assert len(list(_lattice_queries._ranges(np.full(150, 9), 9))) > 10
    small = queries(crf.set_params(n_jobs=1))
    assert all(same(a, b) for a, b in zip(one, small))


def test_scores_out_of_range_raise_as_viterbi_does(fitted):
    crf, X = fitted
    m = crf._model
    huge = _edges.EdgeCRFModel(m.classes, m.vocabulary, m.layout, m.state, m.chain,
                               transition_prefix="E:", edge_vocabulary=m.edge_vocabulary,
                               edge_weights=np.full(m.edge_weights.shape, 1e200))
    for call in (lambda: huge.predict(X), lambda: huge.predict_nbest(X, 2),
                 lambda: huge.predict(X, decoder="mbr"), lambda: huge.predict_edge_marginals(X)):
        with pytest.raises(ValueError, match="not finite or exceed 1e150"):
            call()


def test_forced_errors_name_the_entry(fitted):
    crf, X = fitted
    with pytest.raises(ValueError, match=r"forced\[0\]\[0\] is 'Z'"):
        crf.predict(X, forced=[["Z"] + [None] * (len(X[0]) - 1)] + [None] * (len(X) - 1))
    with pytest.raises(ValueError, match="forced has 1 sequences"):
        crf.predict_nbest(X, 2, forced=[None])


# --------------------------------------------------------------------------- #
# Command lines                                                                 #
# --------------------------------------------------------------------------- #

def relation_rows(rng, n_seq):
    """Rows (word, relation, label): only a transition conditioned on column 1 fits."""
    out = []
    for _ in range(n_seq):
        labels = [str(rng.choice(["P", "Q"]))]
        rows = [(f"first{labels[0]}", "same", labels[0])]
        for _ in range(int(rng.integers(1, 6))):
            same = rng.random() < 0.5
            labels.append(labels[-1] if same else ("Q" if labels[-1] == "P" else "P"))
            rows.append(("x", "same" if same else "flip", labels[-1]))
        out.append(rows)
    return out


def blocks(out):
    """crf_test / tag -n output as a list of (header, labels) blocks."""
    result = []
    for block in out.strip().split("\n\n"):
        lines = block.splitlines()
        result.append((lines[0], [line.split()[-1] for line in lines[1:]]))
    return result


def test_crf_test_and_tag_nbest_with_transition_attributes(capsys, tmp_path):
    rng = np.random.default_rng(0)
    write_conll(tmp_path / "train.txt", relation_rows(rng, 80))
    write_conll(tmp_path / "test.txt", relation_rows(rng, 5))
    (tmp_path / "tpl").write_text("U00:%x[0,0]\nB01:%x[0,1]\n")
    model = tmp_path / "m.npz"
    code, _, err = run(capsys, "crf_learn", tmp_path / "tpl", tmp_path / "train.txt", model)
    assert code == 0, err
    crf = fastcrf.CRF.load(model, raw_rows=True)
    assert isinstance(crf._model, _edges.EdgeCRFModel)
    rows = [[r[:2] for r in s] for s in fastcrf.io.read_conll(tmp_path / "test.txt")]
    expected = crf.predict_nbest(rows, 3)
    code, out, err = run(capsys, "crf_test", "-m", model, "-n", "3", tmp_path / "test.txt")
    assert code == 0, err
    got = blocks(out)
    flat = [cand for seq in expected for cand in seq]
    assert [labels for _, labels in got] == [labels for labels, _ in flat]
    assert [float(h.split()[2]) for h, _ in got] == pytest.approx(
        [p for _, p in flat], abs=1e-6)
    # -v 2: every label's marginal, the model's predict_proba.
    code, out, err = run(capsys, "crf_test", "-m", model, "-v", "2", tmp_path / "test.txt")
    assert code == 0, err
    proba = np.concatenate(crf.predict_proba(rows))
    lines = [line for line in out.splitlines() if line and not line.startswith("#")]
    got = np.array([[float(c.rsplit("/", 1)[1]) for c in line.split("\t")[-2:]]
                    for line in lines])
    np.testing.assert_allclose(got, proba, atol=1e-6)
    code, out, err = run(capsys, "tag", "-m", model, "-n", "2", tmp_path / "test.txt")
    assert code == 0, err
    assert [labels for _, labels in blocks(out)] == [
        labels for seq in crf.predict_nbest(rows, 2) for labels, _ in seq]


def test_false_transition_attributes_are_left_out():
    # A False bool feature has value 0: it adds nothing, so the model (and its every
    # query) is that of the same tokens without it, bitwise.
    rng = np.random.default_rng(6)
    X, y = corpus(rng, 40)
    with_false = [[{**tok, "E:t": t % 2 == 0} for t, tok in enumerate(seq)] for seq in X]
    without = [[{**tok, "E:t": True} if t % 2 == 0 else tok for t, tok in enumerate(seq)]
               for seq in X]
    a, b = (fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=15)
            .fit(Z, y) for Z in (with_false, without))
    assert np.array_equal(a._model.edge_weights, b._model.edge_weights)
    assert a.predict_nbest(with_false, 3) == b.predict_nbest(without, 3)
