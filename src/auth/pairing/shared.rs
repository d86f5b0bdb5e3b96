//! The pairing requests public instances share, in PostgreSQL's `pairing_requests`
//! table: a thin adapter from [`PairingStore`] to the statements in
//! [`crate::storage::postgres`]. A database failure is logged here and reported as
//! [`StoreUnavailable`].

use futures_util::future::BoxFuture;

use crate::protocol::scopes::Scopes;
use crate::storage::credentials::{
    Admission, ExpiredRows, PairingRow, PairingState, PairingStore, PendingLimits, StoreUnavailable,
};
use crate::storage::postgres::{Database, DatabaseError};

/// The shared database, as a pairing store.
pub struct SharedPairings {
    database: Database,
}

impl SharedPairings {
    /// Over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

/// Logs a database failure and turns it into [`StoreUnavailable`].
fn unavailable(err: DatabaseError) -> StoreUnavailable {
    tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), "pairing store unreachable");
    StoreUnavailable
}

impl PairingStore for SharedPairings {
    fn admit<'a>(
        &'a self,
        row: &'a PairingRow,
        requester: &'a str,
        limits: PendingLimits,
    ) -> BoxFuture<'a, Result<Admission, StoreUnavailable>> {
        Box::pin(async move {
            self.database
                .insert_pairing(row, requester, limits)
                .await
                .map_err(unavailable)
        })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<PairingRow>, StoreUnavailable>> {
        Box::pin(async move { self.database.pairing(id).await.map_err(unavailable) })
    }

    fn pending(&self, now: i64) -> BoxFuture<'_, Result<Vec<PairingRow>, StoreUnavailable>> {
        Box::pin(async move {
            self.database
                .pending_pairings(now)
                .await
                .map_err(unavailable)
        })
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        state: PairingState,
        approved: Option<(&'a str, i64)>,
    ) -> BoxFuture<'a, Result<bool, StoreUnavailable>> {
        Box::pin(async move {
            self.database
                .decide_pairing(id, now, state, approved)
                .await
                .map_err(unavailable)
        })
    }

    fn hand_over<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        new_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<(String, Scopes)>, StoreUnavailable>> {
        Box::pin(async move {
            self.database
                .claim_pairing(id, now, new_hash)
                .await
                .map_err(unavailable)
        })
    }

    fn expire(
        &self,
        now: i64,
        ttl_ms: i64,
    ) -> BoxFuture<'_, Result<ExpiredRows, StoreUnavailable>> {
        Box::pin(async move {
            self.database
                .expire_pairings(now, ttl_ms)
                .await
                .map_err(unavailable)
        })
    }
}
