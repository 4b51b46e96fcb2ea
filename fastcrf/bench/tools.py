"""What each tool runs for each algorithm of the suite.

A tool is a :class:`Tool`: the modules it needs, and ``fit_tag(algorithm, X_train,
y_train, X_test, n_jobs)`` that trains on the feature lists (encoding or
``Trainer.append`` included: that is part of what a user waits for) and tags the test
sentences, returning the fit and tag seconds, the predictions and a few model counts.

:data:`ALGORITHMS` pairs each suite algorithm with the settings every tool runs for
it.  Where a tool has no trainer of that kind its entry is None and it is skipped;
where the settings differ they are the closest ones and the table says which ran.
"""

import gc
import os
import tempfile
import time
from dataclasses import dataclass

__all__ = ["ALGORITHMS", "TOOLS", "Tool", "available", "settings_text"]

_TUTORIAL = {"c1": 0.1, "c2": 0.1, "max_iterations": 100}

#: suite algorithm -> tool family -> (trainer name, keyword settings).  "crfsuite" is
#: CRFsuite's own trainers (python-crfsuite and sklearn-crfsuite run the same C code).
ALGORITHMS = {
    # fastcrf's defaults against CRFsuite's fastest trainer at a comparable model
    # (passive-aggressive, 10 iterations; CRFsuite has no averaged SGD).
    "default": {"fastcrf": (None, {}), "crfsuite": ("pa", {"max_iterations": 10})},
    # The setting of sklearn-crfsuite's tutorial, which its users copy.
    "lbfgs": {"fastcrf": ("lbfgs", dict(_TUTORIAL)), "crfsuite": ("lbfgs", dict(_TUTORIAL))},
    "l2sgd": {"fastcrf": ("l2sgd", {"c2": 1.0, "max_iterations": 10}),
              "crfsuite": ("l2sgd", {"c2": 1.0, "max_iterations": 10})},
    "ap": {"fastcrf": ("ap", {"max_iterations": 10}),
           "crfsuite": ("ap", {"max_iterations": 10})},
    "pa": {"fastcrf": ("pa", {"max_iterations": 10}),
           "crfsuite": ("pa", {"max_iterations": 10})},
    # fastcrf's averaged SGD (its default trainer) on its own, for --algorithms asgd.
    "asgd": {"fastcrf": ("asgd", {}), "crfsuite": None},
}


def settings_text(algorithm, family):
    """How a tool family runs a suite algorithm, in words (``None`` if it cannot)."""
    entry = ALGORITHMS[algorithm][family]
    if entry is None:
        return None
    name, kw = entry
    parts = [f"algorithm={name!r}" if name else "defaults"]
    parts += [f"{k}={v}" for k, v in kw.items()]
    return ", ".join(parts)


def _timed(fit, tag):
    # A full collection before each phase, for every tool: otherwise the garbage that
    # building the data (or the fit) left is collected in the next phase, by luck of
    # the collector's counters (seen: 21 ms of a 25 ms tagging run).
    gc.collect()
    t0 = time.perf_counter()
    model = fit()
    t1 = time.perf_counter()
    gc.collect()
    t2 = time.perf_counter()
    pred = tag(model)
    t3 = time.perf_counter()
    return t1 - t0, t3 - t2, model, pred


def _fit_tag_fastcrf(algorithm, X_train, y_train, X_test, n_jobs):
    import fastcrf

    name, kw = ALGORITHMS[algorithm]["fastcrf"]
    crf = fastcrf.CRF(algorithm=name, random_state=0, n_jobs=n_jobs, **kw)
    fit_s, tag_s, crf, pred = _timed(lambda: crf.fit(X_train, y_train),
                                     lambda m: m.predict(X_test))
    return fit_s, tag_s, pred, {"n_iter": crf.n_iter_, "nonzero_weights": crf.n_nonzero_weights_}


def _fit_tag_pycrfsuite(algorithm, X_train, y_train, X_test, n_jobs):
    import pycrfsuite

    name, kw = ALGORITHMS[algorithm]["crfsuite"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.crfsuite")

        def fit():
            trainer = pycrfsuite.Trainer(algorithm=name, verbose=False)
            trainer.set_params({"feature.possible_transitions": True, **kw})
            for xseq, yseq in zip(X_train, y_train):
                trainer.append(xseq, yseq)
            trainer.train(path)
            return trainer

        def tag(trainer):
            tagger = pycrfsuite.Tagger()
            tagger.open(path)
            try:
                return [tagger.tag(xseq) for xseq in X_test]
            finally:
                tagger.close()

        fit_s, tag_s, trainer, pred = _timed(fit, tag)
        log = trainer.logparser
        tagger = pycrfsuite.Tagger()
        tagger.open(path)
        try:
            info = tagger.info()
            # The model file keeps the non-zero weights only.
            nonzero = len(info.state_features) + len(info.transitions)
        finally:
            tagger.close()
        extra = {"n_iter": len(log.iterations) if log.iterations else None,
                 "nonzero_weights": nonzero}
    return fit_s, tag_s, pred, extra


def _fit_tag_sklearn_crfsuite(algorithm, X_train, y_train, X_test, n_jobs):
    import sklearn_crfsuite

    name, kw = ALGORITHMS[algorithm]["crfsuite"]
    crf = sklearn_crfsuite.CRF(algorithm=name, all_possible_transitions=True, **kw)
    fit_s, tag_s, crf, pred = _timed(lambda: crf.fit(X_train, y_train),
                                     lambda m: m.predict(X_test))
    return fit_s, tag_s, pred, {"n_iter": len(crf.training_log_.iterations) or None,
                                "nonzero_weights": len(crf.state_features_)
                                + len(crf.transition_features_)}


@dataclass(frozen=True)
class Tool:
    """One benchmarked tool.

    Attributes
    ----------
    name : str
        As the table and ``--tools`` name it.
    family : str
        The key of :data:`ALGORITHMS`' entries it runs.
    modules : tuple of str
        What it imports (all must import for the tool to run).
    distribution : str
        The package a user installs to get it (for the versions and the skip notes).
    fit_tag : callable
        ``fit_tag(algorithm, X_train, y_train, X_test, n_jobs) -> (fit s, tag s,
        predictions, extra dict)``.
    threaded : bool
        Whether it takes ``n_jobs`` (fastcrf runs at 1 thread and at all threads).
    """

    name: str
    family: str
    modules: tuple
    distribution: str
    fit_tag: object
    threaded: bool = False


TOOLS = {
    "fastcrf": Tool("fastcrf", "fastcrf", ("fastcrf",), "fastcrf", _fit_tag_fastcrf, True),
    "python-crfsuite": Tool("python-crfsuite", "crfsuite", ("pycrfsuite",),
                            "python-crfsuite", _fit_tag_pycrfsuite),
    "sklearn-crfsuite": Tool("sklearn-crfsuite", "crfsuite", ("sklearn_crfsuite",),
                             "sklearn-crfsuite", _fit_tag_sklearn_crfsuite),
}


def available(tool):
    """``(True, version)`` when every module of ``tool`` imports, else ``(False, why)``."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    for module in tool.modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an installed but broken peer is skipped, not fatal
            return False, f"{module} does not import ({type(exc).__name__}: {exc})"
    try:
        return True, version(tool.distribution)
    except PackageNotFoundError:
        return True, None
