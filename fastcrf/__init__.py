"""fastcrf: fast linear-chain conditional random fields.

The dense API works on score arrays that any model can produce:

- :func:`log_partition`, :func:`log_likelihood` (with gradients), :func:`marginals`,
  :func:`path_score` and :func:`viterbi` (optionally constrained).

The kernels are compiled Cython with OpenMP across sequences; :func:`show_config`
tells how the extension was built.
"""

from ._config import show_config
from ._dense import Gradients, log_likelihood, log_partition, marginals, path_score, viterbi
from ._version import __version__

__all__ = [
    "Gradients",
    "__version__",
    "log_likelihood",
    "log_partition",
    "marginals",
    "path_score",
    "show_config",
    "viterbi",
]
