//! Unit tests of the coordinator's state machine: transitions driven directly, with an
//! in-memory store, a given time and no sockets.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::state::*;
use crate::protocol::coordination::{WorkerKind, WorkerStatus};
use crate::protocol::ids::TaskId;
use crate::storage::sqlite::TaskRow;

#[test]
fn agent_slots_round_trip() {
    assert_eq!(agent_slot(&agent_worker_id("0190-p", 3)), Some(3));
    assert_eq!(agent_slot(&"w-1".into()), None);
}

#[test]
fn capabilities_match_types() {
    let worker = |caps: &[&str], kind| Worker {
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        project_id: (kind == WorkerKind::Agent).then(|| "p".to_string()),
        status: WorkerStatus::Idle,
        ..Worker::new("w".into(), "w".into(), kind, 0)
    };
    let task = |kind: Option<&str>, project: &str| TaskRow {
        kind: kind.map(str::to_string),
        ..TaskRow::pending("t".into(), project.into(), 1, "t".into(), 0)
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
        queue.insert((Reverse(priority), seq, TaskId::from(id)));
    }
    let order: Vec<&str> = queue.iter().map(|k| k.2.as_str()).collect();
    assert_eq!(order, ["b", "d", "a", "c"]);
}

mod machine {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use serde_json::json;

    use super::super::ops::ReportOutcome;
    use super::super::state::{Effect, State, TaskStore, Txn};
    use crate::config::CoordinationConfig;
    use crate::events::Event;
    use crate::protocol::RunStatus;
    use crate::protocol::coordination::{
        CompletedBy, NewTask, ReportFile, TaskState, WorkerKind, WorkerStatus,
    };
    use crate::protocol::ids::{TaskId, WorkerId};
    use crate::runner::RunEnd;
    use crate::runner::slots::Slots;
    use crate::storage::sqlite::{StoreError, TaskRow, WorkerRow};

    /// A task id.
    fn t(id: &str) -> TaskId {
        TaskId::from(id)
    }

    /// The store as far as transitions see it.
    #[derive(Default)]
    struct MemStore {
        tasks: RefCell<HashMap<TaskId, TaskRow>>,
        workers: RefCell<HashMap<WorkerId, WorkerRow>>,
        agent_workers: RefCell<HashMap<String, u32>>,
        /// Makes `set_agent_workers` fail, as a full disk would.
        refuse_writes: std::cell::Cell<bool>,
    }

    impl TaskStore for MemStore {
        fn update_task(&self, row: &TaskRow) -> Result<(), StoreError> {
            self.tasks.borrow_mut().insert(row.id.clone(), row.clone());
            Ok(())
        }
        fn upsert_worker(&self, row: &WorkerRow, _now: i64) -> Result<(), StoreError> {
            self.workers
                .borrow_mut()
                .insert(row.id.clone(), row.clone());
            Ok(())
        }
        fn set_worker_status(
            &self,
            id: &WorkerId,
            status: WorkerStatus,
            _now: i64,
        ) -> Result<(), StoreError> {
            if let Some(row) = self.workers.borrow_mut().get_mut(id) {
                row.status = status;
            }
            Ok(())
        }
        fn delete_worker(&self, id: &WorkerId) -> Result<(), StoreError> {
            self.workers.borrow_mut().remove(id);
            Ok(())
        }
        fn set_agent_workers(&self, project_id: &str, count: u32) -> Result<(), StoreError> {
            if self.refuse_writes.get() {
                return Err(rusqlite::Error::InvalidQuery.into());
            }
            self.agent_workers
                .borrow_mut()
                .insert(project_id.to_string(), count);
            Ok(())
        }
    }

    /// A coordinator without a lock, a socket or a clock: `now` moves when a test says.
    struct Rig {
        st: State,
        store: MemStore,
        config: CoordinationConfig,
        slots: Slots,
        now: i64,
        /// Effects of every step, permits included (dropping one frees its slot).
        effects: Vec<Effect>,
    }

