//! The JSON-RPC envelope parser on any text: never panics; a refusal always answers
//! with a JSON-RPC error object, and every reply it leads to is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use semantest_hub::protocol::{Incoming, error_response, parse_incoming, response};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reply = match parse_incoming(text) {
        Ok(Incoming::Request { id, .. }) => response(&id, &serde_json::Value::Null),
        Ok(Incoming::Notification { .. }) => return,
        Err(envelope) => {
            let reply = error_response(envelope.id.as_ref(), &envelope.error);
            assert!(
                reply.contains("\"error\""),
                "refusal without error: {reply}"
            );
            reply
        }
    };
    serde_json::from_str::<serde_json::Value>(&reply).expect("the reply is valid JSON");
});
