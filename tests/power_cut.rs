//! Power cuts: the hub's data directory on `lazyfs` (a FUSE file system, `lazyfs/`,
//! that keeps written data in memory until it is fsynced), the mixed load of the SIGKILL
//! campaign (`faults.rs`), and at a random point the hub killed and everything not
//! fsynced thrown away; then a restart on what survived and a check that every
//! acknowledged write is there.
//!
//! `SEMANTEST_POWER_CUTS=N` sets the number of cuts (default [`SHORT_RUN_CUTS`], about a
//! minute on a loaded 2-core machine; docs/reliability.md gives the 50-cut command), and
//! `SEMANTEST_FAULTS_SEED=<seed>` replays a run's cut points.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semantest_hub::cli::HubClient;
use serde_json::json;
use tempfile::TempDir;

use crate::faults::{
    Shared, agent_output, assert_store_intact, events, open, project_churn, seed, task_churn,
    worker,
};
use crate::util::{HubProcess, WAIT, hub_bin, spawn_hub_with};

/// Cuts in the test command's run.
const SHORT_RUN_CUTS: usize = 30;

/// The relaxed setting, which the second test turns on.
const RELAXED: (&str, &str) = (
    "SEMANTEST_HUB_STORAGE__LOSE_ACKNOWLEDGED_WRITES_ON_POWER_CUT",
    "true",
);

/// A mounted `lazyfs`; unmounted when dropped (end of its input).
struct LazyFs {
    child: Child,
    commands: Option<ChildStdin>,
    answers: BufReader<ChildStdout>,
    mountpoint: TempDir,
}

/// The `lazyfs` binary beside the hub's, built (or found up to date) once per test run,
/// so a change to it is never tested stale.
fn lazyfs_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--locked", "-p", "semantest-lazyfs"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build -p semantest-lazyfs failed");
            hub_bin().with_file_name("lazyfs")
        })
        .clone()
}

impl LazyFs {
    fn mount() -> Self {
        assert!(
            Path::new("/dev/fuse").exists(),
            "the power-cut tests need FUSE (/dev/fuse and fusermount3, Debian package fuse3; \
             scripts/deps.sh installs it)"
        );
        let mountpoint = TempDir::new().unwrap();
        let mut child = Command::new(lazyfs_bin())
            .arg(mountpoint.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("lazyfs starts");
        let commands = child.stdin.take();
        let mut answers = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        answers.read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready", "lazyfs did not mount");
        Self {
            child,
            commands,
            answers,
            mountpoint,
        }
    }

    /// A directory on the file system that survives a cut (its entry is synced), as a
    /// data directory that existed before the test would.
    fn durable_dir(&self, name: &str) -> PathBuf {
        let dir = self.mountpoint.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::File::open(self.mountpoint.path())
            .and_then(|root| root.sync_all())
            .unwrap();
        dir
    }

    fn command(&mut self, command: &str) -> String {
        let input = self.commands.as_mut().unwrap();
        writeln!(input, "{command}").unwrap();
        input.flush().unwrap();
        let mut answer = String::new();
        self.answers.read_line(&mut answer).unwrap();
        answer.trim().to_string()
    }

    /// The power cut: everything not fsynced is lost. Whoever used the mount must have
    /// stopped.
    fn cut(&mut self) -> String {
        let answer = self.command("cut");
        assert!(answer.starts_with("cut "), "lazyfs: {answer}");
        answer
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        // End of input: lazyfs unmounts and exits.
        drop(self.commands.take());
        let _ = self.child.wait();
    }
}

/// What was lost: the acknowledged writes not found after a restart (empty when none).
/// Resets the ledger's per-cycle parts, as `faults::check` does.
async fn losses(
    client: &mut HubClient,
    (output_project, task_project): (&str, &str),
    ledger: &Shared,
    checked: &mut usize,
) -> Vec<String> {
    let (projects, lines, tasks, mut lost) = {
        let mut ledger = ledger.lock().unwrap();
        (
            ledger.projects.clone(),
            std::mem::take(&mut ledger.lines),
            ledger.tasks.clone(),
            std::mem::take(&mut ledger.violations),
        )
    };
    let listed = client.request("project.list", json!({})).await.unwrap();
    let listed: Vec<&str> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for id in [output_project, task_project] {
        if !listed.contains(&id) {
            lost.push(format!("project {id} acknowledged created"));
        }
    }
    for (id, live) in &projects {
        if listed.contains(&id.as_str()) != *live {
            let what = if *live { "created" } else { "deleted" };
            lost.push(format!("project {id} acknowledged {what}"));
        }
    }
    if let (Some(first), Some(last)) = (lines.keys().next(), lines.keys().last()) {
        let mut stored = BTreeMap::new();
        let mut after = first - 1;
        while after < *last {
            let Ok(page) = client
                .request(
                    "messages.list",
                    json!({"project_id": output_project, "after_seq": after, "limit": 1000}),
                )
                .await
            else {
                break;
            };
            let page = page["messages"].as_array().unwrap().clone();
            if page.is_empty() {
                break;
            }
            for line in page {
                after = line["seq"].as_u64().unwrap();
                stored.insert(after, line);
            }
        }
        let missing: Vec<u64> = lines
            .iter()
            .filter(|(seq, line)| stored.get(seq) != Some(line))
            .map(|(seq, _)| *seq)
            .collect();
        if !missing.is_empty() {
            lost.push(format!(
                "{} of {} acknowledged output lines (seqs {}..={})",
                missing.len(),
                lines.len(),
                missing[0],
                missing[missing.len() - 1]
            ));
        }
    }
    let states: HashMap<String, String> = match client
        .request(
            "task.list",
            json!({"project_id": task_project, "limit": 10000}),
        )
        .await
    {
        Ok(listed) => listed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let field = |name: &str| t[name].as_str().unwrap().to_string();
                (field("id"), field("state"))
            })
            .collect(),
        Err(err) => {
            lost.push(format!("task.list: {err}"));
            HashMap::new()
        }
    };
    let (mut gone, mut undone) = (Vec::new(), Vec::new());
    for (id, completed) in &tasks {
        match states.get(id).map(String::as_str) {
            None => gone.push(id.as_str()),
            Some(state) if *completed && state != "completed" => undone.push(id.as_str()),
            Some(_) => {}
        }
    }
    if !gone.is_empty() {
        lost.push(format!("acknowledged tasks lost: {gone:?}"));
    }
    if !undone.is_empty() {
        lost.push(format!("acknowledged completions lost: {undone:?}"));
    }
    *checked += projects.len() + lines.len() + tasks.len();
    lost
}

