//! A run's output: stdout and stderr read line by line with a cap, stored in the feed,
//! and the stream-json `system`/`init` and `result` events summarised.
//!
//! Every stdout line is a stream-json event (`system`/`init`, `assistant`, `user`,
//! `result`, ...); the `init` and `result` events carry `session_id`, and `result` also
//! `total_cost_usd`, `duration_ms`, `num_turns` and `is_error` (Claude Code CLI
//! reference, "Output formats"). stdout and stderr are read at the same time by two
//! tasks, so a noisy stderr can never fill its pipe and stall the agent. Lines are framed
//! by hand with a cap (`agent.max_line_bytes`, 16 MiB by default) instead of the usual
//! 64 KiB limits. Each `result` line is also handed to the run's [`Meter`], which
//! records the turn's usage.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tracing::warn;

use super::driver::{AgentEvent, claude};
use super::peer::{Inbox, Incoming};
use crate::projects::feed::{Feed, Line};
use crate::projects::{Projects, valid_session_id};
use crate::protocol::Stream;
use crate::protocol::error::ErrorChain;
use crate::support::metrics::Metrics;

use super::metering::Meter;

/// What the `system`/`init` and `result` events told about a run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// The session the run reported.
    pub session_id: Option<String>,
    /// Whether a `result` event arrived.
    pub result_seen: bool,
    /// `is_error` of the `result` event.
    pub is_error: bool,
    /// `total_cost_usd`, in US dollars.
    pub cost_usd: Option<f64>,
    /// `duration_ms`.
    pub duration_ms: Option<i64>,
    /// `num_turns`.
    pub num_turns: Option<i64>,
    /// The `result` text.
    pub result_text: Option<String>,
}

/// The fields of `init` and `result` events the hub records.
#[derive(Deserialize)]
struct EventFields {
    session_id: Option<String>,
    is_error: Option<bool>,
    total_cost_usd: Option<f64>,
    duration_ms: Option<i64>,
    num_turns: Option<i64>,
    subtype: Option<String>,
    result: Option<serde_json::Value>,
    claude_code_version: Option<String>,
    model: Option<String>,
}

/// Where one stream's lines go.
#[derive(Clone)]
pub struct Pump {
    /// The project's log.
    pub feed: Feed,
    /// Counts lines.
    pub metrics: Arc<Metrics>,
    /// Set for an interactive run: its session becomes the project's.
    pub projects: Option<Projects>,
    /// The project.
    pub project_id: String,
    /// The run.
    pub run_id: String,
    /// `agent.max_line_bytes`.
    pub max_line: usize,
    /// Filled in as `init` and `result` events arrive.
    pub summary: Arc<Mutex<Summary>>,
    /// For stdout: where the agent's protocol messages go, in the order of their lines,
    /// after the lines are stored.
    pub events: Option<Tap>,
    /// Records each turn's usage.
    pub meter: Arc<Meter>,
}

/// Where a run's stdout protocol lines go once stored.
#[derive(Clone)]
pub enum Tap {
    /// Claude Code: the stream-json lines the session acts on, parsed into events.
    Claude(tokio::sync::mpsc::Sender<AgentEvent>),
    /// A JSON-RPC agent: every line through the peer's inbox (responses reach their
    /// requests there), the rest to the driver task.
    Rpc {
        /// The peer's receiving half.
        inbox: Arc<Inbox>,
        /// To the driver task.
        incoming: tokio::sync::mpsc::Sender<Incoming>,
    },
}

/// Lines stored in one transaction, at most.
const BATCH_LINES: usize = 256;
/// Bytes of lines stored in one transaction, at most (one line more than that may go
/// with them).
const BATCH_BYTES: usize = 1024 * 1024;

