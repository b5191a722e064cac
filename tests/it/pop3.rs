//! POP3 (issue 4): the raw protocol as a person with telnet speaks it, and
//! real clients (Python's poplib over 110 + STLS and 995, curl, fetchmail)
//! against the real server and its shared mail store.

use crate::harness::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Helpers

/// A raw POP3 client.
struct Pop3 {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Pop3 {
    fn connect(port: u16) -> Pop3 {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut c = Pop3 {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        };
        let greeting = c.line();
        assert_eq!(greeting, "+OK Merpati POP3 server ready");
        c
    }

    /// One line without its CRLF; empty at end of stream.
    fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.reader.read_line(&mut line);
        assert!(
            line.is_empty() || line.ends_with("\r\n"),
            "line not CRLF-terminated: {line:?}"
        );
        line.trim_end_matches("\r\n").to_string()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.line()
    }

    /// The body of a multi-line response, raw (still byte-stuffed), up to
    /// and including the terminating `.CRLF`.
    fn multi_raw(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line).unwrap_or(0);
            assert!(n > 0, "connection closed inside a multi-line response");
            all.extend_from_slice(&line);
            if line == b".\r\n" {
                return all;
            }
        }
    }

    /// The lines of a multi-line response, unstuffed.
    fn multi(&mut self) -> Vec<String> {
        let raw = String::from_utf8(self.multi_raw()).expect("utf-8");
        let mut lines: Vec<String> = raw
            .split("\r\n")
            .map(|l| l.strip_prefix('.').unwrap_or(l).to_string())
            .collect();
        // "...\r\n.\r\n" splits into [..., "", ""] after unstuffing ".".
        lines.truncate(lines.len() - 2);
        lines
    }

    /// USER + PASS; returns the PASS reply.
    fn login(&mut self, user: &str, password: &str) -> String {
        assert_eq!(self.cmd(&format!("USER {user}")), "+OK");
        self.cmd(&format!("PASS {password}"))
    }

    fn read_to_close(&mut self) -> String {
        let mut rest = String::new();
        let _ = self.reader.read_to_string(&mut rest);
        rest
    }
}

/// Delivers `bodies` to `to` over SMTP and waits until all are stored.
fn fill(server: &Server, to: &str, bodies: &[String]) -> Vec<u32> {
    let before = server.uids(to).len();
    // One at a time, so that message numbers follow the order of `bodies`
    // (concurrent deliveries may be stored in any order).
    for (i, body) in bodies.iter().enumerate() {
        server.submit("bob@localhost", &[to], &smtp_stuffed(body));
        server.wait_for_mail(to, before + i + 1);
    }
    let uids = server.wait_for_mail(to, before + bodies.len());
    assert_eq!(uids.len(), before + bodies.len(), "{}", server.log());
    uids
}

/// RFC 5321 §4.5.2 transparency, so the stored message is `body` itself.
fn smtp_stuffed(body: &str) -> String {
    body.split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_string()
            }
        })
        .collect()
}

fn message(n: usize) -> String {
    format!(
        "From: bob@localhost\r\nTo: alice@localhost\r\nSubject: pop test {n}\r\n\r\n\
         line one of {n}\r\n.leading dot\r\n..two dots\r\nline four\r\n.\r\nlast line\r\n"
    )
}

fn alice(server: &Server, count: usize) -> Vec<u32> {
    server.add_user("alice@localhost", "secret");
    fill(
        server,
        "alice@localhost",
        &(1..=count).map(message).collect::<Vec<_>>(),
    )
}

