//! The schema: every migration, in order. A migration is never edited once released.

use rusqlite_migration::{M, Migrations};

use super::{client_tokens, projects, search, sessions, usage, worktrees};

pub(super) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE projects (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            path TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'idle',
            reason TEXT,
            session_id TEXT,
            last_seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            prompt TEXT NOT NULL,
            resumed_session TEXT,
            started_at INTEGER NOT NULL,
            ended_at INTEGER,
            status TEXT NOT NULL,
            pgid INTEGER,
            exit_code INTEGER,
            session_id TEXT,
            cost_usd REAL,
            duration_ms INTEGER,
            num_turns INTEGER,
            error TEXT
        );
        CREATE INDEX runs_by_status ON runs(status);
        CREATE INDEX runs_by_project ON runs(project_id, started_at);
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            created_at INTEGER NOT NULL,
            last_used_at INTEGER NOT NULL,
            runs INTEGER NOT NULL DEFAULT 0,
            total_cost_usd REAL NOT NULL DEFAULT 0
        );
        CREATE TABLE messages (
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            run_id TEXT,
            stream TEXT NOT NULL,
            kind TEXT NOT NULL,
            is_json INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (project_id, seq)
        );
        CREATE INDEX messages_by_time ON messages(project_id, ts);
        CREATE TABLE dashboard_sessions (
            hash BLOB PRIMARY KEY,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );",
        ),
        // The coordinator (src/storage/sqlite/tasks.rs): tasks, workers, per-project settings.
        M::up(
            "CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL UNIQUE,
            title TEXT NOT NULL,
            type TEXT,
            context TEXT,
            prompt TEXT,
            acceptance TEXT,
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'pending',
            worker_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            failures TEXT NOT NULL DEFAULT '[]',
            report TEXT,
            completed_by TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX tasks_by_project ON tasks(project_id, seq);
        CREATE INDEX tasks_by_state ON tasks(state);
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            capabilities TEXT NOT NULL DEFAULT '[]',
            project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
            status TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL
        );
        CREATE TABLE coordination (
            project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
            agent_workers INTEGER NOT NULL DEFAULT 0
        );",
        ),
        // Client tokens (src/storage/sqlite/client_tokens.rs).
        M::up(client_tokens::MIGRATION),
        // Agent usage per turn (src/storage/sqlite/usage.rs).
        M::up(usage::MIGRATION),
        // Full-text search in the output (`messages.list` with `q`): an FTS5 index over
        // the stored lines' text, kept by triggers (retention and project deletion
        // included). Never released; the search migration below replaces it, so it no
        // longer indexes the lines already stored (`rebuild`), which that one would drop.
        M::up(
            "CREATE VIRTUAL TABLE messages_fts USING fts5(
            body, content='messages', content_rowid='rowid'
        );
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, body) VALUES (new.rowid, new.body);
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, body)
                VALUES ('delete', old.rowid, old.body);
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, body)
                VALUES ('delete', old.rowid, old.body);
            INSERT INTO messages_fts(rowid, body) VALUES (new.rowid, new.body);
        END;",
        ),
        // Live agent sessions (src/storage/sqlite/sessions.rs): queued follow-ups and
        // remembered approval rules.
        M::up(sessions::MIGRATION),
        // The output's full-text index, kept off the write path: indexed by the writer
        // thread in the background up to a stored watermark (src/storage/sqlite/search.rs).
        M::up(search::MIGRATION),
        // Each project's agent and model, and the sessions of agents other than Claude
        // Code (src/storage/sqlite/projects.rs).
        M::up(projects::AGENT_MIGRATION),
        // Task isolation: projects' setting and tasks' git worktrees
        // (src/storage/sqlite/worktrees.rs).
        M::up(worktrees::MIGRATION),
        // Interactive runs in their own worktree: worktrees keyed by owner (task or
        // run), and the runs that worked in each run's worktree.
        M::up(worktrees::RUNS_MIGRATION),
    ])
}
