//! Delivery to other domains (Postfix's smtp(8) plus qmgr's
//! per-destination scheduling): pick the next hop (transport override,
//! relayhost, or MX records with the implicit-MX and null-MX rules), try
//! its addresses in order, speak SMTP, and return one outcome per
//! recipient.
//!
//! Each destination has a concurrency window that starts at
//! `initial_destination_concurrency` and grows by 1/window per success up
//! to the limit, shrinking likewise on connection failures (Postfix's
//! feedback). A destination none of whose hosts could be reached is marked
//! dead for `dead_time`: its mail is deferred without connecting.
//!
//! Connections are reused (Postfix's connection cache): after a delivery
//! that left the session in step, the connection waits idle for up to
//! [`CACHE_TIME_LIMIT`] for the next job to the same address, so a
//! destination with a backlog is served over few connections. A cached
//! connection carries at most [`REUSE_COUNT_LIMIT`] messages; at most
//! `destination_concurrency_limit` idle connections per address and
//! [`CACHE_SIZE_LIMIT`] in all are kept. Each idle connection is closed
//! (QUIT) when its time is up, and all of them when the agent is dropped.

use super::Outcome;
use crate::config::{Config, TlsLevel};
use crate::dns::{DnsError, MxAnswer, Resolver, address_literal};
use crate::live::Live;
use crate::smtp::client::{
    self, ClientError, ClientOptions, Envelope, Recipient, SmtpConnection, TlsPolicy, Transcript,
};
use crate::smtp::proto::reply::Reply;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a connection waits idle for the next message (Postfix
/// `smtp_connection_cache_time_limit`).
pub const CACHE_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Messages per connection at most (Postfix
/// `smtp_connection_reuse_count_limit`).
pub const REUSE_COUNT_LIMIT: usize = 100;
/// Idle connections kept over all destinations.
pub const CACHE_SIZE_LIMIT: usize = 1000;

/// One message's recipients in one domain.
pub struct RelayJob<'a> {
    pub domain: &'a str,
    pub sender: &'a str,
    pub recipients: Vec<Recipient>,
    pub message: &'a [u8],
    pub envid: &'a str,
    pub ret: &'a str,
    pub smtputf8: bool,
}

/// What happened to one recipient, and through which host.
pub struct RelayResult {
    pub outcome: Outcome,
    /// `mx.example.org[192.0.2.1]:25`, or `none` when no host answered.
    pub relay: String,
    /// The next hop accepted DSN parameters (else a NOTIFY=SUCCESS
    /// recipient gets a "relayed" notice from us).
    pub peer_dsn: bool,
}

pub struct RelayAgent {
    config: Arc<Live<Config>>,
    dns: Arc<dyn Resolver>,
    destinations: Mutex<HashMap<String, Destination>>,
    released: Notify,
    /// Idle connections; shared (weakly) with the tasks that expire them.
    cache: Arc<Mutex<Cache>>,
}

/// What an idle connection can be reused for: the same address, the same
/// name (SNI, certificate) and the same client settings (relayhost or not:
/// TLS policy and AUTH).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    addr: SocketAddr,
    name: String,
    relayhost: bool,
}

struct Idle {
    id: u64,
    since: tokio::time::Instant,
    connection: SmtpConnection,
}

/// The connection cache. Each list is in the order the connections went
/// idle (oldest first).
#[derive(Default)]
struct Cache {
    idle: HashMap<CacheKey, Vec<Idle>>,
    total: usize,
    next_id: u64,
}

impl Cache {
    /// The most recently idle connection for `key` that has not waited too
    /// long, and the ones that have (to be closed).
    fn take(
        &mut self,
        key: &CacheKey,
        now: tokio::time::Instant,
    ) -> (Option<SmtpConnection>, Vec<SmtpConnection>) {
        let Some(list) = self.idle.get_mut(key) else {
            return (None, Vec::new());
        };
        let fresh_from = list
            .iter()
            .position(|i| now.saturating_duration_since(i.since) < CACHE_TIME_LIMIT)
            .unwrap_or(list.len());
        let stale: Vec<SmtpConnection> = list.drain(..fresh_from).map(|i| i.connection).collect();
        let fresh = list.pop().map(|i| i.connection);
        if list.is_empty() {
            self.idle.remove(key);
        }
        self.total = self
            .total
            .saturating_sub(stale.len() + usize::from(fresh.is_some()));
        (fresh, stale)
    }

