"""CRF++ chunking-template feature extraction on CoNLL-2000 train, in one process.

    python bench/bench_templates.py [--data PATH/train.txt.gz] [--repeats 5]

Times, as medians over ``--repeats`` rounds (the candidates alternate within a round):

- ``naive``: a plain-Python extractor that applies the parsed templates token by token
  (what a CRF++-template reader in pure Python does);
- ``hand-written``: the chunking template written out as f-strings, the way an
  sklearn-crfsuite user writes ``word2features`` (the fastest plain Python);
- ``transform``: ``Template.transform`` (the same lists of str as both above);
- ``encode``: ``Template.encode`` (flat arrays, no per-token Python objects);
- ``naive + fit_encode``: what it costs to get the estimator's arrays from the naive
  lists, against ``encode``, which returns exactly the same arrays.

The script first checks that every candidate gives the same features.
"""

import argparse
import os
import platform
import re
import statistics
import time
from pathlib import Path

import numpy as np

import fastcrf
from fastcrf._encoding import fit_encode
from fastcrf.io import load_conll
from fastcrf.templates import CHUNKING_TEMPLATE, Template

MACRO = re.compile(r"%x\[(-?\d+),(\d+)\]")


def naive(lines, X):
    rules = []
    for line in lines:
        cells = [(int(r), int(c)) for r, c in MACRO.findall(line)]
        rules.append((MACRO.split(line)[::3], cells))
    out = []
    for s in X:
        n = len(s)
        feats = []
        for t in range(n):
            tok = []
            for pieces, cells in rules:
                parts = [pieces[0]]
                for (row, col), piece in zip(cells, pieces[1:]):
                    i = t + row
                    parts.append(f"_B-{-i}" if i < 0 else f"_B+{i - n + 1}" if i >= n
                                 else s[i][col])
                    parts.append(piece)
                tok.append("".join(parts))
            feats.append(tok)
        out.append(feats)
    return out


def hand_written(X):
    out = []
    for s in X:
        n = len(s)
        w = ["_B-2", "_B-1"] + [r[0] for r in s] + ["_B+1", "_B+2"]
        p = ["_B-2", "_B-1"] + [r[1] for r in s] + ["_B+1", "_B+2"]
        out.append([[
            f"U00:{w[t]}", f"U01:{w[t + 1]}", f"U02:{w[t + 2]}", f"U03:{w[t + 3]}",
            f"U04:{w[t + 4]}", f"U05:{w[t + 1]}/{w[t + 2]}", f"U06:{w[t + 2]}/{w[t + 3]}",
            f"U10:{p[t]}", f"U11:{p[t + 1]}", f"U12:{p[t + 2]}", f"U13:{p[t + 3]}",
            f"U14:{p[t + 4]}", f"U15:{p[t]}/{p[t + 1]}", f"U16:{p[t + 1]}/{p[t + 2]}",
            f"U17:{p[t + 2]}/{p[t + 3]}", f"U18:{p[t + 3]}/{p[t + 4]}",
            f"U20:{p[t]}/{p[t + 1]}/{p[t + 2]}", f"U21:{p[t + 1]}/{p[t + 2]}/{p[t + 3]}",
            f"U22:{p[t + 2]}/{p[t + 3]}/{p[t + 4]}",
        ] for t in range(n)])
    return out


def main():
    default = os.environ.get("FASTCRF_CONLL2000") or (
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2000")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(default) / "train.txt.gz"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    X, _ = load_conll(args.data)
    template = Template(CHUNKING_TEMPLATE)
    n_tok = sum(map(len, X))

    ref = naive(template.unigram, X)
    assert hand_written(X) == ref and template.transform(X) == ref
    names, enc = template.encode(X)
    vocab, enc_ref = fit_encode(ref)
    assert names == vocab.names and np.array_equal(enc.attr_ids, enc_ref.attr_ids)
    del ref

    cands = {
        "naive": lambda: naive(template.unigram, X),
        "hand-written": lambda: hand_written(X),
        "transform": lambda: template.transform(X),
        "encode": lambda: template.encode(X),
        "naive + fit_encode": lambda: fit_encode(naive(template.unigram, X)),
    }
    times = {k: [] for k in cands}
    for _ in range(args.repeats):
        for k, fn in cands.items():
            time.sleep(0.05)
            t0 = time.perf_counter()
            result = fn()
            times[k].append(time.perf_counter() - t0)
            del result
    med = {k: statistics.median(v) for k, v in times.items()}

    print(f"# CoNLL-2000 train: {len(X)} sentences, {n_tok} tokens, {len(template.unigram)} "
          f"unigram templates ({n_tok * len(template.unigram)} attributes, {len(names)} "
          f"distinct); {platform.machine()}, Python {platform.python_version()}, numpy "
          f"{np.__version__}, fastcrf {fastcrf.__version__}; medians of {args.repeats}\n")
    print("| extractor | output | seconds | speed-up |")
    print("|---|---|---:|---:|")
    rows = [
        ("naive (plain Python)", "lists of str", "naive", "naive"),
        ("hand-written f-strings", "lists of str", "hand-written", "naive"),
        ("`Template.transform`", "lists of str", "transform", "naive"),
        ("`Template.transform`", "lists of str", "transform", "hand-written"),
        ("naive + `fit_encode`", "encoded arrays", "naive + fit_encode", "naive + fit_encode"),
        ("`Template.encode`", "encoded arrays", "encode", "naive + fit_encode"),
    ]
    for label, output, key, base in rows:
        vs = "" if key == base else f" vs {base}"
        print(f"| {label} | {output} | {med[key]:.3f} | {med[base] / med[key]:.1f}x{vs} |")


if __name__ == "__main__":
    main()
