//! One WebSocket connection: a writer task that owns the sink and a reader loop.
//!
//! The writer drains the client's bounded queue, sends a ping every
//! `limits.ping_interval_s` (RFC 6455 section 5.5.2) and sends the close frame. The
//! reader parses JSON-RPC requests, applies the per-connection rate limit, dispatches
//! and queues the response. Either half ending ends the other. The connection closes
//! with 1001 on shutdown, 1008 when the client stops reading, 1009 for an oversized
//! message and 1000 after `limits.idle_timeout_s` without any frame from the client.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use governor::Quota;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span};

use crate::app::edge::ConnectionCtx;
use crate::connections::{
    CLOSE_GOING_AWAY, CLOSE_INVALID_DATA, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG, Client,
};
use crate::protocol::error::{ErrorChain, ErrorKind, RpcError};
use crate::protocol::events::to_result;
use crate::protocol::{Incoming, RequestId, error_response, parse_incoming, response};
use crate::pubsub::broker::PendingRequest;
use crate::rpc::{Reply, dispatch, runs_as_notification};

/// Serves an upgraded connection until it closes.
pub(crate) async fn serve_socket(
    socket: WebSocket,
    ctx: ConnectionCtx,
    client: Arc<Client>,
    rx: mpsc::Receiver<Utf8Bytes>,
) {
    let span = info_span!("conn", conn_id = client.id());
    let (sink, stream) = socket.split();
    handle_socket(sink, stream, ctx, client, rx)
        .instrument(span)
        .await;
}

/// The connection loop, generic over the transport so it can be tested with channels.
pub(crate) async fn handle_socket<W, R>(
    sink: W,
    mut stream: R,
    ctx: ConnectionCtx,
    client: Arc<Client>,
    rx: mpsc::Receiver<Utf8Bytes>,
) where
    W: Sink<Message> + Unpin + Send + 'static,
    W::Error: std::fmt::Display,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let limits = ctx.limits.clone();
    ctx.opened();
    tracing::debug!("connection opened");

    let writer = tokio::spawn(
        write_loop(
            sink,
            rx,
            client.clone(),
            Duration::from_secs(limits.ping_interval_s),
            Duration::from_secs(limits.write_timeout_s),
        )
        .in_current_span(),
    );
    let quota =
        Quota::per_second(NonZeroU32::new(limits.rate_limit_per_s).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(limits.rate_limit_burst).unwrap_or(NonZeroU32::MIN));
    let limiter = crate::support::rate_limit::direct(quota);
    let idle = Duration::from_secs(limits.idle_timeout_s);

    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(idle, stream.next()) => next,
            () = client.closed().cancelled() => break,
        };
        let message = match next {
            Err(_) => {
                client.close(CLOSE_NORMAL, "idle timeout");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                debug!(error = %ErrorChain(&err), "connection read failed");
                if let Some((code, reason)) = read_error_close(&err) {
                    client.close(code, reason);
                }
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        client.count_in();
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let error = RpcError::new(
                    ErrorKind::InvalidRequest,
                    "binary frames are not supported; send JSON text",
                );
                reply_error(&ctx, &client, None, &error).await;
                continue;
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        ctx.metrics.messages_received.inc();
        ctx.request_from(&client);
        let incoming = parse_incoming(&text);
        if limiter.check().is_err() {
            let error = RpcError::new(ErrorKind::RateLimited, "too many requests; slow down");
            match incoming {
                Ok(Incoming::Notification { method, .. }) => {
                    notification_failed(&ctx, &method, &error);
                }
                Ok(Incoming::Request { id, .. }) => {
                    reply_error(&ctx, &client, Some(&id), &error).await;
                }
                Err(_) => reply_error(&ctx, &client, None, &error).await,
            }
            continue;
        }
        match incoming {
            Err(envelope) => {
                reply_error(&ctx, &client, envelope.id.as_ref(), &envelope.error).await
            }
            Ok(Incoming::Notification { method, params }) => {
                run_notification(&ctx, &client, &method, params).await;
            }
            Ok(Incoming::Request { id, method, params }) => {
                match dispatch(&ctx.contexts, &client, &method, params) {
                    Ok(Reply::Answer(pending)) => {
                        spawn_answer(&ctx, &client, id, pending);
                    }
                    Ok(Reply::Later(later)) => match later.0.await {
                        Ok(result) => {
                            if !client.send(Utf8Bytes::from(response(&id, &result))).await {
                                break;
                            }
                        }
                        Err(error) => {
                            debug!(method, kind = error.kind.as_str(), "request failed");
                            reply_error(&ctx, &client, Some(&id), &error).await;
                        }
                    },
                    Ok(Reply::Now(result)) => {
                        if !client.send(Utf8Bytes::from(response(&id, &result))).await {
                            break;
                        }
                    }
                    Ok(Reply::ThenReplay {
                        result,
                        project_id,
                        ticket,
                    }) => {
                        if !client.send(Utf8Bytes::from(response(&id, &result))).await {
                            break;
                        }
                        ctx.start_replay(&project_id, client.clone(), ticket);
                    }
                    Err(error) => {
                        debug!(method, kind = error.kind.as_str(), "request failed");
                        reply_error(&ctx, &client, Some(&id), &error).await;
                    }
                }
            }
        }
    }

    if ctx.shutdown.is_cancelled() {
        client.close(CLOSE_GOING_AWAY, "hub shutting down");
    }
    client.close(CLOSE_NORMAL, "bye");
    // Counted before the hub announces the close, so whoever sees `hub.connection`
    // `closed` also finds the code in `/metrics`.
    if let Some((code, _)) = client.close_code() {
        ctx.metrics.closed(code);
    }
    ctx.closed(&client);
    let _ = writer.await;
    tracing::debug!(close = ?client.close_code(), "connection closed");
}

