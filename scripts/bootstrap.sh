#!/usr/bin/env bash
# Installs everything h3wt needs on Debian 12 (bookworm), idempotently.
#
# Debian suites it uses, all from the mirror the machine's own apt sources
# already use for bookworm (no host name is written here):
#   bookworm            the base: compilers, cmake, libuv, jansson
#   bookworm-backports  nghttp3 1.8 (enable_connect_protocol, h3_datagram)
#   trixie              pinned low; the source packages of wolfSSL, ngtcp2
#                       and curl (each fetched and version-looked-up from
#                       trixie by name, whatever other deb-src is set up),
#                       and the llhttp binary
# wolfSSL with QUIC and ngtcp2 with its wolfSSL crypto layer exist only as
# source packages, so they are built here into a private prefix, as is curl
# with HTTP/3 (for the tests).  The prefix is cached by version under
# $H3WT_DEPS_DIR, so a second run (or a fresh clone on the same machine)
# reuses it.
set -euo pipefail

DEPS_DIR=${H3WT_DEPS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/h3wt-deps}
WITH_CURL=${H3WT_WITH_CURL:-1}
JOBS=$(nproc)
log() { printf '[bootstrap] %s\n' "$*" >&2; }

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

# The suite the source packages are built from; named in every lookup and
# fetch, so another suite's deb-src (sid, say) cannot change what is built.
SRC_SUITE=trixie
H3WT_SOURCES=/etc/apt/sources.list.d/h3wt.sources

# The URIs of the machine's own apt entry for the bookworm suite (deb822
# .sources files, or one-line entries in sources.list and *.list), so the
# suites added below come from the same mirror.  Prints the first match.
bookworm_uris() {
  local f
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      if [ ! -f "$f" ] || [ "$f" = "$H3WT_SOURCES" ]; then continue; fi
      # deb822: blank-line separated stanzas; '#' comments; continuation
      # lines start with white space.
      awk 'BEGIN { RS = ""; FS = "\n" }
        {
          split("", f); k = ""
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^#/) continue
            if ($i ~ /^[ \t]/) { if (k != "") f[k] = f[k] " " $i; continue }
            p = index($i, ":"); if (p == 0) continue
            k = tolower(substr($i, 1, p - 1)); f[k] = substr($i, p + 1)
          }
          if (tolower(f["enabled"]) ~ /no/) next
          if ((" " f["types"] " ") !~ /[ \t]deb[ \t]/) next
          if ((" " f["suites"] " ") !~ /[ \t]bookworm[ \t]/) next
          print f["uris"]
        }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      # deb [options] URI SUITE COMPONENT...
      awk '$1 == "deb" {
          line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
          if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
          split(line, w, /[ \t]+/)
          if (w[2] == "bookworm") print w[1]
        }' "$f"
    done
  } | awk 'NF { $1 = $1; print; exit }'
}

apt_setup() {
  # bookworm-backports for nghttp3 1.8; trixie for the source packages of
  # wolfSSL, ngtcp2 and curl and for llhttp (a binary that needs only an old
  # glibc), pinned low so that nothing is ever upgraded from it by accident.
  local uris want
  uris=$(bookworm_uris)
  if [ -z "$uris" ]; then
    log "no apt entry for the bookworm suite in /etc/apt: cannot tell which mirror to use"
    exit 1
  fi
  want=$(cat <<SRC
Types: deb
URIs: $uris
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: $uris
Suites: $SRC_SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
)
  local file=$H3WT_SOURCES
  if [ "$(cat "$file" 2>/dev/null)" != "$want" ]; then
    log "adding bookworm-backports and $SRC_SUITE (pinned low) to apt sources, from $uris"
    printf '%s\n' "$want" | $SUDO tee "$file" >/dev/null
    $SUDO tee /etc/apt/preferences.d/h3wt-trixie >/dev/null <<PIN
Package: *
Pin: release n=$SRC_SUITE
Pin-Priority: 50
PIN
    $SUDO apt-get update -qq
  fi
}

need_pkgs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

apt_setup
need_pkgs build-essential cmake pkg-config ninja-build libuv1-dev libjansson-dev \
  autoconf automake libtool clang libclang-rt-14-dev dpkg-dev ca-certificates python3 valgrind \
  redis-server libhiredis-dev
if ! dpkg-query -W -f='${Status}' libllhttp-dev 2>/dev/null | grep -q 'install ok installed'; then
  log "installing libllhttp-dev from $SRC_SUITE (HTTP/1.1 parser of the local listener)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t "$SRC_SUITE" libllhttp-dev >/dev/null
