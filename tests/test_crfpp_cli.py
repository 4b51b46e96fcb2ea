"""CRF++'s command lines, ``fastcrf crf_learn`` and ``fastcrf crf_test``: every flag,
every output mode, the mapping of CRF++'s objectives onto fastcrf's (checked at the
optimum), CRF++'s text model both ways, every error named before any data is read,
the console scripts, and, when CRF++ itself is installed (``pip install crfpy``,
which bundles it), the same files through CRF++."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_cli as run

from fastcrf import CRF, cli
from fastcrf._crfpp_text import format_text_model, parse_text_model
from fastcrf.datasets import make_sequences
from fastcrf.io import write_conll
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




def fails(capsys, *argv, match, status=1):
    """Run, and check one ``fastcrf: error:`` line matching ``match``."""
    code, _, err = run(capsys, *argv)
    assert code == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastcrf: error: "), err
    assert re.search(match, lines[0]), lines[0]


def rows_of(labels_seqs, words):
    return [[(f"w{w}", f"c{w % 5}", label) for w, label in zip(ws.tolist(), labels)]
            for ws, labels in zip(words, labels_seqs)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three-column BIO files (word, word class, label) from one synthetic HMM; labels
    first seen out of sorted order, so the model's sorting is exercised."""
    folder = tmp_path_factory.mktemp("crfpp")
    _, y, params = make_sequences(160, n_labels=2, scheme="BIO", length=(3, 12),
                                  return_params=True, random_state=1)
    rows = rows_of(y, params["words"])
    paths = {"train": folder / "train.txt", "test": folder / "test.txt",
             "template": folder / "template", "folder": folder}
    write_conll(paths["train"], rows[:120])
    write_conll(paths["test"], rows[120:])
    paths["template"].write_text(TEMPLATE)
    paths["gold"] = [[r[-1] for r in s] for s in rows[120:]]
    paths["rows"] = rows
    return paths


@pytest.fixture(scope="module")
def model(corpus):
    """A CRF-L2 model with its text model (module-wide: training is the slow part)."""
    path = corpus["folder"] / "model"
    status = cli.main(["crf_learn", "-t", "-c", "2", str(corpus["template"]),
                       str(corpus["train"]), str(path)])
    assert status == 0
    return path


def parse_output(text):
    """crf_test's output: a list of sentences, each ``(header, [fields...])``."""
    sentences = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        header = lines[0] if lines[0].startswith("# ") else None
        body = lines[1:] if header is not None else lines
        sentences.append((header, [line.split("\t") for line in body]))
    return sentences


def template_features(rows):
    return Template(TEMPLATE).transform([[r[:2] for r in s] for s in rows])


# --------------------------------------------------------------------------- #
# crf_learn -> crf_test                                                         #
# --------------------------------------------------------------------------- #


def test_learn_then_test_default_output(corpus, model, capsys):
    status, out, err = run(capsys, "crf_test", "-m", model, corpus["test"])
    assert status == 0, err
    assert out.endswith("\n\n") and not err
    got = parse_output(out)
    test_rows = corpus["rows"][120:]
    assert len(got) == len(test_rows)
    predicted = []
    for (header, fields), rows in zip(got, test_rows):
        assert header is None
        # Every input column (gold included), tab-separated, then the prediction.
        assert [f[:3] for f in fields] == [list(r) for r in rows]
        assert all(len(f) == 4 for f in fields)
        predicted.append([f[3] for f in fields])
    crf = CRF.load(model)
    assert predicted == crf.predict(template_features(test_rows))
    accuracy = np.mean([p == g for ps, gs in zip(predicted, corpus["gold"])
                        for p, g in zip(ps, gs)])
    assert accuracy > 0.8


def test_model_is_crfpp_shaped(corpus, model):
    crf = CRF.load(model)
    # CRF++ sorts its labels, keeps every (attribute, label) pair, has no start/end.
    assert crf.classes_ == sorted(crf.classes_)
    assert crf.state_weights_.shape == (crf.num_attributes_, len(crf.classes_))
    assert np.all(crf.start_weights_ == 0) and np.all(crf.end_weights_ == 0)
    assert np.any(crf.transition_weights_ != 0)
    meta = crf.metadata_
    assert meta["fastcrf_cli"]["template"] == TEMPLATE
    assert meta["fastcrf_cli"]["n_fields"] == 3
    assert meta["crfpp"]["algorithm"] == "CRF-L2" and meta["crfpp"]["C"] == 2.0


def test_fastcrf_tag_reads_the_model(corpus, model, capsys):
    status, out, err = run(capsys, "tag", "-q", "-m", model, corpus["test"])
    assert status == 0, err
    _, crf_test_out, _ = run(capsys, "crf_test", "-m", model, corpus["test"])
    assert [line.split()[-1] for line in out.splitlines() if line] == \
        [line.split()[-1] for line in crf_test_out.splitlines() if line]


