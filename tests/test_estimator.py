"""fastcrf.CRF through its public API: learning, the sklearn-crfsuite interface,
validation, persistence and scikit-learn interoperability."""

import dataclasses
import io
import os
import pickle
import zipfile
from contextlib import redirect_stdout

import numpy as np
import pytest
from crf_data import hmm_viterbi_accuracy, sample_hmm
from helpers import fitted_gradient

import fastcrf
from fastcrf import CRF, NotFittedError
from fastcrf._train import TRAINERS

ALGORITHMS = ["asgd", "lbfgs", "l2sgd", "ap", "pa", "arow"]


@pytest.fixture(scope="module")
def hmm():
    X, y, params = sample_hmm(300, seed=1)
    X_test, y_test, _ = sample_hmm(300, seed=2)
    return X, y, X_test, y_test, params


@pytest.fixture(scope="module")
def fitted(hmm):
    X, y, *_ = hmm
    return CRF(random_state=0).fit(X, y)


# --------------------------------------------------------------------------- #
# Learning                                                                      #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_recovers_the_hmm(hmm, algorithm):
    X, y, X_test, y_test, params = hmm
    ceiling = hmm_viterbi_accuracy(X_test, y_test, params)
    crf = CRF(algorithm=algorithm, random_state=0, max_iterations=50).fit(X, y)
    assert crf.score(X_test, y_test) >= ceiling - 0.03
    if algorithm == "arow":
        # AROW shrinks the variance of the transition weights on every sequence (they
        # are on every path), so they stay near 0 and their order is noise (CRFsuite's
        # too); the emissions carry the accuracy.
        return
    # The chain's structure: every label is most often followed by the next one.
    K = len(crf.classes_)
    nxt = [crf.classes_.index(f"L{(int(c[1:]) + 1) % K}") for c in crf.classes_]
    assert [int(np.argmax(row)) for row in crf.transition_weights_] == nxt


def test_default_is_averaged_sgd_with_the_per_row_adagrad_step(hmm):
    X, y, *_ = hmm
    buf = io.StringIO()
    with redirect_stdout(buf):
        crf = CRF(verbose=True, random_state=0, delta=0.0).fit(X, y)
    out = buf.getvalue()
    # learning_rate=None: 'adagrad_row' at eta 0.5, which needs no calibration pass.
    assert "asgd" in out and "calibration" not in out
    same = CRF(learning_rate="adagrad_row", eta0=0.5, random_state=0, delta=0.0).fit(X, y)
    np.testing.assert_array_equal(crf.state_weights_, same.state_weights_)
    assert crf.training_log_.last_iteration["eta0"] == 0.5
    epochs = [line for line in out.splitlines() if line.startswith("epoch")]
    # 300 sequences make 75 steps an epoch: 27 epochs reach the 2000 steps asgd needs.
    assert len(epochs) == crf.n_iter_ == 27
    assert "loss=" in epochs[0] and "objective=" in epochs[0] and "|w|=" in epochs[0]
    losses = [entry["loss"] for entry in crf.training_log_.iterations]
    assert losses[-1] < losses[0]


def test_lbfgs_reaches_the_optimum_of_the_objective(hmm):
    X, y, *_ = hmm
    crf = CRF(algorithm="lbfgs", c2=1.0, epsilon=1e-7, delta=0.0, max_iterations=500).fit(X, y)
    # At the optimum the gradient of the regularised objective vanishes.
    w, g = fitted_gradient(crf, X, y)
    grad = np.concatenate((g.state.ravel(), g.chain)) - 2 * 1.0 * np.concatenate(
        (w.state.ravel(), w.chain))
    assert np.abs(grad).max() < 1e-3 * max(1.0, np.abs(w.state).max())


def test_asgd_and_lbfgs_agree_on_the_objective(hmm):
    X, y, *_ = hmm
    a = CRF(algorithm="asgd", c2=1.0, max_iterations=60, random_state=0,
            learning_rate="calibrated").fit(X, y)
    b = CRF(algorithm="lbfgs", c2=1.0).fit(X, y)
    obj_a = a.training_log_.last_iteration["objective"]
    obj_b = b.training_log_.last_iteration["objective"]
    assert obj_a == pytest.approx(obj_b, rel=0.02)
    # The AdaGrad default's averaged iterate ends further from the optimum (its step
    # decays as 1 / sqrt(t), the calibrated one faster), but not far.
    row = CRF(algorithm="asgd", c2=1.0, max_iterations=60, random_state=0).fit(X, y)
    obj_row = row.training_log_.last_iteration["objective"]
    assert obj_b <= obj_row <= 1.04 * obj_b


