//! One evaluation of the lists of a stage (Postfix's smtpd_check.c, in
//! outline): each list runs in order until a restriction decides; a
//! permit ends that list, a reject or defer ends the evaluation.
//! `warn_if_reject` turns the next reject into a log line;
//! `defer_if_permit` / `defer_if_reject` change a final permit / a later
//! reject into a 4xx.

use super::access::{self, Codes, MessageAction, Step};
use super::dnsbl::Site;
use super::peer::UNKNOWN;
use super::restriction::Restriction;
use super::service;
use super::{Facts, Outcome, Rules, Stage};
use crate::dns::{DnsError, MxAnswer, Resolver};
use crate::smtp::proto::reply::Reply;
use std::net::IpAddr;

/// What one restriction said.
enum Said {
    Dunno,
    Permit,
    Reject(Reply),
    Defer(Reply),
}

pub(super) struct Evaluation<'a> {
    rules: &'a Rules,
    dns: &'a dyn Resolver,
    facts: &'a Facts<'a>,
    warn_next: bool,
    defer_if_permit: Option<Reply>,
    defer_if_reject: Option<Reply>,
    outcome: Outcome,
}

impl<'a> Evaluation<'a> {
    pub(super) fn new(rules: &'a Rules, dns: &'a dyn Resolver, facts: &'a Facts<'a>) -> Self {
        Evaluation {
            rules,
            dns,
            facts,
            warn_next: false,
            defer_if_permit: None,
            defer_if_reject: None,
            outcome: Outcome::default(),
        }
    }

    pub(super) async fn run(mut self) -> Outcome {
        for (_, list) in self.rules.lists(self.facts.stage) {
            match self.list(list).await {
                Said::Reject(reply) | Said::Defer(reply) => {
                    self.outcome.refusal = Some(reply);
                    return self.outcome;
                }
                Said::Permit | Said::Dunno => {}
            }
        }
        // Everything permitted (explicitly or by reaching the end).
        if let Some(reply) = self.defer_if_permit.take() {
            self.outcome.refusal = Some(reply);
        }
        self.outcome
    }

    async fn list(&mut self, list: &[Restriction]) -> Said {
        for r in list {
            let warn = std::mem::take(&mut self.warn_next);
            let said = self.one(r).await;
            match said {
                Said::Dunno => {}
                Said::Permit => return Said::Permit,
                Said::Reject(reply) if warn => {
                    tracing::info!(
                        "reject_warning: {} from {}: {}",
                        self.facts.stage.name(),
                        self.facts.names.describe(self.facts.client_ip),
                        reply.first_line()
                    );
                }
                Said::Reject(reply) => {
                    return match self.defer_if_reject.take() {
                        Some(defer) => Said::Defer(defer),
                        None => Said::Reject(reply),
                    };
                }
                Said::Defer(reply) => return Said::Defer(reply),
            }
        }
        Said::Dunno
    }

    fn settings(&self) -> &crate::config::Restrictions {
        &self.rules.settings
    }

    fn codes(&self) -> Codes {
        Codes {
            reject: self.settings().access_map_reject_code,
            defer: self.settings().access_map_defer_code,
        }
    }

