//! The coordinator's view of task worktrees (`project.configure {isolation:
//! "worktree"}`, docs/coordination.md, "Isolation"): the diff summary that
//! `task_status` and `wait_for_tasks` give for each finished task, and the tools that
//! read one task's unified diff and merge or discard its branch. Each tool calls the
//! protocol method of the same job (`task.get`, `task.merge`, `task.discard`), so it
//! needs what that method needs: a token with the `tasks` scope.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{schemars, tool, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Coordination;
use super::error::{ToolError, answer};
use super::link::Link;

/// Files listed in a diff summary; the rest are counted in `more_files`.
const SUMMARY_FILES: usize = 20;
/// Bytes of unified diff `task_diff` returns when the model asks for no size.
const DEFAULT_DIFF_BYTES: u64 = 32 * 1024;
/// The least and the most bytes one `task_diff` call returns.
const DIFF_BYTES: std::ops::RangeInclusive<u64> = 1024..=128 * 1024;

/// `task_diff` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct TaskDiff {
    /// The id of a finished task that ran in a worktree.
    task_id: String,
    /// Bytes of unified diff to return, 1024 to 131072 (default 32768). The diff is cut
    /// at a line end at most this far from `offset`.
    max_bytes: Option<u64>,
    /// Where to start in the diff, in bytes: 0 (the default) for the start, or the
    /// `next_offset` of the previous call to read on.
    offset: Option<u64>,
}

/// `merge_task` and `discard_task` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct TaskBranch {
    /// The id of a finished task that ran in a worktree.
    task_id: String,
}

/// The diff summary of a task's worktree (`task.get`'s `worktree`): where it is, the
/// branches, the files changed (the first [`SUMMARY_FILES`]), lines added and removed,
/// and the size of the unified diff `task_diff` reads.
pub(super) fn summary(worktree: &Value) -> Value {
    let diff = &worktree["diff"];
    let files = diff["files"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    json!({
        "state": worktree["state"], "branch": worktree["branch"],
        "base_branch": worktree["base_branch"],
        "files_changed": files.len(), "added": diff["added"], "removed": diff["removed"],
        "files": files.iter().take(SUMMARY_FILES).collect::<Vec<_>>(),
        "more_files": files.len().saturating_sub(SUMMARY_FILES),
        "diff_bytes": diff["patch"].as_str().map_or(0, str::len),
    })
}

/// The diff summary of each task of `tasks` that ran in a worktree, by task id, asked
/// of `task.get` (give it finished tasks: a running one has no diff yet). A summary
/// is an extra: when `task.get` fails (a task deleted since, the connection broke),
/// the tasks left get none, and the tool answers with the rest.
pub(super) async fn summaries(link: &Link, tasks: &[&Value]) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for task in tasks {
        let Some(id) = task["id"].as_str() else {
            continue;
        };
        match link.request("task.get", json!({"task_id": id})).await {
            Ok(detail) if detail["worktree"].is_object() => {
                out.insert(id.to_string(), summary(&detail["worktree"]));
            }
            Ok(_) => {}
            Err(super::ConnError::Rpc { kind, .. }) if kind == "TASK_NOT_FOUND" => {}
            Err(err) => {
                tracing::debug!(task_id = id, error = %err, "no diff summary");
                break;
            }
        }
    }
    out
}

/// The part of `patch` from `offset` to at most `max` bytes further, cut after a line
/// end (inside a line longer than `max` only, then on a character boundary). Returns
/// the part and the offset of the rest, `None` when the part reaches the end.
fn cut(patch: &str, offset: usize, max: usize) -> (&str, Option<usize>) {
    let rest = &patch[offset..];
    if rest.len() <= max {
        return (rest, None);
    }
    let mut end = max;
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    if let Some(line_end) = rest[..end].rfind('\n') {
        end = line_end + 1;
    }
    (&rest[..end], Some(offset + end))
}

