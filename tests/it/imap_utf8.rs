//! IMAP mailbox names beyond ASCII: modified UTF-7 for legacy sessions
//! (RFC 3501 §5.1.3), UTF-8 after `ENABLE UTF8=ACCEPT` (RFC 6855), both
//! views of the same store; CREATE-SPECIAL-USE (RFC 6154 §3); the CLI on a
//! UTF-8 name; Python's imaplib as a real client.

use crate::harness::*;
use crate::imap_client::Imap;

const USER: &str = "alice@localhost";
const PASSWORD: &str = "s3cret pw";

fn login(port: u16) -> Imap {
    Imap::login_as(port, USER, PASSWORD)
}

/// A session that has enabled UTF8=ACCEPT.
fn login_utf8(port: u16) -> Imap {
    let mut imap = login(port);
    let r = imap.ok("ENABLE UTF8=ACCEPT");
    assert!(r.contains("* ENABLED UTF8=ACCEPT\r\n"), "{r}");
    imap
}

/// Checks on tagged replies and LIST output, for these tests.
trait Replies {
    fn fails(&mut self, text: &str, status: &str) -> String;
    fn names(&mut self, command: &str) -> Vec<String>;
}

impl Replies for Imap {
    /// The tagged reply's status and code, e.g. `NO [CANNOT]`.
    #[track_caller]
    fn fails(&mut self, text: &str, status: &str) -> String {
        let reply = self.cmd(text);
        assert!(
            tagged(&reply)
                .split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with(status)),
            "{text}: wanted {status}: {reply}"
        );
        reply
    }

    /// Mailbox names of `LIST`/`LSUB` lines, as the server wrote them.
    fn names(&mut self, command: &str) -> Vec<String> {
        self.ok(command)
            .lines()
            .filter(|l| l.starts_with("* LIST ") || l.starts_with("* LSUB "))
            .filter_map(|l| l.rsplit_once(" \"/\" ").map(|(_, n)| n.to_string()))
            .collect()
    }
}

/// The last line: the tagged reply.
fn tagged(reply: &str) -> &str {
    reply.trim_end().lines().last().unwrap_or_default()
}

fn server_with_user() -> Server {
    let server = server();
    server.add_user(USER, PASSWORD);
    server
}

fn quoted(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("\"{n}\"")).collect()
}

