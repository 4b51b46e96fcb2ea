"""A fitted CRF: labels, attribute vocabulary, state layout, weights and metadata.

:class:`CRFModel` is what :meth:`fastcrf.CRF.fit` produces and what a model file
holds (fastcrf._persist); the estimator keeps one and forwards its prediction
methods to it.  Prediction runs the compiled sparse drivers (fastcrf._kernels._sparse) over
encoded sequences (Viterbi here, forward-backward through
fastcrf._training.forward_backward); :func:`check_scores` is the one place where their
status codes become prediction errors.
"""

import numpy as np

from ._kernels import _sparse
from ._features._encoding import EncodedSequences, encode
from ._constraints import constraint_matrix
from ._layout import StateLayout
from ._training import drop_unit_values, forward_backward, n_threads_for, split_chain


# A model holds K x K transition weights.  A file that lists K labels but far fewer
# weights (a crafted one: 40,000 labels, one feature) would make the reader allocate
# gigabytes before anything else is wrong with it; up to 2**26 transitions (K = 8,192,
# 512 MB) is allowed whatever the file holds, beyond that only as many as it has.
MAX_FREE_TRANSITIONS = 1 << 26


def check_label_count(n_labels, n_weights, bad):
    """Refuse a model file whose label count would need far more memory than it holds.

    Parameters
    ----------
    n_labels : int
        The labels the file lists.
    n_weights : int
        The weights (or features) the file holds.
    bad : callable
        ``bad(message)`` returns the ValueError to raise (it names the file).
    """
    if n_labels * n_labels > max(int(n_weights), MAX_FREE_TRANSITIONS):
        raise bad(f"it lists {n_labels:,} labels, whose {n_labels:,} x {n_labels:,} "
                  f"transition weights are far more than the {int(n_weights):,} weights "
                  "it holds: it is malformed")


class TrainingLog:
    """What ``fit`` reported, one dict per epoch / iteration.

    Attributes
    ----------
    iterations : list of dict
        Keys: ``num``, ``loss`` (sum of -log p(y|x) over the training set),
        ``objective`` (loss plus regularisation), ``feature_norm``, ``time``
        (seconds since fit started) and, with a dev set, ``dev_accuracy``.
    algorithm : str
        The algorithm that trained the model.
    best_iteration : int or None
        Under ``early_stopping``: the epoch / iteration whose weights the model kept.
    step_rule : str or None
        The SGD step rule of an 'asgd' / 'l2sgd' fit ('calibrated', 'adagrad',
        'adagrad_row'; saved in the model file): a warm start from the file carries
        ``eta0`` only from a calibrated one.  None for the other trainers and for
        files written before it was saved.
    """

    #: Logs pickled or saved before the step rule was kept have none.
    step_rule = None

    def __init__(self, algorithm):
        self.algorithm = algorithm
        self.iterations = []
        self.best_iteration = None

    @property
    def last_iteration(self):
        """The last entry of :attr:`iterations` (an empty dict before any)."""
        return self.iterations[-1] if self.iterations else {}

    def __len__(self):
        return len(self.iterations)

    def copy(self):
        """A copy whose list and entries are independent of this log."""
        log = TrainingLog(self.algorithm)
        log.iterations = [dict(entry) for entry in self.iterations]
        log.best_iteration = self.best_iteration
        log.step_rule = self.step_rule
        return log

    def __repr__(self):
        return f"TrainingLog(algorithm={self.algorithm!r}, iterations={len(self)})"


def check_scores(status):
    """Raise the error of a prediction kernel's non-zero ``status`` (-1: some score is
    not finite or exceeds the kernels' limit, 1e150)."""
    if status != 0:
        raise ValueError("X produces scores that are not finite or exceed 1e150 in "
                         "magnitude: are some feature values huge?")


