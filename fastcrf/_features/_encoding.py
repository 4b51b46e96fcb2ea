"""Feature and label encoding for the CRFsuite-style estimator.

The input format is python-crfsuite's (and so sklearn-crfsuite's): ``X`` is a list of
sequences, a sequence is a list of tokens, and a token's features are either

- a dict ``{name: value}``: a str value ``v`` is the binary attribute ``"name:v"``
  (weight 1.0); a real number is the attribute ``"name"`` with that weight; a bool is
  ``"name"`` with weight 1.0 or 0.0; a nested dict or list is expanded with
  ``"name:"`` prepended to each of its attribute names (``{"w": {"lower": "x"}}`` is
  ``"w:lower:x"``, ``{"w": ["a", "b"]}`` is ``"w:a"`` and ``"w:b"``);
- a list or tuple of str: each is a binary attribute with weight 1.0.

The ``":"`` is what python-crfsuite actually joins with, in both cases (its
documentation says ``"name=value"`` for str values, but its code, and therefore every
model and ``state_features_`` key it produces, uses ``"name:value"``).

Encoded sequences are flat CSR-style arrays (:class:`EncodedSequences`): one entry
per (token, attribute) occurrence, a per-token offset array and a per-sequence
offset array in tokens.  Every error names the argument and the position, e.g.
``X[3][7]['word']``.
"""

import math
import numbers
import os
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ._encode import (
    Encoder,
    Table,
    _seed_hash,
    count_ids,
    label_run,
    name_table,
    renumber_ids,
    reorder,
)
from .._parallel import effective_n_threads

# The encoding tables hash names with a seed of their own, drawn once per process so
# that no input can be crafted to collide (ids never depend on it).
_seed_hash(int.from_bytes(os.urandom(8), "little"))

#: Joins a feature name to its str value or to a nested attribute name, as
#: python-crfsuite does.
SEPARATOR = ":"

_TOKEN_HELP = "a dict of features or a list/tuple of str attribute names"
_VALUE_HELP = "a str, a real number, a bool, or a dict/list of them"


# eq=False: a generated __eq__/__hash__ would compare/hash the arrays and fail.
@dataclass(frozen=True, eq=False)
class EncodedSequences:
    """A batch of feature sequences as flat arrays.

    The attributes of token ``t`` are ``attr_ids[token_offsets[t]:token_offsets[t + 1]]``
    with weights ``values[...]`` over the same range; the tokens of sequence ``s`` are
    ``token_offsets[seq_offsets[s]:seq_offsets[s + 1]]``.  Tokens are numbered across
    the whole batch, in order.

    Attributes
    ----------
    attr_ids : ndarray of shape (n_entries,), int32
        Attribute ids in ``[0, n_attributes)``, in the order the features were given.
        A token may list the same id more than once (as CRFsuite allows).
    values : ndarray of shape (n_entries,), float64
        Finite weights, one per entry of ``attr_ids``.  (The estimator's own
        internal arrays leave it empty when every weight is 1.0: see
        ``dense_values`` of :func:`fit_encode` and :func:`encode`.)
    token_offsets : ndarray of shape (n_tokens + 1,), int64
        Non-decreasing, from 0 to ``n_entries``.
    seq_offsets : ndarray of shape (n_sequences + 1,), int64
        Strictly increasing (no sequence is empty), from 0 to ``n_tokens``.
    n_attributes : int
        Size of the attribute id space: the vocabulary's length.
    """

    attr_ids: np.ndarray
    values: np.ndarray
    token_offsets: np.ndarray
    seq_offsets: np.ndarray
    n_attributes: int

    def kernel_args(self):
        """``(attr_ids, values, token_offsets, seq_offsets)``: how the compiled drivers
        of fastcrf._kernels take this batch."""
        return (self.attr_ids, self.values, self.token_offsets, self.seq_offsets)

    @property
    def n_sequences(self):
        """Number of sequences."""
        return len(self.seq_offsets) - 1

    @property
    def n_tokens(self):
        """Number of tokens over all sequences."""
        return len(self.token_offsets) - 1

    @property
    def lengths(self):
        """Tokens per sequence: ndarray of shape (n_sequences,), int64."""
        return np.diff(self.seq_offsets)


