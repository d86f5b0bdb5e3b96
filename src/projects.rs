//! Projects: registered directories where agents may run, with their runtime state.
//!
//! A path becomes a project only if it is absolute, free of `.`/`..` components, exists,
//! is a directory and is not itself a symlink. It is stored canonicalised (symlinks in its
//! ancestors resolved, e.g. macOS `/tmp` → `/private/tmp`). A project may not contain or
//! sit inside another project, so a run in one can never be a run in another. Before each
//! run the path is canonicalised again and must be unchanged: a directory replaced by a
//! symlink after registration is a symlink escape and is refused.
//!
//! A path that passes those checks must also pass the [`PathPolicy`]: an agent run with
//! `acceptEdits` edits files in its project, so no project may be the home directory, a
//! hidden folder of it (`~/.ssh`, `~/.config`, ... and what is inside them), the hub's
//! own config, data or log directory (or inside one, or an ancestor of one, or of the
//! home directory), or a directory owned by another user. The policy is checked at
//! registration and again before each run, so a project registered before a rule existed
//! cannot run either.
//!
//! The registry keeps every project in memory behind a std `Mutex` (held for map
//! operations only, never across an await) and writes through to the [`Store`]. A change
//! (create, a run's start and end, a session set or forgotten) holds the registry's
//! async `changes` lock from its check to its in-memory update, across the store write
//! it awaits: so no two changes interleave (two creates of one path cannot both pass the
//! check; `agent.new_session` cannot clear the session of a run starting), their writes
//! reach the store in the order they were made, and no rusqlite or file-system call runs
//! on a runtime worker (the path checks run on the blocking pool). Readers never wait
//! for it: they see a change once it is committed.

mod agents;
pub(crate) mod feed;
pub mod git;

pub use agents::RunSetup;
use agents::{session_of, setup};

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use crate::protocol::agents::AgentKind;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::{ProjectState, ProjectView, RunInfo};
use crate::storage::sqlite::{ProjectRow, Store, StoreError};
use crate::support::timestamp::{format_ms, now_ms};

/// Why a project operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The path cannot be a project.
    #[error("{0}")]
    InvalidPath(String),
    /// The display name is unusable.
    #[error("{0}")]
    InvalidName(String),
    /// The directory is already registered.
    #[error("{path} is already registered as project {id}")]
    Exists {
        /// The canonical path.
        path: String,
        /// The existing project's id.
        id: String,
    },
    /// The directory is inside another project, or contains one.
    #[error("{path} {relation} project {id} ({other})")]
    Nested {
        /// The canonical path.
        path: String,
        /// `is inside` or `contains`.
        relation: &'static str,
        /// The other project's id.
        id: String,
        /// The other project's path.
        other: String,
    },
    /// The session to resume, or to record, is not a valid agent session id (a UUID;
    /// see [`valid_session_id`]), whichever agent it belongs to.
    #[error(
        "the project's session id {0:?} is not a valid agent session id (a UUID); start a new session with agent.new_session"
    )]
    InvalidSession(String),
    /// No project has the id.
    #[error("no project with id {0}")]
    NotFound(String),
    /// The project runs an agent.
    #[error("project {0} is running an agent")]
    Busy(String),
    /// `limits.max_projects` is reached.
    #[error("the hub already has {0} projects, its configured maximum")]
    Limit(usize),
    /// The store failed.
    #[error("project store failed")]
    Store(#[from] StoreError),
}

impl From<ProjectError> for RpcError {
    fn from(err: ProjectError) -> Self {
        let kind = match &err {
            ProjectError::InvalidPath(_) => ErrorKind::InvalidPath,
            ProjectError::InvalidName(_) => ErrorKind::InvalidParams,
            ProjectError::InvalidSession(_) => ErrorKind::InvalidSession,
            ProjectError::Exists { .. } => ErrorKind::ProjectExists,
            ProjectError::Nested { .. } => ErrorKind::ProjectNested,
            ProjectError::NotFound(_) => ErrorKind::ProjectNotFound,
            ProjectError::Busy(_) => ErrorKind::ProjectBusy,
            ProjectError::Limit(_) => ErrorKind::LimitReached,
            ProjectError::Store(source) => return RpcError::internal("project store", source),
        };
        RpcError::new(kind, err.to_string())
    }
}

