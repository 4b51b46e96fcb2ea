"""CoNLL-2002 Spanish NER: fastcrf.CRF against sklearn-crfsuite on the tutorial's features.

Features are those of the sklearn-crfsuite tutorial without its POS tags: per token
``bias``, ``word.lower()``, ``word[-3:]``, ``word[-2:]``, ``word.isupper()``,
``word.istitle()``, ``word.isdigit()``; the previous and next token's
``word.lower()``, ``word.istitle()``, ``word.isupper()`` under ``-1:`` / ``+1:``;
``BOS`` / ``EOS`` at the ends.  The dicts are built once, before any timing, and the
same dicts go to every tool.

Each configuration runs in its own child process, so that its peak RSS is its own;
the children alternate, round after round, so machine noise hits every tool alike.
Reported: medians over rounds of fit time (from the feature dicts to a trained model:
encoding or ``Trainer.append`` included), tagging time of the evaluation set, peak RSS,
entity F1 (conlleval's rules) and token accuracy, the number of non-zero weights and,
for L-BFGS, the final objective ``sum -log p + c1 |w|_1 + c2 |w|^2``.

Usage::

    python bench/bench_conll2002.py [--data ../shared/data/conll2002] [--rounds 3]
        [--configs fastcrf-default,sklearn-tutorial] [--eval testb|testa]
        [--train-limit N] [--baseline sklearn-tutorial] [--json FILE] [--synthetic]
        [--corpus conll2002|conll2000-pos]

``--corpus conll2000-pos`` runs the same features and configurations on a second task
and language: the part-of-speech tags of CoNLL-2000 (English, 44 tags), scored by token
accuracy (``--data`` then defaults to ``../shared/data/conll2000``).

Named configurations: sklearn-tutorial, sklearn-l2, fastcrf-default,
fastcrf-lbfgs-tutorial, fastcrf-lbfgs-l2.  ``fastcrf:key=value,key=value`` (and
``sklearn:key=value,...``) give any other keyword arguments of the estimator; in a
``--configs`` list, a comma-separated item holding ``=`` but no ``:`` continues the
configuration before it, so ``fastcrf:c1=0.05,c2=0.01,sklearn-tutorial`` is two
configurations.  fastcrf configurations get ``random_state=0`` unless they set it.
"""

import argparse
import gc
import ast
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2002")
#: The second task: part-of-speech tags of CoNLL-2000 (column 2 of its ``word POS chunk``
#: files; 44 tags, English), learnt from the same word features; scored by token accuracy.
DEFAULT_POS_DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2000")
CORPORA = ("conll2002", "conll2000-pos")

TUTORIAL = {"algorithm": "lbfgs", "c1": 0.1, "c2": 0.1, "max_iterations": 100}
CONFIGS = {
    "sklearn-tutorial": ("sklearn", {**TUTORIAL, "all_possible_transitions": True}),
    "sklearn-l2": ("sklearn", {**TUTORIAL, "c1": 0.0, "all_possible_transitions": True}),
    "fastcrf-default": ("fastcrf", {}),
    "fastcrf-lbfgs-tutorial": ("fastcrf", dict(TUTORIAL)),
    "fastcrf-lbfgs-l2": ("fastcrf", {**TUTORIAL, "c1": 0.0}),
}
TOOLS = ("fastcrf", "sklearn")


# --------------------------------------------------------------------------- #
# Data and features                                                             #
# --------------------------------------------------------------------------- #

def read_sentences(path, encoding="utf-8"):
    """Sentences of a ``word tag`` column file (``.gz`` read as such): lists of pairs."""
    from fastcrf.io import read_conll

    return [[(row[0], row[1]) for row in s]
            for s in read_conll(path, columns=2, encoding=encoding)]


def word2features(sent, i):
    """The tutorial's feature dict of token ``i`` of ``sent`` (pairs ``(word, tag)``)."""
    word = sent[i][0]
    features = {
        "bias": 1.0,
        "word.lower()": word.lower(),
        "word[-3:]": word[-3:],
        "word[-2:]": word[-2:],
        "word.isupper()": word.isupper(),
        "word.istitle()": word.istitle(),
        "word.isdigit()": word.isdigit(),
    }
    # The previous and the next word, or BOS / EOS at the ends.
    for j, prefix, edge in ((i - 1, "-1:", "BOS"), (i + 1, "+1:", "EOS")):
        if 0 <= j < len(sent):
            other = sent[j][0]
            features.update({
                prefix + "word.lower()": other.lower(),
                prefix + "word.istitle()": other.istitle(),
                prefix + "word.isupper()": other.isupper(),
            })
        else:
            features[edge] = True
    return features


