import gzip
import io

import pytest
from _data import conll2000_file

from fastcrf.io import load_conll, read_conll, write_conll

TEXT = (
    "-DOCSTART- -X- O\n"
    "\n"
    "He PRP B-NP\n"
    "ran VBD B-VP\n"
    "\n"
    "\n"
    "Go VB B-VP\n"
    "-DOCSTART- -X- O\n"
    "Now RB B-ADVP\n"
)
SENTS = [[("He", "PRP", "B-NP"), ("ran", "VBD", "B-VP")], [("Go", "VB", "B-VP")],
         [("Now", "RB", "B-ADVP")]]


def test_read_text_and_docstart(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(TEXT)
    assert list(read_conll(path)) == SENTS
    assert list(read_conll(str(path))) == SENTS
    kept = list(read_conll(path, docstart=False))
    assert kept[0] == [("-DOCSTART-", "-X-", "O")]
    assert kept[2] == [("Go", "VB", "B-VP"), ("-DOCSTART-", "-X-", "O"),
                       ("Now", "RB", "B-ADVP")]


def test_streams_lazily(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(TEXT + "bad row\n")
    it = read_conll(path)
    assert next(it) == SENTS[0]  # the ragged last line is not read yet
    with pytest.raises(ValueError, match="line 10"):
        list(it)


def test_gzip_by_suffix_and_magic(tmp_path):
    gz = tmp_path / "a.txt.gz"
    gz.write_bytes(gzip.compress(TEXT.encode()))
    assert list(read_conll(gz)) == SENTS
    hidden = tmp_path / "a.bin"
    hidden.write_bytes(gzip.compress(TEXT.encode()))
    assert list(read_conll(hidden)) == SENTS


def test_file_objects_text_and_binary():
    assert list(read_conll(io.StringIO(TEXT))) == SENTS
    assert list(read_conll(io.BytesIO(TEXT.encode()))) == SENTS


def test_tabs_crlf_bom_and_whitespace_lines(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes("\ufeffNew York\tNNP\tB-LOC\r\n \t \r\nit\tPRP\tO\r\n".encode())
    assert list(read_conll(path, sep="\t")) == [[("New York", "NNP", "B-LOC")],
                                                [("it", "PRP", "O")]]
    # Whitespace splitting breaks "New York" into two fields: a ragged row.
    msg = r"t.tsv, line 3: expected 4 fields \(as on line 1\), found 3"
    with pytest.raises(ValueError, match=msg):
        list(read_conll(path))


def test_ragged_rows_name_file_and_line(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("a B-NP\nb I-NP\n\nc\n")
    msg = r"r.txt, line 4: expected 2 fields \(as on line 1\), found 1: 'c'"
    with pytest.raises(ValueError, match=msg):
        list(read_conll(path))
    with pytest.raises(ValueError, match="line 1: expected 3 fields .the columns argument"):
        list(read_conll(path, columns=3))
    with pytest.raises(ValueError, match="<stream>, line 2"):
        list(read_conll(io.StringIO("a b\nc\n")))


def test_bad_encoding_names_line(tmp_path):
    path = tmp_path / "l1.txt"
    path.write_bytes("a O\n\ncaf\u00e9 O\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"l1.txt, line 3: not valid utf-8 text"):
        list(read_conll(path))
    assert list(read_conll(path, encoding="latin-1"))[1] == [("caf\u00e9", "O")]


def test_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_conll(tmp_path / "missing.txt")
    with pytest.raises(TypeError, match="source must be a path or a file object"):
        read_conll(42)
    with pytest.raises(ValueError, match="columns must be >= 1"):
        read_conll(io.StringIO(""), columns=0)
    with pytest.raises(ValueError, match="sep must be a non-empty str"):
        read_conll(io.StringIO(""), sep="")
    with pytest.raises(LookupError):
        read_conll(io.StringIO(""), encoding="no-such-codec")
    assert list(read_conll(io.StringIO("\n\n"))) == []


def test_load_conll_label_column():
    X, y = load_conll(io.StringIO(TEXT))
    assert X == [[("He", "PRP"), ("ran", "VBD")], [("Go", "VB")], [("Now", "RB")]]
    assert y == [["B-NP", "B-VP"], ["B-VP"], ["B-ADVP"]]
    X, y = load_conll(io.StringIO(TEXT), label_column=1)
    assert X[0] == [("He", "B-NP"), ("ran", "B-VP")] and y[0] == ["PRP", "VBD"]
    X, y = load_conll(io.StringIO(TEXT), label_column=None)
    assert y is None and X == SENTS
    with pytest.raises(ValueError, match="label_column=3 is out of range"):
        load_conll(io.StringIO(TEXT), label_column=3)
    with pytest.raises(TypeError, match="label_column must be an int"):
        load_conll(io.StringIO(TEXT), label_column="chunk")


@pytest.mark.parametrize("name", ["out.txt", "out.txt.gz"])
def test_write_round_trip(tmp_path, name):
    path = tmp_path / name
    assert write_conll(path, SENTS) == 3
    assert list(read_conll(path)) == SENTS
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    else:
        assert path.read_text() == (
            "He PRP B-NP\nran VBD B-VP\n\nGo VB B-VP\n\nNow RB B-ADVP\n\n")
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left behind


def test_write_tab_and_file_objects(tmp_path):
    rows = [[("New York", "B-LOC")]]
    buf = io.StringIO()
    write_conll(buf, rows, sep="\t")
    assert buf.getvalue() == "New York\tB-LOC\n\n"
    raw = io.BytesIO()
    write_conll(raw, [["a", "b"]])  # str rows are one-field rows
    assert raw.getvalue() == b"a\nb\n\n"


def test_write_errors_leave_no_file(tmp_path):
    path = tmp_path / "bad.txt"
    with pytest.raises(ValueError, match=r"sentences\[1\]\[0\] has 1 fields but the rows"):
        write_conll(path, [[("a", "O")], [("b",)]])
    with pytest.raises(ValueError, match=r"sentences\[0\]\[0\]\[0\] = 'New York' cannot"):
        write_conll(path, [[("New York", "O")]])
    with pytest.raises(ValueError, match=r"sentences\[1\] is empty"):
        write_conll(path, [[("a", "O")], []])
    with pytest.raises(TypeError, match=r"sentences\[0\]\[0\]\[1\] must be a str"):
        write_conll(path, [[("a", 1)]])
    with pytest.raises(ValueError, match="cannot be written"):
        write_conll(path, [[("a\tb", "O")]], sep="\t")
    assert list(tmp_path.iterdir()) == []


def test_conll2000_counts():
    path = conll2000_file("train.txt.gz")
    X, y = load_conll(path)
    assert (len(X), sum(map(len, X))) == (8936, 211727)
    assert all(len(row) == 2 for s in X for row in s)
    assert y[0][:3] == ["B-NP", "B-PP", "B-NP"]
