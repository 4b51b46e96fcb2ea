"""`fastcrf bench`: the suite's runs, its JSON and table, its figures computed from the
tools' own predictions, with and without the optional peers, and its error paths."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from fastcrf import CRF, cli
from fastcrf.bench import run_suite, summarise
from fastcrf.bench.report import format_report
from fastcrf.bench.workloads import column_workload, load, synthetic_workload
from fastcrf.datasets import make_conll_file

PEERS = ("pycrfsuite", "sklearn_crfsuite")
HAVE_PEERS = all(importlib.util.find_spec(m) is not None for m in PEERS)
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _accuracy(y_true, y_pred):
    pairs = [(a, b) for s, p in zip(y_true, y_pred) for a, b in zip(s, p)]
    return sum(a == b for a, b in pairs) / len(pairs)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A tiny suite through the command line: two rounds, two algorithms, all tools."""
    folder = tmp_path_factory.mktemp("bench")
    path = folder / "bench.json"
    plot = folder / "bench.png"
    argv = ["bench", "-n", "80", "--rounds", "2", "-a", "default,ap", "--json", path, "-q"]
    if HAVE_MATPLOTLIB:
        argv += ["--plot", plot]
    status = cli.main([str(a) for a in argv])
    assert status == 0
    with open(path) as f:
        return json.load(f), plot


def test_the_json_holds_every_round_of_every_run(suite):
    results, _ = suite
    tools = ["fastcrf"] + (["python-crfsuite", "sklearn-crfsuite"] if HAVE_PEERS else [])
    runs = results["runs"]
    assert {(r["algorithm"], r["tool"]) for r in runs} == {
        (a, t) for a in ("default", "ap") for t in tools}
    # fastcrf at 1 thread and at all threads (one run when the machine has one thread).
    n_all = results["meta"]["machine"]["fastcrf_threads"]
    assert sorted({r["threads"] for r in runs if r["tool"] == "fastcrf"}) == sorted({1, n_all})
    assert set(results["rounds"]) == set(results["summary"])
    for key, rows in results["rounds"].items():
        assert [r["round"] for r in rows] == [1, 2]
        for r in rows:
            assert "error" not in r, r
            assert r["fit"] > 0 and r["tag"] > 0 and r["peak_rss_mb"] > 0
            assert r["n_test"] == 16 and r["n_train"] == 64
    for key, e in results["summary"].items():
        fits = [r["fit"] for r in results["rounds"][key]]
        assert e["fit"] == {"median": pytest.approx(sum(fits) / 2), "min": min(fits),
                            "max": max(fits)}
        base = results["summary"][f"{e['algorithm']}/fastcrf/{n_all}t"]
        assert e["fit_ratio"] == pytest.approx(e["fit"]["median"] / base["fit"]["median"])
    assert results["meta"]["versions"]["fastcrf"]
    assert results["meta"]["workload"] == synthetic_workload(80, 0)


def test_accuracy_figures_come_from_the_tools_predictions(suite):
    # Retrain here what the children trained (same data, same settings, same seed):
    # the reported accuracy is that of these predictions, to the last token.
    results, _ = suite
    X, y, X_test, y_test = load(results["meta"]["workload"])
    for algorithm, kw in (("default", {}), ("ap", {"algorithm": "ap", "max_iterations": 10})):
        pred = CRF(random_state=0, **kw).fit(X, y).predict(X_test)
        entry = results["summary"][f"{algorithm}/fastcrf/1t"]
        assert entry["accuracy"] == _accuracy(y_test, pred)
        row = results["rounds"][f"{algorithm}/fastcrf/1t"][0]
        assert row["n_tokens"] == sum(map(len, y_test))
        assert row["n_correct"] == round(entry["accuracy"] * row["n_tokens"])
        assert 0.0 < entry["f1"] <= 1.0
    if HAVE_PEERS:
        import pycrfsuite

        trainer = pycrfsuite.Trainer(algorithm="pa", verbose=False)
        trainer.set_params({"feature.possible_transitions": True, "max_iterations": 10})
        for xseq, yseq in zip(X, y):
            trainer.append(xseq, yseq)
        model = os.path.join(os.path.dirname(suite[1]), "check.crfsuite")
        trainer.train(model)
        tagger = pycrfsuite.Tagger()
        tagger.open(model)
        pred = [tagger.tag(xseq) for xseq in X_test]
        for tool in ("python-crfsuite", "sklearn-crfsuite"):
            assert results["summary"][f"default/{tool}/1t"]["accuracy"] == \
                _accuracy(y_test, pred)
    # Far above the majority label: real models, not constant output.
    labels = [label for s in y_test for label in s]
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    assert all(e["accuracy"] > majority + 0.1 for e in results["summary"].values())


