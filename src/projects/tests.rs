//! The registry's rules: paths, nesting, limits, one run at a time, sessions.

use super::*;

/// The registry over a store in `dir/data`, loaded on a thread of its own (loading is
/// sync, for the blocking pool, and the tests run on a runtime).
fn projects(dir: &Path, max: usize) -> Projects {
    let data = dir.join("data");
    std::thread::spawn(move || {
        let policy = PathPolicy::new(None, &[(&data, "the hub's data directory")]);
        Projects::load(Store::open(&data).unwrap(), max, policy).unwrap()
    })
    .join()
    .unwrap()
}

#[test]
fn path_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("real")).unwrap();
    std::fs::write(root.join("file"), "x").unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();

    let err = |raw: &str| validate_path(raw).unwrap_err().to_string();
    assert!(err("").contains("empty"));
    assert!(err("relative/dir").contains("relative"));
    assert!(err(&format!("{}/real/../real", root.display())).contains(".."));
    assert!(err(&format!("{}/./real", root.display())).contains(".."));
    assert!(err(&format!("{}/missing", root.display())).contains("does not exist"));
    assert!(err(&format!("{}/file", root.display())).contains("not a directory"));
    assert!(err(&format!("{}/link", root.display())).contains("symlink"));
    assert!(err(&format!("{}/escape", root.display())).contains("/etc"));
    assert!(err("/").contains("root"));
    assert!(err("/tmp/a\0b").contains("NUL"));
    assert_eq!(
        validate_path(&format!("{}/real/", root.display())).unwrap(),
        root.join("real")
    );
}

#[test]
fn session_ids_are_hyphenated_uuids() {
    assert!(valid_session_id("0190b2c4-8f3e-7abc-9def-0123456789ab"));
    for bad in [
        "",
        "s1",
        "--dangerously-skip-permissions",
        "-0190b2c4-8f3e-7abc-9def-0123456789a",
        "0190b2c48f3e7abc9def0123456789ab",
        "{0190b2c4-8f3e-7abc-9def-0123456789ab}",
        "urn:uuid:0190b2c4-8f3e-7abc-9def-0123456789ab",
    ] {
        assert!(!valid_session_id(bad), "{bad}");
    }
}

#[test]
fn the_policy_keeps_projects_out_of_home_hidden_and_hub_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let home = root.join("home");
    let data = home.join("hub");
    for sub in [".ssh/keys", "hub/db", "code/app", "codex"] {
        std::fs::create_dir_all(home.join(sub)).unwrap();
    }
    let policy = PathPolicy::new(Some(&home), &[(&data, "the hub's data directory")]);
    let why = |path: &Path| policy.check(path).unwrap_err().to_string();
    assert!(why(&home).contains("is your home directory"));
    assert!(why(&home.join(".ssh")).contains("hidden folder"));
    assert!(why(&home.join(".ssh/keys")).contains("hidden folder"));
    assert!(why(&root).contains("contains your home directory"));
    assert!(why(&data).contains("is inside the hub's data directory"));
    assert!(why(&data.join("db")).contains("is inside the hub's data directory"));
    policy.check(&home.join("code/app")).unwrap();
    policy.check(&home.join("code")).unwrap();
    // A sibling whose name shares a prefix with the data directory is not inside it.
    std::fs::create_dir(home.join("hubby")).unwrap();
    policy.check(&home.join("hubby")).unwrap();
    if nix::unistd::geteuid().is_root() {
        let theirs = home.join("codex");
        nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(why(&theirs).contains("owned by another user"));
    }
}

#[tokio::test]
async fn nesting_duplicates_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    for sub in ["a/inner", "b", "c", "ab"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let projects = projects(&root, 3);
    let path = |sub: &str| root.join(sub).display().to_string();
    let a = projects.create(&path("a"), None).await.unwrap();
    assert_eq!(a.name, "a");
    assert!(matches!(
        projects.create(&path("a"), None).await,
        Err(ProjectError::Exists { .. })
    ));
    assert!(matches!(
        projects.create(&path("a/inner"), None).await,
        Err(ProjectError::Nested {
            relation: "is inside",
            ..
        })
    ));
    projects.delete(&a.id).await.unwrap();
    projects
        .create(&path("a/inner"), Some("Inner"))
        .await
        .unwrap();
    assert!(matches!(
        projects.create(&path("a"), None).await,
        Err(ProjectError::Nested {
            relation: "contains",
            ..
        })
    ));
    // A sibling whose name shares a prefix is not nested.
    projects.create(&path("ab"), None).await.unwrap();
    projects.create(&path("b"), None).await.unwrap();
    assert!(matches!(
        projects.create(&path("c"), None).await,
        Err(ProjectError::Limit(3))
    ));
    assert!(matches!(
        projects.delete("nope").await,
        Err(ProjectError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_project_replaced_by_a_symlink_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("p")).unwrap();
    let projects = projects(&root, 10);
    let p = projects
        .create(&root.join("p").display().to_string(), None)
        .await
        .unwrap();
    std::fs::remove_dir(root.join("p")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("p")).unwrap();
    let run = ActiveRun {
        id: "r".into(),
        started_at: 0,
        stop: CancellationToken::new(),
    };
    assert!(matches!(
        projects.begin_run(&p.id, run, None).await,
        Err(ProjectError::InvalidPath(_))
    ));
}

#[tokio::test]
async fn one_run_at_a_time_and_state_survives_reload() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("p")).unwrap();
    let id = {
        let projects = projects(&root, 10);
        let p = projects
            .create(&root.join("p").display().to_string(), None)
            .await
            .unwrap();
        let run = || ActiveRun {
            id: "r".into(),
            started_at: 0,
            stop: CancellationToken::new(),
        };
        projects.begin_run(&p.id, run(), None).await.unwrap();
        assert!(matches!(
            projects.begin_run(&p.id, run(), None).await,
            Err(ProjectError::Busy(_))
        ));
        assert!(matches!(
            projects.delete(&p.id).await,
            Err(ProjectError::Busy(_))
        ));
        assert!(projects.active_run(&p.id).unwrap().is_some());
        p.id
    };
    // Reloaded after a "crash" while running: the project reads as failed.
    let projects = projects(&root, 10);
    assert_eq!(projects.get(&id).unwrap().state, ProjectState::Failed);
    assert!(projects.active_run(&id).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_never_clears_the_session_of_a_run_that_started() {
    const SESSION: &str = "0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("p")).unwrap();
    let projects = projects(&root, 10);
    let id = projects
        .create(&root.join("p").display().to_string(), None)
        .await
        .unwrap()
        .id;
    projects.set_session(&id, Some(SESSION)).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // `agent.new_session` from another connection, over and over.
    let other = tokio::spawn({
        let (projects, id, done) = (projects.clone(), id.clone(), done.clone());
        async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match projects.new_session(&id).await {
                    Ok(_) | Err(ProjectError::Busy(_)) => {}
                    Err(err) => panic!("{err}"),
                }
                tokio::task::yield_now().await;
            }
        }
    });
    for _ in 0..100 {
        let run = ActiveRun {
            id: "r".into(),
            started_at: 0,
            stop: CancellationToken::new(),
        };
        let resumed = projects.begin_run(&id, run, None).await.unwrap().session;
        tokio::task::yield_now().await;
        // While the run holds the project, its session is the one it resumed.
        assert_eq!(projects.get(&id).unwrap().session_id, resumed);
        projects.set_session(&id, Some(SESSION)).await.unwrap();
        projects
            .end_run(&id, ProjectState::Idle, None)
            .await
            .unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    other.await.unwrap();
}
