//! What a client may ask before it has a token, and what an operator monitors:
//! `GET /semantest-signature` (what this server is, and with `?challenge=` a proof that
//! it holds a token, bound to the endpoint the client contacted), `GET /health` and
//! `GET /metrics`.

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use std::sync::Arc;

use crate::app::edge::{DiscoveryCtx, MonitoringCtx};
use crate::app::hub::{PRODUCT, VERSION};
use crate::auth::security::challenge_proof;
use crate::config::allowlist::{HostEntry, host_header};
use crate::connections::tcp::{ClientAddr, ConnAddrs};
use crate::http::error::HttpError;
use crate::http::public::PublicGate;
use crate::protocol::error::ErrorKind;
use crate::protocol::{PROTOCOL_VERSION, SUBPROTOCOL};

/// What the discovery and monitoring routes read.
pub(in crate::http) struct DiscoveryState {
    /// What the signature tells and proves.
    pub(in crate::http) ctx: DiscoveryCtx,
    /// What `/health` and `/metrics` read.
    pub(in crate::http) monitoring: MonitoringCtx,
    /// Set in public mode: who may monitor.
    pub(in crate::http) public: Option<Arc<PublicGate>>,
}

#[derive(Deserialize)]
pub(super) struct SignatureQuery {
    challenge: Option<String>,
    client: Option<String>,
}

/// The client id of the owner token in the signature challenge.
pub const OWNER_CLIENT_ID: &str = "owner";

/// Whether a challenge field is 1 to `max` characters, none of them a control
/// character (so the newline-separated proof message stays unambiguous).
fn challenge_field_ok(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && !value.chars().any(char::is_control)
}

/// The feature groups this hub serves, for the signature: the method families its mode
/// enables (`public.capabilities()`), plus `events`, which every hub offers, and
/// `pairing` where it is served (`public.serves_pairing()`).
fn capabilities(public: &crate::config::PublicConfig) -> Vec<&'static str> {
    let mut capabilities = public.capabilities();
    capabilities.extend(["events", "events.idempotency"]);
    if public.serves_pairing() {
        capabilities.push("pairing");
    }
    capabilities
}

/// The endpoint a public hub binds its challenge proof to: the Host the client
/// contacted (already checked against `public.hosts` by the gate), lowercased, with the
/// port filled in as 443 when the Host names none, since public clients arrive over
/// HTTPS (directly or through the proxy).
fn public_endpoint(headers: &HeaderMap) -> String {
    // The gate let only a Host that parses and names this hub through.
    host_header(headers)
        .and_then(HostEntry::parse)
        .map(|host| host.with_port(443))
        .unwrap_or_default()
}

pub(super) async fn signature(
    State(state): State<Arc<DiscoveryState>>,
    ConnectInfo(addrs): ConnectInfo<ConnAddrs>,
    headers: HeaderMap,
    Query(query): Query<SignatureQuery>,
) -> Response {
    let ctx = &state.ctx;
    let mut body = json!({
        "service": "semantest",
        "product": PRODUCT,
        "version": VERSION,
        "protocol": PROTOCOL_VERSION,
        "mode": ctx.mode.as_str(),
        "instance_id": ctx.instance_id,
        "ws_path": "/ws",
        "ws_subprotocol": SUBPROTOCOL,
        "capabilities": capabilities(&ctx.public),
    });
    if let Some(nonce) = query.challenge {
        if !challenge_field_ok(&nonce, 256) {
            return HttpError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::InvalidParams,
                "challenge must be 1 to 256 characters without control characters",
            )
            .into_response();
        }
        let Some(client) = query.client.filter(|c| challenge_field_ok(c, 64)) else {
            return HttpError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::InvalidParams,
                "client must be the token's id (cl_...) or owner, 1 to 64 characters",
            )
            .into_response();
        };
        let key = if client == OWNER_CLIENT_ID {
            Some(ctx.owner_hash)
        } else {
            ctx.access.tokens().hash_of_now(&client).await
        };
        let endpoint = match &state.public {
            // Behind TLS or a proxy the listener's address is not what clients contact;
            // the gate has checked the Host against `public.hosts`.
            Some(_) => public_endpoint(&headers),
            // Where this connection actually arrived, never the Host header.
            None => addrs.local.to_string(),
        };
        body["challenge"] = match key {
            Some(key) => json!({
                "nonce": nonce,
                "client": client,
                "endpoint": endpoint,
                "proof": challenge_proof(&key, &nonce, &client, &endpoint),
            }),
            None => Value::Null,
        };
    }
    axum::Json(body).into_response()
}

/// Whether the request may see monitoring detail: always in local mode, from
/// `public.monitoring_from` in public mode.
fn may_monitor(state: &DiscoveryState, client: ClientAddr) -> bool {
    state
        .public
        .as_ref()
        .is_none_or(|public| public.may_monitor(client.0))
}

pub(super) async fn health(
    State(state): State<Arc<DiscoveryState>>,
    axum::Extension(client): axum::Extension<ClientAddr>,
) -> Response {
    let health = state.monitoring.reports.health().await;
    let code = if health.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = if may_monitor(&state, client) {
        (code, axum::Json(health)).into_response()
    } else {
        let short = json!({"status": health.status, "product": PRODUCT, "version": VERSION});
        (code, axum::Json(short)).into_response()
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) async fn metrics(
    State(state): State<Arc<DiscoveryState>>,
    axum::Extension(client): axum::Extension<ClientAddr>,
) -> Response {
    if !may_monitor(&state, client) {
        return HttpError::forbidden("metrics are served to public.monitoring_from addresses only")
            .into_response();
    }
    let monitoring = &state.monitoring;
    monitoring
        .metrics
        .observe_process(&monitoring.monitor.latest().await);
    monitoring
        .metrics
        .observe_store_commits(monitoring.store.commits());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        monitoring.metrics.encode(),
    )
        .into_response()
}
