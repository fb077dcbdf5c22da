#!/usr/bin/env bash
# bench/run.sh: the whole benchmark suite in one run (bench/README.md).
#
# Builds h3wt in release mode (its own tree, build-release/ like
# scripts/run.sh), then measures every h3wt-bench mode against h3wt-server
# and, on the same machine in the same run, against the baselines: the raw
# batched UDP echo (bench/udp_echo) for datagram echo, and ngtcp2's example
# server (Debian's ngtcp2-server, /usr/sbin/gtlsserver) for GET rate and
# download throughput.  Prints one table (figure, baseline, ratio, server
# CPU per operation, the target and whether it is met) and saves every raw
# JSON line to a results file.
#
#   bench/run.sh [--repeat N] [--duration S] [--out FILE] [--no-build]
#                [--quick] [--only get|handshake|fanout|chmem|broker|workers|pacing]
#
#   --repeat N    runs of each measurement; the table shows the median by
#                 rate (default 3)
#   --duration S  measured seconds of each timed run (default 5)
#   --out FILE    the JSON lines (default build-release/bench-results/
#                 run-DATE.jsonl; the table goes next to it as .txt)
#   --no-build    use build-release/ as it is
#   --quick       --repeat 1 --duration 2, 2,000 idle sessions, 100
#                 fan-out subscribers, 1,000 channel members: a check of
#                 the script, not figures to quote
#   --only get    only the GET rows: a 1 KiB file from ngtcp2's example
#                 server and from h3wt, and h3wt's in-memory GET /
#   --before TREE the GET rows also from TREE/apps/h3wt-server (another
#                 build, e.g. of main), interleaved in the same run: a
#                 before/after comparison on a machine whose speed drifts
#   --only fanout only the fan-out section (its rows of the table)
#   --only chmem  only the channel memory section (and the idle run at
#                 16 sessions per connection that is its baseline)
#   --only broker only channels across nodes: bench/broker_bench, two
#                 broker nodes on two loop threads, the memory broker
#                 against one redis-server it starts (publish-to-delivery
#                 latency at 10,000 msg/s and what Redis adds at p99;
#                 messages/s through Redis with 256 in flight)
#   --only handshake  only the handshake rows: full handshakes and
#                 resumed ones (h3wt-bench handshake --resume: every
#                 connection resumes one saved TLS session)
#   --only pacing only the pacing section: a 32 MiB download through
#                 bench/shaper (a 100 Mbit/s link, 20 ms RTT, a 2 ms
#                 drop-tail buffer), the server paced (the default) and
#                 unpaced (H3WT_PACING=0): throughput and the packets the
#                 link dropped
#   --only workers  only the workers section: datagram echo, GET / and
#                 handshake rates with --workers 1 and --workers 2, with
#                 the server CPU per operation, in a table of its own with
#                 the ratios (2 vs 1); no targets (the other sections run
#                 the server with --workers 1)
#   --chmem-n N   sessions of the channel memory section (default 10000;
#                 its JOIN storm is N(N+1)/2 frames: about 2 minutes a
#                 run at 10,000 on 2 cores)
#   --fanout-rate R  messages/s of the fan-out section (default 100: with
#                 1,000 subscribers, the 100,000 deliveries/s of the
#                 targets)
#
# The load generator runs on the same machine as the server, so on a
# 2-core machine every figure is "server + client on two cores": the server
# CPU per operation is the figure to compare, the rates are what the pair
# reaches.  About 12 minutes plus the build (the fan-out section: 2, the
# channel memory section: 6).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TREE=$ROOT/build-release

REPEAT=3
DUR=5
OUT=""
BUILD=1
IDLE_N=10000
FO_N=1000
FO_RATE=100
CM_N=10000
ONLY=""
BEFORE=""
while [ $# -gt 0 ]; do
  case $1 in
  --repeat) REPEAT=$2; shift 2 ;;
  --duration) DUR=$2; shift 2 ;;
  --out) OUT=$2; shift 2 ;;
  --no-build) BUILD=0; shift ;;
  --before) BEFORE=$2; shift 2 ;;
  --quick) REPEAT=1; DUR=2; IDLE_N=2000; FO_N=100; CM_N=1000; shift ;;
  --only) ONLY=$2; shift 2 ;;
  --fanout-rate) FO_RATE=$2; shift 2 ;;
  --chmem-n) CM_N=$2; shift 2 ;;
  -h | --help) sed -n '2,49p' "$0"; exit 0 ;;
  *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$BEFORE" ] && [ ! -x "$BEFORE/apps/h3wt-server" ]; then
  echo "run.sh: --before $BEFORE: no apps/h3wt-server there" >&2; exit 2
fi
case $REPEAT in '' | *[!0-9]* | 0) echo "run.sh: bad --repeat" >&2; exit 2 ;; esac
case $ONLY in '' | get | handshake | fanout | chmem | broker | workers | pacing) ;; *) echo "run.sh: --only get, handshake, fanout, chmem, broker, workers, pacing or nothing" >&2; exit 2 ;; esac
case $CM_N in '' | *[!0-9]* | 0) echo "run.sh: bad --chmem-n" >&2; exit 2 ;; esac

# ---- build ------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  eval "$(H3WT_WITH_CURL=0 scripts/bootstrap.sh)"
  cmake -S . -B "$TREE" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$H3WT_DEPS_PREFIX" -DH3WT_BUILD_TESTS=OFF >/dev/null
  EXTRA=""
  [ "$ONLY" = broker ] && EXTRA=broker_bench # needs hiredis
  cmake --build "$TREE" -j "$(nproc)" --target h3wt-server h3wt-bench udp_echo shaper $EXTRA