/// The UIDL that IMAP's identity of a message gives: UIDVALIDITY + UID.
fn is_uidl(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------
// The raw protocol

#[test]
fn rfc1939_transaction_over_raw_socket() {
    let server = server();
    let uids = alice(&server, 3);
    let mut c = Pop3::connect(server.ports.pop3);

    assert_eq!(c.cmd("CAPA"), "+OK Capability list follows");
    let capa = c.multi();
    for cap in [
        "TOP",
        "UIDL",
        "USER",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "SASL PLAIN LOGIN",
        "STLS",
        "IMPLEMENTATION Merpati",
    ] {
        assert!(capa.iter().any(|c| c == cap), "{cap} missing: {capa:?}");
    }
    assert!(c.cmd("STAT").starts_with("-ERR"), "STAT before login");
    assert!(c.cmd("APOP alice 0123456789abcdef").starts_with("-ERR"));
    assert!(
        c.cmd("PASS secret").starts_with("-ERR"),
        "PASS without USER"
    );
    let ok = c.login("alice", "secret");
    assert!(ok.starts_with("+OK"), "{ok}");

    // STAT and LIST agree and count exactly what RETR sends, unstuffed.
    let stat = c.cmd("STAT");
    let parts: Vec<&str> = stat.split(' ').collect();
    assert_eq!(parts.len(), 3, "{stat}");
    assert_eq!(parts[0], "+OK");
    assert_eq!(parts[1], "3");
    let total: u64 = parts[2].parse().expect("size");
    assert!(c.cmd("LIST").starts_with("+OK 3 messages"));
    let list = c.multi();
    assert_eq!(list.len(), 3, "{list:?}");
    let sizes: Vec<u64> = list
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (n, size) = l.split_once(' ').expect("n size");
            assert_eq!(n, (i + 1).to_string());
            size.parse().expect("size")
        })
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), total);
    assert_eq!(c.cmd("LIST 2"), format!("+OK 2 {}", sizes[1]));
    assert_eq!(c.cmd("LIST 4"), "-ERR No such message");

    // UIDL: unique, 16 hex digits, ending in the IMAP UID.
    assert_eq!(c.cmd("UIDL"), "+OK Unique-ID listing follows");
    let uidl = c.multi();
    assert_eq!(uidl.len(), 3);
    let ids: Vec<String> = uidl
        .iter()
        .map(|l| l.split_once(' ').expect("n id").1.to_string())
        .collect();
    for (id, uid) in ids.iter().zip(&uids) {
        assert!(is_uidl(id), "{id}");
        assert_eq!(&id[8..], format!("{uid:08x}"));
        assert_eq!(&id[..8], &ids[0][..8], "one UIDVALIDITY");
    }
    assert_eq!(c.cmd("UIDL 3"), format!("+OK 3 {}", ids[2]));

    // RETR: dot-stuffed, CRLF, size as LIST said.
    let retr = c.cmd("RETR 1");
    assert_eq!(retr, format!("+OK {} octets", sizes[0]));
    let raw = c.multi_raw();
    let raw_text = String::from_utf8_lossy(&raw);
    assert!(
        raw_text
            .ends_with("\r\n..leading dot\r\n...two dots\r\nline four\r\n..\r\nlast line\r\n.\r\n"),
        "{raw_text}"
    );
    assert!(!raw_text.replace("\r\n", "").contains('\n'), "bare LF");
    let unstuffed: usize = raw_text
        .split_inclusive("\r\n")
        .filter(|l| *l != ".\r\n")
        .map(|l| l.len() - usize::from(l.starts_with('.')))
        .sum();
    assert_eq!(unstuffed as u64, sizes[0], "LIST size = RETR octets");
    assert!(raw_text.contains("Subject: pop test 1\r\n"));

    // DELE marks; the message is gone from this session's view only.
    assert_eq!(c.cmd("DELE 2"), "+OK Message 2 deleted");
    assert!(c.cmd("DELE 2").starts_with("-ERR"), "deleted twice");
    assert!(c.cmd("RETR 2").starts_with("-ERR"));
    assert!(c.cmd("LIST 2").starts_with("-ERR"));
    assert!(c.cmd("TOP 2 0").starts_with("-ERR"));
    assert!(c.cmd("UIDL 2").starts_with("-ERR"));
    assert_eq!(c.cmd("STAT"), format!("+OK 2 {}", total - sizes[1]));
    c.cmd("LIST");
    assert_eq!(
        c.multi(),
        vec![format!("1 {}", sizes[0]), format!("3 {}", sizes[2])]
    );
    c.cmd("UIDL");
    assert_eq!(c.multi().len(), 2);
    assert_eq!(c.cmd("NOOP"), "+OK");
    assert_eq!(
        c.cmd("RSET"),
        format!("+OK Maildrop has 3 messages ({total} octets)")
    );
    assert_eq!(c.cmd("STAT"), format!("+OK 3 {total}"));

    // Commands that belong to AUTHORIZATION are refused now.
    assert!(c.cmd("USER alice").starts_with("-ERR"));
    assert!(c.cmd("STLS").starts_with("-ERR"));
    assert!(c.cmd("RETR 0").starts_with("-ERR"));
    assert!(c.cmd("RETR 99").starts_with("-ERR"));
    assert!(c.cmd("RETR x").starts_with("-ERR"));
    assert_eq!(
        c.cmd("QUIT"),
        "+OK Merpati POP3 server signing off (3 messages left)"
    );
    assert_eq!(c.read_to_close(), "");
    assert_eq!(server.uids("alice@localhost"), uids, "RSET kept everything");
}

