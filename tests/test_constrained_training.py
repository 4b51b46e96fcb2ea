"""Training under constraints (``CRF(constraints=...)``), forced decoding (``forced=``)
and the constraints kept in the model file.

The oracle is enumeration of every label path of tiny chains (tests/brute_force.py):
the constrained likelihood's normaliser sums only the allowed paths, so its value and
its gradient (finite differences) are checked against that sum.
"""

import itertools

import numpy as np
import pytest
from brute_force import path_score
from helpers import RANDOM_SEED

import fastcrf
from fastcrf._constraints import allowed_transitions, forbidden_chain
from fastcrf._layout import StateLayout
from fastcrf._persist import load_model
from fastcrf._train.lbfgs import _Objective
from fastcrf._train.sgd import SGDSettings, _epoch, _State
from fastcrf._training import encode_training, split_chain
from fastcrf.datasets import make_sequences

ALGORITHMS = ("lbfgs", "asgd", "l2sgd", "ap", "pa", "arow")


def _invalid_bio(seq):
    """Number of positions whose label BIO forbids after the previous one."""
    prev = "O"
    bad = 0
    for tag in seq:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            bad += 1
        prev = tag
    return bad


def _ok(y, allowed):
    K = allowed.shape[0] - 2
    return (allowed[K, y[0]] and allowed[y[-1], K + 1]
            and all(allowed[a, b] for a, b in itertools.pairwise(y)))


def _paths(T, K, allowed, forced=None):
    """Every path of length T that ``allowed`` and ``forced`` (codes or -1) permit."""
    for y in itertools.product(range(K), repeat=T):
        if allowed is not None and not _ok(y, allowed):
            continue
        if forced is not None and any(f >= 0 and f != k for f, k in zip(forced, y)):
            continue
        yield y


def _brute_ll(ems, golds, chain, allowed):
    """Sum over sequences of log p(gold | x) with the normaliser over allowed paths."""
    K = ems[0].shape[1]
    trans, start, end = split_chain(chain, K)
    total = 0.0
    for em, y in zip(ems, golds):
        scores = [path_score(em, p, trans, start, end)
                  for p in _paths(len(y), K, allowed)]
        total += path_score(em, y, trans, start, end) - np.logaddexp.reduce(scores)
    return total


def _sequences(data):
    """Per sequence: its tokens' attribute ids and its gold label codes."""
    f = data.features
    out = []
    for s in range(data.n_sequences):
        lo, hi = f.seq_offsets[s], f.seq_offsets[s + 1]
        toks = [f.attr_ids[f.token_offsets[t]:f.token_offsets[t + 1]] for t in range(lo, hi)]
        out.append((toks, data.labels[lo:hi].tolist()))
    return out


def _emissions(seqs, W):
    return [np.array([W[ids].sum(axis=0) for ids in toks]) for toks, _ in seqs]


@pytest.fixture(scope="module")
def tiny():
    X, y = make_sequences(5, n_labels=1, n_attributes=6, scheme="BIO", length=(1, 4),
                          random_state=RANDOM_SEED)
    _, classes, data = encode_training(X, y, 0.0, 1)
    return X, y, classes, data


