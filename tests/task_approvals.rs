//! Approvals asked by an agent worker's task run, with the fake CLI: they name their task,
//! wait like any other, and the policy's timeout denies them; the task ends as its run ends.

use serde_json::json;

use crate::util::TestHub;

#[tokio::test]
async fn a_task_run_s_approval_names_its_task_and_the_timeout_denies_it() {
    // Long enough for `agent.approvals.list` to see the approval on a loaded machine,
    // short enough to wait for.
    let hub = TestHub::start_with(|c| {
        c.config.agent.approvals.timeout_s = 3;
        c.config.agent.approvals.timeout_message = "nobody is here".into();
    })
    .await;
    let mut ws = hub.client().await;
    ws.ok(
        "hub.hello",
        json!({"role": "coordinator", "name": "coordinator"}),
    )
    .await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let task = json!({"id": "q1", "title": "asks", "context": "[fake:ask Bash touch late]"});
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [task]}),
    )
    .await;
    ws.ok(
        "project.configure",
        json!({"project_id": project_id, "agent_workers": 1}),
    )
    .await;

    let approval = ws.notification("agent.approval_requested").await["approval"].clone();
    assert_eq!(approval["task_id"], "q1", "{approval}");
    assert_eq!(approval["project_id"], project_id.as_str());
    assert_eq!(approval["tool_name"], "Bash");
    assert_eq!(approval["input"]["command"], "touch late");
    let listed = ws
        .ok("agent.approvals.list", json!({"project_id": project_id}))
        .await;
    let listed = listed["approvals"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], approval["id"]);
    assert_eq!(listed[0]["task_id"], "q1");

    // Nobody answers: the policy denies it, the agent goes on and the task ends with
    // its run.
    let resolved = ws.notification("agent.approval_resolved").await;
    assert_eq!(resolved["approval_id"], approval["id"]);
    assert_eq!(resolved["resolution"]["by"]["kind"], "timeout");
    assert_eq!(resolved["resolution"]["outcome"], "denied");
    let run_id = approval["run_id"].as_str().unwrap().to_string();
    let lines = ws.run_output(&run_id).await;
    let result = lines.iter().find(|l| l["kind"] == "result").unwrap();
    assert_eq!(result["event"]["result"], "denied: nobody is here");
    let completed = loop {
        let completed = ws.notification("task.completed").await;
        if completed["task_id"] == "q1" {
            break completed;
        }
    };
    assert_eq!(
        completed["report"]["summary"], "denied: nobody is here",
        "{completed}"
    );
    assert_eq!(completed["report"]["run_id"], run_id.as_str());
    let task = ws.ok("task.get", json!({"task_id": "q1"})).await;
    assert_eq!(task["state"], "completed", "{task}");
    assert!(!dir.path().join("late").exists());
    // Nothing is left waiting.
    let listed = ws.ok("agent.approvals.list", json!({})).await;
    assert_eq!(listed["approvals"], json!([]));
    hub.stop().await;
}
