//! The registry of client tokens: every client other than the owner holds its own.
//!
//! A client token is 256 bits from the OS random generator, shown once (to the CLI, the
//! `client.create` caller, or the paired extension's claim) and stored only as its
//! SHA-256 hash with metadata. Where it is stored depends on the hub:
//!
//! Both are a [`storage::TokenStore`], a thin adapter over that engine's statements;
//! the rules below are written once, over it.
//!
//! - SQLite (local mode, and public mode without `public.database`):
//!   `src/storage/sqlite/client_tokens.rs`. This instance is the only writer, so the live tokens
//!   kept in memory, indexed by hash, are the truth: authenticating a connection and
//!   checking an Origin never touch the database.
//! - PostgreSQL (`public.database`, shared by every instance): `src/storage/postgres/tokens.rs`.
//!   Another instance may create or revoke a token at any time, so a new connection's
//!   token is looked up in PostgreSQL every time (no staleness: a token revoked anywhere
//!   never opens a new connection), and so is a signature proof's key
//!   ([`ClientTokens::hash_of_now`]). The in-memory copy serves the synchronous
//!   readers (the Origin allowlist, which asks the database on a miss, and the views);
//!   it is reloaded every [`crate::storage::postgres::PROBE_EVERY`] (1 s), so those lag by at
//!   most that, and `client.list` reloads it first.
//!   Revoking a token closes its connections on this instance at once; other instances
//!   close theirs when they hear of it ([`ClientTokens::forget`]).
//!
//!   Origins and ids the database does not know are remembered for a few seconds
//!   ([`misses`]), so a client cannot make each unauthenticated request cost a query.
//!
//! The database is written when a token is created, revoked or used to connect (once
//! per connection, never per message).
//!
//! Lookup is by hash in a `HashMap`: the key is the SHA-256 of a 256-bit secret, so how
//! long a lookup takes says nothing usable about the secret (the same argument as for
//! the dashboard sessions' primary-key lookup).

pub mod misses;
pub mod storage;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use crate::auth::security::{new_token, token_hash};
pub use crate::protocol::clients::{ClientKind, ClientView};
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::Scopes;
use crate::storage::credentials::ClientTokenRow;
use crate::storage::postgres::{Database, DatabaseError};
use crate::storage::sqlite::{Store, StoreError};
use crate::support::timestamp::{format_ms, now_ms};
use storage::{Revoked, TokenStore};

/// A failure managing client tokens.
#[derive(Debug, thiserror::Error)]
pub enum ClientTokenError {
    /// The name is empty, too long or has control characters.
    #[error("{}", NAME_RULE)]
    InvalidName,
    /// The origin is not a serialized origin ([`crate::config::allowlist::parse_origin`]).
    #[error("{0:?} is not an origin like chrome-extension://<id> or https://host")]
    InvalidOrigin(String),
    /// No scope was given.
    #[error("at least one scope is required")]
    NoScopes,
    /// No live token has that id.
    #[error("no client token with id {0}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The shared database failed or cannot be reached.
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

impl From<ClientTokenError> for RpcError {
    fn from(err: ClientTokenError) -> Self {
        match &err {
            ClientTokenError::InvalidName
            | ClientTokenError::InvalidOrigin(_)
            | ClientTokenError::NoScopes => {
                RpcError::new(ErrorKind::InvalidParams, err.to_string())
            }
            ClientTokenError::NotFound(id) => {
                RpcError::new(ErrorKind::ClientNotFound, err.to_string())
                    .with_details(serde_json::json!({ "client_id": id }))
            }
            ClientTokenError::Store(source) => RpcError::internal("client tokens", source),
            ClientTokenError::Database(source) => RpcError::internal("client tokens", source),
        }
    }
}

/// What a new token is for.
#[derive(Debug, Clone)]
pub struct NewClientToken {
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// How it came to be.
    pub kind: ClientKind,
    /// The exact Origin it will work from, if any.
    pub origin: Option<String>,
    /// What it may do; at least one scope.
    pub scopes: Scopes,
}

/// Who a presented client token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's id (`cl_…`).
    pub id: String,
    /// Its scopes.
    pub scopes: Scopes,
}

