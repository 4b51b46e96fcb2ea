"""Error messages that must not mislead: a file that is no model never suggests an
unsafe step, a template without U lines says so, and every command-line option is
checked (and named) before any data file is read."""

import os

import numpy as np
import pytest

from fastcrf import CRF, cli
from fastcrf._persist import load_model_bytes
from fastcrf.io import write_conll
from fastcrf.templates import Template

# A data file that does not exist: an error about it would mean that the data was
# read before a bad option was reported.
MISSING = "no-such-training-file.txt"


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(capsys, *argv, match):
    status, _, err = run(capsys, *argv)
    assert status == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastcrf: error: "), err
    assert match in lines[0], lines[0]
    assert MISSING not in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    data = folder / "train.txt"
    write_conll(data, [[("a", "B-X"), ("b", "O"), ("c", "I-X")]] * 12)
    template = folder / "template"
    template.write_text("U00:%x[0,0]\nB\n")
    path = folder / "model.npz"
    assert cli.main(["train", "-q", "-a", "lbfgs", "-i", "3", "-t", str(template),
                     "-m", str(path), str(data)]) == 0
    return path


# --------------------------------------------------------------------------- #
# Model files                                                                   #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("content, what", [
    (np.random.default_rng(0).bytes(300), "neither an .npz archive nor a CRFsuite"),
    (b"hello world\nthis is text\n", "neither an .npz archive nor a CRFsuite"),
    (b"\x93NUMPY\x01\x00", "neither an .npz archive nor a CRFsuite"),  # a lone .npy
    (b"", "an empty file"),
])
def test_load_of_a_file_that_is_no_model_never_mentions_pickles(tmp_path, capsys, content,
                                                                 what):
    path = tmp_path / "not-a-model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="is not a fastcrf model file") as info:
        CRF.load(path)
    assert what in str(info.value)
    assert "pickle" not in str(info.value).lower()
    with pytest.raises(ValueError, match="neither|empty") as info:
        load_model_bytes(content)  # the pycrfsuite drop-in reads bytes
    assert "pickle" not in str(info.value).lower()
    line = one_line_error(capsys, "info", "-m", path, match="not-a-model.npz")
    assert "pickle" not in line.lower()


# --------------------------------------------------------------------------- #
# Templates without U lines                                                     #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("text", ["", "# only a comment\n", "B\n", "# bigram\nB01:%x[0,0]\n"])
def test_a_template_without_u_lines_says_so(tmp_path, capsys, text):
    template = Template(text)
    with pytest.raises(ValueError, match="the template has no U lines"):
        template.encode([[("a",), ("b",)]])
    # Through the estimator, its (empty) features say what is wrong, not min_freq.
    with pytest.raises(ValueError, match="no U lines") as info:
        CRF().fit(template.transform([[("a",), ("b",)]] * 3), [["x", "y"]] * 3)
    assert "min_freq" not in str(info.value)
    path = tmp_path / "template"
    path.write_text(text)
    one_line_error(capsys, "train", "-t", path, MISSING, match="the template has no U lines")
    one_line_error(capsys, "bench", "--train", tmp_path / "template", "-t", path,
                   match="the template has no U lines")


def test_min_freq_message_is_kept_when_min_freq_cut_everything():
    with pytest.raises(ValueError, match="min_freq=5"):
        CRF(min_freq=5).fit([[["a"], ["b"]]] * 2, [["x", "y"]] * 2)


def test_negative_random_state_is_named():
    with pytest.raises(ValueError, match="random_state must be None or an int >= 0"):
        CRF(random_state=-1, max_iterations=1).fit([[["a"], ["b"]]] * 12, [["x", "y"]] * 12)


