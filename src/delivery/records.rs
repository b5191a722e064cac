//! Per-user records of "seen at" times, kept with the account in the
//! store: who got a vacation reply (RFC 5230) and which message IDs a
//! `duplicate` test met (RFC 7352). One value per kind, a line per key
//! (`hexdigest unixtime`), pruned of entries past the horizon and bounded
//! in count (the oldest go first). Reads and writes are serialised per
//! process (one process owns a store).

use crate::store::MailStore;
use std::sync::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

pub struct Records<'a> {
    pub store: &'a dyn MailStore,
    pub account: &'a str,
    /// The account-data key (`sieve/vacation`, `sieve/duplicate`).
    pub kind: &'a str,
    /// Entries older than this are forgotten, in seconds.
    pub horizon: u64,
    /// Entries kept at most.
    pub max: usize,
}

/// What became of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen within the period: recorded now.
    First,
    /// Seen within the period.
    Again,
}

impl Records<'_> {
    /// Whether `key` was recorded within `period` seconds of `now`. A new
    /// (or expired) key is recorded; with `refresh` a seen key's time is
    /// moved to `now` as well. A store that cannot be read or written is
    /// an error: each caller decides what is safe (vacation sends no reply,
    /// `duplicate` keeps the message).
    pub fn check(&self, key: &str, now: u64, period: u64, refresh: bool) -> Result<Seen, String> {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let key = crate::auth::hex(digest.as_ref().get(..12).unwrap_or_default());
        let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let stored = match self.store.account_data(self.account, self.kind) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => return Err(format!("{}: {e}", self.kind)),
        };
        let horizon = self.horizon.max(period);
        let mut records: Vec<(String, u64)> = String::from_utf8_lossy(&stored)
            .lines()
            .filter_map(|l| {
                let (k, t) = l.split_once(' ')?;
                Some((k.to_string(), t.parse().ok()?))
            })
            .filter(|(_, t)| now.saturating_sub(*t) < horizon)
            .collect();
        let seen = records
            .iter()
            .any(|(k, t)| *k == key && now.saturating_sub(*t) < period);
        if seen && !refresh {
            return Ok(Seen::Again);
        }
        records.retain(|(k, _)| *k != key);
        records.push((key, now));
        let excess = records.len().saturating_sub(self.max.max(1));
        records.drain(..excess);
        let text: String = records.iter().map(|(k, t)| format!("{k} {t}\n")).collect();
        self.store
            .set_account_data(self.account, self.kind, Some(text.as_bytes()))
            .map_err(|e| format!("{}: {e}", self.kind))?;
        Ok(if seen { Seen::Again } else { Seen::First })
    }
}
