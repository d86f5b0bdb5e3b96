//! Each project's agent choice: its agent and model (`project.configure`), the session
//! each agent resumes in it (kept per project and per agent: a Claude Code session id, a
//! Codex thread id, a Gemini session id), and what a run of it needs ([`RunSetup`]).
//! Claude Code's session stays in the project row's `session_id`; the others' are in
//! `agent_sessions`.

use std::path::PathBuf;

use super::{ProjectError, Projects, valid_session_id, view};
use crate::protocol::ProjectView;
use crate::protocol::agents::AgentKind;
use crate::storage::sqlite::ProjectRow;
use crate::support::timestamp::now_ms;

impl Projects {
    /// Sets or clears the session `agent` resumes in the project (resume is kept per
    /// project and per agent: a Claude Code session id, a Codex thread id, a Gemini
    /// session id).
    ///
    /// # Errors
    /// `InvalidSession` for an id that is not a UUID, `NotFound` or `Store`.
    pub fn set_agent_session(
        &self,
        id: &str,
        agent: AgentKind,
        session_id: Option<&str>,
    ) -> Result<ProjectView, ProjectError> {
        if let Some(session) = session_id
            && !valid_session_id(session)
        {
            return Err(ProjectError::InvalidSession(session.to_string()));
        }
        let mut entries = self.entries();
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| ProjectError::NotFound(id.into()))?;
        if session_of(&entry.row, agent) == session_id {
            return Ok(view(entry));
        }
        if agent == AgentKind::Claude {
            self.store.set_session(id, session_id, now_ms())?;
            entry.row.session_id = session_id.map(str::to_string);
        } else {
            self.store
                .set_agent_session(id, agent, session_id, now_ms())?;
            match session_id {
                Some(session) => {
                    entry.row.agent_sessions.insert(agent, session.to_string());
                }
                None => {
                    entry.row.agent_sessions.remove(&agent);
                }
            }
        }
        Ok(view(entry))
    }

    /// Sets the project's agent and, when `model` is `Some`, its model (`Some("")`
    /// clears it) (`project.configure`).
    ///
    /// # Errors
    /// `NotFound` or `Store`.
    pub fn configure_agent(
        &self,
        id: &str,
        agent: Option<AgentKind>,
        model: Option<&str>,
    ) -> Result<ProjectView, ProjectError> {
        let mut entries = self.entries();
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| ProjectError::NotFound(id.into()))?;
        let agent = agent.unwrap_or(entry.row.agent);
        let model = match model {
            Some("") => None,
            Some(model) => Some(model.to_string()),
            None => entry.row.model.clone(),
        };
        self.store.set_project_agent(id, agent, model.as_deref())?;
        entry.row.agent = agent;
        entry.row.model = model;
        Ok(view(entry))
    }

    /// What a task run of the project needs, without claiming the project (task runs
    /// go side by side): as [`Projects::begin_run`], with no session (each task run
    /// starts a fresh one).
    ///
    /// # Errors
    /// `NotFound`.
    pub fn task_setup(&self, id: &str, agent: Option<AgentKind>) -> Result<RunSetup, ProjectError> {
        let entries = self.entries();
        let entry = entries
            .get(id)
            .ok_or_else(|| ProjectError::NotFound(id.into()))?;
        let mut setup = setup(&entry.row, entry.row.path.clone(), agent);
        setup.session = None;
        Ok(setup)
    }

    /// Forgets the session so the next run starts fresh (`agent.new_session`). The check
    /// that no run holds the project and the change are one step under the registry's
    /// lock, as in [`Projects::begin_run`], so a run cannot start between them and find
    /// its session gone.
    ///
    /// # Errors
    /// `Busy` while a run holds the project, `NotFound`, `Store`.
    pub fn new_session(&self, id: &str) -> Result<ProjectView, ProjectError> {
        let mut entries = self.entries();
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| ProjectError::NotFound(id.into()))?;
        if entry.run.is_some() {
            return Err(ProjectError::Busy(id.into()));
        }
        if entry.row.session_id.is_some() {
            self.store.set_session(id, None, now_ms())?;
            entry.row.session_id = None;
        }
        // Every agent starts fresh.
        for agent in std::mem::take(&mut entry.row.agent_sessions).into_keys() {
            self.store.set_agent_session(id, agent, None, now_ms())?;
        }
        Ok(view(entry))
    }
}

/// What a run of a project needs; see [`Projects::begin_run`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunSetup {
    /// The project's directory.
    pub path: PathBuf,
    /// The agent that runs.
    pub agent: AgentKind,
    /// The project's model, if set and the run's agent is the project's.
    pub model: Option<String>,
    /// The session (thread) that agent resumes.
    pub session: Option<String>,
}

pub(super) fn setup(row: &ProjectRow, path: PathBuf, agent: Option<AgentKind>) -> RunSetup {
    let chosen = agent.unwrap_or(row.agent);
    RunSetup {
        path,
        agent: chosen,
        // A model names one agent's model: it does not carry over to another agent.
        model: row.model.clone().filter(|_| chosen == row.agent),
        session: session_of(row, chosen).map(str::to_string),
    }
}

/// The session `agent` resumes in the project.
pub(super) fn session_of(row: &ProjectRow, agent: AgentKind) -> Option<&str> {
    match agent {
        AgentKind::Claude => row.session_id.as_deref(),
        other => row.agent_sessions.get(&other).map(String::as_str),
    }
}
