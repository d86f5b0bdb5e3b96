//! The tray icon: its image, tooltip and menu show the hub's state, and the menu holds every
//! action of the app.
//!
//! Menu (ids in [`ids`]):
//!
//! ```text
//! Running on port 3003 · 2 clients · 1 agent running   (disabled status line)
//! ─────────────
//! Open dashboard
//! ✓ Start at login
//! Pause server | Resume server
//! ─────────────
//! Quit
//! ```
//!
//! On Linux the tray is an AppIndicator (StatusNotifierItem): it delivers no clicks on the
//! icon and shows no tooltip, so everything is in the menu, and the status line stands in
//! for the tooltip. The icon has one variant per state, rendered by `icons/generate.sh`.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Wry};
use tracing::warn;

use crate::autostart;
use crate::error::DesktopError;
use crate::notify::notify;
use crate::service::{HubState, Service};

/// Menu item ids, matched in [`on_menu_event`].
pub mod ids {
    /// The disabled status line.
    pub const STATUS: &str = "status";
    /// Open dashboard.
    pub const OPEN_DASHBOARD: &str = "open-dashboard";
    /// Start at login (a check item).
    pub const START_AT_LOGIN: &str = "start-at-login";
    /// Pause server / Resume server.
    pub const PAUSE_RESUME: &str = "pause-resume";
    /// Quit.
    pub const QUIT: &str = "quit";
}

/// The tray icon's id.
pub const TRAY_ID: &str = "semantest-hub";

/// The tray icon and the menu items that change with the state. Managed as app state.
pub struct Tray {
    icon: TrayIcon<Wry>,
    status: MenuItem<Wry>,
    open_dashboard: MenuItem<Wry>,
    start_at_login: CheckMenuItem<Wry>,
    pause_resume: MenuItem<Wry>,
    images: Images,
}

/// The decoded icon variants.
struct Images {
    running: Image<'static>,
    busy: Image<'static>,
    paused: Image<'static>,
    error: Image<'static>,
}

impl Images {
    fn load() -> tauri::Result<Self> {
        Ok(Self {
            running: Image::from_bytes(include_bytes!("../../icons/tray-running.png"))?,
            busy: Image::from_bytes(include_bytes!("../../icons/tray-busy.png"))?,
            paused: Image::from_bytes(include_bytes!("../../icons/tray-paused.png"))?,
            error: Image::from_bytes(include_bytes!("../../icons/tray-error.png"))?,
        })
    }
}

impl Tray {
    /// Builds the tray icon and its menu, showing `state`.
    ///
    /// # Errors
    /// When the platform tray or menu cannot be created (on Linux: no AppIndicator library).
    pub fn create(app: &AppHandle, state: &HubState, start_at_login: bool) -> tauri::Result<Self> {
        let status = MenuItem::with_id(app, ids::STATUS, status_line(state), false, None::<&str>)?;
        let open_dashboard = MenuItem::with_id(
            app,
            ids::OPEN_DASHBOARD,
            "Open dashboard",
            true,
            None::<&str>,
        )?;
        let start_at_login = CheckMenuItem::with_id(
            app,
            ids::START_AT_LOGIN,
            "Start at login",
            true,
            start_at_login,
            None::<&str>,
        )?;
        let pause_resume =
            MenuItem::with_id(app, ids::PAUSE_RESUME, "Pause server", true, None::<&str>)?;
        let quit = MenuItem::with_id(app, ids::QUIT, "Quit", true, None::<&str>)?;
        let menu = Menu::with_items(
            app,
            &[
                &status,
                &PredefinedMenuItem::separator(app)?,
                &open_dashboard,
                &start_at_login,
                &pause_resume,
                &PredefinedMenuItem::separator(app)?,
                &quit,
            ],
        )?;
        let images = Images::load()?;
        let icon = TrayIconBuilder::with_id(TRAY_ID)
            .icon(images.running.clone())
            .tooltip("Semantest Hub")
            .menu(&menu)
            .show_menu_on_left_click(true)
            .on_menu_event(on_menu_event)
            .build(app)?;
        let tray = Self {
            icon,
            status,
            open_dashboard,
            start_at_login,
            pause_resume,
            images,
        };
        tray.show(state);
        Ok(tray)
    }

