//! Inbound checks: SPF for HELO and MAIL FROM (RFC 7208), every DKIM
//! signature up to a limit (RFC 6376, RFC 8463), the ARC chain (RFC 8617)
//! and DMARC (RFC 7489, with the DNS tree walk of its successor RFC 9989
//! for the organisational domain), summed up in one
//! Authentication-Results field (RFC 8601) and one [`Disposition`].
//!
//! The DNS work of one message is bounded by `dns_budget`; what is not
//! done by then counts as temperror, never as fail.

use super::MailAuth;
use super::spf_void::VoidCounter;
use crate::config::{DmarcPolicy, SpfFail, Temperror};
use mail_auth::common::cache::NoCache;
use mail_auth::dmarc::Policy;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput,
    DmarcResult, SpfOutput, SpfResult, dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};
use mail_auth::{Parameters, RecordSet};
use std::net::IpAddr;

/// What the SMTP session knows about a message from another server.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub ip: IpAddr,
    /// The EHLO/HELO argument.
    pub helo: &'a str,
    /// MAIL FROM; empty for the null sender.
    pub sender: &'a str,
    /// The message as received (CRLF, not dot-stuffed).
    pub message: &'a [u8],
}

/// What to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Deliver,
    /// Deliver into each recipient's Junk mailbox.
    Junk,
    /// Refuse at the end of DATA (5xx).
    Reject {
        code: u16,
        status: &'static str,
        text: String,
    },
    /// Ask the sender to retry (4xx): a DNS failure decided nothing.
    Defer {
        code: u16,
        status: &'static str,
        text: String,
    },
}

/// The outcome of the checks.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `Authentication-Results: ...\r\n`, to prepend.
    pub header: String,
    pub disposition: Disposition,
    /// `spf=pass dkim=pass dmarc=pass` for the log line.
    pub summary: String,
    /// The same results as data, for greylisting and the spam filter.
    pub results: Results,
}

/// What each check said, as the later policies read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Results {
    /// The MAIL FROM result (`pass`, `fail`, `softfail`, ...; `none`).
    pub spf: &'static str,
    /// The domain SPF checked (MAIL FROM's, or HELO's for the null sender).
    pub spf_domain: String,
    /// `d=` of every signature that passed.
    pub dkim_pass: Vec<String>,
    /// Some signature failed (not merely absent).
    pub dkim_fail: bool,
    pub arc: &'static str,
    /// `none` also when the From: domain publishes no policy.
    pub dmarc: &'static str,
}

impl Results {
    /// Whether `domain` (or a parent of it) is vouched for by an SPF pass
    /// or a passing DKIM signature.
    pub fn vouches_for(&self, domain: &str) -> bool {
        let under = |d: &str| {
            domain.eq_ignore_ascii_case(d)
                || domain.len() > d.len()
                    && domain.as_bytes().get(domain.len() - d.len() - 1) == Some(&b'.')
                    && domain[domain.len() - d.len()..].eq_ignore_ascii_case(d)
        };
        (self.spf == "pass" && under(&self.spf_domain)) || self.dkim_pass.iter().any(|d| under(d))
    }
}

/// Every result of one message, before the policy reads them.
pub(super) struct Checks<'x> {
    spf_helo: Option<SpfOutput>,
    spf_mail_from: SpfOutput,
    dkim: Vec<DkimOutput<'x>>,
    /// Signatures past `max_dkim_signatures`, not checked.
    skipped: usize,
    pub(super) arc: ArcOutput<'x>,
    dmarc: DmarcOutput,
}

impl MailAuth {
    /// Runs every check on `inbound` and decides its fate.
    pub async fn verify(&self, inbound: Inbound<'_>) -> Verdict {
        let whole = self.config();
        let config = &whole.mailauth;
        let authserv_id = self.authserv_id();
        let Some(mut message) = AuthenticatedMessage::parse(inbound.message) else {
            // Not even a header to look at: nothing can pass or fail.
            return Verdict {
                header: format!("Authentication-Results: {authserv_id}; none\r\n"),
                disposition: Disposition::Deliver,
                summary: "none (unparsable header)".into(),
                results: Results::default(),
            };
        };
        let limit = config.max_dkim_signatures;
        let skipped = message.dkim_headers.len().saturating_sub(limit);
        message.dkim_headers.truncate(limit);
        let budget = config.dns_budget.0;
        let checks = tokio::time::timeout(
            budget,
            self.run_checks(&message, inbound, skipped, &whole.myhostname),
        )
        .await;
        let Ok(checks) = checks else {
            tracing::info!("mail authentication ran out of its DNS budget ({budget:?})");
            let header = format!(
                "Authentication-Results: {authserv_id};\r\n\tdmarc=temperror (DNS lookups took longer than {}s)\r\n",
                budget.as_secs()
            );
            let disposition = match config.dmarc_temperror {
                Temperror::Defer => defer(),
                Temperror::Accept => Disposition::Deliver,
            };
            return Verdict {
                header,
                disposition,
                summary: "dmarc=temperror (DNS budget)".into(),
                results: Results {
                    dmarc: "temperror",
                    ..Results::default()
                },
            };
        };
        let header = checks.header(&authserv_id, inbound, &message);
        let disposition =
            checks.disposition(config.dmarc_policy, config.dmarc_temperror, config.spf_fail);
        Verdict {
            header,
            disposition,
            summary: checks.summary(),
            results: checks.results_data(inbound),
        }
    }

