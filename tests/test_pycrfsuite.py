"""fastcrf.pycrfsuite against python-crfsuite: the same scripts run with each module
(``import pycrfsuite`` / ``from fastcrf import pycrfsuite``) and their outputs
compared: values, the types returned, and the exceptions raised on misuse.
"""

import io
import contextlib

import numpy as np
import pytest

from fastcrf import pycrfsuite as fast

from crf_data import sample_hmm

pycrfsuite = pytest.importorskip("pycrfsuite")
MODULES = pytest.mark.parametrize("mod", [pycrfsuite, fast],
                                  ids=["python-crfsuite", "fastcrf"])
ALGORITHMS = ["lbfgs", "l2sgd", "ap", "pa", "arow"]


def _outcome(script, *args):
    """What ``script(*args)`` returns, or the type of what it raises."""
    try:
        return script(*args)
    except Exception as exc:  # the exception type is the outcome compared
        return type(exc)


def _both(script, *args):
    return _outcome(script, pycrfsuite, *args), _outcome(script, fast, *args)


def _typed(value):
    """``value`` with the type of each part, so that 1 and 1.0 or True differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_typed(v) for v in value)
    return (type(value).__name__, value)


@pytest.fixture(scope="module")
def corpus():
    X, y, _ = sample_hmm(120, n_labels=4, n_words=16, seed=3)
    Xt, yt, _ = sample_hmm(40, n_labels=4, n_words=16, seed=4)
    return X, y, Xt, yt


def _trainer(mod, X, y, algorithm="lbfgs", params=None, groups=None, cls=None):
    trainer = (cls or mod.Trainer)(verbose=False)
    for i, (xs, ys) in enumerate(zip(X, y)):
        trainer.append(xs, ys, group=0 if groups is None else groups[i])
    trainer.select(algorithm)
    trainer.set_params(params or ({"c2": 0.1, "max_iterations": 60}
                                  if algorithm == "lbfgs" else {"max_iterations": 5}))
    return trainer


@pytest.fixture(scope="module")
def models(corpus, tmp_path_factory):
    """``{module: model path}`` of the same training run in each module."""
    X, y, _, _ = corpus
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for mod in (pycrfsuite, fast):
        path = folder / f"{mod.__name__}.crfsuite"
        _trainer(mod, X, y).train(str(path))
        paths[mod] = str(path)
    return paths


# Parameters ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS + ["averaged-perceptron",
                                                    "passive-aggressive", "LBFGS"])
def test_params_defaults_and_types(algorithm):
    def script(mod):
        trainer = mod.Trainer(verbose=False)
        trainer.select(algorithm)
        return trainer.params(), _typed(trainer.get_params())

    ref, ours = _both(script)
    assert ref == ours


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_help_of_every_parameter_is_a_str(algorithm):
    for mod in (pycrfsuite, fast):
        trainer = mod.Trainer(algorithm=algorithm, verbose=False)
        for name in trainer.params():
            assert isinstance(trainer.help(name), str) and trainer.help(name)


@pytest.mark.parametrize("name, value", [
    ("c2", 0.5), ("c2", "0.25"), ("c1", 1), ("max_iterations", "12"),
    ("max_iterations", 3.7), ("feature.possible_states", True),
    ("feature.possible_transitions", 1), ("feature.minfreq", "2"),
    ("linesearch", "Backtracking"), ("num_memories", 3), ("epsilon", 1e-3)])
def test_set_then_get(name, value):
    def script(mod):
        trainer = mod.Trainer(verbose=False)
        trainer.set(name, value)
        trainer.set_params({"period": 4})
        return _typed((trainer.get(name), trainer.get("period")))

    ref, ours = _both(script)
    assert ref == ours


def test_select_resets_the_parameters():
    def script(mod):
        trainer = mod.Trainer(verbose=False)
        trainer.set("c2", 3)
        trainer.select("pa")
        trainer.set("c", 0.5)
        trainer.select("lbfgs")
        return _typed((trainer.get("c2"), trainer.params()))

    ref, ours = _both(script)
    assert ref == ours


def test_constructor_algorithm_and_params():
    def script(mod):
        trainer = mod.Trainer("pa", {"c": 0.25, "type": 2}, verbose=False)
        return _typed(trainer.get_params())

    ref, ours = _both(script)
    assert ref == ours


@pytest.mark.parametrize("call", [
    lambda t: t.get("nope"), lambda t: t.set("nope", 1), lambda t: t.help("nope"),
    lambda t: t.select("nope"), lambda t: t.select("lbfgs", type="crf2d"),
    lambda t: t.set("c", 1),                                # a 'pa' parameter under lbfgs
    lambda t: t.append([{"a": 1}], ["x", "y"]),             # lengths differ
    lambda t: t.append([{"a": 1}], [1]),                    # a label that is no str
    lambda t: t.append([{"a": 1}], ["x"], group="g"),       # a group that is no int
], ids=["get", "set", "help", "select", "select-type", "other-algorithm", "lengths",
        "label-type", "group-type"])
def test_trainer_misuse_raises_the_same_type(call):
    ref, ours = _both(lambda mod: call(mod.Trainer(verbose=False)))
    assert isinstance(ref, type) and ref is ours


# Training --------------------------------------------------------------------


def _info(path, mod=fast):
    tagger = mod.Tagger()
    tagger.open(path)
    return tagger.info()


@pytest.mark.parametrize("states", [False, True])
@pytest.mark.parametrize("transitions", [False, True])
@pytest.mark.parametrize("minfreq", [0, 1.5, 2, 3])
def test_feature_generation_selects_the_same_features(tmp_path, states, transitions,
                                                      minfreq):
    """feature.minfreq / possible_states / possible_transitions: the same state and
    transition features in the model (python-crfsuite's info() of both files)."""
    X = [[{"a": 1, "b": 1}, {"a": 1, "c": 0.5}, {"c": 0.5, "d": 2}],
         [{"a": 1}, {"c": 1}, {"b": -1}], [{"d": 1}, {"a": 1}]]
    y = [["x", "y", "x"], ["x", "y", "y"], ["z", "x"]]
    params = {"feature.minfreq": minfreq, "feature.possible_states": states,
              "feature.possible_transitions": transitions, "c2": 0.01,
              "max_iterations": 30}

    def script(mod):
        path = str(tmp_path / f"{mod.__name__}.crfsuite")
        _trainer(mod, X, y, params=params).train(path)
        info = _info(path, pycrfsuite)
        return sorted(info.state_features), sorted(info.transitions), info.labels

    ref, ours = _both(script)
    assert ref == ours


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_tags_as_well(corpus, tmp_path, algorithm):
    """Each algorithm trained by both, on the same data: the same labels, parameters
    in the model's log, and (for L-BFGS, a convex problem solved to the same optimum)
    the same predictions and marginals."""
    X, y, Xt, yt = corpus

    def script(mod):
        path = str(tmp_path / f"{mod.__name__}.crfsuite")
        trainer = _trainer(mod, X, y, algorithm)
        trainer.train(path)
        tagger = mod.Tagger()
        tagger.open(path)
        pred = [tagger.tag(xs) for xs in Xt]
        tagger.set(Xt[0])
        marg = [tagger.marginal(k, 0) for k in sorted(tagger.labels())]
        acc = np.mean([a == b for p, g in zip(pred, yt) for a, b in zip(p, g)])
        return sorted(tagger.labels()), pred, marg, acc, len(trainer.logparser.iterations)

    ref, ours = _both(script)
    assert ref[0] == ours[0]
    assert ours[3] >= ref[3] - 0.03
    if algorithm == "lbfgs":
        assert ref[1] == ours[1]
        np.testing.assert_allclose(ref[2], ours[2], atol=1e-4)
    if algorithm in ("ap", "pa"):
        assert ref[4] == ours[4] == 5


def test_holdout_and_logparser(corpus, tmp_path):
    """train(path, holdout=g): the holdout group is evaluated after every iteration;
    on_iteration receives each iteration's info, logparser keeps them."""
    X, y, _, _ = corpus
    groups = [i % 4 == 0 for i in range(len(X))]     # bools, as scripts pass them

    def script(mod):
        seen = []

        class Recorder(mod.Trainer):
            def on_iteration(self, log, info):
                seen.append((log.startswith("***** Iteration #"), dict(info)))

        trainer = _trainer(mod, X, y, "lbfgs", {"c2": 0.1, "max_iterations": 8},
                           groups, cls=Recorder)
        trainer.verbose = True
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.train(str(tmp_path / "m.crfsuite"), holdout=1)
        parser = trainer.logparser
        last = parser.last_iteration
        return seen, parser.iterations, last, parser.featgen_num_features

    ref, ours = _both(script)
    seen_ref, its_ref, last_ref, nfeat_ref = ref
    seen_ours, its_ours, last_ours, nfeat_ours = ours
    assert len(seen_ref) == len(seen_ours) == len(its_ours) == 8
    assert all(flag for flag, _ in seen_ours)
    assert nfeat_ref == nfeat_ours
    # fastcrf's L-BFGS logs no line-search trials or error norm.
    common = set(last_ref) - {"error_norm", "linesearch_trials", "linesearch_step"}
    assert common <= set(last_ours)
    for key in ("num", "active_features", "item_accuracy", "instance_accuracy"):
        assert type(last_ref[key]) is type(last_ours[key])
    assert last_ref["num"] == last_ours["num"] == 8
    assert last_ours["loss"] == pytest.approx(last_ref["loss"], rel=1e-3)
    assert list(last_ref["scores"]) == list(last_ours["scores"])   # label order
    assert type(next(iter(last_ours["scores"].values()))).__name__ == "LabelScore"
    assert last_ours["item_accuracy"].denominator == last_ref["item_accuracy"].denominator
    assert abs(last_ours["item_accuracy_float"] - last_ref["item_accuracy_float"]) < 0.03


def test_train_without_a_model_path_and_clear(corpus):
    X, y, _, _ = corpus

    def script(mod):
        trainer = _trainer(mod, X[:10], y[:10])
        trainer.train("")
        trainer.clear()
        trainer.append(X[0], y[0])
        trainer.train("")
        return "ok"

    assert _both(script) == ("ok", "ok")


def test_subclasses_that_skip_init_still_train_and_tag(corpus, tmp_path):
    # python-crfsuite's Trainer and Tagger are ready before __init__ (Cython's
    # __cinit__): a subclass may replace __init__ without calling the base one.
    X, y, _, _ = corpus

    def script(mod):
        class Recording(mod.Trainer):
            def __init__(self):
                self.lines = []

            def message(self, message):
                self.lines.append(message)

        class Bare(mod.Tagger):
            def __init__(self):
                pass

        trainer = Recording()
        trainer.select("lbfgs")
        trainer.set("max_iterations", 5)
        for xs, ys in zip(X[:20], y[:20]):
            trainer.append(xs, ys)
        path = str(tmp_path / f"{mod.__name__}.crfsuite")
        trainer.train(path)
        tagger = Bare()
        tagger.open(path)
        return "type: CRF1d\n" in trainer.lines, sorted(tagger.labels()), len(tagger.tag(X[0]))

    theirs, ours = _both(script)
    assert ours == theirs and ours[0] is True


def test_training_on_no_instance_writes_a_model_as_crfsuite(tmp_path):
    # CRFsuite trains on nothing without complaint: the model has the labels appended
    # (none, or only those of the holdout group) and no weight.
    def script(mod):
        nothing = tmp_path / f"{mod.__name__}-nothing.crfsuite"
        mod.Trainer(verbose=False).train(str(nothing))
        trainer = mod.Trainer(verbose=False)
        trainer.select("l2sgd")
        trainer.append([{"a": 1.0}, {"b": 1.0}], ["P", "Q"], group=1)
        held = str(tmp_path / f"{mod.__name__}-held.crfsuite")
        trainer.train(held, holdout=1)
        tagger = mod.Tagger()
        tagger.open(held)
        info = tagger.info()
        return (nothing.read_bytes()[:4], tagger.labels(), info.state_features,
                info.transitions)

    theirs, ours = _both(script)
    assert ours == theirs == (b"lCRF", ["P", "Q"], {}, {})


def test_python_crfsuites_module_paths_under_an_alias(tmp_path):
    # Code that aliases the module (sys.modules["pycrfsuite"] = fastcrf.pycrfsuite)
    # and imports the log parser from where python-crfsuite keeps it.  In a child
    # process: the alias must not leak into this one, which imports python-crfsuite.
    import subprocess
    import sys

    code = ("import sys\n"
            "import fastcrf.pycrfsuite as ours\n"
            "sys.modules['pycrfsuite'] = ours\n"
            "from pycrfsuite._logparser import TrainLogParser\n"
            "assert TrainLogParser is ours.TrainLogParser\n"
            "print('same class')\n")
    # From another folder: `python -c` puts the current one first on sys.path, and in
    # the source tree of a non-editable install that is the uncompiled package.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "same class\n"


# Tagging ---------------------------------------------------------------------


def _opened(mod, path):
    tagger = mod.Tagger()
    tagger.open(path)
    return tagger


@pytest.mark.parametrize("model_of", ["python-crfsuite", "fastcrf"])
def test_tagger_outputs(corpus, models, model_of):
    """Both taggers on one model file: labels, types, marginals and probabilities."""
    _, _, Xt, yt = corpus
    path = models[pycrfsuite if model_of == "python-crfsuite" else fast]

    def script(mod):
        tagger = _opened(mod, path)
        out = []
        for xs, ys in zip(Xt, yt):
            pred = tagger.tag(xs)
            out.append((_typed(pred), tagger.probability(ys), tagger.probability(pred),
                        [[tagger.marginal(k, t) for k in tagger.labels()]
                         for t in range(len(xs))]))
        again = tagger.tag()                     # the current sequence
        tagger.set(Xt[0])
        return _typed(tagger.labels()), out, again, tagger.tag(), \
            type(tagger.marginal(tagger.labels()[0], 0))

    ref, ours = _both(script)
    assert ref[0] == ours[0] and ref[2:] == ours[2:]
    for a, b in zip(ref[1], ours[1]):
        assert a[0] == b[0]
        assert b[1] == pytest.approx(a[1], rel=1e-6, abs=1e-12)
        assert b[2] == pytest.approx(a[2], rel=1e-6, abs=1e-12)
        np.testing.assert_allclose(a[3], b[3], rtol=0, atol=1e-6)


@pytest.mark.parametrize("form", ["dicts", "ItemSequence", "names", "bools",
                                  "unknown", "empty"])
def test_tag_item_forms(corpus, models, form):
    _, _, Xt, _ = corpus
    path = models[pycrfsuite]

    def script(mod):
        tagger = _opened(mod, path)
        xs = Xt[1]
        data = {"dicts": xs, "ItemSequence": mod.ItemSequence(xs),
                "names": [list(x) for x in xs],
                "bools": [{k: bool(v) if v in (0, 1) else v for k, v in x.items()}
                          for x in xs],
                "unknown": [{"never": 1.0}] * 3, "empty": []}[form]
        return tagger.tag(data)

    ref, ours = _both(script)
    assert ref == ours


def test_info_and_dump(models, tmp_path):
    path = models[pycrfsuite]

    def script(mod):
        tagger = _opened(mod, path)
        info = tagger.info()
        dump_path = tmp_path / f"{mod.__name__}.txt"
        tagger.dump(str(dump_path))
        return (type(info).__name__, info.header, info.labels, info.attributes,
                {k: round(v, 9) for k, v in info.transitions.items()},
                {k: round(v, 9) for k, v in info.state_features.items()},
                dump_path.read_text())

    ref, ours = _both(script)
    assert ref == ours


def test_open_inmemory_and_context_manager(corpus, models):
    _, _, Xt, _ = corpus
    data = open(models[pycrfsuite], "rb").read()

    def script(mod):
        tagger = mod.Tagger()
        opened = tagger.open_inmemory(data)
        with opened as same:
            inside = (same is tagger, tagger.tag(Xt[0]))
        closed = _outcome(lambda: tagger.labels())
        with mod.Tagger().open(models[pycrfsuite]) as other:
            from_file = other.tag(Xt[0])
        return type(opened).__name__, inside, closed, from_file

    ref, ours = _both(script)
    assert ref == ours


@pytest.mark.parametrize("call", [
    lambda t, p: t.labels(), lambda t, p: t.tag([{"a": 1}]), lambda t, p: t.info(),
    lambda t, p: t.dump(p), lambda t, p: t.set([{"a": 1}]),
    lambda t, p: t.probability(["x"]), lambda t, p: t.marginal("x", 0),
], ids=["labels", "tag", "info", "dump", "set", "probability", "marginal"])
def test_closed_tagger_raises_the_same_type(tmp_path, call):
    ref, ours = _both(lambda mod: call(mod.Tagger(), str(tmp_path / "d.txt")))
    assert isinstance(ref, type) and ref is ours


@pytest.mark.parametrize("call", [
    lambda t, x, y: t.probability(y + [y[0]]),           # lengths differ
    lambda t, x, y: t.probability(["nope"] * len(y)),     # unknown label
    lambda t, x, y: t.marginal("nope", 0),
    lambda t, x, y: t.marginal(y[0], 100),                # position out of range
    lambda t, x, y: t.marginal(y[0], -1),
], ids=["prob-length", "prob-label", "marg-label", "marg-pos", "marg-negative"])
def test_tagger_misuse_raises_the_same_type(corpus, models, call):
    _, _, Xt, yt = corpus

    def script(mod):
        tagger = _opened(mod, models[pycrfsuite])
        tagger.set(Xt[0])
        return call(tagger, Xt[0], yt[0])

    ref, ours = _both(script)
    assert isinstance(ref, type) and ref is ours


def test_no_current_sequence(models):
    def script(mod):
        tagger = _opened(mod, models[pycrfsuite])
        return _typed((tagger.tag(), tagger.probability(["L0"]), tagger.marginal("L0", 0)))

    ref, ours = _both(script)
    assert ref == ours


@pytest.mark.parametrize("content", [b"", b"foo", b"lCRFfoo", b"PK\x03\x04junk"])
@MODULES
def test_open_invalid_files(mod, tmp_path, content):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        mod.Tagger().open(str(path))
    with pytest.raises(ValueError):
        mod.Tagger().open_inmemory(content)


@MODULES
def test_open_missing_file_and_wrong_types(mod, tmp_path):
    with pytest.raises(IOError):
        mod.Tagger().open(str(tmp_path / "missing"))
    with pytest.raises(TypeError):
        mod.Tagger().open_inmemory("lCRF")


def test_item_sequence():
    def script(mod):
        seq = mod.ItemSequence([["a", "b"], {"c": 2, "d": "e", "f": {"g": 1, "h": ["i"]},
                                            "j": True, "k": {"l"}}])
        return _typed(seq.items()), len(seq), repr(seq)

    ref, ours = _both(script)
    assert ref == ours
