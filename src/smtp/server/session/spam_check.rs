//! The session's side of the spam filter: which messages it scores (port
//! 25, from outside mynetworks, not logged in), the per-recipient verdicts
//! kept in the queue file for local delivery, and the 550 when every
//! recipient's score reaches `reject_score`.

use super::{Mode, Session};
use crate::address::Address;
use crate::mailauth::Results;
use crate::queue::file::{QueuedRecipient, SpamMark};
use crate::queue::qmgr::StoreAccounts;
use crate::rewrite::Route;
use crate::smtp::proto::reply::Reply;
use crate::spam::rules::Arrival;

impl Session {
    /// Scores `message` for each recipient; `Err(reply)` refuses it.
    /// Strips the `X-Spam-*` fields it came with, so only ours count.
    pub(super) async fn spam_verdicts(
        &self,
        message: &mut Vec<u8>,
        sender: &str,
        recipients: &[QueuedRecipient],
        auth: Option<&Results>,
    ) -> Result<Vec<SpamMark>, Reply> {
        let settings = &self.config.spam;
        if !settings.enabled || self.mode != Mode::Mx || self.trusted || self.account.is_some() {
            return Ok(Vec::new());
        }
        if let Some(stripped) = crate::spam::strip_foreign_status(message) {
            *message = stripped;
        }
        let helo = self.helo.clone().unwrap_or_default();
        let arrival = Arrival {
            client_ip: self.peer.ip(),
            client_name: &self.names.name,
            helo: &helo,
            myhostname: &self.config.myhostname,
            auth,
            now: crate::rfc5322::now_unix(),
        };
        let filter = self.svc.spam.clone();
        let analysis = filter
            .analyse(
                settings,
                self.svc.policy.dns_handle(),
                message,
                sender,
                arrival,
            )
            .await;
        let resolver = self.svc.resolver.get();
        let accounts = StoreAccounts(self.svc.store.clone());
        let mut marks = Vec::with_capacity(recipients.len());
        let mut all_rejected = settings.reject_score > 0.0;
        for r in recipients {
            let account = Address::parse(&r.address).ok().and_then(|a| {
                resolver
                    .expand(&a, &accounts)
                    .into_iter()
                    .find_map(|route| match route {
                        Ok(Route::Local { account, .. }) => Some(account),
                        _ => None,
                    })
            });
            let report = filter.judge(settings, &analysis, account.as_deref());
            all_rejected &= report.score >= settings.reject_score;
            tracing::info!(
                "{}: spam: from=<{sender}> to=<{}> {}",
                self.client(),
                r.address,
                report.status()
            );
            marks.push(SpamMark {
                recipient: r.address.clone(),
                score: format!("{:.1}", report.score),
                status: report.status(),
            });
        }
        if all_rejected && !marks.is_empty() {
            let score = marks.first().map(|m| m.score.clone()).unwrap_or_default();
            return Err(Reply::new(
                550,
                "5.7.1",
                format!("Message content rejected as spam (score {score})"),
            ));
        }
        Ok(marks)
    }
}
