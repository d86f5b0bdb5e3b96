//! The coordinator end to end: tasks, workers, leases, report files and built-in agent
//! workers, through the real server on port 0 with real WebSocket clients.
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps to synchronise. The one sleep, in
//! [`report_files_complete_tasks_and_bad_ones_are_reported`], plays a slow writer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use semantest_hub::HubServer;
use semantest_hub::cli::{ClientError, HubClient};
use semantest_hub::config::{Config, Overrides, SecretStoreKind};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The longest any single event may take to arrive.
const WAIT: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Starts a hub on port 0 with a file secret store, the fake agent CLI and short report
/// debouncing; `tweak` adjusts the rest.
async fn start(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> HubServer {
    let overrides = Overrides {
        secret_store: Some(SecretStoreKind::File),
        data_dir: Some(data_dir.to_path_buf()),
        port: Some(0),
        ..Default::default()
    };
    let mut loaded = Config::load(None, &overrides).expect("test config");
    loaded.config.agent.cli_path = Some(fixture("fake-claude"));
    loaded.config.coordination.report_debounce_ms = 100;
    tweak(&mut loaded.config);
    semantest_hub::start(loaded).await.expect("hub starts")
}

/// A connected client that keeps every notification it has seen.
struct Conn {
    client: HubClient,
    log: Vec<Value>,
}

impl Conn {
    async fn open(server: &HubServer, data_dir: &Path) -> Self {
        let token =
            std::fs::read_to_string(data_dir.join("secrets/owner-token")).expect("owner token");
        let client = tokio::time::timeout(WAIT, HubClient::connect(&server.url(), token.trim()))
            .await
            .expect("connect in time")
            .expect("connect");
        Self {
            client,
            log: Vec::new(),
        }
    }

    async fn coordinator(server: &HubServer, data_dir: &Path) -> Self {
        let mut conn = Self::open(server, data_dir).await;
        conn.call(
            "hub.hello",
            json!({"role": "coordinator", "name": "coordinator"}),
        )
        .await;
        conn
    }

    async fn worker(
        server: &HubServer,
        data_dir: &Path,
        name: &str,
        capabilities: &[&str],
    ) -> (Self, String) {
        let mut conn = Self::open(server, data_dir).await;
        let registered = conn
            .call(
                "worker.register",
                json!({"name": name, "capabilities": capabilities}),
            )
            .await;
        let id = registered["worker_id"]
            .as_str()
            .expect("worker_id")
            .to_string();
        (conn, id)
    }

    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        tokio::time::timeout(WAIT, self.client.request(method, params))
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer in time"))
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .await
            .unwrap_or_else(|err| panic!("{method}: {err}"))
    }

    /// The error kind of a call that must fail.
    async fn call_err(&mut self, method: &str, params: Value) -> String {
        match self.try_call(method, params).await {
            Err(ClientError::Rpc { kind, .. }) => kind,
            other => panic!("{method}: expected an error, got {other:?}"),
        }
    }

    async fn next(&mut self) -> Value {
        let message = tokio::time::timeout(WAIT, self.client.next_notification())
            .await
            .expect("a notification in time")
            .expect("connection open");
        self.log.push(message.clone());
        message
    }

    /// The params of the next `method` notification that `pred` accepts.
    async fn wait_for(&mut self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let message = self.next().await;
            if message["method"] == method && pred(&message["params"]) {
                return message["params"].clone();
            }
        }
    }

    /// Params of every logged `method` notification.
    fn logged(&self, method: &str) -> Vec<&Value> {
        self.log
            .iter()
            .filter(|m| m["method"] == method)
            .map(|m| &m["params"])
            .collect()
    }
}

async fn create_project(conn: &mut Conn, dir: &Path) -> String {
    let project = conn.call("project.create", json!({"path": dir})).await;
    project["id"].as_str().expect("project id").to_string()
}

