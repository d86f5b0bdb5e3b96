//! `semantest-hub-desktop`: the Semantest Hub tray app. `--hidden` starts it in the tray
//! without a window, as start at login does.

fn main() -> std::process::ExitCode {
    // First, before any thread starts (run() sets an environment variable).
    semantest_hub_desktop::run()
}
