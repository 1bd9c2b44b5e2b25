//! The compact form of a two-channel recording: Ogg Opus (RFC 7845), stereo, one talker per
//! channel, that browsers play as is. An hour of call is some 14 MB at 32 kb/s instead of the
//! 691 MB of 48 kHz 16-bit stereo WAV. Written after the call, off the live path.

use std::io::Write;
use std::path::Path;

use opus::{Application, Bitrate, Channels, Encoder};

const RATE: u32 = 48_000;
const FRAME: usize = 960;
/// Pages of about a second: little overhead, and a seek never lands far from a page.
const PACKETS_PER_PAGE: usize = 50;

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compacted {
    pub seconds: f64,
    pub bytes: u64,
}

/// Ogg's CRC-32: polynomial 0x04c11db7, not reflected, starting from 0.
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *e = r;
        }
        t
    });
    data.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize]
    })
}

struct OggWriter<W: Write> {
    out: W,
    serial: u32,
    seq: u32,
    bytes: u64,
}

impl<W: Write> OggWriter<W> {
    /// One page holding `packets` (each laced whole), ending at `granule`.
    fn page(&mut self, packets: &[Vec<u8>], granule: u64, flags: u8) -> std::io::Result<()> {
        let mut lacing = Vec::new();
        for p in packets {
            lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
            lacing.push((p.len() % 255) as u8);
        }
        let mut page =
            Vec::with_capacity(27 + lacing.len() + packets.iter().map(Vec::len).sum::<usize>());
        page.extend_from_slice(b"OggS");
        page.push(0);
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&self.serial.to_le_bytes());
        page.extend_from_slice(&self.seq.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        for p in packets {
            page.extend_from_slice(p);
        }
        let crc = crc32(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&page)?;
        self.seq += 1;
        self.bytes += page.len() as u64;
        Ok(())
    }
}

/// Encodes a two-channel 48 kHz 16-bit WAV (left = customer, right = business) to Ogg Opus at
/// `bitrate` bits a second. The output is written to a temporary name and renamed, so a crash
/// leaves no half file under the final name.
pub fn compact(wav: &Path, out: &Path, bitrate: i32) -> Result<Compacted, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", wav.display());
    let mut reader = hound::WavReader::open(wav).map_err(|e| err(&e))?;
    let spec = reader.spec();
    if spec.channels != 2 || spec.sample_rate != RATE || spec.bits_per_sample != 16 {
        return Err(err(&format!(
            "{} channels at {} Hz, {} bits: only 2 channels at 48 kHz, 16 bits are compacted",
            spec.channels, spec.sample_rate, spec.bits_per_sample
        )));
    }
    let mut enc = Encoder::new(RATE, Channels::Stereo, Application::Voip).map_err(|e| err(&e))?;
    enc.set_bitrate(Bitrate::Bits(bitrate))
        .map_err(|e| err(&e))?;
    let pre_skip = enc.get_lookahead().map_err(|e| err(&e))?.max(0) as u16;
    let tmp = out.with_extension("opus.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| err(&e))?;
    let mut ogg = OggWriter {
        out: std::io::BufWriter::new(file),
        serial: rand::random(),
        seq: 0,
        bytes: 0,
    };
    let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(2);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&RATE.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    ogg.page(&[head], 0, 0x02).map_err(io)?;
    let vendor = b"wacall";
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    ogg.page(&[tags], 0, 0).map_err(io)?;

    let mut samples = reader.samples::<i16>();
    let mut frame = vec![0i16; FRAME * 2];
    let mut packets = Vec::new();
    let mut frames_in: u64 = 0;
    let mut done = false;
    let mut buf = vec![0u8; 4000];
    while !done {
        let mut n = 0;
        for s in frame.iter_mut() {
            match samples.next() {
                // A recording cut short by a crash compacts up to where it stopped.
                Some(Ok(v)) => {
                    *s = v;
                    n += 1;
                }
                _ => {
                    *s = 0;
                    done = true;
                }
            }
        }
        if n == 0 {
            break;
        }
        frames_in += (n / 2) as u64;
        let len = enc.encode(&frame, &mut buf).map_err(|e| err(&e))?;
        packets.push(buf[..len].to_vec());
        if packets.len() >= PACKETS_PER_PAGE || done {
            let granule = u64::from(pre_skip) + frames_in;
            let flags = if done { 0x04 } else { 0 };
            ogg.page(&std::mem::take(&mut packets), granule, flags)
                .map_err(io)?;
        }
    }
    if !packets.is_empty() {
        ogg.page(&packets, u64::from(pre_skip) + frames_in, 0x04)
            .map_err(io)?;
    }
    let bytes = ogg.bytes;
    let file = ogg.out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, out).map_err(io)?;
    Ok(Compacted {
        seconds: frames_in as f64 / f64::from(RATE),
        bytes,
    })
}

