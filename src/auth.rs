//! Logging users in, shared by IMAP, POP3 and SMTP submission: account
//! lookup (a login is an address or a bare local part), Argon2id password
//! verification off the async threads, SASL PLAIN and LOGIN decoding, and
//! a per-client-address penalty for failed attempts (Dovecot's
//! auth_failure_delay, Postfix's anvil rates), so guessing is slow.

use crate::address::Address;
use crate::config::Config;
use crate::live::Live;
use crate::net::anvil::{Event, Rates};
use crate::rewrite::Resolver;
use crate::store::MailStore;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first failure costs this much delay; each further one doubles it.
const BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest penalty for one attempt.
const MAX_DELAY: Duration = Duration::from_secs(15);
/// Failures are forgotten after this much quiet.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Most client addresses tracked; beyond, the oldest entries are dropped.
const MAX_TRACKED: usize = 100_000;
/// After this many failures from one address (until [`FORGET_AFTER`] of
/// quiet) no password from it is even checked.
const MAX_FAILURES: u32 = 30;
/// An attempt that would have to wait longer than this for its turn is
/// refused at once instead of holding a connection.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// What one client address has done wrong, across all its connections
/// and protocols.
#[derive(Clone, Copy)]
struct Penalty {
    failures: u32,
    last: Instant,
    /// No attempt from this address starts before this: parallel
    /// connections take turns instead of each serving its delay at once.
    next_at: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication failed")]
    Failed,
    #[error("temporary authentication failure")]
    Temporary,
    /// More failed logins from this address in this unit than
    /// `anvil.auth_failure_rate_limit`: refused without a check.
    #[error("too many failed logins from this address")]
    TooMany,
}

pub struct Authenticator {
    store: Arc<dyn MailStore>,
    resolver: Arc<Live<Resolver>>,
    /// Per client address (an IPv6 /64): the delays and turns.
    failures: Mutex<HashMap<IpAddr, Penalty>>,
    /// Per (client address, login): the lockout. Keyed by login too, so
    /// one guesser behind a NAT (or a webmail on loopback) locks out only
    /// the account it guesses at, not every user of that address.
    lockouts: Mutex<HashMap<(IpAddr, String), (u32, Instant)>>,
    /// Argon2id needs 19 MiB and ~30 ms of CPU per check: a bound keeps a
    /// flood of pre-auth logins from taking all memory and threads.
    verifying: tokio::sync::Semaphore,
    /// Failed logins per unit, shared with the SMTP rate limits.
    rates: Arc<Rates>,
    config: Arc<Live<Config>>,
    /// Logins Argon2 verified lately (see [`crate::login_cache`]).
    cache: crate::login_cache::LoginCache,
}

/// Password checks running at once (one per core is plenty).
const PARALLEL_VERIFICATIONS: usize = 2;

impl Authenticator {
    pub fn new(
        store: Arc<dyn MailStore>,
        resolver: Arc<Live<Resolver>>,
        rates: Arc<Rates>,
        config: Arc<Live<Config>>,
    ) -> Self {
        Authenticator {
            store,
            resolver,
            failures: Mutex::new(HashMap::new()),
            lockouts: Mutex::new(HashMap::new()),
            verifying: tokio::sync::Semaphore::new(PARALLEL_VERIFICATIONS),
            rates,
            config,
            cache: crate::login_cache::LoginCache::new(),
        }
    }

