use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::{
    RawFrame, RawWs, TestHub, WAIT, Ws, eventually, metric, process_alive, run,
    run_with_grandchild, when,
};

#[tokio::test]
async fn connections_over_the_limit_are_refused_before_the_upgrade() {
    let hub = TestHub::start_with(|c| c.config.limits.max_connections = 2).await;
    let first = hub.client().await;
    let _second = hub.client().await;
    match Ws::connect(hub.ws_request()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    // A slot frees up when a client leaves.
    drop(first);
    eventually("the slot to be released", async || {
        Ws::connect(hub.ws_request())
            .await
            .map_err(|err| err.to_string())
    })
    .await;
    hub.stop().await;
}

#[tokio::test]
async fn projects_over_the_limit_are_refused() {
    let hub = TestHub::start_with(|c| c.config.limits.max_projects = 1).await;
    let mut ws = hub.client().await;
    hub.project(&mut ws).await;
    let dir = tempfile::tempdir().unwrap();
    let error = ws.err("project.create", json!({"path": dir.path()})).await;
    assert_eq!(error["data"]["kind"], "LIMIT_REACHED");
    hub.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_errors_not_a_disconnect() {
    let hub = TestHub::start_with(|c| {
        c.config.limits.rate_limit_per_s = 2;
        c.config.limits.rate_limit_burst = 5;
    })
    .await;
    let mut ws = hub.client().await;
    for id in 1..=20 {
        ws.send_raw(&json!({"jsonrpc": "2.0", "id": id, "method": "hub.status"}).to_string())
            .await;
    }
    let mut limited = 0;
    for _ in 1..=20 {
        let reply = ws.next_json().await;
        if reply["error"]["data"]["kind"] == "RATE_LIMITED" {
            assert!(reply["id"].is_u64(), "the error names the request");
            limited += 1;
        }
    }
    assert!(limited >= 10, "{limited} of 20 were limited");
    // Capacity returns with time.
    eventually("capacity to return", async || {
        when(ws.call("hub.status", json!({})).await, |reply| {
            reply.get("result").is_some()
        })
    })
    .await;
    hub.stop().await;
}

#[tokio::test]
async fn a_slow_subscriber_catches_up_from_the_store_without_losing_a_line() {
    let hub = TestHub::start_with(|c| c.config.limits.outgoing_queue = 8).await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "lines 3000").await;
    // A queue of 8 cannot hold a burst of 3000 lines; the subscriber still gets them all,
    // in order, once each.
    let lines = ws.run_output(&run_id).await;
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=3006).collect::<Vec<_>>());
    assert_eq!(ws.ok("hub.status", json!({})).await["connections"], 1);
    hub.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1008() {
    let hub = TestHub::start_with(|c| {
        c.config.limits.outgoing_queue = 16;
        c.config.limits.write_timeout_s = 5;
    })
    .await;
    let mut observer = hub.client().await;
    observer
        .ok("hub.hello", json!({"connection_events": true}))
        .await;
    let mut slow = hub.client().await;
    let slow_id = slow
        .ok("hub.hello", json!({"role": "script", "name": "slow"}))
        .await["connection_id"]
        .clone();
    let (project_id, _dir) = hub.project(&mut observer).await;
    slow.subscribe(&project_id).await;
    run(&mut observer, &project_id, "lines 100000").await;
    // The slow client reads nothing until the hub has given up on it.
    loop {
        let change = observer.notification("hub.connection").await;
        if change["event"] == "closed" && change["connection"]["id"] == slow_id {
            break;
        }
    }
    // The hub chose 1008 for it. Whether the close frame itself arrives is up to the
    // kernel's buffers: it is queued behind the lines the client never read, and the
    // hub gives up on writing it after the write timeout (RFC 6455 section 7.1.1 lets
    // the server drop the TCP connection then).
    assert_eq!(
        metric(hub.port, "ws_connections_closed_total{code=\"1008\"}").await,
        1.0,
        "the hub closed the slow client with 1008"
    );
    // The socket ends, and a close frame, if one made it, says 1008.
    if let Some(frame) = slow.closed().await {
        assert_eq!(frame.code, CloseCode::Policy);
    }
    // The hub and the run are fine.
    assert_eq!(
        observer.ok("hub.status", json!({})).await["product"],
        "semantest-hub"
    );
    hub.stop().await;
}

#[tokio::test]
async fn pings_are_sent_and_a_silent_client_is_closed_when_idle() {
    let hub = TestHub::start_with(|c| {
        c.config.limits.ping_interval_s = 1;
        c.config.limits.idle_timeout_s = 2;
    })
    .await;
    // Taken before connecting, so the hub's idle clock cannot have started earlier.
    let started = tokio::time::Instant::now();
    let mut raw = RawWs::connect(hub.port, &hub.token).await;
    let mut frames = Vec::new();
    while let Some(frame) = tokio::time::timeout(WAIT, raw.frame()).await.unwrap() {
        let close = matches!(frame, RawFrame::Close(_));
        frames.push(frame);
        if close {
            break;
        }
    }
    assert!(frames.contains(&RawFrame::Ping), "{frames:?}");
    assert_eq!(frames.last(), Some(&RawFrame::Close(1000)));
    assert!(started.elapsed() >= Duration::from_secs(2));

    // A client that answers pings stays connected past the idle timeout.
    let mut ws = hub.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        // Reading lets tungstenite answer the pings.
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            futures_util::StreamExt::next(&mut ws.socket),
        )
        .await;
    }
    assert_eq!(
        ws.ok("hub.status", json!({})).await["product"],
        "semantest-hub"
    );
    hub.stop().await;
}

#[tokio::test]
async fn shutdown_closes_clients_with_1001_and_kills_runs() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let (run_id, grandchild) = run_with_grandchild(&mut ws, &project_id, dir.path()).await;
    let store = hub.hub().store().clone();
    let data = hub.stop().await;
    let frame = ws.closed().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Away);
    assert!(!process_alive(grandchild));
    assert_eq!(
        store.run_status(&run_id).await.unwrap().as_deref(),
        Some("killed")
    );
    assert!(
        !data.path().join("server.json").exists(),
        "the runtime file is removed"
    );
    // The WAL was checkpointed into the main file.
    let wal = data.path().join("hub.sqlite3-wal");
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() == 0)
            .unwrap_or(true)
    );
}
