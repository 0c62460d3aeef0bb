//! The outbound guard: which upstream base URLs an owner may point a key at.
//!
//! Private, loopback, link-local and otherwise non-public addresses are refused, in every
//! spelling a URL parser or resolver accepts (decimal `2130706433`, octal `0177.0.0.1`, hex
//! `0x7f.1`, short forms `127.1`, IPv4-mapped IPv6 `[::ffff:127.0.0.1]`, ...), unless the host
//! runs in the explicit dev mode (`FEEN_ALLOW_PRIVATE_UPSTREAMS=1`). Names are checked here for
//! what is knowable without I/O (`localhost` and its subdomains); hosts check resolved addresses
//! with [`is_public_ip`] before connecting.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::Error;

/// Validates a base URL and returns it normalised (no trailing `/`).
pub fn check_base_url(text: &str, allow_private: bool) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid("baseUrl", why.to_owned());
    let text = text.trim();
    if text.len() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    let uri: http::Uri = text
        .parse()
        .map_err(|_| bad("must be an absolute http(s) URL"))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| bad("must be an absolute http(s) URL"))?;
    match scheme {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err(bad("must use https")),
        _ => return Err(bad("must be an absolute http(s) URL")),
    }
    let authority = uri.authority().ok_or_else(|| bad("must name a host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not contain credentials"));
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(bad("must not have a query or fragment"));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad("must name a host"));
    }
    if !allow_private && !is_public_host(host) {
        return Err(bad(
            "must not point at a private, loopback or link-local address",
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Where owners may point keys with a base URL of their own (`custom` keys and overrides).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// `FEEN_UPSTREAM_HOSTS`: host names (lower-case), or `*.suffix` for any subdomain of one;
    /// `None`: any public host.
    pub hosts: Option<Vec<String>>,
    /// Whether the host checks the address a name resolves to before connecting (native and
    /// Workers: yes; Spin: no, it can only see the name). Without that check, and without a list,
    /// own base URLs are refused: a name could resolve to a private address.
    pub checks_resolved_addresses: bool,
}

impl UpstreamPolicy {
    /// Parses `FEEN_UPSTREAM_HOSTS` (comma-separated names and `*.` wildcards).
    pub fn parse_hosts(text: &str) -> Result<Vec<String>, String> {
        let hosts: Vec<String> = text
            .split(',')
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        for host in &hosts {
            let name = host.strip_prefix("*.").unwrap_or(host);
            if name.contains('*') || !is_public_host(name) {
                return Err(format!(
                    "FEEN_UPSTREAM_HOSTS: {host:?} is not a public host name or *.name"
                ));
            }
        }
        if hosts.is_empty() {
            return Err("FEEN_UPSTREAM_HOSTS lists no host".into());
        }
        Ok(hosts)
    }

    /// Whether a key may be sent to `base_url` (already checked by [`check_base_url`]); in dev
    /// mode (`allow_private`) anything goes, as for the address guard.
    pub fn allows(&self, base_url: &str, allow_private: bool) -> Result<(), Error> {
        if allow_private {
            return Ok(());
        }
        let host = base_url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| {
                u.host()
                    .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            })
            .unwrap_or_default();
        match &self.hosts {
            Some(hosts) => {
                let listed = hosts
                    .iter()
                    .any(|pattern| match pattern.strip_prefix("*.") {
                        Some(suffix) => host
                            .strip_suffix(suffix)
                            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                        None => *pattern == host,
                    });
                if listed {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        "baseUrl",
                        "must be on a host this deployment allows (FEEN_UPSTREAM_HOSTS)",
                    ))
                }
            }
            None if self.checks_resolved_addresses => Ok(()),
            None => Err(Error::invalid(
                "baseUrl",
                "cannot be used here: this host cannot check where a name resolves, so its \
                 operator must list the allowed hosts in FEEN_UPSTREAM_HOSTS",
            )),
        }
    }
}

