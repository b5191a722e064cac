//! What an attacker or a careless umask could get at: file modes in
//! `data_dir`, the generated certificate, and the smaller findings of the
//! security review, each against the real server.

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn data_dir_is_private_whatever_the_umask() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    let id = server.submit(
        "bob@localhost",
        &["someone@example.com"],
        "Subject: x\r\n\r\nx\r\n",
    );
    assert!(wait_until(std::time::Duration::from_secs(30), || {
        server.queues_holding(&id) == ["deferred"]
    }));
    let data = server.data_dir();
    // Traversable (to reach public/postdrop.sock), not listable.
    assert_eq!(mode(&data), 0o751);
    assert_eq!(mode(&data.join("public/postdrop.sock")), 0o666);
    assert_eq!(mode(&data.join("tls")), 0o700);
    assert_eq!(mode(&data.join("tls/key.pem")), 0o600);
    for file in files_under(&data) {
        let m = mode(&file);
        assert_eq!(m & 0o007, 0, "{} is mode {m:o}", file.display());
    }
    for dir in ["queue", "queue/deferred", "store"] {
        let m = mode(&data.join(dir));
        assert_eq!(m & 0o007, 0, "{dir} is mode {m:o}");
    }
    assert_eq!(mode(&data.join("store/mail.redb")) & 0o137, 0);
    assert_eq!(mode(&server.queue_dir("deferred").join(&id)) & 0o137, 0);
}

#[test]
fn the_self_signed_certificate_names_the_host() {
    let server = server();
    let cert = server.data_dir().join("tls/cert.pem");
    let out = python(
        "import ssl, sys, time\n\
         c = ssl._ssl._test_decode_cert(sys.argv[1])\n\
         print(c['subject'])\n\
         print(c['subjectAltName'])\n\
         days = (ssl.cert_time_to_seconds(c['notAfter']) - time.time()) / 86400\n\
         start = (time.time() - ssl.cert_time_to_seconds(c['notBefore'])) / 86400\n\
         print(round(days), round(start))\n",
        &[cert.to_str().unwrap()],
    );
    assert_success(&out, "decode certificate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("(('commonName', '{HOSTNAME}'),)")),
        "{text}"
    );
    assert!(text.contains(&format!("('DNS', '{HOSTNAME}')")), "{text}");
    assert!(text.contains("('DNS', 'localhost')"), "{text}");
    let last = text.lines().last().unwrap_or_default();
    let mut numbers = last.split(' ').map(|n| n.parse::<i64>().unwrap_or(-1));
    let (left, since) = (numbers.next().unwrap(), numbers.next().unwrap());
    assert!((820..=826).contains(&left), "{text}");
    assert!((0..=2).contains(&since), "{text}");
}

/// Failed logins are counted per client address across connections and
/// protocols: thirty parallel wrong guesses lock the address out, so the
/// right password from there is refused too (until ten quiet minutes).
/// The lockout is always on; the rate limit, which would answer first, is
/// turned off here (it has its own test in `rate_limits`).
#[test]
fn parallel_guessing_locks_the_address_out() {
    use crate::imap_client::Imap;
    let server = Builder::default()
        .imap("max_connections_per_client = 40")
        .tail("[anvil]\nauth_failure_rate_limit = 0")
        .start();
    server.add_user("alice@localhost", "right-pw");
    let port = server.ports.imap;
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            std::thread::spawn(move || {
                let (mut imap, _) = Imap::connect(port);
                imap.cmd(&format!("LOGIN alice@localhost wrong{i}"))
            })
        })
        .collect();
    for guess in guesses {
        let answer = guess.join().expect("guess");
        assert!(answer.contains("NO [AUTHENTICATIONFAILED]"), "{answer}");
    }
    // The right password, over IMAP and over POP3: refused unchecked.
    let (mut imap, _) = Imap::connect(port);
    let answer = imap.cmd("LOGIN alice@localhost right-pw");
    assert!(answer.contains("NO [AUTHENTICATIONFAILED]"), "{answer}");
    let mut pop = Smtp::connect(server.ports.pop3);
    pop.reply();
    pop.send_raw(b"USER alice@localhost\r\nPASS right-pw\r\n");
    assert!(pop.reply().starts_with("+OK"));
    let answer = pop.reply();
    assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
}

