"""Wapiti's command line, ``fastcrf wapiti train | label | dump``, and its pattern
language (fastcrf._wapiti_patterns): the regular expressions against a backtracking
matcher written here, the vectorised patterns against the token-by-token reference,
the objective's scaling, every output mode of ``label``, and the errors."""

import random
import re
import string
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_cli as run

from fastcrf._wapiti_cli import _load, _split_labels, check_report, read_data
from fastcrf._wapiti_patterns import PatternSet, translate_regex

PATTERNS = """\
# word window and shapes
u:w=%x[0,0]
u:wp=%x[-1,0]
u:wn=%x[1,0]
U:low=%X[0,0]
u:pw=%x[-1,0]/%x[0,0]
*:cap=%t[0,0,"^\\u"]
u:suf=%m[0,0,".?.?$"]
u:tag=%x[0,1]
b
"""


# --------------------------------------------------------------------------- #
# Data                                                                          #
# --------------------------------------------------------------------------- #

NAMES = ["Paris", "London", "Bob", "Alice", "Rome", "Oslo", "Kim", "Lee"]
WORDS = ["the", "a", "runs", "eats", "big", "small", "in", "at", "of", "to", "sees"]


def make_corpus(n, seed):
    """Sequences of (word, tag, label): runs of capitalised names are entities (B-ENT
    then I-ENT), everything else O; the label of a name depends on its left
    neighbour, so the transitions matter."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        rows, prev = [], "O"
        for _ in range(rng.randint(2, 10)):
            if rng.random() < 0.35:
                w = rng.choice(NAMES)
                label = "B-ENT" if prev == "O" else "I-ENT"
            else:
                w, label = rng.choice(WORDS), "O"
            rows.append((w, "NNP" if w[0].isupper() else "X", label))
            prev = label
        out.append(rows)
    return out


def write(path, corpus, with_labels=True):
    text = "\n\n".join("\n".join(" ".join(r if with_labels else r[:-1]) for r in s)
                       for s in corpus)
    path.write_text(text + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wapiti")
    train, test = make_corpus(300, 1), make_corpus(120, 2)
    paths = {"train": write(folder / "train.txt", train),
             "test": write(folder / "test.txt", test),
             "raw": write(folder / "raw.txt", test, with_labels=False),
             "pattern": folder / "pattern.txt", "model": folder / "model.fcrf",
             "folder": folder, "gold": test}
    paths["pattern"].write_text(PATTERNS)
    return paths


@pytest.fixture(scope="module")
def model(files):
    from fastcrf import cli

    status = cli.main(["wapiti", "train", "-p", str(files["pattern"]), "-i", "60",
                       str(files["train"]), str(files["model"])])
    assert status == 0
    return files["model"]


def fails(capsys, *argv, match, status=1):
    code, _, err = run(capsys, *argv)
    assert code == status, err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("fastcrf: error: "), err
    assert re.search(match, lines[-1]), lines[-1]


def blocks(text):
    """The output's sequences: lists of rows (lists of tab-separated fields)."""
    return [[line.split("\t") for line in b.split("\n")]
            for b in text.strip("\n").split("\n\n")]


# --------------------------------------------------------------------------- #
# Regular expressions                                                           #
# --------------------------------------------------------------------------- #

_CTYPE = {"d": str.isdigit, "a": str.isalpha, "w": str.isalnum, "l": str.islower,
          "u": str.isupper, "p": lambda c: c in string.punctuation,
          "s": lambda c: c in " \t\n\r\f\v"}


def _one(atom, c):
    if atom == ".":
        return True
    if atom[0] == "\\":
        test = _CTYPE.get(atom[1].lower())
        if test is None:
            return c == atom[1]
        return test(c) != atom[1].isupper()
    return c == atom


def _here(rx, i, s, j):
    """End of a match of rx[i:] at s[j:], trying alternatives in Wapiti's order (a
    star: fewest repetitions first; an option: with the character first)."""
    if i == len(rx):
        return j
    if rx[i:] == "$":
        return j if j == len(s) else None
    atom = rx[i:i + 2] if rx[i] == "\\" else rx[i]
    nxt = i + len(atom)
    op = rx[nxt] if nxt < len(rx) else ""
    if op == "*":
        k = j
        while True:
            end = _here(rx, nxt + 1, s, k)
            if end is not None:
                return end
            if k < len(s) and _one(atom, s[k]):
                k += 1
            else:
                return None
    if op == "?":
        if j < len(s) and _one(atom, s[j]):
            end = _here(rx, nxt + 1, s, j + 1)
            if end is not None:
                return end
        return _here(rx, nxt + 1, s, j)
    if j < len(s) and _one(atom, s[j]):
        return _here(rx, nxt, s, j + 1)
    return None


def reference_search(rx, s):
    """The first (start, end) Wapiti's matcher finds, or None."""
    starts = [0] if rx.startswith("^") else range(len(s) + 1)
    body = rx[1:] if rx.startswith("^") else rx
    for j in starts:
        end = _here(body, 0, s, j)
        if end is not None:
            return j, end
    return None


def random_regex(rng):
    atoms = ["a", "b", "A", "1", ".", "-", "\\d", "\\u", "\\l", "\\a", "\\w", "\\p",
             "\\s", "\\D", "\\U", "\\W", "\\.", "\\*"]
    parts = ["^"] if rng.random() < 0.3 else []
    for _ in range(rng.randint(1, 4)):
        parts.append(rng.choice(atoms) + rng.choice(["", "", "*", "?"]))
    if rng.random() < 0.3:
        parts.append("$")
    return "".join(parts)


def test_regex_matches_as_wapiti_backtracking():
    rng = random.Random(0)
    checked = 0
    for _ in range(400):
        rx = random_regex(rng)
        compiled = re.compile(translate_regex(rx))
        for _ in range(15):
            s = "".join(rng.choice("aAb1-. *") for _ in range(rng.randint(0, 7)))
            want = reference_search(rx, s)
            got = compiled.search(s)
            assert (got.span() if got else None) == want, (rx, s)
            checked += want is not None
    assert checked > 1000  # plenty of matches, not only misses


