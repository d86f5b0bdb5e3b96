//! The desktop shell's errors.
//!
//! Commands return them to the dashboard, where Tauri serializes them; like the plugins of
//! tauri-apps/plugins-workspace, they serialize as their message, a plain string.

use serde::{Serialize, Serializer};

/// Something the desktop shell could not do.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// The hub is paused, failed to start, or is shutting down.
    #[error("the hub is not running")]
    NotRunning,
    /// Start at login could not be read or changed.
    #[error("cannot {action} start at login: {reason}")]
    Autostart {
        /// `read`, `enable` or `disable`.
        action: &'static str,
        /// The platform error, as the autostart plugin reports it (a string).
        reason: String,
    },
    /// The dashboard window could not be created or shown.
    #[error("cannot show the dashboard window")]
    Window(#[source] tauri::Error),
    /// The login link the hub produced is not a URL (a bug).
    #[error("the hub's dashboard link is not a valid URL")]
    BadLink(#[source] url::ParseError),
}

impl Serialize for DesktopError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}
