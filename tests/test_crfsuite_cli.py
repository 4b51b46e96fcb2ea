"""``fastcrf crfsuite learn / tag / dump``: CRFsuite's command line over fastcrf.

The data are synthetic attribute files written in tmp_path; python-crfsuite (real
CRFsuite, in the test extras) is the reference for the model file, the tags, the
probabilities and the dump where it is installed.
"""

import ctypes
import ctypes.util
import os
import random
import re
import subprocess
import sys

import pytest

from fastcrf import cli
from fastcrf._crfsuite_cli import GlibcRandom, read_data
from fastcrf.pycrfsuite import Tagger

LABELS = ["N", "V", "D", "A"]


def make_corpus(n_seq, seed, *, with_scales=False):
    """Sequences whose labels follow from their word attributes, plus noise, in
    CRFsuite's attribute format; also returned as (X, y) with items as dicts."""
    rng = random.Random(seed)
    words = {lab: [f"{lab.lower()}{i}" for i in range(6)] for lab in LABELS}
    lines, X, y = [], [], []
    for _ in range(n_seq):
        T = rng.randint(1, 7)
        xs, ys = [], []
        for _ in range(T):
            lab = rng.choice(LABELS)
            word = rng.choice(words[lab])
            item = {f"w={word}": 1.0, f"noise={rng.randint(0, 9)}": 1.0}
            if rng.random() < 0.3:
                item["suf:" + word[-1:]] = 1.0  # a colon, escaped in the file
            if with_scales:
                item["len"] = round(rng.uniform(0.1, 2.0), 3)
            fields = []
            for name, value in item.items():
                field = name.replace("\\", "\\\\").replace(":", "\\:")
                fields.append(field if value == 1.0 else f"{field}:{value}")
            lines.append("\t".join([lab, *fields]))
            xs.append(item)
            ys.append(lab)
        lines.append("")
        X.append(xs)
        y.append(ys)
    return "\n".join(lines) + "\n", X, y


