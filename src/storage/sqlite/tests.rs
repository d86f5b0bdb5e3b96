//! Unit tests of the store: schema, projects, runs, the message log, retention.

use std::path::PathBuf;

use super::*;
use crate::protocol::{ProjectState, RunStatus, Stream};

/// Runs an async store call from a plain test thread.
pub(super) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn project(store: &Store, id: &str) {
    store
        .insert_project_blocking(&ProjectRow {
            id: id.into(),
            name: id.into(),
            path: PathBuf::from(format!("/tmp/{id}")),
            created_at: 1,
            state: ProjectState::Idle,
            reason: None,
            session_id: None,
            last_seq: 0,
        })
        .unwrap();
}

fn line(store: &Store, project_id: &str, ts: i64, kind: &str) -> u64 {
    let body = format!(r#"{{"type":"{kind}"}}"#);
    store
        .append(
            project_id,
            &NewLine {
                run_id: None,
                ts,
                stream: Stream::Stdout,
                kind,
                body: &body,
                is_json: true,
            },
        )
        .unwrap()
}

fn query(project_id: &str) -> MessageQuery {
    MessageQuery {
        project_id: project_id.into(),
        limit: 100,
        max_bytes: usize::MAX,
        ..Default::default()
    }
}

#[test]
fn seq_is_per_project_and_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    project(&store, "a");
    project(&store, "b");
    assert_eq!(line(&store, "a", 10, "x"), 1);
    assert_eq!(line(&store, "a", 11, "x"), 2);
    assert_eq!(line(&store, "b", 12, "x"), 1);
    assert!(
        store
            .append(
                "missing",
                &NewLine {
                    run_id: None,
                    ts: 0,
                    stream: Stream::Hub,
                    kind: "x",
                    body: "x",
                    is_json: false
                }
            )
            .is_err()
    );
}

#[test]
fn a_batch_takes_consecutive_seqs_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    project(&store, "a");
    assert_eq!(line(&store, "a", 10, "first"), 1);
    let row = |body| NewLine {
        run_id: Some("r1"),
        ts: 11,
        stream: Stream::Stdout,
        kind: "text",
        body,
        is_json: false,
    };
    let rows = [row("two"), row("three"), row("four")];
    assert_eq!(block_on(store.append_all("a", &rows)).unwrap(), 2..5);
    assert_eq!(block_on(store.append_all("a", &[])).unwrap(), 0..0);
    assert_eq!(line(&store, "a", 12, "last"), 5);
    let page = store.messages_blocking(&query("a")).unwrap();
    let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(page.messages[2].text.as_deref(), Some("three"));
    // A missing project stores nothing.
    assert!(block_on(store.append_all("missing", &rows)).is_err());
}

#[test]
fn queries_filter_page_and_sort() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    project(&store, "a");
    for i in 0..10 {
        line(
            &store,
            "a",
            1000 + i,
            if i % 2 == 0 { "assistant" } else { "user" },
        );
    }
    let seqs = |page: MessagePage| page.messages.iter().map(|m| m.seq).collect::<Vec<_>>();
    let page = store
        .messages_blocking(&MessageQuery {
            after_seq: Some(7),
            ..query("a")
        })
        .unwrap();
    assert!(!page.has_more);
    assert_eq!(seqs(page), vec![8, 9, 10]);
    let page = store
        .messages_blocking(&MessageQuery {
            limit: 3,
            ..query("a")
        })
        .unwrap();
    assert!(page.has_more);
    assert_eq!(seqs(page), vec![1, 2, 3]);
    let page = store
        .messages_blocking(&MessageQuery {
            before_seq: Some(6),
            limit: 2,
            ..query("a")
        })
        .unwrap();
    assert!(page.has_more);
    assert_eq!(seqs(page), vec![4, 5]);
    let page = store
        .messages_blocking(&MessageQuery {
            since: Some(1002),
            until: Some(1006),
            kinds: vec!["user".into()],
            ..query("a")
        })
        .unwrap();
    assert_eq!(seqs(page), vec![4, 6]);
    let page = store
        .messages_blocking(&MessageQuery {
            max_bytes: 1,
            ..query("a")
        })
        .unwrap();
    assert!(page.has_more);
    assert_eq!(seqs(page), vec![1]);
}

