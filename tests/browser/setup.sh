#!/usr/bin/env bash
# Installs what the browser tests need, idempotently (fast when done):
#   - Debian's chromium (and firefox-esr for the Firefox test) when missing;
#   - the pinned npm packages (playwright-core, puppeteer-core) with `npm ci`
#     from the committed package-lock.json, when node_modules is missing or
#     older than the lockfile.
# Never downloads a browser build of its own: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD
# and PUPPETEER_SKIP_DOWNLOAD keep the npm packages from trying.
# Set H3WT_BROWSER_FIREFOX=0 to skip firefox-esr.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ "${H3WT_BROWSER_FIREFOX:-1}" != 0 ]; then
  command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
fi
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "browser setup: apt-get install ${need[*]}" >&2
  SUDO=
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}" >&2; then
    $SUDO apt-get update >&2
    $SUDO apt-get install -y --no-install-recommends "${need[@]}" >&2
  fi
fi

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1
stamp=node_modules/.h3wt-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "browser setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json "$stamp"
fi
