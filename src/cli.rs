//! The command line: `semantest-hub serve` runs the hub in the foreground; every other
//! command is a JSON-RPC client of the running hub found through its runtime file
//! ([`HubClient`]), which checks the hub's signature proof before it sends the owner
//! token.
//!
//! [`Cli`] holds the arguments (`args`), [`run`] carries one command out; `output` prints
//! tables, `projects` has `project …`, `logs` and `ps`, `agent` streams and stops runs,
//! `events` tails and publishes client events, `access` manages tokens and pairing
//! requests. A few commands need no hub: `settings` and `config_set` have `config …`, `doctor` checks the
//! setup, `completions` prints the shell completion scripts and the man pages, whose
//! examples (also each command's `--help`) are in `examples`.
//!
//! Commands print through `outln!` (stdout) and `errln!` (stderr, with colour), never
//! `println!`: see `output` for why, and for colour.

// `println!` panics when stdout is a closed pipe; every command writes through `outln!`.
#![deny(clippy::print_stdout)]

/// `println!` for the commands: writes a line to stdout through
/// `output::write_line`, and evaluates to `anyhow::Result<()>`, with
/// `output::StdoutClosed` once the reader has gone away.
macro_rules! outln {
    () => {
        $crate::cli::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))
    };
}

/// `eprintln!` with colour styles dropped where colour is off, through
/// `output::write_err_line`.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_err_line(format_args!($($arg)*))
    };
}

mod access;
mod agent;
mod args;
mod client;
mod completions;
mod config_set;
mod doctor;
mod events;
mod examples;
mod mcp;
mod output;
mod projects;
mod settings;
mod tasks;
mod usage;
mod worktrees;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;

pub use args::Cli;
pub use client::{
    ClientError, Distrust, HubClient, RunningHub, Target, VERIFY_TIMEOUT, endpoint_of, running_hub,
    running_hub_url,
};
pub use output::{StdoutClosed, is_closed_stdout};

use crate::app::hub::OWNER_TOKEN;
use crate::config::{Config, LoadedConfig, Mode, Overrides, PublicOverrides, SecretStoreKind};
use crate::storage::secrets::Secrets;
use access::{pair_command, token_command};
use agent::{agent_kill, agent_new_session, agent_run, approvals_command};
use args::{AgentCommand, ApprovalsCommand, Command};
use events::events_command;
use projects::{LogsRequest, logs, project_command, ps};
use settings::config_command;
use usage::{UsageRequest, usage};

