//! The Postfix-format log (`[log] format = "postfix"`) read by the tools
//! admins already run on mail logs: Debian's pflogsumm must count our
//! received, delivered, deferred, bounced and rejected mail right, and
//! fail2ban-regex with the stock postfix and dovecot filters must match our
//! reject and authentication-failure lines.

use crate::harness::{Builder, Smtp, wait_until};
use crate::imap_client::Imap;
use std::process::Command;
use std::time::Duration;

/// fail2ban's filters take the program name as a parameter; ours is
/// `merpati/smtpd`, `merpati/submission/smtpd`, `merpati/imap`...
const DAEMON: &str = r"_daemon=merpati(?:/\w+)*";

/// "Lines: 40 lines, 0 ignored, 7 matched, 33 missed" -> 7.
fn matched(output: &str) -> usize {
    output
        .lines()
        .find(|l| l.starts_with("Lines:"))
        .and_then(|l| l.split(", ").find(|p| p.ends_with(" matched")))
        .and_then(|p| p.trim_end_matches(" matched").trim().parse().ok())
        .unwrap_or_else(|| panic!("no match count in:\n{output}"))
}

/// "      2   received" -> 2, from pflogsumm's Grand Totals.
fn total(summary: &str, what: &str) -> u32 {
    summary
        .lines()
        .map(str::trim)
        .find_map(|l| {
            let (n, rest) = l.split_once(char::is_whitespace)?;
            rest.trim_start()
                .starts_with(what)
                .then(|| n.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {what} total in:\n{summary}"))
}

#[test]
fn pflogsumm_and_fail2ban_read_the_postfix_format_log() {
    let server = Builder::default()
        // Loopback is not trusted here, so relaying is denied as for a stranger.
        .top("mynetworks = []")
        .tail("[log]\nformat = \"postfix\"\n[virtual_alias]\nmap = { \"gone@localhost\" = [\"ghost@localhost\"] }")
        .start();
    server.add_user("alice@localhost", "alice-pw");

    // Received and delivered; received and deferred (no DNS answers);
    // received and bounced (the alias leads to no account).
    server.submit(
        "bob@example.org",
        &["alice@localhost"],
        "Subject: one\r\n\r\nhi\r\n",
    );
    assert!(server.wait_for_mail("alice@localhost", 1).len() == 1);
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.example.org");
    // Two refusals, logged as NOQUEUE: reject lines.
    assert!(c.cmd("MAIL FROM:<bob@example.org>").starts_with("250"));
    let relay = c.cmd("RCPT TO:<someone@example.com>");
    assert!(relay.starts_with("454 4.7.1"), "{relay}");
    let unknown = c.cmd("RCPT TO:<nobody@localhost>");
    assert!(unknown.starts_with("550 5.1.1"), "{unknown}");
    assert!(c.cmd("RCPT TO:<gone@localhost>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c.cmd("Subject: two\r\n\r\nhi\r\n.").starts_with("250"));
    c.cmd("QUIT");
    assert!(server.wait_for_log("status=bounced", 1), "{}", server.log());
    // The bounce itself goes to bob@example.org: deferred (no DNS).
    assert!(
        server.wait_for_log("status=deferred", 1),
        "{}",
        server.log()
    );

    // Failed logins: SMTP AUTH on submission, IMAP LOGIN, POP3 PASS.
    let mut sub = Smtp::connect(server.ports.submission);
    sub.reply();
    sub.cmd("EHLO client.example.org");
    let denied = sub.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdAB3cm9uZw==");
    assert!(denied.starts_with("535"), "{denied}");
    sub.cmd("QUIT");
    let (mut imap, _) = Imap::connect(server.ports.imap);
    let no = imap.cmd("LOGIN alice@localhost wrong");
    assert!(no.contains("NO [AUTHENTICATIONFAILED]"), "{no}");
    imap.cmd("LOGOUT");
    let mut pop = Smtp::connect(server.ports.pop3);
    pop.reply();
    pop.send_raw(b"USER alice@localhost\r\nPASS wrong\r\n");
    assert!(pop.reply().starts_with("+OK"));
    assert!(pop.reply().starts_with("-ERR"));
    pop.send_raw(b"QUIT\r\n");
    pop.read_to_close();
    assert!(wait_until(Duration::from_secs(10), || {
        server
            .log()
            .matches("-login: Disconnected (auth failed")
            .count()
            == 2
    }));

    let log = server.log();
    let path = server.log_path();
    // Every line is a syslog line of ours: no span fields, no Rust Debug.
    for line in log.lines() {
        let rest = line.get(16..).unwrap_or_default();
        assert!(rest.contains(" merpati/"), "not a syslog line: {line}");
        assert!(!line.contains("queue_id="), "{line}");
        assert!(!line.contains(" { "), "{line}");
    }

    let out = Command::new("pflogsumm")
        .arg("--syslog-name=merpati")
        .arg(&path)
        .output()
        .expect("pflogsumm (Debian package pflogsumm) is required");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{summary}");
    // Two from outside plus the bounce notice (local, by cleanup: not "received").
    assert_eq!(total(&summary, "received"), 2, "{summary}\n{log}");
    assert_eq!(total(&summary, "delivered"), 1, "{summary}");
    assert_eq!(total(&summary, "deferred"), 1, "{summary}");
    assert_eq!(total(&summary, "bounced"), 1, "{summary}");
    assert_eq!(total(&summary, "rejected"), 2, "{summary}");

    let f2b = |filter: &str| {
        let out = Command::new("fail2ban-regex")
            .arg(&path)
            .arg(filter)
            .output()
            .expect("fail2ban-regex (Debian package fail2ban) is required");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Two rejects and one SASL failure.
    let postfix = f2b(&format!(
        "/etc/fail2ban/filter.d/postfix.conf[mode=aggressive, {DAEMON}]"
    ));
    assert_eq!(matched(&postfix), 3, "{postfix}\n{log}");
    let sasl = f2b(&format!(
        "/etc/fail2ban/filter.d/postfix.conf[mode=auth, {DAEMON}]"
    ));
    assert_eq!(matched(&sasl), 1, "{sasl}");
    let dovecot = f2b(&format!("/etc/fail2ban/filter.d/dovecot.conf[{DAEMON}]"));
    assert_eq!(matched(&dovecot), 2, "{dovecot}\n{log}");
}
