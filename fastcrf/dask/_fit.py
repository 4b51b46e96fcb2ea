"""Training on a Dask cluster: exact L-BFGS / OWL-QN, and parameter mixing for the
online trainers.

Both keep each partition, encoded with the global vocabulary
(:mod:`fastcrf.dask._vocabulary`), in its worker's memory from the first iteration to
the last (a future that the driver holds), so an iteration moves weights and
gradients, never data.

- ``algorithm='lbfgs'``: every evaluation of the objective broadcasts the point to the
  workers; each returns the log-likelihood of its partitions and its gradient
  (:meth:`fastcrf._train.lbfgs._Objective.log_likelihood`); these are summed on the
  cluster in a fixed binary tree over the partitions (:func:`~._cluster.tree_reduce`),
  and the driver adds the L2 term and takes the L-BFGS-B or OWL-QN step of the
  single-machine trainer (:func:`fastcrf._train.lbfgs.minimize_objective`).  The
  result is that of one machine up to the order of the floating-point sums.
- ``'asgd'``, ``'ap'``, ``'pa'``: iterative parameter mixing (McDonald, Hall and Mann
  2010, "Distributed training strategies for the structured perceptron").  Every round,
  each partition runs one epoch of the trainer from the mixed weights (the trainer's
  ``init``), on a shard whose objective is its share of the whole one (``c1`` and
  ``c2`` scaled by the shard's fraction of the sequences), and the mixed weights become
  the average of the partitions' weights, weighted by their sequence counts.
"""

import time
from itertools import pairwise

import numpy as np
from distributed import wait

from .._dataset import Dataset, training_set
from .._model import CRFModel
from .._params import as_generator, for_data, resolve
from .._train import TRAINERS
from .._train.base import LayoutWeights
from .._train.lbfgs import _Objective, minimize_objective, regularized
from .._train.progress import Progress
from .._train.sgd import _converged, calibrate_eta, default_epochs
from .._training import sum_of_squares
from . import _vocabulary as V
from ._cluster import (as_bag, get_client, partitions, placement, realigned, tree_reduce,
                       workers_of)

#: The algorithms :func:`fit` runs, and how.
EXACT = ("lbfgs",)
MIXING = ("asgd", "ap", "pa")


def fit(crf, X_bag, y_bag=None, *, client=None):
    """Train ``crf`` on a Dask cluster with its own ``algorithm`` and parameters.

    Parameters
    ----------
    crf : fastcrf.CRF
        The estimator; its previous model, if any, is replaced when the fit succeeds.
    X_bag, y_bag : dask.bag.Bag
        The sequences of token features and their label sequences, partitioned alike
        (as :meth:`fastcrf.CRF.fit` takes ``X`` and ``y``).  Lists are split into one
        partition per worker.  ``X_bag`` may also be a labelled :class:`fastcrf.Dataset`
        (``y_bag`` None): already encoded with one vocabulary, it is split on the
        driver into one contiguous block of sequences per worker, each sent once.
    client : distributed.Client, optional
        Default: the current client.

    Returns
    -------
    crf : fastcrf.CRF
        Fitted: an ordinary model, which predicts and saves without Dask.

    Raises
    ------
    ValueError, TypeError
        For malformed data or parameters, an algorithm other than 'lbfgs', 'asgd', 'ap'
        and 'pa', ``early_stopping``, or no client.
    """
    from .._estimator import CRF

    if not isinstance(crf, CRF):
        raise TypeError(f"crf must be a fastcrf.CRF, got {type(crf).__name__}")
    client = get_client(client)
    params = crf.get_params()
    p = resolve(params)
    if p["constraints"] is not None:
        raise ValueError("constraints are not supported by fastcrf.dask.fit; train "
                         "with CRF(constraints=...).fit on one machine")
    if p["early_stopping"]:
        raise ValueError("early_stopping is not supported by fastcrf.dask.fit (it needs a "
                         "development set on the driver); set early_stopping=False")
    for name in ("hash_features", "template"):
        if p[name] is not None:
            raise ValueError(f"{name} is not supported by fastcrf.dask.fit; set "
                             f"{name}=None")
    started = time.perf_counter()
    workers = workers_of(client)
    if isinstance(X_bag, Dataset):
        if y_bag is not None:
            raise ValueError("y_bag must be None when X_bag is a Dataset: its labels "
                             "are part of it")
        data = _Cluster.from_dataset(client, workers, X_bag, p)
    else:
        if y_bag is None:
            raise ValueError("y_bag is required (one label sequence per sequence of "
                             "X_bag), unless X_bag is a fastcrf.Dataset")
        X_bag = as_bag(X_bag, "X_bag", len(workers))
        y_bag = as_bag(y_bag, "y_bag", len(workers))
        if X_bag.npartitions != y_bag.npartitions:
            raise ValueError(f"X_bag and y_bag must be partitioned alike: X_bag has "
                             f"{X_bag.npartitions} partitions, y_bag "
                             f"{y_bag.npartitions}")
        data = _Cluster(client, workers, X_bag, y_bag, p)
    try:
        p, note = for_data(params, p, data.n_sequences)
        if p["algorithm"] not in EXACT + MIXING:
            raise ValueError(f"fastcrf.dask.fit trains algorithm 'lbfgs' (exactly) or "
                             f"'asgd', 'ap', 'pa' (by parameter mixing), got "
                             f"{p['algorithm']!r}")
        layout, mask = data.layout(p["all_possible_states"], p["all_possible_transitions"])
        progress = Progress(p["algorithm"], layout, verbose=p["verbose"],
                            started=started)
        if note:
            progress.message(note)
        progress.message(
            f"fastcrf.dask: {p['algorithm']} on {data.n_sequences} sequences in "
            f"{len(data.parts)} partitions, {len(workers)} workers, "
            f"{len(data.vocabulary)} attributes, {len(data.classes)} labels, "
            f"{layout.n_weights + mask.size} weights")
        run = _fit_lbfgs if p["algorithm"] in EXACT else _fit_mixing
        weights, n_iter = run(data, p, layout, mask, progress)
    finally:
        data.release()
    model = CRFModel(data.classes, data.vocabulary, layout, weights.state, weights.chain,
                     training_log=progress.log, n_iter=n_iter)
    crf._install(model)  # as CRF.fit: model_filename written, size_ of the new file
    return crf