#[test]
fn prune_keeps_the_newest_and_deletes_cascade() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    project(&store, "a");
    for i in 0..10 {
        line(&store, "a", i, "x");
    }
    assert_eq!(store.prune(4, None).unwrap(), 6);
    let page = store.messages_blocking(&query("a")).unwrap();
    assert_eq!(page.messages.first().map(|m| m.seq), Some(7));
    assert_eq!(store.prune(0, Some(9)).unwrap(), 3);
    // seq continues after pruning; it never restarts.
    assert_eq!(line(&store, "a", 20, "x"), 11);
    assert!(block_on(store.delete_project("a")).unwrap());
    assert!(
        store
            .messages_blocking(&query("a"))
            .unwrap()
            .messages
            .is_empty()
    );
}

#[test]
fn survives_reopen_and_reports_unfinished_runs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        project(&store, "a");
        store.insert_run("r1", "a", "hi", None, 5).unwrap();
        store.set_run_pgid("r1", 4242).unwrap();
        store.insert_run("r2", "a", "hi", None, 6).unwrap();
        store
            .finish_run("r2", &RunOutcome::new(RunStatus::Succeeded, None), 7)
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.projects().unwrap().len(), 1);
    assert_eq!(
        store.unfinished_runs().unwrap(),
        vec![UnfinishedRun {
            id: "r1".into(),
            project_id: "a".into(),
            pgid: Some(4242),
            started_at: 5
        }]
    );
}

#[test]
fn a_corrupt_file_is_reported_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hub.sqlite3"),
        b"this is not a database at all, not even close",
    )
    .unwrap();
    let err = Store::open(dir.path()).err().expect("open must fail");
    assert!(err.to_string().contains("hub.sqlite3"), "{err}");
    assert!(
        std::fs::read(dir.path().join("hub.sqlite3"))
            .unwrap()
            .starts_with(b"this is not")
    );
}

/// Appends a non-JSON line of `text`.
fn text_line(store: &Store, project_id: &str, ts: i64, text: &str) -> u64 {
    store
        .append(
            project_id,
            &NewLine {
                run_id: None,
                ts,
                stream: Stream::Stdout,
                kind: "text",
                body: text,
                is_json: false,
            },
        )
        .unwrap()
}

#[test]
fn full_text_search_finds_every_word_and_follows_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    project(&store, "a");
    project(&store, "b");
    text_line(&store, "a", 1, "the build FAILED in parser.rs");
    text_line(&store, "a", 2, "all tests passed");
    text_line(&store, "a", 3, "parser rewritten; the build passes");
    text_line(&store, "b", 4, "the build failed elsewhere");
    let found = |project: &str, q: &str| {
        store
            .messages_blocking(&MessageQuery {
                q: Some(q.into()),
                ..query(project)
            })
            .unwrap()
            .messages
            .iter()
            .map(|m| m.seq)
            .collect::<Vec<_>>()
    };
    // Whole words, any case, every word, in this project only.
    assert_eq!(found("a", "failed"), vec![1]);
    assert_eq!(found("a", "BUILD"), vec![1, 3]);
    assert_eq!(found("a", "build parser"), vec![1, 3]);
    assert_eq!(found("a", "build tests"), Vec::<u64>::new());
    assert_eq!(found("b", "failed"), vec![1]);
    // FTS5 syntax in the words is only text.
    assert_eq!(found("a", "\"build\" OR NEAR(x) *"), Vec::<u64>::new());
    assert_eq!(found("a", "parser.rs"), vec![1]);
    // Retention and project deletion leave the index in step with the lines.
    assert_eq!(store.prune(2, None).unwrap(), 1);
    assert_eq!(found("a", "failed"), Vec::<u64>::new());
    assert_eq!(found("a", "build"), vec![3]);
    assert!(block_on(store.delete_project("b")).unwrap());
    store
        .write_blocking(|conn| {
            conn.execute_batch(
                "INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')",
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(found("a", "passed"), vec![2]);
}
