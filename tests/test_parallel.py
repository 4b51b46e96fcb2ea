"""Results must be bitwise identical for any number of threads."""

import numpy as np
import pytest
from helpers import make_problem

import fastcrf


@pytest.mark.parametrize("scale", [1.0, 400.0])
def test_every_output_is_bitwise_identical_across_thread_counts(dtype, scale):
    rng = np.random.default_rng(3)
    em, tags, trans, start, end, lengths = make_problem(rng, 37, 30, 7, scale=scale, dtype=dtype)
    allowed = rng.random((7, 7)) < 0.7
    np.fill_diagonal(allowed, True)

    def run(n_jobs):
        ll, g = fastcrf.log_likelihood(em, tags, trans, start, end, lengths, n_jobs=n_jobs,
                                       return_grad=True)
        return [
            fastcrf.log_partition(em, trans, start, end, lengths, n_jobs=n_jobs),
            fastcrf.marginals(em, trans, start, end, lengths, n_jobs=n_jobs),
            ll, *g,
            *fastcrf.viterbi(em, trans, start, end, lengths, n_jobs=n_jobs),
            *fastcrf.viterbi(em, trans, start, end, lengths, allowed=allowed, n_jobs=n_jobs),
        ]

    serial = run(1)
    for n_jobs in (2, 3, -1, None):
        for a, b in zip(serial, run(n_jobs)):
            np.testing.assert_array_equal(a, b)


def test_absurd_thread_counts_are_capped_not_fatal(rng):
    em, tags, trans, start, end, lengths = make_problem(rng, 9, 5, 3)
    want = fastcrf.log_partition(em, trans, start, end, lengths, n_jobs=1)
    for n_jobs in (100_000, 2**31 - 1):
        np.testing.assert_array_equal(
            fastcrf.log_partition(em, trans, start, end, lengths, n_jobs=n_jobs), want)
        fastcrf.viterbi(em, trans, start, end, lengths, n_jobs=n_jobs)


def test_n_jobs_validation():
    em = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match="n_jobs"):
        fastcrf.log_partition(em, np.zeros((2, 2)), n_jobs=0)
    with pytest.raises(TypeError, match="n_jobs"):
        fastcrf.log_partition(em, np.zeros((2, 2)), n_jobs=1.5)
    with pytest.raises(TypeError, match="n_jobs"):
        fastcrf.viterbi(em, np.zeros((2, 2)), n_jobs="2")


def test_threadpoolctl_limits_the_default_thread_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fastcrf.show_config(print_out=False)["openmp"]:
        pytest.skip("serial build")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastcrf.show_config(print_out=False)["max_threads"] == 1
