"""python-crfsuite's ``Tagger`` over a fastcrf model (CRFsuite or fastcrf file).

The tagger holds one model and one "current" item sequence (:meth:`Tagger.set`, or
the last :meth:`Tagger.tag`), encoded once; its best path and marginals are
computed by fastcrf's compiled drivers on first use and kept until the next
sequence.
"""

import contextlib
import os
import sys

import numpy as np

from .. import _crfsuite_format
from .._persist import load_model_bytes
from ._items import as_encodable, strict_items


class ParsedDump:
    """What a model holds (python-crfsuite's ``Tagger.info()`` result).

    Attributes
    ----------
    header : dict
        The file header's fields as str (a CRFsuite file's: ``magic``, ``size``,
        ``type``, ``version``, ``num_features``, ``num_labels``, ``num_attrs`` and
        the chunk offsets in hex; a fastcrf file's: ``format``, ``num_labels``,
        ``num_attrs``, ``num_features``).
    labels : dict
        ``{label: id}``, the id as a str (as python-crfsuite gives it).
    attributes : dict
        ``{attribute: id}`` of the attributes that have a non-zero weight, the id as
        a str.
    transitions : dict
        ``{(from_label, to_label): weight}`` of the non-zero transition weights,
        rounded to 6 decimals as python-crfsuite gives them (it reads CRFsuite's
        text dump).
    state_features : dict
        ``{(attribute, label): weight}`` of the non-zero state weights, rounded the
        same way.
    start_weights, end_weights : dict
        ``{label: weight}`` of the non-zero start / end scores (fastcrf models
        only: a CRFsuite model has none).
    """

    def __init__(self):
        self.header = {}
        self.labels = {}
        self.attributes = {}
        self.transitions = {}
        self.state_features = {}
        self.start_weights = {}
        self.end_weights = {}


def _dumped(weight):
    """``weight`` as CRFsuite's dump prints it and python-crfsuite reads it back."""
    return float(f"{weight:f}")


def _position_error(pos, T):
    return ValueError(f"The position, {pos}is out of range of {T}")