class AttributeVocabulary:
    """Attribute names and their contiguous integer ids.

    Build one from training data with :meth:`build` (or :func:`fit_encode`, which
    also returns the encoded training set from the same single pass).

    Parameters
    ----------
    names : iterable of str
        Distinct attribute names; the i-th gets id i.
    counts : array-like of int of shape (len(names),), optional
        Occurrences of each attribute in the training data.
    min_freq : float, default=0
        The cutoff the vocabulary was built with (informative only).

    Attributes
    ----------
    names : list of str
        ``names[i]`` is the attribute with id ``i``.
    index : dict of str to int
        The inverse of ``names``, built on first use (encoding reads a compiled
        table of the names instead, so a vocabulary of a fit need not hold a dict).
    counts : ndarray of shape (len(names),), int64, or None
    min_freq : float
    """

    # Set on an instance only once known: the dict (see index) and the compiled
    # name table with what it was built from (see _name_table).
    _index = None
    _table = None

    def __init__(self, names, counts=None, min_freq=0):
        names = list(names)
        # The compiled table of the names checks them; only a failure is redone in
        # Python, to name the culprit (types first, then duplicates).
        table = Table(len(names))
        if table.add_names(names) != len(names):
            for pos, name in enumerate(names):
                if type(name) is not str:
                    raise TypeError(
                        f"names must hold str attribute names; names[{pos}] is "
                        f"{name!r} ({type(name).__name__})"
                    )
            seen = set()
            dup = next((name for name in names if name in seen or seen.add(name)), None)
            if dup is not None:
                raise ValueError(f"names must be distinct; {dup!r} appears more than once")
            table = None
        if counts is not None:
            counts = np.asarray(counts, dtype=np.int64)
            if counts.shape != (len(names),):
                raise ValueError(
                    f"counts must have shape ({len(names)},), one per name, got {counts.shape}"
                )
        self.names = names
        self.counts = counts
        self.min_freq = min_freq
        if table is not None:
            self._keep_table(table)

    @classmethod
    def build(cls, X, min_freq=0):
        """Vocabulary of the attributes seen in ``X`` at least ``min_freq`` times.

        Parameters
        ----------
        X : iterable of sequences of token features
        min_freq : float, default=0
            Attributes with fewer occurrences (counted over every token of every
            sequence) are left out.

        Returns
        -------
        AttributeVocabulary
            Ids follow the order in which the attributes are first seen.
        """
        return fit_encode(X, min_freq)[0]

    @classmethod
    def _from_pass(cls, names, table, counts, min_freq):
        """The vocabulary of an encoding pass, whose ``names`` are distinct str by
        construction: not checked again.  ``table`` is the pass's name table (a
        :class:`~fastcrf._features._encode.Table` of ``names[i] -> i``), or None."""
        vocabulary = cls.__new__(cls)
        vocabulary.names = names
        vocabulary.counts = counts
        vocabulary.min_freq = min_freq
        if table is not None:
            vocabulary._keep_table(table)
        return vocabulary

    @property
    def index(self):
        """dict of str to int: the inverse of ``names``, built on first use."""
        index = self._index
        if index is None:
            names = self.names
            index = dict(zip(names, range(len(names))))
            cached = self._cached()
            self._index = index
            if cached is not None:
                self._keep_table(cached[4])  # the same mapping: still current
        return index

    @index.setter
    def index(self, index):
        self._index = index

    def _keep_table(self, table):
        """Cache ``table`` (or None) as the compiled table of the current names and
        index."""
        index = self._index
        self._table = (self.names, len(self.names), index,
                       -1 if index is None else len(index), table)

    def _cached(self):
        """The cache entry of the name table, or None when the names or the index
        were replaced or changed size since it was made."""
        cached = self._table
        if cached is None:
            return None
        names, n_names, index, n_index, _ = cached
        if (names is not self.names or n_names != len(names) or index is not self._index
                or n_index != (-1 if index is None else len(index))):
            return None
        return cached

    def _name_table(self):
        """The compiled lookup table of the names (fastcrf._features._encode.Table), made on
        first use and again if ``names`` or ``index`` is replaced or changes size; None
        when ``index`` holds anything but exact str names and ids in [0, 2**31)."""
        cached = self._cached()
        if cached is not None:
            return cached[4]
        table = None
        if self._index is None:
            table = Table(len(self.names))
            if table.add_names(self.names) != len(self.names):
                table = None  # not all exact str, or repeated: as the dict says
        if table is None:
            table = name_table(self.index)
        self._keep_table(table)
        return table

    def _reorder(self, order):
        """Keep the names ``names[order[0]], names[order[1]], ...`` as ids 0, 1, ...,
        in place (with their counts and the name table); ``order`` holds distinct
        ids, and the names it leaves out are dropped.

        Returns
        -------
        new_id : ndarray of shape (n_names_before,), int32
            The new id of each old id, -1 for a dropped name.
        """
        order = np.ascontiguousarray(order, dtype=np.intp)
        cached = self._cached()
        table = None if cached is None else cached[4]
        new_id = np.full(len(self.names), -1, dtype=np.int32)
        reorder(self.names, order)  # checks order first
        new_id[order] = np.arange(len(order), dtype=np.int32)
        if self.counts is not None:
            self.counts = self.counts[order]
        self._index = None
        self._table = None
        if table is not None:
            table.renumber(new_id)
            self._keep_table(table)
        return new_id

    def __len__(self):
        return len(self.names)

    def __contains__(self, name):
        if type(name) is str:
            table = self._name_table()
            if table is not None:
                return table.lookup(name) >= 0
        return name in self.index

    def __repr__(self):
        return f"<AttributeVocabulary of {len(self.names)} attributes>"

    # The index and the table are redundant with the names: leave them out of
    # pickles (they hold a fitted estimator's largest state) and rebuild on use.
    def __getstate__(self):
        return {"names": self.names, "counts": self.counts, "min_freq": self.min_freq}

    def __setstate__(self, state):
        self.names = state["names"]
        self.counts = state["counts"]
        self.min_freq = state["min_freq"]


