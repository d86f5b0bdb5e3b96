//! `/mcp`: the task queue's MCP tools over Streamable HTTP, served by the hub itself,
//! behind the same Host, Origin and token checks as `/ws`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{TestHub, quantile, timing_target};

/// Deadline for one MCP answer; generous, the machine is loaded.
const ANSWER: Duration = Duration::from_secs(60);

/// An MCP client of `/mcp` (Streamable HTTP, the 2025-06-18 revision).
#[derive(Clone)]
pub(crate) struct McpHttp {
    http: reqwest::Client,
    url: String,
    token: String,
    /// A Host header other than the URL's (a public hub's name), if any.
    host: Option<String>,
    session: Option<String>,
    next_id: u64,
}

impl McpHttp {
    /// Initializes a session with `token`.
    pub(crate) async fn start(hub: &TestHub, token: &str) -> Self {
        Self::start_at(hub.http("/mcp"), None, token).await
    }

    /// Initializes a session at `url` with `token`, sending `host` as the Host header.
    pub(crate) async fn start_at(url: String, host: Option<&str>, token: &str) -> Self {
        let mut mcp = Self {
            http: reqwest::Client::builder().timeout(ANSWER).build().unwrap(),
            url,
            token: token.to_string(),
            host: host.map(str::to_string),
            session: None,
            next_id: 0,
        };
        let (status, init) = mcp
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "http-agent", "version": "1.0.0"},
                }}),
            )
            .await;
        assert_eq!(status, 200, "{init}");
        assert_eq!(
            init["result"]["serverInfo"]["name"], "semantest-hub",
            "{init}"
        );
        assert!(mcp.session.is_some(), "a session id");
        let (status, _) = mcp
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(status, 202);
        mcp
    }

    /// POSTs one JSON-RPC message; returns the status and the JSON-RPC answer, read
    /// from a JSON body or from the `data:` lines of an event stream.
    pub(crate) async fn post(&mut self, message: Value) -> (u16, Value) {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(message.to_string());
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        if let Some(host) = &self.host {
            request = request.header("host", host);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if let Some(session) = response.headers().get("mcp-session-id") {
            self.session = Some(session.to_str().unwrap().to_string());
        }
        let text = response.text().await.unwrap();
        let answer = serde_json::from_str(&text).unwrap_or_else(|_| {
            text.lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
                .find(|value| value.get("id").is_some())
                .unwrap_or(Value::Null)
        });
        (status, answer)
    }

    /// Calls a tool; returns `(is_error, the JSON the tool answered)`.
    pub(crate) async fn tool(&mut self, name: &str, arguments: Value) -> (bool, Value) {
        self.next_id += 1;
        let (status, response) = self
            .post(
                json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                         "params": {"name": name, "arguments": arguments}}),
            )
            .await;
        assert_eq!(status, 200, "{name}: {response}");
        let result = &response["result"];
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        let value = serde_json::from_str(text)
            .unwrap_or_else(|err| panic!("{name} answered no JSON: {response}: {err}"));
        (result["isError"] == true, value)
    }

    pub(crate) async fn ok(&mut self, name: &str, arguments: Value) -> Value {
        let (is_error, value) = self.tool(name, arguments).await;
        assert!(!is_error, "{name} failed: {value}");
        value
    }

    pub(crate) async fn err(&mut self, name: &str, arguments: Value) -> Value {
        let (is_error, value) = self.tool(name, arguments).await;
        assert!(is_error, "{name} should fail: {value}");
        value["error"].clone()
    }
}

/// The worker loop through `/mcp`, with no process between the agent and the hub: the
/// task is pushed to the waiting `next_task`, completed with its report, and the batch
/// ends; the coordinator's `wait_for_tasks` returns it.
#[tokio::test]
async fn a_worker_and_a_coordinator_run_a_batch_through_the_http_endpoint() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    let mut worker = McpHttp::start(&hub, &hub.token).await;
    let mut coordinator = McpHttp::start(&hub, &hub.token).await;
    worker
        .ok("register_worker", json!({"name": "http-1"}))
        .await;
    let idle = worker.ok("next_task", json!({"wait_s": 1})).await;
    assert_eq!(idle["task"], Value::Null, "{idle}");

    coordinator
        .ok(
            "create_tasks",
            json!({"project": project_id, "tasks": [{"id": "h1", "title": "Over HTTP"}]}),
        )
        .await;
    let task = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(task["task"]["id"], "h1", "{task}");
    let held = ws.ok("task.get", json!({"task_id": "h1"})).await;
    assert_eq!(held["state"], "running", "{held}");
    worker
        .ok(
            "complete_task",
            json!({"task_id": "h1", "report": {"summary": "done over http"}}),
        )
        .await;
    let end = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(end["batch_finished"], true, "{end}");
    let finished = coordinator
        .ok(
            "wait_for_tasks",
            json!({"project": project_id, "wait_s": 30}),
        )
        .await;
    assert_eq!(finished["finished"][0]["id"], "h1", "{finished}");
    assert_eq!(
        finished["finished"][0]["report"]["summary"],
        "done over http"
    );
    assert_eq!(finished["batch_finished"], true);

    // Ending the session ends the worker's hub connection.
    let response = reqwest::Client::new()
        .delete(hub.http("/mcp"))
        .bearer_auth(&hub.token)
        .header("mcp-session-id", worker.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    crate::util::eventually("the worker's connection to close", async || {
        let workers = ws.ok("worker.list", json!({})).await;
        let names: Vec<String> = workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap_or_default().to_string())
            .collect();
        crate::util::when(names, |names| !names.iter().any(|n| n == "http-1"))
    })
    .await;
}

