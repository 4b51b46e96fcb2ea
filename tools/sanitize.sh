#!/usr/bin/env bash
# Build the extensions with AddressSanitizer and UndefinedBehaviorSanitizer (gcc or
# clang) in a fresh virtual environment and run the test suite and the fuzz corpus
# under them.  Any report fails the run (halt_on_error).  Leak detection is off:
# CPython itself keeps memory until exit.  torch is not installed (its own
# allocator and threads do not run under ASan), so its tests skip.
#
#   bash tools/sanitize.sh [pytest arguments]      # e.g. -x -q tests/test_core.py
set -euo pipefail
cd "$(dirname "$0")/.."
CC="${CC:-gcc}"

venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# FASTCRF_FAIL_NO_OPENMP: an instrumented build must keep its OpenMP paths.
FASTCRF_FAIL_NO_OPENMP=1 CC="$CC" CFLAGS="${CFLAGS:-} $SAN -g -O1" LDFLAGS="${LDFLAGS:-} $SAN" \
    pip install --no-cache-dir ".[test]"

# The interpreter is not built with ASan: the runtime must be loaded first.
asan="$("$CC" -print-file-name=libasan.so)"
ubsan="$("$CC" -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# A fixed thread count keeps the OpenMP paths exercised on any machine.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
cd "$(mktemp -d)"   # outside the source tree: the installed, instrumented package
python -c "import fastcrf; fastcrf.show_config()"
pytest -p no:cacheprovider "${@:--q}" "$OLDPWD/tests"
