"""SGD from a memory-mapped Dataset, a window of shuffled blocks at a time, against the
global shuffle of the same Dataset in memory (fastcrf._train.window): chunk F1 on
CoNLL-2000's test set.

    python bench/bench_sgd_window.py [CONLL2000_FOLDER] [--seeds 0 1 2] [--windows 4 16]
    python bench/bench_sgd_window.py --rss DATASET_FOLDER --mode window|global [--mb 256]

CoNLL-2000 is far below the default window (1 GiB), so the window is set to a
fraction of its encoded bytes: ``--windows 4`` makes four windows an epoch (each of
``BLOCKS_PER_WINDOW`` blocks).  Default estimator (asgd, 'adagrad_row'), CRF++
chunking template, ``random_state`` = seed.

``--rss``: one epoch on a dataset folder (``fastcrf encode``), memory-mapped, with
windows of ``--mb`` MB or the global shuffle; prints the peak anonymous memory
(``RssAnon``, sampled every 20 ms: the peak RSS also counts the pages of the mapped
file that were read, which the kernel can drop), the peak RSS and the seconds.  One
process per run.
"""

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

from fastcrf import CRF, Dataset
from fastcrf._dataset import training_set
from fastcrf._train import window
from fastcrf.io import load_conll
from fastcrf.metrics import chunk_scores
from fastcrf.templates import CHUNKING_TEMPLATE, Template


def main(folder, seeds, fractions):
    template = Template(CHUNKING_TEMPLATE)
    Xt, yt = load_conll(folder / "test.txt.gz")
    Xt = template.transform(Xt)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train"
        Dataset.from_conll(folder / "train.txt.gz", template).save(path)
        size = int(window.entry_bytes(training_set(Dataset.load(path), None, 0)[2]).sum())
        print(f"encoded training set: {size / 2**20:.1f} MB of entries, labels and offsets")
        default = window.WINDOW_BYTES
        for seed in seeds:
            runs = [("global shuffle (in memory)", None, False)]
            runs += [(f"{k} windows an epoch, {k * window.BLOCKS_PER_WINDOW} blocks (mapped)",
                      size // k + 1, True) for k in fractions]
            for label, window_bytes, mmap in runs:
                window.WINDOW_BYTES = default if window_bytes is None else window_bytes
                started = time.perf_counter()
                crf = CRF(random_state=seed).fit(Dataset.load(path, mmap=mmap))
                f1 = 100 * chunk_scores(yt, crf.predict(Xt)).f1
                print(f"seed {seed}  {label:<44} F1 {f1:6.2f}  "
                      f"{time.perf_counter() - started:6.1f} s", flush=True)
        window.WINDOW_BYTES = default


def memory(folder, mode, mb):
    window.WINDOW_BYTES = mb << 20 if mode == "window" else 1 << 60
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("RssAnon:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    started = time.perf_counter()
    CRF(random_state=0, max_iterations=1).fit(Dataset.load(folder))
    done.set()
    print(f"{mode}: peak RssAnon {peak[0] / 1024:.0f} MB, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
          f"{time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    here = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2000"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=here)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--windows", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--rss", type=Path, help="a dataset folder: measure memory")
    parser.add_argument("--mode", choices=["window", "global"], default="window")
    parser.add_argument("--mb", type=int, default=256)
    args = parser.parse_args()
    if args.rss is not None:
        memory(args.rss, args.mode, args.mb)
    else:
        main(args.folder, args.seeds, args.windows)
