//! Pending pairing requests, the way KeePassXC-browser and 1Password pair a browser
//! extension with a desktop app: the extension asks, both sides show the same short
//! code, the user approves or denies in the hub, and only then does the extension get a
//! credential of its own.
//!
//! A request records the exact Origin it came from, its peer address, a 6-digit code and
//! the SHA-256 of a 256-bit claim secret that only the requester received. Approval
//! issues a token nobody holds yet; a claim that presents the same Origin and claim
//! secret hands it over exactly once, with a fresh value, in the same step that deletes
//! the request. No request ever holds a token.
//!
//! The rules are written once, in [`Pairings`], over the storage port
//! [`crate::storage::credentials::PairingStore`]. Where requests live: [`local`] for a single hub
//! (in memory, where a restart drops them and a paired origin persists through its
//! token; the token's new value goes to SQLite), or [`shared`] with `public.database`,
//! the PostgreSQL table `pairing_requests`, so that any instance can list, approve, deny
//! or hand over a request made through any other, and the pending limits count every
//! instance's requests.
//!
//! Limits: a request expires after `pairing.request_ttl_s` (2 minutes by default); at
//! most `pairing.max_pending` are pending (5), at most `pairing.max_pending_per_address`
//! from one requester (2). A requester ([`requester_key`]) is a remote address, IPv6 by
//! its /64 since one host picks any address in it; on loopback, where every extension
//! of the machine shares one address, it is the extension's Origin, so one extension
//! cannot hold the slots every other local extension needs. A denied or expired request
//! stays known, with its outcome, for another TTL so the extension hears a clear answer;
//! after that it is unknown.

pub mod local;
pub mod shared;

use std::net::IpAddr;

use crate::auth::security::{hashes_equal, new_token, token_hash};
use crate::config::PairingConfig;
pub use crate::protocol::clients::{Outcome, RequestView};
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::Scopes;
use crate::storage::credentials::{
    Admission, PairingRow, PairingState, PairingStore, PendingLimits, StoreUnavailable,
};
use crate::storage::postgres::Database;
use crate::storage::sqlite::Store;
use crate::support::timestamp::format_ms;

/// Who a pending request is counted against for `pairing.max_pending_per_address`:
/// `addr:<key>` for a remote address ([`crate::connections::tcp::address_key`]: IPv4 as is,
/// IPv6 by its /64), `origin:<origin>` for a loopback address, where the address is
/// shared by every local client and the browser-set Origin tells extensions apart.
pub fn requester_key(address: IpAddr, origin: &str) -> String {
    let address = address.to_canonical();
    if address.is_loopback() {
        format!("origin:{origin}")
    } else {
        format!("addr:{}", crate::connections::tcp::address_key(address))
    }
}

/// Why a pairing operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// `pairing.max_pending` requests are already pending.
    #[error(
        "too many pairing requests are pending ({0}); approve or deny them, or wait for them to expire"
    )]
    TooManyPending(usize),
    /// `pairing.max_pending_per_address` requests from this requester (remote address
    /// or /64, or local extension origin: [`requester_key`]) are pending.
    #[error(
        "too many pairing requests from this address or extension are pending ({0}); wait for them to be decided"
    )]
    TooManyFromAddress(usize),
    /// No such request, or it was already approved and claimed.
    #[error("no pending pairing request with id {0}")]
    NotFound(String),
    /// The request expired.
    #[error("pairing request {0} expired")]
    Expired(String),
    /// The request was denied.
    #[error("pairing request {0} was denied")]
    Denied(String),
    /// The shared database cannot be reached (logged where it happened).
    #[error("pairing requests cannot be read: the shared database is unreachable")]
    Unavailable,
}

impl PairingError {
    /// The stable kind clients see.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TooManyPending(_) | Self::TooManyFromAddress(_) => ErrorKind::LimitReached,
            Self::NotFound(_) => ErrorKind::PairingNotFound,
            Self::Expired(_) => ErrorKind::PairingExpired,
            Self::Denied(_) => ErrorKind::PairingDenied,
            Self::Unavailable => ErrorKind::Internal,
        }
    }
}

impl From<PairingError> for RpcError {
    fn from(err: PairingError) -> Self {
        let details = match &err {
            PairingError::NotFound(id) | PairingError::Expired(id) | PairingError::Denied(id) => {
                serde_json::json!({ "request_id": id })
            }
            PairingError::TooManyPending(n) | PairingError::TooManyFromAddress(n) => {
                serde_json::json!({ "limit": n })
            }
            PairingError::Unavailable => serde_json::Value::Null,
        };
        RpcError::new(err.kind(), err.to_string()).with_details(details)
    }
}

