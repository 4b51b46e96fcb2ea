"""CRFsuite's binary model files (``.crfsuite``), read into and written from a
:class:`~fastcrf._model.CRFModel`.

Layout (CRFsuite's ``crf1d_model.c``; integers little-endian uint32)::

    header (48 bytes)   "lCRF", file size, "FOMC", version 100, num_features,
                        num_labels, num_attrs, off_features, off_labels, off_attrs,
                        off_labelrefs, off_attrrefs
    FEAT chunk          "FEAT", size, num, then num x (type, src, dst, weight f64):
                        type 0 is a state feature (attribute src, label dst), type 1
                        a transition (label src followed by label dst)
    label CQDB          the labels (fastcrf._cqdb)
    attribute CQDB      the attributes that have a feature
    LFRF chunk          "LFRF", size, num, num offsets, then per label the ids of the
                        transition features leaving it (count, ids)
    AFRF chunk          the same per attribute, for its state features

CRFsuite itself writes 0 as ``num_features`` (so does :func:`write_model`) and reads
the feature count from the FEAT chunk; so does :func:`read_model`, which builds the
model from the FEAT chunk and the two dictionaries.  The reference chunks only index
the same features, but CRFsuite's tagger follows them, so :func:`read_model` checks
them too, and that the header's file size is the file's.

A CRFsuite model has no start or end scores: :func:`write_model` refuses a model
whose start or end scores are not all 0 (``fastcrf.pycrfsuite.Trainer`` trains
without them), and a model read from a file has them at 0.
"""

import struct

import numpy as np

from . import _cqdb
from ._features._encoding import AttributeVocabulary
from ._layout import StateLayout
from ._model import CRFModel, TrainingLog, check_label_count

MAGIC = b"lCRF"
MODEL_TYPE = b"FOMC"
VERSION = 100
HEADER_SIZE = 48
CHUNK_SIZE = 12
FEATURE = np.dtype([("type", "<u4"), ("src", "<u4"), ("dst", "<u4"), ("weight", "<f8")])
STATE, TRANSITION = 0, 1
_HEADER_FIELDS = ("size", "type", "version", "num_features", "num_labels", "num_attrs",
                  "off_features", "off_labels", "off_attrs", "off_labelrefs",
                  "off_attrrefs")


def is_crfsuite(prefix):
    """Whether bytes ``prefix`` (a file's first four bytes or more) start a CRFsuite
    model."""
    return bytes(prefix[:4]) == MAGIC


def read_header(buf, name="the model"):
    """The header fields of a CRFsuite model in ``buf``: a dict of ints (``magic``
    and ``type`` as str)."""
    if len(buf) < HEADER_SIZE or not is_crfsuite(buf):
        raise ValueError(f"{name} is not a CRFsuite model file (no 'lCRF' header)")
    values = struct.unpack_from("<I4s9I", buf, 4)
    header = dict(zip(_HEADER_FIELDS, values))
    header["type"] = header["type"].decode("latin-1")
    header["magic"] = MAGIC.decode()
    return header


