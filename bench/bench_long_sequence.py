"""A training set of one long sequence: what the default CRF() makes of it.

One sequence of ``--tokens`` tokens over ``--words`` distinct words, each token's
label the word's number mod 5 (token features ``["w=<n>"]``, labels ``"L<n mod 5>"``):
a per-word lookup table, learnt exactly by L-BFGS, which averaged SGD cannot learn in
a few epochs because it takes one step per mini-batch of sequences, here one step an
epoch.  Prints the algorithm the default chose, the fit time and the training
accuracy, for ``CRF()`` and for the explicit ``CRF(algorithm='asgd')``.

    python bench/bench_long_sequence.py --tokens 1000000 --words 1000
"""

import argparse
import time
import warnings

import numpy as np

from fastcrf import CRF


def long_sequence(n_tokens, n_words, seed=0):
    """``(X, y)``: one sequence of random words labelled by their number mod 5."""
    words = np.random.default_rng(seed).integers(0, n_words, n_tokens).tolist()
    return [[[f"w={w}"] for w in words]], [[f"L{w % 5}" for w in words]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--skip-asgd", action="store_true",
                        help="only the default CRF() (the explicit asgd run is slow)")
    args = parser.parse_args()
    X, y = long_sequence(args.tokens, args.words)
    runs = [("CRF()", {})]
    if not args.skip_asgd:
        runs.append(("CRF(algorithm='asgd')", {"algorithm": "asgd"}))
    print(f"one sequence of {args.tokens:,} tokens over {args.words:,} words")
    print("| estimator | algorithm run | fit (s) | iterations | training accuracy |")
    print("|---|---|---:|---:|---:|")
    for name, params in runs:
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            crf = CRF(random_state=0, **params).fit(X, y)
        seconds = time.perf_counter() - started
        print(f"| `{name}` | {crf.training_log_.algorithm} | {seconds:.1f} | "
              f"{crf.n_iter_} | {100 * crf.score(X, y):.2f}% |")
        for w in caught:
            print(f"  warning: {w.message}")


if __name__ == "__main__":
    main()
