//! The one Origin validator: which strings are serialized origins the hub can match.
//!
//! Every origin the hub stores or compares passes [`parse_origin`] first: the
//! `allowed_origins` settings, the origin a client token is bound to, and the extension
//! origin of a pairing request. Matching itself is exact string equality against the
//! request's `Origin` header, so a stored origin must be written exactly as a browser
//! serializes it (RFC 6454 section 6.2, the WHATWG URL standard's host serializer):
//! lowercase scheme and host, no default port, no trailing slash. A value a browser can
//! never send is refused when it is configured, rather than silently never matching.

use std::net::Ipv6Addr;

/// The schemes of browser extension origins: Chrome and Chromium browsers, Firefox,
/// Safari.
pub const EXTENSION_SCHEMES: [&str; 3] =
    ["chrome-extension", "moz-extension", "safari-web-extension"];

/// A serialized origin, checked by [`parse_origin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The scheme, lowercase, e.g. `https` or `chrome-extension`.
    pub scheme: &'a str,
    /// The host: a DNS name or IPv4 address, a bracketed IPv6 literal, or an extension id.
    pub host: &'a str,
    /// The port, when the origin names one.
    pub port: Option<u16>,
}

impl Origin<'_> {
    /// Whether this is a browser extension's origin ([`EXTENSION_SCHEMES`]).
    pub fn is_extension(&self) -> bool {
        EXTENSION_SCHEMES.contains(&self.scheme)
    }
}

/// Why a string is not a serialized origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `null`: an opaque origin (sandboxed frames, `file:` pages), which every such page
    /// shares, so it identifies nobody.
    #[error("null is the opaque origin, shared by every sandboxed page")]
    Null,
    /// No `scheme://`, or a scheme with characters RFC 3986 section 3.1 does not allow
    /// or in uppercase, which browsers never send.
    #[error("the scheme must be lowercase letters, digits, +, - or . followed by ://")]
    Scheme,
    /// An extension id that is not 1 to 128 letters, digits, `-`, `_` or `.`, or an
    /// extension origin with a port.
    #[error(
        "an extension origin is scheme://<id> with an id of 1 to 128 letters, digits, -, _ or ."
    )]
    ExtensionId,
    /// A host that is empty, longer than 253 characters, uppercase, with an empty label
    /// (a leading, doubled or trailing dot), a character outside letters, digits, `-`, `_`,
    /// or a bracketed value that is not an IPv6 address in its shortest form.
    #[error("the host must be a lowercase name, an IPv4 address or a bracketed IPv6 address")]
    Host,
    /// A port that is not 1 to 65535 in plain decimal, or the scheme's default port,
    /// which browsers leave out.
    #[error("the port must be 1 to 65535, without leading zeros, and not the scheme's default")]
    Port,
}

/// The default port of a scheme with one, which a browser leaves out of the origin.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// A decimal port as browsers and HTTP write it: 1 to 5 digits, no sign, no leading
/// zero, 1 to 65535.
pub(crate) fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty()
        || digits.len() > 5
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok().filter(|&p| p != 0)
}

/// Whether `name` is a lowercase DNS name or IPv4 address with no empty label: labels of
/// letters, digits, `-` and `_` (which browsers keep in hosts), at most 253 characters in all. A trailing dot (the
/// fully-qualified form) is refused: `example.com.` and `example.com` are different
/// origins and hosts, and nothing the hub serves answers to the dotted form.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b))
        })
}

/// Whether `literal` (with its brackets) is an IPv6 address written as its canonical
/// text (RFC 5952), the only form a browser serializes.
pub(crate) fn valid_ipv6_literal(literal: &str) -> bool {
    literal
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok().map(|ip| (inner, ip)))
        .is_some_and(|(inner, ip)| ip.to_string() == inner)
}

/// Checks that `origin` is a serialized origin `scheme://host[:port]`.
///
/// Extension origins (`chrome-extension://<id>`, `moz-extension://<uuid>`,
/// `safari-web-extension://<uuid>`) take an id of 1 to 128 letters (either case, Safari
/// ids are uppercase), digits, `-`, `_` or `.`, and no port. Other schemes take a
/// lowercase host name or IPv4 address, or a canonical bracketed IPv6 address, and an
/// optional port that is not the scheme's default. No path, query, fragment, userinfo
/// or whitespace.
///
/// # Errors
/// [`OriginError`] says which part is wrong.
pub fn parse_origin(origin: &str) -> Result<Origin<'_>, OriginError> {
    if origin == "null" {
        return Err(OriginError::Null);
    }
    let (scheme, rest) = origin.split_once("://").ok_or(OriginError::Scheme)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b));
    if !scheme_ok {
        return Err(OriginError::Scheme);
    }
    if EXTENSION_SCHEMES.contains(&scheme) {
        let id_ok = (1..=128).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        return if id_ok {
            Ok(Origin {
                scheme,
                host: rest,
                port: None,
            })
        } else {
            Err(OriginError::ExtensionId)
        };
    }
    let (host, port) = split_port(rest).ok_or(OriginError::Port)?;
    let host_ok = if host.starts_with('[') {
        valid_ipv6_literal(host)
    } else {
        valid_name(host)
    };
    if !host_ok {
        return Err(OriginError::Host);
    }
    if port.is_some() && port == default_port(scheme) {
        return Err(OriginError::Port);
    }
    Ok(Origin { scheme, host, port })
}

