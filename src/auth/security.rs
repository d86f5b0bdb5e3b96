//! Who may talk to the hub: Host and Origin allowlists, bearer tokens, one-time login codes.
//!
//! Any web page that could reach the hub could run code on the user's machine through an
//! agent, so every request passes, in order:
//! 1. the **Host allowlist** (`127.0.0.1:P`, `localhost:P`, `[::1]:P`), which defeats DNS
//!    rebinding: a rebound name still sends its own name as Host;
//! 2. the **Origin allowlist**, exact string match (RFC 6454 serialisation), where `null`
//!    and near misses such as `http://localhost:P.evil.com` fail;
//! 3. for the WebSocket, a **token**: `Authorization: Bearer <token>`, a
//!    `Sec-WebSocket-Protocol` entry `semantest-hub.token.<token>`, or the dashboard's
//!    session cookie. Never a URL parameter, which would end up in logs and history.
//!    The cookie counts only with an Origin of the dashboard itself
//!    ([`dashboard_origins`]): cookies ignore the port, so a browser attaches it to a
//!    WebSocket opened by any page on any loopback port.
//!
//! Tokens are 256-bit values from the OS random generator (`getrandom`), shown to the user
//! as 64 hex digits. Only their SHA-256 hashes are compared, in constant time (`subtle`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::protocol::TOKEN_SUBPROTOCOL_PREFIX;

/// The dashboard's session cookie (HttpOnly, SameSite=Strict, Path=/).
pub const SESSION_COOKIE: &str = "semantest_session";

/// How long a one-time login code stays valid.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(120);

/// A fresh 256-bit token from the OS random generator, as 64 lowercase hex digits.
///
/// # Panics
/// When the OS has no random source, which leaves nothing safe to do.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random generator is unavailable");
    hex::encode(bytes)
}

/// SHA-256 of a token: the only form the hub stores or compares.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time comparison of two token hashes.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// The domain-separation label of the signature challenge, version 2.
pub const CHALLENGE_LABEL: &str = "semantest-signature:v2";

/// Proof for the signature challenge (docs/security.md): lowercase hex of
/// HMAC-SHA256 (RFC 2104) keyed with the SHA-256 of the client's token, over
/// `"semantest-signature:v2\n" + nonce + "\n" + client + "\n" + endpoint`.
///
/// `endpoint` is the `host:port` the connection reached, as the hub sees it from the
/// socket's local address and as the client knows it from the address it contacted;
/// binding the proof to it (channel binding in the spirit of RFC 5929 and RFC 9266,
/// with the endpoint as the binding) makes a proof relayed from another port useless.
/// The hub refuses nonces and client ids containing a newline, so the fields cannot
/// shift into one another.
pub fn challenge_proof(token_hash: &[u8; 32], nonce: &str, client: &str, endpoint: &str) -> String {
    hex::encode(
        challenge_mac(token_hash, nonce, client, endpoint)
            .finalize()
            .into_bytes(),
    )
}

/// Whether `proof` (lowercase or uppercase hex) is the [`challenge_proof`] for these
/// fields, compared in constant time (`Mac::verify_slice`). A client calls this with the
/// endpoint *it* contacted, never one the server names.
pub fn verify_challenge_proof(
    token_hash: &[u8; 32],
    nonce: &str,
    client: &str,
    endpoint: &str,
    proof: &str,
) -> bool {
    let Ok(proof) = hex::decode(proof) else {
        return false;
    };
    challenge_mac(token_hash, nonce, client, endpoint)
        .verify_slice(&proof)
        .is_ok()
}

fn challenge_mac(token_hash: &[u8; 32], nonce: &str, client: &str, endpoint: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token_hash).expect("HMAC takes any key length");
    for (i, part) in [CHALLENGE_LABEL, nonce, client, endpoint]
        .iter()
        .enumerate()
    {
        if i > 0 {
            mac.update(b"\n");
        }
        mac.update(part.as_bytes());
    }
    mac
}

/// The request's Origin when it has exactly one UTF-8 Origin header.
pub fn single_origin(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::ORIGIN).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// The Host header values the hub answers to, for the port it listens on.
pub fn allowed_hosts(port: u16) -> Vec<String> {
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ]
}

/// The dashboard's origins: the hub's own `http://127.0.0.1:P`, `http://localhost:P`
/// and `http://[::1]:P`. The desktop app's window loads the dashboard from the hub too
/// (`http://127.0.0.1:P`), so these are its origins as well; Tauri's own
/// `tauri://localhost` and `http://tauri.localhost` are not, since every Tauri 2 app on
/// the machine shares them. These are always allowed, and they are the only origins the
/// session cookie counts from.
pub fn dashboard_origins(port: u16) -> Vec<String> {
    allowed_hosts(port)
        .iter()
        .map(|host| format!("http://{host}"))
        .collect()
}