/// Whether a URL host (as written in the URL: a name, a bracketed IPv6 literal or any IPv4
/// spelling) may be contacted without dev mode.
pub fn is_public_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<Ipv6Addr>()
            .is_ok_and(|ip| is_public_ip(IpAddr::V6(ip)));
    }
    match parse_ipv4_loose(&host) {
        Ipv4Parse::Address(ip) => return is_public_ip(IpAddr::V4(ip)),
        Ipv4Parse::Invalid => return false,
        Ipv4Parse::NotNumeric => {}
    }
    if host.is_empty() || host == "localhost" || host.ends_with(".localhost") {
        return false;
    }
    // A name that is not a valid DNS name is refused outright rather than guessed at.
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// Whether an address is globally routable (not private, loopback, link-local, unspecified,
/// multicast, reserved, documentation, shared CGNAT space, or an IPv6 wrapping of one).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Ranges that embed or translate an IPv4 address a relay would reach on the
                // caller's behalf: 6to4 2002::/16, Teredo 2001::/32, local-use NAT64
                // 64:ff9b:1::/48 (the well-known 64:ff9b::/96 is checked by its IPv4 above).
                || seg[0] == 0x2002
                || (seg[0] == 0x2001 && seg[1] == 0x0000)
                || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001)
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)) // documentation
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))) // benchmarking
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) or
/// NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let tail = Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    );
    let mapped = seg[..5].iter().all(|&s| s == 0) && seg[5] == 0xffff;
    let compatible = seg[..6].iter().all(|&s| s == 0) && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6].iter().all(|&s| s == 0);
    (mapped || compatible || nat64).then_some(tail)
}

enum Ipv4Parse {
    Address(Ipv4Addr),
    NotNumeric,
    Invalid,
}

