//! RFC 4733 telephone-event payloads (DTMF), pure.
//!
//! A key press is one *event*: several packets that share one RTP timestamp, a growing duration,
//! and three copies of the final packet with the E bit set (the redundancy RFC 4733 §2.5.1.4
//! recommends because the end packet is the one that matters).

/// Duration of the tone we send for one key, in 8 kHz timestamp units (100 ms).
const TONE_UNITS: u16 = 800;
/// One packet per 20 ms at 8 kHz.
const STEP_UNITS: u16 = 160;

/// Maps a key to its RFC 4733 event code.
pub fn event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + digit as u8 - b'A'),
        'a'..='d' => Some(12 + digit as u8 - b'a'),
        _ => None,
    }
}

/// Maps an RFC 4733 event code back to its key.
pub fn event_digit(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPayload {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl DtmfPayload {
    pub fn encode(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    pub fn decode(buf: &[u8]) -> Option<Self> {
        if buf.len() < 4 {
            return None;
        }
        Some(DtmfPayload {
            event: buf[0],
            end: buf[1] & 0x80 != 0,
            volume: buf[1] & 0x3f,
            duration: u16::from_be_bytes([buf[2], buf[3]]),
        })
    }
}

/// The packets of one key press, in send order; the first carries the RTP marker bit.
pub fn key_press_packets(digit: char) -> Option<Vec<DtmfPayload>> {
    let event = event_code(digit)?;
    let mut out = Vec::new();
    let mut duration = STEP_UNITS;
    while duration < TONE_UNITS {
        out.push(DtmfPayload {
            event,
            end: false,
            volume: 10,
            duration,
        });
        duration += STEP_UNITS;
    }
    let end = DtmfPayload {
        event,
        end: true,
        volume: 10,
        duration: TONE_UNITS,
    };
    out.extend([end; 3]);
    Some(out)
}

/// Turns a stream of received telephone-event packets into key presses, once each.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// RTP timestamp of the last event reported: all packets of one press share it.
    last_reported: Option<u32>,
}

impl DtmfReceiver {
    /// Feeds one packet; returns the key the first time an event (identified by its RTP
    /// timestamp) is seen, so the redundant end packets and duplicates are not reported twice.
    pub fn on_packet(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<char> {
        let p = DtmfPayload::decode(payload)?;
        if self.last_reported == Some(rtp_timestamp) {
            return None;
        }
        let digit = event_digit(p.event)?;
        self.last_reported = Some(rtp_timestamp);
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for d in "0123456789*#ABCD".chars() {
            assert_eq!(event_digit(event_code(d).unwrap()), Some(d));
        }
        assert_eq!(event_code('x'), None);
        assert_eq!(event_digit(16), None);
    }

    #[test]
    fn payload_round_trip_matches_rfc_layout() {
        let p = DtmfPayload {
            event: 5,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(p.encode(), [5, 0x8a, 0x03, 0x20]);
        assert_eq!(DtmfPayload::decode(&p.encode()), Some(p));
        assert_eq!(DtmfPayload::decode(&[1, 2]), None);
    }

    #[test]
    fn a_press_is_reported_once_despite_redundant_end_packets() {
        let packets = key_press_packets('7').unwrap();
        assert!(packets.last().unwrap().end);
        assert_eq!(packets.iter().filter(|p| p.end).count(), 3);
        let mut rx = DtmfReceiver::default();
        let got: Vec<char> = packets
            .iter()
            .filter_map(|p| rx.on_packet(1000, &p.encode()))
            .collect();
        assert_eq!(got, vec!['7']);
        // A second press of the same key has a new timestamp and is reported again.
        assert_eq!(rx.on_packet(2000, &packets[0].encode()), Some('7'));
    }
}
