"""Loading a large training set: python-crfsuite's ``Trainer.append`` against
fastcrf's streamed :class:`fastcrf.Dataset`, peak memory and seconds.

    python bench/bench_pycrfsuite_load.py [--data DIR] [--times 8 16] [--rounds 1]
                                          [--tools pycrfsuite fastcrf] [--max-gb 12]

CoNLL-2000's training set is repeated N times into a temporary file.  Each run is one
child process (its peak RSS from ``os.wait4``), the tools alternating:

- ``pycrfsuite``: the file read sentence by sentence, the CRF++ chunking template's
  attributes built in Python for that sentence (bench_conll.py's
  ``chunking_features``) and appended to a ``pycrfsuite.Trainer``, one sequence at a
  time: what loading its trainer costs before ``train`` (not run);
- ``fastcrf``: ``Dataset.from_conll(path, CHUNKING_TEMPLATE)``, the compiled reader.

``--max-gb`` caps each child's address space (``RLIMIT_AS``), so a run that would not
fit stops with a MemoryError instead of pressing on the machine; it is reported as
such.
"""

import argparse
import gzip
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_conll import DEFAULT_DATA, chunking_features  # noqa: E402

TOOLS = ("pycrfsuite", "fastcrf")


def sentences(path):
    """Sentences of an uncompressed column file, one at a time: lists of fields."""
    current = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cells = line.split()
            if cells:
                current.append(cells)
            elif current:
                yield current
                current = []
    if current:
        yield current


def child(tool, path):
    """Load ``path`` with ``tool``; print the seconds and the token count."""
    started = time.perf_counter()
    if tool == "pycrfsuite":
        import pycrfsuite

        trainer = pycrfsuite.Trainer(verbose=False)
        n = 0
        for sentence in sentences(path):
            trainer.append(chunking_features(sentence), [row[-1] for row in sentence])
            n += len(sentence)
    else:
        from fastcrf import Dataset
        from fastcrf.templates import CHUNKING_TEMPLATE

        n = Dataset.from_conll(path, CHUNKING_TEMPLATE).n_tokens
    print(f"{time.perf_counter() - started:.3f} {n}")


def run(tool, path, max_gb):
    """``(seconds, peak RSS MB)`` of one child, or ``(None, peak)`` when it ran out
    of its address-space cap."""
    def cap():
        limit = int(max_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.Popen([sys.executable, __file__, "--child", tool, path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=cap)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    rss = usage.ru_maxrss / 1024
    if os.waitstatus_to_exitcode(status):
        if "MemoryError" in out or "bad_alloc" in out:
            return None, rss
        raise RuntimeError(f"{tool} failed:\n{out[-2000:]}")
    return float(out.split()[-2]), rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder of train.txt.gz")
    ap.add_argument("--times", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    ap.add_argument("--max-gb", type=float, default=12.0,
                    help="address-space cap of each child, GiB")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    source = os.path.join(args.data, "train.txt.gz")
    if not os.path.exists(source):
        sys.exit(f"CoNLL-2000 not found in {args.data} (give --data)")
    with gzip.open(source, "rt", encoding="utf-8") as f:
        text = f.read().rstrip("\n") + "\n\n"
    n_tokens = sum(1 for line in text.splitlines() if line.strip())
    work = tempfile.mkdtemp(prefix="bench-load-")
    print(f"{'N':>3} {'tokens':>11} {'tool':<10} {'peak RSS MB':>11} {'load s':>8}")
    try:
        for times in args.times:
            path = os.path.join(work, "train.txt")
            with open(path, "w", encoding="utf-8") as f:
                for _ in range(times):
                    f.write(text)
            results = {t: [] for t in args.tools}
            for r in range(args.rounds):
                for tool in (args.tools if r % 2 == 0 else args.tools[::-1]):
                    results[tool].append(run(tool, path, args.max_gb))
            for tool in args.tools:
                rss = statistics.median(x[1] for x in results[tool])
                done = [x[0] for x in results[tool] if x[0] is not None]
                secs = f"{statistics.median(done):8.1f}" if done else \
                    f"  > {args.max_gb:g} GB: out of memory"
                print(f"{times:>3} {n_tokens * times:>11,} {tool:<10} {rss:>11,.0f} {secs}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
