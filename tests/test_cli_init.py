"""``fastcrf train --init MODEL``: continue training a saved model (its weights, its
labels and, without ``-t``, its template)."""

import numpy as np
import pytest
from helpers import run_cli as run

from fastcrf import CRF
from fastcrf.datasets import make_sequences
from fastcrf.io import write_conll

TEMPLATE = "U00:%x[-1,0]\nU01:%x[0,0]\nU02:%x[1,0]\nB\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("init")
    _, y, params = make_sequences(200, n_labels=3, scheme="BIO", length=(4, 12),
                                  return_params=True, random_state=0)
    rows = [[(f"w{w}", label) for w, label in zip(ws.tolist(), labels)]
            for ws, labels in zip(params["words"], y)]
    paths = {"a": folder / "a.txt", "b": folder / "b.txt", "t": folder / "template",
             "odd": folder / "odd.txt"}
    write_conll(paths["a"], rows[:100])
    write_conll(paths["b"], rows[100:])
    write_conll(paths["odd"], [[("w1", "Z-NEW")]])
    paths["t"].write_text(TEMPLATE)
    return paths


def test_init_continues_from_the_saved_model(files, capsys, tmp_path):
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    status, _, err = run(capsys, "train", "-t", files["t"], "-m", first, "-a", "lbfgs",
                         "-q", files["a"])
    assert status == 0, err
    status, out, err = run(capsys, "train", "--init", first, "-m", second, "-a", "lbfgs",
                           "-i", 1, files["a"])
    assert status == 0, err
    epochs = [line for line in out.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 1
    a, b = CRF.load(first), CRF.load(second)
    assert b.classes_ == a.classes_
    assert b.metadata_["fastcrf_cli"]["template"] == TEMPLATE   # the model's own
    # One iteration from the optimum stays there; from 0 it would not.
    np.testing.assert_allclose(b.transition_weights_, a.transition_weights_, atol=1e-2)
    # And on the other half: the first model's attributes are kept.
    status, _, err = run(capsys, "train", "--init", first, "-m", second, "-q", files["b"])
    assert status == 0, err
    assert set(a.attributes_) <= set(CRF.load(second).attributes_)


def test_init_errors_are_one_line_and_new_labels_extend(files, capsys, tmp_path):
    status, _, err = run(capsys, "train", "--init", tmp_path / "none.npz", files["a"])
    assert status == 1 and "no such model file" in err and "Traceback" not in err
    model, more = tmp_path / "m.npz", tmp_path / "more.npz"
    assert run(capsys, "train", "-t", files["t"], "-m", model, "-q", files["a"])[0] == 0
    status, _, err = run(capsys, "train", "--init", model, "-m", more, "-q", files["odd"])
    assert status == 0, err
    assert CRF.load(more).classes_ == CRF.load(model).classes_ + ["Z-NEW"]
