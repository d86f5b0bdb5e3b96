//! `semantest-hub`: the headless hub and a command-line client for it.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use semantest_hub::cli::{HubClient, running_hub, running_hub_url};
use semantest_hub::config::{
    Config, LoadedConfig, Mode, Overrides, PublicOverrides, SecretStoreKind,
};
use semantest_hub::hub::OWNER_TOKEN;
use semantest_hub::scopes::Scope;
use semantest_hub::secrets::Secrets;

#[derive(Parser)]
#[command(
    name = "semantest-hub",
    version,
    about = "Local hub for browser extensions, coding agents and task workers"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// Data directory (database, secrets). Default: the platform data directory.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file. Default: config.toml in the platform config directory.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the owner token is kept.
    #[arg(long, global = true, value_enum)]
    secret_store: Option<SecretStoreKind>,
    /// Log filter, e.g. `info` or `semantest_hub=debug`.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub in the foreground until SIGINT or SIGTERM.
    Serve {
        /// Port; 0 takes any free port. Default: 3003, or the next free one up to 3012.
        /// Not with --public, whose --bind carries the port.
        #[arg(long, conflicts_with = "public")]
        port: Option<u16>,
        /// Listen address. Local mode: a loopback IP (default 127.0.0.1 and ::1).
        /// Public mode: IP:PORT, e.g. 0.0.0.0:8443.
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Serve remote clients: TLS (or --behind-proxy), tokens only, per-address limits.
        #[arg(long)]
        public: bool,
        /// PEM certificate chain for public mode; needs --tls-key.
        #[arg(long, value_name = "FILE", requires = "public", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for public mode; needs --tls-cert.
        #[arg(long, value_name = "FILE", requires = "public", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Public mode behind a TLS-terminating reverse proxy: plain HTTP, and
        /// X-Forwarded-For believed from public.trusted_proxies only.
        #[arg(long, requires = "public", conflicts_with_all = ["tls_cert", "tls_key"])]
        behind_proxy: bool,
        /// Print a one-time dashboard sign-in link, and open it when a display is available.
        #[arg(long, conflicts_with = "public")]
        dashboard: bool,
    },
    /// Print the owner token (creating it on first use), or manage client tokens on the
    /// running hub.
    Token {
        #[command(subcommand)]
        action: Option<TokenCommand>,
    },
    /// Show the running hub's status.
    Status,
    /// Open the dashboard in a browser with a one-time sign-in link (printed instead
    /// when there is no display).
    Dashboard {
        /// Print the link instead of opening a browser.
        #[arg(long)]
        print: bool,
    },
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Run agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Answer browser extensions that ask to pair: list the pending requests, approve one
    /// (issuing its token) or deny it. A request waits 2 minutes for an answer.
    #[command(subcommand)]
    Pair(PairCommand),
}

#[derive(Subcommand)]
enum PairCommand {
    /// List the pending requests, oldest first: id, the 6-digit code the extension shows
    /// (compare it before approving), name, origin, the requester's address and expiry.
    List(#[command(flatten)] ListFormat),
    /// Approve a request: the extension then claims a token bound to its origin.
    Approve {
        /// The request's id (`pr_…`, from `pair list`).
        id: String,
        /// What the token may do; repeat or list several. Default: events.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            num_args = 1..,
            value_parser = clap::builder::PossibleValuesParser::new(Scope::ALL.map(Scope::as_str)),
        )]
        scopes: Vec<String>,
    },
    /// Deny a request: the extension is told so and gets no token.
    Deny {
        /// The request's id (`pr_…`, from `pair list`).
        id: String,
    },
}

/// A table column: its header, and how to show an item's cell.
type Column<'a> = (&'a str, &'a dyn Fn(&Value) -> String);

/// How a `list` command prints: an aligned table with a header by default.
#[derive(Args, Clone, Copy)]
struct ListFormat {
    /// Print the hub's JSON-RPC result as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print only the ids, one per line.
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,
}

