//! `[mailauth]`: SPF/DKIM/DMARC/ARC checks on the way in, DKIM signing,
//! SRS and ARC sealing on the way out (see `mailauth`).

use super::units::Span;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailAuth {
    /// Check SPF, DKIM, ARC and DMARC for mail from other servers (port 25,
    /// not mynetworks, not authenticated) and add Authentication-Results.
    pub verify: bool,
    /// The authserv-id of our Authentication-Results; empty = myhostname.
    pub authserv_id: String,
    /// DKIM signatures checked per message; more are reported as not checked.
    pub max_dkim_signatures: usize,
    /// All DNS lookups for one message together; past it the checks left
    /// count as temperror.
    pub dns_budget: Span,
    /// What a DMARC failure does: `enforce` (p=reject → 550, p=quarantine
    /// → the Junk mailbox), `junk` (both → Junk), `monitor` (header only).
    pub dmarc_policy: DmarcPolicy,
    /// When a DNS temperror is all that stands between a message and the
    /// sender's DMARC reject/quarantine policy: `defer` (451, the sender
    /// retries) or `accept` (delivered, marked temperror).
    pub dmarc_temperror: Temperror,
    /// SPF `fail` (-all) where DMARC says nothing: `record` or `reject`.
    pub spf_fail: SpfFail,
    /// DKIM-sign mail from authenticated users and local submission for
    /// every local domain that has a key under `<data_dir>/dkim`.
    pub sign: bool,
    /// At first start make a key pair (RSA 2048 and Ed25519) for every
    /// local domain that is a DNS name, so signing works with zero edits.
    pub generate_keys: bool,
    /// Rewrite the envelope sender of forwarded mail with SRS (RFC-less
    /// Sender Rewriting Scheme, as postsrsd) so SPF passes at the next hop.
    pub srs: bool,
    /// The domain of SRS addresses; empty = myorigin.
    pub srs_domain: String,
    /// How long an SRS address is accepted back (bounces older than this
    /// are refused).
    pub srs_max_age: Span,
    /// ARC-seal mail forwarded to other domains (RFC 8617).
    pub arc_seal: bool,
}

impl Default for MailAuth {
    fn default() -> Self {
        MailAuth {
            verify: true,
            authserv_id: String::new(),
            max_dkim_signatures: 10,
            dns_budget: Span::secs(20),
            dmarc_policy: DmarcPolicy::Enforce,
            dmarc_temperror: Temperror::Defer,
            spf_fail: SpfFail::Record,
            sign: true,
            generate_keys: true,
            srs: true,
            srs_domain: String::new(),
            srs_max_age: Span::secs(21 * 86_400),
            arc_seal: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    Enforce,
    Junk,
    Monitor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Temperror {
    Defer,
    Accept,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfFail {
    Record,
    Reject,
}
