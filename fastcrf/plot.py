"""Matplotlib plots of a CRF: training curve, transition heat map, per-label scores,
label confusion matrix.

matplotlib is an optional extra (``pip install "fastcrf[plot]"``).  Every function
takes an optional ``ax=`` (a new figure is made when it is None), returns the Axes it
drew on, and never calls ``plt.show()``: the caller decides whether to show or save.
"""

import numpy as np

__all__ = ["plot_training_curve", "plot_transitions", "plot_label_scores",
           "plot_confusion", "model_figure", "evaluation_figure", "save_figure",
           "check_png_path"]

_EXTRA_HINT = 'fastcrf.plot needs matplotlib: pip install "fastcrf[plot]"'


def _pyplot():
    """Import pyplot lazily so that ``import fastcrf`` never needs matplotlib."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc
    return plt


def _axes(ax, size):
    """``ax`` itself, or the Axes of a new figure of ``size`` inches."""
    if ax is None:
        _, ax = _pyplot().subplots(figsize=size)
        return ax
    _pyplot()
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _tick_size(n):
    """Tick label font size that keeps ``n`` labels apart on a default-size axis."""
    return 9 if n <= 12 else 7 if n <= 30 else 5


def _label_ticks(ax, labels, axis):
    """Put ``labels`` on the x or y ticks; x labels are rotated so that they never
    overlap, even with dozens of labels."""
    pos = np.arange(len(labels))
    size = _tick_size(len(labels))
    if axis == "x":
        ax.set_xticks(pos)
        ax.set_xticklabels(labels, rotation=90 if len(labels) > 8 else 0, fontsize=size)
    else:
        ax.set_yticks(pos)
        ax.set_yticklabels(labels, fontsize=size)


def _crf_of(model):
    """A fitted CRF from ``model``: a CRF itself or the path of a model file."""
    import os

    from ._estimator import CRF

    if isinstance(model, (str, os.PathLike)):
        return CRF.load(model)
    if not isinstance(model, CRF):
        raise TypeError("model must be a fitted fastcrf.CRF or a model file path, "
                        f"got {type(model).__name__}")
    return model


def plot_training_curve(model, *, ax=None):
    """Plot the objective and loss per epoch / iteration, and the dev accuracy when
    the fit had a dev set (on a second y axis).

    Parameters
    ----------
    model : CRF, TrainingLog, str or path
        A fitted CRF, its ``training_log_``, or a model file.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on (the dev accuracy, when present, is on a twin Axes in
        ``ax.figure.axes``).

    Raises
    ------
    ValueError
        When the log has no iterations (e.g. a model file saved without one).
    TypeError
        When ``model`` is none of the above.
    """
    from ._model import TrainingLog

    log = model if isinstance(model, TrainingLog) else _crf_of(model).training_log_
    its = [it for it in (log.iterations if log is not None else [])
           if "objective" in it or "loss" in it]
    if not its:
        raise ValueError("model has no training log to plot (no iterations recorded)")
    ax = _axes(ax, (6.4, 4.0))
    num = [it.get("num", i + 1) for i, it in enumerate(its)]
    for key, style in (("objective", "-"), ("loss", "--")):
        if all(key in it for it in its):
            ax.plot(num, [it[key] for it in its], style, label=key)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
    ax.set_xlabel("epoch / iteration")
    ax.set_ylabel("objective / loss")
    ax.set_title(f"Training curve ({log.algorithm})")
    lines, names = ax.get_legend_handles_labels()
    if all("dev_accuracy" in it for it in its):
        right = ax.twinx()
        (line,) = right.plot(num, [it["dev_accuracy"] for it in its], ":o", color="C2",
                             markersize=3, label="dev accuracy")
        right.set_ylabel("dev accuracy")
        lines, names = lines + [line], names + ["dev accuracy"]
    if log.best_iteration is not None:
        lines.append(ax.axvline(log.best_iteration, color="grey", linewidth=0.8))
        names.append("best iteration")
    # Below the axes: inside, it would hide part of a curve.
    ax.legend(lines, names, loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=len(names), fontsize=8, frameon=False)
    ax.figure.tight_layout()
    return ax


def plot_transitions(model, *, ax=None, cmap="RdBu_r"):
    """Plot the transition weights as a labelled heat map: row = label, column =
    the label that follows it.

    Parameters
    ----------
    model : CRF, str or path
        A fitted CRF or a model file.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure (sized to the number of labels) when None.
    cmap : str, default "RdBu_r"
        Colour map; the default is diverging and centred on 0, so positive
        (encouraged) and negative (discouraged) transitions stand apart.

    Returns
    -------
    matplotlib.axes.Axes
    """
    crf = _crf_of(model)
    W = np.asarray(crf.transition_weights_, dtype=float)
    labels = list(crf.classes_)
    n = len(labels)
    side = min(max(4.5, 0.28 * n + 2.5), 16.0)
    ax = _axes(ax, (side + 1.0, side))
    lim = float(np.abs(W).max()) or 1.0
    image = ax.imshow(W, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
    _label_ticks(ax, labels, "x")
    _label_ticks(ax, labels, "y")
    ax.set_xlabel("next label")
    ax.set_ylabel("label")
    ax.set_title("Transition weights")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight")
    return ax


def plot_label_scores(report, *, ax=None):
    """Plot per-label precision, recall and F1 as grouped horizontal bars.

    Parameters
    ----------
    report : ChunkScores or dict
        :func:`fastcrf.metrics.chunk_scores`'s result, or a dict of label to a dict
        with ``precision``, ``recall`` and ``f1`` (as
        ``sklearn.metrics.classification_report(output_dict=True)`` gives).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from .metrics import ChunkScores

    if isinstance(report, ChunkScores):
        rows = {k: (v.precision, v.recall, v.f1) for k, v in report.per_type.items()}
    elif isinstance(report, dict):
        try:
            rows = {str(k): (float(v["precision"]), float(v["recall"]),
                             float(v.get("f1", v.get("f1-score"))))
                    for k, v in report.items() if isinstance(v, dict)}
        except (KeyError, TypeError) as exc:
            raise ValueError("report's entries need precision, recall and f1") from exc
    else:
        raise TypeError("report must be a fastcrf.metrics.ChunkScores or a dict, "
                        f"got {type(report).__name__}")
    if not rows:
        raise ValueError("report has no labels to plot")
    labels = list(rows)
    n = len(labels)
    ax = _axes(ax, (6.4, min(max(3.0, 0.45 * n + 1.2), 16.0)))
    y = np.arange(n)
    height = 0.27
    for i, name in enumerate(("precision", "recall", "F1")):
        ax.barh(y + (i - 1) * height, [rows[k][i] for k in labels], height, label=name)
    _label_ticks(ax, labels, "y")
    ax.invert_yaxis()  # first label on top, as in the text report
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score")
    ax.set_ylabel("label")
    ax.set_title("Per-label precision / recall / F1")
    # Below the axes: inside, it would cover the longest bars.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=8,
              frameon=False)
    return ax