#[test]
fn top_with_zero_and_n_lines() {
    let server = server();
    alice(&server, 1);
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    let whole = c.multi();
    let blank = whole.iter().position(|l| l.is_empty()).expect("header end");

    assert_eq!(c.cmd("TOP 1 0"), "+OK Top of message follows");
    let top0 = c.multi();
    assert_eq!(top0, whole[..=blank].to_vec(), "header and the empty line");

    assert!(c.cmd("TOP 1 3").starts_with("+OK"));
    let raw = String::from_utf8(c.multi_raw()).expect("utf-8");
    assert!(
        raw.ends_with("\r\n\r\nline one of 1\r\n..leading dot\r\n...two dots\r\n.\r\n"),
        "{raw}"
    );

    assert!(c.cmd("TOP 1 1000").starts_with("+OK"));
    assert_eq!(c.multi(), whole, "more lines than the body has");
    assert!(c.cmd("TOP 1").starts_with("-ERR"));
    assert!(c.cmd("TOP 2 0").starts_with("-ERR"));
    assert!(c.cmd("TOP 1 -1").starts_with("-ERR"));
    c.cmd("QUIT");
}

/// Any order of RETR and TOP gets the right message (the server reads
/// the next message ahead).
#[test]
fn retrieval_in_any_order_returns_the_right_messages() {
    let server = server();
    alice(&server, 4);
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.login("alice", "secret").starts_with("+OK"));
    let subject = |c: &mut Pop3, cmd: &str| -> String {
        let reply = c.cmd(cmd);
        assert!(reply.starts_with("+OK"), "{cmd}: {reply}");
        c.multi()
            .into_iter()
            .find(|l| l.starts_with("Subject: "))
            .unwrap_or_default()
    };
    assert_eq!(subject(&mut c, "RETR 1"), "Subject: pop test 1");
    assert_eq!(c.cmd("DELE 2"), "+OK Message 2 deleted");
    assert!(c.cmd("RETR 2").starts_with("-ERR"));
    assert_eq!(subject(&mut c, "RETR 4"), "Subject: pop test 4");
    assert_eq!(subject(&mut c, "TOP 3 0"), "Subject: pop test 3");
    assert_eq!(subject(&mut c, "RETR 1"), "Subject: pop test 1");
    assert!(c.cmd("RSET").starts_with("+OK Maildrop has 4 messages"));
    assert_eq!(subject(&mut c, "RETR 2"), "Subject: pop test 2");
    assert_eq!(subject(&mut c, "RETR 3"), "Subject: pop test 3");
    c.send(b"RETR 4\r\nRETR 3\r\nRETR 2\r\n");
    for n in [4, 3, 2] {
        assert!(c.line().starts_with("+OK"));
        assert!(c.multi().contains(&format!("Subject: pop test {n}")));
    }
    c.cmd("QUIT");
}

#[test]
fn sasl_plain_and_login_with_and_without_initial_response() {
    let server = server();
    alice(&server, 1);
    let plain = "AGFsaWNlAHNlY3JldA=="; // \0alice\0secret
    let plain_bad = "AGFsaWNlAHdyb25n"; // \0alice\0wrong

    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.cmd(&format!("AUTH PLAIN {plain}")).starts_with("+OK"));
    assert_eq!(c.cmd("STAT").split(' ').nth(1), Some("1"));
    c.cmd("QUIT");

    let mut c = Pop3::connect(server.ports.pop3);
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert!(c.cmd(plain).starts_with("+OK"));
    c.cmd("QUIT");

    let mut c = Pop3::connect(server.ports.pop3);
    assert_eq!(c.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6");
    assert_eq!(c.cmd("YWxpY2U="), "+ UGFzc3dvcmQ6");
    assert!(c.cmd("c2VjcmV0").starts_with("+OK"));
    c.cmd("QUIT");

    let mut c = Pop3::connect(server.ports.pop3);
    assert_eq!(c.cmd("AUTH LOGIN YWxpY2U="), "+ UGFzc3dvcmQ6");
    assert!(c.cmd("c2VjcmV0").starts_with("+OK"));
    c.cmd("QUIT");

    // Cancel, garbage, unknown mechanism, wrong password.
    let mut c = Pop3::connect(server.ports.pop3);
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(c.cmd("*"), "-ERR Authentication cancelled");
    assert_eq!(c.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6");
    assert_eq!(c.cmd("*"), "-ERR Authentication cancelled");
    assert!(c.cmd("AUTH PLAIN !!!").starts_with("-ERR"));
    assert!(c.cmd("AUTH CRAM-MD5").starts_with("-ERR"));
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {plain_bad}")),
        "-ERR [AUTH] Authentication failed"
    );
    assert_eq!(
        c.login("alice", "wrong"),
        "-ERR [AUTH] Authentication failed"
    );
    // The third failure closes the session.
    assert_eq!(c.login("nobody", "x"), "-ERR [AUTH] Authentication failed");
    assert_eq!(c.read_to_close(), "");

    // The pre-RFC 5034 listing.
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.cmd("AUTH").starts_with("+OK"));
    assert_eq!(c.multi(), vec!["PLAIN", "LOGIN"]);
    c.cmd("QUIT");
    let log = server.log();
    assert!(!log.contains("secret"), "password in the log");
}

