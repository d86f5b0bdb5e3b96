//! Agent usage and cost: per-turn figures from the fake CLI's cumulative `result` lines,
//! over two turns of one process and across resumed processes, for each way a Claude
//! Code version counts (restart from zero, carry the session's total, report the turn's
//! own usage); `agent.usage`, its errors, the Prometheus counters, and usage kept after
//! a project is deleted.

use serde_json::{Value, json};

use crate::util::{TestHub, Ws, run};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Runs `prompt` to its end and returns its `run_finished` line's event.
async fn finished(ws: &mut Ws, project_id: &str, prompt: &str) -> (String, Value) {
    let run_id = run(ws, project_id, prompt).await;
    let lines = ws.run_output(&run_id).await;
    let end = lines.last().unwrap()["event"].clone();
    assert_eq!(end["status"], "succeeded", "{lines:?}");
    (run_id, end)
}

/// The `agent.usage` rows of `project_id` by run, oldest first: (run, usd, input,
/// output, cache_read, turns).
async fn runs(ws: &mut Ws, project_id: &str) -> Vec<(String, f64, u64, u64, u64, u64)> {
    let usage = ws
        .ok(
            "agent.usage",
            json!({"project_id": project_id, "group_by": "run"}),
        )
        .await;
    let mut rows: Vec<_> = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_string(),
                r["usd"].as_f64().unwrap(),
                r["input_tokens"].as_u64().unwrap(),
                r["output_tokens"].as_u64().unwrap(),
                r["cache_read_tokens"].as_u64().unwrap(),
                r["turns"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

#[tokio::test]
async fn cost_per_turn_is_right_across_two_turns_of_one_process_and_resumed_processes() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    for mode in ["restart", "carry", "reported"] {
        let (project_id, _dir) = hub.project(&mut ws).await;
        ws.subscribe(&project_id).await;
        // Turns 1 and 2 in one fresh process; turn 3 in a resumed process, then turn 4
        // in another. The session's n-th turn costs n * 0.001 USD, 100n input, 10n
        // output and n cache-read tokens. With `restart`, the first resumed total
        // (0.003) equals the stored one: only the version tells it restarted.
        let (first, end) = finished(&mut ws, &project_id, &format!("usage {mode} 2")).await;
        assert!(
            close(end["cost_usd"].as_f64().unwrap(), 0.003),
            "{mode}: {end}"
        );
        assert!(
            close(end["total_cost_usd"].as_f64().unwrap(), 0.003),
            "{end}"
        );
        let (third, end) = finished(&mut ws, &project_id, &format!("usage {mode} 1")).await;
        assert!(
            close(end["cost_usd"].as_f64().unwrap(), 0.003),
            "{mode}: {end}"
        );
        let carried = if mode == "restart" { 0.003 } else { 0.006 };
        assert!(
            close(end["total_cost_usd"].as_f64().unwrap(), carried),
            "the CLI's own total is passed on as reported: {end}"
        );
        let (fourth, end) = finished(&mut ws, &project_id, &format!("usage {mode} 1")).await;
        assert!(
            close(end["cost_usd"].as_f64().unwrap(), 0.004),
            "{mode}: {end}"
        );

        let rows = runs(&mut ws, &project_id).await;
        assert_eq!(rows.len(), 3, "{mode}: {rows:?}");
        let expected = [
            (first, 0.003, 300, 30, 3, 2),
            (third, 0.003, 300, 30, 3, 1),
            (fourth, 0.004, 400, 40, 4, 1),
        ];
        for (row, want) in rows.iter().zip(&expected) {
            assert_eq!(row.0, want.0, "{mode}");
            assert!(close(row.1, want.1), "{mode}: {row:?} != {want:?}");
            assert_eq!(
                (row.2, row.3, row.4, row.5),
                (want.2, want.3, want.4, want.5),
                "{mode}"
            );
        }
        // The stored run carries its own cost, as the log's run_finished line does.
        let by_project = ws
            .ok(
                "agent.usage",
                json!({"project_id": project_id, "group_by": "project"}),
            )
            .await;
        assert!(
            close(by_project["total"]["usd"].as_f64().unwrap(), 0.010),
            "{by_project}"
        );
        assert_eq!(by_project["total"]["turns"], 4);
        assert_eq!(by_project["total"]["runs"], 3);
        assert_eq!(by_project["rows"][0]["project_deleted"], false);
    }

    // Three projects of 4 turns each today.
    let days = ws.ok("agent.usage", json!({"group_by": "day"})).await;
    assert_eq!(days["rows"].as_array().unwrap().len(), 1, "{days}");
    assert!(close(days["rows"][0]["usd"].as_f64().unwrap(), 0.030));
    assert_eq!(days["rows"][0]["input_tokens"], 3000);
    assert_eq!(days["truncated"], false);

    // The Prometheus counters hold the same sums.
    let metrics = reqwest::get(hub.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(close(value("semantest_hub_agent_cost_usd_total"), 0.030));
    assert_eq!(
        value("semantest_hub_agent_tokens_total{kind=\"input\"}"),
        3000.0
    );
    assert_eq!(
        value("semantest_hub_agent_tokens_total{kind=\"output\"}"),
        300.0
    );
    assert_eq!(
        value("semantest_hub_agent_tokens_total{kind=\"cache_read\"}"),
        30.0
    );
    hub.stop().await;
}

#[tokio::test]
async fn usage_outlives_its_project_and_bad_ranges_get_clear_errors() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    // The stand-in's usual result: one turn of 0.0123 USD, 10 input and 20 output
    // tokens, no per-model figures.
    finished(&mut ws, &project_id, "success").await;
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    ws.ok("project.delete", json!({"project_id": project_id}))
        .await;
    let usage = ws
        .ok(
            "agent.usage",
            json!({"project_id": project_id, "group_by": "project"}),
        )
        .await;
    let row = &usage["rows"][0];
    assert_eq!(row["project_deleted"], true, "{usage}");
    assert_eq!(row["project_name"], project["name"]);
    assert!(close(row["usd"].as_f64().unwrap(), 0.0123));
    assert_eq!(
        (row["input_tokens"].as_u64(), row["output_tokens"].as_u64()),
        (Some(10), Some(20))
    );
    let runs = ws.ok("agent.usage", json!({"group_by": "run"})).await;
    assert_eq!(runs["rows"][0]["model"], "fake-model");

    // A range after the turn is empty; one around it is not.
    let empty = ws
        .ok(
            "agent.usage",
            json!({"group_by": "day", "since": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(empty["total"]["turns"], 0);

    for (params, needle) in [
        (json!({"group_by": "day", "since": "yesterday"}), "since"),
        (
            json!({"group_by": "day", "since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}),
            "since must be before until",
        ),
        (
            json!({"group_by": "day", "since": "2026-12-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}),
            "since must be before until",
        ),
        (json!({"group_by": "week"}), "week"),
        (json!({}), "group_by"),
        (
            json!({"group_by": "day", "utc_offset_minutes": 900}),
            "utc_offset_minutes",
        ),
        (json!({"group_by": "day", "by": "day"}), "by"),
    ] {
        let err = ws.err("agent.usage", params.clone()).await;
        assert_eq!(err["data"]["kind"], "INVALID_PARAMS", "{params}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{params}: {err}"
        );
    }
    let err = ws
        .err(
            "agent.usage",
            json!({"group_by": "run", "project_id": "no-such-project"}),
        )
        .await;
    assert_eq!(err["data"]["kind"], "PROJECT_NOT_FOUND", "{err}");
    // The connection lives on.
    ws.ok("hub.status", json!({})).await;
    hub.stop().await;
}

#[tokio::test]
async fn the_usage_command_prints_an_aligned_table_with_a_total() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    finished(&mut ws, &project_id, "usage carry 2").await;
    finished(&mut ws, &project_id, "usage carry 1").await;

    let out = hub.cli(&["usage", "--by", "project"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "header, one project, total:\n{text}");
    assert!(lines[0].starts_with("PROJECT"), "{text}");
    // Aligned: each column starts at the same offset on every line.
    let at = |line: &str, cell: &str| {
        line.find(cell)
            .unwrap_or_else(|| panic!("{cell} in {line}"))
    };
    assert_eq!(at(lines[0], "COST"), at(lines[1], "$0.0060"), "{text}");
    assert_eq!(at(lines[0], "COST"), at(lines[2], "$0.0060"), "{text}");
    assert!(
        lines[1].contains(&project_id) && lines[2].starts_with("TOTAL"),
        "{text}"
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["TOTAL", "$0.0060", "600", "60", "6", "0", "3", "2"],
        "{text}"
    );

    for by in ["day", "run"] {
        let out = hub
            .cli(&[
                "usage",
                "--by",
                by,
                "--project",
                &project_id,
                "--since",
                "2000-01-01",
            ])
            .await;
        assert!(out.status.success(), "{by}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.lines().last().unwrap().starts_with("TOTAL"), "{text}");
    }
    let out = hub.cli(&["usage", "--json", "--by", "run"]).await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2, "{json}");
    // A bad range is the hub's clear error, with a failing exit code.
    let out = hub
        .cli(&["usage", "--since", "2026-12-02", "--until", "2026-12-01"])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("since must be before until"),
        "{out:?}"
    );
    hub.stop().await;
}
