//! `merpati backup DIR`, `merpati restore DIR` and `merpati export ADDRESS
//! DIR`.
//!
//! A backup is taken while the daemon runs (through the control socket,
//! by the daemon itself) or while it is stopped, and is consistent in the
//! sense that matters: every message acknowledged before it began is in
//! it, either as a queue file or in the store. To make that hold, the
//! queue is snapshotted first — a hard link to every queue file while
//! every move and removal is held back ([`Spool::freeze`]), then copied —
//! and the store after, from one read transaction. A message that leaves the queue after the queue copy is
//! in the store before the store copy starts. Keys, certificates and
//! secrets (everything else under `data_dir` but the sockets) are copied
//! last. The layout: `DIR/queue/<queue>/<id>`, `DIR/store/`, `DIR/data/`,
//! and `DIR/MERPATI-BACKUP`, written last, which marks it complete.
//!
//! An export writes one account as a Maildir++ tree that Dovecot, mutt and
//! mbsync read.

use crate::config::Config;
use crate::queue::spool::{QueueName, Spool};
use crate::store::MailStore;
use std::fs;
use std::io;
use std::path::Path;

const MANIFEST: &str = "MERPATI-BACKUP";
/// What lives under `data_dir` but is copied its own way, or not at all
/// (the run directory's sockets and pid file; the postdrop socket).
const NOT_DATA: [&str; 4] = ["store", "queue", "run", "public"];

/// Control-socket words of a backup request.
pub fn backup_words(dir: &Path) -> Vec<String> {
    vec!["backup".into(), dir.display().to_string()]
}

/// Control-socket words of an export request.
pub fn export_words(address: &str, dir: &Path) -> Vec<String> {
    vec!["export".into(), address.into(), dir.display().to_string()]
}

/// Takes a backup into `dest` (new or empty, absolute); the summary line.
pub fn backup(
    config: &Config,
    store: &dyn MailStore,
    spool: &Spool,
    dest: &Path,
) -> Result<String, String> {
    fresh_directory(dest)?;
    if let (Ok(dest), Ok(data)) = (dest.canonicalize(), config.data_dir.canonicalize())
        && dest.starts_with(&data)
    {
        return Err(format!(
            "{} is inside data_dir {}: the backup would copy itself",
            dest.display(),
            data.display()
        ));
    }
    let started = std::time::Instant::now();
    let queued =
        copy_queue(spool, &dest.join("queue")).map_err(|e| format!("copying the queue: {e}"))?;
    let counts = store
        .backup(&dest.join("store"))
        .map_err(|e| format!("copying the store: {e}"))?;
    let data = copy_tree(&config.data_dir, &dest.join("data"), &NOT_DATA)
        .map_err(|e| format!("copying {}: {e}", config.data_dir.display()))?;
    sync_tree(dest).map_err(|e| format!("syncing {}: {e}", dest.display()))?;
    let summary = format!(
        "backup of {} in {}: {} accounts, {} messages, {} body files ({} octets), {} queued messages, {} other files, {:.1}s",
        config.myhostname,
        dest.display(),
        counts.accounts,
        counts.messages,
        counts.blobs,
        counts.bytes,
        queued,
        data,
        started.elapsed().as_secs_f64()
    );
    let manifest = format!(
        "merpati backup 1\ntaken {}\n{summary}\n",
        crate::rfc5322::now_unix()
    );
    crate::perms::write_private_file(&dest.join(MANIFEST), manifest.as_bytes(), 0o600)
        .map_err(|e| format!("{MANIFEST}: {e}"))?;
    Ok(summary)
}

