"""Observation-conditioned transitions over sparse features (fastcrf._edges and the
sparse drivers of fastcrf._kernels._edges): brute-force enumeration of every label
path, finite differences of the L-BFGS objective, n_jobs 1 vs 2 bitwise, and the
estimator (CRF(transition_prefix=...)) end to end."""

import itertools

import numpy as np
import pytest
from brute_force import enumerate_positions

import fastcrf
from fastcrf import _edges
from fastcrf._layout import StateLayout
from fastcrf._training import encode_training

K_LABELS = ("A", "B", "C")


def corpus(rng, n_seq=6, max_len=4, values=False):
    """Token dicts with state features ``w`` / ``s`` and transition attributes
    ``E:...`` (real-valued with ``values``), and random labels."""
    X, y = [], []
    for _ in range(n_seq):
        n = int(rng.integers(1, max_len + 1))
        seq = []
        for _ in range(n):
            tok = {"w": f"w{rng.integers(4)}", "s": f"s{rng.integers(2)}"}
            if rng.random() < 0.7:
                tok[f"E:{rng.integers(3)}"] = float(rng.normal()) if values else 1.0
            if rng.random() < 0.3:
                tok["E:x"] = 1.0
            seq.append(tok)
        X.append(seq)
        y.append([K_LABELS[i] for i in rng.integers(0, 3, size=n)])
    return X, y


def prepared(X, y, n_jobs=1):
    Xs, Xe = _edges.split_tokens(X, "E:")
    vocabulary, classes, data = encode_training(Xs, y, 0.0, n_jobs, list(K_LABELS))
    ev, ef = _edges.encode_edges(Xe, 0.0, n_jobs)
    layout = StateLayout.for_training(data, True)
    return vocabulary, classes, data, ev, ef, layout


def dense_view(X, vocabulary, ev, layout, state, W, trans):
    """Emissions (T, K) and per-position transitions (T, K, K) of each sequence, from
    the token dicts (the oracle's own reading of the model)."""
    S = layout.to_dense(state)
    out = []
    for seq in X:
        T = len(seq)
        em = np.zeros((T, 3))
        tr = np.broadcast_to(trans, (T, 3, 3)).copy()
        for t, tok in enumerate(seq):
            for k, v in tok.items():
                if k.startswith("E:"):
                    if t > 0:
                        tr[t] += v * W[ev.names.index(k)]
                else:
                    em[t] += S[vocabulary.names.index(f"{k}:{v}")]
        out.append((em, tr))
    return out


def random_point(rng, fun):
    return rng.normal(size=fun.n_edge + fun.n_state + 9 + 6)


@pytest.mark.parametrize("values", [False, True])
# 1: the scaled recursion; 300: scores whose rows underflow it (the log-space one).
@pytest.mark.parametrize("scale", [1.0, 300.0])
def test_sparse_kernels_match_brute_force(rng, values, scale):
    X, y = corpus(rng, values=values)
    vocabulary, classes, data, ev, ef, layout = prepared(X, y)
    fun = _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 1)
    x = random_point(rng, fun) * scale
    ll, _ = fun.log_likelihood(x)
    nW, nS = fun.n_edge, fun.n_state
    W = x[:nW].reshape(-1, 3, 3)
    trans, start, end = x[nW + nS:][:9].reshape(3, 3), x[nW + nS + 9:][:3], x[-3:]
    model = _edges.EdgeCRFModel(classes, vocabulary, layout, x[nW:nW + nS], x[nW + nS:],
                                transition_prefix="E:", edge_vocabulary=ev, edge_weights=W)
    marg = model.predict_proba(X)
    paths = model.predict_indices(X)
    total = 0.0
    for s, (em, tr) in enumerate(dense_view(X, vocabulary, ev, layout, x[nW:nW + nS], W,
                                            trans)):
        z, node, _, best, _, score = enumerate_positions(em, tr, start, end)
        codes = [K_LABELS.index(lab) for lab in y[s]]
        np.testing.assert_allclose(fun.logz[s], z, rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(marg[s], node, atol=1e-12)
        assert paths[s].tolist() == best
        total += score(codes) - z
    np.testing.assert_allclose(ll, total, rtol=1e-12, atol=1e-12 * scale)
    lp = model.sequence_log_probability(X, y)
    np.testing.assert_allclose(lp.sum(), total, rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize("scale", [1.0, 300.0])
def test_blockwise_and_second_pass_gradients_agree(rng, scale):
    # W's gradient accumulated in the forward-backward pass (blocks) and reduced by
    # edge_gradient from the stored log-space rows (for a W too large for blocks).
    X, y = corpus(rng, n_seq=30, max_len=7, values=True)
    _, _, data, _, ef, layout = prepared(X, y)
    blocks = _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 2, blocks=True)
    second = _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 2, blocks=False)
    assert blocks.wgrad.shape[0] > 1 and second.wgrad.shape[0] == 0
    x = random_point(rng, blocks) * scale
    ll_b, g_b = blocks.log_likelihood(x)
    ll_s, g_s = second.log_likelihood(x)
    np.testing.assert_allclose(ll_b, ll_s, rtol=1e-12)
    np.testing.assert_allclose(g_b, g_s, rtol=1e-9, atol=1e-9)


