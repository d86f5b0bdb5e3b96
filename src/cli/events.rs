//! `events tail|publish`: client events, seen and sent the way an extension does.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::args::EventsCommand;
use super::client::HubClient;

/// `events tail [PATTERN…]` prints each `event` notification's params as one JSON line
/// until Ctrl-C; `events publish TYPE [JSON]` publishes one and prints the result.
pub(super) async fn events_command(
    client: &mut HubClient,
    action: EventsCommand,
) -> Result<ExitCode> {
    match action {
        EventsCommand::Tail { patterns } => {
            let mut interrupt = super::interrupt()?;
            client
                .request("event.subscribe", json!({"types": patterns}))
                .await?;
            eprintln!("listening for {}; Ctrl-C stops", patterns.join(" "));
            loop {
                let message = tokio::select! {
                    message = client.next_notification() => message?,
                    _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
                };
                if message["method"] == "event" {
                    outln!("{}", message["params"])?;
                }
            }
        }
        EventsCommand::Publish {
            event_type,
            payload,
            json,
        } => {
            let payload: Value = serde_json::from_str(&payload)
                .with_context(|| format!("the payload is not JSON: {payload}"))?;
            let result = client
                .request(
                    "event.publish",
                    json!({"type": event_type, "payload": payload}),
                )
                .await?;
            if json {
                super::output::print_json(&result)?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "published {event_type} to {} subscriber(s)",
                result["delivered"].as_u64().unwrap_or_default()
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
