"""The layer workload of ``fastcrf bench --layers``: the dense numpy API and the torch
layer against pytorch-crf on given emissions, over a grid of (B, T, K).

Each tool runs in its own child process (``python -m fastcrf.bench.layers SPEC``), one
per round, the tools' order reversed every other round; a child times every cell of
the grid at every thread count:

- ``ll+grad``: the summed log-likelihood of given tags and its gradient (pytorch-crf:
  ``forward(reduction="sum")`` then ``backward``);
- ``decode``: the best path of every sequence (pytorch-crf: ``decode``).

All tools get the same float32 emissions, tags, ragged lengths and scores (seeded by
the cell), and each child reports the log-likelihood it computed and a checksum of its
paths, so the summary can say whether the tools agree: a timing of a wrong answer means
nothing.
"""

import json
import statistics
import subprocess
import sys
import time

__all__ = ["LAYER_TOOLS", "format_layers", "parse_grid", "run_layers"]

#: tool -> modules it needs.
LAYER_TOOLS = {"fastcrf": ("fastcrf",), "fastcrf-torch": ("torch", "fastcrf.torch"),
               "pytorch-crf": ("torch", "torchcrf")}
OPS = ("ll+grad", "decode")
DEFAULT_GRID = ((32, 50, 5), (32, 50, 20), (256, 50, 5), (256, 50, 20), (256, 50, 50))


def parse_grid(text):
    """``"32x50x5,256x50x20"`` -> ``[(32, 50, 5), (256, 50, 20)]`` (B x T x K)."""
    cells = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        try:
            B, T, K = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"--grid cells are BxTxK, e.g. 32x50x5; got {item!r}") from None
        if min(B, T, K) < 1 or K < 2:
            raise ValueError(f"--grid cell {item!r}: B, T must be >= 1 and K >= 2")
        cells.append((B, T, K))
    if not cells:
        raise ValueError("--grid lists no cell")
    return cells


