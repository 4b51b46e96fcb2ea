"""fastcrf on a Dask cluster: distributed tagging and training.

Needs the optional extra ``pip install "fastcrf[dask]"`` (dask, distributed) and a
running :class:`distributed.Client` (``Client(LocalCluster())`` on one machine).

- :func:`fit` trains a :class:`fastcrf.CRF` on a bag of sequences with its own
  ``algorithm``: 'lbfgs' exactly (each worker keeps its encoded partitions and returns
  their log-likelihood and gradient, summed in a fixed tree; the driver takes the
  L-BFGS / OWL-QN step), 'asgd', 'ap' and 'pa' by iterative parameter mixing.  The
  attribute and label vocabularies are built across the partitions (counts merged,
  ``min_freq`` applied to the totals), so the ids are those of a fit on one machine.
  The fitted estimator is an ordinary model: it predicts and saves without Dask.
- :func:`predict` and :func:`predict_marginals` tag a bag partition by partition, the
  model sent to each worker once, the results in input order.
"""

try:
    import dask.bag  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastcrf.dask needs dask and distributed: pip install 'fastcrf[dask]'") from exc

from ._files import tag_files
from ._fit import fit
from ._predict import predict, predict_marginals

__all__ = ["fit", "predict", "predict_marginals", "tag_files"]
