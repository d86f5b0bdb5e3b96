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

/// Runs an async store call to its end from a plain test thread.
pub(super) fn wait<F: std::future::Future>(future: F) -> F::Output {
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
            agent: Default::default(),
            model: None,
            agent_sessions: Default::default(),
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
        wait(store.insert_run("r1", "a", "hi", None, 5)).unwrap();
        wait(store.set_run_pgid("r1", 4242)).unwrap();
        wait(store.insert_run("r2", "a", "hi", None, 6)).unwrap();
        store
            .finish_run_blocking("r2", &RunOutcome::new(RunStatus::Succeeded, None), 7)
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

/// The seqs of project `project`'s lines that `q` finds.
fn found(store: &Store, project: &str, q: &str) -> Vec<u64> {
    store
        .messages_blocking(&MessageQuery {
            q: Some(q.into()),
            ..query(project)
        })
        .unwrap()
        .messages
        .iter()
        .map(|m| m.seq)
        .collect()
}

/// Waits (60 s at most) until the writer has indexed every stored line.
fn wait_indexed(store: &Store) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.search_backlog_blocking().unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the index did not catch up"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// FTS5's own check (against the lines too once every line is indexed), and the index
/// holds exactly the lines at or under the watermark, which is never above the largest
/// rowid.
fn assert_index_in_step(store: &Store) {
    let (indexed, expected, watermark, max) = store
        .write_blocking(|conn| {
            let check = if search::backlog(conn)? == 0 {
                "INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')"
            } else {
                "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 0)"
            };
            conn.execute_batch(check)?;
            conn.execute_batch(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_rows
                 USING fts5vocab(main, messages_fts, 'instance')",
            )?;
            let watermark = search::watermark(conn)?;
            let rowids = |sql: &str, arg: i64| -> Result<Vec<i64>, StoreError> {
                Ok(conn
                    .prepare(sql)?
                    .query_map([arg], |row| row.get(0))?
                    .collect::<Result<Vec<i64>, _>>()?)
            };
            let indexed = rowids(
                "SELECT DISTINCT doc FROM temp.fts_rows WHERE ?1 = ?1 ORDER BY doc",
                0,
            )?;
            let expected = rowids(
                "SELECT rowid FROM messages WHERE rowid <= ?1 AND body != '' ORDER BY rowid",
                watermark,
            )?;
            let max: i64 =
                conn.query_row("SELECT coalesce(max(rowid), 0) FROM messages", [], |row| {
                    row.get(0)
                })?;
            conn.execute_batch("DROP TABLE temp.fts_rows")?;
            Ok((indexed, expected, watermark, max))
        })
        .unwrap();
    assert_eq!(indexed, expected);
    assert!(
        watermark <= max,
        "watermark {watermark} above the largest rowid {max}"
    );
}

/// The search rule and deletes, with the lines indexed before the searches or never.
fn every_word_and_deletes(indexed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.set_search_indexing(indexed);
    project(&store, "a");
    project(&store, "b");
    text_line(&store, "a", 1, "the build FAILED in parser.rs");
    text_line(&store, "a", 2, "all tests passed");
    text_line(&store, "a", 3, "parser rewritten; the build passes");
    text_line(&store, "b", 4, "the build failed elsewhere");
    if indexed {
        wait_indexed(&store);
    } else {
        assert_eq!(store.search_backlog_blocking().unwrap(), 4);
    }
    let found = |project: &str, q: &str| found(&store, project, q);
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
    assert_index_in_step(&store);
    assert_eq!(found("a", "passed"), vec![2]);
    if !indexed {
        assert_eq!(store.search_backlog_blocking().unwrap(), 2);
    }
    store.set_search_indexing(true);
    wait_indexed(&store);
    assert_index_in_step(&store);
    assert_eq!(found("a", "build"), vec![3]);
    assert_eq!(found("a", "passed"), vec![2]);
}

#[test]
fn full_text_search_finds_every_word_and_follows_deletes() {
    every_word_and_deletes(true);
}

#[test]
fn full_text_search_is_the_same_before_indexing() {
    every_word_and_deletes(false);
}

#[test]
fn a_line_is_found_before_and_after_it_is_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.set_search_indexing(false);
    project(&store, "a");
    text_line(&store, "a", 1, "Café: ERROR in módulo Ünïcode");
    text_line(&store, "a", 2, "no errors here");
    text_line(&store, "a", 3, "a café");
    let cases: [(&str, Vec<u64>); 6] = [
        // Any case, diacritics ignored (FTS5's unicode61 tokenizer), every word.
        ("cafe error", vec![1]),
        ("CAFÉ", vec![1, 3]),
        ("modulo unicode", vec![1]),
        // Whole words: no prefix, no substring.
        ("err", vec![]),
        ("error", vec![1]),
        ("errors", vec![2]),
    ];
    assert_eq!(store.search_backlog_blocking().unwrap(), 3);
    for (q, seqs) in &cases {
        assert_eq!(&found(&store, "a", q), seqs, "before indexing: {q}");
    }
    store.set_search_indexing(true);
    wait_indexed(&store);
    for (q, seqs) in &cases {
        assert_eq!(&found(&store, "a", q), seqs, "after indexing: {q}");
    }
    // Part indexed, part not: one page, in order, each line once.
    store.set_search_indexing(false);
    text_line(&store, "a", 4, "error again");
    assert_eq!(store.search_backlog_blocking().unwrap(), 1);
    assert_eq!(found(&store, "a", "error"), vec![1, 4]);
    let page = store
        .messages_blocking(&MessageQuery {
            q: Some("error".into()),
            limit: 1,
            ..query("a")
        })
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    assert!(page.has_more);
    assert_index_in_step(&store);
}