/// The path of the file a part of `patch` that ends before byte `at` stopped in: that
/// of the last `diff --git a/… b/PATH` line starting before `at`.
fn file_at(patch: &str, at: usize) -> Option<&str> {
    let mut header = None;
    let mut pos = 0;
    for line in patch.split_inclusive('\n') {
        if pos >= at {
            break;
        }
        if line.starts_with("diff --git ") {
            header = Some(line.trim_end());
        }
        pos += line.len();
    }
    header?.rsplit_once(" b/").map(|(_, path)| path)
}

/// The first character boundary of `text` at or after `at`.
fn boundary(text: &str, mut at: usize) -> usize {
    while at < text.len() && !text.is_char_boundary(at) {
        at += 1;
    }
    at.min(text.len())
}

fn no_diff_yet(task_id: &str) -> ToolError {
    ToolError::new(
        "WORKTREE_BUSY",
        format!(
            "task {task_id} is still running in its worktree; its diff is recorded when the run ends"
        ),
        "Wait for the task with wait_for_tasks, then call task_diff again.",
    )
}

#[tool_router(router = worktree_router, vis = "pub(super)")]
impl Coordination {
    /// One task's unified diff, a bounded part at a time.
    #[tool(
        description = "Coordinator: read the unified diff (git diff against the commit it started from) of a finished task that ran in its own git worktree (project isolation \"worktree\"). task_status and wait_for_tasks already give each such task's summary (files, lines added and removed, diff_bytes); call this to review the change itself before merge_task or discard_task. Returns at most max_bytes (default 32768), cut at a line end: when complete is false, `cut` says at which byte and in which file it stopped, and you call again with offset = next_offset to read on."
    )]
    async fn task_diff(
        &self,
        Parameters(args): Parameters<TaskDiff>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        let result = async {
            let link = self.coordinator().await?;
            let detail = link
                .request("task.get", json!({"task_id": args.task_id}))
                .await?;
            let worktree = &detail["worktree"];
            if !worktree.is_object() {
                return Err(ToolError::new(
                    "NO_WORKTREE",
                    format!("task {} did not run in a git worktree, so the hub recorded no diff", args.task_id),
                    "Only tasks of a project configured with isolation \"worktree\" have a diff; read this task's report instead.",
                ));
            }
            let Some(patch) = worktree["diff"]["patch"].as_str() else {
                return Err(no_diff_yet(&args.task_id));
            };
            let max = args
                .max_bytes
                .unwrap_or(DEFAULT_DIFF_BYTES)
                .clamp(*DIFF_BYTES.start(), *DIFF_BYTES.end());
            let offset = usize::try_from(args.offset.unwrap_or(0)).unwrap_or(usize::MAX);
            if offset > patch.len() {
                return Err(ToolError::new(
                    "INVALID_PARAMS",
                    format!("offset {offset} is past the end of the diff ({} bytes)", patch.len()),
                    "Call task_diff with offset 0, or with the next_offset of your previous call.",
                ));
            }
            let offset = boundary(patch, offset);
            let (part, next) = cut(patch, offset, usize::try_from(max).unwrap_or(usize::MAX));
            let stored_cut = worktree["diff"]["truncated"] == true;
            let what_to_do = match (next, stored_cut) {
                (Some(_), _) => "Call task_diff again with offset = next_offset to read the rest; then merge_task or discard_task.",
                (None, true) => "This is all the hub kept (the first 256 KiB of the diff); the whole change is on the task's branch. Then merge_task or discard_task.",
                (None, false) => "That is the whole diff. Merge it with merge_task, or throw it away with discard_task (or create a follow-up task).",
            };
            Ok(json!({
                "task_id": args.task_id, "state": worktree["state"],
                "branch": worktree["branch"], "base_branch": worktree["base_branch"],
                "files": worktree["diff"]["files"], "added": worktree["diff"]["added"],
                "removed": worktree["diff"]["removed"],
                "offset": offset, "bytes": part.len(), "total_bytes": patch.len(),
                "patch": part, "complete": next.is_none(), "next_offset": next,
                "cut": next.map(|at| json!({"at_byte": at, "in_file": file_at(patch, at)})),
                "stored_diff_cut": stored_cut,
                "what_to_do": what_to_do,
            }))
        }
        .await;
        answer(result)
    }

    /// Merges a finished task's branch into its base branch.
    #[tool(
        description = "Coordinator: merge the branch of a finished task that ran in its own git worktree into the branch that was checked out when it started (fast-forward, else a merge commit), then remove its worktree and branch. Call it after reviewing the change (task_diff). When the merge would conflict (error MERGE_CONFLICT, with the conflicting files) or overwrite the user's uncommitted changes (UNCOMMITTED_CHANGES, with the files), nothing changes."
    )]
    async fn merge_task(
        &self,
        Parameters(args): Parameters<TaskBranch>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        let result = async {
            let link = self.coordinator().await?;
            let merged = link
                .request("task.merge", json!({"task_id": args.task_id}))
                .await?;
            Ok(json!({
                "task_id": args.task_id, "merged": true, "merge": merged["merge"],
                "base_branch": merged["base_branch"], "commit": merged["commit"],
                "what_to_do": "The change is in the base branch now; go on with the other finished tasks.",
            }))
        }
        .await;
        answer(result)
    }

    /// Throws a finished task's worktree and branch away.
    #[tool(
        description = "Coordinator: throw away the work of a finished task that ran in its own git worktree: remove its worktree and its branch, unmerged. Use it for a change you reject, or one that conflicts and that a follow-up task redoes. It cannot be undone."
    )]
    async fn discard_task(
        &self,
        Parameters(args): Parameters<TaskBranch>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        let result = async {
            let link = self.coordinator().await?;
            let discarded = link
                .request("task.discard", json!({"task_id": args.task_id}))
                .await?;
            Ok(json!({
                "task_id": args.task_id, "discarded": true, "branch": discarded["branch"],
                "what_to_do": "The task's worktree and branch are gone; go on with the other finished tasks.",
            }))
        }
        .await;
        answer(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+é\ndiff --git a/b.txt b/b.txt\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-b\n+bb\n";

    #[test]
    fn a_diff_is_cut_after_a_line_end_and_read_on_from_there() {
        let (part, next) = cut(PATCH, 0, 60);
        assert!(part.ends_with('\n') && part.len() <= 60, "{part:?}");
        let next = next.unwrap();
        assert_eq!(file_at(PATCH, next), Some("a.txt"));
        let (rest, end) = cut(PATCH, next, 1000);
        assert_eq!(end, None);
        assert_eq!(format!("{part}{rest}"), PATCH);
        let second = PATCH.find("diff --git a/b").unwrap();
        assert_eq!(
            file_at(PATCH, second),
            Some("a.txt"),
            "stopped at a.txt's end"
        );
        assert_eq!(file_at(PATCH, second + 3), Some("b.txt"));
        let (whole, none) = cut(PATCH, 0, PATCH.len());
        assert_eq!((whole, none), (PATCH, None));
    }

    #[test]
    fn a_line_longer_than_the_part_is_cut_on_a_character_boundary() {
        let text = "ééééé\n";
        let (part, next) = cut(text, 0, 3);
        assert_eq!((part, next), ("é", Some(2)));
        assert_eq!(boundary(text, 1), 2);
        assert_eq!(boundary(text, 99), text.len());
    }

    #[test]
    fn a_summary_lists_the_first_files_and_counts_the_rest() {
        let files: Vec<Value> = (0..25)
            .map(|i| json!({"path": format!("f{i}"), "added": 1, "removed": 0}))
            .collect();
        let worktree = json!({"state": "finished", "branch": "semantest/t", "base_branch": "main",
            "diff": {"files": files, "added": 25, "removed": 0, "patch": "xyz", "truncated": false}});
        let summary = summary(&worktree);
        assert_eq!(summary["files_changed"], 25);
        assert_eq!(summary["files"].as_array().unwrap().len(), SUMMARY_FILES);
        assert_eq!(summary["more_files"], 5);
        assert_eq!(summary["diff_bytes"], 3);
        assert_eq!(summary["branch"], "semantest/t");
    }
}
