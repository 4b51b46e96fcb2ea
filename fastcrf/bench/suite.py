"""The rounds of a benchmark suite and their summary.

A *run* is one (algorithm, tool, thread count) triple; a *round* runs every run once,
each in its own child process (:mod:`fastcrf.bench.worker`), in an order that is
reversed every other round so that a machine getting busier or quieter hits the tools
alike.  :func:`summarise` turns the rounds into medians, min-max spreads and ratios
against fastcrf at all threads for the same algorithm.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

from .tools import ALGORITHMS, TOOLS, available, settings_text

__all__ = ["plan", "run_suite", "summarise"]

#: Measurements summarised by median, min and max over the rounds.
TIMED = ("fit", "tag", "peak_rss_mb", "rss_over_data_mb")
#: Spread of a run's fit times over rounds ((max - min) / median) above which the
#: machine is reported as busy: the ratios are then less trustworthy.
BUSY_SPREAD = 0.25


def _all_threads():
    from .._parallel import effective_n_threads

    return effective_n_threads(None)


def plan(algorithms, tools, threads=("1", "all")):
    """The runs of a suite and the tools skipped, as ``(runs, skipped)``.

    Parameters
    ----------
    algorithms : sequence of str
        Keys of :data:`fastcrf.bench.tools.ALGORITHMS`.
    tools : sequence of str
        Keys of :data:`fastcrf.bench.tools.TOOLS`; fastcrf is always included.
    threads : sequence of {"1", "all"} or int
        fastcrf's thread counts (the peers are single-threaded).

    Returns
    -------
    runs : list of dict
        ``algorithm``, ``tool``, ``n_jobs`` (None: all threads), ``threads`` (the
        count) and ``settings`` (in words).
    skipped : list of dict
        ``tool`` and ``why``, for tools that are not installed, and ``algorithm``
        too for those without a trainer of that kind.
    """
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown or not algorithms:
        raise ValueError(f"algorithms must be among {sorted(ALGORITHMS)}, got "
                         f"{list(algorithms)!r}")
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        raise ValueError(f"tools must be among {sorted(TOOLS)}, got {bad!r}")
    tools = ["fastcrf"] + [t for t in dict.fromkeys(tools) if t != "fastcrf"]
    n_all = _all_threads()
    counts = []
    for t in threads:
        n = n_all if t in ("all", None) else int(t)
        if n < 1:
            raise ValueError(f"threads must be 'all' or >= 1, got {t!r}")
        if n not in counts:
            counts.append(n)
    runs, skipped = [], []
    ready = {}
    for name in tools:
        ok, info = available(TOOLS[name])
        ready[name] = ok
        if not ok:
            skipped.append({"tool": name, "why": f"not installed: {info}"})
    for algorithm in algorithms:
        for name in tools:
            tool = TOOLS[name]
            if not ready[name]:
                continue
            text = settings_text(algorithm, tool.family)
            if text is None:
                skipped.append({"tool": name, "algorithm": algorithm,
                                "why": f"no trainer that corresponds to {algorithm!r}"})
                continue
            for n in counts if tool.threaded else [1]:
                runs.append({"algorithm": algorithm, "tool": name,
                             "n_jobs": None if (tool.threaded and n == n_all) else n,
                             "threads": n, "settings": text})
    return runs, skipped


def run_key(run):
    """The label of a run in tables and JSON, e.g. ``"default/fastcrf/2t"``."""
    return f"{run['algorithm']}/{run['tool']}/{run['threads']}t"


def child_cwd():
    """The folder the children run in: the one that holds the fastcrf package this
    process imported.  ``python -m`` puts its working folder first on ``sys.path``, so
    from a source checkout (say) a child would otherwise import the uncompiled
    ``fastcrf`` there instead of the installed one.  Every path a child reads is
    absolute, so nothing else depends on the folder."""
    import fastcrf

    return os.path.dirname(os.path.dirname(os.path.abspath(fastcrf.__file__)))


def _run_child(spec, timeout):
    cmd = [sys.executable, "-m", "fastcrf.bench.worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=child_cwd())
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": err}
    return json.loads(lines[-1])


def _machine():
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "fastcrf_threads": _all_threads()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_at_start"] = round(os.getloadavg()[0], 2)
    busy = _busy_cpus()
    if busy is not None:
        info["busy_cpus_at_start"] = round(busy, 2)
    return info


def _cpu_times():
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values), idle


def _busy_cpus(seconds=0.5):
    """How many CPUs other processes kept busy over ``seconds`` before the suite
    starts (Linux; None elsewhere).  The load average lags by a minute (it still
    counts a benchmark that just ended); this is the machine now."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(seconds)
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    if total <= 0:
        return None
    return (os.cpu_count() or 1) * (1.0 - (idle1 - idle0) / total)


