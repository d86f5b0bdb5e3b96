//! Agent usage: one row per turn (a `result` line of the agent), with its cost and
//! tokens, summed per day, project or run for `agent.usage`.
//!
//! Rows outlive their project: the `usage` table has no foreign key to `projects`, so
//! deleting a project keeps what its agents cost (money spent stays spent, and a
//! month's total does not shrink when a project is removed). Each row keeps the
//! project's name as it was, and `agent.usage` marks a deleted project as such. Rows are
//! a few hundred bytes and are not pruned with the log.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};
use crate::protocol::usage::{GroupBy, MAX_USAGE_ROWS, UsageFigures, UsageRow};
use crate::support::timestamp::format_ms;

/// The table, applied as one migration.
pub(super) const MIGRATION: &str = "CREATE TABLE usage (
    id INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL,
    project_name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    session_id TEXT,
    turn INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    usd REAL NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    model TEXT,
    basis TEXT NOT NULL,
    total_usd REAL NOT NULL,
    totals TEXT NOT NULL
);
CREATE INDEX usage_by_time ON usage(ts);
CREATE INDEX usage_by_project ON usage(project_id, ts);
CREATE INDEX usage_by_session ON usage(session_id, id);";

/// One turn's usage, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRow {
    /// The project.
    pub project_id: String,
    /// The project's name now (kept after the project is deleted).
    pub project_name: String,
    /// The run.
    pub run_id: String,
    /// The Claude Code session the `result` line named.
    pub session_id: Option<String>,
    /// 1 for the run's first `result` line, then 2, ...
    pub turn: u32,
    /// When the `result` line was stored, epoch milliseconds.
    pub ts: i64,
    /// Cost in US dollars.
    pub usd: f64,
    /// Input tokens (not cached).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache reads.
    pub cache_read_tokens: u64,
    /// Cache writes.
    pub cache_creation_tokens: u64,
    /// The turn's main model.
    pub model: Option<String>,
    /// How the figure was obtained (`reported`, `process`, `session`, `whole`).
    pub basis: &'static str,
    /// The CLI's cumulative `total_cost_usd` after the turn.
    pub total_usd: f64,
    /// The cumulative totals after the turn as JSON (`{total_usd, models}`), what the
    /// next process resuming the session is measured from.
    pub totals: String,
}

/// What `agent.usage` asks of the store.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    /// Only this project.
    pub project_id: Option<String>,
    /// Only turns at or after, epoch ms.
    pub since: Option<i64>,
    /// Only turns before, epoch ms.
    pub until: Option<i64>,
    /// The grouping.
    pub group_by: GroupBy,
    /// Minutes east of UTC where days begin (`group_by: Day`).
    pub utc_offset_minutes: i32,
}

/// The rows of a [`UsageQuery`], their grand total, and whether rows were cut.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageReport {
    /// At most [`MAX_USAGE_ROWS`].
    pub rows: Vec<UsageRow>,
    /// Over every matching turn.
    pub total: UsageFigures,
    /// Whether rows were left out.
    pub truncated: bool,
}

impl Store {
    /// Records one turn's usage; returns once it is committed.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Commit`], [`StoreError::WriterGone`].
    pub async fn insert_turn(&self, row: TurnRow) -> Result<(), StoreError> {
        self.write(move |conn| insert_turn(conn, &row)).await
    }

    /// The cumulative totals (the JSON of [`TurnRow::totals`]) last recorded for a
    /// session, if any.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn last_session_totals(
        &self,
        session_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let session_id = session_id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT totals FROM usage WHERE session_id = ?1 ORDER BY id DESC LIMIT 1",
                )?
                .query_row([session_id], |row| row.get(0))
                .optional()?)
        })
        .await
    }

    /// Usage summed as `query` asks.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn usage(&self, query: UsageQuery) -> Result<UsageReport, StoreError> {
        self.read(move |conn| usage(conn, &query)).await
    }
}

fn insert_turn(conn: &Connection, row: &TurnRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO usage (project_id, project_name, run_id, session_id, turn, ts, usd,
             input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, model,
             basis, total_usd, totals)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        row.project_id,
        row.project_name,
        row.run_id,
        row.session_id,
        row.turn,
        row.ts,
        row.usd,
        row.input_tokens as i64,
        row.output_tokens as i64,
        row.cache_read_tokens as i64,
        row.cache_creation_tokens as i64,
        row.model,
        row.basis,
        row.total_usd,
        row.totals,
    ])?;
    Ok(())
}

