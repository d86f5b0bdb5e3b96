//! A run's supervisor: from its process's start to its end, the output pumps, the
//! session loop, stopping the process group, judging how the run ended and recording
//! that end (the run row, the permit, the `run_finished` line, the project's state).

use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::oneshot;
use tracing::{Instrument, info, warn};

use crate::events::Event;
use crate::protocol::error::ErrorChain;
use crate::protocol::{ProjectState, RunStatus, StateChange, Stream};
use crate::storage::sqlite::RunOutcome;
use crate::support::timestamp::now_ms;

use super::approvals::Asker;
use super::hub_lines::RunFinishedLine;
use super::metering::{Meter, MeterParts};
use super::output::{Pump, Summary};
use super::session::{Live, Session};
use super::slots::Permit;
use super::{RunContext, RunEnd, Runner, RunnerParts, process};

/// How a run's session loop ended.
pub(super) enum Ending {
    Exited(std::io::Result<ExitStatus>),
    /// The driver cannot go on ([`AgentEvent::Fatal`](super::driver::AgentEvent::Fatal)), with why.
    Fatal(String),
    Stopped,
    TimedOut,
    /// An interrupted turn did not end within `agent.interrupt_timeout_ms`.
    InterruptIgnored,
}

impl Runner {
    pub(super) fn emit_state(&self, ctx: &RunContext, reason: Option<&str>) {
        if let Ok(view) = self.parts().projects.get(&ctx.project_id) {
            self.parts().sink.emit(Event::ProjectState(StateChange {
                project_id: ctx.project_id.clone(),
                state: view.state,
                session_id: view.session_id,
                run_id: Some(ctx.run.id.clone()),
                reason: reason.map(str::to_string),
            }));
        }
    }

    /// Records a run's end: the run row, the permit given back, the project's state
    /// (interactive) or the task run forgotten, then the finish line in the log
    /// (awaited), then the events.
    ///
    /// The state is stored before the finish line goes out, so a client that starts the
    /// next run as soon as it reads `run_finished` finds the project free, not
    /// `PROJECT_BUSY`.
    pub(super) async fn record_end(&self, ctx: &RunContext, outcome: &RunOutcome, permit: Permit) {
        let line = self.record_end_row(ctx, outcome, permit).await;
        self.record_end_state(ctx, outcome).await;
        self.hub_line(ctx, line).await;
        if ctx.interactive() {
            self.emit_state(ctx, outcome.error.as_deref());
        }
        self.parts().sink.emit(Event::RunFinished);
    }

    /// The first part of [`Runner::record_end`]: the run row and the permit; returns the
    /// finish line to store.
    async fn record_end_row(
        &self,
        ctx: &RunContext,
        outcome: &RunOutcome,
        permit: Permit,
    ) -> Option<String> {
        if let Err(err) = self
            .parts()
            .store
            .finish_run(&ctx.run.id, outcome, now_ms())
            .await
        {
            warn!(error = %ErrorChain(&err), "cannot record the run's end");
        }
        // The process group is gone: the slot is free before anyone hears of the end.
        drop(permit);
        Self::hub_text(&RunFinishedLine {
            kind: "run_finished",
            run_id: &ctx.run.id,
            task_id: ctx.task_id(),
            status: outcome.status,
            exit_code: outcome.exit_code,
            reason: outcome.error.as_deref(),
            total_cost_usd: outcome.reported_total_usd,
            cost_usd: outcome.cost_usd,
        })
    }

    /// The second part of [`Runner::record_end`]: the project's state (interactive), or
    /// the task run forgotten.
    async fn record_end_state(&self, ctx: &RunContext, outcome: &RunOutcome) {
        if ctx.interactive() {
            let state = match outcome.status {
                RunStatus::Succeeded => ProjectState::Idle,
                RunStatus::Killed => ProjectState::Killed,
                _ => ProjectState::Failed,
            };
            if let Err(err) = self
                .parts()
                .projects
                .end_run(&ctx.project_id, state, outcome.error.as_deref())
                .await
            {
                warn!(error = %ErrorChain(&err), "cannot record the project's state");
            }
        } else {
            self.task_runs().remove(&ctx.run.id);
        }
    }

