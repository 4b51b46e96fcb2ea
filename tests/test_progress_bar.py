"""``CRF(progress_bar=True)`` and ``fastcrf train --progress``: a tqdm bar over the
epochs on stderr; without tqdm, an ImportError / one-line error that says so."""

import sys

import pytest
from helpers import run_cli as run

from crf_data import sample_hmm
from fastcrf import CRF
from fastcrf.io import write_conll

pytest.importorskip("tqdm")


@pytest.fixture(scope="module")
def corpus():
    X, y, _ = sample_hmm(60, seed=4)
    return X, y


def test_bar_counts_the_epochs_on_stderr(corpus, capsys):
    X, y = corpus
    crf = CRF(algorithm="ap", max_iterations=4, progress_bar=True, random_state=0)
    crf.fit(X, y)
    out, err = capsys.readouterr()
    assert out == ""
    assert "fastcrf ap" in err and "4/4" in err and "loss=" in err


def test_bar_leaves_the_model_unchanged(corpus, capsys):
    X, y = corpus
    a = CRF(algorithm="lbfgs", max_iterations=5, progress_bar=True).fit(X, y)
    b = CRF(algorithm="lbfgs", max_iterations=5).fit(X, y)
    assert (a.state_weights_ == b.state_weights_).all()
    assert CRF(progress_bar=True).get_params()["progress_bar"] is True


def test_verbose_lines_go_above_the_bar(corpus, capsys):
    X, y = corpus
    CRF(algorithm="pa", max_iterations=3, progress_bar=True, verbose=True).fit(X, y)
    out, err = capsys.readouterr()
    assert sum(line.startswith("epoch") for line in out.splitlines()) == 3
    assert "3/3" in err


def test_without_tqdm_the_error_says_what_to_install(corpus, monkeypatch, capsys,
                                                      tmp_path):
    X, y = corpus
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        CRF(algorithm="ap", max_iterations=2, progress_bar=True).fit(X, y)
    with pytest.raises(TypeError, match="progress_bar must be a bool"):
        CRF(progress_bar="yes").fit(X, y)
    path = tmp_path / "t.txt"
    write_conll(path, [[(t["w"], label) for t, label in zip(x, s)] for x, s in zip(X, y)])
    status, _, err = run(capsys, "train", "-t", "chunking", "--progress", path)
    assert status == 1 and "--progress needs tqdm" in err


def test_cli_progress(corpus, capsys, tmp_path):
    X, y = corpus
    path = tmp_path / "t.txt"
    write_conll(path, [[(t["w"], label) for t, label in zip(x, s)] for x, s in zip(X, y)])
    template = tmp_path / "tpl"
    template.write_text("U00:%x[0,0]\nB\n")
    status, out, err = run(capsys, "train", "-t", template, "-a", "ap", "-i", 2,
                           "--progress", path)
    assert status == 0, err
    assert "2/2" in err and "fastcrf ap" in err