# ---------------------------------------------------------------------------
# Validation and the general (slow) path.  The compiled loop (fastcrf/_features/_encode.pyx,
# driven by _encode) and the pure-Python one (_encode_py) handle the common shapes
# inline and defer everything else here: a sequence they do not handle is encoded
# (again) through here, so every precise error message and every
# unusual-but-valid input (numpy scalars, str subclasses, bytes, Mappings, nested
# features) is handled in one place.
# ---------------------------------------------------------------------------


class _Redo(Exception):
    """The fast loop met something it does not handle: redo the sequence slowly."""


def _where(i, j, path=()):
    return f"X[{i}][{j}]" + "".join(f"[{key!r}]" for key in path)


def _as_name(name, what):
    """Return ``name`` as a str (str subclasses and UTF-8 bytes convert) or raise."""
    if type(name) is str:
        return name
    if isinstance(name, str):
        return str(name)
    if isinstance(name, bytes):
        try:
            return name.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is bytes that are not valid UTF-8: {name!r}") from None
    raise TypeError(
        f"{what} must be a str attribute name, got {name!r} ({type(name).__name__})"
    )


def _real_value(value, where):
    """``value`` as a finite float, or raise naming ``where``."""
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"{where} = {value!r} is too large for a float64 weight") from None
    if not math.isfinite(x):
        raise ValueError(f"{where} = {value!r}: feature values must be finite (no NaN or inf)")
    return x


