//! Soak: connections churn (connect, subscribe, publish, receive, disconnect) against a
//! hub process while its resident memory and open file descriptors are sampled; the
//! least-squares slope of each must stay under a stated bound, and the open sockets must
//! return to their idle count once the churn stops (other descriptors, such as the
//! monitor's /proc file, may be opened lazily after start-up, so only sockets are
//! compared exactly).
//!
//! 30 s in the test suite; `SEMANTEST_SOAK_SECS=300` runs the long soak (see
//! docs/reliability.md). The figures are printed as a `SOAK` line (`--nocapture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use semantest_hub::cli::HubClient;
use serde_json::json;
use tempfile::TempDir;

use crate::util::{WAIT, eventually, fd_count, rss_kib, socket_count, spawn_hub, when};

/// RSS may grow by at most this much per minute after the warm-up.
const MAX_RSS_SLOPE_KIB_PER_MIN: f64 = 2048.0;
/// Open descriptors may grow by at most this many per minute after the warm-up.
const MAX_FD_SLOPE_PER_MIN: f64 = 6.0;

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in points {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    num / den
}

/// One churn round: a subscriber and a publisher connect, 5 events go from one to the
/// other, both leave.
async fn round(url: &str, token: &str, n: u64) {
    let connect = async || {
        tokio::time::timeout(WAIT, HubClient::connect(url, token))
            .await
            .expect("connect in time")
            .expect("connect")
    };
    let (mut subscriber, mut publisher) = (connect().await, connect().await);
    let topic = format!("soak.r{n}");
    subscriber
        .request("event.subscribe", json!({"types": [topic]}))
        .await
        .unwrap();
    for i in 0..5 {
        let published = publisher
            .request("event.publish", json!({"type": topic, "payload": {"i": i}}))
            .await
            .unwrap();
        assert_eq!(published["delivered"], 1);
    }
    let mut seen = 0;
    // Bounded: other notifications (connection news for the owner) come in between.
    for _ in 0..1000 {
        let message = tokio::time::timeout(WAIT, subscriber.next_notification())
            .await
            .expect("an event in time")
            .unwrap();
        if message["method"] == "event" {
            assert_eq!(message["params"]["payload"]["i"], seen);
            seen += 1;
            if seen == 5 {
                break;
            }
        }
    }
    assert_eq!(seen, 5, "every event arrived");
    subscriber.close().await;
    publisher.close().await;
}

#[tokio::test]
async fn churn_does_not_grow_memory_or_descriptors() {
    let secs: u64 = std::env::var("SEMANTEST_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let data = TempDir::new().unwrap();
    let (hub, port) = spawn_hub(data.path()).await;
    let pid = hub.pid();
    let url = format!("http://127.0.0.1:{port}");
    let token = std::fs::read_to_string(data.path().join("secrets/owner-token"))
        .unwrap()
        .trim()
        .to_string();
    let (idle_fds, idle_sockets) = (fd_count(pid), socket_count(pid));

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let churners: Vec<_> = (0..4)
        .map(|_| {
            let (url, token, stop, rounds) =
                (url.clone(), token.clone(), stop.clone(), rounds.clone());
            tokio::spawn(async move {
                // At most a round per 10 ms each: steady churn that leaves the machine
                // to the tests running beside this one.
                let mut pace = tokio::time::interval(Duration::from_millis(10));
                while !stop.load(Ordering::Relaxed) {
                    pace.tick().await;
                    let n = rounds.fetch_add(1, Ordering::Relaxed);
                    round(&url, &token, n).await;
                }
            })
        })
        .collect();

    // Sample once a second; the first sixth is warm-up (allocator arenas, caches).
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let (mut rss, mut fds) = (Vec::new(), Vec::new());
    for _ in 0..=secs {
        ticks.tick().await;
        let t = started.elapsed().as_secs_f64() / 60.0;
        rss.push((t, rss_kib(pid) as f64));
        fds.push((t, fd_count(pid) as f64));
    }
    stop.store(true, Ordering::Relaxed);
    for churner in churners {
        tokio::time::timeout(WAIT, churner).await.unwrap().unwrap();
    }
    let warm = rss.len() / 6;
    let (rss_slope, fd_slope) = (slope(&rss[warm..]), slope(&fds[warm..]));
    let rounds = rounds.load(Ordering::Relaxed);
    eventually("the sockets to return to their idle count", async || {
        when(socket_count(pid), |sockets| *sockets <= idle_sockets)
    })
    .await;
    println!(
        "SOAK {secs} s: {rounds} rounds ({:.0} connections/s), RSS {:.0} -> {:.0} KiB, \
         slope {rss_slope:.1} KiB/min (bound {MAX_RSS_SLOPE_KIB_PER_MIN}); fds {idle_fds} idle, \
         {:.0}..{:.0} under churn, slope {fd_slope:.2}/min (bound {MAX_FD_SLOPE_PER_MIN}), \
         {} after; sockets {idle_sockets} idle, {} after",
        rounds as f64 * 2.0 / secs as f64,
        rss[warm].1,
        rss.last().unwrap().1,
        fds.iter().map(|p| p.1).fold(f64::MAX, f64::min),
        fds.iter().map(|p| p.1).fold(0.0, f64::max),
        fd_count(pid),
        socket_count(pid),
    );
    assert!(rounds > secs, "the churn ran: {rounds} rounds");
    assert!(
        rss_slope < MAX_RSS_SLOPE_KIB_PER_MIN,
        "RSS grows {rss_slope:.1} KiB/min"
    );
    assert!(
        fd_slope < MAX_FD_SLOPE_PER_MIN,
        "fds grow {fd_slope:.2}/min"
    );
    drop(hub);
}

#[test]
fn the_slope_is_least_squares() {
    let points: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 3.0 * x as f64 + 1.0)).collect();
    assert!((slope(&points) - 3.0).abs() < 1e-9);
}