/// Wraps 20 ms mono Opus packets as they came off the wire into an Ogg Opus file in memory
/// (the sandbox's stand-in for Meta's own call recording: no re-encoding).
pub fn mono_packets_to_ogg(packets: &[bytes::Bytes]) -> std::io::Result<Vec<u8>> {
    let mut ogg = OggWriter {
        out: Vec::new(),
        serial: rand::random(),
        seq: 0,
        bytes: 0,
    };
    let pre_skip: u16 = 312;
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(1);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&RATE.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    ogg.page(&[head], 0, 0x02)?;
    let vendor = b"wacall-sandbox";
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    ogg.page(&[tags], 0, 0)?;
    let chunks: Vec<&[bytes::Bytes]> = packets.chunks(PACKETS_PER_PAGE).collect();
    let mut frames: u64 = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        frames += (chunk.len() * FRAME) as u64;
        let last = i + 1 == chunks.len();
        let page: Vec<Vec<u8>> = chunk.iter().map(|p| p.to_vec()).collect();
        ogg.page(
            &page,
            u64::from(pre_skip) + frames,
            if last { 0x04 } else { 0 },
        )?;
    }
    Ok(ogg.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::dominant_frequency;

    /// Reads the packets back (own demuxer: page CRCs checked) and decodes both channels.
    fn read_back(path: &Path) -> (Vec<Vec<u8>>, u64) {
        let data = std::fs::read(path).unwrap();
        let (mut at, mut packets, mut granule) = (0, Vec::new(), 0);
        let mut partial = Vec::new();
        while at < data.len() {
            assert_eq!(&data[at..at + 4], b"OggS");
            let segs = data[at + 26] as usize;
            let header_len = 27 + segs;
            let body_len: usize = data[at + 27..at + header_len]
                .iter()
                .map(|&b| b as usize)
                .sum();
            let mut page = data[at..at + header_len + body_len].to_vec();
            let crc = u32::from_le_bytes(page[22..26].try_into().unwrap());
            page[22..26].copy_from_slice(&[0; 4]);
            assert_eq!(crc32(&page), crc, "page CRC");
            granule = u64::from_le_bytes(data[at + 6..at + 14].try_into().unwrap());
            let mut body = at + header_len;
            for &l in &data[at + 27..at + header_len] {
                partial.extend_from_slice(&data[body..body + l as usize]);
                body += l as usize;
                if l < 255 {
                    packets.push(std::mem::take(&mut partial));
                }
            }
            at += header_len + body_len;
        }
        (packets, granule)
    }

    #[test]
    fn a_two_channel_call_compacts_to_ogg_opus_and_keeps_both_talkers() {
        let dir = std::env::temp_dir().join(format!("wacall-ogg-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join("call.wav");
        use crate::audio::peaks::{test_tone, write_test_recording};
        write_test_recording(&wav, RATE * 3, |i| {
            (test_tone(i, 440.0), test_tone(i, 880.0))
        });
        let out = dir.join("call.opus");
        let c = compact(&wav, &out, 32_000).unwrap();
        eprintln!(
            "ogg opus: {} bytes for {:.2} s = {:.1} MB per hour",
            c.bytes,
            c.seconds,
            c.bytes as f64 / c.seconds * 3600.0 / 1e6
        );
        assert!((c.seconds - 3.0).abs() < 0.03, "{c:?}");
        let wav_bytes = std::fs::metadata(&wav).unwrap().len();
        assert!(
            c.bytes * 20 < wav_bytes,
            "{} bytes of Opus for {wav_bytes} of WAV",
            c.bytes
        );
        let (packets, granule) = read_back(&out);
        assert!(packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
        assert!(granule >= u64::from(RATE) * 3);
        let mut dec = opus::Decoder::new(RATE, Channels::Stereo).unwrap();
        let (mut left, mut right) = (Vec::new(), Vec::new());
        let mut pcm = vec![0i16; FRAME * 2];
        for p in &packets[2..] {
            let n = dec.decode(p, &mut pcm, false).unwrap();
            for k in 0..n {
                left.push(pcm[2 * k]);
                right.push(pcm[2 * k + 1]);
            }
        }
        let mid = |v: &[i16]| dominant_frequency(&v[v.len() / 4..v.len() * 3 / 4], RATE);
        assert!((mid(&left) - 440.0).abs() < 5.0, "left {}", mid(&left));
        assert!((mid(&right) - 880.0).abs() < 5.0, "right {}", mid(&right));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
