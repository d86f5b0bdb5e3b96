//! `semantest-hub completions SHELL` and `semantest-hub man`: the shell completion
//! script and the roff man page, both generated from the clap definition in `args`, so
//! they always name the commands and options this binary has.

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
/// line per subcommand.
///
/// # Errors
/// When the page cannot be rendered or stdout cannot be written.
pub(super) fn man() -> Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("cannot render the man page")?;
    write_stdout(&page)
}
