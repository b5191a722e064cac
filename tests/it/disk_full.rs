//! A disk that fills up: mail acknowledged with 250 still moves on once
//! there is room again (no restart), and new mail is refused before the
//! client sends it (SMTP 452 4.3.1, IMAP NO [UNAVAILABLE]). The data
//! directory is a real 8 MiB tmpfs, filled with a real file.

use crate::harness::{Builder, Server, queue_id, wait_until};
use crate::imap_client::Imap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Writes a file into the data directory until the disk is full.
fn fill_disk(server: &Server, name: &str) -> PathBuf {
    let path = server.data_dir().join(name);
    let mut file = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    // The last partial chunk too, byte by byte in small steps.
    while file.write_all(&chunk[..512]).is_ok() {}
    let _ = file.sync_all();
    path
}

fn big_message(to: &str) -> String {
    // Above the store's inline limit (128 KiB): the body goes to a file.
    let line = "x".repeat(76);
    let body: Vec<&str> = std::iter::repeat_n(line.as_str(), 4000).collect();
    format!(
        "From: bob@localhost\r\nTo: {to}\r\nSubject: big\r\n\r\n{}\r\n",
        body.join("\r\n")
    )
}

/// A server on an 8 MiB tmpfs with a big message for alice deferred
/// (over quota), so that its next attempt comes when the test says.
fn deferred_big_message(queue: &str) -> (Server, String) {
    let server = Builder::default().tmpfs("8m").queue(queue).start();
    server.add_user("alice@localhost", "pw");
    server.cli_ok(&["user", "quota", "alice@localhost", "100"]);
    let id = server.submit(
        "bob@localhost",
        &["alice@localhost"],
        &big_message("alice@localhost"),
    );
    assert!(
        wait_until(Duration::from_secs(30), || server.queues_holding(&id)
            == ["deferred"]),
        "{}",
        server.log()
    );
    (server, id)
}

#[test]
fn acknowledged_mail_moves_on_after_the_disk_was_full() {
    let (server, id) = deferred_big_message("minfree = \"0\"");
    server.cli_ok(&["user", "quota", "alice@localhost", "0"]);

    let filler = fill_disk(&server, "filler");
    let out = server.cli_ok(&["queue", "flush"]);
    assert!(out.starts_with("1 deferred message(s) scheduled"), "{out}");
    assert!(
        server.wait_for_log(&format!("{id}: cannot defer, will retry"), 1),
        "{}",
        server.log()
    );
    assert_eq!(server.queues_holding(&id), ["active"]);
    assert!(server.queue_list().contains(&format!("{id}*")));
    assert!(server.uids("alice@localhost").is_empty());

    // Room again: the admin's requeue takes the file out of active (the
    // queue manager no longer delivers it) and the message is delivered,
    // without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let out = server.cli_ok(&["queue", "requeue", &id]);
    assert_eq!(out, format!("{id}: requeued\n"));
    let uids = server.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", server.log());
    assert!(
        server
            .message("alice@localhost", uids[0])
            .contains("Subject: big\r\n")
    );
    assert!(wait_until(Duration::from_secs(30), || server
        .queues_holding(&id)
        .is_empty()));
    assert_eq!(server.queue_list(), "Mail queue is empty\n");
}

#[test]
fn unsettled_mail_is_retried_by_the_queue_manager_itself() {
    let (server, id) = deferred_big_message("minfree = \"0\"\nscan_interval = \"3s\"");
    server.cli_ok(&["user", "quota", "alice@localhost", "0"]);
    let filler = fill_disk(&server, "filler");
    server.cli_ok(&["queue", "flush"]);
    assert!(server.wait_for_log(&format!("{id}: cannot defer, will retry"), 1));
    // Room again: the next queue run writes the deferred copy by itself
    // (no restart, no admin); the flush then makes it due now.
    std::fs::remove_file(&filler).expect("remove filler");
    assert!(server.wait_for_log(&format!("{id}: deferred copy written at last"), 1));
    server.cli_ok(&["queue", "flush"]);
    let uids = server.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", server.log());
}

#[test]
fn no_room_refuses_new_mail_before_it_is_sent() {
    let server = Builder::default()
        .tmpfs("8m")
        .queue("minfree = \"1MiB\"")
        .start();
    server.add_user("alice@localhost", "pw");
    let filler = fill_disk(&server, "filler");

    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    let reply = c.cmd("MAIL FROM:<bob@localhost> SIZE=200000");
    assert_eq!(reply, "452 4.3.1 Insufficient system storage\r\n");
    let reply = c.cmd("MAIL FROM:<bob@localhost>");
    assert_eq!(reply, "452 4.3.1 Insufficient system storage\r\n");

    let mut imap = Imap::login_as(server.ports.imap, "alice@localhost", "pw");
    imap.send(b"a1 APPEND INBOX {100}\r\n");
    let answer = imap.line();
    assert!(answer.starts_with("a1 NO [UNAVAILABLE]"), "{answer}");
    imap.send(b"a2 NOOP\r\n");
    let answer = imap.line();
    assert!(answer.starts_with("a2 OK"), "{answer}");

    std::fs::remove_file(&filler).expect("remove filler");
    let reply = c.cmd("MAIL FROM:<bob@localhost> SIZE=200000");
    assert!(reply.starts_with("250"), "{reply}");
    assert!(c.cmd("RCPT TO:<alice@localhost>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let queued = c.cmd("Subject: room again\r\n\r\nhello\r\n.");
    assert!(!queue_id(&queued).is_empty(), "{queued}");
    let msg = "Subject: appended\r\n\r\nhi\r\n";
    imap.send(format!("a3 APPEND INBOX {{{}}}\r\n", msg.len()).as_bytes());
    assert!(imap.line().starts_with("+"));
    imap.send(format!("{msg}\r\n").as_bytes());
    let answer = imap.until("a3 ");
    assert!(answer.contains("a3 OK"), "{answer}");
}
