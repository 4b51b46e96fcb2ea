"""What a fit reports while it runs: the training log, verbose lines, dev accuracy.

A :class:`Progress` is handed to a trainer as its ``callback`` and ``log``
(fastcrf._train.base.Trainer): every epoch / iteration becomes one entry of the
:class:`~fastcrf._model.TrainingLog` (with the dev set's token accuracy when there
is one) and, under ``verbose``, one printed line.
"""

import sys
import time

import numpy as np

from .._features._encoding import encode, encode_labels
from .._model import TrainingLog, viterbi_codes
from .bar import bar_update
from .stopping import EarlyStopping


def hold_out(X, y, fraction, rng, sample_weight=None):
    """Split a training set for ``early_stopping``: ``(X_train, y_train, X_dev, y_dev,
    sample_weight_train)``.

    A random ``fraction`` of the sequences (at least one) becomes the development set;
    both parts keep the input order.  ``sample_weight`` (an array, or None) follows
    the training part.

    Raises
    ------
    ValueError
        When fewer than two sequences are given, or ``X`` and ``y`` differ in length.
    """
    X, y = list(X), list(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} sequences but y has {len(y)}")
    n = len(X)
    n_dev = max(1, int(round(fraction * n)))
    if n - n_dev < 1:
        raise ValueError(f"early_stopping holds out validation_fraction={fraction} of the "
                         f"{n} training sequences, which leaves none to train on; give "
                         "X_dev and y_dev, or more training sequences")
    order = rng.permutation(n)
    dev = np.sort(order[:n_dev]).tolist()
    train = np.sort(order[n_dev:]).tolist()
    return ([X[i] for i in train], [y[i] for i in train], [X[i] for i in dev],
            [y[i] for i in dev], None if sample_weight is None else sample_weight[train])


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
        :func:`encode_dev` of the dev set (its features an
        :class:`fastcrf._edges.EdgeBatch` when the weights ``weights_fn`` returns
        carry transition-attribute weights, ``edge``).
    verbose : bool
    n_jobs : int or None
    started : float
        ``time.perf_counter()`` when the fit began (the log's times count from it).
    n_iter_no_change : int, optional
        Early stopping: stop after this many epochs without a better dev accuracy
        (needs ``dev``) and keep the best epoch's weights (:attr:`best_weights`).
    bar : tqdm bar, optional
        Advanced once per epoch / iteration (:mod:`fastcrf._train.bar`).

    Attributes
    ----------
    log : TrainingLog
    best_weights : LayoutWeights or None
        Under early stopping, the weights of the best epoch.
    """

    def __init__(self, algorithm, layout, dev=None, *, verbose=False, n_jobs=None,
                 started=None, n_iter_no_change=None, bar=None):
        self.log = TrainingLog(algorithm)
        self.layout = layout
        self.dev = dev
        if n_iter_no_change is not None and dev is None:
            raise ValueError("early stopping needs a development set")
        self.early = None if n_iter_no_change is None else EarlyStopping(n_iter_no_change)
        self.out = sys.stdout if verbose else None
        self.bar = bar
        self.n_jobs = n_jobs
        self.started = time.perf_counter() if started is None else started

    def message(self, text):
        """Print ``text`` under ``verbose`` (above the bar, when there is one)."""
        if self.out is not None:
            if self.bar is not None:
                self.bar.write(text, file=self.out)
            else:
                print(text, file=self.out, flush=True)

    def announce(self, data, note=None):
        """The first verbose lines: a ``note`` (why the algorithm changed), then what is
        about to be trained."""
        if note:
            self.message(note)
        f, K = data.features, data.n_labels
        self.message(
            f"fastcrf: {self.log.algorithm} on {data.n_sequences} sequences, "
            f"{f.n_tokens} tokens, {f.n_attributes} attributes, {K} labels, "
            f"{self.layout.n_weights + K * K + 2 * K} weights "
            f"(encoded in {time.perf_counter() - self.started:.2f}s)")

    @property
    def best_weights(self):
        """The best epoch's weights under early stopping, else None."""
        return None if self.early is None else self.early.best_weights

    def callback(self, epoch, info, weights_fn):
        """Log one epoch / iteration (see the trainer contract); stops training only
        under early stopping."""
        # Plain Python numbers, as sklearn-crfsuite's log gives (not numpy scalars).
        entry = {"num": epoch, "loss": float(info["loss"]),
                 "objective": float(info["objective"]),
                 "feature_norm": float(info["weight_norm"]),
                 "time": time.perf_counter() - self.started}
        if "active_features" in info:
            entry["active_features"] = info["active_features"]
        if "eta0" in info:   # SGD's step size: partial_fit goes on with it
            entry["eta0"] = float(info["eta0"])
        if "t" in info:      # and its step counter (sequences seen), a warm start too
            entry["t"] = float(info["t"])
        if "step_rule" in info:   # and which rule eta0 is the step size of
            self.log.step_rule = str(info["step_rule"])
        weights = None
        if self.dev is not None:
            weights = weights_fn()
            entry["dev_accuracy"] = self._dev_accuracy(weights)
        self.log.iterations.append(entry)
        if self.bar is not None:
            bar_update(self.bar, entry)
        self.message(format_entry(entry))
        if self.early is None:
            return False
        stop = self.early.update(epoch, entry["dev_accuracy"], lambda: weights)
        self.log.best_iteration = self.early.best_epoch
        if stop:
            self.message(f"early stopping: no better dev accuracy in "
                         f"{self.early.n_iter_no_change} epochs; keeping epoch "
                         f"{self.early.best_epoch} (dev_acc="
                         f"{self.early.best_score:.4f})")
        return stop

    def _dev_accuracy(self, weights):
        # NaN rather than an error when the weights of an epoch overflow the kernels.
        features, labels = self.dev
        if getattr(weights, "edge", None) is not None:
            # Transition attributes (fastcrf._edges): the dev set is an EdgeBatch and
            # is decoded as the fitted model's predict would.
            from .._edges import viterbi_codes as edge_viterbi_codes
            paths = edge_viterbi_codes(self.layout, weights.state, weights.chain,
                                       weights.edge, features, self.n_jobs, strict=False)
        else:
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
