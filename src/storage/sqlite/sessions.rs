//! Live agent sessions' durable parts: the follow-ups queued for a project, the
//! approval rules a project remembers (`allow_always`/`reject_always` with scope
//! `project`) and each project's approval policy (`agent.policy.set`).
//!
//! A queued follow-up moves `queued` → `delivered` or `cancelled` exactly once: every
//! move is one `UPDATE … WHERE state = 'queued'`, so an edit or a cancel racing the
//! delivery either wins or finds the message gone, never both.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// The schema of this file.
pub(super) const MIGRATION: &str = "CREATE TABLE queued_messages (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    run_id TEXT
);
CREATE INDEX queued_messages_by_project ON queued_messages(project_id, state, created_at);
CREATE TABLE approval_rules (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    tool_name TEXT NOT NULL,
    behavior TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, tool_name)
);
CREATE TABLE approval_policies (
    project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    policy TEXT NOT NULL
);";

/// Rules with content (`Bash(npm test:*)`): the rule's content joins the key, so a
/// project may remember several rules of one tool. An empty content is the whole tool,
/// which is what every row stored before this migration means.
pub(super) const RULE_CONTENT_MIGRATION: &str = "CREATE TABLE approval_rules_v2 (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    tool_name TEXT NOT NULL,
    rule_content TEXT NOT NULL DEFAULT '',
    behavior TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, tool_name, rule_content)
);
INSERT INTO approval_rules_v2 (project_id, tool_name, rule_content, behavior, created_at)
    SELECT project_id, tool_name, '', behavior, created_at FROM approval_rules;
DROP TABLE approval_rules;
ALTER TABLE approval_rules_v2 RENAME TO approval_rules;";

/// A queued follow-up as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRow {
    /// `qm_…`.
    pub id: String,
    /// The project.
    pub project_id: String,
    /// The text.
    pub text: String,
    /// `queued`, `delivered` or `cancelled`.
    pub state: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// The run it was delivered to.
    pub run_id: Option<String>,
}

/// A remembered project rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    /// The project.
    pub project_id: String,
    /// The tool.
    pub tool_name: String,
    /// What of the tool's input the rule covers (`npm test:*` of `Bash(npm test:*)`);
    /// empty for every call of the tool.
    pub rule_content: String,
    /// `allow` or `deny`.
    pub behavior: String,
    /// Unix ms (ignored by [`Store::put_approval_rule`], which takes `now`).
    pub created_at: i64,
}

const COLUMNS: &str = "id, project_id, text, state, created_at, updated_at, run_id";

fn queued_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedRow> {
    Ok(QueuedRow {
        id: row.get(0)?,
        project_id: row.get(1)?,
        text: row.get(2)?,
        state: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
        run_id: row.get(6)?,
    })
}

impl Store {
    /// Queues a follow-up.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] (a missing project fails its foreign key).
    pub async fn enqueue_message(
        &self,
        id: String,
        project_id: String,
        text: String,
        now: i64,
    ) -> Result<QueuedRow, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO queued_messages (id, project_id, text, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?4)",
                params![id, project_id, text, now],
            )?;
            Ok(QueuedRow {
                id,
                project_id,
                text,
                state: "queued".into(),
                created_at: now,
                updated_at: now,
                run_id: None,
            })
        })
        .await
    }

    /// Marks the project's oldest queued follow-up delivered to `run_id` and returns it.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn take_next_queued(
        &self,
        project_id: String,
        run_id: String,
        now: i64,
    ) -> Result<Option<QueuedRow>, StoreError> {
        self.write(move |conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "UPDATE queued_messages SET state = 'delivered', run_id = ?2, updated_at = ?3
                         WHERE id = (SELECT id FROM queued_messages
                                     WHERE project_id = ?1 AND state = 'queued'
                                     ORDER BY created_at, id LIMIT 1)
                         RETURNING {COLUMNS}"
                    ),
                    params![project_id, run_id, now],
                    queued_row,
                )
                .optional()?)
        })
        .await
    }

    /// Edits (`text` is `Some`) or cancels (`None`) a follow-up that is still queued.
    /// Returns the row as it is now, with whether it changed; `None` when no row has
    /// that id.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn change_queued(
        &self,
        id: String,
        text: Option<String>,
        now: i64,
    ) -> Result<Option<(QueuedRow, bool)>, StoreError> {
        self.write(move |conn| {
            let changed = match &text {
                Some(text) => conn.execute(
                    "UPDATE queued_messages SET text = ?2, updated_at = ?3
                     WHERE id = ?1 AND state = 'queued'",
                    params![id, text, now],
                )?,
                None => conn.execute(
                    "UPDATE queued_messages SET state = 'cancelled', updated_at = ?2
                     WHERE id = ?1 AND state = 'queued'",
                    params![id, now],
                )?,
            };
            let row = conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM queued_messages WHERE id = ?1"),
                    [&id],
                    queued_row,
                )
                .optional()?;
            Ok(row.map(|row| (row, changed == 1)))
        })
        .await
    }

    /// A project's follow-ups still queued, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn queued_messages(&self, project_id: String) -> Result<Vec<QueuedRow>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM queued_messages
                 WHERE project_id = ?1 AND state = 'queued' ORDER BY created_at, id"
            ))?;
            let rows = statement
                .query_map([project_id], queued_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Stores a project rule, replacing the same rule's previous behaviour.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn put_approval_rule(&self, rule: RuleRow, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO approval_rules (project_id, tool_name, rule_content, behavior, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (project_id, tool_name, rule_content)
                 DO UPDATE SET behavior = ?4, created_at = ?5",
                params![
                    rule.project_id,
                    rule.tool_name,
                    rule.rule_content,
                    rule.behavior,
                    now
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Forgets a project rule; whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn delete_approval_rule(
        &self,
        project_id: String,
        tool_name: String,
        rule_content: String,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let deleted = conn.execute(
                "DELETE FROM approval_rules
                 WHERE project_id = ?1 AND tool_name = ?2 AND rule_content = ?3",
                params![project_id, tool_name, rule_content],
            )?;
            Ok(deleted > 0)
        })
        .await
    }

    /// Stores a project's approval policy (a JSON object), or removes it (`None`).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] (a missing project fails its foreign key).
    pub async fn put_approval_policy(
        &self,
        project_id: String,
        policy: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            match policy {
                Some(policy) => conn.execute(
                    "INSERT INTO approval_policies (project_id, policy) VALUES (?1, ?2)
                     ON CONFLICT (project_id) DO UPDATE SET policy = ?2",
                    params![project_id, policy],
                )?,
                None => conn.execute(
                    "DELETE FROM approval_policies WHERE project_id = ?1",
                    [project_id],
                )?,
            };
            Ok(())
        })
        .await
    }

    /// Every project's approval policy (project id, JSON), for the hub's start.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn approval_policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare("SELECT project_id, policy FROM approval_policies")?;
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Every project rule, for the hub's start.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn approval_rules(&self) -> Result<Vec<RuleRow>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare(
                "SELECT project_id, tool_name, rule_content, behavior, created_at
                 FROM approval_rules ORDER BY created_at, tool_name, rule_content",
            )?;
            let rows = statement
                .query_map([], |row| {
                    Ok(RuleRow {
                        project_id: row.get(0)?,
                        tool_name: row.get(1)?,
                        rule_content: row.get(2)?,
                        behavior: row.get(3)?,
                        created_at: row.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
