"""fastcrf.torch.CRF: pytorch-crf compatibility, gradients, oracles, extras."""

import copy
import io
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="fastcrf.torch needs PyTorch (pip install fastcrf[torch])"
)

from brute_force import enumerate_chain, path_score  # noqa: E402

from fastcrf.torch import CRF, allowed_transitions  # noqa: E402

REDUCTIONS = ["none", "sum", "mean", "token_mean"]


def _torchcrf():
    return pytest.importorskip("torchcrf", reason="pytorch-crf is not installed")


def _problem(seed, B, T, K, batch_first, dtype=torch.float64, scale=1.0):
    """Random emissions, tags and a random prefix mask (lengths in [1, T], one == T)."""
    g = torch.Generator().manual_seed(seed)
    em = torch.randn(B, T, K, generator=g, dtype=torch.float64).mul_(scale).to(dtype)
    tags = torch.randint(0, K, (B, T), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T)[None, :] < lengths[:, None]
    if not batch_first:
        em, tags, mask = (x.transpose(0, 1).contiguous() for x in (em, tags, mask))
    return em, tags, mask, lengths


def _layer(K, batch_first, dtype=torch.float64, seed=0, scale=1.0, **kwargs):
    torch.manual_seed(seed)
    crf = CRF(K, batch_first=batch_first, **kwargs).to(dtype)
    with torch.no_grad():  # wider than the default init, so that mistakes show
        for p in crf.parameters():
            p.uniform_(-scale, scale)
    return crf


def _run(crf, em, tags, mask, reduction, weights=None):
    """ll and the gradients of (weights * ll).sum() w.r.t. emissions and parameters."""
    crf.zero_grad()
    e = em.clone().requires_grad_(True)
    ll = crf(e, tags, mask, reduction=reduction)
    (ll * weights if weights is not None else ll).sum().backward()
    params = (crf.transitions, crf.start_transitions, crf.end_transitions)
    return [ll.detach(), e.grad] + [p.grad.clone() for p in params]


# --------------------------------------------------------------------------- #
# Import hygiene.                                                               #
# --------------------------------------------------------------------------- #

def _python(code, tmp_path):
    # A fresh interpreter, run outside the source tree, whose uncompiled fastcrf/
    # would otherwise shadow the installed package.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_import_fastcrf_does_not_import_torch(tmp_path):
    _python("import sys, fastcrf; assert 'torch' not in sys.modules, 'torch imported'",
            tmp_path)


def test_import_without_torch_says_how_to_install(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "try:\n    import fastcrf.torch\nexcept ModuleNotFoundError as e:\n"
        "    assert 'pip install fastcrf[torch]' in str(e), e\nelse:\n    raise SystemExit(1)"
    )
    _python(code, tmp_path)


# --------------------------------------------------------------------------- #
# Construction: same as pytorch-crf.                                            #
# --------------------------------------------------------------------------- #

def test_init_matches_pytorch_crf():
    crf = CRF(10)
    assert crf.num_tags == 10 and crf.batch_first is False
    shapes = {"start_transitions": (10,), "end_transitions": (10,), "transitions": (10, 10)}
    named = dict(crf.named_parameters())
    assert set(named) == set(shapes)
    for name, shape in shapes.items():
        p = named[name]
        assert isinstance(p, torch.nn.Parameter) and p.shape == shape
        assert p.dtype == torch.float32
        assert -0.1 <= p.min().item() and p.max().item() <= 0.1
    assert repr(crf) == "CRF(num_tags=10)"


@pytest.mark.parametrize("n", [0, -3])
def test_nonpositive_num_tags(n):
    with pytest.raises(ValueError, match=f"invalid number of tags: {n}"):
        CRF(n)


def test_bad_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        CRF(3, backend="cuda")


# --------------------------------------------------------------------------- #
# Equality with pytorch-crf.                                                    #
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_matches_pytorch_crf(batch_first, reduction, dtype):
    torchcrf = _torchcrf()
    B, T, K = 9, 7, 5
    em, tags, mask, _ = _problem(1, B, T, K, batch_first, dtype, scale=2.0)
    mine = _layer(K, batch_first, dtype, scale=1.0)
    ref = torchcrf.CRF(K, batch_first=batch_first).to(dtype)
    ref.load_state_dict(mine.state_dict())
    # Unequal per-sequence weights exercise the regrouped parameter gradients.
    weights = torch.linspace(0.5, 2.0, B, dtype=dtype) if reduction == "none" else None
    got = _run(mine, em, tags, mask, reduction, weights)
    want = _run(ref, em, tags, mask, reduction, weights)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for name, a, b in zip(["ll", "emissions", "transitions", "start", "end"], got, want):
        assert a.dtype == b.dtype == dtype, name
        torch.testing.assert_close(a, b, **tol, msg=name)