fi
SERVER=$TREE/apps/h3wt-server
BENCH=$TREE/apps/h3wt-bench
UDP_ECHO=$TREE/bench/udp_echo
SHAPER=$TREE/bench/shaper
for f in "$SERVER" "$BENCH" "$UDP_ECHO" "$SHAPER"; do
  [ -x "$f" ] || { echo "run.sh: $f missing (build first)" >&2; exit 1; }
done

STAMP=$(date -u +%Y%m%d-%H%M%S)
if [ -z "$OUT" ]; then
  mkdir -p "$TREE/bench-results"
  OUT=$TREE/bench-results/run-$STAMP.jsonl
fi
TABLE=${OUT%.jsonl}.txt
: >"$OUT"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/h3wt-bench-run.XXXXXX")
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s run.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# A JSON line's value for KEY ("" when absent); the lines are flat.
jget() {
  printf '%s\n' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

# ---- the machine, first line of the results ---------------------------------
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
printf '{"run":"%s","host":"%s","cpu":"%s","nproc":%s,"kernel":"%s","repeat":%s,"duration":%s}\n' \
  "$STAMP" "$(hostname)" "$CPU_MODEL" "$(nproc)" "$(uname -r)" "$REPEAT" \
  "$DUR" >>"$OUT"

# ---- the files both HTTP/3 servers serve ------------------------------------
WWW=$TMP/www
mkdir -p "$WWW" "$TMP/cert"
head -c 1024 /dev/urandom >"$WWW/small.bin"
head -c $((256 << 20)) /dev/urandom >"$WWW/big.bin"

# ---- servers ----------------------------------------------------------------
SRV_PID=""
SRV_PORT=""

wait_port() { # FILE PID: the port from "... listening on ADDR port N"
  local i p
  for i in $(seq 100); do
    p=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' "$1" |
      head -n 1)
    [ -n "$p" ] && { echo "$p"; return 0; }
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# h3wt-server on an ephemeral port.  --log-level warn: the demo server logs
# every request at info, which is the demo's choice, not the library's cost.
# One worker unless the arguments say otherwise (the targets and the
# baselines are single-threaded; the workers section compares 1 and 2).
start_h3wt() {
  stop_server
  "$SERVER" --port 0 --addr 127.0.0.1 --no-http --cert-dir "$TMP/cert" \
    --web "$WWW" --max-handshakes-per-addr 0 --log-level warn --workers 1 "$@" \
    >"$TMP/h3wt.out" 2>"$TMP/h3wt.err" &
  SRV_PID=$!
  PIDS="$PIDS $SRV_PID"
  SRV_PORT=$(wait_port "$TMP/h3wt.out" "$SRV_PID") || {
    echo "run.sh: h3wt-server did not start:" >&2
    cat "$TMP/h3wt.err" >&2
    exit 1
  }
}

# ngtcp2's example server on a free port (it has no ephemeral-port option):
# the same certificate and files, quiet.
NGTCP2=""
NGTCP2_WHY=""
find_ngtcp2() {
  NGTCP2=$(command -v gtlsserver || true)
  [ -z "$NGTCP2" ] && [ -x /usr/sbin/gtlsserver ] && NGTCP2=/usr/sbin/gtlsserver
  if [ -z "$NGTCP2" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ngtcp2-server (bookworm-backports) for the baseline"
    apt-get install -y -t bookworm-backports ngtcp2-server >"$TMP/apt.log" 2>&1 ||
      apt-get install -y ngtcp2-server >>"$TMP/apt.log" 2>&1 || true
    [ -x /usr/sbin/gtlsserver ] && NGTCP2=/usr/sbin/gtlsserver
  fi
  if [ -z "$NGTCP2" ]; then
    NGTCP2_WHY="ngtcp2-server not installed and could not be (apt-get install -t bookworm-backports ngtcp2-server)"
  fi
}

start_ngtcp2() {
  local try port
  stop_server
  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 30000))
    "$NGTCP2" -q -d "$WWW" 127.0.0.1 "$port" "$TMP/cert/dev-key.pem" \
      "$TMP/cert/dev-cert.pem" >"$TMP/ngtcp2.out" 2>"$TMP/ngtcp2.err" &
    SRV_PID=$!
    PIDS="$PIDS $SRV_PID"
    sleep 0.3
    if kill -0 "$SRV_PID" 2>/dev/null; then
      SRV_PORT=$port
      return 0
    fi
    wait "$SRV_PID" 2>/dev/null || true
  done
  NGTCP2_WHY="ngtcp2-server did not start: $(tail -n 1 "$TMP/ngtcp2.err")"
  SRV_PID=""
  return 1
}

stop_server() {
  if [ -n "$SRV_PID" ]; then
    kill "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    PIDS=$(echo "$PIDS" | sed "s/ $SRV_PID\b//")
    SRV_PID=""
  fi
}

