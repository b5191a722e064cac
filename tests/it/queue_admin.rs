//! The queue as an administrator sees it: `merpati queue list` (mailq),
//! hold / release / requeue / delete / flush, quarantine of corrupt files,
//! start-up recovery, and over-quota deferral.

use crate::harness::*;
use std::time::{Duration, SystemTime};

const QUOTA_REASON: &str = "4.2.2 mailbox full (over quota)";
/// Indentation of the reason and recipient lines in `queue list`.
const INDENT: &str = "                                                ";

fn message(from: &str, to: &str, subject: &str) -> String {
    format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello from the queue tests.\r\n")
}

/// A message of about 1 KB.
fn kilobyte_message(to: &str, subject: &str) -> String {
    let mut body = format!("From: bob@localhost\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n");
    for i in 0..16 {
        body.push_str(&format!("line {i:02} {}\r\n", "x".repeat(56)));
    }
    body
}

/// The `attempts` field of a queue file.
fn attempts(server: &Server, queue: &str, id: &str) -> Option<u32> {
    let bytes = std::fs::read(server.queue_dir(queue).join(id)).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .take_while(|l| !l.starts_with("body "))
        .find_map(|l| l.strip_prefix("attempts ")?.parse().ok())
}

/// Waits until `id` sits in `queue` alone, with `attempts` attempts made.
fn wait_settled(server: &Server, id: &str, queue: &str, want_attempts: u32) {
    let ok = wait_until(Duration::from_secs(30), || {
        server.queues_holding(id) == [queue] && attempts(server, queue, id) == Some(want_attempts)
    });
    assert!(
        ok,
        "{id} did not settle in {queue} with attempts {want_attempts}: in {:?}, attempts {:?}\n{}",
        server.queues_holding(id),
        attempts(server, queue, id),
        server.log()
    );
}

/// The line of `queue list` that starts with `id`.
fn id_line<'a>(listing: &'a str, id: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not in the listing:\n{listing}"))
}

