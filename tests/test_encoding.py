"""Feature and label encoding: formats, min_freq, unseen attributes, offsets, errors."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest

from fastcrf import _encoding
from fastcrf._encoding import (
    AttributeVocabulary,
    EncodedSequences,
    encode,
    encode_labels,
    fit_encode,
)

# ---------------------------------------------------------------------------
# An independent reference: python-crfsuite's rules written out plainly, and a
# decoder from the flat arrays back to per-token (name, value) lists.
# ---------------------------------------------------------------------------


def ref_value_pairs(prefix, value):
    if isinstance(value, str):
        return [(prefix + ":" + value, 1.0)]
    if isinstance(value, dict):
        return [
            (prefix + ":" + name, x)
            for key, sub in value.items()
            for name, x in ref_value_pairs(key, sub)
        ]
    if isinstance(value, (list, tuple, set)):
        return [(prefix + ":" + name, 1.0) for name in value]
    return [(prefix, float(value))]


def ref_token_pairs(token):
    if isinstance(token, dict):
        return [pair for key, value in token.items() for pair in ref_value_pairs(key, value)]
    return [(name, 1.0) for name in token]


def ref_fit_encode(X, min_freq=0):
    """Names in first-seen order, their counts, and per-token pairs, after the cutoff."""
    pairs = [[ref_token_pairs(tok) for tok in seq] for seq in X]
    counts = {}
    for seq in pairs:
        for tok in seq:
            for name, _ in tok:
                counts[name] = counts.get(name, 0) + 1
    names = [name for name in counts if counts[name] >= min_freq]
    kept = set(names)
    pairs = [[[p for p in tok if p[0] in kept] for tok in seq] for seq in pairs]
    return names, [counts[n] for n in names], pairs


def decode(enc, names):
    """Per-sequence, per-token lists of (name, value) from an EncodedSequences."""
    out = []
    for s in range(enc.n_sequences):
        seq = []
        for t in range(enc.seq_offsets[s], enc.seq_offsets[s + 1]):
            lo, hi = enc.token_offsets[t], enc.token_offsets[t + 1]
            seq.append(
                [(names[a], float(v)) for a, v in zip(enc.attr_ids[lo:hi], enc.values[lo:hi])]
            )
        out.append(seq)
    return out


def check_invariants(enc, X_lengths):
    assert isinstance(enc, EncodedSequences)
    assert enc.attr_ids.dtype == np.int32
    assert enc.values.dtype == np.float64
    assert enc.token_offsets.dtype == np.int64
    assert enc.seq_offsets.dtype == np.int64
    assert enc.attr_ids.shape == enc.values.shape
    assert enc.token_offsets[0] == 0 and enc.token_offsets[-1] == len(enc.attr_ids)
    assert (np.diff(enc.token_offsets) >= 0).all()
    assert enc.seq_offsets[0] == 0 and enc.seq_offsets[-1] == enc.n_tokens
    assert enc.n_sequences == len(X_lengths)
    assert enc.n_tokens == sum(X_lengths)
    np.testing.assert_array_equal(enc.lengths, X_lengths)
    if len(enc.attr_ids):
        assert 0 <= enc.attr_ids.min() and enc.attr_ids.max() < enc.n_attributes
    assert np.isfinite(enc.values).all()


def random_corpus(rng, n_seq=40, pool=12):
    """Mixed token formats over a small name pool, so names repeat and collide."""
    keys = [f"k{i}" for i in range(pool)]
    words = [f"v{i}" for i in range(pool)]

    def value():
        kind = rng.integers(7)
        if kind <= 2:
            return str(rng.choice(words))
        if kind == 3:
            return float(np.round(rng.normal(), 3))
        if kind == 4:
            return int(rng.integers(-3, 4))
        if kind == 5:
            return bool(rng.integers(2))
        if kind == 6 and rng.integers(2):
            return {str(rng.choice(keys)): str(rng.choice(words))}
        return [str(w) for w in rng.choice(words, size=rng.integers(0, 3))]

    X = []
    for _ in range(n_seq):
        seq = []
        for _ in range(rng.integers(1, 7)):
            if rng.integers(4) == 0:
                seq.append([str(w) for w in rng.choice(words + keys, size=rng.integers(0, 4))])
            else:
                seq.append({str(k): value() for k in rng.choice(keys, size=rng.integers(0, 5))})
        X.append(seq)
    return X


# ---------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------


def test_dict_values_str_float_int_bool():
    X = [[{"w": "Paris", "len": 5, "score": 0.25, "cap": True, "low": False}, {"w": "is"}]]
    vocab, enc = fit_encode(X)
    assert vocab.names == ["w:Paris", "len", "score", "cap", "low", "w:is"]
    np.testing.assert_array_equal(enc.attr_ids, [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(enc.values, [1.0, 5.0, 0.25, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(enc.token_offsets, [0, 5, 6])
    np.testing.assert_array_equal(enc.seq_offsets, [0, 2])
    assert enc.n_attributes == 6
    check_invariants(enc, [2])


def test_list_and_tuple_tokens():
    X = [[["a", "b"], ("b", "c")], [["c"]]]
    vocab, enc = fit_encode(X)
    assert vocab.names == ["a", "b", "c"]
    np.testing.assert_array_equal(enc.attr_ids, [0, 1, 1, 2, 2])
    np.testing.assert_array_equal(enc.values, np.ones(5))
    np.testing.assert_array_equal(enc.token_offsets, [0, 2, 4, 5])
    np.testing.assert_array_equal(enc.seq_offsets, [0, 2, 3])


def test_nested_features_join_with_colon():
    token = {
        "w": {"lower": "x", "len": 3, "deep": {"a": "b"}, "flag": False},
        "lst": ["a", "b"],
        "tup": ("c",),
        "set": {"z"},
        "empty": [],
    }
    vocab, enc = fit_encode([[token]])
    assert decode(enc, vocab.names) == [
        [
            [
                ("w:lower:x", 1.0),
                ("w:len", 3.0),
                ("w:deep:a:b", 1.0),
                ("w:flag", 0.0),
                ("lst:a", 1.0),
                ("lst:b", 1.0),
                ("tup:c", 1.0),
                ("set:z", 1.0),
            ]
        ]
    ]


def test_same_name_from_any_route_shares_one_id():
    X = [[["w:x"], {"w": "x"}, {"w": ["x"]}, {"w:x": 2.0}]]
    vocab, enc = fit_encode(X)
    assert vocab.names == ["w:x"]
    np.testing.assert_array_equal(enc.attr_ids, [0, 0, 0, 0])
    np.testing.assert_array_equal(enc.values, [1.0, 1.0, 1.0, 2.0])
    assert vocab.counts.tolist() == [4]


def test_duplicate_attributes_in_a_token_are_kept():
    vocab, enc = fit_encode([[["a", "a", "b"]]])
    np.testing.assert_array_equal(enc.attr_ids, [0, 0, 1])
    assert vocab.counts.tolist() == [2, 1]


def test_tokens_without_features():
    vocab, enc = fit_encode([[{}, ["a"], []], [()]])
    np.testing.assert_array_equal(enc.token_offsets, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(enc.seq_offsets, [0, 3, 4])
    check_invariants(enc, [3, 1])


def test_uncommon_but_valid_inputs():
    # Mappings, numpy scalars, str subclasses, bytes, generators: all as
    # python-crfsuite reads them.
    def gen_seq():
        yield OrderedDict([("a", np.float32(2.5)), ("b", np.int64(3))])
        yield {"c": np.bool_(False), np.str_("d"): np.str_("v"), "e": b"bytes"}
        yield [np.str_("f"), b"g"]

    X = (s for s in [gen_seq(), ({b"h": "x"},)])
    vocab, enc = fit_encode(X)
    assert all(type(name) is str for name in vocab.names)
    assert decode(enc, vocab.names) == [
        [
            [("a", 2.5), ("b", 3.0)],
            [("c", 0.0), ("d:v", 1.0), ("e:bytes", 1.0)],
            [("f", 1.0), ("g", 1.0)],
        ],
        [[("h:x", 1.0)]],
    ]


def test_fast_path_handles_common_formats_inline(monkeypatch):
    # The general per-token path is the slow one; plain dicts of str/float/int/bool
    # and lists/tuples of str must never reach it.
    def boom(*args):
        raise AssertionError("slow path used")

    monkeypatch.setattr(_encoding, "_token_pairs", boom)
    X = [[{"w": "x", "f": 0.5, "i": 2, "b": True}, ["a", "z"], ("c",)]]
    vocab, enc = fit_encode(X)
    assert len(vocab) == 7
    encode(X + [[{"unseen": "y"}, ["nope"]]], vocab)


def test_matches_reference_on_random_corpus(rng):
    X = random_corpus(rng)
    for min_freq in (0, 2, 3.5):
        vocab, enc = fit_encode(X, min_freq=min_freq)
        names, counts, pairs = ref_fit_encode(X, min_freq)
        assert vocab.names == names
        assert vocab.counts.tolist() == counts
        assert decode(enc, vocab.names) == pairs
        check_invariants(enc, [len(s) for s in X])


def test_matches_python_crfsuite():
    pycrfsuite = pytest.importorskip("pycrfsuite")
    seq = [
        {"w": "x", "n": 2, "b": True, "f": False, "s": 0.5},
        {"nest": {"lower": "x", "len": 3, "deep": {"a": "b"}}, "lst": ["a", "b"]},
        ["p", "q"],
    ]
    vocab, enc = fit_encode([seq])
    ours = [dict(tok) for tok in decode(enc, vocab.names)[0]]
    assert ours == pycrfsuite.ItemSequence(seq).items()


# ---------------------------------------------------------------------------
# min_freq
# ---------------------------------------------------------------------------


def test_min_freq_drops_rare_attributes_and_keeps_first_seen_order():
    # "c" is seen first but only once; "b" twice; "a" three times.
    X = [[["c", "a"], ["b"]], [["a", "b"], ["a"], ["c2"]]]
    vocab, enc = fit_encode(X, min_freq=2)
    assert vocab.names == ["a", "b"]
    assert vocab.counts.tolist() == [3, 2]
    assert vocab.min_freq == 2
    assert decode(enc, vocab.names) == [
        [[("a", 1.0)], [("b", 1.0)]],
        [[("a", 1.0), ("b", 1.0)], [("a", 1.0)], []],
    ]
    np.testing.assert_array_equal(enc.token_offsets, [0, 1, 2, 4, 5, 5])
    check_invariants(enc, [2, 3])

    assert fit_encode(X, min_freq=3)[0].names == ["a"]
    assert fit_encode(X, min_freq=2.5)[0].names == ["a"]
    for keep_all in (0, 1, 0.5):
        assert fit_encode(X, min_freq=keep_all)[0].names == ["c", "a", "b", "c2"]


def test_min_freq_counts_occurrences_not_weights():
    X = [[{"f": False}, {"f": False}, {"g": 5.0}]]
    assert fit_encode(X, min_freq=2)[0].names == ["f"]


def test_min_freq_keeps_numeric_values_aligned():
    X = [[{"rare": 7.0, "x": 0.5}, {"x": -2.0, "rare2": 3.0}]]
    vocab, enc = fit_encode(X, min_freq=2)
    assert vocab.names == ["x"]
    np.testing.assert_array_equal(enc.values, [0.5, -2.0])
    np.testing.assert_array_equal(enc.token_offsets, [0, 1, 2])


@pytest.mark.parametrize(
    "min_freq, exc, match",
    [
        (-1, ValueError, "min_freq must be finite and >= 0"),
        (float("nan"), ValueError, "min_freq must be finite"),
        (float("inf"), ValueError, "min_freq must be finite"),
        ("2", TypeError, "min_freq must be a real number"),
        (True, TypeError, "min_freq must be a real number"),
    ],
)
def test_bad_min_freq(min_freq, exc, match):
    with pytest.raises(exc, match=match):
        fit_encode([[["a"]]], min_freq=min_freq)


# ---------------------------------------------------------------------------
# Prediction-time encoding
# ---------------------------------------------------------------------------


def test_encode_ignores_unseen_attributes():
    vocab, _ = fit_encode([[{"w": "x", "n": 2.0}, ["a", "b"]]])
    X = [[{"w": "y", "n": 0.5, "new": 1.0}, ["zz", "b"], {"w": "x"}], [["q"]]]
    enc = encode(X, vocab)
    assert enc.n_attributes == len(vocab) == 4
    assert decode(enc, vocab.names) == [
        [[("n", 0.5)], [("b", 1.0)], [("w:x", 1.0)]],
        [[]],
    ]
    check_invariants(enc, [3, 1])


def test_encode_agrees_with_fit_encode(rng):
    X = random_corpus(rng)
    for min_freq in (0, 3):
        vocab, enc = fit_encode(X, min_freq=min_freq)
        again = encode(X, vocab)
        for field in ("attr_ids", "values", "token_offsets", "seq_offsets"):
            np.testing.assert_array_equal(getattr(again, field), getattr(enc, field))


def test_encode_empty_X():
    vocab, _ = fit_encode([[["a"]]])
    enc = encode([], vocab)
    assert enc.n_sequences == 0 and enc.n_tokens == 0 and len(enc.attr_ids) == 0
    np.testing.assert_array_equal(enc.seq_offsets, [0])


def test_vocabulary_build_pickle_and_constructor():
    X = [[{"w": "x"}, ["a", "b"]], [["a"]]]
    vocab = AttributeVocabulary.build(X, min_freq=2)
    assert vocab.names == ["a"] and len(vocab) == 1
    assert "a" in vocab and "b" not in vocab

    vocab = fit_encode(X)[0]
    loaded = pickle.loads(pickle.dumps(vocab))
    assert loaded.names == vocab.names and loaded.index == vocab.index
    np.testing.assert_array_equal(loaded.counts, vocab.counts)
    np.testing.assert_array_equal(encode(X, loaded).attr_ids, encode(X, vocab).attr_ids)

    made = AttributeVocabulary(["a", "w:x"])
    assert made.index == {"a": 0, "w:x": 1} and made.counts is None
    np.testing.assert_array_equal(encode(X, made).attr_ids, [1, 0, 0])


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((["a", "b", "a"],), ValueError, "names must be distinct; 'a'"),
        ((["a", 1],), TypeError, r"names\[1\] is 1"),
        ((["a", "b"], [1]), ValueError, r"counts must have shape \(2,\)"),
    ],
)
def test_bad_vocabulary(args, exc, match):
    with pytest.raises(exc, match=match):
        AttributeVocabulary(*args)


def test_encode_needs_a_vocabulary():
    with pytest.raises(TypeError, match="vocabulary must be an AttributeVocabulary"):
        encode([[["a"]]], ["a"])


# ---------------------------------------------------------------------------
# Errors in X
# ---------------------------------------------------------------------------

# (X, exception, message): every message names the position.
BAD_X = [
    ([[{"a": "b"}], []], ValueError, r"X\[1\] is an empty sequence"),
    ([], ValueError, "X contains no sequences"),
    ([[{"a": "b"}, 5]], TypeError, r"X\[0\]\[1\] must be a dict of features or a list/tuple"),
    ([[{"a": "b"}, {"s"}]], TypeError, r"X\[0\]\[1\] must be a dict of features"),
    ([[["a", 1]]], TypeError, r"X\[0\]\[0\]\[1\] must be a str attribute name, got 1"),
    ([[["a", ["b"]]]], TypeError, r"X\[0\]\[0\]\[1\] must be a str attribute name"),
    ([[{"a": "b"}, {"a": None}]], TypeError, r"X\[0\]\[1\]\['a'\] has a value of unsupported"),
    ([[{"a": object()}]], TypeError, r"X\[0\]\[0\]\['a'\] has a value of unsupported type"),
    ([[{"a": 1 + 2j}]], TypeError, r"X\[0\]\[0\]\['a'\] has a value of unsupported type"),
    ([[{"w": {"x": None}}]], TypeError, r"X\[0\]\[0\]\['w'\]\['x'\] has a value"),
    ([[{"w": ["x", 3]}]], TypeError, r"each item of X\[0\]\[0\]\['w'\] must be a str"),
    ([[{1: "a"}]], TypeError, r"X\[0\]\[0\] has a key that must be a str attribute name"),
    ([[{1: 2.0}]], TypeError, r"X\[0\]\[0\] has a key that must be a str attribute name"),
    ([[{"w": {2: "a"}}]], TypeError, r"X\[0\]\[0\]\['w'\] has a key that must be a str"),
    ([[{"a": 1.0}, {"a": float("nan")}]], ValueError, r"X\[0\]\[1\]\['a'\] = nan: .*finite"),
    ([[{"a": float("inf")}]], ValueError, r"X\[0\]\[0\]\['a'\] = inf: .*finite"),
    ([[{"a": -float("inf")}]], ValueError, r"X\[0\]\[0\]\['a'\] = -inf: .*finite"),
    ([[{"a": np.float32("nan")}]], ValueError, r"X\[0\]\[0\]\['a'\] = .*nan.*finite"),
    ([[{"w": {"x": float("nan")}}]], ValueError, r"X\[0\]\[0\]\['w'\]\['x'\] = nan"),
    ([[{"a": 10**400}]], ValueError, r"X\[0\]\[0\]\['a'\] = .* is too large"),
    ([[{"a": b"\xff"}]], ValueError, r"X\[0\]\[0\]\['a'\] is bytes that are not valid UTF-8"),
    # X is a single sequence, not a list of them.
    ([{"w": "a"}, {"w": "b"}], TypeError, r"X\[0\] is a dict .*pass a list of sequences"),
    ([["w=a", "p=N"], ["w=b"]], TypeError, r"X\[0\]\[0\] is a str .*single sequence"),
    (["abc"], TypeError, r"X\[0\] is a str .*single sequence"),
    ([5], TypeError, r"X\[0\] must be a sequence of tokens, got int"),
    ("abc", TypeError, "X must be a list of sequences, got str"),
    (None, TypeError, "X must be a list of sequences, got NoneType"),
    (5, TypeError, "X must be a list of sequences, got int"),
    ({"w": "a"}, TypeError, "X must be a list of sequences, got dict"),
]


@pytest.mark.parametrize("X, exc, match", BAD_X)
def test_bad_X(X, exc, match):
    with pytest.raises(exc, match=match):
        fit_encode(X)


@pytest.mark.parametrize("X, exc, match", [case for case in BAD_X if case[0] != []])
def test_bad_X_at_prediction_time(X, exc, match):
    # Bad input is an error even where every attribute is unseen.
    vocab, _ = fit_encode([[["a"]]])
    with pytest.raises(exc, match=match):
        encode(X, vocab)


def test_error_position_in_a_later_sequence():
    good = [{"w": "x", "n": 1.0}, ["a"], {"w": "y"}]
    for bad, match in [
        ({"w": {"x": None}}, r"X\[2\]\[3\]\['w'\]\['x'\]"),
        ({"w": {"x": float("nan")}}, r"X\[2\]\[3\]\['w'\]\['x'\] = nan"),
        ({"n": float("nan")}, r"X\[2\]\[3\]\['n'\]"),
        ({5: "x"}, r"X\[2\]\[3\] has a key"),
        ([None], r"X\[2\]\[3\]\[0\]"),
        ("tok", r"X\[2\]\[3\] is a str"),
    ]:
        X = [good, good, good + [bad]]
        with pytest.raises((TypeError, ValueError), match=match):
            fit_encode(X)


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


def test_labels_first_seen_order():
    classes, labels = encode_labels([["B", "A"], ["A", "C", "B"]])
    assert classes == ["B", "A", "C"]
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, [0, 1, 1, 2, 0])


def test_labels_with_given_classes():
    given = ["A", "B", "C"]
    classes, labels = encode_labels([["B", "A"], ("C",)], classes=given)
    assert classes == ["A", "B", "C"]
    np.testing.assert_array_equal(labels, [1, 0, 2])
    classes.append("D")
    assert given == ["A", "B", "C"]  # the caller's list is not the one returned


def test_labels_numpy_strings_and_generators():
    y = (np.array(s) for s in [["O", "B-PER"], ["I-PER"]])
    classes, labels = encode_labels(y)
    assert classes == ["O", "B-PER", "I-PER"]
    assert all(type(c) is str for c in classes)
    np.testing.assert_array_equal(labels, [0, 1, 2])


def test_labels_align_with_encoded_tokens():
    X = [[["a"], ["b"]], [["c"]]]
    y = [["O", "B"], ["O"]]
    _, enc = fit_encode(X)
    classes, labels = encode_labels(y, lengths=enc.lengths)
    assert len(labels) == enc.n_tokens
    assert [classes[k] for k in labels] == ["O", "B", "O"]


LENGTHS = [2, 1]

# (y, kwargs, exception, message)
BAD_Y = [
    ([["O", "B"]], {"lengths": LENGTHS}, ValueError, "X has 2, y has 1"),
    ([["O", "B"], ["O"], ["O"]], {"lengths": LENGTHS}, ValueError, "X has 2, y has more"),
    ([["O", "B"], ["O", "O"]], {"lengths": LENGTHS}, ValueError, r"y\[1\] has 2 labels but X"),
    ([["O", "B", "I"], ["O"]], {"lengths": LENGTHS}, ValueError, r"y\[0\] has 3 labels"),
    ([["O"], []], {}, ValueError, r"y\[1\] is an empty sequence"),
    ([], {}, ValueError, "y contains no sequences"),
    ([["O", 1]], {}, TypeError, r"y\[0\]\[1\] must be a str label, got 1 \(int\)"),
    ([["O"], [None]], {}, TypeError, r"y\[1\]\[0\] must be a str label, got None"),
    ([["O", True]], {}, TypeError, r"y\[0\]\[1\] must be a str label, got True"),
    ([["O", ["B"]]], {}, TypeError, r"y\[0\]\[1\] must be a str label"),
    ([["O", 1]], {"classes": ["O"]}, TypeError, r"y\[0\]\[1\] must be a str label"),
    ([["O"], ["O", "D"]], {"classes": ["O", "B"]}, ValueError, r"y\[1\]\[1\] = 'D' is not one"),
    (["O", "B"], {}, TypeError, r"y\[0\] is a str .*single sequence"),
    ([5], {}, TypeError, r"y\[0\] must be a sequence of labels, got int"),
    ("OB", {}, TypeError, "y must be a list of sequences"),
    ([["O"]], {"classes": ["O", "O"]}, ValueError, "classes must be distinct"),
    ([["O"]], {"classes": ["O", 1]}, TypeError, r"classes\[1\] is 1"),
    ([["O"]], {"classes": "OB"}, TypeError, "classes must be a list of str labels"),
    ([["O"]], {"classes": []}, ValueError, "classes must hold at least one label"),
]


@pytest.mark.parametrize("y, kwargs, exc, match", BAD_Y)
def test_bad_y(y, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        encode_labels(y, **kwargs)


# ---------------------------------------------------------------------------
# The compiled loop (fastcrf/_features/_encode.pyx) against the pure-Python one
# ---------------------------------------------------------------------------


class Sub(str):
    """A str subclass: valid, but only the Python path takes it."""


def outcome(fn, X, *args, python=False):
    """``fn(X, *args)`` through the compiled or the pure-Python loop: its arrays and
    names, or its exception as (type, message).  A callable X makes a fresh X."""
    if callable(X):
        X = X()
    saved = _encoding._encode
    if python:
        _encoding._encode = _encoding._encode_py
    try:
        out = fn(X, *args)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    finally:
        _encoding._encode = saved
    vocab, enc = out if isinstance(out, tuple) else (None, out)
    return (
        None if vocab is None else (vocab.names, vocab.counts.tolist()),
        [getattr(enc, f).tolist() for f in ("attr_ids", "values", "token_offsets")],
        enc.seq_offsets.tolist(),
        enc.n_attributes,
    )


def assert_same(fn, X, *args):
    assert outcome(fn, X, *args) == outcome(fn, X, *args, python=True)


def odd_value(rng, words, bad):
    """A valid value only the Python path takes or, with probability ``bad``, an
    invalid one."""
    if rng.random() < bad:
        return [float("nan"), float("inf"), 10**400, None, b"\xff", 1 + 2j][rng.integers(6)]
    return [
        Sub(rng.choice(words)),
        str(rng.choice(words)).encode(),
        np.float64(0.5),
        np.int32(3),
        np.bool_(True),
        {"in": str(rng.choice(words))},
        [str(rng.choice(words))],
    ][rng.integers(7)]


def random_mixed(rng, n_seq=30, pool=8, odd=0.0, bad=0.0):
    """Lists and tuples of str, dicts of str/float/int/bool (repeats, large ints,
    values that are exactly 1), and with probability ``odd`` per token an odd token,
    invalid with probability ``bad``."""
    keys = [f"k{i}" for i in range(pool)]
    words = [f"v{i}" for i in range(pool)] + ["k0:v0", "k1"]

    def value():
        kind = rng.integers(9)
        if kind <= 3:
            return str(rng.choice(words))
        if kind == 4:
            return float(np.round(rng.normal(), 2))
        if kind == 5:
            return int(rng.integers(-2, 3))
        if kind == 6:
            return bool(rng.integers(2))
        if kind == 7:
            return [1.0, 1, 2**60 + 1, -0.0][rng.integers(4)]
        return str(rng.choice(keys))

    def token():
        if rng.random() < odd:
            if rng.random() < bad / 2:
                return [None, {3: "v"}, [None], "tok"][rng.integers(4)]
            kind = rng.integers(4)
            if kind == 0:
                return {str(rng.choice(keys)): odd_value(rng, words, bad / 2)}
            if kind == 1:
                word = str(rng.choice(words))
                return [word, [Sub(word), word.encode(), np.str_(word)][rng.integers(3)]]
            if kind == 2:
                return {Sub("k0"): str(rng.choice(words)), "k1": 2.0}
            return OrderedDict([(str(rng.choice(keys)), str(rng.choice(words)))])
        if rng.integers(3) == 0:
            names = [str(w) for w in rng.choice(words + keys, size=rng.integers(0, 5))]
            return names if rng.integers(2) else tuple(names)
        return {str(k): value() for k in rng.choice(keys, size=rng.integers(0, 6))}

    X = []
    for _ in range(n_seq):
        seq = [token() for _ in range(rng.integers(1, 6))]
        X.append(seq if rng.integers(4) else tuple(seq))
    return X


@pytest.mark.parametrize("seed", range(20))
def test_compiled_matches_python_on_random_input(seed):
    rng = np.random.default_rng(seed)
    X = random_mixed(rng)
    for min_freq in (0, 2, 3.5):
        assert_same(fit_encode, X, min_freq)
    vocab, _ = fit_encode(X[: len(X) // 2], 2)
    assert_same(encode, X, vocab)  # half the names unseen
    assert_same(encode, X[::-1], vocab)
    assert_same(fit_encode, lambda: iter(X))  # not a list: one sequence at a time
    assert_same(encode, lambda: (s for s in X), vocab)


@pytest.mark.parametrize("seed", range(40))
def test_compiled_matches_python_on_odd_and_bad_input(seed):
    # Odd tokens (valid or not) anywhere, after valid sequences: the same arrays or
    # the same exception, naming the same position.
    rng = np.random.default_rng(1000 + seed)
    X = random_mixed(rng, odd=0.1, bad=[0.0, 0.05, 0.3][seed % 3])
    assert_same(fit_encode, X)
    assert_same(fit_encode, X, 2)
    vocab, _ = fit_encode(random_mixed(rng))
    assert_same(encode, X, vocab)
    assert_same(encode, tuple(X), vocab)


@pytest.mark.parametrize("odd", [0.0, 0.02, 0.2])
def test_parallel_lookup_matches_python_on_large_input(odd):
    # Prediction looks the names of runs of list/tuple-of-str sequences up on several
    # threads (Encoder._run_lists, from ~16k names on), fitting hashes them there
    # (Encoder._run_lists_grow, in runs of ~16k names); any other sequence (dict
    # tokens, odd or invalid ones) goes one at a time through the serial loop, and the
    # runs resume after it.  Same arrays, or the same exception, as the Python path.
    rng = np.random.default_rng(int(odd * 100))
    names = [f"n{i}" for i in range(600)] + ["é", "日本", "😀", "", "x" * 50]

    def plain():
        seq = [[str(w) for w in rng.choice(names, size=rng.integers(0, 9))]
               for _ in range(rng.integers(1, 7))]
        seq = [tok if rng.integers(3) else tuple(tok) for tok in seq]
        return seq if rng.integers(4) else tuple(seq)

    X = [plain() for _ in range(2500)]
    assert sum(len(tok) for seq in X for tok in seq) > 20000
    vocab, _ = fit_encode(X[:1200] + [[names[::2]]])
    for i in range(0, len(X), 211):
        if rng.random() < 5 * odd:
            X[i] = random_mixed(rng, n_seq=1, odd=0.5, bad=odd)[0]
    if odd > 0:
        # Items only the serial loop takes (np.str_), in runs: the fast passes stop
        # on them and back off (Encoder.run).
        for i in range(300, 900):
            X[i] = [[np.str_(w) for w in tok] for tok in X[i]]
    assert_same(encode, X, vocab)
    # Fitting hashes the names of such runs on threads (Encoder._run_lists_grow) and
    # numbers them here, in first-seen order.
    assert_same(fit_encode, X)
    assert_same(fit_encode, X, 3)
    if odd == 0:
        # All in one run: the threads' result, against the serial loop's, and for
        # any thread count.
        serial = outcome(encode, lambda: iter(X), vocab)
        assert outcome(encode, X, vocab) == serial
        assert outcome(fit_encode, X) == outcome(fit_encode, lambda: iter(X))
        for n_jobs in (1, 2, 3):
            assert outcome(lambda X, v: encode(X, v, n_jobs=n_jobs), X, vocab) == serial
            assert (outcome(lambda X: fit_encode(X, n_jobs=n_jobs), X)
                    == outcome(fit_encode, X))
        with pytest.raises(ValueError, match="n_jobs"):
            encode(X, vocab, n_jobs=0)


@pytest.mark.parametrize(
    "bad",
    [
        [],
        (),
        "tok",
        [{"w": "x"}, [], "tok"],
        [{"w": float("nan")}],
        [{"w": -float("inf")}],
        [{"w": 10**400}],
        [{"w": None}],
        [{5: "x"}],
        [{5: 1.0}],
        [["a", None]],
        [("a", b"\xff")],
        [{"w": ["x", 3]}],
        [{"w": {"x": object()}}],
        [5],
        7,
        {"w": "x"},
    ],
)
@pytest.mark.parametrize("where", [0, 1, 5])
def test_compiled_errors_in_the_middle_of_X(bad, where):
    good = [{"w": "x", "n": 2, "b": False, "f": 0.25}, ["a", "w:x"], ("c",), {"w": "y"}]
    X = [list(good) for _ in range(5)]
    X.insert(where, bad)
    expected = outcome(fit_encode, X, python=True)
    assert expected[0] in (TypeError, ValueError)
    assert f"X[{where}]" in expected[1]
    assert outcome(fit_encode, X) == expected
    vocab, _ = fit_encode([good])
    assert outcome(encode, X, vocab) == outcome(encode, X, vocab, python=True)
    assert outcome(fit_encode, lambda: iter(X)) == expected


def test_compiled_odd_but_valid_sequences_between_fast_ones():
    # Each odd sequence goes through the Python path; the ones around it do not, and
    # the ids stay in first-seen order across the switches.
    X = [
        [["a", "b"], {"w": "x"}],
        [[Sub("s"), "a"], {"w": b"y"}],
        [{"w": "x", "n": np.float32(2.0)}],
        ([{"w": "z"}, ("s", "t")]),
        [OrderedDict(w="x"), {"w": {"d": "e"}}],
        [{"n": 3, "w": "x"}],
    ]
    assert_same(fit_encode, X)
    assert_same(fit_encode, X, 2)
    vocab, _ = fit_encode(X)
    assert vocab.names == ["a", "b", "w:x", "s", "w:y", "n", "w:z", "t", "w:d:e"]
    assert_same(encode, X + [[["zz"], {"w": "new"}]], vocab)


def test_compiled_same_name_from_every_route():
    X = [[{"w": "x"}, ["w:x"], {"w:x": 3}, {"w": ("x",)}, {"w": Sub("x")}, [Sub("w:x")]]]
    assert_same(fit_encode, X)
    vocab, enc = fit_encode(X)
    assert vocab.names == ["w:x"] and enc.attr_ids.tolist() == [0] * 6
    assert_same(encode, X, vocab)


def test_compiled_non_ascii_names():
    X = [[["é", "日本", "😀"], {"ключ": "значение", "é": "日本"}], [["😀", "e\u0301"]]]
    assert_same(fit_encode, X)
    vocab, _ = fit_encode(X)
    assert_same(encode, [[["日本", "é:日本"], {"ключ": "значение"}]], vocab)


def test_compiled_many_attributes():
    # Enough distinct names to grow the compiled tables many times over.
    rng = np.random.default_rng(0)
    X = [
        [[f"n{k}" for k in rng.integers(0, 20000, size=30)] for _ in range(8)]
        + [{f"k{k % 7}": f"v{k}" for k in rng.integers(0, 20000, size=12)}]
        for _ in range(300)
    ]
    assert_same(fit_encode, X)
    assert_same(fit_encode, X, 3)
    vocab, _ = fit_encode(X[:150])
    assert_same(encode, X[150:], vocab)


def test_vocabulary_table_follows_a_replaced_index():
    vocab, _ = fit_encode([[["a", "b"]]])
    X = [[["a", "b", "c"]]]
    assert encode(X, vocab).attr_ids.tolist() == [0, 1]
    replaced = AttributeVocabulary(["c", "a"])
    vocab.names, vocab.index = replaced.names, replaced.index
    assert encode(X, vocab).attr_ids.tolist() == [1, 0]
    assert_same(encode, X, vocab)
    # Not pickled.
    loaded = pickle.loads(pickle.dumps(vocab))
    assert "_table" not in loaded.__dict__
    assert encode(X, loaded).attr_ids.tolist() == [1, 0]


def test_encoder_is_safe_to_misuse():
    from array import array

    from fastcrf._features._encode import Encoder, name_table

    def make(index=None, grow=True, kinds="iqqqd"):
        arrays = [array(k) for k in kinds]
        return Encoder({} if index is None else index, [], grow, ":", *arrays)

    with pytest.raises(TypeError):
        make(kinds="qqqqd")
    with pytest.raises(ValueError):
        make(index={"a": -1})
    with pytest.raises(TypeError):
        make().run(iter([]), 0)
    assert name_table({"a": 0, 1: 1}) is None
    assert name_table({"a": "0"}) is None
    assert make().run([[["a"]]], 0) == 1
    assert make().run([[["a"]]], 5) == 5
    # A corrupted index: the compiled loop hands the sequence to the Python path.
    enc = make(index={"a": 2**40}, grow=False)
    assert enc.run([[["b"]], [["a"]]], 0) == 1


# ---------------------------------------------------------------------------
# Vocabulary upkeep: the lazy index, the compiled name table of a fit (renumbered
# with the vocabulary), values left empty for the estimator, compiled label codes
# ---------------------------------------------------------------------------


def assert_table_matches(vocab, dropped=()):
    """The compiled name table gives every name its id, and lacks ``dropped``."""
    table = vocab._name_table()
    assert table is not None
    assert table.n_names == len(vocab) and table.n_pairs == 0
    assert [table.lookup(name) for name in vocab.names] == list(range(len(vocab)))
    assert all(table.lookup(name) == -1 for name in dropped)


@pytest.mark.parametrize("min_freq", [0, 2, 3])
def test_fit_vocabulary_index_is_lazy_and_equals_the_eager_one(rng, min_freq):
    X = random_corpus(rng)
    vocab, _ = fit_encode(X, min_freq=min_freq)
    assert vars(vocab).get("_index") is None  # the pass keeps no dict
    eager = AttributeVocabulary(vocab.names).index
    assert vocab.index == eager == {name: i for i, name in enumerate(vocab.names)}
    assert vocab.index is vocab.index
    # Building the index does not make the table stale.
    table = vocab._name_table()
    assert vocab._name_table() is table
    assert vars(pickle.loads(pickle.dumps(vocab))).get("_index") is None


@pytest.mark.parametrize("min_freq", [0, 2, 3])
def test_fit_name_table_gives_every_name_its_id(rng, min_freq):
    X = random_corpus(rng, n_seq=80)  # dict tokens: the pass caches pairs too
    names, _, _ = ref_fit_encode(X)
    vocab, enc = fit_encode(X, min_freq=min_freq)
    assert_table_matches(vocab, dropped=set(names) - set(vocab.names))
    assert all(name in vocab for name in vocab.names)
    assert not any(name in vocab for name in set(names) - set(vocab.names))
    # The table is the same mapping as the dict path of the reference loop.
    assert_same(encode, X, vocab)
    again = encode(X, vocab)
    for field in ("attr_ids", "values", "token_offsets", "seq_offsets"):
        np.testing.assert_array_equal(getattr(again, field), getattr(enc, field))


@pytest.mark.parametrize("min_freq", [0, 2])
def test_sort_by_frequency_renumbers_vocabulary_table_and_ids(rng, min_freq):
    from fastcrf._training import sort_by_frequency

    X = random_corpus(rng, n_seq=80)
    vocab, enc = fit_encode(X, min_freq=min_freq)
    before = decode(enc, list(vocab.names))
    counts = dict(zip(vocab.names, vocab.counts.tolist()))
    first_seen = list(vocab.names)
    assert len(vocab.index) == len(vocab)  # built: must not survive renumbering stale
    vocab, sorted_enc = sort_by_frequency(vocab, enc)
    # By decreasing count, ties in first-seen order.
    assert vocab.names == sorted(first_seen, key=lambda n: (-counts[n], first_seen.index(n)))
    assert vocab.counts.tolist() == [counts[n] for n in vocab.names]
    assert decode(sorted_enc, vocab.names) == before
    assert vocab.index == {name: i for i, name in enumerate(vocab.names)}
    assert_table_matches(vocab)
    got = encode(X, vocab)
    np.testing.assert_array_equal(got.attr_ids, sorted_enc.attr_ids)
    assert_same(encode, X, vocab)
    # A pickle rebuilds the same table from the names.
    loaded = pickle.loads(pickle.dumps(vocab))
    assert loaded.names == vocab.names and loaded.index == vocab.index
    assert_table_matches(loaded)
    np.testing.assert_array_equal(encode(X, loaded).attr_ids, got.attr_ids)


def test_sort_by_frequency_without_counts_or_writeable_ids():
    from fastcrf._training import sort_by_frequency

    vocab = AttributeVocabulary(["a", "b", "c"])
    ids = np.array([2, 1, 2, 0, 2, 1], dtype=np.int64)  # not int32: copied
    enc = EncodedSequences(ids, np.ones(6), np.arange(7), np.array([0, 6]), 3)
    vocab, out = sort_by_frequency(vocab, enc)
    assert vocab.names == ["c", "b", "a"] and vocab.counts.tolist() == [3, 2, 1]
    assert out.attr_ids.tolist() == [0, 1, 0, 2, 0, 1]
    assert ids.tolist() == [2, 1, 2, 0, 2, 1]
    assert_table_matches(vocab)
    frozen = np.array([0, 1, 2], dtype=np.int32)
    frozen.flags.writeable = False
    enc = EncodedSequences(frozen, np.zeros(0), np.arange(4), np.array([0, 3]), 3)
    _, out = sort_by_frequency(AttributeVocabulary(["x", "y", "z"], [1, 5, 1]), enc)
    assert out.attr_ids.tolist() == [1, 0, 2] and frozen.tolist() == [0, 1, 2]


def test_vocabulary_without_a_table_still_encodes():
    # Names a compiled table cannot hold (a str subclass set after construction)
    # fall back on the dict, as before.
    vocab = AttributeVocabulary(["a", "b"])
    vocab.names = [Sub("a"), "b"]
    assert vocab._name_table() is None
    assert encode([[["b", "a", "c"]]], vocab).attr_ids.tolist() == [1, 0]
    assert "a" in vocab and Sub("b") in vocab and "c" not in vocab and 1 not in vocab


def test_dense_values_false_leaves_unit_values_out(rng):
    X = [[["a", "b"], {"c": "x", "d": True}], [("a",)]]
    for fn, args in ((fit_encode, ()), (encode, (fit_encode(X)[0],))):
        dense = fn(X, *args)
        light = fn(X, *args, dense_values=False)
        enc_d = dense[1] if isinstance(dense, tuple) else dense
        enc_l = light[1] if isinstance(light, tuple) else light
        assert len(enc_d.values) == len(enc_d.attr_ids) and len(enc_l.values) == 0
        np.testing.assert_array_equal(enc_l.attr_ids, enc_d.attr_ids)
    X = random_corpus(rng)  # weights other than 1.0: values are kept
    for min_freq in (0, 2):
        _, dense = fit_encode(X, min_freq)
        _, light = fit_encode(X, min_freq, dense_values=False)
        np.testing.assert_array_equal(light.values, dense.values)
    # Unseen names dropped with empty values (the pure-Python path writes -1 ids).
    vocab, _ = fit_encode([[["a"]]])
    for python in (False, True):
        saved = _encoding._encode
        if python:
            _encoding._encode = _encoding._encode_py
        try:
            got = encode([[["z", "a"], ["z"]]], vocab, dense_values=False)
        finally:
            _encoding._encode = saved
        assert got.attr_ids.tolist() == [0] and len(got.values) == 0
        assert got.token_offsets.tolist() == [0, 1, 1]


def test_fit_then_predict_finds_every_attribute(rng, tmp_path):
    from fastcrf import CRF

    X = random_corpus(rng, n_seq=60)
    y = [["A" if i % 2 else "B" for i in range(len(seq))] for seq in X]
    names, _, pairs = ref_fit_encode(X, 2)
    crf = CRF(algorithm="lbfgs", max_iterations=3, min_freq=2).fit(X, y)
    vocab = crf.vocabulary_
    assert sorted(vocab.names) == sorted(names)
    assert_table_matches(vocab, dropped=set(ref_fit_encode(X)[0]) - set(names))
    got = decode(encode(X, vocab), vocab.names)
    assert got == pairs
    # A pickled or saved model rebuilds the same table from its names.
    crf.save(tmp_path / "model.npz")
    for loaded in (pickle.loads(pickle.dumps(crf)), CRF.load(tmp_path / "model.npz")):
        assert loaded.vocabulary_.names == vocab.names
        assert_table_matches(loaded.vocabulary_)
        assert loaded.predict(X) == crf.predict(X)


@pytest.mark.parametrize("seed", range(6))
def test_compiled_label_codes_match_the_python_path(seed):
    # A list y takes the compiled loop, a generator the Python one: same classes,
    # codes and errors, for odd (str subclass, numpy) and bad labels anywhere.
    rng = np.random.default_rng(seed)
    pool = ["O", "B-NP", "I-NP", "B-VP"]

    def label():
        r = rng.random()
        if r < 0.05:
            return Sub(str(rng.choice(pool)))
        if r < 0.08:
            return np.str_(rng.choice(pool))
        if r < 0.09 and seed % 2:
            return [None, 3, b"O"][rng.integers(3)]
        if r < 0.1:
            return "NEW" + str(rng.integers(3))
        return str(rng.choice(pool))

    y = [[label() for _ in range(rng.integers(1, 8))] for _ in range(60)]
    lengths = [len(s) for s in y]
    if seed >= 3:
        lengths[rng.integers(len(y))] += 1
    def run(make, kwargs):
        try:
            classes, codes = encode_labels(make(y), **kwargs)
        except (TypeError, ValueError) as exc:
            return type(exc), str(exc)
        assert all(type(c) is str for c in classes)
        return classes, codes.dtype, codes.tolist()

    for kwargs in ({}, {"classes": pool + ["NEW0", "NEW1"]}, {"lengths": lengths},
                   {"lengths": np.array(lengths, dtype=np.float64)}):
        expected = run(list, kwargs)
        assert run(lambda y: (s for s in y), kwargs) == expected == run(tuple, kwargs)


def test_vocabulary_helpers_reject_misuse():
    from fastcrf._features._encode import Table, count_ids, renumber_ids, reorder

    items = ["a", "b", "c"]
    for order in ([0, 0], [3], [-1], [0, 1, 2, 0]):
        with pytest.raises(ValueError):
            reorder(items, np.array(order, dtype=np.intp))
        assert items == ["a", "b", "c"]
    reorder(items, np.array([2, 0], dtype=np.intp))
    assert items == ["c", "a"]
    ids = np.array([0, 3], dtype=np.int32)
    with pytest.raises(ValueError, match=r"ids\[1\] = 3"):
        renumber_ids(ids, np.array([1, 0], dtype=np.int32))
    assert ids.tolist() == [0, 3]
    with pytest.raises(ValueError, match=r"ids\[1\] = 3"):
        count_ids(ids, np.zeros(2, dtype=np.int64))
    table = Table(10)
    assert table.add_names(["x", "y", "x"]) == 2  # stops at the repeat
    with pytest.raises(ValueError, match="renumber"):
        table.renumber(np.array([0], dtype=np.int32))
    table.renumber(np.array([-1, 0], dtype=np.int32))
    assert (table.lookup("x"), table.lookup("y"), table.n_names) == (-1, 0, 1)
    assert Table(-5).add_names([]) == 0
    with pytest.raises(MemoryError, match="too many attributes"):
        Table(2**40)


def test_table_matches_names_by_their_characters():
    # The table compares a lookup's characters with its own packed copy of each key
    # (Table.arena), through growth and renumbering: every kind of str (1, 2 and 4
    # bytes per character), the empty name, prefixes and names that differ only in
    # their last character or their kind must each find their own id.
    from fastcrf._features._encode import Table

    names = ["", "a", "ab", "abc", "b", "ba", "é", "e\u0301", "日本", "日本語", "😀", "😀a",
             "x" * 7, "x" * 8, "x" * 9, "x" * 64, "x" * 63 + "y"]
    names += [f"w{i}:{'ü' * (i % 5)}{i * 7919}" for i in range(5000)]
    table = Table()  # grows from its smallest size
    assert table.add_names(names) == len(names)
    fresh = [(name + "!")[:-1] for name in names]  # equal characters, new objects
    assert [table.lookup(name) for name in fresh] == list(range(len(names)))
    for missing in ("abcd", "x" * 10, "x" * 64 + "x", "日", "😀b", "w1:ü7919x", "E"):
        assert table.lookup(missing) == -1
    order = np.arange(len(names), dtype=np.int32)[::-1].copy()
    order[::3] = -1  # renumbered, a third left out
    table.renumber(order)
    assert [table.lookup(name) for name in fresh] == order.tolist()


def test_encoding_does_not_depend_on_the_hash_seed(tmp_path):
    # Each process hashes names with its own random seed (fastcrf._encoding); ids are
    # handed out in first-seen order whatever the table layout.
    import json
    import subprocess
    import sys

    script = (
        "import json, fastcrf._features._encode as e, fastcrf._encoding as enc\n"
        "X = [[['a', 'b=1', 'é'], ['日本', 'a']], [['😀', ''], ['b=1', 'x' * 40]]] * 50\n"
        "X += [[[f'w{i}', f'v{i % 7}'] for i in range(j, j + 9)] for j in range(300)]\n"
        "v, f = enc.fit_encode(X)\n"
        "print(json.dumps([v.names, f.attr_ids.tolist(), e.fcrf_seed_for_tests()]))\n"
    )
    # (run outside the source tree, whose uncompiled package would shadow fastcrf)
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], check=True,
                                      capture_output=True, text=True, cwd=tmp_path,
                                      timeout=120).stdout)
            for _ in range(2)]
    assert runs[0][:2] == runs[1][:2]
    assert runs[0][2] != runs[1][2]  # two processes, two seeds


def test_name_hash_has_no_differences_that_cancel_whatever_the_key():
    # A multiply-xorshift step let flips of bits 63 of one word and 32 and 63 of the
    # next cancel for any key, so 2**k crafted names all collided and a table of them
    # took quadratic time (hash flooding).  Each such name must hash apart now, and
    # the hash must see every character, whatever the length and kind.
    from fastcrf._features._encode import fcrf_hash_for_tests as h

    base = "abcdefghijklmnop"
    mod = list(base)
    for pos, bit in ((7, 0x80), (12, 0x01), (15, 0x80)):
        mod[pos] = chr(ord(mod[pos]) ^ bit)
    mod = "".join(mod)
    crafted = ["".join(mod if m >> j & 1 else base for j in range(12)) for m in range(4096)]
    assert len({h(name) for name in crafted}) == 4096
    names = ["", "a", "b", "ab", "ba", "abc", "abd", "abcd", "abce", "abcdefg", "abcdefh",
             "abcdefgh", "abcdefgi", "abcdefghi", "abcdefghj", "é", "e\u0301", "日本", "😀"]
    names += ["x" * n for n in range(1, 40)] + ["x" * n + "y" for n in range(40)]
    assert len({h(name) for name in names}) == len(set(names))
    assert h("日本語" * 5) == h("".join(["日本", "語"] * 5))  # characters, not objects


def test_dict_keys_built_afresh_for_each_token():
    # The encoder keeps the hash of each dict-token key by position, tied to the key
    # object (Encoder._key_hash): fresh key objects of the same or other characters,
    # at the same or another position, must each be hashed for what they hold.
    rng = np.random.default_rng(11)

    def token():
        keys = [f"k{int(k)}" for k in rng.integers(0, 6, size=rng.integers(1, 8))]
        return {key: str(rng.choice(["a", "b", "é"])) if rng.integers(2) else 1.5
                for key in keys}

    X = [[token() for _ in range(rng.integers(1, 5))] for _ in range(300)]
    assert_same(fit_encode, X)
    vocab, _ = fit_encode(X[:100])
    assert_same(encode, X, vocab)
