//! The stored shapes of client tokens and pairing requests, and the storage port the
//! pairing rules are written over.
//!
//! Both storage engines hold these rows: this instance's SQLite database
//! ([`crate::storage::sqlite`]) and the PostgreSQL database public instances share
//! ([`crate::storage::postgres`]). Neither depends on the other; both depend on this module.
//!
//! [`PairingStore`] is what a pairing needs from storage: atomic admission, a read, a
//! conditional decision, an atomic hand-over and expiry. The rules (who may be
//! admitted, what a claim learns, when a request can be decided) are written once in
//! [`crate::auth::pairing::Pairings`] over it; [`crate::auth::pairing::local`] (requests in memory,
//! tokens in SQLite) and [`crate::auth::pairing::shared`] (PostgreSQL) implement it. The
//! methods return futures so that an implementation may wait on a database or a writer
//! thread without blocking the runtime.

use std::str::FromStr;

use futures_util::future::BoxFuture;

use crate::protocol::UnknownName;
use crate::protocol::clients::ClientKind;
use crate::protocol::scopes::Scopes;

/// A client token as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTokenRow {
    /// `cl_` and 12 hex digits.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Paired (`extension`) or created by the owner (`manual`).
    pub kind: ClientKind,
    /// The exact Origin the token works from, if bound to one.
    pub origin: Option<String>,
    /// What the token may do.
    pub scopes: Scopes,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds of the last connection.
    pub last_used_at: Option<i64>,
    /// Peer address of the last connection.
    pub last_addr: Option<String>,
}

/// Where a request stands, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingState {
    /// Waiting for a decision.
    Pending,
    /// Approved; the token waits for its claim.
    Approved,
    /// Denied.
    Denied,
    /// Expired undecided, or approved and never claimed.
    Expired,
}

impl PairingState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }
}

impl FromStr for PairingState {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            other => {
                return Err(UnknownName {
                    what: "pairing state",
                    name: other.to_string(),
                });
            }
        })
    }
}

/// A pairing request as stored. It holds the claim secret's SHA-256, never the secret,
/// and never a token: an approved request names the client token issued for it, and the
/// claim gives that token a fresh value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRow {
    /// `pr_` and 16 hex digits.
    pub id: String,
    /// The extension's display name.
    pub name: String,
    /// Its exact Origin.
    pub origin: String,
    /// The 6-digit code both sides show.
    pub code: String,
    /// The requester's address.
    pub address: String,
    /// SHA-256 of the claim secret.
    pub claim_hash: [u8; 32],
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds: the decision deadline, then (approved) the claim deadline.
    pub expires_at: i64,
    /// Where it stands.
    pub state: PairingState,
    /// The token issued on approval.
    pub client_id: Option<String>,
}

impl PairingRow {
    /// Whether it is pending at `now`: undecided and before its deadline. The pending
    /// limits count these; an implementation that counts in its query language says
    /// the same (`state = 'pending' AND expires_at > now`).
    pub fn pending_at(&self, now: i64) -> bool {
        self.state == PairingState::Pending && now < self.expires_at
    }
}

/// Whether a request was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded.
    Recorded,
    /// `max_pending` requests are pending across all instances.
    TooManyPending,
    /// `max_pending_per_address` from this requester are pending.
    TooManyFromAddress,
}

/// The pending-request limits: the one rule for admitting a request.
#[derive(Debug, Clone, Copy)]
pub struct PendingLimits {
    /// At most this many pending in all.
    pub max_pending: usize,
    /// At most this many pending from one requester.
    pub max_per_address: usize,
}

impl PendingLimits {
    /// Whether one more request fits beside `pending` requests pending in all, of
    /// which `from_requester` come from the same requester.
    pub fn admit(self, pending: usize, from_requester: usize) -> Admission {
        if pending >= self.max_pending {
            Admission::TooManyPending
        } else if from_requester >= self.max_per_address {
            Admission::TooManyFromAddress
        } else {
            Admission::Recorded
        }
    }
}

