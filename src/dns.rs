//! DNS lookups for outbound delivery: the MX set of a recipient domain and
//! the addresses of a mail exchanger (Postfix's smtp(8) does these itself
//! through the system resolver library).
//!
//! [`Resolver`] is the seam: the relay agent talks to a `dyn Resolver`,
//! production uses [`HickoryResolver`], and tests point a `HickoryResolver`
//! at a DNS server they start on loopback.
//!
//! Results are classified the way a mail queue needs them: NXDOMAIN is
//! permanent ([`DnsError::NoSuchDomain`], bounce), everything that may heal
//! by itself (SERVFAIL, REFUSED, timeouts, unreachable name servers) is
//! [`DnsError::Temporary`] (defer). A name that exists without records of
//! the asked type is not an error at all.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

/// A boxed, sendable future: what the object-safe [`Resolver`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Number of answers kept in the resolver's cache (hickory's default is 32,
/// too few for a queue that talks to many destinations).
const CACHE_SIZE: u64 = 4096;

/// One mail exchanger of a domain (RFC 5321 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// Lower is tried first.
    pub preference: u16,
    /// The exchanger's host name in ASCII (A-labels), without the trailing
    /// dot; look its addresses up with [`Resolver::addresses`].
    pub name: String,
}

/// What a domain's MX lookup says about where its mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// Mail exchangers sorted by preference, those of equal preference in
    /// random order (RFC 5321 §5.1: "the SMTP client SHOULD randomize
    /// them to spread the load"). Never empty.
    Hosts(Vec<MxHost>),
    /// RFC 7505 null MX (a single `MX 0 .`): the domain accepts no mail;
    /// bounce at once with 5.1.10 (RFC 7505 §4.2).
    NullMx,
    /// The domain exists but has no MX records: deliver to the domain's own
    /// A/AAAA addresses, the "implicit MX" of RFC 5321 §5.1.
    NoMx,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// NXDOMAIN (or a name that cannot be a domain name at all): permanent.
    #[error("Host or domain name not found (NXDOMAIN)")]
    NoSuchDomain,
    /// SERVFAIL, REFUSED, timeouts, no reachable name server...: retry
    /// later. The text is for the log and the deferral reason.
    #[error("Host or domain name lookup failed temporarily: {0}")]
    Temporary(String),
}

/// DNS lookups needed to deliver mail. Object-safe so the relay agent can
/// hold an `Arc<dyn Resolver>`.
pub trait Resolver: Send + Sync {
    /// The MX set of `domain` (a domain name, not an address literal; see
    /// [`address_literal`]). CNAMEs are followed by the resolver.
    ///
    /// - `Ok(Hosts)`: sorted by preference, equal preferences shuffled.
    ///   When a null MX is mixed with real MX records (a broken zone,
    ///   RFC 7505 §3 forbids it) the null record is ignored.
    /// - `Ok(NullMx)`: the only MX records are null MX records.
    /// - `Ok(NoMx)`: the domain exists without MX records (implicit MX).
    /// - `Err(NoSuchDomain)`: NXDOMAIN. `Err(Temporary)`: anything else.
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<MxAnswer, DnsError>>;

    /// The IPv6 (AAAA) and IPv4 (A) addresses of `host`, IPv6 first, each
    /// family in the order the DNS gave them. Both families are queried
    /// concurrently.
    ///
    /// - `Ok(addresses)`: at least one family answered with records (a
    ///   temporary failure of the other family is then only logged), or
    ///   the name exists with no address records at all (`Ok(vec![])`:
    ///   for an MX host, skip it; for an implicit MX, the domain cannot
    ///   receive mail).
    /// - `Err(NoSuchDomain)`: NXDOMAIN and no records in either family.
    /// - `Err(Temporary)`: a family failed temporarily and the other gave
    ///   nothing usable.
    fn addresses<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, DnsError>>;

    /// The PTR names of `ip` (without trailing dots), for the client's
    /// reverse DNS. `Ok(vec![])` when there are none (NXDOMAIN or NODATA:
    /// the address has no name), `Err(Temporary)` when it cannot be told.
    fn reverse(&self, ip: IpAddr) -> BoxFuture<'_, Result<Vec<String>, DnsError>>;

