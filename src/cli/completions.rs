//! `semantest-hub completions SHELL` and `semantest-hub man [--dir DIR]`: the shell completion
//! script and the roff man page, both generated from the clap definition in `args`, so
//! they always name the commands and options this binary has.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{Roff, roman};

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

/// Prints the `semantest-hub(1)` man page (roff): the synopsis, every option, one line
/// per subcommand and the examples. With `dir`, writes that page and one per subcommand
/// (`semantest-hub-project-add.1`, ...) into `dir` instead, creating it, and prints each
/// file's path.
///
/// # Errors
/// When a page cannot be rendered or written.
pub(super) fn man(dir: Option<&Path>) -> Result<()> {
    let mut root = Cli::command().disable_help_subcommand(true);
    // Built, the subcommands carry their page names (`semantest-hub-project-add`).
    root.build();
    let Some(dir) = dir else {
        return write_stdout(&page(&root)?);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&root, dir, &mut written)?;
    written.sort();
    let list: String = written
        .iter()
        .map(|path| format!("{}\n", path.display()))
        .collect();
    write_stdout(list.as_bytes())
}

/// Writes the page of `command` and of each of its subcommands into `dir`.
fn write_pages(command: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    let name = command.get_display_name().unwrap_or(command.get_name());
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page(command)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    Ok(())
}

/// The man page of `command`: clap_mangen's sections, with the `after_help` examples
/// (see `examples`) as an EXAMPLES section of literal lines before VERSION, instead of
/// clap_mangen's EXTRA section, which would fill them into one paragraph.
fn page(command: &clap::Command) -> Result<Vec<u8>> {
    let examples = command.get_after_help().map(ToString::to_string);
    let mut rendered = Vec::new();
    clap_mangen::Man::new(command.clone().after_help(None::<&str>))
        .render(&mut rendered)
        .context("cannot render the man page")?;
    let Some(examples) = examples else {
        return Ok(rendered);
    };
    let mut section = Roff::new();
    section.control("SH", ["EXAMPLES"]).control("nf", []);
    for line in super::examples::lines(&examples) {
        section
            .control("RS", ["4"])
            .text([roman(line)])
            .control("RE", []);
    }
    section.control("fi", []);
    let section = section.render();
    let mut text = String::from_utf8(rendered).context("the man page is not UTF-8")?;
    let at = text.find("\n.SH VERSION").map_or(text.len(), |at| at + 1);
    text.insert_str(at, &section);
    Ok(text.into_bytes())
}
