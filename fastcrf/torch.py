"""A PyTorch CRF layer backed by fastcrf's compiled kernels: a drop-in for pytorch-crf.

``fastcrf.torch.CRF`` has the API of ``torchcrf.CRF`` (pytorch-crf 0.7): the same
constructor, parameter names, shapes and initialisation, ``forward`` returning the
log-likelihood with the same reductions, ``decode`` returning lists of tags, and the
same ``ValueError`` messages.  Code written for ``torchcrf.CRF`` runs unchanged after
changing the import.  On CPU tensors the log-likelihood, its gradient and Viterbi run
in the compiled OpenMP kernels (no Python loop over time steps); on other devices an
equivalent pure-torch implementation runs instead.

Design notes:

a. Gradients flow through :class:`_LogLikelihood`, a ``torch.autograd.Function``.  Its
   forward calls :func:`fastcrf.log_likelihood` once, which returns the
   log-likelihood and its gradient together (one forward-backward pass); the
   gradient is kept until ``backward``, which only scales it by ``grad_output``.
   Without grad mode (``torch.no_grad``, evaluation) only the forward pass runs.
b. The kernels want (B, T, K) C-contiguous float32/float64 emissions.  A contiguous
   batch-first tensor of the computation dtype is read in place through
   ``Tensor.numpy()``; a time-first tensor (``batch_first=False``) is transposed and
   that one copy is made in torch.
c. This module is ``fastcrf.torch``; ``import torch`` below is an absolute import and
   resolves to PyTorch.  ``import fastcrf`` never imports this module.
"""

try:
    import torch
    from torch import nn
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "fastcrf.torch needs PyTorch: `pip install fastcrf[torch]` (on a CPU-only "
        "machine, `pip install torch --index-url https://download.pytorch.org/whl/cpu` "
        "first avoids downloading the CUDA build)",
        name=exc.name,
    ) from exc

from typing import Optional

import numpy as np

from ._constraints import allowed_transitions as _allowed_transitions_np
from ._dense import log_likelihood as _log_likelihood
from ._dense import marginals as _marginals
from ._dense import viterbi as _viterbi
from ._validation import check_allowed

__all__ = ["CRF", "allowed_transitions"]

_REDUCTIONS = ("none", "sum", "mean", "token_mean")
_BACKENDS = ("auto", "compiled", "torch")


def allowed_transitions(labels, scheme="BIO"):
    """Transition constraints of a chunk tagging scheme, for :meth:`CRF.decode`.

    Parameters
    ----------
    labels : sequence of str, or mapping of int to str
        The label of each tag index, e.g. ``["O", "B-PER", "I-PER"]`` or AllenNLP's
        ``{0: "O", 1: "B-PER", 2: "I-PER"}``.  A label is a one-letter tag,
        optionally followed by ``-`` or ``_`` and an entity type.  A label whose tag
        is not part of the scheme (e.g. ``"<pad>"``) is never allowed, as in AllenNLP.
    scheme : {"BIO", "IOB1", "BIOES", "BIOUL"}, default="BIO"
        ``"BIOUL"`` is BIOES with AllenNLP's letters (L for E, U for S).

    Returns
    -------
    torch.Tensor of bool, shape (K + 2, K + 2)
        AllenNLP's layout: ``allowed[i, j]`` permits tag j after tag i, row K lists
        the tags a sequence may start with and column K + 1 those it may end with.

    Examples
    --------
    >>> from fastcrf.torch import CRF, allowed_transitions
    >>> labels = ["O", "B-PER", "I-PER"]
    >>> crf = CRF(len(labels), batch_first=True)
    >>> paths = crf.decode(torch.randn(2, 4, 3), allowed=allowed_transitions(labels))
    >>> any(a == 0 and b == 2 for p in paths for a, b in zip(p, p[1:]))  # no O -> I-PER
    False
    """
    return torch.from_numpy(_allowed_transitions_np(labels, scheme))