/// The sums every grouping selects, after its key columns.
const SUMS: &str = "COALESCE(SUM(u.usd), 0), COALESCE(SUM(u.input_tokens), 0),
    COALESCE(SUM(u.output_tokens), 0), COALESCE(SUM(u.cache_read_tokens), 0),
    COALESCE(SUM(u.cache_creation_tokens), 0), COUNT(*), COUNT(DISTINCT u.run_id),
    MIN(u.ts), MAX(u.ts),
    COALESCE(SUM(CASE WHEN u.basis = 'priced' THEN u.usd ELSE 0 END), 0)";

fn figures(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<UsageFigures> {
    let count = |i: usize| row.get::<_, i64>(at + i).map(|n| n.max(0) as u64);
    Ok(UsageFigures {
        usd: row.get(at)?,
        input_tokens: count(1)?,
        output_tokens: count(2)?,
        cache_read_tokens: count(3)?,
        cache_creation_tokens: count(4)?,
        turns: count(5)?,
        runs: count(6)?,
        // After MIN(ts) and MAX(ts), read by the caller.
        estimated_usd: row.get(at + 9)?,
    })
}

fn usage(conn: &Connection, query: &UsageQuery) -> Result<UsageReport, StoreError> {
    // One filter for the rows and the total: project, then the time range.
    let filter = "(?1 IS NULL OR u.project_id = ?1) AND (?2 IS NULL OR u.ts >= ?2)
                  AND (?3 IS NULL OR u.ts < ?3)";
    let offset_ms = i64::from(query.utc_offset_minutes) * 60_000;
    let args = params![query.project_id, query.since, query.until, offset_ms];
    let total = conn
        .prepare_cached(&format!("SELECT {SUMS} FROM usage u WHERE {filter}"))?
        .query_row(params![query.project_id, query.since, query.until], |row| {
            figures(row, 0)
        })?;
    let limit = MAX_USAGE_ROWS + 1;
    // Each grouping: its seven key columns (day, project, name, deleted, run, session,
    // model), its GROUP BY and its order. Every statement takes the same four
    // parameters (SQLite refuses a parameter a statement does not use), so the groupings
    // other than the day's name the offset in a condition that always holds.
    let sql = match query.group_by {
        GroupBy::Day => format!(
            "SELECT date((u.ts + ?4) / 1000, 'unixepoch'), NULL, NULL, NULL, NULL, NULL, NULL,
                 {SUMS}
             FROM usage u WHERE {filter}
             GROUP BY 1 ORDER BY 1 LIMIT {limit}"
        ),
        GroupBy::Project => format!(
            "SELECT NULL, u.project_id,
                 (SELECT project_name FROM usage l WHERE l.project_id = u.project_id
                  ORDER BY l.id DESC LIMIT 1),
                 NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = u.project_id),
                 NULL, NULL, NULL, {SUMS}
             FROM usage u WHERE {filter} AND ?4 IS NOT NULL
             GROUP BY u.project_id ORDER BY 8 DESC, u.project_id LIMIT {limit}"
        ),
        GroupBy::Run => format!(
            "SELECT NULL, u.project_id, MAX(u.project_name),
                 NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = u.project_id),
                 u.run_id,
                 (SELECT session_id FROM usage l WHERE l.run_id = u.run_id
                  ORDER BY l.id DESC LIMIT 1),
                 (SELECT model FROM usage l WHERE l.run_id = u.run_id
                  ORDER BY l.id DESC LIMIT 1),
                 {SUMS}
             FROM usage u WHERE {filter} AND ?4 IS NOT NULL
             GROUP BY u.run_id ORDER BY MAX(u.ts) DESC, u.run_id LIMIT {limit}"
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt
        .query_map(args, |row| {
            Ok(UsageRow {
                day: row.get(0)?,
                project_id: row.get(1)?,
                project_name: row.get(2)?,
                project_deleted: row.get(3)?,
                run_id: row.get(4)?,
                session_id: row.get(5)?,
                model: row.get(6)?,
                figures: figures(row, 7)?,
                first_at: format_ms(row.get(14)?),
                last_at: format_ms(row.get(15)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let truncated = rows.len() > MAX_USAGE_ROWS;
    rows.truncate(MAX_USAGE_ROWS);
    Ok(UsageReport {
        rows,
        total,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::block_on;
    use super::*;
    use crate::protocol::ProjectState;
    use crate::storage::sqlite::ProjectRow;

    const DAY: i64 = 86_400_000;
    /// 2026-12-07T00:00:00Z.
    const DEC_7: i64 = 1_796_601_600_000;

    fn turn(project: &str, run: &str, turn: u32, ts: i64, usd: f64) -> TurnRow {
        TurnRow {
            project_id: project.into(),
            project_name: format!("name-{project}"),
            run_id: run.into(),
            session_id: Some(format!("session-{run}")),
            turn,
            ts,
            usd,
            input_tokens: 10,
            output_tokens: 20,
            cache_read_tokens: 3,
            cache_creation_tokens: 4,
            model: Some("m".into()),
            basis: "process",
            total_usd: usd * f64::from(turn),
            totals: format!(r#"{{"total_usd":{usd},"models":{{}}}}"#),
        }
    }

    fn query(group_by: GroupBy) -> UsageQuery {
        UsageQuery {
            project_id: None,
            since: None,
            until: None,
            group_by,
            utc_offset_minutes: 0,
        }
    }

    #[test]
    fn turns_sum_per_day_project_and_run_and_outlive_their_project() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .insert_project_blocking(&ProjectRow {
                id: "p1".into(),
                name: "name-p1".into(),
                path: dir.path().join("p1"),
                created_at: 1,
                state: ProjectState::Idle,
                reason: None,
                session_id: None,
                last_seq: 0,
                agent: Default::default(),
                model: None,
                agent_sessions: Default::default(),
            })
            .unwrap();
        block_on(async {
            for row in [
                turn("p1", "r1", 1, DEC_7 + 1000, 0.25),
                turn("p1", "r1", 2, DEC_7 + 2000, 0.5),
                turn("p2", "r2", 1, DEC_7 + DAY - 1, 1.0),
                turn("p2", "r3", 1, DEC_7 + DAY + 5, 2.0),
            ] {
                store.insert_turn(row).await.unwrap();
            }
            let days = store.usage(query(GroupBy::Day)).await.unwrap();
            let by_day: Vec<_> = days
                .rows
                .iter()
                .map(|r| (r.day.clone().unwrap(), r.figures.usd, r.figures.turns))
                .collect();
            assert_eq!(
                by_day,
                [
                    ("2026-12-07".into(), 1.75, 3),
                    ("2026-12-08".into(), 2.0, 1)
                ]
            );
            assert_eq!(days.total.usd, 3.75);
            assert_eq!(days.total.turns, 4);
            assert_eq!(days.total.runs, 3);
            assert_eq!(days.total.input_tokens, 40);
            assert_eq!(days.total.cache_creation_tokens, 16);
            assert!(!days.truncated);

            // Days that begin an hour earlier (UTC+01:00): the turn at 23:59:59.999 UTC
            // is on the 8th there.
            let east = store
                .usage(UsageQuery {
                    utc_offset_minutes: 60,
                    ..query(GroupBy::Day)
                })
                .await
                .unwrap();
            assert_eq!(east.rows[1].figures.usd, 3.0);

            // p2 was never registered here: it counts as deleted, with its old name.
            let projects = store.usage(query(GroupBy::Project)).await.unwrap();
            let by_project: Vec<_> = projects
                .rows
                .iter()
                .map(|r| {
                    (
                        r.project_id.clone().unwrap(),
                        r.project_name.clone().unwrap(),
                        r.project_deleted.unwrap(),
                        r.figures.usd,
                    )
                })
                .collect();
            assert_eq!(
                by_project,
                [
                    ("p2".into(), "name-p2".into(), true, 3.0),
                    ("p1".into(), "name-p1".into(), false, 0.75)
                ]
            );

            let runs = store
                .usage(UsageQuery {
                    project_id: Some("p2".into()),
                    since: Some(DEC_7),
                    until: Some(DEC_7 + 2 * DAY),
                    ..query(GroupBy::Run)
                })
                .await
                .unwrap();
            let by_run: Vec<_> = runs
                .rows
                .iter()
                .map(|r| (r.run_id.clone().unwrap(), r.session_id.clone().unwrap()))
                .collect();
            assert_eq!(
                by_run,
                [
                    ("r3".into(), "session-r3".into()),
                    ("r2".into(), "session-r2".into())
                ]
            );
            assert_eq!(runs.total.usd, 3.0);

            // until is exclusive, since inclusive.
            let first_day = store
                .usage(UsageQuery {
                    since: Some(DEC_7 + 2000),
                    until: Some(DEC_7 + DAY - 1),
                    ..query(GroupBy::Day)
                })
                .await
                .unwrap();
            assert_eq!(first_day.total.usd, 0.5);

            assert_eq!(
                store.last_session_totals("session-r1").await.unwrap(),
                Some(r#"{"total_usd":0.5,"models":{}}"#.to_string())
            );
            assert_eq!(store.last_session_totals("nope").await.unwrap(), None);

            // Deleting the project keeps its usage.
            assert!(store.delete_project("p1").await.unwrap());
            let projects = store.usage(query(GroupBy::Project)).await.unwrap();
            assert_eq!(projects.total.usd, 3.75);
            assert!(
                projects
                    .rows
                    .iter()
                    .all(|r| r.project_deleted == Some(true))
            );
        });
    }
}
