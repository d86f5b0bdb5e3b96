//! A stand-in for the Claude Code CLI that the hub runs during the agent output
//! figures (`bench fake-cli`, through a wrapper script, as `agent.cli_path`).
//!
//! It takes the hub's arguments (`-p --output-format stream-json --verbose ...`, the
//! prompt on stdin) like `tests/fixtures/fake-claude`, whose stream-json shapes it
//! copies, but it is compiled: the shell fixture spends more time per line than the hub
//! does, and it cannot pace output or stamp lines. Prompts:
//! - `lines COUNT SIZE`: COUNT assistant lines of about SIZE bytes, as fast as possible;
//! - `paced COUNT RATE SIZE`: the same at RATE lines per second.
//!
//! Each assistant line carries `"bench_t":<ns since the epoch>`, the time it was written.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::wsclient::now_ns;

/// One stream-json `assistant` line of about `size` bytes (at least about 150) with a
/// send stamp.
pub fn assistant_line(n: u64, size: usize, stamp_ns: u64) -> String {
    let head = format!(
        "{{\"type\":\"assistant\",\"bench_t\":{stamp_ns},\"message\":{{\"id\":\"msg_{n}\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{{\"type\":\"text\",\"text\":\""
    );
    let tail = "\"}]},\"session_id\":\"00000000-0000-4000-8000-000000000000\"}";
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut line = String::with_capacity(head.len() + pad + tail.len());
    line.push_str(&head);
    line.extend(std::iter::repeat_n('x', pad));
    line.push_str(tail);
    line
}

/// Runs as the CLI with `args` (without the program name).
///
/// # Errors
/// An unknown prompt, or stdout closed.
pub fn run(args: &[String]) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if args.first().map(String::as_str) == Some("--version") {
        writeln!(out, "9.9.9 (Benchmark Claude Code)")?;
        return Ok(());
    }
    if !args.iter().any(|a| a == "-p" || a == "--print") {
        bail!("no -p flag");
    }
    if args.iter().any(|a| a == "--input-format") {
        // `--input-format stream-json`, as the hub runs it: each `user` line on stdin is
        // a turn, ended by a `result` line; the process ends when stdin closes.
        for line in std::io::stdin().lines() {
            let line = line.context("cannot read stdin")?;
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if message["type"] == "user" {
                turn(&mut out, &user_text(&message["message"]["content"]))?;
            }
        }
        return Ok(());
    }
    // Like the real CLI with -p and no prompt argument: the prompt is all of stdin.
    let mut prompt = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut prompt)
        .context("cannot read the prompt from stdin")?;
    turn(&mut out, &prompt)
}

/// The text of a stream-json `user` message's `content`: a string, or the `text` of its
/// blocks.
fn user_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| block["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Answers one prompt: `init`, the lines it asks for, `result`.
fn turn(out: &mut impl Write, prompt: &str) -> Result<()> {
    let words: Vec<&str> = prompt.split_whitespace().collect();
    let number = |i: usize| -> Result<u64> {
        words
            .get(i)
            .context("missing number in the prompt")?
            .parse()
            .context("bad number in the prompt")
    };
    let (count, rate, size) = match words.first().copied() {
        Some("lines") => (number(1)?, 0, number(2)?),
        Some("paced") => (number(1)?, number(2)?, number(3)?),
        _ => bail!("unknown prompt {prompt:?}; use `lines COUNT SIZE` or `paced COUNT RATE SIZE`"),
    };
    let size = usize::try_from(size)?;
    writeln!(
        out,
        "{{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"00000000-0000-4000-8000-000000000000\",\"tools\":[],\"model\":\"bench\"}}"
    )?;
    let started = Instant::now();
    let mut sent = 0;
    while sent < count {
        let due = if rate == 0 {
            count
        } else {
            ((started.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(count)
        };
        while sent < due {
            sent += 1;
            writeln!(out, "{}", assistant_line(sent, size, now_ns()))?;
        }
        if rate != 0 {
            out.flush()?;
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    writeln!(
        out,
        "{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"duration_ms\":1,\"num_turns\":1,\"result\":\"done\",\"session_id\":\"00000000-0000-4000-8000-000000000000\",\"total_cost_usd\":0}}"
    )?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_size_and_a_stamp() {
        let line = assistant_line(3, 1024, 42);
        assert_eq!(line.len(), 1024);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["type"], "assistant");
        assert_eq!(crate::wsclient::stamp(&line), Some(42));
    }
}
