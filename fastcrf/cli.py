"""The ``fastcrf`` command line: train, tag, eval, info, demo and bench.

The commands cover the CRF++ / CRFsuite workflow on CoNLL-style column files::

    fastcrf train -t chunking -m model.npz train.txt.gz     # template + data -> model
    fastcrf tag -m model.npz test.txt.gz > tagged.txt        # adds a predicted column
    fastcrf eval tagged.txt                                  # conlleval's report
    fastcrf info -m model.npz                                # labels, weights, transitions
    fastcrf demo                                             # all of it, on synthetic data
    fastcrf bench                                            # against the peers installed

Flags follow CRF++ and CRFsuite where they mean the same thing: ``-t`` template,
``-m`` model, ``-a`` algorithm, ``-c`` CRF++'s cost ``C``, ``-f`` CRF++'s feature
frequency cut-off, ``-p name=value`` CRFsuite's training parameters, ``-i`` marginals.

The model file is :meth:`fastcrf.CRF.save`'s ``.npz``; ``train`` stores its feature
template (and the column layout of the training file) in the file's metadata, so
``tag`` extracts exactly the features the model was trained on.

Every failure the user can cause (a missing or malformed file, a bad template, a bad
flag, a file that is not a model) prints one ``fastcrf: error: ...`` line on stderr
and exits with status 1 (2 for a bad command line); Ctrl-C exits with 130.  Set
``FASTCRF_DEBUG=1`` to get the Python traceback instead.
"""

import argparse
import os
import sys
import tempfile
import time

__all__ = ["main"]

PROG = "fastcrf"

#: Templates that ``-t`` accepts by name.
BUILTIN_TEMPLATES = ("chunking",)

# The feature template of `fastcrf demo`: the word in a five-token window plus word
# bigrams, CRF++ style (the synthetic corpus has one token column).
DEMO_TEMPLATE = """\
# Unigram
U00:%x[-2,0]
U01:%x[-1,0]
U02:%x[0,0]
U03:%x[1,0]
U04:%x[2,0]
U05:%x[-1,0]/%x[0,0]
U06:%x[0,0]/%x[1,0]

# Bigram
B
"""

# Metadata key and version of what `train` stores in the model file, so a later
# layout change can still read today's models.
_META_KEY = "fastcrf_cli"
_META_VERSION = 1


class CommandError(Exception):
    """A failure to report as one line on stderr (exit status 1)."""


class _UsageError(Exception):
    """A bad command line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block and exits; a single line that names the
    # help command is easier to read in a log, and main() decides the exit.
    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- #
# Small helpers                                                                 #
# --------------------------------------------------------------------------- #


def _say(*parts, quiet=False):
    if not quiet:
        print(*parts, flush=True)


def _separator(text):
    """``--sep`` value: ``\\t`` (as typed in a shell) or ``tab`` mean a tab."""
    if text is None:
        return None
    if text in ("\\t", "tab", "TAB"):
        return "\t"
    if text == "" or "\n" in text:
        raise CommandError(f"--sep must be a non-empty separator, got {text!r}")
    return text


def _template(spec):
    """A :class:`~fastcrf.templates.Template` from a file path or a built-in name."""
    from .templates import CHUNKING_TEMPLATE, Template

    if os.path.exists(spec):
        try:
            return Template.from_file(spec)
        except UnicodeDecodeError as exc:
            raise CommandError(f"{spec}: the template is not UTF-8 text ({exc.reason})") \
                from None
        except ValueError as exc:
            raise CommandError(f"{spec}: {exc}") from None
    if spec == "chunking":
        return Template(CHUNKING_TEMPLATE)
    raise CommandError(f"no such template file: {spec!r} (a CRF++ template file, or a "
                       f"built-in name: {', '.join(BUILTIN_TEMPLATES)})")


def _open_input(path):
    """A path, or ``sys.stdin`` for ``-``."""
    return sys.stdin if path == "-" else path


def _name(path):
    return "<stdin>" if path == "-" else path


def _read_sentences(path, sep):
    from .io import read_conll

    sentences = list(read_conll(_open_input(path), sep=sep))
    if not sentences:
        raise CommandError(f"{_name(path)}: no sentences in the file")
    return sentences


def _load_labelled(path, label_column, sep):
    """Sentences of a training / dev file: ``(tokens, labels, n_fields)``."""
    sentences = _read_sentences(path, sep)
    n_fields = len(sentences[0][0])
    if n_fields < 2:
        raise CommandError(f"{_name(path)}: rows have a single field; training needs at "
                           "least one token column and a label column")
    if not -n_fields <= label_column < n_fields:
        raise CommandError(f"--label-column {label_column} is out of range for "
                           f"{_name(path)}, whose rows have {n_fields} fields")
    k = label_column % n_fields
    X = [[row[:k] + row[k + 1:] for row in s] for s in sentences]
    y = [[row[k] for row in s] for s in sentences]
    return X, y, n_fields


def _check_template_fits(template, n_token_columns, where):
    need = template.n_columns
    if need > n_token_columns:
        raise CommandError(
            f"{where}: the template reads column {need - 1} but the rows have "
            f"{n_token_columns} token column{'s' if n_token_columns != 1 else ''} "
            f"(columns are numbered from 0, the label column not counted)")


def _parse_param(text):
    """CRFsuite's ``-p name=value``: the value as an int, float, bool or str."""
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise CommandError(f"-p expects NAME=VALUE, got {text!r}")
    low = value.lower()
    if low in ("true", "false"):
        return name, low == "true"
    if low == "none":
        return name, None
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, value


def _size(path):
    n = os.path.getsize(path)
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


# The CRF parameter each option of `train` sets: (parameter, args attribute, option),
# so that an error names the option the user typed.
_TRAIN_OPTIONS = (("algorithm", "algorithm", "-a"), ("c1", "c1", "--c1"),
                  ("c2", "c2", "--c2"), ("min_freq", "min_freq", "-f"),
                  ("max_iterations", "max_iterations", "-i"), ("n_jobs", "n_jobs", "-j"),
                  ("random_state", "seed", "--seed"),
                  ("hash_features", "hash_features", "--hash-features"),
                  ("hash_seed", "hash_seed", "--hash-seed"),
                  ("constraints", "constraints", "--constraints"))


def _check_jobs(n_jobs):
    """``-j``: checked before anything is read or written."""
    if n_jobs == 0:
        raise CommandError("-j must be a number of threads >= 1, or -1 (all) or -2 (all "
                           "but one) and so on; got 0")


def _check_seed(seed):
    if seed < 0:
        raise CommandError(f"--seed must be >= 0, got {seed}")


