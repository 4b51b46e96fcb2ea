"""Observation-conditioned transitions for the estimator (``CRF(transition_prefix=...)``).

With ``transition_prefix="B"`` every token feature whose name starts with ``"B"`` is
a *transition attribute* of its token: it scores the move from the previous token's
label into this token's label, with one weight per label pair::

    trans_t[i, j] = transitions[i, j] + sum_f x[t, f] * W[f, i, j]

(CRF++'s ``B`` template lines with macros, Wapiti's and crfsgd's bigram features).
The other features are state features as before.  A sequence's first token has no
incoming transition, so its transition attributes are ignored.  The prefix is matched
against a dict token's top-level keys and against the str attributes of a list token,
so the features of a CRF++ template (``U00:...``, ``B01:...``) split on ``"B"``.

The compiled kernels are fastcrf._kernels._edges (log-space recursions over one
transition pointer per position: the shared matrix wherever a token has no transition
attribute).  This module holds the Python side: splitting and encoding the
attributes (:func:`split_tokens`, :func:`encode_edges`), the L-BFGS objective
(:class:`EdgeObjective`, :func:`fit_lbfgs`) and the fitted model
(:class:`EdgeCRFModel`).
"""

from dataclasses import dataclass

import numpy as np

from ._features._encoding import AttributeVocabulary, EncodedSequences, encode, fit_encode
from ._kernels import _edges
from ._model import CRFModel, check_possible, check_scores
from ._parallel import effective_n_threads
from ._sample_weight import token_weights
from ._train.base import LayoutWeights
from ._train.lbfgs import minimize_objective, regularized
from ._training import (
    attribute_parts,
    drop_unit_values,
    n_threads_for,
    split_chain,
    state_gradient,
)

#: The trainers that learn transition attributes: every one.  L-BFGS runs
#: :class:`EdgeObjective`; the SGD and online engines step the weights of transition
#: attributes as more weight rows (fastcrf/_kernels/_sgd_engine.pyx, design note e;
#: _online_engine.pyx).
ALGORITHMS = ("lbfgs", "asgd", "l2sgd", "ap", "pa", "arow")
#: W's gradient is accumulated during the forward-backward pass in this many fixed
#: blocks of sequences (each its own (F, K, K) row, summed in order afterwards)...
GRADIENT_BLOCKS = 8
#: ... while those rows take at most this many doubles (512 MB); beyond, a second
#: pass over the stored lattice rows reduces it per attribute range instead.
MAX_BLOCK_DOUBLES = 1 << 26


def check_prefix(prefix):
    """``transition_prefix``: None or a non-empty str."""
    if prefix is None:
        return None
    if not isinstance(prefix, str):
        raise TypeError(f"transition_prefix must be a str or None, got {type(prefix).__name__}")
    if not prefix:
        raise ValueError("transition_prefix must be a non-empty str (every feature name "
                         "starts with ''), or None")
    return prefix


def split_tokens(X, prefix, name="X"):
    """``(X_state, X_edge)``: the features of ``X`` without / with names starting with
    ``prefix``, token by token (dict tokens split on their keys, list tokens on their
    str items).

    Raises
    ------
    TypeError
        For an ``X`` that is not lists of token features (an encoded one, a Dataset);
        the message calls it ``name``.
    """
    if isinstance(X, EncodedSequences) or hasattr(X, "encoded_for"):
        raise TypeError(f"transition_prefix needs {name} as lists of token features "
                        f"(dicts or lists of str), not an encoded {type(X).__name__}")
    X_state, X_edge = [], []
    for seq in X:
        s_seq, e_seq = [], []
        for token in seq:
            if isinstance(token, dict):
                # One test per key; a token without transition attributes is passed on
                # as it is (the encoders only read it).  Both parts keep the token's
                # key order.
                keys = [k for k in token if isinstance(k, str) and k.startswith(prefix)]
                if keys:
                    state = token.copy()
                    s_seq.append(state)
                    e_seq.append({k: state.pop(k) for k in keys})
                else:
                    s_seq.append(token)
                    e_seq.append({})
            elif isinstance(token, (list, tuple)):
                s_seq.append([a for a in token if not (isinstance(a, str)
                                                       and a.startswith(prefix))])
                e_seq.append([a for a in token if isinstance(a, str) and a.startswith(prefix)])
            else:
                s_seq.append(token)  # the encoder names what is wrong with it
                e_seq.append([])
        X_state.append(s_seq)
        X_edge.append(e_seq)
    return X_state, X_edge


