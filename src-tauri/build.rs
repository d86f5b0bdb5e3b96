//! Reads `tauri.conf.json` (a symlink to the one at the repository root) and the
//! capabilities, and declares the app's own commands so that the ACL can grant them.

fn main() {
    let commands = tauri_build::AppManifest::new().commands(&["autostart_get", "autostart_set"]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(commands))
        .expect("failed to run the Tauri build script");
}
