//! The project-path validator and policy on any text: never panic; an accepted path is
//! absolute and free of `..` components, and one the policy accepts is neither the home
//! directory nor inside one of its hidden folders nor inside or above the data directory.
#![no_main]

use std::path::{Component, Path};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use semantest_hub::internals::{PathPolicy, validate_path};

static POLICY: LazyLock<PathPolicy> = LazyLock::new(|| {
    PathPolicy::new(
        Some(Path::new("/root")),
        &[(Path::new("/var/tmp/hub-data"), "the hub's data directory")],
    )
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = validate_path(text) {
        assert!(path.is_absolute(), "accepted a relative path: {path:?}");
        assert!(
            !path.components().any(|c| matches!(c, Component::ParentDir)),
            "accepted a path with ..: {path:?}"
        );
        if POLICY.check(&path).is_ok() {
            let home = Path::new("/root");
            assert_ne!(path, home);
            assert!(
                path.strip_prefix(home)
                    .ok()
                    .and_then(|rest| rest.components().next())
                    .is_none_or(|first| !first.as_os_str().to_string_lossy().starts_with('.')),
                "accepted a hidden folder of the home directory: {path:?}"
            );
            let data = Path::new("/var/tmp/hub-data");
            assert!(
                !path.starts_with(data) && !data.starts_with(&path),
                "{path:?}"
            );
        }
    }
});