/// Restores `src` into the configured `data_dir`, which must hold no
/// store yet (the daemon is stopped: it would have made one).
pub fn restore(config: &Config, src: &Path) -> Result<String, String> {
    let manifest = fs::read_to_string(src.join(MANIFEST)).map_err(|_| {
        format!(
            "{} is not a complete merpati backup (no {MANIFEST})",
            src.display()
        )
    })?;
    if config.store_dir().join("mail.redb").exists() {
        return Err(format!(
            "{} already holds a mail store: restore only into an empty data_dir (with the daemon stopped)",
            config.data_dir.display()
        ));
    }
    crate::perms::private_dir(&config.data_dir, 0o750)
        .map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
    let io = |what: &str, e: io::Error| format!("restoring {what}: {e}");
    copy_tree(&src.join("data"), &config.data_dir, &[]).map_err(|e| io("data", e))?;
    copy_tree(&src.join("queue"), &config.queue_dir(), &[]).map_err(|e| io("the queue", e))?;
    copy_tree(&src.join("store"), &config.store_dir(), &[]).map_err(|e| io("the store", e))?;
    sync_tree(&config.data_dir).map_err(|e| io("(sync)", e))?;
    let taken = manifest.lines().nth(2).unwrap_or_default();
    Ok(format!(
        "restored into {}: {taken}",
        config.data_dir.display()
    ))
}

