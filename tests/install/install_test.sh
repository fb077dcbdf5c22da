#!/usr/bin/env bash
# install.examples: what an embedder gets from `cmake --install`.
#
#   install_test.sh --build DIR --source DIR --client H3WT_CLIENT --deps P1[:P2]
#
# 1. Installs the build tree DIR into a temporary prefix and checks it: the
#    one public header and no module header, libh3wt.a, libh3wt.so with its
#    soname, only public symbols exported and no test hook anywhere, the
#    CMake package and h3wt.pc.
# 2. Builds examples/ against that prefix only (never the source tree's
#    lib/): with find_package(h3wt), static (h3wt::h3wt) and shared
#    (h3wt::h3wt_shared); and with pkg-config, dynamic and --static (from a
#    copy of the prefix without the .so, which also shows h3wt.pc can move).
# 3. Runs each build: the example starts on a free UDP port, h3wt-client
#    --wt checks a real WebTransport echo (datagrams and bidi streams) on
#    echo, and on arena snapshot datagrams from the 20 Hz tick (two
#    players at once) and a chat line fanned back on a server stream; then
#    SIGTERM must end it with status 0 and every handle closed.
#
# --deps: the prefixes holding wolfSSL and ngtcp2 (H3WT_DEPS_PREFIX), as
# found at configure time.  Prints what it checks; exits non-zero on the
# first failure.
set -euo pipefail

