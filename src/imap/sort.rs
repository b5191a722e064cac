//! SORT (RFC 5256 §3, with DISPLAYFROM and DISPLAYTO of RFC 5957), and
//! what SORT and THREAD read from a message: the base subject (§2.1), the
//! sent date (§2.2), address keys and, for THREAD, the message IDs.
//!
//! Sans-IO: the session reads the header sections (see `search`) and
//! hands them here; nothing in this file touches the store.
//!
//! Collation: subjects and display names are compared after a Unicode
//! upper-case mapping (close to `i;unicode-casemap`, RFC 5051, without its
//! NFKD decomposition); `addr-mailbox` keys use `i;ascii-casemap`. Ties
//! are broken by sequence number, which REVERSE does not affect.

use super::message;
use super::proto::{SortCriterion, SortKey};
use crate::store::MessageMeta;
use std::cmp::Ordering;

/// Which header fields a command needs; nothing else is parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub subject: bool,
    pub date: bool,
    pub from: bool,
    pub to: bool,
    pub cc: bool,
    pub display_from: bool,
    pub display_to: bool,
    /// Message-ID, References and In-Reply-To (THREAD=REFERENCES).
    pub threading: bool,
}

impl Needs {
    pub fn for_sort(criteria: &[SortCriterion]) -> Needs {
        let mut needs = Needs::default();
        for c in criteria {
            match c.key {
                SortKey::Arrival | SortKey::Size => {}
                SortKey::Subject => needs.subject = true,
                SortKey::Date => needs.date = true,
                SortKey::From => needs.from = true,
                SortKey::To => needs.to = true,
                SortKey::Cc => needs.cc = true,
                SortKey::DisplayFrom => needs.display_from = true,
                SortKey::DisplayTo => needs.display_to = true,
            }
        }
        needs
    }

    /// Both threading algorithms group by base subject and order by sent
    /// date; REFERENCES also follows the message IDs.
    pub fn for_thread(references: bool) -> Needs {
        Needs {
            subject: true,
            date: true,
            threading: references,
            ..Needs::default()
        }
    }

    /// Whether the message must be read at all.
    pub fn header(&self) -> bool {
        *self != Needs::default()
    }

    /// Whether mail-parser must parse the header (decoded fields).
    fn parsed(&self) -> bool {
        self.subject
            || self.date
            || self.from
            || self.to
            || self.cc
            || self.display_from
            || self.display_to
    }
}

/// What SORT and THREAD know of one message. Fields a command did not
/// ask for are left empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub seq: u32,
    pub uid: u32,
    pub size: u64,
    /// INTERNALDATE, unix seconds.
    pub arrival: i64,
    /// Sent date (§2.2): the Date: field in UTC, or the internal date
    /// when it is missing or cannot be parsed.
    pub sent: i64,
    /// Base subject (§2.1), case-mapped for comparison.
    pub subject: String,
    /// The base subject extraction removed a reply or forward marker.
    pub reply: bool,
    /// `addr-mailbox` of the first address, `i;ascii-casemap`ped.
    pub from: String,
    pub to: String,
    pub cc: String,
    /// RFC 5957 display values, case-mapped.
    pub display_from: String,
    pub display_to: String,
    /// Without the angle brackets; `None` when missing or invalid.
    pub message_id: Option<String>,
    /// The References field's IDs, or else the first In-Reply-To ID.
    pub references: Vec<String>,
}

impl Fields {
    /// Sequence number and metadata only (ARRIVAL, SIZE).
    pub fn new(seq: u32, meta: &MessageMeta) -> Fields {
        Fields {
            seq,
            uid: meta.uid.0,
            size: meta.size,
            arrival: meta.internal_date,
            sent: meta.internal_date,
            ..Fields::default()
        }
    }

