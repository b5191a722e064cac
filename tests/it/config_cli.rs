//! The command line: `check-config`, account management with the daemon
//! running (control socket) and stopped (store opened directly), and the
//! classic `mailq` / `sendmail` names by symlink.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `program args...` with extra environment and `stdin`.
fn run(program: &Path, args: &[&str], env: &[(&str, &Path)], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("output")
}

#[test]
fn shipped_config_file_checks_clean() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/merpati.toml");
    let out = run(
        Path::new(BIN),
        &["--config", shipped.to_str().unwrap(), "check-config"],
        &[],
        b"",
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).starts_with("config OK: myhostname="),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(" mydestination="), "{}", stdout(&out));
}

#[test]
fn check_config_names_every_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "bogus3 = true\ndata_dir = \"/nonexistent/merpati\"\n[smtp]\nbogus = 1\nbanner = \"x\"\n[queue]\nbogus2 = \"5m\"\n",
    )
    .unwrap();
    let out = run_cli(&path, &["check-config"], b"");
    assert!(
        !out.status.success(),
        "a bogus config passed: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    let file = path.display().to_string();
    // file:line:col: key: message, one line per problem.
    for (key, at) in [
        ("bogus3", "1:1"),
        ("smtp.bogus", "4:1"),
        ("queue.bogus2", "7:1"),
    ] {
        let want = format!("{file}:{at}: {key}: unknown key");
        assert!(err.lines().any(|l| l == want), "{want} not in: {err}");
    }
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(!stdout(&out).contains("config OK"), "{}", stdout(&out));

    // Every other command refuses the file too, naming the keys.
    let out = run_cli(&path, &["queue", "list"], b"");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("configuration problems"), "{err}");
    assert!(
        err.contains("smtp.bogus") && err.contains("queue.bogus2") && err.contains("bogus3"),
        "{err}"
    );
}

/// The problems a newcomer met, all in one file: each is reported, at once,
/// naming its key and place.
#[test]
fn check_config_reports_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("merpati.toml");
    let text = "\
myhostname = \"bad host!\"
bogus = 1
[smtp]
max_recipients = \"lots\"
max_errors = \"many\"
[queue]
local_concurrency = 0
[relay]
relayhost = \"host:notaport\"
[tls]
cert = \"/nonexistent/cert.pem\"
key = \"/nonexistent/key.pem\"
";
    std::fs::write(&path, text).unwrap();
    let out = run_cli(&path, &["check-config"], b"");
    assert!(!out.status.success());
    let err = stderr(&out);
    let file = path.display().to_string();
    // Syntax and types first: all of them, each at its value.
    for want in [
        format!("{file}:2:1: bogus: unknown key"),
        format!("{file}:4:18: smtp.max_recipients: invalid type: string \"lots\", expected usize"),
        format!("{file}:5:14: smtp.max_errors: invalid type: string \"many\", expected u32"),
    ] {
        assert!(err.lines().any(|l| l == want), "{want}\nnot in:\n{err}");
    }
    // Fixed those, the semantic checks and the files are reported together.
    let text = text
        .replace("bogus = 1\n", "")
        .replace("max_recipients = \"lots\"\nmax_errors = \"many\"\n", "");
    std::fs::write(&path, &text).unwrap();
    let out = run_cli(&path, &["check-config"], b"");
    assert!(!out.status.success());
    let err = stderr(&out);
    for want in [
        format!("{file}:1:1: myhostname: `bad host!` is not a valid host name"),
        format!("{file}:4:1: queue.local_concurrency: must be above 0"),
        format!("{file}:6:1: relay.relayhost: `host:notaport`: `notaport` is not a port number"),
        format!("{file}:8:1: tls.cert: cannot read /nonexistent/cert.pem"),
        format!("{file}:9:1: tls.key: cannot read /nonexistent/key.pem"),
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "{want}\nnot in:\n{err}"
        );
    }
    assert!(err.contains("5 problem(s)"), "{err}");

    // A syntax error names the file, line and column.
    std::fs::write(&path, "[smtp]\nmax_errors = = 3\n").unwrap();
    let out = run_cli(&path, &["check-config"], b"");
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("{file}:2:")) && l.contains("(syntax)")),
        "{err}"
    );
}

/// A reload (SIGHUP) refuses what check-config refuses and keeps running
/// with the old configuration, certificate included.
#[test]
fn reload_refuses_a_missing_certificate() {
    let server = server();
    let original = std::fs::read_to_string(&server.config_path).unwrap();
    std::fs::write(
        &server.config_path,
        format!("{original}\n[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n"),
    )
    .unwrap();
    server.signal("HUP");
    assert!(server.wait_for_log("reload refused", 1), "{}", server.log());
    assert!(
        server
            .log()
            .contains("tls.cert: cannot read /nonexistent/c.pem"),
        "{}",
        server.log()
    );
    assert!(
        !server.log().contains("reloaded configuration"),
        "{}",
        server.log()
    );
    // Still serving, STARTTLS included.
    let mut c = server.connect();
    c.reply();
    assert!(c.cmd("EHLO x").contains("STARTTLS"));
    assert!(c.cmd("STARTTLS").starts_with("220"));
}

