//! A run's output: stdout and stderr read line by line with a cap, stored in the feed,
//! and the stream-json `system`/`init` and `result` events summarised.
//!
//! Every stdout line is a stream-json event (`system`/`init`, `assistant`, `user`,
//! `result`, ...); the `init` and `result` events carry `session_id`, and `result` also
//! `total_cost_usd`, `duration_ms`, `num_turns` and `is_error` (Claude Code CLI
//! reference, "Output formats"). stdout and stderr are read at the same time by two
//! tasks, so a noisy stderr can never fill its pipe and stall the agent. Lines are framed
//! by hand with a cap (`agent.max_line_bytes`, 16 MiB by default) instead of the usual
//! 64 KiB limits.

use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tracing::warn;

use crate::error::ErrorChain;
use crate::feed::{Feed, Line};
use crate::metrics::Metrics;
use crate::project::Projects;
use crate::protocol::Stream;

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
    /// arrives alone is stored alone, at once.
    pub async fn run(self, stream: Stream, reader: impl AsyncRead + Unpin) {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let mut buf = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        loop {
            texts.clear();
            let mut bytes = 0usize;
            let ended = loop {
                match read_capped_line(&mut reader, &mut buf, self.max_line).await {
                    Ok(Some(dropped)) => {
                        let text = self.line_text(&buf, dropped);
                        bytes += text.len();
                        texts.push(text);
                    }
                    Ok(None) => break true,
                    Err(err) => {
                        warn!(error = %err, stream = stream.as_str(), "cannot read agent output");
                        break true;
                    }
                }
                if texts.len() >= BATCH_LINES
                    || bytes >= BATCH_BYTES
                    || !reader.buffer().contains(&b'\n')
                {
                    break false;
                }
            };
            if !texts.is_empty() {
                self.store(stream, &texts);
            }
            if ended {
                return;
            }
        }
    }

    /// A line as stored: lossy UTF-8, without a trailing `\r`, with a note when it was
    /// cut at the cap.
    fn line_text(&self, buf: &[u8], dropped: usize) -> String {
        let mut text = String::from_utf8_lossy(buf).into_owned();
        if text.ends_with('\r') {
            text.pop();
        }
        if dropped > 0 {
            text.push_str(&format!(
                " … [line cut: {dropped} more bytes over the {}-byte limit]",
                self.max_line
            ));
        }
        text
    }

    /// Stores a batch of lines and notes the `init` and `result` events among them.
    fn store(&self, stream: Stream, texts: &[String]) {
        let lines: Vec<Line<'_>> = texts
            .iter()
            .map(|text| Line {
                run_id: Some(&self.run_id),
                stream,
                text,
            })
            .collect();
        let outputs = match self.feed.append_all(&self.project_id, &lines) {
            Ok(outputs) => outputs,
            Err(err) => {
                warn!(
                    error = %ErrorChain(&err),
                    lines = lines.len(),
                    "cannot store agent output; lines dropped"
                );
                return;
            }
        };
        self.metrics.output_lines.inc_by(outputs.len() as u64);
        for output in outputs {
            if let (Some(event), "system" | "result") = (&output.event, output.kind.as_str())
                && let Ok(fields) = serde_json::from_str::<EventFields>(event.get())
            {
                self.note_event(&output.kind, fields);
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
        if let Some(session_id) = &fields.session_id
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

/// Reads one line (without its `\n`) into `buf`, keeping at most `max` bytes of it.
/// Returns `None` at end of input, else the number of bytes dropped from the line.
///
/// # Errors
/// The reader's I/O error.
pub async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<usize>> {
    buf.clear();
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
        let take = chunk.len().min(max.saturating_sub(buf.len()));
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
}
