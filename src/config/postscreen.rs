//! `[postscreen]`: Postfix's postscreen(8) before the greeting — weighted
//! DNS list scores, with per-client results cached. (The pregreet test is
//! `[smtp] greet_pause`.)

use super::units::Span;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Postscreen {
    /// `zone[=filter][*weight]`, e.g. `"zen.spamhaus.org=127.0.0.[2..11]*3"`;
    /// allow lists take negative weights (`"list.dnswl.org*-5"`).
    pub postscreen_dnsbl_sites: Vec<String>,
    /// A client whose summed weight reaches this fails the test.
    pub postscreen_dnsbl_threshold: i32,
    /// At or below this (allow lists) the client passes at once.
    pub postscreen_dnsbl_allowlist_threshold: i32,
    /// `enforce` (550 5.7.1 to every RCPT, then disconnect), `drop`
    /// (521 and disconnect at once), or `ignore` (log only).
    pub postscreen_dnsbl_action: ScreenAction,
    /// `pregreet` failures: `enforce` (554 5.5.0 and disconnect, what
    /// `greet_pause` did so far), `drop`, or `ignore`.
    pub postscreen_greet_action: ScreenAction,
    /// Networks that skip postscreen (besides mynetworks).
    pub postscreen_access_list: Vec<String>,
    /// How long a DNS list result is kept per client address.
    pub postscreen_dnsbl_ttl: Span,
    /// All lookups of one client together.
    pub postscreen_dnsbl_timeout: Span,
    /// Addresses remembered at most (oldest forgotten first).
    pub postscreen_cache_size: usize,
    /// How long a client that passed the pregreet test skips it.
    pub postscreen_greet_ttl: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScreenAction {
    Enforce,
    Drop,
    Ignore,
}

impl Default for Postscreen {
    fn default() -> Self {
        Postscreen {
            postscreen_dnsbl_sites: Vec::new(),
            postscreen_dnsbl_threshold: 1,
            postscreen_dnsbl_allowlist_threshold: 0,
            postscreen_dnsbl_action: ScreenAction::Enforce,
            postscreen_greet_action: ScreenAction::Enforce,
            postscreen_access_list: Vec::new(),
            postscreen_dnsbl_ttl: Span::secs(3600),
            postscreen_dnsbl_timeout: Span::secs(10),
            postscreen_cache_size: 100_000,
            postscreen_greet_ttl: Span::secs(86_400),
        }
    }
}
