//! Meta's calling error codes in words an operator can act on.
//!
//! The codes and their meanings are Meta's troubleshooting page (`../shared/meta-cloud-api.md`
//! §7). A BSP relays Meta's error object, so the same table serves both providers. The
//! sentences say what happened and what to do; the code and Meta's own message are printed
//! beside them, never the code alone.

/// What `code` means and what to do about it, when it is one of Meta's calling codes.
pub fn explain(code: i64) -> Option<&'static str> {
    Some(match code {
        100 => {
            "a parameter of the request was refused (for a call action, often the SDP wacall sent)"
        }
        613 => "the permission check was rate limited: wait a moment and try again",
        131009 => "calling is not available in the business number's country",
        131026 => {
            "the message could not be delivered: the user's WhatsApp is too old or the number is not on WhatsApp"
        }
        131030 => "a test number may only reach the recipients listed for it in WhatsApp Manager",
        131044 => "the WhatsApp Business Account has no valid payment method",
        131055 => {
            "the number takes calls over SIP, which turns off the calling API: switch SIP off in the number's settings"
        }
        138000 => {
            "calling is switched off for this number: turn it on in its call settings (wacall settings set)"
        }
        138001 => "the user cannot take calls (their WhatsApp does not support calling)",
        138002 => "the number already has 1000 calls in progress: wait for some to end",
        138003 => "a call with this user is already in progress",
        138004 => "WhatsApp could not set up the call (a connection error): try again",
        138005 => "too many calls are being placed: slow down and try again in a little while",
        138006 => {
            "the user has not given this business permission to call them: send a call-permission request first (wacall permission request NUMBER)"
        }
        138007 => "the SDP answer was not applied in time: the call was not set up",
        138009 => {
            "too many call-permission requests to this user: 1 a day and 2 a week are allowed"
        }
        138012 => {
            "this user has had 100 connected calls from the business in 24 hours: wait for the limit to reset"
        }
        138013 => "business-initiated calling is not available for this number",
        138014 => "business-initiated calling is paused because of low call quality",
        138015 => "the number's messaging limit is under 2000 a day, which calling needs",
        138017 => "the user already gave permanent permission: just call",
        138018 => {
            "the app is not subscribed to the calls webhook field (and SIP is off): subscribe it in the app's webhook settings"
        }
        138019 => "the call's media could not be set up",
        138020 => "the media relay failed during the call",
        138021 => "no audio was received from the business during the call",
        138022 => "no audio was sent to the business during the call",
        138023 => "the call was accepted but no audio flowed",
        _ => return None,
    })
}

/// Every code [`explain`] knows, in order (the closing notes and the docs list them).
pub const KNOWN: &[i64] = &[
    100, 613, 131009, 131026, 131030, 131044, 131055, 138000, 138001, 138002, 138003, 138004,
    138005, 138006, 138007, 138009, 138012, 138013, 138014, 138015, 138017, 138018, 138019, 138020,
    138021, 138022, 138023,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_note_has_a_sentence() {
        for code in KNOWN {
            let s = explain(*code).unwrap_or_else(|| panic!("{code} has no sentence"));
            assert!(
                s.len() > 20 && !s.contains(&code.to_string()),
                "{code}: {s}"
            );
        }
        assert_eq!(explain(138008), None, "undocumented codes are not guessed");
    }
}
