import os
import sys

import numpy as np
import pytest

# Tests import the installed fastcrf (import-mode=importlib); the oracles sit here.
sys.path.insert(0, os.path.dirname(__file__))

RANDOM_SEED = 0


@pytest.fixture
def rng():
    return np.random.default_rng(RANDOM_SEED)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def make_problem(rng, B, T, K, scale=1.0, ragged=True, dtype=np.float64):
    """Random scores, tags and (optionally ragged, including 0 and T) lengths."""
    em = (rng.standard_normal((B, T, K)) * scale).astype(dtype)
    trans = rng.standard_normal((K, K)) * scale
    start = rng.standard_normal(K) * scale
    end = rng.standard_normal(K) * scale
    if ragged:
        lengths = rng.integers(0, T + 1, size=B)
        lengths[0] = T
    else:
        lengths = np.full(B, T)
    tags = rng.integers(0, K, size=(B, T))
    tags[np.arange(T)[None, :] >= lengths[:, None]] = -1
    return em, tags, trans, start, end, lengths