def test_lbfgs_objective_is_the_constrained_likelihood(tiny):
    # Value and gradient of the trainer's objective against enumeration over the
    # allowed paths only; the forbidden scores get no gradient.
    _, _, classes, data = tiny
    K = len(classes)
    allowed = allowed_transitions(classes, "BIO")
    forbidden = forbidden_chain(allowed)
    layout = StateLayout.dense(data.features.n_attributes, K)
    mask = np.where(forbidden, 0.0, 1.0)
    fun = _Objective(data, layout, mask, 0.0, 1, forbidden)
    rng = np.random.default_rng(RANDOM_SEED)
    W = rng.standard_normal((data.features.n_attributes, K))
    chain = np.where(forbidden, 0.0, rng.standard_normal(K * K + 2 * K))
    x = np.concatenate((layout.from_dense(W), chain))
    ll, grad = fun.log_likelihood(x)
    seqs = _sequences(data)
    golds = [y for _, y in seqs]
    assert ll == pytest.approx(_brute_ll(_emissions(seqs, W), golds, chain, allowed),
                               rel=1e-10)
    # Without the constraints the value differs: the test can tell them apart.
    assert abs(ll - _brute_ll(_emissions(seqs, W), golds, chain, None)) > 1e-3
    g_chain = grad[layout.size:]
    assert np.all(g_chain[forbidden] == 0.0)
    h = 1e-6
    for m in np.flatnonzero(~forbidden):
        e = np.zeros_like(chain)
        e[m] = h
        fd = (_brute_ll(_emissions(seqs, W), golds, chain + e, allowed)
              - _brute_ll(_emissions(seqs, W), golds, chain - e, allowed)) / (2 * h)
        assert g_chain[m] == pytest.approx(fd, abs=1e-6)
    g_state = layout.to_dense(grad[:layout.size])
    for a, k in [(0, 0), (1, 2), (2, 1), (3, 0)]:
        E = np.zeros_like(W)
        E[a, k] = h
        fd = (_brute_ll(_emissions(seqs, W + E), golds, chain, allowed)
              - _brute_ll(_emissions(seqs, W - E), golds, chain, allowed)) / (2 * h)
        assert g_state[a, k] == pytest.approx(fd, abs=1e-6)


def test_sgd_step_is_the_constrained_gradient(tiny):
    # Two SGD steps (batch 1, no L2, constant step): the first from w = 0 moves the
    # chain by eta * (observed - expected) with the expectation over allowed paths
    # only; the second visit's loss is -log p(gold) at the weights after the first.
    _, _, classes, data = tiny
    K = len(classes)
    allowed = allowed_transitions(classes, "BIO")
    forbidden = forbidden_chain(allowed)
    layout = StateLayout.dense(data.features.n_attributes, K)
    mask = np.where(forbidden, 0.0, 1.0)
    state = _State(layout)
    eta = 0.3
    settings = SGDSettings(algorithm="asgd", batch_size=1, power=1.0, max_iterations=1,
                           period=10, delta=1e-6, eta0=eta, c1=0.0, c2=0.0,
                           averaging=False, calibration_eta=0.1, calibration_rate=2.0,
                           calibration_samples=10, calibration_candidates=10,
                           calibration_max_trials=20)
    seqs = _sequences(data)
    losses = [_epoch(state, data, [s], settings, eta, 0.0, -1.0, mask, 1,
                     forbidden=forbidden)[0] for s in (0,)]
    chain0 = np.zeros(K * K + 2 * K)
    ems = _emissions(seqs, np.zeros((data.features.n_attributes, K)))
    h = 1e-6
    expected = np.zeros_like(chain0)
    for m in np.flatnonzero(~forbidden):
        e = np.zeros_like(chain0)
        e[m] = h
        expected[m] = eta * (_brute_ll(ems[:1], [seqs[0][1]], chain0 + e, allowed)
                             - _brute_ll(ems[:1], [seqs[0][1]], chain0 - e, allowed)) / (2 * h)
    np.testing.assert_allclose(state.V, expected, atol=1e-6)
    assert losses[0] == pytest.approx(-_brute_ll(ems[:1], [seqs[0][1]], chain0, allowed))
    assert losses[0] == pytest.approx(np.log(len(list(_paths(len(seqs[0][1]), K, allowed)))))
    w = state.weights(False)
    W1 = layout.to_dense(w.state)
    losses.append(_epoch(state, data, [1], settings, eta, 0.0, -1.0, mask, 1,
                         forbidden=forbidden)[0])
    assert losses[1] == pytest.approx(
        -_brute_ll(_emissions(seqs, W1)[1:2], [seqs[1][1]], w.chain, allowed), rel=1e-9)