def test_verbose_1(corpus, model, capsys):
    status, out, _ = run(capsys, "crf_test", "-v1", "-m", model, corpus["test"])
    assert status == 0
    crf = CRF.load(model)
    X = template_features(corpus["rows"][120:])
    marginals = crf.predict_marginals(X)
    for (header, fields), marg, x in zip(parse_output(out), marginals, X):
        # CRF++ prints probabilities with six fixed decimals ("%f"), never exponents.
        assert header is not None and re.fullmatch(r"# [01]\.\d{6}", header)
        labels = []
        for f, m in zip(fields, marg):
            label, p = f[3].rsplit("/", 1)
            labels.append(label)
            assert re.fullmatch(r"[01]\.\d{6}", p)
            assert float(p) == pytest.approx(m[label], abs=1e-6)
        # The sequence probability of the predicted labels.
        codes = [crf.classes_.index(label) for label in labels]
        enc = crf._model.encode([x])
        logp = crf._model.log_probability(enc, np.array(codes))[0]
        assert float(header[2:]) == pytest.approx(np.exp(logp), rel=1e-5)
        assert header[2:] == f"{np.exp(logp):.6f}"


def test_verbose_2_lists_every_label(corpus, model, capsys):
    status, out, _ = run(capsys, "crf_test", "--verbose=2", "-m", model, corpus["test"])
    assert status == 0
    classes = CRF.load(model).classes_
    for header, fields in parse_output(out):
        assert header.startswith("# ")
        for f in fields:
            assert len(f) == 4 + len(classes)
            label, best = f[3].rsplit("/", 1)
            listed = [item.rsplit("/", 1) for item in f[4:]]
            assert [name for name, _ in listed] == classes
            assert all(re.fullmatch(r"[01]\.\d{6}", p) for _, p in listed)
            probs = {name: float(p) for name, p in listed}
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
            assert probs[label] == float(best) == max(probs.values())


def test_nbest_1_and_cost_factor(corpus, model, capsys):
    _, plain, _ = run(capsys, "crf_test", "-m", model, corpus["test"])
    _, one, _ = run(capsys, "crf_test", "-n", "1", "-m", model, corpus["test"])
    _, v1, _ = run(capsys, "crf_test", "-v", "1", "-m", model, corpus["test"])
    _, sharp, _ = run(capsys, "crf_test", "-v", "1", "-c", "2", "-m", model, corpus["test"])
    one_s, plain_s, v1_s, sharp_s = map(parse_output, (one, plain, v1, sharp))
    for (h1, f1), (h0, f0), (hv, _), (hs, fs) in zip(one_s, plain_s, v1_s, sharp_s):
        # -n 1: the best sequence with its '# 0 P' line; no '/p' without -v.
        assert h0 is None and f1 == f0
        assert h1 == "# 0 " + hv[2:]
        # Doubling the weights keeps the best path and sharpens its probability.
        assert [f[3].split("/")[0] for f in fs] == [f[3] for f in f0]
        assert float(hs[2:]) >= float(hv[2:]) - 1e-6


def test_nbest_lists(corpus, model, capsys):
    # -n 3: per sentence the 3 best labellings in CRF++'s layout ('# n P', rows, a
    # blank line), the same as the model's exact k-best; the first is -n 1's.
    from fastcrf._persist import load_model

    _, three, _ = run(capsys, "crf_test", "-n", "3", "-v", "1", "-m", model,
                      corpus["test"])
    _, one, _ = run(capsys, "crf_test", "-n", "1", "-v", "1", "-m", model, corpus["test"])
    blocks, best = parse_output(three), parse_output(one)
    sentences = corpus["rows"][120:]
    fitted, _ = load_model(model)
    crf = CRF()
    crf._model = fitted
    nbest = crf.predict_nbest(template_features(sentences), 3)
    assert len(blocks) == sum(len(n) for n in nbest)
    pos = 0
    for s, cands in enumerate(nbest):
        assert blocks[pos] == best[s]
        for n, (labels, prob) in enumerate(cands):
            header, fields = blocks[pos]
            assert header.split(" ")[:2] == ["#", str(n)]
            assert float(header.split(" ")[2]) == pytest.approx(prob, abs=1e-6)
            assert [f[-1].split("/")[0] for f in fields] == labels
            assert [tuple(f[:-1]) for f in fields] == [r for r in sentences[s]]
            pos += 1
        probs = [p for _, p in cands]
        assert probs == sorted(probs, reverse=True)


def test_output_file_stdin_and_token_only_rows(corpus, model, capsys, tmp_path,
                                               monkeypatch):
    _, expected, _ = run(capsys, "crf_test", "-m", model, corpus["test"])
    out = tmp_path / "out.txt"
    assert run(capsys, "crf_test", "-m", model, "-o", out, corpus["test"])[1] == ""
    assert out.read_text() == expected
    # No file: stdin, as CRF++.
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(corpus["test"].read_text()))
    assert run(capsys, "crf_test", "-m", model)[1] == expected
    # Rows without the gold column are tagged the same.
    bare = tmp_path / "bare.txt"
    write_conll(bare, [[r[:2] for r in s] for s in corpus["rows"][120:]])
    _, out_bare, _ = run(capsys, "crf_test", "-m", model, bare)
    assert [line.split("\t")[-1] for line in out_bare.splitlines()] == \
        [line.split("\t")[-1] for line in expected.splitlines()]
    # Two files: one after the other.
    _, two, _ = run(capsys, "crf_test", "-m", model, corpus["test"], corpus["test"])
    assert two == expected * 2