fi
if ! dpkg-query -W -f='${Version}' libnghttp3-dev 2>/dev/null | grep -q '^1\.'; then
  log "installing libnghttp3-dev from bookworm-backports"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports libnghttp3-dev >/dev/null
fi

# The newest version of a source package in $SRC_SUITE, and only there:
# apt-cache madison names each version's suite ("trixie/main Sources"),
# which apt-cache showsrc does not.  One call for the three packages (each
# apt call may rebuild apt's cache, over a second where it is not kept).
MADISON=$(apt-cache madison wolfssl ngtcp2 curl 2>/dev/null || true)
srcver() {
  local v best=
  for v in $(awk -F'|' -v p="$1" -v s="$SRC_SUITE" '
               { gsub(/ /, "", $1); gsub(/ /, "", $2) }
               $1 == p && $3 ~ (" " s "/[^ ]+ Sources") { print $2 }' <<<"$MADISON"); do
    if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
  done
  echo "$best"
}
WOLFSSL_V=$(srcver wolfssl)
NGTCP2_V=$(srcver ngtcp2)
CURL_V=$(srcver curl)
[ -n "$WOLFSSL_V" ] && [ -n "$NGTCP2_V" ] || { log "cannot see $SRC_SUITE's source packages (deb-src for $SRC_SUITE)"; exit 1; }
# "asm-osrng": the wolfSSL build flavour (see below); a new flavour, a new
# prefix.
PREFIX="$DEPS_DIR/wolfssl-$WOLFSSL_V-asm-osrng-ngtcp2-$NGTCP2_V"
PREFIX=${PREFIX//[:~+]/_}
mkdir -p "$DEPS_DIR"
# Compiled into wolfSSL through CFLAGS (configure has no switch for them):
# AES-ECB/direct for ngtcp2's header protection, the secret callback for
# --keylog, early data, and random numbers from getrandom(2) itself
# (scripts/wolfssl_os_random.h says why: wolfSSL otherwise instantiates a
# Hash-DRBG, health test included, for every HKDF expansion QUIC makes).
WOLFSSL_DEFS="-DHAVE_AES_ECB -DWOLFSSL_AES_DIRECT -DHAVE_SECRET_CALLBACK -DWOLFSSL_EARLY_DATA -DWOLFSSL_GETRANDOM -DCUSTOM_RAND_GENERATE_BLOCK=h3wt_wolfssl_os_random -DCUSTOM_RAND_GENERATE_SEED=h3wt_wolfssl_os_random"
WOLFSSL_RNG_H="$(cd "$(dirname "$0")" && pwd)/wolfssl_os_random.h"

fetch_src() { # name -> prints the unpacked dir
  local name=$1 dir="$DEPS_DIR/src-$1"
  if [ ! -d "$dir/unpacked" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    # $SRC_SUITE's version, from $SRC_SUITE (-t): other suites' deb-src
    # entries do not matter.  --tar-only: the mirror answers 404 for some
    # .dsc/.debian.tar files.  Tried twice: a mirror sync can fail one.
    local ver
    ver=$(srcver "$name")
    (cd "$dir" && apt-get source --tar-only --download-only -t "$SRC_SUITE" "$name=$ver" >/dev/null 2>&1 ||
                 apt-get source --tar-only --download-only -t "$SRC_SUITE" "$name=$ver" >/dev/null)
    local tarball
    tarball=$(ls "$dir"/*.orig.tar.* | head -n1)
    mkdir -p "$dir/unpacked"
    tar -xf "$tarball" -C "$dir/unpacked" --strip-components=1
  fi
  echo "$dir/unpacked"
}

if [ ! -f "$PREFIX/.done" ]; then
  log "building wolfSSL $WOLFSSL_V and ngtcp2 $NGTCP2_V into $PREFIX"
  rm -rf "$PREFIX"
  src=$(fetch_src wolfssl)
  # autotools, not wolfSSL's CMake build: only configure has the assembly
  # switches (AES-NI, AVX, SHA extensions, the x86-64 P-256 and X25519
  # code), without which AES-GCM alone costs ~70% of the server's CPU in a
  # stream echo.  The assembly checks the CPU at run time.  No
  # --enable-keylog-export: that makes wolfSSL itself append every secret to
  # ./sslkeylog.log; we log through HAVE_SECRET_CALLBACK, on request only.
  # --disable-hashdrbg: see WOLFSSL_DEFS.  --enable-aesgcm=word: GHASH
  # without the 4-bit table, which the AES-NI/AVX code never reads and
  # which made each of a connection's six cipher contexts 96 bytes larger
  # (and was recomputed for every key); the table-less C code is the
  # fallback for CPUs without AES-NI.
  b="$DEPS_DIR/build-wolfssl"; rm -rf "$b"; cp -a "$src" "$b"
  (cd "$b" && ./autogen.sh >/dev/null 2>&1 &&
    ./configure --prefix="$PREFIX" --enable-static --disable-shared --with-pic \
      --enable-quic --enable-session-ticket --enable-earlydata \
      --enable-aesni --enable-intelasm --enable-sp --enable-sp-asm \
      --enable-ecc --enable-curve25519 --enable-certgen --enable-keygen \
      --enable-certext --enable-harden --enable-altcertchains --enable-curl \
      --enable-asn=template --disable-examples --disable-crypttests \
      --disable-hashdrbg --enable-aesgcm=word \
      CFLAGS="-O2 -Wno-error=stringop-overflow $WOLFSSL_DEFS -include $WOLFSSL_RNG_H" >/dev/null &&
    make -j "$JOBS" >/dev/null && make install >/dev/null)
  # Defines passed through CFLAGS reach the library but not the installed
  # options.h, which programs compiled against the headers read: add them.
  # NAME=VALUE becomes "#define NAME VALUE".
  for d in $WOLFSSL_DEFS; do
    d=${d#-D}
    name=${d%%=*}
    line="#define $name"
    [ "$name" = "$d" ] || line="$line ${d#*=}"
    grep -q "^#define $name\b" "$PREFIX/include/wolfssl/options.h" ||
      sed -i "0,/^#ifdef __cplusplus/s//#undef $name\n$line\n\n&/" "$PREFIX/include/wolfssl/options.h"
  done

  src=$(fetch_src ngtcp2)
  cmake -S "$src" -B "$DEPS_DIR/build-ngtcp2" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_PREFIX_PATH="$PREFIX" \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DENABLE_WOLFSSL=ON -DENABLE_OPENSSL=OFF -DENABLE_GNUTLS=OFF -DENABLE_BORINGSSL=OFF \
    -DENABLE_LIB_ONLY=ON -DENABLE_SHARED_LIB=OFF -DENABLE_STATIC_LIB=ON \
    -DBUILD_TESTING=OFF >/dev/null
  cmake --build "$DEPS_DIR/build-ngtcp2" -j "$JOBS" >/dev/null
  cmake --install "$DEPS_DIR/build-ngtcp2" >/dev/null
  rm -rf "$DEPS_DIR/build-wolfssl" "$DEPS_DIR/build-ngtcp2"
  touch "$PREFIX/.done"
fi

CURL_BIN="$PREFIX/curl-$CURL_V/bin/curl"
CURL_BIN=${CURL_BIN//[:~+]/_}
if [ "$WITH_CURL" = 1 ] && [ ! -x "$CURL_BIN" ]; then
  log "building curl $CURL_V with HTTP/3 (for the tests)"
  need_pkgs zlib1g-dev
  src=$(fetch_src curl)
  cdir=$(dirname "$(dirname "$CURL_BIN")")
  b="$DEPS_DIR/build-curl"; rm -rf "$b"; mkdir -p "$b"
  (cd "$b" && PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" LIBS="-lm -lpthread" "$src/configure" \
      --prefix="$cdir" --disable-shared --enable-static \
      --with-wolfssl="$PREFIX" --with-ngtcp2="$PREFIX" --with-nghttp3 \
      --without-libpsl --without-brotli --without-zstd --without-libidn2 \
      --without-nghttp2 --without-librtmp --without-libssh2 --disable-ldap \
      --disable-ldaps --disable-rtsp --disable-dict --disable-telnet --disable-tftp \
      --disable-pop3 --disable-imap --disable-smtp --disable-gopher --disable-mqtt \
      --disable-manual --disable-docs >/dev/null &&
    make -j "$JOBS" >/dev/null && make install >/dev/null)
  rm -rf "$b"
fi

# What callers need: the prefix (for CMAKE_PREFIX_PATH) and the curl binary.
echo "H3WT_DEPS_PREFIX=$PREFIX"
[ "$WITH_CURL" = 1 ] && echo "H3WT_CURL=$CURL_BIN"
exit 0