impl ListFormat {
    /// Prints `result` as asked: `result` itself as JSON, the `id` of each item of
    /// `result[key]`, or a table of `columns` (header, field) with `empty` said on
    /// stderr when there are no items.
    fn print(self, result: &Value, key: &str, columns: &[Column<'_>], empty: &str) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(result)?);
            return Ok(());
        }
        let items = result[key].as_array().cloned().unwrap_or_default();
        if self.quiet {
            for item in &items {
                println!("{}", item["id"].as_str().unwrap_or_default());
            }
            return Ok(());
        }
        if items.is_empty() {
            eprintln!("{empty}");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| columns.iter().map(|(_, cell)| cell(item)).collect())
            .collect();
        let headers: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
        print_table(&headers, &rows);
        Ok(())
    }
}

/// The string at `item[key]`, or `default` when it is absent or not a string.
fn text_or(item: &Value, key: &str, default: &str) -> String {
    item[key].as_str().unwrap_or(default).to_string()
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a client token and print it; it is shown only this once.
    Create {
        /// Display name, e.g. `ci-runner`.
        #[arg(long)]
        name: String,
        /// What the token may do; repeat or list several (`--scope events tasks`).
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            num_args = 1..,
            required = true,
            value_parser = clap::builder::PossibleValuesParser::new(Scope::ALL.map(Scope::as_str)),
        )]
        scopes: Vec<String>,
        /// Bind the token to this exact Origin (for a browser client).
        #[arg(long, value_name = "ORIGIN")]
        origin: Option<String>,
    },
    /// List the live client tokens.
    List(#[command(flatten)] ListFormat),
    /// Revoke a client token; its connections close at once.
    Revoke {
        /// The token's id (`cl_…`, from `token list`).
        id: String,
    },
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Register a directory as a project.
    Add {
        /// The directory.
        dir: PathBuf,
        /// Display name. Default: the directory's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List projects.
    List(#[command(flatten)] ListFormat),
    /// Unregister a project (its directory is not touched).
    Rm {
        /// The project id.
        id: String,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Run the agent in a project and stream its output; exits with the run's status
    /// (0 succeeded, 1 failed, 124 timed out, 130 killed).
    Run {
        /// A project id, or a registered project's directory.
        project: String,
        /// The prompt.
        prompt: String,
        /// Start a new session instead of resuming the last one.
        #[arg(long)]
        new_session: bool,
        /// Timeout in seconds.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
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
    } = &cli.command
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
    match cli.command {
        Command::Serve { dashboard, .. } => serve(loaded, dashboard).await,
        Command::Token { action: None } => {
            let _log = semantest_hub::logging::init(
                &common.log_level.unwrap_or_else(|| "warn".into()),
                None,
            );
            let token = owner_token(&loaded, common.secret_store).await?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let _log = semantest_hub::logging::init(
                &common.log_level.unwrap_or_else(|| "warn".into()),
                None,
            );
            client_command(&loaded, common.secret_store, command).await
        }
    }
}

async fn serve(loaded: LoadedConfig, dashboard: bool) -> Result<ExitCode> {
    let _guard = semantest_hub::logging::init(&loaded.config.log_level, Some(&loaded.log_dir));
    let server = semantest_hub::start(loaded).await?;
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
            return Ok(secrets.get_or_create(OWNER_TOKEN, semantest_hub::security::new_token)?);
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

async fn connect(
    loaded: &LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
) -> Result<HubClient> {
    let url = running_hub_url(&loaded.data_dir)?;
    let token = owner_token(loaded, explicit_store).await?;
    Ok(HubClient::connect(&url, &token).await?)
}

async fn client_command(
    loaded: &LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
    command: Command,
) -> Result<ExitCode> {
    let mut client = connect(loaded, explicit_store).await?;
    client
        .request(
            "hub.hello",
            json!({"role": "script", "name": "semantest-hub CLI"}),
        )
        .await?;
    let code = match command {
        Command::Status => {
            let status = client.request("hub.status", json!({})).await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            ExitCode::SUCCESS
        }
        Command::Dashboard { print } => {
            let link = client.request("hub.login_link", json!({})).await?;
            let url = link["url"].as_str().context("the hub sent no link")?;
            client.check_link(url)?;
            if print || !has_display() || !open_browser(url) {
                println!("{url}");
            }
            ExitCode::SUCCESS
        }
        Command::Project(ProjectCommand::Add { dir, name }) => {
            let path = std::path::absolute(&dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            let project = client
                .request("project.create", json!({"path": path, "name": name}))
                .await?;
            println!(
                "{}  {}  {}",
                project["id"].as_str().unwrap_or(""),
                project["name"].as_str().unwrap_or(""),
                project["path"].as_str().unwrap_or("")
            );
            ExitCode::SUCCESS
        }
        Command::Project(ProjectCommand::List(format)) => {
            let list = client.request("project.list", json!({})).await?;
            format.print(
                &list,
                "projects",
                &[
                    ("ID", &|p| text_or(p, "id", "")),
                    ("STATE", &|p| text_or(p, "state", "")),
                    ("NAME", &|p| text_or(p, "name", "")),
                    ("PATH", &|p| text_or(p, "path", "")),
                ],
                "no projects; add one with `semantest-hub project add DIR`",
            )?;
            ExitCode::SUCCESS
        }
        Command::Project(ProjectCommand::Rm { id }) => {
            client
                .request("project.delete", json!({"project_id": id}))
                .await?;
            println!("removed {id}");
            ExitCode::SUCCESS
        }
        Command::Agent(AgentCommand::Run {
            project,
            prompt,
            new_session,
            timeout,
        }) => agent_run(&mut client, &project, &prompt, new_session, timeout).await?,
        Command::Token {
            action: Some(action),
        } => token_command(&mut client, action).await?,
        Command::Pair(action) => pair_command(&mut client, action).await?,
        Command::Serve { .. } | Command::Token { action: None } => {
            unreachable!("handled before connecting")
        }
    };
    client.close().await;
    Ok(code)
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

async fn resolve_project(client: &mut HubClient, project: &str) -> Result<String> {
    let list = client.request("project.list", json!({})).await?;
    let projects = list["projects"].as_array().cloned().unwrap_or_default();
    if let Some(found) = projects.iter().find(|p| p["id"] == project) {
        return Ok(found["id"].as_str().unwrap_or_default().to_string());
    }
    let dir = Path::new(project);
    if let Ok(canonical) = std::fs::canonicalize(dir)
        && let Some(found) = projects
            .iter()
            .find(|p| p["path"].as_str() == canonical.to_str())
    {
        return Ok(found["id"].as_str().unwrap_or_default().to_string());
    }
    bail!(
        "{project} is not a project id or a registered directory; add it with `semantest-hub project add`"
    )
}

async fn agent_run(
    client: &mut HubClient,
    project: &str,
    prompt: &str,
    new_session: bool,
    timeout: Option<u64>,
) -> Result<ExitCode> {
    let project_id = resolve_project(client, project).await?;
    client
        .request("project.subscribe", json!({"project_id": project_id}))
        .await?;
    let started = client
        .request(
            "agent.run",
            json!({"project_id": project_id, "prompt": prompt, "new_session": new_session, "timeout_s": timeout}),
        )
        .await?;
    let run_id = started["run_id"].as_str().unwrap_or_default().to_string();
    let mut interrupted = false;
    let mut stdout = std::io::stdout();
    loop {
        let message = tokio::select! {
            message = client.next_notification() => message?,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                eprintln!("\nstopping the agent…");
                client.request("agent.kill", json!({"project_id": project_id})).await.ok();
                continue;
            }
        };
        if message["method"] != "project.output" {
            continue;
        }
        let output = &message["params"];
        if output["run_id"].as_str() != Some(run_id.as_str()) {
            continue;
        }
        if let Some(status) = print_output(&mut stdout, output) {
            return Ok(ExitCode::from(match status.as_str() {
                "succeeded" => 0,
                "timed_out" => 124,
                "killed" => 130,
                _ => 1,
            }));
        }
    }
}

/// Prints one output line for a person; returns the run's status on its last line.
fn print_output(out: &mut impl Write, output: &Value) -> Option<String> {
    let event = &output["event"];
    match output["kind"].as_str().unwrap_or_default() {
        "assistant" => {
            for block in event["message"]["content"].as_array().into_iter().flatten() {
                match block["type"].as_str() {
                    Some("text") => {
                        let _ = writeln!(out, "{}", block["text"].as_str().unwrap_or_default());
                    }
                    Some("tool_use") => {
                        let _ = writeln!(
                            out,
                            "▶ {} {}",
                            block["name"].as_str().unwrap_or("tool"),
                            block["input"]
                        );
                    }
                    _ => {}
                }
            }
        }
        "result" => {
            let _ = writeln!(
                out,
                "■ {} in {:.1} s, {} turns, ${:.4}",
                event["subtype"].as_str().unwrap_or("done"),
                event["duration_ms"].as_f64().unwrap_or_default() / 1000.0,
                event["num_turns"].as_i64().unwrap_or_default(),
                event["total_cost_usd"].as_f64().unwrap_or_default()
            );
        }
        "text" => {
            let _ = writeln!(out, "{}", output["text"].as_str().unwrap_or_default());
        }
        "stderr" => eprintln!("{}", output["text"].as_str().unwrap_or_default()),
        "run_finished" => {
            let status = event["status"].as_str().unwrap_or("failed").to_string();
            if let Some(reason) = event["reason"].as_str() {
                eprintln!("run {status}: {reason}");
            }
            return Some(status);
        }
        _ => {}
    }
    None
}

/// `token create|list|revoke`, over RPC with the owner token.
async fn token_command(client: &mut HubClient, action: TokenCommand) -> Result<ExitCode> {
    match action {
        TokenCommand::Create {
            name,
            scopes,
            origin,
        } => {
            let created = client
                .request(
                    "client.create",
                    json!({"name": name, "scopes": scopes, "origin": origin}),
                )
                .await?;
            let token = created["token"].as_str().context("the hub sent no token")?;
            let info = &created["client"];
            eprintln!(
                "created {} ({}) with scopes {}; the token below is shown only now",
                info["id"].as_str().unwrap_or_default(),
                info["name"].as_str().unwrap_or_default(),
                join_strings(&info["scopes"]),
            );
            println!("{token}");
        }
        TokenCommand::List(format) => {
            let list = client.request("client.list", json!({})).await?;
            format.print(
                &list,
                "clients",
                &[
                    ("ID", &|c| text_or(c, "id", "")),
                    ("KIND", &|c| text_or(c, "kind", "")),
                    ("NAME", &|c| text_or(c, "name", "")),
                    ("SCOPES", &|c| join_strings(&c["scopes"])),
                    ("ORIGIN", &|c| text_or(c, "origin", "any")),
                    ("LAST USED", &|c| text_or(c, "last_used_at", "never")),
                    ("FROM", &|c| text_or(c, "last_addr", "-")),
                    ("CONNECTED", &|c| {
                        c["connected"].as_u64().unwrap_or_default().to_string()
                    }),
                ],
                "no client tokens; create one with `semantest-hub token create`",
            )?;
        }
        TokenCommand::Revoke { id } => {
            client
                .request("client.revoke", json!({"client_id": id}))
                .await?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pair list|approve|deny`, over RPC with the owner token.
async fn pair_command(client: &mut HubClient, action: PairCommand) -> Result<ExitCode> {
    match action {
        PairCommand::List(format) => {
            let list = client.request("pairing.list", json!({})).await?;
            format.print(
                &list,
                "requests",
                &[
                    ("ID", &|r| text_or(r, "id", "")),
                    ("CODE", &|r| text_or(r, "code", "")),
                    ("NAME", &|r| text_or(r, "name", "")),
                    ("ORIGIN", &|r| text_or(r, "origin", "")),
                    ("ADDRESS", &|r| text_or(r, "address", "")),
                    ("EXPIRES", &|r| text_or(r, "expires_at", "")),
                ],
                "no pending pairing requests; press Pair in the extension, then run this again",
            )?;
        }
        PairCommand::Approve { id, scopes } => {
            let scopes = (!scopes.is_empty()).then_some(scopes);
            let approved = client
                .request(
                    "pairing.approve",
                    json!({"request_id": id, "scopes": scopes}),
                )
                .await?;
            let info = &approved["client"];
            println!(
                "approved {id}: client {} ({}) with scopes {} for {}",
                info["id"].as_str().unwrap_or_default(),
                info["name"].as_str().unwrap_or_default(),
                join_strings(&info["scopes"]),
                info["origin"].as_str().unwrap_or_default(),
            );
        }
        PairCommand::Deny { id } => {
            client
                .request("pairing.deny", json!({"request_id": id}))
                .await?;
            println!("denied {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `rows` under `headers` in columns two spaces apart, each as wide as its widest
/// cell (counted in characters); the last column is not padded.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        println!("{}", text.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

fn join_strings(values: &Value) -> String {
    values
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}
