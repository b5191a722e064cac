//! Crash safety: what was acknowledged with "250 queued" is delivered,
//! whatever happens to the daemon afterwards (kill -9 in the middle of a
//! burst), exactly once; an IMAP APPEND answered OK likewise; and SIGTERM
//! lets transactions in flight finish.

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENT_THREADS: usize = 8;
const ACCOUNT: &str = "alice@localhost";

/// A loopback connection, as a reader and a writer, with a read timeout.
fn open(port: u16) -> std::io::Result<(BufReader<TcpStream>, TcpStream)> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok((BufReader::new(stream.try_clone()?), stream))
}

/// A minimal SMTP client whose every failure is an error, not a panic:
/// the daemon may vanish at any moment in this test.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let (reader, writer) = open(port)?;
        let mut client = Client { reader, writer };
        client.expect("220")?;
        client.send(b"EHLO crash.test\r\n")?;
        client.expect("250")?;
        Ok(client)
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads one reply; an error unless it starts with `code`.
    fn expect(&mut self, code: &str) -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("closed after {all:?}"),
                ));
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        if all.starts_with(code) {
            Ok(all)
        } else {
            Err(std::io::Error::other(format!(
                "expected {code}, got {all:?}"
            )))
        }
    }

    /// One transaction; Ok only once "250 2.0.0 Ok: queued as" was read.
    fn deliver(&mut self, n: usize) -> std::io::Result<()> {
        self.send(b"MAIL FROM:<tester@localhost>\r\n")?;
        self.expect("250")?;
        self.send(format!("RCPT TO:<{ACCOUNT}>\r\n").as_bytes())?;
        self.expect("250")?;
        self.send(b"DATA\r\n")?;
        self.expect("354")?;
        let body = format!(
            "From: tester@localhost\r\nTo: {ACCOUNT}\r\nSubject: crash {n}\r\nMessage-ID: <{n}@test>\r\nX-Seq: {n}\r\n\r\nMessage number {n} of the crash test.\r\n.\r\n"
        );
        self.send(body.as_bytes())?;
        self.expect("250 2.0.0 Ok: queued as ")?;
        Ok(())
    }
}

/// Message numbers in the mailbox, from the Subject column of
/// `mailbox list` ("`prefix` N"), with how often each occurs.
fn numbers_in_mailbox(server: &Server, prefix: &str) -> BTreeMap<usize, usize> {
    let mut found = BTreeMap::new();
    for line in server.cli_ok(&["mailbox", "list", ACCOUNT]).lines() {
        let subject = line.rsplit('\t').next().unwrap_or_default();
        if let Some(n) = subject
            .strip_prefix(prefix)
            .and_then(|n| n.trim().parse().ok())
        {
            *found.entry(n).or_insert(0) += 1;
        }
    }
    found
}

