//! Attacks through agents, report files and project folders: prompts and session ids
//! that try to become CLI options, the hub's own secrets reaching the agent's
//! environment, report files that are symlinks, FIFOs or devices, and project folders
//! that would let an agent edit the user's or the hub's own files. The fake CLI parses
//! its command line as the real one does and records what it received
//! (`FAKE_CLAUDE_RECORD`).

use std::path::Path;

use serde_json::{Value, json};

use crate::util::{
    HubProcess, TestHub, WAIT, Ws, connect, hub_bin, hub_command, hub_started, recording, run,
    spawn_hub_with,
};

/// The arguments the fake CLI received in its last run.
fn recorded_argv(record: &Path) -> Vec<String> {
    let bytes = std::fs::read(record.join("argv")).expect("the fake CLI recorded its argv");
    bytes
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// Runs `prompt` to its end and returns its output lines.
async fn run_to_end(ws: &mut Ws, project_id: &str, prompt: &str) -> Vec<Value> {
    let run_id = run(ws, project_id, prompt).await;
    ws.run_output(&run_id).await
}

#[tokio::test]
async fn a_prompt_that_looks_like_an_option_reaches_the_cli_only_as_prompt_text() {
    let record = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(recording(record.path())).await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let attacks = [
        "--dangerously-skip-permissions",
        "--permission-mode=bypassPermissions",
        "--settings={\"permissions\":{\"allow\":[\"Bash\"]}}",
        "--mcp-config=/tmp/evil.json",
        "--add-dir=/",
        "-p",
        "--",
    ];
    for prompt in attacks {
        let lines = run_to_end(&mut ws, &project_id, prompt).await;
        // Exactly the hub's own arguments, and a resumed session that is a UUID.
        let mut argv = recorded_argv(record.path());
        if let Some(at) = argv.iter().position(|arg| arg == "--resume") {
            let session = argv.get(at + 1).cloned().unwrap_or_default();
            assert!(uuid::Uuid::try_parse(&session).is_ok(), "{argv:?}");
            argv.drain(at..at + 2);
        }
        assert_eq!(
            argv,
            [
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-prompt-tool",
                "stdio",
                "--permission-mode",
                "default"
            ],
            "the prompt {prompt:?} reached the CLI as an argument"
        );
        let stdin = std::fs::read_to_string(record.path().join("stdin"))
            .expect("the CLI read its prompt from stdin");
        assert_eq!(stdin, prompt, "the prompt arrives whole, as text");
        let init = lines
            .iter()
            .find(|l| l["kind"] == "system")
            .unwrap_or_else(|| panic!("the run for {prompt:?} started: {lines:?}"));
        assert_eq!(
            init["event"]["permissionMode"], "default",
            "the configured permission mode stays in force"
        );
        assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_session_id_that_is_not_a_uuid_is_never_passed_to_resume() {
    let record = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(recording(record.path())).await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;

    // A CLI (or anything writing to its output) claims a session id that is an option.
    let lines = run_to_end(
        &mut ws,
        &project_id,
        "session --dangerously-skip-permissions",
    )
    .await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(project["session_id"], Value::Null, "{project}");
    run_to_end(&mut ws, &project_id, "success").await;
    let argv = recorded_argv(record.path());
    assert!(!argv.contains(&"--resume".to_string()), "{argv:?}");
    assert!(
        !argv.contains(&"--dangerously-skip-permissions".to_string()),
        "{argv:?}"
    );

    // A stored session that is not a UUID (a database written before ids were checked)
    // is refused, not resumed, until a new session is started.
    let dir = hub.stop().await;
    let db = rusqlite::Connection::open(dir.path().join("hub.sqlite3")).unwrap();
    db.execute(
        "UPDATE projects SET session_id = '--mcp-config=/tmp/evil.json' WHERE id = ?1",
        [&project_id],
    )
    .unwrap();
    drop(db);
    let mut config = crate::util::test_config(dir.path());
    recording(record.path())(&mut config);
    let hub = TestHub::start_in(dir, config).await;
    let mut ws = hub.client().await;
    std::fs::remove_file(record.path().join("argv")).unwrap();
    let err = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "success"}),
        )
        .await;
    assert_eq!(err["data"]["kind"], "INVALID_SESSION", "{err}");
    assert_eq!(err["code"], -32602);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("agent.new_session"),
        "{err}"
    );
    // Sessions belong to Claude, Codex or Gemini: the message names no one agent.
    assert!(
        !err["message"].as_str().unwrap().contains("Claude"),
        "{err}"
    );
    assert!(
        !record.path().join("argv").exists(),
        "no CLI was started for the refused run"
    );
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(
        project["state"], "idle",
        "the refusal left the project idle"
    );
    ws.ok("agent.new_session", json!({"project_id": project_id}))
        .await;
    ws.subscribe(&project_id).await;
    let lines = run_to_end(&mut ws, &project_id, "success").await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    assert!(!recorded_argv(record.path()).contains(&"--resume".to_string()));
    hub.stop().await;
}

