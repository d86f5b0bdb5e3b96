//! The gate every request passes before its route: in public mode the per-address rate
//! first, then the Host allowlist, then the Origin allowlist.
//!
//! The Host check is [`crate::config::allowlist::HostAllowlist::allows`] in both modes (local:
//! the loopback names on the hub's port; public: [`crate::http::public::PublicGate`]). The
//! Origin check is an exact match against the built-in and configured origins plus the
//! origins of live client tokens (kept in memory, the database asked on a miss); the
//! pairing endpoints also admit extension origins not yet paired. The discovery
//! endpoints (`/semantest-signature`, `/health`) skip the Origin check: a client needs
//! them before it pairs.

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use crate::app::edge::GateCtx;
use crate::auth::security::{OriginCheck, check_origin, single_origin};
use crate::config::allowlist::{HostAllowlist, host_header, is_extension_origin};
use crate::connections::tcp::{ClientAddr, ConnAddrs};
use crate::http::error::HttpError;
use crate::http::public::PublicGate;

/// What the gate checks against.
pub(in crate::http) struct GateState {
    /// The live client tokens' origins, and the refusal counters.
    pub(in crate::http) ctx: GateCtx,
    /// The Host allowlist of a local hub (a public hub's is in `public`).
    pub(in crate::http) hosts: HostAllowlist,
    /// The built-in and configured origins.
    pub(in crate::http) origins: Vec<String>,
    /// Set in public mode.
    pub(in crate::http) public: Option<Arc<PublicGate>>,
}

/// The refusal of a Host that does not name this hub: 403 `FORBIDDEN`.
pub(crate) fn host_not_allowed() -> HttpError {
    HttpError::forbidden("host not allowed")
}

/// The per-address rate (public mode), then the Host and Origin allowlists (see
/// [`crate::auth::security`]).
pub(super) async fn gate(
    State(state): State<Arc<GateState>>,
    ConnectInfo(addrs): ConnectInfo<ConnAddrs>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = match &state.public {
        Some(public) => match public.admit(addrs.peer, request.headers(), &state.ctx.metrics) {
            Ok(client) => client,
            Err(refused) => return refused.into_response(),
        },
        None => {
            if !state.hosts.allows(host_header(request.headers())) {
                state.ctx.metrics.refused("host");
                return host_not_allowed().into_response();
            }
            addrs.peer.ip()
        }
    };
    request.extensions_mut().insert(ClientAddr(client));
    let headers = request.headers();
    let path = request.uri().path();
    let discovery = matches!(path, "/semantest-signature" | "/health");
    // Exactly `/pair` or `/pair/<one segment>`: the two pairing routes, nothing under them.
    let pairing = path == "/pair"
        || path
            .strip_prefix("/pair/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    let origin_ok = discovery
        || match check_origin(headers, &state.origins) {
            OriginCheck::Absent | OriginCheck::Allowed => true,
            // Configured origins plus those of live tokens, and for the pairing endpoints
            // any extension origin (it is not paired yet).
            OriginCheck::Denied => match single_origin(headers) {
                None => false,
                Some(origin) if pairing && is_extension_origin(origin) => true,
                Some(origin) => state.ctx.access.tokens().origin_paired_now(origin).await,
            },
        };
    if !origin_ok {
        state.ctx.metrics.refused("origin");
        return HttpError::forbidden("origin not allowed").into_response();
    }
    next.run(request).await
}
