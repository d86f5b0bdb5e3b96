//! `hub.*`: introductions, status, health, configuration, connections, sign-in links,
//! dashboard sessions.
//!
//! `hub.status` and `hub.health` need no scope (the SDK's keepalive uses `hub.status`),
//! so they show the data directory and the agent CLI's path, which name the user's home,
//! only to callers with `admin` (the owner, or a token as powerful): `data_dir` is left
//! out and `agent_cli.path` is `null` for everyone else.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::{Call, Handler, Reply, reply, require_owner};
use crate::app::hub::{PRODUCT, VERSION};
use crate::connections::ClientInfo;
use crate::protocol::error::RpcError;
use crate::protocol::scopes::Scope;
use crate::protocol::{HelloParams, PROTOCOL_VERSION, method, parse_params};

pub(super) fn find(name: &str) -> Option<Handler> {
    Some(match name {
        method::HUB_HELLO => hello,
        method::HUB_STATUS => status,
        method::HUB_HEALTH => health,
        method::HUB_CONFIG => config,
        method::HUB_CONNECTIONS => |call, _| {
            reply(&Connections {
                connections: call.hub.clients().infos(),
            })
        },
        method::HUB_LOGIN_LINK => login_link,
        method::HUB_REVOKE_SESSIONS => revoke_sessions,
        _ => return None,
    })
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
}

fn hello(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: HelloParams = parse_params(params)?;
    let name = p.name.map(|n| n.chars().take(100).collect::<String>());
    call.client.set_identity(p.role, name);
    call.hub.clients().broadcast_change("updated", call.client);
    reply(&Hello {
        connection_id: call.client.id(),
        protocol: PROTOCOL_VERSION,
        server: Server {
            product: PRODUCT,
            version: VERSION,
            instance_id: call.hub.instance_id(),
        },
    })
}

/// Whether the caller may see the hub's paths (see the module docs).
fn sees_paths(call: &Call<'_>) -> bool {
    call.client.scopes().contains(Scope::Admin)
}

fn status(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    let mut status = call.hub.status_report();
    if !sees_paths(call) {
        status.data_dir = None;
        status.agent_cli.path = None;
    }
    reply(&status)
}

fn health(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    let mut health = call.hub.health();
    if !sees_paths(call) {
        health.agent_cli.path = None;
    }
    reply(&health)
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
    let config = call.hub.config();
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
    let revoked = crate::app::sessions::revoke_all(call.hub)
        .map_err(|err| RpcError::internal("dashboard sessions", &err))?;
    reply(&revoked)
}

fn login_link(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    require_owner(call.client)?;
    reply(&LoginLink {
        url: call.hub.login_link(),
    })
}
