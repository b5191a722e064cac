//! `merpati backup` while mail arrives, `merpati restore` into an empty
//! data_dir, and `merpati export` read back by the real Dovecot.

use crate::harness::*;
use crate::import_dovecot::{PrivateDovecot, run};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USER: &str = "alice@localhost";

fn message(n: usize) -> String {
    format!("From: bob@client.test\r\nSubject: note {n:04}\r\n\r\nbody {n}\r\n")
}

/// Mail keeps arriving while the backup runs; the restored server has
/// every message acknowledged before the backup began (delivered or
/// still queued), the deferred one still in its queue with its
/// next-attempt time, the DKIM keys and the account's password.
#[test]
fn a_backup_taken_under_load_restores_every_acknowledged_message() {
    let server = Builder::default().mailauth("generate_keys = true").start();
    server.add_user(USER, "pw");
    for n in 0..40 {
        server.submit("bob@client.test", &[USER], &message(n));
    }
    // One for another domain: deferred (the test's DNS never answers).
    let deferred = server.submit("bob@client.test", &["carol@example.com"], &message(999));
    assert_eq!(server.wait_for_mail(USER, 40).len(), 40);
    assert!(wait_until(Duration::from_secs(30), || server
        .queue_files("deferred")
        .contains(&deferred)));

    // A sender that keeps going through the backup, noting each 250.
    let acknowledged = Arc::new(Mutex::new(Vec::<usize>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let port = server.port;
    let sender = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 1000;
            while !stop.load(Ordering::Relaxed) {
                let mut c = Smtp::connect(port);
                c.reply();
                c.cmd("EHLO client.test");
                let reply = c.send_mail("bob@client.test", &[USER], &message(n));
                c.cmd("QUIT");
                if reply.starts_with("250") {
                    acknowledged.lock().unwrap().push(n);
                }
                n += 1;
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || !acknowledged
        .lock()
        .unwrap()
        .is_empty()));
    let before: Vec<usize> = acknowledged.lock().unwrap().clone();
    let backup_dir = tempfile::tempdir().unwrap();
    let target = backup_dir.path().join("b1");
    let out = server.cli_ok(&["backup", target.to_str().unwrap()]);
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    assert!(out.contains("2 accounts"), "{out}");
    assert!(!before.is_empty(), "the sender was running");
    // A second backup into the same place is refused.
    let again = server.cli(&["backup", target.to_str().unwrap()]);
    assert!(!again.status.success() && text(&again).contains("is not empty"));

    // A fresh server, stopped, its data_dir emptied, restored, started.
    let mut restored = Builder::default().start();
    restored.signal("TERM");
    assert!(restored.wait_exit(Duration::from_secs(20)));
    std::fs::remove_dir_all(restored.data_dir()).unwrap();
    let out = restored.cli_ok(&["restore", target.to_str().unwrap()]);
    assert!(out.contains("restored into"), "{out}");
    // Restoring over a store is refused.
    let twice = restored.cli(&["restore", target.to_str().unwrap()]);
    assert!(!twice.status.success() && text(&twice).contains("already holds a mail store"));
    restored.spawn();
    let wanted = 40 + before.len();
    assert!(restored.wait_for_mail(USER, wanted).len() >= wanted);
    let list = restored.cli_ok(&["mailbox", "list", USER]);
    for n in (0..40).chain(before.iter().copied()) {
        assert!(
            list.contains(&format!("note {n:04}")),
            "note {n:04} is missing\n{list}"
        );
    }
    // Still queued (deferred again, or in active for its next attempt).
    let queues = restored.queues_holding(&deferred);
    assert!(!queues.is_empty(), "{}", restored.queue_list());
    assert!(restored.queue_list().contains("carol@example.com"));
    assert_eq!(
        server.cli_ok(&["dkim", "records"]),
        restored.cli_ok(&["dkim", "records"])
    );
    // The password came along (the account record is the store's).
    let mut imap = crate::imap_client::Imap::login_as(restored.ports.imap, USER, "pw");
    imap.cmd("LOGOUT");
}

/// The export is a Maildir++ tree Dovecot reads: folders, flags and
/// keywords as Merpati had them.
#[test]
fn an_export_is_a_maildir_dovecot_reads() {
    let server = server();
    server.add_user(USER, "pw");
    for n in 0..3 {
        server.submit("bob@client.test", &[USER], &message(n));
    }
    assert_eq!(server.wait_for_mail(USER, 3).len(), 3);
    let mut imap = crate::imap_client::Imap::login_as(server.ports.imap, USER, "pw");
    imap.cmd("CREATE Projects/2026");
    imap.cmd("SELECT INBOX");
    let stored = imap.cmd("STORE 1 +FLAGS (\\Seen $Work)");
    assert!(stored.contains("OK"), "{stored}");
    imap.cmd("STORE 2 +FLAGS (\\Flagged \\Answered)");
    let moved = imap.cmd("MOVE 3 Projects/2026");
    assert!(moved.contains("OK"), "{moved}");
    imap.cmd("LOGOUT");

    let dir = tempfile::tempdir().unwrap();
    let dovecot = PrivateDovecot::start(dir.path());
    let maildir = dovecot.home.join("Maildir");
    let out = server.cli_ok(&["export", USER, maildir.to_str().unwrap()]);
    assert!(out.contains("3 messages"), "{out}");
    let chown = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&dovecot.home)
        .status();
    assert!(chown.is_ok_and(|s| s.success()));
    let c = dovecot.conf.as_str();
    let fetch = run(
        Command::new("doveadm").args([
            "-c",
            c,
            "fetch",
            "-u",
            "tester",
            "mailbox flags hdr.subject",
            "all",
        ]),
        b"",
    );
    assert_success(&fetch, "doveadm fetch");
    let listing = String::from_utf8_lossy(&fetch.stdout).replace("\n\u{c}\n", "\n");
    let record = |subject: &str| -> String {
        listing
            .split("mailbox: ")
            .find(|r| r.contains(subject))
            .unwrap_or_else(|| panic!("{subject} not found:\n{listing}"))
            .to_string()
    };
    let first = record("note 0000");
    assert!(first.starts_with("INBOX"), "{first}");
    assert!(
        first.contains("\\Seen") && first.contains("$Work"),
        "{first}"
    );
    let second = record("note 0001");
    assert!(
        second.contains("\\Answered") && second.contains("\\Flagged"),
        "{second}"
    );
    let third = record("note 0002");
    assert!(third.starts_with("Projects.2026"), "{third}");
}
