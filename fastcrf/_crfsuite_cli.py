"""CRFsuite's command line: ``fastcrf crfsuite learn / tag / dump`` (installed also
as the console script ``fastcrf-crfsuite``; no bare ``crfsuite`` script, which would
shadow a real CRFsuite).

It takes the arguments of CRFsuite 0.12's frontend and writes its output::

    crfsuite learn [-a ALGORITHM] [-p NAME=VALUE ...] [-m MODEL] [-g N] [-e M] [-x]
                   [-l] [-L BASE] [-H] [DATA ...]
    crfsuite tag -m MODEL [-t] [-r] [-p] [-i] [-l] [-q] [DATA]
    crfsuite dump MODEL

Data files are CRFsuite's attribute files: one item per line, ``LABEL<TAB>ATTR<TAB>
ATTR...``, where an attribute ``NAME:SCALE`` has the weight SCALE (1 without one), a
name writes ``\\:`` for a colon and ``\\\\`` for a backslash, tabs in a row count as one,
an empty line ends a sequence and a first field ``@weight:W`` weights the sequence
(``learn``).  ``-`` reads standard input.  Where CRFsuite reads quietly what it
cannot make sense of (a scale that is not a number becomes 0, a second unescaped
colon starts a nameless attribute), this module stops with the file and line.

``tag -p`` writes CRFsuite 0.12's ``@probability`` line (later sources add an
``@score`` line before it); ``tag -l`` (every label's marginal) comes from those later
sources.  ``learn -l`` writes the whole log to the file (CRFsuite 0.12 writes the
trainer's part to standard output even then).  A reference label the model does not
know is printed as read (CRFsuite has no text for it).

Training runs fastcrf's trainers through :mod:`fastcrf.pycrfsuite` (CRFsuite's
parameter names, its training log, its model file, which python-crfsuite and
CRFsuite open); ``tag`` reads CRFsuite model files (CRFsuite's own included) and
fastcrf's.
"""

import math
import os
import re
import stat
import sys
import time

import numpy as np

from . import cli

__all__ = ["main", "read_data", "GlibcRandom"]

_intern = sys.intern

#: CRFsuite's algorithm names (``-a``), short and long, -> its internal name.
ALGORITHMS = {"lbfgs": "lbfgs", "l2sgd": "l2sgd", "ap": "averaged-perceptron",
              "averaged-perceptron": "averaged-perceptron", "pa": "passive-aggressive",
              "passive-aggressive": "passive-aggressive", "arow": "arow"}
#: How ``learn -H`` names each kind of parameter (CRFsuite's own words).
_KINDS = {"int": "int", "bool": "int", "float": "float", "str": "string"}
#: CRFsuite's L-BFGS line searches (-p linesearch=...).
_LINESEARCHES = ("MoreThuente", "Backtracking", "StrongBacktracking")
#: Sequences tagged per batch (one encode / Viterbi call each).
_BATCH = 2048

_LEARN_EPILOG = """\
DATA: attribute files, one item per line (LABEL<TAB>ATTR[:SCALE]<TAB>...), an empty
line between sequences; '-' reads standard input.  With N files, the instances of
the i-th are group i (for -e and -x); -g N shuffles the instances into N groups
instead (the shuffle of CRFsuite built on glibc).  -p takes CRFsuite's parameter
names (-H lists those of the -a algorithm).  The model is a CRFsuite model file
(python-crfsuite and CRFsuite open it); training uses all CPU cores."""

_TAG_EPILOG = """\
Output as CRFsuite's: each item's label on a line ('-r': the reference label, a
tab, the predicted one; '-i': ':' and its marginal probability; '-l': a tab and
'LABEL:P' for every label), an empty line after each sequence, which '-p' opens
with '@probability<TAB>P'.  '-t' ends with the performance by label, item and
instance accuracy.  The first field of each line is the reference label (give any
text when there is none); attributes the model does not know are ignored."""


# --------------------------------------------------------------------------- #
# Data files                                                                    #
# --------------------------------------------------------------------------- #

def _shown(text, limit=60):
    """``repr(text)`` cut to about ``limit`` characters, for messages (a binary file
    read as text can make a field of megabytes)."""
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text)} characters)"
    return repr(text)


# A field's pieces: an escape (\\ or \:), a lone backslash, a run of plain
# characters, or a colon (the separator).
_PIECES = re.compile(r"\\[\\:]|\\|[^\\:]+|:")


