#!/usr/bin/env bash
# Build the extensions with AddressSanitizer and UndefinedBehaviorSanitizer (gcc or
# clang) in a fresh virtual environment and run the test suite and the fuzz corpus
# under them.  Any report fails the run (halt_on_error).  Leak detection is off:
# CPython itself keeps memory until exit.  torch is not installed (its own
# allocator and threads do not run under ASan), so its tests skip.
#
#   bash tools/sanitize.sh [pytest arguments]      # e.g. -x -q tests/test_core.py
#
# Test paths are relative to the repository root; without one the whole suite runs.
# SANITIZE_VENV=DIR builds the instrumented environment in DIR once and reuses it on
# the next runs (to run the suite in pieces); rebuild it after changing the kernels.
#
# Where the reports go.  pytest captures file descriptor 2 into a temporary file by
# default, and a sanitizer stops the process before pytest can show it: the report
# was lost and the run ended with a bare exit status (the "abort with no report" of
# the dask tests, which was a real misaligned load).  So ASan writes its reports to
# files (log_path, one per process: the dask worker processes inherit LD_PRELOAD and
# the options, and report there too), and pytest captures sys.stderr only
# (--capture=sys), which leaves descriptor 2 to UBSan: gcc's UBSan runtime, loaded
# beside ASan's, ignores log_path.  The output is kept and searched for UBSan's
# reports, which a worker process may print while the test that started it passes.
# UBSan aborts like ASan (abort_on_error) instead of exiting with status 1, which
# reads like an ordinary test failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
CC="${CC:-gcc}"

venv="${SANITIZE_VENV:-$(mktemp -d)/venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    # FASTCRF_FAIL_NO_OPENMP: an instrumented build must keep its OpenMP paths.
    FASTCRF_FAIL_NO_OPENMP=1 CC="$CC" CFLAGS="${CFLAGS:-} $SAN -g -O1" \
        LDFLAGS="${LDFLAGS:-} $SAN" pip install --no-cache-dir ".[test]"
else
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
fi

# Arguments naming a file or folder of the repository (tests/test_x.py, or
# tests/test_x.py::test_y) are made absolute: pytest runs outside the source tree.
args=()
with_path=0
for a in "$@"; do
    if [[ "$a" != -* && -e "$root/${a%%::*}" ]]; then
        args+=("$root/$a"); with_path=1
    else
        args+=("$a")
    fi
done
(( $# )) || args=(-q)
(( with_path )) || args+=("$root/tests")

reports="$(mktemp -d)"
# The interpreter is not built with ASan: the runtime must be loaded first.
asan="$("$CC" -print-file-name=libasan.so)"
ubsan="$("$CC" -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
# A fixed thread count keeps the OpenMP paths exercised on any machine.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# pytest writes into a pipe (tee): unbuffered, its progress up to an abort is kept.
export PYTHONUNBUFFERED=1
cd "$(mktemp -d)"   # outside the source tree: the installed, instrumented package
python -c "import fastcrf; fastcrf.show_config()"
status=0
pytest -p no:cacheprovider --capture=sys "${args[@]}" 2>&1 | tee "$reports/pytest.log" \
    || status=${PIPESTATUS[0]}
if compgen -G "$reports/asan*" > /dev/null; then
    cat "$reports"/asan*
    echo "sanitize.sh: AddressSanitizer reports above (from $reports)" >&2
    exit 1
fi
if grep -q ': runtime error: ' "$reports/pytest.log"; then
    echo "sanitize.sh: UndefinedBehaviorSanitizer reports in the output above" >&2
    exit 1
fi
if (( status == 134 )); then
    echo "sanitize.sh: pytest aborted (a sanitizer report, if any, is above)" >&2
elif (( status == 0 )); then
    echo "sanitize.sh: no sanitizer report"
fi
exit "$status"