/// How many delivery attempts the log shows for `id` to `rcpt`.
fn attempts_logged(server: &Server, id: &str, rcpt: &str) -> usize {
    server.log().matches(&format!("{id}: to=<{rcpt}>")).count()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Seconds from now until `t` (negative in the past).
fn secs_from_now(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn mtime(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn deferred_mail_hold_release_requeue_delete_round_trip() {
    let server = Builder::default()
        .queue("min_backoff = \"1h\"\nmax_backoff = \"2h\"")
        .start();
    let id = server.submit(
        "alice@localhost",
        &["someone@example.com"],
        &message("alice@localhost", "someone@example.com", "round trip"),
    );
    assert_eq!(id.len(), 16, "{id}");
    wait_settled(&server, &id, "deferred", 1);

    // mailq layout: header, ID line, (reason), recipient, blank, summary.
    let listing = server.queue_list();
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[0].starts_with("-Queue ID-"), "{listing}");
    assert!(
        lines[0].contains("--Size--") && lines[0].contains("-Sender/Recipient-"),
        "{listing}"
    );
    let line = id_line(&listing, &id);
    assert!(
        line.starts_with(&format!("{id} ")),
        "no mark for deferred mail: {line:?}"
    );
    assert!(line.ends_with(" alice@localhost"), "{line:?}");
    let size: u64 = line[17..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 100, "{line:?}");
    assert!(
        listing.contains(&format!(
            "{line}\n{INDENT}({REMOTE_REASON})\n{INDENT}someone@example.com\n\n"
        )),
        "{listing}"
    );
    assert!(
        listing.ends_with(&format!(
            "-- {} Kbytes in 1 Requests.\n",
            size.div_ceil(1024)
        )),
        "{listing}"
    );
    assert_eq!(attempts_logged(&server, &id, "someone@example.com"), 1);
    let log = server.log();
    assert!(log.contains("status=deferred (4.4.3"), "{log}");

    // The next attempt is the file's mtime, min_backoff (1h ±10%) away.
    let due = secs_from_now(mtime(&server.queue_dir("deferred").join(&id)));
    assert!(due > 3000.0 && due < 4000.0, "next attempt in {due} s");

    // hold
    let out = server.cli(&["queue", "hold", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}: placed on hold\n"));
    assert!(
        stderr(&out).contains("1 message(s) placed on hold"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.queues_holding(&id), ["hold"]);
    let listing = server.queue_list();
    assert!(
        id_line(&listing, &id).starts_with(&format!("{id}! ")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{INDENT}({REMOTE_REASON})\n")),
        "{listing}"
    );

    // Holding twice names where the message is.
    let again = server.cli(&["queue", "hold", &id]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains(&format!("{id}: is in hold")),
        "{}",
        stderr(&again)
    );

    // A flush does not touch held mail.
    let flushed = server.cli_ok(&["queue", "flush"]);
    assert_eq!(flushed, "0 deferred message(s) scheduled for delivery\n");
    assert_eq!(server.queues_holding(&id), ["hold"]);

    // release: back to deferred, due now, retried at once (SIGUSR1).
    let out = server.cli(&["queue", "release", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}: released from hold\n"));
    wait_settled(&server, &id, "deferred", 2);
    assert_eq!(
        attempts_logged(&server, &id, "someone@example.com"),
        2,
        "released mail must be retried exactly once:\n{}",
        server.log()
    );
    let listing = server.queue_list();
    assert!(
        id_line(&listing, &id).starts_with(&format!("{id} ")),
        "{listing}"
    );

    // Releasing mail that is not held is refused, naming its queue.
    let out = server.cli(&["queue", "release", &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("{id}: is in deferred")),
        "{}",
        stderr(&out)
    );

    // requeue: a fresh attempt count, delivered again from incoming.
    let out = server.cli(&["queue", "requeue", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Once: the file it has just put into incoming is not requeued again.
    assert_eq!(stdout(&out), format!("{id}: requeued\n"));
    assert!(
        stderr(&out).contains("1 message(s) requeued"),
        "{}",
        stderr(&out)
    );
    wait_settled(&server, &id, "deferred", 1);
    assert_eq!(
        attempts_logged(&server, &id, "someone@example.com"),
        3,
        "{}",
        server.log()
    );
    let due = secs_from_now(mtime(&server.queue_dir("deferred").join(&id)));
    assert!(
        due > 3000.0,
        "requeued mail deferred again must back off: {due} s"
    );

    // delete
    let out = server.cli(&["queue", "delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}: deleted\n"));
    assert!(server.queues_holding(&id).is_empty());
    assert_eq!(server.queue_list(), "Mail queue is empty\n");
    let out = server.cli(&["queue", "delete", &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("{id}: no such message in the queue")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn queue_commands_on_all_and_on_bad_ids() {
    let server = server();
    let first = server.submit(
        "alice@localhost",
        &["someone@example.com"],
        &message("alice@localhost", "someone@example.com", "first"),
    );
    // The null sender is listed as MAILER-DAEMON.
    let second = server.submit(
        "",
        &["other@example.org", "third@example.com"],
        &message("MAILER-DAEMON@localhost", "other@example.org", "second"),
    );
    wait_settled(&server, &first, "deferred", 1);
    wait_settled(&server, &second, "deferred", 1);

    let listing = server.queue_list();
    assert!(
        id_line(&listing, &second).ends_with(" MAILER-DAEMON"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{INDENT}other@example.org\n")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{INDENT}third@example.com\n")),
        "{listing}"
    );
    // One reason line per deferred recipient (example.com and example.org).
    assert_eq!(
        listing.matches("(4.4.3 DNS lookup for example.").count(),
        3,
        "{listing}"
    );
    let total: u64 = [&first, &second]
        .iter()
        .map(|id| {
            id_line(&listing, id)[17..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(
        listing.ends_with(&format!(
            "-- {} Kbytes in 2 Requests.\n",
            total.div_ceil(1024)
        )),
        "{listing}"
    );

    let out = server.cli(&["queue", "hold", "ALL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("{first}: placed on hold\n")),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!("{second}: placed on hold\n")),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("2 message(s) placed on hold"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.queue_files("hold"), {
        let mut v = vec![first.clone(), second.clone()];
        v.sort();
        v
    });
    assert!(server.queue_files("deferred").is_empty());
    let listing = server.queue_list();
    assert!(
        id_line(&listing, &first).starts_with(&format!("{first}!")),
        "{listing}"
    );
    assert!(
        id_line(&listing, &second).starts_with(&format!("{second}!")),
        "{listing}"
    );

    let out = server.cli(&["queue", "release", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 message(s) released from hold"),
        "{}",
        stderr(&out)
    );
    wait_settled(&server, &first, "deferred", 2);
    wait_settled(&server, &second, "deferred", 2);

    let out = server.cli(&["queue", "delete", "ALL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 message(s) deleted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.queue_list(), "Mail queue is empty\n");

    // ALL on an empty queue is not an error.
    let out = server.cli(&["queue", "hold", "ALL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("0 message(s) placed on hold"),
        "{}",
        stderr(&out)
    );

    // Not an ID at all.
    let out = server.cli(&["queue", "hold", "NOSUCHID"]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("NOSUCHID: not a queue ID"),
        "{}",
        stderr(&out)
    );
    // A path is not an ID either.
    let out = server.cli(&["queue", "delete", "../../run/merpati.pid"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a queue ID"), "{}", stderr(&out));
    assert!(server.data_dir().join("run/merpati.pid").exists());
    // Well-formed, but absent.
    for op in ["hold", "release", "delete", "requeue"] {
        let out = server.cli(&["queue", op, "0123456789ABCDEF"]);
        assert!(!out.status.success(), "queue {op}");
        assert!(
            stderr(&out).contains("0123456789ABCDEF: no such message in the queue"),
            "queue {op}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn corrupt_queue_files_are_quarantined_and_temp_files_removed() {
    let mut server = server();
    server.kill9();
    let incoming = server.queue_dir("incoming");
    std::fs::write(
        incoming.join("0123456789ABCDEF"),
        b"\x00\x01garbage, not a queue file\n",
    )
    .unwrap();
    // Well-formed start, truncated body.
    std::fs::write(
        incoming.join("0123456789ABCDE1"),
        b"MERPATI-QUEUE 1\narrival 1\nsender a@localhost\nrcpt alice@localhost\t\t\t\nbody 500\nshort",
    )
    .unwrap();
    std::fs::write(
        incoming.join(".tmp-0123456789ABCDE2"),
        b"MERPATI-QUEUE 1\narriv",
    )
    .unwrap();
    std::fs::write(
        server.queue_dir("deferred").join(".tmp-0123456789ABCDE3"),
        b"MERPA",
    )
    .unwrap();

    // The CLI copes with them while the daemon is down.
    assert_eq!(server.queue_list(), "Mail queue is empty\n");

    server.spawn();
    // Recovery runs before the daemon listens.
    assert!(
        !incoming.join(".tmp-0123456789ABCDE2").exists(),
        "half-written file kept"
    );
    assert!(
        !server
            .queue_dir("deferred")
            .join(".tmp-0123456789ABCDE3")
            .exists(),
        "half-written file kept"
    );
    let quarantined = wait_until(Duration::from_secs(30), || {
        server.queue_files("corrupt") == ["0123456789ABCDE1", "0123456789ABCDEF"]
    });
    assert!(
        quarantined,
        "corrupt: {:?}, incoming: {:?}, active: {:?}\n{}",
        server.queue_files("corrupt"),
        server.queue_files("incoming"),
        server.queue_files("active"),
        server.log()
    );
    assert!(server.queue_files("incoming").is_empty());
    assert!(server.queue_files("active").is_empty());
    let log = server.log();
    assert!(
        log.contains("0123456789ABCDEF: corrupt queue file"),
        "{log}"
    );
    assert!(
        log.contains("0123456789ABCDE1: corrupt queue file (message is truncated"),
        "{log}"
    );
    assert!(log.contains("moved to corrupt"), "{log}");
    // Kept for inspection, byte for byte.
    assert_eq!(
        std::fs::read(server.queue_dir("corrupt").join("0123456789ABCDEF")).unwrap(),
        b"\x00\x01garbage, not a queue file\n"
    );
    assert_eq!(server.queue_list(), "Mail queue is empty\n");

    // The daemon still works, and an admin can delete quarantined files.
    server.add_user("alice@localhost", "pw");
    server.submit(
        "bob@localhost",
        &["alice@localhost"],
        &message("bob@localhost", "alice@localhost", "still works"),
    );
    assert_eq!(server.wait_for_mail("alice@localhost", 1).len(), 1);
    let out = server.cli(&["queue", "delete", "0123456789ABCDEF"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.queue_files("corrupt"), ["0123456789ABCDE1"]);
}

#[test]
fn a_file_left_in_active_is_delivered_after_restart() {
    let mut server = server();
    server.add_user("alice@localhost", "pw");
    server.cli_ok(&["user", "quota", "alice@localhost", "100"]);
    let id = server.submit(
        "bob@localhost",
        &["alice@localhost"],
        &kilobyte_message("alice@localhost", "left in active"),
    );
    wait_settled(&server, &id, "deferred", 1);
    server.cli_ok(&["queue", "hold", &id]);

    // As if the daemon had died while delivering it.
    server.kill9();
    std::fs::rename(
        server.queue_dir("hold").join(&id),
        server.queue_dir("active").join(&id),
    )
    .unwrap();
    let listing = server.queue_list();
    assert!(
        id_line(&listing, &id).starts_with(&format!("{id}*")),
        "active mail is marked *: {listing}"
    );
    // Store commands work with the daemon stopped.
    let out = server.cli_ok(&["user", "quota", "alice@localhost", "0"]);
    assert!(out.contains("quota of alice is now 0 bytes"), "{out}");

    server.spawn();
    assert!(
        server.wait_for_log("moved 1 messages from active back to incoming", 1),
        "{}",
        server.log()
    );
    let uids = server.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", server.log());
    let text = server.message("alice@localhost", uids[0]);
    assert!(text.contains("Subject: left in active\r\n"), "{text}");
    assert!(text.contains(&format!(" id {id}")), "{text}");
    assert!(wait_until(Duration::from_secs(30), || server
        .queues_holding(&id)
        .is_empty()));
    assert_eq!(server.queue_list(), "Mail queue is empty\n");
    // Delivered once, not once per attempt.
    assert_eq!(server.uids("alice@localhost").len(), 1);
}

#[test]
fn over_quota_mail_is_deferred_then_delivered_after_flush() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    let out = server.cli_ok(&["user", "quota", "alice@localhost", "100"]);
    assert!(out.contains("quota of alice is now 100 bytes"), "{out}");
    let id = server.submit(
        "bob@localhost",
        &["alice@localhost"],
        &kilobyte_message("alice@localhost", "too big"),
    );
    wait_settled(&server, &id, "deferred", 1);
    let listing = server.queue_list();
    assert!(
        listing.contains(&format!(
            "{INDENT}({QUOTA_REASON})\n{INDENT}alice@localhost\n"
        )),
        "{listing}"
    );
    let log = server.log();
    assert!(
        log.contains(&format!("{id}: to=<alice@localhost>")),
        "{log}"
    );
    assert!(
        log.contains("dsn=4.2.2, status=deferred (4.2.2 mailbox full"),
        "{log}"
    );
    assert!(server.uids("alice@localhost").is_empty());

    server.cli_ok(&["user", "quota", "alice@localhost", "1MiB"]);
    let out = server.cli_ok(&["queue", "flush"]);
    assert_eq!(out, "1 deferred message(s) scheduled for delivery\n");
    let uids = server.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", server.log());
    assert!(
        server
            .message("alice@localhost", uids[0])
            .contains("Subject: too big\r\n")
    );
    assert!(wait_until(Duration::from_secs(30), || server
        .queues_holding(&id)
        .is_empty()));
    assert_eq!(server.queue_list(), "Mail queue is empty\n");
    let users = server.cli_ok(&["user", "list"]);
    let alice = users
        .lines()
        .find(|l| l.starts_with("alice\t"))
        .unwrap_or_default();
    assert!(
        alice.contains("quota=1048576") && !alice.contains("used=0\t"),
        "{users}"
    );
}

#[test]
fn flush_with_the_daemon_stopped_says_so() {
    let mut server = server();
    let id = server.submit(
        "alice@localhost",
        &["someone@example.com"],
        &message(
            "alice@localhost",
            "someone@example.com",
            "flush while stopped",
        ),
    );
    wait_settled(&server, &id, "deferred", 1);
    let file = server.queue_dir("deferred").join(&id);
    assert!(secs_from_now(mtime(&file)) > 200.0);
    // The CLI finds the daemon through its pid file.
    let pid_file = std::fs::read_to_string(server.data_dir().join("run/merpati.pid")).unwrap();
    assert_eq!(pid_file.trim(), server.pid().unwrap().to_string());

    // Stopped cleanly: no pid file.
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(30)),
        "daemon did not stop"
    );
    assert!(!server.data_dir().join("run/merpati.pid").exists());
    let out = server.cli(&["queue", "flush"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "1 deferred message(s) scheduled for delivery (the daemon is not running)\n"
    );
    assert!(
        secs_from_now(mtime(&file)) < 5.0,
        "flush did not make the message due"
    );
    let listing = server.queue_list();
    assert!(listing.contains(&format!("({REMOTE_REASON})")), "{listing}");

    // Killed: a stale pid file names no process.
    server.spawn();
    assert!(
        server.wait_for_log(&format!("{id}: to=<someone@example.com>"), 2),
        "{}",
        server.log()
    );
    wait_settled(&server, &id, "deferred", 2);
    server.kill9();
    assert!(server.data_dir().join("run/merpati.pid").exists());
    let out = server.cli(&["queue", "flush"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "1 deferred message(s) scheduled for delivery (the daemon is not running)\n"
    );

    // At its next start the daemon retries it.
    server.spawn();
    assert!(
        server.wait_for_log(&format!("{id}: to=<someone@example.com>"), 3),
        "{}",
        server.log()
    );
}