def _split_field(field, where):
    """``(name, value)`` of one field: the name unescaped, ``value`` the text after
    the first unescaped colon (None without one)."""
    if "\\" not in field:
        name, colon, value = field.partition(":")
        if ":" in value:
            raise ValueError(f"{where}: field {_shown(field)} has more than one ':' (write "
                             f"'\\:' for a colon in a name)")
        return name, (value if colon else None)
    parts = [[], None]
    for piece in _PIECES.findall(field):
        if piece == ":":
            if parts[1] is not None:
                raise ValueError(f"{where}: field {_shown(field)} has more than one "
                                 f"unescaped ':' (write '\\:' for a colon in a name)")
            parts[1] = []
            continue
        (parts[0] if parts[1] is None else parts[1]).append(
            piece[1] if len(piece) == 2 and piece[0] == "\\" else piece)
    name = "".join(parts[0])
    return name, (None if parts[1] is None else "".join(parts[1]))


def _scale(value, field, where):
    if not value:  # 'NAME' or 'NAME:' weigh 1, as in CRFsuite
        return 1.0
    try:
        scale = float(value)
    except ValueError:
        raise ValueError(f"{where}: the scale of {_shown(field)} is not a number (write "
                         f"'\\:' for a colon in a name)") from None
    if not math.isfinite(scale):  # caught here, training would name no file or line
        raise ValueError(f"{where}: the scale of {_shown(field)} is not finite")
    return scale


class DataSet:
    """What :func:`read_data` read from one file.

    Attributes
    ----------
    X : list of list
        Each sequence's items: a list of attribute names (all weighing 1) or a
        ``{name: weight}`` dict (repeated names summed).
    y : list of list of str
        Each sequence's labels.
    weights : list of float
        Each sequence's ``@weight`` (1.0 without one).
    n_records : int
        What CRFsuite's reader counts as instances: the empty lines and the end of
        the file (an empty sequence included), for its "Number of instances" line.
    """

    def __init__(self):
        self.X, self.y, self.weights = [], [], []
        self.n_records = 0


def read_data(stream, name, *, declarations=True, first_line=1):
    """Read a CRFsuite attribute file.

    Parameters
    ----------
    stream : iterable of str
        The file's lines (a text file object).
    name : str
        How error messages name the file.
    declarations : bool, default=True
        Whether a first field starting with ``@`` is a declaration (``@weight:W``;
        any other is an error), as ``learn`` reads it; ``tag`` skips such lines.
    first_line : int, default=1
        The number of the stream's first line, for messages.

    Returns
    -------
    DataSet

    Raises
    ------
    ValueError
        For a line CRFsuite would misread, naming the file and the line.
    """
    data = DataSet()
    items, labels, weight = [], [], 1.0

    def flush():
        nonlocal items, labels, weight
        data.n_records += 1
        if items:
            data.X.append(items)
            data.y.append(labels)
            data.weights.append(weight)
        items, labels, weight = [], [], 1.0

    for lineno, line in enumerate(stream, first_line):
        if lineno == 1 and line[:1] == "\ufeff":
            # A byte order mark (editors on Windows write one) is no part of the first
            # label, as fastcrf's column reader has it.
            line = line[1:]
        if line[-1:] == "\n":
            line = line[:-1]
            if line[-1:] == "\r":
                line = line[:-1]
        if "\r" in line:
            # Old Mac line ends (a lone CR): the whole file would read as one item.
            raise ValueError(f"{name}:{lineno}: a carriage return inside a line (lines "
                             f"end with LF or CR LF)")
        if not line:
            flush()
            continue
        fields = line.split("\t")
        if "" in fields:  # tabs in a row separate as one
            fields = [f for f in fields if f]
            if not fields:
                continue  # a line of tabs: no item (CRFsuite's reader skips it)
        if ":" not in line and "\\" not in line:
            # Interned: a corpus repeats each attribute name many times, and one
            # str per name instead of one per occurrence takes a third off learn's
            # peak memory on CoNLL-2000.
            label, value, attrs = fields[0], None, list(map(_intern, fields[1:]))
        else:
            where = f"{name}:{lineno}"
            label, value = _split_field(fields[0], where)
            attrs = None
        if label[:1] == "@":
            if not declarations:
                continue
            if label != "@weight":
                raise ValueError(f"{name}:{lineno}: unrecognized declaration {_shown(label)} "
                                 f"(only '@weight:W' is known)")
            if not value:
                raise ValueError(f"{name}:{lineno}: declaration {_shown(fields[0])} without a "
                                 f"value (write '@weight:W')")
            weight = _scale(value, fields[0], f"{name}:{lineno}")
            if weight < 0:
                raise ValueError(f"{name}:{lineno}: {_shown(fields[0])}: a sequence's weight "
                                 f"must be >= 0")
            continue
        if attrs is None:
            if value is not None:
                raise ValueError(f"{where}: the label {_shown(fields[0])} has an unescaped ':' "
                                 f"(write '\\:' for a colon in a label)")
            attrs = {}
            for field in fields[1:]:
                attr, value = _split_field(field, where)
                attrs[attr] = attrs.get(attr, 0.0) + _scale(value, field, where)
        items.append(attrs)
        labels.append(label)
    flush()
    return data


