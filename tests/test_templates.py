import random

import numpy as np
import pytest
from _data import conll2000_file

from fastcrf._encoding import AttributeVocabulary, fit_encode
from fastcrf.templates import CHUNKING_TEMPLATE, Template

SENT = [("He", "PRP"), ("reckons", "VBZ"), ("the", "DT")]


def crfpp_expand(line, sentence, t):
    """CRF++'s applyRule, walked character by character as feature.cpp does."""
    out, i, n = [], 0, len(sentence)
    while i < len(line):
        if line[i] != "%":
            out.append(line[i])
            i += 1
            continue
        assert line[i + 1] == "x" and line[i + 2] == "["
        j = line.index("]", i)
        row, col = map(int, line[i + 3:j].split(","))
        k = t + row
        out.append(f"_B-{-k}" if k < 0 else f"_B+{k - n + 1}" if k >= n else sentence[k][col])
        i = j + 1
    return "".join(out)


def oracle(lines, sentences):
    return [[[crfpp_expand(line, s, t) for line in lines] for t in range(len(s))]
            for s in sentences]


class TestParse:
    def test_chunking_template(self):
        t = Template(CHUNKING_TEMPLATE)
        assert len(t.unigram) == 19 and t.bigram == ["B"]
        assert t.unigram[5] == "U05:%x[-1,0]/%x[0,0]"
        assert t.n_columns == 2

    def test_comments_blank_lines_and_crlf(self):
        t = Template("# c\r\n\r\n   \r\nU1:%x[0,0]\r\n#U2:%x[0,0]\r\nB\r\n")
        assert t.unigram == ["U1:%x[0,0]"] and t.bigram == ["B"]

    def test_from_file(self, tmp_path):
        path = tmp_path / "template"
        path.write_text(CHUNKING_TEMPLATE)
        assert Template.from_file(path).unigram == Template(CHUNKING_TEMPLATE).unigram

    @pytest.mark.parametrize("text, line, msg", [
        ("U0:%x[0,0]\nX1:%x[0,0]", 2, "starts with U .unigram. or B"),
        ("U0:%x[a,0]", 1, "malformed macro at '%x.a,0.'"),
        ("U0:%y[0,0]", 1, "malformed macro"),
        ("\n\nU0:%x[0,0", 3, "malformed macro"),
        ("U0:%x[ 0,0]", 1, "malformed macro"),
        ("U0:100%", 1, "malformed macro"),
        ("U0:%x[-9,0]", 1, "row -9 is out of CRF..'s range"),
        ("B1:%x[9,0]", 1, "row 9 is out of"),
    ])
    def test_errors_name_the_line(self, text, line, msg):
        with pytest.raises(ValueError, match=f"template line {line} .*{msg}"):
            Template(text)

    def test_type_error(self, tmp_path):
        with pytest.raises(TypeError, match="Template.from_file"):
            Template(tmp_path)


class TestApply:
    def test_chunking_by_hand(self):
        X = Template(CHUNKING_TEMPLATE).transform([SENT])
        assert X[0][0] == [
            "U00:_B-2", "U01:_B-1", "U02:He", "U03:reckons", "U04:the",
            "U05:_B-1/He", "U06:He/reckons",
            "U10:_B-2", "U11:_B-1", "U12:PRP", "U13:VBZ", "U14:DT",
            "U15:_B-2/_B-1", "U16:_B-1/PRP", "U17:PRP/VBZ", "U18:VBZ/DT",
            "U20:_B-2/_B-1/PRP", "U21:_B-1/PRP/VBZ", "U22:PRP/VBZ/DT",
        ]
        assert X[0][2][:7] == ["U00:He", "U01:reckons", "U02:the", "U03:_B+1", "U04:_B+2",
                               "U05:reckons/the", "U06:the/_B+1"]
        assert X[0][2][-1] == "U22:DT/_B+1/_B+2"

    def test_boundaries_up_to_eight(self):
        t = Template("U:%x[-8,0]|%x[-3,0]|%x[3,0]|%x[8,0]")
        assert t.apply([("a",)]) == [["U:_B-8|_B-3|_B+3|_B+8"]]
        assert t.apply([("a",), ("b",), ("c",), ("d",)])[3] == ["U:_B-5|a|_B+3|_B+8"]

    def test_literal_text_braces_and_bias(self):
        t = Template("Uw[{}]=%x[0,0]{%x[0,1]}\nU\nUbias")
        assert t.apply(SENT[:1]) == [["Uw[{}]=He{PRP}", "U", "Ubias"]]

    def test_random_against_crfpp_walk(self):
        rng = random.Random(0)
        words = ["a", "b", "_B-1", "x/y", "{0}", "é"]
        for _ in range(30):
            lines = []
            for k in range(rng.randint(1, 6)):
                cells = [f"%x[{rng.randint(-3, 3)},{rng.randint(0, 2)}]"
                         for _ in range(rng.randint(0, 3))]
                lines.append(f"U{k}:" + rng.choice(["/", "", "{}", "_"]).join(cells))
            sentences = [[tuple(rng.choice(words) for _ in range(3))
                          for _ in range(rng.randint(0, 7))] for _ in range(rng.randint(0, 6))]
            t = Template("\n".join(lines))
            assert t.transform(sentences) == oracle(lines, sentences)

    def test_rows_may_be_lists_and_longer(self):
        t = Template("U:%x[0,0]")
        assert t.transform([[["a", "X", "B-NP"], ("b", "Y")]]) == [[["U:a"], ["U:b"]]]

    def test_empty_inputs(self):
        t = Template(CHUNKING_TEMPLATE)
        assert t.transform([]) == []
        assert t.transform([[], SENT[:1]])[0] == []
        assert Template("").transform([SENT]) == [[[], [], []]]

    def test_errors_name_the_position(self):
        t = Template("U0:%x[0,0]\nU1:%x[-1,1]")
        with pytest.raises(ValueError, match=r"sentences\[1\]\[0\] has 1 fields, but template "
                                             r"line 2 \('U1:%x\[-1,1\]'\) reads column 1"):
            t.transform([SENT, [("a",)]])
        with pytest.raises(TypeError, match=r"sentences\[1\]\[1\]\[1\] must be a str, got 3"):
            t.transform([SENT, [("a", "b"), ("c", 3)]])
        msg = r"sentences\[0\]\[0\] must be a tuple or list of str fields, got str"
        with pytest.raises(TypeError, match=msg):
            t.transform([["ab", "cd"]])
        with pytest.raises(TypeError, match=r"sentences\[0\] must be a sequence of rows"):
            t.transform(["He"])
        with pytest.raises(TypeError, match="sentences must be a list"):
            t.transform(None)

    def test_bigram(self):
        t = Template("U:%x[0,0]\nB\nB01:%x[0,1]/%x[-1,1]")
        assert t.bigram == ["B", "B01:%x[0,1]/%x[-1,1]"]
        assert t.transform_bigram([SENT[:2]]) == [[[], ["B", "B01:VBZ/PRP"]]]
        assert Template("U:%x[0,0]").transform_bigram([SENT[:2]]) == [[[], []]]


