//! sendmail(1) as scripts use it: an ordinary user (cron, PHP `mail()`)
//! queues mail through the daemon's postdrop socket without write access
//! to the queue; `-bv` verifies without sending; `-bs` speaks SMTP on
//! stdin/stdout; the `sendmail` name honours `MERPATI_CONFIG`.

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// Runs `program args` as the unprivileged user nobody, with `stdin`.
fn as_nobody(
    program: &std::path::Path,
    args: &[&str],
    env: (&str, &std::path::Path),
    stdin: &[u8],
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .args(args)
        .env(env.0, env.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) runs the command as nobody");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("output")
}

#[test]
fn an_ordinary_user_can_send_through_postdrop() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    // The test's own temp dir must be reachable (the daemon's data_dir
    // inside it is 0751, its queue 0750).
    std::fs::set_permissions(server.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&server.config_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The classic name, by symlink, finds its config in MERPATI_CONFIG.
    let link = server.dir.path().join("sendmail");
    std::os::unix::fs::symlink(BIN, &link).unwrap();

    // nobody cannot write maildrop ...
    let maildrop = server.queue_dir("maildrop");
    assert_eq!(
        std::fs::metadata(&maildrop).unwrap().permissions().mode() & 0o007,
        0
    );
    // ... and still sends.
    let out = as_nobody(
        &link,
        &["-F", "Cron Daemon", "-oi", "alice@localhost"],
        ("MERPATI_CONFIG", &server.config_path),
        b"Subject: from cron\n\nthe job ran\n",
    );
    assert_success(&out, "sendmail as nobody");
    let uids = server.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", server.log());
    let message = server.message("alice@localhost", uids[0]);
    assert!(
        message.contains("(Merpati, from userid 65534)"),
        "{message}"
    );
    assert!(
        message.contains("From: \"Cron Daemon\" <nobody@"),
        "{message}"
    );
    assert!(message.contains("Subject: from cron\r\n"), "{message}");
    assert!(
        server.log().contains(": uid=65534 from=<nobody@"),
        "{}",
        server.log()
    );

    // mailq works for any user too (the daemon lists the queue).
    let out = as_nobody(
        &link,
        &["someone@example.com"],
        ("MERPATI_CONFIG", &server.config_path),
        b"Subject: waits\n\nfor DNS\n",
    );
    assert_success(&out, "sendmail to a remote address as nobody");
    let mailq = server.dir.path().join("mailq");
    std::os::unix::fs::symlink(BIN, &mailq).unwrap();
    assert!(wait_until(std::time::Duration::from_secs(30), || {
        let out = as_nobody(&mailq, &[], ("MERPATI_CONFIG", &server.config_path), b"");
        String::from_utf8_lossy(&out.stdout).contains("someone@example.com")
    }));
    let out = as_nobody(&mailq, &[], ("MERPATI_CONFIG", &server.config_path), b"");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.starts_with("-Queue ID-"), "{listing}");
    assert!(listing.contains(" nobody@"), "{listing}");

    // A refusal is reported to the user, nothing is queued.
    let out = as_nobody(
        &link,
        &["bad address@@"],
        ("MERPATI_CONFIG", &server.config_path),
        b"Subject: x\n\nx\n",
    );
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn verify_sends_nothing_and_smtp_mode_queues() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    let out = server.cli(&[
        "sendmail",
        "-bv",
        "alice@localhost",
        "nobody@localhost",
        "x@example.com",
    ]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("alice@localhost... deliverable: local mailbox of alice"),
        "{said}"
    );
    assert!(
        said.contains("nobody@localhost... undeliverable: 5.1.1"),
        "{said}"
    );
    assert!(
        said.contains("x@example.com... deliverable: relay to example.com"),
        "{said}"
    );
    assert_eq!(server.queue_list(), "Mail queue is empty\n");
    assert!(server.uids("alice@localhost").is_empty());

    let script = b"EHLO me\r\nMAIL FROM:<root@localhost>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: over stdio\r\n\r\nhello\r\n.\r\nQUIT\r\n";
    let out = server.cli_with_input(&["sendmail", "-bs"], script);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("220 "), "{said}");
    assert!(said.contains("250 2.0.0 Ok: queued as "), "{said}");
    assert!(said.ends_with("221 2.0.0 Bye\r\n"), "{said}");
    let uids = server.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1);
    assert!(
        server
            .message("alice@localhost", uids[0])
            .contains("Subject: over stdio\r\n")
    );

    // -q is a queue flush, -N/-R/-V become the DSN parameters.
    let out = server.cli(&["sendmail", "-q"]);
    assert_success(&out, "sendmail -q");
    assert!(
        text(&out).contains("deferred message(s) scheduled"),
        "{}",
        text(&out)
    );
}
