//! The fixed tests: what the message's headers, MIME structure, the SMTP
//! dialogue and the SPF/DKIM/DMARC/ARC results say. Names and scores follow
//! SpamAssassin's where it has the same test, so an admin reading
//! `X-Spam-Status: ... tests=...` recognises them.

use super::tokens::Tokens;
use crate::mailauth::Results;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use std::net::IpAddr;

/// Every fixed test: name, score, what it means (for `docs/` and logs).
pub const TESTS: &[(&str, f64, &str)] = &[
    ("GTUBE", 1000.0, "the GTUBE test string"),
    ("SPF_FAIL", 1.5, "SPF fail for the MAIL FROM domain"),
    ("SPF_SOFTFAIL", 0.7, "SPF softfail"),
    ("SPF_PASS", -0.1, "SPF pass"),
    ("DKIM_VALID", -0.1, "a DKIM signature verified"),
    ("DKIM_INVALID", 0.7, "a DKIM signature failed"),
    ("DMARC_PASS", -0.2, "DMARC pass"),
    (
        "DMARC_FAIL",
        2.5,
        "DMARC fail (the domain's policy let it through)",
    ),
    ("ARC_INVALID", 0.5, "an ARC chain failed"),
    ("MISSING_DATE", 1.0, "no Date:"),
    ("MISSING_MID", 0.5, "no Message-ID:"),
    ("MISSING_FROM", 1.0, "no From:"),
    ("MISSING_SUBJECT", 0.5, "no Subject:"),
    ("MISSING_HEADERS", 1.0, "no To: or Cc:"),
    ("DATE_IN_FUTURE_12", 1.0, "Date: more than 12 hours ahead"),
    ("DATE_IN_PAST_96", 1.0, "Date: more than 96 hours old"),
    ("SUBJ_ALL_CAPS", 0.5, "Subject: all capitals"),
    (
        "FORGED_OUR_RECEIVED",
        2.0,
        "a Received: claims our host handled it before",
    ),
    (
        "HELO_OUR_NAME",
        2.5,
        "the client's HELO claims our host name",
    ),
    (
        "HELO_IP_MISMATCH",
        1.5,
        "an address-literal HELO that is not the client's address",
    ),
    ("HELO_NOT_FQDN", 0.5, "a HELO name without a dot"),
    (
        "RDNS_NONE",
        0.8,
        "the client has no forward-confirmed reverse DNS name",
    ),
    (
        "MIME_NO_BOUNDARY",
        1.0,
        "a multipart part without a boundary",
    ),
    ("MIME_HTML_ONLY", 0.7, "HTML without a plain-text part"),
    (
        "MIME_BAD_ENCODING",
        0.5,
        "a part whose transfer encoding does not decode",
    ),
    (
        "MIME_MISSING_VERSION",
        0.5,
        "MIME parts but no MIME-Version:",
    ),
    (
        "MIME_EXE_ATTACH",
        3.0,
        "an attached program or script (.exe, .scr, .js...)",
    ),
    ("NUL_IN_MESSAGE", 1.0, "NUL octets in the message"),
    ("EMPTY_MESSAGE", 1.5, "no body text at all"),
];

/// The GTUBE string (SpamAssassin's Generic Test for Unsolicited Bulk Email).
const GTUBE: &[u8] = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

const PROGRAM_EXTENSIONS: &[&str] = &[
    ".exe", ".scr", ".pif", ".bat", ".cmd", ".com", ".js", ".vbs", ".jar", ".msi", ".lnk", ".hta",
    ".cpl", ".ps1", ".wsf",
];

/// The score of a fixed test.
pub fn score(name: &str) -> f64 {
    TESTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(0.0, |(_, s, _)| *s)
}

/// How the message came: the SMTP dialogue's facts.
#[derive(Clone, Copy, Debug)]
pub struct Arrival<'a> {
    pub client_ip: IpAddr,
    /// `unknown` without a forward-confirmed name.
    pub client_name: &'a str,
    pub helo: &'a str,
    pub myhostname: &'a str,
    pub auth: Option<&'a Results>,
    pub now: i64,
}

