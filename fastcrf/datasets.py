"""Synthetic sequence-labelling data sampled from a hidden Markov model.

:func:`make_sequences` draws label sequences from a Markov chain with peaked (sparse)
transition rows and, for each token, a word from its label's peaked emission
distribution, then describes each token by its word and its neighbours' words.  Words
are shared between labels, so a per-token classifier is often unsure where a model
of the label sequence (a CRF, or Viterbi with the true parameters) is not: the data
rewards sequence models, and every example and command can run without downloading
anything.
"""

import numbers

import numpy as np

__all__ = ["make_conll_file", "make_sequences"]


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _labels(n_labels, scheme):
    """Label names and the (K, K) allowed-transition mask, plus allowed first labels."""
    if scheme is None:
        names = [f"L{k}" for k in range(n_labels)]
        return names, np.ones((n_labels, n_labels), bool), np.ones(n_labels, bool)
    if scheme != "BIO":
        raise ValueError(f"scheme must be None or 'BIO', got {scheme!r}")
    names = ["O"]
    for k in range(n_labels):
        names += [f"B-L{k}", f"I-L{k}"]
    K = len(names)
    allowed = np.ones((K, K), bool)
    first = np.ones(K, bool)
    for k in range(n_labels):
        inside = 2 + 2 * k
        allowed[:, inside] = False           # I-Lk only continues B-Lk or I-Lk
        allowed[inside - 1, inside] = True
        allowed[inside, inside] = True
        first[inside] = False
    return names, allowed, first


