//! `hub.*`: introductions, status, health, configuration, connections, sign-in links,
//! dashboard sessions.
//!
//! `hub.status` and `hub.health` need no scope (the SDK's keepalive uses `hub.status`),
//! so they show the data directory and the agent CLI's path, which name the user's home,
//! only to callers with `admin` (the owner, or a token as powerful): `data_dir` is left
//! out and `agent_cli.path` (and each `agent_clis.*.path`) is `null` for everyone else.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::{Handler, HandlerFn, Method, Reply, later, reply, require_owner};
use crate::app::contexts::HubCtx;
use crate::app::hub::{PRODUCT, VERSION};
use crate::config::Family;
use crate::protocol::error::RpcError;
use crate::protocol::hub::{ClientInfo, ConnectionChange};
use crate::protocol::scopes::Scope;
use crate::protocol::{HelloParams, PROTOCOL_VERSION, Role, method, parse_params};

/// Dashboard sign-in, which a public hub does not have.
const LOGIN: Option<Family> = Some(Family::DashboardLogin);
const ADMIN: Option<Scope> = Some(Scope::Admin);

type Call<'a> = super::Call<'a, HubCtx>;

/// `hub.hello`, `hub.status` and `hub.health` need no scope: every authenticated client
/// may introduce itself and see that the hub is alive.
pub(super) const METHODS: &[Method] = &[
    row(method::HUB_HELLO, None, None, hello),
    row(method::HUB_STATUS, None, None, status),
    row(method::HUB_HEALTH, None, None, health),
    row(method::HUB_CONFIG, ADMIN, None, config),
    row(
        method::HUB_CONNECTIONS,
        Some(Scope::ProjectsRead),
        None,
        |call, _| {
            reply(&Connections {
                connections: call.ctx.clients.infos(),
            })
        },
    ),
    row(method::HUB_LOGIN_LINK, ADMIN, LOGIN, login_link),
    row(method::HUB_REVOKE_SESSIONS, ADMIN, LOGIN, revoke_sessions),
];

/// A row of this family's table: its handlers see [`HubCtx`] only.
const fn row(
    name: &'static str,
    scope: Option<Scope>,
    family: Option<Family>,
    handler: HandlerFn<HubCtx>,
) -> Method {
    Method::new(name, scope, family, Handler::Hub(handler))
}

/// The `server` object of `hub.hello`.
#[derive(Serialize)]
struct Server<'a> {
    product: &'static str,
    version: &'static str,
    instance_id: &'a str,
}

/// `hub.hello` result.
#[derive(Serialize)]
struct Hello<'a> {
    connection_id: u64,
    protocol: u32,
    server: Server<'a>,
    /// Whether this connection now receives `hub.connection`: it asked (or is a
    /// dashboard and did not decline) and holds `projects:read`.
    connection_events: bool,
}

fn hello(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: HelloParams = parse_params(params)?;
    let name = p.name.map(|n| n.chars().take(100).collect::<String>());
    let wants = p.connection_events.unwrap_or(p.role == Role::Dashboard);
    // Recorded before the `updated` below, so a dashboard's own introduction goes to the
    // other watchers and every later change to it, queued before its later replies.
    call.ctx.clients.watch_connections(call.client, wants);
    call.client.set_identity(p.role, name);
    call.ctx
        .notices
        .connection_changed(ConnectionChange::Updated, call.client);
    reply(&Hello {
        connection_id: call.client.id(),
        protocol: PROTOCOL_VERSION,
        server: Server {
            product: PRODUCT,
            version: VERSION,
            instance_id: &call.ctx.instance_id,
        },
        connection_events: wants && call.client.scopes().contains(Scope::ProjectsRead),
    })
}

/// Whether the caller may see the hub's paths (see the module docs).
fn sees_paths(call: &Call<'_>) -> bool {
    call.client.scopes().contains(Scope::Admin)
}

fn status(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    let mut status = call.ctx.reports.status();
    if !sees_paths(call) {
        status.data_dir = None;
        status.agent_cli.path = None;
        for cli in status.agent_clis.values_mut() {
            cli.path = None;
        }
    }
    reply(&status)
}

fn health(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    let (reports, sees_paths) = (call.ctx.reports.clone(), sees_paths(call));
    later(async move {
        let mut health = reports.health().await;
        if !sees_paths {
            health.agent_cli.path = None;
            for cli in health.agent_clis.values_mut() {
                cli.path = None;
            }
        }
        Ok(health)
    })
}

/// One setting in `hub.config`.
#[derive(Serialize)]
struct Setting<'a> {
    key: &'a str,
    value: &'a Value,
    source: &'static str,
}

/// `hub.config` result.
#[derive(Serialize)]
struct ConfigResult<'a> {
    values: Vec<Setting<'a>>,
    config_file: &'a Option<PathBuf>,
    data_dir: &'a PathBuf,
    log_dir: &'a PathBuf,
}

fn config(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    let config = &*call.ctx.config;
    reply(&ConfigResult {
        values: config
            .sources
            .iter()
            .map(|(key, value, source)| Setting { key, value, source })
            .collect(),
        config_file: &config.config_file,
        data_dir: &config.data_dir,
        log_dir: &config.log_dir,
    })
}

/// `hub.connections` result.
#[derive(Serialize)]
struct Connections {
    connections: Vec<ClientInfo>,
}

/// `hub.login_link` result.
#[derive(Serialize)]
struct LoginLink {
    url: String,
}

/// `hub.revoke_sessions`: signs every dashboard session out (sign out everywhere);
/// `{revoked, closed}`. Owner only.
fn revoke_sessions(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    require_owner(call.client)?;
    let sessions = call.ctx.sessions.clone();
    later(async move {
        sessions
            .revoke_all()
            .await
            .map_err(|err| RpcError::internal("dashboard sessions", &err))
    })
}

fn login_link(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    require_owner(call.client)?;
    reply(&LoginLink {
        url: call.ctx.login.link(),
    })
}
