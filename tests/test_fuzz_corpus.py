"""Replay the inputs the fuzzer kept (``tools/fuzz.py``): every one once made a parser
raise something other than its documented ``ValueError``/``TypeError``, crash or
hang; each must now end quickly with at most those errors."""

import os
import pathlib
import time

import pytest

import fuzz_targets

CORPUS = pathlib.Path(__file__).parent / "fuzz_corpus"
KEPT = sorted((target.name, path) for target in CORPUS.iterdir() if target.is_dir()
              for path in target.iterdir() if path.is_file()) if CORPUS.exists() else []


@pytest.mark.parametrize("target, path", KEPT, ids=[f"{t}/{p.name[:18]}" for t, p in KEPT])
def test_kept_input_is_handled(target, path):
    started = time.perf_counter()
    fuzz_targets.TARGETS[target](path.read_bytes())
    assert time.perf_counter() - started < 20


def test_every_kept_input_belongs_to_a_target():
    assert KEPT, "the regression corpus is empty: the replay would test nothing"
    assert {t for t, _ in KEPT} <= set(fuzz_targets.TARGETS)


@pytest.mark.parametrize("target", sorted(fuzz_targets.TARGETS))
def test_targets_take_valid_and_garbage_input(target):
    fn = fuzz_targets.TARGETS[target]
    valid = {"columns": b"The DT B-NP\ncat NN I-NP\n\nDogs NNS B-NP\n",
             "template": b"U00:%x[-1,0]\nU01:%x[0,0]/%x[0,1]\nB\n",
             "tokens": bytes(range(0, 256, 7)),
             "model": fuzz_targets.seed_models()["npz"] if target == "model" else b""}
    fn(valid[target])
    fn(os.urandom(64))
    fn(b"")


def test_a_target_lets_other_errors_through(monkeypatch):
    # The harness must not swallow what it exists to find.
    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(fuzz_targets, "read_conll", broken)
    with pytest.raises(KeyError):
        fuzz_targets.columns(b"a b\n")