def plot_confusion(y_true, y_pred, *, labels=None, normalize=True, ax=None,
                   cmap="Blues"):
    """Plot the token-level confusion matrix of labels.

    Parameters
    ----------
    y_true, y_pred : list of list of str
        Gold and predicted label sequences, of equal lengths.
    labels : list of str, optional
        Labels and their order; by default every label seen, sorted.
    normalize : bool, default True
        Show each row as fractions of its true label's tokens (counts otherwise).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure (sized to the number of labels) when None.
    cmap : str, default "Blues"

    Returns
    -------
    matplotlib.axes.Axes
    """
    from .metrics import _check_sequences

    y_true, y_pred = _check_sequences(y_true, y_pred)
    gold = [t for seq in y_true for t in seq]
    pred = [t for seq in y_pred for t in seq]
    if not gold:
        raise ValueError("y_true has no tokens to plot")
    if labels is None:
        labels = sorted(set(gold) | set(pred))
    labels = [str(x) for x in labels]
    if not labels:
        raise ValueError("labels is empty")
    index = {lab: i for i, lab in enumerate(labels)}
    n = len(labels)
    counts = np.zeros((n, n), dtype=np.int64)
    for g, p in zip(gold, pred):
        if g in index and p in index:
            counts[index[g], index[p]] += 1
    shown = counts.astype(float)
    if normalize:
        total = shown.sum(axis=1, keepdims=True)
        shown = np.divide(shown, total, out=np.zeros_like(shown), where=total > 0)
    side = min(max(4.5, 0.32 * n + 2.5), 16.0)
    ax = _axes(ax, (side + 1.0, side))
    image = ax.imshow(shown, cmap=cmap, interpolation="nearest",
                      vmin=0, vmax=1 if normalize else None)
    if n <= 15:  # numbers in the cells stay readable only on small matrices
        top = shown.max() or 1.0
        for i in range(n):
            for j in range(n):
                text = f"{shown[i, j]:.2f}" if normalize else str(counts[i, j])
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.6 * top else "black")
    _label_ticks(ax, labels, "x")
    _label_ticks(ax, labels, "y")
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""))
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                       label="fraction of true label" if normalize else "tokens")
    return ax


