"""Empty sequences in training and prediction.

sklearn-crfsuite tags an empty sequence as an empty one (``predict([[]])`` gives
``[[]]``), trains past an empty sentence paired with an empty label list (it adds
nothing to the objective), and counts it as no tokens in ``score``; pipelines that
split text into sentences (two blank lines in a column file) produce them.  The kernels
and the encoder need at least one token per sequence, so the estimator leaves the
empty sequences of a list ``X`` out: its prediction methods put an empty result back
in their places, and ``fit`` / ``partial_fit`` / ``score`` drop the pairs of an empty
sequence and an empty label list (with their sample weights).
"""

import numpy as np

from ._sample_weight import check_sample_weight


def empty_positions(X):
    """Indices of the empty sequences of a list or tuple ``X`` (others: none)."""
    if not isinstance(X, (list, tuple)):
        return []
    return [i for i, seq in enumerate(X) if isinstance(seq, (list, tuple)) and not seq]


def around_empty(X, forced, run, empty_result):
    """``run(X, forced)`` (a list, one result per sequence) over the non-empty sequences
    of ``X`` only, with ``empty_result()`` at the positions of the empty ones.

    ``forced``: None or one entry per sequence of ``X``, left out alike.
    """
    empty = empty_positions(X)
    if not empty:
        return run(X, forced)
    skip = set(empty)
    if forced is not None:
        forced = list(forced)
        if len(forced) != len(X):
            raise ValueError(f"forced has {len(forced)} sequences but X has {len(X)}")
        forced = [f for i, f in enumerate(forced) if i not in skip]
    kept = [seq for i, seq in enumerate(X) if i not in skip]
    results = iter(run(kept, forced) if kept else [])
    return [empty_result() if i in skip else next(results) for i in range(len(X))]


def without_empty_pairs(X, y, sample_weight=None):
    """``(X, y, sample_weight, dropped)`` without the pairs of an empty sequence and
    an empty label list, as sklearn-crfsuite trains past them; ``dropped`` is their
    positions in the ``X`` given (none: the arguments come back unchanged).

    Only lists and tuples are looked into.  An empty sequence whose labels are not
    empty (or the reverse) raises a ValueError naming both.
    ``sample_weight`` is validated against ``len(X)`` first, so its messages count
    the sequences given.
    """
    if not isinstance(X, (list, tuple)) or not isinstance(y, (list, tuple)) \
            or len(X) != len(y):
        return X, y, sample_weight, []
    # A pair with one side empty is a mismatch, named here (the encoder, which sees
    # one side at a time, would only say that a sequence is empty).
    dropped = []
    for i, (seq, labels) in enumerate(zip(X, y)):
        x_empty = isinstance(seq, (list, tuple)) and not seq
        y_empty = _is_empty_labels(labels)
        if x_empty and y_empty:
            dropped.append(i)
        elif x_empty and isinstance(labels, (list, tuple, np.ndarray)):
            raise ValueError(f"X[{i}] is an empty sequence but y[{i}] has {len(labels)} "
                             "labels: give one label per token")
        elif y_empty and isinstance(seq, (list, tuple)):
            raise ValueError(f"y[{i}] is an empty sequence but X[{i}] has {len(seq)} "
                             "tokens: give one label per token")
    if not dropped:
        return X, y, sample_weight, []
    if len(dropped) == len(X):
        raise ValueError(f"X has no tokens: all its {len(X)} sequences are empty")
    if sample_weight is not None:
        weights = check_sample_weight(sample_weight, len(X))
        sample_weight = None if weights is None else np.delete(weights, dropped)
    skip = set(dropped)
    X = [seq for i, seq in enumerate(X) if i not in skip]
    y = [seq for i, seq in enumerate(y) if i not in skip]
    return X, y, sample_weight, dropped


def _is_empty_labels(labels):
    return isinstance(labels, (list, tuple, np.ndarray)) and len(labels) == 0


def note_dropped(error, dropped, arg="X"):
    """Add to ``error`` (raised after :func:`without_empty_pairs`) that the
    positions it names count ``arg``'s sequences without the empty ones."""
    if dropped and hasattr(error, "add_note"):   # Python >= 3.11
        shown = ", ".join(map(str, dropped[:5])) + (", ..." if len(dropped) > 5 else "")
        error.add_note(f"({arg}'s empty sequences, at {shown}, were left out before "
                       "this: positions above count without them)")
