//! The mailbox store: the one place mail lives once it has been delivered.
//!
//! Local delivery writes into it ([`MailStore::deliver`]); IMAP and POP3 read
//! and modify it (flags, copy, expunge, mailbox management). It is Merpati's
//! analogue of Dovecot's mail storage layer (`lib-storage`): it knows about
//! accounts, mailboxes, UIDs, flags, modseqs and quota, and nothing about
//! protocols.
//!
//! The [`MailStore`] trait is the boundary; [`RedbStore`] is the embedded
//! backend (metadata in a redb file, message bodies in immutable blob files).
//! Another backend (PostgreSQL + S3, say) would implement the same trait.
//!
//! All trait methods are **blocking** (they fsync). Async callers must run
//! them with [`tokio::task::spawn_blocking`], holding the store as an
//! `Arc<dyn MailStore>`.

mod blob;
mod codec;
pub mod damage;
mod events;
pub(crate) mod flags;
mod names;
mod redb_store;

pub use names::{INBOX, SEPARATOR};
pub use redb_store::RedbStore;

use std::sync::Arc;
use tokio::sync::broadcast;

/// Identifies one mailbox for its whole life (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub u64);

/// An IMAP UID: strictly ascending inside a mailbox, never reused while
/// the mailbox keeps its UIDVALIDITY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub u32);

/// RFC 6154 special-use attributes of the default mailboxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    Drafts,
    Sent,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    /// Every special use, in the order the default mailboxes are created.
    pub const ALL: [SpecialUse; 5] = [
        SpecialUse::Drafts,
        SpecialUse::Sent,
        SpecialUse::Trash,
        SpecialUse::Junk,
        SpecialUse::Archive,
    ];

    /// The LIST attribute, e.g. `\Drafts`.
    pub fn attribute(&self) -> &'static str {
        match self {
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }

    /// Name of the mailbox `create_account` makes for this use.
    pub fn default_name(&self) -> &'static str {
        match self {
            SpecialUse::Drafts => "Drafts",
            SpecialUse::Sent => "Sent",
            SpecialUse::Trash => "Trash",
            SpecialUse::Junk => "Junk",
            SpecialUse::Archive => "Archive",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    /// Lower-cased account name.
    pub name: String,
    pub password_hash: Option<String>,
    /// 0 means unlimited.
    pub quota_bytes: u64,
    pub used_bytes: u64,
    /// Unix seconds.
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxInfo {
    pub id: MailboxId,
    pub account: String,
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Sum of message sizes, in octets.
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: Uid,
    /// Exact octets of prefix + blob, i.e. of what [`MailStore::message`] returns.
    pub size: u64,
    pub internal_date: i64,
    /// System flags in canonical case (`\Seen`) and keywords (`$Junk`).
    pub flags: Vec<String>,
    pub modseq: u64,
    /// Names the message's content (RFC 8474 EMAILID): equal for copies
    /// of one message (COPY, MOVE share body and prefix), different for
    /// different content.
    pub email_id: u64,
    /// RFC 8514 SAVEDATE: when it was saved into this mailbox (Unix
    /// seconds); `None` for messages stored before it was kept.
    pub save_date: Option<i64>,
}

/// What [`MailStore::backup`] copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackupCounts {
    pub accounts: u64,
    pub messages: u64,
    /// Body files (bodies over the inline size) and their octets.
    pub blobs: u64,
    pub bytes: u64,
}

/// One message of an APPEND.
#[derive(Clone, Copy, Debug)]
pub struct NewMessage<'a> {
    pub body: &'a [u8],
    pub flags: &'a [String],
    pub internal_date: i64,
}

/// One message of `merpati import` (see [`MailStore::import_batch`]).
#[derive(Clone, Copy, Debug)]
pub struct ImportMessage<'a> {
    pub mailbox: &'a str,
    pub body: &'a [u8],
    pub flags: &'a [String],
    pub internal_date: i64,
    /// (UIDVALIDITY, UID) to keep, from Dovecot's `dovecot-uidlist`, when
    /// the mailbox allows it (see [`MailStore::reserve_uid`]).
    pub uid: Option<(u32, Uid)>,
    /// Account-data key that marks the message imported: written with
    /// it, and a message whose key exists is skipped.
    pub once_key: &'a str,
}

/// What became of one [`ImportMessage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported(Uid),
    /// Its once-key was there: imported by an earlier run.
    Skipped,
    /// Refused alone (over quota); the rest of the batch went on.
    Failed(String),
}

