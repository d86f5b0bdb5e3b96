//! The real agent CLIs (Claude Code, Codex, Gemini CLI) run by a hub, each talking to a
//! scripted fake of its model API on loopback (`tests/fixtures/fake-*.mjs`); no real API
//! is called. The test command installs each CLI, at the version its tests are written
//! against, from npm under `target/`; `SEMANTEST_TEST_CLAUDE`, `SEMANTEST_TEST_CODEX`
//! and `SEMANTEST_TEST_GEMINI` name other binaries.
//!
//! [`RealCli`] holds what a test sets up for one CLI: the fake API and a home of its own
//! for the CLI's configuration; [`RealCli::hub`] starts a hub that runs it and
//! [`RealCli::project`] a project whose agent it is. [`figures`] measures the spawn and
//! the approval round trip of any of them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{TestHub, Ws, quantile, run};

/// How long one wait on a real CLI may take: a CLI needs seconds to start on a loaded
/// machine and says nothing meanwhile.
pub const CLI_WAIT: Duration = Duration::from_secs(60);

/// Which real CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// Claude Code (`claude -p --output-format stream-json`), against a fake Anthropic
    /// Messages API.
    Claude,
    /// Codex (`codex app-server`), against a fake OpenAI Responses API.
    Codex,
    /// Gemini CLI (`gemini --acp`), against a fake Gemini API.
    Gemini,
}

impl Agent {
    /// The project's `agent` value that selects this CLI.
    pub fn name(self) -> &'static str {
        match self {
            Agent::Claude => "claude",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
        }
    }

    /// The CLI: the binary named by its `SEMANTEST_TEST_*` variable, or the one the test
    /// command installed under `target/`.
    pub fn cli(self) -> PathBuf {
        let (title, var, bin, package) = match self {
            Agent::Claude => (
                "Claude Code",
                "SEMANTEST_TEST_CLAUDE",
                "target/claude-code/node_modules/.bin/claude",
                "npm install --prefix target/claude-code @anthropic-ai/claude-code@2.1.197",
            ),
            Agent::Codex => (
                "Codex",
                "SEMANTEST_TEST_CODEX",
                "target/codex/node_modules/.bin/codex",
                "npm install --prefix target/codex @openai/codex@0.171.0",
            ),
            Agent::Gemini => (
                "Gemini",
                "SEMANTEST_TEST_GEMINI",
                "target/gemini-cli/node_modules/.bin/gemini",
                "npm install --prefix target/gemini-cli @google/gemini-cli@0.61.0",
            ),
        };
        if let Some(path) = std::env::var_os(var) {
            return PathBuf::from(path);
        }
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(bin);
        assert!(
            path.exists(),
            "the real {title} CLI is not installed; run the test command from the README \
             (it runs `{package}`)"
        );
        path
    }

    /// A home for the CLI's configuration, set up for `api`; removed on drop.
    ///
    /// - Claude Code: an empty `CLAUDE_CONFIG_DIR`.
    /// - Codex: a `CODEX_HOME` under `target/` (never under `/tmp`, where Codex refuses
    ///   to set up its sandbox helper) whose `config.toml` points at `api`.
    /// - Gemini CLI: a `HOME` whose `~/.gemini/settings.json` selects the API-key auth
    ///   type (Gemini CLI 0.61 rejects the `gateway` type it infers from
    ///   `GOOGLE_GEMINI_BASE_URL`, google-gemini/gemini-cli#27550), turns usage
    ///   statistics off, and turns the session clean-up off (it deletes a session that
    ///   was loaded once; see fake-gemini.md).
    pub fn home(self, api: &FakeApi) -> tempfile::TempDir {
        match self {
            Agent::Claude => tempfile::tempdir().unwrap(),
            Agent::Codex => {
                let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/codex-homes");
                std::fs::create_dir_all(&base).unwrap();
                let home = tempfile::tempdir_in(base).unwrap();
                std::fs::write(
                    home.path().join("config.toml"),
                    format!(
                        "model = \"gpt-5\"\nmodel_provider = \"fake\"\n\n[model_providers.fake]\n\
                         name = \"Fake\"\nbase_url = \"{}/v1\"\nenv_key = \"FAKE_API_KEY\"\n\
                         wire_api = \"responses\"\n",
                        api.url
                    ),
                )
                .unwrap();
                home
            }
            Agent::Gemini => {
                let home = tempfile::tempdir().unwrap();
                std::fs::create_dir_all(home.path().join(".gemini")).unwrap();
                let settings = json!({
                    "security": {"auth": {"selectedType": "gemini-api-key"}},
                    "privacy": {"usageStatisticsEnabled": false},
                    "general": {"sessionRetention": {"enabled": false}},
                });
                std::fs::write(
                    home.path().join(".gemini/settings.json"),
                    settings.to_string(),
                )
                .unwrap();
                home
            }
        }
    }

    /// The environment the CLI runs with against `api`, with its configuration in `home`.
    pub fn env(self, api: &FakeApi, home: &Path) -> Vec<(String, String)> {
        let home = home.to_str().unwrap();
        let vars: Vec<(&str, &str)> = match self {
            Agent::Claude => vec![
                ("ANTHROPIC_BASE_URL", api.url.as_str()),
                ("ANTHROPIC_API_KEY", "dummy"),
                ("CLAUDE_CONFIG_DIR", home),
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                ("DISABLE_TELEMETRY", "1"),
                ("DISABLE_AUTOUPDATER", "1"),
            ],
            Agent::Codex => vec![("CODEX_HOME", home), ("FAKE_API_KEY", "dummy")],
            Agent::Gemini => vec![
                ("HOME", home),
                ("GOOGLE_GEMINI_BASE_URL", api.url.as_str()),
                ("GEMINI_API_KEY", "dummy"),
                ("GEMINI_CLI_TRUST_WORKSPACE", "true"),
            ],
        };
        vars.into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The prompt on which the fake API makes the model call the CLI's shell tool with
    /// `command`.
    pub fn shell(self, command: &str) -> String {
        match self {
            Agent::Claude | Agent::Codex => format!("BASH {command}"),
            Agent::Gemini => format!("SHELL {command}"),
        }
    }

    /// Whether `line` (a `project.output` notification) is the CLI's report that an
    /// approved shell command ran.
    fn is_command_result(self, line: &Value) -> bool {
        match self {
            Agent::Claude => line["kind"] == "user",
            Agent::Codex => {
                line["event"]["method"] == "item/completed"
                    && line["event"]["params"]["item"]["type"] == "commandExecution"
            }
            Agent::Gemini => {
                let update = &line["event"]["params"]["update"];
                update["sessionUpdate"] == "tool_call_update" && update["status"] == "completed"
            }
        }
    }
}

