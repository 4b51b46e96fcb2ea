"""Wapiti's command line: ``fastcrf wapiti train | label | dump`` (installed also as
the console script ``fastcrf-wapiti``).

They take Wapiti's modes, switches and defaults (Wapiti 1.5's ``options.c``)::

    fastcrf wapiti train [-p PATTERNS] [-a l-bfgs|sgd-l1] [-1 RHO1] [-2 RHO2]
                         [-i MAXITER] [-o OBJWIN] [-w STOPWIN] [-e STOPEPS]
                         [-d DEVEL] [-t NTHREAD] [-c] [-T crf] [-m MODEL] [INPUT] MODEL
    fastcrf wapiti label -m MODEL [-l] [-c] [-s] [-p] [-n N] [INPUT] [OUTPUT]
    fastcrf wapiti dump [--prec P] [--all] MODEL [OUTPUT]

How Wapiti's training maps onto fastcrf's:

- Wapiti minimises ``sum_i -log p(y_i|x_i) + rho1 ||w||_1 + rho2 / 2 ||w||^2``
  (``gradient.c``); fastcrf's objective is ``-LL + c1 ||w||_1 + c2 ||w||^2``, so
  ``c1 = rho1`` and ``c2 = rho2 / 2``.  Defaults as Wapiti's: ``rho1 = 0.5``,
  ``rho2 = 0.0001``.
- ``l-bfgs`` (the default) is fastcrf's 'lbfgs', OWL-QN when ``rho1 > 0`` (as
  Wapiti), with ``--histsz`` memories (default 5) and ``--maxls`` line-search steps
  (default 40).  It stops as Wapiti's: when ``||g|| / max(1, ||w||) <= 1e-5``, when
  the objective changed by less than ``-e`` (relative) over the last ``-o``
  iterations, after ``-i`` iterations (0: no limit), or by the error window below.
- ``sgd-l1`` is fastcrf's 'asgd' with the L1 penalty ``c1 = rho1`` applied by the
  cumulative penalty (Tsuruoka et al. 2009, as Wapiti's ``sgdl1.c``), no L2 term
  (Wapiti's SGD ignores ``rho2``); fastcrf calibrates its own step size, so
  Wapiti's ``--eta0`` / ``--alpha`` are not taken.  ``bcd`` and ``rprop`` are not
  implemented: an error says so.
- The error window (``progress.c``): after each iteration the token error rate is
  measured on ``-d``'s data (or the training data); training stops once the last
  ``-w`` rates lie within ``-e`` percentage points (``-w 0``: never).
- The model has Wapiti's weights: one per (unigram observation, label), one per
  (bigram observation, label pair), plain label transitions only from a bigram
  pattern without a command, no start/end scores.  ``-c`` (compact) drops the
  observations whose weights are all zero, as Wapiti does.

The model file is fastcrf's (:mod:`fastcrf._persist`) with the pattern file in its
metadata, so ``label -m MODEL`` needs nothing else.  ``label``, ``dump`` and
``train -m`` also read the CRF model files Wapiti itself writes
(:func:`read_wapiti_model`), so Wapiti users' models tag as they are.
"""

import os
import sys
import time

from . import cli

__all__ = ["main"]

#: Wapiti's ``-a`` values -> fastcrf's algorithm.
ALGORITHMS = {"l-bfgs": "lbfgs", "sgd-l1": "asgd"}
#: Wapiti's algorithms fastcrf does not run.
NOT_IMPLEMENTED = ("bcd", "rprop", "rprop+", "rprop-")
#: Wapiti's L-BFGS gradient test: ``||g|| / max(1, ||w||) <= GRADIENT_EPS``.
GRADIENT_EPS = 1e-5
#: Effectively no iteration limit (Wapiti's ``-i 0``).
UNLIMITED = 2 ** 31 - 1

_META = "wapiti"
_META_VERSION = 1
_STATE, _EDGE = "U", "B"   # attribute-name prefixes (fastcrf._wapiti_patterns)

_TRAIN_EPILOG = """\
Wapiti's objective -LL + rho1 |w|_1 + rho2/2 ||w||^2 is fastcrf's with c1 = rho1,
c2 = rho2/2.  -a l-bfgs (default) is fastcrf's L-BFGS (OWL-QN when rho1 > 0);
-a sgd-l1 is fastcrf's averaged SGD with the L1 cumulative penalty (rho2 unused).
Training stops when ||g||/max(1,||w||) <= 1e-5 (l-bfgs), when the objective moved
less than -e (relative) over -o iterations (l-bfgs), when the token error rate on
-d (or the training data) stayed within -e points over -w iterations, or after -i
iterations.  Patterns: Wapiti's u/b/* lines with %x, %t and %m commands (upper
case: lower-cased result) and @ (absolute) / * (indirect) offsets.  Without -p each
field is an observation and must start with u, b or *.  The model is a fastcrf
file holding the patterns."""

_LABEL_EPILOG = """\
Output as Wapiti's: each input line, a tab, the predicted label (-l: the label
only); a blank line after each sequence.  -s adds a line '# n score' before each
labelling and '<tab>label/score' to each token: raw (unnormalised) Viterbi scores,
or with -p posterior probabilities (the sequence's: the product of its labels').
-p decodes with the token posteriors (each token's most probable label); -n N
prints the N best labellings, each followed by a blank line.  -c reads the last
column as the reference label and reports token/sequence error rates and per-label
precision, recall and F1 on standard error.  MODEL is a model written by 'fastcrf
wapiti train' or a CRF model file written by Wapiti itself."""


