"""What ``CRF.predict`` and ``CRF.predict_marginals`` return: a list of sequences
that also compares as sklearn-crfsuite 0.5's numpy object array.

sklearn-crfsuite returned lists up to 0.3.6 and returns
``np.array(list_of_sequences, dtype=object)`` since 0.5.0: a 2-D array when every
sequence has the same length (a row per sequence), a 1-D array of lists otherwise.
Code written for either version runs on :class:`LabelSequences`:

- it is the list of lists (indexing gives the inner lists, ``+`` concatenates, it
  prints and serialises as lists), with ``tolist()`` as the array has;
- ``==`` and ``!=`` answer both ways at once: the result is numpy's elementwise
  comparison of that object array with the other operand (sklearn-crfsuite 0.5's
  tests write ``(crf.predict([x]) == y).all()``, which broadcasts one sequence's
  row against its labels), and its truth value is the list comparison's
  (``assert crf.predict(X) == y``, as with 0.3's lists).
"""

import numpy as np


def as_object_array(sequences):
    """``np.array(sequences, dtype=object)``, as sklearn-crfsuite 0.5 builds it (a row
    per sequence when all have the same length, else an array of the sequences)."""
    if len({len(seq) for seq in sequences}) == 1:
        return np.array(sequences, dtype=object)
    array = np.empty(len(sequences), dtype=object)
    for i, seq in enumerate(sequences):
        array[i] = seq
    return array


def _is_sequence(value):
    return isinstance(value, (list, tuple, np.ndarray))


def _same_sequences(ours, other):
    """The list comparison ``ours == other``, also for an ``other`` whose sequences
    are tuples or numpy arrays (compared item by item)."""
    if not _is_sequence(other) or len(ours) != len(other):
        return False
    return all(_is_sequence(b) and len(a) == len(b) and all(x == y for x, y in zip(a, b))
               for a, b in zip(ours, other))


class _Comparison(np.ndarray):
    """The elementwise comparison of :class:`LabelSequences` with another operand (a
    bool array), whose truth value is the list comparison's.  Arrays derived from it
    (``.all()``, slices, ufuncs) have numpy's truth value."""

    _truth = None

    def __array_finalize__(self, obj):
        self._truth = None

    def __bool__(self):
        if self._truth is None:
            return bool(np.asarray(self))
        return self._truth


def _compare(ours, other, equal):
    """``ours == other`` (``equal``) or ``ours != other``: module docstring."""
    same = _same_sequences(ours, other)
    op = np.equal if equal else np.not_equal
    try:
        elementwise = np.asarray(op(as_object_array(ours), other), dtype=bool)
    except (ValueError, TypeError):
        # A ragged list of lists (numpy cannot make it an array) or shapes that do
        # not broadcast: one answer per sequence, when there are as many.
        if _is_sequence(other) and len(other) == len(ours):
            elementwise = np.array([_same_sequences([a], [b]) == equal
                                    for a, b in zip(ours, other)], dtype=bool)
        else:
            elementwise = np.array(not equal)
    result = elementwise.view(_Comparison)
    result._truth = same if equal else not same
    return result


class LabelSequences(list):
    """A list of label sequences (or of marginal dicts) that also compares as
    sklearn-crfsuite 0.5's object array (module docstring)."""

    __slots__ = ()

    def __eq__(self, other):
        return _compare(self, other, True)

    def __ne__(self, other):
        return _compare(self, other, False)

    __hash__ = None

    def tolist(self):
        """The sequences as a plain list of lists (the array's ``tolist``)."""
        return [list(seq) for seq in self]