/// Whether the request has exactly one Origin header and it is one of `dashboard`
/// (exact match): the condition for the session cookie to count. A request without an
/// Origin is not the dashboard, whose browser always sends one on a WebSocket and a POST.
pub fn from_dashboard(headers: &HeaderMap, dashboard: &[String]) -> bool {
    single_origin(headers).is_some_and(|origin| dashboard.iter().any(|d| d == origin))
}

/// The `Set-Cookie` value for a session: HttpOnly, SameSite=Strict, Path=/, living
/// `max_age_s` seconds in the browser (RFC 6265 section 4.1).
pub fn session_cookie_header(session: &str, max_age_s: u64) -> String {
    format!("{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}")
}

/// The `Set-Cookie` value that deletes the session cookie (an empty value, `Max-Age=0`).
pub fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Whether the request's Host is on the allowlist. A missing or non-UTF-8 Host fails.
pub fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|host| {
            allowed
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host))
        })
}

/// The verdict on a request's Origin header.
#[derive(Debug, PartialEq, Eq)]
pub enum OriginCheck {
    /// No Origin: a non-browser client, which still needs a token.
    Absent,
    /// An Origin on the allowlist.
    Allowed,
    /// Any other Origin, including `null` and malformed values.
    Denied,
}

/// Checks the Origin header against `allowed` by exact match.
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> OriginCheck {
    let mut values = headers.get_all(header::ORIGIN).iter();
    let Some(value) = values.next() else {
        return OriginCheck::Absent;
    };
    if values.next().is_some() {
        return OriginCheck::Denied;
    }
    match value.to_str() {
        Ok(origin) if allowed.iter().any(|allowed| allowed == origin) => OriginCheck::Allowed,
        _ => OriginCheck::Denied,
    }
}

/// Where a presented credential came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bearer token (header or subprotocol).
    Token(String),
    /// A dashboard session cookie value.
    Session(String),
}

/// Finds the credential on a request: `Authorization: Bearer`, then a
/// `semantest-hub.token.<token>` subprotocol, then the session cookie.
pub fn extract_credential(headers: &HeaderMap) -> Option<Credential> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    {
        return Some(Credential::Token(token.trim().to_string()));
    }
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let Ok(value) = value.to_str() else { continue };
        if let Some(token) = value
            .split(',')
            .map(str::trim)
            .find_map(|protocol| protocol.strip_prefix(TOKEN_SUBPROTOCOL_PREFIX))
        {
            return Some(Credential::Token(token.to_string()));
        }
    }
    session_cookie(headers).map(Credential::Session)
}

/// The value of the session cookie, if present (RFC 6265 section 5.4 `Cookie` syntax).
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// One-time dashboard login codes, kept in memory only: each is valid once, for
/// [`LOGIN_CODE_TTL`]. Stores hashes, never the codes.
#[derive(Debug, Default)]
pub struct LoginCodes {
    // A std Mutex: held for a map lookup, never across an await.
    codes: Mutex<HashMap<[u8; 32], Instant>>,
}

impl LoginCodes {
    /// Issues a fresh code.
    pub fn issue(&self) -> String {
        let code = new_token();
        let mut codes = self.codes.lock().expect("login codes lock");
        let now = Instant::now();
        codes.retain(|_, expires| *expires > now);
        codes.insert(token_hash(&code), now + LOGIN_CODE_TTL);
        code
    }

