//! Who may talk to the hub: the Host and Origin allowlists, token hashing and the
//! challenge proof ([`security`]), the live client tokens by hash with their paired
//! origins ([`tokens`]), and pending pairing requests ([`pairing`]); each over SQLite
//! or the shared PostgreSQL database. Their effects on connections (closing a revoked
//! token's sockets, announcing) belong to [`crate::app::access`], above.

pub(crate) mod pairing;
pub mod security;
pub(crate) mod tokens;
