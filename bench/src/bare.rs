//! The bare tokio-tungstenite server: the practical limit on this machine.
//!
//! It does each job with nothing else: no authentication, no JSON parsing, no store.
//! - Any text frame that is not a control frame is echoed back at once (round trips).
//! - `{"ctl":"sub",...}` joins the fan-out set; answered with `{"id":<n>}`.
//! - `{"ctl":"pub",...}` forwards the frame's bytes unchanged to every subscriber, then
//!   answers `{"ack":1}` (event fan-out).
//! - `{"ctl":"gen","count":N,"rate":R,"size":S}` makes the server itself produce N
//!   output lines of about S bytes at R lines/s (0 = as fast as possible), stamped and
//!   shaped like `project.output`, to every subscriber; the last has
//!   `"kind":"run_finished"` (agent output fan-out).
//!
//! Fan-out goes through one `tokio::sync::broadcast` channel; each connection's writer
//! batches what is ready before flushing.

use std::time::Duration;

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::wsclient::now_ns;

/// What a connection's reader asks its writer to do.
enum Out {
    Text(Utf8Bytes),
    Subscribe,
}

/// Serves on `127.0.0.1:port` forever; prints `PORT <n>` first.
///
/// # Errors
/// When the port cannot be bound.
pub async fn serve(port: u16) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("PORT {}", listener.local_addr()?.port());
    let (fanout, _) = broadcast::channel::<Utf8Bytes>(1 << 16);
    loop {
        let (stream, _) = listener.accept().await?;
        let fanout = fanout.clone();
        tokio::spawn(async move {
            let _ = connection(stream, fanout).await;
        });
    }
}

async fn connection(stream: TcpStream, fanout: broadcast::Sender<Utf8Bytes>) -> Result<()> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(64 << 20));
    let socket = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (mut sink, mut source) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let subscriber = fanout.clone();
    let writer = tokio::spawn(async move {
        let mut live: Option<broadcast::Receiver<Utf8Bytes>> = None;
        loop {
            let next = match &mut live {
                Some(feed) => tokio::select! {
                    out = rx.recv() => Ok(out),
                    line = feed.recv() => Err(line),
                },
                None => Ok(rx.recv().await),
            };
            let text = match next {
                Ok(None) => break,
                Ok(Some(Out::Subscribe)) => {
                    live = Some(subscriber.subscribe());
                    continue;
                }
                Ok(Some(Out::Text(text))) => text,
                Err(Ok(text)) => text,
                Err(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Err(Err(broadcast::error::RecvError::Closed)) => break,
            };
            if sink.feed(Message::Text(text)).await.is_err() {
                break;
            }
            // Batch what is already waiting (bounded), then flush once.
            for _ in 0..64 {
                let more = match &mut live {
                    Some(feed) => match feed.try_recv() {
                        Ok(text) => text,
                        Err(_) => break,
                    },
                    None => break,
                };
                if sink.feed(Message::Text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
    });
    while let Some(message) = source.next().await {
        let text = match message? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        if text.starts_with("{\"ctl\":\"pub\"") {
            let _ = fanout.send(text);
            let _ = tx.send(Out::Text(Utf8Bytes::from_static("{\"ack\":1}")));
        } else if text.starts_with("{\"ctl\":\"sub\"") {
            let id = crate::wsclient::reply_id(&text).unwrap_or(0);
            let _ = tx.send(Out::Subscribe);
            let _ = tx.send(Out::Text(Utf8Bytes::from(format!("{{\"id\":{id}}}"))));
        } else if text.starts_with("{\"ctl\":\"gen\"") {
            let job: Generate = serde_json::from_str(&text)?;
            let fanout = fanout.clone();
            tokio::spawn(generate(job, fanout));
            let _ = tx.send(Out::Text(Utf8Bytes::from_static("{\"ack\":1}")));
        } else {
            let _ = tx.send(Out::Text(text));
        }
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

#[derive(serde::Deserialize)]
struct Generate {
    count: u64,
    rate: u64,
    size: usize,
}

async fn generate(job: Generate, fanout: broadcast::Sender<Utf8Bytes>) {
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while sent < job.count {
        let due = if job.rate == 0 {
            job.count
        } else {
            (started.elapsed().as_secs_f64() * job.rate as f64) as u64 + 1
        };
        while sent < due.min(job.count) {
            sent += 1;
            let line = crate::fakecli::assistant_line(sent, job.size, now_ns());
            let frame = format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"project.output\",\"params\":{{\"seq\":{sent},\"kind\":\"assistant\",\"event\":{line}}}}}"
            );
            // With no subscriber yet, send fails; the benchmark subscribes first.
            let _ = fanout.send(Utf8Bytes::from(frame));
            if job.rate == 0 && sent.is_multiple_of(256) {
                // Let the writers run: with one broadcast ring, a producer that never
                // yields only makes every subscriber lag.
                tokio::task::yield_now().await;
            }
        }
        if job.rate != 0 {
            tick.tick().await;
        }
    }
    let _ = fanout.send(Utf8Bytes::from_static(
        "{\"jsonrpc\":\"2.0\",\"method\":\"project.output\",\"params\":{\"kind\":\"run_finished\"}}",
    ));
}