def _open_text(path):
    """A data file (or standard input for '-') as text: UTF-8, undecodable bytes
    kept through surrogate escapes (CRFsuite reads bytes)."""
    if path == "-":
        if sys.stdin is None:  # started with standard input closed ('<&-')
            raise cli.CommandError("standard input ('-') is closed")
        return open(sys.stdin.fileno(), "r", encoding="utf-8", errors="surrogateescape",
                    newline="\n", closefd=False)
    return open(path, "r", encoding="utf-8", errors="surrogateescape", newline="\n")


def _output(fp):
    """``fp`` writing UTF-8 with surrogate escapes (names read from the data go back
    out as the bytes they were)."""
    if fp is None:  # started with standard output closed ('>&-')
        raise cli.CommandError("standard output is closed")
    try:
        fd = fp.fileno()
    except (AttributeError, OSError, ValueError):
        return fp  # a stream without a file descriptor (captured output): as it is
    fp.flush()
    return open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="\n",
                closefd=False)


# --------------------------------------------------------------------------- #
# glibc's rand(), for -g                                                        #
# --------------------------------------------------------------------------- #


class GlibcRandom:
    """glibc's ``rand()`` never seeded (seed 1): CRFsuite's ``learn -g`` shuffles
    with it, so the same instances land in the same groups as with a CRFsuite built
    on glibc.

    glibc's generator (``random_r`` of type 3): 34 words from a Park-Miller
    sequence, then ``r[i] = r[i-3] + r[i-31] (mod 2^32)``; the first 310 values are
    dropped, and each output is ``r[i] >> 1``.
    """

    def __init__(self, seed=1):
        r = [seed]
        for i in range(1, 31):
            # 16807 * r mod (2^31 - 1), in signed 32-bit steps as glibc computes it
            hi, lo = divmod(r[i - 1], 127773)
            word = 16807 * lo - 2836 * hi
            r.append(word + 2147483647 if word < 0 else word)
        r += r[:3]
        self._r = r
        for _ in range(310):
            self._next()

    def _next(self):
        r = self._r
        value = (r[-3] + r[-31]) & 0xFFFFFFFF
        r.append(value)
        if len(r) > 64:
            del r[:-34]
        return value

    def rand(self):
        """The next value, in [0, 2^31)."""
        return self._next() >> 1


def _shuffle_groups(n, n_groups):
    """The order and groups of CRFsuite's ``-g``: each instance i swapped with
    ``rand() % n``, then the i-th of the new order in group ``i % n_groups``."""
    order = list(range(n))
    rng = GlibcRandom()
    for i in range(n):
        j = rng.rand() % n
        order[i], order[j] = order[j], order[i]
    return order, [i % n_groups for i in range(n)]


# --------------------------------------------------------------------------- #
# learn                                                                         #
# --------------------------------------------------------------------------- #


def _timestamp():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _banner():
    from ._version import __version__
    from .pycrfsuite import CRFSUITE_VERSION
    return f"fastcrf {__version__}: CRFsuite {CRFSUITE_VERSION}'s command line\n\n"


def _help_params(trainer, algorithm, out):
    """CRFsuite's ``learn -H``: every parameter's type, name, default and help."""
    out.write(f"PARAMETERS for {algorithm} (crf1d):\n\n")
    for name in trainer.params():
        param = trainer._params[name]
        value = param.default
        text = (f"{value:f}" if param.kind == "float" else
                str(int(value)) if param.kind == "bool" else str(value))
        out.write(f"{_KINDS[param.kind]} {name} = {text};\n{param.help}\n\n")


