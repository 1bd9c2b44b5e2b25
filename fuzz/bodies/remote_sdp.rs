//! Remote SDP handling: `check_remote_sdp` and the codec negotiation in `media::negotiate`.
//!
//! The input (lossy UTF-8) is used whole for the one-argument functions and split in two for the
//! two-argument ones: at the first NUL byte if there is one (so seeds can be `offer\0answer`),
//! otherwise at the middle.

use wacall::media::check_remote_sdp;
use wacall::media::negotiate::{
    AudioSection, Choice, audit_answer, for_stack, impose_codecs, our_offer_choice, parse_fmtp,
    shape_local,
};

fn exercise_choice(c: &Choice) {
    let _ = c.audio_pt();
    let _ = c.dtmf_pt();
    let _ = c.dtmf_clock();
    let _ = c.peer_fmtp();
    let _ = c.payload_types();
    let _ = c.local_audio_fmtp();
    let _ = c.local_dtmf_fmtp();
    let _ = c.ptime_conflict();
}

fn split_halves(text: &str) -> (&str, &str) {
    if let Some(i) = text.find('\0') {
        return (&text[..i], &text[i + 1..]);
    }
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid += 1;
    }
    text.split_at(mid)
}

/// One input; shared by the libFuzzer target and the stable smoke test (`tests/fuzz_smoke.rs`).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;

    if let Ok(remote) = check_remote_sdp(text) {
        let _ = format!("{remote:?}");
    }
    if let Some(section) = AudioSection::read(text) {
        let _ = section.describe();
        if let Ok(c) = Choice::from_section(&section) {
            exercise_choice(&c);
        }
    }
    let _ = parse_fmtp(text);

    let choice = match Choice::from_sdp(text) {
        Ok(c) => {
            exercise_choice(&c);
            c
        }
        Err(e) => {
            let _ = e.to_string();
            our_offer_choice()
        }
    };
    let _ = for_stack(text, &choice);
    let _ = shape_local(text, &choice);

    let (a, b) = split_halves(text);
    let _ = audit_answer(a, b);
    let _ = impose_codecs(a, b);
    if let Ok(c) = Choice::from_answer(b, a) {
        exercise_choice(&c);
    }
    let choice_a = Choice::from_sdp(a).unwrap_or_else(|_| our_offer_choice());
    let stacked = for_stack(b, &choice_a);
    let shaped = shape_local(b, &choice_a);
    let _ = impose_codecs(&stacked, &shaped);
}