    /// The A records of `name`, for DNS blocklists (`Ok(vec![])`: not
    /// listed, whether NXDOMAIN or NODATA).
    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, DnsError>>;

    /// The TXT records of `name`, each one's strings joined (a blocklist's
    /// reason text). `Ok(vec![])` when there are none.
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, DnsError>>;
}

/// [`Resolver`] on hickory-resolver, with its cache.
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    /// A resolver that asks `nameservers` (UDP, with TCP for truncated
    /// answers), or the system's `/etc/resolv.conf` when the list is
    /// empty. `timeout` bounds each query to each server; a query is tried
    /// twice.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Self, DnsError> {
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| {
                DnsError::Temporary(format!("cannot read the system DNS configuration: {e}"))
            })?
        } else {
            let group = nameservers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            let config = ResolverConfig::from_name_servers(group);
            let mut builder =
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
            // Configured servers are the whole truth: no /etc/hosts.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        let options = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 2;
        options.cache_size = CACHE_SIZE;
        // Large MX sets fit in one UDP answer more often.
        options.edns0 = true;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Temporary(format!("cannot start the DNS resolver: {e}")))?;
        Ok(HickoryResolver { inner })
    }

    /// The underlying resolver, for the mail-authentication lookups: one
    /// cache and one `[dns]` configuration for everything.
    pub fn handle(&self) -> TokioResolver {
        self.inner.clone()
    }

    async fn lookup_mx(&self, domain: &str) -> Result<MxAnswer, DnsError> {
        let name = fqdn(domain)?;
        let lookup = match self.inner.mx_lookup(name).await {
            Ok(lookup) => lookup,
            Err(e) => {
                return match classify(&e) {
                    Failure::NoSuchDomain => Err(DnsError::NoSuchDomain),
                    Failure::NoData => Ok(MxAnswer::NoMx),
                    Failure::Temporary(why) => Err(DnsError::Temporary(why)),
                };
            }
        };
        let mut null = false;
        let mut hosts = Vec::new();
        for mx in lookup.answers().iter().filter_map(|r| match &r.data {
            RData::MX(mx) => Some(mx),
            _ => None,
        }) {
            if mx.exchange.is_root() {
                null = true;
                continue;
            }
            hosts.push(MxHost {
                preference: mx.preference,
                name: host_name(&mx.exchange),
            });
        }
        if hosts.is_empty() {
            return Ok(if null {
                MxAnswer::NullMx
            } else {
                MxAnswer::NoMx
            });
        }
        if null {
            tracing::warn!("{domain}: null MX mixed with other MX records (RFC 7505 §3); ignored");
        }
        sort_and_shuffle(&mut hosts);
        Ok(MxAnswer::Hosts(hosts))
    }

    async fn lookup_addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let name = fqdn(host)?;
        let (v6, v4) = tokio::join!(
            self.inner.ipv6_lookup(name.clone()),
            self.inner.ipv4_lookup(name)
        );
        let v6 = v6.map(|l| {
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        });
        let v4 = v4.map(|l| {
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        });
        combine_families(
            host,
            v6.map_err(|e| classify(&e)),
            v4.map_err(|e| classify(&e)),
        )
    }
}

/// A lookup, timed into the DNS latency histogram.
async fn timed<T>(kind: &str, lookup: impl std::future::Future<Output = T>) -> T {
    let start = std::time::Instant::now();
    let out = lookup.await;
    crate::metrics::get().dns_lookup(kind, start.elapsed().as_secs_f64());
    out
}

