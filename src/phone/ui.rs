//! What the agent sees: the phone's [`PhoneView`] drawn with egui, and the agent's clicks and
//! keys turned into [`Command`]s. Nothing here talks to the network or the devices.
//!
//! Layout, top to bottom: a status bar that always shows the connection and availability; the
//! main panel (sign-in, connecting, ringing, in call, dialing, or the dialer); recent calls.
//! Shortcuts: Enter answers, Esc declines a ringing call; Ctrl+M mutes, Ctrl+H hangs up.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use egui::{Align, Color32, Key, Layout, Modifiers, RichText, Ui};

use super::core::{
    Command, DialProgress, Grade, PermissionStep, PhoneHandle, PhoneState, PhoneView,
};
use crate::call_record::{CallRecord, Direction};

const GREEN: Color32 = Color32::from_rgb(0x1e, 0x8e, 0x3e);
const RED: Color32 = Color32::from_rgb(0xc5, 0x22, 0x1f);
const AMBER: Color32 = Color32::from_rgb(0xc7, 0x7c, 0x02);
const MAX_RECENT: usize = 8;

/// Device names to offer in the pickers, filled in the background (listing opens devices).
pub type DeviceChoices = Arc<Mutex<Option<(Vec<String>, Vec<String>)>>>;

/// The UI's own state: form fields and things remembered in the config file.
pub struct PhoneUi {
    pub phone: PhoneHandle,
    pub hub_url: String,
    pub token: String,
    pub dial: String,
    pub dial_error: Option<String>,
    /// Most recent first.
    pub recent: Vec<String>,
    pub devices: DeviceChoices,
    /// Something the config file keeps changed (sign-in, recent numbers, devices).
    pub settings_changed: bool,
}

impl PhoneUi {
    pub fn new(phone: PhoneHandle) -> PhoneUi {
        PhoneUi {
            phone,
            hub_url: String::new(),
            token: String::new(),
            dial: String::new(),
            dial_error: None,
            recent: Vec::new(),
            devices: Arc::new(Mutex::new(None)),
            settings_changed: false,
        }
    }

    fn remember(&mut self, number: &str) {
        self.recent.retain(|n| n != number);
        self.recent.insert(0, number.to_string());
        self.recent.truncate(MAX_RECENT);
        self.settings_changed = true;
    }
}

/// Draws the whole phone into `ui` (the window's root) for one frame.
pub fn show(ui: &mut Ui, st: &mut PhoneUi) {
    let v = st.phone.view();
    shortcuts(ui, st, &v);
    egui::Panel::top("status").show(ui, |ui| status_bar(ui, st, &v));
    if v.state.is_online() {
        egui::Panel::bottom("history")
            .resizable(true)
            .default_size(200.0)
            .show(ui, |ui| history(ui, st, &v));
    }
    egui::CentralPanel::default().show(ui, |ui| {
        if v.notice.is_some() || v.permission.is_some() {
            notice(ui, st, &v);
        }
        match &v.state {
            PhoneState::SignedOut => sign_in(ui, st),
            PhoneState::Connecting { attempt, error } => connecting(ui, st, &v, *attempt, error),
            PhoneState::Idle => dialer(ui, st, &v),
            PhoneState::Ringing {
                name,
                number,
                since,
                ..
            } => ringing(ui, st, name.as_deref(), number, *since),
            PhoneState::InCall {
                name,
                number,
                since,
                direction,
                ..
            } => in_call(ui, st, &v, name.as_deref(), number, *since, *direction),
            PhoneState::Dialing {
                number,
                progress,
                since,
                ..
            } => dialing(ui, st, number, progress, *since),
        }
    });
    // Timers and meters move without input.
    if matches!(
        v.state,
        PhoneState::Ringing { .. } | PhoneState::InCall { .. } | PhoneState::Dialing { .. }
    ) {
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_millis(100));
    }
}