    async fn one(&mut self, r: &Restriction) -> Said {
        let f = self.facts;
        match r {
            Restriction::CheckClientAccess(table) => {
                let mut keys = Vec::new();
                if f.names.name != UNKNOWN {
                    keys.extend(access::host_keys(&f.names.name));
                }
                let what = format!("<{}>", f.names.describe(f.client_ip));
                let found = if table.takes_partial_keys() {
                    keys.extend(access::address_keys(f.client_ip));
                    access::find(table, &keys)
                } else {
                    // regexp/cidr: the name, then the address, whole.
                    keys.first()
                        .and_then(|k| table.get(k))
                        .or_else(|| table.get(&f.client_ip.to_string()))
                };
                self.result(found, &what, "Client host rejected").await
            }
            Restriction::CheckReverseClientHostnameAccess(table) => {
                if f.names.reverse == UNKNOWN {
                    return Said::Dunno;
                }
                let keys = access::host_keys(&f.names.reverse);
                let what = format!("<{}>", f.names.reverse);
                self.result(access::find(table, &keys), &what, "Client host rejected")
                    .await
            }
            Restriction::CheckHeloAccess(table) => {
                if f.helo.is_empty() {
                    return Said::Dunno;
                }
                let keys = access::host_keys(f.helo);
                let what = format!("<{}>", f.helo);
                self.result(access::find(table, &keys), &what, "Helo command rejected")
                    .await
            }
            Restriction::CheckSenderAccess(table) => {
                let Some(sender) = f.sender else {
                    return Said::Dunno;
                };
                let keys = access::address_lookup_keys(sender, &self.rules.delimiter);
                let what = format!("<{sender}>");
                self.result(access::find(table, &keys), &what, "Sender address rejected")
                    .await
            }
            Restriction::CheckRecipientAccess(table) => {
                let Some(rcpt) = f.recipient else {
                    return Said::Dunno;
                };
                let keys = access::address_lookup_keys(rcpt, &self.rules.delimiter);
                let what = format!("<{rcpt}>");
                self.result(
                    access::find(table, &keys),
                    &what,
                    "Recipient address rejected",
                )
                .await
            }
            Restriction::CheckPolicyService(endpoint) => {
                let timeout = self.settings().smtpd_policy_service_timeout.0;
                match service::ask(endpoint, &self.attributes(), timeout).await {
                    Ok(action) => {
                        let (what, class) = self.stage_subject();
                        self.result(Some(action), &what, class).await
                    }
                    Err(e) => {
                        tracing::warn!("problem talking to policy server {e}");
                        let default = self.settings().smtpd_policy_service_default_action.clone();
                        let (what, class) = self.stage_subject();
                        self.result(Some(default), &what, class).await
                    }
                }
            }
            other => self.basic(other).await,
        }
    }

    /// An access-table or policy-server result, applied.
    async fn result(&mut self, found: Option<String>, what: &str, class: &str) -> Said {
        let Some(found) = found else {
            return Said::Dunno;
        };
        let step = match access::interpret(&found, what, class, self.codes()) {
            Ok(step) => step,
            Err(e) => {
                // Postfix: a bad table entry is a server configuration error.
                tracing::warn!("access table result `{found}` for {what}: {e}");
                return Said::Defer(Reply::new(451, "4.3.5", "Server configuration error"));
            }
        };
        match step {
            Step::Dunno => Said::Dunno,
            Step::Permit => Said::Permit,
            Step::Reject(reply) => Said::Reject(reply),
            Step::Defer(reply) => Said::Defer(reply),
            Step::DeferIfReject(reply) => {
                self.defer_if_reject = Some(reply);
                Said::Dunno
            }
            Step::DeferIfPermit(reply) => {
                self.defer_if_permit = Some(reply);
                Said::Dunno
            }
            Step::Message(action) => {
                self.log_action(&action, what);
                self.outcome.actions.push(action);
                Said::Dunno
            }
            Step::Discard(reason) => {
                tracing::info!(
                    "discard: {} from {}: {reason}",
                    self.facts.stage.name(),
                    self.facts.names.describe(self.facts.client_ip)
                );
                self.outcome.discard = Some(reason);
                Said::Permit
            }
            Step::Restrictions(list) => {
                for r in &list {
                    match self.basic(r).await {
                        Said::Dunno => {}
                        decided => return decided,
                    }
                }
                Said::Dunno
            }
        }
    }

    fn log_action(&self, action: &MessageAction, what: &str) {
        let (word, text) = match action {
            MessageAction::Hold(t) => ("hold", t.as_str()),
            MessageAction::Prepend(t) => ("prepend", t.as_str()),
            MessageAction::Redirect(t) => ("redirect", t.as_str()),
            MessageAction::Bcc(t) => ("bcc", t.as_str()),
            MessageAction::Warn(t) => ("warning", t.as_str()),
            MessageAction::Info(t) => ("info", t.as_str()),
        };
        tracing::info!(
            "{word}: {} from {}: {what}: {text}",
            self.facts.stage.name(),
            self.facts.names.describe(self.facts.client_ip)
        );
    }

    /// What a policy-server reply is about, by stage.
    fn stage_subject(&self) -> (String, &'static str) {
        let f = self.facts;
        match (f.stage, f.recipient, f.sender) {
            (Stage::Rcpt, Some(r), _) => (format!("<{r}>"), "Recipient address rejected"),
            (Stage::Mail, _, Some(s)) => (format!("<{s}>"), "Sender address rejected"),
            (Stage::Helo, _, _) => (format!("<{}>", f.helo), "Helo command rejected"),
            (Stage::Data, _, _) => ("<DATA>".into(), "Data command rejected"),
            (Stage::EndOfData, _, _) => ("<END-OF-MESSAGE>".into(), "End-of-data rejected"),
            _ => (
                format!("<{}>", f.names.describe(f.client_ip)),
                "Client host rejected",
            ),
        }
    }

