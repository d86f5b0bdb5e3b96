//! The shared `client_tokens` table: the same columns as the SQLite table
//! (`src/storage/sqlite/client_tokens.rs`), one row per token, the token's SHA-256 and never the
//! token itself. A revoked token keeps its row with `revoked_at`.

use tokio_postgres::Row;

use super::{Database, DatabaseError};
use crate::protocol::clients::ClientKind;
use crate::protocol::scopes::Scopes;
use crate::storage::sqlite::{ClientTokenRow, stored};

const COLUMNS: &str = "id, name, kind, origin, scopes, hash, created_at, last_used_at, last_addr";

fn token_row(row: &Row) -> ClientTokenRow {
    let hash: Vec<u8> = row.get("hash");
    ClientTokenRow {
        id: row.get("id"),
        name: row.get("name"),
        kind: stored(row.get::<_, &str>("kind"), ClientKind::Manual),
        origin: row.get("origin"),
        scopes: Scopes::from_storage(row.get::<_, &str>("scopes")),
        hash: hash.try_into().unwrap_or([0; 32]),
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
        last_addr: row.get("last_addr"),
    }
}

impl Database {
    /// Inserts a client token.
    ///
    /// # Errors
    /// [`DatabaseError`], including a unique violation for a reused id or hash.
    pub async fn insert_client_token(&self, row: &ClientTokenRow) -> Result<(), DatabaseError> {
        let client = self.client().await?;
        let result = client
            .execute(
                "INSERT INTO client_tokens (id, name, kind, origin, scopes, hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &row.id,
                    &row.name,
                    &row.kind.as_str(),
                    &row.origin,
                    &row.scopes.to_storage(),
                    &row.hash.as_slice(),
                    &row.created_at,
                ],
            )
            .await;
        self.noted(result.map(drop).map_err(DatabaseError::from))
    }

    /// Every token not revoked, oldest first.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn live_client_tokens(&self) -> Result<Vec<ClientTokenRow>, DatabaseError> {
        let client = self.client().await?;
        let result = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM client_tokens WHERE revoked_at IS NULL
                     ORDER BY created_at, id"
                ),
                &[],
            )
            .await;
        self.noted(
            result
                .map(|rows| rows.iter().map(token_row).collect())
                .map_err(Into::into),
        )
    }

    /// The live token whose SHA-256 is `hash`, if any.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn live_client_token(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<ClientTokenRow>, DatabaseError> {
        let client = self.client().await?;
        let result = client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM client_tokens WHERE hash = $1 AND revoked_at IS NULL"
                ),
                &[&hash.as_slice()],
            )
            .await;
        self.noted(
            result
                .map(|row| row.as_ref().map(token_row))
                .map_err(Into::into),
        )
    }

    /// The SHA-256 of live token `id`, if it is live.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn live_token_hash(&self, id: &str) -> Result<Option<[u8; 32]>, DatabaseError> {
        let client = self.client().await?;
        let result = client
            .query_opt(
                "SELECT hash FROM client_tokens WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await;
        self.noted(
            result
                .map(|row| row.and_then(|row| row.get::<_, Vec<u8>>(0).try_into().ok()))
                .map_err(Into::into),
        )
    }

    /// Whether a live token is bound to exactly `origin`.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn origin_has_live_token(&self, origin: &str) -> Result<bool, DatabaseError> {
        let client = self.client().await?;
        let result = client
            .query_opt(
                "SELECT 1 FROM client_tokens WHERE origin = $1 AND revoked_at IS NULL LIMIT 1",
                &[&origin],
            )
            .await;
        self.noted(result.map(|row| row.is_some()).map_err(Into::into))
    }

    /// Those of `ids` that are revoked.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn revoked_client_tokens(
        &self,
        ids: &[String],
    ) -> Result<Vec<String>, DatabaseError> {
        let client = self.client().await?;
        let result = client
            .query(
                "SELECT id FROM client_tokens WHERE id = ANY($1) AND revoked_at IS NOT NULL",
                &[&ids],
            )
            .await;
        self.noted(
            result
                .map(|rows| rows.iter().map(|row| row.get(0)).collect())
                .map_err(Into::into),
        )
    }

    /// Marks a live token revoked at `now` (epoch ms) and returns its row; `None` when
    /// no live token has that id.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn revoke_client_token(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<ClientTokenRow>, DatabaseError> {
        let client = self.client().await?;
        let result = client
            .query_opt(
                &format!(
                    "UPDATE client_tokens SET revoked_at = $2
                     WHERE id = $1 AND revoked_at IS NULL RETURNING {COLUMNS}"
                ),
                &[&id, &now],
            )
            .await;
        self.noted(
            result
                .map(|row| row.as_ref().map(token_row))
                .map_err(Into::into),
        )
    }

    /// Records a connection made with a token: when and from where.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn touch_client_token(
        &self,
        id: &str,
        at: i64,
        addr: &str,
    ) -> Result<(), DatabaseError> {
        let client = self.client().await?;
        let result = client
            .execute(
                "UPDATE client_tokens SET last_used_at = $2, last_addr = $3 WHERE id = $1",
                &[&id, &at, &addr],
            )
            .await;
        self.noted(result.map(drop).map_err(Into::into))
    }
}
