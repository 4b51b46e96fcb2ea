"""A dense numpy reference of averaged SGD with an AdaGrad (diagonal) step, to measure
whether a per-weight step size pays on CoNLL-2002 NER before it is built into the SGD
engine (issue 20; bench/README.md, "Levers measured for the remaining NER gap").

Every step touches every weight (O(n_weights) numpy work per step: a reference and a
measurement, not a trainer).  The two step rules, on ``sum_i -log p(y_i|x_i) +
c2 |w|^2`` with mini-batches of ``batch_size`` sequences and lambda = 2 c2 / n:

- ``sgd``: fastcrf's asgd rule, ``w <- (1 - eta_t lambda n_b) w + eta_t g`` with
  ``eta_t = eta0 / (1 + lambda eta0 t)^0.75`` (t: sequences seen);
- ``adagrad``: ``G += g * g`` (the data gradient of the step, per weight), then
  ``w <- exp(-eta lambda n_b / sqrt(G)) w + eta g / sqrt(G)`` with a constant eta.
  The L2 decay uses the same per-weight scale as the gradient (so the fixed point is
  the objective's optimum), in the exponential form, which is exact over any number
  of skipped steps (a lazy engine can apply it from a per-weight last-update stamp)
  and never reverses a weight however small G is.

Both average the iterates uniformly over the second half of the epochs (fastcrf's
default).  Run: ``python bench/adagrad_reference.py --rule adagrad --eta 0.3``.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_conll2002 as b02  # noqa: E402
import fastcrf  # noqa: E402


def matrix(X, index, grow=False):
    """CSR ``(n_tokens, A)`` of the feature dicts (:func:`bench_conll2002.token_matrix`);
    with ``grow``, names missing from ``index`` are added first."""
    if grow:
        for seq in X:
            for tok in seq:
                for key, value in tok.items():
                    index.setdefault(f"{key}:{value}" if isinstance(value, str) else key,
                                     len(index))
    return b02.token_matrix(X, index)


def fit(M, offsets, Y, K, *, rule, eta, c2, epochs, batch_size, seed):
    """Averaged weights ``(W (A, K), trans (K, K), start (K,), end (K,))``."""
    n = len(offsets) - 1
    A = M.shape[1]
    lam = 2.0 * c2 / n
    W = np.zeros((A, K))
    V = np.zeros(K * K + 2 * K)
    GW = np.zeros((A, K))
    GV = np.zeros_like(V)
    sumW = np.zeros_like(W)
    sumV = np.zeros_like(V)
    n_avg = 0
    rng = np.random.default_rng(seed)
    t = 0
    avg_from = max(epochs, 1) // 2
    for epoch in range(epochs):
        order = rng.permutation(n)
        for lo in range(0, n, batch_size):
            seqs = order[lo:lo + batch_size]
            nb = len(seqs)
            lens = np.array([offsets[s + 1] - offsets[s] for s in seqs])
            T = lens.max()
            rows = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in seqs])
            sub = M[rows]
            touched = np.unique(sub.indices)
            subt = sub[:, touched]
            em_flat = subt @ W[touched]
            em = np.zeros((nb, T, K))
            tags = np.zeros((nb, T), dtype=np.int64)
            pos = 0
            for i, s in enumerate(seqs):
                em[i, :lens[i]] = em_flat[pos:pos + lens[i]]
                tags[i, :lens[i]] = Y[offsets[s]:offsets[s + 1]]
                pos += lens[i]
            trans = V[:K * K].reshape(K, K)
            _, g = fastcrf.log_likelihood(em, tags, trans, V[K * K:K * K + K], V[K * K + K:],
                                          lengths=lens, return_grad=True, n_jobs=1)
            g_flat = np.concatenate([g.emissions[i, :lens[i]] for i in range(nb)])
            gW = np.asarray(subt.T @ g_flat)
            gV = np.concatenate([g.transitions.ravel(), g.start, g.end])
            if rule == "sgd":
                eta_t = eta / (1.0 + lam * eta * t) ** 0.75
                decay = max(1.0 - eta_t * lam * nb, 0.5)
                W *= decay
                V *= decay
                W[touched] += eta_t * gW
                V += eta_t * gV
            else:
                GW[touched] += gW * gW
                GV += gV * gV
                with np.errstate(divide="ignore"):
                    sW = 1.0 / np.sqrt(GW)
                    sV = 1.0 / np.sqrt(GV)
                # Weights never touched (G = 0) are 0: their decay does not matter.
                W *= np.exp(-eta * lam * nb * np.minimum(sW, 1e300))
                V *= np.exp(-eta * lam * nb * np.minimum(sV, 1e300))
                W[touched] += eta * gW * np.where(GW[touched] > 0, sW[touched], 0.0)
                V += eta * gV * np.where(GV > 0, sV, 0.0)
            t += nb
            if epoch >= avg_from:
                sumW += W
                sumV += V
                n_avg += 1
    if n_avg:
        W, V = sumW / n_avg, sumV / n_avg
    return W, V[:K * K].reshape(K, K), V[K * K:K * K + K], V[K * K + K:]


def predict(M, offsets, W, trans, start, end, classes):
    E = M @ W
    out = []
    for s in range(len(offsets) - 1):
        em = E[offsets[s]:offsets[s + 1]][None]
        path = fastcrf.viterbi(em, trans, start, end, n_jobs=1)[0]
        out.append([classes[k] for k in np.asarray(path).ravel()[:em.shape[1]]])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=b02.DEFAULT_DATA)
    p.add_argument("--eval", default="testa", choices=["testa", "testb"])
    p.add_argument("--train-limit", type=int)
    p.add_argument("--rule", default="adagrad", choices=["sgd", "adagrad"])
    p.add_argument("--eta", type=float, nargs="+", default=[0.3])
    p.add_argument("--c2", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args(argv)
    X, y, Xe, ye = b02.load(args.data, args.eval, args.train_limit)
    index = {}
    M = matrix(X, index, grow=True)
    Me = matrix(Xe, index)
    classes = sorted({t for s in y for t in s})
    code = {c: k for k, c in enumerate(classes)}
    Y = np.array([code[t] for s in y for t in s])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in y])])
    off_e = np.concatenate([[0], np.cumsum([len(s) for s in ye])])
    epochs = args.epochs
    if epochs <= 0:   # fastcrf's default epoch count (MIN_STEPS)
        from fastcrf._train.sgd import default_epochs
        epochs = default_epochs(len(y), args.batch_size)
    for eta in args.eta:
        for seed in args.seeds:
            t0 = time.perf_counter()
            W, tr, st, en = fit(M, offsets, Y, len(classes), rule=args.rule, eta=eta,
                                c2=args.c2, epochs=epochs, batch_size=args.batch_size,
                                seed=seed)
            f1, acc = b02.scores(ye, predict(Me, off_e, W, tr, st, en, classes))
            print(f"rule={args.rule} eta={eta} c2={args.c2} epochs={epochs} seed={seed} "
                  f"train={len(y)} eval={args.eval}: F1 {f1:.2f} acc {acc:.2f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