    /// Whether another idle connection may be kept under `key`
    /// (`per_key` for one address, [`CACHE_SIZE_LIMIT`] in all).
    fn has_room(&self, key: &CacheKey, per_key: usize) -> bool {
        self.total < CACHE_SIZE_LIMIT && self.idle.get(key).map_or(0, Vec::len) < per_key
    }

    /// Keeps `connection` idle under `key`; returns its id.
    fn put(&mut self, key: CacheKey, connection: SmtpConnection, now: tokio::time::Instant) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.idle.entry(key).or_default().push(Idle {
            id,
            since: now,
            connection,
        });
        self.total += 1;
        id
    }

    /// Takes out the idle connection `id`, if it is still there.
    fn remove(&mut self, key: &CacheKey, id: u64) -> Option<SmtpConnection> {
        let list = self.idle.get_mut(key)?;
        let at = list.iter().position(|i| i.id == id)?;
        let idle = list.remove(at);
        if list.is_empty() {
            self.idle.remove(key);
        }
        self.total = self.total.saturating_sub(1);
        Some(idle.connection)
    }
}

fn lock_cache(cache: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// QUIT in the background (outside a runtime: just close).
fn quit_later(connection: SmtpConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(connection.quit());
    }
}

/// A failure of a cached connection that says nothing about the peer's
/// willingness (it closed the idle connection, or it went stale): no
/// recipient was answered, so a new connection may be tried at once.
fn stale_connection(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Io(_) | ClientError::Timeout(_) | ClientError::Protocol(_)
    )
}

#[derive(Default)]
struct Destination {
    active: usize,
    window: f64,
    dead_until: Option<Instant>,
    last_error: String,
}

/// The next hop of a job.
enum NextHop {
    /// The MX hosts of the domain, on `relay.port`.
    Mx(String),
    /// A fixed host (transport or relayhost): its A/AAAA, on `port`.
    Host {
        host: String,
        port: u16,
        relayhost: bool,
    },
}

/// One address to try, with the host name for TLS SNI and the log.
struct Target {
    name: String,
    addr: SocketAddr,
}

impl RelayAgent {
    pub fn new(config: Arc<Live<Config>>, dns: Arc<dyn Resolver>) -> Self {
        RelayAgent {
            config,
            dns,
            destinations: Mutex::new(HashMap::new()),
            released: Notify::new(),
            cache: Arc::new(Mutex::new(Cache::default())),
        }
    }

    /// Delivers one job; the results follow its recipients' order.
    pub async fn deliver(&self, job: RelayJob<'_>) -> Vec<RelayResult> {
        let config = self.config.get();
        let hop = next_hop(&config, job.domain);
        let key = match &hop {
            NextHop::Mx(d) => d.clone(),
            NextHop::Host { host, port, .. } => format!("[{host}]:{port}"),
        };
        if let Some(reason) = self.dead(&key) {
            let text = format!("4.4.1 destination {key} is not responding: {reason}");
            return all(&job, Outcome::Deferred(text), "none");
        }
        self.acquire(&key, &config).await;
        let (results, unreachable) = self.attempt(&config, &hop, &job).await;
        self.release(&key, &config, unreachable, &results);
        results
    }

