"""Where the optional CoNLL data lives (never copied into the repository)."""

import os
from pathlib import Path

import pytest


def conll2000_dir():
    """The CoNLL-2000 folder: $FASTCRF_CONLL2000, else ../shared/data/conll2000."""
    env = os.environ.get("FASTCRF_CONLL2000")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2000"


def conll2000_file(name):
    """Path of ``train.txt.gz`` or ``test.txt.gz``, or skip the test naming where to put it."""
    path = conll2000_dir() / name
    if not path.is_file():
        pytest.skip(
            f"CoNLL-2000 data not found at {path}; set FASTCRF_CONLL2000 to the folder "
            "holding train.txt.gz and test.txt.gz"
        )
    return path


def conll2002_file(name):
    """Path of CoNLL-2002 Spanish ``esp.train.gz``, ``esp.testa.gz`` or ``esp.testb.gz``.

    The folder is $FASTCRF_CONLL2002, else ../shared/data/conll2002; the test is
    skipped, naming where to put the files, when it is missing.
    """
    env = os.environ.get("FASTCRF_CONLL2002")
    folder = Path(env) if env else (
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2002")
    path = folder / name
    if not path.is_file():
        pytest.skip(
            f"CoNLL-2002 data not found at {path}; set FASTCRF_CONLL2002 to the folder "
            "holding esp.train.gz, esp.testa.gz and esp.testb.gz"
        )
    return path
