//! The receive jitter buffer: pushes and pops derived from the input, decoded with G.711
//! (mu-law or A-law), or with Opus for one input in sixteen.
//!
//! First byte: decoder choice. Then operations: an op byte whose low 2 bits are 0 is a pop;
//! otherwise a push of (seq delta: 2 bytes, timestamp delta: 2 bytes, arrival delta: 1 byte,
//! payload length: 1 byte, payload). At most 64 operations per input (kept small for speed).

use bytes::Bytes;
use wacall::audio::codec::{FrameDecoder, OpusDecoder};
use wacall::audio::g711::{G711Decoder, Law};
use wacall::audio::jitter::JitterBuffer;

const MAX_OPS: usize = 64;

fn run_with<D: FrameDecoder + ?Sized>(data: &[u8], decoder: &mut D) {
    let mut jb = JitterBuffer::new();
    let mut seq: u16 = 0;
    let mut ts: u32 = 0;
    let mut arrival_ms: u64 = 0;
    let mut rest = data;
    let mut ops = 0;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        ops += 1;
        if ops > MAX_OPS {
            break;
        }
        if op & 3 == 0 {
            let _ = jb.pop_frame(decoder);
            continue;
        }
        if rest.len() < 6 {
            break;
        }
        seq = seq.wrapping_add(u16::from_be_bytes([rest[0], rest[1]]));
        // Mostly 20 ms steps of 960, with the input's bytes as deviation.
        ts = ts
            .wrapping_add(960)
            .wrapping_add(u32::from(u16::from_be_bytes([rest[2], rest[3]])));
        arrival_ms += u64::from(rest[4]);
        let len = usize::from(rest[5]).min(rest.len() - 6);
        let payload = Bytes::copy_from_slice(&rest[6..6 + len]);
        rest = &rest[6 + len..];
        jb.push(seq, ts, payload, arrival_ms);
    }
    let s = jb.stats();
    assert!((1..=8).contains(&s.depth_frames), "{s:?}");
}

/// One input; shared by the libFuzzer target and the stable smoke test (`tests/fuzz_smoke.rs`).
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 16 {
        0 => {
            let mut d = OpusDecoder::new().expect("opus decoder");
            run_with(rest, &mut d);
        }
        m => {
            let law = if m % 2 == 0 { Law::A } else { Law::Mu };
            run_with(rest, &mut G711Decoder::new(law));
        }
    }
}