    pub(super) async fn run_checks<'x>(
        &self,
        message: &'x AuthenticatedMessage<'x>,
        inbound: Inbound<'x>,
        skipped: usize,
        host: &str,
    ) -> Checks<'x> {
        let auth = &self.authenticator;
        // RFC 7208 §2.3: check HELO when it is a domain name; with the null
        // sender its result is also the MAIL FROM result (§2.4).
        let helo_is_name = !inbound.helo.starts_with('[') && inbound.helo.contains('.');
        let spf_helo = if helo_is_name {
            let voids = VoidCounter::default();
            let params = SpfParameters::verify_ehlo(inbound.ip, inbound.helo, host);
            Some(voids.apply(auth.verify_spf(counted(params, &voids)).await))
        } else {
            None
        };
        let spf_mail_from = match (&spf_helo, inbound.sender.is_empty()) {
            (Some(helo), true) => helo.clone(),
            _ => {
                let voids = VoidCounter::default();
                let params =
                    SpfParameters::verify_mail_from(inbound.ip, inbound.helo, host, inbound.sender);
                voids.apply(auth.verify_spf(counted(params, &voids)).await)
            }
        };
        let (dkim, arc) = tokio::join!(auth.verify_dkim(message), auth.verify_arc(message));
        let mail_from_domain = match inbound.sender.rsplit_once('@') {
            Some((_, domain)) => domain,
            None => inbound.helo,
        };
        let dmarc = auth
            .verify_dmarc(DmarcParameters::new(
                message,
                &dkim,
                mail_from_domain,
                &spf_mail_from,
            ))
            .await;
        Checks {
            spf_helo,
            spf_mail_from,
            dkim,
            skipped,
            arc,
            dmarc,
        }
    }
}

fn defer() -> Disposition {
    Disposition::Defer {
        code: 451,
        status: "4.7.1",
        text: "Temporary DNS failure while checking the sender's DMARC policy, try again later"
            .into(),
    }
}

