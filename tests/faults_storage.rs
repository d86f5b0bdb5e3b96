//! Storage under big writes: `task.create` of 10,000 tasks and `project.delete` of a
//! project with 100,000 output lines, while another client's `hub.status` round trips
//! are timed. The store's writes run on its writer thread in bounded chunks, so the
//! runtime keeps answering: the p99 round trip is to stay under [`P99_TARGET`], a target
//! the fault run enforces (`SEMANTEST_TIMING_TARGETS=1`, docs/reliability.md) and the
//! test command reports.
//!
//! The figures are printed as a `FAULTS storage ...` line (run with `--nocapture`) and
//! quoted in docs/reliability.md.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use semantest_hub::cli::HubClient;
use serde_json::json;

use crate::util::{WAIT, spawn_hub, spawn_hub_with};

/// The p99 `hub.status` round trip the hub must keep under load.
const P99_TARGET: Duration = Duration::from_millis(50);
/// Output lines in the project that is deleted.
const LINES: i64 = 100_000;
/// Tasks in the one `task.create`.
const TASKS: usize = 10_000;

async fn client(port: u16, data_dir: &Path) -> HubClient {
    let token = std::fs::read_to_string(data_dir.join("secrets/owner-token")).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    tokio::time::timeout(WAIT, HubClient::connect(&url, token.trim()))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Gives project `project_id` [`LINES`] output lines, written straight into the store
/// while the hub is stopped (an agent would take minutes to print them).
fn fill_log(data_dir: &Path, project_id: &str) {
    // Recent lines, within the retention rules, so the hub keeps all of them.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - LINES;
    let mut db = rusqlite::Connection::open(data_dir.join("hub.sqlite3")).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO messages (project_id, seq, ts, run_id, stream, kind, is_json, body)
                 VALUES (?1, ?2, ?3, NULL, 'stdout', 'assistant', 1, ?4)",
            )
            .unwrap();
        for seq in 1..=LINES {
            let body = format!(r#"{{"type":"assistant","n":{seq},"text":"line of output"}}"#);
            insert
                .execute(rusqlite::params![project_id, seq, now + seq, body])
                .unwrap();
        }
    }
    tx.execute(
        "UPDATE projects SET last_seq = ?2 WHERE id = ?1",
        rusqlite::params![project_id, LINES],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(log_lines(data_dir, project_id), LINES);
}

/// Lines of `project_id` in the store.
fn log_lines(data_dir: &Path, project_id: &str) -> i64 {
    rusqlite::Connection::open(data_dir.join("hub.sqlite3"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE project_id = ?1",
            [project_id],
            |row| row.get(0),
        )
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_task_creates_and_project_deletes_do_not_stall_other_clients() {
    let data = tempfile::tempdir().unwrap();
    let (big_dir, tasks_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut hub, port) = spawn_hub(data.path()).await;
    let (big, tasks_project) = {
        let mut setup = client(port, data.path()).await;
        let big = setup
            .request("project.create", json!({"path": big_dir.path()}))
            .await
            .unwrap();
        let tasks_project = setup
            .request("project.create", json!({"path": tasks_dir.path()}))
            .await
            .unwrap();
        (
            big["id"].as_str().unwrap().to_string(),
            tasks_project["id"].as_str().unwrap().to_string(),
        )
    };
    hub.kill();
    fill_log(data.path(), &big);
    // Round trips back to back are far above the per-connection request rate; the limit
    // is not what is measured here.
    let unlimited = [
        ("SEMANTEST_HUB_LIMITS__RATE_LIMIT_PER_S", "1000000"),
        ("SEMANTEST_HUB_LIMITS__RATE_LIMIT_BURST", "1000000"),
    ];
    let (_hub, port) = spawn_hub_with(data.path(), &unlimited).await;

    // The timed client: hub.status round trips back to back until the load is done.
    let mut timed = client(port, data.path()).await;
    let mut loader = client(port, data.path()).await;
    let before = loader
        .request("project.get", json!({"project_id": big}))
        .await
        .unwrap();
    assert_eq!(before["last_seq"], LINES, "{before}");
    // Retention (which runs at start) kept every line: the delete has them all to do.
    let page = loader
        .request(
            "messages.list",
            json!({"project_id": big, "after_seq": 0, "limit": 1}),
        )
        .await
        .unwrap();
    assert_eq!(page["messages"][0]["seq"], 1, "{page}");
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let start = Instant::now();
                timed.request("hub.status", json!({})).await.unwrap();
                samples.push(start.elapsed());
            }
            samples
        })
    };

    let tasks: Vec<_> = (0..TASKS)
        .map(|i| json!({"id": format!("t{i}"), "title": format!("task {i}")}))
        .collect();
    let start = Instant::now();
    let created = loader
        .request(
            "task.create",
            json!({"project_id": tasks_project, "tasks": tasks}),
        )
        .await
        .unwrap();
    let create_time = start.elapsed();
    assert_eq!(created["created"].as_array().unwrap().len(), TASKS);
    let start = Instant::now();
    loader
        .request("project.delete", json!({"project_id": big}))
        .await
        .unwrap();
    let delete_time = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut samples = sampler.await.unwrap();

    // The delete is complete: none of the log is left.
    let listed = loader.request("project.list", json!({})).await.unwrap();
    assert!(!listed.to_string().contains(&big), "{listed}");
    drop(loader);

    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
    println!(
        "FAULTS storage: hub.status p50 {p50:?} p99 {p99:?} max {:?} over {} round trips, \
         during task.create of {TASKS} tasks ({create_time:?}) and project.delete of \
         {LINES} lines ({delete_time:?})",
        samples.last().unwrap(),
        samples.len()
    );
    // The target is a figure of the fault run (enforced with SEMANTEST_TIMING_TARGETS=1,
    // docs/reliability.md); the test command asserts the behaviour: every round trip was
    // answered while both ran.
    crate::util::timing_target(
        "storage: hub.status p99 during task.create of 10,000 and project.delete of 100,000 lines",
        &format!("p99 {p99:?} (p50 {p50:?}, {} round trips)", samples.len()),
        &format!("under {P99_TARGET:?}"),
        p99 < P99_TARGET,
    );
    assert_eq!(
        log_lines(data.path(), &big),
        0,
        "the deleted project's log is gone"
    );
}
