//! Scopes: what a client token may do, and which scope each method needs.
//!
//! A scope is one of `events` (publish and subscribe), `projects:read` (read projects,
//! their history and the connection list), `agents` (create and delete projects, run and
//! kill agents), `tasks` (workers and the task queue) and `admin` (settings, sign-in
//! links, client tokens and pairing; an `admin` token can mint any other token, so it is
//! as powerful as the owner). The owner (owner token or dashboard session) holds all of
//! them. [`required_scope`] maps a method to its scope; a method it does not know needs
//! `admin`, so a method added later is closed to tokens until it is classified.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `events`: `event.*`.
    Events,
    /// `projects:read`: project and message reads, `hub.connections`.
    ProjectsRead,
    /// `agents`: project creation and deletion, agent runs.
    Agents,
    /// `tasks`: workers and tasks.
    Tasks,
    /// `admin`: settings, sign-in links, client tokens, pairing.
    Admin,
}

impl Scope {
    /// Every scope, in wire order.
    pub const ALL: [Scope; 5] = [
        Scope::Events,
        Scope::ProjectsRead,
        Scope::Agents,
        Scope::Tasks,
        Scope::Admin,
    ];

    /// The wire name, e.g. `projects:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::ProjectsRead => "projects:read",
            Self::Agents => "agents",
            Self::Tasks => "tasks",
            Self::Admin => "admin",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// A message listing the valid names when `name` is not one.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "unknown scope {name:?}; valid scopes are {}",
                    Self::ALL.map(Scope::as_str).join(", ")
                )
            })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, a small bitset. Serialized as a JSON array of names in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope at all.
    pub const NONE: Scopes = Scopes(0);

    /// Every scope: the owner's set.
    pub fn all() -> Self {
        Self::ALL_SET
    }

    const ALL_SET: Scopes = Scopes(0b1_1111);

    /// The set holding exactly `scope`.
    pub fn only(scope: Scope) -> Self {
        Scopes(scope.bit())
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set with `scope` added.
    pub fn with(self, scope: Scope) -> Self {
        Scopes(self.0 | scope.bit())
    }

    /// The scopes in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The wire names, in wire order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// Parses a list of names; duplicates are allowed and collapse.
    ///
    /// # Errors
    /// The first unknown name's message (see [`Scope::parse`]).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        names.iter().try_fold(Scopes::NONE, |set, name| {
            Ok(set.with(Scope::parse(name.as_ref())?))
        })
    }

    /// The text stored in the database: names joined with spaces (as OAuth 2.0 writes a
    /// scope list, RFC 6749 section 3.3).
    pub fn to_storage(self) -> String {
        self.names().join(" ")
    }

    /// Reads [`Scopes::to_storage`] back; unknown names (from a newer version) are
    /// dropped, never widened.
    pub fn from_storage(text: &str) -> Self {
        text.split_whitespace()
            .filter_map(|name| Scope::parse(name).ok())
            .fold(Scopes::NONE, Scopes::with)
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Scopes::parse(&names).map_err(serde::de::Error::custom)
    }
}

/// The scope `method` needs, or `None` for the methods every authenticated client may
/// call (`hub.hello`, `hub.status`, `hub.health`). Unknown methods need `admin`.
pub fn required_scope(method: &str) -> Option<Scope> {
    let family = method.split_once('.').map_or(method, |(family, _)| family);
    match (family, method) {
        (_, "hub.hello" | "hub.status" | "hub.health") => None,
        (_, "hub.connections" | "messages.list") => Some(Scope::ProjectsRead),
        (_, "project.list" | "project.get" | "project.subscribe" | "project.unsubscribe") => {
            Some(Scope::ProjectsRead)
        }
        (_, "project.create" | "project.delete" | "project.configure") => Some(Scope::Agents),
        (_, "coordination.status") => Some(Scope::Tasks),
        (_, "hub.login_link" | "hub.revoke_sessions") => Some(Scope::Admin),
        ("event", _) => Some(Scope::Events),
        ("agent", _) => Some(Scope::Agents),
        ("worker" | "task", _) => Some(Scope::Tasks),
        _ => Some(Scope::Admin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_the_contract_scopes() {
        for (method, scope) in [
            ("hub.hello", None),
            ("hub.status", None),
            ("hub.health", None),
            ("event.publish", Some(Scope::Events)),
            ("event.subscribe", Some(Scope::Events)),
            ("project.list", Some(Scope::ProjectsRead)),
            ("messages.list", Some(Scope::ProjectsRead)),
            ("hub.connections", Some(Scope::ProjectsRead)),
            ("project.create", Some(Scope::Agents)),
            ("project.configure", Some(Scope::Agents)),
            ("agent.run", Some(Scope::Agents)),
            ("task.create", Some(Scope::Tasks)),
            ("worker.register", Some(Scope::Tasks)),
            ("coordination.status", Some(Scope::Tasks)),
            ("hub.config", Some(Scope::Admin)),
            ("hub.login_link", Some(Scope::Admin)),
            ("hub.revoke_sessions", Some(Scope::Admin)),
            ("client.create", Some(Scope::Admin)),
            ("pairing.approve", Some(Scope::Admin)),
            ("something.new", Some(Scope::Admin)),
            ("", Some(Scope::Admin)),
        ] {
            assert_eq!(required_scope(method), scope, "{method}");
        }
    }

    #[test]
    fn sets_round_trip_through_json_and_storage() {
        let set = Scopes::parse(&["tasks", "events", "events"]).unwrap();
        assert_eq!(set.names(), ["events", "tasks"]);
        assert_eq!(
            serde_json::to_value(set).unwrap(),
            serde_json::json!(["events", "tasks"])
        );
        assert_eq!(Scopes::from_storage(&set.to_storage()), set);
        assert_eq!(
            Scopes::from_storage("events future:scope"),
            Scopes::only(Scope::Events)
        );
        assert!(
            Scopes::parse(&["root"])
                .unwrap_err()
                .contains("valid scopes")
        );
        assert!(serde_json::from_value::<Scopes>(serde_json::json!(["nope"])).is_err());
        assert!(Scope::ALL.iter().all(|s| Scopes::all().contains(*s)));
        assert!(!set.contains(Scope::Admin));
    }
}
