"""The parsers of untrusted input, as fuzz targets: one function of ``bytes`` each.

A target feeds its bytes to one public entry point and lets through only the errors
that entry point documents for bad input (``ValueError``, ``TypeError``); any other
exception, a crash or a hang is a bug.  ``tools/fuzz.py`` runs them under atheris's
coverage-guided fuzzer; ``tests/test_fuzz_corpus.py`` replays the inputs kept in
``tests/fuzz_corpus/<target>/`` (seeds and every input that once failed).
"""

import io
import os
import tempfile

from fastcrf import CRF
from fastcrf.io import read_conll
from fastcrf.templates import Template

#: What bad input may raise: the errors the public API documents for it.
ALLOWED = (ValueError, TypeError)

_TEXT_ROWS = [[("The", "DT"), ("cat", "NN"), ("sat", "VBD")], [("Dogs", "NNS")]]


def _tiny_training_set():
    X = [[{"w": "a", "n": 1.0}, {"w": "b"}], [{"w": "b"}, {"w": "a", "n": -2.0}, {"w": "c"}]]
    y = [["A", "B"], ["B", "A", "B"]]
    return X, y


def seed_models():
    """``{name: bytes}`` of valid model files of both formats, to seed the fuzzer."""
    from fastcrf import pycrfsuite

    X, y = _tiny_training_set()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.npz")
        CRF(algorithm="lbfgs", max_iterations=5).fit(X, y).save(path)
        with open(path, "rb") as f:
            out["npz"] = f.read()
        # A CRFsuite file holds no start/end scores: trained as CRFsuite trains.
        trainer = pycrfsuite.Trainer(verbose=False)
        for xseq, yseq in zip(X, y):
            trainer.append(xseq, yseq)
        trainer.select("lbfgs")
        trainer.set_params({"max_iterations": 5})
        path = os.path.join(tmp, "m.crfsuite")
        trainer.train(path)
        with open(path, "rb") as f:
            out["crfsuite"] = f.read()
    return out


def model(data):
    """A model file of either format: ``CRF.load``, then a prediction with it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model")
        with open(path, "wb") as f:
            f.write(data)
        try:
            crf = CRF.load(path)
        except ALLOWED:
            return
    X, _ = _tiny_training_set()
    try:
        crf.predict(X)
        crf.predict_marginals(X)
    except ALLOWED:
        pass


def columns(data):
    """A column file: every sentence of ``fastcrf.io.read_conll``."""
    try:
        for sentence in read_conll(io.BytesIO(data)):
            assert all(isinstance(row, tuple) for row in sentence)
    except ALLOWED:
        pass


def template(data):
    """A CRF++ template (UTF-8 text), applied to a small two-column corpus."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        t = Template(text)
        t.transform(_TEXT_ROWS)
        t.encode(_TEXT_ROWS)
    except ALLOWED:
        pass


def tokens(data):
    """Token features in every format the estimator takes, built from the bytes: a
    fit on them and a prediction of them."""
    X, y = _decode_tokens(data)
    try:
        crf = CRF(algorithm="ap", max_iterations=2).fit(X, y)
        crf.predict(X)
    except ALLOWED:
        pass


def _decode_tokens(data):
    """A small (X, y) from the bytes: each byte picks the next token's shape and
    content, so mutations explore dicts, lists, numbers, odd names and values."""
    values = [1.0, 0.0, -1.5, float("nan"), float("inf"), True, "x", "", None, b"b",
              10 ** 400, 3, [1]]
    X, y, seq, labels = [], [], [], []
    for i, b in enumerate(data[:64]):
        kind = b % 5
        name = chr(32 + (b * 7) % 95) * (1 + b % 3)
        value = values[b % len(values)]
        if kind == 0:
            tok = {name: value}
        elif kind == 1:
            tok = [name, name + "!"]
        elif kind == 2:
            tok = {name: "v", "bias": 1.0}
        elif kind == 3:
            tok = value
        else:
            tok = []
        seq.append(tok)
        labels.append("L" + str(b % 3))
        if b % 4 == 0:
            X.append(seq)
            y.append(labels)
            seq, labels = [], []
    if seq:
        X.append(seq)
        y.append(labels)
    return X, y


TARGETS = {"model": model, "columns": columns, "template": template, "tokens": tokens}
