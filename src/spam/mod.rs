//! The spam filter: every message from another server (port 25, outside
//! mynetworks) gets a score from the fixed tests (`rules`), the DNS lists
//! (client address and link domains, bounded), the user's allow and block
//! lists (`lists`) and a statistical classifier (`bayes`) kept per user
//! with a global table as the fallback. The session turns the score into
//! `X-Spam-Status`/`X-Spam-Score`, the Junk mailbox, or a 550.
//!
//! Learning: IMAP COPY/MOVE into Junk learns spam for that user, out of
//! Junk learns ham; `merpati spam train` learns a whole mailbox. Every
//! lesson also goes into the global table. Users' tables live in the mail
//! store with the account (`spam.tokens`, `spam.lists`); the global one in
//! `<data_dir>/spam-global.tokens`. At most `cache_users` tables are kept
//! in memory.

pub mod admin;
pub mod bayes;
pub mod links;
pub mod lists;
pub mod rules;
pub mod tokens;

use crate::config::Spam as Settings;
use crate::dns::Resolver;
use crate::mailauth::Results;
use crate::policy::dnsbl::Site;
use crate::store::{MailStore, StoreError};
use bayes::{Learnt, TokenTable};
use lists::Lists;
use rules::{Arrival, Content};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The store key of a user's token table.
const TOKENS_KEY: &str = "spam.tokens";
/// The store key of a user's allow and block lists.
const LISTS_KEY: &str = "spam.lists";
pub const GLOBAL_FILE: &str = "spam-global.tokens";
const ALLOW_SCORE: f64 = -100.0;
const BLOCK_SCORE: f64 = 100.0;

/// What a lesson did, message by message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lessons {
    pub new: usize,
    /// Had been learnt as the other kind.
    pub moved: usize,
    pub already: usize,
}

/// The DNS lists the filter asks (`[spam] dnsbl_sites`, `uribl_sites`),
/// parsed once per configuration (`policy::Rules`).
pub struct Sites<'a> {
    pub client: &'a [Site],
    pub uri: &'a [Site],
}

/// A message looked at once, before it is judged for each recipient.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Fixed and DNS tests that fired, with their scores.
    pub hits: Vec<(String, f64)>,
    pub content: Content,
    pub sender: String,
    pub auth: Option<Results>,
}

/// The verdict for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub score: f64,
    pub required: f64,
    /// Test names, sorted.
    pub tests: Vec<String>,
}

impl Report {
    pub fn is_spam(&self) -> bool {
        self.score >= self.required
    }

    /// `Yes, score=7.3 required=5.0 tests=BAYES_99,MISSING_DATE`, as
    /// SpamAssassin writes it.
    pub fn status(&self) -> String {
        let tests = if self.tests.is_empty() {
            "none".to_string()
        } else {
            self.tests.join(",")
        };
        format!(
            "{}, score={:.1} required={:.1} tests={tests}",
            if self.is_spam() { "Yes" } else { "No" },
            self.score,
            self.required
        )
    }
}

struct Cached<T> {
    value: Arc<T>,
    used: u64,
}

#[derive(Default)]
struct Cache {
    tables: HashMap<String, Cached<TokenTable>>,
    lists: HashMap<String, Cached<Lists>>,
    global: Option<Arc<TokenTable>>,
    clock: u64,
}

pub struct SpamFilter {
    store: Arc<dyn MailStore>,
    global_path: PathBuf,
    cache: Mutex<Cache>,
    /// One lesson at a time: each is a read-modify-write of two tables.
    learning: Mutex<()>,
}

impl SpamFilter {
    pub fn new(store: Arc<dyn MailStore>, data_dir: &Path) -> SpamFilter {
        SpamFilter {
            store,
            global_path: data_dir.join(GLOBAL_FILE),
            cache: Mutex::new(Cache::default()),
            learning: Mutex::new(()),
        }
    }

    /// Runs the fixed tests and the DNS lookups (all within
    /// `lookup_timeout`; unanswered ones count as not listed).
    pub async fn analyse(
        &self,
        settings: &Settings,
        sites: &Sites<'_>,
        dns: Arc<dyn Resolver>,
        message: &[u8],
        sender: &str,
        arrival: Arrival<'_>,
    ) -> Analysis {
        let max_scan = usize::try_from(settings.max_scan_size.0).unwrap_or(usize::MAX);
        let content = rules::inspect(message, max_scan, settings.max_uri_lookups);
        let mut names = content.hits.clone();
        rules::arrival_tests(message, &arrival, &mut names);
        let mut hits: Vec<(String, f64)> = names
            .into_iter()
            .map(|n| (n.to_string(), rules::score(n)))
            .collect();
        hits.extend(dns_tests(settings, sites, dns, arrival.client_ip, &content.links).await);
        Analysis {
            hits,
            content,
            sender: sender.to_string(),
            auth: arrival.auth.cloned(),
        }
    }