BUILD='' SOURCE='' CLIENT='' DEPS=''
while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --source) SOURCE=$2; shift 2 ;;
    --client) CLIENT=$2; shift 2 ;;
    --deps) DEPS=$2; shift 2 ;;
    *) echo "install_test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$BUILD" ] || [ -z "$SOURCE" ] || [ ! -x "$CLIENT" ] || [ -z "$DEPS" ]; then
  echo "usage: install_test.sh --build DIR --source DIR --client H3WT_CLIENT --deps P1[:P2]" >&2
  exit 2
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/h3wt-install-test.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
START=$(date +%s)
log() { printf '[install-test %ss] %s\n' $(($(date +%s) - START)) "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

PREFIX=$T/prefix
CC=${CC:-cc}
# Examples are held to the project's warning level.
CFLAGS_EX="-O1 -g -Wall -Wextra -Werror"
IFS=: read -r -a DEP_PREFIXES <<<"$DEPS"
dep_cmake_path=$(IFS=';'; echo "${DEP_PREFIXES[*]}")
dep_pc_path=
for p in "${DEP_PREFIXES[@]}"; do
  dep_pc_path=$dep_pc_path:$p/lib/pkgconfig:$p/lib64/pkgconfig:$p/share/pkgconfig
done

# ---- 1. install and look at the prefix -------------------------------------

log "cmake --install $BUILD --prefix $PREFIX"
cmake --install "$BUILD" --prefix "$PREFIX" >"$T/install.log" ||
  { cat "$T/install.log"; fail "cmake --install failed"; }

[ -f "$PREFIX/include/h3wt/h3wt.h" ] || fail "no include/h3wt/h3wt.h"
others=$(cd "$PREFIX/include" && find . -type f ! -path ./h3wt/h3wt.h)
[ -z "$others" ] || fail "headers other than h3wt/h3wt.h installed: $others"
internal=$(find "$PREFIX" -name 'h3wt_*.h')
[ -z "$internal" ] || fail "module headers installed: $internal"

pc=$(find "$PREFIX" -name h3wt.pc)
[ -n "$pc" ] || fail "no h3wt.pc"
LIBDIR=$(dirname "$(dirname "$pc")")
[ -f "$LIBDIR/libh3wt.a" ] || fail "no libh3wt.a next to h3wt.pc"
[ -L "$LIBDIR/libh3wt.so" ] || fail "no libh3wt.so link in $LIBDIR"
soname=$(readelf -d "$LIBDIR/libh3wt.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == libh3wt.so.* ]] || fail "libh3wt.so has no soname (got '$soname')"
[ -e "$LIBDIR/$soname" ] || fail "$soname (the soname) is not installed"
for f in h3wt-config.cmake h3wt-config-version.cmake h3wt-targets.cmake \
         h3wt-dependencies.cmake; do
  [ -f "$LIBDIR/cmake/h3wt/$f" ] || fail "no lib/cmake/h3wt/$f"
done

exports=$(nm -D --defined-only "$LIBDIR/libh3wt.so" | awk '{print $3}')
nexports=$(wc -l <<<"$exports")
stray=$(grep -v '^h3wt_' <<<"$exports" || true)
[ -z "$stray" ] || fail "libh3wt.so exports non-API symbols: ${stray:0:300}"
archive=$(nm "$LIBDIR/libh3wt.a" 2>/dev/null)
hooks=$(grep h3wt_wt_test_ <<<"$exports$archive" || true)
[ -z "$hooks" ] || fail "test hooks in the installed libraries: $hooks"
# Every exported name is declared in the public header, and every function
# the header declares is defined (as listed by the same parser the build
# uses for the version script).
for s in $exports; do
  grep -q "\b$s(" "$PREFIX/include/h3wt/h3wt.h" || fail "$s is exported but not in h3wt.h"
done
cmake -DHEADER="$PREFIX/include/h3wt/h3wt.h" -DOUTPUT="$T/api.map" \
  -P "$SOURCE/cmake/h3wt-exports.cmake"
missing=$(sed -n 's/^ *\(h3wt_[a-z0-9_]*\);$/\1/p' "$T/api.map" | grep -vxF -f <(echo "$exports") || true)
[ -z "$missing" ] || fail "declared in h3wt.h but not exported by libh3wt.so: $missing"
version=$(sed -n 's/^#define H3WT_VERSION "\(.*\)"$/\1/p' "$PREFIX/include/h3wt/h3wt.h")
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig$dep_pc_path"
[ "$(pkg-config --modversion h3wt)" = "$version" ] ||
  fail "h3wt.pc says $(pkg-config --modversion h3wt), h3wt.h says $version"
log "prefix ok: h3wt.h, libh3wt.a, $soname ($nexports exports, all h3wt_*, no test hooks), cmake package, h3wt.pc $version"

# Whether the installed header has the shared-buffer API examples/arena
# is written against (added to h3wt.h in another change).
has_buf_api=1
grep -q 'h3wt_server_foreach_session' "$PREFIX/include/h3wt/h3wt.h" || has_buf_api=0

# ---- 2. build the examples against the prefix --------------------------------

# Each built example is recorded as "name path".
BUILT=()

cmake_build() { # dir, extra cmake args...
  local dir=$1; shift
  log "examples with find_package(h3wt) $*"
  cmake -S "$SOURCE/examples" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_PREFIX_PATH="$PREFIX;$dep_cmake_path" -DCMAKE_C_FLAGS="$CFLAGS_EX" \
    "$@" >"$dir.log" 2>&1 || { cat "$dir.log"; fail "cmake configure of examples/ failed"; }
  cmake --build "$dir" --target echo >>"$dir.log" 2>&1 ||
    { cat "$dir.log"; fail "building examples/echo with find_package failed"; }
  BUILT+=("echo $dir/echo")
  if [ $has_buf_api = 1 ]; then
    cmake --build "$dir" --target arena >>"$dir.log" 2>&1 ||
      { cat "$dir.log"; fail "building examples/arena with find_package failed"; }
    BUILT+=("arena $dir/arena")
  fi
}

# Whether a program needs libh3wt.so (its soname) at run time.
needs_so() { readelf -d "$1" | grep -q "(NEEDED).*\[$soname\]"; }

cmake_build "$T/cmake-static"
! needs_so "$T/cmake-static/echo" ||
  fail "h3wt::h3wt (static) gave a binary that needs $soname"
cmake_build "$T/cmake-shared" -DEXAMPLES_SHARED=ON
needs_so "$T/cmake-shared/echo" ||
  fail "h3wt::h3wt_shared gave a binary that does not need $soname"

pc_build() { # name, outdir, pkg-config args...
  local name=$1 out=$2 flags; shift 2
  mkdir -p "$out"
  flags=$(pkg-config "$@" --cflags --libs h3wt) || fail "pkg-config $* h3wt failed"
  # shellcheck disable=SC2086 # the flags are meant to split
  $CC $CFLAGS_EX "$SOURCE/examples/$name/$name.c" -o "$out/$name" $flags \
    ${LDFLAGS_EX:-} >"$out/$name.log" 2>&1 ||
    { cat "$out/$name.log"; fail "cc ... \$(pkg-config $* --cflags --libs h3wt) failed for $name"; }
  BUILT+=("$name $out/$name")
}

log "examples with pkg-config h3wt (libh3wt.so)"
for ex in echo arena; do
  [ $ex = arena ] && [ $has_buf_api = 0 ] && continue
  # The prefix is not on the loader's path: the binary carries it.
  LDFLAGS_EX="-Wl,-rpath,$LIBDIR" pc_build $ex "$T/pc-shared"
done
needs_so "$T/pc-shared/echo" ||
  fail "pkg-config --libs h3wt gave a binary that does not need $soname"

# The linker prefers libh3wt.so where both are; an install with only the
# static library (as with -DH3WT_BUILD_SHARED=OFF) is what --static is for.
log "examples with pkg-config --static h3wt (a moved copy of the prefix, no .so)"
cp -a "$PREFIX" "$T/static-prefix"
rm -f "$T/static-prefix/${LIBDIR#"$PREFIX"/}"/libh3wt.so*
for ex in echo arena; do
  [ $ex = arena ] && [ $has_buf_api = 0 ] && continue
  PKG_CONFIG_PATH="$T/static-prefix/${LIBDIR#"$PREFIX"/}/pkgconfig$dep_pc_path" \
    pc_build $ex "$T/pc-static" --static
done
! needs_so "$T/pc-static/echo" ||
  fail "pkg-config --static h3wt gave a binary that needs $soname"

# ---- 3. run them --------------------------------------------------------------

CERT=$T/cert.pem KEY=$T/key.pem

start() { # path, outfile -> sets PID and PORT
  "$1" 0 "$CERT" "$KEY" >"$2" 2>"$2.err" </dev/null &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$2")
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || { cat "$2" "$2.err"; fail "$1 exited before listening"; }
    sleep 0.1
  done
  fail "$1 printed no port within 10 s"
}

stop() { # path, outfile
  local rc=0
  kill -TERM "$PID"
  for _ in $(seq 100); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$PID" 2>/dev/null && fail "$1 still runs 10 s after SIGTERM"
  wait "$PID" || rc=$?
  [ $rc = 0 ] || { cat "$2" "$2.err"; fail "$1 exited with status $rc after SIGTERM"; }
  grep -qx "${1##*/}: stopped" "$2" || { cat "$2"; fail "$1 did not stop cleanly"; }
}

client() { # outfile, args...
  local out=$1 rc=0; shift
  "$CLIENT" -k --timeout 15 "$@" >"$out" 2>"$out.err" || rc=$?
  [ $rc = 0 ] || { cat "$out" "$out.err"; fail "h3wt-client $* exited with $rc"; }
}

run_echo() { # path
  local out=$T/run.out
  start "$1" "$out"
  client "$T/c.out" --wt "https://127.0.0.1:$PORT/echo" --datagrams 50 \
    --streams 4 --stream-bytes 64K
  if ! grep -q '^datagrams: sent 50, received 50, lost 0' "$T/c.out" ||
     ! grep -q '^streams: 4 ok, 0 failed' "$T/c.out"; then
    cat "$T/c.out"
    fail "$1: the echo was not complete"
  fi
  grep -q '^echo: certificate sha256 [0-9a-f]\{64\}$' "$out" ||
    fail "$1 printed no certificate hash"
  stop "$1" "$out"
}

run_arena() { # path
  local out=$T/run.out rc=0 b
  start "$1" "$out"
  # Player B watches for a while; player A joins, sends a chat line (a uni
  # stream that must come back on a server stream) and reads snapshots.
  "$CLIENT" -k --timeout 15 --wt "https://127.0.0.1:$PORT/arena" \
    --read-server-streams 1.5 >"$T/b.out" 2>&1 &
  b=$!
  PIDS+=("$b")
  sleep 0.3
  client "$T/a.out" --wt "https://127.0.0.1:$PORT/arena" --uni 1 \
    --stream-bytes 200 --read-server-streams 0.6
  wait "$b" || rc=$?
  [ $rc = 0 ] || { cat "$T/b.out"; fail "$1: the watching client exited with $rc"; }
  grep -q '^uni: 1 ok, 0 failed' "$T/a.out" ||
    { cat "$T/a.out"; fail "$1: the chat line did not come back"; }
  local snaps
  snaps=$(grep -c '^s0 datagram: tick [0-9]* players [0-9]' "$T/a.out" || true)
  [ "$snaps" -ge 5 ] || { cat "$T/a.out"; fail "$1: $snaps snapshots in 0.6 s at 20 Hz"; }
  grep -q '^s0 datagram: tick [0-9]* players 2' "$T/a.out" "$T/b.out" ||
    { cat "$T/a.out" "$T/b.out"; fail "$1: no snapshot saw both players"; }
  stop "$1" "$out"
}

for entry in "${BUILT[@]}"; do
  name=${entry%% *} path=${entry#* }
  log "run ${path#"$T"/}"
  "run_$name" "$path"
done

if [ $has_buf_api = 0 ]; then
  fail "examples/arena was not built: the installed h3wt.h lacks the shared-buffer API (h3wt_buf_new, h3wt_session_send_datagram_buf, h3wt_server_foreach_session) it is written against"
fi
log "all ok"
