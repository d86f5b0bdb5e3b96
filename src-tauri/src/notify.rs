//! Desktop notifications: hub errors and finished task batches now, pairing requests later.
//!
//! Linux sends them to the freedesktop notification server over D-Bus, macOS to the
//! Notification Center. A desktop without a notification server is not an error worth more
//! than a log line: the tray shows the same state.

use tauri::AppHandle;
use tauri_plugin_notification::NotificationExt;
use tracing::{info, warn};

/// Shows a notification with `title` and `body`. Returns at once; delivery happens in the
/// background and a failure is logged.
pub fn notify(app: &AppHandle, title: &str, body: &str) {
    info!(title, body, "notification");
    if let Err(err) = app.notification().builder().title(title).body(body).show() {
        warn!(error = %err, title, "cannot show a notification");
    }
}