    /// Fills what `needs` asks for from a message's header section.
    pub fn read_header(&mut self, header: &[u8], needs: &Needs) {
        if needs.parsed()
            && let Some(msg) = mail_parser::MessageParser::new().parse_headers(header)
        {
            if needs.subject {
                let (base, reply) = base_subject(msg.subject().unwrap_or_default());
                self.subject = unicode_casemap(&base);
                self.reply = reply;
            }
            if needs.date
                && let Some(date) = msg.date().filter(|d| d.is_valid())
            {
                self.sent = date.to_timestamp();
            }
            if needs.from {
                self.from = ascii_casemap(&addr_mailbox(first(msg.from()).as_ref()));
            }
            if needs.to {
                self.to = ascii_casemap(&addr_mailbox(first(msg.to()).as_ref()));
            }
            if needs.cc {
                self.cc = ascii_casemap(&addr_mailbox(first(msg.cc()).as_ref()));
            }
            if needs.display_from {
                self.display_from = unicode_casemap(&display(first(msg.from()).as_ref()));
            }
            if needs.display_to {
                self.display_to = unicode_casemap(&display(first(msg.to()).as_ref()));
            }
        }
        if needs.threading {
            let fields = message::header_fields(header);
            let ids = |name: &str| -> Vec<String> {
                fields
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| super::thread::message_ids(v))
                    .unwrap_or_default()
            };
            self.message_id = ids("Message-ID").into_iter().next();
            self.references = ids("References");
            if self.references.is_empty() {
                self.references = ids("In-Reply-To").into_iter().take(1).collect();
            }
        }
    }
}

/// Orders messages by the criteria, then by sequence number.
pub fn sort(items: &mut [Fields], criteria: &[SortCriterion]) {
    items.sort_by(|a, b| compare(a, b, criteria));
}

