//! The agent limit under load: interactive runs (`agent.run`) and built-in agent workers
//! start at the same time, and the live agent processes, counted through `/proc`, never
//! exceed `limits.max_running_agents`; no task is ever requeued for want of a slot.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{TestHub, WAIT, Ws, eventually, when};

const LIMIT: usize = 3;

/// Agent runs alive now among processes working in `dirs`: each run is its own process
/// group, so the run count is the number of distinct groups of fake CLI processes.
fn live_runs(dirs: &[PathBuf]) -> usize {
    let mut groups = HashSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let proc_dir = entry.path();
        let Ok(cwd) = std::fs::read_link(proc_dir.join("cwd")) else {
            continue;
        };
        if !dirs.contains(&cwd) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
            continue;
        };
        // Fields after the `(comm)`: state, ppid, pgrp, ...; zombies are gone already.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        if let (Some(state), Some(pgrp)) = (fields.first(), fields.get(2))
            && *state != "Z"
        {
            groups.insert(pgrp.to_string());
        }
    }
    groups.len()
}

/// Samples [`live_runs`] until `stop`, keeping the highest count.
fn sample(dirs: Vec<PathBuf>, stop: Arc<AtomicBool>, highest: Arc<AtomicUsize>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
        highest.fetch_max(live_runs(&dirs), Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(2));
    }
}

async fn project(hub: &TestHub, ws: &mut Ws) -> (String, tempfile::TempDir, PathBuf) {
    let (id, dir) = hub.project(ws).await;
    let canonical = std::fs::canonicalize(dir.path()).unwrap();
    (id, dir, canonical)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_runs_and_agent_workers_together_never_exceed_the_limit() {
    let hub = TestHub::start_with(|config| {
        config.config.limits.max_running_agents = LIMIT;
        // A task run writes its report and hangs until this timeout ends it, so every
        // task holds its slot for a second.
        config.config.agent.timeout_s = 1;
        config.config.coordination.report_debounce_ms = 50;
    })
    .await;
    let mut ws = hub.client().await;
    let (tasks_project, _tasks_dir, tasks_path) = project(&hub, &mut ws).await;
    let mut interactive = Vec::new();
    let mut dirs = vec![tasks_path];
    for _ in 0..4 {
        let (id, dir, path) = project(&hub, &mut ws).await;
        dirs.push(path);
        interactive.push((id, dir));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let highest = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, highest) = (stop.clone(), highest.clone());
        std::thread::spawn(move || sample(dirs, stop, highest))
    };

    ws.ok(
        "project.configure",
        json!({"project_id": tasks_project, "agent_workers": LIMIT}),
    )
    .await;
    let tasks: Vec<Value> = (0..9)
        .map(|i| json!({"id": format!("c{i}"), "title": "hold a slot", "context": "[fake:report-hang]"}))
        .collect();
    // Everything at once: the task batch and one interactive run per project.
    let mut conns = Vec::new();
    for _ in &interactive {
        conns.push(hub.client().await);
    }
    let create = ws.call(
        "task.create",
        json!({"project_id": tasks_project, "tasks": tasks}),
    );
    let runs = futures_util::future::join_all(conns.iter_mut().zip(&interactive).map(
        |(conn, (project_id, _))| {
            conn.call(
                "agent.run",
                json!({"project_id": project_id, "prompt": "slow 5", "timeout_s": 30}),
            )
        },
    ));
    let (created, runs) = tokio::join!(create, runs);
    assert_eq!(created["result"]["created"].as_array().unwrap().len(), 9);
    for response in &runs {
        if let Some(error) = response.get("error") {
            assert_eq!(error["data"]["kind"], "LIMIT_REACHED", "{response}");
        }
    }

    let mut completed = HashSet::new();
    while completed.len() < 9 {
        let done = tokio::time::timeout(WAIT * 3, ws.notification("task.completed"))
            .await
            .expect("every task completes");
        completed.insert(done["task_id"].as_str().unwrap().to_string());
    }
    eventually("every run to end", async || {
        let status = ws.ok("hub.status", json!({})).await;
        when(status["running_agents"].clone(), |running| *running == 0)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let highest = highest.load(Ordering::Relaxed);
    assert!(
        highest <= LIMIT,
        "{highest} agents alive at once, limit {LIMIT}"
    );
    assert_eq!(highest, LIMIT, "the load reached the limit");
    let list = ws
        .ok("task.list", json!({"project_id": tasks_project}))
        .await;
    for task in list["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "completed", "{task}");
        assert_eq!(
            task["attempts"], 0,
            "no attempt was lost to the limit: {task}"
        );
    }
    // `task.requeued` would be queued among this observer's notifications.
    assert!(
        !ws.notifications
            .iter()
            .any(|n| n["method"] == "task.requeued"),
        "no task went back to the queue"
    );
}
