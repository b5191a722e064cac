//! Per-client connection counting (Postfix's anvil(8)): a guard per
//! connection, released on drop, so a panic or early return cannot leak a
//! slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Anvil {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

pub struct Slot {
    anvil: Arc<Anvil>,
    ip: IpAddr,
}

impl Anvil {
    /// Takes a slot for `ip` unless it already holds `limit` of them.
    pub fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            anvil: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
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
