"""L1 (and elastic net) in the averaged SGD engine against a naive dense reference.

The reference keeps the weights w themselves, applies each mini-batch's summed
gradient and L2 shrink, then Tsuruoka et al.'s cumulative-penalty clip to the
weights the mini-batch touched, with the penalty u and the per-weight q in w-space:
they shrink with the weights at every L2 step (which is what the engine's U-space
bookkeeping amounts to), and q is accumulated as in the paper (q += change).
"""

import numpy as np
import pytest

from fastcrf import CRF
from fastcrf._layout import StateLayout
from fastcrf._train.sgd import _State
from fastcrf._training import Weights, log_likelihood
from fastcrf.datasets import make_sequences

from helpers import run_epoch
from test_sparse import random_data


def _clip(x, q, u, where):
    """Cumulative-penalty clip of x[where] (in place); q[where] += the change."""
    z = x[where]
    qz = q[where]
    out = z.copy()
    pos, neg = z > 0, z < 0
    out[pos] = np.maximum(0.0, z[pos] - (u + qz[pos]))
    out[neg] = np.minimum(0.0, z[neg] + (u - qz[neg]))
    x[where] = out
    q[where] = qz + (out - z)


def naive_l1_sgd(data, epochs, eta0, lam, lam1, power, batch, avg_start, mask=None,
                 chain_mask=None):
    """Elastic-net minibatch (averaged) SGD, dense; ``epochs`` is a list of orders.

    Returns the final iterate and the plain running average of the iterates."""
    A, K = data.features.n_attributes, data.n_labels
    nV = K * K + 2 * K
    mask = np.ones((A, K)) if mask is None else mask
    chain_mask = np.ones(nV) if chain_mask is None else chain_mask
    state, chain = np.zeros((A, K)), np.zeros(nV)
    q_state, q_chain = np.zeros((A, K)), np.zeros(nV)
    u = 0.0
    avg_state, avg_chain = state.copy(), chain.copy()
    t = step = 0
    for order in epochs:
        for pos in range(0, len(order), batch):
            idx = order[pos:pos + batch]
            sub = data.subset(idx)
            _, g = log_likelihood(sub, Weights.from_flat(state, chain), n_jobs=1)
            eta = eta0 / (1 + lam * eta0 * t) ** power
            nb = len(idx)
            decay = 1 - eta * lam * nb
            state = decay * state + eta * g.state * mask
            chain = decay * chain + eta * g.chain * chain_mask
            u = decay * u + eta * lam1 * nb
            q_state *= decay
            q_chain *= decay
            touched = np.zeros((A, K), dtype=bool)
            touched[np.unique(sub.features.attr_ids)] = True
            _clip(state, q_state, u, touched & (mask != 0))
            _clip(chain, q_chain, u, chain_mask != 0)
            step += 1
            t += nb
            if avg_start >= 0 and step > avg_start + 1:
                mu = 1.0 / (step - avg_start)
                avg_state = (1 - mu) * avg_state + mu * state
                avg_chain = (1 - mu) * avg_chain + mu * chain
            else:
                avg_state, avg_chain = state.copy(), chain.copy()
    return (state, chain), (avg_state, avg_chain)


def run_engine(data, layout, epochs, eta0, lam, lam1, batch, avg_start, chain_mask,
               n_threads=2, power=0.75):
    state = _State(layout, l1=True)
    for order in epochs:
        losses = run_epoch(state, data, order, eta0=eta0, lam=lam, avg_start=avg_start,
                           chain_mask=chain_mask, n_threads=n_threads, lam1=lam1,
                           batch_size=batch, power=power)
        assert np.isfinite(losses).all()
    return state


