"""Sequence-labelling metrics: conlleval-exact chunk scores and flat token scores.

:func:`chunk_scores` and :func:`classification_report` give exactly the numbers and
the text that ``conlleval.pl`` (CoNLL-2000 shared task, version 2004-01-26) prints for
a file with one line per token and one blank line after each sentence.  conlleval does
not know tagging schemes: it finds chunk boundaries with a fixed table of rules over
(previous tag, tag) prefix pairs and types, which covers

- IOB2/BIO (``B-X`` starts every chunk), IOB1 (``B-X`` only between two adjacent
  chunks of the same type), IOE1 and IOE2 (``E-X`` ends chunks), and the bracket
  notation (``[``, ``]``, ``.``), all with the same rules;
- with ``scheme="IOBES"``, the widely used extension of those rules that also knows
  ``S-X`` (a one-token chunk) and ``E-X`` followed by ``B-X``: the original script
  reads ``S-X S-X`` as one chunk.

A tag is split at its first ``-`` into a prefix and a type, so types may contain
``-`` (``B-I-PER`` is prefix ``B``, type ``I-PER``); a tag without ``-`` has the empty
type.  Scores are fractions in [0, 1]; the report prints percentages as conlleval does.

The flat helpers (:func:`flat_accuracy_score`, :func:`flat_precision_score`, ...) and
:func:`sequence_accuracy_score` follow sklearn-crfsuite's ``metrics`` module without
needing scikit-learn.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ChunkScores",
    "TypeScores",
    "chunk_scores",
    "classification_report",
    "flat_accuracy_score",
    "flat_classification_report",
    "flat_f1_score",
    "flat_fbeta_score",
    "flat_precision_score",
    "flat_recall_score",
    "sequence_accuracy_score",
]

# conlleval's chunk boundary rules.  A chunk ends between two tokens when
# (previous prefix, prefix) is in _END, when the previous token is inside a chunk
# (prefix not O or .) and the types differ, or after a bracket; a chunk starts when the
# pair is in _START, when the token is inside a chunk and the types differ, or at a
# bracket.
_END = frozenset([("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"),
                  ("E", "E"), ("E", "I"), ("E", "O")])
_START = frozenset([("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"),
                    ("E", "E"), ("E", "I"), ("O", "E")])
# The IOBES extension adds S (single-token chunk) and E followed by B.
_END_IOBES = _END | frozenset([("B", "S"), ("I", "S"), ("E", "S"), ("E", "B"),
                               ("S", "E"), ("S", "I"), ("S", "O"), ("S", "S"),
                               ("S", "B")])
_START_IOBES = _START | frozenset([("S", "B"), ("E", "B"), ("B", "S"), ("I", "S"),
                                   ("O", "S"), ("S", "S"), ("E", "S"), ("S", "I"),
                                   ("S", "E")])
_BRACKETS = ("[", "]")
_NOT_INSIDE = ("O", ".")

# Accepted names for schemes that conlleval's own rules handle.
_CONLLEVAL_SCHEMES = {None, "IOB1", "IOB2", "BIO", "IOE1", "IOE2"}


def _check_sequences(y_true, y_pred, *, str_labels=True, same_lengths=True):
    """Return ``(y_true, y_pred)`` as lists of lists of str, or raise naming the spot.

    ``str_labels=False`` accepts labels of any type but a container (the flat and
    whole-sequence scores compare labels only, as scikit-learn's metrics, which take
    ints too); ``same_lengths=False`` lets two sequences differ in length (a
    whole-sequence score counts them as different)."""
    out = []
    for arg, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y is None or isinstance(y, (str, bytes)) or not hasattr(y, "__iter__"):
            raise TypeError(f"{arg} must be a list of label sequences, got {type(y).__name__}")
        seqs = []
        for i, seq in enumerate(y):
            if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
                raise TypeError(
                    f"{arg}[{i}] must be a sequence of str labels, got {type(seq).__name__} "
                    f"({seq!r}); {arg} looks like a single sequence, pass [{arg}]"
                )
            seq = list(seq)
            for j, label in enumerate(seq):
                if not isinstance(label, str) and (
                        str_labels or isinstance(label, (bytes, dict, list, set, tuple))
                        or hasattr(label, "__len__")):
                    raise TypeError(
                        f"{arg}[{i}][{j}] must be a {'str ' if str_labels else ''}label, "
                        f"got {label!r} "
                        f"({type(label).__name__})"
                    )
            seqs.append(seq)
        out.append(seqs)
    y_true, y_pred = out
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred must hold as many sequences: {len(y_true)} != {len(y_pred)}"
        )
    for i, (a, b) in enumerate(zip(y_true, y_pred)):
        if same_lengths and len(a) != len(b):
            raise ValueError(
                f"sequence {i} has {len(a)} labels in y_true but {len(b)} in y_pred"
            )
    return y_true, y_pred


@dataclass(frozen=True)
class TypeScores:
    """Chunk counts and scores of one chunk type.

    Attributes
    ----------
    n_true : int
        Chunks of this type in ``y_true`` (conlleval's "foundCorrect").
    n_pred : int
        Chunks of this type in ``y_pred`` (conlleval's "foundGuessed").
    n_correct : int
        Chunks of ``y_pred`` that match a chunk of ``y_true`` exactly (same first and
        last token, same type).
    """

    n_true: int
    n_pred: int
    n_correct: int

    @property
    def precision(self):
        """``n_correct / n_pred`` (0.0 when there are no predicted chunks)."""
        return self.n_correct / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self):
        """``n_correct / n_true`` (0.0 when there are no true chunks)."""
        return self.n_correct / self.n_true if self.n_true else 0.0

    @property
    def f1(self):
        """Harmonic mean of precision and recall (0.0 when both are 0)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def _percent(self):
        """conlleval's percentages, computed exactly as the script does."""
        p = 100 * self.n_correct / self.n_pred if self.n_pred else 0.0
        r = 100 * self.n_correct / self.n_true if self.n_true else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f


@dataclass(frozen=True)
class ChunkScores(TypeScores):
    """conlleval's counts and scores over a whole corpus.

    Attributes
    ----------
    n_true, n_pred, n_correct : int
        Chunk counts over all types (see :class:`TypeScores`).
    n_tokens : int
        Tokens scored.
    n_correct_tags : int
        Tokens whose predicted tag equals the true one, compared as conlleval does
        (prefix and type after splitting at the first ``-``).
    per_type : dict of str to TypeScores
        One entry per chunk type seen in ``y_true`` or ``y_pred``, sorted by type.
    """

    n_tokens: int = 0
    n_correct_tags: int = 0
    per_type: dict = field(default_factory=dict)
    # conlleval lists a type found on both sides once, except the empty type, which
    # its de-duplication (``not($lastType)``) misses: the report prints it twice.
    _empty_type_twice: bool = field(default=False, repr=False)

    @property
    def accuracy(self):
        """Token accuracy as conlleval reports it: ``n_correct_tags / n_tokens``."""
        return self.n_correct_tags / self.n_tokens if self.n_tokens else 0.0

    def report(self, digits=2):
        """Return the text conlleval prints (see :func:`classification_report`)."""
        return _format_report(self, digits)

    def __str__(self):
        return self.report()


def _split(tag, raw, o_tag):
    """conlleval's ``(prefix, type)`` of a tag."""
    if raw:
        if tag == o_tag:
            tag = "O"
        if tag != "O":
            tag = "B-" + tag
    prefix, dash, ctype = tag.partition("-")
    if not dash:
        return tag, ""
    # Perl reads the type "0" as false and replaces it by "".
    return prefix, ("" if ctype == "0" else ctype)


def chunk_scores(y_true, y_pred, *, scheme=None, raw=False, o_tag="O"):
    """Chunk precision, recall and F1 exactly as conlleval computes them.

    Parameters
    ----------
    y_true, y_pred : list of list of str
        True and predicted tags, one list per sentence; sentence ``i`` must have as
        many tags in both.
    scheme : {None, "IOB1", "IOB2", "BIO", "IOE1", "IOE2", "IOBES"}, default=None
        ``None`` and the IOB/IOE names all use conlleval's own rules (which handle
        those schemes alike).  ``"IOBES"`` adds the rules for ``S-`` and for ``E-``
        followed by ``B-`` (see the module docstring).
    raw : bool, default=False
        conlleval's ``-r``: tags carry no prefix, every tag but ``o_tag`` is a
        one-token chunk of its own type.
    o_tag : str, default="O"
        conlleval's ``-o``: the outside tag in ``raw`` mode (like conlleval, it has no
        effect otherwise).

    Returns
    -------
    ChunkScores
        Counts, fractional scores overall and per type, and the conlleval report.

    Raises
    ------
    ValueError
        If the two sides hold different numbers of sentences or of tags in a sentence,
        or ``scheme`` is unknown.
    TypeError
        If a sentence or a tag has the wrong type.

    Notes
    -----
    Every sentence is followed by a boundary (conlleval's blank line, read as an
    ``O`` token that is not counted), so no chunk spans two sentences.  conlleval
    also treats a line whose first field is ``-X-`` as a boundary; here tokens carry
    no words, so that case cannot arise.

    Examples
    --------
    >>> s = chunk_scores([["B-NP", "I-NP", "O", "B-VP"]], [["B-NP", "I-NP", "O", "B-NP"]])
    >>> s.n_true, s.n_pred, s.n_correct
    (2, 2, 1)
    >>> round(s.f1, 4), round(s.per_type["NP"].recall, 4)
    (0.5, 1.0)
    """
    if scheme == "IOBES":
        end_pairs, start_pairs = _END_IOBES, _START_IOBES
    elif scheme in _CONLLEVAL_SCHEMES:
        end_pairs, start_pairs = _END, _START
    else:
        raise ValueError(
            f"scheme must be None, 'IOB1', 'IOB2', 'BIO', 'IOE1', 'IOE2' or 'IOBES', "
            f"got {scheme!r}"
        )
    if not isinstance(o_tag, str):
        raise TypeError(f"o_tag must be a str, got {type(o_tag).__name__}")
    y_true, y_pred = _check_sequences(y_true, y_pred)

    def is_end(prev, cur, prev_type, cur_type):
        return (
            (prev, cur) in end_pairs
            or (prev not in _NOT_INSIDE and prev_type != cur_type)
            or prev in _BRACKETS
        )

    def is_start(prev, cur, prev_type, cur_type):
        return (
            (prev, cur) in start_pairs
            or (cur not in _NOT_INSIDE and prev_type != cur_type)
            or cur in _BRACKETS
        )

    cache = {}
    n_true = n_pred = n_correct = n_tags = n_tokens = 0
    true_by_type, pred_by_type, correct_by_type = {}, {}, {}
    in_correct = False
    last_c, last_ct, last_g, last_gt = "O", "", "O", ""
    boundary = (None, None)
    for seq_t, seq_p in zip(y_true, y_pred):
        # The state machine of conlleval's main loop, fed the sentence's tokens and
        # then one boundary token (tags O, not counted).
        for tc, tg in list(zip(seq_t, seq_p)) + [boundary]:
            if tc is None:
                c, ct, g, gt = "O", "", "O", ""
            else:
                split = cache.get(tc)
                if split is None:
                    split = cache[tc] = _split(tc, raw, o_tag)
                c, ct = split
                split = cache.get(tg)
                if split is None:
                    split = cache[tg] = _split(tg, raw, o_tag)
                g, gt = split
            end_c = is_end(last_c, c, last_ct, ct)
            end_g = is_end(last_g, g, last_gt, gt)
            if in_correct:
                if end_c and end_g and last_gt == last_ct:
                    in_correct = False
                    n_correct += 1
                    correct_by_type[last_ct] = correct_by_type.get(last_ct, 0) + 1
                elif end_c != end_g or gt != ct:
                    in_correct = False
            start_c = is_start(last_c, c, last_ct, ct)
            start_g = is_start(last_g, g, last_gt, gt)
            if start_c and start_g and gt == ct:
                in_correct = True
            if start_c:
                n_true += 1
                true_by_type[ct] = true_by_type.get(ct, 0) + 1
            if start_g:
                n_pred += 1
                pred_by_type[gt] = pred_by_type.get(gt, 0) + 1
            if tc is not None:
                if c == g and ct == gt:
                    n_tags += 1
                n_tokens += 1
            last_c, last_ct, last_g, last_gt = c, ct, g, gt
    if in_correct:
        n_correct += 1
        correct_by_type[last_ct] = correct_by_type.get(last_ct, 0) + 1

    per_type = {
        t: TypeScores(true_by_type.get(t, 0), pred_by_type.get(t, 0),
                      correct_by_type.get(t, 0))
        for t in sorted(set(true_by_type) | set(pred_by_type))
    }
    empty_twice = "" in true_by_type and "" in pred_by_type
    return ChunkScores(n_true, n_pred, n_correct, n_tokens, n_tags, per_type, empty_twice)


def _format_report(scores, digits):
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an int >= 0, got {digits!r}")
    w = digits + 4  # %6.2f for the default two digits
    p, r, f = scores._percent()
    lines = [
        f"processed {scores.n_tokens} tokens with {scores.n_true} phrases; "
        f"found: {scores.n_pred} phrases; correct: {scores.n_correct}."
    ]
    if scores.n_tokens > 0:
        acc = 100 * scores.n_correct_tags / scores.n_tokens
        lines.append(
            f"accuracy: {acc:{w}.{digits}f}%; precision: {p:{w}.{digits}f}%; "
            f"recall: {r:{w}.{digits}f}%; FB1: {f:{w}.{digits}f}"
        )
    for t, ts in scores.per_type.items():
        p, r, f = ts._percent()
        line = (
            f"{t:>17}: precision: {p:{w}.{digits}f}%; recall: {r:{w}.{digits}f}%; "
            f"FB1: {f:{w}.{digits}f}  {ts.n_pred}"
        )
        lines.append(line)
        if t == "" and scores._empty_type_twice:
            lines.append(line)
    return "\n".join(lines) + "\n"


def classification_report(y_true, y_pred, *, digits=2, scheme=None, raw=False, o_tag="O"):
    """The per-type chunk report, in conlleval's exact format.

    Parameters
    ----------
    y_true, y_pred : list of list of str
        True and predicted tags, one list per sentence.
    digits : int, default=2
        Decimals of the percentages; 2 reproduces conlleval's output byte for byte.
    scheme, raw, o_tag
        As in :func:`chunk_scores`.

    Returns
    -------
    str
        ``processed N tokens with M phrases; found: G phrases; correct: C.``, then
        (when there are tokens) the overall accuracy, precision, recall and FB1 line,
        then one line per chunk type with its number of predicted chunks.  Ends with
        a newline.
    """
    return chunk_scores(y_true, y_pred, scheme=scheme, raw=raw, o_tag=o_tag).report(digits)


# ---------------------------------------------------------------------------
# Flat (token-level) and whole-sequence scores, as in sklearn-crfsuite.
# ---------------------------------------------------------------------------


def flat_accuracy_score(y_true, y_pred):
    """Fraction of tokens whose predicted label equals the true one.

    Parameters
    ----------
    y_true, y_pred : list of list of labels
        str labels, or any other type that compares with ``==`` (ints, ...).

    Returns
    -------
    float
        In [0, 1]; 0.0 when there are no tokens.
    """
    y_true, y_pred = _check_sequences(y_true, y_pred, str_labels=False)
    n = sum(len(s) for s in y_true)
    good = sum(a == b for st, sp in zip(y_true, y_pred) for a, b in zip(st, sp))
    return good / n if n else 0.0


def sequence_accuracy_score(y_true, y_pred):
    """Fraction of sequences predicted without a single error.

    Parameters
    ----------
    y_true, y_pred : list of list of labels
        str labels, or any other type that compares with ``==`` (ints, ...).  Two
        sequences of different lengths count as a wrong prediction.

    Returns
    -------
    float
        In [0, 1]; 0.0 when there are no sequences.
    """
    y_true, y_pred = _check_sequences(y_true, y_pred, str_labels=False, same_lengths=False)
    if not y_true:
        return 0.0
    return sum(st == sp for st, sp in zip(y_true, y_pred)) / len(y_true)


def _flat_prf(y_true, y_pred, labels, average, beta=1.0):
    """Per-label and averaged precision/recall/F-beta over all tokens (sklearn
    semantics)."""
    y_true, y_pred = _check_sequences(y_true, y_pred, str_labels=False)
    if average not in (None, "micro", "macro", "weighted"):
        raise ValueError(
            f"average must be None, 'micro', 'macro' or 'weighted', got {average!r}"
        )
    tp, n_pred, n_true = {}, {}, {}
    for st, sp in zip(y_true, y_pred):
        for a, b in zip(st, sp):
            n_true[a] = n_true.get(a, 0) + 1
            n_pred[b] = n_pred.get(b, 0) + 1
            if a == b:
                tp[a] = tp.get(a, 0) + 1
    if labels is None:
        labels = sorted(set(n_true) | set(n_pred))
    else:
        if isinstance(labels, str):
            raise TypeError("labels must be a list of str labels, got a single str")
        labels = list(labels)
    if not labels:
        raise ValueError("no labels to score: y_true and y_pred are empty")

    b2 = beta * beta

    def prf(t, p, g):
        prec = t / p if p else 0.0
        rec = t / g if g else 0.0
        return prec, rec, ((1 + b2) * prec * rec / (b2 * prec + rec) if prec + rec else 0.0)

    per = [prf(tp.get(k, 0), n_pred.get(k, 0), n_true.get(k, 0)) for k in labels]
    if average is None:
        return per
    if average == "micro":
        return prf(sum(tp.get(k, 0) for k in labels), sum(n_pred.get(k, 0) for k in labels),
                   sum(n_true.get(k, 0) for k in labels))
    if average == "macro":
        weights = [1.0] * len(labels)
    else:
        weights = [n_true.get(k, 0) for k in labels]
    total = sum(weights)
    if not total:
        return 0.0, 0.0, 0.0
    return tuple(sum(w * s[i] for w, s in zip(weights, per)) / total for i in range(3))


_FLAT_DOC = """Token-level {what} over all sequences, as scikit-learn computes it.

    Parameters
    ----------
    y_true, y_pred : list of list of labels
        str labels, or any other type that compares with ``==`` (ints, ...).
    average : {{None, "micro", "macro", "weighted"}}, default="micro"
        ``None`` returns one score per label (in the order of ``labels``); the others
        average over ``labels`` as scikit-learn does ("micro" pools the counts).
    labels : list of str, optional
        Labels to score (e.g. all but ``"O"``); by default every label of ``y_true``
        and ``y_pred``, sorted.

    Returns
    -------
    float or list of float
        Scores in [0, 1]; a label never predicted (or never true) scores 0.0, as with
        scikit-learn's ``zero_division=0``.
    """


def flat_precision_score(y_true, y_pred, *, average="micro", labels=None):
    per = _flat_prf(y_true, y_pred, labels, average)
    return [s[0] for s in per] if average is None else per[0]


def flat_recall_score(y_true, y_pred, *, average="micro", labels=None):
    per = _flat_prf(y_true, y_pred, labels, average)
    return [s[1] for s in per] if average is None else per[1]


def flat_f1_score(y_true, y_pred, *, average="micro", labels=None):
    per = _flat_prf(y_true, y_pred, labels, average)
    return [s[2] for s in per] if average is None else per[2]


def flat_fbeta_score(y_true, y_pred, beta, *, average="micro", labels=None):
    """Token-level F-beta score over all sequences, as scikit-learn computes it.

    Parameters
    ----------
    y_true, y_pred : list of list of labels
    beta : float
        The weight of recall: ``(1 + beta**2) P R / (beta**2 P + R)``; 1 gives
        :func:`flat_f1_score`, exactly.
    average : {None, "micro", "macro", "weighted"}, default="micro"
        As in :func:`flat_f1_score`.
    labels : list of labels, optional
        As in :func:`flat_f1_score`.

    Returns
    -------
    float or list of float

    Raises
    ------
    ValueError
        When ``beta`` is negative or not a number.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) \
            or not beta >= 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    per = _flat_prf(y_true, y_pred, labels, average, beta=float(beta))
    return [s[2] for s in per] if average is None else per[2]


flat_precision_score.__doc__ = _FLAT_DOC.format(what="precision")
flat_recall_score.__doc__ = _FLAT_DOC.format(what="recall")
flat_f1_score.__doc__ = _FLAT_DOC.format(what="F1 score")


def flat_classification_report(y_true, y_pred, labels=None, *, digits=2, **kwargs):
    """scikit-learn's ``classification_report`` of the flattened token labels, as
    ``sklearn_crfsuite.metrics.flat_classification_report``.

    Uses scikit-learn when it is installed (then every keyword of its
    ``classification_report`` is accepted); without it, the same text is built here
    for the default keywords (per-label precision, recall, F1 and support, then
    accuracy, or micro average when ``labels`` leaves some out, and the macro and
    support-weighted averages; 0 where a ratio is undefined).

    Parameters
    ----------
    y_true, y_pred : list of list of str
    labels : list of str, optional
        The labels to report, in this order (default: every label, sorted).
    digits : int, default=2

    Returns
    -------
    str
    """
    y_true, y_pred = _check_sequences(y_true, y_pred, str_labels=False)
    flat_true = [a for s in y_true for a in s]
    flat_pred = [b for s in y_pred for b in s]
    try:
        from sklearn import metrics as sk_metrics
    except ImportError:
        sk_metrics = None
    if sk_metrics is not None:
        return sk_metrics.classification_report(flat_true, flat_pred, labels=labels,
                                                digits=digits, **kwargs)
    if kwargs:
        raise TypeError(f"without scikit-learn, flat_classification_report takes no "
                        f"{', '.join(sorted(kwargs))}")
    return _flat_report(flat_true, flat_pred, labels, digits)


def _flat_report(flat_true, flat_pred, labels, digits):
    """scikit-learn's report text (its column widths and rows), computed here."""
    everything = sorted(set(flat_true) | set(flat_pred))
    labels = everything if labels is None else list(labels)
    true, pred = np.asarray(flat_true, dtype=object), np.asarray(flat_pred, dtype=object)

    def ratio(a, b):
        return a / b if b else 0.0

    rows = []
    for label in labels:
        tp = int(np.sum((true == label) & (pred == label)))
        n_pred, n_true = int(np.sum(pred == label)), int(np.sum(true == label))
        p, r = ratio(tp, n_pred), ratio(tp, n_true)
        rows.append((str(label), p, r, ratio(2 * p * r, p + r), n_true))
    support = sum(row[4] for row in rows)
    width = max([len("weighted avg"), digits] + [len(row[0]) for row in rows])
    head = "{:>{width}s} " + " {:>9}" * 4
    line = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = head.format("", "precision", "recall", "f1-score", "support", width=width)
    text += "\n\n"
    for row in rows:
        text += line.format(*row, width=width, digits=digits)
    text += "\n"
    tp = sum(int(np.sum((true == label) & (pred == label))) for label in labels)
    if set(labels) >= set(everything):
        accuracy = "{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
        text += accuracy.format("accuracy", "", "", ratio(tp, len(true)), support,
                                width=width, digits=digits)
    else:
        p = ratio(tp, int(np.sum(np.isin(pred, labels))))
        r = ratio(tp, int(np.sum(np.isin(true, labels))))
        text += line.format("micro avg", p, r, ratio(2 * p * r, p + r), support,
                            width=width, digits=digits)
    columns = np.array([row[1:4] for row in rows], dtype=float).reshape(-1, 3)
    weights = np.array([row[4] for row in rows], dtype=float)
    macro = columns.mean(axis=0) if len(rows) else np.zeros(3)
    weighted = (weights @ columns / weights.sum()) if weights.sum() else np.zeros(3)
    text += line.format("macro avg", *macro, support, width=width, digits=digits)
    text += line.format("weighted avg", *weighted, support, width=width, digits=digits)
    return text
