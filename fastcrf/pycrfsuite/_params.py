"""CRFsuite's training parameters: names, types, defaults, descriptions, and what
each becomes among :class:`fastcrf.CRF`'s parameters.

CRFsuite keeps every parameter as a string and parses it with ``atoi``/``atof``
(python-crfsuite's ``Trainer.get`` casts it back by the types below); here a value
that is not a number of the right kind is a ``ValueError`` instead of a silent 0.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """One CRFsuite parameter.

    Attributes
    ----------
    name : str
        CRFsuite's name (``'feature.minfreq'``, ``'c2'``, ...).
    kind : {'int', 'float', 'bool', 'str'}
        What ``Trainer.get`` returns (bool parameters are CRFsuite ints 0 / 1).
    default : int, float, bool or str
    help : str
        The description ``Trainer.help`` returns.
    target : str
        The :class:`fastcrf.CRF` parameter it sets.
    """

    name: str
    kind: str
    default: object
    help: str
    target: str

    def parse(self, value):
        """The typed value of ``value`` (a str, as CRFsuite stores it, or a number)."""
        text = str(int(value)) if isinstance(value, bool) else str(value).strip()
        try:
            if self.kind == "str":
                return text
            number = float(text)
        except ValueError:
            raise ValueError(f"parameter {self.name!r} takes a number, got {value!r}") from None
        if self.kind == "float":
            return number
        if number != number or abs(number) == float("inf"):
            raise ValueError(f"parameter {self.name!r} takes an integer, got {value!r}")
        # CRFsuite reads an int parameter with atoi: "3.7" is 3.
        return bool(int(number)) if self.kind == "bool" else int(number)


_FEATURES = (
    Param("feature.minfreq", "float", 0.0,
          "The minimum frequency of features: an (attribute, label) feature whose "
          "attribute values over the label's tokens sum below this, or a transition "
          "seen fewer times, is dropped.", "min_feature_freq"),
    Param("feature.possible_states", "bool", False,
          "Give every (attribute, label) pair a weight, not only the pairs seen in "
          "training.", "all_possible_states"),
    Param("feature.possible_transitions", "bool", False,
          "Give every label pair a transition weight, not only the bigrams seen in "
          "training.", "all_possible_transitions"),
)

_STOP = (
    Param("period", "int", 10, "The number of iterations over which the stopping "
          "criterion (delta) is tested.", "period"),
)

#: CRFsuite's parameters of each algorithm, in CRFsuite's order.
ALGORITHM_PARAMS = {
    "lbfgs": _FEATURES + (
        Param("c1", "float", 0.0, "The coefficient of the L1 regularisation.", "c1"),
        Param("c2", "float", 1.0, "The coefficient of the L2 regularisation.", "c2"),
        Param("max_iterations", "int", 2147483647,
              "The maximum number of L-BFGS iterations.", "max_iterations"),
        Param("num_memories", "int", 6, "The number of corrections L-BFGS keeps to "
              "approximate the inverse Hessian.", "num_memories"),
        Param("epsilon", "float", 1e-5, "Stop when the gradient norm, relative to the "
              "weight norm, falls below this.", "epsilon"),
    ) + _STOP + (
        Param("delta", "float", 1e-5, "Stop when the objective improved by less than "
              "this (relative) over the last ${period} iterations.", "delta"),
        Param("linesearch", "str", "MoreThuente", "The line search: 'MoreThuente', "
              "'Backtracking' or 'StrongBacktracking' (fastcrf's L-BFGS always uses its "
              "own More-Thuente-style search).", "linesearch"),
        Param("max_linesearch", "int", 20, "The maximum number of line-search trials "
              "per iteration.", "max_linesearch"),
    ),
    "l2sgd": _FEATURES + (
        Param("c2", "float", 1.0, "The coefficient of the L2 regularisation.", "c2"),
        Param("max_iterations", "int", 1000, "The maximum number of epochs.",
              "max_iterations"),
    ) + _STOP + (
        Param("delta", "float", 1e-6, "Stop when the objective improved by less than "
              "this (relative) over the last ${period} epochs.", "delta"),
        Param("calibration.eta", "float", 0.1, "The first learning rate the "
              "calibration tries.", "calibration_eta"),
        Param("calibration.rate", "float", 2.0, "The factor between the learning "
              "rates the calibration tries.", "calibration_rate"),
        Param("calibration.samples", "float", 1000.0, "The number of sequences the "
              "calibration trains on.", "calibration_samples"),
        Param("calibration.candidates", "int", 10, "The number of learning rates the "
              "calibration keeps trying after the first improvement.",
              "calibration_candidates"),
        Param("calibration.max_trials", "int", 20, "The maximum number of learning "
              "rates the calibration tries.", "calibration_max_trials"),
    ),
    "averaged-perceptron": _FEATURES + (
        Param("max_iterations", "int", 100, "The maximum number of epochs.",
              "max_iterations"),
        Param("epsilon", "float", 0.0, "Stop when the share of wrongly predicted labels "
              "in an epoch falls below this.", "epsilon"),
    ),
    "passive-aggressive": _FEATURES + (
        Param("type", "int", 1, "The update: 0 PA (no slack), 1 PA-I, 2 PA-II.",
              "pa_type"),
        Param("c", "float", 1.0, "The aggressiveness (PA-I, PA-II).", "c"),
        Param("error_sensitive", "bool", True, "Count the wrongly predicted labels "
              "in the loss (else a wrong sequence costs 1).", "error_sensitive"),
        Param("averaging", "bool", True, "Return the average of the weights over all "
              "updates, as the averaged perceptron does.", "averaging"),
        Param("max_iterations", "int", 100, "The maximum number of epochs.",
              "max_iterations"),
        Param("epsilon", "float", 0.0, "Stop when the mean loss of an epoch falls "
              "below this.", "epsilon"),
    ),
    "arow": _FEATURES + (
        Param("variance", "float", 1.0, "The initial variance of every feature weight.",
              "variance"),
        Param("gamma", "float", 1.0, "The trade-off between keeping the weights and "
              "fitting the sequence at hand.", "gamma"),
        Param("max_iterations", "int", 100, "The maximum number of epochs.",
              "max_iterations"),
        Param("epsilon", "float", 0.0, "Stop when the mean loss of an epoch falls "
              "below this.", "epsilon"),
    ),
}

#: python-crfsuite's short names for CRFsuite's algorithms.
ALIASES = {"ap": "averaged-perceptron", "pa": "passive-aggressive"}

#: The :class:`fastcrf.CRF` algorithm of each CRFsuite algorithm.
FASTCRF_ALGORITHM = {"lbfgs": "lbfgs", "l2sgd": "l2sgd", "averaged-perceptron": "ap",
                     "passive-aggressive": "pa", "arow": "arow"}

#: What CRFsuite prints as the heading of each algorithm's parameters.
TITLES = {"lbfgs": "L-BFGS optimization", "l2sgd": "Stochastic Gradient Descent (SGD)",
          "averaged-perceptron": "Averaged perceptron",
          "passive-aggressive": "Passive Aggressive",
          "arow": "Adaptive Regularization of Weights (AROW)"}


def crf_params(algorithm, values):
    """The :class:`fastcrf.CRF` parameters of CRFsuite parameter ``values`` (typed,
    by name) for ``algorithm`` (a key of :data:`ALGORITHM_PARAMS`)."""
    params = {"algorithm": FASTCRF_ALGORITHM[algorithm]}
    for param in ALGORITHM_PARAMS[algorithm]:
        value = values[param.name]
        if param.name == "calibration.samples":
            value = max(1, int(value))
        if param.name == "linesearch":
            continue  # accepted, and shown by get(); fastcrf's L-BFGS has one search
        if param.name == "feature.minfreq":
            # CRFsuite's minfreq counts (attribute, label) features, which
            # fit_model(min_feature_freq=...) drops; no attribute is dropped.
            params["min_freq"] = 0
            continue
        params[param.target] = value
    return params
