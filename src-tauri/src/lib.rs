//! Semantest Hub's desktop shell: the hub as a tray app that starts at login.
//!
//! The shell runs the same [`semantest_hub`] server as `semantest-hub serve`, with the
//! owner token in the OS keychain only (no file fallback: a locked or missing keychain is
//! an error the user sees). It adds a tray icon with the hub's state and every action, a
//! dashboard window created on first use, start at login, a single instance, and
//! notifications.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`service`] | the task that owns the hub: start, pause, resume, shut down; [`service::HubState`] |
//! | [`tray`] | the tray icon, its tooltip and its menu |
//! | [`window`] | the dashboard window, created lazily, hidden on close |
//! | [`autostart`] | start at login: the plugin, the first run, read and set (returns the state in force) |
//! | [`commands`] | the dashboard's commands (`autostart_get`, `autostart_set`), which keep the tray in step |
//! | [`notify`] | desktop notifications, and the text of a pairing request's and of a finished run's |
//! | [`error`] | [`error::DesktopError`], serialized as a string for commands |
//!
//! # Lifecycle
//!
//! 1. [`run`] loads the configuration and installs logging, then builds the Tauri app. The
//!    single-instance plugin comes first: a second launch hands its arguments to the first
//!    instance (which opens the dashboard unless they include `--hidden`) and exits 0.
//! 2. Setup starts the hub, applies the first run's start at login, builds the tray, listens
//!    for SIGTERM, SIGINT and SIGHUP, and opens the dashboard unless started with `--hidden`.
//! 3. Closing the window keeps the app in the tray; [`tauri::RunEvent::ExitRequested`] is
//!    prevented unless the app is quitting.
//! 4. Quit or a signal calls [`quit`]: the hub shuts down gracefully (clients get 1001,
//!    agent runs are killed, the store is closed), then the app exits with code 0. An exit
//!    started by the system instead (macOS logout) shuts the hub down in
//!    [`tauri::RunEvent::Exit`].

pub mod autostart;
pub mod commands;
pub mod error;
pub mod notify;
pub mod service;
pub mod tray;
pub mod window;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use semantest_hub::config::{Config, Overrides, SecretStoreKind};
use semantest_hub::hub::HubEvent;
use tauri::{AppHandle, Manager, RunEvent};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::autostart::HIDDEN_FLAG;
use crate::notify::{approval_message, notify, pairing_message, run_message};
use crate::service::{HubState, Service};
use crate::tray::Tray;

/// The longest an exit started by the system waits for the hub to shut down; the hub's own
/// grace period (`limits.shutdown_grace_s`, 10 s by default) bounds it first.
const EXIT_WAIT: Duration = Duration::from_secs(20);

/// Set once the app is quitting, so that [`RunEvent::ExitRequested`] lets it go.
struct Quitting(AtomicBool);

/// Runs the desktop app until it quits; returns the process exit code.
///
/// Call it first thing in `main`, before any thread starts: on Linux it sets an
/// environment variable ([`disable_gdk_gl`]).
pub fn run() -> ExitCode {
    #[cfg(target_os = "linux")]
    disable_gdk_gl();
    let hidden = std::env::args().skip(1).any(|arg| arg == HIDDEN_FLAG);
    let overrides = Overrides {
        secret_store: Some(SecretStoreKind::Keychain),
        ..Default::default()
    };
    let config = Config::load(None, &overrides);
    let _log_guard = match &config {
        Ok(loaded) => semantest_hub::logging::init(&loaded.config.log_level, Some(&loaded.log_dir)),
        Err(_) => semantest_hub::logging::init("info", None),
    };
    let data_dir = config.as_ref().ok().map(|loaded| loaded.data_dir.clone());

    let app = tauri::Builder::default()
        // First, so that a second instance exits before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            if argv.iter().skip(1).any(|arg| arg == HIDDEN_FLAG) {
                info!("second launch with --hidden ignored");
            } else {
                info!("second launch: showing the dashboard");
                window::show_dashboard(app);
            }
        }))
        .plugin(autostart::plugin())
        .plugin(tauri_plugin_notification::init())
        .manage(Quitting(AtomicBool::new(false)))
        .invoke_handler(tauri::generate_handler![
            commands::autostart_get,
            commands::autostart_set
        ])
        .setup(move |app| {
            // A tray app: no Dock icon, no app menu (macOS).
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);

            let handle = app.handle().clone();
            let service = Service::spawn(config);
            app.manage(service.clone());
            if let Some(dir) = &data_dir {
                autostart::first_run(&handle, dir);
            }
            let start_at_login = autostart::is_enabled(&handle).unwrap_or_else(|err| {
                warn!(error = %err, "cannot read start at login");
                false
            });
            app.manage(Tray::create(&handle, &service.current(), start_at_login)?);
            follow_state(handle.clone(), service.state());
            notify_events(handle.clone(), service.events());
            listen_for_signals(handle.clone());
            if !hidden {
                window::show_dashboard(&handle);
            }
            info!(hidden, "desktop app started");
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(err) => {
            error!(error = %err, "cannot start the desktop app");
            eprintln!("error: cannot start the desktop app: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = app.run_return(|app, event| match event {
        RunEvent::ExitRequested { api, .. }
            if !app.state::<Quitting>().0.load(Ordering::SeqCst) =>
        {
            api.prevent_exit();
        }
        RunEvent::Exit => shut_down_before_exit(app),
        _ => {}
    });
    info!(code, "desktop app exited");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Sets `GDK_GL=disable` unless the environment already sets `GDK_GL` (any value, even
/// empty, is the user's choice and kept).
///
/// GTK 3 on X11 probes GLX while it opens the display, to pick the visuals GL would need:
/// the first GTK process of an X session (later ones read the result GTK caches on the
/// root window) loads and initialises the GL driver, with Mesa's software rasteriser
/// libLLVM, 32 MiB of PSS, in an app that at login never opens a window and draws nothing
/// with GL. With GDK's GL off, WebKitGTK presents the dashboard window's frames with
/// cairo instead of a GDK GL context (the web process renders as before), and the app
/// with the dashboard open takes about 100 MiB less (src-tauri/README.md, "Memory").
/// GDK reads the variable once, in `gtk_init`; child processes inherit it, and only GDK
/// reads it.
///
/// `g_setenv` is not thread-safe (nor is `setenv`): this runs before any thread exists,
/// as [`run`] requires.
#[cfg(target_os = "linux")]
fn disable_gdk_gl() {
    if std::env::var_os("GDK_GL").is_none()
        && let Err(err) = glib::setenv("GDK_GL", "disable", false)
    {
        eprintln!("warning: cannot set GDK_GL=disable: {err}");
    }
}

/// Quits: shuts the hub down gracefully, then exits with code 0. Used by the tray's Quit
/// and by signals; calling it again while quitting does nothing.
pub fn quit(app: &AppHandle) {
    if app.state::<Quitting>().0.swap(true, Ordering::SeqCst) {
        return;
    }
    info!("quitting");
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Some(service) = app.try_state::<Service>() {
            service.inner().clone().shutdown().await;
        }
        app.exit(0);
    });
}