def save_figure(fig, path, *, dpi=110):
    """Write ``fig`` as a PNG atomically (a failed write leaves no partial file).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path
        Ends in ``.png``; its directory must exist.
    dpi : int, default 110
    """
    from ._atomic import atomic_file

    check_png_path(path)
    with atomic_file(path, "wb", suffix=".png") as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")


def check_png_path(path, name="path"):
    """Raise ValueError unless ``path`` ends in .png and its directory exists (so a
    CLI can reject a bad ``--plot`` before any work)."""
    import os

    text = os.fspath(path)
    if not str(text).lower().endswith(".png"):
        raise ValueError(f"{name} must end in .png, got {text!r}")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise ValueError(f"{name}'s directory does not exist: {folder}")


def model_figure(model):
    """One figure of a model: its transition heat map and, when it has a training
    log, its training curve beside it (what ``fastcrf info --plot`` writes).

    Parameters
    ----------
    model : CRF, str or path
        A fitted CRF or a model file.

    Returns
    -------
    matplotlib.figure.Figure
    """
    crf = _crf_of(model)
    log = crf.training_log_
    has_log = log is not None and any("objective" in it or "loss" in it
                                      for it in log.iterations)
    n = len(crf.classes_)
    side = min(max(4.5, 0.28 * n + 2.5), 16.0)
    fig = _pyplot().figure(figsize=(side + 1.0 + (7.0 if has_log else 0.0), side))
    grid = fig.add_gridspec(1, 2 if has_log else 1,
                            width_ratios=[side + 1.0, 6.0] if has_log else None)
    plot_transitions(crf, ax=fig.add_subplot(grid[0, 0]))
    if has_log:
        plot_training_curve(log, ax=fig.add_subplot(grid[0, 1]))
    fig.tight_layout()
    return fig


def evaluation_figure(y_true, y_pred, *, scheme=None, raw=False, o_tag="O"):
    """One figure of an evaluation: per-chunk-type precision / recall / F1 bars
    (:func:`fastcrf.metrics.chunk_scores`) beside the label confusion matrix (what
    ``fastcrf eval --plot`` writes).

    Parameters
    ----------
    y_true, y_pred : list of list of str
    scheme, raw, o_tag
        As in :func:`fastcrf.metrics.chunk_scores`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .metrics import chunk_scores

    report = chunk_scores(y_true, y_pred, scheme=scheme, raw=raw, o_tag=o_tag)
    n = len({t for seq in y_true for t in seq} | {t for seq in y_pred for t in seq})
    side = min(max(4.5, 0.32 * n + 2.5), 16.0)
    fig = _pyplot().figure(figsize=(side + 7.5, side))
    grid = fig.add_gridspec(1, 2, width_ratios=[6.0, side + 1.0])
    if report.per_type:
        plot_label_scores(report, ax=fig.add_subplot(grid[0, 0]))
    plot_confusion(y_true, y_pred, ax=fig.add_subplot(grid[0, 1]))
    fig.tight_layout()
    return fig
