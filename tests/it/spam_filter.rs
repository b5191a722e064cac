//! The spam filter (issue 9): GTUBE into Junk with `X-Spam-Status: Yes`,
//! DNS list and URI blocklist hits served by the loopback DNS server, the
//! user's block list, the reject threshold when all recipients agree,
//! learning from an IMAP MOVE into Junk (and `merpati spam train`), and
//! bad input that still gets a verdict. Clients connect from 127.0.0.x
//! outside `mynetworks = ["127.0.0.1/32"]`.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::{Builder, Server, Smtp, wait_until};
use crate::imap_client::Imap;
use std::net::Ipv4Addr;
use std::time::Duration;

const LISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2); // in bl.test
const CLEAN: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

fn start(extra_spam: &str) -> (DnsServer, Server) {
    let dns = DnsServer::start(
        &["test."],
        vec![
            Rr::A("2.0.0.127.bl.test.", Ipv4Addr::new(127, 0, 0, 2)),
            Rr::A("spamlink.test.uribl.test.", Ipv4Addr::new(127, 0, 0, 2)),
        ],
    );
    let server = Builder::default()
        .top("mydestination = [\"ours.test\"]\nmynetworks = [\"127.0.0.1/32\"]")
        .smtp("greet_pause = \"0s\"")
        .dns(&dns.config())
        .mailauth("verify = false\ngenerate_keys = false")
        .tail(&format!(
            "[spam]\ndnsbl_sites = [\"bl.test*2\"]\nuribl_sites = [\"uribl.test*3\"]\n{extra_spam}"
        ))
        .start();
    server.add_user("bob@ours.test", "bob-pw");
    server.add_user("carol@ours.test", "carol-pw");
    (dns, server)
}

/// A well-formed message (Date, Message-ID, From, To, Subject).
fn message(from: &str, id: &str, subject: &str, body: &str) -> String {
    format!(
        "Date: {}\r\nMessage-ID: <{id}@sender.test>\r\nFrom: <{from}>\r\nTo: <bob@ours.test>\r\nSubject: {subject}\r\n\r\n{body}\r\n",
        merpati::rfc5322::format_date(merpati::rfc5322::now_unix())
    )
}

fn send(server: &Server, source: Ipv4Addr, from: &str, to: &[&str], text: &str) -> String {
    let mut c = Smtp::connect_from(server.port, source);
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO mx.sender.test").starts_with("250"));
    let reply = c.send_mail(from, to, text);
    c.cmd("QUIT");
    reply
}

/// Sends `text` from a clean client to bob; it must be accepted.
#[track_caller]
fn accepted(server: &Server, from: &str, text: &str) {
    let reply = send(server, CLEAN, from, &["bob@ours.test"], text);
    assert!(reply.starts_with("250"), "{reply}");
}

fn list(server: &Server, address: &str, mailbox: &str) -> Vec<u32> {
    server
        .cli_ok(&["mailbox", "list", address, mailbox])
        .lines()
        .filter_map(|l| l.split('\t').next()?.parse().ok())
        .collect()
}

/// The newest message of `mailbox`, waiting up to 30 s for the `count`th.
fn newest(server: &Server, address: &str, mailbox: &str, count: usize) -> String {
    let mut uids = Vec::new();
    wait_until(Duration::from_secs(30), || {
        uids = list(server, address, mailbox);
        uids.len() >= count
    });
    let uid = uids
        .last()
        .copied()
        .unwrap_or_else(|| panic!("no mail in {address}/{mailbox}:\n{}", server.log()));
    server.cli_ok(&["mailbox", "cat", address, &uid.to_string(), mailbox])
}

fn status(message: &str) -> String {
    let start = message.find("X-Spam-Status: ").expect("X-Spam-Status");
    let rest = &message[start..];
    let end = rest
        .find("\r\nX-Spam-Score")
        .expect("X-Spam-Score after it");
    rest[..end].replace("\r\n\t", " ")
}

