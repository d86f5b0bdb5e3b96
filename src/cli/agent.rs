//! `agent run|kill|new-session` and `approvals`: start a run and stream its output for a
//! person, asking them on the terminal about the tool calls it wants to make, and exit
//! with its status; stop a run; forget a session; list and answer approvals.
//!
//! `agent run` says on stderr which run it started and, at the end, its status and how
//! long it took; on a terminal a spinner shows the elapsed time and what the agent is
//! doing (thinking, or the tool it runs). The agent's own text goes to stdout.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use super::args::ApprovalsCommand;
use super::client::{ClientError, HubClient};
use super::output::{BAD, DIM, GOOD, WARN, paint, print_json, text_or};
use super::projects::resolve_project;

/// The exit codes of `agent run`, documented in its `--help` and in docs/cli.md.
pub(super) mod exit {
    /// The run succeeded.
    pub const SUCCEEDED: u8 = 0;
    /// The run started and failed (the agent reported an error, exited non-zero, or
    /// ended without a result), or the connection to the hub broke during the run.
    pub const FAILED: u8 = 1;
    /// The run hit its timeout (as `timeout(1)`).
    pub const TIMED_OUT: u8 = 124;
    /// The hub refused the run: an unknown project, a project already running, a blank
    /// or too large prompt, the limit of running agents, a family switched off.
    pub const REFUSED: u8 = 125;
    /// The run could not start: no hub runs or it cannot be reached, or the hub cannot
    /// find or spawn the agent's CLI (`AGENT_UNAVAILABLE`).
    pub const COULD_NOT_START: u8 = 126;
    /// The run was killed (`agent kill`, Ctrl-C, or the hub shutting down).
    pub const KILLED: u8 = 130;
}

/// The exit code of a run that ended with `status` (`run_finished`).
fn status_code(status: &str) -> u8 {
    match status {
        "succeeded" => exit::SUCCEEDED,
        "timed_out" => exit::TIMED_OUT,
        "killed" => exit::KILLED,
        _ => exit::FAILED,
    }
}

/// The exit code for an error before the run started: `AGENT_UNAVAILABLE` and a hub
/// that cannot be reached mean it could not start; any other error answer, or a project
/// the command cannot find, that the run was refused.
pub(super) fn refusal_code(err: &anyhow::Error) -> u8 {
    match err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ClientError>())
    {
        Some(ClientError::Rpc { kind, .. }) if kind == "AGENT_UNAVAILABLE" => exit::COULD_NOT_START,
        Some(ClientError::Rpc { .. }) | None => exit::REFUSED,
        Some(_) => exit::COULD_NOT_START,
    }
}

/// What the spinner says the agent is doing.
struct Activity {
    bar: ProgressBar,
}

impl Activity {
    /// A spinner on stderr with the elapsed time, drawn only when stderr is a terminal.
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar }
    }

    /// Follows one output line: a tool call names the tool, anything else from the
    /// agent means it is thinking again.
    fn follow(&self, output: &Value) {
        match output["kind"].as_str().unwrap_or_default() {
            "assistant" => {
                let tool = output["event"]["message"]["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .rev()
                    .filter(|block| block["type"] == "tool_use")
                    .find_map(|block| block["name"].as_str());
                match tool {
                    Some(name) => self.bar.set_message(format!("running {name}")),
                    None => self.bar.set_message("thinking"),
                }
            }
            "user" | "system" | "run_started" => self.bar.set_message("thinking"),
            _ => {}
        }
    }
}

/// `agent run`'s options.
pub(super) struct RunOptions {
    /// `--new-session`.
    pub(super) new_session: bool,
    /// `--timeout`, in seconds.
    pub(super) timeout: Option<u64>,
    /// `--agent`.
    pub(super) agent: Option<String>,
    /// `--json`: each output line as JSON instead of text.
    pub(super) json: bool,
    /// `--worktree`: a git worktree of its own.
    pub(super) worktree: bool,
    /// `--in-worktree RUN`: a follow-up in that run's worktree.
    pub(super) in_worktree: Option<String>,
}

