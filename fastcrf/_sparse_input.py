"""scipy.sparse input: a token matrix plus sequence lengths, seqlearn's convention.

``X`` of shape (n_tokens, n_features) holds one row per token, the sequences one after
the other; ``lengths`` gives each sequence's number of rows.  Column ``j`` is the
attribute named ``feature_names[j]`` (``str(j)`` by default) with the entry as its
weight, so row ``t`` means the token dict ``{feature_names[j]: X[t, j]}`` over its
stored entries in increasing column order.

The matrix is made canonical first, as scipy's own CSR operations read it: entries of
the same (row, column) are summed, and a stored 0 is the same as no entry (so it is
dropped: a 0 in a token dict would still count as an occurrence for ``min_freq``).
Non-finite entries are refused.

:func:`sparse_dataset` turns the matrix into a :class:`fastcrf.Dataset` whose
attributes are numbered as :func:`fastcrf._training.encode_training` numbers those of
the equivalent token dicts (first seen, then by decreasing count), so a fit on it
gives bitwise the model of the dicts.
"""

import numbers

import numpy as np

from ._features._encoding import EncodedSequences, encode_labels


def is_sparse(X):
    """Whether ``X`` is a scipy.sparse matrix or array (scipy imported only if it is
    already loaded: nothing else can have made one)."""
    import sys

    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


def check_lengths(lengths, n_rows, what="X"):
    """``lengths`` as the int64 sequence offsets ``[0, cumsum(lengths)]``.

    Raises
    ------
    TypeError
        For lengths that are not integers.
    ValueError
        For lengths that are not a non-empty 1-d array of ints >= 1 summing to
        ``n_rows``.
    """
    if lengths is None:
        raise ValueError(f"lengths is required with a scipy.sparse {what}: the number of "
                         "rows (tokens) of each sequence, in order")
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"lengths must be 1-d (one length per sequence), got shape "
                         f"{arr.shape}")
    if len(arr) == 0:
        raise ValueError("lengths is empty: give at least one sequence")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "O" and all(isinstance(v, numbers.Integral)
                                         and not isinstance(v, bool) for v in arr):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"lengths must hold ints, got dtype {arr.dtype}")
    if (arr < 1).any():
        bad = int(np.flatnonzero(arr < 1)[0])
        raise ValueError(f"lengths[{bad}] = {arr[bad]}: every sequence needs at least "
                         "one token")
    offsets = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(arr, out=offsets[1:])
    if offsets[-1] != n_rows:
        raise ValueError(f"lengths sum to {offsets[-1]} but {what} has {n_rows} rows: "
                         "they must sum to the number of rows (tokens)")
    return offsets


def canonical_csr(X, what="X"):
    """``(indptr int64, indices int32, data float64, n_features)`` of a scipy.sparse
    ``X``: CSR, duplicates summed, columns sorted within rows, stored zeros dropped.
    ``X`` itself is not modified.

    Raises
    ------
    TypeError
        For a matrix that is not 2-d or not of real numbers.
    ValueError
        For a NaN or infinite entry, or more than 2**31 - 1 columns.
    """
    if X.ndim != 2:
        raise TypeError(f"{what} must be a 2-d sparse matrix (n_tokens, n_features), got "
                        f"{X.ndim} dimensions")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold real numbers, got dtype {X.dtype}")
    n_features = X.shape[1]
    if n_features > np.iinfo(np.int32).max:
        raise ValueError(f"{what} has {n_features} columns; at most 2**31 - 1 are supported")
    # A copy in float64: canonicalising works in place.
    X = X.tocsr().astype(np.float64, copy=True)
    X.sum_duplicates()
    if not np.isfinite(X.data).all():
        bad = int(np.flatnonzero(~np.isfinite(X.data))[0])
        row = int(np.searchsorted(X.indptr, bad, side="right") - 1)
        raise ValueError(f"{what}[{row}, {X.indices[bad]}] = {X.data[bad]}: feature values "
                         "must be finite (no NaN or inf)")
    X.eliminate_zeros()
    return (X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data, n_features)


