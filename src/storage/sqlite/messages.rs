//! The per-project message log: appends, pages and retention.

use rusqlite::{Connection, params, params_from_iter};
use serde_json::value::RawValue;

use super::{CHUNK_ROWS, MessagePage, MessageQuery, NewLine, Store, StoreError, search, stored};
use crate::protocol::{Output, Stream};
use crate::support::timestamp::format_ms;

/// A [`NewLine`] the writer thread can own.
struct OwnedLine {
    run_id: Option<String>,
    ts: i64,
    stream: Stream,
    kind: String,
    body: String,
    is_json: bool,
}

impl From<&NewLine<'_>> for OwnedLine {
    fn from(line: &NewLine<'_>) -> Self {
        Self {
            run_id: line.run_id.map(str::to_string),
            ts: line.ts,
            stream: line.stream,
            kind: line.kind.to_string(),
            body: line.body.to_string(),
            is_json: line.is_json,
        }
    }
}

impl Store {
    /// Appends a line to a project's log and returns its seq, the project's
    /// `last_seq + 1`. Blocks: for sync code off the runtime.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`]; `QueryReturnedNoRows` when the project does not exist.
    pub fn append(&self, project_id: &str, line: &NewLine<'_>) -> Result<u64, StoreError> {
        let (project_id, lines) = (project_id.to_string(), vec![OwnedLine::from(line)]);
        Ok(self
            .write_blocking(move |conn| append_all(conn, &project_id, &lines))?
            .start)
    }

    /// Appends lines to a project's log in one write (committed with whatever else the
    /// writer groups with it) and returns their seqs: consecutive, from the project's
    /// `last_seq + 1`, in the order given. Either every line is stored or none is. An
    /// empty slice touches nothing and returns an empty range.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`]; `QueryReturnedNoRows` when the project does not exist.
    pub async fn append_all(
        &self,
        project_id: &str,
        lines: &[NewLine<'_>],
    ) -> Result<std::ops::Range<u64>, StoreError> {
        if lines.is_empty() {
            return Ok(0..0);
        }
        let project_id = project_id.to_string();
        let lines: Vec<OwnedLine> = lines.iter().map(OwnedLine::from).collect();
        self.write(move |conn| append_all(conn, &project_id, &lines))
            .await
    }

    /// [`Store::append_all`] for sync code: blocks until the commit.
    ///
    /// # Errors
    /// As [`Store::append_all`].
    pub fn append_all_blocking(
        &self,
        project_id: &str,
        lines: &[NewLine<'_>],
    ) -> Result<std::ops::Range<u64>, StoreError> {
        if lines.is_empty() {
            return Ok(0..0);
        }
        let project_id = project_id.to_string();
        let lines: Vec<OwnedLine> = lines.iter().map(OwnedLine::from).collect();
        self.write_blocking(move |conn| append_all(conn, &project_id, &lines))
    }

    /// A page of a project's log, ascending by seq, read on the blocking pool.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn messages(&self, query: &MessageQuery) -> Result<MessagePage, StoreError> {
        let query = query.clone();
        self.read(move |conn| messages(conn, &query)).await
    }

    /// [`Store::messages`] for sync code off the runtime.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn messages_blocking(&self, query: &MessageQuery) -> Result<MessagePage, StoreError> {
        self.read_blocking(|conn| messages(conn, query))
    }

    /// Output lines stored but not yet in the full-text index (the writer indexes them
    /// when idle; a search finds them meanwhile by scanning them). Blocks: for sync code
    /// off the runtime.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn search_backlog_blocking(&self) -> Result<u64, StoreError> {
        self.read_blocking(search::backlog)
    }

    /// Pauses (`false`) or resumes (`true`) the writer's background indexing of output
    /// lines (on when the store opens). Searches stay exact while paused; they scan the
    /// lines not yet indexed.
    pub fn set_search_indexing(&self, on: bool) {
        self.writer.set_indexing(on);
    }

    /// Deletes lines beyond the newest `max_lines` per project and lines older than
    /// `older_than` (epoch ms). Zero disables each rule. Returns the number deleted.
    /// Deletes [`CHUNK_ROWS`] lines per write, so appends interleave with it. Blocks: run
    /// it on the blocking pool.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn prune(&self, max_lines: u64, older_than: Option<i64>) -> Result<usize, StoreError> {
        let mut deleted = 0;
        if max_lines > 0 {
            deleted += self.delete_in_chunks(
                "DELETE FROM messages WHERE rowid IN (
                     SELECT m.rowid FROM messages m JOIN projects p ON p.id = m.project_id
                     WHERE m.seq <= p.last_seq - ?1 LIMIT ?2)",
                max_lines as i64,
            )?;
        }
        if let Some(cutoff) = older_than {
            deleted += self.delete_in_chunks(
                "DELETE FROM messages WHERE rowid IN (
                     SELECT rowid FROM messages WHERE ts < ?1 LIMIT ?2)",
                cutoff,
            )?;
        }
        Ok(deleted)
    }

    /// Runs a `DELETE` taking `(?1 = arg, ?2 = chunk size)` until a chunk comes back
    /// short; returns the rows deleted.
    fn delete_in_chunks(&self, sql: &'static str, arg: i64) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let deleted = self.write_blocking(move |conn| {
                Ok(conn
                    .prepare_cached(sql)?
                    .execute(params![arg, CHUNK_ROWS as i64])?)
            })?;
            total += deleted;
            if deleted < CHUNK_ROWS {
                return Ok(total);
            }
        }
    }
}

