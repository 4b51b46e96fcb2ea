"""python-crfsuite's API over fastcrf's engine.

Replace ``import pycrfsuite`` with ``from fastcrf import pycrfsuite``; the rest of a
script runs unchanged::

    from fastcrf import pycrfsuite

    trainer = pycrfsuite.Trainer(verbose=False)
    for xseq, yseq in zip(X_train, y_train):
        trainer.append(xseq, yseq)
    trainer.select("lbfgs")
    trainer.set_params({"c1": 0.1, "c2": 0.01, "max_iterations": 100})
    trainer.train("model.crfsuite")

    tagger = pycrfsuite.Tagger()
    tagger.open("model.crfsuite")
    tagger.tag(xseq)

- :class:`Trainer` / :class:`BaseTrainer`: ``append``, ``select``, CRFsuite's
  parameter names (``set``/``get``/``set_params``/``get_params``/``params``/``help``),
  ``train(model, holdout)`` with CRFsuite's log (``message``, the ``on_*`` hooks,
  ``logparser``).  Models are trained by fastcrf ('lbfgs', 'l2sgd', 'ap', 'pa'),
  without start/end scores as in CRFsuite, and written in CRFsuite's file format:
  python-crfsuite's ``Tagger`` opens them.
- :class:`Tagger`: ``open``/``open_inmemory`` (CRFsuite files, python-crfsuite's
  included, and fastcrf files), ``set``, ``tag``, ``probability``, ``marginal``,
  ``labels``, ``info``, ``dump``, ``close``; usable as a context manager.
- :class:`ItemSequence`: items flattened once, for reuse.

Where fastcrf differs: a parameter value that is not a number is a ``ValueError``
(CRFsuite reads it as 0); ``train`` with no instance writes a model without weights,
as CRFsuite does, but :class:`Tagger` refuses to open one without labels (CRFsuite's
opens it and crashes on ``tag``); items CRFsuite cannot read are a ``TypeError`` (not
a ``SystemError``); ``help`` describes the parameters in fastcrf's words; :class:`ParsedDump` also has ``start_weights`` / ``end_weights``
(empty but for fastcrf models); training uses all cores (``n_jobs``) and fastcrf's own
optimisers, so weights differ from CRFsuite's within the optimisers' tolerance
(L-BFGS reaches the same optimum).
"""

from ._items import ItemSequence
from ._log import LabelScore, TrainLogParser
from ._tagger import ParsedDump, Tagger
from ._trainer import BaseTrainer, Trainer


#: The CRFsuite version whose model files and behaviour this module follows.
CRFSUITE_VERSION = "0.12.2"


class CRFSuiteError(Exception):
    """python-crfsuite's error of a failed CRFsuite call (fastcrf raises ValueError
    or TypeError instead; the class exists for code that catches it)."""


__all__ = ["BaseTrainer", "CRFSUITE_VERSION", "CRFSuiteError", "ItemSequence", "LabelScore", "ParsedDump",
           "Tagger", "TrainLogParser", "Trainer"]