    pub(super) async fn supervise(
        self,
        ctx: RunContext,
        mut child: Child,
        permit: Permit,
        done: oneshot::Sender<RunEnd>,
        started_line: Option<String>,
        live: Live,
    ) {
        let parts = self.parts();
        // Before any output line, so the log reads in order.
        self.hub_line(&ctx, started_line).await;
        let pgid = child.id().map(|pid| pid as i32).unwrap_or_default();
        let summary = Arc::new(Mutex::new(Summary::default()));
        let meter = Arc::new(Meter::new(MeterParts {
            store: parts.store.clone(),
            metrics: parts.metrics.clone(),
            project_id: ctx.project_id.clone(),
            project_name: parts
                .projects
                .get(&ctx.project_id)
                .map(|view| view.name)
                .unwrap_or_default(),
            run_id: ctx.run.id.clone(),
            resumed: ctx.resumed,
        }));
        let pump = Pump {
            feed: parts.feed.clone(),
            metrics: parts.metrics.clone(),
            projects: ctx.interactive().then(|| parts.projects.clone()),
            project_id: ctx.project_id.clone(),
            run_id: ctx.run.id.clone(),
            max_line: parts.config.max_line_bytes,
            summary: summary.clone(),
            events: None,
            meter: meter.clone(),
        };
        let pumps = [
            child.stdout.take().map(|out| {
                let pump = Pump {
                    events: Some(live.tap),
                    ..pump.clone()
                };
                tokio::spawn(pump.run(Stream::Stdout, out).in_current_span())
            }),
            child
                .stderr
                .take()
                .map(|err| tokio::spawn(pump.clone().run(Stream::Stderr, err).in_current_span())),
        ];
        let mut session = Session {
            runner: &self,
            ctx: &ctx,
            asker: Asker {
                project_id: ctx.project_id.clone(),
                run_id: ctx.run.id.clone(),
                task_id: ctx.task_id().map(str::to_owned),
                input: live.input,
            },
            turns: 0,
            turn_deadline: None,
            idle_deadline: None,
            interrupt_deadline: None,
            closing: false,
            next_now: None,
            summary: summary.clone(),
            meter: meter.clone(),
        };
        session.start_turn(&live.first_prompt, "prompt", None).await;
        let mut ending = session.run(&mut child, live.events, live.commands).await;
        // No new command reaches this run from now on.
        self.end_session(&ctx);
        let why = match &ending {
            Ending::Exited(_) => "the agent exited",
            _ => "the run was stopped",
        };
        parts.approvals.withdraw(&ctx.run.id, None, why).await;
        parts.approvals.end_run(&ctx.run.id);
        let grace = Duration::from_millis(parts.config.kill_grace_ms);
        let status = match &mut ending {
            Ending::Exited(status) => {
                process::end_leftovers(pgid, grace).await;
                status.as_ref().ok().copied()
            }
            Ending::Stopped | Ending::TimedOut | Ending::InterruptIgnored | Ending::Fatal(_) => {
                process::stop_group(pgid, &mut child, grace).await
            }
        };
        // Output already in the pipes is still read; a descendant that escaped the group
        // and holds a pipe open must not hold the run open too.
        for pump in pumps.into_iter().flatten() {
            let abort = pump.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), pump)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let summary = summary.lock().map(|s| s.clone()).unwrap_or_default();
        let (status_name, reason) = judge(&ending, status, &summary, &ctx, parts);
        let outcome = RunOutcome {
            status: status_name,
            exit_code: status.and_then(|s| s.code()),
            session_id: summary.session_id.clone(),
            // The run's own cost: its turns' sum, which the CLI's cumulative total
            // exceeds when the process carried a resumed session's total.
            cost_usd: meter.run_usd().or(summary.cost_usd),
            reported_total_usd: summary.cost_usd,
            duration_ms: summary.duration_ms,
            num_turns: summary.num_turns,
            error: reason,
        };
        info!(
            status = status_name.as_str(),
            exit_code = outcome.exit_code,
            cost_usd = summary.cost_usd,
            "agent run finished"
        );
        parts.metrics.observe_run(
            status_name.as_str(),
            (now_ms() - ctx.run.started_at) as f64 / 1000.0,
        );
        self.record_end(&ctx, &outcome, permit).await;
        let _ = done.send(RunEnd {
            run_id: ctx.run.id.clone(),
            status: outcome.status,
            reason: outcome.error,
            result_text: summary.result_text,
            session_id: outcome.session_id,
            cost_usd: outcome.cost_usd,
            duration_ms: outcome.duration_ms,
        });
    }

    /// Forgets a run's session handle, if it is still the project's.
    fn end_session(&self, ctx: &RunContext) {
        let mut sessions = self.sessions();
        if sessions
            .get(&ctx.project_id)
            .is_some_and(|s| s.run_id == ctx.run.id)
        {
            sessions.remove(&ctx.project_id);
        }
    }
}

/// How a run ended and why, from how it stopped, its exit status and its summary.
fn judge(
    ending: &Ending,
    status: Option<ExitStatus>,
    summary: &Summary,
    ctx: &RunContext,
    parts: &RunnerParts,
) -> (RunStatus, Option<String>) {
    let exit_code = status.and_then(|s| s.code());
    let describe_exit = || match status {
        Some(s) if s.code().is_some() => format!(
            "the agent exited with code {}",
            s.code().unwrap_or_default()
        ),
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            format!(
                "the agent was ended by signal {}",
                s.signal().unwrap_or_default()
            )
        }
        None => "the agent's exit status is unknown".into(),
    };
    match ending {
        Ending::Stopped if parts.shutdown.is_cancelled() => {
            (RunStatus::Killed, Some("the hub shut down".to_string()))
        }
        Ending::Stopped => (RunStatus::Killed, Some("killed on request".to_string())),
        Ending::Fatal(reason) => (RunStatus::Failed, Some(reason.clone())),
        Ending::TimedOut => (
            RunStatus::TimedOut,
            Some(format!("timed out after {} s", ctx.timeout.as_secs())),
        ),
        Ending::InterruptIgnored => (
            RunStatus::Killed,
            Some(format!(
                "the agent did not stop within {} ms of an interrupt; its processes were ended",
                parts.config.interrupt_timeout_ms
            )),
        ),
        Ending::Exited(_) if summary.is_error => (
            RunStatus::Failed,
            Some(
                summary
                    .result_text
                    .clone()
                    .unwrap_or_else(|| "the agent reported an error".into()),
            ),
        ),
        Ending::Exited(_) if exit_code != Some(0) => (RunStatus::Failed, Some(describe_exit())),
        Ending::Exited(_) if !summary.result_seen => (
            RunStatus::Failed,
            Some("the agent exited without a result line".into()),
        ),
        Ending::Exited(_) => (RunStatus::Succeeded, None),
    }
}
