"""The data a benchmark trains and tags on, described by a small JSON-able dict.

Every child process rebuilds its data from the same description (a seed, or file
paths and a template), outside the timed region, so all tools see the same features:
per token a list of str attribute names, which fastcrf, python-crfsuite and
sklearn-crfsuite all take as they are.
"""

import os

__all__ = ["column_workload", "describe", "load", "python_workload", "synthetic_workload"]

#: Chunk types of the synthetic corpus (9 BIO labels).
SYNTHETIC_TYPES = 4


def synthetic_vocabulary(n_sentences):
    """Words of the synthetic corpus: as many as sentences (at least 50, at most
    100,000), so that a larger corpus has a larger vocabulary, as text does, and a
    small one still sees most of its words in training."""
    return min(100_000, max(50, int(n_sentences)))


def synthetic_workload(n_sentences=2000, seed=0):
    """The description of the built-in corpus: ``n_sentences`` sentences of 5-40 tokens
    sampled from one hidden Markov model over BIO chunk labels
    (:func:`fastcrf.datasets.make_sequences`; each token lists its word and the words
    up to two positions away; :func:`synthetic_vocabulary` words), a fifth of them held
    out for tagging.

    Parameters
    ----------
    n_sentences : int, default=2000
        Sentences in all (at least 10).
    seed : int, default=0
        The same seed gives the same corpus.

    Returns
    -------
    dict
    """
    if isinstance(n_sentences, bool) or not isinstance(n_sentences, int) or n_sentences < 10:
        raise ValueError(f"n_sentences must be an int >= 10, got {n_sentences!r}")
    return {"kind": "synthetic", "n_sentences": n_sentences, "seed": int(seed)}


def column_workload(train, template, test=None, *, sep=None, encoding="utf-8"):
    """The description of a corpus in column files (CoNLL style: one token per line,
    the label last, a blank line between sentences) and a CRF++ template.

    Parameters
    ----------
    train : str
        Training file (``.gz`` is read compressed).
    template : str
        A CRF++ template file, or the name of a built-in one (``"chunking"``).
    test : str, optional
        Tagging / evaluation file; without it the last fifth of ``train`` is held out.
    sep : str, optional
        Field separator (default: any whitespace).
    encoding : str, default="utf-8"

    Returns
    -------
    dict
    """
    for name, path in (("train", train), ("test", test)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{name}: no such file: {path!r}")
    if not _template(template).unigram:  # fail here, not in every child
        raise ValueError(f"{template}: the template has no U lines, so it extracts no "
                         "attributes to train on")
    return {"kind": "columns", "train": os.path.abspath(train),
            "test": None if test is None else os.path.abspath(test),
            "template": template if template == "chunking" else os.path.abspath(template),
            "sep": sep, "encoding": encoding}


def python_workload(loader, path=None):
    """The description of a corpus that a function of the user's builds: ``loader`` is
    ``"module:function"``, importable from ``path`` (default: the current folder), and
    the function takes no argument and returns ``(X_train, y_train, X_test, y_test)``
    (per sentence, per token, a list of str or a dict of attribute values, as
    :meth:`fastcrf.CRF.fit` takes them; per sentence a list of str labels).

    This is how one benchmarks one's own feature extraction against the peers: the
    function runs in every child, before the clock starts.

    Parameters
    ----------
    loader : str
    path : str, optional

    Returns
    -------
    dict
    """
    module, sep, function = str(loader).partition(":")
    if not sep or not module or not function.isidentifier():
        raise ValueError(f"--features must be MODULE:FUNCTION, got {loader!r}")
    return {"kind": "python", "loader": f"{module}:{function}",
            "path": os.path.abspath(path or os.getcwd())}


def _python(workload):
    import importlib
    import sys

    if workload["path"] not in sys.path:
        sys.path.insert(0, workload["path"])
    module, _, function = workload["loader"].partition(":")
    loaded = getattr(importlib.import_module(module), function)()
    if not (isinstance(loaded, (tuple, list)) and len(loaded) == 4):
        raise ValueError(f"{workload['loader']} must return (X_train, y_train, X_test, "
                         f"y_test), got {type(loaded).__name__}")
    X, y, X_test, y_test = (list(part) for part in loaded)
    for name, a, b in (("train", X, y), ("test", X_test, y_test)):
        if not a or len(a) != len(b) or any(len(s) != len(t) for s, t in zip(a, b)):
            raise ValueError(f"{workload['loader']}: the {name} features and labels must "
                             "be non-empty and of matching lengths")
    return X, y, X_test, y_test


def _template(spec):
    from ..templates import CHUNKING_TEMPLATE, Template

    if spec == "chunking":
        return Template(CHUNKING_TEMPLATE)
    if not os.path.isfile(spec):
        raise ValueError(f"template: no such file: {spec!r} (a CRF++ template file or "
                         "'chunking')")
    return Template.from_file(spec)


def load(workload):
    """``(X_train, y_train, X_test, y_test)`` of a workload description: per sentence,
    per token, a list of str attributes; per sentence a list of str labels."""
    kind = workload.get("kind")
    if kind == "synthetic":
        return _synthetic(workload["n_sentences"], workload["seed"])
    if kind == "columns":
        return _columns(workload)
    if kind == "python":
        return _python(workload)
    raise ValueError(f"unknown workload kind {kind!r}")


def _synthetic(n_sentences, seed):
    from ..datasets import make_sequences

    # One draw, then split: two draws with different seeds would come from two
    # different generating models.
    X, y = make_sequences(n_sentences, n_labels=SYNTHETIC_TYPES, scheme="BIO",
                          n_attributes=synthetic_vocabulary(n_sentences),
                          length=(5, 40), context=2,
                          random_state=seed)
    n_test = max(1, n_sentences // 5)
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test]


def _columns(workload):
    from ..io import load_conll

    template = _template(workload["template"])
    kw = {"sep": workload["sep"], "encoding": workload["encoding"]}
    X, y = load_conll(workload["train"], **kw)
    if workload["test"] is None:
        n_test = max(1, len(X) // 5)
        X, y, X_test, y_test = X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:]
    else:
        X_test, y_test = load_conll(workload["test"], **kw)
    if not X or not X_test:
        raise ValueError("the column files hold no sentences to train and tag")
    # Template.transform names the sentence and token of a row too short for it.
    return template.transform(X), y, template.transform(X_test), y_test


def describe(workload, n_train=None, n_train_tokens=None, n_test=None):
    """One line that names the workload (and its size, when known)."""
    if workload["kind"] == "synthetic":
        text = (f"synthetic BIO corpus ({workload['n_sentences']} sentences, "
                f"seed {workload['seed']})")
    elif workload["kind"] == "python":
        text = f"features of {workload['loader']}"
    else:
        test = os.path.basename(workload["test"]) if workload["test"] else "last fifth"
        tpl = workload["template"]
        text = (f"{os.path.basename(workload['train'])} -> {test}, template "
                f"{tpl if tpl == 'chunking' else os.path.basename(tpl)}")
    if n_train is not None:
        text += f"; train {n_train} sentences ({n_train_tokens} tokens), tag {n_test}"
    return text
