//! Pending pairing requests, the way KeePassXC-browser and 1Password pair a browser
//! extension with a desktop app: the extension asks, both sides show the same short
//! code, the user approves or denies in the hub, and only then does the extension get a
//! credential of its own.
//!
//! A request records the exact Origin it came from, its peer address, a 6-digit code and
//! the SHA-256 of a 256-bit claim secret that only the requester received. After
//! approval the token waits in memory until a claim presents the same Origin and claim
//! secret, is handed over exactly once, and is then forgotten.
//!
//! Where requests live: in memory ([`Memory`]) for a single hub, where a restart drops
//! them and a paired origin persists through its token instead; or, with
//! `public.database`, in the shared PostgreSQL table `pairing_requests`
//! (`src/storage/postgres/pairings.rs`), so that any instance can list, approve, deny or hand
//! over a request made through any other, and the pending limits count every instance's
//! requests. That table never holds a token: the claim gives the approved request's
//! token a fresh value, in the same transaction that deletes the request.
//!
//! Limits: a request expires after `pairing.request_ttl_s` (2 minutes by default); at
//! most `pairing.max_pending` are pending (5), at most `pairing.max_pending_per_address`
//! from one requester (2). A requester ([`requester_key`]) is a remote address, IPv6 by
//! its /64 since one host picks any address in it; on loopback, where every extension
//! of the machine shares one address, it is the extension's Origin, so one extension
//! cannot hold the slots every other local extension needs. A denied or expired request
//! stays known, with its outcome, for another TTL so the extension hears a clear answer;
//! after that it is unknown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use crate::auth::security::{hashes_equal, new_token, token_hash};
use crate::config::PairingConfig;
pub use crate::protocol::clients::{Outcome, RequestView};
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::Scopes;
use crate::storage::postgres::{Admission, Database, PairingRow, PairingState, PendingLimits};
use crate::support::timestamp::format_ms;

/// The schemes of browser extension origins: Chrome and Chromium browsers, Firefox,
/// Safari.
pub const EXTENSION_SCHEMES: [&str; 3] = [
    "chrome-extension://",
    "moz-extension://",
    "safari-web-extension://",
];