    /// Delivers to the first host that answers. The flag is true when
    /// hosts were found but none could be talked to (the destination is
    /// then marked dead; a DNS failure does not do that).
    async fn attempt(
        &self,
        config: &Config,
        hop: &NextHop,
        job: &RelayJob<'_>,
    ) -> (Vec<RelayResult>, bool) {
        let targets = match self.targets(config, hop).await {
            Ok(t) => t,
            Err(outcome) => return (all(job, outcome, "none"), false),
        };
        let relayhost = matches!(
            hop,
            NextHop::Host {
                relayhost: true,
                ..
            }
        );
        let opts = client_options(config, relayhost);
        let envelope = Envelope {
            sender: job.sender,
            recipients: &job.recipients,
            envid: job.envid,
            ret: job.ret,
            smtputf8: job.smtputf8,
            message: job.message,
        };
        let mut last = Outcome::Deferred("4.4.1 no host could be reached".into());
        for target in &targets {
            let remote = format!(
                "{}[{}]:{}",
                target.name,
                target.addr.ip(),
                target.addr.port()
            );
            let key = CacheKey {
                addr: target.addr,
                name: target.name.clone(),
                relayhost,
            };
            let per_key = config.relay.destination_concurrency_limit.max(1);
            match self.exchange(target, key, &opts, &envelope, per_key).await {
                Ok(transcript) => {
                    if let Some(tls) = &transcript.tls {
                        tracing::info!("TLS with {}: {tls}", transcript.remote);
                    }
                    let peer_dsn = transcript.peer_dsn;
                    let relay = transcript.remote;
                    let results = transcript
                        .results
                        .into_iter()
                        .map(|r| RelayResult {
                            outcome: outcome_of_reply(&r.reply),
                            relay: relay.clone(),
                            peer_dsn,
                        })
                        .collect();
                    return (results, false);
                }
                Err(e) if e.try_next_host() => {
                    tracing::info!("{remote}: {e}; trying the next host");
                    last = outcome_of_reply(&e.reply(&remote));
                }
                Err(e) => {
                    return (
                        all(job, outcome_of_reply(&e.reply(&remote)), &remote),
                        false,
                    );
                }
            }
        }
        // Every host failed: defer (a 5xx greeting from all of them is
        // still only a reason to try again later, as Postfix does).
        let last = match last {
            Outcome::Bounced(text) | Outcome::Sent(text) => Outcome::Deferred(text),
            deferred => deferred,
        };
        (all(job, last, "none"), true)
    }

    /// One delivery to `target`: on an idle connection from the cache if
    /// there is one (and on a new one should that turn out stale), else on
    /// a new connection; the connection is then cached or closed.
    async fn exchange(
        &self,
        target: &Target,
        key: CacheKey,
        opts: &ClientOptions,
        envelope: &Envelope<'_>,
        per_key: usize,
    ) -> Result<Transcript, ClientError> {
        if envelope.recipients.is_empty() {
            return client::send(target.addr, &target.name, opts, envelope).await;
        }
        if let Some(mut connection) = self.checkout(&key) {
            tracing::debug!(
                "{}: reusing the connection (use {})",
                connection.remote(),
                connection.uses() + 1
            );
            match connection.deliver(envelope).await {
                Err(e) if stale_connection(&e) => {
                    tracing::info!(
                        "{}: cached connection failed ({e}); opening a new one",
                        connection.remote()
                    );
                    connection.quit().await;
                }
                result => {
                    self.checkin(key, connection, per_key).await;
                    return result;
                }
            }
        }
        let mut connection = SmtpConnection::open(target.addr, &target.name, opts).await?;
        let result = connection.deliver(envelope).await;
        self.checkin(key, connection, per_key).await;
        result
    }

    /// A cached connection for `key` that has not been idle too long;
    /// older ones are closed.
    fn checkout(&self, key: &CacheKey) -> Option<SmtpConnection> {
        let (fresh, stale) = lock_cache(&self.cache).take(key, tokio::time::Instant::now());
        for connection in stale {
            quit_later(connection);
        }
        fresh
    }