#[test]
fn kill_9_during_a_burst_loses_nothing_acknowledged() {
    let total: usize = std::env::var("MERPATI_CRASH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let started = Instant::now();
    let server = server();
    server.add_user(ACCOUNT, "pw");
    let port = server.port;
    let server = Arc::new(Mutex::new(server));

    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients_done = Arc::new(AtomicBool::new(false));

    let clients: Vec<_> = (0..CLIENT_THREADS)
        .map(|_| {
            let (next, acked, acked_count, failures) = (
                next.clone(),
                acked.clone(),
                acked_count.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || {
                let mut client: Option<Client> = None;
                let mut mine = Vec::new();
                loop {
                    if client.is_none() {
                        match Client::connect(port) {
                            Ok(c) => client = Some(c),
                            Err(_) => {
                                // Down, or restarting after a kill.
                                std::thread::sleep(Duration::from_millis(20));
                                continue;
                            }
                        }
                    }
                    // Each number is tried once: a transaction cut off
                    // before its 250 is not acknowledged and not retried,
                    // so a number found twice can only be a redelivery.
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= total {
                        break;
                    }
                    let Some(c) = client.as_mut() else { continue };
                    match c.deliver(n) {
                        Ok(()) => {
                            mine.push(n);
                            acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            client = None;
                        }
                    }
                }
                if let Some(mut c) = client {
                    let _ = c.send(b"QUIT\r\n");
                }
                acked.lock().unwrap().extend(mine);
            })
        })
        .collect();

    // The killer: 3 to 5 kill -9s, 100-600 ms apart, once the burst is
    // under way; each time the daemon is started again.
    let kills_planned = fastrand::usize(3..=5);
    let killer = {
        let (server, acked_count, clients_done) =
            (server.clone(), acked_count.clone(), clients_done.clone());
        std::thread::spawn(move || {
            let warm_up = (total / 20).max(1);
            while acked_count.load(Ordering::SeqCst) < warm_up
                && !clients_done.load(Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            let mut kills = Vec::new();
            for _ in 0..kills_planned {
                std::thread::sleep(Duration::from_millis(fastrand::u64(100..=600)));
                let mut s = server.lock().unwrap();
                s.kill9();
                kills.push(acked_count.load(Ordering::SeqCst));
                s.spawn();
            }
            kills
        })
    };

    for c in clients {
        c.join().expect("client thread panicked");
    }
    clients_done.store(true, Ordering::SeqCst);
    let kills = killer
        .join()
        .expect("killer thread panicked (restart failed?)");
    let burst_time = started.elapsed();

    let mut server = Arc::try_unwrap(server)
        .ok()
        .expect("server still shared")
        .into_inner()
        .unwrap();
    // Once more, with the backlog still being delivered.
    server.kill9();
    server.spawn();
    server.cli_ok(&["queue", "flush"]);
    // `queue list` walks the directories one after the other, so one look
    // can miss a file being moved; trust three empty looks in a row.
    let mut empty_looks = 0;
    let drained = wait_until(Duration::from_secs(120), || {
        if server.queue_list() == "Mail queue is empty\n" {
            empty_looks += 1;
            std::thread::sleep(Duration::from_millis(100));
        } else {
            empty_looks = 0;
        }
        empty_looks >= 3
    });
    let listing = server.queue_list();
    assert!(drained, "queue not empty after 120 s:\n{listing}");

    let acked: BTreeSet<usize> = acked.lock().unwrap().iter().copied().collect();
    let found = numbers_in_mailbox(&server, "crash ");
    let lost: Vec<usize> = acked
        .iter()
        .filter(|n| !found.contains_key(n))
        .copied()
        .collect();
    let duplicates: Vec<(usize, usize)> = found
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(n, count)| (*n, *count))
        .collect();
    let unacked_delivered = found.keys().filter(|n| !acked.contains(n)).count();
    let corrupt = server.queue_files("corrupt");
    eprintln!(
        "crash test: {total} attempted, {} acknowledged, {} failed transactions, {} kills \
         (+1 after the burst) at acknowledged counts {kills:?}, {} numbers in the mailbox, \
         {} lost, {} duplicated, {unacked_delivered} delivered without acknowledgement, \
         {} corrupt queue files, burst {burst_time:?}, total {:?}",
        acked.len(),
        failures.load(Ordering::SeqCst),
        kills.len(),
        found.len(),
        lost.len(),
        duplicates.len(),
        corrupt.len(),
        started.elapsed(),
    );
    assert!(
        kills.len() >= 3,
        "the daemon was killed only {} times",
        kills.len()
    );
    assert!(!acked.is_empty());
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    assert!(
        duplicates.is_empty(),
        "{} messages delivered more than once, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(20)]
    );
    assert!(corrupt.is_empty(), "queue files quarantined: {corrupt:?}");
}

/// An IMAP client that appends numbered messages; every failure is an
/// error, since the daemon may vanish at any moment.
struct Appender {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Appender {
    fn connect(port: u16) -> std::io::Result<Appender> {
        let (reader, writer) = open(port)?;
        let mut client = Appender { reader, writer };
        client.tagged("")?; // the greeting
        client.writer.write_all(b"l LOGIN alice@localhost pw\r\n")?;
        client.tagged("l ")?;
        Ok(client)
    }

    /// Reads up to the line starting with `tag`; an error unless it says OK.
    fn tagged(&mut self, tag: &str) -> std::io::Result<()> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let rest = if tag.is_empty() {
                line.strip_prefix("* ")
            } else {
                line.strip_prefix(tag)
            };
            if let Some(rest) = rest {
                return if rest.starts_with("OK") {
                    Ok(())
                } else {
                    Err(std::io::Error::other(line))
                };
            }
        }
    }

    /// One APPEND; Ok only once its tagged OK was read.
    fn append(&mut self, n: usize) -> std::io::Result<()> {
        let message = format!(
            "From: tester@localhost\r\nSubject: append {n}\r\nMessage-ID: <a{n}@test>\r\n\r\nAppended message {n}.\r\n"
        );
        self.writer.write_all(
            format!("a{n} APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes(),
        )?;
        self.tagged(&format!("a{n} "))
    }
}

/// The mail store side of "nothing lost": an APPEND answered OK survives
/// kill -9, and nothing is stored twice.
#[test]
fn kill_9_during_appends_loses_no_acknowledged_message() {
    let total = 600;
    let mut server = server();
    server.add_user(ACCOUNT, "pw");
    let port = server.ports.imap;
    let next = Arc::new(AtomicUsize::new(0));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (next, acked_count) = (next.clone(), acked_count.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut client: Option<Appender> = None;
                loop {
                    let Some(c) = client.as_mut() else {
                        match Appender::connect(port) {
                            Ok(c) => client = Some(c),
                            Err(_) => std::thread::sleep(Duration::from_millis(20)),
                        }
                        continue;
                    };
                    // Each number is tried once (see the SMTP test).
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= total {
                        break;
                    }
                    match c.append(n) {
                        Ok(()) => {
                            mine.push(n);
                            acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => client = None,
                    }
                }
                mine
            })
        })
        .collect();
    let mut kills = 0;
    for _ in 0..3 {
        let target = acked_count.load(Ordering::SeqCst) + 40;
        wait_until(Duration::from_secs(30), || {
            acked_count.load(Ordering::SeqCst) >= target || next.load(Ordering::SeqCst) >= total
        });
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..=50)));
        server.kill9();
        kills += 1;
        server.spawn();
    }
    let mut acked = BTreeSet::new();
    for c in clients {
        acked.extend(c.join().expect("client thread panicked"));
    }
    server.kill9();
    server.spawn();
    let found = numbers_in_mailbox(&server, "append ");
    let lost: Vec<&usize> = acked.iter().filter(|n| !found.contains_key(n)).collect();
    let twice: Vec<(&usize, &usize)> = found.iter().filter(|(_, c)| **c > 1).collect();
    eprintln!(
        "append crash test: {total} attempted, {} acknowledged, {kills} kills, {} stored",
        acked.len(),
        found.len()
    );
    assert!(
        acked.len() > 100,
        "too few appends got through: {}",
        acked.len()
    );
    assert!(lost.is_empty(), "acknowledged APPENDs lost: {lost:?}");
    assert!(twice.is_empty(), "stored twice: {twice:?}");
}

