"""Wapiti's pattern files, compiled to fastcrf token features.

A pattern file lists one pattern per line (Wapiti's ``pattern.c`` / ``reader.c``):

- Everything from a ``#`` on is a comment; trailing blanks are dropped; empty lines
  are skipped.
- The first character gives the kind, in either case: ``u`` (unigram: one weight per
  label), ``b`` (bigram: one weight per label pair, on the move from the previous
  token into this one) or ``*`` (both).
- The line, its first character lower-cased, is the *observation*: each command
  ``%c[off,col...]`` in it is replaced by what it reads of the token ``off``
  positions away, field ``col``:

  - ``%x[off,col]``: the field itself;
  - ``%t[off,col,"re"]``: ``true`` or ``false``, whether the regular expression
    ``re`` matches somewhere in the field;
  - ``%m[off,col,"re"]``: the first substring ``re`` matches (empty when none).

  An upper-case command (``%X``, ``%T``, ``%M``) lower-cases (ASCII) what it adds.
  ``off`` may also be ``@k`` (absolute: ``@1`` is the first token, ``@-1`` the
  last) or ``*k`` (indirect: the token as many positions away as field ``k`` of the
  current token says).
- Wapiti's regular expressions are a small subset, translated here to Python's
  :mod:`re` with the same matches: ``.`` any character; ``\\d`` ``\\a`` ``\\w``
  ``\\l`` ``\\u`` ``\\p`` ``\\s`` the ASCII digit, letter, letter-or-digit,
  lower-case, upper-case, punctuation and blank classes (upper-case letters: their
  complements); ``\\`` before any other character escapes it; ``x*`` repeats
  (shortest first, as Wapiti tries it), ``x?`` is optional (longest first); ``^``
  first and ``$`` last anchor the match.

A pattern without a command gives the same observation at every token: a ``u`` one
is a bias feature, a ``b`` one is plain label-transition weights.

How the observations reach fastcrf: a unigram observation ``obs`` becomes the state
attribute ``"U" + obs`` and a bigram one the transition attribute ``"B" + obs``
(``CRF(transition_prefix="B")``, :mod:`fastcrf._edges`); the transition attributes
of a sequence's first token are ignored, as in Wapiti.  Patterns that only use
``%x`` with offsets within [-8, 8] are applied by :class:`fastcrf.templates.Template`
(vectorised); the others, one token at a time in Python.  Positions outside the
sequence read ``_B-1``, ``_B-2``, ... and ``_B+1``, ... (as CRF++ templates do;
Wapiti names them ``_x-1``, ...: only the names differ), the 8th and further ones
all ``_B-8`` / ``_B+8``.
"""

import re
import string

__all__ = ["PatternSet"]

#: Offsets the vectorised path (CRF++ templates) reads.
_MAX_OFFSET = 8

_CLASSES = {
    "d": "0-9",
    "a": "A-Za-z",
    "w": "A-Za-z0-9",
    "l": "a-z",
    "u": "A-Z",
    "p": re.escape(string.punctuation),
    "s": " \\t\\n\\r\\f\\v",
}

_COMMAND = re.compile(r"\[([@*]?)\s*([+-]?\d+)\s*,\s*(\d+)")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ATOI = re.compile(r"\s*([+-]?\d+)")