def test_l1_gives_sparse_weights(hmm):
    X, y, *_ = hmm
    dense = CRF(algorithm="lbfgs", c1=0.0, c2=0.01).fit(X, y)
    sparse = CRF(algorithm="lbfgs", c1=2.0, c2=0.01).fit(X, y)
    assert sparse.n_nonzero_weights_ < 0.7 * dense.n_nonzero_weights_
    assert "active_features" in sparse.training_log_.last_iteration


def test_results_do_not_depend_on_n_jobs(hmm):
    X, y, X_test, *_ = hmm
    for algorithm in ("asgd", "lbfgs"):
        one = CRF(algorithm=algorithm, n_jobs=1, random_state=3, max_iterations=5).fit(X, y)
        two = CRF(algorithm=algorithm, n_jobs=2, random_state=3, max_iterations=5).fit(X, y)
        np.testing.assert_array_equal(one.state_weights_, two.state_weights_)
        np.testing.assert_array_equal(one.transition_weights_, two.transition_weights_)
        assert one.predict_marginals(X_test) == two.predict_marginals(X_test)


def test_random_state_makes_fits_reproducible(hmm):
    X, y, *_ = hmm
    a = CRF(random_state=7, max_iterations=3).fit(X, y)
    b = CRF(random_state=np.random.default_rng(7), max_iterations=3).fit(X, y)
    c = CRF(random_state=8, max_iterations=3).fit(X, y)
    np.testing.assert_array_equal(a.state_weights_, b.state_weights_)
    assert not np.array_equal(a.state_weights_, c.state_weights_)


def test_perceptron_separates_separable_data():
    X = [[["w=a"], ["w=b"]], [["w=b"], ["w=a"]], [["w=c"]]]
    y = [["A", "B"], ["B", "A"], ["C"]]
    for algorithm in ("ap", "pa"):
        crf = CRF(algorithm=algorithm, random_state=0).fit(X, y)
        assert crf.predict(X) == y


@pytest.mark.parametrize("pa_type", [0, 1, 2])
def test_passive_aggressive_types(hmm, pa_type):
    X, y, X_test, y_test, _ = hmm
    crf = CRF(algorithm="pa", pa_type=pa_type, c=0.5, max_iterations=10, random_state=0)
    assert crf.fit(X, y).score(X_test, y_test) > 0.85


def test_dev_set_accuracy_is_logged(hmm):
    X, y, X_test, y_test, _ = hmm
    crf = CRF(random_state=0, max_iterations=3).fit(X, y, X_dev=X_test, y_dev=y_test)
    accs = [it["dev_accuracy"] for it in crf.training_log_.iterations]
    assert len(accs) == 3
    assert accs[-1] == pytest.approx(crf.score(X_test, y_test))


# --------------------------------------------------------------------------- #
# The sklearn-crfsuite interface                                               #
# --------------------------------------------------------------------------- #


def test_prediction_types(fitted, hmm):
    _, _, X_test, y_test, _ = hmm
    pred = fitted.predict(X_test[:5])
    assert isinstance(pred, list) and all(isinstance(p, list) for p in pred)
    assert all(isinstance(label, str) for p in pred for label in p)
    assert [len(p) for p in pred] == [len(s) for s in X_test[:5]]
    assert fitted.predict_single(X_test[0]) == pred[0]
    marg = fitted.predict_marginals(X_test[:5])
    assert all(set(m) == set(fitted.classes_) for seq in marg for m in seq)
    assert all(sum(m.values()) == pytest.approx(1.0) for seq in marg for m in seq)
    assert fitted.predict_marginals_single(X_test[0]) == marg[0]
    proba = fitted.predict_proba(X_test[:5])
    assert [p.shape for p in proba] == [(len(s), len(fitted.classes_)) for s in X_test[:5]]
    np.testing.assert_allclose(proba[0][:, 0], [m[fitted.classes_[0]] for m in marg[0]])
    idx = fitted.predict_indices(X_test[:5])
    assert [[fitted.classes_[k] for k in seq] for seq in idx] == pred
    assert fitted.predict([]) == []


