//! [`RedbStore`]: the embedded [`MailStore`]. Metadata lives in one redb
//! file (`mail.redb`: ACID, fsync on every commit), message bodies in
//! immutable blob files (`blobs/`, see the `blob` module).
//!
//! Tables:
//! - `meta`: counters (schema version, next mailbox id, next blob id, last UIDVALIDITY).
//! - `accounts`: account name → `AccountRecord`.
//! - `mailbox_names`: (account, mailbox name) → mailbox id.
//! - `mailboxes`: mailbox id → `MailboxRecord`, with message/unseen/size
//!   counters kept up to date so LIST/STATUS never scan messages.
//! - `messages`: (mailbox id, uid) → `MessageRecord`; a mailbox is a range scan.
//! - `blobs`: blob id → (reference count, size).
//! - `delivered`: (queue id, dedup key, account) → delivery time: the
//!   redelivery guard that makes a retried delivery batch idempotent.
//! - `delivered_by_time`: (time, queue id, dedup key, account) → (), so
//!   pruning the guard is a range scan.
//! - `expunged`: (mailbox id, modseq, uid) → (): the expunge history that
//!   QRESYNC's `VANISHED (EARLIER)` reports from (RFC 7162 §3.2.5).
//! - `subscriptions`: (account, name) → (): subscriptions to names that
//!   have no mailbox (deleted, or never created). A mailbox's own
//!   subscription is its record's flag; DELETE moves it here and CREATE
//!   takes it back, so subscriptions outlive mailboxes (RFC 3501 §6.3.9).
//!
//! Every write is one redb write transaction driven through `Tx`, which
//! caches the account and mailbox records it touches and writes each back
//! once before commit (a 50-message batch into one INBOX rewrites the INBOX
//! record once, not 50 times). Effects outside redb — deleting freed blob
//! files, change events — are collected and applied only once the commit
//! has succeeded.

use super::blob::BlobStore;
use super::codec::{AccountRecord, MailboxRecord, MessageRecord};
use super::events::EventHub;
use super::names::{self, INBOX};
use super::{
    AccountInfo, Delivery, FlagOp, LocalRecipient, MailStore, MailboxEvent, MailboxId, MailboxInfo,
    MailboxSnapshot, MessageMeta, NewMessage, RecipientOutcome, SpecialUse, StoreError, Uid, flags,
    unix_now,
};
use redb::{Database, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const MAILBOX_NAMES: TableDefinition<(&str, &str), u64> = TableDefinition::new("mailbox_names");
const MAILBOXES: TableDefinition<u64, &[u8]> = TableDefinition::new("mailboxes");
const MESSAGES: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("messages");
const SUBSCRIPTIONS: TableDefinition<(&str, &str), ()> = TableDefinition::new("subscriptions");
/// Most subscriptions to names without a mailbox, per account.
const MAX_ORPHAN_SUBSCRIPTIONS: usize = 1000;
const BLOBS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("blobs");
/// Bodies up to [`INLINE_LIMIT`] live here instead of in a file, so that a
/// delivery batch costs one fsync (the commit) rather than one per message.
const INLINE_BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("inline_bodies");
const DELIVERED: TableDefinition<(&str, &str, &str), i64> = TableDefinition::new("delivered");
const DELIVERED_BY_TIME: TableDefinition<(i64, &str, &str, &str), ()> =
    TableDefinition::new("delivered_by_time");
const EXPUNGED: TableDefinition<(u64, u64, u32), ()> = TableDefinition::new("expunged");
/// (account, key) -> document: see [`MailStore::account_data`].
const ACCOUNT_DATA: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("account_data");

const SCHEMA_VERSION: u64 = 1;
const META_SCHEMA: &str = "schema_version";
const META_NEXT_MAILBOX: &str = "next_mailbox_id";
const META_NEXT_BLOB: &str = "next_blob_id";
const META_LAST_UID_VALIDITY: &str = "last_uid_validity";

/// Largest body kept inside the database. Typical mail (a few KiB to a few
/// dozen) stays in redb; larger bodies go to immutable files, where they
/// cost no B-tree rewrites.
const INLINE_LIMIT: usize = 128 * 1024;

fn is_inline(body: &[u8]) -> bool {
    is_inline_size(body.len() as u64)
}

fn is_inline_size(len: u64) -> bool {
    len <= INLINE_LIMIT as u64
}

/// redb's in-process page cache.
const STORE_CACHE_BYTES: usize = 128 << 20;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The embedded mail store. Cheap to share (`Arc<RedbStore>`); redb
/// serialises write transactions, readers never block.
pub struct RedbStore {
    db: Database,
    blobs: BlobStore,
    events: EventHub,
    /// Blob ids are handed out in memory so blob files can be written
    /// before (and outside) the write transaction; each commit persists a
    /// high-water mark in `meta` so ids are never reused for live blobs.
    next_blob: AtomicU64,
    /// `\Recent` claims (see [`MailStore::claim_recent`]): per mailbox, the
    /// first UID no session has been told about. Kept in memory so that
    /// claiming costs no disk write, and copied into the mailbox record
    /// whenever a transaction writes that record anyway (every delivery
    /// does), so a restart loses at most claims made since the last one.
    recent: Mutex<HashMap<MailboxId, u32>>,
    /// SELECT scans of big mailboxes with the highest modseq they were
    /// made at: re-selecting an unchanged 100,000-message mailbox costs a
    /// copy of its UID list instead of a walk over its records.
    snapshots: Mutex<HashMap<MailboxId, (u64, Arc<MessageScan>)>>,
}

/// Mailboxes smaller than this are scanned every time (a scan of 1,000
/// messages is a fraction of a millisecond)...
const SNAPSHOT_CACHE_MIN_MESSAGES: u32 = 1_000;
/// ...and at most this many scans are kept (≈ 400 KiB each at 100,000).
const SNAPSHOT_CACHE_ENTRIES: usize = 64;

impl RedbStore {
    /// Opens or creates the store in `dir` (`dir/mail.redb`, `dir/blobs/`).
    /// Fails with [`StoreError::Locked`] if another handle has it open.
    pub fn open(dir: &Path) -> Result<RedbStore> {
        std::fs::create_dir_all(dir)?;
        // The database first: its file lock keeps a second process (or a
        // second handle) away before we touch anything else.
        // redb's default cache (1 GiB) would sit in our RSS; the kernel's
        // page cache holds the file anyway.
        let db = super::damage::open_database(&dir.join("mail.redb"), STORE_CACHE_BYTES)?;
        let blobs = BlobStore::open(&dir.join("blobs"))?;
        let next_blob = init_tables(&db)?;
        Ok(RedbStore {
            db,
            blobs,
            events: EventHub::default(),
            next_blob: AtomicU64::new(next_blob),
            recent: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(HashMap::new()),
        })
    }

    /// redb's own integrity check (it repairs what it can): `Ok(true)`
    /// sound, `Ok(false)` repaired.
    pub fn check_integrity(&mut self) -> Result<bool> {
        self.db.check_integrity().map_err(StoreError::from)
    }

    fn alloc_blob(&self) -> u64 {
        self.next_blob.fetch_add(1, Ordering::Relaxed)
    }

    fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    /// Runs `f` in one write transaction and commits; then applies the
    /// effects `f` collected (blob deletions, events).
    fn transact<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T, Failed> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| Failed::Before(e.into()))?;
        let (value, effects) = match run(&txn, &self.recent, f) {
            Ok(done) => done,
            Err(e) => {
                // Nothing was committed; an abort error would only mask `e`.
                let _ = txn.abort();
                return Err(Failed::Before(e));
            }
        };
        txn.commit().map_err(|e| Failed::AtCommit(e.into()))?;
        self.apply(effects);
        Ok(value)
    }

    fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.transact(f).map_err(Failed::into_error)
    }

    /// Like [`Self::write`] for a transaction that references the freshly
    /// written `blobs`: if it did not commit they are deleted again. After a
    /// failed *commit* they are kept — the commit may have reached the disk,
    /// and an orphan file is better than a message without a body.
    fn write_with_blobs<T>(
        &self,
        blobs: &[u64],
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        match self.transact(f) {
            Ok(value) => Ok(value),
            Err(Failed::Before(e)) => {
                self.blobs.delete_all(blobs);
                Err(e)
            }
            Err(Failed::AtCommit(e)) => {
                tracing::error!(error = %e, "mail store commit failed; keeping its blob files");
                Err(e)
            }
        }
    }

    fn apply(&self, effects: Effects) {
        self.blobs.delete_all(&effects.freed_blobs);
        if !effects.closed.is_empty() {
            if let Ok(mut recent) = self.recent.lock() {
                for id in &effects.closed {
                    recent.remove(id);
                }
            }
            if let Ok(mut snapshots) = self.snapshots.lock() {
                for id in &effects.closed {
                    snapshots.remove(id);
                }
            }
        }
        for id in effects.closed {
            self.events.close(id);
        }
        for run in effects.events.chunk_by(|a, b| a.0 == b.0) {
            if let Some((id, _)) = run.first() {
                self.events.publish(*id, run.iter().map(|(_, e)| *e));
            }
        }
    }

    /// The blob ids of `batch` (None for a delivery without recipients).
    fn write_delivery_blobs(&self, batch: &[Delivery]) -> Result<Vec<Option<u64>>> {
        let ids: Vec<Option<u64>> = batch
            .iter()
            .map(|d| (!d.recipients.is_empty()).then(|| self.alloc_blob()))
            .collect();
        let files: Vec<(u64, &[u8])> = batch
            .iter()
            .zip(&ids)
            .filter(|(d, _)| !is_inline(&d.body))
            .filter_map(|(d, id)| id.map(|id| (id, d.body.as_slice())))
            .collect();
        self.blobs.write_batch(&files)?;
        Ok(ids)
    }

    /// Reads the message's blob after its prefix. A missing file means the
    /// message was expunged since we read its record — unless the record is
    /// still there, in which case the store lost data.
    fn read_body(&self, mailbox: MailboxId, uid: Uid, rec: MessageRecord) -> Result<Vec<u8>> {
        let mut out = rec.prefix;
        let inline = {
            let txn = self.read()?;
            let table = txn.open_table(INLINE_BODIES)?;
            table
                .get(rec.blob)?
                .map(|body| out.extend_from_slice(body.value()))
        };
        let from_file = match inline {
            Some(()) => Ok(()),
            None => self.blobs.read_into(rec.blob, &mut out),
        };
        match from_file {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let txn = self.read()?;
                return match read_message(&txn.open_table(MESSAGES)?, mailbox, uid)? {
                    Some(_) => Err(StoreError::Corrupt(format!("blob {} is missing", rec.blob))),
                    None => Err(StoreError::NoSuchMessage),
                };
            }
            Err(e) => return Err(e.into()),
        }
        if out.len() as u64 != rec.size {
            return Err(StoreError::Corrupt(format!(
                "blob {} has {} octets, expected {}",
                rec.blob,
                out.len(),
                rec.size
            )));
        }
        Ok(out)
    }
}

