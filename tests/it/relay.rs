//! Outbound delivery end to end: instance A finds instance B by the MX
//! records of a DNS server on loopback, delivers over SMTP (STARTTLS with
//! B's self-signed certificate), retries, bounces, and uses a smarthost.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::*;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const LOCALHOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Nothing listens on this loopback address: connections are refused.
const NOWHERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Instance B: the receiving side, local domain `b.test`.
fn instance_b() -> Server {
    let b = Builder::default()
        .top("mydestination = [\"b.test\", \"$myhostname\", \"localhost\"]")
        .start();
    b.add_user("bob@b.test", "bob-pw");
    b
}

/// Instance A: delivers by MX through `dns`, to B's SMTP port.
fn instance_a(dns: &DnsServer, b: &Server, queue: &str) -> Server {
    instance_a_with_dead_time(dns, b, queue, "1s")
}

/// Instance A with the given `relay.dead_time`.
fn instance_a_with_dead_time(dns: &DnsServer, b: &Server, queue: &str, dead_time: &str) -> Server {
    let a = Builder::default()
        .dns(&dns.config())
        .tail(&format!(
            "[relay]\nport = {}\ndead_time = \"{dead_time}\"",
            b.port
        ))
        .queue(queue)
        .start();
    a.add_user("alice@localhost", "alice-pw");
    a
}

fn zone() -> DnsServer {
    DnsServer::start(
        &["b.test.", "fallback.test.", "implicit.test.", "null.test."],
        vec![
            Rr::Mx("b.test.", 10, "mx.b.test."),
            Rr::A("mx.b.test.", LOCALHOST),
            // Preference 5 points nowhere; 20 works: the fallback is used.
            Rr::Mx("fallback.test.", 5, "dead.fallback.test."),
            Rr::A("dead.fallback.test.", NOWHERE),
            Rr::Mx("fallback.test.", 20, "live.fallback.test."),
            Rr::A("live.fallback.test.", LOCALHOST),
            // No MX: the domain's own address (RFC 5321 §5.1).
            Rr::A("implicit.test.", LOCALHOST),
            // RFC 7505 null MX.
            Rr::Mx("null.test.", 0, "."),
        ],
    )
}