/// The `client.list` view of a stored row with `connected` live connections.
pub fn view(row: &ClientTokenRow, connected: usize) -> ClientView {
    ClientView {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: row.kind,
        origin: row.origin.clone(),
        scopes: row.scopes,
        created_at: format_ms(row.created_at),
        last_used_at: row.last_used_at.map(format_ms),
        last_addr: row.last_addr.clone(),
        connected,
    }
}

#[derive(Default)]
struct State {
    by_hash: HashMap<[u8; 32], String>,
    by_id: HashMap<String, ClientTokenRow>,
    /// Origin → number of live tokens bound to it.
    origins: HashMap<String, usize>,
}

impl State {
    fn insert(&mut self, row: ClientTokenRow) {
        if let Some(origin) = &row.origin {
            *self.origins.entry(origin.clone()).or_default() += 1;
        }
        self.by_hash.insert(row.hash, row.id.clone());
        self.by_id.insert(row.id.clone(), row);
    }

    fn remove(&mut self, id: &str) -> Option<ClientTokenRow> {
        let row = self.by_id.remove(id)?;
        self.by_hash.remove(&row.hash);
        if let Some(origin) = &row.origin
            && let Some(count) = self.origins.get_mut(origin)
        {
            *count -= 1;
            if *count == 0 {
                self.origins.remove(origin);
            }
        }
        Some(row)
    }
}