def _log_name(args, algorithm):
    return "_".join([args.logbase, algorithm, *args.set])


def _cmd_learn(args):
    from .pycrfsuite._trainer import BaseTrainer

    algorithm = ALGORITHMS.get(args.algorithm)
    if algorithm is None:
        raise cli.CommandError(f"unknown algorithm {args.algorithm!r} (lbfgs, l2sgd, "
                               f"ap, pa or arow)")
    trainer = BaseTrainer(algorithm, verbose=False)
    stdout = _output(sys.stdout)
    if args.help_params:
        _help_params(trainer, algorithm, stdout)
        stdout.flush()
        return 0
    for setting in args.set:
        name, eq, value = setting.partition("=")
        if not eq:
            raise cli.CommandError(f"-p {setting!r}: write NAME=VALUE")
        if name not in trainer.params():
            raise cli.CommandError(f"-p {setting!r}: {algorithm} has no parameter {name!r} "
                                   f"(see 'learn -a {args.algorithm} -H')")
        trainer.set(name, value)
        if name == "linesearch" and value not in _LINESEARCHES:
            # fastcrf has one search and ignores the name: a misspelt name would go
            # unnoticed, so it is reported here.
            raise cli.CommandError(f"-p {setting!r}: the line search is MoreThuente, "
                                   f"Backtracking or StrongBacktracking")
    if args.split is not None and args.split < 1:
        raise cli.CommandError(f"-g takes a number of groups >= 1, got {args.split}")
    if not args.files:
        raise cli.CommandError("no data file given ('-' reads standard input)")
    if args.files.count("-") > 1:
        raise cli.CommandError("standard input ('-') can be read only once")
    n_groups = args.split or len(args.files)
    if args.holdout is not None and not args.cross_validate \
            and not 1 <= args.holdout <= n_groups:
        # CRFsuite would train on everything and evaluate nothing, without a word.
        raise cli.CommandError(f"-e {args.holdout}: no such group (the groups are 1 to "
                               f"{n_groups}: one per data file, or -g N)")
    if args.model and not args.cross_validate:
        cli._check_output(args.model, "-m")  # before training, not after it

    if args.logfile:
        out = open(_log_name(args, algorithm), "w", encoding="utf-8",
                   errors="surrogateescape", newline="\n")
    else:
        out = stdout
    try:
        _learn(args, algorithm, trainer, out)
    finally:
        if out is not stdout:
            out.close()
        stdout.flush()
    return 0


def _learn(args, algorithm, trainer, out):
    def write(text):
        out.write(text)
        out.flush()

    write(_banner())
    write(f"Start time of the training: {_timestamp()}\n\n")
    write("Reading the data set(s)\n")
    X, y, weights, groups = [], [], [], []
    for k, path in enumerate(args.files):
        write(f"[{k + 1}] {path}\n")
        started = time.perf_counter()
        with _open_text(path) as f:
            data = read_data(f, path)
        write("0....1....2....3....4....5....6....7....8....9....10\n")
        write(f"Number of instances: {data.n_records}\n"
              f"Seconds required: {time.perf_counter() - started:.3f}\n")
        X += data.X
        y += data.y
        weights += data.weights
        groups += [k] * len(data.X)
    write("\n")
    if not X:
        # A model without labels is a file that no tagger (fastcrf's, CRFsuite's) opens.
        raise cli.CommandError(f"{', '.join(args.files)}: no item to learn from (an item "
                               f"is a line LABEL<TAB>ATTR...)")
    if args.split and args.split > len(X):
        # Empty groups: -x would train on everything once per group (a "hang" for a
        # large N) and -e could hold out nothing.
        raise cli.CommandError(f"-g {args.split}: more groups than the {len(X)} "
                               f"instances (each group needs one)")
    if not any(item for items in X for item in items):
        # Training would fail with the estimator's words; the usual cause is a file
        # written with spaces between the fields, which makes each line a label.
        raise cli.CommandError(f"{', '.join(args.files)}: no item has an attribute "
                               f"(the fields of a line are separated by tabs, not spaces)")
    # CRFsuite numbers labels and attributes as it reads them, every group included.
    classes = list(dict.fromkeys(label for labels in y for label in labels))
    attributes = set()
    for items in X:
        for item in items:
            attributes.update(item)
    n_attributes = len(attributes)
    del attributes
    n_groups = len(args.files)
    if args.split:
        order, groups = _shuffle_groups(len(X), args.split)
        X, y, weights = ([seq[i] for i in order] for seq in (X, y, weights))
        n_groups = args.split
    write(f"Statistics the data set(s)\n"
          f"Number of data sets (groups): {n_groups}\n"
          f"Number of instances: {len(X)}\n"
          f"Number of items: {sum(map(len, y))}\n"
          f"Number of attributes: {n_attributes}\n"
          f"Number of labels: {len(classes)}\n\n")
    values = dict(trainer._values)
    if args.cross_validate:
        for g in range(n_groups):
            write(f"===== Cross validation ({g + 1}/{n_groups}) =====\n")
            _train(algorithm, values, X, y, weights, groups, classes, g, "", write)
            write("\n")
    else:
        holdout = args.holdout - 1 if args.holdout is not None else -1
        _train(algorithm, values, X, y, weights, groups, classes, holdout, args.model,
               write)
    write(f"End time of the training: {_timestamp()}\n\n")


