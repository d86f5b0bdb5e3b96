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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use serde_json::value::RawValue;

use crate::clients::{Client, Push};
use crate::protocol::{Output, Stream, method, notification};
use crate::store::{MessageQuery, NewLine, Store, StoreError};
use crate::timestamp::{format_ms, now_ms};
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
    pub fn append(&self, project_id: &str, line: Line<'_>) -> Result<Output, StoreError> {
        let mut outputs = self.append_all(project_id, &[line])?;
        Ok(outputs.pop().expect("one line in, one output out"))
    }

    /// Stores lines in one transaction, then pushes each, in order, to the project's
    /// live subscribers: a line is delivered only once it is stored, and a batch costs
    /// one commit instead of one per line. Each line is encoded once; every subscriber
    /// gets the same reference-counted frame. Lines are classified as in
    /// [`Feed::append`].
    ///
    /// # Errors
    /// [`StoreError`] when the lines could not be stored; then none is stored and none
    /// is pushed.
    pub fn append_all(
        &self,
        project_id: &str,
        lines: &[Line<'_>],
    ) -> Result<Vec<Output>, StoreError> {
        struct Parsed {
            kind: String,
            event: Option<Box<RawValue>>,
        }
        let parsed: Vec<Parsed> = lines
            .iter()
            .map(|line| {
                let event = match line.stream {
                    Stream::Stderr => None,
                    _ => parse_event(line.text),
                };
                match (event, line.stream) {
                    (Some((kind, raw)), _) => Parsed {
                        kind,
                        event: Some(raw),
                    },
                    (None, Stream::Stderr) => Parsed {
                        kind: "stderr".to_string(),
                        event: None,
                    },
                    (None, _) => Parsed {
                        kind: "text".to_string(),
                        event: None,
                    },
                }
            })
            .collect();
        let ts = now_ms();
        let rows: Vec<NewLine<'_>> = lines
            .iter()
            .zip(&parsed)
            .map(|(line, parsed)| NewLine {
                run_id: line.run_id,
                ts,
                stream: line.stream,
                kind: &parsed.kind,
                body: line.text,
                is_json: parsed.event.is_some(),
            })
            .collect();
        let mut state = self.state();
        let seqs = self.store.append_all(project_id, &rows)?;
        drop(rows);
        let ts = format_ms(ts);
        let outputs: Vec<Output> = lines
            .iter()
            .zip(parsed)
            .zip(seqs)
            .map(|((line, parsed), seq)| Output {
                project_id: project_id.to_string(),
                seq,
                ts: ts.clone(),
                run_id: line.run_id.map(str::to_string),
                stream: line.stream,
                kind: parsed.kind,
                text: parsed.event.is_none().then(|| line.text.to_string()),
                event: parsed.event,
            })
            .collect();
        let mut lagging = Vec::new();
        if let Some(feed) = state.get_mut(project_id) {
            if let Some(last) = outputs.last() {
                feed.last_seq = last.seq;
            }
            for output in &outputs {
                let seq = output.seq;
                let mut live = feed
                    .subscribers
                    .values_mut()
                    .filter(|s| s.live && seq > s.after)
                    .peekable();
                if live.peek().is_none() {
                    continue;
                }
                let message = Utf8Bytes::from(notification(method::PROJECT_OUTPUT, output));
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
        Ok(outputs)
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
                    tracing::warn!(error = %crate::error::ErrorChain(&err), "replay failed");
                    client.close(crate::clients::CLOSE_POLICY, "replay failed");
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

/// Parses a stdout line as a stream-json event: a JSON object whose `type` is a string
/// (Claude Code CLI, `--output-format stream-json`). Returns the type and the line as a
/// raw JSON value, so it is forwarded byte for byte.
fn parse_event(text: &str) -> Option<(String, Box<RawValue>)> {
    #[derive(serde::Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    let kind = serde_json::from_str::<TypeOnly>(trimmed)
        .ok()?
        .kind
        .and_then(|kind| kind.as_str().map(str::to_string))
        .unwrap_or_else(|| "json".to_string());
    let raw = RawValue::from_string(trimmed.to_string()).ok()?;
    Some((kind, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_json_lines_are_events_and_others_text() {
        let (kind, raw) = parse_event(r#"{"type":"result","total_cost_usd":0.1}"#).unwrap();
        assert_eq!(kind, "result");
        assert_eq!(raw.get(), r#"{"type":"result","total_cost_usd":0.1}"#);
        assert_eq!(parse_event(r#"{"no_type":1}"#).unwrap().0, "json");
        assert!(parse_event("plain text").is_none());
        assert!(parse_event("{broken").is_none());
        assert!(parse_event("[1,2]").is_none());
    }
}
