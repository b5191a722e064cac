//! SORT and THREAD (RFC 5256, SORT=DISPLAY of RFC 5957) against the real
//! server: every sort key with REVERSE and several keys at once, UID
//! forms, search keys, bad charsets, THREAD=REFERENCES on a reply tree
//! with a missing parent and a broken client's reply, ORDEREDSUBJECT,
//! no EXPUNGE during SORT, and Python's imaplib as a real client.
//! Responses are compared whole.

use crate::harness::*;
use crate::imap_client::Imap;

const USER: &str = "sorter@localhost";
const PASSWORD: &str = "s0rt pw";

fn login(port: u16) -> Imap {
    Imap::login_as(port, USER, PASSWORD)
}

/// Shorthands for these tests.
trait SortClient {
    fn only(&mut self, text: &str) -> String;
    fn append(&mut self, mailbox: &str, date: &str, message: &str);
}

impl SortClient for Imap {
    /// The single untagged `* SORT` / `* THREAD` line of a command that
    /// must succeed, and nothing else.
    #[track_caller]
    fn only(&mut self, text: &str) -> String {
        let reply = self.ok(text);
        let lines: Vec<&str> = reply.lines().collect();
        assert_eq!(lines.len(), 2, "{text}: {reply}");
        lines[0].to_string()
    }

    fn append(&mut self, mailbox: &str, date: &str, message: &str) {
        let reply = self.ok(&format!(
            "APPEND {mailbox} \"{date}\" {{{}+}}\r\n{message}",
            message.len()
        ));
        assert!(reply.contains("[APPENDUID "), "{reply}");
    }
}

fn server_with_user() -> Server {
    let server = server();
    server.add_user(USER, PASSWORD);
    server
}

/// Roughly `n` octets of body text.
fn body(n: usize) -> String {
    let line = format!("{}\r\n", "x".repeat(70));
    line.repeat(n / line.len() + 1)
}

/// Six messages whose every sort key differs (see the expected orders in
/// `sort_by_every_key`), after a throwaway message that is expunged so
/// that UIDs are sequence numbers + 1.
const SORT_SET: &[(&str, &str, usize)] = &[
    (
        "05-Jan-2024 10:00:00 +0000",
        "From: \"Aaron\" <zed@example.com>\r\nTo: amy@example.com\r\nCc: carl@example.com\r\nSubject: Re: Budget\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n",
        3000,
    ),
    (
        "01-Jan-2024 10:00:00 +0000",
        "From: Amy <Amy@example.com>\r\nTo: \"Yvonne\" <bob@example.com>\r\nSubject: [team] budget\r\nDate: Tue, 2 Jan 2024 09:00:00 -0500\r\n",
        1000,
    ),
    (
        "03-Jan-2024 10:00:00 +0000",
        "From: bob@example.com\r\nTo: zed@example.com\r\nCc: \"Amy\" <amy@example.com>\r\nSubject: Agenda (fwd)\r\n",
        5000,
    ),
    (
        "02-Jan-2024 10:00:00 +0000",
        "From: =?utf-8?q?=C3=89milie?= <emilie@example.com>\r\nTo: carl@example.com\r\nSubject: =?utf-8?q?Fwd=3A_=C3=A9t=C3=A9?=\r\nDate: not a date at all\r\n",
        2000,
    ),
    (
        "04-Jan-2024 10:00:00 +0000",
        "From: \"amy\" <amy@example.net>\r\nCc: dave@example.com\r\nSubject: Agenda\r\nDate: Wed, 3 Jan 2024 23:30:00 +0100\r\n",
        4000,
    ),
    (
        "06-Jan-2024 10:00:00 +0000",
        "From: \"Carl\" <carl@example.com>\r\nTo: dave@example.com\r\nCc: bob@example.com\r\nSubject: budget\r\nDate: Mon, 1 Jan 2024 11:00:00 +0100\r\n",
        500,
    ),
];

/// Appends a throwaway message to `mailbox` and expunges it, so that the
/// next UIDs are one above their sequence numbers.
fn shift_uids(c: &mut Imap, mailbox: &str) {
    c.append(
        mailbox,
        "01-Jan-2020 00:00:00 +0000",
        "Subject: throwaway\r\n\r\nx\r\n",
    );
    c.ok(&format!("SELECT {mailbox}"));
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    c.ok("EXPUNGE");
}

