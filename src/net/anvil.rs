//! Per-client connection counting (Postfix's anvil(8)): a guard per
//! connection, released on drop, so a panic or early return cannot leak a
//! slot.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts per key: a client address before login, (account, address)
/// after it (Dovecot's `mail_max_userip_connections`).
pub struct Anvil<K: Eq + Hash + Clone = IpAddr> {
    counts: Mutex<HashMap<K, usize>>,
}

impl<K: Eq + Hash + Clone> Default for Anvil<K> {
    fn default() -> Self {
        Anvil {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

pub struct Slot<K: Eq + Hash + Clone = IpAddr> {
    anvil: Arc<Anvil<K>>,
    ip: K,
}

impl<K: Eq + Hash + Clone> Anvil<K> {
    /// Takes a slot for `key` unless it already holds `limit` of them.
    pub fn take(self: &Arc<Self>, key: K, limit: usize) -> Option<Slot<K>> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            anvil: self.clone(),
            ip: key,
        })
    }
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut counts = self.anvil.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_releases() {
        let anvil = Arc::new(Anvil::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = anvil.take(ip, 2).unwrap();
        let _b = anvil.take(ip, 2).unwrap();
        assert!(anvil.take(ip, 2).is_none());
        drop(a);
        assert!(anvil.take(ip, 2).is_some());
    }
}
