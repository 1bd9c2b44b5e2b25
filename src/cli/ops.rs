//! Operator commands (settings, config, call actions). Each prints to stdout and returns an error
//! with a sentence an operator can act on.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::NaiveDate;

use crate::api::{ApiError, BspClient};
use crate::config::{Config, Provider};
use crate::settings::{self, CallSettings};

/// The settings format from a file's extension (`json` / `toml`), or `None` to sniff.
fn format_of(file: &Path) -> Option<&'static str> {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => Some("json"),
        Some("toml") => Some("toml"),
        _ => None,
    }
}

/// Today in the settings' time zone when it is valid (holidays are the business's days), else in
/// the machine's.
fn today_for(s: &CallSettings) -> NaiveDate {
    let tz = s
        .call_hours
        .as_ref()
        .and_then(|c| c.timezone_id.as_deref())
        .and_then(|t| t.parse::<chrono_tz::Tz>().ok());
    match tz {
        Some(tz) => chrono::Utc::now().with_timezone(&tz).date_naive(),
        None => chrono::Local::now().date_naive(),
    }
}

/// Reads, parses and validates a settings file for `provider` (the BSP refuses Meta's keys);
/// prints every problem. Returns the settings and their warnings when valid.
fn load_settings(file: &Path, provider: Provider) -> anyhow::Result<(CallSettings, Vec<String>)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read settings file {}", file.display()))?;
    let parsed = settings::parse_settings(&text, format_of(file))
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut problems = settings::validate(&parsed, today_for(&parsed))
        .err()
        .unwrap_or_default();
    problems.extend(
        settings::check_for_provider(&parsed, provider)
            .err()
            .unwrap_or_default(),
    );
    if !problems.is_empty() {
        for p in &problems {
            println!("{}: {p}", file.display());
        }
        bail!(
            "{} has {} problem{} for provider {provider}: nothing was sent",
            file.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
    }
    let warnings = settings::warnings(&parsed);
    Ok((parsed, warnings))
}

/// The provider `settings check` checks for: `--provider` when given, else the one in the
/// configuration file when one is given and loads (a note says so when it does not), else the
/// BSP.
pub fn settings_provider(flag: Option<Provider>, config: Option<&Path>) -> Provider {
    if let Some(p) = flag {
        return p;
    }
    let Some(path) = config else {
        return Provider::Bsp;
    };
    match Config::load(path) {
        Ok(cfg) => cfg.bsp.provider,
        Err(e) => {
            println!(
                "note: cannot use the provider in {} ({e}): checking for provider bsp",
                path.display()
            );
            Provider::Bsp
        }
    }
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        println!("warning: {w}");
    }
}

/// `wacall settings check FILE [--provider bsp|meta]`: validates a call-settings file (JSON or
/// TOML by extension) for that provider (see [`settings_provider`]).
pub fn settings_check(file: &Path, provider: Provider) -> anyhow::Result<()> {
    let (_, warnings) = load_settings(file, provider)?;
    print_warnings(&warnings);
    println!("{}: OK for provider {provider}", file.display());
    Ok(())
}

/// `wacall settings get`: the number's settings as Meta returns them, in words (or JSON).
/// Keys Meta sends that wacall does not know are listed, not refused.
pub async fn settings_get(config: &Config, json: bool) -> anyhow::Result<()> {
    let client = client(config)?;
    let body = client.get_call_settings().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let parsed = settings::from_meta_body(&body)
        .map_err(|e| anyhow::anyhow!("Meta's answer is not call settings: {e}"))?;
    print!("{}", settings::describe(&parsed));
    Ok(())
}