/// Whether `origin` is a browser extension's origin: an extension scheme followed by an
/// id of 1 to 128 letters, digits, `-`, `_` or `.` (Chrome ids are 32 letters, Firefox and
/// Safari use UUIDs) and nothing else.
pub fn is_extension_origin(origin: &str) -> bool {
    EXTENSION_SCHEMES.iter().any(|scheme| {
        origin.strip_prefix(scheme).is_some_and(|id| {
            (1..=128).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    })
}

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
    /// Its exact Origin, already checked with [`is_extension_origin`].
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

/// The token issued for an approved request, waiting for its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The token's id.
    pub client_id: String,
    /// The token.
    pub token: String,
    /// Its scopes.
    pub scopes: Scopes,
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

#[derive(Debug)]
enum State {
    Pending,
    Approved {
        client_id: String,
        token: String,
        scopes: Scopes,
    },
    Denied,
    Expired,
}

#[derive(Debug)]
struct Request {
    view: RequestView,
    requester: String,
    claim_hash: [u8; 32],
    expires_at: i64,
    state: State,
}

impl Request {
    fn pending(&self, now: i64) -> bool {
        matches!(self.state, State::Pending) && now < self.expires_at
    }
}

/// The pairing requests of a single hub, in memory.
pub struct Memory {
    config: PairingConfig,
    // A std Mutex: map operations only, never held across an await.
    requests: Mutex<HashMap<String, Request>>,
    /// Tokens approved but never claimed in time, for [`Memory::expire_due`] to report
    /// so they can be revoked. Locked after `requests`, never before.
    unclaimed: Mutex<Vec<String>>,
}

/// What [`Pairings::expire_due`] and [`Memory::expire_due`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Requests that expired undecided, for `pairing.resolved`.
    pub requests: Vec<String>,
    /// Client ids of approved tokens nobody claimed in time; nobody holds them, so they
    /// should be revoked.
    pub unclaimed_clients: Vec<String>,
}

impl Memory {
    /// No requests yet, with these limits.
    pub fn new(config: PairingConfig) -> Self {
        Self {
            config,
            requests: Mutex::new(HashMap::new()),
            unclaimed: Mutex::new(Vec::new()),
        }
    }

    /// How long a request waits for a decision, in milliseconds.
    pub fn ttl_ms(&self) -> i64 {
        i64::try_from(self.config.request_ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Request>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a request made at `now` (epoch ms).
    ///
    /// # Errors
    /// [`PairingError::TooManyPending`] or [`PairingError::TooManyFromAddress`].
    pub fn request(&self, new: NewRequest, now: i64) -> Result<Issued, PairingError> {
        let mut requests = self.lock();
        self.sweep(&mut requests, now);
        let pending: Vec<&Request> = requests.values().filter(|r| r.pending(now)).collect();
        if pending.len() >= self.config.max_pending {
            return Err(PairingError::TooManyPending(self.config.max_pending));
        }
        let requester = requester_key(new.address, &new.origin);
        let from_requester = pending.iter().filter(|r| r.requester == requester).count();
        if from_requester >= self.config.max_pending_per_address {
            return Err(PairingError::TooManyFromAddress(
                self.config.max_pending_per_address,
            ));
        }
        let claim = new_token();
        let expires_at = now.saturating_add(self.ttl_ms());
        let view = RequestView {
            id: format!("pr_{}", &new_token()[..16]),
            name: new.name,
            origin: new.origin,
            code: six_digit_code(),
            created_at: format_ms(now),
            expires_at: format_ms(expires_at),
            address: new.address.to_string(),
        };
        requests.insert(
            view.id.clone(),
            Request {
                view: view.clone(),
                requester,
                claim_hash: token_hash(&claim),
                expires_at,
                state: State::Pending,
            },
        );
        Ok(Issued {
            request: view,
            claim,
            expires_at_ms: expires_at,
        })
    }

    /// The pending requests, oldest first.
    pub fn list(&self, now: i64) -> Vec<RequestView> {
        let mut requests = self.lock();
        self.sweep(&mut requests, now);
        let mut views: Vec<RequestView> = requests
            .values()
            .filter(|r| r.pending(now))
            .map(|r| r.view.clone())
            .collect();
        views.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        views
    }

    /// The request `id` if it can still be decided at `now`.
    ///
    /// # Errors
    /// [`PairingError::NotFound`], [`PairingError::Expired`], [`PairingError::Denied`].
    pub fn decidable_view(&self, id: &str, now: i64) -> Result<RequestView, PairingError> {
        let mut requests = self.lock();
        self.sweep(&mut requests, now);
        Ok(self.decidable(&mut requests, id, now)?.view.clone())
    }

    /// Approves a request still pending at `now` with the token issued for it, which
    /// then waits for its claim.
    ///
    /// # Errors
    /// [`PairingError::NotFound`], [`PairingError::Expired`], [`PairingError::Denied`]:
    /// the caller revokes the token it issued.
    pub fn approve(&self, id: &str, now: i64, approval: Approval) -> Result<(), PairingError> {
        let mut requests = self.lock();
        self.sweep(&mut requests, now);
        let request = self.decidable(&mut requests, id, now)?;
        request.state = State::Approved {
            client_id: approval.client_id,
            token: approval.token,
            scopes: approval.scopes,
        };
        // The claim window: another TTL from the approval.
        request.expires_at = now.saturating_add(self.ttl_ms());
        Ok(())
    }

    /// Denies a pending request.
    ///
    /// # Errors
    /// [`PairingError::NotFound`], [`PairingError::Expired`], [`PairingError::Denied`].
    pub fn deny(&self, id: &str, now: i64) -> Result<(), PairingError> {
        let mut requests = self.lock();
        self.sweep(&mut requests, now);
        let request = self.decidable(&mut requests, id, now)?;
        request.state = State::Denied;
        Ok(())
    }

    fn decidable<'a>(
        &self,
        requests: &'a mut HashMap<String, Request>,
        id: &str,
        now: i64,
    ) -> Result<&'a mut Request, PairingError> {
        let request = requests
            .get_mut(id)
            .ok_or_else(|| PairingError::NotFound(id.to_string()))?;
        match request.state {
            State::Pending if now < request.expires_at => Ok(request),
            State::Pending | State::Expired => Err(PairingError::Expired(id.to_string())),
            State::Denied => Err(PairingError::Denied(id.to_string())),
            State::Approved { .. } => Err(PairingError::NotFound(id.to_string())),
        }
    }

    /// What the requester learns when it presents `origin` and `claim` for request `id`.
    /// An approved token is returned once and then forgotten. A wrong Origin or claim
    /// secret is indistinguishable from an unknown id.
    pub fn claim(&self, id: &str, origin: &str, claim: &str, now: i64) -> Claim {
        let mut requests = self.lock();
        self.sweep(&mut requests, now);
        let Some(request) = requests.get(id) else {
            return Claim::Unknown;
        };
        if request.view.origin != origin || !hashes_equal(&request.claim_hash, &token_hash(claim)) {
            return Claim::Unknown;
        }
        match &request.state {
            State::Pending => Claim::Pending,
            State::Denied => Claim::Denied,
            State::Expired => Claim::Expired,
            State::Approved { .. } => match requests.remove(id).map(|r| r.state) {
                Some(State::Approved {
                    client_id,
                    token,
                    scopes,
                }) => Claim::Approved {
                    client_id,
                    token,
                    scopes,
                },
                _ => Claim::Unknown,
            },
        }
    }

    /// Expires what is due at `now`: undecided requests (each reported once) and
    /// approved tokens not claimed within their window (each reported once, including
    /// those found by earlier sweeps).
    pub fn expire_due(&self, now: i64) -> Expired {
        let mut requests = self.lock();
        let expired = self.sweep(&mut requests, now);
        let unclaimed =
            std::mem::take(&mut *self.unclaimed.lock().unwrap_or_else(|p| p.into_inner()));
        Expired {
            requests: expired,
            unclaimed_clients: unclaimed,
        }
    }

    /// Moves due pending requests to `Expired` (returning their ids), drops approved
    /// tokens nobody claimed in time, and forgets outcomes older than another TTL.
    fn sweep(&self, requests: &mut HashMap<String, Request>, now: i64) -> Vec<String> {
        let ttl = self.ttl_ms();
        let mut expired = Vec::new();
        let mut unclaimed = Vec::new();
        requests.retain(|id, request| {
            if now < request.expires_at {
                return true;
            }
            match request.state {
                State::Pending => {
                    request.state = State::Expired;
                    expired.push(id.clone());
                    true
                }
                State::Approved { ref client_id, .. } => {
                    tracing::warn!(request_id = %id, client_id = %client_id, "approved pairing token was never claimed");
                    unclaimed.push(client_id.clone());
                    request.state = State::Expired;
                    true
                }
                State::Denied | State::Expired => now < request.expires_at.saturating_add(ttl),
            }
        });
        if !unclaimed.is_empty() {
            self.unclaimed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(unclaimed);
        }
        expired
    }
}

/// Where the requests live.
enum Backend {
    /// This hub's memory.
    Memory(Memory),
    /// The PostgreSQL table shared by the instances of a public hub.
    Postgres {
        /// The shared database.
        database: Database,
        /// The limits.
        config: PairingConfig,
    },
}

/// The pairing requests. Shared by the HTTP endpoints and the `pairing.*` methods; the
/// rest of the hub does not know which backend it has.
pub struct Pairings {
    backend: Backend,
}

/// Logs a database failure and turns it into [`PairingError::Unavailable`].
fn unavailable(err: crate::storage::postgres::DatabaseError) -> PairingError {
    tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), "pairing store unreachable");
    PairingError::Unavailable
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