/// Why a write transaction failed: before commit (nothing stored) or in
/// the commit itself (outcome unknown until the next open).
enum Failed {
    Before(StoreError),
    AtCommit(StoreError),
}

impl Failed {
    fn into_error(self) -> StoreError {
        match self {
            Failed::Before(e) | Failed::AtCommit(e) => e,
        }
    }
}

fn run<T>(
    txn: &WriteTransaction,
    recent: &Mutex<HashMap<MailboxId, u32>>,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
) -> Result<(T, Effects)> {
    let mut tx = Tx::open(txn)?;
    let value = f(&mut tx)?;
    // Persist the \Recent claims of the mailbox records being written.
    if let Ok(claims) = recent.lock() {
        for (id, rec) in &mut tx.mailboxes {
            if let Some(&claimed) = claims.get(id) {
                rec.first_recent_uid = rec.first_recent_uid.max(claimed);
            }
        }
    }
    Ok((value, tx.finish()?))
}

/// The subscribed names of `account` that have no mailbox.
fn orphan_subscriptions(
    table: &impl ReadableTable<(&'static str, &'static str), ()>,
    account: &str,
) -> Result<Vec<String>> {
    second_keys(table, account)
}

/// The second halves of the (account, name) keys of one account.
fn second_keys<V: redb::Value + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
    account: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in table.range((account, "")..)? {
        let (key, _) = entry?;
        let (owner, name) = key.value();
        if owner != account {
            break;
        }
        out.push(name.to_string());
    }
    Ok(out)
}

/// Creates missing tables, checks the schema version and returns the first
/// free blob id.
fn init_tables(db: &Database) -> Result<u64> {
    let txn = db.begin_write()?;
    let next_blob = {
        let mut tables = Tables::open(&txn)?;
        let schema = tables.meta.get(META_SCHEMA)?.map(|g| g.value());
        match schema {
            None => {
                tables.meta.insert(META_SCHEMA, SCHEMA_VERSION)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(StoreError::Corrupt(format!(
                    "unsupported schema version {v}"
                )));
            }
        }
        let persisted = tables.meta.get(META_NEXT_BLOB)?.map_or(1, |g| g.value());
        let after_last = tables
            .blobs
            .last()?
            .map_or(1, |(k, _)| k.value().saturating_add(1));
        persisted.max(after_last)
    };
    txn.commit()?;
    Ok(next_blob)
}

/// Every table, opened in one write transaction.
struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    accounts: Table<'t, &'static str, &'static [u8]>,
    names: Table<'t, (&'static str, &'static str), u64>,
    mailboxes: Table<'t, u64, &'static [u8]>,
    messages: Table<'t, (u64, u32), &'static [u8]>,
    blobs: Table<'t, u64, (u64, u64)>,
    inline: Table<'t, u64, &'static [u8]>,
    delivered: Table<'t, (&'static str, &'static str, &'static str), i64>,
    delivered_by_time: Table<'t, (i64, &'static str, &'static str, &'static str), ()>,
    expunged: Table<'t, (u64, u64, u32), ()>,
    subscriptions: Table<'t, (&'static str, &'static str), ()>,
    account_data: Table<'t, (&'static str, &'static str), &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            accounts: txn.open_table(ACCOUNTS)?,
            names: txn.open_table(MAILBOX_NAMES)?,
            mailboxes: txn.open_table(MAILBOXES)?,
            messages: txn.open_table(MESSAGES)?,
            blobs: txn.open_table(BLOBS)?,
            inline: txn.open_table(INLINE_BODIES)?,
            delivered: txn.open_table(DELIVERED)?,
            delivered_by_time: txn.open_table(DELIVERED_BY_TIME)?,
            expunged: txn.open_table(EXPUNGED)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS)?,
            account_data: txn.open_table(ACCOUNT_DATA)?,
        })
    }
}

