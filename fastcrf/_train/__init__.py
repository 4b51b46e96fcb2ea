"""Training algorithms: one module per trainer, and the registry that names them.

Each trainer module defines a settings dataclass, a ``fit`` function and a
:class:`~fastcrf._train.base.Trainer` record (its defaults included); this registry
maps the estimator's ``algorithm`` values to those records.  A new algorithm is a new
module plus one line here.
"""

from .arow import AROW
from .base import LayoutWeights, Trainer
from .lbfgs import LBFGS
from .online import AP, PA
from .sgd import ASGD, L2SGD

#: ``algorithm`` value -> trainer, in the order the documentation lists them.
TRAINERS = {t.name: t for t in (ASGD, LBFGS, L2SGD, AP, PA, AROW)}

__all__ = ["TRAINERS", "LayoutWeights", "Trainer"]
