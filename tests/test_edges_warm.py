"""Transition attributes in a warm start (``warm_start=True``, ``init_model``) and
under training constraints, with algorithm='lbfgs'."""

import itertools

import numpy as np
import pytest
from test_edges import pos_pairs_corpus

import fastcrf
from fastcrf import _edges


def renamed(X, old, new):
    """``X`` with the transition attribute value ``old`` of ``E:rel`` renamed ``new``."""
    return [[{**tok, "E:rel": new if tok.get("E:rel") == old else tok.get("E:rel")}
             for tok in seq] for seq in X]


def test_warm_start_carries_w_and_extends_it(monkeypatch):
    rng = np.random.default_rng(0)
    X, y = pos_pairs_corpus(rng, 60)
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=50,
                      warm_start=True).fit(X, y)
    old = crf._model
    # New data: a new transition attribute value and a new label 'R'.
    X2 = renamed(X, "flip", "turn")
    y2 = [list(seq) for seq in y]
    y2[0][0] = "R"
    seen = {}
    fit = _edges.fit_lbfgs

    def spy(data, edges, settings, **kw):
        seen["init"] = kw["init"]
        return fit(data, edges, settings, **kw)

    monkeypatch.setattr(_edges, "fit_lbfgs", spy)
    crf.set_params(max_iterations=3).fit(X2, y2)
    new = crf._model
    assert new.classes == old.classes + ["R"]   # the model's labels first
    names = new.edge_vocabulary.names
    assert set(names) == {"E:rel:same", "E:rel:turn", "E:rel:flip"}
    W0 = seen["init"].edge
    assert W0.shape == (3, 3, 3)
    for f, name in enumerate(old.edge_vocabulary.names):
        g = names.index(name)
        assert np.array_equal(W0[g, :2, :2], old.edge_weights[f])
        assert not W0[g, 2].any() and not W0[g, :, 2].any()
    assert not W0[names.index("E:rel:turn")].any()
    # The carried W is the starting point: 3 iterations from it still tag the old data.
    assert crf.predict(X) == [list(s) for s in y]


def test_warm_start_needs_the_model_prefix():
    X, y = pos_pairs_corpus(np.random.default_rng(1), 20)
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=5,
                      warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="transition_prefix='E:', got "
                                         "transition_prefix=None"):
        crf.set_params(transition_prefix=None).fit(X, y)
    # A plain model may start a model with transition attributes (W from 0).
    plain = fastcrf.CRF(algorithm="lbfgs", max_iterations=5, warm_start=True).fit(X, y)
    plain.set_params(transition_prefix="E:").fit(X, y)
    assert isinstance(plain._model, _edges.EdgeCRFModel)


def test_training_constraints_with_transition_attributes(tmp_path):
    X, y = pos_pairs_corpus(np.random.default_rng(2), 60)
    # Every sequence ends in a token labelled R; the constraints forbid leaving R.
    X = [seq + [{"w": "end", "E:rel": "end"}] for seq in X]
    y = [seq + ["R"] for seq in y]
    forbid = {("R", "P"): False, ("R", "Q"): False, ("R", "R"): False}
    crf = fastcrf.CRF(algorithm="lbfgs", transition_prefix="E:", max_iterations=30,
                      constraints=forbid).fit(X, y)
    model = crf._model
    r = model.classes.index("R")
    assert model.constraints is not None and not model.transitions[r].any()
    test = [[{"w": "end", "E:rel": "end"}] * 4] + X[:5]
    for pairs in crf.predict_edge_marginals(test):
        assert not pairs[:, r].any()
    for seq, _ in itertools.chain.from_iterable(crf.predict_nbest(test, 4)):
        assert all(a != "R" for a in seq[:-1])
    path = tmp_path / "m.npz"
    crf.save(path)
    loaded = fastcrf.CRF.load(path)
    assert np.array_equal(loaded._model.constraints, model.constraints)
    assert loaded.predict_nbest(test, 4) == crf.predict_nbest(test, 4)


@pytest.mark.filterwarnings("ignore:.*too few to converge")
@pytest.mark.parametrize("algorithm", ["asgd", "pa"])
def test_continuing_an_sgd_or_perceptron_fit_with_transition_attributes_is_refused(algorithm):
    X = [[{"w": "a", "B:s": "1"}, {"w": "b", "B:s": "0"}, {"w": "a", "B:s": "1"}]] * 12
    y = [["A", "B", "A"]] * 12
    crf = fastcrf.CRF(algorithm=algorithm, transition_prefix="B:", max_iterations=2,
              random_state=0)
    crf.fit(X, y)
    before = crf.predict(X)
    # Each refusal names the call that was made, and what works instead.
    with pytest.raises(ValueError, match=r"^partial_fit cannot go on .*"
                                         rf"algorithm='{algorithm}'.*"
                                         r"CRF\(algorithm='lbfgs', warm_start=True\)"):
        crf.partial_fit(X, y)
    with pytest.raises(ValueError) as refused:
        crf.set_params(warm_start=True).fit(X, y)
    message = str(refused.value)
    assert message.startswith("fit with warm_start=True and transition_prefix")
    assert f"not algorithm='{algorithm}'" in message and "partial_fit" not in message
    assert "warm_start=False" in message
    # The refused calls leave the fitted model as it was.
    assert crf.predict(X) == before
    # A first partial_fit (nothing to go on from) is no continuation: it trains.
    fresh = fastcrf.CRF(algorithm=algorithm, transition_prefix="B:", random_state=0)
    fresh.partial_fit(X, y)
    assert isinstance(fresh._model, _edges.EdgeCRFModel)


def test_train_init_with_transition_attributes_needs_lbfgs(tmp_path, capsys):
    from helpers import run_cli

    rows = [[("a", "1", "A"), ("b", "0", "B"), ("a", "1", "A")]] * 12
    (tmp_path / "train.txt").write_text(
        "\n".join("\n".join(" ".join(r) for r in seq) + "\n" for seq in rows))
    (tmp_path / "template").write_text("U00:%x[0,0]\nB01:%x[0,1]\n")
    model = tmp_path / "m.npz"
    status, _, err = run_cli(capsys, "train", "-q", "-i", "3", "-t", tmp_path / "template",
                             "-m", model, tmp_path / "train.txt")
    assert status == 0, err
    status, _, err = run_cli(capsys, "train", "-q", "--init", model, "-a", "asgd",
                             tmp_path / "train.txt")
    assert status == 1
    assert "--init" in err and "-a lbfgs" in err and "not -a asgd" in err
    status, _, err = run_cli(capsys, "train", "-q", "-i", "2", "--init", model,
                             tmp_path / "train.txt")
    assert status == 0, err