def _check_output(path, option):
    """An output path whose folder exists and that is no folder, checked before the
    work that produces it (a write that fails after minutes of training helps no one)."""
    if os.path.isdir(path):
        raise CommandError(f"{option} {path}: a folder, not a file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"{option} {path}: no such folder {folder!r}")


def _train_params(args):
    """The CRF parameters of ``train``'s options and ``-p``, every one checked before
    any data is read, each error naming the option that set the value."""
    from ._estimator import CRF
    from ._params import CONSTRAINTS, resolve

    _check_jobs(args.n_jobs)
    _check_seed(args.seed)
    if args.cost is not None and args.c2 is not None:
        raise CommandError("give -c (CRF++'s cost) or --c2, not both")
    if args.cost is not None and not (args.cost > 0 and args.cost < float("inf")):
        raise CommandError(f"-c must be > 0 and finite, got {args.cost}")
    params, options = {"verbose": not args.quiet}, {}
    if getattr(args, "progress", False):
        try:
            import tqdm  # noqa: F401 (a check before any data is read)
        except ImportError:
            raise CommandError("--progress needs tqdm: pip install tqdm (or "
                               "fastcrf[progress])") from None
        params["progress_bar"] = True
    for name, attr, option in _TRAIN_OPTIONS:
        params[name], options[name] = getattr(args, attr), option
    if args.cost is not None:
        params["c2"], options["c2"] = 1.0 / (2.0 * args.cost), "-c"
    for text in args.param:
        name, value = _parse_param(text)
        params[name], options[name] = value, f"-p {text}"
    crf = CRF()
    try:
        crf.set_params(**params)
    except ValueError as exc:
        bad = next(n for n in params if n not in crf.get_params())
        raise CommandError(f"{options[bad]}: {exc}") from None
    for name, value in params.items():
        if name in CONSTRAINTS and name not in ("n_jobs", "random_state") \
                and value is not None:
            try:
                CONSTRAINTS[name].constraint.check(name, value)
            except (TypeError, ValueError) as exc:
                raise CommandError(f"{options.get(name, name)}: {exc}") from None
    resolve(crf.get_params())  # what depends on several (e.g. c1 and the algorithm)
    return crf


def _load_model(path):
    from ._estimator import CRF

    if not os.path.exists(path):
        raise CommandError(f"no such model file: {path!r}")
    if os.path.isdir(path):
        raise CommandError(f"{path}: a folder, not a model file")
    # np.load would try to unpickle a file that is no zip archive and say so; name the
    # real problem.  (A truncated archive still starts with the magic: CRF.load
    # reports it as truncated.)
    with open(path, "rb") as f:
        if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06", b"lCRF"):
            raise CommandError(f"{path}: neither a fastcrf model file (an .npz archive) "
                               "nor a CRFsuite one")
    return CRF.load(path)


def _init_model(args, encoded):
    """``train --init``: ``(crf, template)`` of the model training starts from, or None.

    Without ``-t`` the model's own template extracts the features (the weights then
    meet the attributes they were learnt for)."""
    from .templates import Template

    if args.init is None:
        return None
    crf = _load_model(args.init)
    if args.template is not None or encoded:
        return crf, None
    return crf, Template(_cli_metadata(crf, args.init)["template"])


def _cli_metadata(crf, path):
    meta = crf.metadata_.get(_META_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("template"), str):
        raise CommandError(
            f"{path}: the model holds no feature template (it was saved by CRF.save "
            "without one, not by 'fastcrf train'), so 'fastcrf tag' cannot extract its "
            "features: give the template that made its attributes with -t")
    return meta


# --------------------------------------------------------------------------- #
# train                                                                         #
# --------------------------------------------------------------------------- #


def _cmd_train(args):
    from .metrics import chunk_scores, classification_report

    if not args.train:
        raise CommandError("no training file given (no data at hand? 'fastcrf demo' "
                           "trains on a synthetic corpus)")
    encoded = len(args.train) == 1 and os.path.isdir(args.train[0])
    if encoded and args.template is not None:
        raise CommandError(f"{args.train[0]} is a dataset folder ('fastcrf encode'): its "
                           "template is stored in it, so give no -t")
    if encoded:
        # The folder stores its column layout; a flag that would change it is a mistake.
        for flag, given in (("--label-column", args.label_column is not None),
                            ("--sep", args.sep is not None), ("--lists", args.lists)):
            if given:
                raise CommandError(f"{args.train[0]} is a dataset folder ('fastcrf "
                                   f"encode'): its columns are stored in it, so give no "
                                   f"{flag}")
    if args.label_column is None:
        args.label_column = -1
    init = _init_model(args, encoded)
    if args.template is None and not encoded and init is None:
        raise CommandError("no feature template: give -t FILE (a CRF++ template) or "
                           "-t chunking")
    crf = _train_params(args)
    if init is not None:
        crf._model = init[0]._model
        crf.set_params(warm_start=True)
    if args.model is not None:
        _check_output(args.model, "-m")
    macros = None
    if not encoded:
        template = _template(args.template) if args.template is not None else init[1]
        if not template.unigram:
            raise CommandError(f"{args.template}: the template has no U lines, so it "
                               "extracts no features to train on")
        macros = _template_transitions(crf, template, args.quiet)
    if init is not None and macros is not None and crf.algorithm != "lbfgs":
        # Refused before anything is read (fit would refuse it, naming warm_start).
        raise CommandError(f"--init with the template's B lines with macros (transition "
                           f"attributes) continues by L-BFGS only: give -a lbfgs (or no "
                           f"-a), not -a {crf.algorithm}")
    sep = _separator(args.sep)
    quiet = args.quiet

    started = time.perf_counter()
    if encoded:
        features, y, template, n_fields, label_column, sep = _encoded_training(
            args.train[0])
        _folder_hashing(crf, features, args.train[0], quiet)
    elif args.lists or macros is not None:
        features, y, n_fields = _listed_training(args, template, sep, macros)
        label_column = args.label_column % n_fields
    else:
        features = _dataset_of(args.train, template, args.label_column, sep, args.min_freq,
                               crf.hash_features, crf.hash_seed)
        y, n_fields, label_column = None, features.metadata["n_fields"], \
            features.metadata["label_column"]
    dev = None
    if args.dev is not None:
        # The training data's own layout (a dataset folder stores it).
        Xd, yd, nd = _load_labelled(args.dev, label_column, sep)
        if nd != n_fields:
            raise CommandError(f"{_name(args.dev)} has {nd} fields per row but the "
                               f"training data has {n_fields}")
        dev = (template.transform(Xd), yd)
    n_tokens = sum(map(len, y)) if y is not None else features.n_tokens
    n_sentences = len(y) if y is not None else features.n_sequences
    read_time = time.perf_counter() - started
    _say(f"read {n_sentences:,} sentences, {n_tokens:,} tokens from "
         f"{', '.join(map(_name, args.train))}; features extracted in {read_time:.1f} s",
         quiet=quiet)

    t0 = time.perf_counter()
    if template.bigram:
        crf.fit(features, y, *(dev or ()))
    else:
        # CRF++: a template without any B line asks for no label-transition weights.
        init = crf._fitted_model() if crf.warm_start and crf.__sklearn_is_fitted__() \
            else None
        crf._fit(crf.get_params(), features, y, *(dev or ()), init_model=init,
                 transitions=False)
    fit_time = time.perf_counter() - t0
    K = len(crf.classes_)
    n_weights = crf._model.n_weights
    _say(f"trained in {fit_time:.1f} s ({n_tokens * crf.n_iter_ / max(fit_time, 1e-9):,.0f} "
         f"tokens/s over {crf.n_iter_} epochs/iterations): {K} labels, "
         f"{len(crf.attributes_):,} attributes, {n_weights:,} weights "
         f"({crf.n_nonzero_weights_:,} non-zero)")
    if dev is not None:
        predicted = crf.predict(dev[0])
        scores = chunk_scores(dev[1], predicted)
        _say(f"dev {_name(args.dev)}: accuracy {100 * scores.accuracy:.2f}%, "
             f"FB1 {100 * scores.f1:.2f}")
        if not quiet:
            sys.stdout.write(classification_report(dev[1], predicted))
    if args.model is not None:
        meta = {_META_KEY: {"version": _META_VERSION, "template": template.text,
                            "n_fields": n_fields,
                            "label_column": label_column,
                            "sep": sep}}
        crf.save(args.model, metadata=meta)
        _say(f"model written to {args.model} ({_size(args.model)})")
    else:
        _say("model not saved (no -m MODEL given)")
    return 0


def _template_transitions(crf, template, quiet):
    """The Template of ``template``'s B lines with macros, or None; with some, ``crf``
    learns them (``transition_prefix``, by L-BFGS when no algorithm was chosen)."""
    from . import _edges

    macros, _ = _edges.template_bigrams(template)
    if macros is None:
        return None
    if crf.algorithm is None:
        crf.set_params(algorithm="lbfgs")
        _say("B lines with macros (observation-conditioned transitions): training by "
             "L-BFGS (-a lbfgs)", quiet=quiet)
    crf.set_params(transition_prefix=_edges.TEMPLATE_PREFIX)
    return macros


def _listed_training(args, template, sep, macros=None):
    """The list path of ``train --lists``: per-token feature lists (kept for
    comparison; the default encodes a :class:`~fastcrf.Dataset` by streaming), and
    of templates with B lines with macros (``macros``: their Template)."""
    X, y, n_fields = [], [], None
    for path in args.train:
        Xp, yp, n = _load_labelled(path, args.label_column, sep)
        if n_fields is not None and n != n_fields:
            raise CommandError(f"{_name(path)} has {n} fields per row but "
                               f"{_name(args.train[0])} has {n_fields}")
        n_fields = n
        X += Xp
        y += yp
    _check_template_fits(template, n_fields - 1, _name(args.train[0]))
    if macros is not None:
        from ._edges import template_features
        return template_features(template, macros, X), y, n_fields
    return template.transform(X), y, n_fields


def _dataset_of(paths, template, label_column, sep, min_freq, hash_features=None,
                hash_seed=None):
    """Column files -> a labelled :class:`~fastcrf.Dataset`, streamed chunk by chunk;
    with ``--hash-features`` the names go to buckets as they are read (none is held)."""
    from ._dataset import Dataset

    for path in paths:
        if not os.path.isfile(path):
            raise CommandError(f"no such file: {path!r}")
    return Dataset.from_conll(paths, template, label_column=label_column, sep=sep,
                              min_freq=0 if min_freq is None else min_freq,
                              hash_features=hash_features,
                              hash_seed=0 if hash_seed is None else hash_seed)


def _folder_hashing(crf, dataset, folder, quiet):
    """A dataset folder of 'fastcrf encode --hash-features' trains with the buckets and
    seed it records (as it records its template): ``crf`` takes them, and a different
    ``--hash-features`` / ``--hash-seed`` is an error.  (A folder without hashing
    takes ``--hash-features`` as lists do: its names are hashed after reading.)"""
    if dataset.hashing is None:
        return
    n_buckets, seed = dataset.hashing
    given_seed = 0 if crf.hash_seed is None else crf.hash_seed
    if crf.hash_features is not None and crf.hash_features != n_buckets:
        raise CommandError(f"{folder} is a dataset folder hashed into {n_buckets} buckets "
                           f"('fastcrf encode --hash-features {n_buckets}'): give no "
                           f"--hash-features, or --hash-features {n_buckets}")
    if crf.hash_seed is not None and given_seed != seed:
        raise CommandError(f"{folder} is a dataset folder hashed with seed {seed} "
                           f"('fastcrf encode --hash-seed {seed}'): give no --hash-seed "
                           f"(-p hash_seed), or --hash-seed {seed}")
    if crf.hash_features is None:
        _say(f"{folder}: hashed into {n_buckets} buckets (seed {seed}), as encoded",
             quiet=quiet)
    crf.set_params(hash_features=n_buckets, hash_seed=seed)


def _encoded_training(folder):
    """A dataset folder of 'fastcrf encode': ``(dataset, None, template, n_fields,
    label_column, sep)``, memory-mapped."""
    from ._dataset import Dataset
    from .templates import Template

    dataset = Dataset.load(folder, mmap=True)
    meta = dataset.metadata
    if not isinstance(meta.get("template"), str) or type(meta.get("n_fields")) is not int \
            or type(meta.get("label_column")) is not int:
        raise CommandError(f"{folder}: the dataset records no template and columns (it "
                           "was not written by 'fastcrf encode')")
    sep = meta.get("sep")
    return (dataset, None, Template(meta["template"]), meta["n_fields"],
            meta["label_column"], sep if isinstance(sep, str) else None)


# --------------------------------------------------------------------------- #
# encode                                                                        #
# --------------------------------------------------------------------------- #


def _cmd_encode(args):
    from ._params import CONSTRAINTS

    # Checked as train checks them, before anything is read.
    for name, value, option in (("hash_features", args.hash_features, "--hash-features"),
                                ("hash_seed", args.hash_seed, "--hash-seed")):
        if value is not None:
            try:
                CONSTRAINTS[name].constraint.check(name, value)
            except (TypeError, ValueError) as exc:
                raise CommandError(f"{option}: {exc}") from None
    if args.hash_seed is not None and args.hash_features is None:
        raise CommandError("--hash-seed needs --hash-features (the seed of its hashing)")
    template = _template(args.template)
    started = time.perf_counter()
    dataset = _dataset_of(args.train, template, args.label_column, _separator(args.sep),
                          args.min_freq, args.hash_features, args.hash_seed)
    dataset.save(args.output)
    hashed = "" if dataset.hashing is None else \
        f" (hashed into {dataset.hashing[0]:,} buckets, seed {dataset.hashing[1]})"
    _say(f"encoded {dataset.n_sequences:,} sentences, {dataset.n_tokens:,} tokens, "
         f"{len(dataset.attributes):,} attributes{hashed} in "
         f"{time.perf_counter() - started:.1f} s; dataset written to {args.output} ('fastcrf train {args.output}' trains on it)",
         quiet=args.quiet)
    return 0


# --------------------------------------------------------------------------- #
# tag                                                                           #
# --------------------------------------------------------------------------- #


def _split_gold(sentences, meta, path):
    """Token columns of the input and whether it also holds the gold column."""
    n = len(sentences[0][0])
    with_gold = meta["n_fields"]
    k = meta["label_column"]
    if n == with_gold:
        return [[row[:k] + row[k + 1:] for row in s] for s in sentences], True
    if n == with_gold - 1:
        return sentences, False
    raise CommandError(
        f"{_name(path)}: rows have {n} fields; the model was trained on rows of "
        f"{with_gold} ({with_gold - 1} token column{'s' if with_gold != 2 else ''} and the "
        f"label): give {with_gold - 1} (to tag) or {with_gold} (tag and keep the gold "
        "labels for 'fastcrf eval')")


def _tagged_rows(crf, template, sentences, tokens, only_labels, marginals,
                 constraints=None, nbest=0, all_marginals=False):
    """The rows ``fastcrf tag`` writes for ``sentences`` (``tokens``: their token
    columns, which ``template`` reads), and the seconds the tagging took.

    With ``nbest`` >= 1 each sentence gives its ``nbest`` best labellings, each a
    block whose first row is CRF++'s ``# n P`` line (``tag -n``); ``all_marginals``
    appends every label's marginal as ``label/p`` (CRF++'s ``-v 2``)."""
    import numpy as np

    t0 = time.perf_counter()
    from ._edges import encode_for

    # The model's vocabulary drops attributes never seen in training, as CRF++ does.
    encoded = encode_for(crf._fitted_model(), template, tokens)
    try:
        if nbest:
            index = {label: k for k, label in enumerate(crf.classes_)}
            lists = [[(np.array([index[c] for c in labels], dtype=np.int64), p)
                      for labels, p in cands]
                     for cands in crf.predict_nbest(encoded, nbest, constraints=constraints)]
        else:
            lists = [[(seq, None)]
                     for seq in crf.predict_indices(encoded, constraints=constraints)]
        probs = (crf.predict_proba(encoded, constraints=constraints)
                 if marginals or all_marginals else None)
    except ValueError as exc:  # constraints that leave a sentence no labelling
        if constraints is None:
            raise
        raise CommandError(f"--constraints {constraints}: {exc}") from None
    tag_time = time.perf_counter() - t0

    classes = crf.classes_
    out = []
    for i, (sentence, cands) in enumerate(zip(sentences, lists)):
        for n, (seq, p) in enumerate(cands):
            rows = [(f"# {n} {p:.6f}",)] if nbest else []
            for t, (row, k) in enumerate(zip(sentence, seq.tolist())):
                fields = (classes[k],) if only_labels else (*row, classes[k])
                if marginals:
                    fields += (f"{probs[i][t, k]:.6f}",)
                if all_marginals:
                    fields += tuple(f"{c}/{q:.6f}" for c, q in zip(classes, probs[i][t]))
                rows.append(fields)
            out.append(rows)
    return out, tag_time


def _write_nbest(path, blocks, sep):
    """``tag -n``'s output: every block (its '# n P' line, then its rows joined by
    ``sep``) and a blank line, to ``path`` (atomically; .gz compressed) or stdout.
    Not :func:`fastcrf.io.write_conll`: the '# n P' line is no row of the file."""
    import gzip

    from ._atomic import atomic_file

    text = "".join(block[0][0] + "\n" + "".join(sep.join(r) + "\n" for r in block[1:])
                   + "\n" for block in blocks)
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    data = text.encode("utf-8")
    with atomic_file(path) as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(data)
        else:
            raw.write(data)


def _tag_on_cluster(args):
    """``fastcrf tag --scheduler ADDRESS``: every input file tagged by a task on the
    Dask cluster (:func:`fastcrf.dask.tag_files`), written to the ``-o`` folder under
    its own name."""
    if args.output is None:
        raise CommandError("--scheduler writes one file per input: give the output "
                           "folder with -o DIR")
    if "-" in args.input:
        raise CommandError("--scheduler tags files the workers read: stdin (-) cannot "
                           "be one of them")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise CommandError(f"-o {args.output}: with --scheduler, a folder, not a file")
    _check_jobs(args.n_jobs)
    sep = _separator(args.sep)
    crf = _load_model(args.model)
    template = _template(args.template) if args.template is not None else None
    if template is None:
        _cli_metadata(crf, args.model)  # the model's template, or the error that says -t
    # The workers may run elsewhere: absolute paths, on a file system they share.
    sources = [os.path.abspath(f) for f in args.input]
    folder = os.path.abspath(args.output)
    targets = [os.path.join(folder, os.path.basename(f)) for f in sources]
    for i, target in enumerate(targets):
        if targets.index(target) != i:
            raise CommandError(f"{args.input[targets.index(target)]} and {args.input[i]} "
                               f"would both be written to {target}: tag them apart")
        if os.path.realpath(target) == os.path.realpath(sources[i]):
            raise CommandError(f"-o {args.output}: {args.input[i]} would be overwritten "
                               "by its own tagging: give another folder")
    try:
        import distributed

        from . import dask as fastcrf_dask
    except ImportError:
        raise CommandError("--scheduler needs dask and distributed: pip install "
                           "'fastcrf[dask]'") from None
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    with distributed.Client(args.scheduler, set_as_default=False) as client:
        n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        counts = fastcrf_dask.tag_files(
            crf, sources, targets, sep=sep, template=template,
            only_labels=args.only_labels, marginals=args.marginals,
            n_jobs=1 if args.n_jobs is None else args.n_jobs, client=client)
    if not args.quiet:
        seconds = time.perf_counter() - t0
        print(f"tagged {len(counts):,} files, {sum(counts):,} tokens in {seconds:.2f} s "
              f"on {n_workers} worker{'s' if n_workers != 1 else ''}; written to "
              f"{args.output}", file=sys.stderr, flush=True)
    return 0


def _cmd_tag(args):
    from .io import write_conll
    from .templates import Template

    if args.nbest < 0:
        raise CommandError(f"-n must be >= 0, got {args.nbest}")
    if args.scheduler is not None:
        if args.nbest or args.all_marginals or args.constraints:
            raise CommandError("-n, --all-marginals and --constraints are not supported "
                               "with --scheduler")
        return _tag_on_cluster(args)
    if len(args.input) > 1:
        raise CommandError(f"{len(args.input)} input files: tag one at a time, or many "
                           "on a Dask cluster with --scheduler ADDRESS")
    args.input = args.input[0]
    _check_jobs(args.n_jobs)
    if args.output is not None:
        _check_output(args.output, "-o")
    sep = _separator(args.sep)
    crf = _load_model(args.model)
    if args.template is not None:
        # A model without a template (a CRFsuite file): every column is a token
        # column, the template says which ones count.
        template = _template(args.template)
        sentences = _read_sentences(args.input, sep)
        tokens = sentences
    else:
        meta = _cli_metadata(crf, args.model)
        template = Template(meta["template"])
        sep = sep if sep is not None else meta.get("sep")
        sentences = _read_sentences(args.input, sep)
        tokens, _ = _split_gold(sentences, meta, args.input)
    if args.n_jobs is not None:
        crf.set_params(n_jobs=args.n_jobs)

    out, tag_time = _tagged_rows(crf, template, sentences, tokens, args.only_labels,
                                 args.marginals, args.constraints, args.nbest,
                                 args.all_marginals)
    out_sep = sep if sep is not None else " "
    if args.nbest:
        _write_nbest(args.output, out, out_sep)
    elif args.output is None:
        write_conll(sys.stdout, out, sep=out_sep)
        sys.stdout.flush()
    else:
        write_conll(args.output, out, sep=out_sep)
    if args.quiet:
        return 0
    n_tokens = sum(map(len, sentences))
    # Statistics go to stderr so that stdout holds only the tagged file.
    print(f"tagged {len(sentences):,} sentences, {n_tokens:,} tokens in {tag_time:.2f} s "
          f"({n_tokens / max(tag_time, 1e-9):,.0f} tokens/s)"
          + (f"; written to {args.output}" if args.output else ""),
          file=sys.stderr, flush=True)
    return 0


# --------------------------------------------------------------------------- #
# eval                                                                          #
# --------------------------------------------------------------------------- #


def _check_plot_path(args):
    """Reject a bad ``--plot`` before any work."""
    if getattr(args, "plot", None) is not None:
        from .plot import check_png_path

        try:
            check_png_path(args.plot, "--plot")
        except ValueError as exc:
            raise CommandError(str(exc)) from None


def _write_figure(make, path, *args, **kwargs):
    """Build a figure with ``make(*args, **kwargs)`` and write it to ``path``."""
    from . import plot

    try:
        import matplotlib

        matplotlib.use("Agg")  # a command line never opens a window
        fig = make(*args, **kwargs)
    except ImportError as exc:
        raise CommandError(f'--plot needs matplotlib: pip install "fastcrf[plot]" '
                           f"({exc})") from None
    plot.save_figure(fig, path)
    plot._pyplot().close(fig)
    print(f"plot written to {path}", file=sys.stderr)


def _cmd_eval(args):
    from .metrics import classification_report

    _check_plot_path(args)
    sentences = _read_sentences(args.input, _separator(args.sep))
    if len(sentences[0][0]) < 2:
        raise CommandError(f"{_name(args.input)}: rows have a single field; 'fastcrf eval' "
                           "reads the gold label from the second-to-last column and the "
                           "prediction from the last")
    y_true = [[row[-2] for row in s] for s in sentences]
    y_pred = [[row[-1] for row in s] for s in sentences]
    sys.stdout.write(classification_report(y_true, y_pred, scheme=args.scheme,
                                           raw=args.raw, o_tag=args.o_tag))
    if args.plot is not None:
        from .plot import evaluation_figure

        _write_figure(evaluation_figure, args.plot, y_true, y_pred, scheme=args.scheme,
                      raw=args.raw, o_tag=args.o_tag)
    return 0


# --------------------------------------------------------------------------- #
# info                                                                          #
# --------------------------------------------------------------------------- #


def _top_state_features(W, n, largest):
    """``(attribute row, label column, weight)`` of the ``n`` largest (smallest) weights.

    The ``n`` extreme weights lie in at most ``n`` rows, each among the ``n`` rows
    with the most extreme row maximum, so only those rows are searched: no index
    array over the whole (possibly gigabyte) weight matrix.
    """
    import numpy as np

    if n <= 0 or W.size == 0:
        return []
    sign = 1.0 if largest else -1.0
    rowbest = sign * (W.max(axis=1) if largest else W.min(axis=1))
    m = min(n, len(rowbest))
    rows = np.argpartition(-rowbest, m - 1)[:m]
    block = sign * W[rows]
    order = np.argsort(-block, axis=None, kind="stable")[:n]
    r, c = np.unravel_index(order, block.shape)
    out = [(int(rows[i]), int(j), float(W[rows[i], j])) for i, j in zip(r, c)]
    return [item for item in out if sign * item[2] > 0]


def _cmd_info(args):
    if args.top < 0:
        raise CommandError(f"--top must be >= 0, got {args.top}")
    _check_plot_path(args)
    crf = _load_model(args.model)
    labels = crf.classes_
    K = len(labels)
    A = len(crf.attributes_)
    log = crf.training_log_
    print(f"model: {args.model} ({_size(args.model)})")
    print(f"labels ({K}): {' '.join(labels)}")
    print(f"attributes: {A:,}")
    print(f"weights: {crf._model.n_weights:,} "
          f"({crf.n_nonzero_weights_:,} non-zero)")
    shown = {k: v for k, v in crf.get_params().items()
             if v is not None and k not in ("algorithm", "verbose", "model_filename",
                                            "n_jobs")}
    settings = " ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    print(f"training: {log.algorithm}, {crf.n_iter_} epochs/iterations"
          + (f"; {settings}" if settings else ""))
    last = log.last_iteration
    if last:
        text = f"  last: loss={last['loss']:.4f} objective={last['objective']:.4f}"
        if "time" in last:
            text += f" time={last['time']:.2f}s"
        if "dev_accuracy" in last:
            text += f" dev_acc={last['dev_accuracy']:.4f}"
        print(text)
    meta = crf.metadata_.get(_META_KEY)
    if isinstance(meta, dict) and isinstance(meta.get("template"), str):
        from .templates import Template

        tpl = Template(meta["template"])
        print(f"template: {len(tpl.unigram)} unigram, {len(tpl.bigram)} bigram; rows of "
              f"{meta.get('n_fields')} fields, label in column {meta.get('label_column')}")
        for line in tpl.unigram + tpl.bigram:
            print(f"  {line}")
    else:
        print("template: none stored (not trained by 'fastcrf train')")

    names = crf.attributes_
    W = crf.state_weights_
    for largest, what in ((True, "positive"), (False, "negative")):
        top = _top_state_features(W, args.top, largest)
        print(f"top {len(top)} {what} state features:")
        width = max((len(labels[j]) for _, j, _ in top), default=5)
        for a, j, w in top:
            print(f"  {w:+10.4f}  {labels[j]:<{width}}  {names[a]}")

    print("transitions (row: from, column: to):")
    width = max(8, max(len(label) for label in labels) + 1)
    first = max(len(label) for label in labels + ["(start)"])
    print(" " * (first + 2) + "".join(f"{label:>{width}}" for label in labels))
    rows = [(label, crf.transition_weights_[i]) for i, label in enumerate(labels)]
    rows += [("(start)", crf.start_weights_), ("(end)", crf.end_weights_)]
    for label, values in rows:
        print(f"  {label:<{first}}" + "".join(f"{v:>{width}.3f}" for v in values.tolist()))
    if args.plot is not None:
        from .plot import model_figure

        _write_figure(model_figure, args.plot, crf)
    return 0


