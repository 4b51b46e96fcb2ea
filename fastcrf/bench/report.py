"""What a benchmark suite prints and writes: a text table, a JSON file, a plot."""

import json

from .._atomic import atomic_file
from .suite import BUSY_SPREAD, run_key
from .workloads import describe

#: CPUs that other processes may keep busy at the start before the report warns.
BUSY_CPUS = 0.3

__all__ = ["format_report", "write_json", "write_plot", "write_plot_layers"]


def _seconds(stat):
    return f"{stat['median']:.3f} [{stat['min']:.3f}-{stat['max']:.3f}]"


def _pct(value):
    return "-" if value is None else f"{100 * value:.2f}"


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def _count(value):
    return "-" if value is None else f"{value:,.0f}"


def _table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append("  ".join(f"{str(c):<{w}}" if i < 3 else f"{str(c):>{w}}"
                             for i, (c, w) in enumerate(zip(row, widths))))
    return out


def format_report(results):
    """The suite's results as text: a header (workload, machine, versions, threads),
    one table row per run, the settings each tool ran, the skipped tools and any
    warning about a busy machine.

    Parameters
    ----------
    results : dict
        What :func:`fastcrf.bench.run_suite` returns (or its JSON file, loaded).

    Returns
    -------
    str
    """
    meta, summary = results["meta"], results["summary"]
    m = meta["machine"]
    first = next((r for rows in results["rounds"].values() for r in rows
                  if "error" not in r), None)
    sizes = ({} if first is None else
             {"n_train": first["n_train"], "n_train_tokens": first["n_train_tokens"],
              "n_test": first["n_test"]})
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [
        f"fastcrf bench: {describe(meta['workload'], **sizes)}",
        f"machine: {m.get('cpu', m['machine'])}, {m['cpus']} CPUs, Python {m['python']}"
        + (f", load average {m['load_at_start']}" if "load_at_start" in m else "")
        + (f", {m['busy_cpus_at_start']:.1f} CPUs busy at start"
           if "busy_cpus_at_start" in m else ""),
        f"versions: {versions}",
        f"threads: fastcrf at {' and '.join(sorted({str(e['threads']) for e in summary.values() if e['tool'] == 'fastcrf'}))}"
        f" (all = {m['fastcrf_threads']}); the peers are single-threaded",
        f"medians of {meta['rounds']} round(s), [min-max]; each run in its own process, "
        "the order reversed every other round; x = this run / fastcrf at all threads",
        "",
    ]
    header = ["algorithm", "tool", "threads", "fit s", "fit x", "tag s", "tag x",
              "peak RSS MB", "RSS x", "over data MB", "accuracy", "F1", "iter",
              "weights"]
    rows = []
    for run in results["runs"]:
        e = summary[run_key(run)]
        if "fit" not in e:
            rows.append([e["algorithm"], e["tool"], e["threads"], "failed"] + [""] * 10)
            continue
        rows.append([e["algorithm"], e["tool"], e["threads"], _seconds(e["fit"]),
                     _ratio(e["fit_ratio"]), _seconds(e["tag"]), _ratio(e["tag_ratio"]),
                     f"{e['peak_rss_mb']['median']:.0f}", _ratio(e["rss_ratio"]),
                     f"{e['rss_over_data_mb']['median']:.0f}", _pct(e["accuracy"]),
                     _pct(e["f1"]), _count(e["n_iter"]), _count(e["nonzero_weights"])])
    lines += _table(header, rows)
    lines.append("")
    lines.append("settings:")
    seen = set()
    for run in results["runs"]:
        key = (run["algorithm"], run["tool"])
        if key not in seen:
            seen.add(key)
            lines.append(f"  {run['algorithm']}/{run['tool']}: {run['settings']}")
    for s in results["skipped"]:
        where = f" ({s['algorithm']})" if "algorithm" in s else ""
        lines.append(f"skipped: {s['tool']}{where}: {s['why']}")
    for key, e in summary.items():
        for err in e.get("errors", []):
            lines.append(f"failed: {key}: {err}")
    busy = [key for key, e in summary.items() if e.get("busy")]
    if busy:
        lines.append(f"warning: the machine looks busy: fit times of {', '.join(busy)} "
                     f"spread by more than {100 * BUSY_SPREAD:.0f}% over the rounds; "
                     "rerun on a quiet machine before quoting the ratios")
    busy_cpus = m.get("busy_cpus_at_start")
    if busy_cpus is not None and busy_cpus > BUSY_CPUS:
        lines.append(f"warning: other processes kept {busy_cpus:.1f} of {m['cpus']} CPUs "
                     "busy when the suite started: they compete with the tools for the "
                     "cores")
    return "\n".join(lines)


