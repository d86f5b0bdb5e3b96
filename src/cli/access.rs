//! `token …` and `pair …`: client tokens and pairing requests, over RPC with the owner
//! token.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use super::args::{PairCommand, TokenCommand};
use super::client::HubClient;
use super::output::{join_strings, print_json, text_or};

/// `token create|list|revoke`, over RPC with the owner token.
pub(super) async fn token_command(
    client: &mut HubClient,
    action: TokenCommand,
) -> Result<ExitCode> {
    match action {
        TokenCommand::Create {
            name,
            scopes,
            origin,
            json,
        } => {
            let created = client
                .request(
                    "client.create",
                    json!({"name": name, "scopes": scopes, "origin": origin}),
                )
                .await?;
            let token = created["token"].as_str().context("the hub sent no token")?;
            if json {
                eprintln!("the token in this JSON is shown only now");
                print_json(&created)?;
                return Ok(ExitCode::SUCCESS);
            }
            let info = &created["client"];
            eprintln!(
                "created {} ({}) with scopes {}; the token below is shown only now",
                info["id"].as_str().unwrap_or_default(),
                info["name"].as_str().unwrap_or_default(),
                join_strings(&info["scopes"]),
            );
            outln!("{token}")?;
        }
        TokenCommand::List(format) => {
            let list = client.request("client.list", json!({})).await?;
            format.print(
                &list,
                "clients",
                &[
                    ("ID", &|c| text_or(c, "id", "")),
                    ("KIND", &|c| text_or(c, "kind", "")),
                    ("NAME", &|c| text_or(c, "name", "")),
                    ("SCOPES", &|c| join_strings(&c["scopes"])),
                    ("ORIGIN", &|c| text_or(c, "origin", "any")),
                    ("LAST USED", &|c| text_or(c, "last_used_at", "never")),
                    ("FROM", &|c| text_or(c, "last_addr", "-")),
                    ("CONNECTED", &|c| {
                        c["connected"].as_u64().unwrap_or_default().to_string()
                    }),
                ],
                "no client tokens; create one with `semantest-hub token create`",
            )?;
        }
        TokenCommand::Revoke { id, json } => {
            let revoked = client
                .request("client.revoke", json!({"client_id": id}))
                .await?;
            if json {
                print_json(&revoked)?;
            } else {
                outln!("revoked {id}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pair list|approve|deny`, over RPC with the owner token.
pub(super) async fn pair_command(client: &mut HubClient, action: PairCommand) -> Result<ExitCode> {
    match action {
        PairCommand::List(format) => {
            let list = client.request("pairing.list", json!({})).await?;
            format.print(
                &list,
                "requests",
                &[
                    ("ID", &|r| text_or(r, "id", "")),
                    ("CODE", &|r| text_or(r, "code", "")),
                    ("NAME", &|r| text_or(r, "name", "")),
                    ("ORIGIN", &|r| text_or(r, "origin", "")),
                    ("ADDRESS", &|r| text_or(r, "address", "")),
                    ("EXPIRES", &|r| text_or(r, "expires_at", "")),
                ],
                "no pending pairing requests; press Pair in the extension, then run this again",
            )?;
        }
        PairCommand::Approve { id, scopes, json } => {
            let scopes = (!scopes.is_empty()).then_some(scopes);
            let approved = client
                .request(
                    "pairing.approve",
                    json!({"request_id": id, "scopes": scopes}),
                )
                .await?;
            if json {
                print_json(&approved)?;
                return Ok(ExitCode::SUCCESS);
            }
            let info = &approved["client"];
            outln!(
                "approved {id}: client {} ({}) with scopes {} for {}",
                info["id"].as_str().unwrap_or_default(),
                info["name"].as_str().unwrap_or_default(),
                join_strings(&info["scopes"]),
                info["origin"].as_str().unwrap_or_default(),
            )?;
        }
        PairCommand::Deny { id, json } => {
            let denied = client
                .request("pairing.deny", json!({"request_id": id}))
                .await?;
            if json {
                print_json(&denied)?;
            } else {
                outln!("denied {id}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
