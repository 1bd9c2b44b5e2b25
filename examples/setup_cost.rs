//! How long one inbound call's media setup takes (new session + answer with ICE gathered), one
//! after another and 50 at once: the part of webhook → pre_accept that the edge owns.
//!
//! ```sh
//! cargo run --release --example setup_cost
//! ```

use std::time::Instant;

use wacall::media::{MediaConfig, MediaSession};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let wa_cfg = MediaConfig {
        ice_lite: true,
        ..MediaConfig::loopback()
    };
    let mut offers = Vec::new();
    for i in 0..50 {
        let s = MediaSession::new(&wa_cfg, &format!("wa-{i}")).await?;
        offers.push((s.create_offer().await?, s));
    }
    let cfg = MediaConfig::loopback();
    let mut seq = Vec::new();
    for (i, (offer, _)) in offers.iter().enumerate().take(20) {
        let t = Instant::now();
        let s = MediaSession::new(&cfg, &format!("b-{i}")).await?;
        let t_new = t.elapsed();
        s.answer(offer).await?;
        seq.push((t_new.as_secs_f64() * 1e3, t.elapsed().as_secs_f64() * 1e3));
        s.close().await;
    }
    let n = seq.len() as f64;
    println!(
        "one at a time: new session {:.2} ms, new + answer {:.2} ms (mean of {n})",
        seq.iter().map(|x| x.0).sum::<f64>() / n,
        seq.iter().map(|x| x.1).sum::<f64>() / n
    );
    let t = Instant::now();
    let all = futures_util::future::join_all(offers.iter().enumerate().map(|(i, (offer, _))| {
        let cfg = cfg.clone();
        async move {
            let s = MediaSession::new(&cfg, &format!("c-{i}")).await?;
            s.answer(offer).await?;
            let done = t.elapsed().as_secs_f64() * 1e3;
            Ok::<_, anyhow::Error>((s, done))
        }
    }))
    .await;
    let mut done: Vec<f64> = all
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|x| x.1))
        .collect();
    done.sort_by(f64::total_cmp);
    println!(
        "50 at once: first answer after {:.1} ms, median {:.1} ms, last {:.1} ms",
        done[0],
        done[done.len() / 2],
        done[done.len() - 1]
    );
    Ok(())
}
