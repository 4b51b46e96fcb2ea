"""SGD over a memory-mapped Dataset larger than a window: shuffled blocks, a window at a
time (fastcrf._train.window)."""

import numpy as np
import pytest

from fastcrf import CRF, Dataset
from fastcrf._dataset import training_set
from fastcrf._layout import StateLayout
from fastcrf._train import sgd, window
from fastcrf._training import chain_mask
from fastcrf.datasets import make_sequences


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    # 200 sequences: a multiple of the mini-batch, so that every window is whole
    # mini-batches and the windowed epoch can be replayed by one pass in memory.
    X, y = make_sequences(n_sequences=200, random_state=3)[:2]
    path = tmp_path_factory.mktemp("ds") / "train"
    Dataset.from_sequences(X, y).save(path)
    return X, y, path


@pytest.fixture
def small_window(monkeypatch, saved):
    """A window of about a fifth of the training set's bytes."""
    data = training_set(Dataset.load(saved[2]), None, 0)[2]
    size = int(window.entry_bytes(data).sum())
    monkeypatch.setattr(window, "WINDOW_BYTES", size // 5)
    return size // 5


def test_the_order_is_a_permutation_of_whole_contiguous_blocks():
    rng = np.random.default_rng(0)
    sizes = rng.integers(10, 500, size=1003)
    bounds = window.cut_blocks(sizes, 4000, batch_size=4)
    assert bounds[0] == 0 and bounds[-1] == len(sizes)
    assert np.all(np.diff(bounds) > 0) and np.all(bounds[1:-1] % 4 == 0)
    parts = window.windows(bounds, np.random.default_rng(1))
    order = np.concatenate([window.sequences_of(bounds, blocks)[order]
                            for blocks, order in parts])
    np.testing.assert_array_equal(np.sort(order), np.arange(len(sizes)))
    block_of = np.searchsorted(bounds, np.arange(len(sizes)), side="right") - 1
    seen = set()
    for blocks, order in parts:
        seqs = window.sequences_of(bounds, blocks)
        np.testing.assert_array_equal(np.sort(order), np.arange(len(seqs)))
        # A window is whole blocks, each one contiguous run of sequences read in file
        # order, and no block comes twice in an epoch.
        blocks = np.unique(block_of[seqs])
        assert len(blocks) <= window.BLOCKS_PER_WINDOW and not seen & set(blocks)
        seen |= set(blocks.tolist())
        np.testing.assert_array_equal(
            seqs, np.concatenate([np.arange(bounds[b], bounds[b + 1]) for b in blocks]))
    assert seen == set(range(len(bounds) - 1))


def test_blocks_only_for_a_mapped_set_larger_than_a_window(saved, small_window):
    mapped = training_set(Dataset.load(saved[2]), None, 0)[2]
    in_memory = training_set(Dataset.load(saved[2], mmap=False), None, 0)[2]
    assert window.block_bounds(in_memory, 4) is None
    assert window.block_bounds(mapped, 4, window_bytes=10 ** 12) is None
    bounds = window.block_bounds(mapped, 4)
    assert len(bounds) - 1 > window.BLOCKS_PER_WINDOW   # two windows or more


@pytest.mark.parametrize("rule", ["adagrad_row", "calibrated"])
def test_a_windowed_epoch_is_one_pass_over_its_order(saved, small_window, rule):
    """Window by window from the map, the engine ends where one pass in memory over the
    concatenated visiting order ends, to the bit (sample weights included)."""
    mapped = training_set(Dataset.load(saved[2]), None, 0)[2]
    in_memory = training_set(Dataset.load(saved[2], mmap=False), None, 0)[2]
    mapped.weights = in_memory.weights = np.random.default_rng(4).uniform(0.5, 2.0, 200)
    vocabulary = training_set(Dataset.load(saved[2]), None, 0)[0]
    layout = StateLayout.for_training(in_memory, None, counts=vocabulary.counts)
    mask = chain_mask(in_memory, True)
    settings = sgd.SGDSettings()
    bounds = window.block_bounds(mapped, settings.batch_size)
    states = []
    for _ in range(2):
        states.append(sgd._State(layout, adagrad=rule != "calibrated", avg_start=10.0,
                                 rows=rule == "adagrad_row"))
    eta, lam = 0.3, 0.01
    for epoch in range(2):
        sgd._windowed_epoch(states[0], mapped, bounds, np.random.default_rng(epoch),
                            settings, eta, lam, 10.0, mask, 2, None, 0.0, None)
        parts = window.windows(bounds, np.random.default_rng(epoch))
        order = np.concatenate([window.sequences_of(bounds, blocks)[o]
                                for blocks, o in parts])
        sgd._epoch(states[1], in_memory, order, settings, eta, lam, 10.0, mask, 1)
    for name in ("U", "Uhat", "V", "Vhat", "GA", "EA", "ada_stamp", "scalars"):
        a, b = getattr(states[0], name), getattr(states[1], name)
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_a_windowed_fit_reads_no_whole_copy_and_is_thread_independent(saved, small_window,
                                                                        monkeypatch):
    calls = []
    part_offsets = sgd._part_offsets

    def watched(data, n_threads=1):
        calls.append(data.n_sequences)
        return part_offsets(data, n_threads)

    monkeypatch.setattr(sgd, "_part_offsets", watched)
    X, y, path = saved
    fits = [CRF(algorithm="asgd", max_iterations=3, random_state=0, n_jobs=n_jobs)
            .fit(Dataset.load(path)) for n_jobs in (1, 2)]
    # The engine's in-place copy is made a window at a time, never of the whole set.
    assert calls and max(calls) < len(X)
    np.testing.assert_array_equal(fits[0]._model.state, fits[1]._model.state)
    np.testing.assert_array_equal(fits[0]._model.chain, fits[1]._model.chain)
    global_order = CRF(algorithm="asgd", max_iterations=3, random_state=0).fit(
        Dataset.load(path, mmap=False))
    assert not np.array_equal(global_order._model.state, fits[0]._model.state)
    agree = np.mean([a == b for p, q in zip(global_order.predict(X), fits[0].predict(X))
                     for a, b in zip(p, q)])
    assert agree > 0.9
