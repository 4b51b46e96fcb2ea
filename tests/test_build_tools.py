"""The OpenMP probe used by setup.py: works with this compiler, degrades as documented."""

import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, os.pardir, "build_tools", "openmp.py")
if not os.path.exists(PROBE):
    pytest.skip("build_tools/ is only in the source tree", allow_module_level=True)

build_ext = pytest.importorskip("setuptools.command.build_ext")


def _load_probe():
    spec = importlib.util.spec_from_file_location("fastcrf_build_openmp", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compiler():
    compiler = build_ext.new_compiler()
    build_ext.customize_compiler(compiler)
    return compiler


def test_probe_accepts_the_flags_it_chooses():
    openmp = _load_probe()
    compiler = _compiler()
    compile_args, link_args = openmp.openmp_flags(compiler)
    if not openmp._probe(compiler, compile_args, link_args):
        pytest.skip("this compiler has no working OpenMP")
    assert openmp.check_openmp(compiler) == (compile_args, link_args)


def test_no_openmp_warns_and_builds_serially(monkeypatch):
    openmp = _load_probe()
    monkeypatch.setattr(openmp, "openmp_flags", lambda c: (["-fno-such-openmp-flag"], []))
    monkeypatch.delenv("FASTCRF_FAIL_NO_OPENMP", raising=False)
    with pytest.warns(UserWarning, match="building a serial extension"):
        assert openmp.check_openmp(_compiler()) == ([], [])


def test_no_openmp_is_an_error_when_asked(monkeypatch):
    openmp = _load_probe()
    monkeypatch.setattr(openmp, "openmp_flags", lambda c: (["-fno-such-openmp-flag"], []))
    monkeypatch.setenv("FASTCRF_FAIL_NO_OPENMP", "1")
    with pytest.raises(RuntimeError, match="FASTCRF_FAIL_NO_OPENMP"):
        openmp.check_openmp(_compiler())
