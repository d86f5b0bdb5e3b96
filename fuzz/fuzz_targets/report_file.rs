//! The report-file parser on any bytes: never panics; an accepted report is for the task
//! its file is named after (or names none) and its score, if any, is finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use semantest_hub::internals::parse_report;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = parse_report(data, "t1") {
        assert!(report.task_id.as_deref().is_none_or(|id| id == "t1"));
        assert!(report.score.is_none_or(f64::is_finite));
    }
});