def sent2features(sent):
    """Feature dicts of every token of a sentence."""
    return [word2features(sent, i) for i in range(len(sent))]


def sent2labels(sent):
    """The tags of a sentence."""
    return [tag for _, tag in sent]


def synthetic_sentences(n, seed):
    """``n`` small NER-like sentences (``word tag`` pairs) from fastcrf's HMM sampler.

    Words of entity tokens are title-cased and some others upper-cased or digits, so
    every feature of :func:`word2features` varies.  For smoke runs, not for figures.
    """
    from fastcrf.datasets import make_sequences

    _, y, params = make_sequences(n, n_labels=3, n_attributes=60, length=(3, 15),
                                  scheme="BIO", return_params=True, random_state=seed)
    out = []
    for ws, tags in zip(params["words"], y):
        sent = []
        for w, tag in zip(ws.tolist(), tags):
            word = f"pal{w}"
            if tag != "O":
                word = word.title()
            elif w % 7 == 0:
                word = str(w)
            elif w % 11 == 0:
                word = word.upper()
            sent.append((word, tag))
        out.append(sent)
    return out


def read_pos_sentences(path, encoding="utf-8"):
    """Sentences of a CoNLL-2000 ``word POS chunk`` file as ``(word, POS)`` pairs."""
    from fastcrf.io import read_conll

    return [[(row[0], row[1]) for row in s]
            for s in read_conll(path, columns=3, encoding=encoding)]


def load(data, eval_set="testb", train_limit=None, encoding="utf-8", synthetic=False,
         corpus="conll2002"):
    """``(X_train, y_train, X_eval, y_eval)``: feature dicts and tags.

    Parameters
    ----------
    data : str
        Folder with ``esp.train.gz`` and ``esp.{testa,testb}.gz`` (with ``corpus=
        "conll2000-pos"``: ``train.txt.gz`` and ``test.txt.gz``; unused when
        ``synthetic``).
    eval_set : {"testb", "testa"}
        Ignored for ``"conll2000-pos"``, which has one test set.
    train_limit : int, optional
        Keep only the first ``train_limit`` training sentences.
    encoding : str
    synthetic : bool
        Small synthetic sentences instead of the corpus.
    corpus : {"conll2002", "conll2000-pos"}
        Spanish named entities, or English part-of-speech tags from the same features.
    """
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
    if synthetic:
        # One sample (one generating model): the first 300 train, the rest evaluate.
        sentences = synthetic_sentences(500, 0)
        train = sentences[:300]
        test = sentences[300:400] if eval_set == "testb" else sentences[400:]
    elif corpus == "conll2000-pos":
        train = read_pos_sentences(os.path.join(data, "train.txt.gz"), encoding)
        test = read_pos_sentences(os.path.join(data, "test.txt.gz"), encoding)
    else:
        train = read_sentences(os.path.join(data, "esp.train.gz"), encoding)
        test = read_sentences(os.path.join(data, f"esp.{eval_set}.gz"), encoding)
    if train_limit is not None:
        train = train[:train_limit]
    X_train = [sent2features(s) for s in train]
    y_train = [sent2labels(s) for s in train]
    X_test = [sent2features(s) for s in test]
    y_test = [sent2labels(s) for s in test]
    return X_train, y_train, X_test, y_test


def tutorial_testb():
    """The tutorial features of esp.train and esp.testb from the default data folder:
    the loader of ``fastcrf bench --features bench_conll2002:tutorial_testb`` (run in
    ``bench/``), which times them against the peers the same way as this script."""
    return load(DEFAULT_DATA, "testb")


def tutorial_testa():
    """As :func:`tutorial_testb`, scored on the development set esp.testa."""
    return load(DEFAULT_DATA, "testa")


def scores(gold, pred):
    """``(entity F1, token accuracy)`` in percent, by conlleval's rules."""
    from fastcrf.metrics import chunk_scores

    s = chunk_scores(gold, pred)
    return 100.0 * s.f1, 100.0 * s.accuracy


