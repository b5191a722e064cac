//! Where mail goes: aliases(5) reloaded by `merpati newaliases`, virtual
//! alias domains with a catch-all, virtual mailbox domains, bounces for
//! alias targets that do not exist, and one stored body per message.

use crate::harness::*;
use std::time::Duration;

fn message(from: &str, to: &str, subject: &str) -> String {
    format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nRouting test.\r\n")
}

/// Subjects in a mailbox, from `mailbox list` (last column).
fn subjects(server: &Server, address: &str) -> Vec<String> {
    server
        .cli_ok(&["mailbox", "list", address])
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap_or_default().to_string())
        .collect()
}

fn rcpt_reply(server: &Server, rcpt: &str) -> String {
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<bob@localhost>");
    c.cmd(&format!("RCPT TO:<{rcpt}>"))
}

#[test]
fn aliases_file_reloaded_by_newaliases() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    server.add_user("bob@localhost", "pw");
    // Before the aliases exist, the name is unknown.
    assert!(rcpt_reply(&server, "staff@localhost").starts_with("550 5.1.1 "));

    std::fs::write(
        server.data_dir().join("aliases"),
        "# test aliases\nstaff: alice, bob\ninfo: alice@localhost,\n  remote@example.com\nghost: nobody\nthis line is broken\n",
    )
    .unwrap();
    let out = server.cli(&["newaliases"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.ends_with("aliases: 3 aliases, daemon reloaded\n"),
        "{stdout}"
    );
    assert!(stderr.contains("line 6: missing ':'"), "{stderr}");
    assert!(
        server.wait_for_log("reloaded configuration, aliases", 1),
        "{}",
        server.log()
    );

    // staff -> alice and bob.
    let id = server.submit(
        "carol@example.org",
        &["staff@localhost"],
        &message("carol@example.org", "staff@localhost", "to staff"),
    );
    assert_eq!(
        server.wait_for_mail("alice@localhost", 1).len(),
        1,
        "{}",
        server.log()
    );
    assert_eq!(
        server.wait_for_mail("bob@localhost", 1).len(),
        1,
        "{}",
        server.log()
    );
    let to_bob = server.message("bob@localhost", 1);
    assert!(to_bob.starts_with("Return-Path: <carol@example.org>\r\nX-Original-To: staff@localhost\r\nDelivered-To: bob@"), "{to_bob}");
    assert!(to_bob.contains(&format!(" id {id}")), "{to_bob}");
    assert_eq!(subjects(&server, "alice@localhost"), ["to staff"]);

    // info -> alice here, remote@example.com deferred.
    let id = server.submit(
        "carol@example.org",
        &["info@localhost"],
        &message("carol@example.org", "info@localhost", "to info"),
    );
    assert_eq!(
        server.wait_for_mail("alice@localhost", 2).len(),
        2,
        "{}",
        server.log()
    );
    assert!(
        wait_until(Duration::from_secs(30), || server.queues_holding(&id)
            == ["deferred"]),
        "{}",
        server.log()
    );
    let listing = server.queue_list();
    assert!(listing.contains(&format!("({REMOTE_REASON})")), "{listing}");
    let rcpts: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("    ") && !l.trim_start().starts_with('('))
        .map(str::trim)
        .collect();
    // What waits is the remote part of the alias, as in Postfix's mailq;
    // alice's copy is delivered and must not be listed as pending.
    assert_eq!(rcpts, ["remote@example.com"], "{listing}");
    let log = server.log();
    assert!(
        log.contains(&format!(
            "{id}: to=<remote@example.com>, orig_to=<info@localhost>"
        )),
        "{log}"
    );
    assert_eq!(subjects(&server, "bob@localhost"), ["to staff"]);

    // ghost -> nobody: accepted at RCPT, then bounced to the sender.
    assert!(rcpt_reply(&server, "ghost@localhost").starts_with("250"));
    let id = server.submit(
        "alice@localhost",
        &["ghost@localhost"],
        &message("alice@localhost", "ghost@localhost", "to ghost"),
    );
    let uids = server.wait_for_mail("alice@localhost", 3);
    assert_eq!(uids.len(), 3, "{}", server.log());
    let dsn = server.message("alice@localhost", uids[2]);
    assert!(
        dsn.contains("Subject: Undelivered Mail Returned to Sender\r\n"),
        "{dsn}"
    );
    assert!(dsn.contains("Return-Path: <>\r\n"), "{dsn}");
    assert!(dsn.contains("Action: failed\r\n"), "{dsn}");
    assert!(dsn.contains("Status: 5.1.1\r\n"), "{dsn}");
    assert!(dsn.contains("nobody@"), "{dsn}");
    assert!(
        dsn.contains("Subject: to ghost"),
        "the DSN quotes the original: {dsn}"
    );
    let log = server.log();
    assert!(
        log.contains(&format!("{id}: sender delivery status notification: ")),
        "{log}"
    );
    assert!(wait_until(Duration::from_secs(30), || server
        .queues_holding(&id)
        .is_empty()));
}

