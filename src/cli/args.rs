//! The command line's arguments (clap derive): global options and one subcommand per
//! noun, each with its verbs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::SecretStoreKind;
use crate::protocol::scopes::Scope;

/// Local hub for browser extensions, coding agents and task workers.
///
/// The parsed `semantest-hub` command line (`Cli::parse()`), carried out by
/// [`super::run`].
#[derive(Parser)]
#[command(
    name = "semantest-hub",
    version,
    about = "Local hub for browser extensions, coding agents and task workers",
    long_about = None,
    // `--version` is ours: it also asks the running hub for its version.
    disable_version_flag = true,
    arg_required_else_help = true,
    after_help = super::examples::ROOT
)]
pub struct Cli {
    #[command(flatten)]
    pub(super) common: Common,
    /// Print this command's version and the running hub's (or that none runs).
    #[arg(short = 'V', long)]
    pub(super) version: bool,
    #[command(subcommand)]
    pub(super) command: Option<Command>,
}

#[derive(Args)]
pub(super) struct Common {
    /// Data directory (database, secrets). Default: the platform data directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub(super) data_dir: Option<PathBuf>,
    /// Configuration file. Default: config.toml in the platform config directory.
    #[arg(long, global = true, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Where the owner token is kept.
    #[arg(long, global = true, value_enum)]
    pub(super) secret_store: Option<SecretStoreKind>,
    /// Log filter, e.g. `info` or `semantest_hub=debug`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub(super) log_level: Option<String>,
    /// Trust this PEM certificate (or CA) for a public hub's TLS, besides the system's
    /// roots: for a self-signed certificate or a private CA.
    #[arg(long, global = true, value_name = "FILE")]
    pub(super) tls_ca: Option<PathBuf>,
    /// When to colour the output: `auto` on a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub(super) color: ColorWhen,
}

/// `--color`: when the output is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it).
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

