//! Change notifications: one broadcast channel per mailbox, so an IMAP
//! session in IDLE (or with the mailbox selected) learns about new mail,
//! flag changes and expunges made by other sessions or by local delivery.
//!
//! Channels are created lazily when someone subscribes; events for a
//! mailbox nobody watches cost one hash lookup. Senders whose receivers are
//! all gone are dropped when noticed on publish and by an occasional sweep.

use super::{MailboxEvent, MailboxId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::broadcast;

/// Events a slow receiver may fall behind by before it sees `Lagged` (and
/// must resynchronise from the store).
const CAPACITY: usize = 256;

/// Sweep dead senders every this many subscriptions.
const SWEEP_EVERY: u32 = 64;

#[derive(Default)]
pub(crate) struct EventHub {
    senders: Mutex<HashMap<MailboxId, broadcast::Sender<MailboxEvent>>>,
    subscriptions: AtomicU32,
}

impl EventHub {
    pub fn subscribe(&self, mailbox: MailboxId) -> broadcast::Receiver<MailboxEvent> {
        let mut senders = self.lock();
        if self
            .subscriptions
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            senders.retain(|_, tx| tx.receiver_count() > 0);
        }
        senders
            .entry(mailbox)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Sends `events` to the mailbox's subscribers, if any.
    pub fn publish(&self, mailbox: MailboxId, events: impl IntoIterator<Item = MailboxEvent>) {
        let mut senders = self.lock();
        let Some(tx) = senders.get(&mailbox) else {
            return;
        };
        for event in events {
            if tx.send(event).is_err() {
                // No receivers left: forget the channel until someone subscribes again.
                senders.remove(&mailbox);
                return;
            }
        }
    }

    /// Drops the mailbox's channel so subscribers see `Closed` (the mailbox
    /// was deleted).
    pub fn close(&self, mailbox: MailboxId) {
        self.lock().remove(&mailbox);
    }

    /// A panic while holding the lock cannot leave the map inconsistent
    /// (every operation is a single map call), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, HashMap<MailboxId, broadcast::Sender<MailboxEvent>>> {
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn channels(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Uid;
    use tokio::sync::broadcast::error::TryRecvError;

    const M: MailboxId = MailboxId(1);

    fn appended(uid: u32) -> MailboxEvent {
        MailboxEvent::Appended {
            uid: Uid(uid),
            modseq: u64::from(uid),
        }
    }

    #[test]
    fn subscribers_receive_published_events() {
        let hub = EventHub::default();
        let mut a = hub.subscribe(M);
        let mut b = hub.subscribe(M);
        hub.publish(M, [appended(1), appended(2)]);
        for rx in [&mut a, &mut b] {
            assert_eq!(rx.try_recv().unwrap(), appended(1));
            assert_eq!(rx.try_recv().unwrap(), appended(2));
        }
        hub.publish(MailboxId(2), [appended(3)]);
        assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn dead_channels_are_dropped_and_close_closes() {
        let hub = EventHub::default();
        drop(hub.subscribe(M));
        hub.publish(M, [appended(1)]);
        assert_eq!(hub.channels(), 0);

        let mut rx = hub.subscribe(M);
        hub.close(M);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn sweep_removes_abandoned_channels() {
        let hub = EventHub::default();
        for i in 0..u64::from(SWEEP_EVERY) {
            drop(hub.subscribe(MailboxId(i)));
        }
        let _keep = hub.subscribe(MailboxId(1000));
        assert_eq!(hub.channels(), 1);
    }
}
