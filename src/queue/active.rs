//! Who owns each file in `active/` while the daemon runs.
//!
//! The queue manager claims a file before it moves it into `active`, and
//! lets go only once the file has left again (removed, or rewritten into
//! `deferred`). When the deferred copy cannot be written (a full disk),
//! the file stays in `active` as *unsettled*: the copy waits here and is
//! written again at every queue run, so mail that was answered with 250
//! always moves on without a restart. A file in `active` that nobody owns
//! (left by an earlier failure) is swept up and delivered again; an admin
//! operation may take any file that is not being delivered right now.

use super::file::QueueFile;
use super::id::QueueId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The state of one claimed file.
enum Owner {
    /// A delivery task is working on it.
    Delivering,
    /// Delivered as far as it could be, but the file could not be settled:
    /// the deferred copy (without its body, which stays in the active
    /// file) still has to replace it, or, with `None`, every recipient is
    /// done and only the removal failed.
    Unsettled {
        copy: Option<Box<QueueFile>>,
        backoff: Duration,
    },
    /// An admin operation is moving it.
    Admin,
}

/// What still has to happen to an unsettled file.
pub struct Unsettled {
    pub id: QueueId,
    /// The deferred copy without its body; `None`: just remove the file.
    pub copy: Option<QueueFile>,
    pub backoff: Duration,
}

/// What an admin operation finds when it asks for a file in `active`.
pub enum AdminTake {
    /// Nobody owns it: the admin has it now.
    Free,
    /// Being delivered right now.
    Busy,
    /// Waiting to be settled: the admin has it now, and must settle it
    /// (or hand it back with [`ActiveSet::unsettle`]).
    Unsettled(Box<Unsettled>),
}

#[derive(Default)]
pub struct ActiveSet {
    owners: Mutex<HashMap<QueueId, Owner>>,
}

impl ActiveSet {
    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<QueueId, Owner>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `id` for delivery; false when someone owns it already.
    pub fn claim(&self, id: &QueueId) -> bool {
        let mut owners = self.owners();
        if owners.contains_key(id) {
            return false;
        }
        owners.insert(id.clone(), Owner::Delivering);
        true
    }

    /// The delivery task is done with `id`: released unless it is unsettled.
    pub fn delivered(&self, id: &QueueId) {
        let mut owners = self.owners();
        if matches!(owners.get(id), Some(Owner::Delivering)) {
            owners.remove(id);
        }
    }

    /// Records what could not be done to `id` (see [`Owner::Unsettled`]).
    /// The body is dropped from the copy: it is in the active file, and
    /// keeping it would hold every stuck message in memory.
    pub fn unsettle(&self, id: &QueueId, copy: Option<QueueFile>, backoff: Duration) {
        let copy = copy.map(|mut c| {
            c.body = Vec::new();
            Box::new(c)
        });
        self.owners()
            .insert(id.clone(), Owner::Unsettled { copy, backoff });
    }

    /// Takes every unsettled file, marking each as being worked on (a
    /// delivery claim, so neither a sweep nor an admin takes it meanwhile).
    pub fn take_unsettled(&self) -> Vec<Unsettled> {
        let mut owners = self.owners();
        let ids: Vec<QueueId> = owners
            .iter()
            .filter(|(_, o)| matches!(o, Owner::Unsettled { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(Owner::Unsettled { copy, backoff }) =
                owners.insert(id.clone(), Owner::Delivering)
            {
                out.push(Unsettled {
                    id,
                    copy: copy.map(|c| *c),
                    backoff,
                });
            }
        }
        out
    }

    /// An admin operation wants `id`, which is in `active`.
    pub fn take_for_admin(&self, id: &QueueId) -> AdminTake {
        let mut owners = self.owners();
        match owners.remove(id) {
            Some(Owner::Unsettled { copy, backoff }) => {
                owners.insert(id.clone(), Owner::Admin);
                AdminTake::Unsettled(Box::new(Unsettled {
                    id: id.clone(),
                    copy: copy.map(|c| *c),
                    backoff,
                }))
            }
            Some(other) => {
                owners.insert(id.clone(), other);
                AdminTake::Busy
            }
            None => {
                owners.insert(id.clone(), Owner::Admin);
                AdminTake::Free
            }
        }
    }

    /// Ends an admin claim.
    pub fn admin_done(&self, id: &QueueId) {
        let mut owners = self.owners();
        if matches!(owners.get(id), Some(Owner::Admin)) {
            owners.remove(id);
        }
    }

    /// True when anyone owns `id` (it may be between two queues).
    pub fn is_owned(&self, id: &QueueId) -> bool {
        self.owners().contains_key(id)
    }

    /// True when a delivery task works on `id` right now.
    pub fn is_delivering(&self, id: &QueueId) -> bool {
        matches!(self.owners().get(id), Some(Owner::Delivering))
    }

    pub fn len(&self) -> usize {
        self.owners().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Releases a delivery claim when the task ends, even by a panic: a file
/// left owned would wait in `active` until a restart.
pub struct DeliveryClaim {
    pub set: std::sync::Arc<ActiveSet>,
    pub id: QueueId,
}

impl Drop for DeliveryClaim {
    fn drop(&mut self) {
        self.set.delivered(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_exclude_each_other() {
        let set = ActiveSet::default();
        let id = QueueId::generate();
        assert!(set.claim(&id));
        assert!(!set.claim(&id));
        assert!(matches!(set.take_for_admin(&id), AdminTake::Busy));
        set.unsettle(&id, Some(QueueFile::default()), Duration::from_secs(1));
        set.delivered(&id); // an unsettled file stays owned
        assert!(!set.claim(&id));
        let taken = set.take_unsettled();
        assert_eq!(taken.len(), 1);
        assert!(set.is_delivering(&id));
        set.delivered(&id);
        assert!(set.is_empty());
        assert!(matches!(set.take_for_admin(&id), AdminTake::Free));
        assert!(!set.claim(&id));
        set.admin_done(&id);
        assert!(set.claim(&id));
        assert!(matches!(set.take_for_admin(&id), AdminTake::Busy));
        set.unsettle(&id, None, Duration::from_secs(1));
        assert!(matches!(
            set.take_for_admin(&id),
            AdminTake::Unsettled(u) if u.copy.is_none()
        ));
    }
}
