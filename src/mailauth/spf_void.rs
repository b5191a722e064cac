//! The SPF void-lookup limit (RFC 7208 §4.6.4), which mail-auth 0.13 does
//! not enforce: more than two DNS names looked up by an SPF evaluation
//! that answer nothing (NXDOMAIN or no records) make the result
//! `permerror`.
//!
//! mail-auth asks its caches (`Parameters::with_*_cache`) before every
//! lookup and fills them after every lookup that found records. A "cache"
//! that never answers but remembers what was asked and what was found
//! therefore sees each name's fate; the real caching stays in the hickory
//! resolver underneath. As mail-auth stops at the first matching
//! mechanism, every void lookup counted happened before the result was
//! decided, so counting afterwards gives the RFC's answer.

use mail_auth::{ResolverCache, SpfOutput, SpfResult};
use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// RFC 7208 §4.6.4: "SPF implementations SHOULD limit void lookups to two".
pub const VOID_LOOKUP_LIMIT: usize = 2;

/// Names asked and names found during one SPF evaluation, by hash (the
/// cache interface only lends a `Q: Hash`, and collisions are harmless:
/// a name wrongly counted as found is at worst one void less).
#[derive(Default)]
pub struct VoidCounter {
    asked: Mutex<HashSet<u64>>,
    found: Mutex<HashSet<u64>>,
}

fn key_hash<Q: Hash + ?Sized>(name: &Q) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

impl VoidCounter {
    pub fn voids(&self) -> usize {
        let (Ok(asked), Ok(found)) = (self.asked.lock(), self.found.lock()) else {
            return 0;
        };
        asked.difference(&found).count()
    }

    /// `output`, or permerror when it took more than two void lookups.
    pub fn apply(&self, output: SpfOutput) -> SpfOutput {
        let decided = matches!(
            output.result(),
            SpfResult::Pass | SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral
        );
        if decided && self.voids() > VOID_LOOKUP_LIMIT {
            output.with_result(SpfResult::PermError)
        } else {
            output
        }
    }
}

impl<V> ResolverCache<Box<str>, V> for VoidCounter {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(key_hash(name));
        }
        None
    }

    fn remove<Q>(&self, _: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, key: Box<str>, _: V, _: std::time::Instant) {
        // `Box<str>: Borrow<str>`, and Borrow promises equal hashes.
        if let Ok(mut found) = self.found.lock() {
            found.insert(key_hash::<str>(&key));
        }
    }
}
