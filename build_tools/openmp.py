"""Find the OpenMP flags for the compiler setuptools will use, and prove they work.

The recipe follows scikit-learn's (<= 1.4) and POT's build helpers: choose flags per
compiler and platform, then compile, link and run a small ``#pragma omp parallel``
program with the very compiler object ``build_ext`` holds.  Without a working OpenMP
the extension is built serially with a warning, unless ``FASTCRF_FAIL_NO_OPENMP`` is
set (wheel builds set it), in which case the build fails.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

PROBE_SOURCE = textwrap.dedent(
    """\
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
    #pragma omp parallel
        printf("nthreads=%d\\n", omp_get_num_threads());
        return 0;
    }
    """
)


def _env_flag(name):
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


def openmp_flags(compiler):
    """Return ``(compile_args, link_args)`` that enable OpenMP for ``compiler``.

    Parameters
    ----------
    compiler : distutils CCompiler
        The compiler instance of the running ``build_ext`` command.

    Returns
    -------
    compile_args, link_args : list of str
    """
    ctype = getattr(compiler, "compiler_type", "")
    if ctype == "msvc":
        return ["/openmp"], []
    if ctype == "intelw":
        return ["/Qopenmp"], ["/Qopenmp"]
    if sys.platform == "darwin":
        if "openmp" in os.environ.get("CPPFLAGS", ""):
            # The environment (e.g. a wheel build) supplies -Xpreprocessor -fopenmp,
            # the libomp include path and -lomp itself.
            return [], []
        for prefix in ("/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"):
            if os.path.isdir(prefix):
                return (
                    ["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                    [f"-L{prefix}/lib", "-lomp", f"-Wl,-rpath,{prefix}/lib"],
                )
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def _probe(compiler, compile_args, link_args):
    """Compile, link and run the probe; return True when OpenMP works."""
    tmp = tempfile.mkdtemp(prefix="fastcrf-openmp-")
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        with open("probe.c", "w") as f:
            f.write(PROBE_SOURCE)
        os.mkdir("objects")
        objects = compiler.compile(
            ["probe.c"], output_dir="objects", extra_postargs=compile_args
        )
        exe = "probe" + (compiler.exe_extension or "")
        # The extensions' link line gets $LDFLAGS from distutils but an executable's
        # does not: without them a CFLAGS=-fsanitize=... build fails to link the
        # probe and would silently lose OpenMP.
        ldflags = shlex.split(os.environ.get("LDFLAGS", ""))
        compiler.link_executable(objects, "probe", extra_postargs=link_args + ldflags)
        if os.environ.get("PYTHON_CROSSENV"):
            # Cross-compiling: the binary cannot run here; compiling and linking is
            # the best evidence available.
            return True
        out = subprocess.run(
            [os.path.join(tmp, exe)], capture_output=True, text=True, timeout=60
        ).stdout.splitlines()
        if not out or not out[0].startswith("nthreads="):
            return False
        return len(out) == int(out[0].split("=")[1])
    except Exception:  # any compile, link or run failure means "no OpenMP"
        return False
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


def check_openmp(compiler):
    """Return the OpenMP ``(compile_args, link_args)``, or empty lists for a serial build.

    Raises
    ------
    RuntimeError
        When OpenMP does not work and ``FASTCRF_FAIL_NO_OPENMP`` is set.
    """
    if _env_flag("FASTCRF_DISABLE_OPENMP"):
        return [], []
    compile_args, link_args = openmp_flags(compiler)
    if _probe(compiler, compile_args, link_args):
        return compile_args, link_args
    message = (
        "fastcrf: the compiler cannot build and run an OpenMP program with flags "
        f"{compile_args + link_args}; building a serial extension (n_jobs will have "
        "no effect). On macOS install libomp (e.g. `brew install libomp`)."
    )
    if _env_flag("FASTCRF_FAIL_NO_OPENMP"):
        raise RuntimeError(message + " FASTCRF_FAIL_NO_OPENMP is set, so this is an error.")
    warnings.warn(message)
    return [], []
