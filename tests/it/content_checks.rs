//! header_checks and body_checks (issue 9) in Postfix's pcre:/regexp:
//! syntax: REJECT and DEFER answer the end of DATA, HOLD puts the message
//! in the hold queue until `queue release`, IGNORE removes the header,
//! and the tables are read again on SIGHUP.

use crate::harness::{Builder, Server, queue_id, wait_until};
use std::time::Duration;

struct World {
    tables: tempfile::TempDir,
    server: Server,
}

const HEADER_CHECKS: &str = "# Postfix header_checks\n/^Subject: .*hold me/     HOLD suspicious subject\n/^Subject: .*reject me/   REJECT no thanks\n/^X-Remove:/              IGNORE\n";

fn world() -> World {
    let tables = tempfile::tempdir().expect("tempdir");
    std::fs::write(tables.path().join("header_checks"), HEADER_CHECKS).expect("write");
    std::fs::write(
        tables.path().join("body_checks"),
        "/^buy now/ REJECT spam body\n/^call me later/ DEFER\n",
    )
    .expect("write");
    let server = Builder::default()
        .tail(&format!(
            "[checks]\nheader_checks = \"pcre:{}\"\nbody_checks = [\"regexp:{}\"]\n",
            tables.path().join("header_checks").display(),
            tables.path().join("body_checks").display()
        ))
        .start();
    server.add_user("bob@localhost", "bob-pw");
    World { tables, server }
}

fn send(server: &Server, headers: &str, body: &str) -> String {
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.example");
    assert!(c.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@localhost>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send_raw(format!("{headers}\r\n{body}").as_bytes());
    let reply = c.cmd(".");
    c.cmd("QUIT");
    reply
}

#[test]
fn reject_defer_hold_and_ignore() {
    let w = world();
    let s = &w.server;
    let reply = send(s, "Subject: please reject me\r\n", "hello\r\n");
    assert!(reply.starts_with("550 5.7.1 no thanks"), "{reply}");
    let reply = send(s, "Subject: fine\r\n", "hello\r\nbuy now!\r\n");
    assert!(reply.starts_with("550 5.7.1 spam body"), "{reply}");
    let reply = send(s, "Subject: fine\r\n", "call me later\r\n");
    assert!(
        reply.starts_with("451 4.7.1 message content deferred"),
        "{reply}"
    );
    // Postfix's log line, which pflogsumm counts.
    assert!(
        s.wait_for_log("reject: header Subject: please reject me from localhost[127.0.0.1]; from=<alice@example.org> to=<bob@localhost> proto=ESMTP helo=<client.example>: no thanks", 1),
        "{}",
        s.log()
    );
    // IGNORE: delivered without the header.
    let reply = send(
        s,
        "Subject: clean\r\nX-Remove: secret\r\nX-Keep: yes\r\n",
        "hello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let uids = s.wait_for_mail("bob@localhost", 1);
    let message = s.message("bob@localhost", uids[0]);
    assert!(!message.contains("X-Remove"), "{message}");
    assert!(message.contains("X-Keep: yes\r\n"), "{message}");
    // HOLD, then release.
    let reply = send(s, "Subject: hold me please\r\n", "hello\r\n");
    assert!(reply.starts_with("250"), "{reply}");
    let id = queue_id(&reply);
    assert!(
        wait_until(Duration::from_secs(20), || s.queues_holding(&id)
            == ["hold"]),
        "{}",
        s.log()
    );
    assert!(s.queue_list().contains("(held: suspicious subject)"));
    assert_eq!(s.uids("bob@localhost").len(), 1);
    s.cli_ok(&["queue", "release", &id]);
    s.wait_for_mail("bob@localhost", 2);
}

#[test]
fn tables_are_read_again_on_sighup() {
    let w = world();
    let s = &w.server;
    let reply = send(s, "Subject: new rule\r\n", "hello\r\n");
    assert!(reply.starts_with("250"), "{reply}");
    std::fs::write(
        w.tables.path().join("header_checks"),
        format!("{HEADER_CHECKS}/^Subject: new rule/ REJECT changed my mind\n"),
    )
    .expect("write");
    s.signal("HUP");
    assert!(s.wait_for_log("reloaded configuration", 1), "{}", s.log());
    let reply = send(s, "Subject: new rule\r\n", "hello\r\n");
    assert!(reply.starts_with("550 5.7.1 changed my mind"), "{reply}");
    // A broken table is refused at reload; the old tables stay.
    std::fs::write(w.tables.path().join("header_checks"), "/unclosed REJECT\n").expect("write");
    s.signal("HUP");
    assert!(s.wait_for_log("reload refused", 1), "{}", s.log());
    let reply = send(s, "Subject: new rule\r\n", "hello\r\n");
    assert!(reply.starts_with("550 5.7.1 changed my mind"), "{reply}");
}

/// Local `sendmail` passes the same checks. Picked up from maildrop (as
/// root, the test's user, it writes there directly) there is no one to
/// answer, so a REJECT holds the message for the admin instead of losing
/// it; a HOLD holds it as from SMTP.
#[test]
fn local_sendmail_is_checked_and_refusals_are_held() {
    let w = world();
    let s = &w.server;
    for subject in ["please reject me", "hold me please"] {
        let input = format!("From: alice@localhost\r\nSubject: {subject}\r\n\r\nhello\r\n");
        let out = s.cli_with_input(&["sendmail", "bob@localhost"], input.as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            let list = s.queue_list();
            list.contains("(held: content check refused it: no thanks)")
                && list.contains("(held: suspicious subject)")
        }),
        "{}\n{}",
        s.queue_list(),
        s.log()
    );
    assert!(s.uids("bob@localhost").is_empty());
}
