"""CRF++ feature templates, compiled once and applied to whole corpora with numpy.

A template file lists one feature template per line, as CRF++ reads it:

- ``U<anything>`` is a unigram template: at each token it produces one attribute, the
  line itself with every macro ``%x[row,col]`` replaced by the field ``col`` of the
  token ``row`` positions away (``U05:%x[-1,0]/%x[0,0]`` gives ``"U05:the/cat"``).
  Any literal text may surround the macros; a line without a macro gives the same
  attribute at every token (a bias feature).
- ``B<anything>`` is a bigram template.  The plain ``B`` asks for label-bigram
  (transition) weights, which fastcrf's estimator always has.  ``B01:%x[0,1]``
  (transitions conditioned on the input, as CRF++ and Wapiti support) is parsed and
  can be expanded with :meth:`Template.transform_bigram`, but the estimator does not
  use such features yet.
- Lines starting with ``#`` and blank lines are ignored.

Positions before the first token read ``_B-1``, ``_B-2``, ... and positions after the
last token read ``_B+1``, ``_B+2``, ..., CRF++'s boundary tokens; like CRF++, rows
are limited to ``-8 <= row <= 8``.

Speed: :meth:`Template.transform` interns each column of the whole corpus once,
builds every template's attribute as integer codes with vectorised numpy (shifts at
sentence boundaries, pair codes factorised once per distinct cell combination), and
builds each distinct attribute string only once.  :meth:`Template.encode` skips the
per-token Python lists altogether and returns the flat arrays the estimator trains on.
"""

import contextlib
import gc
import itertools
import os
import re

import numpy as np

from ._features._encoding import AttributeVocabulary, EncodedSequences, _drop_unmapped

__all__ = ["CHUNKING_TEMPLATE", "Template"]

#: CRF++'s template for the CoNLL-2000 chunking task (its ``example/chunking``):
#: words (column 0) and part-of-speech tags (column 1) in a window of five tokens,
#: with word bigrams and tag bigrams and trigrams.
CHUNKING_TEMPLATE = """\
# Unigram
U00:%x[-2,0]
U01:%x[-1,0]
U02:%x[0,0]
U03:%x[1,0]
U04:%x[2,0]
U05:%x[-1,0]/%x[0,0]
U06:%x[0,0]/%x[1,0]

U10:%x[-2,1]
U11:%x[-1,1]
U12:%x[0,1]
U13:%x[1,1]
U14:%x[2,1]
U15:%x[-2,1]/%x[-1,1]
U16:%x[-1,1]/%x[0,1]
U17:%x[0,1]/%x[1,1]
U18:%x[1,1]/%x[2,1]

U20:%x[-2,1]/%x[-1,1]/%x[0,1]
U21:%x[-1,1]/%x[0,1]/%x[1,1]
U22:%x[0,1]/%x[1,1]/%x[2,1]

# Bigram
B
"""

#: CRF++'s largest context offset (its ``kMaxContextSize``).
MAX_OFFSET = 8
BOS = tuple(f"_B-{k}" for k in range(1, MAX_OFFSET + 1))
EOS = tuple(f"_B+{k}" for k in range(1, MAX_OFFSET + 1))
# Column codes 0..7 are _B-1.._B-8 and 8..15 are _B+1.._B+8 in every column.
_BOUNDARY = BOS + EOS

_MACRO = re.compile(r"%x\[(-?\d+),(\d+)\]")


class _Rule:
    """One template line: literal pieces around its ``(row, col)`` cells."""

    __slots__ = ("cells", "line", "lineno", "pieces")

    def __init__(self, line, lineno):
        self.line = line
        self.lineno = lineno
        pieces, cells = [], []
        pos = 0
        for m in _MACRO.finditer(line):
            pieces.append(line[pos:m.start()])
            row, col = int(m.group(1)), int(m.group(2))
            if not -MAX_OFFSET <= row <= MAX_OFFSET:
                raise ValueError(
                    f"template line {lineno} ({line!r}): row {row} is out of CRF++'s "
                    f"range [-{MAX_OFFSET}, {MAX_OFFSET}]"
                )
            cells.append((row, col))
            pos = m.end()
        pieces.append(line[pos:])
        for piece in pieces:
            if "%" in piece:
                bad = piece[piece.index("%"):][:12]
                raise ValueError(
                    f"template line {lineno} ({line!r}): malformed macro at {bad!r}; "
                    "expected %x[row,col] with integer row and col, e.g. %x[-1,0]"
                )
        self.pieces = pieces
        self.cells = cells

    def where(self):
        return f"template line {self.lineno} ({self.line!r})"

    def expand(self, sentence, t):
        """The attribute of token ``t`` (plain Python; the reference semantics)."""
        out = [self.pieces[0]]
        n = len(sentence)
        for (row, col), piece in zip(self.cells, self.pieces[1:]):
            i = t + row
            out.append(BOS[-i - 1] if i < 0 else EOS[i - n] if i >= n else sentence[i][col])
            out.append(piece)
        return "".join(out)


