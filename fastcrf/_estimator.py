"""The CRF estimator: a faster drop-in for ``sklearn_crfsuite.CRF``.

:class:`CRF` holds the parameters and runs a fit (encode the data, choose the state
layout, run the trainer of the registry, keep the resulting model); the fitted model
and its prediction methods are :class:`fastcrf._model.CRFModel`.
"""

import inspect
import os
import warnings
from operator import attrgetter, methodcaller

import numpy as np

from ._base import ParamsMixin
from ._empty import around_empty, empty_positions, note_dropped, without_empty_pairs
from ._featurizer import (
    cli_template,
    compiled_template,
    fit_input,
    predict_input,
    template_text,
)
from ._fit import fit_model
from ._model import CRFModel, TrainingLog, model_of_old_pickle  # noqa: F401 (pickled name)
from ._persist import load_model, model_file_size, save_model
from ._sequences import LabelSequences
from ._train import TRAINERS

#: The implemented ``algorithm`` values.
ALGORITHMS = tuple(TRAINERS)


class NotFittedError(ValueError, AttributeError):
    """Raised when a CRF is used before it is fitted (as scikit-learn's)."""


def _fitted(get, doc):
    """A read-only fitted attribute: ``get(model)`` of the fitted :class:`CRFModel`."""
    return property(lambda self: get(self._fitted_model()), doc=doc)


def _crfsuite_fitted(get, doc):
    """A fitted attribute that sklearn-crfsuite also has: None before the estimator
    is fitted (and has no ``model_filename`` to load), as there, instead of
    :class:`NotFittedError`."""
    def fget(self):
        return None if self._unfitted() else get(self._fitted_model())
    return property(fget, doc=doc + "  None before ``fit``, as in sklearn-crfsuite.")


def _wants_model(callback):
    """Whether ``callback`` takes a second positional argument (the current model)."""
    try:
        parameters = list(inspect.signature(callback).parameters.values())
    except (TypeError, ValueError):   # some builtins have no signature
        return False
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (len(positional) >= 2
            or any(p.kind == p.VAR_POSITIONAL for p in parameters))


def _user_hook(crf, callback):
    """Adapt the user's ``fit(callback=...)`` to :func:`fit_model`'s ``on_iteration``."""
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    params = crf.get_params()
    if not _wants_model(callback):
        return lambda entry, model_fn: callback(entry)

    def hook(entry, model_fn):
        # A fresh estimator with the same parameters, so the user's copy can be kept,
        # saved or used while training goes on.
        snapshot = type(crf)(**params)
        snapshot._model = model_fn()
        return callback(entry, snapshot)
    return hook