def test_gradient_matches_finite_differences(rng):
    X, y = corpus(rng, values=True)
    _, _, data, _, ef, layout = prepared(X, y)
    fun = _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 1)
    x = random_point(rng, fun) * 0.5
    _, grad = fun.log_likelihood(x)
    grad = grad.copy()
    h = 1e-6
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        fd = (fun.log_likelihood(x + e)[0] - fun.log_likelihood(x - e)[0]) / (2 * h)
        assert abs(fd - grad[i]) < 1e-6 * max(1.0, abs(fd)), (i, fd, grad[i])


def test_sample_weights_scale_the_gradient(rng):
    X, y = corpus(rng)
    _, _, data, _, ef, layout = prepared(X, y)
    x = random_point(rng, _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 1))
    ll, g = _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 1).log_likelihood(x)
    g = g.copy()
    data.weights = np.full(data.n_sequences, 2.0)
    ll2, g2 = _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 1).log_likelihood(x)
    np.testing.assert_allclose(ll2, 2 * ll, rtol=1e-13)
    np.testing.assert_allclose(g2, 2 * g, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("blocks", [True, False])
def test_threads_bitwise(rng, blocks):
    X, y = corpus(rng, n_seq=60, max_len=9, values=True)
    _, _, data, _, ef, layout = prepared(X, y)
    f1 = _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 1, blocks=blocks)
    f2 = _edges.EdgeObjective(data, ef, layout, np.ones(15), 0.0, 2, blocks=blocks)
    x = random_point(rng, f1)
    ll1, g1 = f1.log_likelihood(x)
    g1 = g1.copy()
    ll2, g2 = f2.log_likelihood(x)
    assert ll1 == ll2
    assert np.array_equal(g1, g2)
    if not blocks:
        return
    crf1 = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=15,
                       n_jobs=1).fit(X, y)
    crf2 = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=15,
                       n_jobs=2).fit(X, y)
    assert np.array_equal(crf1._model.edge_weights, crf2._model.edge_weights)
    assert crf1.predict(X) == crf2.predict(X)


def pos_pairs_corpus(rng, n_seq=80):
    """A task only transition attributes can solve: the label of a token is that of
    the previous one when the token's attribute says 'same', else the other label;
    the state features carry no information."""
    X, y = [], []
    for _ in range(n_seq):
        n = int(rng.integers(2, 7))
        labels = [str(rng.choice(["P", "Q"]))]
        seq = [{"w": "x", "E:rel": "same"}]
        for _ in range(1, n):
            same = rng.random() < 0.5
            labels.append(labels[-1] if same else ("Q" if labels[-1] == "P" else "P"))
            seq.append({"w": "x", "E:rel": "same" if same else "flip"})
        seq[0]["first"] = labels[0]
        X.append(seq)
        y.append(labels)
    return X, y


def test_estimator_learns_transition_attributes(rng, tmp_path):
    X, y = pos_pairs_corpus(rng)
    plain = fastcrf.CRF(algorithm="lbfgs", max_iterations=100).fit(X, y)
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=100)
    crf.fit(X, y)
    accuracy = np.mean([a == b for p, t in zip(crf.predict(X), y) for a, b in zip(p, t)])
    plain_acc = np.mean([a == b for p, t in zip(plain.predict(X), y) for a, b in zip(p, t)])
    assert accuracy == 1.0
    assert plain_acc < 0.8
    features = crf._model.edge_features()
    assert features[("E:rel:same", "P", "P")] > 0 > features[("E:rel:same", "P", "Q")]
    # A model file round trip keeps the transition attributes.
    path = tmp_path / "m.npz"
    crf.save(path)
    loaded = fastcrf.CRF.load(path)
    assert isinstance(loaded._model, _edges.EdgeCRFModel)
    assert np.array_equal(loaded._model.edge_weights, crf._model.edge_weights)
    assert loaded.predict(X) == crf.predict(X)
    np.testing.assert_array_equal(np.concatenate(loaded.predict_proba(X)),
                                  np.concatenate(crf.predict_proba(X)))


