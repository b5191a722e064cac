//! Message blob files: one immutable file per stored body, shared by every
//! message that points at it (the reference count lives in redb, not here).
//!
//! Layout: `<root>/<last 2 hex digits of id>/<id as 16 hex digits>`. The
//! 256 fan-out directories, filled evenly by the ids' low byte, keep each
//! directory small (a million blobs is ~4,000 entries per directory).
//!
//! A new blob becomes durable in three steps: write a temp file in the
//! target directory and fsync it, rename it into place, fsync the
//! directory. Only after that may a redb commit reference it; and a blob
//! is deleted only after the commit that dropped its last reference. A
//! crash in between leaves at worst an orphan file, never a dangling row.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Fan-out directories under the root (ids are spread by their low byte).
const FANOUT: u64 = 256;

/// Threads writing one batch. The work is waiting for fsync, not CPU: with
/// many fsyncs in flight the filesystem folds them into few journal
/// commits. Measured on ext4 (50 x 4 KiB per batch): 4 threads ~45 ms,
/// 16 threads ~25 ms per batch.
const WRITER_THREADS: usize = 16;

pub(crate) struct BlobStore {
    root: PathBuf,
    /// While a backup copies blob files, deletions wait here (a message
    /// expunged meanwhile is still in the backup's snapshot).
    held: std::sync::Mutex<Option<Vec<u64>>>,
}

impl BlobStore {
    /// Opens (creating if needed) the blob tree under `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        let mut created = create_dir(root)?;
        for i in 0..FANOUT {
            created |= create_dir(&root.join(format!("{i:02x}")))?;
        }
        if created {
            // New directory entries must be durable before any blob in them is.
            sync_dir(root)?;
            if let Some(parent) = root.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(BlobStore {
            root: root.to_owned(),
            held: Default::default(),
        })
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("{:02x}", id % FANOUT))
    }

    pub fn path(&self, id: u64) -> PathBuf {
        self.dir(id).join(format!("{id:016x}"))
    }

    /// Writes many blobs in parallel, then fsyncs each directory touched
    /// once. On error no blob of the batch is left behind.
    pub fn write_batch(&self, blobs: &[(u64, &[u8])]) -> io::Result<()> {
        let dirs: BTreeSet<PathBuf> = blobs.iter().map(|(id, _)| self.dir(*id)).collect();
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        parallel(blobs, |(id, data)| self.write_file(*id, data))
            .and_then(|()| parallel(&dirs, |dir| sync_dir(dir)))
            .inspect_err(|_| {
                let ids: Vec<u64> = blobs.iter().map(|(id, _)| *id).collect();
                self.delete_all(&ids);
            })
    }

    /// Writes and fsyncs the file under its final name (via a temp name so
    /// a crash never leaves a partial blob under a real id). Does not fsync
    /// the directory.
    fn write_file(&self, id: u64, data: &[u8]) -> io::Result<()> {
        let dir = self.dir(id);
        let tmp = dir.join(format!(".tmp-{id:016x}-{:08x}", fastrand::u32(..)));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(data)?;
            file.sync_data()?;
            fs::rename(&tmp, self.path(id))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Appends the blob's bytes to `out` (which may already hold a prefix,
    /// so a large message is not copied twice).
    pub fn read_into(&self, id: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let mut file = File::open(self.path(id))?;
        let len = file.metadata()?.len();
        out.reserve(usize::try_from(len).unwrap_or(0));
        file.read_to_end(out)?;
        Ok(())
    }

    /// Appends at most `max` octets of the start of a blob to `out`.
    pub fn read_head_into(&self, id: u64, out: &mut Vec<u8>, max: usize) -> io::Result<()> {
        let file = File::open(self.path(id))?;
        file.take(max as u64).read_to_end(out)?;
        Ok(())
    }

    /// Deletes a blob; one that is already gone is not an error.
    pub fn delete(&self, id: u64) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Best-effort delete: a failure only leaks disk space, so it is
    /// logged rather than failing the (already committed) operation.
    pub fn delete_all(&self, ids: &[u64]) {
        if let Some(held) = self.lock_held().as_mut() {
            held.extend_from_slice(ids);
            return;
        }
        self.delete_now(ids);
    }

    fn delete_now(&self, ids: &[u64]) {
        for &id in ids {
            if let Err(e) = self.delete(id) {
                tracing::warn!(blob = id, error = %e, "could not delete blob file");
            }
        }
    }
}

impl BlobStore {
    fn lock_held(&self) -> std::sync::MutexGuard<'_, Option<Vec<u64>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps every deletion from now on until [`BlobStore::release`].
    pub fn hold(&self) {
        self.lock_held().get_or_insert_with(Vec::new);
    }

    /// Ends a [`BlobStore::hold`], deleting what waited.
    pub fn release(&self) {
        let held = self.lock_held().take();
        if let Some(ids) = held {
            self.delete_now(&ids);
        }
    }

    /// Copies blob `id` to the same place under `root` (a backup).
    pub fn copy_to(&self, id: u64, root: &Path) -> io::Result<u64> {
        let relative = self.path(id);
        let relative = relative.strip_prefix(&self.root).unwrap_or(&relative);
        let target = root.join(relative);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::copy(self.path(id), target)
    }
}

/// Runs `f` over `items` on up to [`WRITER_THREADS`] scoped threads;
/// returns the first error.
fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> io::Result<()> + Sync) -> io::Result<()> {
    let threads = WRITER_THREADS.min(items.len());
    if threads <= 1 {
        return items.iter().try_for_each(&f);
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().try_for_each(&f)))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("blob writer thread panicked")))
        })
    })
}

/// Creates `dir` (its parent must exist); returns whether it was new.
fn create_dir(dir: &Path) -> io::Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

/// fsync a directory so the entries created or renamed in it are durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    impl BlobStore {
        fn read(&self, id: u64) -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            self.read_into(id, &mut out).map(|()| out)
        }
    }

    #[test]
    fn write_read_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&tmp.path().join("blobs")).unwrap();
        store.write_batch(&[(0x1234, b"hello")]).unwrap();
        assert!(store.path(0x1234).ends_with("34/0000000000001234"));
        assert_eq!(store.read(0x1234).unwrap(), b"hello");
        store.delete(0x1234).unwrap();
        store.delete(0x1234).unwrap();
        assert_eq!(
            store.read(0x1234).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn batch_writes_every_blob_and_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&tmp.path().join("blobs")).unwrap();
        let bodies: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100]).collect();
        let batch: Vec<(u64, &[u8])> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u64 + 1, b.as_slice()))
            .collect();
        store.write_batch(&batch).unwrap();
        for (id, body) in &batch {
            assert_eq!(store.read(*id).unwrap(), *body);
        }
        let temps = fs::read_dir(tmp.path().join("blobs/01"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp")
            })
            .count();
        assert_eq!(temps, 0);
    }

    #[test]
    fn reopening_keeps_blobs() {
        let tmp = tempfile::tempdir().unwrap();
        BlobStore::open(&tmp.path().join("b"))
            .unwrap()
            .write_batch(&[(5, b"x")])
            .unwrap();
        assert_eq!(
            BlobStore::open(&tmp.path().join("b"))
                .unwrap()
                .read(5)
                .unwrap(),
            b"x"
        );
    }
}
