//! The client's names, as Postfix's smtpd finds them: the PTR name
//! (`reverse_client_name`), and that name again only when it resolves
//! back to the client's address (`client_name`, forward-confirmed).
//! Either is `unknown` when it cannot be had.

use crate::dns::{DnsError, Resolver};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNames {
    /// Forward-confirmed name, or `unknown`.
    pub name: String,
    /// The PTR name, or `unknown`.
    pub reverse: String,
    /// A lookup failed temporarily: `unknown` may not be the truth, so
    /// restrictions on it defer instead of rejecting.
    pub tempfail: bool,
}

pub const UNKNOWN: &str = "unknown";

impl PeerNames {
    pub fn unknown() -> Self {
        PeerNames {
            name: UNKNOWN.into(),
            reverse: UNKNOWN.into(),
            tempfail: false,
        }
    }

    /// Loopback needs no DNS: it is `localhost`.
    pub fn localhost() -> Self {
        PeerNames {
            name: "localhost".into(),
            reverse: "localhost".into(),
            tempfail: false,
        }
    }

    /// `name[ip]`, Postfix's notation for logs and `Received:`.
    pub fn describe(&self, ip: IpAddr) -> String {
        format!("{}[{ip}]", self.name)
    }

    /// Looks `ip` up, all of it within `timeout`.
    pub async fn lookup(dns: &dyn Resolver, ip: IpAddr, timeout: Duration) -> PeerNames {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        // The usual loopback addresses need no DNS; other 127/8 addresses
        // are looked up (tests give them names on a loopback DNS server).
        if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST) {
            return PeerNames::localhost();
        }
        match tokio::time::timeout(timeout, resolve(dns, ip)).await {
            Ok(names) => names,
            Err(_) => PeerNames {
                tempfail: true,
                ..PeerNames::unknown()
            },
        }
    }
}

async fn resolve(dns: &dyn Resolver, ip: IpAddr) -> PeerNames {
    let ptrs = match dns.reverse(ip).await {
        Ok(p) => p,
        Err(DnsError::Temporary(_)) => {
            return PeerNames {
                tempfail: true,
                ..PeerNames::unknown()
            };
        }
        Err(DnsError::NoSuchDomain) => Vec::new(),
    };
    // Postfix takes the first usable PTR (a name, not an address).
    let Some(reverse) = ptrs
        .into_iter()
        .map(|p| p.to_ascii_lowercase())
        .find(|p| !p.is_empty() && p.parse::<IpAddr>().is_err() && p.len() <= 253)
    else {
        return PeerNames::unknown();
    };
    let (name, tempfail) = match dns.addresses(&reverse).await {
        Ok(addresses) if addresses.iter().any(|a| same(*a, ip)) => (reverse.clone(), false),
        Ok(_) | Err(DnsError::NoSuchDomain) => (UNKNOWN.to_string(), false),
        Err(DnsError::Temporary(_)) => (UNKNOWN.to_string(), true),
    };
    PeerNames {
        name,
        reverse,
        tempfail,
    }
}

fn same(a: IpAddr, b: IpAddr) -> bool {
    let norm = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    //! The forward confirmation against a scripted resolver: the one
    //! thing the integration tests cannot reach (hickory answers reverse
    //! lookups of 127/8 itself).
    use super::*;
    use crate::dns::{BoxFuture, MxAnswer};
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    #[derive(Default)]
    struct Scripted {
        ptr: HashMap<IpAddr, Result<Vec<String>, DnsError>>,
        addresses: HashMap<String, Result<Vec<IpAddr>, DnsError>>,
    }

    impl Resolver for Scripted {
        fn mx<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<MxAnswer, DnsError>> {
            Box::pin(async { Err(DnsError::NoSuchDomain) })
        }
        fn addresses<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, DnsError>> {
            let answer = self
                .addresses
                .get(host)
                .cloned()
                .unwrap_or(Err(DnsError::NoSuchDomain));
            Box::pin(async move { answer })
        }
        fn reverse(&self, ip: IpAddr) -> BoxFuture<'_, Result<Vec<String>, DnsError>> {
            let answer = self.ptr.get(&ip).cloned().unwrap_or(Ok(Vec::new()));
            Box::pin(async move { answer })
        }
        fn ipv4<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, DnsError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn txt<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<String>, DnsError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[tokio::test]
    async fn names_are_forward_confirmed() {
        let mut dns = Scripted::default();
        dns.ptr
            .insert(ip("192.0.2.1"), Ok(vec!["MX.Good.Example".into()]));
        dns.addresses.insert(
            "mx.good.example".into(),
            Ok(vec![ip("2001:db8::1"), ip("192.0.2.1")]),
        );
        dns.ptr
            .insert(ip("192.0.2.2"), Ok(vec!["liar.example".into()]));
        dns.addresses
            .insert("liar.example".into(), Ok(vec![ip("192.0.2.99")]));
        dns.ptr
            .insert(ip("192.0.2.3"), Err(DnsError::Temporary("SERVFAIL".into())));
        dns.ptr
            .insert(ip("192.0.2.4"), Ok(vec!["slow.example".into()]));
        dns.addresses.insert(
            "slow.example".into(),
            Err(DnsError::Temporary("timeout".into())),
        );
        let t = Duration::from_secs(5);
        let good = PeerNames::lookup(&dns, ip("192.0.2.1"), t).await;
        assert_eq!(
            (good.name.as_str(), good.reverse.as_str()),
            ("mx.good.example", "mx.good.example")
        );
        assert_eq!(good.describe(ip("192.0.2.1")), "mx.good.example[192.0.2.1]");
        let liar = PeerNames::lookup(&dns, ip("192.0.2.2"), t).await;
        assert_eq!(
            (liar.name.as_str(), liar.reverse.as_str(), liar.tempfail),
            ("unknown", "liar.example", false)
        );
        let none = PeerNames::lookup(&dns, ip("192.0.2.5"), t).await;
        assert_eq!(none, PeerNames::unknown());
        let failed = PeerNames::lookup(&dns, ip("192.0.2.3"), t).await;
        assert!(failed.tempfail && failed.name == "unknown");
        let slow = PeerNames::lookup(&dns, ip("192.0.2.4"), t).await;
        assert!(slow.tempfail && slow.name == "unknown" && slow.reverse == "slow.example");
        assert_eq!(
            PeerNames::lookup(&dns, ip("127.0.0.1"), t).await,
            PeerNames::localhost()
        );
    }
}