def _value_pairs(prefix, value, out, i, j, path):
    """Append the ``(name, weight)`` pairs of dict feature ``prefix: value`` to ``out``."""
    if isinstance(value, str):
        out.append((prefix + SEPARATOR + str(value), 1.0))
    elif isinstance(value, bytes):
        out.append((prefix + SEPARATOR + _as_name(value, _where(i, j, path)), 1.0))
    elif isinstance(value, (bool, np.bool_)):
        out.append((prefix, 1.0 if value else 0.0))
    elif isinstance(value, (numbers.Real, Decimal)):
        # Decimal is a number but not a numbers.Real; python-crfsuite takes its float
        # (database and pandas columns hand them out).
        out.append((prefix, _real_value(value, _where(i, j, path))))
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            name = _as_name(key, f"{_where(i, j, path)} has a key that")
            _value_pairs(prefix + SEPARATOR + name, sub, out, i, j, path + (key,))
    elif isinstance(value, (list, tuple, set, frozenset)):
        # python-crfsuite treats a nested list like a list token: names of weight 1.
        for item in value:
            what = f"each item of {_where(i, j, path)}"
            out.append((prefix + SEPARATOR + _as_name(item, what), 1.0))
    else:
        raise TypeError(
            f"{_where(i, j, path)} has a value of unsupported type "
            f"{type(value).__name__} ({value!r}); use {_VALUE_HELP}"
        )


def _token_pairs(token, i, j):
    """Validated ``(name, weight)`` pairs of token ``X[i][j]``, in order."""
    out = []
    if isinstance(token, Mapping):
        for key, value in token.items():
            name = _as_name(key, f"{_where(i, j)} has a key that")
            _value_pairs(name, value, out, i, j, (key,))
    elif isinstance(token, (list, tuple)):
        for k, name in enumerate(token):
            out.append((_as_name(name, f"X[{i}][{j}][{k}]"), 1.0))
    elif isinstance(token, (str, bytes)):
        raise TypeError(
            f"X[{i}][{j}] is a {type(token).__name__} ({token!r}), not a token's features: "
            "X looks like a "
            "single sequence of tokens; pass a list of sequences, e.g. [X]"
        )
    else:
        raise TypeError(f"X[{i}][{j}] must be {_TOKEN_HELP}, got {type(token).__name__}")
    return out


def _as_sequence(seq, i, arg, item):
    """Return sequence ``arg[i]`` (of ``item``) as a list, or raise a structural error."""
    if isinstance(seq, (str, bytes)):
        raise TypeError(
            f"{arg}[{i}] is a {type(seq).__name__} ({seq!r}), not a sequence of {item}: "
            f"{arg} looks like a "
            f"single sequence; pass a list of sequences of {item}, e.g. [{arg}]"
        )
    if isinstance(seq, Mapping):
        if arg == "X":
            raise TypeError(
                f"X[{i}] is a dict (one token's features), not a sequence of tokens: X "
                "looks like a single sequence; pass a list of sequences, e.g. [X]"
            )
        raise TypeError(f"{arg}[{i}] must be a sequence of {item}, got {type(seq).__name__}")
    try:
        return list(seq)
    except TypeError:
        raise TypeError(
            f"{arg}[{i}] must be a sequence of {item}, got {type(seq).__name__}"
        ) from None


def _check_outer(X, arg):
    """Return an iterator over the sequences of ``X``, or raise naming ``arg``."""
    if X is None or isinstance(X, (str, bytes, Mapping)):
        raise TypeError(f"{arg} must be a list of sequences, got {type(X).__name__}")
    try:
        return iter(X)
    except TypeError:
        raise TypeError(f"{arg} must be a list of sequences, got {type(X).__name__}") from None


def _check_min_freq(min_freq):
    if isinstance(min_freq, bool) or not isinstance(min_freq, numbers.Real):
        raise TypeError(f"min_freq must be a real number, got {type(min_freq).__name__}")
    if not (0 <= min_freq < math.inf):
        raise ValueError(f"min_freq must be finite and >= 0, got {min_freq}")


# ---------------------------------------------------------------------------
# The encoding loop: compiled (_encode), with the pure-Python loop it replaced
# (_encode_py) kept as the reference the tests and bench/bench_encoding.py compare
# against.  Both give the same arrays and raise the same errors.
# ---------------------------------------------------------------------------