def viterbi_codes(layout, state, chain, features, n_jobs=None, *, strict=True):
    """Best label code of every token of an encoded batch: ndarray (n_tokens,), int64.

    Parameters
    ----------
    layout : StateLayout
    state : ndarray of shape (layout.size,)
        State weights, flat in ``layout``.
    chain : ndarray of shape (K*K + 2K,)
        Transitions, start and end scores.
    features : EncodedSequences
    n_jobs : int or None
    strict : bool, default=True
        Raise (:func:`check_scores`) when some scores exceed the kernels' limit;
        with False return None instead.
    """
    n_seq = features.n_sequences
    paths = np.zeros(features.n_tokens, dtype=np.int64)
    if n_seq == 0:
        return paths
    trans, start, end = split_chain(chain, layout.n_labels)
    scores = np.zeros(n_seq)
    status = _sparse.viterbi(layout.kernel_args(state), features.kernel_args(), trans, start,
                             end, paths, scores, n_threads_for(n_jobs, n_seq))
    if status != 0 and not strict:
        return None
    check_scores(status)
    check_possible(scores)
    return paths


def check_possible(logz):
    """Raise naming the sequences that constraints left without any label path."""
    bad = np.flatnonzero(np.isneginf(logz))
    if bad.size:
        raise ValueError(f"the constraints leave sequence(s) {bad[:10].tolist()} without "
                         "any possible label path")


def constrain_chain(chain, allowed):
    """``chain`` (K*K + 2K,) with the transitions, starts and ends that ``allowed``
    ((K + 2, K + 2) bool, or None) forbids set to -inf."""
    if allowed is None:
        return chain
    K = allowed.shape[0] - 2
    ok = np.concatenate((allowed[:K, :K].ravel(), allowed[K, :K], allowed[:K, K + 1]))
    return np.where(ok, chain, -np.inf)


def marginals(layout, state, chain, features, n_jobs=None):
    """``P(y_t = k | x)`` of every token of an encoded batch: (n_tokens, K) float64."""
    n_seq = features.n_sequences
    K = layout.n_labels
    if n_seq == 0:
        return np.zeros((features.n_tokens, K))
    status, logz, _, marg, _ = forward_backward(
        layout.kernel_args(state), chain, K, features, np.zeros(0, dtype=np.int64), n_jobs,
        marginals=True, chain_sums=False)
    check_scores(status)
    check_possible(logz)
    return marg


def log_probabilities(layout, state, chain, features, codes, n_jobs=None):
    """``log P(y | x)`` of every sequence of an encoded batch and its label codes
    ``codes`` (n_tokens,): ndarray (n_sequences,) float64."""
    if features.n_sequences == 0:
        return np.zeros(0)
    status, logz, score, _, _ = forward_backward(
        layout.kernel_args(state), chain, layout.n_labels, features,
        np.ascontiguousarray(codes, dtype=np.int64), n_jobs, marginals=False,
        chain_sums=False)
    check_scores(status)
    return score - logz


