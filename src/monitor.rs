//! Resource monitor: CPU, memory and disk figures for `/health`, `hub.stats` and
//! `/metrics`, sampled in the background with `sysinfo`.
//!
//! CPU usage is a rate, so it needs two samples some time apart; sampling in the
//! background keeps `/health` instant and its numbers meaningful.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio_util::sync::CancellationToken;

/// How often the monitor samples.
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

/// The background sampler's latest result. Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    latest: Arc<Mutex<Sample>>,
    data_dir: PathBuf,
}

impl Monitor {
    /// A monitor for the file system holding `data_dir`; takes a first sample at once.
    pub fn new(data_dir: &Path) -> Self {
        let monitor = Self {
            latest: Arc::default(),
            data_dir: data_dir.to_path_buf(),
        };
        let mut system = System::new();
        monitor.sample(&mut system);
        monitor
    }

    /// The latest sample.
    pub fn latest(&self) -> Sample {
        self.latest.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Samples every [`SAMPLE_INTERVAL`] until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut system = System::new();
        let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            let monitor = self.clone();
            // sysinfo reads /proc (or calls into the kernel on macOS): blocking work.
            system = match tokio::task::spawn_blocking(move || {
                monitor.sample(&mut system);
                system
            })
            .await
            {
                Ok(system) => system,
                Err(_) => System::new(),
            };
        }
    }

    fn sample(&self, system: &mut System) {
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
            .filter(|disk| self.data_dir.starts_with(disk.mount_point()))
            .max_by_key(|disk| disk.mount_point().as_os_str().len());
        let sample = Sample {
            cpu_percent: system.global_cpu_usage(),
            process_cpu_percent: process.map(|p| p.cpu_usage()).unwrap_or_default(),
            memory_used_bytes: system.used_memory(),
            memory_total_bytes: system.total_memory(),
            process_rss_bytes: process.map(|p| p.memory()).unwrap_or_default(),
            disk_available_bytes: disk.map(|d| d.available_space()).unwrap_or_default(),
            disk_total_bytes: disk.map(|d| d.total_space()).unwrap_or_default(),
        };
        if let Ok(mut latest) = self.latest.lock() {
            *latest = sample;
        }
    }
}
