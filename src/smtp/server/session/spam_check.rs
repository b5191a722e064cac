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
    /// Whether this session's mail is scored: port 25, from outside
    /// mynetworks, not logged in, and the filter on.
    pub(super) fn spam_scored(&self) -> bool {
        self.config.spam.enabled && self.mode == Mode::Mx && !self.trusted && self.account.is_none()
    }

    /// Scores `message` for each recipient; `Err(reply)` refuses it (or
    /// defers it, should the verdict task die).
    pub(super) async fn spam_verdicts(
        &self,
        message: &[u8],
        sender: &str,
        recipients: &[QueuedRecipient],
        auth: Option<&Results>,
    ) -> Result<Vec<SpamMark>, Reply> {
        let settings = &self.config.spam;
        if !self.spam_scored() {
            return Ok(Vec::new());
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
        let rules = self.svc.policy.rules();
        let sites = crate::spam::Sites {
            client: &rules.spam_client_sites,
            uri: &rules.spam_uri_sites,
        };
        let analysis = filter
            .analyse(
                settings,
                &sites,
                self.svc.policy.dns_handle(),
                message,
                sender,
                arrival,
            )
            .await;
        let resolver = self.svc.resolver.get();
        let accounts = StoreAccounts(self.svc.store.clone());
        let judged: Vec<(String, Option<String>)> = recipients
            .iter()
            .map(|r| {
                let account = Address::parse(&r.address).ok().and_then(|a| {
                    resolver
                        .expand(&a, &accounts)
                        .into_iter()
                        .find_map(|route| match route {
                            Ok(Route::Local { account, .. }) => Some(account),
                            _ => None,
                        })
                });
                (r.address.clone(), account)
            })
            .collect();
        // Usually every table is in memory and a verdict is microseconds;
        // one that must be read from the store is read off the async
        // threads.
        let in_memory = judged
            .iter()
            .all(|(_, a)| filter.ready_in_memory(a.as_deref()));
        let judge_all = {
            let owned = settings.clone();
            move || {
                judged
                    .into_iter()
                    .map(|(address, account)| {
                        let report = filter.judge(&owned, &analysis, account.as_deref());
                        (address, report)
                    })
                    .collect::<Vec<_>>()
            }
        };
        let reports = if in_memory {
            judge_all()
        } else {
            tokio::task::spawn_blocking(judge_all)
                .await
                .map_err(|_| Reply::new(451, "4.3.0", "Error: internal error, try again later"))?
        };
        let mut marks = Vec::with_capacity(reports.len());
        let mut all_rejected = settings.reject_score > 0.0;
        for (address, report) in reports {
            all_rejected &= report.score >= settings.reject_score;
            let status = report.status();
            tracing::info!(
                "{}: spam: from=<{sender}> to=<{address}> {status}",
                self.client()
            );
            marks.push(SpamMark {
                recipient: address,
                score: format!("{:.1}", report.score),
                status,
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
