# Type stub for the compiled kernels (fastcrf/_kernels/_core.pyx).  Internal API: the
# public functions live in fastcrf._dense and validate everything before calling these.
import numpy as np
from numpy.typing import NDArray

# The numeric limits of _limits.h.
MAX_SCORE: float
RAW_EDGE_RANGE: float
UNDERFLOW_TERM: float
LOSS_TOL: float

def openmp_enabled() -> bool: ...
def max_threads() -> int: ...
def simd_dispatch() -> bool: ...
def chunk_size() -> int: ...
def forward_backward(
    emissions: NDArray[np.floating],
    lengths: NDArray[np.int64],
    tags: NDArray[np.int64],
    trans: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    logz_out: NDArray[np.float64],
    score_out: NDArray[np.float64],
    node_out: NDArray[np.floating],
    chunk_out: NDArray[np.float64],
    n_threads: int,
) -> None: ...
def viterbi(
    emissions: NDArray[np.floating],
    lengths: NDArray[np.int64],
    trans: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    paths_out: NDArray[np.int64],
    score_out: NDArray[np.float64],
    n_threads: int,
) -> None: ...
def path_scores(
    emissions: NDArray[np.floating],
    lengths: NDArray[np.int64],
    tags: NDArray[np.int64],
    trans: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    score_out: NDArray[np.float64],
) -> None: ...
def forward_backward_partial(
    emissions: NDArray[np.floating],
    lengths: NDArray[np.int64],
    compatible: NDArray[np.uint8],
    trans: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    logz_out: NDArray[np.float64],
    clamped_out: NDArray[np.float64],
    node_out: NDArray[np.floating],
    chunk_out: NDArray[np.float64],
    n_threads: int,
) -> None: ...
def edge_marginals(
    emissions: NDArray[np.floating],
    lengths: NDArray[np.int64],
    trans: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    logz_out: NDArray[np.float64],
    edge_out: NDArray[np.floating],
    n_threads: int,
) -> None: ...
def viterbi_nbest(
    emissions: NDArray[np.floating],
    lengths: NDArray[np.int64],
    trans: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    paths_out: NDArray[np.int64],
    score_out: NDArray[np.float64],
    n_threads: int,
) -> None: ...