/// An idle timeout restarts with every byte; the login deadline does not.
#[test]
fn a_slow_client_is_cut_off_at_the_login_deadline() {
    use std::io::{BufRead, BufReader, Write};
    let server = Builder::default()
        .smtp("login_timeout = \"2s\"")
        .imap("login_timeout = \"2s\"")
        .pop3("login_timeout = \"2s\"")
        .start();
    for (port, wants) in [
        (server.port, "421 4.4.2 "),
        (server.ports.imap, "* BYE [UNAVAILABLE] Login timeout"),
        (server.ports.pop3, "-ERR [SYS/TEMP] Login timeout"),
    ] {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut greeting = String::new();
        reader.read_line(&mut greeting).unwrap();
        // One byte every 300 ms: the idle timeout never fires.
        let trickle = std::thread::spawn(move || {
            for _ in 0..30 {
                if writer.write_all(b"N").is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        });
        let mut all = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut all);
        trickle.join().unwrap();
        assert!(all.contains(wants), "port {port}: {all:?}");
    }
    assert!(
        server.log().contains("login_timeout exceeded"),
        "{}",
        server.log()
    );
}

/// `Subject: a<CR>X-Injected: yes`: a reader that takes the bare CR for a
/// line end would see a forged header field. Stored with a space instead;
/// refused under `bare_lf = "reject"`.
#[test]
fn a_bare_cr_in_a_header_cannot_forge_a_field() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<bob@localhost>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@localhost>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let queued = c.cmd("Subject: a\rX-Injected: yes\r\n\r\nbody\r\n.");
    assert!(queued.starts_with("250"), "{queued}");
    let uids = server.wait_for_mail("alice@localhost", 1);
    let message = server.message("alice@localhost", uids[0]);
    assert!(
        message.contains("Subject: a X-Injected: yes\r\n"),
        "{message:?}"
    );
    assert!(!message.contains("\rX-Injected"), "{message:?}");

    let strict = Builder::default().smtp("bare_lf = \"reject\"").start();
    strict.add_user("alice@localhost", "pw");
    let mut c = strict.connect();
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<bob@localhost>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@localhost>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let refused = c.cmd("Subject: a\rX-Injected: yes\r\n\r\nbody\r\n.");
    assert!(refused.starts_with("550 5.5.2 "), "{refused}");
    assert!(
        strict
            .log()
            .contains("NOQUEUE: reject: END-OF-MESSAGE from"),
        "{}",
        strict.log()
    );
}

/// A full mailbox is found at RCPT, while the sender can still be told
/// (452 4.2.2, temporary), and logged as a refusal.
#[test]
fn over_quota_is_refused_at_rcpt() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    server.add_user("carol@localhost", "pw");
    server.cli_ok(&["user", "quota", "alice@localhost", "1000"]);
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    // Declared too big for what is left.
    assert!(
        c.cmd("MAIL FROM:<bob@localhost> SIZE=5000")
            .starts_with("250")
    );
    let full = c.cmd("RCPT TO:<alice@localhost>");
    assert_eq!(
        full,
        "452 4.2.2 <alice@localhost>: Recipient address rejected: Mailbox full\r\n"
    );
    // Other recipients are not affected.
    assert!(c.cmd("RCPT TO:<carol@localhost>").starts_with("250"));
    c.cmd("RSET");
    // Without SIZE the mailbox still has room: accepted.
    assert!(c.cmd("MAIL FROM:<bob@localhost>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@localhost>").starts_with("250"));
    assert!(
        server
            .log()
            .contains("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 452 4.2.2")
    );
}

