use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::TestHub;

/// After every bad input the connection still answers.
async fn still_usable(ws: &mut crate::util::Ws) {
    assert_eq!(
        ws.ok("hub.status", json!({})).await["product"],
        "semantest-hub"
    );
}

#[tokio::test]
async fn malformed_frames_get_standard_errors_and_the_connection_lives_on() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let cases = [
        ("{not json", -32700, "PARSE_ERROR"),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"hub.status"}]"#,
            -32600,
            "BATCH_UNSUPPORTED",
        ),
        (r#""just a string""#, -32600, "INVALID_REQUEST"),
        (
            r#"{"jsonrpc":"1.0","id":5,"method":"hub.status"}"#,
            -32600,
            "INVALID_REQUEST",
        ),
        (
            r#"{"jsonrpc":"2.0","id":6,"method":"no.such.method"}"#,
            -32601,
            "METHOD_NOT_FOUND",
        ),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"project.get","params":{"project_id":42}}"#,
            -32602,
            "INVALID_PARAMS",
        ),
        (
            r#"{"jsonrpc":"2.0","id":8,"method":"project.get"}"#,
            -32602,
            "INVALID_PARAMS",
        ),
    ];
    for (frame, code, kind) in cases {
        ws.send_raw(frame).await;
        let reply = ws.next_json().await;
        assert_eq!(reply["error"]["code"], code, "{frame} -> {reply}");
        assert_eq!(reply["error"]["data"]["kind"], kind, "{frame}");
        still_usable(&mut ws).await;
    }
    // The id is echoed when it could be read, null otherwise.
    ws.send_raw(r#"{"jsonrpc":"2.0","id":"abc","method":"nope"}"#)
        .await;
    assert_eq!(ws.next_json().await["id"], "abc");
    ws.send_raw("{broken").await;
    assert!(ws.next_json().await["id"].is_null());
    // A client notification (no id) gets no reply at all.
    ws.send_raw(r#"{"jsonrpc":"2.0","method":"hub.status"}"#)
        .await;
    let next = ws.call("hub.status", json!({})).await;
    assert_eq!(next["result"]["product"], "semantest-hub");
    hub.stop().await;
}

#[tokio::test]
async fn bad_project_paths_get_their_own_kinds() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    std::fs::create_dir_all(root_path.join("outer/inner")).unwrap();
    std::fs::create_dir_all(root_path.join("real")).unwrap();
    std::fs::write(root_path.join("a-file"), "x").unwrap();
    std::os::unix::fs::symlink("/etc", root_path.join("escape")).unwrap();
    let outer = ws
        .ok("project.create", json!({"path": root_path.join("outer")}))
        .await;
    let path = |sub: &str| root_path.join(sub).display().to_string();
    let cases = [
        ("relative/path".to_string(), "INVALID_PATH", "relative"),
        (
            format!("{}/real/../outer", root_path.display()),
            "INVALID_PATH",
            "..",
        ),
        (path("escape"), "INVALID_PATH", "symlink"),
        (path("a-file"), "INVALID_PATH", "not a directory"),
        (path("missing"), "INVALID_PATH", "does not exist"),
        (path("outer/inner"), "PROJECT_NESTED", "inside"),
        (path("outer"), "PROJECT_EXISTS", "already"),
        (
            root_path.display().to_string(),
            "PROJECT_NESTED",
            "contains",
        ),
    ];
    for (raw, kind, words) in cases {
        let error = ws.err("project.create", json!({"path": raw})).await;
        assert_eq!(error["data"]["kind"], kind, "{raw}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(words),
            "{raw}: {error}"
        );
        still_usable(&mut ws).await;
    }
    let error = ws.err("project.get", json!({"project_id": "nope"})).await;
    assert_eq!(error["data"]["kind"], "PROJECT_NOT_FOUND");
    let error = ws
        .err(
            "agent.run",
            json!({"project_id": outer["id"], "prompt": ""}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "INVALID_PARAMS");
    let error = ws
        .err(
            "messages.list",
            json!({"project_id": outer["id"], "since": "yesterday"}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "INVALID_PARAMS");
    let error = ws
        .err(
            "messages.list",
            json!({"project_id": outer["id"], "limit": 0}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "INVALID_PARAMS");
    hub.stop().await;
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009_and_others_are_unaffected() {
    let hub = TestHub::start().await;
    let mut other = hub.client().await;
    let mut ws = hub.client().await;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"hub.status","params":{{"pad":"{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    ws.send_raw(&big).await;
    let frame = ws.closed().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size);
    still_usable(&mut other).await;
    // Just under the limit is fine.
    let near = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"hub.status","params":{{"pad":"{}"}}}}"#,
        "x".repeat(1_000_000)
    );
    other.send_raw(&near).await;
    assert_eq!(
        other.next_json().await["result"]["product"],
        "semantest-hub"
    );
    hub.stop().await;
}
