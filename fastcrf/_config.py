"""Report how the compiled core was built."""

import platform
import sys

import numpy as np

from ._kernels import _core
from ._version import __version__


def show_config(print_out: bool = True) -> dict:
    """Describe the build: OpenMP support, thread count and versions.

    Parameters
    ----------
    print_out : bool, default=True
        Print the description as well as returning it.

    Returns
    -------
    dict
        Keys ``fastcrf``, ``openmp``, ``max_threads``, ``python``, ``numpy``,
        ``platform``.

    Examples
    --------
    >>> import fastcrf
    >>> fastcrf.show_config(print_out=False)["openmp"] in (True, False)
    True
    """
    config = {
        "fastcrf": __version__,
        "openmp": _core.openmp_enabled(),
        "max_threads": _core.max_threads(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    if print_out:
        width = max(map(len, config))
        for key, value in config.items():
            print(f"{key:>{width}}: {value}")
    return config
