"""Records aiortc's audio-only offer, and its answer to the hand-written WhatsApp offer.

Runs with the project's venv (/opt/wacall-venv/bin/python). aiortc gathers its candidates
during setLocalDescription. No STUN/TURN servers. run.sh starts this inside a network
namespace that has only loopback, so no packet can leave the machine.

Usage: python aiortc_sdp.py OUTDIR
"""
import asyncio
import os
import sys

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

# aioice leaves loopback addresses out when it lists host addresses (and in the loopback-only
# namespace that leaves nothing); let it use them, so the SDP carries host candidates.
_host_addresses = aioice.ice.get_host_addresses


def _with_loopback(use_ipv4, use_ipv6):
    found = _host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if found:
        return found
    return ([a for a, on in (("127.0.0.1", use_ipv4), ("::1", use_ipv6)) if on])


aioice.ice.get_host_addresses = _with_loopback


async def offer():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def answer(remote_sdp):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=remote_sdp, type="offer"))
    for t in pc.getTransceivers():
        t.direction = "sendrecv"
    await pc.setLocalDescription(await pc.createAnswer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def write(path, text):
    with open(path, "wb") as f:
        f.write(text.encode("utf-8"))
    print(f"aiortc: wrote {path}")


async def quiet(coro):
    # Closing right after setLocalDescription(answer) makes aiortc's background connect task
    # end with "RTCIceTransport is closed"; that is expected here, not worth a traceback.
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: None)
    return await coro


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/sdp"
    write(os.path.join(out, "aiortc-offer.sdp"), asyncio.run(quiet(offer())))
    wa = os.path.join(out, "whatsapp-wideband-offer.sdp")
    with open(wa, "rb") as f:
        remote = f.read().decode("utf-8")
    try:
        write(os.path.join(out, "aiortc-answer.sdp"), asyncio.run(quiet(answer(remote))))
    except Exception as e:  # report, keep the offer
        print(f"aiortc: answer to {os.path.basename(wa)} failed: {e!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
