"""Where the optional CoNLL-2000 data lives (never copied into the repository)."""

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
