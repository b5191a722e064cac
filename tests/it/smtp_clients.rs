//! Real clients against the real server: Python's smtplib (with and
//! without STARTTLS), swaks, and `merpati sendmail` as cron and scripts
//! use it.

use crate::harness::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers

/// swaks must be installed (`apt-get install swaks`): its absence is a
/// failure, not a reason to skip.
fn swaks(server: &Server, extra: &[&str]) -> Output {
    const SWAKS: &str = "/usr/bin/swaks";
    assert!(
        Path::new(SWAKS).exists(),
        "swaks is not installed at {SWAKS}: install it with `apt-get install swaks`"
    );
    let port = server.port.to_string();
    let target = format!("127.0.0.1:{port}");
    Command::new(SWAKS)
        .args(["--server", &target, "--timeout", "30"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SWAKS}: {e}"))
}

/// Waits for exactly one message in `address` and returns it.
fn only_message(server: &Server, address: &str) -> String {
    let uids = server.wait_for_mail(address, 1);
    assert_eq!(uids.len(), 1, "{address}: {uids:?}\n{}", server.log());
    server.message(address, uids[0])
}

fn received_line(message: &str) -> String {
    let start = message.find("Received: ").expect("a Received: line");
    let end = message[start..]
        .find(";")
        .map_or(message.len(), |e| start + e);
    message[start..end].to_string()
}

/// Everything after the first empty line.
fn body_of(message: &str) -> &str {
    message.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// Everything before the first empty line.
fn header_of(message: &str) -> &str {
    message.split("\r\n\r\n").next().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// 13. Python smtplib, plaintext

const SMTPLIB_PLAIN: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    code, banner = s.ehlo("python.example")
    assert code == 250, (code, banner)
    print("FEATURES", " ".join(sorted(s.esmtp_features)))
    msg = (b"From: Bob <bob@localhost>\r\nTo: alice@localhost\r\n"
           b"Subject: smtplib test\r\n\r\nhello from smtplib\r\n.leading dot\r\n")
    refused = s.sendmail("bob@localhost", ["alice@localhost", "bob@localhost"], msg)
    assert refused == {}, refused
    try:
        s.sendmail("bob@localhost", ["nobody@localhost"], msg)
        print("UNKNOWN ACCEPTED")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients["nobody@localhost"]
        print("UNKNOWN REFUSED", code, text.decode())
print("DONE")
"#;

#[test]
fn python_smtplib_plain_sendmail_delivers() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    server.add_user("bob@localhost", "secret");
    let port = server.port.to_string();
    let out = python(SMTPLIB_PLAIN, &[&port]);
    assert_success(&out, "smtplib");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("DONE"), "{}", text(&out));
    let features = stdout
        .lines()
        .find_map(|l| l.strip_prefix("FEATURES "))
        .unwrap_or_default();
    for f in [
        "pipelining",
        "size",
        "starttls",
        "8bitmime",
        "chunking",
        "dsn",
    ] {
        assert!(
            features.split(' ').any(|x| x == f),
            "{f} missing: {features}"
        );
    }
    assert!(
        stdout.contains("UNKNOWN REFUSED 550 5.1.1"),
        "{}",
        text(&out)
    );
    for rcpt in ["alice@localhost", "bob@localhost"] {
        let message = only_message(&server, rcpt);
        assert!(
            message.contains("\r\nSubject: smtplib test\r\n"),
            "{message}"
        );
        assert!(
            message.ends_with("\r\n\r\nhello from smtplib\r\n.leading dot\r\n"),
            "{message}"
        );
        let received = received_line(&message);
        assert!(
            received.starts_with("Received: from python.example (localhost [127.0.0.1])"),
            "{received}"
        );
        assert!(received.contains(" with ESMTP id "), "{received}");
    }
}

// ---------------------------------------------------------------------------
// 14. Python smtplib with STARTTLS

const SMTPLIB_TLS: &str = r#"
import smtplib, ssl, sys
port = int(sys.argv[1])

def context(max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        # Make the client itself able to speak old versions, so that a
        # refusal can only come from the server.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
    return ctx

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    s.ehlo("python.example")
    assert s.has_extn("starttls"), s.esmtp_features
    code, text = s.starttls(context=ctx)
    assert code == 220, (code, text)
    print("VERSION", s.sock.version())
    s.ehlo("python.example")
    print("AFTER_TLS", " ".join(sorted(s.esmtp_features)))
    assert not s.has_extn("starttls"), s.esmtp_features
    refused = s.sendmail("bob@localhost", ["alice@localhost"],
                         b"Subject: tls test\r\n\r\nsent over TLS\r\n")
    assert refused == {}, refused

for name, version in [("TLS12", ssl.TLSVersion.TLSv1_2), ("TLS11", ssl.TLSVersion.TLSv1_1)]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("python.example")
        try:
            s.starttls(context=context(version))
            print(name, "OK", s.sock.version())
        except (ssl.SSLError, OSError) as e:
            print(name, "FAILED", repr(e))
print("DONE")
"#;

#[test]
fn python_smtplib_starttls_delivers_and_refuses_tls_1_1() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let port = server.port.to_string();
    let out = python(SMTPLIB_TLS, &[&port]);
    assert_success(&out, "smtplib with STARTTLS");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("DONE"), "{}", text(&out));
    let version = stdout
        .lines()
        .find_map(|l| l.strip_prefix("VERSION "))
        .unwrap_or_default();
    assert!(
        version == "TLSv1.3" || version == "TLSv1.2",
        "{}",
        text(&out)
    );
    let after = stdout
        .lines()
        .find_map(|l| l.strip_prefix("AFTER_TLS "))
        .unwrap_or_default();
    assert!(!after.contains("starttls"), "{after}");
    assert!(after.contains("pipelining"), "{after}");
    // TLS 1.2 works; TLS 1.1 is refused by the server itself.
    assert!(stdout.contains("TLS12 OK TLSv1.2"), "{}", text(&out));
    let tls11 = stdout
        .lines()
        .find(|l| l.starts_with("TLS11 "))
        .unwrap_or_default();
    assert!(tls11.starts_with("TLS11 FAILED"), "{}", text(&out));
    // An alert from the server (protocol_version or handshake_failure),
    // not a local refusal to offer TLS 1.1: the same client settings with
    // a TLS 1.2 maximum work.
    assert!(
        tls11.to_ascii_uppercase().contains("ALERT"),
        "TLS 1.1 should be refused by the server with an alert: {tls11}"
    );

    let message = only_message(&server, "alice@localhost");
    let received = received_line(&message);
    assert!(received.contains(" with ESMTPS id "), "{received}");
    assert!(message.ends_with("\r\n\r\nsent over TLS\r\n"), "{message}");
}

