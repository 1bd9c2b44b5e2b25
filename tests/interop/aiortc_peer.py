#!/usr/bin/env python3
"""An independent WebRTC peer (aiortc) for tests/interop_aiortc.rs.

Usage: aiortc_peer.py offer|answer [--send-hz 440] [--seconds 3] [--timeout 15]

Protocol, one JSON object per line:
  offer:  prints {"type": "offer", "sdp": ...}, reads {"sdp": ...} (the answer) from stdin.
  answer: reads {"sdp": ...} (the offer) from stdin, prints {"type": "answer", "sdp": ...}.
Then it sends a pure sine at --send-hz (20 ms frames, 48 kHz mono s16; aiortc encodes Opus),
collects --seconds of the audio it receives once the first frame arrived (skipping the decoder's
start-up), prints {"heard_hz": ..., "frames": ..., ...} and keeps sending until stdin reaches
EOF, so the other side hears a full tone too. Everything is bounded by --timeout: on any failure
it prints the reason on stderr and exits non-zero; a SIGALRM backstop kills a stuck event loop.

Only 127.0.0.1 is used: aioice's host address list is replaced by loopback (it skips loopback
by default) and no STUN server is configured; candidate lines of any other address are also
stripped from the SDP both ways.
"""

import argparse
import array
import asyncio
import fractions
import json
import math
import os
import signal
import stat
import sys
import time

import aioice.ice

# Loopback only: aioice normally gathers every interface *except* loopback.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