# ---- runs -------------------------------------------------------------------
# run KEY COMMAND...: one run; its JSON line goes to the results and to
# $TMP/KEY.lines.  A run that fails is logged and kept out of the table.
run() {
  local key=$1 line rc=0
  shift
  "$@" >"$TMP/run.out" 2>"$TMP/run.err" || rc=$?
  line=$(grep '^{' "$TMP/run.out" | tail -n 1 || true)
  log "$key: $(grep -v '^{' "$TMP/run.out" | tail -n 1)"
  if [ -n "$line" ]; then
    printf '%s\n' "$line" >>"$OUT"
  fi
  if [ "$rc" -ne 0 ] || [ -z "$line" ] || [ "$(jget "$line" errors)" != 0 ]; then
    log "$key: FAILED (exit $rc); $(head -c 600 "$TMP/run.err")"
    echo "$key" >>"$TMP/failed"
    return 0
  fi
  if [ -n "$SRV_PID" ] && ! kill -0 "$SRV_PID" 2>/dev/null; then
    log "$key: the server died"
    echo "$key" >>"$TMP/failed"
    return 0
  fi
  printf '%s\n' "$line" >>"$TMP/$key.lines"
}

# The median run of KEY by its rate (or KiB per session), "" if none.
median() {
  local f=$TMP/$1.lines n
  [ -s "$f" ] || return 0
  n=$(wc -l <"$f")
  awk '{ v = $0; sub(/.*"(rate|kib_per_session|bytes_per_sub)":/, "", v); sub(/[,}].*/, "", v);
         print v "\t" $0 }' "$f" | sort -g | sed -n "$(((n + 1) / 2))p" |
    cut -f 2-
}

# ---- channels through Redis (--only broker) ---------------------------------
# Two broker nodes on two loop threads, one channel: publish-to-delivery
# latency at BR_RATE messages/s through one redis-server against the memory
# broker (two worker threads of one process) in the same run, and messages
# per second through Redis with 256 in flight.  The target: Redis adds
# less than 2 ms at p99 at 10,000 messages/s.
if [ "$ONLY" = broker ]; then
  BROKER_BENCH=$TREE/bench/broker_bench
  BR_RATE=10000
  [ -x "$BROKER_BENCH" ] || { echo "run.sh: $BROKER_BENCH missing (was hiredis found at build time?)" >&2; exit 1; }
  command -v redis-server >/dev/null || { echo "run.sh: redis-server is not installed (scripts/bootstrap.sh installs it)" >&2; exit 1; }
  log "broker: two nodes, memory vs one redis-server, $BR_RATE msg/s, $REPEAT x ${DUR} s"
  for i in $(seq "$REPEAT"); do
    run broker_mem "$BROKER_BENCH" --memory -r "$BR_RATE" -d "$DUR"
    run broker "$BROKER_BENCH" -r "$BR_RATE" -d "$DUR"
  done
  M=$(median broker) MM=$(median broker_mem)
  [ -n "$M" ] && [ -n "$MM" ] || { echo "run.sh: no broker run succeeded" >&2; exit 1; }
  ADDED=$(awk -v a="$(jget "$M" lat_p99_us)" -v b="$(jget "$MM" lat_p99_us)" 'BEGIN { printf "%.0f", a - b }')
  VERDICT=$(awk -v a="$ADDED" 'BEGIN { print (a < 2000 ? "met" : "MISSED") }')
  {
    echo "channels across nodes, median of $REPEAT runs (raw lines: $OUT)"
    printf '  publish-to-delivery at %s msg/s, memory broker: p50 %s us, p99 %s us, max %s us\n' \
      "$(jget "$MM" lat_rate)" "$(jget "$MM" lat_p50_us)" "$(jget "$MM" lat_p99_us)" "$(jget "$MM" lat_max_us)"
    printf '  publish-to-delivery at %s msg/s, Redis broker:  p50 %s us, p99 %s us, max %s us\n' \
      "$(jget "$M" lat_rate)" "$(jget "$M" lat_p50_us)" "$(jget "$M" lat_p99_us)" "$(jget "$M" lat_max_us)"
    printf '  added by Redis at p99: %s us (target < 2000 us at 10000 msg/s: %s)\n' "$ADDED" "$VERDICT"
    printf '  delivered through Redis between two nodes, 256 in flight: %s msg/s\n' "$(jget "$M" rate)"
    printf '  redis-server CPU per message: %s us\n' "$(jget "$M" redis_cpu_us_per_msg)"
  } | tee "$TABLE"
  exit 0
fi

S=8 W=4 P=64 # 8 sessions (one per connection) x 4 in flight = 32 in flight
T="--timeout 120"
[ "$ONLY" = workers ] || [ "$ONLY" = pacing ] || find_ngtcp2 # no baseline there
start_h3wt # makes the development certificate ngtcp2 uses as well

if [ -z "$ONLY" ]; then
log "datagram echo: raw UDP vs h3wt ($S x $W in flight, $P B), $REPEAT x ${DUR} s"
for i in $(seq "$REPEAT"); do
  stop_server
  "$UDP_ECHO" server -a 127.0.0.1 -p 0 >"$TMP/udp.out" 2>"$TMP/udp.err" &
  SRV_PID=$!
  PIDS="$PIDS $SRV_PID"
  SRV_PORT=$(wait_port "$TMP/udp.out" "$SRV_PID") || {
    echo "run.sh: udp_echo did not start" >&2
    exit 1
  }
  run udp "$UDP_ECHO" client -p "$SRV_PORT" -s $S -w $W -P $P -d "$DUR" \
    --server-pid "$SRV_PID"
  start_h3wt
  run dgram "$BENCH" dgram -s $S -w $W -P $P -d "$DUR" $T \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/echo"
done

fi # not --only