/// What the fixed tests found, and the classifier's tokens.
#[derive(Debug, Default, Clone)]
pub struct Content {
    pub hits: Vec<&'static str>,
    pub tokens: Vec<u32>,
    /// Registered domains of the links, for the URI blocklists.
    pub links: Vec<String>,
    /// The From: address, lower case.
    pub from: Option<String>,
    /// Identifies the message for learning (its Message-ID, else its text).
    pub digest: u64,
}

/// Reads the message (its first `max_scan` octets) once for every test
/// that needs no DNS, and for the tokens.
pub fn inspect(message: &[u8], max_scan: usize, max_links: usize) -> Content {
    let scanned = message
        .get(..max_scan.min(message.len()))
        .unwrap_or(message);
    let mut content = Content::default();
    if memchr::memmem::find(scanned, GTUBE).is_some() {
        content.hits.push("GTUBE");
    }
    if memchr::memchr(0, scanned).is_some() {
        content.hits.push("NUL_IN_MESSAGE");
    }
    let Some(parsed) = MessageParser::new().parse(scanned) else {
        content.hits.push("MISSING_HEADERS");
        content.hits.push("EMPTY_MESSAGE");
        content.digest = digest(scanned);
        return content;
    };
    header_tests(&parsed, &mut content.hits);
    mime_tests(&parsed, &mut content.hits);
    let mut tokens = Tokens::default();
    if let Some(subject) = parsed.subject() {
        tokens.add_text("s", subject);
    }
    content.from = parsed
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(str::to_ascii_lowercase);
    if let Some(domain) = content.from.as_deref().and_then(|f| f.rsplit_once('@')) {
        tokens.add("fd", domain.1);
    }
    let text = body_text(&parsed);
    if text.trim().is_empty() && !parsed.parts.iter().any(|p| p.is_binary()) {
        content.hits.push("EMPTY_MESSAGE");
    }
    content.links = super::links::domains(&text, max_links.max(1) * 4);
    for link in &content.links {
        tokens.add("u", link);
    }
    tokens.add_text("", &text);
    content.tokens = tokens.into_sorted();
    content.links.truncate(max_links);
    // The sender chooses the Message-ID: with the text beside it, two
    // different messages under one ID are two lessons.
    let mut identity = parsed.message_id().unwrap_or_default().as_bytes().to_vec();
    identity.extend_from_slice(text.as_bytes());
    content.digest = digest(&identity);
    content
}

/// The tests of the SMTP dialogue and the authentication results, and
/// those that compare the Date: with `now`.
pub fn arrival_tests(message: &[u8], arrival: &Arrival<'_>, hits: &mut Vec<&'static str>) {
    if let Some(results) = arrival.auth {
        auth_tests(results, hits);
    }
    helo_tests(arrival, hits);
    if arrival.client_name == crate::policy::peer::UNKNOWN {
        hits.push("RDNS_NONE");
    }
    let header_end = crate::rfc5322::scan_headers(message).end;
    let header = message.get(..header_end).unwrap_or(message);
    let Some(parsed) = MessageParser::new().parse_headers(header) else {
        return;
    };
    if let Some(date) = parsed.date() {
        let age = arrival.now.saturating_sub(date.to_timestamp());
        if age < -12 * 3600 {
            hits.push("DATE_IN_FUTURE_12");
        } else if age > 96 * 3600 {
            hits.push("DATE_IN_PAST_96");
        }
    }
    let ours = format!("by {}", arrival.myhostname.to_ascii_lowercase());
    let forged = header_lines(header, "received").iter().any(|v| {
        let v = v.to_ascii_lowercase();
        // `by mx.a` must not match `by mx.ab`: the name ends there.
        v.match_indices(&ours).any(|(at, _)| {
            v.get(at + ours.len()..)
                .unwrap_or_default()
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        })
    });
    if forged && !arrival.myhostname.is_empty() {
        hits.push("FORGED_OUR_RECEIVED");
    }
}