@pytest.mark.parametrize("rx, text, found", [
    ("^\\u\\u*$", "ABC", "ABC"), ("^\\u\\u*$", "AbC", None), ("^.?.?.?", "abcdef", "abc"),
    ("\\d\\d*", "ab12c", "1"), ("\\d\\d*$", "ab12", "12"), ("x$y", "ax$y", "x$y"),
])
def test_regex_examples(rx, text, found):
    m = re.search(translate_regex(rx), text)
    assert (m.group(0) if m else None) == found


@pytest.mark.parametrize("rx", ["*a", "a**", "a?*", "ab\\"])
def test_regex_errors(rx):
    with pytest.raises(ValueError, match="regular expression"):
        translate_regex(rx)


# --------------------------------------------------------------------------- #
# Patterns                                                                      #
# --------------------------------------------------------------------------- #


def random_sentences(rng, n):
    vocab = ["Ab", "cd", "EF", "g1", "7", "-", "x.y", "Zz"]
    return [[(rng.choice(vocab), rng.choice(vocab), str(rng.randint(-2, 2)))
             for _ in range(rng.randint(1, 7))] for _ in range(n)]


MIXED = """\
u:a=%x[0,0]/%x[-2,1]   # a comment
b:b=%x[1,0]
*:c=%x[-1,1]
U:%X[0,0]
u:t=%t[0,0,"^\\u"]|%T[1,1,"\\d"]
*:m=%m[-1,0,"\\l\\l*"]
u:abs=%x[@1,0]/%x[@-1,1]
B:ind=%x[*2,0]
u:far=%x[-9,0]/%x[10,1]
u:bias
b
"""


def test_vectorised_patterns_equal_the_reference():
    p = PatternSet(MIXED)
    rng = random.Random(3)
    sentences = random_sentences(rng, 60)
    fast, slow = p.features(sentences), p.reference_features(sentences)
    assert [[sorted(t) for t in s] for s in fast] == [[sorted(t) for t in s] for s in slow]
    assert p.transitions and p.has_edges and p.n_columns == 3


def test_pattern_semantics():
    p = PatternSet(MIXED)
    s = [("Ab", "cd", "1"), ("x.y", "EF", "-1"), ("g1", "7", "0")]
    f = p.features([s])[0]
    assert "Uu:a=Ab/_B-2" in f[0] and "Uu:a=g1/cd" in f[2]
    assert "Uu:ab" in f[0]                          # %X lower-cases
    assert "Uu:t=true|false" in f[0] and "Uu:t=false|true" in f[1]
    assert "Uu:abs=Ab/7" in f[1]                    # @1: first token, @-1: last
    assert "Bb:ind=g1" in f[2]                      # field 2 of token 2 is 0
    assert "Bb:ind=Ab" in f[1]                      # field 2 of token 1 is -1
    assert "Uu:far=_B-8/_B+8" in f[0]
    assert "U*:m=_" not in f[0] and "U*:m=" in f[0]  # no lower-case letter in _B-1
    assert "U*:m=x" in f[2]                         # leftmost, fewest repetitions
    # b and * give transition attributes, never at the first token; u never does.
    assert not any(a.startswith("B") for a in f[0])
    assert {"B*:c=EF", "B*:m=x"} <= set(f[2])
    assert not any(a.startswith("Bu") for t in f for a in t)
    assert "Uu:bias" in f[1] and "Bb" not in f[1]   # the plain b: transitions only


@pytest.mark.parametrize("text, match", [
    ("x:%x[0,0]\n", "line 1 .*starts with u .*b .*\\*"),
    ("u:%y[0,0]\n", "unknown command %y"),
    ("u\nu:%x[0]\n", "line 2 .*malformed command"),
    ("u:%x[0,0\n", "missing '\\]'"),
    ('u:%t[0,0,"abc]\n', "unterminated regular expression"),
    ("u:%t[0,0]\n", "needs a regular expression in quotes"),
    ('u:%m[0,0,"*a"]\n', "unescaped '\\*'"),
    ("# nothing\n\n", "holds no pattern"),
])
def test_pattern_errors_name_the_line(text, match):
    with pytest.raises(ValueError, match=match):
        PatternSet(text)


def test_rows_too_short_are_named():
    p = PatternSet("u:%x[0,0]\nu:%x[0,2]\n")
    with pytest.raises(ValueError, match="data: sequence 1, token 2 has 2 fields; "
                       "pattern line 2"):
        p.check_rows([[("a", "b", "c"), ("a", "b")]], "data")


# --------------------------------------------------------------------------- #
# train / label                                                                 #
# --------------------------------------------------------------------------- #


def test_round_trip_accuracy(capsys, files, model):
    code, out, err = run(capsys, "wapiti", "label", "-m", model, "-c", files["test"])
    assert code == 0, err
    got = blocks(out)
    assert len(got) == len(files["gold"])
    pairs = [(row[0].split()[-1], row[1]) for b in got for row in b]
    accuracy = np.mean([g == p for g, p in pairs])
    assert accuracy > 0.97
    # Each output line is the input line, a tab, the label.
    assert got[0][0][0] == " ".join(files["gold"][0][0])
    # -c's report agrees with the output.
    wrong = sum(g != p for g, p in pairs)
    assert f"Token error   : {100.0 * wrong / len(pairs):5.2f}%" in err
    assert "* Per label statistics" in err and "B-ENT" in err


def test_label_only_and_output_file(capsys, files, model, tmp_path):
    out_path = tmp_path / "out.txt"
    code, out, err = run(capsys, "wapiti", "label", "-m", model, "-l", files["raw"],
                         out_path)
    assert code == 0 and out == "", err
    got = blocks(out_path.read_text())
    assert all(len(row) == 1 for b in got for row in b)
    assert [len(b) for b in got] == [len(s) for s in files["gold"]]


