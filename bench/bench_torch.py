"""fastcrf.torch.CRF against pytorch-crf inside a small training loop, in one process.

    pip install ".[bench]"     # torch, pytorch-crf (plus fastcrf itself)
    python bench/bench_torch.py [--repeats 5] [--out table.md]

A tagger (a linear layer or a one-layer BiLSTM over random token vectors) feeds a CRF
on random tags with ragged lengths.  Both tools start from identical weights.  For
every (encoder, K, threads) it times, the tools alternating in blocks as in
``bench_dense.py``:

- ``crf``:  the CRF alone, ``-crf(emissions, tags, mask, reduction='mean')`` and its
  backward to the emissions and the CRF parameters (emissions given);
- ``step``: a whole training step: zero_grad, encoder forward, CRF loss, backward
  through CRF and encoder, Adam step,

and prints a markdown table of median milliseconds and the ratio pytorch-crf / fastcrf.
Threads are set with ``torch.set_num_threads``, which the fastcrf layer follows.
"""

import argparse
import copy
import platform

import torch
from bench_dense import _compare  # alternating blocks, medians (same folder)
from torchcrf import CRF as TorchCRF

import fastcrf
from fastcrf.torch import CRF as FastCRF

B, T, D, H = 64, 50, 100, 128


class Tagger(torch.nn.Module):
    """Encoder (linear or BiLSTM) plus a CRF of the given class."""

    def __init__(self, crf_cls, encoder, K):
        super().__init__()
        if encoder == "bilstm":
            self.lstm = torch.nn.LSTM(D, H, batch_first=True, bidirectional=True)
            self.out = torch.nn.Linear(2 * H, K)
        else:
            self.lstm = None
            self.out = torch.nn.Linear(D, K)
        self.crf = crf_cls(K, batch_first=True)

    def loss(self, x, tags, mask):
        h = self.lstm(x)[0] if self.lstm is not None else x
        return -self.crf(self.out(h), tags, mask, reduction="mean")


def _cases(encoder, K, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g)
    tags = torch.randint(0, K, (B, T), generator=g)
    lengths = torch.randint(T // 5, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T)[None, :] < lengths[:, None]
    em = torch.randn(B, T, K, generator=g)

    torch.manual_seed(seed)
    theirs = Tagger(TorchCRF, encoder, K)
    mine = Tagger(FastCRF, encoder, K)
    mine.load_state_dict(copy.deepcopy(theirs.state_dict()))

    # Same loss and gradients, or the timing means nothing.
    for model in (theirs, mine):
        model.zero_grad()
        model.loss(x, tags, mask).backward()
    torch.testing.assert_close(mine.loss(x, tags, mask), theirs.loss(x, tags, mask),
                               rtol=1e-4, atol=1e-4)
    for (name, a), b in zip(mine.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5, msg=name)

    def crf_only(model):
        e = em.clone().requires_grad_(True)

        def run():
            model.crf.zero_grad(set_to_none=True)
            (-model.crf(e, tags, mask, reduction="mean")).backward()
        return run

    def step(model):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def run():
            opt.zero_grad(set_to_none=True)
            model.loss(x, tags, mask).backward()
            opt.step()
        return run

    return {"crf": (crf_only(theirs), crf_only(mine)), "step": (step(theirs), step(mine))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds per cell")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()

    header = (
        "| encoder | K | threads | part | pytorch-crf ms | fastcrf ms | speed-up |\n"
        "|---|---:|---:|---|---:|---:|---:|"
    )
    print(f"# B = {B}, T = {T} (ragged, lengths in [{T // 5}, {T}]), float32, Adam; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"fastcrf {fastcrf.__version__}, OpenMP "
          f"{fastcrf.show_config(print_out=False)['openmp']}")
    print(header)
    rows = []
    for encoder in ("linear", "bilstm"):
        for K in (5, 20, 50):
            ops = _cases(encoder, K, seed=K)
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for part in ("crf", "step"):
                    a, b = _compare(*ops[part], args.repeats)
                    row = (f"| {encoder} | {K} | {threads} | {part} | {a:.2f} | {b:.2f} "
                           f"| {a / b:.1f}x |")
                    rows.append(row)
                    print(row, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(header + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
