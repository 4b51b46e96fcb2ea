"""CRF++'s command lines: ``fastcrf crf_learn`` and ``fastcrf crf_test`` (installed
also as the console scripts ``fastcrf-crf_learn`` and ``fastcrf-crf_test``).

They take CRF++'s positional arguments and flags (CRF++ 0.58's ``crf_learn.cpp`` /
``encoder.cpp`` and ``tagger.cpp``) and write CRF++'s output::

    crf_learn [-f N] [-c C] [-p THREADS] [-a CRF-L2|CRF-L1|MIRA] [-m MAXITER] [-e ETA]
              [-H SHRINK] [-t] TEMPLATE TRAIN MODEL
    crf_learn -C TEXTMODEL MODEL
    crf_test -m MODEL [-v 0|1|2] [-n N] [-c COSTFACTOR] [-o OUT] [FILE ...]

How CRF++'s training maps onto fastcrf's (see :data:`ALGORITHMS`):

- ``CRF-L2`` (CRF++'s default, also spelt ``CRF``) minimises
  ``sum_i -log p(y_i|x_i) + ||w||^2 / (2 C)``: fastcrf's 'lbfgs' with ``c1 = 0``,
  ``c2 = 1 / (2 C)`` (fastcrf's objective is ``-LL + c1 ||w||_1 + c2 ||w||^2``).
- ``CRF-L1`` minimises ``sum_i -log p(y_i|x_i) + ||w||_1 / C``: OWL-QN with
  ``c1 = 1 / C``, ``c2 = 0``.
- Both stop as CRF++ does: when the relative change of the objective,
  ``|F_{k-1} - F_k| / F_{k-1}``, stays below ``-e`` for three iterations in a row, or
  after ``-m`` iterations (CRF++ counts objective evaluations, line-search trials
  included; fastcrf counts L-BFGS iterations).
- ``MIRA`` is CRF++'s one-best MIRA (Crammer's passive-aggressive with the number of
  wrong labels as the loss, each sentence's total step capped at ``C``, stopping when
  the KKT violations vanish).  fastcrf runs its 'pa' trainer (PA-I: each step capped at
  ``c = C``, error-sensitive loss ``sqrt(#wrong labels)``, averaged weights), which
  stops when an epoch makes no loss or after ``-m`` epochs (100 when ``-m`` is not
  given: CRF++'s default of 100,000 would never end on data the model cannot
  separate).  ``-e`` and ``-H`` (shrinking) do not apply to it.

The model has what a CRF++ model has: a weight for every (attribute, label) pair,
label-transition weights when the template has a ``B`` line (none without one), and no
start/end scores; labels in sorted order.  ``-f N`` keeps the attributes that occur at
least ``N`` times.  ``B`` lines with macros (``B01:%x[0,1]``, observation-conditioned
transitions) are not learned yet: plain label transitions are learned in their place,
and crf_learn says so.

The model file is fastcrf's (:mod:`fastcrf._persist`) with the template in its
metadata, so ``crf_test -m MODEL`` needs no template (and ``fastcrf tag`` / ``info``
read it too); ``-t`` also writes CRF++'s text model to ``MODEL.txt``
(:mod:`fastcrf._crfpp_text`), which CRF++'s ``crf_learn -C`` converts to a CRF++
binary model, and ``crf_learn -C MODEL.txt MODEL`` here reads back (``crf_test``
also reads a text model directly).
"""

import os
import sys
import time

from . import _edges, cli

__all__ = ["learn_main", "test_main"]

#: CRF++'s ``-a`` values (case-insensitive, as CRF++ lower-cases them) -> the name
#: crf_learn reports.
ALGORITHMS = {"crf": "CRF-L2", "crf-l2": "CRF-L2", "crf-l1": "CRF-L1", "mira": "MIRA"}
#: CRF++'s defaults (``crf_learn.cpp``'s option table).
DEFAULT_MAXITER = 100000
#: Epochs of MIRA when ``-m`` is not given (see the module docstring).
MIRA_MAXITER = 100
#: CRF++ stops after this many iterations in a row below ``-e`` ("3 is ad-hoc").
CONVERGED_AFTER = 3

