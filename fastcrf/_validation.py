"""Input checks for the dense API.

The compiled kernels trust their inputs completely; everything they rely on is
established here: dtypes, C-contiguity, shapes, scores that are finite or -inf
("impossible") at every real position, lengths within ``[0, T]`` and tags within
``[0, K)``.  Every error names the offending argument.
"""

from dataclasses import dataclass

import numpy as np

# Scores beyond this magnitude are rejected: sums over any realistic sequence length
# then stay far from double overflow (1.8e308), so no kernel ever sees inf or NaN.
from ._kernels._core import MAX_SCORE  # defined once, in fastcrf/_kernels/_limits.h


@dataclass(frozen=True)
class DenseBatch:
    """Validated inputs of the dense API: the scores of a batch of sequences.

    Attributes
    ----------
    emissions : ndarray of shape (B, T, K), float32 or float64, C-contiguous
    transitions : ndarray of shape (K, K), float64, C-contiguous
    start, end : ndarray of shape (K,), float64
    lengths : ndarray of shape (B,), int64, each in ``[0, T]``
    dtype : numpy dtype of the results: float32 for float16/float32 emissions,
        float64 otherwise
    """

    emissions: np.ndarray
    transitions: np.ndarray
    start: np.ndarray
    end: np.ndarray
    lengths: np.ndarray
    dtype: np.dtype

    @property
    def shape(self):
        """``(B, T, K)``."""
        return self.emissions.shape


