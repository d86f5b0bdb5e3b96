//! The measurements. Each runs against one [`Endpoint`], hub or bare, and returns plain
//! numbers; `main` repeats them, pairs hub with bare and reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::Latencies;
use crate::target::{self, Endpoint, HubSpec, Kind, Server};
use crate::wsclient::{
    self, METHOD_NOT_FOUND, RpcFailure, Sink, Source, Subscription, call, connect, now_ns, request,
    rpc, stamp, subscribe_frame,
};

/// Latency percentiles and achieved rate of one load point.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoadPoint {
    /// Offered load (requests or deliveries per second; 0 = as fast as possible).
    pub offered: f64,
    /// Achieved rate, same unit.
    pub achieved: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Deliveries or requests that did not arrive / failed.
    pub lost: u64,
    /// Highest server RSS seen during the point, MiB.
    pub rss_peak_mib: f64,
}

/// Calls `f` on up to `parallel` at a time for `0..n`, collecting the results in order.
async fn open_many<F, Fut, T>(n: usize, parallel: usize, f: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut out = Vec::with_capacity(n);
    let mut pending = futures_util::stream::iter((0..n).map(f)).buffered(parallel.max(1));
    while let Some(item) = pending.next().await {
        out.push(item?);
    }
    Ok(out)
}

