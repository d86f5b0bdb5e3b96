//! What the broker refuses and why: [`EventError`] with its JSON-RPC error kind, and the
//! grammar of event types and subscription patterns ([`check_type`], [`parse_pattern`]).

use serde_json::{Value, json};

use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::events::{
    MAX_CORRELATION_ID_LEN, MAX_IDEMPOTENCY_KEY_CHARS, MAX_REQUEST_TIMEOUT_MS, MAX_TYPE_LEN,
};

/// Why an `event.*` request was refused.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A type or pattern breaks the grammar, or a publish used a wildcard.
    #[error("{value:?} is not {expected}: {reason}")]
    InvalidType {
        /// The offending type as given.
        value: String,
        /// `an event type` or `an event type pattern`.
        expected: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `types` was empty.
    #[error("types must name at least one event type")]
    NoTypes,
    /// The subscription would take the connection past `limits.max_subscriptions`.
    #[error("this connection may hold at most {limit} subscriptions; it holds {total}")]
    TooManySubscriptions {
        /// `limits.max_subscriptions`.
        limit: usize,
        /// Subscriptions the connection holds now.
        total: usize,
    },
    /// The encoded payload is over `limits.max_event_payload_bytes`.
    #[error("the payload is {size} bytes; an event may carry at most {limit}")]
    PayloadTooLarge {
        /// Bytes of the payload as JSON.
        size: usize,
        /// `limits.max_event_payload_bytes`.
        limit: usize,
    },
    /// The connection publishes faster than `limits.event_rate_per_s`.
    #[error("this connection publishes more than {rate} events per second; slow down")]
    RateLimited {
        /// `limits.event_rate_per_s`.
        rate: u32,
    },
    /// A `correlation_id` that is empty or too long.
    #[error("correlation_id must be 1 to {MAX_CORRELATION_ID_LEN} bytes")]
    InvalidCorrelationId,
    /// An `idempotency_key` that is empty, too long or holds a control character.
    #[error(
        "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters without control characters"
    )]
    InvalidIdempotencyKey,
    /// A `timeout_ms` out of range.
    #[error("timeout_ms must be between 1 and {MAX_REQUEST_TIMEOUT_MS}")]
    InvalidTimeout,
    /// The connection already waits for `limits.max_pending_requests` answers.
    #[error("this connection already waits for {limit} event requests, its maximum")]
    TooManyRequests {
        /// `limits.max_pending_requests`.
        limit: usize,
    },
    /// The payload could not be encoded (a `Value` always can).
    #[error("cannot encode the payload")]
    Encode(#[from] serde_json::Error),
    /// No answer to an `event.request` in time.
    #[error("no answer to the event request within {timeout_ms} ms")]
    Timeout {
        /// The id the request carried.
        correlation_id: String,
        /// The timeout that passed.
        timeout_ms: u64,
        /// Subscribers the request reached.
        delivered: usize,
    },
}

impl From<EventError> for RpcError {
    fn from(err: EventError) -> Self {
        let (kind, details) = match &err {
            EventError::InvalidType { value, .. } => {
                (ErrorKind::InvalidEventType, json!({ "type": value }))
            }
            EventError::TooManySubscriptions { limit, total } => (
                ErrorKind::TooManySubscriptions,
                json!({ "limit": limit, "total": total }),
            ),
            EventError::PayloadTooLarge { size, limit } => {
                (ErrorKind::TooLarge, json!({ "size": size, "limit": limit }))
            }
            EventError::RateLimited { .. } => (ErrorKind::RateLimited, Value::Null),
            EventError::NoTypes
            | EventError::InvalidCorrelationId
            | EventError::InvalidIdempotencyKey
            | EventError::InvalidTimeout => (ErrorKind::InvalidParams, Value::Null),
            EventError::TooManyRequests { limit } => {
                (ErrorKind::LimitReached, json!({ "limit": limit }))
            }
            EventError::Timeout {
                correlation_id,
                timeout_ms,
                delivered,
            } => (
                ErrorKind::Timeout,
                json!({ "correlation_id": correlation_id, "timeout_ms": timeout_ms, "delivered": delivered }),
            ),
            EventError::Encode(source) => return RpcError::internal("event payload", source),
        };
        let error = RpcError::new(kind, err.to_string());
        if details.is_null() {
            error
        } else {
            error.with_details(details)
        }
    }
}

/// A parsed subscription pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern<'a> {
    /// `*`: every type.
    All,
    /// `prefix.*`: every type that starts with `prefix.` and has at least one more
    /// segment. Holds the prefix without `.*`.
    Prefix(&'a str),
    /// One exact type.
    Exact(&'a str),
}

const TYPE_RULES: &str = "use 1 to 128 characters of [a-z0-9_.-] in dot-separated, non-empty segments, with * only as the whole last segment";

fn invalid(value: &str, expected: &'static str, reason: &'static str) -> EventError {
    EventError::InvalidType {
        value: value.to_string(),
        expected,
        reason,
    }
}

fn check_segments(text: &str) -> Result<(), &'static str> {
    if text
        .split('.')
        .any(|segment| segment.is_empty() || !segment.bytes().all(is_type_byte))
    {
        return Err(TYPE_RULES);
    }
    Ok(())
}

fn is_type_byte(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
}

/// Parses a subscription pattern: an exact type, `prefix.*` or `*`.
///
/// # Errors
/// [`EventError::InvalidType`] naming the pattern.
pub fn parse_pattern(text: &str) -> Result<Pattern<'_>, EventError> {
    const EXPECTED: &str = "an event type pattern";
    if text.is_empty() || text.len() > MAX_TYPE_LEN {
        return Err(invalid(text, EXPECTED, TYPE_RULES));
    }
    if text == "*" {
        return Ok(Pattern::All);
    }
    let (body, is_prefix) = match text.strip_suffix(".*") {
        Some(prefix) => (prefix, true),
        None => (text, false),
    };
    check_segments(body).map_err(|reason| invalid(text, EXPECTED, reason))?;
    Ok(if is_prefix {
        Pattern::Prefix(body)
    } else {
        Pattern::Exact(body)
    })
}

/// Checks the exact type of a published event.
///
/// # Errors
/// [`EventError::InvalidType`], also for a wildcard.
pub fn check_type(text: &str) -> Result<(), EventError> {
    const EXPECTED: &str = "an event type";
    if text.is_empty() || text.len() > MAX_TYPE_LEN {
        return Err(invalid(text, EXPECTED, TYPE_RULES));
    }
    if text.split('.').any(|segment| segment == "*") {
        return Err(invalid(
            text,
            EXPECTED,
            "events are published with an exact type; wildcards are for subscribing",
        ));
    }
    check_segments(text).map_err(|reason| invalid(text, EXPECTED, reason))
}
