//! Access tables (Postfix access(5)): which keys are looked up for a
//! client, a HELO name or an address, and what a result means.

use super::restriction::{self, Restriction};
use crate::smtp::proto::reply::Reply;
use crate::tables::Table;
use std::net::IpAddr;

/// What one access-table result asks for.
#[derive(Debug)]
pub enum Step {
    /// Not found, or DUNNO: go on with the next restriction.
    Dunno,
    /// OK (or an all-numerical result): this list permits.
    Permit,
    Reject(Reply),
    Defer(Reply),
    DeferIfReject(Reply),
    DeferIfPermit(Reply),
    /// Actions on the whole message; evaluation goes on.
    Message(MessageAction),
    /// DISCARD: permits, and the message is accepted and dropped.
    Discard(String),
    /// Restriction names (`reject_unauth_destination`, ...), evaluated in
    /// place.
    Restrictions(Vec<Restriction>),
}

/// What becomes of the message once it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    Hold(String),
    Prepend(String),
    Redirect(String),
    Bcc(String),
    /// Logged only.
    Warn(String),
    Info(String),
}

/// The reply codes the table results use (`[restrictions]`).
#[derive(Debug, Clone, Copy)]
pub struct Codes {
    pub reject: u16,
    pub defer: u16,
}

/// Interprets an access-table result. `what` names the looked-up thing
/// for the reply (`<x@y>: Sender address rejected`).
pub fn interpret(result: &str, what: &str, class: &str, codes: Codes) -> Result<Step, String> {
    let result = result.trim();
    let (word, text) = match result.find(char::is_whitespace) {
        Some(i) => (&result[..i], result[i..].trim()),
        None => (result, ""),
    };
    let upper = word.to_ascii_uppercase();
    let generic = |default: &str| {
        if text.is_empty() {
            format!("{what}: {class}: {default}")
        } else {
            format!("{what}: {class}: {text}")
        }
    };
    let step = match upper.as_str() {
        "OK" => Step::Permit,
        _ if word.bytes().all(|b| b.is_ascii_digit()) && word.len() != 3 => Step::Permit,
        _ if word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit()) => {
            let code: u16 = word.parse().map_err(|_| format!("bad code {word}"))?;
            let reply = numeric_reply(code, text, what, class)?;
            if code >= 500 {
                Step::Reject(reply)
            } else {
                Step::Defer(reply)
            }
        }
        "REJECT" => Step::Reject(reply(codes.reject, &generic("Access denied"))),
        "DEFER" => Step::Defer(reply(codes.defer, &generic("Access denied"))),
        "DEFER_IF_REJECT" => Step::DeferIfReject(reply(codes.defer, &generic("Access denied"))),
        "DEFER_IF_PERMIT" => Step::DeferIfPermit(reply(codes.defer, &generic("Access denied"))),
        "DUNNO" => Step::Dunno,
        "HOLD" => Step::Message(MessageAction::Hold(or(
            text,
            &format!("{what}: {class}: triggers HOLD action"),
        ))),
        "DISCARD" => Step::Discard(or(
            text,
            &format!("{what}: {class}: triggers DISCARD action"),
        )),
        "PREPEND" => {
            if !looks_like_header(text) {
                return Err(format!("PREPEND needs a header line, not `{text}`"));
            }
            Step::Message(MessageAction::Prepend(text.to_string()))
        }
        "REDIRECT" | "BCC" => {
            if !text.contains('@') || text.contains(char::is_whitespace) {
                return Err(format!("{upper} needs user@domain, not `{text}`"));
            }
            let address = text.to_string();
            Step::Message(if upper == "REDIRECT" {
                MessageAction::Redirect(address)
            } else {
                MessageAction::Bcc(address)
            })
        }
        "WARN" => Step::Message(MessageAction::Warn(text.to_string())),
        "INFO" => Step::Message(MessageAction::Info(text.to_string())),
        "FILTER" => return Err("FILTER (content filters) is not supported".into()),
        _ => {
            let words: Vec<&str> = result
                .split([' ', '\t', ','])
                .filter(|w| !w.is_empty())
                .collect();
            let parsed = restriction::parse_nested(&words)?;
            Step::Restrictions(parsed)
        }
    };
    Ok(step)
}

fn or(text: &str, default: &str) -> String {
    if text.is_empty() {
        default.to_string()
    } else {
        text.to_string()
    }
}

fn looks_like_header(text: &str) -> bool {
    match text.split_once(':') {
        Some((name, _)) => crate::rfc5322::is_field_name(name, usize::MAX),
        None => false,
    }
}

/// A reply with the default enhanced code of its class (5.7.1 / 4.7.1).
pub fn reply(code: u16, text: &str) -> Reply {
    let enhanced = if code >= 500 { "5.7.1" } else { "4.7.1" };
    Reply::new(code, enhanced, text)
}

/// `4NN text` / `5NN text`, the text optionally starting with an enhanced
/// code of the same class.
fn numeric_reply(code: u16, text: &str, what: &str, class: &str) -> Result<Reply, String> {
    if !(400..600).contains(&code) {
        return Err(format!("reply code {code} is not 4NN or 5NN"));
    }
    let (enhanced, rest) = match text.split_once(char::is_whitespace) {
        Some((first, rest)) if is_enhanced(first, code) => (Some(first), rest.trim()),
        _ if is_enhanced(text, code) => (Some(text), ""),
        _ => (None, text),
    };
    let body = if rest.is_empty() {
        format!("{what}: {class}: Access denied")
    } else {
        format!("{what}: {class}: {rest}")
    };
    Ok(match enhanced {
        Some(e) => Reply::new(code, e, body),
        None => reply(code, &body),
    })
}