    /// The policy delegation request (SMTPD_POLICY_README, "protocol
    /// description").
    fn attributes(&self) -> Vec<(&'static str, String)> {
        let f = self.facts;
        vec![
            ("request", "smtpd_access_policy".into()),
            ("protocol_state", f.stage.name().into()),
            ("protocol_name", f.protocol.into()),
            ("helo_name", f.helo.into()),
            ("queue_id", String::new()),
            ("sender", f.sender.unwrap_or_default().into()),
            ("recipient", f.recipient.unwrap_or_default().into()),
            ("recipient_count", f.recipient_count.to_string()),
            ("client_address", f.client_ip.to_string()),
            ("client_name", f.names.name.clone()),
            ("reverse_client_name", f.names.reverse.clone()),
            ("instance", String::new()),
            ("sasl_method", String::new()),
            ("sasl_username", f.sasl_username.into()),
            ("sasl_sender", String::new()),
            ("size", f.size.to_string()),
            (
                "encryption_protocol",
                if f.tls { "TLS".into() } else { String::new() },
            ),
        ]
    }

    /// The restrictions that need no table.
    async fn basic(&mut self, r: &Restriction) -> Said {
        let f = self.facts;
        let s = self.settings();
        match r {
            Restriction::Permit => Said::Permit,
            Restriction::Reject => Said::Reject(access::reply(
                s.reject_code,
                &format!("<{}>: Access denied", f.names.describe(f.client_ip)),
            )),
            Restriction::Defer => Said::Defer(access::reply(
                s.defer_code,
                &format!("<{}>: Try again later", f.names.describe(f.client_ip)),
            )),
            Restriction::WarnIfReject => {
                self.warn_next = true;
                Said::Dunno
            }
            Restriction::DeferIfPermit => {
                self.defer_if_permit = Some(access::reply(
                    s.defer_code,
                    "Service is unavailable (try later)",
                ));
                Said::Dunno
            }
            Restriction::DeferIfReject => {
                self.defer_if_reject = Some(access::reply(
                    s.defer_code,
                    "Service is unavailable (try later)",
                ));
                Said::Dunno
            }
            Restriction::PermitMynetworks if f.trusted => Said::Permit,
            Restriction::PermitSaslAuthenticated if !f.sasl_username.is_empty() => Said::Permit,
            Restriction::PermitAuthDestination if f.recipient.is_some() && f.recipient_is_local => {
                Said::Permit
            }
            Restriction::RejectUnauthDestination | Restriction::DeferUnauthDestination => {
                match f.recipient {
                    Some(rcpt) if !f.recipient_is_local => {
                        let text = format!("<{rcpt}>: Relay access denied");
                        if matches!(r, Restriction::RejectUnauthDestination) {
                            Said::Reject(Reply::new(s.relay_domains_reject_code, "5.7.1", text))
                        } else {
                            Said::Defer(Reply::new(454, "4.7.1", text))
                        }
                    }
                    _ => Said::Dunno,
                }
            }
            Restriction::RejectInvalidHeloHostname if !f.helo.is_empty() => {
                if valid_helo(f.helo) {
                    Said::Dunno
                } else {
                    Said::Reject(Reply::new(
                        s.invalid_hostname_reject_code,
                        "5.5.2",
                        format!("<{}>: Helo command rejected: Invalid name", f.helo),
                    ))
                }
            }
            Restriction::RejectNonFqdnHeloHostname if !f.helo.is_empty() => {
                if is_literal(f.helo) || is_fqdn(f.helo) {
                    Said::Dunno
                } else {
                    Said::Reject(Reply::new(
                        s.non_fqdn_reject_code,
                        "5.5.2",
                        format!(
                            "<{}>: Helo command rejected: need fully-qualified hostname",
                            f.helo
                        ),
                    ))
                }
            }
            Restriction::RejectUnknownHeloHostname if !f.helo.is_empty() => {
                if is_literal(f.helo) || !valid_helo(f.helo) {
                    return Said::Dunno;
                }
                let text = format!("<{}>: Helo command rejected: Host not found", f.helo);
                match has_address_or_mx(self.dns, f.helo).await {
                    Ok(true) => Said::Dunno,
                    Ok(false) => Said::Reject(Reply::new(
                        s.unknown_hostname_reject_code,
                        &class_status(s.unknown_hostname_reject_code, "7.1"),
                        text,
                    )),
                    Err(_) => Said::Defer(Reply::new(450, "4.7.1", text)),
                }
            }
            Restriction::RejectNonFqdnSender => self.non_fqdn(f.sender, "Sender"),
            Restriction::RejectNonFqdnRecipient => self.non_fqdn(f.recipient, "Recipient"),
            Restriction::RejectUnknownSenderDomain => {
                self.unknown_domain(f.sender, "Sender", "1.8").await
            }
            Restriction::RejectUnknownRecipientDomain => {
                if f.recipient_is_local {
                    return Said::Dunno;
                }
                self.unknown_domain(f.recipient, "Recipient", "1.2").await
            }
            Restriction::RejectUnknownReverseClientHostname if f.names.reverse == UNKNOWN => {
                self.unknown_client("cannot find your reverse hostname")
            }
            Restriction::RejectUnknownClientHostname if f.names.name == UNKNOWN => {
                self.unknown_client("cannot find your hostname")
            }
            Restriction::RejectUnauthPipelining if f.unauth_pipelining => Said::Reject(Reply::new(
                503,
                "5.5.0",
                "<DATA>: Data command rejected: Improper use of SMTP command pipelining",
            )),
            Restriction::PermitDnswlClient(site) => {
                match site.check_ip(self.dns, f.client_ip).await {
                    Ok(Some(_)) => Said::Permit,
                    _ => Said::Dunno,
                }
            }
            Restriction::RejectRblClient(site) => {
                let what = format!("Client host [{}]", f.client_ip);
                let result = site.check_ip(self.dns, f.client_ip).await;
                self.rbl(site, result, &what)
            }
            Restriction::RejectRhsblClient(site) if f.names.name != UNKNOWN => {
                let result = site.check_domain(self.dns, &f.names.name).await;
                self.rbl(site, result, &format!("Client host [{}]", f.names.name))
            }
            Restriction::RejectRhsblReverseClient(site) if f.names.reverse != UNKNOWN => {
                let result = site.check_domain(self.dns, &f.names.reverse).await;
                self.rbl(
                    site,
                    result,
                    &format!("Unverified Client host [{}]", f.names.reverse),
                )
            }
            Restriction::RejectRhsblHelo(site) if !f.helo.is_empty() => {
                let result = site.check_domain(self.dns, f.helo).await;
                self.rbl(site, result, &format!("Helo command [{}]", f.helo))
            }
            Restriction::RejectRhsblSender(site) => {
                self.rhsbl_address(site, f.sender, "Sender").await
            }
            Restriction::RejectRhsblRecipient(site) => {
                self.rhsbl_address(site, f.recipient, "Recipient").await
            }
            // Table restrictions inside a table result were refused when
            // the table was read; the rest did not apply.
            _ => Said::Dunno,
        }
    }

