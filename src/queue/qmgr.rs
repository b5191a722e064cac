//! The queue manager (Postfix's qmgr(8)): the only mover of queue files.
//!
//! It moves mail from `incoming` and (when due) `deferred` into `active`,
//! taking turns so neither starves, keeps at most `active_limit` messages
//! there, resolves each recipient, hands local ones to the local agent, and
//! then removes the file, or rewrites it into `deferred` with a backoff, or
//! queues a bounce. A message is removed only after the store has committed
//! it, and a bounce is queued before the message it reports on is removed.

use super::active::ActiveSet;
use super::file::{QueueFile, QueuedRecipient};
use super::id::QueueId;
use super::journal::Journal;
use super::spool::{Entry, QueueName, Spool};
use crate::address::Address;
use crate::bounce::{self, Action, Report};
use crate::cleanup::{Cleanup, Submission};
use crate::config::Config;
use crate::delivery::Outcome;
use crate::delivery::local::LocalAgent;
use crate::delivery::relay::{RelayAgent, RelayJob};
use crate::live::Live;
use crate::rewrite::{AccountDirectory, Resolver, Route};
use crate::rfc5322::now_unix;
use crate::smtp::client::Recipient;

use crate::delivery::sieve;
use crate::mailauth::MailAuth;
use crate::store::{Delivery, INBOX, LocalRecipient, MailStore, RecipientOutcome, SpecialUse};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Signals that reach the queue manager.
#[derive(Default)]
pub struct Triggers {
    /// New mail in `incoming` (cleanup) or room in `active`.
    pub wake: Arc<Notify>,
    /// Retry all deferred mail now (`merpati queue flush`, ETRN, SIGUSR1).
    pub flush: Arc<Notify>,
}

pub struct Qmgr {
    pub spool: Arc<Spool>,
    pub config: Arc<Live<Config>>,
    pub resolver: Arc<Live<Resolver>>,
    pub store: Arc<dyn MailStore>,
    pub local: LocalAgent,
    pub relay: Arc<RelayAgent>,
    pub cleanup: Arc<Cleanup>,
    pub journal: Arc<Journal>,
    pub triggers: Arc<Triggers>,
    /// The files in `active` this queue manager owns (shared with the
    /// control socket, whose admin operations must not take them).
    pub active_set: Arc<ActiveSet>,
    /// SRS and ARC for copies forwarded to other domains.
    pub mailauth: Arc<MailAuth>,
}

/// The store, as the resolver sees it.
pub struct StoreAccounts(pub Arc<dyn MailStore>);

impl AccountDirectory for StoreAccounts {
    fn account_exists(&self, account: &str) -> bool {
        matches!(self.0.account(account), Ok(Some(_)))
    }
}

/// One final address of one original recipient, and what became of it.
struct Final {
    index: usize,
    address: String,
    outcome: Outcome,
    /// Where it went: `local`, or the remote host.
    relay: String,
    /// The remote next hop took DSN parameters (RFC 3461 §4.1: else we
    /// report "relayed" to a NOTIFY=SUCCESS sender).
    peer_dsn: bool,
}

impl Final {
    fn new(index: usize, address: String, outcome: Outcome, relay: &str) -> Self {
        Final {
            index,
            address,
            outcome,
            relay: relay.to_string(),
            peer_dsn: false,
        }
    }
}

/// A local recipient of a message: its index in the queue file, where it
/// goes, and the copy a Sieve script edited for it, if one did.
type Local = (usize, LocalRecipient, Option<Arc<Vec<u8>>>);
/// A local recipient and its index in the queue file.
type Placed = (usize, LocalRecipient);

