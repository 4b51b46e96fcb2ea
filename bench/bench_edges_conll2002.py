"""Observation-conditioned transitions on CoNLL-2002 Spanish NER: the sklearn-crfsuite
tutorial's features (``bench_conll2002.py``) with and without a transition attribute
on the current word's shape.

    python bench/bench_edges_conll2002.py [--data ../shared/data/conll2002]
                                          [--rounds 1] [--variants plain,shape,title]
                                          [--regs tutorial,l2] [--synthetic]
                                          [--max-iterations 100]

Variants: ``plain`` (the tutorial features), ``shape`` (plus the transition attribute
``edge:shape``, the current word's shape class: ``Xx``, ``XX``, ``x``, ``d``,
``punct`` or ``mixed``), ``title`` (plus ``edge:title``, ``word.istitle()``).  The
transition attributes ride in the same token dicts, split off by
``CRF(transition_prefix="edge:")`` (the tutorial's ``BOS`` key rules out a ``"B"``
prefix).  Regularisation: ``tutorial`` (``c1=0.1, c2=0.1``) and ``l2`` (``c1=0,
c2=0.1``), both ``algorithm="lbfgs"``, ``max_iterations=100``, as the tutorial
(``--max-iterations`` changes it: tests/test_bench.py's smoke run takes a few).

Features are built before the clock starts; the fit time includes their encoding.
Every fitted model tags esp.testa (where a variant is chosen) and esp.testb (what
is reported).  Within a round the variants of one regularisation run one after the
other, in reversed order every other round.  Printed: each run, then the medians
and each variant's fit-time ratio against ``plain`` under the same regularisation.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_conll2002 as base  # noqa: E402

PREFIX = "edge:"
REGS = {"tutorial": {"c1": 0.1, "c2": 0.1}, "l2": {"c1": 0.0, "c2": 0.1}}


def shape(word):
    """The shape class of ``word``: Xx, XX, x, d, punct or mixed."""
    if word.istitle():
        return "Xx"
    if word.isupper():
        return "XX"
    if word.islower():
        return "x"
    if word.isdigit():
        return "d"
    if not any(ch.isalnum() for ch in word):
        return "punct"
    return "mixed"


def with_edges(sentences, X, variant):
    """The token dicts ``X`` of ``sentences`` plus the variant's transition attribute."""
    if variant == "plain":
        return X
    out = []
    for sent, seq in zip(sentences, X):
        rows = []
        for (word, _), token in zip(sent, seq):
            extra = ({PREFIX + "shape": shape(word)} if variant == "shape"
                     else {PREFIX + "title": word.istitle()})
            rows.append({**token, **extra})
        out.append(rows)
    return out


def load(data, synthetic):
    """``{split: (sentences, X, y)}`` for train, testa and testb."""
    if synthetic:
        sentences = base.synthetic_sentences(500, 0)
        parts = {"train": sentences[:300], "testa": sentences[300:400],
                 "testb": sentences[400:]}
    else:
        parts = {name: base.read_sentences(os.path.join(data, f"esp.{name}.gz"))
                 for name in ("train", "testa", "testb")}
    return {name: (s, [base.sent2features(x) for x in s], [base.sent2labels(x) for x in s])
            for name, s in parts.items()}


def run(data, variant, reg, n_jobs, max_iterations=100):
    """Fit one configuration; its fit time, iterations and F1 on testa / testb."""
    from fastcrf import CRF

    sentences, X, y = data["train"]
    X = with_edges(sentences, X, variant)
    kwargs = dict(algorithm="lbfgs", max_iterations=max_iterations, n_jobs=n_jobs,
                  **REGS[reg])
    if variant != "plain":
        kwargs["transition_prefix"] = PREFIX
    crf = CRF(**kwargs)
    t0 = time.perf_counter()
    crf.fit(X, y)
    fit_s = time.perf_counter() - t0
    row = {"variant": variant, "reg": reg, "fit": fit_s, "n_iter": crf.n_iter_,
           "n_weights": crf._model.n_weights}
    for split in ("testa", "testb"):
        s, Xs, ys = data[split]
        row["f1_" + split] = base.scores(ys, crf.predict(with_edges(s, Xs, variant)))[0]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=base.DEFAULT_DATA)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--variants", default="plain,shape,title")
    p.add_argument("--regs", default="tutorial,l2")
    p.add_argument("--n-jobs", type=int, default=None)
    p.add_argument("--json", default=None, help="write the runs to this file")
    p.add_argument("--synthetic", action="store_true", help="a small smoke run")
    p.add_argument("--max-iterations", type=int, default=100,
                   help="L-BFGS iterations (default 100, the tutorial's)")
    args = p.parse_args(argv)
    variants = args.variants.split(",")
    regs = args.regs.split(",")
    data = load(args.data, args.synthetic)
    rows = []
    for rnd in range(args.rounds):
        for reg in regs:
            order = variants if rnd % 2 == 0 else variants[::-1]
            for variant in order:
                row = run(data, variant, reg, args.n_jobs, args.max_iterations)
                row["round"] = rnd
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    with open(args.json, "w") as f:
                        json.dump(rows, f, indent=1)
    print("\n| regularisation | variant | fit (s) | fit / plain | iterations | "
          "testa F1 | testb F1 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for reg in regs:
        med = {}
        for variant in variants:
            runs = [r for r in rows if r["reg"] == reg and r["variant"] == variant]
            med[variant] = {key: statistics.median(r[key] for r in runs)
                            for key in ("fit", "n_iter", "f1_testa", "f1_testb")}
        for variant in variants:
            m = med[variant]
            ratio = (f"{m['fit'] / med['plain']['fit']:.2f}" if "plain" in med else "")
            print(f"| {reg} | {variant} | {m['fit']:.1f} | {ratio} | {m['n_iter']:.0f} | "
                  f"{m['f1_testa']:.2f} | {m['f1_testb']:.2f} |")


if __name__ == "__main__":
    main()