class Tagger:
    """Predicts label sequences with a model (python-crfsuite's ``Tagger``).

    Opens CRFsuite model files (python-crfsuite's, CRFsuite's, or fastcrf's
    ``CRF.save(path, format="crfsuite")``) and fastcrf model files, told apart by
    their contents.  A fastcrf model's start/end scores are used.

    Parameters
    ----------
    n_jobs : int, optional
        fastcrf's OpenMP threads (one sequence at a time uses one).

    Examples
    --------
    >>> from fastcrf import pycrfsuite
    >>> tagger = pycrfsuite.Tagger()
    >>> tagger.open("model.crfsuite")                    # doctest: +SKIP
    >>> tagger.tag([{"w": "the"}, {"w": "dog"}])          # doctest: +SKIP
    ['DET', 'N']
    """

    def __new__(cls, *args, **kwargs):
        # Closed before __init__ runs, as python-crfsuite's (a Cython __cinit__): a
        # subclass whose __init__ does not call Tagger.__init__ still opens and tags.
        self = super().__new__(cls)
        self.n_jobs = None
        self._model = None
        self._header = None
        self._forget()
        return self

    def __init__(self, *, n_jobs=None):
        self.n_jobs = n_jobs

    def _forget(self):
        self._features = None
        self._length = 0
        self._path = None
        self._marginals = None

    # Opening ---------------------------------------------------------------

    def open(self, name):
        """Open a model file.

        Returns
        -------
        contextlib.closing
            Entering it gives this tagger; leaving it calls :meth:`close`.

        Raises
        ------
        FileNotFoundError
            When there is no such file.
        ValueError
            For a file that is not a readable CRFsuite or fastcrf model.
        """
        path = os.fspath(name)
        with open(path, "rb") as f:
            data = f.read()
        if _crfsuite_format.is_crfsuite(data) and len(data) <= _crfsuite_format.HEADER_SIZE:
            raise ValueError(f"Model file {name!r} doesn't have a complete header")
        if not (_crfsuite_format.is_crfsuite(data) or data[:4] == b"PK\x03\x04"):
            raise ValueError(f"Invalid model file {name!r}")
        # The CRFsuite reader's messages take the name as written, the .npz reader's
        # quote it themselves.
        self._load(data, repr(name) if _crfsuite_format.is_crfsuite(data) else path)
        return contextlib.closing(self)

    def open_inmemory(self, value):
        """Open a model from the contents of a model file (bytes).

        Returns
        -------
        contextlib.closing
        """
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, got {type(value).__name__}")
        if _crfsuite_format.is_crfsuite(value):
            if len(value) < _crfsuite_format.HEADER_SIZE:
                raise ValueError("Invalid model: incomplete header")
        elif value[:4] != b"PK\x03\x04":
            raise ValueError("Invalid model")
        self._load(value, "the model")
        return contextlib.closing(self)

    def _load(self, data, name):
        model, _ = load_model_bytes(data, name)
        self._header = (_crfsuite_format.read_header(data, name)
                        if _crfsuite_format.is_crfsuite(data) else None)
        self._model = model
        self._index = {label: k for k, label in enumerate(model.classes)}
        self._forget()

    def _use(self, model):
        """Hold ``model`` (a fitted CRFModel) as if opened (``fastcrf.CRF.tagger_``)."""
        self._model = model
        self._header = None
        self._index = {label: k for k, label in enumerate(model.classes)}
        self._forget()

    def close(self):
        """Close the model (a no-op when none is open)."""
        self._model = None
        self._header = None
        self._forget()

    def _opened(self):
        if self._model is None:
            raise ValueError("The tagger is not opened")
        return self._model

    def labels(self):
        """The model's labels: a list of str."""
        return list(self._opened().classes)

    # The current sequence ----------------------------------------------------

    def set(self, xseq):
        """Make ``xseq`` the current sequence of :meth:`tag`, :meth:`probability` and
        :meth:`marginal` (a list of items or an ItemSequence)."""
        model = self._opened()
        items = as_encodable(xseq)
        self._forget()
        if not items:
            return
        try:
            features = model.encode([items], self.n_jobs)
        except TypeError:
            features = model.encode([strict_items(items)], self.n_jobs)
        self._features = features
        self._length = len(items)

    def tag(self, xseq=None):
        """The most likely labels of ``xseq`` (which becomes the current sequence), or
        of the current sequence when ``xseq`` is None: a list of str."""
        model = self._opened()
        if xseq is not None:
            self.set(xseq)
        if self._features is None:
            return []
        if self._path is None:
            self._path = model.viterbi_codes(self._features, self.n_jobs)
        classes = model.classes
        return [classes[k] for k in self._path.tolist()]

    def _codes(self, yseq):
        labels = list(yseq)
        if len(labels) != self._length:
            raise ValueError(f"The numbers of items and labels differ: |x| = "
                             f"{self._length}, |y| = {len(labels)}")
        codes = []
        for label in labels:
            k = self._index.get(label) if isinstance(label, str) else None
            if k is None:
                raise RuntimeError(f"Failed to convert into label identifier: {label}")
            codes.append(k)
        return np.asarray(codes, dtype=np.int64)

    def probability(self, yseq):
        """``P(yseq | x)`` of the current sequence ``x``: a float (0.0 when there is
        no current sequence, as in python-crfsuite).

        Raises
        ------
        ValueError
            When ``yseq`` and the sequence differ in length.
        RuntimeError
            For a label the model does not have (python-crfsuite's error).
        """
        model = self._opened()
        if self._features is None:
            return 0.0
        codes = self._codes(yseq)
        return float(np.exp(model.log_probability(self._features, codes, self.n_jobs)[0]))

    def marginal(self, y, pos):
        """``P(y_pos = y | x)`` of the current sequence: a float (0.0 when there is
        none).

        Raises
        ------
        ValueError
            For a position outside the sequence.
        RuntimeError
            For a label the model does not have.
        """
        model = self._opened()
        if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)):
            raise TypeError(f"pos must be an int, got {type(pos).__name__}")
        if self._features is None:
            return 0.0
        if not 0 <= pos < self._length:
            raise _position_error(pos, self._length)
        k = self._index.get(y) if isinstance(y, str) else None
        if k is None:
            raise RuntimeError(f"Failed to convert into label identifier: {y}")
        if self._marginals is None:
            self._marginals = model.marginals(self._features, self.n_jobs)
        return float(self._marginals[pos, k])

    # What the model holds ---------------------------------------------------

    def info(self):
        """The model's labels, attributes, weights and header: a :class:`ParsedDump`.

        Raises
        ------
        RuntimeError
            When no model is open (python-crfsuite's error).
        """
        if self._model is None:
            raise RuntimeError("Tagger is closed")
        model = self._model
        dump = ParsedDump()
        dump.header = self._header_fields(model)
        dump.labels = {label: str(k) for k, label in enumerate(model.classes)}
        rows, cols, values = model.layout.nonzero(model.state)
        names, labels = model.vocabulary.names, model.classes
        used = np.unique(rows).tolist()
        dump.attributes = {names[a]: str(i) for i, a in enumerate(used)}
        # python-crfsuite parses CRFsuite's dump, whose weights have 6 decimals.
        dump.state_features = {(names[a], labels[k]): _dumped(w) for a, k, w in
                               zip(rows.tolist(), cols.tolist(), values.tolist())}
        dump.transitions = {(labels[i], labels[j]): _dumped(model.transitions[i, j])
                            for i, j in zip(*np.nonzero(model.transitions))}
        dump.start_weights = {labels[k]: float(model.start[k])
                              for k in np.flatnonzero(model.start)}
        dump.end_weights = {labels[k]: float(model.end[k])
                            for k in np.flatnonzero(model.end)}
        return dump

    def _header_fields(self, model):
        h = self._header
        if h is None:
            rows, _, _ = model.layout.nonzero(model.state)
            n = len(rows) + int(np.count_nonzero(model.transitions))
            return {"format": "fastcrf-crf", "num_features": str(n),
                    "num_labels": str(len(model.classes)),
                    "num_attrs": str(len(np.unique(rows)))}
        fields = {"magic": h["magic"], "size": str(h["size"]), "type": h["type"]}
        for key in ("version", "num_features", "num_labels", "num_attrs"):
            fields[key] = str(h[key])
        for key in ("off_features", "off_labels", "off_attrs", "off_labelrefs",
                    "off_attrrefs"):
            fields[key] = f"0x{h[key]:X}"
        return fields

    def dump(self, filename=None):
        """Write the model as text, in CRFsuite's dump format (to stdout when
        ``filename`` is None).

        Raises
        ------
        RuntimeError
            When no model is open (python-crfsuite's error).
        """
        text = self._dump_text()
        if filename is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        with open(os.fspath(filename), "w", encoding="utf-8",
                  errors="surrogateescape") as f:
            f.write(text)

    def _dump_text(self):
        dump = self.info()
        lines = ["FILEHEADER = {"]
        lines += [f"  {key}: {value}" for key, value in dump.header.items()]
        lines += ["}", "", "LABELS = {"]
        lines += [f"  {int(i):5d}: {label}" for label, i in dump.labels.items()]
        lines += ["}", "", "ATTRIBUTES = {"]
        lines += [f"  {int(i):5d}: {name}" for name, i in dump.attributes.items()]
        lines += ["}", "", "TRANSITIONS = {"]
        lines += [f"  (1) {a} --> {b}: {w:f}" for (a, b), w in dump.transitions.items()]
        lines += ["}", "", "STATE_FEATURES = {"]
        lines += [f"  (0) {a} --> {b}: {w:f}" for (a, b), w in dump.state_features.items()]
        lines += ["}", ""]
        for title, weights in (("START", dump.start_weights), ("END", dump.end_weights)):
            if weights:
                lines += [f"{title} = {{"]
                lines += [f"  {label}: {w:f}" for label, w in weights.items()]
                lines += ["}", ""]
        return "\n".join(lines) + "\n"