def check_against_reference(data, layout, epochs, eta0, lam, lam1, batch, avg_start,
                            chain_mask, n_threads=2, power=0.75, atol=1e-10):
    state = run_engine(data, layout, epochs, eta0, lam, lam1, batch, avg_start,
                       chain_mask, n_threads, power)
    (w_state, w_chain), (a_state, a_chain) = naive_l1_sgd(
        data, epochs, eta0, lam, lam1, power, batch, avg_start, layout.mask(), chain_mask)
    it = state.iterate()
    np.testing.assert_allclose(it.state, w_state, atol=atol)
    np.testing.assert_allclose(it.chain, w_chain, atol=atol)
    # The exact zeros of the penalty are the reference's.
    np.testing.assert_array_equal(it.state == 0.0, w_state == 0.0)
    np.testing.assert_array_equal(it.chain == 0.0, w_chain == 0.0)
    if avg_start >= 0 and state.scalars[4] > avg_start + 1:
        # The plain average of the iterates (the clip's changes recorded lazily)...
        np.testing.assert_allclose(layout.to_dense(state.Uhat), a_state, atol=atol)
        np.testing.assert_allclose(state.Vhat, a_chain, atol=atol)
        # ... and what the trainer reports: the average on the iterate's support.
        avg = state.average()
        np.testing.assert_allclose(avg.state, np.where(w_state != 0, a_state, 0.0),
                                   atol=atol)
        np.testing.assert_allclose(avg.chain, np.where(w_chain != 0, a_chain, 0.0),
                                   atol=atol)
        np.testing.assert_array_equal(avg.state == 0.0, w_state == 0.0)
    return state, w_state


@pytest.mark.parametrize("lam", [0.0, 0.05])
@pytest.mark.parametrize("avg_start", [-1.0, 0.0, 5.0])
@pytest.mark.parametrize("batch", [1, 3])
def test_l1_epochs_match_naive_elastic_net_sgd(lam, avg_start, batch):
    rng = np.random.default_rng(7)
    data = random_data(rng, n_seq=12, K=3, A=8, max_feats=4)
    K = data.n_labels
    epochs = [rng.permutation(data.n_sequences) for _ in range(3)]
    chain_mask = np.ones(K * K + 2 * K)
    chain_mask[[1, 5, K * K + 2]] = 0.0   # fixed scores stay exactly 0
    layout = StateLayout.dense(data.features.n_attributes, K)
    state, w_state = check_against_reference(data, layout, epochs, 0.3, lam, 0.08, batch,
                                             avg_start, chain_mask)
    # The penalty is strong enough to matter: many exact zeros, not all.
    zeros = np.mean(w_state == 0.0)
    assert 0.2 < zeros < 0.9
    assert np.all(state.V[chain_mask == 0] == 0.0)