def test_the_table_names_the_machine_the_tools_and_the_settings(suite, capsys):
    results, _ = suite
    text = format_report(results)
    assert "synthetic BIO corpus (80 sentences, seed 0)" in text
    assert "versions: fastcrf" in text and "threads: fastcrf at" in text
    assert "default/fastcrf: defaults" in text
    assert "ap/fastcrf: algorithm='ap', max_iterations=10" in text
    if HAVE_PEERS:
        assert "default/python-crfsuite: algorithm='pa', max_iterations=10" in text
        assert "python-crfsuite" in text.split("settings:")[0]


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed")
def test_the_plot_is_a_png(suite):
    _, plot = suite
    with open(plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_peers_that_do_not_import_are_listed_as_skipped(tmp_path):
    # Shadow the peers with packages that fail to import, as an absent one does.
    for module in PEERS:
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(
            f"raise ImportError('no {module} here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fastcrf", "bench", "-n", "40", "--rounds", "1", "-a",
         "ap", "--threads", "1", "--json", str(out), "-q"],
        capture_output=True, text=True, env=env,
        cwd=tmp_path)  # not the source checkout: its fastcrf is not compiled
    assert proc.returncode == 0, proc.stderr
    assert "skipped: python-crfsuite: not installed" in proc.stdout
    assert "skipped: sklearn-crfsuite: not installed" in proc.stdout
    results = json.loads(out.read_text())
    assert {r["tool"] for r in results["runs"]} == {"fastcrf"}
    assert {s["tool"] for s in results["skipped"]} == {"python-crfsuite", "sklearn-crfsuite"}


def test_an_algorithm_a_peer_lacks_is_skipped_for_it(capsys):
    status, out, _ = run(capsys, "bench", "-n", "40", "--rounds", "1", "-a", "asgd",
                         "--threads", "1", "-q")
    assert status == 0
    assert "asgd" in out and "fastcrf" in out
    if HAVE_PEERS:
        assert "skipped: python-crfsuite (asgd): no trainer that corresponds" in out


def test_column_files_with_a_template(tmp_path, capsys):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    make_conll_file(train, 60, scheme="BIO", n_labels=2, random_state=0)
    make_conll_file(test, 20, scheme="BIO", n_labels=2, random_state=1)
    template = tmp_path / "template"
    template.write_text("U00:%x[-1,0]\nU01:%x[0,0]\nU02:%x[1,0]\nB\n")
    out = tmp_path / "out.json"
    status, text, _ = run(capsys, "bench", "--train", train, "--test", test, "-t", template,
                          "--tools", "fastcrf", "-a", "default", "--rounds", "1",
                          "--threads", "1", "--json", out, "-q")
    assert status == 0
    assert "train.txt -> test.txt, template template" in text
    results = json.loads(out.read_text())
    row = results["rounds"]["default/fastcrf/1t"][0]
    assert (row["n_train"], row["n_test"]) == (60, 20)
    assert row["f1"] is not None
    # Without --test the last fifth of --train is tagged.
    workload = column_workload(str(train), str(template))
    X, y, X_test, y_test = load(workload)
    assert (len(X), len(X_test)) == (48, 12)


def test_labels_without_a_chunk_scheme_get_no_f1(tmp_path):
    train = tmp_path / "pos.txt"
    make_conll_file(train, 40, n_labels=3, random_state=0)  # labels L0, L1, L2
    template = tmp_path / "template"
    template.write_text("U00:%x[0,0]\n")
    results = run_suite(column_workload(str(train), str(template)), ["ap"], ["fastcrf"],
                        rounds=1, threads=["1"])
    entry = results["summary"]["ap/fastcrf/1t"]
    assert entry["f1"] is None and entry["accuracy"] > 0.3


def test_busy_rounds_are_flagged():
    meta = {"workload": synthetic_workload(10, 0), "versions": {"fastcrf": "x"},
            "rounds": 3, "machine": {"fastcrf_threads": 2, "cpus": 2, "python": "3",
                                     "machine": "x86_64"}}
    runs = [{"algorithm": "default", "tool": "fastcrf", "threads": 2, "n_jobs": None,
             "settings": "defaults"}]

    def row(fit):
        return {"fit": fit, "tag": 0.1, "peak_rss_mb": 100.0, "rss_over_data_mb": 10.0,
                "accuracy": 0.9, "f1": 0.8, "n_train": 8, "n_train_tokens": 80, "n_test": 2}

    for fits, busy in (([1.0, 1.1, 1.05], False), ([1.0, 1.6, 1.1], True)):
        results = {"meta": meta, "runs": runs, "skipped": [],
                   "rounds": {"default/fastcrf/2t": [row(f) for f in fits]}}
        results["summary"] = summarise(results)
        assert results["summary"]["default/fastcrf/2t"]["busy"] is busy
        assert ("machine looks busy" in format_report(results)) is busy
    meta["machine"]["busy_cpus_at_start"] = 1.2
    assert "kept 1.2 of 2 CPUs busy" in format_report(results)
    meta["machine"]["busy_cpus_at_start"] = 0.1
    assert "CPUs busy when" not in format_report(results)