    /// Caches `connection` for the next job to `key` when it can carry
    /// another message, else closes it. A cached connection is closed
    /// after [`CACHE_TIME_LIMIT`] unless taken before.
    async fn checkin(&self, key: CacheKey, connection: SmtpConnection, per_key: usize) {
        if !connection.reusable() || connection.uses() >= REUSE_COUNT_LIMIT {
            connection.quit().await;
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            connection.quit().await;
            return;
        };
        let now = tokio::time::Instant::now();
        let (id, refused) = {
            let mut cache = lock_cache(&self.cache);
            if cache.has_room(&key, per_key) {
                (cache.put(key.clone(), connection, now), None)
            } else {
                (0, Some(connection))
            }
        };
        if let Some(connection) = refused {
            connection.quit().await;
            return;
        }
        let cache: Weak<Mutex<Cache>> = Arc::downgrade(&self.cache);
        runtime.spawn(async move {
            tokio::time::sleep_until(now + CACHE_TIME_LIMIT).await;
            let Some(cache) = cache.upgrade() else {
                return;
            };
            let expired = lock_cache(&cache).remove(&key, id);
            drop(cache);
            if let Some(connection) = expired {
                connection.quit().await;
            }
        });
    }

    /// Addresses to try, in order; `Err` decides for all recipients.
    async fn targets(&self, config: &Config, hop: &NextHop) -> Result<Vec<Target>, Outcome> {
        match hop {
            NextHop::Host { host, port, .. } => {
                let ips = self.addresses(host).await?;
                Ok(ips
                    .into_iter()
                    .map(|ip| Target {
                        name: host.clone(),
                        addr: SocketAddr::new(ip, *port),
                    })
                    .collect())
            }
            NextHop::Mx(domain) => {
                if let Some(ip) = address_literal(domain) {
                    return Ok(vec![Target {
                        name: domain.clone(),
                        addr: SocketAddr::new(ip, config.relay.port),
                    }]);
                }
                let hosts = match self.dns.mx(domain).await {
                    Ok(MxAnswer::Hosts(hosts)) => hosts.into_iter().map(|h| h.name).collect(),
                    // RFC 5321 §5.1: no MX means the domain itself is the host.
                    Ok(MxAnswer::NoMx) => vec![domain.clone()],
                    // RFC 7505 §3: the domain accepts no mail.
                    Ok(MxAnswer::NullMx) => {
                        return Err(Outcome::Bounced(format!(
                            "5.1.10 {domain} does not accept mail (null MX)"
                        )));
                    }
                    Err(DnsError::NoSuchDomain) => {
                        return Err(Outcome::Bounced(format!(
                            "5.1.2 Host or domain name not found: {domain}"
                        )));
                    }
                    Err(DnsError::Temporary(e)) => {
                        return Err(Outcome::Deferred(format!(
                            "4.4.3 DNS lookup for {domain} failed: {e}"
                        )));
                    }
                };
                let mut targets = Vec::new();
                let mut found_self = false;
                for host in hosts {
                    // One host that does not resolve must not hide the others.
                    let Ok(ips) = self.addresses(&host).await else {
                        continue;
                    };
                    for ip in ips {
                        let addr = SocketAddr::new(ip, config.relay.port);
                        // RFC 5321 §5.1: we are one of the MX hosts; hosts
                        // listed after us would only send it back.
                        if is_self(config, addr) {
                            found_self = true;
                            break;
                        }
                        targets.push(Target {
                            name: host.clone(),
                            addr,
                        });
                    }
                    if found_self {
                        break;
                    }
                }
                if targets.is_empty() && found_self {
                    return Err(Outcome::Bounced(format!(
                        "5.4.6 mail for {domain} loops back to myself"
                    )));
                }
                if targets.is_empty() {
                    return Err(Outcome::Deferred(format!(
                        "4.4.3 no address found for the mail hosts of {domain}"
                    )));
                }
                Ok(targets)
            }
        }
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, Outcome> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        match self.dns.addresses(host).await {
            Ok(ips) if !ips.is_empty() => Ok(ips),
            Ok(_) | Err(DnsError::NoSuchDomain) => Err(Outcome::Bounced(format!(
                "5.1.2 Host or domain name not found: {host}"
            ))),
            Err(DnsError::Temporary(e)) => Err(Outcome::Deferred(format!(
                "4.4.3 DNS lookup for {host} failed: {e}"
            ))),
        }
    }