impl Qmgr {
    /// Runs until `shutdown`; every delivery task is tracked by `tracker`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, tracker: TaskTracker) {
        let limit = self.config.get().queue.active_limit;
        let active = Arc::new(Semaphore::new(limit));
        let mut last_deferred_scan: Option<std::time::Instant> = None;
        let mut flush_now = true;
        loop {
            let scan_interval = self.config.get().queue.scan_interval.0;
            let scan_deferred =
                flush_now || last_deferred_scan.is_none_or(|t| t.elapsed() >= scan_interval);
            if scan_deferred {
                last_deferred_scan = Some(std::time::Instant::now());
            }
            if flush_now {
                // As `postqueue -f`: the admin says the peers are back.
                self.relay.clear_dead();
                self.make_deferred_due().await;
                flush_now = false;
            }
            if scan_deferred {
                self.write_unsettled().await;
                self.sweep_active(&active, &tracker).await;
            }
            self.fill_active(&active, scan_deferred, &tracker).await;
            tokio::select! {
                _ = self.triggers.wake.notified() => {}
                _ = self.triggers.flush.notified() => flush_now = true,
                _ = tokio::time::sleep(scan_interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Writes again the deferred copies that could not be written before
    /// (a full disk): until then their files wait in `active`.
    async fn write_unsettled(&self) {
        for job in self.active_set.take_unsettled() {
            let spool = self.spool.clone();
            let id = job.id.clone();
            let file = job.copy.clone();
            let backoff = job.backoff;
            let written = tokio::task::spawn_blocking(move || {
                settle_file(&spool, &id, file.as_ref(), backoff)
            })
            .await;
            match written {
                Ok(Ok(())) => {
                    match job.copy {
                        Some(_) => {
                            tracing::info!(queue_id = %job.id, "{}: deferred copy written at last", job.id)
                        }
                        None => tracing::info!(queue_id = %job.id, "{}: removed", job.id),
                    }
                    self.active_set.delivered(&job.id);
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Deleted from active by an admin meanwhile.
                    self.active_set.delivered(&job.id);
                }
                Ok(Err(e)) => {
                    tracing::warn!(queue_id = %job.id, "{}: still cannot defer: {e}", job.id);
                    self.active_set.unsettle(&job.id, job.copy, job.backoff);
                }
                Err(_) => self.active_set.unsettle(&job.id, job.copy, job.backoff),
            }
        }
    }

    /// Delivers again files in `active` that no task owns: left there by a
    /// failure, they would otherwise wait for a restart.
    async fn sweep_active(self: &Arc<Self>, active: &Arc<Semaphore>, tracker: &TaskTracker) {
        let spool = self.spool.clone();
        let listed =
            tokio::task::spawn_blocking(move || spool.list(QueueName::Active).unwrap_or_default())
                .await
                .unwrap_or_default();
        for entry in listed {
            let Ok(permit) = active.clone().try_acquire_owned() else {
                return;
            };
            if !self.active_set.claim(&entry.id) {
                continue;
            }
            tracing::info!(queue_id = %entry.id, "{}: found in active with no owner, delivering again", entry.id);
            self.start(entry.id, permit, tracker);
        }
    }

    /// Runs one claimed file's delivery in its own task.
    fn start(
        self: &Arc<Self>,
        id: QueueId,
        permit: tokio::sync::OwnedSemaphorePermit,
        tracker: &TaskTracker,
    ) {
        let me = self.clone();
        tracker.spawn(async move {
            // Released when the task ends, whatever way it ends.
            let claim = super::active::DeliveryClaim {
                set: me.active_set.clone(),
                id: id.clone(),
            };
            me.process(id).await;
            drop(claim);
            drop(permit);
            me.triggers.wake.notify_one();
        });
    }

    /// Marks every deferred message due now.
    async fn make_deferred_due(&self) {
        let spool = self.spool.clone();
        let _ = tokio::task::spawn_blocking(move || super::flush(&spool)).await;
    }

    async fn fill_active(
        self: &Arc<Self>,
        active: &Arc<Semaphore>,
        scan_deferred: bool,
        tracker: &TaskTracker,
    ) {
        let spool = self.spool.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let incoming = spool.list(QueueName::Incoming).unwrap_or_default();
            let now = SystemTime::now();
            let deferred: Vec<Entry> = if scan_deferred {
                let all = spool.list(QueueName::Deferred).unwrap_or_default();
                all.into_iter().filter(|e| e.modified <= now).collect()
            } else {
                Vec::new()
            };
            (incoming, deferred)
        })
        .await;
        let Ok((incoming, deferred)) = listed else {
            return;
        };
        // New and deferred mail take turns (Postfix's round robin).
        let mut incoming = incoming.into_iter();
        let mut deferred = deferred.into_iter();
        loop {
            let next = [incoming.next(), deferred.next()];
            if next.iter().all(Option::is_none) {
                break;
            }
            for entry in next.into_iter().flatten() {
                let Ok(permit) = active.clone().try_acquire_owned() else {
                    return; // active is full; a finishing task wakes us
                };
                // Claimed before the move, so a sweep never sees it unowned.
                if !self.active_set.claim(&entry.id) {
                    continue;
                }
                if let Err(e) = self
                    .spool
                    .move_to(&entry.id, entry.queue, QueueName::Active, false)
                {
                    tracing::debug!(queue_id = %entry.id, "not moved to active: {e}");
                    self.active_set.delivered(&entry.id);
                    continue;
                }
                self.start(entry.id, permit, tracker);
            }
        }
    }

    /// Delivers one message from `active` and decides its fate.
    async fn process(&self, id: QueueId) {
        let spool = self.spool.clone();
        let read_id = id.clone();
        let read =
            tokio::task::spawn_blocking(move || spool.read(QueueName::Active, &read_id)).await;
        let qf = match read {
            Ok(Ok(Ok(qf))) => qf,
            Ok(Ok(Err(format))) => {
                tracing::warn!(queue_id = %id, "{id}: corrupt queue file ({format}), moved to corrupt");
                let _ = self
                    .spool
                    .move_to(&id, QueueName::Active, QueueName::Corrupt, true);
                return;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return, // deleted by an admin
            Ok(Err(e)) => {
                tracing::warn!(queue_id = %id, "{id}: cannot read queue file: {e}");
                return; // stays in active; start-up recovery retries it
            }
            Err(_) => return,
        };
        if !qf.hold.is_empty() {
            self.hold(&id, qf).await;
            return;
        }
        tracing::info!(
            queue_id = %id,
            "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
            qf.sender,
            qf.size(),
            qf.recipients.len()
        );
        let finals = self.deliver(&id, &qf).await;
        self.settle(id, qf, finals).await;
    }

    /// Resolves and delivers every recipient; one result per final address.
    async fn deliver(&self, id: &QueueId, qf: &QueueFile) -> Vec<Final> {
        let resolver = self.resolver.get();
        let accounts = StoreAccounts(self.store.clone());
        let mut finals = Vec::new();
        let mut local: Vec<Local> = Vec::new();
        let mut remote: Vec<(usize, Address)> = Vec::new();
        let mut seen = HashSet::new();
        let return_path = &qf.sender;
        let config = self.config.get();
        let mut prepared: Option<sieve::Prepared> = None;
        // Sieve redirects: sent on as an alias would be (remote ones with
        // SRS); the copies they make are not filtered again.
        // (recipient index, target, the redirecting address, and where
        // the message stays if the target cannot be routed).
        let mut redirects: Vec<(usize, String, String, LocalRecipient)> = Vec::new();
        // Messages Sieve scripts send (vacation, notify), queued through
        // cleanup once the message's own deliveries are done.
        let mut replies: Vec<crate::delivery::vacation::Reply> = Vec::new();
        for (index, rcpt) in qf.recipients.iter().enumerate() {
            let Ok(address) = Address::parse(&rcpt.address) else {
                let outcome = Outcome::Bounced("5.1.3 bad recipient address syntax".into());
                finals.push(Final::new(index, rcpt.address.clone(), outcome, "none"));
                continue;
            };
            for route in resolver.expand(&address, &accounts) {
                match route {
                    Ok(Route::Local { account, address }) => {
                        // One copy per account per original recipient, even
                        // if aliases lead there twice.
                        if !seen.insert((index, account.clone())) {
                            continue;
                        }
                        let mut prefix = format!(
                            "Return-Path: <{return_path}>\r\nX-Original-To: {}\r\nDelivered-To: {address}\r\n",
                            rcpt.original()
                        );
                        // The spam verdict of this recipient, SpamAssassin's
                        // fields, on top where filters and clients look.
                        let mark = qf.spam_mark(&rcpt.address);
                        if let Some(m) = mark {
                            prefix.push_str(&format!(
                                "X-Spam-Status: {}\r\nX-Spam-Score: {}\r\n",
                                m.folded_status(),
                                m.score
                            ));
                        }
                        let junk = qf.quarantine || mark.is_some_and(|m| m.is_spam());
                        let default = if junk {
                            (
                                SpecialUse::Junk.default_name().to_string(),
                                Some(SpecialUse::Junk),
                            )
                        } else {
                            (INBOX.to_string(), None)
                        };
                        let prepared =
                            prepared.get_or_insert_with(|| sieve::Prepared::new(&qf.body));
                        let delivered_to = address.to_string();
                        let recipient = sieve::Recipient {
                            account: &account,
                            sender: &qf.sender,
                            address: &delivered_to,
                            delimiter: &config.recipient_delimiter,
                            spam: mark.and_then(|m| m.score_and_threshold()),
                            hostname: &config.myhostname,
                        };
                        let targets = off_the_runtime(|| {
                            sieve::targets(
                                self.store.as_ref(),
                                &config.sieve,
                                &recipient,
                                prepared,
                                default,
                            )
                        });
                        for target in targets {
                            match target {
                                sieve::Target::Mailbox {
                                    name,
                                    special_use,
                                    suffix,
                                    flags,
                                    edited,
                                } => local.push((
                                    index,
                                    LocalRecipient {
                                        account: account.clone(),
                                        mailbox: name,
                                        special_use,
                                        dedup_key: format!(
                                            "{}{suffix}",
                                            rcpt.original().to_lowercase()
                                        ),
                                        prefix: prefix.clone().into_bytes(),
                                        flags,
                                    },
                                    edited,
                                )),
                                sieve::Target::Discard => finals.push(Final::new(
                                    index,
                                    address.to_string(),
                                    Outcome::Sent(
                                        "discarded by the recipient's Sieve script".into(),
                                    ),
                                    "local",
                                )),
                                sieve::Target::Reject(reason) => {
                                    let reason = crate::rfc5322::one_line(&reason, 500);
                                    finals.push(Final::new(
                                        index,
                                        address.to_string(),
                                        Outcome::Bounced(format!(
                                            "5.7.1 rejected by the recipient's Sieve script: {reason}"
                                        )),
                                        "local",
                                    ));
                                }
                                sieve::Target::Redirect(to) => {
                                    // RFC 5228 §2.10.6: a redirect that
                                    // fails is an implicit keep.
                                    let keep = LocalRecipient {
                                        account: account.clone(),
                                        mailbox: INBOX.into(),
                                        special_use: None,
                                        dedup_key: format!(
                                            "{}\0redirect-failed",
                                            rcpt.original().to_lowercase()
                                        ),
                                        prefix: prefix.clone().into_bytes(),
                                        flags: Vec::new(),
                                    };
                                    redirects.push((index, to, delivered_to.clone(), keep));
                                }
                                sieve::Target::Reply(reply) => replies.push(reply),
                            }
                        }
                    }
                    Ok(Route::Remote(address)) => {
                        if seen.insert((index, address.key())) {
                            remote.push((index, address));
                        }
                    }
                    Err(unroutable) => finals.push(Final::new(
                        index,
                        address.to_string(),
                        Outcome::Bounced(unroutable.to_string()),
                        "none",
                    )),
                }
            }
        }
        for (index, to, by, keep) in redirects {
            let Ok(target) = Address::parse(&to) else {
                tracing::warn!(queue_id = %id, "{id}: sieve redirect to <{to}>: not an address; kept");
                local.push((index, keep, None));
                continue;
            };
            let mut kept = false;
            for route in resolver.expand(&target, &accounts) {
                match route {
                    Ok(Route::Local { account, address }) => {
                        if seen.insert((index, account.clone())) {
                            // The redirecting user's Delivered-To too, so a
                            // copy that comes round again is seen as a loop.
                            let prefix = format!(
                                "Return-Path: <{return_path}>\r\nDelivered-To: {address}\r\nDelivered-To: {by}\r\n"
                            );
                            local.push((
                                index,
                                LocalRecipient {
                                    account,
                                    mailbox: INBOX.into(),
                                    special_use: None,
                                    dedup_key: format!("{}\0redirect", address.key()),
                                    prefix: prefix.into_bytes(),
                                    flags: Vec::new(),
                                },
                                None,
                            ));
                        }
                    }
                    Ok(Route::Remote(address)) => {
                        if seen.insert((index, address.key())) {
                            remote.push((index, address));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(queue_id = %id, "{id}: sieve redirect to <{to}>: {e}; kept");
                        if !kept {
                            local.push((index, keep.clone(), None));
                            kept = true;
                        }
                    }
                }
            }
        }
        if !local.is_empty() {
            finals.extend(self.deliver_local(id, qf, local).await);
        }
        if !remote.is_empty() {
            finals.extend(self.deliver_remote(qf, remote).await);
        }
        for reply in replies {
            self.queue_reply(id, reply).await;
        }
        finals
    }

    /// Queues a message a Sieve script sends (a vacation reply, a notice):
    /// the null sender (RFC 5230 §4.3, RFC 5436 §2.7), and
    /// signed like our own mail. A failure costs the reply, never the
    /// message it answers.
    async fn queue_reply(&self, id: &QueueId, reply: crate::delivery::vacation::Reply) {
        let to = reply.to.join(", ");
        if let Some((account, fcc)) = reply.fcc.clone() {
            let store = self.store.clone();
            let message = reply.message.clone();
            let filed = tokio::task::spawn_blocking(move || {
                crate::delivery::vacation::file_copy(store.as_ref(), &account, &fcc, &message)
            });
            let _ = filed.await;
        }
        let submission = Submission {
            sender: String::new(),
            recipients: reply
                .to
                .iter()
                .map(|address| QueuedRecipient {
                    address: address.clone(),
                    ..Default::default()
                })
                .collect(),
            message: reply.message,
            protocol: "local".into(),
            complete_headers: true,
            ..Default::default()
        };
        match self.cleanup.submit(submission).await {
            Ok(queued) => {
                tracing::info!(queue_id = %id, "{id}: sieve reply to {to}: {queued}");
            }
            Err(e) => tracing::warn!(queue_id = %id, "{id}: cannot queue the vacation reply: {e}"),
        }
    }

    /// One relay job per recipient domain.
    /// One relay job per recipient domain (and per envelope sender: copies
    /// forwarded by an alias leave with the SRS form of a foreign sender).
    async fn deliver_remote(&self, qf: &QueueFile, remote: Vec<(usize, Address)>) -> Vec<Final> {
        let resolver = self.resolver.get();
        let foreign_sender = Address::parse(&qf.sender)
            .map(|s| !qf.sender.is_empty() && !resolver.is_local_domain(&s))
            .unwrap_or(false);
        let srs_sender = if foreign_sender {
            self.mailauth.srs_forward(&qf.sender)
        } else {
            None
        };
        type Group = (String, bool, Vec<(usize, Address)>);
        let mut by_domain: Vec<Group> = Vec::new();
        for (index, address) in remote {
            let domain = address.domain().unwrap_or_default().to_string();
            // Forwarded: the recipient as queued was expanded into this
            // address by an alias (a reversed SRS bounce is not).
            let forwarded = qf.recipients.get(index).is_some_and(|r| {
                Address::parse(&r.address).map(|a| a.key()).ok() != Some(address.key())
            });
            match by_domain
                .iter_mut()
                .find(|(d, f, _)| *d == domain && *f == forwarded)
            {
                Some((_, _, list)) => list.push((index, address)),
                None => by_domain.push((domain, forwarded, vec![(index, address)])),
            }
        }
        let mut finals = Vec::new();
        for (domain, forwarded, list) in by_domain {
            let sender = match (&srs_sender, forwarded) {
                (Some(srs), true) => srs.as_str(),
                _ => qf.sender.as_str(),
            };
            let sealed = if forwarded {
                self.seal_forwarded(qf, &list).await
            } else {
                None
            };
            let recipients = list
                .iter()
                .map(|(index, address)| {
                    let rcpt = qf.recipients.get(*index);
                    Recipient {
                        address: address.to_string(),
                        notify: rcpt.map(|r| r.notify.clone()).unwrap_or_default(),
                        orcpt: rcpt.map(|r| r.orcpt.clone()).unwrap_or_default(),
                    }
                })
                .collect();
            let job = RelayJob {
                domain: &domain,
                sender,
                recipients,
                message: sealed.as_deref().unwrap_or(&qf.body),
                envid: &qf.envid,
                ret: &qf.ret,
                smtputf8: qf.smtputf8,
            };
            let mut results = self.relay.deliver(job).await.into_iter();
            for (index, address) in list {
                // Every recipient must get an outcome, or it would be dropped.
                let final_ = match results.next() {
                    Some(r) => Final {
                        index,
                        address: address.to_string(),
                        outcome: r.outcome,
                        relay: r.relay,
                        peer_dsn: r.peer_dsn,
                    },
                    None => {
                        let outcome =
                            Outcome::Deferred("4.3.0 no result from the relay agent".into());
                        Final::new(index, address.to_string(), outcome, "none")
                    }
                };
                finals.push(final_);
            }
        }
        finals
    }

    /// The ARC-sealed form of a message from another server that an alias
    /// sends on to another domain; sealed for the domain that forwarded
    /// it (the queued recipient's), else our SRS domain.
    async fn seal_forwarded(&self, qf: &QueueFile, list: &[(usize, Address)]) -> Option<Vec<u8>> {
        let ip = client_ip(&qf.client)?;
        // Only mail that came from another server was checked on the way
        // in; our own users' mail is DKIM-signed instead.
        let ours = self.mailauth.authserv_id();
        if !crate::mailauth::headers::has_our_results(&qf.body, &ours) {
            return None;
        }
        let mut domains: Vec<String> = list
            .iter()
            .filter_map(|(index, _)| qf.recipients.get(*index))
            .filter_map(|r| Address::parse(&r.address).ok())
            .filter_map(|a| a.domain().map(str::to_ascii_lowercase))
            .collect();
        domains.dedup();
        domains.push(MailAuth::srs_domain(&self.config.get()));
        let origin = crate::mailauth::arc::Origin {
            ip,
            helo: &qf.helo,
            sender: &qf.sender,
        };
        self.mailauth.arc_seal(&qf.body, origin, &domains).await
    }

    /// Local recipients, in one store delivery per body: the message as
    /// queued for most, and each copy a Sieve script edited (editheader)
    /// on its own.
    async fn deliver_local(&self, id: &QueueId, qf: &QueueFile, local: Vec<Local>) -> Vec<Final> {
        let mut plain = Vec::new();
        let mut edited: Vec<(Arc<Vec<u8>>, Vec<Placed>)> = Vec::new();
        for (index, rcpt, body) in local {
            match body {
                None => plain.push((index, rcpt)),
                Some(body) => match edited.iter_mut().find(|(b, _)| Arc::ptr_eq(b, &body)) {
                    Some((_, list)) => list.push((index, rcpt)),
                    None => edited.push((body, vec![(index, rcpt)])),
                },
            }
        }
        let mut finals = Vec::new();
        if !plain.is_empty() {
            let body = Arc::new(qf.body.clone());
            finals.extend(self.deliver_body(id, body, plain).await);
        }
        for (body, list) in edited {
            finals.extend(self.deliver_body(id, body, list).await);
        }
        finals
    }

    async fn deliver_body(
        &self,
        id: &QueueId,
        body: Arc<Vec<u8>>,
        local: Vec<(usize, LocalRecipient)>,
    ) -> Vec<Final> {
        let (indexes, recipients): (Vec<usize>, Vec<LocalRecipient>) = local.into_iter().unzip();
        let finals_for = |outcomes: Vec<Outcome>, recipients: &[LocalRecipient]| {
            indexes
                .iter()
                .zip(recipients)
                .zip(outcomes)
                .map(|((index, r), outcome)| {
                    Final::new(*index, delivered_to(&r.prefix), outcome, "local")
                })
                .collect::<Vec<_>>()
        };
        let delivery = Delivery {
            queue_id: id.to_string(),
            body,
            internal_date: now_unix(),
            recipients: recipients.clone(),
        };
        let mut outcomes: Vec<Outcome> = match self.local.deliver(delivery).await {
            Ok(list) => list.into_iter().map(local_outcome).collect(),
            Err(reason) => vec![Outcome::Deferred(reason); recipients.len()],
        };
        // Every recipient must get an outcome, or it would be dropped.
        outcomes.resize(
            recipients.len(),
            Outcome::Deferred("4.3.0 no result from the store".into()),
        );
        finals_for(outcomes, &recipients)
    }

    /// Logs each result, queues notices, and removes, defers or keeps the file.
    async fn settle(&self, id: QueueId, qf: QueueFile, finals: Vec<Final>) {
        let config = self.config.get();
        let now = now_unix();
        let delay = now - qf.arrival;
        let expired = Duration::from_secs(delay.max(0) as u64) >= config.queue.max_lifetime.0;
        let mut reports = Vec::new();
        // Deferred final addresses become the recipients of the deferred
        // copy, so the queue shows (and retries) what is really waiting.
        let mut remaining: Vec<QueuedRecipient> = Vec::new();
        // Bounced addresses: if their notice cannot be queued, they are
        // kept for another try (but delivered ones are not sent again).
        let mut bounced: Vec<QueuedRecipient> = Vec::new();
        for f in finals {
            let Some(rcpt) = qf.recipients.get(f.index) else {
                continue;
            };
            let outcome = match &f.outcome {
                Outcome::Deferred(reason) if expired => {
                    Outcome::Bounced(format!("5.4.7 delivery time expired: {reason}"))
                }
                other => other.clone(),
            };
            let (status, text) = match &outcome {
                Outcome::Sent(t) => ("sent", t.clone()),
                Outcome::Deferred(t) => ("deferred", t.clone()),
                Outcome::Bounced(t) => ("bounced", t.clone()),
            };
            let age = (status != "deferred").then_some(delay as f64);
            // The relay names a host for SMTP: the label is the transport.
            let transport = match f.relay.as_str() {
                "local" | "none" => f.relay.as_str(),
                _ => "smtp",
            };
            crate::metrics::get().delivery(transport, status, age);
            // Logged as the delivery agent that did the work, as Postfix's
            // local(8) and smtp(8) do (pflogsumm counts these lines).
            let agent = if f.relay == "local" {
                tracing::info_span!("local")
            } else {
                tracing::info_span!("smtp")
            };
            let _agent = agent.enter();
            tracing::info!(
                queue_id = %id,
                "{id}: to=<{}>, orig_to=<{}>, relay={}, delay={delay}, dsn={}, status={status} ({text})",
                f.address,
                rcpt.original(),
                f.relay,
                outcome.dsn()
            );
            match outcome {
                Outcome::Sent(_)
                    if f.relay == "local" && bounce::wanted(&rcpt.notify, Action::Delivered) =>
                {
                    reports.push(report(
                        &f,
                        rcpt,
                        Action::Delivered,
                        "2.0.0 delivered to mailbox",
                    ))
                }
                // RFC 3461 §4.1: a next hop without DSN cannot report
                // success, so we say the message was relayed.
                Outcome::Sent(ref text)
                    if f.relay != "local"
                        && !f.peer_dsn
                        && bounce::wanted(&rcpt.notify, Action::Delivered) =>
                {
                    let reason = format!("2.0.0 relayed to {} ({text})", f.relay);
                    reports.push(report(&f, rcpt, Action::Relayed, &reason))
                }
                Outcome::Sent(_) => {}
                Outcome::Deferred(reason) => {
                    if !remaining.iter().any(|r| r.address == f.address) {
                        remaining.push(QueuedRecipient {
                            address: f.address.clone(),
                            original: rcpt.original().to_string(),
                            last_reply: reason,
                            ..rcpt.clone()
                        });
                    }
                }
                Outcome::Bounced(reason) if bounce::wanted(&rcpt.notify, Action::Failed) => {
                    reports.push(report(&f, rcpt, Action::Failed, &reason));
                    bounced.push(QueuedRecipient {
                        address: f.address.clone(),
                        original: rcpt.original().to_string(),
                        last_reply: reason,
                        ..rcpt.clone()
                    });
                }
                Outcome::Bounced(_) => {}
            }
        }
        if !reports.is_empty() && !self.notify_sender(&id, &qf, &reports).await {
            // Without its notice queued the message must stay: try later,
            // for the recipients not yet delivered.
            remaining.extend(bounced);
            self.defer(&id, &qf, remaining, &config).await;
            return;
        }
        let mut qf = qf;
        let warn_after = config.queue.delay_warning.0;
        let late = !warn_after.is_zero() && Duration::from_secs(delay.max(0) as u64) >= warn_after;
        if late && !qf.warned && !remaining.is_empty() {
            let warnings: Vec<Report> = remaining
                .iter()
                .filter(|r| bounce::wanted(&r.notify, Action::Delayed))
                .map(|r| Report {
                    recipient: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    action: Action::Delayed,
                    reason: r.last_reply.clone(),
                    remote_mta: String::new(),
                })
                .collect();
            // A lost warning is only a lost courtesy; the message stays.
            qf.warned = warnings.is_empty() || self.notify_sender(&id, &qf, &warnings).await;
        }
        if remaining.is_empty() {
            if let Err(e) = self.journal.finished(&id) {
                tracing::warn!(queue_id = %id, "{id}: cannot journal completion: {e}");
            }
            if let Err(e) = self.spool.remove(QueueName::Active, &id) {
                // Every recipient is done: keep the file owned so that no
                // sweep delivers it again, and retry only the removal.
                tracing::warn!(queue_id = %id, "{id}: cannot remove, will retry: {e}");
                self.active_set.unsettle(&id, None, Duration::ZERO);
            } else {
                tracing::info!(queue_id = %id, "{id}: removed");
            }
        } else {
            self.defer(&id, &qf, remaining, &config).await;
        }
    }

    /// A message that a HOLD action put on hold at arrival: moved to
    /// `hold` with the reason kept for `queue list`, as Postfix's cleanup
    /// does. `queue release` sends it on (to `deferred`, without the
    /// request, so it is not held again).
    async fn hold(&self, id: &QueueId, qf: QueueFile) {
        let reason = qf.hold.clone();
        let file = QueueFile {
            held: reason.clone(),
            hold: String::new(),
            ..qf
        };
        let spool = self.spool.clone();
        let id2 = id.clone();
        let moved = tokio::task::spawn_blocking(move || {
            spool.write_new(QueueName::Hold, &id2, &file.encode())?;
            spool.remove(QueueName::Active, &id2)
        })
        .await;
        match moved {
            Ok(Ok(())) => tracing::info!(queue_id = %id, "{id}: hold: {reason}"),
            // Left in active: start-up recovery or the next run retries.
            Ok(Err(e)) => tracing::warn!(queue_id = %id, "{id}: cannot move to hold: {e}"),
            Err(_) => tracing::warn!(queue_id = %id, "{id}: hold task failed"),
        }
    }

    /// Queues a DSN to the sender; true when it is durable (or not needed).
    async fn notify_sender(&self, id: &QueueId, qf: &QueueFile, reports: &[Report]) -> bool {
        if qf.sender.is_empty() {
            // Never a bounce for a bounce (Postfix discards double bounces
            // by default: notify_classes lacks "2bounce").
            tracing::warn!(queue_id = %id, "{id}: undeliverable notice to the null sender discarded");
            return true;
        }
        let hostname = self.config.get().myhostname.clone();
        let submission = Submission {
            sender: String::new(),
            recipients: vec![QueuedRecipient {
                address: qf.sender.clone(),
                ..Default::default()
            }],
            message: bounce::build(qf, id, &hostname, reports),
            protocol: "local".into(),
            complete_headers: true,
            ..Default::default()
        };
        match self.cleanup.submit(submission).await {
            Ok(notice) => {
                tracing::info!(queue_id = %id, "{id}: sender delivery status notification: {notice}");
                true
            }
            Err(e) => {
                tracing::warn!(queue_id = %id, "{id}: cannot queue notification: {e}");
                false
            }
        }
    }

    /// Rewrites the message into `deferred` with its remaining recipients,
    /// due after an exponential backoff with jitter.
    async fn defer(
        &self,
        id: &QueueId,
        qf: &QueueFile,
        remaining: Vec<QueuedRecipient>,
        config: &Config,
    ) {
        let attempts = qf.attempts.saturating_add(1);
        let next = backoff(
            attempts,
            config.queue.min_backoff.0,
            config.queue.max_backoff.0,
        );
        let file = QueueFile {
            attempts,
            recipients: remaining,
            ..qf.clone()
        };
        let spool = self.spool.clone();
        let id2 = id.clone();
        // The copy goes to the blocking task and comes back if it could not
        // be written: no second copy of the body.
        let written = tokio::task::spawn_blocking(move || {
            let result = write_deferred(&spool, &id2, &file, next);
            (result, file)
        })
        .await;
        let (failure, copy) = match written {
            Ok((Ok(()), _)) => return,
            Ok((Err(e), file)) => (e.to_string(), file),
            // The task panicked and took the copy: keep every recipient
            // (a duplicate at worst, never a loss).
            Err(_) => (
                "defer task failed".to_string(),
                QueueFile {
                    attempts,
                    ..qf.clone()
                },
            ),
        };
        // The file stays in active, owned, and the copy is written again
        // at the next queue run (or `queue flush`).
        tracing::warn!(queue_id = %id, "{id}: cannot defer, will retry: {failure}");
        self.active_set.unsettle(id, Some(copy), next);
    }
}

/// Settles a file left in `active`: writes its deferred copy (the body
/// comes from the active file: unsettled copies are kept without it), or
/// with `None` just removes it (everything was delivered).
pub(super) fn settle_file(
    spool: &Spool,
    id: &QueueId,
    copy: Option<&QueueFile>,
    backoff: Duration,
) -> std::io::Result<()> {
    let Some(copy) = copy else {
        return spool.remove(QueueName::Active, id);
    };
    if !copy.body.is_empty() {
        return write_deferred(spool, id, copy, backoff);
    }
    let body = match spool.read(QueueName::Active, id)? {
        Ok(active) => active.body,
        Err(e) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            ));
        }
    };
    let full = QueueFile {
        body,
        ..copy.clone()
    };
    write_deferred(spool, id, &full, backoff)
}