_CRFPP_META = "crfpp"

_LEARN_EPILOG = """\
CRF++'s flags, mapped onto fastcrf: -a CRF-L2 is L-BFGS on
-LL + ||w||^2/(2C) (fastcrf's c2 = 1/(2C)); -a CRF-L1 is OWL-QN on -LL + ||w||_1/C
(c1 = 1/C); both stop when the objective's relative change stays below -e for 3
iterations (-m counts L-BFGS iterations).  -a MIRA is fastcrf's passive-aggressive
(PA-I, c = C, averaged; 100 epochs unless -m is given; -e and -H do not apply).
Template B lines: a plain 'B' learns label transitions, and a template without one
learns none, as in CRF++; each B line with macros (B01:%%x[0,1]) learns
observation-conditioned transitions, one weight per label pair for each of its
values, as in CRF++ (every -a; not with -t).  The model is a fastcrf file
holding the template (crf_test
-m MODEL needs nothing else); -t also writes CRF++'s text model MODEL.txt, which
'crf_learn -C MODEL.txt MODEL' (here or in CRF++) converts back."""

_TEST_EPILOG = """\
Output as CRF++'s: each input row, tab-separated, then the predicted label; a blank
line after each sentence.  -v 1 adds '# P' before each sentence (P: the probability
of the predicted sequence) and '/p' to each label (its marginal); -v 2 also lists
every label's marginal as 'label/p'.  -n N prints n-best lists: the N most probable
labellings of each sentence (exact), each after a line '# n P' (n from 0, P its
probability) and followed by a blank line; -n 1 is the best one with its '# 0 P'
line.  A model trained under constraints only outputs labellings they allow.  MODEL
is a model written by 'fastcrf crf_learn' or 'fastcrf train', or a CRF++ text model
(crf_learn -t)."""


# --------------------------------------------------------------------------- #
# Registration (called by fastcrf.cli)                                          #
# --------------------------------------------------------------------------- #