/// Sends a raw HTTP/1.1 request and returns its status.
async fn raw_status(port: u16, head: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0; 64];
    let n = tokio::time::timeout(ANSWER, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

/// `/mcp` refuses what `/ws` refuses: no token, a wrong token, a foreign Origin or
/// Host, a session taken over by another token; a token without `tasks` gets
/// `FORBIDDEN` from every tool.
#[tokio::test]
async fn the_http_endpoint_takes_only_a_token_from_an_allowed_host_and_origin() {
    let hub = TestHub::start().await;
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "x", "version": "1"}}})
    .to_string();
    let request = |host: &str, extra: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{extra}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let port = hub.port;
    let here = format!("127.0.0.1:{port}");
    let bearer = format!("Authorization: Bearer {}\r\n", hub.token);
    assert_eq!(raw_status(port, &request(&here, &bearer)).await, 200);
    assert_eq!(raw_status(port, &request(&here, "")).await, 401, "no token");
    let wrong = format!("Authorization: Bearer {}\r\n", "0".repeat(64));
    assert_eq!(raw_status(port, &request(&here, &wrong)).await, 401);
    let foreign_origin = format!("{bearer}Origin: https://evil.example\r\n");
    assert_eq!(
        raw_status(port, &request(&here, &foreign_origin)).await,
        403
    );
    let null_origin = format!("{bearer}Origin: null\r\n");
    assert_eq!(raw_status(port, &request(&here, &null_origin)).await, 403);
    let rebound = format!("evil.example:{port}");
    assert_eq!(raw_status(port, &request(&rebound, &bearer)).await, 403);

    // A token with `events` only: the session opens, and every tool is refused.
    let mut ws = hub.client().await;
    let events = ws
        .ok("client.create", json!({"name": "ev", "scopes": ["events"]}))
        .await;
    let mut mcp = McpHttp::start(&hub, events["token"].as_str().unwrap()).await;
    let error = mcp.err("register_worker", json!({"name": "w"})).await;
    assert_eq!(error["kind"], "FORBIDDEN", "{error}");
    let error = mcp.err("task_status", json!({"project": "p"})).await;
    assert_eq!(error["kind"], "FORBIDDEN", "{error}");

    // A session belongs to the token that first used it.
    let mut owner = McpHttp::start(&hub, &hub.token).await;
    owner.ok("register_worker", json!({"name": "mine"})).await;
    let tasks = ws
        .ok(
            "client.create",
            json!({"name": "other", "scopes": ["tasks"]}),
        )
        .await;
    owner.token = tasks["token"].as_str().unwrap().to_string();
    let error = owner.err("next_task", json!({"wait_s": 1})).await;
    assert_eq!(error["kind"], "UNAUTHORIZED", "{error}");
}

