//! The project-path validator on any text: never panics, and an accepted path is
//! absolute and free of `..` components.
#![no_main]

use libfuzzer_sys::fuzz_target;
use semantest_hub::internals::validate_path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = validate_path(text) {
        assert!(path.is_absolute(), "accepted a relative path: {path:?}");
        assert!(
            !path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir)),
            "accepted a path with ..: {path:?}"
        );
    }
});