fn shortcuts(ui: &mut Ui, st: &mut PhoneUi, v: &PhoneView) {
    match v.state {
        PhoneState::Ringing { .. } => {
            if ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Enter)) {
                st.phone.send(Command::Answer);
            } else if ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape)) {
                st.phone.send(Command::Reject);
            }
        }
        PhoneState::InCall { .. } | PhoneState::Dialing { .. } => {
            if ui.input_mut(|i| i.consume_key(Modifiers::COMMAND, Key::M)) {
                st.phone.send(Command::Mute(!v.muted));
            } else if ui.input_mut(|i| i.consume_key(Modifiers::COMMAND, Key::H)) {
                st.phone.send(Command::Hangup);
            }
        }
        _ => {}
    }
}

fn status_bar(ui: &mut Ui, st: &mut PhoneUi, v: &PhoneView) {
    ui.horizontal(|ui| {
        ui.strong("wacall phone");
        ui.separator();
        let (dot, text) = match &v.state {
            PhoneState::SignedOut => (Color32::GRAY, "Signed out".to_string()),
            PhoneState::Connecting { attempt, .. } if *attempt > 1 => {
                (AMBER, format!("Reconnecting… (attempt {attempt})"))
            }
            PhoneState::Connecting { .. } => (AMBER, "Connecting…".to_string()),
            _ => (GREEN, "Connected".to_string()),
        };
        status_dot(ui, dot);
        ui.label(text);
        if v.state.is_online() {
            ui.separator();
            if ui
                .selectable_label(v.available, "Available")
                .on_hover_text("Calls ring on this phone")
                .clicked()
                && !v.available
            {
                st.phone.send(Command::SetAvailable(true));
            }
            if ui
                .selectable_label(!v.available, "Away")
                .on_hover_text("No new calls ring here")
                .clicked()
                && v.available
            {
                st.phone.send(Command::SetAvailable(false));
            }
        }
        ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
            if !matches!(v.state, PhoneState::SignedOut) && ui.button("Sign out").clicked() {
                st.phone.send(Command::SignOut);
            }
        });
    });
}

/// A small filled circle (status lights); drawn, so it needs no font glyph.
fn status_dot(ui: &mut Ui, color: Color32) {
    let (rect, _) = ui.allocate_exact_size([12.0, 12.0].into(), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 5.0, color);
}

/// The last notice, with what may be done about a dial refused for want of call permission
/// (in the dialer only: "Ask for permission", then "Call now" once the customer allowed calls).
fn notice(ui: &mut Ui, st: &mut PhoneUi, v: &PhoneView) {
    let offer = v
        .permission
        .as_ref()
        .filter(|_| matches!(v.state, PhoneState::Idle));
    if v.notice.is_none() && offer.is_none() {
        return;
    }
    egui::Frame::group(ui.style())
        .fill(ui.visuals().faint_bg_color)
        .show(ui, |ui| {
            // Wrapped: the bridge's permission words are long, and the buttons follow them.
            ui.horizontal_wrapped(|ui| {
                if let Some(text) = &v.notice {
                    ui.label(text);
                }
                match offer.map(|o| (&o.state, o.number.clone())) {
                    Some((PermissionStep::CanAsk, n)) => {
                        if ui
                            .button("Ask for permission")
                            .on_hover_text(format!(
                                "WhatsApp asks +{n} to allow calls from this business"
                            ))
                            .clicked()
                        {
                            st.phone.send(Command::RequestPermission(n));
                        }
                    }
                    Some((PermissionStep::Granted, n)) => {
                        if ui
                            .add(
                                egui::Button::new(RichText::new("Call now").color(Color32::WHITE))
                                    .fill(GREEN),
                            )
                            .on_hover_text(format!("Call +{n}"))
                            .clicked()
                        {
                            st.remember(&n);
                            st.dial_error = None;
                            st.phone.send(Command::Dial(n));
                        }
                    }
                    Some((PermissionStep::Asking { .. } | PermissionStep::Waiting, _)) | None => {}
                }
                if ui.small_button("OK").clicked() {
                    st.phone.send(Command::DismissNotice);
                }
            });
        });
    ui.add_space(6.0);
}

