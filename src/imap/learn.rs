//! Learning without effort: a message a user moves (or copies) into Junk
//! is learnt as spam for that user, one moved out of Junk (except into
//! Trash) as ham. It runs after the command has answered, off the
//! session's path; a failure is logged and costs only the lesson.

use crate::spam::SpamFilter;
use crate::store::{MailStore, MailboxId, MailboxInfo, SpecialUse, Uid};
use std::sync::Arc;

/// Whether `mailbox` is where the user keeps spam.
pub(crate) fn is_junk(mailbox: &MailboxInfo) -> bool {
    mailbox.special_use == Some(SpecialUse::Junk)
        || ["junk", "spam"].contains(&mailbox.name.to_ascii_lowercase().as_str())
}

/// What a copy from `source` to `dest` teaches: `Some(true)` spam,
/// `Some(false)` ham, `None` nothing.
pub(crate) fn lesson(source: Option<&MailboxInfo>, dest: &MailboxInfo) -> Option<bool> {
    let from_junk = source.is_some_and(is_junk);
    match (from_junk, is_junk(dest)) {
        (false, true) => Some(true),
        (true, false) if dest.special_use != Some(SpecialUse::Trash) => Some(false),
        _ => None,
    }
}

/// What a move teaches: the copies `uids` in `mailbox` of `account` are
/// spam (or ham); `via` names the door for the log (IMAP, webmail).
pub(crate) struct Lesson {
    pub account: String,
    pub mailbox: MailboxId,
    pub uids: Vec<Uid>,
    pub spam: bool,
    pub via: &'static str,
}

/// Learns a [`Lesson`], in the background.
pub(crate) fn learn_in_background(
    store: Arc<dyn MailStore>,
    filter: Arc<SpamFilter>,
    settings: crate::config::Spam,
    lesson: Lesson,
) {
    let Lesson {
        account,
        mailbox,
        uids,
        spam,
        via,
    } = lesson;
    let asked = uids.len();
    tokio::task::spawn_blocking(move || {
        let messages = uids.into_iter().take(MAX_PER_COMMAND).filter_map(|uid| {
            match store.message(mailbox, uid) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!("spam: cannot read a message to learn for {account}: {e}");
                    None
                }
            }
        });
        let kind = if spam { "spam" } else { "ham" };
        match filter.learn_many(&settings, &account, messages, spam) {
            Ok(counts) => tracing::info!(
                "spam: learnt {} message(s) as {kind} for {account} ({via})",
                counts.new + counts.moved
            ),
            Err(e) => tracing::warn!("spam: cannot store what {account} taught: {e}"),
        }
        if asked > MAX_PER_COMMAND {
            tracing::info!(
                "spam: {account} moved {asked} messages at once; learnt from the first {MAX_PER_COMMAND} (merpati spam train does whole mailboxes)"
            );
        }
    });
}

/// Messages one COPY or MOVE teaches at most: a user moving 100,000
/// messages is reorganising, and a lesson that size would hold the
/// learning lock for minutes.
const MAX_PER_COMMAND: usize = 1000;
