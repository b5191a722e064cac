//! Restriction lists as data (Postfix's smtpd_*_restrictions): parsed
//! once per configuration, with their tables loaded, then evaluated in
//! order by `eval`.

use super::dnsbl::Site;
use super::service::Endpoint;
use crate::tables::Table;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Restriction {
    Permit,
    Reject,
    Defer,
    PermitMynetworks,
    PermitSaslAuthenticated,
    PermitAuthDestination,
    RejectUnauthDestination,
    DeferUnauthDestination,
    RejectInvalidHeloHostname,
    RejectNonFqdnHeloHostname,
    RejectUnknownHeloHostname,
    RejectNonFqdnSender,
    RejectNonFqdnRecipient,
    RejectUnknownSenderDomain,
    RejectUnknownRecipientDomain,
    RejectUnknownReverseClientHostname,
    RejectUnknownClientHostname,
    RejectUnauthPipelining,
    WarnIfReject,
    DeferIfPermit,
    DeferIfReject,
    PermitDnswlClient(Site),
    RejectRblClient(Site),
    RejectRhsblClient(Site),
    RejectRhsblReverseClient(Site),
    RejectRhsblSender(Site),
    RejectRhsblRecipient(Site),
    RejectRhsblHelo(Site),
    CheckClientAccess(Arc<Table>),
    CheckReverseClientHostnameAccess(Arc<Table>),
    CheckHeloAccess(Arc<Table>),
    CheckSenderAccess(Arc<Table>),
    CheckRecipientAccess(Arc<Table>),
    CheckPolicyService(Endpoint),
}

/// Names without an argument.
const SIMPLE: &[(&str, Restriction)] = &[
    ("permit", Restriction::Permit),
    ("reject", Restriction::Reject),
    ("defer", Restriction::Defer),
    ("permit_mynetworks", Restriction::PermitMynetworks),
    (
        "permit_sasl_authenticated",
        Restriction::PermitSaslAuthenticated,
    ),
    (
        "permit_auth_destination",
        Restriction::PermitAuthDestination,
    ),
    (
        "reject_unauth_destination",
        Restriction::RejectUnauthDestination,
    ),
    (
        "defer_unauth_destination",
        Restriction::DeferUnauthDestination,
    ),
    (
        "reject_invalid_helo_hostname",
        Restriction::RejectInvalidHeloHostname,
    ),
    (
        "reject_invalid_hostname",
        Restriction::RejectInvalidHeloHostname,
    ),
    (
        "reject_non_fqdn_helo_hostname",
        Restriction::RejectNonFqdnHeloHostname,
    ),
    (
        "reject_non_fqdn_hostname",
        Restriction::RejectNonFqdnHeloHostname,
    ),
    (
        "reject_unknown_helo_hostname",
        Restriction::RejectUnknownHeloHostname,
    ),
    (
        "reject_unknown_hostname",
        Restriction::RejectUnknownHeloHostname,
    ),
    ("reject_non_fqdn_sender", Restriction::RejectNonFqdnSender),
    (
        "reject_non_fqdn_recipient",
        Restriction::RejectNonFqdnRecipient,
    ),
    (
        "reject_unknown_sender_domain",
        Restriction::RejectUnknownSenderDomain,
    ),
    (
        "reject_unknown_recipient_domain",
        Restriction::RejectUnknownRecipientDomain,
    ),
    (
        "reject_unknown_reverse_client_hostname",
        Restriction::RejectUnknownReverseClientHostname,
    ),
    (
        "reject_unknown_client_hostname",
        Restriction::RejectUnknownClientHostname,
    ),
    (
        "reject_unknown_client",
        Restriction::RejectUnknownClientHostname,
    ),
    (
        "reject_unauth_pipelining",
        Restriction::RejectUnauthPipelining,
    ),
    ("warn_if_reject", Restriction::WarnIfReject),
    ("defer_if_permit", Restriction::DeferIfPermit),
    ("defer_if_reject", Restriction::DeferIfReject),
];