/// Validates a client-supplied project path and returns its canonical form.
///
/// # Errors
/// [`ProjectError::InvalidPath`] with a message a user can act on.
pub fn validate_path(raw: &str) -> Result<PathBuf, ProjectError> {
    let invalid = |message: String| Err(ProjectError::InvalidPath(message));
    if raw.trim().is_empty() {
        return invalid("path is empty".into());
    }
    if raw.contains('\0') {
        return invalid("path contains a NUL byte".into());
    }
    if raw.len() > 4096 {
        return invalid("path is longer than 4096 bytes".into());
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return invalid(format!("{raw} is a relative path; give an absolute path"));
    }
    // Checked on the raw text: `Path::components` silently drops inner `.` segments.
    if raw
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return invalid(format!(
            "{raw} contains '.' or '..'; give the directory's plain absolute path"
        ));
    }
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return invalid(format!("{raw} does not exist"));
        }
        Err(err) => return invalid(format!("{raw} cannot be read: {err}")),
    };
    if metadata.file_type().is_symlink() {
        let target = std::fs::canonicalize(path)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "a missing target".into());
        return invalid(format!(
            "{raw} is a symlink (to {target}); register the real directory so the link cannot be re-pointed later"
        ));
    }
    if !metadata.is_dir() {
        return invalid(format!("{raw} is not a directory"));
    }
    let canonical = std::fs::canonicalize(path)
        .or_else(|err| invalid(format!("{raw} cannot be resolved: {err}")))?;
    if canonical.parent().is_none() {
        return invalid("the filesystem root cannot be a project".into());
    }
    if canonical.to_str().is_none() {
        return invalid(format!("{raw} is not valid UTF-8"));
    }
    Ok(canonical)
}

