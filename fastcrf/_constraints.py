"""Transition constraints of chunk tagging schemes (BIO, IOB1, BIOES).

The semantics follow AllenNLP's ``allowed_transitions``: a matrix over the K labels
plus two virtual states, START (index K) and END (index K + 1), in which
``allowed[i, j]`` permits label j to follow label i, ``allowed[K, j]`` permits a
sequence to start with j and ``allowed[i, K + 1]`` permits it to end with i.
:func:`fastcrf.viterbi` and ``fastcrf.torch.CRF.decode`` accept that form directly.
This module does not import torch.
"""

from collections.abc import Mapping

import numpy as np

# Per scheme: the tags a sequence may start with (`start`) and end with (`end`); the
# tags that continue a chunk (`chunk`), allowed only after a tag in `after` of the
# same entity type; any other tag may follow any label when it is in `free`, or, when
# `after_any` is set, only labels whose tag is in `after_any`.
_SCHEMES = {
    "BIO": dict(start="OB", end="OBI", free="OB", chunk="I", after="BI", after_any=""),
    "IOB1": dict(start="OI", end="OBI", free="OI", chunk="B", after="BI", after_any=""),
    # BIOES: O, E and S close a chunk and may be followed only by O, B, S; B and I
    # open or continue one and must be followed by I or E of the same entity.
    "BIOES": dict(start="OBS", end="OES", free="", chunk="IE", after="BI", after_any="OES"),
}
# AllenNLP's name for BIOES, with L(ast) for E and U(nit) for S.
_BIOUL = str.maketrans("LU", "ES")


def _split(label, scheme):
    """Return ``(tag, entity)`` of ``label``: ``"B-PER"`` -> ``("B", "PER")``."""
    if not isinstance(label, str) or not label:
        raise TypeError(f"labels must be non-empty strings, got {label!r}")
    tag, rest = label[0], label[1:]
    if scheme == "BIOUL":
        tag = tag.translate(_BIOUL)
    if rest[:1] in ("-", "_"):
        rest = rest[1:]
    return tag, rest


def allowed_transitions(labels, scheme="BIO"):
    """Transitions a chunk tagging scheme permits, as a boolean matrix.

    Parameters
    ----------
    labels : sequence of str, or mapping of int to str
        The label of each index, e.g. ``["O", "B-PER", "I-PER"]`` or AllenNLP's
        ``{0: "O", 1: "B-PER", 2: "I-PER"}`` (keys must be exactly ``0 .. K-1``).
        A label is a one-letter tag, optionally followed by ``-`` or ``_`` and an
        entity type; ``"O"`` stands alone.  Tags are case-sensitive.  A label whose
        tag is not part of the scheme (e.g. a padding label) is never allowed, as
        in AllenNLP.
    scheme : {"BIO", "IOB1", "BIOES", "BIOUL"}, default="BIO"
        ``"BIO"`` (IOB2): I-x only after B-x or I-x; a chunk starts with B.
        ``"IOB1"``: B-x only after B-x or I-x (it separates adjacent chunks of
        one type); a chunk otherwise starts with I.
        ``"BIOES"``: B-x and I-x must be followed by I-x or E-x; S marks one-token
        chunks; a sequence cannot end inside a chunk.  ``"BIOUL"`` is the same
        scheme with AllenNLP's letters L and U for E and S.

    Returns
    -------
    allowed : ndarray of bool of shape (K + 2, K + 2)
        ``allowed[i, j]`` for labels i, j; row K is the START state (which labels
        may come first) and column K + 1 the END state (which may come last).
        Transitions into START or out of END are never allowed.

    Examples
    --------
    >>> from fastcrf._constraints import allowed_transitions
    >>> ok = allowed_transitions(["O", "B-PER", "I-PER"], "BIO")
    >>> bool(ok[0, 2]), bool(ok[1, 2]), bool(ok[3, 2])   # O->I, B->I, START->I
    (False, True, False)
    """
    if scheme not in _SCHEMES and scheme != "BIOUL":
        raise ValueError(
            f"scheme must be one of 'BIO', 'IOB1', 'BIOES', 'BIOUL', got {scheme!r}"
        )
    if isinstance(labels, Mapping):
        if sorted(labels) != list(range(len(labels))):
            raise ValueError("a labels mapping must have the keys 0 .. K-1 exactly")
        labels = [labels[i] for i in range(len(labels))]
    else:
        labels = list(labels)
    if not labels:
        raise ValueError("labels must not be empty")
    rules = _SCHEMES["BIOES" if scheme == "BIOUL" else scheme]
    tags, entities = zip(*(_split(label, scheme) for label in labels))

    letters = set(rules["start"] + rules["end"] + rules["chunk"])

    K = len(labels)
    allowed = np.zeros((K + 2, K + 2), dtype=bool)
    for j, (to_tag, to_ent) in enumerate(zip(tags, entities)):
        if to_tag not in letters:
            continue
        allowed[K, j] = to_tag in rules["start"]
        allowed[j, K + 1] = to_tag in rules["end"]
        for i, (from_tag, from_ent) in enumerate(zip(tags, entities)):
            if from_tag not in letters:
                continue
            if to_tag in rules["chunk"]:
                ok = from_tag in rules["after"] and from_ent == to_ent
            elif rules["after_any"]:
                ok = from_tag in rules["after_any"] and to_tag in "OBS"
            else:
                ok = to_tag in rules["free"]
            allowed[i, j] = ok
    return allowed