/// Every variable the hub reads its settings and credentials from.
const HUB_SECRETS: [(&str, &str); 3] = [
    ("SEMANTEST_HUB_DATABASE_PASSWORD", "pg-secret-4f1c"),
    ("SEMANTEST_HUB_BROKER_TOKEN", "nats-token-9a2e"),
    ("SEMANTEST_HUB_BROKER_PASSWORD", "nats-password-77d0"),
];
/// A setting that is no secret: it must not reach the agent either, but its value ("50")
/// may well occur in other variables (a temporary path, a bus address), so only its name
/// is checked.
const HUB_SETTING: (&str, &str) = ("SEMANTEST_HUB_LIMITS__MAX_PROJECTS", "50");

#[tokio::test]
async fn an_agent_process_does_not_inherit_the_hubs_secrets() {
    let data = tempfile::tempdir().unwrap();
    let record = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, &str)> = HUB_SECRETS.to_vec();
    env.push(HUB_SETTING);
    env.push(("FAKE_CLAUDE_RECORD", record.path().to_str().unwrap()));
    env.push(("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"));
    let (_hub, port) = spawn_hub_with(data.path(), &env).await;
    let mut ws = connect(port, data.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let project = ws.ok("project.create", json!({"path": dir.path()})).await;
    let project_id = project["id"].as_str().unwrap();
    ws.subscribe(project_id).await;
    let lines = tokio::time::timeout(WAIT, run_to_end(&mut ws, project_id, "success"))
        .await
        .unwrap();
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");

    let dump = std::fs::read(record.path().join("env")).expect("the fake CLI dumped its env");
    let vars: Vec<String> = dump
        .split(|b| *b == 0)
        .map(|var| String::from_utf8_lossy(var).into_owned())
        .collect();
    for (name, value) in HUB_SECRETS {
        assert!(
            !vars.iter().any(|var| var.starts_with(&format!("{name}="))),
            "{name} reached the agent"
        );
        assert!(
            !vars.iter().any(|var| var.contains(value)),
            "the value of {name} reached the agent"
        );
    }
    assert!(
        !vars
            .iter()
            .any(|var| var.starts_with(&format!("{}=", HUB_SETTING.0))),
        "{} reached the agent",
        HUB_SETTING.0
    );
    assert!(
        !vars.iter().any(|var| var.starts_with("SEMANTEST_HUB_")),
        "{vars:?}"
    );
    // What the agent needs is still there.
    for needed in ["PATH=", "HOME=", "ANTHROPIC_BASE_URL=http://127.0.0.1:9"] {
        assert!(
            vars.iter().any(|var| var.starts_with(needed)),
            "{needed} is missing: {vars:?}"
        );
    }
}

/// Waits for a notification of `method` whose params satisfy `pred`, skipping others.
async fn wait_for(ws: &mut Ws, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let params = ws.notification(method).await;
        if pred(&params) {
            return params;
        }
    }
}