    const P: &str = "p";
    const LEASE_MS: i64 = 60_000;

    impl Rig {
        fn new(max_agents: usize) -> Self {
            Self {
                st: State::default(),
                store: MemStore::default(),
                config: CoordinationConfig {
                    lease_s: 60,
                    max_attempts: 2,
                    report_debounce_ms: 300,
                    worktree_retention_s: 0,
                },
                slots: Slots::new(max_agents),
                now: 1_000_000,
                effects: Vec::new(),
            }
        }

        /// One transition; returns its result and events, keeps its effects.
        fn step<R>(&mut self, f: impl FnOnce(&mut Txn<'_>) -> R) -> (R, Vec<Event>) {
            let mut txn = Txn::new(
                &mut self.st,
                &self.store,
                &self.config,
                &self.slots,
                self.now,
            );
            let result = f(&mut txn);
            let (events, effects) = txn.finish();
            self.effects.extend(effects);
            (result, events)
        }

        fn create(&mut self, ids: &[&str]) -> Vec<Event> {
            let specs = ids
                .iter()
                .map(|id| {
                    let task: NewTask =
                        serde_json::from_value(json!({"title": format!("task {id}")})).unwrap();
                    (t(id), task)
                })
                .collect();
            // As the coordinator does it: owners, plan, insert, queue.
            let owners: HashMap<TaskId, String> = {
                let tasks = self.store.tasks.borrow();
                ids.iter()
                    .filter_map(|id| tasks.get(&t(id)))
                    .map(|t| (t.id.clone(), t.project_id.clone()))
                    .collect()
            };
            let (planned, _) = self.step(|txn| txn.plan_tasks(P, specs, &owners));
            let plan = planned.unwrap();
            assert_eq!(plan.created.len(), ids.len());
            for row in &plan.rows {
                self.store
                    .tasks
                    .borrow_mut()
                    .insert(row.id.clone(), row.clone());
            }
            let existing = plan.existing.len();
            let ((), events) = self.step(|txn| txn.tasks_created(P, plan.rows, existing));
            events
        }

        fn register(&mut self, conn_id: u64) -> WorkerId {
            self.step(|txn| txn.register_worker(conn_id, "w", &[], &Default::default()))
                .0
                .unwrap()
        }

        fn task(&self, id: &str) -> TaskRow {
            self.store.tasks.borrow()[&t(id)].clone()
        }

        fn started_runs(&self) -> Vec<(WorkerId, TaskId)> {
            self.effects
                .iter()
                .filter_map(|e| match e {
                    Effect::StartRun {
                        worker_id, task, ..
                    } => Some((worker_id.clone(), task.id.clone())),
                    Effect::StopRun { .. } => None,
                })
                .collect()
        }
    }

    fn end(status: RunStatus) -> RunEnd {
        RunEnd {
            run_id: "r1".into(),
            status,
            reason: (status != RunStatus::Succeeded).then(|| "it broke".into()),
            result_text: Some("done".into()),
            session_id: None,
            cost_usd: None,
            duration_ms: None,
        }
    }

    fn assigned_to(events: &[Event], conn: u64) -> Vec<TaskId> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::TaskAssigned { conn_id, assigned } if *conn_id == conn => {
                    Some(assigned.task.id.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn batch_finished(events: &[Event]) -> Option<(u64, u64, u64, u64)> {
        events.iter().find_map(|e| match e {
            Event::BatchFinished(done) => {
                Some((done.total, done.completed, done.failed, done.cancelled))
            }
            _ => None,
        })
    }

    #[test]
    fn a_lease_expires_at_its_end_and_not_before() {
        let mut rig = Rig::new(2);
        rig.register(1);
        let events = rig.create(&["t1"]);
        assert_eq!(assigned_to(&events, 1), ["t1"]);

        rig.now += LEASE_MS - 1;
        let (_, events) = rig.step(|txn| txn.expire_leases());
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::TaskRevoked { .. }))
        );
        assert_eq!(rig.task("t1").state, TaskState::Running);