class CRFModel:
    """A fitted linear-chain CRF, independent of the estimator that trained it.

    Parameters
    ----------
    classes : list of str
        Labels, in the order of the weight columns.
    vocabulary : AttributeVocabulary or HashedVocabulary
        Attribute names, in the order of the weight rows (or, for a feature-hashed
        model, the bucket of every row: fastcrf._features._hashing).
    layout : StateLayout
        The kept (attribute, label) pairs.
    state : ndarray of shape (layout.size,)
        Their weights, flat in ``layout``.
    chain : ndarray of shape (K*K + 2K,)
        Transitions (``[i, j]``: label i followed by j), start and end scores.
    training_log : TrainingLog, optional
    n_iter : int, default=0
        Epochs / iterations the training ran.
    metadata : dict, optional
        What the model file carried beside the weights (empty after a fit).
    constraints : ndarray of bool of shape (K + 2, K + 2), optional
        The transitions the model was trained under (``CRF(constraints=...)``, as
        :func:`fastcrf._constraints.constraint_matrix` gives them); every prediction
        honours them.  The chain holds 0 where they forbid: those scores are -inf.
    """

    #: The attribute name of every column of a scipy.sparse ``X`` it was fitted on
    #: with ``feature_names`` (fastcrf._sparse_input), or None: then column ``j`` is
    #: the attribute ``str(j)``.
    feature_names = None
    #: Models pickled before constraints existed have none.
    constraints = None
    #: The optimizer state a warm start goes on from (fastcrf._train.sgd_state), or
    #: None.  Kept only by fits that asked for it (``CRF(warm_start=True)``,
    #: ``partial_fit``); pickled with the model, never written to a model file.
    optimizer_state = None

    def __init__(self, classes, vocabulary, layout, state, chain, training_log=None,
                 n_iter=0, metadata=None, constraints=None):
        K = len(classes)
        self.classes = list(classes)
        self.vocabulary = vocabulary
        self.layout = layout
        self.state = state
        self.transitions, self.start, self.end = split_chain(
            np.asarray(chain, dtype=np.float64), K)
        self.training_log = training_log
        self.n_iter = int(n_iter)
        self.metadata = {} if metadata is None else metadata
        if constraints is not None:
            self.constraints = np.asarray(constraints, dtype=bool)
        # The compiled name -> id table that predict's encoding reads: built here, once,
        # like CRFsuite's Tagger.open, rather than inside the first predict call.
        vocabulary._name_table()

    @property
    def chain(self):
        """Transitions, start and end as one flat vector."""
        return np.concatenate((self.transitions.ravel(), self.start, self.end))

    @property
    def n_weights(self):
        """Number of weights the model keeps (state pairs plus the chain scores)."""
        K = len(self.classes)
        return self.layout.n_weights + K * K + 2 * K

    def state_weights(self):
        """The state weights as an ``(n_attributes, n_labels)`` array (0 where no pair
        is kept)."""
        return self.layout.to_dense(self.state)

    def n_nonzero(self):
        """Number of non-zero weights."""
        return int(np.count_nonzero(self.state) + np.count_nonzero(self.transitions)
                   + np.count_nonzero(self.start) + np.count_nonzero(self.end))

    def state_features(self):
        """``{(attribute, label): weight}`` for every non-zero state weight."""
        rows, cols, values = self.layout.nonzero(self.state)
        names, labels = self.vocabulary.names, self.classes
        return {(names[a], labels[k]): v
                for a, k, v in zip(rows.tolist(), cols.tolist(), values.tolist())}

    def transition_features(self):
        """``{(label_from, label_to): weight}`` for every label pair."""
        labels = self.classes
        K = len(labels)
        return {(labels[i], labels[j]): float(self.transitions[i, j])
                for i in range(K) for j in range(K)}

    # Prediction ----------------------------------------------------------------

    def encode(self, X, n_jobs=None):
        """``X`` (token features, or already :class:`EncodedSequences`) in the model's
        attribute ids; attributes it does not know are dropped."""
        if isinstance(X, EncodedSequences):
            return drop_unit_values(X)
        from ._dataset import Dataset  # the model module is imported first
        if isinstance(X, Dataset):
            return drop_unit_values(X.encoded_for(self.vocabulary))
        return encode(X, self.vocabulary, dense_values=False, n_jobs=n_jobs)

    def allowed(self, constraints=None):
        """The (K + 2, K + 2) bool matrix of what a prediction may use: the model's own
        constraints and those of the call (``constraints``: see
        :func:`fastcrf._constraints.constraint_matrix`) together; None when neither
        constrains anything."""
        extra = constraint_matrix(constraints, self.classes)
        if self.constraints is None:
            return extra
        return self.constraints if extra is None else self.constraints & extra

    def constrained_chain(self, constraints=None):
        """The chain with what :meth:`allowed` forbids scored -inf."""
        return constrain_chain(self.chain, self.allowed(constraints))

    def viterbi_codes(self, features, n_jobs=None, constraints=None):
        """Best label code of every token of ``features``: ndarray (n_tokens,), int64."""
        return viterbi_codes(self.layout, self.state, self.constrained_chain(constraints),
                             features, n_jobs)

    def marginals(self, features, n_jobs=None, constraints=None, forced=None):
        """Label marginals of every token of ``features``: ndarray (n_tokens, K)."""
        if forced is not None:
            from . import _lattice_queries

            return _lattice_queries.forced_marginals(self, features, forced, n_jobs,
                                                     constraints)
        return marginals(self.layout, self.state, self.constrained_chain(constraints),
                         features, n_jobs)

    def log_probability(self, features, codes, n_jobs=None):
        """``log P(y | x)`` of every sequence of ``features`` labelled ``codes``
        (label codes, one per token): ndarray (n_sequences,)."""
        return self._log_probabilities(features, codes, self.constrained_chain(), n_jobs)

    def _log_probabilities(self, features, codes, chain, n_jobs=None):
        # The one place the model's log P(y | x) is computed (a subclass with more
        # weights, fastcrf._edges.EdgeCRFModel, overrides it).
        return log_probabilities(self.layout, self.state, chain, features, codes, n_jobs)

    def predict(self, X, n_jobs=None, constraints=None, decoder="viterbi", forced=None):
        """Best label sequence of every sequence of ``X``: list of lists of str.

        ``decoder``: ``"viterbi"`` (the most probable sequence) or ``"mbr"`` (the
        possible sequence with the highest expected token accuracy); ``forced``: a
        label or None per token (:func:`fastcrf._lattice_queries.forced_mask`).
        """
        from . import _lattice_queries

        features = self.encode(X, n_jobs)
        if decoder == "mbr":
            codes = np.concatenate(
                [np.zeros(0, np.int64)]
                + _lattice_queries.posterior_codes(self, features, n_jobs, constraints,
                                                   forced))
        elif decoder == "viterbi" and forced is not None:
            codes = np.concatenate(
                [np.zeros(0, np.int64)]
                + _lattice_queries.forced_codes(self, features, forced, n_jobs,
                                                constraints))
        elif decoder == "viterbi":
            codes = self.viterbi_codes(features, n_jobs, constraints)
        else:
            raise ValueError(f"decoder must be 'viterbi' or 'mbr', got {decoder!r}")
        labels = np.asarray(self.classes, dtype=object)[codes].tolist()
        return _split_list(labels, features)

    def predict_nbest(self, X, k, n_jobs=None, constraints=None, forced=None):
        """The ``k`` best labellings of every sequence of ``X``: list of lists of
        ``(labels, probability)``, in descending probability."""
        from . import _lattice_queries

        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        features = self.encode(X, n_jobs)
        classes = np.asarray(self.classes, dtype=object)
        return [[(classes[codes].tolist(), p) for codes, p in seq]
                for seq in _lattice_queries.nbest(self, features, int(k), n_jobs,
                                                  constraints, forced)]

    def predict_edge_marginals(self, X, n_jobs=None, constraints=None):
        """``P(y_t = i, y_{t+1} = j | x)`` of every sequence of ``X``: list of
        (T - 1, K, K) ndarrays."""
        from . import _lattice_queries

        return _lattice_queries.edge_marginals(self, self.encode(X, n_jobs), n_jobs,
                                               constraints)

    def sequence_probability(self, X, y, n_jobs=None, constraints=None):
        """``P(y | x)``: ``exp`` of :meth:`sequence_log_probability`."""
        return np.exp(self.sequence_log_probability(X, y, n_jobs, constraints))

    def sequence_log_probability(self, X, y, n_jobs=None, constraints=None):
        """``log P(y | x)`` of every sequence of ``X`` labelled by ``y`` (lists of
        label names): ndarray (n_sequences,); -inf for a labelling the constraints
        forbid."""
        features = self.encode(X, n_jobs)
        index = {label: k for k, label in enumerate(self.classes)}
        lengths = features.lengths.tolist()
        y = list(y)
        if len(y) != len(lengths):
            raise ValueError(f"X has {len(lengths)} sequences but y has {len(y)}")
        codes = []
        for i, seq in enumerate(y):
            if len(seq) != lengths[i]:
                raise ValueError(f"y[{i}] does not match the length of X[{i}]")
            for label in seq:
                if label not in index:
                    raise ValueError(f"y[{i}] holds the label {label!r}, which the model "
                                     f"does not have; its labels are {self.classes}")
                codes.append(index[label])
        return self._log_probabilities(features, np.asarray(codes, dtype=np.int64),
                                       self.constrained_chain(constraints), n_jobs)

    def predict_indices(self, X, n_jobs=None, constraints=None):
        """As :meth:`predict`, but label codes: list of int64 ndarrays."""
        features = self.encode(X, n_jobs)
        return np.split(self.viterbi_codes(features, n_jobs, constraints),
                        features.seq_offsets[1:-1])

    def predict_proba(self, X, n_jobs=None, constraints=None, forced=None):
        """Marginals of every sequence of ``X``: list of (T, K) ndarrays."""
        features = self.encode(X, n_jobs)
        return np.split(self.marginals(features, n_jobs, constraints, forced),
                        features.seq_offsets[1:-1])

    def predict_marginals(self, X, n_jobs=None, constraints=None, forced=None):
        """Marginals of every sequence of ``X``: list of lists of ``{label: p}`` dicts."""
        features = self.encode(X, n_jobs)
        labels = self.classes
        rows = [dict(zip(labels, row)) for row in
                self.marginals(features, n_jobs, constraints, forced).tolist()]
        return _split_list(rows, features)

    def score(self, X, y, n_jobs=None):
        """Token accuracy of :meth:`predict` on ``X`` against ``y``: a float."""
        features = self.encode(X, n_jobs)
        index = {label: k for k, label in enumerate(self.classes)}
        codes = self.viterbi_codes(features, n_jobs)   # under the model's constraints
        lengths = features.lengths.tolist()
        gold = []
        n = 0
        for i, seq in enumerate(y):
            if i >= len(lengths) or len(seq) != lengths[i]:
                raise ValueError(f"y[{i}] does not match the length of X[{i}]")
            gold.extend(index.get(label, -1) for label in seq)
            n += 1
        if n != len(lengths):
            raise ValueError(f"X has {len(lengths)} sequences but y has {n}")
        if not gold:
            raise ValueError("X and y hold no tokens")
        return float(np.mean(codes == np.asarray(gold)))


