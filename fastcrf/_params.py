"""The estimator's parameters: a table of constraints and the defaults they take.

:data:`CONSTRAINTS` gives every constructor parameter of :class:`fastcrf.CRF` one
constraint (its type and range, and whether None is allowed once the defaults are
filled in); :func:`resolve` fills in the defaults (:data:`COMMON_DEFAULTS`, then the
chosen trainer's own, fastcrf._train) and checks the table in its order, as
scikit-learn's ``_parameter_constraints`` does.  Every error names the parameter.
"""

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from ._kernels import _sgd_engine
from ._parallel import effective_n_threads
from ._train import TRAINERS
from ._train.sgd import check_learning_rate, steps_per_epoch, too_few_steps

#: Defaults of the parameters left at None, whatever the algorithm (a trainer's own
#: defaults, ``Trainer.defaults``, take precedence).
COMMON_DEFAULTS = {
    "c1": 0.0, "c2": 0.0, "min_freq": 0.0, "all_possible_transitions": True,
    "num_memories": 6, "epsilon": 1e-5, "linesearch": "MoreThuente", "max_linesearch": 20,
    "calibration_eta": 0.1, "calibration_rate": 2.0, "calibration_samples": 1000,
    "calibration_candidates": 10, "calibration_max_trials": 20, "batch_size": 4,
    "early_stopping": False, "validation_fraction": 0.1, "n_iter_no_change": 5,
    "warm_start": False, "progress_bar": False, "hash_seed": 0,
}
LINESEARCHES = ("MoreThuente", "Backtracking", "StrongBacktracking")
DEFAULT_ALGORITHM = "asgd"
LEARNING_RATES = ("calibrated", "adagrad", "adagrad_row")


