"""Transition attributes (``CRF(transition_prefix=...)``) in the SGD and online trainers.

The SGD engine steps the weights ``W[f]`` (K x K) of the transition attributes as more
weight rows (fastcrf/_kernels/_sgd_engine.pyx, design note e).  The reference here is
written out densely: each mini-batch's gradient comes from enumerating every label path
of each sequence (its per-position transitions ``trans + sum_f x[t, f] W[f]`` read off
the encoded tokens), and the step rule is applied to every weight at every step:
'calibrated' asgd and l2sgd (with and without averaging and L1), the per-weight and
per-row AdaGrad rules.  The perceptron's reference decodes with the dense API's
per-position Viterbi and moves dense weights.  Finite differences check the enumerated
gradient; the public API is checked for n_jobs 1 vs 2 bitwise, for learning a
transition that depends on the input, for save / load and for the command line.
"""

import itertools

import numpy as np
import pytest
from helpers import run_cli
from test_edges import corpus, prepared

import fastcrf
from fastcrf import CRF, _edges
from fastcrf._kernels import _sgd_engine
from fastcrf._train.online import OnlineSettings, fit_online
from fastcrf._train.sgd import SGDSettings, _epoch, _State
from fastcrf.io import write_conll

DELTA = _sgd_engine.ADAGRAD_DELTA
RTOL = 1e-9
ATOL = 1e-9


# --------------------------------------------------------------------------- #
# The dense reference                                                          #
# --------------------------------------------------------------------------- #

def _entries(features, token):
    """(ids, values) of one token of an EncodedSequences."""
    lo, hi = features.token_offsets[token], features.token_offsets[token + 1]
    vals = features.values[lo:hi] if len(features.values) else np.ones(hi - lo)
    return features.attr_ids[lo:hi], vals


def lattice(data, edges, s, state, chain, W):
    """Emissions (T, K) and per-position transitions (T, K, K) of sequence ``s``."""
    K = data.n_labels
    t0, t1 = data.features.seq_offsets[s], data.features.seq_offsets[s + 1]
    T = t1 - t0
    em = np.zeros((T, K))
    tr = np.broadcast_to(chain[:K * K].reshape(K, K), (T, K, K)).copy()
    for t in range(T):
        ids, vals = _entries(data.features, t0 + t)
        for a, v in zip(ids, vals):
            em[t] += v * state[a]
        ids, vals = _entries(edges, t0 + t)
        for f, v in zip(ids, vals):
            tr[t] += v * W[f]
    return em, tr


def path_score(em, tr, start, end, path):
    s = start[path[0]] + end[path[-1]] + sum(em[t, k] for t, k in enumerate(path))
    return s + sum(tr[t, path[t - 1], path[t]] for t in range(1, len(path)))


def gradient(data, edges, index, state, chain, W):
    """``(log-likelihood, (g_state, g_chain, g_W))`` of the sequences ``index``, by
    enumerating every label path."""
    K = data.n_labels
    KK = K * K
    g = [np.zeros_like(state), np.zeros_like(chain), np.zeros_like(W)]
    ll = 0.0
    for s in index:
        t0 = data.features.seq_offsets[s]
        T = data.features.seq_offsets[s + 1] - t0
        em, tr = lattice(data, edges, s, state, chain, W)
        start, end = chain[KK:KK + K], chain[KK + K:]
        paths = list(itertools.product(range(K), repeat=T))
        scores = np.array([path_score(em, tr, start, end, p) for p in paths])
        logz = np.logaddexp.reduce(scores)
        gold = tuple(int(k) for k in data.labels[t0:t0 + T])
        ll += path_score(em, tr, start, end, gold) - logz

        def add(path, c):
            for t, k in enumerate(path):
                ids, vals = _entries(data.features, t0 + t)
                for a, v in zip(ids, vals):
                    g[0][a, k] += c * v
                if t:
                    g[1][path[t - 1] * K + k] += c
                    ids, vals = _entries(edges, t0 + t)
                    for f, v in zip(ids, vals):
                        g[2][f, path[t - 1], k] += c * v
            g[1][KK + path[0]] += c
            g[1][KK + K + path[-1]] += c

        add(gold, 1.0)
        for p, sc in zip(paths, scores):
            add(p, -np.exp(sc - logz))
    return ll, g