    /// Consumes a code: true once for a code issued less than [`LOGIN_CODE_TTL`] ago.
    pub fn redeem(&self, code: &str) -> bool {
        let hash = token_hash(code);
        let mut codes = self.codes.lock().expect("login codes lock");
        // Constant time per entry, so timing does not tell how close a guess came.
        let found = codes
            .keys()
            .find(|stored| hashes_equal(stored, &hash))
            .copied();
        match found.and_then(|key| codes.remove(&key)) {
            Some(expires) => expires > Instant::now(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn tokens_are_256_bit_hex_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(hashes_equal(&token_hash(&a), &token_hash(&a)));
        assert!(!hashes_equal(&token_hash(&a), &token_hash(&b)));
    }

    #[test]
    fn host_allowlist_is_exact() {
        let allowed = allowed_hosts(3003);
        assert!(host_allowed(
            &headers(&[("host", "127.0.0.1:3003")]),
            &allowed
        ));
        assert!(host_allowed(
            &headers(&[("host", "LOCALHOST:3003")]),
            &allowed
        ));
        assert!(host_allowed(&headers(&[("host", "[::1]:3003")]), &allowed));
        for bad in [
            "evil.com",
            "127.0.0.1:3004",
            "localhost",
            "127.0.0.1:3003.evil.com",
            "",
        ] {
            assert!(!host_allowed(&headers(&[("host", bad)]), &allowed), "{bad}");
        }
        assert!(!host_allowed(&HeaderMap::new(), &allowed));
    }

    #[test]
    fn origin_allowlist_rejects_null_and_near_misses() {
        let allowed = dashboard_origins(3003);
        assert_eq!(
            check_origin(&HeaderMap::new(), &allowed),
            OriginCheck::Absent
        );
        assert_eq!(
            check_origin(&headers(&[("origin", "http://127.0.0.1:3003")]), &allowed),
            OriginCheck::Allowed
        );
        for bad in [
            "null",
            "http://127.0.0.1:3003/",
            "http://127.0.0.1:30031",
            "https://127.0.0.1:3003",
            "http://localhost:3003.evil.com",
            "http://evil.com",
            "tauri://localhost",
            "http://tauri.localhost",
        ] {
            assert_eq!(
                check_origin(&headers(&[("origin", bad)]), &allowed),
                OriginCheck::Denied,
                "{bad}"
            );
        }
        let two = headers(&[
            ("origin", "http://127.0.0.1:3003"),
            ("origin", "http://evil.com"),
        ]);
        assert_eq!(check_origin(&two, &allowed), OriginCheck::Denied);
    }

    #[test]
    fn only_the_dashboards_own_origin_is_the_dashboard() {
        let dashboard = dashboard_origins(3003);
        assert!(from_dashboard(
            &headers(&[("origin", "http://localhost:3003")]),
            &dashboard
        ));
        for other in [
            &[][..],
            &[("origin", "http://127.0.0.1:5173")][..],
            &[("origin", "chrome-extension://abc")][..],
            &[("origin", "null")][..],
            &[
                ("origin", "http://127.0.0.1:3003"),
                ("origin", "http://127.0.0.1:3003"),
            ][..],
        ] {
            assert!(!from_dashboard(&headers(other), &dashboard), "{other:?}");
        }
    }

    #[test]
    fn credentials_from_header_subprotocol_or_cookie() {
        assert_eq!(
            extract_credential(&headers(&[("authorization", "Bearer abc")])),
            Some(Credential::Token("abc".into()))
        );
        assert_eq!(
            extract_credential(&headers(&[(
                "sec-websocket-protocol",
                "semantest-hub.v1, semantest-hub.token.def"
            )])),
            Some(Credential::Token("def".into()))
        );
        assert_eq!(
            extract_credential(&headers(&[("cookie", "a=1; semantest_session=xyz")])),
            Some(Credential::Session("xyz".into()))
        );
        assert_eq!(
            extract_credential(&headers(&[("authorization", "Basic abc")])),
            None
        );
    }

    #[test]
    fn login_codes_work_once() {
        let codes = LoginCodes::default();
        let code = codes.issue();
        assert!(!codes.redeem("not-a-code"));
        assert!(codes.redeem(&code));
        assert!(!codes.redeem(&code));
    }

    #[test]
    fn challenge_proof_binds_token_nonce_client_and_endpoint() {
        let hash = token_hash("t");
        let proof = challenge_proof(&hash, "n", "owner", "127.0.0.1:3003");
        assert_eq!(
            proof,
            challenge_proof(&hash, "n", "owner", "127.0.0.1:3003")
        );
        assert_eq!(proof.len(), 64);
        for other in [
            challenge_proof(&hash, "m", "owner", "127.0.0.1:3003"),
            challenge_proof(&hash, "n", "cl_1", "127.0.0.1:3003"),
            challenge_proof(&hash, "n", "owner", "127.0.0.1:3004"),
            challenge_proof(&token_hash("u"), "n", "owner", "127.0.0.1:3003"),
        ] {
            assert_ne!(proof, other);
        }
        // The message is exactly label, nonce, client, endpoint joined by newlines.
        let mut mac = Hmac::<Sha256>::new_from_slice(&hash).unwrap();
        mac.update(b"semantest-signature:v2\nn\nowner\n127.0.0.1:3003");
        assert_eq!(proof, hex::encode(mac.finalize().into_bytes()));
        assert!(verify_challenge_proof(
            &hash,
            "n",
            "owner",
            "127.0.0.1:3003",
            &proof
        ));
        for (nonce, endpoint, proof) in [
            ("m", "127.0.0.1:3003", proof.as_str()),
            ("n", "127.0.0.1:3004", proof.as_str()),
            ("n", "127.0.0.1:3003", &proof[..62]),
            ("n", "127.0.0.1:3003", "not hex"),
            ("n", "127.0.0.1:3003", ""),
        ] {
            assert!(!verify_challenge_proof(
                &hash, nonce, "owner", endpoint, proof
            ));
        }
    }
}
