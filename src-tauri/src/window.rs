//! The dashboard window, created on first use.
//!
//! An app started at login never opens a window unless asked, so an idle app runs no
//! WebKit process. The window loads the hub's one-time sign-in link as an external URL;
//! the hub sets its session cookie and redirects to the dashboard, whose origin
//! (`http://127.0.0.1:P`) the hub allows. Closing the window hides it: the app lives in
//! the tray, and reopening is instant.
//!
//! A [`Page`] names where the window should land: wherever it is ([`Page::Current`]) or a
//! dashboard route such as the Clients panel (`#/clients`). A fresh sign-in link carries
//! the route as its fragment, which survives the hub's redirect to `/` (RFC 9110 §10.2.2:
//! a `Location` without a fragment inherits the request's); a window already on the hub's
//! origin just changes its `location.hash`.
//!
//! The dashboard's commands (start at login, [`crate::commands`]) are granted by a
//! capability added at run time for the hub's exact origin, `http://127.0.0.1:P`, once P
//! is known ([`grant_dashboard`]): a capability file can only name a pattern such as
//! `http://127.0.0.1:*`, which would let any loopback page the window showed call them.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use tauri::ipc::CapabilityBuilder;
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindow, WebviewWindowBuilder, WindowEvent};
use tracing::{info, warn};

use crate::error::DesktopError;
use crate::notify::notify;
use crate::service::Service;

/// The window's label, which the dashboard capability names.
pub const LABEL: &str = "dashboard";

/// The identifier of the capability [`grant_dashboard`] adds.
const CAPABILITY: &str = "dashboard";

/// The permissions of the dashboard capability: the app's two commands, nothing of Tauri
/// or its plugins (the identifiers `tauri_build::AppManifest` generates in `build.rs`).
const PERMISSIONS: [&str; 2] = ["allow-autostart-get", "allow-autostart-set"];

/// Grants the dashboard capability to the window labelled [`LABEL`] on the origin of
/// `link` (`http://127.0.0.1:P`, the hub's), once per origin. Tauri has no way to remove
/// a capability, so after a resume on another port the old origin keeps its grant; the
/// window only ever loads the hub's links, and the grant is two start-at-login commands.
///
/// # Panics
/// Tauri's resolver panics on an unknown permission identifier; [`PERMISSIONS`] are the
/// app's own, so it cannot here.
fn grant_dashboard(app: &AppHandle, link: &tauri::Url) -> Result<(), DesktopError> {
    static GRANTED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let origin = link.origin().ascii_serialization();
    let mut granted = GRANTED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if granted.contains(&origin) {
        return Ok(());
    }
    let capability = PERMISSIONS.iter().fold(
        CapabilityBuilder::new(CAPABILITY)
            .remote(origin.clone())
            .local(false)
            .window(LABEL),
        |capability, permission| capability.permission(*permission),
    );
    app.add_capability(capability)
        .map_err(DesktopError::Window)?;
    info!(origin = %origin, "dashboard capability granted");
    granted.insert(origin);
    Ok(())
}

/// Where [`show_dashboard_at`] takes the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Wherever the window is (the overview in a new window).
    Current,
    /// The Clients panel: pairing requests, paired clients, live connections.
    Clients,
}

impl Page {
    /// The dashboard route (the URL fragment, without `#`), if the page names one.
    pub fn route(self) -> Option<&'static str> {
        match self {
            Self::Current => None,
            Self::Clients => Some("/clients"),
        }
    }
}

/// Shows the dashboard: creates the window, or shows and focuses the existing one. Runs in
/// the background; a failure is logged and notified.
pub fn show_dashboard(app: &AppHandle) {
    show_dashboard_at(app, Page::Current);
}

/// Shows the dashboard at `page`, as [`show_dashboard`] does.
pub fn show_dashboard_at(app: &AppHandle, page: Page) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(err) = show(&app, page).await {
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

async fn show(app: &AppHandle, page: Page) -> Result<(), DesktopError> {
    let service = app.state::<Service>().inner().clone();
    let link = service.login_link().await?;
    let mut link = tauri::Url::parse(&link).map_err(DesktopError::BadLink)?;
    link.set_fragment(page.route());
    grant_dashboard(app, &link)?;
    let window = match app.get_webview_window(LABEL) {
        Some(window) => {
            // After a resume the hub may listen on another port; the page must follow.
            let current = window.url().map_err(DesktopError::Window)?;
            if current.origin() != link.origin() {
                window.navigate(link).map_err(DesktopError::Window)?;
            } else if let Some(route) = page.route() {
                // The route is one of Page's constants; the dashboard routes on hashchange.
                let script = format!("window.location.hash = '#{route}';");
                window.eval(&script).map_err(DesktopError::Window)?;
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
