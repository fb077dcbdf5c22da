#!/usr/bin/env bash
# bench/callgrind_get.sh: user-space instructions per GET of a 1 KiB file,
# counted by valgrind's callgrind (repeatable where wall-clock figures on a
# shared machine are not).
#
#   bench/callgrind_get.sh [TREE] [PATH]
#
# TREE: a build tree with apps/h3wt-server and apps/h3wt-bench (default
# build-release).  PATH: what to GET (default /small.bin, a 1 KiB file; "/"
# is the in-memory handler).  The server runs under callgrind with
# collection off; h3wt-bench (native) keeps 4 connections x 16 requests in
# flight; after WARM seconds (handshakes, first requests) collection is
# switched on for MEASURE seconds, then off and dumped.  Prints the
# instructions collected, the requests begun in that window (calls of the
# server's hs_begin_headers) and their ratio, and the top functions by
# inclusive cost.  Kernel work (syscalls, the UDP stack) is not counted:
# `strace -c -p PID` shows the syscalls per request.
#
# Environment: WARM (default 8), MEASURE (default 20), KEEP=1 keeps the
# callgrind output (its path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
TREE=${1:-build-release}
URLPATH=${2:-/small.bin}
WARM=${WARM:-8}
MEASURE=${MEASURE:-20}
SERVER=$TREE/apps/h3wt-server
BENCH=$TREE/apps/h3wt-bench
for f in "$SERVER" "$BENCH"; do
  [ -x "$f" ] || { echo "callgrind_get.sh: $f missing" >&2; exit 1; }
done
command -v callgrind_control >/dev/null ||
  { echo "callgrind_get.sh: valgrind is not installed" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/h3wt-callgrind.XXXXXX")
SRV_PID="" BENCH_PID=""
cleanup() {
  for p in $BENCH_PID $SRV_PID; do kill "$p" 2>/dev/null || true; done
  for p in $BENCH_PID $SRV_PID; do wait "$p" 2>/dev/null || true; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/www" "$TMP/cert"
head -c 1024 /dev/urandom >"$TMP/www/small.bin"

valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$TMP/callgrind.out" \
  "$SERVER" --port 0 --addr 127.0.0.1 --no-http --cert-dir "$TMP/cert" \
  --web "$TMP/www" --max-handshakes-per-addr 0 --log-level warn \
  --workers 1 >"$TMP/srv.out" 2>"$TMP/srv.err" &
SRV_PID=$!
PORT=""
for _ in $(seq 600); do
  PORT=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' \
    "$TMP/srv.out" | head -n 1)
  [ -n "$PORT" ] && break
  kill -0 "$SRV_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "callgrind_get.sh: server did not start" >&2;
  cat "$TMP/srv.err" >&2; exit 1; }

"$BENCH" get -c 4 -r 16 -d $((WARM + MEASURE + 30)) --warmup 0 \
  --timeout $((WARM + MEASURE + 60)) "https://127.0.0.1:$PORT$URLPATH" \
  >"$TMP/bench.out" 2>&1 &
BENCH_PID=$!
sleep "$WARM"
callgrind_control -i on "$SRV_PID" >/dev/null
sleep "$MEASURE"
callgrind_control -i off "$SRV_PID" >/dev/null
callgrind_control -d "$SRV_PID" >/dev/null
kill "$BENCH_PID" 2>/dev/null || true
wait "$BENCH_PID" 2>/dev/null || true
BENCH_PID=""
kill "$SRV_PID" 2>/dev/null || true
wait "$SRV_PID" 2>/dev/null || true
SRV_PID=""

# The dump made by -d (the one with the most instructions: the final dump
# at exit has none, collection being off).
OUTF=$(for f in "$TMP"/callgrind.out*; do
  printf '%s %s\n' "$(sed -n 's/^totals: *//p' "$f" | head -n 1)" "$f"
done | sort -n | tail -n 1 | cut -d' ' -f2)
IR=$(sed -n 's/^totals: *//p' "$OUTF" | head -n 1)
# Calls of hs_begin_headers: "cfn=(id) hs_begin_headers" (or "cfn=(id)"
# once named) followed by "calls=N ...".
REQS=$(awk '
  /^fn=\(/ || /^cfn=\(/ {
    id = $1; sub(/^c?fn=/, "", id); nm = $0; sub(/^c?fn=\([0-9]+\) ?/, "", nm)
    if (nm != "") name[id] = nm
  }
  /^cfn=\(/ { cur = name[id] }
  /^calls=/ { if (cur == "hs_begin_headers") { split($1, a, "="); n += a[2] }; cur = "" }
  END { print n + 0 }' "$OUTF")
echo "path $URLPATH, tree $TREE, $MEASURE s collected after $WARM s"
echo "instructions: $IR"
echo "requests begun: $REQS"
awk -v a="$IR" -v b="$REQS" 'BEGIN { if (b > 0) printf "instructions per request: %.0f\n", a / b }'
callgrind_annotate --inclusive=yes "$OUTF" 2>/dev/null | sed -n '/^Ir/,$p' |
  head -n 45
[ "${KEEP:-0}" = 1 ] && echo "callgrind output: $OUTF"
exit 0
