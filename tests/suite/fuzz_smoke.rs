//! The fuzz targets' own code (`fuzz/bodies/`), run on stable inside `cargo test`: every seed,
//! then random mutations of the seeds for a short, bounded time per target. This is the
//! regression guard that runs everywhere (CI included); the coverage-guided runs to millions of
//! executions are `cargo +nightly fuzz` (`fuzz/run-short.sh`, `docs/fuzzing.md`), which need a
//! separate sanitizer build of the whole tree (about 14 minutes on two cores).
//!
//! A failing input is written to `target/fuzz-smoke/<target>-crash.bin` and can be replayed
//! with `cargo +nightly fuzz run <target> <file>`. `WACALL_FUZZ_SMOKE_SECS` sets the time per
//! target (default 2), `WACALL_FUZZ_SMOKE_SEED` the mutation seed (default fixed, so a run is
//! repeatable up to the time cap).

#![allow(dead_code)]

#[path = "../../fuzz/bodies/config.rs"]
mod config;
#[path = "../../fuzz/bodies/hub_message.rs"]
mod hub_message;
#[path = "../../fuzz/bodies/jitter_buffer.rs"]
mod jitter_buffer;
#[path = "../../fuzz/bodies/remote_sdp.rs"]
mod remote_sdp;
#[path = "../../fuzz/bodies/rtp_dtmf.rs"]
mod rtp_dtmf;
#[path = "../../fuzz/bodies/settings.rs"]
mod settings;
#[path = "../../fuzz/bodies/webhook_parse.rs"]
mod webhook_parse;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64*: small, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that tend to matter to these parsers: delimiters, digits, signs, limits.
const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\0",
    b":",
    b"=",
    b" ",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"-1",
    b"0",
    b"4294967295",
    b"18446744073709551616",
    b"65535",
    b"a=rtpmap:",
    b"a=fmtp:",
    b"m=audio ",
    b"opus/48000/2",
    b"telephone-event/8000",
    b"\xff\xff",
    b"\x80",
    b"null",
    b"true",
    b"1e999",
];

/// One mutation of `input`, sometimes spliced with `other` (libFuzzer's usual moves).
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let word = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(i..i, word.iter().copied());
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                v.drain(i..i + n);
            }
            4 if len > 0 => {
                // Duplicate a chunk (repeated lines, nested objects).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            5 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => v.truncate(rng.below(len)),
            _ => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v.truncate(64 * 1024);
    v
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seeds for {target} at {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn keep_crash(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-smoke");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-crash.bin"));
    let _ = std::fs::write(&path, input);
    path
}

fn smoke(target: &str, run: fn(&[u8])) {
    smoke_as(target, target, run)
}

/// `label` names the crash file; `target` picks the seeds.
fn smoke_as(label: &str, target: &str, run: fn(&[u8])) {
    let secs: f64 = std::env::var("WACALL_FUZZ_SMOKE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seed: u64 = std::env::var("WACALL_FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let seeds = seeds(target);
    let try_one = |input: &[u8]| {
        if let Err(panic) = std::panic::catch_unwind(|| run(input)) {
            let path = keep_crash(label, input);
            eprintln!(
                "{label}: crash on a {}-byte input, kept at {}",
                input.len(),
                path.display()
            );
            std::panic::resume_unwind(panic);
        }
    };
    for s in &seeds {
        try_one(s);
    }
    let mut rng = Rng(seed | 1);
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    // Each round starts from a seed or from a recent mutant, so mutations can stack.
    let mut pool: Vec<Vec<u8>> = seeds.clone();
    let mut runs = 0u64;
    while start.elapsed() < budget {
        let a = &pool[rng.below(pool.len())];
        let b = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, a, b);
        try_one(&input);
        runs += 1;
        if pool.len() < 4 * seeds.len() + 64 {
            pool.push(input);
        } else {
            let i = seeds.len() + rng.below(pool.len() - seeds.len());
            pool[i] = input;
        }
    }
    eprintln!(
        "{target}: {} seeds and {runs} mutants in {:.1}s without a panic",
        seeds.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(runs > 0, "{target}: no mutant ran in {secs}s");
}

#[test]
fn webhook_parse_survives_mutants() {
    smoke("webhook_parse", webhook_parse::run);
}

#[test]
fn remote_sdp_survives_mutants() {
    smoke("remote_sdp", remote_sdp::run);
}

#[test]
fn hub_message_survives_mutants() {
    smoke("hub_message", hub_message::run);
}

#[test]
fn rtp_dtmf_survives_mutants() {
    smoke("rtp_dtmf", rtp_dtmf::run);
}

#[test]
fn jitter_buffer_survives_mutants() {
    smoke("jitter_buffer", jitter_buffer::run);
}

#[test]
fn settings_survives_mutants() {
    smoke("settings", settings::run);
}

#[test]
fn config_survives_mutants() {
    smoke("config", config::run);
}

/// The smoke test must be able to fail: a body that panics on any input that is not UTF-8
/// (every seed is) passes the seeds and is caught on a mutant, its input kept.
#[test]
fn a_panicking_target_is_caught() {
    fn fragile(data: &[u8]) {
        if std::str::from_utf8(data).is_err() {
            panic!("boom");
        }
    }
    let crash = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-smoke/fragile-crash.bin");
    let _ = std::fs::remove_file(&crash);
    let caught = std::panic::catch_unwind(|| smoke_as("fragile", "hub_message", fragile));
    assert!(caught.is_err(), "a crash went unnoticed");
    let kept = std::fs::read(&crash).expect("the crashing input was not kept");
    assert!(std::str::from_utf8(&kept).is_err());
}
