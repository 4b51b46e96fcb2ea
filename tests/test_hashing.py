"""Feature hashing (``CRF(hash_features=...)``): the hash is MurmurHash3_x86_32 as
scikit-learn's; a hashed model is the model of the tokens with each name replaced by
its bucket; it keeps no names, survives its file, and works from every input path
(dicts, lists, Dataset, scipy.sparse, CRF++ templates, the command line)."""

import io
import json
import zipfile

import numpy as np
import pytest
from helpers import run_cli

from fastcrf import CRF, Dataset
from fastcrf._features._hashing import bucket_of, murmur3_32
from fastcrf.datasets import make_sequences
from fastcrf.io import load_conll, write_conll
from fastcrf.templates import Template


def test_murmur3_reference_values():
    # MurmurHash3_x86_32 reference values (SMHasher; scikit-learn's test_murmurhash
    # holds the "foo" ones as signed ints: -156908512 and -1322301282).
    assert murmur3_32("", 0) == 0
    assert murmur3_32("", 1) == 0x514E28B7
    assert murmur3_32("foo", 0) == 4138058784
    assert murmur3_32("foo", 42) == 2972666014
    assert murmur3_32("The quick brown fox jumps over the lazy dog", 0) == 0x2E4FF723


def test_murmur3_matches_scikit_learn():
    murmurhash3_32 = pytest.importorskip("sklearn.utils").murmurhash3_32
    rng = np.random.default_rng(0)
    alphabet = list("abcXYZ019:_ =") + ["é", "中", "😀", "ß"]
    names = ["".join(rng.choice(alphabet, size=n)) for n in rng.integers(0, 23, 300)]
    for seed in (0, 1, 2 ** 32 - 1):
        expected = [murmurhash3_32(name, seed, positive=True) for name in names]
        assert [murmur3_32(name, seed) for name in names] == expected
        np.testing.assert_array_equal(bucket_of(names, 1000, seed),
                                      np.array(expected) % 1000)


def _problem(seed=0, n=60):
    X, y = make_sequences(n, n_labels=3, length=(3, 9), random_state=seed)
    return X, y


def _renamed(X, n_buckets, seed):
    """Tokens with every attribute name replaced by its bucket's name, as lists of
    names with their weights (dict tokens) or as name lists."""
    out = []
    for seq in X:
        new_seq = []
        for tok in seq:
            if isinstance(tok, dict):
                names = [f"{k}:{v}" if isinstance(v, str) else k for k, v in tok.items()]
                weights = [1.0 if isinstance(v, str) else float(v) for v in tok.values()]
            else:
                names, weights = list(tok), [1.0] * len(tok)
            buckets = bucket_of(names, n_buckets, seed).tolist()
            new_seq.append([(f"#{b}", w) for b, w in zip(buckets, weights)])
        out.append(new_seq)
    # A token may now list one bucket twice: list tokens of names keep repeats, and
    # dict tokens cannot, so weights go through (name, weight) pairs of list tokens
    # only when they are all 1.
    if all(w == 1.0 for seq in out for tok in seq for _, w in tok):
        return [[[name for name, _ in tok] for tok in seq] for seq in out]
    raise AssertionError("non-unit weights: use a problem with binary attributes")


