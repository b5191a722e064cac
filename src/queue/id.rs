//! Queue IDs: short, unique, sortable by arrival, safe as file names.
//!
//! Like Postfix's long queue IDs they start with the arrival time, so a
//! directory listing sorts roughly oldest first: 8 hex digits of seconds, 5
//! of microseconds, then 3 of a per-process counter.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

/// Starts at a random value so that two processes (the daemon and a
/// `sendmail`) are unlikely to walk the same sequence.
static COUNTER: AtomicU32 = AtomicU32::new(u32::MAX);

impl QueueId {
    pub fn generate() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let _ = COUNTER.compare_exchange(
            u32::MAX,
            fastrand::u32(..0xFFFF_0000),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        // Unique within a process unless 4,096 IDs share one microsecond.
        let salt = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xFFF;
        QueueId(format!(
            "{:08X}{:05X}{:03X}",
            now.as_secs() as u32,
            now.subsec_micros(),
            salt
        ))
    }

    /// Accepts only what [`generate`](Self::generate) produces (upper-case
    /// hex), so a name read from disk or typed by an admin can never escape
    /// the queue directory.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = (8..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
        ok.then(|| QueueId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn unique_and_parseable() {
        let ids: HashSet<_> = (0..10_000).map(|_| QueueId::generate()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(QueueId::parse(id.as_str()).as_ref(), Some(id));
        }
        assert!(QueueId::parse("../etc/passwd").is_none());
        assert!(QueueId::parse("abc").is_none());
        assert!(QueueId::parse(".tmp-0123456789").is_none());
    }
}
