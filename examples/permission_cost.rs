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

#[derive(Parser)]
struct Args {
    /// Warm dials to time (each: check, connect, terminate).
    #[arg(long, default_value_t = 50)]
    dials: usize,
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p90(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 9 / 10).min(v.len() - 1)]
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
    let (mc, mn) = (median(checks.clone()), median(connects.clone()));
    println!("permission check before connect, sandbox Meta API on 127.0.0.1");
    println!(
        "cold (first dial):  check {:.2} ms, connect {:.2} ms, dial {:.2}x connect alone",
        ms(cold.check),
        ms(cold.connect),
        (ms(cold.check) + ms(cold.connect)) / ms(cold.connect)
    );
    println!(
        "warm ({} dials):    check median {:.2} ms (p90 {:.2}), connect median {:.2} ms (p90 {:.2}), \
         dial {:.2}x connect alone",
        args.dials,
        mc,
        p90(checks),
        mn,
        p90(connects),
        (mc + mn) / mn
    );
    media.close().await;
    Ok(())
}