def test_busy_cpus_are_measured_now():
    import threading
    import time

    from fastcrf.bench.suite import _busy_cpus

    if not os.path.exists("/proc/stat"):
        pytest.skip("needs Linux's /proc/stat")
    stop = time.perf_counter() + 1.0

    def spin():
        while time.perf_counter() < stop:
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    busy = _busy_cpus(0.4)
    thread.join()
    assert 0.5 < busy <= (os.cpu_count() or 1) + 0.01


@pytest.mark.parametrize("argv, message", [
    (["--train", "x.txt"], "--train needs -t"),
    (["-t", "chunking"], "need --train"),
    (["-n", "5"], "-n must be >= 10"),
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["-a", "bogus"], "algorithms must be among"),
    (["--tools", "crfpp"], "tools must be among"),
    (["--threads", "0"], "threads must be 'all' or >= 1"),
    (["-a", ","], "--algorithms must list at least one"),
])
def test_bad_command_lines_fail_with_one_line(capsys, tmp_path, argv, message):
    if argv[0] == "--train":
        argv = ["--train", str(tmp_path / "x.txt")]
    status, out, err = run(capsys, "bench", *argv, "-q")
    assert status == 1
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_missing_training_file_is_named(capsys, tmp_path):
    status, _, err = run(capsys, "bench", "--train", tmp_path / "nope.txt", "-t", "chunking")
    assert status == 1 and "no such file" in err and "nope.txt" in err


HAVE_TORCH = importlib.util.find_spec("torch") is not None


def test_layers_time_every_cell_and_agree_with_the_numpy_api(tmp_path, capsys):
    import numpy as np

    from fastcrf import log_likelihood
    from fastcrf.bench.layers import _inputs

    out = tmp_path / "layers.json"
    status, text, _ = run(capsys, "bench", "--layers", "--grid", "3x6x3,5x4x4", "--rounds",
                          "2", "--calls", "1", "--threads", "1", "--json", out, "-q")
    assert status == 0
    results = json.loads(out.read_text())
    tools = ["fastcrf"] + (["fastcrf-torch"] + (
        ["pytorch-crf"] if importlib.util.find_spec("torchcrf") else []) if HAVE_TORCH else [])
    assert results["meta"]["tools"] == tools
    assert set(results["summary"]) == {f"{c}/1/{op}" for c in ("3x6x3", "5x4x4")
                                       for op in ("ll+grad", "decode")}
    for key, entry in results["summary"].items():
        assert set(entry) == set(tools)
        assert all(e["agrees"] and e["median"] > 0 for e in entry.values()), (key, entry)
    # The reported value is the real log-likelihood of the cell's inputs.
    em, tags, lengths, trans, start, end = _inputs(3, 6, 3)
    ll = float(log_likelihood(em, tags, trans, start, end, lengths).sum())
    assert results["summary"]["3x6x3/1/ll+grad"]["fastcrf"]["value"] == pytest.approx(ll)
    assert np.isfinite(ll) and "agree" in text and "NO" not in text


def test_layers_skip_a_peer_that_does_not_import(tmp_path):
    (tmp_path / "torchcrf").mkdir()
    (tmp_path / "torchcrf" / "__init__.py").write_text("raise ImportError('absent')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = subprocess.run(
        [sys.executable, "-m", "fastcrf", "bench", "--layers", "--grid", "2x3x2", "--rounds",
         "1", "--calls", "1", "--threads", "1", "-q"], capture_output=True, text=True, env=env,
        cwd=tmp_path)  # not the source checkout: its fastcrf is not compiled
    assert proc.returncode == 0, proc.stderr
    assert "skipped: pytorch-crf: not installed" in proc.stdout


@pytest.mark.parametrize("argv, message", [
    (["--grid", "3x4"], "--grid cells are BxTxK"),
    (["--grid", "3x4x1"], "K >= 2"),
    (["--calls", "0"], "--calls must be >= 1"),
    (["-t", "chunking"], "takes no --train"),
    (["--tools", "crfsuite"], "tools must be among"),
])
def test_bad_layer_command_lines_fail_with_one_line(capsys, argv, message):
    status, _, err = run(capsys, "bench", "--layers", *argv, "-q")
    assert status == 1 and message in err and err.count("\n") == 1


