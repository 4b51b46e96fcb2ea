"""CRFsuite's binary model files, checked against python-crfsuite itself.

fastcrf -> ``.crfsuite`` -> python-crfsuite's ``Tagger`` and python-crfsuite ->
``.crfsuite`` -> ``fastcrf.CRF.load`` must tag alike, with marginals and sequence
probabilities to 1e-6; a malformed file is a ValueError, never a crash or a hang.
"""

import struct

import numpy as np
import pytest

from fastcrf import CRF, _crfsuite_format, _cqdb
from fastcrf import pycrfsuite as fps
from fastcrf.cli import main as cli_main

from crf_data import sample_hmm

pycrfsuite = pytest.importorskip("pycrfsuite")


def _corpus(n, seed):
    """HMM sequences with a weighted feature and a nested one, as python-crfsuite's
    users write them."""
    X, y, _ = sample_hmm(n, n_labels=4, n_words=20, seed=seed)
    for xs in X:
        for t, tok in enumerate(xs):
            tok["pos"] = {"first": float(t == 0), "last": float(t == len(xs) - 1)}
            tok["prev"] = xs[t - 1]["w"] if t else "BOS"
    return X, y


@pytest.fixture(scope="module")
def data():
    return _corpus(200, seed=1), _corpus(80, seed=2)


def _train(module, X, y, path, algorithm="lbfgs", **params):
    trainer = module.Trainer(verbose=False)
    for xs, ys in zip(X, y):
        trainer.append(xs, ys)
    trainer.select(algorithm)
    trainer.set_params({"c2": 0.1, "max_iterations": 50, **params} if algorithm == "lbfgs"
                       else {"max_iterations": 5, **params})
    trainer.train(str(path))
    return path


def _outputs(tagger, X, y):
    """Labels, every marginal and the gold path's probability of each sequence."""
    labels = tagger.labels()
    out = []
    for xs, ys in zip(X, y):
        pred = tagger.tag(xs)
        marg = np.array([[tagger.marginal(k, t) for k in labels] for t in range(len(xs))])
        out.append((pred, marg, tagger.probability(ys), tagger.probability(pred)))
    return labels, out