#[test]
fn sigterm_lets_a_transaction_in_data_finish_and_closes_idle_sessions() {
    let mut server = server();
    server.add_user(ACCOUNT, "pw");

    let mut busy = server.connect();
    assert!(busy.reply().starts_with("220"));
    assert!(busy.cmd("EHLO busy.test").starts_with("250"));
    assert!(busy.cmd("MAIL FROM:<bob@localhost>").starts_with("250"));
    assert!(busy.cmd(&format!("RCPT TO:<{ACCOUNT}>")).starts_with("250"));
    assert!(busy.cmd("DATA").starts_with("354"));
    busy.send_raw(b"From: bob@localhost\r\nSubject: sent across a shutdown\r\n\r\nfirst half\r\n");

    let mut idle = server.connect();
    assert!(idle.reply().starts_with("220"));
    assert!(idle.cmd("EHLO idle.test").starts_with("250"));

    server.signal("TERM");
    let bye = idle.reply();
    assert!(bye.starts_with("421 4.3.2 "), "idle session got {bye:?}");
    assert_eq!(
        idle.read_to_close(),
        "",
        "idle session not closed after 421"
    );

    // The transaction in DATA is still served to its end.
    busy.send_raw(b"second half\r\n");
    let queued = busy.cmd(".");
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    let id = queue_id(&queued);
    // ...and then the session is closed like the idle one.
    let rest = busy.read_to_close();
    assert!(
        rest.is_empty() || rest.starts_with("421 4.3.2 "),
        "{rest:?}"
    );

    assert!(
        server.wait_exit(Duration::from_secs(30)),
        "daemon did not exit after SIGTERM"
    );
    let log = server.log();
    assert!(
        log.contains("stopping: finishing transactions in flight"),
        "{log}"
    );
    assert!(log.ends_with("stopped\n"), "{log}");
    assert!(
        !log.contains("sessions still open at the shutdown deadline"),
        "{log}"
    );
    assert!(!server.data_dir().join("run/merpati.pid").exists());

    server.spawn();
    let uids = server.wait_for_mail(ACCOUNT, 1);
    assert_eq!(uids.len(), 1, "{}", server.log());
    let text = server.message(ACCOUNT, uids[0]);
    assert!(text.contains(&format!(" id {id}")), "{text}");
    assert!(
        text.ends_with("\r\n\r\nfirst half\r\nsecond half\r\n"),
        "{text}"
    );
}

