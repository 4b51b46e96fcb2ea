"""The CRF estimator: a faster drop-in for ``sklearn_crfsuite.CRF``."""

import inspect
import math
import numbers
import sys
import time

import numpy as np

from ._kernels import _sgd_engine, _sparse
from ._encoding import EncodedSequences, encode, encode_labels, fit_encode
from ._layout import StateLayout, dense_kernel_args
from ._lbfgs import LBFGSSettings, fit_lbfgs
from ._online import OnlineSettings, fit_online
from ._parallel import effective_n_threads
from ._sgd import SGDSettings, fit_sgd
from ._training import (
    TrainingData,
    drop_unit_values,
    n_threads_for,
    sort_by_frequency,
    split_chain,
)

ALGORITHMS = ("asgd", "lbfgs", "l2sgd", "ap", "pa")

# Defaults that depend on the algorithm, applied where a parameter is None.  The
# CRFsuite ones are CRFsuite's own (what sklearn-crfsuite gets when it passes None);
# 'asgd' follows Bottou's crfasgd (averaging from the second epoch), with its
# calibrated step size not halved, which needs 8 epochs instead of crfasgd's 10 for
# a better F1 on CoNLL-2000 (fastcrf._sgd.fit_sgd); its c2 is a little below
# crfasgd's c = 1 (c2 = 0.5 here), which measured best there (bench/README.md).
_DEFAULTS = {
    "asgd": {"c2": 0.25, "max_iterations": 8, "averaging": True, "period": 10,
             "delta": 1e-6},
    "lbfgs": {"c1": 0.0, "c2": 0.5, "max_iterations": None, "period": 10, "delta": 1e-5},
    "l2sgd": {"c2": 1.0, "max_iterations": 1000, "period": 10, "delta": 1e-6},
    "ap": {"max_iterations": 100, "averaging": True, "epsilon": 0.0},
    "pa": {"max_iterations": 100, "averaging": True, "epsilon": 0.0, "pa_type": 1,
           "c": 1.0, "error_sensitive": True},
}
_COMMON = {"min_freq": 0.0, "all_possible_transitions": True,
           "num_memories": 6, "epsilon": 1e-5, "linesearch": "MoreThuente",
           "max_linesearch": 20, "calibration_eta": 0.1, "calibration_rate": 2.0,
           "calibration_samples": 1000, "calibration_candidates": 10,
           "calibration_max_trials": 20, "batch_size": 4}
_LINESEARCHES = ("MoreThuente", "Backtracking", "StrongBacktracking")


class NotFittedError(ValueError, AttributeError):
    """Raised when a CRF is used before it is fitted (as scikit-learn's)."""


class TrainingLog:
    """What ``fit`` reported, one dict per epoch / iteration.

    Attributes
    ----------
    iterations : list of dict
        Keys: ``num``, ``loss`` (sum of -log p(y|x) over the training set),
        ``objective`` (loss plus regularisation), ``feature_norm``, ``time``
        (seconds since fit started) and, with a dev set, ``dev_accuracy``.
    algorithm : str
    """

    def __init__(self, algorithm):
        self.algorithm = algorithm
        self.iterations = []

    @property
    def last_iteration(self):
        """The last entry of :attr:`iterations` (an empty dict before any)."""
        return self.iterations[-1] if self.iterations else {}

    def __len__(self):
        return len(self.iterations)

    def __repr__(self):
        return f"TrainingLog(algorithm={self.algorithm!r}, iterations={len(self)})"