def _assert_same(a, b):
    labels_a, out_a = a
    labels_b, out_b = b
    assert labels_a == labels_b
    for (pa, ma, qa, ra), (pb, mb, qb, rb) in zip(out_a, out_b):
        assert pa == pb
        np.testing.assert_allclose(ma, mb, rtol=0, atol=1e-6)
        assert qa == pytest.approx(qb, rel=1e-6, abs=1e-12)
        assert ra == pytest.approx(rb, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("algorithm", ["lbfgs", "l2sgd", "ap", "pa"])
def test_fastcrf_model_opened_by_python_crfsuite(data, tmp_path, algorithm):
    (X, y), (Xt, yt) = data
    path = _train(fps, X, y, tmp_path / "fast.crfsuite", algorithm)
    reference = pycrfsuite.Tagger()
    reference.open(str(path))
    ours = fps.Tagger()
    ours.open(str(path))
    _assert_same(_outputs(reference, Xt, yt), _outputs(ours, Xt, yt))
    assert reference.info().header == ours.info().header


def test_crf_save_crfsuite_round_trip(data, tmp_path):
    """CRF.load of a CRFsuite file, saved again with format='crfsuite': python-crfsuite
    reads the copy as the original (format told by content: no extension)."""
    (X, y), (Xt, yt) = data
    original = _train(pycrfsuite, X, y, tmp_path / "ref.crfsuite")
    crf = CRF.load(original)
    crf.save(tmp_path / "copy", format="crfsuite")
    a, b = pycrfsuite.Tagger(), pycrfsuite.Tagger()
    a.open(str(original))
    b.open(str(tmp_path / "copy"))
    _assert_same(_outputs(a, Xt, yt), _outputs(b, Xt, yt))
    info_a, info_b = a.info(), b.info()
    assert info_a.labels == info_b.labels
    assert set(info_a.attributes) == set(info_b.attributes)
    assert info_a.transitions == pytest.approx(info_b.transitions, abs=0)
    assert info_a.state_features == pytest.approx(info_b.state_features, abs=0)


def test_crf_with_start_end_scores_is_refused(data, tmp_path):
    """A CRFsuite file has no start/end scores: a CRF that learnt some is refused
    with a message saying so, and nothing is written."""
    (X, y), _ = data
    crf = CRF(algorithm="lbfgs", max_iterations=20).fit(X, y)
    assert np.any(crf._model.start != 0)
    with pytest.raises(ValueError, match="start/end scores"):
        crf.save(tmp_path / "m.crfsuite", format="crfsuite")
    assert not (tmp_path / "m.crfsuite").exists()


def test_python_crfsuite_model_in_fastcrf(data, tmp_path, capsys):
    """python-crfsuite's model -> CRF.load (by content, any extension): the same
    labels and marginals as python-crfsuite's tagger; ``fastcrf info`` reads it."""
    (X, y), (Xt, yt) = data
    path = _train(pycrfsuite, X, y, tmp_path / "model.bin")
    crf = CRF.load(path)
    reference = pycrfsuite.Tagger()
    reference.open(str(path))
    labels = reference.labels()
    assert list(crf.classes_) == labels
    assert crf.predict(Xt) == [reference.tag(xs) for xs in Xt]
    for xs, marg in zip(Xt, crf.predict_marginals(Xt)):
        reference.set(xs)
        for t, row in enumerate(marg):
            for label in labels:
                assert row[label] == pytest.approx(reference.marginal(label, t), abs=1e-6)
    assert cli_main(["info", "-m", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"labels ({len(labels)}): {' '.join(labels)}" in out


def test_fastcrf_tag_with_a_template(tmp_path, capsys):
    """``fastcrf tag -t TEMPLATE`` tags with a CRFsuite model (which holds no
    template) trained on the template's attributes, as python-crfsuite tags."""
    from fastcrf.templates import Template

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    sentences, labels = [], []
    for _ in range(80):
        n = int(rng.integers(3, 9))
        ws = [words[i] for i in rng.integers(0, 12, n)]
        sentences.append([(w,) for w in ws])
        labels.append(["A" if int(w[1:]) % 3 else "B" for w in ws])
    template = Template("U00:%x[0,0]\nU01:%x[-1,0]\nB\n")
    X = template.transform(sentences)
    path = _train(pycrfsuite, X, labels, tmp_path / "m.crfsuite")
    (tmp_path / "t.txt").write_text("U00:%x[0,0]\nU01:%x[-1,0]\nB\n")
    (tmp_path / "in.txt").write_text(
        "\n\n".join("\n".join(w for (w,) in s) for s in sentences[:20]) + "\n")
    assert cli_main(["tag", str(tmp_path / "in.txt"), "-m", str(path), "-t",
                     str(tmp_path / "t.txt"), "-l", "-q"]) == 0
    got = [block.split("\n") for block in capsys.readouterr().out.strip().split("\n\n")]
    reference = pycrfsuite.Tagger()
    reference.open(str(path))
    assert got == [reference.tag(xs) for xs in X[:20]]


# Malformed files ------------------------------------------------------------


@pytest.fixture(scope="module")
def model_bytes(data, tmp_path_factory):
    (X, y), _ = data
    path = _train(pycrfsuite, X[:40], y[:40], tmp_path_factory.mktemp("m") / "m.crfsuite")
    return path.read_bytes()


def _boundaries(buf):
    """Every chunk boundary of a CRFsuite file: the header's end, each chunk's
    start and the end of its fixed head, the CQDB tables and records."""
    header = _crfsuite_format.read_header(buf)
    cuts = {0, 4, _crfsuite_format.HEADER_SIZE - 1, _crfsuite_format.HEADER_SIZE,
            len(buf) - 1}
    for key in ("off_features", "off_labels", "off_attrs", "off_labelrefs",
                "off_attrrefs"):
        off = header[key]
        cuts |= {off, off + 4, off + 12, off + 24}
    for key in ("off_labels", "off_attrs"):
        off = header[key]
        cuts |= {off + _cqdb.DATA_OFFSET, off + _cqdb.DATA_OFFSET + 8}
        size, _, _, _, bwd = struct.unpack_from("<5I", buf, off + 4)
        cuts |= {off + bwd, off + size - 1}
    return sorted(c for c in cuts if 0 <= c < len(buf))


def _load(buf):
    from fastcrf._persist import load_model_bytes
    return load_model_bytes(buf)


def test_truncated_at_every_chunk_boundary(model_bytes):
    for cut in _boundaries(model_bytes):
        with pytest.raises(ValueError):
            _load(model_bytes[:cut])


def test_wrong_magic_and_type(model_bytes):
    with pytest.raises(ValueError, match="not a CRFsuite|neither|not a"):
        _load(b"XCRF" + model_bytes[4:])
    bad_type = model_bytes[:8] + b"XXXX" + model_bytes[12:]
    with pytest.raises(ValueError, match="model type"):
        _load(bad_type)
    bad_version = model_bytes[:12] + struct.pack("<I", 7) + model_bytes[16:]
    with pytest.raises(ValueError, match="version"):
        _load(bad_version)


def _patched(buf, offset, value):
    return buf[:offset] + struct.pack("<I", value) + buf[offset + 4:]


# Byte offsets of the header fields: 4 + 4 * index in _HEADER_FIELDS ('type' is 4s).
_FIELD_AT = {name: 4 + 4 * i for i, name in enumerate(_crfsuite_format._HEADER_FIELDS)}


@pytest.mark.parametrize("field", ["off_features", "off_labels", "off_attrs"])
def test_every_offset_out_of_range(model_bytes, field):
    n = len(model_bytes)
    for value in (0, 1, _crfsuite_format.HEADER_SIZE - 4, n - 4, n, n + 1, 2 ** 31,
                  2 ** 32 - 1):
        with pytest.raises(ValueError):
            _load(_patched(model_bytes, _FIELD_AT[field], value))


@pytest.mark.parametrize("field", ["num_labels", "num_attrs"])
def test_huge_counts_in_the_header(model_bytes, field):
    for value in (2 ** 31, 2 ** 32 - 1, len(model_bytes)):
        with pytest.raises(ValueError):
            _load(_patched(model_bytes, _FIELD_AT[field], value))


def test_labels_far_beyond_the_weights_held(tmp_path, monkeypatch):
    # A crafted file with tens of thousands of labels and a few features would have
    # the reader allocate gigabytes of transitions.  Here: 30 labels, one-token
    # sequences (so no transition features), and the free allowance lowered to match.
    from fastcrf import _model

    path = tmp_path / "many-labels.crfsuite"
    trainer = fps.Trainer(verbose=False)
    for i in range(30):
        trainer.append([[f"w{i}"]], [f"L{i}"])
    trainer.select("lbfgs")
    trainer.set("max_iterations", 5)
    trainer.train(str(path))
    assert CRF.load(path).classes_ == [f"L{i}" for i in range(30)]
    monkeypatch.setattr(_model, "MAX_FREE_TRANSITIONS", 100)
    with pytest.raises(ValueError, match="transition weights are far more"):
        CRF.load(path)


def test_huge_counts_and_bad_offsets_inside_chunks(model_bytes):
    header = _crfsuite_format.read_header(model_bytes)
    feat = header["off_features"]
    cases = [_patched(model_bytes, feat + 8, 2 ** 32 - 1),       # feature count
             _patched(model_bytes, feat + 8, 2 ** 28)]
    for key in ("off_labels", "off_attrs"):
        off = header[key]
        cases += [_patched(model_bytes, off + 4, 2 ** 32 - 1),        # chunk size
                  _patched(model_bytes, off + 12, 0),                 # byte-order mark
                  _patched(model_bytes, off + 16, 0),                 # bwd_size
                  _patched(model_bytes, off + 20, 2 ** 32 - 8)]       # bwd_offset
        _, _, _, _, bwd = struct.unpack_from("<5I", model_bytes, off + 4)
        cases += [_patched(model_bytes, off + bwd, v) for v in (0, 2 ** 32 - 1)]
        first = struct.unpack_from("<I", model_bytes, off + bwd)[0]
        cases += [_patched(model_bytes, off + first, 5),              # record id
                  _patched(model_bytes, off + first + 4, 2 ** 32 - 1)]  # key size
    # A feature whose label or attribute lies outside the dictionaries, a bad type,
    # a weight that is not finite.
    first_feature = feat + _crfsuite_format.CHUNK_SIZE
    cases += [_patched(model_bytes, first_feature, 7),
              _patched(model_bytes, first_feature + 4, 2 ** 31),
              _patched(model_bytes, first_feature + 8, 2 ** 31),
              model_bytes[:first_feature + 12] + struct.pack("<d", float("nan"))
              + model_bytes[first_feature + 20:]]
    # The reference chunks: a list outside the file, a huge count, an unknown id.
    for key in ("off_labelrefs", "off_attrrefs"):
        off = header[key]
        first = struct.unpack_from("<I", model_bytes, off + 12)[0]
        cases += [_patched(model_bytes, off + 8, 2 ** 32 - 1),
                  _patched(model_bytes, off + 12, len(model_bytes)),
                  _patched(model_bytes, first, 2 ** 30),
                  _patched(model_bytes, first + 4, 2 ** 31)]
    for i, case in enumerate(cases):
        with pytest.raises(ValueError):
            _load(case)


def test_malformed_files_through_the_public_api(model_bytes, tmp_path):
    """CRF.load, Tagger.open and fastcrf info name the file and raise ValueError
    (the CLI: an error message and exit status 1)."""
    path = tmp_path / "bad.crfsuite"
    path.write_bytes(model_bytes[: len(model_bytes) // 2])
    with pytest.raises(ValueError, match="bad.crfsuite"):
        CRF.load(path)
    with pytest.raises(ValueError):
        fps.Tagger().open(str(path))
    with pytest.raises(ValueError):
        fps.Tagger().open_inmemory(model_bytes[:100])
    assert cli_main(["info", "-m", str(path)]) != 0


def test_random_corruption_never_crashes(model_bytes):
    """Random bytes overwritten anywhere: loading raises ValueError or succeeds."""
    rng = np.random.default_rng(0)
    buf = bytearray(model_bytes)
    for _ in range(300):
        case = bytearray(buf)
        for pos in rng.integers(0, len(case), 4).tolist():
            case[pos] = int(rng.integers(0, 256))
        try:
            _load(bytes(case))
        except ValueError:
            pass


def test_cqdb_key_with_an_inner_nul_ends_there():
    # CRFsuite's keys are C strings: a NUL inside one ends it.
    chunk = bytearray(_cqdb.write_strings(["ab", "cd", "é"], "attribute"))
    i = chunk.index(b"ab\0")
    chunk[i + 1] = 0
    assert _cqdb.read_strings(bytes(chunk), 0, 3, "attribute") == ["a", "cd", "é"]
    assert _cqdb.read_strings(_cqdb.write_strings(["ab", "cd", "é"], "attribute"), 0, 3,
                              "attribute") == ["ab", "cd", "é"]