#[test]
fn the_index_catches_up_when_the_writer_is_idle() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    project(&store, "a");
    let count = 3 * search::INDEX_CHUNK_ROWS + 10;
    let bodies: Vec<String> = (0..count).map(|i| format!("line word{i}")).collect();
    let lines: Vec<NewLine<'_>> = bodies
        .iter()
        .map(|body| NewLine {
            run_id: None,
            ts: 1,
            stream: Stream::Stdout,
            kind: "text",
            body,
            is_json: false,
        })
        .collect();
    store.append_all_blocking("a", &lines).unwrap();
    wait_indexed(&store);
    assert_index_in_step(&store);
    let last: i64 = store
        .read_blocking(|conn| {
            Ok(conn.query_row("SELECT max(rowid) FROM messages", [], |row| row.get(0))?)
        })
        .unwrap();
    assert_eq!(store.read_blocking(search::watermark).unwrap(), last);
    assert_eq!(found(&store, "a", "word0"), vec![1]);
    assert_eq!(
        found(&store, "a", &format!("word{}", count - 1)),
        vec![count as u64]
    );
    assert_eq!(found(&store, "a", "line").len(), 100);
}

#[test]
fn deletes_under_and_over_the_watermark_keep_the_index_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    project(&store, "a");
    project(&store, "b");
    for ts in 1..=3 {
        text_line(&store, "a", ts, "old line");
    }
    wait_indexed(&store);
    store.set_search_indexing(false);
    text_line(&store, "a", 4, "new line");
    text_line(&store, "a", 5, "new line");
    text_line(&store, "b", 6, "new line");
    // Retention deletes indexed lines (under the watermark).
    assert_eq!(store.prune(2, None).unwrap(), 3);
    assert_eq!(found(&store, "a", "old"), Vec::<u64>::new());
    assert_eq!(found(&store, "a", "line"), vec![4, 5]);
    assert_index_in_step(&store);
    // Project deletion deletes a line not yet indexed (over the watermark).
    assert!(block_on(store.delete_project("b")).unwrap());
    assert_index_in_step(&store);
    store.set_search_indexing(true);
    wait_indexed(&store);
    assert_index_in_step(&store);
    assert_eq!(found(&store, "a", "new"), vec![4, 5]);

    // Deleting the newest, indexed lines takes the largest rowid below the watermark;
    // the next line reuses a rowid the watermark covered, and is found all the same.
    project(&store, "c");
    text_line(&store, "c", 7, "doomed line");
    wait_indexed(&store);
    store.set_search_indexing(false);
    assert!(block_on(store.delete_project("c")).unwrap());
    assert_index_in_step(&store);
    text_line(&store, "a", 8, "fresh line");
    assert_eq!(store.search_backlog_blocking().unwrap(), 1);
    assert_eq!(found(&store, "a", "fresh"), vec![6]);
    assert_eq!(found(&store, "a", "doomed"), Vec::<u64>::new());
    store.set_search_indexing(true);
    wait_indexed(&store);
    assert_index_in_step(&store);
    assert_eq!(found(&store, "a", "fresh"), vec![6]);
    assert_eq!(found(&store, "a", "line"), vec![4, 5, 6]);
}

#[test]
fn a_restart_finds_and_indexes_the_lines_left_unindexed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.set_search_indexing(false);
        project(&store, "a");
        text_line(&store, "a", 1, "written before the restart");
        text_line(&store, "a", 2, "also before");
        assert_eq!(store.search_backlog_blocking().unwrap(), 2);
        store.close();
    }
    let store = Store::open(dir.path()).unwrap();
    // Found whether or not the writer has indexed them yet.
    assert_eq!(found(&store, "a", "before"), vec![1, 2]);
    // Indexed after the restart with no new write.
    wait_indexed(&store);
    assert_index_in_step(&store);
    assert_eq!(found(&store, "a", "before"), vec![1, 2]);
    assert_eq!(found(&store, "a", "restart"), vec![1]);
}

#[test]
fn approval_rules_stored_before_rule_content_still_cover_their_whole_tool() {
    let dir = tempfile::tempdir().unwrap();
    let all = migrations::migrations();
    let before = all
        .pending_migrations(&rusqlite::Connection::open_in_memory().unwrap())
        .unwrap() as usize
        - 1;
    {
        let mut conn = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        all.to_version(&mut conn, before).unwrap();
        conn.execute(
            "INSERT INTO projects (id, name, path, created_at) VALUES ('p1', 'p1', '/tmp/p1', 1)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO approval_rules (project_id, tool_name, behavior, created_at)
             VALUES ('p1', 'Bash', 'allow', 5)",
            [],
        )
        .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let rules = block_on(store.approval_rules()).unwrap();
    assert_eq!(
        rules,
        [RuleRow {
            project_id: "p1".into(),
            tool_name: "Bash".into(),
            rule_content: String::new(),
            behavior: "allow".into(),
            created_at: 5,
        }]
    );
    // Several rules of one tool now live side by side, and one can be deleted.
    let rule = |content: &str| RuleRow {
        project_id: "p1".into(),
        tool_name: "Bash".into(),
        rule_content: content.into(),
        behavior: "allow".into(),
        created_at: 0,
    };
    block_on(store.put_approval_rule(rule("npm test:*"), 7)).unwrap();
    assert_eq!(block_on(store.approval_rules()).unwrap().len(), 2);
    let deleted =
        block_on(store.delete_approval_rule("p1".into(), "Bash".into(), String::new())).unwrap();
    assert!(deleted);
    let left = block_on(store.approval_rules()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].rule_content, "npm test:*");
}
