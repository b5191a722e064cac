//! Sieve `notify` with `mailto:` (RFC 5435, RFC 5436) at delivery: a
//! short message about the one that arrived, to the URI's recipients,
//! from the null sender with `Auto-Submitted: auto-notified`, through
//! cleanup like a vacation reply. Mail that is itself automatic is never
//! notified about (§2.7), so two notifying users cannot start a loop.

use super::sieve::{Prepared, Recipient};
use super::vacation::{Reply, clean, date_and_id};
use crate::rfc5322::{encode_word, to_crlf};
use crate::sieve::compile::Notify;
use crate::sieve::notify::Mailto;

pub fn notification(r: &Recipient<'_>, message: &Prepared<'_>, n: &Notify) -> Option<Reply> {
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| clean(v.trim()))
    };
    if header("auto-submitted").is_some_and(|v| !v.eq_ignore_ascii_case("no")) {
        tracing::info!(
            "sieve: {}: no notification: the message is automatic",
            r.account
        );
        return None;
    }
    let uri = match Mailto::parse(&n.method) {
        Ok(uri) => uri,
        Err(e) => {
            tracing::warn!("sieve: {}: notify: {e}", r.account);
            return None;
        }
    };
    let from = n
        .from
        .as_deref()
        .filter(|f| crate::address::Address::parse(f.trim_matches(['<', '>'])).is_ok())
        .map(|f| format!("<{}>", f.trim_matches(['<', '>'])))
        .unwrap_or_else(|| format!("<{}>", r.address));
    let sender = header("from").unwrap_or_else(|| format!("<{}>", r.sender));
    let subject_of_mail = header("subject").unwrap_or_default();
    // §2.5 and §2.6: the URI's subject, else :message, else a summary.
    let summary = format!("New mail from {sender}: {subject_of_mail}");
    let subject = uri
        .headers
        .iter()
        .find(|(k, _)| k == "subject")
        .map(|(_, v)| v.clone())
        .or_else(|| n.message.as_deref().map(clean))
        .unwrap_or_else(|| summary.clone());
    let mut out = format!("From: {from}\r\n");
    if !uri.to.is_empty() {
        out.push_str(&format!("To: {}\r\n", list(&uri.to)));
    }
    if !uri.cc.is_empty() {
        out.push_str(&format!("Cc: {}\r\n", list(&uri.cc)));
    }
    out.push_str(&format!(
        "Subject: {}\r\nAuto-Submitted: auto-notified\r\n{}",
        encode_word(subject.chars().take(200).collect::<String>().trim()),
        date_and_id(r.hostname)
    ));
    for (name, value) in uri.headers.iter().filter(|(k, _)| k != "subject") {
        out.push_str(&format!("{name}: {}\r\n", encode_word(value)));
    }
    if let Some(importance) = &n.importance {
        let word = match importance.as_str() {
            "1" => "high",
            "3" => "low",
            _ => "normal",
        };
        out.push_str(&format!("Importance: {word}\r\n"));
    }
    let body = uri
        .body
        .clone()
        .or_else(|| n.message.clone())
        .unwrap_or(summary);
    out.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    out.push_str(&String::from_utf8_lossy(&to_crlf(body.as_bytes(), false)));
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    tracing::info!("sieve: {}: notification to {}", r.account, list(&uri.to));
    Some(Reply {
        to: uri.to.iter().chain(&uri.cc).cloned().collect(),
        message: out.into_bytes(),
        fcc: n.fcc.clone().map(|f| (r.account.to_string(), f)),
    })
}

fn list(addresses: &[String]) -> String {
    addresses
        .iter()
        .map(|a| format!("<{a}>"))
        .collect::<Vec<_>>()
        .join(", ")
}