fn str_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// Asserts what must hold for every `coordination.status`: the counts add up.
fn check_counts(status: &Value, total: u64) {
    let n = |key: &str| {
        status[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {status}"))
    };
    assert_eq!(n("total"), total, "{status}");
    assert_eq!(
        n("completed") + n("pending") + n("running") + n("failed") + n("cancelled"),
        total,
        "counts must add up: {status}"
    );
}

/// A worker that completes every task it is given until the batch is done. Returns the
/// tasks it completed, in order.
async fn run_worker(mut conn: Conn, name: &'static str) -> Vec<String> {
    let mut done = Vec::new();
    loop {
        let message = conn.next().await;
        match message["method"].as_str() {
            Some("task.assigned") => {
                let task_id = str_of(&message["params"]["task"]["id"]).to_string();
                let answer = conn
                    .call(
                        "task.complete",
                        json!({"task_id": task_id, "report": {"summary": format!("{name} did {task_id}"),
                                                              "deliverables": []}}),
                    )
                    .await;
                if answer["duplicate"] == false {
                    done.push(task_id);
                }
            }
            Some("project.completed") => return done,
            _ => {}
        }
    }
}

#[tokio::test]
async fn two_workers_finish_twenty_tasks_in_order_exactly_once() {
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let server = start(data.path(), |_| {}).await;
    let mut events = server.hub().events();
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut coord, dir.path()).await;

    let priorities = [0, 2, 1];
    let tasks: Vec<Value> = (0..20)
        .map(|i| {
            json!({"id": format!("t{i:02}"), "title": format!("task {i}"), "type": "code",
                   "priority": priorities[i % 3], "context": "a file", "acceptance": ["it builds"]})
        })
        .collect();
    let created = coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": tasks}),
        )
        .await;
    assert_eq!(created["created"].as_array().unwrap().len(), 20);
    // The same ids again create nothing.
    let again = coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": tasks[..5]}),
        )
        .await;
    assert_eq!(again["created"], json!([]));
    assert_eq!(
        again["existing"],
        json!(["t00", "t01", "t02", "t03", "t04"])
    );

    // Higher priority first, FIFO within a priority.
    let mut expected: Vec<(i64, usize)> = (0..20).map(|i| (-priorities[i % 3], i)).collect();
    expected.sort();
    let expected: Vec<String> = expected.iter().map(|(_, i)| format!("t{i:02}")).collect();

    let (w1, w1_id) = Conn::worker(&server, data.path(), "w1", &[]).await;
    let (w2, w2_id) = Conn::worker(&server, data.path(), "w2", &["code"]).await;
    let w1 = tokio::spawn(run_worker(w1, "w1"));
    let w2 = tokio::spawn(run_worker(w2, "w2"));

    let mut started: Vec<String> = Vec::new();
    let mut completions: HashMap<String, usize> = HashMap::new();
    let mut last_completed = 0;
    loop {
        let message = coord.next().await;
        let params = &message["params"];
        match message["method"].as_str().unwrap() {
            "coordination.status" if params["project_id"] == project_id.as_str() => {
                check_counts(params, 20);
                let completed = params["completed"].as_u64().unwrap();
                assert!(
                    completed >= last_completed,
                    "completed went backwards: {params}"
                );
                last_completed = completed;
                let working: Vec<&str> = params["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|w| w["status"] == "working")
                    .map(|w| str_of(&w["task_id"]))
                    .collect();
                assert_eq!(
                    params["running"].as_u64().unwrap(),
                    working.len() as u64,
                    "{params}"
                );
                // Tasks appear on workers in queue order.
                let new: BTreeSet<&str> = working
                    .into_iter()
                    .filter(|t| !started.iter().any(|s| s == t))
                    .collect();
                let next: BTreeSet<&str> = expected[started.len()..started.len() + new.len()]
                    .iter()
                    .map(String::as_str)
                    .collect();
                assert_eq!(new, next, "assignment order");
                started.extend(
                    expected[started.len()..started.len() + new.len()]
                        .iter()
                        .cloned(),
                );
            }
            "task.completed" => {
                let worker = str_of(&params["worker"]);
                assert!(worker == w1_id || worker == w2_id, "{params}");
                assert_eq!(params["source"], "worker");
                *completions
                    .entry(str_of(&params["task_id"]).to_string())
                    .or_default() += 1;
            }
            "project.completed" => {
                assert_eq!(params["project_id"], project_id.as_str());
                assert_eq!(
                    (params["total"].as_u64(), params["completed"].as_u64()),
                    (Some(20), Some(20))
                );
                break;
            }
            _ => {}
        }
    }
    assert_eq!(started, expected, "every task was assigned, in order");
    // Observers hear of each task when it is queued and when a worker takes it.
    let created: Vec<&Value> = coord
        .logged("task.created")
        .into_iter()
        .flat_map(|p| p["tasks"].as_array().unwrap())
        .collect();
    assert_eq!(created.len(), 20, "the repeated create announced nothing");
    let started_pushes: Vec<&str> = coord
        .logged("task.started")
        .iter()
        .map(|p| str_of(&p["task_id"]))
        .collect();
    assert_eq!(started_pushes, expected, "task.started in assignment order");
    // The desktop app's notification hook hears of the finished batch too.
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the event channel is open");
    let semantest_hub::hub::HubEvent::BatchFinished {
        project_id: finished,
        message,
        ..
    } = event
    else {
        panic!("expected the finished batch, got {event:?}");
    };
    assert_eq!(finished, project_id);
    assert!(message.contains("20 completed"), "{message}");
    assert_eq!(completions.len(), 20);
    assert!(
        completions.values().all(|&n| n == 1),
        "each completed exactly once: {completions:?}"
    );
    let (done1, done2) = (w1.await.unwrap(), w2.await.unwrap());
    assert_eq!(done1.len() + done2.len(), 20);
    let all: HashSet<&String> = done1.iter().chain(&done2).collect();
    assert_eq!(all.len(), 20, "no task was done twice");
    assert!(
        !done1.is_empty() && !done2.is_empty(),
        "both workers took part"
    );

    let list = coord
        .call(
            "task.list",
            json!({"project_id": project_id, "state": "completed"}),
        )
        .await;
    let listed = list["tasks"].as_array().unwrap();
    assert_eq!(listed.len(), 20);
    assert!(
        listed
            .iter()
            .all(|t| t["attempts"] == 0 && t["completed_by"] == "worker")
    );
    let status = coord
        .call("coordination.status", json!({"project_id": project_id}))
        .await;
    check_counts(&status, 20);
    assert_eq!(status["completed"], 20);
    server.shutdown().await;
}

