//! The spool: one directory per queue state, and the only code that touches
//! queue files on disk.
//!
//! Durability (DESIGN §5): a new file is written under a `.tmp-` name,
//! fsynced, renamed to its queue ID, and the directory is fsynced before the
//! caller may answer 250. Directory fsyncs are shared by concurrent writers
//! (group commit, [`DirSync`]); nothing is skipped.

use super::file::QueueFile;
use super::id::QueueId;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::SystemTime;

/// Postfix's queues, as states of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueName {
    /// Local submissions by `merpati sendmail`, even while the daemon is down.
    Maildrop,
    /// Complete and durable, not yet scheduled.
    Incoming,
    /// The window the queue manager is delivering; moved back at start-up.
    Active,
    /// Waiting for the next attempt; the file's mtime is that time.
    Deferred,
    /// Parked by an admin; never retried until released.
    Hold,
    /// Unreadable files, kept for inspection.
    Corrupt,
}

impl QueueName {
    pub const ALL: [QueueName; 6] = [
        QueueName::Maildrop,
        QueueName::Incoming,
        QueueName::Active,
        QueueName::Deferred,
        QueueName::Hold,
        QueueName::Corrupt,
    ];

    pub fn dir_name(self) -> &'static str {
        match self {
            QueueName::Maildrop => "maildrop",
            QueueName::Incoming => "incoming",
            QueueName::Active => "active",
            QueueName::Deferred => "deferred",
            QueueName::Hold => "hold",
            QueueName::Corrupt => "corrupt",
        }
    }
}

const TMP_PREFIX: &str = ".tmp-";

/// One queue directory with its shared fsync.
struct QueueDir {
    path: PathBuf,
    sync: DirSync,
}

pub struct Spool {
    root: PathBuf,
    /// Indexed by `QueueName as usize`, in the order of `QueueName::ALL`.
    dirs: [QueueDir; 6],
    /// Moves and removals hold it shared; a backup holds it alone while it
    /// copies the queue, so no message slips between two directories (or
    /// out to the store) unseen.
    gate: std::sync::RwLock<()>,
}

/// A file found in a queue directory.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: QueueId,
    pub queue: QueueName,
    pub modified: SystemTime,
    pub size: u64,
}

impl Spool {
    /// Opens (creating if needed) the queue directories under `root`.
    pub fn open(root: &Path) -> io::Result<Spool> {
        for name in QueueName::ALL {
            fs::create_dir_all(root.join(name.dir_name()))?;
        }
        let dirs = QueueName::ALL.map(|name| {
            let path = root.join(name.dir_name());
            QueueDir {
                sync: DirSync::new(path.clone()),
                path,
            }
        });
        Ok(Spool {
            root: root.to_path_buf(),
            dirs,
            gate: std::sync::RwLock::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the queue journal's segments live (see `journal.rs`).
    pub fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }

    fn dir(&self, queue: QueueName) -> &QueueDir {
        // In bounds: `dirs` has one entry per variant, in declaration order.
        &self.dirs[queue as usize]
    }

    pub fn path(&self, queue: QueueName, id: &QueueId) -> PathBuf {
        self.dir(queue).path.join(id.as_str())
    }

    /// Writes a new file durably (blocking): temp, fsync, rename, shared
    /// directory fsync. Returns only when the file survives power loss.
    pub fn write_new(&self, queue: QueueName, id: &QueueId, bytes: &[u8]) -> io::Result<()> {
        let dir = self.dir(queue);
        let tmp = dir.path.join(format!("{TMP_PREFIX}{id}"));
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_data()?;
            fs::rename(&tmp, dir.path.join(id.as_str()))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        dir.sync.sync()
    }

    /// Writes a new file without fsync: for cleanup, whose durability
    /// comes from the journal (see `journal.rs`). Temp name and rename
    /// still keep readers from seeing a half-written file.
    pub fn write_unsynced(&self, queue: QueueName, id: &QueueId, bytes: &[u8]) -> io::Result<()> {
        let dir = self.dir(queue);
        let tmp = dir.path.join(format!("{TMP_PREFIX}{id}"));
        let result =
            fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, dir.path.join(id.as_str())));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Reads and parses a queue file.
    pub fn read(
        &self,
        queue: QueueName,
        id: &QueueId,
    ) -> io::Result<Result<QueueFile, super::file::FormatError>> {
        let bytes = fs::read(self.path(queue, id))?;
        Ok(QueueFile::decode(&bytes, queue != QueueName::Maildrop))
    }

    /// Moves a file between queues (rename). `durable` also fsyncs the
    /// target directory; moves the queue manager makes need not be durable,
    /// since losing one only returns the message to an earlier state.
    pub fn move_to(
        &self,
        id: &QueueId,
        from: QueueName,
        to: QueueName,
        durable: bool,
    ) -> io::Result<()> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        fs::rename(self.path(from, id), self.path(to, id))?;
        if durable {
            self.dir(to).sync.sync()?;
        }
        Ok(())
    }