#[test]
fn virtual_alias_domain_with_catch_all_and_virtual_mailbox_domain() {
    let server = Builder::default()
        .top("virtual_mailbox_domains = [\"corp.test\"]")
        .tail(
            "[virtual_alias]\ndomains = [\"example.net\"]\n[virtual_alias.map]\n\"sales@example.net\" = [\"alice@localhost\"]\n\"@example.net\" = [\"bob@localhost\"]",
        )
        .start();
    server.add_user("alice@localhost", "pw");
    server.add_user("bob@localhost", "pw");
    server.add_user("carol@corp.test", "pw");
    let users = server.cli_ok(&["user", "list"]);
    assert!(
        users.lines().any(|l| l.starts_with("carol@corp.test\t")),
        "{users}"
    );

    server.submit(
        "dave@example.org",
        &["sales@example.net"],
        &message("dave@example.org", "sales@example.net", "to sales"),
    );
    server.submit(
        "dave@example.org",
        &["anything@example.net"],
        &message("dave@example.org", "anything@example.net", "to anything"),
    );
    server.submit(
        "dave@example.org",
        &["carol@corp.test"],
        &message("dave@example.org", "carol@corp.test", "to carol"),
    );

    assert_eq!(
        server.wait_for_mail("alice@localhost", 1).len(),
        1,
        "{}",
        server.log()
    );
    assert_eq!(
        server.wait_for_mail("bob@localhost", 1).len(),
        1,
        "{}",
        server.log()
    );
    assert_eq!(
        server.wait_for_mail("carol@corp.test", 1).len(),
        1,
        "{}",
        server.log()
    );
    assert_eq!(subjects(&server, "alice@localhost"), ["to sales"]);
    assert_eq!(subjects(&server, "bob@localhost"), ["to anything"]);
    assert_eq!(subjects(&server, "carol@corp.test"), ["to carol"]);
    let to_bob = server.message("bob@localhost", 1);
    assert!(
        to_bob.contains("X-Original-To: anything@example.net\r\nDelivered-To: bob@localhost\r\n"),
        "{to_bob}"
    );

    // carol's account is carol@corp.test; carol@localhost does not exist.
    let reply = rcpt_reply(&server, "carol@localhost");
    assert!(reply.starts_with("550 5.1.1 "), "{reply}");
    // A virtual mailbox domain has no catch-all of its own.
    let reply = rcpt_reply(&server, "nobody@corp.test");
    assert!(reply.starts_with("550 5.1.1 "), "{reply}");
    // The catch-all accepts any name in the alias domain.
    assert!(rcpt_reply(&server, "whoever@example.net").starts_with("250"));
    assert!(
        wait_until(Duration::from_secs(30), || server.queue_list()
            == "Mail queue is empty\n"),
        "{}",
        server.queue_list()
    );
}

#[test]
fn one_message_to_three_local_recipients_stores_the_body_once() {
    let server = server();
    for user in ["alice", "bob", "carol"] {
        server.add_user(&format!("{user}@localhost"), "pw");
    }
    let blobs = server.data_dir().join("store/blobs");
    let count = || {
        files_under(&blobs)
            .iter()
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
            .count()
    };
    let before = count();
    let mut body = message(
        "dave@example.org",
        "alice@localhost, bob@localhost, carol@localhost",
        "shared body",
    );
    // Larger than the store's inline limit (128 KiB), so the body is a blob
    // file we can count; smaller bodies live inside the database.
    body.push_str(&"A line that makes the body worth sharing.\r\n".repeat(4000));
    server.submit(
        "dave@example.org",
        &["alice@localhost", "bob@localhost", "carol@localhost"],
        &body,
    );
    for user in ["alice", "bob", "carol"] {
        assert_eq!(
            server.wait_for_mail(&format!("{user}@localhost"), 1).len(),
            1,
            "{}",
            server.log()
        );
    }
    assert_eq!(count(), before + 1, "blob files: {:?}", files_under(&blobs));
    // Each copy still reads back whole, with its own prefix.
    for user in ["alice", "bob", "carol"] {
        let text = server.message(&format!("{user}@localhost"), 1);
        assert!(
            text.contains(&format!("Delivered-To: {user}@localhost\r\n")),
            "{text}"
        );
        assert!(
            text.ends_with("A line that makes the body worth sharing.\r\n"),
            "{text}"
        );
    }
}
