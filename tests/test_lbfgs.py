"""The 'lbfgs' trainer: its layout gradient, and the optimum it reaches with L1 (OWL-QN)."""

import numpy as np
import pytest

from crf_data import sample_hmm
from helpers import fitted_gradient

from fastcrf import CRF
from fastcrf._encoding import encode_labels, fit_encode
from fastcrf._kernels import _sparse
from fastcrf._layout import StateLayout
from fastcrf._training import TrainingData, _forward_pass, attribute_parts, sort_by_frequency


def _corpus(n=200, seed=3):
    # An HMM corpus plus rare attributes, so a default layout has a dense head and a tail.
    X, y, _ = sample_hmm(n, seed=seed)
    rng = np.random.default_rng(seed)
    for seq in X:
        for tok in seq:
            tok["r"] = f"r{int(rng.integers(0, 400))}"
            tok["x"] = float(rng.uniform(0.5, 2.0))
    return X, y


def _zero_padding(layout, flat):
    # The padding of the dense rows is always 0 in a real weight vector.
    S, D, K = layout.stride, layout.n_dense, layout.n_labels
    flat[: D * S].reshape(D, S)[:, K:] = 0.0
    return flat


def _data(X, y):
    vocabulary, features = sort_by_frequency(*fit_encode(X, dense_values=False))
    classes, labels = encode_labels(y, lengths=features.lengths)
    return TrainingData.build(features, labels, len(classes))


@pytest.mark.parametrize("all_states", [None, False, True])
def test_layout_gradient_is_the_dense_gradient_of_the_kept_pairs(all_states):
    X, y = _corpus()
    data = _data(X, y)
    layout = StateLayout.for_training(data, all_states)
    rng = np.random.default_rng(0)
    K = data.n_labels
    flat = _zero_padding(layout, rng.standard_normal(layout.size) * 0.3)
    chain = rng.standard_normal(K * K + 2 * K) * 0.3
    _, marg, _ = _forward_pass(data, layout.kernel_args(flat), chain, None, True)
    A = data.features.n_attributes
    dense = np.empty((A, K))
    _sparse.layout_gradient(data.features.kernel_args(), marg, data.labels,
                            (K, A, np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32)),
                            attribute_parts(data.features, 1), dense.reshape(-1), 1)
    # The dense gradient, summed per pair by brute force over the entries.
    f = data.features
    tokens = np.repeat(np.arange(f.n_tokens), np.diff(f.token_offsets))
    values = f.values if len(f.values) else np.ones(len(f.attr_ids))
    brute = np.zeros((A, K))
    np.add.at(brute, f.attr_ids, -values[:, None] * marg[tokens])
    np.add.at(brute, (f.attr_ids, data.labels[tokens]), values)
    np.testing.assert_allclose(dense, brute, rtol=1e-10, atol=1e-10)
    f = data.features
    out = {}
    # Neither the parts nor the threads that run them change the result.
    for n_parts, n_threads in ((1, 1), (2, 2), (5, 2), (3, 1)):
        grad = np.full(layout.size, np.nan)
        _sparse.layout_gradient(f.kernel_args(), marg, data.labels,
                                (layout.stride, layout.n_dense, layout.tail_ptr,
                                 layout.tail_labels), attribute_parts(f, n_parts), grad,
                                n_threads)
        out[n_parts, n_threads] = grad
    for key in out:
        np.testing.assert_array_equal(out[key], out[1, 1])
    out[1] = out[1, 1]
    # Each kept pair sums its entries in the same order as the dense layout: bitwise.
    np.testing.assert_array_equal(out[1], layout.from_dense(dense))
    if all_states is None:
        assert 0 < layout.n_dense < layout.n_attributes


def _objective_problem(n_sequences):
    # Training data of the test corpus, its default layout and an all-ones chain mask.
    X, y = _corpus(n_sequences)
    data = _data(X, y)
    K = data.n_labels
    return data, StateLayout.for_training(data, None), np.ones(K * K + 2 * K)


