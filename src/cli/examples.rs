//! The `Examples:` section of every command's `--help` (clap's `after_help`), also the
//! EXAMPLES section of its man page. Each example is one command line as a user types
//! it; the test below parses every one with the real argument definitions, so an example
//! cannot name an option that does not exist. ASCII only: the man pages are roff.

/// `semantest-hub`.
pub(super) const ROOT: &str = "Examples:
  semantest-hub serve
  semantest-hub project add ~/code/myapp
  semantest-hub agent run ~/code/myapp \"fix the failing test\"
  semantest-hub --version";
/// `serve`.
pub(super) const SERVE: &str = "Examples:
  semantest-hub serve
  semantest-hub serve --port 0 --dashboard
  semantest-hub serve --public --bind 0.0.0.0:8443 --tls-cert fullchain.pem --tls-key privkey.pem";
/// `token`.
pub(super) const TOKEN: &str = "Examples:
  semantest-hub token
  semantest-hub token create --name ci --scope tasks projects:read
  semantest-hub token list";
/// `token create`.
pub(super) const TOKEN_CREATE: &str = "Examples:
  semantest-hub token create --name ci --scope events
  semantest-hub token create --name recorder --scope events --origin chrome-extension://abcdefghijklmnopabcdefghijklmnop
  semantest-hub token create --name ci --scope tasks projects:read --json";
/// `token list`.
pub(super) const TOKEN_LIST: &str = "Examples:
  semantest-hub token list
  semantest-hub token list -q
  semantest-hub token list --json";
/// `token revoke`.
pub(super) const TOKEN_REVOKE: &str = "Examples:
  semantest-hub token revoke cl_0b7e55a1c9d2
  semantest-hub token revoke cl_0b7e55a1c9d2 --json";
/// `status`.
pub(super) const STATUS: &str = "Examples:
  semantest-hub status";
/// `dashboard`.
pub(super) const DASHBOARD: &str = "Examples:
  semantest-hub dashboard
  semantest-hub dashboard --print";
/// `project`.
pub(super) const PROJECT: &str = "Examples:
  semantest-hub project add ~/code/myapp
  semantest-hub project list
  semantest-hub project rm ~/code/myapp";
/// `project add`.
pub(super) const PROJECT_ADD: &str = "Examples:
  semantest-hub project add ~/code/myapp
  semantest-hub project add . --name myapp --json";
/// `project list`.
pub(super) const PROJECT_LIST: &str = "Examples:
  semantest-hub project list
  semantest-hub project list -q
  semantest-hub project list --json";
/// `project show`.
pub(super) const PROJECT_SHOW: &str = "Examples:
  semantest-hub project show ~/code/myapp
  semantest-hub project show ~/code/myapp --json";
/// `project rm`.
pub(super) const PROJECT_RM: &str = "Examples:
  semantest-hub project rm ~/code/myapp
  semantest-hub project rm ~/code/myapp --json";
/// `agent`.
pub(super) const AGENT: &str = "Examples:
  semantest-hub agent run ~/code/myapp \"fix the failing test\"
  semantest-hub agent kill ~/code/myapp";
/// `agent run`.
pub(super) const AGENT_RUN: &str = "Examples:
  semantest-hub agent run ~/code/myapp \"fix the failing test\"
  semantest-hub agent run ~/code/myapp \"write a changelog\" --new-session --timeout 600
  semantest-hub agent run ~/code/myapp \"review the diff\" --agent codex
  semantest-hub agent run ~/code/myapp \"run the tests\" --json
  semantest-hub agent run ~/code/myapp \"try the new parser\" --worktree
  semantest-hub agent run ~/code/myapp \"now add tests\" --in-worktree 0190c3a4-5b6d-7e8f-9a0b-1c2d3e4f5a6b";
/// `agent kill`.
pub(super) const AGENT_KILL: &str = "Examples:
  semantest-hub agent kill ~/code/myapp
  semantest-hub agent kill ~/code/myapp --run 0190c3a4-5b6d-7e8f-9a0b-1c2d3e4f5a6b";
/// `agent worktree`.
pub(super) const AGENT_WORKTREE: &str = "Examples:
  semantest-hub agent worktree 0190c3a4-5b6d-7e8f-9a0b-1c2d3e4f5a6b
  semantest-hub agent worktree 0190c3a4-5b6d-7e8f-9a0b-1c2d3e4f5a6b --json";
/// `agent merge`.
pub(super) const AGENT_MERGE: &str = "Examples:
  semantest-hub agent merge 0190c3a4-5b6d-7e8f-9a0b-1c2d3e4f5a6b";
