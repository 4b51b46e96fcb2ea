"""fastcrf.dask against a LocalCluster (2 workers, 1 thread each) started here."""

import numpy as np
import pytest

pytest.importorskip("dask", reason="fastcrf.dask needs dask: pip install 'fastcrf[dask]'")
distributed = pytest.importorskip(
    "distributed", reason="fastcrf.dask needs distributed: pip install 'fastcrf[dask]'")

import dask.bag as db  # noqa: E402

import fastcrf.dask as fd  # noqa: E402
from crf_data import sample_hmm  # noqa: E402
from fastcrf import CRF  # noqa: E402
from fastcrf._estimator import NotFittedError  # noqa: E402
from helpers import run_cli  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def corpus():
    X, y, _ = sample_hmm(300, n_labels=4, n_words=40, seed=3)
    # Rare attributes too: a previous-word feature and a per-sequence tag, so that
    # min_freq, the layout's tail and the vocabulary merge have something to do.
    for i, seq in enumerate(X):
        for t, tok in enumerate(seq):
            tok["prev"] = seq[t - 1]["w"] if t else "<s>"
            if t == 0:
                tok[f"seq{i % 97}"] = 1.0
    return X, y


def bags(X, y, n=5):
    return db.from_sequence(X, npartitions=n), db.from_sequence(y, npartitions=n)


def objectives(crf):
    return np.array([e["objective"] for e in crf.training_log_.iterations])


def test_many_label_layout_is_capped_as_on_one_machine(client):
    # 60 labels, one per word: every frequent attribute with all labels would be 30
    # times the seen pairs, so the default layout's cap decides the head.
    from fastcrf._layout import DENSE_MAX_RATIO

    words = np.random.default_rng(1).integers(0, 60, size=(120, 6))
    X = [[{"w": f"w{w}", "s": f"s{w % 7}"} for w in sent] for sent in words]
    y = [[f"L{w}" for w in sent] for sent in words]
    params = dict(algorithm="lbfgs", max_iterations=2)
    local = CRF(**params).fit(X, y)
    dist = fd.fit(CRF(**params), *bags(X, y), client=client)
    a, b = local._model.layout, dist._model.layout
    assert 0 < a.n_dense < a.n_attributes
    seen = len({(k, v, lab) for xs, ys in zip(X, y) for x, lab in zip(xs, ys)
                for k, v in x.items()})
    assert a.n_weights <= DENSE_MAX_RATIO * seen
    assert b.n_dense == a.n_dense
    np.testing.assert_array_equal(b.mask(), a.mask())


@pytest.mark.parametrize("params", [
    dict(c2=0.5, min_freq=2),
    dict(c1=0.2, c2=0.1, all_possible_states=False, all_possible_transitions=False),
])
def test_lbfgs_agrees_with_one_machine(client, corpus, params):
    X, y = corpus
    params = dict(algorithm="lbfgs", max_iterations=15, **params)
    local = CRF(**params).fit(X, y)
    dist = fd.fit(CRF(**params), *bags(X, y), client=client)
    assert dist.vocabulary_.names == local.vocabulary_.names
    assert dist.classes_ == local.classes_
    assert dist._model.layout.n_weights == local._model.layout.n_weights
    a, b = objectives(local), objectives(dist)
    assert len(a) == len(b) == 15
    np.testing.assert_allclose(b, a, rtol=1e-9)
    assert dist.predict(X) == local.predict(X)


def test_lbfgs_does_not_depend_on_the_workers(client, corpus):
    X, y = corpus
    fits = [fd.fit(CRF(algorithm="lbfgs", max_iterations=5), *bags(X, y), client=client)
            for _ in range(2)]
    np.testing.assert_array_equal(fits[0]._model.state, fits[1]._model.state)


@pytest.mark.parametrize("algorithm", ["asgd", "ap", "pa"])
def test_parameter_mixing(client, corpus, algorithm, tmp_path):
    X, y = corpus
    params = dict(algorithm=algorithm, max_iterations=8, random_state=0)
    local = CRF(**params).fit(X, y)
    dist = fd.fit(CRF(**params), *bags(X, y, 3), client=client)
    again = fd.fit(CRF(**params), *bags(X, y, 3), client=client)
    np.testing.assert_array_equal(dist._model.state, again._model.state)
    assert len(dist.training_log_.iterations) == 8
    assert dist.score(X, y) > local.score(X, y) - 0.02
    # An ordinary model: saved and loaded without the cluster.
    path = tmp_path / "m.crf"
    dist.save(path)
    assert CRF.load(path).predict(X) == dist.predict(X)


