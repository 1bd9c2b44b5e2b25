//! RFC 4733 telephone-event parsing (`DtmfPayload::decode`, `DtmfReceiver::on_packet`) and the
//! receive statistics (`RecvStats::on_packet`), fed with packets cut from the input.
//!
//! Each record is 9 header bytes (seq: 2, rtp timestamp: 4, arrival delta ms: 2, payload
//! length: 1) then the payload. Arrival times only move forward, in ms, and are converted to the
//! 48 kHz RTP clock as `media::session` does (`arrival_ms * 48`).
#![no_main]

#[path = "../bodies/rtp_dtmf.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