fn append_all(
    conn: &Connection,
    project_id: &str,
    lines: &[OwnedLine],
) -> Result<std::ops::Range<u64>, StoreError> {
    let last: i64 = conn
        .prepare_cached(
            "UPDATE projects SET last_seq = last_seq + ?2 WHERE id = ?1 RETURNING last_seq",
        )?
        .query_row(params![project_id, lines.len() as i64], |row| row.get(0))?;
    let first = last - lines.len() as i64 + 1;
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (project_id, seq, ts, run_id, stream, kind, is_json, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (seq, line) in (first..).zip(lines) {
        insert.execute(params![
            project_id,
            seq,
            line.ts,
            line.run_id,
            line.stream.as_str(),
            line.kind,
            line.is_json,
            line.body
        ])?;
    }
    Ok(first as u64..last as u64 + 1)
}

/// The `WHERE` terms of `query` other than `q`, after `project_id = ?` (their SQL and
/// arguments, in order).
fn filters(query: &MessageQuery) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(after) = query.after_seq {
        sql.push_str(" AND seq > ?");
        args.push((after as i64).into());
    }
    if let Some(before) = query.before_seq {
        sql.push_str(" AND seq < ?");
        args.push((before as i64).into());
    }
    if let Some(since) = query.since {
        sql.push_str(" AND ts >= ?");
        args.push(since.into());
    }
    if let Some(until) = query.until {
        sql.push_str(" AND ts < ?");
        args.push(until.into());
    }
    if !query.kinds.is_empty() {
        sql.push_str(" AND kind IN (");
        sql.push_str(&vec!["?"; query.kinds.len()].join(","));
        sql.push(')');
        args.extend(query.kinds.iter().map(|kind| kind.clone().into()));
    }
    (sql, args)
}

fn messages(conn: &Connection, query: &MessageQuery) -> Result<MessagePage, StoreError> {
    let Some(q) = query.q.as_deref().and_then(search::fts_query) else {
        return page(conn, query, None);
    };
    // One read transaction: the watermark, the index and the lines past it are one
    // snapshot, so every matching line is found exactly once.
    let tx = conn.unchecked_transaction()?;
    let indexed_to = search::watermark(&tx)?;
    let (filter_sql, filter_args) = filters(query);
    // The lines past the watermark, found by rowid (`+project_id` keeps SQLite on the
    // rowid range rather than the project's whole log).
    let tail_sql =
        format!("SELECT rowid, body FROM messages WHERE rowid > ? AND +project_id = ?{filter_sql}");
    let mut tail_args: Vec<rusqlite::types::Value> =
        vec![indexed_to.into(), query.project_id.clone().into()];
    tail_args.extend(filter_args);
    let tail = search::tail_matches(&tx, &tail_sql, &tail_args, &q)?;
    let page = page(conn, query, Some((q, tail)))?;
    tx.commit()?;
    Ok(page)
}

/// A page of `query`'s lines; with `search`, only the lines the index matches with the
/// FTS5 query, or whose rowid is among the matched lines past the watermark.
fn page(
    conn: &Connection,
    query: &MessageQuery,
    search: Option<(String, Vec<i64>)>,
) -> Result<MessagePage, StoreError> {
    let mut sql = String::from(
        "SELECT seq, ts, run_id, stream, kind, is_json, body FROM messages WHERE project_id = ?",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![query.project_id.clone().into()];
    let (filter_sql, filter_args) = filters(query);
    sql.push_str(&filter_sql);
    args.extend(filter_args);
    if let Some((q, tail)) = search {
        if tail.is_empty() {
            sql.push_str(
                " AND rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)",
            );
            args.push(q.into());
        } else {
            sql.push_str(
                " AND (rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)
                   OR rowid IN (SELECT value FROM json_each(?)))",
            );
            args.push(q.into());
            let ids: Vec<String> = tail.iter().map(i64::to_string).collect();
            args.push(format!("[{}]", ids.join(",")).into());
        }
    }
    // Paging backwards (scrolling up) takes the newest lines below `before_seq`.
    let descending = query.before_seq.is_some() && query.after_seq.is_none();
    sql.push_str(if descending {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq ASC"
    });
    sql.push_str(" LIMIT ?");
    args.push((i64::from(query.limit) + 1).into());

    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut messages = Vec::new();
    let mut bytes = 0usize;
    let mut has_more = false;
    while let Some(row) = rows.next()? {
        if messages.len() == query.limit as usize
            || (bytes >= query.max_bytes && !messages.is_empty())
        {
            has_more = true;
            break;
        }
        let body: String = row.get(6)?;
        bytes += body.len();
        messages.push(to_output(&query.project_id, row, body)?);
    }
    if descending {
        messages.reverse();
    }
    Ok(MessagePage { messages, has_more })
}

fn to_output(
    project_id: &str,
    row: &rusqlite::Row<'_>,
    body: String,
) -> Result<Output, rusqlite::Error> {
    let stream_name: String = row.get(3)?;
    let is_json: bool = row.get(5)?;
    let (event, text) = if is_json {
        match RawValue::from_string(body) {
            Ok(raw) => (Some(raw), None),
            Err(_) => (None, Some(String::from("<unreadable stored line>"))),
        }
    } else {
        (None, Some(body))
    };
    Ok(Output {
        project_id: project_id.to_string(),
        seq: row.get::<_, i64>(0)? as u64,
        ts: format_ms(row.get(1)?),
        run_id: row.get(2)?,
        stream: stored(&stream_name, Stream::Stdout),
        kind: row.get(4)?,
        event,
        text,
    })
}