/// `agent discard`.
pub(super) const AGENT_DISCARD: &str = "Examples:
  semantest-hub agent discard 0190c3a4-5b6d-7e8f-9a0b-1c2d3e4f5a6b";
/// `agent new-session`.
pub(super) const AGENT_NEW_SESSION: &str = "Examples:
  semantest-hub agent new-session ~/code/myapp";
/// `ps`.
pub(super) const PS: &str = "Examples:
  semantest-hub ps
  semantest-hub ps -q
  semantest-hub ps --json";
/// `logs`.
pub(super) const LOGS: &str = "Examples:
  semantest-hub logs ~/code/myapp -f
  semantest-hub logs ~/code/myapp --since 2026-12-07T08:00:00Z --json
  semantest-hub logs ~/code/myapp --run run_5d1c2b3a";
/// `usage`.
pub(super) const USAGE: &str = "Examples:
  semantest-hub usage
  semantest-hub usage --by project --since 2026-12-01
  semantest-hub usage --project ~/code/myapp --by run --json";
/// `events`.
pub(super) const EVENTS: &str = "Examples:
  semantest-hub events tail 'demo.*'
  semantest-hub events publish demo.message '{\"text\":\"hi\"}'";
/// `events tail`.
pub(super) const EVENTS_TAIL: &str = "Examples:
  semantest-hub events tail
  semantest-hub events tail 'demo.*' tab.opened";
/// `events publish`.
pub(super) const EVENTS_PUBLISH: &str = "Examples:
  semantest-hub events publish demo.message '{\"text\":\"hi\"}'
  semantest-hub events publish demo.ping --json";
/// `approvals`.
pub(super) const APPROVALS: &str = "Examples:
  semantest-hub approvals
  semantest-hub approvals allow ap_3f9a0c1d2e4b
  semantest-hub approvals deny ap_3f9a0c1d2e4b --message \"not on main\"";
/// `approvals list`.
pub(super) const APPROVALS_LIST: &str = "Examples:
  semantest-hub approvals list
  semantest-hub approvals list -q
  semantest-hub approvals list --json";
/// `approvals allow`.
pub(super) const APPROVALS_ALLOW: &str = "Examples:
  semantest-hub approvals allow ap_3f9a0c1d2e4b
  semantest-hub approvals allow ap_3f9a0c1d2e4b --input '{\"command\": \"npm test\"}'
  semantest-hub approvals allow ap_3f9a0c1d2e4b --always project";
/// `approvals deny`.
pub(super) const APPROVALS_DENY: &str = "Examples:
  semantest-hub approvals deny ap_3f9a0c1d2e4b --message \"not on main\"
  semantest-hub approvals deny ap_3f9a0c1d2e4b --interrupt --always session";
/// `pair`.
pub(super) const PAIR: &str = "Examples:
  semantest-hub pair list
  semantest-hub pair approve pr_3f9a0c1d2e4b5a6f --scope events";
/// `pair list`.
pub(super) const PAIR_LIST: &str = "Examples:
  semantest-hub pair list
  semantest-hub pair list --json";
/// `pair approve`.
pub(super) const PAIR_APPROVE: &str = "Examples:
  semantest-hub pair approve pr_3f9a0c1d2e4b5a6f
  semantest-hub pair approve pr_3f9a0c1d2e4b5a6f --scope events tasks";
/// `pair deny`.
pub(super) const PAIR_DENY: &str = "Examples:
  semantest-hub pair deny pr_3f9a0c1d2e4b5a6f";
/// `config`.
pub(super) const CONFIG: &str = "Examples:
  semantest-hub config path
  semantest-hub config get limits.max_projects
  semantest-hub config set limits.max_projects 500";
/// `config path`.
pub(super) const CONFIG_PATH: &str = "Examples:
  semantest-hub config path
  semantest-hub config path --json";
/// `config get`.
pub(super) const CONFIG_GET: &str = "Examples:
  semantest-hub config get limits.max_projects
  semantest-hub config get limits --json";
/// `config set`.
pub(super) const CONFIG_SET: &str = "Examples:
  semantest-hub config set limits.max_projects 500
  semantest-hub config set log_level debug --json";
/// `doctor`.
pub(super) const DOCTOR: &str = "Examples:
  semantest-hub doctor
  semantest-hub doctor --json";
/// `task`.
pub(super) const TASK: &str = "Examples:
  semantest-hub task create ~/code/app tasks.json
  semantest-hub task watch ~/code/app";
/// `task create`.
pub(super) const TASK_CREATE: &str = "Examples:
  semantest-hub task create ~/code/app tasks.json
  semantest-hub task create ~/code/app - --json < tasks.json";
