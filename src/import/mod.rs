//! Bringing mail in from other servers' files: `merpati import mbox` and
//! `merpati import maildir`. Messages go to the store in batches (one
//! transaction each, see `MailStore::import_batch`; quota, UIDs and
//! change events are the usual ones), once: a record per message, keyed
//! by a digest of its mailbox and content, makes a second run skip what
//! the first imported.

pub mod maildir;
pub mod mbox;

/// The account-data key that marks `message` as imported into `mailbox`.
pub fn once_key(mailbox: &str, message: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(mailbox.as_bytes());
    ctx.update(b"\0");
    ctx.update(message);
    let digest = ctx.finish();
    format!(
        "import/{}",
        crate::auth::hex(digest.as_ref().get(..16).unwrap_or_default())
    )
}
