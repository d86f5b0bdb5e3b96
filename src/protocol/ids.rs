//! Ids as types of their own, so that one kind of id cannot be passed where another is
//! expected: `release_holder(worker_id, reason, task_id)` with the two ids swapped does
//! not compile.
//!
//! Each is a `String` on the wire and in the store (`#[serde(transparent)]`): the JSON
//! shapes do not change. They are built from the strings the edges hand over
//! ([`From<String>`], [`From<&str>`]) and read back with `as_str` or [`std::fmt::Display`].
//!
//! ```
//! use semantest_hub::protocol::ids::{TaskId, WorkerId};
//! fn release(worker_id: Option<&WorkerId>, reason: &str, task_id: &TaskId) {}
//! let (worker, task) = (WorkerId::from("w1"), TaskId::from("t1"));
//! release(Some(&worker), "cancelled", &task);
//! assert_eq!(task, "t1");
//! assert_eq!(serde_json::to_string(&task).unwrap(), r#""t1""#);
//! ```
//!
//! ```compile_fail,E0308
//! use semantest_hub::protocol::ids::{TaskId, WorkerId};
//! fn release(worker_id: Option<&WorkerId>, reason: &str, task_id: &TaskId) {}
//! let (worker, task) = (WorkerId::from("w1"), TaskId::from("t1"));
//! release(Some(&task), "cancelled", &worker);
//! ```

use serde::{Deserialize, Serialize};

/// A newtype over `String` for one kind of id, with the conversions the edges need.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// As the text's, so logs and messages read as they did with a bare `String`.
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id! {
    /// A task's id: given by the coordinator that creates it, unique across the hub.
    TaskId
}

string_id! {
    /// A worker's id: a UUID for a client worker, `agent-<slot>@<project id>` for an
    /// agent worker.
    WorkerId
}
