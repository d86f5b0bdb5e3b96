//! Starting a run's CLI process with its driver: the arguments and environment of the
//! run's agent, the stdin writer (Claude Code) or the JSON-RPC peer and driver task
//! (Codex, ACP agents), and the process group recorded for crash cleanup.

use std::sync::Arc;

use tokio::process::Child;
use tokio::sync::mpsc;
use tracing::{Instrument, warn};

use super::claude_cli::AgentCli;
use super::output::Tap;
use super::session::{self, Input};
use super::{RunContext, Runner, driver, peer, process};
use crate::projects::RunSetup;
use crate::protocol::agents::AgentKind;
use crate::protocol::error::ErrorChain;

/// A started CLI process and how its output reaches the session.
pub(super) struct Launched {
    pub(super) child: Child,
    /// Where stdout's protocol lines go.
    pub(super) tap: Tap,
    /// The driver's events, for the session.
    pub(super) events: mpsc::Receiver<driver::AgentEvent>,
}

impl Runner {
    /// Starts a run's CLI process with its driver, and records its process group, so a
    /// crash of the hub can be cleaned up later.
    ///
    /// Claude Code's stdin is written by [`session::write_input`], and its protocol lines
    /// are parsed as they are read; a JSON-RPC agent gets a [`peer`] whose writer owns
    /// its stdin, and a driver task ([`driver::drive`]) between the peer and the session.
    ///
    /// # Errors
    /// A message for the user when the CLI cannot start or exits before it is tracked.
    pub(super) fn launch(
        &self,
        cli: &AgentCli,
        ctx: &RunContext,
        inputs: mpsc::Receiver<Input>,
        setup: RunSetup,
    ) -> Result<Launched, String> {
        let config = &self.parts().config;
        let (model, mut env) = match ctx.agent {
            AgentKind::Claude => (config.model.clone(), config.env.clone()),
            AgentKind::Codex => (config.codex.model.clone(), config.env.clone()),
            AgentKind::Gemini => (config.gemini.model.clone(), config.env.clone()),
        };
        env.extend(match ctx.agent {
            AgentKind::Claude => Default::default(),
            AgentKind::Codex => config.codex.env.clone(),
            AgentKind::Gemini => config.gemini.env.clone(),
        });
        // The totals a resumed session's next turn is measured from (Claude Code's are
        // read by its meter instead, from the same place).
        let totals = match (&setup.session, ctx.agent) {
            (Some(session), AgentKind::Codex | AgentKind::Gemini) => {
                let store = &self.parts().store;
                crate::support::blocking::blocking(|| store.last_session_totals_blocking(session))
                    .inspect_err(
                        |err| warn!(error = %ErrorChain(err), "cannot read a session's totals"),
                    )
                    .ok()
                    .flatten()
                    .and_then(|json| serde_json::from_str(&json).ok())
            }
            _ => None,
        };
        let start = driver::Start {
            cwd: setup.path,
            resume: setup.session,
            model: setup.model.or(model),
            permission_mode: config.permission_mode.clone(),
            sandbox: config.codex.sandbox.clone(),
            totals,
        };
        let args = driver::args(ctx.agent, &start)
            .ok_or_else(|| format!("this hub cannot run {} yet", ctx.agent.title()))?;
        let mut child = process::spawn_cli(&cli.path, &args, &start.cwd, &env)
            .map_err(|err| format!("cannot start {}: {err}", cli.path.display()))?;
        let (events_tx, events) = mpsc::channel(64);
        let stdin = child.stdin.take();
        let tap = match (driver::dialect(ctx.agent), stdin) {
            (None, stdin) => {
                if let Some(stdin) = stdin {
                    self.parts()
                        .tracker
                        .spawn(session::write_input(stdin, inputs).in_current_span());
                }
                Tap::Claude(events_tx)
            }
            (Some(dialect), stdin) => {
                let (out, lines) = mpsc::channel(session::INPUT_QUEUE);
                if let Some(stdin) = stdin {
                    self.parts()
                        .tracker
                        .spawn(peer::write_lines(stdin, lines).in_current_span());
                }
                let (peer, inbox) = peer::pair(dialect, out);
                let (incoming_tx, incoming) = mpsc::channel(64);
                let link = driver::Link {
                    peer,
                    incoming,
                    inputs,
                    events: events_tx,
                    start,
                };
                self.parts()
                    .tracker
                    .spawn(driver::drive(ctx.agent, link).in_current_span());
                Tap::Rpc {
                    inbox: Arc::new(inbox),
                    incoming: incoming_tx,
                }
            }
        };
        let pgid = child
            .id()
            .map(|pid| pid as i32)
            .ok_or_else(|| "the agent exited before it could be tracked".to_string())?;
        if let Err(err) = self.parts().store.set_run_pgid(&ctx.run.id, pgid) {
            warn!(error = %ErrorChain(&err), "cannot record the run's process group");
        }
        Ok(Launched { child, tap, events })
    }
}
