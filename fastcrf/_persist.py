"""Model files: a numpy ``.npz`` archive plus a JSON header, never a pickle.

Layout (format version 2)::

    header.json         uint8 array: UTF-8 JSON {"format": "fastcrf-crf",
                        "format_version": 2, "fastcrf_version", "classes",
                        "params", "n_iter", "training_log"}
    attributes.json     uint8 array: UTF-8 JSON list of attribute names
    metadata.json       optional uint8 array: UTF-8 JSON object the caller attached
                        (``CRF.save(path, metadata=...)``; the command line stores
                        its feature template there); readers that do not know it
                        ignore it
    state_head          float64 (n_dense, n_labels): every label's weight for the
                        attributes 0 .. n_dense - 1
    tail_ptr            int64 (n_attributes - n_dense + 1,): attribute n_dense + i
                        keeps the labels tail_labels[tail_ptr[i]:tail_ptr[i + 1]]
    tail_labels         int32 (n_tail,), increasing within an attribute
    state_tail          float64 (n_tail,): their weights
    transitions         float64 (n_labels, n_labels)
    start, end          float64 (n_labels,)

CRFsuite's binary model files (``.crfsuite``, fastcrf._crfsuite_format) are read and
written too: :func:`load_model` tells the two formats apart by their first bytes,
never by the file name.

Version 3 is written only for a feature-hashed model (``CRF(hash_features=...)``,
fastcrf._features._hashing), so that a reader that does not know hashing refuses it
rather than reading its rows as attributes: the header adds ``"hashing":
{"function": "murmur3_32", "n_buckets", "seed"}``, ``attributes.json`` is an empty
list (no name is kept) and ``buckets`` (int64, (n_rows,)) gives the bucket of every
row of the state weights.  Any version may hold ``feature_names.json``, the column
names of a model fitted on a scipy.sparse ``X`` with ``feature_names``.

Version 4 is version 2 plus the transition attributes of a model trained with
``transition_prefix`` (:class:`fastcrf._edges.EdgeCRFModel`)::

    header.json         also "transition_prefix": the prefix (a str)
    edge_attributes.json  uint8 array: UTF-8 JSON list of transition-attribute names
    edge_weights        float64 (n_edge_attributes, n_labels, n_labels)

Version 5 adds one array, written only for a model trained under constraints
(``CRF(constraints=...)``), so that a reader that does not know constraints refuses
the file rather than decoding without them::

    allowed             bool (n_labels + 2, n_labels + 2): the transitions the model
                        allows (row n_labels: START, column n_labels + 1: END, as
                        :func:`fastcrf.allowed_transitions`); the chain scores it
                        forbids are stored as 0 and read as -inf

A file is written in the lowest version that holds what its model has (version 2
for a plain model, which older fastcrf reads), and each later part is recognised by
its own key (``hashing`` in the header, ``transition_prefix`` in the header; version
5, the last, holds ``allowed``), never
by the version alone: a file of version N may hold the parts of every version <= N,
and must hold the part of N itself.  A reader that does not know a version refuses
the file rather than reading it without the part it does not know.

Version 1 files (fastcrf 0.1) hold one dense ``state`` (n_attributes, n_labels) array
instead of the four state arrays; they are still read.

The file is written to a temporary name in the target folder and renamed over the
target, so a reader never sees a half-written model.  Loading uses
``np.load(allow_pickle=False)`` and ``json``: no code from the file can run, and
every shape and type is checked before the model is built.
"""

import io
import json
import os
import zipfile
import zlib

import numpy as np

from . import _crfsuite_format
from ._atomic import atomic_file
from ._features._encoding import AttributeVocabulary
from ._layout import StateLayout
from ._model import CRFModel, TrainingLog
from ._version import __version__

FORMAT = "fastcrf-crf"
#: The ``format`` values of :func:`save_model`.
FORMATS = ("fastcrf", "crfsuite")
FORMAT_VERSION = 2
#: The version of a feature-hashed model's file.
HASHED_VERSION = 3
#: The version of files holding transition attributes (fastcrf._edges).
EDGES_VERSION = 4
#: The version of a model file with constraints (the ``allowed`` array).
CONSTRAINED_VERSION = 5
_READS = (1, 2, HASHED_VERSION, EDGES_VERSION, CONSTRAINED_VERSION)
_CHAIN = ("transitions", "start", "end")
_STATE = {1: ("state",), 2: ("state_head", "tail_ptr", "tail_labels", "state_tail")}
_EDGES = ("edge_attributes.json", "edge_weights")


