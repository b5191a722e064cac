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
    /// Delivered as far as it could be; this deferred copy, due after the
    /// backoff, still has to replace the file in `active`.
    Unsettled {
        copy: Box<QueueFile>,
        backoff: Duration,
    },
    /// An admin operation is moving it.
    Admin,
}

/// A deferred copy still to be written.
pub struct Unsettled {
    pub id: QueueId,
    pub copy: QueueFile,
    pub backoff: Duration,
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

    /// Records a deferred copy that could not be written.
    pub fn unsettle(&self, id: &QueueId, copy: QueueFile, backoff: Duration) {
        let copy = Box::new(copy);
        self.owners()
            .insert(id.clone(), Owner::Unsettled { copy, backoff });
    }

    /// Takes every unsettled copy, marking each as being written (a
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
                    copy: *copy,
                    backoff,
                });
            }
        }
        out
    }

    /// An admin operation wants `id`: granted unless it is being delivered.
    /// An unsettled copy is dropped: the admin decides the file's fate now,
    /// and the file in `active` still holds every recipient of that copy
    /// (and possibly some that were delivered: a duplicate, never a loss).
    pub fn take_for_admin(&self, id: &QueueId) -> bool {
        let mut owners = self.owners();
        match owners.get(id) {
            Some(Owner::Delivering) | Some(Owner::Admin) => false,
            Some(Owner::Unsettled { .. }) | None => {
                owners.insert(id.clone(), Owner::Admin);
                true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_exclude_each_other() {
        let set = ActiveSet::default();
        let id = QueueId::generate();
        assert!(set.claim(&id));
        assert!(!set.claim(&id));
        assert!(!set.take_for_admin(&id));
        set.unsettle(&id, QueueFile::default(), Duration::from_secs(1));
        set.delivered(&id); // an unsettled file stays owned
        assert!(!set.claim(&id));
        let taken = set.take_unsettled();
        assert_eq!(taken.len(), 1);
        assert!(set.is_delivering(&id));
        set.delivered(&id);
        assert!(set.is_empty());
        assert!(set.take_for_admin(&id));
        assert!(!set.claim(&id));
        set.admin_done(&id);
        assert!(set.claim(&id));
    }
}