def add_commands(sub):
    """Add the ``crf_learn`` and ``crf_test`` parsers to ``fastcrf``'s subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        ``fastcrf``'s subcommand registry.
    """
    import argparse

    p = sub.add_parser(
        "crf_learn", help="CRF++'s crf_learn: template + training file -> model",
        description="Train a CRF as CRF++'s crf_learn does, with its arguments.",
        epilog=_LEARN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="TEMPLATE TRAIN MODEL: CRF++ template file, training column "
                        "file, model to write (with -C: TEXTMODEL MODEL)")
    p.add_argument("-f", "--freq", type=int, default=1, metavar="INT",
                   help="use features that occur no less than INT times (default 1)")
    p.add_argument("-m", "--maxiter", type=int, default=None, metavar="INT",
                   help=f"maximum iterations (default {DEFAULT_MAXITER}; MIRA: "
                        f"{MIRA_MAXITER} epochs)")
    p.add_argument("-c", "--cost", type=float, default=1.0, metavar="FLOAT",
                   help="cost C: larger fits the training data more closely (default 1.0)")
    p.add_argument("-e", "--eta", type=float, default=0.0001, metavar="FLOAT",
                   help="termination criterion: relative change of the objective "
                        "(default 0.0001)")
    p.add_argument("-C", "--convert", action="store_true",
                   help="convert a CRF++ text model to a model file")
    p.add_argument("-t", "--textmodel", action="store_true",
                   help="also write CRF++'s text model to MODEL.txt")
    p.add_argument("-a", "--algorithm", default="CRF", metavar="(CRF|CRF-L1|CRF-L2|MIRA)",
                   help="training algorithm (default CRF, i.e. CRF-L2)")
    p.add_argument("-p", "--thread", type=int, default=0, metavar="INT",
                   help="number of threads (default 0: all CPUs)")
    p.add_argument("-H", "--shrinking-size", type=int, default=20, metavar="INT",
                   help="CRF++'s MIRA shrinking size (checked, not used: default 20)")
    p.set_defaults(run=_cmd_learn)

    p = sub.add_parser(
        "crf_test", help="CRF++'s crf_test: tag column files with a model",
        description="Tag column files as CRF++'s crf_test does, with its arguments.",
        epilog=_TEST_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="column files to tag (default: - for stdin)")
    p.add_argument("-m", "--model", metavar="FILE", help="the model file")
    p.add_argument("-n", "--nbest", type=int, default=0, metavar="INT",
                   help="output the INT most probable labellings (default 0: the best "
                        "one, without a '# n P' line)")
    p.add_argument("-v", "--verbose", type=int, default=0, metavar="INT",
                   help="verbose level: 0, 1 (probabilities of the predicted labels) or "
                        "2 (of every label)")
    p.add_argument("-c", "--cost-factor", type=float, default=1.0, metavar="FLOAT",
                   help="multiply every weight by FLOAT (default 1.0)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(run=_cmd_test)


def learn_main(argv=None):
    """The ``fastcrf-crf_learn`` console script: ``fastcrf crf_learn ARGS``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, as :func:`fastcrf.cli.main`'s.
    """
    return cli.run_as("crf_learn", argv)


def test_main(argv=None):
    """The ``fastcrf-crf_test`` console script: ``fastcrf crf_test ARGS``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, as :func:`fastcrf.cli.main`'s.
    """
    return cli.run_as("crf_test", argv)


# --------------------------------------------------------------------------- #
# crf_learn                                                                     #
# --------------------------------------------------------------------------- #


def _check_learn_flags(args):
    """CRF++'s checks (and fastcrf's), all before any file is read."""
    algorithm = ALGORITHMS.get(args.algorithm.lower())
    if algorithm is None:
        raise cli.CommandError(f"-a (--algorithm): unknown algorithm {args.algorithm!r}; "
                               "choose CRF, CRF-L2, CRF-L1 or MIRA")
    if args.freq < 0:
        raise cli.CommandError(f"-f (--freq) must be >= 0, got {args.freq}")
    if args.maxiter is not None and args.maxiter < 1:
        raise cli.CommandError(f"-m (--maxiter) must be >= 1, got {args.maxiter}")
    if not args.cost > 0 or args.cost == float("inf"):
        raise cli.CommandError(f"-c (--cost) must be a finite number > 0, got {args.cost} "
                               "(the penalty is 1/(2C) ||w||^2, or 1/C ||w||_1)")
    if not args.eta > 0 or args.eta == float("inf"):
        raise cli.CommandError(f"-e (--eta) must be a finite number > 0, got {args.eta}")
    if args.thread < 0:
        raise cli.CommandError(f"-p (--thread) must be >= 0 (0: all CPUs), got "
                               f"{args.thread}")
    if args.shrinking_size < 1:
        raise cli.CommandError(f"-H (--shrinking-size) must be >= 1, got "
                               f"{args.shrinking_size}")
    wanted = 2 if args.convert else 3
    if len(args.files) != wanted:
        usage = "TEXTMODEL MODEL (with -C)" if args.convert else "TEMPLATE TRAIN MODEL"
        raise cli.CommandError(f"crf_learn takes {usage}, got {len(args.files)} "
                               f"argument{'s' if len(args.files) != 1 else ''}")
    return algorithm


def _check_output_folder(path, what):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # checked now, not after minutes of training
        raise cli.CommandError(f"cannot write the {what} {path!r}: no such folder "
                               f"{folder!r}")


def _fit_params(algorithm, args):
    """fastcrf.CRF parameters for CRF++'s flags (see the module docstring)."""
    from ._estimator import CRF

    params = CRF().get_params()
    params.update(min_freq=float(args.freq), all_possible_states=True,
                  all_possible_transitions=True, n_jobs=args.thread or None,
                  verbose=False, random_state=0)
    if algorithm == "MIRA":
        params.update(algorithm="pa", pa_type=1, c=args.cost, error_sensitive=True,
                      averaging=True, epsilon=0.0,
                      max_iterations=args.maxiter or MIRA_MAXITER)
        return params
    # CRF++'s own stopping rule is the listener's (_Progress): fastcrf's are off.
    params.update(algorithm="lbfgs", epsilon=0.0, delta=0.0, period=1,
                  max_iterations=args.maxiter or DEFAULT_MAXITER)
    if algorithm == "CRF-L2":
        params.update(c1=0.0, c2=1.0 / (2.0 * args.cost))
    else:
        params.update(c1=1.0 / args.cost, c2=0.0)
    return params


class _Progress:
    """The listener of :func:`fastcrf._fit.fit_model`: CRF++'s log lines on stdout,
    and its stopping rule for CRF-L1 / CRF-L2."""

    def __init__(self, algorithm, args, transitions):
        self.algorithm = algorithm
        self.args = args
        self.transitions = transitions
        self.old = None
        self.converge = 0

    def prepared(self, data, layout, mask, vocabulary, classes):
        K = len(classes)
        a = self.args
        print(f"Number of sentences: {data.n_sequences}")
        print(f"Number of features:  {layout.n_weights + (K * K if self.transitions else 0)}")
        print(f"Number of thread(s): {a.thread or os.cpu_count() or 1}")
        print(f"Freq:                {a.freq}")
        print(f"eta:                 {a.eta:.5f}")
        print(f"C:                   {a.cost:.5f}")
        print(f"shrinking size:      {a.shrinking_size}")
        print(f"Algorithm:           {self.algorithm}", flush=True)

    def iteration(self, epoch, info, weights_fn, layout):
        obj = info["objective"]
        if self.algorithm == "MIRA":
            print(f"iter={epoch - 1} loss={obj:.5f} norm={info['weight_norm']:.5f}",
                  flush=True)
            return False
        diff = 1.0 if self.old is None else abs(self.old - obj) / self.old
        self.old = obj
        self.converge = self.converge + 1 if diff < self.args.eta else 0
        act = info.get("active_features")
        print(f"iter={epoch - 1} act={act} obj={obj:.5f} diff={diff:.5f}", flush=True)
        return self.converge == CONVERGED_AFTER


#: How a file that is not UTF-8 is read: one character per byte, so that any 8-bit
#: encoding (EUC-JP, Shift_JIS, Latin-1) is split, matched and printed back byte for
#: byte, as CRF++ (which never decodes its input) does.
BYTE_ENCODING = "latin-1"


def _read_columns(path, encoding=None):
    """``(sentences, encoding)`` of a CRF++ data file (or ``-``, standard input).

    UTF-8 when the file is valid UTF-8, else :data:`BYTE_ENCODING`; ``encoding``
    :data:`BYTE_ENCODING` reads byte for byte whatever the file holds (crf_test, for a
    model trained on such data, so that its strings are the same bytes as CRF++'s).
    """
    import io

    from .io import read_conll

    if path == "-":
        raw = getattr(sys.stdin, "buffer", None)
        if raw is None:  # a text stream (one a program or a test put there): as it is
            return list(read_conll(sys.stdin, docstart=False)), "utf-8"
        # Read once so that a second decoding is possible.
        source = io.BytesIO(raw.read())
    else:
        source = path
    for enc in ([BYTE_ENCODING] if encoding == BYTE_ENCODING
                else ["utf-8", BYTE_ENCODING]):
        if path == "-":
            source.seek(0)
        try:
            # CRF++ reads -DOCSTART- as an ordinary row.
            return list(read_conll(source, docstart=False, encoding=enc)), enc
        except ValueError as exc:
            if enc == BYTE_ENCODING or "not valid" not in str(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _read_training(path):
    """Tokens, labels, the field count and the text encoding of a CRF++ training
    file."""
    sentences, encoding = _read_columns(path)
    if not sentences:
        raise cli.CommandError(f"{cli._name(path)}: no sentences in the file")
    n_fields = len(sentences[0][0])
    if n_fields < 2:
        raise cli.CommandError(f"{cli._name(path)}: rows have a single field; training "
                               "needs token columns and the label in the last column")
    X = [[row[:-1] for row in s] for s in sentences]
    y = [[row[-1] for row in s] for s in sentences]
    return X, y, n_fields, encoding


def _streamed_training(template, path, min_freq):
    """``(dataset, n_fields, encoding)``: a CRF++ training file streamed into a
    labelled :class:`~fastcrf.Dataset` (flat arrays, not per-token feature lists: a
    fraction of the memory), which trains bitwise the model of
    :func:`_read_training`'s lists.

    Its first sentence is read first, so that an empty file, rows of a single field
    or a template reading past the token columns fail as :func:`_read_training`
    does; the encoding is found as :func:`_read_columns` finds it.
    """
    import contextlib

    from ._dataset import Dataset
    from .io import read_conll

    for enc in ("utf-8", BYTE_ENCODING):
        try:
            with contextlib.closing(read_conll(path, docstart=False,
                                               encoding=enc)) as rows:
                first = next(rows, None)
            if first is None:
                raise cli.CommandError(f"{cli._name(path)}: no sentences in the file")
            n_fields = len(first[0])
            if n_fields < 2:
                raise cli.CommandError(f"{cli._name(path)}: rows have a single field; "
                                       "training needs token columns and the label in "
                                       "the last column")
            cli._check_template_fits(template, n_fields - 1, cli._name(path))
            # CRF++ reads -DOCSTART- as an ordinary row.
            dataset = Dataset.from_conll(path, template, label_column=-1, docstart=False,
                                         encoding=enc, min_freq=min_freq)
            return dataset, n_fields, enc
        except ValueError as exc:
            if enc == BYTE_ENCODING or "not valid" not in str(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _cmd_learn(args):
    from ._fit import fit_model
    from ._persist import save_model

    algorithm = _check_learn_flags(args)
    if args.convert:
        return _convert(*args.files)
    template_path, train_path, model_path = args.files
    template = cli._template(template_path)
    _check_output_folder(model_path, "model")
    if not os.path.isfile(train_path) and train_path != "-":
        raise cli.CommandError(f"no such file or directory: {train_path!r}")
    macros, transitions = _edges.template_bigrams(template)
    if macros is not None and args.textmodel:
        raise cli.CommandError(f"{template_path}: -t: CRF++'s text model of fastcrf "
                               "holds no observation-conditioned transitions (B lines "
                               "with macros) yet")

    started = time.perf_counter()
    params = _fit_params(algorithm, args)
    if macros is None and train_path != "-":
        features, n_fields, encoding = _streamed_training(template, train_path,
                                                          params["min_freq"])
        y, n_sentences, n_tokens = None, features.n_sequences, features.n_tokens
    else:
        X, y, n_fields, encoding = _read_training(train_path)
        cli._check_template_fits(template, n_fields - 1, cli._name(train_path))
        features = (template.transform(X) if macros is None
                    else _edges.template_features(template, macros, X))
        del X
        n_sentences, n_tokens = len(y), sum(map(len, y))
    print(f"reading training data: {n_sentences} sentences, {n_tokens} tokens, "
          f"{time.perf_counter() - started:.2f} s", flush=True)
    if macros is not None:
        params["transition_prefix"] = _edges.TEMPLATE_PREFIX
    t0 = time.perf_counter()
    fitted = fit_model(params, features, y, ends=False, transitions=transitions,
                       listener=_Progress(algorithm, args, transitions))
    fitted = sorted_labels(fitted)
    meta = {cli._META_KEY: {"version": cli._META_VERSION, "template": template.text,
                            "n_fields": n_fields, "label_column": n_fields - 1,
                            "sep": None},
            _CRFPP_META: {"algorithm": algorithm, "C": args.cost, "freq": args.freq,
                          "eta": args.eta, "maxiter": params["max_iterations"],
                          "shrinking_size": args.shrinking_size, "encoding": encoding}}
    save_model(fitted, model_path, params=params, metadata=meta)
    if args.textmodel:
        _write_text_model(fitted, template, n_fields - 1, model_path + ".txt", encoding)
    print(f"\nDone!{time.perf_counter() - t0:.2f} s", flush=True)
    return 0


def sorted_labels(model):
    """``model`` with its labels in sorted order (CRF++'s, which sorts them as byte
    strings: the code-point order of Python's str), its weights permuted to match.

    Parameters
    ----------
    model : CRFModel

    Returns
    -------
    CRFModel
    """
    import numpy as np

    from ._layout import StateLayout
    from ._model import CRFModel

    order = sorted(range(len(model.classes)), key=model.classes.__getitem__)
    if order == list(range(len(order))):
        return model
    W = model.state_weights()[:, order]
    layout = StateLayout.dense(*W.shape)
    chain = np.concatenate((model.transitions[np.ix_(order, order)].ravel(),
                            model.start[order], model.end[order]))
    allowed = model.constraints
    if allowed is not None:   # START and END stay the last two rows and columns
        ix = [*order, len(order), len(order) + 1]
        allowed = allowed[np.ix_(ix, ix)]
    sorted_model = CRFModel([model.classes[k] for k in order], model.vocabulary, layout,
                            layout.from_dense(W), chain, training_log=model.training_log,
                            n_iter=model.n_iter, metadata=model.metadata, constraints=allowed)
    return _edges.carry_edges(model, sorted_model, order=order)


def _write_text_model(model, template, xsize, path, encoding="utf-8"):
    from ._atomic import atomic_file
    from ._crfpp_text import format_text_model

    text = format_text_model(model, _text_template(template), xsize)
    # In the training data's bytes, so that CRF++ reads the same strings.
    with atomic_file(path, "w", encoding=encoding) as f:
        f.write(text)


def _text_template(template):
    """The template of the model crf_learn learned: its unigram lines, then its plain
    bigram lines, or ``B`` when it has only lines with macros (what was learned)."""
    from ._crfpp_text import plain_bigram_lines
    from .templates import Template

    bigram = plain_bigram_lines(template) or (["B"] if template.bigram else [])
    return Template("\n".join(template.unigram + bigram) + "\n")


def _convert(text_path, model_path):
    """``crf_learn -C``: a CRF++ text model -> a fastcrf model file with its template."""
    from ._persist import save_model

    _check_output_folder(model_path, "model")
    model, template, xsize = _read_text_model(text_path)
    meta = {cli._META_KEY: {"version": cli._META_VERSION, "template": template,
                            "n_fields": xsize + 1, "label_column": xsize, "sep": None}}
    save_model(model, model_path, params={}, metadata=meta)
    print(f"converted {text_path} ({len(model.classes)} labels, "
          f"{model.layout.n_attributes} attributes) to {model_path}")
    return 0


def _read_text_model(path):
    from ._crfpp_text import parse_text_model

    if not os.path.isfile(path):
        raise cli.CommandError(f"no such file or directory: {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # A model of 8-bit data (CRF++'s own, or crf_learn -t's): byte for byte.
        text = data.decode(BYTE_ENCODING)
    return parse_text_model(text, path)


# --------------------------------------------------------------------------- #
# crf_test                                                                      #
# --------------------------------------------------------------------------- #


def _check_test_flags(args):
    if args.model is None:
        raise cli.CommandError("crf_test needs -m MODEL (a model written by 'fastcrf "
                               "crf_learn', or a CRF++ text model)")
    if args.verbose not in (0, 1, 2):
        raise cli.CommandError(f"-v (--verbose) must be 0, 1 or 2, got {args.verbose}")
    if args.nbest < 0:
        raise cli.CommandError(f"-n (--nbest) must be >= 0, got {args.nbest}")
    if not args.cost_factor > 0 or args.cost_factor == float("inf"):
        raise cli.CommandError(f"-c (--cost-factor) must be a finite number > 0, got "
                               f"{args.cost_factor}")
    if args.output is not None:
        _check_output_folder(args.output, "output")


def _tagging_model(path):
    """``(model, template, xsize, label_column)`` of a model file, told by content:
    fastcrf's (with the template crf_learn / train stored) or a CRF++ text model."""
    from ._crfpp_text import is_text_model
    from ._persist import load_model
    from .templates import Template

    if not os.path.exists(path):
        raise cli.CommandError(f"no such model file: {path!r}")
    if os.path.isdir(path):
        raise cli.CommandError(f"{path}: a folder, not a model file")
    with open(path, "rb") as f:
        head = f.read(16)
    if is_text_model(head):
        model, text, xsize = _read_text_model(path)
        return model, Template(text), xsize, None
    if head[:4] == b"lCRF":
        raise cli.CommandError(f"{path}: a CRFsuite model holds no feature template; "
                               "crf_test needs a model written by 'fastcrf crf_learn'")
    if len(head) >= 4 and 100 <= int.from_bytes(head[:4], "little") < 200:
        raise cli.CommandError(
            f"{path}: a CRF++ binary model, which fastcrf does not read; write its text "
            "model with CRF++ ('crf_learn -t', MODEL.txt) and convert that with "
            "'fastcrf crf_learn -C MODEL.txt MODEL' (or give MODEL.txt to -m)")
    if head[:2] != b"PK":
        raise cli.CommandError(f"{path}: not a model file (neither fastcrf's nor a CRF++ "
                               "text model)")
    model, _ = load_model(path)
    meta = model.metadata.get(cli._META_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("template"), str):
        raise cli.CommandError(f"{path}: the model holds no feature template (it was not "
                               "written by 'fastcrf crf_learn' or 'fastcrf train'), so "
                               "crf_test cannot extract its features")
    n_fields, k = meta.get("n_fields"), meta.get("label_column")
    if not isinstance(n_fields, int) or not isinstance(k, int) or not 0 <= k < n_fields:
        raise cli.CommandError(f"{path}: the model's column layout is malformed")
    return model, Template(meta["template"]), n_fields - 1, k


def _scaled(model, factor):
    """``model`` with every weight multiplied by ``factor`` (crf_test's ``-c``)."""
    from ._model import CRFModel

    if factor == 1.0:
        return model
    scaled = CRFModel(model.classes, model.vocabulary, model.layout, model.state * factor,
                      model.chain * factor, training_log=model.training_log,
                      n_iter=model.n_iter, metadata=model.metadata,
                      constraints=model.constraints)
    return _edges.carry_edges(model, scaled, factor=factor)


def _token_columns(sentences, xsize, label_column, name):
    """The first ``xsize`` fields of every row (CRF++ reads those and prints them all);
    for a 'fastcrf train' model whose label was not the last column, the row without
    that column when the row still has it."""
    n = len(sentences[0][0])
    if n < xsize:
        raise cli.CommandError(f"{name}: rows have {n} field{'s' if n != 1 else ''}; the "
                               f"model reads {xsize} token column"
                               f"{'s' if xsize != 1 else ''}")
    if label_column is not None and label_column < xsize and n == xsize + 1:
        k = label_column
        return [[row[:k] + row[k + 1:] for row in s] for s in sentences]
    return [[row[:xsize] for row in s] for s in sentences]


def _format(sentences, candidates, marg, classes, verbose, nbest):
    """CRF++'s ``toString`` for a batch of sentences: the lines, joined.

    ``candidates[i]``: the labellings to print for sentence i, a list of ``(label
    codes, probability or None)``: the best one, or with ``nbest`` (-n) the n best,
    each after a ``# n P`` line (CRF++'s ``TaggerImpl::toString``); ``marg``: the
    token marginals (n_tokens, K) for ``verbose`` >= 1.
    """
    import numpy as np

    out = []
    names = np.asarray(classes, dtype=object)
    pos = 0
    for sentence, cands in zip(sentences, candidates):
        T = len(sentence)
        m = marg[pos:pos + T] if verbose else None
        for n, (seq, prob) in enumerate(cands):
            if nbest:
                out.append(f"# {n} {prob:.6f}\n")
            elif verbose:
                out.append(f"# {prob:.6f}\n")
            labels = names[seq].tolist()
            if verbose:
                best = m[np.arange(T), seq].tolist()
                labels = [f"{lab}/{p:.6f}" for lab, p in zip(labels, best)]
                if verbose >= 2:
                    labels = [lab + "".join(f"\t{c}/{p:.6f}" for c, p in zip(classes, row))
                              for lab, row in zip(labels, m.tolist())]
            for row, label in zip(sentence, labels):
                out.append("\t".join(row) + "\t" + label + "\n")
            out.append("\n")
        pos += T
    return "".join(out)


def _model_encoding(model):
    """:data:`BYTE_ENCODING` when crf_learn read the model's training data byte for
    byte; None otherwise (each test file is then read as :func:`_read_columns` finds:
    a stray non-UTF-8 byte is tagged, as CRF++ tags it, not refused)."""
    meta = model.metadata.get(_CRFPP_META)
    enc = meta.get("encoding") if isinstance(meta, dict) else None
    return BYTE_ENCODING if enc == BYTE_ENCODING else None


def _tag_file(path, model, template, xsize, label_column, args):
    """The tagged text of one file and the encoding to write it in (the file's)."""
    import numpy as np

    sentences, encoding = _read_columns(path, _model_encoding(model))
    if not sentences:
        return "", encoding
    tokens = _token_columns(sentences, xsize, label_column, cli._name(path))
    # Attributes the model never saw are dropped, as CRF++ does.
    features = _edges.encode_for(model, template, tokens)
    marg = model.marginals(features) if args.verbose else None
    if args.nbest > 1:
        from . import _lattice_queries

        candidates = _lattice_queries.nbest(model, features, args.nbest)
    else:
        codes = model.viterbi_codes(features)
        probs = (np.exp(model.log_probability(features, codes))
                 if args.verbose or args.nbest else [None] * len(sentences))
        candidates = [[(seq, p)] for seq, p in
                      zip(np.split(codes, features.seq_offsets[1:-1]), probs)]
    return (_format(sentences, candidates, marg, model.classes, args.verbose, args.nbest),
            encoding)


def _cmd_test(args):
    from ._atomic import atomic_file

    _check_test_flags(args)
    model, template, xsize, label_column = _tagging_model(args.model)
    model = _scaled(model, args.cost_factor)
    files = args.files or ["-"]
    for path in files:
        if path != "-" and not os.path.isfile(path):
            raise cli.CommandError(f"no such file or directory: {path!r}")
    # Bytes, in each input's own encoding: a file read byte for byte is printed back
    # byte for byte, whatever the locale of standard output.
    if args.output is None:
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)  # None: a text stream (a test's)
        for path in files:
            text, encoding = _tag_file(path, model, template, xsize, label_column, args)
            if out is None:
                sys.stdout.write(text)
            else:
                out.write(text.encode(encoding))
        (out or sys.stdout).flush()
        return 0
    with atomic_file(args.output, "wb") as f:
        for path in files:
            text, encoding = _tag_file(path, model, template, xsize, label_column, args)
            f.write(text.encode(encoding))
    return 0
