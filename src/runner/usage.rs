//! The usage rule: a Claude Code `result` line, plus what was seen before it, into the
//! usage of the one turn it ends (US dollars, tokens by kind, model). Pure: no I/O, no
//! clock.
//!
//! What the CLI reports (Claude Code's stream-json `result` event; `sdk.d.ts`, the
//! `SDKResultMessage` doc comments, and runs of 2.1.197 and 2.1.337):
//!
//! - `total_cost_usd` and `modelUsage` (per model: `inputTokens`, `outputTokens`,
//!   `cacheReadInputTokens`, `cacheCreationInputTokens`, `costUSD`) are **cumulative for
//!   the process**: two turns of one process report 0.00175, then 0.0035.
//! - A process started with `--resume` **continues from the total its transcript saved**
//!   on recent versions (2.1.337: 0.0028, then 0.0042 for a turn of 0.0014), but
//!   **starts from zero** on older ones (2.1.197). The version where this changed lies
//!   between the two and is not known.
//! - 2.1.337 also reports `model_usage_since_last_result`: the turn's own usage per
//!   model, which needs no subtraction.
//! - `usage` covers the turn's main loop only (no side requests), in snake_case.
//!
//! The rule ([`turn_usage`]), in order:
//!
//! 1. `model_usage_since_last_result` when present: its sum ([`Basis::Reported`]);
//! 2. else, after an earlier result of the same process: the difference from that
//!    result's totals ([`Basis::Process`]);
//! 3. else, for the first result of a process that resumed a session the hub has totals
//!    for, when the CLI carries totals across `--resume`: the difference from those
//!    ([`Basis::Session`]). It carries them from 2.1.337 on, not up to 2.1.197; for a
//!    version in between (or none reported) the totals tell: a total below the stored one
//!    can only have restarted from zero;
//! 4. else the totals as they are ([`Basis::Whole`]): the first turn of a fresh process,
//!    or of a resumed one that started from zero.
//!
//! A difference is never negative: a counter that went backwards counts as zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One model's usage in `modelUsage` or `model_usage_since_last_result` (camelCase, as
/// the CLI writes it). Missing fields count as zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelUsage {
    /// Input tokens not read from or written to the cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Cost in US dollars.
    #[serde(rename = "costUSD")]
    pub cost_usd: f64,
}

/// The `usage` object of a `result` line: the turn's main loop (snake_case, the
/// Messages API's names).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LoopUsage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache reads.
    pub cache_read_input_tokens: u64,
    /// Cache writes.
    pub cache_creation_input_tokens: u64,
}

/// The fields of a `result` line the rule reads. Unknown fields are ignored and key
/// order does not matter (2.1.337 no longer puts `type` first).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResultLine {
    /// The session the turn belongs to.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Cumulative cost in US dollars (see the module doc).
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
    /// Cumulative usage by model.
    #[serde(default, rename = "modelUsage")]
    pub model_usage: Option<BTreeMap<String, ModelUsage>>,
    /// The turn's own usage by model (2.1.337 and later).
    #[serde(default)]
    pub model_usage_since_last_result: Option<BTreeMap<String, ModelUsage>>,
    /// The turn's main-loop tokens.
    #[serde(default)]
    pub usage: Option<LoopUsage>,
}

/// Cumulative totals as a `result` line reported them; what the next turn is measured
/// from. Stored with each turn as JSON, so figures can be recomputed if the CLI changes
/// its semantics again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `total_cost_usd`, in US dollars.
    pub total_usd: f64,
    /// `modelUsage`.
    pub models: BTreeMap<String, ModelUsage>,
}

/// Tokens by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Input tokens (not cached).
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation: u64,
}

/// How a turn's figure was obtained (stored with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The CLI's own per-turn figure, `model_usage_since_last_result`.
    Reported,
    /// The difference from the previous result of the same process.
    Process,
    /// The difference from the last totals the hub stored for the resumed session.
    Session,
    /// The totals as reported: the first turn the process counted.
    Whole,
}

impl Basis {
    /// The stored name: `reported`, `process`, `session`, `whole`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Process => "process",
            Self::Session => "session",
            Self::Whole => "whole",
        }
    }
}

