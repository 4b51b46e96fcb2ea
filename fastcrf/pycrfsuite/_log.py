"""CRFsuite's training log: written by :class:`LogWriter` while fastcrf trains, read
back by :class:`TrainLogParser` (python-crfsuite's ``Trainer.logparser``).

The log is CRFsuite's text, line by line, so code that parses ``Trainer.message``
or reads ``logparser.iterations`` / ``last_iteration`` works unchanged: the same
sections (feature generation, the algorithm's parameters, one block per iteration
with the holdout evaluation, storing the model) and the same keys (``num``,
``loss``, ``feature_norm``, ``active_features``, ``time``, ``scores``,
``avg_precision``, ``item_accuracy``, ...).  What fastcrf's trainers do not measure
(L-BFGS's error norm and line-search trials, SGD's calibration trials) is not
written, so those keys are absent.
"""

import fractions
import re
import time
from collections import namedtuple

import numpy as np

from .._model import viterbi_codes
from ._params import ALGORITHM_PARAMS, TITLES

#: One label's holdout scores, as python-crfsuite's log parser gives them.
LabelScore = namedtuple("LabelScore", "match model ref precision recall f1")


class LogWriter:
    """The listener of :func:`fastcrf._fit.fit_model` that writes CRFsuite's log.

    Parameters
    ----------
    emit : callable
        Receives each line (with its newline), as CRFsuite's message callback does.
    algorithm : str
        CRFsuite's algorithm name.
    values : dict
        The typed CRFsuite parameters.
    holdout : tuple or None
        ``(group, X, y)`` of the holdout evaluation.
    n_jobs : int or None
    """

    def __init__(self, emit, algorithm, values, holdout=None, n_jobs=None):
        self.emit = emit
        self.algorithm = algorithm
        self.values = values
        self.holdout = holdout
        self.n_jobs = n_jobs
        self.started = self.last = time.perf_counter()
        self.classes = None
        self.dev = None

    def lines(self, *lines):
        for line in lines:
            self.emit(line + "\n")

    def start(self):
        """The first lines, before the data are encoded."""
        if self.holdout is not None:
            self.lines(f"Holdout group: {self.holdout[0] + 1}", "")
        v = self.values
        self.lines("Feature generation", "type: CRF1d",
                   f"feature.minfreq: {v['feature.minfreq']:f}",
                   f"feature.possible_states: {int(v['feature.possible_states'])}",
                   f"feature.possible_transitions: {int(v['feature.possible_transitions'])}")

    def prepared(self, data, layout, mask, vocabulary, classes):
        """After encoding: the feature count and the algorithm's parameters."""
        for k in range(11):
            self.emit(str(k))
            if k < 10:
                for _ in range(4):
                    self.emit(".")
        self.emit("\n")
        n_chain = int(np.count_nonzero(mask))
        self.lines(f"Number of features: {layout.n_weights + n_chain}",
                   f"Seconds required: {time.perf_counter() - self.started:.3f}", "")
        self.lines(TITLES[self.algorithm])
        for param in ALGORITHM_PARAMS[self.algorithm]:
            if param.name.startswith("feature."):
                continue
            value = self.values[param.name]
            text = (f"{value:f}" if param.kind == "float" else
                    str(int(value)) if param.kind == "bool" else str(value))
            self.lines(f"{param.name}: {text}")
        self.lines("")
        self.classes = list(classes)
        if self.holdout is not None:
            from .._train.progress import encode_dev
            _, X, y = self.holdout
            self.dev = (encode_dev(X, y, vocabulary, classes, self.n_jobs), y)
        self.started = self.last = time.perf_counter()

    def iteration(self, epoch, info, weights_fn, layout):
        """One iteration's block; never stops the training."""
        now = time.perf_counter()
        head = "Epoch" if self.algorithm == "l2sgd" else "Iteration"
        sgd_like = self.algorithm in ("lbfgs", "l2sgd")
        loss = info["objective"] if sgd_like else info["loss"]
        norm = "Feature L2-norm" if self.algorithm == "l2sgd" else "Feature norm"
        self.lines(f"***** {head} #{epoch} *****", f"Loss: {loss:f}",
                   f"{norm}: {info['weight_norm']:f}")
        if "active_features" in info:
            self.lines(f"Active features: {info['active_features']}")
        self.lines(f"Seconds required for this iteration: {now - self.last:.3f}")
        if self.dev is not None:
            self._evaluate(weights_fn(), layout)
        self.lines("")
        self.last = time.perf_counter()
        return False

    def _evaluate(self, weights, layout):
        """CRFsuite's holdout report: per-label counts and scores, macro averages,
        item and instance accuracy."""
        (features, gold), y = self.dev
        paths = viterbi_codes(layout, weights.state, weights.chain, features, self.n_jobs,
                              strict=False)
        if paths is None:
            paths = np.full(len(gold), -1)
        K = len(self.classes)
        match = np.bincount(gold[paths == gold], minlength=K)[:K]
        model = np.bincount(paths[paths >= 0], minlength=K)[:K]
        ref = np.bincount(gold[gold >= 0], minlength=K)[:K]
        correct = int(np.sum(paths == gold))
        offsets = features.seq_offsets
        wrong = np.add.reduceat((paths != gold).astype(np.int64), offsets[:-1]) \
            if len(gold) else np.zeros(0)
        n_seq = features.n_sequences
        exact = int(np.sum(wrong == 0))
        self.lines(*performance_report(self.classes, match, model, ref, correct, len(gold),
                                       exact, n_seq))

    def finish(self, model, seconds_store):
        """The last lines, once the model is trained and stored."""
        self.lines(f"Total seconds required for training: "
                   f"{time.perf_counter() - self.started:.3f}", "")
        rows, _, _ = model.layout.nonzero(model.state)
        n_active = len(rows) + int(np.count_nonzero(model.transitions))
        K = len(model.classes)
        self.lines("Storing the model",
                   f"Number of active features: {n_active} ({model.n_weights - 2 * K})",
                   f"Number of active attributes: {len(np.unique(rows))} "
                   f"({len(model.vocabulary)})",
                   f"Number of active labels: {K} ({K})",
                   "Writing labels", "Writing attributes",
                   "Writing feature references for transitions",
                   "Writing feature references for attributes",
                   f"Seconds required: {seconds_store:.3f}", "")


