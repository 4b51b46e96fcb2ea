"""conlleval-exact chunk metrics.

The hand-worked cases below were reasoned out from conlleval.pl's startOfChunk and
endOfChunk rules, and every expected count and report was then checked against a run
of conlleval.pl (version 2004-01-26) on the same tags, and for ``scheme="IOBES"``
against the IOBES-extended conlleval.pl (the original plus the S and E-B rules).
``test_against_perl`` repeats that comparison on random corpora when the scripts are
available (``FASTCRF_CONLLEVAL`` and optionally ``FASTCRF_CONLLEVAL_IOBES`` give their
paths).
"""

import os
import random
import shutil
import subprocess

import pytest
from _data import conll2000_file

from fastcrf import metrics
from fastcrf.metrics import chunk_scores, classification_report


def counts(s):
    return s.n_true, s.n_pred, s.n_correct, s.n_correct_tags, s.n_tokens


class TestChunkRules:
    def test_iob2(self):
        yt = [["B-NP", "I-NP", "O", "B-VP", "B-PP", "B-NP"]]
        yp = [["B-NP", "I-NP", "O", "B-NP", "B-PP", "I-PP"]]
        s = chunk_scores(yt, yp)
        # true: NP(0-1) VP(3) PP(4) NP(5); pred: NP(0-1) NP(3) PP(4-5)
        assert counts(s) == (4, 3, 1, 4, 6)
        assert s.report() == (
            "processed 6 tokens with 4 phrases; found: 3 phrases; correct: 1.\n"
            "accuracy:  66.67%; precision:  33.33%; recall:  25.00%; FB1:  28.57\n"
            "               NP: precision:  50.00%; recall:  50.00%; FB1:  50.00  2\n"
            "               PP: precision:   0.00%; recall:   0.00%; FB1:   0.00  1\n"
            "               VP: precision:   0.00%; recall:   0.00%; FB1:   0.00  0\n"
        )
        assert s.precision == pytest.approx(1 / 3)
        assert s.recall == pytest.approx(1 / 4)
        assert s.f1 == pytest.approx(2 / 7)
        assert s.per_type["NP"].f1 == pytest.approx(0.5)
        assert list(s.per_type) == ["NP", "PP", "VP"]

    def test_iob1_b_between_same_type_chunks(self):
        # (O, I) starts a chunk, (I, B) ends one and starts the next.
        s = chunk_scores([["I-NP", "I-NP", "B-NP", "O", "I-VP"]],
                         [["I-NP", "I-NP", "I-NP", "O", "I-VP"]])
        assert counts(s) == (3, 2, 1, 4, 5)
        assert (s.per_type["NP"].n_true, s.per_type["NP"].n_correct) == (2, 0)

    def test_ioe1(self):
        # (E, I) ends a chunk and starts the next.
        s = chunk_scores([["I-NP", "E-NP", "I-NP", "O"]], [["I-NP", "I-NP", "I-NP", "O"]])
        assert counts(s) == (2, 1, 0, 3, 4)

    def test_ioe2(self):
        # (O, E) and (E, E) start chunks; (E, I) too.
        s = chunk_scores([["E-NP", "E-NP", "I-VP", "E-VP"]], [["E-NP", "I-NP", "I-VP", "E-VP"]])
        assert counts(s) == (3, 3, 3, 3, 4)

    def test_type_change_ends_and_starts(self):
        s = chunk_scores([["I-NP", "I-VP", "B-VP"]], [["I-NP", "I-NP", "B-VP"]])
        assert counts(s) == (3, 2, 1, 2, 3)

    def test_brackets_are_one_token_chunks(self):
        s = chunk_scores([["[-NP", "]-NP", "O", "[-VP"]], [["[-NP", "O", "]-NP", "[-VP"]])
        assert counts(s) == (3, 3, 2, 2, 4)

    def test_dot_continues_a_chunk(self):
        # "." neither starts nor ends a chunk, and is not "outside": the true chunk
        # B .  does not end at the O, which decides the NP that follows.
        s = chunk_scores([["B-NP", ".-NP", "O", "I-NP"]], [["B-NP", "I-NP", "O", "I-NP"]])
        assert counts(s) == (2, 2, 1, 3, 4)

    def test_iobes_needs_the_extended_rules(self):
        yt = [["S-NP", "S-NP", "B-VP", "E-VP", "B-VP", "I-VP", "E-VP"]]
        yp = [["S-NP", "B-NP", "E-NP", "E-VP", "B-VP", "I-VP", "E-VP"]]
        # conlleval.pl itself reads S-NP S-NP as one chunk and E-VP B-VP as no boundary.
        assert counts(chunk_scores(yt, yp)) == (2, 2, 0, 5, 7)
        s = chunk_scores(yt, yp, scheme="IOBES")
        assert counts(s) == (4, 4, 2, 5, 7)
        assert s.report().splitlines()[1] == (
            "accuracy:  71.43%; precision:  50.00%; recall:  50.00%; FB1:  50.00"
        )

    def test_iobes_equals_conlleval_without_s_tags(self):
        yt = [["B-NP", "I-NP", "O", "I-VP", "E-VP", "I-VP"]]
        yp = [["B-NP", "O", "B-NP", "I-VP", "I-VP", "E-VP"]]
        assert counts(chunk_scores(yt, yp)) == counts(chunk_scores(yt, yp, scheme="IOBES"))
        assert counts(chunk_scores(yt, yp, scheme="BIO")) == counts(chunk_scores(yt, yp))

    def test_types_split_at_first_dash_and_perl_zero(self):
        yt = [["B-I-PER", "I-I-PER", "B-0", "O"]]
        yp = [["B-I-PER", "B-I-PER", "B", "-X"]]
        s = chunk_scores(yt, yp)
        assert counts(s) == (2, 4, 1, 2, 4)
        assert list(s.per_type) == ["", "I-PER", "X"]
        # Perl reads type "0" as false, so B-0 equals B; conlleval lists the empty
        # type twice when both sides have it.
        assert s.report() == (
            "processed 4 tokens with 2 phrases; found: 4 phrases; correct: 1.\n"
            "accuracy:  50.00%; precision:  25.00%; recall:  50.00%; FB1:  33.33\n"
            "                 : precision: 100.00%; recall: 100.00%; FB1: 100.00  1\n"
            "                 : precision: 100.00%; recall: 100.00%; FB1: 100.00  1\n"
            "            I-PER: precision:   0.00%; recall:   0.00%; FB1:   0.00  2\n"
            "                X: precision:   0.00%; recall:   0.00%; FB1:   0.00  1\n"
        )

    def test_chunks_end_at_sentence_boundaries(self):
        s = chunk_scores([["B-NP"], ["I-NP", "O"]], [["B-NP"], ["B-NP", "O"]])
        assert counts(s) == (2, 2, 2, 2, 3)
        joined = chunk_scores([["B-NP", "I-NP", "O"]], [["B-NP", "B-NP", "O"]])
        assert counts(joined) == (1, 2, 0, 2, 3)

    def test_raw_mode(self):
        yt, yp = [["NP", "NP", "O", "VP"]], [["NP", "VP", "O", "VP"]]
        s = chunk_scores(yt, yp, raw=True)
        assert counts(s) == (3, 3, 2, 3, 4)
        assert (s.per_type["VP"].n_pred, s.per_type["VP"].n_true) == (2, 1)
        # -o renames the outside tag; without raw it has no effect, as in conlleval.
        s = chunk_scores([["NP", "X"]], [["NP", "NP"]], raw=True, o_tag="X")
        assert counts(s) == (1, 2, 1, 1, 2)
        assert counts(chunk_scores(yt, yp, o_tag="NP")) == counts(chunk_scores(yt, yp))

    def test_empty_corpus(self):
        s = chunk_scores([], [])
        assert counts(s) == (0, 0, 0, 0, 0)
        assert s.f1 == 0.0 and s.accuracy == 0.0
        assert s.report() == (
            "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n")

    def test_digits(self):
        s = chunk_scores([["B-NP", "O", "B-NP"]], [["B-NP", "O", "O"]])
        assert s.report(digits=4).splitlines()[1] == (
            "accuracy:  66.6667%; precision: 100.0000%; recall:  50.0000%; FB1:  66.6667"
        )
        assert classification_report([["B-NP", "O", "B-NP"]], [["B-NP", "O", "O"]]) == str(s)