fn labelled_edit(ui: &mut Ui, label: &str, value: &mut String, password: bool) -> egui::Response {
    ui.horizontal(|ui| {
        let l = ui.add_sized([110.0, 20.0], egui::Label::new(label));
        ui.add(
            egui::TextEdit::singleline(value)
                .password(password)
                .desired_width(320.0),
        )
        .labelled_by(l.id)
    })
    .inner
}

fn sign_in(ui: &mut Ui, st: &mut PhoneUi) {
    ui.add_space(12.0);
    ui.heading("Sign in to your call center");
    ui.label("Your supervisor gives you the bridge address and your agent token.");
    ui.add_space(8.0);
    labelled_edit(ui, "Bridge address", &mut st.hub_url, false);
    let token = labelled_edit(ui, "Agent token", &mut st.token, true);
    let enter = token.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
    ui.add_space(6.0);
    let ready = !st.hub_url.trim().is_empty() && !st.token.trim().is_empty();
    let clicked = ui
        .add_enabled(
            ready,
            egui::Button::new("Sign in").min_size([120.0, 28.0].into()),
        )
        .clicked();
    if ready && (clicked || enter) {
        st.settings_changed = true;
        st.phone.send(Command::SignIn {
            url: st.hub_url.trim().to_string(),
            token: st.token.trim().to_string(),
        });
    }
}

fn connecting(ui: &mut Ui, _st: &mut PhoneUi, v: &PhoneView, attempt: u32, error: &Option<String>) {
    ui.add_space(12.0);
    ui.horizontal(|ui| {
        ui.spinner();
        ui.heading(if attempt > 1 {
            "Reconnecting to the bridge…"
        } else {
            "Connecting to the bridge…"
        });
    });
    ui.label(format!("Address: {}", v.hub_url));
    if let Some(e) = error {
        ui.label(RichText::new(format!("Last attempt: {e}")).color(AMBER));
        ui.label("The phone keeps trying on its own.");
    }
}

/// "2 callers waiting, longest 0:35", or nothing when nobody waits.
pub fn queue_line(v: &PhoneView) -> Option<String> {
    if v.queue_waiting == 0 {
        return None;
    }
    let who = if v.queue_waiting == 1 {
        "1 caller waiting".to_string()
    } else {
        format!("{} callers waiting", v.queue_waiting)
    };
    Some(match v.queue_oldest_since {
        Some(t) => {
            let s = t.elapsed().as_secs();
            format!("{who}, longest {}:{:02}", s / 60, s % 60)
        }
        None => who,
    })
}

fn dialer(ui: &mut Ui, st: &mut PhoneUi, v: &PhoneView) {
    ui.add_space(6.0);
    if v.available {
        ui.label(RichText::new("Available: waiting for calls").color(GREEN));
    } else {
        ui.label(RichText::new("Away: calls will not ring here").color(AMBER));
    }
    if let Some(q) = queue_line(v) {
        ui.label(RichText::new(q).color(AMBER));
    }
    ui.add_space(8.0);
    ui.heading("Call a customer");
    let mut go = false;
    ui.horizontal(|ui| {
        let l = ui.label("Number");
        let r = ui
            .add(
                egui::TextEdit::singleline(&mut st.dial)
                    .hint_text("+52 1 55 1234 5678")
                    .desired_width(220.0),
            )
            .labelled_by(l.id);
        if r.changed() {
            st.dial_error = None;
        }
        if r.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
            go = true;
        }
        if ui
            .add(egui::Button::new(RichText::new("Call").color(Color32::WHITE)).fill(GREEN))
            .clicked()
        {
            go = true;
        }
    });
    if let Some(e) = &st.dial_error {
        ui.label(RichText::new(e).color(RED));
    }
    if go {
        match super::core::normalize_number(&st.dial) {
            Ok(n) => {
                st.remember(&n);
                st.phone.send(Command::Dial(n));
                st.dial.clear();
            }
            Err(e) => st.dial_error = Some(e),
        }
    }
    if !st.recent.is_empty() {
        ui.add_space(6.0);
        ui.label("Recent numbers");
        let mut pick = None;
        ui.horizontal_wrapped(|ui| {
            for n in &st.recent {
                if ui.button(format!("+{n}")).clicked() {
                    pick = Some(n.clone());
                }
            }
        });
        if let Some(n) = pick {
            st.dial = n;
            st.dial_error = None;
        }
    }
    ui.add_space(10.0);
    device_pickers(ui, st, v);
}

