//! The OS keychain (Secret Service on Linux, run by the test command on a private
//! session bus; the login Keychain on macOS).

use semantest_hub::config::SecretStoreKind;
use semantest_hub::secrets::KEYCHAIN_SERVICE;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::util::{Ws, test_config};

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_token_lives_in_the_keychain_and_in_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.config.secret_store = SecretStoreKind::Keychain;
    let server = semantest_hub::start(config)
        .await
        .expect("the OS keychain is reachable (run the tests through scripts/test)");
    let health: serde_json::Value = reqwest::get(format!("{}/health", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["secret_store"], "keychain");

    let account = format!("owner-token@{}", dir.path().display());
    let entry = keyring::Entry::new(KEYCHAIN_SERVICE, &account).unwrap();
    let token = tokio::task::spawn_blocking({
        let entry = keyring::Entry::new(KEYCHAIN_SERVICE, &account).unwrap();
        move || entry.get_password()
    })
    .await
    .unwrap()
    .expect("the token is in the keychain");
    assert_eq!(token.len(), 64);
    assert!(
        !dir.path().join("secrets").exists(),
        "no secret file was written"
    );
    for file in walk(dir.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "token found in {}",
            file.display()
        );
    }

    // The keychain's token opens the WebSocket.
    let mut request = format!("ws://127.0.0.1:{}/ws", server.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let mut ws = Ws::connect(request).await.unwrap();
    assert_eq!(
        ws.ok("hub.status", json!({})).await["secret_store"],
        "keychain"
    );
    server.shutdown().await;
    tokio::task::spawn_blocking(move || entry.delete_credential())
        .await
        .unwrap()
        .unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A hub started with `--secret-store file` (as the user unit starts it) and a command
/// on the default `auto`, on a machine whose keychain answers: the command reads the
/// token from the store the running hub recorded, never creating a second one there.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_on_auto_uses_the_store_of_the_running_hub() {
    let hub = crate::util::TestHub::start().await;
    let data_dir = hub.dir.path().to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        tokio::process::Command::new(crate::util::hub_bin())
            .args(["--data-dir", &data_dir])
            .args(args)
            .output()
    };
    let runtime: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hub.dir.path().join("server.json")).unwrap())
            .unwrap();
    assert_eq!(runtime["secret_store"], "file");

    let token = run(&["token"]).await.unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&token.stdout).trim(), hub.token);
    let status = run(&["status"]).await.unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    // Nothing was written to the keychain for this data directory.
    let account = format!("owner-token@{}", hub.dir.path().display());
    let entry = keyring::Entry::new(KEYCHAIN_SERVICE, &account).unwrap();
    let stored = tokio::task::spawn_blocking(move || entry.get_password())
        .await
        .unwrap();
    assert!(matches!(stored, Err(keyring::Error::NoEntry)), "{stored:?}");

    // Asking for another store than the running hub's is an error that says which.
    let other = run(&["--secret-store", "keychain", "token"]).await.unwrap();
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("--secret-store file"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}