class _LogLikelihood(torch.autograd.Function):
    """Per-sequence log-likelihood; forward and backward run the compiled kernels.

    Inputs: emissions (B, T, K) CPU, C-contiguous, float32/float64; transitions (K, K),
    start (K,), end (K,) CPU tensors (-inf where forbidden); tags (B, T) int64 (-1:
    unknown) and lengths (B,) int64 ndarrays; ``label_mask`` (B, T, K) bool ndarray or
    None (the numerator's labels); ``want_grad`` (compute the gradient now, for a
    later backward) and ``n_jobs``.  Output: (B,) tensor in the emissions' dtype.
    """

    @staticmethod
    def forward(ctx, emissions, transitions, start, end, tags, lengths, label_mask,
                want_grad, n_jobs):
        # Inputs may require grad; .detach() shares their memory, .numpy() too.
        em = emissions.detach().numpy()
        params = [p.detach().numpy() for p in (transitions, start, end)]
        if not want_grad:
            return torch.from_numpy(
                _log_likelihood(em, tags, *params, lengths, label_mask=label_mask,
                                n_jobs=n_jobs)
            )
        ll, grads = _log_likelihood(em, tags, *params, lengths, label_mask=label_mask,
                                    n_jobs=n_jobs, return_grad=True)
        # Saved through save_for_backward so that an in-place change of an input
        # between forward and backward is reported by autograd.
        ctx.save_for_backward(emissions, transitions, start, end)
        ctx.grads = grads
        ctx.tags, ctx.lengths, ctx.n_jobs = tags, lengths, n_jobs
        ctx.label_mask = label_mask
        return torch.from_numpy(ll)

    @staticmethod
    def backward(ctx, grad_ll):
        # Grad mode is on here exactly when backward was asked to build a graph
        # (create_graph=True).  The kernels' gradient is not differentiable: refuse
        # rather than return a gradient whose own gradient would silently miss the
        # CRF's second-order terms (as torch's once_differentiable would, when
        # grad_output itself does not require grad).
        if torch.is_grad_enabled():
            raise RuntimeError(
                "fastcrf.torch.CRF: the compiled backward cannot be differentiated "
                "(double backward, create_graph=True); use CRF(..., backend='torch')")
        emissions, transitions, start, end = ctx.saved_tensors
        grads = ctx.grads
        g = grad_ll.to(emissions.dtype)
        grad_em = grad_tr = grad_st = grad_en = None
        if ctx.needs_input_grad[0]:
            grad_em = torch.from_numpy(grads.emissions) * g[:, None, None]
        if any(ctx.needs_input_grad[1:4]):
            B = g.shape[0]
            if B and bool((g == g[0]).all()):
                # reduction 'sum', 'mean' or 'token_mean': one scale for the batch sums.
                c = g[0]
                tr, st, en = (torch.from_numpy(x) * c
                              for x in (grads.transitions, grads.start, grads.end))
            else:
                tr, st, en = _weighted_param_grads(ctx, emissions, transitions, start, end, g)
            grad_tr = tr.to(transitions.dtype)
            grad_st = st.to(start.dtype)
            grad_en = en.to(end.dtype)
        return grad_em, grad_tr, grad_st, grad_en, None, None, None, None, None


def _weighted_param_grads(ctx, emissions, transitions, start, end, g):
    """``sum_b g[b] * d ll[b] / d params`` when ``g`` is not one value for the batch.

    The kernels only return parameter gradients summed over a batch, so sequences are
    grouped by their weight and each group's sum is recomputed and scaled: one more
    forward-backward pass over the batch, only for unequal weights (reduction='none'
    followed by a weighted sum).
    """
    K = transitions.shape[0]
    em = emissions.detach().numpy()
    params = [p.detach().numpy() for p in (transitions, start, end)]
    out = [np.zeros((K, K)), np.zeros(K), np.zeros(K)]
    weights = g.detach().to(torch.float64).numpy()
    for w in np.unique(weights):
        if w == 0:
            continue
        idx = np.flatnonzero(weights == w)
        mask = None if ctx.label_mask is None else ctx.label_mask[idx]
        _, sub = _log_likelihood(em[idx], ctx.tags[idx], *params, ctx.lengths[idx],
                                 label_mask=mask, n_jobs=ctx.n_jobs, return_grad=True)
        for acc, part in zip(out, (sub.transitions, sub.start, sub.end)):
            acc += w * part
    return (torch.from_numpy(x) for x in out)