@pytest.fixture(scope="module")
def ner():
    X, y = make_sequences(60, n_labels=3, scheme="BIO", noise=0.6, random_state=0)
    Xt, yt = make_sequences(80, n_labels=3, scheme="BIO", noise=0.6, random_state=1)
    return X, y, Xt, yt


@pytest.mark.filterwarnings("ignore:.*too few to converge")
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_constrained_fit_every_trainer(ner, algorithm, tmp_path):
    X, y, Xt, _ = ner
    kw = {"algorithm": algorithm, "max_iterations": 5, "random_state": 0}
    crf = fastcrf.CRF(constraints="BIO", n_jobs=1, **kw).fit(X, y)
    allowed = allowed_transitions(crf.classes_, "BIO")
    model = crf._fitted_model()
    np.testing.assert_array_equal(model.constraints, allowed)
    forbidden = forbidden_chain(allowed)
    assert np.all(model.chain[forbidden] == 0.0)
    assert np.all(np.isfinite(model.chain))
    assert np.any(model.chain[~forbidden] != 0.0)
    predicted = crf.predict(Xt)
    assert sum(map(_invalid_bio, predicted)) == 0
    for seq in crf.predict_marginals(Xt[:5]):
        for row in seq:
            assert sum(row.values()) == pytest.approx(1.0)
    # Thread counts: bitwise the same model.
    other = fastcrf.CRF(constraints="BIO", n_jobs=2, **kw).fit(X, y)
    np.testing.assert_array_equal(other._fitted_model().chain, model.chain)
    np.testing.assert_array_equal(other._fitted_model().state, model.state)
    # The model file keeps the constraints.
    path = tmp_path / "m.crf"
    crf.save(path)
    loaded = fastcrf.CRF.load(path)
    np.testing.assert_array_equal(loaded._fitted_model().constraints, allowed)
    assert loaded.predict(Xt) == predicted
    assert loaded.get_params()["constraints"] == "BIO"


def test_constrained_training_differs_from_unconstrained(ner):
    X, y, Xt, _ = ner
    free = fastcrf.CRF(algorithm="lbfgs", max_iterations=5, c2=0.01).fit(X, y)
    bio = fastcrf.CRF(algorithm="lbfgs", max_iterations=5, c2=0.01,
                      constraints="BIO").fit(X, y)
    assert sum(map(_invalid_bio, free.predict(Xt))) > 0
    assert sum(map(_invalid_bio, bio.predict(Xt))) == 0
    assert not np.allclose(free.transition_weights_, bio.transition_weights_)
    # A per-call constraint adds to the model's: forbidding O -> O as well.
    both = bio.predict(Xt, constraints={("O", "O"): False})
    for seq in both:
        assert not any(a == "O" == b for a, b in itertools.pairwise(seq))
        assert _invalid_bio(seq) == 0


def test_auto_infers_the_scheme(ner):
    X, y, _, _ = ner
    crf = fastcrf.CRF(algorithm="lbfgs", max_iterations=3, constraints="auto").fit(X, y)
    np.testing.assert_array_equal(crf._fitted_model().constraints,
                                  allowed_transitions(crf.classes_, "BIO"))
    bioes = [["S-A", "O", "B-A", "E-A"], ["B-A", "I-A", "E-A"]]
    Xs = [[{"w": str(i)} for i in range(len(s))] for s in bioes]
    crf = fastcrf.CRF(algorithm="lbfgs", max_iterations=3, constraints="auto").fit(Xs, bioes)
    np.testing.assert_array_equal(crf._fitted_model().constraints,
                                  allowed_transitions(crf.classes_, "BIOES"))
    with pytest.raises(ValueError, match="constraints='auto'"):
        fastcrf.CRF(algorithm="lbfgs", constraints="auto").fit(Xs, [["N", "V", "N", "V"],
                                                                    ["N", "N", "V"]])


