//! Full-text search in the output, indexed in the background.
//!
//! The index (`messages_fts`, an external-content FTS5 table over `messages.body`,
//! <https://www.sqlite.org/fts5.html#external_content_tables>) holds the lines whose
//! rowid is at most the watermark `messages_fts_state.indexed_to`. Appending a line
//! does not touch it: the writer thread indexes the lines past the watermark when its
//! queue is idle ([`index_chunk`], at most [`INDEX_CHUNK_ROWS`] lines and about
//! [`INDEX_CHUNK_BYTES`] per transaction), so an output burst never pays for indexing
//! and the index catches up after it.
//!
//! A search stays exact: it matches the index for the lines under the watermark and,
//! in the same read transaction, tokenizes the lines past it with the same FTS5
//! tokenizer in a private in-memory table ([`tail_matches`]), so a line stored a
//! moment ago is found by the same rule as an old one.
//!
//! Deletes touch the index only for lines under the watermark (a trigger with a
//! `WHEN`; FTS5's `delete` command with the line's text). That is cheaper than a
//! contentless table with `contentless_delete=1`: measured on 50,000 deleted lines in
//! chunks of 2,000, the `delete` command ran at 80k–115k lines/s, the contentless
//! delete at 20k–25k lines/s. Because a table without `AUTOINCREMENT` gives a new row
//! the largest rowid + 1, the same triggers lower the watermark to the largest rowid
//! left whenever deletes take it below the watermark, so a later line can never get a
//! rowid the watermark already claims.

use rusqlite::{Connection, params, params_from_iter};

use super::StoreError;

/// Most lines indexed in one transaction.
pub(super) const INDEX_CHUNK_ROWS: usize = 256;
/// A transaction stops taking lines once their text exceeds this many bytes (at least
/// one line is taken).
pub(super) const INDEX_CHUNK_BYTES: i64 = 256 * 1024;

/// Replaces the trigger-kept index of the previous migration: drops it and its
/// triggers, creates the index again (empty), the watermark (0: nothing indexed yet, the
/// writer indexes the stored lines in the background) and the delete and update
/// triggers that keep the rows under the watermark in step.
pub(super) const MIGRATION: &str = "
    DROP TRIGGER IF EXISTS messages_fts_insert;
    DROP TRIGGER IF EXISTS messages_fts_delete;
    DROP TRIGGER IF EXISTS messages_fts_update;
    DROP TABLE IF EXISTS messages_fts;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        body, content='messages', content_rowid='rowid'
    );
    CREATE TABLE messages_fts_state (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        indexed_to INTEGER NOT NULL
    );
    INSERT INTO messages_fts_state (id, indexed_to) VALUES (0, 0);
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.rowid <= (SELECT indexed_to FROM messages_fts_state) BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body)
            VALUES ('delete', old.rowid, old.body);
        UPDATE messages_fts_state
            SET indexed_to = (SELECT coalesce(max(rowid), 0) FROM messages)
            WHERE indexed_to > (SELECT coalesce(max(rowid), 0) FROM messages);
    END;
    CREATE TRIGGER messages_fts_lower AFTER DELETE ON messages
    WHEN old.rowid > (SELECT indexed_to FROM messages_fts_state) BEGIN
        UPDATE messages_fts_state
            SET indexed_to = (SELECT coalesce(max(rowid), 0) FROM messages)
            WHERE indexed_to > (SELECT coalesce(max(rowid), 0) FROM messages);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
    WHEN old.rowid <= (SELECT indexed_to FROM messages_fts_state) BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body)
            VALUES ('delete', old.rowid, old.body);
        INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, new.body);
    END;";

/// The watermark: the largest rowid of `messages` that the index covers.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(super) fn watermark(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT indexed_to FROM messages_fts_state")?
        .query_row([], |row| row.get(0))?)
}

/// Lines stored but not yet indexed.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(super) fn backlog(conn: &Connection) -> Result<u64, StoreError> {
    let from = watermark(conn)?;
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM messages WHERE rowid > ?1")?
        .query_row([from], |row| row.get(0))?;
    Ok(count as u64)
}

/// Indexes the next lines past the watermark (at most [`INDEX_CHUNK_ROWS`], stopping
/// after [`INDEX_CHUNK_BYTES`]) and moves the watermark past them, in the caller's
/// transaction. Returns whether lines may be left to index (the chunk was full).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(super) fn index_chunk(conn: &Connection) -> Result<bool, StoreError> {
    let from = watermark(conn)?;
    let mut to = None;
    let mut full = false;
    {
        let mut next = conn.prepare_cached(
            "SELECT rowid, octet_length(body) FROM messages WHERE rowid > ?1
             ORDER BY rowid LIMIT ?2",
        )?;
        let mut rows = next.query(params![from, INDEX_CHUNK_ROWS as i64])?;
        let (mut taken, mut bytes) = (0, 0i64);
        while let Some(row) = rows.next()? {
            to = Some(row.get::<_, i64>(0)?);
            taken += 1;
            bytes += row.get::<_, Option<i64>>(1)?.unwrap_or(0);
            if bytes >= INDEX_CHUNK_BYTES {
                full = true;
                break;
            }
        }
        full |= taken == INDEX_CHUNK_ROWS;
    }
    let Some(to) = to else {
        return Ok(false);
    };
    conn.prepare_cached(
        "INSERT INTO messages_fts (rowid, body)
         SELECT rowid, body FROM messages WHERE rowid > ?1 AND rowid <= ?2",
    )?
    .execute(params![from, to])?;
    conn.prepare_cached("UPDATE messages_fts_state SET indexed_to = ?1")?
        .execute([to])?;
    Ok(full)
}

/// The rowids among `candidates` (rowid and text of lines past the watermark) whose
/// text matches the FTS5 query `q`, by the same tokenizer and rule as the index: the
/// lines go into a private in-memory contentless FTS5 table, which is then matched.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(super) fn tail_matches(
    conn: &Connection,
    sql: &str,
    args: &[rusqlite::types::Value],
    q: &str,
) -> Result<Vec<i64>, StoreError> {
    let mut candidates = conn.prepare_cached(sql)?;
    let mut rows = candidates.query(params_from_iter(args))?;
    let mut memory: Option<Connection> = None;
    while let Some(row) = rows.next()? {
        let index = match &mut memory {
            Some(index) => index,
            None => {
                let index = Connection::open_in_memory()?;
                index.execute_batch(
                    "CREATE VIRTUAL TABLE tail USING fts5(body, content='');
                     BEGIN;",
                )?;
                memory.insert(index)
            }
        };
        let rowid: i64 = row.get(0)?;
        let body = row.get_ref(1)?;
        index
            .prepare_cached("INSERT INTO tail (rowid, body) VALUES (?1, ?2)")?
            .execute(params![rowid, rusqlite::types::ToSqlOutput::Borrowed(body)])?;
    }
    let Some(index) = memory else {
        return Ok(Vec::new());
    };
    let mut matches = index.prepare("SELECT rowid FROM tail WHERE tail MATCH ?1")?;
    let found = matches
        .query_map([q], |row| row.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(found)
}

/// The FTS5 query for the words of `q`: each word (split on white space) as a quoted
/// phrase, so every one must appear and no character of `q` is FTS5 syntax; FTS5's
/// `unicode61` tokenizer then matches whole words, ignoring case and diacritics. `None`
/// when `q` holds no word.
pub(crate) fn fts_query(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}