    /// The verdict for `account` (`None`: a recipient without a mailbox
    /// here, judged by the global table).
    pub fn judge(&self, settings: &Settings, analysis: &Analysis, account: Option<&str>) -> Report {
        let mut tests: Vec<(String, f64)> = analysis.hits.clone();
        if let Some(account) = account {
            let lists = self.lists(account);
            let from = analysis.content.from.as_deref();
            match lists.verdict(&analysis.sender, from, analysis.auth.as_ref()) {
                Some(name @ "USER_IN_BLOCKLIST") => tests.push((name.into(), BLOCK_SCORE)),
                Some(name) => tests.push((name.into(), ALLOW_SCORE)),
                None => {}
            }
        }
        if let Some(p) = self.probability(settings, account, &analysis.content.tokens) {
            let (name, score) = bayes_test(p);
            tests.push((name.into(), score));
        }
        let score: f64 = tests.iter().map(|(_, s)| s).sum();
        let mut names: Vec<String> = tests.into_iter().map(|(n, _)| n).collect();
        names.sort();
        Report {
            score: (score * 10.0).round() / 10.0,
            required: settings.required_score,
            tests: names,
        }
    }

    /// The classifier's spam probability, from the user's table when it
    /// has learnt enough, else from the global one; `None` when neither has.
    fn probability(
        &self,
        settings: &Settings,
        account: Option<&str>,
        tokens: &[u32],
    ) -> Option<f64> {
        if let Some(account) = account {
            let table = self.table(account, settings.cache_users);
            if table.ready(settings.min_learns) {
                return Some(table.classify(tokens));
            }
        }
        let global = self.global();
        global
            .ready(settings.min_learns)
            .then(|| global.classify(tokens))
    }

    /// Learns `message` as spam or ham for `account` and globally.
    pub fn learn(
        &self,
        settings: &Settings,
        account: &str,
        message: &[u8],
        spam: bool,
    ) -> Result<Learnt, StoreError> {
        let counts = self.learn_many(settings, account, std::iter::once(message.to_vec()), spam)?;
        Ok(if counts.new > 0 {
            Learnt::New
        } else if counts.moved > 0 {
            Learnt::Relearnt
        } else {
            Learnt::Already
        })
    }

    /// Learns many messages in one lesson: both tables are read once and
    /// written once, however many messages there are.
    pub fn learn_many(
        &self,
        settings: &Settings,
        account: &str,
        messages: impl Iterator<Item = Vec<u8>>,
        spam: bool,
    ) -> Result<Lessons, StoreError> {
        let max_scan = usize::try_from(settings.max_scan_size.0).unwrap_or(usize::MAX);
        let _one = self.learning.lock().unwrap_or_else(|p| p.into_inner());
        let mut table = (*self.table(account, settings.cache_users)).clone();
        let mut global = (*self.global()).clone();
        let mut counts = Lessons::default();
        for message in messages {
            let content = rules::inspect(&message, max_scan, settings.max_uri_lookups);
            match table.learn(&content.tokens, content.digest, spam, settings.max_tokens) {
                Learnt::New => counts.new += 1,
                Learnt::Relearnt => counts.moved += 1,
                Learnt::Already => {
                    counts.already += 1;
                    continue;
                }
            }
            global.learn(&content.tokens, content.digest, spam, settings.max_tokens);
        }
        if counts.new + counts.moved == 0 {
            return Ok(counts);
        }
        self.store
            .set_account_data(account, TOKENS_KEY, Some(&table.encode()))?;
        if let Err(e) = write_atomically(&self.global_path, &global.encode()) {
            // The user's lesson is kept; the global table catches up on
            // the next one.
            tracing::warn!("spam: cannot write {}: {e}", self.global_path.display());
        }
        let mut cache = self.lock();
        let max = settings.cache_users;
        remember(&mut cache, |c| &mut c.tables, account, Arc::new(table), max);
        cache.global = Some(Arc::new(global));
        Ok(counts)
    }