def _encode(X, index, names, grow, table=None, dense_values=True, n_threads=None):
    """One pass over ``X``: return ``(ids, values, token_offsets, seq_offsets)``.

    With ``grow``, unseen attributes get the next id (``names`` is extended in place,
    and ``index`` too unless it is None); ``table``, when given, is an empty
    :class:`~fastcrf._features._encode.Table` that receives every name and its id.  Without
    ``grow``, unseen attributes are dropped, and ``table`` may be the vocabulary's
    compiled copy of ``index`` (which is then not read, and may be None).  With
    ``dense_values`` False, ``values`` is empty when every value is 1.0.  The
    compiled :class:`~fastcrf._features._encode.Encoder` encodes every sequence of the common
    shapes (on ``n_threads`` OpenMP threads where it can; None: all of them); it hands
    any other sequence back untouched, to :func:`_encode_slow`.
    """
    it = _check_outer(X, "X")
    ids = array("i")
    tok_offsets = array("q", [0])
    seq_offsets = array("q", [0])
    x_pos = array("q")
    x_val = array("d")
    enc = Encoder(
        index, names, grow, SEPARATOR, ids, tok_offsets, seq_offsets, x_pos, x_val, table,
        effective_n_threads(n_threads),
    )
    args = (enc.id_of, ids, tok_offsets, seq_offsets, x_pos, x_val)
    if type(X) is list or type(X) is tuple:
        i = enc.run(X, 0)
        while i < len(X):
            _encode_slow(X[i], i, *args)
            i = enc.run(X, i + 1)
    else:
        for i, seq in enumerate(it):
            if not enc.one(seq):
                _encode_slow(seq, i, *args)
    return _finish(ids, tok_offsets, seq_offsets, x_pos, x_val, grow, dense_values)


def _encode_slow(seq, i, id_of, ids, tok_offsets, seq_offsets, x_pos, x_val):
    """Append sequence ``X[i]`` through the general path (or raise its error).

    ``id_of(name)`` is the id of a name, a new one when growing, or -1 (unseen).
    """
    if type(seq) is not list and type(seq) is not tuple:
        seq = _as_sequence(seq, i, "X", "tokens")
    if not seq:
        raise ValueError(f"X[{i}] is an empty sequence; every sequence needs a token")
    for j, tok in enumerate(seq):
        for name, x in _token_pairs(tok, i, j):
            aid = id_of(name)
            if x != 1.0:
                x_val.append(x)
                x_pos.append(len(ids))
            ids.append(aid)
        tok_offsets.append(len(ids))
    seq_offsets.append(len(tok_offsets) - 1)


def _finish(ids, tok_offsets, seq_offsets, x_pos, x_val, grow, dense_values=True):
    """The numpy arrays of an encoding pass; without ``grow``, -1 ids are dropped.
    Without ``dense_values``, the values are empty when all are 1.0 (no x_pos)."""
    ids = np.frombuffer(ids, dtype=np.intc).astype(np.int32, copy=False)
    if dense_values or len(x_pos):
        vals = np.ones(len(ids))
        vals[np.frombuffer(x_pos, dtype=np.int64)] = np.frombuffer(x_val, dtype=np.float64)
    else:
        vals = np.zeros(0)
    tok_offsets = np.frombuffer(tok_offsets, dtype=np.int64)
    seq_offsets = np.frombuffer(seq_offsets, dtype=np.int64)
    if not grow:
        ids, vals, tok_offsets = _drop_unmapped(ids, vals, tok_offsets)
    return ids, vals, tok_offsets, seq_offsets


