//! The session's side of anvil's rate limits: connections, MAIL and RCPT
//! per client per `anvil_rate_time_unit`, answered in Postfix's words, with
//! Postfix's warning line (which fail2ban's postfix filter can read).

use super::Session;
use crate::net::anvil::Event;
use crate::smtp::proto::reply::Reply;

impl Session {
    /// Counts `event` for this client; the refusal when it went past the
    /// limit. mynetworks and `smtpd_client_event_limit_exceptions` are not
    /// counted.
    pub(super) fn rate_refusal(&self, event: Event) -> Option<Reply> {
        let anvil = &self.config.anvil;
        let limit = match event {
            Event::Connection => anvil.smtpd_client_connection_rate_limit,
            Event::Message => anvil.smtpd_client_message_rate_limit,
            Event::Recipient => anvil.smtpd_client_recipient_rate_limit,
            Event::AuthFailure => return None,
        };
        let ip = self.peer.ip();
        let exempt = || {
            let rules = self.svc.policy.rules();
            rules.rate_exceptions.iter().any(|n| n.contains(ip))
        };
        if limit == 0 || self.trusted || exempt() {
            return None;
        }
        let count = self
            .svc
            .rates
            .exceeds(event, ip, anvil.anvil_rate_time_unit.0, limit)?;
        tracing::warn!(
            "{} limit exceeded: {count} from {} for service {}",
            event.describe(),
            self.client(),
            service(self.mode)
        );
        Some(match event {
            Event::Connection => Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many connections from {ip}", self.hostname()),
            ),
            Event::Message => Reply::new(450, "4.7.1", format!("Error: too much mail from {ip}")),
            _ => Reply::new(
                450,
                "4.7.1",
                format!("Error: too many recipients from {ip}"),
            ),
        })
    }

    /// SMTP AUTH refused by `auth_failure_rate_limit`: 421 and close.
    pub(super) fn auth_rate_refusal(&self) -> Reply {
        tracing::warn!(
            "{} limit exceeded: {} from {} for service {}",
            Event::AuthFailure.describe(),
            self.config.anvil.auth_failure_rate_limit,
            self.client(),
            service(self.mode)
        );
        Reply::new(
            421,
            "4.7.0",
            format!(
                "{} Error: too many failed logins from {}",
                self.hostname(),
                self.peer.ip()
            ),
        )
    }
}

/// The service name of the warning line, as master.cf names it.
fn service(mode: super::Mode) -> &'static str {
    match mode {
        super::Mode::Mx => "smtp",
        super::Mode::Submission {
            implicit_tls: false,
        } => "submission",
        super::Mode::Submission { implicit_tls: true } => "submissions",
    }
}