def test_objective_gradient_matches_finite_differences():
    from fastcrf._train.lbfgs import _Objective

    data, layout, chain_mask = _objective_problem(40)
    chain_mask[1] = 0.0
    fun = _Objective(data, layout, chain_mask, 0.3, None)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(layout.size + len(chain_mask)) * 0.2
    _zero_padding(layout, x[: layout.size])
    f, g = fun(x)
    g = g.copy()
    idx = np.concatenate((rng.choice(layout.size, 15, replace=False),
                          layout.size + np.arange(len(chain_mask))))
    h = 1e-6
    for i in idx:
        e = np.zeros_like(x)
        e[i] = h
        fd = (fun(x + e)[0] - fun(x - e)[0]) / (2 * h)
        if i == layout.size + 1:
            # A fixed score: only the L2 term's gradient (it never moves from 0).
            assert g[i] == 2 * 0.3 * x[i]
            continue
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def _kkt_violation(crf, X, y, c1, c2):
    """Largest violation of the L1 optimality conditions over the kept weights."""
    w, g = fitted_gradient(crf, X, y)
    layout = crf._model.layout
    grad = -np.concatenate((layout.from_dense(g.state), g.chain))
    x = np.concatenate((layout.from_dense(w.state), w.chain))
    grad += 2 * c2 * x
    nonzero = x != 0
    worst_nonzero = np.abs(grad[nonzero] + c1 * np.sign(x[nonzero])).max()
    worst_zero = (np.abs(grad[~nonzero]) - c1).max() if (~nonzero).any() else -np.inf
    return max(worst_nonzero, worst_zero), int(nonzero.sum())


def test_owlqn_reaches_the_l1_optimum():
    X, y = _corpus()
    c1, c2 = 1.0, 0.05
    crf = CRF(algorithm="lbfgs", c1=c1, c2=c2, epsilon=1e-9, delta=0.0,
              max_iterations=3000).fit(X, y)
    violation, n_nonzero = _kkt_violation(crf, X, y, c1, c2)
    assert violation < 1e-3
    n_kept = crf._model.layout.size + len(crf.classes_) * (len(crf.classes_) + 2)
    # L1 zeroes most of the rare attributes' weights, exactly.
    assert n_nonzero < 0.5 * n_kept
    assert crf.n_nonzero_weights_ == n_nonzero


def test_owlqn_matches_split_variable_lbfgsb_on_the_objective():
    X, y = _corpus(40)
    c1, c2 = 0.5, 0.1
    crf = CRF(algorithm="lbfgs", c1=c1, c2=c2, epsilon=1e-10, delta=0.0,
              max_iterations=5000).fit(X, y)
    F = crf.training_log_.last_iteration["objective"]

    from scipy.optimize import minimize

    from fastcrf._train.lbfgs import _Objective

    data = _data(X, y)
    layout = StateLayout.for_training(data, None)
    K = data.n_labels
    fun = _Objective(data, layout, np.ones(K * K + 2 * K), c2, None)
    n = layout.size + K * K + 2 * K

    def split(z):
        f, g = fun(z[:n] - z[n:])
        return f + c1 * z.sum(), np.concatenate((g + c1, -g + c1))

    ref = minimize(split, np.zeros(2 * n), jac=True, method="L-BFGS-B",
                   bounds=[(0, None)] * (2 * n),
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 50000,
                            "maxfun": 100000})
    assert F == pytest.approx(ref.fun, rel=1e-6)
    assert F <= ref.fun * (1 + 1e-9)