def _encode_py(X, index, names, grow, table=None, dense_values=True, n_threads=None):
    """The pure-Python :func:`_encode` (same arguments and results; ``table`` is not
    used, and an ``index`` of None is made from ``names``), for reference.

    Unseen attributes get id -1 here and are dropped afterwards (without ``grow``).
    """
    it = _check_outer(X, "X")
    if index is None:
        index = dict(zip(names, range(len(names))))
    ids = array("i")
    tok_offsets = array("q", [0])
    seq_offsets = array("q", [0])
    # Nearly every weight is 1.0, so only the others are stored, as (entry, weight)
    # exceptions: skipping a values.append per occurrence saves about a quarter of
    # the loop's time.
    x_pos = array("q")
    x_val = array("d")
    # Bound methods in locals: this loop runs once per attribute occurrence.
    ids_append = ids.append
    tok_append = tok_offsets.append
    x_pos_append = x_pos.append
    x_val_append = x_val.append
    get = index.get
    # "name:value" -> id, looked up as by_key[name][value]: both strings already
    # exist (with cached hashes), so a seen pair costs two dict probes and no new
    # string.  Unseen pairs are cached too (as -1 when not growing).
    by_key = {}
    by_key_get = by_key.get

    def new_id(name):
        """Id of a name the index lacks: the next id (grow), or -1."""
        if type(name) is not str:
            # str subclasses and UTF-8 bytes are valid names; anything else goes to
            # the slow path, which names the position.
            if isinstance(name, str):
                name = str(name)
            elif isinstance(name, bytes):
                try:
                    name = name.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Redo from None
            else:
                raise _Redo
            aid = get(name)
            if aid is not None:
                return aid
        if not grow:
            return -1
        aid = len(names)
        names.append(name)
        index[name] = aid
        return aid

    def add_pairs(pairs):
        for name, x in pairs:
            aid = get(name)
            if aid is None:
                aid = new_id(name)
            if x != 1.0:
                x_pos_append(len(ids))
                x_val_append(x)
            ids_append(aid)

    for i, seq in enumerate(it):
        if type(seq) is not list and type(seq) is not tuple:
            seq = _as_sequence(seq, i, "X", "tokens")
        if not seq:
            raise ValueError(f"X[{i}] is an empty sequence; every sequence needs a token")
        n_ids = len(ids)
        n_tok = len(tok_offsets)
        n_x = len(x_pos)
        try:
            for tok in seq:
                if type(tok) is dict:
                    for k, v in tok.items():
                        if type(v) is str:
                            sub = by_key_get(k)
                            if sub is None:
                                sub = by_key[k] = {}
                            aid = sub.get(v)
                            if aid is None:
                                name = k + SEPARATOR + v
                                aid = get(name)
                                if aid is None:
                                    aid = new_id(name)
                                sub[v] = aid
                            ids_append(aid)
                            continue
                        tv = type(v)
                        if tv is float or tv is int or tv is bool:
                            # v - v is NaN exactly for NaN and +-inf.
                            if tv is float and v - v != 0.0:
                                raise _Redo
                            aid = get(k)
                            if aid is None:
                                aid = new_id(k)
                            if v != 1.0:
                                x_val_append(v)  # first: a huge int fails here
                                x_pos_append(len(ids))
                            ids_append(aid)
                        else:
                            if type(k) is not str:
                                raise _Redo
                            pairs = []
                            _value_pairs(k, v, pairs, i, len(tok_offsets) - n_tok, (k,))
                            add_pairs(pairs)
                elif type(tok) is list or type(tok) is tuple:
                    for name in tok:
                        aid = get(name)
                        if aid is None:
                            aid = new_id(name)
                        ids_append(aid)
                else:
                    add_pairs(_token_pairs(tok, i, len(tok_offsets) - n_tok))
                tok_append(len(ids))
        except (_Redo, TypeError, OverflowError):
            # Raised by the inline code (non-str key, unhashable name, NaN, huge int):
            # start the sequence over on the general path, which raises the precise
            # error (or, for odd but valid input, encodes it).
            del ids[n_ids:], tok_offsets[n_tok:], x_pos[n_x:], x_val[n_x:]
            for j, tok in enumerate(seq):
                add_pairs(_token_pairs(tok, i, j))
                tok_append(len(ids))
        seq_offsets.append(len(tok_offsets) - 1)

    return _finish(ids, tok_offsets, seq_offsets, x_pos, x_val, grow, dense_values)


def _drop_unmapped(ids, vals, tok_offsets):
    """Drop the entries whose id is -1; return ``(ids, values, token_offsets)``.

    Token offsets move down by the number of entries dropped before them.  Empty
    ``vals`` (all 1.0) stay empty.
    """
    kept = ids >= 0
    if kept.all():
        return ids, vals, tok_offsets
    kept_before = np.concatenate(([0], np.cumsum(kept, dtype=np.int64)))
    return ids[kept], vals[kept] if len(vals) else vals, kept_before[tok_offsets]


