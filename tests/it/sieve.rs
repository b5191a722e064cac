//! Sieve at local delivery (issue 10, first part): scripts stored with
//! `merpati sieve put` (compiled at upload; errors with line and column),
//! activated, and run per recipient: fileinto (with :create), a missing
//! mailbox falling back to INBOX, discard, redirect :copy to another
//! user, subaddress tests; and the active script cannot be deleted.

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
