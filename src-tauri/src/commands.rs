//! The app's own commands, which the dashboard calls in the app's window through
//! `window.__TAURI__.core.invoke` (granted to the window labelled `dashboard` on the hub's
//! origin by the capability [`crate::window`] adds at run time; declared to the ACL in
//! `build.rs`).
//!
//! | command | arguments | resolves to |
//! |---|---|---|
//! | `autostart_get` | — | whether start at login is on |
//! | `autostart_set` | `{enabled: bool}` | the state now in force |
//!
//! Errors reject with a string ([`DesktopError`] serializes as its message). Both keep the
//! tray's Start at login check mark in step, which is why they live here and not in
//! [`crate::autostart`]: that module knows nothing of the tray.

use tauri::{AppHandle, Manager};

use crate::autostart;
use crate::error::DesktopError;
use crate::tray::Tray;

/// `autostart_get`: whether start at login is on.
///
/// # Errors
/// [`DesktopError::Autostart`] (a string) when the platform entry cannot be read.
#[tauri::command]
pub async fn autostart_get(app: AppHandle) -> Result<bool, DesktopError> {
    autostart::is_enabled(&app)
}

/// `autostart_set {enabled}`: turns start at login on or off, sets the tray's check mark,
/// and resolves to the state now in force.
///
/// # Errors
/// [`DesktopError::Autostart`] (a string) when the platform entry cannot be written.
#[tauri::command]
pub async fn autostart_set(app: AppHandle, enabled: bool) -> Result<bool, DesktopError> {
    let change = autostart::set(&app, enabled);
    if let Some(tray) = app.try_state::<Tray>() {
        tray.show_start_at_login(&app, &change);
    }
    change
}
