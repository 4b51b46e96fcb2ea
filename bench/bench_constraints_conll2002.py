"""CoNLL-2002 Spanish NER with and without BIO constraints in training.

    python bench/bench_constraints_conll2002.py [--data ../shared/data/conll2002]
        [--configs default,lbfgs-tutorial] [--train-limit N]

The tutorial features of ``bench_conll2002.py``; every configuration is trained twice
on esp.train, as given and with ``constraints="BIO"`` (random_state 0), and scored on
esp.testa (where settings are chosen) and esp.testb (the figure to report): entity F1
by conlleval's rules, and the number of invalid BIO transitions in the output (an I-x
that follows neither B-x nor I-x, counting a sequence's first token as following O).
Also printed: the unconstrained model decoded with ``predict(constraints="BIO")``
(constraints at prediction time only), and the fit times (one run each, a noisy
machine: read them as rough).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_conll2002 as b02  # noqa: E402

import fastcrf  # noqa: E402

CONFIGS = {"default": {}, "lbfgs-tutorial": dict(b02.TUTORIAL)}


def invalid_bio(sequences):
    """I-x tags that follow neither B-x nor I-x (O before the first token)."""
    bad = 0
    for seq in sequences:
        prev = "O"
        for tag in seq:
            if tag.startswith("I-") and prev[2:] != tag[2:]:
                bad += 1
            prev = tag
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=b02.DEFAULT_DATA)
    ap.add_argument("--configs", default="default")
    ap.add_argument("--train-limit", type=int, default=None)
    args = ap.parse_args(argv)
    X, y, Xa, ya = b02.load(args.data, "testa", args.train_limit)
    _, _, Xb, yb = b02.load(args.data, "testb", args.train_limit)
    rows = []
    for name in args.configs.split(","):
        for constraints in (None, "BIO"):
            crf = fastcrf.CRF(random_state=0, constraints=constraints, **CONFIGS[name])
            t0 = time.perf_counter()
            crf.fit(X, y)
            fit = time.perf_counter() - t0
            row = {"config": name, "constraints": constraints or "none", "fit": fit}
            for split, Xe, ye in (("testa", Xa, ya), ("testb", Xb, yb)):
                pred = crf.predict(Xe)
                row[f"f1 {split}"] = b02.scores(ye, pred)[0]
                row[f"invalid {split}"] = invalid_bio(pred)
                if constraints is None:
                    fixed = crf.predict(Xe, constraints="BIO")
                    row[f"f1 {split} (BIO at predict)"] = b02.scores(ye, fixed)[0]
            rows.append(row)
            print(row, flush=True)
    print("| configuration | constraints in training | fit (s) | entity F1 testa | "
          "entity F1 testb | invalid transitions testb | F1 testb, BIO at predict only |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        extra = r.get("f1 testb (BIO at predict)")
        print(f"| {r['config']} | {r['constraints']} | {r['fit']:.0f} | {r['f1 testa']:.2f} | "
              f"{r['f1 testb']:.2f} | {r['invalid testb']} | "
              f"{'' if extra is None else f'{extra:.2f}'} |")


if __name__ == "__main__":
    main()
