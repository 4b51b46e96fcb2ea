"""StateLayout: which (attribute, label) pairs are state weights."""

import numpy as np
import pytest

from fastcrf._encoding import EncodedSequences
from fastcrf._layout import DENSE_MAX_RATIO, DENSE_MIN_COUNT, StateLayout
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


@pytest.mark.parametrize("n_dense", [0, 2, 8])
def test_positions_find_every_kept_pair_in_the_flat_vector(n_dense):
    rng = np.random.default_rng(n_dense)
    toks = [list(rng.integers(0, 8, size=3)) for _ in range(40)]
    data = make_data(toks, rng.integers(0, 5, size=40), 5)
    layout = StateLayout.build(data, n_dense)
    flat = np.zeros(layout.size)
    rows, cols = layout.pairs()
    flat[layout.positions(rows, cols)] = np.arange(1, len(rows) + 1)
    W = layout.to_dense(flat)
    assert W[rows, cols].tolist() == list(range(1, len(rows) + 1))


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


@pytest.mark.parametrize("n_dense", [0, 3, 40])
@pytest.mark.parametrize("K", [1, 5, 300])
def test_tail_pairs_marks_and_label_order_agree_with_the_seen_pairs(n_dense, K):
    # max_scratch picks the way: 0 forces the label-order pass, a huge one the marks.
    from fastcrf._kernels import _prep

    rng = np.random.default_rng(K + n_dense)
    toks = [list(rng.integers(0, 40, size=rng.integers(0, 6))) for _ in range(400)]
    toks[0] = list(range(40))       # every attribute occurs
    data = make_data(toks, rng.integers(0, K, size=400), K)
    f = data.features
    expected = sorted((a - n_dense, k) for a, k in seen_pairs(data) if a >= n_dense)
    for max_scratch in (0, 1 << 40):
        ptr, labels = _prep.tail_pairs(np.ascontiguousarray(f.attr_ids, dtype=np.int32),
                                       f.token_offsets, data.labels, n_dense, 40, K,
                                       max_scratch)
        rows = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
        assert list(zip(rows.tolist(), labels.tolist())) == expected


def test_tail_pairs_label_order_rejects_out_of_range_too():
    from fastcrf._kernels import _prep

    ids = np.array([0, 3, 5], dtype=np.int32)
    off = np.array([0, 2, 3], dtype=np.int64)
    ptr, labels = _prep.tail_pairs(ids, off, np.array([1, 0]), 1, 6, 2, 0)
    np.testing.assert_array_equal(ptr, [0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(labels, [1, 0])
    with pytest.raises(ValueError, match="out of range"):
        _prep.tail_pairs(ids, off, np.array([1, 2]), 1, 6, 2, 0)
    with pytest.raises(ValueError, match="out of range"):
        _prep.tail_pairs(ids, off, np.array([1, 0]), 1, 5, 2, 0)


def many_label_data(n_labels, n_tokens, seed):
    """Tokens of 3 attributes each: a word (its label), one of 20 "suffixes" and a
    bias; ids renumbered by decreasing frequency as a fit's are."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, n_labels, size=n_tokens)
    raw = [[int(w), n_labels + int(w) % 20, n_labels + 20] for w in words]
    counts = np.bincount([a for t in raw for a in t])
    rank = np.empty(len(counts), dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    return make_data([[int(rank[a]) for a in t] for t in raw], words, n_labels)


@pytest.mark.parametrize("n_labels", [100, 400, 1500])
def test_default_layout_stays_within_a_multiple_of_the_seen_pairs(n_labels):
    data = many_label_data(n_labels, 20 * n_labels, n_labels)
    counts = np.bincount(data.features.attr_ids)
    n_frequent = int(np.sum(counts >= DENSE_MIN_COUNT))
    seen = len(seen_pairs(data))
    # Every attribute here is frequent: the frequency rule alone would keep them all.
    assert n_frequent == data.features.n_attributes
    assert n_frequent * n_labels > DENSE_MAX_RATIO * seen
    layout = StateLayout.for_training(data, None)
    assert layout.n_weights <= DENSE_MAX_RATIO * seen
    # The head is the longest frequent prefix within the cap: one more row breaks it.
    one_more = StateLayout.build(data, layout.n_dense + 1)
    assert one_more.n_weights > DENSE_MAX_RATIO * seen
    same = StateLayout.build(data, layout.n_dense)
    np.testing.assert_array_equal(layout.mask(), same.mask())
    # The bias and the suffixes, seen with many labels, are the rows that went dense.
    assert layout.n_dense >= 21


def test_default_layout_with_few_labels_is_the_frequency_rule():
    # With few labels every frequent attribute keeps its row, as before the cap.
    rng = np.random.default_rng(5)
    toks = [sorted(set(rng.zipf(1.5, size=6).clip(1, 300) - 1)) for _ in range(3000)]
    raw = make_data(toks, rng.integers(0, 9, size=3000), 9)
    counts = np.bincount(raw.features.attr_ids, minlength=raw.features.n_attributes)
    rank = np.empty(len(counts), dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    data = make_data([[int(rank[a]) for a in t] for t in toks], raw.labels, 9)
    counts = np.bincount(data.features.attr_ids)
    n_frequent = int(np.sum(counts >= DENSE_MIN_COUNT))
    assert 0 < n_frequent < len(counts)
    layout = StateLayout.for_training(data, None)
    before = StateLayout.build(data, n_frequent)
    assert layout.n_dense == n_frequent
    np.testing.assert_array_equal(layout.tail_ptr, before.tail_ptr)
    np.testing.assert_array_equal(layout.tail_labels, before.tail_labels)


def test_with_head_and_largest_head_need_an_all_tail_layout():
    data = make_data([[0, 1], [1]], [0, 1], 2)
    head = StateLayout.build(data, 1)
    with pytest.raises(ValueError, match="all-tail"):
        head.with_head(1)
    with pytest.raises(ValueError, match="all-tail"):
        head.largest_head(1, 8)


def test_many_labels_fit_and_predict_through_the_estimator():
    from fastcrf import CRF

    # 120 labels, each the label of one word: the frequency rule would keep 127 dense
    # rows of 120 (15,240 weights) for 240 seen pairs.
    rng = np.random.default_rng(0)
    n_labels = 120
    words = rng.integers(0, n_labels, size=(200, 8))
    X = [[{"w": f"w{w}", "s": f"s{w % 7}"} for w in sent] for sent in words]
    y = [[f"L{w}" for w in sent] for sent in words]
    crf = CRF(random_state=0).fit(X[:160], y[:160])
    assert len(crf.classes_) == n_labels
    seen = len({(f"{k}={v}", lab) for xs, ys in zip(X[:160], y[:160])
                for x, lab in zip(xs, ys) for k, v in x.items()})
    assert len(crf.state_features_) <= DENSE_MAX_RATIO * seen
    assert crf.predict(X[160:]) == y[160:]


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