def test_marginals_argmax_mostly_agrees_with_viterbi(fitted, hmm):
    _, _, X_test, *_ = hmm
    pred = fitted.predict(X_test)
    marg = fitted.predict_marginals(X_test)
    agree = np.mean([max(m, key=m.get) == p for ms, ps in zip(marg, pred)
                     for m, p in zip(ms, ps)])
    assert agree > 0.95


def test_fitted_attributes(fitted):
    assert sorted(fitted.classes_) == ["L0", "L1", "L2"]
    assert set(fitted.attributes_) >= {"w:w0", "bias"}
    assert 0 < fitted.num_attributes_ <= len(fitted.attributes_)
    sf = fitted.state_features_
    a = fitted.attributes_.index("w:w0")
    k = fitted.classes_.index("L0")
    assert sf[("w:w0", "L0")] == fitted.state_weights_[a, k]
    tf = fitted.transition_features_
    assert len(tf) == len(fitted.classes_) ** 2
    assert tf[("L0", "L1")] == fitted.transition_weights_[0 if fitted.classes_[0] == "L0"
                                                          else fitted.classes_.index("L0"),
                                                          fitted.classes_.index("L1")]
    assert fitted.n_nonzero_weights_ > 0
    assert fitted.training_log_.last_iteration["num"] == fitted.n_iter_


def test_unseen_attributes_are_ignored(fitted):
    seq = [{"w": "w0", "bias": 1.0}, {"w": "w5", "bias": 1.0}]
    noisy = [{**tok, "never-seen": "x", "other": 3.5} for tok in seq]
    assert fitted.predict_single(noisy) == fitted.predict_single(seq)


def test_token_formats(hmm):
    X, y, *_ = hmm
    as_lists = [[[f"w:{tok['w']}", "bias"] for tok in seq] for seq in X]
    a = CRF(random_state=0, max_iterations=3).fit(X, y)
    b = CRF(random_state=0, max_iterations=3).fit(as_lists, y)
    assert a.attributes_ == b.attributes_
    np.testing.assert_array_equal(a.state_weights_, b.state_weights_)
    # A bool feature is the attribute with weight 1.0 / 0.0.
    X_bool = [[{"w": tok["w"], "bias": True} for tok in seq] for seq in X]
    c = CRF(random_state=0, max_iterations=3).fit(X_bool, y)
    np.testing.assert_array_equal(a.state_weights_, c.state_weights_)


def test_all_possible_states_false_keeps_only_seen_pairs():
    X = [[["a"], ["b"]], [["a"], ["c"]]]
    y = [["X", "Y"], ["X", "Z"]]
    crf = CRF(all_possible_states=False, random_state=0).fit(X, y)
    assert set(crf.state_features_) <= {("a", "X"), ("b", "Y"), ("c", "Z")}
    dense = CRF(all_possible_states=True, random_state=0).fit(X, y)
    assert ("a", "Y") in dense.state_features_


def test_default_states_are_dense_for_frequent_attributes_only():
    # "f" occurs 6 times (always with X), "r" once: the default keeps (f, Y) and
    # (f, Z), learnt negative, but only the seen (r, X) for the rare attribute.
    X = [[["f"], ["g"]]] * 5 + [[["f", "r"], ["h"]]]
    y = [["X", "Y"]] * 5 + [["X", "Z"]]
    crf = CRF(random_state=0).fit(X, y)
    W = dict(zip(crf.attributes_, crf.state_weights_))
    assert np.all(W["f"][1:] < 0) and W["f"][0] > 0
    assert W["r"][0] > 0 and np.all(W["r"][1:] == 0)


def test_all_possible_transitions_false_keeps_only_seen_bigrams():
    X = [[["a"], ["b"]], [["c"]]]
    y = [["X", "Y"], ["Z"]]
    for algorithm in ("asgd", "lbfgs", "ap"):
        crf = CRF(algorithm=algorithm, all_possible_transitions=False, random_state=0)
        crf.fit(X, y)
        nonzero = {pair for pair, w in crf.transition_features_.items() if w != 0}
        assert nonzero == {("X", "Y")}


