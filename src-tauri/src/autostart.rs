//! Start at login, through tauri-plugin-autostart: a LaunchAgent on macOS
//! (`~/Library/LaunchAgents/Semantest Hub.plist`), an XDG autostart entry on Linux
//! (`~/.config/autostart/Semantest Hub.desktop`). Either starts the app with
//! [`HIDDEN_FLAG`], so it comes up in the tray with no window.
//!
//! The first run of a packaged app turns it on; after that it is the user's choice, made
//! in the tray's check item or the dashboard's settings (`crate::commands`). Both paths
//! go through [`set`], which returns the state now in force; the caller shows it (the
//! tray's menu handler sets the check mark). This module knows nothing of the tray.

use std::path::Path;

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Wry};
use tauri_plugin_autostart::ManagerExt;
use tracing::{info, warn};

use crate::error::DesktopError;

/// The argument that starts the app in the tray, without a window.
pub const HIDDEN_FLAG: &str = "--hidden";

/// The file in the data directory that records that the first run's default was applied.
const FIRST_RUN_MARKER: &str = "desktop-first-run";

/// The autostart plugin, launching the app with [`HIDDEN_FLAG`].
pub fn plugin() -> TauriPlugin<Wry> {
    // The builder defaults to a LaunchAgent on macOS, which needs no Apple Events permission.
    tauri_plugin_autostart::Builder::new()
        .arg(HIDDEN_FLAG)
        .build()
}

/// On the first run, turns start at login on and records that it did, so that a user who
/// turns it off later is not overruled. Skipped in development builds (`cargo run`), which
/// would otherwise register a binary under `target/`.
pub fn first_run(app: &AppHandle, data_dir: &Path) {
    let marker = data_dir.join(FIRST_RUN_MARKER);
    if marker.exists() {
        return;
    }
    if tauri::is_dev() {
        info!("development build: start at login is not turned on automatically");
        return;
    }
    match set(app, true) {
        Ok(_) => {
            info!("first run: start at login turned on");
            if let Err(err) = write_marker(&marker) {
                warn!(error = %err, path = %marker.display(), "cannot record the first run");
            }
        }
        Err(err) => warn!(error = %err, "first run: cannot turn start at login on"),
    }
}

fn write_marker(marker: &Path) -> std::io::Result<()> {
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(marker, "start at login was turned on at the first run\n")
}

/// Whether start at login is on.
///
/// # Errors
/// [`DesktopError::Autostart`] when the platform entry cannot be read.
pub fn is_enabled(app: &AppHandle) -> Result<bool, DesktopError> {
    app.autolaunch()
        .is_enabled()
        .map_err(|err| DesktopError::Autostart {
            action: "read",
            reason: err.to_string(),
        })
}

/// Turns start at login on or off and returns the state now in force, read back from the
/// platform entry.
///
/// # Errors
/// [`DesktopError::Autostart`] when the platform entry cannot be written or read. A change
/// may fail half-way; callers that show the state read it again with [`is_enabled`].
pub fn set(app: &AppHandle, enabled: bool) -> Result<bool, DesktopError> {
    let manager = app.autolaunch();
    let result = if enabled {
        manager.enable()
    } else {
        manager.disable()
    };
    result.map_err(|err| DesktopError::Autostart {
        action: if enabled { "enable" } else { "disable" },
        reason: err.to_string(),
    })?;
    is_enabled(app)
}

/// Flips start at login (the tray's check item) and returns the state now in force. The
/// check item toggles itself when clicked, so the new state is the opposite of the real
/// one, not of the item's.
///
/// # Errors
/// As [`set`] and [`is_enabled`].
pub fn toggle(app: &AppHandle) -> Result<bool, DesktopError> {
    let on = is_enabled(app)?;
    let now = set(app, !on)?;
    info!(start_at_login = now, "start at login changed");
    Ok(now)
}
