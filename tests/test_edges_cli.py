"""CRF++ template B lines with macros through the command lines: ``fastcrf
crf_learn`` / ``crf_test`` and ``fastcrf train`` / ``tag`` learn and apply
observation-conditioned transitions; a template without any B line learns no
label-transition weights (as CRF++)."""

import numpy as np
import pytest
from helpers import run_cli as run

from fastcrf import CRF
from fastcrf._edges import EdgeCRFModel
from fastcrf._persist import load_model
from fastcrf.io import write_conll

PLAIN = "U00:%x[0,0]\nB\n"
MACROS = "U00:%x[0,0]\nB01:%x[0,1]\n"
NO_B = "U00:%x[0,0]\nU01:%x[0,1]\n"


def relation_rows(rng, n_seq):
    """Rows (word, relation, label): a token's label is the previous one when its
    relation column says 'same', the other label when 'flip'; the words carry
    nothing but the first label.  Only a transition conditioned on column 1 fits."""
    out = []
    for _ in range(n_seq):
        labels = [str(rng.choice(["P", "Q"]))]
        rows = [(f"first{labels[0]}", "same", labels[0])]
        for _ in range(int(rng.integers(1, 7))):
            same = rng.random() < 0.5
            labels.append(labels[-1] if same else ("Q" if labels[-1] == "P" else "P"))
            rows.append(("x", "same" if same else "flip", labels[-1]))
        out.append(rows)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edges_cli")
    rng = np.random.default_rng(0)
    write_conll(folder / "train.txt", relation_rows(rng, 120))
    write_conll(folder / "test.txt", relation_rows(rng, 40))
    for name, text in {"plain": PLAIN, "macros": MACROS, "nob": NO_B}.items():
        (folder / name).write_text(text)
    return folder


def accuracy(out, path):
    gold = [line.split()[2] for line in path.read_text().splitlines() if line]
    pred = [line.split()[-1] for line in out.splitlines() if line]
    assert len(gold) == len(pred)
    return np.mean([a == b for a, b in zip(gold, pred)])


def test_crf_learn_learns_b_lines_with_macros(capsys, files):
    scores = {}
    for name in ("plain", "macros"):
        model = files / f"{name}.model"
        code, _, err = run(capsys, "crf_learn", files / name, files / "train.txt", model)
        assert code == 0, err
        code, out, err = run(capsys, "crf_test", "-m", model, files / "test.txt")
        assert code == 0, err
        scores[name] = accuracy(out, files / "test.txt")
    assert scores["macros"] == 1.0
    assert scores["plain"] < 0.8
    model, _ = load_model(files / "macros.model")
    assert isinstance(model, EdgeCRFModel)
    assert set(model.edge_vocabulary.names) >= {"B01:same", "B01:flip"}
    # No plain B line: no label-transition weights, as CRF++.
    assert np.all(model.transitions == 0)
    # crf_test -c scales the transition attributes with the rest: the same labels.
    code, out, _ = run(capsys, "crf_test", "-c", "3", "-m", files / "macros.model",
                       files / "test.txt")
    assert code == 0 and accuracy(out, files / "test.txt") == 1.0


def test_crf_learn_mira_learns_b_lines_with_macros(capsys, files):
    model = files / "mira.model"
    code, _, err = run(capsys, "crf_learn", "-a", "MIRA", files / "macros",
                       files / "train.txt", model)
    assert code == 0, err
    code, out, err = run(capsys, "crf_test", "-m", model, files / "test.txt")
    assert code == 0, err
    assert accuracy(out, files / "test.txt") == 1.0
    assert isinstance(load_model(model)[0], EdgeCRFModel)


def test_crf_learn_rejects_what_it_cannot_do_with_macros(capsys, files):
    code, _, err = run(capsys, "crf_learn", "-t", files / "macros", files / "train.txt",
                       files / "m2")
    assert code != 0 and "-t" in err


def test_train_and_tag_with_b_lines_with_macros(capsys, files):
    model = files / "train_macros.npz"
    code, _, err = run(capsys, "train", "-q", "-t", files / "macros", "-m", model,
                       files / "train.txt")
    assert code == 0, err
    code, out, err = run(capsys, "tag", "-m", model, files / "test.txt")
    assert code == 0, err
    assert accuracy(out, files / "test.txt") == 1.0
    assert isinstance(CRF.load(model)._model, EdgeCRFModel)


def test_train_without_b_line_learns_no_transitions(capsys, files):
    for name, zero in (("nob", True), ("plain", False)):
        model = files / f"train_{name}.npz"
        code, _, err = run(capsys, "train", "-q", "-a", "lbfgs", "-t", files / name,
                           "-m", model, files / "train.txt")
        assert code == 0, err
        assert np.all(CRF.load(model)._model.transitions == 0) == zero
