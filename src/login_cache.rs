//! The verified-credentials cache (Dovecot's auth_cache, safe by
//! default): after Argon2 has verified a password, the login is
//! remembered as an HMAC-SHA256, under a key made at random when the
//! process starts, of the account, its stored password hash and the
//! password. A repeated login computes the same digest (microseconds)
//! instead of Argon2 (tens of milliseconds).
//!
//! - Nothing that could be replayed or cracked is kept: the key never
//!   leaves memory and dies with the process.
//! - The stored hash is part of the digest and is read from the store on
//!   every login, so a password change or a deleted account stops the
//!   old password at once — on every node of a shared store too.
//! - Failures are never cached; the failure delays apply before the cache
//!   is asked, as before.

use ring::hmac;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginCache {
    key: hmac::Key,
    entries: Mutex<HashMap<String, (hmac::Tag, Instant)>>,
}

impl Default for LoginCache {
    fn default() -> Self {
        LoginCache::new()
    }
}

impl LoginCache {
    pub fn new() -> LoginCache {
        let rng = ring::rand::SystemRandom::new();
        // Only fails without an OS random source; then a key from the
        // clock-seeded generator, still unknown outside the process.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
            hmac::Key::new(hmac::HMAC_SHA256, &bytes)
        });
        LoginCache {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, account: &str, stored_hash: &str, password: &str) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [account, stored_hash, password] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        ctx.sign()
    }

    /// Whether `password` was verified for `account`, whose stored hash is
    /// `stored_hash`, less than `ttl` ago.
    pub fn verified(
        &self,
        account: &str,
        stored_hash: &str,
        password: &str,
        ttl: Duration,
    ) -> bool {
        if ttl.is_zero() {
            return false;
        }
        let tag = self.digest(account, stored_hash, password);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(account) {
            Some((known, at)) if at.elapsed() < ttl => same(known.as_ref(), tag.as_ref()),
            _ => false,
        }
    }

    /// Remembers a login Argon2 has just verified.
    pub fn remember(
        &self,
        account: &str,
        stored_hash: &str,
        password: &str,
        ttl: Duration,
        max: usize,
    ) {
        if ttl.is_zero() || max == 0 {
            return;
        }
        let tag = self.digest(account, stored_hash, password);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= max && !entries.contains_key(account) {
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= max
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(account.to_string(), (tag, Instant::now()));
    }
}

/// Equal, compared in time that does not depend on where they differ
/// (the webmail's session and CSRF tokens use it too).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_password_and_hash_hit() {
        let cache = LoginCache::new();
        let ttl = Duration::from_secs(60);
        assert!(!cache.verified("alice", "$h1", "pw", ttl));
        cache.remember("alice", "$h1", "pw", ttl, 10);
        assert!(cache.verified("alice", "$h1", "pw", ttl));
        assert!(
            !cache.verified("alice", "$h1", "other", ttl),
            "another password"
        );
        assert!(
            !cache.verified("alice", "$h2", "pw", ttl),
            "the password was changed"
        );
        assert!(!cache.verified("bob", "$h1", "pw", ttl), "another account");
        assert!(!cache.verified("alice", "$h1", "pw", Duration::ZERO), "off");
        for i in 0..5 {
            cache.remember(&format!("u{i}"), "$h", "pw", ttl, 3);
        }
        assert!(cache.entries.lock().unwrap().len() <= 3, "bounded");
    }
}
