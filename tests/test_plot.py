"""fastcrf.plot: each plot renders under Agg with labels, and rejects bad input."""

import io

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib",
                                 reason="fastcrf[plot] (matplotlib) not installed")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fastcrf import CRF, plot  # noqa: E402
from fastcrf.datasets import make_sequences  # noqa: E402
from fastcrf.metrics import chunk_scores  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    X, y = make_sequences(80, n_labels=12, scheme="BIO", random_state=0)
    crf = CRF(max_iterations=8).fit(X[:60], y[:60], X_dev=X[60:], y_dev=y[60:])
    return crf, y[60:], crf.predict(X[60:])


def _pixels(ax):
    """The saved PNG of ax's figure as an RGBA array."""
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=60)
    plt.close(ax.figure)
    buf.seek(0)
    return plt.imread(buf)


def _check_image(ax, min_size=150):
    img = _pixels(ax)
    assert img.shape[0] >= min_size and img.shape[1] >= min_size
    # Not blank: many distinct colours, not a uniform background.
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20


def test_training_curve(fitted):
    crf = fitted[0]
    ax = plot.plot_training_curve(crf)
    assert ax.get_xlabel() == "epoch / iteration"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"objective", "loss", "dev accuracy"} <= set(labels)
    assert len(ax.figure.axes) == 2  # the dev accuracy's twin axis
    assert len(ax.lines[0].get_xdata()) == len(crf.training_log_)
    _check_image(ax)


def test_transitions_from_crf_and_file(fitted, tmp_path):
    crf = fitted[0]
    ax = plot.plot_transitions(crf)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == list(crf.classes_)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(crf.classes_)
    np.testing.assert_allclose(ax.images[0].get_array(), crf.transition_weights_)
    assert len(ax.figure.axes) == 2  # colour bar
    _check_image(ax)
    path = tmp_path / "m.crf"
    crf.save(path)
    ax = plot.plot_transitions(str(path))
    np.testing.assert_allclose(ax.images[0].get_array(), crf.transition_weights_)
    plt.close(ax.figure)


def test_label_scores(fitted):
    _, y_true, y_pred = fitted
    report = chunk_scores(y_true, y_pred)
    ax = plot.plot_label_scores(report)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(report.per_type)
    widths = [p.get_width() for p in ax.patches]
    assert len(widths) == 3 * len(report.per_type)
    assert widths[0] == pytest.approx(next(iter(report.per_type.values())).precision)
    _check_image(ax)
    ax = plot.plot_label_scores({"A": {"precision": 1, "recall": 0.5, "f1-score": 0.6}})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A"]
    plt.close(ax.figure)


def test_confusion_counts():
    y_true = [["A", "B", "B"], ["C"]]
    y_pred = [["A", "A", "B"], ["C"]]
    ax = plot.plot_confusion(y_true, y_pred, normalize=False)
    np.testing.assert_array_equal(ax.images[0].get_array(),
                                  [[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]
    assert ax.get_ylabel() == "true label"
    plt.close(ax.figure)
    ax = plot.plot_confusion(y_true, y_pred)
    np.testing.assert_allclose(ax.images[0].get_array()[1], [0.5, 0.5, 0])
    _check_image(ax)


def test_given_ax_is_used(fitted):
    fig, axes = plt.subplots(1, 2)
    assert plot.plot_confusion(fitted[1], fitted[2], ax=axes[0]) is axes[0]
    assert plot.plot_transitions(fitted[0], ax=axes[1]) is axes[1]
    plt.close(fig)


def test_save_figure_atomic(fitted, tmp_path):
    ax = plot.plot_transitions(fitted[0])
    out = tmp_path / "t.png"
    plot.save_figure(ax.figure, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]
    with pytest.raises(ValueError, match="must end in .png"):
        plot.save_figure(ax.figure, tmp_path / "t.jpg")
    with pytest.raises(ValueError, match="directory does not exist"):
        plot.save_figure(ax.figure, tmp_path / "no" / "t.png")
    plt.close(ax.figure)


def test_bad_input(fitted):
    with pytest.raises(TypeError, match="model must be"):
        plot.plot_transitions(42)
    with pytest.raises(TypeError, match="ax must be"):
        plot.plot_transitions(fitted[0], ax="x")
    with pytest.raises(ValueError, match="y_true and y_pred"):
        plot.plot_confusion([["A"]], [["A"], ["B"]])
    with pytest.raises(TypeError, match="y_true"):
        plot.plot_confusion("AB", [["A"]])
    with pytest.raises(ValueError, match="no tokens"):
        plot.plot_confusion([], [])
    with pytest.raises(TypeError, match="report must be"):
        plot.plot_label_scores([1, 2])
    with pytest.raises(ValueError, match="no labels"):
        plot.plot_label_scores({})
    with pytest.raises(ValueError, match="precision, recall and f1"):
        plot.plot_label_scores({"A": {"precision": 1}})
    plt.close("all")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"fastcrf\[plot\]"):
        plot.plot_confusion([["A"]], [["A"]])


def test_cli_info_and_eval_plot(tmp_path, capsys):
    from fastcrf.cli import main
    from fastcrf.datasets import make_conll_file

    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    make_conll_file(train, 60, n_labels=3, scheme="BIO", random_state=0)
    make_conll_file(test, 20, n_labels=3, scheme="BIO", random_state=1)
    (tmp_path / "tpl").write_text("U00:%x[0,0]\nB\n")
    model, tagged = tmp_path / "m.crf", tmp_path / "tagged.txt"
    assert main(["train", "-t", str(tmp_path / "tpl"), "-m", str(model), "-i", "5",
                 "-q", str(train)]) == 0
    assert main(["tag", str(test), "-m", str(model), "-o", str(tagged), "-q"]) == 0
    for argv, out in ((["info", "-m", str(model)], "info.png"),
                      (["eval", str(tagged)], "eval.png")):
        assert main(argv + ["--plot", str(tmp_path / out)]) == 0
        img = plt.imread(tmp_path / out)
        assert img.shape[1] > 600 and len(np.unique(img.reshape(-1, 4), axis=0)) > 20
    capsys.readouterr()
    # A bad --plot fails before any work, naming the option.
    assert main(["info", "-m", str(tmp_path / "missing.crf"), "--plot", "x.jpg"]) != 0
    assert "--plot must end in .png" in capsys.readouterr().err
    assert main(["eval", str(tagged), "--plot", str(tmp_path / "no" / "e.png")]) != 0
    err = capsys.readouterr()
    assert "--plot's directory does not exist" in err.err and "processed" not in err.out
