"""CoNLL-2000 chunking: fastcrf.CRF against python-crfsuite on the same features.

Features are the classic CRF++ chunking template (words at offsets -2..2 and the
word bigrams (-1,0), (0,1); POS tags at offsets -2..2, POS bigrams and trigrams;
CRF++'s boundary tokens past the sentence ends), extracted once in plain Python as
lists of str and handed to both tools.

Each (tool, configuration) runs in its own child process, so that its peak RSS is
its own; the children alternate, round after round, so machine noise hits every
tool alike.  Reported: medians over rounds of fit time (from the feature lists to a
trained model: encoding/loading included), tagging time of the test set, peak RSS,
token accuracy and chunk F1 (conlleval's rules).

Usage::

    python bench/bench_conll.py [--data ../shared/data/conll2000] [--rounds 3]
        [--configs fastcrf-asgd,crfsuite-pa] [--n-jobs N]

Available configurations: fastcrf-asgd, fastcrf-lbfgs, fastcrf-ap, fastcrf-pa,
crfsuite-pa, crfsuite-lbfgs, crfsuite-ap, crfsuite-l2sgd.
"""

import argparse
import gc
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2000")


def read_columns(path):
    """Sentences of a gzipped column file: lists of (word, pos, chunk)."""
    sentences, current = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            cells = line.split()
            if cells:
                current.append(cells)
            elif current:
                sentences.append(current)
                current = []
    if current:
        sentences.append(current)
    return sentences


def chunking_features(sentence):
    """The CRF++ chunking template's attributes, one list of str per token."""
    n = len(sentence)

    def cell(i, col):
        if i < 0:
            return f"_B{i}"
        if i >= n:
            return f"_B+{i - n + 1}"
        return sentence[i][col]

    out = []
    for i in range(n):
        w = [cell(i + d, 0) for d in (-2, -1, 0, 1, 2)]
        p = [cell(i + d, 1) for d in (-2, -1, 0, 1, 2)]
        out.append([
            "U00:" + w[0], "U01:" + w[1], "U02:" + w[2], "U03:" + w[3], "U04:" + w[4],
            "U05:" + w[1] + "/" + w[2], "U06:" + w[2] + "/" + w[3],
            "U10:" + p[0], "U11:" + p[1], "U12:" + p[2], "U13:" + p[3], "U14:" + p[4],
            "U15:" + p[0] + "/" + p[1], "U16:" + p[1] + "/" + p[2],
            "U17:" + p[2] + "/" + p[3], "U18:" + p[3] + "/" + p[4],
            "U20:" + p[0] + "/" + p[1] + "/" + p[2], "U21:" + p[1] + "/" + p[2] + "/" + p[3],
            "U22:" + p[2] + "/" + p[3] + "/" + p[4],
        ])
    return out


def chunks(tags):
    """Chunks ``(start, end, type)`` of a tag sequence, by conlleval's rules."""
    found = set()
    start = None
    prev_tag, prev_type = "O", ""
    for i, label in enumerate(list(tags) + ["O"]):
        tag, _, typ = label.partition("-")
        if label == "O":
            tag, typ = "O", ""
        ends = (prev_tag in ("B", "I") and tag in ("B", "O", "S")) or \
            (prev_tag in ("B", "I") and tag in ("I", "E") and prev_type != typ) or \
            prev_tag in ("E", "S") or (prev_tag != "O" and prev_type != typ)
        begins = tag in ("B", "S") or (tag in ("I", "E") and (
            prev_tag in ("O", "E", "S") or prev_type != typ))
        if start is not None and ends:
            found.add((start, i - 1, prev_type))
            start = None
        if begins and tag != "O":
            start = i
        prev_tag, prev_type = tag, typ
    return found


def scores(gold, pred):
    """(token accuracy, chunk F1) in percent."""
    correct = tokens = hit = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        correct += sum(a == b for a, b in zip(g, p))
        tokens += len(g)
        G, P = chunks(g), chunks(p)
        hit += len(G & P)
        n_gold += len(G)
        n_pred += len(P)
    precision = hit / n_pred if n_pred else 0.0
    recall = hit / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hit else 0.0
    return 100.0 * correct / tokens, 100.0 * f1


def load(data):
    train = read_columns(os.path.join(data, "train.txt.gz"))
    test = read_columns(os.path.join(data, "test.txt.gz"))
    X_train = [chunking_features(s) for s in train]
    y_train = [[tok[2] for tok in s] for s in train]
    X_test = [chunking_features(s) for s in test]
    y_test = [[tok[2] for tok in s] for s in test]
    return X_train, y_train, X_test, y_test