/// What an expiry changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExpiredRows {
    /// Requests that were pending and are now expired.
    pub requests: Vec<String>,
    /// Client ids of approved tokens whose claim window passed; nobody holds them.
    pub unclaimed_clients: Vec<String>,
}

/// A storage failure, already logged where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pairing store cannot be reached")]
pub struct StoreUnavailable;

/// What a pairing needs from storage. Each method is atomic on its own; none is a rule
/// (see the module docs).
pub trait PairingStore: Send + Sync {
    /// Records `row` (pending, from `requester`) unless `limits` say no, judged on the
    /// requests pending at `row.created_at` ([`PairingRow::pending_at`]) with no other
    /// admission in between.
    fn admit<'a>(
        &'a self,
        row: &'a PairingRow,
        requester: &'a str,
        limits: PendingLimits,
    ) -> BoxFuture<'a, Result<Admission, StoreUnavailable>>;

    /// One request.
    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<PairingRow>, StoreUnavailable>>;

    /// The requests pending at `now`, oldest first (`created_at`, then `id`).
    fn pending(&self, now: i64) -> BoxFuture<'_, Result<Vec<PairingRow>, StoreUnavailable>>;

    /// Sets a request still pending at `now` to `state`: `Approved` with the issued
    /// token's id and the claim deadline, or `Denied`. False when it was not pending.
    fn decide<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        state: PairingState,
        approved: Option<(&'a str, i64)>,
    ) -> BoxFuture<'a, Result<bool, StoreUnavailable>>;

    /// Hands over a request approved and within its claim window at `now`: deletes it
    /// (so a second claim finds nothing) and gives its token the value whose SHA-256 is
    /// `new_hash`, as one step. The token's id and scopes, or `None` when the request
    /// is not approved, its window passed, or its token was revoked.
    fn hand_over<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        new_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<(String, Scopes)>, StoreUnavailable>>;

    /// Expires what is due at `now` (pending and approved requests past their deadline,
    /// each reported once) and forgets denied and expired requests `ttl_ms` past theirs.
    fn expire(&self, now: i64, ttl_ms: i64)
    -> BoxFuture<'_, Result<ExpiredRows, StoreUnavailable>>;
}

/// Reads a name stored for an enum. An unknown one (written by a newer hub, or a damaged
/// row) is logged and read as `fallback`, chosen per column so that the row is looked at
/// again rather than lost: a project reads as `failed`, a task as `pending`.
pub(crate) fn stored<T>(name: &str, fallback: T) -> T
where
    T: FromStr<Err = UnknownName> + std::fmt::Debug,
{
    name.parse().unwrap_or_else(|err: UnknownName| {
        tracing::warn!(error = %err, fallback = ?fallback, "unknown name in the store");
        fallback
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_limit_is_checked_before_the_requesters() {
        let limits = PendingLimits {
            max_pending: 5,
            max_per_address: 2,
        };
        assert_eq!(limits.admit(0, 0), Admission::Recorded);
        assert_eq!(limits.admit(4, 1), Admission::Recorded);
        assert_eq!(limits.admit(4, 2), Admission::TooManyFromAddress);
        assert_eq!(limits.admit(5, 2), Admission::TooManyPending);
        assert_eq!(limits.admit(5, 0), Admission::TooManyPending);
    }

    #[test]
    fn pending_means_undecided_and_before_the_deadline() {
        let mut row = PairingRow {
            id: "pr_1".into(),
            name: "x".into(),
            origin: "chrome-extension://a".into(),
            code: "000000".into(),
            address: "127.0.0.1".into(),
            claim_hash: [0; 32],
            created_at: 0,
            expires_at: 10,
            state: PairingState::Pending,
            client_id: None,
        };
        assert!(row.pending_at(9));
        assert!(!row.pending_at(10));
        row.state = PairingState::Denied;
        assert!(!row.pending_at(0));
    }
}