fn score(message: &str) -> f64 {
    let start = message.find("X-Spam-Score: ").expect("X-Spam-Score") + 14;
    let rest = &message[start..];
    rest[..rest.find("\r\n").unwrap_or(rest.len())]
        .parse()
        .expect("a number")
}

#[test]
fn gtube_dns_lists_block_lists_and_the_reject_threshold() {
    let (_dns, server) = start("reject_score = 1050.0");
    // A clean message: INBOX, "No", with our fields only.
    let clean = message("friend@sender.test", "clean1", "Lunch", "See you at noon.");
    let forged = format!("X-Spam-Status: No, score=-100.0 required=5.0 tests=FORGED\r\n{clean}");
    accepted(&server, "friend@sender.test", &forged);
    let got = newest(&server, "bob@ours.test", "INBOX", 1);
    assert!(
        status(&got).starts_with("X-Spam-Status: No, score="),
        "{got}"
    );
    assert_eq!(got.matches("X-Spam-Status:").count(), 1, "{got}");

    // GTUBE: Junk, "Yes".
    let gtube = message("x@sender.test", "gtube1", "test", GTUBE);
    assert!(send(&server, CLEAN, "x@sender.test", &["bob@ours.test"], &gtube).starts_with("250"));
    let junk = newest(&server, "bob@ours.test", "Junk", 1);
    let s = status(&junk);
    assert!(s.starts_with("X-Spam-Status: Yes, score=100"), "{s}");
    assert!(s.contains("GTUBE"), "{s}");

    // A listed client and a listed link domain.
    let links = message(
        "y@sender.test",
        "links1",
        "offer",
        "Go to http://www.spamlink.test/buy now, or http://fine.test/.",
    );
    assert!(send(&server, LISTED, "y@sender.test", &["bob@ours.test"], &links).starts_with("250"));
    let got = newest(&server, "bob@ours.test", "Junk", 2);
    let s = status(&got);
    assert!(
        s.contains("RCVD_IN_BL_TEST") && s.contains("URIBL_URIBL_TEST"),
        "{s}"
    );
    assert!(score(&got) >= 5.0, "{s}");

    // Bob blocks evil.test: to Junk. With GTUBE too, past reject_score for
    // the only recipient: refused. With carol (who blocks nothing) as a
    // second recipient the recipients disagree: accepted for both.
    let out = server.cli_ok(&["spam", "block", "bob@ours.test", "evil.test"]);
    assert!(out.contains("evil.test added to the block list"), "{out}");
    let blocked = message("boss@mail.evil.test", "blocked1", "hello", "Hi Bob.");
    accepted(&server, "boss@mail.evil.test", &blocked);
    let got = newest(&server, "bob@ours.test", "Junk", 3);
    assert!(status(&got).contains("USER_IN_BLOCKLIST"), "{got}");
    let both = message("boss@mail.evil.test", "blocked2", "hello", GTUBE);
    let reply = send(
        &server,
        CLEAN,
        "boss@mail.evil.test",
        &["bob@ours.test"],
        &both,
    );
    assert!(
        reply.starts_with("550 5.7.1 Message content rejected as spam (score 110"),
        "{reply}"
    );
    let reply = send(
        &server,
        CLEAN,
        "boss@mail.evil.test",
        &["bob@ours.test", "carol@ours.test"],
        &both,
    );
    assert!(reply.starts_with("250"), "{reply}");
    newest(&server, "carol@ours.test", "Junk", 1);
    let shown = server.cli_ok(&["spam", "show", "bob@ours.test"]);
    assert!(shown.contains("block evil.test"), "{shown}");
    let log = server.log();
    assert!(
        log.contains("spam: from=<x@sender.test> to=<bob@ours.test> Yes, score="),
        "{log}"
    );
}