/// Replaces the file in `active` by its deferred copy, due after `backoff`.
fn write_deferred(
    spool: &Spool,
    id: &QueueId,
    file: &QueueFile,
    backoff: Duration,
) -> std::io::Result<()> {
    if !spool.path(QueueName::Active, id).exists() {
        return Err(std::io::ErrorKind::NotFound.into());
    }
    spool.write_new(QueueName::Deferred, id, &file.encode())?;
    spool.set_due(QueueName::Deferred, id, SystemTime::now() + backoff)?;
    spool.remove(QueueName::Active, id)
}

fn report(f: &Final, rcpt: &QueuedRecipient, action: Action, reason: &str) -> Report {
    let remote = !matches!(f.relay.as_str(), "local" | "none");
    Report {
        recipient: f.address.clone(),
        orcpt: rcpt.orcpt.clone(),
        action,
        reason: reason.to_string(),
        remote_mta: if remote {
            f.relay.clone()
        } else {
            String::new()
        },
    }
}

fn local_outcome(outcome: RecipientOutcome) -> Outcome {
    match outcome {
        RecipientOutcome::Delivered(..) => Outcome::Sent("delivered to mailbox".into()),
        RecipientOutcome::AlreadyDelivered => {
            Outcome::Sent("delivered to mailbox (earlier attempt)".into())
        }
        RecipientOutcome::NoSuchAccount => Outcome::Bounced("5.1.1 user unknown".into()),
        RecipientOutcome::NoSuchMailbox => Outcome::Deferred("4.2.0 mailbox does not exist".into()),
        RecipientOutcome::OverQuota => Outcome::Deferred("4.2.2 mailbox full (over quota)".into()),
    }
}

