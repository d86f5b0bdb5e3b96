//! The client tokens' port to storage, [`TokenStore`], and its two implementations:
//! this instance's SQLite [`Store`] and the PostgreSQL [`Database`] public instances
//! share. Each is a thin adapter over that engine's statements; the rules (validation,
//! origin binding, what the in-memory copy may answer alone) are written once in
//! [`super::ClientTokens`]. The methods return futures so that an implementation may
//! wait on a database or a writer thread without blocking the runtime.

use futures_util::future::BoxFuture;

use super::ClientTokenError;
use crate::storage::credentials::ClientTokenRow;
use crate::storage::postgres::Database;
use crate::storage::sqlite::Store;

/// What revoking a token found.
#[derive(Debug, Clone, PartialEq)]
pub enum Revoked {
    /// No live token has that id.
    NotLive,
    /// Revoked now; the row when the store returns it (the caller's copy has it
    /// otherwise).
    Revoked(Option<ClientTokenRow>),
}

/// What the client tokens need from storage.
pub trait TokenStore: Send + Sync {
    /// Whether other instances write these tokens too. Then the copy in memory is a
    /// cache: a new connection's token, a signature key and an unknown origin are
    /// looked up here. Otherwise the copy is the truth and these lookups are not needed.
    fn shared(&self) -> bool;

    /// Every live (unrevoked) token, oldest first.
    fn live(&self) -> BoxFuture<'_, Result<Vec<ClientTokenRow>, ClientTokenError>>;

    /// Inserts a new token (a reused id or hash fails).
    fn insert<'a>(&'a self, row: &'a ClientTokenRow)
    -> BoxFuture<'a, Result<(), ClientTokenError>>;

    /// Marks live token `id` revoked at `now`.
    fn revoke<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Revoked, ClientTokenError>>;

    /// Records a connection made with token `id` at `now` from `addr`.
    fn touch<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        addr: &'a str,
    ) -> BoxFuture<'a, Result<(), ClientTokenError>>;

    /// The live token whose value has SHA-256 `hash`.
    fn by_hash<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<ClientTokenRow>, ClientTokenError>>;

    /// The SHA-256 of live token `id`'s value.
    fn hash_of<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<[u8; 32]>, ClientTokenError>>;

    /// Whether a live token is bound to exactly `origin`.
    fn origin_bound<'a>(&'a self, origin: &'a str)
    -> BoxFuture<'a, Result<bool, ClientTokenError>>;

    /// Those of `ids` (each stored at some point) that are revoked now.
    fn revoked<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, ClientTokenError>>;
}

/// This instance's SQLite database: the only writer of its tokens. The lookups scan the
/// live rows; [`super::ClientTokens`] answers them from its copy instead.
impl TokenStore for Store {
    fn shared(&self) -> bool {
        false
    }

    fn live(&self) -> BoxFuture<'_, Result<Vec<ClientTokenRow>, ClientTokenError>> {
        Box::pin(async move { Ok(self.live_client_tokens().await?) })
    }

    fn insert<'a>(
        &'a self,
        row: &'a ClientTokenRow,
    ) -> BoxFuture<'a, Result<(), ClientTokenError>> {
        Box::pin(async move { Ok(self.insert_client_token(row).await?) })
    }

    fn revoke<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Revoked, ClientTokenError>> {
        Box::pin(async move {
            Ok(if self.revoke_client_token(id, now).await? {
                Revoked::Revoked(None)
            } else {
                Revoked::NotLive
            })
        })
    }

    fn touch<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        addr: &'a str,
    ) -> BoxFuture<'a, Result<(), ClientTokenError>> {
        Box::pin(async move { Ok(self.touch_client_token(id, now, addr).await?) })
    }

    fn by_hash<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<ClientTokenRow>, ClientTokenError>> {
        Box::pin(async move {
            Ok(self
                .live_client_tokens()
                .await?
                .into_iter()
                .find(|row| row.hash == *hash))
        })
    }

    fn hash_of<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<[u8; 32]>, ClientTokenError>> {
        Box::pin(async move {
            Ok(self
                .live_client_tokens()
                .await?
                .into_iter()
                .find(|row| row.id == id)
                .map(|row| row.hash))
        })
    }

    fn origin_bound<'a>(
        &'a self,
        origin: &'a str,
    ) -> BoxFuture<'a, Result<bool, ClientTokenError>> {
        Box::pin(async move {
            Ok(self
                .live_client_tokens()
                .await?
                .iter()
                .any(|row| row.origin.as_deref() == Some(origin)))
        })
    }

    fn revoked<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, ClientTokenError>> {
        // Every id the caller holds was stored, so one not live is revoked.
        Box::pin(async move {
            let live = self.live_client_tokens().await?;
            Ok(ids
                .iter()
                .filter(|id| !live.iter().any(|row| &row.id == *id))
                .cloned()
                .collect())
        })
    }
}