#[test]
fn moving_into_junk_teaches_the_filter() {
    let (_dns, server) = start("min_learns = 1");
    let pitch = "Cheap pills casino winner, claim your prize money today, limited offer";
    let first = message("promo@sender.test", "promo1", "You are a winner", pitch);
    accepted(&server, "promo@sender.test", &first);
    let ham = message(
        "colleague@sender.test",
        "ham1",
        "Minutes of the meeting",
        "Attached are the minutes of yesterday's project meeting and the agenda for next week",
    );
    accepted(&server, "colleague@sender.test", &ham);
    let before = newest(&server, "bob@ours.test", "INBOX", 2);
    assert!(!status(&before).contains("BAYES"), "{before}");

    // Bob moves the pitch into Junk (UID 1) and teaches ham in bulk.
    let mut imap = Imap::login_as(server.ports.imap, "bob@ours.test", "bob-pw");
    imap.ok("SELECT INBOX");
    imap.ok("UID MOVE 1 Junk");
    imap.ok("LOGOUT");
    assert!(
        wait_until(Duration::from_secs(20), || server
            .cli_ok(&["spam", "show", "bob@ours.test"])
            .contains("1 spam")),
        "{}",
        server.log()
    );
    let trained = server.cli_ok(&["spam", "train", "--ham", "bob@ours.test", "INBOX"]);
    assert!(trained.contains("learnt 1 as ham"), "{trained}");

    // The next similar message scores higher, with a Bayes verdict.
    let second = message("promo@sender.test", "promo2", "You are a winner", pitch);
    accepted(&server, "promo@sender.test", &second);
    let after = newest(&server, "bob@ours.test", "INBOX", 2);
    let got = if after.contains("promo2") {
        after
    } else {
        newest(&server, "bob@ours.test", "Junk", 2)
    };
    assert!(got.contains("promo2"), "{got}");
    let s = status(&got);
    assert!(s.contains("BAYES_99") || s.contains("BAYES_95"), "{s}");
    let moved = newest(&server, "bob@ours.test", "Junk", 1);
    assert!(
        score(&got) > score(&moved) + 2.9,
        "{s} vs {}",
        status(&moved)
    );
    assert!(
        server
            .log()
            .contains("spam: learnt 1 message(s) as spam for bob (IMAP)")
    );

    // Moving it back out of Junk teaches ham: the same message moves.
    let mut imap = Imap::login_as(server.ports.imap, "bob@ours.test", "bob-pw");
    imap.ok("SELECT Junk");
    imap.ok("UID MOVE 1 INBOX");
    imap.ok("LOGOUT");
    assert!(
        wait_until(Duration::from_secs(20), || server
            .cli_ok(&["spam", "show", "bob@ours.test"])
            .contains("learnt: 0 spam, 2 ham")),
        "{}",
        server.cli_ok(&["spam", "show", "bob@ours.test"])
    );
}

#[test]
fn bad_input_gets_a_verdict() {
    let (_dns, server) = start("");
    let folded: String = (0..4000)
        .map(|n| format!("\r\n\tpart{n} of a long header"))
        .collect();
    let huge_header = format!("Subject: big{folded}\r\nFrom: <a@sender.test>\r\n\r\nbody\r\n");
    let links: String = (0..10_000).map(|n| format!("http://d{n}.test/ ")).collect();
    let many_links = message("a@sender.test", "links", "links", &links);
    let broken_mime = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\nSubject: broken\r\n\r\n--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n".to_string();
    let garbage: String = (0..50_000u32)
        .map(|i| char::from_u32(0x80 + (i * 7919 % 0x700)).unwrap_or('x'))
        .collect::<Vec<char>>()
        .chunks(60)
        .map(|line| line.iter().collect::<String>().replace('.', "x") + "\r\n")
        .collect();
    let garbage = format!("Subject: garbage\r\n\r\n{garbage}");
    for (n, text) in [huge_header, many_links, broken_mime, garbage]
        .iter()
        .enumerate()
    {
        let reply = send(&server, CLEAN, "a@sender.test", &["bob@ours.test"], text);
        assert!(reply.starts_with("250"), "message {n}: {reply}");
    }
    assert!(wait_until(Duration::from_secs(30), || {
        list(&server, "bob@ours.test", "INBOX").len() + list(&server, "bob@ours.test", "Junk").len()
            >= 4
    }));
    assert_eq!(
        server.log().matches("spam: from=<a@sender.test>").count(),
        4
    );
}
