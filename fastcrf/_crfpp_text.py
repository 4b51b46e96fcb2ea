"""CRF++'s text model files (what ``crf_learn -t`` writes beside the model as
``MODEL.txt``), written from and read into a :class:`~fastcrf._model.CRFModel`.

Layout (CRF++'s ``feature_index.cpp``: ``EncoderFeatureIndex::save`` writes it,
``EncoderFeatureIndex::convert``, run by ``crf_learn -C``, reads it)::

    version: 100          header lines "key: value" up to a blank line; CRF++ reads
    cost-factor: 1        maxid (the number of weights) and xsize (the token columns)
    maxid: 16             and ignores the others
    xsize: 1

    X                     the labels, one a line, up to a blank line
    Y

    U00:%x[0,0]           the template lines (unigram, then bigram)
    B

    12 B                  the features up to a blank line: the id of the feature's
    0 U00:a               first weight, then its key; a unigram key (U...) has one
    4 U00:b               weight per label (id + label), a bigram key one per label
                          pair (id + K * from + to)

    0.5398902038199468    the maxid weights, one a line

A CRF++ model has no start or end scores: :func:`format_text_model` refuses a model
whose start or end scores are not all 0 (``fastcrf crf_learn`` trains without them),
and a model read from a text file has them at 0.  Bigram keys with macros
(observation-conditioned transitions, ``B01:%x[0,1]``) are not supported by fastcrf's
model yet: :func:`parse_text_model` refuses them.
"""

import re

import numpy as np

from ._features._encoding import AttributeVocabulary
from ._layout import StateLayout
from ._model import CRFModel, TrainingLog, check_label_count
from .templates import Template

#: The model version CRF++ 0.58 writes (its readers accept 100..199).
VERSION = 100
#: How a text model file starts (``fastcrf crf_test`` and ``crf_learn -C`` sniff it).
MAGIC = b"version: "
_UINT = re.compile(r"[0-9]+")


def is_text_model(prefix):
    """Whether bytes ``prefix`` (a file's first bytes) start a CRF++ text model."""
    return bytes(prefix[:len(MAGIC)]) == MAGIC


def plain_bigram_lines(template):
    """The bigram lines of ``template`` (a :class:`~fastcrf.templates.Template`)
    without macros: each asks for one matrix of label-transition weights."""
    return [line for line in template.bigram if "%x[" not in line]


def format_text_model(model, template, xsize):
    """CRF++'s text model of ``model``: str.

    Parameters
    ----------
    model : CRFModel
        Its attribute names must be the unigram keys of ``template`` (``U...``), as
        ``fastcrf crf_learn`` trains them.
    template : Template
        Written as the model's template; its first bigram line without macros (if
        any) is the key of the transition weights.
    xsize : int
        Token columns of the rows the model tags.

    Raises
    ------
    ValueError
        For a model with start or end scores, with an attribute that is not a
        unigram key, or with transition weights and no plain ``B`` line to hold them.
    """
    if np.any(model.start != 0) or np.any(model.end != 0):
        raise ValueError("this model has start/end scores, which a CRF++ model has no "
                         "place for; 'fastcrf crf_learn' trains without them")
    names = model.vocabulary.names
    bad = next((name for name in names if not name.startswith("U")), None)
    if bad is not None:
        raise ValueError(f"attribute {bad!r} is not a CRF++ unigram key (U...): only "
                         "models trained from a CRF++ template have a CRF++ text model")
    K = len(model.classes)
    plain = plain_bigram_lines(template)
    if not plain and np.any(model.transitions != 0):
        raise ValueError("the model has transition weights but the template no plain "
                         "'B' line to hold them")
    # Ids in key order, as CRF++ lists the features (its own ids follow the order it
    # first met the keys; any consistent numbering reads back the same).
    keys = sorted([(name, "U") for name in names] + [(line, "B") for line in plain])
    W = model.state_weights()
    index = {name: a for a, name in enumerate(names)}
    ids, blocks, maxid = [], [], 0
    for key, kind in keys:
        ids.append(f"{maxid} {key}")
        if kind == "U":
            blocks.append(W[index[key]])
            maxid += K
        else:
            # The first plain B line holds the transitions; CRF++ adds the weights of
            # every B key, so the others hold zeros.
            first = key == plain[0]
            blocks.append(model.transitions.ravel() if first else np.zeros(K * K))
            maxid += K * K
    weights = np.concatenate(blocks) if blocks else np.zeros(0)
    lines = [f"version: {VERSION}", "cost-factor: 1", f"maxid: {maxid}",
             f"xsize: {int(xsize)}", ""]
    lines += list(model.classes) + [""]
    lines += template.unigram + template.bigram + [""]
    lines += ids + [""]
    lines += [f"{w:.16f}" for w in weights.tolist()]
    return "\n".join(lines) + "\n"