/// `next_task` follows the batch of the projects this worker took tasks from: another
/// project's batch ending is not its end, and once its batch is finished, every later
/// call says so (not only the first), until a new task comes. The worker's card says
/// it is a chat over MCP, and which.
#[tokio::test]
async fn the_batch_a_worker_is_told_finished_is_its_projects_batch() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (mine, _a) = hub.project(&mut ws).await;
    let (other, _b) = hub.project(&mut ws).await;
    let mut worker = McpHttp::start(&hub, &hub.token).await;
    worker
        .ok(
            "register_worker",
            json!({"name": "coder", "capabilities": ["code"]}),
        )
        .await;
    let workers = ws.ok("worker.list", json!({})).await;
    let listed = &workers["workers"][0];
    assert_eq!(listed["via"], "mcp", "{workers}");
    assert_eq!(listed["agent"], "http-agent 1.0.0", "{workers}");

    // This worker's project: a task it takes, and one of a type it does not take.
    ws.ok(
        "task.create",
        json!({"project_id": mine, "tasks": [
            {"id": "m1", "title": "Code it", "type": "code"},
            {"id": "m2", "title": "Document it", "type": "docs"},
        ]}),
    )
    .await;
    let task = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(task["task"]["id"], "m1", "{task}");
    worker
        .ok(
            "complete_task",
            json!({"task_id": "m1", "report": {"summary": "coded"}}),
        )
        .await;

    // Another project's batch ends: the workers hear `project.completed`, but this
    // worker's batch still has m2 to do.
    ws.ok(
        "task.create",
        json!({"project_id": other, "tasks": [{"id": "o1", "title": "Elsewhere", "type": "docs"}]}),
    )
    .await;
    ws.ok("task.cancel", json!({"task_id": "o1"})).await;
    let waiting = worker.ok("next_task", json!({"wait_s": 3})).await;
    assert_eq!(waiting["task"], Value::Null, "{waiting}");
    assert_eq!(
        waiting["batch_finished"], false,
        "another project's batch is not this worker's: {waiting}"
    );

    // Its own batch ends: said now, and again on every later call.
    ws.ok("task.cancel", json!({"task_id": "m2"})).await;
    for call in 0..2 {
        let end = worker.ok("next_task", json!({"wait_s": 30})).await;
        assert_eq!(end["batch_finished"], true, "call {call}: {end}");
        assert_eq!(end["batch"]["project_id"], mine.as_str(), "{end}");
        assert_eq!(end["batch"]["completed"], 1, "{end}");
        assert_eq!(end["batch"]["cancelled"], 1, "{end}");
    }

    // A new task in either project is handed out: the batch goes on.
    ws.ok(
        "task.create",
        json!({"project_id": other, "tasks": [{"id": "o2", "title": "More", "type": "code"}]}),
    )
    .await;
    let more = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(more["task"]["id"], "o2", "{more}");
}

/// A worker that was given no task stops with the batch it waited through.
#[tokio::test]
async fn a_worker_given_no_task_is_told_when_the_batch_it_waited_through_ends() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    let mut worker = McpHttp::start(&hub, &hub.token).await;
    worker
        .ok(
            "register_worker",
            json!({"name": "idle", "capabilities": ["code"]}),
        )
        .await;
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [{"id": "d1", "title": "Docs", "type": "docs"}]}),
    )
    .await;
    ws.ok("task.cancel", json!({"task_id": "d1"})).await;
    let end = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(end["batch_finished"], true, "{end}");
    assert_eq!(end["batch"]["project_id"], project_id.as_str(), "{end}");
}

/// Figures, reported with `--nocapture`: the MCP round trip of `next_task` for a task the
/// hub has assigned already (p50, p99), and the time from sending `task.create` to a
/// worker's waiting `next_task` answering with the task (p50, p99). Behaviour asserted:
/// every task reaches the worker, in order.
#[tokio::test]
async fn figures_next_task_round_trip_and_creation_to_a_waiting_worker() {
    const SAMPLES: usize = 100;
    // Each round sends a few requests on the worker's connection, faster than any chat
    // would: the per-connection rate is not what is measured.
    let hub = TestHub::start_with(|config| {
        config.config.limits.rate_limit_per_s = 10_000;
        config.config.limits.rate_limit_burst = 10_000;
    })
    .await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    let mut worker = McpHttp::start(&hub, &hub.token).await;
    worker
        .ok(
            "register_worker",
            json!({"name": "timed", "capabilities": ["timed"]}),
        )
        .await;
    // A task no worker takes keeps the batch open, so a waiting next_task waits.
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [{"id": "open", "title": "keeps the batch open", "type": "other"}]}),
    )
    .await;
    let mut round_trips = Vec::with_capacity(SAMPLES);
    let mut to_worker = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        // The round trip: the task is assigned before next_task is sent.
        let id = format!("rt{i}");
        ws.ok(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": id, "title": "timed", "type": "timed"}]}),
        )
        .await;
        crate::util::eventually("the task to be assigned", async || {
            let task = ws.ok("task.get", json!({"task_id": id})).await;
            crate::util::when(task, |t| t["state"] == "running")
        })
        .await;
        let sent = std::time::Instant::now();
        let task = worker.ok("next_task", json!({"wait_s": 30})).await;
        round_trips.push(sent.elapsed());
        assert_eq!(task["task"]["id"], id.as_str(), "{task}");
        worker
            .ok(
                "complete_task",
                json!({"task_id": id, "report": {"summary": "ok"}}),
            )
            .await;

        // Creation to a waiting worker: next_task is sent first, then the task created.
        let id = format!("cw{i}");
        let mut waiting = worker.clone();
        let answer = tokio::spawn(async move {
            let task = waiting.ok("next_task", json!({"wait_s": 30})).await;
            (waiting, task, std::time::Instant::now())
        });
        tokio::task::yield_now().await;
        let created = std::time::Instant::now();
        ws.ok(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": id, "title": "timed", "type": "timed"}]}),
        )
        .await;
        let (back, task, received) = answer.await.unwrap();
        worker = back;
        to_worker.push(received.saturating_duration_since(created));
        assert_eq!(task["task"]["id"], id.as_str(), "{task}");
        worker
            .ok(
                "complete_task",
                json!({"task_id": id, "report": {"summary": "ok"}}),
            )
            .await;
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let (rt50, rt99) = (
        quantile(&mut round_trips, 0.5),
        quantile(&mut round_trips, 0.99),
    );
    let (cw50, cw99) = (
        quantile(&mut to_worker, 0.5),
        quantile(&mut to_worker, 0.99),
    );
    timing_target(
        "mcp next_task round trip to the assignment",
        &format!(
            "p50 {:.2} ms, p99 {:.2} ms ({SAMPLES} samples)",
            ms(rt50),
            ms(rt99)
        ),
        "p99 under 100 ms",
        rt99 < std::time::Duration::from_millis(100),
    );
    timing_target(
        "task creation to a waiting MCP worker",
        &format!(
            "p50 {:.2} ms, p99 {:.2} ms ({SAMPLES} samples)",
            ms(cw50),
            ms(cw99)
        ),
        "p99 under 100 ms",
        cw99 < std::time::Duration::from_millis(100),
    );
}

