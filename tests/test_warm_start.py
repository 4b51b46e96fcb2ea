"""The trainers' ``init=`` (the trainer contract's warm start, which fastcrf.dask's
parameter mixing uses): an epoch from ``init`` continues where the last one ended."""

import numpy as np
import pytest

from crf_data import sample_hmm
from fastcrf._layout import StateLayout
from fastcrf._train import TRAINERS
from fastcrf._training import chain_mask, encode_training


@pytest.fixture(scope="module")
def problem():
    X, y, _ = sample_hmm(120, n_labels=3, seed=1)
    vocabulary, classes, data = encode_training(X, y, 0, 1)
    layout = StateLayout.for_training(data, None, counts=vocabulary.counts)
    return data, layout, chain_mask(data, True)


def run(problem, name, epochs, rng, init=None, **settings):
    data, layout, mask = problem
    trainer = TRAINERS[name]
    params = {"max_iterations": epochs, "averaging": False, "epsilon": 0.0, "pa_type": 1,
              "c": 1.0, "error_sensitive": True, "algorithm": name}
    s = trainer.Settings.from_params({**params, **settings})
    return trainer.fit(data, s, layout=layout, chain_mask=mask, random_state=rng,
                       n_jobs=1, init=init)[0]


@pytest.mark.parametrize("name", ["ap", "pa"])
def test_online_epoch_from_init_continues(problem, name):
    two = run(problem, name, 2, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    one = run(problem, name, 1, rng)
    again = run(problem, name, 1, rng, init=one)
    np.testing.assert_allclose(again.state, two.state, atol=1e-12)
    np.testing.assert_allclose(again.chain, two.chain, atol=1e-12)


def test_sgd_starts_at_init(problem):
    data, layout, mask = problem
    rng = np.random.default_rng(0)
    first = run(problem, "asgd", 2, rng, eta0=0.1, c2=0.1)
    # A step size of ~0 leaves the weights where they started.
    still = run(problem, "asgd", 1, rng, init=first, eta0=1e-300, c2=0.1)
    np.testing.assert_allclose(still.state, first.state, atol=1e-12)
    assert np.abs(first.state).max() > 0.1


def test_lbfgs_from_its_optimum_stays(problem):
    rng = np.random.default_rng(0)
    opt = run(problem, "lbfgs", 100, rng, c2=1.0)
    assert np.abs(opt.state).max() > 0.1
    again = run(problem, "lbfgs", 2, rng, init=opt, c2=1.0)
    np.testing.assert_allclose(again.state, opt.state, atol=1e-3)
