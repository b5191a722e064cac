//! `[anvil]`: Postfix's anvil(8) rate limits per client address, under
//! Postfix's names, plus a limit on failed logins that IMAP, POP3 and SMTP
//! AUTH share.

use super::units::Span;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Anvil {
    /// The window the rates are counted in.
    pub anvil_rate_time_unit: Span,
    /// SMTP connections per client per unit; 0: no limit (Postfix's default).
    pub smtpd_client_connection_rate_limit: u32,
    /// MAIL FROM commands per client per unit; 0: no limit.
    pub smtpd_client_message_rate_limit: u32,
    /// RCPT TO commands per client per unit; 0: no limit.
    pub smtpd_client_recipient_rate_limit: u32,
    /// Networks (CIDR) the SMTP rates do not apply to, besides mynetworks.
    pub smtpd_client_event_limit_exceptions: Vec<String>,
    /// Failed logins per client address per unit, over SMTP AUTH, IMAP and
    /// POP3 together; past it logins are refused unchecked until the unit
    /// ends. 0: no limit (the failure delays still apply).
    pub auth_failure_rate_limit: u32,
}

impl Default for Anvil {
    fn default() -> Self {
        Anvil {
            anvil_rate_time_unit: Span::secs(60),
            smtpd_client_connection_rate_limit: 0,
            smtpd_client_message_rate_limit: 0,
            smtpd_client_recipient_rate_limit: 0,
            smtpd_client_event_limit_exceptions: Vec::new(),
            auth_failure_rate_limit: 10,
        }
    }
}
