"""fastcrf: fast linear-chain conditional random fields.

:class:`CRF` trains a CRF over token features (a faster drop-in for
``sklearn_crfsuite.CRF``) by averaged SGD, L-BFGS, SGD, averaged perceptron or
passive-aggressive.

The dense API works on score arrays that any model can produce:

- :func:`log_partition`, :func:`log_likelihood` (with gradients), :func:`marginals`,
  :func:`path_score` and :func:`viterbi` (optionally constrained).
- :func:`edge_marginals`, :func:`posterior_decode`, k-best ``viterbi(..., k=)``;
  ``allowed=`` / ``label_mask=`` constraints, from :func:`allowed_transitions`.

The sequence-labelling toolkit lives in submodules, imported on first use:

- :mod:`fastcrf.io`: CoNLL-style column files;
- :mod:`fastcrf.templates`: CRF++ feature templates;
- :mod:`fastcrf.metrics`: conlleval-exact chunk scores and flat scores;
- :mod:`fastcrf.datasets`: synthetic sequence data.

The ``fastcrf`` command (:mod:`fastcrf.cli`; also ``python -m fastcrf``) trains, tags,
evaluates and describes models on column files.

The kernels are compiled Cython with OpenMP across sequences; :func:`show_config`
tells how the extension was built.
"""

try:
    from ._kernels import _core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on how fastcrf was installed
    raise ImportError(
        "fastcrf's compiled extension could not be imported. If you ran Python from the "
        "root of fastcrf's source tree after `pip install .`, the uncompiled source folder "
        "shadows the installed package: run from another folder, or install with "
        "`pip install -e .` to build the extension in place."
    ) from exc

from ._config import show_config  # noqa: E402
from ._constraints import allowed_transitions  # noqa: E402
from ._dense import (  # noqa: E402
    Gradients,
    edge_marginals,
    log_likelihood,
    log_partition,
    marginals,
    path_score,
    posterior_decode,
    viterbi,
)
from ._dataset import Dataset  # noqa: E402
from ._estimator import CRF, NotFittedError, TrainingLog  # noqa: E402
from ._version import __version__  # noqa: E402

_SUBMODULES = ("datasets", "io", "metrics", "templates")


def __getattr__(name):
    # Submodules load on first access, so ``import fastcrf`` stays cheap.
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))


__all__ = [
    "CRF",
    "Dataset",
    "NotFittedError",
    "TrainingLog",
    "Gradients",
    "__version__",
    "allowed_transitions",
    "edge_marginals",
    "datasets",
    "io",
    "log_likelihood",
    "log_partition",
    "marginals",
    "metrics",
    "path_score",
    "posterior_decode",
    "show_config",
    "templates",
    "viterbi",
]
