"""Tagging on a Dask cluster: the model goes to each worker once, then every
partition of the bag is tagged where it lives, in order."""

from ._cluster import get_client, realigned


def _model_on_cluster(crf, client):
    """The fitted model of ``crf``, scattered to every worker once."""
    from .._estimator import CRF

    if not isinstance(crf, CRF):
        raise TypeError(f"crf must be a fastcrf.CRF, got {type(crf).__name__}")
    model = crf._fitted_model()  # NotFittedError before anything is sent
    return get_client(client).scatter(model, broadcast=True, hash=False)


def _predict_partition(X, model):
    X = list(X)
    return realigned(model).predict(X, n_jobs=1) if X else []


def _marginals_partition(X, model):
    X = list(X)
    return realigned(model).predict_marginals(X, n_jobs=1) if X else []


def _check_bag(X_bag):
    import dask.bag as db

    if not isinstance(X_bag, db.Bag):
        raise TypeError(f"X_bag must be a dask.bag.Bag of sequences, got "
                        f"{type(X_bag).__name__}")


def predict(crf, X_bag, *, client=None):
    """The most likely label sequence of every sequence of ``X_bag``, on the cluster.

    Parameters
    ----------
    crf : fastcrf.CRF
        A fitted estimator (trained anywhere); its model is sent to each worker once.
    X_bag : dask.bag.Bag
        Sequences of token features, as :meth:`fastcrf.CRF.predict` takes them.
    client : distributed.Client, optional
        Default: the current client.

    Returns
    -------
    dask.bag.Bag
        Lists of str labels, in the order of ``X_bag`` (lazy: ``.compute()`` it).
    """
    _check_bag(X_bag)
    return X_bag.map_partitions(_predict_partition, _model_on_cluster(crf, client))


def predict_marginals(crf, X_bag, *, client=None):
    """The label marginals of every token of ``X_bag``, on the cluster: a bag of lists
    of ``{label: probability}`` dicts, as :meth:`fastcrf.CRF.predict_marginals`.

    Parameters are those of :func:`predict`.

    Returns
    -------
    dask.bag.Bag
    """
    _check_bag(X_bag)
    return X_bag.map_partitions(_marginals_partition, _model_on_cluster(crf, client))


def _tag_file(model, meta, source, target, sep):
    """Tag one column file with a model trained by ``fastcrf train``, as ``fastcrf tag``
    does (the rows, then the predicted label); return its token count."""
    from ..cli import CommandError, _split_gold
    from ..io import read_conll, write_conll
    from ..templates import Template

    model = realigned(model)
    sentences = list(read_conll(source, sep=sep))
    if not sentences:
        return 0
    try:
        tokens, _ = _split_gold(sentences, meta, source)
    except CommandError as exc:
        raise ValueError(str(exc)) from None
    _, encoded = Template(meta["template"]).encode(tokens, vocabulary=model.vocabulary)
    codes = model.viterbi_codes(encoded, 1).tolist()
    classes, out, t = model.classes, [], 0
    for sentence in sentences:
        out.append([(*row, classes[codes[t + i]]) for i, row in enumerate(sentence)])
        t += len(sentence)
    write_conll(target, out, sep=sep if sep is not None else " ")
    return t


def tag_files(crf, sources, targets, *, sep=None, client=None):
    """Tag many column files on the cluster, one task per file, with a model trained by
    ``fastcrf train`` (its feature template is in the model file).

    Parameters
    ----------
    crf : fastcrf.CRF
        Loaded with :meth:`fastcrf.CRF.load` from a ``fastcrf train`` model file.
    sources, targets : list of str
        Input column files (token columns, optionally the gold label too) and where to
        write each tagged file (the rows with the predicted label appended, as
        ``fastcrf tag`` writes them); paths the workers can read and write.
    sep : str, optional
        Field separator (default: the training file's).
    client : distributed.Client, optional

    Returns
    -------
    int
        Tokens tagged.
    """
    from ..cli import _META_KEY

    sources, targets = [str(s) for s in sources], [str(t) for t in targets]
    if len(sources) != len(targets):
        raise ValueError(f"sources and targets must have the same length, got "
                         f"{len(sources)} and {len(targets)}")
    meta = crf._fitted_model().metadata.get(_META_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("template"), str):
        raise ValueError("crf holds no feature template: tag_files needs a model written "
                         "by 'fastcrf train'")
    sep = sep if sep is not None else meta.get("sep")
    client = get_client(client)
    model = _model_on_cluster(crf, client)
    futures = [client.submit(_tag_file, model, meta, s, t, sep, pure=False)
               for s, t in zip(sources, targets)]
    return sum(client.gather(futures))