def translate_regex(source, where="regex"):
    """Python :mod:`re` source matching what Wapiti's regular expression ``source``
    matches (same leftmost match, same length).

    Parameters
    ----------
    source : str
        The expression as written between the quotes of ``%t`` / ``%m``.
    where : str
        What to name in an error message.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For a ``*`` or ``?`` with nothing to repeat, or a trailing lone ``\\``.
    """
    out = []
    i, n = 0, len(source)
    anchored = source.startswith("^")
    if anchored:
        i = 1
    while i < n:
        c = source[i]
        if c == "$" and i == n - 1:
            out.append(r"\Z")
            break
        if c in "*?":
            raise ValueError(f"{where}: unescaped {c!r} in regular expression {source!r} "
                             "(nothing to repeat; write \\" + c + " for the character)")
        if c == ".":
            atom = "(?s:.)"
        elif c == "\\":
            if i + 1 == n:
                raise ValueError(f"{where}: regular expression {source!r} ends with a lone "
                                 "backslash")
            d = source[i + 1]
            i += 1
            if d.lower() in _CLASSES:
                neg = "^" if d.isupper() else ""
                atom = f"[{neg}{_CLASSES[d.lower()]}]"
            else:
                atom = re.escape(d)
        else:
            atom = re.escape(c)
        i += 1
        # Wapiti's star tries the fewest repetitions first: a lazy star.
        if i < n and source[i] == "*":
            atom += "*?"
            i += 1
        elif i < n and source[i] == "?":
            atom += "?"
            i += 1
        out.append(atom)
    return ("\\A" if anchored else "") + "".join(out)


class _Command:
    """One ``%c[...]`` of a pattern."""

    __slots__ = ("caps", "col", "kind", "mode", "off", "regex")

    def __init__(self, kind, caps, mode, off, col, regex):
        self.kind, self.caps, self.mode = kind, caps, mode
        self.off, self.col, self.regex = off, col, regex

    @property
    def simple(self):
        return (self.kind == "x" and not self.caps and self.mode == ""
                and -_MAX_OFFSET <= self.off <= _MAX_OFFSET)

    def columns(self):
        return max(self.col, self.off if self.mode == "*" else -1) + 1


class _Pattern:
    """One compiled pattern line: literal pieces around its commands."""

    __slots__ = ("commands", "kind", "line", "lineno", "pieces")

    def __init__(self, line, lineno):
        self.line, self.lineno = line, lineno
        self.kind = line[0]
        if self.kind not in "ub*":
            raise ValueError(f"{self.where()}: a pattern starts with u (unigram), b "
                             "(bigram) or * (both), in either case")
        pieces, commands = [], []
        pos = 0
        while True:
            at = line.find("%", pos)
            if at < 0:
                pieces.append(line[pos:])
                break
            pieces.append(line[pos:at])
            pos = self._command(at, commands)
        self.pieces, self.commands = pieces, commands

    def where(self):
        return f"pattern line {self.lineno} ({self.line!r})"

    def _command(self, at, commands):
        line = self.line
        letter = line[at + 1:at + 2]
        kind = letter.lower()
        if kind not in ("x", "t", "m"):
            raise ValueError(f"{self.where()}: unknown command %{letter}; commands are "
                             "%x[off,col], %t[off,col,\"re\"] and %m[off,col,\"re\"]")
        m = _COMMAND.match(line, at + 2)
        if m is None:
            raise ValueError(f"{self.where()}: malformed command at {line[at:at + 16]!r}; "
                             f"expected %{letter}[off,col], off an integer (or @k, *k), "
                             "col an integer >= 0")
        pos = m.end()
        regex = None
        if kind in "tm":
            if line[pos:pos + 2] != ',"':
                raise ValueError(f"{self.where()}: %{letter} needs a regular expression "
                                 f"in quotes: %{letter}[off,col,\"re\"]")
            start = pos = pos + 2
            while pos < len(line) and line[pos] != '"':
                pos += 2 if line[pos] == "\\" and pos + 1 < len(line) else 1
            if pos >= len(line):
                raise ValueError(f"{self.where()}: unterminated regular expression "
                                 "(no closing \")")
            regex = re.compile(translate_regex(line[start:pos], self.where()))
            pos += 1
        if line[pos:pos + 1] != "]":
            raise ValueError(f"{self.where()}: missing ']' closing the command at "
                             f"{line[at:pos + 1]!r}")
        commands.append(_Command(kind, letter != kind, m.group(1), int(m.group(2)),
                                 int(m.group(3)), regex))
        return pos + 1

    @property
    def simple(self):
        return all(c.simple for c in self.commands)

    def canonical(self):
        """The line with every (simple) command written ``%x[off,col]``."""
        out = [self.pieces[0]]
        for c, piece in zip(self.commands, self.pieces[1:]):
            out.append(f"%x[{c.off},{c.col}]")
            out.append(piece)
        return "".join(out)

    def expand(self, rows, t, wapiti_names=False):
        """The observation at token ``t`` of ``rows`` (the reference semantics);
        ``wapiti_names``: positions outside the sequence read Wapiti's names."""
        T = len(rows)
        out = [self.pieces[0]]
        for c, piece in zip(self.commands, self.pieces[1:]):
            if c.mode == "@":
                i = c.off + T if c.off < 0 else c.off - 1
            elif c.mode == "*":
                m = _ATOI.match(rows[t][c.off])   # C's atoi: no number reads 0
                i = t + (int(m.group(1)) if m else 0)
            else:
                i = t + c.off
            if (i < 0 or i >= T) and wapiti_names:
                k = -i if i < 0 else i - T + 1
                value = f"_x{'-' if i < 0 else '+'}{k if k <= 4 else '#'}"
            elif i < 0:
                value = f"_B-{min(-i, _MAX_OFFSET)}"
            elif i >= T:
                value = f"_B+{min(i - T + 1, _MAX_OFFSET)}"
            else:
                value = rows[i][c.col]
            if c.kind == "t":
                value = "true" if c.regex.search(value) else "false"
            elif c.kind == "m":
                found = c.regex.search(value)
                value = found.group(0) if found else ""
            if c.caps:
                value = value.translate(_ASCII_LOWER)
            out.append(value)
            out.append(piece)
        return "".join(out)