def read_model(buf, name="the model"):
    """The :class:`CRFModel` of the CRFsuite model file contents ``buf`` (bytes).

    Every count and offset is checked against ``buf`` before it is used.

    Raises
    ------
    ValueError
        For contents that are not a CRFsuite model, or a truncated or corrupted one;
        the message names ``name``.
    """
    header = read_header(buf, name)

    def bad(why):
        return ValueError(f"{name} is not a readable CRFsuite model file: {why}")

    if header["type"] != MODEL_TYPE.decode() or header["version"] != VERSION:
        raise bad(f"model type {header['type']!r} version {header['version']}; fastcrf "
                  f"reads type 'FOMC' version {VERSION} (CRFsuite 0.12's crf1d)")
    if header["size"] != len(buf):
        raise bad(f"its header gives {header['size']} bytes, the file has {len(buf)} "
                  "(truncated or padded?)")
    K, A = header["num_labels"], header["num_attrs"]
    if K == 0:
        raise bad("it has no labels")
    off = header["off_features"]
    if off < HEADER_SIZE or off + CHUNK_SIZE > len(buf) or buf[off:off + 4] != b"FEAT":
        raise bad("its feature chunk lies outside the file or lacks its 'FEAT' mark")
    _size, n_features = struct.unpack_from("<2I", buf, off + 4)
    if off + CHUNK_SIZE + FEATURE.itemsize * n_features > len(buf):
        raise bad(f"its feature chunk ({n_features} features) runs past the end of the "
                  "file")
    try:
        labels = _cqdb.read_strings(buf, header["off_labels"], K, "label")
        attributes = _cqdb.read_strings(buf, header["off_attrs"], A, "attribute")
    except ValueError as exc:
        raise bad(str(exc)) from None
    if len(set(labels)) != K:
        raise bad("two labels have the same name")
    features = np.frombuffer(buf, dtype=FEATURE, count=n_features, offset=off + CHUNK_SIZE)
    kind, src, dst = (features[f].astype(np.int64) for f in ("type", "src", "dst"))
    weight = features["weight"].astype(np.float64)
    if not np.all((kind == STATE) | (kind == TRANSITION)):
        raise bad("a feature has a type other than state (0) or transition (1)")
    state = kind == STATE
    if np.any(dst >= K) or np.any(src[~state] >= K) or np.any(src[state] >= A):
        raise bad("a feature refers to a label or attribute outside the dictionaries")
    if not np.all(np.isfinite(weight)):
        raise bad("a feature weight is not finite")

    # The reference chunks only index the features, but CRFsuite's tagger reads them:
    # a file whose references are broken is refused here too.
    _check_refs(buf, header["off_labelrefs"], b"LFRF", K, n_features, bad)
    _check_refs(buf, header["off_attrrefs"], b"AFRF", A, n_features, bad)
    check_label_count(K, n_features, bad)
    transitions = np.zeros((K, K))
    np.add.at(transitions, (src[~state], dst[~state]), weight[~state])
    layout, flat = _state_layout(src[state], dst[state], weight[state], A, K)
    try:
        vocabulary = AttributeVocabulary(attributes)
    except (TypeError, ValueError) as exc:
        raise bad(f"its attribute dictionary is malformed ({exc})") from None
    chain = np.concatenate((transitions.ravel(), np.zeros(2 * K)))
    return CRFModel(labels, vocabulary, layout, flat, chain,
                    training_log=TrainingLog(None), metadata={})


def _check_refs(buf, off, mark, n_owners, n_features, bad):
    """Check the reference chunk at ``off``: its mark, that its table of offsets
    and every list it points to lie inside the file, and that the feature ids are
    below ``n_features``."""
    what = mark.decode()
    if off < HEADER_SIZE or off + CHUNK_SIZE > len(buf) or buf[off:off + 4] != mark:
        raise bad(f"its {what} chunk lies outside the file or lacks its mark")
    size, n = struct.unpack_from("<2I", buf, off + 4)
    if off + size > len(buf) or n < n_owners or CHUNK_SIZE + 4 * n > size:
        raise bad(f"its {what} chunk ({n} entries, {size} bytes) does not fit the file")
    starts = np.frombuffer(buf, dtype="<u4", count=n_owners,
                           offset=off + CHUNK_SIZE).astype(np.int64)
    if np.any((starts != 0) & ((starts < off) | (starts + 4 > len(buf)))):
        raise bad(f"its {what} chunk points outside the file")
    starts = starts[starts != 0]
    raw = np.frombuffer(buf, dtype=np.uint8)
    counts = raw[starts[:, None] + np.arange(4)].copy().view("<u4").ravel().astype(np.int64)
    if np.any(starts + 4 + 4 * counts > len(buf)):
        raise bad(f"a list of its {what} chunk runs past the end of the file")
    if counts.sum() > len(buf):
        raise bad(f"its {what} chunk lists more features than the file holds")
    # The byte offsets of every id of every list, gathered at once.
    first = np.repeat(starts + 4 - 4 * np.concatenate(([0], np.cumsum(counts)[:-1])),
                      counts) + 4 * np.arange(counts.sum())
    ids = raw[first[:, None] + np.arange(4)].copy().view("<u4").ravel()
    if len(ids) and int(ids.max()) >= n_features:
        raise bad(f"its {what} chunk refers to a feature that does not exist")


def _state_layout(attrs, labels, weights, A, K):
    """The layout and flat weights of state features given as (attribute, label,
    weight) triples (repeated pairs add up, as CRFsuite's scoring adds them)."""
    key = attrs * K + labels
    pairs, inverse = np.unique(key, return_inverse=True)
    summed = np.zeros(len(pairs))
    np.add.at(summed, inverse, weights)
    rows, cols = pairs // K, pairs % K
    ptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=A)))).astype(np.int64)
    tail = StateLayout(A, K, 0, ptr, cols.astype(np.int32))
    return tail.without_zeros(summed)