/// What came before a `result` line.
#[derive(Debug, Clone, Copy)]
pub enum Before<'a> {
    /// The first result of a process that started a new session.
    Fresh,
    /// An earlier result of the same process, with its totals.
    Process(&'a Snapshot),
    /// The first result of a process started with `--resume`.
    Resumed {
        /// The last totals the hub stored for that session, if any.
        stored: Option<&'a Snapshot>,
        /// The CLI's version (`claude_code_version` of the `init` line), if reported.
        version: Option<&'a str>,
    },
}

/// One turn's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnUsage {
    /// Cost in US dollars, never negative.
    pub usd: f64,
    /// Tokens by kind.
    pub tokens: Tokens,
    /// The model that cost the most in the turn (else the one `init` named).
    pub model: Option<String>,
    /// How the figure was obtained.
    pub basis: Basis,
    /// The cumulative totals after the turn: the next turn's [`Before::Process`].
    pub snapshot: Snapshot,
}

/// The last version seen to start a resumed process's totals from zero.
const LAST_RESTARTING: (u32, u32, u32) = (2, 1, 197);
/// The first version seen to carry a resumed session's totals.
const FIRST_CARRYING: (u32, u32, u32) = (2, 1, 337);

/// `major.minor.patch` at the start of a version string (`"2.1.337"`, `"2.1.337 (Claude
/// Code)"`).
fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let core = version.split_whitespace().next()?;
    let mut parts = core.split(['.', '-', '+']);
    let mut next = || parts.next()?.parse::<u32>().ok();
    Some((next()?, next()?, next()?))
}

/// Whether a resumed process's first total includes the session's earlier turns.
fn carries_over(version: Option<&str>, total: f64, stored_total: f64) -> bool {
    match version.and_then(parse_version) {
        Some(v) if v <= LAST_RESTARTING => false,
        Some(v) if v >= FIRST_CARRYING => true,
        // Unknown: a total below the stored one cannot include it.
        _ => total + 1e-12 >= stored_total,
    }
}

/// The tokens of every model in `models`, by kind.
fn sum<'a>(models: impl Iterator<Item = &'a ModelUsage>) -> Tokens {
    let mut tokens = Tokens::default();
    for usage in models {
        tokens.input += usage.input_tokens;
        tokens.output += usage.output_tokens;
        tokens.cache_read += usage.cache_read_input_tokens;
        tokens.cache_creation += usage.cache_creation_input_tokens;
    }
    tokens
}

/// `now - before`, field by field, never below zero.
fn difference(now: &ModelUsage, before: Option<&ModelUsage>) -> ModelUsage {
    let Some(before) = before else {
        return now.clone();
    };
    ModelUsage {
        input_tokens: now.input_tokens.saturating_sub(before.input_tokens),
        output_tokens: now.output_tokens.saturating_sub(before.output_tokens),
        cache_read_input_tokens: now
            .cache_read_input_tokens
            .saturating_sub(before.cache_read_input_tokens),
        cache_creation_input_tokens: now
            .cache_creation_input_tokens
            .saturating_sub(before.cache_creation_input_tokens),
        cost_usd: (now.cost_usd - before.cost_usd).max(0.0),
    }
}

/// The model with the largest cost in `per_model` (ties: more output tokens, then the
/// name).
fn main_model(per_model: &BTreeMap<String, ModelUsage>) -> Option<String> {
    per_model
        .iter()
        .filter(|(_, u)| u.cost_usd > 0.0 || u.input_tokens + u.output_tokens > 0)
        .max_by(|(a_name, a), (b_name, b)| {
            a.cost_usd
                .total_cmp(&b.cost_usd)
                .then(a.output_tokens.cmp(&b.output_tokens))
                .then(b_name.cmp(a_name))
        })
        .map(|(name, _)| name.clone())
}