def _inputs(B, T, K):
    import numpy as np

    rng = np.random.default_rng(1000003 * B + 1009 * T + K)
    em = rng.standard_normal((B, T, K)).astype(np.float32)
    tags = rng.integers(0, K, size=(B, T))
    lengths = rng.integers(max(1, T // 5), T + 1, size=B)
    lengths[0] = T
    trans = 0.1 * rng.standard_normal((K, K))
    start = 0.1 * rng.standard_normal(K)
    end = 0.1 * rng.standard_normal(K)
    return em, tags, lengths, trans, start, end


def _path_checksum(paths, lengths):
    return float(sum(sum((t + 1) * int(v) for t, v in enumerate(p[:n]))
                     for p, n in zip(paths, lengths)))


def _ops_numpy(cell, threads):
    import fastcrf

    em, tags, lengths, trans, start, end = _inputs(*cell)

    def ll_grad():
        ll, _ = fastcrf.log_likelihood(em, tags, trans, start, end, lengths, n_jobs=threads,
                                       return_grad=True)
        return float(ll.sum())

    def decode():
        paths, _ = fastcrf.viterbi(em, trans, start, end, lengths, n_jobs=threads)
        return _path_checksum(paths.tolist(), lengths.tolist())

    return {"ll+grad": ll_grad, "decode": decode}


def _ops_torch(cell, threads, cls):
    import torch

    torch.set_num_threads(threads)
    em, tags, lengths, trans, start, end = _inputs(*cell)
    K = cell[2]
    crf = cls(K, batch_first=True)
    with torch.no_grad():
        crf.transitions.copy_(torch.from_numpy(trans))
        crf.start_transitions.copy_(torch.from_numpy(start))
        crf.end_transitions.copy_(torch.from_numpy(end))
    t_em = torch.from_numpy(em)
    t_tags = torch.from_numpy(tags)
    mask = torch.arange(cell[1])[None, :] < torch.from_numpy(lengths)[:, None]

    def ll_grad():
        e = t_em.clone().requires_grad_(True)
        crf.zero_grad(set_to_none=True)
        ll = crf(e, t_tags, mask, reduction="sum")
        ll.backward()
        return float(ll.detach())

    def decode():
        with torch.no_grad():
            paths = crf.decode(t_em, mask)
        return _path_checksum(paths, lengths.tolist())

    return {"ll+grad": ll_grad, "decode": decode}


def _ops(tool, cell, threads):
    if tool == "fastcrf":
        return _ops_numpy(cell, threads)
    if tool == "fastcrf-torch":
        from ..torch import CRF
    else:
        from torchcrf import CRF
    return _ops_torch(cell, threads, CRF)


def _time_ms(fn, calls):
    value = fn()  # untimed: first-call set-up, and the answer to report
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), value


def child(spec):
    """Time every cell and thread count for one tool; returns a list of dicts."""
    rows = []
    for cell in spec["grid"]:
        for threads in spec["threads"]:
            for op, fn in _ops(spec["tool"], tuple(cell), threads).items():
                ms, value = _time_ms(fn, spec["calls"])
                rows.append({"cell": list(cell), "threads": threads, "op": op, "ms": ms,
                             "value": value})
    return rows


def available(tool):
    """``(True, None)`` when ``tool``'s modules import, else ``(False, why)``."""
    import importlib

    for module in LAYER_TOOLS[tool]:
        try:
            importlib.import_module(module)
        except Exception as exc:
            return False, f"{module} does not import ({type(exc).__name__}: {exc})"
    return True, None


def run_layers(grid=DEFAULT_GRID, tools=tuple(LAYER_TOOLS), rounds=3, threads=(1, None),
               calls=5, timeout=None, progress=None):
    """Run the layer workload; returns ``meta``, ``skipped``, ``rounds`` and ``summary``.

    Parameters
    ----------
    grid : sequence of (B, T, K)
    tools : sequence of str
        Keys of :data:`LAYER_TOOLS` (fastcrf's numpy API is always included).
    rounds : int, default=3
    threads : sequence of int or None
        Thread counts (None: all threads).
    calls : int, default=5
        Timed calls per cell and op (their median is the round's figure).
    timeout : float, optional
    progress : callable, optional

    Returns
    -------
    dict
        ``summary`` maps ``"BxTxK/threads/op"`` to per tool ``{median, min, max}`` ms,
        ``ratio`` (ms over fastcrf's) and ``agrees`` (its answer matches fastcrf's).
    """
    from .._parallel import effective_n_threads
    from .suite import _machine, child_cwd

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    bad = [t for t in tools if t not in LAYER_TOOLS]
    if bad:
        raise ValueError(f"tools must be among {sorted(LAYER_TOOLS)}, got {bad!r}")
    counts = sorted({effective_n_threads(None) if t in (None, "all") else int(t)
                     for t in threads})
    tools = ["fastcrf"] + [t for t in dict.fromkeys(tools) if t != "fastcrf"]
    skipped, ready = [], []
    for tool in tools:
        ok, why = available(tool)
        (ready.append(tool) if ok else skipped.append({"tool": tool, "why": why}))
    spec = {"grid": [list(c) for c in grid], "threads": counts, "calls": int(calls)}
    results = {t: [] for t in ready}
    for k in range(rounds):
        for tool in ready if k % 2 == 0 else list(reversed(ready)):
            cmd = [sys.executable, "-m", "fastcrf.bench.layers",
                   json.dumps({**spec, "tool": tool})]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                      cwd=child_cwd())
                ok = proc.returncode == 0 and proc.stdout.strip()
                rows = json.loads(proc.stdout.strip().splitlines()[-1]) if ok else None
                err = None if ok else (proc.stderr.strip().splitlines() or ["failed"])[-1]
            except subprocess.TimeoutExpired:
                rows, err = None, f"timed out after {timeout} s"
            results[tool].append({"round": k + 1, "rows": rows, "error": err})
            if progress is not None:
                progress(f"round {k + 1}: {tool}: " + ("done" if err is None else err))
    out = {"meta": {"workload": {"kind": "layers", **spec}, "machine": _machine(),
                    "rounds": rounds, "tools": ready},
           "skipped": skipped, "rounds": results}
    out["summary"] = _summarise(out)
    return out


