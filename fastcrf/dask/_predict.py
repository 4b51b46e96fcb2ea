"""Tagging a bag on a Dask cluster: the model goes to each worker once, then every
partition of the bag is tagged where it lives, in order."""

from ._cluster import get_client, realigned


def _model_on_cluster(crf, client):
    """The fitted model of ``crf``, scattered to every worker once: the tasks then
    name it by its key, so it is not sent again with each of them."""
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