def _state_names(version, hashed):
    """The state arrays of a file of ``version`` (``hashed``: with its buckets)."""
    return _STATE[1] if version == 1 else _STATE[2] + (("buckets",) if hashed else ())


def _json_bytes(obj):
    return np.frombuffer(json.dumps(obj, allow_nan=True).encode("utf-8"), dtype=np.uint8)


def save_model(model, path, *, params, metadata=None, format="fastcrf"):
    """Write ``model`` (a :class:`fastcrf._model.CRFModel`) to ``path`` atomically.

    ``params``: the estimator's parameters, kept in the header (values JSON cannot
    hold are stored as None); ``metadata``: a JSON-serialisable dict or None;
    ``format``: 'fastcrf' (this module's) or 'crfsuite' (CRFsuite's binary format,
    which holds neither parameters nor metadata).
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}; got "
                         f"{format!r}")
    if format == "crfsuite":
        if getattr(model.vocabulary, "hashed", False):
            # Its rows are buckets: a CRFsuite tagger would read "#<bucket>" as names.
            raise ValueError("a CRFsuite model file has no place for feature hashing; "
                             "save a hashed model in format='fastcrf'")
        if getattr(model, "edge_weights", None) is not None:
            raise ValueError("a CRFsuite model file has no place for transition "
                             "attributes (transition_prefix); save in format='fastcrf'")
        if model.constraints is not None:
            raise ValueError("a CRFsuite model file has no place for constraints; save "
                             "in format='fastcrf' to keep them")
        if metadata is not None:
            raise ValueError("a CRFsuite model file has no place for metadata; save in "
                             "format='fastcrf' to keep it")
        data = _crfsuite_format.write_model(model)
        with atomic_file(path) as f:
            f.write(data)
        return
    arrays = _npz_arrays(model, params, metadata)
    with atomic_file(path) as f:
        np.savez(f, **arrays)


def model_file_size(model, params):
    """The size in bytes of the file :func:`save_model` writes for ``model`` (in
    fastcrf's format, without metadata)."""
    buf = io.BytesIO()
    np.savez(buf, **_npz_arrays(model, params, None))
    return buf.tell()


def _npz_arrays(model, params, metadata):
    """The arrays of fastcrf's model file (see the module docstring)."""
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        try:
            metadata_json = _json_bytes(metadata)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata must be JSON-serialisable: {exc}") from None
    params = {name: value if value is None or isinstance(value, (bool, int, float, str))
              # e.g. a Generator as random_state: not representable, not needed
              else None for name, value in params.items()}
    log = model.training_log
    vocabulary = model.vocabulary
    hashed = getattr(vocabulary, "hashed", False)
    header = {
        "format": FORMAT,
        "format_version": HASHED_VERSION if hashed else FORMAT_VERSION,
        "fastcrf_version": __version__,
        "classes": list(model.classes),
        "params": params,
        "n_iter": int(model.n_iter),
        "training_log": {"algorithm": log.algorithm, "iterations": log.iterations,
                         **({} if log.step_rule is None else {"step_rule": log.step_rule})},
    }
    arrays = {
        "header.json": _json_bytes(header),
        "attributes.json": _json_bytes([] if hashed else vocabulary.names),
        **_state_arrays(model.layout, model.state),
        "transitions": np.ascontiguousarray(model.transitions, dtype=np.float64),
        "start": np.ascontiguousarray(model.start, dtype=np.float64),
        "end": np.ascontiguousarray(model.end, dtype=np.float64),
    }
    edge_weights = getattr(model, "edge_weights", None)
    if edge_weights is not None:
        header["format_version"] = EDGES_VERSION
        header["transition_prefix"] = model.transition_prefix
        arrays["header.json"] = _json_bytes(header)
        arrays["edge_attributes.json"] = _json_bytes(model.edge_vocabulary.names)
        arrays["edge_weights"] = np.ascontiguousarray(edge_weights, dtype=np.float64)
    if model.constraints is not None:
        header["format_version"] = CONSTRAINED_VERSION
        arrays["header.json"] = _json_bytes(header)
        arrays["allowed"] = np.ascontiguousarray(model.constraints, dtype=bool)
    if metadata is not None:
        arrays["metadata.json"] = metadata_json
    if hashed:
        header["hashing"] = {"function": "murmur3_32", "n_buckets": vocabulary.n_buckets,
                             "seed": vocabulary.seed}
        arrays["header.json"] = _json_bytes(header)
        arrays["buckets"] = np.ascontiguousarray(vocabulary.buckets, dtype=np.int64)
    if model.feature_names is not None:
        arrays["feature_names.json"] = _json_bytes(list(model.feature_names))
    return arrays


def load_model(path):
    """Read a model file of either format (see the module docstring).

    Returns
    -------
    model : CRFModel
        With the file's metadata (an empty dict when it has none).
    params : dict
        The estimator parameters the header holds (empty for a CRFsuite file).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        magic = f.read(4)
        if _crfsuite_format.is_crfsuite(magic):
            return _crfsuite_format.read_model(magic + f.read(), repr(path)), {}
    _check_zip(magic, path)
    return _load_npz(path, path)


def load_model_bytes(data, name="the model"):
    """As :func:`load_model`, from a model file's contents ``data`` (bytes);
    ``name`` is what error messages call it."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a model's contents must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if _crfsuite_format.is_crfsuite(data):
        return _crfsuite_format.read_model(data, name), {}
    _check_zip(data[:4], name)
    return _load_npz(io.BytesIO(data), name)


def _check_zip(magic, path):
    """Reject what is no zip archive before np.load sees it: np.load would call it
    pickled data and suggest ``allow_pickle=``, an unsafe step for an untrusted file."""
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        what = "an empty file" if not magic else "neither an .npz archive nor a CRFsuite model"
        raise ValueError(f"{path!r} is not a fastcrf model file: {what}")


def _load_npz(source, path):
    """:func:`load_model` of a fastcrf file: ``source`` a path or a binary file
    object, ``path`` its name in messages."""
    try:
        with np.load(source, allow_pickle=False) as archive:
            names = set(archive.files)
            missing = {"header.json", "attributes.json", *_CHAIN} - names
            if missing:
                raise ValueError(f"{path!r} is not a fastcrf model file (missing "
                                 f"{', '.join(sorted(missing))})")
            header = _read_json(archive["header.json"], path, "header")
            _check_header(header, path)
            version = header["format_version"]
            # Each part by its own key; the part of the file's own version must be there.
            hashed = version == HASHED_VERSION or (version > HASHED_VERSION
                                                   and "hashing" in header)
            edges = version == EDGES_VERSION or (version > EDGES_VERSION
                                                 and "transition_prefix" in header)
            missing = set(_state_names(version, hashed)) - names
            if missing:
                raise ValueError(f"{path!r} is not a readable fastcrf model file (missing "
                                 f"{', '.join(sorted(missing))})")
            attributes = _read_json(archive["attributes.json"], path, "attribute list")
            if edges and set(_EDGES) - names:
                raise ValueError(f"{path!r} is not a readable fastcrf model file (missing "
                                 f"{', '.join(sorted(set(_EDGES) - names))})")
            arrays = {name: archive[name] for name in _CHAIN + _state_names(version, hashed)}
            feature_names = None
            if "feature_names.json" in names:
                feature_names = _read_json(archive["feature_names.json"], path,
                                           "feature name list")
            if version >= CONSTRAINED_VERSION:
                if "allowed" not in names:
                    raise ValueError(f"{path!r} is not a readable fastcrf model file "
                                     "(missing allowed)")
                arrays["allowed"] = archive["allowed"]
            if edges:
                arrays["edge_weights"] = archive["edge_weights"]
                edge_names = _read_json(archive["edge_attributes.json"], path,
                                        "transition-attribute list")
            metadata = {}
            if "metadata.json" in names:
                metadata = _read_json(archive["metadata.json"], path, "metadata")
                if not isinstance(metadata, dict):
                    raise ValueError(f"{path!r} is not a readable fastcrf model file: its "
                                     "metadata is not a JSON object")
    # What the zip and .npy readers raise on a damaged file (found by fuzzing:
    # an unsupported zip version is NotImplementedError, an encrypted member
    # RuntimeError, a bad deflate stream zlib.error).
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, NotImplementedError,
            RuntimeError, zlib.error, OverflowError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path!r} is not a readable fastcrf model file: truncated or "
                         f"corrupted ({exc})") from None
    except ValueError as exc:
        if "fastcrf" in str(exc):
            raise
        raise ValueError(f"{path!r} is not a readable fastcrf model file: {exc}") from None

    classes = header["classes"]
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) != len(classes)):
        raise ValueError(f"{path!r}: the label list is malformed")
    if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
        raise ValueError(f"{path!r}: the attribute list is malformed")
    if feature_names is not None and (not isinstance(feature_names, list) or not all(
            isinstance(a, str) for a in feature_names)):
        raise ValueError(f"{path!r}: the feature name list is malformed")
    K, A = len(classes), len(attributes)
    if hashed:
        vocabulary = _hashed_vocabulary(header, arrays["buckets"], attributes, path)
        A = len(vocabulary)
    if version == 1:
        _check_array(arrays, "state", np.float64, (A, K), path)
        layout = StateLayout.dense(A, K)
        state = layout.from_dense(arrays["state"])
    else:
        layout, state = _read_state(arrays, A, K, path)
    for name, shape in {"transitions": (K, K), "start": (K,), "end": (K,)}.items():
        _check_array(arrays, name, np.float64, shape, path)
    allowed = None
    if version >= CONSTRAINED_VERSION:
        _check_array(arrays, "allowed", np.bool_, (K + 2, K + 2), path)
        allowed = arrays["allowed"]
    try:
        if not hashed:
            vocabulary = AttributeVocabulary(attributes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path!r}: the attribute list is malformed ({exc})") from None

    params = header.get("params") or {}
    log_data = header.get("training_log") or {}
    log = TrainingLog(log_data.get("algorithm", params.get("algorithm")))
    log.iterations = list(log_data.get("iterations", []))
    if isinstance(log_data.get("step_rule"), str):
        log.step_rule = log_data["step_rule"]
    chain = np.concatenate([arrays[name].ravel() for name in _CHAIN])
    if edges:
        return _edge_model(classes, vocabulary, layout, state, chain, log, header, metadata,
                           edge_names, arrays, path, allowed), params
    model = CRFModel(classes, vocabulary, layout, state, chain, training_log=log,
                     n_iter=int(header.get("n_iter", 0)), metadata=metadata,
                     constraints=allowed)
    if feature_names is not None:
        model.feature_names = feature_names
    return model, params


