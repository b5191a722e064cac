//! SMTP protocol behaviour over raw sockets: relay control, recipient and
//! size limits, line handling, bare LF and SMTP smuggling, pre-greeting and
//! pipelining discipline, timeouts and error limits, BDAT, DSN, the minor
//! verbs, and the STARTTLS plaintext-injection defence (CVE-2011-0411).

use crate::harness::*;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers

/// Connects and reads the 220 greeting.
fn greeted(server: &Server) -> Smtp {
    let mut c = server.connect();
    let greeting = c.reply();
    expect(&greeting, "220 ");
    c
}

/// Connects until greeted: the harness's readiness probe (a connection
/// closed at once) may hold a connection slot for a moment after start.
fn admitted(server: &Server) -> Smtp {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = server.connect();
        let greeting = c.reply();
        if greeting.starts_with("220 ") {
            return c;
        }
        expect(&greeting, "421 4.7.0 ");
        assert!(Instant::now() < deadline, "never admitted: {greeting}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects, reads the greeting and says EHLO.
fn ehloed(server: &Server) -> Smtp {
    let mut c = greeted(server);
    let ehlo = c.cmd("EHLO client.example");
    expect(&ehlo, &format!("250-{HOSTNAME}\r\n"));
    c
}

/// MAIL, RCPT and DATA, each answered with its usual success reply.
#[track_caller]
fn start_data(c: &mut Smtp, from: &str, to: &str) {
    assert_eq!(c.cmd(&format!("MAIL FROM:<{from}>")), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")), "250 2.1.5 Ok\r\n");
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
}

#[track_caller]
fn expect(reply: &str, prefix: &str) {
    assert!(
        reply.starts_with(prefix),
        "expected a reply starting with {prefix:?}, got {reply:?}"
    );
}

/// Waits (generously) until `merpati queue list` reports an empty queue.
fn wait_queue_empty(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listing = server.cli_ok(&["queue", "list"]);
        if listing.contains("Mail queue is empty") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queue did not drain:\n{listing}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for exactly one message in `address` and returns it.
fn only_message(server: &Server, address: &str) -> String {
    let uids = server.wait_for_mail(address, 1);
    assert_eq!(uids.len(), 1, "{address}: {uids:?}\n{}", server.log());
    server.message(address, uids[0])
}

/// Proves that a refused message was never queued: a marker sent afterwards
/// on the same session arrives, the queue drains, and the marker is all
/// that `rcpt` ever received.
fn assert_only_marker_arrives(server: &Server, c: &mut Smtp, rcpt: &str) {
    let queued = c.send_mail(
        "marker@localhost",
        &[rcpt],
        "Subject: marker\r\n\r\nmarker\r\n",
    );
    expect(&queued, "250 2.0.0 Ok: queued as ");
    let uids = server.wait_for_mail(rcpt, 1);
    assert!(!uids.is_empty(), "marker never arrived:\n{}", server.log());
    wait_queue_empty(server);
    let uids = server.uids(rcpt);
    assert_eq!(uids.len(), 1, "{rcpt} got more than the marker: {uids:?}");
    let message = server.message(rcpt, uids[0]);
    assert!(message.contains("Subject: marker\r\n"), "{message}");
}

#[track_caller]
fn assert_crlf_only(message: &str) {
    let bytes = message.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            assert!(
                i > 0 && bytes[i - 1] == b'\r',
                "bare LF at byte {i} of the stored message: {message:?}"
            );
        }
    }
}

fn outside_mynetworks(greet_pause: &str) -> Builder {
    Builder::default()
        .top("mynetworks = [\"192.0.2.0/24\"]")
        .smtp(&format!("greet_pause = \"{greet_pause}\""))
}

// ---------------------------------------------------------------------------
// 1. Relay control and AUTH on port 25

#[test]
fn relay_denied_outside_mynetworks_but_local_recipients_accepted() {
    let server = outside_mynetworks("0s").start();
    server.add_user("alice@localhost", "secret");
    server.add_user("bob@localhost", "secret");
    let mut c = ehloed(&server);
    // Postfix 3's default smtpd_relay_restrictions end in
    // defer_unauth_destination: 454, so a mistake in the local domains
    // delays mail instead of bouncing it.
    assert_eq!(c.cmd("MAIL FROM:<someone@example.org>"), "250 2.1.0 Ok\r\n");
    assert_eq!(
        c.cmd("RCPT TO:<x@example.com>"),
        "454 4.7.1 <x@example.com>: Relay access denied\r\n"
    );
    // Case and source routes must not open a way around relay control.
    expect(&c.cmd("RCPT TO:<X@EXAMPLE.COM>"), "454 4.7.1 ");
    expect(&c.cmd("RCPT TO:<@localhost:x@example.com>"), "454 4.7.1 ");
    // Our own domains are still open to the world.
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>"), "250 2.1.5 Ok\r\n");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<bob@{HOSTNAME}>")),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: from outside\r\n\r\nhello\r\n");
    expect(&c.cmd("."), "250 2.0.0 Ok: queued as ");
    for rcpt in ["alice@localhost", "bob@localhost"] {
        let message = only_message(&server, rcpt);
        assert!(message.contains("Subject: from outside\r\n"), "{message}");
    }
    wait_queue_empty(&server);
    let log = server.log();
    // Refused, logged as Postfix does, and never a delivery attempt.
    assert!(!log.contains("to=<x@example.com>, "), "{log}");
    assert!(
        log.contains(": 454 4.7.1 <x@example.com>: Relay access denied; from=<"),
        "{log}"
    );
}

