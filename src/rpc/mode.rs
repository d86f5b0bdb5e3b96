//! Method families a hub does not serve in its mode: on a public hub, agents, projects
//! and tasks unless enabled, and dashboard sign-in always ([`crate::config::Family`]).

use serde_json::json;

use crate::app::hub::Hub;
use crate::config::Family;
use crate::protocol::error::{ErrorKind, RpcError};

/// `DISABLED` for a method whose family this hub does not serve.
///
/// # Errors
/// `DISABLED`, with `data.method` and `data.setting` (the key that enables it).
pub(super) fn check(hub: &Hub, method_name: &str) -> Result<(), RpcError> {
    match Family::of(method_name) {
        Some(family) if !hub.config().config.public.serves(family) => Err(RpcError::new(
            ErrorKind::Disabled,
            format!("{method_name} is disabled on this public hub"),
        )
        .with_details(json!({"method": method_name, "setting": family.setting()}))),
        _ => Ok(()),
    }
}