#[test]
fn legacy_and_utf8_sessions_see_one_mailbox_tree() {
    let server = server_with_user();
    let mut legacy = login(server.ports.imap);
    let caps = legacy.ok("CAPABILITY");
    assert!(
        caps.contains(" UTF8=ACCEPT") && caps.contains(" CREATE-SPECIAL-USE"),
        "{caps}"
    );
    let mut utf8 = login_utf8(server.ports.imap);

    // RFC 3501's example, created in modified UTF-7, read back as UTF-8.
    legacy.ok("CREATE \"~peter/mail/&U,BTFw-/&ZeVnLIqe-\"");
    assert_eq!(
        legacy.names("LIST \"\" \"~peter/*\""),
        quoted(&[
            "~peter/mail",
            "~peter/mail/&U,BTFw-",
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        ])
    );
    assert_eq!(
        utf8.names("LIST \"\" \"~peter/*\""),
        quoted(&["~peter/mail", "~peter/mail/台北", "~peter/mail/台北/日本語"])
    );
    // And the other way: UTF-8 in, modified UTF-7 out.
    utf8.ok("CREATE \"Ärger/Привет\"");
    utf8.ok("CREATE \"Tom & Jerry\"");
    utf8.ok("CREATE \"📁 Ablage\"");
    let all = legacy.names("LIST \"\" *");
    for want in [
        "\"&AMQ-rger\"",
        "\"&AMQ-rger/&BB8EQAQ4BDIENQRC-\"",
        "\"Tom &- Jerry\"",
        "\"&2D3cwQ- Ablage\"",
    ] {
        assert!(all.iter().any(|n| n == want), "{want}: {all:?}");
    }
    assert!(all.iter().all(|n| n.is_ascii()), "{all:?}");
    let all = utf8.names("LIST \"\" *");
    assert!(all.contains(&"\"Ärger/Привет\"".to_string()), "{all:?}");
    assert!(all.contains(&"\"Tom & Jerry\"".to_string()), "{all:?}");

    // Patterns and references in either spelling.
    assert_eq!(
        legacy.names("LIST \"&AMQ-rger/\" %"),
        quoted(&["&AMQ-rger/&BB8EQAQ4BDIENQRC-"])
    );
    assert_eq!(
        legacy.names("LIST \"\" \"&AMQ-rger/&BB8EQAQ4BDIENQRC-\""),
        quoted(&["&AMQ-rger/&BB8EQAQ4BDIENQRC-"])
    );
    assert_eq!(
        utf8.names("LIST \"Ärger/\" \"*\""),
        quoted(&["Ärger/Привет"])
    );
    assert_eq!(utf8.names("LIST \"\" \"%ger\""), quoted(&["Ärger"]));
    assert_eq!(
        utf8.names("LIST \"\" \"Ä%/П*т\""),
        quoted(&["Ärger/Привет"])
    );
    assert_eq!(utf8.names("LIST \"\" \"*Jerry\""), quoted(&["Tom & Jerry"]));
    // Under UTF8=ACCEPT, `&` is only an ampersand.
    assert!(utf8.names("LIST \"\" \"&AMQ-rger\"").is_empty());

    // STATUS, SELECT, COPY, SUBSCRIBE/LSUB, GETQUOTAROOT in both views.
    let r = legacy.ok("STATUS \"&AMQ-rger/&BB8EQAQ4BDIENQRC-\" (MESSAGES)");
    assert!(
        r.contains("* STATUS \"&AMQ-rger/&BB8EQAQ4BDIENQRC-\" (MESSAGES 0)"),
        "{r}"
    );
    let r = utf8.ok("STATUS \"Ärger/Привет\" (MESSAGES)");
    assert!(r.contains("* STATUS \"Ärger/Привет\" (MESSAGES 0)"), "{r}");
    let r = legacy.ok("LIST \"\" \"Tom*\" RETURN (STATUS (MESSAGES))");
    assert!(r.contains("* STATUS \"Tom &- Jerry\" (MESSAGES 0)"), "{r}");
    let message = "Subject: cat and mouse\r\n\r\nchase chase\r\n";
    legacy.ok(&format!(
        "APPEND \"Tom &- Jerry\" {{{}+}}\r\n{message}",
        message.len()
    ));
    legacy.ok("SELECT \"Tom &- Jerry\"");
    legacy.ok("COPY 1 \"&AMQ-rger/&BB8EQAQ4BDIENQRC-\"");
    let r = utf8.ok("STATUS \"Ärger/Привет\" (MESSAGES)");
    assert!(r.contains("(MESSAGES 1)"), "{r}");
    utf8.ok("SELECT \"Ärger/Привет\"");
    utf8.ok("MOVE 1 \"📁 Ablage\"");
    let r = legacy.ok("STATUS \"&2D3cwQ- Ablage\" (MESSAGES)");
    assert!(
        r.contains("* STATUS \"&2D3cwQ- Ablage\" (MESSAGES 1)"),
        "{r}"
    );
    legacy.ok("SUBSCRIBE \"&AMQ-rger\"");
    assert_eq!(utf8.names("LSUB \"\" \"Ä*\""), quoted(&["Ärger"]));
    assert_eq!(legacy.names("LSUB \"\" \"&AMQ-*\""), quoted(&["&AMQ-rger"]));
    let r = legacy.ok("GETQUOTAROOT \"&AMQ-rger\"");
    assert!(r.contains("* QUOTAROOT \"&AMQ-rger\""), "{r}");
    let r = utf8.ok("GETQUOTAROOT \"Ärger\"");
    assert!(r.contains("* QUOTAROOT \"Ärger\""), "{r}");

    // RENAME from one side, seen from the other, children included.
    legacy.ok("RENAME \"&AMQ-rger\" \"Freude/&AMQ-rger-alt\"");
    assert_eq!(
        utf8.names("LIST \"\" \"Freude/*\""),
        quoted(&["Freude/Ärger-alt", "Freude/Ärger-alt/Привет"])
    );
    utf8.ok("RENAME \"Freude/Ärger-alt/Привет\" \"日本語\"");
    // Half a base64 run is no name; as a pattern it matches nothing.
    assert!(legacy.names("LIST \"\" \"&ZeVn*\"").is_empty());
    assert_eq!(
        legacy.names("LIST \"\" \"&ZeVnLIqe-\""),
        quoted(&["&ZeVnLIqe-"])
    );
    legacy.ok("DELETE \"&ZeVnLIqe-\"");
    assert!(utf8.names("LIST \"\" \"日本語\"").is_empty());

    // A name the UTF-8 session writes with `&-` is literal there.
    utf8.ok("CREATE \"&-\"");
    assert_eq!(legacy.names("LIST \"\" \"&--\""), quoted(&["&--"]));
    legacy.ok("DELETE \"&--\"");
}