def test_mixing_rounds_go_on_with_the_step_schedule(client, corpus, monkeypatch):
    # Round r of 'asgd' starts each shard at t = (r - 1) * N sequences seen (the
    # whole set's), so the calibrated step decays over the rounds as over the epochs
    # of one machine, instead of restarting at eta0.
    import fastcrf.dask._fit as dask_fit

    calls = []
    on = dask_fit._Cluster._on

    def spy(self, worker, fn, *args):
        if fn is dask_fit._epoch_on_shard:
            calls.append(args[-1])
        return on(self, worker, fn, *args)

    monkeypatch.setattr(dask_fit._Cluster, "_on", spy)
    X, y = corpus
    fd.fit(CRF(algorithm="asgd", max_iterations=4, eta0=0.05, random_state=0),
           *bags(X, y, 3), client=client)
    N = len(X)
    assert calls == [float(r * N) for r in range(4) for _ in range(3)]


def test_a_shard_epoch_steps_by_its_schedule(corpus):
    # What t does on the shard: a later start takes smaller steps from the same point.
    from fastcrf._layout import StateLayout
    from fastcrf._params import resolve
    from fastcrf._train import TRAINERS
    from fastcrf._train.base import LayoutWeights
    from fastcrf._training import chain_mask, encode_training
    from fastcrf.dask._fit import _epoch_on_shard, _shard_settings

    X, y = corpus
    _, _, data = encode_training(X, y, 0, 1)
    layout = StateLayout.for_training(data, None)
    mask = chain_mask(data, None)
    p = resolve(CRF(algorithm="asgd", learning_rate="calibrated").get_params())
    settings = _shard_settings(TRAINERS["asgd"], p, 1.0, 0.1)
    zero = LayoutWeights(np.zeros(layout.size), np.zeros(mask.size))
    moved = {t: np.abs(_epoch_on_shard(data, layout, mask, "asgd", settings, zero, 0,
                                       t)[1]).sum()
             for t in (0.0, 1000.0 * len(X))}
    assert moved[1000.0 * len(X)] < 0.5 * moved[0.0]


@pytest.mark.parametrize("algorithm", ["lbfgs", "ap"])
def test_the_client_realigns_what_the_tasks_return(client, corpus, monkeypatch, algorithm):
    """A task's result reaches the client as a view into its message, at any byte
    offset: the client copies the misaligned arrays before its own kernels read them
    (the L-BFGS gradient in regularized(), the mixed weights that become the model's).
    A misaligned load is undefined behaviour: the sanitizer build stopped on it."""
    import fastcrf.dask._fit as dask_fit

    arrays = []
    original = dask_fit.regularized

    def regularized(ll, grad, x, c2):
        arrays.extend([grad, x])
        return original(ll, grad, x, c2)

    monkeypatch.setattr(dask_fit, "regularized", regularized)
    X, y = corpus
    dist = fd.fit(CRF(algorithm=algorithm, max_iterations=3, random_state=0),
                  *bags(X, y, 3), client=client)
    arrays += [dist._model.state, dist._model.transitions]
    assert len(arrays) >= 2 + 2 * (algorithm == "lbfgs")
    assert [a.flags.aligned for a in arrays] == [True] * len(arrays)


def test_the_partitions_of_a_dataset_are_aligned_on_their_workers(client, corpus,
                                                                  tmp_path):
    """fit(crf, dataset) scatters blocks of the encoded sequences, which a worker
    receives as views into the message at any byte offset: the kernels on the worker
    read the attribute ids of a memory-mapped Dataset misaligned (the sanitizer build
    stopped on it) until the blocks were realigned there once."""
    from fastcrf import Dataset
    from fastcrf.dask._cluster import workers_of
    from fastcrf.dask._fit import _Cluster

    def aligned_flags(part):
        """``flags.aligned`` of every array in ``part`` (fastcrf objects walked)."""
        flags, todo = [], [part]
        while todo:
            obj = todo.pop()
            if isinstance(obj, np.ndarray):
                flags.append(bool(obj.flags.aligned))
            elif type(obj).__module__.startswith("fastcrf."):
                todo += list(vars(obj).values())
        return flags

    X, y = corpus
    Dataset.from_sequences(X, y).save(tmp_path / "ds")
    cluster = _Cluster.from_dataset(client, workers_of(client),
                                    Dataset.load(tmp_path / "ds"), {"min_freq": 2})
    assert len(cluster.parts) == 2
    for flags in client.gather([client.submit(aligned_flags, p) for p in cluster.parts]):
        assert len(flags) >= 4 and all(flags)
    odd = np.frombuffer(bytearray(17), dtype=np.int64, count=2, offset=1)
    assert aligned_flags(odd) == [False]