    pub fn remove(&self, queue: QueueName, id: &QueueId) -> io::Result<()> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        fs::remove_file(self.path(queue, id))
    }

    /// Stops every move and removal until the guard is dropped (new files
    /// may still arrive): the queue holds still for a backup's copy.
    pub fn freeze(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a deferred file's next-attempt time (kept in its mtime, as
    /// Postfix does, so a scan needs only `stat`).
    pub fn set_due(&self, queue: QueueName, id: &QueueId, due: SystemTime) -> io::Result<()> {
        let file = File::options().write(true).open(self.path(queue, id))?;
        file.set_modified(due)
    }

    /// Lists complete files in a queue, oldest first. Temp files and names
    /// that are not queue IDs are skipped.
    pub fn list(&self, queue: QueueName) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir(queue).path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(QueueId::parse) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else {
                continue; // removed under our feet
            };
            out.push(Entry {
                id,
                queue,
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                size: meta.len(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Finds which queue holds `id`, if any.
    pub fn locate(&self, id: &QueueId) -> Option<QueueName> {
        QueueName::ALL
            .into_iter()
            .find(|q| self.path(*q, id).exists())
    }

    /// Start-up recovery: half-written temp files are discarded (they were
    /// never acknowledged) and `active` goes back to `incoming`.
    pub fn recover(&self) -> io::Result<usize> {
        for dir in &self.dirs {
            for entry in fs::read_dir(&dir.path)? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(TMP_PREFIX) {
                    tracing::info!(file = %entry.path().display(), "discarding half-written file");
                    let _ = fs::remove_file(entry.path());
                } else if QueueId::parse(&name).is_none() {
                    // Never delivered, never deleted: the admin must see it.
                    tracing::warn!(
                        "{}: not a queue file (the name is not a queue ID); ignored, move it away",
                        entry.path().display()
                    );
                }
            }
        }
        let active = self.list(QueueName::Active)?;
        for entry in &active {
            self.move_to(&entry.id, QueueName::Active, QueueName::Incoming, false)?;
        }
        self.dir(QueueName::Incoming).sync.sync()?;
        Ok(active.len())
    }
}

/// Group commit for one directory: callers that ask while an fsync is
/// running wait for the next one, which covers all of them.
pub struct DirSync {
    path: PathBuf,
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Tickets handed out: a caller's changes precede its ticket.
    requested: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    running: bool,
}

impl DirSync {
    pub fn new(path: PathBuf) -> Self {
        DirSync {
            path,
            state: Mutex::new(SyncState::default()),
            done: Condvar::new(),
        }
    }

    /// Blocks until an fsync of the directory that started after this call
    /// has completed.
    pub fn sync(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if state.synced >= ticket {
                return Ok(());
            }
            if !state.running {
                state.running = true;
                let covers = state.requested;
                drop(state);
                let result = File::open(&self.path).and_then(|d| d.sync_all());
                state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                state.running = false;
                self.done.notify_all();
                result?;
                state.synced = state.synced.max(covers);
                continue;
            }
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::file::QueuedRecipient;
    use std::sync::Arc;

    fn sample() -> QueueFile {
        QueueFile {
            arrival: 1,
            sender: "a@b".into(),
            recipients: vec![QueuedRecipient {
                address: "c@d".into(),
                ..Default::default()
            }],
            body: b"x\r\n".to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn write_list_move_recover() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let id = QueueId::generate();
        spool
            .write_new(QueueName::Incoming, &id, &sample().encode())
            .unwrap();
        assert_eq!(spool.list(QueueName::Incoming).unwrap().len(), 1);
        spool
            .move_to(&id, QueueName::Incoming, QueueName::Active, false)
            .unwrap();
        fs::write(tmp.path().join("incoming/.tmp-0000"), b"half").unwrap();
        assert_eq!(spool.recover().unwrap(), 1);
        assert_eq!(spool.locate(&id), Some(QueueName::Incoming));
        assert!(!tmp.path().join("incoming/.tmp-0000").exists());
        assert_eq!(
            spool.read(QueueName::Incoming, &id).unwrap().unwrap(),
            sample()
        );
    }

    #[test]
    fn concurrent_writers_share_fsyncs() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(tmp.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let id = QueueId::generate();
                        spool.write_new(QueueName::Incoming, &id, b"data").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(spool.list(QueueName::Incoming).unwrap().len(), 160);
    }
}