class CRF:
    """Linear-chain CRF over token features, trained by averaged SGD by default.

    A drop-in for ``sklearn_crfsuite.CRF``: same constructor keywords where they
    apply, same methods and return types.  ``X`` is a list of sequences; a sequence
    is a list of tokens; a token is a dict ``{name: value}`` (a str value ``v`` is
    the binary attribute ``"name:v"``, a number is the attribute ``"name"`` with
    that weight, a bool is 1.0/0.0) or a list of str attribute names.  ``y`` is a
    list of lists of str labels.

    Every parameter left at None takes the default of the chosen algorithm (listed
    below as "default: ...").

    Parameters
    ----------
    algorithm : {'asgd', 'lbfgs', 'l2sgd', 'ap', 'pa'}, default='asgd'
        - 'asgd': averaged SGD (Bottou's crfasgd): L2, fast; the default.
        - 'lbfgs': L-BFGS on the full objective (scipy); L1 and/or L2.
        - 'l2sgd': CRFsuite's SGD with L2 and a 1 / (lambda t) step size.
        - 'ap': averaged perceptron.
        - 'pa': passive-aggressive (PA, PA-I, PA-II).
    min_freq : float, default=0
        Attributes that occur fewer times in the training data are dropped.
    all_possible_states : bool or None, default=None
        True: a weight for every (attribute, label) pair.  False: only for pairs
        seen in training (CRFsuite's default); the others stay 0.  None: every pair
        for attributes that occur at least 5 times in training, the seen pairs for
        rarer ones, which is as accurate as True with a fraction of the weights
        (most attributes of a real feature set are rare), so training is faster and
        smaller.
    all_possible_transitions : bool, default=True
        True: a weight for every label pair.  False: only for label bigrams seen in
        training (CRFsuite's default); the others stay 0.
    c1 : float, default=0
        L1 coefficient ('lbfgs' only).
    c2 : float
        L2 coefficient: the objective is ``sum -log p + c1 |w|_1 + c2 |w|^2``.
        Default: 0.25 for 'asgd', 0.5 for 'lbfgs' (CRF++'s C = 1), 1.0 for 'l2sgd'
        (CRFsuite's).
    max_iterations : int
        Epochs (SGD, perceptron, PA) or iterations (L-BFGS).  Default: 8 for
        'asgd', 1000 for 'l2sgd', 100 for 'ap' and 'pa', unlimited for 'lbfgs'
        (which stops by ``epsilon``/``delta``).
    num_memories : int, default=6
        L-BFGS history size.
    epsilon : float
        'lbfgs': stop when ``|grad| / max(|w|, 1) < epsilon`` (default 1e-5).
        'ap'/'pa': stop when the epoch's mean loss falls below it (default 0).
    period, delta : int, float
        Stop when the objective improved by less than ``delta`` (relative) over the
        last ``period`` epochs/iterations.  Default period 10; delta 1e-5 for
        'lbfgs', 1e-6 for the SGD trainers.
    linesearch : {'MoreThuente', 'Backtracking', 'StrongBacktracking'}
        Accepted for compatibility; scipy's L-BFGS-B always uses its own
        (Moré-Thuente style) line search.
    max_linesearch : int, default=20
        Line-search trials per L-BFGS iteration.
    calibration_eta, calibration_rate, calibration_samples, calibration_candidates, \
calibration_max_trials
        Step-size calibration of 'asgd' and 'l2sgd' (defaults 0.1, 2.0, 1000, 10,
        20): trial passes over ``calibration_samples`` random sequences with step
        sizes ``calibration_eta * calibration_rate**k``.
    pa_type : {0, 1, 2}, default=1
        'pa': PA, PA-I or PA-II.
    c : float, default=1
        'pa': aggressiveness (PA-I / PA-II).
    error_sensitive : bool, default=True
        'pa': use the number of wrong labels (not 1) in the loss.
    averaging : bool, default=True
        'asgd', 'ap', 'pa': return the average of the iterates.
    variance, gamma : float
        CRFsuite's 'arow' parameters; 'arow' is not implemented, so these must stay
        None.
    verbose : bool, default=False
        Print one line per epoch/iteration (loss, objective, weight norm, seconds
        and, with ``X_dev``, dev token accuracy).
    model_filename : str, optional
        When set, ``fit`` also saves the model there (:meth:`save`).
    n_jobs : int, optional
        OpenMP threads for training and prediction (scikit-learn's convention:
        None or -1 all, -2 all but one).  Results do not depend on it.
    random_state : int, numpy Generator or RandomState, optional
        Seeds shuffling and calibration sampling.  None: fresh entropy on each fit.
    batch_size : int, default=4
        Sequences per SGD step ('asgd', 'l2sgd'); their gradients are computed in
        parallel.  Fixed by you, not by the thread count, so results are the same
        for any ``n_jobs``.
    eta0 : float, optional
        Initial SGD step size; None calibrates it (``calibration_*``): the step
        size whose trial pass over a sample lowers the objective most.

    Attributes
    ----------
    classes_ : list of str
        Labels, in the order of the weight columns.
    attributes_ : list of str
        Attribute names, in the order of the weight rows.
    state_weights_ : ndarray of shape (n_attributes, n_labels)
    transition_weights_ : ndarray of shape (n_labels, n_labels)
        ``[i, j]`` scores label ``classes_[i]`` followed by ``classes_[j]``.
    start_weights_, end_weights_ : ndarray of shape (n_labels,)
        Scores of a sequence's first and last label (CRFsuite has none; they
        default to trainable).
    state_features_ : dict
        ``{(attribute, label): weight}`` for every non-zero state weight.
    transition_features_ : dict
        ``{(label_from, label_to): weight}``.
    training_log_ : TrainingLog
    metadata_ : dict
        What :meth:`save` was given as ``metadata``, for a loaded model; empty
        after :meth:`fit`.
    n_iter_ : int
        Epochs / iterations actually run.
    size_ : int
        Number of non-zero weights.
    num_attributes_ : int

    Examples
    --------
    >>> from fastcrf import CRF
    >>> X = [[{"w": "the"}, {"w": "dog"}], [{"w": "a"}, {"w": "cat"}]]
    >>> y = [["DET", "N"], ["DET", "N"]]
    >>> CRF(random_state=0).fit(X, y).predict([[{"w": "the"}, {"w": "cat"}]])
    [['DET', 'N']]
    """

    def __init__(
        self,
        algorithm=None,
        min_freq=None,
        all_possible_states=None,
        all_possible_transitions=None,
        c1=None,
        c2=None,
        max_iterations=None,
        num_memories=None,
        epsilon=None,
        period=None,
        delta=None,
        linesearch=None,
        max_linesearch=None,
        calibration_eta=None,
        calibration_rate=None,
        calibration_samples=None,
        calibration_candidates=None,
        calibration_max_trials=None,
        pa_type=None,
        c=None,
        error_sensitive=None,
        averaging=None,
        variance=None,
        gamma=None,
        verbose=False,
        model_filename=None,
        n_jobs=None,
        random_state=None,
        batch_size=None,
        eta0=None,
    ):
        self.algorithm = algorithm
        self.min_freq = min_freq
        self.all_possible_states = all_possible_states
        self.all_possible_transitions = all_possible_transitions
        self.c1 = c1
        self.c2 = c2
        self.max_iterations = max_iterations
        self.num_memories = num_memories
        self.epsilon = epsilon
        self.period = period
        self.delta = delta
        self.linesearch = linesearch
        self.max_linesearch = max_linesearch
        self.calibration_eta = calibration_eta
        self.calibration_rate = calibration_rate
        self.calibration_samples = calibration_samples
        self.calibration_candidates = calibration_candidates
        self.calibration_max_trials = calibration_max_trials
        self.pa_type = pa_type
        self.c = c
        self.error_sensitive = error_sensitive
        self.averaging = averaging
        self.variance = variance
        self.gamma = gamma
        self.verbose = verbose
        self.model_filename = model_filename
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.batch_size = batch_size
        self.eta0 = eta0

    # ------------------------------------------------------------------ #
    # scikit-learn estimator protocol (without depending on scikit-learn) #
    # ------------------------------------------------------------------ #

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep=True):
        """Return the constructor parameters as a dict (scikit-learn protocol).

        Parameters
        ----------
        deep : bool, default=True
            Ignored: a CRF holds no sub-estimators.

        Returns
        -------
        dict
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters (scikit-learn protocol); return ``self``.

        Raises
        ------
        ValueError
            For a name that is not a parameter.
        """
        valid = set(self._get_param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for CRF; valid parameters: "
                    f"{sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = inspect.signature(type(self).__init__).parameters[name].default
            if value is not default and value != default:
                changed.append(f"{name}={value!r}")
        return f"CRF({', '.join(changed)})"

    def __sklearn_tags__(self):
        # Only called by scikit-learn, so importing it here adds no dependency.
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=True))

    def __sklearn_is_fitted__(self):
        return "_state" in self.__dict__

    # ------------------------------------------------------------------ #
    # Parameters                                                           #
    # ------------------------------------------------------------------ #

    def _resolved(self):
        """Validated parameters with the algorithm's defaults filled in."""
        algorithm = "asgd" if self.algorithm is None else self.algorithm
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm={algorithm!r} is not implemented; choose one of "
                f"{', '.join(repr(a) for a in ALGORITHMS)}")
        defaults = {**_COMMON, **_DEFAULTS[algorithm]}
        p = {name: getattr(self, name) for name in self._get_param_names()}
        for name, value in defaults.items():
            if p.get(name) is None:
                p[name] = value
        p["algorithm"] = algorithm
        if p["c1"] is None:
            p["c1"] = 0.0
        if p["c2"] is None:
            p["c2"] = 0.0
        _check_real(p, "min_freq", low=0.0)
        _check_real(p, "c1", low=0.0)
        _check_real(p, "c2", low=0.0)
        if p["c1"] > 0 and algorithm != "lbfgs":
            raise ValueError(f"c1 (L1) is only supported by algorithm='lbfgs', not "
                             f"{algorithm!r}")
        if p["max_iterations"] is not None:
            _check_int(p, "max_iterations", low=1)
        _check_int(p, "num_memories", low=1)
        _check_real(p, "epsilon", low=0.0)
        _check_int(p, "period", low=1, allow_none=True)
        _check_real(p, "delta", low=0.0, allow_none=True)
        if p["linesearch"] not in _LINESEARCHES:
            raise ValueError(f"linesearch must be one of {_LINESEARCHES}, got "
                             f"{p['linesearch']!r}")
        _check_int(p, "max_linesearch", low=1)
        _check_real(p, "calibration_eta", low=0.0, strict=True)
        _check_real(p, "calibration_rate", low=1.0, strict=True)
        _check_int(p, "calibration_samples", low=1)
        _check_int(p, "calibration_candidates", low=1)
        _check_int(p, "calibration_max_trials", low=1)
        _check_int(p, "batch_size", low=1)
        if p["batch_size"] > _sgd_engine.MAX_BATCH:
            raise ValueError(f"batch_size must be at most {_sgd_engine.MAX_BATCH}, "
                             f"got {p['batch_size']}")
        _check_real(p, "eta0", low=0.0, strict=True, allow_none=True)
        if p["pa_type"] is not None and p["pa_type"] not in (0, 1, 2):
            raise ValueError(f"pa_type must be 0, 1 or 2, got {p['pa_type']!r}")
        _check_real(p, "c", low=0.0, strict=True, allow_none=True)
        for name in ("all_possible_states", "all_possible_transitions", "averaging",
                     "error_sensitive"):
            if p[name] is not None and not isinstance(p[name], (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(p[name]).__name__}")
        for name in ("variance", "gamma"):
            if p[name] is not None:
                raise ValueError(f"{name} is a parameter of CRFsuite's 'arow', which "
                                 f"fastcrf does not implement; leave it None")
        effective_n_threads(p["n_jobs"])  # validates n_jobs
        return p

    # ------------------------------------------------------------------ #
    # Fitting                                                              #
    # ------------------------------------------------------------------ #

    def fit(self, X, y, X_dev=None, y_dev=None):
        """Train the CRF.

        Parameters
        ----------
        X : list of lists of token features
        y : list of lists of str
            One label per token.
        X_dev, y_dev : optional
            A development set whose token accuracy is reported every epoch
            (``verbose`` and ``training_log_``); it does not change the training.

        Returns
        -------
        self : CRF

        Raises
        ------
        ValueError, TypeError
            For malformed input or parameters (naming which).
        FloatingPointError
            When the weights diverge (SGD step size too large for the features).
        """
        p = self._resolved()
        if (X_dev is None) != (y_dev is None):
            raise ValueError("X_dev and y_dev must be given together")
        started = time.perf_counter()
        vocabulary, features = sort_by_frequency(
            *fit_encode(X, min_freq=p["min_freq"], dense_values=False, n_jobs=p["n_jobs"]))
        classes, labels = encode_labels(y, lengths=features.lengths)
        data = TrainingData.build(features, labels, len(classes))
        features = data.features  # without a values array when all values are 1.0
        if features.n_attributes == 0:
            raise ValueError(f"no attribute occurs at least min_freq={p['min_freq']} times")
        dev = None
        if X_dev is not None:
            dev_features = encode(X_dev, vocabulary, dense_values=False, n_jobs=p["n_jobs"])
            _, dev_labels = _encode_dev_labels(y_dev, classes, dev_features)
            dev = (dev_features, dev_labels)
        rng = _as_generator(p["random_state"])
        K = len(classes)
        layout = StateLayout.for_training(
            data, None if p["all_possible_states"] is None else bool(p["all_possible_states"]),
            counts=vocabulary.counts)
        chain_mask = _chain_mask(data, p["all_possible_transitions"])
        log = TrainingLog(p["algorithm"])
        out = sys.stdout if p["verbose"] else None
        if out is not None:
            print(f"fastcrf: {p['algorithm']} on {data.n_sequences} sequences, "
                  f"{features.n_tokens} tokens, {features.n_attributes} attributes, "
                  f"{K} labels, {layout.n_weights + K * K + 2 * K} weights "
                  f"(encoded in {time.perf_counter() - started:.2f}s)", file=out, flush=True)

        def callback(epoch, info, weights_fn):
            entry = {"num": epoch, "loss": info["loss"], "objective": info["objective"],
                     "feature_norm": info["weight_norm"],
                     "time": time.perf_counter() - started}
            if "active_features" in info:
                entry["active_features"] = info["active_features"]
            if dev is not None:
                entry["dev_accuracy"] = _token_accuracy(weights_fn(), *dev, p["n_jobs"])
            log.iterations.append(entry)
            if out is not None:
                print(_format_entry(entry), file=out, flush=True)
            return False

        def message(text):
            if out is not None:
                print(text, file=out, flush=True)

        algorithm = p["algorithm"]
        if algorithm in ("asgd", "l2sgd"):
            settings = SGDSettings(
                c2=p["c2"], max_iterations=p["max_iterations"], averaging=p["averaging"],
                batch_size=p["batch_size"], eta0=p["eta0"],
                calibration_eta=p["calibration_eta"],
                calibration_rate=p["calibration_rate"],
                calibration_samples=p["calibration_samples"],
                calibration_candidates=p["calibration_candidates"],
                calibration_max_trials=p["calibration_max_trials"],
                period=p["period"], delta=p["delta"])
            state, chain, n_iter = fit_sgd(data, settings, layout=layout,
                                      chain_mask=chain_mask, random_state=rng,
                                      n_jobs=p["n_jobs"], callback=callback, log=message,
                                      algorithm=algorithm)
        elif algorithm == "lbfgs":
            settings = LBFGSSettings(
                c1=p["c1"], c2=p["c2"], max_iterations=p["max_iterations"],
                num_memories=p["num_memories"], epsilon=p["epsilon"], period=p["period"],
                delta=p["delta"], max_linesearch=p["max_linesearch"])
            weights, n_iter = fit_lbfgs(data, settings, state_mask=_state_mask(layout),
                                        chain_mask=chain_mask, n_jobs=p["n_jobs"],
                                        callback=callback)
        else:
            settings = OnlineSettings(
                algorithm=algorithm, max_iterations=p["max_iterations"],
                averaging=p["averaging"], epsilon=p["epsilon"], pa_type=p["pa_type"] or 0,
                c=p["c"] if p["c"] is not None else 1.0,
                error_sensitive=bool(p["error_sensitive"]))
            weights, n_iter = fit_online(data, settings, state_mask=_state_mask(layout),
                                         chain_mask=chain_mask, random_state=rng,
                                         callback=callback)

        # Everything is computed: only now replace the previous fit, so an error or
        # an interrupt above leaves the estimator as it was.
        if algorithm not in ("asgd", "l2sgd"):
            state, chain = layout.from_dense(weights.state), weights.chain
        self._set_fitted(vocabulary, classes, layout, state, chain, log, n_iter)
        if p["model_filename"] is not None:
            self.save(p["model_filename"])
        return self

    def _set_fitted(self, vocabulary, classes, layout, state, chain, log, n_iter):
        # The compiled name -> id table that predict's encoding reads: built here, once,
        # like CRFsuite's Tagger.open, rather than inside the first predict call.
        vocabulary._name_table()
        self.vocabulary_ = vocabulary
        self.classes_ = list(classes)
        # The state weights stay in their training layout (only the kept pairs); the
        # dense matrix is built on request (state_weights_), never kept.
        self._state_layout = layout
        self._state = state
        self.transition_weights_, self.start_weights_, self.end_weights_ = split_chain(
            chain, len(classes))
        self.training_log_ = log
        self.n_iter_ = int(n_iter)
        self.metadata_ = {}  # CRF.load puts the saved metadata here

    # ------------------------------------------------------------------ #
    # Fitted attributes                                                    #
    # ------------------------------------------------------------------ #

    def _check_fitted(self):
        if "_state" not in self.__dict__:
            raise NotFittedError(
                "this CRF is not fitted yet: call fit(X, y) or CRF.load(path) first")

    @property
    def state_weights_(self):
        """The state weights as an ``(n_attributes, n_labels)`` array (0 for the pairs
        the model does not keep).  Built on each access: the model itself keeps only
        the kept pairs."""
        self._check_fitted()
        return self._state_layout.to_dense(self._state)

    def __setstate__(self, state):
        # Pickles of fastcrf < 0.2 hold the dense matrix itself.
        if "state_weights_" in state:
            W = state.pop("state_weights_")
            state["_state_layout"] = StateLayout.dense(*W.shape)
            state["_state"] = state["_state_layout"].from_dense(W)
        self.__dict__.update(state)

    @property
    def attributes_(self):
        """Attribute names, in the order of the rows of ``state_weights_``."""
        self._check_fitted()
        return self.vocabulary_.names

    @property
    def num_attributes_(self):
        """Number of attributes."""
        self._check_fitted()
        return len(self.vocabulary_)

    @property
    def size_(self):
        """Number of non-zero weights."""
        self._check_fitted()
        return int(np.count_nonzero(self._state)
                   + np.count_nonzero(self.transition_weights_)
                   + np.count_nonzero(self.start_weights_)
                   + np.count_nonzero(self.end_weights_))

    @property
    def state_features_(self):
        """``{(attribute, label): weight}`` for every non-zero state weight."""
        self._check_fitted()
        rows, cols, values = self._state_layout.nonzero(self._state)
        names, labels = self.vocabulary_.names, self.classes_
        values = values.tolist()
        return {(names[a], labels[k]): v
                for a, k, v in zip(rows.tolist(), cols.tolist(), values)}

    @property
    def transition_features_(self):
        """``{(label_from, label_to): weight}`` for every label pair."""
        self._check_fitted()
        labels = self.classes_
        K = len(labels)
        return {(labels[i], labels[j]): float(self.transition_weights_[i, j])
                for i in range(K) for j in range(K)}

    # ------------------------------------------------------------------ #
    # Prediction                                                           #
    # ------------------------------------------------------------------ #

    def _encode(self, X):
        self._check_fitted()
        if isinstance(X, EncodedSequences):
            return drop_unit_values(X)
        return encode(X, self.vocabulary_, dense_values=False, n_jobs=self.n_jobs)

    def _viterbi_codes(self, features):
        """Best label code of every token: ndarray (n_tokens,), int64."""
        status, paths = _viterbi_paths(
            self._state_layout.kernel_args(self._state), self.transition_weights_,
            self.start_weights_, self.end_weights_, features, self.n_jobs)
        if status != 0:
            raise ValueError("X produces scores that are not finite or exceed 1e150 in "
                             "magnitude: are some feature values huge?")
        return paths

    def predict(self, X):
        """Most likely label sequence of every sequence of ``X`` (Viterbi).

        Parameters
        ----------
        X : list of lists of token features

        Returns
        -------
        list of lists of str
        """
        features = self._encode(X)
        codes = self._viterbi_codes(features)
        labels = np.asarray(self.classes_, dtype=object)[codes].tolist()
        offsets = features.seq_offsets.tolist()
        return [labels[offsets[s]:offsets[s + 1]] for s in range(features.n_sequences)]

    def predict_single(self, xseq):
        """Most likely label sequence of one sequence: a list of str."""
        return self.predict([xseq])[0]

    def predict_indices(self, X):
        """As :meth:`predict`, but label codes (indices into ``classes_``).

        Returns
        -------
        list of ndarray of shape (T,), int64
        """
        features = self._encode(X)
        codes = self._viterbi_codes(features)
        return np.split(codes, features.seq_offsets[1:-1])

    def _marginal_array(self, features):
        n_seq = features.n_sequences
        K = len(self.classes_)
        marg = np.zeros((features.n_tokens, K))
        if n_seq == 0:
            return marg
        status = _sparse.forward_backward(
            self._state_layout.kernel_args(self._state), features.kernel_args(),
            np.zeros(0, dtype=np.int64), self.transition_weights_, self.start_weights_,
            self.end_weights_, np.zeros(n_seq), np.zeros(n_seq), marg, np.zeros((0, 0)),
            n_threads_for(self.n_jobs, n_seq))
        if status != 0:
            raise ValueError("X produces scores that are not finite or exceed 1e150 in "
                             "magnitude: are some feature values huge?")
        return marg

    def predict_proba(self, X):
        """Marginal probability of every label at every token, as arrays.

        Returns
        -------
        list of ndarray of shape (T, n_labels)
            Columns in the order of ``classes_``; each row sums to 1.
        """
        features = self._encode(X)
        return np.split(self._marginal_array(features), features.seq_offsets[1:-1])

    def predict_marginals(self, X):
        """Marginal probability of every label at every token.

        Returns
        -------
        list of lists of dict
            ``{label: P(y_t = label | x)}`` for every token.
        """
        features = self._encode(X)
        marg = self._marginal_array(features).tolist()
        labels = self.classes_
        rows = [dict(zip(labels, row)) for row in marg]
        offsets = features.seq_offsets.tolist()
        return [rows[offsets[s]:offsets[s + 1]] for s in range(features.n_sequences)]

    def predict_marginals_single(self, xseq):
        """Marginals of one sequence: a list of ``{label: probability}`` dicts."""
        return self.predict_marginals([xseq])[0]

    def score(self, X, y):
        """Token accuracy of :meth:`predict` on ``X`` against ``y``.

        Returns
        -------
        float
        """
        features = self._encode(X)
        index = {label: k for k, label in enumerate(self.classes_)}
        codes = self._viterbi_codes(features)
        lengths = features.lengths.tolist()
        gold = []
        n = 0
        for i, seq in enumerate(y):
            if i >= len(lengths) or len(seq) != lengths[i]:
                raise ValueError(f"y[{i}] does not match the length of X[{i}]")
            gold.extend(index.get(label, -1) for label in seq)
            n += 1
        if n != len(lengths):
            raise ValueError(f"X has {len(lengths)} sequences but y has {n}")
        if not gold:
            raise ValueError("X and y hold no tokens")
        return float(np.mean(codes == np.asarray(gold)))

    # ------------------------------------------------------------------ #
    # Persistence                                                          #
    # ------------------------------------------------------------------ #

    def save(self, path, metadata=None):
        """Write the fitted model to ``path`` (atomically; no pickle inside).

        The file is a numpy ``.npz`` archive of the weight arrays plus a JSON
        header (format version, labels, attributes, parameters).  Load it with
        :meth:`CRF.load`.

        Parameters
        ----------
        path : str or os.PathLike
        metadata : dict, optional
            Anything JSON can hold, stored beside the weights and returned by
            :meth:`CRF.load` as ``metadata_`` (``fastcrf train`` keeps its feature
            template there, so ``fastcrf tag`` can extract the same features).

        Raises
        ------
        TypeError
            For ``metadata`` that is not a JSON-serialisable dict.
        """
        from ._persist import save_model

        self._check_fitted()
        save_model(self, path, metadata=metadata)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`.

        Loading never executes code from the file.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        CRF
            Fitted, with ``metadata_``: the dict given to :meth:`save` (empty
            when none was).

        Raises
        ------
        ValueError
            For a file that is not a fastcrf model, is truncated or corrupted, or
            has an unsupported format version.
        """
        from ._persist import load_model

        return load_model(cls, path)


# ---------------------------------------------------------------------- #
# Helpers                                                                  #
# ---------------------------------------------------------------------- #


def _check_real(p, name, low=None, strict=False, allow_none=False):
    value = p[name]
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    p[name] = float(value)


def _check_int(p, name, low=None, allow_none=False):
    value = p[name]
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    p[name] = int(value)


def _as_generator(random_state):
    """A numpy Generator from None, an int, a Generator or a RandomState."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**32, dtype=np.uint64))
    if random_state is None or (isinstance(random_state, numbers.Integral)
                                and not isinstance(random_state, bool)):
        return np.random.default_rng(random_state)
    raise TypeError("random_state must be None, an int, a numpy Generator or a "
                    f"RandomState, got {type(random_state).__name__}")


def _encode_dev_labels(y_dev, classes, features):
    """Label codes of the dev set; labels never seen in training get -1 (always wrong)."""
    try:
        dev_classes, codes = encode_labels(y_dev, lengths=features.lengths)
    except (ValueError, TypeError) as exc:
        raise type(exc)(str(exc).replace("y[", "y_dev[").replace("X[", "X_dev[")
                        .replace("X and y", "X_dev and y_dev")) from None
    index = {label: k for k, label in enumerate(classes)}
    to_train = np.array([index.get(label, -1) for label in dev_classes], dtype=np.int64)
    return dev_classes, to_train[codes]


def _state_mask(layout):
    """The 0/1 matrix of the kept state pairs, or None when all are kept."""
    return None if layout.n_dense == layout.n_attributes else layout.mask()


def _chain_mask(data, all_transitions):
    """1.0 for trainable transition / start / end scores."""
    K = data.n_labels
    mask = np.ones(K * K + 2 * K)
    if not all_transitions:
        seen = np.zeros((K, K))
        y = data.labels
        same_seq = np.ones(len(y) - 1, dtype=bool) if len(y) > 1 else np.zeros(0, bool)
        same_seq[data.features.seq_offsets[1:-1] - 1] = False
        seen[y[:-1][same_seq], y[1:][same_seq]] = 1.0
        mask[: K * K] = seen.ravel()
    return mask


def _viterbi_paths(state_args, trans, start, end, features, n_jobs):
    """Compiled Viterbi over an encoded batch: ``(status, best label of every token)``.

    ``state_args``: the state weights as :meth:`StateLayout.kernel_args` gives them.
    ``status`` is 0, or -1 when some scores are not finite or exceed 1e150.
    """
    n_seq = features.n_sequences
    paths = np.zeros(features.n_tokens, dtype=np.int64)
    if n_seq == 0:
        return 0, paths
    status = _sparse.viterbi(state_args, features.kernel_args(), trans, start, end, paths,
                             np.zeros(n_seq), n_threads_for(n_jobs, n_seq))
    return status, paths


def _token_accuracy(weights, features, labels, n_jobs):
    """Token accuracy of Viterbi with ``weights`` on an encoded set (NaN if it fails)."""
    status, paths = _viterbi_paths(dense_kernel_args(weights.state), weights.transitions,
                                   weights.start, weights.end, features, n_jobs)
    return float(np.mean(paths == labels)) if status == 0 else float("nan")


def _format_entry(entry):
    text = (f"epoch {entry['num']:4d}  loss={entry['loss']:.4f}  "
            f"objective={entry['objective']:.4f}  |w|={entry['feature_norm']:.4f}  "
            f"time={entry['time']:.2f}s")
    if "dev_accuracy" in entry:
        text += f"  dev_acc={entry['dev_accuracy']:.4f}"
    return text

