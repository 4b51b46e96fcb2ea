"""What a fit reports while it runs: the training log, verbose lines, dev accuracy.

A :class:`Progress` is handed to a trainer as its ``callback`` and ``log``
(fastcrf._train.base.Trainer): every epoch / iteration becomes one entry of the
:class:`~fastcrf._model.TrainingLog` (with the dev set's token accuracy when there
is one) and, under ``verbose``, one printed line.
"""

import sys
import time

import numpy as np

from .._encoding import encode, encode_labels
from .._model import TrainingLog, viterbi_codes


def encode_dev(X_dev, y_dev, vocabulary, classes, n_jobs):
    """``(features, label codes)`` of a dev set; labels never seen in training get -1
    (always wrong).  Errors name ``X_dev`` / ``y_dev``."""
    features = encode(X_dev, vocabulary, dense_values=False, n_jobs=n_jobs)
    try:
        dev_classes, codes = encode_labels(y_dev, lengths=features.lengths)
    except (ValueError, TypeError) as exc:
        raise type(exc)(str(exc).replace("y[", "y_dev[").replace("X[", "X_dev[")
                        .replace("X and y", "X_dev and y_dev")) from None
    index = {label: k for k, label in enumerate(classes)}
    to_train = np.array([index.get(label, -1) for label in dev_classes], dtype=np.int64)
    return features, to_train[codes]


class Progress:
    """The callback and the message sink of one fit.

    Parameters
    ----------
    algorithm : str
    layout : StateLayout
        The layout of the weights the trainer's ``weights_fn`` returns.
    dev : tuple or None
        :func:`encode_dev` of the dev set.
    verbose : bool
    n_jobs : int or None
    started : float
        ``time.perf_counter()`` when the fit began (the log's times count from it).

    Attributes
    ----------
    log : TrainingLog
    """

    def __init__(self, algorithm, layout, dev=None, *, verbose=False, n_jobs=None,
                 started=None):
        self.log = TrainingLog(algorithm)
        self.layout = layout
        self.dev = dev
        self.out = sys.stdout if verbose else None
        self.n_jobs = n_jobs
        self.started = time.perf_counter() if started is None else started

    def message(self, text):
        """Print ``text`` under ``verbose``."""
        if self.out is not None:
            print(text, file=self.out, flush=True)

    def announce(self, data):
        """The first verbose line: what is about to be trained."""
        f, K = data.features, data.n_labels
        self.message(
            f"fastcrf: {self.log.algorithm} on {data.n_sequences} sequences, "
            f"{f.n_tokens} tokens, {f.n_attributes} attributes, {K} labels, "
            f"{self.layout.n_weights + K * K + 2 * K} weights "
            f"(encoded in {time.perf_counter() - self.started:.2f}s)")

    def callback(self, epoch, info, weights_fn):
        """Log one epoch / iteration (see the trainer contract); never stops training."""
        entry = {"num": epoch, "loss": info["loss"], "objective": info["objective"],
                 "feature_norm": info["weight_norm"],
                 "time": time.perf_counter() - self.started}
        if "active_features" in info:
            entry["active_features"] = info["active_features"]
        if self.dev is not None:
            entry["dev_accuracy"] = self._dev_accuracy(weights_fn())
        self.log.iterations.append(entry)
        self.message(format_entry(entry))
        return False

    def _dev_accuracy(self, weights):
        # NaN rather than an error when the weights of an epoch overflow the kernels.
        features, labels = self.dev
        paths = viterbi_codes(self.layout, weights.state, weights.chain, features,
                              self.n_jobs, strict=False)
        return float("nan") if paths is None else float(np.mean(paths == labels))


def format_entry(entry):
    """The verbose line of a log entry."""
    text = (f"epoch {entry['num']:4d}  loss={entry['loss']:.4f}  "
            f"objective={entry['objective']:.4f}  |w|={entry['feature_norm']:.4f}  "
            f"time={entry['time']:.2f}s")
    if "dev_accuracy" in entry:
        text += f"  dev_acc={entry['dev_accuracy']:.4f}"
    return text
