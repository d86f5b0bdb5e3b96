//! The shared `pairing_requests` table: one row per pairing request until its outcome
//! is forgotten. A row holds the claim secret's SHA-256, never the secret, and never a
//! token: an approved request names the client token issued for it, and the claim
//! gives that token a fresh value ([`Database::claim_pairing`]), so nothing in the
//! database lets its reader connect.

use std::str::FromStr;

use tokio_postgres::Row;

use super::{Database, DatabaseError};
use crate::protocol::UnknownName;
use crate::protocol::scopes::Scopes;
use crate::storage::sqlite::stored;

/// Where a request stands, as stored in `pairing_requests.state`.
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

/// A pairing request as stored.
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

/// Whether [`Database::insert_pairing`] took the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded.
    Recorded,
    /// `max_pending` requests are pending across all instances.
    TooManyPending,
    /// `max_pending_per_address` from this address are pending.
    TooManyFromAddress,
}

/// The pending-request limits checked by [`Database::insert_pairing`].
#[derive(Debug, Clone, Copy)]
pub struct PendingLimits {
    /// At most this many pending in all.
    pub max_pending: usize,
    /// At most this many pending from one address.
    pub max_per_address: usize,
}

/// What [`Database::expire_pairings`] changed.
#[derive(Debug, Default)]
pub struct ExpiredRows {
    /// Requests that were pending and are now expired.
    pub requests: Vec<String>,
    /// Client ids of approved tokens whose claim window passed.
    pub unclaimed_clients: Vec<String>,
}

const COLUMNS: &str =
    "id, name, origin, code, address, claim_hash, created_at, expires_at, state, client_id";

/// The advisory lock that serialises admissions, so two instances cannot both take the
/// last pending slot.
const ADMISSION_LOCK: i64 = 0x5e3a_7e57_0002;

fn pairing_row(row: &Row) -> PairingRow {
    let claim_hash: Vec<u8> = row.get("claim_hash");
    PairingRow {
        id: row.get("id"),
        name: row.get("name"),
        origin: row.get("origin"),
        code: row.get("code"),
        address: row.get("address"),
        claim_hash: claim_hash.try_into().unwrap_or([0; 32]),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        // An unknown state reads as expired: the request gives nothing away.
        state: stored(row.get::<_, &str>("state"), PairingState::Expired),
        client_id: row.get("client_id"),
    }
}

fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl Database {
    /// Records a pending request created at `row.created_at` unless the pending limits
    /// (counted over every instance) are reached. `requester` is what the per-address
    /// limit counts (`crate::auth::pairing::requester_key`: an address, an IPv6 /64, or a local
    /// extension's Origin).
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn insert_pairing(
        &self,
        row: &PairingRow,
        requester: &str,
        limits: PendingLimits,
    ) -> Result<Admission, DatabaseError> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADMISSION_LOCK])
                .await?;
            let counts = tx
                .query_one(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE requester = $2)
                     FROM pairing_requests WHERE state = 'pending' AND expires_at > $1",
                    &[&row.created_at, &requester],
                )
                .await?;
            if count(counts.get(0)) >= limits.max_pending {
                return Ok(Admission::TooManyPending);
            }
            if count(counts.get(1)) >= limits.max_per_address {
                return Ok(Admission::TooManyFromAddress);
            }
            tx.execute(
                &format!("INSERT INTO pairing_requests ({COLUMNS}, requester) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
                &[
                    &row.id,
                    &row.name,
                    &row.origin,
                    &row.code,
                    &row.address,
                    &row.claim_hash.as_slice(),
                    &row.created_at,
                    &row.expires_at,
                    &row.state.as_str(),
                    &row.client_id,
                    &requester,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(Admission::Recorded)
        }
        .await;
        self.noted(result)
    }

    /// One request.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn pairing(&self, id: &str) -> Result<Option<PairingRow>, DatabaseError> {
        let client = self.client().await?;
        let result = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM pairing_requests WHERE id = $1"),
                &[&id],
            )
            .await;
        self.noted(
            result
                .map(|row| row.as_ref().map(pairing_row))
                .map_err(Into::into),
        )
    }

    /// The requests pending at `now`, oldest first.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn pending_pairings(&self, now: i64) -> Result<Vec<PairingRow>, DatabaseError> {
        let client = self.client().await?;
        let result = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM pairing_requests
                     WHERE state = 'pending' AND expires_at > $1 ORDER BY created_at, id"
                ),
                &[&now],
            )
            .await;
        self.noted(
            result
                .map(|rows| rows.iter().map(pairing_row).collect())
                .map_err(Into::into),
        )
    }

    /// Decides a request still pending at `now`: `Approved` with the issued token's id
    /// and the claim deadline, or `Denied`. False when it was no longer pending (another
    /// instance decided first, or it expired).
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn decide_pairing(
        &self,
        id: &str,
        now: i64,
        state: PairingState,
        approved: Option<(&str, i64)>,
    ) -> Result<bool, DatabaseError> {
        let client = self.client().await?;
        let (client_id, expires_at) = match approved {
            Some((client_id, expires_at)) => (Some(client_id), Some(expires_at)),
            None => (None, None),
        };
        let result = client
            .execute(
                "UPDATE pairing_requests
                 SET state = $3, client_id = $4, expires_at = COALESCE($5, expires_at)
                 WHERE id = $1 AND state = 'pending' AND expires_at > $2",
                &[&id, &now, &state.as_str(), &client_id, &expires_at],
            )
            .await;
        self.noted(result.map(|n| n == 1).map_err(Into::into))
    }

    /// Hands over an approved request at `now`: in one transaction the request is
    /// deleted (so a second claim, on any instance, finds nothing) and its token gets the
    /// value whose SHA-256 is `new_hash`. Returns the token's id and scopes, or `None`
    /// when the request is not approved, its window passed, or its token was revoked.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn claim_pairing(
        &self,
        id: &str,
        now: i64,
        new_hash: &[u8; 32],
    ) -> Result<Option<(String, Scopes)>, DatabaseError> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(claimed) = tx
                .query_opt(
                    "DELETE FROM pairing_requests
                     WHERE id = $1 AND state = 'approved' AND expires_at > $2
                     RETURNING client_id",
                    &[&id, &now],
                )
                .await?
            else {
                return Ok(None);
            };
            let client_id: Option<String> = claimed.get(0);
            let Some(client_id) = client_id else {
                return Ok(None);
            };
            let token = tx
                .query_opt(
                    "UPDATE client_tokens SET hash = $2
                     WHERE id = $1 AND revoked_at IS NULL RETURNING scopes",
                    &[&client_id, &new_hash.as_slice()],
                )
                .await?;
            tx.commit().await?;
            Ok(token.map(|row| (client_id, Scopes::from_storage(row.get::<_, &str>(0)))))
        }
        .await;
        self.noted(result)
    }

    /// Expires what is due at `now` (each row reported once, by whichever instance
    /// gets there first) and forgets outcomes older than `ttl_ms` past their deadline.
    ///
    /// # Errors
    /// [`DatabaseError`].
    pub async fn expire_pairings(
        &self,
        now: i64,
        ttl_ms: i64,
    ) -> Result<ExpiredRows, DatabaseError> {
        let result = async {
            let client = self.client().await?;
            let requests = client
                .query(
                    "UPDATE pairing_requests SET state = 'expired'
                     WHERE state = 'pending' AND expires_at <= $1 RETURNING id",
                    &[&now],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let unclaimed_clients = client
                .query(
                    "UPDATE pairing_requests SET state = 'expired'
                     WHERE state = 'approved' AND expires_at <= $1 RETURNING client_id",
                    &[&now],
                )
                .await?
                .iter()
                .filter_map(|row| row.get::<_, Option<String>>(0))
                .collect();
            client
                .execute(
                    "DELETE FROM pairing_requests
                     WHERE state IN ('denied', 'expired') AND expires_at + $2 <= $1",
                    &[&now, &ttl_ms],
                )
                .await?;
            Ok(ExpiredRows {
                requests,
                unclaimed_clients,
            })
        }
        .await;
        self.noted(result)
    }
}
