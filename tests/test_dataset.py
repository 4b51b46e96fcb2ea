"""fastcrf.Dataset: the streaming build, its files, and fitting / predicting on it."""

import json
import os

import numpy as np
import pytest

from fastcrf import CRF, Dataset
from fastcrf.io import load_conll
from fastcrf.templates import Template

from .crf_data import sample_hmm

TEMPLATE = "U00:%x[0,0]\nU01:%x[-1,0]\nU02:%x[1,0]/%x[0,0]\nU03:%x[0,0]/%x[0,1]\nB"


def corpus(n=120, seed=0):
    """Token dicts with str and real-valued features (so values are not all 1.0)."""
    X, y, _ = sample_hmm(n, n_words=30, seed=seed)
    rng = np.random.default_rng(seed)
    for seq in X:
        for tok in seq:
            if rng.random() < 0.3:
                tok["x"] = float(np.round(rng.normal(), 3))
            tok["sfx"] = tok["w"][-1:]
    return X, y


def weights(crf):
    m = crf._model
    return m.state, m.chain, list(m.vocabulary.names), list(m.classes)


def assert_same_model(a, b):
    sa, ca, na, la = weights(a)
    sb, cb, nb, lb = weights(b)
    assert na == nb and la == lb
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(ca, cb)


@pytest.mark.parametrize("algorithm", ["asgd", "lbfgs"])
@pytest.mark.parametrize("min_freq", [0, 3])
def test_fit_on_dataset_equals_fit_on_lists(algorithm, min_freq):
    X, y = corpus()
    params = dict(algorithm=algorithm, max_iterations=5, random_state=0, min_freq=min_freq)
    ref = CRF(**params).fit(X, y)
    ds = Dataset.from_sequences(iter(X), iter(y), min_freq=min_freq, chunk_size=7)
    got = CRF(**params).fit(ds)
    assert_same_model(ref, got)
    assert got.predict(ds) == ref.predict(X)
    # A min_freq above the dataset's cuts its rarest attributes, as the lists' fit does.
    cut = CRF(**{**params, "min_freq": min_freq + 2}).fit(Dataset.from_sequences(X, y))
    assert_same_model(CRF(**{**params, "min_freq": min_freq + 2}).fit(X, y), cut)


def test_fit_does_not_change_the_dataset():
    X, y = corpus()
    ds = Dataset.from_sequences(X, y)
    before = ds.features.attr_ids.copy()
    CRF(algorithm="asgd", max_iterations=2, random_state=0).fit(ds)
    np.testing.assert_array_equal(ds.features.attr_ids, before)


@pytest.fixture
def conll(tmp_path):
    paths = []
    for k in range(2):
        rows = sample_hmm(60, n_words=25, seed=k)
        path = tmp_path / f"part{k}.txt"
        with open(path, "w") as f:
            for xs, ys in zip(rows[0], rows[1]):
                for tok, label in zip(xs, ys):
                    f.write(f"{tok['w']} P{tok['w'][-1]} {label}\n")
                f.write("\n")
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("algorithm", ["asgd", "lbfgs"])
def test_from_conll_equals_the_template_lists(conll, algorithm):
    template = Template(TEMPLATE)
    X, y = [], []
    for path in conll:
        Xp, yp = load_conll(path)
        X += Xp
        y += yp
    params = dict(algorithm=algorithm, max_iterations=4, random_state=1)
    ref = CRF(**params).fit(template.transform(X), y)
    ds = Dataset.from_conll(conll, TEMPLATE, chunk_size=11)
    assert ds.n_sequences == len(X) and ds.n_tokens == sum(map(len, y))
    assert_same_model(ref, CRF(**params).fit(ds))
    # EncodedSequences with labels: the same weights, attributes named by id.
    names, encoded = template.encode(X)
    by_ids = CRF(**params).fit(encoded, y)
    np.testing.assert_array_equal(by_ids._model.state, ref._model.state)
    named = CRF(**params).fit(Dataset.from_encoded(encoded, y, attributes=names))
    assert_same_model(ref, named)
    # An unlabelled dataset predicts like the lists.
    test = Dataset.from_conll(conll[0], template, label_column=-1)
    assert ref.predict(test) == ref.predict(template.transform(load_conll(conll[0])[0]))


