//! `[milter]`: Sendmail milters (protocol 6) for mail arriving over SMTP,
//! under Postfix's names, so rspamd, OpenDKIM or spamass-milter plug in.

use super::units::Span;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Milter {
    /// Filters for every SMTP listener (port 25 and submission), in order:
    /// `inet:host:port` or `unix:/path`.
    pub smtpd_milters: Vec<String>,
    /// What a filter that cannot be reached, times out or breaks the
    /// protocol means: `tempfail` (4xx, the client retries: nothing is
    /// lost), `accept` (go on without it), `reject` (5xx) or `quarantine`
    /// (accept into the hold queue).
    pub milter_default_action: DefaultAction,
    pub milter_connect_timeout: Span,
    /// Each SMTP-stage event.
    pub milter_command_timeout: Span,
    /// The end of the message, when filters do their work.
    pub milter_content_timeout: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    Tempfail,
    Accept,
    Reject,
    Quarantine,
}

impl Default for Milter {
    fn default() -> Self {
        Milter {
            smtpd_milters: Vec::new(),
            milter_default_action: DefaultAction::Tempfail,
            milter_connect_timeout: Span::secs(30),
            milter_command_timeout: Span::secs(30),
            milter_content_timeout: Span::secs(300),
        }
    }
}