#[test]
fn pipelined_commands_in_one_write() {
    let server = server();
    alice(&server, 2);
    let mut c = Pop3::connect(server.ports.pop3);
    c.send(b"CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\nTOP 2 0\r\nDELE 1\r\nSTAT\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(c.line(), "+OK Capability list follows");
    assert!(c.multi().contains(&"PIPELINING".to_string()));
    assert_eq!(c.line(), "+OK");
    assert!(c.line().starts_with("+OK Logged in"));
    assert!(c.line().starts_with("+OK 2 "));
    assert!(c.line().starts_with("+OK 2 messages"));
    assert_eq!(c.multi().len(), 2);
    assert!(c.line().starts_with("+OK 1 "));
    assert!(c.line().ends_with(" octets"));
    assert!(c.multi().contains(&"Subject: pop test 1".to_string()));
    assert_eq!(c.line(), "+OK Top of message follows");
    assert!(c.multi().contains(&"Subject: pop test 2".to_string()));
    assert_eq!(c.line(), "+OK Message 1 deleted");
    assert!(c.line().starts_with("+OK 1 "));
    assert_eq!(c.line(), "+OK");
    assert!(c.line().starts_with("+OK Merpati POP3 server signing off"));
    assert_eq!(c.read_to_close(), "");
    assert_eq!(server.uids("alice@localhost").len(), 1);
}

#[test]
fn dele_takes_effect_at_quit_only_and_new_mail_waits_for_next_session() {
    let server = server();
    let uids = alice(&server, 2);

    // A dropped connection deletes nothing.
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.login("alice", "secret").starts_with("+OK"));
    c.cmd("UIDL");
    let ids_before = c.multi();
    assert_eq!(c.cmd("DELE 1"), "+OK Message 1 deleted");
    assert_eq!(c.cmd("DELE 2"), "+OK Message 2 deleted");
    drop(c);
    assert!(
        server.wait_for_log("(lost connection)", 1),
        "{}",
        server.log()
    );
    assert_eq!(server.uids("alice@localhost"), uids);
    assert!(server.log().contains("nothing deleted"), "{}", server.log());

    // Mail arriving during a session is not in its snapshot.
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.login("alice", "secret").starts_with("+OK"));
    c.cmd("UIDL");
    assert_eq!(c.multi(), ids_before, "UIDL stable across sessions");
    fill(&server, "alice@localhost", &[message(3)]);
    assert!(c.cmd("STAT").starts_with("+OK 2 "));
    assert!(c.cmd("RETR 3").starts_with("-ERR"));
    assert_eq!(c.cmd("DELE 1"), "+OK Message 1 deleted");
    assert_eq!(
        c.cmd("QUIT"),
        "+OK Merpati POP3 server signing off (1 messages left)"
    );
    let after = server.uids("alice@localhost");
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(!after.contains(&uids[0]), "deleted at QUIT");
    assert!(after.contains(&uids[1]));

    // The next session sees the new message; old numbers are renumbered.
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("STAT").starts_with("+OK 2 "));
    c.cmd("UIDL");
    let ids = c.multi();
    assert_eq!(ids[0].split(' ').nth(1), ids_before[1].split(' ').nth(1));
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    assert!(c.multi().contains(&"Subject: pop test 3".to_string()));
    c.cmd("QUIT");

    let log = server.log();
    assert!(log.contains("pop3d{session="), "{log}");
    assert!(log.contains("login: user=<alice>"), "{log}");
    assert!(log.contains("retr=0 dele=1"), "{log}");
    assert!(log.contains("retr=1 dele=0"), "{log}");
    assert!(!log.contains("secret"), "password in the log");
}