def test_get_set_params_and_repr():
    crf = CRF(c1=0.1, algorithm="lbfgs")
    params = crf.get_params()
    assert params["c1"] == 0.1 and params["algorithm"] == "lbfgs" and params["c2"] is None
    assert crf.set_params(c2=0.3) is crf and crf.c2 == 0.3
    with pytest.raises(ValueError, match="invalid parameter 'c3'"):
        crf.set_params(c3=1)
    assert repr(crf) == "CRF(algorithm='lbfgs', c1=0.1, c2=0.3)"
    assert CRF().classes_ is None   # sklearn-crfsuite's, before fit


def test_pickle_round_trip(fitted, hmm):
    _, _, X_test, *_ = hmm
    clone = pickle.loads(pickle.dumps(fitted))
    assert clone.predict(X_test) == fitted.predict(X_test)
    assert clone.get_params() == fitted.get_params()


# --------------------------------------------------------------------------- #
# Validation                                                                   #
# --------------------------------------------------------------------------- #


def test_unknown_algorithm_lists_the_implemented_ones():
    with pytest.raises(ValueError, match="'crf'.*'asgd', 'lbfgs', 'l2sgd', 'ap', 'pa', 'arow'"):
        CRF(algorithm="crf").fit([[["a"]]], [["A"]])


