//! What Meta's permission check adds to a dial: `dial` in Meta's shape asks
//! `GET call_permissions` before `POST calls {connect}`, so a dial is two round trips where the
//! BSP's is one. This times both halves against the sandbox's Meta API on 127.0.0.1, with the
//! same client the bridge uses, cold (the first request of a fresh client, right after the
//! sandbox opened its port: a new TCP connection) and warm (the same client, pooled).
//!
//! The baseline is `connect` alone, measured in the same run; the figure that matters is
//! (check + connect) / connect. On loopback it is the client's and the server's own cost; against
//! Meta each half is also one network round trip, which this cannot measure here.
//!
//! ```sh
//! cargo run --release --example permission_cost -- --dials 50
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use wacall::api::BspClient;
use wacall::config::{Config, Provider};
use wacall::media::{MediaConfig, MediaSession};
use wacall::sandbox::Sandbox;

#[path = "support/stats.rs"]
mod stats;
use stats::percentile;

#[derive(Parser)]
struct Args {
    /// Warm dials to time (each: check, connect, terminate).
    #[arg(long, default_value_t = 50)]
    dials: usize,
    /// Then wait this long with nothing sent and time one more dial: the client's pooled
    /// connection goes idle (reqwest drops it after 90 s), as a dialler's does between lists.
    #[arg(long, default_value_t = 0)]
    quiet_secs: u64,
}

struct Timing {
    check: Duration,
    connect: Duration,
}

async fn one_dial(client: &BspClient, user: &str, offer: &str) -> anyhow::Result<Timing> {
    let t = Instant::now();
    let p = client.call_permission(user).await?;
    let check = t.elapsed();
    anyhow::ensure!(
        p.may_call(chrono::Utc::now()),
        "the sandbox refused the call: {}",
        p.describe(user, chrono::Utc::now())
    );
    let t = Instant::now();
    let id = client.connect(user, offer, None).await?;
    let connect = t.elapsed();
    client.terminate(&id, user).await?;
    Ok(Timing { check, connect })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One dial's line: its two halves and the dial against `connect` alone.
fn report(label: &str, t: &Timing) {
    let (c, n) = (ms(t.check), ms(t.connect));
    println!(
        "{label}: check {c:.2} ms, connect {n:.2} ms, dial {:.2}x connect alone",
        (c + n) / n
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.dials > 0, "--dials must be at least 1, not 0");
    // Nobody listens for webhooks: the simulated users' webhooks fail, which the sandbox logs
    // and this does not need. Port 9 on 127.0.0.1 is closed.
    let dead_bridge = SocketAddr::from(([127, 0, 0, 1], 9));
    let sandbox = Sandbox::start_for_bridge_as(Provider::Meta, dead_bridge, "bench-secret").await?;
    let history = std::env::temp_dir().join("wacall-permission-cost.sqlite3");
    let config = Config::from_toml_str(&sandbox.wacall_toml(dead_bridge, &history))?;
    let media = MediaSession::new(&MediaConfig::loopback(), "bench").await?;
    let offer = media.create_offer().await?;

    // Cold: a fresh client's first dial, right after the sandbox opened.
    let client = BspClient::new(&config.bsp)?;
    let cold = one_dial(&client, "5215500000900", &offer).await?;
    // Warm: the same client, a new user each time (as a dialler working a list).
    let mut checks = Vec::new();
    let mut connects = Vec::new();
    for i in 0..args.dials {
        let t = one_dial(&client, &format!("52155000010{i:02}"), &offer).await?;
        checks.push(ms(t.check));
        connects.push(ms(t.connect));
    }
    checks.sort_by(f64::total_cmp);
    connects.sort_by(f64::total_cmp);
    let (mc, mn) = (percentile(&checks, 0.5), percentile(&connects, 0.5));
    println!("permission check before connect, sandbox Meta API on 127.0.0.1");
    report("cold (first dial)", &cold);
    println!(
        "warm ({} dials): check median {:.2} ms (p90 {:.2}), connect median {:.2} ms (p90 {:.2}), \
         dial {:.2}x connect alone",
        args.dials,
        mc,
        percentile(&checks, 0.9),
        mn,
        percentile(&connects, 0.9),
        (mc + mn) / mn
    );
    if args.quiet_secs > 0 {
        tokio::time::sleep(Duration::from_secs(args.quiet_secs)).await;
        let after = one_dial(&client, "5215500000901", &offer).await?;
        report(&format!("after {} s quiet", args.quiet_secs), &after);
    }
    media.close().await;
    Ok(())
}
