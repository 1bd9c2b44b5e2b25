#!/usr/bin/env bash
# Virtual sound devices for machines without a sound card (CI, containers), so tests run cpal's
# real ALSA code. Idempotent. Usage: .ci/audio-setup.sh [start|stop|status]   (default: start)
#
# start: a PulseAudio daemon (user mode, also as root) with two null sinks, reachable on a fixed
#        socket, and an ALSA config routing `default` and a few named PCMs to it:
#          default / wacall_speaker     playback -> null sink `wacall_speaker` (the call's speaker)
#          default / wacall_mic         capture  <- `wacall_mic.monitor` (the call's microphone)
#          wacall_speaker_monitor       capture  <- `wacall_speaker.monitor` (what was played)
#          wacall_mic_feed              playback -> `wacall_mic` (feed a tone into the microphone)
#        Null sinks are paced in real time, like a sound card.
# stop:  kills that daemon (by its recorded PID) and leaves the ALSA config in place (without a
#        daemon its PCMs simply fail to open).
# Env: WACALL_PULSE_DIR (default /tmp/wacall-pulse): runtime dir, socket `native`, pid, log.
set -euo pipefail

DIR="${WACALL_PULSE_DIR:-/tmp/wacall-pulse}"
SOCKET="$DIR/native"
SERVER="unix:$SOCKET"
PIDFILE="$DIR/pid"
LOG="$DIR/pulseaudio.log"
MARKER="# managed by wacall .ci/audio-setup.sh"

if [ "$(id -u)" -eq 0 ]; then ASOUND=/etc/asound.conf; else ASOUND="$HOME/.asoundrc"; fi

export PULSE_SERVER="$SERVER"

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && pactl info >/dev/null 2>&1
}

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "audio-setup: '$1' not found; run scripts/setup.sh (packages: pulseaudio pulseaudio-utils libasound2-plugins alsa-utils)" >&2
    exit 1
  }
}

write_asound() {
  if [ -f "$ASOUND" ] && ! grep -qF "$MARKER" "$ASOUND"; then
    cp "$ASOUND" "$ASOUND.wacall-bak"
    echo "audio-setup: saved the previous $ASOUND as $ASOUND.wacall-bak"
  fi
  local tmp
  tmp="$(mktemp)"
  cat >"$tmp" <<CONF
$MARKER
# ALSA -> the PulseAudio daemon on $SOCKET (virtual devices, no sound card needed).
pcm.!default {
  type pulse
  server "$SERVER"
  hint { show on description "wacall default (PulseAudio: speaker sink, mic source)" }
}
ctl.!default {
  type pulse
  server "$SERVER"
}
pcm.wacall_speaker {
  type pulse
  server "$SERVER"
  device "wacall_speaker"
  hint { show on description "wacall speaker (null sink)" }
}
pcm.wacall_speaker_monitor {
  type pulse
  server "$SERVER"
  device "wacall_speaker.monitor"
  hint { show on description "wacall speaker monitor (what was played)" }
}
pcm.wacall_mic {
  type pulse
  server "$SERVER"
  device "wacall_mic.monitor"
  hint { show on description "wacall microphone (monitor of the wacall_mic sink)" }
}
pcm.wacall_mic_feed {
  type pulse
  server "$SERVER"
  device "wacall_mic"
  hint { show on description "wacall microphone feed (play here to speak into wacall_mic)" }
}
CONF
  if ! cmp -s "$tmp" "$ASOUND" 2>/dev/null; then
    install -m 0644 "$tmp" "$ASOUND"
  fi
  rm -f "$tmp"
}

start() {
  need pulseaudio
  need pactl
  mkdir -p "$DIR"
  chmod 0700 "$DIR"
  write_asound
  if running; then
    echo "audio-setup: PulseAudio already running (pid $(cat "$PIDFILE"), $SERVER); ALSA config $ASOUND"
    return 0
  fi
  rm -f "$PIDFILE" "$SOCKET"
  cat >"$DIR/wacall.pa" <<PA
load-module module-null-sink sink_name=wacall_speaker rate=48000 channels=2 sink_properties=device.description=wacall_speaker
load-module module-null-sink sink_name=wacall_mic rate=48000 channels=2 sink_properties=device.description=wacall_mic
load-module module-native-protocol-unix socket=$SOCKET auth-anonymous=1
set-default-sink wacall_speaker
set-default-source wacall_mic.monitor
PA
  # User mode (not --system) even as root: no D-Bus, no rtkit, never exits on idle. Runs in the
  # background of its own session so it survives this script and has no stdin.
  PULSE_RUNTIME_PATH="$DIR" PULSE_STATE_PATH="$DIR" \
    setsid pulseaudio -n -F "$DIR/wacall.pa" --daemonize=no --system=false --use-pid-file=no \
      --exit-idle-time=-1 --disallow-exit --realtime=no --high-priority=no \
      --log-target=stderr --log-level=error </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if pactl info >/dev/null 2>&1; then break; fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "audio-setup: pulseaudio exited; log:" >&2
      cat "$LOG" >&2
      exit 1
    fi
    sleep 0.1
  done
  if ! pactl info >/dev/null 2>&1; then
    echo "audio-setup: pulseaudio did not answer on $SERVER within 10 s; log:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  echo "audio-setup: PulseAudio pid $(cat "$PIDFILE") on $SERVER; sinks wacall_speaker, wacall_mic; ALSA default + wacall_* PCMs in $ASOUND"
}

stop() {
  if [ -f "$PIDFILE" ]; then
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    echo "audio-setup: stopped PulseAudio (pid $pid)"
  else
    echo "audio-setup: not running"
  fi
  rm -f "$SOCKET"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status)
    if running; then echo "audio-setup: running (pid $(cat "$PIDFILE"), $SERVER)"; else echo "audio-setup: not running"; exit 1; fi
    ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