/// A new request.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The extension's display name, already validated.
    pub name: String,
    /// Its exact Origin, already checked with [`crate::config::allowlist::is_extension_origin`].
    pub origin: String,
    /// Its peer address.
    pub address: IpAddr,
}

/// A request as created: the view, plus the claim secret for the requester only.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The request.
    pub request: RequestView,
    /// 64 hex digits; only the requester ever sees it.
    pub claim: String,
    /// Epoch milliseconds of expiry.
    pub expires_at_ms: i64,
}

/// What a claim learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Not decided yet.
    Pending,
    /// Approved: the token, handed over this once.
    Approved {
        /// The token's id.
        client_id: String,
        /// The token.
        token: String,
        /// Its scopes.
        scopes: Scopes,
    },
    /// Denied.
    Denied,
    /// Expired undecided, or approved and not claimed in time.
    Expired,
    /// No such request for this Origin and claim secret.
    Unknown,
}

/// The token issued for an approved request, waiting for its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The token's id.
    pub client_id: String,
}

/// What [`Pairings::expire_due`] found: requests that expired undecided (for
/// `pairing.resolved`), and the client ids of approved tokens nobody claimed in time
/// (nobody holds them, so they should be revoked).
pub use crate::storage::credentials::ExpiredRows as Expired;

/// The pairing requests. Shared by the HTTP endpoints and the `pairing.*` methods; the
/// rest of the hub does not know where they are stored.
pub struct Pairings {
    store: Box<dyn PairingStore>,
    config: PairingConfig,
}

fn view_of(row: &PairingRow) -> RequestView {
    RequestView {
        id: row.id.clone(),
        name: row.name.clone(),
        origin: row.origin.clone(),
        code: row.code.clone(),
        created_at: format_ms(row.created_at),
        expires_at: format_ms(row.expires_at),
        address: row.address.clone(),
    }
}

impl From<StoreUnavailable> for PairingError {
    fn from(_: StoreUnavailable) -> Self {
        PairingError::Unavailable
    }
}

/// Whether request `row` (looked up as `id`) can still be decided at `now`.
fn decidable(row: Option<&PairingRow>, id: &str, now: i64) -> Result<(), PairingError> {
    let row = row.ok_or_else(|| PairingError::NotFound(id.to_string()))?;
    match row.state {
        PairingState::Pending if now < row.expires_at => Ok(()),
        PairingState::Pending | PairingState::Expired => Err(PairingError::Expired(id.to_string())),
        PairingState::Denied => Err(PairingError::Denied(id.to_string())),
        PairingState::Approved => Err(PairingError::NotFound(id.to_string())),
    }
}

impl Pairings {
    /// One hub's requests, in memory, handing tokens over in `store` ([`local`]).
    pub fn new(config: PairingConfig, store: Store) -> Self {
        Self::over(Box::new(local::LocalPairings::new(store)), config)
    }

    /// In the shared database, with these limits ([`shared`]).
    pub fn shared(database: Database, config: PairingConfig) -> Self {
        Self::over(Box::new(shared::SharedPairings::new(database)), config)
    }

    /// Over any storage.
    pub fn over(store: Box<dyn PairingStore>, config: PairingConfig) -> Self {
        Self { store, config }
    }