if [ -z "$ONLY" ] || [ "$ONLY" = get ]; then
log "GET of a 1 KiB file (4 connections x 16 concurrent): ngtcp2 vs h3wt"
for i in $(seq "$REPEAT"); do
  if [ -n "$NGTCP2" ] && start_ngtcp2; then
    run get_ngtcp2 "$BENCH" get -c 4 -r 16 -d "$DUR" $T --label ngtcp2 \
      --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/small.bin"
  fi
  start_h3wt
  run get_file "$BENCH" get -c 4 -r 16 -d "$DUR" $T \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/small.bin"
  run get_root "$BENCH" get -c 4 -r 16 -d "$DUR" $T --label h3wt-handler \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/"
  if [ -n "$BEFORE" ]; then
    AFTER_SERVER=$SERVER
    SERVER=$BEFORE/apps/h3wt-server
    start_h3wt
    run get_file_before "$BENCH" get -c 4 -r 16 -d "$DUR" $T \
      --label h3wt-before --server-pid "$SRV_PID" \
      "https://127.0.0.1:$SRV_PORT/small.bin"
    run get_root_before "$BENCH" get -c 4 -r 16 -d "$DUR" $T \
      --label h3wt-before-handler --server-pid "$SRV_PID" \
      "https://127.0.0.1:$SRV_PORT/"
    SERVER=$AFTER_SERVER
  fi
done

fi # not --only, or --only get

if [ -z "$ONLY" ]; then
log "download of a 256 MiB file: ngtcp2 vs h3wt"
for i in $(seq "$REPEAT"); do
  if [ -n "$NGTCP2" ] && start_ngtcp2; then
    run download_ngtcp2 "$BENCH" download $T --label ngtcp2 \
      --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/big.bin"
  fi
  start_h3wt
  run download "$BENCH" download $T \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/big.bin"
done

log "WebTransport stream echo of 256 MiB"
for i in $(seq "$REPEAT"); do
  start_h3wt
  run stream "$BENCH" stream -b 256M $T \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/echo"
done
fi

if [ -z "$ONLY" ] || [ "$ONLY" = handshake ]; then
log "handshakes: full, and resuming a saved session, $REPEAT x ${DUR} s"
for i in $(seq "$REPEAT"); do
  start_h3wt
  run handshake "$BENCH" handshake -K 16 -d "$DUR" $T \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/echo"
  start_h3wt
  run handshake_resume "$BENCH" handshake --resume -K 16 -d "$DUR" $T \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/echo"
done
fi

if [ -z "$ONLY" ]; then

log "idle sessions: $IDLE_N, 16 per connection and 1 per connection"
start_h3wt
run idle16 "$BENCH" idle -n "$IDLE_N" -m 16 --settle 2 $T \
  --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/echo"
# One connection per session needs IDLE_N connections: at 10,000 that is
# exactly the default max_connections, so raise it where the server has
# --set (the JSON settings); the session limit (16 per connection) and
# --max-handshakes-per-addr 0 cover the rest.
LIMITS=""
if "$SERVER" --help 2>&1 | grep -q -- '--set'; then
  LIMITS="--set max_connections=$((IDLE_N + 1000))"
fi
start_h3wt $LIMITS
run idle1 "$BENCH" idle -n "$IDLE_N" -m 1 -K 64 --settle 2 $T \
  --label h3wt-1-per-conn \
  --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/echo"
fi # not --only

# ---- channel memory -----------------------------------------------------------
# The issue's target: "a channel of 10,000 subscribers costs at most 256
# bytes per subscription beyond the sessions themselves".  h3wt-bench
# chmem opens CM_N sessions of /wt/channels, 16 per connection (CM_N / 16
# connections: 625 at 10,000, under the default max_connections 10,000;
# 16 is the default max_sessions_per_conn), each with its channel stream
# open (a PRESENCE answered NOT_SUBSCRIBED), reads the server's VmRSS, has
# every session subscribe to one channel, waits until every SUBSCRIBED and
# every JOIN arrived and the server is quiet, and reads it again: (sub -
# base) / CM_N.  Then unsubscribe and subscribe again (the control).  Each
# run on a fresh server: memory freed by earlier runs would be reused.
# The idle run (16 per connection, /wt/echo) is the per-session baseline.
if [ "$ONLY" = chmem ]; then
  start_h3wt
  run idle16 "$BENCH" idle -n "$IDLE_N" -m 16 --settle 2 $T \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/echo"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = chmem ]; then
  log "channel memory: $CM_N sessions, 16 per connection, into one channel, $REPEAT runs"
  for i in $(seq "$REPEAT"); do
    start_h3wt --channels-max-subscribers "$((CM_N + 1))"
    run chmem "$BENCH" chmem -n "$CM_N" -m 16 --timeout $((120 + CM_N / 20)) \
      --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/channels"
  done
fi

# ---- fan-out (channels) ------------------------------------------------------
# FO_N subscribers, one connection each, in one channel of the demo's
# /wt/channels; one more session publishes FO_RATE messages/s of 64 bytes:
# FO_N x FO_RATE deliveries/s, reliable (PUBLISH frames) and unreliable
# (datagrams), against the raw UDP fan-out of as many datagrams (udp_echo
# fanout-server: sendmmsg to FO_N sockets).  The hub's publish rate limit
# (100/s per session by default) would throttle the publisher: off.
start_udp() { # SUBCOMMAND: udp_echo's server of that kind
  stop_server
  "$UDP_ECHO" "$1" -a 127.0.0.1 -p 0 >"$TMP/udp.out" 2>"$TMP/udp.err" &
  SRV_PID=$!
  PIDS="$PIDS $SRV_PID"
  SRV_PORT=$(wait_port "$TMP/udp.out" "$SRV_PID") || {
    echo "run.sh: udp_echo $1 did not start" >&2
    exit 1
  }
}
FO_OPTS="--channels-publish-rate 0"
if ! "$SERVER" --help 2>&1 | grep -q -- '--channels-publish-rate'; then
  FO_OPTS="" # an older server: the figures will show the limit
