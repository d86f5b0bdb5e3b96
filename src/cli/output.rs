//! How commands print for a person: aligned tables, `--json`, `-q`.

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
            println!("{}", serde_json::to_string_pretty(result)?);
            return Ok(());
        }
        let items = result[key].as_array().cloned().unwrap_or_default();
        if self.quiet {
            for item in &items {
                println!("{}", item["id"].as_str().unwrap_or_default());
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
        print_table(&headers, &rows);
        Ok(())
    }
}

/// The string at `item[key]`, or `default` when it is absent or not a string.
pub(super) fn text_or(item: &Value, key: &str, default: &str) -> String {
    item[key].as_str().unwrap_or(default).to_string()
}

/// Prints `rows` under `headers` in columns two spaces apart, each as wide as its widest
/// cell (counted in characters); the last column is not padded.
pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
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
        println!("{}", text.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
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

/// Writes `text` to stdout at once. A reader that stopped early (`| head`) is not an
/// error: the output is simply cut there.
///
/// # Errors
/// Any other write failure.
pub(super) fn write_stdout(text: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(err).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}
