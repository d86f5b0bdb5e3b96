//! `usage`: what the agents cost, in US dollars and tokens, per day, project or run
//! (`agent.usage`), as an aligned table with a total line, or as JSON.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{Local, NaiveDate, SecondsFormat, TimeZone};
use serde_json::{Value, json};

use super::args::UsageBy;
use super::client::HubClient;
use super::output::{print_table, text_or};
use super::projects::resolve_project;

/// What `usage` was asked.
pub(super) struct UsageRequest {
    /// A project id (a deleted project's too) or a registered directory.
    pub(super) project: Option<String>,
    /// RFC 3339, or `YYYY-MM-DD` (local midnight).
    pub(super) since: Option<String>,
    /// As `since`; excluded.
    pub(super) until: Option<String>,
    /// The grouping.
    pub(super) by: UsageBy,
    /// Print the result as JSON.
    pub(super) json: bool,
}

/// A time for `agent.usage`: a local date becomes its midnight in RFC 3339; anything
/// else is passed on for the hub to check.
///
/// # Errors
/// When a date has no local midnight (a time-zone gap).
fn time_param(text: &str) -> Result<String> {
    let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") else {
        return Ok(text.to_string());
    };
    let midnight = Local
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .with_context(|| format!("{text} has no local midnight"))?;
    Ok(midnight.to_rfc3339_opts(SecondsFormat::Secs, false))
}

/// How a row's key cell is shown.
type Cell = Box<dyn Fn(&Value) -> String>;

/// US dollars with four decimals: agent turns often cost fractions of a cent.
fn usd(row: &Value) -> String {
    format!("${:.4}", row["usd"].as_f64().unwrap_or_default())
}

fn count(row: &Value, key: &str) -> String {
    row[key].as_u64().unwrap_or_default().to_string()
}

/// `usage [--project P] [--since T] [--until T] [--by day|project|run] [--json]`.
pub(super) async fn usage(client: &mut HubClient, request: UsageRequest) -> Result<ExitCode> {
    let project_id = match &request.project {
        // A deleted project's usage is kept: an id the hub no longer lists is asked as is.
        Some(project) => Some(resolve_project(client, project).await.or_else(|err| {
            if project.contains('/') {
                Err(err)
            } else {
                Ok(project.clone())
            }
        })?),
        None => None,
    };
    let group_by = match request.by {
        UsageBy::Day => "day",
        UsageBy::Project => "project",
        UsageBy::Run => "run",
    };
    let params = json!({
        "project_id": project_id,
        "since": request.since.as_deref().map(time_param).transpose()?,
        "until": request.until.as_deref().map(time_param).transpose()?,
        "group_by": group_by,
        // Days as the user's clock has them.
        "utc_offset_minutes": Local::now().offset().local_minus_utc() / 60,
    });
    let result = client.request("agent.usage", params).await?;
    if request.json {
        outln!("{}", serde_json::to_string_pretty(&result)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = result["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        eprintln!("no agent usage recorded in this range");
        return Ok(ExitCode::SUCCESS);
    }
    let project = |row: &Value| {
        let name = text_or(row, "project_name", "");
        if row["project_deleted"] == true {
            format!("{name} (deleted)")
        } else {
            name
        }
    };
    let (mut headers, keys): (Vec<&str>, Vec<Cell>) = match request.by {
        UsageBy::Day => (vec!["DAY"], vec![Box::new(|r| text_or(r, "day", ""))]),
        UsageBy::Project => (
            vec!["PROJECT", "ID"],
            vec![
                Box::new(project),
                Box::new(|r| text_or(r, "project_id", "")),
            ],
        ),
        UsageBy::Run => (
            vec!["RUN", "PROJECT", "MODEL", "LAST TURN"],
            vec![
                Box::new(|r| text_or(r, "run_id", "")),
                Box::new(project),
                Box::new(|r| text_or(r, "model", "-")),
                Box::new(|r| text_or(r, "last_at", "")),
            ],
        ),
    };
    headers.extend([
        "COST",
        "INPUT",
        "OUTPUT",
        "CACHE READ",
        "CACHE WRITE",
        "TURNS",
        "RUNS",
    ]);
    let figures = |row: &Value| {
        vec![
            usd(row),
            count(row, "input_tokens"),
            count(row, "output_tokens"),
            count(row, "cache_read_tokens"),
            count(row, "cache_creation_tokens"),
            count(row, "turns"),
            count(row, "runs"),
        ]
    };
    let mut table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> = keys.iter().map(|key| key(row)).collect();
            cells.extend(figures(row));
            cells
        })
        .collect();
    let mut total = vec!["TOTAL".to_string()];
    total.resize(keys.len(), String::new());
    total.extend(figures(&result["total"]));
    table.push(total);
    print_table(&headers, &table)?;
    if result["truncated"] == true {
        eprintln!(
            "only the {} most recent rows are shown; narrow the range with --since and --until",
            rows.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