#[test]
fn second_session_gets_in_use() {
    let server = server();
    alice(&server, 1);
    let mut first = Pop3::connect(server.ports.pop3);
    assert!(first.login("alice", "secret").starts_with("+OK"));

    let mut second = Pop3::connect(server.ports.pop3);
    let reply = second.login("alice@localhost", "secret");
    assert!(reply.starts_with("-ERR [IN-USE] "), "{reply}");
    // Still in AUTHORIZATION, and other accounts are not affected.
    assert!(second.cmd("STAT").starts_with("-ERR"));
    server.add_user("carol@localhost", "pw");
    let mut other = Pop3::connect(server.ports.pop3);
    assert!(other.login("carol", "pw").starts_with("+OK"));
    other.cmd("QUIT");

    // The store stays readable meanwhile (as IMAP would read it).
    assert_eq!(server.uids("alice@localhost").len(), 1);

    assert!(first.cmd("QUIT").starts_with("+OK"));
    let reply = second.login("alice", "secret");
    assert!(reply.starts_with("+OK"), "lock released at QUIT: {reply}");
    second.cmd("QUIT");
}

#[test]
fn pop3_delete_is_seen_by_a_concurrent_imap_session() {
    let server = server();
    alice(&server, 2);
    let out = python(
        r#"
import imaplib, poplib, sys
imap_port, pop_port = int(sys.argv[1]), int(sys.argv[2])
m = imaplib.IMAP4("127.0.0.1", imap_port, timeout=30)
m.login("alice", "secret")
typ, data = m.select("INBOX")
assert typ == "OK" and data[0] == b"2", (typ, data)
p = poplib.POP3("127.0.0.1", pop_port, timeout=30)
p.user("alice")
p.pass_("secret")
# IMAP goes on while POP3 holds the maildrop.
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK" and b"pop test 1" in data[0][1], data
p.retr(1)
p.dele(1)
p.retr(2)
p.top(2, 0)
typ, data = m.fetch("2", "(FLAGS)")
assert b"Seen" not in data[0], data
m.noop()
assert m.response("EXPUNGE")[1] == [None], "expunged before QUIT"
p.quit()
m.noop()
typ, data = m.response("EXPUNGE")
assert data == [b"1"], (typ, data)
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
# Unsolicited FETCH (FLAGS) updates may come first: look at every part.
parts = b" ".join(p if isinstance(p, bytes) else b" ".join(p) for p in data)
assert typ == "OK" and b"pop test 2" in parts, data
# Retrieved and kept: \\Seen, as Dovecot marks it at QUIT.
typ, data = m.fetch("1", "(FLAGS)")
assert b"\\Seen" in b" ".join(data), data
m.logout()
print("DONE")
"#,
        &[
            &server.ports.imap.to_string(),
            &server.ports.pop3.to_string(),
        ],
    );
    assert_success(&out, "imaplib + poplib");
    assert!(String::from_utf8_lossy(&out.stdout).contains("DONE"));
}

