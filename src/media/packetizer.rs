//! Outgoing RTP headers for one audio stream, pure: sequence numbers and timestamps for 20 ms
//! audio packets (Opus or G.711), with DTMF events slotted in without breaking either clock.

use std::collections::VecDeque;

use super::dtmf::{DtmfPayload, key_press_packets};

/// RTP timestamp advance per 20 ms Opus frame (48 kHz clock).
pub const OPUS_TS_STEP: u32 = 960;

/// What to put on the wire for one outgoing packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutPacket {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: bytes::Bytes,
}

#[derive(Debug)]
pub struct Packetizer {
    /// Timestamp advance per 20 ms packet of the audio codec (960 for Opus, 160 for G.711).
    ts_step: u32,
    audio_pt: u8,
    dtmf_pt: Option<u8>,
    /// telephone-event clock over 8 kHz (6 for the 48 kHz variant): durations scale with it.
    dtmf_scale: u16,
    seq: u16,
    ts: u32,
    /// Key presses waiting for a 20 ms slot; each slot carries one DTMF packet instead of audio.
    dtmf_queue: VecDeque<(DtmfPayload, bool)>,
    dtmf_event_ts: u32,
}

impl Packetizer {
    /// `dtmf`: telephone-event's payload type and clock rate, when negotiated.
    pub fn new(ts_step: u32, audio_pt: u8, dtmf: Option<(u8, u32)>) -> Self {
        Packetizer {
            ts_step,
            audio_pt,
            dtmf_pt: dtmf.map(|(pt, _)| pt),
            dtmf_scale: dtmf.map_or(1, |(_, clock)| (clock / 8_000).clamp(1, 6) as u16),
            seq: rand::random(),
            ts: rand::random(),
            dtmf_queue: VecDeque::new(),
            dtmf_event_ts: 0,
        }
    }

    /// Queues a key press. Fails when the peer did not negotiate telephone-event or the key is
    /// not a DTMF key.
    pub fn queue_dtmf(&mut self, digit: char) -> Result<(), &'static str> {
        if self.dtmf_pt.is_none() {
            return Err("the peer did not negotiate telephone-event");
        }
        let packets = key_press_packets(digit).ok_or("not a DTMF key (0-9 * # A-D)")?;
        for (i, mut p) in packets.into_iter().enumerate() {
            p.duration = p.duration.saturating_mul(self.dtmf_scale);
            self.dtmf_queue.push_back((p, i == 0));
        }
        Ok(())
    }

    /// True while a key press occupies the outgoing slots (audio is paused meanwhile).
    pub fn dtmf_pending(&self) -> bool {
        !self.dtmf_queue.is_empty()
    }

    /// The packet for the next 20 ms slot: a DTMF packet if one is queued, else `opus` audio.
    pub fn next(&mut self, opus: bytes::Bytes) -> OutPacket {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if let (Some((dtmf, first)), Some(pt)) = (self.dtmf_queue.pop_front(), self.dtmf_pt) {
            if first {
                self.dtmf_event_ts = self.ts;
            }
            // Media time keeps running under the event so audio resumes on the right clock.
            self.ts = self.ts.wrapping_add(self.ts_step);
            return OutPacket {
                payload_type: pt,
                sequence: seq,
                timestamp: self.dtmf_event_ts,
                marker: first,
                payload: bytes::Bytes::copy_from_slice(&dtmf.encode()),
            };
        }
        let ts = self.ts;
        self.ts = self.ts.wrapping_add(self.ts_step);
        OutPacket {
            payload_type: self.audio_pt,
            sequence: seq,
            timestamp: ts,
            marker: false,
            payload: opus,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_packets_advance_sequence_and_clock() {
        let mut p = Packetizer::new(OPUS_TS_STEP, 111, Some((126, 8_000)));
        let a = p.next(bytes::Bytes::from_static(b"x"));
        let b = p.next(bytes::Bytes::from_static(b"y"));
        assert_eq!(b.sequence, a.sequence.wrapping_add(1));
        assert_eq!(b.timestamp, a.timestamp.wrapping_add(960));
        assert_eq!((a.payload_type, b.payload_type), (111, 111));
    }

    #[test]
    fn dtmf_takes_slots_with_one_timestamp_then_audio_resumes() {
        let mut p = Packetizer::new(OPUS_TS_STEP, 111, Some((126, 8_000)));
        let first = p.next(bytes::Bytes::new());
        p.queue_dtmf('5').unwrap();
        let mut dtmf = Vec::new();
        while p.dtmf_pending() {
            dtmf.push(p.next(bytes::Bytes::new()));
        }
        assert!(dtmf.iter().all(|d| d.payload_type == 126));
        assert!(dtmf[0].marker && !dtmf[1].marker);
        assert!(dtmf.iter().all(|d| d.timestamp == dtmf[0].timestamp));
        let after = p.next(bytes::Bytes::new());
        assert_eq!(after.payload_type, 111);
        let slots = dtmf.len() as u32 + 1;
        assert_eq!(after.timestamp, first.timestamp.wrapping_add(960 * slots));
    }

    #[test]
    fn g711_advances_its_8k_clock_and_48k_dtmf_scales_durations() {
        let mut p = Packetizer::new(160, 0, Some((110, 48_000)));
        let a = p.next(bytes::Bytes::new());
        let b = p.next(bytes::Bytes::new());
        assert_eq!(b.timestamp, a.timestamp.wrapping_add(160));
        assert_eq!(a.payload_type, 0);
        p.queue_dtmf('1').unwrap();
        let first = p.next(bytes::Bytes::new());
        let d = super::super::dtmf::DtmfPayload::decode(&first.payload).unwrap();
        assert_eq!((first.payload_type, d.duration), (110, 160 * 6));
    }

    #[test]
    fn dtmf_without_negotiation_is_refused() {
        let mut p = Packetizer::new(OPUS_TS_STEP, 111, None);
        assert!(p.queue_dtmf('1').is_err());
        let mut p = Packetizer::new(OPUS_TS_STEP, 111, Some((126, 8_000)));
        assert!(p.queue_dtmf('x').is_err());
    }
}
