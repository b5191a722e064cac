//! pickup: collects `maildrop` files written by `merpati sendmail` (even
//! while the daemon was down) and passes them to cleanup, as Postfix's
//! pickup(8) does. The maildrop file is removed only after cleanup has
//! made the queued copy durable.

use super::spool::{QueueName, Spool};
use crate::address::Address;
use crate::cleanup::{Cleanup, Submission};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub async fn run(
    spool: Arc<Spool>,
    cleanup: Arc<Cleanup>,
    wake: Arc<Notify>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        collect(&spool, &cleanup).await;
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn collect(spool: &Arc<Spool>, cleanup: &Cleanup) {
    let entries = spool.list(QueueName::Maildrop).unwrap_or_default();
    for entry in entries {
        let file = match spool.read(QueueName::Maildrop, &entry.id) {
            Ok(Ok(file)) if !file.recipients.is_empty() && envelope_is_sane(&file) => file,
            Ok(_) => {
                tracing::warn!(
                    "maildrop/{}: unreadable or without recipients, moved to corrupt",
                    entry.id
                );
                let _ = spool.move_to(&entry.id, QueueName::Maildrop, QueueName::Corrupt, true);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // Written by someone else than the queue's owner: it would
                // wait for ever, so say it loudly.
                tracing::warn!(
                    "maildrop/{}: cannot read: {e} (chown it to the queue's owner)",
                    entry.id
                );
                continue;
            }
            Err(e) => {
                tracing::debug!("maildrop/{}: {e}", entry.id);
                continue;
            }
        };
        let submission = Submission {
            sender: file.sender,
            recipients: file.recipients,
            message: file.body,
            protocol: "local".into(),
            complete_headers: true,
            envid: file.envid,
            ret: file.ret,
            content_checks: true,
            refusal_holds: true,
            ..Default::default()
        };
        match cleanup.submit(submission).await {
            Ok(id) => {
                tracing::info!(queue_id = %id, "{id}: uid=local from maildrop/{}", entry.id);
                if let Err(e) = spool.remove(QueueName::Maildrop, &entry.id) {
                    tracing::warn!("maildrop/{}: cannot remove after pickup: {e}", entry.id);
                }
            }
            Err(e) => {
                tracing::warn!("maildrop/{}: cleanup failed, will retry: {e}", entry.id);
                return;
            }
        }
    }
}

/// Maildrop is written by local users: re-check every address, so that a
/// hand-made file cannot put CR/LF or other junk into the headers that
/// cleanup and local delivery build from the envelope.
pub(crate) fn envelope_is_sane(file: &crate::queue::file::QueueFile) -> bool {
    let sender_ok = file.sender.is_empty() || Address::parse(&file.sender).is_ok();
    sender_ok
        && file
            .recipients
            .iter()
            .all(|r| Address::parse(&r.address).is_ok())
}