class Template:
    """A compiled set of CRF++ feature templates.

    Parameters
    ----------
    text : str
        The template file's contents (see the module docstring for the syntax).

    Attributes
    ----------
    unigram : list of str
        The unigram template lines, in file order: one attribute per line per token.
    bigram : list of str
        The bigram template lines (``"B"`` for plain label transitions).
    n_columns : int
        Token columns the templates read: every row passed in must have at least
        this many fields (the highest ``col`` plus one; 0 without macros).

    Raises
    ------
    ValueError
        For a line that starts with neither ``U``, ``B`` nor ``#``, or holds a
        malformed macro or a row outside [-8, 8], naming the line.

    Examples
    --------
    >>> t = Template("U00:%x[0,0]\\nU01:%x[-1,0]/%x[0,1]\\nB")
    >>> t.transform([[("He", "PRP"), ("ran", "VBD")]])
    [[['U00:He', 'U01:_B-1/PRP'], ['U00:ran', 'U01:He/VBD']]]
    >>> t.bigram
    ['B']
    """

    def __init__(self, text):
        if not isinstance(text, str):
            raise TypeError(
                f"text must be the template as a str, got {type(text).__name__}; use "
                "Template.from_file for a path"
            )
        self._unigram, self._bigram = [], []
        for lineno, line in enumerate(text.split("\n"), 1):
            line = line.rstrip("\r")
            if not line.strip() or line.startswith("#"):
                continue
            if line[0] == "U":
                self._unigram.append(_Rule(line, lineno))
            elif line[0] == "B":
                self._bigram.append(_Rule(line, lineno))
            else:
                raise ValueError(
                    f"template line {lineno} ({line!r}): a template starts with U (unigram) "
                    "or B (bigram); comments start with #"
                )
        self.text = text

    @classmethod
    def from_file(cls, path, encoding="utf-8"):
        """Read and compile a template file.

        Parameters
        ----------
        path : str or path-like
        encoding : str, default="utf-8"

        Returns
        -------
        Template
        """
        with open(os.fspath(path), encoding=encoding) as f:
            return cls(f.read())

    @property
    def unigram(self):
        return [r.line for r in self._unigram]

    @property
    def bigram(self):
        return [r.line for r in self._bigram]

    @property
    def n_columns(self):
        return max((c + 1 for r in self._unigram + self._bigram for _, c in r.cells), default=0)

    def __repr__(self):
        return f"<Template: {len(self._unigram)} unigram, {len(self._bigram)} bigram>"

    # -- applying -------------------------------------------------------------------

    def apply(self, sentence):
        """Unigram attributes of one sentence.

        Parameters
        ----------
        sentence : sequence of rows
            A row is a tuple or list of str fields (e.g. ``(word, pos)``; leave the
            label column out, or at least never read it from a template).

        Returns
        -------
        list of list of str
            Per token, one attribute per unigram template, in template order.
        """
        return self.transform([sentence])[0]

    def transform(self, sentences):
        """Unigram attributes of many sentences, in the estimator's input format.

        Parameters
        ----------
        sentences : iterable of sequences of rows
            E.g. the ``X`` of :func:`fastcrf.io.load_conll`.

        Returns
        -------
        list of list of list of str
            ``X[i][t]`` lists the attributes of token ``t`` of sentence ``i``, one per
            unigram template, in template order.  An empty sentence gives ``[]``.

        Raises
        ------
        ValueError
            For a row with fewer fields than a template reads (naming the sentence,
            the token and the template line).
        TypeError
            For a malformed sentence, row or field.
        """
        return self._transform(self._unigram, sentences)

    def transform_bigram(self, sentences):
        """Bigram-template attributes: what CRF++ attaches to each label transition.

        Parameters
        ----------
        sentences : iterable of sequences of rows

        Returns
        -------
        list of list of list of str
            ``B[i][t]`` (for ``t >= 1``) lists the attributes of the transition from
            token ``t - 1`` to token ``t``, one per bigram template; ``B[i][0]`` is
            empty.  The plain ``B`` template gives the attribute ``"B"``.

        Notes
        -----
        fastcrf's estimator always learns one weight per label pair (the plain ``B``)
        and does not support observation-conditioned transitions yet.
        """
        out = self._transform(self._bigram, sentences)
        for seq in out:
            if seq:
                seq[0] = []
        return out

    def _transform(self, rules, sentences):
        with _gc_paused():
            return self._transform_nogc(rules, sentences)

    def _transform_nogc(self, rules, sentences):
        ext = _extract(rules, sentences)
        if not rules:
            return [[[] for _ in range(n)] for n in ext.lengths.tolist()]
        rows = ext.names[ext.ids].tolist()
        bounds = np.concatenate(([0], np.cumsum(ext.lengths))).tolist()
        return [rows[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def encode(self, sentences, vocabulary=None):
        """Unigram attributes as the flat arrays the estimator trains on.

        No per-token Python object is created.  Without ``vocabulary`` the result is
        exactly ``fastcrf._encoding.fit_encode(self.transform(sentences))``: the same
        attribute names with ids in first-seen order, and the same arrays.

        Parameters
        ----------
        sentences : iterable of sequences of rows
        vocabulary : AttributeVocabulary, HashedVocabulary or list of str, optional
            Encode with these attribute ids (e.g. a fitted model's, hashed or not);
            attributes not in it are dropped, so tokens may then have fewer entries.

        Returns
        -------
        names : list of str
            ``names[i]`` is the attribute with id ``i`` (the vocabulary's names when
            one is given).
        encoded : EncodedSequences
            ``attr_ids`` int32, ``values`` float64 (all 1.0), ``token_offsets`` and
            ``seq_offsets`` int64.  Without ``vocabulary`` every token has one entry
            per unigram template, so ``token_offsets`` is
            ``arange(0, n_tokens * n_templates + 1, n_templates)``.

        Raises
        ------
        ValueError
            For an empty sentence, or no sentences without a vocabulary (as
            ``fit_encode``), or rows too short for the templates; without a
            vocabulary, for a template with no U lines.
        """
        hashed = getattr(vocabulary, "hashed", False)  # fastcrf._features._hashing
        if vocabulary is not None and not hashed:
            if isinstance(vocabulary, AttributeVocabulary):
                index, names = vocabulary.index, vocabulary.names
            else:
                vocabulary = AttributeVocabulary(vocabulary)
                index, names = vocabulary.index, vocabulary.names
        if vocabulary is None and not self._unigram:
            raise ValueError("the template has no U lines, so it extracts no attributes "
                             "to train on")
        with _gc_paused():
            ext = _extract(self._unigram, sentences, forbid_empty=True)
        n_tokens, n_rules = ext.ids.shape
        if vocabulary is None and n_tokens == 0:
            raise ValueError("sentences contains no sentences")
        seq_offsets = np.concatenate(([0], np.cumsum(ext.lengths))).astype(np.int64)
        token_offsets = np.arange(0, n_tokens * n_rules + 1, max(n_rules, 1), dtype=np.int64)
        if n_rules == 0:
            token_offsets = np.zeros(n_tokens + 1, dtype=np.int64)
        if vocabulary is None:
            with _gc_paused():
                remap, names = ext.first_seen_ids()
        elif hashed:
            names = vocabulary.names
            remap = vocabulary.ids_of(ext.names.tolist())
        else:
            remap = np.fromiter(
                map(index.get, ext.names.tolist(), itertools.repeat(-1)), dtype=np.int32,
                count=len(ext.names),
            )
        attr_ids = remap[ext.ids.ravel()] if len(remap) else np.zeros(0, dtype=np.int32)
        values = np.ones(len(attr_ids))
        if vocabulary is not None:
            attr_ids, values, token_offsets = _drop_unmapped(attr_ids, values, token_offsets)
        return names, EncodedSequences(
            attr_ids.astype(np.int32, copy=False), values, token_offsets, seq_offsets,
            len(names),
        )


# ---------------------------------------------------------------------------
# The vectorised engine.
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building many acyclic objects.

    Millions of new lists would otherwise trigger repeated full collections that
    scan every live object: they cost several times the work itself.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Extracted:
    """Every rule's attribute at every token, as global ids into ``names``.

    ``ids`` has shape (n_tokens, n_rules); ``names`` (an object array) lists the
    distinct attribute strings of rule 0, then of rule 1, ... (a string two rules
    both produce appears twice); ``first[k]`` gives the token where each of rule k's
    strings first occurs.
    """

    def __init__(self, ids, names, first, lengths):
        self.ids = ids
        self.names = names
        self.first = first
        self.lengths = lengths

    def first_seen_ids(self):
        """Ids renumbered in order of first occurrence (token-major), strings merged."""
        n_rules = self.ids.shape[1]
        # The flat position of each (rule, string)'s first occurrence.
        pos = np.concatenate(
            [f * n_rules + k for k, f in enumerate(self.first)] + [np.zeros(0, np.int64)]
        )
        order = np.argsort(pos, kind="stable")
        ordered = self.names[order].tolist()
        index = dict.fromkeys(ordered)
        if len(index) == len(ordered):
            new = np.arange(len(ordered), dtype=np.int32)
        else:  # two rules produce the same string: it keeps its first id
            for k, name in enumerate(index):
                index[name] = k
            new = np.fromiter(map(index.__getitem__, ordered), dtype=np.int32,
                              count=len(ordered))
        remap = np.empty(len(order), dtype=np.int32)
        remap[order] = new
        return remap, list(index)


def _check_sentence(s, i):
    if isinstance(s, (str, bytes)) or not hasattr(s, "__len__"):
        raise TypeError(
            f"sentences[{i}] must be a sequence of rows (tuples of str fields), got "
            f"{type(s).__name__}"
        )


def _flatten(rules, sentences, forbid_empty):
    """Columns of the whole corpus as lists of str, plus the sentence lengths."""
    if sentences is None or isinstance(sentences, (str, bytes)) or not hasattr(
        sentences, "__iter__"
    ):
        raise TypeError(
            f"sentences must be a list of sentences, got {type(sentences).__name__}"
        )
    n_cols = max((c + 1 for r in rules for _, c in r.cells), default=0)
    cols = [[] for _ in range(n_cols)]
    extends = [c.extend for c in cols]
    lengths = []
    row_types = {tuple, list}
    for i, s in enumerate(sentences):
        _check_sentence(s, i)
        n = len(s)
        if n == 0:
            if forbid_empty:
                raise ValueError(f"sentences[{i}] is empty; every sentence needs a token")
            lengths.append(0)
            continue
        if not set(map(type, s)) <= row_types:
            j, row = next((j, r) for j, r in enumerate(s) if type(r) not in row_types)
            raise TypeError(
                f"sentences[{i}][{j}] must be a tuple or list of str fields, got "
                f"{type(row).__name__} ({row!r})"
            )
        if n_cols:
            short = min(map(len, s))
            if short < n_cols:
                j = next(j for j, r in enumerate(s) if len(r) < n_cols)
                rule = next(r for r in rules if any(c >= len(s[j]) for _, c in r.cells))
                col = max(c for _, c in rule.cells)
                raise ValueError(
                    f"sentences[{i}][{j}] has {len(s[j])} fields, but {rule.where()} reads "
                    f"column {col}"
                )
            columns = list(zip(*s))
            for c in range(n_cols):
                extends[c](columns[c])
        lengths.append(n)
    return cols, np.asarray(lengths, dtype=np.int64)


def _intern(values, c, lengths):
    """``(codes, vocab)`` of one column, ``vocab`` an object array of its distinct
    strings; the 16 boundary tokens take codes 0..15."""
    index = dict.fromkeys(_BOUNDARY)
    index.update(dict.fromkeys(values))
    for k, v in enumerate(index):
        if type(v) is not str:
            _raise_field_type(values, c, v, lengths)
        index[v] = k
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values))
    vocab = np.empty(len(index), dtype=object)
    vocab[:] = list(index)
    return codes, vocab