def _train(algorithm, values, X, y, weights, groups, classes, holdout, model, write):
    """Train on the instances outside group ``holdout`` (evaluated after each
    iteration when it has any), log as CRFsuite, store the model when ``model``."""
    from ._estimator import CRF
    from ._fit import fit_model
    from ._persist import save_model
    from .pycrfsuite._log import LogWriter
    from .pycrfsuite._params import crf_params
    from .pycrfsuite._trainer import empty_model

    train = [i for i, g in enumerate(groups) if g != holdout]
    held = [i for i, g in enumerate(groups) if g == holdout]
    dev = (holdout, [X[i] for i in held], [y[i] for i in held]) if held else None
    writer = LogWriter(write, algorithm, values, dev)
    writer.start()
    if train:
        params = CRF().get_params()
        params.update(crf_params(algorithm, values))
        # CRFsuite's trainers are deterministic (rand() unseeded): so is this.
        params.update(verbose=False, random_state=0)
        w = [weights[i] for i in train]
        fitted = fit_model(params, [X[i] for i in train], [y[i] for i in train],
                           ends=False, listener=writer,
                           min_feature_freq=values["feature.minfreq"], classes=classes,
                           sample_weight=None if all(v == 1.0 for v in w) else w)
    else:
        fitted = empty_model(classes)
    started = time.perf_counter()
    if model:
        save_model(fitted, model, params={}, format="crfsuite")
        writer.finish(fitted, time.perf_counter() - started)
    else:  # CRFsuite logs no "Storing the model" section when it stores none
        writer.lines(f"Total seconds required for training: "
                     f"{time.perf_counter() - writer.started:.3f}", "")


# --------------------------------------------------------------------------- #
# tag                                                                           #
# --------------------------------------------------------------------------- #


class _Evaluation:
    """CRFsuite's tagging evaluation: per-label (#match, #model, #ref), item and
    instance accuracy."""

    def __init__(self, classes):
        K = len(classes)
        self.classes = classes
        self.match = np.zeros(K, dtype=np.int64)
        self.model = np.zeros(K, dtype=np.int64)
        self.ref = np.zeros(K, dtype=np.int64)
        self.items = self.instances = self.exact = 0

    def add(self, gold, pred):
        """One sequence: reference codes (-1: a label the model does not know) and
        predicted codes."""
        unknown = np.flatnonzero(gold < 0)
        if len(unknown):
            # CRFsuite stops counting a sequence at its first unknown reference label
            # and does not count the sequence.
            gold, pred = gold[:unknown[0]], pred[:unknown[0]]
        K = len(self.classes)
        self.ref += np.bincount(gold, minlength=K)
        self.model += np.bincount(pred, minlength=K)
        right = gold == pred
        self.match += np.bincount(gold[right], minlength=K)
        self.items += len(gold)
        if not len(unknown):
            self.instances += 1
            self.exact += bool(right.all())

    def report(self):
        from .pycrfsuite._log import performance_report

        lines = performance_report(self.classes, self.match, self.model, self.ref,
                                   int(self.match.sum()), self.items, self.exact,
                                   self.instances)
        return "\n".join(lines) + "\n"