def test_save_and_load(tmp_path, conll):
    ds = Dataset.from_conll(conll, TEMPLATE, min_freq=2)
    ds.save(tmp_path / "d")
    ds.save(tmp_path / "d")  # replaces a dataset directory
    for mmap in (True, False):
        back = Dataset.load(tmp_path / "d", mmap=mmap)
        assert back.attributes == ds.attributes and back.classes == ds.classes
        assert back.min_freq == 2
        for name in ("attr_ids", "values", "token_offsets", "seq_offsets"):
            np.testing.assert_array_equal(getattr(back.features, name),
                                          getattr(ds.features, name))
        np.testing.assert_array_equal(back.labels, ds.labels)
        assert isinstance(back.features.attr_ids, np.memmap) == mmap
        params = dict(algorithm="asgd", max_iterations=3, random_state=0)
        assert_same_model(CRF(**params).fit(ds), CRF(**params).fit(back))
    X, y = corpus(30)
    real = Dataset.from_sequences(X, y)  # real-valued features: values are stored
    real.save(tmp_path / "r")
    np.testing.assert_array_equal(Dataset.load(tmp_path / "r").features.values,
                                  real.features.values)
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="not a dataset directory"):
        ds.save(tmp_path / "other")


def _corrupt(path, name, array):
    np.save(path / f"{name}.npy", array, allow_pickle=True)


@pytest.mark.parametrize("damage, match", [
    (lambda p, d: _corrupt(p, "attr_ids", d.features.attr_ids + 10**6), "attr_ids"),
    (lambda p, d: _corrupt(p, "attr_ids", d.features.attr_ids.astype(np.int64)), "int32"),
    (lambda p, d: _corrupt(p, "token_offsets", d.features.token_offsets[::-1].copy()),
     "token_offsets"),
    (lambda p, d: _corrupt(p, "seq_offsets", np.zeros(d.n_sequences + 1, np.int64)),
     "seq_offsets"),
    (lambda p, d: _corrupt(p, "labels", d.labels + 100), "labels"),
    (lambda p, d: _corrupt(p, "labels", np.array([{"x": 1}], dtype=object)), "valid .npy"),
    (lambda p, d: _corrupt(p, "names_utf8", np.full(5, 255, np.uint8)), "names_offsets"),
    (lambda p, d: (p / "dataset.json").write_text("{"), "JSON"),
    (lambda p, d: (p / "dataset.json").write_text(json.dumps(
        {**json.loads((p / "dataset.json").read_text()), "version": 99})), "version"),
    (lambda p, d: (p / "dataset.json").write_text(json.dumps(
        {**json.loads((p / "dataset.json").read_text()), "n_tokens": 3})), "sizes"),
    (lambda p, d: os.remove(p / "counts.npy"), "missing"),
    (lambda p, d: (p / "counts.npy").write_bytes(b"\x93NUMPY garbage"), "valid .npy"),
])
def test_load_refuses_a_damaged_directory(tmp_path, conll, damage, match):
    ds = Dataset.from_conll(conll, TEMPLATE)
    ds.save(tmp_path / "d")
    damage(tmp_path / "d", ds)
    with pytest.raises(ValueError, match=match):
        Dataset.load(tmp_path / "d")


def test_bad_input_names_the_argument(tmp_path, conll):
    X, y = corpus(20)
    with pytest.raises(ValueError, match="same number of sequences"):
        Dataset.from_sequences(X, y[:-1])
    bad = X[:7] + [[{"w": float("nan")}]] + X[7:]
    with pytest.raises(ValueError, match=r"X\[7\]"):
        Dataset.from_sequences(bad, chunk_size=3)
    with pytest.raises(ValueError, match="no sequences"):
        Dataset.from_sequences([])
    with pytest.raises(TypeError, match="chunk_size"):
        Dataset.from_sequences(X, y, chunk_size="10")
    with pytest.raises(TypeError, match="template"):
        Dataset.from_conll(conll, 3)
    with pytest.raises(ValueError, match="column 4"):
        Dataset.from_conll(conll, "U00:%x[0,4]")
    unlabelled = Dataset.from_sequences(X)
    with pytest.raises(ValueError, match="without labels"):
        CRF().fit(unlabelled)
    with pytest.raises(ValueError, match="y must be None"):
        CRF().fit(Dataset.from_sequences(X, y), y)
    with pytest.raises(ValueError, match="y is required"):
        CRF().fit(X)
    with pytest.raises(ValueError, match="not a dataset directory"):
        Dataset.load(tmp_path)


