//! ManageSieve (RFC 5804) on its port: Debian's `sieve-connect` uploads,
//! lists, downloads, activates and deletes over STARTTLS, and the script
//! it uploaded files mail at delivery; a raw session checks the exact
//! exchanges (capabilities, codes, bounds) a client relies on.

use crate::harness::{Builder, Server, server, text, wait_until};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs sieve-connect against the server as bob, the password on fd 0.
fn sieve_connect(server: &Server, args: &[&str]) -> std::process::Output {
    let mut child = Command::new("sieve-connect")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &server.ports.managesieve.to_string(),
            "--user",
            "bob@localhost",
            "--passwordfd",
            "0",
            "--notlsverify",
            "--noclearauth",
            // No SRV lookup of `_sieve._tcp.127.0.0.1` through the host's
            // resolver (a CI machine without DNS would wait it out).
            "--nosrv",
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sieve-connect (Debian package) is required: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"pw\n")
        .expect("password");
    child.wait_with_output().expect("sieve-connect")
}

#[test]
fn sieve_connect_manages_scripts_over_starttls() {
    let server = server();
    server.add_user("bob@localhost", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("rules.sieve");
    std::fs::write(
        &script,
        "require [\"fileinto\"];\nif header :contains \"subject\" \"report\" {\n  fileinto :create \"Reports\";\n}\n",
    )
    .expect("write");
    let local = script.to_str().expect("path");
    let out = sieve_connect(
        &server,
        &["--upload", "--localsieve", local, "--remotesieve", "rules"],
    );
    assert!(out.status.success(), "upload: {}", text(&out));
    // --noclearauth: it logged in only because STARTTLS came first.
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log()
            .contains("login: user=<bob>, method=PLAIN, tls=yes")),
        "{}",
        server.log()
    );

    let out = sieve_connect(&server, &["--activate", "--remotesieve", "rules"]);
    assert!(out.status.success(), "activate: {}", text(&out));
    let out = sieve_connect(&server, &["--list"]);
    assert!(out.status.success(), "list: {}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("rules"), "{listing}");
    assert!(
        listing.contains("ACTIVE") || listing.contains('*'),
        "{listing}"
    );
    assert!(
        server
            .cli_ok(&["sieve", "list", "bob@localhost"])
            .contains("rules ACTIVE")
    );

    let back = dir.path().join("back.sieve");
    let out = sieve_connect(
        &server,
        &[
            "--download",
            "--remotesieve",
            "rules",
            "--localsieve",
            back.to_str().expect("path"),
        ],
    );
    assert!(out.status.success(), "download: {}", text(&out));
    assert_eq!(
        std::fs::read(&back).expect("downloaded"),
        std::fs::read(&script).expect("script")
    );

    // The uploaded script runs at delivery.
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    let reply = c.send_mail(
        "alice@localhost",
        &["bob@localhost"],
        "From: <alice@localhost>\r\nSubject: weekly report\r\n\r\nfigures\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(wait_until(Duration::from_secs(10), || {
        String::from_utf8_lossy(
            &server
                .cli(&["mailbox", "list", "bob@localhost", "Reports"])
                .stdout,
        )
        .lines()
        .count()
            == 1
    }));

    // A broken script is refused with the compiler's place and reason.
    std::fs::write(&script, "if header :is \"subject\" {\n keep;\n}\n").expect("write");
    let out = sieve_connect(
        &server,
        &["--upload", "--localsieve", local, "--remotesieve", "broken"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("line 1, column 4"),
        "the error reaches the user: {}",
        text(&out)
    );

    // The active script cannot be deleted; once deactivated it can.
    let out = sieve_connect(&server, &["--delete", "--remotesieve", "rules"]);
    assert!(!out.status.success(), "{}", text(&out));
    let out = sieve_connect(&server, &["--deactivate"]);
    assert!(out.status.success(), "deactivate: {}", text(&out));
    let out = sieve_connect(&server, &["--delete", "--remotesieve", "rules"]);
    assert!(out.status.success(), "delete: {}", text(&out));
    assert_eq!(server.cli_ok(&["sieve", "list", "bob@localhost"]), "");
}

/// A raw ManageSieve client: sends lines, reads up to the OK/NO/BYE.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    /// Everything up to and including the next OK, NO or BYE line.
    fn response(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).expect("read") == 0 {
                return all;
            }
            // A literal: its bytes, then the rest of the line.
            if let Some(n) = line
                .trim_end()
                .strip_suffix('}')
                .and_then(|l| l.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                all.push_str(&line);
                let mut body = vec![0; n];
                self.reader.read_exact(&mut body).expect("literal");
                all.push_str(&String::from_utf8_lossy(&body));
                continue;
            }
            all.push_str(&line);
            if line.starts_with("OK") || line.starts_with("NO") || line.starts_with("BYE") {
                return all;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.response()
    }

    fn put(&mut self, name: &str, script: &str) -> String {
        self.send(format!("PUTSCRIPT \"{name}\" {{{}+}}\r\n{script}\r\n", script.len()).as_bytes());
        self.response()
    }
}

/// `AUTHENTICATE "PLAIN"` with the initial response.
fn plain(user: &str, password: &str) -> String {
    let mut raw = vec![0u8];
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"",
        merpati::auth::base64_encode(&raw)
    )
}

