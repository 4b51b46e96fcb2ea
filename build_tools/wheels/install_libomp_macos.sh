#!/usr/bin/env bash
# Install an OpenMP runtime for macOS wheel builds into ~/.local/libomp and record the
# deployment target it was built for (delocate refuses a wheel whose target is lower
# than that of a library it bundles).  Homebrew's bottle targets the runner's own macOS
# version, so the wheels it produces require that version or newer.
set -euxo pipefail
brew install libomp
prefix="$(brew --prefix libomp)"
mkdir -p "$HOME/.local/libomp"
cp -R "$prefix/include" "$prefix/lib" "$HOME/.local/libomp/"
target=$(otool -l "$HOME/.local/libomp/lib/libomp.dylib" \
  | awk '/LC_BUILD_VERSION/{f=1} f&&/minos/{print $2; exit}')
echo "${target:-$(sw_vers -productVersion | cut -d. -f1).0}" > "$HOME/.local/libomp/deployment_target"
cat "$HOME/.local/libomp/deployment_target"