/// What to do once a transaction has committed.
#[derive(Default)]
struct Effects {
    /// Blob files whose last reference is gone.
    freed_blobs: Vec<u64>,
    events: Vec<(MailboxId, MailboxEvent)>,
    /// Deleted mailboxes: their event channels are closed.
    closed: Vec<MailboxId>,
}

/// One write transaction with cached account and mailbox records.
struct Tx<'t> {
    t: Tables<'t>,
    /// Records loaded by this transaction, written back by [`Tx::finish`].
    accounts: HashMap<String, AccountRecord>,
    mailboxes: HashMap<MailboxId, MailboxRecord>,
    /// Highest blob id referenced, to advance the persisted counter.
    highest_blob: Option<u64>,
    effects: Effects,
}

impl<'t> Tx<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Tx {
            t: Tables::open(txn)?,
            accounts: HashMap::new(),
            mailboxes: HashMap::new(),
            highest_blob: None,
            effects: Effects::default(),
        })
    }

    /// Writes back cached records and the blob counter.
    fn finish(mut self) -> Result<Effects> {
        for (name, rec) in &self.accounts {
            self.t
                .accounts
                .insert(name.as_str(), rec.encode().as_slice())?;
        }
        for (id, rec) in &self.mailboxes {
            self.t.mailboxes.insert(id.0, rec.encode().as_slice())?;
        }
        if let Some(highest) = self.highest_blob {
            let next = highest.saturating_add(1);
            if self
                .t
                .meta
                .get(META_NEXT_BLOB)?
                .is_none_or(|g| g.value() < next)
            {
                self.t.meta.insert(META_NEXT_BLOB, next)?;
            }
        }
        Ok(self.effects)
    }

    // --- accounts ---

    fn account(&mut self, name: &str) -> Result<Option<&mut AccountRecord>> {
        if !self.accounts.contains_key(name) {
            match read_account(&self.t.accounts, name)? {
                Some(rec) => self.accounts.insert(name.to_owned(), rec),
                None => return Ok(None),
            };
        }
        Ok(self.accounts.get_mut(name))
    }

    fn require_account(&mut self, name: &str) -> Result<&mut AccountRecord> {
        self.account(name)?.ok_or(StoreError::NoSuchAccount)
    }

    fn create_account(&mut self, name: &str, password_hash: Option<&str>) -> Result<()> {
        if self.account(name)?.is_some() {
            return Err(StoreError::AccountExists);
        }
        let rec = AccountRecord {
            password_hash: password_hash.map(str::to_owned),
            quota_bytes: 0,
            used_bytes: 0,
            created: unix_now(),
        };
        self.accounts.insert(name.to_owned(), rec);
        self.create_mailbox(name, INBOX, None, true)?;
        for use_ in SpecialUse::ALL {
            self.create_mailbox(name, use_.default_name(), Some(use_), true)?;
        }
        Ok(())
    }

    fn delete_account(&mut self, name: &str) -> Result<()> {
        self.require_account(name)?;
        for (_, id) in mailbox_ids(&self.t.names, name)? {
            self.drop_mailbox(id)?;
        }
        for orphan in orphan_subscriptions(&self.t.subscriptions, name)? {
            self.t.subscriptions.remove((name, orphan.as_str()))?;
        }
        for key in second_keys(&self.t.account_data, name)? {
            self.t.account_data.remove((name, key.as_str()))?;
        }
        self.accounts.remove(name);
        self.t.accounts.remove(name)?;
        Ok(())
    }

    /// Whether `extra` more octets fit in the account's quota.
    fn fits_quota(&mut self, account: &str, extra: u64) -> Result<bool> {
        let acc = self.require_account(account)?;
        Ok(acc.quota_bytes == 0 || acc.used_bytes.saturating_add(extra) <= acc.quota_bytes)
    }

    fn charge(&mut self, account: &str, delta: i128) -> Result<()> {
        if let Some(acc) = self.account(account)? {
            let used = i128::from(acc.used_bytes) + delta;
            acc.used_bytes = u64::try_from(used.max(0)).unwrap_or(u64::MAX);
        }
        Ok(())
    }

    // --- counters ---

    /// Returns the counter's value (starting at 1) and advances it.
    fn next_counter(&mut self, key: &str) -> Result<u64> {
        let value = self.t.meta.get(key)?.map_or(1, |g| g.value());
        self.t.meta.insert(key, value.saturating_add(1))?;
        Ok(value)
    }

    /// Current unix time, but always above every UIDVALIDITY handed out
    /// before, so a recreated mailbox can never look like its predecessor.
    fn new_uid_validity(&mut self) -> Result<u32> {
        let last = self
            .t
            .meta
            .get(META_LAST_UID_VALIDITY)?
            .map_or(0, |g| g.value());
        let now = u64::try_from(unix_now()).unwrap_or(0);
        let value = now.max(last.saturating_add(1)).min(u64::from(u32::MAX));
        self.t.meta.insert(META_LAST_UID_VALIDITY, value)?;
        Ok(u32::try_from(value).unwrap_or(u32::MAX))
    }

    // --- mailboxes ---

    fn mailbox(&mut self, id: MailboxId) -> Result<Option<&mut MailboxRecord>> {
        if !self.mailboxes.contains_key(&id) {
            match read_mailbox(&self.t.mailboxes, id)? {
                Some(rec) => self.mailboxes.insert(id, rec),
                None => return Ok(None),
            };
        }
        Ok(self.mailboxes.get_mut(&id))
    }

    fn require_mailbox(&mut self, id: MailboxId) -> Result<&mut MailboxRecord> {
        self.mailbox(id)?.ok_or(StoreError::NoSuchMailbox)
    }

    fn resolve(&self, account: &str, name: &str) -> Result<Option<MailboxId>> {
        resolve(&self.t.names, account, name)
    }

    /// `name` must already be a valid mailbox key.
    fn create_mailbox(
        &mut self,
        account: &str,
        name: &str,
        special_use: Option<SpecialUse>,
        subscribed: bool,
    ) -> Result<MailboxId> {
        self.require_account(account)?;
        if self.resolve(account, name)?.is_some() {
            return Err(StoreError::MailboxExists);
        }
        // A subscription kept from an earlier mailbox of this name.
        let subscribed = subscribed || self.t.subscriptions.remove((account, name))?.is_some();
        let id = MailboxId(self.next_counter(META_NEXT_MAILBOX)?);
        let rec = MailboxRecord {
            account: account.to_owned(),
            name: name.to_owned(),
            uid_validity: self.new_uid_validity()?,
            uid_next: 1,
            // RFC 7162 mod-sequences are positive; messages start at 2.
            highest_modseq: 1,
            special_use,
            subscribed,
            messages: 0,
            unseen: 0,
            size: 0,
            first_recent_uid: 1,
        };
        self.t.names.insert((account, name), id.0)?;
        self.mailboxes.insert(id, rec);
        Ok(id)
    }

    /// Deletes a mailbox with its messages, releasing blobs and quota.
    fn drop_mailbox(&mut self, id: MailboxId) -> Result<()> {
        let rec = self.require_mailbox(id)?.clone();
        let messages = message_range(&self.t.messages, id)?;
        self.t.messages.retain_in(uid_range(id), |_, _| false)?;
        self.t
            .expunged
            .retain_in((id.0, 0, 0)..=(id.0, u64::MAX, u32::MAX), |_, _| false)?;
        let mut freed_octets = 0u64;
        for (_, msg) in &messages {
            self.decref(msg.blob)?;
            freed_octets = freed_octets.saturating_add(msg.size);
        }
        self.charge(&rec.account, -i128::from(freed_octets))?;
        self.t
            .names
            .remove((rec.account.as_str(), rec.name.as_str()))?;
        self.t.mailboxes.remove(id.0)?;
        self.mailboxes.remove(&id);
        self.effects.closed.push(id);
        Ok(())
    }

    /// Renames `from` and every mailbox below it; each gets a new UIDVALIDITY.
    fn rename_tree(&mut self, account: &str, from: &str, to: &str) -> Result<()> {
        if names::renamed_child(to, from, from).is_some() {
            return Err(StoreError::InvalidName); // into its own subtree
        }
        let mut moves = vec![(from.to_owned(), to.to_owned())];
        for (name, _) in mailbox_ids(&self.t.names, account)? {
            if let Some(new) = names::renamed_child(&name, from, to) {
                moves.push((name, names::mailbox_key(&new)?));
            }
        }
        for (_, new) in &moves {
            if self.resolve(account, new)?.is_some() {
                return Err(StoreError::MailboxExists);
            }
        }
        for (old, new) in moves {
            let id = self
                .t
                .names
                .remove((account, old.as_str()))?
                .map(|g| g.value());
            let id = MailboxId(id.ok_or(StoreError::NoSuchMailbox)?);
            self.t.names.insert((account, new.as_str()), id.0)?;
            // A subscription kept for the new name joins the mailbox.
            let kept = self
                .t
                .subscriptions
                .remove((account, new.as_str()))?
                .is_some();
            let uid_validity = self.new_uid_validity()?;
            let mb = self.require_mailbox(id)?;
            mb.name = new;
            mb.uid_validity = uid_validity;
            mb.subscribed |= kept;
        }
        Ok(())
    }

    /// RFC 3501 6.3.5: renaming INBOX moves its messages to a new mailbox
    /// `to` and leaves INBOX (same UIDVALIDITY, UIDs not reused) empty.
    fn move_inbox(&mut self, account: &str, inbox: MailboxId, to: &str) -> Result<()> {
        let subscribed = self.require_mailbox(inbox)?.subscribed;
        let target = self.create_mailbox(account, to, None, subscribed)?;
        let moved = raw_message_range(&self.t.messages, inbox)?;
        self.t.messages.retain_in(uid_range(inbox), |_, _| false)?;
        for (uid, bytes) in &moved {
            self.t.messages.insert((target.0, *uid), bytes.as_slice())?;
        }
        let src = self.require_mailbox(inbox)?;
        let before = src.clone();
        src.highest_modseq += 1;
        src.messages = 0;
        src.unseen = 0;
        src.size = 0;
        let modseq = src.highest_modseq;
        let dst = self.require_mailbox(target)?;
        // UIDs keep their values: the new UIDVALIDITY makes them a new set.
        dst.uid_next = before.uid_next;
        dst.highest_modseq = before.highest_modseq;
        dst.messages = before.messages;
        dst.unseen = before.unseen;
        dst.size = before.size;
        dst.first_recent_uid = before.uid_next;
        for (uid, _) in moved {
            self.t.expunged.insert((inbox.0, modseq, uid), ())?;
            let event = MailboxEvent::Expunged {
                uid: Uid(uid),
                modseq,
            };
            self.effects.events.push((inbox, event));
        }
        Ok(())
    }

    // --- messages ---

    fn message(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageRecord>> {
        read_message(&self.t.messages, mailbox, uid)
    }

    /// See [`MailStore::reserve_uid`].
    fn reserve_uid(&mut self, id: MailboxId, uid_validity: u32, uid: Uid) -> Result<bool> {
        let mb = self.require_mailbox(id)?;
        let fresh = mb.uid_next == 1 && mb.messages == 0;
        if uid.0 == 0 || (mb.uid_validity != uid_validity && !fresh) || uid.0 < mb.uid_next {
            return Ok(false);
        }
        mb.uid_validity = uid_validity;
        mb.uid_next = uid.0;
        // A cached SELECT scan is keyed by the modseq: it must not
        // outlive this change.
        mb.highest_modseq += 1;
        Ok(true)
    }

    /// Stores `rec` under the mailbox's next UID with a fresh modseq;
    /// updates counters, quota usage and the blob's reference count.
    fn add_message(&mut self, mailbox: MailboxId, mut rec: MessageRecord) -> Result<Uid> {
        let mb = self.require_mailbox(mailbox)?;
        let uid = Uid(mb.uid_next);
        mb.uid_next = uid.0.checked_add(1).ok_or_else(|| {
            StoreError::Corrupt(format!("mailbox {} has run out of UIDs", mailbox.0))
        })?;
        mb.highest_modseq += 1;
        rec.modseq = mb.highest_modseq;
        // Delivered, appended, copied or moved here: saved now.
        rec.save_date = Some(unix_now());
        mb.messages = mb.messages.saturating_add(1);
        if !flags::is_seen(&rec.flags) {
            mb.unseen = mb.unseen.saturating_add(1);
        }
        mb.size = mb.size.saturating_add(rec.size);
        let account = mb.account.clone();

        self.t
            .messages
            .insert((mailbox.0, uid.0), rec.encode().as_slice())?;
        self.incref(rec.blob, rec.blob_size())?;
        self.charge(&account, i128::from(rec.size))?;
        let event = MailboxEvent::Appended {
            uid,
            modseq: rec.modseq,
        };
        self.effects.events.push((mailbox, event));
        Ok(uid)
    }

    /// Removes one message (if present), recording `modseq` in its event.
    fn remove_message(&mut self, mailbox: MailboxId, uid: Uid, modseq: u64) -> Result<bool> {
        let rec = match self.t.messages.remove((mailbox.0, uid.0))? {
            Some(bytes) => MessageRecord::decode(bytes.value())?,
            None => return Ok(false),
        };
        let mb = self.require_mailbox(mailbox)?;
        mb.messages = mb.messages.saturating_sub(1);
        if !flags::is_seen(&rec.flags) {
            mb.unseen = mb.unseen.saturating_sub(1);
        }
        mb.size = mb.size.saturating_sub(rec.size);
        let account = mb.account.clone();

        self.decref(rec.blob)?;
        self.charge(&account, -i128::from(rec.size))?;
        self.t.expunged.insert((mailbox.0, modseq, uid.0), ())?;
        self.effects
            .events
            .push((mailbox, MailboxEvent::Expunged { uid, modseq }));
        Ok(true)
    }

    /// Applies a flag change to one message; returns its new flags if they changed.
    fn set_flags(
        &mut self,
        mailbox: MailboxId,
        uid: Uid,
        change: &FlagChange<'_>,
        modseq: u64,
    ) -> Result<Option<Vec<String>>> {
        let Some(mut rec) = self.message(mailbox, uid)? else {
            return Ok(None);
        };
        if change
            .unchanged_since
            .is_some_and(|since| rec.modseq > since)
        {
            return Ok(None);
        }
        let new = flags::apply(&rec.flags, change.op, change.flags);
        if flags::same_set(&rec.flags, &new) {
            return Ok(None);
        }
        let (was_seen, is_seen) = (flags::is_seen(&rec.flags), flags::is_seen(&new));
        rec.flags = new;
        rec.modseq = modseq;
        self.t
            .messages
            .insert((mailbox.0, uid.0), rec.encode().as_slice())?;
        let mb = self.require_mailbox(mailbox)?;
        match (was_seen, is_seen) {
            (false, true) => mb.unseen = mb.unseen.saturating_sub(1),
            (true, false) => mb.unseen = mb.unseen.saturating_add(1),
            _ => {}
        }
        self.effects
            .events
            .push((mailbox, MailboxEvent::FlagsChanged { uid, modseq }));
        Ok(Some(rec.flags))
    }

    // --- blobs ---

    fn incref(&mut self, blob: u64, size: u64) -> Result<()> {
        let refs = self.t.blobs.get(blob)?.map_or(0, |g| g.value().0);
        self.t.blobs.insert(blob, (refs.saturating_add(1), size))?;
        self.highest_blob = self.highest_blob.max(Some(blob));
        Ok(())
    }

    /// Drops one reference; the file is deleted after commit when none remain.
    fn decref(&mut self, blob: u64) -> Result<()> {
        let Some((refs, size)) = self.t.blobs.get(blob)?.map(|g| g.value()) else {
            // Refusing the expunge would leave the user unable to delete
            // the message; a leaked file is the lesser harm.
            tracing::warn!(blob, "blob has no reference count; leaving its file alone");
            return Ok(());
        };
        if refs <= 1 {
            self.t.blobs.remove(blob)?;
            if self.t.inline.remove(blob)?.is_none() {
                self.effects.freed_blobs.push(blob);
            }
        } else {
            self.t.blobs.insert(blob, (refs - 1, size))?;
        }
        Ok(())
    }

    // --- delivery ---

    /// Delivers one body (already stored as `blob`) to one recipient.
    fn deliver_to(
        &mut self,
        delivery: &Delivery,
        rcpt: &LocalRecipient,
        blob: u64,
        now: i64,
    ) -> Result<RecipientOutcome> {
        let Ok(account) = names::account_key(&rcpt.account) else {
            return Ok(RecipientOutcome::NoSuchAccount);
        };
        let guard = (
            delivery.queue_id.as_str(),
            rcpt.dedup_key.as_str(),
            account.as_str(),
        );
        if self.t.delivered.get(guard)?.is_some() {
            return Ok(RecipientOutcome::AlreadyDelivered);
        }
        if self.account(&account)?.is_none() {
            return Ok(RecipientOutcome::NoSuchAccount);
        }
        let mailbox = match (names::mailbox_key(&rcpt.mailbox), rcpt.special_use) {
            (Ok(name), None) => self.resolve(&account, &name)?,
            (Ok(name), Some(special_use)) => {
                Some(self.special_mailbox(&account, &name, special_use)?)
            }
            (Err(_), _) => None,
        };
        let Some(mailbox) = mailbox else {
            return Ok(RecipientOutcome::NoSuchMailbox);
        };
        let size = (rcpt.prefix.len() + delivery.body.len()) as u64;
        if !self.fits_quota(&account, size)? {
            return Ok(RecipientOutcome::OverQuota);
        }
        let rec = MessageRecord {
            blob,
            size,
            internal_date: delivery.internal_date,
            modseq: 0,
            flags: flags::normalize(&rcpt.flags),
            prefix: rcpt.prefix.clone(),
            save_date: None,
        };
        let uid = self.add_message(mailbox, rec)?;
        self.t.delivered.insert(guard, now)?;
        self.t
            .delivered_by_time
            .insert((now, guard.0, guard.1, guard.2), ())?;
        Ok(RecipientOutcome::Delivered(mailbox, uid))
    }

    /// The account's mailbox with `special_use`; else the one named
    /// `name`; else `name` made now with that use (as Sieve's
    /// `fileinto :specialuse :create`, RFC 8579).
    fn special_mailbox(
        &mut self,
        account: &str,
        name: &str,
        special_use: SpecialUse,
    ) -> Result<MailboxId> {
        for (_, id) in mailbox_ids(&self.t.names, account)? {
            if self
                .mailbox(id)?
                .is_some_and(|m| m.special_use == Some(special_use))
            {
                return Ok(id);
            }
        }
        match self.resolve(account, name)? {
            Some(id) => Ok(id),
            None => self.create_mailbox(account, name, Some(special_use), true),
        }
    }

    fn prune_delivered(&mut self, older_than: i64) -> Result<u64> {
        let mut old: Vec<(String, String, String)> = Vec::new();
        self.t.delivered_by_time.retain_in(
            ..(older_than, "", "", ""),
            |(_, queue_id, key, account), ()| {
                old.push((queue_id.to_owned(), key.to_owned(), account.to_owned()));
                false
            },
        )?;
        for (queue_id, key, account) in &old {
            self.t
                .delivered
                .remove((queue_id.as_str(), key.as_str(), account.as_str()))?;
        }
        Ok(old.len() as u64)
    }
}

