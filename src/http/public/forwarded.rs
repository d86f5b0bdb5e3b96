//! The client address of a request: its peer, or, when the peer is a trusted proxy, the
//! address the proxies forwarded.
//!
//! Only peers inside `public.trusted_proxies` are believed, and only the one header
//! named by `public.proxy_header` is read (`X-Forwarded-For`, or `Forwarded` from
//! RFC 7239), so a client cannot pick the other header to smuggle an address past a
//! proxy that only writes one. The list is walked from the right, the hop nearest to the
//! hub, skipping trusted proxies; the first address outside them is the client, which is
//! what a client cannot forge: every proxy appends the address it received the request
//! from. An entry that is not an address (`unknown`, an obfuscated RFC 7239 identifier,
//! garbage) ends the walk at the last trusted hop. With every hop trusted, the leftmost
//! hop is the client.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::config::ProxyHeader;

/// The proxies whose forwarding header is believed.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ProxyHeader,
}

impl TrustedProxies {
    /// Trusts peers inside `nets`, reading `header` from them.
    pub fn new(nets: Vec<IpNet>, header: ProxyHeader) -> Self {
        Self { nets, header }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match self.header {
            ProxyHeader::XForwardedFor => {
                header_items(headers, &HeaderName::from_static("x-forwarded-for"))
                    .into_iter()
                    .map(|item| item.parse::<IpAddr>().ok())
                    .collect::<Vec<_>>()
            }
            ProxyHeader::Forwarded => header_items(headers, &axum::http::header::FORWARDED)
                .into_iter()
                .map(|element| forwarded_for(&element))
                .collect(),
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(hop) = hop.map(|ip| ip.to_canonical()) else {
                return client;
            };
            client = hop;
            if !self.trusts(hop) {
                return hop;
            }
        }
        client
    }
}

/// The comma-separated items of every `name` header, in order (RFC 9110 section 5.3: a
/// list split over several header lines is the same list joined with commas).
fn header_items(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.trim().to_string())
        .collect()
}

/// The address in the `for` parameter of one RFC 7239 `forwarded-element`
/// (section 4: `for=192.0.2.60`, `for="[2001:db8:cafe::17]:4711"`,
/// `for="192.0.2.43:47011"`); `None` for `unknown`, obfuscated identifiers (section 6.3)
/// or a missing `for`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })?;
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let host = match value.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        _ => value,
    };
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(header: ProxyHeader) -> TrustedProxies {
        TrustedProxies::new(
            vec![
                "127.0.0.1/32".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            header,
        )
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_their_own_address() {
        let p = proxies(ProxyHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(p.client_ip(ip("198.51.100.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let p = proxies(ProxyHeader::XForwardedFor);
        // The client forged the first entry; the proxy appended the real one.
        let h = headers("x-forwarded-for", &["1.2.3.4, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        assert_eq!(
            p.client_ip(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        let all_trusted = headers("x-forwarded-for", &["10.0.0.5, 10.0.0.6"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &all_trusted), ip("10.0.0.5"));
        let garbage = headers("x-forwarded-for", &["203.0.113.9, nonsense, 10.0.0.6"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &garbage), ip("10.0.0.6"));
        let mapped = headers("x-forwarded-for", &["::ffff:203.0.113.7"]);
        assert_eq!(
            p.client_ip(ip("::ffff:127.0.0.1"), &mapped),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn only_the_configured_header_counts() {
        let p = proxies(ProxyHeader::XForwardedFor);
        let h = headers("forwarded", &["for=203.0.113.9"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let p = proxies(ProxyHeader::Forwarded);
        let h = headers(
            "forwarded",
            &["for=\"[2001:db8:cafe::17]:4711\";proto=https, for=198.51.100.17:80;by=10.0.0.1"],
        );
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("198.51.100.17"));
        let h = headers("forwarded", &["for=192.0.2.43, for=unknown"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let h = headers("forwarded", &["proto=https;for=\"[2001:db8::1]\""]);
        assert_eq!(p.client_ip(ip("10.2.3.4"), &h), ip("2001:db8::1"));
    }
}