#[tokio::test]
async fn a_killed_worker_s_task_is_reassigned_and_completes_once() {
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let server = start(data.path(), |_| {}).await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut coord, dir.path()).await;
    coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": "k1", "title": "one"}, {"id": "k2", "title": "two"}]}),
        )
        .await;

    let (mut a, a_id) = Conn::worker(&server, data.path(), "a", &[]).await;
    let assigned = a.wait_for("task.assigned", |_| true).await;
    assert_eq!(assigned["task"]["id"], "k1");
    let (mut b, b_id) = Conn::worker(&server, data.path(), "b", &[]).await;
    assert_eq!(
        b.wait_for("task.assigned", |_| true).await["task"]["id"],
        "k2"
    );

    drop(a); // the worker dies mid-task
    let requeued = coord
        .wait_for("task.requeued", |p| p["task_id"] == "k1")
        .await;
    assert_eq!(requeued["reason"], "worker disconnected");
    assert_eq!(requeued["worker"], a_id.as_str());
    coord
        .wait_for("worker.status", |p| {
            p["id"] == a_id.as_str() && p["status"] == "offline"
        })
        .await;

    b.call(
        "task.complete",
        json!({"task_id": "k2", "report": {"summary": "ok"}}),
    )
    .await;
    let again = b.wait_for("task.assigned", |_| true).await;
    assert_eq!(again["task"]["id"], "k1");
    assert_eq!(again["task"]["attempts"], 1);
    let answer = b
        .call(
            "task.complete",
            json!({"task_id": "k1", "report": {"summary": "ok"}}),
        )
        .await;
    assert_eq!(answer["duplicate"], false);

    coord
        .wait_for("project.completed", |p| {
            p["project_id"] == project_id.as_str()
        })
        .await;
    let completions = coord.logged("task.completed");
    assert_eq!(
        completions.iter().filter(|p| p["task_id"] == "k1").count(),
        1
    );
    assert_eq!(
        completions.iter().filter(|p| p["task_id"] == "k2").count(),
        1
    );
    let task = coord.call("task.get", json!({"task_id": "k1"})).await;
    assert_eq!(task["state"], "completed");
    assert_eq!(task["worker_id"], b_id.as_str());
    assert_eq!(task["failures"][0]["worker_id"], a_id.as_str());
    assert_eq!(task["failures"][0]["reason"], "worker disconnected");
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_lease_requeues_and_late_or_foreign_completions_are_handled() {
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    // Two seconds: short to wait for, long enough for `b` to keep its own lease on a
    // loaded machine.
    let server = start(data.path(), |config| config.coordination.lease_s = 2).await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut coord, dir.path()).await;
    coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": "l1", "title": "lease"}]}),
        )
        .await;

    let (mut a, a_id) = Conn::worker(&server, data.path(), "silent", &[]).await;
    assert_eq!(a.wait_for("task.assigned", |_| true).await["lease_s"], 2);
    let (mut b, b_id) = Conn::worker(&server, data.path(), "steady", &[]).await;
    // `a` sends nothing: its lease expires and the task moves to `b`.
    assert_eq!(
        b.wait_for("task.assigned", |_| true).await["task"]["id"],
        "l1"
    );
    let heartbeat = b.call("worker.heartbeat", json!({})).await;
    assert_eq!(heartbeat["status"], "working");
    let revoked = a.wait_for("task.revoked", |_| true).await;
    assert_eq!(revoked["task_id"], "l1");
    assert!(
        str_of(&revoked["reason"]).contains("lease expired"),
        "{revoked}"
    );

    // A completion from a worker the task is not assigned to is refused.
    let refused = a
        .call_err("task.complete", json!({"task_id": "l1", "report": {}}))
        .await;
    assert_eq!(refused, "NOT_ASSIGNED");
    let heartbeat = b.call("worker.heartbeat", json!({})).await;
    assert_eq!(
        (
            heartbeat["worker_id"].as_str(),
            heartbeat["task_id"].as_str()
        ),
        (Some(b_id.as_str()), Some("l1"))
    );
    let done = b
        .call(
            "task.complete",
            json!({"task_id": "l1", "report": {"summary": "ok"}}),
        )
        .await;
    assert_eq!(done["duplicate"], false);
    // A second completion, from anyone, changes nothing.
    let dup = b
        .call(
            "task.complete",
            json!({"task_id": "l1", "report": {"summary": "again"}}),
        )
        .await;
    assert_eq!(
        (dup["duplicate"].as_bool(), dup["state"].as_str()),
        (Some(true), Some("completed"))
    );
    let late = a
        .call("task.complete", json!({"task_id": "l1", "report": {}}))
        .await;
    assert_eq!(late["duplicate"], true);

    coord.wait_for("project.completed", |_| true).await;
    assert_eq!(coord.logged("task.completed").len(), 1);
    let task = coord.call("task.get", json!({"task_id": "l1"})).await;
    assert_eq!(task["report"]["summary"], "ok");
    assert_eq!(task["failures"][0]["worker_id"], a_id.as_str());
    assert!(str_of(&task["failures"][0]["reason"]).contains("lease expired"));
    server.shutdown().await;
}