def fit_encode(X, min_freq=0, *, dense_values=True, n_jobs=None):
    """Build the attribute vocabulary of ``X`` and encode ``X``, in one pass.

    Parameters
    ----------
    X : iterable of sequences of token features
        See the module docstring for the accepted token formats.
    min_freq : float, default=0
        Attributes occurring fewer than ``min_freq`` times in ``X`` (counting every
        occurrence, whatever its weight) are dropped from the vocabulary and from the
        encoding.
    dense_values : bool, default=True
        False leaves ``encoded.values`` empty when every value is 1.0, which the
        compiled kernels read as "all 1.0" (the estimator's setting; see
        fastcrf._training.drop_unit_values).
    n_jobs : int, optional
        OpenMP threads for the names of lists of str tokens (scikit-learn's
        convention: None or -1 all); the result does not depend on it.

    Returns
    -------
    vocabulary : AttributeVocabulary
        Ids in first-seen order among the kept attributes, with their counts.
    encoded : EncodedSequences

    Raises
    ------
    ValueError
        For an empty ``X``, an empty sequence, a NaN/inf weight.
    TypeError
        For a malformed sequence, token, feature name or value.
    """
    _check_min_freq(min_freq)
    names = []
    # The pass keeps no name -> id dict: its compiled cache, which has every name,
    # becomes the vocabulary's name table.
    table = Table()
    ids, vals, tok_offsets, seq_offsets = _encode(
        X, None, names, grow=True, table=table, dense_values=dense_values, n_threads=n_jobs
    )
    if len(seq_offsets) == 1:
        raise ValueError("X contains no sequences")
    if table.n_names != len(names):
        table = None  # filled by no pass (the pure-Python reference loop)
    elif table.n_pairs:
        table.renumber(None)  # names only: the pairs' strings need not stay alive
    counts = np.zeros(len(names), dtype=np.int64)
    count_ids(ids, counts)
    vocabulary = AttributeVocabulary._from_pass(names, table, counts, min_freq)
    keep = counts >= min_freq
    if not keep.all():
        # Provisional ids were handed out in first-seen order; the kept ones keep
        # that order.
        new_id = vocabulary._reorder(np.flatnonzero(keep))
        renumber_ids(ids, new_id)
        ids, vals, tok_offsets = _drop_unmapped(ids, vals, tok_offsets)
    return vocabulary, EncodedSequences(ids, vals, tok_offsets, seq_offsets, len(names))


def encode(X, vocabulary, *, dense_values=True, n_jobs=None):
    """Encode ``X`` with a fitted vocabulary; unseen attributes are ignored.

    Parameters
    ----------
    X : iterable of sequences of token features
    vocabulary : AttributeVocabulary
    dense_values : bool, default=True
        False leaves ``values`` empty when every value is 1.0 (as in
        :func:`fit_encode`).
    n_jobs : int, optional
        OpenMP threads for the names of lists of str tokens (scikit-learn's
        convention: None or -1 all); the result does not depend on it.

    Returns
    -------
    EncodedSequences
        Empty arrays (and ``seq_offsets == [0]``) for an empty ``X``.
    """
    if getattr(vocabulary, "hashed", False):  # fastcrf._features._hashing
        return vocabulary.encode(X, dense_values=dense_values, n_jobs=n_jobs)
    if not isinstance(vocabulary, AttributeVocabulary):
        raise TypeError(
            f"vocabulary must be an AttributeVocabulary, got {type(vocabulary).__name__}"
        )
    # Without grow, _encode only reads the table (or, without one, the index).
    table = vocabulary._name_table()
    ids, vals, tok_offsets, seq_offsets = _encode(
        X, vocabulary.index if table is None else None, vocabulary.names, grow=False,
        table=table, dense_values=dense_values, n_threads=n_jobs,
    )
    return EncodedSequences(ids, vals, tok_offsets, seq_offsets, len(vocabulary))