@pytest.mark.parametrize("n_dense", [0, 4])
@pytest.mark.parametrize("n_threads", [1, 3])
def test_l1_with_a_partial_layout_matches_masked_naive_sgd(n_dense, n_threads):
    # Tail attributes keep only the labels they were seen with; the clip must touch
    # only those weights (and rows padded from K = 3 to 4 keep their padding at 0).
    rng = np.random.default_rng(12)
    data = random_data(rng, n_seq=13, K=3, A=9)
    layout = StateLayout.build(data, n_dense)
    K = data.n_labels
    epochs = [rng.permutation(data.n_sequences) for _ in range(2)]
    state, _ = check_against_reference(data, layout, epochs, 0.3, 0.02, 0.05, 2,
                                       float(-(-data.n_sequences // 2)),
                                       np.ones(K * K + 2 * K), n_threads)
    S = layout.stride
    assert np.all(state.U[: layout.n_dense * S].reshape(-1, S)[:, K:] == 0.0)


@pytest.mark.parametrize("K", [3, 22])
def test_l1_over_both_weight_parts_matches_naive_sgd(K):
    # More than 64 attributes: both weight parts clip their own rows.
    rng = np.random.default_rng(21)
    data = random_data(rng, n_seq=13, K=K, A=140, max_feats=9)
    layout = StateLayout.build(data, 80)
    epochs = [rng.permutation(data.n_sequences) for _ in range(2)]
    check_against_reference(data, layout, epochs, 0.3, 0.05, 0.04, 3, 2.0,
                            np.ones(K * K + 2 * K), 2)


def test_l1_survives_many_scale_folds():
    # alpha crosses the fold threshold mid-epoch: u and q are folded with it.
    rng = np.random.default_rng(8)
    data = random_data(rng, n_seq=40)
    K = data.n_labels
    order = np.tile(rng.permutation(data.n_sequences), 25)
    decay = np.prod([1 - 0.04 / (1 + 0.2 * t) ** 0.5 * 5.0 for t in range(len(order))])
    assert decay < 1e-8
    layout = StateLayout.dense(data.features.n_attributes, K)
    state = run_engine(data, layout, [order], 0.04, 5.0, 0.02, 1, 3.0,
                       np.ones(K * K + 2 * K), 1, power=0.5)
    (w_state, w_chain), (a_state, _) = naive_l1_sgd(data, [order], 0.04, 5.0, 0.02, 0.5,
                                                    1, 3.0)
    np.testing.assert_allclose(state.iterate().state, w_state, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(state.iterate().chain, w_chain, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layout.to_dense(state.Uhat), a_state, rtol=1e-9,
                               atol=1e-12)
    assert (w_state == 0).any()


# The thread-count and slicing identities with L1 are parametrised into
# tests/test_sparse.py (test_sgd_epoch_is_bitwise_identical_for_any_thread_count,
# test_an_epoch_in_slices_equals_one_pass).


def test_l1_needs_its_arrays():
    rng = np.random.default_rng(1)
    data = random_data(rng, n_seq=4, K=3, A=5)
    K = data.n_labels
    state = _State(StateLayout.dense(5, K))      # made without l1
    with pytest.raises(ValueError, match="qU, qV or l1_stamp"):
        run_epoch(state, data, np.arange(4), eta0=0.1, lam=0.01, avg_start=-1.0,
                  chain_mask=np.ones(K * K + 2 * K), lam1=0.1, batch_size=2)


# --------------------------------------------------------------------------- #
# The estimator                                                                #
# --------------------------------------------------------------------------- #

@pytest.fixture(scope="module")
def noisy():
    # A few informative words among many rare, label-independent ones.
    X, y = make_sequences(500, n_labels=4, n_attributes=600, noise=0.5, context=1,
                          random_state=0)
    return X[:300], y[:300], X[300:], y[300:]


def _accuracy(crf, X, y):
    pred = crf.predict(X)
    return np.mean([a == b for p, g in zip(pred, y) for a, b in zip(p, g)])


def test_c1_gives_far_fewer_weights_at_similar_accuracy(noisy):
    X, y, X_test, y_test = noisy
    dense = CRF(random_state=0).fit(X, y)
    sparse = CRF(c1=1.0, random_state=0).fit(X, y)
    # The default algorithm picks 'asgd' here, with c1 as without it.
    assert dense.training_log_.algorithm == sparse.training_log_.algorithm == "asgd"
    assert sparse.n_nonzero_weights_ < 0.4 * dense.n_nonzero_weights_
    assert _accuracy(sparse, X_test, y_test) > _accuracy(dense, X_test, y_test) - 0.02
    # The objective the log reports includes the L1 term.
    last = sparse.training_log_.last_iteration
    assert last["objective"] > last["loss"]


def test_c1_results_do_not_depend_on_n_jobs(noisy):
    X, y, *_ = noisy
    one = CRF(algorithm="asgd", c1=0.3, n_jobs=1, random_state=3, max_iterations=4).fit(X, y)
    two = CRF(algorithm="asgd", c1=0.3, n_jobs=2, random_state=3, max_iterations=4).fit(X, y)
    np.testing.assert_array_equal(one.state_weights_, two.state_weights_)
    np.testing.assert_array_equal(one.transition_weights_, two.transition_weights_)


def test_c1_with_one_epoch_is_sparse(noisy):
    # A single epoch averages from the first step.
    X, y, *_ = noisy
    crf = CRF(algorithm="asgd", c1=0.5, max_iterations=1, random_state=0).fit(X, y)
    dense = CRF(algorithm="asgd", max_iterations=1, random_state=0).fit(X, y)
    assert 0 < crf.n_nonzero_weights_ < dense.n_nonzero_weights_