# --------------------------------------------------------------------------- #
# The objectives: CRF++'s C mapped onto fastcrf's c1 / c2, checked at the optimum #
# --------------------------------------------------------------------------- #


def _gradient(crf, rows):
    from helpers import fitted_gradient

    X = template_features(rows)
    y = [[r[-1] for r in s] for s in rows]
    return fitted_gradient(crf, X, y)


def test_crf_l2_minimises_crfpp_objective(corpus, tmp_path, capsys):
    """At the fitted weights w, the gradient of CRF++'s L2 objective
    -LL + ||w||^2 / (2C) vanishes: fastcrf's c2 is 1/(2C)."""
    C = 0.5
    path = tmp_path / "l2"
    assert run(capsys, "crf_learn", "-c", C, "-e", "1e-9", corpus["template"],
               corpus["train"], path)[0] == 0
    crf = CRF.load(path)
    w, g = _gradient(crf, corpus["rows"][:120])
    # g is the log-likelihood's gradient; the objective's is -g + w / C.
    for grad_ll, weights in ((g.state, w.state), (g.transitions, w.transitions)):
        scale = np.abs(grad_ll).max()
        assert np.abs(-grad_ll + weights / C).max() < 1e-3 * scale
    # Not the gradient of the objective with the other common reading, ||w||^2 / C.
    assert np.abs(-g.state + 2 * w.state / C).max() > 0.1 * np.abs(g.state).max()


def test_crf_l1_minimises_crfpp_objective(corpus, tmp_path, capsys):
    """CRF-L1: -LL + ||w||_1 / C; at the optimum |dLL/dw| = 1/C where w != 0 (with the
    sign of w) and <= 1/C where w = 0."""
    C = 0.5
    path = tmp_path / "l1"
    status, out, _ = run(capsys, "crf_learn", "-a", "crf-l1", "-c", C, "-e", "1e-9",
                         corpus["template"], corpus["train"], path)
    assert status == 0 and "Algorithm:           CRF-L1" in out
    crf = CRF.load(path)
    w, g = _gradient(crf, corpus["rows"][:120])
    state, grad = w.state, g.state
    nonzero = state != 0
    assert 0 < nonzero.sum() < state.size  # L1 zeroes some weights
    assert np.abs(grad[nonzero] - np.sign(state[nonzero]) / C).max() < 1e-2 / C
    assert np.abs(grad[~nonzero]).max() <= 1 / C * (1 + 1e-2)


def test_mira(corpus, tmp_path, capsys):
    path = tmp_path / "mira"
    status, out, _ = run(capsys, "crf_learn", "-a", "MIRA", "-m", "5", "-c", "1",
                         corpus["template"], corpus["train"], path)
    assert status == 0
    assert len(re.findall(r"^iter=\d+ loss=", out, re.M)) <= 5
    crf = CRF.load(path)
    assert crf.training_log_.algorithm == "pa" and crf.n_iter_ <= 5
    assert crf.get_params()["c"] == 1.0 and crf.get_params()["pa_type"] == 1
    X = template_features(corpus["rows"][120:])
    assert crf.score(X, corpus["gold"]) > 0.8


# --------------------------------------------------------------------------- #
# The other flags                                                                #
# --------------------------------------------------------------------------- #


def test_freq_cutoff(corpus, tmp_path, capsys):
    counts = {}
    for sentence in template_features(corpus["rows"][:120]):
        for token in sentence:
            for name in token:
                counts[name] = counts.get(name, 0) + 1
    for f in (1, 3):
        path = tmp_path / f"f{f}"
        assert run(capsys, "crf_learn", "-f", f, "-m", "3", corpus["template"],
                   corpus["train"], path)[0] == 0
        kept = set(CRF.load(path).attributes_)
        assert kept == {name for name, n in counts.items() if n >= f}


def test_threads_do_not_change_the_model(corpus, tmp_path, capsys):
    weights = []
    for p in (1, 2):
        path = tmp_path / f"p{p}"
        status, out, _ = run(capsys, "crf_learn", "-p", p, "-m", "5", corpus["template"],
                             corpus["train"], path)
        assert status == 0 and f"Number of thread(s): {p}" in out
        weights.append(CRF.load(path).state_weights_)
    np.testing.assert_array_equal(*weights)


def test_maxiter_and_eta(corpus, tmp_path, capsys):
    status, out, _ = run(capsys, "crf_learn", "-m", "3", corpus["template"],
                         corpus["train"], tmp_path / "m3")
    assert status == 0
    assert re.findall(r"^iter=(\d+) ", out, re.M) == ["0", "1", "2"]
    assert CRF.load(tmp_path / "m3").n_iter_ == 3
    iterations = []
    for eta in ("0.1", "1e-7"):
        _, out, _ = run(capsys, "crf_learn", "-e", eta, corpus["template"], corpus["train"],
                        tmp_path / "e")
        diffs = [float(d) for d in re.findall(r" diff=(\S+)", out)]
        iterations.append(len(diffs))
        # CRF++'s rule: it stops after three iterations in a row below eta (the log
        # rounds to 5 decimals, so it is checked at the coarse eta).
        if eta == "0.1":
            assert all(d < 0.1 for d in diffs[-3:])
            assert not all(d < 0.1 for d in diffs[-4:-1]) or len(diffs) == 3
    assert iterations[0] < iterations[1]


