//! The session's side of greylisting: which clients and recipients it
//! applies to, the 450 it answers, and postgrey's log line.

use super::{Mode, Session};
use crate::mailauth::Results;
use crate::policy::greylist::{Decision, Greylist};
use crate::smtp::proto::reply::Reply;

/// What RCPT does about greylisting.
pub(super) enum AtRcpt {
    /// Not greylisted (or passed): go on.
    Go,
    /// The sender's domain is allowlisted: decide at the end of DATA,
    /// when SPF and DKIM have spoken.
    Later,
    Refuse(Reply),
}

impl Session {
    /// Whether greylisting looks at this session at all: port 25, from
    /// outside mynetworks, not logged in, not on `allow_clients`.
    fn greylisted_session(&self) -> bool {
        let settings = &self.config.greylist;
        settings.enabled
            && self.mode == Mode::Mx
            && !self.trusted
            && self.account.is_none()
            && !Greylist::allows_client(&self.svc.policy.rules().greylist_allow, self.peer.ip())
    }

    /// The check at RCPT, for a recipient the restrictions accepted.
    pub(super) fn greylist_rcpt(&self, sender: &str, recipient: &str, local: bool) -> AtRcpt {
        if !local || !self.greylisted_session() {
            return AtRcpt::Go;
        }
        if Greylist::allows_domain(&self.config.greylist, sender).is_some() {
            return AtRcpt::Later;
        }
        match self.greylist_decide(sender, recipient) {
            None => AtRcpt::Go,
            Some(seconds) => AtRcpt::Refuse(deferral(recipient, seconds)),
        }
    }

    /// The check at the end of DATA for recipients left for later: a pass
    /// of SPF or DKIM for the sender's (allowlisted) domain skips it.
    pub(super) fn greylist_end_of_data(
        &self,
        sender: &str,
        recipients: &[String],
        results: Option<&Results>,
    ) -> Option<Reply> {
        if recipients.is_empty() {
            return None;
        }
        let domain = Greylist::allows_domain(&self.config.greylist, sender)?;
        if results.is_some_and(|r| r.vouches_for(&domain)) {
            tracing::info!(
                "greylist: action=pass, reason=authenticated domain {domain}, client_address={}, sender={sender}",
                self.peer.ip()
            );
            return None;
        }
        // Every recipient is looked at, so each triplet starts its clock.
        let waits: Vec<u64> = recipients
            .iter()
            .filter_map(|r| self.greylist_decide(sender, r))
            .collect();
        let longest = waits.into_iter().max()?;
        Some(Reply::new(
            450,
            "4.7.1",
            format!("Message greylisted, try again in {longest} seconds"),
        ))
    }

    /// Asks the table; `Some(seconds)` to wait. Logs as postgrey does.
    fn greylist_decide(&self, sender: &str, recipient: &str) -> Option<u64> {
        let now = crate::rfc5322::now_unix().max(0) as u64;
        let decision = self.svc.policy.greylist().check(
            &self.config.greylist,
            self.peer.ip(),
            sender,
            recipient,
            &self.config.recipient_delimiter,
            now,
        );
        let (action, reason, wait) = match decision {
            Decision::Pass(reason) => ("pass", reason, None),
            Decision::Defer { seconds, reason } => ("greylist", reason, Some(seconds)),
        };
        tracing::info!(
            "greylist: action={action}, reason={reason}, client_name={}, client_address={}, sender={sender}, recipient={recipient}",
            self.names.name,
            self.peer.ip()
        );
        wait
    }
}

/// postgrey's answer, in Postfix's words for a recipient refusal.
fn deferral(recipient: &str, seconds: u64) -> Reply {
    Reply::new(
        450,
        "4.2.0",
        format!(
            "<{recipient}>: Recipient address rejected: Greylisted, try again in {seconds} seconds"
        ),
    )
}
