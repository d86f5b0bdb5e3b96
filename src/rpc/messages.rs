//! `messages.list` and `project.runs`: a project's stored history, its output lines
//! (with full-text search) and its runs.

use serde::Serialize;
use serde_json::Value;

use super::{Handler, Method, Reply, later};
use crate::app::contexts::MessagesCtx;
use crate::config::Family;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::Scope;
use crate::protocol::{MessagesListParams, Output, ProjectRunsParams, method, parse_params};
use crate::storage::sqlite::{MessageQuery, RunSummary};
use crate::support::timestamp::parse_rfc3339;

/// Bytes of stored lines returned by one `messages.list` page at most; a page stops
/// early (with `has_more`) rather than build a huge response.
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

type Call<'a> = super::Call<'a, MessagesCtx>;

pub(super) const METHODS: &[Method] = &[
    Method::new(
        method::MESSAGES_LIST,
        Some(Scope::ProjectsRead),
        Some(Family::Projects),
        Handler::Messages(list),
    ),
    Method::new(
        method::PROJECT_RUNS,
        Some(Scope::ProjectsRead),
        Some(Family::Projects),
        Handler::Messages(runs),
    ),
];

/// `project.runs` result.
#[derive(Serialize)]
struct Runs {
    runs: Vec<RunSummary>,
    has_more: bool,
}

/// `project.runs`: a page of the project's runs, newest first.
fn runs(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRunsParams = parse_params(params)?;
    call.ctx.projects.get(&p.project_id)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            "limit must be between 1 and 200",
        ));
    }
    let store = call.ctx.store.clone();
    later(async move {
        let (runs, has_more) = store
            .runs(&p.project_id, p.before.as_deref(), limit)
            .await
            .map_err(|err| RpcError::internal("project.runs", &err))?;
        Ok(Runs { runs, has_more })
    })
}

/// `messages.list` result.
#[derive(Serialize)]
struct Page {
    messages: Vec<Output>,
    has_more: bool,
}

fn list(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: MessagesListParams = parse_params(params)?;
    call.ctx.projects.get(&p.project_id)?;
    let limit = p.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            "limit must be between 1 and 1000",
        ));
    }
    let time = |value: Option<String>| {
        value
            .map(|text| parse_rfc3339(&text))
            .transpose()
            .map_err(|err| RpcError::new(ErrorKind::InvalidParams, err))
    };
    if let Some(q) = &p.q
        && (q.trim().is_empty() || q.chars().count() > 256)
    {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            "q must hold a word to search for, at most 256 characters",
        ));
    }
    let query = MessageQuery {
        project_id: p.project_id,
        after_seq: p.after_seq,
        before_seq: p.before_seq,
        since: time(p.since)?,
        until: time(p.until)?,
        kinds: p.kinds.unwrap_or_default(),
        q: p.q,
        limit,
        max_bytes: MAX_PAGE_BYTES,
    };
    let store = call.ctx.store.clone();
    later(async move {
        let page = store
            .messages(&query)
            .await
            .map_err(|err| RpcError::internal("messages.list", &err))?;
        Ok(Page {
            messages: page.messages,
            has_more: page.has_more,
        })
    })
}
