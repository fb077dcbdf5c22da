#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (clang, with ASan + UBSan) over the
# parsers of peer bytes, each for SECONDS (default 30).
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: path wtproto chproto
#                                              http1 redisproto
# New inputs go to a scratch corpus under build-fuzz/, never into the
# repository's seed corpus (tests/fuzz/corpus/<target>); a crash leaves its
# input in build-fuzz/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-30}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(path wtproto chproto http1 redisproto)
CC=${FUZZ_CC:-clang}
OUT=build-fuzz
mkdir -p "$OUT"
declare -A SOURCES=(
  [path]="lib/h3wt_path.c"
  [wtproto]="lib/h3wt_wtproto.c"
  # chproto reuses wtproto's varint helpers.
  [chproto]="lib/h3wt_chproto.c lib/h3wt_wtproto.c"
  [http1]="apps/h3wt_http1.c lib/h3wt_path.c lib/h3wt_status.c"
  [redisproto]="lib/h3wt_redisproto.c"
)
# http1 drives the real listener over loopback TCP: libuv and llhttp.
declare -A LIBS=(
  [http1]="-Iapps $(pkg-config --cflags --libs libuv libllhttp 2>/dev/null || echo -luv -lllhttp)"
)
for t in "${TARGETS[@]}"; do
  src=${SOURCES[$t]:?unknown fuzz target $t}
  bin="$OUT/fuzz_$t"
  stale=0
  for f in "tests/fuzz/fuzz_$t.c" $src; do
    [ "$f" -nt "$bin" ] && stale=1
  done
  if [ ! -x "$bin" ] || [ $stale = 1 ]; then
    # shellcheck disable=SC2086 # word splitting of the lists is meant
    $CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -Ilib -Ilib/include "tests/fuzz/fuzz_$t.c" $src ${LIBS[$t]:-} -o "$bin"
  fi
  corpus="$OUT/corpus-$t"
  mkdir -p "$corpus"
  echo "== fuzz $t for ${SECONDS_EACH}s"
  (cd "$OUT" && "./fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=5 \
      -print_final_stats=1 "corpus-$t" "../tests/fuzz/corpus/$t") 2>&1 |
    grep -E '^(==|#[0-9]+ +DONE|stat::number_of_executed_units|SUMMARY|ERROR)' || true
  # libFuzzer exits non-zero on a crash; grep above hides the status, so
  # check for crash artifacts instead.
  if ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* >/dev/null 2>&1; then
    echo "fuzz $t: found a failing input:"; ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* 2>/dev/null
    exit 1
  fi
done