def column_names(feature_names, n_features, what="X"):
    """The attribute name of every column: ``feature_names`` as a list of distinct str
    (e.g. a DictVectorizer's ``get_feature_names_out()``), or ``"0"``, ``"1"``, ..."""
    if feature_names is None:
        return [str(j) for j in range(n_features)]
    if isinstance(feature_names, (str, bytes)):
        raise TypeError("feature_names must be a list of str, one per column, got a "
                        "single str")
    names = list(feature_names)
    if len(names) != n_features:
        raise ValueError(f"feature_names has {len(names)} names but {what} has "
                         f"{n_features} columns")
    for j, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"feature_names[{j}] must be a str, got {name!r} "
                            f"({type(name).__name__})")
    names = [str(name) for name in names]
    if len(set(names)) != len(names):
        seen = set()
        dup = next(name for name in names if name in seen or seen.add(name))
        raise ValueError(f"feature_names must be distinct; {dup!r} appears more than once")
    return names


def label_sequences(y, offsets):
    """``y`` as one label sequence per sequence: a flat sequence of one label per row
    (seqlearn's ``y``) is cut by ``offsets``; a sequence of label sequences is returned
    as it is (``encode_labels`` checks each length)."""
    if isinstance(y, (str, bytes)):
        raise TypeError("y must be a sequence of labels, got a single str")
    if isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "UO":
        y = y.tolist()
    try:
        y = list(y)
    except TypeError:
        raise TypeError(f"y must be a sequence of labels, got {type(y).__name__}") from None
    if y and all(isinstance(label, str) for label in y):
        n_rows = int(offsets[-1])
        if len(y) != n_rows:
            raise ValueError(f"y holds {len(y)} labels but X has {n_rows} rows: a flat y "
                             "needs one label per row (or give one list per sequence)")
        bounds = offsets.tolist()
        return [y[bounds[s]:bounds[s + 1]] for s in range(len(bounds) - 1)]
    return y


def sparse_dataset(X, y=None, *, lengths, feature_names=None):
    """A :class:`fastcrf.Dataset` of a scipy.sparse token matrix (see the module
    docstring).

    Parameters
    ----------
    X : scipy.sparse matrix or array of shape (n_tokens, n_features)
    y : sequence of str, or sequence of sequences of str, optional
        One label per row, flat (seqlearn's convention) or one list per sequence.
    lengths : array-like of int of shape (n_sequences,)
        Rows per sequence; they sum to ``n_tokens``.
    feature_names : sequence of str of length n_features, optional
        The attribute name of every column (default ``"0"``, ``"1"``, ...).

    Returns
    -------
    Dataset
        Its attributes are the columns with at least one entry, numbered by
        decreasing count (ties: the column seen first in row order first), as a fit
        numbers the attributes of the equivalent token dicts.
    """
    from ._dataset import Dataset  # imports the estimator's modules

    indptr, indices, data, n_features = canonical_csr(X)
    offsets = check_lengths(lengths, len(indptr) - 1)
    names = column_names(feature_names, n_features)
    counts = np.bincount(indices, minlength=n_features)
    columns, first = np.unique(indices, return_index=True)
    seen = columns[np.argsort(first, kind="stable")]
    order = seen[np.argsort(-counts[seen], kind="stable")]
    rank = np.full(n_features, -1, dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    attr_ids = rank[indices]
    values = data if len(data) and not np.all(data == 1.0) else np.zeros(0)
    features = EncodedSequences(attr_ids, values, indptr, offsets, len(order))
    labels = classes = None
    if y is not None:
        classes, labels = encode_labels(label_sequences(y, offsets),
                                        lengths=np.diff(offsets))
    return Dataset(features, [names[j] for j in order.tolist()], counts[order], labels,
                   classes, 0)


def as_input(X, y=None, lengths=None, feature_names=None, names_in=None):
    """What ``CRF.fit`` / ``predict`` take in place of a sparse ``X``: ``(X, y)``
    unchanged for other inputs, else ``(Dataset, None)``.  ``names_in``: the column
    names a model was fitted with, used when ``feature_names`` is not given.

    Raises
    ------
    ValueError
        For ``lengths`` or ``feature_names`` given with an ``X`` that is not sparse.
    """
    if not is_sparse(X):
        if lengths is not None or feature_names is not None:
            raise ValueError("lengths and feature_names are for a scipy.sparse X (one row "
                             f"per token); X is a {type(X).__name__}")
        return X, y
    if feature_names is None:
        feature_names = names_in
    return sparse_dataset(X, y, lengths=lengths, feature_names=feature_names), None