// ---------------------------------------------------------------------------
// 15. swaks

#[test]
fn swaks_plain_delivers() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let out = swaks(
        &server,
        &[
            "--to",
            "alice@localhost",
            "--from",
            "bob@localhost",
            "--header",
            "Subject: swaks test",
            "--body",
            "hi",
        ],
    );
    assert_success(&out, "swaks");
    let message = only_message(&server, "alice@localhost");
    assert!(
        message.starts_with("Return-Path: <bob@localhost>\r\n"),
        "{message}"
    );
    assert!(message.contains("\r\nSubject: swaks test\r\n"), "{message}");
    assert_eq!(body_of(&message).trim_end(), "hi", "{message:?}");
    assert!(
        received_line(&message).contains(" with ESMTP id "),
        "{message}"
    );
}

#[test]
fn swaks_starttls_delivers() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let out = swaks(
        &server,
        &[
            "--tls",
            "--to",
            "alice@localhost",
            "--from",
            "bob@localhost",
            "--header",
            "Subject: swaks tls",
            "--body",
            "encrypted hi",
        ],
    );
    assert_success(&out, "swaks --tls");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        transcript.contains("220 2.0.0 Ready to start TLS"),
        "{transcript}"
    );
    let message = only_message(&server, "alice@localhost");
    assert!(message.contains("\r\nSubject: swaks tls\r\n"), "{message}");
    assert!(
        received_line(&message).contains(" with ESMTPS id "),
        "{message}"
    );
}

