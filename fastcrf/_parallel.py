"""Map scikit-learn style ``n_jobs`` to an OpenMP thread count."""

import numbers
import os

from ._kernels import _core


def effective_n_threads(n_jobs, n_tasks=None) -> int:
    """Return the number of OpenMP threads to use for ``n_jobs``.

    Parameters
    ----------
    n_jobs : int or None
        ``None`` or ``-1`` use every thread OpenMP would use by default (which honours
        ``OMP_NUM_THREADS`` and threadpoolctl); ``-2`` all but one, and so on;
        a positive value is used as given, up to the number of CPUs; ``0`` is an error.
    n_tasks : int, optional
        Number of independent work items: no more threads than this are started.

    Returns
    -------
    int
        At least 1; always 1 when the extension was built without OpenMP.
    """
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)
    ):
        raise TypeError(f"n_jobs must be an int or None, got {type(n_jobs).__name__}")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive int")
    if not _core.openmp_enabled():
        return 1
    max_threads = _core.max_threads()
    if n_jobs is None:
        n = max_threads
    elif n_jobs < 0:
        n = max(1, max_threads + 1 + int(n_jobs))
    else:
        # More threads than CPUs never speeds up these compute-bound loops, and an
        # absurd count makes the OpenMP runtime abort the process.
        n = min(int(n_jobs), max(max_threads, os.cpu_count() or 1))
    if n_tasks is not None:
        n = min(n, max(1, int(n_tasks)))
    return n
