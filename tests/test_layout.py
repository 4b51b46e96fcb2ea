"""StateLayout: which (attribute, label) pairs are state weights."""

import numpy as np
import pytest

from fastcrf._encoding import EncodedSequences
from fastcrf._layout import DENSE_MIN_COUNT, StateLayout
from fastcrf._training import TrainingData


def make_data(ids_per_token, labels, K):
    counts = [len(t) for t in ids_per_token]
    ids = np.array([a for t in ids_per_token for a in t], dtype=np.int32)
    enc = EncodedSequences(ids, np.ones(len(ids)),
                           np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
                           np.array([0, len(labels)], dtype=np.int64), int(ids.max()) + 1)
    return TrainingData.build(enc, np.array(labels), K)


def seen_pairs(data):
    f = data.features
    tokens = np.repeat(np.arange(f.n_tokens), np.diff(f.token_offsets))
    return set(zip(f.attr_ids.tolist(), data.labels[tokens].tolist()))


@pytest.mark.parametrize("n_dense", [0, 1, 2, 3, 4, 99])
def test_build_keeps_all_pairs_of_the_head_and_seen_pairs_of_the_tail(n_dense):
    rng = np.random.default_rng(n_dense)
    toks = [list(rng.integers(0, 4, size=rng.integers(0, 4))) for _ in range(30)]
    data = make_data(toks, rng.integers(0, 3, size=30), 3)
    layout = StateLayout.build(data, n_dense)
    D = min(n_dense, 4)
    assert layout.n_dense == D
    kept = {(int(a), int(k)) for a, k in zip(*np.nonzero(layout.mask()))}
    expected = {(a, k) for a in range(D) for k in range(3)}
    expected |= {(a, k) for a, k in seen_pairs(data) if a >= D}
    assert kept == expected
    assert layout.n_weights == len(expected)
    assert layout.size == D * layout.stride + len(expected) - D * 3
    for i in range(layout.n_attributes - D):  # labels increase within an attribute
        lo, hi = layout.tail_ptr[i], layout.tail_ptr[i + 1]
        assert np.all(np.diff(layout.tail_labels[lo:hi]) > 0)


def test_to_dense_places_the_flat_weights():
    data = make_data([[0, 2], [1], [2, 3], [3]], [0, 1, 2, 1], 3)
    layout = StateLayout.build(data, 1)
    assert layout.stride == 4  # 3 labels, padded to a whole 4-double vector
    flat = np.array([1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    W = layout.to_dense(flat)
    np.testing.assert_array_equal(W[0], [1.0, 2.0, 3.0])
    # tail: attribute 1 saw label 1; 2 saw labels 0 and 2; 3 saw labels 1 and 2
    assert W[1].tolist() == [0.0, 4.0, 0.0]
    assert W[2].tolist() == [5.0, 0.0, 6.0]
    assert W[3].tolist() == [0.0, 7.0, 8.0]
    np.testing.assert_array_equal(layout.from_dense(W), flat)


def test_subset_renumbers_and_keeps_the_pairs():
    rng = np.random.default_rng(3)
    toks = [list(rng.integers(0, 8, size=3)) for _ in range(40)]
    data = make_data(toks, rng.integers(0, 4, size=40), 4)
    layout = StateLayout.build(data, 3)
    used = np.array([1, 2, 4, 7])
    sub = layout.subset(used)
    assert sub.n_attributes == 4 and sub.n_dense == 2
    np.testing.assert_array_equal(sub.mask(), layout.mask()[used])


def test_for_training_settings():
    # Attribute 0 occurs DENSE_MIN_COUNT times, attribute 1 once (ids by frequency).
    n = DENSE_MIN_COUNT
    data = make_data([[0]] * (n - 1) + [[0, 1]], [0] * n, 3)
    assert StateLayout.for_training(data, True).n_weights == 6
    assert StateLayout.for_training(data, False).n_weights == 2
    auto = StateLayout.for_training(data, None)
    assert auto.n_dense == 1 and auto.n_weights == 4
    # The counts a fit's vocabulary holds give the same layout without a recount.
    given = StateLayout.for_training(data, None, counts=np.array([n, 1]))
    assert given.n_dense == 1 and given.n_weights == 4
    assert StateLayout.for_training(data, None, counts=np.array([n, n])).n_dense == 2


def test_tail_pairs_rejects_ids_and_labels_out_of_range():
    from fastcrf._kernels import _prep

    ids = np.array([0, 3, 5], dtype=np.int32)
    off = np.array([0, 2, 3], dtype=np.int64)
    ptr, labels = _prep.tail_pairs(ids, off, np.array([1, 0]), 1, 6, 2)
    np.testing.assert_array_equal(ptr, [0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(labels, [1, 0])
    with pytest.raises(ValueError, match="out of range"):
        _prep.tail_pairs(ids, off, np.array([1, 2]), 1, 6, 2)
    with pytest.raises(ValueError, match="out of range"):
        _prep.tail_pairs(ids, off, np.array([1, 0]), 1, 5, 2)
    with pytest.raises(ValueError, match="do not match"):
        _prep.tail_pairs(ids, off, np.array([1]), 1, 6, 2)


@pytest.mark.parametrize("zero_share", [0.0, 0.5, 0.95, 1.0])
def test_without_zeros_keeps_exactly_the_non_zero_weights(zero_share):
    rng = np.random.default_rng(7)
    toks = [list(rng.integers(0, 40, size=rng.integers(1, 6))) for _ in range(300)]
    data = make_data(toks, rng.integers(0, 5, size=300), 5)
    layout = StateLayout.build(data, 12)
    flat = rng.standard_normal(layout.size)
    flat[rng.random(layout.size) < zero_share] = 0.0
    S, D, K = layout.stride, layout.n_dense, layout.n_labels
    flat[: D * S].reshape(D, S)[:, K:] = 0.0
    small, compact = layout.without_zeros(flat)
    np.testing.assert_array_equal(small.to_dense(compact), layout.to_dense(flat))
    # Only the head rows that pay for themselves stay dense; no zero is in the tail.
    assert small.n_dense <= D
    assert np.all(compact[small.n_dense * S:] != 0)
    if zero_share >= 0.95:
        assert small.size < layout.size / 4
    if zero_share == 0.0:
        assert small.n_dense == D
