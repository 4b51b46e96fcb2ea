"""python-crfsuite's ``Trainer`` over fastcrf's trainers.

The instances appended are kept as given (items are read by fastcrf's compiled
encoder when ``train`` runs, not one by one at ``append``); ``train`` runs
:func:`fastcrf._fit.fit_model` with the CRFsuite parameters translated
(:mod:`fastcrf.pycrfsuite._params`), without start/end scores (CRFsuite has none),
writes CRFsuite's log through :meth:`BaseTrainer.message`, and stores the model in
CRFsuite's file format.
"""

import numbers
import os
import time

import numpy as np

from .._estimator import CRF
from .._features._encoding import AttributeVocabulary
from .._fit import fit_model
from .._layout import StateLayout
from .._model import CRFModel
from .._persist import save_model
from ._items import as_encodable, strict_items
from ._log import LogWriter, TrainLogParser
from ._params import ALGORITHM_PARAMS, ALIASES, crf_params


def _check_labels(yseq):
    if isinstance(yseq, (str, bytes)):
        raise TypeError("yseq must be a sequence of str labels, not a single "
                        f"{type(yseq).__name__}")
    try:
        labels = list(yseq)
    except TypeError:
        raise TypeError(f"yseq must be a sequence of str labels, got "
                        f"{type(yseq).__name__}") from None
    for t, label in enumerate(labels):
        if isinstance(label, bytes):
            labels[t] = label.decode("utf-8", "surrogateescape")
        elif not isinstance(label, str):
            raise TypeError(f"yseq[{t}] must be a str label, got {type(label).__name__}")
    return labels


def empty_model(classes):
    """A model with labels ``classes`` (possibly none) and no attribute or weight."""
    K = len(classes)
    layout = StateLayout(0, K, 0, np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32))
    return CRFModel(classes, AttributeVocabulary([]), layout, np.zeros(0),
                    np.zeros(K * K + 2 * K))


