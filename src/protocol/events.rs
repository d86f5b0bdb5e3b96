//! Event routing's wire types: the `event.*` params and results and the `event`
//! notification.
//!
//! Data only, like the rest of [`crate::protocol`]; the routing is in [`crate::pubsub::broker`],
//! the reference with examples in `docs/protocol.md` ("Event routing"). The golden tests
//! below compare every shape with the fixtures in `tests/fixtures/events/`, which the
//! JavaScript SDK's tests read too, so both sides are pinned to the same bytes.
//!
//! Type syntax follows NATS subjects (<https://docs.nats.io/nats-concepts/subjects>):
//! dot-separated segments, a trailing `*` segment for "one or more further segments"
//! (NATS' `>`), and `*` alone for every type.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::protocol::error::RpcError;

/// Method and notification names of event routing.
pub mod method {
    /// Request: receive events of the given types → `{subscribed, total}`.
    pub const EVENT_SUBSCRIBE: &str = "event.subscribe";
    /// Request: stop receiving events of the given types → `{unsubscribed, total}`.
    pub const EVENT_UNSUBSCRIBE: &str = "event.unsubscribe";
    /// Request: send an event to every other subscriber of its type → `{delivered, seq}`.
    pub const EVENT_PUBLISH: &str = "event.publish";
    /// Request: publish with a fresh correlation id and wait for the first answer.
    pub const EVENT_REQUEST: &str = "event.request";
    /// Notification: one event delivered to a subscriber.
    pub const EVENT: &str = "event";
}

/// Longest event type or pattern, in bytes (all allowed characters are ASCII).
pub const MAX_TYPE_LEN: usize = 128;
/// Longest client-chosen `correlation_id`, in bytes.
pub const MAX_CORRELATION_ID_LEN: usize = 128;
/// Longest `idempotency_key`, in characters (Unicode scalar values).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
/// How long the hub remembers an `idempotency_key`, in seconds.
pub const IDEMPOTENCY_WINDOW_S: u64 = 600;
/// `event.request` timeout when none is given, in milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5000;
/// Longest `event.request` timeout, in milliseconds.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 60_000;

/// `event.subscribe` and `event.unsubscribe` params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypesParams {
    /// Exact types (`probe.click`), prefix patterns (`probe.*`) or `*`.
    pub types: Vec<String>,
}

/// `event.publish` params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishParams {
    /// The event's exact type; no wildcard.
    #[serde(rename = "type")]
    pub kind: String,
    /// Any JSON value, forwarded as it is.
    pub payload: Value,
    /// Set when this event answers an `event.request` (the id it carried), or to let
    /// subscribers pair events up; 1 to 128 bytes.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Names this publish so that a resend (after a lost response) is delivered once:
    /// 1 to 128 characters, no control characters. A repeat from the same client
    /// identity within [`IDEMPOTENCY_WINDOW_S`] answers with the first result.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `event.request` params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestParams {
    /// The request event's exact type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Any JSON value.
    pub payload: Value,
    /// How long to wait for an answer, 1..=60000 ms; default 5000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// One event as delivered: the params of the `event` notification, and (without
/// `dropped`) the result of `event.request`; between instances, the message body on
/// the backplane.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// The exact type it was published with.
    #[serde(rename = "type")]
    pub kind: String,
    /// The publisher's payload, byte for byte as the hub re-encoded it once.
    pub payload: Box<RawValue>,
    /// The publisher's correlation id, or the one the hub generated for `event.request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The publishing connection, `conn-<id>`.
    pub from: String,
    /// Position in the publisher's sequence, from 1; one publisher's events arrive in
    /// this order.
    pub seq: u64,
    /// When the hub accepted the event, RFC 3339 with milliseconds, UTC.
    pub ts: String,
    /// Events this subscriber lost (its queue was full) since its previous delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
}

/// `event.subscribe` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscribeResult {
    /// The types asked for, without duplicates, in the order given.
    pub subscribed: Vec<String>,
    /// The connection's subscriptions now.
    pub total: usize,
}

/// `event.unsubscribe` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnsubscribeResult {
    /// The types that were subscribed and no longer are.
    pub unsubscribed: Vec<String>,
    /// The connection's subscriptions now.
    pub total: usize,
}

/// `event.publish` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PublishResult {
    /// Subscribers whose queue took the event, plus 1 when it answered a waiting
    /// `event.request`.
    pub delivered: usize,
    /// The event's `seq`.
    pub seq: u64,
}

/// The connection id as it appears in `from`: `conn-<id>`. A string, so that hubs in a
/// cluster may use ids of another form.
pub fn connection_name(connection_id: u64) -> String {
    format!("conn-{connection_id}")
}

