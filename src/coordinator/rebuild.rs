//! The transition that follows a failed commit: memory rebuilt from the store
//! ([`Txn::rebuild`]; why and when: [`super`], "Lock and commits").

use std::collections::{HashMap, HashSet};

use super::state::{Txn, queue_key};
use crate::protocol::coordination::{TaskState, WorkerKind, WorkerStatus};
use crate::protocol::ids::{TaskId, WorkerId};
use crate::storage::sqlite::{CoordinationSnapshot, TaskRow};

impl Txn<'_> {
    /// Puts memory back in agreement with the store after a commit failed: the
    /// transitions of that commit and of every commit queued after it were not stored,
    /// answered nor announced, so memory must forget them. Tasks, counts and agent
    /// settings are taken from `stored`; the rows of a `task.create` in progress are
    /// left to it. Workers keep their connections and leases: a client worker whose
    /// registration was not stored goes; a worker that memory has on a task the store
    /// does not give it becomes idle (it never heard of the assignment, which was not
    /// announced); a connected client worker the store has on a task holds it again
    /// (with a fresh lease), as it may retry its answer; a task the store has running on
    /// an agent worker that is no longer on it (its run ended) or on a worker that is
    /// gone is left to the lease timer ([`Txn::expire_leases`]), which fails the
    /// attempt. Nothing is
    /// assigned here (the timer retries), so a store that keeps failing is not retried
    /// in a loop.
    pub fn rebuild(&mut self, stored: CoordinationSnapshot, cli_available: bool) {
        let planned = self.st.planned.clone();
        let in_plan = |task: &TaskRow| {
            planned
                .as_ref()
                .is_some_and(|p| p.project_id == task.project_id && p.seqs.contains(&task.seq))
        };
        self.st.counts.clear();
        for (project_id, task_state, count) in stored.counts {
            *self
                .st
                .counts
                .entry(project_id)
                .or_default()
                .slot(task_state) += count;
        }
        self.st.tasks.clear();
        self.st.queues.clear();
        for task in stored.tasks {
            if in_plan(&task) {
                let counts = self.st.counts.entry(task.project_id.clone()).or_default();
                counts.pending = counts.pending.saturating_sub(1);
                continue;
            }
            if task.state == TaskState::Pending {
                self.st
                    .queues
                    .entry(task.project_id.clone())
                    .or_default()
                    .insert(queue_key(&task));
            }
            self.st.tasks.insert(task.id.clone(), task);
        }
        self.st.next_seq = self.st.next_seq.max(stored.max_seq);
        let known: HashSet<WorkerId> = stored.workers.into_iter().collect();
        let unregistered: Vec<WorkerId> = self
            .st
            .workers
            .values()
            .filter(|w| w.kind == WorkerKind::Client && !known.contains(&w.id))
            .map(|w| w.id.clone())
            .collect();
        for worker_id in unregistered {
            self.remove_worker(&worker_id);
        }
        let freed: Vec<(WorkerId, bool)> = self
            .st
            .workers
            .values()
            .filter(|w| {
                w.task_id
                    .as_ref()
                    .is_some_and(|task_id| !self.st.holds(&w.id, task_id))
            })
            .map(|w| (w.id.clone(), w.retiring))
            .collect();
        for (worker_id, retiring) in freed {
            if retiring {
                self.retire_agent_now(&worker_id);
            } else {
                self.set_worker(&worker_id, WorkerStatus::Idle, None);
            }
        }
        // A connected client worker the store has on a task heard of it, and may still
        // complete it (its answer may be what failed): it holds it again, with a fresh
        // lease.
        let held: Vec<(WorkerId, TaskId)> = self
            .st
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Running)
            .filter_map(|t| Some((t.worker_id.clone()?, t.id.clone())))
            .filter(|(worker_id, task_id)| {
                self.st.workers.get(worker_id).is_some_and(|w| {
                    w.kind == WorkerKind::Client && w.task_id.as_ref() != Some(task_id)
                })
            })
            .collect();
        let lease_ms = self.config().lease_s as i64 * 1000;
        for (worker_id, task_id) in held {
            self.set_worker(&worker_id, WorkerStatus::Working, Some(task_id));
            if let Some(worker) = self.st.workers.get_mut(&worker_id) {
                worker.lease_until = Some(self.now + lease_ms);
            }
        }
        let mut settings: HashMap<String, u32> = stored.agent_workers.into_iter().collect();
        for project_id in self.st.agent_settings.keys() {
            settings.entry(project_id.clone()).or_insert(0);
        }
        for (project_id, count) in settings {
            if self
                .st
                .agent_settings
                .get(&project_id)
                .copied()
                .unwrap_or(0)
                != count
            {
                self.set_agent_workers(&project_id, count, cli_available);
            }
        }
        let projects: Vec<String> = self.st.counts.keys().cloned().collect();
        for project_id in projects {
            self.touch_project(&project_id);
        }
        self.dirty = false;
    }
}