def run_fastcrf(algorithm, X_train, y_train, X_test, n_jobs):
    import fastcrf

    kwargs = {"algorithm": algorithm, "random_state": 0, "n_jobs": n_jobs}
    if algorithm in ("ap", "pa"):
        kwargs["max_iterations"] = 10
    t0 = time.perf_counter()
    crf = fastcrf.CRF(**kwargs).fit(X_train, y_train)
    t1 = time.perf_counter()
    pred = crf.predict(X_test)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, pred, {"n_iter": crf.n_iter_}


def run_crfsuite(algorithm, X_train, y_train, X_test, n_jobs):
    import pycrfsuite

    params = {"lbfgs": {}, "pa": {"max_iterations": 10}, "ap": {"max_iterations": 10},
              "l2sgd": {}}[algorithm]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.crfsuite")
        t0 = time.perf_counter()
        trainer = pycrfsuite.Trainer(algorithm=algorithm, verbose=False)
        trainer.set_params(params)
        for xseq, yseq in zip(X_train, y_train):
            trainer.append(xseq, yseq)
        trainer.train(model)
        t1 = time.perf_counter()
        tagger = pycrfsuite.Tagger()
        tagger.open(model)
        pred = [tagger.tag(xseq) for xseq in X_test]
        t2 = time.perf_counter()
        tagger.close()
    return t1 - t0, t2 - t1, pred, {}


def worker(config, data, n_jobs):
    """Run one configuration; print a JSON line of its measurements."""
    X_train, y_train, X_test, y_test = load(data)
    tool, algorithm = config.split("-", 1)
    # One full collection of the loaded corpus now: Python's next full collection
    # (~0.3 s over the millions of objects of the feature lists) otherwise lands in
    # whichever timed call next allocates enough, e.g. fastcrf's first predict after
    # fit, and the loaded data is neither tool's cost.
    gc.collect()
    runner = run_fastcrf if tool == "fastcrf" else run_crfsuite
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fit_s, tag_s, pred, extra = runner(algorithm, X_train, y_train, X_test, n_jobs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    acc, f1 = scores(y_test, pred)
    print(json.dumps({"config": config, "fit": fit_s, "tag": tag_s, "acc": acc, "f1": f1,
                      "peak_rss_mb": peak / 1024, "rss_over_data_mb": (peak - base_rss) / 1024,
                      **extra}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="fastcrf-asgd,crfsuite-pa")
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not os.path.isdir(args.data):
        sys.exit(f"CoNLL-2000 not found at {args.data}: pass --data")
    if args.worker:
        worker(args.worker, args.data, args.n_jobs)
        return
    configs = args.configs.split(",")
    results = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs if r % 2 == 0 else reversed(configs):
            cmd = [sys.executable, __file__, "--data", args.data, "--worker", c]
            if args.n_jobs is not None:
                cmd += ["--n-jobs", str(args.n_jobs)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            results[c].append(row)
            print(f"round {r + 1}: {c:16s} fit {row['fit']:7.2f}s  tag {row['tag']:6.3f}s  "
                  f"rss {row['peak_rss_mb']:7.0f} MB  acc {row['acc']:.2f}  F1 {row['f1']:.2f}",
                  flush=True)
    keys = ("fit", "tag", "peak_rss_mb", "rss_over_data_mb", "acc", "f1")
    med = {c: {k: statistics.median(r[k] for r in rows) for k in keys}
           for c, rows in results.items()}
    print()
    print("| configuration | fit (s) | tag (s) | peak RSS (MB) | RSS over data (MB) | "
          "token acc | chunk F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c, m in med.items():
        print(f"| {c} | {m['fit']:.2f} | {m['tag']:.3f} | {m['peak_rss_mb']:.0f} | "
              f"{m['rss_over_data_mb']:.0f} | {m['acc']:.2f} | {m['f1']:.2f} |")
    fast = [c for c in configs if c.startswith("fastcrf")]
    slow = [c for c in configs if c.startswith("crfsuite")]
    if fast and slow:
        print()
        for f in fast:
            for s in slow:
                print(f"{f} vs {s}: fit {med[s]['fit'] / med[f]['fit']:.1f}x faster, "
                      f"tagging {med[s]['tag'] / med[f]['tag']:.1f}x faster, peak RSS "
                      f"{med[f]['peak_rss_mb'] / med[s]['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