impl Resolver for HickoryResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<MxAnswer, DnsError>> {
        Box::pin(timed("MX", self.lookup_mx(domain)))
    }

    fn addresses<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, DnsError>> {
        Box::pin(timed("A/AAAA", self.lookup_addresses(host)))
    }

    fn reverse(&self, ip: IpAddr) -> BoxFuture<'_, Result<Vec<String>, DnsError>> {
        Box::pin(timed("PTR", async move {
            match self.inner.reverse_lookup(ip).await {
                Ok(lookup) => Ok(lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::PTR(ptr) => Some(host_name(&ptr.0)),
                        _ => None,
                    })
                    .collect()),
                Err(e) => absent_or_temporary(&e),
            }
        }))
    }

    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, DnsError>> {
        Box::pin(timed("A", async move {
            let Ok(fq) = fqdn(name) else {
                return Ok(Vec::new());
            };
            match self.inner.ipv4_lookup(fq).await {
                Ok(lookup) => Ok(lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect()),
                Err(e) => absent_or_temporary(&e),
            }
        }))
    }

    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, DnsError>> {
        Box::pin(timed("TXT", async move {
            let Ok(fq) = fqdn(name) else {
                return Ok(Vec::new());
            };
            match self.inner.txt_lookup(fq).await {
                Ok(lookup) => Ok(lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|part| String::from_utf8_lossy(part).into_owned())
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect()),
                Err(e) => absent_or_temporary(&e),
            }
        }))
    }
}

/// NXDOMAIN and NODATA mean "nothing there"; the rest is temporary.
fn absent_or_temporary<T>(error: &NetError) -> Result<Vec<T>, DnsError> {
    match classify(error) {
        Failure::NoSuchDomain | Failure::NoData => Ok(Vec::new()),
        Failure::Temporary(why) => Err(DnsError::Temporary(why)),
    }
}

/// The address of an RFC 5321 §4.1.3 address literal domain:
/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (the tag is case-insensitive).
/// `None` for anything else, including malformed literals; mail to a
/// literal goes to that address without any DNS lookup.
pub fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let tag = inner.get(..5);
    if tag.is_some_and(|t| t.eq_ignore_ascii_case("IPv6:")) {
        let v6: Ipv6Addr = inner.get(5..)?.parse().ok()?;
        return Some(IpAddr::V6(v6));
    }
    // Only dotted-quad IPv4 without a tag; other tags (General-address-
    // literal) are not deliverable.
    if !inner.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    inner.parse().ok().map(IpAddr::V4)
}

/// How one failed lookup is to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    NoSuchDomain,
    /// NOERROR without records of the asked type (NODATA).
    NoData,
    Temporary(String),
}

/// The one place that decides permanent vs temporary: only an NXDOMAIN
/// answer is permanent; unclassified errors are temporary.
fn classify(error: &NetError) -> Failure {
    if let NetError::Dns(HickoryDnsError::NoRecordsFound(none)) = error {
        return match none.response_code {
            ResponseCode::NXDomain => Failure::NoSuchDomain,
            ResponseCode::NoError => Failure::NoData,
            other => Failure::Temporary(format!("server answered {other}")),
        };
    }
    Failure::Temporary(error.to_string())
}

/// Merges the AAAA and A answers (see [`Resolver::addresses`]).
fn combine_families(
    host: &str,
    v6: Result<Vec<IpAddr>, Failure>,
    v4: Result<Vec<IpAddr>, Failure>,
) -> Result<Vec<IpAddr>, DnsError> {
    let mut addresses = Vec::new();
    let mut nxdomain = false;
    let mut temporary = None;
    for (family, answer) in [("AAAA", v6), ("A", v4)] {
        match answer {
            Ok(list) => addresses.extend(list),
            Err(Failure::NoData) => {}
            Err(Failure::NoSuchDomain) => nxdomain = true,
            Err(Failure::Temporary(why)) => temporary = Some(format!("{family} {host}: {why}")),
        }
    }
    if !addresses.is_empty() {
        if let Some(why) = temporary {
            tracing::info!("using the addresses found; other family failed: {why}");
        }
        return Ok(addresses);
    }
    match (temporary, nxdomain) {
        (Some(why), _) => Err(DnsError::Temporary(why)),
        (None, true) => Err(DnsError::NoSuchDomain),
        (None, false) => Ok(addresses),
    }
}

/// Parses `domain` as an absolute name so no search list applies. A name
/// that cannot be a domain name does not exist.
fn fqdn(domain: &str) -> Result<Name, DnsError> {
    let mut name = Name::from_utf8(domain).map_err(|_| DnsError::NoSuchDomain)?;
    if domain.is_empty() {
        return Err(DnsError::NoSuchDomain);
    }
    name.set_fqdn(true);
    Ok(name)
}