import av  # noqa: E402
from aiortc import (  # noqa: E402
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError  # noqa: E402

try:
    if os.environ.get("AIORTC_PEER_NO_NUMPY"):
        raise ImportError("disabled by AIORTC_PEER_NO_NUMPY")
    import numpy as np
except ImportError:
    np = None

RATE = 48_000
FRAME = 960  # 20 ms
TIME_BASE = fractions.Fraction(1, RATE)
SKIP_SECONDS = 0.2  # decoder start-up and jitter-buffer fill


def log(msg):
    print(f"aiortc_peer: {msg}", file=sys.stderr, flush=True)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def loopback_only(sdp):
    """Drops candidate lines whose address is not 127.0.0.1; keeps CRLF line ends."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 6 or parts[4] != "127.0.0.1":
                continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


class ToneTrack(MediaStreamTrack):
    """A phase-continuous sine, one 20 ms frame per recv(), paced in real time."""

    kind = "audio"

    def __init__(self, hz, amplitude=8000.0):
        super().__init__()
        self.step = 2.0 * math.pi * hz / RATE
        self.amplitude = amplitude
        self.n = 0
        self.start = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self.start is None:
            self.start = now
        wait = self.start + self.n * FRAME / RATE - now
        if wait > 0:
            await asyncio.sleep(wait)
        base = self.n * FRAME
        samples = array.array(
            "h",
            (int(self.amplitude * math.sin(self.step * (base + i))) for i in range(FRAME)),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = RATE
        frame.pts = base
        frame.time_base = TIME_BASE
        self.n += 1
        return frame


def first_channel(frame):
    """Channel 0 of a decoded s16 frame (aiortc's Opus decoder gives packed stereo)."""
    if frame.format.name != "s16":
        raise RuntimeError(f"unexpected decoded format {frame.format.name}")
    channels = len(frame.layout.channels)
    pcm = array.array("h")
    pcm.frombytes(bytes(frame.planes[0])[: frame.samples * channels * 2])
    return pcm[::channels] if channels > 1 else pcm


def dominant_numpy(samples):
    x = np.asarray(samples, dtype=np.float64)
    x = x * np.hanning(len(x))
    n = 1 << 20  # zero padding: 0.046 Hz bins
    spec = np.abs(np.fft.rfft(x, n))
    lo, hi = int(50 * n / RATE), int(4000 * n / RATE)
    k = lo + int(np.argmax(spec[lo:hi]))
    a, b, c = (math.log(max(spec[i], 1e-12)) for i in (k - 1, k, k + 1))
    d = a - 2 * b + c
    off = 0.5 * (a - c) / d if abs(d) > 1e-12 else 0.0
    return (k + off) * RATE / n


def goertzel(x, freq):
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def dominant_python(samples):
    """Pure-Python fallback: Goertzel scan over 0.5 s, 10 Hz then 0.5 Hz steps."""
    x = samples[: RATE // 2]
    n = len(x)
    x = [v * (0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1))) for i, v in enumerate(x)]
    best = max(range(50, 2000, 10), key=lambda f: goertzel(x, f))
    fine = [best - 10 + 0.5 * i for i in range(41)]
    return max(fine, key=lambda f: goertzel(x, f))


async def read_json_line(reader, what, timeout):
    line = await asyncio.wait_for(reader.readline(), timeout)
    if not line:
        raise RuntimeError(f"stdin closed while waiting for {what}")
    return json.loads(line)


async def run(args):
    loop = asyncio.get_running_loop()
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty()):
        raise RuntimeError("stdin must be a pipe (the SDP and the end signal come that way)")
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()
    failed = asyncio.Event()
    got_track = asyncio.get_running_loop().create_future()
    want = int(args.seconds * RATE)
    skip = int(SKIP_SECONDS * RATE)
    collected = array.array("h")
    frames = 0
    done = asyncio.Event()

    @pc.on("connectionstatechange")
    def on_state():
        log(f"connection state {pc.connectionState}")
        if pc.connectionState == "connected":
            connected.set()
        elif pc.connectionState in ("failed", "closed"):
            failed.set()

    @pc.on("track")
    def on_track(track):
        if track.kind == "audio" and not got_track.done():
            got_track.set_result(track)

    async def collect(track):
        nonlocal frames
        seen = 0
        while len(collected) < want:
            frame = await track.recv()
            pcm = first_channel(frame)
            frames += 1
            if frame.sample_rate != RATE:
                raise RuntimeError(f"decoded at {frame.sample_rate} Hz")
            if seen + len(pcm) > skip:
                collected.extend(pcm[max(0, skip - seen):])
            seen += len(pcm)
        done.set()

    try:
        if args.mode == "offer":
            pc.addTrack(ToneTrack(args.send_hz))
            await pc.setLocalDescription(await pc.createOffer())
            emit({"type": "offer", "sdp": loopback_only(pc.localDescription.sdp)})
            answer = await read_json_line(reader, "the answer", args.timeout)
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=loopback_only(answer["sdp"]), type="answer")
            )
        else:
            offer = await read_json_line(reader, "the offer", args.timeout)
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=loopback_only(offer["sdp"]), type="offer")
            )
            pc.addTrack(ToneTrack(args.send_hz))
            await pc.setLocalDescription(await pc.createAnswer())
            emit({"type": "answer", "sdp": loopback_only(pc.localDescription.sdp)})

        waiter = asyncio.ensure_future(connected.wait())
        failer = asyncio.ensure_future(failed.wait())
        await asyncio.wait([waiter, failer], timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        failer.cancel()
        if not connected.is_set():
            raise RuntimeError(f"not connected (state {pc.connectionState})")
        t0 = time.monotonic()
        track = await asyncio.wait_for(got_track, args.timeout)
        await asyncio.wait_for(collect(track), args.seconds + args.timeout)
        log(f"collected {len(collected)} samples in {time.monotonic() - t0:.2f} s")

        heard = dominant_numpy(collected) if np is not None else dominant_python(collected)
        inbound = [s for s in (await pc.getStats()).values() if s.type == "inbound-rtp"]
        emit(
            {
                "heard_hz": round(heard, 2),
                "frames": frames,
                "samples": len(collected),
                "analysis": "numpy-fft" if np is not None else "python-goertzel",
                "packets_received": sum(s.packetsReceived for s in inbound),
                "packets_lost": sum(s.packetsLost for s in inbound),
                "jitter": max((s.jitter for s in inbound), default=0),
            }
        )
        # Keep our tone going until the other side is done listening (it closes stdin).
        try:
            await asyncio.wait_for(reader.read(), args.timeout)
        except asyncio.TimeoutError:
            log("stdin not closed in time; stopping anyway")
    finally:
        await pc.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["offer", "answer"])
    p.add_argument("--send-hz", type=float, default=440.0)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=15.0)
    args = p.parse_args()
    # Backstop: SIGALRM's default action ends the process even if the loop is wedged.
    signal.alarm(int(args.timeout * 2 + args.seconds + 5))
    try:
        asyncio.run(run(args))
    except asyncio.TimeoutError:
        log(f"timed out (limit {args.timeout} s per step)")
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - any failure must be a clear non-zero exit
        log(f"failed: {type(e).__name__}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