def test_dev_set_as_dataset():
    X, y = corpus(80)
    ds, dev = Dataset.from_sequences(X[:60], y[:60]), Dataset.from_sequences(X[60:], y[60:])
    params = dict(algorithm="asgd", max_iterations=3, random_state=0)
    a = CRF(**params).fit(ds, X_dev=dev)
    b = CRF(**params).fit(X[:60], y[:60], X[60:], y[60:])
    dev_a = [e["dev_accuracy"] for e in a.training_log_.iterations]
    assert dev_a == [e["dev_accuracy"] for e in b.training_log_.iterations]
    assert len(dev_a) == 3


def test_cli_encode_then_train_gives_the_list_paths_model(tmp_path, conll, capsys):
    from fastcrf import cli

    tpl = tmp_path / "tpl"
    tpl.write_text(TEMPLATE)
    models = {}
    for how, args in [("lists", ["--lists", "-t", str(tpl)] + conll),
                      ("stream", ["-t", str(tpl)] + conll),
                      ("folder", [str(tmp_path / "ds")])]:
        if how == "folder":
            assert cli.main(["encode", "-t", str(tpl), "-o", str(tmp_path / "ds"), "-q"]
                            + conll) == 0
        model = tmp_path / f"{how}.npz"
        assert cli.main(["train", "-q", "-i", "3", "-m", str(model)] + args) == 0
        models[how] = CRF.load(model)
    for how in ("stream", "folder"):
        assert_same_model(models["lists"], models[how])
        assert models[how].metadata_ == models["lists"].metadata_
    # The model tags with the template stored in it.
    out = tmp_path / "tagged.txt"
    assert cli.main(["tag", "-q", "-m", str(tmp_path / "folder.npz"), "-o", str(out),
                     conll[0]]) == 0
    assert out.read_text().count("\n") > 100
    capsys.readouterr()
    assert cli.main(["train", "-t", str(tpl), str(tmp_path / "ds")]) == 1
    assert "give no -t" in capsys.readouterr().err
    (tmp_path / "ds" / "labels.npy").write_bytes(b"junk")
    assert cli.main(["train", str(tmp_path / "ds")]) == 1
    assert "labels.npy" in capsys.readouterr().err


def test_cli_dataset_folder_keeps_its_column_layout_for_dev(tmp_path, conll, capsys):
    # Labels in column 0: the folder stores that, and the dev file is read the same way.
    from fastcrf import cli

    tpl = tmp_path / "tpl"
    tpl.write_text("U00:%x[0,0]\nU01:%x[0,1]\nB")
    first = []
    for path in conll:
        rows = [line.split() for line in open(path).read().splitlines()]
        first.append(tmp_path / f"first-{os.path.basename(path)}")
        first[-1].write_text("".join(" ".join([r[-1], *r[:-1]]) + "\n" if r else "\n"
                                     for r in rows))
    folder = tmp_path / "ds0"
    assert cli.main(["encode", "-q", "--label-column", "0", "-t", str(tpl), "-o",
                     str(folder), str(first[0])]) == 0
    assert cli.main(["train", "-i", "20", "-a", "lbfgs", "--dev", str(first[1]),
                     str(folder)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("dev ")[1].split("accuracy ")[1].split("%")[0])
    assert accuracy > 50, out
    for flag in (["--label-column", "0"], ["--sep", " "], ["--lists"]):
        assert cli.main(["train", *flag, str(folder)]) == 1
        assert f"give no {flag[0]}" in capsys.readouterr().err
