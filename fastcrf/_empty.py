"""Empty sequences in prediction.

sklearn-crfsuite tags an empty sequence as an empty one (``predict([[]])`` gives
``[[]]``), and pipelines that split text into sentences produce them.  The kernels and
the encoder need at least one token per sequence, so the estimator's prediction
methods leave the empty sequences of a list ``X`` out, predict the others, and put an
empty result back in their places.
"""


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