    fn non_fqdn(&self, address: Option<&str>, who: &str) -> Said {
        let Some(address) = address.filter(|a| !a.is_empty()) else {
            return Said::Dunno;
        };
        match domain_of(address) {
            Some(d) if is_literal(d) || is_fqdn(d) => Said::Dunno,
            _ => Said::Reject(Reply::new(
                self.settings().non_fqdn_reject_code,
                "5.5.2",
                format!("<{address}>: {who} address rejected: need fully-qualified address"),
            )),
        }
    }

    async fn unknown_domain(&mut self, address: Option<&str>, who: &str, detail: &str) -> Said {
        let Some(address) = address.filter(|a| !a.is_empty()) else {
            return Said::Dunno;
        };
        let Some(domain) = domain_of(address) else {
            return Said::Dunno;
        };
        if is_literal(domain) {
            return Said::Dunno;
        }
        let code = self.settings().unknown_address_reject_code;
        let text = format!("<{address}>: {who} address rejected: Domain not found");
        match self.dns.mx(domain).await {
            Ok(MxAnswer::Hosts(_)) => Said::Dunno,
            Ok(MxAnswer::NullMx) => Said::Reject(Reply::new(
                550,
                "5.7.27",
                format!(
                    "<{address}>: {who} address rejected: Domain {domain} does not accept mail (nullMX)"
                ),
            )),
            Ok(MxAnswer::NoMx) => match self.dns.addresses(domain).await {
                Ok(a) if !a.is_empty() => Said::Dunno,
                Ok(_) | Err(DnsError::NoSuchDomain) => {
                    Said::Reject(Reply::new(code, &class_status(code, detail), text))
                }
                Err(DnsError::Temporary(_)) => self.tempfail(text, detail),
            },
            Err(DnsError::NoSuchDomain) => {
                Said::Reject(Reply::new(code, &class_status(code, detail), text))
            }
            Err(DnsError::Temporary(_)) => self.tempfail(text, detail),
        }
    }

