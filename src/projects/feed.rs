//! The project feed: history plus live stream of agent output, with no gap and no
//! duplicate.
//!
//! Appending a line (or a batch of lines, in one transaction) and fanning it out to live
//! subscribers happen under one lock, so a line is either in the store before a
//! subscriber goes live (and it replays it) or is pushed to it live, never both and never
//! neither. A subscriber that passes `after_seq` starts in *catch-up*: a task pages
//! through the store, and when a page comes back short it takes the lock, and if nothing
//! newer was appended meanwhile it flips the subscription to live before releasing the
//! lock.
//!
//! The store is also the buffer for slow readers: when a live subscriber's outgoing
//! queue is full, its subscription drops back to catch-up from the line it missed, so a
//! burst of output neither grows memory nor loses a line nor disconnects a reader that is
//! merely slower than the agent. A client that stops reading altogether is closed by the
//! connection's write timeout.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;

use crate::connections::{Client, Push};
use crate::protocol::{Stream, method, notification};
use crate::storage::sqlite::{MessageQuery, NewLine, Store, StoreError};
use crate::support::timestamp::{format_ms, now_ms};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Lines per page when replaying history to a subscriber.
const REPLAY_PAGE: u32 = 256;

struct Subscriber {
    client: Arc<Client>,
    live: bool,
    /// Lines up to this seq are not sent: the client said it has them.
    after: u64,
    /// Tells this subscription from a later one of the same client, so a replay never
    /// feeds or flips a subscription it was not started for.
    generation: u64,
}

#[derive(Default)]
struct ProjectFeed {
    last_seq: u64,
    subscribers: HashMap<u64, Subscriber>,
}

/// The feed of every project. Cheap to clone.
#[derive(Clone)]
pub struct Feed {
    store: Store,
    // A std Mutex: held for one SQLite insert and a non-blocking fan-out, never across
    // an await. It is taken before the store's own lock, never after.
    state: Arc<Mutex<HashMap<String, ProjectFeed>>>,
    generations: Arc<std::sync::atomic::AtomicU64>,
    tracker: TaskTracker,
}

/// A replay to run after the `project.subscribe` response is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayTicket {
    /// Replay lines with a greater seq.
    pub after_seq: u64,
    /// The subscription the replay belongs to.
    pub generation: u64,
}

/// A line to append, before it has a seq.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The run that produced it.
    pub run_id: Option<&'a str>,
    /// Its stream.
    pub stream: Stream,
    /// The raw text, without the newline.
    pub text: &'a str,
}

/// A line once stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its position in the project's log.
    pub seq: u64,
    /// The stream-json `type`, `json` for an object without a string `type`, `text` for
    /// any other stdout or hub line, `stderr`.
    pub kind: Cow<'static, str>,
    /// Whether the line is a JSON object (an event), forwarded as `event`.
    pub is_json: bool,
}

impl Feed {
    /// A feed whose projects start at the given last seqs; replays run on `tracker`.
    pub fn new(
        store: Store,
        projects: impl IntoIterator<Item = (String, u64)>,
        tracker: TaskTracker,
    ) -> Self {
        let state = projects
            .into_iter()
            .map(|(id, last_seq)| {
                (
                    id,
                    ProjectFeed {
                        last_seq,
                        ..Default::default()
                    },
                )
            })
            .collect();
        Self {
            store,
            state: Arc::new(Mutex::new(state)),
            generations: Arc::default(),
            tracker,
        }
    }

    fn state(&self) -> MutexGuard<'_, HashMap<String, ProjectFeed>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a newly created project.
    pub fn add_project(&self, project_id: &str) {
        self.state().entry(project_id.to_string()).or_default();
    }

    /// The newest seq of a project's log.
    pub fn last_seq(&self, project_id: &str) -> Option<u64> {
        self.state().get(project_id).map(|feed| feed.last_seq)
    }

    /// Drops a deleted project and its subscriptions.
    pub fn remove_project(&self, project_id: &str) {
        self.state().remove(project_id);
    }

