//! Reads `tauri.conf.json` (a symlink to the one at the repository root) and declares
//! the app's own commands so that the ACL can grant them. There is no capability file:
//! the dashboard's capability names the hub's port, known only at run time
//! (`src/window.rs`).

fn main() {
    let commands = tauri_build::AppManifest::new().commands(&["autostart_get", "autostart_set"]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(commands))
        .expect("failed to run the Tauri build script");
}