def test_scores_viterbi_and_nbest(capsys, files, model):
    code, out, _ = run(capsys, "wapiti", "label", "-m", model, "-s", "-n", "3",
                       files["raw"])
    assert code == 0
    text = out.split("\n\n")
    heads = [b for b in text if b.startswith("# ")]
    assert len(heads) >= 3 * len(files["gold"]) - 5   # sequences of one token: fewer
    seq_scores = []
    for b in heads:
        lines = b.split("\n")
        n, score = lines[0][2:].split()
        toks = [float(line.rsplit("/", 1)[1]) for line in lines[1:]]
        # The raw path score is the sum of its positions' scores.
        assert sum(toks) == pytest.approx(float(score), abs=1e-5 * len(toks))
        seq_scores.append((int(n), float(score)))
    # The n-best come in descending score from 0.
    for (n0, s0), (n1, s1) in zip(seq_scores, seq_scores[1:]):
        if n1 == n0 + 1:
            assert s1 <= s0 + 1e-9


def test_nbest_first_is_viterbi(capsys, files, model):
    _, one, _ = run(capsys, "wapiti", "label", "-m", model, files["raw"])
    _, three, _ = run(capsys, "wapiti", "label", "-m", model, "-n", "3", files["raw"])
    best = blocks(one)
    listed = blocks(three)
    # Every sequence is printed up to three times; its first is the Viterbi one.
    i = 0
    for b in best:
        assert listed[i] == b
        i += 1
        while i < len(listed) and [r[0] for r in listed[i]] == [r[0] for r in b] \
                and listed[i] != b:
            i += 1
    assert i == len(listed)


def test_posterior_scores(capsys, files, model):
    code, out, _ = run(capsys, "wapiti", "label", "-m", model, "-p", "-s", files["raw"])
    assert code == 0
    fitted, patterns = _load(str(model))
    sequences, _ = read_data(str(files["raw"]))
    X = fitted.encode(patterns.features([[f for _, f in s] for s in sequences]))
    marg = fitted.marginals(X)
    pos = 0
    for b in out.strip("\n").split("\n\n"):
        lines = b.split("\n")
        score = float(lines[0].split()[2])
        probs = []
        for line in lines[1:]:
            label, p = line.rsplit("\t", 1)[1].rsplit("/", 1)
            k = fitted.classes.index(label)
            # Posterior decoding: each token's most probable label and its marginal.
            assert k == int(np.argmax(marg[pos]))
            assert float(p) == pytest.approx(marg[pos, k], abs=1e-6)
            probs.append(marg[pos, k])
            pos += 1
        assert score == pytest.approx(np.prod(probs), abs=1e-6)
    assert pos == len(marg)


def test_objective_is_wapitis(capsys, files, tmp_path):
    """The objective fastcrf minimises is Wapiti's -LL + rho1 |w|_1 + rho2/2 ||w||^2,
    computed here from the saved model."""
    path = tmp_path / "m.fcrf"
    code, _, err = run(capsys, "wapiti", "train", "-p", files["pattern"], "-i", "7",
                       "-1", "0.3", "-2", "0.5", "-w", "0", files["train"], path)
    assert code == 0, err
    last = float(re.findall(r"obj=(\S+)", err)[-1])
    fitted, patterns = _load(str(path))
    sequences, _ = read_data(str(files["train"]))
    tokens, y = _split_labels(sequences)
    X = fitted.encode(patterns.features(tokens))
    index = {c: k for k, c in enumerate(fitted.classes)}
    codes = np.array([index[label] for s in y for label in s])
    w = np.concatenate([fitted.state_weights().ravel(), fitted.transitions.ravel(),
                        fitted.edge_weights.ravel()])
    objective = -fitted.log_probability(X, codes).sum() + 0.3 * np.abs(w).sum() \
        + 0.5 / 2 * (w ** 2).sum()
    assert objective == pytest.approx(last, abs=0.006)
    assert not fitted.start.any() and not fitted.end.any()   # Wapiti has none


def test_iteration_cap_and_windows(capsys, files, tmp_path):
    path = tmp_path / "m.fcrf"
    _, _, err = run(capsys, "wapiti", "train", "-p", files["pattern"], "-i", "3",
                    files["train"], path)
    assert len(re.findall(r"^  \[ *\d+\] obj=", err, re.M)) == 3
    # The error window stops as soon as -w rates agree within -e points.
    _, _, err = run(capsys, "wapiti", "train", "-p", files["pattern"], "-w", "2", "-e",
                    "100", files["train"], path)
    assert len(re.findall(r"^  \[ *\d+\] obj=", err, re.M)) == 2


def test_devel_set_measures_errors(capsys, files, tmp_path):
    path = tmp_path / "m.fcrf"
    half = tmp_path / "half.txt"
    write(half, files["gold"][:7])
    code, _, err = run(capsys, "wapiti", "train", "-p", files["pattern"], "-i", "2",
                       "-d", half, files["train"], path)
    assert code == 0 and "Load development data" in err
    # With 7 sequences, a sequence error rate is a multiple of 1/7.
    for se in re.findall(r"err=\s*[\d.]+%/\s*([\d.]+)%", err):
        assert round(float(se) * 7 / 100, 2) == round(float(se) * 7 / 100)


def test_sgd_l1_and_compact(capsys, files, tmp_path):
    path = tmp_path / "sgd.fcrf"
    code, _, err = run(capsys, "wapiti", "train", "-a", "sgd-l1", "-p", files["pattern"],
                       "-1", "2", "-i", "10", "-c", files["train"], path)
    assert code == 0, err
    removed = int(re.search(r"(\d+) observations removed", err).group(1))
    assert removed > 0
    fitted, _ = _load(str(path))
    assert np.all(np.any(fitted.state_weights() != 0, axis=1))
    code, out, err = run(capsys, "wapiti", "label", "-m", path, "-c", files["test"])
    pairs = [(r[0].split()[-1], r[1]) for b in blocks(out) for r in b]
    assert np.mean([g == p for g, p in pairs]) > 0.9


