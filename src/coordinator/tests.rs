//! Unit tests of the coordinator's state machine: transitions driven directly, with an
//! in-memory store, a given time and no sockets.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::state::*;
use crate::protocol::coordination::{TaskState, WorkerKind, WorkerStatus};
use crate::store::TaskRow;

#[test]
fn agent_slots_round_trip() {
    assert_eq!(agent_slot(&agent_worker_id("0190-p", 3)), Some(3));
    assert_eq!(agent_slot("w-1"), None);
}

#[test]
fn capabilities_match_types() {
    let worker = |caps: &[&str], kind| Worker {
        id: "w".into(),
        name: "w".into(),
        kind,
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        project_id: (kind == WorkerKind::Agent).then(|| "p".to_string()),
        conn_id: None,
        status: WorkerStatus::Idle,
        task_id: None,
        lease_until: None,
        ticket: 0,
        retiring: false,
        created_at: 0,
    };
    let task = |kind: Option<&str>, project: &str| TaskRow {
        id: "t".into(),
        project_id: project.into(),
        seq: 1,
        title: "t".into(),
        kind: kind.map(str::to_string),
        context: None,
        prompt: None,
        acceptance: None,
        priority: 0,
        state: TaskState::Pending,
        worker_id: None,
        attempts: 0,
        failures: vec![],
        report: None,
        completed_by: None,
        created_at: 0,
        updated_at: 0,
    };
    let any = worker(&[], WorkerKind::Client);
    let coder = worker(&["code"], WorkerKind::Client);
    let agent = worker(&[], WorkerKind::Agent);
    assert!(any.takes(&task(Some("review"), "p")));
    assert!(coder.takes(&task(Some("code"), "p")));
    assert!(!coder.takes(&task(Some("review"), "p")));
    assert!(
        coder.takes(&task(None, "p")),
        "an untyped task goes to anyone"
    );
    assert!(agent.takes(&task(Some("x"), "p")));
    assert!(
        !agent.takes(&task(None, "q")),
        "an agent serves its own project only"
    );
}

#[test]
fn queue_order_is_priority_then_fifo() {
    let mut queue = BTreeSet::new();
    for (id, priority, seq) in [("a", 0, 1), ("b", 5, 2), ("c", 0, 3), ("d", 5, 4)] {
        queue.insert((Reverse(priority), seq, id.to_string()));
    }
    let order: Vec<&str> = queue.iter().map(|k| k.2.as_str()).collect();
    assert_eq!(order, ["b", "d", "a", "c"]);
}