/// Sends a raw HTTP/1.1 request (`Connection: close`) and returns the status, the
/// `Mcp-Session-Id` header if any, and the body.
async fn raw_exchange(port: u16, head: &str) -> (u16, Option<String>, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(ANSWER, stream.read_to_end(&mut buf))
        .await
        .expect("the response ends")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let session = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("mcp-session-id"))
        .map(|(_, value)| value.trim().to_string());
    (status, session, body.to_string())
}

/// An `initialize` POSTed by hand with `token`: status, session id, body.
async fn raw_initialize(port: u16, token: &str) -> (u16, Option<String>, String) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "flood", "version": "1"}}})
    .to_string();
    raw_exchange(
        port,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// One token may not open MCP sessions without end: with
/// `limits.mcp_sessions_per_token` open, its next `initialize` gets 429 and a JSON-RPC
/// `LIMIT_REACHED` error with no id, and opens nothing; another token still opens one;
/// ending a session with `DELETE` frees its slot, and the sessions held keep working.
#[tokio::test]
async fn one_token_holds_at_most_its_cap_of_mcp_sessions() {
    const CAP: usize = 3;
    let hub = TestHub::start_with(|config| {
        config.config.limits.mcp_sessions_per_token = CAP;
    })
    .await;
    let port = hub.port;
    let mut sessions = Vec::new();
    for _ in 0..CAP {
        let (status, session, body) = raw_initialize(port, &hub.token).await;
        assert_eq!(status, 200, "{body}");
        sessions.push(session.expect("a session id"));
    }
    let (status, session, body) = raw_initialize(port, &hub.token).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(session, None, "no session is opened");
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refused["id"], Value::Null, "{refused}");
    assert_eq!(
        refused["error"]["data"]["kind"], "LIMIT_REACHED",
        "{refused}"
    );
    assert_eq!(refused["error"]["data"]["limit"], CAP, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("mcp_sessions_per_token")),
        "{refused}"
    );

    // Another token has its own slots.
    let mut ws = hub.client().await;
    let other = ws
        .ok(
            "client.create",
            json!({"name": "other", "scopes": ["tasks"]}),
        )
        .await;
    let (status, _, body) = raw_initialize(port, other["token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");

    // Ending one session frees its slot, once.
    let delete = format!(
        "DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n\
         Mcp-Session-Id: {}\r\nMcp-Protocol-Version: 2025-06-18\r\nConnection: close\r\n\r\n",
        hub.token, sessions[0]
    );
    let (status, _, body) = raw_exchange(port, &delete).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, _, body) = raw_initialize(port, &hub.token).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = raw_initialize(port, &hub.token).await;
    assert_eq!(status, 429, "{body}");

    // The sessions held still work.
    let post = |message: Value| {
        let message = message.to_string();
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n\
             Mcp-Session-Id: {}\r\nMcp-Protocol-Version: 2025-06-18\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{message}",
            hub.token,
            sessions[1],
            message.len()
        )
    };
    let initialized = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let (status, _, body) = raw_exchange(port, &initialized).await;
    assert_eq!(status, 202, "{body}");
    let list = post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let (status, _, body) = raw_exchange(port, &list).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("merge_task"), "{body}");
    hub.stop().await;
}
