"""Small synthetic corpora for the estimator tests, sampled from a known HMM."""

import numpy as np


def sample_hmm(n_sequences, *, n_labels=3, n_words=12, min_len=2, max_len=9, seed=0,
               noise=0.1):
    """Sequences from an HMM with a sticky chain and label-specific words.

    Each label ``k`` emits a word from its own block of ``n_words // n_labels`` words
    with probability ``1 - noise`` and a uniformly random word otherwise; the chain
    mostly cycles 0 -> 1 -> 2 -> ... so transitions carry information too.

    Returns
    -------
    X : list of lists of dict tokens ``{"w": word, "bias": 1.0}``
    y : list of lists of str labels ``"L0"``, ``"L1"``, ...
    params : dict with the HMM's ``start``, ``trans`` and ``emit`` probabilities
    """
    rng = np.random.default_rng(seed)
    K = n_labels
    trans = np.full((K, K), 0.1 / max(K - 1, 1))
    for k in range(K):
        trans[k, (k + 1) % K] = 0.9 if K > 1 else 1.0
    trans /= trans.sum(axis=1, keepdims=True)
    start = np.full(K, 1.0 / K)
    block = n_words // K
    emit = np.full((K, n_words), noise / n_words)
    for k in range(K):
        emit[k, k * block:(k + 1) * block] += (1 - noise) / block
    emit /= emit.sum(axis=1, keepdims=True)
    X, y = [], []
    for _ in range(n_sequences):
        T = int(rng.integers(min_len, max_len + 1))
        z = [int(rng.choice(K, p=start))]
        for _t in range(1, T):
            z.append(int(rng.choice(K, p=trans[z[-1]])))
        words = [int(rng.choice(n_words, p=emit[k])) for k in z]
        X.append([{"w": f"w{w}", "bias": 1.0} for w in words])
        y.append([f"L{k}" for k in z])
    return X, y, {"start": start, "trans": trans, "emit": emit}


def hmm_viterbi_accuracy(X, y, params):
    """Token accuracy of exact HMM decoding with the true parameters (the ceiling)."""
    import fastcrf

    K = params["trans"].shape[0]
    correct = total = 0
    for xs, ys in zip(X, y):
        words = [int(tok["w"][1:]) for tok in xs]
        em = np.log(params["emit"][:, words].T)[None]
        path, _ = fastcrf.viterbi(em, np.log(params["trans"]), np.log(params["start"]),
                                  np.zeros(K))
        correct += sum(int(p) == int(lab[1:]) for p, lab in zip(path[0], ys))
        total += len(ys)
    return correct / total