#[tokio::test]
async fn report_files_that_are_links_fifos_or_devices_are_refused_and_the_watcher_goes_on() {
    // A process of its own: before report files were opened without blocking, the FIFO
    // blocked the watcher (and a thread) for good, which a test can only kill.
    let data = tempfile::tempdir().unwrap();
    let (_hub, port) = spawn_hub_with(
        data.path(),
        &[("SEMANTEST_HUB_COORDINATION__REPORT_DEBOUNCE_MS", "100")],
    )
    .await;
    let mut coordinator = connect(port, data.path()).await;
    coordinator
        .ok("hub.hello", json!({"role": "coordinator", "name": "batch"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let project = coordinator
        .ok("project.create", json!({"path": dir.path()}))
        .await;
    let project_id = project["id"].as_str().unwrap();
    let tasks = ["t-zero", "t-fifo", "t-secret", "t-ok"]
        .map(|id| json!({"id": id, "title": id, "prompt": "do it"}));
    coordinator
        .ok(
            "task.create",
            json!({"project_id": project_id, "tasks": tasks}),
        )
        .await;
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    // Outside the project, a valid report: read through the link, it would complete the task.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("report.json");
    std::fs::write(
        &secret,
        r#"{"status":"completed","summary":"read through a symlink"}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", reports.join("t-zero.json")).unwrap();
    std::os::unix::fs::symlink(&secret, reports.join("t-secret.json")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(reports.join("t-fifo.json"))
        .status()
        .unwrap();
    assert!(status.success());
    // Written after the FIFO: a watcher stuck on the FIFO never gets to it.
    std::fs::write(
        reports.join("t-ok.json"),
        r#"{"status":"completed","summary":"a plain file"}"#,
    )
    .unwrap();

    let mut invalid = std::collections::BTreeMap::new();
    let mut completed = Vec::new();
    while invalid.len() < 3 || completed.is_empty() {
        let message = coordinator.next_json().await;
        let params = &message["params"];
        match message["method"].as_str() {
            Some("task.report_invalid") => {
                invalid.insert(
                    params["task_id"].as_str().unwrap().to_string(),
                    params["reason"].as_str().unwrap().to_string(),
                );
            }
            Some("task.completed") => {
                completed.push(params["task_id"].as_str().unwrap().to_string());
            }
            _ => {}
        }
    }
    assert_eq!(
        completed,
        ["t-ok"],
        "only the plain file completes its task"
    );
    assert!(invalid["t-zero"].contains("symbolic link"), "{invalid:?}");
    assert!(invalid["t-secret"].contains("symbolic link"), "{invalid:?}");
    assert!(invalid["t-fifo"].contains("FIFO"), "{invalid:?}");
    for id in ["t-zero", "t-fifo", "t-secret"] {
        let task = coordinator.ok("task.get", json!({"task_id": id})).await;
        assert_eq!(task["state"], "pending", "{task}");
    }

    // A reports folder that is itself a link to elsewhere is not read either.
    let dir2 = tempfile::tempdir().unwrap();
    let project2 = coordinator
        .ok("project.create", json!({"path": dir2.path()}))
        .await;
    let task = json!({"id": "l1", "title": "linked folder", "prompt": "do it"});
    coordinator
        .ok(
            "task.create",
            json!({"project_id": project2["id"], "tasks": [task]}),
        )
        .await;
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join("l1.json"),
        r#"{"status":"completed","summary":"through a linked folder"}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir2.path().join("reports")).unwrap();
    // Then a plain report in the first project: by the time it is handled, the link's
    // event (earlier, and folders go before files) has been handled too.
    std::fs::remove_file(reports.join("t-fifo.json")).unwrap();
    std::fs::write(
        reports.join("t-fifo.json.tmp"),
        r#"{"status":"completed","summary":"plain again"}"#,
    )
    .unwrap();
    std::fs::rename(reports.join("t-fifo.json.tmp"), reports.join("t-fifo.json")).unwrap();
    let done = wait_for(&mut coordinator, "task.completed", |_| true).await;
    assert_eq!(done["task_id"], "t-fifo", "{done}");
    let task = coordinator.ok("task.get", json!({"task_id": "l1"})).await;
    assert_eq!(task["state"], "pending", "{task}");
}

/// Peak resident memory of `pid` in KiB (`VmHWM` in /proc/PID/status).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM for {pid}"))
}

/// Starts the hub binary on `data_dir` with at most `max_address_space` bytes of
/// address space, so that a read without a bound is stopped at that size instead of
/// taking the machine's memory.
async fn spawn_limited_hub(data_dir: &Path, max_address_space: u64) -> (HubProcess, u16) {
    let mut prlimit = std::process::Command::new("prlimit");
    prlimit
        .arg(format!("--as={max_address_space}"))
        .arg("--")
        .arg(hub_bin());
    let mut command = hub_command(prlimit, data_dir);
    command
        .env("SEMANTEST_HUB_COORDINATION__REPORT_DEBOUNCE_MS", "100")
        // glibc reserves 64 MiB of address space per malloc arena; two are plenty.
        .env("MALLOC_ARENA_MAX", "2");
    hub_started(command, data_dir).await
}

#[tokio::test]
async fn an_agent_report_linked_to_dev_zero_does_not_exhaust_the_hubs_memory() {
    let data = tempfile::tempdir().unwrap();
    let (mut hub, port) = spawn_limited_hub(data.path(), 2 << 30).await;
    let mut coordinator = connect(port, data.path()).await;
    coordinator
        .ok("hub.hello", json!({"role": "coordinator", "name": "batch"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let project = coordinator
        .ok("project.create", json!({"path": dir.path()}))
        .await;
    let project_id = project["id"].as_str().unwrap();
    // The agent makes its report a link to /dev/zero and ends with success, so the hub
    // reads the report as the run ends.
    let task = json!({"id": "z1", "title": "zero", "context": "[fake:report-link /dev/zero]"});
    coordinator
        .ok(
            "task.create",
            json!({"project_id": project_id, "tasks": [task]}),
        )
        .await;
    coordinator
        .ok(
            "project.configure",
            json!({"project_id": project_id, "agent_workers": 1}),
        )
        .await;
    let finished = loop {
        let message = coordinator.next_json().await;
        let method = message["method"].as_str().unwrap_or_default();
        if matches!(method, "task.completed" | "task.failed" | "task.requeued")
            && message["params"]["task_id"] == "z1"
        {
            break message;
        }
    };
    assert_ne!(
        finished["params"]["source"], "report",
        "the link was not read as a report: {finished}"
    );
    // The hub is alive, answers, and did not read without a bound.
    assert!(hub.0.try_wait().unwrap().is_none(), "the hub process ended");
    let status = coordinator.ok("hub.status", json!({})).await;
    assert!(status.is_object());
    // The peak, not the present: std's read_to_end gives up with an error when the
    // address-space limit stops its growth, and the memory is freed again.
    let peak = peak_rss_kib(hub.pid());
    assert!(
        peak < 512 * 1024,
        "the hub's resident memory peaked at {peak} KiB"
    );
    hub.kill();
}

#[tokio::test]
async fn the_home_directory_its_hidden_folders_and_the_hubs_own_folders_cannot_be_projects() {
    // A home of its own for the hub process, holding the hub's data directory.
    let base = tempfile::tempdir().unwrap();
    let base_path = base.path().canonicalize().unwrap();
    let home = base_path.join("home");
    let data = home.join("work/hub-data");
    for dir in [
        ".ssh",
        ".config/semantest-hub",
        ".config/other-app",
        "work/hub-data",
        "projects/app",
        "projects/theirs",
    ] {
        std::fs::create_dir_all(home.join(dir)).unwrap();
    }
    let home_text = home.to_str().unwrap();
    let xdg_config = home.join(".config");
    let (_hub, port) = spawn_hub_with(
        &data,
        &[
            ("HOME", home_text),
            ("XDG_CONFIG_HOME", xdg_config.to_str().unwrap()),
        ],
    )
    .await;
    let mut ws = connect(port, &data).await;
    let refused = [
        (home.clone(), "is your home directory"),
        (home.join(".ssh"), "hidden folder of your home directory"),
        (home.join(".config"), "hidden folder of your home directory"),
        (
            home.join(".config/semantest-hub"),
            "hidden folder of your home directory",
        ),
        (
            home.join(".config/other-app"),
            "hidden folder of your home directory",
        ),
        (base_path.clone(), "contains your home directory"),
        (home.join("work"), "contains the hub's data directory"),
        (data.clone(), "is inside the hub's data directory"),
        (data.join("secrets"), "is inside the hub's data directory"),
        (data.join("logs"), "is inside the hub's data directory"),
    ];
    for (path, why) in &refused {
        if !path.exists() {
            std::fs::create_dir_all(path).unwrap();
        }
        let err = ws.err("project.create", json!({"path": path})).await;
        assert_eq!(err["data"]["kind"], "INVALID_PATH", "{path:?}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(why),
            "{path:?} should be refused because it {why}: {err}"
        );
    }

    // A directory of another user: root can make one; others cannot, so only then is
    // this case skipped.
    let theirs = home.join("projects/theirs");
    if nix::unistd::geteuid().is_root() {
        nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = ws.err("project.create", json!({"path": theirs})).await;
        assert_eq!(err["data"]["kind"], "INVALID_PATH", "{err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("owned by another user"),
            "{err}"
        );
    } else {
        eprintln!("not root: the directory owned by another user is not checked");
    }

    // The command line gets the same answer.
    let cli = tokio::process::Command::new(hub_bin())
        .args(["--secret-store", "file", "--data-dir"])
        .arg(&data)
        .args(["project", "add", home_text])
        .env("HOME", home_text)
        .output()
        .await
        .unwrap();
    assert!(!cli.status.success());
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        stderr.contains("is your home directory") && stderr.contains("INVALID_PATH"),
        "{stderr}"
    );

    // A plain folder inside the home directory is fine.
    let app = home.join("projects/app");
    let project = ws.ok("project.create", json!({"path": app})).await;
    assert_eq!(project["path"], app.to_str().unwrap());
}
