//! The dashboard window, created on first use.
//!
//! An app started at login never opens a window unless asked, so an idle app runs no
//! WebKit process. The window loads the hub's one-time sign-in link as an external URL;
//! the hub sets its session cookie and redirects to the dashboard, whose origin
//! (`http://127.0.0.1:P`) the hub allows. Closing the window hides it: the app lives in
//! the tray, and reopening is instant.

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindow, WebviewWindowBuilder, WindowEvent};
use tracing::{info, warn};

use crate::error::DesktopError;
use crate::notify::notify;
use crate::service::Service;

/// The window's label, which the dashboard capability names.
pub const LABEL: &str = "dashboard";

/// Shows the dashboard: creates the window, or shows and focuses the existing one. Runs in
/// the background; a failure is logged and notified.
pub fn show_dashboard(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(err) = show(&app).await {
            warn!(error = %err, "cannot show the dashboard");
            let body = match err {
                DesktopError::NotRunning => {
                    "The hub is not running. Choose Resume server in the tray menu first.".into()
                }
                other => other.to_string(),
            };
            notify(&app, "Semantest Hub", &body);
        }
    });
}

async fn show(app: &AppHandle) -> Result<(), DesktopError> {
    let service = app.state::<Service>().inner().clone();
    let link = service.login_link().await?;
    let link = tauri::Url::parse(&link).map_err(DesktopError::BadLink)?;
    let window = match app.get_webview_window(LABEL) {
        Some(window) => {
            // After a resume the hub may listen on another port; the page must follow.
            let current = window.url().map_err(DesktopError::Window)?;
            if current.origin() != link.origin() {
                window.navigate(link).map_err(DesktopError::Window)?;
            }
            window
        }
        None => create(app, link)?,
    };
    window.show().map_err(DesktopError::Window)?;
    window.unminimize().map_err(DesktopError::Window)?;
    window.set_focus().map_err(DesktopError::Window)?;
    Ok(())
}

fn create(app: &AppHandle, link: tauri::Url) -> Result<WebviewWindow, DesktopError> {
    info!("opening the dashboard window");
    let window = WebviewWindowBuilder::new(app, LABEL, WebviewUrl::External(link))
        .title("Semantest Hub")
        .inner_size(1200.0, 800.0)
        .min_inner_size(640.0, 420.0)
        .center()
        .build()
        .map_err(DesktopError::Window)?;
    let handle = window.clone();
    window.on_window_event(move |event| {
        if let WindowEvent::CloseRequested { api, .. } = event {
            api.prevent_close();
            if let Err(err) = handle.hide() {
                warn!(error = %err, "cannot hide the dashboard window");
            }
        }
    });
    Ok(window)
}
