"""The hashed fit on token features (``CRF(hash_features=...)``) encodes a chunk of
sequences at a time, hashing each chunk's names and dropping them: the same training
set as hashing the whole vocabulary afterwards, with the distinct names held at once
bounded by the chunk (``vocabulary_.names_held``).  ``Dataset.from_conll(...,
hash_features=...)`` hashes while it reads, and fits the model of hashing its names."""

import numpy as np
import pytest

from fastcrf import CRF, Dataset
from fastcrf._features import _hashing
from fastcrf._features._hashing import bucket_of as hash_bucket_of
from fastcrf._features._hashing import hash_encode_training, hash_training
from fastcrf._training import encode_training
from fastcrf.datasets import make_sequences


def _problem(seed=0, n=60, weights=False):
    X, y = make_sequences(n, n_labels=3, length=(3, 9), random_state=seed)
    if weights:
        X = [[{**dict.fromkeys(tok, 1.0), "len": float(i % 3)} for i, tok in enumerate(seq)]
             for seq in X]
    return X, y


def _same_training_set(a, b):
    (va, ca, da), (vb, cb, db) = a, b
    assert ca == cb
    np.testing.assert_array_equal(va.buckets, vb.buckets)
    np.testing.assert_array_equal(va.counts, vb.counts)
    fa, fb = da.features, db.features
    for name in ("attr_ids", "values", "token_offsets", "seq_offsets"):
        x, y = getattr(fa, name), getattr(fb, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert fa.n_attributes == fb.n_attributes
    np.testing.assert_array_equal(da.labels, db.labels)
    assert da.n_labels == db.n_labels and da.max_length == db.max_length


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
@pytest.mark.parametrize("n_buckets", [3, 64, 2 ** 20])
@pytest.mark.parametrize("weights", [False, True])
def test_same_training_set_as_hashing_the_vocabulary(chunk_size, n_buckets, weights):
    X, y = _problem(1, weights=weights)
    vocabulary, classes, data = encode_training(X, y, 0, 1)
    hashed, data = hash_training(vocabulary, data, n_buckets, 5)
    streamed = hash_encode_training(X, y, n_buckets, 5, chunk_size=chunk_size)
    _same_training_set(streamed, (hashed, classes, data))
    # A generator is read once, as a list is.
    _same_training_set(hash_encode_training(iter(X), iter(y), n_buckets, 5,
                                            chunk_size=chunk_size), streamed)


def test_fit_gives_the_model_of_hashing_the_vocabulary(monkeypatch):
    X, y = _problem(2, n=80)
    params = {"algorithm": "lbfgs", "max_iterations": 15, "hash_features": 32,
              "hash_seed": 3}
    streamed = CRF(**params).fit(X, y)
    # The former path: the whole vocabulary encoded, then hashed.
    def whole(X, y, n_buckets, seed, *, min_freq, n_jobs, classes):
        vocabulary, classes, data = encode_training(X, y, min_freq, n_jobs, classes)
        hashed, data = hash_training(vocabulary, data, n_buckets, seed)
        return hashed, classes, data

    monkeypatch.setattr("fastcrf._fit.hash_encode_training", whole)
    before = CRF(**params).fit(X, y)
    np.testing.assert_array_equal(streamed.state_weights_, before.state_weights_)
    np.testing.assert_array_equal(streamed.transition_weights_, before.transition_weights_)
    np.testing.assert_array_equal(streamed.vocabulary_.buckets, before.vocabulary_.buckets)
    assert streamed.predict(X) == before.predict(X)


def test_names_held_are_one_chunks(monkeypatch):
    """Every sequence brings names of its own: the vocabulary grows with the data,
    the names held at once do not."""
    monkeypatch.setattr(_hashing, "CHUNK_SIZE", 10)
    rng = np.random.default_rng(0)
    X, y = [], []
    for s in range(300):
        n = int(rng.integers(2, 6))
        X.append([[f"w={s}.{t}", f"shared={t % 3}"] for t in range(n)])
        y.append([["A", "B"][t % 2] for t in range(n)])
    total = len({name for seq in X for tok in seq for name in tok})
    per_chunk = max(len({name for seq in X[i:i + 10] for tok in seq for name in tok})
                    for i in range(0, len(X), 10))
    crf = CRF(algorithm="lbfgs", max_iterations=3, hash_features=2 ** 16).fit(X, y)
    assert crf.vocabulary_.names_held == per_chunk
    assert total > 20 * per_chunk
    assert len(crf.vocabulary_) <= 2 ** 16 and not hasattr(crf.vocabulary_, "index")


def test_positions_in_errors_count_over_the_whole_input(monkeypatch):
    monkeypatch.setattr(_hashing, "CHUNK_SIZE", 4)
    X, y = _problem(3, n=12)
    X[9] = []
    with pytest.raises(ValueError, match=r"X\[9\]"):
        CRF(algorithm="lbfgs", hash_features=16).fit(X, y)
    with pytest.raises(ValueError, match="no sequences"):
        hash_encode_training([], [], 16, 0)


def test_min_freq_cuts_buckets():
    X, y = _problem(4)
    vocabulary, _, data = hash_encode_training(X, y, 4096, 0, min_freq=5, chunk_size=9)
    everything, _, _ = hash_encode_training(X, y, 4096, 0, chunk_size=9)
    assert (vocabulary.counts >= 5).all()
    assert set(vocabulary.buckets.tolist()) == set(
        everything.buckets[everything.counts >= 5].tolist())
    assert data.features.n_attributes == len(vocabulary)
    assert data.features.attr_ids.max() < len(vocabulary)
    with pytest.raises(ValueError, match="min_freq"):
        hash_encode_training(X, y, 4096, 0, min_freq=10 ** 9)


# ---------------------------------------------------------------------------- #
# Dataset.from_conll(hash_features=...): buckets while reading                   #
# ---------------------------------------------------------------------------- #

TEMPLATE = "U00:%x[0,0]\nU01:%x[-1,0]/%x[0,0]\nU02:%x[0,1]\nU03:bias\nB\n"


def _column_file(tmp_path, seed=0, n=70):
    X, y = make_sequences(n, n_labels=3, scheme="BIO", length=(3, 9), random_state=seed)
    path = tmp_path / "train.txt"
    with open(path, "w", encoding="utf-8") as f:
        for seq, labels in zip(X, y):
            for t, (tok, label) in enumerate(zip(seq, labels)):
                f.write(f"{tok[0].split('=', 1)[1]} s{t % 4} {label}\n")
            f.write("\n")
    return str(path)


@pytest.mark.parametrize("n_buckets", [5, 2 ** 20])
def test_hashed_dataset_compiled_and_python_readers_agree(monkeypatch, tmp_path, n_buckets):
    path = _column_file(tmp_path)
    compiled = Dataset.from_conll(path, TEMPLATE, hash_features=n_buckets, hash_seed=4,
                                  chunk_size=8)
    monkeypatch.setenv("FASTCRF_READER", "python")
    python = Dataset.from_conll(path, TEMPLATE, hash_features=n_buckets, hash_seed=4,
                                chunk_size=8)
    for name in ("attr_ids", "values", "token_offsets", "seq_offsets"):
        assert np.array_equal(getattr(compiled.features, name),
                              getattr(python.features, name)), name
    assert compiled.attributes == python.attributes
    assert np.array_equal(compiled.counts, python.counts)
    assert compiled.metadata == python.metadata
    assert compiled.hashing == (n_buckets, 4)
    assert len(compiled.attributes) <= n_buckets
    assert all(a.startswith("#") for a in compiled.attributes)
    # Every bucket is that of some name the template extracts.
    names = Dataset.from_conll(path, TEMPLATE).attributes
    assert set(compiled.buckets().tolist()) == set(
        hash_bucket_of(names, n_buckets, 4).tolist())


@pytest.mark.filterwarnings("ignore:.*too few to converge")
@pytest.mark.parametrize("algorithm", ["lbfgs", "asgd"])
def test_hashed_dataset_fits_the_model_of_hashing_its_names(tmp_path, algorithm):
    path = _column_file(tmp_path, seed=1)
    params = {"algorithm": algorithm, "max_iterations": 8, "hash_features": 64,
              "hash_seed": 2, "random_state": 0}
    hashed = Dataset.from_conll(path, TEMPLATE, hash_features=64, hash_seed=2)
    named = Dataset.from_conll(path, TEMPLATE)
    a = CRF(**params).fit(hashed)
    b = CRF(**params).fit(named)
    np.testing.assert_array_equal(a.vocabulary_.buckets, b.vocabulary_.buckets)
    np.testing.assert_array_equal(a.vocabulary_.counts, b.vocabulary_.counts)
    np.testing.assert_array_equal(a.state_weights_, b.state_weights_)
    np.testing.assert_array_equal(a.transition_weights_, b.transition_weights_)
    assert a.vocabulary_.names_held == 0 and b.vocabulary_.names_held == len(named.attributes)
    assert a.predict(hashed) == b.predict(named)
    # Saved and memory-mapped back, it is the same dataset.
    hashed.save(tmp_path / "ds")
    loaded = Dataset.load(tmp_path / "ds")
    assert loaded.hashing == (64, 2)
    np.testing.assert_array_equal(CRF(**params).fit(loaded).state_weights_, a.state_weights_)
    with pytest.raises(ValueError, match="hash_features=64, hash_seed=2"):
        CRF(**{**params, "hash_seed": 3}).fit(hashed)
    with pytest.raises(ValueError, match="hashed into 64 buckets"):
        CRF(algorithm="lbfgs", max_iterations=2).fit(named).predict(hashed)


def test_hashed_dataset_arguments(tmp_path):
    path = _column_file(tmp_path)
    with pytest.raises(ValueError, match="hash_features must be in"):
        Dataset.from_conll(path, TEMPLATE, hash_features=1)
    with pytest.raises(TypeError, match="hash_seed must be an int"):
        Dataset.from_conll(path, TEMPLATE, hash_features=8, hash_seed=1.5)
    with pytest.raises(ValueError, match="not hashed"):
        Dataset.from_conll(path, TEMPLATE).buckets()