class PatternSet:
    """A compiled Wapiti pattern file.

    Parameters
    ----------
    text : str
        The file's contents (see the module docstring).
    wapiti_names : bool, default=False
        Name the positions outside a sequence as Wapiti does (``_x-1`` ... ``_x-4``,
        then ``_x-#``; ``_x+1`` ...), for the models Wapiti itself trained; every
        pattern is then applied in Python.

    Attributes
    ----------
    text : str
    n_columns : int
        Token fields the patterns read: every row must have at least this many.
    transitions : bool
        Whether a bigram pattern without a command asks for plain label-transition
        weights.
    has_edges : bool
        Whether some bigram pattern reads the input (transition attributes).

    Raises
    ------
    ValueError
        For a malformed line, naming it.

    Examples
    --------
    >>> p = PatternSet("u:w=%x[0,0]\\n*:cap=%t[0,0,\\"^\\\\u\\"]\\n")
    >>> p.features([[("Paris",), ("is",)]])[0][1]
    ['Uu:w=is', 'U*:cap=false', 'B*:cap=false']
    """

    def __init__(self, text, wapiti_names=False):
        if not isinstance(text, str):
            raise TypeError(f"text must be the pattern file's contents as a str, got "
                            f"{type(text).__name__}")
        self.text = text
        self.wapiti_names = bool(wapiti_names)
        self.patterns = []
        for lineno, line in enumerate(text.split("\n"), 1):
            line = line.split("#", 1)[0].rstrip()
            if line:
                self.patterns.append(_Pattern(line[0].lower() + line[1:], lineno))
        if not self.patterns:
            raise ValueError("the pattern file holds no pattern (only blank lines or "
                             "comments)")
        self.transitions = any(p.kind in "b*" and not p.commands for p in self.patterns)
        self.has_edges = any(p.kind in "b*" and p.commands for p in self.patterns)
        self.n_columns = max((c.columns() for p in self.patterns for c in p.commands),
                             default=0)
        if self.wapiti_names:
            self._template, self._slow = None, list(self.patterns)
        else:
            self._template = self._fast_template()
            self._slow = [p for p in self.patterns if not p.simple]

    def _fast_template(self):
        from .templates import Template

        lines = []
        for p in self.patterns:
            if not p.simple:
                continue
            if p.kind in "u*":
                lines.append("U" + p.canonical())
            if p.kind in "b*" and p.commands:
                lines.append("B" + p.canonical())
        return Template("\n".join(lines) + "\n") if lines else None

    @property
    def template(self):
        """The :class:`fastcrf.templates.Template` that extracts every feature of
        these patterns, or None: when each pattern is a ``%x`` unigram one (or a plain
        ``b``, which only asks for label transitions) and Wapiti's own names are not
        kept, :meth:`features` is ``template.transform``, so the data can be streamed
        through the template (:meth:`fastcrf.Dataset.from_conll`)."""
        if self._slow or any(p.kind != "u" and p.commands for p in self.patterns):
            return None
        return self._template

    def check_rows(self, sentences, name):
        """Raise a ValueError naming ``name``, the sentence and the token when a row
        has fewer fields than the patterns read."""
        need = self.n_columns
        for i, s in enumerate(sentences):
            for t, row in enumerate(s):
                if len(row) < need:
                    reader = max((p for p in self.patterns for c in p.commands
                                  if c.columns() > len(row)), key=lambda p: p.lineno)
                    raise ValueError(
                        f"{name}: sequence {i + 1}, token {t + 1} has {len(row)} "
                        f"field{'s' if len(row) != 1 else ''}; {reader.where()} reads "
                        f"field {need - 1} (counting from 0)")

    def features(self, sentences):
        """Token features of ``sentences`` for fastcrf.

        Parameters
        ----------
        sentences : list of sequences of rows
            A row is a tuple or list of str fields (the label column left out).

        Returns
        -------
        list of list of list of str
            Per token, ``"U" + obs`` for its unigram observations and ``"B" + obs``
            for its bigram ones (none at a sequence's first token).
        """
        if self._template is not None:
            out = self._template.transform(sentences)
            if self._template.bigram:
                bigram = self._template.transform_bigram(sentences)
                out = [[u + b for u, b in zip(us, bs)] for us, bs in zip(out, bigram)]
        else:
            out = [[[] for _ in s] for s in sentences]
        if self._slow:
            for rows, feats in zip(sentences, out):
                for t, f in enumerate(feats):
                    for p in self._slow:
                        if p.kind == "b" and not p.commands:
                            continue   # plain transitions
                        obs = p.expand(rows, t, self.wapiti_names)
                        if p.kind in "u*":
                            f.append("U" + obs)
                        if p.kind in "b*" and p.commands and t > 0:
                            f.append("B" + obs)
        return out

    def reference_features(self, sentences):
        """:meth:`features` computed one token at a time by every pattern's
        :meth:`_Pattern.expand` (the slow reference the vectorised path must equal)."""
        out = []
        for rows in sentences:
            seq = []
            for t in range(len(rows)):
                f = []
                for p in self.patterns:
                    obs = p.expand(rows, t, self.wapiti_names)
                    if p.kind in "u*":
                        f.append("U" + obs)
                    if p.kind in "b*" and p.commands and t > 0:
                        f.append("B" + obs)
                seq.append(f)
            out.append(seq)
        return out


def raw_features(sentences, name):
    """Token features without a pattern file: each field is an observation, which
    must start with ``u``, ``b`` or ``*`` (Wapiti's rule)."""
    out = []
    for i, rows in enumerate(sentences):
        seq = []
        for t, row in enumerate(rows):
            f = []
            for field in row:
                kind = field[:1]
                if kind not in ("u", "b", "*"):
                    raise ValueError(
                        f"{name}: sequence {i + 1}, token {t + 1}: without a pattern "
                        f"file (-p) every field is an observation starting with u, b or "
                        f"*, got {field!r}")
                if kind in "u*":
                    f.append("U" + field)
                if kind in "b*" and t > 0:
                    f.append("B" + field)
            seq.append(f)
        out.append(seq)
    return out