fn auth_tests(r: &Results, hits: &mut Vec<&'static str>) {
    match r.spf {
        "fail" => hits.push("SPF_FAIL"),
        "softfail" => hits.push("SPF_SOFTFAIL"),
        "pass" => hits.push("SPF_PASS"),
        _ => {}
    }
    if !r.dkim_pass.is_empty() {
        hits.push("DKIM_VALID");
    }
    if r.dkim_fail {
        hits.push("DKIM_INVALID");
    }
    match r.dmarc {
        "pass" => hits.push("DMARC_PASS"),
        "fail" => hits.push("DMARC_FAIL"),
        _ => {}
    }
    if r.arc == "fail" {
        hits.push("ARC_INVALID");
    }
}

fn helo_tests(a: &Arrival<'_>, hits: &mut Vec<&'static str>) {
    let helo = a.helo.trim();
    if helo.is_empty() {
        return;
    }
    if !a.myhostname.is_empty() && helo.eq_ignore_ascii_case(a.myhostname) {
        hits.push("HELO_OUR_NAME");
    } else if let Some(literal) = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let literal = literal.strip_prefix("IPv6:").unwrap_or(literal);
        let same = literal
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical() == a.client_ip.to_canonical());
        if !same {
            hits.push("HELO_IP_MISMATCH");
        }
    } else if !helo.contains('.') {
        hits.push("HELO_NOT_FQDN");
    }
}

fn header_tests(m: &Message<'_>, hits: &mut Vec<&'static str>) {
    if m.date().is_none() {
        hits.push("MISSING_DATE");
    }
    if m.message_id().is_none() {
        hits.push("MISSING_MID");
    }
    if m.from().is_none() {
        hits.push("MISSING_FROM");
    }
    if m.to().is_none() && m.cc().is_none() {
        hits.push("MISSING_HEADERS");
    }
    match m.subject() {
        None => hits.push("MISSING_SUBJECT"),
        Some(s) => {
            let letters: Vec<char> = s.chars().filter(|c| c.is_alphabetic()).collect();
            if letters.len() >= 10 && letters.iter().all(|c| c.is_uppercase()) {
                hits.push("SUBJ_ALL_CAPS");
            }
        }
    }
}

fn mime_tests(m: &Message<'_>, hits: &mut Vec<&'static str>) {
    let mut once = |name: &'static str| {
        if !hits.contains(&name) {
            hits.push(name);
        }
    };
    let (mut plain, mut html) = (false, false);
    for part in &m.parts {
        match &part.body {
            PartType::Text(_) if part.attachment_name().is_none() => plain = true,
            PartType::Html(_) => html = true,
            _ => {}
        }
        // A multipart type without a boundary: the parser reads it as one
        // text part, so the declared type is what tells.
        if let Some(ct) = part.content_type()
            && ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.attribute("boundary").is_none_or(str::is_empty)
        {
            once("MIME_NO_BOUNDARY");
        }
        if part.is_encoding_problem {
            once("MIME_BAD_ENCODING");
        }
        if let Some(name) = part.attachment_name() {
            let name = name.to_ascii_lowercase();
            if PROGRAM_EXTENSIONS.iter().any(|e| name.ends_with(e)) {
                once("MIME_EXE_ATTACH");
            }
        }
    }
    if html && !plain {
        once("MIME_HTML_ONLY");
    }
    let multipart = m.parts.len() > 1;
    if multipart && m.header("MIME-Version").is_none() {
        once("MIME_MISSING_VERSION");
    }
}

/// The text of every text part (HTML with its tags dropped), bounded by
/// what was scanned.
fn body_text(m: &Message<'_>) -> String {
    let mut out = String::new();
    for part in &m.parts {
        match &part.body {
            PartType::Text(t) => out.push_str(t),
            PartType::Html(h) => out.push_str(&crate::html::text(h, true)),
            _ => continue,
        }
        out.push('\n');
    }
    out
}

