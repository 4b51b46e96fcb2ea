"""asgd's step rules side by side: ``learning_rate='calibrated'``, 'adagrad', 'adagrad_row'.

One process per run, the features built once, then every configuration fitted on
them in alternating order round by round (entity / chunk F1 and fit seconds; fit
times as ratios to the first configuration, medians over rounds).  Configurations
are ``key=value,...`` lists of :class:`fastcrf.CRF` parameters separated by ``;``;
``crfsuite-pa`` adds python-crfsuite's PA (10 iterations, the chunking speed
target's baseline) on chunking.

    python bench/bench_adagrad.py --task ner --eval testa \\
        --configs 'learning_rate=calibrated;learning_rate=adagrad,eta0=1.0' --seeds 0 1
    python bench/bench_adagrad.py --task chunking --rounds 3 \\
        --configs 'learning_rate=calibrated;learning_rate=adagrad;crfsuite-pa'
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_conll
import bench_conll2002

import fastcrf


def parse_configs(text):
    """``[(label, kwargs or None)]`` of a ``;``-separated list (None: crfsuite-pa)."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(";"))):
        if item == "crfsuite-pa":
            out.append((item, None))
            continue
        kwargs = {}
        for pair in filter(None, item.split(",")):
            key, _, value = pair.partition("=")
            kwargs[key.strip()] = bench_conll2002._value(value.strip())
        out.append((item, kwargs))
    return out


def fit_crfsuite_pa(X, y, X_test):
    import pycrfsuite

    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.crfsuite")
        t0 = time.perf_counter()
        trainer = pycrfsuite.Trainer(algorithm="pa", verbose=False)
        trainer.set_params({"max_iterations": 10})
        for xseq, yseq in zip(X, y):
            trainer.append(xseq, yseq)
        trainer.train(model)
        fit = time.perf_counter() - t0
        tagger = pycrfsuite.Tagger()
        tagger.open(model)
        pred = [tagger.tag(xseq) for xseq in X_test]
        tagger.close()
    return fit, pred


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=("ner", "chunking"), default="ner")
    p.add_argument("--eval", choices=("testa", "testb"), default="testa",
                   help="NER evaluation set (choose settings on testa)")
    p.add_argument("--train-limit", type=int, default=None, metavar="N")
    p.add_argument("--configs", default="learning_rate=calibrated;learning_rate=adagrad;"
                   "learning_rate=adagrad_row")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--n-jobs", type=int, default=None)
    args = p.parse_args(argv)
    if args.task == "ner":
        X, y, X_test, y_test = bench_conll2002.load(bench_conll2002.DEFAULT_DATA, args.eval,
                                                    args.train_limit)

        def f1(pred):
            return bench_conll2002.scores(y_test, pred)[0]
    else:
        X, y, X_test, y_test = bench_conll.load(bench_conll.DEFAULT_DATA)
        if args.train_limit is not None:
            X, y = X[:args.train_limit], y[:args.train_limit]

        def f1(pred):
            return bench_conll.scores(y_test, pred)[1]
    configs = parse_configs(args.configs)
    runs = [(label, kwargs, seed) for label, kwargs in configs
            for seed in (args.seeds if kwargs is not None else [0])]
    fits = {i: [] for i in range(len(runs))}
    scores = {}
    for r in range(args.rounds):
        order = list(range(len(runs)))
        for i in (order if r % 2 == 0 else order[::-1]):
            label, kwargs, seed = runs[i]
            if kwargs is None:
                fit, pred = fit_crfsuite_pa(X, y, X_test)
            else:
                crf = fastcrf.CRF(**{"random_state": seed, "n_jobs": args.n_jobs, **kwargs})
                t0 = time.perf_counter()
                crf.fit(X, y)
                fit = time.perf_counter() - t0
                pred = crf.predict(X_test)
            fits[i].append(fit)
            scores[i] = f1(pred)
            print(f"round {r + 1} {label} seed={seed}: fit {fit:.2f} s, F1 {scores[i]:.2f}",
                  file=sys.stderr, flush=True)
    base = statistics.median(fits[0])
    print(f"task={args.task} eval={args.eval if args.task == 'ner' else 'test'} "
          f"train={len(X)} rounds={args.rounds}")
    print("| configuration | seed | F1 | fit (s) | fit / first |")
    print("|---|---:|---:|---:|---:|")
    for i, (label, _, seed) in enumerate(runs):
        med = statistics.median(fits[i])
        print(f"| {label} | {seed} | {scores[i]:.2f} | {med:.2f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
