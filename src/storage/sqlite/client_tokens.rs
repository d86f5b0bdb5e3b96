//! The `client_tokens` table: one row per client token, holding the token's SHA-256 hash
//! and its metadata, never the token itself.
//!
//! A revoked token keeps its row (with `revoked_at`) so the history of who had access
//! stays readable; only rows with `revoked_at IS NULL` are loaded at start.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, stored};
use crate::protocol::clients::ClientKind;
use crate::protocol::scopes::Scopes;
use crate::storage::credentials::ClientTokenRow;

/// The migration that creates the table; applied after the coordinator's.
pub(super) const MIGRATION: &str = "CREATE TABLE client_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    origin TEXT,
    scopes TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    last_addr TEXT,
    revoked_at INTEGER
);";

impl Store {
    /// Inserts a client token.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], including a UNIQUE violation for a reused id or hash.
    pub async fn insert_client_token(&self, row: &ClientTokenRow) -> Result<(), StoreError> {
        let row = row.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO client_tokens (id, name, kind, origin, scopes, hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.id,
                    row.name,
                    row.kind.as_str(),
                    row.origin,
                    row.scopes.to_storage(),
                    row.hash.as_slice(),
                    row.created_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Every token not revoked, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn live_client_tokens(&self) -> Result<Vec<ClientTokenRow>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare(
                "SELECT id, name, kind, origin, scopes, hash, created_at, last_used_at, last_addr
             FROM client_tokens WHERE revoked_at IS NULL ORDER BY created_at, id",
            )?;
            let rows = statement.query_map([], |row| {
                let hash: Vec<u8> = row.get(5)?;
                Ok(ClientTokenRow {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    // An unknown kind (a newer hub's) reads as `manual`: the token keeps
                    // only what its stored origin and scopes allow.
                    kind: stored(&row.get::<_, String>(2)?, ClientKind::Manual),
                    origin: row.get(3)?,
                    scopes: Scopes::from_storage(&row.get::<_, String>(4)?),
                    hash: hash.try_into().unwrap_or([0; 32]),
                    created_at: row.get(6)?,
                    last_used_at: row.get(7)?,
                    last_addr: row.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Marks a live token revoked; false when no live token has that id.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn revoke_client_token(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |conn| {
            Ok(conn
                .query_row(
                    "UPDATE client_tokens SET revoked_at = ?2
                     WHERE id = ?1 AND revoked_at IS NULL RETURNING 1",
                    params![id, now],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    /// Gives live token `id` the value whose SHA-256 is `hash` (a pairing claim hands
    /// the token over with a fresh value). Its scopes, or `None` when no live token has
    /// that id.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn rekey_client_token(
        &self,
        id: &str,
        hash: &[u8; 32],
    ) -> Result<Option<Scopes>, StoreError> {
        let (id, hash) = (id.to_string(), *hash);
        let scopes: Option<String> = self
            .write(move |conn| {
                Ok(conn
                    .query_row(
                        "UPDATE client_tokens SET hash = ?2
                     WHERE id = ?1 AND revoked_at IS NULL RETURNING scopes",
                        params![id, hash.as_slice()],
                        |row| row.get(0),
                    )
                    .optional()?)
            })
            .await?;
        Ok(scopes.map(|s| Scopes::from_storage(&s)))
    }

    /// Records a connection made with a token: when and from where.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn touch_client_token(
        &self,
        id: &str,
        at: i64,
        addr: &str,
    ) -> Result<(), StoreError> {
        let (id, addr) = (id.to_string(), addr.to_string());
        self.write(move |conn| {
            conn.execute(
                "UPDATE client_tokens SET last_used_at = ?2, last_addr = ?3 WHERE id = ?1",
                params![id, at, addr],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::scopes::Scope;
    use crate::storage::sqlite::tests::wait;

    fn row(id: &str, hash: u8) -> ClientTokenRow {
        ClientTokenRow {
            id: id.into(),
            name: "ext".into(),
            kind: ClientKind::Extension,
            origin: Some("chrome-extension://abc".into()),
            scopes: Scopes::only(Scope::Events),
            hash: [hash; 32],
            created_at: 1,
            last_used_at: None,
            last_addr: None,
        }
    }

    #[test]
    fn insert_touch_revoke_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        wait(store.insert_client_token(&row("cl_a", 1))).unwrap();
        wait(store.insert_client_token(&row("cl_b", 2))).unwrap();
        assert!(
            wait(store.insert_client_token(&row("cl_c", 2))).is_err(),
            "hash is unique"
        );
        wait(store.touch_client_token("cl_a", 5, "127.0.0.1:9")).unwrap();
        assert!(wait(store.revoke_client_token("cl_b", 6)).unwrap());
        assert!(!wait(store.revoke_client_token("cl_b", 7)).unwrap());
        assert!(!wait(store.revoke_client_token("cl_missing", 7)).unwrap());
        assert_eq!(
            wait(store.rekey_client_token("cl_b", &[8; 32])).unwrap(),
            None
        );
        assert_eq!(
            wait(store.rekey_client_token("cl_a", &[9; 32])).unwrap(),
            Some(Scopes::only(Scope::Events))
        );
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let live = wait(store.live_client_tokens()).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].last_used_at, Some(5));
        assert_eq!(live[0].last_addr.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(live[0].scopes, Scopes::only(Scope::Events));
        assert_eq!(live[0].hash, [9; 32], "rekeyed");
    }
}
