"""``fit(..., sample_weight=...)``: one non-negative weight per training sequence.

A sequence of weight ``w`` counts ``w`` times in the objective: its log-likelihood
and its gradient are multiplied by ``w`` (L-BFGS / OWL-QN, exactly: a weight of 2 is
the sequence given twice), its SGD step is scaled by ``w``, and so is its
perceptron / passive-aggressive / AROW update.  The validated weights ride on
:class:`fastcrf._training.TrainingData` as ``weights`` (None: all 1).
"""

import numbers

import numpy as np


def check_sample_weight(sample_weight, n_sequences=None):
    """Validate ``sample_weight``: a float64 array, or None when it is None or all 1.

    Returning None for unit weights keeps an unweighted fit on its unweighted code
    path, so its result is bitwise that of a fit without ``sample_weight``.

    Parameters
    ----------
    sample_weight : array-like of shape (n_sequences,) or None
    n_sequences : int, optional
        The number of training sequences, when known (checked against the length).

    Returns
    -------
    ndarray of shape (n_sequences,), float64, or None

    Raises
    ------
    TypeError
        For weights that are not real numbers.
    ValueError
        For a wrong length, a non-finite or negative weight, or all weights 0.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (str, bytes)) or isinstance(sample_weight, numbers.Number):
        raise TypeError("sample_weight must be a sequence of numbers (one per training "
                        f"sequence), got {type(sample_weight).__name__}")
    try:
        w = np.asarray(sample_weight)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"sample_weight must be a sequence of numbers: {exc}") from None
    if w.dtype == bool or not (np.issubdtype(w.dtype, np.integer)
                               or np.issubdtype(w.dtype, np.floating)):
        raise TypeError("sample_weight must hold real numbers, got dtype "
                        f"{w.dtype}")
    if w.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D (one weight per sequence), got shape "
                         f"{w.shape}")
    if n_sequences is not None and len(w) != n_sequences:
        raise ValueError(f"sample_weight has {len(w)} weights but X has {n_sequences} "
                         "sequences")
    w = np.ascontiguousarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"sample_weight must be finite, got {w[~np.isfinite(w)][0]} at "
                         f"index {int(np.flatnonzero(~np.isfinite(w))[0])}")
    if np.any(w < 0):
        i = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"sample_weight must be >= 0, got {w[i]} at index {i}")
    if len(w) and not np.any(w > 0):
        raise ValueError("sample_weight is 0 for every sequence: nothing to train on")
    return None if np.all(w == 1.0) else w


def token_weights(data):
    """Each token's weight (its sequence's) for the state gradient, or None."""
    if data.weights is None:
        return None
    return np.repeat(data.weights, np.diff(data.features.seq_offsets))


def weighted_sum(values, weights):
    """``sum(values * weights)`` without BLAS (``weights`` None: ``sum(values)``)."""
    if weights is None:
        return float(np.sum(values))
    return float(np.einsum("i,i->", values, weights))