fn fresh_directory(dir: &Path) -> Result<(), String> {
    if !dir.is_absolute() {
        return Err(format!("{}: give an absolute path", dir.display()));
    }
    if let Ok(mut entries) = fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(format!("{} is not empty", dir.display()));
    }
    crate::perms::private_dir(dir, 0o700).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Copies every queue file, keeping its mtime (a deferred file's next
/// attempt); returns how many. While the queue is frozen each file only
/// gets a hard link in a staging directory beside the queues (same
/// filesystem, microseconds a file), so deliveries wait for the links,
/// not for the copy.
fn copy_queue(spool: &Spool, dest: &Path) -> io::Result<u64> {
    struct Staging(std::path::PathBuf);
    impl Drop for Staging {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let staging = Staging(
        spool
            .root()
            .join(format!(".backup-{}-{nanos}", std::process::id())),
    );
    let mut linked = 0;
    {
        let _frozen = spool.freeze();
        for queue in QueueName::ALL {
            let target = staging.0.join(queue.dir_name());
            fs::create_dir_all(&target)?;
            for entry in spool.list(queue)? {
                let from = spool.path(queue, &entry.id);
                match fs::hard_link(&from, target.join(entry.id.as_str())) {
                    Ok(()) => linked += 1,
                    // Not moved or removed (frozen): only a file that was
                    // never complete can vanish, and it was not acknowledged.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    copy_tree(&staging.0, dest, &[])?;
    Ok(linked)
}

/// A file's bytes, mode and mtime.
fn copy_file(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?;
    let modified = fs::metadata(from)?.modified()?;
    fs::File::options()
        .write(true)
        .open(to)?
        .set_modified(modified)
}

/// Copies the regular files and directories under `from` (not sockets,
/// not the top-level names in `skip`); returns how many files.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> io::Result<u64> {
    let mut copied = 0;
    fs::create_dir_all(to)?;
    if let Ok(mode) = fs::metadata(from).map(|m| m.permissions()) {
        fs::set_permissions(to, mode)?;
    }
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == std::ffi::OsStr::new(s)) {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            copied += copy_tree(&entry.path(), &target, &[])?;
        } else if kind.is_file() {
            copy_file(&entry.path(), &target)?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Makes everything written under `dir` durable (one syncfs of its
/// filesystem).
fn sync_tree(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = fs::File::open(dir)?;
    // SAFETY: syncfs(2) takes a valid open descriptor, which `handle` is.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Maildir flag letters (in the order Maildir wants them, ASCII) for
/// IMAP system flags.
const FLAG_LETTERS: [(&str, char); 5] = [
    ("\\Draft", 'D'),
    ("\\Flagged", 'F'),
    ("\\Answered", 'R'),
    ("\\Seen", 'S'),
    ("\\Deleted", 'T'),
];

/// Writes `account`'s mailboxes under `dest` as Maildir++: INBOX at the
/// top, `a/b` as `.a.b` (names in modified UTF-7, as Dovecot keeps them),
/// flags in the `:2,` info, keywords as Dovecot's `dovecot-keywords`
/// letters, INTERNALDATE as the file's mtime, subscriptions in
/// `subscriptions`.
pub fn export(store: &dyn MailStore, account: &str, dest: &Path) -> Result<String, String> {
    let account = account.to_ascii_lowercase();
    if store
        .account(&account)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!("{account}: no such account"));
    }
    fresh_directory(dest)?;
    let mut subscriptions = String::new();
    let (mut folders, mut messages) = (0, 0u64);
    for mailbox in store.mailboxes(&account).map_err(|e| e.to_string())? {
        let folder = maildir_folder(&mailbox.name);
        let root = if folder.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&folder)
        };
        if mailbox.subscribed && !folder.is_empty() {
            subscriptions.push_str(folder.trim_start_matches('.'));
            subscriptions.push('\n');
        }
        messages +=
            export_mailbox(store, &mailbox, &root).map_err(|e| format!("{}: {e}", mailbox.name))?;
        folders += 1;
    }
    fs::write(dest.join("subscriptions"), subscriptions).map_err(|e| e.to_string())?;
    sync_tree(dest).map_err(|e| e.to_string())?;
    Ok(format!(
        "exported {account}: {folders} mailboxes, {messages} messages into {}",
        dest.display()
    ))
}

/// `INBOX` is the top; `a/b` is `.a.b`, each level in modified UTF-7 with
/// a `.` inside a level (Maildir++'s separator) written as `_`.
fn maildir_folder(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return String::new();
    }
    name.split('/')
        .map(|level| format!(".{}", crate::imap::mutf7::encode(level).replace('.', "_")))
        .collect()
}

fn export_mailbox(
    store: &dyn MailStore,
    mailbox: &crate::store::MailboxInfo,
    root: &Path,
) -> io::Result<u64> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(sub))?;
    }
    let other = |e: crate::store::StoreError| io::Error::other(e.to_string());
    let metas = store.messages(mailbox.id).map_err(other)?;
    let mut keywords: Vec<String> = Vec::new();
    for meta in &metas {
        let body = store.message(mailbox.id, meta.uid).map_err(other)?;
        let mut info: Vec<char> = FLAG_LETTERS
            .iter()
            .filter(|(flag, _)| meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag)))
            .map(|&(_, letter)| letter)
            .collect();
        for keyword in meta.flags.iter().filter(|f| !f.starts_with('\\')) {
            let index = match keywords.iter().position(|k| k == keyword) {
                Some(i) => i,
                None if keywords.len() < 26 => {
                    keywords.push(keyword.clone());
                    keywords.len() - 1
                }
                // Dovecot's letters end at z; further keywords are lost.
                None => continue,
            };
            info.push(char::from(b'a' + index as u8));
        }
        info.sort_unstable();
        let name = format!(
            "{}.M{}.merpati,S={}:2,{}",
            meta.internal_date,
            meta.uid.0,
            body.len(),
            info.iter().collect::<String>()
        );
        let path = root.join("cur").join(name);
        fs::write(&path, &body)?;
        let when = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(meta.internal_date).unwrap_or(0));
        fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(when)?;
    }
    if !keywords.is_empty() {
        let list: String = keywords
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{i} {k}\n"))
            .collect();
        fs::write(root.join("dovecot-keywords"), list)?;
    }
    Ok(metas.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_follow_maildir_plus_plus() {
        assert_eq!(maildir_folder("INBOX"), "");
        assert_eq!(maildir_folder("Sent"), ".Sent");
        assert_eq!(maildir_folder("Archive/2026"), ".Archive.2026");
        assert_eq!(maildir_folder("v1.2"), ".v1_2");
        assert_eq!(maildir_folder("Entwürfe"), ".Entw&APw-rfe");
    }
}