def _as_array(value, name):
    """``np.asarray(value)``, with a conversion failure reported against ``name``."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists, odd objects
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None


def _as_int_array(value, name, what):
    """Return ``value`` as an ndarray of integers (not bools), or raise naming ``name``."""
    arr = _as_array(value, name)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be {what}, got dtype {arr.dtype}")
    return arr


def _as_real_array(value, name):
    """Return ``value`` as an ndarray of real numbers, or raise naming ``name``."""
    arr = _as_array(value, name)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (float or int), got dtype {arr.dtype}"
        )
    return arr


def _result_dtype(emissions):
    # The emissions are the large array: their dtype decides the kernel's input and
    # output type (no silent upcast copy); smaller floats widen to float32, integers
    # to float64.  Parameters are always used in float64.
    if emissions.dtype.kind == "f" and emissions.dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _check_scores(value, name, shape, dtype, valid=None):
    """``value`` as a C-contiguous ``dtype`` array of ``shape``, its scores checked.

    -inf means "impossible" and is accepted; NaN, +inf and finite magnitudes beyond
    ``MAX_SCORE`` are errors.  ``valid`` (bool, broadcast over the last axis) limits
    the check to the real positions of a padded batch: padding may hold anything.
    """
    arr = _as_real_array(value, name)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if arr.size:
        # min and max propagate NaN and need no temporary array: the common all-finite
        # case costs two passes.
        lo, hi = float(arr.min()), float(arr.max())
        if not (np.isfinite(lo) and np.isfinite(hi) and max(-lo, hi) <= MAX_SCORE):
            _check_score_values(arr if valid is None else arr[valid], name)
    return np.ascontiguousarray(arr, dtype=dtype)


def _check_score_values(values, name):
    """Raise naming ``name`` when ``values`` hold NaN, +inf or a finite score too large."""
    if values.dtype.kind != "f" or not values.size:
        bad_hi = np.abs(values).max() if values.size else 0
    else:
        if np.isnan(values).any() or np.isposinf(values).any():
            raise ValueError(
                f"{name} contains NaN or +inf values (only -inf, meaning impossible, is "
                "accepted among the non-finite scores)")
        finite = values[np.isfinite(values)]
        bad_hi = float(np.abs(finite).max()) if finite.size else 0.0
    if bad_hi > MAX_SCORE:
        raise ValueError(
            f"{name} has values of magnitude up to {float(bad_hi):.3g}; scores must lie "
            f"within +-{MAX_SCORE:g} (rescale them)"
        )


def check_lengths(lengths, n_sequences, max_length):
    """Validate ``lengths`` against a batch of ``n_sequences`` of at most ``max_length``.

    Parameters
    ----------
    lengths : array-like of int of shape (n_sequences,) or None
        ``None`` means every sequence has ``max_length`` items.
    n_sequences, max_length : int

    Returns
    -------
    ndarray of shape (n_sequences,), int64
    """
    if lengths is None:
        return np.full(n_sequences, max_length, dtype=np.int64)
    arr = _as_int_array(lengths, "lengths", "integers")
    if arr.ndim != 1 or arr.shape[0] != n_sequences:
        raise ValueError(
            f"lengths must have shape ({n_sequences},), one per sequence, got {arr.shape}"
        )
    if n_sequences and (arr.min() < 0 or arr.max() > max_length):
        raise ValueError(
            f"lengths must lie in [0, {max_length}] (the emissions' T), "
            f"got values in [{arr.min()}, {arr.max()}]"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_batch(emissions, transitions, start=None, end=None, lengths=None):
    """Validate the score arrays shared by every dense function.

    Parameters
    ----------
    emissions : array-like of shape (B, T, K)
    transitions : array-like of shape (K, K)
    start, end : array-like of shape (K,) or None
    lengths : array-like of shape (B,) or None

    Returns
    -------
    DenseBatch
    """
    em = _as_real_array(emissions, "emissions")
    if em.ndim != 3:
        raise ValueError(
            f"emissions must be 3-D (batch, time, labels), got {em.ndim}-D with shape "
            f"{em.shape}"
        )
    B, T, K = em.shape
    if K < 1:
        raise ValueError("emissions must have at least one label (K >= 1), got K = 0")
    dtype = _result_dtype(em)
    lengths = check_lengths(lengths, B, T)
    valid = np.arange(T)[None, :] < lengths[:, None]
    em = _check_scores(em, "emissions", (B, T, K), dtype, valid)
    tr = _check_scores(transitions, "transitions", (K, K), np.float64)
    st = np.zeros(K) if start is None else _check_scores(start, "start", (K,), np.float64)
    en = np.zeros(K) if end is None else _check_scores(end, "end", (K,), np.float64)
    return DenseBatch(em, tr, st, en, lengths, dtype)


def check_tags(tags, batch, unknown=False):
    """Validate gold label indices for ``batch`` (a :class:`DenseBatch`).

    Positions at or past a sequence's length are ignored and may hold anything
    (e.g. -1 padding).  With ``unknown``, -1 within a length is accepted too (a
    position whose label is unknown).

    Returns
    -------
    ndarray of shape (B, T), int64
    """
    B, T, K = batch.shape
    arr = _as_int_array(tags, "tags", "integer label indices")
    if arr.shape != (B, T):
        raise ValueError(f"tags must have shape {(B, T)} like emissions[..., 0], got {arr.shape}")
    valid = np.arange(T)[None, :] < batch.lengths[:, None]
    used = arr[valid]
    lowest = -1 if unknown else 0
    if used.size and (used.min() < lowest or used.max() >= K):
        bad = np.argwhere(valid & ((arr < lowest) | (arr >= K)))[0]
        raise ValueError(
            f"tags must lie in [0, {K - 1}]{' (or be -1: unknown)' if unknown else ''} "
            "within each sequence's length; "
            f"tags[{bad[0]}, {bad[1]}] = {arr[tuple(bad)]}"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_label_mask(label_mask, batch):
    """Validate a per-position label mask for ``batch`` (a :class:`DenseBatch`).

    Parameters
    ----------
    label_mask : array-like of bool of shape (B, T, K)
        ``label_mask[b, t, k]`` permits label k at position t of sequence b; values
        past a sequence's length are ignored.

    Returns
    -------
    ndarray of shape (B, T, K), bool, C-contiguous
    """
    arr = _as_array(label_mask, "label_mask")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iu" or not np.isin(arr, (0, 1)).all():
            raise TypeError(f"label_mask must be boolean, got dtype {arr.dtype}")
        arr = arr.astype(bool)
    if arr.shape != batch.shape:
        raise ValueError(
            f"label_mask must have shape {batch.shape} like emissions, got {arr.shape}")
    return np.ascontiguousarray(arr)


def constrain(batch, allowed=None, label_mask=None):
    """``batch`` with what ``allowed`` and ``label_mask`` forbid scored -inf.

    Parameters
    ----------
    batch : DenseBatch
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2), or None
        See :func:`check_allowed`.
    label_mask : array-like of bool of shape (B, T, K), or None
        See :func:`check_label_mask`.

    Returns
    -------
    DenseBatch
        The same arrays when both are None; otherwise new score arrays.
    """
    em, tr, st, en = batch.emissions, batch.transitions, batch.start, batch.end
    if allowed is not None:
        ok, st_ok, en_ok = check_allowed(allowed, batch.shape[2])
        tr = np.where(ok, tr, -np.inf)
        st = np.where(st_ok, st, -np.inf)
        en = np.where(en_ok, en, -np.inf)
    if label_mask is not None:
        mask = check_label_mask(label_mask, batch)
        em = np.where(mask, em, np.array(-np.inf, dtype=em.dtype))
    return DenseBatch(em, tr, st, en, batch.lengths, batch.dtype)


def check_allowed(allowed, n_labels):
    """Validate a transition constraint mask.

    Parameters
    ----------
    allowed : array-like of bool of shape (K, K) or (K + 2, K + 2)
        ``allowed[i, j]`` permits the transition i -> j.  The (K + 2, K + 2) form is
        AllenNLP's: index K is the start state and K + 1 the end state, so
        ``allowed[K, j]`` permits starting with j and ``allowed[i, K + 1]`` ending
        with i.
    n_labels : int

    Returns
    -------
    transitions_ok : ndarray of shape (K, K), bool
    start_ok, end_ok : ndarray of shape (K,), bool
    """
    arr = _as_array(allowed, "allowed")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iu" or not np.isin(arr, (0, 1)).all():
            raise TypeError(f"allowed must be a boolean matrix, got dtype {arr.dtype}")
        arr = arr.astype(bool)
    K = n_labels
    if arr.shape == (K, K):
        return arr, np.ones(K, bool), np.ones(K, bool)
    if arr.shape == (K + 2, K + 2):
        return arr[:K, :K], arr[K, :K], arr[:K, K + 1]
    raise ValueError(f"allowed must have shape {(K, K)} or {(K + 2, K + 2)}, got {arr.shape}")
