"""fastcrf.dask on CoNLL-2000 chunking with a 2-worker LocalCluster (1 thread each)
against the same estimator on one machine (n_jobs=1 and n_jobs=2).

Measured: L-BFGS's objective after 20 iterations, seconds per iteration and the bytes
the workers sent each other and the driver per iteration; averaged SGD by parameter
mixing against single-machine averaged SGD (chunk F1, seconds); tagging the test set
repeated 20 times on the cluster against ``CRF.predict`` locally.  Local and cluster
runs alternate, ``--rounds`` times; medians are reported.

Usage::

    python bench/bench_dask.py [--data ../shared/data/conll2000] [--rounds 2]
"""

import argparse
import os
import statistics
import sys
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


def main():
    import dask.bag as db
    import distributed

    import fastcrf.dask as fd
    from fastcrf import CRF
    from fastcrf.metrics import chunk_scores

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    X, y = load(os.path.join(args.data, "train.txt.gz"))
    Xt, yt = load(os.path.join(args.data, "test.txt.gz"))
    rows = {}

    def note(key, value):
        rows.setdefault(key, []).append(value)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        Xb, yb = db.from_sequence(X, npartitions=2), db.from_sequence(y, npartitions=2)
        for _ in range(args.rounds):
            for jobs in (1, 2):
                t = time.perf_counter()
                local = CRF(algorithm="lbfgs", max_iterations=20, n_jobs=jobs).fit(X, y)
                note(f"lbfgs local n_jobs={jobs} s", time.perf_counter() - t)
            note("lbfgs local objective", local.training_log_.iterations[-1]["objective"])
            b0 = sent_bytes(client)
            t = time.perf_counter()
            dist = fd.fit(CRF(algorithm="lbfgs", max_iterations=20), Xb, yb)
            note("lbfgs dask s", time.perf_counter() - t)
            note("lbfgs dask bytes", sent_bytes(client) - b0)
            note("lbfgs dask objective", dist.training_log_.iterations[-1]["objective"])
            note("lbfgs n_weights", dist._model.layout.n_weights)
            for name, fitter in (("asgd local", lambda: CRF(random_state=0, n_jobs=1)
                                  .fit(X, y)),
                                 ("asgd mixing", lambda: fd.fit(CRF(random_state=0),
                                                                Xb, yb))):
                t = time.perf_counter()
                crf = fitter()
                note(f"{name} s", time.perf_counter() - t)
                note(f"{name} F1", chunk_scores(yt, crf.predict(Xt)).f1)
                note(f"{name} epochs", len(crf.training_log_.iterations))
            big = Xt * 20
            t = time.perf_counter()
            local.predict(big)
            note("tag local n_jobs=1 s", time.perf_counter() - t)
            t = time.perf_counter()
            out = fd.predict(local, db.from_sequence(big, npartitions=8)).compute()
            note("tag dask s", time.perf_counter() - t)
            assert out[: len(Xt)] == local.predict(Xt)
    n_tokens = sum(map(len, Xt)) * 20
    print(f"CoNLL-2000, {len(X)} training sentences; LocalCluster 2 workers x 1 thread; "
          f"medians of {args.rounds} rounds")
    for key, values in rows.items():
        print(f"{key:28s} {statistics.median(values):.10g}")
    print(f"tagging tokens                {n_tokens}")


if __name__ == "__main__":
    main()