#[test]
fn the_exchanges_clients_rely_on() {
    let server = Builder::default()
        .tail("[sieve]\nmax_script_size = \"200\"\nmax_scripts = 2\nmax_redirects = 3")
        .start();
    server.add_user("bob@localhost", "pw");
    let mut c = Client::connect(server.ports.managesieve);
    let greeting = c.response();
    assert!(
        greeting.contains("\"IMPLEMENTATION\" \"Merpati\""),
        "{greeting}"
    );
    assert!(greeting.contains("\"SASL\" \"PLAIN LOGIN\""), "{greeting}");
    assert!(greeting.contains("\"STARTTLS\""), "{greeting}");
    assert!(greeting.contains("\"MAXREDIRECTS\" \"3\""), "{greeting}");
    assert!(greeting.contains("\"NOTIFY\" \"mailto\""), "{greeting}");
    assert!(greeting.contains("\"VERSION\" \"1.0\""), "{greeting}");
    assert!(greeting.contains("fileinto"), "{greeting}");
    assert!(
        greeting.ends_with("OK \"Merpati ManageSieve ready\"\r\n"),
        "{greeting}"
    );

    assert!(c.cmd("LISTSCRIPTS").starts_with("NO"));
    assert!(c.cmd(&plain("bob@localhost", "wrong")).starts_with("NO"));
    assert!(c.cmd(&plain("bob@localhost", "pw")).starts_with("OK"));
    assert!(c.cmd("CAPABILITY").contains("\"OWNER\" \"bob\""));

    // Sizes: HAVESPACE answers before the upload, a script over the
    // bound is refused, and so is a third script.
    assert_eq!(
        c.cmd("HAVESPACE \"a\" 100"),
        "OK \"havespace completed\"\r\n"
    );
    assert!(
        c.cmd("HAVESPACE \"a\" 1000")
            .starts_with("NO (QUOTA/MAXSIZE)")
    );
    let big = format!("# {}\r\nkeep;\r\n", "x".repeat(300));
    assert!(c.put("big", &big).starts_with("NO (QUOTA/MAXSIZE)"));
    assert_eq!(
        c.cmd("NOOP \"still here\""),
        "OK (TAG \"still here\") \"Done\"\r\n"
    );
    assert!(c.put("one", "keep;").starts_with("OK"));
    assert!(c.put("two", "discard;").starts_with("OK"));
    assert!(c.put("three", "keep;").starts_with("NO (QUOTA/MAXSCRIPTS)"));
    // Replacing an existing one is not a new script.
    assert!(c.put("two", "stop;").starts_with("OK"));

    // Compile errors, with the place, from PUTSCRIPT and CHECKSCRIPT.
    let checked = c.cmd("CHECKSCRIPT {9+}\r\nfileinto;");
    assert!(checked.starts_with("NO"), "{checked}");
    assert!(checked.contains("line 1, column 1"), "{checked}");
    assert!(c.cmd("CHECKSCRIPT \"keep;\"").starts_with("OK"));

    assert_eq!(
        c.cmd("LISTSCRIPTS"),
        "\"one\"\r\n\"two\"\r\nOK \"listscripts completed\"\r\n"
    );
    assert!(c.cmd("SETACTIVE \"nope\"").starts_with("NO (NONEXISTENT)"));
    assert!(c.cmd("SETACTIVE \"two\"").starts_with("OK"));
    assert!(c.cmd("LISTSCRIPTS").contains("\"two\" ACTIVE\r\n"));
    assert!(c.cmd("DELETESCRIPT \"two\"").starts_with("NO (ACTIVE)"));
    assert!(
        c.cmd("RENAMESCRIPT \"two\" \"one\"")
            .starts_with("NO (ALREADYEXISTS)")
    );
    assert!(c.cmd("RENAMESCRIPT \"two\" \"second\"").starts_with("OK"));
    assert!(c.cmd("LISTSCRIPTS").contains("\"second\" ACTIVE\r\n"));
    assert_eq!(
        c.cmd("GETSCRIPT \"second\""),
        "{5}\r\nstop;\r\nOK \"getscript completed\"\r\n"
    );
    assert!(c.cmd("GETSCRIPT \"two\"").starts_with("NO (NONEXISTENT)"));
    assert!(c.cmd("SETACTIVE \"\"").starts_with("OK"));
    assert!(c.cmd("DELETESCRIPT \"second\"").starts_with("OK"));

    // Back to the start, then out.
    assert!(c.cmd("UNAUTHENTICATE").starts_with("OK"));
    assert!(c.cmd("LISTSCRIPTS").starts_with("NO"));
    assert!(c.cmd("LOGOUT").starts_with("OK"));
}

#[test]
fn no_password_without_tls_and_bounded_input() {
    let server = Builder::default()
        .managesieve("plaintext_auth_on_loopback = false\nmax_bad_commands = 4")
        .start();
    server.add_user("bob@localhost", "pw");
    let mut c = Client::connect(server.ports.managesieve);
    let greeting = c.response();
    assert!(greeting.contains("\"SASL\" \"\"\r\n"), "{greeting}");
    assert!(
        c.cmd(&plain("bob@localhost", "pw"))
            .starts_with("NO (ENCRYPT-NEEDED)")
    );
    // A literal over the pre-login bound is skipped, not read into memory
    // as a command, and the session goes on.
    let huge = format!(
        "AUTHENTICATE \"PLAIN\" {{20000+}}\r\n{}\r\n",
        "A".repeat(20_000)
    );
    c.send(huge.as_bytes());
    assert!(c.response().starts_with("NO"));
    assert!(c.cmd("NOOP").starts_with("OK"));
    let long = format!("NOOP \"{}\"", "x".repeat(9000));
    assert!(c.cmd(&long).starts_with("NO"));
    assert!(c.cmd("FROB").starts_with("NO"));
    // The fourth bad command closes the session.
    assert!(c.cmd("FROB").starts_with("BYE"));
}
