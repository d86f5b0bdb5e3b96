//! Helpers with no knowledge of the hub's domain: timestamps, rate limiters on one
//! shared clock, private (0700/0600) file modes, the tracing subscriber, resource
//! sampling and the Prometheus metrics. The bottom layer: it uses nothing in the crate
//! outside itself.

pub(crate) mod file_modes;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod rate_limit;
pub(crate) mod timestamp;
