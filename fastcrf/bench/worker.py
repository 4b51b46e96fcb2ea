"""One measured run in a child process: ``python -m fastcrf.bench.worker SPEC``.

``SPEC`` is a JSON object: ``workload`` (:mod:`fastcrf.bench.workloads`), ``tool`` (a
key of :data:`fastcrf.bench.tools.TOOLS`), ``algorithm`` (a key of
:data:`~fastcrf.bench.tools.ALGORITHMS`) and ``n_jobs``.  The child builds the data,
imports the tool, then trains and tags; it prints one JSON line of measurements.  The
scores are computed here from the tool's own predictions.
"""

import json
import resource
import sys

from .tools import TOOLS
from .workloads import load


def _peak_rss_mb():
    # Linux reports KiB, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _is_chunk_scheme(labels):
    return any(len(label) > 2 and label[1] == "-" and label[0] in "BIES"
               for label in labels)


def scores(y_true, y_pred):
    """Token accuracy and, for chunk labels (``B-X``, ``I-X``, ...), conlleval's
    chunk precision, recall and F1: a dict of plain numbers (fractions)."""
    from ..metrics import chunk_scores

    if len(y_true) != len(y_pred) or any(len(a) != len(b) for a, b in zip(y_true, y_pred)):
        raise ValueError("the tool returned predictions of the wrong shape")
    n_tokens = sum(map(len, y_true))
    n_correct = sum(a == b for s, p in zip(y_true, y_pred) for a, b in zip(s, p))
    out = {"n_tokens": n_tokens, "n_correct": n_correct,
           "accuracy": n_correct / n_tokens if n_tokens else None,
           "f1": None, "precision": None, "recall": None}
    if _is_chunk_scheme({label for s in y_true for label in s}):
        c = chunk_scores(y_true, [list(map(str, p)) for p in y_pred])
        out.update(f1=c.f1, precision=c.precision, recall=c.recall,
                   n_gold_chunks=c.n_true, n_found_chunks=c.n_pred,
                   n_correct_chunks=c.n_correct)
    return out


def run(spec):
    """Measure one run described by ``spec``; returns the measurements as a dict."""
    tool = TOOLS[spec["tool"]]
    X_train, y_train, X_test, y_test = load(spec["workload"])
    for module in tool.modules:
        __import__(module)
    # After the data and the tool's modules: "RSS over data" is training and tagging.
    base = _peak_rss_mb()
    fit_s, tag_s, pred, extra = tool.fit_tag(spec["algorithm"], X_train, y_train, X_test,
                                             spec.get("n_jobs"))
    peak = _peak_rss_mb()
    pred = [list(p) for p in pred]
    return {"fit": fit_s, "tag": tag_s, "peak_rss_mb": peak, "rss_over_data_mb": peak - base,
            "n_train": len(X_train), "n_train_tokens": sum(map(len, X_train)),
            "n_test": len(X_test), **scores(y_test, pred), **extra}


def main(argv=None):
    """Entry point of the child process."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m fastcrf.bench.worker SPEC_JSON")
    print(json.dumps(run(json.loads(argv[0]))), flush=True)


if __name__ == "__main__":
    main()