/// `wacall settings set FILE`: validates, prints the warnings, then submits the settings to the
/// BSP. Without `yes` the exact JSON sent is printed first. Meta-only keys are refused when
/// `bsp.provider` is `"bsp"`.
pub async fn settings_set(config: &Config, file: &Path, yes: bool) -> anyhow::Result<()> {
    let (parsed, warnings) = load_settings(file, config.bsp.provider)?;
    print_warnings(&warnings);
    let client = client(config)?;
    if !yes {
        // What the client sends: Meta takes the settings inside {"calling": ...}.
        let body = match config.bsp.provider {
            Provider::Bsp => serde_json::to_value(&parsed)?,
            Provider::Meta => settings::meta_body(&parsed),
        };
        println!(
            "sending to {}:\n{}",
            client.settings_url(),
            serde_json::to_string_pretty(&body)?
        );
    }
    client
        .set_call_settings(&parsed)
        .await
        .map_err(|e| anyhow::anyhow!(explain(&e)))?;
    println!(
        "call settings of {} updated from {}",
        config.bsp.phone_number,
        file.display()
    );
    Ok(())
}

/// `wacall config check [FILE]`: loads the configuration (with environment overrides) and lists
/// what `serve` would need.
pub fn config_check(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let problems = config.problems();
    let (notes, blockers): (Vec<_>, Vec<_>) = problems.iter().partition(|p| p.starts_with("note:"));
    for p in &blockers {
        println!("problem: {p}");
    }
    for n in &notes {
        println!("{n}");
    }
    if !blockers.is_empty() {
        bail!(
            "{} is not ready for `serve`: {} problem{}",
            path.display(),
            blockers.len(),
            if blockers.len() == 1 { "" } else { "s" }
        );
    }
    println!("{}: OK", path.display());
    Ok(())
}

/// `wacall call terminate|reject CALL_ID TO`: ends or declines a call by hand.
pub async fn call_action(
    config: &Config,
    action: &str,
    call_id: &str,
    to: &str,
) -> anyhow::Result<()> {
    if call_id.trim().is_empty() {
        bail!("give the call id (like wacid.ABGG...)");
    }
    if to.is_empty() || !to.bytes().all(|c| c.is_ascii_digit()) {
        bail!("the user's number {to:?} must be digits only, country code first, no '+'");
    }
    let client = client(config)?;
    let result = match action {
        "terminate" => client.terminate(call_id, to).await,
        "reject" => client.reject(call_id, to).await,
        other => bail!("unknown call action {other:?}: use terminate or reject"),
    };
    result.map_err(|e| anyhow::anyhow!(explain(&e)))?;
    println!("{action} of call {call_id} accepted by the BSP");
    Ok(())
}

/// A BSP client, after checking the `[bsp]` settings it needs.
pub(crate) fn client(config: &Config) -> anyhow::Result<BspClient> {
    let missing: Vec<String> = config
        .problems()
        .into_iter()
        .filter(|p| p.starts_with("bsp."))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the [bsp] configuration is incomplete:\n  {}",
            missing.join("\n  ")
        );
    }
    Ok(BspClient::new(&config.bsp)?)
}

/// The error plus a hint when the cause is a common one.
fn explain(e: &ApiError) -> String {
    let hint = match e.status() {
        Some(401) | Some(403) if e.provider_code() != Some(138006) => {
            Some("check bsp.token (or WACALL_BSP_TOKEN) and bsp.waba_id")
        }
        Some(404) => Some("check bsp.base_url, bsp.waba_id and bsp.phone_number"),
        _ => match e {
            ApiError::Timeout { .. } => {
                Some("the BSP may still have done it; raise bsp.timeout_ms if it is slow")
            }
            ApiError::Unreachable { .. } => Some("check bsp.base_url and the network"),
            _ => None,
        },
    };
    match hint {
        Some(h) => format!("{e}\n  hint: {h}"),
        None => e.to_string(),
    }
}

