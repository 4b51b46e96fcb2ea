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

Format version 4 is version 2 plus one array, written only for a model trained
under constraints (``CRF(constraints=...)``; other models are still written as
version 2, which older fastcrf reads, and a reader that does not know constraints
refuses the file rather than decoding without them).  Version 3 is left to another
extension of the format (feature hashing)::

    allowed             bool (n_labels + 2, n_labels + 2): the transitions the model
                        allows (row n_labels: START, column n_labels + 1: END, as
                        :func:`fastcrf.allowed_transitions`); the chain scores it
                        forbids are stored as 0 and read as -inf

CRFsuite's binary model files (``.crfsuite``, fastcrf._crfsuite_format) are read and
written too: :func:`load_model` tells the two formats apart by their first bytes,
never by the file name.

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
#: The version of a model file with constraints (the ``allowed`` array).
CONSTRAINED_VERSION = 4
_READS = (1, 2, CONSTRAINED_VERSION)
_CHAIN = ("transitions", "start", "end")
_STATE = {1: ("state",), 2: ("state_head", "tail_ptr", "tail_labels", "state_tail")}
_STATE[CONSTRAINED_VERSION] = _STATE[2] + ("allowed",)


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
    header = {
        "format": FORMAT,
        "format_version": (FORMAT_VERSION if model.constraints is None
                           else CONSTRAINED_VERSION),
        "fastcrf_version": __version__,
        "classes": list(model.classes),
        "params": params,
        "n_iter": int(model.n_iter),
        "training_log": {"algorithm": log.algorithm, "iterations": log.iterations},
    }
    arrays = {
        "header.json": _json_bytes(header),
        "attributes.json": _json_bytes(model.vocabulary.names),
        **_state_arrays(model.layout, model.state),
        "transitions": np.ascontiguousarray(model.transitions, dtype=np.float64),
        "start": np.ascontiguousarray(model.start, dtype=np.float64),
        "end": np.ascontiguousarray(model.end, dtype=np.float64),
    }
    if model.constraints is not None:
        arrays["allowed"] = np.ascontiguousarray(model.constraints, dtype=bool)
    if metadata is not None:
        arrays["metadata.json"] = metadata_json
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
            missing = set(_STATE[version]) - names
            if missing:
                raise ValueError(f"{path!r} is not a readable fastcrf model file (missing "
                                 f"{', '.join(sorted(missing))})")
            attributes = _read_json(archive["attributes.json"], path, "attribute list")
            arrays = {name: archive[name] for name in _CHAIN + _STATE[version]}
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
    K, A = len(classes), len(attributes)
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
        vocabulary = AttributeVocabulary(attributes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path!r}: the attribute list is malformed ({exc})") from None

    params = header.get("params") or {}
    log_data = header.get("training_log") or {}
    log = TrainingLog(log_data.get("algorithm", params.get("algorithm")))
    log.iterations = list(log_data.get("iterations", []))
    chain = np.concatenate([arrays[name].ravel() for name in _CHAIN])
    model = CRFModel(classes, vocabulary, layout, state, chain, training_log=log,
                     n_iter=int(header.get("n_iter", 0)), metadata=metadata,
                     constraints=allowed)
    return model, params


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