@pytest.mark.parametrize("algorithm", ["lbfgs", "asgd"])
def test_fit_on_a_dataset(client, corpus, algorithm, tmp_path):
    """A fastcrf.Dataset (here saved and memory-mapped) trains as the same sequences
    given as lists."""
    from fastcrf import Dataset

    X, y = corpus
    Dataset.from_sequences(X, y).save(tmp_path / "ds")
    dataset = Dataset.load(tmp_path / "ds")
    params = {"algorithm": algorithm, "max_iterations": 6, "min_freq": 2,
              "random_state": 0}
    local = CRF(**params).fit(dataset)
    dist = fd.fit(CRF(**params), dataset, client=client)
    lists = fd.fit(CRF(**params), X, y, client=client)
    assert dist.vocabulary_.names == local.vocabulary_.names == lists.vocabulary_.names
    if algorithm == "lbfgs":
        np.testing.assert_allclose(objectives(dist), objectives(local), rtol=1e-9)
    else:  # two shards of the same sequences: the same mixed weights
        np.testing.assert_array_equal(dist._model.state, lists._model.state)
    with pytest.raises(ValueError, match="y_bag must be None"):
        fd.fit(CRF(**params), dataset, y, client=client)
    with pytest.raises(ValueError, match="y_bag is required"):
        fd.fit(CRF(**params), X, client=client)


def test_predict_in_input_order(client, corpus):
    X, y = corpus
    crf = CRF(algorithm="lbfgs", max_iterations=20).fit(X, y)
    X_bag = db.from_sequence(X, npartitions=7)
    assert fd.predict(crf, X_bag, client=client).compute() == crf.predict(X)
    got = fd.predict_marginals(crf, X_bag, client=client).compute()
    want = crf.predict_marginals(X)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert [list(d) for d in g] == [list(d) for d in w]
        np.testing.assert_allclose([list(d.values()) for d in g],
                                   [list(d.values()) for d in w], rtol=1e-12)


def test_bad_input(client, corpus):
    X, y = corpus
    with pytest.raises(TypeError, match="X_bag"):
        fd.predict(CRF().fit(X[:50], y[:50]), X, client=client)
    with pytest.raises(NotFittedError):
        fd.predict(CRF(), db.from_sequence(X), client=client)
    with pytest.raises(ValueError, match="partitioned alike"):
        fd.fit(CRF(algorithm="lbfgs"), db.from_sequence(X, npartitions=2),
               db.from_sequence(y, npartitions=3), client=client)
    with pytest.raises(ValueError, match="'l2sgd'"):
        fd.fit(CRF(algorithm="l2sgd"), *bags(X, y), client=client)
    with pytest.raises(ValueError, match="constraints are not supported"):
        fd.fit(CRF(algorithm="lbfgs", constraints="BIO"), *bags(X, y), client=client)
    with pytest.raises(TypeError, match="X_bag"):
        fd.fit(CRF(algorithm="lbfgs"), 3, y, client=client)
    bad = [list(s) for s in y]
    bad[120] = bad[120][:-1]
    with pytest.raises(ValueError, match="partition"):
        fd.fit(CRF(algorithm="lbfgs"), *bags(X, bad), client=client)


def test_tag_files_as_the_cli(client, tmp_path):
    from fastcrf.cli import main
    from fastcrf.datasets import make_conll_file

    train = tmp_path / "train.txt"
    make_conll_file(train, 200, random_state=0)
    model = tmp_path / "m.crf"
    template = tmp_path / "template"
    template.write_text("U00:%x[-1,0]\nU01:%x[0,0]\nU02:%x[1,0]\nB\n")
    assert main(["train", str(train), "-m", str(model), "-t", str(template), "-q"]) == 0
    sources, targets = [], []
    for k in range(3):
        src = tmp_path / f"in{k}.txt"
        make_conll_file(src, 30, random_state=k + 1)
        sources.append(src)
        targets.append(tmp_path / f"out{k}.txt")
    crf = CRF.load(model)
    counts = fd.tag_files(crf, sources, targets, client=client)
    assert len(counts) == 3 and min(counts) > 0
    for src, out in zip(sources, targets):
        want = tmp_path / "want.txt"
        assert main(["tag", str(src), "-m", str(model), "-o", str(want), "-q"]) == 0
        assert out.read_text() == want.read_text()
    with pytest.raises(ValueError, match="fastcrf train"):
        fd.tag_files(CRF().fit(*sample_hmm(20)[:2]), sources, targets, client=client)


