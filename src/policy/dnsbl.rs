//! DNS block and allow lists (Postfix's reject_rbl_client and friends,
//! postscreen's sites): `zone[=filter][*weight]`, where the filter limits
//! which answers count (`127.0.0.2`, `127.0.0.[2..11]`, `127.0.[0;1].[2..4]`)
//! and the weight is postscreen's score for a listing.

use crate::dns::{DnsError, Resolver};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub zone: String,
    filter: Option<[Octet; 4]>,
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Octet {
    Any(Vec<(u8, u8)>),
}

/// A listing: the answer that matched, and the zone's TXT reason if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub answer: Ipv4Addr,
    pub reason: Option<String>,
}

impl Site {
    /// Every site of a configured list.
    pub fn parse_all(texts: &[String]) -> Result<Vec<Site>, String> {
        texts.iter().map(|s| Site::parse(s)).collect()
    }

    pub fn parse(text: &str) -> Result<Site, String> {
        let (rest, weight) = match text.rsplit_once('*') {
            Some((r, w)) => (
                r,
                w.parse::<i32>()
                    .map_err(|_| format!("`{text}`: bad weight `{w}`"))?,
            ),
            None => (text, 1),
        };
        let (zone, filter) = match rest.split_once('=') {
            Some((z, f)) => (
                z,
                Some(parse_filter(f).ok_or_else(|| format!("`{text}`: bad reply filter `{f}`"))?),
            ),
            None => (rest, None),
        };
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        if zone.is_empty() || !zone.contains('.') || zone.contains(char::is_whitespace) {
            return Err(format!("`{text}` is not a DNS list zone"));
        }
        Ok(Site {
            zone,
            filter,
            weight,
        })
    }

    fn accepts(&self, answer: Ipv4Addr) -> bool {
        // RFC 5782 §2.1: answers are 127.0.0.0/8; anything else (a
        // wildcard, a "query refused" code such as 127.255.255.254 from
        // Spamhaus for public resolvers) is not a listing unless asked for.
        match &self.filter {
            None => answer.octets()[0] == 127 && answer.octets()[3] < 254,
            Some(filter) => filter
                .iter()
                .zip(answer.octets())
                .all(|(Octet::Any(ranges), b)| {
                    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&b))
                }),
        }
    }

    /// Looks `ip` up (`d.c.b.a.zone`, IPv6 by nibbles, RFC 5782).
    pub async fn check_ip(
        &self,
        dns: &dyn Resolver,
        ip: IpAddr,
    ) -> Result<Option<Listed>, DnsError> {
        let name = format!("{}.{}", reversed(ip), self.zone);
        self.query(dns, &name).await
    }

    /// Looks a domain up (`domain.zone`, RHSBL).
    pub async fn check_domain(
        &self,
        dns: &dyn Resolver,
        domain: &str,
    ) -> Result<Option<Listed>, DnsError> {
        let domain = domain.trim_end_matches('.');
        if domain.is_empty() || domain.starts_with('[') {
            return Ok(None);
        }
        let name = format!("{domain}.{}", self.zone);
        self.query(dns, &name).await
    }

    async fn query(&self, dns: &dyn Resolver, name: &str) -> Result<Option<Listed>, DnsError> {
        let answers = dns.ipv4(name).await?;
        let Some(answer) = answers.into_iter().find(|a| self.accepts(*a)) else {
            return Ok(None);
        };
        // The reason is a courtesy: a failure to fetch it is no error.
        let reason = dns
            .txt(name)
            .await
            .ok()
            .and_then(|t| t.into_iter().next())
            .map(|r| r.chars().filter(|c| !c.is_control()).take(200).collect());
        Ok(Some(Listed { answer, reason }))
    }
}

fn parse_filter(text: &str) -> Option<[Octet; 4]> {
    // Dots inside [..] belong to ranges, not to the address.
    let mut parts: Vec<&str> = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    if parts.len() != 4 {
        return None;
    }
    let mut out: Vec<Octet> = Vec::with_capacity(4);
    for part in parts {
        let ranges = if let Some(inner) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            inner
                .split(';')
                .map(|r| match r.split_once("..") {
                    Some((lo, hi)) => Some((lo.parse().ok()?, hi.parse().ok()?)),
                    None => r.parse().ok().map(|v| (v, v)),
                })
                .collect::<Option<Vec<(u8, u8)>>>()?
        } else {
            let v: u8 = part.parse().ok()?;
            vec![(v, v)]
        };
        out.push(Octet::Any(ranges));
    }
    out.try_into().ok()
}

/// `1.2.0.192` for 192.0.2.1; nibbles for IPv6 (RFC 5782 §2.4).
pub fn reversed(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let mut nibbles = Vec::with_capacity(32);
            for byte in v6.octets().iter().rev() {
                nibbles.push(format!("{:x}", byte & 0x0f));
                nibbles.push(format!("{:x}", byte >> 4));
            }
            nibbles.join(".")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_parse_with_filters_and_weights() {
        let s = Site::parse("zen.example=127.0.0.[2..11]*3").expect("site");
        assert_eq!(s.zone, "zen.example");
        assert_eq!(s.weight, 3);
        assert!(s.accepts(Ipv4Addr::new(127, 0, 0, 4)));
        assert!(!s.accepts(Ipv4Addr::new(127, 0, 0, 12)));
        let s = Site::parse("list.example=127.0.[0;1].[2..4]").expect("site");
        assert!(s.accepts(Ipv4Addr::new(127, 0, 1, 3)));
        assert!(!s.accepts(Ipv4Addr::new(127, 0, 2, 3)));
        let s = Site::parse("plain.example").expect("site");
        assert!(s.accepts(Ipv4Addr::new(127, 0, 0, 2)));
        assert!(!s.accepts(Ipv4Addr::new(127, 255, 255, 254)));
        assert!(!s.accepts(Ipv4Addr::new(192, 0, 2, 1)));
        for bad in [
            "",
            "nodot",
            "x.example=127.0.0",
            "x.example=1.2.3.[a..b]",
            "x.example*w",
        ] {
            assert!(Site::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_reversed_as_rfc5782_says() {
        assert_eq!(reversed("192.0.2.1".parse().unwrap()), "1.2.0.192");
        assert_eq!(reversed("::ffff:192.0.2.1".parse().unwrap()), "1.2.0.192");
        assert!(reversed("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0."));
        assert!(reversed("2001:db8::1".parse().unwrap()).ends_with(".8.b.d.0.1.0.0.2"));
    }
}
