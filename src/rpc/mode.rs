//! Method families a hub does not serve in its mode: on a public hub, agents, projects
//! and tasks unless enabled, and dashboard sign-in always ([`crate::config::Family`]).

use serde_json::json;

use super::Method;
use crate::config::PublicConfig;
use crate::protocol::error::{ErrorKind, RpcError};

/// `DISABLED` for a method whose family this hub does not serve.
///
/// # Errors
/// `DISABLED`, with `data.method` and `data.setting` (the key that enables it).
pub(super) fn check(public: &PublicConfig, method: &Method) -> Result<(), RpcError> {
    match method.family {
        Some(family) if !public.serves(family) => Err(RpcError::new(
            ErrorKind::Disabled,
            format!("{} is disabled on this public hub", method.name),
        )
        .with_details(json!({"method": method.name, "setting": family.setting()}))),
        _ => Ok(()),
    }
}