def _misaligned(values):
    """``values`` as float64 at an odd address, as dask may hand them to a task."""
    raw = bytearray(8 * len(values) + 1)
    a = np.frombuffer(raw, dtype=np.float64, count=len(values), offset=1)
    a[...] = values
    assert not a.flags.aligned
    return a


def test_arrays_a_task_receives_are_realigned():
    from fastcrf.dask._cluster import realigned

    x = _misaligned(np.arange(5.0))
    got = realigned({"x": x, "pair": (1.0, x), "items": [x]})
    assert got["x"].flags.aligned and got["pair"][1].flags.aligned
    assert got["items"][0].flags.aligned and np.array_equal(got["x"], np.arange(5.0))
    aligned = np.arange(3.0)
    assert realigned(aligned) is aligned  # nothing copied when nothing is wrong

    X, y = sample_hmm(40, seed=3)[:2]
    crf = CRF(algorithm="lbfgs", max_iterations=5).fit(X, y)
    model = crf._fitted_model()
    expected = model.predict(X, n_jobs=1)
    model.transitions = _misaligned(model.transitions.ravel()).reshape(
        model.transitions.shape)
    model.state = _misaligned(model.state)
    model = realigned(model)
    assert model.transitions.flags.aligned and model.state.flags.aligned
    assert model.predict(X, n_jobs=1) == expected


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """A model written by 'fastcrf train' and six column files to tag (two with the gold
    column, four without)."""
    from fastcrf.cli import main
    from fastcrf.datasets import make_conll_file
    from fastcrf.io import read_conll, write_conll

    folder = tmp_path_factory.mktemp("tagger")
    train = folder / "train.txt"
    make_conll_file(train, 200, random_state=0)
    model = folder / "m.crf"
    template = folder / "template"
    template.write_text("U00:%x[-1,0]\nU01:%x[0,0]\nU02:%x[1,0]\nB\n")
    assert main(["train", str(train), "-m", str(model), "-t", str(template), "-q"]) == 0
    inputs = folder / "in"
    inputs.mkdir()
    sources = []
    for k in range(6):
        src = inputs / f"f{k}.txt"
        make_conll_file(src, 20 + 5 * k, random_state=k + 1)
        if k >= 2:  # tokens only
            write_conll(src, [[row[:1] for row in s] for s in read_conll(src)])
        sources.append(src)
    return model, template, sources


def _tagged_one_by_one(capsys, tmp_path, model, sources, *flags):
    out = []
    for src in sources:
        want = tmp_path / "want.txt"
        assert run_cli(capsys, "tag", src, "-m", model, "-o", want, "-q", *flags)[0] == 0
        out.append(want.read_text())
    return out


@pytest.mark.parametrize("flags", [(), ("-l",), ("-i",)])
def test_cli_tag_on_the_cluster(client, tagger, tmp_path, capsys, flags):
    model, _, sources = tagger
    want = _tagged_one_by_one(capsys, tmp_path, model, sources, *flags)
    out = tmp_path / "out"
    status, stdout, err = run_cli(capsys, "tag", *sources, "-m", model, *flags,
                                  "--scheduler", client.scheduler.address, "-o", out)
    assert status == 0, err
    assert stdout == ""
    assert "tagged 6 files" in err and "2 workers" in err
    assert [(out / src.name).read_text() for src in sources] == want


def test_cli_tag_on_the_cluster_with_a_template(client, tagger, tmp_path, capsys):
    """A model that holds no template (saved by CRF.save): -t gives it."""
    model, template, sources = tagger
    bare = tmp_path / "bare.crf"
    CRF.load(model).save(bare)
    sources = sources[2:]  # token columns only: with -t every column is a token column
    want = _tagged_one_by_one(capsys, tmp_path, bare, sources, "-t", template)
    out = tmp_path / "out"
    status, _, err = run_cli(capsys, "tag", *sources, "-m", bare, "-t", template, "-q",
                             "--scheduler", client.scheduler.address, "-o", out)
    assert status == 0, err
    assert [(out / src.name).read_text() for src in sources] == want
    status, _, err = run_cli(capsys, "tag", *sources, "-m", bare, "--scheduler",
                             client.scheduler.address, "-o", out)
    assert status == 1 and "-t" in err