/// A mailbox as SELECT reports it (see [`MailStore::snapshot`]).
#[derive(Clone, Debug)]
pub struct MailboxSnapshot {
    pub info: MailboxInfo,
    /// Every UID, ascending.
    pub uids: Vec<Uid>,
    /// Sequence number of the first message without `\Seen`.
    pub first_unseen: Option<u32>,
    /// Keywords set on some message, first spelling seen.
    pub keywords: Vec<String>,
    /// The mailbox's highest modseq, never below any message's.
    pub highest_modseq: u64,
}

/// One queued message to deliver to one or more local accounts. The body is
/// stored ONCE (one blob) however many recipients it has.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub queue_id: String,
    pub body: Arc<Vec<u8>>,
    pub internal_date: i64,
    pub recipients: Vec<LocalRecipient>,
}

#[derive(Clone, Debug)]
pub struct LocalRecipient {
    pub account: String,
    /// Usually "INBOX".
    pub mailbox: String,
    /// When set, the account's mailbox with this special use is meant
    /// (Junk for DMARC quarantine); `mailbox` names the one to make when
    /// the account has none.
    pub special_use: Option<SpecialUse>,
    /// Original recipient address; with the queue id and account it makes
    /// redelivery after a crash idempotent.
    pub dedup_key: String,
    /// Per-recipient header lines (Return-Path, Delivered-To...),
    /// CRLF-terminated, prepended to the blob when read.
    pub prefix: Vec<u8>,
    /// IMAP flags to store it with (a Sieve script's imap4flags).
    pub flags: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientOutcome {
    Delivered(MailboxId, Uid),
    /// This (queue id, recipient, account) was delivered before: nothing new stored.
    AlreadyDelivered,
    NoSuchAccount,
    NoSuchMailbox,
    OverQuota,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// What changed in a mailbox, sent after the change is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailboxEvent {
    Appended { uid: Uid, modseq: u64 },
    FlagsChanged { uid: Uid, modseq: u64 },
    Expunged { uid: Uid, modseq: u64 },
}

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("mail store I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("mail store database error: {0}")]
    Db(String),
    #[error("account already exists")]
    AccountExists,
    #[error("no such account")]
    NoSuchAccount,
    #[error("mailbox already exists")]
    MailboxExists,
    #[error("no such mailbox")]
    NoSuchMailbox,
    #[error("no such message")]
    NoSuchMessage,
    #[error("quota exceeded")]
    OverQuota,
    /// Bad account or mailbox name, or an operation the name forbids
    /// (deleting INBOX, renaming a mailbox into its own child).
    #[error("invalid name")]
    InvalidName,
    #[error("mail store is corrupt: {0}")]
    Corrupt(String),
    #[error("mail store is locked by another process")]
    Locked,
}

/// The mailbox store as the rest of Merpati sees it.
///
/// Every method blocks on disk I/O (and most on fsync): call them from async
/// code through [`tokio::task::spawn_blocking`]. Implementations are shared
/// between threads and must serialise conflicting writes themselves.
///
/// Account names are case-folded to lower case. Mailbox names use `/` as
/// the hierarchy separator; `INBOX` is case-insensitive, every other name is
/// case-sensitive.
pub trait MailStore: Send + Sync {
    /// Writes a consistent copy of the whole store into `dir` (new or
    /// empty) while the store keeps serving: what `open(dir)` reads back
    /// as this store was at one instant (`merpati backup`).
    fn backup(&self, dir: &std::path::Path) -> Result<BackupCounts, StoreError>;
    /// Creates the account with INBOX, Drafts, Sent, Trash, Junk and Archive
    /// (the latter five with their special use), all subscribed.
    fn create_account(&self, name: &str, password_hash: Option<&str>) -> Result<(), StoreError>;
    /// Removes the account, its mailboxes and messages; releases blobs.
    fn delete_account(&self, name: &str) -> Result<(), StoreError>;
    fn set_password(&self, name: &str, password_hash: &str) -> Result<(), StoreError>;
    /// 0 means unlimited.
    fn set_quota(&self, name: &str, quota_bytes: u64) -> Result<(), StoreError>;
    fn account(&self, name: &str) -> Result<Option<AccountInfo>, StoreError>;
    /// All accounts, sorted by name.
    fn accounts(&self) -> Result<Vec<AccountInfo>, StoreError>;
    /// A small document kept with the account under `key` (the spam
    /// filter's tokens and lists; Sieve scripts later); `None` if unset.
    /// Deleted with the account.
    fn account_data(&self, account: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets (`Some`) or removes (`None`) the document under `key`.
    fn set_account_data(
        &self,
        account: &str,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), StoreError>;
    /// The account's mailboxes sorted by name, INBOX first.
    fn mailboxes(&self, account: &str) -> Result<Vec<MailboxInfo>, StoreError>;
    fn mailbox(&self, account: &str, name: &str) -> Result<Option<MailboxInfo>, StoreError>;
    fn create_mailbox(
        &self,
        account: &str,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxInfo, StoreError>;
    /// Deletes one mailbox and its messages (not its children). INBOX cannot
    /// be deleted ([`StoreError::InvalidName`]).
    fn delete_mailbox(&self, account: &str, name: &str) -> Result<(), StoreError>;
    /// Renames a mailbox and its children, giving each a new UIDVALIDITY.
    /// Renaming INBOX moves its messages into a new mailbox and leaves INBOX
    /// empty (RFC 3501 6.3.5).
    fn rename_mailbox(&self, account: &str, from: &str, to: &str) -> Result<(), StoreError>;
    /// Subscribed names without a mailbox (deleted or never created):
    /// LSUB and LIST (SUBSCRIBED) show them as `\NonExistent`.
    fn subscriptions_without_mailbox(&self, account: &str) -> Result<Vec<String>, StoreError>;
    fn set_subscribed(&self, account: &str, name: &str, subscribed: bool)
    -> Result<(), StoreError>;
    /// Metadata of every message, ascending UID.
    fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>, StoreError>;
    /// Metadata of the given messages that exist, ascending UID (a FETCH
    /// of a few messages from a big mailbox).
    fn messages_by_uid(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<MessageMeta>, StoreError>;
    /// What SELECT needs, read without materialising every message's
    /// metadata (a 100,000-message mailbox stays a few milliseconds).
    fn snapshot(&self, mailbox: MailboxId) -> Result<MailboxSnapshot, StoreError>;
    /// UIDs expunged from the mailbox at a modseq above `modseq`, ascending
    /// (QRESYNC's `VANISHED (EARLIER)`, RFC 7162 §3.2.5.1).
    fn vanished_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<Uid>, StoreError>;
    /// Claims the `\Recent` messages for the calling session (RFC 3501
    /// §2.3.2): returns the first UID not claimed before, and marks every
    /// UID below `up_to` claimed. The caller's recent messages are the ones
    /// in `[returned, up_to)`; no other session gets them.
    fn claim_recent(&self, mailbox: MailboxId, up_to: Uid) -> Result<Uid, StoreError>;
    /// How many messages no session has claimed as recent (STATUS RECENT).
    fn recent_count(&self, mailbox: MailboxId) -> Result<u32, StoreError>;
    /// The full message: per-recipient prefix followed by the blob.
    fn message(&self, mailbox: MailboxId, uid: Uid) -> Result<Vec<u8>, StoreError>;
    /// At most the first `max` octets of a message (its header section,
    /// for a list), without reading the rest of a big body.
    fn message_head(
        &self,
        mailbox: MailboxId,
        uid: Uid,
        max: usize,
    ) -> Result<Vec<u8>, StoreError> {
        let mut all = self.message(mailbox, uid)?;
        all.truncate(max);
        Ok(all)
    }
    /// Makes the next append to the mailbox get `uid` under
    /// `uid_validity` (an import keeping Dovecot's UIDs): allowed when the
    /// mailbox has never held a message (its UIDVALIDITY becomes the given
    /// one) or has that UIDVALIDITY with `uid` not behind its next UID.
    /// `Ok(false)` when not allowed (the append then takes a new UID).
    fn reserve_uid(
        &self,
        account: &str,
        mailbox: &str,
        uid_validity: u32,
        uid: Uid,
    ) -> Result<bool, StoreError>;
    /// `merpati import` of a batch of messages of one account: each one
    /// not yet imported (by its once-key) is appended, with its key, to
    /// its mailbox (made when missing), keeping the wanted UID where
    /// allowed. This default goes message by message; a backend that can
    /// should do the batch in one transaction, so that a message and its
    /// key are stored together and one commit serves many messages.
    fn import_batch(
        &self,
        account: &str,
        messages: &[ImportMessage<'_>],
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        create_missing_mailboxes(self, account, messages)?;
        let mut outcomes = Vec::with_capacity(messages.len());
        for m in messages {
            if self.account_data(account, m.once_key)?.is_some() {
                outcomes.push(ImportOutcome::Skipped);
                continue;
            }
            if let Some((validity, uid)) = m.uid {
                self.reserve_uid(account, m.mailbox, validity, uid)?;
            }
            match self.append(account, m.mailbox, m.body, m.flags, m.internal_date) {
                Ok((_, _, uid)) => {
                    // After the append: a crash between the two imports
                    // the message again on the next run, never loses it.
                    self.set_account_data(account, m.once_key, Some(b"1"))?;
                    outcomes.push(ImportOutcome::Imported(uid));
                }
                Err(StoreError::OverQuota) => {
                    outcomes.push(ImportOutcome::Failed(StoreError::OverQuota.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(outcomes)
    }
    /// Local delivery of a batch in one transaction (one fsync). Returns one
    /// `Vec<RecipientOutcome>` per [`Delivery`], in order, one outcome per
    /// recipient. An `Err` means nothing of the batch was stored.
    fn deliver(&self, batch: &[Delivery]) -> Result<Vec<Vec<RecipientOutcome>>, StoreError>;
    /// IMAP APPEND (and MULTIAPPEND) in one transaction: all the
    /// messages or none, durable before it returns, quota checked for the
    /// whole batch. Returns the mailbox, its UIDVALIDITY and the new UIDs.
    fn append_batch(
        &self,
        account: &str,
        mailbox: &str,
        messages: &[NewMessage<'_>],
    ) -> Result<(MailboxId, u32, Vec<Uid>), StoreError>;
    /// [`MailStore::append_batch`] of one message.
    fn append(
        &self,
        account: &str,
        mailbox: &str,
        body: &[u8],
        flags: &[String],
        internal_date: i64,
    ) -> Result<(MailboxId, u32, Uid), StoreError> {
        let message = NewMessage {
            body,
            flags,
            internal_date,
        };
        let (id, validity, uids) = self.append_batch(account, mailbox, &[message])?;
        let uid = uids.first().copied().ok_or(StoreError::NoSuchMessage)?;
        Ok((id, validity, uid))
    }
    /// Changes flags; returns new flags and modseq of the messages that
    /// actually changed. UIDs that do not exist, whose flags would not
    /// change, or whose modseq is above `unchanged_since` are skipped.
    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<Vec<(Uid, Vec<String>, u64)>, StoreError>;
    /// Copies messages (sharing their blobs); returns (source, new) UID pairs
    /// in ascending source order. All or nothing: quota is checked for the
    /// whole set.
    fn copy(
        &self,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
    ) -> Result<Vec<(Uid, Uid)>, StoreError>;
    /// Removes messages; returns the UIDs actually removed, ascending.
    fn expunge(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Uid>, StoreError> {
        self.expunge_at(mailbox, uids).map(|(uids, _)| uids)
    }
    /// [`MailStore::expunge`], also returning the mailbox's highest modseq
    /// after it: the expunge's own modseq when something was removed
    /// (QRESYNC's HIGHESTMODSEQ in the tagged OK, RFC 7162 §3.2.7).
    fn expunge_at(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<(Vec<Uid>, u64), StoreError>;
    /// Change notifications for one mailbox. Subscribe *before* reading the
    /// state you want to keep up to date, so no change falls in between.
    /// The channel closes when the mailbox is deleted.
    fn subscribe(&self, mailbox: MailboxId) -> broadcast::Receiver<MailboxEvent>;
    /// Forgets delivery records (the redelivery guard) older than
    /// `older_than` (unix secs); returns how many were removed.
    fn prune_delivered(&self, older_than: i64) -> Result<u64, StoreError>;
}

/// Creates the mailboxes an import batch names that the account lacks
/// (one that appears meanwhile is as good).
fn create_missing_mailboxes<S: MailStore + ?Sized>(
    store: &S,
    account: &str,
    messages: &[ImportMessage<'_>],
) -> Result<(), StoreError> {
    let mut names: Vec<&str> = messages.iter().map(|m| m.mailbox).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        if store.mailbox(account, name)?.is_none() {
            match store.create_mailbox(account, name, None) {
                Ok(_) | Err(StoreError::MailboxExists) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Current time in unix seconds (0 if the clock is before 1970).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
