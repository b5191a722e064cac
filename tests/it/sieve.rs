//! Sieve at local delivery (issue 10): scripts stored with
//! `merpati sieve put` (compiled at upload; errors with line and column),
//! activated, and run per recipient: fileinto (with :create), a missing
//! mailbox falling back to INBOX, discard, reject, redirect (:copy to
//! another user, to another instance with SRS, loops refused), vacation
//! once per sender and never to a list, imap4flags, variables with
//! :matches captures, editheader, include of a global script and the
//! administrator's scripts, duplicate, enotify and fcc, and a runtime
//! error keeping the message.

use crate::harness::{Server, server, wait_until};
use std::time::Duration;

const SCRIPT: &str = r#"require ["fileinto", "envelope", "subaddress", "copy", "reject", "body"];
# Bills go to Finance, made on first use.
if header :contains "subject" "invoice" { fileinto :create "Finance"; stop; }
if envelope :detail "to" "lists" { fileinto :create "Lists"; stop; }
if header :contains "subject" "drop me" { discard; stop; }
if header :contains "subject" "forward" { redirect :copy "carol@localhost"; }
if header :contains "subject" "no such" { fileinto "Missing"; }
if body :contains "unsubscribe" { reject "I did not sign up for this"; }
"#;

fn send(server: &Server, to: &str, subject: &str) {
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    let reply = c.send_mail(
        "alice@localhost",
        &[to],
        &format!("From: <alice@localhost>\r\nSubject: {subject}\r\n\r\nhello\r\n"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    c.cmd("QUIT");
}

fn send_body(server: &Server, subject: &str, body: &str) {
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    let reply = c.send_mail(
        "alice@localhost",
        &["bob@localhost"],
        &format!("From: <alice@localhost>\r\nSubject: {subject}\r\n\r\n{body}\r\n"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    c.cmd("QUIT");
}

fn count(server: &Server, address: &str, mailbox: &str) -> usize {
    let out = server.cli(&["mailbox", "list", address, mailbox]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn scripts_file_discard_and_redirect_at_delivery() {
    let server = server();
    server.add_user("bob@localhost", "pw");
    server.add_user("carol@localhost", "pw");
    // A compile error names the place and stores nothing.
    let bad = server.cli_with_input(
        &["sieve", "put", "bob@localhost", "broken"],
        b"require \"fileinto\";\nif header :is \"subject\" {\n  keep;\n}\n",
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("line 2, column 4: header: expected a string"),
        "{err}"
    );
    assert_eq!(server.cli_ok(&["sieve", "list", "bob@localhost"]), "");

    let out = server.cli_with_input(
        &["sieve", "put", "bob@localhost", "rules"],
        SCRIPT.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.cli_ok(&["sieve", "activate", "bob@localhost", "rules"]);
    assert_eq!(
        server.cli_ok(&["sieve", "list", "bob@localhost"]),
        "rules ACTIVE\n"
    );
    assert_eq!(
        server.cli_ok(&["sieve", "get", "bob@localhost", "rules"]),
        SCRIPT
    );

    send(&server, "bob@localhost", "your invoice");
    send(&server, "bob+lists@localhost", "digest");
    send(&server, "bob@localhost", "drop me please");
    send(&server, "bob@localhost", "forward this");
    send(&server, "bob@localhost", "no such folder");
    send(&server, "bob@localhost", "plain");
    send_body(&server, "newsletter", "Click to unsubscribe.");
    assert!(
        wait_until(Duration::from_secs(30), || {
            let log = server.log();
            log.matches("status=sent").count() >= 7 && log.contains("status=bounced")
        }),
        "{}",
        server.log()
    );
    assert_eq!(count(&server, "bob@localhost", "Finance"), 1);
    assert_eq!(count(&server, "bob@localhost", "Lists"), 1);
    // forward (kept too, :copy), no such folder (kept), plain.
    assert_eq!(count(&server, "bob@localhost", "INBOX"), 3);
    assert_eq!(count(&server, "carol@localhost", "INBOX"), 1);
    let log = server.log();
    assert!(
        log.contains("discarded by the recipient's Sieve script"),
        "{log}"
    );
    assert!(
        log.contains("fileinto \"Missing\": no such mailbox; kept instead")
            && log.contains("rejected by the recipient's Sieve script: I did not sign up for this"),
        "{log}"
    );

    // The active script stays until deactivated.
    assert!(
        !server
            .cli(&["sieve", "delete", "bob@localhost", "rules"])
            .status
            .success()
    );
    server.cli_ok(&["sieve", "deactivate", "bob@localhost"]);
    server.cli_ok(&["sieve", "delete", "bob@localhost", "rules"]);
    assert_eq!(server.cli_ok(&["sieve", "list", "bob@localhost"]), "");
    send(&server, "bob@localhost", "your invoice again");
    assert!(wait_until(Duration::from_secs(30), || count(
        &server,
        "bob@localhost",
        "INBOX"
    ) == 4));
}

fn send_message(server: &Server, from: &str, to: &str, message: &str) {
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    let reply = c.send_mail(from, &[to], message);
    assert!(reply.starts_with("250"), "{reply}");
    c.cmd("QUIT");
}

/// Lines of `merpati mailbox list`: uid, size, date, flags, from, subject.
fn listing(server: &Server, address: &str, mailbox: &str) -> Vec<String> {
    let out = server.cli(&["mailbox", "list", address, mailbox]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

const AWAY: &str = r#"require ["vacation", "imap4flags", "variables", "fileinto"];
if header :matches "list-id" "*<*.lists.test>" { fileinto :create "Lists/${2}"; }
if header :contains "subject" "urgent" { addflag "\\Flagged"; }
if header :matches "subject" "*" { set "subject" "${1}"; }
vacation :days 1 :subject "Away: ${subject}" :addresses ["bob@localhost"]
  "I am away until Monday.";
"#;

#[test]
fn vacation_once_per_sender_flags_and_variables() {
    let server = server();
    for user in ["bob", "alice", "carol", "dave"] {
        server.add_user(&format!("{user}@localhost"), "pw");
    }
    let put = server.cli_with_input(&["sieve", "put", "bob@localhost", "away"], AWAY.as_bytes());
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    server.cli_ok(&["sieve", "activate", "bob@localhost", "away"]);

    send_message(
        &server,
        "alice@localhost",
        "bob@localhost",
        "From: Alice <alice@localhost>\r\nTo: Bob <bob@localhost>\r\nSubject: urgent report\r\nMessage-ID: <m1@client.test>\r\n\r\nplease read\r\n",
    );
    // The reply reaches alice: threaded, automatic, from the null sender.
    assert!(
        wait_until(Duration::from_secs(30), || listing(
            &server,
            "alice@localhost",
            "INBOX"
        )
        .len()
            == 1),
        "{}",
        server.log()
    );
    let inbox = listing(&server, "bob@localhost", "INBOX");
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("\\Flagged"), "imap4flags: {inbox:?}");
    let uid: u32 = listing(&server, "alice@localhost", "INBOX")[0]
        .split('\t')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("uid");
    let reply = server.message("alice@localhost", uid);
    for needle in [
        "Return-Path: <>",
        "Subject: Away: urgent report",
        "Auto-Submitted: auto-replied",
        "In-Reply-To: <m1@client.test>",
        "References: <m1@client.test>",
        "To: <alice@localhost>",
        "I am away until Monday.",
    ] {
        assert!(reply.contains(needle), "{needle} in\n{reply}");
    }

    // A second message from alice: no second reply within :days.
    send_message(
        &server,
        "alice@localhost",
        "bob@localhost",
        "From: <alice@localhost>\r\nTo: <bob@localhost>\r\nSubject: again\r\n\r\nx\r\n",
    );
    // A list message: filed by the captured name, never answered.
    send_message(
        &server,
        "carol@localhost",
        "bob@localhost",
        "From: <carol@localhost>\r\nTo: <bob@localhost>\r\nList-Id: Dev <dev.lists.test>\r\nSubject: digest\r\n\r\nx\r\n",
    );
    // Bob only in Bcc: not answered.
    send_message(
        &server,
        "dave@localhost",
        "bob@localhost",
        "From: <dave@localhost>\r\nTo: <team@elsewhere.test>\r\nSubject: fyi\r\n\r\nx\r\n",
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            let log = server.log();
            log.contains("already replied within 86400s")
                && log.contains("no vacation reply to <carol@localhost>: mailing-list mail")
                && log.contains(
                    "no vacation reply to <dave@localhost>: the user is not in To, Cc or Bcc",
                )
        }),
        "{}",
        server.log()
    );
    // A reply wrongly sent would be queued or delivered by now: the
    // emptiness below is then a finding, not a race.
    assert!(
        wait_until(Duration::from_secs(30), || server.queue_list()
            == "Mail queue is empty\n"),
        "{}",
        server.queue_list()
    );
    assert_eq!(listing(&server, "bob@localhost", "Lists/dev").len(), 1);
    assert_eq!(listing(&server, "alice@localhost", "INBOX").len(), 1);
    assert!(listing(&server, "carol@localhost", "INBOX").is_empty());
    assert!(listing(&server, "dave@localhost", "INBOX").is_empty());
}

#[test]
fn a_script_that_fails_at_run_time_keeps_the_message() {
    let server = crate::harness::Builder::default()
        .tail("[sieve]\nmax_redirects = 2")
        .start();
    server.add_user("bob@localhost", "pw");
    let script =
        "redirect \"a@localhost\";\nredirect \"b@localhost\";\nredirect \"c@localhost\";\n";
    let put = server.cli_with_input(
        &["sieve", "put", "bob@localhost", "loops"],
        script.as_bytes(),
    );
    assert!(put.status.success());
    server.cli_ok(&["sieve", "activate", "bob@localhost", "loops"]);
    send(&server, "bob@localhost", "hello");
    assert!(wait_until(Duration::from_secs(30), || count(
        &server,
        "bob@localhost",
        "INBOX"
    ) == 1));
    assert!(
        server
            .log()
            .contains("sieve: bob: more than 2 redirects; the message is kept"),
        "{}",
        server.log()
    );
}

/// RFC 5228 §2.10.6: a redirect to an address that cannot be routed (no
/// such user in our domain) is an implicit keep, not a lost message.
#[test]
fn a_redirect_that_cannot_be_routed_keeps_the_message() {
    let server = server();
    server.add_user("bob@localhost", "pw");
    let put = server.cli_with_input(
        &["sieve", "put", "bob@localhost", "away"],
        b"redirect \"nobody-here@localhost\";\n",
    );
    assert!(put.status.success());
    server.cli_ok(&["sieve", "activate", "bob@localhost", "away"]);
    send(&server, "bob@localhost", "hello");
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &server,
            "bob@localhost",
            "INBOX"
        ) == 1),
        "{}",
        server.log()
    );
    assert!(
        server
            .log()
            .contains("sieve redirect to <nobody-here@localhost>"),
        "{}",
        server.log()
    );
    assert_eq!(server.queue_list(), "Mail queue is empty\n");
}

#[test]
fn admin_scripts_before_the_users_and_global_includes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = dir.path().join("before.sieve");
    std::fs::write(
        &before,
        "require [\"fileinto\", \"copy\"];\nif header :contains \"subject\" \"audit\" { fileinto :copy :create \"Audit\"; }\n",
    )
    .expect("write");
    let global = dir.path().join("global");
    std::fs::create_dir(&global).expect("mkdir");
    std::fs::write(
        global.join("common.sieve"),
        "require \"fileinto\";\nif header :contains \"subject\" \"newsletter\" { fileinto :create \"News\"; stop; }\n",
    )
    .expect("write");
    let server = crate::harness::Builder::default()
        .tail(&format!(
            "[sieve]\nbefore = [\"{}\"]\nglobal_dir = \"{}\"",
            before.display(),
            global.display()
        ))
        .start();
    server.add_user("bob@localhost", "pw");
    server.add_user("carol@localhost", "pw");
    let script = "require \"include\";\ninclude :global \"common\";\n";
    let put = server.cli_with_input(
        &["sieve", "put", "bob@localhost", "mine"],
        script.as_bytes(),
    );
    assert!(put.status.success());
    server.cli_ok(&["sieve", "activate", "bob@localhost", "mine"]);
    send(&server, "bob@localhost", "audit of the newsletter");
    send(&server, "bob@localhost", "plain");
    // Carol has no script of her own: the admin's still runs.
    send(&server, "carol@localhost", "audit");
    assert!(
        wait_until(Duration::from_secs(30), || {
            count(&server, "bob@localhost", "News") == 1
                && count(&server, "bob@localhost", "INBOX") == 1
                && count(&server, "carol@localhost", "INBOX") == 1
                && count(&server, "carol@localhost", "Audit") == 1
        }),
        "{}",
        server.log()
    );
    assert_eq!(count(&server, "bob@localhost", "Audit"), 1);
}

#[test]
fn editheader_changes_only_that_users_copy() {
    let server = server();
    server.add_user("bob@localhost", "pw");
    server.add_user("carol@localhost", "pw");
    let script = "require [\"editheader\", \"variables\"];\n\
        if header :matches \"subject\" \"*\" { set \"s\" \"${1}\"; }\n\
        addheader \"X-Filtered\" \"by bob's rules (${s})\";\n\
        deleteheader \"X-Tracking\";\n";
    let put = server.cli_with_input(
        &["sieve", "put", "bob@localhost", "edit"],
        script.as_bytes(),
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    server.cli_ok(&["sieve", "activate", "bob@localhost", "edit"]);
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    let reply = c.send_mail(
        "alice@localhost",
        &["bob@localhost", "carol@localhost"],
        "From: <alice@localhost>\r\nSubject: news\r\nX-Tracking: 1234\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(wait_until(Duration::from_secs(30), || {
        count(&server, "bob@localhost", "INBOX") == 1
            && count(&server, "carol@localhost", "INBOX") == 1
    }));
    let bob = server.message("bob@localhost", server.uids("bob@localhost")[0]);
    let carol = server.message("carol@localhost", server.uids("carol@localhost")[0]);
    assert!(
        bob.contains("X-Filtered: by bob's rules (news)\r\n"),
        "{bob}"
    );
    assert!(!bob.contains("X-Tracking"), "{bob}");
    assert!(
        bob.contains("Delivered-To: bob@localhost") && bob.contains("hello"),
        "{bob}"
    );
    assert!(
        carol.contains("X-Tracking: 1234") && !carol.contains("X-Filtered"),
        "{carol}"
    );
}

#[test]
fn duplicate_files_the_second_copy_of_a_message_id() {
    let server = server();
    server.add_user("bob@localhost", "pw");
    let script =
        "require [\"duplicate\", \"fileinto\"];\nif duplicate { fileinto :create \"Dups\"; }\n";
    let put = server.cli_with_input(
        &["sieve", "put", "bob@localhost", "dups"],
        script.as_bytes(),
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    server.cli_ok(&["sieve", "activate", "bob@localhost", "dups"]);
    let message = "From: <alice@localhost>\r\nTo: <bob@localhost>\r\nMessage-ID: <same@client.test>\r\nSubject: twice\r\n\r\nx\r\n";
    send_message(&server, "alice@localhost", "bob@localhost", message);
    assert!(wait_until(Duration::from_secs(30), || count(
        &server,
        "bob@localhost",
        "INBOX"
    ) == 1));
    send_message(&server, "alice@localhost", "bob@localhost", message);
    send_message(
        &server,
        "alice@localhost",
        "bob@localhost",
        &message.replace("same@", "other@"),
    );
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &server,
            "bob@localhost",
            "Dups"
        ) == 1
            && count(&server, "bob@localhost", "INBOX") == 2),
        "{}",
        server.log()
    );
}