impl Pump {
    /// Reads one stream line by line into the feed until it ends.
    ///
    /// The complete lines already in the read buffer go into the log together, in one
    /// transaction (up to [`BATCH_LINES`] lines or [`BATCH_BYTES`]), and are pushed to
    /// subscribers after it commits. A batch never waits for more output: a line that
    /// arrives alone is stored alone, at once. A batch's lines are read into one buffer,
    /// reused from batch to batch, and stored from it without a copy when they are valid
    /// UTF-8.
    pub async fn run(self, stream: Stream, reader: impl AsyncRead + Unpin) {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        // Every line of the batch, back to back; `lines` holds each one's range and the
        // bytes cut from it at the cap.
        let mut batch: Vec<u8> = Vec::new();
        let mut lines: Vec<(Range<usize>, usize)> = Vec::new();
        loop {
            batch.clear();
            lines.clear();
            let ended = loop {
                let start = batch.len();
                match append_capped_line(&mut reader, &mut batch, self.max_line).await {
                    Ok(Some(dropped)) => lines.push((start..batch.len(), dropped)),
                    Ok(None) => break true,
                    Err(err) => {
                        warn!(error = %err, stream = stream.as_str(), "cannot read agent output");
                        break true;
                    }
                }
                if lines.len() >= BATCH_LINES
                    || batch.len() >= BATCH_BYTES
                    || !reader.buffer().contains(&b'\n')
                {
                    break false;
                }
            };
            if !lines.is_empty() {
                let texts: Vec<Cow<'_, str>> = lines
                    .iter()
                    .map(|(range, dropped)| {
                        line_text(&batch[range.clone()], *dropped, self.max_line)
                    })
                    .collect();
                self.store(stream, &texts).await;
            }
            if ended {
                if let Some(Tap::Rpc { inbox, .. }) = &self.events {
                    // No answer can come any more.
                    inbox.close();
                }
                return;
            }
        }
    }

    /// Stores a batch of lines and notes the `init` and `result` events among them.
    async fn store(&self, stream: Stream, texts: &[Cow<'_, str>]) {
        let lines: Vec<Line<'_>> = texts
            .iter()
            .map(|text| Line {
                run_id: Some(&self.run_id),
                stream,
                text,
            })
            .collect();
        let appended = match self.feed.append_all(&self.project_id, &lines).await {
            Ok(appended) => appended,
            Err(err) => {
                warn!(
                    error = %ErrorChain(&err),
                    lines = lines.len(),
                    "cannot store agent output; lines dropped"
                );
                return;
            }
        };
        self.metrics.output_lines.inc_by(appended.len() as u64);
        for (line, appended) in lines.iter().zip(&appended) {
            if appended.is_json
                && matches!(&*appended.kind, "system" | "result")
                && let Ok(fields) = serde_json::from_str::<EventFields>(line.text)
            {
                self.note_event(&appended.kind, fields);
                if appended.kind == "result" && stream == Stream::Stdout {
                    self.meter.record(line.text).await;
                }
            }
            // A full queue makes the agent wait for the session, never drops an event.
            match &self.events {
                Some(Tap::Claude(events))
                    if appended.is_json && claude::is_protocol_kind(&appended.kind) =>
                {
                    if let Some(event) = claude::parse_line(line.text) {
                        let _ = events.send(event).await;
                    }
                }
                Some(Tap::Rpc { inbox, incoming }) => {
                    if let Some(message) = inbox.receive(line.text) {
                        let _ = incoming.send(message).await;
                    }
                }
                _ => {}
            }
        }
    }

    fn note_event(&self, kind: &str, fields: EventFields) {
        let Ok(mut summary) = self.summary.lock() else {
            return;
        };
        if kind == "system" && fields.subtype.as_deref() != Some("init") {
            return;
        }
        if kind == "system" {
            self.meter
                .note_init(fields.claude_code_version.clone(), fields.model.clone());
        }
        if let Some(session_id) = &fields.session_id
            && !valid_session_id(session_id)
        {
            // Never recorded, so never passed to `--resume`, where it could be an option.
            warn!(
                session_id,
                "the agent reported a session id that is not a UUID; ignored"
            );
        } else if let Some(session_id) = &fields.session_id
            && summary.session_id.as_ref() != Some(session_id)
        {
            summary.session_id = Some(session_id.clone());
            // Recorded at once, so a run killed mid-way can still be resumed. A task run
            // has a session of its own and leaves the project's alone.
            if let Some(projects) = &self.projects
                && let Err(err) = projects.set_session(&self.project_id, Some(session_id))
            {
                warn!(error = %ErrorChain(&err), "cannot record the session id");
            }
        }
        if kind == "result" {
            summary.result_seen = true;
            summary.is_error = fields.is_error.unwrap_or(false);
            summary.cost_usd = fields.total_cost_usd;
            summary.duration_ms = fields.duration_ms;
            summary.num_turns = fields.num_turns;
            summary.result_text = fields.result.and_then(|r| r.as_str().map(str::to_string));
        }
    }
}

/// A line as stored: without a trailing `\r`, lossy UTF-8 (borrowed when it is
/// valid), with a note when it was cut at the cap
/// (`max_line`, in bytes).
fn line_text(bytes: &[u8], dropped: usize, max_line: usize) -> Cow<'_, str> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    if dropped == 0 {
        return text;
    }
    let mut text = text.into_owned();
    text.push_str(&format!(
        " … [line cut: {dropped} more bytes over the {}-byte limit]",
        max_line
    ));
    Cow::Owned(text)
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `max` bytes of it.
/// Returns `None` at end of input, else the number of bytes dropped from the line.
///
/// # Errors
/// The reader's I/O error.
#[cfg(any(test, feature = "bench-internals"))]
pub async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    append_capped_line(reader, buf, max).await
}

