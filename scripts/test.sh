#!/usr/bin/env bash
# Builds everything and runs the whole test suite: unit and integration
# tests in a warnings-as-errors build, then the same tests again in an
# AddressSanitizer + UndefinedBehaviorSanitizer build, then the tests that
# run loops on several threads (workers, shared brokers) in a
# ThreadSanitizer build, then the integration suites once more with the
# server under valgrind's memcheck.  Installs what it
# needs first (scripts/bootstrap.sh), so it works on a fresh Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/bootstrap.sh)"
JOBS=$(nproc)
configure() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_PREFIX_PATH="$H3WT_DEPS_PREFIX" \
    -DH3WT_CURL="$H3WT_CURL" -DH3WT_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

echo "== build (RelWithDebInfo, -Werror)"
configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== build (ASan + UBSan)"
configure build-asan -DCMAKE_BUILD_TYPE=Debug -DH3WT_SANITIZE=ON

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
echo "== tests under ASan + UBSan"
ctest --test-dir build-asan --output-on-failure -j "$JOBS" || status=1
echo "== tests"
ctest --test-dir build --output-on-failure -j "$JOBS" || status=1
echo "== tests with several threads under ThreadSanitizer"
# Only what runs several loops on several threads: the rest is one thread.
cmake -S . -B build-tsan -G Ninja -DCMAKE_PREFIX_PATH="$H3WT_DEPS_PREFIX" \
  -DH3WT_CURL="$H3WT_CURL" -DCMAKE_BUILD_TYPE=Debug -DH3WT_TSAN=ON >/dev/null
cmake --build build-tsan -j "$JOBS" --target h3wt_loop_channels \
  h3wt_loop_workers h3wt-server h3wt-client
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
build-tsan/tests/loop/test_channels two_hubs_on_two_threads_share_a_memory_broker || status=1
build-tsan/tests/loop/test_workers || status=1
# The demo server with two workers sharing channels through the memory
# broker (a race report ends it with a non-zero status: the case fails).
python3 tests/wt/wt_itest.py --server build-tsan/apps/h3wt-server \
  --client build-tsan/apps/h3wt-client channels_cli || status=1
unset TSAN_OPTIONS
echo "== integration tests, server under valgrind memcheck"
scripts/valgrind.sh || status=1
exit $status