def write_json(results, path):
    """Write the results (every round, the summary, the machine) to ``path``,
    atomically."""
    with atomic_file(path, "w", suffix=".json", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('--plot needs matplotlib: pip install "fastcrf[bench]"') from exc
    return plt


def _plain_log_axis(ax):
    """Label a log-scale y axis with plain numbers (0.3, 2, 40), not ``4 x 10^0``."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _pos: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)


def write_plot_layers(results, path):
    """A PNG chart of the layer workload: milliseconds per cell and tool (log scale),
    one panel per op, at the largest thread count."""
    plt = _pyplot()
    summary = results["summary"]
    tools = results["meta"]["tools"]
    top = max(int(k.split("/")[1]) for k in summary) if summary else 1
    ops = sorted({k.split("/")[2] for k in summary})
    fig, axes = plt.subplots(1, max(1, len(ops)), figsize=(6 * max(1, len(ops)), 4.5),
                             squeeze=False)
    width = 0.8 / max(1, len(tools))
    for ax, op in zip(axes[0], ops):
        keys = [k for k in summary if k.endswith(f"/{top}/{op}")]
        for j, tool in enumerate(tools):
            xs = [i + (j - (len(tools) - 1) / 2) * width for i in range(len(keys))]
            ms = [summary[k][tool]["median"] if tool in summary[k] else 0 for k in keys]
            ax.bar(xs, ms, width, label=tool)
        ax.set_yscale("log")
        _plain_log_axis(ax)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([k.split("/")[0] for k in keys], fontsize=8, rotation=30)
        ax.set_xlabel("B x T x K")
        ax.set_ylabel("ms (median)")
        ax.set_title(f"{op}, {top} thread(s)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(path, "wb", suffix=".png") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_plot(results, path):
    """A PNG chart of the runs: fit seconds (log scale) and accuracy / F1.

    Raises
    ------
    ImportError
        When matplotlib is not installed (``pip install "fastcrf[bench]"``).
    """
    plt = _pyplot()
    summary = results["summary"]
    keys = [run_key(r) for r in results["runs"] if "fit" in summary[run_key(r)]]
    labels = [f"{summary[k]['algorithm']}: {summary[k]['tool']} {summary[k]['threads']}t"
              for k in keys]
    fig, (ax_time, ax_acc) = plt.subplots(1, 2, figsize=(max(8, 0.9 * len(keys)), 5))
    colors = ["tab:blue" if summary[k]["tool"] == "fastcrf" else "tab:gray" for k in keys]
    med = [summary[k]["fit"]["median"] for k in keys]
    err = [[m - summary[k]["fit"]["min"] for k, m in zip(keys, med)],
           [summary[k]["fit"]["max"] - m for k, m in zip(keys, med)]]
    ax_time.bar(range(len(keys)), med, yerr=err, color=colors, capsize=3)
    ax_time.set_yscale("log")
    _plain_log_axis(ax_time)
    ax_time.set_ylabel("fit seconds (median, min-max)")
    ax_time.set_title("training time")
    width = 0.4
    acc = [100 * (summary[k]["accuracy"] or 0) for k in keys]
    f1 = [100 * (summary[k]["f1"] or 0) for k in keys]
    ax_acc.bar([i - width / 2 for i in range(len(keys))], acc, width, label="token accuracy",
               color=colors)
    if any(summary[k]["f1"] is not None for k in keys):
        ax_acc.bar([i + width / 2 for i in range(len(keys))], f1, width, label="chunk F1",
                   color=colors, alpha=0.5, hatch="//")
    low = min(v for v in acc + f1 if v > 0) if any(acc + f1) else 0
    ax_acc.set_ylim(max(0, low - 5), 100)
    ax_acc.set_ylabel("percent")
    # The legend stands where a title would, so no bar hides it and the axis stops at
    # 100 %.
    ax_acc.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8,
                  frameon=False)
    for ax in (ax_time, ax_acc):
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(labels, fontsize=7, rotation=35, ha="right")
    fig.suptitle(f"fastcrf bench: {describe(results['meta']['workload'])}", fontsize=9)
    fig.tight_layout()
    with atomic_file(path, "wb", suffix=".png") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