#[test]
fn mynetworks_client_may_relay_and_port_25_offers_no_auth() {
    let server = server();
    let mut c = greeted(&server);
    let ehlo = c.cmd("EHLO client.example");
    expect(&ehlo, "250-");
    assert!(
        !ehlo.lines().any(|l| l
            .get(4..)
            .unwrap_or("")
            .to_ascii_uppercase()
            .starts_with("AUTH")),
        "port 25 must not advertise AUTH: {ehlo}"
    );
    // AUTH PLAIN \0alice\0secret
    let auth = c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
    expect(&auth, "503 5.5.1 ");
    expect(&c.cmd("AUTH LOGIN"), "503 ");
    start_data(&mut c, "me@localhost", "x@example.com");
    c.send_raw(b"Subject: relayed\r\n\r\nout\r\n");
    expect(&c.cmd("."), "250 2.0.0 Ok: queued as ");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye\r\n");
}

// ---------------------------------------------------------------------------
// 2. Local recipients

#[test]
fn unknown_user_refused_postmaster_always_accepted_and_extension_delivered() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    assert_eq!(c.cmd("MAIL FROM:<bob@example.org>"), "250 2.1.0 Ok\r\n");
    let unknown = c.cmd("RCPT TO:<nobody@localhost>");
    expect(&unknown, "550 5.1.1 <nobody@localhost>: ");
    expect(
        &c.cmd(&format!("RCPT TO:<nobody@{HOSTNAME}>")),
        "550 5.1.1 ",
    );
    assert_eq!(c.cmd("RCPT TO:<postmaster@localhost>"), "250 2.1.5 Ok\r\n");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<postmaster@{HOSTNAME}>")),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(c.cmd("RCPT TO:<Postmaster@LOCALHOST>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.cmd("RCPT TO:<alice+news@localhost>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: extension\r\n\r\nnews\r\n");
    expect(&c.cmd("."), "250 2.0.0 Ok: queued as ");

    let message = only_message(&server, "alice@localhost");
    let lines: Vec<&str> = message.split("\r\n").collect();
    assert_eq!(lines[0], "Return-Path: <bob@example.org>", "{message}");
    assert_eq!(lines[1], "X-Original-To: alice+news@localhost", "{message}");
    assert!(message.contains("Subject: extension\r\n"), "{message}");
    // The postmaster mailbox exists without anyone creating it.
    let uids = server.wait_for_mail("postmaster@localhost", 1);
    assert!(
        !uids.is_empty(),
        "postmaster got nothing:\n{}",
        server.log()
    );
    wait_queue_empty(&server);
    let log = server.log();
    assert!(!log.contains("status=bounced"), "{log}");
}

// ---------------------------------------------------------------------------
// 3. Message size

#[test]
fn declared_size_over_limit_refused_at_mail_from() {
    let server = server();
    let mut c = ehloed(&server);
    assert_eq!(
        c.cmd("MAIL FROM:<a@localhost> SIZE=20000000"),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    // No transaction was opened: RCPT needs a MAIL first.
    expect(&c.cmd("RCPT TO:<postmaster@localhost>"), "503 5.5.1 ");
    assert_eq!(
        c.cmd("MAIL FROM:<a@localhost> SIZE=10240000"),
        "250 2.1.0 Ok\r\n"
    );
}

#[test]
fn oversized_data_refused_after_dot_and_session_stays_usable() {
    let server = Builder::default().smtp("message_size_limit = 1000").start();
    server.add_user("alice@localhost", "secret");
    let mut c = greeted(&server);
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("250-SIZE 1000\r\n"), "{ehlo}");
    start_data(&mut c, "a@localhost", "alice@localhost");
    let mut body = String::from("Subject: too big\r\n\r\n");
    while body.len() < 5000 {
        body.push_str("0123456789012345678901234567890123456789012345678\r\n");
    }
    c.send_raw(body.as_bytes());
    expect(&c.cmd("."), "552 5.3.4 ");
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    assert_only_marker_arrives(&server, &mut c, "alice@localhost");
}