@pytest.mark.parametrize("params, match", [
    ({"c2": -1.0}, "c2 must be >= 0"),
    ({"c2": float("nan")}, "c2 must be finite"),
    ({"c2": "1"}, "c2 must be a real number"),
    ({"max_iterations": 0}, "max_iterations must be >= 1"),
    ({"max_iterations": 2.5}, "max_iterations must be an int"),
    ({"c1": 1.0, "algorithm": "l2sgd"}, "c1 .* only supported by algorithm='asgd' or "
                                        "algorithm='lbfgs', not 'l2sgd'"),
    ({"c1": 1.0, "algorithm": "pa"}, "c1 .* not 'pa'"),
    ({"c1": -0.1}, "c1 must be >= 0"),
    ({"c1": float("nan")}, "c1 must be finite"),
    ({"c1": "0.1"}, "c1 must be a real number"),
    ({"min_freq": -1}, "min_freq must be >= 0"),
    ({"calibration_rate": 1.0}, "calibration_rate must be > 1"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"batch_size": 70000}, "batch_size must be at most 65535"),
    ({"pa_type": 3, "algorithm": "pa"}, "pa_type must be 0, 1 or 2"),
    ({"linesearch": "Armijo"}, "linesearch must be one of"),
    ({"variance": 0.0, "algorithm": "arow"}, "variance must be > 0"),
    ({"gamma": -1.0, "algorithm": "arow"}, "gamma must be > 0"),
    ({"n_jobs": 0}, "n_jobs"),
    ({"random_state": "seed"}, "random_state must be"),
    ({"all_possible_states": 1}, "all_possible_states must be a bool"),
])
def test_bad_parameters(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CRF(**params).fit([[["a"]]], [["A"]])


@pytest.mark.parametrize("X, y, exc, match", [
    ([[["a"]], []], [["A"], ["B"]], ValueError, r"X\[1\] is an empty sequence"),
    ([[["a"], ["b"]]], [["A"]], ValueError, r"y\[0\] has 1 labels but X\[0\] has 2"),
    ([[["a"]], [["b"]]], [["A"]], ValueError, "same number of sequences"),
    ([[["a"]]], [[1]], TypeError, r"y\[0\]\[0\] must be a str label"),
    ([[{"x": float("nan")}]], [["A"]], ValueError, "NaN|finite"),
    ([], [], ValueError, "no sequences"),
])
def test_bad_training_data(X, y, exc, match):
    with pytest.raises(exc, match=match):
        CRF().fit(X, y)


def test_dev_set_errors_name_the_dev_set():
    X, y = [[["a"], ["b"]]], [["A", "B"]]
    with pytest.raises(ValueError, match="X_dev and y_dev must be given together"):
        CRF().fit(X, y, X_dev=X)
    with pytest.raises(ValueError, match=r"y_dev\[0\] has 1 labels"):
        CRF().fit(X, y, X_dev=X, y_dev=[["A"]])
    # A dev label unseen in training is not an error: those tokens count as wrong.
    crf = CRF(random_state=0, max_iterations=2).fit(X, y, X_dev=X, y_dev=[["A", "C"]])
    assert crf.training_log_.last_iteration["dev_accuracy"] <= 0.5


def test_sklearn_crfsuite_attributes_are_none_before_fit():
    # sklearn-crfsuite's fitted attributes read None on a new estimator (code tests
    # `crf.tagger_ is None`); fastcrf's own ones still raise NotFittedError.
    crf = CRF()
    names = ("tagger_", "size_", "classes_", "num_attributes_", "attributes_",
             "state_features_", "transition_features_")
    assert all(getattr(crf, name) is None for name in names)
    X, y, _ = sample_hmm(20, n_labels=2, n_words=6, seed=2)
    crf.fit(X, y)
    assert all(getattr(crf, name) is not None for name in names)
    assert set(crf.tagger_.labels()) == set(crf.classes_)
    with pytest.raises(NotFittedError):
        CRF().transition_weights_


def test_predictions_compare_as_lists_and_as_sklearn_crfsuite_05_arrays():
    # sklearn-crfsuite 0.3 returned lists, 0.5 np.array(sequences, dtype=object): code
    # written for either compares what predict returns.
    X, y, _ = sample_hmm(30, n_labels=3, n_words=9, min_len=2, max_len=9, seed=5)
    crf = CRF(algorithm="lbfgs", c2=0.01, random_state=0).fit(X, y)
    lists = [crf.predict_single(x) for x in X]
    pred = crf.predict(X)
    assert isinstance(pred, list) and all(type(p) is list for p in pred)
    assert pred == lists and not pred != lists and pred.tolist() == lists
    changed = [list(p) for p in lists]
    changed[3][1] = "nope"
    assert not pred == changed and pred != changed
    assert not pred == lists[:-1] and pred != lists[:-1]
    assert pred == [tuple(p) for p in lists] and pred == [np.array(p) for p in lists]
    # Elementwise, as 0.5's array: several lengths give one answer per sequence...
    assert (pred == lists).tolist() == [True] * len(X)
    assert (pred != changed).tolist() == [i == 3 for i in range(len(X))]
    # ... and one sequence a row, which broadcasts against its labels, as
    # sklearn-crfsuite's own tests use it: `(crf.predict([x]) == y).all()`.
    one = crf.predict(X[:1])
    assert (one == lists[0]).all() and (one == lists[:1]).all()
    assert one == lists[:1] and not one == lists[0]   # the truth value is the lists'
    assert (crf.predict(X[:1]) != lists[0]).shape == (1, len(X[0]))
    assert crf.predict([]) == [] and pickle.loads(pickle.dumps(pred)) == lists
    # Marginals: the same list type, of {label: probability} dicts.
    marginals = crf.predict_marginals(X[:4])
    assert marginals == [crf.predict_marginals_single(x) for x in X[:4]]
    assert sum(marginals[0][0].values()) == pytest.approx(1.0)


def test_unfitted_use_is_a_clear_error():
    crf = CRF()
    for call in (lambda: crf.predict([[["a"]]]), lambda: crf.predict_marginals([[["a"]]]),
                 lambda: crf.state_weights_, lambda: crf.save("x.npz")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_huge_feature_values_give_a_clear_error(fitted):
    with pytest.raises(ValueError, match="feature values"):
        fitted.predict([[{"w": "w0", "bias": 1e200}]])


def test_failed_fit_keeps_the_previous_model(fitted, hmm, monkeypatch):
    X, y, X_test, *_ = hmm
    crf = pickle.loads(pickle.dumps(fitted))
    before = crf.predict(X_test)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(TRAINERS, "asgd", dataclasses.replace(TRAINERS["asgd"],
                                                              fit=interrupted))
    with pytest.raises(KeyboardInterrupt):
        crf.fit(X[:100], [["L0"] * len(s) for s in X[:100]])
    assert crf.predict(X_test) == before
    assert crf.classes_ == fitted.classes_


def _calibration(out):
    """``({eta: objective}, eta0 used)`` from a verbose fit's calibration lines."""
    trials, used = {}, None
    for line in out.splitlines():
        if line.startswith("calibration: eta="):
            eta, objective = line.split()[1:3]
            trials[float(eta.split("=")[1])] = (float(objective.split("=")[1]),
                                                "too large" not in line)
        elif line.startswith("calibration: using eta0="):
            used = float(line.split("=")[1])
    return trials, used


@pytest.mark.parametrize("algorithm", ["asgd", "l2sgd"])
def test_calibration_picks_the_documented_step(hmm, algorithm):
    # l2sgd: the trial with the lowest sample objective (CRFsuite's rule); asgd: the
    # candidate calibration_rate above it, which its trial must also have accepted.
    X, y, *_ = hmm
    buf = io.StringIO()
    with redirect_stdout(buf):
        CRF(algorithm=algorithm, verbose=True, random_state=0, max_iterations=1,
            calibration_samples=100, learning_rate="calibrated").fit(X, y)
    trials, used = _calibration(buf.getvalue())
    best = min(trials, key=lambda eta: trials[eta][0])
    if algorithm == "l2sgd":
        assert used == pytest.approx(best)
    else:
        above = 2.0 * best
        assert above in trials  # the search always brackets the best from above
        assert used == pytest.approx(above if trials[above][1] else best)
        assert used == pytest.approx(above)  # accepted on this data


def test_divergence_is_reported(hmm):
    X, y, *_ = hmm
    # The log-loss gradient is bounded by the feature values, so only absurd values
    # can push scores past the kernels' limit; that is reported, not propagated.
    X_big = [[{"w": t["w"], "bias": 1e100} for t in seq] for seq in X]
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        CRF(eta0=1.0, random_state=0, learning_rate="calibrated").fit(X_big, y)
    with pytest.raises(FloatingPointError, match="no step size"):
        CRF(random_state=0, calibration_max_trials=3, learning_rate="calibrated").fit(X_big, y)


# --------------------------------------------------------------------------- #
# Persistence                                                                  #
# --------------------------------------------------------------------------- #


def test_save_load_round_trip(fitted, hmm, tmp_path):
    _, _, X_test, *_ = hmm
    path = tmp_path / "model.npz"
    fitted.save(path)
    loaded = CRF.load(path)
    assert loaded.predict(X_test) == fitted.predict(X_test)
    assert loaded.predict_marginals(X_test[:3]) == fitted.predict_marginals(X_test[:3])
    assert loaded.classes_ == fitted.classes_ and loaded.attributes_ == fitted.attributes_
    assert loaded.get_params() == fitted.get_params()
    assert loaded.training_log_.iterations == fitted.training_log_.iterations
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind


def test_model_filename_saves_after_fit(hmm, tmp_path):
    X, y, *_ = hmm
    path = tmp_path / "m.npz"
    crf = CRF(model_filename=str(path), max_iterations=2, random_state=0).fit(X, y)
    assert CRF.load(path).predict(X[:3]) == crf.predict(X[:3])


def test_truncated_or_corrupted_files_are_rejected(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted|not a"):
        CRF.load(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError):
        CRF.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastcrf model"):
        CRF.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        CRF.load(tmp_path / "missing.npz")


def _rewrite(path, out, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(out, **arrays)


def test_wrong_version_and_inconsistent_arrays_are_rejected(fitted, tmp_path):
    import json

    path = tmp_path / "model.npz"
    fitted.save(path)
    with np.load(path) as z:
        header = json.loads(z["header.json"].tobytes())
    header["format_version"] = 99
    _rewrite(path, tmp_path / "v99.npz", **{
        "header.json": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)})
    with pytest.raises(ValueError, match="format version 99"):
        CRF.load(tmp_path / "v99.npz")
    K = len(fitted.classes_)
    _rewrite(path, tmp_path / "shape.npz", state_head=np.zeros((1, K + 1)))
    with pytest.raises(ValueError, match="'state_head'"):
        CRF.load(tmp_path / "shape.npz")
    with np.load(path) as z:
        ptr, labels = z["tail_ptr"], z["tail_labels"]
    if len(labels):
        _rewrite(path, tmp_path / "labels.npz", tail_labels=np.full_like(labels, K))
        with pytest.raises(ValueError, match="'tail_labels'"):
            CRF.load(tmp_path / "labels.npz")
    bad_ptr = ptr.copy()
    bad_ptr[0] = 1
    _rewrite(path, tmp_path / "ptr.npz", tail_ptr=bad_ptr)
    with pytest.raises(ValueError, match="'tail_ptr'"):
        CRF.load(tmp_path / "ptr.npz")
    _rewrite(path, tmp_path / "nan.npz", start=np.full(len(fitted.classes_), np.nan))
    with pytest.raises(ValueError, match="non-finite"):
        CRF.load(tmp_path / "nan.npz")


def test_version_1_files_still_load(fitted, tmp_path, hmm):
    # fastcrf 0.1 wrote the state weights as one dense array.
    import json

    path = tmp_path / "model.npz"
    fitted.save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header.json"].tobytes())
    header["format_version"] = 1
    arrays["header.json"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    for name in ("state_head", "tail_ptr", "tail_labels", "state_tail"):
        del arrays[name]
    arrays["state"] = fitted.state_weights_
    np.savez(tmp_path / "v1.npz", **arrays)
    old = CRF.load(tmp_path / "v1.npz")
    np.testing.assert_array_equal(old.state_weights_, fitted.state_weights_)
    X_test = hmm[2]
    assert [list(p) for p in old.predict(X_test)] == [list(p) for p in fitted.predict(X_test)]


def _old_pickle_state(crf):
    # What the pickles of fastcrf < 0.3 held: the parameters and the fitted attributes.
    model = crf._model
    return {**crf.get_params(), "vocabulary_": model.vocabulary,
            "classes_": list(model.classes), "transition_weights_": model.transitions,
            "start_weights_": model.start, "end_weights_": model.end,
            "training_log_": model.training_log, "n_iter_": model.n_iter, "metadata_": {}}


def test_pickles_of_dense_models_still_load(fitted, hmm):
    # fastcrf 0.1 pickled the dense state matrix as an attribute.
    old_state = _old_pickle_state(fitted)
    old_state["state_weights_"] = fitted.state_weights_
    old = CRF.__new__(CRF)
    old.__setstate__(old_state)
    X_test = hmm[2]
    assert [list(p) for p in old.predict(X_test)] == [list(p) for p in fitted.predict(X_test)]
    np.testing.assert_array_equal(old.state_weights_, fitted.state_weights_)


def test_pickles_of_layout_models_still_load(fitted, hmm):
    # fastcrf 0.2 pickled the state layout and its flat weights as attributes.
    old_state = _old_pickle_state(fitted)
    old_state["_state_layout"] = fitted._model.layout
    old_state["_state"] = fitted._model.state
    old = CRF.__new__(CRF)
    old.__setstate__(old_state)
    X_test = hmm[2]
    assert old.predict(X_test) == fitted.predict(X_test)
    assert old.get_params() == fitted.get_params()
    assert old.n_iter_ == fitted.n_iter_ and old.training_log_ is fitted.training_log_
    np.testing.assert_array_equal(old.state_weights_, fitted.state_weights_)


def test_loading_never_unpickles(tmp_path):
    # An object array (which would need pickle) in place of a weight array.
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as z:
        buf = io.BytesIO()
        np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
        z.writestr("state.npy", buf.getvalue())
    with pytest.raises(ValueError):
        CRF.load(path)


# --------------------------------------------------------------------------- #
# scikit-learn interoperability (when installed)                               #
# --------------------------------------------------------------------------- #


def test_sklearn_clone_and_cross_val_score(hmm):
    sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    X, y, *_ = hmm
    crf = CRF(c2=0.1, max_iterations=3, random_state=0)
    copy = clone(crf)
    assert copy.get_params() == crf.get_params() and copy is not crf

    def token_accuracy(estimator, X, y):
        return estimator.score(X, y)

    scores = cross_val_score(crf, X, y, cv=3, scoring=token_accuracy)
    assert len(scores) == 3 and np.all(scores > 0.8)
    assert sklearn.__version__


def test_importing_fastcrf_does_not_import_scipy_or_sklearn():
    import subprocess
    import sys

    code = ("import sys, fastcrf; "
            "print(any(m in sys.modules for m in ('scipy', 'sklearn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(__file__))
    assert out.stdout.strip() == "False"


def test_public_names():
    assert fastcrf.CRF is CRF
    assert fastcrf.TrainingLog is type(CRF(random_state=0).fit([[["a"]]], [["A"]])
                                       .training_log_)


# --------------------------------------------------------------------------- #
# Adapting to the training set's size, early stopping                        #
# --------------------------------------------------------------------------- #


def _long_sequence(n_tokens, n_words, seed=0):
    # One sequence whose label is the word's number mod 5: a per-word lookup table
    # that L-BFGS learns exactly but SGD, one step per epoch, cannot.
    words = np.random.default_rng(seed).integers(0, n_words, n_tokens).tolist()
    return [[[f"w={w}"] for w in words]], [[f"L{w % 5}" for w in words]]


def test_default_trains_few_long_sequences_by_lbfgs(capsys):
    X, y = _long_sequence(20000, 200)
    crf = CRF(random_state=0, verbose=True).fit(X, y)
    assert crf.training_log_.algorithm == "lbfgs"
    assert crf.score(X, y) >= 0.99
    assert "training with algorithm='lbfgs' instead" in capsys.readouterr().out
    # The same objective as asgd's defaults: c2 is asgd's.
    assert crf.get_params()["algorithm"] is None


def test_explicit_asgd_on_few_sequences_warns():
    X, y = _long_sequence(2000, 50)
    with pytest.warns(UserWarning, match=r"only 1 step per epoch.*algorithm='lbfgs'"):
        crf = CRF(algorithm="asgd", random_state=0, max_iterations=3).fit(X, y)
    assert crf.training_log_.algorithm == "asgd"


def test_asgd_runs_more_epochs_on_small_sets_and_the_base_count_on_large_ones():
    from fastcrf._train.sgd import BASE_EPOCHS, default_epochs

    assert default_epochs(1000, 4) == BASE_EPOCHS == 8
    assert default_epochs(100, 4) == 80
    assert default_epochs(41, 4) == 100   # capped
    X, y, _ = sample_hmm(100, seed=4)
    crf = CRF(random_state=0, delta=0.0).fit(X, y)
    assert crf.n_iter_ == 80
    crf = CRF(random_state=0, delta=0.0, max_iterations=5).fit(X, y)
    assert crf.n_iter_ == 5


def test_early_stopping_keeps_the_best_dev_epoch(hmm):
    X, y, X_test, y_test, _ = hmm
    crf = CRF(random_state=0, early_stopping=True, n_iter_no_change=2,
              max_iterations=40, delta=0.0).fit(X, y, X_dev=X_test, y_dev=y_test)
    log = crf.training_log_
    accs = [e["dev_accuracy"] for e in log.iterations]
    best = log.best_iteration
    assert accs[best - 1] == max(accs)
    # Stopped two epochs after the last improvement, before the cap.
    assert crf.n_iter_ == len(accs) < 40
    assert len(accs) - best >= 2
    # The model is the best epoch's: its dev accuracy is the logged one.
    assert crf.score(X_test, y_test) == pytest.approx(accs[best - 1], abs=1e-12)


def test_early_stopping_holds_out_part_of_the_training_set(hmm):
    X, y, *_ = hmm
    crf = CRF(random_state=0, early_stopping=True, validation_fraction=0.2).fit(X, y)
    assert all("dev_accuracy" in e for e in crf.training_log_.iterations)
    assert crf.training_log_.best_iteration >= 1
    with pytest.raises(ValueError, match="leaves none to train on"):
        CRF(early_stopping=True, validation_fraction=0.9).fit(X[:1], y[:1])


@pytest.mark.parametrize("params, match", [
    ({"validation_fraction": 1.0}, "validation_fraction must be < 1"),
    ({"validation_fraction": 0.0}, "validation_fraction must be > 0"),
    ({"n_iter_no_change": 0}, "n_iter_no_change must be >= 1"),
    ({"early_stopping": "yes"}, "early_stopping must be a bool"),
])
def test_early_stopping_parameters_are_checked(hmm, params, match):
    X, y, *_ = hmm
    with pytest.raises((ValueError, TypeError), match=match):
        CRF(**params).fit(X[:5], y[:5])
