//! A run's meter: each `result` line the output pump stores becomes one recorded turn
//! (the `usage` table and the Prometheus counters), measured by the rule in [`usage`].
//!
//! The meter keeps what the rule needs between the lines of one process: the totals of
//! its previous `result`, and the CLI version and model of its `init` line. For the
//! first `result` of a process that resumed a session, the session's last recorded
//! totals come from the store. Lines of one run arrive in order from one stdout pump,
//! which awaits each record before it reads on, so the state never sees two at once.

use std::sync::{Arc, Mutex, MutexGuard};

use tracing::warn;

use super::driver::TurnTokens;
use super::usage::{self, Before, ResultLine, Snapshot};
use crate::protocol::error::ErrorChain;
use crate::storage::sqlite::{Store, TurnRow};
use crate::support::metrics::Metrics;
use crate::support::timestamp::now_ms;

/// What a meter knows of its run.
pub struct MeterParts {
    /// Where turns are recorded.
    pub store: Store,
    /// The token and cost counters.
    pub metrics: Arc<Metrics>,
    /// The project.
    pub project_id: String,
    /// The project's name, kept with each turn.
    pub project_name: String,
    /// The run.
    pub run_id: String,
    /// Whether the process was started with `--resume`.
    pub resumed: bool,
}

#[derive(Default)]
struct State {
    /// The totals after the process's last `result`.
    last: Option<Snapshot>,
    /// `result` lines seen.
    turns: u32,
    /// `claude_code_version` of `init`.
    version: Option<String>,
    /// `model` of `init`.
    model: Option<String>,
    /// Sum of the run's turns, US dollars.
    usd: f64,
}

/// Measures one run's turns. Shared by the run's output pumps.
pub struct Meter {
    parts: MeterParts,
    /// A std `Mutex`: held for a few field updates, never across `.await`.
    state: Mutex<State>,
}

impl Meter {
    /// A meter that has seen nothing yet.
    pub fn new(parts: MeterParts) -> Self {
        Self {
            parts,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes the `init` line's CLI version and model.
    pub fn note_init(&self, version: Option<String>, model: Option<String>) {
        let mut state = self.state();
        if version.is_some() {
            state.version = version;
        }
        if model.is_some() {
            state.model = model;
        }
    }

    /// The sum of the turns recorded so far in US dollars, `None` before the first.
    pub fn run_usd(&self) -> Option<f64> {
        let state = self.state();
        (state.turns > 0).then_some(state.usd)
    }

    /// Measures and records the turn a `result` line (its stored text) ends. A line
    /// that cannot be read or stored is logged and skipped; the run goes on.
    pub async fn record(&self, text: &str) {
        let line: ResultLine = match serde_json::from_str(text) {
            Ok(line) => line,
            Err(err) => {
                warn!(error = %err, run_id = %self.parts.run_id, "cannot read a result line's usage");
                return;
            }
        };
        let first = self.state().last.is_none();
        let stored = match (&line.session_id, first && self.parts.resumed) {
            (Some(session_id), true) => self.stored_totals(session_id).await,
            _ => None,
        };
        let (turn, index) = {
            let mut state = self.state();
            let before = match (&state.last, self.parts.resumed) {
                (Some(last), _) => Before::Process(last),
                (None, true) => Before::Resumed {
                    stored: stored.as_ref(),
                    version: state.version.as_deref(),
                },
                (None, false) => Before::Fresh,
            };
            let turn = usage::turn_usage(&line, before, state.model.as_deref());
            state.last = Some(turn.snapshot.clone());
            state.turns += 1;
            state.usd += turn.usd;
            (turn, state.turns)
        };
        self.parts.metrics.observe_turn(
            turn.usd,
            [
                ("input", turn.tokens.input),
                ("output", turn.tokens.output),
                ("cache_read", turn.tokens.cache_read),
                ("cache_creation", turn.tokens.cache_creation),
            ],
        );
        let totals = match serde_json::to_string(&turn.snapshot) {
            Ok(totals) => totals,
            Err(err) => {
                warn!(error = %err, "cannot encode a turn's totals");
                return;
            }
        };
        let row = TurnRow {
            project_id: self.parts.project_id.clone(),
            project_name: self.parts.project_name.clone(),
            run_id: self.parts.run_id.clone(),
            session_id: line.session_id.clone(),
            turn: index,
            ts: now_ms(),
            usd: turn.usd,
            input_tokens: turn.tokens.input,
            output_tokens: turn.tokens.output,
            cache_read_tokens: turn.tokens.cache_read,
            cache_creation_tokens: turn.tokens.cache_creation,
            model: turn.model,
            basis: turn.basis.as_str(),
            total_usd: turn.snapshot.total_usd,
            totals,
        };
        if let Err(err) = self.parts.store.insert_turn(row).await {
            warn!(error = %ErrorChain(&err), run_id = %self.parts.run_id, turn = index,
                  "cannot record a turn's usage");
        }
    }

    /// Records a turn whose tokens the driver counted itself (Codex, ACP agents): no
    /// cumulative totals to subtract here, the driver already did. `usd` is the hub's
    /// estimate from its price table, `None` when the model has no price there (then
    /// 0 is stored). Stored with the basis `priced` (an estimate) or `tokens` (no price).
    pub async fn record_tokens(
        &self,
        tokens: &TurnTokens,
        totals: Option<&serde_json::Value>,
        session_id: Option<String>,
        usd: Option<f64>,
    ) {
        let index = {
            let mut state = self.state();
            state.turns += 1;
            state.usd += usd.unwrap_or(0.0);
            state.turns
        };
        let input = tokens.input;
        self.parts.metrics.observe_turn(
            usd.unwrap_or(0.0),
            [
                ("input", input),
                ("output", tokens.output),
                ("cache_read", tokens.cache_read),
                ("cache_creation", tokens.cache_write),
            ],
        );
        let row = TurnRow {
            project_id: self.parts.project_id.clone(),
            project_name: self.parts.project_name.clone(),
            run_id: self.parts.run_id.clone(),
            session_id,
            turn: index,
            ts: now_ms(),
            usd: usd.unwrap_or(0.0),
            input_tokens: input,
            output_tokens: tokens.output,
            cache_read_tokens: tokens.cache_read,
            cache_creation_tokens: tokens.cache_write,
            model: tokens.model.clone(),
            basis: if usd.is_some() { "priced" } else { "tokens" },
            total_usd: 0.0,
            totals: totals
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string(),
        };
        if let Err(err) = self.parts.store.insert_turn(row).await {
            warn!(error = %ErrorChain(&err), run_id = %self.parts.run_id, turn = index,
                  "cannot record a turn's usage");
        }
    }

    /// The totals last recorded for `session_id`, if readable.
    async fn stored_totals(&self, session_id: &str) -> Option<Snapshot> {
        match self.parts.store.last_session_totals(session_id).await {
            Ok(Some(json)) => serde_json::from_str(&json)
                .inspect_err(|err| warn!(error = %err, session_id, "unreadable stored totals"))
                .ok(),
            Ok(None) => None,
            Err(err) => {
                warn!(error = %ErrorChain(&err), session_id, "cannot read a session's totals");
                None
            }
        }
    }
}