#[test]
fn oversized_bdat_refused_and_session_stays_usable() {
    let server = Builder::default().smtp("message_size_limit = 1000").start();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    assert_eq!(c.cmd("MAIL FROM:<a@localhost>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>"), "250 2.1.5 Ok\r\n");
    let chunk = "x".repeat(5000);
    c.send_raw(format!("BDAT 5000 LAST\r\n{chunk}").as_bytes());
    expect(&c.reply(), "552 5.3.4 ");
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok\r\n");
    // The same, spread over chunks that are each under the limit.
    assert_eq!(c.cmd("MAIL FROM:<a@localhost>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>"), "250 2.1.5 Ok\r\n");
    let part = "y".repeat(600);
    c.send_raw(format!("BDAT 600\r\n{part}").as_bytes());
    assert_eq!(c.reply(), "250 2.0.0 Ok: 600 octets\r\n");
    c.send_raw(format!("BDAT 600 LAST\r\n{part}").as_bytes());
    expect(&c.reply(), "552 5.3.4 ");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    assert_only_marker_arrives(&server, &mut c, "alice@localhost");
}

// ---------------------------------------------------------------------------
// 4. Recipient limit

#[test]
fn recipients_beyond_max_recipients_get_452() {
    let server = Builder::default().smtp("max_recipients = 3").start();
    for user in ["alice", "bob", "carol", "dave"] {
        server.add_user(&format!("{user}@localhost"), "secret");
    }
    let mut c = ehloed(&server);
    assert_eq!(c.cmd("MAIL FROM:<a@localhost>"), "250 2.1.0 Ok\r\n");
    for user in ["alice", "bob", "carol"] {
        assert_eq!(
            c.cmd(&format!("RCPT TO:<{user}@localhost>")),
            "250 2.1.5 Ok\r\n"
        );
    }
    expect(&c.cmd("RCPT TO:<dave@localhost>"), "452 4.5.3 ");
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: three\r\n\r\nthree of four\r\n");
    expect(&c.cmd("."), "250 2.0.0 Ok: queued as ");
    for user in ["alice", "bob", "carol"] {
        only_message(&server, &format!("{user}@localhost"));
    }
    wait_queue_empty(&server);
    assert!(server.uids("dave@localhost").is_empty());
}

// ---------------------------------------------------------------------------
// 5. Line length

#[test]
fn overlong_command_line_refused_and_session_resyncs() {
    let server = server();
    let mut c = ehloed(&server);
    let long = format!("NOOP {}", "x".repeat(3000));
    assert_eq!(c.cmd(&long), "500 5.5.2 Error: line too long\r\n");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    // line_length_limit = 2048 counts the CRLF: 2048 octets pass, 2049 do not.
    let fits = format!("NOOP {}", "y".repeat(2048 - 2 - 5));
    assert_eq!(c.cmd(&fits), "250 2.0.0 Ok\r\n");
    let over = format!("NOOP {}", "z".repeat(2048 - 2 - 5 + 1));
    assert_eq!(c.cmd(&over), "500 5.5.2 Error: line too long\r\n");
    // An over-long line split across writes is skipped as a whole.
    c.send_raw("x".repeat(2500).as_bytes());
    c.send_raw(format!("{}\r\nNOOP\r\n", "MAIL FROM:<evil@x>".repeat(10)).as_bytes());
    assert_eq!(c.reply(), "500 5.5.2 Error: line too long\r\n");
    assert_eq!(c.reply(), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye\r\n");
}

#[test]
fn overlong_lines_count_towards_max_errors() {
    // A short command timeout so that a server that forgets to enforce the
    // limit answers "421 4.4.2 timeout" quickly instead of hanging the test.
    let server = Builder::default()
        .smtp("max_errors = 3")
        .smtp("command_timeout = \"3s\"")
        .start();
    let mut c = ehloed(&server);
    let long = format!("{}\r\n", "x".repeat(3000));
    c.send_raw(long.repeat(3).as_bytes());
    for _ in 0..3 {
        assert_eq!(c.reply(), "500 5.5.2 Error: line too long\r\n");
    }
    let last = c.reply();
    expect(&last, "421 4.7.0 ");
    assert_eq!(c.read_to_close(), "");
}

// ---------------------------------------------------------------------------
// 6. Bare LF

#[test]
fn bare_lf_normalized_and_lf_dot_lf_does_not_end_data() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    start_data(&mut c, "a@localhost", "alice@localhost");
    c.send_raw(
        b"Subject: bare lf\n\nline one\nline two\n.\nafter the lf-dot-lf\r\nlast line\r\n.\r\n",
    );
    let queued = c.reply();
    expect(&queued, "250 2.0.0 Ok: queued as ");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye\r\n");

    let message = only_message(&server, "alice@localhost");
    assert_crlf_only(&message);
    assert!(message.contains("\r\nSubject: bare lf\r\n"), "{message}");
    assert!(
        message.contains("\r\n\r\nline one\r\nline two\r\n"),
        "{message}"
    );
    assert!(
        message.ends_with("after the lf-dot-lf\r\nlast line\r\n"),
        "{message}"
    );
}

