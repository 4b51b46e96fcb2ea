import numpy as np
import pytest

import fastcrf
from fastcrf.datasets import make_conll_file, make_sequences
from fastcrf.io import load_conll
from fastcrf.metrics import chunk_scores, flat_accuracy_score


def test_shapes_and_format():
    X, y = make_sequences(50, n_labels=4, n_attributes=30, length=(2, 9), random_state=0)
    assert len(X) == len(y) == 50
    assert all(2 <= len(s) <= 9 and len(s) == len(t) for s, t in zip(X, y))
    assert {lab for s in y for lab in s} <= {"L0", "L1", "L2", "L3"}
    tok = X[0][0]
    assert tok[0].startswith("w=") and tok[1] == "w[-1]=BOS" and tok[2].startswith("w[+1]=")
    assert X[0][-1][2] == "w[+1]=EOS"
    X, y = make_sequences(5, length=4, context=2, return_labels_as="int", random_state=1)
    assert len(X[0][0]) == 5 and isinstance(y[0][0], int)
    assert all(len(s) >= 1 for s in X)


def test_deterministic():
    a = make_sequences(20, random_state=3)
    assert a == make_sequences(20, random_state=3)
    assert a != make_sequences(20, random_state=4)
    g = np.random.default_rng(3)
    assert make_sequences(20, random_state=g) == a


def test_bio_labels_are_valid_chunks():
    _, y = make_sequences(200, n_labels=3, scheme="BIO", random_state=0)
    labels = {lab for s in y for lab in s}
    assert labels <= {"O", "B-L0", "I-L0", "B-L1", "I-L1", "B-L2", "I-L2"}
    assert any(lab.startswith("I-") for lab in labels)
    for s in y:
        for prev, cur in zip(["O"] + s, s):
            if cur.startswith("I-"):
                assert prev[2:] == cur[2:] and prev != "O"
    # Valid BIO: every chunk counted once, so scoring y against itself is perfect.
    s = chunk_scores(y, y)
    assert s.f1 == 1.0 and s.n_true > 100


def test_viterbi_with_true_parameters_beats_per_token():
    _, y, params = make_sequences(300, n_labels=5, n_attributes=40, noise=0.1,
                                  return_params=True, return_labels_as="int", random_state=0)
    K = len(params["labels"])
    assert params["transitions"].shape == (K, K)
    assert np.allclose(params["transitions"].sum(1), 1)
    assert np.allclose(params["emissions"].sum(1), 1)
    T = max(map(len, y))
    em = np.zeros((len(y), T, K))
    for i, w in enumerate(params["words"]):
        em[i, :len(w)] = np.log(params["emissions"][:, w].T)
    lengths = np.array([len(s) for s in y])
    paths, _ = fastcrf.viterbi(em, np.log(params["transitions"]), np.log(params["start"]),
                               np.zeros(K), lengths)
    decoded = [p[:n].tolist() for p, n in zip(paths, lengths)]
    per_token = [np.argmax(e[:n], axis=1).tolist() for e, n in zip(em, lengths)]
    as_str = [[str(v) for v in s] for s in y]
    hmm = flat_accuracy_score(as_str, [[str(v) for v in s] for s in decoded])
    local = flat_accuracy_score(as_str, [[str(v) for v in s] for s in per_token])
    assert hmm > 0.8
    assert hmm > local + 0.1


def test_make_conll_file(tmp_path):
    path = tmp_path / "synth.txt.gz"
    assert make_conll_file(path, 30, n_labels=3, scheme="BIO", random_state=0) == 30
    X, y = load_conll(path)
    assert len(X) == 30 and X[0][0][0].startswith("w")
    _, y2 = make_sequences(30, n_labels=3, scheme="BIO", random_state=0)
    assert y == y2
    with pytest.raises(TypeError, match="return_params"):
        make_conll_file(path, 3, return_params=True)


@pytest.mark.parametrize("kwargs, err, msg", [
    ({"n_sequences": 0}, ValueError, "n_sequences must be >= 1"),
    ({"n_labels": 2.5}, TypeError, "n_labels must be an int"),
    ({"length": (5, 2)}, ValueError, "min <= max"),
    ({"length": (1, 2, 3)}, ValueError, "length must be an int or a"),
    ({"length": 0}, ValueError, "length must be >= 1"),
    ({"noise": 1.5}, ValueError, "noise must be a probability"),
    ({"scheme": "IOBES"}, ValueError, "scheme must be None or 'BIO'"),
    ({"return_labels_as": "bytes"}, ValueError, "return_labels_as"),
])
def test_validation(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        make_sequences(**{"n_sequences": 3, **kwargs})