/// Samples a process's RSS every 100 ms until dropped; `peak()` gives the largest.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssWatch {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(target::rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(target::rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { peak, stop }
    }

    fn peak_mib(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How many of `rate`/s are due `elapsed` after the start (at least one, the first).
fn due(rate: f64, elapsed: Duration) -> u64 {
    (elapsed.as_secs_f64() * rate) as u64 + 1
}

// ---------------------------------------------------------------------------------------
// RPC round trip

/// `hub.status` (or its echo) from `connections` connections at `rate` requests/s in
/// total for `secs`, each connection waiting for its reply before its next request.
///
/// # Errors
/// When connections cannot be opened.
pub async fn round_trip(
    endpoint: &Endpoint,
    connections: usize,
    rate: f64,
    secs: f64,
) -> Result<LoadPoint> {
    let sockets = open_many(connections, 32, |_| connect(endpoint)).await?;
    let per_connection = rate / connections as f64;
    let started = Instant::now() + Duration::from_millis(200);
    let end = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let (mut sink, mut source) = socket.split();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut errors = 0u64;
            // Spread the connections over one period so that they do not fire together.
            let offset = Duration::from_secs_f64(i as f64 / connections as f64 / per_connection);
            let mut tick = tokio::time::interval_at(
                (started + offset).into(),
                Duration::from_secs_f64(1.0 / per_connection),
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut id = 0;
            loop {
                tick.tick().await;
                if Instant::now() >= end {
                    break;
                }
                id += 1;
                let sent = Instant::now();
                let frame = request(id, "hub.status", &json!({}));
                match call(&mut sink, &mut source, id, frame).await {
                    Ok(text) if !text.contains("\"error\"") => {
                        latencies.push_us(sent.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Latencies::default();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    Ok(LoadPoint {
        offered: rate,
        achieved: latencies.len() as f64 / secs,
        p50_ms: latencies.percentile_ms(50.0),
        p99_ms: latencies.percentile_ms(99.0),
        p999_ms: latencies.percentile_ms(99.9),
        lost: errors,
        rss_peak_mib: 0.0,
    })
}

// ---------------------------------------------------------------------------------------
// Connection set-up

/// `count` connections one after another: TCP connect, WebSocket handshake (with the
/// token on the hub), one `hub.status` and its reply. Returns the per-connection times.
///
/// # Errors
/// When any connection fails.
pub async fn setup(endpoint: &Endpoint, count: usize) -> Result<Latencies> {
    let mut latencies = Latencies::default();
    for _ in 0..count {
        let started = Instant::now();
        let socket = connect(endpoint).await?;
        let (mut sink, mut source) = socket.split();
        call(
            &mut sink,
            &mut source,
            1,
            request(1, "hub.status", &json!({})),
        )
        .await?;
        latencies.push_us(started.elapsed().as_micros() as u64);
        let _ = sink.send(Message::Close(None)).await;
    }
    Ok(latencies)
}

// ---------------------------------------------------------------------------------------
// Concurrent connections

/// Result of holding many connections.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    /// Connections open and answering at the end.
    pub open: usize,
    /// Connections that failed to open or answer.
    pub errors: usize,
    /// Server RSS with all of them open, MiB.
    pub rss_mib: f64,
    /// Server RSS before, MiB.
    pub rss_before_mib: f64,
    /// Whether the connections used the owner token (no client tokens on this hub).
    pub owner: bool,
    /// Frames the held connections received after their reply (e.g. `hub.connection`).
    pub frames: u64,
    /// Seconds from the first connection attempt until every one had its reply.
    pub open_secs: f64,
}

/// A client token with the `events` scope, as an extension would hold
/// (`client.create`), or `None` on a hub without client tokens: then the owner token.
///
/// # Errors
/// Connection failures, or `client.create` failing for another reason.
pub async fn client_token(endpoint: &Endpoint) -> Result<Option<String>> {
    if endpoint.kind == Kind::Bare {
        return Ok(None);
    }
    let (mut sink, mut source) = connect(endpoint).await?.split();
    match rpc(
        &mut sink,
        &mut source,
        1,
        "client.create",
        &json!({"name": "bench", "scopes": ["events"]}),
    )
    .await
    {
        Ok(result) => Ok(result["token"].as_str().map(str::to_string)),
        Err(err)
            if err
                .downcast_ref::<RpcFailure>()
                .is_some_and(|f| f.code == METHOD_NOT_FOUND) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Opens `count` connections (64 at a time), each answering one `hub.status`, holds
/// them while each keeps reading what the server sends (as a live client does), and
/// reads the server's RSS. On a hub with client tokens the connections use one with the
/// `events` scope, as extensions do, unless `owner`; otherwise the owner token.
///
/// # Errors
/// Only for failures outside the connections themselves.
pub async fn hold(server: &Server, count: usize, owner: bool) -> Result<Held> {
    let mut endpoint = server.endpoint.clone();
    let scoped = if owner {
        None
    } else {
        client_token(&endpoint).await?
    };
    let owner = scoped.is_none();
    if let Some(token) = scoped {
        endpoint.token = Some(token);
    }
    let rss_before_mib = server.rss_mib();
    let frames = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let results = open_many(count, 64, |_| {
        let (endpoint, frames) = (endpoint.clone(), frames.clone());
        async move {
            let attempt = async {
                let socket = connect(&endpoint).await?;
                let (mut sink, mut source) = socket.split();
                call(
                    &mut sink,
                    &mut source,
                    1,
                    request(1, "hub.status", &json!({})),
                )
                .await?;
                let drain = tokio::spawn(async move {
                    while let Some(Ok(_)) = source.next().await {
                        frames.fetch_add(1, Ordering::Relaxed);
                    }
                });
                anyhow::Ok((sink, drain))
            };
            Ok(attempt.await.ok())
        }
    })
    .await?;
    let open_secs = started.elapsed().as_secs_f64();
    // Let the server settle its allocations before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_mib = server.rss_mib();
    let open = results.iter().filter(|r| r.is_some()).count();
    let frames = frames.load(Ordering::Relaxed);
    for (sink, drain) in results.into_iter().flatten() {
        drop(sink);
        drain.abort();
    }
    Ok(Held {
        open,
        errors: count - open,
        rss_mib,
        rss_before_mib,
        owner,
        frames,
        open_secs,
    })
}

// ---------------------------------------------------------------------------------------
// Fan-out

/// What one subscriber saw.
struct Seen {
    received: u64,
    latencies: Latencies,
    last: Option<Instant>,
}

/// Reads stamped frames until `run_finished`, `expect` of them, or `quiet` without any.
async fn receive(mut source: Source, expect: Option<Arc<AtomicU64>>, quiet: Duration) -> Seen {
    let mut seen = Seen {
        received: 0,
        latencies: Latencies::default(),
        last: None,
    };
    loop {
        let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, source.next()).await else {
            break;
        };
        let Message::Text(text) = message else {
            continue;
        };
        if let Some(sent) = stamp(&text) {
            let now = now_ns();
            seen.received += 1;
            seen.latencies.push_us(now.saturating_sub(sent) / 1000);
            seen.last = Some(Instant::now());
        } else if text.contains("\"kind\":\"run_finished\"") {
            break;
        }
        if let Some(expect) = &expect {
            let target = expect.load(Ordering::Relaxed);
            if target != u64::MAX && seen.received >= target {
                break;
            }
        }
    }
    seen
}

/// Opens `count` connections subscribed to `what`, returning their halves; `Ok(None)`
/// when the hub does not know the subscribe method.
async fn subscribers(
    endpoint: &Endpoint,
    count: usize,
    what: &Subscription,
) -> Result<Option<Vec<(Sink, Source)>>> {
    let result = open_many(count, 32, |_| async {
        let socket = connect(endpoint).await?;
        let (mut sink, mut source) = socket.split();
        let text = call(
            &mut sink,
            &mut source,
            1,
            subscribe_frame(endpoint.kind, 1, what),
        )
        .await?;
        if text.contains("\"error\"") {
            let value: serde_json::Value = serde_json::from_str(&text)?;
            bail!(RpcFailure {
                code: value["error"]["code"].as_i64().unwrap_or(0),
                message: value["error"]["message"].as_str().unwrap_or("").into(),
            });
        }
        Ok((sink, source))
    })
    .await;
    match result {
        Ok(pairs) => Ok(Some(pairs)),
        Err(err)
            if err
                .downcast_ref::<RpcFailure>()
                .is_some_and(|f| f.code == METHOD_NOT_FOUND) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn summarize_seen(
    seen: Vec<Seen>,
    started: Instant,
    offered: f64,
    expected_each: u64,
    rss_peak_mib: f64,
) -> LoadPoint {
    let mut latencies = Latencies::default();
    let mut received = 0;
    let mut last = started;
    let mut lost = 0;
    for s in seen {
        received += s.received;
        lost += expected_each.saturating_sub(s.received);
        if let Some(t) = s.last {
            last = last.max(t);
        }
        latencies.extend(s.latencies);
    }
    let secs = last.duration_since(started).as_secs_f64().max(1e-6);
    LoadPoint {
        offered,
        achieved: received as f64 / secs,
        p50_ms: latencies.percentile_ms(50.0),
        p99_ms: latencies.percentile_ms(99.0),
        p999_ms: latencies.percentile_ms(99.9),
        lost,
        rss_peak_mib,
    }
}

/// One stamped `bench.tick` event: `event.publish` on the hub, the same params in a
/// `pub` control frame on the bare server.
fn publish_frame(kind: Kind, id: u64, pad: &str) -> String {
    match kind {
        Kind::Hub => request(
            id,
            "event.publish",
            &json!({"type": "bench.tick", "payload": {"bench_t": now_ns(), "pad": pad}}),
        ),
        Kind::Bare => format!(
            "{{\"ctl\":\"pub\",\"id\":{id},\"params\":{{\"type\":\"bench.tick\",\"payload\":{{\"bench_t\":{},\"pad\":\"{pad}\"}}}}}}",
            now_ns()
        ),
    }
}

/// Event fan-out: one publisher, `subs` subscribers to `bench.*`, events of about
/// `size` bytes. `offered` deliveries/s in total (0 = as fast as the publisher's replies
/// allow, 256 in flight) for `secs`. `Ok(None)` when the hub has no `event.*` methods.
///
/// # Errors
/// Connection failures.
pub async fn event_fanout(
    server: &Server,
    subs: usize,
    offered: f64,
    secs: f64,
    size: usize,
) -> Result<Option<LoadPoint>> {
    let endpoint = &server.endpoint;
    let Some(pairs) = subscribers(endpoint, subs, &Subscription::Events).await? else {
        return Ok(None);
    };
    let publisher = connect(endpoint).await?;
    let (mut pub_sink, mut pub_source) = publisher.split();
    let watch = RssWatch::start(server.pid);
    let expect = Arc::new(AtomicU64::new(u64::MAX));
    let mut sinks = Vec::new();
    let mut readers = Vec::new();
    for (sink, source) in pairs {
        sinks.push(sink);
        readers.push(tokio::spawn(receive(
            source,
            Some(expect.clone()),
            Duration::from_secs(3),
        )));
    }
    let window = Arc::new(Semaphore::new(256));
    let errors = Arc::new(AtomicU64::new(0));
    let acks = {
        let (window, errors) = (window.clone(), errors.clone());
        tokio::spawn(async move {
            while let Ok(Some(Ok(message))) =
                tokio::time::timeout(Duration::from_secs(5), pub_source.next()).await
            {
                if let Message::Text(text) = message {
                    if text.contains("\"error\"") {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    window.add_permits(1);
                }
            }
        })
    };
    let pad = "p".repeat(size.saturating_sub(180));
    let frame = |id: u64| publish_frame(endpoint.kind, id, &pad);
    let publish_rate = offered / subs as f64;
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while Instant::now() < end {
        if offered > 0.0 {
            tick.tick().await;
            let target = due(publish_rate, started.elapsed());
            while sent < target {
                sent += 1;
                pub_sink.feed(Message::text(frame(sent))).await?;
            }
            pub_sink.flush().await?;
        } else {
            window.acquire().await?.forget();
            sent += 1;
            pub_sink.send(Message::text(frame(sent))).await?;
        }
    }
    expect.store(sent, Ordering::Relaxed);
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(reader.await?);
    }
    let peak = watch.peak_mib();
    drop(sinks);
    acks.abort();
    let mut point = summarize_seen(seen, started, offered, sent, peak);
    point.lost += errors.load(Ordering::Relaxed) * subs as u64;
    Ok(Some(point))
}

/// Waits (up to 10 s) until `server` reports a NATS subscription for its clients in
/// `hub.health` (at once for the in-process broker).
async fn broker_ready(server: &Server) -> Result<()> {
    let (mut sink, mut source) = connect(&server.endpoint).await?.split();
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in 1.. {
        let health = rpc(&mut sink, &mut source, id, "hub.health", &json!({})).await?;
        let broker = &health["broker"];
        if broker["kind"] != "nats" || broker["subscriptions"].as_i64() >= Some(1) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no NATS subscription within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// How a cluster load run is spread.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Subscribers to `bench.*` on each server.
    pub subs_per: usize,
    /// Publishers on each server.
    pub publishers_per: usize,
    /// Events per second from each publisher.
    pub rate: f64,
    /// Seconds of publishing.
    pub secs: f64,
    /// Bytes per event, about.
    pub size: usize,
}

/// The cluster load run: on each server `spread.subs_per` subscribers to `bench.*` and
/// `spread.publishers_per` publishers, each sending `spread.rate` events/s for
/// `spread.secs`. Each subscriber should receive every publisher's events. Returns the
/// load point over all subscribers (achieved = deliveries/s) and each server's peak RSS.
/// With one server it is the `fanout` sweep, on the hub or on the bare server.
///
/// # Errors
/// Connection failures.
pub async fn cluster_fanout(servers: &[Server], spread: Spread) -> Result<(LoadPoint, Vec<f64>)> {
    let Spread {
        subs_per,
        publishers_per,
        rate,
        secs,
        size,
    } = spread;
    let expect = Arc::new(AtomicU64::new(u64::MAX));
    let mut sinks = Vec::new();
    let mut readers = Vec::new();
    for server in servers {
        let pairs = subscribers(&server.endpoint, subs_per, &Subscription::Events)
            .await?
            .context("the hub has no event methods")?;
        for (sink, source) in pairs {
            sinks.push(sink);
            readers.push(tokio::spawn(receive(
                source,
                Some(expect.clone()),
                Duration::from_secs(3),
            )));
        }
    }
    for server in servers {
        if server.endpoint.kind == Kind::Hub {
            broker_ready(server).await?;
        }
    }
    let watches: Vec<RssWatch> = servers.iter().map(|s| RssWatch::start(s.pid)).collect();
    let pad = "p".repeat(size.saturating_sub(180));
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    let mut publishers = Vec::new();
    for server in servers
        .iter()
        .flat_map(|s| std::iter::repeat_n(s, publishers_per))
    {
        let (mut sink, mut source) = connect(&server.endpoint).await?.split();
        let pad = pad.clone();
        let kind = server.endpoint.kind;
        let drain = tokio::spawn(async move {
            while let Ok(Some(Ok(_))) =
                tokio::time::timeout(Duration::from_secs(5), source.next()).await
            {}
        });
        publishers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            while Instant::now() < end {
                tick.tick().await;
                let target = due(rate, started.elapsed());
                while sent < target {
                    sent += 1;
                    sink.feed(Message::text(publish_frame(kind, sent, &pad)))
                        .await?;
                }
                sink.flush().await?;
            }
            Ok::<_, anyhow::Error>((sent, sink, drain))
        }));
    }
    let mut total = 0;
    let mut keep = Vec::new();
    for publisher in publishers {
        let (sent, sink, drain) = publisher.await??;
        total += sent;
        keep.push((sink, drain));
    }
    expect.store(total, Ordering::Relaxed);
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(reader.await?);
    }
    let peaks: Vec<f64> = watches.iter().map(RssWatch::peak_mib).collect();
    let peak = peaks.iter().copied().fold(0.0, f64::max);
    drop(sinks);
    for (_, drain) in keep {
        drain.abort();
    }
    let offered =
        rate * (publishers_per * servers.len()) as f64 * (subs_per * servers.len()) as f64;
    Ok((summarize_seen(seen, started, offered, total, peak), peaks))
}

/// A project on the hub for the agent output figures; `None` for the bare server.
async fn output_project(endpoint: &Endpoint, dir: &std::path::Path) -> Result<Option<String>> {
    if endpoint.kind == Kind::Bare {
        return Ok(None);
    }
    let (mut sink, mut source) = connect(endpoint).await?.split();
    let project = rpc(
        &mut sink,
        &mut source,
        1,
        "project.create",
        &json!({"path": dir}),
    )
    .await?;
    Ok(Some(
        project["id"].as_str().context("project id")?.to_string(),
    ))
}

/// Agent output fan-out: `subs` subscribers to one project while the agent prints
/// `count` lines of `size` bytes at `offered` deliveries/s in total (0 = as fast as it
/// can). On the bare server, the server itself generates the same lines.
///
/// # Errors
/// Connection or RPC failures.
pub async fn output_fanout(
    server: &Server,
    subs: usize,
    offered: f64,
    count: u64,
    size: usize,
) -> Result<LoadPoint> {
    let endpoint = &server.endpoint;
    let dir = tempfile::tempdir()?;
    let project = output_project(endpoint, dir.path()).await?;
    let what = Subscription::Project(project.clone().unwrap_or_default());
    let pairs = subscribers(endpoint, subs, &what)
        .await?
        .context("subscribe")?;
    let (mut control, mut control_source) = connect(endpoint).await?.split();
    let watch = RssWatch::start(server.pid);
    let mut sinks = Vec::new();
    let mut readers = Vec::new();
    for (sink, source) in pairs {
        sinks.push(sink);
        readers.push(tokio::spawn(receive(source, None, Duration::from_secs(10))));
    }
    let line_rate = (offered / subs as f64).round() as u64;
    let prompt = if offered > 0.0 {
        format!("paced {count} {line_rate} {size}")
    } else {
        format!("lines {count} {size}")
    };
    let started = Instant::now();
    match &project {
        Some(project_id) => {
            rpc(
                &mut control,
                &mut control_source,
                2,
                "agent.run",
                &json!({"project_id": project_id, "prompt": prompt}),
            )
            .await?;
        }
        None => {
            control
                .send(Message::text(format!(
                    "{{\"ctl\":\"gen\",\"count\":{count},\"rate\":{line_rate},\"size\":{size}}}"
                )))
                .await?;
        }
    }
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(reader.await?);
    }
    let peak = watch.peak_mib();
    drop(sinks);
    Ok(summarize_seen(seen, started, offered, count, peak))
}

// ---------------------------------------------------------------------------------------
// Task queue

/// create → assign → complete of `tasks` tasks with `workers` workers (hub only):
/// tasks per second from the first `task.create` to `project.completed`.
///
/// # Errors
/// RPC failures, or fewer completions than tasks.
pub async fn task_queue(endpoint: &Endpoint, workers: usize, tasks: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let (mut sink, mut source) = connect(endpoint).await?.split();
    rpc(
        &mut sink,
        &mut source,
        1,
        "hub.hello",
        &json!({"role": "coordinator", "name": "bench"}),
    )
    .await?;
    let project = rpc(
        &mut sink,
        &mut source,
        2,
        "project.create",
        &json!({"path": dir.path()}),
    )
    .await?;
    let project_id = project["id"].as_str().context("project id")?.to_string();
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for i in 0..workers {
        let (mut wsink, mut wsource) = connect(endpoint).await?.split();
        rpc(
            &mut wsink,
            &mut wsource,
            1,
            "worker.register",
            &json!({"name": format!("bench-{i}")}),
        )
        .await?;
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            let mut id = 10u64;
            while let Ok(Some(Ok(message))) =
                tokio::time::timeout(Duration::from_secs(30), wsource.next()).await
            {
                let Message::Text(text) = message else {
                    continue;
                };
                if !text.contains("\"method\":\"task.assigned\"") {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(&text)?;
                let task_id = value["params"]["task"]["id"].clone();
                id += 1;
                wsink
                    .send(Message::text(request(
                        id,
                        "task.complete",
                        &json!({"task_id": task_id, "report": {"summary": "ok"}}),
                    )))
                    .await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    let ids: Vec<usize> = (0..tasks).collect();
    for (n, chunk) in ids.chunks(1000).enumerate() {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| json!({"id": format!("b{i:06}"), "title": format!("bench task {i}")}))
            .collect();
        rpc(
            &mut sink,
            &mut source,
            10 + n as u64,
            "task.create",
            &json!({"project_id": project_id, "tasks": batch}),
        )
        .await?;
    }
    let completed = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(message) = source.next().await {
            if let Message::Text(text) = message?
                && text.contains("\"method\":\"project.completed\"")
            {
                let value: serde_json::Value = serde_json::from_str(&text)?;
                return anyhow::Ok(value["params"]["completed"].as_u64().unwrap_or(0));
            }
        }
        bail!("coordinator connection closed")
    })
    .await
    .context("the batch did not finish in 10 minutes")??;
    let elapsed = started.elapsed().as_secs_f64();
    for handle in handles {
        handle.abort();
    }
    if completed as usize != tasks {
        bail!("the hub completed {completed} of {tasks} tasks");
    }
    Ok(tasks as f64 / elapsed)
}

// ---------------------------------------------------------------------------------------
// Start-up and idle

/// Milliseconds from spawning `semantest-hub serve` to the first `200` from `/health`
/// (polled every millisecond).
///
/// # Errors
/// When the hub does not answer within 20 s.
pub async fn hub_startup(spec: &HubSpec) -> Result<f64> {
    let data = tempfile::tempdir()?;
    let port = target::free_port()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("http://127.0.0.1:{port}/health");
    let started = Instant::now();
    let mut child = spec.command(data.path(), port).spawn()?;
    let result = loop {
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            break Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        if started.elapsed() > Duration::from_secs(20) {
            break Err(anyhow::anyhow!("no /health answer within 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let _ = child.kill().await;
    result
}

/// Milliseconds from spawning the bare server to its first WebSocket echo.
///
/// # Errors
/// When it does not come up.
pub async fn bare_startup() -> Result<f64> {
    let started = Instant::now();
    let server = target::start_bare().await?;
    let (mut sink, mut source) = connect(&server.endpoint).await?.split();
    call(&mut sink, &mut source, 1, request(1, "x", &json!({}))).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    server.stop().await;
    Ok(ms)
}

/// CPU a server uses in `secs` with no client: ms of CPU time (from `schedstat`), and
/// the threads that woke up most.
///
/// # Errors
/// When `/proc` cannot be read.
pub async fn idle(server: &Server, secs: f64) -> Result<(f64, Vec<(String, u64, f64)>)> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = target::cpu_sample(server.pid)?;
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let after = target::cpu_sample(server.pid)?;
    let ms = (after.run_ns.saturating_sub(before.run_ns)) as f64 / 1e6;
    let mut threads: Vec<(String, u64, f64)> = after
        .threads
        .iter()
        .map(|(name, (wakes, ns))| {
            let (w0, n0) = before.threads.get(name).copied().unwrap_or_default();
            (
                name.clone(),
                wakes.saturating_sub(w0),
                ns.saturating_sub(n0) as f64 / 1e6,
            )
        })
        .filter(|(_, wakes, _)| *wakes > 0)
        .collect();
    threads.sort_by_key(|t| std::cmp::Reverse(t.1));
    Ok((ms, threads))
}

// ---------------------------------------------------------------------------------------
// Output volume

/// `mb` MB of stream-json from one run into the log and `subs` subscribers: MB/s from
/// `agent.run` to the last subscriber's `run_finished`, and lines lost.
///
/// # Errors
/// Connection or RPC failures.
pub async fn volume(server: &Server, subs: usize, mb: u64) -> Result<(f64, u64, f64)> {
    let size = 1024usize;
    let count = mb * 1_000_000 / size as u64;
    let point = output_fanout(server, subs, 0.0, count, size).await?;
    let secs = (point.achieved.max(1e-9)).recip() * (count * subs as u64 - point.lost) as f64;
    let megabytes = (count as usize * size) as f64 / 1e6;
    Ok((megabytes / secs, point.lost, point.rss_peak_mib))
}

/// Whether `event.publish` exists on this hub (`false` on METHOD_NOT_FOUND).
///
/// # Errors
/// Connection failures.
pub async fn has_events(endpoint: &Endpoint) -> Result<bool> {
    let (mut sink, mut source) = connect(endpoint).await?.split();
    match wsclient::rpc(
        &mut sink,
        &mut source,
        1,
        "event.subscribe",
        &json!({"types": ["bench.probe"]}),
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .downcast_ref::<RpcFailure>()
                .is_some_and(|f| f.code == METHOD_NOT_FOUND) =>
        {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}