# --------------------------------------------------------------------------- #
# Pure-torch implementation: the same quantities with torch ops and autograd,    #
# for tensors on other devices than the CPU (and for backend="torch").           #
# --------------------------------------------------------------------------- #

def _logsumexp(x, dim):
    """``torch.logsumexp`` whose gradient is 0, not NaN, where every term is -inf.

    Forbidden transitions and partial labels make whole sums -inf (a tag no allowed
    path reaches); torch's own backward then computes exp(-inf - -inf) = NaN, which
    a zero upstream gradient does not cancel.
    """
    m = x.amax(dim, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.exp(x - m).sum(dim)
    out = torch.log(s.clamp_min(torch.finfo(x.dtype).tiny)) + m.squeeze(dim)
    return torch.where(s > 0, out, torch.full_like(out, float("-inf")))


def _torch_log_partition(em, on, trans, start, end, keep_alpha=False):
    """log Z (B,) of batch-first ``em`` (B, T, K) with prefix mask ``on`` (B, T)."""
    alpha = start + em[:, 0]
    alphas = [alpha]
    for t in range(1, em.shape[1]):
        # nxt[b, j] = logsumexp_i alpha[b, i] + trans[i, j] + em[b, t, j]
        nxt = _logsumexp(alpha.unsqueeze(2) + trans, dim=1) + em[:, t]
        alpha = torch.where(on[:, t, None], nxt, alpha)
        alphas.append(alpha)
    logz = _logsumexp(alpha + end, dim=1)
    return (logz, alphas) if keep_alpha else logz


def _torch_partial_log_likelihood(em, tags, on, trans, start, end, label_mask):
    """Per-sequence log-likelihood (B,) of a partial labelling (tags -1: unknown;
    ``label_mask`` (B, T, K) or None: the labels the numerator allows): the log-sum
    over the compatible paths (the clamped lattice) minus log Z."""
    K = em.shape[2]
    known = on & (tags >= 0)
    ok = ~known[:, :, None] | (torch.arange(K, device=em.device) == tags[:, :, None])
    if label_mask is not None:
        ok = ok & (label_mask | ~on[:, :, None])
    clamped = em.masked_fill(~ok, float("-inf"))
    return (_torch_log_partition(clamped, on, trans, start, end)
            - _torch_log_partition(em, on, trans, start, end))


def _torch_log_likelihood(em, tags, on, lengths, trans, start, end):
    """Per-sequence log-likelihood (B,), differentiable by autograd."""
    B, T, _ = em.shape
    y = torch.where(on, tags, 0)  # entries past a length may hold anything (e.g. -1)
    emit = em.gather(2, y.unsqueeze(2)).squeeze(2)
    score = start[y[:, 0]] + torch.where(on, emit, 0).sum(1)
    if T > 1:
        score = score + torch.where(on[:, 1:], trans[y[:, :-1], y[:, 1:]], 0).sum(1)
    last = y.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
    score = score + end[last]
    return score - _torch_log_partition(em, on, trans, start, end)


def _torch_marginals(em, on, lengths, trans, start, end):
    """Node marginals (B, T, K), zero past each length, by log-space forward-backward."""
    logz, alphas = _torch_log_partition(em, on, trans, start, end, keep_alpha=True)
    T = em.shape[1]
    beta = end.expand_as(alphas[-1])
    out = [None] * T
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            # beta_t[i] = logsumexp_j trans[i, j] + em[t+1, j] + beta_{t+1}[j]; at a
            # sequence's last position beta is the end score.
            nxt = _logsumexp(trans + (em[:, t + 1] + beta).unsqueeze(1), dim=2)
            beta = torch.where((t + 1 < lengths)[:, None], nxt, end.expand_as(nxt))
        p = torch.exp(alphas[t] + beta - logz[:, None])
        out[t] = torch.where(on[:, t, None], p, 0)
    return torch.stack(out, dim=1)


def _torch_viterbi(em, on, trans, start, end):
    """Best paths (B, T), -1 padded, and their scores (B,)."""
    B, T, _ = em.shape
    score = start + em[:, 0]
    history = []
    for t in range(1, T):
        best, arg = (score.unsqueeze(2) + trans).max(dim=1)
        history.append(arg)
        score = torch.where(on[:, t, None], best + em[:, t], score)
    best_score, cur = (score + end).max(dim=1)
    paths = torch.full((B, T), -1, dtype=torch.long, device=em.device)
    # Walk back from the end of the padded batch: past a sequence's length `cur`
    # stays its best last label; inside it, follow the back-pointers.
    for t in range(T - 1, -1, -1):
        paths[:, t] = torch.where(on[:, t], cur, -1)
        if t > 0:
            prev = history[t - 1].gather(1, cur.unsqueeze(1)).squeeze(1)
            cur = torch.where(on[:, t], prev, cur)
    return paths, best_score


# --------------------------------------------------------------------------- #
# The layer.                                                                     #
# --------------------------------------------------------------------------- #

class CRF(nn.Module):
    """Linear-chain conditional random field layer, API-compatible with pytorch-crf.

    ``forward`` computes the log-likelihood of tag sequences given emission scores
    (maximise it, i.e. minimise its negative), ``decode`` finds the best tag
    sequences with the Viterbi algorithm.  On CPU tensors both run in fastcrf's
    compiled OpenMP kernels; on other devices a pure-torch implementation of the same
    computation runs instead (see ``backend``).

    Parameters
    ----------
    num_tags : int
        Number of tags K.
    batch_first : bool, default=False
        Emissions of shape (batch, seq_len, K) instead of (seq_len, batch, K), and
        tags and masks of shape (batch, seq_len) instead of (seq_len, batch).
        Batch-first is faster on CPU: the kernels read a contiguous (B, T, K)
        tensor in place, while a time-first tensor is transposed by a copy.
    n_jobs : int or None, default=None
        OpenMP threads of the compiled kernels.  None follows
        ``torch.get_num_threads()``; otherwise scikit-learn's convention (-1 all,
        1 serial, -2 all but one).  Results do not depend on it.
    backend : {"auto", "compiled", "torch"}, default="auto"
        ``"auto"`` runs the compiled kernels on CPU tensors and the pure-torch
        implementation on any other device (e.g. CUDA); ``"compiled"`` raises a
        ``ValueError`` for non-CPU tensors; ``"torch"`` always runs the pure-torch
        implementation (it supports double backward, the compiled path does not).

    Attributes
    ----------
    start_transitions : torch.nn.Parameter of shape (num_tags,)
        Score of starting with each tag.
    end_transitions : torch.nn.Parameter of shape (num_tags,)
        Score of ending with each tag.
    transitions : torch.nn.Parameter of shape (num_tags, num_tags)
        ``transitions[i, j]`` scores tag j following tag i.

    Notes
    -----
    Differences from pytorch-crf:

    - A mask must be a prefix per sequence (ones, then zeros), with the first step on
      (pytorch-crf's ``'mask of the first timestep must all be on'`` error is kept).
      pytorch-crf accepts a mask with holes but scores it inconsistently; here it is
      a ``ValueError``.  Masks may be bool or any integer dtype (nonzero is on).
    - float16/bfloat16 emissions or parameters are computed in float32 (as torch's
      type promotion with float32 parameters would give), and the result is float32.
      float32 emissions with float64 parameters are computed in float64.
    - -inf emissions or parameters mean "impossible" on both paths, as in
      pytorch-crf: those tags never appear and take no probability.  NaN or +inf
      where the mask is on raise a ``ValueError`` on the compiled path, where
      pytorch-crf would return NaN; masked-off positions may hold anything.  Tags of
      -1 where the mask is on mark unknown tags (partial labels; compiled path).
    - Extras: :meth:`marginals` (differentiable), ``forward(..., allowed=...)`` for
      constrained training and ``decode(..., allowed=...)`` for constrained decoding
      (see :func:`allowed_transitions`), partial labels in ``forward`` (tags of -1 or
      a ``label_mask``, on both paths), ``decode(..., nbest=k)`` (exact k best),
      ``n_jobs`` and ``backend``.
    - The compiled backward is not differentiable (no double backward, e.g. no
      gradient penalties on it); use ``backend="torch"`` for that.
    - Viterbi ties are broken as :func:`fastcrf.viterbi` does (lowest tag index), which
      may differ from ``torch.max`` in pytorch-crf; with real-valued scores ties
      essentially never occur.
    - ``torch.compile`` treats the compiled path as a graph break (it calls numpy).

    Examples
    --------
    >>> import torch
    >>> from fastcrf.torch import CRF
    >>> crf = CRF(5, batch_first=True)
    >>> emissions = torch.randn(2, 3, 5, requires_grad=True)
    >>> tags = torch.tensor([[0, 1, 2], [3, 4, 0]])
    >>> mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    >>> loss = -crf(emissions, tags, mask)
    >>> loss.backward()
    >>> [len(p) for p in crf.decode(emissions, mask)]
    [3, 2]
    """

    def __init__(self, num_tags: int, batch_first: bool = False, *,
                 n_jobs: Optional[int] = None, backend: str = "auto") -> None:
        if num_tags <= 0:
            raise ValueError(f"invalid number of tags: {num_tags}")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        super().__init__()
        self.num_tags = num_tags
        self.batch_first = batch_first
        self.n_jobs = n_jobs
        self.backend = backend
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the three parameters uniformly in [-0.1, 0.1] (as pytorch-crf)."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"

    # ----------------------------------------------------------------- public API

    def forward(self, emissions: torch.Tensor, tags: torch.LongTensor,
                mask: Optional[torch.Tensor] = None,
                reduction: str = "sum", *, allowed=None,
                label_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Conditional log-likelihood of tag sequences given emission scores.

        Parameters
        ----------
        emissions : torch.Tensor of shape (seq_len, batch, K), or (batch, seq_len, K)
            with ``batch_first``
            Emission scores, floating point.
        tags : torch.Tensor of int of shape (seq_len, batch) or (batch, seq_len)
            Gold tags in ``[0, K)``, or -1 where the tag is unknown (partial labels:
            the likelihood sums over every compatible path); entries where the mask
            is off are ignored.
        mask : torch.Tensor of bool or int of the shape of ``tags``, optional
            Which positions are real: a prefix per sequence, first step on.  All on
            by default.
        reduction : {"none", "sum", "mean", "token_mean"}, default="sum"
            Per-sequence values, their sum, their mean over the batch, or their sum
            divided by the number of unmasked tokens.
        allowed : bool tensor or array of shape (K, K) or (K + 2, K + 2), optional
            Constrained training: the transitions (and, in the (K + 2, K + 2) form,
            starts and ends) it forbids score -inf, in the tags' score and the
            normaliser alike, which then sums over the allowed paths only; the
            forbidden parameters get no gradient.
        label_mask : bool tensor of shape (seq_len, batch, K) or (batch, seq_len, K),
            optional
            Partial labels: the tags each position may take in the numerator (the
            tags narrow it further where they are not -1).

        Returns
        -------
        torch.Tensor
            Shape (batch,) with ``reduction="none"``, () otherwise.  Differentiable
            with respect to ``emissions`` and the three parameters.

        Raises
        ------
        ValueError
            When a sequence's tags are impossible (e.g. forbidden by ``allowed``) or
            ``allowed`` leaves a sequence no path at all.
        """
        self._validate(emissions, tags=tags, mask=mask)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"invalid reduction: {reduction}")
        em, on, lengths = self._prepare(emissions, mask)
        if tags.dtype == torch.bool or tags.is_floating_point() or tags.is_complex():
            raise TypeError(f"tags must be an integer tensor, got {tags.dtype}")
        tags = tags if self.batch_first else tags.transpose(0, 1)
        trans, start, end = self._params(em.dtype)
        if allowed is not None:
            trans, start, end = _constrain(allowed, trans, start, end)
        lmask = self._label_mask(label_mask, em)
        if self._compiled(emissions):
            params = (self.transitions, self.start_transitions, self.end_transitions)
            want_grad = torch.is_grad_enabled() and (
                em.requires_grad or any(p.requires_grad for p in params))
            ll = _LogLikelihood.apply(
                em.contiguous(), trans, start, end, tags.detach().numpy(),
                lengths.numpy(), None if lmask is None else lmask.numpy(), want_grad,
                self._n_jobs())
        else:
            tags = tags.long().to(em.device)
            used = tags[on]
            if used.numel() and bool(((used < -1) | (used >= self.num_tags)).any()):
                raise ValueError(
                    f"tags must lie in [0, {self.num_tags - 1}], or be -1 (unknown), "
                    "where the mask is on")
            if lmask is None and not bool((used < 0).any()):
                ll = _torch_log_likelihood(em, tags, on, lengths, trans, start, end)
            else:
                ll = _torch_partial_log_likelihood(em, tags, on, trans, start, end, lmask)
            if bool(torch.isneginf(ll).any()):
                bad = torch.nonzero(torch.isneginf(ll)).flatten()[:10].tolist()
                raise ValueError(f"sequence(s) {bad} have no possible path compatible "
                                 "with tags and label_mask (or none at all): every one "
                                 "has a -inf score (from the scores or allowed)")

        if reduction == "none":
            return ll
        if reduction == "sum":
            return ll.sum()
        if reduction == "mean":
            return ll.mean()
        return ll.sum() / lengths.sum().to(ll.dtype)

    def decode(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None,
               *, allowed=None, nbest: Optional[int] = None):
        """Most likely tag sequence of each sequence (Viterbi), or the ``nbest`` best.

        Parameters
        ----------
        emissions : torch.Tensor of shape (seq_len, batch, K), or (batch, seq_len, K)
            with ``batch_first``
        mask : torch.Tensor of bool or int of shape (seq_len, batch) or
            (batch, seq_len), optional
            A prefix per sequence, first step on; all on by default.
        allowed : bool tensor or array of shape (K, K) or (K + 2, K + 2), optional
            Constrained decoding: ``allowed[i, j]`` False forbids tag j after tag i.
            In the (K + 2, K + 2) form (AllenNLP's, as built by
            :func:`allowed_transitions`) row K constrains the first tag and column
            K + 1 the last one.
        nbest : int >= 1, optional
            The exact k best tag sequences (list Viterbi, :func:`fastcrf.viterbi`
            with ``k``), in descending score.  They run in the compiled kernel on
            every device (tensors elsewhere than the CPU are copied to it).

        Returns
        -------
        list of list of int
            The best tags of each sequence, as long as its mask.  With ``nbest``: a
            list per sequence of up to ``nbest`` such tag lists (fewer when fewer
            paths are possible).

        Raises
        ------
        ValueError
            When ``allowed`` leaves a sequence without any permitted path.
        """
        self._validate(emissions, mask=mask)
        em, on, lengths = self._prepare(emissions, mask)
        trans, start, end = (p.detach() for p in self._params(em.dtype))
        if nbest is not None:
            if isinstance(nbest, bool) or not isinstance(nbest, int) or nbest < 1:
                raise ValueError(f"nbest must be an int >= 1, got {nbest!r}")
            if isinstance(allowed, torch.Tensor):
                allowed = allowed.detach().cpu().numpy()
            paths, scores = _viterbi(
                em.detach().cpu().numpy(), trans.cpu().numpy(), start.cpu().numpy(),
                end.cpu().numpy(), lengths.cpu().numpy(), allowed=allowed, k=nbest,
                n_jobs=self._n_jobs())
            return [[paths[b, r, :n].tolist() for r in range(nbest)
                     if scores[b, r] > -np.inf]
                    for b, n in enumerate(lengths.tolist())]
        if self._compiled(emissions):
            if isinstance(allowed, torch.Tensor):
                allowed = allowed.detach().cpu().numpy()
            paths, _ = _viterbi(em.detach().numpy(), trans.numpy(), start.numpy(),
                                end.numpy(), lengths.numpy(), allowed=allowed,
                                n_jobs=self._n_jobs())
            paths = paths.tolist()
        else:
            em = em.detach()
            if allowed is not None:
                trans, start, end = _constrain(allowed, trans, start, end)
            best, scores = _torch_viterbi(em, on, trans, start, end)
            if allowed is not None and torch.isneginf(scores).any():
                bad = torch.nonzero(torch.isneginf(scores)).flatten()[:10].tolist()
                raise ValueError(f"sequence(s) {bad} have no possible label path: every "
                                 "one has a -inf score (from the scores or allowed)")
            paths = best.tolist()
        return [row[:n] for row, n in zip(paths, lengths.tolist())]

    def marginals(self, emissions: torch.Tensor,
                  mask: Optional[torch.Tensor] = None, *, allowed=None,
                  differentiable: Optional[bool] = None) -> torch.Tensor:
        """Posterior probability of each tag at each position, ``P(y_t = k)``.

        Parameters
        ----------
        emissions : torch.Tensor of shape (seq_len, batch, K), or (batch, seq_len, K)
            with ``batch_first``
        mask : torch.Tensor of bool or int of shape (seq_len, batch) or
            (batch, seq_len), optional
            A prefix per sequence, first step on; all on by default.
        allowed : bool tensor or array of shape (K, K) or (K + 2, K + 2), optional
            The marginals over the allowed paths only (see :meth:`decode`).
        differentiable : bool, optional
            Whether the result is differentiable with respect to ``emissions`` and
            the three parameters (so that it can be part of a loss).  By default it
            is when grad mode is on and ``emissions`` requires grad.  Differentiable
            marginals come from the pure-torch forward-backward, which autograd
            differentiates (on every device; slower than the compiled kernels, which
            compute the others on CPU tensors).

        Returns
        -------
        torch.Tensor of the shape and layout of ``emissions``
            Rows sum to 1 where the mask is on and are 0 where it is off.
        """
        self._validate(emissions, mask=mask)
        em, on, lengths = self._prepare(emissions, mask)
        compiled = self._compiled(emissions)   # also refuses what the backend cannot run
        if differentiable is None:
            differentiable = torch.is_grad_enabled() and emissions.requires_grad
        if differentiable:
            trans, start, end = self._params(em.dtype)
            if allowed is not None:
                trans, start, end = _constrain(allowed, trans, start, end)
            probs = _torch_marginals(em, on, lengths, trans, start, end)
            return probs if self.batch_first else probs.transpose(0, 1)
        trans, start, end = (p.detach() for p in self._params(em.dtype))
        if allowed is not None:
            trans, start, end = _constrain(allowed, trans, start, end)
        if compiled:
            probs = torch.from_numpy(_marginals(
                em.detach().numpy(), trans.numpy(), start.numpy(), end.numpy(),
                lengths.numpy(), n_jobs=self._n_jobs()))
        else:
            probs = _torch_marginals(em.detach(), on, lengths, trans, start, end)
        return probs if self.batch_first else probs.transpose(0, 1)

    # ----------------------------------------------------------------- helpers

    def _validate(self, emissions, tags=None, mask=None):
        # Same checks and messages as pytorch-crf's _validate.
        if emissions.dim() != 3:
            raise ValueError(f"emissions must have dimension of 3, got {emissions.dim()}")
        if emissions.size(2) != self.num_tags:
            raise ValueError(
                f"expected last dimension of emissions is {self.num_tags}, "
                f"got {emissions.size(2)}")
        if tags is not None and emissions.shape[:2] != tags.shape:
            raise ValueError(
                "the first two dimensions of emissions and tags must match, "
                f"got {tuple(emissions.shape[:2])} and {tuple(tags.shape)}")
        if emissions.size(1 if self.batch_first else 0) == 0:
            raise ValueError("emissions must have at least one time step")
        if mask is not None:
            if emissions.shape[:2] != mask.shape:
                raise ValueError(
                    "the first two dimensions of emissions and mask must match, "
                    f"got {tuple(emissions.shape[:2])} and {tuple(mask.shape)}")
            if mask.is_floating_point() or mask.is_complex():
                raise TypeError(f"mask must be a bool or integer tensor, got {mask.dtype}")
            first = mask[:, 0] if self.batch_first else mask[0]
            if not bool(first.all()):
                raise ValueError("mask of the first timestep must all be on")

    def _prepare(self, emissions, mask):
        """Batch-first emissions in the computation dtype, mask (B, T) and lengths (B,)."""
        if not emissions.is_floating_point():
            raise TypeError(f"emissions must be a floating-point tensor, got {emissions.dtype}")
        em = emissions if self.batch_first else emissions.transpose(0, 1)
        em = em.to(self._compute_dtype(emissions.dtype))
        B, T, _ = em.shape
        steps = torch.arange(T, device=em.device)
        if mask is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=em.device)
            return em, steps.expand(B, T) < T, lengths
        on = (mask if self.batch_first else mask.transpose(0, 1)) != 0
        on = on.to(em.device)
        lengths = on.sum(1)
        # The kernels take lengths: every sequence must be a prefix of the batch.
        if not torch.equal(on, steps < lengths[:, None]):
            bad = torch.nonzero((on != (steps < lengths[:, None])).any(1)).flatten()
            raise ValueError(
                "mask must be on for a prefix of each sequence and off after it (no "
                f"gaps, no left padding); sequence(s) {bad[:10].tolist()} are not")
        return em, on, lengths

    def _label_mask(self, label_mask, em):
        """``label_mask`` batch-first, bool, on ``em``'s device (or None), checked."""
        if label_mask is None:
            return None
        if not isinstance(label_mask, torch.Tensor):
            label_mask = torch.as_tensor(np.asarray(label_mask))
        if label_mask.dtype != torch.bool:
            raise TypeError(f"label_mask must be a bool tensor, got {label_mask.dtype}")
        lm = label_mask if self.batch_first else label_mask.transpose(0, 1)
        if tuple(lm.shape) != tuple(em.shape):
            raise ValueError("label_mask must have the shape of the emissions, got "
                             f"{tuple(label_mask.shape)}")
        return lm.to(em.device).contiguous()

    def _compute_dtype(self, emissions_dtype):
        # torch's promotion of emissions and parameters, as pytorch-crf computes;
        # half precisions are computed in float32 (the kernels have no half types,
        # and a log-sum-exp chain is not accurate in them).
        dtype = torch.promote_types(emissions_dtype, self.transitions.dtype)
        return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype

    def _params(self, dtype):
        # .to() is a no-op (same tensor, autograd intact) when the dtype matches.
        return (self.transitions.to(dtype), self.start_transitions.to(dtype),
                self.end_transitions.to(dtype))

    def _compiled(self, emissions):
        """Whether the compiled kernels run (CPU), or the pure-torch implementation."""
        if self.backend == "torch":
            return False
        on_cpu = emissions.device.type == "cpu" and self.transitions.device.type == "cpu"
        if self.backend == "compiled" and not on_cpu:
            raise ValueError(
                f"backend='compiled' runs on CPU tensors only, got emissions on "
                f"{emissions.device} and parameters on {self.transitions.device}; use "
                "backend='auto' to run the pure-torch implementation there")
        return on_cpu

    def _n_jobs(self):
        return torch.get_num_threads() if self.n_jobs is None else self.n_jobs


def _constrain(allowed, trans, start, end):
    """Scores with forbidden transitions, starts and ends set to -inf."""
    if isinstance(allowed, torch.Tensor):
        allowed = allowed.detach().cpu().numpy()
    ok, st_ok, en_ok = (torch.as_tensor(a, device=trans.device)
                        for a in check_allowed(allowed, trans.shape[0]))
    ninf = float("-inf")
    return (trans.masked_fill(~ok, ninf), start.masked_fill(~st_ok, ninf),
            end.masked_fill(~en_ok, ninf))
