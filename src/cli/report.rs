//! `wacall report`: one call's report as a single self-contained HTML file (for a ticket): the
//! history row, the timeline, the recording's two-channel waveform and the quality over the
//! call, both drawn as PNG images embedded in the page, so it opens anywhere, offline.

use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::{ImageFormat, Rgb, RgbImage};

use crate::audio::peaks::{Peaks, recording_peaks};
use crate::call_record::{CallRecord, QualitySample};

const W: u32 = 900;
const H: u32 = 160;
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const GREEN: Rgb<u8> = Rgb([23, 128, 61]);
const BLUE: Rgb<u8> = Rgb([36, 83, 166]);
const RED: Rgb<u8> = Rgb([179, 38, 30]);
const AMBER: Rgb<u8> = Rgb([168, 100, 0]);
const GREY: Rgb<u8> = Rgb([200, 200, 200]);

/// Text for HTML: the caller's name and number are the customer's to choose.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn png_data_url(img: &RgbImage) -> String {
    let mut bytes = Vec::new();
    // Encoding an in-memory RGB image cannot fail short of memory.
    let _ = img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png);
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Customer in the top half, business in the bottom half.
pub fn waveform_image(p: &Peaks) -> RgbImage {
    let mut img = RgbImage::from_pixel(W, H, WHITE);
    let half = H / 2;
    for (lane, (peaks, color)) in [(&p.customer, GREEN), (&p.business, BLUE)]
        .into_iter()
        .enumerate()
    {
        let top = lane as u32 * half;
        let mid = top + half / 2;
        let n = peaks.len().max(1);
        for x in 0..W {
            let (lo, hi) = peaks[(x as usize * n / W as usize).min(n - 1)];
            let scale = |v: i16| (f64::from(v) / 32768.0 * f64::from(half / 2 - 1)) as i64;
            let y0 = (i64::from(mid) - scale(hi)).clamp(i64::from(top), i64::from(top + half - 1));
            let y1 = (i64::from(mid) - scale(lo)).clamp(i64::from(top), i64::from(top + half - 1));
            for y in y0..=y1.max(y0) {
                img.put_pixel(x, y as u32, color);
            }
        }
    }
    for x in 0..W {
        img.put_pixel(x, half, GREY);
    }
    img
}

/// One plotted figure of a sample.
type Metric = fn(&QualitySample) -> f64;

/// Loss %, jitter ms and RTT ms over the call, on one scale.
pub fn quality_image(samples: &[QualitySample]) -> RgbImage {
    let mut img = RgbImage::from_pixel(W, H, WHITE);
    if samples.is_empty() {
        return img;
    }
    let series: [(Metric, Rgb<u8>); 3] = [
        (|s| s.loss_pct, RED),
        (|s| s.jitter_ms, AMBER),
        (|s| s.rtt_ms.unwrap_or(0.0), BLUE),
    ];
    let max = samples
        .iter()
        .flat_map(|s| series.iter().map(move |(f, _)| f(s)))
        .fold(1.0f64, f64::max);
    let point = |i: usize, v: f64| {
        let x = if samples.len() == 1 {
            f64::from(W) / 2.0
        } else {
            5.0 + i as f64 * f64::from(W - 10) / (samples.len() - 1) as f64
        };
        let y = f64::from(H) - 5.0 - v / max * f64::from(H - 10);
        (x, y)
    };
    for (f, color) in series {
        for i in 0..samples.len() {
            let (x0, y0) = point(i, f(&samples[i]));
            let (x1, y1) = point(
                (i + 1).min(samples.len() - 1),
                f(&samples[(i + 1).min(samples.len() - 1)]),
            );
            // A line as dots, dense enough to read as one.
            let steps = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
            for k in 0..=steps {
                let t = k as f64 / steps as f64;
                let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
                if (0.0..f64::from(W)).contains(&x) && (0.0..f64::from(H)).contains(&y) {
                    img.put_pixel(x as u32, y as u32, color);
                }
            }
        }
    }
    img
}

