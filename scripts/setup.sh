#!/usr/bin/env bash
# Prepares a Debian 12 machine to build, demo and test wacall. Idempotent; run as root (or with
# sudo available). What it does:
#   - Debian packages: cmake (the opus crate builds libopus 1.5), ALSA headers, pkg-config,
#     PulseAudio + ALSA plugins (virtual sound devices for machines without a sound card), Xvfb.
#   - a Python venv with aiortc at /opt/wacall-venv (the independent WebRTC stack of the interop test)
#   - Debian's Chromium and playwright-core in tests/browser (the browser that calls the bot)
#   - a PulseAudio daemon with null sinks behind ALSA `default` (tests run cpal's real code on it).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(cmake pkg-config libasound2-dev pulseaudio pulseaudio-utils libasound2-plugins alsa-utils xvfb xauth python3-venv
  # the TLS test's certificates (openssl) and the browser test's network namespace (iproute2)
  openssl iproute2
  # the softphone window at run time (X11 + OpenGL, Mesa's software renderer under Xvfb)
  libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 libgl1 libegl1 libgl1-mesa-dri)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f .ci/interop-setup.sh ]; then bash .ci/interop-setup.sh; fi
if [ -f .ci/browser-setup.sh ]; then bash .ci/browser-setup.sh; fi
if [ -f .ci/audio-setup.sh ]; then bash .ci/audio-setup.sh; fi
echo "setup: done"