impl Common {
    /// The `anstream` choice `--color` asks for; `auto` leaves NO_COLOR, CLICOLOR_FORCE
    /// and the terminal check to anstream.
    pub(super) fn color_choice(&self) -> anstream::ColorChoice {
        match self.color {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        }
    }
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// Run the hub in the foreground until SIGINT or SIGTERM.
    #[command(after_help = super::examples::SERVE)]
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
    #[command(after_help = super::examples::TOKEN)]
    Token {
        #[command(subcommand)]
        action: Option<TokenCommand>,
    },
    /// Show the running hub's status.
    #[command(after_help = super::examples::STATUS)]
    Status,
    /// Open the dashboard in a browser with a one-time sign-in link (printed instead
    /// when there is no display).
    #[command(after_help = super::examples::DASHBOARD)]
    Dashboard {
        /// Print the link instead of opening a browser.
        #[arg(long)]
        print: bool,
    },
    /// Manage projects.
    #[command(after_help = super::examples::PROJECT)]
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Run agents.
    #[command(after_help = super::examples::AGENT)]
    #[command(subcommand)]
    Agent(AgentCommand),
    /// What runs now: each running agent and each task a worker holds.
    #[command(after_help = super::examples::PS)]
    Ps(#[command(flatten)] ListFormat),
    /// A project's stored output, oldest first; with -f, then its live output.
    #[command(after_help = super::examples::LOGS)]
    Logs {
        /// A project id, or a registered project's directory.
        project: String,
        /// Keep following: print new lines as the agent writes them (Ctrl-C stops).
        #[arg(short, long)]
        follow: bool,
        /// Only lines read at or after this RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only the lines of this run.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Print each line as the JSON of its `project.output` params, one per line.
        #[arg(long)]
        json: bool,
    },
    /// What the agents cost: US dollars and tokens per day, project or run, with a total.
    #[command(after_help = super::examples::USAGE)]
    Usage {
        /// Only this project: an id (a deleted project's too) or a registered directory.
        #[arg(long, value_name = "PROJECT")]
        project: Option<String>,
        /// From this time on: RFC 3339, or a date (YYYY-MM-DD, from local midnight).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Before this time: RFC 3339, or a date (YYYY-MM-DD, before its local midnight).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// One row per local day, per project or per run.
        #[arg(long, value_enum, default_value = "day")]
        by: UsageBy,
        /// Print the hub's JSON-RPC result (`agent.usage`) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Client events: watch them live, or publish one (an extension author's debugging
    /// aid).
    #[command(after_help = super::examples::EVENTS)]
    #[command(subcommand)]
    Events(EventsCommand),
    /// Answer the tool calls agents ask permission for: list the pending ones, allow or
    /// deny one.
    #[command(after_help = super::examples::APPROVALS)]
    #[command(args_conflicts_with_subcommands = true)]
    Approvals {
        /// Without a subcommand: `approvals list`, with its `--json` or `-q`.
        #[command(flatten)]
        format: ListFormat,
        #[command(subcommand)]
        action: Option<ApprovalsCommand>,
    },
    /// Answer browser extensions that ask to pair: list the pending requests, approve one
    /// (issuing its token) or deny it. A request waits 2 minutes for an answer.
    #[command(after_help = super::examples::PAIR)]
    #[command(subcommand)]
    Pair(PairCommand),
    /// Show or change settings, and where the config, data and logs are.
    #[command(after_help = super::examples::CONFIG)]
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check the setup (PATH, Claude Code, keychain, port, autostart); exit 1 on a failure.
    ///
    /// One `ok`, `warn` or `fail` line per check, with how to fix what is not ok.
    #[command(after_help = super::examples::DOCTOR)]
    Doctor {
        /// Print the checks as JSON: `{"ok": bool, "checks": [{name, level, found, fix}]}`.
        #[arg(long)]
        json: bool,
    },
    /// The task queue: queue, list, show, cancel, merge, discard, watch, complete and
    /// fail tasks.
    #[command(after_help = super::examples::TASK)]
    #[command(subcommand)]
    Task(super::tasks::TaskCommand),
    /// Work on tasks from the shell: `worker next` waits for a task and holds it.
    #[command(after_help = super::examples::WORKER)]
    #[command(subcommand)]
    Worker(super::tasks::WorkerCommand),
    /// Serve the task queue to an agent chat as MCP tools on stdin and stdout (start it
    /// from the agent's MCP configuration; see docs/coordination.md).
    ///
    /// Uses the owner token, or SEMANTEST_HUB_TOKEN (with SEMANTEST_HUB_CLIENT_ID for a
    /// client token, which needs the `tasks` scope).
    #[command(after_help = super::examples::MCP)]
    Mcp,
    /// Print a shell completion script.
    #[command(after_help = super::examples::COMPLETIONS)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    #[command(after_help = super::examples::MAN)]
    Man {
        /// Write semantest-hub.1 and a page per subcommand (semantest-hub-doctor.1, ...)
        /// into this directory instead, creating it.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub(super) enum ConfigCommand {
    /// Print the config file, data and log directories, one `key: path` per line.
    ///
    /// The config file is the one in use, or the one that would be read.
    #[command(after_help = super::examples::CONFIG_PATH)]
    Path {
        /// Print them as a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective value of a setting (file, environment and flags applied).
    #[command(after_help = super::examples::CONFIG_GET)]
    Get {
        /// A dotted key, e.g. `limits.max_projects`; a section prints all its settings.
        key: String,
        /// Print the value as JSON (a section as an object of dotted keys).
        #[arg(long)]
        json: bool,
    },
    /// Change a setting in the config file (validated, atomic, comments kept).
    ///
    /// A running hub uses the new value after a restart.
    #[command(after_help = super::examples::CONFIG_SET)]
    Set {
        /// A dotted key, e.g. `limits.max_projects`.
        key: String,
        /// The value, as TOML (`500`, `true`, `["127.0.0.1"]`); other text is a string.
        value: String,
        /// Print `{"key", "value", "file"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum ApprovalsCommand {
    /// List the pending approvals, oldest first: id, project, tool and what it would run
    /// (the default).
    #[command(after_help = super::examples::APPROVALS_LIST)]
    List(#[command(flatten)] ListFormat),
    /// Let the tool call run.
    #[command(after_help = super::examples::APPROVALS_ALLOW)]
    Allow {
        /// The approval's id (`ap_...`, from `approvals list`).
        id: String,
        /// Run this input instead, a JSON object, e.g. '{"command": "npm test"}'.
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        /// Also allow this tool from now on: for the `session` or the whole `project`.
        #[arg(long, value_name = "SCOPE", value_parser = ["session", "project"])]
        always: Option<String>,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Refuse the tool call; the agent reads the message.
    #[command(after_help = super::examples::APPROVALS_DENY)]
    Deny {
        /// The approval's id (`ap_...`, from `approvals list`).
        id: String,
        /// What the agent is told.
        #[arg(long)]
        message: Option<String>,
        /// Also stop the agent's turn.
        #[arg(long)]
        interrupt: bool,
        /// Also refuse this tool from now on: for the `session` or the whole `project`.
        #[arg(long, value_name = "SCOPE", value_parser = ["session", "project"])]
        always: Option<String>,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum PairCommand {
    /// List the pending requests, oldest first: id, the 6-digit code the extension shows
    /// (compare it before approving), name, origin, the requester's address and expiry.
    #[command(after_help = super::examples::PAIR_LIST)]
    List(#[command(flatten)] ListFormat),
    /// Approve a request: the extension then claims a token bound to its origin.
    #[command(after_help = super::examples::PAIR_APPROVE)]
    Approve {
        /// The request's id (`pr_...`, from `pair list`).
        id: String,
        /// What the token may do; repeat or list several. Default: events.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            num_args = 1..,
            value_parser = clap::builder::PossibleValuesParser::new(Scope::ALL.map(Scope::as_str)),
        )]
        scopes: Vec<String>,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deny a request: the extension is told so and gets no token.
    #[command(after_help = super::examples::PAIR_DENY)]
    Deny {
        /// The request's id (`pr_...`, from `pair list`).
        id: String,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The rows of `usage`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum UsageBy {
    /// One row per local day, oldest first.
    Day,
    /// One row per project, costliest first.
    Project,
    /// One row per run, most recent first.
    Run,
}

/// How a `list` command prints: an aligned table with a header by default.
#[derive(Args, Clone, Copy)]
pub(super) struct ListFormat {
    /// Print the hub's JSON-RPC result as JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
    /// Print only the ids, one per line.
    #[arg(short, long, conflicts_with = "json")]
    pub(super) quiet: bool,
}

#[derive(Subcommand)]
pub(super) enum TokenCommand {
    /// Create a client token and print it; it is shown only this once.
    #[command(after_help = super::examples::TOKEN_CREATE)]
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
        /// Print the hub's result as JSON: `{"token", "client"}` (the token is in it).
        #[arg(long)]
        json: bool,
    },
    /// List the live client tokens.
    #[command(after_help = super::examples::TOKEN_LIST)]
    List(#[command(flatten)] ListFormat),
    /// Revoke a client token; its connections close at once.
    #[command(after_help = super::examples::TOKEN_REVOKE)]
    Revoke {
        /// The token's id (`cl_...`, from `token list`).
        id: String,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum ProjectCommand {
    /// Register a directory as a project.
    #[command(after_help = super::examples::PROJECT_ADD)]
    Add {
        /// The directory.
        dir: PathBuf,
        /// Display name. Default: the directory's name.
        #[arg(long)]
        name: Option<String>,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List projects.
    #[command(after_help = super::examples::PROJECT_LIST)]
    List(#[command(flatten)] ListFormat),
    /// Show one project: state, session, current run, newest line.
    #[command(after_help = super::examples::PROJECT_SHOW)]
    Show {
        /// A project id, or a registered project's directory.
        project: String,
        /// Print the `project.get` result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Unregister a project (its directory and files are not touched).
    #[command(after_help = super::examples::PROJECT_RM)]
    Rm {
        /// A project id, or a registered project's directory.
        project: String,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum EventsCommand {
    /// Print the events other clients publish, one JSON line each, until Ctrl-C.
    #[command(after_help = super::examples::EVENTS_TAIL)]
    Tail {
        /// Type patterns: an exact type, `prefix.*`, or `*` for all (the default).
        #[arg(value_name = "PATTERN", default_value = "*")]
        patterns: Vec<String>,
    },
    /// Publish one event; prints how many subscribers it reached.
    #[command(after_help = super::examples::EVENTS_PUBLISH)]
    Publish {
        /// The event's exact type, e.g. `demo.message`.
        #[arg(value_name = "TYPE")]
        event_type: String,
        /// The payload, any JSON value.
        #[arg(value_name = "JSON", default_value = "null")]
        payload: String,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum AgentCommand {
    /// Run the agent in a project and stream its output; exits with the run's outcome.
    ///
    /// Prints the run id when it starts and its status and duration at the end (on
    /// stderr); on a terminal a spinner shows the elapsed time and what the agent does.
    /// Exit codes: 0 succeeded, 1 failed, 124 timed out, 125 refused by the hub (unknown
    /// or busy project, blank or too large prompt, too many runs), 126 could not start
    /// (no hub, or the hub cannot start the agent's CLI), 130 killed.
    #[command(after_help = super::examples::AGENT_RUN)]
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
        /// Print each output line as the JSON of its `project.output` params, one per
        /// line (as `logs --json`), instead of text; the exit code is the same.
        #[arg(long)]
        json: bool,
        /// The agent for this run only (it resumes that agent's own session of the
        /// project); default: the project's (`project.configure`).
        #[arg(long, value_parser = ["claude", "codex", "gemini"])]
        agent: Option<String>,
        /// Run in a git worktree of its own (branch `semantest/run-<run-id>` from the
        /// project's HEAD), beside the project's run and other such runs; the diff is
        /// printed at the end (`agent merge` / `agent discard` settle it).
        #[arg(long, conflicts_with = "in_worktree")]
        worktree: bool,
        /// Follow up in the worktree of an earlier `--worktree` run (any run that
        /// worked there), resuming its session.
        #[arg(long, value_name = "RUN_ID")]
        in_worktree: Option<String>,
    },
    /// Show the git worktree a `--worktree` run worked in: branch, state and diff.
    #[command(after_help = super::examples::AGENT_WORKTREE)]
    Worktree {
        /// The run's id (the one that made the worktree or a follow-up there).
        run_id: String,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge a `--worktree` run's branch into the branch it started from (fast-forward,
    /// else a merge commit; refused with the files named when it would conflict), then
    /// remove its worktree and branch.
    #[command(after_help = super::examples::AGENT_MERGE)]
    Merge {
        /// The run's id.
        run_id: String,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a `--worktree` run's worktree and branch, unmerged.
    #[command(after_help = super::examples::AGENT_DISCARD)]
    Discard {
        /// The run's id.
        run_id: String,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the project's running agent (SIGINT, then SIGTERM, then SIGKILL).
    #[command(after_help = super::examples::AGENT_KILL)]
    Kill {
        /// A project id, or a registered project's directory.
        project: String,
        /// A `--worktree` run of the project to stop instead of the project's run.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget the project's session: the next run starts a new conversation.
    #[command(after_help = super::examples::AGENT_NEW_SESSION)]
    NewSession {
        /// A project id, or a registered project's directory.
        project: String,
        /// Print the hub's JSON-RPC result as JSON.
        #[arg(long)]
        json: bool,
    },
}