/// Whether `id` is a valid agent session id: a UUID in its hyphenated form (Claude Code
/// stores a session as `<uuid>.jsonl`, and `--session-id` takes a `<uuid>`; the same rule
/// holds for every agent's session). Only such an id is recorded as a project's session
/// and passed to the agent's CLI to resume, so a session id can never be read as a CLI
/// option, whatever a run's output claimed.
pub fn valid_session_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// Directories no project may be, sit inside or contain, and the owner a project must
/// have. Built once, when the hub opens, from the home directory and the hub's own
/// directories.
#[derive(Debug, Clone, Default)]
pub struct PathPolicy {
    /// The user's home directory, canonical.
    home: Option<PathBuf>,
    /// The hub's own directories, canonical where they exist, with what each is.
    hub_dirs: Vec<(PathBuf, &'static str)>,
    /// The uid a project directory must be owned by; `None` checks no owner.
    owner: Option<u32>,
}

impl PathPolicy {
    /// A policy around `home` and the hub's directories (`(path, "the hub's data
    /// directory")`), requiring directories owned by the hub's effective uid.
    pub fn new(home: Option<&Path>, hub_dirs: &[(&Path, &'static str)]) -> Self {
        let canonical = |path: &Path| std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
        Self {
            home: home.map(canonical),
            hub_dirs: hub_dirs
                .iter()
                .map(|(path, what)| (canonical(path), *what))
                .collect(),
            owner: Some(nix::unistd::geteuid().as_raw()),
        }
    }

    /// Checks a canonical directory against the policy.
    ///
    /// # Errors
    /// [`ProjectError::InvalidPath`] saying which rule the directory breaks.
    pub fn check(&self, path: &Path) -> Result<(), ProjectError> {
        let shown = path.display();
        let refuse = |why: String| Err(ProjectError::InvalidPath(format!("{shown} {why}")));
        if let Some(home) = &self.home {
            if path == home {
                return refuse(
                    "is your home directory; an agent there could edit your shell profile, \
                     SSH keys and settings. Register a project folder inside it"
                        .into(),
                );
            }
            if let Ok(rest) = path.strip_prefix(home)
                && let Some(Component::Normal(first)) = rest.components().next()
                && first.to_string_lossy().starts_with('.')
            {
                return refuse(format!(
                    "is inside {}, a hidden folder of your home directory where settings and \
                     credentials live",
                    home.join(first).display()
                ));
            }
            if home.starts_with(path) {
                return refuse(format!("contains your home directory ({})", home.display()));
            }
        }
        for (dir, what) in &self.hub_dirs {
            if path.starts_with(dir) {
                return refuse(format!("is inside {what} ({})", dir.display()));
            }
            if dir.starts_with(path) {
                return refuse(format!("contains {what} ({})", dir.display()));
            }
        }
        if let Some(owner) = self.owner {
            let metadata = match std::fs::metadata(path) {
                Ok(metadata) => metadata,
                Err(err) => return refuse(format!("cannot be read: {err}")),
            };
            if metadata.uid() != owner {
                return refuse(format!(
                    "is owned by another user (uid {}, not {owner}); only your own \
                     directories can be projects",
                    metadata.uid()
                ));
            }
        }
        Ok(())
    }
}

/// A run in progress.
#[derive(Debug, Clone)]
pub struct ActiveRun {
    /// The run id.
    pub id: String,
    /// Epoch milliseconds.
    pub started_at: i64,
    /// Cancelled to stop the run; the runner then kills the process group.
    pub stop: CancellationToken,
}

#[derive(Debug, Clone)]
struct Entry {
    row: ProjectRow,
    run: Option<ActiveRun>,
}

/// The project registry. Cheap to clone.
#[derive(Clone)]
pub struct Projects {
    store: Store,
    max_projects: usize,
    policy: Arc<PathPolicy>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// Held by a change from its check to its in-memory update (module docs).
    changes: Arc<tokio::sync::Mutex<()>>,
}

impl Projects {
    /// Loads every project from the store. Projects left `running` by a crash are marked
    /// `failed` (their runs are cleaned up by the agent runner at start). New and running
    /// projects must pass `policy`. It blocks: call it off the runtime.
    ///
    /// # Errors
    /// [`ProjectError::Store`].
    pub fn load(
        store: Store,
        max_projects: usize,
        policy: PathPolicy,
    ) -> Result<Self, ProjectError> {
        let mut entries = HashMap::new();
        for mut row in store.projects()? {
            if row.state == ProjectState::Running {
                let reason = "the hub stopped while the agent was running";
                store.set_project_state_blocking(&row.id, ProjectState::Failed, Some(reason))?;
                row.state = ProjectState::Failed;
                row.reason = Some(reason.into());
            }
            entries.insert(row.id.clone(), Entry { row, run: None });
        }
        Ok(Self {
            store,
            max_projects,
            policy: Arc::new(policy),
            entries: Arc::new(Mutex::new(entries)),
            changes: Arc::default(),
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a directory.
    ///
    /// # Errors
    /// `InvalidPath`, `Exists`, `Nested`, `Limit` or `Store`.
    pub async fn create(
        &self,
        raw_path: &str,
        name: Option<&str>,
    ) -> Result<ProjectView, ProjectError> {
        // Canonicalising reads the file system: off the runtime's workers.
        let path = self.validate(raw_path.to_string()).await?;
        let name = match name.map(str::trim) {
            Some("") | None => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            Some(name) if name.chars().count() > 100 => {
                return Err(ProjectError::InvalidName(
                    "name is longer than 100 characters".into(),
                ));
            }
            Some(name) => name.to_string(),
        };
        let _change = self.changes.lock().await;
        self.admit(&path)?;
        let row = ProjectRow {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            path,
            created_at: now_ms(),
            state: ProjectState::Idle,
            reason: None,
            session_id: None,
            last_seq: 0,
            agent: Default::default(),
            model: None,
            agent_sessions: Default::default(),
        };
        self.store.insert_project(&row).await?;
        let entry = Entry { row, run: None };
        let view = view(&entry);
        self.entries().insert(entry.row.id.clone(), entry);
        Ok(view)
    }

    /// Validates a path ([`validate_path`]) and checks it against the [`PathPolicy`],
    /// on the blocking pool (canonicalising reads the file system); returns its
    /// canonical form.
    ///
    /// # Errors
    /// [`ProjectError::InvalidPath`] with a message a user can act on.
    pub async fn validate(&self, raw: String) -> Result<PathBuf, ProjectError> {
        let policy = self.policy.clone();
        crate::support::blocking::off_runtime(move || {
            let path = validate_path(&raw)?;
            policy.check(&path)?;
            Ok(path)
        })
        .await
    }

    /// Whether `path` may join the registry: not registered, not nested in or around a
    /// project, and room left.
    fn admit(&self, path: &Path) -> Result<(), ProjectError> {
        let entries = self.entries();
        for entry in entries.values() {
            let other = &entry.row.path;
            let nested = |relation| ProjectError::Nested {
                path: path.display().to_string(),
                relation,
                id: entry.row.id.clone(),
                other: other.display().to_string(),
            };
            if other == path {
                return Err(ProjectError::Exists {
                    path: path.display().to_string(),
                    id: entry.row.id.clone(),
                });
            } else if path.starts_with(other) {
                return Err(nested("is inside"));
            } else if other.starts_with(path) {
                return Err(nested("contains"));
            }
        }
        if entries.len() >= self.max_projects {
            return Err(ProjectError::Limit(self.max_projects));
        }
        Ok(())
    }

    /// Removes a project that runs nothing. Its directory is not touched. The project
    /// leaves the registry first (so no run starts in it meanwhile), then its rows are
    /// deleted in chunks without the registry lock; if the store fails, the project is
    /// put back.
    ///
    /// # Errors
    /// `NotFound`, `Busy` or `Store`.
    pub async fn delete(&self, id: &str) -> Result<(), ProjectError> {
        let entry = {
            let _change = self.changes.lock().await;
            let mut entries = self.entries();
            let entry = entries
                .get(id)
                .ok_or_else(|| ProjectError::NotFound(id.into()))?;
            if entry.run.is_some() {
                return Err(ProjectError::Busy(id.into()));
            }
            entries.remove(id).expect("checked above")
        };
        if let Err(err) = self.store.delete_project(id).await {
            let _change = self.changes.lock().await;
            self.entries().insert(id.to_string(), entry);
            return Err(err.into());
        }
        Ok(())
    }

    /// One project.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn get(&self, id: &str) -> Result<ProjectView, ProjectError> {
        self.entries()
            .get(id)
            .map(view)
            .ok_or_else(|| ProjectError::NotFound(id.into()))
    }

    /// Every project, oldest first.
    pub fn list(&self) -> Vec<ProjectView> {
        let entries = self.entries();
        let mut list: Vec<&Entry> = entries.values().collect();
        list.sort_by(|a, b| (a.row.created_at, &a.row.id).cmp(&(b.row.created_at, &b.row.id)));
        list.into_iter().map(view).collect()
    }

    /// Number of projects.
    pub fn count(&self) -> usize {
        self.entries().len()
    }

    /// Marks a project running, if it is not already, and returns what the run needs:
    /// its directory, its agent (`agent`, else the project's), model and the session
    /// that agent resumes. The path is re-validated: it must still resolve to the
    /// registered directory.
    ///
    /// # Errors
    /// `NotFound`, `Busy`, `InvalidPath` (the directory vanished or became a symlink),
    /// `InvalidSession` (the session to resume is not a UUID), `Store`.
    pub async fn begin_run(
        &self,
        id: &str,
        run: ActiveRun,
        agent: Option<AgentKind>,
    ) -> Result<RunSetup, ProjectError> {
        let _change = self.changes.lock().await;
        let setup = {
            let entries = self.entries();
            let entry = entries
                .get(id)
                .ok_or_else(|| ProjectError::NotFound(id.into()))?;
            if entry.run.is_some() {
                return Err(ProjectError::Busy(id.into()));
            }
            setup(&entry.row, entry.row.path.clone(), agent)
        };
        let checked = setup.path.clone();
        let policy = self.policy.clone();
        crate::support::blocking::off_runtime(move || {
            match validate_path(&checked.to_string_lossy()) {
                Ok(current) if current == checked => policy.check(&current),
                Ok(current) => Err(ProjectError::InvalidPath(format!(
                    "{} now resolves to {}; remove and re-add the project",
                    checked.display(),
                    current.display()
                ))),
                Err(err) => Err(err),
            }
        })
        .await?;
        if let Some(session) = &setup.session
            && !valid_session_id(session)
        {
            return Err(ProjectError::InvalidSession(session.clone()));
        }
        self.store
            .set_project_state(id, ProjectState::Running, None)
            .await?;
        let mut entries = self.entries();
        // A delete waits for the `changes` lock, so the entry is still there.
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| ProjectError::NotFound(id.into()))?;
        entry.row.state = ProjectState::Running;
        entry.row.reason = None;
        entry.run = Some(run);
        Ok(setup)
    }

    /// Clears the run and records the project's new state.
    ///
    /// # Errors
    /// `Store`; the in-memory state is updated regardless.
    pub async fn end_run(
        &self,
        id: &str,
        state: ProjectState,
        reason: Option<&str>,
    ) -> Result<(), ProjectError> {
        let _change = self.changes.lock().await;
        if let Some(entry) = self.entries().get_mut(id) {
            entry.run = None;
            entry.row.state = state;
            entry.row.reason = reason.map(str::to_string);
        }
        self.store.set_project_state(id, state, reason).await?;
        Ok(())
    }

    /// The active run of a project.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn active_run(&self, id: &str) -> Result<Option<ActiveRun>, ProjectError> {
        self.entries()
            .get(id)
            .map(|entry| entry.run.clone())
            .ok_or_else(|| ProjectError::NotFound(id.into()))
    }

    /// Sets or clears the Claude Code session the next run resumes.
    ///
    /// # Errors
    /// `InvalidSession` for an id that is not a UUID, `NotFound` or `Store`.
    pub async fn set_session(
        &self,
        id: &str,
        session_id: Option<&str>,
    ) -> Result<ProjectView, ProjectError> {
        self.set_agent_session(id, AgentKind::Claude, session_id)
            .await
    }

    /// The view of project `id` when `unchanged` holds for it.
    ///
    /// # Errors
    /// `NotFound`.
    fn view_if(
        &self,
        id: &str,
        unchanged: impl FnOnce(&Entry) -> bool,
    ) -> Result<Option<ProjectView>, ProjectError> {
        let entries = self.entries();
        let entry = entries
            .get(id)
            .ok_or_else(|| ProjectError::NotFound(id.into()))?;
        Ok(unchanged(entry).then(|| view(entry)))
    }

    /// Applies a committed change to project `id` and returns its view.
    ///
    /// # Errors
    /// `NotFound` (never while the caller holds the `changes` lock: a delete waits).
    fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Entry),
    ) -> Result<ProjectView, ProjectError> {
        let mut entries = self.entries();
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| ProjectError::NotFound(id.into()))?;
        change(entry);
        Ok(view(entry))
    }
}

fn view(entry: &Entry) -> ProjectView {
    let row = &entry.row;
    ProjectView {
        id: row.id.clone(),
        name: row.name.clone(),
        path: row.path.display().to_string(),
        state: row.state,
        session_id: session_of(row, row.agent).map(str::to_string),
        agent: row.agent,
        model: row.model.clone(),
        sessions: AgentKind::ALL
            .into_iter()
            .filter_map(|agent| Some((agent, session_of(row, agent)?.to_string())))
            .collect(),
        last_seq: row.last_seq,
        created_at: format_ms(row.created_at),
        run: entry.run.as_ref().map(|run| RunInfo {
            id: run.id.clone(),
            started_at: format_ms(run.started_at),
        }),
        reason: row.reason.clone(),
    }
}

#[cfg(test)]
mod tests;
