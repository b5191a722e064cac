//! Per-client counting (Postfix's anvil(8)): concurrent connections, with
//! a guard per connection released on drop so a panic or early return
//! cannot leak a slot; and event rates (connections, messages, recipients,
//! failed logins) in fixed windows of `anvil_rate_time_unit`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What [`Rates`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Connection,
    Message,
    Recipient,
    AuthFailure,
}

impl Event {
    /// Postfix's words for its warning line.
    pub fn describe(self) -> &'static str {
        match self {
            Event::Connection => "Connection rate",
            Event::Message => "Message delivery request rate",
            Event::Recipient => "Recipient address rate",
            Event::AuthFailure => "AUTH failure rate",
        }
    }
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

/// Event counts per client address, shared by every service.
#[derive(Default)]
pub struct Rates {
    windows: Mutex<HashMap<(Event, IpAddr), Window>>,
}

/// Client addresses tracked at most; past it, finished windows go first,
/// then the smaller half of the counts.
const MAX_TRACKED: usize = 100_000;

impl Rates {
    /// Counts one `event` from `ip`; the count in the current window,
    /// this one included.
    pub fn count(&self, event: Event, ip: IpAddr, unit: Duration) -> u32 {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| now.duration_since(w.start) < unit);
            if windows.len() >= MAX_TRACKED {
                let mut counts: Vec<u32> = windows.values().map(|w| w.count).collect();
                let (_, median, _) = counts.select_nth_unstable(MAX_TRACKED / 2);
                let median = *median;
                windows.retain(|_, w| w.count > median);
            }
        }
        let w = windows.entry((event, client_key(ip))).or_insert(Window {
            start: now,
            count: 0,
        });
        if now.duration_since(w.start) >= unit {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
        w.count
    }

    /// The count in the current window, without adding to it.
    pub fn peek(&self, event: Event, ip: IpAddr, unit: Duration) -> u32 {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(&(event, client_key(ip))) {
            Some(w) if w.start.elapsed() < unit => w.count,
            _ => 0,
        }
    }

    /// Counts one event and says whether it went past `limit` (0: no
    /// limit, never past).
    pub fn exceeds(&self, event: Event, ip: IpAddr, unit: Duration, limit: u32) -> Option<u32> {
        if limit == 0 {
            return None;
        }
        let n = self.count(event, ip, unit);
        (n > limit).then_some(n)
    }
}

/// The address a client is counted by: an IPv6 client by its /64 (one
/// host usually has the whole prefix, so per-address counting would give
/// it 2^64 fresh starts), IPv4 (also v4-mapped) as it is.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

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

    #[test]
    fn rates_count_per_window_event_and_client() {
        let rates = Rates::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let unit = Duration::from_secs(60);
        assert_eq!(rates.exceeds(Event::Message, ip, unit, 2), None);
        assert_eq!(rates.exceeds(Event::Message, ip, unit, 2), None);
        assert_eq!(rates.exceeds(Event::Message, ip, unit, 2), Some(3));
        assert_eq!(rates.peek(Event::Recipient, ip, unit), 0);
        assert_eq!(rates.exceeds(Event::Message, ip, unit, 0), None);
        // A new window starts afresh.
        let short = Duration::from_millis(1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(rates.count(Event::Message, ip, short), 1);
        // An IPv6 /64 is one client.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2:3".parse().unwrap();
        rates.count(Event::AuthFailure, a, unit);
        assert_eq!(rates.peek(Event::AuthFailure, b, unit), 1);
    }
}