def _raise_field_type(col_values, c, bad, lengths):
    flat = next(t for t, v in enumerate(col_values) if v is bad or v == bad)
    ends = np.cumsum(lengths)
    i = int(np.searchsorted(ends, flat, side="right"))
    j = flat - (int(ends[i - 1]) if i else 0)
    if isinstance(bad, str):  # a str subclass
        raise TypeError(f"sentences[{i}][{j}][{c}] must be a str, got {type(bad).__name__}")
    raise TypeError(
        f"sentences[{i}][{j}][{c}] must be a str, got {bad!r} ({type(bad).__name__})"
    )


def _factorize(key, size):
    """Dense ids of the values of ``key`` (in [0, size)): ``(ids, uniques, first)``.

    ``uniques`` is sorted; ``first[u]`` is the first index where ``uniques[u]`` occurs.
    """
    n = len(key)
    if size <= 4 * n + 65536:
        # Small key space: a presence table instead of a sort.
        used = np.zeros(size, dtype=bool)
        used[key] = True
        uniques = np.flatnonzero(used)
        remap = np.cumsum(used, dtype=np.int64) - 1
        ids = remap[key]
        first = np.full(len(uniques), n, dtype=np.int64)
        np.minimum.at(first, ids, np.arange(n, dtype=np.int64))
        return ids, uniques, first
    uniques, first, ids = np.unique(key, return_index=True, return_inverse=True)
    return ids.ravel(), uniques, first


