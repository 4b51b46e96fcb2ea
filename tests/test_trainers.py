"""The trainer contract and registry (fastcrf._train), the parameter table
(fastcrf._params) and the model object (fastcrf._model) behind fastcrf.CRF."""

import ast
import dataclasses
import inspect
import os

import numpy as np
import pytest

from fastcrf import CRF
from fastcrf._layout import StateLayout
from fastcrf._model import CRFModel
from fastcrf._params import COMMON_DEFAULTS, CONSTRAINTS, resolve
from fastcrf._persist import load_model, save_model
from fastcrf._train import TRAINERS, LayoutWeights, Trainer
from fastcrf._train.base import pick_fields
from fastcrf._training import chain_mask, encode_training
from fastcrf.datasets import make_sequences

PARAMS = CRF._get_param_names()


@pytest.fixture(scope="module")
def corpus():
    return make_sequences(60, n_labels=3, n_attributes=40, length=(2, 8), random_state=0)


@pytest.mark.parametrize("name", list(TRAINERS))
def test_every_trainer_returns_weights_in_the_layout(name, corpus):
    X, y = corpus
    p = resolve({**CRF(algorithm=name).get_params(), "max_iterations": 3})
    _, classes, data = encode_training(X, y, 0.0, None)
    K = len(classes)
    layout = StateLayout.for_training(data, False)  # a tail: not every pair is kept
    assert layout.n_dense < layout.n_attributes
    trainer = TRAINERS[name]
    seen = []

    def callback(epoch, info, weights_fn):
        assert {"loss", "objective", "weight_norm", "seconds"} <= set(info)
        seen.append(weights_fn())
        return False

    weights, n_iter = trainer.fit(
        data, trainer.Settings.from_params(p), layout=layout,
        chain_mask=chain_mask(data, True), random_state=np.random.default_rng(0),
        n_jobs=1, callback=callback, log=lambda text: None)
    assert 1 <= n_iter <= 3 and len(seen) == n_iter
    for w in [weights, *seen]:
        assert isinstance(w, LayoutWeights)
        assert w.state.shape == (layout.size,) and w.chain.shape == (K * K + 2 * K,)
    # The weights of the last epoch, as the callback saw them, are the result.
    np.testing.assert_array_equal(seen[-1].state, weights.state)
    np.testing.assert_array_equal(seen[-1].chain, weights.chain)
    assert np.any(weights.state != 0.0)


def test_a_registered_trainer_is_usable_through_the_estimator(corpus, monkeypatch):
    # A new algorithm is one Trainer record in the registry: parameters, defaults and
    # the estimator's fit follow.
    @dataclasses.dataclass
    class Settings:
        c2: float
        max_iterations: int

        @classmethod
        def from_params(cls, params):
            return pick_fields(cls, params)

    calls = {}

    def fit(data, settings, *, layout, chain_mask, random_state, n_jobs=None,
            callback=None, log=None):
        calls["settings"] = settings
        state = np.zeros(layout.size)
        chain = np.zeros(len(chain_mask))
        chain[: data.n_labels ** 2].reshape(data.n_labels, data.n_labels)[:] = np.eye(
            data.n_labels)
        weights = LayoutWeights(state, chain)
        callback(1, {"loss": 1.0, "objective": 2.0, "weight_norm": 0.5, "seconds": 0.0},
                 lambda: weights)
        return weights, 1

    toy = Trainer("toy", Settings, fit, defaults={"c2": 3.0, "max_iterations": 7})
    monkeypatch.setitem(TRAINERS, "toy", toy)
    X, y = corpus
    crf = CRF(algorithm="toy").fit(X, y, X_dev=X[:5], y_dev=y[:5])
    assert calls["settings"] == Settings(c2=3.0, max_iterations=7)
    np.testing.assert_array_equal(crf.transition_weights_, np.eye(len(crf.classes_)))
    assert crf.n_iter_ == 1 and crf.training_log_.algorithm == "toy"
    assert crf.training_log_.iterations[0]["objective"] == 2.0
    assert "dev_accuracy" in crf.training_log_.iterations[0]
    with pytest.raises(ValueError, match="c1 .* only supported by algorithm='asgd' or "
                                         "algorithm='lbfgs', not 'toy'"):
        CRF(algorithm="toy", c1=0.5).fit(X, y)


