"""Warm start on CoNLL-2000 (issue 16's target): train on the first half, then go on
with the second half by ``partial_fit`` (asgd) or a warm-started ``fit`` (lbfgs), and
compare the chunk F1 with a fit on all of it; also the iterations of a warm-started
L-BFGS fit on the same data against a cold one.

    python bench/bench_warm_start.py [CONLL2000_FOLDER] [--no-lbfgs]

The folder holds train.txt.gz and test.txt.gz (default: ../shared/data/conll2000
beside the repository).
"""

import sys
import time
from pathlib import Path

from fastcrf import CRF
from fastcrf.io import load_conll
from fastcrf.metrics import chunk_scores
from fastcrf.templates import CHUNKING_TEMPLATE, Template


def main(folder, lbfgs=True):
    template = Template(CHUNKING_TEMPLATE)
    X, y = load_conll(folder / "train.txt.gz")
    Xt, yt = load_conll(folder / "test.txt.gz")
    X, Xt = template.transform(X), template.transform(Xt)
    half = len(X) // 2

    def f1(crf):
        return 100 * chunk_scores(yt, crf.predict(Xt)).f1

    def timed(label, build):
        started = time.perf_counter()
        crf = build()
        print(f"{label:<52} F1 {f1(crf):6.2f}  iterations {crf.n_iter_:4d}  "
              f"{time.perf_counter() - started:6.1f} s", flush=True)
        return crf

    timed("asgd: fit on all", lambda: CRF(random_state=0).fit(X, y))

    def online():
        crf = CRF(algorithm="asgd", random_state=0)
        for _ in range(4):   # 8 epochs over halves, 4 over the whole
            crf.partial_fit(X[:half], y[:half]).partial_fit(X[half:], y[half:])
        return crf
    timed("asgd: partial_fit, halves alternated x4", online)
    timed("asgd: fit on half, warm fit on the other half",
          lambda: CRF(random_state=0, warm_start=True).fit(X[:half], y[:half])
          .fit(X[half:], y[half:]))
    if not lbfgs:
        return
    timed("lbfgs: fit on all (cold)", lambda: CRF(algorithm="lbfgs").fit(X, y))
    warm = CRF(algorithm="lbfgs", warm_start=True).fit(X[:half], y[:half])
    timed("lbfgs: warm fit on all, from the first half's model", lambda: warm.fit(X, y))


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2000"
    args = [a for a in sys.argv[1:] if a != "--no-lbfgs"]
    main(Path(args[0]) if args else default, lbfgs="--no-lbfgs" not in sys.argv[1:])