    /// How long a request waits for a decision, in milliseconds; also how long an
    /// approved token waits for its claim, and an outcome stays known.
    pub fn ttl_ms(&self) -> i64 {
        i64::try_from(self.config.request_ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Records a request made at `now` (epoch ms).
    ///
    /// # Errors
    /// [`PairingError::TooManyPending`], [`PairingError::TooManyFromAddress`] (counted
    /// over every instance with the shared database), [`PairingError::Unavailable`].
    pub async fn request(&self, new: NewRequest, now: i64) -> Result<Issued, PairingError> {
        let claim = new_token();
        let expires_at = now.saturating_add(self.ttl_ms());
        let requester = requester_key(new.address, &new.origin);
        let row = PairingRow {
            id: format!("pr_{}", &new_token()[..16]),
            name: new.name,
            origin: new.origin,
            code: six_digit_code(),
            address: new.address.to_string(),
            claim_hash: token_hash(&claim),
            created_at: now,
            expires_at,
            state: PairingState::Pending,
            client_id: None,
        };
        let limits = PendingLimits {
            max_pending: self.config.max_pending,
            max_per_address: self.config.max_pending_per_address,
        };
        match self.store.admit(&row, &requester, limits).await? {
            Admission::Recorded => Ok(Issued {
                request: view_of(&row),
                claim,
                expires_at_ms: expires_at,
            }),
            Admission::TooManyPending => Err(PairingError::TooManyPending(limits.max_pending)),
            Admission::TooManyFromAddress => {
                Err(PairingError::TooManyFromAddress(limits.max_per_address))
            }
        }
    }

    /// The pending requests, oldest first.
    ///
    /// # Errors
    /// [`PairingError::Unavailable`].
    pub async fn list(&self, now: i64) -> Result<Vec<RequestView>, PairingError> {
        Ok(self.store.pending(now).await?.iter().map(view_of).collect())
    }

    /// The request `id` if it can still be decided at `now`.
    ///
    /// # Errors
    /// [`PairingError::NotFound`], [`PairingError::Expired`], [`PairingError::Denied`],
    /// [`PairingError::Unavailable`].
    pub async fn decidable(&self, id: &str, now: i64) -> Result<RequestView, PairingError> {
        let row = self.store.get(id).await?;
        decidable(row.as_ref(), id, now)?;
        Ok(row.as_ref().map(view_of).expect("decidable means found"))
    }

    /// Approves a request still pending at `now` with the token issued for it (see
    /// [`Pairings::decidable`]); the token then waits one more TTL for its claim. A
    /// concurrent decision or expiry wins: the caller revokes the token it issued.
    ///
    /// # Errors
    /// [`PairingError::NotFound`], [`PairingError::Expired`], [`PairingError::Denied`],
    /// [`PairingError::Unavailable`].
    pub async fn approve(
        &self,
        id: &str,
        now: i64,
        approval: Approval,
    ) -> Result<(), PairingError> {
        let claim_by = now.saturating_add(self.ttl_ms());
        let approved = Some((approval.client_id.as_str(), claim_by));
        self.decide(id, now, PairingState::Approved, approved).await
    }

    /// Denies a request still pending at `now`.
    ///
    /// # Errors
    /// [`PairingError::NotFound`], [`PairingError::Expired`], [`PairingError::Denied`],
    /// [`PairingError::Unavailable`].
    pub async fn deny(&self, id: &str, now: i64) -> Result<(), PairingError> {
        self.decide(id, now, PairingState::Denied, None).await
    }

    async fn decide(
        &self,
        id: &str,
        now: i64,
        state: PairingState,
        approved: Option<(&str, i64)>,
    ) -> Result<(), PairingError> {
        if self.store.decide(id, now, state, approved).await? {
            return Ok(());
        }
        // Not pending any more: say why.
        decidable(self.store.get(id).await?.as_ref(), id, now)?;
        Err(PairingError::NotFound(id.to_string()))
    }

    /// What the requester learns when it presents `origin` and `claim` for request `id`.
    /// An approved token is handed over once, with a fresh value returned here (the
    /// caller tells [`crate::auth::tokens`]), and the request is deleted. A wrong Origin
    /// or claim secret is indistinguishable from an unknown id, and so is an outcome
    /// one TTL after it ended.
    ///
    /// # Errors
    /// [`PairingError::Unavailable`].
    pub async fn claim(
        &self,
        id: &str,
        origin: &str,
        claim: &str,
        now: i64,
    ) -> Result<Claim, PairingError> {
        let Some(row) = self.store.get(id).await? else {
            return Ok(Claim::Unknown);
        };
        if row.origin != origin || !hashes_equal(&row.claim_hash, &token_hash(claim)) {
            return Ok(Claim::Unknown);
        }
        let forgotten = now >= row.expires_at.saturating_add(self.ttl_ms());
        Ok(match row.state {
            PairingState::Pending if now < row.expires_at => Claim::Pending,
            PairingState::Approved if now < row.expires_at => {
                let token = new_token();
                match self.store.hand_over(id, now, &token_hash(&token)).await? {
                    Some((client_id, scopes)) => Claim::Approved {
                        client_id,
                        token,
                        scopes,
                    },
                    None => Claim::Unknown,
                }
            }
            _ if forgotten => Claim::Unknown,
            PairingState::Denied => Claim::Denied,
            PairingState::Pending | PairingState::Approved | PairingState::Expired => {
                Claim::Expired
            }
        })
    }

    /// Expires what is due at `now`: undecided requests and approved tokens not claimed
    /// within their window, each reported once (with the shared database, by whichever
    /// instance gets there first); outcomes older than another TTL are forgotten.
    ///
    /// # Errors
    /// [`PairingError::Unavailable`].
    pub async fn expire_due(&self, now: i64) -> Result<Expired, PairingError> {
        Ok(self.store.expire(now, self.ttl_ms()).await?)
    }
}

/// A uniformly random 6-digit code, `000000` to `999999` (rejection sampling, so no
/// digit is more likely than another).
fn six_digit_code() -> String {
    const RANGE: u32 = 1_000_000;
    let limit = u32::MAX - u32::MAX % RANGE;
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).expect("the OS random generator is unavailable");
        let value = u32::from_le_bytes(bytes);
        if value < limit {
            return format!("{:06}", value % RANGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::clients::ClientKind;
    use crate::protocol::scopes::Scope;
    use crate::storage::credentials::ClientTokenRow;

    /// Pairings over the local store, with a live token `cl_1` to hand over.
    async fn pairings() -> (tempfile::TempDir, Store, Pairings) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .insert_client_token(&ClientTokenRow {
                id: "cl_1".into(),
                name: "Ext".into(),
                kind: ClientKind::Extension,
                origin: Some("chrome-extension://abc".into()),
                scopes: Scopes::only(Scope::Events),
                hash: [7; 32],
                created_at: 0,
                last_used_at: None,
                last_addr: None,
            })
            .await
            .unwrap();
        let pairings = Pairings::new(PairingConfig::default(), store.clone());
        (dir, store, pairings)
    }

    fn new(address: &str) -> NewRequest {
        NewRequest {
            name: "Ext".into(),
            origin: "chrome-extension://abc".into(),
            address: address.parse().unwrap(),
        }
    }

    fn issue() -> Approval {
        Approval {
            client_id: "cl_1".into(),
        }
    }

    #[tokio::test]
    async fn approved_token_is_claimed_once_with_origin_and_secret() {
        let (_dir, store, p) = pairings().await;
        let issued = p.request(new("127.0.0.1"), 0).await.unwrap();
        let id = &issued.request.id;
        assert_eq!(issued.request.code.len(), 6);
        assert!(issued.request.code.chars().all(|c| c.is_ascii_digit()));
        let claim = |origin: &'static str, secret: String, now| {
            let p = &p;
            let id = id.clone();
            async move { p.claim(&id, origin, &secret, now).await.unwrap() }
        };
        let secret = issued.claim.clone();
        assert_eq!(
            claim("chrome-extension://abc", secret.clone(), 1).await,
            Claim::Pending
        );
        assert_eq!(p.list(1).await.unwrap().len(), 1);
        p.approve(id, 2, issue()).await.unwrap();
        assert!(p.list(2).await.unwrap().is_empty());
        assert_eq!(
            claim("chrome-extension://abd", secret.clone(), 3).await,
            Claim::Unknown
        );
        assert_eq!(
            claim("chrome-extension://abc", "guess".into(), 3).await,
            Claim::Unknown
        );
        let Claim::Approved {
            client_id,
            token,
            scopes,
        } = claim("chrome-extension://abc", secret.clone(), 3).await
        else {
            panic!("approved")
        };
        assert_eq!(
            (client_id.as_str(), scopes),
            ("cl_1", Scopes::only(Scope::Events))
        );
        // The token was handed over with a fresh value, the one now stored.
        let stored = store.live_client_tokens().await.unwrap();
        assert_eq!(stored[0].hash, token_hash(&token));
        assert_eq!(
            claim("chrome-extension://abc", secret, 4).await,
            Claim::Unknown
        );
        assert_eq!(
            p.approve(id, 4, issue()).await.unwrap_err(),
            PairingError::NotFound(id.clone())
        );
    }

    #[tokio::test]
    async fn a_revoked_token_is_not_handed_over() {
        let (_dir, store, p) = pairings().await;
        let issued = p.request(new("127.0.0.1"), 0).await.unwrap();
        p.approve(&issued.request.id, 1, issue()).await.unwrap();
        assert!(store.revoke_client_token("cl_1", 2).await.unwrap());
        assert_eq!(
            p.claim(
                &issued.request.id,
                "chrome-extension://abc",
                &issued.claim,
                3
            )
            .await
            .unwrap(),
            Claim::Unknown
        );
    }

    #[tokio::test]
    async fn denied_and_expired_give_no_token() {
        let (_dir, _store, p) = pairings().await;
        let ttl = p.ttl_ms();
        let origin = "chrome-extension://abc";
        let denied = p.request(new("127.0.0.1"), 0).await.unwrap();
        p.deny(&denied.request.id, 1).await.unwrap();
        assert_eq!(
            p.claim(&denied.request.id, origin, &denied.claim, 2)
                .await
                .unwrap(),
            Claim::Denied
        );
        assert!(matches!(
            p.approve(&denied.request.id, 2, issue()).await,
            Err(PairingError::Denied(_))
        ));

        let late = p.request(new("127.0.0.2"), 0).await.unwrap();
        assert_eq!(p.expire_due(ttl - 1).await.unwrap(), Expired::default());
        assert_eq!(
            p.expire_due(ttl).await.unwrap().requests,
            vec![late.request.id.clone()]
        );
        assert_eq!(
            p.expire_due(ttl + 1).await.unwrap(),
            Expired::default(),
            "reported once"
        );
        assert!(matches!(
            p.approve(&late.request.id, ttl + 1, issue()).await,
            Err(PairingError::Expired(_))
        ));
        assert_eq!(
            p.claim(&late.request.id, origin, &late.claim, ttl + 1)
                .await
                .unwrap(),
            Claim::Expired
        );
        // Outcomes are forgotten after another TTL.
        assert_eq!(
            p.claim(&late.request.id, origin, &late.claim, 2 * ttl + 1)
                .await
                .unwrap(),
            Claim::Unknown
        );

        // An approved token not claimed within the claim window is dropped.
        let unclaimed = p.request(new("127.0.0.3"), 0).await.unwrap();
        p.approve(&unclaimed.request.id, 10, issue()).await.unwrap();
        assert_eq!(
            p.claim(&unclaimed.request.id, origin, &unclaimed.claim, 10 + ttl)
                .await
                .unwrap(),
            Claim::Expired
        );
        // The next expiry reports it once, for revocation.
        assert_eq!(
            p.expire_due(10 + ttl).await.unwrap().unclaimed_clients,
            vec!["cl_1".to_string()]
        );
        assert!(
            p.expire_due(10 + ttl)
                .await
                .unwrap()
                .unclaimed_clients
                .is_empty()
        );
    }

    #[tokio::test]
    async fn pending_limits_hold_globally_and_per_address() {
        let (_dir, _store, p) = pairings().await;
        p.request(new("192.0.2.1"), 0).await.unwrap();
        p.request(new("192.0.2.1"), 0).await.unwrap();
        assert_eq!(
            p.request(new("192.0.2.1"), 0).await.unwrap_err(),
            PairingError::TooManyFromAddress(2)
        );
        p.request(new("192.0.2.2"), 0).await.unwrap();
        p.request(new("192.0.2.3"), 0).await.unwrap();
        let fifth = p.request(new("192.0.2.4"), 0).await.unwrap();
        assert_eq!(
            p.request(new("192.0.2.5"), 0).await.unwrap_err(),
            PairingError::TooManyPending(5)
        );
        // A decided request frees its slot.
        p.deny(&fifth.request.id, 1).await.unwrap();
        p.request(new("192.0.2.5"), 1).await.unwrap();
        // Expired requests free theirs.
        assert!(p.request(new("192.0.2.6"), p.ttl_ms()).await.is_ok());
    }

    #[tokio::test]
    async fn an_ipv6_requester_is_its_slash_64_and_a_local_one_its_origin() {
        let origin = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
        let key = |ip: &str, origin: &str| requester_key(ip.parse().unwrap(), origin);
        assert_eq!(
            key("2001:db8:1:2::1", origin),
            key("2001:db8:1:2:ff::9", "other")
        );
        assert_ne!(
            key("2001:db8:1:2::1", origin),
            key("2001:db8:1:3::1", origin)
        );
        assert_eq!(key("::1", origin), key("127.0.0.1", origin));
        assert_eq!(key("::ffff:127.0.0.1", origin), format!("origin:{origin}"));
        assert_ne!(
            key("127.0.0.1", origin),
            key("127.0.0.1", "moz-extension://x")
        );
        assert_eq!(key("192.0.2.1", origin), "addr:192.0.2.1");

        let (_dir, _store, p) = pairings().await;
        p.request(new("2001:db8::1"), 0).await.unwrap();
        p.request(new("2001:db8::2"), 0).await.unwrap();
        assert_eq!(
            p.request(new("2001:db8::ffff:3"), 0).await.unwrap_err(),
            PairingError::TooManyFromAddress(2)
        );
        p.request(new("2001:db8:0:1::1"), 0).await.unwrap();
    }
}