#[test]
fn accounts_are_managed_with_the_daemon_running_and_stopped() {
    let mut server = server();
    // Running: through the control socket.
    let out = server.cli_with_input(&["user", "add", "dora@localhost"], b"secret\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "added dora\n");
    let out = server.cli_with_input(
        &["user", "add", "erin@localhost", "--quota", "1MiB"],
        b"secret\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let list = server.cli_ok(&["user", "list"]);
    assert!(list.contains("dora\tused=0\tquota=unlimited\n"), "{list}");
    assert!(list.contains("erin\tused=0\tquota=1048576\n"), "{list}");
    assert!(
        list.contains("postmaster\t") && list.contains("(no password)"),
        "{list}"
    );

    let again = server.cli_with_input(&["user", "add", "dora@localhost"], b"other\n");
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("account already exists"),
        "{}",
        stderr(&again)
    );

    let out = server.cli_with_input(&["user", "passwd", "dora@localhost"], b"new secret\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "password changed for dora\n");
    let out = server.cli_with_input(&["user", "passwd", "dora@localhost"], b"\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("empty password refused"),
        "{}",
        stderr(&out)
    );
    let out = server.cli_with_input(&["user", "passwd", "nobody@localhost"], b"pw\n");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such account"), "{}", stderr(&out));

    // Not ours: refused before anything is stored.
    let out = server.cli_with_input(&["user", "add", "x@not-local.example"], b"pw\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not-local.example is not a local domain"),
        "{}",
        stderr(&out)
    );
    assert!(!server.cli_ok(&["user", "list"]).contains("not-local"));

    // Mail reaches a new account at once.
    server.submit(
        "bob@example.org",
        &["dora@localhost"],
        "Subject: hello dora\r\n\r\nHi.\r\n",
    );
    assert_eq!(server.wait_for_mail("dora@localhost", 1).len(), 1);

    let out = server.cli(&["user", "del", "erin@localhost"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "deleted erin\n");
    assert!(!server.cli_ok(&["user", "list"]).contains("erin\t"));
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<bob@example.org>");
    let reply = c.cmd("RCPT TO:<erin@localhost>");
    assert!(
        reply.starts_with("550 5.1.1 "),
        "deleted account still accepted: {reply}"
    );

    // Stopped: the CLI opens the store itself.
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)));
    let out = server.cli_with_input(&["user", "add", "fay@localhost"], b"pw\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let list = server.cli_ok(&["user", "list"]);
    assert!(list.contains("fay\t") && list.contains("dora\t"), "{list}");
    let listing = server.cli_ok(&["mailbox", "list", "dora@localhost"]);
    assert!(
        listing.starts_with("1\t") && listing.ends_with("\thello dora\n"),
        "{listing}"
    );
    let out = server.cli(&["user", "del", "dora@localhost"]);
    assert!(out.status.success(), "{}", stderr(&out));

    server.spawn();
    let list = server.cli_ok(&["user", "list"]);
    assert!(list.contains("fay\t") && !list.contains("dora\t"), "{list}");
    server.submit(
        "bob@example.org",
        &["fay@localhost"],
        "Subject: hello fay\r\n\r\nHi.\r\n",
    );
    assert_eq!(server.wait_for_mail("fay@localhost", 1).len(), 1);
}

#[test]
fn mailq_subcommand_lists_the_queue() {
    let server = server();
    assert_eq!(server.cli_ok(&["mailq"]), "Mail queue is empty\n");
    let id = server.submit(
        "alice@localhost",
        &["someone@example.com"],
        "Subject: q\r\n\r\nq\r\n",
    );
    assert!(wait_until(Duration::from_secs(30), || server
        .queues_holding(&id)
        == ["deferred"]));
    let listing = server.cli_ok(&["mailq"]);
    assert_eq!(listing, server.queue_list());
    assert!(
        listing.contains(&id) && listing.contains("Requests."),
        "{listing}"
    );
}

/// `dir/name` -> the merpati binary.
fn symlink(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(BIN, &link).expect("symlink");
    link
}

#[test]
fn mailq_and_sendmail_by_symlink() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    let env = [("MERPATI_CONFIG", server.config_path.as_path())];

    // Symlinked commands take no --config, so they need another way to
    // find a config file. Checked first, with a command that writes
    // nothing, so that a binary without it never touches the system-wide
    // /var/lib/merpati below.
    let out = run(Path::new(BIN), &["check-config"], &env, b"");
    assert!(
        stdout(&out).contains(&format!("myhostname={HOSTNAME} ")),
        "MERPATI_CONFIG is not honoured when --config is absent, so `mailq` and `sendmail` \
         symlinks cannot be pointed at a config file: {}{}",
        stdout(&out),
        stderr(&out)
    );

    let bin = tempfile::tempdir().unwrap();
    let mailq = symlink(bin.path(), "mailq");
    let sendmail = symlink(bin.path(), "sendmail");

    let out = run(&mailq, &[], &env, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Mail queue is empty\n");

    // sendmail -t: recipients from the header, Bcc removed.
    let message = b"From: bob@localhost\nTo: alice@localhost\nBcc: someone@example.com\nSubject: via sendmail\n\nHello from sendmail -t.\n";
    let out = run(&sendmail, &["-t", "-i"], &env, message);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let uids = server.wait_for_mail("alice@localhost", 1);
    assert_eq!(uids.len(), 1, "{}", server.log());
    let text = server.message("alice@localhost", uids[0]);
    assert!(text.contains("Subject: via sendmail\r\n"), "{text}");
    assert!(!text.contains("Bcc:"), "{text}");
    assert!(
        text.ends_with("\r\n\r\nHello from sendmail -t.\r\n"),
        "{text}"
    );

    // The Bcc copy waits for remote delivery: `sendmail -bp` shows it.
    assert!(wait_until(Duration::from_secs(30), || server
        .queue_files("deferred")
        .len()
        == 1));
    let out = run(&sendmail, &["-bp"], &env, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("someone@example.com"),
        "{}",
        stdout(&out)
    );
    let out = run(&mailq, &[], &env, b"");
    assert_eq!(stdout(&out), server.queue_list());
}
