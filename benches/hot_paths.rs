//! Criterion benchmarks of the hub's hot paths, through the public API and the
//! `bench-internals` feature's `semantest_hub::internals`:
//! JSON-RPC envelope parsing and reply building, `project.output` notification encoding,
//! the capped line reader that splits an agent's stream-json output, and the message
//! log append (one line per write, and a batch of 64 in one; each through the writer
//! thread, alone in its group).
//!
//! ```text
//! cargo bench --features bench-internals --bench hot_paths
//! ```

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use semantest_hub::internals::{NewLine, ProjectRow, Store, read_capped_line};
use semantest_hub::protocol::{
    self, Output, RequestId, Stream, error_response, notification, parse_incoming, response,
};
use serde_json::json;
use serde_json::value::RawValue;

/// A stream-json `assistant` line of about `size` bytes, shaped like the CLI's.
fn assistant_line(size: usize) -> String {
    let head = r#"{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":""#;
    let tail = r#""}]},"session_id":"00000000-0000-4000-8000-000000000000"}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

fn envelope(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    let status = r#"{"jsonrpc":"2.0","id":17,"method":"hub.status","params":{}}"#;
    let tasks = json!({
        "jsonrpc": "2.0", "id": "req-9", "method": "task.create",
        "params": {"project_id": "p1", "tasks": (0..10).map(|i| json!({"id": format!("t{i}"), "title": "x".repeat(80)})).collect::<Vec<_>>()}
    })
    .to_string();
    group.throughput(Throughput::Bytes(status.len() as u64));
    group.bench_function("parse hub.status", |b| {
        b.iter(|| parse_incoming(black_box(status)))
    });
    group.throughput(Throughput::Bytes(tasks.len() as u64));
    group.bench_function("parse task.create (10 tasks)", |b| {
        b.iter(|| parse_incoming(black_box(&tasks)))
    });
    group.bench_function("parse invalid JSON", |b| {
        b.iter(|| parse_incoming(black_box(r#"{"jsonrpc":"2.0","id":1,"method":"#)))
    });
    let result = json!({"version": "0.1.0", "connections": 12, "projects": 3, "running": 1});
    let id = RequestId::Number(17);
    group.bench_function("build response", |b| {
        b.iter(|| response(black_box(&id), black_box(&result)))
    });
    let error = semantest_hub::error::RpcError::new(
        semantest_hub::error::ErrorKind::MethodNotFound,
        "unknown method",
    );
    group.bench_function("build error response", |b| {
        b.iter(|| error_response(Some(black_box(&id)), black_box(&error)))
    });
    group.finish();
}

fn output_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("notification");
    let line = assistant_line(1024);
    let output = Output {
        project_id: "p_0123456789ab".into(),
        seq: 123_456,
        ts: "2026-01-02T03:04:05.678Z".into(),
        run_id: Some("r_0123456789ab".into()),
        stream: Stream::Stdout,
        kind: "assistant".into(),
        event: Some(RawValue::from_string(line.clone()).expect("valid JSON")),
        text: None,
    };
    group.throughput(Throughput::Bytes(line.len() as u64));
    group.bench_function("project.output, 1 KiB line", |b| {
        b.iter(|| notification(protocol::method::PROJECT_OUTPUT, black_box(&output)))
    });
    group.bench_function("event-shaped notification, 1 KiB payload", |b| {
        let params = json!({"type": "probe.click", "payload": {"pad": "p".repeat(900)}, "from": "conn-7", "seq": 9, "ts": "2026-01-02T03:04:05.678Z"});
        b.iter(|| notification("event", black_box(&params)))
    });
    group.finish();
}

fn line_reader(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream-json reader");
    let lines = 1000;
    let mut input = Vec::new();
    for _ in 0..lines {
        input.extend_from_slice(assistant_line(1024).as_bytes());
        input.push(b'\n');
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("read_capped_line, 1000 lines of 1 KiB", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut reader = tokio::io::BufReader::new(&input[..]);
                let mut buf = Vec::new();
                let mut count = 0;
                while read_capped_line(&mut reader, &mut buf, 1 << 20)
                    .await
                    .expect("in-memory read")
                    .is_some()
                {
                    count += 1;
                }
                assert_eq!(count, lines);
            })
        })
    });
    group.finish();
}

fn log_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("message log");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    store
        .insert_project_blocking(&ProjectRow {
            id: "p1".into(),
            name: "bench".into(),
            path: dir.path().to_path_buf(),
            created_at: 0,
            state: protocol::ProjectState::Idle,
            reason: None,
            session_id: None,
            last_seq: 0,
            agent: Default::default(),
            model: None,
            agent_sessions: Default::default(),
        })
        .expect("project");
    let line = assistant_line(1024);
    group.throughput(Throughput::Bytes(line.len() as u64));
    group.bench_function("append one 1 KiB line (own transaction)", |b| {
        b.iter_batched(
            || (),
            |()| {
                store
                    .append(
                        "p1",
                        &NewLine {
                            run_id: None,
                            ts: 1,
                            stream: Stream::Stdout,
                            kind: "assistant",
                            body: &line,
                            is_json: true,
                        },
                    )
                    .expect("append")
            },
            BatchSize::SmallInput,
        )
    });
    // What the agent pump stores per read when lines arrive faster than one at a time.
    let rows: Vec<NewLine<'_>> = (0..64)
        .map(|_| NewLine {
            run_id: None,
            ts: 1,
            stream: Stream::Stdout,
            kind: "assistant",
            body: &line,
            is_json: true,
        })
        .collect();
    group.throughput(Throughput::Bytes((line.len() * rows.len()) as u64));
    group.bench_function("append 64 lines of 1 KiB (one transaction)", |b| {
        b.iter(|| {
            store
                .append_all_blocking("p1", black_box(&rows))
                .expect("append")
        })
    });
    group.finish();
}

criterion_group!(benches, envelope, output_encode, line_reader, log_append);
criterion_main!(benches);