    /// Shows `state` in the icon, the tooltip, the status line and the items' labels.
    pub fn show(&self, state: &HubState) {
        let image = match state {
            HubState::Running(snapshot) if snapshot.running_agents > 0 => &self.images.busy,
            HubState::Running(_) | HubState::Starting => &self.images.running,
            HubState::Stopping | HubState::Paused => &self.images.paused,
            HubState::Failed(_) => &self.images.error,
        };
        let (pause_label, pause_enabled) = match state {
            HubState::Running(_) => ("Pause server", true),
            HubState::Paused | HubState::Failed(_) => ("Resume server", true),
            HubState::Starting | HubState::Stopping => ("Pause server", false),
        };
        let results = [
            self.icon.set_icon(Some(image.clone())),
            self.icon.set_tooltip(Some(tooltip(state))),
            self.status.set_text(status_line(state)),
            self.open_dashboard.set_enabled(state.is_running()),
            self.pause_resume.set_text(pause_label),
            self.pause_resume.set_enabled(pause_enabled),
        ];
        for result in results {
            if let Err(err) = result {
                warn!(error = %err, "cannot update the tray");
            }
        }
    }

    /// Sets the Start at login check mark.
    pub fn set_start_at_login(&self, on: bool) {
        if let Err(err) = self.start_at_login.set_checked(on) {
            warn!(error = %err, "cannot update the Start at login item");
        }
    }

    /// Sets the Start at login check mark to the state a change left in force: the state
    /// it returned, or after a failure (which may have happened half-way) the state read
    /// back from the platform.
    pub fn show_start_at_login(&self, app: &AppHandle, change: &Result<bool, DesktopError>) {
        let now = match change {
            Ok(on) => Ok(*on),
            Err(_) => autostart::is_enabled(app),
        };
        match now {
            Ok(on) => self.set_start_at_login(on),
            Err(err) => warn!(error = %err, "cannot read start at login"),
        }
    }
}

fn on_menu_event(app: &AppHandle, event: MenuEvent) {
    match event.id().as_ref() {
        ids::OPEN_DASHBOARD => crate::window::show_dashboard(app),
        ids::START_AT_LOGIN => {
            let change = autostart::toggle(app);
            if let Some(tray) = app.try_state::<Tray>() {
                tray.show_start_at_login(app, &change);
            }
            if let Err(err) = change {
                warn!(error = %err, "cannot change start at login");
                notify(app, "Semantest Hub", &err.to_string());
            }
        }
        ids::PAUSE_RESUME => {
            let service = app.state::<Service>();
            match service.current() {
                HubState::Running(_) => service.pause(),
                HubState::Paused | HubState::Failed(_) => service.resume(),
                HubState::Starting | HubState::Stopping => {}
            }
        }
        ids::QUIT => crate::quit(app),
        _ => {}
    }
}

/// The menu's status line.
pub fn status_line(state: &HubState) -> String {
    match state {
        HubState::Starting => "Starting…".into(),
        HubState::Running(s) => format!(
            "Running on port {} · {} · {}",
            s.port,
            plural(s.connections, "client", "clients"),
            match s.running_agents {
                0 => "no agents running".to_string(),
                n => format!("{} running", plural(n, "agent", "agents")),
            }
        ),
        HubState::Stopping => "Stopping…".into(),
        HubState::Paused => "Paused".into(),
        HubState::Failed(message) => format!("Error: {}", shorten(message, 90)),
    }
}

/// The tooltip (macOS; Linux shows none).
pub fn tooltip(state: &HubState) -> String {
    match state {
        HubState::Running(s) => format!(
            "Semantest Hub\nPort {}\n{}, {} running",
            s.port,
            plural(s.connections, "client", "clients"),
            plural(s.running_agents, "agent", "agents")
        ),
        other => format!("Semantest Hub\n{}", status_line(other)),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Cuts `text` to at most `max` characters, at a character boundary, with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use semantest_hub::hub::StatusSnapshot;

    #[test]
    fn status_line_counts_clients_and_agents() {
        let running = |connections, running_agents| {
            HubState::Running(StatusSnapshot {
                port: 3003,
                connections,
                running_agents,
                projects: 1,
            })
        };
        assert_eq!(
            status_line(&running(0, 0)),
            "Running on port 3003 · 0 clients · no agents running"
        );
        assert_eq!(
            status_line(&running(1, 2)),
            "Running on port 3003 · 1 client · 2 agents running"
        );
        assert_eq!(
            tooltip(&running(2, 1)),
            "Semantest Hub\nPort 3003\n2 clients, 1 agent running"
        );
        assert_eq!(status_line(&HubState::Paused), "Paused");
    }

    #[test]
    fn long_errors_are_shortened_on_a_character_boundary() {
        let line = status_line(&HubState::Failed("é".repeat(200)));
        assert_eq!(line.chars().count(), "Error: ".len() + 90);
        assert!(line.ends_with('…'));
    }
}
