//! `task merge`, `task discard` and the worktree part of `task show`: an isolated task's
//! branch, its diff, and what to do with it (docs/coordination.md, "Isolation"); and the
//! same for an interactive run's worktree: `agent worktree`, `agent merge`,
//! `agent discard` (docs/agents.md).

use anyhow::Result;
use serde_json::{Value, json};

use super::client::HubClient;
use super::output::text_or;

/// The worktree lines of `task show` (after the task's own), with the unified diff.
pub(super) fn print_worktree(task: &Value) -> Result<()> {
    let worktree = &task["worktree"];
    if !worktree.is_object() {
        return Ok(());
    }
    let diff = &worktree["diff"];
    let rows = [
        ("worktree", text_or(worktree, "state", "")),
        ("branch", text_or(worktree, "branch", "")),
        ("base", text_or(worktree, "base_branch", "(detached)")),
        ("path", text_or(worktree, "path", "(removed)")),
        ("commit", text_or(worktree, "commit", "-")),
    ];
    for (key, value) in rows {
        outln!("{key:<9} {value}")?;
    }
    if !diff.is_object() {
        return Ok(());
    }
    let count = |v: &Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
    outln!(
        "changes   {} files, +{} -{}",
        diff["files"].as_array().map_or(0, Vec::len),
        count(&diff["added"]),
        count(&diff["removed"]),
    )?;
    for file in diff["files"].as_array().into_iter().flatten() {
        outln!(
            "  +{:<5} -{:<5} {}",
            count(&file["added"]),
            count(&file["removed"]),
            text_or(file, "path", ""),
        )?;
    }
    let patch = diff["patch"].as_str().unwrap_or_default();
    if !patch.is_empty() {
        outln!()?;
        super::output::write_stdout(patch.as_bytes())?;
        if diff["truncated"] == true {
            outln!("… (diff cut at 256 KiB)")?;
        }
    }
    Ok(())
}

/// `task merge ID` and `task discard ID`.
pub(super) async fn merge_or_discard(
    client: &mut HubClient,
    id: &str,
    merge: bool,
    json: bool,
) -> Result<()> {
    let method = if merge { "task.merge" } else { "task.discard" };
    let result = client.request(method, json!({"task_id": id})).await?;
    print_settled(id, &result, merge, json)
}

/// `agent merge RUN` and `agent discard RUN`.
pub(super) async fn settle_run(
    client: &mut HubClient,
    run_id: &str,
    merge: bool,
    json: bool,
) -> Result<()> {
    let method = if merge {
        "agent.run_merge"
    } else {
        "agent.run_discard"
    };
    let result = client.request(method, json!({"run_id": run_id})).await?;
    let id = format!("run {}", text_or(&result, "run_id", run_id));
    print_settled(&id, &result, merge, json)
}

/// `agent worktree RUN`: the run's worktree lines and diff, as `task show` prints a
/// task's.
pub(super) async fn show_run(client: &mut HubClient, run_id: &str, json: bool) -> Result<()> {
    let result = client
        .request("agent.run_worktree", json!({"run_id": run_id}))
        .await?;
    if json {
        let mut text = serde_json::to_vec_pretty(&result)?;
        text.push(b'\n');
        return super::output::write_stdout(&text);
    }
    outln!("{:<9} {}", "run", text_or(&result, "run_id", run_id))?;
    print_worktree(&json!({ "worktree": result }))
}

/// What a merge or discard did, for a person or as JSON.
fn print_settled(id: &str, result: &Value, merge: bool, json: bool) -> Result<()> {
    if json {
        let mut text = serde_json::to_vec_pretty(result)?;
        text.push(b'\n');
        return super::output::write_stdout(&text);
    }
    if merge {
        let how = match result["merge"].as_str() {
            Some("fast_forward") => "fast-forwarded",
            Some("merge_commit") => "merged with a merge commit",
            _ => "already merged",
        };
        outln!(
            "{id}: {how} into {} at {}",
            text_or(result, "base_branch", "?"),
            text_or(result, "commit", "?")
        )
    } else {
        outln!(
            "{id}: worktree and branch {} removed",
            text_or(result, "branch", "?")
        )
    }
}