class TestEncode:
    def check(self, t, sentences):
        names, enc = t.encode(sentences)
        vocab, ref = fit_encode(t.transform(sentences))
        assert names == vocab.names
        for field in ("attr_ids", "values", "token_offsets", "seq_offsets"):
            a, b = getattr(enc, field), getattr(ref, field)
            assert a.dtype == b.dtype and np.array_equal(a, b), field
        assert enc.n_attributes == len(names)
        n_rules = len(t.unigram)
        assert np.array_equal(enc.token_offsets,
                              np.arange(0, enc.n_tokens * n_rules + 1, n_rules))
        return names, enc

    def test_equals_fit_encode_of_transform(self):
        t = Template(CHUNKING_TEMPLATE)
        sentences = [SENT, SENT[:1], [("the", "DT"), ("He", "PRP")]]
        names, enc = self.check(t, sentences)
        assert names[:2] == ["U00:_B-2", "U01:_B-1"]
        assert enc.attr_ids.dtype == np.int32 and (enc.values == 1.0).all()

    def test_same_string_from_two_templates(self):
        # Both rules make "U:a" at some token: one attribute, its first-seen id.
        t = Template("U:%x[0,0]\nU:%x[-1,0]\nUbias")
        names, _ = self.check(t, [[("a",), ("b",), ("a",)], [("b",)]])
        assert names == ["U:a", "U:_B-1", "Ubias", "U:b"]

    def test_random(self):
        rng = random.Random(1)
        for _ in range(20):
            lines = [f"U{k}:" + "/".join(f"%x[{rng.randint(-2, 2)},{rng.randint(0, 1)}]"
                                         for _ in range(rng.randint(0, 3)))
                     for k in range(rng.randint(1, 5))]
            sentences = [[(rng.choice("abc"), rng.choice("XY"))
                          for _ in range(rng.randint(1, 6))] for _ in range(rng.randint(1, 6))]
            self.check(Template("\n".join(lines)), sentences)

    def test_with_vocabulary(self):
        t = Template("U0:%x[0,0]\nU1:%x[1,0]")
        names, _ = t.encode([[("a",), ("b",)]])
        assert names == ["U0:a", "U1:b", "U0:b", "U1:_B+1"]
        for vocab in (AttributeVocabulary(names), names):
            got_names, enc = t.encode([[("b",), ("c",)]], vocabulary=vocab)
            # U0:b -> 2, U1:c unseen, U0:c unseen, U1:_B+1 -> 3
            assert got_names == names
            assert enc.attr_ids.tolist() == [2, 3]
            assert enc.token_offsets.tolist() == [0, 1, 2]
        _, empty = t.encode([], vocabulary=names)
        assert empty.n_sequences == 0 and empty.n_tokens == 0

    def test_errors(self):
        t = Template("U0:%x[0,0]")
        with pytest.raises(ValueError, match=r"sentences\[1\] is empty"):
            t.encode([[("a",)], []])
        with pytest.raises(ValueError, match="no sentences"):
            t.encode([])


def test_conll2000_chunking():
    from fastcrf.io import load_conll

    X, _ = load_conll(conll2000_file("train.txt.gz"))
    t = Template(CHUNKING_TEMPLATE)
    head = X[:300]
    assert t.transform(head) == oracle(t.unigram, head)
    names, enc = t.encode(X)
    assert enc.n_tokens == 211727 and enc.n_sequences == 8936
    assert len(enc.attr_ids) == 211727 * 19
    # Spot-check against transform far into the corpus.
    tail = t.transform(X[-5:])
    first = enc.seq_offsets[-6]
    assert [names[a] for a in enc.attr_ids[first * 19:(first + 1) * 19]] == tail[0][0]