#[test]
fn notify_by_mailto_and_fcc_copies() {
    let server = server();
    for user in ["bob", "alice", "carol"] {
        server.add_user(&format!("{user}@localhost"), "pw");
    }
    let script = r#"require ["enotify", "fcc", "vacation", "variables", "mailbox"];
if header :matches "subject" "*" { set "s" "${1}"; }
notify :message "Mail: ${s}" :fcc "Notices" :create "mailto:carol@localhost?subject=Ping";
vacation :fcc "Sent" "Away.";
"#;
    let put = server.cli_with_input(&["sieve", "put", "bob@localhost", "n"], script.as_bytes());
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    server.cli_ok(&["sieve", "activate", "bob@localhost", "n"]);
    send_message(
        &server,
        "alice@localhost",
        "bob@localhost",
        "From: <alice@localhost>\r\nTo: <bob@localhost>\r\nSubject: hello\r\n\r\nx\r\n",
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            count(&server, "carol@localhost", "INBOX") == 1
                && count(&server, "alice@localhost", "INBOX") == 1
                && count(&server, "bob@localhost", "Notices") == 1
                && count(&server, "bob@localhost", "Sent") == 1
        }),
        "{}",
        server.log()
    );
    let note = server.message("carol@localhost", server.uids("carol@localhost")[0]);
    for needle in [
        "Return-Path: <>",
        "Subject: Ping",
        "Auto-Submitted: auto-notified",
        "Mail: hello",
    ] {
        assert!(note.contains(needle), "{needle} in\n{note}");
    }
    // A notification is automatic mail: it is never notified about.
    let script = "require \"enotify\";\nnotify \"mailto:bob@localhost\";\n";
    let put = server.cli_with_input(&["sieve", "put", "carol@localhost", "n"], script.as_bytes());
    assert!(put.status.success());
    server.cli_ok(&["sieve", "activate", "carol@localhost", "n"]);
    send_message(
        &server,
        "alice@localhost",
        "carol@localhost",
        "From: <alice@localhost>\r\nTo: <carol@localhost>\r\nAuto-Submitted: auto-generated\r\nSubject: robot\r\n\r\nx\r\n",
    );
    assert!(wait_until(Duration::from_secs(30), || server
        .log()
        .contains(
            "sieve: carol: no notification: the message is automatic"
        )));
}