def test_compact_keeps_the_labelling(capsys, files, tmp_path):
    a, b = tmp_path / "a.fcrf", tmp_path / "b.fcrf"
    for path, extra in ((a, []), (b, ["-c"])):
        code, _, err = run(capsys, "wapiti", "train", "-p", files["pattern"], "-1", "1",
                           "-i", "15", *extra, files["train"], path)
        assert code == 0, err
    outs = [run(capsys, "wapiti", "label", "-m", p, "-s", files["raw"])[1] for p in (a, b)]
    assert outs[0] == outs[1]
    assert _load(str(b))[0].layout.n_attributes < _load(str(a))[0].layout.n_attributes


def test_without_patterns_fields_are_observations(capsys, tmp_path):
    corpus = make_corpus(200, 5)
    rows = [[(f"u:w={w}", f"*:t={tag}", "b", label) for w, tag, label in s]
            for s in corpus]
    train = write(tmp_path / "t.txt", rows)
    path = tmp_path / "m.fcrf"
    code, _, err = run(capsys, "wapiti", "train", "-i", "40", train, path)
    assert code == 0, err
    fitted, pattern = _load(str(path))
    assert pattern is None and type(fitted).__name__ == "EdgeCRFModel"
    code, out, _ = run(capsys, "wapiti", "label", "-m", path, "-c", train)
    pairs = [(r[0].split()[-1], r[1]) for b in blocks(out) for r in b]
    assert np.mean([g == p for g, p in pairs]) > 0.97
    bad = write(tmp_path / "bad.txt", [[("word", "O")]])
    fails(capsys, "wapiti", "train", bad, path, match="starting with u, b or \\*, got "
          "'word'")


def test_warm_start_from_model(capsys, files, model, tmp_path):
    path = tmp_path / "again.fcrf"
    code, _, err = run(capsys, "wapiti", "train", "-m", model, "-i", "2", files["train"],
                       path)
    assert code == 0, err
    # The patterns come from the model; starting at its optimum, the error is low.
    first = float(re.search(r"err=\s*([\d.]+)%", err).group(1))
    assert first < 3.0


@pytest.mark.parametrize("bigram", ["b\n", ""])
def test_unigram_patterns_give_a_plain_model(capsys, files, tmp_path, bigram):
    """Without bigram commands the model has no transition attributes; without a
    plain b line it has no transition weights either (as in Wapiti)."""
    pattern = tmp_path / "p.txt"
    pattern.write_text("u:%x[0,0]\nu:%x[-1,0]\nu:%x[0,1]\n" + bigram)
    path = tmp_path / "m.fcrf"
    code, _, err = run(capsys, "wapiti", "train", "-p", pattern, "-i", "30",
                       files["train"], path)
    assert code == 0, err
    fitted, _ = _load(str(path))
    assert not hasattr(fitted, "edge_weights")
    assert fitted.transitions.any() == bool(bigram)
    code, out, _ = run(capsys, "wapiti", "label", "-m", path, "-s", files["test"])
    assert code == 0
    for b in out.strip("\n").split("\n\n"):
        lines = b.split("\n")
        toks = [float(line.rsplit("/", 1)[1]) for line in lines[1:]]
        assert sum(toks) == pytest.approx(float(lines[0].split()[2]), abs=1e-5 * len(toks))
    pairs = [(r[0].split()[-1], r[1]) for b in blocks(out) for r in b if r[0][0] != "#"]
    assert np.mean([g == p for g, p in pairs]) > (0.97 if bigram else 0.8)


def test_dump(capsys, model, tmp_path):
    code, out, _ = run(capsys, "wapiti", "dump", model)
    assert code == 0
    fitted, _ = _load(str(model))
    lines = [line.split("\t") for line in out.split("\n") if line]
    n_nonzero = (np.count_nonzero(fitted.state_weights())
                 + np.count_nonzero(fitted.edge_weights)
                 + np.count_nonzero(fitted.transitions))
    assert len(lines) == n_nonzero
    assert all(len(f) == 4 for f in lines)
    unigram = [f for f in lines if f[1] == "#"]
    assert unigram and all(f[0][0] in "u*" for f in unigram)
    assert any(f[0] == "b" for f in lines) and any(f[0].startswith("*:cap") and f[1] != "#"
                                                  for f in lines)
    assert all(re.fullmatch(r"-?\d+\.\d{5}", f[3]) for f in lines)
    out_path = tmp_path / "dump.txt"
    code, _, _ = run(capsys, "wapiti", "dump", "--prec", "2", "--all", model, out_path)
    assert code == 0
    assert len(out_path.read_text().strip().split("\n")) > len(lines)


def test_check_report_counts():
    text = check_report(["A", "B"], [["A", "B", "Z"], ["B"]],
                        [np.array([0, 0, 1]), np.array([1])])
    assert "Nb sequences  : 2" in text
    # The unknown Z is no error (Wapiti skips it) but counts as a token.
    assert "Token error   : 25.00%" in text
    assert "Sequence error: 50.00%" in text
    assert "A       Pr=0.50  Rc=1.00  F1=0.67" in text
    assert "B       Pr=1.00  Rc=0.50  F1=0.67" in text


# --------------------------------------------------------------------------- #
# Errors                                                                        #
# --------------------------------------------------------------------------- #