def _clip(x, q, u, where):
    """Cumulative-penalty clip of x[where] (in place); q[where] += the change."""
    z, qz = x[where], q[where]
    out = z.copy()
    pos, neg = z > 0, z < 0
    out[pos] = np.maximum(0.0, z[pos] - (u + qz[pos]))
    out[neg] = np.minimum(0.0, z[neg] + (u - qz[neg]))
    x[where] = out
    q[where] = qz + (out - z)


def reference(data, edges, epochs, batch, rule, eta0, lam, avg_start, lam1=0.0,
              power=0.75):
    """Dense SGD over ``epochs`` (visiting orders): ``(iterate, average)``, each a list
    ``[state (A, K), chain, W (F, K, K)]`` (average None when there is none)."""
    A, F, K = data.features.n_attributes, edges.n_attributes, data.n_labels
    w = [np.zeros((A, K)), np.zeros(K * K + 2 * K), np.zeros((F, K, K))]
    G = [np.zeros_like(x) for x in w]
    GA = [np.zeros(len(x)) for x in w]
    q = [np.zeros_like(x) for x in w]
    total = [np.zeros_like(x) for x in w]
    avg, n_avg, u, t, step = None, 0, 0.0, 0, 0
    for order in epochs:
        for pos in range(0, len(order), batch):
            idx = order[pos:pos + batch]
            nb = len(idx)
            _, g = gradient(data, edges, idx, *w)
            step += 1
            if rule in ("adagrad", "adagrad_row"):
                for i in range(3):
                    if rule == "adagrad" or i == 1:
                        G[i] += g[i] ** 2
                        s = np.where(G[i] > 0, 1.0 / (DELTA + np.sqrt(G[i])), 0.0)
                    else:
                        # One accumulator per row, the mean of its squared gradients:
                        # a state row's K weights, a transition attribute's K*K.
                        rows = g[i].reshape(len(g[i]), -1)
                        GA[i] += (rows ** 2).mean(axis=1)
                        sa = np.where(GA[i] > 0, 1.0 / (DELTA + np.sqrt(GA[i])), 0.0)
                        s = np.repeat(sa, rows.shape[1]).reshape(g[i].shape)
                    w[i] = np.exp(-eta0 * lam * nb * s) * w[i] + eta0 * g[i] * s
                if avg_start >= 0 and step > avg_start:
                    for i in range(3):
                        total[i] += w[i]
                    n_avg += 1
                continue
            eta = eta0 / (1 + lam * eta0 * t) ** power
            decay = 1 - eta * lam * nb
            w = [decay * x + eta * gx for x, gx in zip(w, g)]
            if lam1 > 0:
                u = decay * u + eta * lam1 * nb
                q = [decay * x for x in q]
                touched = [np.zeros(x.shape, dtype=bool) for x in w]
                sub = [data.features, edges]
                for i, feats in ((0, sub[0]), (2, sub[1])):
                    for s in idx:
                        lo = feats.token_offsets[feats.seq_offsets[s]]
                        hi = feats.token_offsets[feats.seq_offsets[s + 1]]
                        touched[i][feats.attr_ids[lo:hi]] = True
                touched[1][:] = True
                for i in range(3):
                    _clip(w[i], q[i], u, touched[i])
            t += nb
            if avg_start >= 0 and step > avg_start + 1:
                mu = 1.0 / (step - avg_start)
                avg = [(1 - mu) * a + mu * x for a, x in zip(avg, w)]
            else:
                avg = [x.copy() for x in w]
    if rule in ("adagrad", "adagrad_row"):
        avg = [x / n_avg for x in total] if n_avg else None
    elif avg_start < 0:
        avg = None
    elif lam1 > 0:
        avg = [np.where(x != 0, a, 0.0) for a, x in zip(avg, w)]
    return w, avg