#[test]
fn invalid_modified_utf7_is_refused() {
    let server = server_with_user();
    let mut legacy = login(server.ports.imap);
    // Not canonical modified UTF-7: NO [CANNOT], nothing created.
    for name in [
        "Tom & Jerry",
        "&AOQ",
        "&AGE-",
        "&AOR-",
        "&AOQ-&AOQ-",
        "&2D0-",
        "&A-",
    ] {
        let r = legacy.fails(&format!("CREATE \"{name}\""), "NO [CANNOT]");
        assert!(r.contains("modified UTF-7"), "{r}");
    }
    legacy.fails("SELECT \"Tom & Jerry\"", "NO [CANNOT]");
    legacy.fails("RENAME INBOX \"&Jerry\"", "NO [CANNOT]");
    // A LIST pattern is not a name: no match, not an error.
    assert!(legacy.names("LIST \"\" \"&AOQ*\"").is_empty());
    // 8-bit names without UTF8=ACCEPT: quoted or literal, a BAD.
    let r = legacy.fails("CREATE \"Ärger\"", "BAD");
    assert!(r.contains("UTF8=ACCEPT"), "{r}");
    legacy.fails("CREATE {6+}\r\nÄrger", "BAD");
    legacy.fails("STATUS \"Ärger\" (MESSAGES)", "BAD");
    // Valid modified UTF-7 for a name the store refuses (U+0001, U+2028).
    legacy.fails("CREATE \"a&AAE-b\"", "NO [CANNOT]");
    legacy.fails("CREATE \"a&ICg-b\"", "NO [CANNOT]");
    let mut utf8 = login_utf8(server.ports.imap);
    utf8.fails("CREATE \"a\u{2028}b\"", "NO [CANNOT]");
    utf8.fails("CREATE \"a\u{85}b\"", "NO [CANNOT]");
    // Nothing of the above exists.
    let all = utf8.names("LIST \"\" *");
    assert_eq!(
        all,
        quoted(&["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]),
    );
    // The session survives, and the BADs were counted, not fatal.
    legacy.ok("NOOP");
}

#[test]
fn append_utf8_literal_search_and_cli() {
    let server = server_with_user();
    let mut utf8 = login_utf8(server.ports.imap);
    utf8.ok("CREATE \"Ärger\"");
    let message = "Subject: Grüße aus 台北\r\nFrom: a@b.example\r\n\r\nHallo Welt\r\n";
    // RFC 6855 §4: the message as a literal8 inside UTF8 ( ), here
    // non-synchronising...
    let r = utf8.ok(&format!(
        "APPEND \"Ärger\" (\\Seen) UTF8 (~{{{}+}}\r\n{message})",
        message.len()
    ));
    assert!(r.contains("[APPENDUID "), "{r}");
    // ...and synchronising: the server asks for the octets.
    let tag = utf8.tag();
    utf8.send(format!("{tag} APPEND \"Ärger\" UTF8 (~{{{}}}\r\n", message.len()).as_bytes());
    let go = utf8.line();
    assert!(go.starts_with("+ "), "{go}");
    utf8.send(format!("{message})\r\n").as_bytes());
    let r = utf8.until(&format!("{tag} "));
    assert!(tagged(&r).contains(" OK [APPENDUID "), "{r}");

    utf8.ok("SELECT \"Ärger\"");
    let r = utf8.ok("FETCH 1 BODY.PEEK[]");
    assert!(r.contains(message), "{r}");
    // SEARCH without CHARSET: strings are UTF-8.
    let r = utf8.ok("SEARCH SUBJECT \"Grüße\"");
    assert!(r.contains("* SEARCH 1 2\r\n"), "{r}");
    let r = utf8.ok("SEARCH SUBJECT \"台北\" UNSEEN");
    assert!(r.contains("* SEARCH 2\r\n"), "{r}");
    // A UTF-8 label does not conflict and is tolerated; another is BAD.
    let r = utf8.ok("SEARCH CHARSET UTF-8 SUBJECT \"Grüße\"");
    assert!(r.contains("* SEARCH 1 2\r\n"), "{r}");
    utf8.fails("SEARCH CHARSET ISO-8859-1 ALL", "BAD");

    // A legacy session still gets NO [BADCHARSET] and sees the folder
    // in modified UTF-7.
    let mut legacy = login(server.ports.imap);
    legacy.ok("SELECT \"&AMQ-rger\"");
    legacy.fails("SEARCH CHARSET KOI8-R ALL", "NO [BADCHARSET");
    let r = legacy.ok("SEARCH CHARSET UTF-8 SUBJECT {7+}\r\nGrüße");
    assert!(r.contains("* SEARCH 1 2\r\n"), "{r}");

    // The CLI speaks the store's UTF-8 names.
    let listing = server.cli_ok(&["mailbox", "list", USER, "Ärger"]);
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert!(listing.contains("Gr"), "{listing}");
    let cat = server.cli_ok(&["mailbox", "cat", USER, "1", "Ärger"]);
    assert!(cat.contains("Hallo Welt"), "{cat}");
    let out = server.cli(&["mailbox", "list", USER, "&AMQ-rger"]);
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn create_special_use() {
    let server = server_with_user();
    let mut legacy = login(server.ports.imap);
    legacy.ok("CREATE \"Old Mail\" (USE (\\Archive))");
    let r = legacy.ok("LIST \"\" \"Old Mail\"");
    assert!(
        r.contains("* LIST (\\Archive \\HasNoChildren) \"/\" \"Old Mail\""),
        "{r}"
    );
    // Missing superiors are created plain; only the named one gets the use.
    legacy.ok("CREATE \"Entw&APw-rfe/Alt\" (USE (\\Drafts))");
    let r = legacy.ok("LIST (SPECIAL-USE) \"\" \"*\"");
    assert!(
        r.contains("* LIST (\\Drafts \\HasNoChildren) \"/\" \"Entw&APw-rfe/Alt\""),
        "{r}"
    );
    assert!(r.contains("\"Old Mail\""), "{r}");
    assert!(!r.contains("\"Entw&APw-rfe\""), "{r}");
    let mut utf8 = login_utf8(server.ports.imap);
    utf8.ok("CREATE \"Gesendet/Ältere\" (USE (\\Sent))");
    let r = utf8.ok("LIST \"\" \"Gesendet/*\" RETURN (SPECIAL-USE)");
    assert!(
        r.contains("* LIST (\\Sent \\HasNoChildren) \"/\" \"Gesendet/Ältere\""),
        "{r}"
    );
    // An empty USE list is a plain CREATE.
    legacy.ok("CREATE Plain (USE ())");
    assert!(legacy.ok("LIST \"\" Plain").contains("(\\HasNoChildren)"));
    // Uses the server cannot give: NO [USEATTR], nothing created.
    for (name, uses) in [
        ("Everything", "\\All"),
        ("Starred", "\\Flagged"),
        ("Odd", "\\Important"),
        ("Both", "\\Sent \\Trash"),
    ] {
        legacy.fails(&format!("CREATE {name} (USE ({uses}))"), "NO [USEATTR]");
        assert!(legacy.names(&format!("LIST \"\" {name}")).is_empty());
    }
    legacy.fails("CREATE x (COLOR (red))", "BAD");
}

const IMAPLIB_SCRIPT: &str = r#"
import imaplib, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]

old = imaplib.IMAP4('127.0.0.1', port)
old.login(user, password)
assert 'UTF8=ACCEPT' in old.capabilities, old.capabilities
typ, data = old.create('"Entw&APw-rfe/Alt"'); assert typ == 'OK', data
msg = b'Subject: hello\r\nFrom: a@b.example\r\n\r\nbody\r\n'
typ, data = old.append('"Entw&APw-rfe/Alt"', None, None, msg); assert typ == 'OK', data

new = imaplib.IMAP4('127.0.0.1', port)
new.login(user, password)
typ, data = new.enable('UTF8=ACCEPT'); assert typ == 'OK', data
assert new.utf8_enabled
typ, data = new.list('""', '"Entwürfe/*"'); assert typ == 'OK', data
assert data == ['(\\HasNoChildren) "/" "Entwürfe/Alt"'.encode()], data
typ, data = new.select('"Entwürfe/Alt"'); assert typ == 'OK' and data == [b'1'], data
typ, data = new.create('"Ρίζα/子"'); assert typ == 'OK', data
typ, data = new.status('"Entwürfe/Alt"', '(MESSAGES)'); assert typ == 'OK', data
print(data[0].decode())

typ, data = old.list('""', '*'); assert typ == 'OK', data
print('\n'.join(d.decode() for d in data))
old.logout()
new.logout()
"#;

#[test]
fn python_imaplib_legacy_and_utf8() {
    let server = server_with_user();
    let port = server.ports.imap.to_string();
    let out = python(IMAPLIB_SCRIPT, &[&port, USER, PASSWORD]);
    assert_success(&out, "imaplib");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"Entwürfe/Alt\" (MESSAGES 1)"), "{stdout}");
    assert!(
        stdout.contains("(\\HasChildren) \"/\" \"&A6EDrwO2A7E-\"")
            && stdout.contains("\"&A6EDrwO2A7E-/&W1A-\""),
        "{stdout}"
    );
}

/// curl lists folders by name; a UTF-8 folder shows in modified UTF-7
/// and can be fetched from by that name.
#[test]
fn curl_lists_and_fetches_from_a_utf8_folder() {
    let server = server_with_user();
    let mut utf8 = login_utf8(server.ports.imap);
    utf8.ok("CREATE \"Grüße\"");
    let message = "Subject: für curl\r\n\r\nvon curl geholt\r\n";
    utf8.ok(&format!(
        "APPEND \"Grüße\" UTF8 (~{{{}+}}\r\n{message})",
        message.len()
    ));
    let creds = format!("{USER}:{PASSWORD}");
    let curl = |url: String| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "30", "-u", &creds])
            .arg(url)
            .output()
            .expect("curl")
    };
    let list = curl(format!("imap://127.0.0.1:{}/", server.ports.imap));
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && listing.contains("\"Gr&APwA3w-e\""),
        "{}",
        text(&list)
    );
    let fetch = curl(format!(
        "imap://127.0.0.1:{}/Gr&APwA3w-e;UID=1",
        server.ports.imap
    ));
    assert!(
        fetch.status.success() && String::from_utf8_lossy(&fetch.stdout).contains("von curl"),
        "{}",
        text(&fetch)
    );
}