/// Carries out one command line; the exit code is the command's (for `agent run`, the
/// run's status). A reader that closed stdout early (`| head`) ends the command with 0.
///
/// # Errors
/// Anything that stops the command, with its context, for `main` to print.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    cli.common.color_choice().write_global();
    match execute(cli).await {
        Err(err) if is_closed_stdout(&err) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

async fn execute(cli: Cli) -> Result<ExitCode> {
    let Some(command) = cli.command else {
        // Without a subcommand clap shows the help, unless `--version` was given.
        return version(&cli.common).await;
    };
    // Generated from the clap definition alone: they work whatever the configuration.
    match command {
        Command::Completions { shell } => {
            completions::completions(shell)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man { dir } => {
            completions::man(dir.as_deref())?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let common = cli.common;
    let mut overrides = Overrides {
        data_dir: common.data_dir.clone(),
        secret_store: common.secret_store,
        log_level: common.log_level.clone(),
        ..Default::default()
    };
    if let Command::Serve {
        port,
        bind,
        public,
        tls_cert,
        tls_key,
        behind_proxy,
        ..
    } = &command
    {
        overrides.port = *port;
        if *public {
            overrides.public = PublicOverrides {
                enabled: Some(true),
                bind: bind
                    .as_deref()
                    .map(|text| {
                        text.parse::<SocketAddr>().with_context(|| {
                            format!("--bind {text}: public mode needs IP:PORT, e.g. 0.0.0.0:8443")
                        })
                    })
                    .transpose()?,
                tls_cert: tls_cert.clone(),
                tls_key: tls_key.clone(),
                behind_proxy: behind_proxy.then_some(true),
            };
        } else if let Some(text) = bind {
            let addr = text.parse::<IpAddr>().with_context(|| {
                format!("--bind {text}: local mode takes an IP address without a port (use --port)")
            })?;
            overrides.bind = Some(vec![addr]);
        }
    }
    let loaded = Config::load(common.config.as_deref(), &overrides)?;
    match command {
        Command::Serve { dashboard, .. } => serve(loaded, dashboard).await,
        Command::Config(action) => config_command(&loaded, &overrides, action),
        Command::Doctor { json } => doctor::doctor(&loaded, common.secret_store, json).await,
        Command::Token { action: None } => {
            let _log = crate::support::logging::init(
                &common.log_level.unwrap_or_else(|| "warn".into()),
                None,
            );
            let token = owner_token(&loaded, common.secret_store).await?;
            outln!("{token}")?;
            Ok(ExitCode::SUCCESS)
        }
        command @ (Command::Task(_) | Command::Worker(_) | Command::Mcp) => {
            let _log = crate::support::logging::init(
                &common.log_level.unwrap_or_else(|| "warn".into()),
                None,
            );
            tasks_command(loaded, common.secret_store, command).await
        }
        command => {
            let _log =
                crate::support::logging::init(common.log_level.as_deref().unwrap_or("warn"), None);
            client_command(&loaded, &common, command).await
        }
    }
}

/// `--version`: this command's version, then the running hub's, from its signature
/// (`GET /semantest-signature`, which needs no token), or why there is none.
///
/// # Errors
/// When stdout cannot be written.
async fn version(common: &args::Common) -> Result<ExitCode> {
    outln!("semantest-hub {}", crate::app::hub::VERSION)?;
    let overrides = Overrides {
        data_dir: common.data_dir.clone(),
        ..Default::default()
    };
    let loaded = match Config::load(common.config.as_deref(), &overrides) {
        Ok(loaded) => loaded,
        Err(err) => {
            outln!("hub: unknown, the configuration does not load: {err:#}")?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let Ok(hub) = running_hub(&loaded.data_dir) else {
        outln!("hub: none running for {}", loaded.data_dir.display())?;
        return Ok(ExitCode::SUCCESS);
    };
    let signature = match Target::of(&hub, common.tls_ca.as_deref()) {
        Ok(target) => client::signature_of(&target).await,
        Err(_) => None,
    };
    match signature {
        Some(signature) => outln!(
            "hub: {} {} at {} ({} mode)",
            signature["product"].as_str().unwrap_or("semantest-hub"),
            signature["version"].as_str().unwrap_or("unknown"),
            hub.url,
            signature["mode"].as_str().unwrap_or("unknown"),
        )?,
        None => outln!(
            "hub: none answers at {} (a runtime file left by a hub that stopped?)",
            hub.url
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(loaded: LoadedConfig, dashboard: bool) -> Result<ExitCode> {
    let _guard = crate::support::logging::init(&loaded.config.log_level, Some(&loaded.log_dir));
    let server = crate::http::server::start(loaded).await?;
    eprintln!("Semantest Hub listening on {}", server.url());
    if server.hub().mode() == Mode::Public {
        eprintln!(
            "Public mode: remote clients need a token; no dashboard (see docs/deployment.md)"
        );
    } else if dashboard {
        let link = server.hub().login_link();
        if !(has_display() && open_browser(&link)) {
            eprintln!("Dashboard (one-time sign-in link, valid for 2 minutes): {link}");
        }
    } else {
        eprintln!("Dashboard: run `semantest-hub dashboard` for a sign-in link");
    }
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
        () = server.cancelled() => {}
    }
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The owner token. While a hub runs, it is read from the store that hub recorded in its
/// runtime file, so a command on `auto` and a hub started with `--secret-store file` (as
/// the user unit does) read the same token; it is never created then, since a token the
/// running hub does not know would only be refused. With no hub running, it comes from
/// the configured store and is created on first use (`semantest-hub token`), or, for the
/// other commands, must exist already.
async fn owner_token(
    loaded: &LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
) -> Result<String> {
    let running = running_hub(&loaded.data_dir).ok();
    let kind = match running.as_ref().and_then(|hub| hub.secret_store) {
        Some(recorded) => {
            if let Some(asked) = explicit_store
                && asked != SecretStoreKind::Auto
                && asked != recorded
            {
                bail!(
                    "the hub running on {} keeps its owner token in the {} store; \
                     drop --secret-store or pass --secret-store {}",
                    loaded.data_dir.display(),
                    store_name(recorded),
                    store_name(recorded),
                );
            }
            recorded
        }
        None => loaded.config.secret_store,
    };
    let create = running.is_none();
    let dir = loaded.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        let secrets = Secrets::open(kind, &dir)?;
        if create {
            return Ok(secrets.get_or_create(OWNER_TOKEN, crate::auth::security::new_token)?);
        }
        secrets.get(OWNER_TOKEN)?.with_context(|| {
            format!(
                "no owner token in the {} store, which the running hub uses; \
                 restart it with `semantest-hub serve`",
                secrets.backend_name()
            )
        })
    })
    .await?
}

fn store_name(kind: SecretStoreKind) -> &'static str {
    match kind {
        SecretStoreKind::Auto => "auto",
        SecretStoreKind::Keychain => "keychain",
        SecretStoreKind::File => "file",
    }
}

/// Connects to the hub running for the data directory: plain HTTP to a local hub, TLS
/// to a public one (trusting the system's roots and the certificates in `trust`).
async fn connect(
    loaded: &LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
    trust: Option<&std::path::Path>,
) -> Result<HubClient> {
    let target = Target::of(&running_hub(&loaded.data_dir)?, trust)?;
    let token = owner_token(loaded, explicit_store).await?;
    Ok(HubClient::connect_to(&target, &token).await?)
}

async fn client_command(
    loaded: &LoadedConfig,
    common: &args::Common,
    command: Command,
) -> Result<ExitCode> {
    let explicit_store = common.secret_store;
    let connected = async {
        let mut client = connect(loaded, explicit_store, common.tls_ca.as_deref()).await?;
        client
            .request(
                "hub.hello",
                json!({"role": "script", "name": "semantest-hub CLI"}),
            )
            .await?;
        anyhow::Ok(client)
    }
    .await;
    let mut client = match connected {
        Ok(client) => client,
        // `agent run` tells "could not start" from "failed" by its exit code.
        Err(err) if matches!(command, Command::Agent(AgentCommand::Run { .. })) => {
            errln!(
                "{}: {err:#}",
                output::paint(output::BAD, "the run could not start")
            );
            return Ok(ExitCode::from(agent::exit::COULD_NOT_START));
        }
        Err(err) => return Err(err),
    };
    let code = match command {
        Command::Status => {
            let status = client.request("hub.status", json!({})).await?;
            outln!("{}", serde_json::to_string_pretty(&status)?)?;
            ExitCode::SUCCESS
        }
        Command::Dashboard { print } => {
            let link = client.request("hub.login_link", json!({})).await?;
            let url = link["url"].as_str().context("the hub sent no link")?;
            client.check_link(url)?;
            if print || !has_display() || !open_browser(url) {
                outln!("{url}")?;
            }
            ExitCode::SUCCESS
        }
        Command::Project(action) => project_command(&mut client, action).await?,
        Command::Logs {
            project,
            follow,
            since,
            run,
            json,
        } => {
            let request = LogsRequest {
                project,
                follow,
                since,
                run,
                json,
            };
            logs(&mut client, request).await?
        }
        Command::Ps(format) => ps(&mut client, format).await?,
        Command::Usage {
            project,
            since,
            until,
            by,
            json,
        } => {
            let request = UsageRequest {
                project,
                since,
                until,
                by,
                json,
            };
            usage(&mut client, request).await?
        }
        Command::Events(action) => events_command(&mut client, action).await?,
        Command::Agent(AgentCommand::Kill { project, run, json }) => {
            agent_kill(&mut client, &project, run.as_deref(), json).await?
        }
        Command::Agent(AgentCommand::Worktree { run_id, json }) => {
            worktrees::show_run(&mut client, &run_id, json).await?;
            ExitCode::SUCCESS
        }
        Command::Agent(AgentCommand::Merge { run_id, json }) => {
            worktrees::settle_run(&mut client, &run_id, true, json).await?;
            ExitCode::SUCCESS
        }
        Command::Agent(AgentCommand::Discard { run_id, json }) => {
            worktrees::settle_run(&mut client, &run_id, false, json).await?;
            ExitCode::SUCCESS
        }
        Command::Agent(AgentCommand::NewSession { project, json }) => {
            agent_new_session(&mut client, &project, json).await?
        }
        Command::Agent(AgentCommand::Run {
            project,
            prompt,
            new_session,
            timeout,
            agent,
            json,
            worktree,
            in_worktree,
        }) => {
            let options = agent::RunOptions {
                new_session,
                timeout,
                agent,
                json,
                worktree,
                in_worktree,
            };
            agent_run(&mut client, &project, &prompt, options).await?
        }
        Command::Token {
            action: Some(action),
        } => token_command(&mut client, action).await?,
        Command::Pair(action) => pair_command(&mut client, action).await?,
        Command::Approvals { format, action } => {
            approvals_command(
                &mut client,
                action.unwrap_or(ApprovalsCommand::List(format)),
            )
            .await?
        }
        Command::Serve { .. }
        | Command::Token { action: None }
        | Command::Config(_)
        | Command::Doctor { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Task(_)
        | Command::Worker(_)
        | Command::Mcp => {
            unreachable!("handled before connecting")
        }
    };
    client.close().await;
    Ok(code)
}

/// The task queue's commands and the MCP server, with the credentials of
/// [`tasks::Credentials::from_env_or_owner`].
async fn tasks_command(
    loaded: LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
    command: Command,
) -> Result<ExitCode> {
    match command {
        Command::Mcp => mcp::serve(loaded, explicit_store).await,
        Command::Task(action) => {
            let creds = tasks::Credentials::from_env_or_owner(&loaded, explicit_store).await?;
            tasks::task_command(&creds, action).await
        }
        Command::Worker(action) => {
            let creds = tasks::Credentials::from_env_or_owner(&loaded, explicit_store).await?;
            tasks::worker_command(&creds, action).await
        }
        _ => unreachable!("only the task commands come here"),
    }
}

/// Ctrl-C (SIGINT) as a stream, for the commands that run until it: listening starts
/// here, so a SIGINT from then on is handled rather than killing the process.
///
/// # Errors
/// When the signal handler cannot be installed.
fn interrupt() -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")
}

/// Whether a browser window could be shown: always on macOS, with an X11 or Wayland
/// display elsewhere. Without one, `xdg-open` may start a text-mode browser that waits
/// on the terminal, so links are printed instead.
fn has_display() -> bool {
    cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