def _load(path):
    from . import _crfsuite_format
    from ._persist import load_model_bytes

    with open(path, "rb") as f:
        data = f.read()
    if not (_crfsuite_format.is_crfsuite(data) or data[:4] == b"PK\x03\x04"):
        raise cli.CommandError(f"{path}: not a CRFsuite or fastcrf model file")
    model, _ = load_model_bytes(data, path)
    if not len(model.classes):
        raise cli.CommandError(f"{path}: the model has no label (trained on no data)")
    if isinstance((model.metadata or {}).get(cli._META_KEY), dict):
        # Its attributes come from a CRF++ template over token columns: attribute
        # files would match none of them and get transition-only tags.
        raise cli.CommandError(f"{path}: a 'fastcrf train' model with a feature "
                               f"template: tag column files with 'fastcrf tag'")
    return model


def _cmd_tag(args):
    if not args.model:
        raise cli.CommandError("no model given (-m MODEL)")
    model = _load(args.model)
    classes = list(model.classes)
    index = {label: k for k, label in enumerate(classes)}
    evaluation = _Evaluation(classes) if args.test else None
    out = _output(sys.stdout)
    path = args.data
    n_seq = 0
    started = time.perf_counter()
    with _open_text(path) as f:
        interactive = path == "-" and not stat.S_ISREG(os.fstat(f.fileno()).st_mode)
        for batch in _tag_batches(f, path, interactive):
            n_seq += len(batch.X)
            features = model.encode(batch.X)
            codes = model.viterbi_codes(features)
            offsets = features.seq_offsets
            want_marg = args.marginal or args.marginal_all
            marg = model.marginals(features) if want_marg and not args.quiet else None
            logp = (model.log_probability(features, codes)
                    if args.probability and not args.quiet else None)
            for s, labels in enumerate(batch.y):
                a, b = int(offsets[s]), int(offsets[s + 1])
                pred = codes[a:b]
                if evaluation is not None:
                    evaluation.add(np.array([index.get(lab, -1) for lab in labels],
                                            dtype=np.int64), pred)
                if args.quiet:
                    continue
                out.write(_tagged(s, labels, pred, a, classes, marg, logp, args))
            out.flush()
    seconds = time.perf_counter() - started
    if evaluation is not None:
        out.write(evaluation.report())
        rate = n_seq / seconds if seconds > 0 else float("inf")
        out.write(f"Elapsed time: {seconds:f} [sec] ({rate:.1f} [instance/sec])\n")
    out.flush()
    return 0


def _tag_batches(f, path, interactive):
    """The sequences of ``f`` in batches of :data:`_BATCH` (bounded memory), or one
    at a time from a pipe or a terminal, whose writer may wait for each answer."""
    limit = 1 if interactive else _BATCH
    lines, first, pending = [], 1, 0
    for line in f:
        lines.append(line)
        if line.strip("\r\n"):
            continue
        pending += 1
        if pending >= limit:
            part = read_data(lines, path, declarations=False, first_line=first)
            first += len(lines)
            lines, pending = [], 0
            if part.X:
                yield part
    part = read_data(lines, path, declarations=False, first_line=first)
    if part.X:
        yield part


def _tagged(s, labels, pred, first, classes, marg, logp, args):
    """One sequence's output lines, as CRFsuite's ``tag`` writes them."""
    rows = []
    if logp is not None:
        rows.append(f"@probability\t{float(np.exp(logp[s])):f}")
    for t, k in enumerate(pred.tolist()):
        text = classes[k]
        if args.reference:
            text = f"{labels[t]}\t{text}"
        if args.marginal:
            text += f":{marg[first + t, k]:f}"
        if args.marginal_all:
            text += "".join(f"\t{label}:{p:f}"
                            for label, p in zip(classes, marg[first + t].tolist()))
        rows.append(text)
    rows.append("")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- #
# dump                                                                          #
# --------------------------------------------------------------------------- #


def _cmd_dump(args):
    from .pycrfsuite import Tagger

    tagger = Tagger()
    try:
        tagger.open(args.model_file)
    except ValueError as exc:
        raise cli.CommandError(str(exc)) from None
    out = _output(sys.stdout)
    out.write(tagger._dump_text())
    out.flush()
    return 0


# --------------------------------------------------------------------------- #
# Registration                                                                  #
# --------------------------------------------------------------------------- #