class CRF(ParamsMixin):
    """Linear-chain CRF over token features, trained by averaged SGD by default.

    A drop-in for ``sklearn_crfsuite.CRF``: same constructor keywords where they
    apply, same methods and return types.  ``X`` is a list of sequences; a sequence
    is a list of tokens; a token is a dict ``{name: value}`` (a str value ``v`` is
    the binary attribute ``"name:v"``, a number is the attribute ``"name"`` with
    that weight, a bool is 1.0/0.0) or a list of str attribute names.  ``y`` is a
    list of lists of str labels.

    Every parameter left at None takes the default of the chosen algorithm (listed
    below as "default: ...").

    Parameters
    ----------
    algorithm : {'asgd', 'lbfgs', 'l2sgd', 'ap', 'pa', 'arow'} or None, default=None
        - 'asgd': averaged SGD (Bottou's crfasgd): fast.  None means 'asgd', except
          on a training set of so few (long) sequences that SGD would take too few
          steps to converge (fewer than 20 mini-batches): then 'lbfgs' on the same
          objective (``training_log_.algorithm`` says which ran).
        - 'lbfgs': L-BFGS on the full objective (scipy's L-BFGS-B for L2, OWL-QN as
          in CRFsuite when ``c1 > 0``).
        - 'l2sgd': CRFsuite's SGD with L2 and a 1 / (lambda t) step size.
        - 'ap': averaged perceptron.
        - 'pa': passive-aggressive (PA, PA-I, PA-II).
        - 'arow': adaptive regularization of weights (AROW, Mejer and Crammer), as
          CRFsuite's.

        'ap', 'pa' and 'arow' follow CRFsuite's update, averaging and stopping test,
        so with ``all_possible_states=False`` and ``all_possible_transitions=False``
        they reach CRFsuite's training accuracy (start/end scores aside).
    min_freq : float, default=0
        Attributes that occur fewer times in the training data are dropped.
    all_possible_states : bool or None, default=None
        True: a weight for every (attribute, label) pair.  False: only for pairs
        seen in training (CRFsuite's default); the others stay 0.  None: every pair
        for attributes that occur at least 5 times in training, the seen pairs for
        rarer ones, which is as accurate as True with a fraction of the weights
        (most attributes of a real feature set are rare), so training is faster and
        smaller.  With many labels (hundreds or thousands, each attribute seen with
        few of them) a full row per frequent attribute would multiply the model by
        the number of labels, so None also keeps at most 8 times the seen pairs:
        only the most frequent of those attributes get every label, as many as fit.
        Tag sets of tens of labels (CoNLL chunking, NER, part of speech) stay under
        that bound.
    all_possible_transitions : bool, default=True
        True: a weight for every label pair.  False: only for label bigrams seen in
        training (CRFsuite's default); the others stay 0.
    c1 : float, default=0
        L1 coefficient ('asgd' and 'lbfgs').  'asgd' applies it by the cumulative
        penalty of Tsuruoka et al. (2009) and returns the average of the iterates
        restricted to the weights the last iterate has non-zero.
    c2 : float
        L2 coefficient: the objective is ``sum -log p + c1 |w|_1 + c2 |w|^2``.
        Default: 0.25 for 'asgd', 0.5 for 'lbfgs' (CRF++'s C = 1), 1.0 for 'l2sgd'
        (CRFsuite's).
    max_iterations : int
        Epochs (SGD, perceptron, PA) or iterations (L-BFGS): a cap, the stopping
        tests (``period``/``delta``, ``epsilon``, ``early_stopping``) may end
        sooner.  Default: for 'asgd', 8 epochs or as many as make 2000 mini-batch
        steps (small training sets), at most 100; 1000 for 'l2sgd', 100 for 'ap'
        'pa' and 'arow', unlimited for 'lbfgs' (which stops by ``epsilon``/``delta``).
    num_memories : int, default=6
        L-BFGS history size.
    epsilon : float
        'lbfgs': stop when ``|grad| / max(|w|, 1) < epsilon`` (default 1e-5).
        'ap'/'pa'/'arow': stop when the epoch's mean loss falls below it (default 0:
        never, as in CRFsuite).
    period, delta : int, float
        Stop when the objective improved by less than ``delta`` (relative) over the
        last ``period`` epochs/iterations.  Default period 10; delta 1e-5 for
        'lbfgs', 1e-6 for the SGD trainers.
    linesearch : {'MoreThuente', 'Backtracking', 'StrongBacktracking'}
        Accepted for compatibility; scipy's L-BFGS-B always uses its own
        (Moré-Thuente style) line search.
    max_linesearch : int, default=20
        Line-search trials per L-BFGS iteration.
    calibration_eta, calibration_rate, calibration_samples, calibration_candidates, \
calibration_max_trials
        Step-size calibration of 'asgd' and 'l2sgd' (defaults 0.1, 2.0, 1000, 10,
        20): trial passes over ``calibration_samples`` random sequences with step
        sizes ``calibration_eta * calibration_rate**k``.
    pa_type : {0, 1, 2}, default=1
        'pa': PA, PA-I or PA-II.
    c : float, default=1
        'pa': aggressiveness (PA-I / PA-II).
    error_sensitive : bool, default=True
        'pa': use the number of wrong labels (not 1) in the loss.
    averaging : bool, default=True
        'asgd', 'ap', 'pa': return the average of the iterates.
    variance : float, default=1
        'arow': the initial variance of every weight.
    gamma : float, default=1
        'arow': the trade-off between the loss and the change of the weights.
    verbose : bool, default=False
        Print one line per epoch/iteration (loss, objective, weight norm, seconds
        and, with ``X_dev``, dev token accuracy).
    model_filename : str or os.PathLike, optional
        sklearn-crfsuite's meaning: an existing model file there (fastcrf's or
        CRFsuite's format, told by content) is loaded on first use, so
        ``CRF(model_filename=path).predict(X)`` works without ``fit``; ``fit``
        writes its model there (fastcrf's format, atomically).
    keep_tempfiles : bool, default=False
        Accepted for sklearn-crfsuite compatibility: fastcrf writes no temporary
        model files, so there is nothing to keep.
    trainer_cls : type, optional
        Accepted for sklearn-crfsuite compatibility and ignored: fastcrf trains
        with its own trainers (sklearn-crfsuite uses it to customise
        python-crfsuite's training log; use ``verbose`` here).
    n_jobs : int, optional
        OpenMP threads for training and prediction (scikit-learn's convention:
        None or -1 all, -2 all but one).  Results do not depend on it.
    random_state : int, numpy Generator or RandomState, optional
        Seeds shuffling and calibration sampling.  None: fresh entropy on each fit.
    batch_size : int, default=4
        Sequences per SGD step ('asgd', 'l2sgd'); their gradients are computed in
        parallel.  Fixed by you, not by the thread count, so results are the same
        for any ``n_jobs``.
    eta0 : float, optional
        Initial SGD step size; None calibrates it (``calibration_*``): the step
        size whose trial pass over a sample lowers the objective most ('l2sgd',
        as CRFsuite), or the candidate ``calibration_rate`` times larger when its
        trial also lowered it ('asgd': the average of thousands of steps gains
        from the larger step that a short trial does not show).  With
        ``learning_rate='adagrad'`` or ``'adagrad_row'``: the constant ``eta``
        (None: 1.0 for 'adagrad', 0.5 for 'adagrad_row'; not calibrated).
    learning_rate : {'calibrated', 'adagrad', 'adagrad_row'} or None, default=None
        'asgd''s step rule.  None: 'adagrad_row', except with ``c1 > 0`` (only
        'calibrated' has an L1 term); a warm start (``warm_start=True``,
        :meth:`partial_fit`) goes on with the rule of the fit it continues, whose
        state it keeps, or takes 'calibrated' from a model without that state (loaded
        from a file: AdaGrad's accumulators would start afresh, while 'calibrated'
        continues its decaying schedule from the model's training log).  Measured on
        CoNLL-2002 NER, 'adagrad_row' gains ~2 entity F1 over 'calibrated' (rare
        attributes get larger steps) at the same chunk F1 on CoNLL-2000, for about
        twice the fit time on 23 labels (bench/README.md).
        'calibrated': one step size for every weight,
        ``eta0 / (1 + lambda eta0 t)^0.75`` (``t``: sequences seen), ``eta0``
        calibrated.  'adagrad': a step size per weight (Duchi, Hazan and Singer
        2011), ``G += g^2`` (``g``: the weight's gradient summed over the
        mini-batch), then ``w <- exp(-eta lambda n_b / sqrt(G)) w + eta g /
        sqrt(G)`` (``lambda = 2 c2 / n_sequences``, ``n_b`` the mini-batch's
        sequences), with a constant ``eta`` (``eta0``); rare attributes get larger
        steps.  Applied lazily (a step costs only the mini-batch's attributes) and
        averaged as 'calibrated' is.  'adagrad_row': the same with one step size
        per attribute, shared by its label weights: ``G_a += mean_k g_ak^2`` over
        the K labels, then every weight of attribute ``a`` steps with
        ``1 / sqrt(G_a)``; the transition, start and end scores keep a step size
        each.  It costs less than 'adagrad', whose per-weight square roots and
        exponentials cost more.  Both have no L1
        term (``c1`` must be 0) and only apply to 'asgd'.
    early_stopping : bool, default=False
        Measure the dev token accuracy after every epoch / iteration, stop after
        ``n_iter_no_change`` of them without a better one, and keep the weights of
        the best (``training_log_.best_iteration``).  The dev set is ``X_dev`` /
        ``y_dev`` of :meth:`fit`, or else a random ``validation_fraction`` of the
        training sequences, held out of training (as scikit-learn's SGD estimators
        do).
    validation_fraction : float, default=0.1
        Share of the training sequences held out under ``early_stopping`` when no
        dev set is given; in (0, 1).
    n_iter_no_change : int, default=5
        Epochs / iterations without a better dev accuracy before early stopping.
    warm_start : bool, default=False
        True: :meth:`fit` on a fitted CRF starts from its weights instead of 0.  The
        labels are the model's, in its order, then those new in ``y``; attributes
        and labels new in the data start at 0 and the model's others keep their
        weights (even when absent from the new data).

        'asgd' and 'l2sgd' fits under ``warm_start=True`` (the first, cold one too)
        and every :meth:`partial_fit` keep SGD's whole state with the fitted model,
        and the next warm fit or :meth:`partial_fit` goes on with it, as the epochs
        of one fit go on: the last iterate (the model holds the average), the running
        average (over the steps of every call since averaging started: the second
        half of the first fit's epochs, or from the first step of a first
        :meth:`partial_fit`), the step counters and ``eta0``, AdaGrad's summed
        squared gradients and its step rule, and the L1 penalty.  Attributes and
        labels new in the data extend every state array with zeros.  The state is
        about twice the model's weights in memory; it is pickled with the estimator
        but never written to a model file, so :meth:`save` / :meth:`load` (and
        ``fastcrf train --init``) give only the weights, ``eta0`` and the step
        counter (``training_log_``): from such a model the average and AdaGrad's
        accumulators start afresh and the rule is 'calibrated'.  Changing
        ``algorithm``, ``learning_rate`` or whether ``c1 > 0`` between calls also
        starts afresh from the model's weights.  Each call's L2 term is scaled to
        its own data (``lambda = 2 c2 / n``, n its sequences): calling
        :meth:`partial_fit` again on the same data is then another epoch of one
        fit.  L-BFGS's history and AROW's variances are not kept.  See also
        :meth:`partial_fit`.
    progress_bar : bool, default=False
        Show a tqdm progress bar over the epochs / iterations on stderr (its postfix:
        the last loss and dev accuracy); needs tqdm (``pip install
        fastcrf[progress]``), an ImportError saying so otherwise.  ``verbose`` lines
        are printed above it.
    hash_features : int >= 2, optional
        Feature hashing: attribute names go to this many buckets by MurmurHash3
        (32-bit, unsigned, of the name's UTF-8 bytes: scikit-learn's
        ``murmurhash3_32(name, hash_seed, positive=True) % hash_features``), and
        names sharing a bucket share its weights.  The model keeps no attribute
        name, only a row per bucket reached in training, so its size is bounded by
        the number of buckets whatever the vocabulary; ``attributes_`` then lists
        ``"#<bucket>"``.  Any int >= 2 works (a power of two is not needed).
        A fit on token features hashes the names a chunk of sequences at a time and
        never builds the vocabulary (``vocabulary_.names_held``: the most names
        held at once), so ``min_freq`` then cuts buckets, by the sum of their
        names' counts.  None: no hashing.  Not with ``warm_start`` /
        :meth:`partial_fit`.
    hash_seed : int in [0, 2**32), default=0
        The MurmurHash3 seed of ``hash_features`` (stored in the model file).
    template : fastcrf.Template or str, optional
        A CRF++ feature template (or its text): then ``X`` of :meth:`fit` and of the
        prediction methods is raw column rows (a sequence is a list of rows, a row a
        list of str columns, the label column left out) and the template extracts
        the attributes, as ``fastcrf train`` / ``fastcrf tag`` do.  The model file
        keeps the template's text (never code); :meth:`CRF.load` compiles it again.
        A :class:`fastcrf.Dataset` or EncodedSequences ``X`` is taken as it is.
    transition_prefix : str or None, default=None
        Observation-conditioned transitions (CRF++'s ``B`` template lines with
        macros): the token features whose names start with this prefix are
        *transition attributes*.  Each one weighs every label pair of the move from
        the previous token into its token, ``trans_t[i, j] = transitions[i, j] +
        sum_f x[t, f] * W[f, i, j]``, and is not a state feature; on a sequence's
        first token it is ignored.  Dict tokens are split on their keys, list tokens
        on their str items (``{"w": "dog", "B:pos": "NN|VB"}`` with ``"B:"``).
        None: no transition attributes (sklearn-crfsuite's model).  Every
        ``algorithm`` learns them (the SGD trainers step their weights as they step
        state weights; the online ones decode with them), and training
        ``constraints`` hold at every position; lists of token features only (the
        dev set's too: ``X_dev`` and ``early_stopping`` measure the dev accuracy
        with them, and the best epoch keeps its transition-attribute weights); a
        warm start with them needs algorithm='lbfgs'.  Every prediction method
        uses them.
    constraints : {"BIO", "IOB1", "BIOES", "BIOUL", "auto"}, dict, array-like or None
        Transition constraints applied in training and kept in the model: the label
        paths they forbid have probability 0 (the normaliser sums only the allowed
        paths) and the forbidden transition, start and end scores carry no weight
        (they are -inf, not learned).  A scheme name reads the labels' names
        (:func:`fastcrf.allowed_transitions`); ``"auto"`` infers it from the labels
        (BIOES when some label starts with E- or S-, else BIO when every label is
        ``O``, B-x or I-x); ``{(from, to): False}`` forbids single transitions; a
        (K, K) or (K + 2, K + 2) boolean array is over ``classes_`` in the order the
        labels are first seen in ``y``.  Every prediction method then honours them;
        a ``constraints=`` given to a prediction method adds to them (a path must
        satisfy both).  Every labelling of ``y`` must satisfy them (ValueError
        otherwise).  Honoured by 'lbfgs', 'asgd', 'l2sgd' (in the likelihood) and by
        'ap', 'pa', 'arow' (their training decodes under the constraints); not by
        :func:`fastcrf.dask.fit`.  Saved in the model file.

    Attributes
    ----------
    classes_ : list of str
        Labels, in the order of the weight columns.
    attributes_ : list of str
        Attribute names, in the order of the weight rows.
    state_weights_ : ndarray of shape (n_attributes, n_labels)
    transition_weights_ : ndarray of shape (n_labels, n_labels)
        ``[i, j]`` scores label ``classes_[i]`` followed by ``classes_[j]``.
    start_weights_, end_weights_ : ndarray of shape (n_labels,)
        Scores of a sequence's first and last label (CRFsuite has none; they
        default to trainable).
    state_features_ : dict
        ``{(attribute, label): weight}`` for every non-zero state weight.
    transition_features_ : dict
        ``{(label_from, label_to): weight}``.
    training_log_ : TrainingLog
    metadata_ : dict
        What :meth:`save` was given as ``metadata``, for a loaded model; empty
        after :meth:`fit`.
    n_iter_ : int
        Epochs / iterations actually run.
    size_ : int
        Size of the model file in bytes (sklearn-crfsuite's meaning): the file at
        ``model_filename`` when the model was loaded from or written there, else
        the size :meth:`save` would write.
    n_nonzero_weights_ : int
        Number of non-zero weights.
    num_attributes_ : int
        Number of attributes with a non-zero state weight (those a CRFsuite model
        file keeps, sklearn-crfsuite's meaning); ``len(attributes_)`` counts all.
    tagger_ : fastcrf.pycrfsuite.Tagger
        A python-crfsuite-compatible tagger over the fitted model.

    Examples
    --------
    >>> from fastcrf import CRF
    >>> X = [[{"w": "the"}, {"w": "dog"}], [{"w": "a"}, {"w": "cat"}]]
    >>> y = [["DET", "N"], ["DET", "N"]]
    >>> CRF(random_state=0).fit(X, y).predict([[{"w": "the"}, {"w": "cat"}]])
    [['DET', 'N']]
    """

    def __init__(
        self, algorithm=None, min_freq=None, all_possible_states=None,
        all_possible_transitions=None, c1=None, c2=None, max_iterations=None,
        num_memories=None, epsilon=None, period=None, delta=None, linesearch=None,
        max_linesearch=None, calibration_eta=None, calibration_rate=None,
        calibration_samples=None, calibration_candidates=None, calibration_max_trials=None,
        pa_type=None, c=None, error_sensitive=None, averaging=None, variance=None,
        gamma=None, verbose=False, model_filename=None, n_jobs=None, random_state=None,
        batch_size=None, eta0=None, early_stopping=None, validation_fraction=None,
        n_iter_no_change=None, keep_tempfiles=False, trainer_cls=None, warm_start=False,
        progress_bar=False, hash_features=None, hash_seed=None, template=None,
        learning_rate=None, transition_prefix=None, constraints=None,
    ):
        self._store_params(locals())

    def __sklearn_is_fitted__(self):
        return "_model" in self.__dict__ or self._model_file() is not None

    def _unfitted(self):
        """Not fitted and nothing to load: sklearn-crfsuite's attributes are None."""
        return self.__dict__.get("_model") is None and self.model_filename is None

    def _model_file(self):
        """``model_filename`` when it names an existing file, else None."""
        path = self.model_filename
        return path if path is not None and os.path.isfile(path) else None

    # ------------------------------------------------------------------ #
    # Fitting                                                              #
    # ------------------------------------------------------------------ #

    def fit(self, X, y=None, X_dev=None, y_dev=None, *, callback=None, sample_weight=None,
            lengths=None, feature_names=None):
        """Train the CRF.

        Parameters
        ----------
        X : list of lists of token features, Dataset, EncodedSequences, or scipy.sparse
            A :class:`fastcrf.Dataset` (with labels; ``y`` None) is trained on as
            it is, memory-mapped or not; the model equals that of its lists, except
            that 'asgd' / 'l2sgd' visit a memory-mapped one whose arrays take more
            than 1 GiB a window at a time (shuffled blocks of the file, 32 to a
            window, each window shuffled: memory is the model plus a window, and the
            visiting order differs from the global shuffle of the lists; load it
            with ``mmap=False`` for that one).  A
            scipy.sparse matrix of shape (n_tokens, n_features) with ``lengths``
            (seqlearn's convention) is a token per row, column ``j`` the attribute
            ``feature_names[j]`` (default ``str(j)``) weighted by the entry: the
            model is bitwise that of the equivalent token dicts (see
            :meth:`fastcrf.Dataset.from_sparse`).  Such a model also takes token
            dicts keyed by those names.  With a ``template``, raw column rows.
        y : list of lists of str, optional
            One label per token; None when ``X`` is a Dataset.  For a sparse ``X``
            also a flat sequence of one label per row.  An empty sequence paired
            with an empty label list is left out (with its sample weight), as
            sklearn-crfsuite trains past it.
        X_dev, y_dev : optional
            A development set whose token accuracy is reported every epoch
            (``verbose`` and ``training_log_``); it changes the training only under
            ``early_stopping``.
        callback : callable, optional
            Called after every epoch / iteration as ``callback(info)``, or as
            ``callback(info, model)`` when it takes a second positional parameter.
            ``info`` is that iteration's :attr:`training_log_` entry (a new dict of
            plain Python numbers: ``num``, ``loss``, ``objective``,
            ``feature_norm``, ``time``, and ``dev_accuracy`` with a dev set);
            ``model`` is a fitted :class:`CRF` holding the weights the model would
            have if training stopped now (averaged, for the averaging trainers), to
            score it on data of your own.  A true return value stops the training
            there and keeps a usable model; an exception raised by the callback
            leaves the estimator as it was before ``fit``.
        sample_weight : array-like of shape (n_sequences,), optional
            One finite weight >= 0 per training sequence (not all 0).  'lbfgs'
            multiplies each sequence's log-likelihood and gradient by its weight (a
            weight of 2 is exactly the sequence given twice); 'asgd' and 'l2sgd'
            scale each sequence's step by it; 'ap', 'pa' and 'arow' scale its update
            (AROW also its variance shrink) and skip sequences of weight 0.  The
            regularisation is not weighted.
        lengths : array-like of int of shape (n_sequences,), optional
            With a scipy.sparse ``X`` (and only then): the rows of each sequence, in
            order; they sum to ``X.shape[0]``.
        feature_names : sequence of str of length n_features, optional
            With a scipy.sparse ``X``: the attribute name of every column (e.g. a
            DictVectorizer's ``get_feature_names_out()``).  The model keeps them, so
            its prediction methods read the same columns without them.

        Returns
        -------
        self : CRF

        Raises
        ------
        ValueError, TypeError
            For malformed input or parameters (naming which).
        FloatingPointError
            When the weights diverge (SGD step size too large for the features).
        """
        init = self._fitted_model() if self.warm_start and self.__sklearn_is_fitted__() \
            else None
        X, y, sample_weight, dropped = without_empty_pairs(X, y, sample_weight)
        X_dev, y_dev, _, dropped_dev = without_empty_pairs(X_dev, y_dev)
        try:
            X, y, X_dev, columns = fit_input(self.template, X, y, X_dev, lengths,
                                             feature_names)
            self._fit(self.get_params(), X, y, X_dev, y_dev, callback=callback,
                      sample_weight=sample_weight, init_model=init, feature_names=columns,
                      keep_optimizer_state=bool(self.warm_start),
                      continuing=None if init is None else "warm_start")
        except (ValueError, TypeError) as error:
            note_dropped(error, dropped)
            note_dropped(error, dropped_dev, "X_dev")
            raise
        return self

    def partial_fit(self, X, y, *, classes=None, sample_weight=None, callback=None):
        """One epoch over ``X``, ``y`` from the current weights (online training).

        For the SGD and online trainers ('asgd', 'l2sgd', 'ap', 'pa', 'arow'; None
        means 'asgd'), as scikit-learn's SGD estimators: call it once per batch, or
        again over the same data for more epochs.  The first call on an unfitted CRF
        starts from 0 with the labels ``classes`` (or those of its ``y``, in the
        order first seen); a later ``y``'s new labels are appended with zero
        weights (``warm_start`` explains what is kept).
        'asgd' takes its default rule, 'adagrad_row', on the first call ('l2sgd'
        and ``learning_rate='calibrated'`` calibrate ``eta0``); the next calls go on
        with SGD's whole state, so two calls on the same data are two epochs of one
        fit whose average starts at its first step: the running average, the step
        counters and AdaGrad's accumulators go on over the calls.

        Parameters
        ----------
        X, y
            As :meth:`fit`.
        classes : list of str, optional
            All the labels the model will see, on the first call.
        sample_weight, callback
            As :meth:`fit`.

        Returns
        -------
        self : CRF

        Raises
        ------
        ValueError
            For algorithm='lbfgs' (use ``warm_start=True`` and :meth:`fit`), or
            ``classes`` given to a fitted CRF.
        """
        params = self.get_params()
        algorithm = params["algorithm"] or "asgd"
        if algorithm == "lbfgs":
            raise ValueError("partial_fit needs an online trainer ('asgd', 'l2sgd', 'ap', "
                             "'pa', 'arow'); for algorithm='lbfgs' continue training with "
                             "CRF(warm_start=True).fit(X, y)")
        fitted = self.__sklearn_is_fitted__()
        init = self._fitted_model() if fitted else None
        if init is not None and classes is not None:
            raise ValueError("classes is only for the first call of partial_fit: the "
                             f"fitted model's labels are {init.classes}")
        params.update(algorithm=algorithm, max_iterations=1, early_stopping=False)
        X, y, sample_weight, dropped = without_empty_pairs(X, y, sample_weight)
        try:
            X, y, _, _ = fit_input(self.template, X, y, None, None, None)
            with warnings.catch_warnings():
                # A batch is small by design: SGD's "too few steps" warning is no news.
                warnings.filterwarnings("ignore", message=".*too few to converge")
                self._fit(params, X, y, callback=callback, sample_weight=sample_weight,
                          init_model=init, classes=classes, keep_optimizer_state=True,
                          continuing="partial_fit")
        except (ValueError, TypeError) as error:
            note_dropped(error, dropped)
            raise
        return self

    def _fit(self, params, X, y, X_dev=None, y_dev=None, *, callback=None,
             feature_names=None, **kw):
        on_iteration = None if callback is None else _user_hook(self, callback)
        model = fit_model(params, X, y, X_dev, y_dev, on_iteration=on_iteration, **kw)
        model.feature_names = feature_names
        # Everything is computed: only now replace the previous fit, so an error or an
        # interrupt above leaves the estimator as it was.
        self._install(model)

    def _install(self, model):
        """Make ``model`` the fitted model (from :meth:`fit`, or :func:`fastcrf.dask.fit`):
        forget the file it was loaded from, and write it to ``model_filename``."""
        self._model = model
        self.__dict__.pop("_source", None)
        if self.model_filename is not None:
            self.save(self.model_filename)
            self._source = (os.fspath(self.model_filename),
                            os.path.getsize(self.model_filename))

    # ------------------------------------------------------------------ #
    # Fitted attributes                                                    #
    # ------------------------------------------------------------------ #

    def _fitted_model(self):
        model = self.__dict__.get("_model")
        source = self.__dict__.get("_source")
        path = self.model_filename
        if path is not None and (model is None or (source is not None
                                                   and source[0] != os.fspath(path))):
            # sklearn-crfsuite's model_filename: an existing model, loaded on first use
            # (and again when model_filename is changed to another file).
            if self._model_file() is not None:
                model, _ = load_model(path)
                self._model = model
                self._source = (os.fspath(path), os.path.getsize(path))
        if model is None:
            raise NotFittedError(
                "this CRF is not fitted yet: call fit(X, y) or CRF.load(path) first"
                + ("" if path is None else f" (model_filename={path!r} names no file)"))
        return model

    @property
    def size_(self):
        """Size of the model file in bytes (sklearn-crfsuite's ``size_``); None before
        ``fit``, as there."""
        if self._unfitted():
            return None
        model = self._fitted_model()
        source = self.__dict__.get("_source")
        if source is not None:
            return source[1]
        return model_file_size(model, self._stored_params())

    def _tagger_holds_last(self, X):
        """Leave ``tagger_`` set on the last sequence of ``X``, as sklearn-crfsuite's
        ``predict`` (which tags through it) does: ``crf.tagger_.marginal(y, t)`` after
        ``predict`` then reads that sequence.  Only for a list or tuple of sequences."""
        if (isinstance(X, (list, tuple)) and X and self.template is None
                and not empty_positions(X[-1:])):
            self._last_sequence = X[-1]
            tagger = self.__dict__.get("_tagger")
            if tagger is not None and tagger._model is self.__dict__.get("_model"):
                tagger.set(X[-1])

    def _input(self, X, lengths, feature_names, y=None):
        """``X`` as the model's methods take it (:mod:`fastcrf._featurizer`): a
        scipy.sparse ``X`` (with ``lengths``) or, with a ``template``, raw rows become
        encoded features; with ``y`` given, ``(X, y)``, a flat ``y`` of a sparse ``X``
        cut into sequences."""
        from ._sparse_input import check_lengths, is_sparse, label_sequences

        if y is not None and is_sparse(X):
            y = label_sequences(y, check_lengths(lengths, X.shape[0]))
        X = predict_input(self.template, self._fitted_model(), X, lengths, feature_names)
        return X if y is None else (X, y)

    @property
    def tagger_(self):
        """A :class:`fastcrf.pycrfsuite.Tagger` over the fitted model (labels(), tag(),
        marginal(), probability(), info()), as sklearn-crfsuite's ``tagger_``; None
        before ``fit``, as there."""
        from .pycrfsuite._tagger import Tagger  # the package imports this module

        if self._unfitted():
            return None
        model = self._fitted_model()
        tagger = self.__dict__.get("_tagger")
        if tagger is None or tagger._model is not model:
            tagger = Tagger(n_jobs=self.n_jobs)
            tagger._use(model)
            last = self.__dict__.get("_last_sequence")
            if last is not None:
                tagger.set(last)
            self._tagger = tagger
        return tagger

    classes_ = _crfsuite_fitted(attrgetter("classes"),
                                "Labels, in the order of the weight columns.")
    vocabulary_ = _fitted(attrgetter("vocabulary"), "The attribute vocabulary.")
    attributes_ = _crfsuite_fitted(
        attrgetter("vocabulary.names"),
        "Attribute names, in the order of the rows of ``state_weights_``.")
    num_attributes_ = _crfsuite_fitted(
        lambda m: len(set(m.layout.nonzero(m.state)[0].tolist())),
        "Number of attributes with a non-zero state weight (sklearn-crfsuite's meaning: "
        "the attributes of the model file); ``len(attributes_)`` counts all.")
    state_weights_ = _fitted(
        methodcaller("state_weights"),
        "The state weights as an ``(n_attributes, n_labels)`` array (0 for the pairs the "
        "model does not keep).  Built on each access: the model keeps only the kept pairs.")
    transition_weights_ = _fitted(
        attrgetter("transitions"),
        "``[i, j]`` scores ``classes_[i]`` followed by ``classes_[j]``.")
    start_weights_ = _fitted(attrgetter("start"), "Scores of a sequence's first label.")
    end_weights_ = _fitted(attrgetter("end"), "Scores of a sequence's last label.")
    state_features_ = _crfsuite_fitted(
        methodcaller("state_features"), "``{(attribute, label): weight}`` for every non-zero "
        "state weight.")
    transition_features_ = _crfsuite_fitted(
        methodcaller("transition_features"),
        "``{(label_from, label_to): weight}`` for every label pair.")
    n_nonzero_weights_ = _fitted(methodcaller("n_nonzero"), "Number of non-zero weights.")
    training_log_ = _fitted(attrgetter("training_log"), "What the fit reported.")
    n_iter_ = _fitted(attrgetter("n_iter"), "Epochs / iterations actually run.")
    metadata_ = _fitted(attrgetter("metadata"),
                        "The metadata a loaded model was saved with ({} after fit).")

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_tagger", None)  # rebuilt on use
        state.pop("_last_sequence", None)
        return state

    def __setstate__(self, state):
        state = dict(state)
        # Pickles from before a parameter existed (learning_rate, hash_features, ...):
        # get_params reads every parameter, so the missing ones take their defaults.
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name != "self":
                state.setdefault(name, param.default)
        if "_model" not in state and "classes_" in state:
            state["_model"] = model_of_old_pickle(state)  # fastcrf < 0.3
        state.setdefault("transition_prefix", None)  # pickled before the parameter
        self.__dict__.update(state)

    # ------------------------------------------------------------------ #
    # Prediction                                                           #
    # ------------------------------------------------------------------ #

    def predict(self, X, *, constraints=None, decoder="viterbi", forced=None, lengths=None,
                feature_names=None):
        """Most likely label sequence of every sequence of ``X`` (Viterbi).

        Parameters
        ----------
        X : list of lists of token features, Dataset, EncodedSequences, or scipy.sparse
        lengths, feature_names : optional
            For a scipy.sparse ``X`` (one row per token), as in :meth:`fit`; the
            column names default to those the model was fitted with.
        constraints : {"BIO", "IOB1", "BIOES", "BIOUL"}, dict, array-like or None
            Constrained decoding: the label paths the constraints forbid are never
            output (e.g. ``"BIO"``: no ``O`` followed by ``I-PER``).  A scheme name
            reads the labels' names; ``{(from, to): False}`` forbids single
            transitions; a (K, K) or (K + 2, K + 2) boolean array (as
            :func:`fastcrf.allowed_transitions` builds) is over ``classes_``.  They
            add to the constraints the model was trained with (``CRF(constraints=)``,
            always honoured): a path must satisfy both.
        decoder : {"viterbi", "mbr"}, default="viterbi"
            ``"viterbi"``: the most probable label sequence.  ``"mbr"`` (posterior
            decoding): the allowed sequence with the highest expected token accuracy,
            the sum of its labels' marginals.
        forced : list of lists of (str or None), optional
            Forced decoding: per sequence of ``X``, one entry per token, a label the
            token must take or None (free); a whole sequence may be None.  The path
            is the best one among those that agree with it.

        Returns
        -------
        list of lists of str
            A list (``LabelSequences``) whose ``==`` and ``!=`` give numpy's
            elementwise comparison of sklearn-crfsuite 0.5's object array, with the
            truth value of the list comparison: code written for sklearn-crfsuite
            0.3 (lists) or 0.5 (``np.array(sequences, dtype=object)``) runs on it.

        Raises
        ------
        ValueError
            When the constraints leave some sequence without any label path.
        """
        return LabelSequences(self._predict_lists(X, constraints, decoder, forced,
                                                  lengths, feature_names))

    def _predict_lists(self, X, constraints=None, decoder="viterbi", forced=None,
                       lengths=None, feature_names=None):
        """:meth:`predict` as a list of lists of str."""
        model = self._fitted_model()
        result = around_empty(X, forced, lambda X, forced: model.predict(
            self._input(X, lengths, feature_names), self.n_jobs, constraints, decoder,
            forced), list)
        self._tagger_holds_last(X)
        return result

    def predict_nbest(self, X, k, *, constraints=None, forced=None, lengths=None,
                      feature_names=None):
        """The ``k`` most probable label sequences of every sequence (exact).

        Parameters
        ----------
        X : list of lists of token features, Dataset, EncodedSequences, or scipy.sparse
        lengths, feature_names : optional
            For a scipy.sparse ``X`` (one row per token), as in :meth:`fit`; the
            column names default to those the model was fitted with.
        k : int >= 1
        constraints : as in :meth:`predict`
        forced : as in :meth:`predict`
            The sequences are then those that agree with it, and their
            probabilities are conditional on it.

        Returns
        -------
        list of lists of (list of str, float)
            Per sequence, up to ``k`` ``(labels, probability)`` pairs in descending
            probability (fewer when fewer sequences are possible).
        """
        model = self._fitted_model()
        return around_empty(X, forced, lambda X, forced: model.predict_nbest(
            self._input(X, lengths, feature_names), k, self.n_jobs, constraints, forced),
            lambda: [([], 1.0)])

    def predict_edge_marginals(self, X, *, constraints=None, lengths=None, feature_names=None):
        """Pairwise marginals ``P(y_t = i, y_{t+1} = j | x)`` of every sequence.

        Returns
        -------
        list of ndarray of shape (T - 1, n_labels, n_labels)
            Indices in the order of ``classes_``.
        """
        return self._fitted_model().predict_edge_marginals(
            self._input(X, lengths, feature_names), self.n_jobs, constraints)

    def sequence_log_probability(self, X, y, *, constraints=None, lengths=None, feature_names=None):
        """``log P(y | x)`` of given labellings (python-crfsuite's ``Tagger.probability``).

        Parameters
        ----------
        X : list of lists of token features, Dataset, EncodedSequences, or scipy.sparse
        lengths, feature_names : optional
            For a scipy.sparse ``X`` (one row per token), as in :meth:`fit`; the
            column names default to those the model was fitted with.
        y : list of lists of str
            One label per token of each sequence of ``X``.
        constraints : as in :meth:`predict`
            The probability is then among the allowed sequences (-inf for a
            forbidden one).

        Returns
        -------
        ndarray of shape (n_sequences,)
        """
        X, y = self._input(X, lengths, feature_names, y)
        return self._fitted_model().sequence_log_probability(X, y, self.n_jobs, constraints)

    def sequence_probability(self, X, y, *, constraints=None, lengths=None, feature_names=None):
        """``P(y | x)`` of given labellings: ``exp`` of :meth:`sequence_log_probability`."""
        X, y = self._input(X, lengths, feature_names, y)
        return self._fitted_model().sequence_probability(X, y, self.n_jobs, constraints)

    def predict_single(self, xseq):
        """Most likely label sequence of one sequence: a list of str."""
        return self._predict_lists([xseq])[0]

    def predict_indices(self, X, *, constraints=None, lengths=None, feature_names=None):
        """As :meth:`predict`, but label codes (indices into ``classes_``).

        Parameters
        ----------
        X : list of lists of token features, Dataset, EncodedSequences, or scipy.sparse
        lengths, feature_names : optional
            For a scipy.sparse ``X`` (one row per token), as in :meth:`fit`; the
            column names default to those the model was fitted with.
        constraints : as in :meth:`predict`

        Returns
        -------
        list of ndarray of shape (T,), int64
        """
        model = self._fitted_model()
        return around_empty(X, None, lambda X, _: model.predict_indices(
            self._input(X, lengths, feature_names), self.n_jobs, constraints),
            lambda: np.zeros(0, dtype=np.int64))

    def predict_proba(self, X, *, constraints=None, forced=None, lengths=None,
                      feature_names=None):
        """Marginal probability of every label at every token, as arrays.

        Parameters
        ----------
        X : list of lists of token features, Dataset, EncodedSequences, or scipy.sparse
        lengths, feature_names : optional
            For a scipy.sparse ``X`` (one row per token), as in :meth:`fit`; the
            column names default to those the model was fitted with.
        constraints : as in :meth:`predict`
            The marginals are then over the allowed label paths only.
        forced : as in :meth:`predict`
            The marginals are then conditional on it (a forced token's is 1).

        Returns
        -------
        list of ndarray of shape (T, n_labels)
            Columns in the order of ``classes_``; each row sums to 1.
        """
        model = self._fitted_model()
        return around_empty(X, forced, lambda X, forced: model.predict_proba(
            self._input(X, lengths, feature_names), self.n_jobs, constraints, forced),
            lambda: np.zeros((0, len(model.classes))))

    def predict_marginals(self, X, *, constraints=None, forced=None, lengths=None,
                          feature_names=None):
        """Marginal probability of every label at every token.

        Parameters
        ----------
        X : list of lists of token features, Dataset, EncodedSequences, or scipy.sparse
        lengths, feature_names : optional
            For a scipy.sparse ``X`` (one row per token), as in :meth:`fit`; the
            column names default to those the model was fitted with.
        constraints, forced : as in :meth:`predict_proba`

        Returns
        -------
        list of lists of dict
            ``{label: P(y_t = label | x)}`` for every token, in the list type
            :meth:`predict` returns.
        """
        return LabelSequences(self._marginal_lists(X, constraints, forced, lengths,
                                                   feature_names))

    def _marginal_lists(self, X, constraints=None, forced=None, lengths=None,
                        feature_names=None):
        """:meth:`predict_marginals` as a list of lists of dicts."""
        model = self._fitted_model()
        result = around_empty(X, forced, lambda X, forced: model.predict_marginals(
            self._input(X, lengths, feature_names), self.n_jobs, constraints, forced),
            list)
        self._tagger_holds_last(X)
        return result

    def predict_marginals_single(self, xseq):
        """Marginals of one sequence: a list of ``{label: probability}`` dicts."""
        return self._marginal_lists([xseq])[0]

    def score(self, X, y, *, lengths=None, feature_names=None):
        """Token accuracy of :meth:`predict` on ``X`` against ``y``.

        Pairs of an empty sequence and an empty label list count no tokens, as in
        sklearn-crfsuite.

        Returns
        -------
        float
        """
        X, y, _, dropped = without_empty_pairs(X, y)
        try:
            X, y = self._input(X, lengths, feature_names, y)
            return self._fitted_model().score(X, y, self.n_jobs)
        except (ValueError, TypeError) as error:
            note_dropped(error, dropped)
            raise

    # ------------------------------------------------------------------ #
    # Persistence                                                          #
    # ------------------------------------------------------------------ #

    def save(self, path, metadata=None, format="fastcrf"):
        """Write the fitted model to ``path`` (atomically; no pickle inside).

        The default file is a numpy ``.npz`` archive of the weight arrays plus a
        JSON header (format version, labels, attributes, parameters); with
        ``format="crfsuite"`` it is CRFsuite's binary model file, which
        python-crfsuite's and CRFsuite's taggers open.  :meth:`CRF.load` reads both.

        Parameters
        ----------
        path : str or os.PathLike
        metadata : dict, optional
            Anything JSON can hold, stored beside the weights and returned by
            :meth:`CRF.load` as ``metadata_`` (``fastcrf train`` keeps its feature
            template there, so ``fastcrf tag`` can extract the same features).
            Only in fastcrf's format.
        format : {'fastcrf', 'crfsuite'}, default='fastcrf'
            A CRFsuite file has no start/end scores: a model whose are not all 0
            (what ``fit`` learns) is refused; train with
            :class:`fastcrf.pycrfsuite.Trainer` for a model CRFsuite can hold.

        Raises
        ------
        TypeError
            For ``metadata`` that is not a JSON-serialisable dict.
        ValueError
            For an unknown ``format``, or a model that the CRFsuite format cannot
            hold.
        """
        save_model(self._fitted_model(), path, params=self._stored_params(),
                   metadata=metadata, format=format)

    def _stored_params(self):
        """The parameters a model file keeps: the template as its text."""
        params = self.get_params()
        params["template"] = template_text(params.get("template"))
        return params

    @classmethod
    def load(cls, path, *, raw_rows=False):
        """Read a model written by :meth:`save`, or a CRFsuite model file.

        The format is told by the file's contents, not its name.  Loading never
        executes code from the file.

        Parameters
        ----------
        path : str or os.PathLike
        raw_rows : bool, default=False
            True: the CRF's ``template`` is the feature template ``fastcrf train``
            stored in the file, so the prediction methods take raw column rows (the
            token columns of the training file, its label column left out), as
            ``fastcrf tag`` reads them.  A CRF fitted with ``template=`` has it
            back either way.

        Returns
        -------
        CRF
            Fitted, with ``metadata_``: the dict given to :meth:`save` (empty
            when none was).

        Raises
        ------
        ValueError
            For a file that is neither a fastcrf nor a CRFsuite model, is truncated
            or corrupted, or has an unsupported format version; for a stored
            template that does not compile; with ``raw_rows``, for a file that holds
            no template.
        """
        model, params = load_model(path)
        valid = set(cls._get_param_names())
        params = {k: v for k, v in params.items() if k in valid}
        if raw_rows and params.get("template") is None:
            params["template"] = cli_template(model.metadata, path)
        if params.get("template") is not None:
            try:
                compiled_template(params["template"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{os.fspath(path)!r}: the stored feature template is not "
                                 f"valid ({exc})") from None
        crf = cls(**params)
        crf._model = model
        return crf
