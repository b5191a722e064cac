//! `[spam]`: the spam filter that scores mail from other servers and
//! learns from what users move into and out of Junk.

use super::units::{Bytes, Span};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spam {
    /// Score mail that arrives on port 25 from outside mynetworks.
    pub enabled: bool,
    /// At or above this the message is spam: `X-Spam-Status: Yes` and
    /// delivered into the recipient's Junk mailbox (SpamAssassin's
    /// `required_score`).
    pub required_score: f64,
    /// At or above this (for every recipient) the end of DATA answers
    /// `550 5.7.1` and nothing is queued. 0 turns rejection off.
    pub reject_score: f64,
    /// Client DNS lists that add to the score: `"zone[=filter]*score"`,
    /// e.g. `"zen.spamhaus.org=127.0.0.[2..11]*3"`.
    pub dnsbl_sites: Vec<String>,
    /// Domain blocklists for the links in the body: `"zone*score"`, e.g.
    /// `"multi.surbl.org*4"`.
    pub uribl_sites: Vec<String>,
    /// Link domains looked up per message, at most.
    pub max_uri_lookups: usize,
    /// All DNS lookups of one message together; unfinished ones count as
    /// not listed.
    pub lookup_timeout: Span,
    /// The first this-many octets of a message are scanned for tokens and
    /// links (headers always).
    pub max_scan_size: Bytes,
    /// Messages of each kind a token table must have learnt before its
    /// verdict counts (SpamAssassin's `bayes_min_spam_num`/`ham_num`).
    pub min_learns: u32,
    /// Tokens kept per user (and in the global table); past it the least
    /// seen are forgotten. About 12 octets each, on disk and in memory.
    pub max_tokens: usize,
    /// Users' token tables kept in memory at once (least recently used
    /// go first; the rest stay in the store).
    pub cache_users: usize,
    /// Train on IMAP COPY/MOVE into Junk (spam) and out of it (ham).
    pub learn_from_moves: bool,
}

impl Default for Spam {
    fn default() -> Self {
        Spam {
            enabled: true,
            required_score: 5.0,
            reject_score: 15.0,
            dnsbl_sites: Vec::new(),
            uribl_sites: Vec::new(),
            max_uri_lookups: 20,
            lookup_timeout: Span::secs(5),
            max_scan_size: Bytes(512 * 1024),
            min_learns: 10,
            max_tokens: 100_000,
            cache_users: 64,
            learn_from_moves: true,
        }
    }
}
