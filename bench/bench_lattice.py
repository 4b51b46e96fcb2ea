"""Cost of the lattice queries relative to one another, in one process.

    python bench/bench_lattice.py [--repeats 7] [--threads 1] [--baseline CORE.so]

On float32 emissions of shape (B, T, K) = (256, 50, 20) it times, alternating the
calls in rounds and taking medians:

- ``viterbi``, ``viterbi k=5`` (exact k best), ``marginals``, ``posterior_decode``
  (MBR), ``log_likelihood`` with its gradient, without and with ``allowed`` (BIO
  constraints over 9 entity types + O, padded to K = 20 with free labels);
- ``posterior_decode allowed`` (MBR under the BIO constraints: marginals, then a
  Viterbi pass over them) and ``posterior_decode (before)``, the earlier
  implementation (validated marginals, a float64 gain array, a Viterbi pass), side by
  side with the current one;
- with ``--baseline``, the same compiled ``forward_backward``, ``viterbi`` and
  ``viterbi_nbest`` (k = 5) of another build of ``fastcrf/_kernels/_core`` (a ``.so``
  file, e.g. main's), to show that the unconstrained path did not slow down and what
  the k-best kernel gained.

It prints median milliseconds and the ratios the issue bounds.
"""

import argparse
import importlib.util
import statistics
import time

import numpy as np

import fastcrf
from fastcrf._kernels import _core

B, T, K = 256, 50, 20


def _ms(fn, calls=5):
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _load_core(path):
    spec = importlib.util.spec_from_file_location("_core", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mbr_before(em, trans, start, end, lengths, n_jobs):
    """posterior_decode as it was before: the public marginals (validated again), a
    float64 gain array, then a Viterbi pass whatever the transitions."""
    from fastcrf._dense import _batch

    batch = _batch(em, trans, start, end, lengths)
    node = fastcrf.marginals(batch.emissions, batch.transitions, batch.start, batch.end,
                             batch.lengths, n_jobs=n_jobs)
    gain = np.where(batch.emissions == -np.inf, -np.inf, node.astype(np.float64))
    paths = np.full(batch.emissions.shape[:2], -1, dtype=np.int64)
    _core.viterbi(gain, batch.lengths,
                  *(np.where(x == -np.inf, -np.inf, 0.0)
                    for x in (batch.transitions, batch.start, batch.end)),
                  paths, np.zeros(len(paths)), n_jobs)
    return paths


def _kernel_calls(core, em, lengths, trans, start, end, tags, n_threads):
    """forward_backward (with gradient), viterbi and viterbi_nbest (k = 5) of one
    compiled module."""
    n_chunks = -(-B // core.chunk_size())

    def fb():
        core.forward_backward(em, lengths, tags, trans, start, end, np.zeros(B), np.zeros(B),
                              np.zeros(em.shape, em.dtype), np.zeros((n_chunks, K * K + 2 * K)),
                              n_threads)

    def vit():
        core.viterbi(em, lengths, trans, start, end, np.full((B, T), -1, np.int64),
                     np.zeros(B), n_threads)

    def nbest():
        scores = np.full((B, 5), -np.inf)
        scores[:, 0] = 0.0
        core.viterbi_nbest(em, lengths, trans, start, end, np.full((B, 5, T), -1, np.int64),
                           scores, n_threads)

    return fb, vit, nbest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--baseline", help="another build's _core .so to compare against")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    em = rng.normal(size=(B, T, K)).astype(np.float32)
    trans = rng.normal(size=(K, K)) * 0.5
    start, end = rng.normal(size=K), rng.normal(size=K)
    lengths = rng.integers(T // 2, T + 1, size=B).astype(np.int64)
    labels = ["O"] + [f"{p}-E{e}" for e in range(9) for p in "BI"]
    labels += [f"X{i}" for i in range(K - len(labels))]
    allowed = fastcrf.allowed_transitions([x if x[0] in "OBI" else "O" for x in labels], "BIO")
    tags, _ = fastcrf.viterbi(em, trans, start, end, lengths, allowed=allowed)
    tags = np.where(tags < 0, 0, tags)
    j = args.threads
    calls = {
        "viterbi": lambda: fastcrf.viterbi(em, trans, start, end, lengths, n_jobs=j),
        "viterbi k=5": lambda: fastcrf.viterbi(em, trans, start, end, lengths, k=5, n_jobs=j),
        "marginals": lambda: fastcrf.marginals(em, trans, start, end, lengths, n_jobs=j),
        "posterior_decode": lambda: fastcrf.posterior_decode(em, trans, start, end, lengths,
                                                             n_jobs=j),
        "posterior_decode (before)": lambda: _mbr_before(em, trans, start, end, lengths, j),
        "viterbi allowed": lambda: fastcrf.viterbi(em, trans, start, end, lengths,
                                                   allowed=allowed, n_jobs=j),
        "marginals allowed": lambda: fastcrf.marginals(em, trans, start, end, lengths,
                                                       allowed=allowed, n_jobs=j),
        "posterior_decode allowed": lambda: fastcrf.posterior_decode(
            em, trans, start, end, lengths, allowed=allowed, n_jobs=j),
        "ll+grad": lambda: fastcrf.log_likelihood(em, tags, trans, start, end, lengths,
                                                  n_jobs=j, return_grad=True),
        "ll+grad allowed": lambda: fastcrf.log_likelihood(
            em, tags, trans, start, end, lengths, allowed=allowed, n_jobs=j, return_grad=True),
    }
    if args.baseline:
        gold = np.ascontiguousarray(tags, dtype=np.int64)
        for name, core in (("new", _core), ("base", _load_core(args.baseline))):
            fb, vit, nbest = _kernel_calls(core, em, lengths, trans, start, end, gold, j)
            calls[f"kernel forward_backward ({name})"] = fb
            calls[f"kernel viterbi ({name})"] = vit
            calls[f"kernel viterbi_nbest ({name})"] = nbest
    times = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, fn in calls.items():
            times[name].append(_ms(fn))
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"B={B} T={T} K={K} float32, threads={j}, {args.repeats} rounds (median ms)")
    for name, v in med.items():
        print(f"  {name:34s} {v:8.2f}")
    print(f"k=5 / viterbi:                       {med['viterbi k=5'] / med['viterbi']:.2f}x")
    print(f"posterior_decode / (marginals + viterbi): "
          f"{med['posterior_decode'] / (med['marginals'] + med['viterbi']):.2f}")
    print(f"posterior_decode (before) / (marginals + viterbi): "
          f"{med['posterior_decode (before)'] / (med['marginals'] + med['viterbi']):.2f}")
    both = med["marginals allowed"] + med["viterbi allowed"]
    print(f"posterior_decode allowed / (marginals + viterbi) allowed: "
          f"{med['posterior_decode allowed'] / both:.2f}")
    print(f"ll+grad allowed / ll+grad:           {med['ll+grad allowed'] / med['ll+grad']:.2f}")
    if args.baseline:
        print(f"kernel viterbi_nbest base / viterbi base: "
              f"{med['kernel viterbi_nbest (base)'] / med['kernel viterbi (base)']:.2f}x")
        for q in ("forward_backward", "viterbi", "viterbi_nbest"):
            r = med[f"kernel {q} (new)"] / med[f"kernel {q} (base)"]
            print(f"kernel {q} new / base:        {r:.2f}")


if __name__ == "__main__":
    main()