def _extract(rules, sentences, forbid_empty=False):
    cols, lengths = _flatten(rules, sentences, forbid_empty)
    n = int(lengths.sum())
    interned = {}
    shifted = {}
    combos = {}
    tok = np.arange(n, dtype=np.int64)
    pos = tok - np.repeat(np.cumsum(lengths) - lengths, lengths)  # position in sentence
    length_of = np.repeat(lengths, lengths)

    def column(c):
        if c not in interned:
            interned[c] = _intern(cols[c], c, lengths)
        return interned[c]

    def cell(row, c):
        """Codes of field ``c`` of the token ``row`` away, boundary codes past the ends."""
        if (row, c) not in shifted:
            codes, _ = column(c)
            if row == 0:
                out = codes
            else:
                p = pos + row
                out = codes[np.clip(tok + row, 0, max(n - 1, 0))]
                before = p < 0
                out[before] = -p[before] - 1
                after = p >= length_of
                out[after] = MAX_OFFSET + (p - length_of)[after]
            shifted[(row, c)] = out
        return shifted[(row, c)]

    def combo(cells):
        """``(ids, parts, first)`` of a tuple of cells: ids dense over the distinct
        value tuples, parts[k] the column code of cell k of each distinct tuple."""
        if cells in combos:
            return combos[cells]
        row, c = cells[-1]
        codes = cell(row, c)
        size = len(column(c)[1])
        if len(cells) == 1:
            ids, uniques, first = _factorize(codes, size)
            result = ids, [uniques], first
        else:
            prev_ids, prev_parts, _ = combo(cells[:-1])
            n_prev = len(prev_parts[0])
            ids, uniques, first = _factorize(prev_ids * size + codes, n_prev * size)
            head, last = np.divmod(uniques, size)
            result = ids, [p[head] for p in prev_parts] + [last], first
        combos[cells] = result
        return result

    all_ids, names, firsts = [], [], []
    n_names = 0
    for rule in rules:
        if not rule.cells:
            # No macro: the same attribute at every token.
            all_ids.append(np.full(n, n_names, dtype=np.int64))
            strings = np.array([rule.pieces[0]] if n else [], dtype=object)
            names.append(strings)
            firsts.append(np.zeros(len(strings), dtype=np.int64))
            n_names += len(strings)
            continue
        ids, parts, first = combo(tuple(rule.cells))
        # Each distinct string is built once, by one str.format call.
        fmt = "{}".join(p.replace("{", "{{").replace("}", "}}") for p in rule.pieces)
        values = [column(c)[1][part].tolist() for (_, c), part in zip(rule.cells, parts)]
        strings = np.empty(len(first), dtype=object)
        strings[:] = list(map(fmt.format, *values))
        all_ids.append(ids + n_names)
        names.append(strings)
        n_names += len(strings)
        firsts.append(first)
    ids = np.stack(all_ids, axis=1) if all_ids else np.zeros((n, 0), dtype=np.int64)
    names = np.concatenate(names) if names else np.zeros(0, dtype=object)
    return _Extracted(ids, names, firsts, lengths)