def test_lbfgs_results_do_not_depend_on_n_jobs():
    X, y = _corpus(120)
    a = CRF(algorithm="lbfgs", c1=0.2, c2=0.05, max_iterations=30, n_jobs=1).fit(X, y)
    b = CRF(algorithm="lbfgs", c1=0.2, c2=0.05, max_iterations=30, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(a._model.state, b._model.state)
    np.testing.assert_array_equal(a.transition_weights_, b.transition_weights_)


def test_lbfgs_verbose_reports_a_failed_line_search_in_words(capsys):
    X, y = _corpus(20)
    # delta=0, epsilon=0: only the line search can end this run.
    CRF(algorithm="lbfgs", c1=0.5, c2=0.0, epsilon=0.0, delta=0.0, max_iterations=5000,
        verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "no step along the search direction lowered the objective" in out
    assert "error code" not in out


def test_l1_model_files_drop_the_zero_weights(tmp_path):
    X, y = _corpus()
    sparse = CRF(algorithm="lbfgs", c1=2.0, c2=0.01, max_iterations=60).fit(X, y)
    dense = CRF(algorithm="lbfgs", c1=0.0, c2=0.01, max_iterations=60).fit(X, y)
    assert sparse.n_nonzero_weights_ < 0.5 * dense.n_nonzero_weights_
    for crf, name in ((sparse, "sparse.npz"), (dense, "dense.npz")):
        crf.save(tmp_path / name)
        loaded = CRF.load(tmp_path / name)
        assert loaded.n_nonzero_weights_ == crf.n_nonzero_weights_
        np.testing.assert_array_equal(loaded.state_weights_, crf.state_weights_)
        assert loaded.predict(X) == crf.predict(X)
        np.testing.assert_array_equal(np.concatenate(loaded.predict_proba(X)),
                                      np.concatenate(crf.predict_proba(X)))
    assert (tmp_path / "sparse.npz").stat().st_size < 0.7 * (tmp_path / "dense.npz").stat().st_size


def test_lbfgs_l2_reports_scipys_own_stop_in_words(capsys):
    X, y = _corpus(20)
    CRF(algorithm="lbfgs", c2=1e-3, epsilon=0.0, delta=0.0, max_iterations=20000,
        verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "the objective no longer decreases" in out


def test_objective_reuses_its_buffers_without_carrying_anything_over():
    # _Objective hands forward_backward the same output arrays at every call: each call
    # must give, bitwise, what a fresh objective gives at that point (the per-chunk
    # chain sums are accumulated, so a buffer not reset would double them).
    from fastcrf._train.lbfgs import _Objective

    data, layout, mask = _objective_problem(60)
    fun = _Objective(data, layout, mask, 0.1, 2)
    rng = np.random.default_rng(5)
    marg_buffer = fun.buffers[2]
    for _ in range(3):
        x = rng.standard_normal(layout.size + len(mask)) * 0.3
        _zero_padding(layout, x[: layout.size])
        f, g = fun(x)
        f_new, g_new = _Objective(data, layout, mask, 0.1, 2)(x)
        assert f == f_new
        np.testing.assert_array_equal(g, g_new)
    assert fun.buffers[2] is marg_buffer


@pytest.mark.parametrize("c1", [0.0, 0.5])
def test_lbfgs_starts_from_the_init_point_it_is_given(c1):
    # fit_lbfgs(init=...) (a warm start): from the optimum of a first run, the first
    # iterate is already at its objective, and from a point far from it the run ends
    # at the same optimum.
    from fastcrf._train.lbfgs import LBFGSSettings, fit_lbfgs

    data, layout, chain_mask = _objective_problem(60)
    settings = LBFGSSettings(c1=c1, c2=0.1, epsilon=1e-9, delta=0.0, max_iterations=2000)
    seen = []

    def callback(k, info, weights_fn):
        seen.append(info["objective"])

    def fit(init=None):
        seen.clear()
        weights, _ = fit_lbfgs(data, settings, layout=layout, chain_mask=chain_mask,
                               callback=callback, init=init)
        return weights, list(seen)

    best, cold = fit()
    again_best, warm = fit(best)
    # Already optimal: it stops at once or within a few iterations, where it is.
    assert len(warm) < min(5, len(cold))
    assert all(f <= cold[-1] * (1 + 1e-9) for f in warm)
    np.testing.assert_allclose(again_best.state, best.state, atol=1e-4)
    rng = np.random.default_rng(0)
    far = type(best)(_zero_padding(layout, rng.standard_normal(layout.size)),
                     rng.standard_normal(len(chain_mask)))
    _, again = fit(far)
    assert again[0] > cold[-1] * 1.5  # it really started elsewhere
    assert again[-1] == pytest.approx(cold[-1], rel=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
def test_objective_taken_a_block_of_sequences_at_a_time_is_the_whole_sets(
        monkeypatch, weighted):
    # With BLOCK_DOUBLES small the evaluation runs over many blocks (each with its own
    # marginals); the state gradient sums every weight's entries in token order either
    # way (bitwise), the log-likelihood and chain sums are the same sums regrouped.
    from fastcrf import _training
    from fastcrf._train.lbfgs import _Objective

    data, layout, mask = _objective_problem(90)
    if weighted:
        data.weights = np.random.default_rng(2).uniform(0.2, 3.0, data.n_sequences)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(layout.size + len(mask)) * 0.3
    _zero_padding(layout, x[: layout.size])
    whole = _Objective(data, layout, mask, 0.1, 2)
    assert len(whole.blocks) == 1
    f_whole, g_whole = whole(x)
    g_whole = g_whole.copy()
    monkeypatch.setattr(_training, "BLOCK_DOUBLES", 40 * data.n_labels)
    blocked = _Objective(data, layout, mask, 0.1, 2)
    assert len(blocked.blocks) > 5
    # The blocks cover the sequences in order, each starting at a chunk boundary, and
    # the marginals buffer holds one block, not the set.
    C = _kernels_chunk_size()
    sizes = [b.n_sequences for b in blocked.blocks]
    assert sum(sizes) == data.n_sequences and all(s % C == 0 for s in sizes[:-1])
    assert blocked.buffers[2].shape[0] < data.features.n_tokens / 4
    f_blocked, g_blocked = blocked(x)
    n = layout.size
    np.testing.assert_array_equal(g_blocked[:n], g_whole[:n])
    np.testing.assert_allclose(g_blocked[n:], g_whole[n:], rtol=1e-12, atol=1e-12)
    assert f_blocked == pytest.approx(f_whole, rel=1e-13)
    # Blocks do not depend on the thread count.
    f1, g1 = _Objective(data, layout, mask, 0.1, 1)(x)
    assert f1 == f_blocked
    np.testing.assert_array_equal(g1, g_blocked)


def _kernels_chunk_size():
    from fastcrf._kernels._core import chunk_size

    return chunk_size()


def test_layout_gradient_refuses_marginals_of_another_batch():
    data, layout, _ = _objective_problem(10)
    K = data.n_labels
    marg = np.zeros((data.features.n_tokens + 1, K))
    with pytest.raises(ValueError, match="one row per token"):
        _sparse.layout_gradient(data.features.kernel_args(), marg, data.labels,
                                (layout.stride, layout.n_dense, layout.tail_ptr,
                                 layout.tail_labels), np.array([0, data.features.n_attributes]),
                                np.zeros(layout.size), 1)


def test_objective_of_data_without_sequences_is_zero():
    # A partition with no sequence (fastcrf.dask can hand one over) is one empty block.
    from fastcrf._encoding import EncodedSequences
    from fastcrf._train.lbfgs import _Objective

    empty = EncodedSequences(np.zeros(0, np.int32), np.zeros(0), np.zeros(1, np.int64),
                             np.zeros(1, np.int64), 3)
    data = TrainingData(empty, np.zeros(0, np.int64), 2, 0)
    layout = StateLayout.dense(3, 2)
    fun = _Objective(data, layout, np.ones(8), 0.1, 1)
    f, g = fun(np.zeros(layout.size + 8))
    assert f == 0.0 and not g.any()
