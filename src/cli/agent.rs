//! `agent run|kill|new-session` and `approvals`: start a run and stream its output for a
//! person, asking them on the terminal about the tool calls it wants to make, and exit
//! with its status; stop a run; forget a session; list and answer approvals.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::args::{ApprovalsCommand, ListFormat};
use super::client::HubClient;
use super::output::text_or;
use super::projects::resolve_project;

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
    // Tool calls are asked about here when a person is at the terminal; otherwise they
    // wait for the dashboard or `semantest-hub approvals`.
    let ask = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
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
        if ask
            && message["method"] == "agent.approval_requested"
            && message["params"]["approval"]["run_id"] == run_id.as_str()
        {
            ask_on_terminal(client, &message["params"]["approval"]).await?;
            continue;
        }
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
pub(super) fn print_output(out: &mut impl Write, output: &Value) -> Option<String> {
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

/// `agent kill PROJECT`: stops the project's run; exits 0 once the hub has signalled it.
pub(super) async fn agent_kill(client: &mut HubClient, project: &str) -> Result<ExitCode> {
    let project_id = resolve_project(client, project).await?;
    client
        .request("agent.kill", json!({"project_id": project_id}))
        .await?;
    println!("stopping the agent of {project_id}");
    Ok(ExitCode::SUCCESS)
}

/// `agent new-session PROJECT`: the next run starts a new conversation.
pub(super) async fn agent_new_session(client: &mut HubClient, project: &str) -> Result<ExitCode> {
    let project_id = resolve_project(client, project).await?;
    client
        .request("agent.new_session", json!({"project_id": project_id}))
        .await?;
    println!("the next run of {project_id} starts a new session");
    Ok(ExitCode::SUCCESS)
}

/// Reads one line from the terminal, off the runtime's workers.
async fn read_line(prompt: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok::<_, std::io::Error>(line.trim_end_matches(['\r', '\n']).to_string())
    })
    .await?
    .context("cannot read the terminal")
}

/// What a tool call would do, in one line: its command, file or input, with control
/// characters shown escaped. The input comes from the agent, which may follow
/// instructions planted in what it reads: raw, an escape sequence could redraw the line
/// and show the person a command other than the one they allow.
fn describe(approval: &Value) -> String {
    let input = &approval["input"];
    let text = ["command", "file_path", "url", "pattern"]
        .iter()
        .find_map(|key| input[*key].as_str().map(str::to_string))
        .unwrap_or_else(|| input.to_string());
    printable(&text)
}

/// `text` with every control character (newlines, ESC, ...) escaped as `\n`, `\u{1b}`.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Asks `y/n/e(dit)/a(lways)` about an approval and sends the answer. An answer from
/// elsewhere that came first is reported, not an error.
async fn ask_on_terminal(client: &mut HubClient, approval: &Value) -> Result<()> {
    let id = text_or(approval, "id", "");
    let tool = printable(&text_or(approval, "tool_name", "tool"));
    eprintln!("? {tool} wants to run: {}", describe(approval));
    let params = loop {
        let answer =
            read_line("  allow? [y]es, [n]o, [e]dit, [a]lways for this project: ".into()).await?;
        match answer.trim().to_lowercase().as_str() {
            "y" | "yes" => break json!({"approval_id": id, "decision": "allow_once"}),
            "a" | "always" => {
                break json!({"approval_id": id, "decision": "allow_always", "scope": "project"});
            }
            "n" | "no" => {
                let message = read_line("  tell the agent why (optional): ".into()).await?;
                let message = if message.trim().is_empty() {
                    "The user denied this from the terminal.".to_string()
                } else {
                    message
                };
                break json!({"approval_id": id, "decision": "reject_once", "message": message});
            }
            "e" | "edit" => {
                let mut input = approval["input"].clone();
                if input["command"].is_string() {
                    let command = read_line("  command: ".into()).await?;
                    input["command"] = Value::String(command);
                } else {
                    let text = read_line("  input (JSON object): ".into()).await?;
                    match serde_json::from_str::<Value>(&text) {
                        Ok(value) if value.is_object() => input = value,
                        _ => {
                            eprintln!("  not a JSON object; asking again");
                            continue;
                        }
                    }
                }
                break json!({"approval_id": id, "decision": "allow_once", "updated_input": input});
            }
            _ => eprintln!("  answer y, n, e or a"),
        }
    };
    match client.request("agent.approvals.answer", params).await {
        Ok(answered) => {
            eprintln!(
                "  {}",
                text_or(&answered["resolution"], "outcome", "answered")
            );
            Ok(())
        }
        Err(err) => {
            // Answered from the dashboard first, or withdrawn: the run goes on either way.
            eprintln!("  {err:#}");
            Ok(())
        }
    }
}

/// `approvals [list|allow|deny]`.
pub(super) async fn approvals_command(
    client: &mut HubClient,
    action: Option<ApprovalsCommand>,
) -> Result<ExitCode> {
    let action = action.unwrap_or(ApprovalsCommand::List(ListFormat {
        json: false,
        quiet: false,
    }));
    let params = match action {
        ApprovalsCommand::List(format) => {
            let list = client.request("agent.approvals.list", json!({})).await?;
            format.print(
                &list,
                "approvals",
                &[
                    ("ID", &|a| text_or(a, "id", "")),
                    ("PROJECT", &|a| text_or(a, "project_id", "")),
                    ("TOOL", &|a| text_or(a, "tool_name", "")),
                    ("ASKED", &|a| text_or(a, "asked_at", "")),
                    ("INPUT", &describe),
                ],
                "no pending approvals",
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCommand::Allow { id, input, always } => {
            let updated: Option<Value> = match input {
                Some(text) => {
                    let value: Value =
                        serde_json::from_str(&text).context("--input is not valid JSON")?;
                    if !value.is_object() {
                        bail!("--input must be a JSON object, e.g. '{{\"command\": \"ls\"}}'");
                    }
                    Some(value)
                }
                None => None,
            };
            let decision = if always.is_some() {
                "allow_always"
            } else {
                "allow_once"
            };
            json!({"approval_id": id, "decision": decision, "updated_input": updated, "scope": always})
        }
        ApprovalsCommand::Deny {
            id,
            message,
            interrupt,
            always,
        } => {
            let decision = if always.is_some() {
                "reject_always"
            } else {
                "reject_once"
            };
            json!({"approval_id": id, "decision": decision, "message": message,
                   "interrupt": interrupt, "scope": always})
        }
    };
    let answered = client.request("agent.approvals.answer", params).await?;
    println!(
        "{} {} ({})",
        text_or(&answered["resolution"], "outcome", "answered"),
        text_or(&answered["approval"], "id", ""),
        text_or(&answered["approval"], "tool_name", "")
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_is_described_without_terminal_control_characters() {
        let approval = json!({"input": {"command": "rm -rf ~\u{1b}[2K\r echo harmless\nls"}});
        assert_eq!(
            describe(&approval),
            "rm -rf ~\\u{1b}[2K\\r echo harmless\\nls"
        );
        assert_eq!(describe(&json!({"input": {"file_path": "/a"}})), "/a");
        assert_eq!(describe(&json!({"input": {"x": 1}})), "{\"x\":1}");
    }
}