def parse_text_model(text, name="the text model"):
    """The model of a CRF++ text model file's contents ``text`` (str).

    Returns
    -------
    model : CRFModel
        Start and end scores 0, every (attribute, label) pair kept.
    template : str
        The template lines, one a line.
    xsize : int
        The token columns of the rows the model tags.

    Raises
    ------
    ValueError
        For contents that are not a complete CRF++ text model (naming ``name`` and
        the line), or that hold observation-conditioned bigram features.
    """
    lines = text.split("\n")
    pos = 0

    def bad(why, lineno=None):
        where = f" (line {lineno})" if lineno is not None else ""
        return ValueError(f"{name} is not a readable CRF++ text model{where}: {why}")

    def section(what):
        # The lines up to the next blank one; a missing blank line is a truncation.
        nonlocal pos
        start = pos
        while pos < len(lines) and lines[pos].rstrip("\r") != "":
            pos += 1
        if pos == len(lines):
            raise bad(f"the file ends inside the {what}")
        out = [(start + i + 1, line.rstrip("\r")) for i, line in enumerate(lines[start:pos])]
        pos += 1
        return out

    header = {}
    for lineno, line in section("header"):
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise bad(f"a header line is 'key: value', got {line!r}", lineno)
        header[parts[0]] = (parts[1].strip(), lineno)
    maxid = _header_int(header, "maxid:", bad)
    xsize = _header_int(header, "xsize:", bad)
    labels = [line for _, line in section("labels")]
    if not labels:
        raise bad("it lists no labels")
    if len(set(labels)) != len(labels):
        raise bad("a label is listed twice")
    template_lines = section("template")
    template_text = "\n".join(line for _, line in template_lines) + "\n"
    try:
        template = Template(template_text)
    except ValueError as exc:
        raise bad(f"its template: {exc}") from None
    if template.n_columns > xsize:
        raise bad(f"the template reads column {template.n_columns - 1} but xsize is {xsize}")
    features = section("features")
    weights = _weights(lines[pos:], pos, maxid, bad)

    K = len(labels)
    check_label_count(K, maxid, bad)
    plain = set(plain_bigram_lines(template))
    names, rows = [], []
    transitions = np.zeros((K, K))
    seen = set()
    for lineno, line in features:
        parts = line.split(None, 1)
        if len(parts) != 2 or not _UINT.fullmatch(parts[0]):
            raise bad(f"a feature line is 'id key', got {line!r}", lineno)
        fid, key = int(parts[0]), parts[1]
        if key in seen:
            raise bad(f"feature {key!r} is listed twice", lineno)
        seen.add(key)
        span = K if key.startswith("U") else K * K
        if fid + span > maxid:
            raise bad(f"feature {key!r} has weights {fid}..{fid + span - 1}, past maxid "
                      f"{maxid}", lineno)
        if key.startswith("U"):
            names.append(key)
            rows.append(weights[fid:fid + K])
        elif key in plain:
            transitions += weights[fid:fid + span].reshape(K, K)
        elif key.startswith("B"):
            raise bad(f"feature {key!r} is an observation-conditioned transition (a B "
                      "template line with a macro), which fastcrf's models do not hold "
                      "yet", lineno)
        else:
            raise bad(f"feature {key!r} is neither a unigram (U) nor a bigram (B) key",
                      lineno)
    A = len(names)
    layout = StateLayout.dense(A, K)
    state = layout.from_dense(np.array(rows).reshape(A, K))
    chain = np.concatenate((transitions.ravel(), np.zeros(2 * K)))
    model = CRFModel(labels, AttributeVocabulary(names), layout, state, chain,
                     training_log=TrainingLog(None), metadata={})
    return model, template_text, xsize


def _header_int(header, key, bad):
    if key not in header:
        raise bad(f"the header has no {key[:-1]!r}")
    value, lineno = header[key]
    if not _UINT.fullmatch(value) or int(value) == 0:
        raise bad(f"{key[:-1]} must be a positive integer, got {value!r}", lineno)
    return int(value)


def _weights(lines, offset, maxid, bad):
    """The weight lines (after the features' blank line) as a float64 array."""
    while lines and lines[-1].strip() == "":
        lines = lines[:-1]
    if len(lines) != maxid:
        raise bad(f"maxid is {maxid} but {len(lines)} weights follow the features")
    try:
        weights = np.array([float(line) for line in lines], dtype=np.float64)
    except ValueError:
        i = next(i for i, line in enumerate(lines) if not _is_float(line))
        raise bad(f"weight {lines[i]!r} is not a number", offset + i + 1) from None
    if not np.all(np.isfinite(weights)):
        i = int(np.flatnonzero(~np.isfinite(weights))[0])
        raise bad(f"weight {lines[i]!r} is not finite", offset + i + 1)
    return weights


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