def test_grid_needs_layers(capsys):
    status, _, err = run(capsys, "bench", "--grid", "2x3x2", "-q")
    assert status == 1 and "--grid goes with --layers" in err


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed")
def test_layers_plot_is_a_png(tmp_path, capsys):
    plot = tmp_path / "layers.png"
    status, _, _ = run(capsys, "bench", "--layers", "--grid", "2x3x2", "--rounds", "1",
                       "--calls", "1", "--threads", "1", "--tools", "fastcrf", "--plot",
                       plot, "-q")
    assert status == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_features_from_a_users_function(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_features.py").write_text(
        "from fastcrf.datasets import make_sequences\n"
        "def load():\n"
        "    X, y = make_sequences(50, n_labels=2, scheme='BIO', random_state=3)\n"
        "    X = [[{'w': tok[0], 'n': 1.0} for tok in s] for s in X]  # dict tokens\n"
        "    return X[:40], y[:40], X[40:], y[40:]\n"
        "def bad():\n"
        "    return [[['a']]], [['O', 'O']], [], []\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.json"
    status, text, err = run(capsys, "bench", "--features", "my_features:load", "-a", "ap",
                            "--rounds", "1", "--threads", "1", "--json", out, "-q")
    assert status == 0, err
    assert "features of my_features:load" in text
    results = json.loads(out.read_text())
    for key, rows in results["rounds"].items():
        assert rows[0]["n_train"] == 40 and rows[0]["n_test"] == 10, key
    status, _, err = run(capsys, "bench", "--features", "my_features:bad", "-a", "ap",
                         "--rounds", "1", "--threads", "1", "--tools", "fastcrf", "-q")
    assert status == 1 and "failed" in err
    status, _, err = run(capsys, "bench", "--features", "nocolon", "-q")
    assert status == 1 and "MODULE:FUNCTION" in err


def test_children_import_the_fastcrf_this_process_runs(tmp_path, monkeypatch, capsys):
    # From a folder holding another `fastcrf` (a source checkout without its compiled
    # extensions, say), `python -m` in the children would import that one.
    (tmp_path / "fastcrf").mkdir()
    (tmp_path / "fastcrf" / "__init__.py").write_text("raise ImportError('not this one')\n")
    monkeypatch.chdir(tmp_path)
    status, text, err = run(capsys, "bench", "-n", "30", "-a", "ap", "--rounds", "1",
                            "--threads", "1", "--tools", "fastcrf", "-q")
    assert status == 0, err
    status, _, err = run(capsys, "bench", "--layers", "--grid", "2x3x2", "--rounds", "1",
                         "--calls", "1", "--threads", "1", "--tools", "fastcrf", "-q")
    assert status == 0, err


# --------------------------------------------------------------------------- #
# The benchmark scripts of bench/ (a source checkout's; absent from an sdist)  #
# --------------------------------------------------------------------------- #

BENCH_SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench")


def bench_script(name, tmp_path, *argv):
    """Run ``bench/<name>`` in a child from ``tmp_path``: its stdout (skips the test
    where the scripts are absent)."""
    path = os.path.join(BENCH_SCRIPTS, name)
    if not os.path.isfile(path):
        pytest.skip(f"bench/{name} is not here (not a source checkout)")
    proc = subprocess.run([sys.executable, path, *map(str, argv)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_bench_edges_conll2002_smoke(tmp_path):
    # Tiny CoNLL-2002-like files in place of the corpus: the script's reader, its
    # three variants (the transition attributes add weights) and its table.
    import gzip

    from fastcrf.datasets import make_sequences

    _, y, params = make_sequences(90, n_labels=3, n_attributes=40, length=(3, 10),
                                  scheme="BIO", return_params=True, random_state=0)
    # Entity words title-cased, so that both transition attributes vary.
    sentences = ["\n".join(f"{'Pal' if tag != 'O' else 'pal'}{w} {tag}"
                           for w, tag in zip(words.tolist(), tags))
                 for words, tags in zip(params["words"], y)]
    for split, part in (("train", slice(0, 60)), ("testa", slice(60, 75)),
                        ("testb", slice(75, 90))):
        with gzip.open(tmp_path / f"esp.{split}.gz", "wt") as f:
            f.write("\n\n".join(sentences[part]) + "\n")
    out = tmp_path / "runs.json"
    text = bench_script("bench_edges_conll2002.py", tmp_path, "--data", tmp_path,
                        "--regs", "l2", "--max-iterations", "3", "--json", out)
    rows = json.loads(out.read_text())
    assert [r["variant"] for r in rows] == ["plain", "shape", "title"]
    assert all(r["n_iter"] == 3 and r["reg"] == "l2" for r in rows)
    assert all(0.0 <= r["f1_testb"] <= 100.0 for r in rows)
    # A transition attribute weighs every label pair (K = 3 here).
    plain, shape, title = (r["n_weights"] for r in rows)
    assert shape > plain and title > plain
    assert "| l2 | shape |" in text and "| l2 | plain |" in text
