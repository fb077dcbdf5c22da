#!/usr/bin/env bash
# bench.smoke: every h3wt-bench mode and the raw UDP echo, briefly, against
# a real h3wt-server on an ephemeral port.  Not a measurement: it proves the
# benchmark suite still works, so that bench/run.sh is not found broken on
# the day someone needs figures.  It fails unless each run exits 0 with
# errors 0 and plausible figures (ops > 0, rate > 0, server CPU per op > 0,
# idle: server memory per session > 0), and the server is alive after each
# run and exits 0 on SIGTERM (under ASan: without a leak).
#
#   bench/smoke.sh H3WT_SERVER H3WT_BENCH UDP_ECHO
#
# About 15 s in a RelWithDebInfo tree, 30 s under ASan; ctest gives it 90.
set -u

if [ $# -ne 3 ]; then
  echo "usage: $0 H3WT_SERVER H3WT_BENCH UDP_ECHO" >&2
  exit 2
fi
SERVER=$1
BENCH=$2
UDP_ECHO=$3
for f in "$SERVER" "$BENCH" "$UDP_ECHO"; do
  if [ ! -x "$f" ]; then
    echo "bench.smoke: FAIL: $f is not an executable" >&2
    exit 1
  fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/h3wt-bench-smoke.XXXXXX") || exit 1
PIDS=""
cleanup() {
  for p in $PIDS; do
    kill "$p" 2>/dev/null
  done
  for p in $PIDS; do
    wait "$p" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FAILED=0
fail() {
  echo "bench.smoke: FAIL: $*" >&2
  FAILED=1
}

# A run's JSON value for KEY ("" when absent).  The line is flat (see
# bench_common.h), so sed suffices.
jget() {
  printf '%s\n' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

# True when $1 is a number > 0.
positive() {
  awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }'
}

SRV_PID=""
SRV_PORT=""
SRV_ERR=""
SRV_N=0
# Starts h3wt-server on an ephemeral port (more options: the arguments);
# sets SRV_PID and SRV_PORT.
start_server() {
  SRV_N=$((SRV_N + 1))
  local out="$TMP/server$SRV_N.out" err="$TMP/server$SRV_N.err"
  SRV_ERR=$err
  "$SERVER" --port 0 --addr 127.0.0.1 --no-http --cert-dir "$TMP/cert" \
    --web "$TMP/www" --max-handshakes-per-addr 0 --log-level warn "$@" \
    >"$out" 2>"$err" &
  SRV_PID=$!
  PIDS="$PIDS $SRV_PID"
  SRV_PORT=""
  # Up to 10 s: the first start makes the development certificate, and
  # sanitizers slow everything down.
  for _ in $(seq 100); do
    SRV_PORT=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' \
      "$out" | head -n 1)
    [ -n "$SRV_PORT" ] && return 0
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "bench.smoke: FAIL: h3wt-server did not start; its stderr:" >&2
  cat "$err" >&2
  exit 1
}

# Sends SIGTERM and expects exit 0 within 10 s (the drain of an idle server
# is immediate; under ASan a leak makes the exit status non-zero).
stop_server() {
  local pid=$SRV_PID rc
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    fail "h3wt-server did not exit within 10 s of SIGTERM"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "h3wt-server exited with status $rc; its stderr:"
    tail -n 40 "$SRV_ERR" >&2
  fi
  PIDS=$(echo "$PIDS" | sed "s/ $pid\b//")
}

# check NAME "KEY1 KEY2 ..." COMMAND...: runs one benchmark and checks its
# exit status, errors == 0, each KEY > 0, and that the server survived.
check() {
  local name=$1 keys=$2 out rc line k v
  shift 2
  out="$TMP/$name.out"
  "$@" >"$out" 2>"$TMP/$name.err"
  rc=$?
  line=$(grep '^{' "$out" | tail -n 1)
  echo "  $name: $(grep -v '^{' "$out" | tail -n 1)"
  if [ "$rc" -ne 0 ]; then
    fail "$name exited with status $rc"
    cat "$TMP/$name.err" >&2
  fi
  if [ -z "$line" ]; then
    fail "$name printed no result line"
  else
    if [ "$(jget "$line" errors)" != "0" ]; then
      fail "$name: errors $(jget "$line" errors) (want 0)"
      cat "$TMP/$name.err" >&2
    fi
    for k in $keys; do
      v=$(jget "$line" "$k")
      if ! positive "$v"; then
        fail "$name: $k is '$v' (want > 0)"
      fi
    done
  fi
  if [ -n "$SRV_PID" ] && ! kill -0 "$SRV_PID" 2>/dev/null; then
    fail "the server died during $name; its stderr:"
    tail -n 40 "$SRV_ERR" >&2
    exit 1
  fi
}

mkdir -p "$TMP/www" "$TMP/cert"
head -c 1024 /dev/urandom >"$TMP/www/small.bin"
head -c 4194304 /dev/urandom >"$TMP/www/big.bin"

# Each run gives up after 20 s instead of hanging the test.
T="--timeout 20"
CPU="server_cpu_us_per_op"

echo "bench.smoke: h3wt-bench against h3wt-server"
# idle first, on a fresh server: memory freed by earlier runs would be
# reused and hide what the sessions cost.
start_server
U="https://127.0.0.1:$SRV_PORT"
check idle "ops kib_per_session $CPU" \
  "$BENCH" idle -n 64 -m 16 --settle 0.3 $T --server-pid "$SRV_PID" "$U/"
check dgram "ops rate $CPU rtt_p50_us" \
  "$BENCH" dgram -s 2 -w 4 -d 0.5 --warmup 0.2 $T --server-pid "$SRV_PID" \
  "$U/wt/echo"
check stream "ops rate $CPU" \
  "$BENCH" stream -b 2M $T --server-pid "$SRV_PID" "$U/wt/echo"
check get_file "ops rate $CPU" \
  "$BENCH" get -c 2 -r 4 -d 0.5 --warmup 0.2 $T --server-pid "$SRV_PID" \
  "$U/small.bin"
check get_root "ops rate $CPU" \
  "$BENCH" get -c 2 -r 4 -d 0.5 --warmup 0.2 $T --server-pid "$SRV_PID" "$U/"
check download "ops rate $CPU" \
  "$BENCH" download $T --server-pid "$SRV_PID" "$U/big.bin"
check handshake "ops rate $CPU setup_p50_us" \
  "$BENCH" handshake -K 4 -d 1 --warmup 0.2 $T --server-pid "$SRV_PID" \
  "$U/wt/echo"
# --resume: every measured connection must have resumed the saved session.
check handshake_resume "ops rate $CPU resumed" \
  "$BENCH" handshake --resume -K 4 -d 1 --warmup 0.2 $T \
  --server-pid "$SRV_PID" "$U/wt/echo"
line=$(grep '^{' "$TMP/handshake_resume.out" | tail -n 1)
if [ "$(jget "$line" resumed)" != "$(jget "$line" ops)" ]; then
  fail "handshake --resume: $(jget "$line" resumed) of $(jget "$line" ops) resumed"
fi

# The load generator must notice a failing server, or the checks above
# prove nothing: a path that answers 404 has to make get fail.
"$BENCH" get -c 1 -r 2 -d 0.3 --warmup 0.1 $T "$U/no-such-file" \
  >"$TMP/get404.out" 2>&1
if [ $? -eq 0 ]; then
  fail "h3wt-bench get exited 0 although every answer was 404"
else
  echo "  get of a missing file: fails as it should"
fi
stop_server

echo "bench.smoke: fan-out on the channels route"
# Without the hub's publish rate limit, as bench/run.sh runs it; 4
# subscribers per connection, so that packing is covered too.
start_server --channels-publish-rate 0
U="https://127.0.0.1:$SRV_PORT"
check fanout_reliable "ops rate $CPU lat_p50_us" \
  "$BENCH" fanout -n 8 -m 4 --rate 50 -d 0.5 --warmup 0.2 $T \
  --server-pid "$SRV_PID" "$U/wt/channels"
check fanout_unreliable "ops rate $CPU lat_p50_us" \
  "$BENCH" fanout -n 8 -m 4 --rate 50 --unreliable -d 0.5 --warmup 0.2 $T \
  --server-pid "$SRV_PID" "$U/wt/channels"
stop_server

echo "bench.smoke: channel memory on the channels route"
# A fresh server, as for idle.  32 sessions, 8 per connection: every step
# (open, subscribe, unsubscribe, resubscribe) and every JOIN and LEAVE.
# The figure itself is RSS noise at this size: only that it is reported.
# One worker: the exact JOIN and LEAVE counts checked here hold within one
# hub; across the hubs of several workers a member's join reaches the other
# hubs a moment later, and a subscriber that came in meanwhile hears it too
# (docs/channels.md, "Across hubs").
start_server --workers 1
U="https://127.0.0.1:$SRV_PORT"
check chmem "ops base_kib_per_session $CPU" \
  "$BENCH" chmem -n 32 -m 8 --settle 0.3 $T --server-pid "$SRV_PID" \
  "$U/wt/channels"
L=$(grep '^{' "$TMP/chmem.out" | tail -n 1)
if [ -z "$(jget "$L" bytes_per_sub)" ]; then
  fail "chmem: no bytes_per_sub"
fi
if [ "$(jget "$L" joins)" != "$(jget "$L" joins_expected)" ] ||
  [ "$(jget "$L" leaves)" != "$(jget "$L" leaves_expected)" ]; then
  fail "chmem: joins $(jget "$L" joins)/$(jget "$L" joins_expected), leaves $(jget "$L" leaves)/$(jget "$L" leaves_expected)"
fi
stop_server

echo "bench.smoke: raw UDP echo"
"$UDP_ECHO" server -a 127.0.0.1 -p 0 >"$TMP/udp.out" 2>"$TMP/udp.err" &
UDP_PID=$!
PIDS="$PIDS $UDP_PID"
UDP_PORT=""
for _ in $(seq 50); do
  UDP_PORT=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' \
    "$TMP/udp.out" | head -n 1)
  [ -n "$UDP_PORT" ] && break
  sleep 0.1
done
if [ -z "$UDP_PORT" ]; then
  fail "udp_echo server did not start"
  cat "$TMP/udp.err" >&2
else
  SRV_PID=$UDP_PID
  SRV_ERR=$TMP/udp.err
  check udp_echo "ops rate $CPU" \
    "$UDP_ECHO" client -p "$UDP_PORT" -s 2 -w 4 -d 0.5 --warmup 0.2 \
    --server-pid "$UDP_PID"
fi

echo "bench.smoke: raw UDP fan-out"
"$UDP_ECHO" fanout-server -a 127.0.0.1 -p 0 >"$TMP/udpfo.out" \
  2>"$TMP/udpfo.err" &
UDPFO_PID=$!
PIDS="$PIDS $UDPFO_PID"
UDPFO_PORT=""
for _ in $(seq 50); do
  UDPFO_PORT=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' \
    "$TMP/udpfo.out" | head -n 1)
  [ -n "$UDPFO_PORT" ] && break
  sleep 0.1
done
if [ -z "$UDPFO_PORT" ]; then
  fail "udp_echo fanout-server did not start"
  cat "$TMP/udpfo.err" >&2
else
  SRV_PID=$UDPFO_PID
  SRV_ERR=$TMP/udpfo.err
  check udp_fanout "ops rate $CPU lat_p50_us" \
    "$UDP_ECHO" fanout -p "$UDPFO_PORT" -n 8 -r 50 -d 0.5 --warmup 0.2 \
    --server-pid "$UDPFO_PID"
fi

if [ "$FAILED" -ne 0 ]; then
  echo "bench.smoke: FAILED" >&2
  exit 1
fi
echo "bench.smoke: all modes ran, no errors"
