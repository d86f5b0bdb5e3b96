//! `semantest-hub mcp`: the task queue's MCP tools ([`crate::mcp`]) on stdin and stdout,
//! for an agent CLI to start from its MCP configuration.
//!
//! The server is a client of the running hub, found and verified as every command finds
//! it (the runtime file, then the signature proof before the token is sent), with the
//! owner token or the token in `SEMANTEST_HUB_TOKEN` and that token's scopes. The
//! configuration is read again at each connection, so the server starts without a hub
//! and finds one started, restarted or moved to another port later.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use rmcp::ServiceExt;
use serde_json::Value;

use super::client::{ClientError, HubClient};
use super::tasks::Credentials;
use crate::config::{LoadedConfig, SecretStoreKind};
use crate::mcp::{BoxFuture, Caller, Conn, ConnError, Connector, Coordination};

impl From<ClientError> for ConnError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Rpc {
                kind,
                message,
                data,
            } => Self::Rpc {
                kind,
                message,
                data,
            },
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl Conn for HubClient {
    fn request<'a>(
        &'a mut self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, ConnError>> {
        Box::pin(async move { Ok(HubClient::request(self, method, params).await?) })
    }

    fn next_notification(&mut self) -> BoxFuture<'_, Result<Value, ConnError>> {
        Box::pin(async move { Ok(HubClient::next_notification(self).await?) })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(HubClient::close(*self))
    }
}

/// Connections with the credentials of [`Credentials::from_env_or_owner`].
struct StdioConnector {
    loaded: LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
}

impl Connector for StdioConnector {
    fn connect<'a>(
        &'a self,
        _caller: Option<&'a Caller>,
        role: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Conn>, ConnError>> {
        Box::pin(async move {
            let creds = Credentials::from_env_or_owner(&self.loaded, self.explicit_store)
                .await
                .map_err(|err| match err.downcast::<ClientError>() {
                    Ok(client) => ConnError::from(client),
                    Err(other) => ConnError::Unavailable(format!("{other:#}")),
                })?;
            let client = creds.connect(role, name).await?;
            Ok(Box::new(client) as Box<dyn Conn>)
        })
    }
}

/// Serves the tools on stdin and stdout until the client closes stdin.
///
/// # Errors
/// When the MCP session cannot start (a broken stdio).
pub(super) async fn serve(
    loaded: LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
) -> Result<ExitCode> {
    let connector = StdioConnector {
        loaded,
        explicit_store,
    };
    let service = Coordination::new(Arc::new(connector))
        .serve(rmcp::transport::stdio())
        .await?;
    service.waiting().await?;
    Ok(ExitCode::SUCCESS)
}