fn compare(a: &Fields, b: &Fields, criteria: &[SortCriterion]) -> Ordering {
    for c in criteria {
        let order = match c.key {
            SortKey::Arrival => a.arrival.cmp(&b.arrival),
            SortKey::Cc => a.cc.cmp(&b.cc),
            SortKey::Date => a.sent.cmp(&b.sent),
            SortKey::From => a.from.cmp(&b.from),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Subject => a.subject.cmp(&b.subject),
            SortKey::To => a.to.cmp(&b.to),
            SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
            SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
        };
        let order = if c.reverse { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.seq.cmp(&b.seq)
}

/// The first entry of an address field as ENVELOPE lists it: a group's
/// start (its name) or a mailbox.
enum First<'a, 'x> {
    Group(&'a str),
    Mailbox(&'a mail_parser::Addr<'x>),
}

/// RFC 5256 §2.2: the sort key comes from the first ENVELOPE address
/// entry, which for `Cc: team: a@x;` is the group (`team`), not `a@x`.
fn first<'a, 'x>(field: Option<&'a mail_parser::Address<'x>>) -> Option<First<'a, 'x>> {
    match field? {
        mail_parser::Address::List(list) => list.first().map(First::Mailbox),
        mail_parser::Address::Group(groups) => {
            let group = groups.first()?;
            match group.name.as_deref() {
                Some(name) => Some(First::Group(name)),
                None => group.addresses.first().map(First::Mailbox),
            }
        }
    }
}

/// `addr-mailbox` of an address (RFC 3501 ENVELOPE): the local part, or
/// empty when there is no address; a group's name.
fn addr_mailbox(addr: Option<&First<'_, '_>>) -> String {
    let address = match addr {
        Some(First::Group(name)) => return name.to_string(),
        Some(First::Mailbox(a)) => a.address.as_deref().unwrap_or_default(),
        None => "",
    };
    match address.rsplit_once('@') {
        Some((local, _)) => local.to_string(),
        None => address.to_string(),
    }
}

/// RFC 5957 §3: the decoded display name if not empty, else
/// `mailbox@host`, else the mailbox, else empty; a group's name.
fn display(addr: Option<&First<'_, '_>>) -> String {
    let addr = match addr {
        None => return String::new(),
        Some(First::Group(name)) => return name.to_string(),
        Some(First::Mailbox(addr)) => addr,
    };
    let name = addr.name.as_deref().unwrap_or_default().trim();
    if !name.is_empty() {
        return name.to_string();
    }
    addr.address.as_deref().unwrap_or_default().to_string()
}

/// `i;ascii-casemap` (RFC 4790 §9.2): ASCII letters folded, other octets
/// compared as they are.
pub fn ascii_casemap(s: &str) -> String {
    s.to_ascii_uppercase()
}

/// An approximation of `i;unicode-casemap` (RFC 5051): the Unicode
/// upper-case mapping of each character (no NFKD decomposition).
pub fn unicode_casemap(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars().flat_map(char::to_uppercase).collect()
}

/// The base subject of an RFC 2047-decoded subject (RFC 5256 §2.1), and
/// whether it was a reply or forward: the extraction removed a
/// `subj-refwd`, a `(fwd)` trailer or a `[fwd: ...]` wrapper.
pub fn base_subject(subject: &str) -> (String, bool) {
    // (1) Tabs and line breaks become spaces; runs of spaces one space.
    let mut folded = String::with_capacity(subject.len());
    let mut space = false;
    for c in subject.chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            space = true;
            continue;
        }
        if space && !folded.is_empty() {
            folded.push(' ');
        }
        space = false;
        folded.push(c);
    }
    let mut s = folded.as_str();
    let mut reply = false;
    loop {
        // (2) Trailers: "(fwd)" and white space, as long as there are some.
        loop {
            if let Some(rest) = s.strip_suffix(' ') {
                s = rest;
            } else if let Some(rest) = strip_suffix_ci(s, "(fwd)") {
                s = rest;
                reply = true;
            } else {
                break;
            }
        }
        // (3)-(5) Leaders (white space, `*subj-blob subj-refwd`) and blobs
        // that leave something behind, until none is left.
        loop {
            if let Some(rest) = s.strip_prefix(' ') {
                s = rest;
            } else if let Some(rest) = leader(s) {
                s = rest;
                reply = true;
            } else if let Some(rest) = blob(s).filter(|rest| !rest.is_empty()) {
                s = rest;
            } else {
                break;
            }
        }
        // (6) A "[fwd: ...]" wrapper: unwrap it and start again at (2).
        if let Some(inner) = strip_prefix_ci(s, "[fwd:").and_then(|r| r.strip_suffix(']')) {
            s = inner;
            reply = true;
            continue;
        }
        break;
    }
    (s.to_string(), reply)
}

/// `*subj-blob subj-refwd`: the text after it.
fn leader(s: &str) -> Option<&str> {
    let mut rest = s;
    loop {
        if let Some(after) = refwd(rest) {
            return Some(after);
        }
        rest = blob(rest)?;
    }
}

/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn refwd(s: &str) -> Option<&str> {
    ["re", "fwd", "fw"].into_iter().find_map(|word| {
        let rest = strip_prefix_ci(s, word)?.trim_start_matches(' ');
        let rest = blob(rest).unwrap_or(rest);
        rest.strip_prefix(':')
    })
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: the text after it. BLOBCHAR is
/// taken as any character but the brackets (decoded subjects are UTF-8).
fn blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find(['[', ']'])?;
    let rest = inner.get(end..)?.strip_prefix(']')?;
    Some(rest.trim_start_matches(' '))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix)
        .then(|| s.get(..cut))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Uid;

    fn base(s: &str) -> (String, bool) {
        let (b, r) = base_subject(s);
        (b, r)
    }

    #[test]
    fn base_subject_rules() {
        let table: &[(&str, &str, bool)] = &[
            ("", "", false),
            ("Hello World", "Hello World", false),
            ("  Hello \t  World  ", "Hello World", false),
            ("Hello\r\n World", "Hello World", false),
            // subj-refwd, any case, with white space and a blob.
            ("Re: Hello", "Hello", true),
            ("RE:Hello", "Hello", true),
            ("re : Hello", "Hello", true),
            ("Re[2]: Hello", "Hello", true),
            ("Re [2]: Hello", "Hello", true),
            ("Fw: Hello", "Hello", true),
            ("FWD: Hello", "Hello", true),
            ("fwd:fwd: re: Hello", "Hello", true),
            ("Re: Re: Re: Hello", "Hello", true),
            // Not a prefix: no colon, or a longer word.
            ("Re Hello", "Re Hello", false),
            ("Reply: Hello", "Reply: Hello", false),
            ("Fwx: Hello", "Fwx: Hello", false),
            ("Regarding the meeting", "Regarding the meeting", false),
            // Blobs: list tags are removed when something is left.
            ("[merpati-dev] Hello", "Hello", false),
            ("[merpati-dev] Re: Hello", "Hello", true),
            ("[a][b] Re: [c] Fwd: Hello", "Hello", true),
            ("Re: [list] Hello", "Hello", true),
            ("[only a blob]", "[only a blob]", false),
            ("Re: [only a blob]", "[only a blob]", true),
            ("[a] [b]", "[b]", false),
            ("[unclosed Hello", "[unclosed Hello", false),
            // Trailers.
            ("Hello (fwd)", "Hello", true),
            ("Hello (FWD) (fwd)  ", "Hello", true),
            ("Hello(fwd)", "Hello", true),
            ("Hello (fwd) world", "Hello (fwd) world", false),
            // The [fwd: ...] wrapper, nested and combined.
            ("[fwd: Hello]", "Hello", true),
            ("[Fwd: Re: Hello]", "Hello", true),
            ("Re: [fwd: [fwd: Hello (fwd)]]", "Hello", true),
            ("[list] [Fwd: Hello]", "Hello", true),
            ("[fwd: Hello", "[fwd: Hello", false),
            ("[fwd:]", "", true),
            // Only prefixes: the base subject is empty.
            ("Re:", "", true),
            ("Re: ", "", true),
            ("   ", "", false),
            // Non-ASCII text is kept as is.
            ("Re: Grüße aus Bandung", "Grüße aus Bandung", true),
            ("[Ärger] Über", "Über", false),
        ];
        for (subject, want, reply) in table {
            assert_eq!(
                base(subject),
                (want.to_string(), *reply),
                "subject {subject:?}"
            );
        }
    }

    fn fields_of(header: &str, needs: Needs) -> Fields {
        let meta = MessageMeta {
            uid: Uid(7),
            size: 1234,
            internal_date: 1_700_000_000,
            flags: Vec::new(),
            modseq: 1,
            email_id: 1,
            save_date: None,
        };
        let mut f = Fields::new(3, &meta);
        f.read_header(header.as_bytes(), &needs);
        f
    }

    fn all() -> Needs {
        Needs {
            subject: true,
            date: true,
            from: true,
            to: true,
            cc: true,
            display_from: true,
            display_to: true,
            threading: true,
        }
    }

    #[test]
    fn header_fields() {
        let f = fields_of(
            "From: =?utf-8?q?J=C3=BCrgen?= <Juergen@Example.com>\r\n\
To: \"\" <zed@example.com>, amy@example.com\r\n\
Cc: Team: Carol <carol@x.example>, dave@x.example;\r\n\
Subject: =?utf-8?q?Re=3A_=5Bliste=5D_gr=C3=BC=C3=9Fe?=\r\n\
 (fwd)\r\n\
Date: Tue, 2 Jan 2024 12:00:00 +0200\r\n\
Message-ID: <abc@example.com>\r\n\
In-Reply-To: <ignored@example.com>\r\n\
References: <r1@example.com> (comment)\r\n <r2@example.com>\r\n\
\r\n",
            all(),
        );
        assert_eq!(
            (f.seq, f.uid, f.size, f.arrival),
            (3, 7, 1234, 1_700_000_000)
        );
        assert_eq!(f.subject, "GRÜSSE");
        assert!(f.reply);
        // 2024-01-02T10:00:00Z.
        assert_eq!(f.sent, 1_704_189_600);
        assert_eq!(f.from, "JUERGEN");
        assert_eq!(f.to, "ZED");
        // RFC 5256: the first ENVELOPE entry of a group is the group.
        assert_eq!(f.cc, "TEAM");
        assert_eq!(f.display_from, "JÜRGEN");
        assert_eq!(f.display_to, "ZED@EXAMPLE.COM");
        assert_eq!(f.message_id.as_deref(), Some("abc@example.com"));
        assert_eq!(f.references, vec!["r1@example.com", "r2@example.com"]);
    }

    #[test]
    fn missing_and_malformed_fields() {
        // Nothing at all: empty keys, the internal date as sent date.
        let f = fields_of("X-Other: 1\r\n\r\n", all());
        assert_eq!(f.sent, 1_700_000_000);
        assert_eq!(
            (f.subject.as_str(), f.from.as_str(), f.display_from.as_str()),
            ("", "", "")
        );
        assert_eq!((f.message_id, f.references.len()), (None, 0));
        for date in [
            "Date: garbage\r\n",
            "Date: 45 Foo 2024 99:99:99 +0000\r\n",
            "Date:\r\n",
        ] {
            let f = fields_of(&format!("{date}\r\n"), all());
            assert_eq!(f.sent, 1_700_000_000, "{date}");
        }
        // In-Reply-To when References has no valid ID; its first ID only.
        let f = fields_of(
            "References: garbage\r\nIn-Reply-To: Bob's note <one@x> <two@x>\r\nMessage-ID: no-brackets@x\r\n\r\n",
            all(),
        );
        assert_eq!(f.references, vec!["one@x"]);
        assert_eq!(f.message_id, None);
        // A bare word is a display name without an address (as ENVELOPE
        // shows it); an address without a domain is its own mailbox.
        // A group sorts by its name (the first ENVELOPE entry).
        let f = fields_of("To: empty:;\r\nCc: team: a@x;\r\n\r\n", all());
        assert_eq!((f.to.as_str(), f.display_to.as_str()), ("EMPTY", "EMPTY"));
        assert_eq!(f.cc.as_str(), "TEAM");
        let f = fields_of("From: bob\r\nTo: <zed>\r\nCc: <@>\r\n\r\n", all());
        assert_eq!((f.from.as_str(), f.display_from.as_str()), ("", "BOB"));
        assert_eq!((f.to.as_str(), f.display_to.as_str()), ("ZED", "ZED"));
        // Malformed input of every kind never panics.
        for raw in [
            "",
            "\r\n",
            "Subject: [",
            "Subject: ]]]",
            "Subject: =?utf-8?b?????=\r\n",
            "From: <<<\r\n",
            "From: \"unterminated\r\n",
            "References: <<<a@b\r\n",
            "References: <a@b>>>>\r\n",
            "Date: Mon, 1 Jan 9999999999 00:00:00 +9999\r\n",
            "Subject: \u{0}\u{1}[\u{2}]\r\n",
        ] {
            let _ = fields_of(raw, all());
        }
        // Nothing needed: nothing read.
        let f = fields_of("Subject: x\r\nFrom: a@b\r\n\r\n", Needs::default());
        assert_eq!((f.subject.as_str(), f.from.as_str()), ("", ""));
    }

    fn item(seq: u32, arrival: i64, sent: i64, size: u64, subject: &str, from: &str) -> Fields {
        Fields {
            seq,
            uid: seq * 10,
            size,
            arrival,
            sent,
            subject: subject.into(),
            from: from.into(),
            ..Fields::default()
        }
    }

    fn sorted(items: &[Fields], criteria: &[(bool, SortKey)]) -> Vec<u32> {
        let criteria: Vec<SortCriterion> = criteria
            .iter()
            .map(|&(reverse, key)| SortCriterion { reverse, key })
            .collect();
        let mut items = items.to_vec();
        sort(&mut items, &criteria);
        items.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn ordering_ties_and_reverse() {
        let items = [
            item(1, 300, 20, 500, "B", "ZED"),
            item(2, 100, 10, 100, "A", "AMY"),
            item(3, 200, 10, 500, "B", "AMY"),
            item(4, 200, 30, 50, "A", ""),
        ];
        assert_eq!(sorted(&items, &[(false, SortKey::Arrival)]), [2, 3, 4, 1]);
        assert_eq!(sorted(&items, &[(true, SortKey::Arrival)]), [1, 3, 4, 2]);
        assert_eq!(sorted(&items, &[(false, SortKey::Date)]), [2, 3, 1, 4]);
        assert_eq!(sorted(&items, &[(false, SortKey::Size)]), [4, 2, 1, 3]);
        // Ties stay in sequence order even when reversed.
        assert_eq!(sorted(&items, &[(true, SortKey::Size)]), [1, 3, 2, 4]);
        assert_eq!(sorted(&items, &[(false, SortKey::From)]), [4, 2, 3, 1]);
        assert_eq!(
            sorted(&items, &[(false, SortKey::Subject), (true, SortKey::Date)]),
            [4, 2, 1, 3]
        );
        assert_eq!(
            sorted(&items, &[(true, SortKey::Subject), (false, SortKey::Size)]),
            [1, 3, 4, 2]
        );
        assert_eq!(sorted(&[], &[(false, SortKey::Size)]), Vec::<u32>::new());
    }

    #[test]
    fn needs_follow_the_criteria() {
        let crit = |key| SortCriterion {
            reverse: false,
            key,
        };
        assert!(!Needs::for_sort(&[crit(SortKey::Arrival), crit(SortKey::Size)]).header());
        let n = Needs::for_sort(&[crit(SortKey::Subject), crit(SortKey::DisplayTo)]);
        assert!(n.header() && n.subject && n.display_to && !n.from && !n.threading);
        assert!(Needs::for_thread(true).threading);
        assert!(!Needs::for_thread(false).threading);
    }

    #[test]
    fn casemaps() {
        assert_eq!(ascii_casemap("Müller"), "MüLLER");
        assert_eq!(unicode_casemap("Müller"), "MÜLLER");
        assert_eq!(unicode_casemap("abc"), "ABC");
    }
}