fi
if [ -z "$ONLY" ] || [ "$ONLY" = fanout ]; then
log "fan-out: $FO_N subscribers x $FO_RATE msg/s: raw UDP vs h3wt reliable and unreliable, $REPEAT x ${DUR} s"
for i in $(seq "$REPEAT"); do
  start_udp fanout-server
  run fanout_udp "$UDP_ECHO" fanout -p "$SRV_PORT" -n "$FO_N" -r "$FO_RATE" \
    -d "$DUR" --server-pid "$SRV_PID"
  start_h3wt $FO_OPTS
  run fanout_rel "$BENCH" fanout -n "$FO_N" --rate "$FO_RATE" -d "$DUR" $T \
    --server-pid "$SRV_PID" "https://127.0.0.1:$SRV_PORT/wt/channels"
  start_h3wt $FO_OPTS
  run fanout_unrel "$BENCH" fanout -n "$FO_N" --rate "$FO_RATE" --unreliable \
    -d "$DUR" $T --server-pid "$SRV_PID" \
    "https://127.0.0.1:$SRV_PORT/wt/channels"
done
fi # not --only chmem or workers

# ---- workers ------------------------------------------------------------------
# The same server with one worker thread and with two (one server group,
# SO_REUSEPORT, steering by connection ID): datagram echo (16 sessions, one
# per connection, x 4 in flight), GET / (8 connections x 16 concurrent)
# and handshakes (+ a WebTransport session, 16 at once).  More connections
# than the main section, so both workers get some (the clients' random
# connection IDs spread them).  On a 2-core machine the load generator
# shares the cores: compare the server CPU per operation, and read the
# rates as what the pair reaches.
if [ "$ONLY" = workers ]; then
  log "workers: datagram echo, GET /, handshakes with --workers 1 and 2, $REPEAT x ${DUR} s"
  for i in $(seq "$REPEAT"); do
    for nw in 1 2; do
      start_h3wt --workers "$nw"
      run "wk_dgram_$nw" "$BENCH" dgram -s 16 -w $W -P $P -d "$DUR" $T \
        --label "h3wt-workers-$nw" --server-pid "$SRV_PID" \
        "https://127.0.0.1:$SRV_PORT/wt/echo"
      run "wk_get_$nw" "$BENCH" get -c 8 -r 16 -d "$DUR" $T \
        --label "h3wt-workers-$nw" --server-pid "$SRV_PID" \
        "https://127.0.0.1:$SRV_PORT/"
      start_h3wt --workers "$nw"
      run "wk_hs_$nw" "$BENCH" handshake -K 16 -d "$DUR" $T \
        --label "h3wt-workers-$nw" --server-pid "$SRV_PID" \
        "https://127.0.0.1:$SRV_PORT/wt/echo"
    done
  done
fi
stop_server

# ---- pacing (--only pacing) ---------------------------------------------------
# A bulk download through bench/shaper, a slow link with a shallow buffer:
# the server sends in bursts of at most a millisecond of its pacing rate,
# spaced by ngtcp2's pacing (the default), or up to 64 packets back to back
# whenever the congestion window allows (H3WT_PACING=0, as before).  The
# shaper counts what its buffer dropped.  Its JSON line is merged into the
# download's.
PC_RATE=100 PC_DELAY=10 PC_QUEUE=2
if [ "$ONLY" = pacing ]; then
  head -c $((32 << 20)) /dev/urandom >"$WWW/pace.bin"
  log "pacing: 32 MiB through a $PC_RATE Mbit/s link, $((2 * PC_DELAY)) ms RTT, $PC_QUEUE ms buffer, paced and unpaced, $REPEAT x"
  for i in $(seq "$REPEAT"); do
    for pc in 1 0; do
      H3WT_PACING=$pc start_h3wt
      "$SHAPER" --upstream "$SRV_PORT" --rate-mbit $PC_RATE \
        --delay-ms $PC_DELAY --queue-ms $PC_QUEUE >"$TMP/shaper.out" 2>&1 &
      SH_PID=$!
      PIDS="$PIDS $SH_PID"
      SH_PORT=$(wait_port "$TMP/shaper.out" "$SH_PID") || {
        echo "run.sh: bench/shaper did not start" >&2
        exit 1
      }
      run "pc_tmp" "$BENCH" download --warmup 0 $T --label "pacing-$pc" \
        --server-pid "$SRV_PID" "https://127.0.0.1:$SH_PORT/pace.bin"
      kill "$SH_PID"
      wait "$SH_PID" 2>/dev/null || true
      PIDS=$(echo "$PIDS" | sed "s/ $SH_PID\b//")
      SH=$(grep '^{' "$TMP/shaper.out" | tail -n 1)
      if [ -s "$TMP/pc_tmp.lines" ] && [ -n "$SH" ]; then
        # The download's line with the shaper's counts and the drop ratio.
        L=$(tail -n 1 "$TMP/pc_tmp.lines")
        D=$(awk -v a="$(jget "$SH" down_dropped)" -v b="$(jget "$SH" down_in)" \
          'BEGIN { printf "%.3f", b ? a * 100 / b : 0 }')
        printf '%s,%s,"drop_pct":%s}\n' "${L%\}}" "${SH#\{}" "$D" \
          | sed 's/},/,/' >>"$TMP/pc_$pc.lines"
        log "pacing $pc: $(jget "$SH" down_dropped) of $(jget "$SH" down_in) dropped ($D%)"
      fi
      rm -f "$TMP/pc_tmp.lines"
    done
  done