#[test]
fn plaintext_login_refused_before_stls_when_loopback_is_not_trusted() {
    let server = Builder::default()
        .pop3("plaintext_auth_on_loopback = false")
        .start();
    alice(&server, 1);
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.cmd("CAPA").starts_with("+OK"));
    let capa = c.multi();
    assert!(capa.contains(&"STLS".to_string()), "{capa:?}");
    assert!(!capa.contains(&"USER".to_string()), "{capa:?}");
    assert!(!capa.iter().any(|c| c.starts_with("SASL")), "{capa:?}");
    let user = c.cmd("USER alice");
    assert!(user.starts_with("-ERR [AUTH] "), "{user}");
    let auth = c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
    assert!(auth.starts_with("-ERR [AUTH] "), "{auth}");
    c.cmd("QUIT");

    // After STLS the same login works; plaintext pipelined behind STLS
    // is discarded (RFC 2595 §4, CVE-2011-0411).
    let out = python(
        r#"
import poplib, socket, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
sock = socket.create_connection(("127.0.0.1", port), timeout=30)
f = sock.makefile("rb")
assert f.readline().startswith(b"+OK"), "greeting"
sock.sendall(b"STLS\r\nUSER alice\r\n")
line = f.readline()
assert line == b"+OK Begin TLS negotiation\r\n", line
tls = ctx.wrap_socket(sock)
tf = tls.makefile("rb")
tls.sendall(b"PASS secret\r\n")
line = tf.readline()
assert line.startswith(b"-ERR"), ("injected USER survived STLS", line)
tls.sendall(b"CAPA\r\n")
capa = []
line = tf.readline()
assert line.startswith(b"+OK"), line
while True:
    line = tf.readline().rstrip(b"\r\n")
    if line == b".":
        break
    capa.append(line.decode())
assert "STLS" not in capa and "USER" in capa, capa
tls.sendall(b"USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")
for _ in range(4):
    line = tf.readline()
    assert line.startswith(b"+OK"), line
print("OK")
"#,
        &[&server.ports.pop3.to_string()],
    );
    assert_success(&out, "STLS login");
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn bad_commands_close_the_session_after_max_bad_commands() {
    let server = Builder::default().pop3("max_bad_commands = 3").start();
    alice(&server, 1);
    let mut c = Pop3::connect(server.ports.pop3);
    assert_eq!(c.cmd("HELO"), "-ERR Unknown command");
    assert_eq!(c.cmd("RETR one"), "-ERR Invalid message number");
    assert!(c.login("alice", "secret").starts_with("+OK"), "not counted");
    assert!(
        c.cmd("RETR 9").starts_with("-ERR"),
        "no such message is not bad"
    );
    assert_eq!(
        c.cmd("\u{1}\u{2}"),
        "-ERR Too many bad commands, closing connection"
    );
    assert_eq!(c.read_to_close(), "");
    assert!(server.wait_for_log("(too many bad commands)", 1));
}

#[test]
fn commands_before_login_are_limited() {
    let server = server();
    let mut c = Pop3::connect(server.ports.pop3);
    let mut script = Vec::new();
    for _ in 0..25 {
        script.extend_from_slice(b"CAPA\r\n");
    }
    c.send(&script);
    for _ in 0..20 {
        assert!(c.line().starts_with("+OK"));
        c.multi();
    }
    assert_eq!(c.line(), "-ERR Too many commands before login");
    assert_eq!(c.read_to_close(), "");
}

#[test]
fn over_long_line_is_refused_and_the_session_goes_on() {
    let server = Builder::default().pop3("line_length_limit = 512").start();
    alice(&server, 1);
    let mut c = Pop3::connect(server.ports.pop3);
    let long = format!("USER {}\r\n", "x".repeat(5000));
    c.send(long.as_bytes());
    assert_eq!(c.line(), "-ERR Line too long");
    assert!(c.login("alice", "secret").starts_with("+OK"));
    c.send(b"NOOP ");
    c.send("y".repeat(600).as_bytes());
    c.send(b"\r\nNOOP\r\n");
    assert_eq!(c.line(), "-ERR Line too long");
    assert_eq!(c.line(), "+OK");
    c.cmd("QUIT");
}

#[test]
fn idle_session_is_logged_out_and_deletes_nothing() {
    let server = Builder::default().pop3("idle_timeout = \"1s\"").start();
    alice(&server, 1);
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert_eq!(c.line(), "-ERR Autologout; idle for too long");
    assert_eq!(c.read_to_close(), "");
    assert_eq!(server.uids("alice@localhost").len(), 1);
}

#[test]
fn shutdown_closes_idle_sessions_with_sys_temp() {
    let mut server = server();
    alice(&server, 1);
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    server.signal("TERM");
    assert_eq!(c.line(), "-ERR [SYS/TEMP] Server shutting down");
    assert_eq!(c.read_to_close(), "");
    assert!(
        server.wait_exit(Duration::from_secs(20)),
        "{}",
        server.log()
    );
    server.spawn();
    assert_eq!(server.uids("alice@localhost").len(), 1, "nothing deleted");
}

// ---------------------------------------------------------------------------
// Real clients

const POPLIB: &str = r#"
import poplib, ssl, sys
mode, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if mode == "stls":
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    assert "STLS" in p.capa()
    p.stls(ctx)
    assert "STLS" not in p.capa()
else:
    p = poplib.POP3_SSL("127.0.0.1", port, context=ctx, timeout=30)
    assert "STLS" not in p.capa()
