"""Thread safety: many Python threads predicting at once from one fitted model (the
kernels release the GIL) get exactly the single-thread results, and two models fitted
at once in two threads equal the same fits run one after the other."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastcrf
from fastcrf import CRF
from fastcrf.datasets import make_sequences

N_THREADS = 8


def features(words):
    def token(s, t):
        return [f"w={s[t]}", f"prev={s[t - 1] if t else '^'}",
                f"next={s[t + 1] if t + 1 < len(s) else '$'}"]

    return [[token(s, t) for t in range(len(s))] for s in words]


@pytest.fixture(scope="module")
def data():
    _, y, params = make_sequences(300, n_labels=3, scheme="BIO", length=(3, 25),
                                  return_params=True, random_state=3)
    X = features([ws.tolist() for ws in params["words"]])
    return X[:200], y[:200], X[200:], y[200:]


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _ = data
    return CRF(algorithm="lbfgs", max_iterations=30).fit(X, y)


def run_at_once(fn, n=N_THREADS, repeat=3):
    """``fn(i)`` for i in range(n), from n threads released together by a barrier."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return [fn(i) for _ in range(repeat)]

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


@pytest.mark.parametrize("n_jobs", [1, None])
def test_predicting_from_many_threads_gives_the_serial_results(data, fitted, n_jobs):
    _, _, X_test, _ = data
    fitted.set_params(n_jobs=n_jobs)
    labels = fitted.predict(X_test)
    probs = fitted.predict_marginals(X_test)
    # Each thread works on its own rotation of the test set, so that different
    # threads are inside the kernels on different sequences at the same time.
    shifts = [i * 7 % len(X_test) for i in range(N_THREADS)]

    def work(i):
        Xi = X_test[shifts[i]:] + X_test[:shifts[i]]
        return fitted.predict(Xi), fitted.predict_marginals(Xi)

    for i, results in enumerate(run_at_once(work)):
        expected_labels = labels[shifts[i]:] + labels[:shifts[i]]
        expected_probs = probs[shifts[i]:] + probs[:shifts[i]]
        for got_labels, got_probs in results:
            assert got_labels == expected_labels
            assert got_probs == expected_probs  # dicts of floats: exact equality


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_api_from_many_threads_gives_the_serial_results(dtype):
    rng = np.random.default_rng(0)
    B, T, K = 64, 30, 6
    em = (rng.normal(size=(B, T, K)) * 3).astype(dtype)
    trans, start, end = (rng.normal(size=s).astype(dtype) for s in ((K, K), (K,), (K,)))
    lengths = rng.integers(0, T + 1, size=B)
    tags = rng.integers(0, K, size=(B, T))

    def everything(n_jobs):
        return (fastcrf.log_partition(em, trans, start, end, lengths, n_jobs=n_jobs),
                fastcrf.log_likelihood(em, tags, trans, start, end, lengths, n_jobs=n_jobs),
                fastcrf.marginals(em, trans, start, end, lengths, n_jobs=n_jobs),
                *fastcrf.viterbi(em, trans, start, end, lengths, n_jobs=n_jobs))

    expected = everything(1)
    for results in run_at_once(lambda i: everything(None if i % 2 else 1)):
        for got in results:
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithms", [("lbfgs", "asgd"), ("asgd", "asgd")])
def test_two_concurrent_fits_equal_sequential_fits(data, algorithms):
    X, y, X_test, _ = data
    settings = [dict(algorithm=a, max_iterations=12, random_state=k, c2=0.1 * (k + 1))
                for k, a in enumerate(algorithms)]
    # The second model sees a different half, so a mix-up between the fits shows.
    sets = [(X, y), (X[::-1], y[::-1])]
    sequential = [CRF(**p).fit(*s) for p, s in zip(settings, sets)]
    barrier = threading.Barrier(2)

    def fit(k):
        barrier.wait()
        return CRF(**settings[k]).fit(*sets[k])

    with ThreadPoolExecutor(2) as pool:
        concurrent = list(pool.map(fit, range(2)))
    for a, b in zip(sequential, concurrent):
        np.testing.assert_array_equal(a.state_weights_, b.state_weights_)
        np.testing.assert_array_equal(a.transition_weights_, b.transition_weights_)
        assert a.n_iter_ == b.n_iter_
        assert a.predict(X_test) == b.predict(X_test)
