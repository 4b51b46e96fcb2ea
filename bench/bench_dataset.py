"""``fastcrf train`` on a large corpus: per-token lists (``--lists``) against the
streamed :class:`fastcrf.Dataset` (the default), and training from an encoded folder.

    python bench/bench_dataset.py [--data DIR] [--times 8 48] [--rounds 1] [--paths ...]
                                  [--max-iterations N]

``stream`` reads the column file with the compiled reader, ``stream-py`` with the
Python one (``FASTCRF_READER=python``: ``io.read_conll`` rows through
``Template.encode``); both give the same Dataset.  ``--max-iterations 1`` keeps the
training short when only the read + encode seconds are compared.

CoNLL-2000's training set is repeated N times into a temporary file (CRF++'s chunking
template, as in bench_templates.py).  Each run is one ``fastcrf train`` child process;
the runs of a round alternate between the paths.  Reported per run: the child's peak
RSS (``os.wait4``), the read + encode seconds and the train seconds the command prints,
and the chunk F1 of its model on CoNLL-2000's test set (scored here, after the run).
``folder`` trains on a dataset folder written beforehand by ``fastcrf encode`` (its
encode time is reported as its read time).
"""

import argparse
import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS = ("lists", "stream", "stream-py", "folder")


def run_child(argv, env=None):
    """Run ``argv``; return ``(stdout, peak RSS in MB, wall seconds)``."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out[-2000:]}")
    return out, usage.ru_maxrss / 1024, time.perf_counter() - started


def seconds(pattern, text):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else float("nan")


def f1_of(model, test):
    from fastcrf import CRF
    from fastcrf.io import load_conll
    from fastcrf.metrics import chunk_scores
    from fastcrf.templates import Template

    crf = CRF.load(model)
    template = Template(crf.metadata_["fastcrf_cli"]["template"])
    X, y = load_conll(test)
    return 100 * chunk_scores(y, crf.predict(template.transform(X))).f1


def one(path, train, test, folder, work, args):
    fastcrf = [sys.executable, "-m", "fastcrf"]
    model = os.path.join(work, f"{path}.npz")
    common = ["-m", model, "-a", args.algorithm, "--seed", "0"]
    if args.max_iterations:
        common += ["-i", str(args.max_iterations)]
    env = dict(os.environ)
    env.pop("FASTCRF_READER", None)
    if path == "stream-py":
        env["FASTCRF_READER"] = "python"
    encode_s = 0.0
    if path == "folder":
        out, rss_e, _ = run_child(fastcrf + ["encode", "-t", "chunking", "-o", folder, train])
        encode_s = seconds(r"in ([\d.]+) s;", out)
        out, rss, wall = run_child(fastcrf + ["train"] + common + [folder])
        rss = max(rss, rss_e)
    else:
        extra = ["--lists"] if path == "lists" else []
        out, rss, wall = run_child(fastcrf + ["train", "-t", "chunking"] + common + extra
                                   + [train], env)
    return {"rss": rss, "read": encode_s or seconds(r"extracted in ([\d.]+) s", out),
            "train": seconds(r"trained in ([\d.]+) s", out), "wall": wall,
            "f1": f1_of(model, test)}


def main():
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2000"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(default), help="folder of train/test.txt.gz")
    ap.add_argument("--times", type=int, nargs="+", default=[8, 48])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    ap.add_argument("--algorithm", default="asgd")
    ap.add_argument("--max-iterations", type=int, default=None,
                    help="epochs of each training run (default: the algorithm's)")
    args = ap.parse_args()
    source = os.path.join(args.data, "train.txt.gz")
    test = os.path.join(args.data, "test.txt.gz")
    if not os.path.exists(source):
        sys.exit(f"CoNLL-2000 not found in {args.data} (give --data)")
    with gzip.open(source, "rt", encoding="utf-8") as f:
        text = f.read().rstrip("\n") + "\n\n"
    n_tokens = sum(1 for line in text.splitlines() if line.strip())
    work = tempfile.mkdtemp(prefix="bench-dataset-")
    print(f"{'N':>3} {'tokens':>11} {'path':<9} {'peak RSS MB':>11} {'read+encode s':>13} "
          f"{'train s':>8} {'wall s':>7} {'F1':>6}")
    try:
        for times in args.times:
            train = os.path.join(work, "train.txt")
            with open(train, "w", encoding="utf-8") as f:
                for _ in range(times):
                    f.write(text)
            results = {p: [] for p in args.paths}
            for r in range(args.rounds):
                order = args.paths if r % 2 == 0 else args.paths[::-1]
                for path in order:
                    results[path].append(one(path, train, test,
                                             os.path.join(work, "ds"), work, args))
            for path in args.paths:
                med = {k: statistics.median(x[k] for x in results[path])
                       for k in results[path][0]}
                print(f"{times:>3} {n_tokens * times:>11,} {path:<9} {med['rss']:>11,.0f} "
                      f"{med['read']:>13.1f} {med['train']:>8.1f} {med['wall']:>7.1f} "
                      f"{med['f1']:>6.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