    /// Forgets every dead mark (`merpati queue flush`, as `postqueue -f`).
    pub fn clear_dead(&self) {
        let mut destinations = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        for (key, dest) in destinations.iter_mut() {
            if dest.dead_until.take().is_some() {
                tracing::info!("destination {key}: dead mark cleared by a queue flush");
            }
        }
    }

    fn dead(&self, key: &str) -> Option<String> {
        let mut destinations = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        let dest = destinations.get_mut(key)?;
        match dest.dead_until {
            Some(until) if until > Instant::now() => Some(dest.last_error.clone()),
            Some(_) => {
                dest.dead_until = None;
                None
            }
            None => None,
        }
    }

    /// Waits for a place in the destination's concurrency window.
    async fn acquire(&self, key: &str, config: &Config) {
        loop {
            let released = self.released.notified();
            {
                let mut destinations = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
                let dest = destinations.entry(key.to_string()).or_default();
                if dest.window < 1.0 {
                    dest.window = config.relay.initial_destination_concurrency as f64;
                }
                if (dest.active as f64) < dest.window.floor() {
                    dest.active += 1;
                    return;
                }
            }
            released.await;
        }
    }

    fn release(&self, key: &str, config: &Config, unreachable: bool, results: &[RelayResult]) {
        let mut destinations = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dest) = destinations.get_mut(key) {
            dest.active = dest.active.saturating_sub(1);
            let limit = config.relay.destination_concurrency_limit as f64;
            if !unreachable {
                dest.window = (dest.window + 1.0 / dest.window).min(limit);
            } else {
                dest.window = (dest.window - 1.0 / dest.window).max(1.0);
                dest.dead_until = Some(Instant::now() + config.relay.dead_time.0);
                dest.last_error = results
                    .first()
                    .map(|r| match &r.outcome {
                        Outcome::Deferred(t) | Outcome::Bounced(t) | Outcome::Sent(t) => t.clone(),
                    })
                    .unwrap_or_default();
                tracing::warn!(
                    "destination {key} marked dead for {:?}: {}",
                    config.relay.dead_time.0,
                    dest.last_error
                );
            }
        }
        drop(destinations);
        self.released.notify_waiters();
    }
}

/// Is `addr` one of our own SMTP listeners? (A wildcard listener counts
/// for loopback addresses on its port.)
fn is_self(config: &Config, addr: SocketAddr) -> bool {
    config
        .smtp
        .listen
        .iter()
        .filter_map(|l| crate::config::parse_listen(l))
        .any(|l| {
            l.port() == addr.port()
                && (l.ip() == addr.ip() || (l.ip().is_unspecified() && addr.ip().is_loopback()))
        })
}

fn next_hop(config: &Config, domain: &str) -> NextHop {
    let domain = domain.to_lowercase();
    if let Some(hop) = config.relay.transports.get(&domain) {
        let (host, port) = split_host_port(hop, config.relay.port);
        return NextHop::Host {
            host,
            port,
            relayhost: false,
        };
    }
    if !config.relay.relayhost.is_empty() {
        let (host, port) = split_host_port(&config.relay.relayhost, 25);
        return NextHop::Host {
            host,
            port,
            relayhost: true,
        };
    }
    NextHop::Mx(domain)
}

/// `host`, `host:port`, `[host]:port`, `[v6]:port`.
fn split_host_port(text: &str, default_port: u16) -> (String, u16) {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return (addr.ip().to_string(), addr.port());
    }
    let unbracket = |s: &str| s.trim_matches(['[', ']']).to_string();
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => match port.parse() {
            Ok(port) => (unbracket(host), port),
            Err(_) => (unbracket(text), default_port),
        },
        _ => (unbracket(text), default_port),
    }
}

