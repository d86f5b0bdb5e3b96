//! The PostgreSQL database that the instances of a public hub share (`public.database`).
//!
//! What lives here: client tokens (hashes and metadata, revocations included) and
//! pairing requests, so that a token made through one instance works on every other,
//! a revocation anywhere stops new connections everywhere, and a pairing requested
//! through one instance can be approved through a second and claimed through a third.
//! Everything else (projects, runs, the task queue, dashboard sessions) stays in the
//! instance's own SQLite database.
//!
//! Connections come from a `deadpool-postgres` pool over `tokio-postgres`, with TLS as
//! the URL's `sslmode` says ([`tls`]); every query is async, none runs on the blocking
//! pool. The schema is created and upgraded by
//! [`MIGRATIONS`], applied in order at start under a transaction-scoped advisory lock,
//! so instances starting at once do not race; the version reached is kept in
//! `semantest_migrations`.
//!
//! Reachability: every failed query marks the database unreachable and every successful
//! one reachable again; a probe ([`Database::probe`]) runs once a second while the hub
//! runs. `/health` reports it ([`DatabaseHealth`]); while unreachable, new WebSocket
//! connections are refused with 503 and open ones carry on.

mod pairings;
mod tls;
mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

use crate::config::DatabaseTls;

pub use crate::protocol::hub::{DatabaseHealth, DatabaseKind, Reachability};

pub use pairings::{Admission, PairingRow, PairingState, PendingLimits};
pub use tls::TlsSetupError;

/// The secret store entry (keychain or file) holding the PostgreSQL password when
/// `SEMANTEST_HUB_DATABASE_PASSWORD` is not set.
pub const DATABASE_PASSWORD_SECRET: &str = "database-password";

/// How long taking a connection from the pool, opening one, or a probe may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a statement may run on the server (`statement_timeout`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle time before TCP keepalive probes start on a pooled connection.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);

/// How often the hub probes the database and refreshes its cache of client tokens.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Connections one instance keeps open at most.
pub const POOL_SIZE: usize = 16;

/// The schema, one entry per version, applied in order (version = index + 1). A new
/// version is a new entry at the end; entries already released never change.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE client_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        origin TEXT,
        scopes TEXT NOT NULL,
        hash BYTEA NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT,
        last_addr TEXT,
        revoked_at BIGINT
    );
    CREATE TABLE pairing_requests (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        origin TEXT NOT NULL,
        code TEXT NOT NULL,
        address TEXT NOT NULL,
        claim_hash BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        client_id TEXT
    );
    CREATE INDEX pairing_requests_state ON pairing_requests (state, expires_at);
    CREATE INDEX client_tokens_live_origin ON client_tokens (origin) WHERE revoked_at IS NULL;",
    // What the per-address pending limit counts (`pairing::requester_key`): an IPv6
    // client by its /64, a loopback one by its Origin. Rows from before count as ''.
    "ALTER TABLE pairing_requests ADD COLUMN requester TEXT NOT NULL DEFAULT '';",
];

/// The key of the advisory lock that serialises migrations across instances.
const MIGRATION_LOCK: i64 = 0x5e3a_7e57_0001;

/// A failure talking to the shared database.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The pool could not be built (a bug in the settings).
    #[error("cannot set up the PostgreSQL connection pool")]
    Build(#[from] deadpool_postgres::BuildError),
    /// No connection could be had: the server is down, refuses us, or the pool timed out.
    #[error("cannot reach PostgreSQL")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("PostgreSQL query failed")]
    Query(#[from] tokio_postgres::Error),
    /// The TLS settings (`sslmode`, `sslrootcert`) cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The database holds a newer schema than this hub knows.
    #[error(
        "the database schema is at version {found}, newer than this hub's {known}; upgrade the hub"
    )]
    TooNew {
        /// The version in `semantest_migrations`.
        found: i64,
        /// The last version in [`MIGRATIONS`].
        known: i64,
    },
}

/// A handle on the shared database. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    reachable: Arc<AtomicBool>,
}

