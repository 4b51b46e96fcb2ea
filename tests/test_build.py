"""The build must have OpenMP unless told otherwise (as scikit-learn's test_build)."""

import os

import pytest

import fastcrf


def test_openmp_is_enabled():
    if os.environ.get("FASTCRF_SKIP_OPENMP_TEST"):
        pytest.skip("FASTCRF_SKIP_OPENMP_TEST is set")
    config = fastcrf.show_config(print_out=False)
    assert config["openmp"], (
        "fastcrf was built without OpenMP, so n_jobs has no effect. Install an OpenMP "
        "runtime (gcc's libgomp, or `brew install libomp` on macOS) and rebuild, or set "
        "FASTCRF_SKIP_OPENMP_TEST=1 to accept a serial build."
    )
    assert config["max_threads"] >= 1


def test_show_config_prints(capsys):
    config = fastcrf.show_config()
    out = capsys.readouterr().out
    assert f"fastcrf: {fastcrf.__version__}" in out and "openmp" in out
    assert set(config) >= {"fastcrf", "openmp", "max_threads", "numpy"}
