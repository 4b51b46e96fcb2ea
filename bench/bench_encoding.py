"""Feature encoding: the compiled encoder against the pure-Python one, in one process.

    python bench/bench_encoding.py [--data PATH] [--repeats 7]

Features are CoNLL-2000 chunking's CRF++ template (as CRFsuite's and CRF++'s chunking
examples): words at offsets -2..2 (U00-U04), word bigrams (U05, U06), POS tags at
offsets -2..2 (U10-U14), POS bigrams (U15-U18) and trigrams (U20-U22), with ``_B-1``,
``_B-2``, ``_B+1``, ``_B+2`` past the ends: 19 attributes per token.  The same features
are timed as tokens of

- ``list``: a list of str ``"U00:Confidence"`` (python-crfsuite's ``"name:value"``);
- ``dict``: a dict ``{"U00": "Confidence", ...}`` of str values;
- ``real``: a dict of the same 19 names with float, int and bool values,

through ``fit_encode`` (building the vocabulary) and ``encode`` with the vocabulary of
the training set, on the training set itself and on the test set (when present; its
unseen attributes are dropped).  Each cell is the median over rounds
of one call, old and new alternating within each round; the ratio is old / new.
"""

import argparse
import gc
import os
import platform
import statistics
import time

import numpy as np

import fastcrf
from bench_conll import DEFAULT_DATA, chunking_features, read_columns  # bench/ is sys.path[0]
from fastcrf import _encoding

DATA = DEFAULT_DATA

def template_features(sent):
    """The 19 (name, value) pairs of each token of one sentence: the CRF++ chunking
    template's attributes (``bench_conll.chunking_features``) split at their colon."""
    return [[tuple(a.split(":", 1)) for a in token] for token in chunking_features(sent)]


def _weight(i, value):
    """A deterministic bool, int or float weight standing in for a str value."""
    if i % 3 == 0:
        return len(value) % 3 == 0
    return len(value) if i % 3 == 1 else 0.5 * len(value)


def featurize(sents):
    """The template as list tokens, str-valued dict tokens and real-valued dict tokens."""
    as_list, as_dict, as_real = [], [], []
    for s in sents:
        feats = template_features(s)
        as_list.append([[f"{k}:{v}" for k, v in tok] for tok in feats])
        as_dict.append([dict(tok) for tok in feats])
        as_real.append([{k: _weight(i, v) for i, (k, v) in enumerate(tok)} for tok in feats])
    return {"list": as_list, "dict": as_dict, "real": as_real}


def _time(fn):
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(run, rounds):
    """Median seconds of ``run(old)`` and ``run(new)``, alternating within each round."""
    old, new = [], []
    for r in range(rounds):
        order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
        for which, times in order:
            times.append(_time(lambda: run(which)))
    return statistics.median(old), statistics.median(new)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA, help="folder with train.txt.gz [test.txt.gz]")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    train = featurize(read_columns(os.path.join(args.data, "train.txt.gz")))
    test_path = os.path.join(args.data, "test.txt.gz")
    test = featurize(read_columns(test_path)) if os.path.exists(test_path) else train
    n_tok = sum(len(s) for s in train["list"])
    n_occ = sum(len(t) for s in train["list"] for t in s)

    fast_encode = _encoding._encode
    slow_encode = _encoding._encode_py

    def with_encoder(which, fn):
        _encoding._encode = slow_encode if which == "old" else fast_encode
        try:
            return fn()
        finally:
            _encoding._encode = fast_encode

    print(
        f"# CoNLL-2000 train: {len(train['list'])} sequences, {n_tok} tokens, {n_occ} "
        f"attribute occurrences; {platform.machine()}, Python {platform.python_version()}, "
        f"fastcrf {fastcrf.__version__}; median of {args.repeats} rounds"
    )
    print()
    print("| tokens | call | old s | new s | speed-up |")
    print("|---|---|---:|---:|---:|")
    for fmt in ("list", "dict", "real"):
        X, X_test = train[fmt], test[fmt]
        vocab, enc = _encoding.fit_encode(X)
        # The two encoders must agree before they are timed.
        for which in ("old", "new"):
            v2, e2 = with_encoder(which, lambda: _encoding.fit_encode(X))
            assert v2.names == vocab.names
            for field in ("attr_ids", "values", "token_offsets", "seq_offsets"):
                np.testing.assert_array_equal(getattr(e2, field), getattr(enc, field))
        ref = with_encoder("old", lambda: _encoding.encode(X_test, vocab))
        got = _encoding.encode(X_test, vocab)
        for field in ("attr_ids", "values", "token_offsets", "seq_offsets"):
            np.testing.assert_array_equal(getattr(got, field), getattr(ref, field))

        cells = [
            ("fit_encode", lambda w: with_encoder(w, lambda: _encoding.fit_encode(X))),
            ("encode train", lambda w: with_encoder(w, lambda: _encoding.encode(X, vocab))),
            ("encode test", lambda w: with_encoder(w, lambda: _encoding.encode(X_test, vocab))),
        ]
        for call, run in cells:
            old, new = compare(run, args.repeats)
            print(f"| {fmt} | {call} | {old:.3f} | {new:.3f} | {old / new:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
