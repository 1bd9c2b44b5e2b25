#!/usr/bin/env bash
# Installs what tests/browser_chromium.rs drives: Debian's Chromium and playwright-core (from
# the npm registry, pinned by tests/browser/package-lock.json; no browser download). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in chromium; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm: Debian's, unless the machine already has them (e.g. NodeSource).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "browser-setup: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! (cd tests/browser && npm ls --depth=0 >/dev/null 2>&1); then
  echo "browser-setup: npm ci in tests/browser"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi
echo "browser-setup: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium ?'), playwright-core $(cd tests/browser && node -p 'require("playwright-core/package.json").version')"
