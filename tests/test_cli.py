"""The `fastcrf` command line: train -> tag -> eval end to end, info, demo, every
error path (one line on stderr, a non-zero status, no traceback), the installed
console script, and the CoNLL-2000 workflow when the corpus is present."""

import gzip
import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from _data import conll2000_file
from helpers import run_cli as run

from fastcrf import CRF, allowed_transitions, cli
from fastcrf.datasets import make_sequences
from fastcrf.io import load_conll, read_conll, write_conll
from fastcrf.metrics import chunk_scores, classification_report
from fastcrf.templates import Template

TEMPLATE = """\
# word window, word class, and a word/class pair
U00:%x[-1,0]
U01:%x[0,0]
U02:%x[1,0]
U10:%x[0,1]
U11:%x[-1,1]/%x[0,1]
B
"""




def assert_one_line_error(status, err, expected_status=1, match=None):
    assert status == expected_status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastcrf: error: "), err
    assert "Traceback" not in err
    if match is not None:
        assert re.search(match, lines[0]), lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three-column BIO files (word, word class, label) from one synthetic HMM."""
    folder = tmp_path_factory.mktemp("cli")
    _, y, params = make_sequences(400, n_labels=3, scheme="BIO", length=(4, 15),
                                  return_params=True, random_state=0)
    rows = [[(f"w{w}", f"c{w % 7}", label) for w, label in zip(ws.tolist(), labels)]
            for ws, labels in zip(params["words"], y)]
    paths = {"train": folder / "train.txt", "dev": folder / "dev.txt",
             "test": folder / "test.txt", "template": folder / "template",
             "model": folder / "model.npz"}
    write_conll(paths["train"], rows[:300])
    write_conll(paths["dev"], rows[300:340])
    write_conll(paths["test"], rows[340:])
    paths["template"].write_text(TEMPLATE)
    paths["folder"] = folder
    return paths


@pytest.fixture(scope="module")
def trained(corpus):
    """A model trained by the command line (module-wide: training is the slow part)."""
    status = cli.main(["train", "-t", str(corpus["template"]), "-m", str(corpus["model"]),
                       "-q", str(corpus["train"])])
    assert status == 0
    return corpus["model"]


# --------------------------------------------------------------------------- #
# train -> tag -> eval                                                          #
# --------------------------------------------------------------------------- #


def test_train_prints_progress_summary_and_dev_scores(corpus, capsys, tmp_path):
    model = tmp_path / "m.npz"
    status, out, err = run(capsys, "train", "-t", corpus["template"], "-m", model,
                           "--dev", corpus["dev"], "-i", 3, corpus["train"])
    assert status == 0, err
    assert err == ""
    epochs = [line for line in out.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 3 and all("dev_acc=" in line for line in epochs)
    assert "trained in" in out and f"model written to {model}" in out
    # The dev F1 printed is conlleval's on the model's predictions.
    crf = CRF.load(model)
    X_dev, y_dev = load_conll(corpus["dev"])
    pred = crf.predict(Template(TEMPLATE).transform(X_dev))
    assert classification_report(y_dev, pred) in out
    assert f"FB1 {100 * chunk_scores(y_dev, pred).f1:.2f}" in out
    assert crf.metadata_["fastcrf_cli"]["template"] == TEMPLATE


def test_train_tag_eval_end_to_end(corpus, trained, capsys, tmp_path):
    tagged = tmp_path / "tagged.txt"
    status, out, err = run(capsys, "tag", "-m", trained, "-o", tagged, corpus["test"])
    assert status == 0 and out == ""
    assert "tagged 60 sentences" in err
    inputs = list(read_conll(corpus["test"]))
    output = list(read_conll(tagged))
    assert [len(s) for s in output] == [len(s) for s in inputs]
    # The input columns, gold label included, then the prediction.
    assert all(row[:-1] == inp for s, t in zip(output, inputs) for row, inp in zip(s, t))

    crf = CRF.load(trained)
    X, y = load_conll(corpus["test"])
    expected = crf.predict(Template(TEMPLATE).transform(X))
    assert [[row[-1] for row in s] for s in output] == expected

    status, out, err = run(capsys, "eval", tagged)
    assert status == 0 and err == ""
    assert out == classification_report(y, expected)
    f1 = float(re.search(r"FB1: +([\d.]+)", out).group(1))
    assert f1 == pytest.approx(100 * chunk_scores(y, expected).f1, abs=0.005)
    assert f1 > 70  # the CRF learns the synthetic chunks


def test_tag_without_gold_column_and_stdin(corpus, trained, capsys, monkeypatch):
    rows = [[row[:2] for row in s] for s in read_conll(corpus["test"])]
    text = io.StringIO()
    write_conll(text, rows)
    monkeypatch.setattr(sys, "stdin", io.StringIO(text.getvalue()))
    status, out, err = run(capsys, "tag", "-m", trained, "-q", "-")
    assert status == 0 and err == ""
    output = list(read_conll(io.StringIO(out)))
    assert [[r[:2] for r in s] for s in output] == rows
    X, _ = load_conll(corpus["test"])
    expected = CRF.load(trained).predict(Template(TEMPLATE).transform(X))
    assert [[r[2] for r in s] for s in output] == expected


def test_tag_only_labels_and_marginals(corpus, trained, capsys):
    status, out, _ = run(capsys, "tag", "-m", trained, "-l", "-i", corpus["test"])
    assert status == 0
    output = list(read_conll(io.StringIO(out)))
    crf = CRF.load(trained)
    X, _ = load_conll(corpus["test"])
    feats = Template(TEMPLATE).transform(X)
    expected = crf.predict(feats)
    marginals = crf.predict_marginals(feats)
    assert [[r[0] for r in s] for s in output] == expected
    for s, m in zip(output, marginals):
        for (label, p), probs in zip(s, m):
            assert float(p) == pytest.approx(probs[label], abs=1e-6)
            assert 0 < float(p) <= 1


def test_tag_constraints(corpus, trained, capsys):
    status, out, err = run(capsys, "tag", "-m", trained, "-l", "-i", "--constraints", "BIO",
                           corpus["test"])
    assert status == 0, err
    output = list(read_conll(io.StringIO(out)))
    crf = CRF.load(trained)
    X, _ = load_conll(corpus["test"])
    feats = Template(TEMPLATE).transform(X)
    expected = crf.predict(feats, constraints="BIO")
    assert [[r[0] for r in s] for s in output] == expected
    proba = crf.predict_proba(feats, constraints="BIO")
    index = {c: k for k, c in enumerate(crf.classes_)}
    for s, p in zip(output, proba):
        for t, (label, prob) in enumerate(s):
            assert float(prob) == pytest.approx(p[t, index[label]], abs=1e-6)
    status, _, err = run(capsys, "tag", "-m", trained, "--constraints", "BILOU",
                         corpus["test"])
    assert status == 2 and "invalid choice" in err


def test_train_constraints_stored_and_used_by_tag(corpus, capsys, tmp_path):
    # train --constraints BIO: the model keeps them, and a plain 'tag' honours them.
    path = tmp_path / "bio.npz"
    status, _, err = run(capsys, "train", "-t", corpus["template"], "-m", path, "-q",
                         "-i", "2", "--constraints", "BIO", corpus["train"])
    assert status == 0, err
    crf = CRF.load(path)
    np.testing.assert_array_equal(crf._fitted_model().constraints,
                                  allowed_transitions(crf.classes_, "BIO"))
    status, out, err = run(capsys, "tag", "-m", path, "-l", corpus["test"])
    assert status == 0, err
    output = [[r[0] for r in s] for s in read_conll(io.StringIO(out))]
    X, _ = load_conll(corpus["test"])
    feats = Template(TEMPLATE).transform(X)
    assert output == crf.predict(feats)
    assert output == crf.predict(feats, constraints="BIO")
    for seq in output:
        for a, b in zip(["O", *seq[:-1]], seq):
            assert not b.startswith("I-") or a[2:] == b[2:]
    status, _, err = run(capsys, "train", "-t", corpus["template"], "-m", path, "-q",
                         "--constraints", "BILOU", corpus["train"])
    assert status == 2 and "invalid choice" in err


def test_tag_nbest_and_all_marginals(corpus, trained, capsys):
    # tag -n 3: CRF++'s n-best layout, the estimator's exact k-best; -I: every label's
    # marginal as label/p.
    status, out, err = run(capsys, "tag", "-m", trained, "-n", "3", "-l", "-I",
                           corpus["test"])
    assert status == 0, err
    blocks = [b.split("\n") for b in out.strip("\n").split("\n\n")]
    crf = CRF.load(trained)
    X, _ = load_conll(corpus["test"])
    feats = Template(TEMPLATE).transform(X)
    nbest = crf.predict_nbest(feats, 3)
    proba = crf.predict_proba(feats)
    assert len(blocks) == sum(map(len, nbest))
    pos = 0
    for s, cands in enumerate(nbest):
        for n, (labels, prob) in enumerate(cands):
            head, *rows = blocks[pos]
            _, rank, p = head.split(" ")
            assert int(rank) == n and float(p) == pytest.approx(prob, abs=1e-6)
            fields = [r.split(" ") for r in rows]
            assert [f[0] for f in fields] == labels
            for t, f in enumerate(fields):
                listed = [item.rsplit("/", 1) for item in f[1:]]
                assert [c for c, _ in listed] == crf.classes_
                np.testing.assert_allclose([float(q) for _, q in listed], proba[s][t],
                                           atol=1e-6)
            pos += 1
    target = corpus["folder"] / "nbest.txt.gz"
    status, _, err = run(capsys, "tag", "-m", trained, "-n", "3", "-l", "-I", "-q",
                         "-o", target, corpus["test"])
    assert status == 0, err
    assert gzip.decompress(target.read_bytes()).decode() == out
    status, _, err = run(capsys, "tag", "-m", trained, "-n", "-1", corpus["test"])
    assert status == 1 and "-n must be >= 0" in err


def test_eval_reads_stdin_and_conlleval_options(capsys, monkeypatch):
    text = "a B-NP B-NP\nb I-NP B-VP\nc O O\n\nd B-VP B-VP\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    status, out, _ = run(capsys, "eval")
    assert status == 0
    truth, pred = [["B-NP", "I-NP", "O"], ["B-VP"]], [["B-NP", "B-VP", "O"], ["B-VP"]]
    assert out == classification_report(truth, pred)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a X Y\nb O X\n"))
    status, out, _ = run(capsys, "eval", "-r", "-")
    assert status == 0
    assert out == classification_report([["X", "O"]], [["Y", "X"]], raw=True)


def test_tab_separated_files_and_gzip(tmp_path, capsys):
    # Fields with spaces survive with --sep '\t'; the model remembers the separator.
    rows = [[("New York", "B-LOC"), ("is", "O")], [("Paris", "B-LOC"), ("is", "O")]] * 20
    train = tmp_path / "train.tsv.gz"
    write_conll(train, rows, sep="\t")
    (tmp_path / "tpl").write_text("U00:%x[0,0]\nB\n")
    model = tmp_path / "m.npz"
    status, _, err = run(capsys, "train", "-t", tmp_path / "tpl", "-m", model, "--sep", "\\t",
                         "-q", train)
    assert status == 0, err
    out_path = tmp_path / "out.tsv.gz"
    status, _, err = run(capsys, "tag", "-m", model, "-o", out_path, train)
    assert status == 0, err
    with gzip.open(out_path, "rt") as f:
        assert f.readline() == "New York\tB-LOC\tB-LOC\n"


def test_label_column_first(tmp_path, capsys):
    rows = [[("B-NP", "the"), ("I-NP", "dog"), ("O", "runs")]] * 30
    write_conll(tmp_path / "train.txt", rows)
    (tmp_path / "tpl").write_text("U00:%x[0,0]\nU01:%x[-1,0]\nB\n")
    status, _, err = run(capsys, "train", "-t", tmp_path / "tpl", "-m", tmp_path / "m.npz",
                         "--label-column", 0, "-q", tmp_path / "train.txt")
    assert status == 0, err
    status, out, _ = run(capsys, "tag", "-m", tmp_path / "m.npz", "-q", tmp_path / "train.txt")
    assert status == 0
    assert out.splitlines()[:3] == ["B-NP the B-NP", "I-NP dog I-NP", "O runs O"]


def test_training_options_reach_the_estimator(corpus, capsys, tmp_path):
    model = tmp_path / "m.npz"
    status, _, err = run(capsys, "train", "-t", corpus["template"], "-m", model, "-q",
                         "-a", "lbfgs", "-c", 2, "--c1", 0.1, "-f", 2, "-i", 5,
                         "-p", "period=3", "-p", "delta=1e-4", "-j", 1, "--seed", 7,
                         corpus["train"])
    assert status == 0, err
    crf = CRF.load(model)
    # -c is CRF++'s cost C: its objective |w|^2 / (2C) is c2 |w|^2 here.
    assert crf.c2 == 0.25 and crf.c1 == 0.1 and crf.algorithm == "lbfgs"
    assert crf.min_freq == 2 and crf.max_iterations == 5
    assert crf.period == 3 and crf.delta == 1e-4 and crf.random_state == 7
    assert crf.n_iter_ <= 5


def test_training_is_reproducible(corpus, trained, capsys, tmp_path):
    model = tmp_path / "again.npz"
    assert run(capsys, "train", "-t", corpus["template"], "-m", model, "-q",
               corpus["train"])[0] == 0
    np.testing.assert_array_equal(CRF.load(model).state_weights_,
                                  CRF.load(trained).state_weights_)


# --------------------------------------------------------------------------- #
# info and demo                                                                 #
# --------------------------------------------------------------------------- #


def test_info(trained, capsys):
    status, out, err = run(capsys, "info", "-m", trained, "--top", 3)
    assert status == 0 and err == ""
    crf = CRF.load(trained)
    assert f"labels ({len(crf.classes_)}): {' '.join(crf.classes_)}" in out
    assert f"attributes: {len(crf.attributes_):,}" in out
    assert "U11:%x[-1,1]/%x[0,1]" in out
    lines = out.splitlines()
    top = lines[lines.index("top 3 positive state features:") + 1]
    weight, label, attribute = top.split()
    W = crf.state_weights_
    assert float(weight) == pytest.approx(W.max(), abs=1e-4)
    a, k = np.unravel_index(W.argmax(), W.shape)
    assert (label, attribute) == (crf.classes_[k], crf.attributes_[a])
    assert "top 3 negative state features:" in out
    table = lines[lines.index("transitions (row: from, column: to):") + 1:]
    assert table[0].split() == crf.classes_
    first = table[1].split()
    assert first[0] == crf.classes_[0]
    np.testing.assert_allclose([float(v) for v in first[1:]], crf.transition_weights_[0],
                               atol=1e-3)
    assert table[-2].split()[0] == "(start)" and table[-1].split()[0] == "(end)"


def test_top_state_features_matches_a_full_sort():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((50, 4))
    W[3, :] = 10.0  # one row holding several of the largest weights
    for largest in (True, False):
        got = cli._top_state_features(W, 7, largest)
        flat = np.sort(W.ravel())
        want = flat[::-1][:7] if largest else flat[:7]
        assert [w for *_, w in got] == want.tolist()
        assert all(W[a, k] == w for a, k, w in got)


def test_demo(capsys, tmp_path):
    status, out, err = run(capsys, "demo", "-n", 300, "-q", "-o", tmp_path / "demo")
    assert status == 0, err
    assert "$ fastcrf train" in out and "$ fastcrf eval" in out
    m = re.search(r"demo: token accuracy ([\d.]+)%, chunk FB1 ([\d.]+)", out)
    assert m and float(m.group(1)) > 70
    for name in ("train.txt", "test.txt", "template", "model.npz", "tagged.txt"):
        assert (tmp_path / "demo" / name).is_file()
    # The kept files work with the other commands.
    assert run(capsys, "info", "-m", tmp_path / "demo" / "model.npz")[0] == 0


def test_demo_in_a_temporary_folder(capsys):
    status, out, _ = run(capsys, "demo", "-n", 100, "-q")
    assert status == 0
    folder = re.search(r"test tokens in (\S+)", out).group(1)
    assert not os.path.exists(folder)


def test_help_and_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.startswith("fastcrf ")
    for command in ("train", "tag", "eval", "info", "demo"):
        status, out, _ = run(capsys, command, "--help")
        assert status == 0 and f"usage: fastcrf {command}" in out


# --------------------------------------------------------------------------- #
# Errors: one line on stderr, a non-zero status, no traceback                    #
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def bad_files(corpus, trained):
    folder = corpus["folder"] / "bad"
    folder.mkdir()
    files = {
        "ragged": ("w1 c1 O\nw2 c2\n", None),
        "empty": ("\n\n", None),
        "latin1": (None, "w\xe9 c1 O\n".encode("latin-1")),
        "one_column": ("B-NP\nI-NP\n", None),
        "four_columns": ("a b c d\n", None),
        "bad_template": ("U00:%x[0]\n", None),
        "wide_template": ("U00:%x[0,5]\n", None),
        "not_a_model": ("hello\n", None),
    }
    paths = {}
    for name, (text, data) in files.items():
        path = folder / name
        if text is not None:
            path.write_text(text)
        else:
            path.write_bytes(data)
        paths[name] = path
    paths["truncated"] = folder / "truncated.npz"
    paths["truncated"].write_bytes(trained.read_bytes()[:500])
    paths["no_template"] = folder / "no_template.npz"
    CRF.load(trained).save(paths["no_template"])
    return paths


ERRORS = [
    # (argv, expected status, message pattern); names in {} are files of the fixtures.
    ([], 2, "no command given"),
    (["frobnicate"], 2, "invalid choice"),
    (["train"], 1, "no training file given.*fastcrf demo"),
    (["train", "{train}"], 1, "no feature template"),
    (["train", "--bogus", "{train}"], 2, "unrecognized arguments: --bogus"),
    (["train", "-a", "sgd", "{train}"], 2, "invalid choice: 'sgd'"),
    (["train", "-c", "abc", "{train}"], 2, "invalid float value"),
    (["train", "-t", "missing.tpl", "{train}"], 1, "no such template file"),
    (["train", "-t", "{bad_template}", "{train}"], 1, "template line 1"),
    (["train", "-t", "{wide_template}", "{train}"], 1, "reads column 5"),
    (["train", "-t", "{template}", "missing.txt"], 1, "no such file"),
    (["train", "-t", "{template}", "{ragged}"], 1, "ragged, line 2: expected 3 fields"),
    (["train", "-t", "{template}", "{empty}"], 1, "no sentences"),
    (["train", "-t", "{template}", "{latin1}"], 1, "line 1: not valid utf-8"),
    (["train", "-t", "{template}", "{one_column}"], 1, "single field"),
    (["train", "-t", "{template}", "{train}", "{four_columns}"], 1, "has 4 fields"),
    (["train", "-t", "{template}", "--label-column", "5", "{train}"], 1, "out of range"),
    (["train", "-t", "{template}", "--dev", "{four_columns}", "{train}"], 1, "4 fields"),
    (["train", "-t", "{template}", "-c", "0", "{train}"], 1, "-c must be > 0"),
    (["train", "-t", "{template}", "-c", "1", "--c2", "1", "{train}"], 1, "not both"),
    (["train", "-t", "{template}", "-p", "c2", "{train}"], 1, "NAME=VALUE"),
    (["train", "-t", "{template}", "-p", "bogus=1", "{train}"], 1, "invalid parameter"),
    (["train", "-t", "{template}", "-p", "c2=-1", "{train}"], 1, "c2 must be >= 0"),
    (["train", "-t", "{template}", "-i", "0", "{train}"], 1, "max_iterations"),
    (["train", "-t", "{template}", "-m", "no/such/dir/m.npz", "{train}"], 1, "no such folder"),
    (["tag", "{test}"], 2, "required: -m/--model"),
    (["tag", "-m", "missing.npz", "{test}"], 1, "no such model file"),
    (["tag", "-m", "{train}", "{test}"], 1, "neither a fastcrf model file .* nor a CRFsuite one"),
    (["tag", "-m", "{not_a_model}", "{test}"], 1, "neither a fastcrf model file .* nor a CRFsuite one"),
    (["tag", "-m", "{truncated}", "{test}"], 1, "truncated or corrupted"),
    (["tag", "-m", "{no_template}", "{test}"], 1, "holds no feature template"),
    (["tag", "-m", "{model}", "{four_columns}"], 1, "rows have 4 fields.*give 2 .* or 3"),
    (["tag", "-m", "{model}", "missing.txt"], 1, "no such file"),
    (["tag", "-m", "{model}", "{ragged}"], 1, "line 2"),
    (["eval", "{one_column}"], 1, "single field"),
    (["eval", "--scheme", "XYZ", "{test}"], 2, "invalid choice: 'XYZ'"),
    (["eval", "missing.txt"], 1, "no such file"),
    (["info"], 2, "required: -m/--model"),
    (["info", "-m", "{folder}"], 1, "a folder, not a model file"),
    (["demo", "-n", "3"], 1, "-n must be >= 10"),
]


@pytest.mark.parametrize("argv, status, match", ERRORS,
                         ids=[" ".join(a) or "(none)" for a, *_ in ERRORS])
def test_errors_are_one_line(argv, status, match, corpus, trained, bad_files, capsys,
                             tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = {k: str(v) for k, v in {**corpus, **bad_files}.items()}
    argv = [a.format(**names) for a in argv]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, status, match)


def test_interrupt_exits_130(monkeypatch, capsys, corpus):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_eval", interrupted)
    status, _, err = run(capsys, "eval", corpus["test"])
    assert status == 130
    assert err.strip() == "fastcrf: interrupted"


def test_debug_variable_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.setenv("FASTCRF_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(["eval", "missing.txt"])


# --------------------------------------------------------------------------- #
# As a program: the console script and python -m fastcrf                         #
# --------------------------------------------------------------------------- #


def _script():
    # The script installed next to this interpreter (pip install puts it there).
    folder = os.path.dirname(sys.executable)
    path = shutil.which("fastcrf", path=folder) or shutil.which("fastcrf")
    if path is None:
        pytest.skip("the fastcrf console script is not installed")
    return path


def test_console_script_workflow(corpus, tmp_path):
    script = _script()
    model, tagged = tmp_path / "m.npz", tmp_path / "tagged.txt"
    steps = [[script, "train", "-q", "-i", "3", "-t", corpus["template"], "-m", model,
              corpus["train"]],
             [script, "tag", "-m", model, "-o", tagged, corpus["test"]],
             [script, "eval", tagged]]
    for argv in steps:
        proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("processed ")
    missing = str(tmp_path / "none.npz")
    proc = subprocess.run([script, "tag", "-m", missing, "x"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr == f"fastcrf: error: no such model file: {missing!r}\n"


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fastcrf", "--version"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("fastcrf ")
    proc = subprocess.run([sys.executable, "-m", "fastcrf", "train", "--bogus"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_closed_pipe_is_quiet(corpus, trained):
    script = _script()
    # `fastcrf tag ... | head -1`: the reader leaves early; no traceback follows.
    proc = subprocess.Popen([script, "tag", "-q", "-m", str(trained), str(corpus["train"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err


# --------------------------------------------------------------------------- #
# CoNLL-2000                                                                    #
# --------------------------------------------------------------------------- #


def test_conll2000_workflow(tmp_path, capsys):
    train, test = conll2000_file("train.txt.gz"), conll2000_file("test.txt.gz")
    model, tagged = tmp_path / "chunking.npz", tmp_path / "tagged.txt"
    status, out, err = run(capsys, "train", "-t", "chunking", "-m", model, train)
    assert status == 0, err
    assert "labels" in out and "model written" in out
    status, _, err = run(capsys, "tag", "-m", model, "-o", tagged, test)
    assert status == 0, err
    status, out, err = run(capsys, "eval", tagged)
    assert status == 0, err
    f1 = float(re.search(r"FB1: +([\d.]+)", out).group(1))
    assert f1 >= 93.5, out