def without_first_tokens(features):
    """``features`` without the entries of each sequence's first token (which has no
    incoming transition) and without those of value 0 (a False bool feature: they add
    nothing, and the kernels' fast product of exp(W[f]) takes unit values only), unit
    values dropped."""
    f = features
    tok = f.token_offsets
    first = f.seq_offsets[:-1]
    n = np.diff(tok)
    is_first = np.zeros(len(n), dtype=bool)
    is_first[first[first < len(n)]] = True
    keep = np.repeat(~is_first, n)
    if len(f.values):
        keep &= f.values != 0.0
    token = np.repeat(np.arange(len(n)), n)
    counts = np.bincount(token[keep], minlength=len(n))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    values = f.values[keep] if len(f.values) else f.values
    return drop_unit_values(EncodedSequences(
        np.ascontiguousarray(f.attr_ids[keep], dtype=np.int32), values, offsets,
        f.seq_offsets, f.n_attributes))


def encode_edges(X_edge, min_freq, n_jobs):
    """``(vocabulary, features)`` of the transition attributes of a training set."""
    vocabulary, features = fit_encode(X_edge, min_freq=min_freq, dense_values=False,
                                      n_jobs=n_jobs)
    return vocabulary, without_first_tokens(features)


def edge_args(features):
    """``(ids, values, token_offsets)``: how the compiled drivers take edge attributes."""
    return features.kernel_args()[:3]


# --------------------------------------------------------------------------- #
# CRF++ templates                                                               #
# --------------------------------------------------------------------------- #

#: The ``transition_prefix`` of a CRF++ template's features: its bigram lines' names
#: start with "B", its unigram lines' with "U".
TEMPLATE_PREFIX = "B"


def template_bigrams(template):
    """``(macros, plain)`` of a :class:`fastcrf.templates.Template`: a Template of its
    ``B`` lines with macros (None without any), and whether it has a ``B`` line
    without (CRF++'s label-bigram weights)."""
    from .templates import Template

    lines = [line for line in template.bigram if "%x[" in line]
    plain = any("%x[" not in line for line in template.bigram)
    return (Template("\n".join(lines) + "\n") if lines else None), plain


def template_features(template, macros, sentences):
    """``template.transform(sentences)`` with each token's attributes of the bigram
    template ``macros`` appended (CRF++ attaches those of token t to the move from
    t - 1 into t; a sentence's first token gets none)."""
    unigram = template.transform(sentences)
    bigram = macros.transform_bigram(sentences)
    return [[u + b for u, b in zip(useq, bseq)] for useq, bseq in zip(unigram, bigram)]


def encode_for(model, template, tokens):
    """The features a model reads of ``tokens`` (rows of token columns) through
    ``template``: its unigram attributes, plus its bigram ones when ``model`` has
    transition attributes (attributes the model never saw are dropped)."""
    if isinstance(model, EdgeCRFModel):
        macros, _ = template_bigrams(template)
        if macros is not None:
            return model.encode(template_features(template, macros, tokens))
        return model.encode(template.transform(tokens))
    _, encoded = template.encode(tokens, vocabulary=model.vocabulary)
    return model.encode(encoded)