def run(args, cwd, stdin=None):
    """``fastcrf crfsuite ARGS`` in a child process (cwd: the test's folder)."""
    return subprocess.run([sys.executable, "-m", "fastcrf", "crfsuite", *args], cwd=cwd,
                          input=stdin, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model learnt by ``learn`` from a synthetic training file, and a test file."""
    folder = tmp_path_factory.mktemp("crfsuite")
    train_text, X, y = make_corpus(120, 0)
    test_text, Xt, yt = make_corpus(40, 1)
    (folder / "train.txt").write_text(train_text)
    (folder / "test.txt").write_text(test_text)
    done = run(["learn", "-m", "model.crfsuite", "-p", "c2=0.5", "-p", "max_iterations=60",
                "train.txt"], folder)
    assert done.returncode == 0, done.stderr
    return folder, done.stdout, (X, y), (Xt, yt)


# --------------------------------------------------------------------------- #
# The data format                                                               #
# --------------------------------------------------------------------------- #


def test_read_data_escapes_scales_and_sequences():
    text = ("B\tw=a\tx:2.5\tx:0.5\n"
            "\\:lab\tw\\:b\tpath\\\\dir\t\tsemi\\;:3\n"
            "\n\n"
            "A\tw=a\tw=a\n"
            "\t\t\n"
            "@weight:2\n"
            "C\tw=c:\n")
    data = read_data(text.splitlines(True), "f")
    assert data.y == [["B", ":lab"], ["A", "C"]]
    first, second = data.X
    assert first[0] == {"w=a": 1.0, "x": 3.0}              # repeated names summed
    assert first[1] == {"w:b": 1.0, "path\\dir": 1.0, "semi\\;": 3.0}
    assert second[0] == ["w=a", "w=a"]                      # counted twice downstream
    assert second[1] == {"w=c": 1.0}                        # 'NAME:' weighs 1
    assert data.weights == [1.0, 2.0]                       # a declaration weighs its sequence
    # CRFsuite counts every empty line and the end of the file as an instance.
    assert data.n_records == 3


@pytest.mark.parametrize("line, message", [
    ("B\tw:x:1", "more than one ':'"),
    ("B\tw\\\\:x:1", "more than one unescaped ':'"),
    ("B\tw:abc", "is not a number"),
    ("B:I\tw", "unescaped ':'"),
    ("@weigth:2", "unrecognized declaration"),
    ("@weight", "without a value"),
    ("@weight:", "without a value"),
    ("@weight:x", "is not a number"),
    ("@note", "unrecognized declaration"),
    ("B\tw\rO\tv\r", "a carriage return inside a line"),
    ("B\tw:nan", "'w:nan' is not finite"),
    ("B\tw:-inf", "'w:-inf' is not finite"),
    ("@weight:inf", "is not finite"),
    ("@weight:-1", "weight must be >= 0"),
])
def test_read_data_names_file_and_line_of_a_bad_line(line, message):
    lines = ["A\tok\n", "\n", line + "\n"]
    with pytest.raises(ValueError, match=re.escape("data.txt:3: ") + ".*" + re.escape(message)):
        read_data(lines, "data.txt")


def test_read_data_drops_a_byte_order_mark_and_crlf():
    data = read_data(["\ufeffA\tx\r\n", "B\ty\r\n", "\r\n", "\ufeffC\tz\n"], "f")
    assert data.y == [["A", "B"], ["\ufeffC"]]  # only the file's first line has a mark
    assert data.X == [[["x"], ["y"]], [["z"]]]


def test_tag_reads_a_file_with_a_byte_order_mark(trained, tmp_path):
    folder = trained[0]
    model = str(folder / "model.crfsuite")
    text = (folder / "test.txt").read_text(encoding="utf-8")
    (tmp_path / "bom.txt").write_text("\ufeff" + text, encoding="utf-8")
    plain = run(["tag", "-m", model, "-r", str(folder / "test.txt")], tmp_path)
    marked = run(["tag", "-m", model, "-r", "bom.txt"], tmp_path)
    assert plain.returncode == 0 and marked.returncode == 0
    assert marked.stdout == plain.stdout


def test_read_data_cuts_a_long_field_in_messages():
    field = "x" * 5000 + ":y"
    with pytest.raises(ValueError) as info:
        read_data([f"A\t{field}\n"], "junk.bin")
    message = str(info.value)
    assert message.startswith("junk.bin:1: the scale of 'xxx") and len(message) < 200
    assert "... (5002 characters)" in message


def test_tag_reader_skips_declarations():
    data = read_data(["@weight:3\n", "@note\n", "A\tx\n"], "f", declarations=False)
    assert data.y == [["A"]] and data.X == [[["x"]]]


def test_glibc_random_matches_the_c_library():
    libc_name = ctypes.util.find_library("c")
    if sys.platform != "linux" or libc_name is None:
        pytest.skip("needs glibc")
    libc = ctypes.CDLL(libc_name)
    try:
        libc.gnu_get_libc_version
    except AttributeError:
        pytest.skip("not glibc")
    libc.srand(1)
    rng = GlibcRandom()
    ours = [rng.rand() for _ in range(2000)]
    theirs = [libc.rand() for _ in range(2000)]
    assert ours == theirs


# --------------------------------------------------------------------------- #
# learn                                                                         #
# --------------------------------------------------------------------------- #


def test_learn_log_has_crfsuite_lines(trained):
    _, log, (X, y), _ = trained
    assert "Reading the data set(s)\n[1] train.txt\n" in log
    assert f"Number of instances: {len(X) + 1}\n" in log       # the reader's count
    stats = log[log.index("Statistics the data set(s)"):]
    assert f"Number of instances: {len(X)}\n" in stats
    assert f"Number of items: {sum(map(len, y))}\n" in stats
    n_attrs = len({name for xs in X for item in xs for name in item})
    assert f"Number of attributes: {n_attrs}\n" in stats
    assert f"Number of labels: {len({lab for ys in y for lab in ys})}\n" in stats
    assert "L-BFGS optimization\nc1: 0.000000\nc2: 0.500000\n" in log
    assert re.search(r"\*\*\*\*\* Iteration #1 \*\*\*\*\*\nLoss: \d+\.\d+\n", log)
    assert "Storing the model\n" in log and "End time of the training: " in log


@pytest.mark.parametrize("module", ["fastcrf.pycrfsuite", "pycrfsuite._logparser"])
def test_learn_log_reads_back_with_the_log_parser(trained, module):
    TrainLogParser = pytest.importorskip(module).TrainLogParser
    _, log, _, _ = trained
    body = log[log.index("Feature generation"):log.index("End time")]
    parser = TrainLogParser()
    for line in body.splitlines(True):
        parser.feed(line)
    assert parser.iterations and all("loss" in it for it in parser.iterations)
    assert parser.iterations[-1]["num"] == len(parser.iterations)
    assert parser.featgen_num_features > 0 and parser.storing_seconds is not None


def test_model_opens_in_both_taggers(trained):
    folder, _, _, (Xt, yt) = trained
    ours = Tagger()
    ours.open(str(folder / "model.crfsuite"))
    assert sorted(ours.labels()) == sorted(LABELS)
    real = pytest.importorskip("pycrfsuite").Tagger()
    real.open(str(folder / "model.crfsuite"))
    assert real.labels() == ours.labels()
    for xs in Xt:
        assert real.tag(xs) == ours.tag(xs)


def test_learn_reads_stdin_and_writes_the_same_model(trained, tmp_path):
    folder, _, _, _ = trained
    text = (folder / "train.txt").read_text()
    done = run(["learn", "-m", "m.crfsuite", "-p", "c2=0.5", "-p", "max_iterations=60",
                "-"], tmp_path, stdin=text)
    assert done.returncode == 0, done.stderr
    assert "[1] -\n" in done.stdout
    assert (tmp_path / "m.crfsuite").read_bytes() == (folder / "model.crfsuite").read_bytes()


def test_learn_scales_and_weights_change_the_model(tmp_path):
    text, _, _ = make_corpus(60, 3, with_scales=True)
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "b.txt").write_text("@weight:5\n" + text)
    for name in ("a", "b"):
        done = run(["learn", "-m", f"{name}.model", "-p", "max_iterations=30",
                    f"{name}.txt"], tmp_path)
        assert done.returncode == 0, done.stderr
    ta, tb = Tagger(), Tagger()
    ta.open(str(tmp_path / "a.model"))
    tb.open(str(tmp_path / "b.model"))
    sa, sb = ta.info().state_features, tb.info().state_features
    assert ("len", "N") in sa or ("len", "V") in sa               # scaled attribute learnt
    assert sa != sb                                               # the weight counts


def test_learn_help_parameters(tmp_path):
    done = run(["learn", "-a", "pa", "-H"], tmp_path)
    assert done.returncode == 0
    out = done.stdout
    assert out.startswith("PARAMETERS for passive-aggressive (crf1d):\n\n")
    assert "\nint type = 1;\n" in out and "\nfloat c = 1.000000;\n" in out
    assert "\nint max_iterations = 100;\n" in out


def test_learn_holdout_and_cross_validation(tmp_path):
    a, _, _ = make_corpus(40, 5)
    b, _, _ = make_corpus(20, 6)
    (tmp_path / "a.txt").write_text(a)
    (tmp_path / "b.txt").write_text(b)
    done = run(["learn", "-e", "2", "-p", "max_iterations=5", "-m", "h.model", "a.txt",
                "b.txt"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Number of data sets (groups): 2\n" in done.stdout
    assert "Holdout group: 2\n" in done.stdout
    assert done.stdout.count("Performance by label") == 5
    body = done.stdout[done.stdout.index("Holdout group"):done.stdout.index("End time")]
    parsers = [pytest.importorskip("fastcrf.pycrfsuite").TrainLogParser()]
    try:
        from pycrfsuite._logparser import TrainLogParser
        parsers.append(TrainLogParser())
    except ImportError:
        pass
    for parser in parsers:
        for line in body.splitlines(True):
            parser.feed(line)
        last = parser.last_iteration
        assert last["num"] == 5 and set(last["scores"]) == set(LABELS)
        assert 0 <= last["item_accuracy_float"] <= 1
    assert (tmp_path / "h.model").exists()
    done = run(["learn", "-g", "3", "-x", "-a", "ap", "-p", "max_iterations=2", "a.txt"],
               tmp_path)
    assert done.returncode == 0, done.stderr
    for g in (1, 2, 3):
        assert f"===== Cross validation ({g}/3) =====\nHoldout group: {g}\n" in done.stdout
    assert "Storing the model" not in done.stdout


def test_learn_log_to_file(tmp_path):
    text, _, _ = make_corpus(10, 7)
    (tmp_path / "a.txt").write_text(text)
    done = run(["learn", "-l", "-L", "mylog", "-p", "max_iterations=3", "a.txt"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    log = (tmp_path / "mylog_lbfgs_max_iterations=3").read_text()
    assert "Statistics the data set(s)" in log and "***** Iteration #3 *****" in log


@pytest.mark.parametrize("args, message", [
    (["-a", "crf"], "unknown algorithm 'crf'"),
    (["-p", "c3=1"], "lbfgs has no parameter 'c3'"),
    (["-p", "c2"], "write NAME=VALUE"),
    (["-p", "c2=x"], "takes a number"),
    (["-g", "0"], "-g takes a number of groups"),
    (["-e", "2"], "-e 2: no such group (the groups are 1 to 1"),
    (["-p", "linesearch=Morethuente"], "the line search is MoreThuente, Backtracking"),
    (["-e", "0"], "-e 0: no such group"),
    (["-g", "3", "-e", "4"], "-e 4: no such group (the groups are 1 to 3"),
    ([], None),
])
def test_learn_bad_arguments(tmp_path, args, message):
    (tmp_path / "a.txt").write_text("A\tx\n")
    files = [] if message is None else ["a.txt"]
    done = run(["learn", *args, *files], tmp_path)
    assert done.returncode != 0
    assert (message or "no data file given") in done.stderr


def test_learn_checks_the_model_path_before_training(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.txt").write_text("A\tx\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    for model, message in [("sub", "-m sub: a folder, not a file"),
                           ("nowhere/m", "-m nowhere/m: no such folder")]:
        assert cli.main(["crfsuite", "learn", "-m", model, "a.txt"]) == 1
        out, err = capsys.readouterr()
        assert message in err
        assert "Reading the data set(s)" not in out  # nothing read, nothing trained


def test_learn_refuses_data_without_items(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n\t\n\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["crfsuite", "learn", "-m", "m", "empty.txt", "blank.txt"]) == 1
    assert "empty.txt, blank.txt: no item to learn from" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # no model that no tagger opens


def test_learn_refuses_space_separated_fields(tmp_path, monkeypatch, capsys):
    (tmp_path / "spaces.txt").write_text("B-NP w=He pos=PRP\nO w=.\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["crfsuite", "learn", "-m", "m", "spaces.txt"]) == 1
    err = capsys.readouterr().err
    assert "spaces.txt: no item has an attribute (the fields of a line are separated by " \
           "tabs" in err
    assert not (tmp_path / "m").exists()


def test_learn_refuses_more_groups_than_instances(tmp_path, monkeypatch, capsys):
    (tmp_path / "two.txt").write_text("A\tx\n\nB\ty\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["crfsuite", "learn", "-x", "-g", "100000", "two.txt"]) == 1
    out, err = capsys.readouterr()
    assert "-g 100000: more groups than the 2 instances" in err
    assert "Cross validation" not in out
    assert cli.main(["crfsuite", "learn", "-x", "-g", "2", "two.txt"]) == 0
    assert capsys.readouterr().out.count("===== Cross validation") == 2


def test_learn_bad_line_names_file_and_line(tmp_path):
    (tmp_path / "bad.txt").write_text("A\tx\nB\ty:z\n")
    done = run(["learn", "bad.txt"], tmp_path)
    assert done.returncode == 1
    assert "bad.txt:2: the scale of 'y:z' is not a number" in done.stderr


# --------------------------------------------------------------------------- #
# tag                                                                           #
# --------------------------------------------------------------------------- #


def _sequences(stdout):
    return [block.split("\n") for block in stdout.split("\n\n") if block]


def test_tag_output_matches_python_crfsuite(trained):
    pycrfsuite = pytest.importorskip("pycrfsuite")
    folder, _, _, (Xt, yt) = trained
    done = run(["tag", "-m", "model.crfsuite", "-r", "-p", "-i", "test.txt"], folder)
    assert done.returncode == 0, done.stderr
    real = pycrfsuite.Tagger()
    real.open(str(folder / "model.crfsuite"))
    blocks = _sequences(done.stdout)
    assert len(blocks) == len(Xt)
    for block, xs, ys in zip(blocks, Xt, yt):
        pred = real.tag(xs)
        assert block[0] == f"@probability\t{real.probability(pred):f}"
        expected = [f"{ref}\t{lab}:{real.marginal(lab, t):f}"
                    for t, (ref, lab) in enumerate(zip(ys, pred))]
        assert block[1:] == expected


def test_tag_marginal_all(trained):
    folder, _, _, (Xt, _) = trained
    done = run(["tag", "-m", "model.crfsuite", "-l", "test.txt"], folder)
    assert done.returncode == 0, done.stderr
    tagger = Tagger()
    tagger.open(str(folder / "model.crfsuite"))
    labels = tagger.labels()
    first = _sequences(done.stdout)[0]
    tagger.set(Xt[0])
    for t, row in enumerate(first):
        cells = row.split("\t")
        assert cells[0] == tagger.tag()[t]
        assert cells[1:] == [f"{lab}:{tagger.marginal(lab, t):f}" for lab in labels]


def _report(labels, gold, pred):
    """The -t report computed here, from the labels (CRFsuite's formulas)."""
    lines = ["Performance by label (#match, #model, #ref) (precision, recall, F1):"]
    sums = [0.0, 0.0, 0.0]
    flat = [(g, p) for gs, ps in zip(gold, pred) for g, p in zip(gs, ps)]
    for lab in labels:
        m = sum(g == p == lab for g, p in flat)
        n_model = sum(p == lab for _, p in flat)
        n_ref = sum(g == lab for g, _ in flat)
        if n_ref == 0:
            lines.append(f"    {lab}: ({m}, {n_model}, {n_ref}) (******, ******, ******)")
            continue
        prec = m / n_model if n_model else 0.0
        rec = m / n_ref
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        sums = [sums[0] + prec, sums[1] + rec, sums[2] + f1]
        lines.append(f"    {lab}: ({m}, {n_model}, {n_ref}) ({prec:1.4f}, {rec:1.4f}, "
                     f"{f1:1.4f})")
    K = len(labels)
    correct = sum(g == p for g, p in flat)
    exact = sum(list(gs) == list(ps) for gs, ps in zip(gold, pred))
    lines += [f"Macro-average precision, recall, F1: ({sums[0] / K:f}, {sums[1] / K:f}, "
              f"{sums[2] / K:f})",
              f"Item accuracy: {correct} / {len(flat)} ({correct / len(flat):1.4f})",
              f"Instance accuracy: {exact} / {len(gold)} ({exact / len(gold):1.4f})"]
    return "\n".join(lines) + "\n"


def test_tag_quiet_test_report(trained):
    folder, _, _, (Xt, yt) = trained
    done = run(["tag", "-qt", "-m", "model.crfsuite", "test.txt"], folder)
    assert done.returncode == 0, done.stderr
    try:
        import pycrfsuite
        reference = pycrfsuite.Tagger()
    except ImportError:
        reference = Tagger()
    reference.open(str(folder / "model.crfsuite"))
    pred = [reference.tag(xs) for xs in Xt]
    report, elapsed = done.stdout.rsplit("Elapsed time: ", 1)
    assert report == _report(reference.labels(), yt, pred)
    assert re.fullmatch(r"\d+\.\d{6} \[sec\] \(\d+\.\d \[instance/sec\]\)\n", elapsed)


def test_tag_unknown_reference_label_stops_the_sequence(tmp_path):
    (tmp_path / "t.txt").write_text("A\tx\nB\ty\n\nA\tx\n\n")
    assert run(["learn", "-m", "m", "-p", "max_iterations=20", "t.txt"],
               tmp_path).returncode == 0
    (tmp_path / "q.txt").write_text("A\tx\nZ\ty\nB\ty\n\nA\tx\n\n")
    done = run(["tag", "-qt", "-m", "m", "q.txt"], tmp_path)
    # CRFsuite counts the first item of the first sequence, then stops at 'Z' and
    # leaves the sequence out of the instance count.
    assert "Item accuracy: 2 / 2 (1.0000)\n" in done.stdout
    assert "Instance accuracy: 1 / 1 (1.0000)\n" in done.stdout


def test_tag_reads_stdin_and_ignores_unknown_attributes(trained):
    folder, _, _, _ = trained
    text = "X\tw=n0\tnever-seen\nX\tw=v1:1.0\n\n"
    done = run(["tag", "-m", "model.crfsuite", "-r"], folder, stdin=text)
    assert done.returncode == 0, done.stderr
    tagger = Tagger()
    tagger.open(str(folder / "model.crfsuite"))
    pred = tagger.tag([{"w=n0": 1.0}, {"w=v1": 1.0}])
    assert done.stdout == f"X\t{pred[0]}\nX\t{pred[1]}\n\n"


def test_tag_without_model_or_with_a_bad_one(tmp_path):
    (tmp_path / "q.txt").write_text("A\tx\n")
    (tmp_path / "junk").write_bytes(b"not a model")
    done = run(["tag", "q.txt"], tmp_path)
    assert done.returncode == 1 and "no model given (-m MODEL)" in done.stderr
    done = run(["tag", "-m", "junk", "q.txt"], tmp_path)
    assert done.returncode == 1 and "junk: not a CRFsuite or fastcrf model" in done.stderr
    done = run(["tag", "-m", "missing", "q.txt"], tmp_path)
    assert done.returncode == 1 and "missing" in done.stderr


def test_tag_refuses_a_template_model(tmp_path, monkeypatch, capsys):
    # A 'fastcrf train' model's attributes are template features (U00:word), which
    # attribute files never match: tagging would look fine and be transition-only.
    (tmp_path / "cols.txt").write_text("the D\ncat N\n\na D\ndog N\n")
    (tmp_path / "tpl").write_text("U00:%x[0,0]\nB\n")
    (tmp_path / "attrs.txt").write_text("D\tw=the\nN\tw=cat\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "-q", "-t", "tpl", "-m", "m.npz", "cols.txt"]) == 0
    capsys.readouterr()
    assert cli.main(["crfsuite", "tag", "-m", "m.npz", "attrs.txt"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "m.npz: a 'fastcrf train' model with a feature template" in err


# --------------------------------------------------------------------------- #
# dump, wiring                                                                  #
# --------------------------------------------------------------------------- #


def test_closed_standard_streams_are_one_line_errors(trained, tmp_path):
    model = str(trained[0] / "model.crfsuite")
    (tmp_path / "q.txt").write_text("A\tx\n")
    for args, fd, name in [(["tag", "-m", model], 0, "input ('-')"),
                           (["learn", "-"], 0, "input ('-')"),
                           (["tag", "-m", model, "q.txt"], 1, "output")]:
        # Closed before Python starts ('<&-', '>&-'): sys.stdin or sys.stdout is None.
        code = (f"import os, sys; os.close({fd}); os.execv(sys.executable, "
                f"[sys.executable, '-m', 'fastcrf', 'crfsuite', *{args!r}])")
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == f"fastcrf: error: standard {name} is closed"


def test_dump_names_a_damaged_model_once_quoted(tmp_path, monkeypatch, capsys):
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 cut short")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["crfsuite", "dump", "cut.npz"]) == 1
    err = capsys.readouterr().err
    assert "error: 'cut.npz' is not a readable fastcrf model file" in err


def test_dump_is_crfsuites(trained, tmp_path):
    pycrfsuite = pytest.importorskip("pycrfsuite")
    folder, _, _, _ = trained
    done = run(["dump", "model.crfsuite"], folder)
    assert done.returncode == 0, done.stderr
    real = pycrfsuite.Tagger()
    real.open(str(folder / "model.crfsuite"))
    real.dump(str(tmp_path / "real.txt"))
    assert done.stdout == (tmp_path / "real.txt").read_text()
    for section in ("FILEHEADER", "LABELS", "ATTRIBUTES", "TRANSITIONS", "STATE_FEATURES"):
        assert f"\n{section} = {{\n" in "\n" + done.stdout


def test_tags_a_model_trained_by_python_crfsuite(tmp_path):
    pycrfsuite = pytest.importorskip("pycrfsuite")
    text, X, y = make_corpus(50, 9)
    trainer = pycrfsuite.Trainer(verbose=False)
    for xs, ys in zip(X, y):
        trainer.append(xs, ys)
    trainer.set_params({"max_iterations": 30})
    trainer.train(str(tmp_path / "real.model"))
    (tmp_path / "d.txt").write_text(text)
    done = run(["tag", "-m", "real.model", "d.txt"], tmp_path)
    assert done.returncode == 0, done.stderr
    real = pycrfsuite.Tagger()
    real.open(str(tmp_path / "real.model"))
    assert _sequences(done.stdout) == [real.tag(xs) for xs in X]


def test_in_process_and_console_script(trained, capsys):
    folder, _, _, _ = trained
    assert cli.main(["crfsuite", "dump", str(folder / "model.crfsuite")]) == 0
    assert capsys.readouterr().out.startswith("FILEHEADER = {\n  magic: lCRF\n")
    assert cli.main(["crfsuite"]) == 1
    assert "no crfsuite command given" in capsys.readouterr().err
    from fastcrf._crfsuite_cli import main

    assert main(["dump", str(folder / "model.crfsuite")]) == 0   # fastcrf-crfsuite
    assert capsys.readouterr().out.startswith("FILEHEADER = {\n")
    assert main(["--version"]) == 0
    assert "CRFsuite" in capsys.readouterr().out


def test_help_texts(tmp_path):
    for command in ("learn", "tag", "dump"):
        done = run([command, "--help"], tmp_path)
        assert done.returncode == 0 and "usage:" in done.stdout
    done = run(["--help"], tmp_path)
    assert all(c in done.stdout for c in ("learn", "tag", "dump"))


def test_thread_count_does_not_change_the_model(tmp_path):
    text, _, _ = make_corpus(80, 11)
    (tmp_path / "a.txt").write_text(text)
    models = []
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        done = subprocess.run([sys.executable, "-m", "fastcrf", "crfsuite", "learn", "-m",
                               f"m{threads}", "-p", "max_iterations=20", "a.txt"],
                              cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        models.append((tmp_path / f"m{threads}").read_bytes())
    assert models[0] == models[1]
    assert models[0][:4] == b"lCRF"


def test_learn_reaches_python_crfsuites_model(tmp_path):
    """Trained to convergence, the model of ``learn`` has python-crfsuite's labels in
    the same order, its weights closely and its tags and -t report exactly."""
    pycrfsuite = pytest.importorskip("pycrfsuite")
    text, X, y = make_corpus(150, 21, with_scales=True)
    test_text, Xt, yt = make_corpus(60, 22)
    (tmp_path / "train.txt").write_text(text)
    (tmp_path / "test.txt").write_text(test_text)
    done = run(["learn", "-m", "ours.model", "-p", "c2=0.1", "train.txt"], tmp_path)
    assert done.returncode == 0, done.stderr
    trainer = pycrfsuite.Trainer(verbose=False)
    for xs, ys in zip(X, y):
        trainer.append(xs, ys)
    trainer.set_params({"c2": 0.1})
    trainer.train(str(tmp_path / "real.model"))
    ours, real = pycrfsuite.Tagger(), pycrfsuite.Tagger()
    ours.open(str(tmp_path / "ours.model"))
    real.open(str(tmp_path / "real.model"))
    assert ours.labels() == real.labels()
    a, b = ours.info(), real.info()
    assert a.state_features.keys() == b.state_features.keys()
    for key, w in b.state_features.items():
        assert a.state_features[key] == pytest.approx(w, abs=2e-3)
    for key, w in b.transitions.items():
        assert a.transitions[key] == pytest.approx(w, abs=2e-3)
    reports = []
    for model in ("ours.model", "real.model"):
        done = run(["tag", "-qt", "-m", model, "test.txt"], tmp_path)
        assert done.returncode == 0, done.stderr
        reports.append(done.stdout.rsplit("Elapsed time", 1)[0])
    assert reports[0] == reports[1]
    assert reports[0] == _report(real.labels(), yt, [real.tag(xs) for xs in Xt])


def test_console_script_and_eight_bit_data(tmp_path):
    """``fastcrf-crfsuite`` reads Latin-1 bytes (not UTF-8) through standard input
    and writes the labels back in the same bytes, in a UTF-8 locale, as CRFsuite
    (which never decodes) does."""
    import shutil

    script = (shutil.which("fastcrf-crfsuite", path=os.path.dirname(sys.executable))
              or shutil.which("fastcrf-crfsuite"))
    if script is None:
        pytest.skip("the fastcrf-crfsuite console script is not installed (pip install -e .)")
    text = "".join(f"{lab}\tw={word}\n" + ("\n" if i % 3 == 2 else "")
                   for i, (lab, word) in enumerate([("Ñ", "año"), ("É", "été"), ("Ñ", "niño")]
                                                   * 10))
    data = text.encode("latin-1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIO"))}
    env.update(LC_ALL="C.UTF-8", PYTHONUTF8="0")
    done = subprocess.run([script, "learn", "-m", "m", "-p", "max_iterations=20", "-"],
                          cwd=tmp_path, input=data, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([script, "tag", "-m", "m", "-"], cwd=tmp_path, input=data,
                          env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("latin-1").split() == [line.split("\t")[0] for line in
                                                      text.splitlines() if line]


def test_tag_in_batches_names_the_right_line(trained, tmp_path, monkeypatch, capsys):
    from fastcrf import _crfsuite_cli

    folder, _, _, _ = trained
    model = str(folder / "model.crfsuite")
    text = (folder / "test.txt").read_text()
    (tmp_path / "good.txt").write_text(text)
    assert cli.main(["crfsuite", "tag", "-m", model, str(tmp_path / "good.txt")]) == 0
    whole = capsys.readouterr().out
    monkeypatch.setattr(_crfsuite_cli, "_BATCH", 3)
    assert cli.main(["crfsuite", "tag", "-m", model, str(tmp_path / "good.txt")]) == 0
    assert capsys.readouterr().out == whole                # batches change nothing
    n_lines = text.count("\n")
    (tmp_path / "bad.txt").write_text(text + "N\tw=n1:x\n")
    assert cli.main(["crfsuite", "tag", "-m", model, str(tmp_path / "bad.txt")]) == 1
    assert f"bad.txt:{n_lines + 1}: the scale of 'w=n1:x'" in capsys.readouterr().err
