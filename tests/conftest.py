import numpy as np
import pytest

# Tests import the installed fastcrf (import-mode=importlib); the shared helpers and
# oracles (helpers.py, brute_force.py, ...) are on sys.path through pytest's
# ``pythonpath`` (pyproject.toml).
from helpers import RANDOM_SEED


@pytest.fixture
def rng():
    return np.random.default_rng(RANDOM_SEED)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param
