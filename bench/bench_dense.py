"""Dense API against pytorch-crf on identical random emissions, in one process.

    pip install pytorch-crf torch   # plus fastcrf itself
    python bench/bench_dense.py [--repeats 5] [--out table.md]

For every (B, K, full/ragged batch, threads) it times, alternating the two tools in
rounds (a block of calls of one, a pause, a block of the other: torch's and numpy's
worker threads keep spinning for a while after a call and would otherwise steal the
cores from whichever tool runs next):

- ``ll``:      log-likelihood alone (pytorch-crf ``forward`` under ``no_grad``)
- ``ll+grad``: log-likelihood and its gradient (pytorch-crf ``forward`` + ``backward``)
- ``decode``:  Viterbi (pytorch-crf ``decode``)

and prints a markdown table of median milliseconds and the ratio pytorch-crf / fastcrf.
Both tools get float32 emissions of shape (B, T, K); threads are set with
``torch.set_num_threads`` and fastcrf's ``n_jobs``.
"""

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from torchcrf import CRF as TorchCRF

import fastcrf

T = 50


def _block_ms(fn, calls):
    """Median milliseconds of ``calls`` back-to-back calls, after one untimed call."""
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _compare(theirs, mine, rounds, calls=5, pause=0.05):
    """Median over rounds of each tool's block median, blocks alternating."""
    a, b = [], []
    for _ in range(rounds):
        time.sleep(pause)
        a.append(_block_ms(theirs, calls))
        time.sleep(pause)
        b.append(_block_ms(mine, calls))
    return statistics.median(a), statistics.median(b)


def _cases(B, K, ragged, rng):
    em = rng.standard_normal((B, T, K)).astype(np.float32)
    tags = rng.integers(0, K, size=(B, T))
    lengths = rng.integers(T // 5, T + 1, size=B) if ragged else np.full(B, T)
    mask = np.arange(T)[None, :] < lengths[:, None]

    crf = TorchCRF(K, batch_first=True)
    trans = crf.transitions.detach().numpy().astype(np.float64)
    start = crf.start_transitions.detach().numpy().astype(np.float64)
    end = crf.end_transitions.detach().numpy().astype(np.float64)
    t_em = torch.from_numpy(em)
    t_tags = torch.from_numpy(tags)
    t_mask = torch.from_numpy(mask)

    def torch_ll():
        with torch.no_grad():
            crf(t_em, t_tags, t_mask, reduction="sum")

    def torch_grad():
        e = t_em.clone().requires_grad_(True)
        crf.zero_grad()
        crf(e, t_tags, t_mask, reduction="sum").backward()

    def torch_decode():
        with torch.no_grad():
            crf.decode(t_em, t_mask)

    def ops(n_jobs):
        return {
            "ll": lambda: fastcrf.log_likelihood(em, tags, trans, start, end, lengths,
                                                 n_jobs=n_jobs),
            "ll+grad": lambda: fastcrf.log_likelihood(em, tags, trans, start, end, lengths,
                                                      n_jobs=n_jobs, return_grad=True),
            "decode": lambda: fastcrf.viterbi(em, trans, start, end, lengths, n_jobs=n_jobs),
        }

    # Same answers, or the timing means nothing.
    with torch.no_grad():
        ref = crf(t_em, t_tags, t_mask, reduction="none").numpy()
        ref_paths = crf.decode(t_em, t_mask)
    ll = fastcrf.log_likelihood(em, tags, trans, start, end, lengths)
    np.testing.assert_allclose(ll, ref, rtol=1e-4, atol=1e-3)
    paths, _ = fastcrf.viterbi(em, trans, start, end, lengths)
    agree = np.mean([list(p[:n]) == r for p, n, r in zip(paths, lengths, ref_paths)])
    assert agree > 0.95, f"decoded paths disagree with pytorch-crf ({agree:.0%} equal)"

    return {"ll": torch_ll, "ll+grad": torch_grad, "decode": torch_decode}, ops


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds per cell")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    rows = []
    header = (
        "| B | K | batch | threads | op | pytorch-crf ms | fastcrf ms | speed-up |\n"
        "|---:|---:|---|---:|---|---:|---:|---:|"
    )
    print(f"# T = {T}, float32; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, fastcrf {fastcrf.__version__}, "
          f"OpenMP {fastcrf.show_config(print_out=False)['openmp']}")
    print(header)
    for B in (32, 256):
        for K in (5, 20, 50):
            for ragged in (False, True):
                torch_ops, fast_ops = _cases(B, K, ragged, rng)
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    mine = fast_ops(threads)
                    for op in ("ll", "ll+grad", "decode"):
                        a, b = _compare(torch_ops[op], mine[op], args.repeats)
                        row = (f"| {B} | {K} | {'ragged' if ragged else 'full'} | {threads} "
                               f"| {op} | {a:.2f} | {b:.3f} | {a / b:.1f}x |")
                        rows.append(row)
                        print(row, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(header + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