/// Runs a client notification: a method the table accepts as one
/// ([`crate::rpc::Method::notification`]) sent without an
/// `id` runs like a request whose response nobody reads (JSON-RPC 2.0 section 4.1); any
/// other method has no effect. Nothing is sent back either way; a failure is logged and
/// counted by kind.
async fn run_notification(ctx: &ConnectionCtx, client: &Arc<Client>, method: &str, params: Value) {
    let outcome = if runs_as_notification(method) {
        match dispatch(&ctx.contexts, client, method, params) {
            // Awaited here, like a request's, so that what the client sends next runs
            // after it.
            Ok(Reply::Later(later)) => later.0.await.map(drop),
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        }
    } else {
        Err(RpcError::new(
            ErrorKind::InvalidRequest,
            format!("{method} runs only as a request, with an id"),
        ))
    };
    if let Err(error) = outcome {
        notification_failed(ctx, method, &error);
    }
}

/// Logs and counts a client notification that failed; a notification gets no response.
fn notification_failed(ctx: &ConnectionCtx, method: &str, error: &RpcError) {
    debug!(method, kind = error.kind.as_str(), error = %error.message, "client notification failed");
    ctx.metrics.notification_error(error.kind.as_str());
}

/// Sends the answer to an `event.request` when it comes, unless the connection ends first.
fn spawn_answer(ctx: &ConnectionCtx, client: &Arc<Client>, id: RequestId, pending: PendingRequest) {
    let (tracker, ctx, client) = (ctx.tracker.clone(), ctx.clone(), client.clone());
    let answered = async move {
        let answer = tokio::select! {
            answer = pending.answer() => answer,
            () = client.closed().cancelled() => return,
        };
        match answer
            .map_err(RpcError::from)
            .and_then(|event| to_result(&event))
        {
            Ok(result) => {
                client.send(Utf8Bytes::from(response(&id, &result))).await;
            }
            Err(error) => reply_error(&ctx, &client, Some(&id), &error).await,
        }
    };
    tracker.spawn(answered.in_current_span());
}

/// The close code and reason for a failed read (RFC 6455 section 7.4.1), from
/// tungstenite's error found in the error's chain (axum wraps it): `Capacity`
/// (`max_message_size`, `max_frame_size`) is 1009, `Protocol` (reserved bits or opcodes,
/// bad fragmentation, an unmasked frame, a bad close frame) 1002, `Utf8` (a text message
/// that is not UTF-8) 1007. `None` for any other error (I/O: the connection is gone).
pub fn read_error_close(err: &axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        match current.downcast_ref::<Error>() {
            Some(Error::Capacity(_)) => return Some((CLOSE_TOO_BIG, "message too big")),
            Some(Error::Protocol(_)) => return Some((CLOSE_PROTOCOL_ERROR, "protocol error")),
            Some(Error::Utf8(_)) => return Some((CLOSE_INVALID_DATA, "text is not UTF-8")),
            Some(_) => return None,
            None => source = current.source(),
        }
    }
    None
}

async fn reply_error(
    ctx: &ConnectionCtx,
    client: &Client,
    id: Option<&crate::protocol::RequestId>,
    error: &RpcError,
) {
    ctx.metrics.rpc_error(error.kind.as_str());
    client
        .send(Utf8Bytes::from(error_response(id, error)))
        .await;
}