def _hashed_vocabulary(header, buckets, attributes, path):
    """The checked HashedVocabulary of a version-3 file."""
    from ._features._hashing import MAX_BUCKETS, HashedVocabulary

    hashing = header.get("hashing")
    hashing = hashing if isinstance(hashing, dict) else {}
    if hashing.get("function") != "murmur3_32":
        raise ValueError(f"{path!r}: a hashed model file needs a 'hashing' header with "
                         "function 'murmur3_32'")
    n, seed = hashing.get("n_buckets"), hashing.get("seed")
    if type(n) is not int or not 2 <= n <= MAX_BUCKETS:
        raise ValueError(f"{path!r}: hashing n_buckets must be an int in [2, 2**31 - 1], "
                         f"got {n!r}")
    if type(seed) is not int or not 0 <= seed < 2 ** 32:
        raise ValueError(f"{path!r}: hashing seed must be an int in [0, 2**32), got {seed!r}")
    if attributes != []:
        raise ValueError(f"{path!r}: a hashed model file keeps no attribute names")
    if buckets.dtype != np.int64 or buckets.ndim != 1:
        raise ValueError(f"{path!r}: array 'buckets' must be 1-d int64")
    try:
        return HashedVocabulary(n, seed, buckets)
    except ValueError as exc:
        raise ValueError(f"{path!r}: array 'buckets' is malformed ({exc})") from None


