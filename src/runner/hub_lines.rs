//! The lines the hub itself writes into a project's log around a run (`run_started`,
//! `run_finished`, stream `hub`), beside the agent's own output.

use serde::Serialize;
use tracing::warn;

use crate::projects::feed::Line;
use crate::protocol::error::ErrorChain;
use crate::protocol::{RunStatus, Stream};

use super::{RunContext, Runner};

/// The `run_started` line the hub writes to the project's log.
#[derive(Serialize)]
pub(super) struct RunStartedLine<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) worker_id: Option<&'a str>,
    pub(super) prompt: &'a str,
    pub(super) resume: Option<&'a str>,
    pub(super) cwd: &'a std::path::Path,
}

/// The `run_finished` line the hub writes to the project's log.
#[derive(Serialize)]
pub(super) struct RunFinishedLine<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) task_id: Option<&'a str>,
    pub(super) status: RunStatus,
    pub(super) exit_code: Option<i32>,
    pub(super) reason: Option<&'a str>,
    pub(super) total_cost_usd: Option<f64>,
    pub(super) cost_usd: Option<f64>,
}

impl Runner {
    /// Encodes a line the hub writes into a run's log.
    pub(super) fn hub_text<T: Serialize>(line: &T) -> Option<String> {
        serde_json::to_string(line)
            .inspect_err(|err| warn!(error = %err, "cannot encode a hub line"))
            .ok()
    }

    /// Stores a hub line (awaiting its commit) and fans it out.
    pub(super) async fn hub_line(&self, ctx: &RunContext, text: Option<String>) {
        let Some(text) = text else { return };
        let line = Line {
            run_id: Some(&ctx.run.id),
            stream: Stream::Hub,
            text: &text,
        };
        if let Err(err) = self.parts().feed.append(&ctx.project_id, line).await {
            warn!(error = %ErrorChain(&err), project_id = %ctx.project_id, "cannot store a hub line");
        }
    }
}