#[test]
fn redirect_to_an_address_the_message_already_reached_is_a_loop() {
    let server = server();
    server.add_user("bob@localhost", "pw");
    server.add_user("carol@localhost", "pw");
    let script = "redirect \"carol@localhost\";\n";
    let put = server.cli_with_input(&["sieve", "put", "bob@localhost", "fwd"], script.as_bytes());
    assert!(put.status.success());
    server.cli_ok(&["sieve", "activate", "bob@localhost", "fwd"]);
    // Came back from carol's side: carol is in its Delivered-To trail.
    send_message(
        &server,
        "alice@localhost",
        "bob@localhost",
        "Delivered-To: carol@localhost\r\nFrom: <alice@localhost>\r\nSubject: round\r\n\r\nx\r\n",
    );
    send(&server, "bob@localhost", "fresh");
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &server,
            "bob@localhost",
            "INBOX"
        ) == 1
            && count(&server, "carol@localhost", "INBOX") == 1),
        "{}",
        server.log()
    );
    assert!(
        server
            .log()
            .contains("redirect to <carol@localhost>: mail forwarding loop; kept instead")
    );
    let copy = server.message("carol@localhost", server.uids("carol@localhost")[0]);
    assert!(copy.contains("Delivered-To: bob@localhost"), "{copy}");
}