class BaseTrainer:
    """Trains a CRF from appended instances (python-crfsuite's ``BaseTrainer``).

    Parameters
    ----------
    algorithm : {'lbfgs', 'l2sgd', 'ap', 'pa'}, optional
        The training algorithm (:meth:`select`); default 'lbfgs'.
    params : dict, optional
        CRFsuite parameters (:meth:`set_params`).
    verbose : bool, default=True
        Whether :meth:`message` prints the training log.
    n_jobs : int, optional
        fastcrf's OpenMP threads for training (None: all cores).  Results do not
        depend on it.
    """

    def __new__(cls, *args, **kwargs):
        # The data and the selected algorithm exist before __init__ runs, as in
        # python-crfsuite (a Cython __cinit__): a subclass whose __init__ does not call
        # BaseTrainer.__init__ still appends, selects and trains (verbose is then None,
        # so nothing is printed).
        self = super().__new__(cls)
        self._xseqs, self._yseqs, self._groups = [], [], []
        self._select("lbfgs")
        self.verbose = None
        self.n_jobs = None
        return self

    def __init__(self, algorithm=None, params=None, verbose=True, *, n_jobs=None):
        if algorithm is not None:
            self.select(algorithm)
        if params is not None:
            self.set_params(params)
        self.verbose = verbose
        self.n_jobs = n_jobs

    def message(self, message):
        """Receive one message of the training log; prints it under ``verbose``.
        Override to receive the log."""
        if self.verbose:
            print(message, end="")

    # Data --------------------------------------------------------------------

    def append(self, xseq, yseq, group=0):
        """Add an instance to the data set.

        Parameters
        ----------
        xseq : list of items, or ItemSequence
            Each item a dict of features or a list of attribute names
            (:class:`~fastcrf.pycrfsuite.ItemSequence` describes the formats).
        yseq : list of str
            One label per item.
        group : int, default=0
            The instance's group; :meth:`train`'s ``holdout`` evaluates on one.

        Raises
        ------
        ValueError
            When ``xseq`` and ``yseq`` differ in length.
        TypeError
            For a label that is not a str, or a ``group`` that is not an int.
        """
        if not isinstance(group, numbers.Integral):  # a bool is an int, as in Cython
            raise TypeError(f"group must be an int, got {type(group).__name__}")
        labels = _check_labels(yseq)
        items = as_encodable(xseq)
        if len(items) != len(labels):
            raise ValueError(f"The numbers of items and labels differ: |x| = {len(items)}, "
                             f"|y| = {len(labels)}")
        if items:
            self._xseqs.append(items)
            self._yseqs.append(labels)
            self._groups.append(int(group))

    def clear(self):
        """Remove every instance."""
        self._xseqs, self._yseqs, self._groups = [], [], []

    # Algorithm and parameters ----------------------------------------------------

    def select(self, algorithm, type="crf1d"):
        """Choose the training algorithm; its parameters take their defaults.

        Parameters
        ----------
        algorithm : {'lbfgs', 'l2sgd', 'ap', 'pa', 'arow'}
            Also CRFsuite's long names 'averaged-perceptron', 'passive-aggressive'.
        type : {'crf1d'}
            The graphical model (CRFsuite has only the linear chain).

        Raises
        ------
        ValueError
            For another algorithm or type.
        """
        name = str(algorithm).lower()
        name = ALIASES.get(name, name)
        if name not in ALGORITHM_PARAMS or type != "crf1d":
            raise ValueError(f"Bad arguments: algorithm={name!r}, type={type!r}")
        self._select(name)

    def _select(self, name):
        self._algorithm = name
        self._params = {p.name: p for p in ALGORITHM_PARAMS[name]}
        self._values = {p.name: p.default for p in ALGORITHM_PARAMS[name]}

    def params(self):
        """The names of the selected algorithm's parameters: a list of str."""
        return list(self._params)

    def set_params(self, params):
        """Set several parameters from a ``{name: value}`` dict."""
        for name, value in params.items():
            self.set(name, value)

    def get_params(self):
        """Every parameter of the selected algorithm: a ``{name: value}`` dict."""
        return {name: self.get(name) for name in self._params}

    def set(self, name, value):
        """Set one parameter (a number, a bool, or its text).

        Raises
        ------
        ValueError
            For a name the selected algorithm does not have, or a value that is not
            of the parameter's type.
        """
        param = self._params.get(name)
        if param is None:
            raise ValueError(f"Parameter not found: {name} = {value}")
        self._values[name] = param.parse(value)

    def get(self, name):
        """The value of one parameter (int, float, bool or str, by its type)."""
        if name not in self._params:
            raise ValueError(f"Parameter not found: {name} = ")
        return self._values[name]

    def help(self, name):
        """The description of one parameter: a str."""
        if name not in self._params:
            raise ValueError(f"Parameter not found: {name}")
        return self._params[name].help

    # Training ------------------------------------------------------------------

    def train(self, model, holdout=-1):
        """Train on the appended instances and store the model.

        Parameters
        ----------
        model : str or os.PathLike
            Where the model is written, in CRFsuite's format (atomically); an empty
            string writes none.
        holdout : int, default=-1
            The group kept out of training and evaluated after every iteration (in
            the log and ``logparser``); -1 trains on every instance.

        With no instance to train on (none appended, or all in the ``holdout``
        group) the model written has no weights, as CRFsuite's: it holds the labels
        appended, if any.

        Raises
        ------
        ValueError
            For invalid parameters.
        """
        if not isinstance(holdout, numbers.Integral):
            raise TypeError(f"holdout must be an int, got {type(holdout).__name__}")
        holdout = int(holdout)
        train = [i for i, g in enumerate(self._groups) if g != holdout]
        self._before_train()
        # CRFsuite numbers the labels as instances are appended, holdout ones too.
        classes = list(dict.fromkeys(label for labels in self._yseqs for label in labels))
        if not train:
            self._store_empty(model, classes)
            return
        X = [self._xseqs[i] for i in train]
        y = [self._yseqs[i] for i in train]
        dev = None
        if holdout >= 0:
            held = [i for i, g in enumerate(self._groups) if g == holdout]
            dev = (holdout, [self._xseqs[i] for i in held], [self._yseqs[i] for i in held])
        writer = LogWriter(self.message, self._algorithm, dict(self._values), dev,
                           self.n_jobs)
        params = CRF().get_params()
        params.update(crf_params(self._algorithm, self._values))
        # CRFsuite's SGD is deterministic (its shuffles use rand() unseeded): so is this.
        params.update(verbose=False, n_jobs=self.n_jobs, random_state=0)
        writer.start()
        try:
            fitted = fit_model(params, X, y, ends=False, listener=writer,
                               min_feature_freq=self._values["feature.minfreq"],
                               classes=classes)
        except TypeError:
            # Items fastcrf's encoder does not read (sets, bytes, ...): flatten them.
            X = [strict_items(x, f"instance {i}") for i, x in zip(train, X)]
            if dev is not None:
                dev = (dev[0], [strict_items(x) for x in dev[1]], dev[2])
                writer.holdout = dev
            fitted = fit_model(params, X, y, ends=False, listener=writer,
                               min_feature_freq=self._values["feature.minfreq"],
                               classes=classes)
        started = time.perf_counter()
        path = os.fspath(model)
        if path:
            save_model(fitted, path, params={}, format="crfsuite")
        writer.finish(fitted, time.perf_counter() - started)

    def _store_empty(self, model, classes):
        """What CRFsuite does with nothing to train on: log the start and the end,
        and write a model with ``classes`` and no weight."""
        writer = LogWriter(self.message, self._algorithm, dict(self._values), None,
                           self.n_jobs)
        writer.start()
        empty = empty_model(classes)
        started = time.perf_counter()
        path = os.fspath(model)
        if path:
            save_model(empty, path, params={}, format="crfsuite")
        writer.finish(empty, time.perf_counter() - started)

    def _before_train(self):
        pass


class Trainer(BaseTrainer):
    """:class:`BaseTrainer` whose log is parsed (python-crfsuite's ``Trainer``).

    ``logparser`` (a :class:`~fastcrf.pycrfsuite.TrainLogParser`) holds what the
    last :meth:`train` logged; under ``verbose`` every event calls its hook
    (``on_start``, ``on_featgen_progress``, ``on_featgen_end``, ``on_prepared``,
    ``on_prepare_error``, ``on_iteration(log, info)``, ``on_optimization_end``,
    ``on_end``), which prints the event's log; override them to do otherwise.
    """

    logparser = None

    def _before_train(self):
        self.logparser = TrainLogParser()

    def message(self, message):
        event = self.logparser.feed(message)
        if not self.verbose or event is None:
            return
        log = self.logparser.last_log
        if event == "featgen_progress":
            self.on_featgen_progress(log, self.logparser.featgen_percent)
        elif event == "iteration":
            self.on_iteration(log, self.logparser.last_iteration)
        else:
            getattr(self, "on_" + event)(log)

    def on_start(self, log):
        print(log, end="")

    def on_featgen_progress(self, log, percent):
        print(log, end="")

    def on_featgen_end(self, log):
        print(log, end="")

    def on_prepared(self, log):
        print(log, end="")

    def on_prepare_error(self, log):
        print(log, end="")

    def on_iteration(self, log, info):
        print(log, end="")

    def on_optimization_end(self, log):
        print(log, end="")

    def on_end(self, log):
        print(log, end="")
