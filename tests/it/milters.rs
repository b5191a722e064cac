//! Milters (issue 9): the real libmilter, through Debian's python3-milter
//! (`pymilter.py`), as `smtpd_milters`: accept with header changes, a
//! rejected recipient, reject and tempfail at the end of DATA, body
//! replacement, DISCARD, quarantine into the hold queue, recipient
//! changes; and a filter that is down, which follows
//! `milter_default_action` (tempfail by default: nothing is lost).

use crate::harness::{Builder, Server, Smtp, free_port, wait_until};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct PyMilter {
    child: Child,
    port: u16,
}

impl PyMilter {
    fn start() -> PyMilter {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/pymilter.py");
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3-milter (apt-get install python3-milter)");
        let up = wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "pymilter did not listen on {port}");
        PyMilter { child, port }
    }
}

impl Drop for PyMilter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(milter: &str) -> Server {
    let server = Builder::default()
        .top("mydestination = [\"ours.test\"]\nmynetworks = [\"127.0.0.1/32\"]")
        .smtp("greet_pause = \"0s\"")
        .mailauth("verify = false\ngenerate_keys = false")
        .tail(&format!("[spam]\nenabled = false\n[milter]\n{milter}"))
        .start();
    server.add_user("bob@ours.test", "pw");
    server.add_user("carol@ours.test", "pw");
    server
}

fn send(server: &Server, rcpt: &str, subject: &str) -> String {
    let mut c = Smtp::connect(server.port);
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let reply = c.send_mail(
        "alice@sender.test",
        &[rcpt],
        &format!("From: <alice@sender.test>\r\nSubject: {subject}\r\n\r\nOriginal body.\r\n"),
    );
    c.cmd("QUIT");
    reply
}

#[test]
fn pymilter_accepts_rejects_and_rewrites() {
    let milter = PyMilter::start();
    let server = server(&format!(
        "smtpd_milters = [\"inet:127.0.0.1:{}\"]",
        milter.port
    ));

    // Accept, with a header added and one changed.
    assert!(send(&server, "bob@ours.test", "hello tag").starts_with("250"));
    let uid = *server
        .wait_for_mail("bob@ours.test", 1)
        .last()
        .expect("delivered");
    let got = server.message("bob@ours.test", uid);
    assert!(
        got.contains("\r\nX-Milter: pymilter saw it\r\n"),
        "{got}{}",
        server.log()
    );
    assert!(got.contains("\r\nSubject: [tagged] hello tag\r\n"), "{got}");
    assert!(got.contains("Original body."), "{got}");

    // The filter judges every message of a session, not only the first.
    let mut c = Smtp::connect(server.port);
    c.reply();
    c.cmd("EHLO client.test");
    let first = c.send_mail(
        "alice@sender.test",
        &["bob@ours.test"],
        "Subject: first\r\n\r\nfine\r\n",
    );
    assert!(first.starts_with("250"), "{first}");
    let second = c.send_mail(
        "alice@sender.test",
        &["bob@ours.test"],
        "Subject: please reject\r\n\r\nspam\r\n",
    );
    assert_eq!(second.trim_end(), "554 5.7.1 Spam detected by pymilter");
    c.cmd("QUIT");
    server.wait_for_mail("bob@ours.test", 2);

    // A recipient the filter refuses.
    let mut c = Smtp::connect(server.port);
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<alice@sender.test>").starts_with("250"));
    let refused = c.cmd("RCPT TO:<bob+refused@ours.test>");
    assert_eq!(
        refused.trim_end(),
        "550 5.7.1 recipient refused by pymilter"
    );
    assert!(c.cmd("RSET").starts_with("250"));
    // A sender it tempfails, in the same session after RSET.
    let tempfail = c.cmd("MAIL FROM:<tempfail@sender.test>");
    assert_eq!(
        tempfail.trim_end(),
        "451 4.7.1 Service unavailable - try again later"
    );
    c.cmd("QUIT");

    // Reject and tempfail at the end of DATA.
    let reply = send(&server, "bob@ours.test", "please reject");
    assert_eq!(reply.trim_end(), "554 5.7.1 Spam detected by pymilter");
    let reply = send(&server, "bob@ours.test", "tempfail this");
    assert_eq!(
        reply.trim_end(),
        "451 4.7.1 Service unavailable - try again later"
    );

    // Body replacement.
    assert!(send(&server, "bob@ours.test", "replace").starts_with("250"));
    // Two are there already ("hello tag", "first"): wait for the third.
    let uid = *server
        .wait_for_mail("bob@ours.test", 3)
        .last()
        .expect("delivered");
    let got = server.message("bob@ours.test", uid);
    assert!(
        got.contains("\r\n\r\nThe body was replaced by pymilter.\r\n"),
        "{got}"
    );
    assert!(!got.contains("Original body."), "{got}");

    // Recipient changes: bob out, carol in.
    assert!(send(&server, "bob@ours.test", "redirect").starts_with("250"));
    let uid = *server
        .wait_for_mail("carol@ours.test", 1)
        .last()
        .expect("to carol");
    assert!(
        server
            .message("carol@ours.test", uid)
            .contains("Subject: redirect")
    );

    // DISCARD: the client is told 250, nothing is delivered.
    assert!(send(&server, "bob@ours.test", "discard").starts_with("250"));
    // Quarantine: into the hold queue.
    let reply = send(&server, "bob@ours.test", "quarantine");
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        wait_until(Duration::from_secs(20), || server
            .queue_list()
            .contains("held by pymilter")),
        "{}",
        server.queue_list()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.uids("bob@ours.test").len(),
        3,
        "discarded mail delivered"
    );
}

#[test]
fn a_filter_that_is_down_follows_milter_default_action() {
    let closed = free_port();
    let tempfail = server(&format!("smtpd_milters = [\"inet:127.0.0.1:{closed}\"]"));
    let mut c = Smtp::connect(tempfail.port);
    c.reply();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let reply = c.cmd("MAIL FROM:<alice@sender.test>");
    assert_eq!(
        reply.trim_end(),
        "451 4.7.1 Service unavailable - try again later"
    );
    c.cmd("QUIT");
    assert!(
        tempfail
            .log()
            .contains(&format!("milter inet:127.0.0.1:{closed}: cannot connect"))
    );

    let accept = server(&format!(
        "smtpd_milters = [\"inet:127.0.0.1:{closed}\"]\nmilter_default_action = \"accept\""
    ));
    assert!(send(&accept, "bob@ours.test", "no filter").starts_with("250"));
    assert_eq!(accept.wait_for_mail("bob@ours.test", 1).len(), 1);
}
