//! The session's side of the milters: the events it sends at each stage,
//! the macros filters ask for most (Postfix's defaults, in part), and what
//! it does with a verdict. DATA and BDAT both send the DATA event at the
//! end of the message, just before it, so a refusal then answers the end
//! of DATA (Postfix sends it at the DATA command).

use super::{Session, Transaction};
use crate::milter::{Macros, Milters, Outcome, edit};
use crate::policy::MessageAction;
use crate::smtp::proto::reply::Reply;

/// DISCARD and quarantine go with the transaction; `Some` refuses.
fn keep_outcome(tx: &mut Transaction, outcome: Outcome) -> Option<Reply> {
    if outcome.refusal.is_some() {
        return outcome.refusal;
    }
    if outcome.discard {
        tx.discard = Some("milter DISCARD".into());
    }
    if let Some(reason) = outcome.quarantine {
        tx.actions.push(MessageAction::Hold(reason));
    }
    None
}

fn pair(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

impl Session {
    /// Connects the filters (before the greeting). A refusal, and the
    /// default action of an unreachable filter, apply from MAIL on.
    pub(super) async fn milter_connect(&mut self) {
        let settings = &self.config.milter;
        if settings.smtpd_milters.is_empty() {
            return;
        }
        let ip = self.peer.ip().to_canonical();
        let macros: Macros = vec![
            pair("j", self.config.myhostname.clone()),
            pair("{daemon_name}", "merpati"),
            pair("v", "Merpati"),
            pair("_", format!("{} [{ip}]", self.names.name)),
            pair("{client_addr}", ip.to_string()),
            pair("{client_name}", self.names.name.clone()),
            pair("{client_port}", self.peer.port().to_string()),
        ];
        let (milters, outcome) =
            Milters::start(settings, &macros, &self.names.name, self.peer).await;
        self.milters = Some(milters);
        self.milter_session = outcome;
    }

    /// Runs `stage` on the filters, if any.
    async fn with_milters<F>(&mut self, stage: F) -> Outcome
    where
        F: AsyncFnOnce(&mut Milters) -> Outcome,
    {
        let Some(mut milters) = self.milters.take() else {
            return Outcome::default();
        };
        let outcome = stage(&mut milters).await;
        self.milters = Some(milters);
        outcome
    }

    pub(super) async fn milter_helo(&mut self, name: &str) -> Option<Reply> {
        self.with_milters(async |m| m.helo(name).await)
            .await
            .refusal
    }

    /// MAIL FROM, once our own checks passed; `Some` refuses it.
    pub(super) async fn milter_mail(&mut self) -> Option<Reply> {
        self.milters.as_ref()?;
        if let Some(reply) = self.milter_session.refusal.clone() {
            return Some(reply);
        }
        let sender = self
            .tx
            .as_ref()
            .map(|t| t.sender.clone())
            .unwrap_or_default();
        let mut macros: Macros = vec![pair("{mail_addr}", sender.clone())];
        if let Some(account) = &self.account {
            macros.push(pair("{auth_authen}", account.clone()));
        }
        let args = vec![format!("<{sender}>")];
        let outcome = self
            .with_milters(async |m| m.mail(&macros, &args).await)
            .await;
        self.keep_milter_outcome(outcome)
    }

    pub(super) async fn milter_rcpt(&mut self, recipient: &str) -> Option<Reply> {
        let macros: Macros = vec![pair("{rcpt_addr}", recipient)];
        let args = vec![format!("<{recipient}>")];
        let outcome = self
            .with_milters(async |m| m.rcpt(&macros, &args).await)
            .await;
        self.keep_milter_outcome(outcome)
    }

    /// The DATA event and the message; the message as the filters left
    /// it, or the reply that refuses it. Envelope changes go into the
    /// transaction.
    pub(super) async fn milter_message(
        &mut self,
        tx: &mut Transaction,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, Reply> {
        if self.milters.is_none() {
            return Ok(message);
        }
        let data = self.with_milters(async |m| m.data().await).await;
        if let Some(reply) = keep_outcome(tx, data) {
            return Err(reply);
        }
        let mut envelope = edit::Envelope {
            sender: tx.sender.clone(),
            recipients: tx.recipients.iter().map(|r| r.address.clone()).collect(),
            quarantine: None,
        };
        let max = usize::try_from(self.config.smtp.message_size_limit.0).unwrap_or(usize::MAX);
        let Some(mut milters) = self.milters.take() else {
            return Ok(message);
        };
        let filtered = milters.message(&message, &mut envelope, max).await;
        self.milters = Some(milters);
        if let Some(reply) = keep_outcome(tx, filtered.outcome) {
            return Err(reply);
        }
        if tx.sender != envelope.sender {
            tracing::info!(
                "milter: from=<{}> changed to <{}>",
                tx.sender,
                envelope.sender
            );
            tx.sender = envelope.sender;
        }
        tx.recipients.retain(|r| {
            envelope
                .recipients
                .iter()
                .any(|e| e.eq_ignore_ascii_case(&r.address))
        });
        for added in envelope.recipients {
            if !tx
                .recipients
                .iter()
                .any(|r| r.address.eq_ignore_ascii_case(&added))
            {
                tx.recipients.push(super::restrict::recipient(&added));
            }
        }
        if tx.recipients.is_empty() {
            // Nobody left to deliver to: what the filter meant is a discard.
            tx.discard = Some("milter removed every recipient".into());
        }
        Ok(filtered.message.unwrap_or(message))
    }

    /// [`keep_outcome`] for the transaction in progress.
    fn keep_milter_outcome(&mut self, outcome: Outcome) -> Option<Reply> {
        match self.tx.as_mut() {
            Some(tx) => keep_outcome(tx, outcome),
            None => outcome.refusal,
        }
    }

    /// RSET: the filters forget the transaction.
    pub(super) async fn milter_abort(&mut self) {
        self.with_milters(async |m| {
            m.abort().await;
            Outcome::default()
        })
        .await;
    }

    pub(super) async fn milter_quit(&mut self) {
        if let Some(milters) = self.milters.take() {
            milters.quit().await;
        }
    }
}