/// Splits main.cf-style values ("a, b c") into words; text inside `{ }`
/// (an inline table) stays one word.
pub fn words(items: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for item in items {
        let mut word = String::new();
        let mut depth = 0usize;
        for c in item.chars() {
            match c {
                '{' => {
                    depth += 1;
                    word.push(c);
                }
                '}' => {
                    depth = depth.saturating_sub(1);
                    word.push(c);
                }
                ' ' | '\t' | ',' if depth == 0 => {
                    if !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                }
                _ => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

/// Parses a list, loading the tables it names.
pub fn parse(items: &[String]) -> Result<Vec<Restriction>, String> {
    let words = words(items);
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    parse_words(&refs, true)
}

/// Restriction names inside an access-table result: no tables or policy
/// servers there (Postfix allows restriction classes; we keep results
/// simple and bounded).
pub fn parse_nested(words: &[&str]) -> Result<Vec<Restriction>, String> {
    parse_words(words, false)
}

fn parse_words(words: &[&str], tables: bool) -> Result<Vec<Restriction>, String> {
    let mut out = Vec::new();
    let mut it = words.iter();
    while let Some(word) = it.next() {
        let name = word.to_ascii_lowercase();
        if let Some((_, r)) = SIMPLE.iter().find(|(n, _)| *n == name) {
            out.push(r.clone());
            continue;
        }
        let mut arg = || {
            it.next()
                .copied()
                .ok_or_else(|| format!("`{name}` needs an argument"))
        };
        let with_site = |ctor: fn(Site) -> Restriction, arg: &str| -> Result<Restriction, String> {
            Ok(ctor(Site::parse(arg)?))
        };
        let r = match name.as_str() {
            "permit_dnswl_client" => with_site(Restriction::PermitDnswlClient, arg()?)?,
            "reject_rbl_client" | "reject_rbl" => with_site(Restriction::RejectRblClient, arg()?)?,
            "reject_rhsbl_client" => with_site(Restriction::RejectRhsblClient, arg()?)?,
            "reject_rhsbl_reverse_client" => {
                with_site(Restriction::RejectRhsblReverseClient, arg()?)?
            }
            "reject_rhsbl_sender" => with_site(Restriction::RejectRhsblSender, arg()?)?,
            "reject_rhsbl_recipient" => with_site(Restriction::RejectRhsblRecipient, arg()?)?,
            "reject_rhsbl_helo" => with_site(Restriction::RejectRhsblHelo, arg()?)?,
            "check_client_access"
            | "check_reverse_client_hostname_access"
            | "check_helo_access"
            | "check_sender_access"
            | "check_recipient_access" => {
                let spec = arg()?;
                if !tables {
                    return Err(format!(
                        "`{name}` cannot be used inside an access table result"
                    ));
                }
                let table = Arc::new(Table::load(spec)?);
                match name.as_str() {
                    "check_client_access" => Restriction::CheckClientAccess(table),
                    "check_reverse_client_hostname_access" => {
                        Restriction::CheckReverseClientHostnameAccess(table)
                    }
                    "check_helo_access" => Restriction::CheckHeloAccess(table),
                    "check_sender_access" => Restriction::CheckSenderAccess(table),
                    _ => Restriction::CheckRecipientAccess(table),
                }
            }
            "check_policy_service" => {
                let spec = arg()?;
                if !tables {
                    return Err(format!(
                        "`{name}` cannot be used inside an access table result"
                    ));
                }
                Restriction::CheckPolicyService(Endpoint::parse(spec)?)
            }
            _ => return Err(format!("unknown restriction `{word}`")),
        };
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_from_main_cf_style_values() {
        let list = parse(&[
            "permit_mynetworks, permit_sasl_authenticated".into(),
            "reject_rbl_client zen.example=127.0.0.[2..11]".into(),
            "check_client_access".into(),
            "inline:{ 192.0.2.1=REJECT, 192.0.2.2=OK }".into(),
            "check_policy_service inet:127.0.0.1:10023".into(),
            "reject_unauth_destination".into(),
        ])
        .expect("parse");
        assert_eq!(list.len(), 6);
        assert!(matches!(list[2], Restriction::RejectRblClient(_)));
        assert!(matches!(list[3], Restriction::CheckClientAccess(_)));
        assert!(matches!(list[4], Restriction::CheckPolicyService(_)));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(
            parse(&["permit_everything".into()])
                .unwrap_err()
                .contains("unknown restriction")
        );
        assert!(
            parse(&["reject_rbl_client".into()])
                .unwrap_err()
                .contains("needs an argument")
        );
        assert!(parse(&["check_sender_access hash:/nonexistent".into()]).is_err());
        assert!(parse_nested(&["check_client_access", "static:OK"]).is_err());
    }
}
