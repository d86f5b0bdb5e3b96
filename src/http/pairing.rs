//! The pairing endpoints a browser extension calls before it has a token:
//!
//! - `POST /pair` with `{name}` → 201 `{request_id, code, claim, expires_at, poll_after_ms}`;
//! - `POST /pair/{request_id}` with `{claim}` → 202 `{status: "pending"}`, 200
//!   `{status: "approved", client_id, token, scopes}` (exactly once), 403
//!   `{status: "denied"}`, 410 `{status: "expired"}` or 404 `{status: "unknown"}`.
//!
//! A public hub serves them only with `public.pairing = true`; otherwise both answer
//! 403 `{error: {kind: "DISABLED"}}`.
//!
//! Both need an extension Origin (`chrome-extension://`, `moz-extension://`,
//! `safari-web-extension://`); the claim must come from the request's exact Origin and
//! carry its claim secret. Errors are the hub's one HTTP error
//! ([`crate::http::error::HttpError`]): JSON `{error: {kind, message}}`, kinds as in
//! JSON-RPC errors. Responses are `Cache-Control: no-store`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::edge::PairingCtx;
use crate::auth::pairing::{Claim, NewRequest, PairingError};
use crate::auth::security::single_origin;
use crate::auth::tokens::{NAME_RULE, valid_name};
use crate::config::allowlist::is_extension_origin;
use crate::connections::tcp::ClientAddr;
use crate::http::error::HttpError;
use crate::protocol::error::ErrorKind;
use crate::support::timestamp::format_ms;

/// Request bodies larger than this are refused (413).
pub const MAX_BODY_BYTES: usize = 4096;

/// How often an extension should poll its claim, in milliseconds.
pub const POLL_AFTER_MS: u64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PairBody {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimBody {
    claim: String,
}

fn reply(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Response {
    HttpError::new(status, kind, message.into()).into_response()
}

/// The request's Origin when it is one extension origin.
fn extension_origin(headers: &HeaderMap) -> Option<String> {
    single_origin(headers)
        .filter(|origin| is_extension_origin(origin))
        .map(str::to_string)
}

fn not_an_extension() -> Response {
    error(
        StatusCode::FORBIDDEN,
        ErrorKind::Forbidden,
        "pairing is for browser extensions: the request needs one Origin of \
         chrome-extension://, moz-extension:// or safari-web-extension://",
    )
}

/// The refusal of a public hub whose operator did not enable pairing, or `None`.
fn pairing_off(ctx: &PairingCtx) -> Option<Response> {
    (!ctx.serves).then(|| {
        ctx.metrics.refused("pairing_off");
        error(
            StatusCode::FORBIDDEN,
            ErrorKind::Disabled,
            "pairing is off on this public hub (public.pairing = false); ask its operator \
             for a token",
        )
    })
}

fn bad_body(rejection: &JsonRejection) -> Response {
    error(
        rejection.status(),
        ErrorKind::InvalidParams,
        format!("invalid body: {}", rejection.body_text()),
    )
}

/// The request's extension Origin and its JSON body, or the error response to send.
#[expect(
    clippy::result_large_err,
    reason = "the error is the HTTP response itself, returned at once"
)]
fn origin_and_body<T>(
    headers: &HeaderMap,
    body: Result<Json<T>, JsonRejection>,
) -> Result<(String, T), Response> {
    let origin = extension_origin(headers).ok_or_else(not_an_extension)?;
    match body {
        Ok(Json(body)) => Ok((origin, body)),
        Err(rejection) => Err(bad_body(&rejection)),
    }
}

/// `POST /pair`. The per-address limit counts the client address the gate found (in
/// public mode behind a trusted proxy, the forwarded client, not the proxy).
pub(crate) async fn request(
    State(ctx): State<PairingCtx>,
    Extension(ClientAddr(address)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Result<Json<PairBody>, JsonRejection>,
) -> Response {
    if let Some(refused) = pairing_off(&ctx) {
        return refused;
    }
    let (origin, body) = match origin_and_body(&headers, body) {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let Some(name) = valid_name(&body.name) else {
        return error(StatusCode::BAD_REQUEST, ErrorKind::InvalidParams, NAME_RULE);
    };
    let new = NewRequest {
        name,
        origin,
        address,
    };
    match ctx.access.request_pairing(new).await {
        Ok(issued) => reply(
            StatusCode::CREATED,
            json!({
                "request_id": issued.request.id,
                "code": issued.request.code,
                "claim": issued.claim,
                "expires_at": format_ms(issued.expires_at_ms),
                "poll_after_ms": POLL_AFTER_MS,
            }),
        ),
        Err(PairingError::Unavailable) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal,
            PairingError::Unavailable.to_string(),
        ),
        Err(err) => {
            ctx.metrics.refused("pairing_limit");
            HttpError::new(StatusCode::TOO_MANY_REQUESTS, err.kind(), err.to_string())
                .retry_after(ctx.request_ttl_s)
                .into_response()
        }
    }
}

/// `POST /pair/{request_id}`.
pub(crate) async fn claim(
    State(ctx): State<PairingCtx>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ClaimBody>, JsonRejection>,
) -> Response {
    if let Some(refused) = pairing_off(&ctx) {
        return refused;
    }
    let (origin, body) = match origin_and_body(&headers, body) {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let claim = match ctx
        .access
        .claim_pairing(&request_id, &origin, &body.claim)
        .await
    {
        Ok(claim) => claim,
        Err(err) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, err.kind(), err.to_string());
        }
    };
    match claim {
        Claim::Pending => reply(
            StatusCode::ACCEPTED,
            json!({ "status": "pending", "poll_after_ms": POLL_AFTER_MS }),
        ),
        Claim::Approved {
            client_id,
            token,
            scopes,
        } => {
            tracing::info!(request_id, client_id = %client_id, "paired token delivered");
            reply(
                StatusCode::OK,
                json!({ "status": "approved", "client_id": client_id, "token": token, "scopes": scopes }),
            )
        }
        Claim::Denied => HttpError::new(
            StatusCode::FORBIDDEN,
            ErrorKind::PairingDenied,
            "the user denied this pairing request; no token was issued",
        )
        .with_field("status", "denied")
        .into_response(),
        Claim::Expired => HttpError::new(
            StatusCode::GONE,
            ErrorKind::PairingExpired,
            "this pairing request expired; send a new one",
        )
        .with_field("status", "expired")
        .into_response(),
        Claim::Unknown => HttpError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::PairingNotFound,
            "no pairing request matches this id, origin and claim",
        )
        .with_field("status", "unknown")
        .into_response(),
    }
}