pub(super) async fn agent_run(
    client: &mut HubClient,
    project: &str,
    prompt: &str,
    options: RunOptions,
) -> Result<ExitCode> {
    let RunOptions {
        new_session,
        timeout,
        agent,
        json,
        worktree,
        in_worktree,
    } = options;
    let started = async {
        let project_id = resolve_project(client, project).await?;
        client
            .request("project.subscribe", json!({"project_id": project_id}))
            .await?;
        let mut params = json!({"project_id": project_id, "prompt": prompt,
                                "new_session": new_session, "timeout_s": timeout, "agent": agent});
        if worktree {
            params["isolation"] = json!("worktree");
        }
        if let Some(run) = &in_worktree {
            params["worktree"] = json!(run);
        }
        let started = client.request("agent.run", params).await?;
        anyhow::Ok((project_id, started))
    }
    .await;
    let (project_id, started) = match started {
        Ok(started) => started,
        Err(err) => {
            let code = refusal_code(&err);
            let what = if code == exit::REFUSED {
                "the hub refused the run"
            } else {
                "the run could not start"
            };
            errln!("{}: {err:#}", paint(BAD, what));
            return Ok(ExitCode::from(code));
        }
    };
    let began = Instant::now();
    let run_id = started["run_id"].as_str().unwrap_or_default().to_string();
    let isolated = started["worktree"].is_object();
    if isolated {
        let tree = &started["worktree"];
        errln!(
            "{}",
            paint(
                DIM,
                &format!(
                    "run {run_id} started in worktree {} ({})",
                    text_or(tree, "branch", "?"),
                    text_or(tree, "path", "?")
                )
            )
        );
    } else {
        errln!("{}", paint(DIM, &format!("run {run_id} started")));
    }
    let kill_params = if isolated {
        json!({"project_id": project_id, "run_id": run_id})
    } else {
        json!({"project_id": project_id})
    };
    let activity = Activity::new();
    // Tool calls are asked about here when a person is at the terminal; otherwise they
    // wait for the dashboard or `semantest-hub approvals`.
    let ask = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut interrupted = false;
    let status = loop {
        let message = tokio::select! {
            message = client.next_notification() => message,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                activity.bar.suspend(|| errln!("stopping the agent…"));
                activity.bar.set_message("stopping");
                client.request("agent.kill", kill_params.clone()).await.ok();
                continue;
            }
        };
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                activity.bar.finish_and_clear();
                errln!(
                    "{}: {err} (run {run_id} may still be running: `semantest-hub ps`)",
                    paint(BAD, "lost the hub")
                );
                return Ok(ExitCode::from(exit::FAILED));
            }
        };
        if ask
            && message["method"] == "agent.approval_requested"
            && message["params"]["approval"]["run_id"] == run_id.as_str()
        {
            // The spinner stays off the terminal while the person answers.
            activity.bar.set_draw_target(ProgressDrawTarget::hidden());
            let asked = ask_on_terminal(client, &message["params"]["approval"]).await;
            activity.bar.set_draw_target(ProgressDrawTarget::stderr());
            asked?;
            continue;
        }
        if message["method"] != "project.output" {
            continue;
        }
        let output = &message["params"];
        if output["run_id"].as_str() != Some(run_id.as_str()) {
            continue;
        }
        activity.follow(output);
        let finished = if json {
            activity.bar.suspend(|| outln!("{output}"))?;
            (output["kind"] == "run_finished")
                .then(|| text_or(&output["event"], "status", "failed"))
        } else {
            activity.bar.suspend(|| print_output(output))?
        };
        if let Some(status) = finished {
            break status;
        }
    };
    activity.bar.finish_and_clear();
    let style = match status.as_str() {
        "succeeded" => GOOD,
        "killed" | "timed_out" => WARN,
        _ => BAD,
    };
    errln!(
        "run {run_id} {} after {:.1} s",
        paint(style, &status),
        began.elapsed().as_secs_f64()
    );
    if isolated {
        print_run_diff(client, &run_id).await;
    }
    Ok(ExitCode::from(status_code(&status)))
}

/// After a `--worktree` run: its worktree's diff in one line per file on stderr, and how
/// to settle it. The diff is recorded just after the run's end, so it is asked for until
/// it is there (a few seconds at most).
async fn print_run_diff(client: &mut HubClient, run_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let tree = loop {
        match client
            .request("agent.run_worktree", json!({"run_id": run_id}))
            .await
        {
            Ok(tree) if tree["state"] != "active" => break tree,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => {
                errln!(
                    "the worktree's diff is not recorded yet: `semantest-hub agent worktree {run_id}`"
                );
                return;
            }
            Err(err) => {
                errln!("{}: {err:#}", paint(WARN, "cannot read the run's worktree"));
                return;
            }
        }
    };
    let diff = &tree["diff"];
    let count = |v: &Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
    let files = diff["files"].as_array().map_or(0, Vec::len);
    errln!(
        "worktree {}: {files} files changed, +{} -{}",
        text_or(&tree, "branch", "?"),
        count(&diff["added"]),
        count(&diff["removed"])
    );
    for file in diff["files"].as_array().into_iter().flatten() {
        errln!(
            "  +{:<5} -{:<5} {}",
            count(&file["added"]),
            count(&file["removed"]),
            text_or(file, "path", "")
        );
    }
    let worktree_id = text_or(&tree, "run_id", run_id);
    errln!(
        "{}",
        paint(
            DIM,
            &format!(
                "diff: semantest-hub agent worktree {worktree_id}; then agent merge or agent discard {worktree_id}"
            )
        )
    );
}