# --------------------------------------------------------------------------- #
# Registration (called by fastcrf.cli)                                          #
# --------------------------------------------------------------------------- #


def add_command(sub):
    """Add the ``wapiti`` parser (with its ``train``, ``label`` and ``dump`` modes)
    to ``fastcrf``'s subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        ``fastcrf``'s subcommand registry.
    """
    import argparse

    top = sub.add_parser("wapiti", help="Wapiti's command line: train, label, dump",
                         description="Train, label and dump as Wapiti does, with its "
                                     "modes and switches.")
    modes = top.add_subparsers(dest="wapiti_mode", metavar="MODE")
    top.set_defaults(run=_cmd_none)
    raw = argparse.RawDescriptionHelpFormatter

    p = modes.add_parser("train", help="pattern file + training data -> model",
                         description="Train a CRF as 'wapiti train' does.",
                         epilog=_TRAIN_EPILOG, formatter_class=raw)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="[INPUT] MODEL: training data (default: - for stdin), model to "
                        "write")
    p.add_argument("-T", "--type", default="crf", metavar="STRING",
                   help="type of model: crf (maxent and memm are not implemented)")
    p.add_argument("-a", "--algo", default="l-bfgs", metavar="STRING",
                   help="training algorithm: l-bfgs (default) or sgd-l1")
    p.add_argument("-p", "--pattern", metavar="FILE",
                   help="patterns for extracting features")
    p.add_argument("-m", "--model", metavar="FILE",
                   help="model to start from (fastcrf's or Wapiti's; the data may add "
                        "labels)")
    p.add_argument("-d", "--devel", metavar="FILE", help="development data set")
    p.add_argument("-c", "--compact", action="store_true",
                   help="drop observations whose weights are all zero")
    p.add_argument("-t", "--nthread", type=int, default=1, metavar="INT",
                   help="number of worker threads (default 1)")
    p.add_argument("-s", "--sparse", action="store_true",
                   help="accepted for compatibility (fastcrf's forward-backward is "
                        "always exact)")
    p.add_argument("-i", "--maxiter", type=int, default=0, metavar="INT",
                   help="maximum number of iterations (default 0: no limit)")
    p.add_argument("-1", "--rho1", type=float, default=0.5, metavar="FLOAT",
                   help="L1 penalty (default 0.5)")
    p.add_argument("-2", "--rho2", type=float, default=0.0001, metavar="FLOAT",
                   help="L2 penalty rho2 (penalty rho2/2 ||w||^2; default 0.0001)")
    p.add_argument("-o", "--objwin", type=int, default=5, metavar="INT",
                   help="objective window size (default 5)")
    p.add_argument("-w", "--stopwin", type=int, default=5, metavar="INT",
                   help="error-rate window size (default 5; 0: off)")
    p.add_argument("-e", "--stopeps", type=float, default=0.02, metavar="FLOAT",
                   help="stop epsilon (default 0.02)")
    p.add_argument("--histsz", type=int, default=5, metavar="INT",
                   help="(l-bfgs) history size (default 5)")
    p.add_argument("--maxls", type=int, default=40, metavar="INT",
                   help="(l-bfgs) maximum line-search steps (default 40)")
    p.set_defaults(run=_cmd_train)

    p = modes.add_parser("label", help="label data with a model",
                         description="Label data as 'wapiti label' does.",
                         epilog=_LABEL_EPILOG, formatter_class=raw)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="[INPUT] [OUTPUT]: data to label (default: - for stdin), where "
                        "to write (default or -: stdout)")
    p.add_argument("-m", "--model", metavar="FILE",
                   help="model file to load (required): fastcrf's or Wapiti's")
    p.add_argument("-l", "--label", action="store_true", help="output only labels")
    p.add_argument("-c", "--check", action="store_true",
                   help="input is already labelled: report error rates")
    p.add_argument("-s", "--score", action="store_true", help="add scores to output")
    p.add_argument("-p", "--post", action="store_true", help="label using posteriors")
    p.add_argument("-n", "--nbest", type=int, default=1, metavar="INT",
                   help="output the N best labellings (default 1)")
    p.set_defaults(run=_cmd_label)

    p = modes.add_parser("dump", help="write a model's weights as text",
                         description="Dump a model as 'wapiti dump' does: one line per "
                                     "non-zero weight, 'obs<tab>#<tab>label<tab>w' "
                                     "(unigram) or 'obs<tab>prev<tab>label<tab>w' "
                                     "(bigram), a blank line after each observation.")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="MODEL [OUTPUT]: model to read, where to write (default or -: "
                        "stdout)")
    p.add_argument("--prec", type=int, default=5, metavar="INT",
                   help="digits after the decimal point (default 5)")
    p.add_argument("--all", action="store_true", help="also output zero weights")
    p.set_defaults(run=_cmd_dump)


def _cmd_none(args):
    raise cli.CommandError("wapiti needs a mode: train, label or dump (see 'fastcrf "
                           "wapiti --help')")


def main(argv=None):
    """The ``fastcrf-wapiti`` console script: ``fastcrf wapiti ARGS``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, as :func:`fastcrf.cli.main`'s.
    """
    return cli.run_as("wapiti", argv)


# --------------------------------------------------------------------------- #
# Data                                                                          #
# --------------------------------------------------------------------------- #