impl Pairings {
    /// In memory, with these limits.
    pub fn new(config: PairingConfig) -> Self {
        Self {
            backend: Backend::Memory(Memory::new(config)),
        }
    }

    /// In the shared database, with these limits.
    pub fn shared(database: Database, config: PairingConfig) -> Self {
        Self {
            backend: Backend::Postgres { database, config },
        }
    }

    /// How long a request waits for a decision, in milliseconds.
    pub fn ttl_ms(&self) -> i64 {
        match &self.backend {
            Backend::Memory(memory) => memory.ttl_ms(),
            Backend::Postgres { config, .. } => {
                i64::try_from(config.request_ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX)
            }
        }
    }

    /// Records a request made at `now` (epoch ms).
    ///
    /// # Errors
    /// [`PairingError::TooManyPending`], [`PairingError::TooManyFromAddress`] (counted
    /// over every instance with the shared database), [`PairingError::Unavailable`].
    pub async fn request(&self, new: NewRequest, now: i64) -> Result<Issued, PairingError> {
        let (database, config) = match &self.backend {
            Backend::Memory(memory) => return memory.request(new, now),
            Backend::Postgres { database, config } => (database, config),
        };
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
            max_pending: config.max_pending,
            max_per_address: config.max_pending_per_address,
        };
        match database
            .insert_pairing(&row, &requester, limits)
            .await
            .map_err(unavailable)?
        {
            Admission::Recorded => Ok(Issued {
                request: view_of(&row),
                claim,
                expires_at_ms: expires_at,
            }),
            Admission::TooManyPending => Err(PairingError::TooManyPending(config.max_pending)),
            Admission::TooManyFromAddress => Err(PairingError::TooManyFromAddress(
                config.max_pending_per_address,
            )),
        }
    }

    /// The pending requests, oldest first.
    ///
    /// # Errors
    /// [`PairingError::Unavailable`].
    pub async fn list(&self, now: i64) -> Result<Vec<RequestView>, PairingError> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory.list(now)),
            Backend::Postgres { database, .. } => Ok(database
                .pending_pairings(now)
                .await
                .map_err(unavailable)?
                .iter()
                .map(view_of)
                .collect()),
        }
    }

    /// The request `id` if it can still be decided at `now`.
    ///
    /// # Errors
    /// [`PairingError::NotFound`], [`PairingError::Expired`], [`PairingError::Denied`],
    /// [`PairingError::Unavailable`].
    pub async fn decidable(&self, id: &str, now: i64) -> Result<RequestView, PairingError> {
        let database = match &self.backend {
            Backend::Memory(memory) => return memory.decidable_view(id, now),
            Backend::Postgres { database, .. } => database,
        };
        let row = database
            .pairing(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| PairingError::NotFound(id.to_string()))?;
        match row.state {
            PairingState::Pending if now < row.expires_at => Ok(view_of(&row)),
            PairingState::Pending | PairingState::Expired => {
                Err(PairingError::Expired(id.to_string()))
            }
            PairingState::Denied => Err(PairingError::Denied(id.to_string())),
            PairingState::Approved => Err(PairingError::NotFound(id.to_string())),
        }
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
        let database = match &self.backend {
            Backend::Memory(memory) => return memory.approve(id, now, approval),
            Backend::Postgres { database, .. } => database,
        };
        let claim_by = now.saturating_add(self.ttl_ms());
        let decided = database
            .decide_pairing(
                id,
                now,
                PairingState::Approved,
                Some((&approval.client_id, claim_by)),
            )
            .await
            .map_err(unavailable)?;
        if decided {
            return Ok(());
        }
        self.decidable(id, now).await?;
        Err(PairingError::NotFound(id.to_string()))
    }

    /// Denies a request still pending at `now`.
    ///
    /// # Errors
    /// [`PairingError::NotFound`], [`PairingError::Expired`], [`PairingError::Denied`],
    /// [`PairingError::Unavailable`].
    pub async fn deny(&self, id: &str, now: i64) -> Result<(), PairingError> {
        let database = match &self.backend {
            Backend::Memory(memory) => return memory.deny(id, now),
            Backend::Postgres { database, .. } => database,
        };
        let decided = database
            .decide_pairing(id, now, PairingState::Denied, None)
            .await
            .map_err(unavailable)?;
        if decided {
            return Ok(());
        }
        self.decidable(id, now).await?;
        Err(PairingError::NotFound(id.to_string()))
    }

    /// What the requester learns when it presents `origin` and `claim` for request `id`
    /// (see [`Memory::claim`]). With the shared database an approved claim gives the
    /// token a fresh value, returned here; the caller tells [`crate::auth::tokens`].
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
        let database = match &self.backend {
            Backend::Memory(memory) => return Ok(memory.claim(id, origin, claim, now)),
            Backend::Postgres { database, .. } => database,
        };
        let Some(row) = database.pairing(id).await.map_err(unavailable)? else {
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
                match database
                    .claim_pairing(id, now, &token_hash(&token))
                    .await
                    .map_err(unavailable)?
                {
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

    /// Expires what is due at `now` (see [`Memory::expire_due`]); with the shared
    /// database each request is reported once by whichever instance gets there first.
    ///
    /// # Errors
    /// [`PairingError::Unavailable`].
    pub async fn expire_due(&self, now: i64) -> Result<Expired, PairingError> {
        let database = match &self.backend {
            Backend::Memory(memory) => return Ok(memory.expire_due(now)),
            Backend::Postgres { database, .. } => database,
        };
        let rows = database
            .expire_pairings(now, self.ttl_ms())
            .await
            .map_err(unavailable)?;
        Ok(Expired {
            requests: rows.requests,
            unclaimed_clients: rows.unclaimed_clients,
        })
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
    use crate::protocol::scopes::Scope;

    fn pairings() -> Memory {
        Memory::new(PairingConfig::default())
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
            token: "tok".into(),
            scopes: Scopes::only(Scope::Events),
        }
    }

    #[test]
    fn extension_origins_only() {
        for good in [
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
            "moz-extension://6f1b7c3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f",
            "safari-web-extension://ABC-123",
        ] {
            assert!(is_extension_origin(good), "{good}");
        }
        for bad in [
            "chrome-extension://",
            "chrome-extension://abc/",
            "chrome-extension://abc:1",
            "https://abc",
            "null",
            "chrome-extension://abc\u{0}",
        ] {
            assert!(!is_extension_origin(bad), "{bad}");
        }
    }

    #[test]
    fn approved_token_is_claimed_once_with_origin_and_secret() {
        let p = pairings();
        let issued = p.request(new("127.0.0.1"), 0).unwrap();
        let id = &issued.request.id;
        assert_eq!(issued.request.code.len(), 6);
        assert!(issued.request.code.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(
            p.claim(id, "chrome-extension://abc", &issued.claim, 1),
            Claim::Pending
        );
        assert_eq!(p.list(1).len(), 1);
        p.approve(id, 2, issue()).unwrap();
        assert!(p.list(2).is_empty());
        assert_eq!(
            p.claim(id, "chrome-extension://abd", &issued.claim, 3),
            Claim::Unknown
        );
        assert_eq!(
            p.claim(id, "chrome-extension://abc", "guess", 3),
            Claim::Unknown
        );
        assert!(matches!(
            p.claim(id, "chrome-extension://abc", &issued.claim, 3),
            Claim::Approved { ref token, .. } if token == "tok"
        ));
        assert_eq!(
            p.claim(id, "chrome-extension://abc", &issued.claim, 4),
            Claim::Unknown
        );
        assert_eq!(
            p.approve(id, 4, issue()).unwrap_err(),
            PairingError::NotFound(id.clone())
        );
    }

    #[test]
    fn denied_and_expired_give_no_token() {
        let p = pairings();
        let ttl = p.ttl_ms();
        let denied = p.request(new("127.0.0.1"), 0).unwrap();
        p.deny(&denied.request.id, 1).unwrap();
        assert_eq!(
            p.claim(
                &denied.request.id,
                "chrome-extension://abc",
                &denied.claim,
                2
            ),
            Claim::Denied
        );
        assert!(matches!(
            p.approve(&denied.request.id, 2, issue()),
            Err(PairingError::Denied(_))
        ));

        let late = p.request(new("127.0.0.2"), 0).unwrap();
        assert_eq!(p.expire_due(ttl - 1), Expired::default());
        assert_eq!(p.expire_due(ttl).requests, vec![late.request.id.clone()]);
        assert_eq!(p.expire_due(ttl + 1), Expired::default(), "reported once");
        assert!(matches!(
            p.approve(&late.request.id, ttl + 1, issue()),
            Err(PairingError::Expired(_))
        ));
        assert_eq!(
            p.claim(
                &late.request.id,
                "chrome-extension://abc",
                &late.claim,
                ttl + 1
            ),
            Claim::Expired
        );
        // Outcomes are forgotten after another TTL.
        assert_eq!(
            p.claim(
                &late.request.id,
                "chrome-extension://abc",
                &late.claim,
                2 * ttl + 1
            ),
            Claim::Unknown
        );

        // An approved token not claimed within the claim window is dropped.
        let unclaimed = p.request(new("127.0.0.3"), 0).unwrap();
        p.approve(&unclaimed.request.id, 10, issue()).unwrap();
        assert_eq!(
            p.claim(
                &unclaimed.request.id,
                "chrome-extension://abc",
                &unclaimed.claim,
                10 + ttl
            ),
            Claim::Expired
        );
        // The claim's sweep found it; the next expiry reports it once, for revocation.
        assert_eq!(
            p.expire_due(10 + ttl).unclaimed_clients,
            vec!["cl_1".to_string()]
        );
        assert!(p.expire_due(10 + ttl).unclaimed_clients.is_empty());
    }

    #[test]
    fn pending_limits_hold_globally_and_per_address() {
        let p = pairings();
        p.request(new("192.0.2.1"), 0).unwrap();
        p.request(new("192.0.2.1"), 0).unwrap();
        assert_eq!(
            p.request(new("192.0.2.1"), 0).unwrap_err(),
            PairingError::TooManyFromAddress(2)
        );
        p.request(new("192.0.2.2"), 0).unwrap();
        p.request(new("192.0.2.3"), 0).unwrap();
        let fifth = p.request(new("192.0.2.4"), 0).unwrap();
        assert_eq!(
            p.request(new("192.0.2.5"), 0).unwrap_err(),
            PairingError::TooManyPending(5)
        );
        // A decided request frees its slot.
        p.deny(&fifth.request.id, 1).unwrap();
        p.request(new("192.0.2.5"), 1).unwrap();
        // Expired requests free theirs.
        assert!(p.request(new("192.0.2.6"), p.ttl_ms()).is_ok());
    }

    #[test]
    fn an_ipv6_requester_is_its_slash_64_and_a_local_one_its_origin() {
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

        let p = pairings();
        p.request(new("2001:db8::1"), 0).unwrap();
        p.request(new("2001:db8::2"), 0).unwrap();
        assert_eq!(
            p.request(new("2001:db8::ffff:3"), 0).unwrap_err(),
            PairingError::TooManyFromAddress(2)
        );
        p.request(new("2001:db8:0:1::1"), 0).unwrap();
    }
}