/// Arguments of one STORE, shared by every message it touches.
struct FlagChange<'a> {
    op: FlagOp,
    flags: &'a [String],
    unchanged_since: Option<u64>,
}

// --- reads that work in read and write transactions alike ---

fn read_account(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<AccountRecord>> {
    t.get(name)?
        .map(|g| AccountRecord::decode(g.value()))
        .transpose()
}

fn read_mailbox(
    t: &impl ReadableTable<u64, &'static [u8]>,
    id: MailboxId,
) -> Result<Option<MailboxRecord>> {
    t.get(id.0)?
        .map(|g| MailboxRecord::decode(g.value()))
        .transpose()
}

fn read_message(
    t: &impl ReadableTable<(u64, u32), &'static [u8]>,
    mailbox: MailboxId,
    uid: Uid,
) -> Result<Option<MessageRecord>> {
    t.get((mailbox.0, uid.0))?
        .map(|g| MessageRecord::decode(g.value()))
        .transpose()
}

fn resolve(
    t: &impl ReadableTable<(&'static str, &'static str), u64>,
    account: &str,
    name: &str,
) -> Result<Option<MailboxId>> {
    Ok(t.get((account, name))?.map(|g| MailboxId(g.value())))
}

/// The account's mailboxes as (name, id), in byte order of the name.
fn mailbox_ids(
    t: &impl ReadableTable<(&'static str, &'static str), u64>,
    account: &str,
) -> Result<Vec<(String, MailboxId)>> {
    let mut out = Vec::new();
    for entry in t.range((account, "")..)? {
        let (key, id) = entry?;
        let (owner, name) = key.value();
        if owner != account {
            break;
        }
        out.push((name.to_owned(), MailboxId(id.value())));
    }
    Ok(out)
}

/// What [`MailStore::snapshot`] reads from the message table.
struct MessageScan {
    uids: Vec<Uid>,
    first_unseen: Option<u32>,
    keywords: Vec<String>,
    highest_modseq: u64,
}

/// Walks the mailbox's messages peeking at their flags, allocating
/// nothing per message.
fn scan_messages(txn: &ReadTransaction, mailbox: MailboxId) -> Result<MessageScan> {
    let mut scan = MessageScan {
        uids: Vec::new(),
        first_unseen: None,
        keywords: Vec::new(),
        highest_modseq: 0,
    };
    for entry in txn.open_table(MESSAGES)?.range(uid_range(mailbox))? {
        let (key, value) = entry?;
        scan.uids.push(Uid(key.value().1));
        let mut seen = false;
        let keywords = &mut scan.keywords;
        let modseq = MessageRecord::visit_flags(value.value(), |flag| {
            if flag == flags::SEEN {
                seen = true;
            } else if !flag.starts_with('\\')
                && !keywords.iter().any(|k| k.eq_ignore_ascii_case(flag))
            {
                keywords.push(flag.to_owned());
            }
        })?;
        scan.highest_modseq = scan.highest_modseq.max(modseq);
        if !seen && scan.first_unseen.is_none() {
            scan.first_unseen = u32::try_from(scan.uids.len()).ok();
        }
    }
    Ok(scan)
}

fn uid_range(mailbox: MailboxId) -> std::ops::RangeInclusive<(u64, u32)> {
    (mailbox.0, 0)..=(mailbox.0, u32::MAX)
}

fn message_range(
    t: &impl ReadableTable<(u64, u32), &'static [u8]>,
    mailbox: MailboxId,
) -> Result<Vec<(Uid, MessageRecord)>> {
    let mut out = Vec::new();
    for entry in t.range(uid_range(mailbox))? {
        let (key, value) = entry?;
        out.push((Uid(key.value().1), MessageRecord::decode(value.value())?));
    }
    Ok(out)
}

/// Like [`message_range`] without decoding, for moving records verbatim.
fn raw_message_range(
    t: &impl ReadableTable<(u64, u32), &'static [u8]>,
    mailbox: MailboxId,
) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in t.range(uid_range(mailbox))? {
        let (key, value) = entry?;
        out.push((key.value().1, value.value().to_vec()));
    }
    Ok(out)
}