def constraint_matrix(constraints, labels):
    """The (K + 2, K + 2) boolean matrix of a ``constraints`` argument over ``labels``.

    Parameters
    ----------
    constraints : str, mapping, array-like of bool, or None
        A scheme name (``"BIO"``, ``"IOB1"``, ``"BIOES"``, ``"BIOUL"``: see
        :func:`allowed_transitions`), a mapping ``{(from_label, to_label): bool}``
        that overrides single transitions (all others allowed), or a (K, K) or
        (K + 2, K + 2) boolean array over the label indices.
    labels : sequence of str
        The model's labels, in index order.

    Returns
    -------
    ndarray of bool of shape (K + 2, K + 2), or None when ``constraints`` is None
    """
    if constraints is None:
        return None
    K = len(labels)
    if isinstance(constraints, str):
        return allowed_transitions(labels, constraints.upper())
    full = np.ones((K + 2, K + 2), dtype=bool)
    if isinstance(constraints, Mapping):
        index = {label: k for k, label in enumerate(labels)}
        for key, ok in constraints.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise TypeError(
                    f"constraints keys must be (from_label, to_label) pairs, got {key!r}")
            unknown = [x for x in key if x not in index]
            if unknown:
                raise ValueError(
                    f"constraints name label(s) {unknown} that the model does not have; "
                    f"its labels are {list(labels)}")
            full[index[key[0]], index[key[1]]] = bool(ok)
        return full
    from ._validation import check_allowed  # numpy-only module, no cycle at import

    ok, st_ok, en_ok = check_allowed(constraints, K)
    full[:K, :K] = ok
    full[K, :K] = st_ok
    full[:K, K + 1] = en_ok
    return full


def infer_scheme(labels):
    """The chunk scheme of ``labels`` for ``constraints="auto"``: ``"BIOES"`` when some
    label's tag is E or S, else ``"BIO"`` (IOB2) when every label is ``O`` or a B- / I-
    label.

    Raises
    ------
    ValueError
        When some label fits neither scheme (it names them).
    """
    tags = [_split(label, "BIO")[0] if isinstance(label, str) and label else None
            for label in labels]
    scheme = "BIOES" if any(tag in ("E", "S") for tag in tags) else "BIO"
    letters = "OBIES" if scheme == "BIOES" else "OBI"
    odd = [label for label, tag in zip(labels, tags) if tag is None or tag not in letters
           or (tag == "O" and label != "O")]
    if odd:
        raise ValueError(f"constraints='auto' cannot tell the scheme of the labels "
                         f"{odd[:5]}: give constraints='BIO', 'IOB1', 'BIOES' or a "
                         "matrix")
    return scheme


def resolve_constraints(constraints, labels):
    """The (K + 2, K + 2) boolean matrix of the estimator's ``constraints=`` parameter
    over ``labels`` (``"auto"``: :func:`infer_scheme`), or None.

    Raises
    ------
    ValueError
        When the matrix leaves no label sequence possible at all (nothing may start,
        or nothing may end).
    """
    if isinstance(constraints, str) and constraints.lower() == "auto":
        constraints = infer_scheme(labels)
    try:
        allowed = constraint_matrix(constraints, labels)
    except (TypeError, ValueError) as exc:
        if str(exc).startswith("constraints"):
            raise
        # The matrix checks name the dense API's argument, `allowed`.
        raise type(exc)(f"constraints: {exc}") from None
    if allowed is None:
        return None
    K = len(labels)
    if not allowed[K, :K].any() or not allowed[:K, K + 1].any():
        raise ValueError("constraints allow no label sequence at all (no label may "
                         "start or none may end a sequence)")
    return allowed


def forbidden_chain(allowed):
    """Bool (K*K + 2K,) over the flat chain vector (transitions, start, end): True for
    the scores ``allowed`` ((K + 2, K + 2) bool) forbids."""
    K = allowed.shape[0] - 2
    return ~np.concatenate((allowed[:K, :K].ravel(), allowed[K, :K], allowed[:K, K + 1]))


def check_allowed_labels(labels, seq_offsets, allowed, classes, name="y"):
    """Raise a ValueError naming the first sequence of label codes ``labels`` (split by
    ``seq_offsets``) that ``allowed`` forbids: a constrained model cannot learn from a
    labelling outside the constraints (its likelihood is 0).  Codes < 0 (unknown
    labels of a partial labelling) are not checked."""
    labels = np.asarray(labels, dtype=np.int64)
    seq_offsets = np.asarray(seq_offsets, dtype=np.int64)
    K = len(classes)
    if len(labels) == 0:
        return
    lengths = np.diff(seq_offsets)
    nonempty = lengths > 0
    first = labels[seq_offsets[:-1][nonempty]]
    last = labels[seq_offsets[1:][nonempty] - 1]
    seq = np.repeat(np.arange(len(lengths)), lengths)
    same = seq[1:] == seq[:-1]
    a, b = labels[:-1], labels[1:]
    known = same & (a >= 0) & (b >= 0)
    bad_pair = np.zeros(len(a), dtype=bool)
    bad_pair[known] = ~allowed[a[known], b[known]]
    where = []
    index = np.flatnonzero(nonempty)
    ok = first >= 0
    bad = np.zeros(len(first), bool)
    bad[ok] = ~allowed[K, first[ok]]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where.append((int(index[i]), f"starts with {classes[first[i]]!r}"))
    ok = last >= 0
    bad = np.zeros(len(last), bool)
    bad[ok] = ~allowed[last[ok], K + 1]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where.append((int(index[i]), f"ends with {classes[last[i]]!r}"))
    if bad_pair.any():
        p = int(np.flatnonzero(bad_pair)[0])
        where.append((int(seq[p]), f"has {classes[a[p]]!r} followed by {classes[b[p]]!r}"))
    if where:
        s, what = min(where)
        raise ValueError(f"{name}[{s}] {what}, which the constraints forbid: a "
                         "constrained CRF trains only on labellings the constraints "
                         "allow")