@dataclass(frozen=True)
class Real:
    """A finite real number ``>= low`` (``> low`` when ``strict``), and ``< high``
    when given; stored as float."""

    low: float = None
    strict: bool = False
    high: float = None

    def check(self, name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        low = self.low
        if low is not None and (value <= low if self.strict else value < low):
            raise ValueError(f"{name} must be {'>' if self.strict else '>='} {low}, "
                             f"got {value}")
        if self.high is not None and value >= self.high:
            raise ValueError(f"{name} must be < {self.high}, got {value}")
        return float(value)


@dataclass(frozen=True)
class Int:
    """An int (not a bool) in ``[low, high]``; stored as int."""

    low: int = None
    high: int = None

    def check(self, name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if self.low is not None and value < self.low:
            raise ValueError(f"{name} must be >= {self.low}, got {value}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{name} must be at most {self.high}, got {value}")
        return int(value)


@dataclass(frozen=True)
class Bool:
    """A bool (Python's or numpy's)."""

    def check(self, name, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        return value


@dataclass(frozen=True)
class OneOf:
    """One of ``values`` (compared with ``==``); ``listing`` words the error."""

    values: tuple
    listing: str

    def check(self, name, value):
        if value not in self.values:
            raise ValueError(f"{name} must be {self.listing}, got {value!r}")
        return value


@dataclass(frozen=True)
class NJobs:
    """scikit-learn's ``n_jobs``: validated by :func:`effective_n_threads`."""

    def check(self, name, value):
        effective_n_threads(value)
        return value


@dataclass(frozen=True)
class Constraints:
    """``constraints=``: None, a scheme name (or ``"auto"``), a mapping of label pairs
    or a boolean matrix; the labels it names and the matrix's shape are checked once
    the labels are known (fastcrf._constraints.resolve_constraints)."""

    SCHEMES = ("BIO", "IOB1", "BIOES", "BIOUL", "AUTO")

    def check(self, name, value):
        if isinstance(value, str):
            if value.upper() not in self.SCHEMES:
                raise ValueError(f"{name} must be one of 'BIO', 'IOB1', 'BIOES', "
                                 f"'BIOUL', 'auto', a dict or a matrix; got {value!r}")
        elif isinstance(value, (bool, numbers.Number)):
            raise TypeError(f"{name} must be a scheme name, a dict of (from, to) label "
                            f"pairs or a boolean matrix, got {type(value).__name__}")
        return value


@dataclass(frozen=True)
class Unchecked:
    """Checked where it is used (``random_state``: when the fit converts it) or free."""

    def check(self, name, value):
        return value


@dataclass(frozen=True)
class Param:
    """A constraint and whether None is allowed after the defaults are filled in."""

    constraint: object
    none: bool = False


#: Every constructor parameter but ``algorithm``, in the order they are checked.
CONSTRAINTS = {
    "min_freq": Param(Real(low=0.0)),
    "c1": Param(Real(low=0.0)),
    "c2": Param(Real(low=0.0)),
    "max_iterations": Param(Int(low=1), none=True),
    "num_memories": Param(Int(low=1)),
    "epsilon": Param(Real(low=0.0)),
    "period": Param(Int(low=1), none=True),
    "delta": Param(Real(low=0.0), none=True),
    "linesearch": Param(OneOf(LINESEARCHES, f"one of {LINESEARCHES}")),
    "max_linesearch": Param(Int(low=1)),
    "calibration_eta": Param(Real(low=0.0, strict=True)),
    "calibration_rate": Param(Real(low=1.0, strict=True)),
    "calibration_samples": Param(Int(low=1)),
    "calibration_candidates": Param(Int(low=1)),
    "calibration_max_trials": Param(Int(low=1)),
    "batch_size": Param(Int(low=1, high=_sgd_engine.MAX_BATCH)),
    "eta0": Param(Real(low=0.0, strict=True), none=True),
    "learning_rate": Param(OneOf(LEARNING_RATES, f"one of {LEARNING_RATES}"), none=True),
    "pa_type": Param(OneOf((0, 1, 2), "0, 1 or 2"), none=True),
    "c": Param(Real(low=0.0, strict=True), none=True),
    "all_possible_states": Param(Bool(), none=True),
    "all_possible_transitions": Param(Bool(), none=True),
    "averaging": Param(Bool(), none=True),
    "error_sensitive": Param(Bool(), none=True),
    "variance": Param(Real(low=0.0, strict=True), none=True),
    "gamma": Param(Real(low=0.0, strict=True), none=True),
    "early_stopping": Param(Bool()),
    "validation_fraction": Param(Real(low=0.0, strict=True, high=1.0)),
    "n_iter_no_change": Param(Int(low=1)),
    "n_jobs": Param(NJobs(), none=True),
    "verbose": Param(Unchecked(), none=True),
    "model_filename": Param(Unchecked(), none=True),
    "keep_tempfiles": Param(Bool()),
    "warm_start": Param(Bool()),
    "progress_bar": Param(Bool()),
    # int32 rows: at most 2**31 - 1 buckets (fastcrf._features._hashing.MAX_BUCKETS).
    "hash_features": Param(Int(low=2, high=2 ** 31 - 1), none=True),
    "hash_seed": Param(Int(low=0, high=2 ** 32 - 1)),
    # A str or fastcrf.Template, compiled (and so checked) by fastcrf._featurizer.
    "template": Param(Unchecked(), none=True),
    # Checked by fastcrf._edges.check_prefix where the fit reads it.
    "transition_prefix": Param(Unchecked(), none=True),
    "constraints": Param(Constraints(), none=True),
    "trainer_cls": Param(Unchecked(), none=True),
    "random_state": Param(Unchecked(), none=True),
}


def resolve(params):
    """Validated parameters with the algorithm's defaults filled in.

    Parameters
    ----------
    params : dict
        The estimator's ``get_params()``.

    Returns
    -------
    dict
        Every parameter, numbers converted to float / int; ``algorithm`` set.

    Raises
    ------
    ValueError, TypeError
        Naming the first parameter that breaks its constraint.
    """
    algorithm = DEFAULT_ALGORITHM if params["algorithm"] is None else params["algorithm"]
    if algorithm not in TRAINERS:
        raise ValueError(
            f"algorithm={algorithm!r} is not implemented; choose one of "
            f"{', '.join(repr(a) for a in TRAINERS)}")
    trainer = TRAINERS[algorithm]
    p = dict(params, algorithm=algorithm)
    for name, value in {**COMMON_DEFAULTS, **trainer.defaults}.items():
        if p.get(name) is None:
            p[name] = value
    for name, param in CONSTRAINTS.items():
        if p[name] is not None or not param.none:
            p[name] = param.constraint.check(name, p[name])
    if p["c1"] > 0 and not trainer.supports_l1:
        supported = " or ".join(f"algorithm={t.name!r}" for t in TRAINERS.values()
                                if t.supports_l1)
        raise ValueError(f"c1 (L1) is only supported by {supported}, not {algorithm!r}")
    check_learning_rate(algorithm, p["learning_rate"], p["c1"])
    return p


def for_data(params, resolved, n_sequences):
    """The resolved parameters, adjusted to a training set of ``n_sequences``.

    Averaged SGD takes one step per mini-batch, so a training set of a few (long)
    sequences gives it too few steps to converge in any sensible number of epochs
    (:func:`fastcrf._train.sgd.too_few_steps`): a single sequence of a million tokens
    makes one step an epoch.  Then the default algorithm (``algorithm=None``) is
    'lbfgs' on the same objective (the same ``c1`` and ``c2``); an explicit
    ``algorithm='asgd'`` is kept, with a warning.

    Returns
    -------
    resolved : dict
    note : str or None
        Why the algorithm was changed, for the verbose log.
    """
    if resolved["algorithm"] != "asgd" or not too_few_steps(n_sequences,
                                                             resolved["batch_size"]):
        return resolved, None
    steps = steps_per_epoch(n_sequences, resolved["batch_size"])
    reason = (f"{n_sequences} training sequences give averaged SGD only {steps} "
              f"step{'s' if steps > 1 else ''} per epoch (one per batch_size="
              f"{resolved['batch_size']} sequences), too few to converge")
    if params["algorithm"] is not None:
        warnings.warn(f"{reason}: the model may be poor; algorithm='lbfgs' (or the "
                      "default algorithm=None, which picks it for such data) reaches "
                      "the optimum of the same objective", UserWarning, stacklevel=4)
        return resolved, None
    lbfgs = resolve(dict(params, algorithm="lbfgs", c1=resolved["c1"], c2=resolved["c2"],
                         learning_rate=None))
    return lbfgs, f"fastcrf: {reason}; training with algorithm='lbfgs' instead"


def as_generator(random_state):
    """A numpy Generator from None, an int, a Generator or a RandomState."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**32, dtype=np.uint64))
    if random_state is None or (isinstance(random_state, numbers.Integral)
                                and not isinstance(random_state, bool)):
        if random_state is not None and random_state < 0:
            # numpy's own message ("expected non-negative integer") names nothing.
            raise ValueError(f"random_state must be None or an int >= 0, got {random_state}")
        return np.random.default_rng(random_state)
    raise TypeError("random_state must be None, an int, a numpy Generator or a "
                    f"RandomState, got {type(random_state).__name__}")