def engine(data, edges, layout, epochs, batch, rule, eta0, lam, avg_start, lam1=0.0,
           power=0.75, n_threads=1):
    """The trainer's epochs (``_epoch``: several compiled calls each)."""
    K = data.n_labels
    ada = rule in ("adagrad", "adagrad_row")
    state = _State(layout, l1=lam1 > 0, adagrad=ada, avg_start=avg_start,
                   rows=rule == "adagrad_row", n_edge=edges.n_attributes)
    settings = SGDSettings(batch_size=batch, power=power)
    for order in epochs:
        losses = _epoch(state, data, np.asarray(order), settings, eta0, lam, avg_start,
                        np.ones(K * K + 2 * K), n_threads, None, lam1, None,
                        edges=edges)
        assert np.isfinite(losses).all()
    return state


def small_problem(seed, n_seq=9, values=False):
    rng = np.random.default_rng(seed)
    X, y = corpus(rng, n_seq=n_seq, values=values)
    _, _, data, _, edges, layout = prepared(X, y)
    orders = [rng.permutation(n_seq) for _ in range(2)]
    return data, edges, layout, orders


RULES = [  # (rule, power, avg_start, lam1)
    ("calibrated", 0.75, -1.0, 0.0),
    ("calibrated", 0.75, 2.0, 0.0),
    ("calibrated", 1.0, -1.0, 0.0),      # l2sgd's schedule
    ("calibrated", 0.75, 2.0, 0.05),     # asgd with c1 > 0
    ("calibrated", 0.75, -1.0, 0.05),
    ("adagrad", 0.75, 3.0, 0.0),
    ("adagrad_row", 0.75, 3.0, 0.0),
    ("adagrad_row", 0.75, -1.0, 0.0),
]