# The fitted attributes that pickles of fastcrf < 0.3 hold in the estimator itself.
_OLD_FITTED = ("vocabulary_", "classes_", "transition_weights_", "start_weights_",
               "end_weights_", "training_log_", "n_iter_", "metadata_", "_state",
               "_state_layout", "state_weights_")


def model_of_old_pickle(state):
    """The :class:`CRFModel` of the pickled ``__dict__`` of a fastcrf < 0.3 estimator,
    whose fitted attributes are removed from ``state`` (those of fastcrf < 0.2 hold the
    dense state matrix, those of 0.2 a layout and its flat weights)."""
    old = {name: state.pop(name) for name in _OLD_FITTED if name in state}
    if "state_weights_" in old:
        W = old["state_weights_"]
        old["_state_layout"] = StateLayout.dense(*W.shape)
        old["_state"] = old["_state_layout"].from_dense(W)
    chain = np.concatenate([old[name].ravel() for name in
                            ("transition_weights_", "start_weights_", "end_weights_")])
    return CRFModel(old["classes_"], old["vocabulary_"], old["_state_layout"], old["_state"],
                    chain, training_log=old.get("training_log_"),
                    n_iter=old.get("n_iter_", 0), metadata=old.get("metadata_"))


def _split_list(items, features):
    """A flat per-token list cut into one list per sequence of ``features``."""
    offsets = features.seq_offsets.tolist()
    return [items[offsets[s]:offsets[s + 1]] for s in range(features.n_sequences)]
