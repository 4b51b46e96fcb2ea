"""AROW ('arow'): CRFsuite's Adaptive Regularization of Weights (Mejer and Crammer
2010, "Confidence in structured-prediction using confidence-weighted models").

Each weight has a mean and a variance (a diagonal Gaussian, every variance starting
at ``variance``).  A sequence whose Viterbi path differs from the gold one moves the
means along ``Phi(gold) - Phi(best)``, each scaled by its own variance, and shrinks
the variances of the weights it touched; ``gamma`` trades the loss against the
change.  The model is the means (no averaging).  The epoch loop is the online
trainers' (:func:`fastcrf._train.online.fit_online`); the update is in the online
engine.
"""

from .base import Trainer
from .online import OnlineSettings, fit_online

# CRFsuite's defaults (train_arow.c), which sklearn-crfsuite gets when it passes None.
AROW = Trainer("arow", OnlineSettings, fit_online,
               defaults={"max_iterations": 100, "epsilon": 0.0, "variance": 1.0,
                         "gamma": 1.0})