        rig.now += 1;
        let (_, events) = rig.step(|txn| txn.expire_leases());
        let task = rig.task("t1");
        assert_eq!(task.state, TaskState::Pending);
        assert_eq!(task.attempts, 1);
        assert!(task.failures[0].reason.contains("lease expired"));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::TaskRevoked { conn_id: 1, .. }))
        );
        let worker = rig.st.workers.values().next().unwrap();
        assert_eq!(worker.status, WorkerStatus::Offline);
        assert!(
            assigned_to(&events, 1).is_empty(),
            "an offline worker gets nothing"
        );

        // Its next request brings it back, and the task comes back to it.
        let (_, events) = rig.step(|txn| txn.seen(1));
        assert_eq!(assigned_to(&events, 1), ["t1"]);
        assert_eq!(rig.task("t1").state, TaskState::Running);
    }

    #[test]
    fn a_heartbeat_renews_the_lease() {
        let mut rig = Rig::new(2);
        rig.register(1);
        rig.create(&["t1"]);
        rig.now += LEASE_MS - 10;
        rig.step(|txn| txn.seen(1));
        rig.now += 20;
        rig.step(|txn| txn.expire_leases());
        assert_eq!(rig.task("t1").state, TaskState::Running);
    }

    #[test]
    fn a_worker_retired_while_working_goes_when_its_run_ends() {
        let mut rig = Rig::new(4);
        rig.step(|txn| txn.set_agent_workers(P, 2, true));
        rig.create(&["t1", "t2"]);
        let runs = rig.started_runs();
        assert_eq!(runs.len(), 2);
        let busy = runs.iter().find(|(_, t)| t == "t2").unwrap().0.clone();

        rig.step(|txn| txn.set_agent_workers(P, 0, true));
        assert!(
            rig.st.workers.values().all(|w| w.retiring),
            "both still work"
        );

        let (_, events) =
            rig.step(|txn| txn.run_ended(&busy, &t("t2"), &end(RunStatus::Succeeded)));
        assert_eq!(rig.task("t2").state, TaskState::Completed);
        assert_eq!(rig.task("t2").completed_by, Some(CompletedBy::Agent));
        assert!(!rig.st.workers.contains_key(&busy));
        assert!(!rig.store.workers.borrow().contains_key(&busy));
        assert!(events.iter().any(
            |e| matches!(e, Event::WorkerStatus(v) if v.id == busy && v.status == WorkerStatus::Offline)
        ));
        assert_eq!(rig.st.workers.len(), 1, "the other one still works");
    }

    #[test]
    fn a_second_completion_is_a_duplicate_and_changes_nothing() {
        let mut rig = Rig::new(2);
        rig.register(1);
        rig.register(2);
        rig.create(&["t1"]);
        let holder = rig.task("t1").worker_id.unwrap();
        let (holder_conn, other_conn) = if rig.st.by_conn[&1] == holder {
            (1, 2)
        } else {
            (2, 1)
        };
        let (refused, _) = rig.step(|txn| txn.answer(other_conn, &t("t1"), Ok(json!({}))));
        assert!(matches!(
            refused,
            Err(super::super::CoordinationError::NotAssigned { .. })
        ));

        let (first, events) =
            rig.step(|txn| txn.answer(holder_conn, &t("t1"), Ok(json!({"n": 1}))));
        assert_eq!(first.unwrap(), Some(TaskState::Completed));
        assert!(events.iter().any(|e| matches!(e, Event::TaskCompleted(_))));

        let (second, events) =
            rig.step(|txn| txn.answer(holder_conn, &t("t1"), Ok(json!({"n": 2}))));
        assert_eq!(second.unwrap(), None, "a duplicate");
        assert!(events.is_empty());
        assert_eq!(rig.task("t1").report, Some(json!({"n": 1})));
        // A report file for it changes nothing either.
        let report: ReportFile =
            serde_json::from_value(json!({"status": "completed", "summary": "late"})).unwrap();
        let (outcome, _) = rig.step(|txn| txn.report(P, &t("t1"), report));
        assert_eq!(outcome.unwrap(), ReportOutcome::Duplicate);
    }

    #[test]
    fn a_task_fails_for_good_when_its_attempts_run_out() {
        let mut rig = Rig::new(2);
        rig.register(1);
        rig.create(&["t1"]);
        let (state, events) = rig.step(|txn| txn.answer(1, &t("t1"), Err("first".into())));
        assert_eq!(state.unwrap(), Some(TaskState::Pending));
        assert!(events.iter().any(|e| matches!(e, Event::TaskRequeued(_))));
        // Requeued and handed to the same, now idle, worker.
        assert_eq!(assigned_to(&events, 1), ["t1"]);

        let (state, events) = rig.step(|txn| txn.answer(1, &t("t1"), Err("second".into())));
        assert_eq!(state.unwrap(), Some(TaskState::Failed));
        let task = rig.task("t1");
        assert_eq!(task.attempts, 2);
        let reasons: Vec<&str> = task.failures.iter().map(|f| f.reason.as_str()).collect();
        assert_eq!(reasons, ["first", "second"]);
        assert!(events.iter().any(|e| matches!(e, Event::TaskFailed(_))));
        assert_eq!(batch_finished(&events), Some((1, 0, 1, 0)));
        assert!(rig.st.tasks.is_empty());
    }

    #[test]
    fn cancelling_a_running_task_stops_its_run_and_frees_its_worker() {
        let mut rig = Rig::new(2);
        rig.step(|txn| txn.set_agent_workers(P, 1, true));
        rig.register(7);
        rig.create(&["t1", "t2"]);
        let agent = rig.started_runs()[0].clone();
        let client_task = if agent.1 == "t1" { "t2" } else { "t1" };

        let (cancelled, _) = rig.step(|txn| txn.cancel_task(&agent.1));
        assert!(cancelled.unwrap());
        assert!(
            rig.effects
                .iter()
                .any(|e| matches!(e, Effect::StopRun { task_id } if *task_id == agent.1))
        );
        assert_eq!(rig.task(agent.1.as_str()).state, TaskState::Cancelled);
        // The killed run's end is then a duplicate; the agent worker is free again.
        rig.step(|txn| txn.run_ended(&agent.0, &agent.1, &end(RunStatus::Killed)));
        assert_eq!(rig.task(agent.1.as_str()).state, TaskState::Cancelled);
        assert_eq!(rig.task(agent.1.as_str()).attempts, 0);
        assert_eq!(rig.st.workers[&agent.0].status, WorkerStatus::Idle);

        let (cancelled, events) = rig.step(|txn| txn.cancel_task(&t(client_task)));
        assert!(cancelled.unwrap());
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::TaskRevoked { conn_id: 7, revoked } if revoked.reason == "cancelled"))
        );
        assert_eq!(batch_finished(&events), Some((2, 0, 0, 2)));
        let (again, _) = rig.step(|txn| txn.cancel_task(&t(client_task)));
        assert!(!again.unwrap(), "a finished task is not cancelled again");
    }

    #[test]
    fn a_batch_finishes_once_with_its_last_task() {
        let mut rig = Rig::new(2);
        rig.register(1);
        rig.create(&["t1", "t2"]);
        let (_, events) = rig.step(|txn| txn.answer(1, &t("t1"), Ok(json!({}))));
        assert_eq!(batch_finished(&events), None);
        let (_, events) = rig.step(|txn| txn.answer(1, &t("t2"), Ok(json!({}))));
        assert_eq!(batch_finished(&events), Some((2, 2, 0, 0)));
        let status = rig.st.status(P);
        assert_eq!((status.total, status.completed, status.pending), (2, 2, 0));
    }

    #[test]
    fn a_restart_requeues_running_tasks_without_counting_an_attempt() {
        let task = |id: &str, seq, state| TaskRow {
            state,
            worker_id: (state == TaskState::Running).then(|| WorkerId::from("w-gone")),
            attempts: 1,
            ..TaskRow::pending(id.into(), P.into(), seq, id.into(), 0)
        };
        let counts = vec![
            (P.to_string(), TaskState::Running, 1),
            (P.to_string(), TaskState::Pending, 1),
            (P.to_string(), TaskState::Completed, 3),
        ];
        let tasks = vec![
            task("t2", 2, TaskState::Pending),
            task("t1", 1, TaskState::Running),
        ];
        let (state, requeued) = State::recover(5, counts, tasks, HashMap::new(), 42);
        assert_eq!(requeued.len(), 1);
        assert_eq!(requeued[0].id, "t1");
        assert_eq!(requeued[0].state, TaskState::Pending);
        assert_eq!(requeued[0].worker_id, None);
        assert_eq!(requeued[0].attempts, 1, "the hub stopping is no attempt");
        assert_eq!(requeued[0].updated_at, 42);
        let status = state.status(P);
        assert_eq!(
            (status.pending, status.running, status.completed),
            (2, 0, 3)
        );
        let order: Vec<&str> = state.queues[P].iter().map(|k| k.2.as_str()).collect();
        assert_eq!(order, ["t1", "t2"]);
        assert_eq!(state.next_seq, 5);
    }

    #[test]
    fn agent_workers_wait_for_a_free_slot_and_never_overrun_it() {
        let mut rig = Rig::new(1);
        rig.step(|txn| txn.set_agent_workers(P, 2, true));
        rig.create(&["t1", "t2"]);
        assert_eq!(rig.started_runs().len(), 1, "one slot, one run");
        assert_eq!(rig.slots.in_use(), 1);
        let waiting = rig
            .st
            .workers
            .values()
            .filter(|w| w.status == WorkerStatus::Idle);
        assert_eq!(waiting.count(), 1);

        // The run ends: its permit goes back with it, and the next tick assigns t2.
        let (worker, task) = rig.started_runs()[0].clone();
        rig.effects.clear();
        rig.step(|txn| txn.run_ended(&worker, &task, &end(RunStatus::Succeeded)));
        assert_eq!(rig.started_runs().len(), 1);
        assert_eq!(rig.slots.in_use(), 1);
        assert!(rig.st.workers.values().all(|w| w.kind == WorkerKind::Agent));
    }

    #[test]
    fn configuring_agent_workers_stores_the_count_with_the_change_or_changes_nothing() {
        let mut rig = Rig::new(4);
        rig.step(|txn| txn.configure_agent_workers(P, 2)).0.unwrap();
        assert_eq!(rig.store.agent_workers.borrow().get(P), Some(&2));
        assert_eq!(rig.st.status(P).agent_workers, 2);

        rig.store.refuse_writes.set(true);
        assert!(rig.step(|txn| txn.configure_agent_workers(P, 3)).0.is_err());
        // The store refused: memory keeps the count the store has.
        assert_eq!(rig.store.agent_workers.borrow().get(P), Some(&2));
        assert_eq!(rig.st.status(P).agent_workers, 2);
        let agents = rig
            .st
            .workers
            .values()
            .filter(|w| w.kind == WorkerKind::Agent && !w.retiring)
            .count();
        assert_eq!(agents, 2);
    }

    /// What the store holds, as a rebuild reads it.
    fn snapshot(store: &MemStore) -> crate::storage::sqlite::CoordinationSnapshot {
        let tasks = store.tasks.borrow();
        let mut counts: HashMap<(String, TaskState), u64> = HashMap::new();
        for task in tasks.values() {
            *counts
                .entry((task.project_id.clone(), task.state))
                .or_default() += 1;
        }
        let mut unfinished: Vec<TaskRow> = tasks
            .values()
            .filter(|t| matches!(t.state, TaskState::Pending | TaskState::Running))
            .cloned()
            .collect();
        unfinished.sort_by_key(|t| t.seq);
        crate::storage::sqlite::CoordinationSnapshot {
            tasks: unfinished,
            counts: counts.into_iter().map(|((p, s), n)| (p, s, n)).collect(),
            max_seq: tasks.values().map(|t| t.seq).max().unwrap_or(0),
            agent_workers: store
                .agent_workers
                .borrow()
                .iter()
                .map(|(p, n)| (p.clone(), *n))
                .collect(),
            workers: store.workers.borrow().keys().cloned().collect(),
        }
    }

    #[test]
    fn a_failed_commit_is_forgotten_by_rebuilding_from_the_store() {
        let mut rig = Rig::new(2);
        let worker = rig.register(1);
        let events = rig.create(&["t1", "t2"]);
        assert_eq!(assigned_to(&events, 1), ["t1"]);
        let stored = snapshot(&rig.store);
        // The completion (and the next assignment) change memory; then their commit
        // fails: the store keeps what `stored` has.
        let (answered, _) = rig.step(|txn| txn.answer(1, &t("t1"), Ok(json!({"ok": true}))));
        assert_eq!(answered.unwrap(), Some(TaskState::Completed));
        assert_eq!(rig.st.workers[&worker].task_id, Some(t("t2")));
        // A worker that registered after it, in the same failed commit, goes too.
        let late = rig.register(2);

        let ((), events) = rig.step(|txn| txn.rebuild(stored, true));
        assert!(
            rig.st.holds(&worker, &t("t1")),
            "t1 is running on the worker again"
        );
        assert_eq!(rig.st.workers[&worker].status, WorkerStatus::Working);
        assert!(rig.st.workers[&worker].lease_until.is_some());
        assert_eq!(rig.st.tasks[&t("t2")].state, TaskState::Pending);
        assert!(rig.st.queues[P].iter().any(|key| key.2 == "t2"));
        let status = rig.st.status(P);
        assert_eq!(
            (status.running, status.pending, status.completed),
            (1, 1, 0)
        );
        assert!(
            !rig.st.workers.contains_key(&late),
            "its registration was not stored"
        );
        assert!(assigned_to(&events, 1).is_empty() && assigned_to(&events, 2).is_empty());

        // The completion again, stored this time.
        let (answered, _) = rig.step(|txn| txn.answer(1, &t("t1"), Ok(json!({"ok": true}))));
        assert_eq!(answered.unwrap(), Some(TaskState::Completed));
        assert_eq!(rig.task("t1").state, TaskState::Completed);
        assert_eq!(rig.task("t2").worker_id, Some(worker));
    }

    #[test]
    fn a_task_the_store_has_on_a_worker_that_moved_on_is_requeued_by_the_timer() {
        let mut rig = Rig::new(2);
        let worker = rig.register(1);
        rig.create(&["t1"]);
        let stored = snapshot(&rig.store);
        // The worker's failure is not stored; it disconnects meanwhile.
        rig.step(|txn| txn.disconnected(1, false));
        rig.step(|txn| txn.rebuild(stored, true));
        assert_eq!(rig.st.tasks[&t("t1")].state, TaskState::Running);
        assert!(!rig.st.workers.contains_key(&worker));
        let ((), _) = rig.step(|txn| txn.expire_leases());
        assert_eq!(rig.task("t1").state, TaskState::Pending);
        assert_eq!(rig.task("t1").attempts, 1);
        assert_eq!(rig.st.status(P).pending, 1);
    }
}
