"""python-crfsuite's ``pycrfsuite._logparser`` module path: code that imports
``TrainLogParser`` from there finds fastcrf's (:mod:`fastcrf.pycrfsuite._log`)."""

# Absolute: under an alias (sys.modules["pycrfsuite"] = fastcrf.pycrfsuite) this file
# is imported as "pycrfsuite._logparser", where a relative import would load a second
# copy of _log outside the fastcrf package.
from fastcrf.pycrfsuite._log import LabelScore, TrainLogParser

__all__ = ["LabelScore", "TrainLogParser"]