impl Checks<'_> {
    fn header(
        &self,
        authserv_id: &str,
        inbound: Inbound<'_>,
        message: &AuthenticatedMessage<'_>,
    ) -> String {
        let results = self.results(authserv_id, inbound, message);
        let mut header = format!("Authentication-Results: {results}");
        if self.skipped > 0 {
            header.push_str(&format!(
                ";\r\n\tdkim=policy (only the first {} signatures were checked, {} skipped)",
                self.dkim.len(),
                self.skipped
            ));
        }
        if self.dkim.is_empty() && self.skipped == 0 {
            header.push_str(";\r\n\tdkim=none");
        }
        header.push_str("\r\n");
        header
    }

    /// The results in mail-auth's form (for ARC-Authentication-Results).
    pub(super) fn results<'a>(
        &self,
        authserv_id: &'a str,
        inbound: Inbound<'_>,
        message: &AuthenticatedMessage<'_>,
    ) -> AuthenticationResults<'a> {
        let from = message.from.first().map(String::as_str).unwrap_or("");
        let mut results =
            AuthenticationResults::new(authserv_id).with_dkim_results(&self.dkim, from);
        if let Some(helo) = &self.spf_helo {
            results = results.with_spf_ehlo_result(helo, inbound.ip, inbound.helo);
        }
        results = results
            .with_spf_mailfrom_result(
                &self.spf_mail_from,
                inbound.ip,
                inbound.sender,
                inbound.helo,
            )
            .with_arc_result(&self.arc, inbound.ip);
        if !self.dmarc.domain().is_empty() {
            results = results.with_dmarc_result(&self.dmarc);
        }
        results
    }

    fn disposition(
        &self,
        policy: DmarcPolicy,
        temperror: Temperror,
        spf_fail: SpfFail,
    ) -> Disposition {
        let dmarc = self.dmarc.result();
        let published = self.dmarc.policy();
        let domain = self.dmarc.domain();
        // A failure that a DNS temperror on an aligned identifier may have
        // caused is not a verdict: refusing it for good would lose mail
        // that passes once DNS answers again.
        let undecided = matches!(dmarc, DmarcResult::Fail(_)) && self.aligned_temperror(domain);
        match dmarc {
            DmarcResult::Pass => return Disposition::Deliver,
            DmarcResult::TempError(_) | DmarcResult::Fail(_)
                if (undecided || matches!(dmarc, DmarcResult::TempError(_)))
                    && matches!(published, Policy::Reject | Policy::Quarantine)
                    && policy != DmarcPolicy::Monitor =>
            {
                return match temperror {
                    Temperror::Defer => defer(),
                    Temperror::Accept => Disposition::Deliver,
                };
            }
            DmarcResult::Fail(_) => match (published, policy) {
                (_, DmarcPolicy::Monitor) => {}
                (Policy::Reject, DmarcPolicy::Enforce) => {
                    return Disposition::Reject {
                        code: 550,
                        status: "5.7.1",
                        text: format!(
                            "Email from {domain} rejected per its DMARC policy (no aligned SPF or DKIM pass)"
                        ),
                    };
                }
                (Policy::Reject | Policy::Quarantine, _) => return Disposition::Junk,
                _ => {}
            },
            _ => {}
        }
        let has_dmarc_record = self.dmarc.dmarc_record().is_some();
        if !has_dmarc_record
            && self.spf_mail_from.result() == SpfResult::Fail
            && spf_fail == SpfFail::Reject
        {
            return Disposition::Reject {
                code: 550,
                status: "5.7.23",
                text: format!(
                    "SPF of {} does not allow this server to send its mail",
                    self.spf_mail_from.domain()
                ),
            };
        }
        Disposition::Deliver
    }

    /// Whether SPF (MAIL FROM) or a DKIM signature whose domain is in
    /// relaxed alignment with `from` ended in temperror.
    fn aligned_temperror(&self, from: &str) -> bool {
        let spf = self.spf_mail_from.result() == SpfResult::TempError
            && relaxed_aligned(self.spf_mail_from.domain(), from);
        let dkim = self.dkim.iter().any(|d| {
            matches!(d.result(), DkimResult::TempError(_))
                && d.signature().is_some_and(|s| relaxed_aligned(&s.d, from))
        });
        spf || dkim
    }

    fn results_data(&self, inbound: Inbound<'_>) -> Results {
        let spf_domain = match inbound.sender.rsplit_once('@') {
            Some((_, domain)) => domain,
            None => inbound.helo,
        };
        Results {
            spf: spf_word(self.spf_mail_from.result()),
            spf_domain: spf_domain.to_ascii_lowercase(),
            dkim_pass: self
                .dkim
                .iter()
                .filter(|d| matches!(d.result(), DkimResult::Pass))
                .filter_map(|d| d.signature().map(|s| s.d.to_ascii_lowercase()))
                .collect(),
            dkim_fail: self
                .dkim
                .iter()
                .any(|d| matches!(d.result(), DkimResult::Fail(_))),
            arc: dkim_word(self.arc.result()),
            dmarc: self.dmarc_word(),
        }
    }

    fn dmarc_word(&self) -> &'static str {
        match self.dmarc.result() {
            _ if self.dmarc.domain().is_empty() => "none",
            DmarcResult::Pass => "pass",
            DmarcResult::Fail(_) => "fail",
            DmarcResult::TempError(_) => "temperror",
            DmarcResult::PermError(_) => "permerror",
            DmarcResult::None => "none",
        }
    }

    fn summary(&self) -> String {
        let dkim = if self.dkim.is_empty() {
            "none".to_string()
        } else {
            self.dkim
                .iter()
                .map(|d| dkim_word(d.result()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let dmarc = self.dmarc_word();
        format!(
            "spf={} dkim={dkim} arc={} dmarc={dmarc}",
            spf_word(self.spf_mail_from.result()),
            dkim_word(self.arc.result()),
        )
    }
}

fn spf_word(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// SPF parameters with the four DNS caches of mail-auth watched by one
/// `VoidCounter` (PTR lookups are not counted).
type CountedSpf<'x> = Parameters<
    'x,
    SpfParameters<'x>,
    VoidCounter,
    VoidCounter,
    VoidCounter,
    VoidCounter,
    NoCache<IpAddr, RecordSet<Box<str>>>,
>;

/// SPF parameters whose lookups `voids` watches (see `spf_void`).
fn counted<'x>(params: SpfParameters<'x>, voids: &'x VoidCounter) -> CountedSpf<'x> {
    Parameters::new(params)
        .with_txt_cache(voids)
        .with_mx_cache(voids)
        .with_ipv4_cache(voids)
        .with_ipv6_cache(voids)
}

/// Relaxed alignment, generously: the two names share a suffix of at
/// least two labels (`a.example.org` and `example.org`, or siblings).
/// Used only to decide "undecided rather than failed", where erring
/// towards a retry loses nothing; under a public suffix of two labels
/// (`co.uk`) it says aligned where DMARC would not.
fn relaxed_aligned(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('.').to_ascii_lowercase();
    let b = b.trim_end_matches('.').to_ascii_lowercase();
    let common = a
        .rsplit('.')
        .zip(b.rsplit('.'))
        .take_while(|(x, y)| x == y)
        .count();
    common >= 2 || (!a.is_empty() && a == b)
}

fn dkim_word(result: &DkimResult) -> &'static str {
    match result {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::relaxed_aligned;

    #[test]
    fn relaxed_alignment_is_generous_towards_a_retry() {
        assert!(relaxed_aligned("example.org", "EXAMPLE.org."));
        assert!(relaxed_aligned("mail.example.org", "example.org"));
        assert!(relaxed_aligned("a.example.org", "b.example.org"));
        assert!(!relaxed_aligned("example.org", "example.net"));
        assert!(!relaxed_aligned("org", "example.org"));
        assert!(!relaxed_aligned("", ""));
    }
}