def _check_classes(classes):
    if isinstance(classes, (str, bytes)):
        raise TypeError("classes must be a list of str labels, got a single str")
    try:
        classes = list(classes)
    except TypeError:
        raise TypeError(
            f"classes must be a list of str labels, got {type(classes).__name__}"
        ) from None
    if not classes:
        raise ValueError("classes must hold at least one label")
    for k, label in enumerate(classes):
        if not isinstance(label, str):
            raise TypeError(
                f"classes must hold str labels; classes[{k}] is {label!r} "
                f"({type(label).__name__})"
            )
    classes = [str(label) for label in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {classes}")
    return classes


def encode_labels(y, classes=None, *, lengths=None):
    """Map label sequences to flat integer codes.

    Parameters
    ----------
    y : iterable of sequences of str
        One label per token.
    classes : iterable of str, optional
        The label set, in code order.  By default, the labels of ``y`` in the order
        they are first seen.
    lengths : array-like of int of shape (n_sequences,), optional
        Token counts of the sequences of X (``EncodedSequences.lengths``); when given,
        ``y`` must have as many sequences, each as long.

    Returns
    -------
    classes : list of str
    labels : ndarray of shape (n_tokens,), int32
        ``classes[labels[t]]`` is the label of token ``t`` (tokens numbered across
        sequences, as in :class:`EncodedSequences`).

    Raises
    ------
    TypeError
        For a label that is not a str.
    ValueError
        For a label not in ``classes``, an empty sequence, or ``y`` not matching
        ``lengths``.
    """
    grow = classes is None
    classes = [] if grow else _check_classes(classes)
    index = {label: k for k, label in enumerate(classes)}
    n_expected = fast_lengths = None
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.dtype.kind in "iu":
            fast_lengths = lengths.astype(np.int64)
        lengths = lengths.tolist()
        n_expected = len(lengths)
    codes = array("i")
    args = (index, classes, grow, lengths, codes)
    it = _check_outer(y, "y")
    if (type(y) is list or type(y) is tuple) and (lengths is None or fast_lengths is not None):
        # The compiled loop takes the common shapes and stops at anything else.
        n = len(y)
        i = label_run(y, 0, index, classes, grow, fast_lengths, codes)
        while i < len(y):
            _label_codes(y[i], i, *args)
            i = label_run(y, i + 1, index, classes, grow, fast_lengths, codes)
    else:
        n = 0
        for i, seq in enumerate(it):
            n = i + 1
            _label_codes(seq, i, *args)
    if n == 0:
        raise ValueError("y contains no sequences")
    if n_expected is not None and n != n_expected:
        raise ValueError(
            f"X and y must have the same number of sequences: X has {n_expected}, y has {n}"
        )
    return classes, np.frombuffer(codes, dtype=np.intc).astype(np.int32, copy=False)


def _label_codes(seq, i, index, classes, grow, lengths, codes):
    """Append the codes of label sequence ``y[i]`` to ``codes`` (or raise its error);
    with ``grow``, new labels are added to ``index`` and ``classes``."""
    if type(seq) is not list and type(seq) is not tuple:
        seq = _as_sequence(seq, i, "y", "labels")
    if not seq:
        raise ValueError(f"y[{i}] is an empty sequence; every sequence needs a label")
    if lengths is not None:
        if i >= len(lengths):
            raise ValueError(
                f"X and y must have the same number of sequences: X has {len(lengths)}, "
                "y has more"
            )
        if len(seq) != lengths[i]:
            raise ValueError(f"y[{i}] has {len(seq)} labels but X[{i}] has {lengths[i]} tokens")
    get = index.get
    try:
        chunk = [get(label, -1) for label in seq]
        ok = -1 not in chunk
    except TypeError:  # an unhashable label
        ok = False
    if not ok:
        chunk = []
        for j, label in enumerate(seq):
            if not isinstance(label, str):
                raise TypeError(
                    f"y[{i}][{j}] must be a str label, got {label!r} ({type(label).__name__})"
                )
            code = get(label)
            if code is None:
                if not grow:
                    raise ValueError(f"y[{i}][{j}] = {label!r} is not one of classes {classes}")
                code = index[str(label)] = len(classes)
                classes.append(str(label))
            chunk.append(code)
    codes.extend(chunk)
