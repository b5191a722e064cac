//! Opening a store file that may be damaged, and checking one.
//!
//! redb 2 (and 3) panics when it opens a file cut short after a valid
//! header (`assertion failed: storage.raw_file_len()? >= ...`; fixed only
//! in redb 4.2, whose MSRV and file format we do not take yet). A panic
//! there would kill the daemon with exit 101 and a Rust backtrace, so the
//! open is guarded and the failure becomes [`StoreError::Corrupt`] with a
//! message that says what to do.

use super::{MailStore, StoreError};
use redb::Database;
use std::path::Path;

/// What to tell an admin whose store file is damaged.
pub const ADVICE: &str = "stop merpati, move the store directory aside and restore it from a \
     backup (docs/operations.md, Backups); `merpati store check` reports what is damaged, and \
     moving only mail.redb aside starts an empty store (the blobs/ files stay for recovery)";

thread_local! {
    /// Set while this thread opens a database: its panic is reported as an
    /// error, so the panic message would only confuse.
    static OPENING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays quiet for a guarded open and
/// hands every other panic to the hook that was there before.
fn quiet_hook_for_opens() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !OPENING.with(|o| o.get()) {
                previous(info);
            }
        }));
    });
}

/// True for open errors that mean the file's content is wrong, not that
/// it could not be read (permissions, I/O): only those get the "restore
/// from a backup" advice.
fn is_damage(e: &redb::DatabaseError) -> bool {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// Opens (or creates) the database without letting a damaged file panic.
pub fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    quiet_hook_for_opens();
    OPENING.with(|o| o.set(true));
    let opened =
        std::panic::catch_unwind(|| Database::builder().set_cache_size(cache_bytes).create(path));
    OPENING.with(|o| o.set(false));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::Locked),
        Ok(Err(e)) if is_damage(&e) => Err(StoreError::Corrupt(format!(
            "{} cannot be read as a mail store: {e}",
            path.display()
        ))),
        Ok(Err(e)) => Err(e.into()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown failure".into());
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            Err(StoreError::Corrupt(format!(
                "{} ({size} bytes) is damaged, probably cut short: {what}",
                path.display()
            )))
        }
    }
}

/// What `merpati store check` found.
#[derive(Debug, Default)]
pub struct Report {
    pub accounts: usize,
    pub mailboxes: usize,
    pub messages: usize,
    /// One line per problem found (empty: the store is sound).
    pub problems: Vec<String>,
}

/// Reads every account, mailbox and message body through the store, so a
/// damaged record or a missing body file is found before a user finds it.
pub fn check(store: &dyn MailStore) -> Result<Report, StoreError> {
    let mut report = Report::default();
    for account in store.accounts()? {
        report.accounts += 1;
        let mailboxes = match store.mailboxes(&account.name) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!(
                    "account {}: cannot list mailboxes: {e}",
                    account.name
                ));
                continue;
            }
        };
        for mailbox in mailboxes {
            report.mailboxes += 1;
            let messages = match store.messages(mailbox.id) {
                Ok(m) => m,
                Err(e) => {
                    report.problems.push(format!(
                        "{}/{}: cannot list messages: {e}",
                        account.name, mailbox.name
                    ));
                    continue;
                }
            };
            for meta in messages {
                report.messages += 1;
                match store.message(mailbox.id, meta.uid) {
                    Ok(body) if body.len() as u64 == meta.size => {}
                    Ok(body) => report.problems.push(format!(
                        "{}/{} uid {}: body has {} bytes, the index says {}",
                        account.name,
                        mailbox.name,
                        meta.uid.0,
                        body.len(),
                        meta.size
                    )),
                    Err(e) => report.problems.push(format!(
                        "{}/{} uid {}: {e}",
                        account.name, mailbox.name, meta.uid.0
                    )),
                }
            }
        }
    }
    Ok(report)
}
