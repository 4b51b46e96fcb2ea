"""SGD's optimizer state between fits: what ``partial_fit`` and a warm ``fit`` go on from.

A fit by 'asgd' or 'l2sgd' that is asked to keep its state (the estimator asks under
``warm_start=True`` and in :meth:`fastcrf.CRF.partial_fit`) returns, beside the
model's weights, an :class:`SGDState`: the engine's arrays and counters at the end of
its last epoch, in the model's layout.  The next call moves it into its own layout
(:meth:`SGDState.moved`: new attributes and labels extend every array with zeros)
and runs the engine on from there, so that

- the iterate goes on from the last iterate, not from the averaged weights the model
  holds;
- the running average goes on over the calls (the same averaging start, counted in
  steps over all calls);
- the step counters (sequences seen ``t``, steps taken) and ``eta0`` go on, so
  'calibrated' keeps decaying its step and AdaGrad ('adagrad', 'adagrad_row') keeps
  its summed squared gradients, its steps staying small for the attributes it has
  already seen;
- the L1 trainer's cumulative penalty goes on.

None of this is in a model file: a saved model holds the averaged weights and, in its
training log, only ``eta0`` and ``t`` (:func:`fastcrf._warm.carried_schedule`).
"""

from dataclasses import dataclass, fields, replace

import numpy as np

#: The per-weight arrays (indexed like the flat state weights of a layout), the
#: per-attribute ones, and the per-chain-score ones, by name.
PER_WEIGHT = ("U", "Uhat", "qU", "GU", "EU")
PER_ATTRIBUTE = ("l1_stamp", "ada_stamp", "GA", "EA")
PER_CHAIN = ("V", "Vhat", "qV", "GV")


@dataclass(eq=False)
class SGDState:
    """The state of the SGD engine after an epoch (its scale folded in).

    Attributes
    ----------
    algorithm, rule : str
        The trainer ('asgd', 'l2sgd') and its step rule ('calibrated', 'adagrad',
        'adagrad_row') that made it; a later call with another one starts afresh.
    eta0 : float
        The step size (calibrated, or AdaGrad's constant).
    lam : float
        The per-sequence L2 strength of the last call; AdaGrad's cached decays
        (``EU``, ``EA``) were computed with it.
    avg_start : float
        Steps, counted from the first call, before averaging starts (< 0: never).
    batch_size : int
        The last call's mini-batch size (also in the cached decays).
    scalars : ndarray of shape (6,)
        alpha, beta, gamma (1, 0 or 1, 1 after a fold), t (sequences seen), steps
        taken, the cumulative L1 penalty.
    U, Uhat, V, Vhat : ndarray
        The iterate and the running average (with AdaGrad, the running sum of the
        averaged iterates) of the state and chain weights.
    qU, qV, l1_stamp : ndarray or None
        The L1 penalty state (``c1 > 0``).
    GU, EU, GV, GA, EA, ada_stamp : ndarray or None
        AdaGrad's summed squared gradients, cached decays and stamps.
    """

    algorithm: str
    rule: str
    eta0: float
    lam: float
    avg_start: float
    batch_size: int
    scalars: np.ndarray
    U: np.ndarray
    Uhat: np.ndarray
    V: np.ndarray
    Vhat: np.ndarray
    qU: np.ndarray = None
    qV: np.ndarray = None
    l1_stamp: np.ndarray = None
    GU: np.ndarray = None
    EU: np.ndarray = None
    GV: np.ndarray = None
    GA: np.ndarray = None
    EA: np.ndarray = None
    ada_stamp: np.ndarray = None

    @classmethod
    def of(cls, state, *, algorithm, rule, eta0, lam, avg_start, batch_size):
        """A copy of the trainer's ``_State`` (fastcrf._train.sgd) after an epoch."""
        arrays = {f.name: None if getattr(state, f.name, None) is None
                  else np.array(getattr(state, f.name))
                  for f in fields(cls) if f.name in PER_WEIGHT + PER_ATTRIBUTE + PER_CHAIN}
        return cls(algorithm=algorithm, rule=rule, eta0=float(eta0), lam=float(lam),
                   avg_start=float(avg_start), batch_size=int(batch_size),
                   scalars=np.array(state.scalars), **arrays)

    def moved(self, size, weight_from, weight_to, n_attributes, attribute_to, chain_to,
              n_chain):
        """This state in another layout: a new :class:`SGDState`.

        Parameters
        ----------
        size : int
            The new layout's flat size.
        weight_from, weight_to : ndarray of int64
            Flat positions of the kept weights in this state's layout and in the new
            one (padding left out of both).
        n_attributes : int
            The new layout's attributes.
        attribute_to : ndarray of int64
            The new id of every attribute of this state.
        chain_to : ndarray of int64
            The new position of every chain score of this state.
        n_chain : int
            The new chain's length.

        Weights, sums and accumulators new to the layout are 0 (a new weight has had
        no gradient, so AdaGrad leaves it still until it gets one); a new attribute's
        stamp is the current step (its weights, all 0, are current).
        """
        out = {}
        for name in PER_WEIGHT:
            old = getattr(self, name)
            if old is not None:
                new = np.zeros(size)
                new[weight_to] = old[weight_from]
                out[name] = new
        step = int(self.scalars[4])
        for name in PER_ATTRIBUTE:
            old = getattr(self, name)
            if old is not None:
                new = (np.full(n_attributes, step, dtype=np.int64) if old.dtype == np.int64
                       else np.zeros(n_attributes))
                new[attribute_to] = old
                out[name] = new
        for name in PER_CHAIN:
            old = getattr(self, name)
            if old is not None:
                new = np.zeros(n_chain)
                new[chain_to] = old
                out[name] = new
        return replace(self, scalars=self.scalars.copy(), **out)


def chain_positions(k, K):
    """The positions, in a chain of ``K`` labels (transitions ``[K][K]``, start, end),
    of the scores of a chain of its first ``k`` labels."""
    rows = np.arange(k, dtype=np.int64)
    transitions = (rows[:, None] * K + rows[None, :]).ravel()
    return np.concatenate((transitions, K * K + rows, K * K + K + rows))