# --------------------------------------------------------------------------- #
# Configurations                                                                #
# --------------------------------------------------------------------------- #

def _value(text):
    """A keyword's value: a Python literal (1, 0.5, True, None, 'x') or a bare str."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_config(name):
    """``(tool, kwargs)`` of a named configuration or of ``tool:key=value,...``."""
    if name in CONFIGS:
        tool, kwargs = CONFIGS[name]
        return tool, dict(kwargs)
    tool, colon, rest = name.partition(":")
    if not colon or tool not in TOOLS:
        raise ValueError(f"unknown configuration {name!r}: use one of {sorted(CONFIGS)} "
                         f"or 'fastcrf:key=value,...' / 'sklearn:key=value,...'")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"configuration {name!r}: {item!r} is not key=value")
        kwargs[key.strip()] = _value(value.strip())
    return tool, kwargs


def split_configs(text):
    """The configurations of a ``--configs`` list (see the module docstring)."""
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if "=" in item and ":" not in item.split("=", 1)[0]:
            if not out or ":" not in out[-1]:
                raise ValueError(f"--configs: {item!r} does not follow a tool:key=value "
                                 "configuration")
            out[-1] += "," + item
        else:
            out.append(item)
    for c in out:
        parse_config(c)  # fail now, not after an hour of other runs
    if len(set(out)) != len(out):
        raise ValueError(f"--configs lists a configuration twice: {out}")
    return out


# --------------------------------------------------------------------------- #
# One run                                                                       #
# --------------------------------------------------------------------------- #

def _norms(values):
    """``(sum |w|, sum w^2)``."""
    import numpy as np

    w = np.asarray(values, dtype=np.float64)
    return float(np.abs(w).sum()), float(np.square(w).sum())


def token_matrix(X, index):
    """Sparse ``(n_tokens, n_attributes)`` matrix of the feature dicts' values.

    The attribute of ``{key: value}`` is ``"key:value"`` (weight 1) for a str value and
    ``key`` (weight ``float(value)``) for a number or bool: the convention of both
    python-crfsuite and fastcrf.  Names missing from ``index`` have no weight.
    """
    import numpy as np
    from scipy.sparse import csr_matrix

    indptr, cols, vals = [0], [], []
    for seq in X:
        for tok in seq:
            for key, value in tok.items():
                if isinstance(value, str):
                    name, value = f"{key}:{value}", 1.0
                else:
                    name, value = key, float(value)
                a = index.get(name)
                if a is not None and value != 0.0:
                    cols.append(a)
                    vals.append(value)
            indptr.append(len(cols))
    return csr_matrix((np.array(vals), np.array(cols, dtype=np.int64), np.array(indptr)),
                      shape=(len(indptr) - 1, len(index)))


def objective(X, y, attributes, labels, W, transitions, start, end, c1, c2, n_jobs=None):
    """``(objective, data term)`` of a model, recomputed from its weights.

    ``sum -log p(y|x) + c1 |w|_1 + c2 |w|^2`` over all weights (state, transition,
    start, end), with the log-likelihoods from :func:`fastcrf.log_likelihood` on
    emissions built here from the feature dicts: the same computation for either
    tool's model, so the two objectives are comparable whatever each trainer logs.
    """
    import numpy as np

    import fastcrf

    emissions = token_matrix(X, {a: i for i, a in enumerate(attributes)}) @ W
    code = {label: k for k, label in enumerate(labels)}
    tags = np.array([code[t] for seq in y for t in seq], dtype=np.int64)
    lengths = np.array([len(seq) for seq in X], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    K = len(labels)
    loss = 0.0
    order = np.argsort(lengths, kind="stable")
    for b in range(0, len(order), 512):  # batches of similar length: little padding
        idx = order[b:b + 512]
        T = int(lengths[idx].max())
        E = np.zeros((len(idx), T, K))
        G = np.zeros((len(idx), T), dtype=np.int64)
        for r, i in enumerate(idx.tolist()):
            E[r, :lengths[i]] = emissions[offsets[i]:offsets[i + 1]]
            G[r, :lengths[i]] = tags[offsets[i]:offsets[i + 1]]
        ll = fastcrf.log_likelihood(E, G, transitions, start, end, lengths[idx],
                                    n_jobs=n_jobs)
        loss -= float(ll.sum())
    l1 = l2 = 0.0
    for w in (W, transitions, start, end):
        a, b = _norms(np.ravel(w))
        l1, l2 = l1 + a, l2 + b
    return loss + c1 * l1 + c2 * l2, loss


def _fit_and_tag(crf, X_train, y_train, X_test):
    """``(fit s, tag s, predictions, peak RSS KiB)`` of one estimator."""
    t0 = time.perf_counter()
    crf.fit(X_train, y_train)
    t1 = time.perf_counter()
    pred = crf.predict(X_test)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, pred, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_fastcrf(kwargs, X_train, y_train, X_test, n_jobs):
    """Fit and tag with one tool: ``(fit s, tag s, predictions, peak RSS KiB, extra)``.

    ``extra()`` gives the model's counts (and the L-BFGS objective); call it only after
    the peak RSS was read, as it builds large temporaries.
    """
    import fastcrf

    kwargs = {"random_state": 0, **kwargs}
    kwargs.setdefault("n_jobs", n_jobs)
    crf = fastcrf.CRF(**kwargs)
    fit, tag, pred, peak = _fit_and_tag(crf, X_train, y_train, X_test)

    def extra():
        # After the peak RSS was read: the dense state matrix is built on request.
        out = {"n_iter": crf.n_iter_, "nonzero": crf.n_nonzero_weights_}
        if crf.algorithm == "lbfgs":
            last = crf.training_log_.last_iteration
            c1 = crf.c1 or 0.0
            c2 = crf.c2 if crf.c2 is not None else 0.5
            W = crf.state_weights_
            e1, e2 = _norms(list(crf.start_weights_) + list(crf.end_weights_))
            obj, loss = objective(X_train, y_train, crf.attributes_, crf.classes_, W,
                                  crf.transition_weights_, crf.start_weights_,
                                  crf.end_weights_, c1, c2, n_jobs)
            out.update(objective_logged=last["objective"], loss_logged=last["loss"],
                       objective=obj, loss=loss, penalty_start_end=c1 * e1 + c2 * e2)
        return out

    return fit, tag, pred, peak, extra


def run_sklearn(kwargs, X_train, y_train, X_test, n_jobs):
    """As :func:`run_fastcrf`, with sklearn-crfsuite (``n_jobs`` is unused)."""
    import sklearn_crfsuite

    crf = sklearn_crfsuite.CRF(**kwargs)
    fit, tag, pred, peak = _fit_and_tag(crf, X_train, y_train, X_test)

    def extra():
        # The model file keeps only the non-zero weights (printed with 6 decimals).
        weights = list(crf.state_features_.values()) + list(crf.transition_features_.values())
        log = crf.training_log_
        out = {"n_iter": len(log.iterations), "nonzero": len(weights)}
        last = log.last_iteration
        if "active_features" in last:
            out["active_logged"] = last["active_features"]
        if (crf.algorithm or "lbfgs") == "lbfgs" and "loss" in last:
            import numpy as np

            c1 = crf.c1 or 0.0
            c2 = crf.c2 if crf.c2 is not None else 1.0
            labels = crf.classes_
            code = {label: k for k, label in enumerate(labels)}
            attributes = sorted({a for a, _ in crf.state_features_})
            row = {a: i for i, a in enumerate(attributes)}
            W = np.zeros((len(attributes), len(labels)))
            for (a, label), w in crf.state_features_.items():
                W[row[a], code[label]] = w
            trans = np.zeros((len(labels), len(labels)))
            for (a, b), w in crf.transition_features_.items():
                trans[code[a], code[b]] = w
            zeros = np.zeros(len(labels))
            obj, loss = objective(X_train, y_train, attributes, labels, W, trans, zeros,
                                  zeros, c1, c2, n_jobs)
            # CRFsuite logs "Loss": its objective, with the L1 term (OWL-QN) and c2 |w|^2.
            out.update(objective_logged=last["loss"], objective=obj, loss=loss)
        return out

    return fit, tag, pred, peak, extra


def worker(config, args):
    """Run one configuration; print a JSON line of its measurements."""
    tool, kwargs = parse_config(config)
    X_train, y_train, X_test, y_test = load(args.data, args.eval, args.train_limit,
                                            args.encoding, args.synthetic, args.corpus)
    # One full collection of the loaded corpus now: Python's next full collection
    # (~0.3 s over the millions of objects of the feature lists) otherwise lands in
    # whichever timed call next allocates enough, e.g. fastcrf's first predict after
    # fit, and the loaded data is neither tool's cost.
    gc.collect()
    # The tool's modules are loaded first, so "RSS over data" is training and tagging.
    __import__("fastcrf" if tool == "fastcrf" else "sklearn_crfsuite")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner = run_fastcrf if tool == "fastcrf" else run_sklearn
    fit_s, tag_s, pred, peak, extra = runner(kwargs, X_train, y_train, X_test, args.n_jobs)
    f1, acc = scores(y_test, pred)
    row = {"config": config, "fit": fit_s, "tag": tag_s, "f1": f1, "acc": acc,
           "peak_rss_mb": peak / 1024, "rss_over_data_mb": (peak - base_rss) / 1024,
           "n_train": len(X_train), "n_train_tokens": sum(map(len, X_train)),
           "n_eval": len(X_test), **extra()}
    print(json.dumps(row))


# --------------------------------------------------------------------------- #
# Driver                                                                        #
# --------------------------------------------------------------------------- #

KEYS = ("fit", "tag", "f1", "acc", "peak_rss_mb", "rss_over_data_mb", "nonzero", "n_iter",
        "objective", "objective_logged", "loss", "penalty_start_end")


def medians(rows):
    """Median of every numeric measurement present in all rounds."""
    return {k: statistics.median(r[k] for r in rows) for k in KEYS
            if all(r.get(k) is not None for r in rows)}


def _ratio(a, b, fmt="{:.2f}x"):
    return fmt.format(a / b) if a is not None and b else ""


def table(med, baseline):
    """Markdown table of the medians, with ratios against ``baseline``."""
    base = med.get(baseline)
    lines = [
        f"| configuration | fit (s) | tag (s) | fit speed-up vs {baseline} | "
        "tag speed-up | entity F1 | token acc | peak RSS (MB) | RSS over data (MB) | "
        "RSS ratio | non-zero weights | iterations | objective | objective ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, m in med.items():
        b = base or {}
        obj = m.get("objective")
        lines.append(
            f"| {c} | {m['fit']:.2f} | {m['tag']:.3f} | {_ratio(b.get('fit'), m['fit'])} | "
            f"{_ratio(b.get('tag'), m['tag'])} | {m['f1']:.2f} | {m['acc']:.2f} | "
            f"{m['peak_rss_mb']:.0f} | {m['rss_over_data_mb']:.0f} | "
            f"{_ratio(m['peak_rss_mb'], b.get('peak_rss_mb'))} | {m['nonzero']:,.0f} | "
            f"{m['n_iter']:.0f} | {'' if obj is None else f'{obj:,.1f}'} | "
            f"{_ratio(obj, b.get('objective'), '{:.4f}')} |")
    return "\n".join(lines)


def _versions():
    out = {"python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count()}
    from importlib.metadata import PackageNotFoundError, version

    for key, dist in (("fastcrf", "fastcrf"), ("pycrfsuite", "python-crfsuite"),
                      ("sklearn_crfsuite", "sklearn-crfsuite")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = None
    return out


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Named configurations: " + ", ".join(CONFIGS) + "; or fastcrf:key=value,"
               "... / sklearn:key=value,... (see the module docstring).")
    parser.add_argument("--data", default=None,
                        help="folder with esp.train.gz, esp.testa.gz, esp.testb.gz (with "
                             "--corpus conll2000-pos: train.txt.gz, test.txt.gz)")
    parser.add_argument("--corpus", choices=CORPORA, default="conll2002",
                        help="conll2002: Spanish named entities (entity F1); conll2000-pos: "
                             "English part-of-speech tags from the same word features "
                             "(token accuracy; its entity F1 means nothing)")
    parser.add_argument("--eval", choices=("testb", "testa"), default="testb",
                        help="evaluation set (testa is the development set: choose "
                             "settings there, quote testb)")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="train on the first N sentences only (the small-data case)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each configuration (medians are reported)")
    parser.add_argument("--configs", default="fastcrf-default,sklearn-tutorial",
                        help="comma-separated configurations (named, or "
                             "fastcrf:key=value,... / sklearn:key=value,...)")
    parser.add_argument("--baseline", default="sklearn-tutorial",
                        help="configuration the ratios are against (must be in --configs)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="fastcrf's n_jobs (default: all cores)")
    parser.add_argument("--encoding", default="utf-8", help="encoding of the data files")
    parser.add_argument("--json", metavar="FILE", help="also write every round here")
    parser.add_argument("--synthetic", action="store_true",
                        help="small synthetic data instead of the corpus (a smoke test)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is None:
        args.data = DEFAULT_POS_DATA if args.corpus == "conll2000-pos" else DEFAULT_DATA
    if args.train_limit is not None and args.train_limit < 1:
        parser.error(f"--train-limit must be >= 1, got {args.train_limit}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if not args.synthetic and not os.path.isdir(args.data):
        name = "CoNLL-2000" if args.corpus == "conll2000-pos" else "CoNLL-2002"
        sys.exit(f"{name} not found at {args.data}: pass --data (or --synthetic)")
    if args.worker:
        worker(args.worker, args)
        return
    try:
        configs = split_configs(args.configs)
    except ValueError as exc:
        parser.error(str(exc))
    results = {c: [] for c in configs}
    common = ["--data", args.data, "--eval", args.eval, "--encoding", args.encoding,
              "--corpus", args.corpus]
    if args.train_limit is not None:
        common += ["--train-limit", str(args.train_limit)]
    if args.n_jobs is not None:
        common += ["--n-jobs", str(args.n_jobs)]
    if args.synthetic:
        common.append("--synthetic")
    for r in range(args.rounds):
        for c in configs if r % 2 == 0 else reversed(configs):
            cmd = [sys.executable, os.path.abspath(__file__), *common, "--worker", c]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                sys.exit(f"configuration {c!r} failed (exit status {proc.returncode})")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["round"] = r + 1
            results[c].append(row)
            obj = f"  objective {row['objective']:,.1f}" if "objective" in row else ""
            print(f"round {r + 1}: {c:24s} fit {row['fit']:7.2f}s  tag {row['tag']:6.3f}s  "
                  f"rss {row['peak_rss_mb']:6.0f} MB  F1 {row['f1']:.2f}  "
                  f"acc {row['acc']:.2f}  nonzero {row['nonzero']}  "
                  f"iter {row['n_iter']}{obj}", flush=True)
    med = {c: medians(rows) for c, rows in results.items()}
    first = results[configs[0]][0]
    source = ("synthetic data" if args.synthetic else
              "CoNLL-2000 test, part-of-speech tags" if args.corpus == "conll2000-pos" else
              f"CoNLL-2002 esp.{args.eval}")
    meta = {"corpus": args.corpus, "eval": args.eval, "synthetic": args.synthetic,
            "rounds": args.rounds,
            "train_sentences": first["n_train"], "train_tokens": first["n_train_tokens"],
            "eval_sentences": first["n_eval"], "n_jobs": args.n_jobs, **_versions()}
    print()
    print(f"# {source}; trained on {first['n_train']} sentences ({first['n_train_tokens']} "
          f"tokens); median of {args.rounds}; {meta['machine']}, {meta['cpus']} CPUs, "
          f"Python {meta['python']}, fastcrf {meta['fastcrf']}, python-crfsuite "
          f"{meta['pycrfsuite']}, sklearn-crfsuite {meta['sklearn_crfsuite']}")
    print()
    if args.baseline not in med:
        print(f"(baseline {args.baseline!r} not among the configurations: no ratios)")
    print(table(med, args.baseline))
    lbfgs = {c: m for c, m in med.items() if "objective" in m}
    if lbfgs:
        print()
        print("objective: sum -log p + c1 |w|_1 + c2 |w|^2 of the final weights, recomputed "
              "here the same way for both tools (fastcrf's includes its start/end weights; "
              "CRFsuite has none); logged: what the trainer reported")
        for c, m in lbfgs.items():
            ends = m.get("penalty_start_end")
            ends = "" if ends is None else f", start/end penalty {ends:,.2f}"
            print(f"  {c}: objective {m['objective']:,.2f} (logged "
                  f"{m['objective_logged']:,.2f}), data term {m['loss']:,.2f}{ends}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "configs": configs, "baseline": args.baseline,
                       "rounds": results, "medians": med}, f, indent=1)


if __name__ == "__main__":
    main()
