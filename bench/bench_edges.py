"""Observation-conditioned transitions on CoNLL-2000: CRF++'s chunking template plus
``B01:%x[0,1]`` and ``B02:%x[-1,1]/%x[0,1]`` against the plain template.

    python bench/bench_edges.py [--data ../shared/data/conll2000] [--rounds 1]
                                [--c2 0.125] [--n-jobs 2] [--evals 0]
                                [--algorithm lbfgs] [--seed 0]

Both train ``CRF(algorithm="lbfgs")`` with CRF++'s ``-c 4`` objective weight
(``c2 = 1/(2C)``) and fastcrf's L-BFGS stopping rule, or with ``--algorithm NAME``
that algorithm with its own defaults (``--c2`` then applies only when given, and
``--seed`` is the random_state); the features are extracted
before the clock starts (the fit time includes their encoding).  The two runs
alternate within a round, in reversed order every other round; each prints its fit
time, L-BFGS iterations and the CoNLL chunk F1 on test.txt.  ``--evals N`` instead
times N evaluations of each training objective (the compiled passes alone, one
evaluation each in turn) and prints their medians and ratio.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import fastcrf
from fastcrf import _edges
from fastcrf.io import load_conll
from fastcrf.metrics import chunk_scores
from fastcrf.templates import CHUNKING_TEMPLATE, Template

EDGE_LINES = "B01:%x[0,1]\nB02:%x[-1,1]/%x[0,1]\n"


def features(template_text, X):
    template = Template(template_text)
    macros, _ = _edges.template_bigrams(template)
    if macros is None:
        return template.transform(X), {}
    return (_edges.template_features(template, macros, X),
            {"transition_prefix": _edges.TEMPLATE_PREFIX})


def time_evaluations(X, y, n_evals, c2, n_jobs):
    """Median seconds of one objective evaluation, plain and with B01/B02."""
    from fastcrf._layout import StateLayout
    from fastcrf._train.lbfgs import _Objective
    from fastcrf._training import encode_training

    F, _ = features(CHUNKING_TEMPLATE + EDGE_LINES, X)
    X_state, X_edge = _edges.split_tokens(F, _edges.TEMPLATE_PREFIX)
    vocabulary, _, data = encode_training(X_state, y, 0.0, n_jobs)
    _, edges = _edges.encode_edges(X_edge, 0.0, n_jobs)
    layout = StateLayout.for_training(data, None, counts=vocabulary.counts)
    K = data.n_labels
    mask = np.ones(K * K + 2 * K)
    with_edges = _edges.EdgeObjective(data, edges, layout, mask, c2, n_jobs)
    plain = _Objective(data, layout, mask, c2, n_jobs)
    x = np.random.default_rng(0).normal(size=with_edges.n_edge + layout.size + len(mask))
    x *= 0.01
    runs = {"plain": (plain, x[with_edges.n_edge:].copy()), "B01+B02": (with_edges, x)}
    times = {name: [] for name in runs}
    for _ in range(n_evals):
        for name, (fun, point) in runs.items():
            t0 = time.perf_counter()
            fun(point)
            times[name].append(time.perf_counter() - t0)
    for name, ts in times.items():
        print(f"{name:8s} one evaluation: median {statistics.median(ts):.3f} s "
              f"(min {min(ts):.3f}, max {max(ts):.3f}, {n_evals} runs)")
    print(f"ratio B01+B02 / plain: "
          f"{statistics.median(times['B01+B02']) / statistics.median(times['plain']):.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2]
                                              / "shared" / "data" / "conll2000"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--c2", type=float, default=None,
                        help="default 0.125 for lbfgs, the algorithm's own otherwise")
    parser.add_argument("--algorithm", default="lbfgs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--max-iterations", type=int, default=None)
    parser.add_argument("--evals", type=int, default=0)
    args = parser.parse_args()
    if args.c2 is None and args.algorithm == "lbfgs":
        args.c2 = 0.125
    X, y = load_conll(str(Path(args.data) / "train.txt.gz"))
    if args.evals:
        time_evaluations(X, y, args.evals, args.c2, args.n_jobs)
        return
    Xt, yt = load_conll(str(Path(args.data) / "test.txt.gz"))
    configs = {"plain": CHUNKING_TEMPLATE, "B01+B02": CHUNKING_TEMPLATE + EDGE_LINES}
    results = {name: [] for name in configs}
    for r in range(args.rounds):
        order = list(configs) if r % 2 == 0 else list(configs)[::-1]
        for name in order:
            F, extra = features(configs[name], X)
            Ft, _ = features(configs[name], Xt)
            crf = fastcrf.CRF(algorithm=args.algorithm, c2=args.c2, n_jobs=args.n_jobs,
                              max_iterations=args.max_iterations,
                              random_state=args.seed, **extra)
            t0 = time.perf_counter()
            crf.fit(F, y)
            fit = time.perf_counter() - t0
            f1 = 100 * chunk_scores(yt, crf.predict(Ft)).f1
            results[name].append((fit, f1, crf.n_iter_))
            print(f"round {r + 1} {name:8s}: fit {fit:7.1f} s, {crf.n_iter_} iterations, "
                  f"F1 {f1:.2f}", flush=True)
    print(f"\n| template | fit (s, median) | {args.algorithm} iterations | F1 |")
    print("| --- | --- | --- | --- |")
    for name, runs in results.items():
        print(f"| {name} | {statistics.median(f for f, _, _ in runs):.1f} | "
              f"{runs[-1][2]} | {runs[-1][1]:.2f} |")
    ratio = (statistics.median(f for f, _, _ in results["B01+B02"])
             / statistics.median(f for f, _, _ in results["plain"]))
    print(f"\nfit time B01+B02 / plain: {ratio:.2f}")


if __name__ == "__main__":
    main()