@pytest.mark.parametrize("rule, power, avg_start, lam1", RULES)
@pytest.mark.parametrize("batch", [1, 4])
def test_sgd_with_transition_attributes_matches_the_dense_reference(rule, power, avg_start,
                                                                   lam1, batch):
    data, edges, layout, orders = small_problem(3, values=rule == "adagrad")
    eta0, lam = 0.6, 0.05
    state = engine(data, edges, layout, orders, batch, rule, eta0, lam, avg_start, lam1,
                   power)
    w_ref, avg_ref = reference(data, edges, orders, batch, rule, eta0, lam, avg_start, lam1,
                               power)
    it = state.iterate()
    assert np.abs(w_ref[2]).max() > 0.05     # the transition attributes did move
    np.testing.assert_allclose(it.state, w_ref[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(it.chain, w_ref[1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(state.edge_weights(False), w_ref[2], rtol=RTOL, atol=ATOL)
    if lam1 > 0:
        assert (w_ref[2] == 0).any() and (state.edge_weights(False) == 0).any()
    if avg_ref is not None:
        av = state.average()
        np.testing.assert_allclose(av.state, avg_ref[0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(av.chain, avg_ref[1], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(state.edge_weights(True), avg_ref[2], rtol=RTOL,
                                   atol=ATOL)


def test_the_reference_gradient_matches_finite_differences():
    # Of the log-likelihood computed by fastcrf._edges.log_likelihood (the compiled
    # driver SGD's calibration reads), at random weights.
    data, edges, layout, _ = small_problem(4, values=True)
    rng = np.random.default_rng(0)
    A, F, K = data.features.n_attributes, edges.n_attributes, data.n_labels
    w = [rng.normal(size=(A, K)), rng.normal(size=K * K + 2 * K),
         rng.normal(size=(F, K, K))]
    index = np.arange(data.n_sequences)

    def ll(v):
        return _edges.log_likelihood(data, edges, layout, layout.from_dense(v[0]), v[1],
                                     v[2])

    value, g = gradient(data, edges, index, *w)
    assert ll(w) == pytest.approx(value, rel=1e-12)
    h = 1e-6
    for i in range(3):
        flat = w[i].reshape(-1)
        for j in rng.choice(flat.size, size=min(8, flat.size), replace=False):
            plus = [x.copy() for x in w]
            minus = [x.copy() for x in w]
            plus[i].reshape(-1)[j] += h
            minus[i].reshape(-1)[j] -= h
            fd = (ll(plus) - ll(minus)) / (2 * h)
            assert fd == pytest.approx(g[i].reshape(-1)[j], abs=1e-6)


@pytest.mark.parametrize("rule", ["calibrated", "adagrad", "adagrad_row"])
def test_sgd_engine_with_transition_attributes_is_bitwise_across_threads(rule):
    data, edges, layout, orders = small_problem(5, n_seq=30)
    runs = [engine(data, edges, layout, orders, 3, rule, 0.5, 0.05, 4.0, n_threads=n)
            for n in (1, 2, 3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.W, runs[0].W)
        np.testing.assert_array_equal(other.What, runs[0].What)
        np.testing.assert_array_equal(other.U, runs[0].U)
        np.testing.assert_array_equal(other.V, runs[0].V)


# --------------------------------------------------------------------------- #
# The perceptron                                                               #
# --------------------------------------------------------------------------- #

def reference_perceptron(data, edges, epochs):
    """Dense averaged perceptron, decoded by the dense API's per-position Viterbi."""
    A, F, K = data.features.n_attributes, edges.n_attributes, data.n_labels
    KK = K * K
    w = [np.zeros((A, K)), np.zeros(KK + 2 * K), np.zeros((F, K, K))]
    wsum = [np.zeros_like(x) for x in w]
    c = 0
    for order in epochs:
        for s in order:
            em, tr = lattice(data, edges, s, *w)
            path, _ = fastcrf.viterbi(em[None], tr[None], w[1][KK:KK + K], w[1][KK + K:])
            path = [int(k) for k in path[0]]
            t0 = data.features.seq_offsets[s]
            gold = [int(k) for k in data.labels[t0:t0 + len(path)]]
            c += 1
            if path == gold:
                continue
            d = [np.zeros_like(x) for x in w]
            for seq, sign in ((gold, 1.0), (path, -1.0)):
                for t, k in enumerate(seq):
                    ids, vals = _entries(data.features, t0 + t)
                    for a, v in zip(ids, vals):
                        d[0][a, k] += sign * v
                    if t:
                        d[1][seq[t - 1] * K + k] += sign
                        ids, vals = _entries(edges, t0 + t)
                        for f, v in zip(ids, vals):
                            d[2][f, seq[t - 1], k] += sign * v
                d[1][KK + seq[0]] += sign
                d[1][KK + K + seq[-1]] += sign
            for i in range(3):
                w[i] += d[i]
                wsum[i] += c * d[i]
    return [x - xs / (c + 1) for x, xs in zip(w, wsum)]


def test_perceptron_with_transition_attributes_matches_the_dense_reference():
    data, edges, layout, _ = small_problem(6, n_seq=12)
    rng = np.random.default_rng(1)
    epochs = [rng.permutation(12) for _ in range(3)]

    class Orders:   # the trainer's shuffles, replayed
        def __init__(self):
            self.it = iter(epochs)

        def permutation(self, n):
            return next(self.it)

    K = data.n_labels
    weights, _ = fit_online(data, OnlineSettings(algorithm="ap", max_iterations=3),
                            layout=layout, chain_mask=np.ones(K * K + 2 * K),
                            random_state=Orders(), edges=edges)
    ref = reference_perceptron(data, edges, epochs)
    assert np.abs(ref[2]).max() > 0
    np.testing.assert_allclose(layout.to_dense(weights.state), ref[0], atol=1e-12)
    np.testing.assert_allclose(weights.chain, ref[1], atol=1e-12)
    np.testing.assert_allclose(weights.edge, ref[2], atol=1e-12)


# --------------------------------------------------------------------------- #
# Through the estimator                                                        #
# --------------------------------------------------------------------------- #

def relation_corpus(rng, n_seq):
    """A token's label is the previous one when its ``E:rel`` attribute says 'same',
    the other one when 'flip'; the words carry only the first label.  Only a
    transition conditioned on the attribute fits."""
    X, y = [], []
    for _ in range(n_seq):
        labels = [str(rng.choice(["P", "Q"]))]
        seq = [{"w": "first" + labels[0]}]
        for _ in range(int(rng.integers(1, 8))):
            same = rng.random() < 0.5
            labels.append(labels[-1] if same else ("Q" if labels[-1] == "P" else "P"))
            seq.append({"w": "x", "E:rel=" + ("same" if same else "flip"): 1.0})
        X.append(seq)
        y.append(labels)
    return X, y


ALGORITHMS = [("asgd", {}), ("asgd", {"learning_rate": "adagrad"}),
              ("asgd", {"learning_rate": "calibrated"}),
              ("asgd", {"learning_rate": "calibrated", "c1": 0.05}),
              ("l2sgd", {"max_iterations": 30}), ("ap", {"max_iterations": 20}),
              ("pa", {"max_iterations": 20}), ("arow", {"max_iterations": 20})]


@pytest.fixture(scope="module")
def relation():
    rng = np.random.default_rng(0)
    return relation_corpus(rng, 300), relation_corpus(rng, 100)


def _accuracy(crf, X, y):
    pred = crf.predict(X)
    return np.mean([a == b for s, p in zip(y, pred) for a, b in zip(s, p)])


@pytest.mark.parametrize("algorithm, params", ALGORITHMS)
def test_transition_attributes_learn_what_plain_transitions_cannot(relation, algorithm,
                                                                  params):
    (X, y), (Xt, yt) = relation
    with_edges = CRF(algorithm=algorithm, transition_prefix="E:", random_state=0,
                     **params).fit(X, y)
    plain = CRF(algorithm=algorithm, random_state=0, **params).fit(X, y)
    assert _accuracy(with_edges, Xt, yt) > 0.97
    assert _accuracy(plain, Xt, yt) < 0.85
    assert with_edges._model.edge_weights.any()


@pytest.mark.parametrize("algorithm, params", ALGORITHMS)
def test_transition_attribute_fits_are_bitwise_across_n_jobs(relation, algorithm, params):
    (X, y), _ = relation
    fits = [CRF(algorithm=algorithm, transition_prefix="E:", random_state=1, n_jobs=n,
                **params).fit(X, y)._model for n in (1, 2)]
    np.testing.assert_array_equal(fits[0].edge_weights, fits[1].edge_weights)
    np.testing.assert_array_equal(fits[0].state, fits[1].state)
    np.testing.assert_array_equal(fits[0].chain, fits[1].chain)


def test_sgd_model_with_transition_attributes_survives_save_and_load(relation, tmp_path):
    (X, y), (Xt, _) = relation
    crf = CRF(transition_prefix="E:", random_state=0).fit(X, y)
    crf.save(tmp_path / "m.npz")
    back = CRF.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back._model.edge_weights, crf._model.edge_weights)
    assert back.predict(Xt) == crf.predict(Xt)
    np.testing.assert_array_equal(back.predict_marginals(Xt)[0][1]["P"],
                                  crf.predict_marginals(Xt)[0][1]["P"])


def test_cli_train_learns_b_lines_with_a_non_lbfgs_algorithm(capsys, tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    for X, y in zip(*relation_corpus(rng, 150)):
        rows.append([(tok["w"], next((k[6:] for k in tok if k.startswith("E:")), "same"),
                      label) for tok, label in zip(X, y)])
    write_conll(tmp_path / "train.txt", rows)
    (tmp_path / "macros").write_text("U00:%x[0,0]\nB01:%x[0,1]\n")
    for algorithm in ("asgd", "ap"):
        model = tmp_path / f"{algorithm}.npz"
        code, _, err = run_cli(capsys, "train", "-q", "-a", algorithm, "-t",
                               tmp_path / "macros", "-m", model, tmp_path / "train.txt")
        assert code == 0, err
        fitted = CRF.load(model)
        assert fitted.algorithm == algorithm
        names = set(fitted._model.edge_vocabulary.names)
        assert {"B01:same", "B01:flip"} <= names
        code, out, err = run_cli(capsys, "tag", "-m", model, tmp_path / "train.txt")
        assert code == 0, err
        pred = [line.split()[-1] for line in out.splitlines() if line]
        gold = [r[2] for seq in rows for r in seq]
        assert np.mean([a == b for a, b in zip(pred, gold)]) > 0.97


def bio_corpus(rng, n_seq):
    """BIO labels from a chain over the allowed moves; a token's transition attribute
    names the move into it most of the time, a random one otherwise."""
    moves = {"O": ["O", "B-X"], "B-X": ["I-X", "O", "B-X"], "I-X": ["I-X", "O", "B-X"]}
    X, y = [], []
    for _ in range(n_seq):
        labels = [str(rng.choice(["O", "B-X"]))]
        seq = [{"w": "first" + labels[0]}]
        for _ in range(int(rng.integers(1, 8))):
            labels.append(str(rng.choice(moves[labels[-1]])))
            hint = labels[-1] if rng.random() < 0.8 else str(rng.choice(["O", "B-X", "I-X"]))
            seq.append({"w": "x", "E:into=" + hint: 1.0})
        X.append(seq)
        y.append(labels)
    return X, y


@pytest.mark.parametrize("algorithm, params", [("lbfgs", {"max_iterations": 40})]
                         + ALGORITHMS[:2] + ALGORITHMS[3:6] + ALGORITHMS[7:])
def test_training_constraints_with_transition_attributes(algorithm, params, tmp_path):
    rng = np.random.default_rng(4)
    X, y = bio_corpus(rng, 200)
    Xt, _ = bio_corpus(rng, 60)
    # Test tokens whose attributes ask for a forbidden move (O -> I-X) as often as not.
    for seq in Xt:
        for tok in seq[1:]:
            if rng.random() < 0.5:
                tok.clear()
                tok.update({"w": "x", "E:into=I-X": 1.0})
    crf = CRF(algorithm=algorithm, transition_prefix="E:", constraints="BIO",
              random_state=0, **params).fit(X, y)
    model = crf._model
    K = len(model.classes)
    o, i = model.classes.index("O"), model.classes.index("I-X")
    # Forbidden pairs never get a weight: their gradient / update is exactly 0.
    assert np.all(model.edge_weights[:, o, i] == 0.0)
    assert np.abs(model.edge_weights).max() > 0.01
    assert model.constraints is not None and model.transitions[o, i] == 0.0
    for labels in crf.predict(Xt):
        assert labels[0] != "I-X"
        assert all(not (a == "O" and b == "I-X") for a, b in zip(labels, labels[1:]))
    crf.save(tmp_path / "m.npz")
    back = CRF.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back._model.constraints, model.constraints)
    assert back.predict(Xt) == crf.predict(Xt)
    # A huge weight on the forbidden pair still cannot make it possible: -inf whatever
    # the transition attributes add (the model applies its constraints).
    f = model.edge_vocabulary.names.index("E:into=I-X")
    model.edge_weights[f, o, i] = 50.0
    for labels in crf.predict(Xt):
        assert all(not (a == "O" and b == "I-X") for a, b in zip(labels, labels[1:]))
    assert K == 3