def _key(row):
    B, T, K = row["cell"]
    return f"{B}x{T}x{K}/{row['threads']}/{row['op']}"


def _summarise(results):
    per = {}
    for tool, rounds in results["rounds"].items():
        for r in rounds:
            for row in r["rows"] or []:
                per.setdefault(_key(row), {}).setdefault(tool, []).append(row)
    summary = {}
    for key, tools in per.items():
        entry = {}
        base = tools.get("fastcrf")
        for tool, rows in tools.items():
            ms = [r["ms"] for r in rows]
            entry[tool] = {"median": statistics.median(ms), "min": min(ms), "max": max(ms),
                           "value": rows[0]["value"]}
        for tool, e in entry.items():
            b = entry.get("fastcrf")
            e["ratio"] = e["median"] / b["median"] if b and b["median"] > 0 else None
            if base is None:
                e["agrees"] = None
            elif key.endswith("decode"):
                # Ties between equal-scoring paths may break differently: a checksum
                # within 1% still means the same paths nearly everywhere.
                e["agrees"] = abs(e["value"] - b["value"]) <= 0.01 * abs(b["value"])
            else:
                e["agrees"] = abs(e["value"] - b["value"]) <= 1e-4 * abs(b["value"]) + 1e-2
        summary[key] = entry
    return summary


def format_layers(results):
    """The layer workload's results as text."""
    m = results["meta"]["machine"]
    tools = results["meta"]["tools"]
    lines = [f"fastcrf bench --layers: float32 emissions, ragged lengths; {m.get('cpu', m['machine'])}, "
             f"{m['cpus']} CPUs, Python {m['python']}",
             f"medians of {results['meta']['rounds']} round(s) of the median of "
             f"{results['meta']['workload']['calls']} calls, in ms; x = tool / fastcrf "
             "(numpy API); each tool in its own process, the order reversed every other "
             "round", ""]
    both = "fastcrf-torch" in tools and "pytorch-crf" in tools
    header = ["B x T x K", "threads", "op"] + [f"{t} ms" for t in tools] + \
        [f"{t} x" for t in tools if t != "fastcrf"] + \
        (["pytorch-crf / fastcrf-torch"] if both else []) + ["agree"]
    rows = []
    for key, entry in results["summary"].items():
        cell, threads, op = key.split("/")
        row = [cell, threads, op]
        row += [f"{entry[t]['median']:.3f}" if t in entry else "-" for t in tools]
        row += [f"{entry[t]['ratio']:.2f}x" if t in entry and entry[t]["ratio"] else "-"
                for t in tools if t != "fastcrf"]
        if both:
            a, b = entry.get("pytorch-crf"), entry.get("fastcrf-torch")
            row.append(f"{a['median'] / b['median']:.2f}x" if a and b and b["median"] > 0
                       else "-")
        row.append("yes" if all(e.get("agrees") for e in entry.values()) else "NO")
        rows.append(row)
    from .report import _table

    lines += _table(header, rows)
    for s in results["skipped"]:
        lines.append(f"skipped: {s['tool']}: not installed: {s['why']}")
    for tool, rounds in results["rounds"].items():
        for r in rounds:
            if r["error"]:
                lines.append(f"failed: {tool} round {r['round']}: {r['error']}")
    return "\n".join(lines)


def main(argv=None):
    """Entry point of a child process: print the rows of one tool as one JSON line."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m fastcrf.bench.layers SPEC_JSON")
    print(json.dumps(child(json.loads(argv[0]))), flush=True)


if __name__ == "__main__":
    main()
