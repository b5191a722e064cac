//! A consistent copy of the store while it serves: every table read in one
//! redb read transaction (MVCC: writers go on, the copy sees one commit)
//! and written into a fresh database, then the blob files that snapshot
//! references. Blob deletions wait until the copy is done, so a message
//! expunged meanwhile still has its body in the backup.

use super::*;
use crate::store::BackupCounts;
use redb::{Key, Value};

impl RedbStore {
    /// Writes `dir/mail.redb` and `dir/blobs/` (`dir` new or empty), a
    /// store [`RedbStore::open`] reads as this one was at one instant.
    pub(super) fn backup_into(&self, dir: &Path) -> Result<BackupCounts> {
        self.blobs.hold();
        let result = self.copy(dir);
        self.blobs.release();
        result
    }

    fn copy(&self, dir: &Path) -> Result<BackupCounts> {
        std::fs::create_dir_all(dir)?;
        let snapshot = self.read()?;
        let out = Database::create(dir.join("mail.redb"))?;
        let txn = out.begin_write()?;
        let mut counts = BackupCounts {
            accounts: copy_table(&snapshot, &txn, ACCOUNTS)?,
            messages: copy_table(&snapshot, &txn, MESSAGES)?,
            ..BackupCounts::default()
        };
        copy_table(&snapshot, &txn, META)?;
        copy_table(&snapshot, &txn, MAILBOX_NAMES)?;
        copy_table(&snapshot, &txn, MAILBOXES)?;
        copy_table(&snapshot, &txn, SUBSCRIPTIONS)?;
        copy_table(&snapshot, &txn, INLINE_BODIES)?;
        copy_table(&snapshot, &txn, DELIVERED)?;
        copy_table(&snapshot, &txn, DELIVERED_BY_TIME)?;
        copy_table(&snapshot, &txn, EXPUNGED)?;
        copy_table(&snapshot, &txn, ACCOUNT_DATA)?;
        copy_table(&snapshot, &txn, BLOBS)?;
        txn.commit()?;
        let blobs_root = dir.join("blobs");
        let table = snapshot.open_table(BLOBS)?;
        let inline = snapshot.open_table(INLINE_BODIES)?;
        let mut files = 0;
        for entry in table.iter()? {
            let id = entry?.0.value();
            // Small bodies live in redb (copied above), the rest in files.
            if inline.get(id)?.is_none() {
                counts.bytes += self.blobs.copy_to(id, &blobs_root)?;
                files += 1;
            }
        }
        counts.blobs = files;
        Ok(counts)
    }
}

/// Copies every row of `table`; returns how many.
fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64> {
    let source = match from.open_table(table) {
        Ok(t) => t,
        // A table never written to (an old store) has nothing to copy.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut target = to.open_table(table)?;
    let mut rows = 0;
    for entry in source.iter()? {
        let (key, value) = entry?;
        target.insert(key.value(), value.value())?;
        rows += 1;
    }
    Ok(rows)
}
