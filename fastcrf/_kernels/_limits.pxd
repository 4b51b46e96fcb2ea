# The shared numeric limits (_limits.h, where each is explained), for the kernels.
# Python code reads them from fastcrf._kernels._core.

cdef extern from "_limits.h":
    const double MAX_SCORE "FCRF_MAX_SCORE"
    const double RAW_EDGE_RANGE "FCRF_RAW_EDGE_RANGE"
    const double UNDERFLOW_TERM "FCRF_UNDERFLOW_TERM"
    const double LOSS_TOL "FCRF_LOSS_TOL"
