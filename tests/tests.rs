//! Integration tests: real hubs on port 0, real WebSocket clients, the fake agent CLI,
//! and the real Claude Code CLI against a scripted fake Messages API.

// Shared helpers: test hub, JSON-RPC client, bare WebSocket, `eventually`; in
// util::cluster, instances sharing a real PostgreSQL and nats-server; in util::real_cli,
// the real agent CLIs against their fake model APIs.
mod util;

// Host/Origin allowlists, tokens, signature, dashboard sign-in.
mod security;
// Dashboard sessions: the cookie only from the dashboard's origins, sign-out, lifetime.
mod dashboard_sessions;
// Malformed frames and bad params: each gets its error, the connection lives on.
mod bad_input;
// Agent runs with the fake CLI: output, results, sessions, kill, timeout, crash.
mod agent_runs;
// Live sessions with the fake CLI: approvals, rules, timeouts, follow-ups, interrupts.
mod agent_sessions;
// Approvals asked by agent workers' task runs: they name the task, the timeout denies them.
mod task_approvals;
// The agent choice: project.configure {agent, model}, sessions per agent, agent_clis.
mod agent_choice;
// Attacks through the agent runner: option-shaped prompts and session ids, inherited secrets.
mod agent_security;
// Replay after reconnect, restarts, SIGKILL of the hub, orphan cleanup.
mod durability;
// Connection, rate and queue limits; heartbeat and idle timeout; shutdown.
mod limits;
// Agent cost and tokens per turn, run, project and day.
mod usage;
// The real Claude Code CLI making a real tool call against a fake API.
mod real_claude;
// The real Gemini CLI over the Agent Client Protocol, against a fake Gemini API.
mod real_gemini;
// The real Codex CLI (codex app-server) against a fake Responses API: approvals,
// follow-ups, interrupt, resume, a task, usage.
mod real_codex;
// The command-line client.
mod cli;
// The CLI in daily use: closed stdout, colour, --version, agent run's exit codes, TLS.
mod cli_daily;
// The files the packages install: the command, completions, man pages, bundle config.
mod packaging;
// `--json` on every command that prints data, `-q`, and the tables' alignment.
mod cli_json;
// A project's history: project.runs and full-text search in messages.list.
mod run_history;
// Squatters and relays on the CLI's recorded port, private file modes, redacted errors.
mod cli_security;
// The owner token in the OS keychain.
mod keychain;
// Tasks, workers, leases and report files.
mod coordination;
// A git worktree per task: diffs, merge, discard, retention, restart.
mod worktrees;
// Interactive runs in a git worktree of their own.
mod run_worktrees;
// `semantest-hub mcp` over stdio: the coordinator and worker tools, leases, tool errors.
mod mcp;
// `/mcp`: the same tools over Streamable HTTP, behind the Host, Origin and token checks.
mod mcp_http;
// `/mcp` on a public hub: the task queue's tools for a `tasks` token, over TLS.
mod mcp_public;
// The task commands of the CLI: create, list, show, watch, worker next, complete, fail.
mod cli_tasks;
// Client tokens: scopes, origin binding, revocation, the token CLI, the signature proof.
mod client_tokens;
// Pairing browser extensions: approval, denial, expiry, limits.
mod pairing;
// The agent limit under concurrent interactive runs and agent workers.
mod concurrency;
// Public mode: TLS, tokens only, public Host names, per-address limits, DISABLED.
mod public_mode;
// worker.heartbeat as a JSON-RPC notification keeps the lease.
mod worker_notifications;
// Event routing: matching, order, request/response, slow subscribers, bad input.
mod events;
// WebSocket conformance: the Autobahn TestSuite's cases on /ws's settings and on /ws.
mod conformance;
// SIGKILL under load, a client that stops reading, floods, a full disk, agent kills.
mod faults;
// Power cuts on a file system that loses what was not fsynced: nothing acknowledged lost.
mod power_cut;
// Big writes (10,000 tasks, a 100,000-line project deleted) while hub.status is timed.
mod faults_storage;
// Connection churn with memory and descriptors sampled: no growth.
mod soak;
// Public instances sharing PostgreSQL: tokens, revocations, pairings, losing the database.
mod cluster_store;
// Instances in public mode over NATS: cross-instance events, requests, revocation, faults.
mod cluster_events;
// The whole deployment: instances sharing PostgreSQL and NATS at once.
mod cluster;