/// Reads one line (without its `\n`) and appends at most `max` bytes of it to `buf`,
/// after what `buf` already holds. Returns `None` at end of input (nothing appended),
/// else the number of bytes dropped from the line.
///
/// # Errors
/// The reader's I/O error; part of the line may have been appended.
pub async fn append_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<usize>> {
    let start = buf.len();
    let mut dropped = 0usize;
    let mut seen_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(seen_any.then_some(dropped));
        }
        seen_any = true;
        let (chunk, consumed, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let take = chunk.len().min(max.saturating_sub(buf.len() - start));
        buf.extend_from_slice(&chunk[..take]);
        dropped += chunk.len() - take;
        reader.consume(consumed);
        if done {
            return Ok(Some(dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capped_lines_keep_long_lines_whole_and_cut_huge_ones() {
        let long = "x".repeat(200_000);
        let input = format!("short\r\n{long}\nlast-without-newline");
        let mut reader = BufReader::with_capacity(1024, input.as_bytes());
        let mut buf = Vec::new();
        let next = async |reader: &mut BufReader<&[u8]>, buf: &mut Vec<u8>, max| {
            read_capped_line(reader, buf, max).await.unwrap()
        };
        assert_eq!(next(&mut reader, &mut buf, 1 << 20).await, Some(0));
        assert_eq!(buf, b"short\r");
        assert_eq!(next(&mut reader, &mut buf, 1 << 20).await, Some(0));
        assert_eq!(buf.len(), 200_000);
        assert_eq!(next(&mut reader, &mut buf, 1 << 20).await, Some(0));
        assert_eq!(buf, b"last-without-newline");
        assert_eq!(next(&mut reader, &mut buf, 1 << 20).await, None);

        let input = format!("{long}\nnext\n");
        let mut reader = BufReader::with_capacity(1024, input.as_bytes());
        assert_eq!(next(&mut reader, &mut buf, 1000).await, Some(199_000));
        assert_eq!(buf.len(), 1000);
        assert_eq!(next(&mut reader, &mut buf, 1000).await, Some(0));
        assert_eq!(buf, b"next");
    }

    #[tokio::test]
    async fn appended_lines_are_capped_on_their_own_length() {
        let mut reader = BufReader::with_capacity(4, &b"abcdef\nxy\n"[..]);
        let mut buf = b"kept".to_vec();
        let dropped = append_capped_line(&mut reader, &mut buf, 3).await.unwrap();
        assert_eq!((dropped, &buf[..]), (Some(3), &b"keptabc"[..]));
        let dropped = append_capped_line(&mut reader, &mut buf, 3).await.unwrap();
        assert_eq!((dropped, &buf[..]), (Some(0), &b"keptabcxy"[..]));
        assert_eq!(
            append_capped_line(&mut reader, &mut buf, 3).await.unwrap(),
            None
        );
    }

    #[test]
    fn line_text_borrows_valid_utf8_and_repairs_the_rest() {
        assert!(matches!(
            line_text(b"{\"a\":1}\r", 0, 10),
            Cow::Borrowed("{\"a\":1}")
        ));
        assert_eq!(line_text(b"ok \xff", 0, 10), "ok \u{fffd}");
        assert_eq!(
            line_text(b"abc", 5, 3),
            "abc … [line cut: 5 more bytes over the 3-byte limit]"
        );
    }
}