def write_model(model):
    """The CRFsuite model file contents of ``model``: bytes.

    Only non-zero weights are written, and only the attributes that have one (as
    CRFsuite does); labels keep their order.

    Raises
    ------
    ValueError
        When the model has non-zero start or end scores (a CRFsuite model has none),
        or a label or attribute name holds a NUL character.
    """
    if np.any(model.start != 0) or np.any(model.end != 0):
        raise ValueError(
            "this model has start/end scores (fastcrf.CRF learns them), which a CRFsuite "
            "model file cannot hold; save it in fastcrf's format, or train it with "
            "fastcrf.pycrfsuite.Trainer, which learns none, as CRFsuite does")
    K = len(model.classes)
    rows, cols, values = model.layout.nonzero(model.state)
    used, new_rows = np.unique(rows, return_inverse=True)
    ti, tj = np.nonzero(model.transitions)
    n_state = len(values)
    features = np.zeros(n_state + len(ti), dtype=FEATURE)
    features["type"][n_state:] = TRANSITION
    features["src"] = np.concatenate((new_rows, ti))
    features["dst"] = np.concatenate((cols, tj))
    features["weight"] = np.concatenate((values, model.transitions[ti, tj]))
    names = model.vocabulary.names
    label_db = _cqdb.write_strings(model.classes, "label")
    attr_db = _cqdb.write_strings([names[a] for a in used.tolist()], "attribute")

    parts = []
    pos = HEADER_SIZE

    def put(data):
        nonlocal pos
        parts.append(data)
        start, pos = pos, pos + len(data)
        return start

    feat = struct.pack("<4s2I", b"FEAT", CHUNK_SIZE + features.nbytes, len(features))
    off_features = put(feat + features.tobytes())
    off_labels = put(label_db)
    off_attrs = put(attr_db)
    # CRFsuite keeps L + 2 label slots (the last two were BOS/EOS, always empty).
    by_label = _refs(features["src"][n_state:], K, first_id=n_state)
    by_attr = _refs(new_rows, len(used), first_id=0)
    put(_aligned(pos))
    off_labelrefs = put(_ref_chunk(b"LFRF", by_label, K + 2, pos))
    put(_aligned(pos))
    off_attrrefs = put(_ref_chunk(b"AFRF", by_attr, len(used), pos))
    if pos >= 2 ** 32:
        raise ValueError("the model takes more than 4 GiB, more than a CRFsuite model "
                         "file can address")
    # num_features 0, as CRFsuite writes it (readers take the FEAT chunk's count).
    header = MAGIC + struct.pack("<I4s9I", pos, MODEL_TYPE, VERSION, 0, K,
                                 len(used), off_features, off_labels, off_attrs,
                                 off_labelrefs, off_attrrefs)
    return b"".join([header, *parts])


def _aligned(pos):
    """The zero bytes that bring ``pos`` to a multiple of 4."""
    return b"\0" * (-pos % 4)


def _refs(owners, n_owners, first_id):
    """The feature ids of each owner (label or attribute): a list of ``n_owners``
    uint32 arrays; feature ``i`` of ``owners`` has id ``first_id + i``."""
    order = np.argsort(owners, kind="stable")
    counts = np.bincount(owners, minlength=n_owners)[:n_owners]
    ids = (order + first_id).astype("<u4")
    return np.split(ids, np.cumsum(counts)[:-1]) if n_owners else []


def _ref_chunk(mark, groups, n_slots, begin):
    """A reference chunk of ``n_slots`` entries (the first ``len(groups)`` used)
    starting at file offset ``begin``: bytes."""
    table = CHUNK_SIZE + 4 * n_slots
    offsets = np.zeros(n_slots, dtype="<u4")
    body = []
    cur = begin + table
    for i, ids in enumerate(groups):
        offsets[i] = cur
        body.append(struct.pack("<I", len(ids)) + ids.tobytes())
        cur += 4 + 4 * len(ids)
    head = struct.pack("<4s2I", mark, cur - begin, n_slots)
    return b"".join([head, offsets.tobytes(), *body])