fi
stop_server

# ---- the table --------------------------------------------------------------
# row NAME H3WT_FIG BASE_FIG RATIO H3WT_CPU BASE_CPU TARGET RESULT
ROWS=$TMP/rows
: >"$ROWS"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }

# calc 'EXPR' with a, b: awk arithmetic, "" if an operand is missing.
calc() {
  [ -n "${2:-}" ] && [ -n "${3:-}" ] || { echo ""; return; }
  awk -v a="$2" -v b="$3" "BEGIN { printf \"%s\", $1 }"
}
fmt() { # fmt FORMAT VALUE ("-" when empty)
  [ -n "${2:-}" ] && awk -v v="$2" "BEGIN { printf \"$1\", v }" || echo "-"
}
verdict() { # verdict CONDITION(a, b) a [b]: met / MISSED / no data
  if [ -z "${2:-}" ] || { [ $# -ge 3 ] && [ -z "${3:-}" ]; }; then
    echo "no data"
  elif awk -v a="$2" -v b="${3:-0}" "BEGIN { exit !($1) }"; then
    echo "met"
  else
    echo "MISSED"
  fi
}
cpu() { jget "$1" server_cpu_us_per_op; }
rate() { jget "$1" rate; }

if [ -z "$ONLY" ]; then
U=$(median udp) D=$(median dgram)
R_U=$(rate "$U") R_D=$(rate "$D") C_U=$(cpu "$U") C_D=$(cpu "$D")
row "datagram echo rate ($((S * W)) in flight, $P B)" \
  "$(fmt '%.0f/s' "$R_D")" "raw UDP $(fmt '%.0f/s' "$R_U")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$R_D" "$R_U")")" \
  "$(fmt '%.2f us' "$C_D")" "$(fmt '%.2f us' "$C_U")" \
  ">= 0.5 x raw UDP" "$(verdict 'a >= 0.5 * b' "$R_D" "$R_U")"
row "server CPU per datagram echo" "$(fmt '%.2f us' "$C_D")" \
  "raw UDP $(fmt '%.2f us' "$C_U")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$C_D" "$C_U")")" \
  "$(fmt '%.2f us' "$C_D")" "$(fmt '%.2f us' "$C_U")" \
  "<= 1.5 x raw UDP" "$(verdict 'a <= 1.5 * b' "$C_D" "$C_U")"

fi # not --only

if [ -z "$ONLY" ] || [ "$ONLY" = get ]; then
G=$(median get_file) GN=$(median get_ngtcp2) GR=$(median get_root)
NGB="ngtcp2"
[ -n "$NGTCP2_WHY" ] && NGB="ngtcp2: n/a ($NGTCP2_WHY)"
row "GET rate, 1 KiB file" "$(fmt '%.0f/s' "$(rate "$G")")" \
  "$NGB $(fmt '%.0f/s' "$(rate "$GN")")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$(rate "$G")" "$(rate "$GN")")")" \
  "$(fmt '%.1f us' "$(cpu "$G")")" "$(fmt '%.1f us' "$(cpu "$GN")")" \
  ">= ngtcp2" "$(verdict 'a >= b' "$(rate "$G")" "$(rate "$GN")")"
row "server CPU per GET, 1 KiB file" "$(fmt '%.1f us' "$(cpu "$G")")" \
  "$NGB $(fmt '%.1f us' "$(cpu "$GN")")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$(cpu "$G")" "$(cpu "$GN")")")" \
  "$(fmt '%.1f us' "$(cpu "$G")")" "$(fmt '%.1f us' "$(cpu "$GN")")" \
  "<= 25 us" "$(verdict 'a <= 25' "$(cpu "$G")")"
row "GET rate, in-memory handler (GET /)" "$(fmt '%.0f/s' "$(rate "$GR")")" \
  "$NGB file $(fmt '%.0f/s' "$(rate "$GN")")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$(rate "$GR")" "$(rate "$GN")")")" \
  "$(fmt '%.1f us' "$(cpu "$GR")")" "$(fmt '%.1f us' "$(cpu "$GN")")" \
  "<= 25 us CPU" "$(verdict 'a <= 25' "$(cpu "$GR")")"
if [ -n "$BEFORE" ]; then
  GB=$(median get_file_before) GRB=$(median get_root_before)
  row "  before ($BEFORE): 1 KiB file" "$(fmt '%.0f/s' "$(rate "$GB")")" \
    "$NGB $(fmt '%.0f/s' "$(rate "$GN")")" \
    "$(fmt '%.2f' "$(calc 'a / b' "$(rate "$GB")" "$(rate "$GN")")")" \
    "$(fmt '%.1f us' "$(cpu "$GB")")" "$(fmt '%.1f us' "$(cpu "$GN")")" "-" "-"
  row "  before ($BEFORE): GET /" "$(fmt '%.0f/s' "$(rate "$GRB")")" \
    "$NGB file $(fmt '%.0f/s' "$(rate "$GN")")" \
    "$(fmt '%.2f' "$(calc 'a / b' "$(rate "$GRB")" "$(rate "$GN")")")" \
    "$(fmt '%.1f us' "$(cpu "$GRB")")" "$(fmt '%.1f us' "$(cpu "$GN")")" "-" "-"