/// aliases(5) quotes around a pipe do not hide it: newaliases reports it
/// and the address is refused at RCPT instead of bouncing later.
#[test]
fn quoted_pipe_aliases_are_reported_and_refused() {
    let server = server();
    std::fs::write(
        server.data_dir().join("aliases"),
        "procmail: \"|/usr/bin/procmail\"\n",
    )
    .unwrap();
    let out = server.cli(&["newaliases"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`|/usr/bin/procmail` is not supported"),
        "{err}"
    );
    assert!(server.wait_for_log("reloaded configuration", 1));
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<bob@localhost>").starts_with("250"));
    let refused = c.cmd("RCPT TO:<procmail@localhost>");
    assert!(refused.starts_with("550 5.1.1 "), "{refused}");
}

/// A damaged store file gives a clean message saying what to do, never a
/// panic; `merpati store check` finds a missing body file.
#[test]
fn a_damaged_store_is_reported_not_panicked_on() {
    let mut server = server();
    server.add_user("alice@localhost", "pw");
    let big = format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(200_000));
    server.submit("bob@localhost", &["alice@localhost"], &big);
    server.submit(
        "bob@localhost",
        &["alice@localhost"],
        "Subject: small\r\n\r\nhi\r\n",
    );
    assert_eq!(server.wait_for_mail("alice@localhost", 2).len(), 2);
    // Running: the check wants the store to itself.
    let out = server.cli(&["store", "check"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("stop merpati first"), "{}", text(&out));
    server.kill9();

    let out = server.cli(&["store", "check"]);
    assert_success(&out, "store check on a sound store");
    assert!(
        text(&out).contains("2 messages read; 0 problem(s)"),
        "{}",
        text(&out)
    );

    let store = server.data_dir().join("store");
    let redb = store.join("mail.redb");
    let good = std::fs::read(&redb).unwrap();

    // A body file gone: found by the check.
    let blob = files_under(&store.join("blobs"))
        .into_iter()
        .find(|p| p.is_file())
        .expect("a body file");
    let saved = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();
    let out = server.cli(&["store", "check"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("damaged: alice/INBOX uid "),
        "{}",
        text(&out)
    );
    std::fs::write(&blob, saved).unwrap();

    // Cut short (as a partial copy from a backup), then random bytes.
    // `head -c 100000` of a bigger file: a valid header, too short (the
    // case that made redb panic), and a file cut inside its header.
    assert!(good.len() > 100_000, "store is {} bytes", good.len());
    for damaged in [
        good[..100_000].to_vec(),
        good[..2_000].to_vec(),
        vec![0x5a; 300_000],
    ] {
        std::fs::write(&redb, &damaged).unwrap();
        for args in [vec!["serve"], vec!["store", "check"], vec!["user", "list"]] {
            let out = server.cli(&args);
            let all = text(&out);
            assert!(!out.status.success(), "{args:?}: {all}");
            assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {all}");
            assert!(!all.contains("panicked"), "{args:?}: {all}");
            assert!(all.contains("restore it from a backup"), "{args:?}: {all}");
        }
    }
    std::fs::write(&redb, good).unwrap();
    let out = server.cli(&["store", "check"]);
    assert_success(&out, "store check after restoring");
}

/// A file in a queue directory that is not named like a queue ID is never
/// delivered nor deleted, and the log says so at start.
#[test]
fn stray_files_in_the_queue_are_logged() {
    let mut server = server();
    server.kill9();
    let stray = server.queue_dir("incoming").join("message.eml");
    std::fs::write(&stray, "Subject: dropped here by hand\r\n\r\nx\r\n").unwrap();
    server.spawn();
    assert!(
        server.wait_for_log("message.eml: not a queue file", 1),
        "{}",
        server.log()
    );
    assert!(stray.exists());
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): READY=1 once the
/// listeners are bound, then WATCHDOG=1 every half period while the store
/// answers, on the socket systemd names in NOTIFY_SOCKET.
#[test]
fn systemd_ready_and_watchdog_pings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let _server = crate::harness::Builder::default()
        .env("NOTIFY_SOCKET", path.to_str().expect("path"))
        .env("WATCHDOG_USEC", "400000")
        .start();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while seen
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 2
    {
        let n = socket.recv(&mut buf).expect("a notification within 10 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        seen.first().is_some_and(|m| m.contains("READY=1")),
        "{seen:?}"
    );
}
