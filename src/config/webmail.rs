//! `[webmail]`: the mail pages served on the HTTPS listener.

use super::units::{Bytes, Span};
use serde::{Deserialize, Serialize};

/// `[webmail]`: on by default wherever `[http] tls_listen` listens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webmail {
    /// Serve the webmail at `https://myhostname/`.
    pub enabled: bool,
    /// A session unused this long ends (the user logs in again).
    pub session_idle: Span,
    /// A session ends this long after its login, used or not.
    pub session_lifetime: Span,
    /// Sessions held at once; the oldest idle one goes first.
    pub max_sessions: usize,
    /// Messages per page of the message list.
    pub page_size: usize,
    /// Largest compose form (the message and its attachments); above it
    /// the page answers 413.
    pub max_upload: Bytes,
    /// The most messages a search examines (newest first); a search of a
    /// bigger mailbox says it stopped there.
    pub search_limit: usize,
}

impl Default for Webmail {
    fn default() -> Self {
        Webmail {
            enabled: true,
            session_idle: Span::secs(30 * 60),
            session_lifetime: Span::secs(12 * 3600),
            max_sessions: 10_000,
            page_size: 50,
            max_upload: Bytes(25 << 20),
            search_limit: 20_000,
        }
    }
}
