"""fastcrf.torch.CRF: constrained training (``forward(allowed=)``), partial labels (tags
of -1, ``label_mask``), ``decode(nbest=)`` and differentiable ``marginals``, on the
compiled and the pure-torch paths, against enumeration of every tag path."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="fastcrf.torch needs PyTorch (pip install fastcrf[torch])"
)

from brute_force import path_score  # noqa: E402

from fastcrf.torch import CRF  # noqa: E402

BACKENDS = ["compiled", "torch"]


def _layer(K, backend, seed=0, scale=1.5):
    torch.manual_seed(seed)
    crf = CRF(K, batch_first=True, backend=backend).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.uniform_(-scale, scale)
    return crf


def _problem(seed, B=5, T=4, K=3):
    g = torch.Generator().manual_seed(seed)
    em = torch.randn(B, T, K, generator=g, dtype=torch.float64) * 2
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return em, mask, lengths


def _allowed(K, seed=1):
    rng = np.random.default_rng(seed)
    allowed = np.ones((K + 2, K + 2), bool)
    allowed[:K, :K] = rng.random((K, K)) < 0.6
    allowed[np.arange(K), np.arange(K)] = True   # every length stays possible
    allowed[K, 0] = False
    allowed[1, K + 1] = False
    return allowed


def _params(crf):
    return [p.detach().numpy() for p in (crf.transitions, crf.start_transitions,
                                         crf.end_transitions)]


def _ok(y, allowed, K):
    if allowed is None:
        return True
    return (allowed[K, y[0]] and allowed[y[-1], K + 1]
            and all(allowed[a, b] for a, b in itertools.pairwise(y)))


def _ranked(em, params, allowed, numerator=None):
    """Every path allowed (and compatible with ``numerator(y)``), best first."""
    T, K = em.shape
    out = [(y, path_score(em, y, *params)) for y in itertools.product(range(K), repeat=T)
           if _ok(y, allowed, K) and (numerator is None or numerator(y))]
    return sorted(out, key=lambda ys: (-ys[1], ys[0][::-1]))


def _logsum(paths):
    return np.logaddexp.reduce([s for _, s in paths]) if paths else -np.inf


def _valid_tags(em, mask, params, allowed, seed):
    """Per sequence a random allowed path (padded with 0)."""
    rng = np.random.default_rng(seed)
    tags = torch.zeros(mask.shape, dtype=torch.long)
    for b, n in enumerate(mask.sum(1).tolist()):
        paths = _ranked(em[b, :n].numpy(), params, allowed)
        tags[b, :n] = torch.tensor(paths[rng.integers(len(paths))][0])
    return tags


@pytest.mark.parametrize("backend", BACKENDS)
def test_constrained_and_partial_likelihood_match_enumeration(backend):
    K = 3
    em, mask, lengths = _problem(0, K=K)
    crf = _layer(K, backend)
    params = _params(crf)
    allowed = _allowed(K)
    tags = _valid_tags(em, mask, params, allowed, 0)
    partial = tags.clone()
    partial[torch.rand(partial.shape, generator=torch.Generator().manual_seed(2)) < 0.4] = -1
    label_mask = torch.rand(em.shape, generator=torch.Generator().manual_seed(3)) < 0.8
    label_mask |= torch.nn.functional.one_hot(tags, K).bool()   # the gold stays possible
    got = {
        "allowed": crf(em, tags, mask, "none", allowed=allowed),
        "partial": crf(em, partial, mask, "none", allowed=torch.from_numpy(allowed)),
        "label_mask": crf(em, partial, mask, "none", allowed=allowed, label_mask=label_mask),
        "partial free": crf(em, partial, mask, "none"),
    }
    for b, n in enumerate(lengths.tolist()):
        e = em[b, :n].numpy()
        y = tags[b, :n].tolist()
        p = partial[b, :n].tolist()
        lm = label_mask[b, :n].numpy()

        def agrees(path, p=p):
            return all(q < 0 or q == k for q, k in zip(p, path))

        def in_mask(path, p=p, lm=lm):
            return agrees(path, p) and all(lm[t, k] for t, k in enumerate(path))

        logz = _logsum(_ranked(e, params, allowed))
        want = {
            "allowed": path_score(e, y, *params) - logz,
            "partial": _logsum(_ranked(e, params, allowed, agrees)) - logz,
            "label_mask": _logsum(_ranked(e, params, allowed, in_mask)) - logz,
            "partial free": (_logsum(_ranked(e, params, None, agrees))
                             - _logsum(_ranked(e, params, None))),
        }
        for name, value in want.items():
            assert float(got[name][b].detach()) == pytest.approx(value, rel=1e-10), name


def test_constrained_gradients_agree_and_forbidden_parameters_get_none():
    K = 4
    em, mask, _ = _problem(5, B=6, T=5, K=K)
    allowed = _allowed(K, 7)
    grads = []
    for backend in BACKENDS:
        crf = _layer(K, backend)
        tags = _valid_tags(em, mask, _params(crf), allowed, 1)
        tags[0, 1] = -1
        e = em.clone().requires_grad_(True)
        crf(e, tags, mask, allowed=allowed).backward()
        grads.append([e.grad, crf.transitions.grad, crf.start_transitions.grad,
                      crf.end_transitions.grad])
        assert torch.isfinite(e.grad).all()
        assert (crf.transitions.grad[~torch.from_numpy(allowed[:K, :K])] == 0).all()
        assert (crf.start_transitions.grad[~torch.from_numpy(allowed[K, :K])] == 0).all()
        assert (crf.end_transitions.grad[~torch.from_numpy(allowed[:K, K + 1])] == 0).all()
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_constrained_partial_gradcheck_torch_backend():
    # The pure-torch path's gradient (through the -inf sums) against finite differences.
    K = 3
    em, mask, _ = _problem(8, B=3, T=4, K=K)
    crf = _layer(K, "torch")
    allowed = _allowed(K, 2)
    tags = _valid_tags(em, mask, _params(crf), allowed, 3)
    tags[1, 0] = -1
    names = ["transitions", "start_transitions", "end_transitions"]
    values = [getattr(crf, n).detach().clone().requires_grad_(True) for n in names]

    def f(e, *vals):
        return torch.func.functional_call(crf, dict(zip(names, vals)), (e, tags, mask),
                                          {"allowed": allowed})

    assert torch.autograd.gradcheck(f, (em.clone().requires_grad_(True), *values))


@pytest.mark.parametrize("backend", BACKENDS)
def test_impossible_tags_raise(backend):
    K = 3
    crf = _layer(K, backend)
    allowed = np.ones((K, K), bool)
    allowed[0, 1] = False
    em = torch.randn(1, 2, K, dtype=torch.float64)
    with pytest.raises(ValueError, match="no possible path"):
        crf(em, torch.tensor([[0, 1]]), allowed=allowed)
    with pytest.raises(ValueError, match="label_mask must have the shape"):
        crf(em, torch.tensor([[0, 0]]), label_mask=torch.ones(1, 3, K, dtype=torch.bool))
    with pytest.raises(TypeError, match="label_mask must be a bool"):
        crf(em, torch.tensor([[0, 0]]), label_mask=torch.ones(1, 2, K))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("constrained", [False, True])
def test_nbest_matches_enumeration(backend, constrained):
    K, k = 3, 5
    em, mask, lengths = _problem(11, B=6, T=4, K=K)
    crf = _layer(K, backend)
    params = _params(crf)
    allowed = _allowed(K, 4) if constrained else None
    got = crf.decode(em, mask, allowed=allowed, nbest=k)
    one = crf.decode(em, mask, allowed=allowed)
    for b, n in enumerate(lengths.tolist()):
        ranked = _ranked(em[b, :n].numpy(), params, allowed)
        assert got[b] == [list(y) for y, _ in ranked[:k]]
        assert got[b][0] == one[b]
    with pytest.raises(ValueError, match="nbest must be an int >= 1"):
        crf.decode(em, mask, nbest=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_marginals_are_differentiable_and_match_enumeration(backend):
    K = 3
    em, mask, lengths = _problem(13, B=4, T=4, K=K)
    crf = _layer(K, backend)
    params = _params(crf)
    allowed = _allowed(K, 5)
    e = em.clone().requires_grad_(True)
    probs = crf.marginals(e, mask, allowed=allowed)
    assert probs.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(crf.marginals(em, mask, allowed=allowed), probs.detach())
    for b, n in enumerate(lengths.tolist()):
        paths = _ranked(em[b, :n].numpy(), params, allowed)
        logz = _logsum(paths)
        node = np.zeros((n, K))
        for y, s in paths:
            node[np.arange(n), list(y)] += np.exp(s - logz)
        np.testing.assert_allclose(probs[b, :n].detach().numpy(), node, atol=1e-12)
    w = torch.randn(em.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def loss(x):
        return (crf.marginals(x, mask, allowed=allowed, differentiable=True) * w).sum()

    assert torch.autograd.gradcheck(loss, (em.clone().requires_grad_(True),))
    # The parameters' gradient against central differences, entry by entry.
    crf.zero_grad()
    loss(em).backward()
    h = 1e-6
    for p in (crf.transitions, crf.start_transitions, crf.end_transitions):
        for idx in np.ndindex(*p.shape):
            with torch.no_grad():
                old = p[idx].item()
                p[idx] = old + h
                up = loss(em).item()
                p[idx] = old - h
                down = loss(em).item()
                p[idx] = old
            assert p.grad[idx].item() == pytest.approx((up - down) / (2 * h), abs=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_the_compiled_path():  # pragma: no cover - no GPU in CI
    K = 4
    em, mask, _ = _problem(21, B=6, T=5, K=K)
    allowed = _allowed(K, 9)
    cpu = _layer(K, "compiled")
    gpu = _layer(K, "auto").cuda()
    tags = _valid_tags(em, mask, _params(cpu), allowed, 4)
    tags[2, 1] = -1
    want = cpu(em, tags, mask, "none", allowed=allowed)
    got = gpu(em.cuda(), tags.cuda(), mask.cuda(), "none", allowed=allowed)
    torch.testing.assert_close(got.cpu(), want.detach())
    assert gpu.decode(em.cuda(), mask.cuda(), allowed=allowed, nbest=3) == \
        cpu.decode(em, mask, allowed=allowed, nbest=3)
    torch.testing.assert_close(
        gpu.marginals(em.cuda(), mask.cuda(), allowed=allowed, differentiable=True).cpu(),
        cpu.marginals(em, mask, allowed=allowed).detach())
