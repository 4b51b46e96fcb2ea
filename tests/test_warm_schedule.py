"""Warm start and partial_fit continue SGD's step-size schedule: the model's eta0 and
step counter t (sequences seen) are carried, through the estimator, the model file
and ``fastcrf train --init``."""

import json
import warnings

import numpy as np
import pytest
from helpers import run_cli as run

from fastcrf import CRF
from fastcrf.datasets import make_sequences
from fastcrf.io import write_conll


@pytest.fixture(scope="module")
def data():
    X, y = make_sequences(n_sequences=60, random_state=0)[:2]
    return X, y


def _same_model(a, b):
    assert a.classes_ == b.classes_
    assert np.array_equal(a._model.state, b._model.state)
    assert np.array_equal(a._model.transitions, b._model.transitions)
    assert np.array_equal(a._model.start, b._model.start)
    assert np.array_equal(a._model.end, b._model.end)


# Without averaging (l2sgd never averages), the epochs of one fit are SGD passes that
# share nothing but the weights, the step counter and eta0; a shared Generator gives
# both the same shuffles.
@pytest.mark.parametrize("algorithm, kw", [
    ("l2sgd", {}), ("asgd", {"averaging": False, "learning_rate": "calibrated"})])
@pytest.mark.parametrize("eta0", [0.05, None])
def test_partial_fit_twice_equals_two_epochs(data, algorithm, kw, eta0):
    X, y = data
    whole = CRF(algorithm=algorithm, eta0=eta0, max_iterations=2, delta=0,
                random_state=np.random.default_rng(1), **kw).fit(X, y)
    online = CRF(algorithm=algorithm, eta0=eta0, delta=0,
                 random_state=np.random.default_rng(1), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        online.partial_fit(X, y)
        first = online.training_log_.iterations[-1]
        assert first["t"] == len(X)
        online.partial_fit(X, y)
    second = online.training_log_.iterations[-1]
    assert second["t"] == 2 * len(X) and second["eta0"] == first["eta0"]
    assert [e["t"] for e in whole.training_log_.iterations] == [len(X), 2 * len(X)]
    _same_model(whole, online)


def test_warm_fit_equals_one_longer_fit(data):
    X, y = data
    kw = {"algorithm": "l2sgd", "eta0": 0.05, "delta": 0}
    whole = CRF(max_iterations=4, random_state=np.random.default_rng(3), **kw).fit(X, y)
    warm = CRF(max_iterations=2, warm_start=True, random_state=np.random.default_rng(3),
               **kw)
    warm.fit(X, y).fit(X, y)
    assert warm.training_log_.iterations[-1]["t"] == 4 * len(X)
    _same_model(whole, warm)


def test_the_schedule_goes_on_from_the_stored_t_and_eta0(data, tmp_path):
    """Through a model file: the second call starts at the first one's t and eta0,
    on other data (its own sequence count)."""
    X, y = data
    crf = CRF(algorithm="asgd", learning_rate="calibrated", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crf.partial_fit(X[:40], y[:40])
    eta0 = crf.training_log_.iterations[-1]["eta0"]
    crf.save(tmp_path / "m.npz")
    loaded = CRF.load(tmp_path / "m.npz")
    assert loaded.training_log_.iterations[-1]["t"] == 40
    assert loaded.training_log_.step_rule == "calibrated"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.partial_fit(X[40:], y[40:])
    last = loaded.training_log_.iterations[-1]
    assert last["t"] == 40 + 20 and last["eta0"] == eta0


def test_old_model_files_and_other_algorithms_start_at_zero(data, tmp_path):
    X, y = data
    crf = CRF(algorithm="asgd", learning_rate="calibrated", eta0=0.05, max_iterations=1,
              random_state=0).fit(X, y)
    crf.save(tmp_path / "m.npz")
    # A model file written before t and the step rule were logged: the same without
    # the "t" entries and the "step_rule".
    with np.load(tmp_path / "m.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays["header.json"].tobytes().decode("utf-8"))
    for entry in header["training_log"]["iterations"]:
        del entry["t"]
    del header["training_log"]["step_rule"]
    arrays["header.json"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    old = CRF.load(tmp_path / "old.npz")
    old.set_params(warm_start=True, eta0=None)
    old.fit(X, y)
    last = old.training_log_.iterations[-1]
    assert last["t"] == len(X) and last["eta0"] == 0.05   # eta0 still carried
    # Another algorithm's model: its own calibration and schedule from 0.
    other = CRF(algorithm="l2sgd", warm_start=True, max_iterations=1, random_state=0)
    other._model = crf._model
    other.fit(X, y)
    assert other.training_log_.iterations[-1]["t"] == len(X)


def test_cli_init_continues_the_schedule(capsys, tmp_path):
    _, y, params = make_sequences(120, n_labels=3, scheme="BIO", length=(4, 12),
                                  return_params=True, random_state=0)
    rows = [[(f"w{w}", label) for w, label in zip(ws.tolist(), labels)]
            for ws, labels in zip(params["words"], y)]
    write_conll(tmp_path / "a.txt", rows[:80])
    write_conll(tmp_path / "b.txt", rows[80:])
    (tmp_path / "t").write_text("U00:%x[-1,0]\nU01:%x[0,0]\nB\n")
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    status, _, err = run(capsys, "train", "-t", tmp_path / "t", "-m", first, "-a", "asgd",
                         "-p", "learning_rate=calibrated", "-i", 2, "-q", tmp_path / "a.txt")
    assert status == 0, err
    status, _, err = run(capsys, "train", "--init", first, "-m", second, "-a", "asgd",
                         "-i", 1, "-q", tmp_path / "b.txt")
    assert status == 0, err
    a, b = CRF.load(first).training_log_, CRF.load(second).training_log_
    assert a.iterations[-1]["t"] == 160
    assert b.iterations[-1]["t"] == 160 + 40
    assert b.iterations[-1]["eta0"] == a.iterations[-1]["eta0"]


def test_a_model_file_of_an_adagrad_fit_carries_t_but_not_its_eta0(data, tmp_path):
    """AdaGrad's constant eta0 is no calibrated step size: a warm start from the file
    (no optimizer state, so 'calibrated') calibrates its own and goes on from t."""
    X, y = data
    crf = CRF(algorithm="asgd", max_iterations=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crf.fit(X, y)
    assert crf.training_log_.step_rule == "adagrad_row"
    crf.save(tmp_path / "m.npz")
    loaded = CRF.load(tmp_path / "m.npz")
    assert loaded.training_log_.step_rule == "adagrad_row"
    calibrated = CRF(algorithm="asgd", learning_rate="calibrated", max_iterations=1,
                     random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calibrated.fit(X, y)
        loaded.set_params(warm_start=True)
        loaded.fit(X, y)
    last = loaded.training_log_.iterations[-1]
    assert loaded.training_log_.step_rule == "calibrated"
    assert last["t"] == 2 * len(X)
    assert last["eta0"] == calibrated.training_log_.iterations[-1]["eta0"] != 0.5