    /// Stores a line, then pushes it to the project's live subscribers. A stdout line that
    /// is a JSON object is kept as a stream-json event of kind `type`; anything else is
    /// kept as text.
    ///
    /// # Errors
    /// [`StoreError`] when the line could not be stored; it is then not pushed either.
    pub fn append(&self, project_id: &str, line: Line<'_>) -> Result<Appended, StoreError> {
        let mut appended = self.append_all(project_id, &[line])?;
        Ok(appended.pop().expect("one line in, one line out"))
    }

    /// Stores lines in one transaction, then pushes each, in order, to the project's
    /// live subscribers: a line is delivered only once it is stored, and a batch costs
    /// one commit instead of one per line. Each line is parsed once (to classify it, as
    /// in [`Feed::append`]) and encoded once, straight from its text; every subscriber
    /// gets the same reference-counted frame. Returns each line's seq and kind, in
    /// order.
    ///
    /// # Errors
    /// [`StoreError`] when the lines could not be stored; then none is stored and none
    /// is pushed.
    pub fn append_all(
        &self,
        project_id: &str,
        lines: &[Line<'_>],
    ) -> Result<Vec<Appended>, StoreError> {
        let classes: Vec<(Cow<'static, str>, bool)> = lines
            .iter()
            .map(|line| match line.stream {
                Stream::Stderr => (Cow::Borrowed("stderr"), false),
                _ => match event_kind(line.text) {
                    Some(kind) => (Cow::Owned(kind), true),
                    None => (Cow::Borrowed("text"), false),
                },
            })
            .collect();
        let ts = now_ms();
        let rows: Vec<NewLine<'_>> = lines
            .iter()
            .zip(&classes)
            .map(|(line, (kind, is_json))| NewLine {
                run_id: line.run_id,
                ts,
                stream: line.stream,
                kind,
                body: line.text,
                is_json: *is_json,
            })
            .collect();
        let mut state = self.state();
        let seqs: Vec<u64> = self.store.append_all(project_id, &rows)?.collect();
        drop(rows);
        let mut lagging = Vec::new();
        if let Some(feed) = state.get_mut(project_id) {
            if let Some(last) = seqs.last() {
                feed.last_seq = *last;
            }
            let ts = format_ms(ts);
            for ((line, (kind, is_json)), &seq) in lines.iter().zip(&classes).zip(&seqs) {
                let mut live = feed
                    .subscribers
                    .values_mut()
                    .filter(|s| s.live && seq > s.after)
                    .peekable();
                if live.peek().is_none() {
                    continue;
                }
                let head = OutputHead {
                    project_id,
                    seq,
                    ts: &ts,
                    run_id: line.run_id,
                    stream: line.stream,
                    kind,
                    text: (!is_json).then_some(line.text),
                };
                let message = output_frame(&head, is_json.then(|| line.text.trim()));
                for subscriber in live {
                    if subscriber.client.try_push_output(message.clone()) == Push::Full {
                        // Not live any more: the rest of the batch skips it, its replay
                        // starts at this line.
                        subscriber.live = false;
                        subscriber.generation = self.next_generation();
                        let ticket = ReplayTicket {
                            after_seq: seq - 1,
                            generation: subscriber.generation,
                        };
                        lagging.push((subscriber.client.clone(), ticket));
                    }
                }
            }
        }
        drop(state);
        for (client, ticket) in lagging {
            tracing::debug!(
                conn_id = client.id(),
                seq = ticket.after_seq + 1,
                "slow subscriber catches up from the store"
            );
            self.start_replay(project_id, client, ticket);
        }
        Ok(seqs
            .into_iter()
            .zip(classes)
            .map(|(seq, (kind, is_json))| Appended { seq, kind, is_json })
            .collect())
    }

    /// Subscribes `client` to a project. Returns the project's last seq and, when history
    /// must be replayed first, a ticket for [`Feed::replay`] (run it after the response is
    /// queued). Subscribing again replaces the earlier subscription and ends its replay.
    pub fn subscribe(
        &self,
        project_id: &str,
        client: &Arc<Client>,
        after_seq: Option<u64>,
    ) -> Option<(u64, Option<ReplayTicket>)> {
        let mut state = self.state();
        let feed = state.get_mut(project_id)?;
        let generation = self.next_generation();
        let ticket = after_seq
            .filter(|after| *after < feed.last_seq)
            .map(|after_seq| ReplayTicket {
                after_seq,
                generation,
            });
        feed.subscribers.insert(
            client.id(),
            Subscriber {
                client: client.clone(),
                live: ticket.is_none(),
                after: after_seq.unwrap_or(0),
                generation,
            },
        );
        Some((feed.last_seq, ticket))
    }

    /// Removes a subscription. Returns whether there was one.
    pub fn unsubscribe(&self, project_id: &str, client_id: u64) -> bool {
        self.state()
            .get_mut(project_id)
            .is_some_and(|feed| feed.subscribers.remove(&client_id).is_some())
    }

    /// Removes every subscription of a client.
    pub fn unsubscribe_all(&self, client_id: u64) {
        for feed in self.state().values_mut() {
            feed.subscribers.remove(&client_id);
        }
    }

    /// Whether the client subscribes to anything.
    pub fn has_subscriptions(&self, client_id: u64) -> bool {
        self.state()
            .values()
            .any(|feed| feed.subscribers.contains_key(&client_id))
    }

    /// Sends the client every stored line after the ticket's seq, then makes its
    /// subscription live. Ends early if the client goes away, unsubscribes or subscribes
    /// again.
    ///
    /// # Errors
    /// [`StoreError`] when a page cannot be read; the client is then closed, since its
    /// view would have a gap.
    pub async fn replay(
        &self,
        project_id: &str,
        client: &Arc<Client>,
        ticket: ReplayTicket,
    ) -> Result<(), StoreError> {
        let mut cursor = ticket.after_seq;
        loop {
            if !self.is_current(project_id, client.id(), ticket.generation) {
                return Ok(());
            }
            let page = self.store.messages(&MessageQuery {
                project_id: project_id.to_string(),
                after_seq: Some(cursor),
                limit: REPLAY_PAGE,
                max_bytes: 8 * 1024 * 1024,
                ..Default::default()
            })?;
            for output in &page.messages {
                let message = Utf8Bytes::from(notification(method::PROJECT_OUTPUT, output));
                if !client.send_output(message).await {
                    return Ok(());
                }
                cursor = output.seq;
            }
            if page.has_more {
                continue;
            }
            let mut state = self.state();
            let Some(feed) = state.get_mut(project_id) else {
                return Ok(());
            };
            if feed.last_seq > cursor {
                continue; // Lines arrived while we sent; read them before going live.
            }
            if let Some(subscriber) = feed.subscribers.get_mut(&client.id())
                && subscriber.generation == ticket.generation
            {
                subscriber.live = true;
            }
            return Ok(());
        }
    }

    /// Runs [`Feed::replay`] on the hub's task tracker; a replay that fails closes the
    /// client, since its view would have a gap.
    pub fn start_replay(&self, project_id: &str, client: Arc<Client>, ticket: ReplayTicket) {
        let (feed, project_id) = (self.clone(), project_id.to_string());
        self.tracker.spawn(
            async move {
                if let Err(err) = feed.replay(&project_id, &client, ticket).await {
                    tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), "replay failed");
                    client.close(crate::connections::CLOSE_POLICY, "replay failed");
                }
            }
            .in_current_span(),
        );
    }

