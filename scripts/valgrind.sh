#!/usr/bin/env bash
# Runs the integration and WebTransport integration suites with every
# h3wt-server under valgrind's memcheck (the last step of scripts/test.sh;
# about 2 minutes on 2 cores: the cases are light, and waits are scaled for
# the ~20x slowdown).  Any memcheck error or definitely or
# indirectly lost block makes the server exit 99, which fails its case.
#   scripts/valgrind.sh [CTEST_REGEX]     default: the integration and wt cases
# Uses the build/ tree of scripts/test.sh (RelWithDebInfo: line numbers in
# valgrind's stacks), building it first.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/bootstrap.sh)"
command -v valgrind >/dev/null || {
  echo "valgrind.sh: apt-get install valgrind" >&2
  apt-get install -y --no-install-recommends valgrind >&2
}
cmake -S . -B build -G Ninja -DCMAKE_PREFIX_PATH="$H3WT_DEPS_PREFIX" \
  -DH3WT_CURL="$H3WT_CURL" -DH3WT_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
export H3WT_SERVER_WRAPPER="valgrind --quiet --error-exitcode=99 \
--leak-check=full --errors-for-leak-kinds=definite,indirect \
--show-leak-kinds=definite,indirect"
# The soak is the long-running load test; under valgrind one round is enough.
export H3WT_SOAK_SECONDS=${H3WT_SOAK_SECONDS:-1}
# One at a time: two cases with servers under valgrind on two vCPUs
# starved each other enough for a server to need 33 s to start and a
# client's 10 s handshake timeout to expire (wt.redis_node_killed, once).
ctest --test-dir build -R "${1:-^(integration|wt)\.}" --output-on-failure \
  --timeout 3600 -j 1