def test_the_constraint_table_covers_every_parameter():
    assert set(CONSTRAINTS) == set(PARAMS) - {"algorithm"}
    for trainer in TRAINERS.values():
        assert set(trainer.defaults) <= set(PARAMS), trainer.name
        names = {f.name for f in dataclasses.fields(trainer.Settings)}
        assert names & set(PARAMS), trainer.name
    assert set(COMMON_DEFAULTS) <= set(PARAMS)


@pytest.mark.parametrize("name", list(TRAINERS))
def test_resolved_defaults_satisfy_the_table(name):
    p = resolve(CRF(algorithm=name).get_params())
    assert p["algorithm"] == name
    for key, value in TRAINERS[name].defaults.items():
        assert p[key] == value
    # Resolving twice changes nothing: the table accepts what it produced.
    assert resolve(p) == p


def test_resolve_converts_numbers():
    p = resolve({**CRF().get_params(), "c2": np.float32(0.5), "batch_size": np.int64(3)})
    assert type(p["c2"]) is float and type(p["batch_size"]) is int


def test_model_predicts_and_round_trips_without_the_estimator(corpus, tmp_path):
    X, y = corpus
    crf = CRF(max_iterations=2, random_state=0).fit(X, y)
    model = crf._model
    assert isinstance(model, CRFModel)
    assert model.predict(X[:5]) == crf.predict(X[:5])
    assert model.score(X, y) == crf.score(X, y)
    path = tmp_path / "m.npz"
    save_model(model, path, params={"c2": 0.1}, metadata={"k": [1]})
    loaded, params = load_model(path)
    assert params == {"c2": 0.1} and loaded.metadata == {"k": [1]}
    assert loaded.predict_marginals(X[:5]) == model.predict_marginals(X[:5])
    np.testing.assert_array_equal(loaded.state_weights(), model.state_weights())
    assert loaded.n_weights == model.n_weights and loaded.n_nonzero() == crf.n_nonzero_weights_


def test_persistence_and_model_do_not_import_the_estimator():
    # The model layer sits below the estimator: no import back up (not even inside a
    # function, which is how the old cycle was hidden).
    import fastcrf._model
    import fastcrf._persist

    for module in (fastcrf._persist, fastcrf._model):
        tree = ast.parse(inspect.getsource(module))
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        assert not any(m.endswith("_estimator") for m in imported), module.__name__


def test_kernel_calls_stay_in_their_modules():
    # The compiled drivers are called from a few named places, so that changes to their
    # signatures touch those only.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    allowed = {"viterbi": {"_model.py", "_dense.py"},
               "forward_backward": {"_training.py", "_dense.py"},
               "path_scores": {"_dense.py"}, "layout_gradient": {"_training.py"},
               "sgd_epoch": {"sgd.py"}, "balanced_parts": {"sgd.py"},
               "split_parts": {"sgd.py"}, "online_epoch": {"online.py"},
               "tail_pairs": {"_layout.py"},
               "pseudo_gradient": {"owlqn.py"}, "project_step": {"owlqn.py"},
               "correction_pair": {"owlqn.py"}, "keep_descent": {"owlqn.py"},
               "axpy": {"owlqn.py"}, "dot": {"owlqn.py"},
               "objective_gradient_l2": {"lbfgs.py"}, "axpy_dot": {"owlqn.py"},
               "scale_dot": {"owlqn.py"}}
    found = set()
    for folder, _, files in os.walk(os.path.join(root, "fastcrf")):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id in ("_sparse", "_core", "_sgd_engine",
                                                   "_online_engine", "_prep", "_vector")
                        and node.func.attr in allowed):
                    assert name in allowed[node.func.attr], (name, node.func.attr)
                    found.add(node.func.attr)
    assert found == set(allowed)  # the check saw every driver it is about
