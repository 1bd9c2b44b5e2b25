#!/usr/bin/env python3
"""Writes the hand-written WhatsApp-shaped SDPs of tests/sdp/ (CRLF line ends).

These are not captured from WhatsApp: they are composed by hand after the shapes a WhatsApp
client/relay offers to a business (ICE-lite, Opus 16 kHz wideband on 111, telephone-event on
126, BUNDLE, rtcp-mux, transport-cc), plus variants that move one thing at a time. Addresses
are documentation addresses (RFC 5737 / RFC 3849): they are only text, nothing connects.
Deterministic: running it twice writes the same bytes.

Usage: whatsapp.py OUTDIR
"""
import os
import sys

UFRAG = "Wa7q"
PWD = "hY3nT0pq8LmZk2VbXc9RsDfG"
FINGERPRINT = ("sha-256 4A:9C:1E:77:02:D5:B3:68:F0:2B:8E:61:C4:19:AD:5F:"
               "E3:70:96:0B:C2:4D:18:AF:35:E9:6C:D1:7B:02:F8:A4")
SSRC = 3735928559
WIDEBAND_FMTP = ("maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;"
                 "sprop-maxcapturerate=16000;useinbandfec=1")
FULLBAND_FMTP = "minptime=10;useinbandfec=1"
CANDIDATES = [
    "a=candidate:1 1 udp 2122260223 192.0.2.10 3480 typ host generation 0",
    "a=candidate:2 1 udp 2122262783 2001:db8::10 3480 typ host generation 0",
]
EXTMAPS = [
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
]


def sdp(*, codecs, mid="audio", candidates=True, ptime=True, setup="actpass",
        session_id="4611731400430051336", ssrc=True):
    """codecs: list of (pt, rtpmap, fmtp or None, transport_cc: bool)."""
    pts = " ".join(str(c[0]) for c in codecs)
    lines = [
        "v=0",
        f"o=- {session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=ice-lite",
        f"a=group:BUNDLE {mid}",
        "a=msid-semantic: WMS",
        f"m=audio 9 UDP/TLS/RTP/SAVPF {pts}",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
    ]
    if candidates:
        lines += CANDIDATES
    lines += [
        f"a=ice-ufrag:{UFRAG}",
        f"a=ice-pwd:{PWD}",
        f"a=fingerprint:{FINGERPRINT}",
        f"a=setup:{setup}",
        f"a=mid:{mid}",
    ]
    lines += EXTMAPS
    lines += ["a=sendrecv", "a=rtcp-mux"]
    for pt, rtpmap, fmtp, tcc in codecs:
        lines.append(f"a=rtpmap:{pt} {rtpmap}")
        if tcc:
            lines.append(f"a=rtcp-fb:{pt} transport-cc")
        if fmtp:
            lines.append(f"a=fmtp:{pt} {fmtp}")
    if ptime:
        lines += ["a=ptime:20", "a=maxptime:20"]
    if ssrc:
        lines.append(f"a=ssrc:{SSRC} cname:wa-7f3c9b2e1d")
    return "".join(line + "\r\n" for line in lines)


def opus(pt=111, fmtp=WIDEBAND_FMTP):
    return (pt, "opus/48000/2", fmtp, True)


TE8K = (126, "telephone-event/8000", None, False)
TE48K = (110, "telephone-event/48000", None, False)
PCMU = (0, "PCMU/8000", None, False)
PCMA = (8, "PCMA/8000", None, False)
G722 = (9, "G722/8000", None, False)
ILBC = (102, "ILBC/8000", None, False)

FILES = {
    # The baseline: what a WhatsApp client offers a business (16 kHz wideband Opus, 20 ms).
    "whatsapp-wideband-offer.sdp": sdp(codecs=[opus(), TE8K]),
    # Fullband Opus, no bitrate/playback caps, no ptime lines.
    "whatsapp-fullband-offer.sdp": sdp(codecs=[opus(fmtp=FULLBAND_FMTP), TE8K], ptime=False),
    # A lite peer may give no candidates at all (we learn its address from its checks).
    "whatsapp-no-candidates-offer.sdp": sdp(codecs=[opus(), TE8K], candidates=False),
    # Numeric mid, as WhatsApp's relays use in answers.
    "whatsapp-mid0-offer.sdp": sdp(codecs=[opus(), TE8K], mid="0"),
    # Opus on a payload type other than 111: nothing may hard-code 111.
    "whatsapp-opus109-offer.sdp": sdp(codecs=[opus(pt=109), TE8K]),
    # telephone-event at both the Opus clock (110) and the G.711 clock (126).
    "whatsapp-dtmf-both-rates-offer.sdp": sdp(codecs=[opus(), TE48K, TE8K]),
    # G.711 offered beside Opus: Opus should still be chosen.
    "whatsapp-g711-beside-opus-offer.sdp": sdp(codecs=[opus(), PCMU, PCMA, TE8K]),
    # No Opus: G.711 mu-law first, then A-law.
    "whatsapp-g711-only-offer.sdp": sdp(codecs=[PCMU, PCMA, TE8K]),
    # Only A-law.
    "whatsapp-pcma-only-offer.sdp": sdp(codecs=[PCMA, TE8K]),
    # Nothing wacall speaks (G.722, iLBC): must be refused cleanly.
    "whatsapp-nothing-we-speak-offer.sdp": sdp(codecs=[G722, ILBC]),
    # WhatsApp's answer to a business-initiated offer: ICE-lite, active DTLS role, mid 0,
    # the business's codec list echoed back, no candidates.
    "meta-sample-answer.sdp": sdp(
        codecs=[opus(), G722, PCMU, PCMA, TE48K, TE8K],
        mid="0", candidates=False, setup="active", session_id="8147935632310425521"),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/sdp"
    os.makedirs(out, exist_ok=True)
    for name, text in FILES.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(text.encode("ascii"))
        print(f"wrote {os.path.join(out, name)}")


if __name__ == "__main__":
    main()