/// A scripted fake of an agent's model API (`tests/fixtures/fake-*.mjs` under node);
/// killed on drop.
pub struct FakeApi {
    child: Child,
    /// Its base URL on loopback.
    pub url: String,
}

impl FakeApi {
    /// Starts the fake API `agent`'s CLI talks to and waits for its address.
    pub fn start(agent: Agent) -> Self {
        let (script, stderr) = match agent {
            Agent::Claude => ("fake-anthropic.mjs", Stdio::inherit()),
            // It logs every request to stderr.
            Agent::Codex => ("fake-openai.mjs", Stdio::null()),
            Agent::Gemini => ("fake-gemini.mjs", Stdio::inherit()),
        };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(script);
        let mut child = Command::new("node")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("node runs the fake API");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).expect("the fake API prints its address");
        Self {
            url: ready["listening"].as_str().unwrap().to_string(),
            child,
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One real CLI set up for a test: its fake API and its home.
pub struct RealCli {
    /// Which CLI.
    pub agent: Agent,
    /// The fake API it talks to.
    pub api: FakeApi,
    /// Its configuration home ([`Agent::home`]).
    pub home: tempfile::TempDir,
}

impl RealCli {
    /// Starts `agent`'s fake API and sets up its home.
    pub fn start(agent: Agent) -> Self {
        let api = FakeApi::start(agent);
        let home = agent.home(&api);
        Self { agent, api, home }
    }

    /// The environment the CLI runs with.
    pub fn env(&self) -> Vec<(String, String)> {
        self.agent.env(&self.api, self.home.path())
    }

    /// A hub that runs this CLI (Claude Code in permission mode `acceptEdits`, Codex in
    /// the sandbox `danger-full-access`, so that no sandbox is needed on the test
    /// machine: every command still asks), with a report debounce of 100 ms.
    pub async fn hub(&self) -> TestHub {
        self.hub_with(|_| {}).await
    }

    /// [`RealCli::hub`] with `edit` applied to its configuration last.
    pub async fn hub_with(&self, edit: impl FnOnce(&mut semantest_hub::LoadedConfig)) -> TestHub {
        let cli = self.agent.cli();
        let env = self.env().into_iter().collect();
        let agent = self.agent;
        TestHub::start_with(|c| {
            match agent {
                Agent::Claude => {
                    c.config.agent.cli_path = Some(cli);
                    c.config.agent.permission_mode = "acceptEdits".into();
                    c.config.agent.env = env;
                }
                Agent::Codex => {
                    c.config.agent.codex.cli_path = Some(cli);
                    c.config.agent.codex.sandbox = "danger-full-access".into();
                    c.config.agent.codex.env = env;
                }
                Agent::Gemini => {
                    c.config.agent.gemini.cli_path = Some(cli);
                    c.config.agent.gemini.env = env;
                }
            }
            c.config.coordination.report_debounce_ms = 100;
            edit(c);
        })
        .await
    }

    /// A new project whose agent is this CLI, subscribed on `ws`. Claude Code is the
    /// default agent; Gemini runs `gemini-2.5-flash` (a model of the default price
    /// table; naming it also skips the CLI's model router).
    pub async fn project(&self, hub: &TestHub, ws: &mut Ws) -> (String, tempfile::TempDir) {
        let (project_id, dir) = hub.project(ws).await;
        let configure = match self.agent {
            Agent::Claude => None,
            Agent::Codex => Some(json!({"project_id": project_id, "agent": "codex"})),
            Agent::Gemini => Some(
                json!({"project_id": project_id, "agent": "gemini", "model": "gemini-2.5-flash"}),
            ),
        };
        if let Some(params) = configure {
            let configured = ws.ok("project.configure", params).await;
            assert_eq!(configured["agent"], self.agent.name());
        }
        ws.subscribe(&project_id).await;
        (project_id, dir)
    }
}

/// The next notification of `method`, waiting up to [`CLI_WAIT`].
pub async fn notice(ws: &mut Ws, method: &str) -> Value {
    ws.notification_within(method, CLI_WAIT)
        .await
        .unwrap_or_else(|| panic!("no message within {CLI_WAIT:?} while waiting for {method}"))
}

/// [`Ws::run_output`] with waits of up to [`CLI_WAIT`].
pub async fn output(ws: &mut Ws, run_id: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    loop {
        let line = notice(ws, "project.output").await;
        if line["run_id"] != run_id {
            continue;
        }
        let done = line["kind"] == "run_finished";
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// Starts a run of `prompt` and returns its id and the approval it asks for.
pub async fn asking(ws: &mut Ws, project_id: &str, prompt: &str) -> (String, Value) {
    let run_id = run(ws, project_id, prompt).await;
    let approval = notice(ws, "agent.approval_requested").await["approval"].clone();
    assert_eq!(approval["run_id"], run_id);
    (run_id, approval)
}

/// `agent.approvals.answer` for `approval` with `params` (the decision and its fields).
pub async fn answer(ws: &mut Ws, approval: &Value, params: Value) -> Value {
    let mut params = params;
    params["approval_id"] = approval["id"].clone();
    ws.ok("agent.approvals.answer", params).await
}

/// The CLI's own lines of a run (everything the hub did not write).
pub fn agent_lines(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["stream"] == "stdout").collect()
}

/// A built-in agent worker runs a task that names this CLI (the project itself runs
/// Claude Code) and the task completes by the report file the agent's shell command
/// writes. The hub's policy lets shell commands run without asking, so the worker runs
/// alone. `task_id` is the task's id, also in the report's summary.
pub async fn an_agent_worker_completes_a_task_by_its_report_file(cli: &RealCli, task_id: &str) {
    let agent = cli.agent.name();
    let hub = cli
        .hub_with(|c| {
            c.config.agent.approvals.never_ask = vec!["Bash".into()];
        })
        .await;
    let mut coordinator = hub.client().await;
    coordinator
        .ok("hub.hello", json!({"role": "coordinator", "name": "batch"}))
        .await;
    let (project_id, dir) = hub.project(&mut coordinator).await;
    let report = format!(r#"{{"status":"completed","summary":"written by {agent}"}}"#);
    let task = json!({
        "id": task_id,
        "title": "Write the report",
        "agent": agent,
        "prompt": cli.agent.shell(&format!(
            "mkdir -p reports && printf '%s' '{report}' > reports/{task_id}.json"
        )),
    });
    let created = coordinator
        .ok(
            "task.create",
            json!({"project_id": project_id, "tasks": [task]}),
        )
        .await;
    assert!(created.to_string().contains(task_id), "{created}");
    coordinator
        .ok(
            "project.configure",
            json!({"project_id": project_id, "agent_workers": 1}),
        )
        .await;
    let completed = loop {
        let done = notice(&mut coordinator, "task.completed").await;
        if done["task_id"] == task_id {
            break done;
        }
    };
    assert_eq!(completed["source"], "report", "{completed}");
    assert_eq!(
        completed["report"]["summary"],
        format!("written by {agent}")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(format!("reports/{task_id}.json"))).unwrap(),
        report
    );
    let stored = coordinator
        .ok("task.get", json!({"task_id": task_id}))
        .await;
    assert_eq!(stored["agent"], agent);
    assert_eq!(stored["completed_by"], "report");
    hub.stop().await;
}

/// Figures, not a test of behaviour, for the `figures` test of each real CLI's module:
/// over 20 runs that each ask before a shell command, the time from the run's start to
/// its first output line (spawn), and the approval round trip through the hub (the
/// answer sent over RPC until the CLI reports the command's result; for Codex also until
/// the app server's `serverRequest/resolved`); then the resident memory of an idle live
/// session (every process of its group). `hub` runs `cli` in a mode that asks.
pub async fn figures(cli: &RealCli, hub: TestHub) {
    let agent = cli.agent;
    let mut ws = hub.client().await;
    let (project_id, _dir) = cli.project(&hub, &mut ws).await;
    let rounds = 20;
    let (mut spawn, mut round_trip, mut acked) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let asked = Instant::now();
        let prompt = agent.shell(&format!("echo {i} > f{i}.txt"));
        let run_id = run(&mut ws, &project_id, &prompt).await;
        loop {
            let line = notice(&mut ws, "project.output").await;
            if line["run_id"] == run_id && line["stream"] == "stdout" {
                spawn.push(asked.elapsed());
                break;
            }
        }
        let approval = notice(&mut ws, "agent.approval_requested").await["approval"].clone();
        let answered = Instant::now();
        answer(&mut ws, &approval, json!({"decision": "allow_once"})).await;
        loop {
            let line = notice(&mut ws, "project.output").await;
            if line["event"]["method"] == "serverRequest/resolved" {
                acked.push(answered.elapsed());
            }
            if agent.is_command_result(&line) {
                round_trip.push(answered.elapsed());
                break;
            }
        }
        output(&mut ws, &run_id).await;
    }
    // An idle live session: started, its turn over, waiting for a message.
    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "hello"}),
        )
        .await;
    loop {
        let line = notice(&mut ws, "project.output").await;
        if line["kind"] == "turn_ended" {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A blocking store call, refused on any thread of the runtime: on a thread of its own.
    let store = hub.hub().store().clone();
    let (runs, read) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || runs.send(store.unfinished_runs()));
    let pgid = read
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .find(|r| Some(r.id.as_str()) == sent["run_id"].as_str())
        .and_then(|r| r.pgid)
        .expect("the live session's process group");
    let rss = super::group_rss_kib(pgid);
    let acked = if acked.is_empty() {
        String::new()
    } else {
        format!(
            ", answer to the app server's acknowledgement p50 {:?} p99 {:?}",
            quantile(&mut acked, 0.5),
            quantile(&mut acked, 0.99)
        )
    };
    println!(
        "{}: spawn to first output line p50 {:?} p99 {:?}; approval round trip (answer to the command's result) p50 {:?} p99 {:?}{acked} ({rounds} runs); idle session RSS {rss} KiB",
        agent.name(),
        quantile(&mut spawn, 0.5),
        quantile(&mut spawn, 0.99),
        quantile(&mut round_trip, 0.5),
        quantile(&mut round_trip, 0.99),
    );
    ws.ok("agent.kill", json!({"project_id": project_id})).await;
    hub.stop().await;
}
