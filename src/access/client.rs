//! Who is talking to us: the socket's peer, unless that peer is a trusted proxy, in which case
//! the forwarding header is read from the right, skipping trusted proxies, and the first address
//! that is not one is the client. Anything malformed on the way falls back to the peer: a bad
//! header can never make a client someone else, only what the socket says it is.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use actix_web::http::header::HeaderMap;

use super::cidr::{canonical, CidrList};

/// Which header trusted proxies set. A proxy passes on what the client sent in the other one
/// untouched, so reading a header the proxy does not set would let clients choose their address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For` when present, else `Forwarded`.
    Auto,
    XForwardedFor,
    Forwarded,
}

impl FromStr for ProxyHeader {
    type Err = String;

    fn from_str(text: &str) -> Result<ProxyHeader, String> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(ProxyHeader::Auto),
            "x-forwarded-for" => Ok(ProxyHeader::XForwardedFor),
            "forwarded" => Ok(ProxyHeader::Forwarded),
            _ => Err(format!(
                "{text:?} is not one of auto, x-forwarded-for, forwarded"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientAddr {
    pub trusted: CidrList,
    pub header: ProxyHeader,
}

impl ClientAddr {
    /// The client's address for a request that arrived from `peer`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusted.contains(peer) {
            return peer;
        }
        let hops = match self.hops(headers) {
            Some(hops) => hops,
            None => return peer,
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusted.contains(*ip) => client = *ip,
                Some(ip) => return *ip,
                None => return peer,
            }
        }
        // Every hop was a trusted proxy: the farthest one is the client.
        client
    }

    /// The forwarded-for chain, oldest first (`None` for an entry that is not an address);
    /// `None` when no header carries one.
    fn hops(&self, headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
        let xff = || values(headers, "x-forwarded-for").map(|v| xff_hops(&v));
        let fwd = || values(headers, "forwarded").map(|v| forwarded_hops(&v));
        match self.header {
            ProxyHeader::XForwardedFor => xff(),
            ProxyHeader::Forwarded => fwd(),
            ProxyHeader::Auto => xff().or_else(fwd),
        }
    }
}

/// All lines of a header joined as one comma-separated list; `None` if absent. A header that
/// is present but not text is `Some("")`: present, and holding no address, so the choice of
/// header stays with it and the client is the peer.
fn values(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut lines = headers.get_all(name).peekable();
    lines.peek()?;
    let mut out = Vec::new();
    for line in lines {
        match line.to_str() {
            Ok(text) => out.push(text.to_owned()),
            Err(_) => return Some(String::new()),
        }
    }
    Some(out.join(","))
}

fn xff_hops(value: &str) -> Vec<Option<IpAddr>> {
    value.split(',').map(|s| address(s.trim())).collect()
}

/// `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"` (RFC 7239). An element
/// without `for=` is not an address.
fn forwarded_hops(value: &str) -> Vec<Option<IpAddr>> {
    value
        .split(',')
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"'))
            })
        })
        .map(|node| node.and_then(address))
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:80`.
fn address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    text.strip_prefix('[')?
        .strip_suffix(']')?
        .parse()
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn resolver(trusted: &str, header: ProxyHeader) -> ClientAddr {
        ClientAddr {
            trusted: trusted.parse().unwrap(),
            header,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_at_their_word_only() {
        let r = resolver("10.0.0.0/8", ProxyHeader::Auto);
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(r.resolve(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        let none = resolver("", ProxyHeader::Auto);
        assert_eq!(none.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_chain_is_read_from_the_right() {
        let r = resolver("10.0.0.0/8", ProxyHeader::Auto);
        // The client claims 6.6.6.6; the outer proxy appended the real 198.51.100.4, then an
        // inner proxy (10.1.1.1) its own.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.1.1.1")]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("198.51.100.4"));
        // Several header lines form one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.4:5555"),
        ]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("198.51.100.4"));
        // All hops trusted: the farthest.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(r.resolve(ip("10.0.0.2"), &headers(&[])), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_header_in_every_form() {
        let r = resolver("10.0.0.0/8", ProxyHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.1.1.1;by=10.0.0.2"#,
        )]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("2001:db8:cafe::17"));
        // With the header chosen, the other one is not read.
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"));
    }

    #[test]
    fn auto_prefers_x_forwarded_for() {
        let r = resolver("10.0.0.0/8", ProxyHeader::Auto);
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("1.1.1.1"));
        let h = headers(&[("forwarded", "for=2.2.2.2")]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("2.2.2.2"));
    }

    #[test]
    fn malformed_falls_back_to_the_peer() {
        let r = resolver("10.0.0.0/8", ProxyHeader::Auto);
        for bad in [
            "",
            "garbage",
            "1.2.3.4, unknown",
            "1.2.3.999",
            "[::1",
            ",,,",
        ] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"), "{bad:?}");
        }
        for bad in ["for=unknown", "for=_hidden", "proto=http", "for", "=;=,"] {
            let h = headers(&[("forwarded", bad)]);
            assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"), "{bad:?}");
        }
        // Not visible ASCII: not read at all.
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_bytes(b"1.1.1.1\xff").unwrap(),
        );
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"));
        // ... even when the client adds its own Forwarded naming an address it wants to be:
        // the chosen header (X-Forwarded-For is present) decides, and it names no one.
        h.append(
            HeaderName::from_static("forwarded"),
            HeaderValue::from_static("for=10.9.9.9"),
        );
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"));
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static("forwarded"),
            HeaderValue::from_bytes(b"for=1.1.1.1\xff").unwrap(),
        );
        h.append(
            HeaderName::from_static("forwarded"),
            HeaderValue::from_static("for=10.9.9.9"),
        );
        let fwd = resolver("10.0.0.0/8", ProxyHeader::Forwarded);
        assert_eq!(fwd.resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"));
    }
}
