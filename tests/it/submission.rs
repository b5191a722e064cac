//! Submission on 587 (STARTTLS before AUTH) and 465 (implicit TLS):
//! AUTH PLAIN/LOGIN, sender ownership, relaying for authenticated users.

use crate::harness::*;

fn with_users() -> Server {
    let server = server();
    server.add_user("alice@localhost", "alice-pw");
    server.add_user("bob@localhost", "bob-pw");
    server
}

#[test]
fn port_25_never_offers_auth_but_submission_does() {
    let server = with_users();
    let mut mx = server.connect();
    mx.reply();
    assert!(!mx.cmd("EHLO client").contains("AUTH"));
    assert!(
        mx.cmd("AUTH PLAIN AGFsaWNlAGFsaWNlLXB3")
            .starts_with("503 5.5.1")
    );

    let mut sub = Smtp::connect(server.ports.submission);
    sub.reply();
    let ehlo = sub.cmd("EHLO client");
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert!(
        sub.cmd("MAIL FROM:<alice@localhost>")
            .starts_with("530 5.7.0")
    );
    // \0alice@localhost\0wrong
    assert!(
        sub.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdAB3cm9uZw==")
            .starts_with("535 5.7.8")
    );
    // \0alice@localhost\0alice-pw
    assert_eq!(
        sub.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdABhbGljZS1wdw=="),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert!(
        !sub.cmd("EHLO client").contains("AUTH"),
        "no AUTH once logged in"
    );
    assert!(
        sub.cmd("MAIL FROM:<bob@localhost>")
            .starts_with("553 5.7.1"),
        "not alice's address"
    );
    assert!(
        sub.cmd("MAIL FROM:<alice+lists@localhost>")
            .starts_with("250"),
        "alice's extension address"
    );
    assert!(
        sub.cmd("RCPT TO:<someone@example.com>").starts_with("250"),
        "authenticated users relay"
    );
    assert!(sub.cmd("RSET").starts_with("250"));
    assert!(sub.cmd("MAIL FROM:<alice@localhost>").starts_with("250"));
    assert!(sub.cmd("RCPT TO:<bob@localhost>").starts_with("250"));
    assert!(sub.cmd("DATA").starts_with("354"));
    sub.send_raw(b"From: bob@localhost\r\nSubject: forged\r\n\r\nx\r\n");
    assert!(
        sub.cmd(".").starts_with("553 5.7.1"),
        "From: must be alice's too"
    );
}

#[test]
fn smtplib_starttls_login_submits_with_esmtpsa() {
    let server = with_users();
    let script = r#"
import smtplib, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.ehlo("client.example")
s.starttls(context=ctx)
s.ehlo("client.example")
assert "auth" in s.esmtp_features, s.esmtp_features
s.login("alice@localhost", "alice-pw")
msg = "From: alice@localhost\r\nTo: bob@localhost\r\nSubject: via submission\r\n\r\nhello bob\r\n"
refused = s.sendmail("alice@localhost", ["bob@localhost", "far@example.com"], msg)
assert refused == {}, refused
s.quit()
"#;
    let out = python(script, &[&server.ports.submission.to_string()]);
    assert_success(&out, "smtplib submission");
    server.wait_for_mail("bob@localhost", 1);
    let message = server.message("bob@localhost", 1);
    assert!(message.contains("with ESMTPSA id"), "{message}");
    assert!(message.contains("Message-Id: <"), "{message}");
    let queue = server.cli_ok(&["queue", "list"]);
    assert!(
        queue.contains("far@example.com"),
        "relayed recipient is queued: {queue}"
    );
}

#[test]
fn implicit_tls_port_with_auth_login() {
    let server = with_users();
    let script = r#"
import smtplib, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=30)
s.ehlo("client.example")
s.user, s.password = "bob@localhost", "bob-pw"
code, text = s.auth("LOGIN", s.auth_login)
assert code == 235, (code, text)
s.sendmail("bob@localhost", ["alice@localhost"], "Subject: over 465\r\n\r\nhi\r\n")
s.quit()
"#;
    let out = python(script, &[&server.ports.submissions.to_string()]);
    assert_success(&out, "smtplib SMTP_SSL");
    server.wait_for_mail("alice@localhost", 1);
    assert!(
        server
            .message("alice@localhost", 1)
            .contains("Subject: over 465")
    );
}

#[test]
fn no_password_in_plaintext_when_loopback_exception_is_off() {
    let server = Builder::default()
        .submission("plaintext_auth_on_loopback = false")
        .start();
    server.add_user("alice@localhost", "alice-pw");
    let mut sub = Smtp::connect(server.ports.submission);
    sub.reply();
    assert!(!sub.cmd("EHLO client").contains("AUTH"));
    assert!(
        sub.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdABhbGljZS1wdw==")
            .starts_with("530 5.7.0")
    );
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.starttls(context=ctx)
s.login("alice@localhost", "alice-pw")
s.quit()
"#;
    assert_success(
        &python(script, &[&server.ports.submission.to_string()]),
        "login after STARTTLS",
    );
}
