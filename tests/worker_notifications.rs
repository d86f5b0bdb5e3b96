//! `worker.heartbeat` sent as a JSON-RPC notification (no `id`, JSON-RPC 2.0 section
//! 4.1): it is run, so it keeps the worker's lease, and it is never answered.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::util::{TestHub, WAIT};

/// The lease, short so that a few pass during the test.
const LEASE_S: u64 = 3;

#[tokio::test]
async fn a_heartbeat_sent_as_a_notification_keeps_the_lease() {
    let hub = TestHub::start_with(|config| config.config.coordination.lease_s = LEASE_S).await;
    let mut coordinator = hub.client().await;
    coordinator
        .ok("hub.hello", json!({"role": "coordinator"}))
        .await;
    let (project_id, _dir) = hub.project(&mut coordinator).await;
    coordinator
        .ok(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": "h1", "title": "held"}]}),
        )
        .await;
    let mut worker = hub.client().await;
    let registered = worker
        .ok("worker.register", json!({"name": "notifier"}))
        .await;
    let worker_id = registered["worker_id"].as_str().unwrap().to_string();
    let assigned = worker.notification("task.assigned").await;
    assert_eq!(assigned["task"]["id"], "h1", "{assigned}");

    // Three leases' worth of heartbeats, each a notification, every tenth of a lease.
    let beat = json!({"jsonrpc": "2.0", "method": "worker.heartbeat"}).to_string();
    let mut tick = tokio::time::interval(Duration::from_millis(LEASE_S * 100));
    let until = Instant::now() + Duration::from_secs(3 * LEASE_S);
    while Instant::now() < until {
        tick.tick().await;
        worker.send_raw(&beat).await;
    }
    // Never answered: any frame but a notification before this call's answer fails it
    // (`Ws::response`).
    let held = worker.call("task.get", json!({"task_id": "h1"})).await;
    assert_eq!(held["result"]["state"], "running", "{held}");
    assert_eq!(held["result"]["worker_id"], worker_id.as_str(), "{held}");
    let requeued = coordinator
        .notification_within("task.requeued", Duration::from_millis(200))
        .await;
    assert!(requeued.is_none(), "the lease ran out: {requeued:?}");

    // Without them the lease runs out: the heartbeats were what kept it.
    let requeued = tokio::time::timeout(WAIT, coordinator.notification("task.requeued"))
        .await
        .expect("the lease runs out");
    assert_eq!(requeued["task_id"], "h1", "{requeued}");
    hub.stop().await;
}
