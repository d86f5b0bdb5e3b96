//! `hub.*`: introductions, status, health, configuration, connections, sign-in links.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::{Call, Handler, Reply, reply, require_owner};
use crate::clients::ClientInfo;
use crate::error::RpcError;
use crate::hub::{PRODUCT, VERSION};
use crate::protocol::{HelloParams, PROTOCOL_VERSION, method, parse_params};

pub(super) fn find(name: &str) -> Option<Handler> {
    Some(match name {
        method::HUB_HELLO => hello,
        method::HUB_STATUS => |call, _| reply(&call.hub.status_report()),
        method::HUB_HEALTH => |call, _| reply(&call.hub.health()),
        method::HUB_CONFIG => config,
        method::HUB_CONNECTIONS => |call, _| {
            reply(&Connections {
                connections: call.hub.clients().infos(),
            })
        },
        method::HUB_LOGIN_LINK => login_link,
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

fn login_link(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    require_owner(call.client)?;
    reply(&LoginLink {
        url: call.hub.login_link(),
    })
}