def test_bad_constraints_and_labels(ner):
    X, y, _, _ = ner
    with pytest.raises(ValueError, match="constraints must be one of"):
        fastcrf.CRF(constraints="BIOX").fit(X, y)
    with pytest.raises(TypeError, match="constraints must be"):
        fastcrf.CRF(constraints=3).fit(X, y)
    with pytest.raises(ValueError, match=r"constraints: allowed must have shape \(5, 5\)"):
        fastcrf.CRF(algorithm="lbfgs", constraints=np.ones((2, 2), bool)).fit(X, y)
    with pytest.raises(ValueError, match="do not have|does not have"):
        fastcrf.CRF(constraints={("O", "I-NOPE"): False}).fit(X, y)
    bad = [list(s) for s in y]
    bad[2][0] = "I-L0"
    with pytest.raises(ValueError, match=r"y\[2\] starts with 'I-L0'"):
        fastcrf.CRF(algorithm="lbfgs", constraints="BIO").fit(X, bad)
    from fastcrf._train import TRAINERS
    from fastcrf._train.base import Trainer

    TRAINERS["plain"] = Trainer("plain", TRAINERS["lbfgs"].Settings,
                                lambda data, settings, **kw: None,
                                defaults=TRAINERS["lbfgs"].defaults)
    try:
        with pytest.raises(ValueError, match="'plain' does not support constraints"):
            fastcrf.CRF(algorithm="plain", constraints="BIO").fit(X, y)
    finally:
        del TRAINERS["plain"]


def test_model_file_versions(ner, tmp_path):
    X, y, _, _ = ner
    plain = fastcrf.CRF(algorithm="lbfgs", max_iterations=3).fit(X, y)
    bio = fastcrf.CRF(algorithm="lbfgs", max_iterations=3, constraints="BIO").fit(X, y)
    plain.save(tmp_path / "plain.crf")
    bio.save(tmp_path / "bio.crf")
    with np.load(tmp_path / "plain.crf") as f:
        assert "allowed" not in f.files
        assert b'"format_version": 2' in f["header.json"].tobytes()
    with np.load(tmp_path / "bio.crf") as f:
        assert f["allowed"].dtype == bool
        assert b'"format_version": 5' in f["header.json"].tobytes()
        arrays = {name: f[name] for name in f.files}
    assert load_model(tmp_path / "plain.crf")[0].constraints is None
    arrays["allowed"] = arrays["allowed"][:-1]
    with open(tmp_path / "broken.crf", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="'allowed'"):
        load_model(tmp_path / "broken.crf")
    with pytest.raises(ValueError, match="no place for constraints"):
        bio.save(tmp_path / "bio.crfsuite", format="crfsuite")


# Forced decoding ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    X, y = make_sequences(40, n_labels=1, n_attributes=8, scheme="BIO", noise=0.5,
                          length=(2, 5), random_state=4)
    crf = fastcrf.CRF(algorithm="lbfgs", max_iterations=10, c2=0.01).fit(X, y)
    assert sorted(crf.classes_) == ["B-L0", "I-L0", "O"]
    Xt, _ = make_sequences(6, n_labels=1, n_attributes=8, scheme="BIO", noise=0.5,
                           length=(2, 5), random_state=5)
    return crf, Xt


def _model_emissions(crf, seq):
    index = {c: k for k, c in enumerate(crf.classes_)}
    W = crf.state_features_
    return np.array([[sum(W.get((f, label), 0.0) for f in tok) for label in index]
                     for tok in seq])


def _forced_codes(crf, forced):
    index = {c: k for k, c in enumerate(crf.classes_)}
    return [-1 if f is None else index[f] for f in forced]


