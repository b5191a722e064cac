//! Greylisting with postgrey's semantics: the first delivery attempt of a
//! (client network, sender, recipient) triplet is deferred; a retry after
//! `delay` and within `retry_window` passes, and the triplet passes at
//! once from then on. A client network that passed `auto_allow_clients`
//! times is let through without a triplet check. Nothing here drops mail:
//! the worst answer is a 450 that a real MTA retries.
//!
//! The table lives in memory and is written to `<data_dir>/greylist.tsv`
//! every `save_interval` (and read at start), so a restart does not
//! greylist every known sender again. Losing the last minute of it only
//! means a triplet is deferred once more.

use crate::config::{Cidr, Greylist as Settings};
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The answer for one triplet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through; the reason goes in the log line.
    Pass(&'static str),
    /// Try again in this many seconds (`reason` is postgrey's `new` or
    /// `early-retry`).
    Defer { seconds: u64, reason: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Triplet {
    first: u64,
    last: u64,
    passed: bool,
}

impl Triplet {
    fn fresh(now: u64) -> Triplet {
        Triplet {
            first: now,
            last: now,
            passed: false,
        }
    }
}

impl Decision {
    fn new_triplet(delay: u64) -> Decision {
        Decision::Defer {
            seconds: delay,
            reason: "new",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Client {
    /// Times this network passed greylisting (at most once an hour).
    count: u32,
    last: u64,
}

#[derive(Default)]
struct Table {
    triplets: HashMap<String, Triplet>,
    clients: HashMap<String, Client>,
    dirty: bool,
}

/// The greylisting table every SMTP session shares.
pub struct Greylist {
    table: Mutex<Table>,
    path: PathBuf,
}

/// Passes of one client network closer together than this count once
/// (postgrey counts a client's deliveries, not its recipients).
const AUTO_ALLOW_SPACING: u64 = 3600;

impl Greylist {
    /// The table saved at `path`, or an empty one when there is none (or
    /// it cannot be read: greylisting starts over, nothing is lost).
    pub fn open(path: &Path) -> Greylist {
        let mut table = Table::default();
        match std::fs::read_to_string(path) {
            Ok(text) => table.parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("greylist: cannot read {}: {e}", path.display()),
        }
        Greylist {
            table: Mutex::new(table),
            path: path.to_path_buf(),
        }
    }

    /// Whether `ip` is on `allow_clients` (as parsed into `networks`).
    pub fn allows_client(networks: &[Cidr], ip: IpAddr) -> bool {
        networks.iter().any(|n| n.contains(ip))
    }

    /// Whether the sender's domain may skip greylisting once SPF or DKIM
    /// vouch for it.
    pub fn allows_domain(settings: &Settings, sender: &str) -> Option<String> {
        let domain = sender.rsplit_once('@')?.1.to_ascii_lowercase();
        let listed = settings.allow_domains.iter().any(|d| {
            let d = d.trim_start_matches('.');
            domain == d.to_ascii_lowercase() || domain.ends_with(&format!(".{d}"))
        });
        listed.then_some(domain)
    }

    /// Decides for one triplet at time `now` (seconds since the epoch).
    pub fn check(
        &self,
        settings: &Settings,
        ip: IpAddr,
        sender: &str,
        recipient: &str,
        delimiter: &str,
        now: u64,
    ) -> Decision {
        let net = network(ip, settings);
        let key = format!(
            "{net}/{}/{}",
            normal_sender(sender, delimiter),
            recipient.to_ascii_lowercase()
        );
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.dirty = true;
        let auto = settings.auto_allow_clients;
        if auto > 0
            && let Some(client) = table.clients.get_mut(&net)
            && client.count >= auto
        {
            client.last = now;
            return Decision::Pass("client AWL");
        }
        let delay = settings.delay.0.as_secs();
        let window = settings.retry_window.0.as_secs();
        let decision = match table.triplets.get_mut(&key) {
            Some(t) if t.passed => {
                t.last = now;
                return Decision::Pass("triplet found");
            }
            Some(t) if now.saturating_sub(t.first) > window => {
                *t = Triplet::fresh(now);
                Decision::new_triplet(delay)
            }
            Some(t) if now.saturating_sub(t.first) >= delay => {
                t.passed = true;
                t.last = now;
                Decision::Pass("delayed")
            }
            Some(t) => {
                t.last = now;
                Decision::Defer {
                    seconds: delay - now.saturating_sub(t.first),
                    reason: "early-retry",
                }
            }
            None => {
                table.make_room(settings.max_entries, now, settings.max_age.0.as_secs());
                table.triplets.insert(key, Triplet::fresh(now));
                Decision::new_triplet(delay)
            }
        };
        if decision == Decision::Pass("delayed") {
            let client = table
                .clients
                .entry(net)
                .or_insert(Client { count: 0, last: 0 });
            if client.count == 0 || now.saturating_sub(client.last) >= AUTO_ALLOW_SPACING {
                client.count = client.count.saturating_add(1);
                client.last = now;
            }
        }
        decision
    }

    /// Forgets what is older than `max_age` and writes the table if it
    /// changed. Runs on the save timer, off the SMTP sessions' path.
    pub fn save(&self, settings: &Settings, now: u64) -> std::io::Result<()> {
        let text = {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            if !table.dirty {
                return Ok(());
            }
            table.expire(now, settings.max_age.0.as_secs());
            table.dirty = false;
            table.render()
        };
        let tmp = self.path.with_extension("tsv.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Triplets and client networks held (for tests and `merpati status`).
    pub fn len(&self) -> (usize, usize) {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        (table.triplets.len(), table.clients.len())
    }
}

impl Table {
    fn expire(&mut self, now: u64, max_age: u64) {
        self.triplets
            .retain(|_, t| now.saturating_sub(t.last) <= max_age);
        self.clients
            .retain(|_, c| now.saturating_sub(c.last) <= max_age);
    }

    /// Keeps the table under `max` triplets: expired ones go first, then
    /// a tenth of the table, triplets that never passed before those that
    /// did (a flood of new triplets must not push out the senders who
    /// proved themselves), least recently seen first.
    fn make_room(&mut self, max: usize, now: u64, max_age: u64) {
        if self.triplets.len() < max {
            return;
        }
        self.expire(now, max_age);
        if self.triplets.len() < max {
            return;
        }
        let cut = (self.triplets.len() / 10).max(1);
        let mut order: Vec<(bool, u64, String)> = self
            .triplets
            .iter()
            .map(|(k, t)| (t.passed, t.last, k.clone()))
            .collect();
        order.sort_unstable();
        for (_, _, key) in order.into_iter().take(cut) {
            self.triplets.remove(&key);
        }
    }

    /// `T\tkey\tfirst\tlast\tpassed` and `C\tnetwork\tcount\tlast` lines.
    fn render(&self) -> String {
        let mut out = String::new();
        for (key, t) in &self.triplets {
            out.push_str(&format!(
                "T\t{key}\t{}\t{}\t{}\n",
                t.first,
                t.last,
                u8::from(t.passed)
            ));
        }
        for (net, c) in &self.clients {
            out.push_str(&format!("C\t{net}\t{}\t{}\n", c.count, c.last));
        }
        out
    }

    /// Reads what `render` wrote; a damaged line is skipped.
    fn parse(&mut self, text: &str) {
        for line in text.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                ["T", key, first, last, passed] => {
                    if let (Ok(first), Ok(last)) = (first.parse(), last.parse()) {
                        let passed = *passed == "1";
                        let t = Triplet {
                            first,
                            last,
                            passed,
                        };
                        self.triplets.insert((*key).to_string(), t);
                    }
                }
                ["C", net, count, last] => {
                    if let (Ok(count), Ok(last)) = (count.parse(), last.parse()) {
                        self.clients
                            .insert((*net).to_string(), Client { count, last });
                    }
                }
                _ => {}
            }
        }
    }
}

/// The client's network at the configured prefix (`192.0.2.0/24`).
fn network(ip: IpAddr, settings: &Settings) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let prefix = settings.ipv4_prefix.min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            let net = std::net::Ipv4Addr::from(u32::from(v4) & mask);
            format!("{net}/{prefix}")
        }
        IpAddr::V6(v6) => {
            let prefix = settings.ipv6_prefix.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            let net = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{net}/{prefix}")
        }
    }
}

/// postgrey's sender normalisation: lower case, no address extension, and
/// runs of digits in the local part folded to `#`, so VERP and
/// per-message bounce addresses make one triplet, not one per message.
fn normal_sender(sender: &str, delimiter: &str) -> String {
    let sender = sender.to_ascii_lowercase();
    let (local, domain) = match sender.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => return sender,
    };
    let local = match delimiter.chars().next() {
        Some(c) => local.split(c).next().unwrap_or(local),
        None => local,
    };
    let mut folded = String::with_capacity(local.len());
    for c in local.chars() {
        if c.is_ascii_digit() {
            if !folded.ends_with('#') {
                folded.push('#');
            }
        } else {
            folded.push(c);
        }
    }
    format!("{folded}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Span;

    fn settings() -> Settings {
        Settings {
            enabled: true,
            delay: Span::secs(300),
            ..Settings::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn new_then_early_then_passes_after_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let g = Greylist::open(&dir.path().join("g.tsv"));
        let s = settings();
        let c = |t| g.check(&s, ip("192.0.2.7"), "a@x.example", "b@y.example", "+", t);
        assert_eq!(
            c(1000),
            Decision::Defer {
                seconds: 300,
                reason: "new"
            }
        );
        assert_eq!(
            c(1100),
            Decision::Defer {
                seconds: 200,
                reason: "early-retry"
            }
        );
        assert_eq!(c(1300), Decision::Pass("delayed"));
        assert_eq!(c(1301), Decision::Pass("triplet found"));
        // Another host in the same /24, another extension: the same triplet.
        let same = g.check(
            &s,
            ip("192.0.2.99"),
            "A+x@X.example",
            "b@y.example",
            "+",
            1302,
        );
        assert_eq!(same, Decision::Pass("triplet found"));
    }

    #[test]
    fn a_retry_past_the_window_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let g = Greylist::open(&dir.path().join("g.tsv"));
        let s = settings();
        let c = |t| g.check(&s, ip("192.0.2.7"), "a@x.example", "b@y.example", "+", t);
        c(0);
        let late = 2 * 86_400 + 1;
        assert!(matches!(c(late), Decision::Defer { reason: "new", .. }));
    }

    #[test]
    fn clients_are_auto_allowed_after_n_passes() {
        let dir = tempfile::tempdir().unwrap();
        let g = Greylist::open(&dir.path().join("g.tsv"));
        let s = Settings {
            auto_allow_clients: 2,
            ..settings()
        };
        let mut t = 0;
        for n in 0..2 {
            let rcpt = format!("r{n}@y.example");
            g.check(&s, ip("198.51.100.1"), "a@x.example", &rcpt, "+", t);
            t += 300;
            assert_eq!(
                g.check(&s, ip("198.51.100.1"), "a@x.example", &rcpt, "+", t),
                Decision::Pass("delayed")
            );
            t += 3600;
        }
        let fresh = g.check(
            &s,
            ip("198.51.100.2"),
            "new@z.example",
            "q@y.example",
            "+",
            t,
        );
        assert_eq!(fresh, Decision::Pass("client AWL"));
    }

    #[test]
    fn the_table_survives_a_restart_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.tsv");
        let s = Settings {
            max_entries: 10,
            ..settings()
        };
        let g = Greylist::open(&path);
        for n in 0..25 {
            g.check(
                &s,
                ip("192.0.2.1"),
                "a@x.example",
                &format!("{n}@y"),
                "+",
                n,
            );
        }
        assert!(g.len().0 <= 10, "{:?}", g.len());
        assert!(g.len().0 >= 8, "{:?}", g.len());
        g.check(&s, ip("192.0.2.1"), "a@x.example", "keep@y", "+", 100);
        g.save(&s, 100).unwrap();
        let again = Greylist::open(&path);
        assert_eq!(again.len(), g.len());
        let retry = again.check(&s, ip("192.0.2.1"), "a@x.example", "keep@y", "+", 400);
        assert_eq!(retry, Decision::Pass("delayed"));
    }

    #[test]
    fn a_flood_of_new_triplets_does_not_push_out_passed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let g = Greylist::open(&dir.path().join("g.tsv"));
        let s = Settings {
            max_entries: 20,
            auto_allow_clients: 0,
            ..settings()
        };
        let good = ip("198.51.100.7");
        g.check(&s, good, "friend@x", "me@y", "+", 0);
        assert_eq!(
            g.check(&s, good, "friend@x", "me@y", "+", 400),
            Decision::Pass("delayed")
        );
        for n in 0..500u64 {
            // Letters, not digits: digit runs fold into one triplet.
            let name: String = [n / 26, n % 26]
                .iter()
                .map(|d| char::from(b'a' + *d as u8))
                .collect();
            g.check(
                &s,
                ip("192.0.2.1"),
                &format!("{name}@spam"),
                "me@y",
                "+",
                500 + n,
            );
        }
        assert!(g.len().0 <= 20);
        assert_eq!(
            g.check(&s, good, "friend@x", "me@y", "+", 2000),
            Decision::Pass("triplet found")
        );
    }

    #[test]
    fn networks_and_senders_are_normalised() {
        let s = settings();
        assert_eq!(network(ip("192.0.2.77"), &s), "192.0.2.0/24");
        assert_eq!(network(ip("::ffff:192.0.2.77"), &s), "192.0.2.0/24");
        assert_eq!(network(ip("2001:db8:1:2:3::9"), &s), "2001:db8:1:2::/64");
        assert_eq!(
            normal_sender("Bounce-1234-77@List.example", "+"),
            "bounce-#-#@list.example"
        );
        assert_eq!(normal_sender("", "+"), "");
    }

    #[test]
    fn allowlists() {
        let s = Settings {
            allow_clients: vec!["203.0.113.0/24".into()],
            allow_domains: vec!["example.org".into()],
            ..settings()
        };
        let nets: Vec<Cidr> = s.allow_clients.iter().map(|n| n.parse().unwrap()).collect();
        assert!(Greylist::allows_client(&nets, ip("203.0.113.9")));
        assert!(!Greylist::allows_client(&nets, ip("192.0.2.9")));
        assert_eq!(
            Greylist::allows_domain(&s, "a@mail.Example.org").as_deref(),
            Some("mail.example.org")
        );
        assert_eq!(Greylist::allows_domain(&s, "a@badexample.org"), None);
    }
}
