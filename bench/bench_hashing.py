"""Feature hashing on CoNLL-2000 chunking: F1, model size and fit time per bucket count.

    python bench/bench_hashing.py [--data ../shared/data/conll2000] [--repeats 3]
                                  [--buckets 18 20 22]

The features are CRF++'s chunking template (``fastcrf.templates.CHUNKING_TEMPLATE``,
as ``fastcrf train -t chunking``), the estimator at its defaults (averaged SGD,
``random_state=0``), without hashing and with ``hash_features=2**b`` for each ``b``.
Each round fits every setting once, in an order that rotates from round to round;
fit times are medians over the rounds, quoted as ratios to the unhashed fit of the
same run.  F1 is conlleval's chunk F1 on the test file (the same in every round: the
fits are seeded).  Size is the model file in bytes (``CRF.size_``).
"""

import argparse
import statistics
import time
from pathlib import Path

import fastcrf
from fastcrf import CRF, Dataset
from fastcrf.io import load_conll
from fastcrf.metrics import chunk_scores
from fastcrf.templates import CHUNKING_TEMPLATE, Template

DATA = Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "conll2000"


def fit_and_score(train, template, X_test, y_test, hash_features):
    """(fit seconds, F1, model bytes, rows of state weights) of one fit."""
    crf = CRF(random_state=0, hash_features=hash_features)
    t0 = time.perf_counter()
    crf.fit(train)
    fit_s = time.perf_counter() - t0
    _, encoded = template.encode(X_test, vocabulary=crf.vocabulary_)
    predicted = crf.predict(encoded)
    return fit_s, chunk_scores(y_test, predicted).f1, crf.size_, len(crf.attributes_)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--buckets", type=int, nargs="+", default=[18, 20, 22],
                        help="log2 of the bucket counts")
    args = parser.parse_args()
    template = Template(CHUNKING_TEMPLATE)
    train = Dataset.from_conll(str(args.data / "train.txt.gz"), template)
    X_test, y_test = load_conll(str(args.data / "test.txt.gz"))
    settings = [None] + [2 ** b for b in args.buckets]
    times = {s: [] for s in settings}
    results = {}
    for r in range(args.repeats):
        shift = r % len(settings)
        for s in settings[shift:] + settings[:shift]:
            fit_s, f1, size, rows = fit_and_score(train, template, X_test, y_test, s)
            times[s].append(fit_s)
            results[s] = (f1, size, rows)
            print(f"round {r}: hash_features={s}: fit {fit_s:.1f} s, F1 {100 * f1:.2f}",
                  flush=True)
    print(f"\nfastcrf {fastcrf.__version__}, CoNLL-2000 ({train.n_sequences:,} training "
          f"sentences, {len(train.attributes):,} distinct attributes), medians of "
          f"{args.repeats} rounds\n")
    base = statistics.median(times[None])
    print("| hash_features | F1 | F1 - unhashed | state rows | model MB | size ratio | "
          "fit time ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    f1_0, size_0, _ = results[None]
    for s in settings:
        f1, size, rows = results[s]
        name = "None (unhashed)" if s is None else f"2^{s.bit_length() - 1}"
        print(f"| {name} | {100 * f1:.2f} | {100 * (f1 - f1_0):+.2f} | {rows:,} | "
              f"{size / 1e6:.1f} | {size / size_0:.2f} | "
              f"{statistics.median(times[s]) / base:.2f} |")


if __name__ == "__main__":
    main()
