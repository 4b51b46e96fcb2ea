"""Item sequences: python-crfsuite's token features, flattened to ``{name: weight}``.

fastcrf's encoder reads python-crfsuite's formats itself (dicts of str, numbers,
bools, nested dicts and lists; lists of str), so sequences go to it as they are;
:func:`flatten_sequence` is the slow, complete path for what the encoder refuses
(sets, bytes, a str or a tuple as an item) and for :meth:`ItemSequence.items`.
"""

import numbers
from decimal import Decimal

from .._features._encoding import SEPARATOR


def _key(key, where):
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "surrogateescape")
    raise TypeError(f"{where}: an attribute name must be a str, got {type(key).__name__}")


def flatten_item(item, where="item"):
    """The attributes of one item as a list of ``(name, weight)`` pairs, in
    python-crfsuite's order (a repeated name is kept twice: CRFsuite adds both).

    Parameters
    ----------
    item : dict, or an iterable of str
        ``{name: str}`` is the attribute ``'name:str'`` with weight 1; ``{name:
        number}`` (or bool) the attribute ``name`` with that weight; ``{name: dict,
        list or set}`` the nested attributes with ``'name:'`` in front; an iterable
        of names, weight 1 each.
    where : str
        How error messages name the item.
    """
    pairs = []
    if isinstance(item, dict):
        for key, value in item.items():
            name = _key(key, where)
            if isinstance(value, (dict, list, set, tuple, frozenset)):
                pairs.extend((name + SEPARATOR + sub, w)
                             for sub, w in flatten_item(value, f"{where}[{key!r}]"))
            elif isinstance(value, str):
                pairs.append((name + SEPARATOR + value, 1.0))
            elif isinstance(value, bytes):
                pairs.append((name + SEPARATOR + value.decode("utf-8", "surrogateescape"),
                              1.0))
            elif isinstance(value, (numbers.Real, Decimal)):   # python-crfsuite: float()
                pairs.append((name, float(value)))
            else:
                raise TypeError(f"{where}[{key!r}]: a feature value must be a str, a "
                                f"number, a bool or a dict/list of them, got "
                                f"{type(value).__name__}")
        return pairs
    try:
        keys = iter(item)
    except TypeError:
        raise TypeError(f"{where}: an item must be a dict of features or a list of "
                        f"attribute names, got {type(item).__name__}") from None
    return [(_key(key, where), 1.0) for key in keys]


def flatten_sequence(xseq, where="xseq"):
    """Every item of ``xseq`` as a list of ``(name, weight)`` pairs (see
    :func:`flatten_item`)."""
    if isinstance(xseq, ItemSequence):
        return [list(item.items()) for item in xseq._items]
    try:
        items = list(xseq)
    except TypeError:
        raise TypeError(f"{where} must be a sequence of items, got "
                        f"{type(xseq).__name__}") from None
    return [flatten_item(item, f"{where}[{t}]") for t, item in enumerate(items)]


def as_encodable(xseq, where="xseq"):
    """``xseq`` as fastcrf's encoder takes it: the list of items (its ``(name,
    weight)`` dicts for an :class:`ItemSequence`)."""
    if isinstance(xseq, ItemSequence):
        return xseq._items
    if isinstance(xseq, (str, bytes)) or not hasattr(xseq, "__len__"):
        return [dict(pairs) for pairs in flatten_sequence(xseq, where)]
    return xseq if isinstance(xseq, list) else list(xseq)


def strict_items(xseq, where="xseq"):
    """``xseq`` flattened into ``{name: weight}`` dicts, the repeated names of an
    item summed (what CRFsuite's scores see)."""
    out = []
    for pairs in flatten_sequence(xseq, where):
        item = {}
        for name, weight in pairs:
            item[name] = item.get(name, 0.0) + weight
        out.append(item)
    return out


class ItemSequence:
    """A sequence of items whose features are flattened once, to pass the same
    sequence to trainers and taggers more than once (python-crfsuite's
    ``ItemSequence``).

    Parameters
    ----------
    pyseq : iterable of items
        Each item a dict of features or a list of attribute names (see
        :func:`flatten_item`); an ``ItemSequence`` is copied.

    Examples
    --------
    >>> from fastcrf.pycrfsuite import ItemSequence
    >>> ItemSequence([["foo"], {"bar": {"baz": 1}}]).items()
    [{'foo': 1.0}, {'bar:baz': 1.0}]
    """

    def __init__(self, pyseq):
        if isinstance(pyseq, ItemSequence):
            self._items = [dict(item) for item in pyseq._items]
        else:
            self._items = strict_items(pyseq, "pyseq")

    def items(self):
        """The items' attributes: a list of ``{name: weight}`` dicts."""
        return [dict(item) for item in self._items]

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return f"<ItemSequence of size {len(self)}>"