    /// Checks a login and password; returns the account name. Failures
    /// are delayed per client address (the delay is served here, so every
    /// protocol gets it).
    pub async fn login(
        &self,
        client: IpAddr,
        login: &str,
        password: &str,
    ) -> Result<String, AuthError> {
        let address = client;
        let client = penalty_key(client);
        let account = self.account_of(login);
        // The lockout counts per account (every spelling of it), and a
        // login that names none by its first 256 characters.
        let login_key = account.clone().unwrap_or_else(|| {
            login
                .trim()
                .chars()
                .take(256)
                .collect::<String>()
                .to_lowercase()
        });
        let anvil = self.config.get().anvil.clone();
        let (limit, unit) = (anvil.auth_failure_rate_limit, anvil.anvil_rate_time_unit.0);
        let failed = self.rates.peek(Event::AuthFailure, address, unit);
        if limit > 0 && failed >= limit {
            return Err(AuthError::TooMany);
        }
        if self.locked_out(client, &login_key) {
            tracing::debug!(client = %address, "login refused unchecked: too many failures for {login:?}");
            return Err(AuthError::Failed);
        }
        match self.reserve(client) {
            Turn::Now => {}
            Turn::After(wait) => tokio::time::sleep(wait).await,
            Turn::Refused => {
                tracing::debug!(client = %address, "login refused unchecked: too many failures");
                return Err(AuthError::Failed);
            }
        }
        let hash = match &account {
            Some(name) => match self.store.account(name) {
                Ok(Some(info)) => info.password_hash,
                Ok(None) => None,
                Err(_) => return Err(AuthError::Temporary),
            },
            None => None,
        };
        let settings = self.config.get().auth.clone();
        let (ttl, max) = (settings.cache_ttl.0, settings.cache_size);
        if let (Some(name), Some(stored)) = (&account, &hash)
            && self.cache.verified(name, stored, password, ttl)
        {
            self.forget(client, &login_key);
            return Ok(name.clone());
        }
        let stored = hash.clone();
        let password = password.to_string();
        let typed = password.clone();
        let Ok(permit) = self.verifying.acquire().await else {
            return Err(AuthError::Temporary);
        };
        // Verify even for unknown users (against nothing) so that timing
        // does not reveal which accounts exist; argon2 runs off the runtime.
        let ok = tokio::task::spawn_blocking(move || match hash {
            Some(h) => crate::password::verify(&h, &password),
            None => {
                let _ = crate::password::verify(DUMMY_HASH, &password);
                false
            }
        })
        .await
        .map_err(|_| AuthError::Temporary)?;
        // The failure delay below must not hold up other logins.
        drop(permit);
        match (ok, account) {
            (true, Some(name)) => {
                self.forget(client, &login_key);
                if let Some(stored) = &stored {
                    self.cache.remember(&name, stored, &typed, ttl, max);
                }
                Ok(name)
            }
            _ => {
                self.rates.count(Event::AuthFailure, address, unit);
                let delay = self.record_failure(client, &login_key);
                // The protocols write the lines fail2ban reads (Postfix's
                // and Dovecot's wording); this one is for debugging.
                tracing::debug!(client = %address, "authentication failed for {login:?}");
                crate::metrics::get().auth_failed();
                tokio::time::sleep(delay).await;
                Err(AuthError::Failed)
            }
        }
    }

    /// The store account a login names (`fauzan`, `fauzan@localhost`).
    pub fn account_of(&self, login: &str) -> Option<String> {
        let address = Address::parse(login.trim()).ok()?;
        self.resolver.get().account_name(&address).ok()
    }

    /// When an attempt from `client` may run: at once for a clean
    /// address; after earlier failures, in turn, one delay apart, so that
    /// thirty parallel connections guess no faster than one.
    fn reserve(&self, client: IpAddr) -> Turn {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = failures.get_mut(&client) else {
            return Turn::Now;
        };
        let now = Instant::now();
        if now.duration_since(p.last) > FORGET_AFTER {
            failures.remove(&client);
            return Turn::Now;
        }
        let start = p.next_at.max(now);
        let wait = start.duration_since(now);
        if wait > MAX_WAIT {
            return Turn::Refused;
        }
        p.next_at = start + delay_for(p.failures);
        if wait.is_zero() {
            Turn::Now
        } else {
            Turn::After(wait)
        }
    }

    /// After [`MAX_FAILURES`] failures for this login from this address,
    /// nothing is checked until [`FORGET_AFTER`] of quiet.
    fn locked_out(&self, client: IpAddr, login: &str) -> bool {
        let mut lockouts = self.lockouts.lock().unwrap_or_else(|p| p.into_inner());
        let key = (client, login.to_string());
        match lockouts.get(&key) {
            Some((_, last)) if last.elapsed() > FORGET_AFTER => {
                lockouts.remove(&key);
                false
            }
            Some((count, _)) => *count >= MAX_FAILURES,
            None => false,
        }
    }