def test_template_without_b_learns_no_transitions(corpus, tmp_path, capsys):
    template = tmp_path / "unigram_only"
    template.write_text(TEMPLATE.replace("\nB\n", "\n"))
    path = tmp_path / "nob"
    assert run(capsys, "crf_learn", "-m", "5", "-t", template, corpus["train"],
               path)[0] == 0
    crf = CRF.load(path)
    assert np.all(crf.transition_weights_ == 0)
    text = (tmp_path / "nob.txt").read_text()
    assert "\nB\n" not in text and " B\n" not in text


def test_conditioned_bigram_lines_are_learned(corpus, tmp_path, capsys):
    # B01:%x[0,1] in place of B: transitions conditioned on the word class, and no
    # plain label-transition weights (tests/test_edges_cli.py checks what they learn).
    template = tmp_path / "cond"
    template.write_text(TEMPLATE.replace("\nB\n", "\nB01:%x[0,1]\n"))
    path = tmp_path / "cond_model"
    status, out, err = run(capsys, "crf_learn", "-m", "3", template, corpus["train"], path)
    assert status == 0, err
    assert "not supported" not in err
    model = CRF.load(path)
    assert np.all(model.transition_weights_ == 0)
    assert np.any(model._model.edge_weights != 0)
    # CRF++'s text model (-t) cannot hold them yet: refused before training.
    fails(capsys, "crf_learn", "-t", template, corpus["train"], tmp_path / "m2",
          match="-t")
    # fastcrf learn --help says what happens to such lines.
    assert run(capsys, "crf_learn", "--help")[0] == 0


def test_help_documents_the_mapping(capsys):
    status, out, _ = run(capsys, "crf_learn", "--help")
    assert status == 0
    for text in ("1/(2C)", "1/C", "CRF-L1", "MIRA", "observation-conditioned",
                 "MODEL.txt"):
        assert text in out
    status, out, _ = run(capsys, "crf_test", "--help")
    assert status == 0 and "-v 2" in out and "n-best" in out


# --------------------------------------------------------------------------- #
# CRF++'s text model                                                             #
# --------------------------------------------------------------------------- #


def test_text_model_round_trip(corpus, model, tmp_path, capsys):
    text = (corpus["folder"] / "model.txt").read_text()
    head = text.split("\n\n")[0].splitlines()
    crf = CRF.load(model)
    K, A = len(crf.classes_), crf.num_attributes_
    assert head == ["version: 100", "cost-factor: 1", f"maxid: {A * K + K * K}",
                    "xsize: 2"]
    converted = tmp_path / "converted"
    status, out, _ = run(capsys, "crf_learn", "-C", corpus["folder"] / "model.txt",
                         converted)
    assert status == 0 and "converted" in out
    back = CRF.load(converted)
    assert back.classes_ == crf.classes_
    order = [back.attributes_.index(a) for a in crf.attributes_]
    np.testing.assert_allclose(back.state_weights_[order], crf.state_weights_,
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(back.transition_weights_, crf.transition_weights_,
                               rtol=0, atol=1e-15)
    # Tagging with the converted model, or the text model itself, is the same.
    outputs = [run(capsys, "crf_test", "-v2", "-m", m, corpus["test"])[1]
               for m in (model, converted, corpus["folder"] / "model.txt")]
    assert outputs[0] == outputs[1] == outputs[2]


def _sections(text):
    return text.split("\n\n")


def _with_labels(text, n):
    """``text`` listing ``n`` more labels (so K x K transitions far exceed its weights)."""
    parts = _sections(text)
    parts[1] += "".join(f"\nEXTRA{i}" for i in range(n))
    return "\n\n".join(parts)


@pytest.mark.parametrize("damage, match", [
    (lambda t: t[: t.index("\n\n")], "ends inside the header"),
    (lambda t: "\n\n".join(_sections(t)[:2]), "ends inside the labels"),
    (lambda t: "\n\n".join(_sections(t)[:3]), "ends inside the template"),
    (lambda t: "\n\n".join(_sections(t)[:4]), "ends inside the features"),
    (lambda t: t.rsplit("\n", 3)[0] + "\n", "maxid is .* but .* weights follow"),
    (lambda t: t.replace("maxid: ", "maxid: x"), "maxid must be a positive integer"),
    (lambda t: t.replace("xsize: 2\n", ""), "the header has no 'xsize'"),
    (lambda t: t.replace("xsize: 2", "xsize: 1"), "template reads column 1"),
    (lambda t: t.replace("cost-factor: 1", "cost-factor:1"), "header line is 'key: value'"),
    (lambda t: t[: t.rindex("\n", 0, -1)] + "\nabc\n", "weight 'abc' is not a number"),
    (lambda t: t[: t.rindex("\n", 0, -1)] + "\nnan\n", "is not finite"),
    (lambda t: re.sub(r"\n\d+ B\n", "\n999999 B\n", t), "past maxid"),
    (lambda t: re.sub(r"\n\d+ B\n", "\nx B\n", t), "a feature line is 'id key'"),
    (lambda t: re.sub(r"\n(\d+) B\n", r"\n\1 B01:NN\n", t), "observation-conditioned"),
    (lambda t: re.sub(r"\n(\d+) B\n", r"\n\1 X\n", t), "neither a unigram"),
    (lambda t: t.replace("\nB\n\n", "\nQ\n\n"), "starts with U"),
    (lambda t: _with_labels(t, 9000), "transition weights are far more"),
])
def test_text_model_errors(corpus, model, tmp_path, capsys, damage, match):
    text = (corpus["folder"] / "model.txt").read_text()
    bad = tmp_path / "bad.txt"
    bad.write_text(damage(text))
    fails(capsys, "crf_learn", "-C", bad, tmp_path / "out", match=match)
    fails(capsys, "crf_test", "-m", bad, corpus["test"], match=match)
    assert not (tmp_path / "out").exists()


def test_text_model_writer_refuses_what_crfpp_cannot_hold(corpus):
    crf = CRF(algorithm="lbfgs", max_iterations=3).fit(
        template_features(corpus["rows"][:40]), [[r[-1] for r in s]
                                                 for s in corpus["rows"][:40]])
    with pytest.raises(ValueError, match="start/end scores"):
        format_text_model(crf._model, Template(TEMPLATE), 2)


# --------------------------------------------------------------------------- #
# Errors: named, one line, before any data is read                              #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("flags, match", [
    (["-c", "0"], r"-c \(--cost\) must be a finite number > 0, got 0.0"),
    (["-c", "-1"], r"-c \(--cost\) must be"),
    (["-c", "inf"], r"-c \(--cost\) must be"),
    (["-e", "0"], r"-e \(--eta\) must be a finite number > 0"),
    (["-m", "0"], r"-m \(--maxiter\) must be >= 1, got 0"),
    (["-f", "-1"], r"-f \(--freq\) must be >= 0, got -1"),
    (["-p", "-2"], r"-p \(--thread\) must be >= 0"),
    (["-H", "0"], r"-H \(--shrinking-size\) must be >= 1"),
    (["-a", "SVM"], r"unknown algorithm 'SVM'; choose CRF, CRF-L2, CRF-L1 or MIRA"),
])
def test_learn_flags_checked_before_the_data(flags, match, tmp_path, capsys):
    # The files do not exist: the flag's error comes first.
    fails(capsys, "crf_learn", *flags, tmp_path / "t", tmp_path / "train", tmp_path / "m",
          match=match)


