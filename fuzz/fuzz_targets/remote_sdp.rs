//! Remote SDP handling: `check_remote_sdp` and the codec negotiation in `media::negotiate`.
//!
//! The input (lossy UTF-8) is used whole for the one-argument functions and split in two for the
//! two-argument ones: at the first NUL byte if there is one (so seeds can be `offer\0answer`),
//! otherwise at the middle.
#![no_main]

#[path = "../bodies/remote_sdp.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