fn client_options(config: &Config, relayhost: bool) -> ClientOptions {
    let tls = if relayhost && config.relay.relayhost_require_tls {
        TlsPolicy::Encrypt
    } else {
        match config.relay.tls {
            TlsLevel::None => TlsPolicy::None,
            TlsLevel::May => TlsPolicy::May,
            TlsLevel::Encrypt => TlsPolicy::Encrypt,
        }
    };
    let auth = (relayhost && !config.relay.relayhost_username.is_empty()).then(|| {
        (
            config.relay.relayhost_username.clone(),
            config.relay.relayhost_password.clone(),
        )
    });
    ClientOptions {
        helo_name: config.myhostname.clone(),
        tls,
        verify_certificates: false,
        trust_anchors: None,
        connect_timeout: config.relay.connect_timeout.0,
        command_timeout: config.relay.command_timeout.0,
        data_timeout: config.relay.data_timeout.0,
        auth,
        max_recipients: config.relay.max_recipients,
    }
}

/// 2xx sent, 4xx deferred, 5xx bounced; the text keeps the peer's words
/// (on one line: it ends up in logs and DSNs).
fn outcome_of_reply(reply: &Reply) -> Outcome {
    let enhanced = reply
        .enhanced
        .map(|(a, b, c)| format!("{a}.{b}.{c}"))
        .unwrap_or_else(|| format!("{}.0.0", reply.code / 100));
    let words = reply.lines.join(" ").replace(['\r', '\n'], " ");
    let text = format!("{enhanced} {} {words}", reply.code);
    match reply.code {
        200..=299 => Outcome::Sent(text),
        400..=499 => Outcome::Deferred(text),
        _ => Outcome::Bounced(text),
    }
}

fn all(job: &RelayJob<'_>, outcome: Outcome, relay: &str) -> Vec<RelayResult> {
    job.recipients
        .iter()
        .map(|_| RelayResult {
            outcome: outcome.clone(),
            relay: relay.to_string(),
            peer_dsn: false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("mail.example.org", 25),
            ("mail.example.org".into(), 25)
        );
        assert_eq!(
            split_host_port("mail.example.org:2525", 25),
            ("mail.example.org".into(), 2525)
        );
        assert_eq!(
            split_host_port("[mail.example.org]:587", 25),
            ("mail.example.org".into(), 587)
        );
        assert_eq!(
            split_host_port("127.0.0.1:2525", 25),
            ("127.0.0.1".into(), 2525)
        );
        assert_eq!(split_host_port("[::1]:2525", 25), ("::1".into(), 2525));
    }

    #[test]
    fn transports_win_over_relayhost_and_mx() {
        let mut config = Config::default();
        config
            .relay
            .transports
            .insert("example.org".into(), "10.0.0.1:2525".into());
        config.relay.relayhost = "smart.example.net:587".into();
        assert!(matches!(
            next_hop(&config, "Example.ORG"),
            NextHop::Host {
                port: 2525,
                relayhost: false,
                ..
            }
        ));
        assert!(matches!(
            next_hop(&config, "other.test"),
            NextHop::Host {
                port: 587,
                relayhost: true,
                ..
            }
        ));
        config.relay.relayhost.clear();
        assert!(matches!(next_hop(&config, "other.test"), NextHop::Mx(_)));
    }

    #[test]
    fn own_listeners_are_recognised() {
        let mut config = Config::default();
        config.smtp.listen = vec!["0.0.0.0:25".into(), "192.0.2.7:2525".into()];
        assert!(is_self(&config, "127.0.0.1:25".parse().unwrap()));
        assert!(is_self(&config, "192.0.2.7:2525".parse().unwrap()));
        assert!(!is_self(&config, "192.0.2.8:2525".parse().unwrap()));
        assert!(!is_self(&config, "127.0.0.1:2526".parse().unwrap()));
    }

    #[test]
    fn replies_map_to_outcomes() {
        let ok = Reply::new(250, "2.0.0", "Ok: queued as X");
        assert!(matches!(outcome_of_reply(&ok), Outcome::Sent(t) if t.starts_with("2.0.0 250")));
        let busy = Reply::plain(451, "try later");
        assert!(
            matches!(outcome_of_reply(&busy), Outcome::Deferred(t) if t.starts_with("4.0.0 451"))
        );
        let no = Reply::new(550, "5.1.1", "no such user");
        assert!(matches!(outcome_of_reply(&no), Outcome::Bounced(_)));
    }
}