#[tokio::test]
async fn attempts_run_out_cancel_revokes_and_capabilities_route() {
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let server = start(data.path(), |config| config.coordination.max_attempts = 2).await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut coord, dir.path()).await;
    coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": [
                {"id": "review-1", "title": "review", "type": "review"},
                {"id": "code-1", "title": "code", "type": "code"},
            ]}),
        )
        .await;

    // A coder skips the review task queued before its code task.
    let (mut coder, _) = Conn::worker(&server, data.path(), "coder", &["code"]).await;
    assert_eq!(
        coder.wait_for("task.assigned", |_| true).await["task"]["id"],
        "code-1"
    );
    // Failing twice uses up both attempts; every reason is kept.
    let first = coder
        .call(
            "task.fail",
            json!({"task_id": "code-1", "reason": "boom 1"}),
        )
        .await;
    assert_eq!(first["state"], "pending");
    assert_eq!(
        coder.wait_for("task.assigned", |_| true).await["task"]["id"],
        "code-1"
    );
    let second = coder
        .call(
            "task.fail",
            json!({"task_id": "code-1", "reason": "boom 2"}),
        )
        .await;
    assert_eq!(second["state"], "failed");
    let failed = coord
        .wait_for("task.failed", |p| p["task_id"] == "code-1")
        .await;
    let reasons: Vec<&str> = failed["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| str_of(&f["reason"]))
        .collect();
    assert_eq!(reasons, ["boom 1", "boom 2"]);

    // Cancelling a running task revokes it from its worker.
    let (mut any, _) = Conn::worker(&server, data.path(), "any", &[]).await;
    assert_eq!(
        any.wait_for("task.assigned", |_| true).await["task"]["id"],
        "review-1"
    );
    let cancelled = coord
        .call("task.cancel", json!({"task_id": "review-1"}))
        .await;
    assert_eq!(cancelled["cancelled"], true);
    let revoked = any.wait_for("task.revoked", |_| true).await;
    assert_eq!(
        (revoked["task_id"].as_str(), revoked["reason"].as_str()),
        (Some("review-1"), Some("cancelled"))
    );
    let done = coord.wait_for("project.completed", |_| true).await;
    assert_eq!(
        (done["failed"].as_u64(), done["cancelled"].as_u64()),
        (Some(1), Some(1))
    );
    let again = coord
        .call("task.cancel", json!({"task_id": "review-1"}))
        .await;
    assert_eq!(
        (again["cancelled"].as_bool(), again["state"].as_str()),
        (Some(false), Some("cancelled"))
    );
    let late = any
        .call(
            "task.complete",
            json!({"task_id": "review-1", "report": {}}),
        )
        .await;
    assert_eq!(late["duplicate"], true);

    assert_eq!(
        coord.call_err("task.get", json!({"task_id": "nope"})).await,
        "TASK_NOT_FOUND"
    );
    assert_eq!(
        coord
            .call_err("task.complete", json!({"task_id": "code-1"}))
            .await,
        "NOT_A_WORKER"
    );
    let bad_id = coord
        .call_err(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": "../x", "title": "t"}]}),
        )
        .await;
    assert_eq!(bad_id, "INVALID_PARAMS");
    // A task id belongs to one project.
    let other_dir = TempDir::new().unwrap();
    let other = create_project(&mut coord, other_dir.path()).await;
    let taken = coord
        .call_err(
            "task.create",
            json!({"project_id": other, "tasks": [{"id": "code-1", "title": "t"}]}),
        )
        .await;
    assert_eq!(taken, "TASK_EXISTS");
    server.shutdown().await;
}

