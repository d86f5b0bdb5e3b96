//! The dashboard window, created on first use.
//!
//! An app started at login never opens a window unless asked, so an idle app runs no
//! WebKit process. The window loads the hub's one-time sign-in link as an external URL;
//! the hub sets its session cookie and redirects to the dashboard, whose origin
//! (`http://127.0.0.1:P`) the hub allows. Closing the window hides it: the app lives in
//! the tray, and reopening is instant.
//!
//! A [`Page`] names where the window should land: wherever it is ([`Page::Current`]) or a
//! dashboard route such as the Clients panel (`#/clients`) or one pending approval on its
//! project's page (`#/projects/<project id>/approval/<approval id>`). A fresh sign-in link carries
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Wherever the window is (the overview in a new window).
    Current,
    /// The Clients panel: pairing requests, paired clients, live connections.
    Clients,
    /// A pending approval, focused on its project's page.
    Approval {
        /// The project (a UUID).
        project_id: String,
        /// The approval (`ap_…`).
        approval_id: String,
    },
}

/// Whether `id` is made only of the characters of the hub's ids (UUIDs, `ap_…`), so it
/// can go into a route and into the script that sets it without escaping.
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Page {
    /// The dashboard route (the URL fragment, without `#`), if the page names one. An
    /// approval whose ids are not plain hub ids lands on the projects list instead.
    pub fn route(&self) -> Option<String> {
        match self {
            Self::Current => None,
            Self::Clients => Some("/clients".into()),
            Self::Approval {
                project_id,
                approval_id,
            } if plain_id(project_id) && plain_id(approval_id) => {
                Some(format!("/projects/{project_id}/approval/{approval_id}"))
            }
            Self::Approval { .. } => Some("/projects".into()),
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
    let route = page.route();
    link.set_fragment(route.as_deref());
    grant_dashboard(app, &link)?;
    let window = match app.get_webview_window(LABEL) {
        Some(window) => {
            // After a resume the hub may listen on another port; the page must follow.
            let current = window.url().map_err(DesktopError::Window)?;
            if current.origin() != link.origin() {
                window.navigate(link).map_err(DesktopError::Window)?;
            } else if let Some(route) = route {
                // The route is one of Page's constants or made of plain ids (`plain_id`);
                // the dashboard routes on hashchange.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_page_routes_to_its_project_and_id() {
        let page = Page::Approval {
            project_id: "01a1fc9d-c134-7624-9b77-0c07587770e3".into(),
            approval_id: "ap_019af2c1d4a07c11a2b3c4d5e6f70812".into(),
        };
        assert_eq!(
            page.route().as_deref(),
            Some(
                "/projects/01a1fc9d-c134-7624-9b77-0c07587770e3/approval/ap_019af2c1d4a07c11a2b3c4d5e6f70812"
            )
        );
        assert_eq!(Page::Clients.route().as_deref(), Some("/clients"));
        assert_eq!(Page::Current.route(), None);
    }

    #[test]
    fn an_id_that_could_break_out_of_the_script_lands_on_the_projects_list() {
        for bad in ["x';alert(1);'", "a/b", "", "a b", "ap_\u{e9}"] {
            let page = Page::Approval {
                project_id: "p1".into(),
                approval_id: bad.into(),
            };
            assert_eq!(page.route().as_deref(), Some("/projects"), "{bad:?}");
        }
    }
}