/// Parses an IPv4 host the way URL parsers and `inet_aton` do: 1 to 4 dot-separated parts,
/// each decimal, octal (leading `0`) or hex (`0x`); the last part fills the remaining bytes.
/// A host whose last part is numeric but which is not a valid address is `Invalid`.
fn parse_ipv4_loose(host: &str) -> Ipv4Parse {
    let parts: Vec<&str> = host.split('.').collect();
    let last = parts
        .iter()
        .rev()
        .find(|p| !p.is_empty())
        .copied()
        .unwrap_or("");
    // The WHATWG URL rule: a host whose last label looks like a number is an IPv4 address,
    // valid or not.
    let hex_digits = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X"));
    let looks_numeric = (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        || hex_digits.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !looks_numeric {
        return Ipv4Parse::NotNumeric;
    }
    let parts: Vec<&str> = if host.ends_with('.') {
        parts[..parts.len() - 1].to_vec()
    } else {
        parts
    };
    if parts.is_empty() || parts.len() > 4 {
        return Ipv4Parse::Invalid;
    }
    let mut numbers = Vec::with_capacity(4);
    for part in &parts {
        match parse_part(part) {
            Some(n) => numbers.push(n),
            None => return Ipv4Parse::Invalid,
        }
    }
    let (head, last) = numbers.split_at(numbers.len() - 1);
    if head.iter().any(|&n| n > 255) || last[0] >= 1u64 << (8 * (5 - numbers.len())) {
        return Ipv4Parse::Invalid;
    }
    let mut value: u64 = last[0];
    for (i, n) in head.iter().enumerate() {
        value |= n << (8 * (3 - i));
    }
    u32::try_from(value).map_or(Ipv4Parse::Invalid, |v| {
        Ipv4Parse::Address(Ipv4Addr::from(v))
    })
}

fn parse_part(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return (radix == 16).then_some(0);
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_private_hosts_are_refused_in_every_spelling() {
        let refused = [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "api.localhost",
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "2130706433",
            "0x7f000001",
            "0x7f.1",
            "0177.0.0.1",
            "017700000001",
            "127.0.0.1.",
            "0",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "[::1]",
            "[::]",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[::ffff:169.254.169.254]",
            "[fe80::1]",
            "[fd00::1]",
            "[fc00::1]",
            "[64:ff9b::7f00:1]",
            "[::127.0.0.1]",
            // 6to4 of 127.0.0.1, Teredo, local-use NAT64 of 10.0.0.1.
            "[2002:7f00:1::1]",
            "[2002:0808:0808::1]",
            "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
            "[64:ff9b:1::a00:1]",
            "256.1.1.1",
            "1.2.3.4.5",
            "0x100000000",
            "1.2.3.08",
            "bad_name.com",
            "-bad.com",
            "",
        ];
        for host in refused {
            assert!(!is_public_host(host), "{host} must be refused");
        }
    }

    #[test]
    fn public_hosts_are_allowed() {
        for host in [
            "api.openai.com",
            "8.8.8.8",
            "134744072",
            "[2606:4700::1111]",
            "my-gateway.example.org",
            "1e100.net",
        ] {
            assert!(is_public_host(host), "{host} must be allowed");
        }
    }

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let ok = [
            ("https://api.example.com/", "https://api.example.com"),
            (
                "https://my.openai.azure.com/openai",
                "https://my.openai.azure.com/openai",
            ),
            (
                "https://api.example.com:8443/v1/",
                "https://api.example.com:8443/v1",
            ),
        ];
        for (input, normal) in ok {
            assert_eq!(
                check_base_url(input, false).ok().as_deref(),
                Some(normal),
                "{input}"
            );
        }
        let refused = [
            "http://api.example.com",
            "ftp://api.example.com",
            "api.example.com",
            "https://user:pw@api.example.com",
            "https://api.example.com/?key=1",
            "https://api.example.com/#x",
            "https://127.0.0.1",
            "https://[::1]:8080",
            "https://0x7f.1/v1",
            "not a url",
            "",
        ];
        for input in refused {
            let err = check_base_url(input, false).expect_err(input);
            assert_eq!(err.code(), "validation_failed");
        }
    }

    #[test]
    fn own_base_urls_need_a_listed_host_where_resolution_cannot_be_checked() {
        let list =
            UpstreamPolicy::parse_hosts(" Api.Example.com , *.corp.example ").expect("parses");
        assert_eq!(list, vec!["api.example.com", "*.corp.example"]);
        let listed = UpstreamPolicy {
            hosts: Some(list),
            checks_resolved_addresses: false,
        };
        for ok in [
            "https://api.example.com",
            "https://API.example.com.",
            "https://llm.corp.example/v1",
        ] {
            assert!(listed.allows(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "https://other.example.com",
            "https://corp.example",
            "https://evilcorp.example",
            "https://api.example.com.evil.test",
        ] {
            assert_eq!(
                listed.allows(refused, false).map_err(|e| e.field()),
                Err(Some("baseUrl")),
                "{refused}"
            );
        }
        let blind = UpstreamPolicy {
            hosts: None,
            checks_resolved_addresses: false,
        };
        assert!(blind.allows("https://api.example.com", false).is_err());
        assert!(blind.allows("http://127.0.0.1:9", true).is_ok(), "dev mode");
        let sighted = UpstreamPolicy {
            hosts: None,
            checks_resolved_addresses: true,
        };
        assert!(sighted.allows("https://api.example.com", false).is_ok());
        for bad in ["", " , ", "*.*.x.com", "localhost", "10.0.0.1", "a b"] {
            assert!(UpstreamPolicy::parse_hosts(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dev_mode_allows_local_http_upstreams() {
        assert_eq!(
            check_base_url("http://127.0.0.1:9999/", true)
                .ok()
                .as_deref(),
            Some("http://127.0.0.1:9999")
        );
        assert!(check_base_url("ftp://127.0.0.1", true).is_err());
    }
}

/// Where the client's address comes from, as the operator configured it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientIpSource {
    /// A header a trusted proxy in front of Feen sets (`x-forwarded-for`, `cf-connecting-ip`,
    /// ...), lower-case; `None` to use the TCP peer only.
    pub header: Option<String>,
    /// The proxies whose header is believed.
    pub trusted: Vec<ipnet::IpNet>,
}

impl ClientIpSource {
    /// The client's address for a connection from `peer` carrying `header_value` in the
    /// configured header. The header is believed only when the peer is a trusted proxy; in a
    /// list (`X-Forwarded-For: client, proxy1, proxy2`) the right-most address that is not itself
    /// a trusted proxy is the client, since everything left of it could be made up by the client.
    pub fn client(&self, peer: IpAddr, header_value: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted.iter().any(|net| net.contains(ip));
        if self.header.is_none() || !trusted(&peer) {
            return peer;
        }
        let Some(value) = header_value else {
            return peer;
        };
        let mut last = peer;
        for part in value.rsplit(',') {
            let Ok(ip) = part
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            else {
                return last;
            };
            if !trusted(&ip) {
                return ip;
            }
            last = ip;
        }
        last
    }
}

#[cfg(test)]
mod client_ip_tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let source = ClientIpSource {
            header: Some("x-forwarded-for".into()),
            trusted: vec!["10.0.0.0/8".parse().expect("cidr")],
        };
        let cases = [
            ("10.0.0.1", Some("203.0.113.7"), "203.0.113.7"),
            (
                "10.0.0.1",
                Some("198.51.100.1, 203.0.113.7, 10.0.0.2"),
                "203.0.113.7",
            ),
            ("10.0.0.1", Some("spoofed, 203.0.113.7"), "203.0.113.7"),
            ("10.0.0.1", Some("10.0.0.3"), "10.0.0.3"),
            ("10.0.0.1", Some("garbage"), "10.0.0.1"),
            ("10.0.0.1", None, "10.0.0.1"),
            ("203.0.113.9", Some("1.2.3.4"), "203.0.113.9"),
            ("10.0.0.1", Some("[2001:db8::1]"), "2001:db8::1"),
        ];
        for (peer, header, client) in cases {
            assert_eq!(
                source.client(ip(peer), header),
                ip(client),
                "{peer} {header:?}"
            );
        }
        let untrusting = ClientIpSource::default();
        assert_eq!(
            untrusting.client(ip("10.0.0.1"), Some("1.2.3.4")),
            ip("10.0.0.1")
        );
    }
}