    /// Postfix's `*_tempfail_action = defer_if_permit`: a DNS failure may
    /// only delay mail that would otherwise be accepted.
    fn tempfail(&mut self, text: String, detail: &str) -> Said {
        self.defer_if_permit = Some(Reply::new(450, &format!("4.{detail}"), text));
        Said::Dunno
    }

    fn unknown_client(&mut self, why: &str) -> Said {
        let f = self.facts;
        let code = self.settings().unknown_client_reject_code;
        let text = format!("Client host rejected: {why}, [{}]", f.client_ip);
        if f.names.tempfail {
            return self.tempfail(text, "7.25");
        }
        Said::Reject(Reply::new(code, &class_status(code, "7.25"), text))
    }

    /// reject_rhsbl_sender / _recipient: the address's domain in a list.
    async fn rhsbl_address(&self, site: &Site, address: Option<&str>, who: &str) -> Said {
        let Some(domain) = address.and_then(domain_of) else {
            return Said::Dunno;
        };
        let result = site.check_domain(self.dns, domain).await;
        let what = format!("{who} address [{}]", address.unwrap_or_default());
        self.rbl(site, result, &what)
    }

    fn rbl(
        &self,
        site: &Site,
        result: Result<Option<super::dnsbl::Listed>, DnsError>,
        what: &str,
    ) -> Said {
        match result {
            Ok(Some(listed)) => {
                let reason = listed.reason.map(|r| format!("; {r}")).unwrap_or_default();
                let code = self.settings().maps_rbl_reject_code;
                Said::Reject(Reply::new(
                    code,
                    &class_status(code, "7.1"),
                    format!(
                        "Service unavailable; {what} blocked using {}{reason}",
                        site.zone
                    ),
                ))
            }
            Ok(None) => Said::Dunno,
            Err(e) => {
                // Postfix treats a failed DNSBL lookup as "not listed".
                tracing::warn!("{}: DNS list lookup failed: {e}", site.zone);
                Said::Dunno
            }
        }
    }
}

/// `4.x.y` or `5.x.y` to go with `code`.
/// The enhanced status for a reply code: the class follows the code
/// (a 450 gets 4.x.y, a 550 5.x.y), the detail follows the check.
fn class_status(code: u16, detail: &str) -> String {
    let class = if code >= 500 { 5 } else { 4 };
    format!("{class}.{detail}")
}

fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

fn is_literal(name: &str) -> bool {
    name.starts_with('[') && name.ends_with(']')
}

fn is_fqdn(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.contains('.') && valid_helo(name)
}

/// A host name (RFC 1123 labels) or an address literal.
fn valid_helo(name: &str) -> bool {
    if is_literal(name) {
        let inner = &name[1..name.len() - 1];
        let inner = inner
            .get(..5)
            .filter(|t| t.eq_ignore_ascii_case("IPv6:"))
            .map(|_| &inner[5..])
            .unwrap_or(inner);
        return inner.parse::<IpAddr>().is_ok();
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // An all-numeric last label is an address in disguise.
        && !name.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

async fn has_address_or_mx(dns: &dyn Resolver, name: &str) -> Result<bool, DnsError> {
    match dns.addresses(name).await {
        Ok(a) if !a.is_empty() => return Ok(true),
        Ok(_) | Err(DnsError::NoSuchDomain) => {}
        Err(e) => return Err(e),
    }
    match dns.mx(name).await {
        Ok(MxAnswer::Hosts(_)) => Ok(true),
        Ok(_) | Err(DnsError::NoSuchDomain) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_names() {
        for good in [
            "mail.example.org",
            "mx1.example.org.",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
            "host",
        ] {
            assert!(valid_helo(good), "{good}");
        }
        for bad in [
            "",
            "-x.example",
            "a..b",
            "x y",
            "[999.1.1.1]",
            "192.0.2.1",
            "ex@mple.org",
        ] {
            assert!(!valid_helo(bad), "{bad}");
        }
        assert!(is_fqdn("mail.example.org"));
        assert!(!is_fqdn("mail"));
    }
}
