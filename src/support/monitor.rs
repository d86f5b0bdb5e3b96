//! Resource monitor: CPU, memory and disk figures for `/health`, `hub.stats` and
//! `/metrics`, sampled with `sysinfo` when one of them asks.
//!
//! There is no timer: an idle hub does not wake up to sample. A caller gets the cached
//! sample when it is younger than [`SAMPLE_INTERVAL`], otherwise a fresh one (a few
//! reads of `/proc` and a `statvfs` on Linux, well under a millisecond, but file-system
//! calls all the same: taken on the blocking pool, one at a time). CPU usage is a rate, so it is
//! the average between this sample and the previous one: at most [`SAMPLE_INTERVAL`]
//! apart under steady polling (the dashboard's `hub.stats`, a metrics scraper), longer
//! after an idle spell.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// How long a sample is reused before the next caller takes a new one.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// One sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Whole-machine CPU usage in percent (0–100).
    pub cpu_percent: f32,
    /// The hub process's CPU usage in percent of one core.
    pub process_cpu_percent: f32,
    /// Memory in use on the machine, bytes.
    pub memory_used_bytes: u64,
    /// Total memory of the machine, bytes.
    pub memory_total_bytes: u64,
    /// Resident memory of the hub process, bytes.
    pub process_rss_bytes: u64,
    /// Free space for the data directory's file system, bytes.
    pub disk_available_bytes: u64,
    /// Size of the data directory's file system, bytes.
    pub disk_total_bytes: u64,
}

struct State {
    system: System,
    sample: Sample,
    taken: Instant,
}

/// The sampler and its latest result. Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    // An async mutex: its owned guard goes with the sampling onto the blocking pool, so
    // callers that find a sample being taken wait for it without holding a worker.
    state: Arc<tokio::sync::Mutex<State>>,
    data_dir: Arc<PathBuf>,
}

impl Monitor {
    /// A monitor for the file system holding `data_dir`; takes a first sample at once,
    /// the reference for the first CPU rate.
    pub fn new(data_dir: &Path) -> Self {
        let mut system = System::new();
        let sample = take_sample(&mut system, data_dir);
        Self {
            state: Arc::new(tokio::sync::Mutex::new(State {
                system,
                sample,
                taken: Instant::now(),
            })),
            data_dir: Arc::new(data_dir.to_path_buf()),
        }
    }

    /// The latest sample, taken now (on the blocking pool) when the cached one is older
    /// than [`SAMPLE_INTERVAL`].
    pub async fn latest(&self) -> Sample {
        let mut state = self.state.clone().lock_owned().await;
        if state.taken.elapsed() < SAMPLE_INTERVAL {
            return state.sample.clone();
        }
        let data_dir = self.data_dir.clone();
        crate::support::blocking::off_runtime(move || {
            let state = &mut *state;
            state.sample = take_sample(&mut state.system, &data_dir);
            state.taken = Instant::now();
            state.sample.clone()
        })
        .await
    }
}

fn take_sample(system: &mut System, data_dir: &Path) -> Sample {
    let pid = Pid::from_u32(std::process::id());
    system.refresh_cpu_usage();
    system.refresh_memory();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    let process = system.process(pid);
    let disks = Disks::new_with_refreshed_list();
    let disk = disks
        .list()
        .iter()
        .filter(|disk| data_dir.starts_with(disk.mount_point()))
        .max_by_key(|disk| disk.mount_point().as_os_str().len());
    Sample {
        cpu_percent: system.global_cpu_usage(),
        process_cpu_percent: process.map(|p| p.cpu_usage()).unwrap_or_default(),
        memory_used_bytes: system.used_memory(),
        memory_total_bytes: system.total_memory(),
        process_rss_bytes: process.map(|p| p.memory()).unwrap_or_default(),
        disk_available_bytes: disk.map(|d| d.available_space()).unwrap_or_default(),
        disk_total_bytes: disk.map(|d| d.total_space()).unwrap_or_default(),
    }
}