def test_constraints_apply_to_transition_attributes(rng):
    X, y = pos_pairs_corpus(rng)
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=50).fit(X, y)
    out = crf.predict(X, constraints={("P", "Q"): False})
    assert not any(a == "P" and b == "Q" for seq in out for a, b in itertools.pairwise(seq))
    marg = crf.predict_proba(X, constraints={("P", "Q"): False})
    assert all(np.isfinite(m).all() for m in marg)
    with pytest.raises(ValueError, match="without any possible label path"):
        crf.predict(X, constraints={(a, b): False for a in "PQ" for b in "PQ"})


def test_list_tokens_and_no_transition_attributes(rng):
    X, y = pos_pairs_corpus(rng, 30)
    lists = [[[f"{k}={v}" for k, v in tok.items()] for tok in seq] for seq in X]
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=60)
    assert crf.fit(lists, y).predict(lists) == y
    # A prefix that matches nothing: an empty W, the plain model's predictions.
    none = fastcrf.CRF(algorithm="lbfgs", transition_prefix="nothing", max_iterations=30)
    plain = fastcrf.CRF(algorithm="lbfgs", max_iterations=30)
    assert none.fit(X, y)._model.edge_weights.shape == (0, 2, 2)
    assert none.predict(X) == plain.fit(X, y).predict(X)


def test_unsupported_settings_raise(rng):
    X, y = pos_pairs_corpus(rng, 10)
    with pytest.raises(TypeError, match="transition_prefix must be a str"):
        fastcrf.CRF(algorithm="lbfgs", transition_prefix=3).fit(X, y)
    with pytest.raises(ValueError, match="non-empty"):
        fastcrf.CRF(algorithm="lbfgs", transition_prefix="").fit(X, y)
    # (a dev set works: tests/test_edges_dev.py)


def test_bad_scores_files_and_old_pickles(rng, tmp_path):
    import pickle
    import zipfile

    X, y = pos_pairs_corpus(rng, 20)
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=5).fit(X, y)
    # Transition attributes whose scores exceed the kernels' limit: a ValueError.
    model = crf._model
    huge = _edges.EdgeCRFModel(model.classes, model.vocabulary, model.layout, model.state,
                               model.chain, transition_prefix="E:",
                               edge_vocabulary=model.edge_vocabulary,
                               edge_weights=np.full(model.edge_weights.shape, 1e200))
    with pytest.raises(ValueError, match="not finite or exceed"):
        huge.predict(X)
    with pytest.raises(ValueError, match="edge_weights must have shape"):
        _edges.EdgeCRFModel(model.classes, model.vocabulary, model.layout, model.state,
                            model.chain, transition_prefix="E:",
                            edge_vocabulary=model.edge_vocabulary,
                            edge_weights=np.zeros((1, 2, 2)))
    # A version-4 file without its transition-attribute arrays is refused by name.
    path = tmp_path / "m.npz"
    crf.save(path)
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            if item.filename != "edge_weights.npy":
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(ValueError, match="missing edge_weights"):
        fastcrf.CRF.load(broken)
    # A CRF pickled before transition_prefix existed still has its parameters.
    state = crf.__getstate__()
    state.pop("transition_prefix")
    old = fastcrf.CRF.__new__(fastcrf.CRF)
    old.__setstate__(state)
    assert old.get_params()["transition_prefix"] is None
    assert pickle.loads(pickle.dumps(crf)).predict(X) == crf.predict(X)


def test_transition_prefix_with_hashing_is_refused():
    # The transition attributes are kept by name: a hashed model has no place for them.
    X = [[{"w": "a", "B:p": "x"}, {"w": "b", "B:p": "y"}]]
    y = [["A", "B"]]
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="B:", hash_features=16)
    with pytest.raises(ValueError, match="hash_features"):
        crf.fit(X, y)


def test_forced_decoding_with_transition_attributes():
    # (tests/test_edge_queries.py checks every query against enumeration.)
    X = [[{"w": "a", "B:p": "x"}, {"w": "b", "B:p": "y"}]] * 3
    y = [["A", "B"]] * 3
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="B:", max_iterations=5).fit(X, y)
    assert crf.predict(X) == y
    assert crf.predict(X, forced=[["B", None]] * 3)[0][0] == "B"
    marg = crf.predict_marginals(X, forced=[[None, "A"]] * 3)
    assert marg[0][1] == {"A": 1.0, "B": 0.0}