#[test]
fn redirect_to_another_instance_leaves_with_srs() {
    // D: the other server, where the redirected copy lands.
    let d = crate::harness::Builder::default()
        .hostname("mx.dest.test")
        .top("mydestination = [\"dest.test\", \"localhost\"]")
        .start();
    d.add_user("dave@dest.test", "pw");
    // F: bob's script sends everything on to dave at D.
    let f = crate::harness::Builder::default()
        .hostname("mx.fwd.test")
        .top("mydestination = [\"fwd.test\", \"localhost\"]\nmyorigin = \"fwd.test\"")
        .tail(&format!(
            "[relay]\ntls = \"none\"\n[relay.transports]\n\"dest.test\" = \"127.0.0.1:{}\"",
            d.port
        ))
        .start();
    f.add_user("bob@fwd.test", "pw");
    let put = f.cli_with_input(
        &["sieve", "put", "bob@fwd.test", "fwd"],
        b"redirect \"dave@dest.test\";\n",
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    f.cli_ok(&["sieve", "activate", "bob@fwd.test", "fwd"]);
    send_message(
        &f,
        "alice@orig.test",
        "bob@fwd.test",
        "From: <alice@orig.test>\r\nTo: <bob@fwd.test>\r\nSubject: passing through\r\n\r\nx\r\n",
    );
    assert!(
        wait_until(Duration::from_secs(60), || !d
            .uids("dave@dest.test")
            .is_empty()),
        "F:\n{}\nD:\n{}",
        f.log(),
        d.log()
    );
    let copy = d.message("dave@dest.test", d.uids("dave@dest.test")[0]);
    let return_path = copy.lines().next().unwrap_or_default();
    assert!(
        return_path.starts_with("Return-Path: <SRS0=") && return_path.ends_with("@fwd.test>"),
        "{copy}"
    );
    assert!(copy.contains("Subject: passing through"), "{copy}");
    // Nothing stayed with bob: the redirect replaced the keep.
    assert!(f.uids("bob@fwd.test").is_empty());
}