#[test]
fn sigterm_closes_a_stalled_transaction_at_the_deadline_without_acknowledging_it() {
    let mut server = server();
    server.add_user(ACCOUNT, "pw");
    let mut stalled = server.connect();
    assert!(stalled.reply().starts_with("220"));
    assert!(stalled.cmd("EHLO stalled.test").starts_with("250"));
    assert!(stalled.cmd("MAIL FROM:<bob@localhost>").starts_with("250"));
    assert!(
        stalled
            .cmd(&format!("RCPT TO:<{ACCOUNT}>"))
            .starts_with("250")
    );
    assert!(stalled.cmd("DATA").starts_with("354"));
    stalled.send_raw(b"Subject: never finished\r\n\r\nhalf a message\r\n");

    server.signal("TERM");
    // shutdown_timeout is 5 s in the harness; the bound here is generous.
    assert!(
        server.wait_exit(Duration::from_secs(60)),
        "daemon did not exit after SIGTERM"
    );
    let log = server.log();
    assert!(
        log.contains("sessions still open at the shutdown deadline were closed"),
        "{log}"
    );
    assert!(!stalled.read_to_close().contains("250"));

    server.spawn();
    assert_eq!(server.queue_list(), "Mail queue is empty\n");
    assert!(server.uids(ACCOUNT).is_empty());
}

/// Waits until `queue list` has said "empty" three times in a row (one
/// look can miss a file that is being moved between directories).
fn wait_for_empty_queue(server: &Server) -> bool {
    let mut empty_looks = 0;
    wait_until(Duration::from_secs(60), || {
        if server.queue_list() == "Mail queue is empty\n" {
            empty_looks += 1;
            std::thread::sleep(Duration::from_millis(100));
        } else {
            empty_looks = 0;
        }
        empty_looks >= 3
    })
}

fn subjects(server: &Server, address: &str) -> Vec<String> {
    server
        .cli_ok(&["mailbox", "list", address])
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap_or_default().to_string())
        .collect()
}

/// `queue delete` is final: a kill -9 right afterwards must not bring the
/// message back. Three rounds, so that a window in which the daemon might
/// still remember the message is hit at least once.
#[test]
fn deleted_mail_stays_deleted_after_kill_9() {
    let mut server = server();
    for round in 0..3 {
        let ids: Vec<String> = (0..3)
            .map(|i| {
                server.submit(
                    "alice@localhost",
                    &["someone@example.com"],
                    &format!("Subject: delete me {round}.{i}\r\n\r\nx\r\n"),
                )
            })
            .collect();
        let deferred = wait_until(Duration::from_secs(30), || {
            ids.iter()
                .all(|id| server.queues_holding(id) == ["deferred"])
        });
        assert!(deferred, "{}", server.queue_list());
        let out = server.cli(&["queue", "delete", "ALL"]);
        assert!(out.status.success());
        assert_eq!(server.queue_list(), "Mail queue is empty\n");
        server.kill9();
        server.spawn();
        let listing = server.queue_list();
        assert_eq!(
            listing,
            "Mail queue is empty\n",
            "round {round}: deleted mail is back after kill -9 (ids {ids:?}):\n{}",
            server.log()
        );
    }
}

/// A message that bounced is finished: a kill -9 right after its bounce
/// was delivered must not make the sender receive a second one.
#[test]
fn a_bounce_is_sent_once_even_if_the_daemon_is_killed_right_after() {
    let mut server = Builder::default()
        .tail(
            "[virtual_alias]\ndomains = [\"example.net\"]\n[virtual_alias.map]\n\"ghost@example.net\" = [\"nobody@localhost\"]",
        )
        .start();
    server.add_user(ACCOUNT, "pw");
    const DSN: &str = "Undelivered Mail Returned to Sender";
    for round in 1..=3 {
        server.submit(
            ACCOUNT,
            &["ghost@example.net"],
            &format!("Subject: bounce me {round}\r\n\r\nx\r\n"),
        );
        let bounced = wait_until(Duration::from_secs(30), || {
            subjects(&server, ACCOUNT)
                .iter()
                .filter(|s| *s == DSN)
                .count()
                >= round
        });
        assert!(bounced, "round {round}: no bounce\n{}", server.log());
        server.kill9();
        server.spawn();
        // Anything the restarted daemon takes up again has been dealt with
        // once this marker is delivered and the queue is empty.
        server.submit(
            "bob@localhost",
            &[ACCOUNT],
            &format!("Subject: marker {round}\r\n\r\nx\r\n"),
        );
        let marked = wait_until(Duration::from_secs(30), || {
            subjects(&server, ACCOUNT).contains(&format!("marker {round}"))
        });
        assert!(marked, "{}", server.log());
        assert!(wait_for_empty_queue(&server), "{}", server.queue_list());
        let got = subjects(&server, ACCOUNT);
        assert_eq!(
            got.iter().filter(|s| *s == DSN).count(),
            round,
            "round {round}: bounces received {got:?}\n{}",
            server.log()
        );
    }
}
