//! `[greylist]`: postgrey's greylisting, built in. A (client network,
//! sender, recipient) triplet seen for the first time is told to come back
//! later; a real MTA retries, most spamware does not.

use super::units::Span;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Greylist {
    /// The one key that turns greylisting on (port 25, clients outside
    /// mynetworks, mail for our own domains).
    pub enabled: bool,
    /// How long a new triplet is deferred (postgrey `--delay`).
    pub delay: Span,
    /// A first retry later than this after the first attempt starts over
    /// (postgrey `--retry-window`).
    pub retry_window: Span,
    /// Triplets and clients not seen for this long are forgotten
    /// (postgrey `--max-age`).
    pub max_age: Span,
    /// A client network that has passed greylisting this many times is
    /// let through at once from then on (postgrey
    /// `--auto-whitelist-clients`); 0 turns that off.
    pub auto_allow_clients: u32,
    /// The client network of a triplet: /24 for IPv4 (postgrey
    /// `--lookup-by-subnet`), /64 for IPv6.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Networks (CIDR) that are never greylisted (postgrey's client
    /// whitelist).
    pub allow_clients: Vec<String>,
    /// Sender domains that skip greylisting when the message passes SPF
    /// or DKIM for them (the decision then waits for the end of DATA).
    pub allow_domains: Vec<String>,
    /// Triplets remembered at most; past this the least recently seen
    /// are forgotten first.
    pub max_entries: usize,
    /// How often the table is written to `<data_dir>/greylist.tsv`.
    pub save_interval: Span,
}

impl Default for Greylist {
    fn default() -> Self {
        Greylist {
            enabled: false,
            delay: Span::secs(300),
            retry_window: Span::secs(2 * 86_400),
            max_age: Span::secs(35 * 86_400),
            auto_allow_clients: 5,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            allow_clients: Vec::new(),
            allow_domains: Vec::new(),
            max_entries: 1_000_000,
            save_interval: Span::secs(60),
        }
    }
}