/// The last chance to stop the hub when the exit did not come through [`quit`]. Returns at
/// once when the hub is already down.
fn shut_down_before_exit(app: &AppHandle) {
    if let Some(service) = app.try_state::<Service>() {
        let service = service.inner().clone();
        let stopped = tauri::async_runtime::block_on(async move {
            tokio::time::timeout(EXIT_WAIT, service.shutdown())
                .await
                .is_ok()
        });
        if !stopped {
            warn!("the hub did not shut down in time");
        }
    }
}

/// Shows every state change in the tray, and notifies the user when the hub fails.
fn follow_state(app: AppHandle, mut state: watch::Receiver<HubState>) {
    tauri::async_runtime::spawn(async move {
        let mut notified: Option<String> = None;
        loop {
            let current = state.borrow_and_update().clone();
            // While quitting, the event loop may already be gone; the tray goes with it.
            if app.state::<Quitting>().0.load(Ordering::SeqCst) {
                return;
            }
            if let Some(tray) = app.try_state::<Tray>() {
                tray.show(&current);
            }
            match &current {
                HubState::Failed(message) if notified.as_ref() != Some(message) => {
                    notify(&app, "Semantest Hub error", message);
                    notified = Some(message.clone());
                }
                HubState::Failed(_) => {}
                _ => notified = None,
            }
            if state.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Notifies the user of hub events: a finished task batch; an agent run that ended; a
/// pairing request, which also brings up the dashboard at its Clients panel; an agent's
/// tool call waiting for an approval, which brings up the dashboard at that approval on
/// its project's page. The notification plugin reports no clicks
/// on desktop platforms, so the window comes up with the notification rather than on a
/// click on it: the user has just asked to pair in the extension and decides there.
fn notify_events(app: AppHandle, mut events: tokio::sync::broadcast::Receiver<HubEvent>) {
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(HubEvent::BatchFinished {
                    project_name,
                    message,
                    ..
                }) => notify(&app, &format!("Batch finished: {project_name}"), &message),
                Ok(HubEvent::RunFinished {
                    project_name,
                    state,
                    reason,
                    ..
                }) => {
                    let (title, body) =
                        run_message(&project_name, state.as_str(), reason.as_deref());
                    notify(&app, &title, &body);
                }
                Ok(HubEvent::PairingRequested {
                    request_id,
                    name,
                    origin,
                    code,
                }) => {
                    info!(%request_id, %origin, "pairing requested");
                    let (title, body) = pairing_message(&name, &origin, &code);
                    notify(&app, &title, &body);
                    window::show_dashboard_at(&app, window::Page::Clients);
                }
                Ok(HubEvent::ApprovalRequested {
                    project_id,
                    project_name,
                    approval_id,
                    tool_name,
                    target,
                }) => {
                    info!(%project_id, %approval_id, %tool_name, "approval requested");
                    let (title, body) =
                        approval_message(&project_name, &tool_name, target.as_deref());
                    notify(&app, &title, &body);
                    window::show_dashboard_at(
                        &app,
                        window::Page::Approval {
                            project_id,
                            approval_id,
                        },
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Quits gracefully on SIGTERM (system shutdown, logout under systemd, `kill`), SIGINT
/// (Ctrl-C in a terminal) and SIGHUP (the terminal closed).
#[cfg(unix)]
fn listen_for_signals(app: AppHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    tauri::async_runtime::spawn(async move {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            warn!("cannot listen for signals; only Quit stops the hub gracefully");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        };
        info!(signal = name, "signal received");
        quit(&app);
    });
}

#[cfg(not(unix))]
fn listen_for_signals(_app: AppHandle) {}
