"""What every entry point of :mod:`fastcrf.dask` needs from the cluster: the client,
the partitions of a bag, where each partition lives, and a reduction in a fixed order.
"""

import dask.bag as db
import numpy as np
from dask.delayed import Delayed


def get_client(client=None):
    """``client``, or the current :class:`distributed.Client`.

    Raises
    ------
    ValueError
        When there is none: the message says how to start one.
    TypeError
        When ``client`` is not a Client.
    """
    from distributed import Client, default_client

    if client is not None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client, got "
                            f"{type(client).__name__}")
        return client
    try:
        return default_client()
    except ValueError:
        raise ValueError(
            "fastcrf.dask needs a dask.distributed client: start one first "
            "(client = distributed.Client(address), or Client(LocalCluster()) on one "
            "machine) or pass client=") from None


def as_bag(data, name, npartitions):
    """``data`` as a :class:`dask.bag.Bag`: a bag as it is, a list or tuple of sequences
    split into ``npartitions`` partitions."""
    if isinstance(data, db.Bag):
        return data
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError(f"{name} holds no sequences")
        return db.from_sequence(data, npartitions=max(1, min(npartitions, len(data))))
    raise TypeError(f"{name} must be a dask.bag.Bag of sequences (or a list of them), got "
                    f"{type(data).__name__}")


def partitions(bag):
    """The partitions of ``bag`` as a list of :class:`~dask.delayed.Delayed`, in order."""
    parts = bag.to_delayed()
    assert all(isinstance(p, Delayed) for p in parts)
    return parts


def workers_of(client):
    """The addresses of the cluster's workers, sorted (a fixed order to place by).

    Raises
    ------
    ValueError
        When the cluster has no worker.
    """
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise ValueError("the dask cluster has no worker")
    return workers


def placement(n_parts, workers):
    """The worker of each partition: contiguous blocks of partitions per worker, so that
    the lower levels of :func:`tree_reduce` add up on one worker without a transfer."""
    W = len(workers)
    return [workers[i * W // n_parts] for i in range(n_parts)]


def tree_reduce(client, futures, combine):
    """Reduce ``futures`` by ``combine(a, b)`` on the cluster, pairwise in index order:
    ``((0 + 1) + (2 + 3)) + 4`` for five.

    The shape of the tree depends only on the number of futures, so a floating-point
    sum is the same whichever workers compute it and however many there are.

    Returns
    -------
    Future
        The root.
    """
    level = list(futures)
    while len(level) > 1:
        nxt = [client.submit(combine, a, b, pure=False)
               for a, b in zip(level[0::2], level[1::2])]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def realigned(obj):
    """``obj`` with every numpy array in it aligned for its dtype.

    Dask hands a task the arrays of its arguments as views into the message it
    received, at any byte offset, and the compiled kernels read doubles and int64s
    from them: a misaligned load is undefined behaviour (the sanitizer build stops on
    it; vector loads may fault).  A task's result reaches the client the same way.  So
    each worker-side entry point passes what it was sent through here, and the client
    what a task returned to it: misaligned arrays are copied (aligned ones are kept, so the
    usual local case costs nothing), inside tuples, lists, dicts and the attributes of
    fastcrf's own objects (updated in place: they are this worker's deserialized
    copies, and the update is idempotent).

    Parameters
    ----------
    obj : object

    Returns
    -------
    object
        ``obj`` itself, or a new array / container where one had to change.
    """
    return _realigned(obj, set())


def _realigned(obj, seen):
    if isinstance(obj, np.ndarray):
        return obj if obj.flags.aligned else np.require(obj, requirements=["A"])
    if isinstance(obj, (str, bytes, int, float, bool, type(None))) or id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        items = [_realigned(item, seen) for item in obj]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        if isinstance(obj, list):
            return items
        return type(obj)._make(items) if hasattr(obj, "_make") else type(obj)(items)
    if isinstance(obj, dict):
        for key, value in obj.items():
            new = _realigned(value, seen)
            if new is not value:
                obj[key] = new
        return obj
    if type(obj).__module__.startswith("fastcrf."):
        names = list(getattr(obj, "__dict__", {}))
        for cls in type(obj).__mro__:
            names += [n for n in getattr(cls, "__slots__", ()) if hasattr(obj, n)]
        for name in names:
            value = getattr(obj, name)
            new = _realigned(value, seen)
            if new is not value:
                object.__setattr__(obj, name, new)  # frozen dataclasses included
    return obj