def _edge_model(classes, vocabulary, layout, state, chain, log, header, metadata,
                edge_names, arrays, path, allowed=None):
    """The checked :class:`fastcrf._edges.EdgeCRFModel` of a version-4 file (or of a
    later one with transition attributes; ``allowed``: its constraints)."""
    from ._edges import EdgeCRFModel

    prefix = header.get("transition_prefix")
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"{path!r}: the header's transition_prefix is malformed")
    if not isinstance(edge_names, list) or not all(isinstance(a, str) for a in edge_names):
        raise ValueError(f"{path!r}: the transition-attribute list is malformed")
    K = len(classes)
    _check_array(arrays, "edge_weights", np.float64, (len(edge_names), K, K), path)
    try:
        edge_vocabulary = AttributeVocabulary(edge_names)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path!r}: the transition-attribute list is malformed "
                         f"({exc})") from None
    return EdgeCRFModel(classes, vocabulary, layout, state, chain, training_log=log,
                        n_iter=int(header.get("n_iter", 0)), metadata=metadata,
                        constraints=allowed, transition_prefix=prefix,
                        edge_vocabulary=edge_vocabulary,
                        edge_weights=arrays["edge_weights"])


def _read_json(arr, path, what):
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(f"{path!r}: the {what} is not stored as UTF-8 JSON")
    try:
        return json.loads(arr.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!r}: the {what} is corrupted ({exc})") from None