/// A-label form without the trailing dot.
fn host_name(name: &Name) -> String {
    let mut text = name.to_ascii();
    if text.ends_with('.') {
        text.pop();
    }
    text
}

/// Sorts by preference and shuffles each run of equal preference
/// (RFC 5321 §5.1).
fn sort_and_shuffle(hosts: &mut [MxHost]) {
    hosts.sort_by_key(|h| h.preference);
    for group in hosts.chunk_by_mut(|a, b| a.preference == b.preference) {
        fastrand::shuffle(group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn address_literals() {
        let v4 = |a, b, c, d| Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
        let cases: &[(&str, Option<IpAddr>)] = &[
            ("[192.0.2.1]", v4(192, 0, 2, 1)),
            ("[127.0.0.1]", v4(127, 0, 0, 1)),
            ("[IPv6:2001:db8::1]", Some("2001:db8::1".parse().unwrap())),
            ("[ipv6:::1]", Some(IpAddr::V6(Ipv6Addr::LOCALHOST))),
            ("[IPv6:192.0.2.1]", None),
            ("[2001:db8::1]", None),
            ("192.0.2.1", None),
            ("[192.0.2.1", None),
            ("[192.0.2]", None),
            ("[192.0.2.256]", None),
            ("[ 192.0.2.1]", None),
            ("[x:1]", None),
            ("[]", None),
            ("", None),
            ("example.org", None),
            ("[é]", None),
        ];
        for (text, expected) in cases {
            assert_eq!(address_literal(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn equal_preferences_are_shuffled_and_sorted() {
        let host = |p, n: &str| MxHost {
            preference: p,
            name: n.into(),
        };
        let mut seen_ab = false;
        let mut seen_ba = false;
        for _ in 0..200 {
            let mut hosts = vec![
                host(20, "c"),
                host(10, "a"),
                host(10, "b"),
                host(5, "first"),
            ];
            sort_and_shuffle(&mut hosts);
            let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            assert_eq!(names.first(), Some(&"first"));
            assert_eq!(names.last(), Some(&"c"));
            match names.get(1..3) {
                Some(["a", "b"]) => seen_ab = true,
                Some(["b", "a"]) => seen_ba = true,
                other => panic!("{other:?}"),
            }
        }
        assert!(seen_ab && seen_ba);
    }

    #[test]
    fn address_families_combine() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let aaaa: IpAddr = "2001:db8::1".parse().unwrap();
        let temp = || Err(Failure::Temporary("timeout".into()));
        type Family = Result<Vec<IpAddr>, Failure>;
        let cases: Vec<(Family, Family, Result<Vec<IpAddr>, DnsError>)> = vec![
            (Ok(vec![aaaa]), Ok(vec![a]), Ok(vec![aaaa, a])),
            (Err(Failure::NoData), Ok(vec![a]), Ok(vec![a])),
            (Ok(vec![aaaa]), Err(Failure::NoData), Ok(vec![aaaa])),
            (temp(), Ok(vec![a]), Ok(vec![a])),
            (Err(Failure::NoData), Err(Failure::NoData), Ok(vec![])),
            (
                Err(Failure::NoSuchDomain),
                Err(Failure::NoSuchDomain),
                Err(DnsError::NoSuchDomain),
            ),
            (
                temp(),
                Err(Failure::NoData),
                Err(DnsError::Temporary("AAAA h: timeout".into())),
            ),
            (
                Err(Failure::NoSuchDomain),
                temp(),
                Err(DnsError::Temporary("A h: timeout".into())),
            ),
        ];
        for (v6, v4, expected) in cases {
            let label = format!("{v6:?} {v4:?}");
            assert_eq!(combine_families("h", v6, v4), expected, "{label}");
        }
    }

    #[test]
    fn names_are_absolute_ascii() {
        let name = fqdn("Mx.Example.ORG").unwrap();
        assert!(name.is_fqdn());
        assert_eq!(host_name(&name), "mx.example.org");
        assert_eq!(
            host_name(&fqdn("bücher.example").unwrap()),
            "xn--bcher-kva.example"
        );
        assert_eq!(fqdn(""), Err(DnsError::NoSuchDomain));
    }
}
