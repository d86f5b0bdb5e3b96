//! Start at login, through tauri-plugin-autostart: a LaunchAgent on macOS
//! (`~/Library/LaunchAgents/Semantest Hub.plist`), an XDG autostart entry on Linux
//! (`~/.config/autostart/Semantest Hub.desktop`). Either starts the app with
//! [`HIDDEN_FLAG`], so it comes up in the tray with no window.
//!
//! The first run of a packaged app turns it on; after that it is the user's choice, made
//! in the tray's check item or the dashboard's settings (the commands below). Both paths
//! go through [`set`], so the check item always shows the real state.

use std::path::Path;

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Manager, Wry};
use tauri_plugin_autostart::ManagerExt;
use tracing::{info, warn};

use crate::error::DesktopError;
use crate::notify::notify;
use crate::tray::Tray;

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

/// Turns start at login on or off, updates the tray's check item, and returns the state
/// now in force.
///
/// # Errors
/// [`DesktopError::Autostart`] when the platform entry cannot be written or read.
pub fn set(app: &AppHandle, enabled: bool) -> Result<bool, DesktopError> {
    let manager = app.autolaunch();
    let result = if enabled {
        manager.enable()
    } else {
        manager.disable()
    };
    let applied = result.map_err(|err| DesktopError::Autostart {
        action: if enabled { "enable" } else { "disable" },
        reason: err.to_string(),
    });
    // Show the real state even when the change failed half-way.
    let now = is_enabled(app);
    if let (Ok(now), Some(tray)) = (&now, app.try_state::<Tray>()) {
        tray.set_start_at_login(*now);
    }
    applied?;
    now
}

/// Flips start at login from the tray menu. The check item toggles itself when clicked,
/// so the new state is the opposite of the real one, not of the item's.
pub fn toggle(app: &AppHandle) {
    let result = is_enabled(app).and_then(|on| set(app, !on));
    match result {
        Ok(on) => info!(start_at_login = on, "start at login changed"),
        Err(err) => {
            warn!(error = %err, "cannot change start at login");
            notify(app, "Semantest Hub", &err.to_string());
        }
    }
}

/// `autostart_get`: whether start at login is on. For the dashboard's settings view:
/// `window.__TAURI__.core.invoke('autostart_get')` resolves to a boolean.
///
/// # Errors
/// A string, when the platform entry cannot be read.
#[tauri::command]
pub async fn autostart_get(app: AppHandle) -> Result<bool, DesktopError> {
    is_enabled(&app)
}

/// `autostart_set`: turns start at login on or off and resolves to the state now in force:
/// `window.__TAURI__.core.invoke('autostart_set', { enabled: true })`.
///
/// # Errors
/// A string, when the platform entry cannot be written.
#[tauri::command]
pub async fn autostart_set(app: AppHandle, enabled: bool) -> Result<bool, DesktopError> {
    set(&app, enabled)
}