    fn record_failure(&self, client: IpAddr, login: &str) -> Duration {
        {
            let mut lockouts = self.lockouts.lock().unwrap_or_else(|p| p.into_inner());
            if lockouts.len() >= MAX_TRACKED {
                lockouts.retain(|_, (_, last)| last.elapsed() < FORGET_AFTER);
                evict_least(&mut lockouts, |(count, _)| *count);
            }
            let entry = lockouts
                .entry((client, login.to_string()))
                .or_insert((0, Instant::now()));
            entry.0 = entry.0.saturating_add(1);
            entry.1 = Instant::now();
        }
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, p| p.last.elapsed() < FORGET_AFTER);
            evict_least(&mut failures, |p| p.failures);
        }
        let now = Instant::now();
        let entry = failures.entry(client).or_insert(Penalty {
            failures: 0,
            last: now,
            next_at: now,
        });
        if entry.last.elapsed() > FORGET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        let delay = delay_for(entry.failures);
        entry.next_at = entry.next_at.max(now + delay);
        delay
    }

    /// A good password clears that login's lockout only: the address's
    /// delays keep running, or an attacker holding one real account could
    /// reset them between guesses at others.
    fn forget(&self, client: IpAddr, login: &str) {
        self.lockouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(client, login.to_string()));
    }
}

/// The address penalties are counted for (an IPv6 /64 is one client).
fn penalty_key(ip: IpAddr) -> IpAddr {
    crate::net::anvil::client_key(ip)
}

/// When a table is full even of recent entries, the half with the fewest
/// failures goes (never the worst offenders, as clearing all would).
fn evict_least<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    count: impl Fn(&V) -> u32,
) {
    if map.len() < MAX_TRACKED {
        return;
    }
    let mut counts: Vec<u32> = map.values().map(&count).collect();
    counts.sort_unstable();
    let median = counts.get(counts.len() / 2).copied().unwrap_or(0);
    map.retain(|_, v| count(v) > median);
}

/// The penalty after `failures` failures: doubling from [`BASE_DELAY`].
fn delay_for(failures: u32) -> Duration {
    BASE_DELAY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(8))
        .min(MAX_DELAY)
}

enum Turn {
    Now,
    After(Duration),
    Refused,
}

/// A valid Argon2id hash of a random password, verified against when the
/// account does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0YvVZ2m1k8Vd9yQyY5s8Yx3pQm0yE5nJmM1dQm9hCkA";

/// A server-side SASL exchange for PLAIN (RFC 4616) or LOGIN, sans-IO:
/// it says which challenge to send next and what the responses added up
/// to; each protocol sends and reads them in its own framing (POP3's
/// `+ `, ManageSieve's strings) and handles cancels and bad base64.
pub struct SaslExchange {
    login: bool,
    /// LOGIN: the user name, once given.
    username: Option<Vec<u8>>,
}

/// What comes next in a [`SaslExchange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge (not yet base64-encoded) and respond with what
    /// comes back.
    Challenge(&'static [u8]),
    /// The exchange gave a login and a password to check.
    Credentials { login: String, password: String },
    /// Malformed credentials: a failed login.
    Failed,
}

impl SaslExchange {
    /// `None` for a mechanism we do not offer.
    pub fn new(mechanism: &str) -> Option<SaslExchange> {
        let login = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => false,
            "LOGIN" => true,
            _ => return None,
        };
        Some(SaslExchange {
            login,
            username: None,
        })
    }

    /// The mechanism, for log lines.
    pub fn method(&self) -> &'static str {
        if self.login { "LOGIN" } else { "PLAIN" }
    }

    /// The first step, with the client's initial response if it sent one
    /// (for LOGIN, the user name).
    pub fn start(&mut self, initial: Option<Vec<u8>>) -> SaslStep {
        match initial {
            Some(data) => self.respond(data),
            None if self.login => SaslStep::Challenge(b"Username:"),
            None => SaslStep::Challenge(b""),
        }
    }

    /// The client's (decoded) response to the last challenge.
    pub fn respond(&mut self, data: Vec<u8>) -> SaslStep {
        if !self.login {
            return match decode_plain(&data) {
                Some((login, password)) => SaslStep::Credentials { login, password },
                None => SaslStep::Failed,
            };
        }
        let Some(username) = self.username.take() else {
            self.username = Some(data);
            return SaslStep::Challenge(b"Password:");
        };
        match (String::from_utf8(username), String::from_utf8(data)) {
            (Ok(login), Ok(password)) if !login.is_empty() => {
                SaslStep::Credentials { login, password }
            }
            _ => SaslStep::Failed,
        }
    }
}

/// SASL PLAIN (RFC 4616) message, base64-decoded: `authzid\0authcid\0passwd`.
/// Returns (login, password); an authzid other than empty or the login
/// itself is refused (no proxy logins).
pub fn decode_plain(decoded: &[u8]) -> Option<(String, String)> {
    let mut parts = decoded.split(|&b| b == 0);
    let authzid = std::str::from_utf8(parts.next()?).ok()?;
    let authcid = std::str::from_utf8(parts.next()?).ok()?;
    let password = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() || authcid.is_empty() {
        return None;
    }
    if !authzid.is_empty() && authzid != authcid {
        return None;
    }
    Some((authcid.to_string(), password.to_string()))
}

