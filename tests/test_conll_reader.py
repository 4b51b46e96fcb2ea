"""The compiled column reader of Dataset.from_conll (fastcrf/_features/_columns.pyx)
against the Python path (io.read_conll rows through Template.encode): bitwise the
same Dataset, or the same error, on files built to hit the parser's edge cases."""

import gzip
import io
import random

import numpy as np
import pytest

from fastcrf import Dataset
from fastcrf._features import _conll
from fastcrf.templates import CHUNKING_TEMPLATE

TEMPLATE = """\
U00:%x[0,0]
U01:%x[-1,0]/%x[0,0]
U02:%x[1,1]
U03:%x[-8,0]|%x[8,1]
U04:%x[0,1]
U04:%x[0,0]
U05:{%x[2,0]}é%x[-2,1]
U06:bias
U07:%x[-2,0]/%x[-1,0]/%x[0,0]/%x[1,0]/%x[2,0]/%x[0,1]
B
"""


def _python(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setenv("FASTCRF_READER", "python")
        return _outcome(*args, **kwargs)


def _outcome(*args, **kwargs):
    try:
        return Dataset.from_conll(*args, **kwargs)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        return (type(exc), str(exc))


def _same(a, b):
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b
        return
    fa, fb = a.features, b.features
    for name in ("attr_ids", "values", "token_offsets", "seq_offsets"):
        x, y = getattr(fa, name), getattr(fb, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert fa.n_attributes == fb.n_attributes
    assert a.attributes == b.attributes
    assert a.counts.dtype == b.counts.dtype and np.array_equal(a.counts, b.counts)
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert a.labels.dtype == b.labels.dtype and np.array_equal(a.labels, b.labels)
    assert a.classes == b.classes
    assert a.min_freq == b.min_freq and a.metadata == b.metadata


def _both(monkeypatch, tmp_path, data, template=TEMPLATE, name="f.txt", **kwargs):
    """Both paths on ``data`` (bytes) written to a file: the compiled result, checked
    equal to the Python one."""
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    assert _conll.eligible([str(path)], _template(template), kwargs.get("encoding", "utf-8"))
    compiled = _outcome(str(path), template, **kwargs)
    _same(compiled, _python(monkeypatch, str(path), template, **kwargs))
    return compiled


def _template(text):
    from fastcrf.templates import Template
    return Template(text)


BASIC = (b"The DT B-NP\ncat NN I-NP\nsat VBD B-VP\n\n\n"
         b"Dogs NNS B-NP\nrun VBP B-VP\n\nA DT B-NP\n")


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 20000])
def test_same_dataset_any_chunk_size(monkeypatch, tmp_path, chunk_size):
    ds = _both(monkeypatch, tmp_path, BASIC, chunk_size=chunk_size)
    assert ds.n_sequences == 3 and ds.classes == ["B-NP", "I-NP", "B-VP"]
    # The boundary tokens and a literal brace reach the names.
    assert "U03:_B-8|_B+8" in ds.attributes and "U05:{_B+2}é_B-2" in ds.attributes


@pytest.mark.parametrize("data", [
    b"\n\n  \n" + BASIC + b"\n\n\n \t\n",                        # blank runs, both ends
    BASIC.replace(b"\n", b"\r\n"),                               # CRLF
    b"\xef\xbb\xbf" + BASIC,                                     # UTF-8 byte-order mark
    b"x\xef\xbb\xbf y z\n" + BASIC,                              # a BOM not at the start
    BASIC.rstrip(b"\n"),                                         # no final newline
    "çà\u00a0NN\u3000B-NP\nЖук\x1cNN\x0bI-NP\n\u2028\n日本 X\u2009O\n".encode(),
    b"a b c\rd\n\x1c\x1d\n e\tf  g \n",                          # lone CR, \x1c blanks
    b"-DOCSTART- -X- O\n\n" + BASIC + b"-DOCSTART- -X- O\n" + BASIC,
    b"_B-1 _B+1 _B-1\n_B+1 x y\n",                               # fields like boundaries
    b"a b c\n" * 5 + b"\n" + b"a b d\n" * 3,
])
def test_same_dataset_edge_cases(monkeypatch, tmp_path, data):
    _both(monkeypatch, tmp_path, data)
    _both(monkeypatch, tmp_path, data, chunk_size=1, docstart=False)