/// Bytes of queued messages written before one flush, at most (one message more than
/// that may go with them). Small enough that the write buffer a burst leaves behind
/// stays small per connection.
const WRITE_BATCH_BYTES: usize = 16 * 1024;

/// Bytes of events taken from the ring for one batch, at most (one event more than that
/// may go with them): as the bare server's writer, a burst goes out in few large writes.
const EVENT_BATCH_BYTES: usize = 64 * 1024;

/// Writes the connection's events from the ring, before ring position `until`, up to
/// one batch; returns the bytes written and whether more wait.
async fn feed_events<W>(
    sink: &mut W,
    client: &Client,
    until: u64,
    frames: &mut Vec<Utf8Bytes>,
) -> Result<(usize, bool), W::Error>
where
    W: Sink<Message> + Unpin,
{
    let more = client.take_events(EVENT_BATCH_BYTES, until, frames);
    let mut bytes = 0;
    for frame in frames.drain(..) {
        bytes += frame.len();
        sink.feed(Message::Text(frame)).await?;
    }
    Ok((bytes, more))
}

/// The connection's writer: sends what its queue holds and the events the broker's ring
/// holds for it, in batches with one flush each, and a ping every `ping_every`.
///
/// Order: a message taken from the queue goes out after every event published before
/// it was taken (an event queued before a reply arrives before it, as when events went
/// through the queue); events published later may go before or after it.
async fn write_loop<W>(
    mut sink: W,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    client: Arc<Client>,
    ping_every: Duration,
    write_timeout: Duration,
) where
    W: Sink<Message> + Unpin,
    W::Error: std::fmt::Display,
{
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut frames = Vec::new();
    // A message taken from the queue that waits for the events published before it
    // (those before ring position `.1`), written a batch at a time.
    let mut held: Option<(Utf8Bytes, u64)> = None;
    // Events wait in the ring beyond the last batch: no need to wait for a wake-up.
    let mut more_events = false;
    loop {
        let first = if held.is_some() || more_events {
            if client.closed().is_cancelled() {
                break;
            }
            // Replies are not starved by a stream of events: a queued message is taken
            // between batches, and waits only for the events published before it.
            let queued = || rx.try_recv().ok().map(|text| (text, client.events_end()));
            held.take()
                .or_else(queued)
                .map(|(text, until)| (Message::Text(text), until))
        } else {
            tokio::select! {
                biased;
                () = client.closed().cancelled() => break,
                next = rx.recv() => match next {
                    Some(text) => Some((Message::Text(text), client.events_end())),
                    None => break,
                },
                () = client.events_ready() => None,
                _ = ping.tick() => Some((Message::Ping(Default::default()), 0)),
            }
        };
        // What is already queued goes out with the same flush: one write to the socket
        // for a burst instead of one per message.
        let batch = async {
            let mut bytes = 0;
            let mut next = first;
            let mut more = false;
            loop {
                match next.take() {
                    Some((Message::Text(text), until)) => {
                        // The events published before it was taken go first.
                        let (written, rest) =
                            feed_events(&mut sink, &client, until, &mut frames).await?;
                        bytes += written;
                        if rest {
                            held = Some((text, until));
                            more = true;
                            break;
                        }
                        bytes += text.len();
                        sink.feed(Message::Text(text)).await?;
                    }
                    Some((other, _)) => sink.feed(other).await?,
                    None => {
                        let (written, rest) =
                            feed_events(&mut sink, &client, u64::MAX, &mut frames).await?;
                        bytes += written;
                        more = rest;
                    }
                }
                if more || bytes >= WRITE_BATCH_BYTES {
                    break;
                }
                let Ok(text) = rx.try_recv() else { break };
                next = Some((Message::Text(text), client.events_end()));
            }
            sink.flush().await.map(|()| more)
        };
        match tokio::time::timeout(write_timeout, batch).await {
            // Room was made: what waits in the overflow moves in behind it.
            Ok(Ok(more)) => {
                more_events = more;
                client.refill();
            }
            Ok(Err(err)) => {
                debug!(error = %err, "write failed");
                client.close(CLOSE_NORMAL, "write failed");
                return;
            }
            Err(_) => {
                client.close(
                    crate::connections::CLOSE_POLICY,
                    "client is not reading its messages",
                );
                break;
            }
        }
    }
    // Without a code, the connection was cancelled through its parent: the hub's
    // shutdown token.
    let (code, reason) = client
        .close_code()
        .unwrap_or((CLOSE_GOING_AWAY, "hub shutting down"));
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    let _ = tokio::time::timeout(write_timeout, sink.send(close)).await;
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
}