/// Prints one output line for a person; returns the run's status on its last line.
///
/// # Errors
/// When stdout cannot be written (`StdoutClosed` once its reader has gone).
pub(super) fn print_output(output: &Value) -> Result<Option<String>> {
    let event = &output["event"];
    match output["kind"].as_str().unwrap_or_default() {
        "assistant" => {
            for block in event["message"]["content"].as_array().into_iter().flatten() {
                match block["type"].as_str() {
                    Some("text") => {
                        outln!("{}", block["text"].as_str().unwrap_or_default())?;
                    }
                    Some("tool_use") => {
                        outln!(
                            "▶ {} {}",
                            block["name"].as_str().unwrap_or("tool"),
                            paint(DIM, &block["input"].to_string())
                        )?;
                    }
                    _ => {}
                }
            }
        }
        "result" => {
            outln!(
                "■ {} in {:.1} s, {} turns, ${:.4}",
                event["subtype"].as_str().unwrap_or("done"),
                event["duration_ms"].as_f64().unwrap_or_default() / 1000.0,
                event["num_turns"].as_i64().unwrap_or_default(),
                event["total_cost_usd"].as_f64().unwrap_or_default()
            )?;
        }
        "text" => outln!("{}", output["text"].as_str().unwrap_or_default())?,
        "stderr" => errln!("{}", output["text"].as_str().unwrap_or_default()),
        "run_finished" => {
            let status = event["status"].as_str().unwrap_or("failed").to_string();
            if let Some(reason) = event["reason"].as_str() {
                errln!("run {status}: {reason}");
            }
            return Ok(Some(status));
        }
        _ => {}
    }
    Ok(None)
}

/// `agent kill PROJECT [--run RUN]`: stops the project's run (or its `--worktree` run
/// RUN); exits 0 once the hub has signalled it.
pub(super) async fn agent_kill(
    client: &mut HubClient,
    project: &str,
    run: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let project_id = resolve_project(client, project).await?;
    let mut params = json!({"project_id": project_id});
    if let Some(run) = run {
        params["run_id"] = json!(run);
    }
    let killed = client.request("agent.kill", params).await?;
    if json {
        print_json(&killed)?;
    } else {
        outln!("stopping the agent of {project_id}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `agent new-session PROJECT`: the next run starts a new conversation.
pub(super) async fn agent_new_session(
    client: &mut HubClient,
    project: &str,
    json: bool,
) -> Result<ExitCode> {
    let project_id = resolve_project(client, project).await?;
    let forgotten = client
        .request("agent.new_session", json!({"project_id": project_id}))
        .await?;
    if json {
        print_json(&forgotten)?;
    } else {
        outln!("the next run of {project_id} starts a new session")?;
    }
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
    errln!("? {tool} wants to run: {}", describe(approval));
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
                            errln!("  not a JSON object; asking again");
                            continue;
                        }
                    }
                }
                break json!({"approval_id": id, "decision": "allow_once", "updated_input": input});
            }
            _ => errln!("  answer y, n, e or a"),
        }
    };
    match client.request("agent.approvals.answer", params).await {
        Ok(answered) => {
            errln!(
                "  {}",
                text_or(&answered["resolution"], "outcome", "answered")
            );
            Ok(())
        }
        Err(err) => {
            // Answered from the dashboard first, or withdrawn: the run goes on either way.
            errln!("  {err:#}");
            Ok(())
        }
    }
}

/// `approvals list|allow|deny` (bare `approvals` is `list`).
pub(super) async fn approvals_command(
    client: &mut HubClient,
    action: ApprovalsCommand,
) -> Result<ExitCode> {
    let (params, json) = match action {
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
        ApprovalsCommand::Allow {
            id,
            input,
            always,
            json,
        } => {
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
            (
                json!({"approval_id": id, "decision": decision, "updated_input": updated, "scope": always}),
                json,
            )
        }
        ApprovalsCommand::Deny {
            id,
            message,
            interrupt,
            always,
            json,
        } => {
            let decision = if always.is_some() {
                "reject_always"
            } else {
                "reject_once"
            };
            (
                json!({"approval_id": id, "decision": decision, "message": message,
                       "interrupt": interrupt, "scope": always}),
                json,
            )
        }
    };
    let answered = client.request("agent.approvals.answer", params).await?;
    if json {
        print_json(&answered)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} {} ({})",
        text_or(&answered["resolution"], "outcome", "answered"),
        text_or(&answered["approval"], "id", ""),
        printable(&text_or(&answered["approval"], "tool_name", ""))
    )?;
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