class TestValidation:
    def test_ragged_names_the_sentence(self):
        with pytest.raises(ValueError, match="sequence 1 has 2 labels in y_true but 1"):
            chunk_scores([["O"], ["O", "O"]], [["O"], ["O"]])
        with pytest.raises(ValueError, match="3 != 2"):
            metrics.flat_accuracy_score([["O"]] * 3, [["O"]] * 2)

    def test_types(self):
        with pytest.raises(TypeError, match=r"y_pred\[0\]\[1\] must be a str label"):
            chunk_scores([["O", "O"]], [["O", 1]])
        with pytest.raises(TypeError, match="looks like a single sequence"):
            chunk_scores(["O", "O"], ["O", "O"])
        with pytest.raises(TypeError, match="y_true must be a list"):
            chunk_scores(None, [])

    def test_bad_options(self):
        with pytest.raises(ValueError, match="scheme must be"):
            chunk_scores([], [], scheme="BILOU")
        with pytest.raises(ValueError, match="digits"):
            classification_report([], [], digits=-1)
        with pytest.raises(ValueError, match="average must be"):
            metrics.flat_f1_score([["a"]], [["a"]], average="samples")


class TestFlat:
    yt = [["a", "b", "c", "a"], ["b", "b"]]
    yp = [["a", "c", "c", "b"], ["b", "b"]]

    def test_accuracy(self):
        assert metrics.flat_accuracy_score(self.yt, self.yp) == pytest.approx(4 / 6)
        assert metrics.sequence_accuracy_score(self.yt, self.yp) == pytest.approx(1 / 2)
        assert metrics.sequence_accuracy_score([], []) == 0.0

    def test_prf_by_hand(self):
        # a: tp 1, pred 1, true 2; b: tp 2, pred 3, true 3; c: tp 1, pred 2, true 1.
        p = metrics.flat_precision_score(self.yt, self.yp, average=None)
        r = metrics.flat_recall_score(self.yt, self.yp, average=None)
        assert p == pytest.approx([1.0, 2 / 3, 1 / 2])
        assert r == pytest.approx([1 / 2, 2 / 3, 1.0])
        assert metrics.flat_f1_score(self.yt, self.yp, average="micro") == pytest.approx(4 / 6)
        f = [2 * a * b / (a + b) for a, b in zip(p, r)]
        assert metrics.flat_f1_score(self.yt, self.yp, average="macro") == pytest.approx(
            sum(f) / 3)
        assert metrics.flat_f1_score(self.yt, self.yp, average="weighted") == pytest.approx(
            (2 * f[0] + 3 * f[1] + 1 * f[2]) / 6)
        assert metrics.flat_f1_score(self.yt, self.yp, labels=["a", "c"]) == pytest.approx(
            2 / 3)

    def test_matches_sklearn(self):
        sk = pytest.importorskip("sklearn.metrics")
        rng = random.Random(0)
        yt = [[rng.choice("abcd") for _ in range(rng.randint(1, 9))] for _ in range(30)]
        yp = [[t if rng.random() < 0.6 else rng.choice("abcde") for t in s] for s in yt]
        ft = [t for s in yt for t in s]
        fp = [t for s in yp for t in s]
        for avg in ("micro", "macro", "weighted"):
            for labels in (None, ["a", "b"]):
                kw = {"average": avg, "labels": labels, "zero_division": 0}
                assert metrics.flat_f1_score(yt, yp, average=avg, labels=labels) == (
                    pytest.approx(sk.f1_score(ft, fp, **kw)))
                assert metrics.flat_precision_score(yt, yp, average=avg, labels=labels) == (
                    pytest.approx(sk.precision_score(ft, fp, **kw)))


