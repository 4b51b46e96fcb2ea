"""Which (attribute, label) pairs are state weights.

A CRF over sparse features has a weight for each (attribute, label) pair it keeps.
Keeping every pair (``all_possible_states=True``) lets the model learn that an
attribute argues *against* a label, which is worth accuracy for frequent attributes;
keeping only the pairs seen in training (``False``, CRFsuite's default) is far
smaller.  Most attributes of a real feature set are rare (on CoNLL-2000 chunking, 86%
of them occur fewer than five times), and for those the unseen pairs cost memory and
training time without helping: the default keeps every pair for attributes seen at
least :data:`DENSE_MIN_COUNT` times and the seen pairs for the rest.

A row of every label costs ``n_labels`` weights whatever the attribute saw, so with
hundreds or thousands of labels (morphological feature bundles, address parts) that
rule alone would multiply the model by the number of labels: each attribute sees few
of them, and 30,000 frequent attributes x 1,000 labels is 30 million weights per
array, where the seen pairs are 0.7 million.  The default therefore also caps the
whole layout at :data:`DENSE_MAX_RATIO` times the seen pairs (CRFsuite's model), by
taking only the most frequent of the frequent attributes as dense rows: the head
is the longest prefix of attributes seen :data:`DENSE_MIN_COUNT` times or more whose
layout stays within the cap.  On the tag sets of CoNLL-2000 chunking, CoNLL-2002
NER and CoNLL-2000 part of speech (9 to 44 labels) the frequent rows cost 3.0, 2.3
and 5.9 times the seen pairs, under the cap, so their layouts are those of the
frequency rule alone.

:class:`StateLayout` describes the kept pairs as two parts, which is what the SGD
kernels read (fastcrf/_kernels/_rows.h): attributes ``a < n_dense`` own a row of every label,
and the others ("the tail") own only the labels listed for them, CSR-style.  The
training code renumbers attributes by decreasing frequency first, so "frequent
enough" is always a prefix of the ids.
"""

from dataclasses import dataclass

import numpy as np

from ._kernels import _prep

#: Attributes seen at least this many times in training keep a weight for every label
#: under ``all_possible_states=None``.  Measured on CoNLL-2000 chunking (CRF++
#: template, averaged SGD): 5 gives the accuracy of all pairs (F1 93.70 both) with a
#: fifth of the weights; 2 and 3 cost about 0.02.
DENSE_MIN_COUNT = 5

#: Under ``all_possible_states=None`` the layout keeps at most this many times the
#: (attribute, label) pairs seen in training.  The corpora the default was measured
#: on need 2.3-5.9 (their frequent rows all fit); with 200 to 1,000 labels the
#: frequent rows alone would need 10-44 (bench/bench_many_labels.py).
DENSE_MAX_RATIO = 8


