"""SGD's visiting order over a memory-mapped training set: shuffled blocks, a window at
a time.

An SGD epoch visits the sequences in a random order.  Over a memory-mapped
:class:`fastcrf.Dataset` a global permutation touches the file's pages at random, and
the engine's entry arrays (split by weight part in place, :func:`fastcrf._train.sgd.
_part_offsets`) would be copied whole into memory.  So when the mapped entries take
more than :data:`WINDOW_BYTES`, an epoch instead

- cuts the sequences, in file order, into blocks of about ``WINDOW_BYTES /
  BLOCKS_PER_WINDOW`` bytes (whole mini-batches each);
- shuffles the blocks, and takes them :data:`BLOCKS_PER_WINDOW` at a time: a window;
- copies a window's blocks into memory (:func:`gather`: each block one contiguous
  slice of every array, no index arrays) and visits their sequences in a random order
  of their own.

Memory is then the model plus one window, and each window mixes sequences from
blocks spread over the whole file.  The order is drawn from the fit's
``random_state`` as the global one is, so a fit is still reproducible and the same
for any thread count; it is another order than the global shuffle, so the model
differs from a fit in memory (bench/README.md measures the F1 of both).
"""

import numpy as np

from .._features._encoding import EncodedSequences
from .._training import TrainingData

#: A memory-mapped training set whose entries (ids, values, labels and offsets) take
#: more bytes than this is visited a window at a time.  Below it a fit keeps the global
#: shuffle, and so the model of the same data as lists (the 10 M-token bench's 866 MB
#: of arrays included), at the cost of one in-memory copy of the ids; windows also
#: split each window by weight part again every epoch (no speed difference measured
#: beyond the noise of a loaded machine, bench/README.md).
WINDOW_BYTES = 1 << 30
#: Blocks per window: more, smaller blocks mix the sequences of an epoch better (on
#: CoNLL-2000, four windows an epoch measured 0.06 F1 below the global shuffle with 8
#: blocks each and level with it in 128 blocks, bench/README.md); each block is one
#: contiguous read.
BLOCKS_PER_WINDOW = 32


def is_mapped(data):
    """Whether ``data``'s attribute ids are memory-mapped (a Dataset loaded with
    ``mmap=True``, read in place)."""
    return isinstance(data.features.attr_ids, np.memmap)


def entry_bytes(data):
    """Bytes of each sequence's arrays as the engine reads them: ``(n_sequences,)``."""
    f = data.features
    entries = np.diff(f.token_offsets[f.seq_offsets])
    tokens = np.diff(f.seq_offsets)
    per_entry = f.attr_ids.itemsize + (f.values.itemsize if len(f.values) else 0)
    # A token: its label and its offset.
    return entries * per_entry + tokens * (data.labels.itemsize + 8)


def block_bounds(data, batch_size, window_bytes=None):
    """The blocks of a windowed epoch: sequence bounds ``[0, b1, ..., n]``, or None when
    ``data`` is read in memory (not mapped, or no larger than a window)."""
    window_bytes = WINDOW_BYTES if window_bytes is None else window_bytes
    if not is_mapped(data):
        return None
    sizes = entry_bytes(data)
    if sizes.sum() <= window_bytes:
        return None
    return cut_blocks(sizes, window_bytes // BLOCKS_PER_WINDOW, batch_size)


def cut_blocks(sizes, block_bytes, batch_size):
    """Bounds of consecutive blocks of about ``block_bytes`` (``sizes``: each
    sequence's bytes), each a whole number of ``batch_size`` sequences but the last."""
    n = len(sizes)
    ends = np.cumsum(sizes)
    targets = np.arange(1, int(ends[-1] // max(block_bytes, 1)) + 1) * block_bytes
    cuts = np.searchsorted(ends, targets, side="right")
    cuts = (cuts // batch_size) * batch_size
    return np.unique(np.concatenate(([0], cuts[(cuts > 0) & (cuts < n)], [n])))


def windows(bounds, rng):
    """One epoch's windows: a list of ``(blocks, order)``, ``blocks`` a window's block
    numbers (drawn from a shuffle of all the blocks, increasing within the window, so
    that the window is read in file order) and ``order`` the window's visiting order
    (a permutation of the positions of its sequences, :func:`sequences_of`)."""
    n_blocks = len(bounds) - 1
    shuffled = rng.permutation(n_blocks)
    out = []
    for first in range(0, n_blocks, BLOCKS_PER_WINDOW):
        blocks = np.sort(shuffled[first:first + BLOCKS_PER_WINDOW])
        n = int(np.sum(bounds[blocks + 1] - bounds[blocks]))
        out.append((blocks, rng.permutation(n)))
    return out


def sequences_of(bounds, blocks):
    """The sequence ids of ``blocks``, in the order :func:`gather` copies them."""
    return np.concatenate([np.arange(bounds[b], bounds[b + 1]) for b in blocks])


def gather(data, bounds, blocks):
    """The sequences of ``blocks`` as an in-memory :class:`TrainingData`: one slice of
    each array per block (a window costs its own bytes, not index arrays)."""
    f = data.features
    ids, values, labels, tok_len, seq_len, weights = [], [], [], [], [], []
    for b in blocks:
        s0, s1 = int(bounds[b]), int(bounds[b + 1])
        t0, t1 = int(f.seq_offsets[s0]), int(f.seq_offsets[s1])
        tok = np.asarray(f.token_offsets[t0:t1 + 1])
        ids.append(f.attr_ids[tok[0]:tok[-1]])
        if len(f.values):
            values.append(f.values[tok[0]:tok[-1]])
        labels.append(data.labels[t0:t1])
        tok_len.append(np.diff(tok))
        seq_len.append(np.diff(np.asarray(f.seq_offsets[s0:s1 + 1])))
        if data.weights is not None:
            weights.append(data.weights[s0:s1])
    seq_len = np.concatenate(seq_len)
    features = EncodedSequences(
        np.concatenate(ids), np.concatenate(values) if values else np.zeros(0),
        np.concatenate(([0], np.cumsum(np.concatenate(tok_len)))).astype(np.int64),
        np.concatenate(([0], np.cumsum(seq_len))).astype(np.int64), f.n_attributes)
    return TrainingData(features, np.concatenate(labels), data.n_labels,
                        int(seq_len.max()) if len(seq_len) else 0,
                        np.concatenate(weights) if weights else None)