fn big_button(ui: &mut Ui, text: &str, fill: Color32) -> egui::Response {
    ui.add(
        egui::Button::new(RichText::new(text).size(18.0).color(Color32::WHITE))
            .fill(fill)
            .min_size([150.0, 44.0].into()),
    )
}

fn ringing(ui: &mut Ui, st: &mut PhoneUi, name: Option<&str>, number: &str, since: Instant) {
    ui.add_space(10.0);
    ui.label(RichText::new("Incoming call").size(16.0).color(GREEN));
    ui.label(
        RichText::new(name.unwrap_or("Unknown caller"))
            .size(28.0)
            .strong(),
    );
    ui.label(RichText::new(format!("+{}", number.trim_start_matches('+'))).size(18.0));
    ui.label(format!("Ringing for {} s", since.elapsed().as_secs()));
    ui.add_space(12.0);
    ui.horizontal(|ui| {
        if big_button(ui, "Answer", GREEN)
            .on_hover_text("Enter")
            .clicked()
        {
            st.phone.send(Command::Answer);
        }
        ui.add_space(16.0);
        if big_button(ui, "Decline", RED)
            .on_hover_text("Esc")
            .clicked()
        {
            st.phone.send(Command::Reject);
        }
    });
    ui.label(RichText::new("Enter answers · Esc declines").weak());
}

fn mmss(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{:02}:{:02}", secs / 60, secs % 60)
    }
}

#[allow(clippy::too_many_arguments)]
fn in_call(
    ui: &mut Ui,
    st: &mut PhoneUi,
    v: &PhoneView,
    name: Option<&str>,
    number: &str,
    since: Instant,
    direction: Direction,
) {
    ui.add_space(6.0);
    // The agent on a call sees the queue building up behind it.
    if let Some(q) = queue_line(v) {
        ui.label(RichText::new(q).color(AMBER));
    }
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(match direction {
                Direction::Inbound => "In call (incoming)",
                Direction::Outbound => "In call (outgoing)",
            })
            .color(GREEN),
        );
        if v.recording {
            status_dot(ui, RED);
            ui.label(RichText::new("Recording").color(RED));
        }
        if v.muted {
            ui.label(RichText::new("Muted: the customer can't hear you").color(AMBER));
        }
    });
    ui.label(
        RichText::new(name.unwrap_or("Customer"))
            .size(24.0)
            .strong(),
    );
    ui.label(format!("+{}", number.trim_start_matches('+')));
    ui.label(
        RichText::new(mmss(since.elapsed().as_secs()))
            .size(30.0)
            .monospace(),
    );
    ui.add_space(8.0);
    ui.horizontal(|ui| {
        let mute_text = if v.muted { "Unmute" } else { "Mute" };
        if ui
            .add(
                egui::Button::new(RichText::new(mute_text).size(16.0))
                    .selected(v.muted)
                    .min_size([110.0, 40.0].into()),
            )
            .on_hover_text("Ctrl+M")
            .clicked()
        {
            st.phone.send(Command::Mute(!v.muted));
        }
        ui.add_space(12.0);
        if big_button(ui, "Hang up", RED)
            .on_hover_text("Ctrl+H")
            .clicked()
        {
            st.phone.send(Command::Hangup);
        }
    });
    ui.add_space(8.0);
    ui.columns(2, |cols| {
        keypad(&mut cols[0], st, v);
        meters_and_quality(&mut cols[1], v);
    });
    ui.add_space(8.0);
    device_pickers(ui, st, v);
}

