//! Dashboard sign-in sessions: the SHA-256 of each session secret and its expiry.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

impl Store {
    /// Stores a dashboard session's hash.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn insert_dashboard_session(
        &self,
        hash: &[u8; 32],
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let hash = *hash;
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at < ?1",
                [now],
            )?;
            conn.execute(
                "INSERT INTO dashboard_sessions (hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
                params![hash.as_slice(), now, expires_at],
            )?;
            Ok(())
        })
        .await
    }

    /// Uses a dashboard session: when an unexpired session has this hash, moves its
    /// expiry to `now + lifetime_ms` (the sliding lifetime) and returns true.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn use_dashboard_session(
        &self,
        hash: &[u8; 32],
        now: i64,
        lifetime_ms: i64,
    ) -> Result<bool, StoreError> {
        let hash = *hash;
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE dashboard_sessions SET expires_at = ?3 WHERE hash = ?1 AND expires_at > ?2",
                params![hash.as_slice(), now, now.saturating_add(lifetime_ms)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Deletes the dashboard session with this hash (a sign-out); returns whether there
    /// was one.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn delete_dashboard_session(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let hash = *hash;
        self.write(move |conn| {
            let deleted = conn.execute(
                "DELETE FROM dashboard_sessions WHERE hash = ?1",
                params![hash.as_slice()],
            )?;
            Ok(deleted == 1)
        })
        .await
    }

    /// Deletes every dashboard session (sign out everywhere); returns how many were
    /// still live at `now`.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn delete_dashboard_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.write(move |conn| {
            let live: i64 = conn.query_row(
                "SELECT COUNT(*) FROM dashboard_sessions WHERE expires_at > ?1",
                [now],
                |row| row.get(0),
            )?;
            conn.execute("DELETE FROM dashboard_sessions", [])?;
            Ok(usize::try_from(live).unwrap_or(0))
        })
        .await
    }

    /// Whether an unexpired dashboard session has this hash. The lookup is by primary key
    /// on a SHA-256 of a 256-bit secret, so its timing reveals nothing usable.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn dashboard_session_valid(
        &self,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError> {
        let hash = *hash;
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM dashboard_sessions WHERE hash = ?1 AND expires_at > ?2",
                    params![hash.as_slice(), now],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }
}