/// How a campaign went.
struct Campaign {
    cuts: usize,
    /// Acknowledged writes checked after the cuts.
    checked: usize,
    /// What each cut that lost something lost, with its cycle.
    losses: Vec<(usize, Vec<String>)>,
    /// lazyfs's answer to each cut.
    cut_reports: Vec<String>,
    completed: usize,
    lines_checked: usize,
    took: Duration,
}

/// Runs the hub on lazyfs with `env`, under load, and cuts the power `cuts` times;
/// stops early after `stop_after_losses` cuts that lost something.
async fn campaign(cuts: usize, env: &[(&str, &str)], stop_after_losses: usize) -> Campaign {
    let mut rng = fastrand::Rng::with_seed(seed());
    let started = Instant::now();
    let mut fs = LazyFs::mount();
    let data = fs.durable_dir("data");
    let ledger: Shared = Arc::default();
    let dirs: Arc<Mutex<Vec<TempDir>>> = Arc::default();
    let (output_dir, task_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut ids: Option<(String, String)> = None;
    let mut result = Campaign {
        cuts: 0,
        checked: 0,
        losses: Vec::new(),
        cut_reports: Vec::new(),
        completed: 0,
        lines_checked: 0,
        took: Duration::ZERO,
    };
    for cycle in 0..=cuts {
        let (mut hub, port) = spawn_hub_with(&data, env).await;
        let mut client = open(port, &data).await.expect("the restarted hub");
        let (output_project, task_project) = match &ids {
            Some(ids) => ids.clone(),
            None => {
                let mut create = async |dir: &TempDir| {
                    let project = client
                        .request("project.create", json!({"path": dir.path()}))
                        .await
                        .unwrap();
                    project["id"].as_str().unwrap().to_string()
                };
                let pair = (create(&output_dir).await, create(&task_dir).await);
                ids = Some(pair.clone());
                pair
            }
        };
        let lines = ledger.lock().unwrap().lines.len();
        let lost = losses(
            &mut client,
            (&output_project, &task_project),
            &ledger,
            &mut result.checked,
        )
        .await;
        result.lines_checked += lines;
        drop(client);
        if !lost.is_empty() {
            result.losses.push((cycle, lost));
        }
        if cycle == cuts || result.losses.len() >= stop_after_losses {
            hub.kill();
            break;
        }
        result.cuts += 1;
        load_then_cut(
            &mut hub,
            port,
            &data,
            cycle,
            &mut rng,
            &ledger,
            &dirs,
            ids.as_ref().unwrap(),
        )
        .await;
        result.cut_reports.push(fs.cut());
        assert_store_intact(&data);
    }
    result.completed = ledger.lock().unwrap().completions.len();
    result.took = started.elapsed();
    result
}

/// Starts the five loads on `hub`, waits a random moment, and kills the hub; returns
/// once every load has seen it die (so every acknowledgement that left the hub is
/// recorded).
#[allow(clippy::too_many_arguments)]
async fn load_then_cut(
    hub: &mut HubProcess,
    port: u16,
    data: &Path,
    cycle: usize,
    rng: &mut fastrand::Rng,
    ledger: &Shared,
    dirs: &Arc<Mutex<Vec<TempDir>>>,
    (output_project, task_project): &(String, String),
) {
    let client = async || match open(port, data).await {
        Some(client) => client,
        None => panic!("cycle {cycle}: the hub refused a client"),
    };
    let loads = vec![
        tokio::spawn(project_churn(client().await, ledger.clone(), dirs.clone())),
        tokio::spawn(agent_output(
            client().await,
            output_project.clone(),
            ledger.clone(),
        )),
        tokio::spawn(task_churn(
            client().await,
            task_project.clone(),
            cycle,
            ledger.clone(),
        )),
        tokio::spawn(worker(client().await, ledger.clone())),
        tokio::spawn(events(client().await, client().await, ledger.clone())),
    ];
    // The fault: the power goes at a random point of the load (this sleep is the fault
    // injection, not synchronisation). The hub dies with it; the file system's unsynced
    // state goes once it is dead.
    let point = rng.u64(50..=600);
    tokio::time::sleep(Duration::from_millis(point)).await;
    hub.kill();
    for load in loads {
        tokio::time::timeout(WAIT, load)
            .await
            .expect("the load notices the cut")
            .expect("the load task");
    }
}

fn cuts() -> usize {
    std::env::var("SEMANTEST_POWER_CUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SHORT_RUN_CUTS)
}

fn summary(campaign: &Campaign) -> String {
    let lost_bytes: u64 = campaign
        .cut_reports
        .iter()
        .filter_map(|report| report.split("lost_bytes=").nth(1)?.split(' ').next())
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    format!(
        "cuts {}, integrity_check ok {}, acknowledged writes checked {} (output lines {}), \
         distinct tasks completed {}, unsynced bytes thrown away {lost_bytes}, took {:.1} s",
        campaign.cuts,
        campaign.cuts,
        campaign.checked,
        campaign.lines_checked,
        campaign.completed,
        campaign.took.as_secs_f64()
    )
}

#[tokio::test]
async fn power_cuts_under_mixed_load_lose_no_acknowledged_write() {
    let campaign = campaign(cuts(), &[], 1).await;
    println!(
        "POWER CUT fsync before acknowledging: {}",
        summary(&campaign)
    );
    assert!(
        campaign.losses.is_empty(),
        "acknowledged writes lost by a power cut: {:?}",
        campaign.losses
    );
    assert_eq!(campaign.cuts, cuts());
    assert!(campaign.lines_checked > 0 && campaign.completed > 0);
}

#[tokio::test]
async fn the_relaxed_setting_loses_acknowledged_writes_and_the_campaign_sees_it() {
    // With `storage.lose_acknowledged_writes_on_power_cut` the WAL is not fsynced per
    // commit: the campaign must catch the loss, which is what shows it can.
    let campaign = campaign(5, &[RELAXED], 1).await;
    println!("POWER CUT relaxed: {}", summary(&campaign));
    let (cycle, lost) = campaign
        .losses
        .first()
        .expect("the relaxed setting lost an acknowledged write within 5 cuts");
    println!("POWER CUT relaxed: after cut {cycle}, lost {lost:?}");
}

#[tokio::test]
async fn health_says_what_acknowledged_writes_survive() {
    for (env, survives, synchronous, relaxed) in [
        (&[][..], "power_cut", "full", false),
        (&[RELAXED][..], "process_crash", "normal", true),
    ] {
        let data = TempDir::new().unwrap();
        let (_hub, port) = spawn_hub_with(data.path(), env).await;
        let health: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            health["durability"],
            json!({"survives": survives, "synchronous": synchronous,
                   "lose_acknowledged_writes_on_power_cut": relaxed}),
            "{health}"
        );
    }
}