    /// The user's lists.
    pub fn lists(&self, account: &str) -> Arc<Lists> {
        if let Some(hit) = self.cached(account, |c| &mut c.lists) {
            return hit;
        }
        let lists = match self.store.account_data(account, LISTS_KEY) {
            Ok(Some(bytes)) => Lists::decode(&bytes),
            _ => Lists::default(),
        };
        let lists = Arc::new(lists);
        let mut cache = self.lock();
        remember(&mut cache, |c| &mut c.lists, account, lists.clone(), 10_000);
        lists
    }

    /// Changes the user's lists with `change` and stores them.
    pub fn change_lists(
        &self,
        account: &str,
        change: impl FnOnce(&mut Lists) -> Result<(), String>,
    ) -> Result<Lists, String> {
        let _one = self.learning.lock().unwrap_or_else(|p| p.into_inner());
        self.forget(account);
        let mut lists = (*self.lists(account)).clone();
        change(&mut lists)?;
        self.store
            .set_account_data(account, LISTS_KEY, Some(&lists.encode()))
            .map_err(|e| e.to_string())?;
        self.forget(account);
        Ok(lists)
    }

    /// Whether judging for `account` needs nothing from the store (its
    /// table and lists, and the global table, are in memory).
    pub fn ready_in_memory(&self, account: Option<&str>) -> bool {
        let cache = self.lock();
        cache.global.is_some()
            && account.is_none_or(|a| cache.tables.contains_key(a) && cache.lists.contains_key(a))
    }

    /// Drops what is cached for `account` (after a change made elsewhere).
    pub fn forget(&self, account: &str) {
        let mut cache = self.lock();
        cache.tables.remove(account);
        cache.lists.remove(account);
        cache.global = None;
    }

    /// How much a user's table holds: (spam learnt, ham learnt, tokens).
    pub fn table_size(&self, settings: &Settings, account: &str) -> (u32, u32, usize) {
        let t = self.table(account, settings.cache_users);
        (t.spam_learned, t.ham_learned, t.len())
    }

    /// The user's table, from the cache or the store; at most
    /// `cache_users` are kept in memory.
    fn table(&self, account: &str, cache_users: usize) -> Arc<TokenTable> {
        if let Some(hit) = self.cached(account, |c| &mut c.tables) {
            return hit;
        }
        let table = match self.store.account_data(account, TOKENS_KEY) {
            Ok(Some(bytes)) => TokenTable::decode(&bytes).unwrap_or_else(|| {
                tracing::warn!("spam: the token table of {account} is damaged; starting afresh");
                TokenTable::default()
            }),
            _ => TokenTable::default(),
        };
        let table = Arc::new(table);
        let mut cache = self.lock();
        remember(
            &mut cache,
            |c| &mut c.tables,
            account,
            table.clone(),
            cache_users,
        );
        table
    }

    fn global(&self) -> Arc<TokenTable> {
        if let Some(global) = self.lock().global.clone() {
            return global;
        }
        let table = match std::fs::read(&self.global_path) {
            Ok(bytes) => TokenTable::decode(&bytes).unwrap_or_default(),
            Err(_) => TokenTable::default(),
        };
        let table = Arc::new(table);
        self.lock().global = Some(table.clone());
        table
    }