class TestSklearnCrfsuiteShapes:
    """Inputs sklearn-crfsuite's metrics take because scikit-learn's do: labels that are
    not str, whole sequences of different lengths, F-beta."""

    def test_fbeta(self):
        yt, yp = TestFlat.yt, TestFlat.yp
        for avg in (None, "micro", "macro", "weighted"):
            # beta = 1 is F1, to the last bit.
            assert metrics.flat_fbeta_score(yt, yp, 1, average=avg) == \
                metrics.flat_f1_score(yt, yp, average=avg)
        # b: precision 2/3, recall 2/3; c: precision 1/2, recall 1: F2 = 5PR / (4P + R).
        f2 = metrics.flat_fbeta_score(yt, yp, beta=2, average=None, labels=["b", "c"])
        assert f2 == pytest.approx([2 / 3, 5 * 0.5 / (4 * 0.5 + 1)])
        # beta = 0 is precision.
        assert metrics.flat_fbeta_score(yt, yp, 0.0, average="macro") == pytest.approx(
            metrics.flat_precision_score(yt, yp, average="macro"))
        for bad in (-1, "2", None, float("nan")):
            with pytest.raises(ValueError, match="beta must be a number"):
                metrics.flat_fbeta_score(yt, yp, bad)

    def test_fbeta_matches_sklearn(self):
        sk = pytest.importorskip("sklearn.metrics")
        rng = random.Random(1)
        yt = [[rng.choice("abc") for _ in range(rng.randint(1, 7))] for _ in range(25)]
        yp = [[t if rng.random() < 0.5 else rng.choice("abcd") for t in s] for s in yt]
        ft = [t for s in yt for t in s]
        fp = [t for s in yp for t in s]
        for beta in (0.5, 2.0):
            for avg in ("micro", "macro", "weighted"):
                assert metrics.flat_fbeta_score(yt, yp, beta, average=avg) == pytest.approx(
                    sk.fbeta_score(ft, fp, beta=beta, average=avg, zero_division=0))

    def test_labels_of_any_type(self):
        yt, yp = [[1, 2, 2], [3]], [[1, 2, 3], [3]]
        assert metrics.flat_accuracy_score(yt, yp) == pytest.approx(3 / 4)
        assert metrics.sequence_accuracy_score(yt, yp) == pytest.approx(1 / 2)
        assert metrics.flat_recall_score(yt, yp, average=None) == pytest.approx([1, 1 / 2, 1])
        # A label must still not be a sequence: that is one nesting level too many.
        with pytest.raises(TypeError, match=r"y_pred\[0\]\[0\] must be a label"):
            metrics.flat_accuracy_score([[1]], [[[1]]])
        # conlleval's chunk scores read the labels' text: str only.
        with pytest.raises(TypeError, match="must be a str label"):
            chunk_scores([[1]], [[1]])

    def test_sequence_accuracy_of_sequences_of_other_lengths(self):
        # A sequence predicted with the wrong length is wrong, not an error.
        assert metrics.sequence_accuracy_score([["a", "b"], ["c"]], [["c"], ["a", "b"]]) == 0
        assert metrics.sequence_accuracy_score([["a", "b"], ["c"]], [["a", "b"], ["c", "c"]]) \
            == pytest.approx(1 / 2)
        with pytest.raises(ValueError, match="3 != 2"):
            metrics.sequence_accuracy_score([["a"]] * 3, [["a"]] * 2)

    def test_numpy_object_arrays(self):
        # What CRF.predict returns (and sklearn-crfsuite's predict since 0.5).
        import numpy as np
        yt = [["a", "b"], ["b", "b"]]
        yp = np.array([["a", "c"], ["b", "b"]], dtype=object)
        assert metrics.flat_accuracy_score(yt, yp) == pytest.approx(3 / 4)
        assert metrics.sequence_accuracy_score(yt, yp) == pytest.approx(1 / 2)