/// `authority` split into host and port: `name`, `name:port`, `[v6]`, `[v6]:port`.
/// `None` when a `:` follows the host and what follows is not a valid port.
pub(crate) fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let port_start = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) if end + 1 == authority.len() => return Some((authority, None)),
            Some(end) if authority[end + 1..].starts_with(':') => end + 1,
            // Something other than a port after the literal: let the host check refuse it.
            Some(_) | None => return Some((authority, None)),
        }
    } else {
        match authority.find(':') {
            Some(colon) => colon,
            None => return Some((authority, None)),
        }
    };
    let port = parse_port(&authority[port_start + 1..])?;
    Some((&authority[..port_start], Some(port)))
}

/// Whether `origin` is a browser extension's origin (see [`parse_origin`]).
pub fn is_extension_origin(origin: &str) -> bool {
    parse_origin(origin).is_ok_and(|o| o.is_extension())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_serialized_origins_pass() {
        for (good, host, port) in [
            (
                "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
                "abcdefghijklmnopabcdefghijklmnop",
                None,
            ),
            (
                "moz-extension://6f1b7c3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f",
                "6f1b7c3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f",
                None,
            ),
            ("safari-web-extension://ABC-123", "ABC-123", None),
            (
                "https://hub.example.com:8443",
                "hub.example.com",
                Some(8443),
            ),
            ("https://app.example.com", "app.example.com", None),
            ("http://127.0.0.1:3003", "127.0.0.1", Some(3003)),
            ("http://localhost:3003", "localhost", Some(3003)),
            ("http://[::1]:3", "[::1]", Some(3)),
            ("http://[2001:db8::1]", "[2001:db8::1]", None),
            ("tauri://localhost", "localhost", None),
            ("https://a_b.example", "a_b.example", None),
        ] {
            let origin = parse_origin(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!((origin.host, origin.port), (host, port), "{good}");
        }
    }

    #[test]
    fn what_a_browser_never_sends_is_refused() {
        for (bad, why) in [
            ("null", OriginError::Null),
            ("abc", OriginError::Scheme),
            ("://a", OriginError::Scheme),
            ("HTTP://a", OriginError::Scheme),
            ("Chrome-Extension://abc", OriginError::Scheme),
            ("https://", OriginError::Host),
            ("https://a/", OriginError::Host),
            ("https://a b", OriginError::Host),
            ("https://App.example.com", OriginError::Host),
            ("https://app.example.com.", OriginError::Host),
            ("https://.example.com", OriginError::Host),
            ("https://a..b", OriginError::Host),
            ("https://user@a", OriginError::Host),
            ("https://a?x", OriginError::Host),
            ("https://a:", OriginError::Port),
            ("https://a:0", OriginError::Port),
            ("https://a:08443", OriginError::Port),
            ("https://a:65536", OriginError::Port),
            ("https://a:+1", OriginError::Port),
            ("https://a:1:2", OriginError::Port),
            ("https://a:443", OriginError::Port),
            ("http://a:80", OriginError::Port),
            ("http://::1:3003", OriginError::Port),
            ("http://[::1", OriginError::Host),
            ("http://[::1]x", OriginError::Host),
            ("http://[0:0:0:0:0:0:0:1]:3003", OriginError::Host),
            ("http://[::G]:3003", OriginError::Host),
            ("http://[::1]:", OriginError::Port),
            ("chrome-extension://", OriginError::ExtensionId),
            ("chrome-extension://abc/", OriginError::ExtensionId),
            ("chrome-extension://abc:1", OriginError::ExtensionId),
            ("moz-extension://a b", OriginError::ExtensionId),
            ("chrome-extension://abc\u{0}", OriginError::ExtensionId),
        ] {
            assert_eq!(parse_origin(bad), Err(why), "{bad:?}");
        }
        let long = format!("chrome-extension://{}", "a".repeat(129));
        assert_eq!(parse_origin(&long), Err(OriginError::ExtensionId));
        let long = format!("https://{}.com", "a".repeat(250));
        assert_eq!(parse_origin(&long), Err(OriginError::Host));
    }

    #[test]
    fn extension_origins_are_the_three_extension_schemes() {
        assert!(is_extension_origin("chrome-extension://abc"));
        assert!(is_extension_origin(
            "moz-extension://6f1b7c3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f"
        ));
        assert!(is_extension_origin("safari-web-extension://ABC-123"));
        for other in [
            "https://abc",
            "null",
            "chrome-extension://abc:1",
            "chrome://settings",
            "extension://abc",
        ] {
            assert!(!is_extension_origin(other), "{other}");
        }
    }
}