/// The PostgreSQL database shared by public instances.
impl TokenStore for Database {
    fn shared(&self) -> bool {
        true
    }

    fn live(&self) -> BoxFuture<'_, Result<Vec<ClientTokenRow>, ClientTokenError>> {
        Box::pin(async move { Ok(self.live_client_tokens().await?) })
    }

    fn insert<'a>(
        &'a self,
        row: &'a ClientTokenRow,
    ) -> BoxFuture<'a, Result<(), ClientTokenError>> {
        Box::pin(async move { Ok(self.insert_client_token(row).await?) })
    }

    fn revoke<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Revoked, ClientTokenError>> {
        Box::pin(async move {
            Ok(match self.revoke_client_token(id, now).await? {
                Some(row) => Revoked::Revoked(Some(row)),
                None => Revoked::NotLive,
            })
        })
    }

    fn touch<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        addr: &'a str,
    ) -> BoxFuture<'a, Result<(), ClientTokenError>> {
        Box::pin(async move { Ok(self.touch_client_token(id, now, addr).await?) })
    }

    fn by_hash<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<ClientTokenRow>, ClientTokenError>> {
        Box::pin(async move { Ok(self.live_client_token(hash).await?) })
    }

    fn hash_of<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<[u8; 32]>, ClientTokenError>> {
        Box::pin(async move { Ok(self.live_token_hash(id).await?) })
    }

    fn origin_bound<'a>(
        &'a self,
        origin: &'a str,
    ) -> BoxFuture<'a, Result<bool, ClientTokenError>> {
        Box::pin(async move { Ok(self.origin_has_live_token(origin).await?) })
    }

    fn revoked<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, ClientTokenError>> {
        Box::pin(async move { Ok(self.revoked_client_tokens(ids).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::clients::ClientKind;
    use crate::protocol::scopes::{Scope, Scopes};

    fn row(id: &str, hash: u8, origin: Option<&str>) -> ClientTokenRow {
        ClientTokenRow {
            id: id.into(),
            name: "x".into(),
            kind: ClientKind::Manual,
            origin: origin.map(str::to_string),
            scopes: Scopes::only(Scope::Events),
            hash: [hash; 32],
            created_at: i64::from(hash),
            last_used_at: None,
            last_addr: None,
        }
    }

    #[tokio::test]
    async fn the_sqlite_store_answers_every_lookup_from_its_live_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let store: &dyn TokenStore = &store;
        assert!(!store.shared());
        store
            .insert(&row("cl_a", 1, Some("https://a.example")))
            .await
            .unwrap();
        store.insert(&row("cl_b", 2, None)).await.unwrap();
        assert!(
            store.insert(&row("cl_c", 2, None)).await.is_err(),
            "hash is unique"
        );
        assert_eq!(store.by_hash(&[1; 32]).await.unwrap().unwrap().id, "cl_a");
        assert_eq!(store.hash_of("cl_b").await.unwrap(), Some([2; 32]));
        assert!(store.origin_bound("https://a.example").await.unwrap());
        assert!(!store.origin_bound("https://b.example").await.unwrap());
        assert_eq!(
            store.revoke("cl_a", 5).await.unwrap(),
            Revoked::Revoked(None)
        );
        assert_eq!(store.revoke("cl_a", 6).await.unwrap(), Revoked::NotLive);
        assert_eq!(store.by_hash(&[1; 32]).await.unwrap(), None);
        assert!(!store.origin_bound("https://a.example").await.unwrap());
        let ids = ["cl_a".to_string(), "cl_b".to_string()];
        assert_eq!(store.revoked(&ids).await.unwrap(), vec!["cl_a".to_string()]);
        store.touch("cl_b", 7, "127.0.0.1:9").await.unwrap();
        let live = store.live().await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].last_used_at, Some(7));
    }
}