@pytest.mark.parametrize("sep", ["\t", " ", "::", "\u00a7"])
def test_same_dataset_with_a_separator(monkeypatch, tmp_path, sep):
    rows = ["a b", "c", "B-NP"], ["é", " d ", "I-NP"], ["x", "y", "O"]
    text = "".join(sep.join(r) + ("\r\n" if i % 2 else "\n") for i, r in enumerate(rows))
    text += " \t \n\u3000\n" + text + "\n" + sep.join(["-DOCSTART-", "q", "O"]) + "\n"
    _both(monkeypatch, tmp_path, text.encode(), sep=sep)


@pytest.mark.parametrize("label_column", [None, 0, -1, -2, 1])
@pytest.mark.parametrize("min_freq", [0, 2, 2.5])
def test_same_dataset_label_columns_and_min_freq(monkeypatch, tmp_path, label_column,
                                                 min_freq):
    template = "U00:%x[0,0]\nU01:%x[-1,0]/%x[0,0]\nU02:%x[0,1]\n"
    _both(monkeypatch, tmp_path, BASIC * 3, template=template, label_column=label_column,
          min_freq=min_freq)


def test_same_dataset_gzip_files_and_streams(monkeypatch, tmp_path):
    _both(monkeypatch, tmp_path, BASIC * 4, name="f.txt.gz", chunk_size=2)
    other = tmp_path / "g.txt"
    other.write_bytes(b"New JJ B-NP\nwords NNS I-NP\n")
    first = tmp_path / "f.txt.gz"
    compiled = Dataset.from_conll([first, str(other), io.BytesIO(BASIC)], TEMPLATE)
    with monkeypatch.context() as m:
        m.setenv("FASTCRF_READER", "python")
        python = Dataset.from_conll([first, str(other), io.BytesIO(BASIC)], TEMPLATE)
    _same(compiled, python)


def test_block_boundaries(monkeypatch, tmp_path):
    """Sentences and lines cut by the read blocks anywhere give the same dataset."""
    data = ("é NN B-NP\r\ncat NN I-NP\n\n" * 7).encode() + b"x y\xc2\xa0O\n"
    expected = _both(monkeypatch, tmp_path, data, chunk_size=3)
    for block in (1, 2, 3, 5, 8, 13):
        monkeypatch.setattr(_conll, "BLOCK", block)
        _same(_outcome(str(tmp_path / "f.txt"), TEMPLATE, chunk_size=3), expected)


@pytest.mark.parametrize("data", [
    b"a b c\nd e\n",                                   # ragged row
    b"a b c\n\nd e f g\n",
    b"a b c\n\xc3\x28 b c\n",                          # invalid continuation
    b"a b c\nx\xc0\x80 b c\n",                         # overlong
    b"a b c\nx\xed\xa0\x80 b c\n",                     # a surrogate
    b"a b c\nx\xf4\x90\x80\x80 b c\n",                 # above U+10FFFF
    b"a b c\nx b \xe2\x82\n",                          # truncated at the line's end
    b"a b c\n\xff\n",
    b"",                                               # no sentences
    b"\n\n-DOCSTART- x y\n",
    b"a\nb\n",                                         # a single column
])
def test_same_errors(monkeypatch, tmp_path, data):
    template = "U00:%x[0,0]\nU01:%x[1,1]\n"
    out = _both(monkeypatch, tmp_path, data, template=template)
    assert isinstance(out, tuple)
    with pytest.raises(ValueError, match=r"line \d+|no sentences|single field"):
        Dataset.from_conll(str(tmp_path / "f.txt"), template)


