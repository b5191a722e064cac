//! `merpati import maildir` on a Maildir the real Dovecot wrote: a
//! private Dovecot (no protocols, only its auth and mail processes)
//! delivers with dovecot-lda, makes a Maildir++ folder and saves into it
//! with doveadm, sets `\Seen` and a keyword; the import keeps folder,
//! flags and keyword.

use crate::harness::*;
use std::process::Command;

pub fn run(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("dovecot-core (Debian package) is required: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    child.wait_with_output().expect("wait")
}

/// A private Dovecot (no protocols: only its auth and mail processes)
/// with one static user, `tester`, whose Maildir is `home/Maildir`;
/// stopped on drop.
pub struct PrivateDovecot {
    pub home: std::path::PathBuf,
    pub conf: String,
}

impl PrivateDovecot {
    pub fn start(d: &std::path::Path) -> PrivateDovecot {
        let home = d.join("home");
        std::fs::create_dir_all(&home).expect("home");
        // Dovecot will not deliver as root: the mail belongs to nobody.
        let chown = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(&home)
            .status();
        assert!(
            chown.is_ok_and(|s| s.success()),
            "chown (the tests run as root)"
        );
        let _ = Command::new("chmod").arg("755").arg(d).status();
        let conf = d.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "protocols =\nbase_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\nssl = no\n\
    first_valid_uid = 0\ndefault_internal_user = root\ndefault_login_user = root\n\
    mail_location = maildir:{h}/Maildir\nnamespace inbox {{\n  inbox = yes\n  separator = .\n}}\n\
    userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={h}\n}}\n\
    passdb {{\n  driver = static\n  args = nopassword=y\n}}\n",
                d = d.display(),
                h = home.display()
            ),
        )
        .expect("conf");
        let c = conf.to_str().expect("path");
        let start = Command::new("dovecot").args(["-c", c]).status();
        assert!(
            start.is_ok_and(|s| s.success()),
            "dovecot (dovecot-core) must start"
        );
        PrivateDovecot {
            home: home.clone(),
            conf: c.to_string(),
        }
    }
}

impl Drop for PrivateDovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .args(["-c", &self.conf, "stop"])
            .status();
    }
}

#[test]
fn a_maildir_dovecot_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let dovecot = PrivateDovecot::start(d);
    let (home, c) = (dovecot.home.clone(), dovecot.conf.as_str());
    let lda = run(
        Command::new("/usr/lib/dovecot/dovecot-lda")
            .args(["-c", c, "-d", "tester", "-f", "a@x.test"]),
        b"From: a@x.test\nSubject: from dovecot one\nMessage-ID: <1@x.test>\n\nhello\n",
    );
    assert_success(&lda, "dovecot-lda");
    // Two more, and the middle one of the three expunged: INBOX holds
    // UIDs 1 and 3, which the import must keep.
    for n in ["two-a", "two-b"] {
        let more = run(
            Command::new("/usr/lib/dovecot/dovecot-lda")
                .args(["-c", c, "-d", "tester", "-f", "a@x.test"]),
            format!("From: a@x.test\nSubject: inbox {n}\n\nhello\n").as_bytes(),
        );
        assert_success(&more, "dovecot-lda");
    }
    let expunge = run(
        Command::new("doveadm").args([
            "-c", c, "expunge", "-u", "tester", "mailbox", "INBOX", "uid", "2",
        ]),
        b"",
    );
    assert_success(&expunge, "doveadm expunge");
    let status = run(
        Command::new("doveadm").args([
            "-c",
            c,
            "-f",
            "flow",
            "mailbox",
            "status",
            "-u",
            "tester",
            "uidvalidity",
            "INBOX",
        ]),
        b"",
    );
    assert_success(&status, "doveadm mailbox status");
    let validity = String::from_utf8_lossy(&status.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .to_string();
    let create = run(
        Command::new("doveadm").args(["-c", c, "mailbox", "create", "-u", "tester", "Lists.dev"]),
        b"",
    );
    assert_success(&create, "doveadm mailbox create");
    let save = run(
        Command::new("doveadm").args(["-c", c, "save", "-u", "tester", "-m", "Lists.dev"]),
        b"From: b@x.test\nSubject: from dovecot two\n\nlist mail\n",
    );
    assert_success(&save, "doveadm save");
    let flags = run(
        Command::new("doveadm").args([
            "-c",
            c,
            "flags",
            "add",
            "-u",
            "tester",
            "\\Seen $Work",
            "mailbox",
            "INBOX",
            "all",
        ]),
        b"",
    );
    assert_success(&flags, "doveadm flags add");

    let server = server();
    server.add_user("fauzan@localhost", "pw");
    let maildir = home.join("Maildir");
    let out = server.cli_ok(&[
        "import",
        "maildir",
        maildir.to_str().expect("path"),
        "fauzan@localhost",
    ]);
    assert!(
        out.contains("3 imported, 0 already there, 0 failed (of 3)"),
        "{out}"
    );
    let inbox = server.cli_ok(&["mailbox", "list", "fauzan@localhost"]);
    assert!(inbox.contains("from dovecot one"), "{inbox}");
    assert!(
        inbox.contains("\\Seen") && inbox.contains("$Work"),
        "flags and keyword: {inbox}"
    );
    let lists = server.cli_ok(&["mailbox", "list", "fauzan@localhost", "Lists/dev"]);
    assert!(lists.contains("from dovecot two"), "{lists}");
    assert!(!lists.contains("\\Seen"), "{lists}");
    // Dovecot's UIDVALIDITY and UIDs, so clients' caches stay valid.
    let mut imap = crate::imap_client::Imap::login_as(server.ports.imap, "fauzan@localhost", "pw");
    let status = imap.cmd("STATUS INBOX (UIDVALIDITY UIDNEXT)");
    assert!(
        status.contains(&format!("UIDVALIDITY {validity} UIDNEXT 4")),
        "Dovecot's UIDVALIDITY is {validity}: {status}"
    );
    imap.cmd("SELECT INBOX");
    let uids = imap.cmd("UID FETCH 1:* (UID)");
    assert!(
        uids.contains("* 1 FETCH (UID 1)") && uids.contains("* 2 FETCH (UID 3)"),
        "{uids}"
    );
    imap.cmd("LOGOUT");
}