def read_data(path):
    """``(sequences, encoding)`` of a Wapiti data file (``-``: standard input).

    A sequence is a list of ``(line, fields)``: the line as read (its end of line
    removed) and its whitespace-separated fields; blank lines separate sequences.
    A gzip file is decompressed.  UTF-8 (without a leading byte-order mark) when the
    file is valid UTF-8, else Latin-1 (byte for byte, as Wapiti never decodes its
    input).
    """
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read() if stream is not None else sys.stdin.read().encode()
    else:
        if not os.path.isfile(path):
            raise cli.CommandError(f"no such file or directory: {path!r}")
        with open(path, "rb") as f:
            data = f.read()
    if data[:2] == b"\x1f\x8b":   # gzip, as fastcrf's other commands read it
        import gzip
        import zlib

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:   # cut or corrupted
            raise cli.CommandError(f"{cli._name(path)}: not a readable gzip file "
                                   f"({exc})") from None
    try:
        # A byte-order mark (Windows editors) is no part of the first token: dropped,
        # as fastcrf.io.read_conll drops it.
        text, encoding = data.decode("utf-8").removeprefix("\ufeff"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "latin-1"
    sequences, current = [], []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        fields = line.split()
        if not fields:
            if current:
                sequences.append(current)
                current = []
            continue
        current.append((line, fields))
    if current:
        sequences.append(current)
    return sequences, encoding


def _split_labels(sequences):
    """``(tokens, labels)``: each row without its last field, and that field."""
    tokens = [[fields[:-1] for _, fields in s] for s in sequences]
    labels = [[fields[-1] for _, fields in s] for s in sequences]
    return tokens, labels


def _features(patterns, tokens, name):
    from ._wapiti_patterns import raw_features

    if patterns is None:
        return raw_features(tokens, name)
    patterns.check_rows(tokens, name)
    return patterns.features(tokens)


def _patterns(path):
    from ._wapiti_patterns import PatternSet

    if not os.path.isfile(path):
        raise cli.CommandError(f"-p (--pattern): no such file {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")   # a byte-order mark
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        return PatternSet(text)
    except ValueError as exc:
        raise cli.CommandError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- #
# train                                                                         #
# --------------------------------------------------------------------------- #


def _check_train(args):
    algo = args.algo.lower()
    if algo in NOT_IMPLEMENTED:
        raise cli.CommandError(f"-a (--algo): Wapiti's {args.algo!r} is not implemented "
                               "in fastcrf; use l-bfgs or sgd-l1")
    if algo not in ALGORITHMS:
        raise cli.CommandError(f"-a (--algo): unknown algorithm {args.algo!r}; choose "
                               "l-bfgs or sgd-l1")
    if args.type.lower() != "crf":
        raise cli.CommandError(f"-T (--type): only 'crf' models are implemented, got "
                               f"{args.type!r} (maxent and memm are not)")
    checks = [("-t (--nthread)", args.nthread, args.nthread > 0, "> 0"),
              ("-i (--maxiter)", args.maxiter, args.maxiter >= 0, ">= 0 (0: no limit)"),
              ("-1 (--rho1)", args.rho1, 0 <= args.rho1 < float("inf"), "a finite >= 0"),
              ("-2 (--rho2)", args.rho2, 0 <= args.rho2 < float("inf"), "a finite >= 0"),
              ("-o (--objwin)", args.objwin, args.objwin > 0, "> 0"),
              ("-w (--stopwin)", args.stopwin, args.stopwin >= 0, ">= 0 (0: off)"),
              ("-e (--stopeps)", args.stopeps, 0 <= args.stopeps < float("inf"),
               "a finite >= 0"),
              ("--histsz", args.histsz, args.histsz > 0, "> 0"),
              ("--maxls", args.maxls, args.maxls > 0, "> 0")]
    for flag, value, ok, want in checks:
        if not ok:
            raise cli.CommandError(f"{flag} must be {want}, got {value}")
    if len(args.files) not in (1, 2):
        raise cli.CommandError(f"train takes [INPUT] MODEL, got {len(args.files)} "
                               f"argument{'s' if len(args.files) != 1 else ''} (fastcrf "
                               "writes the model to a file, not to stdout)")
    return ALGORITHMS[algo]


def _fit_params(algorithm, args):
    """fastcrf.CRF parameters for Wapiti's switches (see the module docstring)."""
    from ._estimator import CRF

    params = CRF().get_params()
    params.update(algorithm=algorithm, c1=args.rho1, all_possible_states=True,
                  all_possible_transitions=True, n_jobs=args.nthread, verbose=False,
                  random_state=0, max_iterations=args.maxiter or UNLIMITED)
    if algorithm == "lbfgs":
        params.update(c2=args.rho2 / 2.0, epsilon=GRADIENT_EPS, delta=0.0, period=1,
                      num_memories=args.histsz, max_linesearch=args.maxls)
    else:
        params.update(c2=0.0)
        if not args.maxiter:
            params["max_iterations"] = None  # asgd's own epoch count, then the windows
    return params


class _Progress:
    """Wapiti's progress lines (on standard error) and its stopping rules: the
    objective window (l-bfgs) and the error-rate window."""

    def __init__(self, algorithm, args, eval_X, eval_y):
        self.algorithm = algorithm
        self.args = args
        self.eval_X, self.eval_y = eval_X, eval_y
        self.encoded = None
        self.objectives = []
        self.errors = []
        self.started = self.last = time.process_time()
        self.obj = None
        self.active = None

    def prepared(self, data, layout, mask, vocabulary, classes):
        _info(f"* Train the model with {self.args.algo}\n"
              f"      nb train:    {data.n_sequences}\n"
              f"      nb labels:   {len(classes)}\n"
              f"      nb features: {layout.n_weights}")

    def iteration(self, epoch, info, weights_fn, layout):
        self.obj = info.get("objective")
        self.active = info.get("active_features")
        return False

    def on_iteration(self, entry, model_fn):
        import numpy as np

        model = model_fn()
        if self.encoded is None:  # the vocabulary is fixed while training
            self.encoded = model.encode(self.eval_X, n_jobs=self.args.nthread)
            index = {c: k for k, c in enumerate(model.classes)}
            if self.eval_y is None:   # a streamed Dataset, holding its labels
                codes = np.array([index.get(c, -1) for c in self.eval_X.classes])
                self.gold = codes[self.eval_X.labels]
            else:
                self.gold = np.array([index.get(y, -1) for s in self.eval_y for y in s])
            self.offsets = self.encoded.seq_offsets if hasattr(
                self.encoded, "seq_offsets") else self.encoded.state.seq_offsets
        codes = model.viterbi_codes(self.encoded, n_jobs=self.args.nthread)
        wrong = codes != self.gold
        te = 100.0 * wrong.mean() if len(wrong) else 0.0
        bad_seq = np.add.reduceat(wrong, self.offsets[:-1]) if len(wrong) else wrong
        se = 100.0 * np.count_nonzero(bad_seq) / max(len(self.offsets) - 1, 1)
        now = time.process_time()
        act = self.active if self.active is not None else model.n_nonzero()
        obj = f"{self.obj:<10.2f}" if self.obj is not None else "NA        "
        _info(f"  [{entry.get('epoch', len(self.errors) + 1):4d}] obj={obj} act={act:<8d} "
              f"err={te:5.2f}%/{se:5.2f}% time={now - self.last:.2f}s/"
              f"{now - self.started:.2f}s")
        self.last = now
        stop = False
        a = self.args
        self.errors.append(te)
        if a.stopwin and len(self.errors) >= a.stopwin:
            window = self.errors[-a.stopwin:]
            stop = max(window) - min(window) < a.stopeps
        if self.algorithm == "lbfgs" and self.obj is not None:
            self.objectives.append(self.obj)
            # Wapiti compares the objective with the one objwin - 1 iterations back.
            if len(self.objectives) > a.objwin:
                old = self.objectives[-a.objwin]
                if old and abs(old - self.obj) / old < a.stopeps:
                    stop = True
        return stop


def _info(text):
    print(text, file=sys.stderr, flush=True)


def _cmd_train(args):
    from ._fit import fit_model
    from ._persist import save_model

    algorithm = _check_train(args)
    *inputs, model_path = args.files
    train_path = inputs[0] if inputs else "-"
    _check_output_folder(model_path)
    init_model, patterns = None, None
    if args.model is not None:
        init_model, patterns = _load(args.model, "-m (--model)")
    if args.pattern is not None:
        patterns = _patterns(args.pattern)
    devel = None
    if args.devel is not None:
        if not os.path.isfile(args.devel):
            raise cli.CommandError(f"-d (--devel): no such file {args.devel!r}")

    _info("* Load training data")
    streamed = _streamed_training(patterns, train_path)
    if streamed is not None:
        (X, encoding), y = streamed, None
    else:
        sequences, encoding = read_data(train_path)
        if not sequences:
            raise cli.CommandError(f"{cli._name(train_path)}: no training sequence")
        tokens, y = _split_labels(sequences)
        del sequences
        X = _features(patterns, tokens, cli._name(train_path))
        del tokens
    eval_X, eval_y = X, y
    if args.devel is not None:
        _info("* Load development data")
        devel, _ = read_data(args.devel)
        if not devel:
            raise cli.CommandError(f"{args.devel}: no sequence")
        d_tokens, eval_y = _split_labels(devel)
        eval_X = _features(patterns, d_tokens, args.devel)

    params = _fit_params(algorithm, args)
    has_edges = patterns.has_edges if patterns is not None else any(
        f.startswith(_EDGE) for s in X for tok in s for f in tok)
    if has_edges:
        params["transition_prefix"] = _EDGE
    if streamed is None and not any(not (has_edges and f.startswith(_EDGE))
                                    for s in X for tok in s for f in tok):
        # Wapiti trains bigram-only patterns; fastcrf needs one state attribute.
        raise cli.CommandError(f"{cli._name(train_path)}: no unigram observation: "
                               "fastcrf needs a u or * pattern (a constant 'u' line "
                               "gives a transitions-only model)" if patterns is not None
                               else f"{cli._name(train_path)}: no observation (without "
                               "-p the fields before the label are the observations)")
    transitions = patterns.transitions if patterns is not None else False
    progress = _Progress(algorithm, args, eval_X, eval_y)
    t0 = time.perf_counter()
    fitted = fit_model(params, X, y, ends=False, transitions=transitions,
                       listener=progress, on_iteration=progress.on_iteration,
                       init_model=init_model, continuing=None if init_model is None
                       else "warm_start")
    if args.compact:
        fitted, n_dropped = compact(fitted)
        _info(f"* Compacting the model: {n_dropped} observations removed")
    meta = {_META: {"version": _META_VERSION,
                    "pattern": None if patterns is None else patterns.text,
                    "wapiti_names": patterns is not None and patterns.wapiti_names,
                    "transitions": transitions, "encoding": encoding,
                    "algorithm": args.algo.lower(), "rho1": args.rho1, "rho2": args.rho2}}
    _info(f"* Save the model ({time.perf_counter() - t0:.2f} s of training)")
    save_model(fitted, model_path, params=params, metadata=meta)
    _info("* Done")
    return 0


def _streamed_training(patterns, path):
    """``(dataset, encoding)``: a training file streamed through the patterns'
    template into a labelled :class:`~fastcrf.Dataset` (flat arrays, not per-token
    feature lists: a fraction of the memory), which trains bitwise the model of the
    lists; None when the lists must be built: patterns that are not all ``%x``
    unigram ones (:attr:`PatternSet.template`), standard input, and files that
    :func:`read_data` is left to (gzip, a byte-order mark, rows of different lengths, no sequence, rows too short for the
    patterns: the lists' own errors are kept).
    """
    from ._dataset import Dataset

    template = patterns.template if patterns is not None else None
    if template is None or path == "-" or not _read_alike(path):
        return None
    for encoding in ("utf-8", "latin-1"):
        try:
            dataset = Dataset.from_conll(path, template, label_column=-1, docstart=False,
                                         encoding=encoding)
        except ValueError as exc:
            if encoding == "utf-8" and "not valid" in str(exc):
                continue   # read_data decodes the whole file as Latin-1 then
            return None    # the lists report it (or accept ragged rows) as Wapiti does
        return dataset, encoding
    raise AssertionError("unreachable")  # pragma: no cover


def _read_alike(path):
    """Whether the file ``path`` takes the streamed route: a plain file, not gzip and
    without a UTF-8 byte-order mark (those two are left to :func:`read_data`)."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        head = f.read(3)
    return head[:2] != b"\x1f\x8b" and head != b"\xef\xbb\xbf"


def _output(files):
    """The output file named after the input (``[INPUT] OUTPUT``, ``MODEL OUTPUT``),
    or None for standard output: none named, or ``-`` (as Wapiti)."""
    return files[1] if len(files) == 2 and files[1] != "-" else None


def _check_output_folder(path):
    # Checked now, not after minutes of training.
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise cli.CommandError(f"cannot write {path!r}: no such folder {folder!r}")
    if os.path.isdir(path):
        raise cli.CommandError(f"cannot write {path!r}: it is a folder")


def compact(model):
    """``(model, n)``: ``model`` without its ``n`` state attributes whose weights are
    all zero (Wapiti's ``--compact``); transition attributes are kept.

    Parameters
    ----------
    model : CRFModel

    Returns
    -------
    (CRFModel, int)
    """
    import numpy as np

    from ._edges import EdgeCRFModel
    from ._features._encoding import AttributeVocabulary
    from ._layout import StateLayout
    from ._model import CRFModel

    W = model.state_weights()
    keep = np.flatnonzero(np.any(W != 0.0, axis=1))
    dropped = W.shape[0] - len(keep)
    if not dropped:
        return model, 0
    names = model.vocabulary.names
    vocabulary = AttributeVocabulary([names[i] for i in keep.tolist()])
    W = W[keep]
    layout = StateLayout.dense(*W.shape)
    common = (model.classes, vocabulary, layout, layout.from_dense(W), model.chain,
              model.training_log, model.n_iter, model.metadata, model.constraints)
    if isinstance(model, EdgeCRFModel):
        return EdgeCRFModel(*common, transition_prefix=model.transition_prefix,
                            edge_vocabulary=model.edge_vocabulary,
                            edge_weights=model.edge_weights), dropped
    return CRFModel(*common), dropped


# --------------------------------------------------------------------------- #
# Models                                                                        #
# --------------------------------------------------------------------------- #


def _load(path, flag="-m (--model)"):
    """``(model, patterns)`` of a model written by ``fastcrf wapiti train`` or by
    Wapiti itself (:func:`read_wapiti_model`): ``patterns`` is a
    :class:`~fastcrf._wapiti_patterns.PatternSet`, or None for a model trained
    without one."""
    from ._persist import load_model
    from ._wapiti_patterns import PatternSet

    if not os.path.isfile(path):
        raise cli.CommandError(f"{flag}: no such model file {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"#mdl#"):
        model = read_wapiti_model(data, path)
    elif data[:2] != b"PK":
        raise cli.CommandError(f"{path}: not a model file written by 'fastcrf wapiti "
                               "train' or by Wapiti")
    else:
        model, _ = load_model(path)
    meta = model.metadata.get(_META)
    if not isinstance(meta, dict) or "pattern" not in meta:
        raise cli.CommandError(f"{path}: the model was not written by 'fastcrf wapiti "
                               "train' (it holds no Wapiti pattern record)")
    pattern = meta["pattern"]
    if pattern is not None and not isinstance(pattern, str):
        raise cli.CommandError(f"{path}: the model's pattern record is malformed")
    if pattern is None:
        return model, None
    try:
        return model, PatternSet(pattern, wapiti_names=bool(meta.get("wapiti_names")))
    except ValueError as exc:
        raise cli.CommandError(f"{path}: {exc}") from None


class _ModelText:
    """A cursor over the text of a Wapiti model file (``model.c``, ``reader.c``,
    ``quark.c``: headers, netstrings ``len:bytes,``, ``index=weight`` lines)."""

    def __init__(self, data, name):
        self.data, self.pos, self.name = data, 0, name

    def fail(self, what):
        raise cli.CommandError(f"{self.name}: not a Wapiti model file ({what} at byte "
                               f"{self.pos})")

    def header(self, regex, what):
        import re

        m = re.compile(regex).match(self.data, self.pos)
        if m is None:
            self.fail(f"expected {what}")
        self.pos = m.end()
        return m.groups()

    def string(self):
        (n,) = self.header(rb"(\d+):", "a string")
        start, end = self.pos, self.pos + int(n)
        if self.data[end:end + 1] != b",":
            self.fail("a string without its ','")
        self.pos = end + 2    # the ',' and the end of line after it
        return self.data[start:end]


def read_wapiti_model(data, name="the model"):
    """A fastcrf model of a CRF model file written by Wapiti (``wapiti train``).

    Observations keep Wapiti's strings: a unigram one ``obs`` is the state attribute
    ``"U" + obs``, a bigram one the transition attribute ``"B" + obs``, and the
    bigram observation of a pattern without a command becomes the plain transition
    weights.  Labels keep Wapiti's order.

    Parameters
    ----------
    data : bytes
        The file's contents.
    name : str
        What to call the file in an error message.

    Returns
    -------
    CRFModel
        An :class:`~fastcrf._edges.EdgeCRFModel` when it has bigram observations that
        read the input; its metadata holds the patterns.

    Raises
    ------
    fastcrf.cli.CommandError
        For a malformed file, or a maxent / MEMM model.
    """
    import numpy as np

    from ._edges import EdgeCRFModel
    from ._features._encoding import AttributeVocabulary
    from ._layout import StateLayout
    from ._model import CRFModel
    from ._wapiti_patterns import PatternSet

    cur = _ModelText(data, name)
    kind, n_active = cur.header(rb"#mdl#(?:(\d+)#)?(\d+)\r?\n", "the #mdl# header")
    if kind is not None and int(kind) != 2:   # Wapiti's types: maxent, memm, crf
        what = {0: "maxent", 1: "MEMM"}.get(int(kind), f"type {int(kind)}")
        raise cli.CommandError(f"{name}: a Wapiti {what} model; fastcrf reads Wapiti's "
                               "CRF models only")
    n_pats, _, _ = cur.header(rb"#rdr#(\d+)/(\d+)(?:/(\d+))?\r?\n", "the #rdr# header")
    encoding = "utf-8"
    raw_patterns = [cur.string() for _ in range(int(n_pats))]
    (n_labels,) = cur.header(rb"#qrk#(\d+)\r?\n", "the labels' #qrk# header")
    raw_labels = [cur.string() for _ in range(int(n_labels))]
    (n_obs,) = cur.header(rb"#qrk#(\d+)\r?\n", "the observations' #qrk# header")
    raw_obs = [cur.string() for _ in range(int(n_obs))]
    try:
        for s in raw_patterns + raw_labels + raw_obs:
            s.decode("utf-8")
    except UnicodeDecodeError:
        encoding = "latin-1"
    patterns = "\n".join(p.decode(encoding) for p in raw_patterns)
    labels = [x.decode(encoding) for x in raw_labels]
    observations = [x.decode(encoding) for x in raw_obs]
    Y = len(labels)
    if Y == 0:
        cur.fail("no label")
    # Wapiti's weight layout (mdl_sync): observation by observation, Y unigram
    # weights then Y * Y bigram ones (previous label major), as its kind says.
    offsets, F = [], 0
    for o, obs in enumerate(observations):
        k = {"u": 1, "b": 2, "*": 3}.get(obs[:1])
        if k is None:
            cur.fail(f"observation {obs!r} does not start with u, b or *")
        u = F if k & 1 else None
        F += Y if k & 1 else 0
        b = F if k & 2 else None
        F += Y * Y if k & 2 else 0
        offsets.append((u, b))
    theta = np.zeros(F)
    for _ in range(int(n_active)):
        # The end of line is required: Wapiti ends every line, and a file cut inside
        # its last weight ('5=-1.5' -> '5=-1.') must not load a wrong weight.
        index, value = cur.header(rb"\s*(\d+)=(\S+)\r?\n", "an index=weight line")
        try:
            w = float.fromhex(value.decode()) if b"x" in value.lower() else float(value)
        except (ValueError, OverflowError):   # fromhex overflows: '0x1p+1024'
            cur.fail(f"the weight {value!r}")
        if not np.isfinite(w):   # a diverged training's; every score would be NaN
            cur.fail(f"the weight {value!r}")
        if int(index) >= F:
            cur.fail(f"the weight index {int(index)} (the model has {F})")
        theta[int(index)] = w
    pattern_set = PatternSet(patterns, wapiti_names=True) if raw_patterns else None
    plain = set()
    if pattern_set is not None:
        plain = {p.line for p in pattern_set.patterns if p.kind in "b*" and not p.commands}
    state_names, state_rows, edge_names, edge_rows = [], [], [], []
    trans = np.zeros((Y, Y))
    for obs, (u, b) in zip(observations, offsets):
        if u is not None:
            state_names.append(_STATE + obs)
            state_rows.append(theta[u:u + Y])
        if b is not None:
            block = theta[b:b + Y * Y].reshape(Y, Y)
            if obs in plain:
                trans += block
            else:
                edge_names.append(_EDGE + obs)
                edge_rows.append(block)
    W = np.array(state_rows).reshape(len(state_rows), Y)
    layout = StateLayout.dense(*W.shape)
    chain = np.concatenate((trans.ravel(), np.zeros(2 * Y)))
    meta = {_META: {"version": _META_VERSION, "pattern": patterns if raw_patterns else None,
                    "wapiti_names": True, "transitions": bool(plain),
                    "encoding": encoding, "converted_from": "wapiti"}}
    common = (labels, AttributeVocabulary(state_names), layout, layout.from_dense(W), chain,
              None, 0, meta)
    if edge_names:
        return EdgeCRFModel(*common, transition_prefix=_EDGE,
                            edge_vocabulary=AttributeVocabulary(edge_names),
                            edge_weights=np.array(edge_rows))
    return CRFModel(*common)


# --------------------------------------------------------------------------- #
# label                                                                         #
# --------------------------------------------------------------------------- #


def _check_label(args):
    if args.model is None:
        raise cli.CommandError("label needs -m MODEL (a model written by 'fastcrf wapiti "
                               "train')")
    if args.nbest < 1:
        raise cli.CommandError(f"-n (--nbest) must be >= 1, got {args.nbest}")
    if len(args.files) > 2:
        raise cli.CommandError(f"label takes [INPUT] [OUTPUT], got {len(args.files)} "
                               "arguments")
    if _output(args.files) is not None:
        _check_output_folder(_output(args.files))


def decode(model, features, nbest=1, posterior=False, n_jobs=None):
    """Wapiti's decoding of every sequence: its ``nbest`` best labellings, each with
    its score and its tokens' scores.

    Parameters
    ----------
    model : CRFModel
    features : encoded batch (``model.encode(X)``)
    nbest : int, default=1
    posterior : bool, default=False
        False: Viterbi on the raw scores (the scores are unnormalised sums of
        weights); True: on the token posteriors (scores are probabilities: a token's
        marginal, a labelling's the product of its tokens').

    Returns
    -------
    list (one per sequence) of lists of ``(codes ndarray, score, token scores)``
    """
    import numpy as np

    from . import _dense, _lattice_queries

    out = []
    for _, (em, trans, start, end, lengths, _mask) in _lattice_queries.batches(model,
                                                                               features):
        B, T, K = em.shape
        # No more labellings than a sequence has: a huge -n costs nothing extra.
        k = min(nbest, K ** int(lengths.max())) if B else nbest
        if posterior:
            marg = np.asarray(_dense.marginals(em, trans, start, end, lengths,
                                               n_jobs=n_jobs))
            with np.errstate(divide="ignore"):
                logm = np.log(marg)
            zero = np.zeros(K)
            paths, scores = _dense.viterbi(logm, np.zeros((K, K)), zero, zero, lengths,
                                           k=k, n_jobs=n_jobs)
        else:
            paths, scores = _dense.viterbi(em, trans, start, end, lengths, k=k,
                                           n_jobs=n_jobs)
        for b, n in enumerate(lengths.tolist()):
            cands = []
            for r in range(paths.shape[1]):
                if not scores[b, r] > -np.inf:
                    continue
                seq = paths[b, r, :n]
                t = np.arange(n)
                if posterior:
                    tok = marg[b, t, seq]
                    score = float(np.exp(scores[b, r]))
                else:
                    tok = em[b, t, seq] + start[seq] * (t == 0) + end[seq] * (t == n - 1)
                    if n > 1:
                        tr = (trans[seq[:-1], seq[1:]] if trans.ndim == 2
                              else trans[b, t[1:], seq[:-1], seq[1:]])
                        tok[1:] += tr
                    score = float(scores[b, r])
                cands.append((seq, score, tok))
            out.append(cands)
    return out


def _features_for(model, patterns, tokens, name):
    return model.encode(_features(patterns, tokens, name))


def _label_text(model, patterns, sequences, args, name, labels):
    """The labelled text and the check statistics of one input; ``labels``: the
    model's labels as :func:`_output_labels` gives them."""
    import numpy as np

    if args.check:
        tokens, gold = _split_labels(sequences)
    else:
        tokens, gold = [[fields for _, fields in s] for s in sequences], None
    if not sequences:
        return "", None
    features = _features_for(model, patterns, tokens, name)
    results = decode(model, features, args.nbest, args.post)
    names = np.asarray(labels, dtype=object)
    out = []
    for seq, cands in zip(sequences, results):
        for n, (codes, score, tok) in enumerate(cands):
            if args.score:
                out.append(f"# {n} {score:f}\n")
            labels = names[codes].tolist()
            for (line, _), label, s in zip(seq, labels, tok.tolist()):
                row = label if args.label else f"{line}\t{label}"
                if args.score:
                    row += f"\t{label}/{s:f}"
                out.append(row + "\n")
            out.append("\n")
    best = [cands[0][0] for cands in results]
    return "".join(out), (gold, best)


def _output_labels(model, encoding):
    """The model's labels as strings that, encoded as the input was read
    (``encoding``, with ``surrogateescape``), give the label's own bytes, as Wapiti
    writes them: a Latin-1 input line and a UTF-8 model's label are each written as
    they were read, not re-encoded (which fails for labels outside Latin-1)."""
    meta = model.metadata.get(_META)
    own = meta.get("encoding", "utf-8") if isinstance(meta, dict) else "utf-8"
    return [c.encode(own, "surrogateescape").decode(encoding, "surrogateescape")
            for c in model.classes]


def check_report(classes, gold, best):
    """Wapiti's ``--check`` report: token and sequence error rates, then precision,
    recall and F1 of every label.

    Parameters
    ----------
    classes : list of str
        The model's labels.
    gold : list of list of str
        The reference labels (labels the model does not know count as errors in the
        rates and are left out of the per-label counts, as Wapiti does).
    best : list of ndarray
        The predicted label codes.

    Returns
    -------
    str
    """
    import numpy as np

    K = len(classes)
    index = {c: k for k, c in enumerate(classes)}
    ref_n, out_n, hit_n = np.zeros(K, int), np.zeros(K, int), np.zeros(K, int)
    terr = tcnt = serr = 0
    for g, codes in zip(gold, best):
        ref = np.array([index.get(y, -1) for y in g], dtype=np.int64)
        codes = np.asarray(codes, dtype=np.int64)
        known = ref >= 0
        wrong = known & (ref != codes)
        np.add.at(ref_n, ref[known], 1)
        np.add.at(out_n, codes[known], 1)
        np.add.at(hit_n, codes[known & ~wrong], 1)
        terr += int(wrong.sum())
        tcnt += len(g)
        serr += bool(wrong.any())

    def ratio(a, b):
        return a / b if b else float("nan")

    lines = [f"    Nb sequences  : {len(gold)}",
             f"    Token error   : {100.0 * ratio(terr, tcnt):5.2f}%",
             f"    Sequence error: {100.0 * ratio(serr, len(gold)):5.2f}%",
             "* Per label statistics"]
    for k, label in enumerate(classes):
        rc, pr = ratio(hit_n[k], ref_n[k]), ratio(hit_n[k], out_n[k])
        f1 = ratio(2.0 * pr * rc, pr + rc)
        lines.append(f"    {label:<6s}  Pr={pr:.2f}  Rc={rc:.2f}  F1={f1:.2f}")
    return "\n".join(lines)


def _cmd_label(args):
    from ._atomic import atomic_file

    _check_label(args)
    model, patterns = _load(args.model)
    path = args.files[0] if args.files else "-"
    sequences, encoding = read_data(path)
    labels = _output_labels(model, encoding)
    text, stats = _label_text(model, patterns, sequences, args, cli._name(path), labels)
    if _output(args.files) is not None:
        with atomic_file(args.files[1], "wb") as f:
            f.write(text.encode(encoding, "surrogateescape"))
    else:
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)  # None: a text stream (a test's)
        if out is None:
            sys.stdout.write(text)
        else:
            out.write(text.encode(encoding, "surrogateescape"))
        (out or sys.stdout).flush()
    if args.check and stats is not None:
        gold, best = stats
        real = dict(zip(labels, model.classes))  # the report names the model's labels
        _info(check_report(model.classes, [[real.get(y, y) for y in g] for g in gold],
                           best))
    return 0


# --------------------------------------------------------------------------- #
# dump                                                                          #
# --------------------------------------------------------------------------- #


def dump_text(model, prec=5, include_zero=False):
    """Wapiti's ``dump`` of a model: ``obs\\t#\\tlabel\\tweight`` for a unigram weight,
    ``obs\\tprev\\tlabel\\tweight`` for a bigram one, a blank line after each
    observation; plain label transitions are listed under the observation ``b``.

    Parameters
    ----------
    model : CRFModel
    prec : int, default=5
        Digits after the decimal point.
    include_zero : bool, default=False
        Also list zero weights (``--all``).

    Returns
    -------
    str
    """
    import numpy as np

    out = []
    labels = model.classes
    K = len(labels)

    def block(obs, rows):
        lines = [f"{obs}\t{a}\t{b}\t{w:.{prec}f}\n" for a, b, w in rows
                 if include_zero or w != 0.0]
        if lines:
            out.extend(lines)
            out.append("\n")

    W = model.state_weights()
    for name, row in zip(model.vocabulary.names, W.tolist()):
        block(name[1:] if name.startswith(_STATE) else name,
              [("#", labels[y], w) for y, w in enumerate(row)])
    edge_W = getattr(model, "edge_weights", None)
    if edge_W is not None:
        for name, m in zip(model.edge_vocabulary.names, edge_W):
            block(name[1:] if name.startswith(_EDGE) else name,
                  [(labels[i], labels[j], float(m[i, j]))
                   for i in range(K) for j in range(K)])
    trans = np.asarray(model.transitions)
    if include_zero or np.any(trans != 0.0):
        block("b", [(labels[i], labels[j], float(trans[i, j]))
                    for i in range(K) for j in range(K)])
    return "".join(out)


def _cmd_dump(args):
    from ._atomic import atomic_file

    if len(args.files) not in (1, 2):
        raise cli.CommandError(f"dump takes MODEL [OUTPUT], got {len(args.files)} "
                               f"argument{'s' if len(args.files) != 1 else ''}")
    if not 0 <= args.prec <= 30:
        raise cli.CommandError(f"--prec must be between 0 and 30, got {args.prec}")
    model, _ = _load(args.files[0], "MODEL")
    text = dump_text(model, args.prec, args.all)
    if _output(args.files) is not None:
        _check_output_folder(_output(args.files))
        with atomic_file(args.files[1], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0