def make_sequences(n_sequences=100, *, n_labels=5, n_attributes=50, length=(5, 20),
                   noise=0.1, scheme=None, context=1, return_labels_as="str",
                   return_params=False, random_state=None):
    """Sample labelled sequences from a hidden Markov model.

    Parameters
    ----------
    n_sequences : int, default=100
    n_labels : int, default=5
        Number of labels; with ``scheme="BIO"``, of chunk types (labels ``O``,
        ``B-L0``, ``I-L0``, ...: ``2 * n_labels + 1`` in all).
    n_attributes : int, default=50
        Size of the word vocabulary the observations are drawn from.
    length : int or (int, int), default=(5, 20)
        Sequence lengths: uniform over ``[min, max]`` for a pair; for an int, the
        mean of ``1 + Poisson(length - 1)``.
    noise : float in [0, 1], default=0.1
        Probability that a token's word is replaced by a uniformly random one.
    scheme : {None, "BIO"}, default=None
        ``"BIO"`` gives chunk labels: ``I-X`` only ever follows ``B-X`` or ``I-X``.
    context : int, default=1
        Each token lists its word and the words up to ``context`` positions away
        (``BOS``/``EOS`` past the ends).
    return_labels_as : {"str", "int"}, default="str"
        Label names (``"L3"``, ``"B-L0"``) or their indices in ``params["labels"]``.
    return_params : bool, default=False
        Also return the generating model.
    random_state : None, int or numpy.random.Generator
        Seed: the same value gives the same data.

    Returns
    -------
    X : list of list of list of str
        Per token, attribute names such as ``"w=17"``, ``"w[-1]=3"``, ``"w[+1]=EOS"``:
        the estimator's input format.
    y : list of list of str (or int)
    params : dict, only with ``return_params``
        ``labels`` (list of str), ``start`` (K,), ``transitions`` (K, K) with
        ``[i, j]`` the probability of i -> j, ``emissions`` (K, n_attributes) the
        probability of each word given the label (noise included), and ``words``
        (list of int arrays: the word ids of each sequence).

    Examples
    --------
    >>> X, y = make_sequences(2, n_labels=3, length=3, random_state=0)
    >>> len(X), len(X[0][0]), X[0][0][0].startswith("w=")
    (2, 3, True)
    """
    n_sequences = _check_int("n_sequences", n_sequences, 1)
    n_labels = _check_int("n_labels", n_labels, 1)
    n_attributes = _check_int("n_attributes", n_attributes, 1)
    context = _check_int("context", context, 0)
    if isinstance(length, (tuple, list)):
        if len(length) != 2:
            raise ValueError(f"length must be an int or a (min, max) pair, got {length!r}")
        lo = _check_int("length[0]", length[0], 1)
        hi = _check_int("length[1]", length[1], 1)
        if lo > hi:
            raise ValueError(f"length must have min <= max, got {length!r}")
    else:
        mean = _check_int("length", length, 1)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise <= 1:
        raise ValueError(f"noise must be a probability in [0, 1], got {noise!r}")
    if return_labels_as not in ("str", "int"):
        raise ValueError(f"return_labels_as must be 'str' or 'int', got {return_labels_as!r}")
    rng = np.random.default_rng(random_state)
    names, allowed, first_ok = _labels(n_labels, scheme)
    K = len(names)

    # Peaked rows: each label has a few likely successors and a few likely words.
    transitions = rng.dirichlet(np.full(K, 0.1), size=K) * allowed
    transitions /= transitions.sum(axis=1, keepdims=True)
    start = rng.dirichlet(np.ones(K)) * first_ok
    start /= start.sum()
    emissions = rng.dirichlet(np.full(n_attributes, 0.1), size=K)
    emissions = (1 - noise) * emissions + noise / n_attributes

    if isinstance(length, (tuple, list)):
        lengths = rng.integers(lo, hi + 1, size=n_sequences)
    else:
        lengths = 1 + rng.poisson(mean - 1, size=n_sequences)
    cum_t = np.cumsum(transitions, axis=1)
    cum_e = np.cumsum(emissions, axis=1)
    X, y, words = [], [], []
    for n in lengths.tolist():
        u = rng.random((n, 2))
        labels = np.empty(n, dtype=np.intp)
        labels[0] = min(np.searchsorted(np.cumsum(start), u[0, 0], side="right"), K - 1)
        for t in range(1, n):
            row = cum_t[labels[t - 1]]
            labels[t] = min(np.searchsorted(row, u[t, 0], side="right"), K - 1)
        w = np.minimum((cum_e[labels] < u[:, 1:2]).sum(axis=1), n_attributes - 1)
        ws = [str(v) for v in w.tolist()]
        padded = ["BOS"] * context + ws + ["EOS"] * context
        tokens = []
        for t in range(n):
            feats = [f"w={ws[t]}"]
            for d in range(1, context + 1):
                feats.append(f"w[-{d}]={padded[context + t - d]}")
                feats.append(f"w[+{d}]={padded[context + t + d]}")
            tokens.append(feats)
        X.append(tokens)
        y.append(labels.tolist() if return_labels_as == "int"
                 else [names[k] for k in labels.tolist()])
        words.append(w)
    if return_params:
        params = {"labels": names, "start": start, "transitions": transitions,
                  "emissions": emissions, "words": words}
        return X, y, params
    return X, y


def make_conll_file(path, n_sequences=100, **kwargs):
    """Write a synthetic two-column file (``word label``) for the column-file tools.

    Parameters
    ----------
    path : str or path-like
        Output path (``.gz`` for a compressed file).
    n_sequences : int, default=100
    **kwargs
        Any parameter of :func:`make_sequences` but ``return_labels_as`` and
        ``return_params``.

    Returns
    -------
    int
        The number of sentences written.  Words are ``w0``, ``w1``, ...; a template
        such as ``U00:%x[0,0]`` then gives the features.
    """
    from .io import write_conll

    for bad in ("return_labels_as", "return_params"):
        if bad in kwargs:
            raise TypeError(f"make_conll_file does not take {bad}")
    _, y, params = make_sequences(n_sequences, return_params=True, **kwargs)
    rows = [[(f"w{w}", label) for w, label in zip(ws.tolist(), labels)]
            for ws, labels in zip(params["words"], y)]
    return write_conll(path, rows)