print(p.getwelcome().decode())
p.user("alice")
p.pass_("secret")
count, size = p.stat()
resp, listing, _ = p.list()
sizes = [int(l.split()[1]) for l in listing]
assert count == len(listing) == 2 and sum(sizes) == size, (count, size, listing)
resp, uidls, _ = p.uidl()
assert len(uidls) == 2
for i in (1, 2):
    resp, lines, octets = p.retr(i)
    assert octets == sizes[i - 1], (octets, sizes)
    assert b".leading dot" in lines and b"..two dots" in lines and b"." in lines, lines
resp, lines, _ = p.top(1, 0)
assert lines[-1] == b"", lines
p.dele(1)
print(p.quit().decode())
print("DONE", count)
"#;

#[test]
fn python_poplib_over_110_with_stls() {
    let server = server();
    alice(&server, 2);
    let out = python(POPLIB, &["stls", &server.ports.pop3.to_string()]);
    assert_success(&out, "poplib STLS");
    assert!(String::from_utf8_lossy(&out.stdout).contains("DONE 2"));
    assert_eq!(server.uids("alice@localhost").len(), 1);
    assert!(
        server.log().contains("method=USER, tls=yes"),
        "{}",
        server.log()
    );
}

#[test]
fn python_poplib_over_995() {
    let server = server();
    alice(&server, 2);
    let out = python(POPLIB, &["ssl", &server.ports.pop3s.to_string()]);
    assert_success(&out, "poplib SSL");
    assert!(String::from_utf8_lossy(&out.stdout).contains("DONE 2"));
    assert_eq!(server.uids("alice@localhost").len(), 1);
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "30"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("curl is required for this test: {e}"))
}

#[test]
fn curl_lists_and_retrieves_over_pop3_and_pop3s() {
    let server = server();
    alice(&server, 2);
    let plain = format!("pop3://127.0.0.1:{}/", server.ports.pop3);
    let tls = format!("pop3s://127.0.0.1:{}/", server.ports.pop3s);
    for (url, extra) in [(&plain, None), (&tls, Some("-k"))] {
        let mut args = vec![url.as_str(), "-u", "alice:secret"];
        args.extend(extra);
        let out = curl(&args);
        assert_success(&out, "curl list");
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 2, "{listing}");
        assert!(lines[0].starts_with("1 ") && lines[1].starts_with("2 "));

        let one = format!("{url}1");
        let mut args = vec![one.as_str(), "-u", "alice:secret"];
        args.extend(extra);
        let out = curl(&args);
        assert_success(&out, "curl retrieve");
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(body.contains("Subject: pop test 1\r\n"), "{body}");
        assert!(
            body.contains("\r\n.leading dot\r\n..two dots\r\n"),
            "{body}"
        );
    }
    // Over STLS too (curl --ssl-reqd on pop3://).
    let two = format!("{plain}2");
    let out = curl(&["--ssl-reqd", "-k", &two, "-u", "alice:secret"]);
    assert_success(&out, "curl STLS");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Subject: pop test 2"));
    assert!(
        server.log().contains("method=PLAIN, tls=yes"),
        "{}",
        server.log()
    );
    assert_eq!(
        server.uids("alice@localhost").len(),
        2,
        "curl deletes nothing"
    );
}