    fn next_generation(&self) -> u64 {
        self.generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn is_current(&self, project_id: &str, client_id: u64, generation: u64) -> bool {
        self.state()
            .get(project_id)
            .and_then(|feed| feed.subscribers.get(&client_id))
            .is_some_and(|subscriber| subscriber.generation == generation)
    }
}

/// Classifies a stdout line as a stream-json event: a JSON object, of kind `type` when
/// that is a string and `json` otherwise (Claude Code CLI, `--output-format
/// stream-json`). Returns `None` for anything else. One parse, which also checks that
/// the whole line is valid JSON, so it can be forwarded byte for byte.
fn event_kind(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    let kind = serde_json::from_str::<TypeOnly>(trimmed).ok()?.kind;
    Some(match kind {
        Some(serde_json::Value::String(kind)) => kind,
        _ => "json".to_string(),
    })
}

/// The fields of a `project.output` notification before the event, in the order and
/// shape of [`Output`]'s.
#[derive(Serialize)]
struct OutputHead<'a> {
    project_id: &'a str,
    seq: u64,
    ts: &'a str,
    run_id: Option<&'a str>,
    stream: Stream,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

/// Encodes a `project.output` notification as `notification(PROJECT_OUTPUT, &output)`
/// encodes the matching [`Output`], but writes `event` (a line [`event_kind`] accepted,
/// so valid JSON) verbatim into the frame instead of copying it into a `RawValue` first.
fn output_frame(head: &OutputHead<'_>, event: Option<&str>) -> Utf8Bytes {
    let mut frame = notification(method::PROJECT_OUTPUT, head);
    if let Some(event) = event {
        // `head` has no `text` here, so the frame ends with the `}}` that close the
        // params and the notification: put the event before them.
        debug_assert!(head.text.is_none() && frame.ends_with("}}"));
        frame.truncate(frame.len() - 2);
        frame.reserve_exact(event.len() + 11);
        frame.push_str(",\"event\":");
        frame.push_str(event);
        frame.push_str("}}");
    }
    Utf8Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Output;
    use serde_json::value::RawValue;

    #[test]
    fn stream_json_lines_are_events_and_others_text() {
        assert_eq!(
            event_kind(r#" {"type":"result","total_cost_usd":0.1}"#).as_deref(),
            Some("result")
        );
        assert_eq!(event_kind(r#"{"no_type":1}"#).as_deref(), Some("json"));
        assert_eq!(event_kind(r#"{"type":7}"#).as_deref(), Some("json"));
        assert_eq!(event_kind(r#"{"type":"a\u0062"}"#).as_deref(), Some("ab"));
        assert!(event_kind("plain text").is_none());
        assert!(event_kind("{broken").is_none());
        assert!(event_kind(r#"{"type":"x"} trailing"#).is_none());
        assert!(event_kind("[1,2]").is_none());
    }

    #[test]
    fn output_frames_match_the_output_encoding() {
        let event = r#"{"type":"assistant","message":{"content":[{"text":"h\u00e9 \"q\""}]}}"#;
        let cases = [
            (Stream::Stdout, "assistant", Some(event), None, Some("r1")),
            (
                Stream::Stdout,
                "text",
                None,
                Some("plain \"quoted\" é"),
                Some("r1"),
            ),
            (Stream::Stderr, "stderr", None, Some("oops\t"), None),
            (
                Stream::Hub,
                "run_started",
                Some(r#"{"type":"run_started"}"#),
                None,
                Some("r2"),
            ),
        ];
        for (stream, kind, event, text, run_id) in cases {
            let head = OutputHead {
                project_id: "p1",
                seq: 42,
                ts: "2026-01-02T03:04:05.678Z",
                run_id,
                stream,
                kind,
                text,
            };
            let output = Output {
                project_id: "p1".to_string(),
                seq: 42,
                ts: head.ts.to_string(),
                run_id: run_id.map(str::to_string),
                stream,
                kind: kind.to_string(),
                event: event.map(|e| RawValue::from_string(e.to_string()).unwrap()),
                text: text.map(str::to_string),
            };
            let frame = output_frame(&head, event);
            assert_eq!(
                frame.as_str(),
                notification(method::PROJECT_OUTPUT, &output)
            );
            let parsed: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
            assert_eq!(parsed["params"]["seq"], 42);
        }
    }
}