def _check_header(header, path):
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a fastcrf model file")
    version = header.get("format_version")
    if version not in _READS or isinstance(version, bool):
        raise ValueError(f"{path!r} has model format version {version!r}; this fastcrf "
                         f"({__version__}) reads versions "
                         f"{', '.join(str(v) for v in _READS)}")
    if not isinstance(header.get("classes"), list):
        raise ValueError(f"{path!r}: the header has no label list")


def _state_arrays(layout, state):
    """The version-2 arrays of the state weights ``state`` (flat in ``layout``),
    without the weights that are exactly 0 (:meth:`StateLayout.without_zeros`)."""
    layout, state = layout.without_zeros(state)
    K, S, D = layout.n_labels, layout.stride, layout.n_dense
    return {
        "state_head": np.ascontiguousarray(state[: D * S].reshape(D, S)[:, :K]),
        "tail_ptr": np.ascontiguousarray(layout.tail_ptr, dtype=np.int64),
        "tail_labels": np.ascontiguousarray(layout.tail_labels, dtype=np.int32),
        "state_tail": np.ascontiguousarray(state[D * S:]),
    }


def _check_array(arrays, name, dtype, shape, path):
    arr = arrays[name]
    if arr.dtype != dtype or arr.shape != shape:
        raise ValueError(f"{path!r}: array {name!r} has dtype {arr.dtype} and shape "
                         f"{arr.shape}; expected {np.dtype(dtype).name} {shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{path!r}: array {name!r} holds non-finite weights")


def _read_state(arrays, A, K, path):
    """The checked (layout, flat state) of version-2 arrays."""
    head = arrays["state_head"]
    D = head.shape[0] if head.ndim == 2 else -1
    if not 0 <= D <= A:
        raise ValueError(f"{path!r}: array 'state_head' has shape {head.shape}; expected "
                         f"(n_dense <= {A}, {K})")
    _check_array(arrays, "state_head", np.float64, (D, K), path)
    _check_array(arrays, "tail_ptr", np.int64, (A - D + 1,), path)
    ptr = arrays["tail_ptr"]
    n_tail = int(ptr[-1])
    if ptr[0] != 0 or np.any(np.diff(ptr) < 0) or np.any(np.diff(ptr) > K):
        raise ValueError(f"{path!r}: array 'tail_ptr' is not a valid offset array")
    _check_array(arrays, "tail_labels", np.int32, (n_tail,), path)
    _check_array(arrays, "state_tail", np.float64, (n_tail,), path)
    labels = arrays["tail_labels"]
    if n_tail and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"{path!r}: array 'tail_labels' holds labels outside [0, {K})")
    layout = StateLayout(A, K, D, np.ascontiguousarray(ptr), np.ascontiguousarray(labels))
    S = layout.stride
    state = np.zeros(layout.size)
    state[: D * S].reshape(D, S)[:, :K] = head
    state[D * S:] = arrays["state_tail"]
    return layout, state