fi

fi # not --only, or --only get

if [ -z "$ONLY" ]; then
DL=$(median download) DN=$(median download_ngtcp2)
row "download throughput, 256 MiB" \
  "$(fmt '%.1f MB/s' "$(calc 'a / b' "$(rate "$DL")" 1e6)")" \
  "$NGB $(fmt '%.1f MB/s' "$(calc 'a / b' "$(rate "$DN")" 1e6)")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$(rate "$DL")" "$(rate "$DN")")")" \
  "$(fmt '%.2f ms/MB' "$(calc 'a / b' "$(cpu "$DL")" 1000)")" \
  "$(fmt '%.2f ms/MB' "$(calc 'a / b' "$(cpu "$DN")" 1000)")" \
  ">= ngtcp2" "$(verdict 'a >= b' "$(rate "$DL")" "$(rate "$DN")")"

ST=$(median stream)
row "WebTransport stream echo, 256 MiB" \
  "$(fmt '%.1f MB/s' "$(calc 'a / b' "$(rate "$ST")" 1e6)")" "n/a" "-" \
  "$(fmt '%.2f ms/MB' "$(calc 'a / b' "$(cpu "$ST")" 1000)")" "-" \
  "<= 4 ms/MB CPU" "$(verdict 'a <= 4000' "$(cpu "$ST")")"

fi
if [ -z "$ONLY" ] || [ "$ONLY" = handshake ]; then
HS=$(median handshake) HR=$(median handshake_resume)
row "handshakes (+ WT session), 16 at once" \
  "$(fmt '%.0f/s' "$(rate "$HS")")" "n/a" "-" \
  "$(fmt '%.0f us' "$(cpu "$HS")")" "-" \
  ">= 3000/s" "$(verdict 'a >= 3000' "$(rate "$HS")")"
row "resumed handshakes (+ WT session), 16 at once" \
  "$(fmt '%.0f/s' "$(rate "$HR")")" "full $(fmt '%.0f/s' "$(rate "$HS")")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$(rate "$HR")" "$(rate "$HS")")")" \
  "$(fmt '%.0f us' "$(cpu "$HR")")" "$(fmt '%.0f us' "$(cpu "$HS")")" \
  "> full" "$(verdict 'a > b' "$(rate "$HR")" "$(rate "$HS")")"
fi
if [ -z "$ONLY" ]; then

I16=$(median idle16) I1=$(median idle1)
row "idle memory, $IDLE_N sessions, 16/conn" \
  "$(fmt '%.1f KiB/session' "$(jget "$I16" kib_per_session)")" "n/a" "-" \
  "$(fmt '%.0f us' "$(cpu "$I16")")" "-" "<= 32 KiB" \
  "$(verdict 'a <= 32' "$(jget "$I16" kib_per_session)")"
row "idle memory, $IDLE_N sessions, 1/conn" \
  "$(fmt '%.1f KiB/session' "$(jget "$I1" kib_per_session)")" "n/a" "-" \
  "$(fmt '%.0f us' "$(cpu "$I1")")" "-" "<= 32 KiB" \
  "$(verdict 'a <= 32' "$(jget "$I1" kib_per_session)")"

fi # not --only

if [ -z "$ONLY" ] || [ "$ONLY" = chmem ]; then
I16=$(median idle16) CM=$(median chmem)
CMB="idle $(fmt '%.1f KiB/session' "$(jget "$I16" kib_per_session)"), open $(fmt '%.1f KiB/session' "$(jget "$CM" base_kib_per_session)")"
row "channel memory, $CM_N subs in one channel" \
  "$(fmt '%.0f B/sub' "$(jget "$CM" bytes_per_sub)")" "$CMB" "-" \
  "$(fmt '%.0f us' "$(cpu "$CM")")" "-" "<= 256 B/sub" \
  "$(verdict 'a <= 256' "$(jget "$CM" bytes_per_sub)")"
row "  control: unsubscribe, resubscribe" \
  "$(fmt '%+.0f B' "$(jget "$CM" bytes_per_unsub)") $(fmt '%+.0f B/sub' "$(jget "$CM" bytes_per_resub)")" \
  "JOINs $(jget "$CM" joins)/$(jget "$CM" joins_expected), subscribe $(fmt '%.1f s' "$(jget "$CM" subscribe_secs)")" \
  "-" "-" "-" "-" "-"
fi

if [ -z "$ONLY" ] || [ "$ONLY" = fanout ]; then
FU=$(median fanout_udp) FR=$(median fanout_rel) FX=$(median fanout_unrel)
FO_LOAD=$((FO_N * ${FO_RATE%.*}))
fo_fig() { # a fan-out run's "deliveries/s, p50/p99"
  [ -n "$1" ] || { echo "-"; return; }
  printf '%s p50/p99 %s/%s ms' "$(fmt '%.0f/s' "$(rate "$1")")" \
    "$(fmt '%.2f' "$(calc 'a / b' "$(jget "$1" lat_p50_us)" 1000)")" \
    "$(fmt '%.2f' "$(calc 'a / b' "$(jget "$1" lat_p99_us)" 1000)")"
}
row "fan-out unreliable, $FO_N subs x $FO_RATE msg/s" "$(fo_fig "$FX")" \
  "raw UDP $(fo_fig "$FU")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$(cpu "$FX")" "$(cpu "$FU")")")" \
  "$(fmt '%.2f us' "$(cpu "$FX")")" "$(fmt '%.2f us' "$(cpu "$FU")")" \
  "<= 2 x raw UDP CPU" "$(verdict 'a <= 2 * b' "$(cpu "$FX")" "$(cpu "$FU")")"
