"""CoNLL-2000 chunking through python-crfsuite's API: ``fastcrf.pycrfsuite`` against
``pycrfsuite`` itself, the same script run with each module.

Features are bench_conll.py's (the CRF++ chunking template, as lists of str).  For
each algorithm and round, both modules run in turn (the order alternates from round
to round): ``Trainer.append`` of every sentence, ``select``, ``set_params``,
``train(path)`` (timed together: "train"), then ``Tagger.open(path)`` and
``Tagger.tag(xseq)`` sentence by sentence over the test set ("tag", reported per
sentence).  Reported: medians over rounds, the ratio python-crfsuite / fastcrf, token
accuracy.

Usage::

    python bench/bench_pycrfsuite.py [--data ../shared/data/conll2000] [--rounds 3]
        [--algorithms pa,lbfgs] [--n-jobs 1]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_conll import DEFAULT_DATA, chunking_features, read_columns  # noqa: E402

#: CRFsuite parameters of each algorithm: bench_conll.py's settings, fewer L-BFGS
#: iterations so that a round takes minutes.
PARAMS = {"pa": {"max_iterations": 10},
          "lbfgs": {"c1": 0.0, "c2": 0.1, "max_iterations": 50}}


def run(module, algorithm, X, y, Xt, yt, path, n_jobs):
    """Train and tag with ``module``; returns (train s, tag s per sentence, accuracy)."""
    started = time.perf_counter()
    kwargs = {} if n_jobs is None or module.__name__ == "pycrfsuite" else {"n_jobs": n_jobs}
    trainer = module.Trainer(verbose=False, **kwargs)
    for xs, ys in zip(X, y):
        trainer.append(xs, ys)
    trainer.select(algorithm)
    trainer.set_params(PARAMS[algorithm])
    trainer.train(path)
    train_s = time.perf_counter() - started
    tagger = module.Tagger(**kwargs)
    tagger.open(path)
    started = time.perf_counter()
    predicted = [tagger.tag(xs) for xs in Xt]
    tag_s = (time.perf_counter() - started) / len(Xt)
    tagger.close()
    correct = sum(p == g for ps, gs in zip(predicted, yt) for p, g in zip(ps, gs))
    return train_s, tag_s, correct / sum(map(len, yt))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--algorithms", default="pa,lbfgs")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="fastcrf's threads (python-crfsuite has one)")
    args = parser.parse_args(argv)

    import pycrfsuite

    from fastcrf import pycrfsuite as fast

    train = read_columns(os.path.join(args.data, "train.txt.gz"))
    test = read_columns(os.path.join(args.data, "test.txt.gz"))
    X = [chunking_features(s) for s in train]
    y = [[row[2] for row in s] for s in train]
    Xt = [chunking_features(s) for s in test]
    yt = [[row[2] for row in s] for s in test]
    modules = {"python-crfsuite": pycrfsuite, "fastcrf.pycrfsuite": fast}
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for algorithm in args.algorithms.split(","):
            for r in range(args.rounds):
                order = list(modules) if r % 2 == 0 else list(modules)[::-1]
                for name in order:
                    path = os.path.join(folder, f"{name}.crfsuite")
                    out = run(modules[name], algorithm, X, y, Xt, yt, path, args.n_jobs)
                    results.setdefault((algorithm, name), []).append(out)
                    print(f"# {algorithm} round {r + 1} {name}: train {out[0]:.2f} s, "
                          f"tag {1e3 * out[1]:.3f} ms/sentence, accuracy {out[2]:.4f}",
                          file=sys.stderr, flush=True)

    print("| algorithm | train: python-crfsuite / fastcrf | tag per sentence: "
          "python-crfsuite / fastcrf | accuracy python-crfsuite, fastcrf |")
    print("| --- | --- | --- | --- |")
    for algorithm in args.algorithms.split(","):
        ref = results[(algorithm, "python-crfsuite")]
        ours = results[(algorithm, "fastcrf.pycrfsuite")]
        med = [[statistics.median(v[i] for v in runs) for i in range(3)]
               for runs in (ref, ours)]
        print(f"| {algorithm} {PARAMS[algorithm]} | {med[0][0]:.1f} s / {med[1][0]:.1f} s "
              f"= {med[0][0] / med[1][0]:.2f}x | {1e3 * med[0][1]:.3f} ms / "
              f"{1e3 * med[1][1]:.3f} ms = {med[0][1] / med[1][1]:.2f}x | "
              f"{med[0][2]:.4f}, {med[1][2]:.4f} |")


if __name__ == "__main__":
    main()
