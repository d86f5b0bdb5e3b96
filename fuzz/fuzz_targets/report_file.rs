//! The report-file parser on any bytes: never panics; an accepted report is for the task
//! its file is named after (or names none) and its score, if any, is finite. The same
//! bytes are also read back through the report-file reader, which returns them whole
//! (they are a regular file of at most 1 MiB) or refuses them as too large.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use semantest_hub::internals::{parse_report, read_report_file};

static ROOT: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a temporary project");
    std::fs::create_dir(dir.path().join("reports")).expect("a reports folder");
    dir
});

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = parse_report(data, "t1") {
        assert!(report.task_id.as_deref().is_none_or(|id| id == "t1"));
        assert!(report.score.is_none_or(f64::is_finite));
    }
    let root = ROOT.path();
    std::fs::write(root.join("reports/t1.json"), data).expect("write the report");
    match read_report_file(root, "t1.json") {
        Ok(read) => assert_eq!(read, data),
        Err(err) => assert!(
            data.len() > 1024 * 1024,
            "refused {} bytes: {err}",
            data.len()
        ),
    }
});
