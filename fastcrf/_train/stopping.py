"""When an iterative trainer stops: the objective's progress and a development set.

Two rules, shared by every trainer that runs epochs or iterations:

- :class:`RelativeImprovement` is CRFsuite's ``period`` / ``delta`` test: stop once
  the objective improved by less than ``delta`` (relative) over the last ``period``
  epochs.
- :class:`EarlyStopping` follows scikit-learn's SGD estimators: a score on held-out
  data (dev token accuracy, or minus the dev loss) is measured after every epoch; the
  best epoch's weights are kept, and training stops after ``n_iter_no_change``
  epochs without an improvement of more than ``tol``.
"""


class RelativeImprovement:
    """CRFsuite's stopping test on the objective.

    Parameters
    ----------
    period : int
        Compare with the objective this many epochs back.
    delta : float
        Stop when ``(f[k - period] - f[k]) / |f[k]| < delta``; 0 disables the test.
    """

    def __init__(self, period, delta):
        self.period = int(period)
        self.delta = float(delta)
        self.history = []

    def update(self, objective):
        """Record an epoch's objective; return True when training should stop."""
        self.history.append(float(objective))
        p = self.period
        if self.delta <= 0 or len(self.history) <= p:
            return False
        old, new = self.history[-p - 1], self.history[-1]
        return (old - new) / max(abs(new), 1e-300) < self.delta


class EarlyStopping:
    """Keep the best epoch by a held-out score; stop when it no longer improves.

    Parameters
    ----------
    n_iter_no_change : int
        Epochs without an improvement of more than ``tol`` before stopping.
    tol : float, default=0
        The improvement that counts (in the score's units).

    Attributes
    ----------
    best_score : float
        The best score so far (``-inf`` before any).
    best_epoch : int
        The epoch it was measured after (0 before any).
    best_weights : object
        What ``weights_fn()`` returned at the best epoch.
    """

    def __init__(self, n_iter_no_change, tol=0.0):
        self.n_iter_no_change = int(n_iter_no_change)
        self.tol = float(tol)
        self.best_score = float("-inf")
        self.best_epoch = 0
        self.best_weights = None
        self._since_best = 0

    def update(self, epoch, score, weights_fn):
        """Record epoch ``epoch``'s ``score`` (higher is better).

        ``weights_fn()`` is called, and its result kept, only when the score is the
        best so far.  Returns True when training should stop.
        """
        improved = score > self.best_score + self.tol
        if score > self.best_score:
            self.best_score = float(score)
            self.best_epoch = int(epoch)
            self.best_weights = weights_fn()
        if improved:
            self._since_best = 0
            return False
        self._since_best += 1
        return self._since_best >= self.n_iter_no_change
