"""CoNLL-2000 with CRF++'s chunking template: ``fastcrf crf_learn`` / ``crf_test``
against CRF++'s own ``crf_learn`` / ``crf_test`` (from crfpy, when installed), the same
command lines, run side by side.

    python bench/bench_crfpp_cli.py [--data ../shared/data/conll2000] [-c 4.0]
                                    [-a CRF-L2] [--rounds 1] [--threads 2]

Each tool trains on train.txt and tags test.txt (CRF++ reads plain text: the .gz files
are decompressed into a temporary folder first); the tools alternate within a round and
their order is reversed every other round.  Printed per run: fit and tag wall time,
iterations, and conlleval's FB1 of each tool's own output; the table gives each tool's
fit and tag time over fastcrf's (the tag time includes loading the model).
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

from fastcrf.metrics import chunk_scores
from fastcrf.templates import CHUNKING_TEMPLATE


def _tools():
    tools = {"fastcrf": [sys.executable, "-m", "fastcrf"]}
    try:
        import CRFPP  # noqa: F401
        tools["CRF++"] = [sys.executable, "-c",
                          "import sys, CRFPP; tool = sys.argv[1]; "
                          "sys.exit(getattr(CRFPP, 'crfpp_' + tool)(sys.argv[1:]) or 0)"]
    except ImportError:
        print("CRF++ not installed (pip install crfpy): fastcrf only", file=sys.stderr)
    return tools


def _run(prefix, tool, argv, cwd):
    # fastcrf takes 'crf_learn' as its subcommand; the CRF++ wrapper 'learn' / 'test'.
    name = f"crf_{tool}" if prefix[-1] == "fastcrf" else tool
    t0 = time.perf_counter()
    proc = subprocess.run(prefix + [name] + argv, capture_output=True, text=True, cwd=cwd)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(prefix + [name] + argv)} failed:\n{proc.stderr}")
    return elapsed, proc.stdout


def _fb1(tagged):
    gold, pred, g, p = [], [], [], []
    for line in tagged.splitlines():
        if not line.strip():
            if g:
                gold.append(g)
                pred.append(p)
            g, p = [], []
            continue
        fields = line.split("\t")
        g.append(fields[-2])
        p.append(fields[-1])
    return 100 * chunk_scores(gold, pred).f1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2]
                                              / "shared" / "data" / "conll2000"))
    parser.add_argument("-c", default="4.0", help="CRF++'s C (its chunking example: 4.0)")
    parser.add_argument("-a", default="CRF-L2")
    parser.add_argument("-f", default="1")
    parser.add_argument("--threads", default=str(os.cpu_count() or 1))
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("train", "test"):
            with gzip.open(Path(args.data) / f"{name}.txt.gz", "rb") as src, \
                    open(Path(tmp) / f"{name}.txt", "wb") as dst:
                shutil.copyfileobj(src, dst)
        (Path(tmp) / "template").write_text(CHUNKING_TEMPLATE)
        tools = _tools()
        results = {name: {"fit": [], "tag": [], "fb1": [], "iters": []} for name in tools}
        for r in range(args.rounds):
            order = list(tools) if r % 2 == 0 else list(reversed(tools))
            for name in order:
                model = f"model-{name}"
                fit, log = _run(tools[name], "learn",
                                ["-c", args.c, "-a", args.a, "-f", args.f, "-p",
                                 args.threads, "template", "train.txt", model], tmp)
                tag, out = _run(tools[name], "test", ["-m", model, "test.txt"], tmp)
                res = results[name]
                res["fit"].append(fit)
                res["tag"].append(tag)
                res["fb1"].append(_fb1(out))
                res["iters"].append(len(re.findall(r"^iter=", log, re.M)))
                print(f"round {r + 1} {name}: fit {fit:.1f} s ({res['iters'][-1]} "
                      f"iterations), tag {tag:.2f} s, FB1 {res['fb1'][-1]:.2f}", flush=True)
        print(f"\nCoNLL-2000, CRF++ chunking template, -a {args.a} -c {args.c} -f {args.f} "
              f"-p {args.threads}, medians of {args.rounds} round(s):")
        base = results["fastcrf"]
        print(f"{'tool':<8} {'fit x':>7} {'iters':>6} {'tag x':>7} {'FB1':>7}")
        for name, res in results.items():
            fit_x = statistics.median(res["fit"]) / statistics.median(base["fit"])
            tag_x = statistics.median(res["tag"]) / statistics.median(base["tag"])
            print(f"{name:<8} {fit_x:>6.2f}x {statistics.median(res['iters']):>6.0f} "
                  f"{tag_x:>6.2f}x {statistics.median(res['fb1']):>7.2f}")

if __name__ == "__main__":
    main()