class TrainLogParser:
    """Reads CRFsuite's training log, one message at a time (python-crfsuite's
    ``pycrfsuite._logparser.TrainLogParser``).

    Attributes
    ----------
    iterations : list of dict
        One dict per iteration: ``num``, ``scores`` (``{label: LabelScore}`` of the
        holdout evaluation), ``loss``, ``feature_norm``, ``time`` and, where the log
        has them, ``active_features``, ``avg_precision``, ``avg_recall``,
        ``avg_f1``, ``item_accuracy`` (a Fraction), ``item_accuracy_float``,
        ``instance_accuracy``, ``instance_accuracy_float``.
    last_iteration : dict or None
    log : list of str
        Every message received.
    events : list of tuple
        ``(event, first message, end)`` of each event.
    featgen_percent, featgen_num_features, featgen_seconds, training_seconds, \
storing_seconds
        What the log said of those steps.
    """

    _ITERATION = re.compile(r"\*{5} (?:Iteration|Epoch) #(\d+) \*{5}\n")
    _SECONDS = re.compile(r"Seconds required: (\d+\.\d+)")
    _FIELDS = (
        ("loss", re.compile(r"Loss: (\d+\.\d+)"), float),
        ("feature_norm", re.compile(r"Feature (?:L2-)?norm: (\d+\.\d+)"), float),
        ("error_norm", re.compile(r"Error norm: (\d+\.\d+)"), float),
        ("active_features", re.compile(r"Active features: (\d+)"), int),
        ("linesearch_trials", re.compile(r"Line search trials: (\d+)"), int),
        ("linesearch_step", re.compile(r"Line search step: (\d+\.\d+)"), float),
        ("time", re.compile(r"Seconds required for this iteration: (\d+\.\d+)"), float),
    )
    _MACRO = re.compile(r"Macro-average precision, recall, F1: \((\d\.\d+), (\d\.\d+), "
                        r"(\d\.\d+)\)")
    _ACCURACY = re.compile(r"(Item|Instance) accuracy: (\d+) / (\d+)")
    _SCORE = re.compile(r"\s{4}(.+): \((\d+), (\d+), (\d+)\) \((\d\.\d+), (\d\.\d+), "
                        r"(\d\.\d+)\)")
    _NO_SCORE = re.compile(r"\s{4}(.+): \(0, 0, 0\) \(\*{6}, \*{6}, \*{6}\)")

    def __init__(self):
        self.state = None
        self.featgen_percent = -2
        self.featgen_num_features = None
        self.featgen_seconds = None
        self.training_seconds = None
        self.storing_seconds = None
        self.iterations = []
        self.last_iteration = None
        self.log = []
        self.events = []

    def feed(self, line):
        """Read one message; return the event it completes ('start',
        'featgen_progress', 'featgen_end', 'prepared', 'prepare_error', 'iteration',
        'optimization_end', 'end') or None."""
        self.log.append(line)
        if self.state is None:
            self.state = "STARTING"
            self._starting(line)
            self.events.append(("start", 0, len(self.log)))
            return "start"
        event = getattr(self, "_" + self.state.lower())(line)
        if event is not None:
            begin, end = self.events[-1][2], len(self.log)
            if event in ("prepared", "optimization_end"):
                end -= 1
            self.events.append((event, begin, end))
        return event

    @property
    def last_log(self):
        """The messages of the last event, joined."""
        _, begin, end = self.events[-1]
        return "".join(self.log[begin:end])

    def _starting(self, line):
        if line.startswith("Feature generation"):
            self.state = "FEATGEN"

    def _featgen(self, line):
        if line in "0123456789.10":
            self.featgen_percent += 2
            return "featgen_progress"
        m = re.match(r"Number of features: (\d+)", line)
        if m:
            self.featgen_num_features = int(m.group(1))
            return None
        m = self._SECONDS.match(line)
        if m:
            self.featgen_seconds = float(m.group(1))
            self.state = "AFTER_FEATGEN"
            return "featgen_end"
        return None

    def _after_featgen(self, line):
        if self._ITERATION.match(line):
            self.state = "ITERATION"
            self._iteration(line)
            return "prepared"
        if "terminated with error" in line:
            self.state = "AFTER_ITERATION"
            return "prepare_error"
        return None

    def _iteration(self, line):
        m = self._ITERATION.match(line)
        if m:
            self.last_iteration = {"num": int(m.group(1)), "scores": {}}
            self.iterations.append(self.last_iteration)
            return None
        if line == "\n":
            self.state = "AFTER_ITERATION"
            return "iteration"
        it = self.last_iteration
        for key, pattern, kind in self._FIELDS:
            m = pattern.match(line)
            if m:
                it[key] = kind(m.group(1))
        m = self._MACRO.match(line)
        if m:
            it["avg_precision"], it["avg_recall"], it["avg_f1"] = map(float, m.groups())
        m = self._ACCURACY.match(line)
        if m and int(m.group(3)) > 0:
            key = m.group(1).lower() + "_accuracy"
            it[key] = fractions.Fraction(int(m.group(2)), int(m.group(3)))
            it[key + "_float"] = float(it[key])
        m = self._SCORE.match(line)
        if m:
            it["scores"][m.group(1)] = LabelScore(
                int(m.group(2)), int(m.group(3)), int(m.group(4)), float(m.group(5)),
                float(m.group(6)), float(m.group(7)))
        m = self._NO_SCORE.match(line)
        if m:
            it["scores"][m.group(1)] = LabelScore(0, 0, 0, None, None, None)
        return None

    def _after_iteration(self, line):
        if self._ITERATION.match(line):
            self.state = "ITERATION"
            return self._iteration(line)
        m = re.match(r"Total seconds required for training: (\d+\.\d+)", line)
        if m:
            self.training_seconds = float(m.group(1))
        if line.startswith("Storing the model"):
            self.state = "STORING"
            return "optimization_end"
        return None

    def _storing(self, line):
        if line == "\n":
            return "end"
        m = self._SECONDS.match(line)
        if m:
            self.storing_seconds = float(m.group(1))
        return None