/// Why a token could not be checked.
#[derive(Debug, thiserror::Error)]
#[error("the client token could not be checked: the shared database is unreachable")]
pub struct Unavailable(#[source] ClientTokenError);

/// The live client tokens, loaded at start and kept in step with the store.
pub struct ClientTokens {
    store: Box<dyn TokenStore>,
    // A std RwLock: map operations only, never held across an await.
    state: RwLock<State>,
    /// What the shared database said it does not know (unused with SQLite).
    misses: misses::Misses,
}

impl ClientTokens {
    /// Loads the live (unrevoked) tokens from this instance's SQLite database.
    ///
    /// # Errors
    /// [`StoreError`] when the table cannot be read.
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let mut state = State::default();
        for row in store.live_client_tokens().await? {
            state.insert(row);
        }
        Ok(Self {
            store: Box::new(store),
            state: RwLock::new(state),
            misses: misses::Misses::default(),
        })
    }

    /// Loads the live tokens from the shared PostgreSQL database.
    ///
    /// # Errors
    /// [`DatabaseError`] when the table cannot be read.
    pub async fn load_shared(database: Database) -> Result<Self, DatabaseError> {
        let mut state = State::default();
        for row in database.live_client_tokens().await? {
            state.insert(row);
        }
        Ok(Self {
            store: Box::new(database),
            state: RwLock::new(state),
            misses: misses::Misses::default(),
        })
    }

    /// Reloads the in-memory copy from the shared database (nothing to do with SQLite,
    /// whose copy is the truth). Returns the ids of the tokens that were live in the
    /// copy and are not any more: revoked through another instance, so this one closes
    /// their connections ([`crate::app::access::Access::revoked_elsewhere`]).
    ///
    /// # Errors
    /// [`ClientTokenError`] when the shared database fails; the copy is left as it was.
    pub async fn refresh(&self) -> Result<Vec<String>, ClientTokenError> {
        if !self.store.shared() {
            return Ok(Vec::new());
        }
        let mut state = State::default();
        for row in self.store.live().await? {
            state.insert(row);
        }
        // Rows in the copy but not in the snapshot: revoked, or created (here or
        // elsewhere, then used here) after the snapshot was read. Kept until the
        // database says which.
        let missing: Vec<String> = {
            let mut copy = self.write();
            // A token new to this copy (made through another instance) may be one a
            // remembered miss is about; the broker's news usually came first, but NATS
            // delivers at most once.
            if state.by_id.keys().any(|id| !copy.by_id.contains_key(id)) {
                self.misses.forget_all();
            }
            let missing: Vec<ClientTokenRow> = copy
                .by_id
                .values()
                .filter(|row| !state.by_id.contains_key(&row.id))
                .cloned()
                .collect();
            for row in &missing {
                state.insert(row.clone());
            }
            *copy = state;
            missing.into_iter().map(|row| row.id).collect()
        };
        if missing.is_empty() {
            return Ok(missing);
        }
        let revoked = self.store.revoked(&missing).await?;
        let mut copy = self.write();
        for id in &revoked {
            copy.remove(id);
        }
        Ok(revoked)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The identity behind `token` presented with `origin` (the request's Origin
    /// header), or `None`. A token bound to an origin works only with exactly that
    /// Origin; a request without an Origin does not match a bound token. With the
    /// shared database the token is looked up there, every time.
    ///
    /// # Errors
    /// [`Unavailable`] when the shared database cannot be asked.
    pub async fn authenticate(
        &self,
        token: &str,
        origin: Option<&str>,
    ) -> Result<Option<Identity>, Unavailable> {
        let hash = token_hash(token);
        let row = if self.store.shared() {
            let found = self.store.by_hash(&hash).await.map_err(Unavailable)?;
            // A token found joins the copy at once. One not found (revoked) leaves it at
            // the next reload, which also closes its connections here.
            if let Some(row) = &found {
                let mut state = self.write();
                state.remove(&row.id);
                state.insert(row.clone());
            }
            found
        } else {
            let state = self.read();
            state
                .by_hash
                .get(&hash)
                .and_then(|id| state.by_id.get(id))
                .cloned()
        };
        let Some(row) = row else {
            return Ok(None);
        };
        if row.origin.is_some() && row.origin.as_deref() != origin {
            return Ok(None);
        }
        Ok(Some(Identity {
            id: row.id,
            scopes: row.scopes,
        }))
    }

    /// Whether a live token is bound to exactly `origin`: such an origin passes the
    /// Origin allowlist (configured origins plus those of live tokens).
    pub fn origin_paired(&self, origin: &str) -> bool {
        self.read().origins.contains_key(origin)
    }

    /// [`ClientTokens::origin_paired`], and with the shared database, when the copy
    /// does not know `origin`, the database itself (a token paired through another
    /// instance within the last reload), unless it said no within [`misses::MISS_TTL`].
    /// A database failure counts as not paired (and is not remembered).
    pub async fn origin_paired_now(&self, origin: &str) -> bool {
        if self.origin_paired(origin) {
            return true;
        }
        if !self.store.shared() {
            return false;
        }
        let miss = misses::Miss::Origin(origin.to_string());
        if self.misses.known(&miss, Instant::now()) {
            return false;
        }
        let since = self.misses.generation();
        match self.store.origin_bound(origin).await {
            Ok(true) => true,
            Ok(false) => {
                self.misses.record(miss, since, Instant::now());
                false
            }
            Err(_) => false,
        }
    }

    /// The SHA-256 of a live token's value, the key of its signature proof.
    pub fn hash_of(&self, id: &str) -> Option<[u8; 32]> {
        self.read().by_id.get(id).map(|row| row.hash)
    }

    /// The SHA-256 of live token `id`'s value, as the store has it now: with the shared
    /// database always asked there (a claim through another instance gives a token a
    /// new value, and the proof must use it); a database failure gives `None`.
    ///
    /// An id the copy does not know and the database said it does not know within
    /// [`misses::MISS_TTL`] is not asked again.
    pub async fn hash_of_now(&self, id: &str) -> Option<[u8; 32]> {
        if !self.store.shared() {
            return self.hash_of(id);
        }
        let miss = misses::Miss::Client(id.to_string());
        let in_copy = self.read().by_id.contains_key(id);
        if !in_copy && self.misses.known(&miss, Instant::now()) {
            return None;
        }
        let since = self.misses.generation();
        match self.store.hash_of(id).await {
            Ok(Some(hash)) => Some(hash),
            Ok(None) => {
                self.misses.record(miss, since, Instant::now());
                None
            }
            Err(_) => None,
        }
    }

    /// Forgets every remembered miss: a token was created or changed on another
    /// instance (the broker's pairing news), so what the database did not know a
    /// moment ago it may know now.
    pub fn forget_misses(&self) {
        self.misses.forget_all();
    }

    /// A live token's row.
    pub fn get(&self, id: &str) -> Option<ClientTokenRow> {
        self.read().by_id.get(id).cloned()
    }

    /// Every live token, oldest first.
    pub fn list(&self) -> Vec<ClientTokenRow> {
        let mut rows: Vec<ClientTokenRow> = self.read().by_id.values().cloned().collect();
        rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        rows
    }

    /// Takes note that token `id` now has the value whose SHA-256 is `hash` (a pairing
    /// claim gave it its value, see [`crate::storage::postgres::Database::claim_pairing`]).
    pub fn rekeyed(&self, id: &str, hash: [u8; 32]) {
        self.misses.forget_all();
        let mut state = self.write();
        if let Some(mut row) = state.remove(id) {
            row.hash = hash;
            state.insert(row);
        }
    }

    /// Creates a token and returns its row with the token itself, which is not kept.
    ///
    /// # Errors
    /// [`ClientTokenError::InvalidName`], [`ClientTokenError::InvalidOrigin`],
    /// [`ClientTokenError::NoScopes`], [`ClientTokenError::Store`] or
    /// [`ClientTokenError::Database`].
    pub async fn create(
        &self,
        new: NewClientToken,
    ) -> Result<(ClientTokenRow, String), ClientTokenError> {
        let name = valid_name(&new.name).ok_or(ClientTokenError::InvalidName)?;
        if let Some(origin) = &new.origin
            && crate::config::allowlist::parse_origin(origin).is_err()
        {
            return Err(ClientTokenError::InvalidOrigin(origin.clone()));
        }
        if new.scopes.is_empty() {
            return Err(ClientTokenError::NoScopes);
        }
        let token = new_token();
        let row = ClientTokenRow {
            id: new_client_id(),
            name,
            kind: new.kind,
            origin: new.origin,
            scopes: new.scopes,
            hash: token_hash(&token),
            created_at: now_ms(),
            last_used_at: None,
            last_addr: None,
        };
        self.store.insert(&row).await?;
        self.write().insert(row.clone());
        self.misses.forget_all();
        tracing::info!(client_id = %row.id, kind = row.kind.as_str(), origin = ?row.origin, scopes = %row.scopes.to_storage(), "client token created");
        Ok((row, token))
    }

    /// Revokes a token: it stops authenticating at once and its origin leaves the
    /// allowlist unless another live token has it. Closing its connections is the
    /// caller's part.
    ///
    /// # Errors
    /// [`ClientTokenError::NotFound`], [`ClientTokenError::Store`] or
    /// [`ClientTokenError::Database`].
    pub async fn revoke(&self, id: &str) -> Result<ClientTokenRow, ClientTokenError> {
        // With the shared database the row is the database's: the token may have been
        // made through another instance since this copy was last reloaded.
        let revoked = self.store.revoke(id, now_ms()).await?;
        let copy = self.write().remove(id);
        let row = match revoked {
            Revoked::NotLive => None,
            Revoked::Revoked(row) => row.or(copy),
        };
        let row = row.ok_or_else(|| ClientTokenError::NotFound(id.to_string()))?;
        tracing::info!(client_id = %id, "client token revoked");
        Ok(row)
    }

    /// Drops token `id` from the in-memory copy without touching the store: another
    /// instance of the deployment revoked it. New connections never rely on the copy
    /// with the shared database; this makes the synchronous readers forget it before the
    /// next reload. Returns whether it was live here.
    pub fn forget(&self, id: &str) -> bool {
        self.write().remove(id).is_some()
    }

    /// Records that a token opened a connection from `addr`: one store write per
    /// connection. Returns the updated row, or `None` if the token is gone.
    pub async fn touch(&self, id: &str, addr: SocketAddr) -> Option<ClientTokenRow> {
        let now = now_ms();
        let addr = addr.to_string();
        if let Err(err) = self.store.touch(id, now, &addr).await {
            tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), client_id = %id, "cannot record token use");
        }
        let mut state = self.write();
        let row = state.by_id.get_mut(id)?;
        row.last_used_at = Some(now);
        row.last_addr = Some(addr);
        Some(row.clone())
    }
}