class _Cluster:
    """The training set on the cluster: each partition encoded with the global
    vocabulary, in its worker's memory (``parts``: futures of
    :class:`fastcrf._training.TrainingData`, None for an empty partition)."""

    def __init__(self, client, workers, X_bag, y_bag, p):
        self.client = client
        where = placement(X_bag.npartitions, workers)
        self.where = where
        local = [client.compute(_encode_local_task(x, y, i), workers=[w],
                                allow_other_workers=True)
                 for i, (x, y, w) in enumerate(zip(partitions(X_bag), partitions(y_bag),
                                                   where))]
        try:
            summaries = [self._on(w, V.summarize, part) for part, w in zip(local, where)]
            summary = realigned(tree_reduce(client, summaries, V.merge_summaries).result())
            if summary is None:
                raise ValueError("X_bag holds no sequences")
            self.vocabulary = V.global_vocabulary(summary, p["min_freq"])
            self.classes = summary.classes
            self.n_sequences = summary.n_sequences
            self.shard_sizes = client.gather([self._on(w, _n_sequences, part)
                                              for part, w in zip(local, where)])
            vocabulary = client.scatter(self.vocabulary, broadcast=True, hash=False)
            self.parts = [self._on(w, V.globalize, part, vocabulary, self.classes)
                          for part, w in zip(local, where)]
            wait(self.parts)
        finally:
            del local  # the locally encoded partitions are no longer needed

    @classmethod
    def from_dataset(cls, client, workers, dataset, p):
        """The training set of a :class:`fastcrf.Dataset`: its vocabulary is already
        global, so each worker gets a contiguous block of the encoded sequences."""
        vocabulary, classes, whole = training_set(dataset, None, p["min_freq"])
        self = cls.__new__(cls)
        self.client = client
        self.vocabulary, self.classes = vocabulary, classes
        self.n_sequences = whole.n_sequences
        n_parts = max(1, min(len(workers), self.n_sequences))
        self.where = placement(n_parts, workers)
        bounds = [i * self.n_sequences // n_parts for i in range(n_parts + 1)]
        blocks = [whole.subset(np.arange(a, b)) for a, b in pairwise(bounds)]
        self.shard_sizes = [b.n_sequences for b in blocks]
        # Scattered data arrives as views into its message, at any byte offset: realigned
        # once on its worker, where every task on the partition reads it.
        self.parts = [self._on(w, realigned, client.scatter(b, workers=[w], hash=False))
                      for b, w in zip(blocks, self.where)]
        return self

    def _on(self, worker, fn, *args):
        """``fn(*args)`` as a task on ``worker`` (or another one if it left)."""
        return self.client.submit(fn, *args, workers=[worker], allow_other_workers=True,
                                  pure=False)

    def layout(self, all_possible_states, all_possible_transitions):
        """The state layout and the chain mask, from the pairs seen in every partition
        (as :meth:`fastcrf._layout.StateLayout.for_training` and
        :func:`fastcrf._training.chain_mask` choose them on one machine)."""
        A, K = len(self.vocabulary), len(self.classes)
        # None: every seen pair first, then the capped frequent head (for_training).
        n_dense = A if all_possible_states else 0
        seen = realigned(self.client.gather([
            self._on(w, V.seen_pairs, part, n_dense, bool(all_possible_transitions))
            for part, w in zip(self.parts, self.where)]))
        layout, mask = V.global_layout(seen, A, K, n_dense)
        if all_possible_states is None:
            min_count, max_ratio = _dense_rule()
            frequent = self.vocabulary.counts >= min_count
            n_frequent = int(np.argmin(frequent)) if not frequent.all() else A
            layout = layout.with_head(layout.largest_head(n_frequent, max_ratio))
        return layout, mask

    def each(self, fn, *args, parts=None):
        """Futures of ``fn(part, *args)`` for every non-empty partition, on its worker."""
        parts = self.parts if parts is None else parts
        return [self._on(w, fn, part, *args)
                for part, w, n in zip(parts, self.where, self.shard_sizes) if n]

    def release(self):
        """Let the workers drop the partitions."""
        self.parts = []


def _n_sequences(part):
    return 0 if part is None else part.features.n_sequences


def _encode_local_task(X_part, y_part, index):
    import dask

    return dask.delayed(V.encode_local, pure=False)(X_part, y_part, index)


def _dense_rule():
    from .._layout import DENSE_MAX_RATIO, DENSE_MIN_COUNT

    return DENSE_MIN_COUNT, DENSE_MAX_RATIO


# --------------------------------------------------------------------------- #
# L-BFGS                                                                        #
# --------------------------------------------------------------------------- #


def _make_objective(data, layout, mask):
    # One thread per task: the workers' threads are the parallelism.
    return _Objective(data, realigned(layout), realigned(mask), 0.0, 1)


def _log_likelihood(objective, x):
    ll, grad = objective.log_likelihood(realigned(x))
    return ll, grad.copy()  # the buffer is the objective's, reused at the next call


def add_pair(a, b):
    """The sum of two ``(number, vector)`` pairs (new arrays: the inputs may be held)."""
    return a[0] + b[0], a[1] + b[1]


class _DistributedObjective:
    """The training objective summed over the partitions: ``x -> (f, grad)`` with the
    ``loss`` and ``grad`` of :class:`fastcrf._train.lbfgs._Objective`."""

    def __init__(self, data, layout, mask, c2):
        self.client = data.client
        self.data = data
        self.c2 = float(c2)
        layout_f, mask_f = self.client.scatter([layout, mask], broadcast=True, hash=False)
        self.objectives = data.each(_make_objective, layout_f, mask_f)
        self.loss = np.nan
        self.grad = None
        self.n_evaluations = 0

    def __call__(self, x):
        client = self.client
        x = np.ascontiguousarray(x, dtype=np.float64)
        x_f = client.scatter(x, broadcast=True, hash=False)
        parts = self.data.each(_log_likelihood, x_f, parts=self.objectives)
        # A result is a view into the message it came in, as a task's arguments are:
        # realigned before the kernels of regularized() read it.
        ll, grad = realigned(tree_reduce(client, parts, add_pair).result())
        self.n_evaluations += 1
        f, grad = regularized(ll, grad, x, self.c2)
        if np.isfinite(ll):
            self.loss = -ll
        self.grad = grad
        return f, grad


def _fit_lbfgs(data, p, layout, mask, progress):
    trainer = TRAINERS["lbfgs"]
    settings = trainer.Settings.from_params(p)
    fun = _DistributedObjective(data, layout, mask, settings.c2)
    return minimize_objective(fun, layout.size, len(data.classes), settings,
                              callback=progress.callback, log=progress.message)


# --------------------------------------------------------------------------- #
# Iterative parameter mixing                                                    #
# --------------------------------------------------------------------------- #


def _epoch_on_shard(data, layout, mask, algorithm, settings, init, seed, t=0.0):
    """One epoch of ``algorithm`` on a partition from ``init``: its weights times its
    sequence count (what the weighted average adds up) and the epoch's loss.

    ``t``: the sequences the whole training set has had before this round, where
    'asgd''s 'calibrated' step, which decays with t, goes on from, as a warm start's
    does (``init.schedule``)."""
    trainer = TRAINERS[algorithm]
    layout, mask, init = realigned(layout), realigned(mask), realigned(init)
    init = LayoutWeights(init.state, init.chain, schedule={"t": float(t)})
    seen = {}

    def callback(epoch, info, weights_fn):
        seen["loss"] = info["loss"]
        return False

    weights, _ = trainer.fit(data, settings, layout=layout, chain_mask=mask,
                             random_state=np.random.default_rng(seed), n_jobs=1,
                             callback=callback, init=init)
    n = data.n_sequences
    return seen["loss"], np.concatenate((weights.state * n, weights.chain * n))


def _calibrate_on_shard(data, layout, mask, settings, lam, lam1, seed):
    return calibrate_eta(data, settings, lam, realigned(layout), realigned(mask), np.random.default_rng(seed),
                         1, lam1=lam1, step_up=True)


def _shard_settings(trainer, p, fraction, eta0):
    """One epoch's settings for a shard holding ``fraction`` of the sequences: its
    share of the regularisation, so that the shards' objectives add up to the whole."""
    q = dict(p, max_iterations=1)
    if trainer.name == "asgd":
        q.update(c1=p["c1"] * fraction, c2=p["c2"] * fraction, eta0=eta0)
    return trainer.Settings.from_params(q)


def _fit_mixing(data, p, layout, mask, progress):
    client = data.client
    trainer = TRAINERS[p["algorithm"]]
    N = data.n_sequences
    sizes = [n for n in data.shard_sizes if n]
    rng = as_generator(p["random_state"])
    settings = trainer.Settings.from_params(p)
    eta0 = None
    rounds = settings.max_iterations
    if trainer.name == "asgd":
        if rounds is None:
            rounds = default_epochs(N, settings.batch_size)
        eta0 = settings.eta0
        if eta0 is None:
            # On the largest partition: a sample of the data, as the single-machine
            # calibration draws one.
            largest = int(np.argmax(data.shard_sizes))
            seed = int(rng.integers(2**63))
            eta0 = client.submit(
                _calibrate_on_shard, data.parts[largest], layout, mask, settings,
                2.0 * settings.c2 / N, settings.c1 / N, seed,
                workers=[data.where[largest]], allow_other_workers=True).result()
            progress.message(f"calibration: using eta0={eta0:.6g}")
    shard_settings = [_shard_settings(trainer, p, n / N, eta0) for n in sizes]
    layout_f, mask_f = client.scatter([layout, mask], broadcast=True, hash=False)
    n_state = layout.size
    weights = LayoutWeights(np.zeros(n_state), np.zeros(mask.size))
    history = []
    started = time.perf_counter()
    n_iter = 0
    for n_iter in range(1, rounds + 1):
        init = client.scatter(weights, broadcast=True, hash=False)
        seeds = rng.integers(2**63, size=len(sizes))
        # Every round a shard goes on from the mixed weights, where the step has
        # decayed as after n_iter - 1 epochs over the whole set (t counts them):
        # restarting at t = 0 kept the first, largest steps every round (CoNLL-2000
        # chunk F1, 2 partitions, seeds 0-2: 93.51, 93.53, 93.69 -> 93.58, 93.75,
        # 93.85; one machine 93.71-93.76, bench/README.md).
        t = float((n_iter - 1) * N)
        parts = [data._on(w, _epoch_on_shard, part, layout_f, mask_f, trainer.name, s,
                          init, int(seed), t)
                 for part, w, s, seed in zip(
                     [q for q, n in zip(data.parts, data.shard_sizes) if n],
                     [w for w, n in zip(data.where, data.shard_sizes) if n],
                     shard_settings, seeds)]
        loss, total = realigned(tree_reduce(client, parts, add_pair).result())
        if not np.isfinite(loss) or not np.all(np.isfinite(total)):
            raise FloatingPointError(
                f"the weights diverged in round {n_iter}; set a smaller eta0 or scale "
                "the feature values down")
        total /= N
        weights = LayoutWeights(total[:n_state], total[n_state:])
        norm2 = sum_of_squares(total)
        objective = loss + (p["c2"] * norm2 if trainer.name == "asgd" else 0.0)
        history.append(objective)
        info = {"loss": loss, "objective": objective, "weight_norm": float(np.sqrt(norm2)),
                "seconds": time.perf_counter() - started}
        if progress.callback(n_iter, info, lambda w=weights: w):
            break
        if trainer.name == "asgd" and _converged(history, settings):
            break
        if trainer.name != "asgd" and loss / N <= settings.epsilon:
            break
    return weights, n_iter
