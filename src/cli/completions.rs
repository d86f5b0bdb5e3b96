//! `semantest-hub completions SHELL` and `semantest-hub man [--dir DIR]`: the shell completion
//! script and the roff man page, both generated from the clap definition in `args`, so
//! they always name the commands and options this binary has.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use super::args::Cli;
use super::output::write_stdout;

/// The name the scripts and the page are generated for: the installed binary's.
const BIN: &str = "semantest-hub";

/// Prints `shell`'s completion script for `semantest-hub`.
///
/// # Errors
/// When stdout cannot be written.
pub(super) fn completions(shell: Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    write_stdout(&script)
}

/// Prints the `semantest-hub(1)` man page (roff): the synopsis, every option and one
/// line per subcommand. With `dir`, writes that page and one per subcommand
/// (`semantest-hub-project-add.1`, …) into `dir` instead, creating it, and prints each
/// file's path.
///
/// # Errors
/// When a page cannot be rendered or written.
pub(super) fn man(dir: Option<&Path>) -> Result<()> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(Cli::command(), dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        let mut written: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(BIN) && name.ends_with(".1"))
            .collect();
        written.sort();
        let list: String = written
            .iter()
            .map(|name| format!("{}\n", dir.join(name).display()))
            .collect();
        return write_stdout(list.as_bytes());
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("cannot render the man page")?;
    write_stdout(&page)
}
