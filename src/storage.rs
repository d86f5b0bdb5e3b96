//! Where the hub keeps things: the local SQLite file ([`sqlite`]), the PostgreSQL
//! database that the instances of a public hub share ([`postgres`]), and the owner
//! token in the OS keychain or a mode-0600 file ([`secrets`]).

pub(crate) mod postgres;
pub mod secrets;
pub(crate) mod sqlite;