/// A call's quality over time as a table: one line per report, loss and concealment as they
/// grew since the previous line, so the moment a call went bad stands out.
pub fn quality_table(samples: &[crate::call_record::QualitySample]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>6} {:>7} {:>9} {:>7} {:>8} {:>8}",
        "at", "received", "lost+", "loss%", "jitter ms", "rtt ms", "heard dB", "said dB"
    );
    let mut lost_before = 0;
    for s in samples {
        let db = |v: Option<f32>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>6} {:>7.2} {:>9.1} {:>7} {:>8} {:>8}",
            s.at.get(..23).unwrap_or(&s.at),
            s.packets_received,
            s.packets_lost.saturating_sub(lost_before),
            s.loss_pct,
            s.jitter_ms,
            s.rtt_ms.map_or("-".to_owned(), |r| format!("{r:.0}")),
            db(s.level_in_dbfs),
            db(s.level_out_dbfs),
        );
        lost_before = s.packets_lost;
    }
    if samples.is_empty() {
        out.push_str("(no quality reports for this call)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension() {
        assert_eq!(format_of(Path::new("a.JSON")), Some("json"));
        assert_eq!(format_of(Path::new("a.toml")), Some("toml"));
        assert_eq!(format_of(Path::new("a.txt")), None);
    }

    #[test]
    fn shipped_example_settings_are_valid() {
        // Checked against a fixed date: the example's holiday (2027-01-01) will be in the past one day.
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/call-settings.json");
        let text = std::fs::read_to_string(&file).unwrap();
        let s = settings::parse_settings(&text, format_of(&file)).unwrap();
        settings::validate(&s, NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()).unwrap();
    }

    #[test]
    fn settings_check_reports_every_problem() {
        let dir = std::env::temp_dir().join(format!("wacall-ops-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(
            &bad,
            "[call_hours]\nstatus = \"ENABLED\"\ntimezone_id = \"Mars/Base\"\n\
             [[call_hours.weekly_operating_hours]]\nday_of_week = \"MONDAY\"\n\
             open_time = \"0900\"\nclose_time = \"2460\"\n",
        )
        .unwrap();
        let e = settings_check(&bad, Provider::Bsp).unwrap_err().to_string();
        assert!(e.contains("2 problems"), "{e}");
        let good = dir.join("good.json");
        std::fs::write(
            &good,
            r#"{"call_hours":{"status":"ENABLED","timezone_id":"UTC",
               "weekly_operating_hours":[{"day_of_week":"MONDAY","open_time":"0900","close_time":"1700"}],
               "holiday_schedule":[{"date":"2999-01-01","start_time":"0000","end_time":"2359"}]}}"#,
        )
        .unwrap();
        settings_check(&good, Provider::Bsp).unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn meta_only_keys_are_refused_for_the_bsp_and_taken_for_meta() {
        let dir = std::env::temp_dir().join(format!("wacall-ops-provider-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("meta.json");
        std::fs::write(
            &file,
            r#"{"status":"ENABLED","call_icons":{"restrict_to_user_countries":["MX"]},
               "audio":{"additional_codecs":["PCMA"]}}"#,
        )
        .unwrap();
        let e = settings_check(&file, Provider::Bsp)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 problems for provider bsp"), "{e}");
        settings_check(&file, Provider::Meta).unwrap();

        // `settings set` knows the provider from the configuration and refuses before sending.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cfg = Config::default();
        assert_eq!(cfg.bsp.provider, Provider::Bsp);
        let e = rt
            .block_on(settings_set(&cfg, &file, true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nothing was sent"), "{e}");

        // The default provider of `settings check`: the flag, else the config's, else bsp.
        let meta_cfg = dir.join("meta.toml");
        std::fs::write(&meta_cfg, "[bsp]\nprovider = \"meta\"\n").unwrap();
        assert_eq!(settings_provider(None, Some(&meta_cfg)), Provider::Meta);
        assert_eq!(
            settings_provider(Some(Provider::Bsp), Some(&meta_cfg)),
            Provider::Bsp
        );
        assert_eq!(
            settings_provider(None, Some(&dir.join("missing.toml"))),
            Provider::Bsp
        );
        assert_eq!(settings_provider(None, None), Provider::Bsp);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn call_action_checks_its_arguments_before_sending() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cfg = Config::default();
        let e = rt
            .block_on(call_action(&cfg, "terminate", "wacid.X", "+52"))
            .unwrap_err();
        assert!(e.to_string().contains("digits only"), "{e}");
        let e = rt
            .block_on(call_action(&cfg, "terminate", "wacid.X", "521"))
            .unwrap_err();
        assert!(
            e.to_string().contains("[bsp] configuration is incomplete"),
            "{e}"
        );
    }
}
