"""The hashed fit on token features (``CRF(hash_features=...)``) encodes a chunk of
sequences at a time, hashing each chunk's names and dropping them: the same training
set as hashing the whole vocabulary afterwards, with the distinct names held at once
bounded by the chunk (``vocabulary_.names_held``)."""

import numpy as np
import pytest

from fastcrf import CRF
from fastcrf._features import _hashing
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