/// Serializes a result for the dispatcher.
///
/// # Errors
/// `INTERNAL` if serialization fails, which the types above cannot.
pub fn to_result<T: Serialize>(value: &T) -> Result<Value, RpcError> {
    serde_json::to_value(value).map_err(|err| RpcError::internal("event result", &err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::{ErrorKind, RpcError};
    use crate::protocol::{RequestId, error_response, notification, response};
    use serde_json::json;

    /// The fixture `name` from `tests/fixtures/events/`, shared with the JavaScript SDK.
    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/events")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    fn frame(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn event(dropped: Option<u64>) -> Event {
        Event {
            kind: "probe.click".into(),
            payload: RawValue::from_string(r#"{"x":10,"y":20}"#.into()).unwrap(),
            correlation_id: None,
            from: connection_name(7),
            seq: 42,
            ts: "2026-01-02T03:04:05.678Z".into(),
            dropped,
        }
    }

    #[test]
    fn event_notification_golden() {
        let text = notification(method::EVENT, &event(None));
        assert_eq!(
            text,
            r#"{"jsonrpc":"2.0","method":"event","params":{"type":"probe.click","payload":{"x":10,"y":20},"from":"conn-7","seq":42,"ts":"2026-01-02T03:04:05.678Z"}}"#
        );
        assert_eq!(frame(&text), fixture("event.json"));
        let text = notification(method::EVENT, &event(Some(3)));
        assert_eq!(frame(&text), fixture("event-dropped.json"));
    }

    #[test]
    fn request_and_answer_golden() {
        let request: RequestParams =
            serde_json::from_value(fixture("request.json")["params"].clone()).unwrap();
        assert_eq!(request.kind, "page.query");
        assert_eq!(request.timeout_ms, Some(2000));
        let answer: PublishParams =
            serde_json::from_value(fixture("answer-publish.json")["params"].clone()).unwrap();
        assert_eq!(
            answer.correlation_id.as_deref(),
            Some("0b5e9f0e-3f7c-4a39-9d8e-2f0d2c1a7b61")
        );
        let delivered = Event {
            kind: "page.query".into(),
            payload: RawValue::from_string(r#"{"selector":"h1"}"#.into()).unwrap(),
            correlation_id: answer.correlation_id.clone(),
            from: connection_name(3),
            seq: 9,
            ts: "2026-01-02T03:04:05.600Z".into(),
            dropped: None,
        };
        assert_eq!(
            frame(&notification(method::EVENT, &delivered)),
            fixture("request-event.json")
        );
        let answered = Event {
            kind: answer.kind,
            payload: RawValue::from_string(answer.payload.to_string()).unwrap(),
            correlation_id: answer.correlation_id,
            from: connection_name(5),
            seq: 1,
            ts: "2026-01-02T03:04:05.700Z".into(),
            dropped: None,
        };
        let result = to_result(&answered).unwrap();
        assert_eq!(
            frame(&response(&RequestId::Number(4), &result)),
            fixture("request-result.json")
        );
    }

    #[test]
    fn results_golden() {
        let subscribe: TypesParams =
            serde_json::from_value(fixture("subscribe.json")["params"].clone()).unwrap();
        assert_eq!(subscribe.types, ["probe.*", "page.loaded", "*"]);
        let result = SubscribeResult {
            subscribed: subscribe.types,
            total: 3,
        };
        assert_eq!(
            frame(&response(
                &RequestId::Number(1),
                &to_result(&result).unwrap()
            )),
            fixture("subscribe-result.json")
        );
        let result = UnsubscribeResult {
            unsubscribed: vec!["*".into()],
            total: 2,
        };
        assert_eq!(
            frame(&response(
                &RequestId::Number(2),
                &to_result(&result).unwrap()
            )),
            fixture("unsubscribe-result.json")
        );
        let publish: PublishParams =
            serde_json::from_value(fixture("publish.json")["params"].clone()).unwrap();
        assert_eq!(publish.kind, "probe.click");
        assert_eq!(publish.payload, json!({"x": 10, "y": 20}));
        let result = PublishResult {
            delivered: 10,
            seq: 42,
        };
        assert_eq!(
            frame(&response(
                &RequestId::Number(3),
                &to_result(&result).unwrap()
            )),
            fixture("publish-result.json")
        );
    }

    #[test]
    fn errors_golden() {
        let cases = [
            (
                RpcError::new(
                    ErrorKind::InvalidEventType,
                    "\"Probe.*.x\" is not an event type: ...",
                )
                .with_details(json!({"type": "Probe.*.x"})),
                "error-invalid-type.json",
            ),
            (
                RpcError::new(ErrorKind::TooManySubscriptions, "...")
                    .with_details(json!({"limit": 100, "total": 100})),
                "error-too-many-subscriptions.json",
            ),
            (
                RpcError::new(ErrorKind::Timeout, "...").with_details(json!({
                    "correlation_id": "0b5e9f0e-3f7c-4a39-9d8e-2f0d2c1a7b61",
                    "timeout_ms": 2000,
                    "delivered": 1
                })),
                "error-timeout.json",
            ),
        ];
        for (error, name) in cases {
            let mut expected = fixture(name);
            // The message is for people and may change; the rest is pinned.
            let mut actual = frame(&error_response(Some(&RequestId::Number(5)), &error));
            actual["error"]["message"] = Value::Null;
            expected["error"]["message"] = Value::Null;
            assert_eq!(actual, expected, "{name}");
        }
    }

    #[test]
    fn params_refuse_unknown_fields_and_need_a_payload() {
        let bad = [
            json!({"type": "a", "payload": 1, "correlationId": "x"}),
            json!({"type": "a"}),
            json!({"payload": 1}),
        ];
        for params in bad {
            assert!(
                serde_json::from_value::<PublishParams>(params.clone()).is_err(),
                "{params}"
            );
        }
        let null: PublishParams =
            serde_json::from_value(json!({"type": "a", "payload": null})).unwrap();
        assert!(null.payload.is_null());
    }
}