/// `cl_` and 12 hex digits (48 random bits: an id, not a secret).
fn new_client_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random generator is unavailable");
    format!("cl_{}", hex::encode(bytes))
}

/// What [`valid_name`] accepts, as clients are told.
pub const NAME_RULE: &str = "name must be 1 to 100 characters without control, format (such as \
     bidirectional overrides) or line-separator characters";

/// The trimmed name when it is 1 to 100 characters, none of them invisible or
/// layout-changing: no control (`Cc`), format (`Cf`: bidirectional overrides and
/// isolates such as U+202E, zero-width characters), line or paragraph separator
/// (`Zl`, `Zp`) or unassigned (`Cn`) code point, by the Unicode general category
/// (UAX #44). A name is shown to the user beside a pairing code; a bidirectional
/// override in it would reorder the text shown after it (Unicode Technical Report #36,
/// section 2.1), so the code the user compares could read differently from the one the
/// hub issued.
pub fn valid_name(name: &str) -> Option<String> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let name = name.trim();
    let chars = name.chars().count();
    let hidden = |c: char| {
        matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
                | GeneralCategory::Unassigned
        )
    };
    ((1..=100).contains(&chars) && !name.chars().any(hidden)).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::scopes::Scope;

    async fn registry() -> (tempfile::TempDir, ClientTokens) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, ClientTokens::load(store).await.unwrap())
    }

    fn new(origin: Option<&str>) -> NewClientToken {
        NewClientToken {
            name: " ext ".into(),
            kind: ClientKind::Extension,
            origin: origin.map(str::to_string),
            scopes: Scopes::only(Scope::Events),
        }
    }

    #[tokio::test]
    async fn a_bound_token_works_only_from_its_origin() {
        let (_dir, tokens) = registry().await;
        let (row, token) = tokens
            .create(new(Some("chrome-extension://abc")))
            .await
            .unwrap();
        assert_eq!(row.name, "ext");
        assert!(row.id.starts_with("cl_") && row.id.len() == 15);
        assert_eq!(token.len(), 64);
        let who = tokens
            .authenticate(&token, Some("chrome-extension://abc"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(who.id, row.id);
        assert_eq!(
            tokens
                .authenticate(&token, Some("chrome-extension://abd"))
                .await
                .unwrap(),
            None
        );
        assert_eq!(tokens.authenticate(&token, None).await.unwrap(), None);
        assert_eq!(
            tokens
                .authenticate("wrong", Some("chrome-extension://abc"))
                .await
                .unwrap(),
            None
        );
        assert!(tokens.origin_paired("chrome-extension://abc"));

        let (unbound, unbound_token) = tokens.create(new(None)).await.unwrap();
        assert_eq!(
            tokens
                .authenticate(&unbound_token, None)
                .await
                .unwrap()
                .unwrap()
                .id,
            unbound.id
        );

        tokens.revoke(&row.id).await.unwrap();
        assert_eq!(
            tokens
                .authenticate(&token, Some("chrome-extension://abc"))
                .await
                .unwrap(),
            None
        );
        assert!(!tokens.origin_paired("chrome-extension://abc"));
        assert!(matches!(
            tokens.revoke(&row.id).await,
            Err(ClientTokenError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn tokens_survive_a_reload_and_bad_input_is_refused() {
        let (dir, tokens) = registry().await;
        let (row, token) = tokens
            .create(new(Some("moz-extension://1234")))
            .await
            .unwrap();
        tokens
            .touch(&row.id, "127.0.0.1:5".parse().unwrap())
            .await
            .unwrap();
        drop(tokens);
        let tokens = ClientTokens::load(Store::open(dir.path()).unwrap())
            .await
            .unwrap();
        assert!(
            tokens
                .authenticate(&token, Some("moz-extension://1234"))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            tokens.get(&row.id).unwrap().last_addr.as_deref(),
            Some("127.0.0.1:5")
        );

        let mut bad = new(None);
        bad.name = "\u{7}".into();
        assert!(matches!(
            tokens.create(bad).await,
            Err(ClientTokenError::InvalidName)
        ));
        let mut bad = new(Some("chrome-extension://x/path"));
        bad.name = "n".into();
        assert!(matches!(
            tokens.create(bad).await,
            Err(ClientTokenError::InvalidOrigin(_))
        ));
        let mut bad = new(None);
        bad.scopes = Scopes::NONE;
        assert!(matches!(
            tokens.create(bad).await,
            Err(ClientTokenError::NoScopes)
        ));
    }
}
