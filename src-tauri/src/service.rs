//! The hub's lifecycle inside the desktop app: start, pause, resume and shut down.
//!
//! One task owns the [`HubServer`] and takes commands through a [`Service`] handle, so a
//! pause and a quit that arrive together never race on the server (the actor pattern of
//! STYLE.md: bounded mpsc in, oneshot replies out). The task publishes a [`HubState`] that
//! the tray shows.
//!
//! Pausing is a graceful [`HubServer::shutdown`]: clients get close code 1001, agent runs
//! are killed and the store is closed. Resuming calls [`semantest_hub::start`] again with
//! the same configuration, so the hub usually comes back on the same port.

use std::future::pending;
use std::time::Duration;

use semantest_hub::HubServer;
use semantest_hub::config::{ConfigError, LoadedConfig};
use semantest_hub::error::ErrorChain;
use semantest_hub::hub::{HubEvent, StartError, StatusSnapshot};
use semantest_hub::secrets::SecretError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::error::DesktopError;

/// How long [`Service::login_link`] waits for a hub that is still starting.
const START_WAIT: Duration = Duration::from_secs(30);

/// What the hub is doing, as the tray shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum HubState {
    /// Opening the keychain and the store, binding the port.
    Starting,
    /// Serving; the snapshot has the port and the counts.
    Running(StatusSnapshot),
    /// Shutting down for a pause or a quit.
    Stopping,
    /// Paused by the user.
    Paused,
    /// The hub could not start, or stopped on its own. The message is for the user.
    Failed(String),
}

impl HubState {
    /// Whether the hub is serving.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running(_))
    }
}

enum Command {
    Pause,
    Resume,
    LoginLink(oneshot::Sender<Option<String>>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle to the task that owns the hub. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<HubState>,
    events: tokio::sync::broadcast::Sender<HubEvent>,
}

impl Service {
    /// Starts the task, which starts the hub at once with `config`. A configuration error
    /// puts the service in [`HubState::Failed`]; resuming then tries again.
    ///
    /// Must be called inside the Tauri async runtime (from `setup` or a spawned task).
    pub fn spawn(config: Result<LoadedConfig, ConfigError>) -> Self {
        let (commands, receiver) = mpsc::channel(16);
        let (state_tx, state) = watch::channel(HubState::Starting);
        let (events, _) = tokio::sync::broadcast::channel(16);
        let actor = Actor {
            events: events.clone(),
            config: config
                .map_err(|err| format!("The configuration is not valid: {}", ErrorChain(&err))),
            server: None,
            status: None,
            stopped: None,
            state: state_tx,
            quitting: false,
        };
        tauri::async_runtime::spawn(actor.run(receiver));
        Self {
            commands,
            state,
            events,
        }
    }

    /// Events of whichever hub runs, across pauses and resumes (finished batches, …).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    /// Watches the [`HubState`].
    pub fn state(&self) -> watch::Receiver<HubState> {
        self.state.clone()
    }

    /// The current [`HubState`].
    pub fn current(&self) -> HubState {
        self.state.borrow().clone()
    }

    /// Pauses the hub: a graceful shutdown that keeps the app running.
    pub fn pause(&self) {
        self.send(Command::Pause);
    }

    /// Starts the hub again after a pause or a failure.
    pub fn resume(&self) {
        self.send(Command::Resume);
    }

    fn send(&self, command: Command) {
        if self.commands.try_send(command).is_err() {
            warn!("the hub service is busy or gone; command dropped");
        }
    }

    /// A fresh one-time dashboard sign-in link (`http://127.0.0.1:P/login?code=…`), waiting
    /// for a hub that is still starting.
    ///
    /// # Errors
    /// [`DesktopError::NotRunning`] when the hub is paused, failed or shutting down.
    pub async fn login_link(&self) -> Result<String, DesktopError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::LoginLink(reply))
            .await
            .map_err(|_| DesktopError::NotRunning)?;
        match tokio::time::timeout(START_WAIT, answer).await {
            Ok(Ok(Some(link))) => Ok(link),
            _ => Err(DesktopError::NotRunning),
        }
    }

    /// Shuts the hub down gracefully and keeps it down; returns when it has stopped.
    /// Calling it again, or after the task ended, returns at once.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

struct Actor {
    config: Result<LoadedConfig, String>,
    server: Option<HubServer>,
    /// The running hub's status, forwarded to [`HubState::Running`].
    status: Option<watch::Receiver<StatusSnapshot>>,
    /// Cancelled when the running hub shuts down, whoever asked.
    stopped: Option<CancellationToken>,
    state: watch::Sender<HubState>,
    quitting: bool,
    /// Where the running hub's events are forwarded.
    events: tokio::sync::broadcast::Sender<HubEvent>,
}