@pytest.mark.filterwarnings("ignore:where received a uint8")  # pytorch-crf's own default mask
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("seed", range(3))
def test_decode_matches_pytorch_crf(batch_first, seed):
    torchcrf = _torchcrf()
    K = 6
    em, _, mask, lengths = _problem(seed, 20, 15, K, batch_first, torch.float32, scale=2.0)
    mine = _layer(K, batch_first, torch.float32, seed=seed)
    ref = torchcrf.CRF(K, batch_first=batch_first)
    ref.load_state_dict(mine.state_dict())
    got = mine.decode(em, mask)
    assert got == ref.decode(em, mask)
    assert [len(p) for p in got] == lengths.tolist()
    assert mine.decode(em) == ref.decode(em)  # no mask


def test_state_dict_interchanges_with_pytorch_crf():
    torchcrf = _torchcrf()
    ref = torchcrf.CRF(4)
    mine = CRF(4)
    mine.load_state_dict(ref.state_dict())
    ref2 = torchcrf.CRF(4)
    ref2.load_state_dict(mine.state_dict())
    for a, b in zip(ref.parameters(), ref2.parameters()):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- #
# Brute force (no pytorch-crf needed).                                          #
# --------------------------------------------------------------------------- #

def _numpy_params(crf):
    return [p.detach().double().numpy() for p in
            (crf.transitions, crf.start_transitions, crf.end_transitions)]


@pytest.mark.parametrize("backend", ["compiled", "torch"])
def test_log_likelihood_and_marginals_match_brute_force(backend):
    B, T, K = 6, 4, 3
    em, tags, mask, lengths = _problem(3, B, T, K, True, scale=2.0)
    crf = _layer(K, True, scale=2.0, backend=backend)
    trans, start, end = _numpy_params(crf)
    ll = crf(em, tags, mask, reduction="none").detach()
    probs = crf.marginals(em, mask)
    for b in range(B):
        n = int(lengths[b])
        e = em[b, :n].numpy()
        logz, node, _, _, _ = enumerate_chain(e, trans, start, end)
        want = path_score(e, tags[b, :n].tolist(), trans, start, end) - logz
        np.testing.assert_allclose(float(ll[b]), want, rtol=1e-10)
        np.testing.assert_allclose(probs[b, :n].numpy(), node, atol=1e-12)
        assert (probs[b, n:] == 0).all()