def carry_edges(model, new, *, order=None, factor=1.0):
    """``new`` (a plain :class:`~fastcrf._model.CRFModel` made of ``model``: its labels
    in the order ``order``, or its weights times ``factor``) with ``model``'s
    transition attributes, if it has any, permuted and scaled the same way."""
    if not isinstance(model, EdgeCRFModel):
        return new
    W = model.edge_weights if order is None else model.edge_weights[:, order][:, :, order]
    return EdgeCRFModel(new.classes, new.vocabulary, new.layout, new.state, new.chain,
                        new.training_log, new.n_iter, new.metadata, new.constraints,
                        transition_prefix=model.transition_prefix,
                        edge_vocabulary=model.edge_vocabulary, edge_weights=W * factor)


# --------------------------------------------------------------------------- #
# Training (L-BFGS)                                                             #
# --------------------------------------------------------------------------- #

class EdgeObjective:
    """``x -> (f, grad)`` of the training objective without its L1 term, for
    ``x = [W (F*K*K), state (layout.size), chain (K*K + 2K)]``.

    As :class:`fastcrf._train.lbfgs._Objective`, plus the transition-attribute
    weights ``W``: one compiled pass gives log Z, the path scores, the node marginals,
    the chain gradient and ``W``'s gradient (in :data:`GRADIENT_BLOCKS` fixed blocks);
    the state gradient is then reduced per attribute range, in token order.  When
    the blocks would be too large (``blocks=False``), the pass stores its log-space
    lattice rows instead and a second pass reduces ``W``'s gradient per attribute
    range.
    """

    def __init__(self, data, edges, layout, chain_mask, c2, n_jobs, blocks=None,
                 forbidden=None):
        K = data.n_labels
        # The constraints' forbidden chain scores: -inf in the lattice, 0 (masked) in x.
        self.chain_fixed = None if forbidden is None else np.where(forbidden, -np.inf, 0.0)
        self.data, self.edges, self.layout = data, edges, layout
        # The constraints' forbidden chain scores: -inf in the lattice (whatever W adds
        # there), 0 (masked) in x.
        self.chain_fixed = None if forbidden is None else np.where(forbidden, -np.inf, 0.0)
        self.n_edge = edges.n_attributes * K * K
        self.n_state = layout.size
        self.chain_mask = None if np.all(chain_mask == 1.0) else chain_mask
        self.c2 = float(c2)
        self.n_jobs = n_jobs
        self.n_threads = effective_n_threads(n_jobs)
        self.state_parts = attribute_parts(data.features, self.n_threads)
        self.edge_parts = attribute_parts(edges, 4 * self.n_threads)
        self.token_weight = token_weights(data)
        n_tok, n_seq = data.features.n_tokens, data.n_sequences
        n_chunks = -(-n_seq // _chunk())
        self.logz, self.score = np.zeros(n_seq), np.zeros(n_seq)
        n_blocks = min(GRADIENT_BLOCKS, n_chunks)
        if blocks is None:
            blocks = n_blocks * self.n_edge <= MAX_BLOCK_DOUBLES
        self.marg = np.zeros((n_tok, K))
        rows = (0,) if blocks else (n_tok,)
        self.alpha, self.ebeta = np.zeros(rows + (K,)), np.zeros(rows + (K,))
        self.wgrad = np.zeros((n_blocks, self.n_edge) if blocks else (0, 0))
        self.chunks = np.zeros((n_chunks, K * K + 2 * K))
        self.grad = np.empty(self.n_edge + self.n_state + K * K + 2 * K)
        self.loss = np.nan

    def log_likelihood(self, x):
        """``(ll, grad)`` at ``x``; ``(-inf, grad)`` when a score is out of range."""
        data, L, grad = self.data, self.layout, self.grad
        K = data.n_labels
        nW, nS = self.n_edge, self.n_state
        W, state, chain = x[:nW], x[nW:nW + nS], x[nW + nS:]
        chain = np.asarray(chain, dtype=np.float64)
        if self.chain_fixed is not None:
            chain = chain + self.chain_fixed
        trans, start, end = split_chain(chain, K)
        self.chunks.fill(0.0)
        W = np.ascontiguousarray(W)
        status = _edges.forward_backward(
            L.kernel_args(np.ascontiguousarray(state)), data.features.kernel_args(),
            edge_args(self.edges), W, data.labels, trans, start, end, self.logz,
            self.score, self.marg, self.alpha, self.ebeta, self.chunks, self.wgrad,
            n_threads_for(self.n_jobs, data.n_sequences), data.weights)
        if status != 0:
            return -np.inf, grad
        diff = self.score - self.logz
        ll = float(diff.sum() if data.weights is None
                   else np.einsum("i,i->", diff, data.weights))
        state_gradient(data, self.marg, (L.stride, L.n_dense, L.tail_ptr, L.tail_labels),
                       grad[nW:nW + nS], self.n_jobs, self.state_parts, self.token_weight)
        np.sum(self.chunks, axis=0, out=grad[nW + nS:])
        if self.chain_mask is not None:
            grad[nW + nS:] *= self.chain_mask
        if self.wgrad.shape[0]:
            np.sum(self.wgrad, axis=0, out=grad[:nW])
        else:
            _edges.edge_gradient(data.features.kernel_args(), edge_args(self.edges), W,
                                 trans, self.alpha, self.ebeta, self.logz, data.labels,
                                 self.edge_parts, grad[:nW], self.n_threads, data.weights)
        return ll, grad

    def __call__(self, x):
        ll, grad = self.log_likelihood(x)
        f, _ = regularized(ll, grad, x, self.c2)
        if np.isfinite(ll):
            self.loss = -ll
        return f, grad


def log_likelihood(data, edges, layout, state, chain, W, n_jobs=None):
    """Total log-likelihood of ``data`` with transition attributes ``edges``: as
    :func:`fastcrf._training.log_likelihood_of_flat`, plus ``W`` (F, K, K); -inf when
    a score is out of range (SGD's calibration compares it)."""
    K = data.n_labels
    n = data.n_sequences
    trans, start, end = split_chain(np.asarray(chain, dtype=np.float64), K)
    logz, score = np.zeros(n), np.zeros(n)
    empty = np.zeros((0, K))
    status = _edges.forward_backward(
        layout.kernel_args(np.ascontiguousarray(state)), data.features.kernel_args(),
        edge_args(edges), np.ascontiguousarray(W, dtype=np.float64).reshape(-1),
        data.labels, trans, start, end, logz, score, empty, empty, empty, np.zeros((0, 0)),
        np.zeros((0, 0)), n_threads_for(n_jobs, n), data.weights)
    if status != 0:
        return -np.inf
    diff = score - logz
    return float(diff.sum() if data.weights is None else np.einsum("i,i->", diff, data.weights))


def _chunk():
    from ._kernels import _core
    return _core.chunk_size()


@dataclass(eq=False)
class EdgeWeights:
    """What :func:`fit_lbfgs` returns: the layout weights and ``W`` (F, K, K)."""

    layout_weights: LayoutWeights
    edge: np.ndarray


def fit_lbfgs(data, edges, settings, *, layout, chain_mask, n_jobs=None, callback=None,
              log=None, init=None, forbidden=None):
    """Train state, chain and transition-attribute weights by L-BFGS / OWL-QN.

    Parameters
    ----------
    data : TrainingData
    edges : EncodedSequences
        The transition attributes of ``data``'s tokens (:func:`encode_edges`).
    settings : fastcrf._train.lbfgs.LBFGSSettings
    layout, chain_mask, n_jobs, callback, log, forbidden
        As the trainer contract (:class:`fastcrf._train.base.Trainer`); the
        callback's ``weights_fn()`` gives the layout weights only.
    init : EdgeWeights, optional
        A warm start: the layout weights and ``W`` to start from.
    forbidden : ndarray of bool, optional
        The chain scores the constraints forbid: -inf in every lattice, whatever the
        transition attributes add (``chain_mask`` keeps them at 0).

    Returns
    -------
    weights : EdgeWeights
    n_iter : int
    """
    fun = EdgeObjective(data, edges, layout, chain_mask, settings.c2, n_jobs,
                        forbidden=forbidden)
    nW = fun.n_edge
    if init is not None:
        w0 = init.layout_weights
        init = LayoutWeights(np.concatenate((init.edge.ravel(), w0.state)), w0.chain)

    def on_iteration(iteration, info, weights_fn):
        if callback is None:
            return False

        def layout_weights():
            w = weights_fn()
            K = data.n_labels
            return LayoutWeights(w.state[nW:], w.chain, edge=w.state[:nW].reshape(
                edges.n_attributes, K, K).copy())
        return callback(iteration, info, layout_weights)

    w, n_iter = minimize_objective(fun, nW + layout.size, data.n_labels, settings,
                                   callback=on_iteration, log=log, init=init)
    K = data.n_labels
    edge = w.state[:nW].reshape(edges.n_attributes, K, K).copy()
    return EdgeWeights(LayoutWeights(w.state[nW:].copy(), w.chain), edge), n_iter


def _continuing_refused(continuing, algorithm):
    """The message refusing to continue a fit with transition attributes by
    ``algorithm`` (not 'lbfgs'), naming the call ``continuing`` the user made."""
    why = ("the SGD and perceptron trainers keep no state for transition attributes "
           "yet")
    if continuing == "partial_fit":
        return (f"partial_fit cannot go on from a fitted model with transition "
                f"attributes (transition_prefix, algorithm={algorithm!r}): {why}.  "
                f"Continue it with CRF(algorithm='lbfgs', warm_start=True).fit, or fit "
                f"afresh on all the data")
    if continuing == "warm_start":
        return (f"fit with warm_start=True and transition_prefix continues the fitted "
                f"model with algorithm='lbfgs' only, not algorithm={algorithm!r}: {why}.  "
                f"Set algorithm='lbfgs', or warm_start=False to fit afresh")
    return (f"continuing from a fitted model (init_model) with transition_prefix is "
            f"supported by algorithm='lbfgs' only, not algorithm={algorithm!r}: {why}")


class Fit:
    """The transition-attribute side of :func:`fastcrf._fit.fit_model`: it splits the
    token features (:meth:`start`), encodes the transition attributes once the state
    features are (:meth:`encode`), and trains and builds the model (:meth:`fit`)."""

    def __init__(self, prefix, state_tokens, edge_tokens):
        self.prefix = prefix
        self.state_tokens = state_tokens
        self.edge_tokens = edge_tokens
        self.vocabulary = self.features = None

    @classmethod
    def start(cls, p, X, X_dev, init_model, continuing=None):
        """None without ``transition_prefix``; else the split of ``X`` (and of
        ``X_dev``).

        ``continuing`` names the call that passed ``init_model``, for the message
        that refuses it: ``"partial_fit"``, ``"warm_start"`` (``fit`` of a
        ``warm_start=True`` CRF) or None (another caller's ``init_model``).

        Raises
        ------
        ValueError, TypeError
            For a prefix or a setting that transition attributes do not support.
        """
        prefix = check_prefix(p.get("transition_prefix"))
        if isinstance(init_model, EdgeCRFModel) and prefix != init_model.transition_prefix:
            raise ValueError(
                f"a warm start from a model with transition attributes needs its "
                f"transition_prefix={init_model.transition_prefix!r}, got "
                f"transition_prefix={prefix!r}")
        if prefix is None:
            return None
        if p["algorithm"] not in ALGORITHMS:
            raise ValueError(f"transition_prefix is not supported by "
                             f"algorithm={p['algorithm']!r}; use one of {ALGORITHMS}")
        if init_model is not None and p["algorithm"] != "lbfgs":
            raise ValueError(_continuing_refused(continuing, p["algorithm"]))
        fit = cls(prefix, *split_tokens(X, prefix))
        # A dev set (X_dev, or the share early_stopping held out) is split the same
        # way: its accuracy is that of Viterbi with the transition attributes.
        fit.dev_state_tokens, fit.dev_edge_tokens = (
            (None, None) if X_dev is None else split_tokens(X_dev, prefix, "X_dev"))
        fit.init_model = init_model if isinstance(init_model, EdgeCRFModel) else None
        return fit

    def encode(self, p):
        """Encode the transition attributes (with the state features' ``min_freq``);
        in a warm start, the model's attributes the new data lack are appended."""
        self.vocabulary, self.features = encode_edges(self.edge_tokens, p["min_freq"],
                                                      p["n_jobs"])
        self.edge_tokens = None
        if self.init_model is not None:
            self.vocabulary, self.features = extend_edges(
                self.init_model.edge_vocabulary, self.vocabulary, self.features)

    def dev(self, dev, n_jobs):
        """``(EdgeBatch, label codes)`` of the dev set: ``dev`` (its state features and
        labels, :func:`fastcrf._train.progress.encode_dev`) with its transition
        attributes encoded in the training vocabulary (unknown ones dropped, as
        :meth:`EdgeCRFModel.encode` does)."""
        features, labels = dev
        edges = encode(self.dev_edge_tokens, self.vocabulary, dense_values=False,
                       n_jobs=n_jobs)
        self.dev_edge_tokens = None
        return EdgeBatch(features, without_first_tokens(edges)), labels

    def carried(self, n_labels):
        """``W`` (n_attributes, K, K) of a warm start: the model's weights at its
        attributes and labels (:func:`fastcrf._warm.align_labels` puts its labels
        first), 0 for the new ones."""
        W = np.zeros((self.features.n_attributes, n_labels, n_labels))
        if self.init_model is not None:
            old = self.init_model
            k = len(old.classes)
            index = self.vocabulary.index
            rows = np.array([index[name] for name in old.edge_vocabulary.names],
                            dtype=np.int64)
            W[rows, :k, :k] = old.edge_weights
        return W

    def fit(self, data, p, classes, vocabulary, layout, mask, callback, progress, bar,
            random_state, init=None, allowed=None, forbidden=None):
        """Train with ``p["algorithm"]`` and return the :class:`EdgeCRFModel`
        (``init``: the carried layout weights of an L-BFGS warm start; ``allowed`` /
        ``forbidden``: the training constraints, as :func:`fastcrf._fit.fit_model`
        resolves them, or None).  Under early stopping the model holds the best dev
        epoch's weights (``progress.best_weights``, W included)."""
        limits = {} if forbidden is None else {"forbidden": forbidden}
        from ._train import TRAINERS
        from ._train.lbfgs import LBFGSSettings
        if init is not None:
            init = EdgeWeights(init, self.carried(data.n_labels))
        try:
            if p["algorithm"] == "lbfgs":
                weights, n_iter = fit_lbfgs(
                    data, self.features, LBFGSSettings.from_params(p), layout=layout,
                    chain_mask=mask, n_jobs=p["n_jobs"], callback=callback,
                    log=progress.message, init=init, **limits)
                w, edge = weights.layout_weights, weights.edge
            else:
                trainer = TRAINERS[p["algorithm"]]
                w, n_iter = trainer.fit(
                    data, trainer.Settings.from_params(p), layout=layout, chain_mask=mask,
                    random_state=random_state, n_jobs=p["n_jobs"], callback=callback,
                    log=progress.message, edges=self.features, **limits)
                edge = w.edge
        finally:
            if bar is not None:
                bar.close()
        best = progress.best_weights
        if best is not None:   # early stopping: the best dev epoch's weights, W too
            w, edge = best, best.edge
        return self.model(classes, vocabulary, layout, w, edge, progress.log, n_iter,
                          allowed, forbidden)

    def model(self, classes, vocabulary, layout, w, edge, log, n_iter, allowed,
              forbidden):
        """The :class:`EdgeCRFModel` of the weights ``w`` (LayoutWeights) and ``edge``
        (W)."""
        # The model keeps 0 where the constraints forbid, and applies them itself.
        chain = w.chain if forbidden is None else np.where(forbidden, 0.0, w.chain)
        return EdgeCRFModel(classes, vocabulary, layout, w.state, chain,
                            training_log=log, n_iter=n_iter,
                            constraints=allowed, transition_prefix=self.prefix,
                            edge_vocabulary=self.vocabulary, edge_weights=edge)


def extend_edges(old, vocabulary, features):
    """``(vocabulary, features)`` with the names of ``old`` (a model's transition
    attributes) that ``vocabulary`` lacks appended (count 0), as
    :func:`fastcrf._warm.extend_vocabulary` does for the state attributes."""
    present = set(vocabulary.names)
    extra = [name for name in old.names if name not in present]
    if not extra:
        return vocabulary, features
    counts = vocabulary.counts
    if counts is not None:
        counts = np.concatenate((np.asarray(counts), np.zeros(len(extra), np.int64)))
    merged = AttributeVocabulary(list(vocabulary.names) + extra, counts)
    f = features
    return merged, EncodedSequences(f.attr_ids, f.values, f.token_offsets, f.seq_offsets,
                                    len(merged.names))


# --------------------------------------------------------------------------- #
# The fitted model                                                              #
# --------------------------------------------------------------------------- #

class EdgeBatch:
    """An encoded batch of a model with transition attributes: the state features
    (whose attributes it also answers for: ``seq_offsets``, ``lengths``, ...) and
    ``edges``, the transition attributes."""

    def __init__(self, state, edges):
        self.state = state
        self.edges = edges

    def __getattr__(self, name):
        return getattr(self.__dict__["state"], name)


def _kernel_args(layout, state, chain, W, features):
    """The leading arguments of the compiled drivers for an :class:`EdgeBatch`."""
    trans, start, end = split_chain(np.asarray(chain, dtype=np.float64), layout.n_labels)
    return (layout.kernel_args(np.ascontiguousarray(state)), features.state.kernel_args(),
            edge_args(features.edges),
            np.ascontiguousarray(W, dtype=np.float64).reshape(-1), trans, start, end)


def viterbi_codes(layout, state, chain, W, features, n_jobs=None, *, strict=True):
    """Best label code of every token of an :class:`EdgeBatch`: ndarray (n_tokens,),
    int64; as :func:`fastcrf._model.viterbi_codes`, with the transition attributes'
    weights ``W`` (n_edge_attributes, K, K).  With ``strict=False`` a score beyond
    the kernels' limit gives None instead of an error (the dev accuracy of an
    epoch whose weights overflow is NaN)."""
    n_seq = features.n_sequences
    paths = np.zeros(features.n_tokens, dtype=np.int64)
    if n_seq == 0:
        return paths
    scores = np.zeros(n_seq)
    status = _edges.viterbi(*_kernel_args(layout, state, chain, W, features), paths, scores,
                            n_threads_for(n_jobs, n_seq))
    if status != 0 and not strict:
        return None
    check_scores(status)
    check_possible(scores)
    return paths


class EdgeCRFModel(CRFModel):
    """A :class:`fastcrf._model.CRFModel` with transition attributes.

    Parameters
    ----------
    classes, vocabulary, layout, state, chain, training_log, n_iter, metadata, constraints
        As :class:`fastcrf._model.CRFModel`.
    transition_prefix : str
        Token features whose names start with it are transition attributes.
    edge_vocabulary : AttributeVocabulary
        The transition attributes' names.
    edge_weights : ndarray of shape (n_edge_attributes, K, K)
        ``edge_weights[f, i, j]`` adds to the score of label i followed by j at the
        tokens that have attribute f.
    """

    def __init__(self, classes, vocabulary, layout, state, chain, training_log=None,
                 n_iter=0, metadata=None, constraints=None, *, transition_prefix,
                 edge_vocabulary, edge_weights):
        super().__init__(classes, vocabulary, layout, state, chain, training_log, n_iter,
                         metadata, constraints)
        K = len(self.classes)
        W = np.ascontiguousarray(edge_weights, dtype=np.float64)
        if W.shape != (len(edge_vocabulary), K, K):
            raise ValueError(f"edge_weights must have shape {(len(edge_vocabulary), K, K)}, "
                             f"got {W.shape}")
        self.transition_prefix = check_prefix(transition_prefix)
        self.edge_vocabulary = edge_vocabulary
        self.edge_weights = W
        edge_vocabulary._name_table()

    @property
    def n_weights(self):
        """Number of weights (state pairs, chain scores, transition attributes)."""
        return super().n_weights + self.edge_weights.size

    def n_nonzero(self):
        """Number of non-zero weights."""
        return super().n_nonzero() + int(np.count_nonzero(self.edge_weights))

    def edge_features(self):
        """``{(attribute, label_from, label_to): weight}`` for every non-zero weight of
        a transition attribute."""
        names, labels = self.edge_vocabulary.names, self.classes
        f, i, j = np.nonzero(self.edge_weights)
        return {(names[a], labels[b], labels[c]): float(self.edge_weights[a, b, c])
                for a, b, c in zip(f.tolist(), i.tolist(), j.tolist())}

    def encode(self, X, n_jobs=None):
        """``X``'s state and transition attributes in the model's ids: an
        :class:`EdgeBatch` (unknown attributes are dropped)."""
        if isinstance(X, EdgeBatch):
            return X
        X_state, X_edge = split_tokens(X, self.transition_prefix)
        state = super().encode(X_state, n_jobs)
        edges = encode(X_edge, self.edge_vocabulary, dense_values=False, n_jobs=n_jobs)
        return EdgeBatch(state, without_first_tokens(edges))

    def _kernel_args(self, features, chain):
        return _kernel_args(self.layout, self.state, chain, self.edge_weights, features)

    def viterbi_codes(self, features, n_jobs=None, constraints=None):
        """Best label code of every token of ``features``: ndarray (n_tokens,), int64."""
        return viterbi_codes(self.layout, self.state, self.constrained_chain(constraints),
                             self.edge_weights, features, n_jobs)

    def _forward(self, features, chain, codes, n_jobs, marginals):
        K = len(self.classes)
        n_seq, n_tok = features.n_sequences, features.n_tokens
        logz, score = np.zeros(n_seq), np.zeros(n_seq)
        marg = np.zeros((n_tok, K) if marginals else (0, K))
        empty = np.zeros((0, K))
        args = self._kernel_args(features, chain)
        status = _edges.forward_backward(
            *args[:4], codes, *args[4:], logz, score, marg, empty, empty,
            np.zeros((0, 0)), np.zeros((0, 0)), n_threads_for(n_jobs, n_seq))
        check_scores(status)
        return logz, score, marg

    def marginals(self, features, n_jobs=None, constraints=None, forced=None):
        """Label marginals of every token of ``features``: ndarray (n_tokens, K)."""
        if forced is not None:
            from . import _lattice_queries

            return _lattice_queries.forced_marginals(self, features, forced, n_jobs,
                                                     constraints)
        if features.n_sequences == 0:
            return np.zeros((features.n_tokens, len(self.classes)))
        logz, _, marg = self._forward(features, self.constrained_chain(constraints),
                                      np.zeros(0, dtype=np.int64), n_jobs, True)
        check_possible(logz)
        return marg

    def _log_probabilities(self, features, codes, chain, n_jobs=None):
        if features.n_sequences == 0:
            return np.zeros(0)
        logz, score, _ = self._forward(features, chain,
                                       np.ascontiguousarray(codes, dtype=np.int64), n_jobs,
                                       False)
        return score - logz