/// Lower-case hex of `bytes` (digests in keys and identifiers).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Standard base64 (RFC 4648 §4) decoding, tolerant of missing padding;
/// `None` on anything else. SASL exchanges are short, so a tiny decoder
/// beats a dependency.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    // One character of a group carries only 6 bits: never a whole text
    // (a cut one, say).
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = base64_value(c, b'/')?;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The value of one base64 character; `sixty_three` is the character for
/// 63 (`/` in RFC 4648, `,` in IMAP's modified base64).
pub(crate) fn base64_value(c: u8, sixty_three: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        _ if c == sixty_three => Some(63),
        _ => None,
    }
}

pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_exchanges() {
        let mut plain = SaslExchange::new("plain").unwrap();
        assert_eq!(plain.start(None), SaslStep::Challenge(b""));
        assert_eq!(
            plain.respond(b"\0bob\0pw".to_vec()),
            SaslStep::Credentials {
                login: "bob".into(),
                password: "pw".into()
            }
        );
        let mut login = SaslExchange::new("LOGIN").unwrap();
        assert_eq!(
            login.start(Some(b"bob".to_vec())),
            SaslStep::Challenge(b"Password:")
        );
        assert_eq!(
            login.respond(b"pw".to_vec()),
            SaslStep::Credentials {
                login: "bob".into(),
                password: "pw".into()
            }
        );
        let mut login = SaslExchange::new("LOGIN").unwrap();
        assert_eq!(login.start(None), SaslStep::Challenge(b"Username:"));
        assert_eq!(login.respond(Vec::new()), SaslStep::Challenge(b"Password:"));
        assert_eq!(login.respond(b"pw".to_vec()), SaslStep::Failed);
        assert!(SaslExchange::new("CRAM-MD5").is_none());
        assert_eq!(
            SaslExchange::new("PLAIN")
                .unwrap()
                .start(Some(b"junk".to_vec())),
            SaslStep::Failed
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(penalty_key(a), penalty_key(b));
        assert_ne!(penalty_key(a), penalty_key(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(penalty_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(penalty_key(mapped), v4);
    }

    #[test]
    fn base64_round_trip() {
        for s in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "\0user\0pass",
        ] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert!(base64_decode("Zm9v!").is_none());
    }

    #[test]
    fn plain_messages() {
        assert_eq!(
            decode_plain(b"\0fauzan\0rahasia"),
            Some(("fauzan".into(), "rahasia".into()))
        );
        assert_eq!(
            decode_plain(b"fauzan\0fauzan\0pw"),
            Some(("fauzan".into(), "pw".into()))
        );
        assert_eq!(decode_plain(b"admin\0fauzan\0pw"), None);
        assert_eq!(decode_plain(b"\0\0pw"), None);
        assert_eq!(decode_plain(b"no-nul"), None);
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}

/// The failed logins of one IMAP or POP3 connection, for the line Dovecot
/// writes when such a connection ends without a login (the line fail2ban's
/// stock `dovecot` filter reads):
/// `imap-login: Disconnected (auth failed, 2 attempts in 3 secs): user=<u>,
/// method=PLAIN, rip=192.0.2.7, lip=198.51.100.1`.
#[derive(Debug, Default)]
pub struct FailedLogins {
    attempts: u32,
    user: String,
    method: String,
    first: Option<std::time::Instant>,
}

impl FailedLogins {
    pub fn record(&mut self, user: &str, method: &str) {
        self.attempts = self.attempts.saturating_add(1);
        // The name comes from the client: keep it printable and short.
        self.user = user
            .chars()
            .filter(|c| !c.is_control() && *c != '<' && *c != '>')
            .take(128)
            .collect();
        self.method = method.to_string();
        self.first.get_or_insert_with(std::time::Instant::now);
    }

    /// The summary line, if there were failures (`service`: imap, pop3).
    pub fn summary(&self, service: &str, rip: IpAddr, lip: IpAddr) -> Option<String> {
        let first = self.first?;
        Some(format!(
            "{service}-login: Disconnected (auth failed, {} attempts in {} secs): user=<{}>, method={}, rip={rip}, lip={lip}",
            self.attempts,
            first.elapsed().as_secs(),
            self.user,
            self.method
        ))
    }
}
