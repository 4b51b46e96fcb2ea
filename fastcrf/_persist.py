"""Model files: a numpy ``.npz`` archive plus a JSON header, never a pickle.

Layout (format version 1)::

    header.json         uint8 array: UTF-8 JSON {"format": "fastcrf-crf",
                        "format_version": 1, "fastcrf_version", "classes",
                        "params", "n_iter", "training_log"}
    attributes.json     uint8 array: UTF-8 JSON list of attribute names
    metadata.json       optional uint8 array: UTF-8 JSON object the caller attached
                        (``CRF.save(path, metadata=...)``; the command line stores
                        its feature template there); readers that do not know it
                        ignore it, so the format version stays 1
    state               float64 (n_attributes, n_labels)
    transitions         float64 (n_labels, n_labels)
    start, end          float64 (n_labels,)

The file is written to a temporary name in the target folder and renamed over the
target, so a reader never sees a half-written model.  Loading uses
``np.load(allow_pickle=False)`` and ``json``: no code from the file can run, and
every shape and type is checked before the model is built.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from ._encoding import AttributeVocabulary
from ._training import Weights
from ._version import __version__

FORMAT = "fastcrf-crf"
FORMAT_VERSION = 1
_ARRAYS = ("state", "transitions", "start", "end")


def _json_bytes(obj):
    return np.frombuffer(json.dumps(obj, allow_nan=True).encode("utf-8"), dtype=np.uint8)


def save_model(crf, path, metadata=None):
    """Write a fitted :class:`fastcrf.CRF` to ``path`` atomically."""
    path = os.fspath(path)
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        try:
            metadata_json = _json_bytes(metadata)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata must be JSON-serialisable: {exc}") from None
    params = {}
    for name, value in crf.get_params().items():
        if value is None or isinstance(value, (bool, int, float, str)):
            params[name] = value
        else:  # e.g. a Generator as random_state: not representable, not needed
            params[name] = None
    log = crf.training_log_
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastcrf_version": __version__,
        "classes": list(crf.classes_),
        "params": params,
        "n_iter": int(crf.n_iter_),
        "training_log": {"algorithm": log.algorithm, "iterations": log.iterations},
    }
    arrays = {
        "header.json": _json_bytes(header),
        "attributes.json": _json_bytes(crf.vocabulary_.names),
        "state": np.ascontiguousarray(crf.state_weights_, dtype=np.float64),
        "transitions": np.ascontiguousarray(crf.transition_weights_, dtype=np.float64),
        "start": np.ascontiguousarray(crf.start_weights_, dtype=np.float64),
        "end": np.ascontiguousarray(crf.end_weights_, dtype=np.float64),
    }
    if metadata is not None:
        arrays["metadata.json"] = metadata_json
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastcrf-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_model(cls, path):
    """Read a model written by :func:`save_model`; see the module docstring."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            missing = {"header.json", "attributes.json", *_ARRAYS} - names
            if missing:
                raise ValueError(f"{path!r} is not a fastcrf model file (missing "
                                 f"{', '.join(sorted(missing))})")
            header = _read_json(archive["header.json"], path, "header")
            _check_header(header, path)
            attributes = _read_json(archive["attributes.json"], path, "attribute list")
            arrays = {name: archive[name] for name in _ARRAYS}
            metadata = {}
            if "metadata.json" in names:
                metadata = _read_json(archive["metadata.json"], path, "metadata")
                if not isinstance(metadata, dict):
                    raise ValueError(f"{path!r} is not a readable fastcrf model file: its "
                                     "metadata is not a JSON object")
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
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
    expected = {"state": (A, K), "transitions": (K, K), "start": (K,), "end": (K,)}
    for name, shape in expected.items():
        arr = arrays[name]
        if arr.dtype != np.float64 or arr.shape != shape:
            raise ValueError(f"{path!r}: array {name!r} has dtype {arr.dtype} and shape "
                             f"{arr.shape}; expected float64 {shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{path!r}: array {name!r} holds non-finite weights")
    try:
        vocabulary = AttributeVocabulary(attributes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path!r}: the attribute list is malformed ({exc})") from None

    params = header.get("params") or {}
    valid = set(cls._get_param_names())
    crf = cls(**{k: v for k, v in params.items() if k in valid})
    from ._estimator import TrainingLog

    log_data = header.get("training_log") or {}
    log = TrainingLog(log_data.get("algorithm", params.get("algorithm")))
    log.iterations = list(log_data.get("iterations", []))
    weights = Weights(*(np.ascontiguousarray(arrays[name]) for name in _ARRAYS))
    crf._set_fitted(vocabulary, classes, weights, log, int(header.get("n_iter", 0)))
    crf.metadata_ = metadata
    return crf


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
    if version != FORMAT_VERSION:
        raise ValueError(f"{path!r} has model format version {version!r}; this fastcrf "
                         f"({__version__}) reads version {FORMAT_VERSION}")
    if not isinstance(header.get("classes"), list):
        raise ValueError(f"{path!r}: the header has no label list")