@pytest.mark.parametrize("flags, match", [
    (["-c", "x"], r"argument -c/--cost: invalid float value: 'x'"),
    (["-m", "1.5"], r"argument -m/--maxiter: invalid int value"),
    (["--bogus"], r"unrecognized arguments: --bogus"),
])
def test_learn_malformed_flags_are_usage_errors(flags, match, capsys):
    fails(capsys, "crf_learn", *flags, "t", "train", "m", match=match, status=2)


def test_learn_file_errors(corpus, tmp_path, capsys):
    t, train = corpus["template"], corpus["train"]
    fails(capsys, "crf_learn", t, train, match=r"takes TEMPLATE TRAIN MODEL, got 2")
    fails(capsys, "crf_learn", "-C", t, match=r"takes TEXTMODEL MODEL \(with -C\), got 1")
    fails(capsys, "crf_learn", tmp_path / "none", train, tmp_path / "m",
          match="no such template file")
    fails(capsys, "crf_learn", t, tmp_path / "none", tmp_path / "m",
          match="no such file or directory")
    fails(capsys, "crf_learn", t, train, tmp_path / "no" / "m",
          match="cannot write the model .*: no such folder")
    wide = tmp_path / "wide"
    wide.write_text("U00:%x[0,5]\nB\n")
    fails(capsys, "crf_learn", wide, train, tmp_path / "m",
          match="the template reads column 5 but the rows have 2 token columns")
    single = tmp_path / "single"
    single.write_text("a\nb\n")
    fails(capsys, "crf_learn", t, single, tmp_path / "m", match="rows have a single field")
    ragged = tmp_path / "ragged"
    ragged.write_text("a b X\nc Y\n")
    fails(capsys, "crf_learn", t, ragged, tmp_path / "m", match="line 2: expected 3 fields")
    fails(capsys, "crf_learn", "-C", tmp_path / "none.txt", tmp_path / "m",
          match="no such file or directory")
    assert not (tmp_path / "m").exists()


