#!/usr/bin/env bash
# Builds h3wt (release) and starts the demo server on UDP port 4433.
# Extra arguments go to h3wt-server (see h3wt-server --help).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(H3WT_WITH_CURL=0 scripts/bootstrap.sh)"
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$H3WT_DEPS_PREFIX" -DH3WT_BUILD_TESTS=OFF >/dev/null
cmake --build build-release -j "$(nproc)"
exec build-release/apps/h3wt-server --web web "$@"