#[tokio::test]
async fn a_batch_resumes_after_a_hub_restart() {
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let server = start(data.path(), |_| {}).await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut coord, dir.path()).await;
    let tasks: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("r{i}"), "title": format!("r{i}")}))
        .collect();
    coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": tasks}),
        )
        .await;

    let (mut worker, _) = Conn::worker(&server, data.path(), "before", &[]).await;
    for i in 0..4 {
        let assigned = worker.wait_for("task.assigned", |_| true).await;
        assert_eq!(assigned["task"]["id"], format!("r{i}"));
        worker
            .call(
                "task.complete",
                json!({"task_id": format!("r{i}"), "report": {"summary": "before"}}),
            )
            .await;
    }
    // The worker holds r4 when the hub stops.
    assert_eq!(
        worker.wait_for("task.assigned", |_| true).await["task"]["id"],
        "r4"
    );
    server.shutdown().await;
    drop((worker, coord));

    // A report written while the hub is down.
    std::fs::create_dir(dir.path().join("reports")).unwrap();
    std::fs::write(
        dir.path().join("reports/r5.json"),
        r#"{"status": "completed", "summary": "written offline", "deliverables": []}"#,
    )
    .unwrap();

    let server = start(data.path(), |_| {}).await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let held = coord.call("task.get", json!({"task_id": "r4"})).await;
    assert_eq!(held["state"], "pending");
    assert_eq!(held["attempts"], 0, "a restart costs no attempt");
    if coord.call("task.get", json!({"task_id": "r5"})).await["state"] != "completed" {
        coord
            .wait_for("task.completed", |p| p["task_id"] == "r5")
            .await;
    }
    let r5 = coord.call("task.get", json!({"task_id": "r5"})).await;
    assert_eq!(
        (
            r5["completed_by"].as_str(),
            r5["report"]["summary"].as_str()
        ),
        (Some("report"), Some("written offline"))
    );
    let status = coord
        .call("coordination.status", json!({"project_id": project_id}))
        .await;
    check_counts(&status, 10);
    assert_eq!(
        (status["completed"].as_u64(), status["pending"].as_u64()),
        (Some(5), Some(5))
    );

    let (worker, _) = Conn::worker(&server, data.path(), "after", &[]).await;
    let worker = tokio::spawn(run_worker(worker, "after"));
    let done = coord.wait_for("project.completed", |_| true).await;
    assert_eq!(done["completed"], 10);
    let mut after = worker.await.unwrap();
    after.sort();
    assert_eq!(after, ["r4", "r6", "r7", "r8", "r9"]);
    // Only the unfinished tasks complete after the restart (r5, by its report, possibly
    // before this coordinator connected).
    let mut completions: Vec<&str> = coord
        .logged("task.completed")
        .iter()
        .map(|p| str_of(&p["task_id"]))
        .filter(|id| *id != "r5")
        .collect();
    completions.sort();
    assert_eq!(completions, ["r4", "r6", "r7", "r8", "r9"]);
    assert!(
        coord
            .logged("task.completed")
            .iter()
            .filter(|p| p["task_id"] == "r5")
            .count()
            <= 1
    );
    server.shutdown().await;
}