/// The report page. `recording`: the call's WAV, when it is on this host.
pub fn render(record: &CallRecord, samples: &[QualitySample], recording: Option<&Path>) -> String {
    let r = record;
    let opt = |v: &Option<String>| v.as_deref().map(esc).unwrap_or_else(|| "–".into());
    let mut fields = vec![
        ("Call", esc(&r.call_id)),
        ("Direction", r.direction.as_str().to_owned()),
        ("Customer", esc(&r.customer)),
        ("Name", opt(&r.caller_name)),
        ("Agent or bot", opt(&r.edge)),
        ("Answered by", opt(&r.answered_by)),
        ("Offered", esc(&r.offered_at)),
        ("Pre-accepted", opt(&r.pre_accepted_at)),
        ("Accepted", opt(&r.accepted_at)),
        ("Ended", opt(&r.ended_at)),
        ("Outcome", opt(&r.end_reason)),
        (
            "Duration",
            r.duration_s.map_or("–".into(), |d| format!("{d} s")),
        ),
        (
            "Waited in queue",
            r.queue_wait_s.map_or("–".into(), |d| format!("{d} s")),
        ),
        ("Overflow", opt(&r.overflow)),
        ("Keys pressed", esc(&r.dtmf)),
        ("Recording", opt(&r.recording)),
    ];
    if let Some(q) = &r.quality {
        fields.push((
            "Quality",
            format!(
                "{} received, {} lost ({:.2} %), jitter {:.1} ms, RTT {}, {} frames concealed",
                q.packets_received,
                q.packets_lost,
                q.loss_pct,
                q.jitter_ms,
                q.rtt_ms.map_or("–".into(), |v| format!("{v:.0} ms")),
                q.playout.concealed
            ),
        ));
    }
    let rows: String = fields
        .iter()
        .map(|(k, v)| format!("<tr><th>{k}</th><td>{v}</td></tr>\n"))
        .collect();
    let mut timeline: Vec<(String, String)> = [
        (Some(r.offered_at.clone()), "offered".to_owned()),
        (r.pre_accepted_at.clone(), "pre_accept".to_owned()),
        (r.accepted_at.clone(), "accept".to_owned()),
        (
            r.quality
                .and_then(|q| q.media_connected_ms)
                .and_then(|ms| chrono::DateTime::from_timestamp_millis(ms as i64))
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            "media connected".to_owned(),
        ),
        (
            samples
                .iter()
                .find(|s| s.packets_received > 0)
                .map(|s| s.at.clone()),
            "audio flowing (first quality report with audio)".to_owned(),
        ),
        (
            r.ended_at.clone(),
            format!("end: {}", r.end_reason.as_deref().unwrap_or("")),
        ),
    ]
    .into_iter()
    .chain(
        r.dtmf
            .chars()
            .zip(r.dtmf_at.iter())
            .map(|(k, at)| (Some(at.clone()), format!("key pressed: {k}"))),
    )
    .filter_map(|(at, what)| at.map(|at| (at, what)))
    .collect();
    timeline.sort();
    let timeline: String = timeline
        .iter()
        .map(|(at, what)| format!("<li>{} · {}</li>\n", esc(at), esc(what)))
        .collect();
    let wave = match recording.map(|p| recording_peaks(p, W as usize)) {
        Some(Ok(p)) => format!(
            "<img alt=\"waveform: customer above, business below\" src=\"{}\"><p class=m>Customer above, business below; {:.1} s.</p>",
            png_data_url(&waveform_image(&p)),
            p.seconds
        ),
        Some(Err(e)) => format!(
            "<p class=m>The recording could not be read: {}</p>",
            esc(&e)
        ),
        None => "<p class=m>No recording for this call on this host.</p>".to_owned(),
    };
    let quality = if samples.is_empty() {
        "<p class=m>No quality reports for this call.</p>".to_owned()
    } else {
        format!(
            "<img alt=\"loss, jitter and RTT over the call\" src=\"{}\"><p class=m><span style=\"color:#b3261e\">loss %</span> · <span style=\"color:#a86400\">jitter ms</span> · <span style=\"color:#2453a6\">RTT ms</span>; {} reports, every 2 s.</p>",
            png_data_url(&quality_image(samples)),
            samples.len()
        )
    };
    format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>wacall call report {id}</title>\n<style>body{{font:14px system-ui,sans-serif;margin:24px;color:#1d2430}}th{{text-align:left;color:#5a6472;padding:3px 12px 3px 0;font-weight:600}}td{{padding:3px 0}}.m{{color:#7a8491}}img{{border:1px solid #e6e8ec;max-width:100%}}</style></head>\n<body><h1>Call {id}</h1>\n<table>\n{rows}</table>\n<h2>Timeline</h2><ol>\n{timeline}</ol>\n<h2>Recording</h2>{wave}\n<h2>Quality over the call</h2>{quality}\n<p class=m>Written by wacall report.</p></body></html>\n",
        id = esc(&r.call_id),
    )
}

/// `wacall report`: one call's report from the history (`db`) or from a recording and its
/// sidecar; written to `out` (default `wacall-report-CALL_ID.html`). Returns where.
pub fn write(
    call: &str,
    db: &std::path::Path,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<std::path::PathBuf> {
    use crate::call_record::CallRecord;
    let as_path = std::path::Path::new(&call);
    let (record, samples) = if as_path.extension().is_some_and(|e| e == "wav") {
        let sidecar = as_path.with_extension("json");
        let text = std::fs::read_to_string(&sidecar).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (the recording's sidecar is needed)",
                sidecar.display()
            )
        })?;
        let mut record: CallRecord = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a call sidecar: {e}", sidecar.display()))?;
        record.recording = Some(call.to_owned());
        // The quality timeline lives in the bridge's history, when it is at hand.
        let samples = match db.exists() {
            true => crate::bridge::history::History::open(db)?.samples(&record.call_id)?,
            false => Vec::new(),
        };
        (record, samples)
    } else {
        if !db.exists() {
            anyhow::bail!(
                "no call history at {} (set --db, or give a recording's .wav)",
                db.display()
            );
        }
        let h = crate::bridge::history::History::open(db)?;
        let Some(record) = h.get(call)? else {
            anyhow::bail!("no call {} in {}", call, db.display());
        };
        (record, h.samples(call)?)
    };
    let wav = record
        .recording
        .as_deref()
        .map(std::path::Path::new)
        .filter(|p| p.is_file());
    let html = render(&record, &samples, wav);
    let out = out.unwrap_or_else(|| {
        std::path::PathBuf::from(format!(
            "wacall-report-{}.html",
            crate::audio::recorder::file_safe_id(&record.call_id)
        ))
    });
    std::fs::write(&out, html).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call_record::Direction;

    #[test]
    fn the_report_is_one_file_with_both_images_and_nothing_unescaped() {
        let path =
            std::env::temp_dir().join(format!("wacall-report-{}.wav", rand::random::<u64>()));
        use crate::audio::peaks::{test_tone, write_test_recording};
        write_test_recording(&path, 48_000, |i| {
            (test_tone(i, 440.0), test_tone(i, 880.0))
        });
        let mut r = CallRecord::new("wacid.R1", Direction::Inbound, "5215500000001", "b");
        r.caller_name = Some("<script>alert(1)</script>".into());
        r.pre_accepted_at = Some("2026-12-02T10:00:00.100Z".into());
        r.accepted_at = Some("2026-12-02T10:00:00.300Z".into());
        let samples = vec![
            QualitySample {
                at: "2026-12-02T10:00:02.000Z".into(),
                packets_received: 90,
                jitter_ms: 2.0,
                ..Default::default()
            },
            QualitySample {
                at: "2026-12-02T10:00:04.000Z".into(),
                packets_received: 190,
                loss_pct: 3.0,
                ..Default::default()
            },
        ];
        let html = render(&r, &samples, Some(&path));
        assert_eq!(html.matches("data:image/png;base64,").count(), 2);
        assert!(!html.contains("<script>"), "unescaped name");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("pre_accept") && html.contains("· accept"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "self-contained"
        );
        // The waveform has ink in both halves.
        let img = waveform_image(&crate::audio::peaks::wav_peaks(&path, W as usize).unwrap());
        let inked = |y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (0..W).map(move |x| (x, y)))
                .filter(|&(x, y)| *img.get_pixel(x, y) != WHITE && *img.get_pixel(x, y) != GREY)
                .count()
        };
        assert!(inked(0, H / 2) > 1000 && inked(H / 2 + 1, H) > 1000);
        let without = render(&r, &[], None);
        assert!(without.contains("No recording") && without.contains("No quality reports"));
        let _ = std::fs::remove_file(&path);
    }
}