def test_test_errors(corpus, model, tmp_path, capsys):
    test = corpus["test"]
    fails(capsys, "crf_test", test, match="crf_test needs -m MODEL")
    fails(capsys, "crf_test", "-v", "3", "-m", model, test,
          match=r"-v \(--verbose\) must be 0, 1 or 2")
    fails(capsys, "crf_test", "-n", "-1", "-m", model, test,
          match=r"-n \(--nbest\) must be >= 0")
    fails(capsys, "crf_test", "-c", "0", "-m", model, test,
          match=r"-c \(--cost-factor\) must be a finite number > 0")
    fails(capsys, "crf_test", "-m", tmp_path / "none", test, match="no such model file")
    fails(capsys, "crf_test", "-m", tmp_path, test, match="a folder, not a model file")
    fails(capsys, "crf_test", "-m", model, tmp_path / "none", match="no such file or directory")
    fails(capsys, "crf_test", "-m", model, "-o", tmp_path / "no" / "out", test,
          match="cannot write the output .*: no such folder")
    crfpp_binary = tmp_path / "crfpp.model"
    crfpp_binary.write_bytes((100).to_bytes(4, "little") + b"\0" * 60)
    fails(capsys, "crf_test", "-m", crfpp_binary, test,
          match="a CRF\\+\\+ binary model, which fastcrf does not read; .*crf_learn -C")
    junk = tmp_path / "junk"
    junk.write_bytes(b"\xff" * 40)
    fails(capsys, "crf_test", "-m", junk, test, match="not a model file")
    crfsuite = tmp_path / "m.crfsuite"
    from fastcrf.pycrfsuite import Trainer

    trainer = Trainer(verbose=False)
    trainer.append([["a"], ["b"]], ["X", "Y"])
    trainer.train(str(crfsuite))
    fails(capsys, "crf_test", "-m", crfsuite, test,
          match="CRFsuite model holds no feature template")
    plain = tmp_path / "plain.npz"
    CRF(algorithm="lbfgs", max_iterations=2).fit([[["a"], ["b"]]], [["X", "Y"]]).save(plain)
    fails(capsys, "crf_test", "-m", plain, test, match="holds no feature template")
    narrow = tmp_path / "narrow"
    narrow.write_text("w1\nw2\n")
    fails(capsys, "crf_test", "-m", model, narrow,
          match="rows have 1 field; the model reads 2 token columns")


# --------------------------------------------------------------------------- #
# The console scripts                                                            #
# --------------------------------------------------------------------------- #


def _script(name):
    folder = os.path.dirname(sys.executable)
    path = shutil.which(name, path=folder) or shutil.which(name)
    if path is None:
        pytest.skip(f"the {name} console script is not installed (pip install -e .)")
    return path


