//! The one Host check: which `Host` header values name this hub.
//!
//! A local hub answers to `127.0.0.1:P`, `localhost:P` and `[::1]:P`; a public hub to
//! the names in `public.hosts` and its listening address. Both are a [`HostAllowlist`]
//! of [`HostEntry`]s, checked by [`HostAllowlist::allows`]: case-insensitive, an entry
//! with a port matching only that port, an entry without one matching any port (a
//! proxy in front of a public hub may listen on another). This defeats DNS rebinding: a
//! rebound name still sends its own name as Host (docs/security.md).

use super::origin::{split_port, valid_ipv6_literal, valid_name};

/// A Host header value or allowlist entry, split: `name[:port]` or `[v6][:port]`,
/// lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The host name, IPv4 address or bracketed IPv6 literal, lowercase.
    pub name: String,
    /// The port, when the value names one.
    pub port: Option<u16>,
}

impl HostEntry {
    /// Parses `value` (case-insensitive): a DNS name or IPv4 address of non-empty
    /// labels of letters, digits, `-` and `_` (no trailing dot), or a canonical
    /// bracketed IPv6 address (RFC 5952), then optionally `:` and a port of 1 to 65535
    /// without leading zeros (RFC 9110 section 7.2, `uri-host [ ":" port ]`).
    /// `None` for anything else, including an empty port (`name:`).
    pub fn parse(value: &str) -> Option<Self> {
        let lower = value.to_ascii_lowercase();
        let (name, port) = split_port(&lower)?;
        let name_ok = if name.starts_with('[') {
            valid_ipv6_literal(name)
        } else {
            valid_name(name)
        };
        name_ok.then(|| Self {
            name: name.to_string(),
            port,
        })
    }

    /// `name:port`, with `default_port` when the entry names none.
    pub fn with_port(&self, default_port: u16) -> String {
        format!("{}:{}", self.name, self.port.unwrap_or(default_port))
    }
}

/// The Host values a hub answers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAllowlist {
    entries: Vec<HostEntry>,
}

impl HostAllowlist {
    /// The loopback names of a local hub listening on `port`: `127.0.0.1:P`,
    /// `localhost:P` and `[::1]:P`, each with exactly that port.
    pub fn loopback(port: u16) -> Self {
        Self {
            entries: ["127.0.0.1", "localhost", "[::1]"]
                .into_iter()
                .map(|name| HostEntry {
                    name: name.to_string(),
                    port: Some(port),
                })
                .collect(),
        }
    }

    /// Adds an entry.
    pub fn push(&mut self, entry: HostEntry) {
        self.entries.push(entry);
    }

    /// Adds every entry of `other`.
    pub fn extend(&mut self, other: Self) {
        self.entries.extend(other.entries);
    }

    /// Whether `host`, a request's Host header value, names this hub: it parses as a
    /// [`HostEntry`] and equals an entry, where an entry without a port matches the
    /// name on any port. `None` (a missing or non-UTF-8 Host) fails.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host.and_then(HostEntry::parse) else {
            return false;
        };
        self.entries.iter().any(|entry| {
            entry.name == host.name && (entry.port.is_none() || entry.port == host.port)
        })
    }
}

/// The request's Host header when it is exactly one UTF-8 value.
pub fn host_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(axum::http::header::HOST).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(entries: &[&str]) -> HostAllowlist {
        let mut list = HostAllowlist::default();
        for entry in entries {
            list.push(HostEntry::parse(entry).unwrap());
        }
        list
    }

    #[test]
    fn a_local_hub_answers_to_its_three_loopback_names_on_its_port() {
        let list = HostAllowlist::loopback(3003);
        for good in [
            "127.0.0.1:3003",
            "LOCALHOST:3003",
            "localhost:3003",
            "[::1]:3003",
        ] {
            assert!(list.allows(Some(good)), "{good}");
        }
        for bad in [
            "evil.com",
            "127.0.0.1:3004",
            "127.0.0.1:03003",
            "127.0.0.1:3003.evil.com",
            "localhost",
            "localhost.:3003",
            "localhost:",
            "localhost: 3003",
            "[::1]",
            "::1:3003",
            "[0:0:0:0:0:0:0:1]:3003",
            "127.0.0.1:3003:3003",
            "user@localhost:3003",
            "",
        ] {
            assert!(!list.allows(Some(bad)), "{bad:?}");
        }
        assert!(!list.allows(None));
    }

    #[test]
    fn an_entry_without_a_port_matches_any_port_and_one_with_a_port_only_that() {
        let list = public(&["Hub.Example.com", "api.example.com:8443", "[2001:db8::1]"]);
        for good in [
            "hub.example.com",
            "HUB.EXAMPLE.COM:443",
            "hub.example.com:8443",
            "api.example.com:8443",
            "[2001:db8::1]",
            "[2001:db8::1]:9000",
        ] {
            assert!(list.allows(Some(good)), "{good}");
        }
        for bad in [
            "api.example.com",
            "api.example.com:443",
            "hub.example.com.",
            "hub.example.com.:443",
            "hub.example.com:",
            "hub.example.com:0",
            "evil.hub.example.com",
            "hub.example.com.evil.com",
            "[2001:db8::2]",
            "2001:db8::1",
        ] {
            assert!(!list.allows(Some(bad)), "{bad:?}");
        }
    }

    #[test]
    fn entries_parse_like_hosts() {
        assert_eq!(
            HostEntry::parse("Hub.example.com:8443"),
            Some(HostEntry {
                name: "hub.example.com".into(),
                port: Some(8443)
            })
        );
        assert_eq!(
            HostEntry::parse("[::1]").unwrap().with_port(443),
            "[::1]:443"
        );
        assert_eq!(
            HostEntry::parse("[::1]:8443").unwrap().with_port(443),
            "[::1]:8443"
        );
        assert_eq!(
            HostEntry::parse("hub.test").unwrap().with_port(443),
            "hub.test:443"
        );
        for bad in [
            "", "a b", "a/b", "[::1", "a:99999", "a:-1", "a..b", ".a", "a.",
        ] {
            assert_eq!(HostEntry::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn several_host_headers_are_none() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("host", "127.0.0.1:3003".parse().unwrap());
        assert_eq!(host_header(&headers), Some("127.0.0.1:3003"));
        headers.append("host", "evil.com".parse().unwrap());
        assert_eq!(host_header(&headers), None);
    }
}