fn wait_for_log(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn submission_on_a_reaches_b_by_mx_and_b_reads_it_over_imap() {
    let dns = zone();
    let b = instance_b();
    let a = instance_a(&dns, &b, "");
    let submit = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.starttls(context=ctx)
s.login("alice@localhost", "alice-pw")
s.sendmail("alice@localhost", ["bob@b.test"],
    "From: alice@localhost\r\nTo: bob@b.test\r\nSubject: across the wire\r\n\r\nHalo Bob!\r\n")
s.quit()
"#;
    assert_success(
        &python(submit, &[&a.ports.submission.to_string()]),
        "submission on A",
    );
    assert_eq!(
        b.wait_for_mail("bob@b.test", 1).len(),
        1,
        "A's log:\n{}",
        a.log()
    );
    let log = wait_for_log(&a, "status=sent");
    assert!(
        log.contains("to=<bob@b.test>") && log.contains("relay=mx.b.test[127.0.0.1]"),
        "{log}"
    );
    assert!(
        log.contains("TLS with mx.b.test"),
        "STARTTLS to the self-signed peer: {log}"
    );
    let read = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("bob@b.test", "bob-pw")
m.select("INBOX")
typ, data = m.fetch("1", "(BODY.PEEK[])")
sys.stdout.write(data[0][1].decode())
m.logout()
"#;
    let out = python(read, &[&b.ports.imap.to_string()]);
    assert_success(&out, "IMAP on B");
    let message = String::from_utf8_lossy(&out.stdout);
    assert!(message.contains("Subject: across the wire"), "{message}");
    assert!(message.contains("Halo Bob!"), "{message}");
    assert!(
        message.contains("with ESMTPS id"),
        "B's Received: line notes TLS: {message}"
    );
    assert!(
        message.contains("with ESMTPSA id"),
        "A's Received: line notes AUTH: {message}"
    );
}

#[test]
fn mx_fallback_implicit_mx_and_null_mx() {
    let dns = zone();
    let b = instance_b();
    let a = instance_a(&dns, &b, "");
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    for domain in ["fallback.test", "implicit.test", "null.test"] {
        let reply = c.send_mail(
            "alice@localhost",
            &[&format!("someone@{domain}")],
            "Subject: t\r\n\r\nx\r\n",
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    // fallback.test: the preferred MX refuses connections, the next one
    // (B, which accepts it from loopback, its mynetworks) takes it.
    let log = wait_for_log(&a, "to=<someone@fallback.test>");
    assert!(
        log.contains("dead.fallback.test[127.0.0.2]"),
        "tried first: {log}"
    );
    assert!(log.contains("relay=live.fallback.test[127.0.0.1]"), "{log}");
    // implicit.test has no MX: its own address is used (RFC 5321 §5.1).
    let log = wait_for_log(&a, "to=<someone@implicit.test>");
    assert!(log.contains("relay=implicit.test[127.0.0.1]"), "{log}");
    let b_log = wait_for_log(&b, "to=<someone@implicit.test>");
    assert!(
        b_log.contains("to=<someone@fallback.test>"),
        "B received both: {b_log}"
    );
    // null.test publishes a null MX (RFC 7505): bounced at once.
    let log = wait_for_log(&a, "to=<someone@null.test>");
    assert!(log.contains("dsn=5.1.10, status=bounced"), "{log}");
    let uids = a.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", a.log());
    let dsn = a.message("alice@localhost", uids[0]);
    assert!(
        dsn.contains("Final-Recipient: rfc822; someone@null.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.1.10"), "{dsn}");
}

#[test]
fn refused_recipient_bounces_with_a_dsn_to_the_sender() {
    let dns = zone();
    let b = instance_b();
    let a = instance_a(&dns, &b, "");
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    assert!(
        c.cmd("MAIL FROM:<alice@localhost> RET=HDRS ENVID=env-42")
            .starts_with("250")
    );
    assert!(
        c.cmd("RCPT TO:<nobody@b.test> NOTIFY=FAILURE ORCPT=rfc822;nobody@b.test")
            .starts_with("250")
    );
    assert!(c.cmd("RCPT TO:<bob@b.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send_raw(b"Subject: partly refused\r\n\r\nsecret body\r\n");
    assert!(c.cmd(".").starts_with("250"));
    assert_eq!(b.wait_for_mail("bob@b.test", 1).len(), 1);
    let uids = a.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", a.log());
    let dsn = a.message("alice@localhost", uids[0]);
    assert!(
        dsn.contains("Subject: Undelivered Mail Returned to Sender"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Content-Type: multipart/report; report-type=delivery-status"),
        "{dsn}"
    );
    assert!(dsn.contains("Original-Envelope-Id: env-42"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@b.test"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Original-Recipient: rfc822; nobody@b.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed\r\nStatus: 5.1.1"), "{dsn}");
    assert!(dsn.contains("Remote-MTA: dns; mx.b.test"), "{dsn}");
    assert!(
        dsn.contains("Return-Path: <>"),
        "bounces have the null sender: {dsn}"
    );
    assert!(
        !dsn.contains("secret body"),
        "RET=HDRS: headers only: {dsn}"
    );
}

#[test]
fn unreachable_destination_is_deferred_marked_dead_and_delivered_after_flush() {
    let dns = zone();
    let mut b = instance_b();
    let a = instance_a(&dns, &b, "min_backoff = \"1h\"\nmax_backoff = \"2h\"");
    b.kill9();
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    let id = queue_id(&c.send_mail(
        "alice@localhost",
        &["bob@b.test"],
        "Subject: later\r\n\r\nx\r\n",
    ));
    let log = wait_for_log(&a, "status=deferred");
    assert!(
        log.contains(&format!("{id}: to=<bob@b.test>")) && log.contains("marked dead"),
        "{log}"
    );
    // While dead, more mail for b.test is deferred without connecting.
    let id2 = queue_id(&c.send_mail(
        "alice@localhost",
        &["bob@b.test"],
        "Subject: later too\r\n\r\nx\r\n",
    ));
    let log = wait_for_log(&a, "is not responding");
    assert!(log.contains(&format!("{id2}: to=<bob@b.test>")), "{log}");
    let listing = a.cli_ok(&["queue", "list"]);
    assert!(listing.contains(&id) && listing.contains(&id2), "{listing}");
    // B comes back; after the dead time a flush delivers both.
    b.spawn();
    std::thread::sleep(Duration::from_millis(1100));
    a.cli_ok(&["queue", "flush"]);
    assert_eq!(b.wait_for_mail("bob@b.test", 2).len(), 2, "{}", a.log());
}

#[test]
fn queue_lifetime_expiry_bounces() {
    let dns = zone();
    let mut b = instance_b();
    let a = instance_a(
        &dns,
        &b,
        "min_backoff = \"1s\"\nmax_backoff = \"1s\"\nmax_lifetime = \"2s\"\nscan_interval = \"1s\"",
    );
    b.kill9();
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    c.send_mail(
        "alice@localhost",
        &["bob@b.test"],
        "Subject: too late\r\n\r\nx\r\n",
    );
    let uids = a.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", a.log());
    let dsn = a.message("alice@localhost", uids[0]);
    assert!(dsn.contains("Status: 5.4.7"), "{dsn}");
    assert!(a.cli_ok(&["queue", "list"]).contains("Mail queue is empty"));
}

#[test]
fn smarthost_with_auth_over_tls() {
    let b = instance_b();
    b.add_user("relayacct@b.test", "relay-pw");
    let a = Builder::default()
        .tail(&format!(
            "[relay]\nrelayhost = \"127.0.0.1:{}\"\nrelayhost_username = \"relayacct@b.test\"\nrelayhost_password = \"relay-pw\"\nrelayhost_require_tls = true",
            b.ports.submission
        ))
        .start();
    let out = a.cli_with_input(
        &["sendmail", "-f", "relayacct@b.test", "bob@b.test"],
        b"Subject: via the smarthost\n\nhello\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        b.wait_for_mail("bob@b.test", 1).len(),
        1,
        "A:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    let message = b.message("bob@b.test", 1);
    assert!(message.contains("Subject: via the smarthost"), "{message}");
    assert!(
        message.contains("with ESMTPSA id"),
        "authenticated over TLS: {message}"
    );
    assert!(
        a.log().contains(&format!(
            "relay=127.0.0.1[127.0.0.1]:{}",
            b.ports.submission
        )),
        "{}",
        a.log()
    );
}

#[test]
fn a_4xx_recipient_is_deferred_then_retried_and_delivered() {
    let dns = zone();
    // B takes one recipient per transaction and answers 452 4.5.3 to the
    // rest; A's client sends both in one transaction (relay.max_recipients
    // is 50), so the second one is deferred and delivered on the retry.
    let b = Builder::default()
        .top("mydestination = [\"b.test\", \"$myhostname\", \"localhost\"]")
        .smtp("max_recipients = 1")
        .start();
    b.add_user("bob@b.test", "pw");
    b.add_user("carol@b.test", "pw");
    let a = instance_a(&dns, &b, "min_backoff = \"1h\"\nmax_backoff = \"2h\"");
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    c.send_mail(
        "alice@localhost",
        &["bob@b.test", "carol@b.test"],
        "Subject: two\r\n\r\nx\r\n",
    );
    assert_eq!(b.wait_for_mail("bob@b.test", 1).len(), 1, "{}", a.log());
    let log = wait_for_log(&a, "status=deferred");
    assert!(
        log.contains("to=<carol@b.test>") && log.contains("dsn=4.5.3"),
        "{log}"
    );
    let listing = a.cli_ok(&["queue", "list"]);
    assert!(
        listing.contains("carol@b.test") && !listing.contains("bob@b.test"),
        "{listing}"
    );
    a.cli_ok(&["queue", "flush"]);
    assert_eq!(b.wait_for_mail("carol@b.test", 1).len(), 1, "{}", a.log());
    assert_eq!(b.uids("bob@b.test").len(), 1, "bob got no second copy");
}

#[test]
fn mx_pointing_back_at_ourselves_bounces() {
    let b = instance_b();
    // loop.test's MX is A itself (127.0.0.1 on A's own SMTP port).
    let dns = DnsServer::start(
        &["loop.test."],
        vec![
            Rr::Mx("loop.test.", 10, "mx.loop.test."),
            Rr::A("mx.loop.test.", LOCALHOST),
        ],
    );
    let a_port = free_port();
    let a = Builder::default()
        .dns(&dns.config())
        .smtp_port(a_port)
        .tail(&format!("[relay]\nport = {a_port}"))
        .start();
    drop(b);
    a.add_user("alice@localhost", "pw");
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    c.send_mail(
        "alice@localhost",
        &["x@loop.test"],
        "Subject: loop\r\n\r\nx\r\n",
    );
    let log = wait_for_log(&a, "to=<x@loop.test>");
    assert!(log.contains("dsn=5.4.6"), "{log}");
}

#[test]
fn one_delay_warning_while_mail_waits() {
    let dns = zone();
    let mut b = instance_b();
    let a = instance_a(
        &dns,
        &b,
        "min_backoff = \"1s\"\nmax_backoff = \"1s\"\nscan_interval = \"1s\"\ndelay_warning = \"1s\"",
    );
    b.kill9();
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    c.send_mail(
        "alice@localhost",
        &["bob@b.test"],
        "Subject: slow\r\n\r\nx\r\n",
    );
    let uids = a.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", a.log());
    let dsn = a.message("alice@localhost", uids[0]);
    assert!(
        dsn.contains("Subject: Delayed Mail (still being retried)"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: delayed"), "{dsn}");
    // Later attempts send no second warning; the message is still queued.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(a.uids("alice@localhost").len(), 1, "one warning only");
    assert!(a.cli_ok(&["queue", "list"]).contains("bob@b.test"));
}

#[test]
fn a_backlog_for_one_destination_shares_one_connection() {
    let dns = zone();
    let b = instance_b();
    // One delivery at a time: the three messages follow each other, each
    // on the connection the previous one left idle.
    let a = Builder::default()
        .dns(&dns.config())
        .tail(&format!(
            "[relay]\nport = {}\ninitial_destination_concurrency = 1\n\
             destination_concurrency_limit = 1",
            b.port
        ))
        .start();
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    const MESSAGES: usize = 3;
    for n in 0..MESSAGES {
        c.send_mail(
            "alice@localhost",
            &["bob@b.test"],
            &format!("Subject: backlog {n}\r\n\r\nx\r\n"),
        );
    }
    c.cmd("QUIT");
    assert_eq!(
        b.wait_for_mail("bob@b.test", MESSAGES).len(),
        MESSAGES,
        "{}",
        a.log()
    );
    // B's smtpd sessions (connections) that received a message; the
    // harness's own readiness probe connects without sending any.
    let log = b.log();
    let received: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("smtpd{session=") && l.contains("message-id="))
        .filter_map(|l| l.split("smtpd{session=").nth(1)?.split(' ').next())
        .collect();
    let mut sessions = received.clone();
    sessions.sort_unstable();
    sessions.dedup();
    assert_eq!(received.len(), MESSAGES, "{log}");
    assert!(
        sessions.len() < MESSAGES,
        "{} connections for {MESSAGES} messages:\n{log}",
        sessions.len()
    );
}

/// `queue flush` forgets dead marks, as `postqueue -f` does: the admin
/// says the peer is back, so the mail goes now, not after `dead_time`.
#[test]
fn a_flush_forgets_dead_destinations() {
    let dns = zone();
    let mut b = instance_b();
    let a = instance_a_with_dead_time(&dns, &b, "min_backoff = \"1h\"\nmax_backoff = \"2h\"", "1h");
    b.kill9();
    let mut c = a.connect();
    c.reply();
    c.cmd("EHLO client");
    let id = queue_id(&c.send_mail(
        "alice@localhost",
        &["bob@b.test"],
        "Subject: after the fix\r\n\r\nx\r\n",
    ));
    let log = wait_for_log(&a, "marked dead");
    assert!(log.contains(&format!("{id}: to=<bob@b.test>")), "{log}");
    b.spawn();
    a.cli_ok(&["queue", "flush"]);
    assert_eq!(b.wait_for_mail("bob@b.test", 1).len(), 1, "{}", a.log());
    assert!(
        a.log().contains("dead mark cleared by a queue flush"),
        "{}",
        a.log()
    );
}