def test_console_scripts(corpus, model, tmp_path):
    learn, test = _script("fastcrf-crf_learn"), _script("fastcrf-crf_test")
    path = tmp_path / "m"
    proc = subprocess.run([learn, "-m", "3", str(corpus["template"]), str(corpus["train"]),
                           str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([test, "-m", str(path), str(corpus["test"])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(parse_output(proc.stdout)) == len(corpus["gold"])
    proc = subprocess.run([test, "-v", "7", "-m", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "fastcrf: error: -v (--verbose) must be 0, 1 or 2, got 7\n"


def test_console_script_entry_points(corpus, model, capsys):
    from fastcrf._crfpp_cli import learn_main, test_main

    assert test_main(["-m", str(model), str(corpus["test"])]) == 0
    assert len(parse_output(capsys.readouterr().out)) == len(corpus["gold"])
    assert learn_main(["-a", "nope", "t", "x", "m"]) == 1
    assert "unknown algorithm 'nope'" in capsys.readouterr().err


def _euc_jp_corpus(folder):
    """Train / test files in EUC-JP (not UTF-8), labels included: place names
    tagged '地名', the rest 'O', one character per row with its character class."""
    rng = np.random.default_rng(3)
    words = [("東京", "地名"), ("大阪", "地名"), ("は", "O"), ("に", "O"),
             ("行く", "O"), ("アメリカ", "地名"), ("です", "O")]
    classes = {"東": "漢字", "京": "漢字", "大": "漢字", "阪": "漢字", "行": "漢字"}

    def sentences(n):
        out = []
        for _ in range(n):
            rows = []
            for i in rng.integers(0, len(words), size=rng.integers(3, 8)):
                word, tag = words[i]
                for j, ch in enumerate(word):
                    label = tag if tag == "O" else ("B-" if j == 0 else "I-") + tag
                    rows.append((ch, classes.get(ch, "かな"), label))
            out.append(rows)
        return out

    def write(path, sents):
        text = "\n\n".join("\n".join(" ".join(r) for r in s) for s in sents) + "\n\n"
        path.write_bytes(text.encode("euc_jp"))
        return sents

    template = folder / "template"
    template.write_text("U00:%x[-1,0]\nU01:%x[0,0]\nU02:%x[1,0]\nU03:%x[0,1]\n\nB\n")
    train = write(folder / "train.data", sentences(60))
    test = write(folder / "test.data", sentences(20))
    return template, folder / "train.data", folder / "test.data", train, test


def test_eight_bit_data_is_read_and_printed_byte_for_byte(tmp_path, capsys):
    # CRF++ never decodes its files: data in EUC-JP (as its Japanese examples are)
    # must train, tag, and come back in EUC-JP, not fail as invalid UTF-8.
    template, train, test, _, gold = _euc_jp_corpus(tmp_path)
    model = tmp_path / "model"
    code, out, err = run(capsys, "crf_learn", "-t", "-f", "1", "-c", "4.0", template,
                         train, model)
    assert code == 0, err
    out_path = tmp_path / "tagged"
    code, _, err = run(capsys, "crf_test", "-m", model, "-o", out_path, test)
    assert code == 0, err
    tagged = [[line.split("\t") for line in block.splitlines()]
              for block in out_path.read_bytes().decode("euc_jp").strip().split("\n\n")]
    assert [[tuple(r[:3]) for r in s] for s in tagged] == gold
    predicted = [r[3] for s in tagged for r in s]
    expected = [r[2] for s in gold for r in s]
    assert predicted == expected  # the task is separable by the character itself
    # The text model is written in the data's bytes, and read back as such.
    assert "B-地名".encode("euc_jp") in (tmp_path / "model.txt").read_bytes()
    text_out = tmp_path / "tagged2"
    code, _, err = run(capsys, "crf_test", "-m", tmp_path / "model.txt", "-o", text_out,
                       test)
    assert code == 0, err
    assert text_out.read_bytes() == out_path.read_bytes()


def test_utf8_model_tags_a_file_with_stray_bytes(corpus, model, tmp_path, capsys):
    # A Latin-1 byte in a test file of a UTF-8 (here ASCII) model: CRF++ tags the row
    # (the token is unknown) and prints it back unchanged; so does crf_test.
    text = corpus["test"].read_bytes()
    first = text.split(b" ", 1)[0]
    odd = tmp_path / "odd.txt"
    odd.write_bytes(text.replace(first, first + b"\xe9", 1))
    out = tmp_path / "out.txt"
    code, _, err = run(capsys, "crf_test", "-m", model, "-o", out, odd)
    assert code == 0, err
    tagged = out.read_bytes().split(b"\n")
    assert tagged[0].startswith(first + b"\xe9\t")
    plain = tmp_path / "plain.txt"
    assert run(capsys, "crf_test", "-m", model, "-o", plain, corpus["test"])[0] == 0
    assert len(tagged) == len(plain.read_bytes().split(b"\n"))


def test_eight_bit_data_through_standard_streams(tmp_path):
    template, train, test, _, _ = _euc_jp_corpus(tmp_path)
    learn, crf_test = _script("fastcrf-crf_learn"), _script("fastcrf-crf_test")
    model = tmp_path / "model"
    # A UTF-8 locale, whose text streams would refuse EUC-JP bytes.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIO"))}
    env.update(LC_ALL="C.UTF-8", PYTHONUTF8="0")
    proc = subprocess.run([learn, str(template), "-", str(model)], env=env,
                          input=train.read_bytes(), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([crf_test, "-m", str(model)], input=test.read_bytes(),
                          env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode("euc_jp").splitlines()
    inputs = test.read_bytes().decode("euc_jp").splitlines()
    assert len(lines) == len(inputs)
    assert all(o.split("\t")[:3] == i.split() for o, i in zip(lines, inputs) if i)


# --------------------------------------------------------------------------- #
# Against CRF++ itself (crfpy bundles it), when installed                       #
# --------------------------------------------------------------------------- #


def crfpp(tool, *argv, cwd):
    """Run CRF++'s ``crf_learn`` or ``crf_test`` (from crfpy) in a child process."""
    pytest.importorskip("CRFPP", reason="CRF++ (pip install crfpy) is not installed")
    code = f"import sys, CRFPP; sys.exit(CRFPP.crfpp_{tool}(sys.argv[1:]) or 0)"
    proc = subprocess.run([sys.executable, "-c", code, tool, *map(str, argv)],
                          capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _compare_outputs(ours, theirs):
    """Same rows and labels; probabilities to 1e-4 (CRF++ tags with float32 weights)."""
    a, b = parse_output(ours), parse_output(theirs)
    assert len(a) == len(b)
    for (ha, fa), (hb, fb) in zip(a, b):
        assert (ha is None) == (hb is None)
        if ha is not None:
            assert ha.split()[:-1] == hb.split()[:-1]
            assert float(ha.split()[-1]) == pytest.approx(float(hb.split()[-1]), abs=1e-4)
        for ra, rb in zip(fa, fb):
            assert len(ra) == len(rb)
            for x, y in zip(ra, rb):
                if "/" in x:
                    (la, pa), (lb, pb) = x.rsplit("/", 1), y.rsplit("/", 1)
                    assert la == lb
                    assert float(pa) == pytest.approx(float(pb), abs=1e-4)
                else:
                    assert x == y


def test_crfpp_tags_a_fastcrf_text_model_alike(corpus, model, tmp_path, capsys):
    # fastcrf's text model -> CRF++'s binary model (crf_learn -C) -> CRF++'s crf_test.
    crfpp("learn", "-C", corpus["folder"] / "model.txt", tmp_path / "crfpp.model",
          cwd=tmp_path)
    for v in ("0", "1", "2"):
        theirs = crfpp("test", "-v", v, "-m", tmp_path / "crfpp.model", corpus["test"],
                       cwd=tmp_path)
        _, ours, _ = run(capsys, "crf_test", "-v", v, "-m", model, corpus["test"])
        _compare_outputs(ours, theirs)
    theirs = crfpp("test", "-n", "1", "-m", tmp_path / "crfpp.model", corpus["test"],
                   cwd=tmp_path)
    _compare_outputs(run(capsys, "crf_test", "-n", "1", "-m", model, corpus["test"])[1],
                     theirs)


def test_crfpp_text_model_read_by_fastcrf(corpus, tmp_path, capsys):
    # CRF++ trains (L2, C=2) and writes its text model; fastcrf converts and tags it.
    crfpp("learn", "-t", "-c", "2", corpus["template"], corpus["train"],
          tmp_path / "theirs", cwd=tmp_path)
    converted = tmp_path / "converted"
    assert run(capsys, "crf_learn", "-C", tmp_path / "theirs.txt", converted)[0] == 0
    theirs = crfpp("test", "-v2", "-m", tmp_path / "theirs", corpus["test"], cwd=tmp_path)
    _compare_outputs(run(capsys, "crf_test", "-v2", "-m", converted, corpus["test"])[1],
                     theirs)


def test_crfpp_and_fastcrf_reach_the_same_l2_optimum(corpus, model, tmp_path):
    """Same objective, same optimum: CRF++'s weights (from its text model) against
    fastcrf's, both trained with -c 2 on the same file."""
    crfpp("learn", "-t", "-c", "2", "-e", "1e-7", corpus["template"], corpus["train"],
          tmp_path / "theirs", cwd=tmp_path)
    theirs, _, _ = parse_text_model((tmp_path / "theirs.txt").read_text())
    ours = CRF.load(model)._model
    assert theirs.classes == ours.classes
    order = [theirs.vocabulary.names.index(a) for a in ours.vocabulary.names]
    scale = np.abs(theirs.state_weights()).max()
    assert np.abs(theirs.state_weights()[order] - ours.state_weights()).max() < 0.02 * scale
    np.testing.assert_allclose(theirs.transitions, ours.transitions, atol=0.02 * scale)


# --------------------------------------------------------------------------- #
# The streamed training route                                                   #
# --------------------------------------------------------------------------- #


def _learned(capsys, monkeypatch, argv, data=None):
    """The saved model of ``crf_learn ARGV`` (its output folded into the result),
    read from ``data`` on standard input when given (the list route)."""
    import io

    from fastcrf._persist import load_model

    if data is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    status, out, err = run(capsys, "crf_learn", *argv)
    assert status == 0, err
    model, params = load_model(argv[-1])
    return model, params, re.sub(r"[\d.]+ s\b", "", out)


@pytest.mark.parametrize("flags", [(), ("-f", "2"), ("-a", "CRF-L1"), ("-a", "MIRA")])
def test_streamed_file_trains_the_model_of_the_lists(corpus, tmp_path, capsys,
                                                     monkeypatch, flags):
    # A file is streamed into flat arrays; standard input still builds per-token
    # lists.  Both must save the same model, weight for weight.
    from fastcrf import _crfpp_cli

    calls = []
    streamed = _crfpp_cli._streamed_training
    monkeypatch.setattr(_crfpp_cli, "_streamed_training",
                        lambda *a: calls.append(a) or streamed(*a))
    train = tmp_path / "train.txt"
    # -DOCSTART- is an ordinary row to CRF++, in both routes.
    train.write_bytes(b"-DOCSTART- -X- O\n\n" * 2 + corpus["train"].read_bytes())
    common = ["-m", "4", *flags, corpus["template"]]
    ma, pa, out_a = _learned(capsys, monkeypatch, [*common, train, tmp_path / "file"])
    assert len(calls) == 1
    mb, pb, out_b = _learned(capsys, monkeypatch, [*common, "-", tmp_path / "stdin"],
                             data=train.read_bytes())
    assert len(calls) == 1
    assert out_a == out_b
    assert any("-DOCSTART-" in name for name in ma.vocabulary.names)
    assert ma.classes == mb.classes and ma.vocabulary.names == mb.vocabulary.names
    assert ma.state.tobytes() == mb.state.tobytes()
    assert ma.chain.tobytes() == mb.chain.tobytes()
    assert ma.metadata == mb.metadata and pa == pb


@pytest.mark.parametrize("late", [False, True])
def test_streamed_eight_bit_file_trains_the_model_of_the_lists(tmp_path, capsys,
                                                               monkeypatch, late):
    # Not UTF-8 from the first row (EUC-JP), or only in the last sentence: the file is
    # read again byte for byte, as the lists read it.
    template, train, _, _, _ = _euc_jp_corpus(tmp_path)
    if late:
        train.write_bytes("東 漢字 B-地名\n\n".encode() + train.read_bytes())
    argv = ["-m", "3", template]
    ma, _, out_a = _learned(capsys, monkeypatch, [*argv, train, tmp_path / "file"])
    mb, _, out_b = _learned(capsys, monkeypatch, [*argv, "-", tmp_path / "stdin"],
                            data=train.read_bytes())
    assert out_a == out_b
    assert ma.metadata["crfpp"]["encoding"] == "latin-1" == mb.metadata["crfpp"]["encoding"]
    assert ma.vocabulary.names == mb.vocabulary.names and ma.classes == mb.classes
    assert ma.state.tobytes() == mb.state.tobytes()
    assert ma.chain.tobytes() == mb.chain.tobytes()