@pytest.mark.parametrize("n_buckets, seed", [(3, 0), (16, 7), (2 ** 20, 123)])
def test_hashed_model_is_the_model_of_the_bucket_names(n_buckets, seed):
    """Collisions (3 buckets: many, within tokens too) sum the attributes' values."""
    X, y = _problem()
    X = [[[f"{k}:{v}" for k, v in tok.items()] if isinstance(tok, dict) else tok
          for tok in seq] for seq in X]
    hashed = CRF(algorithm="lbfgs", max_iterations=30, hash_features=n_buckets,
                 hash_seed=seed).fit(X, y)
    plain = CRF(algorithm="lbfgs", max_iterations=30).fit(_renamed(X, n_buckets, seed), y)
    assert sorted(hashed.attributes_) == sorted(plain.attributes_)
    assert len(hashed.attributes_) <= n_buckets
    order = [plain.attributes_.index(name) for name in hashed.attributes_]
    # The rows come in another order (ties of counts: first seen vs lower bucket),
    # so sums run in another order: equal to rounding, not bitwise.
    np.testing.assert_allclose(hashed.state_weights_, plain.state_weights_[order],
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(hashed.transition_weights_, plain.transition_weights_,
                               rtol=1e-6, atol=1e-9)
    assert hashed.predict(X) == plain.predict(_renamed(X, n_buckets, seed))
    if n_buckets == 3:
        assert any(len(set(tok)) < len(tok) for seq in _renamed(X, 3, seed) for tok in seq)


def test_seed_changes_the_buckets_and_rows_are_by_decreasing_count():
    X, y = _problem(1)
    a = CRF(algorithm="lbfgs", max_iterations=5, hash_features=64, hash_seed=0).fit(X, y)
    b = CRF(algorithm="lbfgs", max_iterations=5, hash_features=64, hash_seed=1).fit(X, y)
    assert a.vocabulary_.buckets.tolist() != b.vocabulary_.buckets.tolist()
    counts = a.vocabulary_.counts
    assert (np.diff(counts) <= 0).all()


@pytest.mark.filterwarnings("ignore:.*too few to converge")
def test_dict_tokens_with_weights_and_thread_count():
    X, y = _problem(2)
    X = [[{**dict.fromkeys(tok, 1.0), "len": float(i % 3)} for i, tok in enumerate(seq)]
         for seq in X]
    one, two = (CRF(algorithm="asgd", random_state=0, hash_features=32, n_jobs=n,
                    max_iterations=3, learning_rate="calibrated").fit(X, y) for n in (1, 2))
    np.testing.assert_array_equal(one.state_weights_, two.state_weights_)
    assert one.predict(X) == two.predict(X)
    # At prediction, names the training never hashed to a row are dropped.
    assert one.predict([[{"never": "seen", "x": 2.0}]]) == two.predict([[{"other": 1.0}]])


def test_model_file_keeps_buckets_and_no_names(tmp_path):
    X, y = _problem(3)
    crf = CRF(algorithm="lbfgs", max_iterations=10, hash_features=50, hash_seed=9).fit(X, y)
    path = tmp_path / "hashed.npz"
    crf.save(path)
    with zipfile.ZipFile(path) as z:
        header = json.loads(np.load(z.open("header.json.npy")).tobytes())
        attributes = json.loads(np.load(z.open("attributes.json.npy")).tobytes())
    assert header["format_version"] == 3
    assert header["hashing"] == {"function": "murmur3_32", "n_buckets": 50, "seed": 9}
    assert attributes == []
    loaded = CRF.load(path)
    assert loaded.hash_features == 50 and loaded.hash_seed == 9
    np.testing.assert_array_equal(loaded.vocabulary_.buckets, crf.vocabulary_.buckets)
    np.testing.assert_array_equal(loaded.state_weights_, crf.state_weights_)
    assert loaded.predict(X) == crf.predict(X)
    np.testing.assert_array_equal(np.concatenate(loaded.predict_proba(X)),
                                  np.concatenate(crf.predict_proba(X)))
    assert loaded.size_ == path.stat().st_size
    with pytest.raises(ValueError, match="no place for feature hashing"):
        crf.save(tmp_path / "m.crfsuite", format="crfsuite")


def _rewrite(src, dst, **replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            key = item.filename[:-len(".npy")]
            if key in replace:
                buf = io.BytesIO()
                np.save(buf, replace[key])
                zout.writestr(item, buf.getvalue())
            else:
                zout.writestr(item, zin.read(item))


def test_corrupted_hashed_file_is_refused(tmp_path):
    X, y = _problem(4)
    crf = CRF(algorithm="lbfgs", max_iterations=3, hash_features=20).fit(X, y)
    crf.save(tmp_path / "m.npz")
    buckets = crf.vocabulary_.buckets.copy()
    buckets[0] = 20
    _rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", buckets=buckets)
    with pytest.raises(ValueError, match="buckets"):
        CRF.load(tmp_path / "bad.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        header = json.loads(np.load(z.open("header.json.npy")).tobytes())
    header["hashing"]["n_buckets"] = 1
    _rewrite(tmp_path / "m.npz", tmp_path / "bad2.npz", **{"header.json": np.frombuffer(
        json.dumps(header).encode(), dtype=np.uint8)})
    with pytest.raises(ValueError, match="n_buckets"):
        CRF.load(tmp_path / "bad2.npz")


def test_parameters_and_warm_start():
    X, y = _problem(5)
    with pytest.raises(ValueError, match="hash_features must be >= 2"):
        CRF(hash_features=1).fit(X, y)
    with pytest.raises(TypeError, match="hash_features must be an int"):
        CRF(hash_features=2.0).fit(X, y)
    with pytest.raises(ValueError, match="hash_seed must be at most"):
        CRF(hash_features=8, hash_seed=2 ** 32).fit(X, y)
    crf = CRF(algorithm="ap", max_iterations=2, hash_features=8, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="warm_start and partial_fit do not combine"):
        crf.fit(X, y)
    with pytest.raises(ValueError, match="warm_start and partial_fit do not combine"):
        crf.partial_fit(X, y)


def test_dataset_sparse_template_and_dev_set():
    sp = pytest.importorskip("scipy.sparse")
    X, y = _problem(6)
    tokens = X
    params = {"algorithm": "lbfgs", "max_iterations": 10, "hash_features": 40}
    ref = CRF(**params).fit(tokens, y)
    from_dataset = CRF(**params).fit(Dataset.from_sequences(tokens, y))
    np.testing.assert_array_equal(from_dataset.state_weights_, ref.state_weights_)
    # A CSR matrix over the same names, as feature_names.
    names = sorted({name for seq in tokens for tok in seq for name in tok})
    col = {name: j for j, name in enumerate(names)}
    rows = [(t, col[name]) for t, tok in enumerate(tok for seq in tokens for tok in seq)
            for name in tok]
    r, c = np.array(rows).T
    M = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(int(r.max()) + 1, len(names)))
    lengths = [len(seq) for seq in tokens]
    csr = CRF(**params).fit(M, y, lengths=lengths, feature_names=names)
    assert csr.predict(M, lengths=lengths) == ref.predict(tokens)
    # Template rows: the template's attributes are hashed the same way.
    template = Template("U00:%x[0,0]\nU01:%x[-1,0]/%x[0,0]\nB\n")
    raw = [[[tok[0].split("=", 1)[1]] for tok in seq] for seq in tokens]
    tpl = CRF(**params, template=template).fit(raw, y)
    feats = CRF(**params).fit(template.transform(raw), y)
    np.testing.assert_array_equal(tpl.state_weights_, feats.state_weights_)
    _, encoded = template.encode(raw, vocabulary=feats.vocabulary_)
    assert feats.predict(encoded) == tpl.predict(raw)
    # A dev set is encoded into the buckets too.
    dev = CRF(**params).fit(tokens[:40], y[:40], tokens[40:], y[40:])
    assert dev.training_log_.last_iteration["dev_accuracy"] == dev.score(tokens[40:], y[40:])


def test_command_line_train_and_tag(tmp_path, capsys):
    X, y = make_sequences(80, n_labels=3, scheme="BIO", length=(3, 9), random_state=0)
    rows = [[(tok[0].split("=", 1)[1], label) for tok, label in zip(seq, labels)]
            for seq, labels in zip(X, y)]
    write_conll(tmp_path / "train.txt", rows)
    (tmp_path / "template").write_text("U00:%x[0,0]\nU01:%x[-1,0]\nB\n")
    model = str(tmp_path / "model.npz")
    status, _, err = run_cli(capsys, "train", "-t", str(tmp_path / "template"), "-m", model,
                             "--hash-features", "64", "-q", str(tmp_path / "train.txt"))
    assert status == 0, err
    crf = CRF.load(model)
    assert crf.hash_features == 64 and len(crf.attributes_) <= 64
    status, out, err = run_cli(capsys, "tag", "-m", model, "-q", str(tmp_path / "train.txt"))
    assert status == 0, err
    tagged = [line.split()[-1] for line in out.splitlines() if line.strip()]
    Xr, _ = load_conll(tmp_path / "train.txt")
    template = Template((tmp_path / "template").read_text())
    _, encoded = template.encode(Xr, vocabulary=crf.vocabulary_)
    assert tagged == [label for seq in crf.predict(encoded) for label in seq]
    assert crf.predict(template.transform(Xr)) == crf.predict(encoded)
    status, _, err = run_cli(capsys, "train", "-t", str(tmp_path / "template"), "-m", model,
                             "--hash-features", "1", "-q", str(tmp_path / "train.txt"))
    assert status != 0 and "--hash-features" in err


def test_command_line_encode_hashes_as_train_does(tmp_path, capsys):
    X, y = make_sequences(80, n_labels=3, scheme="BIO", length=(3, 9), random_state=1)
    rows = [[(tok[0].split("=", 1)[1], label) for tok, label in zip(seq, labels)]
            for seq, labels in zip(X, y)]
    train = str(tmp_path / "train.txt")
    write_conll(train, rows)
    template = str(tmp_path / "template")
    (tmp_path / "template").write_text("U00:%x[0,0]\nU01:%x[-1,0]\nB\n")
    folder = tmp_path / "ds"
    status, out, err = run_cli(capsys, "encode", "-t", template, "-o", folder,
                               "--hash-features", "32", "--hash-seed", "5", train)
    assert status == 0, err
    assert "hashed into 32 buckets, seed 5" in out
    dataset = Dataset.load(folder)
    assert dataset.hashing == (32, 5)
    # The buckets are those of the template's names under seed 5.
    names = {name for seq in Template((tmp_path / "template").read_text())
             .transform(load_conll(train)[0]) for tok in seq for name in tok}
    names = sorted(names)
    assert set(dataset.attributes) == {f"#{b}" for b in bucket_of(names, 32, 5).tolist()}
    assert set(dataset.attributes) != {f"#{b}" for b in bucket_of(names, 32, 0).tolist()}
    # train on the folder hashes as it records, the model of train --hash-features on
    # the column file itself.
    models = {}
    for how, source in (("folder", [folder]), ("file", ["-t", template, "--hash-features",
                                                        "32", "--hash-seed", "5", train])):
        models[how] = str(tmp_path / f"{how}.npz")
        status, _, err = run_cli(capsys, "train", "-q", "-i", "3", "-m", models[how],
                                 *source)
        assert status == 0, err
    a, b = CRF.load(models["folder"]), CRF.load(models["file"])
    assert (a.hash_features, a.hash_seed) == (b.hash_features, b.hash_seed) == (32, 5)
    assert a.attributes_ == b.attributes_
    np.testing.assert_array_equal(a._model.state, b._model.state)
    np.testing.assert_array_equal(a._model.chain, b._model.chain)
    # Without --hash-seed the seed is 0, as train's.
    status, _, err = run_cli(capsys, "encode", "-q", "-t", template, "-o",
                             tmp_path / "ds0", "--hash-features", "32", train)
    assert status == 0, err
    assert Dataset.load(tmp_path / "ds0").hashing == (32, 0)
    # Buckets or a seed other than the folder's, and bad values, are refused by option.
    for argv, option in ((["train", "-q", "--hash-features", "64", folder],
                          "--hash-features 32"),
                         (["train", "-q", "--hash-seed", "1", folder], "--hash-seed 5"),
                         (["encode", "-q", "-t", template, "-o", tmp_path / "x",
                           "--hash-features", "1", train], "--hash-features"),
                         (["encode", "-q", "-t", template, "-o", tmp_path / "x",
                           "--hash-features", "8", "--hash-seed", "-1", train], "--hash-seed"),
                         (["encode", "-q", "-t", template, "-o", tmp_path / "x",
                           "--hash-seed", "3", train], "--hash-seed needs --hash-features")):
        status, _, err = run_cli(capsys, *argv)
        assert status != 0 and option in err, (argv, err)
    assert not (tmp_path / "x").exists()