def _random_corpus(rng, prefixes, types):
    def tag():
        p = rng.choice(prefixes + "OO")
        if p == "O":
            return "O" if rng.random() < 0.9 else rng.choice(["O-NP", "-NP", "B"])
        return f"{p}-{rng.choice(types)}"
    yt, yp = [], []
    for _ in range(rng.randint(0, 8)):
        a = [tag() for _ in range(rng.randint(1, 12))]
        yt.append(a)
        yp.append([t if rng.random() < 0.6 else tag() for t in a])
    return yt, yp


def _perl(script, yt, yp, args=()):
    """conlleval.pl's output for a file with a blank line after each sentence."""
    lines = []
    for st, sp in zip(yt, yp):
        lines.extend(f"w {a} {b}" for a, b in zip(st, sp))
        lines.append("")
    text = "".join(line + "\n" for line in lines)
    return subprocess.run(["perl", script, *args], input=text, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("variant", ["FASTCRF_CONLLEVAL", "FASTCRF_CONLLEVAL_IOBES"])
def test_against_perl(variant):
    script = os.environ.get(variant)
    if not script or not os.path.isfile(script) or shutil.which("perl") is None:
        pytest.skip(f"set {variant} to a conlleval.pl (and have perl) to compare with it")
    kw = {"scheme": "IOBES"} if variant.endswith("IOBES") else {}
    rng = random.Random(0)
    for i in range(200):
        prefixes = ["IB", "IE", "BIES", "BIES[]."][i % 4]
        types = ["NP", "VP", "B-X", "I-PER-LOC", "0"] if i % 2 else ["NP", "VP"]
        yt, yp = _random_corpus(rng, prefixes, types)
        assert classification_report(yt, yp, **kw) == _perl(script, yt, yp), (yt, yp)
    for _ in range(50):
        yt, yp = _random_corpus(rng, "B", ["NP", "VP", "PP"])
        yt = [[t.split("-")[-1] or "O" for t in s] for s in yt]
        yp = [[t.split("-")[-1] or "O" for t in s] for s in yp]
        assert classification_report(yt, yp, raw=True, **kw) == _perl(script, yt, yp, ["-r"])
        assert classification_report(yt, yp, raw=True, o_tag="VP", **kw) == (
            _perl(script, yt, yp, ["-r", "-o", "VP"]))


def test_conll2000_published_baseline():
    """The CoNLL-2000 baseline (each POS tag's most frequent chunk tag in the training
    data) scores precision 72.58%, recall 82.14%, FB1 77.07 on the test set
    (Tjong Kim Sang and Buchholz, 2000)."""
    from fastcrf.io import read_conll

    pos_counts = {}
    for sent in read_conll(conll2000_file("train.txt.gz")):
        for _, pos, chunk in sent:
            c = pos_counts.setdefault(pos, {})
            c[chunk] = c.get(chunk, 0) + 1
    best = {pos: max(c, key=lambda k: (c[k], k)) for pos, c in pos_counts.items()}
    test = list(read_conll(conll2000_file("test.txt.gz")))
    y_true = [[row[2] for row in s] for s in test]
    y_pred = [[best.get(row[1], "O") for row in s] for s in test]
    report = classification_report(y_true, y_pred)
    assert report.splitlines()[1].endswith(
        "precision:  72.58%; recall:  82.14%; FB1:  77.07")
    assert report.startswith("processed 47377 tokens with 23852 phrases;")
