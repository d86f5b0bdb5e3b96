use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{
    TestHub, WAIT, connect, eventually, process_alive, run, run_with_grandchild, spawn_hub, when,
};

#[tokio::test]
async fn reconnecting_with_after_seq_mid_run_gets_exactly_the_missing_lines() {
    let hub = TestHub::start().await;
    let mut first = hub.client().await;
    let (project_id, _dir) = hub.project(&mut first).await;
    first
        .ok(
            "project.subscribe",
            json!({"project_id": project_id, "after_seq": 0}),
        )
        .await;
    let run_id = run(&mut first, &project_id, "slow 25").await;
    // Read a few lines, then drop the connection mid-run.
    let mut last_seen = 0;
    for _ in 0..5 {
        last_seen = first.notification("project.output").await["seq"]
            .as_u64()
            .unwrap();
    }
    drop(first);

    let mut second = hub.client().await;
    let subscribed = second
        .ok(
            "project.subscribe",
            json!({"project_id": project_id, "after_seq": last_seen}),
        )
        .await;
    assert!(subscribed["last_seq"].as_u64().unwrap() >= last_seen);
    let lines = second.run_output(&run_id).await;
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (last_seen + 1..=*seqs.last().unwrap()).collect();
    assert_eq!(
        seqs, expected,
        "no gap and no duplicate across replay and live"
    );
    // 25 slow lines + init + result + run_started + turn_started + turn_ended +
    // run_finished.
    assert_eq!(*seqs.last().unwrap(), 31);
    let stored = second
        .ok(
            "messages.list",
            json!({"project_id": project_id, "after_seq": last_seen, "limit": 1000}),
        )
        .await;
    assert_eq!(stored["messages"].as_array().unwrap().len(), lines.len());
    hub.stop().await;
}

#[tokio::test]
async fn many_subscribers_replaying_while_a_run_writes_see_every_line_once() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    let run_id = run(&mut ws, &project_id, "lines 3000").await;
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let mut client = hub.client().await;
        let (project_id, run_id) = (project_id.clone(), run_id.clone());
        tasks.push(tokio::spawn(async move {
            client
                .ok(
                    "project.subscribe",
                    json!({"project_id": project_id, "after_seq": i * 10}),
                )
                .await;
            let lines = client.run_output(&run_id).await;
            lines
                .iter()
                .map(|l| l["seq"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let seqs = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        let start = i as u64 * 10 + 1;
        assert_eq!(
            seqs,
            (start..start + seqs.len() as u64).collect::<Vec<_>>(),
            "subscriber {i}"
        );
        assert_eq!(*seqs.last().unwrap(), 3006);
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_projects_sessions_and_the_log() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "success").await;
    let lines = ws.run_output(&run_id).await;
    let session = lines[2]["event"]["session_id"].clone();
    drop(ws);

    let hub = hub.restart().await;
    let mut ws = hub.client().await;
    let projects = ws.ok("project.list", json!({})).await;
    assert_eq!(projects["projects"][0]["id"], project_id);
    assert_eq!(projects["projects"][0]["session_id"], session);
    assert_eq!(projects["projects"][0]["last_seq"], 10);
    let stored = ws
        .ok("messages.list", json!({"project_id": project_id}))
        .await;
    assert_eq!(stored["messages"].as_array().unwrap(), &lines);
    // New lines continue the numbering.
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "success").await;
    assert_eq!(ws.run_output(&run_id).await[0]["seq"], 11);
    hub.stop().await;
}

#[tokio::test]
async fn sigkill_during_a_write_burst_loses_nothing_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_hub(data.path()).await;
    let mut ws = connect(port, data.path()).await;
    let (project_id, _dir) = {
        let dir = tempfile::tempdir().unwrap();
        let project = ws.ok("project.create", json!({"path": dir.path()})).await;
        (project["id"].as_str().unwrap().to_string(), dir)
    };
    ws.subscribe(&project_id).await;
    run(&mut ws, &project_id, "lines 200000").await;
    // Every line pushed to a subscriber was committed first: it is acknowledged.
    let mut acknowledged = BTreeMap::new();
    while acknowledged.len() < 2000 {
        let line = ws.notification("project.output").await;
        acknowledged.insert(line["seq"].as_u64().unwrap(), line);
    }
    child.kill();
    // Whatever was still in flight is acknowledged too.
    while let Ok(Some(Ok(message))) = tokio::time::timeout(
        Duration::from_millis(200),
        futures_util::StreamExt::next(&mut ws.socket),
    )
    .await
    {
        if let Ok(text) = message.to_text() {
            let line: Value = serde_json::from_str(text).unwrap_or_default();
            if line["method"] == "project.output" {
                acknowledged.insert(
                    line["params"]["seq"].as_u64().unwrap(),
                    line["params"].clone(),
                );
            }
        }
    }

    let (mut child, port) = spawn_hub(data.path()).await;
    let mut ws = connect(port, data.path()).await;
    let mut after = 0;
    let mut stored = BTreeMap::new();
    loop {
        let page = ws
            .ok(
                "messages.list",
                json!({"project_id": project_id, "after_seq": after, "limit": 1000}),
            )
            .await;
        for line in page["messages"].as_array().unwrap() {
            after = line["seq"].as_u64().unwrap();
            stored.insert(after, line.clone());
        }
        if page["has_more"] == false {
            break;
        }
    }
    for (seq, line) in &acknowledged {
        assert_eq!(
            stored.get(seq),
            Some(line),
            "acknowledged line {seq} survived"
        );
    }
    let seqs: Vec<u64> = stored.keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "the log has no holes"
    );
    // The run the crash interrupted is recorded as such.
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(project["state"], "failed");
    child.kill();
}

#[tokio::test]
async fn runs_orphaned_by_a_crash_are_cleaned_up_at_the_next_start() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_hub(data.path()).await;
    let mut ws = connect(port, data.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let project = ws.ok("project.create", json!({"path": dir.path()})).await;
    let project_id = project["id"].as_str().unwrap().to_string();
    ws.subscribe(&project_id).await;
    let (_, grandchild) = run_with_grandchild(&mut ws, &project_id, dir.path()).await;
    child.kill();
    assert!(
        process_alive(grandchild),
        "the crash left the agent's background process behind"
    );

    let (mut child, _port) = spawn_hub(data.path()).await;
    eventually("the orphaned grandchild to be killed", async || {
        when(process_alive(grandchild), |alive| !alive)
    })
    .await;
    child.kill();
}
