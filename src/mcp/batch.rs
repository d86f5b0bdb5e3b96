//! When `next_task` tells a worker that the batch is finished: when every project it
//! was given a task from has no task left to do (none pending, none running), as
//! `coordination.status` says at the time of the call. A project's batch ending says
//! nothing to a worker that serves another project's batch, and a finished batch stays
//! finished for every later `next_task` until a new task comes. A worker that has been
//! given no task yet takes as its batch the first project whose batch finishes while it
//! is registered (`project.completed`), so an idle worker of a batch the others did
//! alone stops too.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::conn::ConnError;
use super::link::Link;

/// The finished batches of `projects` (one summary each: `project_id`, the counts and a
/// `message`), or `None` while one of them still has a task pending or running. A
/// project deleted since counts as finished.
///
/// # Errors
/// The hub's, for `coordination.status`.
pub(super) async fn finished(
    link: &Link,
    projects: &BTreeSet<String>,
) -> Result<Option<Vec<Value>>, ConnError> {
    let mut batches = Vec::with_capacity(projects.len());
    for project_id in projects {
        let status = match link
            .request("coordination.status", json!({"project_id": project_id}))
            .await
        {
            Ok(status) => status,
            Err(ConnError::Rpc { kind, .. }) if kind == "PROJECT_NOT_FOUND" => continue,
            Err(err) => return Err(err),
        };
        let count = |field: &str| status[field].as_u64().unwrap_or(0);
        if count("pending") + count("running") > 0 {
            return Ok(None);
        }
        let (total, completed, failed, cancelled) = (
            count("total"),
            count("completed"),
            count("failed"),
            count("cancelled"),
        );
        batches.push(json!({
            "project_id": project_id, "total": total, "completed": completed,
            "failed": failed, "cancelled": cancelled,
            "message": format!("all {total} tasks finished: {completed} completed, {failed} failed, {cancelled} cancelled"),
        }));
    }
    Ok(Some(batches))
}
