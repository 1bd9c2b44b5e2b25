#!/usr/bin/env bash
# Regenerates the SDP corpus in tests/sdp/: real offers (and answers to the hand-written
# WhatsApp offer) from independent WebRTC stacks, plus the hand-written WhatsApp variants.
# Debian 12, as root (or with sudo). Idempotent: installs only what is missing.
#
#   bash scripts/sdp-corpus/run.sh            # everything
#   bash scripts/sdp-corpus/run.sh chromium   # one or more of: whatsapp chromium firefox gstreamer aiortc
#
# Each stack runs in a fresh network namespace that has only a loopback interface (unshare
# --net), so its ICE agent can only see 127.0.0.1/::1 and no packet can leave the machine,
# even when an answer's ICE agent tries the offer's (documentation-address) candidates.
# Installing uses only Debian's archive, the npm registry and PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/tests/sdp"
venv_py="/opt/wacall-venv/bin/python"
mkdir -p "$out"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

steps=("$@")
if [ ${#steps[@]} -eq 0 ]; then steps=(whatsapp chromium firefox gstreamer aiortc); fi
want() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

apt_packages=(iproute2 util-linux python3)
want chromium && apt_packages+=(chromium nodejs npm)
want firefox && apt_packages+=(firefox-esr nodejs npm)
want gstreamer && apt_packages+=(gstreamer1.0-plugins-bad gstreamer1.0-nice gstreamer1.0-plugins-good
  gstreamer1.0-plugins-base gstreamer1.0-tools python3-gi gir1.2-gst-plugins-bad-1.0
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-nice-0.1)
want aiortc && apt_packages+=(python3-venv)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere than Debian (e.g. NodeSource): do not fight it
if command -v node >/dev/null && command -v npm >/dev/null; then
  kept=(); for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || kept+=("$p"); done
  missing=("${kept[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "sdp-corpus: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if want chromium || want firefox; then
  if ! (cd "$here" && npm ls --depth=0 >/dev/null 2>&1); then
    echo "sdp-corpus: npm ci"
    (cd "$here" && PUPPETEER_SKIP_DOWNLOAD=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  fi
fi
if want aiortc; then
  if [ ! -x "$venv_py" ]; then $SUDO python3 -m venv /opt/wacall-venv; fi
  if ! "$venv_py" -c 'import aiortc' 2>/dev/null; then
    echo "sdp-corpus: pip install aiortc"
    $SUDO "$venv_py" -m pip install -q aiortc
  fi
fi

# Runs "$@" in a new network namespace with only loopback (up). With ROUTE_VIA_LO=1 the
# namespace also gets default routes via lo: Firefox only gathers addresses on the interface
# of its default route; with this it finds lo. Anything addressed elsewhere just loops back
# inside the namespace and is dropped.
isolated() {
  $SUDO unshare --net env ROUTE_VIA_LO="${ROUTE_VIA_LO:-0}" sh -c '
    ip link set lo up
    if [ "$ROUTE_VIA_LO" = 1 ]; then ip route add default dev lo; ip -6 route add default dev lo; fi
    exec "$@"' sh "$@"
}

rc=0
run() { local name="$1"; shift; echo "== $name"; "$@" || { echo "sdp-corpus: $name FAILED" >&2; rc=1; }; }

# the hand-written files first: the browsers and aiortc answer whatsapp-wideband-offer.sdp
want whatsapp && run whatsapp python3 "$here/whatsapp.py" "$out"
want chromium && run chromium isolated timeout 180 node "$here/chromium.js" "$out"
want firefox && ROUTE_VIA_LO=1 run firefox isolated timeout 180 node "$here/firefox.js" "$out"
want gstreamer && run gstreamer isolated timeout 60 /usr/bin/python3 "$here/gstreamer_webrtcbin.py" "$out/gstreamer-webrtcbin-offer.sdp"
want aiortc && run aiortc isolated timeout 60 "$venv_py" "$here/aiortc_sdp.py" "$out"

echo "== versions"
command -v chromium >/dev/null && chromium --version 2>/dev/null | grep -v '^$' || true
command -v firefox-esr >/dev/null && firefox-esr --version 2>/dev/null || true
command -v gst-inspect-1.0 >/dev/null && gst-inspect-1.0 --version | sed -n 2p || true
dpkg-query -W -f='libnice10 ${Version}\n' libnice10 2>/dev/null || true
[ -x "$venv_py" ] && "$venv_py" -m pip show aiortc 2>/dev/null | sed -n 's/^Version: /aiortc /p' || true
(cd "$here" && npm ls --depth=0 2>/dev/null | sed -n '2,$p') || true
exit $rc