fn keypad(ui: &mut Ui, st: &mut PhoneUi, v: &PhoneView) {
    ui.label("Keypad");
    egui::Grid::new("keypad")
        .spacing([6.0, 6.0])
        .show(ui, |ui| {
            for row in ["123", "456", "789", "*0#"] {
                for d in row.chars() {
                    if ui
                        .add(
                            egui::Button::new(RichText::new(d.to_string()).size(18.0))
                                .min_size([44.0, 36.0].into()),
                        )
                        .clicked()
                    {
                        st.phone.send(Command::Dtmf(d));
                    }
                }
                ui.end_row();
            }
        });
    if !v.dtmf_sent.is_empty() {
        ui.label(format!("Sent: {}", v.dtmf_sent));
    }
    if !v.dtmf_received.is_empty() {
        ui.label(format!("Customer pressed: {}", v.dtmf_received));
    }
}

fn meter(ui: &mut Ui, label: &str, db: f32) {
    // −60 dBFS .. 0 dBFS onto 0..1.
    let frac = ((db + 60.0) / 60.0).clamp(0.0, 1.0);
    let color = if db > -3.0 { RED } else { GREEN };
    ui.label(format!("{label} level: {db:.0} dB"));
    ui.add(
        egui::ProgressBar::new(frac)
            .desired_height(10.0)
            .desired_width(180.0)
            .fill(color),
    );
}

fn meters_and_quality(ui: &mut Ui, v: &PhoneView) {
    meter(
        ui,
        "Speaker",
        v.device_out_db.unwrap_or(v.speaker_db).max(v.speaker_db),
    );
    meter(ui, "Microphone", v.mic_db);
    ui.add_space(6.0);
    match &v.quality {
        Some(q) => {
            let color = match q.grade {
                Grade::Good => GREEN,
                Grade::Fair => AMBER,
                Grade::Poor => RED,
            };
            ui.label(RichText::new(format!("Quality: {}", q.grade.as_str())).color(color));
            ui.label(
                RichText::new(format!(
                    "loss {:.1}% · jitter {:.0} ms · RTT {}",
                    q.loss_pct,
                    q.jitter_ms,
                    q.rtt_ms
                        .map(|r| format!("{r:.0} ms"))
                        .unwrap_or_else(|| "–".into())
                ))
                .weak(),
            );
        }
        None => {
            ui.label("Quality: measuring…");
        }
    }
    if let Some(p) = &v.device_problem {
        ui.label(RichText::new(p).color(AMBER));
    }
}

fn dialing(ui: &mut Ui, st: &mut PhoneUi, number: &str, progress: &DialProgress, since: Instant) {
    ui.add_space(10.0);
    ui.label(RichText::new("Outgoing call").size(16.0));
    ui.label(RichText::new(format!("+{number}")).size(26.0).strong());
    ui.horizontal(|ui| {
        ui.spinner();
        ui.label(
            RichText::new(match progress {
                DialProgress::Starting => "Preparing the call…",
                DialProgress::Calling => "Calling…",
                DialProgress::Ringing => "Ringing…",
            })
            .size(18.0),
        );
    });
    ui.label(format!("{} s", since.elapsed().as_secs()));
    ui.add_space(10.0);
    if big_button(ui, "Cancel call", RED).clicked() {
        st.phone.send(Command::Hangup);
    }
}

/// Starts listing devices in the background, once.
fn ensure_device_list(st: &PhoneUi) {
    let mut g = match st.devices.lock() {
        Ok(g) => g,
        Err(_) => return,
    };
    if g.is_some() {
        return;
    }
    *g = Some((Vec::new(), Vec::new()));
    let slot = st.devices.clone();
    std::thread::spawn(move || {
        if let Ok(list) = crate::audio::device::list_devices() {
            let ins = list.inputs.iter().map(|d| d.name.clone()).collect();
            let outs = list.outputs.iter().map(|d| d.name.clone()).collect();
            if let Ok(mut g) = slot.lock() {
                *g = Some((ins, outs));
            }
        }
    });
}

fn device_pickers(ui: &mut Ui, st: &mut PhoneUi, v: &PhoneView) {
    egui::CollapsingHeader::new("Audio devices")
        .default_open(matches!(v.state, PhoneState::InCall { .. }))
        .show(ui, |ui| {
            ensure_device_list(st);
            let (ins, outs) = st
                .devices
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .unwrap_or_default();
            if let Some(sel) = picker(ui, "Microphone", &v.input, &ins) {
                st.settings_changed = true;
                st.phone.send(Command::SetInput(sel));
            }
            if let Some(sel) = picker(ui, "Speaker", &v.output, &outs) {
                st.settings_changed = true;
                st.phone.send(Command::SetOutput(sel));
            }
        });
}

