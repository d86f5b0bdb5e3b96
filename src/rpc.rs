//! The method dispatcher: one JSON-RPC request in, one result or error out.
//!
//! Every method is one row of the method table, a [`Method`]: its name, the scope a
//! client token needs for it, the family public mode may switch off, whether it may come
//! as a notification, and its handler. Each method family is a file holding its rows
//! beside its handlers; [`TABLE`] lists the families. Dispatch, the scope check and the
//! public-mode check all read the row, so a new method is one row, and a new family a new
//! file and one line in [`TABLE`]. A handler takes its typed params and returns a `Serialize` result, encoded by
//! [`reply`] (an encoding failure is an `INTERNAL` error, never a `null`). Shapes are in
//! [`crate::protocol`] and `docs/protocol.md`. Handlers never panic on client input;
//! every failure is an [`RpcError`] with a stable kind.

mod agent;
mod clients;
mod coordination;
mod events;
mod hub;
mod messages;
mod mode;
mod project;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::app::access::Access;
use crate::app::contexts::{
    AgentsCtx, Contexts, EventsCtx, HubCtx, MessagesCtx, ProjectsCtx, TasksCtx,
};
use crate::config::Family;
use crate::connections::Client;
use crate::projects::feed::ReplayTicket;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::Scope;
use crate::pubsub::broker::PendingRequest;

/// What a handler answers: a result to send now, with or without work after it, or no
/// result yet.
#[derive(Debug)]
pub enum Reply {
    /// Send this result.
    Now(Value),
    /// Send this result, then replay the project's history to the caller and go live
    /// (`project.subscribe`).
    ThenReplay {
        /// The result.
        result: Value,
        /// The project.
        project_id: String,
        /// Which lines, for which subscription.
        ticket: ReplayTicket,
    },
    /// Send no response yet: `event.request` answers with the event that answers it, or
    /// `TIMEOUT`, once [`PendingRequest::answer`] completes.
    Answer(PendingRequest),
    /// The result is what this future yields (a handler that awaits the shared
    /// database); the connection awaits it before reading its next request, so
    /// responses keep their order.
    Later(Later),
}

/// A result still being computed: see [`Reply::Later`].
pub struct Later(pub Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>);

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Later(..)")
    }
}

/// One request's context: the calling connection and the narrow context of the
/// method's family (`C`, one of [`crate::app::contexts`]), never the whole hub.
pub struct Call<'a, C> {
    /// What the family may use.
    pub ctx: &'a C,
    /// The caller.
    pub client: &'a Arc<Client>,
}

/// What a handler of family context `C` is.
pub type HandlerFn<C> = fn(&Call<'_, C>, Value) -> Result<Reply, RpcError>;

/// A method's handler, by the context its family gets ([`Contexts`] holds one of each).
#[derive(Clone, Copy)]
pub enum Handler {
    /// `hub.*`.
    Hub(HandlerFn<HubCtx>),
    /// `project.*` but `project.configure`.
    Projects(HandlerFn<ProjectsCtx>),
    /// `agent.*`.
    Agents(HandlerFn<AgentsCtx>),
    /// `messages.list`.
    Messages(HandlerFn<MessagesCtx>),
    /// `worker.*`, `task.*`, `project.configure`, `coordination.status`.
    Tasks(HandlerFn<TasksCtx>),
    /// `client.*` and `pairing.*`.
    Access(HandlerFn<Access>),
    /// `event.*`.
    Events(HandlerFn<EventsCtx>),
}

impl Handler {
    /// Runs it with its family's context out of `contexts`.
    fn run(
        self,
        contexts: &Contexts,
        client: &Arc<Client>,
        params: Value,
    ) -> Result<Reply, RpcError> {
        match self {
            Self::Hub(handler) => handler(
                &Call {
                    ctx: &contexts.hub,
                    client,
                },
                params,
            ),
            Self::Projects(handler) => handler(
                &Call {
                    ctx: &contexts.projects,
                    client,
                },
                params,
            ),
            Self::Agents(handler) => handler(
                &Call {
                    ctx: &contexts.agents,
                    client,
                },
                params,
            ),
            Self::Messages(handler) => handler(
                &Call {
                    ctx: &contexts.messages,
                    client,
                },
                params,
            ),
            Self::Tasks(handler) => handler(
                &Call {
                    ctx: &contexts.tasks,
                    client,
                },
                params,
            ),
            Self::Access(handler) => handler(
                &Call {
                    ctx: &contexts.access,
                    client,
                },
                params,
            ),
            Self::Events(handler) => handler(
                &Call {
                    ctx: &contexts.events,
                    client,
                },
                params,
            ),
        }
    }
}

/// One row of the method table.
#[derive(Clone, Copy)]
pub struct Method {
    /// The wire name, e.g. `project.create` (a constant of a `protocol` `method` module).
    pub name: &'static str,
    /// The scope a client token needs to call it ([`crate::scopes`]); `None` for the few
    /// every authenticated client may call (`hub.hello`, `hub.status`, `hub.health`).
    pub scope: Option<Scope>,
    /// The family a public hub serves only when enabled ([`Family`]); `None` for the
    /// methods every mode serves.
    pub family: Option<Family>,
    /// Whether a client may also send it as a JSON-RPC notification, without an `id`:
    /// the hub runs it and sends no response (JSON-RPC 2.0 section 4.1: a notification
    /// says the client does not want the response, not that the request is void). Only
    /// the fire-and-forget ones, where a client sending at a high rate has no use for a
    /// result. Any other method sent without an `id` has no effect. Errors of either are
    /// logged and counted in `semantest_hub_rpc_notification_errors_total{kind}`, never
    /// answered.
    pub notification: bool,
    /// What runs it.
    pub handler: Handler,
}

impl Method {
    /// A row that runs only as a request.
    pub const fn new(
        name: &'static str,
        scope: Option<Scope>,
        family: Option<Family>,
        handler: Handler,
    ) -> Self {
        Self {
            name,
            scope,
            family,
            notification: false,
            handler,
        }
    }

    /// The same row, also accepted as a notification (see [`Method::notification`]).
    pub const fn also_as_notification(self) -> Self {
        Self {
            notification: true,
            ..self
        }
    }
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("family", &self.family)
            .field("notification", &self.notification)
            .finish_non_exhaustive()
    }
}