/// The address in a `Delivered-To:` prefix line (for the log).
fn delivered_to(prefix: &[u8]) -> String {
    String::from_utf8_lossy(prefix)
        .lines()
        .find_map(|l| l.strip_prefix("Delivered-To: ").map(str::to_string))
        .unwrap_or_default()
}

/// min * 2^(attempts-1), capped at max, with ±10% jitter so that mail
/// deferred together does not retry in lockstep.
pub fn backoff(attempts: u32, min: Duration, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let base = min.saturating_mul(1u32 << exp).min(max);
    let jitter = 0.9 + fastrand::f64() * 0.2;
    base.mul_f64(jitter).clamp(min, max)
}

/// The address in a queue file's `client` (`name[192.0.2.1]`); `None` for
/// local submissions.
fn client_ip(client: &str) -> Option<std::net::IpAddr> {
    let inner = client.rsplit_once('[')?.1.strip_suffix(']')?;
    inner.parse().ok()
}

/// Runs blocking work (Sieve: store reads and writes, file checks, up to
/// `sieve.max_steps` of evaluation) without holding up the other tasks of
/// a runtime worker: `block_in_place` hands them to another thread. On a
/// current-thread runtime, where that is not possible, it runs inline.
fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let (min, max) = (Duration::from_secs(300), Duration::from_secs(4000));
        let first = backoff(1, min, max);
        assert!(first >= min && first <= Duration::from_secs(330));
        let third = backoff(3, min, max);
        assert!(third >= Duration::from_secs(1080) && third <= Duration::from_secs(1320));
        assert!(backoff(30, min, max) <= max);
    }
}