def performance_report(classes, match, model, ref, correct, items, exact, instances):
    """CRFsuite's evaluation report, as lines: per label ``(#match, #model, #ref)
    (precision, recall, F1)`` (stars for a label with no reference item), the macro
    averages over the labels, item and instance accuracy.

    Parameters
    ----------
    classes : sequence of str
    match, model, ref : array of int, one per label
        Items predicted right, predicted, and in the reference, per label.
    correct, items : int
        Items predicted right, and items.
    exact, instances : int
        Sequences predicted entirely right, and sequences.

    Returns
    -------
    list of str
    """
    lines = ["Performance by label (#match, #model, #ref) (precision, recall, F1):"]
    macro = np.zeros(3)
    for k, label in enumerate(classes):
        m, p, r = int(match[k]), int(model[k]), int(ref[k])
        if r == 0:
            lines.append(f"    {label}: ({m}, {p}, {r}) (******, ******, ******)")
            continue
        precision = m / p if p else 0.0
        recall = m / r
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        macro += (precision, recall, f1)
        lines.append(f"    {label}: ({m}, {p}, {r}) ({precision:1.4f}, {recall:1.4f}, "
                     f"{f1:1.4f})")
    macro /= max(len(classes), 1)
    return lines + [f"Macro-average precision, recall, F1: ({macro[0]:f}, {macro[1]:f}, "
                    f"{macro[2]:f})",
                    f"Item accuracy: {correct} / {items} ({correct / max(items, 1):1.4f})",
                    f"Instance accuracy: {exact} / {instances} "
                    f"({exact / max(instances, 1):1.4f})"]