/// Unfolded values of header `name` (lower case) in a raw header block.
fn header_lines(header: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(header);
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.starts_with([' ', '\t']) {
            if let Some(c) = current.as_mut() {
                c.push(' ');
                c.push_str(line.trim());
            }
            continue;
        }
        out.extend(current.take());
        if let Some((field, value)) = line.split_once(':')
            && field.trim().eq_ignore_ascii_case(name)
        {
            current = Some(value.trim().to_string());
        }
    }
    out.extend(current);
    out
}

/// FNV-1a, 64 bits.
pub fn digest(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(message: &str) -> Vec<&'static str> {
        inspect(message.as_bytes(), 1 << 20, 20).hits
    }

    #[test]
    fn gtube_and_missing_headers() {
        let gtube = format!(
            "Subject: test\r\n\r\n{}\r\n",
            std::str::from_utf8(GTUBE).unwrap()
        );
        let h = hits(&gtube);
        assert!(h.contains(&"GTUBE"), "{h:?}");
        assert!(
            h.contains(&"MISSING_DATE") && h.contains(&"MISSING_MID"),
            "{h:?}"
        );
        let fine = "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <a@b>\r\nFrom: a@b.test\r\n\
                    To: c@d.test\r\nSubject: Lunch tomorrow?\r\n\r\nShall we meet at noon?\r\n";
        assert!(hits(fine).is_empty(), "{:?}", hits(fine));
        assert!(hits("Subject: BUY NOW CHEAP PILLS\r\n\r\nx\r\n").contains(&"SUBJ_ALL_CAPS"));
    }

    #[test]
    fn mime_oddities() {
        let html_only = "MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<b>hi</b> <a href=\"http://x.spam.test/\">x</a>\r\n";
        let c = inspect(html_only.as_bytes(), 1 << 20, 20);
        assert!(c.hits.contains(&"MIME_HTML_ONLY"), "{:?}", c.hits);
        assert_eq!(c.links, ["spam.test"]);
        let exe = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                   Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\n\
                   Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n";
        assert!(hits(exe).contains(&"MIME_EXE_ATTACH"), "{:?}", hits(exe));
        let no_boundary = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n";
        let h = hits(no_boundary);
        assert!(h.contains(&"MIME_NO_BOUNDARY"), "{h:?}");
    }

    #[test]
    fn garbage_gets_a_verdict() {
        let garbage: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 256) as u8).collect();
        let c = inspect(&garbage, 1 << 20, 20);
        assert!(c.hits.contains(&"NUL_IN_MESSAGE"), "{:?}", c.hits);
        let huge_header = format!("Subject: {}\r\n\r\nx\r\n", "a".repeat(1 << 20));
        let c = inspect(huge_header.as_bytes(), 512 * 1024, 20);
        assert!(c.tokens.len() <= super::super::tokens::MAX_TOKENS);
    }

    #[test]
    fn arrival_tests_read_the_dialogue() {
        let results = Results {
            spf: "fail",
            dmarc: "fail",
            ..Results::default()
        };
        let arrival = Arrival {
            client_ip: "192.0.2.1".parse().unwrap(),
            client_name: "unknown",
            helo: "[192.0.2.9]",
            myhostname: "mx.ours.test",
            auth: Some(&results),
            now: 2_000_000_000,
        };
        let mut h = Vec::new();
        let message = b"Received: from x by mx.ours.test; Thu, 1 Jan 2026 00:00:00 +0000\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nhi\r\n";
        arrival_tests(message, &arrival, &mut h);
        for name in [
            "SPF_FAIL",
            "DMARC_FAIL",
            "HELO_IP_MISMATCH",
            "RDNS_NONE",
            "DATE_IN_PAST_96",
            "FORGED_OUR_RECEIVED",
        ] {
            assert!(h.contains(&name), "{name} not in {h:?}");
        }
        let us = Arrival {
            helo: "MX.ours.test",
            auth: None,
            ..arrival
        };
        let mut h = Vec::new();
        arrival_tests(b"\r\nhi\r\n", &us, &mut h);
        assert!(h.contains(&"HELO_OUR_NAME"), "{h:?}");
    }
}