    fn cached<T>(
        &self,
        account: &str,
        pick: impl FnOnce(&mut Cache) -> &mut HashMap<String, Cached<T>>,
    ) -> Option<Arc<T>> {
        let mut cache = self.lock();
        cache.clock += 1;
        let now = cache.clock;
        let entry = pick(&mut cache).get_mut(account)?;
        entry.used = now;
        Some(entry.value.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Caches `value` for `account` in the map `pick` chooses, keeping at
/// most `max` entries there.
fn remember<T>(
    cache: &mut Cache,
    pick: impl FnOnce(&mut Cache) -> &mut HashMap<String, Cached<T>>,
    account: &str,
    value: Arc<T>,
    max: usize,
) {
    cache.clock += 1;
    let used = cache.clock;
    let map = pick(cache);
    map.insert(account.to_string(), Cached { value, used });
    trim(map, max);
}

/// Keeps at most `max` entries: the least recently used go.
fn trim<T>(map: &mut HashMap<String, Cached<T>>, max: usize) {
    while map.len() > max {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, c)| c.used)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        map.remove(&oldest);
    }
}

/// SpamAssassin's BAYES_* tests for a probability.
fn bayes_test(p: f64) -> (&'static str, f64) {
    const BANDS: &[(f64, &str, f64)] = &[
        (0.99, "BAYES_99", 3.5),
        (0.95, "BAYES_95", 3.0),
        (0.80, "BAYES_80", 2.0),
        (0.60, "BAYES_60", 1.5),
        (0.40, "BAYES_50", 0.8),
        (0.20, "BAYES_40", -0.001),
        (0.05, "BAYES_20", -0.001),
        (0.01, "BAYES_05", -0.5),
    ];
    BANDS
        .iter()
        .find(|(at, _, _)| p >= *at)
        .map_or(("BAYES_00", -1.9), |(_, name, score)| (*name, *score))
}

/// The client's DNS lists and the link domains' blocklists, looked up
/// together within `lookup_timeout`; each zone counts once.
async fn dns_tests(
    settings: &Settings,
    sites: &Sites<'_>,
    dns: Arc<dyn Resolver>,
    ip: IpAddr,
    links: &[String],
) -> Vec<(String, f64)> {
    if sites.client.is_empty() && (sites.uri.is_empty() || links.is_empty()) {
        return Vec::new();
    }
    let mut set = tokio::task::JoinSet::new();
    for site in sites.client.iter().cloned() {
        let dns = dns.clone();
        set.spawn(async move {
            let listed = site.check_ip(dns.as_ref(), ip).await;
            matches!(listed, Ok(Some(_))).then(|| (test_name("RCVD_IN", &site.zone), site.weight))
        });
    }
    for site in sites.uri {
        for domain in links.iter().take(settings.max_uri_lookups) {
            let (dns, site, domain) = (dns.clone(), site.clone(), domain.clone());
            set.spawn(async move {
                let listed = site.check_domain(dns.as_ref(), &domain).await;
                matches!(listed, Ok(Some(_))).then(|| (test_name("URIBL", &site.zone), site.weight))
            });
        }
    }
    let mut hits: Vec<(String, f64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + settings.lookup_timeout.0;
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, set.join_next()).await {
        if let Ok(Some((name, weight))) = done
            && !hits.iter().any(|(n, _)| *n == name)
        {
            hits.push((name, f64::from(weight)));
        }
    }
    set.abort_all();
    hits
}

/// `RCVD_IN_ZEN_SPAMHAUS_ORG` from `zen.spamhaus.org`.
fn test_name(prefix: &str, zone: &str) -> String {
    let zone: String = zone
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}_{zone}")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Removes the X-Spam-* fields a message arrived with: only ours count.
pub fn strip_foreign_status(message: &[u8]) -> Option<Vec<u8>> {
    const OURS: [&[u8]; 3] = [b"x-spam-status:", b"x-spam-score:", b"x-spam-flag:"];
    let end = crate::rfc5322::scan_headers(message).end;
    let header = message.get(..end)?;
    let mut out = Vec::with_capacity(message.len());
    let mut dropping = false;
    let mut changed = false;
    for line in header.split_inclusive(|b| *b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            dropping = OURS.iter().any(|name| {
                line.get(..name.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(name))
            });
        }
        if dropping {
            changed = true;
        } else {
            out.extend_from_slice(line);
        }
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(message.get(end..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_status() {
        assert_eq!(bayes_test(0.999).0, "BAYES_99");
        assert_eq!(bayes_test(0.5).0, "BAYES_50");
        assert_eq!(bayes_test(0.0).0, "BAYES_00");
        let r = Report {
            score: 7.25,
            required: 5.0,
            tests: vec!["BAYES_99".into(), "GTUBE".into()],
        };
        assert_eq!(
            r.status(),
            "Yes, score=7.2 required=5.0 tests=BAYES_99,GTUBE"
        );
        assert_eq!(
            test_name("URIBL", "multi.surbl.org"),
            "URIBL_MULTI_SURBL_ORG"
        );
    }

    #[test]
    fn foreign_status_headers_are_removed() {
        let m = b"X-Spam-Status: No, score=-100\r\n\tfolded\r\nSubject: hi\r\nx-spam-score: -9\r\n\r\nX-Spam-Status: body\r\n";
        let out = strip_foreign_status(m).unwrap();
        assert_eq!(out, b"Subject: hi\r\n\r\nX-Spam-Status: body\r\n");
        assert_eq!(strip_foreign_status(b"Subject: x\r\n\r\nbody"), None);
    }
}
