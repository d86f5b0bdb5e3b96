//! A run's process group: spawning the CLI as a group leader, stopping the group with
//! escalating signals, and ending groups orphaned by a crash of the hub.
//!
//! Each run is the leader of its own process group. Stopping it (kill, timeout, shutdown)
//! signals the whole group with SIGINT, then SIGTERM, then SIGKILL, `agent.kill_grace_ms`
//! apart, so tools the agent started in the background die with it. When the leader
//! exits by itself, leftovers in its group get SIGTERM then SIGKILL. The group id is
//! stored, so a run orphaned by a crash of the hub is found and ended at the next start.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tracing::warn;

use crate::protocol::RunStatus;
use crate::protocol::error::ErrorChain;
use crate::storage::sqlite::{RunOutcome, Store};
use crate::support::timestamp::now_ms;

/// Starts the CLI in `dir` as the leader of a new process group, with piped stdin (for
/// its input lines, see [`super::session::write_input`]), stdout and stderr.
///
/// The child gets the hub's environment without the hub's own settings and secrets,
/// then `env` (`agent.env`) on top. Every `SEMANTEST_HUB_*` variable is removed: that
/// prefix holds each setting (docs/configuration.md) and each credential the hub reads
/// from the environment (the PostgreSQL password, the NATS broker token or password), so
/// an agent, which may follow instructions planted in the files it reads, cannot print
/// them. What the agent needs (PATH, HOME, `ANTHROPIC_*`, proxies, locale) stays.
///
/// # Errors
/// The OS error from `spawn`.
pub fn spawn_cli(
    program: &Path,
    args: &[String],
    dir: &Path,
    env: &BTreeMap<String, String>,
) -> std::io::Result<Child> {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key
            .as_encoded_bytes()
            .starts_with(crate::config::ENV_PREFIX.as_bytes())
        {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .current_dir(dir)
        .envs(env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

fn signal_group(pgid: i32, signal: Signal) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), signal).is_ok()
}

fn group_alive(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Stops a running agent: SIGINT, SIGTERM, SIGKILL to its whole group, `grace` apart,
/// stopping early once the leader has exited and the group is gone.
pub async fn stop_group(pgid: i32, child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        signal_group(pgid, signal);
        if wait_for_group(pgid, child, grace).await {
            return child.try_wait().ok().flatten();
        }
    }
    signal_group(pgid, Signal::SIGKILL);
    child.wait().await.ok()
}

/// After the leader exited on its own: ends what is left in its group.
pub async fn end_leftovers(pgid: i32, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    signal_group(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal_group(pgid, Signal::SIGKILL);
}

/// Waits up to `grace` for the leader to exit and the group to empty. Zombies that the
/// system has not reaped yet still count as members, so a false result is possible for
/// a group that is in fact dying; the caller then escalates, which is harmless.
async fn wait_for_group(pgid: i32, child: &mut Child, grace: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let leader_done = matches!(child.try_wait(), Ok(Some(_)));
        if leader_done && !group_alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ends the processes of runs left `running` by a crash of the hub and records those
/// runs as `orphaned`. A process is only killed if it is in the run's process group and
/// started after the run did, so a recycled group id never hits an unrelated program.
/// Returns the number of runs cleaned up. It blocks (the store, `/proc`): call it off
/// the runtime.
pub fn clean_orphans(store: &Store) -> usize {
    let runs = match store.unfinished_runs() {
        Ok(runs) => runs,
        Err(err) => {
            warn!(error = %ErrorChain(&err), "cannot look for orphaned runs");
            return 0;
        }
    };
    if runs.is_empty() {
        return 0;
    }
    let mut system = sysinfo::System::new();
    system.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
    for run in &runs {
        let mut killed = 0;
        if let Some(pgid) = run.pgid {
            let started_s = (run.started_at / 1000 - 1).max(0) as u64;
            for (pid, process) in system.processes() {
                let pid = Pid::from_raw(pid.as_u32() as i32);
                let in_group = nix::unistd::getpgid(Some(pid)).is_ok_and(|g| g.as_raw() == pgid);
                if in_group
                    && process.start_time() >= started_s
                    && nix::sys::signal::kill(pid, Signal::SIGKILL).is_ok()
                {
                    killed += 1;
                }
            }
        }
        warn!(run_id = %run.id, project_id = %run.project_id, killed, "cleaned up a run orphaned by a crash");
        let outcome = RunOutcome::new(
            RunStatus::Orphaned,
            Some("the hub stopped while the run was going; its processes were ended".into()),
        );
        if let Err(err) = store.finish_run_blocking(&run.id, &outcome, now_ms()) {
            warn!(error = %ErrorChain(&err), "cannot record an orphaned run");
        }
    }
    runs.len()
}
