//! RFC 4733 telephone-event parsing (`DtmfPayload::decode`, `DtmfReceiver::on_packet`) and the
//! receive statistics (`RecvStats::on_packet`), fed with packets cut from the input.
//!
//! Each record is 9 header bytes (seq: 2, rtp timestamp: 4, arrival delta ms: 2, payload
//! length: 1) then the payload. Arrival times only move forward, in ms, and are converted to the
//! 48 kHz RTP clock as `media::session` does (`arrival_ms * 48`).

use wacall::media::dtmf::{DtmfPayload, DtmfReceiver, event_code, event_digit};
use wacall::media::rtp_stats::RecvStats;

/// One input; shared by the libFuzzer target and the stable smoke test (`tests/fuzz_smoke.rs`).
pub fn run(data: &[u8]) {
    // Any 4+ byte payload decodes, and re-encodes to the same bytes except the reserved bit.
    if let Some(p) = DtmfPayload::decode(data) {
        let e = p.encode();
        assert_eq!(e[0], data[0]);
        assert_eq!(e[1], data[1] & 0xbf);
        assert_eq!(&e[2..4], &data[2..4]);
        if let Some(d) = event_digit(p.event) {
            assert_eq!(event_code(d), Some(p.event));
        }
    } else {
        assert!(data.len() < 4);
    }

    let mut rx = DtmfReceiver::default();
    let mut stats = RecvStats::default();
    let mut arrival_ms: u64 = 0;
    let mut rest = data;
    while rest.len() >= 9 {
        let seq = u16::from_be_bytes([rest[0], rest[1]]);
        let ts = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
        arrival_ms += u64::from(u16::from_be_bytes([rest[6], rest[7]]));
        let len = usize::from(rest[8]).min(rest.len() - 9);
        let payload = &rest[9..9 + len];
        rest = &rest[9 + len..];

        if let Some(d) = rx.on_packet(ts, payload) {
            assert!(event_code(d).is_some());
        }
        stats.on_packet(seq, ts, (arrival_ms * 48) as i64, payload.len());
    }
    for rate in [8_000, 48_000] {
        let s = stats.summary(rate);
        assert!(s.lost <= s.expected);
    }
}
