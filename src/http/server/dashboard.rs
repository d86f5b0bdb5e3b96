//! The dashboard's own routes (local mode only): `GET /login?code=` redeems a one-time
//! link for a session cookie, the `POST /session/*` endpoints check and end sessions
//! ([`crate::app::sessions`]), and `GET /` and `GET /<file>` serve the dashboard's files.
//!
//! `/login` is a page a person's browser opens; its refusal is the one [`HttpError`],
//! shown as an HTML page to a browser ([`HttpError::negotiate`]) and as JSON otherwise.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracing::warn;

use std::sync::Arc;

use crate::app::edge::DashboardCtx;
use crate::auth::security::{cleared_session_cookie, from_dashboard, session_cookie};
use crate::http::assets;
use crate::http::error::HttpError;
use crate::protocol::error::ErrorChain;

/// What the dashboard's routes use.
pub(in crate::http) struct DashboardState {
    /// Sign-in codes and sessions.
    pub(in crate::http) ctx: DashboardCtx,
    /// The dashboard's own origins, the only ones the session cookie counts from.
    pub(in crate::http) origins: Arc<Vec<String>>,
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    code: Option<String>,
}

pub(super) async fn login(
    State(state): State<Arc<DashboardState>>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let redeemed = query
        .code
        .as_deref()
        .is_some_and(|code| state.ctx.codes.redeem(code));
    if !redeemed {
        return HttpError::unauthorized(
            "Links work once and for two minutes. Open the dashboard again from the tray \
             menu, or run semantest-hub dashboard.",
        )
        .with_page_title("This sign-in link is not valid")
        .negotiate(&headers);
    }
    let cookie = match state.ctx.sessions.sign_in().await {
        Ok(cookie) => cookie,
        Err(err) => {
            warn!(error = %ErrorChain(&err), "cannot store the dashboard session");
            return HttpError::internal("cannot sign in; see the hub log").negotiate(&headers);
        }
    };
    let mut response = Redirect::to("/").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The answer to a session request that does not come from the dashboard's own page.
fn not_from_dashboard() -> Response {
    HttpError::unauthorized("the dashboard sign-in counts only on the dashboard's own page")
        .into_response()
}

/// `POST /session/check`: 204 while the request's session cookie is live, 401 otherwise
/// (no cookie, signed out, expired, or not from the dashboard's own origin). It is not a
/// use of the session. The dashboard asks when its WebSocket is refused, to tell a
/// sign-out from a hub that is down.
pub(super) async fn session_check(
    State(state): State<Arc<DashboardState>>,
    headers: HeaderMap,
) -> Response {
    if !from_dashboard(&headers, &state.origins) {
        return not_from_dashboard();
    }
    let live = match session_cookie(&headers) {
        Some(session) => Some(state.ctx.sessions.is_live(&session).await),
        None => None,
    };
    let mut response = match live {
        Some(Ok(true)) => StatusCode::NO_CONTENT.into_response(),
        Some(Ok(false)) | None => HttpError::unauthorized("not signed in").into_response(),
        Some(Err(err)) => {
            warn!(error = %ErrorChain(&err), "session lookup failed");
            HttpError::internal("cannot check the sign-in").into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /session/sign-out`, from the dashboard's own origin: ends the request's session
/// (its connections are closed with 1008) and deletes the cookie; 204.
pub(super) async fn session_sign_out(
    State(state): State<Arc<DashboardState>>,
    headers: HeaderMap,
) -> Response {
    if !from_dashboard(&headers, &state.origins) {
        return not_from_dashboard();
    }
    if let Some(session) = session_cookie(&headers)
        && let Err(err) = state.ctx.sessions.sign_out(&session).await
    {
        warn!(error = %ErrorChain(&err), "cannot sign the dashboard session out");
        return HttpError::internal("cannot sign out; see the hub log").into_response();
    }
    signed_out()
}

/// 204 deleting the session cookie.
fn signed_out() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cleared_session_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /session/sign-out-everywhere`, from the dashboard's own origin with a live
/// session (the owner): signs every session out, as `hub.revoke_sessions` does, and
/// deletes this browser's cookie; 204. Over HTTP, because the caller's own WebSocket is
/// one of those closed.
pub(super) async fn session_sign_out_everywhere(
    State(state): State<Arc<DashboardState>>,
    headers: HeaderMap,
) -> Response {
    if !from_dashboard(&headers, &state.origins) {
        return not_from_dashboard();
    }
    let live = match session_cookie(&headers) {
        Some(session) => Some(state.ctx.sessions.is_live(&session).await),
        None => None,
    };
    match live {
        Some(Ok(true)) => {}
        Some(Ok(false)) | None => {
            return HttpError::unauthorized("not signed in").into_response();
        }
        Some(Err(err)) => {
            warn!(error = %ErrorChain(&err), "session lookup failed");
            return HttpError::internal("cannot check the sign-in").into_response();
        }
    }
    if let Err(err) = state.ctx.sessions.revoke_all().await {
        warn!(error = %ErrorChain(&err), "cannot sign every dashboard session out");
        return HttpError::internal("cannot sign out; see the hub log").into_response();
    }
    signed_out()
}

pub(super) async fn index(headers: HeaderMap) -> Response {
    assets::serve("index.html", &headers)
}

pub(super) async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&path, &headers)
}
