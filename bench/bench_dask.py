"""fastcrf.dask on CoNLL-2000 chunking with a 2-worker LocalCluster (1 thread each)
against the same estimator on one machine (n_jobs=1).

Measured: L-BFGS's objective after 20 iterations, seconds per iteration and the bytes
the workers sent each other and the driver per iteration; averaged SGD by parameter
mixing against single-machine averaged SGD (chunk F1, seconds), and the trade-off
of mixing: more shards (4 partitions on the 2 workers); tagging 20
copies of the test file (a model written by ``fastcrf train -t chunking``) with
:func:`fastcrf.dask.tag_files` (what ``fastcrf tag --scheduler`` runs) against
``fastcrf tag`` on each file in turn.  Local and cluster runs alternate,
``--rounds`` times; medians are reported.

Usage::

    python bench/bench_dask.py [--data ../shared/data/conll2000] [--rounds 3]
"""

import argparse
import gzip
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_conll import chunking_features, read_columns  # noqa: E402

DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2000")


def load(path):
    sentences = read_columns(path)
    return [chunking_features(s) for s in sentences], [[r[2] for r in s] for s in sentences]


def sent_bytes(client):
    """Bytes the workers have sent so far (to each other and to the driver)."""
    return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
               .values())


def tag_files_locally(model, sources, targets):
    """``fastcrf tag`` on each file in turn, in this process."""
    from fastcrf.cli import main as cli

    for source, target in zip(sources, targets):
        assert cli(["tag", source, "-m", model, "-o", target, "-q", "-j", "1"]) == 0


def main():
    import dask.bag as db
    import distributed

    import fastcrf.dask as fd
    from fastcrf import CRF
    from fastcrf.metrics import chunk_scores

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, metavar="N",
                    help="only the first N training sentences (a quick check)")
    args = ap.parse_args()
    X, y = load(os.path.join(args.data, "train.txt.gz"))
    X, y = X[: args.limit], y[: args.limit]
    Xt, yt = load(os.path.join(args.data, "test.txt.gz"))
    rows = {}
    scratch = tempfile.mkdtemp(prefix="bench_dask_")
    train = os.path.join(args.data, "train.txt.gz")
    if args.limit is not None:
        train = os.path.join(scratch, "train.txt")
        with gzip.open(os.path.join(args.data, "train.txt.gz"), "rt") as f, \
                open(train, "w") as out:
            out.write("\n\n".join(f.read().strip().split("\n\n")[: args.limit]) + "\n")
    model_file = os.path.join(scratch, "chunking.crf")
    from fastcrf.cli import main as cli
    assert cli(["train", train, "-t", "chunking", "-m", model_file, "-a", "lbfgs",
                "-i", "20", "-q"]) == 0
    sources = []
    with gzip.open(os.path.join(args.data, "test.txt.gz"), "rt") as f:
        test_text = f.read()
    for k in range(20):
        sources.append(os.path.join(scratch, f"test{k:02d}.txt"))
        with open(sources[-1], "w") as out:
            out.write(test_text)

    def note(key, value):
        rows.setdefault(key, []).append(value)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        Xb, yb = db.from_sequence(X, npartitions=2), db.from_sequence(y, npartitions=2)
        for _ in range(args.rounds):
            t = time.perf_counter()
            local = CRF(algorithm="lbfgs", max_iterations=20, n_jobs=1).fit(X, y)
            note("lbfgs local n_jobs=1 s", time.perf_counter() - t)
            note("lbfgs local objective", local.training_log_.iterations[-1]["objective"])
            b0 = sent_bytes(client)
            t = time.perf_counter()
            dist = fd.fit(CRF(algorithm="lbfgs", max_iterations=20), Xb, yb)
            note("lbfgs dask s", time.perf_counter() - t)
            note("lbfgs dask bytes", sent_bytes(client) - b0)
            note("lbfgs dask objective", dist.training_log_.iterations[-1]["objective"])
            note("lbfgs n_weights", dist._model.layout.n_weights)
            Xb4, yb4 = (db.from_sequence(X, npartitions=4),
                        db.from_sequence(y, npartitions=4))
            for name, fitter in (
                    ("asgd local", lambda: CRF(random_state=0, n_jobs=1).fit(X, y)),
                    ("asgd mixing", lambda: fd.fit(CRF(random_state=0), Xb, yb)),
                    ("asgd mixing 4 partitions",
                     lambda: fd.fit(CRF(random_state=0), Xb4, yb4))):
                t = time.perf_counter()
                crf = fitter()
                note(f"{name} s", time.perf_counter() - t)
                note(f"{name} F1", chunk_scores(yt, crf.predict(Xt)).f1)
                note(f"{name} epochs", len(crf.training_log_.iterations))
            crf = CRF.load(model_file)
            for name in ("local", "dask"):
                targets = [os.path.join(scratch, f"{name}{k:02d}.txt") for k in range(20)]
                t = time.perf_counter()
                if name == "local":
                    tag_files_locally(model_file, sources, targets)
                else:
                    fd.tag_files(crf, sources, targets)
                note(f"tag files {name} s", time.perf_counter() - t)
            for k in range(20):
                with open(os.path.join(scratch, f"local{k:02d}.txt")) as a, \
                        open(os.path.join(scratch, f"dask{k:02d}.txt")) as b:
                    assert a.read() == b.read()
    shutil.rmtree(scratch)
    n_tokens = sum(map(len, Xt)) * 20
    print(f"CoNLL-2000, {len(X)} training sentences; LocalCluster 2 workers x 1 thread; "
          f"medians of {args.rounds} rounds")
    for key, values in rows.items():
        print(f"{key:28s} {statistics.median(values):.10g}")
    print(f"tagging tokens                {n_tokens}")


if __name__ == "__main__":
    main()
