//! One hub's pairing requests: in memory, where a restart drops them (a paired origin
//! persists through its token), with the hand-over's fresh token value written to this
//! instance's SQLite database. A thin adapter: each [`PairingStore`] method is a map
//! operation under one lock, or one [`Store`] call.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use futures_util::future::BoxFuture;

use crate::protocol::scopes::Scopes;
use crate::storage::credentials::{
    Admission, ExpiredRows, PairingRow, PairingState, PairingStore, PendingLimits, StoreUnavailable,
};
use crate::storage::sqlite::Store;

/// A request and who it is counted against.
struct Entry {
    row: PairingRow,
    requester: String,
}

/// The requests of a single hub, in memory, and its SQLite store for the hand-over.
pub struct LocalPairings {
    // A std Mutex: map operations only, never held across an await or a store call.
    requests: Mutex<HashMap<String, Entry>>,
    store: Store,
}

impl LocalPairings {
    /// No requests yet; tokens are handed over in `store`.
    pub fn new(store: Store) -> Self {
        Self {
            requests: Mutex::new(HashMap::new()),
            store,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit_now(&self, row: &PairingRow, requester: &str, limits: PendingLimits) -> Admission {
        let mut requests = self.lock();
        let pending = requests
            .values()
            .filter(|e| e.row.pending_at(row.created_at));
        let (all, mine) = pending.fold((0, 0), |(all, mine), e| {
            (all + 1, mine + usize::from(e.requester == requester))
        });
        let admission = limits.admit(all, mine);
        if admission == Admission::Recorded {
            requests.insert(
                row.id.clone(),
                Entry {
                    row: row.clone(),
                    requester: requester.to_string(),
                },
            );
        }
        admission
    }

    fn decide_now(
        &self,
        id: &str,
        now: i64,
        state: PairingState,
        approved: Option<(&str, i64)>,
    ) -> bool {
        let mut requests = self.lock();
        let Some(entry) = requests.get_mut(id).filter(|e| e.row.pending_at(now)) else {
            return false;
        };
        entry.row.state = state;
        entry.row.client_id = approved.map(|(client_id, _)| client_id.to_string());
        if let Some((_, claim_by)) = approved {
            entry.row.expires_at = claim_by;
        }
        true
    }

    async fn hand_over_now(
        &self,
        id: &str,
        now: i64,
        new_hash: &[u8; 32],
    ) -> Result<Option<(String, Scopes)>, StoreUnavailable> {
        let taken = {
            let mut requests = self.lock();
            let approved = requests
                .get(id)
                .is_some_and(|e| e.row.state == PairingState::Approved && now < e.row.expires_at);
            if approved { requests.remove(id) } else { None }
        };
        let Some(client_id) = taken.and_then(|e| e.row.client_id) else {
            return Ok(None);
        };
        match self.store.rekey_client_token(&client_id, new_hash).await {
            Ok(scopes) => Ok(scopes.map(|scopes| (client_id, scopes))),
            Err(err) => {
                tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), client_id = %client_id, "cannot hand the paired token over");
                Err(StoreUnavailable)
            }
        }
    }

    fn expire_now(&self, now: i64, ttl_ms: i64) -> ExpiredRows {
        let mut expired = ExpiredRows::default();
        let mut requests = self.lock();
        for entry in requests.values_mut() {
            let row = &mut entry.row;
            if row.expires_at > now {
                continue;
            }
            match row.state {
                PairingState::Pending => expired.requests.push(row.id.clone()),
                PairingState::Approved => {
                    tracing::warn!(request_id = %row.id, client_id = ?row.client_id, "approved pairing token was never claimed");
                    expired.unclaimed_clients.extend(row.client_id.clone());
                }
                PairingState::Denied | PairingState::Expired => continue,
            }
            row.state = PairingState::Expired;
        }
        requests.retain(|_, e| {
            !matches!(e.row.state, PairingState::Denied | PairingState::Expired)
                || e.row.expires_at.saturating_add(ttl_ms) > now
        });
        expired.requests.sort();
        expired
    }
}

impl PairingStore for LocalPairings {
    fn admit<'a>(
        &'a self,
        row: &'a PairingRow,
        requester: &'a str,
        limits: PendingLimits,
    ) -> BoxFuture<'a, Result<Admission, StoreUnavailable>> {
        Box::pin(async move { Ok(self.admit_now(row, requester, limits)) })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<PairingRow>, StoreUnavailable>> {
        Box::pin(async move { Ok(self.lock().get(id).map(|e| e.row.clone())) })
    }

    fn pending(&self, now: i64) -> BoxFuture<'_, Result<Vec<PairingRow>, StoreUnavailable>> {
        Box::pin(async move {
            let mut rows: Vec<PairingRow> = self
                .lock()
                .values()
                .filter(|e| e.row.pending_at(now))
                .map(|e| e.row.clone())
                .collect();
            rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(rows)
        })
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        state: PairingState,
        approved: Option<(&'a str, i64)>,
    ) -> BoxFuture<'a, Result<bool, StoreUnavailable>> {
        Box::pin(async move { Ok(self.decide_now(id, now, state, approved)) })
    }

    fn hand_over<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        new_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<(String, Scopes)>, StoreUnavailable>> {
        Box::pin(async move { self.hand_over_now(id, now, new_hash).await })
    }

    fn expire(
        &self,
        now: i64,
        ttl_ms: i64,
    ) -> BoxFuture<'_, Result<ExpiredRows, StoreUnavailable>> {
        Box::pin(async move { Ok(self.expire_now(now, ttl_ms)) })
    }
}
