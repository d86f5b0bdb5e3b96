//! How commands print for a person: aligned tables, `--json`, `-q`, colour, and what
//! happens when the reader of stdout goes away.
//!
//! Every command writes its stdout through [`write_line`] (the `outln!` macro) or
//! [`write_stdout`], never `println!` (which panics when stdout is a closed pipe, as in
//! `semantest-hub project list | head -1`; clippy's `print_stdout` lint keeps it out of
//! the CLI). A closed stdout becomes the error [`StdoutClosed`], which stops the command
//! where it is and exits 0, as `ls | head` does.
//!
//! Both stdout and stderr go through `anstream`, which drops the colour styles unless the
//! stream is a terminal, and always under `NO_COLOR` (<https://no-color.org>) or
//! `--color never`; `--color always` (or `CLICOLOR_FORCE`) keeps them.

use std::fmt;
use std::io::Write;

use anstyle::{AnsiColor, Style};
use anyhow::Result;
use serde_json::Value;

use super::args::ListFormat;

/// A table column: its header, and how to show an item's cell.
pub(super) type Column<'a> = (&'a str, &'a dyn Fn(&Value) -> String);

impl ListFormat {
    /// Prints `result` as asked: `result` itself as JSON, the `id` of each item of
    /// `result[key]`, or a table of `columns` (header, field) with `empty` said on
    /// stderr when there are no items.
    pub(super) fn print(
        self,
        result: &Value,
        key: &str,
        columns: &[Column<'_>],
        empty: &str,
    ) -> Result<()> {
        if self.json {
            return print_json(result);
        }
        let items = result[key].as_array().cloned().unwrap_or_default();
        if self.quiet {
            for item in &items {
                outln!("{}", item["id"].as_str().unwrap_or_default())?;
            }
            return Ok(());
        }
        if items.is_empty() {
            eprintln!("{empty}");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| columns.iter().map(|(_, cell)| cell(item)).collect())
            .collect();
        let headers: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
        print_table(&headers, &rows)
    }
}

/// Prints `value` as pretty JSON, for `--json`.
///
/// # Errors
/// As [`write_stdout`].
pub(super) fn print_json(value: &Value) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    write_stdout(&text)
}

/// The string at `item[key]`, or `default` when it is absent or not a string.
pub(super) fn text_or(item: &Value, key: &str, default: &str) -> String {
    item[key].as_str().unwrap_or(default).to_string()
}

/// Prints `rows` under `headers` in columns two spaces apart, each as wide as its widest
/// cell (counted in characters); the last column is not padded. The header line is bold
/// on a terminal.
///
/// # Errors
/// As [`write_line`].
pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        text.truncate(text.trim_end().len());
        text
    };
    let header = line(&mut headers.iter().copied());
    outln!("{}", paint(HEADER, &header))?;
    for row in rows {
        outln!("{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

pub(super) fn join_strings(values: &Value) -> String {
    values
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The table headers' style.
pub(super) const HEADER: Style = Style::new().bold();
/// What went well: `ok`, a run that succeeded.
pub(super) const GOOD: Style = AnsiColor::Green.on_default();
/// What needs a look: `warn`.
pub(super) const WARN: Style = AnsiColor::Yellow.on_default();
/// What went wrong: `fail`, `error:`, a run that failed.
pub(super) const BAD: Style = AnsiColor::Red.on_default().bold();
/// Secondary detail: a tool call's input, the run id.
pub(super) const DIM: Style = Style::new().dimmed();

/// `text` in `style`; the styles are dropped on the way out where colour is off.
pub(super) fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// The reader of stdout went away (`| head`): the command stops and exits 0.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Whether `err` is, or was caused by, a closed stdout: [`StdoutClosed`], or a
/// broken-pipe I/O error (also from a writer other than [`write_line`]).
pub fn is_closed_stdout(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<StdoutClosed>()
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn stdout_error(err: std::io::Error) -> anyhow::Error {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(err).context("cannot write to stdout")
    }
}

/// Writes `args` and a newline to stdout (colour styles dropped where colour is off) and
/// flushes, so a follower sees each line at once. The `outln!` macro calls it.
///
/// # Errors
/// [`StdoutClosed`] when the reader has gone away, or another write failure.
pub(super) fn write_line(args: fmt::Arguments<'_>) -> Result<()> {
    let mut stdout = anstream::stdout().lock();
    stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// Writes `text` to stdout at once.
///
/// # Errors
/// [`StdoutClosed`] when the reader has gone away (`| head`), or another write
/// failure.
pub(super) fn write_stdout(text: &[u8]) -> Result<()> {
    let mut stdout = anstream::stdout().lock();
    stdout
        .write_all(text)
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// Writes `args` and a newline to stderr, colour styles dropped where colour is off. A
/// closed stderr is ignored: there is nowhere left to say anything.
pub(super) fn write_err_line(args: fmt::Arguments<'_>) {
    let mut stderr = anstream::stderr().lock();
    let _ = stderr
        .write_fmt(args)
        .and_then(|()| stderr.write_all(b"\n"));
}