fn sort_mailbox(c: &mut Imap) {
    shift_uids(c, "INBOX");
    for (date, header, size) in SORT_SET {
        c.append("INBOX", date, &format!("{header}\r\n{}", body(*size)));
    }
    let select = c.ok("SELECT INBOX");
    assert!(select.contains("* 6 EXISTS"), "{select}");
}

#[test]
fn sort_capabilities_are_advertised() {
    let server = server_with_user();
    let mut c = login(server.ports.imap);
    let caps = c.ok("CAPABILITY");
    for cap in [
        " SORT ",
        " SORT=DISPLAY ",
        " THREAD=ORDEREDSUBJECT ",
        " THREAD=REFERENCES",
    ] {
        assert!(caps.contains(cap), "{cap}: {caps}");
    }
    // Selected state only.
    let r = c.cmd("SORT (DATE) UTF-8 ALL");
    assert_eq!(r, "t3 BAD No mailbox selected\r\n");
    let r = c.cmd("THREAD REFERENCES UTF-8 ALL");
    assert_eq!(r, "t4 BAD No mailbox selected\r\n");
}

#[test]
fn sort_by_every_key() {
    let server = server_with_user();
    let mut c = login(server.ports.imap);
    sort_mailbox(&mut c);
    let table = [
        ("ARRIVAL", "2 4 3 5 1 6"),
        ("REVERSE ARRIVAL", "6 1 5 3 4 2"),
        // 1 and 6 were sent at the same instant (other zones): sequence
        // order, also under REVERSE. 4's Date: is invalid and 3 has none:
        // their internal dates stand in.
        ("DATE", "1 6 4 2 3 5"),
        ("REVERSE DATE", "5 3 2 4 1 6"),
        ("SIZE", "6 2 4 1 5 3"),
        ("REVERSE SIZE", "3 5 1 4 2 6"),
        // addr-mailbox, case-insensitive; 2 and 5 are both "amy".
        ("FROM", "2 5 3 6 4 1"),
        ("TO", "5 1 2 4 6 3"),
        ("CC", "2 4 3 6 1 5"),
        // Base subjects: AGENDA (3 with "(fwd)", 5), BUDGET (1 "Re:",
        // 2 "[team]", 6), ÉTÉ (4, encoded "Fwd: été").
        ("SUBJECT", "3 5 1 2 6 4"),
        ("REVERSE SUBJECT", "4 1 2 6 3 5"),
        ("SUBJECT REVERSE DATE", "5 3 2 1 6 4"),
        ("REVERSE SUBJECT SIZE", "4 6 2 1 5 3"),
        ("FROM SUBJECT REVERSE SIZE", "5 2 3 6 4 1"),
        // RFC 5957: display names, else the address.
        ("DISPLAYFROM", "1 2 5 3 6 4"),
        ("DISPLAYTO", "5 1 4 6 2 3"),
        ("REVERSE DISPLAYTO", "3 2 6 4 1 5"),
    ];
    for (criteria, want) in table {
        let got = c.only(&format!("SORT ({criteria}) UTF-8 ALL"));
        assert_eq!(got, format!("* SORT {want}"), "SORT ({criteria})");
    }
    // UID SORT answers with UIDs (one above the sequence numbers here).
    assert_eq!(c.only("UID SORT (SIZE) US-ASCII ALL"), "* SORT 7 3 5 2 6 4");
    assert_eq!(
        c.only("UID SORT (REVERSE DATE) utf-8 UID 1:*"),
        "* SORT 6 4 3 5 2 7"
    );
}