/// A device combo box; returns the new choice when the agent picked one.
fn picker(
    ui: &mut Ui,
    label: &str,
    current: &Option<String>,
    names: &[String],
) -> Option<Option<String>> {
    let mut chosen = None;
    ui.horizontal(|ui| {
        ui.add_sized([90.0, 20.0], egui::Label::new(label));
        egui::ComboBox::from_id_salt(label)
            .width(260.0)
            .selected_text(current.as_deref().unwrap_or("System default"))
            .show_ui(ui, |ui| {
                if ui
                    .selectable_label(current.is_none(), "System default")
                    .clicked()
                {
                    chosen = Some(None);
                }
                for n in names {
                    if ui
                        .selectable_label(current.as_deref() == Some(n.as_str()), n)
                        .clicked()
                    {
                        chosen = Some(Some(n.clone()));
                    }
                }
            });
    });
    chosen.filter(|c| c != current)
}

fn history(ui: &mut Ui, st: &mut PhoneUi, v: &PhoneView) {
    ui.horizontal(|ui| {
        ui.strong("Recent calls");
        if ui.small_button("Refresh").clicked() {
            st.phone.send(Command::RefreshHistory);
        }
        if let Some(e) = &v.history_error {
            ui.label(RichText::new(e).color(AMBER));
        }
    });
    if v.history.is_empty() {
        ui.label(RichText::new("No calls yet.").weak());
        return;
    }
    egui::ScrollArea::vertical().show(ui, |ui| {
        egui::Grid::new("history")
            .striped(true)
            .spacing([14.0, 4.0])
            .show(ui, |ui| {
                ui.strong("");
                ui.strong("Customer");
                ui.strong("When");
                ui.strong("Duration");
                ui.strong("Outcome");
                ui.end_row();
                for r in &v.history {
                    history_row(ui, st, r);
                    ui.end_row();
                }
            });
    });
}

fn history_row(ui: &mut Ui, st: &mut PhoneUi, r: &CallRecord) {
    ui.label(match r.direction {
        Direction::Inbound => "In",
        Direction::Outbound => "Out",
    });
    let party = match &r.caller_name {
        Some(n) => format!("{n} (+{})", r.customer),
        None => format!("+{}", r.customer),
    };
    if ui
        .link(party)
        .on_hover_text("Put this number in the dialer")
        .clicked()
    {
        st.dial = r.customer.clone();
    }
    ui.label(
        r.offered_at
            .get(11..16)
            .map(|t| format!("{t} UTC"))
            .unwrap_or_default(),
    );
    ui.label(r.duration_s.map(mmss).unwrap_or_else(|| "–".into()));
    ui.label(outcome(r));
}

/// A call's outcome in a word or three.
pub fn outcome(r: &CallRecord) -> String {
    match (r.end_reason.as_deref(), r.accepted_at.is_some()) {
        (None, _) => "In progress".into(),
        (Some("rejected"), _) => "Declined".into(),
        (Some("no_answer"), _) => "No answer".into(),
        (Some(_), false) if r.direction == Direction::Inbound => "Missed".into(),
        (Some(_), false) => "Not answered".into(),
        (Some(reason), true) => format!("Answered, {}", super::core::plain_end_reason(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_line_says_how_many_wait_and_for_how_long() {
        let mut v = PhoneView::default();
        assert_eq!(queue_line(&v), None);
        v.queue_waiting = 2;
        v.queue_oldest_since = Instant::now().checked_sub(std::time::Duration::from_secs(95));
        assert_eq!(
            queue_line(&v).as_deref(),
            Some("2 callers waiting, longest 1:35")
        );
        v.queue_waiting = 1;
        assert!(queue_line(&v).unwrap().starts_with("1 caller waiting"));
    }
}