# --------------------------------------------------------------------------- #
# Every option is checked before any data is read, and named                   #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("argv, match", [
    (["-i", "0"], "-i: max_iterations must be >= 1, got 0"),
    (["--c2", "nan"], "--c2: c2 must be finite"),
    (["--c2", "-1"], "--c2: c2 must be >= 0"),
    (["--c1", "inf"], "--c1: c1 must be finite"),
    (["-f", "nan"], "-f: min_freq must be finite"),
    (["-c", "0"], "-c must be > 0"),
    (["-c", "nan"], "-c must be > 0"),
    (["-c", "1", "--c2", "1"], "give -c (CRF++'s cost) or --c2, not both"),
    (["-j", "0"], "-j must be a number of threads"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["-p", "period=0"], "-p period=0: period must be >= 1"),
    (["-p", "period=1.5"], "-p period=1.5: period must be an int"),
    (["-p", "nonsense=1"], "-p nonsense=1: invalid parameter 'nonsense'"),
    (["-p", "linesearch=Fast"], "-p linesearch=Fast: linesearch must be one of"),
    (["-p", "batch_size=0"], "-p batch_size=0: batch_size must be >= 1"),
    (["-p", "algorithm=sgd"], "algorithm='sgd' is not implemented"),
    (["-p", "nameonly"], "-p expects NAME=VALUE"),
    (["-a", "ap", "--c1", "1"], "c1 (L1) is only supported by"),
    (["-m", os.path.join("no-such-folder", "m.npz")], "-m no-such-folder"),
    (["--sep", ""], "--sep must be a non-empty separator"),
    (["-t", "no-such-template"], "no such template file"),
])
def test_train_checks_every_option_before_reading_data(capsys, argv, match):
    args = ["train", "-t", "chunking", *argv, MISSING] if "-t" not in argv \
        else ["train", *argv, MISSING]
    one_line_error(capsys, *args, match=match)


def test_train_model_path_that_is_a_folder(capsys, tmp_path):
    one_line_error(capsys, "train", "-t", "chunking", "-m", tmp_path, MISSING,
                   match="a folder, not a file")


def test_a_good_command_line_then_reports_the_missing_file(capsys):
    status, _, err = run(capsys, "train", "-t", "chunking", "-i", "3", "--c2", "0.5",
                         "-p", "period=5", MISSING)
    assert status == 1 and MISSING in err


@pytest.mark.parametrize("argv, match", [
    (["-j", "0"], "-j must be a number of threads"),
    (["-o", os.path.join("no-such-folder", "out.txt")], "-o no-such-folder"),
    (["--sep", ""], "--sep must be a non-empty separator"),
])
def test_tag_checks_options_before_loading(capsys, argv, match):
    one_line_error(capsys, "tag", "-m", "no-such-model.npz", *argv, MISSING, match=match)


def test_info_rejects_a_negative_top(capsys, model_file):
    one_line_error(capsys, "info", "-m", model_file, "--top", "-1",
                   match="--top must be >= 0, got -1")
    one_line_error(capsys, "info", "-m", "no-such-model.npz", "--top", "-1",
                   match="--top must be >= 0")
    status, out, _ = run(capsys, "info", "-m", model_file, "--top", "0")
    assert status == 0 and "top 0 positive state features" in out


@pytest.mark.parametrize("argv, match", [
    (["--types", "0"], "--types must be >= 1, got 0"),
    (["-n", "3"], "-n must be >= 10"),
    (["-j", "0"], "-j must be a number of threads"),
    (["--seed", "-2"], "--seed must be >= 0"),
])
def test_demo_names_its_own_options(capsys, tmp_path, argv, match):
    line = one_line_error(capsys, "demo", "-o", tmp_path / "demo", *argv, match=match)
    assert "n_labels" not in line and "n_jobs" not in line
    assert not (tmp_path / "demo").exists()  # nothing written before the check


def test_demo_without_output_folder_names_no_deleted_folder(capsys):
    status, out, err = run(capsys, "demo", "-n", "30", "-q", "-a", "lbfgs")
    assert status == 0, err
    commands = [line for line in out.splitlines() if line.startswith("$ fastcrf")]
    assert len(commands) == 3
    assert "$ fastcrf tag -q -m model.npz -o tagged.txt test.txt" in commands
    assert "fastcrf-demo-" not in out + err and "temporary folder" in out


@pytest.mark.parametrize("argv, match", [
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--timeout", "0"], "--timeout must be > 0"),
    (["--timeout", "-1"], "--timeout must be > 0"),
    (["--tools", "nothing"], "tools must be among"),
    (["-a", "nothing"], "algorithms must be among"),
    (["--threads", "0"], "threads must be 'all' or >= 1"),
    (["--encoding", "no-such-codec"], "--encoding: unknown encoding"),
])
def test_bench_checks_options_before_files(capsys, argv, match):
    one_line_error(capsys, "bench", "--train", MISSING, "-t", "chunking", *argv, match=match)