# --------------------------------------------------------------------------- #
# demo                                                                          #
# --------------------------------------------------------------------------- #


def _write_demo_corpus(folder, n_sequences, n_types, seed):
    """Train / test column files (``word label``) from one synthetic HMM."""
    from .datasets import make_sequences
    from .io import write_conll

    # One draw, then split: two draws with different seeds would come from two
    # different generating models.
    _, y, params = make_sequences(n_sequences, n_labels=n_types, scheme="BIO",
                                  length=(5, 30), return_params=True, random_state=seed)
    rows = [[(f"w{w}", label) for w, label in zip(ws.tolist(), labels)]
            for ws, labels in zip(params["words"], y)]
    n_test = max(1, n_sequences // 5)
    train, test = os.path.join(folder, "train.txt"), os.path.join(folder, "test.txt")
    write_conll(train, rows[n_test:])
    write_conll(test, rows[:n_test])
    template = os.path.join(folder, "template")
    with open(template, "w", encoding="utf-8") as f:
        f.write(DEMO_TEMPLATE)
    return train, test, template, sum(map(len, y[n_test:])), sum(map(len, y[:n_test]))


def _cmd_demo(args):
    from .io import load_conll
    from .metrics import chunk_scores

    if args.sequences < 10:
        raise CommandError(f"-n must be >= 10, got {args.sequences}")
    if args.types < 1:
        raise CommandError(f"--types must be >= 1, got {args.types}")
    _check_jobs(args.n_jobs)
    _check_seed(args.seed)
    if args.output_dir is not None:
        os.makedirs(args.output_dir, exist_ok=True)
        return _demo(args, args.output_dir, load_conll, chunk_scores)
    with tempfile.TemporaryDirectory(prefix="fastcrf-demo-") as folder:
        return _demo(args, folder, load_conll, chunk_scores)


def _demo(args, folder, load_conll, chunk_scores):
    train, test, template, n_train, n_test = _write_demo_corpus(
        folder, args.sequences, args.types, args.seed)
    model = os.path.join(folder, "model.npz")
    tagged = os.path.join(folder, "tagged.txt")
    kept = args.output_dir is not None
    print(f"synthetic corpus (BIO chunks of {args.types} types from a hidden Markov "
          f"model): {n_train:,} training and {n_test:,} test tokens in "
          + (folder if kept else "a temporary folder, deleted at the end (-o DIR keeps "
                                 "the files; the commands below name them in DIR)"))
    # The same code paths as the commands themselves, so the demo exercises them.
    steps = [
        ["train", "-t", template, "-m", model, "--seed", str(args.seed)]
        + (["-a", args.algorithm] if args.algorithm is not None else []) + (["-j", str(args.n_jobs)] if args.n_jobs is not None else [])
        + (["-q"] if args.quiet else []) + [train],
        ["tag", "-q", "-m", model, "-o", tagged, test],  # the summary gives its speed
        ["eval", tagged],
    ]
    times = []
    here = os.getcwd()
    if not kept:
        # A temporary folder is gone when the user reads this: run the steps inside
        # it on names relative to it, so no command or message names it.
        steps = [[os.path.relpath(a, folder) if a.startswith(folder) else a for a in argv]
                 for argv in steps]
        os.chdir(folder)
    try:
        for argv in steps:
            print(f"\n$ fastcrf {' '.join(argv)}", flush=True)
            parsed = _build_parser().parse_args(argv)
            t0 = time.perf_counter()
            parsed.run(parsed)
            times.append(time.perf_counter() - t0)
    finally:
        os.chdir(here)
    X, y = load_conll(tagged)
    truth = [[row[-1] for row in s] for s in X]
    scores = chunk_scores(truth, y)
    print(f"\ndemo: token accuracy {100 * scores.accuracy:.2f}%, chunk FB1 "
          f"{100 * scores.f1:.2f}; train {times[0]:.1f} s, tag {times[1]:.2f} s "
          f"({n_test / max(times[1], 1e-9):,.0f} tokens/s including model loading)")
    if args.output_dir is not None:
        print(f"files kept in {folder}: train.txt test.txt template model.npz tagged.txt")
    return 0


# --------------------------------------------------------------------------- #
# Command line                                                                  #
# --------------------------------------------------------------------------- #


# --------------------------------------------------------------------------- #
# bench                                                                         #
# --------------------------------------------------------------------------- #


def _csv(text, what):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise CommandError(f"{what} must list at least one item, got {text!r}")
    return items


def _cmd_bench(args):
    from .bench import run_suite
    from .bench.report import format_report, write_json, write_plot
    from .bench.workloads import column_workload, python_workload, synthetic_workload

    # Every option is checked before any file is looked at.
    if args.rounds < 1:
        raise CommandError(f"--rounds must be >= 1, got {args.rounds}")
    if args.timeout is not None and not args.timeout > 0:
        raise CommandError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if args.layers:
        return _bench_layers(args)
    if args.sentences < 10:
        raise CommandError(f"-n must be >= 10, got {args.sentences}")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CommandError('--plot needs matplotlib: pip install "fastcrf[bench]"') \
                from None
    try:
        import codecs

        codecs.lookup(args.encoding)
    except LookupError:
        raise CommandError(f"--encoding: unknown encoding {args.encoding!r}") from None
    from .bench.suite import plan
    from .bench.tools import TOOLS

    tools = list(TOOLS) if args.tools is None else _csv(args.tools, "--tools")
    algorithms = _csv(args.algorithms, "--algorithms")
    threads = _csv(args.threads, "--threads")
    plan(algorithms, tools, threads)
    if args.grid is not None:
        raise CommandError("--grid goes with --layers")
    if args.features is not None:
        if args.train is not None or args.template is not None or args.test is not None:
            raise CommandError("--features builds the data itself: it takes no --train, "
                               "--test or -t")
    elif args.train is None and (args.template is not None or args.test is not None):
        raise CommandError("--test and -t need --train (the column file to train on)")
    if args.features is not None:
        workload = python_workload(args.features)
    elif args.train is not None:
        if args.template is None:
            raise CommandError("--train needs -t: a CRF++ template file or 'chunking'")
        workload = column_workload(args.train, args.template, args.test,
                                   sep=_separator(args.sep), encoding=args.encoding)
    else:
        workload = synthetic_workload(args.sentences, args.seed)
    results = run_suite(workload, algorithms, tools, args.rounds, threads,
                        timeout=args.timeout,
                        progress=None if args.quiet else
                        (lambda line: print(line, file=sys.stderr, flush=True)))
    print(format_report(results), flush=True)
    if args.json is not None:
        write_json(results, args.json)
    if args.plot is not None:
        write_plot(results, args.plot)
    failed = [k for k, e in results["summary"].items() if "fit" not in e]
    if failed:
        raise CommandError(f"every round of {', '.join(failed)} failed (see above)")
    return 0


def _bench_layers(args):
    from .bench.layers import DEFAULT_GRID, LAYER_TOOLS, format_layers, parse_grid, run_layers
    from .bench.report import write_json, write_plot_layers

    if args.train is not None or args.template is not None or args.test is not None \
            or args.features is not None:
        raise CommandError("--layers times the dense API and the torch layer on "
                           "generated emissions: it takes no --train, --test, -t or --features")
    if args.calls < 1:
        raise CommandError(f"--calls must be >= 1, got {args.calls}")
    grid = DEFAULT_GRID if args.grid is None else parse_grid(args.grid)
    tools = list(LAYER_TOOLS) if args.tools is None else _csv(args.tools, "--tools")
    threads = [None if t == "all" else t for t in _csv(args.threads, "--threads")]
    for t in threads:
        if t is not None and (not t.isdigit() or int(t) < 1):
            raise CommandError(f"threads must be 'all' or >= 1, got {t!r}")
    results = run_layers(grid, tools, args.rounds, threads, calls=args.calls,
                         timeout=args.timeout,
                         progress=None if args.quiet else
                         (lambda line: print(line, file=sys.stderr, flush=True)))
    print(format_layers(results), flush=True)
    if args.json is not None:
        write_json(results, args.json)
    if args.plot is not None:
        write_plot_layers(results, args.plot)
    if any(r["error"] for rounds in results["rounds"].values() for r in rounds):
        raise CommandError("some rounds failed (see above)")
    return 0


def _jobs(parser):
    parser.add_argument("-j", "--n-jobs", type=int, default=None, metavar="N",
                        help="OpenMP threads (default: all; -2 all but one); results do "
                             "not depend on it")


def _build_parser():
    from ._estimator import ALGORITHMS
    from ._version import __version__

    parser = _Parser(
        prog=PROG,
        description="Linear-chain CRFs on CoNLL-style column files (CRF++ templates, "
                    "conlleval scores).",
        epilog="Run 'fastcrf COMMAND --help' for a command's options; 'fastcrf demo' "
               "runs train, tag and eval on a synthetic corpus.")
    parser.add_argument("--version", action="version", version=f"fastcrf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train", help="train a model from a template and column files",
        description="Train a CRF on column files (one token per line, a blank line "
                    "between sentences, the label in the last column) with a CRF++ "
                    "feature template, and save it with the template.")
    p.add_argument("train", nargs="*", metavar="TRAIN",
                   help="training column file(s); .gz is read directly; or one dataset "
                        "folder written by 'fastcrf encode'")
    p.add_argument("-t", "--template", metavar="TEMPLATE",
                   help="CRF++ template file, or 'chunking' for CRF++'s CoNLL-2000 template")
    p.add_argument("-m", "--model", metavar="MODEL",
                   help="write the model here (a .npz file); without it nothing is saved")
    p.add_argument("-a", "--algorithm", choices=ALGORITHMS, default=None,
                   help="averaged SGD (default; L-BFGS for a few long sequences), L-BFGS, "
                        "CRFsuite's SGD, averaged perceptron, passive-aggressive")
    p.add_argument("-c", "--cost", type=float, default=None, metavar="C",
                   help="CRF++'s cost C (larger: weaker regularisation): sets c2 = 1/(2C)")
    p.add_argument("--c2", type=float, default=None,
                   help="L2 coefficient of the objective (default: the algorithm's)")
    p.add_argument("--c1", type=float, default=None,
                   help="L1 coefficient (asgd and lbfgs; default 0)")
    p.add_argument("-f", "--min-freq", type=float, default=None, metavar="N",
                   help="drop attributes seen fewer than N times (CRF++'s -f)")
    p.add_argument("-i", "--max-iterations", type=int, default=None, metavar="N",
                   help="epochs / iterations (default: the algorithm's; asgd: 8, more on "
                        "small training sets)")
    p.add_argument("--hash-features", type=int, default=None, metavar="N",
                   help="hash attribute names into N buckets (MurmurHash3; the model "
                        "keeps no names: its size is bounded by N); a dataset folder "
                        "encoded with --hash-features is hashed as it records")
    p.add_argument("--hash-seed", type=int, default=None, metavar="S",
                   help="the MurmurHash3 seed of --hash-features (default 0)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any fastcrf.CRF parameter (CRFsuite's names), e.g. -p period=5; "
                        "repeatable")
    p.add_argument("--dev", metavar="DEVFILE",
                   help="column file scored after every epoch (token accuracy) and at the "
                        "end (conlleval)")
    p.add_argument("--label-column", type=int, default=None, metavar="K",
                   help="column holding the labels (default -1: the last)")
    p.add_argument("--sep", default=None,
                   help="field separator (default: any whitespace; '\\t' for tabs)")
    _jobs(p)
    p.add_argument("--seed", type=int, default=0,
                   help="random seed (default 0: the same command gives the same model)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-epoch progress")
    p.add_argument("--lists", action="store_true",
                   help="build per-token feature lists in memory (the old path; the "
                        "default streams the files into flat arrays, a fraction of the "
                        "memory, the same model)")
    p.add_argument("--progress", action="store_true",
                   help="a progress bar over the epochs on stderr (needs tqdm); the "
                        "per-epoch lines go above it (none with -q)")
    p.add_argument("--constraints", choices=("BIO", "IOB1", "BIOES", "BIOUL", "auto"),
                   default=None,
                   help="train under a chunk scheme's transition constraints (auto: "
                        "read it from the labels): the label sequences it forbids get "
                        "probability 0; stored in the model, which 'fastcrf tag' then "
                        "always honours")
    p.add_argument("--init", metavar="MODEL",
                   help="continue training this model (a 'fastcrf train' .npz): start from "
                        "its weights (new labels and attributes at 0) and, without -t, "
                        "use its template")
    p.set_defaults(run=_cmd_train)

    p = sub.add_parser(
        "encode", help="encode column files through a template into a dataset folder",
        description="Read column files once and write their encoded features and labels "
                    "(a fastcrf.Dataset: .npy arrays plus a JSON header) to a folder that "
                    "'fastcrf train FOLDER' trains on, memory-mapped, any number of times.")
    p.add_argument("train", nargs="+", metavar="TRAIN", help="column file(s)")
    p.add_argument("-t", "--template", required=True, metavar="TEMPLATE",
                   help="CRF++ template file, or 'chunking'")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="the dataset folder to write (replaced if it holds a dataset)")
    p.add_argument("-f", "--min-freq", type=float, default=None, metavar="N",
                   help="drop attributes seen fewer than N times (with --hash-features: "
                        "buckets, by their names' summed counts)")
    p.add_argument("--hash-features", type=int, default=None, metavar="N",
                   help="hash attribute names into N buckets while reading (MurmurHash3, "
                        "as 'fastcrf train --hash-features': no name is held, the folder "
                        "records N and the seed, and train on it hashes the same way)")
    p.add_argument("--hash-seed", type=int, default=None, metavar="S",
                   help="the MurmurHash3 seed of --hash-features (default 0)")
    p.add_argument("--label-column", type=int, default=-1, metavar="K",
                   help="column holding the labels (default -1: the last)")
    p.add_argument("--sep", default=None,
                   help="field separator (default: any whitespace; '\\t' for tabs)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(run=_cmd_encode)

    p = sub.add_parser(
        "tag", help="label a column file with a model",
        description="Label a column file: write its rows with the predicted label "
                    "appended (a gold column, if present, is kept before it, so the "
                    "output feeds 'fastcrf eval'), or only the labels.")
    p.add_argument("input", metavar="FILE", nargs="+",
                   help="column file to label, or - for stdin (several: --scheduler)")
    p.add_argument("-m", "--model", required=True, metavar="MODEL",
                   help="model written by 'fastcrf train'")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write here instead of stdout (.gz compresses); with "
                        "--scheduler, the folder for the tagged files")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="tag the FILEs on the Dask cluster of this scheduler (e.g. "
                        "tcp://host:8786; needs fastcrf[dask]), one task per file, each "
                        "written to -o DIR under its own name; the paths must be "
                        "readable and writable by the workers")
    p.add_argument("-l", "--only-labels", action="store_true",
                   help="write only the predicted labels, one per line")
    p.add_argument("-i", "--marginals", action="store_true",
                   help="append the marginal probability of each predicted label")
    p.add_argument("-t", "--template", metavar="TEMPLATE", default=None,
                   help="CRF++ template (or 'chunking') extracting the model's "
                        "attributes, for a model that holds none (a CRFsuite file)")
    p.add_argument("--constraints", choices=("BIO", "IOB1", "BIOES", "BIOUL"),
                   default=None,
                   help="constrained decoding: never output a label sequence the "
                        "chunk scheme forbids (e.g. O followed by I-PER in BIO); a "
                        "model trained with --constraints always honours its own")
    p.add_argument("-n", "--nbest", type=int, default=0, metavar="N",
                   help="the N most probable labellings of each sentence (exact), each "
                        "after a line '# n P' (n from 0, P its probability) and "
                        "followed by a blank line, as CRF++'s crf_test -n")
    p.add_argument("-I", "--all-marginals", action="store_true",
                   help="append every label's marginal probability as label/p (CRF++'s "
                        "crf_test -v 2)")
    p.add_argument("--sep", default=None,
                   help="field separator (default: the training file's)")
    _jobs(p)
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no statistics on stderr")
    p.set_defaults(run=_cmd_tag)

    p = sub.add_parser(
        "eval", help="conlleval's report from gold and predicted columns",
        description="Score a column file whose last two columns are the gold and the "
                    "predicted labels; prints conlleval's report byte for byte.")
    p.add_argument("input", metavar="FILE", nargs="?", default="-",
                   help="column file (default: - for stdin)")
    p.add_argument("-r", "--raw", action="store_true",
                   help="conlleval's -r: labels carry no B-/I- prefix")
    p.add_argument("--o-tag", default="O", metavar="TAG",
                   help="conlleval's -o: the outside label with --raw (default O)")
    p.add_argument("--scheme", default=None,
                   choices=["IOB1", "IOB2", "BIO", "IOE1", "IOE2", "IOBES"],
                   help="IOBES adds the S-/E- rules; the others are conlleval's own")
    p.add_argument("-d", "--sep", default=None,
                   help="field separator (conlleval's -d; default: any whitespace)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also write per-type P/R/F1 bars and the confusion matrix "
                        "(needs fastcrf[plot])")
    p.set_defaults(run=_cmd_eval)

    p = sub.add_parser(
        "info", help="describe a model",
        description="Labels, attribute and weight counts, training settings, the "
                    "template, the strongest state features and the transition matrix.")
    p.add_argument("-m", "--model", required=True, metavar="MODEL")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="state features to list per sign (default 10)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also write the transition heat map and the training curve "
                        "(needs fastcrf[plot])")
    p.set_defaults(run=_cmd_info)

    p = sub.add_parser(
        "demo", help="train, tag and eval on a synthetic corpus (no data needed)",
        description="Write a synthetic chunking corpus (fastcrf.datasets), then run "
                    "'fastcrf train', 'tag' and 'eval' on it and report accuracy, F1 "
                    "and speed.")
    p.add_argument("-n", "--sequences", type=int, default=2000, metavar="N",
                   help="sentences in the corpus, a fifth held out for testing "
                        "(default 2000)")
    p.add_argument("--types", type=int, default=4, metavar="N",
                   help="chunk types (default 4: 9 BIO labels)")
    p.add_argument("-a", "--algorithm", choices=ALGORITHMS, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output-dir", metavar="DIR",
                   help="keep the corpus, template, model and output here (default: a "
                        "temporary folder)")
    _jobs(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(run=_cmd_demo)

    from .bench.tools import ALGORITHMS as BENCH_ALGORITHMS
    from .bench.tools import TOOLS as BENCH_TOOLS

    p = sub.add_parser(
        "bench", help="time fastcrf against python-crfsuite and sklearn-crfsuite",
        description="Train and tag with fastcrf and with the peers that are installed "
                    '(pip install "fastcrf[bench]"), on the same features, each run in '
                    "its own process, the tools alternating round after round; print "
                    "medians, min-max and ratios against fastcrf.  The data: a built-in "
                    "synthetic corpus (-n), or column files with a CRF++ template "
                    "(--train, --test, -t).")
    p.add_argument("-n", "--sentences", type=int, default=2000, metavar="N",
                   help="sentences of the synthetic corpus, a fifth tagged (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus")
    p.add_argument("--train", metavar="FILE", help="column file to train on instead")
    p.add_argument("--test", metavar="FILE",
                   help="column file to tag and score (default: the last fifth of --train)")
    p.add_argument("-t", "--template", metavar="TEMPLATE",
                   help="CRF++ template file for --train, or a built-in name: "
                        + ", ".join(BUILTIN_TEMPLATES))
    p.add_argument("--features", metavar="MODULE:FUNCTION",
                   help="the data from your own function instead: importable from the "
                        "current folder, no arguments, returns (X_train, y_train, X_test, "
                        "y_test) as CRF.fit takes them")
    p.add_argument("--sep", default=None,
                   help="field separator of the column files (default: any whitespace)")
    p.add_argument("--encoding", default="utf-8", help="of the column files")
    p.add_argument("-a", "--algorithms", default="default,lbfgs", metavar="LIST",
                   help="comma-separated, from: " + ", ".join(BENCH_ALGORITHMS)
                        + " (default: default,lbfgs)")
    p.add_argument("--tools", default=None, metavar="LIST",
                   help="comma-separated, from: " + ", ".join(BENCH_TOOLS)
                        + " (with --layers: fastcrf, fastcrf-torch, pytorch-crf); "
                        "default: all, those not installed listed as skipped")
    p.add_argument("--layers", action="store_true",
                   help="time the dense numpy API and the torch layer against "
                        "pytorch-crf instead (log-likelihood + gradient, decode)")
    p.add_argument("--grid", metavar="LIST",
                   help="with --layers: comma-separated BxTxK cells (default "
                        "32x50x5,32x50x20,256x50x5,256x50x20,256x50x50)")
    p.add_argument("--calls", type=int, default=5, metavar="N",
                   help="with --layers: timed calls per cell (their median counts)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--threads", default="1,all", metavar="LIST",
                   help="fastcrf's thread counts (default: 1,all)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds one run may take")
    p.add_argument("--json", metavar="FILE", help="also write every round here")
    p.add_argument("--plot", metavar="FILE.png", help="also draw a chart (needs matplotlib)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-round lines")
    p.set_defaults(run=_cmd_bench)

    from ._crfpp_cli import add_commands as add_crfpp_commands  # crf_learn, crf_test

    add_crfpp_commands(sub)
    from ._wapiti_cli import add_command as add_wapiti_command  # wapiti train/label/dump

    add_wapiti_command(sub)
    from ._crfsuite_cli import add_commands as add_crfsuite_commands  # learn, tag, dump

    add_crfsuite_commands(sub)
    return parser


def _describe(exc):
    """One line for an exception the user caused."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        text = "out of memory"
    return " ".join(text.split("\n"))


def _fail(message, status):
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return status


def run_as(command, argv=None):
    """``fastcrf COMMAND ARGS`` for a console script of one command (the
    ``fastcrf-crf_learn``, ``fastcrf-crfsuite``, ``fastcrf-wapiti`` entry points).

    Parameters
    ----------
    command : str
        The ``fastcrf`` subcommand.
    argv : list of str, optional
        Its arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, as :func:`main`'s.
    """
    return main([command, *(sys.argv[1:] if argv is None else argv)])


def main(argv=None):
    """Run the ``fastcrf`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 when a command fails (a bad file, template
        or model), 2 for a bad command line, 130 when interrupted.
    """
    debug = os.environ.get("FASTCRF_DEBUG", "") not in ("", "0")
    try:
        parser = _build_parser()
        try:
            args = parser.parse_args(argv)
        except _UsageError as exc:
            return _fail(str(exc), 2)
        except SystemExit as exc:  # --help and --version have printed and "exited"
            return exc.code if isinstance(exc.code, int) else 0
        if args.command is None:
            return _fail("no command given: train, tag, eval, info, demo or bench "
                         "(see 'fastcrf --help')", 2)
        return args.run(args)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do, and
        # keep Python from complaining again when it flushes stdout at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except (CommandError, OSError, ValueError, TypeError, LookupError, MemoryError) as exc:
        if debug:
            raise
        return _fail(_describe(exc), 1)


if __name__ == "__main__":  # pragma: no cover - `python -m fastcrf` uses __main__.py
    sys.exit(main())