def test_cli_tag_on_the_cluster_bad_input(client, tagger, tmp_path, capsys):
    model, _, sources = tagger
    address = client.scheduler.address
    cases = [
        ((*sources[:2], "-m", model), "--scheduler ADDRESS"),
        ((*sources[:2], "-m", model, "--scheduler", address), "-o DIR"),
        ((sources[0], "-", "-m", model, "--scheduler", address, "-o", tmp_path), "stdin"),
        ((sources[0], "-m", model, "--scheduler", address, "-o", sources[1]), "a folder"),
        ((sources[0], "-m", model, "--scheduler", address, "-o", sources[0].parent),
         "overwritten"),
    ]
    twin = tmp_path / "other" / sources[0].name
    twin.parent.mkdir()
    twin.write_text(sources[0].read_text())
    cases.append(((sources[0], twin, "-m", model, "--scheduler", address, "-o",
                   tmp_path / "o"), "both be written"))
    for argv, message in cases:
        status, _, err = run_cli(capsys, "tag", *argv)
        assert status == 1 and message in err, (argv, err)
    # A file the model cannot tag fails the command, naming the file.
    bad = tmp_path / "bad.txt"
    bad.write_text("a b c d\n\n")
    status, _, err = run_cli(capsys, "tag", sources[0], bad, "-m", model, "--scheduler",
                             address, "-o", tmp_path / "o2")
    assert status == 1 and "bad.txt" in err and "fields" in err


def test_the_model_goes_once_to_each_worker(client, corpus, tagger, tmp_path):
    """However many tasks (12 per call), a worker unpickles the model once or, when
    the scheduler moves a copy between workers under load, twice: never per task."""

    def count_loads():
        from fastcrf._model import CRFModel

        def setstate(self, state):
            CRFModel.loads += 1
            self.__dict__.update(state)

        CRFModel.loads = 0
        CRFModel.__setstate__ = setstate

    def loads():
        from fastcrf._model import CRFModel

        n = CRFModel.loads
        del CRFModel.loads, CRFModel.__setstate__
        return n

    X, y = corpus
    crf = CRF(algorithm="lbfgs", max_iterations=5).fit(X, y)
    model, _, sources = tagger
    jobs = [
        lambda: fd.predict(crf, db.from_sequence(X, npartitions=12), client=client)
        .compute(),
        lambda: fd.predict_marginals(crf, db.from_sequence(X[:60], npartitions=12),
                                     client=client).compute(),
        lambda: fd.tag_files(CRF.load(model), sources * 2,
                             [tmp_path / f"o{k}.txt" for k in range(12)], client=client),
    ]
    for job in jobs:
        client.run(count_loads)
        try:
            job()
        finally:
            counts = client.run(loads)
        # Seen on a loaded machine: [1, 2] once in three runs (a worker received the
        # model again from the other one); per task would be ~6 each.
        assert len(counts) == 2 and all(1 <= n <= 2 for n in counts.values()), counts


def test_tag_files_bad_input(client, tagger, tmp_path):
    model, _, sources = tagger
    crf = CRF.load(model)
    with pytest.raises(TypeError, match="sources"):
        fd.tag_files(crf, str(sources[0]), [tmp_path / "o"], client=client)
    with pytest.raises(TypeError, match=r"targets\[0\]"):
        fd.tag_files(crf, sources[:1], [3], client=client)
    with pytest.raises(ValueError, match="same length"):
        fd.tag_files(crf, sources[:2], [tmp_path / "o"], client=client)
    with pytest.raises(ValueError, match="twice"):
        fd.tag_files(crf, sources[:2], [tmp_path / "o"] * 2, client=client)
    with pytest.raises(ValueError, match="also a source"):
        fd.tag_files(crf, sources[:1], sources[:1], client=client)
    with pytest.raises(TypeError, match="template"):
        fd.tag_files(crf, sources[:1], [tmp_path / "o"], template="U00:%x[0,0]",
                     client=client)
    with pytest.raises(NotFittedError):
        fd.tag_files(CRF(), sources[:1], [tmp_path / "o"], client=client)
    # A bag of paths, and an empty file (an empty output).
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    counts = fd.tag_files(crf, db.from_sequence([str(sources[0]), str(empty)]),
                          [tmp_path / "a.txt", tmp_path / "b.txt"], client=client)
    assert counts[0] > 0 and counts[1] == 0
    assert (tmp_path / "b.txt").read_text() == ""


def test_fit_writes_model_filename_like_crf_fit(client, corpus, tmp_path):
    # A model loaded from model_filename, then trained on the cluster: the file is
    # rewritten and size_ is the new file's, as after CRF.fit.
    X, y = corpus[:2]
    path = tmp_path / "m.npz"
    CRF(algorithm="lbfgs", max_iterations=2).fit(X[:20], y[:20]).save(path)
    crf = CRF(algorithm="lbfgs", max_iterations=5, model_filename=str(path))
    assert crf.size_ == path.stat().st_size
    fd.fit(crf, *bags(X, y), client=client)
    assert crf.size_ == path.stat().st_size
    assert CRF.load(path).predict(X[:5]) == crf.predict(X[:5])
