"""Tagging column files on a Dask cluster, one task per file, as ``fastcrf tag`` tags
one: what ``fastcrf tag --scheduler ADDRESS`` runs."""

import os
from dataclasses import dataclass

from ._cluster import get_client, realigned


@dataclass(frozen=True)
class _Options:
    """What every task needs besides its file (sent with each task: a few bytes)."""

    template: object  # fastcrf.templates.Template
    meta: dict  # the model's 'fastcrf train' metadata, None with a template given
    sep: str
    only_labels: bool
    marginals: bool


def _tag_file(crf, options, source, target):
    """Tag one column file into ``target``; its token count."""
    from ..cli import CommandError, _split_gold, _tagged_rows
    from ..io import read_conll, write_conll

    crf = realigned(crf)
    sentences = list(read_conll(source, sep=options.sep))
    rows = []
    if sentences:
        tokens = sentences
        if options.meta is not None:
            try:
                tokens, _ = _split_gold(sentences, options.meta, source)
            except CommandError as exc:
                raise ValueError(str(exc)) from None
        rows, _ = _tagged_rows(crf, options.template, sentences, tokens,
                               options.only_labels, options.marginals)
    write_conll(target, rows, sep=options.sep if options.sep is not None else " ")
    return sum(map(len, sentences))


def _paths(paths, name):
    """``paths`` (a list, tuple or dask bag of paths) as a list of absolute str."""
    import dask.bag as db

    if isinstance(paths, db.Bag):
        paths = paths.compute()  # file names only: the workers read the files
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, (list, tuple)):
        raise TypeError(f"{name} must be a list of paths (or a dask.bag.Bag of them), "
                        f"got {type(paths).__name__}")
    out = []
    for i, path in enumerate(paths):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{name}[{i}] must be a path, got {type(path).__name__}")
        # The workers may run in other folders.
        out.append(os.path.abspath(os.fspath(path)))
    return out


def tag_files(crf, sources, targets, *, sep=None, template=None, only_labels=False,
              marginals=False, n_jobs=1, client=None):
    """Tag many column files on the cluster, one task per file, as ``fastcrf tag``
    tags each: the rows with the predicted label appended (or only the labels).

    The model is sent to each worker once; every task names it by its key.

    Parameters
    ----------
    crf : fastcrf.CRF
        A fitted estimator, usually loaded with :meth:`fastcrf.CRF.load` from a model
        written by ``fastcrf train`` (its feature template is in the file).
    sources : list of path or dask.bag.Bag of paths
        Input column files: the token columns, optionally the gold label too (kept in
        the output, for ``fastcrf eval``).  The workers read them, so the paths must
        be the same on every machine (a shared file system).
    targets : list of path
        Where to write each tagged file (atomically; ``.gz`` compresses), one per
        source, in the same order.
    sep : str, optional
        Field separator (default: the training file's, else whitespace).
    template : fastcrf.templates.Template, optional
        The template that made the model's attributes, for a model that holds none
        (one not written by ``fastcrf train``); every column is then a token column.
    only_labels : bool, default=False
        Write only the predicted labels (``fastcrf tag -l``).
    marginals : bool, default=False
        Append the marginal probability of each predicted label (``fastcrf tag -i``).
    n_jobs : int, default=1
        Threads of each task (the workers' own threads are the parallelism).
    client : distributed.Client, optional
        Default: the current client.

    Returns
    -------
    list of int
        The tokens of each file, in the order of ``sources`` (an empty file gives an
        empty output and 0).

    Raises
    ------
    TypeError
        For a ``crf`` that is no CRF, or ``sources`` / ``targets`` that are no list of
        paths, a ``template`` that is no Template.
    ValueError
        For lists of different lengths, a target written twice or equal to a source,
        a model without a template (and no ``template``), or a file the model cannot
        tag (the file is named).
    """
    from .._estimator import CRF
    from ..cli import _META_KEY
    from ..templates import Template

    if not isinstance(crf, CRF):
        raise TypeError(f"crf must be a fastcrf.CRF, got {type(crf).__name__}")
    sources, targets = _paths(sources, "sources"), _paths(targets, "targets")
    if len(sources) != len(targets):
        raise ValueError(f"sources and targets must have the same length, got "
                         f"{len(sources)} and {len(targets)}")
    if len(set(targets)) != len(targets):
        raise ValueError("targets names a file twice")
    for source, target in zip(sources, targets):
        if os.path.realpath(source) == os.path.realpath(target):
            raise ValueError(f"targets: {target} is also a source, which its tagging "
                             "would overwrite")
    model = crf._fitted_model()  # NotFittedError before anything is sent
    if template is not None and not isinstance(template, Template):
        raise TypeError(f"template must be a fastcrf.templates.Template, got "
                        f"{type(template).__name__}")
    meta = None
    if template is None:
        meta = model.metadata.get(_META_KEY)
        if not isinstance(meta, dict) or not isinstance(meta.get("template"), str):
            raise ValueError("crf holds no feature template: tag_files needs a model "
                             "written by 'fastcrf train', or template=")
        template = Template(meta["template"])
        sep = sep if sep is not None else meta.get("sep")
    options = _Options(template, meta, sep, bool(only_labels), bool(marginals))
    # Only the model and n_jobs travel: not the caller's model_filename or other state.
    worker_crf = CRF(n_jobs=n_jobs)
    worker_crf._model = model
    client = get_client(client)
    crf_f = client.scatter(worker_crf, broadcast=True, hash=False)
    futures = [client.submit(_tag_file, crf_f, options, source, target, pure=False)
               for source, target in zip(sources, targets)]
    try:
        return client.gather(futures)
    finally:
        client.cancel(futures)  # after a failure, the other files' tasks stop too