/// The usage of the turn that `line` ends, by the rule in the module doc.
/// `init_model` is the model the `init` line named, used when the line names none.
pub fn turn_usage(line: &ResultLine, before: Before<'_>, init_model: Option<&str>) -> TurnUsage {
    let reported_total = line.total_cost_usd.filter(|t| t.is_finite() && *t >= 0.0);
    let (base, basis) = match before {
        Before::Fresh => (None, Basis::Whole),
        Before::Process(snapshot) => (Some(snapshot), Basis::Process),
        Before::Resumed {
            stored: Some(stored),
            version,
        } if carries_over(version, reported_total.unwrap_or(0.0), stored.total_usd) => {
            (Some(stored), Basis::Session)
        }
        Before::Resumed { .. } => (None, Basis::Whole),
    };
    let snapshot = Snapshot {
        // A line without a total leaves the totals where they were.
        total_usd: reported_total.unwrap_or_else(|| base.map_or(0.0, |b| b.total_usd)),
        models: match &line.model_usage {
            Some(models) => models.clone(),
            None => base.map(|b| b.models.clone()).unwrap_or_default(),
        },
    };
    let (usd, per_model, basis) = match &line.model_usage_since_last_result {
        Some(own) => (
            own.values().map(|u| u.cost_usd.max(0.0)).sum(),
            own.clone(),
            Basis::Reported,
        ),
        None => {
            let usd = (snapshot.total_usd - base.map_or(0.0, |b| b.total_usd)).max(0.0);
            let per_model = match &line.model_usage {
                Some(models) => models
                    .iter()
                    .map(|(name, now)| {
                        let before = base.and_then(|b| b.models.get(name));
                        (name.clone(), difference(now, before))
                    })
                    .collect(),
                None => BTreeMap::new(),
            };
            (usd, per_model, basis)
        }
    };
    let tokens = if per_model.is_empty() {
        // No per-model figures: the main loop's own tokens are the best there are.
        line.usage
            .as_ref()
            .map_or(Tokens::default(), |usage| Tokens {
                input: usage.input_tokens,
                output: usage.output_tokens,
                cache_read: usage.cache_read_input_tokens,
                cache_creation: usage.cache_creation_input_tokens,
            })
    } else if basis == Basis::Reported {
        sum(per_model.values())
    } else {
        // All models' totals now minus before, not model by model: a resumed process
        // may name the same model differently ("claude-opus-4-8[1m]", then
        // "claude-opus-4-8" on 2.1.197), which would count its earlier tokens again.
        let now = sum(snapshot.models.values());
        let before = base.map_or(Tokens::default(), |b| sum(b.models.values()));
        Tokens {
            input: now.input.saturating_sub(before.input),
            output: now.output.saturating_sub(before.output),
            cache_read: now.cache_read.saturating_sub(before.cache_read),
            cache_creation: now.cache_creation.saturating_sub(before.cache_creation),
        }
    };
    TurnUsage {
        usd,
        tokens,
        model: main_model(&per_model).or_else(|| init_model.map(str::to_string)),
        basis,
        snapshot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> ResultLine {
        serde_json::from_str(text).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    // Shapes as 2.1.197 writes them: cumulative totals, no per-turn field.
    const OLD_TURN_1: &str = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"session_id":"s1","total_cost_usd":0.00175,"usage":{"input_tokens":200,"output_tokens":30,"cache_read_input_tokens":0,"cache_creation_input_tokens":0},"modelUsage":{"claude-sonnet-4-5":{"inputTokens":200,"outputTokens":30,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":0.00105,"contextWindow":200000},"claude-haiku-4-5":{"inputTokens":500,"outputTokens":40,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":0.0007,"contextWindow":200000}},"permission_denials":[]}"#;
    const OLD_TURN_2: &str = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"session_id":"s1","total_cost_usd":0.0035,"usage":{"input_tokens":200,"output_tokens":30},"modelUsage":{"claude-sonnet-4-5":{"inputTokens":400,"outputTokens":60,"cacheReadInputTokens":10,"cacheCreationInputTokens":0,"costUSD":0.0021},"claude-haiku-4-5":{"inputTokens":1000,"outputTokens":80,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"costUSD":0.0014}}}"#;
    // 2.1.337: `type` not first, `result_index`, and the turn's own usage.
    const NEW_RESUMED: &str = r#"{"result_index":3,"session_id":"s1","subtype":"success","total_cost_usd":0.0042,"type":"result","modelUsage":{"claude-sonnet-4-5":{"inputTokens":600,"outputTokens":90,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"costUSD":0.0042}},"model_usage_since_last_result":{"claude-sonnet-4-5":{"inputTokens":200,"outputTokens":30,"cacheReadInputTokens":0,"cacheCreationInputTokens":5,"costUSD":0.0014}}}"#;

    #[test]
    fn the_first_turn_of_a_fresh_process_is_its_totals() {
        let turn = turn_usage(&line(OLD_TURN_1), Before::Fresh, None);
        assert!(close(turn.usd, 0.00175));
        assert_eq!(turn.basis, Basis::Whole);
        assert_eq!(
            turn.tokens,
            Tokens {
                input: 700,
                output: 70,
                cache_read: 0,
                cache_creation: 0
            }
        );
        assert_eq!(turn.model.as_deref(), Some("claude-sonnet-4-5"));
        assert!(close(turn.snapshot.total_usd, 0.00175));
    }

    #[test]
    fn a_second_turn_of_one_process_is_the_difference() {
        let first = turn_usage(&line(OLD_TURN_1), Before::Fresh, None);
        let second = turn_usage(&line(OLD_TURN_2), Before::Process(&first.snapshot), None);
        assert!(close(second.usd, 0.00175), "{}", second.usd);
        assert_eq!(second.basis, Basis::Process);
        assert_eq!(
            second.tokens,
            Tokens {
                input: 700,
                output: 70,
                cache_read: 10,
                cache_creation: 0
            }
        );
        assert!(close(first.usd + second.usd, 0.0035));
    }

    #[test]
    fn the_reported_per_turn_figure_wins_over_any_difference() {
        let stored = Snapshot {
            total_usd: 0.0028,
            models: BTreeMap::new(),
        };
        for before in [
            Before::Fresh,
            Before::Process(&stored),
            Before::Resumed {
                stored: Some(&stored),
                version: Some("2.1.337"),
            },
        ] {
            let turn = turn_usage(&line(NEW_RESUMED), before, None);
            assert!(close(turn.usd, 0.0014), "{before:?}: {}", turn.usd);
            assert_eq!(turn.basis, Basis::Reported);
            assert_eq!(
                turn.tokens,
                Tokens {
                    input: 200,
                    output: 30,
                    cache_read: 0,
                    cache_creation: 5
                }
            );
            assert!(close(turn.snapshot.total_usd, 0.0042));
        }
    }

    #[test]
    fn a_resumed_process_that_carries_the_total_is_measured_from_the_stored_one() {
        // 2.1.337 without the per-turn field (as some builds in between might write it).
        let mut resumed = line(NEW_RESUMED);
        resumed.model_usage_since_last_result = None;
        let stored = Snapshot {
            total_usd: 0.0028,
            models: [(
                "claude-sonnet-4-5".to_string(),
                ModelUsage {
                    input_tokens: 400,
                    output_tokens: 60,
                    cost_usd: 0.0028,
                    ..ModelUsage::default()
                },
            )]
            .into(),
        };
        for version in [Some("2.1.337"), Some("2.1.250"), None] {
            let turn = turn_usage(
                &resumed,
                Before::Resumed {
                    stored: Some(&stored),
                    version,
                },
                None,
            );
            assert!(close(turn.usd, 0.0014), "{version:?}: {}", turn.usd);
            assert_eq!(turn.basis, Basis::Session);
            assert_eq!((turn.tokens.input, turn.tokens.output), (200, 30));
        }
    }

    #[test]
    fn a_resumed_process_that_restarts_from_zero_counts_its_totals_whole() {
        let stored = Snapshot {
            total_usd: 0.0035,
            models: BTreeMap::new(),
        };
        // 2.1.197 restarts: the turn is the whole 0.00175, even when the stored total is
        // no larger (a total equal to it must not become zero).
        for stored_total in [0.0035, 0.00175, 0.001] {
            let stored = Snapshot {
                total_usd: stored_total,
                ..stored.clone()
            };
            let turn = turn_usage(
                &line(OLD_TURN_1),
                Before::Resumed {
                    stored: Some(&stored),
                    version: Some("2.1.197"),
                },
                None,
            );
            assert!(close(turn.usd, 0.00175), "{stored_total}: {}", turn.usd);
            assert_eq!(turn.basis, Basis::Whole);
        }
        // Unknown version: a total below the stored one has restarted.
        let turn = turn_usage(
            &line(OLD_TURN_1),
            Before::Resumed {
                stored: Some(&stored),
                version: Some("2.1.250"),
            },
            None,
        );
        assert!(close(turn.usd, 0.00175));
        assert_eq!(turn.basis, Basis::Whole);
        // Nothing stored for the session: whole.
        let turn = turn_usage(
            &line(OLD_TURN_2),
            Before::Resumed {
                stored: None,
                version: Some("2.1.337"),
            },
            None,
        );
        assert!(close(turn.usd, 0.0035));
    }

    #[test]
    fn a_model_renamed_by_a_resumed_process_does_not_count_its_tokens_twice() {
        let stored = Snapshot {
            total_usd: 0.00175,
            models: [(
                "claude-opus-4-8[1m]".to_string(),
                ModelUsage {
                    input_tokens: 200,
                    output_tokens: 30,
                    cost_usd: 0.00175,
                    ..ModelUsage::default()
                },
            )]
            .into(),
        };
        let resumed = line(
            r#"{"type":"result","session_id":"s","total_cost_usd":0.0035,"modelUsage":{"claude-opus-4-8":{"inputTokens":400,"outputTokens":60,"costUSD":0.0035}}}"#,
        );
        let turn = turn_usage(
            &resumed,
            Before::Resumed {
                stored: Some(&stored),
                version: Some("2.1.337"),
            },
            None,
        );
        assert!(close(turn.usd, 0.00175));
        assert_eq!((turn.tokens.input, turn.tokens.output), (200, 30));
        assert_eq!(turn.model.as_deref(), Some("claude-opus-4-8"));
    }

    #[test]
    fn counters_that_go_backwards_count_as_zero() {
        let later = turn_usage(&line(OLD_TURN_2), Before::Fresh, None);
        let turn = turn_usage(&line(OLD_TURN_1), Before::Process(&later.snapshot), None);
        assert_eq!(turn.usd, 0.0);
        assert_eq!(turn.tokens, Tokens::default());
    }

    #[test]
    fn a_line_without_per_model_figures_uses_the_main_loop_tokens_and_init_model() {
        let bare = line(
            r#"{"type":"result","session_id":"s","total_cost_usd":0.0123,"usage":{"input_tokens":10,"output_tokens":20}}"#,
        );
        let turn = turn_usage(&bare, Before::Fresh, Some("fake-model"));
        assert!(close(turn.usd, 0.0123));
        assert_eq!(
            turn.tokens,
            Tokens {
                input: 10,
                output: 20,
                cache_read: 0,
                cache_creation: 0
            }
        );
        assert_eq!(turn.model.as_deref(), Some("fake-model"));
        // No total at all: costs nothing, and the totals stay where they were.
        let before = Snapshot {
            total_usd: 0.5,
            models: BTreeMap::new(),
        };
        let turn = turn_usage(
            &line(r#"{"type":"result"}"#),
            Before::Process(&before),
            None,
        );
        assert_eq!(turn.usd, 0.0);
        assert_eq!(turn.snapshot.total_usd, 0.5);
    }

    #[test]
    fn versions_parse_with_or_without_a_suffix() {
        assert_eq!(parse_version("2.1.337"), Some((2, 1, 337)));
        assert_eq!(parse_version("2.1.197 (Claude Code)"), Some((2, 1, 197)));
        assert_eq!(parse_version("2.1.300-beta.1"), Some((2, 1, 300)));
        assert_eq!(parse_version("two"), None);
        assert!(!carries_over(Some("1.0.0"), 5.0, 1.0));
        assert!(carries_over(Some("3.0.0"), 0.0, 1.0));
    }
}