def add_commands(sub):
    """Add the ``crfsuite`` command (``learn``, ``tag``, ``dump``) to ``fastcrf``'s
    subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        ``fastcrf``'s subcommand registry.
    """
    import argparse

    from ._version import __version__
    from .pycrfsuite import CRFSUITE_VERSION

    top = sub.add_parser(
        "crfsuite", help="CRFsuite's command line: learn, tag, dump",
        description="CRFsuite's frontend (crfsuite learn / tag / dump) over fastcrf: "
                    "the same arguments, files and output.")
    top.add_argument("--version", action="version",
                     version=f"fastcrf {__version__} (CRFsuite {CRFSUITE_VERSION}'s "
                             f"command line)")
    commands = top.add_subparsers(dest="crfsuite_command", metavar="COMMAND",
                                  parser_class=type(top))
    top.set_defaults(run=_no_command)

    p = commands.add_parser(
        "learn", help="obtain a model from a training set of instances",
        description="Train a model from data file(s), as CRFsuite's 'crfsuite learn'.",
        epilog=_LEARN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="DATA",
                   help="data file(s); '-' reads standard input")
    p.add_argument("-t", "--type", default="1d", choices=["1d"],
                   help="the graphical model (only '1d', the linear chain)")
    p.add_argument("-a", "--algorithm", default="lbfgs", metavar="NAME",
                   help="lbfgs (default), l2sgd, ap (averaged-perceptron), pa "
                        "(passive-aggressive) or arow")
    p.add_argument("-p", "--set", action="append", default=[], metavar="NAME=VALUE",
                   help="set the algorithm's parameter NAME to VALUE (repeatable)")
    p.add_argument("-m", "--model", default="", metavar="FILE",
                   help="store the model in FILE (default: none)")
    p.add_argument("-g", "--split", type=int, default=None, metavar="N",
                   help="shuffle the instances into N groups (for -e and -x)")
    p.add_argument("-e", "--holdout", type=int, default=None, metavar="M",
                   help="evaluate on group M after every iteration; train on the rest")
    p.add_argument("-x", "--cross-validate", action="store_true",
                   help="train once per group, holding it out (N-fold cross validation;"
                        " no model is stored)")
    p.add_argument("-l", "--log-to-file", dest="logfile", action="store_true",
                   help="write the log to BASE_ALGORITHM[_NAME=VALUE...] instead of "
                        "standard output")
    p.add_argument("-L", "--logbase", default="log.crfsuite", metavar="BASE",
                   help="the log file's base name (default log.crfsuite)")
    p.add_argument("-H", "--help-parameters", dest="help_params", action="store_true",
                   help="describe the parameters of the -a algorithm and exit")
    p.set_defaults(run=_cmd_learn)

    p = commands.add_parser(
        "tag", help="assign labels to instances with a model",
        description="Tag the instances of a data file (standard input when DATA is\n"
                    "omitted or '-') as CRFsuite's 'crfsuite tag'; -t evaluates the\n"
                    "model on the labels of the data.",
        epilog=_TAG_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default="-", metavar="DATA",
                   help="the data file (default: - for standard input)")
    p.add_argument("-m", "--model", metavar="MODEL",
                   help="the model file (CRFsuite's or fastcrf's)")
    p.add_argument("-t", "--test", action="store_true",
                   help="report the performance of the model on the data")
    p.add_argument("-r", "--reference", action="store_true",
                   help="output the reference labels of the data too")
    p.add_argument("-p", "--probability", action="store_true",
                   help="output the probability of each label sequence")
    p.add_argument("-i", "--marginal", action="store_true",
                   help="output the marginal probability of each predicted label")
    p.add_argument("-l", "--marginal-all", action="store_true",
                   help="output the marginal probabilities of every label")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="suppress the tagging results (with -t: only the report)")
    p.set_defaults(run=_cmd_tag)

    p = commands.add_parser(
        "dump", help="output a model in a plain-text format",
        description="Write a model in CRFsuite's text dump format.")
    p.add_argument("model_file", metavar="MODEL", help="the model file")
    p.set_defaults(run=_cmd_dump)


def _no_command(args):
    raise cli.CommandError("no crfsuite command given: learn, tag or dump (see "
                           "'fastcrf crfsuite --help')")


def main(argv=None):
    """The ``fastcrf-crfsuite`` console script: ``fastcrf crfsuite ARGS``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, as :func:`fastcrf.cli.main`'s.
    """
    return cli.run_as("crfsuite", argv)