/// ESORT (RFC 5267 §3.2): the ESEARCH answer in sort order; MIN/MAX are
/// the first and last sorted, ALL keeps the order (ranges only where
/// consecutive numbers follow each other); PARTIAL (RFC 9394) too.
#[test]
fn esort_returns_an_esearch_in_sort_order() {
    let server = server_with_user();
    let mut c = login(server.ports.imap);
    assert!(c.ok("CAPABILITY").contains(" ESORT"));
    sort_mailbox(&mut c);
    // SIZE order is 6 2 4 1 5 3.
    let got = c.only("SORT RETURN (MIN MAX COUNT ALL) (SIZE) UTF-8 ALL");
    assert_eq!(
        got,
        format!(
            "* ESEARCH (TAG \"t{}\") MIN 6 MAX 3 ALL 6,2,4,1,5,3 COUNT 6",
            c.next_tag - 1
        )
    );
    // ARRIVAL is 2 4 3 5 1 6; UIDs are one more.
    let got = c.only("UID SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 1:4");
    // Messages 1-4 in REVERSE ARRIVAL: 1 3 4 2, as UIDs 2 4 5 3.
    assert_eq!(
        got,
        format!("* ESEARCH (TAG \"t{}\") UID ALL 2,4:5,3", c.next_tag - 1)
    );
    let got = c.only("SORT RETURN (PARTIAL 2:3) (SIZE) UTF-8 ALL");
    assert_eq!(
        got,
        format!("* ESEARCH (TAG \"t{}\") PARTIAL (2:3 2,4)", c.next_tag - 1)
    );
    let got = c.only("SORT RETURN () (SUBJECT) UTF-8 ALL");
    assert_eq!(
        got,
        format!("* ESEARCH (TAG \"t{}\") ALL 3,5,1:2,6,4", c.next_tag - 1)
    );
    // SAVE is SEARCH's; SORT refuses it.
    let reply = c.cmd("SORT RETURN (SAVE) (SIZE) UTF-8 ALL");
    assert!(reply.contains(" BAD "), "{reply}");
}

#[test]
fn sort_with_search_keys_and_errors() {
    let server = server_with_user();
    let mut c = login(server.ports.imap);
    sort_mailbox(&mut c);
    let table = [
        ("SORT (DATE) UTF-8 FROM amy", "* SORT 2 5"),
        (
            "SORT (REVERSE SIZE) UTF-8 SUBJECT budget NOT FROM amy",
            "* SORT 1 6",
        ),
        ("SORT (SUBJECT) UTF-8 SUBJECT \"été\"", "* SORT 4"),
        ("SORT (ARRIVAL) UTF-8 OR 1 6 SINCE 4-Jan-2024", "* SORT 1 6"),
        (
            "SORT (ARRIVAL) UTF-8 OR 2 SINCE 4-Jan-2024",
            "* SORT 2 5 1 6",
        ),
        ("SORT (ARRIVAL) UTF-8 2:4", "* SORT 2 4 3"),
        ("UID SORT (FROM) UTF-8 UID 2:4", "* SORT 3 4 2"),
        ("SORT (DATE) UTF-8 SUBJECT nothing-matches", "* SORT"),
    ];
    for (command, want) in table {
        assert_eq!(c.only(command), want, "{command}");
    }
    // MODSEQ in the key: the highest modseq comes along (RFC 7162); the
    // first such command also enables CONDSTORE (§3.1: HIGHESTMODSEQ).
    let r = c.ok("SORT (SIZE) UTF-8 MODSEQ 1");
    assert!(r.starts_with("* OK [HIGHESTMODSEQ "), "{r}");
    let r = c.only("SORT (SIZE) UTF-8 MODSEQ 1");
    assert!(r.starts_with("* SORT 6 2 4 1 5 3 (MODSEQ "), "{r}");
    assert_eq!(c.only("SORT (SIZE) UTF-8 MODSEQ 999999"), "* SORT");
    // A charset other than UTF-8 and US-ASCII, or none at all.
    let r = c.cmd("SORT (DATE) KOI8-R ALL");
    assert!(
        r.ends_with(" NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n"),
        "{r}"
    );
    let r = c.cmd("UID SORT (DATE) ALL");
    assert!(r.contains(" NO [BADCHARSET (UTF-8 US-ASCII)]"), "{r}");
    for bad in [
        "SORT DATE UTF-8 ALL",
        "SORT () UTF-8 ALL",
        "SORT (BOGUS) UTF-8 ALL",
        "SORT (REVERSE) UTF-8 ALL",
        "SORT (DATE) UTF-8",
        "SORT (DATE) UTF-8 BOGUS",
    ] {
        let r = c.cmd(bad);
        let tag = format!("t{} BAD ", c.next_tag - 1);
        assert!(r.starts_with(&tag) && r.lines().count() == 1, "{bad}: {r}");
    }
}