def run_suite(workload, algorithms=("default", "lbfgs"), tools=tuple(TOOLS), rounds=3,
              threads=("1", "all"), timeout=None, progress=None):
    """Run a benchmark suite and return its results.

    Parameters
    ----------
    workload : dict
        From :func:`fastcrf.bench.workloads.synthetic_workload` or
        :func:`~fastcrf.bench.workloads.column_workload`.
    algorithms : sequence of str, default=("default", "lbfgs")
        Keys of :data:`fastcrf.bench.tools.ALGORITHMS`.
    tools : sequence of str, default=all known tools
        Tools to compare; those not installed are listed as skipped.
    rounds : int, default=3
    threads : sequence, default=("1", "all")
        fastcrf's thread counts.
    timeout : float, optional
        Seconds one child may run.
    progress : callable, optional
        ``progress(text)`` receives one line per finished child.

    Returns
    -------
    dict
        ``meta`` (machine, versions, workload), ``runs``, ``skipped``, ``rounds``
        (per run key, one dict per round) and ``summary`` (:func:`summarise`).
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    runs, skipped = plan(list(algorithms), list(tools), threads)
    meta = {"workload": workload, "machine": _machine(), "versions": {},
            "rounds": rounds, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in dict.fromkeys(r["tool"] for r in runs):
        meta["versions"][name] = available(TOOLS[name])[1]
    results = {run_key(r): [] for r in runs}
    for k in range(rounds):
        for run in runs if k % 2 == 0 else list(reversed(runs)):
            spec = {"workload": workload, "tool": run["tool"],
                    "algorithm": run["algorithm"], "n_jobs": run["n_jobs"]}
            row = _run_child(spec, timeout)
            row["round"] = k + 1
            results[run_key(run)].append(row)
            if progress is not None:
                progress(_progress_line(run, row))
    out = {"meta": meta, "runs": runs, "skipped": skipped, "rounds": results}
    out["summary"] = summarise(out)
    return out


def _progress_line(run, row):
    head = f"round {row['round']}: {run_key(run):34s}"
    if "error" in row:
        return f"{head} failed: {row['error']}"
    f1 = "" if row.get("f1") is None else f"  F1 {100 * row['f1']:.2f}"
    return (f"{head} fit {row['fit']:8.3f}s  tag {row['tag']:7.3f}s  "
            f"rss {row['peak_rss_mb']:6.0f} MB  acc {100 * row['accuracy']:.2f}{f1}")


def summarise(results):
    """Medians, min-max and ratios of a suite's rounds.

    Returns
    -------
    dict
        Per run key: for each of :data:`TIMED` ``{median, min, max}``, the accuracy
        figures (median over rounds), ``fit_ratio`` / ``tag_ratio`` / ``rss_ratio``
        (this run over fastcrf at all threads for the same algorithm: above 1 means
        slower or larger than fastcrf), ``failed`` (rounds that failed) and ``busy``
        (fit times spread over rounds by more than :data:`BUSY_SPREAD`).
    """
    summary = {}
    for run in results["runs"]:
        key = run_key(run)
        rows = [r for r in results["rounds"][key] if "error" not in r]
        entry = {"algorithm": run["algorithm"], "tool": run["tool"],
                 "threads": run["threads"], "settings": run["settings"],
                 "failed": len(results["rounds"][key]) - len(rows)}
        if rows:
            for name in TIMED:
                values = [r[name] for r in rows]
                entry[name] = {"median": statistics.median(values), "min": min(values),
                               "max": max(values)}
            for name in ("accuracy", "f1", "precision", "recall", "n_iter",
                         "nonzero_weights"):
                values = [r.get(name) for r in rows]
                entry[name] = (statistics.median(values)
                               if all(v is not None for v in values) else None)
            fit = entry["fit"]
            entry["busy"] = (len(rows) > 1 and fit["median"] > 0
                             and (fit["max"] - fit["min"]) / fit["median"] > BUSY_SPREAD)
            entry["errors"] = sorted({r["error"] for r in results["rounds"][key]
                                      if "error" in r})
        else:
            entry["errors"] = sorted({r["error"] for r in results["rounds"][key]})
        summary[key] = entry
    n_all = results["meta"]["machine"]["fastcrf_threads"]
    for entry in summary.values():
        base = summary.get(f"{entry['algorithm']}/fastcrf/{n_all}t")
        for name, ratio in (("fit", "fit_ratio"), ("tag", "tag_ratio"),
                            ("peak_rss_mb", "rss_ratio")):
            ok = base is not None and name in base and name in entry \
                and base[name]["median"] > 0
            entry[ratio] = entry[name]["median"] / base[name]["median"] if ok else None
    return summary
