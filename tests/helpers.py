"""Helpers shared by the test modules.

Imported as ``helpers`` (pytest's ``pythonpath`` in pyproject.toml puts tests/ on
sys.path), like the oracles ``brute_force`` and ``crf_data``; ``conftest.py`` only
holds fixtures.
"""

import numpy as np

RANDOM_SEED = 0


def make_problem(rng, B, T, K, scale=1.0, ragged=True, dtype=np.float64):
    """Random scores, tags and (optionally ragged, including 0 and T) lengths."""
    em = (rng.standard_normal((B, T, K)) * scale).astype(dtype)
    trans = rng.standard_normal((K, K)) * scale
    start = rng.standard_normal(K) * scale
    end = rng.standard_normal(K) * scale
    if ragged:
        lengths = rng.integers(0, T + 1, size=B)
        lengths[0] = T
    else:
        lengths = np.full(B, T)
    tags = rng.integers(0, K, size=(B, T))
    tags[np.arange(T)[None, :] >= lengths[:, None]] = -1
    return em, tags, trans, start, end, lengths


def _all_trainable(data):
    K = data.n_labels
    return np.ones(K * K + 2 * K)


def run_epoch(state, data, order, *, eta0, lam, avg_start, chain_mask=None, n_threads=1,
              lam1=0.0, **settings):
    """One SGD pass over ``order`` through the trainer's ``fastcrf._train.sgd._epoch``.

    ``settings`` are :class:`fastcrf._train.sgd.SGDSettings` fields (``batch_size``,
    ``power``, ...); ``chain_mask`` defaults to every transition, start and end score
    trainable; ``lam1`` > 0 (L1) needs a ``state`` made with ``l1=True``.  Returns the
    per-visit losses.
    """
    from fastcrf._train.sgd import SGDSettings, _epoch

    mask = _all_trainable(data) if chain_mask is None else chain_mask
    return _epoch(state, data, np.asarray(order), SGDSettings(**settings), eta0, lam,
                  avg_start, mask, n_threads, lam1=lam1)


def sgd_engine_call(state, data, order, *, eta0, lam, avg_start, batch_size, power=0.75,
                    chain_mask=None, tok_mid=None, max_length=None, loss_out=None,
                    n_threads=1, fold=True, lam1=0.0):
    """One direct call of the compiled ``_sgd_engine.sgd_epoch`` over ``order``.

    ``tok_mid`` defaults to the trainer's split of ``data`` (``_part_offsets``),
    ``max_length`` to ``data.max_length``; ``lam1`` > 0 passes the L1 arrays of
    ``state``.  Returns ``(status, losses)``.
    """
    from fastcrf._kernels import _sgd_engine
    from fastcrf._train.sgd import _part_offsets

    f = data.features
    L = state.layout
    order = np.asarray(order, dtype=np.int64)
    losses = np.zeros(len(order)) if loss_out is None else loss_out
    status = _sgd_engine.sgd_epoch(
        state.U, state.Uhat, state.V, state.Vhat, L.n_labels, L.n_dense, L.tail_ptr,
        L.tail_labels, _all_trainable(data) if chain_mask is None else chain_mask,
        state.scalars, f.attr_ids, f.values, f.token_offsets,
        _part_offsets(data) if tok_mid is None else tok_mid, f.seq_offsets, data.labels,
        order, data.max_length if max_length is None else max_length, batch_size, eta0,
        lam, power, avg_start, losses, n_threads, fold=fold, lam1=lam1, qU=state.qU,
        qV=state.qV, l1_stamp=state.l1_stamp)
    return status, losses


def fitted_gradient(crf, X, y):
    """``(weights, gradient)`` of a fitted CRF's log-likelihood on ``(X, y)``, both as
    dense :class:`fastcrf._training.Weights` (the gradient: observed minus expected
    counts, without regularisation)."""
    from fastcrf._encoding import encode, encode_labels
    from fastcrf._training import TrainingData, Weights, log_likelihood

    enc = encode(X, crf.vocabulary_)
    _, lab = encode_labels(y, crf.classes_, lengths=enc.lengths)
    data = TrainingData.build(enc, lab, len(crf.classes_))
    w = Weights(crf.state_weights_, crf.transition_weights_, crf.start_weights_,
                crf.end_weights_)
    return w, log_likelihood(data, w)[1]


def run_cli(capsys, *argv):
    """``fastcrf.cli.main(argv)`` in-process: ``(status, stdout, stderr)``."""
    from fastcrf import cli

    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err