impl Database {
    /// Connects with `config` (the parsed `public.database`, password already set) and
    /// `tls` (its `sslmode`, [`tls`]), checks the server answers and applies the
    /// migrations it lacks.
    ///
    /// # Errors
    /// [`DatabaseError::Tls`] when the CA file cannot be used, [`DatabaseError::Pool`]
    /// when the server cannot be reached, refuses the credentials, does not speak TLS
    /// when it is required, or presents a certificate `verify-full` rejects,
    /// [`DatabaseError::Query`] when a migration fails, [`DatabaseError::TooNew`] when
    /// another hub upgraded the schema past this one.
    pub async fn connect(
        mut config: tokio_postgres::Config,
        tls: &DatabaseTls,
    ) -> Result<Self, DatabaseError> {
        let connector = tls::connector(tls)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("semantest-hub");
        }
        // A server that vanishes without closing the connection (a partition, a host
        // gone) fails queries within seconds instead of the kernel's many minutes:
        // unacknowledged data gives up after TIMEOUT (Linux TCP_USER_TIMEOUT), idle
        // connections are probed after KEEPALIVE_IDLE, and the server itself abandons a
        // statement after STATEMENT_TIMEOUT unless the URL sets its own options.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TIMEOUT);
        }
        config.keepalives_idle(KEEPALIVE_IDLE);
        if config.get_options().is_none() {
            config.options(format!(
                "-c statement_timeout={}",
                STATEMENT_TIMEOUT.as_millis()
            ));
        }
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()?;
        let database = Self {
            pool,
            reachable: Arc::new(AtomicBool::new(false)),
        };
        database.migrate().await?;
        database.reachable.store(true, Ordering::Relaxed);
        Ok(database)
    }

    /// Applies the [`MIGRATIONS`] the database lacks, in one transaction under an
    /// advisory lock (so a second instance starting at the same time waits, then finds
    /// nothing to do). Returns the version reached.
    async fn migrate(&self) -> Result<i64, DatabaseError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS semantest_migrations (
                 version BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let found: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM semantest_migrations",
                &[],
            )
            .await?
            .get(0);
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if found > known {
            return Err(DatabaseError::TooNew { found, known });
        }
        for (version, sql) in (1_i64..)
            .zip(MIGRATIONS)
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO semantest_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            tracing::info!(version, "database schema migrated");
        }
        tx.commit().await?;
        Ok(known)
    }

    /// A pooled connection; a failure marks the database unreachable.
    async fn client(&self) -> Result<Object, DatabaseError> {
        let client = self.pool.get().await;
        self.note(client.is_ok());
        Ok(client?)
    }

    /// Records the outcome of a query: the reachability `/health` reports.
    fn note(&self, ok: bool) {
        let was = self.reachable.swap(ok, Ordering::Relaxed);
        if was != ok {
            if ok {
                tracing::info!("PostgreSQL reachable again");
            } else {
                tracing::warn!(
                    "PostgreSQL unreachable; new connections are refused until it is back"
                );
            }
        }
    }

    /// Passes `result` through, marking the database reachable or unreachable by it.
    fn noted<T>(&self, result: Result<T, DatabaseError>) -> Result<T, DatabaseError> {
        self.note(result.is_ok());
        result
    }

    /// Whether the last query or probe succeeded.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// `/health`'s view.
    pub fn health(&self) -> DatabaseHealth {
        DatabaseHealth {
            kind: DatabaseKind::Postgres,
            state: if self.reachable() {
                Reachability::Reachable
            } else {
                Reachability::Unreachable
            },
        }
    }

    /// Runs `SELECT 1` within [`TIMEOUT`]; returns and records whether it answered.
    pub async fn probe(&self) -> bool {
        let answered = tokio::time::timeout(TIMEOUT, async {
            let client = self.pool.get().await.ok()?;
            client.simple_query("SELECT 1").await.ok()
        })
        .await
        .ok()
        .flatten()
        .is_some();
        self.note(answered);
        answered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_shapes() {
        assert_eq!(
            serde_json::to_value(DatabaseHealth::SQLITE).unwrap(),
            serde_json::json!({"kind": "sqlite", "state": "reachable"})
        );
        let down = DatabaseHealth {
            kind: DatabaseKind::Postgres,
            state: Reachability::Unreachable,
        };
        assert!(!down.healthy());
        assert!(DatabaseHealth::SQLITE.healthy());
    }
}