/// An account name that must exist: one that cannot be valid cannot exist.
fn existing_account(name: &str) -> Result<String> {
    names::account_key(name).map_err(|_| StoreError::NoSuchAccount)
}

/// A mailbox name that must exist.
fn existing_mailbox(name: &str) -> Result<String> {
    names::mailbox_key(name).map_err(|_| StoreError::NoSuchMailbox)
}

/// Sorted ascending without duplicates, the order results are reported in.
fn sorted_uids(uids: &[Uid]) -> Vec<Uid> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    uids
}

impl MailStore for RedbStore {
    fn backup(&self, dir: &Path) -> Result<super::BackupCounts> {
        self.backup_into(dir)
    }

    fn create_account(&self, name: &str, password_hash: Option<&str>) -> Result<()> {
        let name = names::account_key(name)?;
        self.write(|tx| tx.create_account(&name, password_hash))
    }

    fn delete_account(&self, name: &str) -> Result<()> {
        let name = existing_account(name)?;
        self.write(|tx| tx.delete_account(&name))
    }

    fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        let name = existing_account(name)?;
        self.write(|tx| {
            tx.require_account(&name)?.password_hash = Some(password_hash.to_owned());
            Ok(())
        })
    }

    fn set_quota(&self, name: &str, quota_bytes: u64) -> Result<()> {
        let name = existing_account(name)?;
        self.write(|tx| {
            tx.require_account(&name)?.quota_bytes = quota_bytes;
            Ok(())
        })
    }

    fn account_data(&self, account: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let Ok(account) = names::account_key(account) else {
            return Ok(None);
        };
        let txn = self.read()?;
        let table = txn.open_table(ACCOUNT_DATA)?;
        Ok(table
            .get((account.as_str(), key))?
            .map(|v| v.value().to_vec()))
    }

    fn set_account_data(&self, account: &str, key: &str, value: Option<&[u8]>) -> Result<()> {
        let account = existing_account(account)?;
        self.write(|tx| {
            tx.require_account(&account)?;
            match value {
                Some(bytes) => {
                    tx.t.account_data.insert((account.as_str(), key), bytes)?;
                }
                None => {
                    tx.t.account_data.remove((account.as_str(), key))?;
                }
            }
            Ok(())
        })
    }

    fn account(&self, name: &str) -> Result<Option<AccountInfo>> {
        let Ok(name) = names::account_key(name) else {
            return Ok(None);
        };
        let txn = self.read()?;
        let rec = read_account(&txn.open_table(ACCOUNTS)?, &name)?;
        Ok(rec.map(|r| r.info(&name)))
    }

    fn accounts(&self) -> Result<Vec<AccountInfo>> {
        let txn = self.read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (name, value) = entry?;
            out.push(AccountRecord::decode(value.value())?.info(name.value()));
        }
        Ok(out)
    }

    fn mailboxes(&self, account: &str) -> Result<Vec<MailboxInfo>> {
        let account = existing_account(account)?;
        let txn = self.read()?;
        if read_account(&txn.open_table(ACCOUNTS)?, &account)?.is_none() {
            return Err(StoreError::NoSuchAccount);
        }
        let records = txn.open_table(MAILBOXES)?;
        let mut out = Vec::new();
        for (name, id) in mailbox_ids(&txn.open_table(MAILBOX_NAMES)?, &account)? {
            let rec = read_mailbox(&records, id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("mailbox name {name:?} points at missing mailbox"))
            })?;
            out.push(rec.info(id));
        }
        // Stable: INBOX first, the rest stay in name order.
        out.sort_by_key(|m| m.name != INBOX);
        Ok(out)
    }

    fn mailbox(&self, account: &str, name: &str) -> Result<Option<MailboxInfo>> {
        let (Ok(account), Ok(name)) = (names::account_key(account), names::mailbox_key(name))
        else {
            return Ok(None);
        };
        let txn = self.read()?;
        let Some(id) = resolve(&txn.open_table(MAILBOX_NAMES)?, &account, &name)? else {
            return Ok(None);
        };
        let rec = read_mailbox(&txn.open_table(MAILBOXES)?, id)?;
        Ok(rec.map(|r| r.info(id)))
    }

    fn create_mailbox(
        &self,
        account: &str,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxInfo> {
        let account = existing_account(account)?;
        let name = names::mailbox_key(name)?;
        self.write(|tx| {
            // IMAP CREATE does not subscribe; the client SUBSCRIBEs if it wants.
            let id = tx.create_mailbox(&account, &name, special_use, false)?;
            Ok(tx.require_mailbox(id)?.info(id))
        })
    }

    fn delete_mailbox(&self, account: &str, name: &str) -> Result<()> {
        let account = existing_account(account)?;
        let name = existing_mailbox(name)?;
        if name == INBOX {
            return Err(StoreError::InvalidName);
        }
        self.write(|tx| {
            let id = tx
                .resolve(&account, &name)?
                .ok_or(StoreError::NoSuchMailbox)?;
            // The subscription outlives the mailbox (RFC 3501 §6.3.9).
            if tx.require_mailbox(id)?.subscribed {
                tx.t.subscriptions
                    .insert((account.as_str(), name.as_str()), ())?;
            }
            tx.drop_mailbox(id)
        })
    }

    fn rename_mailbox(&self, account: &str, from: &str, to: &str) -> Result<()> {
        let account = existing_account(account)?;
        let from = existing_mailbox(from)?;
        let to = names::mailbox_key(to)?;
        self.write(|tx| {
            tx.require_account(&account)?;
            let id = tx
                .resolve(&account, &from)?
                .ok_or(StoreError::NoSuchMailbox)?;
            if tx.resolve(&account, &to)?.is_some() {
                return Err(StoreError::MailboxExists);
            }
            if from == INBOX {
                tx.move_inbox(&account, id, &to)
            } else {
                tx.rename_tree(&account, &from, &to)
            }
        })
    }

    fn set_subscribed(&self, account: &str, name: &str, subscribed: bool) -> Result<()> {
        let account = existing_account(account)?;
        let name = existing_mailbox(name)?;
        self.write(|tx| {
            tx.require_account(&account)?;
            match tx.resolve(&account, &name)? {
                Some(id) => tx.require_mailbox(id)?.subscribed = subscribed,
                // RFC 3501 §6.3.6: a name without a mailbox may be
                // subscribed (and unsubscribed again).
                None if subscribed => {
                    // Bounded: these rows are outside any quota.
                    let orphans = orphan_subscriptions(&tx.t.subscriptions, &account)?;
                    if orphans.len() >= MAX_ORPHAN_SUBSCRIPTIONS && !orphans.contains(&name) {
                        return Err(StoreError::InvalidName);
                    }
                    tx.t.subscriptions
                        .insert((account.as_str(), name.as_str()), ())?;
                }
                None => {
                    tx.t.subscriptions
                        .remove((account.as_str(), name.as_str()))?
                        .ok_or(StoreError::NoSuchMailbox)?;
                }
            }
            Ok(())
        })
    }

    fn subscriptions_without_mailbox(&self, account: &str) -> Result<Vec<String>> {
        let account = existing_account(account)?;
        let txn = self.read()?;
        orphan_subscriptions(&txn.open_table(SUBSCRIPTIONS)?, &account)
    }

    fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        let txn = self.read()?;
        if read_mailbox(&txn.open_table(MAILBOXES)?, mailbox)?.is_none() {
            return Err(StoreError::NoSuchMailbox);
        }
        let mut out = Vec::new();
        for entry in txn.open_table(MESSAGES)?.range(uid_range(mailbox))? {
            let (key, value) = entry?;
            out.push(MessageRecord::decode_meta(
                value.value(),
                Uid(key.value().1),
            )?);
        }
        Ok(out)
    }

    fn messages_by_uid(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<MessageMeta>> {
        let txn = self.read()?;
        if read_mailbox(&txn.open_table(MAILBOXES)?, mailbox)?.is_none() {
            return Err(StoreError::NoSuchMailbox);
        }
        let table = txn.open_table(MESSAGES)?;
        let mut out = Vec::with_capacity(uids.len());
        for uid in sorted_uids(uids) {
            if let Some(value) = table.get((mailbox.0, uid.0))? {
                out.push(MessageRecord::decode_meta(value.value(), uid)?);
            }
        }
        Ok(out)
    }

    fn snapshot(&self, mailbox: MailboxId) -> Result<MailboxSnapshot> {
        let txn = self.read()?;
        let record =
            read_mailbox(&txn.open_table(MAILBOXES)?, mailbox)?.ok_or(StoreError::NoSuchMailbox)?;
        // Every change to a mailbox's messages raises its highest modseq,
        // so a scan made at the same modseq is still exact.
        let version = record.highest_modseq;
        let cached = self
            .snapshots
            .lock()
            .ok()
            .and_then(|cache| cache.get(&mailbox).cloned())
            .filter(|(at, _)| *at == version);
        let scan = match cached {
            Some((_, scan)) => scan,
            None => {
                let scan = Arc::new(scan_messages(&txn, mailbox)?);
                if record.messages >= SNAPSHOT_CACHE_MIN_MESSAGES
                    && let Ok(mut cache) = self.snapshots.lock()
                {
                    if cache.len() >= SNAPSHOT_CACHE_ENTRIES && !cache.contains_key(&mailbox) {
                        // Any victim will do: a miss costs one scan.
                        if let Some(victim) = cache.keys().next().copied() {
                            cache.remove(&victim);
                        }
                    }
                    cache.insert(mailbox, (version, scan.clone()));
                }
                scan
            }
        };
        Ok(MailboxSnapshot {
            info: record.info(mailbox),
            uids: scan.uids.clone(),
            first_unseen: scan.first_unseen,
            keywords: scan.keywords.clone(),
            highest_modseq: scan.highest_modseq.max(version),
        })
    }

    fn vanished_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<Uid>> {
        let txn = self.read()?;
        let mut uids = Vec::new();
        let from = (mailbox.0, modseq.saturating_add(1), 0);
        for entry in txn
            .open_table(EXPUNGED)?
            .range(from..=(mailbox.0, u64::MAX, u32::MAX))?
        {
            uids.push(Uid(entry?.0.value().2));
        }
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    fn claim_recent(&self, mailbox: MailboxId, up_to: Uid) -> Result<Uid> {
        let mut claims = self
            .recent
            .lock()
            .map_err(|_| StoreError::Db("recent claims lock poisoned".into()))?;
        let first = match claims.get(&mailbox) {
            Some(&first) => first,
            None => {
                let txn = self.read()?;
                read_mailbox(&txn.open_table(MAILBOXES)?, mailbox)?
                    .ok_or(StoreError::NoSuchMailbox)?
                    .first_recent_uid
            }
        };
        claims.insert(mailbox, first.max(up_to.0));
        Ok(Uid(first))
    }

    fn recent_count(&self, mailbox: MailboxId) -> Result<u32> {
        let claimed = self
            .recent
            .lock()
            .map_err(|_| StoreError::Db("recent claims lock poisoned".into()))?
            .get(&mailbox)
            .copied();
        let txn = self.read()?;
        let first = match claimed {
            Some(first) => first,
            None => {
                read_mailbox(&txn.open_table(MAILBOXES)?, mailbox)?
                    .ok_or(StoreError::NoSuchMailbox)?
                    .first_recent_uid
            }
        };
        let count = txn
            .open_table(MESSAGES)?
            .range((mailbox.0, first)..=(mailbox.0, u32::MAX))?
            .count();
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    fn message(&self, mailbox: MailboxId, uid: Uid) -> Result<Vec<u8>> {
        let rec = {
            let txn = self.read()?;
            read_message(&txn.open_table(MESSAGES)?, mailbox, uid)?
        };
        self.read_body(mailbox, uid, rec.ok_or(StoreError::NoSuchMessage)?)
    }

    fn message_head(&self, mailbox: MailboxId, uid: Uid, max: usize) -> Result<Vec<u8>> {
        let rec = {
            let txn = self.read()?;
            read_message(&txn.open_table(MESSAGES)?, mailbox, uid)?
        }
        .ok_or(StoreError::NoSuchMessage)?;
        if is_inline_size(rec.blob_size()) {
            let mut all = self.read_body(mailbox, uid, rec)?;
            all.truncate(max);
            return Ok(all);
        }
        let mut out = rec.prefix.clone();
        out.truncate(max);
        let rest = max.saturating_sub(out.len());
        match self.blobs.read_head_into(rec.blob, &mut out, rest) {
            Ok(()) => Ok(out),
            // Not where its size says: the full read knows every place
            // and reports a missing body properly.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut all = self.read_body(mailbox, uid, rec)?;
                all.truncate(max);
                Ok(all)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn deliver(&self, batch: &[Delivery]) -> Result<Vec<Vec<RecipientOutcome>>> {
        // Bodies are written and fsynced before the write transaction
        // starts, so concurrent batches overlap their blob I/O and only
        // serialise on the (single-fsync) redb commit.
        let blob_ids = self.write_delivery_blobs(batch)?;
        let written: Vec<u64> = blob_ids.iter().flatten().copied().collect();
        let now = unix_now();
        let outcomes = self.write_with_blobs(&written, |tx| {
            let mut all = Vec::with_capacity(batch.len());
            for (delivery, blob) in batch.iter().zip(&blob_ids) {
                let mut outcomes = Vec::with_capacity(delivery.recipients.len());
                if let Some(blob) = *blob {
                    for rcpt in &delivery.recipients {
                        outcomes.push(tx.deliver_to(delivery, rcpt, blob, now)?);
                    }
                    let stored = outcomes
                        .iter()
                        .any(|o| matches!(o, RecipientOutcome::Delivered(..)));
                    if stored && is_inline(&delivery.body) {
                        tx.t.inline.insert(blob, delivery.body.as_slice())?;
                    }
                }
                all.push(outcomes);
            }
            Ok(all)
        })?;
        // A body nobody received (all duplicates, unknown or over quota)
        // has no reference and must not stay on disk.
        let unused: Vec<u64> = outcomes
            .iter()
            .zip(&blob_ids)
            .filter(|(o, _)| {
                !o.iter()
                    .any(|o| matches!(o, RecipientOutcome::Delivered(..)))
            })
            .filter_map(|(_, id)| *id)
            .collect();
        self.blobs.delete_all(&unused);
        Ok(outcomes)
    }

    fn reserve_uid(
        &self,
        account: &str,
        mailbox: &str,
        uid_validity: u32,
        uid: Uid,
    ) -> Result<bool> {
        let account = existing_account(account)?;
        let name = existing_mailbox(mailbox)?;
        self.write(|tx| {
            let id = tx
                .resolve(&account, &name)?
                .ok_or(StoreError::NoSuchMailbox)?;
            tx.reserve_uid(id, uid_validity, uid)
        })
    }

    fn import_batch(
        &self,
        account: &str,
        messages: &[super::ImportMessage<'_>],
    ) -> Result<Vec<super::ImportOutcome>> {
        self.import_into(account, messages)
    }

    fn append_batch(
        &self,
        account: &str,
        mailbox: &str,
        messages: &[NewMessage<'_>],
    ) -> Result<(MailboxId, u32, Vec<Uid>)> {
        let account = existing_account(account)?;
        let name = existing_mailbox(mailbox)?;
        let blobs: Vec<u64> = messages.iter().map(|_| self.alloc_blob()).collect();
        let files: Vec<(u64, &[u8])> = messages
            .iter()
            .zip(&blobs)
            .filter(|(m, _)| !is_inline(m.body))
            .map(|(m, &blob)| (blob, m.body))
            .collect();
        self.blobs.write_batch(&files)?;
        let file_ids: Vec<u64> = files.iter().map(|(id, _)| *id).collect();
        self.write_with_blobs(&file_ids, |tx| {
            tx.require_account(&account)?;
            let id = tx
                .resolve(&account, &name)?
                .ok_or(StoreError::NoSuchMailbox)?;
            let total = messages
                .iter()
                .map(|m| m.body.len() as u64)
                .fold(0, u64::saturating_add);
            if !tx.fits_quota(&account, total)? {
                return Err(StoreError::OverQuota);
            }
            let mut uids = Vec::with_capacity(messages.len());
            for (message, &blob) in messages.iter().zip(&blobs) {
                if is_inline(message.body) {
                    tx.t.inline.insert(blob, message.body)?;
                }
                let rec = MessageRecord {
                    blob,
                    size: message.body.len() as u64,
                    internal_date: message.internal_date,
                    modseq: 0,
                    flags: flags::normalize(message.flags),
                    prefix: Vec::new(),
                    save_date: None,
                };
                uids.push(tx.add_message(id, rec)?);
            }
            Ok((id, tx.require_mailbox(id)?.uid_validity, uids))
        })
    }

    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<Vec<(Uid, Vec<String>, u64)>> {
        let flags = flags::normalize(flags);
        let change = FlagChange {
            op,
            flags: &flags,
            unchanged_since,
        };
        let uids = sorted_uids(uids);
        self.write(|tx| {
            // One modseq for the whole STORE: it is one change.
            let modseq = tx.require_mailbox(mailbox)?.highest_modseq + 1;
            let mut changed = Vec::new();
            for uid in uids {
                if let Some(new) = tx.set_flags(mailbox, uid, &change, modseq)? {
                    changed.push((uid, new, modseq));
                }
            }
            if !changed.is_empty() {
                tx.require_mailbox(mailbox)?.highest_modseq = modseq;
            }
            Ok(changed)
        })
    }

    fn copy(&self, from: MailboxId, uids: &[Uid], to: MailboxId) -> Result<Vec<(Uid, Uid)>> {
        let uids = sorted_uids(uids);
        self.write(|tx| {
            tx.require_mailbox(from)?;
            let account = tx.require_mailbox(to)?.account.clone();
            let mut sources = Vec::with_capacity(uids.len());
            for uid in uids {
                if let Some(rec) = tx.message(from, uid)? {
                    sources.push((uid, rec));
                }
            }
            let total = sources
                .iter()
                .map(|(_, r)| r.size)
                .fold(0, u64::saturating_add);
            if !tx.fits_quota(&account, total)? {
                return Err(StoreError::OverQuota);
            }
            sources
                .into_iter()
                .map(|(uid, rec)| Ok((uid, tx.add_message(to, rec)?)))
                .collect()
        })
    }

    fn expunge_at(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<(Vec<Uid>, u64)> {
        let uids = sorted_uids(uids);
        self.write(|tx| {
            let modseq = tx.require_mailbox(mailbox)?.highest_modseq + 1;
            let mut expunged = Vec::new();
            for uid in uids {
                if tx.remove_message(mailbox, uid, modseq)? {
                    expunged.push(uid);
                }
            }
            if expunged.is_empty() {
                return Ok((expunged, modseq - 1));
            }
            tx.require_mailbox(mailbox)?.highest_modseq = modseq;
            Ok((expunged, modseq))
        })
    }

    fn subscribe(&self, mailbox: MailboxId) -> broadcast::Receiver<MailboxEvent> {
        self.events.subscribe(mailbox)
    }

    fn prune_delivered(&self, older_than: i64) -> Result<u64> {
        self.write(|tx| tx.prune_delivered(older_than))
    }
}

// --- redb errors ---

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            e => StoreError::Db(e.to_string()),
        }
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::DatabaseAlreadyOpen => StoreError::Locked,
            e => StoreError::Db(e.to_string()),
        }
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        match e {
            redb::StorageError::Corrupted(what) => StoreError::Corrupt(what),
            e => StoreError::Db(e.to_string()),
        }
    }
}

macro_rules! db_error_from {
    ($($error:ty),*) => {
        $(impl From<$error> for StoreError {
            fn from(e: $error) -> Self {
                StoreError::Db(e.to_string())
            }
        })*
    };
}

db_error_from!(redb::TransactionError, redb::TableError, redb::CommitError);

mod backup;
mod import;

#[cfg(test)]
mod tests;
