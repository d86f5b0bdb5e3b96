//! `project …`, `logs` and `ps`: the project registry, a project's output log, and what
//! runs now.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::agent::print_output;
use super::args::{ListFormat, ProjectCommand};
use super::client::HubClient;
use super::output::{print_json, text_or};

/// The id of `project`: a project id, or a registered project's directory (compared
/// after canonicalising, as the hub stores it).
///
/// # Errors
/// When it is neither, saying how to register it.
pub(super) async fn resolve_project(client: &mut HubClient, project: &str) -> Result<String> {
    let list = client.request("project.list", json!({})).await?;
    let projects = list["projects"].as_array().cloned().unwrap_or_default();
    if let Some(found) = projects.iter().find(|p| p["id"] == project) {
        return Ok(text_or(found, "id", ""));
    }
    if let Ok(canonical) = tokio::fs::canonicalize(project).await
        && let Some(found) = projects
            .iter()
            .find(|p| p["path"].as_str() == canonical.to_str())
    {
        return Ok(text_or(found, "id", ""));
    }
    bail!(
        "{project} is not a project id or a registered directory; add it with `semantest-hub project add`"
    )
}

/// `project add|list|show|rm`.
pub(super) async fn project_command(
    client: &mut HubClient,
    action: ProjectCommand,
) -> Result<ExitCode> {
    match action {
        ProjectCommand::Add { dir, name, json } => {
            let path = std::path::absolute(&dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            let project = client
                .request("project.create", json!({"path": path, "name": name}))
                .await?;
            if json {
                print_json(&project)?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "{}  {}  {}",
                text_or(&project, "id", ""),
                text_or(&project, "name", ""),
                text_or(&project, "path", "")
            )?;
        }
        ProjectCommand::List(format) => {
            let list = client.request("project.list", json!({})).await?;
            format.print(
                &list,
                "projects",
                &[
                    ("ID", &|p| text_or(p, "id", "")),
                    ("STATE", &|p| text_or(p, "state", "")),
                    ("NAME", &|p| text_or(p, "name", "")),
                    ("PATH", &|p| text_or(p, "path", "")),
                ],
                "no projects; add one with `semantest-hub project add DIR`",
            )?;
        }
        ProjectCommand::Show { project, json } => {
            let project_id = resolve_project(client, &project).await?;
            let view = client
                .request("project.get", json!({"project_id": project_id}))
                .await?;
            if json {
                print_json(&view)?;
            } else {
                let run = &view["run"];
                let rows = [
                    ("id", text_or(&view, "id", "")),
                    ("name", text_or(&view, "name", "")),
                    ("path", text_or(&view, "path", "")),
                    ("state", text_or(&view, "state", "")),
                    ("reason", text_or(&view, "reason", "-")),
                    (
                        "session",
                        text_or(&view, "session_id", "none (the next run starts one)"),
                    ),
                    (
                        "run",
                        run["id"].as_str().map_or_else(
                            || "-".to_string(),
                            |id| format!("{id} since {}", text_or(run, "started_at", "?")),
                        ),
                    ),
                    ("lines", view["last_seq"].as_u64().unwrap_or(0).to_string()),
                    ("created", text_or(&view, "created_at", "")),
                ];
                for (key, value) in rows {
                    outln!("{key:<8} {value}")?;
                }
            }
        }
        ProjectCommand::Rm { project, json } => {
            let project_id = resolve_project(client, &project).await?;
            let removed = client
                .request("project.delete", json!({"project_id": project_id}))
                .await?;
            if json {
                print_json(&removed)?;
            } else {
                outln!("removed {project_id}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `logs` prints.
pub(super) struct LogsRequest {
    /// A project id or directory.
    pub(super) project: String,
    /// Keep following live output.
    pub(super) follow: bool,
    /// RFC 3339 lower bound on the time a line was read.
    pub(super) since: Option<String>,
    /// Only this run's lines.
    pub(super) run: Option<String>,
    /// JSON lines instead of text.
    pub(super) json: bool,
}

/// `logs PROJECT [-f] [--since TIME] [--run RUN_ID] [--json]`: the stored lines page by
/// page (`messages.list`, ascending), then, with `-f`, the live ones (`project.subscribe`
/// from the last seq printed, so nothing is missed or printed twice) until Ctrl-C.
pub(super) async fn logs(client: &mut HubClient, request: LogsRequest) -> Result<ExitCode> {
    let project_id = resolve_project(client, &request.project).await?;
    // Listening for Ctrl-C before the first line is printed: a SIGINT that arrives once
    // output has begun ends the command with 0, never with the signal's default action.
    let mut interrupt = request.follow.then(super::interrupt).transpose()?;
    let print = |line: &Value| -> Result<()> {
        if let Some(run) = &request.run
            && line["run_id"].as_str() != Some(run.as_str())
        {
            return Ok(());
        }
        if request.json {
            outln!("{line}")
        } else {
            print_output(line).map(drop)
        }
    };
    let mut after_seq = 0u64;
    loop {
        let mut params = json!({"project_id": project_id, "after_seq": after_seq, "limit": 1000});
        if let Some(since) = &request.since {
            params["since"] = json!(since);
        }
        let page = client.request("messages.list", params).await?;
        for line in page["messages"].as_array().into_iter().flatten() {
            after_seq = after_seq.max(line["seq"].as_u64().unwrap_or(after_seq));
            print(line)?;
        }
        if page["has_more"] != true {
            break;
        }
    }
    let Some(interrupt) = interrupt.as_mut() else {
        return Ok(ExitCode::SUCCESS);
    };
    client
        .request(
            "project.subscribe",
            json!({"project_id": project_id, "after_seq": after_seq}),
        )
        .await?;
    loop {
        let message = tokio::select! {
            message = client.next_notification() => message?,
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
        };
        if message["method"] == "project.output" && message["params"]["project_id"] == project_id {
            print(&message["params"])?;
        } else if message["method"] == "project.deleted"
            && message["params"]["project_id"] == project_id
        {
            bail!("the project was removed");
        }
    }
}

/// `ps`: each running agent (from `project.list`) and each task a worker runs now
/// (`task.list` with `state: running`, per project).
pub(super) async fn ps(client: &mut HubClient, format: ListFormat) -> Result<ExitCode> {
    let projects = client.request("project.list", json!({})).await?;
    let mut items = Vec::new();
    for project in projects["projects"].as_array().into_iter().flatten() {
        let name = text_or(project, "name", "");
        if project["state"] == "running" {
            let run = &project["run"];
            items.push(json!({
                "id": run["id"], "kind": "agent", "project_id": project["id"],
                "project": name, "since": run["started_at"], "detail": "claude",
            }));
        }
        let mut after_seq: Option<i64> = None;
        loop {
            let page = client
                .request(
                    "task.list",
                    json!({"project_id": project["id"], "state": "running", "after_seq": after_seq}),
                )
                .await?;
            for task in page["tasks"].as_array().into_iter().flatten() {
                after_seq = task["seq"].as_i64();
                items.push(json!({
                    "id": task["id"], "kind": "task", "project_id": project["id"],
                    "project": name, "since": task["updated_at"],
                    "detail": format!("{} (worker {})", text_or(task, "title", ""),
                        text_or(task, "worker_id", "?")),
                }));
            }
            if page["has_more"] != true {
                break;
            }
        }
    }
    format.print(
        &json!({ "running": items }),
        "running",
        &[
            ("ID", &|i| text_or(i, "id", "")),
            ("KIND", &|i| text_or(i, "kind", "")),
            ("PROJECT", &|i| text_or(i, "project", "")),
            ("SINCE", &|i| text_or(i, "since", "")),
            ("WHAT", &|i| text_or(i, "detail", "")),
        ],
        "nothing runs now",
    )?;
    Ok(ExitCode::SUCCESS)
}
