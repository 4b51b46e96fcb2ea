"""Many labels: memory, fit time and accuracy on a synthetic corpus with K ~ 1,000.

Fine-grained tag sets (morphological feature bundles, address parts, product
attributes) have hundreds or thousands of labels, and each attribute is seen with
only a few of them.  This script makes such a corpus and fits it with fastcrf's
default CRF(), with L-BFGS (c1=0.1, c2=0.1, 50 iterations) under each
``all_possible_states`` setting, and with python-crfsuite's L-BFGS, each run in its
own process under ``/usr/bin/time -v`` so that the peak RSS is the run's own.

The corpus: a Zipfian vocabulary of made-up words; a word's *class* (``--classes``
of them) is a function of its last two letters, with one word in twenty an exception;
a token's label is ``(class of the word, class of the previous word mod --groups)``,
so K = classes x groups, learnable from the word, its suffix and its left neighbour,
and an attribute sees few labels (a word: its class times at most ``--groups``).

    python bench/bench_many_labels.py                      # every run, a table
    python bench/bench_many_labels.py --only fastcrf-lbfgs-none
    python bench/bench_many_labels.py --layout synthetic conll2000-pos   # weights only

``--layout`` prints, without fitting, the state weights of the default layout
against the frequency rule alone (every label for each attribute seen 5 times) and
the seen pairs, for the synthetic corpus or the CoNLL training sets of
bench_conll.py / bench_conll2002.py (``--data``: their folders' parent).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz"

RUNS = {
    "fastcrf-default": ("fastcrf", {}),
    "fastcrf-default-false": ("fastcrf", {"all_possible_states": False}),
    "fastcrf-lbfgs-none": ("fastcrf", {"algorithm": "lbfgs", "c1": 0.1, "c2": 0.1,
                                       "max_iterations": 50}),
    "fastcrf-lbfgs-false": ("fastcrf", {"algorithm": "lbfgs", "c1": 0.1, "c2": 0.1,
                                        "max_iterations": 50,
                                        "all_possible_states": False}),
    "crfsuite-lbfgs": ("crfsuite", {"c1": 0.1, "c2": 0.1, "max_iterations": 50}),
}


def many_label_corpus(n_sentences=20_000, n_words=30_000, n_classes=50, n_groups=20,
                      seed=0):
    """``(X, y)``: sentences of feature lists and their labels, K = classes x groups.

    Words are drawn from a Zipf law (exponent 1.1) over ``n_words`` made-up words of
    3-8 letters; sentence lengths are uniform in [5, 40].
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 9, size=n_words)
    words = ["".join(LETTERS[c] for c in rng.integers(0, 26, size=n))
             for n in lengths]
    suffix_class = {}
    cls = np.empty(n_words, dtype=np.int64)
    for i, w in enumerate(words):
        s = w[-2:]
        if s not in suffix_class:
            suffix_class[s] = int(rng.integers(0, n_classes))
        # One word in twenty ignores its suffix: the word itself must be learnt.
        cls[i] = (suffix_class[s] if rng.random() >= 0.05
                  else int(rng.integers(0, n_classes)))
    p = 1.0 / np.arange(1, n_words + 1) ** 1.1
    p /= p.sum()
    X, y = [], []
    for n in rng.integers(5, 41, size=n_sentences):
        ids = rng.choice(n_words, size=n, p=p)
        sent = [words[i] for i in ids]
        feats, labels = [], []
        for t, w in enumerate(sent):
            prev = sent[t - 1] if t else "<s>"
            nxt = sent[t + 1] if t + 1 < n else "</s>"
            feats.append(["bias", "w=" + w, "s2=" + w[-2:], "s3=" + w[-3:],
                          "p2=" + w[:2], "w-1=" + prev, "w+1=" + nxt,
                          "s2-1=" + prev[-2:], "w-1|w=" + prev + "|" + w])
            g = int(cls[ids[t - 1]]) % n_groups if t else n_groups - 1
            labels.append(f"c{cls[ids[t]]}g{g}")
        X.append(feats)
        y.append(labels)
    return X, y


def split(X, y):
    n = len(X) * 4 // 5
    return X[:n], y[:n], X[n:], y[n:]


def accuracy(gold, pred):
    g = [a for s in gold for a in s]
    p = [a for s in pred for a in s]
    return 100.0 * sum(a == b for a, b in zip(g, p)) / len(g)


