//! Faults, with nothing lost: SIGKILL under a mixed load, a client that stops reading, a
//! connection flood, a full disk, and killing an agent run under load.
//!
//! The figures these tests print (`FAULTS ...` lines, run with `--nocapture`) are quoted
//! in docs/reliability.md. Random choices come from a seeded generator whose seed is
//! printed; `SEMANTEST_FAULTS_SEED=<seed>` replays a run.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semantest_hub::cli::{ClientError, HubClient};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::util::{WAIT, metric, spawn_hub};

/// How many times the SIGKILL test kills the hub.
const KILLS: usize = 50;

/// The seed for this run: `SEMANTEST_FAULTS_SEED` if set, else the clock. Printed so a
/// failure can be replayed.
pub(crate) fn seed() -> u64 {
    let seed = std::env::var("SEMANTEST_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("FAULTS seed {seed} (replay with SEMANTEST_FAULTS_SEED={seed})");
    seed
}

/// `PRAGMA integrity_check` of the hub's store in `data_dir` (the hub must not run).
pub(crate) fn assert_store_intact(data_dir: &Path) {
    let db = rusqlite::Connection::open(data_dir.join("hub.sqlite3")).unwrap();
    let verdict: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(verdict, "ok", "integrity_check");
}

/// A client of a hub process, with its owner token; `None` if the hub is gone.
pub(crate) async fn open(port: u16, data_dir: &Path) -> Option<HubClient> {
    let token = std::fs::read_to_string(data_dir.join("secrets/owner-token")).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    tokio::time::timeout(WAIT, HubClient::connect(&url, token.trim()))
        .await
        .expect("connect in time")
        .ok()
}

/// What the clients know was written: only writes whose reply arrived are recorded.
#[derive(Default)]
pub(crate) struct Ledger {
    /// Project id → `true` created (acknowledged), `false` deleted (acknowledged), absent
    /// from the map while a delete is unanswered.
    pub(crate) projects: BTreeMap<String, bool>,
    /// Output lines pushed to a subscriber since the last check, by seq (a line is pushed
    /// only after it is committed, so each is acknowledged).
    pub(crate) lines: BTreeMap<u64, Value>,
    /// Task id → whether its completion was acknowledged (`duplicate: false`).
    pub(crate) tasks: BTreeMap<String, bool>,
    /// Acknowledged first completions per task; more than one is a violation.
    pub(crate) completions: HashMap<String, u32>,
    /// Broken promises seen by the load (checked after each cycle).
    pub(crate) violations: Vec<String>,
    /// Events delivered to the subscriber.
    pub(crate) events: u64,
}

pub(crate) type Shared = Arc<Mutex<Ledger>>;

/// Creates projects and deletes the oldest live one, paced, until the hub dies.
pub(crate) async fn project_churn(
    mut client: HubClient,
    ledger: Shared,
    dirs: Arc<Mutex<Vec<TempDir>>>,
) {
    loop {
        let dir = TempDir::new().unwrap();
        let Ok(project) = client
            .request("project.create", json!({"path": dir.path()}))
            .await
        else {
            return;
        };
        dirs.lock().unwrap().push(dir);
        let id = project["id"].as_str().unwrap().to_string();
        let oldest = {
            let mut ledger = ledger.lock().unwrap();
            ledger.projects.insert(id, true);
            // Only this churn's own projects, oldest first (ids are UUID v7).
            let live: Vec<String> = ledger
                .projects
                .iter()
                .filter(|(_, live)| **live)
                .map(|(id, _)| id.clone())
                .collect();
            (live.len() > 4).then(|| live[0].clone())
        };
        if let Some(oldest) = oldest {
            // Unknown until answered: either outcome is allowed after a crash.
            ledger.lock().unwrap().projects.remove(&oldest);
            match client
                .request("project.delete", json!({"project_id": oldest}))
                .await
            {
                Ok(_) => {
                    ledger.lock().unwrap().projects.insert(oldest, false);
                }
                Err(ClientError::Rpc { kind, .. }) => {
                    let mut ledger = ledger.lock().unwrap();
                    ledger.violations.push(format!("project.delete: {kind}"));
                }
                Err(_) => return,
            }
        }
        // Pacing, so the other loads get the machine too.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Runs the fake agent flat out on `project_id` and records each line pushed.
pub(crate) async fn agent_output(mut client: HubClient, project_id: String, ledger: Shared) {
    if client
        .request("project.subscribe", json!({"project_id": project_id}))
        .await
        .is_err()
    {
        return;
    }
    match client
        .request(
            "agent.run",
            json!({"project_id": project_id, "prompt": "lines 20000"}),
        )
        .await
    {
        Ok(_) => {}
        Err(ClientError::Rpc { kind, .. }) => {
            ledger
                .lock()
                .unwrap()
                .violations
                .push(format!("agent.run after a restart: {kind}"));
            return;
        }
        Err(_) => return,
    }
    while let Ok(message) = client.next_notification().await {
        if message["method"] == "project.output" {
            let line = message["params"].clone();
            let seq = line["seq"].as_u64().unwrap();
            ledger.lock().unwrap().lines.insert(seq, line);
        }
    }
}

/// A coordinator creating batches of tasks, paced, until the hub dies.
pub(crate) async fn task_churn(
    mut client: HubClient,
    project_id: String,
    cycle: usize,
    ledger: Shared,
) {
    if client
        .request(
            "hub.hello",
            json!({"role": "coordinator", "name": "coordinator"}),
        )
        .await
        .is_err()
    {
        return;
    }
    for batch in 0.. {
        let ids: Vec<String> = (0..3).map(|i| format!("c{cycle}-b{batch}-{i}")).collect();
        let tasks: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "title": format!("task {id}"), "type": "code"}))
            .collect();
        match client
            .request(
                "task.create",
                json!({"project_id": project_id, "tasks": tasks}),
            )
            .await
        {
            Ok(created) => {
                let mut ledger = ledger.lock().unwrap();
                for id in created["created"].as_array().unwrap() {
                    ledger
                        .tasks
                        .entry(id.as_str().unwrap().to_string())
                        .or_insert(false);
                }
            }
            Err(ClientError::Rpc { kind, .. }) => {
                let mut ledger = ledger.lock().unwrap();
                ledger.violations.push(format!("task.create: {kind}"));
            }
            Err(_) => return,
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// A worker completing every task it is given, until the hub dies.
pub(crate) async fn worker(mut client: HubClient, ledger: Shared) {
    if client
        .request(
            "worker.register",
            json!({"name": "soak-worker", "capabilities": ["code"]}),
        )
        .await
        .is_err()
    {
        return;
    }
    while let Ok(message) = client.next_notification().await {
        if message["method"] != "task.assigned" {
            continue;
        }
        let task_id = message["params"]["task"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        if ledger.lock().unwrap().tasks.get(&task_id) == Some(&true) {
            let mut ledger = ledger.lock().unwrap();
            ledger
                .violations
                .push(format!("{task_id} assigned again after its completion"));
        }
        let answer = client
            .request(
                "task.complete",
                json!({"task_id": task_id, "report": {"summary": "done", "deliverables": []}}),
            )
            .await;
        match answer {
            Ok(answer) if answer["duplicate"] == false => {
                let mut ledger = ledger.lock().unwrap();
                ledger.tasks.insert(task_id.clone(), true);
                let n = ledger.completions.entry(task_id.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    ledger.violations.push(format!("{task_id} completed twice"));
                }
            }
            Ok(_) | Err(ClientError::Rpc { .. }) => {}
            Err(_) => return,
        }
    }
}

/// Publishes events to a subscriber flat out (paced lightly), counting deliveries.
pub(crate) async fn events(mut publisher: HubClient, mut subscriber: HubClient, ledger: Shared) {
    if subscriber
        .request("event.subscribe", json!({"types": ["load.*"]}))
        .await
        .is_err()
    {
        return;
    }
    let reader = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            while let Ok(message) = subscriber.next_notification().await {
                if message["method"] == "event" {
                    ledger.lock().unwrap().events += 1;
                }
            }
        })
    };
    for n in 0u64.. {
        if publisher
            .request(
                "event.publish",
                json!({"type": "load.tick", "payload": {"n": n}}),
            )
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = tokio::time::timeout(WAIT, reader).await;
}

/// Counts of what one check looked at.
#[derive(Default, Debug)]
struct Checked {
    writes: usize,
    lines: usize,
    projects: usize,
    tasks: usize,
}

/// After a restart: every acknowledged write is there.
async fn check(client: &mut HubClient, ids: (&str, &str), ledger: &Shared, checked: &mut Checked) {
    let (output_project, task_project) = ids;
    let (projects, lines, tasks) = {
        let mut ledger = ledger.lock().unwrap();
        let violations = std::mem::take(&mut ledger.violations);
        assert!(violations.is_empty(), "{violations:?}");
        (
            ledger.projects.clone(),
            std::mem::take(&mut ledger.lines),
            ledger.tasks.clone(),
        )
    };

    let listed = client.request("project.list", json!({})).await.unwrap();
    let listed: Vec<&str> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for (id, live) in &projects {
        assert_eq!(
            listed.contains(&id.as_str()),
            *live,
            "project {id}: acknowledged {}",
            if *live { "created" } else { "deleted" }
        );
    }
    checked.projects += projects.len();
    if let (Some(first), Some(last)) = (lines.keys().next(), lines.keys().last()) {
        let mut stored = BTreeMap::new();
        let mut after = first - 1;
        while after < *last {
            let page = client
                .request(
                    "messages.list",
                    json!({"project_id": output_project, "after_seq": after, "limit": 1000}),
                )
                .await
                .unwrap();
            let page = page["messages"].as_array().unwrap();
            assert!(!page.is_empty(), "lines after {after} are missing");
            for line in page {
                after = line["seq"].as_u64().unwrap();
                stored.insert(after, line.clone());
            }
        }
        for (seq, line) in &lines {
            assert_eq!(stored.get(seq), Some(line), "acknowledged line {seq}");
        }
        let seqs: Vec<u64> = stored.range(first..=last).map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (*first..=*last).collect::<Vec<_>>(),
            "the log has no holes"
        );
        checked.lines += lines.len();
    }

    let listed = client
        .request(
            "task.list",
            json!({"project_id": task_project, "limit": 10000}),
        )
        .await
        .unwrap();
    assert_eq!(listed["has_more"], false);
    let states: HashMap<&str, &str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    for (id, completed) in &tasks {
        let state = states.get(id.as_str()).copied();
        assert!(state.is_some(), "acknowledged task {id} is lost");
        if *completed {
            assert_eq!(state, Some("completed"), "task {id} was acknowledged done");
        }
    }
    checked.tasks += tasks.len();
    checked.writes += projects.len() + lines.len() + tasks.len();
}

#[tokio::test]
async fn fifty_sigkills_under_mixed_load_lose_no_acknowledged_write() {
    let mut rng = fastrand::Rng::with_seed(seed());
    let started = Instant::now();
    let data = TempDir::new().unwrap();
    let ledger: Shared = Arc::default();
    let dirs: Arc<Mutex<Vec<TempDir>>> = Arc::default();
    let (output_dir, task_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut ids: Option<(String, String)> = None;
    let mut checked = Checked::default();
    let mut kill_points = Vec::new();

    for cycle in 0..=KILLS {
        let (mut hub, port) = spawn_hub(data.path()).await;
        let mut client = open(port, data.path()).await.expect("the restarted hub");
        let (output_project, task_project) = match &ids {
            Some(ids) => ids.clone(),
            None => {
                let mut create = async |dir: &TempDir| {
                    let project = client
                        .request("project.create", json!({"path": dir.path()}))
                        .await
                        .unwrap();
                    project["id"].as_str().unwrap().to_string()
                };
                let pair = (create(&output_dir).await, create(&task_dir).await);
                ids = Some(pair.clone());
                pair
            }
        };
        check(
            &mut client,
            (&output_project, &task_project),
            &ledger,
            &mut checked,
        )
        .await;
        drop(client);
        if cycle == KILLS {
            hub.kill();
            break;
        }

        let mut loads = Vec::new();
        macro_rules! client {
            () => {
                match open(port, data.path()).await {
                    Some(client) => client,
                    None => panic!("cycle {cycle}: the hub refused a client"),
                }
            };
        }
        loads.push(tokio::spawn(project_churn(
            client!(),
            ledger.clone(),
            dirs.clone(),
        )));
        loads.push(tokio::spawn(agent_output(
            client!(),
            output_project.clone(),
            ledger.clone(),
        )));
        loads.push(tokio::spawn(task_churn(
            client!(),
            task_project.clone(),
            cycle,
            ledger.clone(),
        )));
        loads.push(tokio::spawn(worker(client!(), ledger.clone())));
        loads.push(tokio::spawn(events(client!(), client!(), ledger.clone())));

        // The fault: a SIGKILL at a random point of the load (this sleep is the fault
        // injection, not synchronisation).
        let point = rng.u64(50..=600);
        kill_points.push(point);
        tokio::time::sleep(Duration::from_millis(point)).await;
        hub.kill();
        for load in loads {
            tokio::time::timeout(WAIT, load)
                .await
                .expect("the load notices the crash")
                .expect("the load task");
        }
        assert_store_intact(data.path());
    }
    let events = ledger.lock().unwrap().events;
    let completed = ledger.lock().unwrap().completions.len();
    println!(
        "FAULTS sigkill: kills {KILLS}, integrity_check ok {KILLS}, acknowledged writes checked {} \
         (output lines {}, project states {}, task states {}), distinct tasks {} of which completed \
         {completed}, events delivered {events}, kill points {}..{} ms, took {:.1} s",
        checked.writes,
        checked.lines,
        checked.projects,
        checked.tasks,
        ledger.lock().unwrap().tasks.len(),
        kill_points.iter().min().unwrap(),
        kill_points.iter().max().unwrap(),
        started.elapsed().as_secs_f64()
    );
    assert!(checked.lines > 0 && checked.tasks > 0 && completed > 0);
}

/// A tmpfs mounted for one test, unmounted (lazily, so a busy mount cannot stay behind)
/// when dropped.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"8m"`), or `None` when mounting is not permitted.
    fn mount(size: &str) -> Option<Self> {
        let dir = TempDir::new().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` in 64 KiB chunks until the disk is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    // Bounded: a tmpfs of a few MiB fills long before this.
    for _ in 0..100_000 {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(err) if err.kind() == std::io::ErrorKind::StorageFull => break,
            Err(err) => panic!("filling {}: {err}", path.display()),
        }
    }
    // And the last bytes a partial chunk left.
    while let Ok(n @ 1..) = file.write(&chunk[..512]) {
        written += n as u64;
    }
    written
}

#[tokio::test]
async fn a_full_disk_gives_storage_full_corrupts_nothing_and_recovers_without_a_restart() {
    let Some(disk) = Tmpfs::mount("16m") else {
        println!("FAULTS disk-full: SKIPPED, mounting a tmpfs is not permitted here");
        return;
    };
    let data = disk.path().join("data");
    let logs = TempDir::new().unwrap();
    let log_dir = logs.path().to_str().unwrap().to_string();
    let env = [
        ("SEMANTEST_HUB_LOG_DIR", log_dir.as_str()),
        ("SEMANTEST_HUB_LOG_LEVEL", "warn"),
    ];
    let (mut hub, port) = crate::util::spawn_hub_with(&data, &env).await;
    let mut ws = crate::util::connect(port, &data).await;
    let mut listener = crate::util::connect(port, &data).await;
    listener
        .ok("event.subscribe", json!({"types": ["disk.*"]}))
        .await;
    let mut dirs = Vec::new();
    let mut acknowledged = Vec::new();
    for _ in 0..3 {
        let dir = TempDir::new().unwrap();
        let project = ws.ok("project.create", json!({"path": dir.path()})).await;
        acknowledged.push(project["id"].as_str().unwrap().to_string());
        dirs.push(dir);
    }
    let task_project = acknowledged[0].clone();

    let filler = disk.path().join("filler");
    let filled = fill(&filler);
    // SQLite may still have free pages in its files: write until it has none left.
    let mut refused = None;
    for i in 0..2000 {
        let tasks: Vec<Value> = (0..20)
            .map(|j| json!({"id": format!("f{i}-{j}"), "title": "x".repeat(400), "context": "y".repeat(4000)}))
            .collect();
        let reply = ws
            .call(
                "task.create",
                json!({"project_id": task_project, "tasks": tasks}),
            )
            .await;
        if let Some(error) = reply.get("error") {
            refused = Some((i, error.clone()));
            break;
        }
    }
    let (batches, error) = refused.expect("the full disk refused a write");
    assert_eq!(error["data"]["kind"], "STORAGE_FULL", "{error}");
    assert_eq!(error["code"], -32060);
    // Other writes get the same clear error; the connection stays open.
    let dir = TempDir::new().unwrap();
    let error = ws.err("project.create", json!({"path": dir.path()})).await;
    assert_eq!(error["data"]["kind"], "STORAGE_FULL", "{error}");
    // What needs no disk goes on: reads and events.
    let listed = ws.ok("project.list", json!({})).await;
    assert_eq!(
        listed["projects"].as_array().unwrap().len(),
        3,
        "the refused project is not half-there: {listed}"
    );
    let published = ws
        .ok(
            "event.publish",
            json!({"type": "disk.full", "payload": {"ok": true}}),
        )
        .await;
    assert_eq!(published["delivered"], 1);
    assert_eq!(listener.notification("event").await["type"], "disk.full");
    // The log says what happened, in words an operator can act on.
    crate::util::eventually("the disk-full line in the hub log", async || {
        let logged = std::fs::read_dir(logs.path()).unwrap().any(|entry| {
            std::fs::read_to_string(entry.unwrap().path())
                .is_ok_and(|log| log.contains("the disk is full"))
        });
        crate::util::when(logged, |logged| *logged)
    })
    .await;

    // Space returns: writes succeed again, no restart.
    std::fs::remove_file(&filler).unwrap();
    let project = ws.ok("project.create", json!({"path": dir.path()})).await;
    acknowledged.push(project["id"].as_str().unwrap().to_string());
    let created = ws
        .ok(
            "task.create",
            json!({"project_id": task_project, "tasks": [{"id": "after", "title": "after"}]}),
        )
        .await;
    assert_eq!(created["created"], json!(["after"]));
    // The refused batch left nothing behind, in memory or on disk.
    let refused_task = format!("f{batches}-0");
    let error = ws.err("task.get", json!({"task_id": refused_task})).await;
    assert_eq!(error["data"]["kind"], "TASK_NOT_FOUND");
    drop((ws, listener));
    hub.kill();
    assert_store_intact(&data);
    let (mut hub, port) = crate::util::spawn_hub_with(&data, &env).await;
    let mut ws = crate::util::connect(port, &data).await;
    let listed = ws.ok("project.list", json!({})).await;
    let ids: Vec<&str> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), acknowledged.len(), "{listed}");
    for id in &acknowledged {
        assert!(ids.contains(&id.as_str()), "acknowledged project {id}");
    }
    let task = ws.ok("task.get", json!({"task_id": "after"})).await;
    assert_eq!(task["state"], "pending");
    let error = ws.err("task.get", json!({"task_id": refused_task})).await;
    assert_eq!(error["data"]["kind"], "TASK_NOT_FOUND");
    hub.kill();
    println!(
        "FAULTS disk-full: tmpfs 16 MiB, filler {} KiB, {batches} task batches fit before STORAGE_FULL, \
         recovered without a restart, integrity_check ok",
        filled / 1024
    );
}

/// A WebSocket that subscribes to `types` and then never reads again, with a tiny
/// receive buffer so the hub's writes back up at once.
async fn stalled_subscriber(
    port: u16,
    data_dir: &Path,
    types: &[&str],
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let token = std::fs::read_to_string(data_dir.join("secrets/owner-token")).unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    let (mut ws, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let frame = json!({"jsonrpc": "2.0", "id": 1, "method": "event.subscribe",
                       "params": {"types": types}});
    ws.send(Message::text(frame.to_string())).await.unwrap();
    // Owner notifications (connection news) may come first; bounded.
    for _ in 0..100 {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the subscribe reply in time")
            .unwrap()
            .unwrap();
        let reply: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
        if reply["id"] == 1 {
            assert!(reply["result"]["subscribed"].is_array(), "{reply}");
            return ws;
        }
    }
    panic!("no reply to event.subscribe");
}

/// Fast subscribers that note how long each event took from publish to receipt, against
/// the microseconds since `base` the publisher put in the payload.
fn latency_readers(
    clients: Vec<HubClient>,
    base: Instant,
) -> Vec<tokio::task::JoinHandle<Vec<Duration>>> {
    clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while let Ok(message) = client.next_notification().await {
                    let params = &message["params"];
                    if params["type"] == "lat.end" {
                        break;
                    }
                    if let Some(sent) = params["payload"]["t_us"].as_u64() {
                        let now = base.elapsed().as_micros() as u64;
                        latencies.push(Duration::from_micros(now.saturating_sub(sent)));
                    }
                }
                latencies
            })
        })
        .collect()
}

/// Connects `n` clients subscribed to `lat.*`.
async fn lat_subscribers(port: u16, data_dir: &Path, n: usize) -> Vec<HubClient> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let mut client = open(port, data_dir).await.unwrap();
        client
            .request("event.subscribe", json!({"types": ["lat.*"]}))
            .await
            .unwrap();
        clients.push(client);
    }
    clients
}

/// Publishes `count` events of `body`, one at a time, each stamped with the time since
/// `base`. Returns `count`.
async fn publish_stamped(
    publisher: &mut HubClient,
    base: Instant,
    body: &str,
    count: usize,
) -> usize {
    for _ in 0..count {
        let t_us = base.elapsed().as_micros() as u64;
        publisher
            .request(
                "event.publish",
                json!({"type": "lat.data", "payload": {"t_us": t_us, "body": body}}),
            )
            .await
            .unwrap();
    }
    count
}

/// Publishes `lat.end` and collects what the readers measured.
async fn end_readers(
    publisher: &mut HubClient,
    readers: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
) -> Vec<Duration> {
    publisher
        .request("event.publish", json!({"type": "lat.end", "payload": null}))
        .await
        .unwrap();
    let mut all = Vec::new();
    for reader in readers {
        all.extend(tokio::time::timeout(WAIT, reader).await.unwrap().unwrap());
    }
    all
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_the_others_do_not_wait() {
    const EVENTS: usize = 3000;
    let data = TempDir::new().unwrap();
    // A stalled subscriber is closed with 1008 after max_dropped_events dropped in a row,
    // or by the write timeout, whichever comes first; which one does depends on how fast
    // this machine publishes the drops. The drop rule is the one under test (the write
    // timeout has limits::a_client_that_stops_reading_is_closed_with_1008), so the write
    // timeout is out of its way: ten minutes. Lowered so the test is quick: 2000 drops,
    // after the stalled client fell 8 MiB (the event ring's bound) behind.
    let env = [
        ("SEMANTEST_HUB_LIMITS__MAX_DROPPED_EVENTS", "2000"),
        ("SEMANTEST_HUB_LIMITS__EVENT_RING_BYTES", "8388608"),
        ("SEMANTEST_HUB_LIMITS__WRITE_TIMEOUT_S", "600"),
        ("SEMANTEST_HUB_LIMITS__EVENT_RATE_PER_S", "1000000"),
        ("SEMANTEST_HUB_LIMITS__RATE_LIMIT_PER_S", "1000000"),
        ("SEMANTEST_HUB_LIMITS__RATE_LIMIT_BURST", "1000000"),
    ];
    let (hub, port) = crate::util::spawn_hub_with(data.path(), &env).await;
    let base = Instant::now();
    let body = "x".repeat(4096);
    let mut publisher = open(port, data.path()).await.unwrap();

    // Without the stalled client.
    let readers = latency_readers(lat_subscribers(port, data.path(), 4).await, base);
    publish_stamped(&mut publisher, base, &body, EVENTS).await;
    let mut without = end_readers(&mut publisher, readers).await;
    assert_eq!(
        without.len(),
        4 * EVENTS,
        "every fast subscriber got every event"
    );
    let rss_before = crate::util::rss_kib(hub.pid());

    // With it: the same load, plus one subscriber that never reads.
    let mut stalled = stalled_subscriber(port, data.path(), &["lat.*"]).await;
    let readers = latency_readers(lat_subscribers(port, data.path(), 4).await, base);
    let mut sent = 0;
    while metric(port, "event_slow_subscribers_closed_total").await < 1.0 {
        assert!(sent < 20 * EVENTS, "the stalled client was never cut off");
        sent += publish_stamped(&mut publisher, base, &body, 500).await;
    }
    let rss_peak = crate::util::rss_kib(hub.pid());
    sent += publish_stamped(&mut publisher, base, &body, EVENTS).await;
    let mut with = end_readers(&mut publisher, readers).await;
    assert_eq!(with.len(), 4 * sent, "the fast subscribers lost nothing");
    let rss_after = crate::util::rss_kib(hub.pid());
    let dropped = metric(port, "event_deliveries_total{outcome=\"dropped\"}").await;

    // It was cut off with 1008 once it had lost more than max_dropped_events. Whether
    // the close frame gets through a socket whose peer stopped reading is up to the
    // kernel's buffers (RFC 6455 section 7.1.1 lets the server drop the TCP connection
    // when it cannot send it), so: the socket ends, a close frame that did arrive says
    // 1008, and the hub counted the connection as closed with 1008. The socket ends only
    // after the hub's connection loop has returned, so the count is there by then.
    let mut close = None;
    loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut stalled))
            .await
            .expect("the stalled client's socket ends")
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                close = frame.map(|f| u16::from(f.code));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
    if let Some(code) = close {
        assert_eq!(code, 1008, "a close frame that arrived says 1008");
    }
    assert!(
        metric(port, "ws_connections_closed_total{code=\"1008\"}").await >= 1.0,
        "the hub closed the stalled client with 1008"
    );
    assert!(dropped > 2000.0, "{dropped} dropped");

    let (p99_without, p99_with) = (
        crate::util::quantile(&mut without, 0.99),
        crate::util::quantile(&mut with, 0.99),
    );
    println!(
        "FAULTS slow-reader: 4 fast subscribers, 4 KiB events; p99 publish-to-receipt without the \
         stalled client {:.2} ms ({} samples), with it {:.2} ms ({} samples); stalled client \
         closed 1008 after {dropped} dropped; hub RSS {} KiB before, {} KiB when it was cut \
         off, {} KiB after",
        p99_without.as_secs_f64() * 1e3,
        without.len(),
        p99_with.as_secs_f64() * 1e3,
        with.len(),
        rss_before,
        rss_peak,
        rss_after
    );
    // The others did not wait for it: a hub that did would hold their events until the
    // write timeout (ten minutes here) or until it reads again, which it does only after
    // this. How much the stalled client costs them is a figure, with a target (the same
    // machine runs the rest of the suite beside this test).
    assert!(
        p99_with < Duration::from_secs(5),
        "the others waited for the stalled client: p99 {p99_with:?}"
    );
    crate::util::timing_target(
        "slow reader",
        &format!(
            "fast subscribers' p99 {p99_with:?} with the stalled client, {p99_without:?} without"
        ),
        "at most 5 x the p99 without + 100 ms",
        p99_with <= p99_without * 5 + Duration::from_millis(100),
    );
    // The hub's memory for it is bounded by the event ring (8 MiB here), shared by all
    // subscribers, and the ring's own gauge never passed its bound by more than an event.
    let ring = metric(port, "event_ring_bytes").await;
    assert!(
        ring <= (8 * 1024 * 1024 + 8192) as f64,
        "ring holds {ring} bytes"
    );
    assert!(
        rss_peak.max(rss_after) < rss_before + 32 * 1024,
        "hub memory grew: {rss_before} -> {rss_peak} -> {rss_after} KiB"
    );
    drop(hub);
}

/// Round trips of `hub.status` on `client`, `count` of them, one per 25 ms (within the
/// default `limits.rate_limit_per_s` of 50).
async fn status_round_trips(client: &mut HubClient, count: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    let mut pace = tokio::time::interval(Duration::from_millis(25));
    for _ in 0..count {
        pace.tick().await;
        let start = Instant::now();
        client.request("hub.status", json!({})).await.unwrap();
        samples.push(start.elapsed());
    }
    samples
}

/// Round trips of every client in `clients`, concurrently, until `stop` is set.
fn measure_until(
    clients: Vec<HubClient>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(HubClient, Vec<Duration>)>> {
    clients
        .into_iter()
        .map(|mut client| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                // Bounded: the flood ends long before this many round trips.
                for _ in 0..1_000_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    samples.extend(status_round_trips(&mut client, 10).await);
                }
                (client, samples)
            })
        })
        .collect()
}

#[tokio::test]
async fn a_connection_flood_is_refused_with_503_and_existing_clients_stay_responsive() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio_tungstenite::tungstenite::Error as WsError;
    const LIMIT: usize = 20;
    const ATTEMPTS: usize = 3000;
    let data = TempDir::new().unwrap();
    let limit = LIMIT.to_string();
    let env = [("SEMANTEST_HUB_LIMITS__MAX_CONNECTIONS", limit.as_str())];
    let (hub, port) = crate::util::spawn_hub_with(data.path(), &env).await;
    let mut existing = Vec::new();
    for _ in 0..4 {
        existing.push(open(port, data.path()).await.unwrap());
    }
    // Baseline: the same clients for 2 s without the flood (a measuring window).
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = measure_until(existing, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut baseline, mut existing) = (Vec::new(), Vec::new());
    for task in measuring {
        let (client, samples) = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        baseline.extend(samples);
        existing.push(client);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = measure_until(existing, stop.clone());
    let request = {
        let token = std::fs::read_to_string(data.path().join("secrets/owner-token")).unwrap();
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://127.0.0.1:{port}/ws"),
            )
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", token.trim()).parse().unwrap(),
        );
        request
    };
    let started = Instant::now();
    let flooders: Vec<_> = (0..8)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let (mut held, mut refused, mut other) = (Vec::new(), 0usize, Vec::new());
                for _ in 0..ATTEMPTS / 8 {
                    match tokio::time::timeout(
                        WAIT,
                        tokio_tungstenite::connect_async(request.clone()),
                    )
                    .await
                    .expect("an answer to every upgrade")
                    {
                        Ok((socket, _)) => held.push(socket),
                        Err(WsError::Http(response)) if response.status() == 503 => refused += 1,
                        Err(err) => other.push(err.to_string()),
                    }
                }
                (held.len(), refused, other, held)
            })
        })
        .collect();
    let (mut accepted, mut refused, mut unclean, mut held) = (0, 0, Vec::new(), Vec::new());
    for flooder in flooders {
        let (a, r, o, h) = tokio::time::timeout(WAIT * 3, flooder)
            .await
            .unwrap()
            .unwrap();
        accepted += a;
        refused += r;
        unclean.extend(o);
        held.extend(h);
    }
    let flood_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut during = Vec::new();
    let mut existing = Vec::new();
    for task in measuring {
        let (client, samples) = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        during.extend(samples);
        existing.push(client);
    }
    assert!(
        unclean.is_empty(),
        "refused uncleanly: {:?}",
        &unclean[..unclean.len().min(5)]
    );
    assert_eq!(accepted + refused, ATTEMPTS);
    assert!(accepted <= LIMIT - 4, "{accepted} accepted past the limit");
    let refused_metric = metric(port, "ws_connections_refused_total{reason=\"capacity\"}").await;
    assert_eq!(refused_metric as usize, refused);
    // The existing clients were never cut off, and a slot frees once the flood leaves.
    for client in &mut existing {
        client.request("hub.status", json!({})).await.unwrap();
    }
    drop(held);
    crate::util::eventually("a slot to come free after the flood", async || {
        open(port, data.path()).await.ok_or("refused")
    })
    .await;

    let (p99_before, p99_during) = (
        crate::util::quantile(&mut baseline, 0.99),
        crate::util::quantile(&mut during, 0.99),
    );
    println!(
        "FAULTS flood: limit {LIMIT}, {ATTEMPTS} upgrade attempts from 8 tasks in {flood_secs:.1} s \
         ({:.0}/s): {accepted} accepted, {refused} refused with 503, 0 unclean; existing \
         clients' hub.status p99 {:.2} ms before ({} samples), {:.2} ms during ({} samples)",
        ATTEMPTS as f64 / flood_secs,
        p99_before.as_secs_f64() * 1e3,
        baseline.len(),
        p99_during.as_secs_f64() * 1e3,
        during.len()
    );
    // The existing clients were served while the flood went on. How much the flood
    // (generated by this process, on the same machine) slowed them is a figure, with a
    // target: a hub whose accept path blocked its clients would cost seconds.
    crate::util::timing_target(
        "connection flood",
        &format!(
            "existing clients' hub.status p99 {p99_during:?} during the flood, {p99_before:?} before"
        ),
        "at most 10 x the p99 before + 200 ms",
        p99_during <= p99_before * 10 + Duration::from_millis(200),
    );
    drop(hub);
}

/// Live (non-zombie) processes as `(pid, ppid, pgrp)`, from /proc/PID/stat.
fn processes() -> Vec<(i32, i32, i32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state ppid pgrp ...
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        if fields[0] == "Z" || fields[0] == "X" {
            continue;
        }
        found.push((pid, fields[1].parse().unwrap(), fields[2].parse().unwrap()));
    }
    found
}

/// The live descendants of `root`.
fn descendants(root: i32) -> Vec<i32> {
    let all = processes();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    found.remove(0);
    found
}

#[tokio::test]
async fn killing_agent_runs_under_load_leaves_no_descendant_process() {
    use crate::util::{connect, process_alive, run};
    const KILLED: usize = 4;
    let data = TempDir::new().unwrap();
    let (hub, port) = spawn_hub(data.path()).await;
    let hub_pid = hub.pid() as i32;

    // The load: agents writing output flat out, and event traffic.
    let mut loader = connect(port, data.path()).await;
    let mut dirs = Vec::new();
    for _ in 0..3 {
        let dir = TempDir::new().unwrap();
        let project = loader
            .ok("project.create", json!({"path": dir.path()}))
            .await;
        run(&mut loader, project["id"].as_str().unwrap(), "lines 20000").await;
        dirs.push(dir);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (mut publisher, stop) = (open(port, data.path()).await.unwrap(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            // Within the default limits.rate_limit_per_s of 50.
            let mut pace = tokio::time::interval(Duration::from_millis(25));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 100_000 {
                pace.tick().await;
                publisher
                    .request(
                        "event.publish",
                        json!({"type": "load.tick", "payload": sent}),
                    )
                    .await
                    .unwrap();
                sent += 1;
            }
            sent
        })
    };

    // The runs to kill: each starts a background grandchild in its process group.
    let mut ws = connect(port, data.path()).await;
    let mut victims = Vec::new();
    for i in 0..KILLED {
        let dir = TempDir::new().unwrap();
        let project = ws.ok("project.create", json!({"path": dir.path()})).await;
        let project_id = project["id"].as_str().unwrap().to_string();
        ws.subscribe(&project_id).await;
        let pid_file = dir.path().join(format!("grandchild-{i}.pid"));
        let run_id = run(
            &mut ws,
            &project_id,
            &format!("grandchild {}", pid_file.display()),
        )
        .await;
        victims.push((project_id, run_id, pid_file, dir));
    }
    // Each says so once its grandchild's PID is written (in any order).
    let mut started = std::collections::HashSet::new();
    while started.len() < KILLED {
        let line = ws.output_of_kind("assistant").await;
        started.insert(line["run_id"].as_str().unwrap().to_string());
    }
    let mut groups = Vec::new();
    for (_, _, pid_file, _) in &victims {
        let grandchild: i32 = std::fs::read_to_string(pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap();
        let pgrp: i32 = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_ne!(pgrp, hub_pid, "the run has its own process group");
        let members = processes().iter().filter(|p| p.2 == pgrp).count();
        assert!(
            members >= 3,
            "agent, subshell and grandchild in group {pgrp}"
        );
        groups.push((grandchild, pgrp, members));
    }

    for (project_id, _, _, _) in &victims {
        ws.ok("agent.kill", json!({"project_id": project_id})).await;
    }
    let mut finished = std::collections::HashMap::new();
    while finished.len() < KILLED {
        let line = ws.output_of_kind("run_finished").await;
        finished.insert(line["run_id"].as_str().unwrap().to_string(), line);
    }
    for (_, run_id, _, _) in &victims {
        assert_eq!(finished[run_id]["event"]["status"], "killed", "{run_id}");
    }
    let mut checked = 0;
    for (grandchild, pgrp, members) in &groups {
        assert!(
            !process_alive(*grandchild),
            "grandchild {grandchild} outlived its run"
        );
        let left: Vec<_> = processes().into_iter().filter(|p| p.2 == *pgrp).collect();
        assert!(left.is_empty(), "group {pgrp} still has {left:?}");
        checked += members;
    }
    // Only the load's agents may still run under the hub; kill them too, then none is left.
    // A load run may finish on its own between the list and the kill (NOT_RUNNING).
    for project in loader.ok("project.list", json!({})).await["projects"]
        .as_array()
        .unwrap()
    {
        if project["state"] == "running" {
            let killed = loader
                .call("agent.kill", json!({"project_id": project["id"]}))
                .await;
            assert!(
                killed.get("result").is_some() || killed["error"]["data"]["kind"] == "NOT_RUNNING",
                "{killed}"
            );
        }
    }
    crate::util::eventually("no process left under the hub", async || {
        crate::util::when(descendants(hub_pid), Vec::is_empty)
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let events = tokio::time::timeout(WAIT, traffic).await.unwrap().unwrap();
    println!(
        "FAULTS agent-kill: {KILLED} runs killed under load (3 agents writing, {events} events \
         published), {checked} processes in their groups, none left in any group or under the hub"
    );
    drop(hub);
}

/// A completion whose commit fails on a full disk is not acknowledged, not announced and
/// not kept in memory: the coordinator rebuilds its state from the store, the worker
/// still holds the task, and the same completion succeeds once space returns.
#[tokio::test]
async fn a_completion_refused_by_a_full_disk_leaves_memory_as_the_store_has_it() {
    let Some(disk) = Tmpfs::mount("16m") else {
        println!("FAULTS disk-full completion: SKIPPED, mounting a tmpfs is not permitted here");
        return;
    };
    let data = disk.path().join("data");
    let (mut hub, port) = crate::util::spawn_hub_with(&data, &[]).await;
    let mut ws = crate::util::connect(port, &data).await;
    let mut worker = crate::util::connect(port, &data).await;
    let dir = TempDir::new().unwrap();
    let project = ws.ok("project.create", json!({"path": dir.path()})).await;
    let project_id = project["id"].as_str().unwrap().to_string();
    worker.ok("worker.register", json!({"name": "w"})).await;
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [{"id": "held", "title": "held"}]}),
    )
    .await;
    let assigned = worker.notification("task.assigned").await;
    assert_eq!(assigned["task"]["id"], "held");

    let filler = disk.path().join("filler");
    fill(&filler);
    // Use up what SQLite still has free, with tasks that queue behind the busy worker.
    let mut refused = false;
    for i in 0..2000 {
        let tasks: Vec<Value> = (0..20)
            .map(|j| json!({"id": format!("f{i}-{j}"), "title": "x".repeat(400), "context": "y".repeat(4000)}))
            .collect();
        let reply = ws
            .call(
                "task.create",
                json!({"project_id": project_id, "tasks": tasks}),
            )
            .await;
        if reply.get("error").is_some() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the full disk refused a write");
    // A report bigger than anything the refused batch wrote, so it cannot fit.
    let report = json!({"summary": "done", "notes": "z".repeat(600 * 1024)});
    let error = worker
        .err(
            "task.complete",
            json!({"task_id": "held", "report": report}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "STORAGE_FULL", "{error}");
    // Memory is what the store has: the task is running on the worker, none completed.
    let status = ws
        .ok("coordination.status", json!({"project_id": project_id}))
        .await;
    assert_eq!(
        (status["running"].as_u64(), status["completed"].as_u64()),
        (Some(1), Some(0)),
        "{status}"
    );
    let task = ws.ok("task.get", json!({"task_id": "held"})).await;
    assert_eq!(task["state"], "running", "{task}");
    let beat = worker.ok("worker.heartbeat", json!({})).await;
    assert_eq!(beat["task_id"], "held", "{beat}");
    assert_eq!(beat["status"], "working", "{beat}");

    // Space returns: the same completion is acknowledged once, and the worker is free
    // for the next task.
    std::fs::remove_file(&filler).unwrap();
    let answer = worker
        .ok(
            "task.complete",
            json!({"task_id": "held", "report": report}),
        )
        .await;
    assert_eq!(answer["duplicate"], false, "{answer}");
    assert_eq!(answer["state"], "completed");
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [{"id": "next", "title": "next"}]}),
    )
    .await;
    let next = worker.notification("task.assigned").await;
    assert_eq!(next["task"]["id"], "next");
    let task = ws.ok("task.get", json!({"task_id": "held"})).await;
    assert_eq!(task["state"], "completed", "{task}");
    let status = ws
        .ok("coordination.status", json!({"project_id": project_id}))
        .await;
    assert_eq!(
        (status["running"].as_u64(), status["completed"].as_u64()),
        (Some(1), Some(1)),
        "{status}"
    );
    drop((ws, worker));
    hub.kill();
    assert_store_intact(&data);
    println!(
        "FAULTS disk-full completion: refused with STORAGE_FULL, memory rebuilt, completed after space returned"
    );
}