#[test]
fn sort_sends_no_expunge_but_uid_sort_does() {
    let server = server_with_user();
    let mut a = login(server.ports.imap);
    sort_mailbox(&mut a);
    let mut b = login(server.ports.imap);
    b.ok("SELECT INBOX");
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    assert!(b.ok("EXPUNGE").contains("* 1 EXPUNGE"));
    // The message is gone from the results, its number not yet reused.
    let r = a.ok("SORT (ARRIVAL) UTF-8 ALL");
    assert!(r.starts_with("* SORT 2 4 3 5 6\r\n"), "{r}");
    assert!(!r.contains("EXPUNGE"), "{r}");
    let r = a.ok("THREAD ORDEREDSUBJECT UTF-8 ALL");
    assert!(!r.contains("EXPUNGE"), "{r}");
    let r = a.ok("UID SORT (ARRIVAL) UTF-8 ALL");
    assert!(r.starts_with("* SORT 3 5 4 6 7\r\n"), "{r}");
    assert!(r.contains("* 1 EXPUNGE\r\n"), "{r}");
    assert_eq!(a.only("SORT (ARRIVAL) UTF-8 ALL"), "* SORT 1 3 2 4 5");
}

/// A mailing-list discussion: a reply tree, a second thread whose first
/// message we never got, and a broken client's reply without
/// References.
const THREAD_SET: &[(&str, &str)] = &[
    // 1
    (
        "Message-ID: <t1@example.com>\r\nSubject: Server migration\r\nDate: Wed, 10 Jan 2024 09:00:00 +0000\r\n",
        "",
    ),
    // 2: reply to 1.
    (
        "Message-ID: <t2@example.com>\r\nSubject: Re: Server migration\r\nDate: Wed, 10 Jan 2024 10:00:00 +0000\r\nIn-Reply-To: <t1@example.com>\r\nReferences: <t1@example.com>\r\n",
        "",
    ),
    // 3: reply to 2, the References folded.
    (
        "Message-ID: <t3@example.com>\r\nSubject: Re: Server migration\r\nDate: Wed, 10 Jan 2024 11:00:00 +0000\r\nReferences: <t1@example.com>\r\n\t<t2@example.com>\r\n",
        "",
    ),
    // 4: another reply to 1, sent before 3 (other zone).
    (
        "Message-ID: <t4@example.com>\r\nSubject: RE: Server migration\r\nDate: Wed, 10 Jan 2024 12:30:00 +0200\r\nReferences: <t1@example.com>\r\n",
        "",
    ),
    // 5
    (
        "Message-ID: <t5@example.com>\r\nSubject: Lunch?\r\nDate: Wed, 10 Jan 2024 12:00:00 +0000\r\n",
        "",
    ),
    // 6, 7: replies to a message not in the mailbox.
    (
        "Message-ID: <t6@example.com>\r\nSubject: Re: Quarterly report\r\nDate: Wed, 10 Jan 2024 13:00:00 +0000\r\nReferences: <missing@example.com>\r\n",
        "",
    ),
    (
        "Message-ID: <t7@example.com>\r\nSubject: Re: Quarterly report\r\nDate: Wed, 10 Jan 2024 08:00:00 +0000\r\nIn-Reply-To: <missing@example.com>\r\n",
        "",
    ),
    // 8: a reply whose client dropped the references: by subject.
    (
        "Message-ID: <t8@example.com>\r\nSubject: Re: Lunch?\r\nDate: Wed, 10 Jan 2024 12:30:00 +0000\r\n",
        "",
    ),
    // 9: a forward, no references: by subject, under 1.
    (
        "Message-ID: <t9@example.com>\r\nSubject: [ops] Fwd: Server migration\r\nDate: Wed, 10 Jan 2024 14:00:00 +0000\r\n",
        "",
    ),
    // 10: In-Reply-To only (and encoded).
    (
        "Message-ID: <t10@example.com>\r\nSubject: =?utf-8?q?Re=3A_Re=3A_Server_migration?=\r\nDate: Wed, 10 Jan 2024 15:00:00 +0000\r\nIn-Reply-To: <t3@example.com> (Carol's message)\r\n",
        "",
    ),
];

fn thread_mailbox(c: &mut Imap) {
    c.ok("CREATE Lists");
    shift_uids(c, "Lists");
    for (header, _) in THREAD_SET {
        c.append(
            "Lists",
            "20-Jan-2024 00:00:00 +0000",
            &format!("From: list@example.com\r\n{header}\r\nbody\r\n"),
        );
    }
    let select = c.ok("SELECT Lists");
    assert!(select.contains("* 10 EXISTS"), "{select}");
}

