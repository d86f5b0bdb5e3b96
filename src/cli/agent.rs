//! `agent run`: start a run, stream its output for a person, exit with its status.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::client::HubClient;

async fn resolve_project(client: &mut HubClient, project: &str) -> Result<String> {
    let list = client.request("project.list", json!({})).await?;
    let projects = list["projects"].as_array().cloned().unwrap_or_default();
    if let Some(found) = projects.iter().find(|p| p["id"] == project) {
        return Ok(found["id"].as_str().unwrap_or_default().to_string());
    }
    let dir = Path::new(project);
    if let Ok(canonical) = std::fs::canonicalize(dir)
        && let Some(found) = projects
            .iter()
            .find(|p| p["path"].as_str() == canonical.to_str())
    {
        return Ok(found["id"].as_str().unwrap_or_default().to_string());
    }
    bail!(
        "{project} is not a project id or a registered directory; add it with `semantest-hub project add`"
    )
}

pub(super) async fn agent_run(
    client: &mut HubClient,
    project: &str,
    prompt: &str,
    new_session: bool,
    timeout: Option<u64>,
) -> Result<ExitCode> {
    let project_id = resolve_project(client, project).await?;
    client
        .request("project.subscribe", json!({"project_id": project_id}))
        .await?;
    let started = client
        .request(
            "agent.run",
            json!({"project_id": project_id, "prompt": prompt, "new_session": new_session, "timeout_s": timeout}),
        )
        .await?;
    let run_id = started["run_id"].as_str().unwrap_or_default().to_string();
    let mut interrupted = false;
    let mut stdout = std::io::stdout();
    loop {
        let message = tokio::select! {
            message = client.next_notification() => message?,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                eprintln!("\nstopping the agent…");
                client.request("agent.kill", json!({"project_id": project_id})).await.ok();
                continue;
            }
        };
        if message["method"] != "project.output" {
            continue;
        }
        let output = &message["params"];
        if output["run_id"].as_str() != Some(run_id.as_str()) {
            continue;
        }
        if let Some(status) = print_output(&mut stdout, output) {
            return Ok(ExitCode::from(match status.as_str() {
                "succeeded" => 0,
                "timed_out" => 124,
                "killed" => 130,
                _ => 1,
            }));
        }
    }
}

/// Prints one output line for a person; returns the run's status on its last line.
fn print_output(out: &mut impl Write, output: &Value) -> Option<String> {
    let event = &output["event"];
    match output["kind"].as_str().unwrap_or_default() {
        "assistant" => {
            for block in event["message"]["content"].as_array().into_iter().flatten() {
                match block["type"].as_str() {
                    Some("text") => {
                        let _ = writeln!(out, "{}", block["text"].as_str().unwrap_or_default());
                    }
                    Some("tool_use") => {
                        let _ = writeln!(
                            out,
                            "▶ {} {}",
                            block["name"].as_str().unwrap_or("tool"),
                            block["input"]
                        );
                    }
                    _ => {}
                }
            }
        }
        "result" => {
            let _ = writeln!(
                out,
                "■ {} in {:.1} s, {} turns, ${:.4}",
                event["subtype"].as_str().unwrap_or("done"),
                event["duration_ms"].as_f64().unwrap_or_default() / 1000.0,
                event["num_turns"].as_i64().unwrap_or_default(),
                event["total_cost_usd"].as_f64().unwrap_or_default()
            );
        }
        "text" => {
            let _ = writeln!(out, "{}", output["text"].as_str().unwrap_or_default());
        }
        "stderr" => eprintln!("{}", output["text"].as_str().unwrap_or_default()),
        "run_finished" => {
            let status = event["status"].as_str().unwrap_or("failed").to_string();
            if let Some(reason) = event["reason"].as_str() {
                eprintln!("run {status}: {reason}");
            }
            return Some(status);
        }
        _ => {}
    }
    None
}
