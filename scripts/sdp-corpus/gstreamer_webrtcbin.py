#!/usr/bin/python3
"""Records GStreamer webrtcbin's audio-only offer (Debian's GStreamer, system python3 + gi).

run.sh starts this inside a network namespace that has only loopback, so the ICE agent
(libnice) can only find 127.0.0.1 / ::1 and no packet can leave the machine. No STUN/TURN.

Usage: gstreamer_webrtcbin.py OUTFILE
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstWebRTC, Nice  # noqa: E402

# libnice skips loopback interfaces when it discovers addresses by itself; give it the
# loopback addresses explicitly (it then uses only these).
LOCAL_ADDRESSES = ["127.0.0.1", "::1"]

PIPELINE = (
    "audiotestsrc is-live=true ! audioconvert ! audioresample ! opusenc ! "
    "rtpopuspay pt=96 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=96 ! "
    "webrtcbin name=w bundle-policy=max-bundle"
)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/sdp/gstreamer-webrtcbin-offer.sdp"
    Gst.init(None)
    pipe = Gst.parse_launch(PIPELINE)
    w = pipe.get_by_name("w")
    # Keep the ICE object referenced for the whole run: webrtcbin 1.22 hands it out with a
    # floating reference, which PyGObject sinks; dropping it early frees webrtcbin's agent.
    ice = w.get_property("ice-agent")
    agent = ice.get_property("agent")
    for ip in LOCAL_ADDRESSES:
        addr = Nice.Address.new()
        if not addr.set_from_string(ip) or not agent.add_local_address(addr):
            print("gstreamer: could not add local address %s" % ip, file=sys.stderr)
    loop = GLib.MainLoop()
    state = {"sdp": None, "why": None}

    def finish(why):
        if state["sdp"] is None:
            state["sdp"] = w.get_property("local-description").sdp.as_text()
            state["why"] = why
            loop.quit()
        return False

    def on_gathering(obj, _pspec):
        if w.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(finish, "ICE gathering complete")

    def on_local_set(_promise, _data):
        GLib.timeout_add(3000, finish, "timeout 3 s, gathering state %s"
                         % w.get_property("ice-gathering-state").value_nick)

    def on_offer(promise, _data):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        p = Gst.Promise.new_with_change_func(on_local_set, None)
        w.emit("set-local-description", offer, p)

    def on_negotiation_needed(_element):
        p = Gst.Promise.new_with_change_func(on_offer, None)
        w.emit("create-offer", None, p)

    def on_error(_bus, msg):
        err, dbg = msg.parse_error()
        print("gstreamer: error: %s (%s)" % (err, dbg), file=sys.stderr)
        loop.quit()

    w.connect("on-negotiation-needed", on_negotiation_needed)
    w.connect("notify::ice-gathering-state", on_gathering)
    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message::error", on_error)
    pipe.set_state(Gst.State.PLAYING)
    GLib.timeout_add(20000, loop.quit)  # hard stop
    loop.run()
    pipe.set_state(Gst.State.NULL)
    if state["sdp"] is None:
        print("gstreamer: no offer produced", file=sys.stderr)
        return 1
    with open(out, "wb") as f:
        f.write(state["sdp"].encode("utf-8"))
    print("gstreamer: %s; %s" % (state["why"], Gst.version_string()))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (see the note on `ice` above)


if __name__ == "__main__":
    sys.exit(main())
