"""Build the compiled modules (fastcrf._kernels, fastcrf._features); all metadata lives
in pyproject.toml."""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_tools.openmp import check_openmp  # noqa: E402

DEBUG = os.environ.get("FASTCRF_CYTHON_DEBUG", "0") not in ("", "0")


class BuildExtWithOpenMP(build_ext):
    """Add the OpenMP and optimisation flags that the actual compiler accepts."""

    def build_extensions(self):
        compile_args, link_args = check_openmp(self.compiler)
        # -fno-trapping-math: fastcrf never reads floating-point exception flags, and
        # without it GCC will not vectorise loops with comparisons (clang's default).
        # -fno-math-errno: nor does any code read errno after a libm call; with it,
        # sqrt is one instruction that vectorises (the AdaGrad rows' step sizes)
        # instead of a call kept for the errno of a negative argument.
        optimise = (["/O2"] if self.compiler.compiler_type == "msvc"
                    else ["-O3", "-fno-trapping-math", "-fno-math-errno"])
        for ext in self.extensions:
            ext.extra_compile_args = optimise + compile_args + ext.extra_compile_args
            ext.extra_link_args = link_args + ext.extra_link_args
        super().build_extensions()


KERNELS = "fastcrf/_kernels"
FEATURES = "fastcrf/_features"


def kernel(name, headers=(), pxds=()):
    """One module of fastcrf._kernels, rebuilt when its headers or .pxd files change."""
    return Extension(
        f"fastcrf._kernels.{name}",
        [f"{KERNELS}/{name}.pyx"],
        include_dirs=[KERNELS],
        depends=[f"{KERNELS}/{d}" for d in headers + pxds],
    )


CORE_PXD = ("_core.pxd", "_limits.pxd")
extensions = [
    kernel("_core", ("_limits.h", "_kernels.h", "_openmp.h"), CORE_PXD),
    kernel("_sparse", ("_limits.h", "_kernels.h", "_rows.h", "_padded.h"),
           CORE_PXD + ("_rows.pxd", "_padded.pxd")),
    kernel("_sgd_engine", ("_limits.h", "_kernels.h", "_rows.h", "_sync.h", "_padded.h",
                           "_l1.h", "_adagrad.h"),
           CORE_PXD + ("_rows.pxd", "_prep.pxd", "_padded.pxd", "_edges.pxd")),
    kernel("_online_engine", ("_limits.h", "_kernels.h", "_rows.h"),
           CORE_PXD + ("_rows.pxd", "_edges.pxd")),
    kernel("_prep", (), ("_prep.pxd",)),
    kernel("_edges", ("_limits.h", "_kernels.h", "_rows.h"),
           CORE_PXD + ("_rows.pxd", "_edges.pxd")),
    kernel("_vector"),
]
# The encoder reads the caller's lists and strings without locks, and its threaded
# passes rely on the GIL keeping every other thread out (fastcrf/_features/_encode.pyx,
# g): free-threaded CPython re-enables the GIL when it is imported.
encoder = [
    Extension(
        "fastcrf._features._encode",
        [f"{FEATURES}/_encode.pyx"],
        include_dirs=[FEATURES, KERNELS],   # _openmp.h is the kernels'
        depends=[f"{FEATURES}/_names.h", f"{FEATURES}/_murmur.h", f"{KERNELS}/_openmp.h"],
    ),
]
# The column reader keeps no shared Python state: its C runs on its own buffers.
extensions.append(Extension(
    "fastcrf._features._columns",
    [f"{FEATURES}/_columns.pyx"],
    include_dirs=[FEATURES, KERNELS],   # _openmp.h is the kernels'
    depends=[f"{FEATURES}/_columns.h", f"{FEATURES}/_names.h", f"{FEATURES}/_murmur.h",
             f"{KERNELS}/_openmp.h"],
))

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": True,
    # The kernels keep no shared Python state, so free-threaded CPython (3.13t) need
    # not re-enable the GIL on import (but see `encoder`).
    "freethreading_compatible": True,
}

setup(
    # cythonize only compares timestamps, so each set of directives gets its own output
    # folder: a debug build never reuses C generated without bounds checks, or back.
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        build_dir=os.path.join("build", "cython-debug" if DEBUG else "cython"),
    ) + cythonize(
        encoder,
        compiler_directives={**directives, "freethreading_compatible": False},
        build_dir=os.path.join("build", "cython-debug" if DEBUG else "cython"),
    ),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
