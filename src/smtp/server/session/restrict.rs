//! The session's side of the access policy: the facts it hands to
//! `policy`, and what it does with the outcome.

use super::Session;
use crate::policy::{Facts, MessageAction, Outcome, Stage};
use crate::smtp::proto::reply::Reply;

impl Session {
    /// Runs the restriction lists of `stage` (for RCPT, about `recipient`).
    pub(super) async fn restrict(
        &mut self,
        stage: Stage,
        recipient: Option<&str>,
        recipient_is_local: bool,
    ) -> Outcome {
        let policy = self.svc.policy.clone();
        let sender = self.tx.as_ref().map(|tx| tx.sender.clone());
        let size = match stage {
            Stage::EndOfData => self.message_size,
            _ => self.tx.as_ref().and_then(|tx| tx.mail.size).unwrap_or(0),
        };
        let facts = Facts {
            stage,
            client_ip: self.peer.ip(),
            names: &self.names,
            helo: self.helo.as_deref().unwrap_or_default(),
            protocol: if self.esmtp { "ESMTP" } else { "SMTP" },
            sender: sender.as_deref(),
            recipient,
            recipient_is_local,
            recipient_count: self.tx.as_ref().map(|tx| tx.recipients.len()).unwrap_or(0),
            sasl_username: self.account.as_deref().unwrap_or_default(),
            trusted: self.trusted,
            unauth_pipelining: self.unauth_pipelining,
            size,
            tls: self.stream.is_tls(),
        };
        policy.check(&facts).await
    }

    /// Keeps an accepted command's message actions for the end of DATA;
    /// `Some(reply)` when the command is refused.
    pub(super) fn keep_actions(&mut self, outcome: Outcome) -> Option<Reply> {
        if outcome.refusal.is_some() {
            return outcome.refusal;
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.actions.extend(outcome.actions);
            if outcome.discard.is_some() {
                tx.discard = outcome.discard;
            }
        }
        None
    }

    /// A refusal from the policy: 421/521 close the session after the
    /// reply (access(5)).
    pub(super) fn disconnects(reply: &Reply) -> bool {
        reply.code == 421 || reply.code == 521
    }
}

/// Applies the kept actions to an accepted message: PREPEND headers go on
/// top, REDIRECT replaces every recipient, BCC adds one. Returns the hold
/// reason, if any action asked to hold the message.
pub(super) fn apply_actions(
    actions: &[MessageAction],
    message: &mut Vec<u8>,
    recipients: &mut Vec<crate::queue::file::QueuedRecipient>,
) -> Option<String> {
    let mut hold = None;
    let mut prepend = Vec::new();
    for action in actions {
        match action {
            MessageAction::Hold(reason) => {
                hold.get_or_insert_with(|| reason.clone());
            }
            MessageAction::Prepend(header) => {
                prepend.extend_from_slice(header.as_bytes());
                prepend.extend_from_slice(b"\r\n");
            }
            MessageAction::Redirect(address) => {
                recipients.clear();
                recipients.push(recipient(address));
            }
            MessageAction::Bcc(address) => {
                if !recipients
                    .iter()
                    .any(|r| r.address.eq_ignore_ascii_case(address))
                {
                    recipients.push(recipient(address));
                }
            }
            MessageAction::Warn(_) | MessageAction::Info(_) => {}
        }
    }
    if !prepend.is_empty() {
        prepend.extend_from_slice(message);
        *message = prepend;
    }
    hold
}

pub(super) fn recipient(address: &str) -> crate::queue::file::QueuedRecipient {
    crate::queue::file::QueuedRecipient {
        address: address.to_string(),
        orcpt: String::new(),
        notify: String::new(),
        last_reply: String::new(),
        original: String::new(),
    }
}