#[test]
fn bare_lf_rejected_after_final_dot_when_configured() {
    let server = Builder::default().smtp("bare_lf = \"reject\"").start();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    start_data(&mut c, "a@localhost", "alice@localhost");
    c.send_raw(b"Subject: bare\r\n\r\nthis line ends badly\nthis one is fine\r\n");
    expect(&c.cmd("."), "550 5.5.2 ");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    // Commands ending in a bare LF are refused too.
    c.send_raw(b"NOOP\n");
    expect(&c.reply(), "500 5.5.2 ");
    assert_only_marker_arrives(&server, &mut c, "alice@localhost");
}

// ---------------------------------------------------------------------------
// 7. SMTP smuggling

#[test]
fn smuggled_message_after_cr_lf_dot_lf_stays_inside_the_first() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    start_data(&mut c, "bob@localhost", "alice@localhost");
    c.send_raw(
        b"Subject: innocent\r\n\r\nhello\r\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSmuggled\r\n.\r\n",
    );
    c.send_raw(b"QUIT\r\n");
    let mut transcript = c.reply();
    transcript.push_str(&c.read_to_close());
    assert_eq!(
        transcript.matches("queued as").count(),
        1,
        "one message expected: {transcript:?}"
    );
    expect(&transcript, "250 2.0.0 Ok: queued as ");
    assert!(transcript.ends_with("221 2.0.0 Bye\r\n"), "{transcript:?}");
    assert_eq!(transcript.lines().count(), 2, "{transcript:?}");

    let message = only_message(&server, "alice@localhost");
    wait_queue_empty(&server);
    assert_eq!(server.uids("alice@localhost").len(), 1);
    assert!(
        message.contains("Return-Path: <bob@localhost>"),
        "{message}"
    );
    assert!(message.contains("Smuggled"), "{message}");
    assert!(message.contains("MAIL FROM:<evil@x>"), "{message}");
    assert_crlf_only(&message);
    assert!(!server.log().contains("from=<evil@x>"), "{}", server.log());
}

#[test]
fn near_miss_end_markers_are_all_content() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    start_data(&mut c, "bob@localhost", "alice@localhost");
    // <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR><LF> and <CR><LF>.<CR>x: none of
    // them ends the data, so none of the commands after them runs.
    c.send_raw(
        b"Subject: near misses\r\n\r\none\n.\nRSET\r\ntwo\n.\r\nRSET\r\nthree\r.\r\nRSET\r\nfour\r\n.\rx\r\nRSET\r\nend\r\n.\r\n",
    );
    c.send_raw(b"QUIT\r\n");
    let mut transcript = c.reply();
    transcript.push_str(&c.read_to_close());
    expect(&transcript, "250 2.0.0 Ok: queued as ");
    assert_eq!(
        transcript.lines().count(),
        2,
        "only the queued reply and the goodbye: {transcript:?}"
    );
    let message = only_message(&server, "alice@localhost");
    assert_eq!(message.matches("RSET").count(), 4, "{message:?}");
    for word in ["one", "two", "three", "four", "end"] {
        assert!(message.contains(word), "{word}: {message:?}");
    }
    assert!(message.ends_with("end\r\n"), "{message:?}");
}

// ---------------------------------------------------------------------------
// 8. Talking before the greeting

