//! Dashboard sessions: what a one-time sign-in link gives a browser, as the HttpOnly,
//! SameSite=Strict `semantest_session` cookie, and their end.
//!
//! A session is the owner, so the edge accepts its cookie only from the dashboard's own
//! origins ([`crate::auth::security::from_dashboard`]); this module keeps the rest of its life:
//! - **lifetime**: `dashboard.session_lifetime_s` (7 days by default) counted from the
//!   last use, where a use is a WebSocket opened or closed with it, so a dashboard in use
//!   stays signed in and one left alone that long must sign in again;
//! - **sign-out** ends one session, **sign out everywhere** ([`Sessions::revoke_all`]) every one;
//!   both close the sessions' connections at once with 1008 (policy violation, RFC 6455
//!   section 7.4.1), through [`crate::app::access::Access::sessions_ended`], so nothing
//!   signed in outlives them.
//!
//! The store keeps only the SHA-256 of each session value, with its expiry.

use crate::app::access::Access;
use crate::auth::security::{new_token, session_cookie_header, token_hash};
use crate::storage::sqlite::{Store, StoreError};
use crate::support::timestamp::now_ms;

/// The dashboard sessions: where they are stored, who closes their connections, and
/// how long one lasts. What `/login`, `/session/*`, `/ws` and `hub.revoke_sessions` use
/// of the hub for sessions.
#[derive(Clone)]
pub(crate) struct Sessions {
    store: Store,
    access: Access,
    /// `dashboard.session_lifetime_s`, in seconds.
    lifetime_s: u64,
}

impl Sessions {
    /// The sessions kept in `store`, whose connections `access` closes, each lasting
    /// `lifetime_s` seconds from its last use.
    pub(crate) fn new(store: Store, access: Access, lifetime_s: u64) -> Self {
        Self {
            store,
            access,
            lifetime_s,
        }
    }

    fn lifetime_ms(&self) -> i64 {
        i64::try_from(self.lifetime_s)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
    }

    /// Starts a session; returns its `Set-Cookie` header value (the session's value is
    /// in it, and nowhere else).
    ///
    /// # Errors
    /// [`StoreError`] when the session cannot be stored.
    pub(crate) async fn sign_in(&self) -> Result<String, StoreError> {
        let session = new_token();
        let now = now_ms();
        self.store
            .insert_dashboard_session(
                &token_hash(&session),
                now,
                now.saturating_add(self.lifetime_ms()),
            )
            .await?;
        tracing::info!("dashboard signed in");
        Ok(self.cookie(&session))
    }

    /// The `Set-Cookie` value that renews `session`'s cookie for another lifetime.
    pub(crate) fn cookie(&self, session: &str) -> String {
        session_cookie_header(session, self.lifetime_s)
    }

    /// Uses `session`: when it is live, slides its expiry and returns its hash.
    ///
    /// # Errors
    /// [`StoreError`].
    pub(crate) async fn use_session(&self, session: &str) -> Result<Option<[u8; 32]>, StoreError> {
        let hash = token_hash(session);
        let live = self
            .store
            .use_dashboard_session(&hash, now_ms(), self.lifetime_ms())
            .await?;
        Ok(live.then_some(hash))
    }

    /// Records the end of a connection signed in with the session `hash` as a use: a
    /// dashboard whose socket stays open for days then reconnects still signed in. A
    /// session signed out or expired meanwhile stays so.
    pub(crate) async fn connection_ended(&self, hash: &[u8; 32]) {
        if let Err(err) = self
            .store
            .use_dashboard_session(hash, now_ms(), self.lifetime_ms())
            .await
        {
            tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), "cannot record the session's use");
        }
    }

    /// Whether `session` is live, without counting this as a use.
    ///
    /// # Errors
    /// [`StoreError`].
    pub(crate) async fn is_live(&self, session: &str) -> Result<bool, StoreError> {
        self.store
            .dashboard_session_valid(&token_hash(session), now_ms())
            .await
    }

    /// Signs `session` out: it stops working, and its connections are closed with
    /// 1008. Returns how many were closed.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be deleted (then nothing was closed).
    pub(crate) async fn sign_out(&self, session: &str) -> Result<usize, StoreError> {
        let hash = token_hash(session);
        let existed = self.store.delete_dashboard_session(&hash).await?;
        let closed = self.access.sessions_ended(Some(&hash));
        tracing::info!(existed, closed, "dashboard session signed out");
        Ok(closed)
    }

    /// Signs every session out (sign out everywhere): each stops working, and every
    /// connection signed in with one is closed with 1008.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be deleted (then nothing was closed).
    pub(crate) async fn revoke_all(&self) -> Result<Revoked, StoreError> {
        let revoked = self.store.delete_dashboard_sessions(now_ms()).await?;
        let closed = self.access.sessions_ended(None);
        tracing::info!(revoked, closed, "every dashboard session signed out");
        Ok(Revoked { revoked, closed })
    }
}

/// What [`Sessions::revoke_all`] ended.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Revoked {
    /// Sessions that were live.
    pub revoked: usize,
    /// Connections closed with 1008.
    pub closed: usize,
}