/// The method table: each family's rows, in the order `docs/protocol.md` lists them.
const TABLE: &[&[Method]] = &[
    hub::METHODS,
    project::METHODS,
    agent::METHODS,
    messages::METHODS,
    coordination::METHODS,
    clients::METHODS,
    events::METHODS,
];

/// Every method the hub serves, in table order.
pub fn methods() -> impl Iterator<Item = &'static Method> {
    TABLE.iter().flat_map(|family| family.iter())
}

/// The row of `name`, if the hub has that method.
pub fn find(name: &str) -> Option<&'static Method> {
    methods().find(|method| method.name == name)
}

/// Whether `name` may come as a notification, without an `id` ([`Method::notification`]).
pub fn runs_as_notification(name: &str) -> bool {
    find(name).is_some_and(|method| method.notification)
}

/// Handles one request from `client`.
///
/// # Errors
/// `METHOD_NOT_FOUND` for a method the hub does not have (looked up first, so that a
/// mistyped name says so whatever the token), then `FORBIDDEN` when the method is outside
/// the client's scopes (the row's [`Method::scope`]), `DISABLED` when the mode does not
/// serve the row's [`Method::family`], `INVALID_PARAMS`, or the method's own kinds.
pub fn dispatch(
    contexts: &Contexts,
    client: &Arc<Client>,
    method_name: &str,
    params: Value,
) -> Result<Reply, RpcError> {
    let row = find(method_name).ok_or_else(|| {
        RpcError::new(
            ErrorKind::MethodNotFound,
            format!("unknown method {method_name:?}"),
        )
    })?;
    if let Some(scope) = row.scope
        && !client.scopes().contains(scope)
    {
        return Err(RpcError::new(
            ErrorKind::Forbidden,
            format!("{method_name} needs the {scope} scope, which this token does not have"),
        )
        .with_details(json!({ "method": method_name, "scope": scope.as_str() })));
    }
    mode::check(&contexts.public, row)?;
    row.handler.run(contexts, client, params)
}

/// Encodes a result.
///
/// # Errors
/// `INTERNAL` if it cannot be encoded (a bug, logged).
pub fn reply<T: Serialize>(result: &T) -> Result<Reply, RpcError> {
    serde_json::to_value(result)
        .map(Reply::Now)
        .map_err(|err| RpcError::internal("encode result", &err))
}

/// A reply computed by `work` (which owns what it needs: clone the parts of the context), encoded like
/// [`reply`]'s.
///
/// # Errors
/// None here; `work`'s errors and encoding failures are the eventual response.
pub fn later<T, F>(work: F) -> Result<Reply, RpcError>
where
    T: Serialize,
    F: Future<Output = Result<T, RpcError>> + Send + 'static,
{
    let encoded = async move {
        let result = work.await?;
        serde_json::to_value(&result).map_err(|err| RpcError::internal("encode result", &err))
    };
    Ok(Reply::Later(Later(Box::pin(encoded))))
}