fn is_enhanced(word: &str, code: u16) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts.first().and_then(|c| c.parse::<u16>().ok()) == Some(code / 100)
}

/// The keys of a host name, most specific first: `a.b.example`,
/// `b.example`, `example` (Postfix's parent_domain_matches_subdomains
/// default includes the access maps).
pub fn host_keys(name: &str) -> Vec<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let mut keys = Vec::new();
    let mut rest = name.as_str();
    while !rest.is_empty() {
        keys.push(rest.to_string());
        match rest.split_once('.') {
            Some((_, parent)) => rest = parent,
            None => break,
        }
    }
    keys
}

/// The keys of a client address: `192.0.2.1`, `192.0.2`, `192.0`, `192`
/// (IPv6: the address, then shorter `:`-separated prefixes).
pub fn address_keys(ip: IpAddr) -> Vec<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let text = ip.to_string();
    let sep = if ip.is_ipv4() { '.' } else { ':' };
    let parts: Vec<&str> = text.split(sep).collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join(&sep.to_string()))
        .filter(|k| !k.is_empty())
        .collect()
}

/// The keys of an email address: `user+ext@domain`, `user@domain`, the
/// domain and its parents, `user+ext@`, `user@` (access(5)); `<>` for the
/// null sender.
pub fn address_lookup_keys(address: &str, delimiter: &str) -> Vec<String> {
    if address.is_empty() {
        return vec!["<>".into()];
    }
    let address = address.to_ascii_lowercase();
    let Some((local, domain)) = address.rsplit_once('@') else {
        return vec![address.clone(), format!("{address}@")];
    };
    let base = if delimiter.is_empty() {
        None
    } else {
        local
            .find(|c| delimiter.contains(c))
            .map(|i| &local[..i])
            .filter(|b| !b.is_empty())
    };
    let mut keys = vec![address.clone()];
    if let Some(base) = base {
        keys.push(format!("{base}@{domain}"));
    }
    keys.extend(host_keys(domain));
    keys.push(format!("{local}@"));
    if let Some(base) = base {
        keys.push(format!("{base}@"));
    }
    keys
}

/// The first result for `keys` in `table`: exact tables try every key
/// (the first key found wins), regexp/cidr tables the first key only.
pub fn find(table: &Table, keys: &[String]) -> Option<String> {
    if table.takes_partial_keys() {
        keys.iter().find_map(|k| table.get(k))
    } else {
        keys.first().and_then(|k| table.get(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODES: Codes = Codes {
        reject: 554,
        defer: 450,
    };

    fn text(step: &Step) -> String {
        match step {
            Step::Reject(r) | Step::Defer(r) | Step::DeferIfPermit(r) | Step::DeferIfReject(r) => {
                String::from_utf8_lossy(&r.to_bytes())
                    .trim_end()
                    .to_string()
            }
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn results_mean_what_access5_says() {
        let t = |r: &str| interpret(r, "<x@y.test>", "Sender address rejected", CODES).expect(r);
        assert!(matches!(t("OK"), Step::Permit));
        assert!(matches!(t("12345"), Step::Permit));
        assert!(matches!(t("DUNNO"), Step::Dunno));
        assert_eq!(
            text(&t("REJECT")),
            "554 5.7.1 <x@y.test>: Sender address rejected: Access denied"
        );
        assert_eq!(
            text(&t("reject go away")),
            "554 5.7.1 <x@y.test>: Sender address rejected: go away"
        );
        assert_eq!(
            text(&t("550 5.7.0 not here")),
            "550 5.7.0 <x@y.test>: Sender address rejected: not here"
        );
        assert_eq!(
            text(&t("450 later")),
            "450 4.7.1 <x@y.test>: Sender address rejected: later"
        );
        assert_eq!(
            text(&t("DEFER_IF_PERMIT Greylisted")),
            "450 4.7.1 <x@y.test>: Sender address rejected: Greylisted"
        );
        assert!(
            matches!(t("HOLD suspicious"), Step::Message(MessageAction::Hold(h)) if h == "suspicious")
        );
        assert!(
            matches!(t("PREPEND X-Seen: yes"), Step::Message(MessageAction::Prepend(h)) if h == "X-Seen: yes")
        );
        assert!(matches!(
            t("REDIRECT abuse@ours.test"),
            Step::Message(MessageAction::Redirect(_))
        ));
        assert!(matches!(t("DISCARD"), Step::Discard(_)));
        assert!(matches!(t("reject_unauth_destination"), Step::Restrictions(r) if r.len() == 1));
        for bad in [
            "PREPEND no header",
            "REDIRECT nobody",
            "FILTER smtp:x",
            "620 odd",
            "bogus_restriction",
        ] {
            assert!(interpret(bad, "x", "c", CODES).is_err(), "{bad}");
        }
    }

    #[test]
    fn lookup_keys_follow_access5() {
        assert_eq!(
            host_keys("Mail.Example.ORG."),
            ["mail.example.org", "example.org", "org"]
        );
        assert_eq!(
            address_keys("192.0.2.1".parse().unwrap()),
            ["192.0.2.1", "192.0.2", "192.0", "192"]
        );
        assert_eq!(
            address_keys("::ffff:192.0.2.1".parse().unwrap())[0],
            "192.0.2.1"
        );
        assert_eq!(
            address_lookup_keys("User+Tag@Mail.Example.org", "+"),
            [
                "user+tag@mail.example.org",
                "user@mail.example.org",
                "mail.example.org",
                "example.org",
                "org",
                "user+tag@",
                "user@"
            ]
        );
        assert_eq!(address_lookup_keys("", "+"), ["<>"]);
    }
}