FRV=$(verdict 'a <= 3' "$(cpu "$FR")")
if [ -n "$FR" ] && [ "$(jget "$FR" violations)" != 0 ]; then
  FRV="MISSED (violations $(jget "$FR" violations))"
fi
row "fan-out reliable, $FO_N subs x $FO_RATE msg/s" "$(fo_fig "$FR")" \
  "raw UDP $(fo_fig "$FU")" \
  "$(fmt '%.2f' "$(calc 'a / b' "$(cpu "$FR")" "$(cpu "$FU")")")" \
  "$(fmt '%.2f us' "$(cpu "$FR")")" "$(fmt '%.2f us' "$(cpu "$FU")")" \
  "<= 3 us CPU" "$FRV"
# The latency target holds at the load: a run that fell behind (fewer
# deliveries/s than 95% of FO_N x FO_RATE) misses it whatever its p99.
for k in unrel rel; do
  F=$(median "fanout_$k")
  row "fan-out $([ $k = rel ] && echo reliable || echo unreliable) p99 latency" \
    "$(fmt '%.2f ms' "$(calc 'a / b' "$(jget "$F" lat_p99_us)" 1000)")" \
    "raw UDP $(fmt '%.2f ms' "$(calc 'a / b' "$(jget "$FU" lat_p99_us)" 1000)")" \
    "$(fmt '%.2f' "$(calc 'a / b' "$(jget "$F" lat_p99_us)" "$(jget "$FU" lat_p99_us)")")" \
    "$(fmt '%.2f us' "$(cpu "$F")")" "$(fmt '%.2f us' "$(cpu "$FU")")" \
    "< 5 ms at $FO_LOAD/s" \
    "$(verdict "a < 5000 && b >= 0.95 * $FO_LOAD" "$(jget "$F" lat_p99_us)" "$(rate "$F")")"
done
fi # not --only chmem or workers

# The workers table: no target, the ratios of two workers to one.
wk_row() { # NAME KEY FORMAT CPU_FORMAT
  local a b
  a=$(median "$2_1") b=$(median "$2_2")
  row "$1" "$(fmt "$3" "$(rate "$a")")" "$(fmt "$3" "$(rate "$b")")" \
    "$(fmt '%.2f' "$(calc 'a / b' "$(rate "$b")" "$(rate "$a")")")" \
    "$(fmt "$4" "$(cpu "$a")")" "$(fmt "$4" "$(cpu "$b")")" \
    "$(fmt '%.2f' "$(calc 'a / b' "$(cpu "$b")" "$(cpu "$a")")")" ""
}
if [ "$ONLY" = pacing ]; then
  # NAME, paced, unpaced, paced/unpaced.
  pc_row() { # NAME KEY FORMAT
    local a b
    a=$(median pc_1) b=$(median pc_0)
    row "$1" "$(fmt "$3" "$(jget "$a" "$2")")" "$(fmt "$3" "$(jget "$b" "$2")")" \
      "$(fmt '%.2f' "$(calc 'a / b' "$(jget "$a" "$2")" "$(jget "$b" "$2")")")" \
      "" "" "" ""
  }
  pc_row "download Mbit/s ($PC_RATE Mbit/s link)" mbit_per_s '%.1f'
  pc_row "packets dropped by the link's buffer" down_dropped '%.0f'
  pc_row "dropped, % of packets sent" drop_pct '%.2f'
  pc_row "server CPU per MB" server_cpu_us_per_op '%.0f us'
  HEAD='measure\tpaced\tunpaced\tpaced/unpaced\t\t\t\t\n'
elif [ "$ONLY" = workers ]; then
  wk_row "datagram echo (16 x $W in flight, $P B)" wk_dgram '%.0f/s' '%.2f us'
  wk_row "GET / (8 conns x 16)" wk_get '%.0f/s' '%.1f us'
  wk_row "handshakes (+ WT session, 16 at once)" wk_hs '%.0f/s' '%.0f us'
  HEAD='measure\t--workers 1\t--workers 2\trate 2/1\tCPU/op 1\tCPU/op 2\tCPU/op 2/1\t\n'
else
  HEAD='measure\th3wt\tbaseline\tratio\th3wt CPU/op\tbaseline CPU/op\ttarget\tresult\n'
fi

{
  echo "h3wt benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) x $CPU_MODEL,"
  echo "kernel $(uname -r); server and load generator on the same machine;"
  echo "median of $REPEAT runs of ${DUR} s; CPU/op: the server's user + system"
  echo "time over the run divided by the operations (us per echo, per GET, per"
  echo "connection, per session, per subscription with its JOINs, per fan-out"
  echo "delivery; ms per MB)"
  echo
  {
    printf "$HEAD"
    cat "$ROWS"
  } | column -t -s "$(printf '\t')"
} | tee "$TABLE"
if [ -s "$TMP/failed" ]; then
  echo
  echo "runs that failed (left out): $(sort -u "$TMP/failed" | tr '\n' ' ')"
fi | tee -a "$TABLE"
echo
echo "JSON lines: $OUT"
echo "table:      $TABLE"