#[tokio::test]
async fn report_files_complete_tasks_and_bad_ones_are_reported() {
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let debounce_ms = 400;
    let server = start(data.path(), |config| {
        config.coordination.report_debounce_ms = debounce_ms
    })
    .await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut coord, dir.path()).await;
    let tasks: Vec<Value> = ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|id| json!({"id": id, "title": id}))
        .collect();
    coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": tasks}),
        )
        .await;
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let write = |name: &str, text: &str| {
        let tmp = reports.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, reports.join(name)).unwrap();
    };

    // An external process drops a report: its task completes.
    write(
        "r1.json",
        r#"{"task_id": "r1", "status": "completed", "summary": "external", "deliverables": ["a.txt"], "score": 0.8}"#,
    );
    let completed = coord
        .wait_for("task.completed", |p| p["task_id"] == "r1")
        .await;
    assert_eq!(
        (completed["source"].as_str(), completed["worker"].as_str()),
        (Some("report"), None)
    );
    assert_eq!(completed["report"]["deliverables"], json!(["a.txt"]));

    // An invalid report leaves the task in place and says why.
    write("r2.json", r#"{"status": "done", "summary": "?"}"#);
    let invalid = coord
        .wait_for("task.report_invalid", |p| p["task_id"] == "r2")
        .await;
    assert!(
        str_of(&invalid["reason"]).contains("unknown variant"),
        "{invalid}"
    );
    assert!(str_of(&invalid["path"]).ends_with("reports/r2.json"));
    assert_eq!(
        coord.call("task.get", json!({"task_id": "r2"})).await["state"],
        "pending"
    );
    write("r2.json", r#"{"status": "completed", "summary": "fixed"}"#);
    coord
        .wait_for("task.completed", |p| p["task_id"] == "r2")
        .await;

    // A report for an unknown task is reported and not acted on.
    write("ghost.json", r#"{"status": "completed", "summary": "?"}"#);
    let unknown = coord.wait_for("task.report_unknown", |_| true).await;
    assert_eq!(unknown["task_id"], "ghost");
    assert_eq!(
        coord
            .call_err("task.get", json!({"task_id": "ghost"}))
            .await,
        "TASK_NOT_FOUND"
    );

    // A slow writer: half a file, a pause longer than the debounce, then the rest. The
    // half file is read and retried, never reported invalid.
    let half = r#"{"status": "completed", "summ"#;
    std::fs::write(reports.join("r3.json"), half).unwrap();
    tokio::time::sleep(Duration::from_millis(debounce_ms * 5 / 4)).await;
    std::fs::write(reports.join("r3.json"), format!("{half}ary\": \"slow\"}}")).unwrap();
    let slow = coord
        .wait_for("task.completed", |p| p["task_id"] == "r3")
        .await;
    assert_eq!(slow["report"]["summary"], "slow");

    // A second report for a finished task is a duplicate: r1 changes nothing, and r4,
    // written after it, completes.
    write(
        "r1.json",
        r#"{"status": "failed", "summary": "second thoughts"}"#,
    );
    write("r4.json", r#"{"status": "completed", "summary": "last"}"#);
    coord.wait_for("project.completed", |_| true).await;
    let completions: Vec<&str> = coord
        .logged("task.completed")
        .iter()
        .map(|p| str_of(&p["task_id"]))
        .collect();
    assert_eq!(completions, ["r1", "r2", "r3", "r4"]);
    assert!(
        coord
            .logged("task.report_invalid")
            .iter()
            .all(|p| p["task_id"] == "r2")
    );
    assert!(coord.logged("task.requeued").is_empty());
    let r1 = coord.call("task.get", json!({"task_id": "r1"})).await;
    assert_eq!(
        (r1["state"].as_str(), r1["report"]["summary"].as_str()),
        (Some("completed"), Some("external"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn built_in_agent_workers_finish_a_batch() {
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    // The hanging run (a4) ends by timeout after its report completed its task.
    let server = start(data.path(), |config| config.agent.timeout_s = 3).await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut coord, dir.path()).await;
    let tasks = json!([
        {"id": "a1", "title": "plain one"},
        {"id": "a2", "title": "writes a report", "context": "[fake:report]"},
        {"id": "a3", "title": "fails once", "prompt": "[fake:fail-once] try hard"},
        {"id": "a4", "title": "reports then hangs", "context": "[fake:report-hang]"},
        {"id": "a5", "title": "plain two", "acceptance": ["done"]},
    ]);
    coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": tasks}),
        )
        .await;
    let configured = coord
        .call(
            "project.configure",
            json!({"project_id": project_id, "agent_workers": 2}),
        )
        .await;
    let agents: Vec<String> = configured["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| str_of(&w["id"]).to_string())
        .collect();
    assert_eq!(agents.len(), 2);

    // The project's own interactive run is not blocked by the batch.
    let run = coord
        .call(
            "agent.run",
            json!({"project_id": project_id, "prompt": "success"}),
        )
        .await;
    assert!(run["run_id"].is_string());

    let mut most_working = 0;
    let mut completions: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        let message = coord.next().await;
        let params = &message["params"];
        match message["method"].as_str().unwrap() {
            "coordination.status" => {
                check_counts(params, 5);
                let working = params["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|w| w["kind"] == "agent" && w["status"] == "working")
                    .count();
                most_working = most_working.max(working);
            }
            "task.completed" => completions
                .entry(str_of(&params["task_id"]).to_string())
                .or_default()
                .push(str_of(&params["source"]).to_string()),
            "project.completed" => {
                assert_eq!(
                    (params["completed"].as_u64(), params["failed"].as_u64()),
                    (Some(5), Some(0))
                );
                break;
            }
            _ => {}
        }
    }
    assert_eq!(most_working, 2, "two task runs went at once");
    assert_eq!(completions.len(), 5);
    assert!(
        completions.values().all(|sources| sources.len() == 1),
        "{completions:?}"
    );
    assert_eq!(completions["a1"], ["agent"]);
    assert_eq!(completions["a4"], ["report"]);
    let a3 = coord.call("task.get", json!({"task_id": "a3"})).await;
    assert_eq!(a3["attempts"], 1);
    assert!(
        str_of(&a3["failures"][0]["reason"]).contains("fake failure"),
        "{a3}"
    );
    let a1 = coord.call("task.get", json!({"task_id": "a1"})).await;
    assert_eq!(a1["report"]["summary"], "fake agent did a1");
    assert!(a1["report"]["run_id"].is_string());

    // a4's run times out later; its end is a duplicate and frees its worker.
    loop {
        let status = coord
            .call("coordination.status", json!({"project_id": project_id}))
            .await;
        if status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "idle")
        {
            break;
        }
        coord.wait_for("worker.status", |_| true).await;
    }
    assert_eq!(coord.logged("task.completed").len(), 5);
    let a4 = coord.call("task.get", json!({"task_id": "a4"})).await;
    assert_eq!(
        (a4["state"].as_str(), a4["attempts"].as_u64()),
        (Some("completed"), Some(0))
    );
    let project = coord
        .call("project.get", json!({"project_id": project_id}))
        .await;
    assert_ne!(
        project["state"], "failed",
        "task runs leave the project's state alone: {project}"
    );
    assert!(dir.path().join("reports/a2.json").exists());
    server.shutdown().await;
}

/// The reports watcher stops its debouncer with the last project and starts it again
/// with the next one: a report in a project registered after that still completes its
/// task.
#[tokio::test]
async fn reports_are_watched_again_after_the_last_project_was_deleted() {
    let data = TempDir::new().unwrap();
    let (first, second) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let server = start(data.path(), |config| {
        config.coordination.report_debounce_ms = 100
    })
    .await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let gone = create_project(&mut coord, first.path()).await;
    coord
        .call("project.delete", json!({"project_id": gone}))
        .await;

    let project_id = create_project(&mut coord, second.path()).await;
    coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": "w1", "title": "one"}]}),
        )
        .await;
    // Written after the project's first scan, so only the watcher can see it.
    let reports = second.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    std::fs::write(
        reports.join("w1.json.tmp"),
        r#"{"status": "completed", "summary": "seen"}"#,
    )
    .unwrap();
    std::fs::rename(reports.join("w1.json.tmp"), reports.join("w1.json")).unwrap();
    let completed = coord
        .wait_for("task.completed", |p| p["task_id"] == "w1")
        .await;
    assert_eq!(completed["source"], "report");
    server.shutdown().await;
}

/// `project.configure` stores `agent_workers` and applies it in one step under the
/// coordinator's lock: however two connections race, the count a restart reads from
/// the store is the one that was in force.
#[tokio::test]
async fn concurrent_configures_leave_the_stored_agent_workers_in_force() {
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let server = start(data.path(), |_| {}).await;
    let mut first = Conn::coordinator(&server, data.path()).await;
    let mut second = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut first, dir.path()).await;
    let configure = |count: u32| json!({"project_id": project_id, "agent_workers": count});
    for round in 0..20 {
        let (a, b) = tokio::join!(
            first.call("project.configure", configure(1)),
            second.call("project.configure", configure(2)),
        );
        assert_eq!(
            (a["agent_workers"].as_u64(), b["agent_workers"].as_u64()),
            (Some(1), Some(2)),
            "round {round}"
        );
    }
    let status = first
        .call("coordination.status", json!({"project_id": project_id}))
        .await;
    let live = status["agent_workers"].as_u64().expect("agent_workers");
    drop((first, second));
    server.shutdown().await;

    let server = start(data.path(), |_| {}).await;
    let mut conn = Conn::coordinator(&server, data.path()).await;
    let status = conn
        .call("coordination.status", json!({"project_id": project_id}))
        .await;
    assert_eq!(status["agent_workers"].as_u64(), Some(live));
    server.shutdown().await;
}

/// Many workers completing at once share group commits: the coordinator queues each
/// transition's writes in order and awaits the commit outside its lock, so the writes of
/// concurrent completions (each one a completion and the next assignment) go into the
/// same commits. Counted with the store's own commit counter, not with timings: every
/// completion and assignment committed alone would make at least two commits per task.
#[tokio::test]
async fn concurrent_completions_share_group_commits() {
    const WORKERS: usize = 40;
    const TASKS: usize = 800;
    let (data, dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let server = start(data.path(), |_| {}).await;
    let mut coord = Conn::coordinator(&server, data.path()).await;
    let project_id = create_project(&mut coord, dir.path()).await;
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let (worker, _) = Conn::worker(&server, data.path(), &format!("w{i}"), &[]).await;
        workers.push(worker);
    }
    let tasks: Vec<Value> = (0..TASKS)
        .map(|i| json!({"id": format!("c{i:04}"), "title": format!("task {i}")}))
        .collect();
    let before = server.hub().store().commits();
    coord
        .call(
            "task.create",
            json!({"project_id": project_id, "tasks": tasks}),
        )
        .await;
    let runs: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, w)| tokio::spawn(run_worker(w, if i % 2 == 0 { "even" } else { "odd" })))
        .collect();
    let done = coord.wait_for("project.completed", |_| true).await;
    assert_eq!(done["completed"], TASKS as u64, "{done}");
    let mut completed = HashSet::new();
    for run in runs {
        for task_id in run.await.unwrap() {
            assert!(
                completed.insert(task_id.clone()),
                "{task_id} completed twice"
            );
        }
    }
    assert_eq!(completed.len(), TASKS, "every completion acknowledged once");
    let commits = server.hub().store().commits() - before;
    // Each task is written twice (assigned, completed): 1,600 commits if every write
    // committed alone, 800 if each completion committed alone with the next assignment.
    // Shared commits make at most half that.
    println!("COORDINATION group commit: {TASKS} tasks, {WORKERS} workers, {commits} commits");
    assert!(
        commits <= TASKS as u64 / 2,
        "{commits} commits for {TASKS} completions: concurrent completions do not share commits"
    );
    let status = coord
        .call("coordination.status", json!({"project_id": project_id}))
        .await;
    check_counts(&status, TASKS as u64);
    assert_eq!(status["completed"], TASKS as u64);
    // What was acknowledged is stored.
    let stored = coord
        .call(
            "task.list",
            json!({"project_id": project_id, "state": "completed", "limit": 10000}),
        )
        .await;
    assert_eq!(stored["tasks"].as_array().unwrap().len(), TASKS);
}