/// `task list`.
pub(super) const TASK_LIST: &str = "Examples:
  semantest-hub task list ~/code/app
  semantest-hub task list ~/code/app --state pending -q
  semantest-hub task list ~/code/app --json";
/// `task show`.
pub(super) const TASK_SHOW: &str = "Examples:
  semantest-hub task show t1
  semantest-hub task show t1 --json";
/// `task cancel`.
pub(super) const TASK_CANCEL: &str = "Examples:
  semantest-hub task cancel t1
  semantest-hub task cancel t1 --json";
/// `task merge`.
pub(super) const TASK_MERGE: &str = "Examples:
  semantest-hub task merge t1
  semantest-hub task merge t1 --json";
/// `task discard`.
pub(super) const TASK_DISCARD: &str = "Examples:
  semantest-hub task discard t1
  semantest-hub task discard t1 --json";
/// `task watch`.
pub(super) const TASK_WATCH: &str = "Examples:
  semantest-hub task watch ~/code/app
  semantest-hub task watch ~/code/app --json";
/// `task complete`.
pub(super) const TASK_COMPLETE: &str = "Examples:
  semantest-hub task complete t1
  semantest-hub task complete t1 --report report.json --json";
/// `task fail`.
pub(super) const TASK_FAIL: &str = "Examples:
  semantest-hub task fail t1 --reason \"the build needs a newer compiler\"
  semantest-hub task fail t1 --reason \"tests fail\" --json";
/// `worker`.
pub(super) const WORKER: &str = "Examples:
  semantest-hub worker next --name shell-1";
/// `worker next`.
pub(super) const WORKER_NEXT: &str = "Examples:
  semantest-hub worker next --name shell-1
  semantest-hub worker next --name shell-1 --capability docs --wait 600 > task.json";
/// `mcp`.
pub(super) const MCP: &str = "Examples:
  semantest-hub mcp";
/// `completions`.
pub(super) const COMPLETIONS: &str = "Examples:
  semantest-hub completions bash > ~/.local/share/bash-completion/completions/semantest-hub
  semantest-hub completions zsh > ~/.zfunc/_semantest-hub
  semantest-hub completions fish > ~/.config/fish/completions/semantest-hub.fish";
/// `man`.
pub(super) const MAN: &str = "Examples:
  semantest-hub man | man -l -
  semantest-hub man --dir ~/.local/share/man/man1";

/// The examples of `help`, the `after_help` of a command: its lines after the heading,
/// each without its indent.
pub(super) fn lines(help: &str) -> impl Iterator<Item = &str> {
    help.lines().skip(1).map(str::trim)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::super::args::Cli;
    use super::lines;

    /// `line` split into words as a POSIX shell splits a simple command (single and
    /// double quotes), up to a redirection or a pipe.
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut quote = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.get_or_insert_with(String::new).push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    word.get_or_insert_with(String::new);
                }
                (None, ' ') => words.extend(word.take()),
                (None, c) => word.get_or_insert_with(String::new).push(c),
            }
        }
        assert!(quote.is_none(), "unbalanced quotes: {line}");
        words.extend(word);
        let end = words
            .iter()
            .position(|w| ["|", ">", "<", "&"].contains(&w.as_str()))
            .unwrap_or(words.len());
        words.truncate(end);
        words
    }

    /// Each command and subcommand, with the names that lead to it.
    fn walk(command: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
        out.push((path.to_vec(), command.clone()));
        for sub in command.get_subcommands() {
            let mut sub_path = path.to_vec();
            sub_path.push(sub.get_name().to_string());
            walk(sub, &sub_path, out);
        }
    }

    #[test]
    fn every_command_has_examples_that_parse_and_run_that_command() {
        let root = Cli::command().disable_help_subcommand(true);
        let mut commands = Vec::new();
        walk(&root, &[], &mut commands);
        assert!(commands.len() > 40, "{}", commands.len());
        for (path, command) in commands {
            let help = command
                .get_after_help()
                .unwrap_or_else(|| panic!("`{}` has no examples", path.join(" ")))
                .to_string();
            assert!(help.starts_with("Examples:\n"), "{path:?}: {help}");
            assert!(help.is_ascii(), "{path:?}: {help}");
            let mut count = 0;
            for line in lines(&help) {
                let words = words(line);
                assert_eq!(words[0], "semantest-hub", "{line}");
                let named: Vec<&String> = words[1..]
                    .iter()
                    .filter(|w| !w.starts_with('-'))
                    .take(path.len())
                    .collect();
                assert_eq!(named, path.iter().collect::<Vec<_>>(), "{line}");
                if let Err(err) = Cli::try_parse_from(&words) {
                    panic!("{line}: {err}");
                }
                count += 1;
            }
            assert!(count > 0, "{path:?}");
        }
    }
}
