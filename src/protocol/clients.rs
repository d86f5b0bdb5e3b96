//! Wire types of client tokens and pairing: `client.*` and `pairing.*` methods and
//! their notifications (docs/protocol.md, "Clients and pairing").
//!
//! Data only, like the rest of [`crate::protocol`]; the behaviour is in
//! [`crate::app::access`].

use serde::{Deserialize, Serialize};

use crate::protocol::scopes::Scopes;

/// Method and notification names.
pub mod method {
    /// Request: the live client tokens → `{clients: [ClientView]}`.
    pub const CLIENT_LIST: &str = "client.list";
    /// Request: create a token → `{client, token}` (the token is shown this once).
    pub const CLIENT_CREATE: &str = "client.create";
    /// Request: revoke a token and close its connections → `{revoked: true}`.
    pub const CLIENT_REVOKE: &str = "client.revoke";
    /// Request: the pending pairing requests → `{requests: [RequestView]}`.
    pub const PAIRING_LIST: &str = "pairing.list";
    /// Request: approve a pairing request → `{client}`.
    pub const PAIRING_APPROVE: &str = "pairing.approve";
    /// Request: deny a pairing request → `{denied: true}`.
    pub const PAIRING_DENY: &str = "pairing.deny";

    /// Notification (to `admin` connections): `{request}`.
    pub const PAIRING_REQUESTED: &str = "pairing.requested";
    /// Notification (to `admin` connections): `{request_id, outcome}`.
    pub const PAIRING_RESOLVED: &str = "pairing.resolved";
    /// Notification (to `admin` connections): `{event, client}`.
    pub const CLIENT_CHANGED: &str = "client.changed";
}

/// How a request ended, as `pairing.resolved` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The user approved it; a token was issued.
    Approved,
    /// The user denied it.
    Denied,
    /// Nobody decided in time.
    Expired,
}

/// A pending request as `pairing.list` and `pairing.requested` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestView {
    /// `pr_` and 16 hex digits.
    pub id: String,
    /// The extension's display name.
    pub name: String,
    /// The exact Origin of the request.
    pub origin: String,
    /// The 6-digit code both sides show.
    pub code: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// The requester's peer address.
    pub address: String,
}

/// How a token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Issued by approving a pairing request; bound to the extension's Origin.
    Extension,
    /// Created by the owner (`client.create`, `semantest-hub token create`).
    Manual,
}

stored_names!(ClientKind, "client kind", { Extension => "extension", Manual => "manual" });

/// A client token as `client.list` shows it. Times are RFC 3339 UTC.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientView {
    /// `cl_` and 12 hex digits.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `extension` or `manual`.
    pub kind: ClientKind,
    /// The exact Origin it works from, or null for any (non-browser clients).
    pub origin: Option<String>,
    /// Its scopes.
    pub scopes: Scopes,
    /// When it was created.
    pub created_at: String,
    /// When it last opened a connection.
    pub last_used_at: Option<String>,
    /// The peer address of that connection.
    pub last_addr: Option<String>,
    /// Connections open with it now.
    pub connected: usize,
}

/// `client.create` params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCreateParams {
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// At least one of `events`, `projects:read`, `agents`, `tasks`, `admin`.
    pub scopes: Scopes,
    /// The exact Origin the token will work from; absent for non-browser clients.
    #[serde(default)]
    pub origin: Option<String>,
}

/// `client.revoke` params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRef {
    /// The token's id, `cl_…`.
    pub client_id: String,
}

/// `pairing.approve` params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingApproveParams {
    /// The request's id, `pr_…`.
    pub request_id: String,
    /// The scopes to grant; default `["events"]`.
    #[serde(default)]
    pub scopes: Option<Scopes>,
}

/// `pairing.deny` params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingRef {
    /// The request's id, `pr_…`.
    pub request_id: String,
}

/// `pairing.requested` params.
#[derive(Debug, Clone, Serialize)]
pub struct PairingRequested<'a> {
    /// The new request.
    pub request: &'a RequestView,
}

/// `pairing.resolved` params.
#[derive(Debug, Clone, Serialize)]
pub struct PairingResolved<'a> {
    /// The request's id.
    pub request_id: &'a str,
    /// How it ended.
    pub outcome: Outcome,
}

/// What happened to a client token, in `client.changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientEvent {
    /// Created (`client.create` or an approved pairing).
    Created,
    /// Revoked.
    Revoked,
    /// Used to open a connection.
    Used,
}

/// `client.changed` params.
#[derive(Debug, Clone, Serialize)]
pub struct ClientChanged<'a> {
    /// What happened.
    pub event: ClientEvent,
    /// The token as it is now.
    pub client: &'a ClientView,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_parse_and_reject_unknown_scopes() {
        let p: ClientCreateParams =
            serde_json::from_value(json!({"name": "ci", "scopes": ["tasks"]})).unwrap();
        assert_eq!(p.scopes.names(), ["tasks"]);
        assert!(p.origin.is_none());
        assert!(
            serde_json::from_value::<ClientCreateParams>(json!({"name": "ci", "scopes": ["root"]}))
                .is_err()
        );
        let p: PairingApproveParams =
            serde_json::from_value(json!({"request_id": "pr_1"})).unwrap();
        assert!(p.scopes.is_none());
        assert_eq!(
            serde_json::to_value(PairingResolved {
                request_id: "pr_1",
                outcome: Outcome::Expired
            })
            .unwrap(),
            json!({"request_id": "pr_1", "outcome": "expired"})
        );
    }
}
