//! What the packages install besides the app: `scripts/package-files` stages the command,
//! its completions and man pages; each is valid (bash -n, zsh -n, fish -n, groff) and the
//! deb, rpm and macOS bundles of tauri.conf.json name every one of them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::hub_bin;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `tool args` and asserts it succeeds with nothing on stderr.
fn clean(tool: &str, args: &[&str], file: &Path) {
    let output = Command::new(tool).args(args).arg(file).output().unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{tool} {args:?} {}: {output:?}",
        file.display()
    );
}

/// Every regular file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(
                files_under(&path)
                    .into_iter()
                    .map(|p| path.strip_prefix(dir).unwrap().join(p)),
            );
        } else {
            found.push(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    found
}

#[test]
fn the_packages_ship_valid_completions_and_man_pages_for_every_command() {
    let out = tempfile::tempdir().unwrap();
    let staged = out.path().join("package-files");
    let made = Command::new(repo().join("scripts/package-files"))
        .args(["--bin", hub_bin().to_str().unwrap()])
        .args(["--out", staged.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");

    // The scripts parse in their shells (zsh and fish where installed: scripts/deps.sh
    // installs both for the tests).
    let completions = staged.join("completions");
    clean("bash", &["-n"], &completions.join("semantest-hub.bash"));
    for (shell, file) in [("zsh", "_semantest-hub"), ("fish", "semantest-hub.fish")] {
        if has(shell) {
            clean(shell, &["-n"], &completions.join(file));
        } else {
            eprintln!("{shell} is not installed: {file} not checked");
        }
    }
    // bash really completes the subcommands with it.
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}; COMP_WORDS=(semantest-hub pro); COMP_CWORD=1; COMP_LINE='semantest-hub pro'; \
             COMP_POINT=${{#COMP_LINE}}; \
             f=$(complete -p semantest-hub | sed -E 's/.*-F ([^ ]+).*/\\1/'); \
             \"$f\" semantest-hub pro semantest-hub; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            completions.join("semantest-hub.bash").display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout),
        "project\n",
        "{completed:?}"
    );

    // A page per command, each rendered by groff without a warning (plain ASCII roff,
    // so no preprocessor is needed), with its examples.
    let pages = staged.join("man/man1");
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() > 40, "{names:?}");
    for name in [
        "semantest-hub.1",
        "semantest-hub-agent-run.1",
        "semantest-hub-task-fail.1",
    ] {
        assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
    }
    for name in &names {
        let page = pages.join(name);
        clean("groff", &["-man", "-Tutf8", "-z", "-ww"], &page);
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(text.contains("\n.SH EXAMPLES\n"), "{name}");
    }
    let shown = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(pages.join("semantest-hub-pair-approve.1"))
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("semantest-hub pair approve pr_3f9a0c1d2e4b5a6f --scope events tasks"),
        "{shown}"
    );

    // tauri.conf.json: staged before bundling, and every staged file in each bundle.
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("tauri.conf.json")).unwrap())
            .unwrap();
    let hook = config["build"]["beforeBundleCommand"]
        .as_str()
        .unwrap_or_default();
    assert!(hook.contains("scripts/package-files"), "{hook}");
    let staged_files = files_under(&staged);
    let prefix = "../target/package-files/";
    let bundles = [
        ("deb", &config["bundle"]["linux"]["deb"]["files"], "/usr/"),
        ("rpm", &config["bundle"]["linux"]["rpm"]["files"], "/usr/"),
        ("macOS", &config["bundle"]["macOS"]["files"], ""),
    ];
    for (bundle, files, root) in bundles {
        let files = files
            .as_object()
            .unwrap_or_else(|| panic!("{bundle}: no files"));
        let sources: Vec<(&String, &str)> = files
            .iter()
            .map(|(to, from)| {
                let from = from.as_str().unwrap();
                assert!(to.starts_with(root), "{bundle}: {to}");
                // Sources are relative to src-tauri/, where the config is read.
                assert!(from.starts_with(prefix), "{bundle}: {from}");
                assert!(
                    staged.join(&from[prefix.len()..]).exists(),
                    "{bundle}: {from} is not staged"
                );
                (to, &from[prefix.len()..])
            })
            .collect();
        for file in &staged_files {
            let file = file.to_str().unwrap();
            assert!(
                sources
                    .iter()
                    .any(|(_, from)| file == *from || file.starts_with(&format!("{from}/"))),
                "{bundle} does not ship {file}"
            );
        }
        let destinations: Vec<&str> = sources.iter().map(|(to, _)| to.as_str()).collect();
        let expected: &[&str] = if bundle == "macOS" {
            &["MacOS/semantest-hub", "Resources/man/man1"]
        } else {
            &[
                "/usr/bin/semantest-hub",
                "/usr/share/bash-completion/completions/semantest-hub",
                "/usr/share/fish/vendor_completions.d/semantest-hub.fish",
                "/usr/share/man/man1",
            ]
        };
        for to in expected {
            assert!(
                destinations.contains(to),
                "{bundle} lacks {to}: {destinations:?}"
            );
        }
        assert!(
            destinations
                .iter()
                .any(|to| to.ends_with("zsh/vendor-completions/_semantest-hub")
                    || to.ends_with("zsh/site-functions/_semantest-hub")
                    || *to == "Resources/completions/_semantest-hub"),
            "{bundle}: no zsh completion: {destinations:?}"
        );
    }
}