#[test]
fn client_talking_before_greeting_is_refused() {
    let server = outside_mynetworks("1s").start();
    let mut rude = server.connect();
    rude.send_raw(b"EHLO x\r\n");
    let reply = rude.reply();
    assert_eq!(reply, "554 5.5.0 Error: SMTP protocol synchronization\r\n");
    assert_eq!(rude.read_to_close(), "");
    assert!(server.log().contains("PREGREET"), "{}", server.log());
}

#[test]
fn polite_client_outside_mynetworks_waits_for_greeting_and_delivers() {
    let server = outside_mynetworks("1s").start();
    server.add_user("alice@localhost", "secret");
    let mut polite = server.connect();
    assert_eq!(polite.reply(), format!("220 {HOSTNAME} ESMTP Merpati\r\n"));
    expect(&polite.cmd("EHLO polite.example"), "250-");
    let queued = polite.send_mail(
        "p@example.org",
        &["alice@localhost"],
        "Subject: polite\r\n\r\nhi\r\n",
    );
    expect(&queued, "250 2.0.0 Ok: queued as ");
    let message = only_message(&server, "alice@localhost");
    assert!(message.contains("Subject: polite\r\n"), "{message}");
}

/// postscreen's `postscreen_greet_ttl`: once a client has waited for the
/// greeting, its address is not made to wait again (so a client that then
/// talks first is not caught); a fresh address still is.
#[test]
fn a_client_that_waited_once_skips_the_pregreet_test() {
    let server = outside_mynetworks("1s").start();
    let mut polite = server.connect();
    assert!(polite.reply().starts_with("220"));
    polite.cmd("QUIT");
    let mut eager = server.connect();
    eager.send_raw(b"EHLO eager.example\r\n");
    assert!(eager.reply().starts_with("220"));
    assert!(eager.reply().starts_with("250"));
    eager.cmd("QUIT");
    let mut rude = Smtp::connect_from(server.port, std::net::Ipv4Addr::new(127, 0, 0, 9));
    rude.send_raw(b"EHLO x\r\n");
    assert_eq!(
        rude.reply(),
        "554 5.5.0 Error: SMTP protocol synchronization\r\n"
    );
    assert_eq!(
        server.log().matches("PREGREET").count(),
        1,
        "{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------
// 9. Pipelining

#[test]
fn pipelined_transaction_is_answered_in_order_and_delivered() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    server.add_user("bob@localhost", "secret");
    let mut c = ehloed(&server);
    c.send_raw(
        b"MAIL FROM:<p@localhost>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n",
    );
    assert_eq!(c.reply(), "250 2.1.0 Ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 Ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 Ok\r\n");
    assert_eq!(c.reply(), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: pipelined\r\n\r\nboth\r\n.\r\n");
    expect(&c.reply(), "250 2.0.0 Ok: queued as ");
    // After the end of data a new group may follow at once.
    c.send_raw(b"RSET\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(
        c.read_to_close(),
        "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n"
    );
    for rcpt in ["alice@localhost", "bob@localhost"] {
        let message = only_message(&server, rcpt);
        assert!(message.contains("Subject: pipelined\r\n"), "{message}");
        assert!(message.ends_with("\r\n\r\nboth\r\n"), "{message}");
    }
}

#[test]
fn commands_pipelined_after_ehlo_end_the_session() {
    let server = server();
    let mut c = greeted(&server);
    c.send_raw(b"EHLO x\r\nMAIL FROM:<a@localhost>\r\n");
    assert_eq!(
        c.reply(),
        "554 5.5.0 Error: SMTP protocol synchronization\r\n"
    );
    assert_eq!(c.read_to_close(), "");
    assert!(
        server.log().contains("improper command pipelining"),
        "{}",
        server.log()
    );
}

#[test]
fn message_pipelined_after_data_without_waiting_for_354_is_refused() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    c.send_raw(
        b"MAIL FROM:<a@localhost>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: eager\r\n\r\nx\r\n.\r\n",
    );
    assert_eq!(c.reply(), "250 2.1.0 Ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 Ok\r\n");
    let refused = c.reply();
    assert_eq!(
        refused,
        "554 5.5.0 Error: SMTP protocol synchronization\r\n"
    );
    assert_eq!(c.read_to_close(), "");
    wait_queue_empty(&server);
    assert!(server.uids("alice@localhost").is_empty());
}

// ---------------------------------------------------------------------------
// 10. Timeouts, error and connection limits

#[test]
fn idle_client_gets_421_timeout() {
    let server = Builder::default().smtp("command_timeout = \"1s\"").start();
    let mut c = ehloed(&server);
    let started = Instant::now();
    let reply = c.reply();
    expect(&reply, "421 4.4.2 ");
    assert!(reply.contains("timeout"), "{reply}");
    assert_eq!(c.read_to_close(), "");
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[test]
fn client_silent_inside_data_gets_421_and_nothing_is_queued() {
    let server = Builder::default().smtp("data_timeout = \"1s\"").start();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    start_data(&mut c, "a@localhost", "alice@localhost");
    c.send_raw(b"Subject: half\r\n\r\nhalf a message\r\n");
    expect(&c.reply(), "421 4.4.2 ");
    assert_eq!(c.read_to_close(), "");
    let mut again = ehloed(&server);
    assert_only_marker_arrives(&server, &mut again, "alice@localhost");
}

#[test]
fn connection_lost_inside_data_queues_nothing() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    {
        let mut c = ehloed(&server);
        start_data(&mut c, "a@localhost", "alice@localhost");
        // Everything but the final CRLF.CRLF, then the connection drops.
        c.send_raw(b"Subject: cut\r\n\r\ncut short\r\n.");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    // The session's end, counters included, is logged once it is over.
    while !server.log().contains("rcpt=1 data=1 (lost connection)") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut again = ehloed(&server);
    assert_only_marker_arrives(&server, &mut again, "alice@localhost");
}

#[test]
fn connections_beyond_global_limit_get_421() {
    let server = Builder::default().smtp("max_connections = 1").start();
    let mut first = admitted(&server);
    let mut second = server.connect();
    let refused = second.reply();
    expect(&refused, "421 4.7.0 ");
    assert_eq!(second.read_to_close(), "");
    assert_eq!(first.cmd("NOOP"), "250 2.0.0 Ok\r\n");
}

#[test]
fn too_many_bad_commands_end_the_session() {
    let server = Builder::default().smtp("max_errors = 3").start();
    let mut c = ehloed(&server);
    assert_eq!(c.cmd("FOO"), "500 5.5.2 Error: command not recognized\r\n");
    expect(&c.cmd("RCPT TO:<a@localhost>"), "503 5.5.1 ");
    assert_eq!(
        c.cmd("BAR baz"),
        "500 5.5.2 Error: command not recognized\r\n"
    );
    let last = c.reply();
    expect(&last, "421 4.7.0 ");
    assert!(last.contains("too many errors"), "{last}");
    assert_eq!(c.read_to_close(), "");
}

#[test]
fn connections_beyond_per_client_limit_get_421() {
    let server = Builder::default()
        .smtp("max_connections_per_client = 2")
        .start();
    let first = admitted(&server);
    let mut second = admitted(&server);
    let mut third = server.connect();
    let refused = third.reply();
    expect(&refused, "421 4.7.0 ");
    assert!(refused.contains("too many connections"), "{refused}");
    assert_eq!(third.read_to_close(), "");
    // The admitted sessions are unaffected.
    assert_eq!(second.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    // A slot is given back when a session ends.
    drop(first);
    let mut again = admitted(&server);
    assert_eq!(again.cmd("QUIT"), "221 2.0.0 Bye\r\n");
}

// ---------------------------------------------------------------------------
// 11. BDAT, DSN and the minor verbs

#[test]
fn bdat_chunks_are_stored_exactly() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    assert_eq!(c.cmd("MAIL FROM:<bob@localhost>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>"), "250 2.1.5 Ok\r\n");
    // Complete headers, so nothing but trace fields is added; the first
    // chunk ends between the CR and the LF of the first line.
    let content = "From: bob@localhost\r\nTo: alice@localhost\r\n\
        Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
        Message-Id: <bdat-1@client.example>\r\nSubject: chunked\r\n\r\n\
        first line\r\n.a leading dot is not stuffing in BDAT\r\n.\r\nlast line\r\n";
    let (one, two) = content.split_at(20);
    assert!(one.ends_with('\r'));
    c.send_raw(format!("BDAT 20\r\n{one}").as_bytes());
    assert_eq!(c.reply(), "250 2.0.0 Ok: 20 octets\r\n");
    // RFC 3030 lets BDAT commands be pipelined: the rest in one write.
    c.send_raw(format!("BDAT {}\r\n{two}BDAT 0 LAST\r\n", two.len()).as_bytes());
    assert_eq!(c.reply(), format!("250 2.0.0 Ok: {} octets\r\n", two.len()));
    let queued = c.reply();
    expect(&queued, "250 2.0.0 Ok: queued as ");
    let id = queue_id(&queued);
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye\r\n");

    let message = only_message(&server, "alice@localhost");
    let trace = message
        .strip_suffix(content)
        .unwrap_or_else(|| panic!("content altered: {message:?}"));
    let expected_start = format!(
        "Return-Path: <bob@localhost>\r\nX-Original-To: alice@localhost\r\nDelivered-To: alice@localhost\r\n\
         Received: from client.example (localhost [127.0.0.1])\r\n\tby {HOSTNAME} (Merpati) with ESMTP id {id}\r\n\
         \tfor <alice@localhost>;\r\n\t"
    );
    assert!(trace.starts_with(&expected_start), "{trace:?}");
    assert_eq!(trace.matches("\r\n").count(), 7, "{trace:?}");
}

#[test]
fn bdat_without_transaction_consumes_chunk_and_resyncs() {
    let server = server();
    let mut c = ehloed(&server);
    // The chunk holds what looks like commands; they must not be run.
    c.send_raw(b"BDAT 26 LAST\r\nMAIL FROM:<evil@x>\r\nNOOP\r\n");
    expect(&c.reply(), "503 5.5.1 ");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("MAIL FROM:<a@localhost>"), "250 2.1.0 Ok\r\n");
}

#[test]
fn dsn_notify_success_sends_delivery_report_to_sender() {
    let server = server();
    server.add_user("a@localhost", "secret");
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    assert_eq!(
        c.cmd("MAIL FROM:<a@localhost> RET=HDRS ENVID=abc"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<alice@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@localhost"),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: please confirm\r\n\r\nsecret body text\r\n");
    let queued = c.cmd(".");
    expect(&queued, "250 2.0.0 Ok: queued as ");
    let id = queue_id(&queued);

    let delivered = only_message(&server, "alice@localhost");
    assert!(delivered.contains("secret body text"), "{delivered}");
    let dsn = only_message(&server, "a@localhost");
    assert!(dsn.starts_with("Return-Path: <>\r\n"), "{dsn}");
    assert!(
        dsn.contains("\r\nSubject: Successful Mail Delivery Report\r\n"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Content-Type: multipart/report; report-type=delivery-status"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Content-Type: message/delivery-status\r\n"),
        "{dsn}"
    );
    assert!(
        dsn.contains(&format!("X-Merpati-Queue-ID: {id}\r\n")),
        "{dsn}"
    );
    assert!(dsn.contains("Original-Envelope-Id: abc\r\n"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; alice@localhost\r\n"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Original-Recipient: rfc822; alice@localhost\r\n"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Action: delivered\r\nStatus: 2.0.0\r\n"),
        "{dsn}"
    );
    // A success report carries the headers only, never the body.
    assert!(dsn.contains("Subject: please confirm\r\n"), "{dsn}");
    assert!(!dsn.contains("secret body text"), "{dsn}");
    wait_queue_empty(&server);
    assert_eq!(server.uids("a@localhost").len(), 1);
}

#[test]
fn minor_verbs_and_sequence_errors() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut c = ehloed(&server);
    assert_eq!(
        c.cmd("VRFY alice"),
        "502 5.5.1 VRFY command is disabled\r\n"
    );
    expect(&c.cmd("EXPN staff"), "502 5.5.1 ");
    expect(&c.cmd("HELP"), "214 ");
    expect(&c.cmd("ETRN example.org"), "250 ");
    assert_eq!(
        c.cmd("XYZZY"),
        "500 5.5.2 Error: command not recognized\r\n"
    );
    expect(&c.cmd("RCPT TO:<alice@localhost>"), "503 5.5.1 ");
    expect(&c.cmd("DATA"), "503 5.5.1 ");
    assert_eq!(c.cmd("MAIL FROM:<a@localhost>"), "250 2.1.0 Ok\r\n");
    expect(&c.cmd("MAIL FROM:<a@localhost>"), "503 5.5.1 ");
    expect(&c.cmd("ETRN example.org"), "503 5.5.1 ");
    let data = c.cmd("DATA");
    assert!(
        data.starts_with("554 5.5.1 ") || data.starts_with("503 5.5.1 "),
        "DATA without recipients: {data:?}"
    );
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok\r\n");
    expect(&c.cmd("RCPT TO:<alice@localhost>"), "503 5.5.1 ");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye\r\n");
    assert_eq!(c.read_to_close(), "");
}

#[test]
fn vrfy_when_enabled_is_advertised_and_answers_252() {
    let server = Builder::default().smtp("enable_vrfy = true").start();
    server.add_user("alice@localhost", "secret");
    let mut c = greeted(&server);
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("\r\n250-VRFY\r\n"), "{ehlo}");
    expect(&c.cmd("VRFY alice"), "252 2.0.0 ");
    expect(&c.cmd("VRFY <alice@localhost>"), "252 2.0.0 ");
    expect(&c.cmd("VRFY nobody@localhost"), "550 5.1.1 ");
}

// ---------------------------------------------------------------------------
// 12. STARTTLS and plaintext injection (CVE-2011-0411)

/// Accepts any certificate: the server's is self-signed.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_client(tcp: TcpStream) -> BufReader<TlsStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(HOSTNAME).expect("server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("tls client");
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("TLS handshake with the server");
    }
    BufReader::new(stream)
}