def test_same_errors_across_files(monkeypatch, tmp_path):
    (tmp_path / "a.txt").write_bytes(BASIC)
    (tmp_path / "b.txt").write_bytes(b"a b\n")
    paths = [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    compiled = _outcome(paths, TEMPLATE)
    assert compiled[0] is ValueError and "fields per row" in compiled[1]
    assert compiled == _python(monkeypatch, paths, TEMPLATE)
    missing = [str(tmp_path / "a.txt"), str(tmp_path / "nope.txt")]
    assert _outcome(missing, TEMPLATE)[0] is FileNotFoundError
    assert _outcome(missing, TEMPLATE) == _python(monkeypatch, missing, TEMPLATE)
    # The template reads a column the files lack: io's check, before any encoding.
    assert _outcome(paths[:1], "U00:%x[0,5]") == _python(monkeypatch, paths[:1],
                                                          "U00:%x[0,5]")


FIELD = [b"a", b"b", b"\xc3\xa9", b"_B-1", b"B-NP", b"{", b"%", b"-DOCSTART-", b"\xe2\x80"]
SPACE = [b" ", b"\t", b"\xc2\xa0", b"\xe3\x80\x80", b"\x1c", b"\r", b"\x0b", b"\xe2\x80\xa8"]
BAD = [b"\xff", b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80"]


@pytest.mark.parametrize("seed", range(60))
def test_random_files(monkeypatch, tmp_path, seed):
    """Random files over the parser's special cases (Unicode whitespace, CR, BOM,
    -DOCSTART-, fields that look like boundary tokens, now and then a ragged row or
    a bad byte): the same dataset or the same error."""
    rng = random.Random(seed)
    sep = rng.choice([None, None, "\t", " "])
    gap = [b"\t"] if sep == "\t" else [b" "] if sep == " " else SPACE

    def field():
        return b"".join(rng.choice(FIELD[:-1]) for _ in range(rng.randrange(1, 3)))

    lines = [b"\xef\xbb\xbf"] if rng.random() < 0.2 else [b""]
    for _ in range(rng.randrange(1, 40)):
        u = rng.random()
        if u < 0.2:
            lines.append(b"".join(rng.choice(SPACE) for _ in range(rng.randrange(0, 3))))
        elif u < 0.23 and seed % 4 == 0:
            lines.append(field() + rng.choice(gap) + field())        # ragged
        else:
            n = 3
            fields = [field() for _ in range(n)]
            if sep is None:
                line = b"".join(f + b"".join(rng.choice(gap) for _ in range(rng.randrange(1, 3)))
                                for f in fields)
            else:
                line = sep.encode().join(fields) + rng.choice([b"", b"\r"])
            lines.append(line)
        lines.append(b"\n")
    data = b"".join(lines)
    if seed % 5 == 0:
        k = rng.randrange(len(data) + 1)
        data = data[:k] + rng.choice(BAD) + data[k:]
    kwargs = {"chunk_size": rng.choice([1, 2, 5, 100]),
              "label_column": rng.choice([-1, 0, None]), "docstart": rng.random() < 0.8}
    if sep is not None:
        kwargs["sep"] = sep
    _both(monkeypatch, tmp_path, data, template=TEMPLATE, **kwargs)


def test_chunking_template_on_conll2000_sample(monkeypatch, tmp_path):
    """CRF++'s chunking template on a CoNLL-2000-like file (made up here)."""
    rng = random.Random(0)
    words = ["He", "reckons", "the", "current", "account", "deficit", ",", "é", "日本"]
    tags = ["PRP", "VBZ", "DT", "JJ", "NN", ","]
    chunks = ["B-NP", "I-NP", "B-VP", "O"]
    lines = []
    for _ in range(200):
        for _ in range(rng.randrange(1, 25)):
            lines.append(f"{rng.choice(words)} {rng.choice(tags)} {rng.choice(chunks)}")
        lines.append("")
    data = "\n".join(lines).encode()
    for min_freq in (0, 3):
        _both(monkeypatch, tmp_path, data, template=CHUNKING_TEMPLATE, min_freq=min_freq,
              chunk_size=37)


def test_thread_count_does_not_change_the_dataset(monkeypatch, tmp_path):
    """The template's lines are expanded on several threads (one line each at a
    time); the ids are numbered afterwards, in token order, by one."""
    import fastcrf._parallel

    path = tmp_path / "f.txt"
    path.write_bytes(("é NN B-NP\r\ncat NN I-NP\n\nx y O\n" * 50).encode())
    out = []
    for n in (1, 2, 3):
        monkeypatch.setattr(fastcrf._parallel, "effective_n_threads", lambda *a, n=n: n)
        out.append(Dataset.from_conll(str(path), CHUNKING_TEMPLATE, chunk_size=7))
    _same(out[0], out[1])
    _same(out[0], out[2])