@pytest.mark.parametrize("backend", ["compiled", "torch"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
def test_constrained_decode_matches_brute_force(backend, batch_first):
    B, T, K = 10, 4, 4
    em, _, mask, lengths = _problem(4, B, T, K, batch_first, scale=3.0)
    crf = _layer(K, batch_first, scale=2.0, backend=backend)
    trans, start, end = _numpy_params(crf)
    rng = np.random.default_rng(4)
    allowed = np.ones((K + 2, K + 2), bool)
    allowed[:K, :K] = rng.random((K, K)) < 0.6
    allowed[np.arange(K), np.arange(K)] = True  # every length stays feasible
    allowed[K, 0] = False  # may not start with tag 0
    allowed[1, K + 1] = False  # may not end with tag 1
    paths = crf.decode(em, mask, allowed=torch.from_numpy(allowed))
    assert crf.decode(em, mask, allowed=allowed) == paths  # numpy accepted too
    em_bf = em if batch_first else em.transpose(0, 1)
    st = np.where(allowed[K, :K], start, -np.inf)
    en = np.where(allowed[:K, K + 1], end, -np.inf)
    for b in range(B):
        n = int(lengths[b])
        *_, best, _ = enumerate_chain(em_bf[b, :n].numpy(), trans, st, en, allowed[:K, :K])
        assert paths[b] == best


@pytest.mark.parametrize("backend", ["compiled", "torch"])
def test_decode_without_any_allowed_path_raises(backend):
    crf = CRF(2, batch_first=True, backend=backend)
    allowed = torch.zeros(2, 2, dtype=torch.bool)  # no transition at all
    with pytest.raises(ValueError, match=r"sequence\(s\) \[0\] have no possible label path"):
        crf.decode(torch.randn(1, 3, 2), allowed=allowed)


# --------------------------------------------------------------------------- #
# Gradients.                                                                    #
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("backend", ["compiled", "torch"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(backend, batch_first, reduction):
    K = 3
    em, tags, mask, _ = _problem(5, 4, 5, K, batch_first)
    crf = _layer(K, batch_first, backend=backend)
    names = ["transitions", "start_transitions", "end_transitions"]
    params = [getattr(crf, n).detach().clone().requires_grad_(True) for n in names]

    def f(e, *values):
        # The layer as a function of its parameters, which gradcheck perturbs.
        return torch.func.functional_call(crf, dict(zip(names, values)), (e, tags, mask),
                                          {"reduction": reduction})

    assert torch.autograd.gradcheck(f, (em.requires_grad_(True), *params))


def test_compiled_gradient_equals_torch_backend_float32():
    K = 5
    em, tags, mask, _ = _problem(6, 12, 9, K, False, torch.float32, scale=2.0)
    a = _run(_layer(K, False, torch.float32, backend="compiled"), em, tags, mask, "mean")
    b = _run(_layer(K, False, torch.float32, backend="torch"), em, tags, mask, "mean")
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_only_emissions_or_only_parameters_require_grad():
    K = 4
    em, tags, mask, _ = _problem(7, 5, 6, K, True)
    crf = _layer(K, True)
    full = _run(crf, em, tags, mask, "sum")
    crf.requires_grad_(False)
    e = em.clone().requires_grad_(True)
    crf(e, tags, mask).backward()
    torch.testing.assert_close(e.grad, full[1])
    crf.requires_grad_(True)
    crf.zero_grad()
    crf(em, tags, mask).backward()  # emissions without grad
    torch.testing.assert_close(crf.transitions.grad, full[2])


def test_backward_twice_with_retain_graph_accumulates():
    K = 4
    em, tags, mask, _ = _problem(8, 5, 6, K, True)
    crf = _layer(K, True)
    e = em.clone().requires_grad_(True)
    ll = crf(e, tags, mask)
    ll.backward(retain_graph=True)
    first = e.grad.clone(), crf.transitions.grad.clone()
    ll.backward()
    torch.testing.assert_close(e.grad, 2 * first[0])
    torch.testing.assert_close(crf.transitions.grad, 2 * first[1])


def test_double_backward_is_refused_on_the_compiled_path_only():
    K = 3
    em, tags, mask, _ = _problem(9, 3, 4, K, True)
    e = em.clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="compiled backward cannot be differentiated"):
        torch.autograd.grad(_layer(K, True)(e, tags, mask), e, create_graph=True)
    crf = _layer(K, True, backend="torch")
    assert torch.autograd.gradgradcheck(lambda x: crf(x, tags, mask), (e,))


def test_no_grad_mode_and_in_place_detection():
    K = 4
    em, tags, mask, _ = _problem(10, 5, 6, K, True)
    crf = _layer(K, True)
    e = em.clone().requires_grad_(True)
    with torch.no_grad():
        ll = crf(e, tags, mask, reduction="none")
    assert ll.grad_fn is None and not ll.requires_grad
    torch.testing.assert_close(ll, crf(e, tags, mask, reduction="none").detach())
    # An input changed in place after forward is reported, not silently used.
    x = em.clone().requires_grad_(True)
    y = x * 1.0
    out = crf(y, tags, mask)
    with torch.no_grad():
        y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


# --------------------------------------------------------------------------- #
# Layouts, dtypes, masks.                                                       #
# --------------------------------------------------------------------------- #

def test_layouts_and_non_contiguous_inputs_agree():
    K = 5
    em, tags, mask, _ = _problem(11, 6, 8, K, True)
    crf_bf = _layer(K, True)
    crf_tf = _layer(K, False)
    want = _run(crf_bf, em, tags, mask, "none")
    got = _run(crf_tf, em.transpose(0, 1), tags.t(), mask.t(), "none")  # non-contiguous views
    for a, b in zip(want, got):
        torch.testing.assert_close(a, b if a.dim() != 3 else b.transpose(0, 1))
    wide = torch.randn(6, 8, 2 * K, dtype=torch.float64)
    wide[..., ::2] = em  # a strided view of the same values
    for a, b in zip(want, _run(crf_bf, wide[..., ::2], tags, mask, "none")):
        torch.testing.assert_close(a, b)
    assert crf_bf.decode(em, mask) == crf_tf.decode(em.transpose(0, 1), mask.t())
    torch.testing.assert_close(crf_bf.marginals(em, mask),
                               crf_tf.marginals(em.transpose(0, 1), mask.t()).transpose(0, 1))


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.uint8, torch.int64])
def test_mask_dtypes(mask_dtype):
    K = 4
    em, tags, mask, _ = _problem(12, 5, 6, K, True)
    crf = _layer(K, True)
    want = crf(em, tags, mask, reduction="none")
    got = crf(em, tags, mask.to(mask_dtype), reduction="none")
    torch.testing.assert_close(got, want)
    assert crf.decode(em, mask.to(mask_dtype)) == crf.decode(em, mask)


def test_float32_matches_float64():
    K = 6
    em, tags, mask, _ = _problem(13, 10, 12, K, True, scale=3.0)
    crf64 = _layer(K, True, torch.float64, scale=1.0)
    crf32 = copy.deepcopy(crf64).float()
    a = _run(crf64, em, tags, mask, "none")
    b = _run(crf32, em.float(), tags, mask, "none")
    for x, y in zip(a, b):
        assert y.dtype == torch.float32
        torch.testing.assert_close(y.double(), x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(crf32.marginals(em.float(), mask).numpy(),
                               crf64.marginals(em, mask).numpy(), atol=1e-5)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(half):
    K = 4
    em, tags, mask, _ = _problem(14, 5, 6, K, True, torch.float32)
    crf = _layer(K, True, torch.float32)
    e = em.to(half).requires_grad_(True)
    ll = crf(e, tags, mask, reduction="none")
    assert ll.dtype == torch.float32
    torch.testing.assert_close(ll, crf(e.detach().float(), tags, mask, reduction="none"))
    ll.sum().backward()
    assert e.grad.dtype == half
    assert crf.marginals(e, mask).dtype == torch.float32
    crf.to(half)  # half parameters too: still float32 inside, gradients in half
    crf.zero_grad()
    crf(e, tags, mask).backward()
    assert crf.transitions.grad.dtype == half


def test_float32_emissions_with_float64_parameters_promote_like_torch():
    K = 3
    em, tags, mask, _ = _problem(15, 4, 5, K, True, torch.float32)
    crf = _layer(K, True, torch.float64)
    e = em.clone().requires_grad_(True)
    ll = crf(e, tags, mask)
    assert ll.dtype == torch.float64
    ll.backward()
    assert e.grad.dtype == torch.float32 and crf.transitions.grad.dtype == torch.float64


def test_decode_and_marginals_accept_tensors_that_require_grad():
    K = 4
    em, _, mask, _ = _problem(16, 3, 5, K, True)
    crf = _layer(K, True)
    e = em.clone().requires_grad_(True)
    assert crf.decode(e, mask) == crf.decode(em, mask)
    p = crf.marginals(e, mask)
    assert p.requires_grad   # differentiable (tests/test_torch_constrained.py)
    torch.testing.assert_close(p.detach(), crf.marginals(em, mask))
    torch.testing.assert_close(p.sum(-1), mask.double())


def test_n_jobs_does_not_change_results():
    K = 5
    em, tags, mask, _ = _problem(17, 64, 20, K, True)
    out = []
    for n_jobs in (1, 2):
        crf = _layer(K, True, n_jobs=n_jobs)
        out.append(_run(crf, em, tags, mask, "sum") + [crf.decode(em, mask)])
    for a, b in zip(*out):
        assert a == b if isinstance(a, list) else torch.equal(a, b)


# --------------------------------------------------------------------------- #
# Validation: pytorch-crf's messages, and fastcrf's extra checks.               #
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("backend", ["compiled", "torch"])
def test_validation_errors(backend):
    crf = CRF(3, backend=backend)  # time-first
    em = torch.randn(4, 2, 3)
    tags = torch.zeros(4, 2, dtype=torch.long)
    cases = [
        (lambda: crf(torch.randn(4, 2), tags), ValueError,
         "emissions must have dimension of 3, got 2"),
        (lambda: crf(torch.randn(4, 2, 5), tags), ValueError,
         "expected last dimension of emissions is 3, got 5"),
        (lambda: crf(em, torch.zeros(2, 4, dtype=torch.long)), ValueError,
         r"the first two dimensions of emissions and tags must match, "
         r"got \(4, 2\) and \(2, 4\)"),
        (lambda: crf(em, tags, torch.ones(4, 3, dtype=torch.bool)), ValueError,
         r"the first two dimensions of emissions and mask must match, "
         r"got \(4, 2\) and \(4, 3\)"),
        (lambda: crf(em, tags, torch.tensor([[0, 1]] * 4, dtype=torch.uint8)), ValueError,
         "mask of the first timestep must all be on"),
        (lambda: crf(em, tags, torch.tensor([[1, 1], [0, 1], [1, 1], [0, 0]])), ValueError,
         r"mask must be on for a prefix of each sequence.*sequence\(s\) \[0\]"),
        (lambda: crf(em, tags, reduction="avg"), ValueError, "invalid reduction: avg"),
        (lambda: crf(em, tags, torch.ones(4, 2)), TypeError, "mask must be a bool or integer"),
        (lambda: crf(em.long(), tags), TypeError, "emissions must be a floating-point"),
        (lambda: crf(em, tags.float()), TypeError, "tags must be an integer tensor"),
        (lambda: crf(em, tags + 3), ValueError, r"tags must lie in \[0, 2\]"),
        (lambda: crf(torch.randn(0, 2, 3), tags[:0]), ValueError, "at least one time step"),
        (lambda: crf.decode(torch.randn(4, 2)), ValueError,
         "emissions must have dimension of 3"),
        (lambda: crf.decode(em, torch.ones(4, 3)), ValueError,
         "first two dimensions of emissions and mask"),
        (lambda: crf.decode(em, allowed=torch.ones(2, 2, dtype=torch.bool)), ValueError,
         r"allowed must have shape \(3, 3\) or \(5, 5\)"),
        (lambda: crf.marginals(em, torch.tensor([[0, 1]] * 4)), ValueError,
         "mask of the first timestep must all be on"),
    ]
    for call, exc, message in cases:
        with pytest.raises(exc, match=message):
            call()


def test_tags_outside_the_mask_are_ignored():
    K = 3
    em, tags, mask, _ = _problem(18, 4, 5, K, True)
    crf = _layer(K, True)
    padded = tags.masked_fill(~mask, -1)
    torch.testing.assert_close(crf(em, padded, mask), crf(em, tags, mask))


def test_compiled_backend_refuses_other_devices():
    crf = CRF(3, batch_first=True, backend="compiled")
    em = torch.randn(2, 4, 3, device="meta")
    with pytest.raises(ValueError, match="backend='compiled' runs on CPU tensors only"):
        crf.marginals(em)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_the_torch_implementation():  # pragma: no cover - no GPU in CI
    K = 4
    em, tags, mask, _ = _problem(19, 5, 6, K, True)
    cpu = _layer(K, True)
    gpu = _layer(K, True).cuda()
    got = gpu(em.cuda(), tags.cuda(), mask.cuda()).cpu()
    torch.testing.assert_close(got, cpu(em, tags, mask))
    assert gpu.decode(em.cuda(), mask.cuda()) == cpu.decode(em, mask)


# --------------------------------------------------------------------------- #
# allowed_transitions.                                                          #
# --------------------------------------------------------------------------- #

def test_allowed_transitions_bio():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    ok = allowed_transitions(labels, "BIO")
    assert ok.dtype == torch.bool and ok.shape == (7, 7)
    S, E = 5, 6
    assert ok[0, 1] and ok[1, 2] and ok[2, 2] and ok[2, 3] and ok[4, 0]
    assert not ok[0, 2] and not ok[1, 4] and not ok[2, 4]  # I-x only after B-x / I-x
    assert ok[S, 0] and ok[S, 1] and not ok[S, 2]  # cannot start inside a chunk
    assert ok[:5, E].all()  # any tag may end a sequence
    assert not ok[:, S].any() and not ok[E, :].any()


def test_allowed_transitions_iob1_and_bioes():
    ok = allowed_transitions({0: "O", 1: "I-PER", 2: "B-PER", 3: "I-LOC"}, "IOB1")
    assert ok[0, 1] and ok[3, 1] and ok[1, 2] and ok[2, 2]
    assert not ok[0, 2] and not ok[3, 2]  # B-x only after B-x / I-x
    assert ok[4, 1] and not ok[4, 2]
    labels = ["O", "B-X", "I-X", "E-X", "S-X", "B-Y", "E-Y"]
    bioes = allowed_transitions(labels, "BIOES")
    bioul = allowed_transitions([lab.replace("E-", "L-").replace("S-", "U-") for lab in labels],
                                "BIOUL")
    assert torch.equal(bioes, bioul)
    assert bioes[1, 2] and bioes[2, 3] and bioes[1, 3] and bioes[3, 0] and bioes[4, 5]
    assert not bioes[1, 0] and not bioes[1, 6] and not bioes[0, 2] and not bioes[3, 2]
    assert not bioes[1, 8] and not bioes[2, 8] and bioes[3, 8] and bioes[4, 8]  # END
    assert bioes[7, 1] and bioes[7, 4] and not bioes[7, 2] and not bioes[7, 3]  # START


def test_allowed_transitions_errors_and_foreign_labels():
    with pytest.raises(ValueError, match="scheme must be one of"):
        allowed_transitions(["O"], "BILOU")
    with pytest.raises(ValueError, match="keys 0 .. K-1"):
        allowed_transitions({1: "O"})
    ok = allowed_transitions(["<pad>", "O", "B-X"], "BIO")
    assert not ok[0].any() and not ok[:, 0].any()


@pytest.mark.parametrize("backend", ["compiled", "torch"])
def test_bio_constrained_decode_yields_valid_chunks(backend):
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = _layer(len(labels), True, torch.float32, scale=3.0, backend=backend)
    em, _, mask, _ = _problem(20, 50, 12, len(labels), True, torch.float32, scale=3.0)
    free = crf.decode(em, mask)
    paths = crf.decode(em, mask, allowed=allowed_transitions(labels, "BIO"))

    def valid(p):
        return labels[p[0]][0] != "I" and all(
            labels[b][0] != "I" or labels[a][1:] == labels[b][1:] and labels[a][0] in "BI"
            for a, b in zip(p, p[1:]))

    assert not all(valid(p) for p in free)  # the constraint has something to do
    assert all(valid(p) for p in paths)


# --------------------------------------------------------------------------- #
# Training and serialisation.                                                   #
# --------------------------------------------------------------------------- #

def test_training_loop_decreases_the_loss():
    torch.manual_seed(0)
    B, T, D, K = 16, 10, 8, 4
    x = torch.randn(B, T, D)
    true_tags = x[..., :K].argmax(-1)  # learnable from x by a linear map
    lengths = torch.randint(3, T + 1, (B,))
    mask = torch.arange(T)[None, :] < lengths[:, None]
    encoder = torch.nn.Linear(D, K)
    crf = CRF(K, batch_first=True)
    opt = torch.optim.Adam([*encoder.parameters(), *crf.parameters()], lr=0.05)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = -crf(encoder(x), true_tags, mask, reduction="mean")
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(np.isfinite(losses))


def test_pickle_and_state_dict_round_trip():
    K = 4
    em, tags, mask, _ = _problem(21, 3, 5, K, False, torch.float32)
    crf = _layer(K, False, torch.float32, n_jobs=1)
    want = crf(em, tags, mask)
    clone = pickle.loads(pickle.dumps(crf))
    settings = (clone.num_tags, clone.batch_first, clone.n_jobs, clone.backend)
    assert settings == (K, False, 1, "auto")
    torch.testing.assert_close(clone(em, tags, mask), want)
    buf = io.BytesIO()
    torch.save(crf.state_dict(), buf)
    buf.seek(0)
    fresh = CRF(K)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(fresh(em, tags, mask), want)
    assert fresh.decode(em, mask) == crf.decode(em, mask)


def test_neg_inf_emissions_mean_impossible_on_the_compiled_path():
    # pytorch-crf accepts -inf emissions (label masking); so do both backends here.
    torch.manual_seed(0)
    em = torch.randn(3, 4, 3, dtype=torch.float64)
    em[:, :, 2] = float("-inf")
    em[2, 3:] = float("nan")  # masked off: ignored
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[2, 3:] = False
    tags = torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0], [0, 0, 1, 0]])
    out = {}
    for backend in ("compiled", "torch"):
        crf = CRF(3, batch_first=True, backend=backend)
        torch.manual_seed(1)
        crf.reset_parameters()
        e = em.clone().requires_grad_(True)
        ll = crf(torch.where(mask[..., None], e, 0.0) if backend == "torch" else e, tags, mask,
                 reduction="none")
        ll.sum().backward()
        paths = crf.decode(em if backend == "compiled" else torch.nan_to_num(em, nan=0.0), mask)
        out[backend] = (ll.detach(), crf.transitions.grad.clone(), paths)
    torch.testing.assert_close(out["compiled"][0], out["torch"][0])
    torch.testing.assert_close(out["compiled"][1], out["torch"][1])
    assert out["compiled"][2] == out["torch"][2]
    assert all(2 not in p for p in out["compiled"][2])
