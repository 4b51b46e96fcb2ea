"""fastcrf: fast linear-chain conditional random fields.

:class:`CRF` trains a CRF over token features (a faster drop-in for
``sklearn_crfsuite.CRF``) by averaged SGD, L-BFGS, SGD, averaged perceptron or
passive-aggressive.

The dense API works on score arrays that any model can produce:

- :func:`log_partition`, :func:`log_likelihood` (with gradients), :func:`marginals`,
  :func:`path_score` and :func:`viterbi` (optionally constrained).

The kernels are compiled Cython with OpenMP across sequences; :func:`show_config`
tells how the extension was built.
"""

try:
    from . import _core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on how fastcrf was installed
    raise ImportError(
        "fastcrf's compiled extension could not be imported. If you ran Python from the "
        "root of fastcrf's source tree after `pip install .`, the uncompiled source folder "
        "shadows the installed package: run from another folder, or install with "
        "`pip install -e .` to build the extension in place."
    ) from exc

from ._config import show_config  # noqa: E402
from ._dense import (  # noqa: E402
    Gradients,
    log_likelihood,
    log_partition,
    marginals,
    path_score,
    viterbi,
)
from ._estimator import CRF, NotFittedError, TrainingLog  # noqa: E402
from ._version import __version__  # noqa: E402

__all__ = [
    "CRF",
    "NotFittedError",
    "TrainingLog",
    "Gradients",
    "__version__",
    "log_likelihood",
    "log_partition",
    "marginals",
    "path_score",
    "show_config",
    "viterbi",
]
