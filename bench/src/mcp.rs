//! The MCP worker loop over the hub's Streamable HTTP endpoint (`/mcp`), hub only (the
//! bare server has no MCP): how long `next_task` takes to return a task the hub has
//! assigned already (the MCP round trip), and how long a worker's waiting `next_task`
//! takes to return a task from the moment `task.create` is sent.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::stats::Latencies;
use crate::target::Endpoint;
use crate::wsclient::{connect, rpc};

/// A deadline for one answer; generous, the machine is shared.
const ANSWER: Duration = Duration::from_secs(60);

/// One MCP session at `/mcp`.
#[derive(Clone)]
struct Session {
    http: reqwest::Client,
    url: String,
    token: String,
    id: Option<String>,
    next: u64,
}

impl Session {
    async fn open(endpoint: &Endpoint) -> Result<Self> {
        let url = endpoint
            .ws_url
            .replacen("ws://", "http://", 1)
            .replace("/ws", "/mcp");
        let mut session = Self {
            http: reqwest::Client::builder().timeout(ANSWER).build()?,
            url,
            token: endpoint.token.clone().context("the hub's token")?,
            id: None,
            next: 0,
        };
        session
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"}}}),
            )
            .await?;
        session
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(session)
    }

    /// POSTs one message; returns the JSON-RPC answer (a JSON body, or the `data:` line
    /// of an event stream that has an id), `Null` for none.
    async fn post(&mut self, message: Value) -> Result<Value> {
        let mut request = self
            .http
            .post(&self.url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(message.to_string());
        if let Some(id) = &self.id {
            request = request.header("mcp-session-id", id);
        }
        let response = request.send().await?;
        let status = response.status();
        if let Some(id) = response.headers().get("mcp-session-id") {
            self.id = Some(id.to_str()?.to_string());
        }
        let text = response.text().await?;
        if !status.is_success() {
            bail!("/mcp answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or_else(|_| {
            text.lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
                .find(|value| value.get("id").is_some())
                .unwrap_or(Value::Null)
        }))
    }

    /// Calls a tool and returns its JSON; a tool error is an error.
    async fn tool(&mut self, name: &str, arguments: Value) -> Result<Value> {
        self.next += 1;
        let answer = self
            .post(
                json!({"jsonrpc": "2.0", "id": self.next, "method": "tools/call",
                         "params": {"name": name, "arguments": arguments}}),
            )
            .await?;
        let result = &answer["result"];
        let value: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap_or(""))
                .with_context(|| format!("{name}: {answer}"))?;
        if result["isError"] == true {
            bail!("{name} failed: {value}");
        }
        Ok(value)
    }
}

/// `samples` of each figure: the `next_task` round trip for a task assigned already,
/// and task creation to a waiting worker's `next_task` answer.
///
/// # Errors
/// HTTP or RPC failures, or a task that does not reach the worker.
pub async fn worker_loop(endpoint: &Endpoint, samples: usize) -> Result<(Latencies, Latencies)> {
    let dir = tempfile::tempdir()?;
    let (mut sink, mut source) = connect(endpoint).await?.split();
    let mut id = 0u64;
    let mut call = async |method: &str, params: Value| {
        id += 1;
        rpc(&mut sink, &mut source, id, method, &params).await
    };
    call("hub.hello", json!({"role": "coordinator", "name": "bench"})).await?;
    let project = call("project.create", json!({"path": dir.path()})).await?;
    let project_id = project["id"].as_str().context("project id")?.to_string();
    let mut worker = Session::open(endpoint).await?;
    worker
        .tool(
            "register_worker",
            json!({"name": "bench", "capabilities": ["timed"]}),
        )
        .await?;
    // A task no worker takes keeps the batch open, so a waiting next_task waits.
    call(
        "task.create",
        json!({"project_id": project_id, "tasks": [{"id": "open", "title": "open", "type": "other"}]}),
    )
    .await?;
    let (mut round_trips, mut to_worker) = (Latencies::default(), Latencies::default());
    for i in 0..samples {
        let task = format!("rt{i}");
        call(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": task, "title": "timed", "type": "timed"}]}),
        )
        .await?;
        let deadline = Instant::now() + ANSWER;
        while call("task.get", json!({"task_id": task})).await?["state"] != "running" {
            if Instant::now() > deadline {
                bail!("{task} was not assigned");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let sent = Instant::now();
        let got = worker.tool("next_task", json!({"wait_s": 30})).await?;
        round_trips.push_us(sent.elapsed().as_micros() as u64);
        if got["task"]["id"] != task.as_str() {
            bail!("next_task returned {got}, not {task}");
        }
        worker
            .tool(
                "complete_task",
                json!({"task_id": task, "report": {"summary": "ok"}}),
            )
            .await?;

        let task = format!("cw{i}");
        let mut waiting = worker.clone();
        let answer = tokio::spawn(async move {
            let got = waiting.tool("next_task", json!({"wait_s": 30})).await;
            (waiting, got, Instant::now())
        });
        // Lets the waiting call reach the hub before the task is created.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let created = Instant::now();
        call(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": task, "title": "timed", "type": "timed"}]}),
        )
        .await?;
        let (back, got, received) = answer.await?;
        worker = back;
        let got = got?;
        to_worker.push_us(received.saturating_duration_since(created).as_micros() as u64);
        if got["task"]["id"] != task.as_str() {
            bail!("the waiting next_task returned {got}, not {task}");
        }
        worker
            .tool(
                "complete_task",
                json!({"task_id": task, "report": {"summary": "ok"}}),
            )
            .await?;
    }
    Ok((round_trips, to_worker))
}