@pytest.mark.parametrize("constraints", [None, "BIO"])
def test_forced_against_enumeration(small_model, constraints):
    crf, Xt = small_model
    K = len(crf.classes_)
    rng = np.random.default_rng(RANDOM_SEED)
    forced = []
    for seq in Xt:
        f = [None] * len(seq)
        t = int(rng.integers(len(seq)))
        f[t] = "B-L0"
        forced.append(f)
    forced[1] = None   # a sequence left free
    allowed = None if constraints is None else allowed_transitions(crf.classes_, "BIO")
    paths = crf.predict(Xt, forced=forced, constraints=constraints)
    marg = crf.predict_proba(Xt, forced=forced, constraints=constraints)
    nbest = crf.predict_nbest(Xt, 3, forced=forced, constraints=constraints)
    mbr = crf.predict(Xt, forced=forced, constraints=constraints, decoder="mbr")
    trans, start, end = crf.transition_weights_, crf.start_weights_, crf.end_weights_
    for b, seq in enumerate(Xt):
        em = _model_emissions(crf, seq)
        codes = None if forced[b] is None else _forced_codes(crf, forced[b])
        cand = list(_paths(len(seq), K, allowed, codes))
        scores = np.array([path_score(em, y, trans, start, end) for y in cand])
        order = np.argsort(-scores, kind="stable")
        best = [crf.classes_[k] for k in cand[order[0]]]
        assert paths[b] == best
        logz = np.logaddexp.reduce(scores)
        p = np.exp(scores - logz)
        node = np.zeros((len(seq), K))
        for prob, y in zip(p, cand):
            node[np.arange(len(seq)), list(y)] += prob
        np.testing.assert_allclose(marg[b], node, atol=1e-10)
        for r, (labels, prob) in enumerate(nbest[b]):
            assert labels == [crf.classes_[k] for k in cand[order[r]]]
            assert prob == pytest.approx(p[order[r]], rel=1e-9)
        if forced[b] is not None:
            for t, f in enumerate(forced[b]):
                if f is not None:
                    assert paths[b][t] == f == mbr[b][t]
                    assert marg[b][t, crf.classes_.index(f)] == pytest.approx(1.0)


def test_forced_errors(small_model):
    crf, Xt = small_model
    with pytest.raises(ValueError, match="forced has 1 sequences"):
        crf.predict(Xt, forced=[[None]])
    with pytest.raises(ValueError, match=r"forced\[0\] must be a list"):
        crf.predict(Xt, forced=[["O"]] + [None] * (len(Xt) - 1))
    wrong = [None] * len(Xt)
    wrong[2] = ["NOPE"] + [None] * (len(Xt[2]) - 1)
    with pytest.raises(ValueError, match=r"forced\[2\]\[0\] is 'NOPE'"):
        crf.predict_marginals(Xt, forced=wrong)
    with pytest.raises(TypeError, match="forced must be"):
        crf.predict(Xt, forced="O")
    # A forced label the constraints rule out leaves no path.
    impossible = [None] * len(Xt)
    impossible[0] = ["O", "B-L0"] + [None] * (len(Xt[0]) - 2)
    with pytest.raises(ValueError, match="no possible|without any"):
        crf.predict(Xt, forced=impossible, constraints={("O", "B-L0"): False})


def test_sorted_labels_permutes_the_constraints(ner):
    # crf_learn's label sort (CRF++'s order) carries the constraints with the labels.
    from fastcrf._crfpp_cli import sorted_labels

    X, y, Xt, _ = ner
    crf = fastcrf.CRF(algorithm="lbfgs", max_iterations=5, constraints="BIO").fit(X, y)
    model = crf._fitted_model()
    permuted = sorted_labels(model)
    assert permuted is not model and model.classes != sorted(model.classes)
    assert permuted.classes == sorted(model.classes)
    np.testing.assert_array_equal(permuted.constraints,
                                  allowed_transitions(permuted.classes, "BIO"))
    assert permuted.predict(Xt) == model.predict(Xt)