impl Actor {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.start().await;
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else {
                        self.stop(HubState::Stopping).await;
                        return;
                    };
                    self.handle(command).await;
                }
                snapshot = status_changed(&mut self.status) => match snapshot {
                    Some(snapshot) => self.publish(HubState::Running(snapshot)),
                    None => self.status = None,
                },
                () = cancelled(&self.stopped) => {
                    warn!("the hub stopped on its own");
                    let message = "The hub stopped unexpectedly; choose Resume server to start it again.";
                    self.stop(HubState::Failed(message.into())).await;
                }
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Pause => self.stop(HubState::Paused).await,
            Command::Resume => self.start().await,
            Command::LoginLink(reply) => {
                let link = self.server.as_ref().map(|server| server.hub().login_link());
                let _ = reply.send(link);
            }
            Command::Shutdown(reply) => {
                self.quitting = true;
                self.stop(HubState::Stopping).await;
                let _ = reply.send(());
            }
        }
    }

    async fn start(&mut self) {
        if self.server.is_some() || self.quitting {
            return;
        }
        let config = match &self.config {
            Ok(config) => config.clone(),
            Err(message) => {
                self.publish(HubState::Failed(message.clone()));
                return;
            }
        };
        self.publish(HubState::Starting);
        match semantest_hub::start(config).await {
            Ok(server) => {
                let mut status = server.hub().status();
                let snapshot = status.borrow_and_update().clone();
                info!(url = %server.url(), "hub started");
                forward_events(server.hub().events(), self.events.clone());
                self.status = Some(status);
                self.stopped = Some(server.hub().shutdown().clone());
                self.server = Some(server);
                self.publish(HubState::Running(snapshot));
            }
            Err(err) => {
                error!(error = %ErrorChain(&err), "the hub could not start");
                self.publish(HubState::Failed(describe(&err)));
            }
        }
    }

    /// Shuts the hub down if it runs, and publishes `after`.
    async fn stop(&mut self, after: HubState) {
        self.status = None;
        self.stopped = None;
        if let Some(server) = self.server.take() {
            self.publish(HubState::Stopping);
            server.shutdown().await;
            info!("hub stopped");
        }
        // A failure stays visible until the user resumes; a pause does not hide it.
        let failed = matches!(*self.state.borrow(), HubState::Failed(_));
        if !(failed && after == HubState::Paused) {
            self.publish(after);
        }
    }

    fn publish(&self, state: HubState) {
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }
}

/// Forwards one hub's events until that hub is gone.
fn forward_events(
    mut from: tokio::sync::broadcast::Receiver<HubEvent>,
    to: tokio::sync::broadcast::Sender<HubEvent>,
) {
    tauri::async_runtime::spawn(async move {
        loop {
            match from.recv().await {
                Ok(event) => {
                    let _ = to.send(event);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                    warn!(skipped, "hub events skipped");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

async fn status_changed(
    status: &mut Option<watch::Receiver<StatusSnapshot>>,
) -> Option<StatusSnapshot> {
    match status {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => Some(receiver.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => pending().await,
    }
}

async fn cancelled(token: &Option<CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => pending().await,
    }
}

/// A start error in words for a notification: what happened and what to do. The core's
/// keychain message suggests `--secret-store file`, which the desktop app deliberately
/// does not offer (DESIGN.md: no silent fallback), so it gets its own text.
fn describe(err: &StartError) -> String {
    match err {
        StartError::Secrets(SecretError::KeychainUnavailable(source)) => format!(
            "The OS keychain is locked or not available ({source}). Unlock it, then choose \
             Resume server in the tray menu."
        ),
        StartError::DataDirBusy(dir) => format!(
            "Another Semantest Hub (this app or `semantest-hub serve`) is already using {}. \
             Stop it, then choose Resume server.",
            dir.display()
        ),
        StartError::Bind { .. } => format!(
            "No port is free for the hub ({}). Close the program that holds it, then choose \
             Resume server.",
            ErrorChain(err)
        ),
        other => format!("The hub could not start: {}.", ErrorChain(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keychain_errors_do_not_suggest_the_file_store() {
        let err = StartError::Secrets(SecretError::KeychainUnavailable(keyring_error()));
        let text = describe(&err);
        assert!(
            text.contains("keychain is locked or not available"),
            "{text}"
        );
        assert!(!text.contains("--secret-store"), "{text}");
    }

    #[test]
    fn a_busy_data_directory_names_it_and_the_way_out() {
        let err = StartError::DataDirBusy("/data/semantest-hub".into());
        let text = describe(&err);
        assert!(text.contains("already using /data/semantest-hub"), "{text}");
        assert!(text.contains("Resume server"), "{text}");
    }

    fn keyring_error() -> keyring::Error {
        keyring::Error::NoStorageAccess(Box::new(std::io::Error::other("no secret service")))
    }
}