/// fetchmail must be installed (`apt-get install fetchmail`): its absence
/// is a failure, not a reason to skip.
fn fetchmail(dir: &Path, rc: &str, idfile: &Path) -> Output {
    const FETCHMAIL: &str = "/usr/bin/fetchmail";
    assert!(
        Path::new(FETCHMAIL).exists(),
        "fetchmail is not installed at {FETCHMAIL}: install it with `apt-get install fetchmail`"
    );
    let rc_path = dir.join("fetchmailrc");
    std::fs::write(&rc_path, rc).expect("write rc");
    // fetchmail refuses a run control file others may read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    Command::new(FETCHMAIL)
        .arg("-f")
        .arg(&rc_path)
        .arg("--idfile")
        .arg(idfile)
        .args(["--nosyslog", "-v"])
        // As root, fetchmail's lock is /var/run/fetchmail.pid by default,
        // which would serialise (and fail) concurrent tests.
        .arg("--pidfile")
        .arg(dir.join("fetchmail.pid"))
        .env("HOME", dir)
        .env("FETCHMAILHOME", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {FETCHMAIL}: {e}"))
}

#[test]
fn fetchmail_pulls_into_a_local_mbox_and_deletes() {
    let server = server();
    alice(&server, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("mbox");
    // Default sslproto: fetchmail takes the advertised STLS.
    let rc = format!(
        "poll 127.0.0.1 protocol pop3 port {port} user \"alice\" password \"secret\" is root here \
         options no keep fetchall no sslcertck mda \"cat >> {mbox}\"\n",
        port = server.ports.pop3,
        mbox = mbox.display()
    );
    let out = fetchmail(dir.path(), &rc, &dir.path().join("ids"));
    assert_success(&out, "fetchmail");
    let log = text(&out);
    assert!(log.contains("POP3> STLS"), "{log}");
    let pulled = std::fs::read_to_string(&mbox).expect("mbox");
    for n in 1..=3 {
        assert!(
            pulled.contains(&format!("Subject: pop test {n}")),
            "{pulled}"
        );
    }
    assert!(pulled.contains("\n.leading dot"), "unstuffed: {pulled}");
    assert!(
        server.uids("alice@localhost").is_empty(),
        "deleted on the server"
    );
}

#[test]
fn fetchmail_keep_relies_on_uidl() {
    let server = server();
    alice(&server, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("mbox");
    let ids = dir.path().join("ids");
    let rc = format!(
        "poll 127.0.0.1 protocol pop3 port {port} uidl user \"alice\" password \"secret\" is root here \
         options keep sslproto '' mda \"cat >> {mbox}\"\n",
        port = server.ports.pop3,
        mbox = mbox.display()
    );
    let out = fetchmail(dir.path(), &rc, &ids);
    assert_success(&out, "fetchmail keep");
    let first = std::fs::read_to_string(&mbox).expect("mbox");
    assert_eq!(first.matches("Subject: pop test").count(), 2, "{first}");
    let remembered = std::fs::read_to_string(&ids).expect("idfile");
    assert_eq!(remembered.lines().count(), 2, "{remembered}");

    // Nothing new: fetchmail exits 1 ("no mail") and fetches nothing.
    let out = fetchmail(dir.path(), &rc, &ids);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("2 seen"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&mbox).expect("mbox"), first);

    // One new message: only it is fetched; the server still has all.
    fill(&server, "alice@localhost", &[message(3)]);
    let out = fetchmail(dir.path(), &rc, &ids);
    assert_success(&out, "fetchmail keep, third run");
    let third = std::fs::read_to_string(&mbox).expect("mbox");
    assert_eq!(third.matches("Subject: pop test").count(), 3, "{third}");
    assert!(third.contains("Subject: pop test 3"));
    assert_eq!(server.uids("alice@localhost").len(), 3);
}

#[test]
fn connections_over_the_per_client_limit_are_refused_with_sys_temp() {
    let server = Builder::default()
        .pop3("max_connections_per_client = 1")
        .start();
    let mut first = Pop3::connect(server.ports.pop3);
    let stream = TcpStream::connect(("127.0.0.1", server.ports.pop3)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut refused = String::new();
    let _ = BufReader::new(stream).read_to_string(&mut refused);
    assert_eq!(
        refused,
        "-ERR [SYS/TEMP] Too many connections from your address\r\n"
    );
    assert_eq!(first.cmd("CAPA"), "+OK Capability list follows");
    first.multi();
    first.cmd("QUIT");
}

#[test]
fn large_message_is_retrieved_whole() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    let mut body = String::from("From: bob@localhost\r\nSubject: big\r\n\r\n");
    for i in 0..40_000 {
        body.push_str(&format!(
            ".{i:08} the same line again and again, 59 octets long..\r\n"
        ));
    }
    fill(&server, "alice@localhost", &[body]);
    let mut c = Pop3::connect(server.ports.pop3);
    assert!(c.login("alice", "secret").starts_with("+OK"));
    let size: usize = c
        .cmd("LIST 1")
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("size");
    assert!(size > 2_000_000, "{size}");
    assert_eq!(c.cmd("RETR 1"), format!("+OK {size} octets"));
    let raw = c.multi_raw();
    // Every body line starts with a dot and was stuffed.
    assert_eq!(raw.len(), size + 40_000 + 3);
    assert!(raw.ends_with(b"..\r\n.\r\n"));
    assert_eq!(c.cmd("NOOP"), "+OK");
    c.cmd("QUIT");
}