/// `UNAUTHORIZED` unless the caller is the owner.
///
/// # Errors
/// `UNAUTHORIZED`.
pub fn require_owner(client: &Client) -> Result<(), RpcError> {
    if client.is_owner() {
        Ok(())
    } else {
        Err(RpcError::new(
            ErrorKind::Unauthorized,
            "only the owner may do this",
        ))
    }
}

/// `PROJECT_NOT_FOUND` for `project_id`.
pub fn not_found(project_id: &str) -> RpcError {
    RpcError::new(
        ErrorKind::ProjectNotFound,
        format!("no project with id {project_id}"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::*;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn names() -> BTreeSet<&'static str> {
        methods().map(|m| m.name).collect()
    }

    /// The `.rs` files under `dir`, recursively.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every constant of every `pub mod method` under `src/`, by the first word of its
    /// doc comment: `(name, is_request)`. A constant documented as "Request" (or
    /// "Request and notification") names a method; "Notification" one the hub sends.
    fn protocol_constants() -> Vec<(String, bool)> {
        let mut files = Vec::new();
        sources(&repo().join("src"), &mut files);
        let mut out = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let Some(start) = text.find("pub mod method {") else {
                continue;
            };
            let block = &text[start..];
            let block = &block[..block.find("\n}").expect("end of the method module")];
            let mut doc: Option<String> = None;
            for line in block.lines().map(str::trim) {
                if let Some(comment) = line.strip_prefix("///") {
                    doc.get_or_insert_with(|| comment.trim().to_string());
                } else if let Some(rest) = line.strip_prefix("pub const ") {
                    let name = rest.split('"').nth(1).expect("a string constant");
                    let doc = doc
                        .take()
                        .unwrap_or_else(|| panic!("{}: {name} has no doc comment", file.display()));
                    let request = doc.starts_with("Request");
                    assert!(
                        request || doc.starts_with("Notification"),
                        "{}: {name}'s doc must start with Request or Notification",
                        file.display()
                    );
                    out.push((name.to_string(), request));
                } else {
                    doc = None;
                }
            }
        }
        out
    }

    #[test]
    fn the_table_names_each_method_once() {
        let mut seen = BTreeSet::new();
        for method in methods() {
            assert!(
                seen.insert(method.name),
                "{} is twice in the table",
                method.name
            );
            assert_eq!(find(method.name).unwrap().name, method.name);
        }
        assert_eq!(seen.len(), 56);
        assert!(find("nope").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn every_request_of_the_protocol_is_in_the_table_and_no_notification_is() {
        let constants = protocol_constants();
        assert!(constants.len() > 50, "found only {constants:?}");
        let requests: BTreeSet<&str> = constants
            .iter()
            .filter(|(_, request)| *request)
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(requests, names(), "requests of the protocol modules");
        for (name, request) in &constants {
            if !request {
                // `coordination.status` is both; every other notification is not a method.
                assert!(
                    find(name).is_none() || requests.contains(name.as_str()),
                    "{name} is a notification but the table serves it"
                );
            }
        }
    }

    #[test]
    fn the_table_is_the_schemas_list_of_requests() {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(repo().join("docs/protocol.schema.json")).unwrap(),
        )
        .unwrap();
        let schema_requests: BTreeSet<&str> = schema["$defs"]["AnyRequest"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|branch| branch["properties"]["method"]["const"].as_str().unwrap())
            .collect();
        assert_eq!(schema_requests, names());
    }

    #[test]
    fn rows_keep_the_contract_scopes_families_and_notifications() {
        use Family::{Agents, DashboardLogin, Projects, Tasks};
        use Scope::{Admin, Events, ProjectsRead};
        let tasks = Some(Scope::Tasks);
        for (name, scope, family) in [
            ("hub.hello", None, None),
            ("hub.status", None, None),
            ("hub.health", None, None),
            ("hub.config", Some(Admin), None),
            ("hub.connections", Some(ProjectsRead), None),
            ("hub.login_link", Some(Admin), Some(DashboardLogin)),
            ("hub.revoke_sessions", Some(Admin), Some(DashboardLogin)),
            ("project.create", Some(Scope::Agents), Some(Projects)),
            ("project.list", Some(ProjectsRead), Some(Projects)),
            ("project.get", Some(ProjectsRead), Some(Projects)),
            ("project.delete", Some(Scope::Agents), Some(Projects)),
            ("project.subscribe", Some(ProjectsRead), Some(Projects)),
            ("project.unsubscribe", Some(ProjectsRead), Some(Projects)),
            ("agent.run", Some(Scope::Agents), Some(Agents)),
            ("agent.kill", Some(Scope::Agents), Some(Agents)),
            ("agent.new_session", Some(Scope::Agents), Some(Agents)),
            ("agent.run_worktree", Some(Scope::Agents), Some(Agents)),
            ("agent.run_merge", Some(Scope::Agents), Some(Agents)),
            ("agent.run_discard", Some(Scope::Agents), Some(Agents)),
            ("messages.list", Some(ProjectsRead), Some(Projects)),
            ("project.runs", Some(ProjectsRead), Some(Projects)),
            ("worker.register", tasks, Some(Tasks)),
            ("worker.heartbeat", tasks, Some(Tasks)),
            ("worker.list", tasks, Some(Tasks)),
            ("task.create", tasks, Some(Tasks)),
            ("task.list", tasks, Some(Tasks)),
            ("task.get", tasks, Some(Tasks)),
            ("task.cancel", tasks, Some(Tasks)),
            ("task.complete", tasks, Some(Tasks)),
            ("task.fail", tasks, Some(Tasks)),
            ("task.merge", tasks, Some(Tasks)),
            ("task.discard", tasks, Some(Tasks)),
            ("project.configure", Some(Scope::Agents), Some(Tasks)),
            ("coordination.status", tasks, Some(Tasks)),
            ("client.list", Some(Admin), None),
            ("client.create", Some(Admin), None),
            ("client.revoke", Some(Admin), None),
            ("pairing.list", Some(Admin), None),
            ("pairing.approve", Some(Admin), None),
            ("pairing.deny", Some(Admin), None),
            ("event.subscribe", Some(Events), None),
            ("event.unsubscribe", Some(Events), None),
            ("event.publish", Some(Events), None),
            ("event.request", Some(Events), None),
        ] {
            let row = find(name).unwrap_or_else(|| panic!("{name} is not in the table"));
            assert_eq!(row.scope, scope, "{name}'s scope");
            assert_eq!(row.family, family, "{name}'s family");
        }
        let notifications: Vec<&str> = methods()
            .filter(|m| m.notification)
            .map(|m| m.name)
            .collect();
        assert_eq!(notifications, ["worker.heartbeat", "event.publish"]);
        assert!(runs_as_notification("event.publish"));
        assert!(!runs_as_notification("event.request"));
        assert!(!runs_as_notification("nope"));
    }

    /// The rows of the Markdown table that follows `heading` in `text`: cells, trimmed.
    fn markdown_table<'a>(text: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
        let start = text
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("no {heading} in docs/protocol.md"));
        text[start..]
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
            .map(|line| line.trim_matches('|').split('|').map(str::trim).collect())
            .collect()
    }

    /// The `` `names` `` in a cell, each ending at its closing backtick.
    fn code_spans(cell: &str) -> Vec<&str> {
        cell.split('`').skip(1).step_by(2).collect()
    }

    #[test]
    fn the_protocol_reference_lists_every_method_with_its_scope() {
        let text = std::fs::read_to_string(repo().join("docs/protocol.md")).unwrap();
        let listed: BTreeSet<&str> = markdown_table(&text, "## Methods")
            .iter()
            .flat_map(|row| code_spans(row[0]))
            .collect();
        assert_eq!(listed, names(), "the table of docs/protocol.md ## Methods");

        // `### Scopes`: each method's scope, by name or by `family.*`; `admin` also says
        // "any method not listed here", which must then be no method at all.
        let mut by_name: BTreeMap<&str, Option<Scope>> = BTreeMap::new();
        let mut by_prefix: BTreeMap<&str, Option<Scope>> = BTreeMap::new();
        for row in markdown_table(&text, "### Scopes") {
            let scope = match row[0] {
                "(none needed)" => None,
                name => Some(Scope::parse(name.trim_matches('`')).unwrap()),
            };
            for span in code_spans(row[1]) {
                match span.strip_suffix(".*") {
                    Some(prefix) => by_prefix.insert(prefix, scope),
                    None => by_name.insert(span, scope),
                };
            }
        }
        for method in methods() {
            let prefix = method.name.split('.').next().unwrap();
            let documented = by_name
                .get(method.name)
                .or_else(|| by_prefix.get(prefix))
                .unwrap_or_else(|| panic!("### Scopes does not list {}", method.name));
            assert_eq!(
                *documented, method.scope,
                "{}'s scope in ### Scopes",
                method.name
            );
        }
        for name in by_name.keys() {
            assert!(find(name).is_some(), "### Scopes lists {name}, no method");
        }
    }
}