def run_one(name, corpus, iterations, default_iterations=None):
    tool, kwargs = RUNS[name]
    if "max_iterations" in kwargs:
        kwargs = dict(kwargs, max_iterations=iterations)
    elif default_iterations is not None:
        kwargs = dict(kwargs, max_iterations=default_iterations)
    X, y = many_label_corpus(**corpus)
    X_train, y_train, X_test, y_test = split(X, y)
    out = {"run": name, "labels": len({a for s in y_train for a in s})}
    if tool == "fastcrf":
        from fastcrf import CRF
        crf = CRF(random_state=0, **kwargs)
        started = time.perf_counter()
        crf.fit(X_train, y_train)
        out["fit_s"] = time.perf_counter() - started
        # Counted on the weights: state_features_ would build a dict of them all,
        # whose memory would be the run's peak, not the fit's.
        out["state_features"] = int(np.count_nonzero(crf._model.state))
        pred = crf.predict(X_test)
    else:
        import pycrfsuite
        trainer = pycrfsuite.Trainer(verbose=False)
        for xs, ys in zip(X_train, y_train):
            trainer.append(xs, ys)
        trainer.set_params(kwargs)
        path = f"many_labels_{os.getpid()}.crfsuite"
        started = time.perf_counter()
        trainer.train(path)
        out["fit_s"] = time.perf_counter() - started
        tagger = pycrfsuite.Tagger()
        tagger.open(path)
        out["state_features"] = len(tagger.info().state_features)
        pred = [tagger.tag(xs) for xs in X_test]
        tagger.close()
        os.remove(path)
    out["accuracy"] = accuracy(y_test, pred)
    return out


def measured(name, corpus, iterations, default_iterations=None):
    """Run ``name`` in its own process under ``/usr/bin/time -v``; its result and
    peak RSS (MB), or the failure."""
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--only", name,
           "--corpus", json.dumps(corpus), "--iterations", str(iterations)]
    if default_iterations is not None:
        cmd += ["--default-iterations", str(default_iterations)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    result = {"run": name, "peak_rss_mb": int(rss.group(1)) / 1024 if rss else None}
    if proc.returncode == 0:
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        result["error"] = proc.stderr.strip().splitlines()[-1][:200] if proc.stderr else ""
        result["rc"] = proc.returncode
    return result


def layout_sizes(name, X, y):
    """One ``--layout`` line: the default layout's weights against the others'."""
    from fastcrf._layout import DENSE_MIN_COUNT, StateLayout
    from fastcrf._training import encode_training

    vocabulary, _, data = encode_training(X, y, 0, 1)
    n_frequent = int(np.sum(vocabulary.counts >= DENSE_MIN_COUNT))
    seen = StateLayout.build(data, 0).n_weights
    frequency = StateLayout.build(data, n_frequent).n_weights
    default = StateLayout.for_training(data, None, counts=vocabulary.counts)
    print(f"| {name} | {data.n_labels} | {seen:,} | {frequency:,} ({frequency / seen:.2f}x) "
          f"| {default.n_weights:,} ({default.n_weights / seen:.2f}x) |", flush=True)


def layouts(names, corpus, data):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    print("| training set | K | seen pairs | every label if seen 5x | default |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        if name == "synthetic":
            X, y = split(*many_label_corpus(**corpus))[:2]
        elif name == "conll2000-chunk":
            import bench_conll
            X, y = bench_conll.load(os.path.join(data, "conll2000"))[:2]
        else:
            import bench_conll2002
            folder = "conll2002" if name == "conll2002-ner" else "conll2000"
            corpus_name = "conll2002" if name == "conll2002-ner" else "conll2000-pos"
            X, y = bench_conll2002.load(os.path.join(data, folder),
                                        corpus=corpus_name)[:2]
        layout_sizes(name, X, y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(RUNS), help="one run, in this process")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--corpus", default="{}",
                        help="JSON of many_label_corpus arguments")
    parser.add_argument("--iterations", type=int, default=50,
                        help="L-BFGS iterations (fastcrf and crfsuite alike)")
    parser.add_argument("--default-iterations", type=int,
                        help="epochs of the default runs (default: CRF()'s own)")
    parser.add_argument("--layout", nargs="+", metavar="SET",
                        choices=["synthetic", "conll2000-chunk", "conll2002-ner",
                                 "conll2000-pos"],
                        help="print the layouts' weights of these training sets, no fit")
    parser.add_argument("--data", default=os.path.join(
                            os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "shared", "data"),
                        help="folder holding conll2000/ and conll2002/ (--layout)")
    args = parser.parse_args()
    corpus = json.loads(args.corpus)
    if args.layout:
        layouts(args.layout, corpus, args.data)
        return
    if args.only:
        print(json.dumps(run_one(args.only, corpus, args.iterations, args.default_iterations)))
        return
    print("| run | K | fit (s) | peak RSS (MB) | state features | accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.runs.split(","):
        r = measured(name, corpus, args.iterations, args.default_iterations)
        if "error" in r:
            print(f"| {name} | | failed rc={r['rc']}: {r['error']} | "
                  f"{r['peak_rss_mb']:.0f} | | |")
            continue
        print(f"| {name} | {r['labels']} | {r['fit_s']:.1f} | {r['peak_rss_mb']:.0f} | "
              f"{r['state_features']:,} | {r['accuracy']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