def test_bad_train_options(capsys, files, tmp_path):
    m = tmp_path / "m.fcrf"
    base = ["wapiti", "train", "-p", files["pattern"]]
    fails(capsys, *base, "-a", "bcd", files["train"], m, match="'bcd' is not implemented")
    fails(capsys, *base, "-a", "newton", files["train"], m, match="unknown algorithm")
    fails(capsys, *base, "-T", "memm", files["train"], m, match="-T .*only 'crf'")
    fails(capsys, *base, "--rho1=-1", files["train"], m, match="-1 \\(--rho1\\) must be")
    fails(capsys, *base, "-2", "nan", files["train"], m, match="-2 \\(--rho2\\) must be")
    fails(capsys, *base, "-t", "0", files["train"], m, match="--nthread")
    fails(capsys, *base, "-o", "0", files["train"], m, match="--objwin")
    fails(capsys, *base, "-i", "x", files["train"], m, match="-i", status=2)
    fails(capsys, *base, match="train takes \\[INPUT\\] MODEL, got 0")
    fails(capsys, *base, files["train"], tmp_path / "no" / "m", match="no such folder")
    fails(capsys, "wapiti", "train", "-p", tmp_path / "none", files["train"], m,
          match="-p \\(--pattern\\): no such file")
    bad = tmp_path / "bad.pat"
    bad.write_text("u:%x[0,0]\nq:%x[0,1]\n")
    fails(capsys, "wapiti", "train", "-p", bad, files["train"], m,
          match="bad.pat: pattern line 2 \\('q:%x\\[0,1\\]'\\)")
    wide = tmp_path / "wide.pat"
    wide.write_text("u:%x[0,5]\n")
    fails(capsys, "wapiti", "train", "-p", wide, files["train"], m,
          match="sequence 1, token 1 has 2 fields; pattern line 1")
    fails(capsys, "wapiti", match="needs a mode")


def test_bad_label_options(capsys, files, model, tmp_path):
    fails(capsys, "wapiti", "label", files["raw"], match="needs -m MODEL")
    fails(capsys, "wapiti", "label", "-m", model, "-n", "0", files["raw"],
          match="-n \\(--nbest\\) must be >= 1")
    fails(capsys, "wapiti", "label", "-m", tmp_path / "none", match="no such model")
    own = tmp_path / "wapiti.mdl"
    own.write_text("#mdl#2#12\n#rdr#3/2/0\n")
    fails(capsys, "wapiti", "label", "-m", own, files["raw"],
          match="not a Wapiti model file \\(expected a string at byte 21\\)")
    own.write_text("#mdl#1#0\n#rdr#0/0/0\n#qrk#0\n#qrk#0\n")
    fails(capsys, "wapiti", "label", "-m", own, files["raw"], match="a Wapiti MEMM model")
    (tmp_path / "junk").write_text("hello")
    fails(capsys, "wapiti", "label", "-m", tmp_path / "junk", files["raw"],
          match="not a model file")
    from fastcrf import CRF

    other = tmp_path / "other.fcrf"
    CRF(algorithm="lbfgs", max_iterations=2).fit([[["a"]]], [["A"]]).save(str(other))
    fails(capsys, "wapiti", "label", "-m", other, files["raw"],
          match="not written by 'fastcrf wapiti train'")
    fails(capsys, "wapiti", "label", "-m", model, tmp_path / "none.txt",
          match="no such file")
    fails(capsys, "wapiti", "dump", match="dump takes MODEL")


# --------------------------------------------------------------------------- #
# Console script and subprocesses                                               #
# --------------------------------------------------------------------------- #


