//! Network ranges for `mynetworks` (`127.0.0.0/8`, `::1/128`, `192.0.2.7`).

use std::net::IpAddr;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address or network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}` has a bad prefix length"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches() {
        let lo: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("10.0.0.1".parse().unwrap()));
        let v6: Cidr = "::1/128".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("banana".parse::<Cidr>().is_err());
    }
}

/// A host name as RFC 1123 allows it: dot-separated labels of letters,
/// digits and hyphens (not at either end), each up to 63 octets, at most
/// 253 in all.
pub fn check_hostname(name: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("`{name}` is not a valid host name: {why}"));
    let name_ = name.strip_suffix('.').unwrap_or(name);
    if name_.is_empty() {
        return fail("empty");
    }
    if name_.len() > 253 {
        return fail("longer than 253 characters");
    }
    for label in name_.split('.') {
        if label.is_empty() || label.len() > 63 {
            return fail("each label must have 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return fail("only letters, digits, hyphens and dots are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return fail("a label cannot start or end with a hyphen");
        }
    }
    Ok(())
}

/// A next hop: `host`, `host:port`, `[host]`, `[host]:port`, `[v6]:port`
/// or `ip:port`, with a port from 1 to 65535.
pub fn check_next_hop(text: &str) -> Result<(), String> {
    let text = text.trim();
    if text.parse::<std::net::SocketAddr>().is_ok() || text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("`{text}`: missing `]`"));
        };
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("`{text}`: expected `:port` after `]`"))?,
            ),
        };
        if host.parse::<std::net::IpAddr>().is_ok() {
            return check_port(text, port);
        }
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    check_hostname(host).map_err(|e| format!("`{text}`: {e}"))?;
    check_port(text, port)
}

fn check_port(text: &str, port: Option<&str>) -> Result<(), String> {
    match port {
        None => Ok(()),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(format!("`{text}`: `{p}` is not a port number")),
        },
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn host_names_and_next_hops() {
        assert!(check_hostname("mail.example.org").is_ok());
        assert!(check_hostname("localhost").is_ok());
        assert!(check_hostname("bad host!").is_err());
        assert!(check_hostname("-x.org").is_err());
        assert!(check_hostname("a..b").is_err());
        for good in [
            "smtp.example.org",
            "smtp.example.org:587",
            "[smtp.example.org]:25",
            "[10.0.0.1]",
            "10.0.0.1:2525",
            "[::1]:25",
        ] {
            assert!(check_next_hop(good).is_ok(), "{good}");
        }
        for bad in ["host:notaport", "host:0", "[host", "[h]x", "bad host:25"] {
            assert!(check_next_hop(bad).is_err(), "{bad}");
        }
    }
}