fn tls_reply(tls: &mut BufReader<TlsStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if tls.read_line(&mut line).unwrap_or(0) == 0 {
            return all;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

fn tls_cmd(tls: &mut BufReader<TlsStream>, line: &str) -> String {
    tls.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .expect("TLS write");
    tls_reply(tls)
}

/// Reads one CRLF-terminated line byte by byte (so nothing after it is
/// consumed: the TLS handshake needs the raw socket).
fn raw_line(tcp: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn raw_reply(tcp: &mut TcpStream) -> String {
    let mut all = String::new();
    loop {
        let line = raw_line(tcp);
        all.push_str(&line);
        if line.is_empty() || line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

#[test]
fn plaintext_pipelined_after_starttls_is_discarded() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    expect(&raw_reply(&mut tcp), "220 ");
    tcp.write_all(b"EHLO client.example\r\n").unwrap();
    let ehlo = raw_reply(&mut tcp);
    assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");

    // The injected NOOP arrives in the same segment as STARTTLS.
    tcp.write_all(b"STARTTLS\r\nNOOP\r\n").unwrap();
    assert_eq!(raw_reply(&mut tcp), "220 2.0.0 Ready to start TLS\r\n");
    // Nothing else may come in plaintext: the server now waits for a
    // ClientHello.
    tcp.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut extra = [0u8; 256];
    match tcp.read(&mut extra) {
        Ok(n) => panic!(
            "plaintext after 220 to STARTTLS: {:?}",
            String::from_utf8_lossy(&extra[..n])
        ),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "connection failed instead: {e}"
        ),
    }
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

    // After the handshake the injected NOOP must not be answered either:
    // the first reply over TLS is the one to our EHLO.
    let mut tls = tls_client(tcp);
    let ehlo = tls_cmd(&mut tls, "EHLO client.example");
    expect(&ehlo, &format!("250-{HOSTNAME}\r\n"));
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(tls_cmd(&mut tls, "NOOP"), "250 2.0.0 Ok\r\n");
    expect(&tls_cmd(&mut tls, "STARTTLS"), "554 5.5.1 ");
    assert_eq!(
        tls_cmd(&mut tls, "MAIL FROM:<t@localhost>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        tls_cmd(&mut tls, "RCPT TO:<alice@localhost>"),
        "250 2.1.5 Ok\r\n"
    );
    expect(&tls_cmd(&mut tls, "DATA"), "354 ");
    tls.get_mut()
        .write_all(b"Subject: over tls\r\n\r\nsealed\r\n")
        .unwrap();
    expect(&tls_cmd(&mut tls, "."), "250 2.0.0 Ok: queued as ");
    assert_eq!(tls_cmd(&mut tls, "QUIT"), "221 2.0.0 Bye\r\n");

    let message = only_message(&server, "alice@localhost");
    assert!(message.contains(" with ESMTPS id "), "{message}");
}

#[test]
fn transaction_started_before_starttls_is_forgotten() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    expect(&raw_reply(&mut tcp), "220 ");
    tcp.write_all(b"EHLO client.example\r\n").unwrap();
    expect(&raw_reply(&mut tcp), "250-");
    tcp.write_all(b"MAIL FROM:<plain@localhost>\r\n").unwrap();
    assert_eq!(raw_reply(&mut tcp), "250 2.1.0 Ok\r\n");
    tcp.write_all(b"STARTTLS\r\n").unwrap();
    assert_eq!(raw_reply(&mut tcp), "220 2.0.0 Ready to start TLS\r\n");
    let mut tls = tls_client(tcp);
    // RFC 3207 §4.2: the MAIL given in plaintext no longer counts.
    expect(
        &tls_cmd(&mut tls, "RCPT TO:<alice@localhost>"),
        "503 5.5.1 ",
    );
}
