//! Opens the real softphone window against the sandbox, plays a short scripted shift (a caller
//! is answered and hung up, a customer is called back, the next caller is answered) and saves a
//! PNG of the window mid-call. Needs a display; on a headless machine:
//!
//! ```sh
//! xvfb-run -a -s "-screen 0 1280x1024x24" cargo run --example phone_screenshot -- docs/phone.png
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wacall::phone::app::{PhoneOptions, run};
use wacall::phone::core::{Command, PhoneHandle, PhoneState};

async fn wait_for(phone: &PhoneHandle, what: &str, f: impl Fn(&PhoneState) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f(&phone.view().state) {
        if Instant::now() > deadline {
            eprintln!("phone_screenshot: gave up waiting for {what}");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let path = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "docs/phone.png".into()),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error")
        .try_init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ready = Arc::new(AtomicBool::new(false));
    let scene = ready.clone();
    let record_dir = std::env::temp_dir().join("wacall-phone-screenshot");
    let opts = PhoneOptions {
        sandbox: true,
        // Real devices only when asked (the virtual ones of .ci/audio-setup.sh, or a desk).
        no_devices: std::env::var_os("WACALL_PHONE_DEVICES").is_none(),
        record_dir: Some(record_dir),
        screenshot: Some((path, Duration::from_secs(2))),
        screenshot_ready: Some(ready),
        first_call: Duration::from_millis(800),
        call_every: Duration::from_secs(2),
        on_start: Some(Box::new(move |phone: PhoneHandle| {
            tokio::spawn(async move {
                let ringing = |s: &PhoneState| matches!(s, PhoneState::Ringing { .. });
                let in_call = |s: &PhoneState| matches!(s, PhoneState::InCall { .. });
                let idle = |s: &PhoneState| matches!(s, PhoneState::Idle);
                // A first caller: answered, a short talk, hung up.
                wait_for(&phone, "the first caller", ringing).await;
                tokio::time::sleep(Duration::from_millis(700)).await;
                phone.send(Command::Answer);
                wait_for(&phone, "the first call", in_call).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                phone.send(Command::Hangup);
                wait_for(&phone, "idle", idle).await;
                // Calling a customer back.
                phone.send(Command::Dial("+52 1 55 1234 5699".into()));
                wait_for(&phone, "the outbound call", in_call).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                phone.send(Command::Dtmf('1'));
                tokio::time::sleep(Duration::from_secs(1)).await;
                phone.send(Command::Hangup);
                wait_for(&phone, "idle", idle).await;
                // The next caller, answered: the screenshot shows this call.
                wait_for(&phone, "the next caller", ringing).await;
                tokio::time::sleep(Duration::from_millis(700)).await;
                phone.send(Command::Answer);
                wait_for(&phone, "the next call", in_call).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                phone.send(Command::Dtmf('2'));
                // Let the timer, meters and quality settle.
                tokio::time::sleep(Duration::from_millis(4700)).await;
                scene.store(true, Ordering::SeqCst);
            });
        })),
        ..PhoneOptions::default()
    };
    if let Err(e) = run(opts, rt.handle()) {
        eprintln!("phone_screenshot: {e:#}");
        std::process::exit(1);
    }
}