#[test]
fn swaks_pipelining_delivers_to_several_recipients() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    server.add_user("bob@localhost", "secret");
    let out = swaks(
        &server,
        &[
            "--pipeline",
            "--to",
            "alice@localhost,bob@localhost",
            "--from",
            "carol@localhost",
            "--header",
            "Subject: swaks pipelined",
            "--body",
            "to both",
        ],
    );
    assert_success(&out, "swaks --pipeline");
    // swaks really pipelined: DATA went out before the reply to MAIL.
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        transcript.contains(" -> DATA\n<-  250 2.1.0 Ok"),
        "{transcript}"
    );
    for rcpt in ["alice@localhost", "bob@localhost"] {
        let message = only_message(&server, rcpt);
        assert!(
            message.contains("\r\nSubject: swaks pipelined\r\n"),
            "{message}"
        );
        assert_eq!(body_of(&message).trim_end(), "to both", "{message:?}");
    }
}

// ---------------------------------------------------------------------------
// 16. merpati sendmail

#[test]
fn sendmail_piped_message_is_delivered() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let out = server.cli_with_input(
        &["sendmail", "alice@localhost"],
        b"Subject: cron\n\nhello\n",
    );
    assert_success(&out, "merpati sendmail");
    let message = only_message(&server, "alice@localhost");
    assert!(message.contains("\r\nSubject: cron\r\n"), "{message}");
    assert!(message.ends_with("\r\n\r\nhello\r\n"), "{message}");
    assert!(
        message.contains("\r\nX-Original-To: alice@localhost\r\n"),
        "{message}"
    );
    // Completed like Postfix's cleanup does for a bare message.
    let header = header_of(&message);
    for field in ["\r\nMessage-Id: <", "\r\nDate: ", "\r\nFrom: "] {
        assert!(header.contains(field), "{field} missing: {message}");
    }
}

#[test]
fn sendmail_t_extracts_recipients_and_strips_bcc() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    server.add_user("bob@localhost", "secret");
    let input = b"From: Sender <sender@localhost>\nTo: alice@localhost\nBcc: bob@localhost\nSubject: blind\n\nbody of the blind message\n";
    let out = server.cli_with_input(&["sendmail", "-t", "-f", "sender@localhost"], input);
    assert_success(&out, "merpati sendmail -t");
    for rcpt in ["alice@localhost", "bob@localhost"] {
        let message = only_message(&server, rcpt);
        assert!(
            message.starts_with("Return-Path: <sender@localhost>\r\n"),
            "{message}"
        );
        let header = header_of(&message);
        assert!(
            !header.to_ascii_lowercase().contains("\r\nbcc:"),
            "Bcc leaked to {rcpt}: {message}"
        );
        assert!(!header.contains("for <bob@localhost>"), "{message}");
        assert!(header.contains("\r\nTo: alice@localhost\r\n"), "{message}");
        assert!(
            message.ends_with("\r\n\r\nbody of the blind message\r\n"),
            "{message}"
        );
    }
}

#[test]
fn sendmail_while_daemon_is_down_is_delivered_after_restart() {
    let mut server = server();
    server.add_user("alice@localhost", "secret");
    server.kill9();
    let out = server.cli_with_input(
        &["sendmail", "-f", "night@localhost", "alice@localhost"],
        b"Subject: while down\n\nqueued in maildrop\n",
    );
    assert_success(&out, "merpati sendmail with the daemon down");
    // Nobody is there to pick it up: a fresh start must.
    let started = Instant::now();
    server.spawn();
    let message = only_message(&server, "alice@localhost");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        message.starts_with("Return-Path: <night@localhost>\r\n"),
        "{message}"
    );
    assert!(message.contains("\r\nSubject: while down\r\n"), "{message}");
    assert!(
        message.ends_with("\r\n\r\nqueued in maildrop\r\n"),
        "{message}"
    );
}