@dataclass(eq=False)
class StateLayout:
    """The kept (attribute, label) pairs: a dense head and a CSR tail.

    The flat weight vector of a layout holds the head, ``[n_dense][stride]``
    row-major (``stride`` is ``n_labels`` padded to a multiple of 4 with weights that
    stay 0), then one weight per tail entry.

    Attributes
    ----------
    n_attributes, n_labels : int
    n_dense : int
        Attributes ``[0, n_dense)`` keep every label.
    tail_ptr : ndarray of shape (n_attributes - n_dense + 1,), int64
        Attribute ``n_dense + i`` keeps the labels ``tail_labels[tail_ptr[i]:tail_ptr[i + 1]]``.
    tail_labels : ndarray of shape (n_tail,), int32
        Increasing within each attribute.
    """

    n_attributes: int
    n_labels: int
    n_dense: int
    tail_ptr: np.ndarray
    tail_labels: np.ndarray

    @property
    def stride(self):
        """Length of a dense row in the flat vector: ``n_labels`` rounded up to a
        multiple of 4 (the kernels work on whole 4-double vectors; the padding
        weights are always 0)."""
        return (self.n_labels + 3) // 4 * 4

    @property
    def size(self):
        """Length of the flat weight vector (padding included)."""
        return self.n_dense * self.stride + len(self.tail_labels)

    @property
    def n_weights(self):
        """Number of state weights (padding excluded)."""
        return self.n_dense * self.n_labels + len(self.tail_labels)

    @classmethod
    def dense(cls, n_attributes, n_labels):
        """Every pair kept."""
        return cls(int(n_attributes), int(n_labels), int(n_attributes),
                   np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32))

    @classmethod
    def build(cls, data, n_dense):
        """Every pair for attributes ``< n_dense``, the pairs seen in ``data`` for the rest.

        Parameters
        ----------
        data : TrainingData
        n_dense : int
        """
        f = data.features
        A, K = f.n_attributes, data.n_labels
        n_dense = int(min(max(n_dense, 0), A))
        ptr, labels = _prep.tail_pairs(np.ascontiguousarray(f.attr_ids, dtype=np.int32),
                                         f.token_offsets, data.labels, n_dense, A, K)
        return cls(A, K, n_dense, ptr, labels)

    @classmethod
    def for_training(cls, data, all_possible_states, counts=None):
        """The layout an ``all_possible_states`` setting asks for.

        ``data``'s attributes must be numbered by decreasing frequency.  ``counts``:
        the occurrences of each attribute in ``data``, when known (a fit's vocabulary
        has them; counting again cost ~80 ms on CoNLL-2000, mostly faulting in a
        temporary copy of the ids).
        """
        A = data.features.n_attributes
        if all_possible_states is True:
            return cls.dense(A, data.n_labels)
        if all_possible_states is False:
            return cls.build(data, 0)
        if counts is None or len(counts) != A:
            counts = np.bincount(data.features.attr_ids, minlength=A)
        frequent = counts >= DENSE_MIN_COUNT
        n_frequent = int(np.argmin(frequent)) if not frequent.all() else A
        seen = cls.build(data, 0)
        return seen.with_head(seen.largest_head(n_frequent, DENSE_MAX_RATIO))

    def largest_head(self, limit, ratio):
        """The most dense rows, at most ``limit``, that keep this all-tail layout's
        pairs plus the head's unseen ones within ``ratio`` times its pairs.

        With ``d`` rows the layout holds ``d * n_labels + n_seen - tail_ptr[d]``
        weights, which never decreases with ``d`` (a row holds at least the pairs it
        replaces), so the answer is one search.
        """
        if self.n_dense:
            raise ValueError("largest_head needs an all-tail layout (n_dense=0)")
        limit = int(min(max(limit, 0), self.n_attributes))
        n_seen = int(self.tail_ptr[-1])
        weights = (np.arange(limit + 1, dtype=np.int64) * self.n_labels + n_seen
                   - self.tail_ptr[: limit + 1])
        return int(np.searchsorted(weights, ratio * n_seen, side="right")) - 1

    def with_head(self, n_dense):
        """This all-tail layout with its first ``n_dense`` attributes made dense rows:
        what :meth:`build` gives for ``n_dense``, without a second pass over the data."""
        if self.n_dense:
            raise ValueError("with_head needs an all-tail layout (n_dense=0)")
        d = int(min(max(n_dense, 0), self.n_attributes))
        start = self.tail_ptr[d]
        return StateLayout(self.n_attributes, self.n_labels, d,
                           self.tail_ptr[d:] - start, self.tail_labels[start:].copy())

    @classmethod
    def of_pairs(cls, n_attributes, n_labels, attributes, labels):
        """Exactly the pairs ``(attributes[i], labels[i])``, all in the tail.

        The pairs must be given in attribute, then label order, without repeats.
        """
        attributes = np.asarray(attributes, dtype=np.int64)
        counts = np.bincount(attributes, minlength=n_attributes)[:n_attributes]
        ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return cls(int(n_attributes), int(n_labels), 0, ptr,
                   np.asarray(labels, dtype=np.int32))

    def pairs(self):
        """``(attributes, labels)`` of every kept pair, in attribute, then label order
        (the order of the flat vector, padding left out)."""
        K, D = self.n_labels, self.n_dense
        rows = np.concatenate((np.repeat(np.arange(D, dtype=np.int64), K),
                               self._tail_rows()))
        cols = np.concatenate((np.tile(np.arange(K, dtype=np.int64), D),
                               self.tail_labels.astype(np.int64)))
        return rows, cols

    def subset(self, used):
        """The layout of the attributes ``used`` (increasing ids), renumbered 0.."""
        used = np.asarray(used, dtype=np.int64)
        n_dense = int(np.searchsorted(used, self.n_dense))
        rows = used[n_dense:] - self.n_dense
        lengths = self.tail_ptr[rows + 1] - self.tail_ptr[rows]
        starts = self.tail_ptr[rows]
        ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        index = np.repeat(starts - ptr[:-1], lengths) + np.arange(ptr[-1])
        return StateLayout(len(used), self.n_labels, n_dense, ptr,
                           self.tail_labels[index])

    def without_zeros(self, flat):
        """The layout of the non-zero weights of ``flat`` and their flat vector.

        Pairs whose weight is exactly 0 (an L1 fit zeroes most of them) are dropped,
        except in the dense head rows it pays to keep: the head becomes the prefix of
        attributes that minimises the stored size (a dense row costs ``n_labels``
        weights, a tail entry a weight and a label).  Predictions are unchanged:
        a dropped pair only ever added 0.

        Returns
        -------
        layout : StateLayout
        flat : ndarray of shape (layout.size,)
        """
        K, S, D = self.n_labels, self.stride, self.n_dense
        head = flat[: D * S].reshape(D, S)[:, :K]
        head_nnz = np.count_nonzero(head, axis=1)
        # Bytes with a head of d rows: 8 K d + 12 (non-zeros of head rows >= d).
        cost = 8 * K * np.arange(D + 1) + 12 * (head_nnz.sum() - np.concatenate(
            ([0], np.cumsum(head_nnz))))
        d = int(np.argmin(cost))
        rows, cols, values = self.nonzero(flat)
        tail = rows >= d
        rows, cols, values = rows[tail], cols[tail], values[tail]
        counts = np.bincount(rows - d, minlength=self.n_attributes - d)
        layout = StateLayout(self.n_attributes, K, d,
                             np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
                             cols.astype(np.int32))
        out = np.zeros(layout.size)
        out[: d * S] = flat[: d * S]
        out[d * S:] = values
        return layout, out

    def positions(self, attributes, labels):
        """Where the kept pairs ``(attributes[i], labels[i])`` sit in the flat vector.

        Every pair must be kept (:meth:`pairs`); the result is undefined otherwise.
        """
        a = np.asarray(attributes, dtype=np.int64)
        y = np.asarray(labels, dtype=np.int64)
        K, S, D = self.n_labels, self.stride, self.n_dense
        out = a * S + y
        tail = a >= D
        # Tail keys row * K + label increase along the tail (rows, then labels).
        keys = self._tail_rows() * K + self.tail_labels
        out[tail] = D * S + np.searchsorted(keys, a[tail] * K + y[tail])
        return out

    def kernel_args(self, flat):
        """``(U, S, D, tail_ptr, tail_labels)``: how the compiled drivers of
        fastcrf._kernels take the state weights ``flat`` of this layout."""
        return (flat, self.stride, self.n_dense, self.tail_ptr, self.tail_labels)

    def nonzero(self, flat):
        """``(attributes, labels, weights)`` of the non-zero weights of ``flat``, in
        attribute order, then label order."""
        K, S, D = self.n_labels, self.stride, self.n_dense
        head = flat[: D * S].reshape(D, S)[:, :K]
        rows, cols = np.nonzero(head)
        tail = flat[D * S:]
        keep = np.flatnonzero(tail)
        rows = np.concatenate((rows, self._tail_rows()[keep]))
        cols = np.concatenate((cols, self.tail_labels[keep]))
        return rows, cols, np.concatenate((head[rows[: len(rows) - len(keep)],
                                                cols[: len(cols) - len(keep)]], tail[keep]))

    def _tail_rows(self):
        counts = np.diff(self.tail_ptr)
        return np.repeat(np.arange(self.n_dense, self.n_attributes, dtype=np.int64), counts)

    def to_dense(self, flat, out=None):
        """The ``(n_attributes, n_labels)`` matrix of a flat weight vector (zeros elsewhere)."""
        K, S = self.n_labels, self.stride
        head = self.n_dense * S
        if out is None:
            out = np.zeros((self.n_attributes, K))
        else:
            out[:] = 0.0
        out[: self.n_dense] = flat[:head].reshape(self.n_dense, S)[:, :K]
        out[self._tail_rows(), self.tail_labels] = flat[head:]
        return out

    def mask(self):
        """1.0 where a pair is kept, as an ``(n_attributes, n_labels)`` matrix."""
        return self.to_dense(np.ones(self.size))

    def from_dense(self, W):
        """The flat weight vector of the kept pairs of ``W`` ``(n_attributes, n_labels)``."""
        K, S = self.n_labels, self.stride
        flat = np.zeros(self.size)
        flat[: self.n_dense * S].reshape(self.n_dense, S)[:, :K] = W[: self.n_dense]
        flat[self.n_dense * S:] = W[self._tail_rows(), self.tail_labels]
        return flat


_NO_TAIL = (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32))


def dense_kernel_args(W):
    """The :meth:`StateLayout.kernel_args` of a dense ``(n_attributes, n_labels)`` matrix."""
    W = np.ascontiguousarray(W, dtype=np.float64)
    return (W.reshape(-1), W.shape[1], W.shape[0]) + _NO_TAIL