#[test]
fn thread_references_and_orderedsubject() {
    let server = server_with_user();
    let mut c = login(server.ports.imap);
    thread_mailbox(&mut c);
    // The dummy for <missing@example.com> keeps 7 and 6 together and
    // comes first (7 is the oldest message); 8 joins 5 and 9 joins 1 by
    // subject; siblings by sent date.
    assert_eq!(
        c.only("THREAD REFERENCES UTF-8 ALL"),
        "* THREAD ((7)(6))(1 (2 3 10)(4)(9))(5 8)"
    );
    assert_eq!(
        c.only("UID THREAD REFERENCES UTF-8 ALL"),
        "* THREAD ((8)(7))(2 (3 4 11)(5)(10))(6 9)"
    );
    // Search keys choose the messages threaded.
    assert_eq!(
        c.only("THREAD REFERENCES US-ASCII NOT SUBJECT lunch"),
        "* THREAD ((7)(6))(1 (2 3 10)(4)(9))"
    );
    // Without 1, its replies hang from a dummy, which the forward joins.
    assert_eq!(
        c.only("THREAD REFERENCES UTF-8 NOT 1"),
        "* THREAD ((7)(6))((2 3 10)(4)(9))(5 8)"
    );
    assert_eq!(c.only("THREAD REFERENCES UTF-8 5"), "* THREAD (5)");
    assert_eq!(
        c.only("THREAD REFERENCES UTF-8 SUBJECT nothing-matches"),
        "* THREAD"
    );
    // ORDEREDSUBJECT: one thread per base subject, by first message.
    assert_eq!(
        c.only("THREAD ORDEREDSUBJECT UTF-8 ALL"),
        "* THREAD (7 6)(1 (2)(4)(3)(9)(10))(5 8)"
    );
    assert_eq!(
        c.only("UID THREAD ORDEREDSUBJECT UTF-8 OR 5 8"),
        "* THREAD (6 9)"
    );
    // Errors.
    let r = c.cmd("THREAD REFERENCES KOI8-R ALL");
    assert!(r.contains(" NO [BADCHARSET (UTF-8 US-ASCII)]"), "{r}");
    for bad in [
        "THREAD FOO UTF-8 ALL",
        "THREAD UTF-8 ALL",
        "THREAD REFERENCES UTF-8",
        "UID THREAD",
    ] {
        let r = c.cmd(bad);
        let tag = format!("t{} BAD ", c.next_tag - 1);
        assert!(r.starts_with(&tag) && r.lines().count() == 1, "{bad}: {r}");
    }
}

const IMAPLIB_SCRIPT: &str = r#"
import imaplib, sys
user, password, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
M = imaplib.IMAP4('127.0.0.1', port)
M.login(user, password)
assert 'SORT' in M.capabilities and 'THREAD=REFERENCES' in M.capabilities, M.capabilities
typ, data = M.select('Lists'); assert typ == 'OK', data
print(M.sort('(REVERSE DATE)', 'UTF-8', 'ALL'))
print(M.sort('(SUBJECT DATE)', 'UTF-8', 'NOT', 'SUBJECT', 'lunch'))
print(M.thread('REFERENCES', 'UTF-8', 'ALL'))
print(M.uid('THREAD', 'ORDEREDSUBJECT', 'UTF-8', 'ALL'))
print(M.uid('SORT', '(DATE)', 'UTF-8', 'SUBJECT', 'lunch'))
print(M.sort('(DATE)', 'KOI8-R', 'ALL'))
M.logout()
"#;

#[test]
fn python_imaplib_sort_and_thread() {
    let server = server_with_user();
    let mut c = login(server.ports.imap);
    thread_mailbox(&mut c);
    let out = python(
        IMAPLIB_SCRIPT,
        &[USER, PASSWORD, &server.ports.imap.to_string()],
    );
    assert_success(&out, "imaplib SORT/THREAD");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "('OK', [b'10 9 6 8 5 3 4 2 1 7'])\n\
('OK', [b'7 6 1 2 4 3 9 10'])\n\
('OK', [b'((7)(6))(1 (2 3 10)(4)(9))(5 8)'])\n\
('OK', [b'(8 7)(2 (3)(5)(4)(10)(11))(6 9)'])\n\
('OK', [b'6 9'])\n\
('NO', [b'[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset'])\n"
    );
}
