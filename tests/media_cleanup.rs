//! Closing a media session frees its sockets: after calls that connected, exchanged audio and
//! closed, this process holds no more UDP sockets than before. (Its own test binary, apart from
//! `tests/suite`, so no other test's sockets are counted.)

use std::time::Duration;

use wacall::media::{MediaConfig, MediaSession};

/// Sockets this process holds, from its file descriptors.
fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_sessions_leave_no_sockets_behind() {
    let before = sockets();
    let mut pairs = Vec::new();
    for i in 0..5 {
        let wa = MediaSession::new(
            &MediaConfig {
                ice_lite: true,
                ..MediaConfig::loopback()
            },
            &format!("wa-{i}"),
        )
        .await
        .unwrap();
        let biz = MediaSession::new(&MediaConfig::loopback(), &format!("biz-{i}"))
            .await
            .unwrap();
        let answer = biz.answer(&wa.create_offer().await.unwrap()).await.unwrap();
        wa.apply_answer(&answer).await.unwrap();
        pairs.push((wa, biz));
    }
    for (wa, biz) in &pairs {
        wa.wait_connected(Duration::from_secs(10)).await.unwrap();
        biz.wait_connected(Duration::from_secs(10)).await.unwrap();
        biz.send_opus(bytes::Bytes::from_static(&[0xf8, 0xff, 0xfe]))
            .await
            .unwrap();
    }
    let during = sockets();
    assert!(
        during >= before + 10,
        "each session holds a socket: {before} → {during}"
    );
    for (wa, biz) in &pairs {
        wa.close().await;
        biz.close().await;
    }
    drop(pairs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = sockets();
        if now <= before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sockets left open: {before} before, {now} after close"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
