//! The wire types of agent usage and cost: `agent.usage`.
//!
//! Data only, like the rest of [`crate::protocol`]. Each turn of an agent is recorded
//! with its cost in US dollars and its tokens by kind (the rule is in
//! `crate::runner::usage`); `agent.usage` sums them per day, project or run.
//! `docs/protocol.md` ("Usage and cost") is the reference.

use serde::{Deserialize, Serialize};

/// Method names of this family.
pub mod method {
    /// Request: agent cost and tokens summed per day, project or run.
    pub const AGENT_USAGE: &str = "agent.usage";
}

/// How `agent.usage` groups turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row per calendar day (UTC, or shifted by `utc_offset_minutes`), oldest first.
    Day,
    /// One row per project, costliest first.
    Project,
    /// One row per run, most recent first.
    Run,
}

/// The most minutes `utc_offset_minutes` may shift a day by (UTC-14:00..UTC+14:00, the
/// extremes of the time zones in use).
pub const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;

/// The most rows `agent.usage` returns; with `group_by: "run"` the most recent ones,
/// and `truncated` says more exist.
pub const MAX_USAGE_ROWS: usize = 1000;

/// `agent.usage` params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentUsageParams {
    /// Only this project's turns (a deleted project's too).
    #[serde(default)]
    pub project_id: Option<String>,
    /// Only turns that ended at or after this RFC 3339 time.
    #[serde(default)]
    pub since: Option<String>,
    /// Only turns that ended before this RFC 3339 time.
    #[serde(default)]
    pub until: Option<String>,
    /// How to group.
    pub group_by: GroupBy,
    /// With `group_by: "day"`: minutes east of UTC where days begin (the caller's time
    /// zone, e.g. `60` for UTC+01:00); default 0, at most ±840.
    #[serde(default)]
    pub utc_offset_minutes: Option<i32>,
}

/// Cost and tokens of a set of turns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageFigures {
    /// Cost in US dollars: as the agent CLI reported it (Claude Code), or the hub's
    /// estimate from `agent.prices` for agents that report tokens only (Codex, Gemini).
    pub usd: f64,
    /// The part of `usd` the hub estimated from its price table; left out when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub estimated_usd: f64,
    /// Input tokens not read from or written to the prompt cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_tokens: u64,
    /// Turns (one per `result` line of the agent).
    pub turns: u64,
    /// Distinct runs.
    pub runs: u64,
}

/// One row of `agent.usage`: a day, a project or a run, with its figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// `group_by: "day"`: the day, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// `group_by: "project"` and `"run"`: the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// `group_by: "project"` and `"run"`: the project's name when the turn was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// `group_by: "project"` and `"run"`: whether the project has since been deleted
    /// (its usage is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_deleted: Option<bool>,
    /// `group_by: "run"`: the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `group_by: "run"`: the Claude Code session of the run's last turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `group_by: "run"`: the model of the run's last turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// When the first turn of the row ended (RFC 3339).
    pub first_at: String,
    /// When the last turn of the row ended (RFC 3339).
    pub last_at: String,
    /// The sums.
    #[serde(flatten)]
    pub figures: UsageFigures,
}

/// `agent.usage` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentUsageResult {
    /// As asked.
    pub group_by: GroupBy,
    /// The rows, ordered as [`GroupBy`] says.
    pub rows: Vec<UsageRow>,
    /// The sums over every matching turn (rows left out by the cap included).
    pub total: UsageFigures,
    /// Whether rows were left out ([`MAX_USAGE_ROWS`]).
    pub truncated: bool,
}

/// Whether a figure is zero (left out of the wire form).
fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_rows_keep_their_wire_shape() {
        let p: AgentUsageParams = serde_json::from_str(
            r#"{"group_by":"day","since":"2026-12-01T00:00:00Z","utc_offset_minutes":60}"#,
        )
        .unwrap();
        assert_eq!(p.group_by, GroupBy::Day);
        assert_eq!(p.utc_offset_minutes, Some(60));
        assert!(serde_json::from_str::<AgentUsageParams>(r#"{"group_by":"week"}"#).is_err());
        assert!(serde_json::from_str::<AgentUsageParams>(r#"{}"#).is_err());
        let row = UsageRow {
            day: Some("2026-12-07".into()),
            first_at: "2026-12-07T10:00:00.000Z".into(),
            last_at: "2026-12-07T11:00:00.000Z".into(),
            figures: UsageFigures {
                usd: 0.5,
                input_tokens: 1,
                output_tokens: 2,
                cache_read_tokens: 3,
                cache_creation_tokens: 4,
                turns: 5,
                runs: 1,
                estimated_usd: 0.0,
            },
            ..UsageRow::default()
        };
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"day":"2026-12-07","first_at":"2026-12-07T10:00:00.000Z","last_at":"2026-12-07T11:00:00.000Z","usd":0.5,"input_tokens":1,"output_tokens":2,"cache_read_tokens":3,"cache_creation_tokens":4,"turns":5,"runs":1}"#
        );
    }
}
