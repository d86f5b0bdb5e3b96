//! The prompt of a task run: the task rendered as Markdown, ending with where and how
//! to write the report.

use serde_json::Value;

use crate::storage::sqlite::TaskRow;

/// The prompt of a task run: the task's title, type, context, instructions and acceptance
/// criteria, and where to write the report.
pub fn agent_prompt(task: &TaskRow) -> String {
    fn render(value: &Value) -> String {
        match value {
            Value::String(text) => text.clone(),
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|item| format!("- {item}"))
                .collect::<Vec<_>>()
                .join("\n"),
            other => format!("{other:#}"),
        }
    }
    let id = &task.id;
    let mut prompt = format!(
        "# Task {id}: {}\n\nYou are one of several workers processing a batch of tasks in this project. \
         Do this task only.\n",
        task.title
    );
    if let Some(kind) = &task.kind {
        prompt.push_str(&format!("\n## Type\n\n{kind}\n"));
    }
    if let Some(context) = &task.context {
        prompt.push_str(&format!("\n## Context\n\n{}\n", render(context)));
    }
    if let Some(instructions) = &task.prompt {
        prompt.push_str(&format!("\n## Instructions\n\n{instructions}\n"));
    }
    if let Some(acceptance) = &task.acceptance {
        prompt.push_str(&format!(
            "\n## Acceptance criteria\n\n{}\n",
            render(acceptance)
        ));
    }
    prompt.push_str(&format!(
        "\n## When you are done\n\nWrite your report as JSON to `reports/{id}.json` in the project \
         directory: write `reports/{id}.json.tmp` first, then rename it. Its shape:\n\n\
         {{\"task_id\": \"{id}\", \"status\": \"completed\", \"summary\": \"what you did\", \
         \"deliverables\": [\"files you created or changed\"], \"score\": 0.9}}\n\n\
         `score` (0 to 1) is optional. If you could not do the task, write \"status\": \"failed\" \
         and say why in \"summary\".\n"
    ));
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_names_the_report_file_and_renders_lists() {
        let task = TaskRow {
            kind: Some("docs".into()),
            context: Some(json!("see README")),
            prompt: Some("Explain the queue.".into()),
            acceptance: Some(json!(["mentions leases", "has an example"])),
            ..TaskRow::pending("t7".into(), "p".into(), 1, "Write the docs".into(), 0)
        };
        let prompt = agent_prompt(&task);
        assert!(prompt.starts_with("# Task t7: Write the docs"));
        assert!(prompt.contains("- mentions leases\n- has an example"));
        assert!(prompt.contains("reports/t7.json"));
        assert!(prompt.contains("Explain the queue."));
    }
}
