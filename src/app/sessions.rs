//! Dashboard sessions: what a one-time sign-in link gives a browser, as the HttpOnly,
//! SameSite=Strict `semantest_session` cookie, and their end.
//!
//! A session is the owner, so the edge accepts its cookie only from the dashboard's own
//! origins ([`crate::auth::security::from_dashboard`]); this module keeps the rest of its life:
//! - **lifetime**: `dashboard.session_lifetime_s` (7 days by default) counted from the
//!   last use, where a use is a WebSocket opened or closed with it, so a dashboard in use
//!   stays signed in and one left alone that long must sign in again;
//! - **sign-out** ends one session, **sign out everywhere** ([`revoke_all`]) every one;
//!   both close the sessions' connections at once with 1008 (policy violation, RFC 6455
//!   section 7.4.1), through [`crate::access::Access::sessions_ended`], so nothing
//!   signed in outlives them.
//!
//! The store keeps only the SHA-256 of each session value, with its expiry.

use crate::app::access::Access;
use crate::app::hub::Hub;
use crate::auth::security::{new_token, session_cookie_header, token_hash};
use crate::storage::sqlite::{Store, StoreError};
use crate::support::timestamp::now_ms;

/// `dashboard.session_lifetime_s`, in seconds.
fn lifetime_s(hub: &Hub) -> u64 {
    hub.config().config.dashboard.session_lifetime_s
}

fn lifetime_ms(hub: &Hub) -> i64 {
    i64::try_from(lifetime_s(hub))
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

/// Starts a session; returns its `Set-Cookie` header value (the session's value is in
/// it, and nowhere else).
///
/// # Errors
/// [`StoreError`] when the session cannot be stored.
pub async fn sign_in(hub: &Hub) -> Result<String, StoreError> {
    let session = new_token();
    let now = now_ms();
    hub.store()
        .insert_dashboard_session(
            &token_hash(&session),
            now,
            now.saturating_add(lifetime_ms(hub)),
        )
        .await?;
    tracing::info!("dashboard signed in");
    Ok(cookie(hub, &session))
}

/// The `Set-Cookie` value that renews `session`'s cookie for another lifetime.
pub fn cookie(hub: &Hub, session: &str) -> String {
    session_cookie_header(session, lifetime_s(hub))
}

/// Uses `session`: when it is live, slides its expiry and returns its hash.
///
/// # Errors
/// [`StoreError`].
pub async fn use_session(hub: &Hub, session: &str) -> Result<Option<[u8; 32]>, StoreError> {
    let hash = token_hash(session);
    let live = hub
        .store()
        .use_dashboard_session(&hash, now_ms(), lifetime_ms(hub))
        .await?;
    Ok(live.then_some(hash))
}

/// Records the end of a connection signed in with the session `hash` as a use: a
/// dashboard whose socket stays open for days then reconnects still signed in. A session
/// signed out or expired meanwhile stays so.
pub async fn connection_ended(hub: &Hub, hash: &[u8; 32]) {
    if let Err(err) = hub
        .store()
        .use_dashboard_session(hash, now_ms(), lifetime_ms(hub))
        .await
    {
        tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), "cannot record the session's use");
    }
}

/// Whether `session` is live, without counting this as a use.
///
/// # Errors
/// [`StoreError`].
pub async fn is_live(hub: &Hub, session: &str) -> Result<bool, StoreError> {
    hub.store()
        .dashboard_session_valid(&token_hash(session), now_ms())
        .await
}

/// Signs `session` out: it stops working, and its connections are closed with 1008.
/// Returns how many were closed.
///
/// # Errors
/// [`StoreError`] when it cannot be deleted (then nothing was closed).
pub async fn sign_out(hub: &Hub, session: &str) -> Result<usize, StoreError> {
    let hash = token_hash(session);
    let existed = hub.store().delete_dashboard_session(&hash).await?;
    let closed = hub.access().sessions_ended(Some(&hash));
    tracing::info!(existed, closed, "dashboard session signed out");
    Ok(closed)
}

/// What [`revoke_all`] ended.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Revoked {
    /// Sessions that were live.
    pub revoked: usize,
    /// Connections closed with 1008.
    pub closed: usize,
}

/// Signs every session out (sign out everywhere): each stops working, and every
/// connection signed in with one is closed with 1008.
///
/// # Errors
/// [`StoreError`] when they cannot be deleted (then nothing was closed).
pub async fn revoke_all(store: &Store, access: &Access) -> Result<Revoked, StoreError> {
    let revoked = store.delete_dashboard_sessions(now_ms()).await?;
    let closed = access.sessions_ended(None);
    tracing::info!(revoked, closed, "every dashboard session signed out");
    Ok(Revoked { revoked, closed })
}