def test_subprocess_round_trip(files, tmp_path):
    (tmp_path / "pattern.txt").write_text(PATTERNS)
    write(tmp_path / "train.txt", make_corpus(150, 7))
    write(tmp_path / "test.txt", make_corpus(40, 8), with_labels=False)
    py = [sys.executable, "-m", "fastcrf", "wapiti"]
    r = subprocess.run(py + ["train", "-p", "pattern.txt", "-i", "40", "train.txt",
                             "model"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # Input on stdin, output to stdout, as Wapiti's defaults.
    r = subprocess.run(py + ["label", "-m", "model"], cwd=tmp_path, capture_output=True,
                       text=True, input=(tmp_path / "test.txt").read_text())
    assert r.returncode == 0, r.stderr
    got = blocks(r.stdout)
    assert len(got) == 40 and all(len(row) == 2 for b in got for row in b)
    r = subprocess.run(py + ["train", "-a", "rprop", "train.txt", "m2"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "not implemented" in r.stderr
    assert not (tmp_path / "m2").exists()


def test_dash_output_is_standard_output(files, model, tmp_path):
    # 'wapiti label -m MODEL - -' reads stdin and writes stdout, as Wapiti; the
    # second '-' used to be a file named '-'.
    py = [sys.executable, "-m", "fastcrf", "wapiti"]
    raw = files["raw"].read_text()
    r = subprocess.run(py + ["label", "-m", str(model), "-l", "-", "-"], cwd=tmp_path,
                       input=raw, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    want = subprocess.run(py + ["label", "-m", str(model), "-l", str(files["raw"])],
                          cwd=tmp_path, capture_output=True, text=True)
    assert r.stdout == want.stdout and want.stdout
    r = subprocess.run(py + ["dump", str(model), "-"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\t") > 0
    assert list(tmp_path.iterdir()) == []


def test_console_script_entry(capsys, files, model):
    from fastcrf._wapiti_cli import main

    assert main(["label", "-m", str(model), "-l", str(files["raw"])]) == 0
    out = capsys.readouterr().out
    assert out.count("\n\n") == len(files["gold"])


# --------------------------------------------------------------------------- #
# Models written by Wapiti                                                      #
# --------------------------------------------------------------------------- #

WAPITI_PATTERNS = ["u:w=%x[0,0]", "*:c=%X[-1,0]", "b:n=%x[1,0]", "b"]
WAPITI_LABELS = ["X", "Y", "Z"]


def observations(words, t):
    """Wapiti's observations of the patterns above at token t: (unigram, bigram)."""
    before = words[t - 1].lower() if t > 0 else "_x-1"
    after = words[t + 1] if t + 1 < len(words) else "_x+1"
    return [f"u:w={words[t]}", f"*:c={before}"], [f"*:c={before}", f"b:n={after}", "b"]


def netstring(text):
    return f"{len(text.encode())}:{text},\n"


def wapiti_model_file(path, sentences, seed, typed=True):
    """A model file as Wapiti writes it (model.c, reader.c, quark.c), with random
    weights; returns ({obs: unigram weights}, {obs: bigram weights})."""
    rng = np.random.default_rng(seed)
    seen = []
    for words in sentences:
        for t in range(len(words)):
            for obs in sum(observations(words, t), []):
                if obs not in seen:
                    seen.append(obs)
    seen.append("u:w=never")
    rng.shuffle(seen)
    Y = len(WAPITI_LABELS)
    uni, bi, theta = {}, {}, []
    for obs in seen:
        if obs[0] in "u*":
            uni[obs] = np.round(rng.normal(size=Y), 3) * (rng.random(Y) < 0.8)
            theta.extend(uni[obs])
        if obs[0] in "b*":
            bi[obs] = np.round(rng.normal(size=(Y, Y)), 3) * (rng.random((Y, Y)) < 0.8)
            theta.extend(bi[obs].ravel())
    active = [(f, w) for f, w in enumerate(theta) if w != 0.0]
    text = (f"#mdl#2#{len(active)}\n" if typed else f"#mdl#{len(active)}\n")
    text += f"#rdr#{len(WAPITI_PATTERNS)}/1/0\n" if typed else f"#rdr#{len(WAPITI_PATTERNS)}/1\n"
    text += "".join(netstring(p) for p in WAPITI_PATTERNS)
    text += f"#qrk#{Y}\n" + "".join(netstring(label) for label in WAPITI_LABELS)
    text += f"#qrk#{len(seen)}\n" + "".join(netstring(o) for o in seen)
    text += "".join(f"{f}={float(w).hex()}\n" for f, w in active)
    path.write_text(text)
    return uni, bi, len(active)


def brute_force(words, uni, bi):
    """Every labelling's raw Wapiti score, best first."""
    import itertools

    Y = len(WAPITI_LABELS)
    scored = []
    for ys in itertools.product(range(Y), repeat=len(words)):
        s = 0.0
        for t, y in enumerate(ys):
            u_obs, b_obs = observations(words, t)
            s += sum(uni[o][y] for o in u_obs)
            if t > 0:   # Wapiti scores no bigram at the first position
                s += sum(bi[o][ys[t - 1], y] for o in b_obs)
        scored.append((s, ys))
    return sorted(scored, key=lambda p: -p[0])


@pytest.mark.parametrize("typed", [True, False])
def test_reads_wapiti_model_files(capsys, tmp_path, typed):
    rng = random.Random(4)
    sentences = [[rng.choice(["Ab", "cd", "Ef", "gH"]) for _ in range(rng.randint(1, 5))]
                 for _ in range(12)]
    path = tmp_path / "model.wapiti"
    uni, bi, n_active = wapiti_model_file(path, sentences, seed=5, typed=typed)
    data = tmp_path / "data.txt"
    data.write_text("\n\n".join("\n".join(s) for s in sentences) + "\n")
    code, out, err = run(capsys, "wapiti", "label", "-m", path, "-s", "-n", "3", data)
    assert code == 0, err
    listed = out.strip("\n").split("\n\n")
    i = 0
    for words in sentences:
        want = brute_force(words, uni, bi)
        for n in range(min(3, len(want))):
            lines = listed[i].split("\n")
            i += 1
            assert lines[0].startswith(f"# {n} ")
            assert float(lines[0].split()[2]) == pytest.approx(want[n][0], abs=1e-5)
            got = [line.split("\t")[1] for line in lines[1:]]
            if n == 0 or abs(want[n][0] - want[n - 1][0]) > 1e-9:
                assert got == [WAPITI_LABELS[y] for y in want[n][1]]
    assert i == len(listed)
    # dump lists every weight the file holds.
    code, out, _ = run(capsys, "wapiti", "dump", path)
    assert code == 0 and len([line for line in out.split("\n") if line]) == n_active
    # A Wapiti model also starts a training (its patterns, its names for the
    # positions outside a sequence).
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("\n\n".join("\n".join(f"{w} {'X' if w[0].isupper() else 'Y'}"
                                              for w in s) for s in sentences) + "\n")
    code, _, err = run(capsys, "wapiti", "train", "-m", path, "-i", "3", labelled,
                       tmp_path / "again.fcrf")
    assert code == 0, err
    _, patterns = _load(str(tmp_path / "again.fcrf"))
    assert patterns.wapiti_names


def test_byte_order_marks_are_dropped(capsys, files, model, tmp_path):
    # Files saved by Windows editors: the mark must not join the first pattern line
    # or the first token (whose word observation would silently never match).
    bom = b"\xef\xbb\xbf"
    pattern = tmp_path / "pattern.txt"
    pattern.write_bytes(bom + files["pattern"].read_bytes().replace(b"\n", b"\r\n"))
    raw = tmp_path / "raw.txt"
    raw.write_bytes(bom + files["raw"].read_bytes())
    code, plain, err = run(capsys, "wapiti", "label", "-m", model, "-s", files["raw"])
    assert code == 0, err
    code, marked, err = run(capsys, "wapiti", "label", "-m", model, "-s", raw)
    assert code == 0, err
    assert marked == plain
    sequences, _ = read_data(str(raw))
    assert sequences[0][0][1][0] == files["raw"].read_text().split()[0]
    both = []
    for p, data in ((files["pattern"], files["train"]), (pattern, files["train"])):
        out = tmp_path / f"m{len(both)}.fcrf"
        code, _, err = run(capsys, "wapiti", "train", "-p", p, "-i", "5", data, out)
        assert code == 0, err
        code, dumped, err = run(capsys, "wapiti", "dump", out)
        assert code == 0, err
        both.append(dumped)
    assert both[0] == both[1]


def test_labels_keep_their_bytes_beside_latin1_input(capsys, tmp_path):
    # A UTF-8 model whose labels lie outside Latin-1, and an input that is not
    # UTF-8: each is written as read (as Wapiti, which never decodes), where
    # re-encoding the labels as Latin-1 failed.
    train = tmp_path / "train.txt"
    train.write_text("big A B\u2192\nred B I\u2192\n\nlow A B\u2192\n\n", "utf-8")
    pattern = tmp_path / "pattern.txt"
    pattern.write_text("u:w=%x[0,0]\nu:p=%x[0,1]\nb\n")
    model = tmp_path / "model.fcrf"
    code, _, err = run(capsys, "wapiti", "train", "-p", pattern, "-1", "0", train, model)
    assert code == 0, err
    rows = [b"caf\xe9 A", b"red B"]
    data = tmp_path / "data.txt"
    data.write_bytes(b"\n".join(rows) + b"\n\n")
    out = tmp_path / "out.txt"
    code, _, err = run(capsys, "wapiti", "label", "-m", model, data, out)
    assert code == 0, err
    arrows = ["B\u2192".encode(), "I\u2192".encode()]
    assert out.read_bytes() == b"".join(r + b"\t" + a + b"\n" for r, a in
                                        zip(rows, arrows)) + b"\n"
    # -c: the reference labels (UTF-8 bytes in a Latin-1 read file) are the model's.
    checked = tmp_path / "checked.txt"
    checked.write_bytes(b"\n".join(r + b" " + a for r, a in zip(rows, arrows)) + b"\n")
    code, _, err = run(capsys, "wapiti", "label", "-c", "-m", model, checked, out)
    assert code == 0, err
    assert "Token error   :  0.00%" in err
    assert re.search("B\u2192 +Pr=1.00  Rc=1.00", err), err


def test_huge_nbest_lists_every_labelling(capsys, model, tmp_path):
    # -n larger than the labellings a sequence has lists them all, where it asked
    # for memory for every one of the -n ('out of memory').
    data = tmp_path / "data.txt"
    data.write_text("Bob X\nruns X\n\nthe X\n\n")
    code, every, err = run(capsys, "wapiti", "label", "-m", model, "-s", "-n",
                           str(10 ** 12), data)
    assert code == 0, err
    K = 3   # O, B-ENT, I-ENT
    assert every.count("# ") == K ** 2 + K
    code, exact, err = run(capsys, "wapiti", "label", "-m", model, "-s", "-n",
                           str(K ** 2), data)
    assert code == 0, err
    assert exact == every


def test_gzip_data_is_decompressed(capsys, files, model, tmp_path):
    # A .gz input was read as its compressed bytes: garbage tokens, labelled with
    # status 0. It reads as fastcrf's other commands read it; a cut one is refused.
    import gzip

    packed = tmp_path / "raw.txt.gz"
    packed.write_bytes(gzip.compress(files["raw"].read_bytes()))
    code, plain, err = run(capsys, "wapiti", "label", "-m", model, files["raw"])
    assert code == 0, err
    code, out, err = run(capsys, "wapiti", "label", "-m", model, packed)
    assert code == 0, err
    assert out == plain
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed.read_bytes()[:-12])
    fails(capsys, "wapiti", "label", "-m", model, cut,
          match="cut.gz: not a readable gzip file")


def test_bigram_only_patterns_say_what_to_add(capsys, files, tmp_path):
    # Wapiti trains 'b' alone; fastcrf needs a state attribute, and said so in CRF++
    # words ('X holds no attributes ... template with no U lines').
    m = tmp_path / "m.fcrf"
    for text in ("b\n", "b:%x[0,0]\n"):
        pattern = tmp_path / "pattern.txt"
        pattern.write_text(text)
        fails(capsys, "wapiti", "train", "-p", pattern, files["train"], m,
              match="train.txt: no unigram observation: fastcrf needs a u or \\* "
                    "pattern \\(a constant 'u' line")
        pattern.write_text("u\n" + text)
        code, _, err = run(capsys, "wapiti", "train", "-i", "3", "-p", pattern,
                           files["train"], m)
        assert code == 0, err
    labels_only = tmp_path / "labels.txt"
    labels_only.write_text("O\nB-ENT\n\nO\n")
    fails(capsys, "wapiti", "train", labels_only, m,
          match="labels.txt: no observation \\(without -p")


def test_warm_start_takes_new_labels(capsys, files, model, tmp_path):
    # train -m's help said 'no new labels'; a label the model lacks is learnt.
    data = tmp_path / "data.txt"
    data.write_text("Bob NNP B-NEW\nruns X O\n\nKim NNP B-NEW\n\n")
    out = tmp_path / "again.fcrf"
    code, _, err = run(capsys, "wapiti", "train", "-m", model, "-1", "0", "-i", "30",
                       data, out)
    assert code == 0, err
    loaded, _ = _load(str(out))
    assert "B-NEW" in loaded.classes
    code, labelled, err = run(capsys, "wapiti", "label", "-m", out, "-l", "-c", data)
    assert code == 0, err
    assert labelled.split() == ["B-NEW", "O", "B-NEW"]
    code, helped, _ = run(capsys, "wapiti", "train", "-h")
    assert "no new labels" not in helped


def test_a_folder_as_output_is_refused_before_work(capsys, files, model, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for argv in (["train", "-p", files["pattern"], files["train"], folder],
                 ["label", "-m", model, files["raw"], folder],
                 ["dump", model, folder]):
        code, _, err = run(capsys, "wapiti", *argv)
        assert code == 1
        # One line, and for train before the training starts (no progress line).
        assert err.strip().splitlines() == [
            f"fastcrf: error: cannot write {str(folder)!r}: it is a folder"]
    assert list(folder.iterdir()) == []


def test_truncated_wapiti_model_is_refused(capsys, tmp_path):
    # A file cut inside its last weight still parses as a number ('-1.5' -> '-1.'):
    # only the missing end of line tells, and it must not load a wrong weight.
    text = ("#mdl#2#2\n#rdr#2/1/0\n11:u:w=%x[0,0],\n1:b,\n#qrk#2\n1:A,\n1:B,\n"
            "#qrk#2\n5:u:w=x,\n1:b,\n0=0x1p+0\n5=-1.5\n")
    whole = tmp_path / "whole.wapiti"
    whole.write_text(text)
    code, out, err = run(capsys, "wapiti", "dump", whole)
    assert code == 0, err
    assert "b\tB\tB\t-1.50000" in out
    for cut in (1, 2, 3):
        part = tmp_path / f"cut{cut}.wapiti"
        part.write_text(text[:-cut])
        fails(capsys, "wapiti", "dump", part,
              match=f"cut{cut}.wapiti: not a Wapiti model file \\(expected an "
                    "index=weight line")


@pytest.mark.parametrize("weight", ["nan", "inf", "-0x1.0p+1024"])
def test_non_finite_wapiti_weights_are_refused(capsys, tmp_path, weight):
    # A diverged training's file loaded, dumped 'nan' and failed only when labelling
    # with a message naming no file.
    path = tmp_path / "bad.wapiti"
    path.write_text("#mdl#2#1\n#rdr#1/1/0\n11:u:w=%x[0,0],\n#qrk#2\n1:A,\n1:B,\n"
                    f"#qrk#1\n5:u:w=x,\n1={weight}\n")
    for argv in (["dump", path], ["label", "-m", path, path]):
        fails(capsys, "wapiti", *argv,
              match="bad.wapiti: not a Wapiti model file " + re.escape(f"(the weight "
                                                                    f"b'{weight}'"))


def test_wapiti_names_outside_the_sequence():
    p = PatternSet("u:%x[-1,0]/%x[-5,0]/%x[1,0]/%x[6,0]\n", wapiti_names=True)
    assert p.features([[("a",), ("b",)]])[0][0] == ["Uu:_x-1/_x-#/b/_x+#"]
    assert p.features([[("a",), ("b",)]])[0][1] == ["Uu:a/_x-4/_x+1/_x+#"]


# --------------------------------------------------------------------------- #
# The streamed training route                                                   #
# --------------------------------------------------------------------------- #


X_ONLY = "u:w=%x[0,0]\nu:pw=%x[-1,0]/%x[0,0]\nu:t=%x[0,1]\nb\n"


def _trained(capsys, monkeypatch, argv, data=None):
    """The saved model of ``wapiti train ARGV`` and its progress lines without their
    times, reading ``data`` on standard input when given (the list route)."""
    import io

    from fastcrf._persist import load_model

    if data is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, _, err = run(capsys, "wapiti", "train", *argv)
    assert code == 0, err
    model, params = load_model(str(argv[-1]))
    return model, params, re.sub(r"time=\S+|[\d.]+ s of", "", err)


def test_only_x_unigram_patterns_stream():
    assert PatternSet(X_ONLY).template is not None
    assert PatternSet(PATTERNS).template is None               # %t, %m, * lines
    assert PatternSet("u:w=%x[0,0]\nb:n=%x[1,0]\n").template is None   # bigram obs
    assert PatternSet(X_ONLY, wapiti_names=True).template is None


@pytest.mark.parametrize("flags", [("-i", "6"), ("-a", "sgd-l1", "-i", "3")])
def test_streamed_file_trains_the_model_of_the_lists(capsys, files, tmp_path,
                                                     monkeypatch, flags):
    from fastcrf import _wapiti_cli

    calls = []
    streamed = _wapiti_cli._streamed_training
    monkeypatch.setattr(_wapiti_cli, "_streamed_training",
                        lambda *a: calls.append(streamed(*a)) or calls[-1])
    pattern = tmp_path / "p.txt"
    pattern.write_text(X_ONLY)
    train = tmp_path / "train.txt"
    # -DOCSTART- is an ordinary row to Wapiti, in both routes.
    train.write_bytes(b"-DOCSTART- -X- O\n\n" + files["train"].read_bytes())
    common = ["-p", pattern, *flags]
    ma, pa, err_a = _trained(capsys, monkeypatch, [*common, train, tmp_path / "file"])
    mb, pb, err_b = _trained(capsys, monkeypatch, [*common, "-", tmp_path / "stdin"],
                             data=train.read_bytes())
    assert calls[0] is not None and calls[1] is None
    assert err_a == err_b and "err=" in err_a
    assert any("-DOCSTART-" in name for name in ma.vocabulary.names)
    assert ma.classes == mb.classes and ma.vocabulary.names == mb.vocabulary.names
    assert ma.state.tobytes() == mb.state.tobytes()
    assert ma.chain.tobytes() == mb.chain.tobytes()
    assert ma.metadata == mb.metadata and pa == pb


def test_streamed_route_warm_start_and_what_it_leaves_to_the_lists(
        capsys, files, tmp_path, monkeypatch):
    from fastcrf import _wapiti_cli

    pattern = tmp_path / "p.txt"
    pattern.write_text(X_ONLY)
    first = tmp_path / "first"
    _trained(capsys, monkeypatch, ["-p", pattern, "-i", "3", files["train"], first])
    # A warm start streams too, and continues as the lists do.
    argv = ["-m", first, "-i", "3"]
    ma, _, err_a = _trained(capsys, monkeypatch, [*argv, files["train"], tmp_path / "a"])
    mb, _, err_b = _trained(capsys, monkeypatch, [*argv, "-", tmp_path / "b"],
                            data=files["train"].read_bytes())
    assert err_a == err_b
    assert ma.state.tobytes() == mb.state.tobytes()
    # Rows of different lengths (Wapiti reads the last field as the label) and
    # Latin-1 bytes: the first goes to the lists, the second streams as Latin-1.
    ragged = tmp_path / "ragged.txt"
    ragged.write_bytes(b"a x O\nb y z O\n\nc y B-ENT\n")
    assert _wapiti_cli._streamed_training(PatternSet(X_ONLY), str(ragged)) is None
    _trained(capsys, monkeypatch, ["-p", pattern, "-i", "2", ragged, tmp_path / "r"])
    latin = tmp_path / "latin.txt"
    latin.write_bytes(files["train"].read_bytes() + b"\n\xe9t\xe9 X O\n")
    dataset, encoding = _wapiti_cli._streamed_training(PatternSet(X_ONLY), str(latin))
    assert encoding == "latin-1" and any("\xe9t\xe9" in a for a in dataset.attributes)
