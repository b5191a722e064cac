//! IMAP against the real server: a raw-socket replay of Thunderbird's
//! account set-up, two sessions on one mailbox, new mail pushed to IDLE,
//! bounds on bad input, and real clients (Python's imaplib, curl).

use crate::harness::*;
use crate::imap_client::Imap;
use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "alice@localhost";
const PASSWORD: &str = "s3cret pw";

/// Logs in as the test user.
fn login(port: u16) -> Imap {
    Imap::login_as(port, USER, PASSWORD)
}

fn server_with_user() -> Server {
    let server = server();
    server.add_user(USER, PASSWORD);
    server
}

/// Delivers by SMTP and waits until the message is stored, so that UIDs
/// follow the order of the calls (concurrent deliveries may finish in any
/// order).
fn deliver(server: &Server, subject: &str, body: &str) {
    let before = server.uids(USER).len();
    server.submit(
        "bob@example.com",
        &[USER],
        &format!(
            "From: Bob <bob@example.com>\r\nTo: Alice <{USER}>\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n{body}\r\n.\r\n"
        ),
    );
    assert_eq!(server.wait_for_mail(USER, before + 1).len(), before + 1);
}

#[test]
fn thunderbird_setup_sequence_and_idle_push() {
    let server = server_with_user();
    deliver(&server, "hello imap", "first message");
    let uids = server.wait_for_mail(USER, 1);
    assert_eq!(uids.len(), 1);

    let (mut c, greeting) = Imap::connect(server.ports.imap);
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 ") && greeting.contains("Merpati"),
        "{greeting}"
    );
    assert!(greeting.contains("STARTTLS") && greeting.contains("AUTH=PLAIN"));
    let caps = c.ok("CAPABILITY");
    for cap in [
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "SPECIAL-USE",
        "LITERAL+",
        "ID",
        "NAMESPACE",
    ] {
        assert!(caps.contains(cap), "{cap}: {caps}");
    }
    let id = c.ok("ID (\"name\" \"Thunderbird\" \"version\" \"128.5.0\")");
    assert!(id.contains("* ID (\"name\" \"Merpati\""), "{id}");
    let login = c.ok(&format!("login \"{USER}\" \"{PASSWORD}\""));
    assert!(login.contains("[CAPABILITY IMAP4rev1"), "{login}");
    let ns = c.ok("NAMESPACE");
    assert!(ns.contains("* NAMESPACE ((\"\" \"/\")) NIL NIL"), "{ns}");
    let list = c.ok("LIST \"\" \"*\"");
    assert!(
        list.contains("* LIST (\\HasNoChildren) \"/\" \"INBOX\""),
        "{list}"
    );
    for (attr, name) in [
        ("\\Drafts", "Drafts"),
        ("\\Sent", "Sent"),
        ("\\Trash", "Trash"),
        ("\\Junk", "Junk"),
        ("\\Archive", "Archive"),
    ] {
        let want = format!("* LIST ({attr} \\HasNoChildren) \"/\" \"{name}\"");
        assert!(list.contains(&want), "{want}: {list}");
    }
    let select = c.ok("SELECT INBOX");
    for want in [
        "* 1 EXISTS",
        // The first session to see the new message gets it as \Recent.
        "* 1 RECENT",
        "* OK [UIDVALIDITY ",
        "* OK [UIDNEXT ",
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "[READ-WRITE]",
    ] {
        assert!(select.contains(want), "{want}: {select}");
    }
    let uid = uids[0];
    let flags = c.ok("UID FETCH 1:* (FLAGS)");
    assert!(
        flags.contains(&format!("* 1 FETCH (UID {uid} FLAGS (\\Recent))")),
        "{flags}"
    );
    let headers = c.ok(&format!(
        "UID FETCH {uid} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Subject Date)])"
    ));
    assert!(headers.contains("Subject: hello imap\r\n"), "{headers}");
    assert!(
        headers.contains("From: Bob <bob@example.com>\r\n"),
        "{headers}"
    );
    assert!(!headers.contains("Received:"), "{headers}");
    let size: usize = server.message(USER, uid).len();
    assert!(
        headers.contains(&format!("RFC822.SIZE {size}")),
        "size {size}: {headers}"
    );
    // PEEK left \Seen alone; BODY[] sets it.
    let body = c.ok(&format!("UID FETCH {uid} BODY[TEXT]"));
    assert!(body.contains("first message"), "{body}");
    assert!(body.contains("FLAGS (\\Seen \\Recent)"), "{body}");

    c.send(b"t99 IDLE\r\n");
    assert!(c.line().starts_with("+ "));
    let started = Instant::now();
    deliver(&server, "second", "pushed");
    let pushed = c.until("* 2 EXISTS");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{pushed} after {:?}",
        started.elapsed()
    );
    c.send(b"DONE\r\n");
    let done = c.until("t99 ");
    assert!(done.contains("t99 OK"), "{done}");
    let logout = c.cmd("LOGOUT");
    assert!(
        logout.contains("* BYE") && logout.contains("OK"),
        "{logout}"
    );
}

#[test]
fn two_sessions_see_each_other() {
    let server = server_with_user();
    deliver(&server, "one", "1");
    deliver(&server, "two", "2");
    assert_eq!(server.wait_for_mail(USER, 2).len(), 2);
    let mut a = login(server.ports.imap);
    let mut b = login(server.ports.imap);
    let first = a.ok("SELECT INBOX");
    assert!(first.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{first}");
    // \Recent belongs to the first session only (RFC 3501 §2.3.2).
    let second = b.ok("SELECT INBOX");
    assert!(second.contains("* 2 EXISTS\r\n* 0 RECENT\r\n"), "{second}");
    assert!(b.ok("SEARCH RECENT").contains("* SEARCH\r\n"));
    assert!(a.ok("SEARCH NEW").contains("* SEARCH 1 2\r\n"));

    let stored = a.ok("STORE 1 +FLAGS (\\Flagged)");
    assert!(
        stored.contains("* 1 FETCH (FLAGS (\\Flagged \\Recent))"),
        "{stored}"
    );
    let noop = b.ok("NOOP");
    assert!(
        noop.contains("* 1 FETCH (UID ") && noop.contains("FLAGS (\\Flagged)"),
        "{noop}"
    );

    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)");
    let expunged = a.ok("EXPUNGE");
    assert!(expunged.contains("* 2 EXPUNGE"), "{expunged}");
    // No EXPUNGE while answering FETCH (RFC 3501 §7.4.1)...
    let fetch = b.ok("FETCH 1:* (FLAGS)");
    assert!(!fetch.contains("EXPUNGE"), "{fetch}");
    // ...but at the next NOOP.
    let noop = b.ok("NOOP");
    assert!(noop.contains("* 2 EXPUNGE"), "{noop}");

    // An APPEND by one session reaches the other's IDLE.
    b.send(b"i1 IDLE\r\n");
    assert!(b.line().starts_with("+ "));
    let appended = a.ok("APPEND INBOX (\\Seen) {24}\r\nSubject: x\r\n\r\nappended\r\n");
    assert!(appended.contains("[APPENDUID "), "{appended}");
    let pushed = b.until("* 2 EXISTS");
    assert!(pushed.contains("* 2 EXISTS"));
    b.send(b"DONE\r\n");
    assert!(b.until("i1 ").contains("i1 OK"));

    // UID MOVE with COPYUID, seen from both sides.
    let moved = a.ok("UID MOVE 1:* Archive");
    assert!(moved.contains("* OK [COPYUID "), "{moved}");
    assert!(moved.contains("* 1 EXPUNGE"), "{moved}");
    let status = a.ok("STATUS Archive (MESSAGES UIDNEXT UNSEEN SIZE)");
    assert!(
        status.contains("* STATUS \"Archive\" (MESSAGES 2 "),
        "{status}"
    );
    let noop = b.ok("NOOP");
    assert_eq!(noop.matches("EXPUNGE").count(), 2, "{noop}");
}

#[test]
fn search_fetch_structure_and_mailboxes() {
    let server = server_with_user();
    let mut c = login(server.ports.imap);
    let message = "From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\n\
Subject: multipart test\r\n\
Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n\
Content-Type: multipart/mixed; boundary=b1\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=C3=BC=C3=9Fe aus Bandung\r\n\
--b1\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
inner body\r\n\
--b1--\r\n";
    let appended = c.ok(&format!(
        "APPEND INBOX (\\Draft) \"02-Jan-2024 10:00:00 +0000\" {{{}+}}\r\n{message}",
        message.len()
    ));
    assert!(appended.contains("[APPENDUID "), "{appended}");
    c.ok("SELECT INBOX");
    let search = c.ok("SEARCH CHARSET UTF-8 BODY \"grüße\"");
    assert!(search.contains("* SEARCH 1\r\n"), "{search}");
    assert!(c.ok("SEARCH TEXT Bandung").contains("* SEARCH 1\r\n"));
    assert!(c.ok("SEARCH FROM \"jürgen\"").contains("* SEARCH 1\r\n"));
    assert!(
        c.ok("SEARCH DRAFT ON 2-Jan-2024 SENTSINCE 1-Jan-2024")
            .contains("* SEARCH 1\r\n")
    );
    assert!(
        c.ok("SEARCH OR SEEN SUBJECT nomatch")
            .contains("* SEARCH\r\n")
    );
    assert!(
        c.ok("UID SEARCH NOT DELETED LARGER 10")
            .contains("* SEARCH ")
    );
    let bad = c.cmd("SEARCH CHARSET KOI8-R ALL");
    assert!(bad.contains("NO [BADCHARSET"), "{bad}");

    let structure = c.ok("FETCH 1 (BODYSTRUCTURE ENVELOPE INTERNALDATE)");
    assert!(structure.contains("\"quoted-printable\""), "{structure}");
    assert!(
        structure.contains("(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" "),
        "{structure}"
    );
    assert!(
        structure.contains("\"mixed\" (\"boundary\" \"b1\")"),
        "{structure}"
    );
    assert!(
        structure.contains("INTERNALDATE \"02-Jan-2024 10:00:00 +0000\""),
        "{structure}"
    );
    assert!(structure.contains("\"multipart test\""), "{structure}");
    let part =
        c.ok("FETCH 1 (BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[1.MIME] BODY.PEEK[1]<0.3>)");
    assert!(
        part.contains("BODY[2.HEADER] {18}\r\nSubject: inner\r\n\r\n"),
        "{part}"
    );
    assert!(part.contains("BODY[2.TEXT] {10}\r\ninner body"), "{part}");
    assert!(part.contains("BODY[1]<0> {3}\r\nGr="), "{part}");

    let copy = c.cmd("COPY 1 Nowhere");
    assert!(copy.contains("NO [TRYCREATE]"), "{copy}");

    // Mailbox management with hierarchy.
    c.ok("CREATE Projects/2024/Q1");
    let list = c.ok("LIST \"\" \"Projects/%\"");
    assert!(
        list.contains("* LIST (\\HasChildren) \"/\" \"Projects/2024\""),
        "{list}"
    );
    c.ok("RENAME Projects/2024 Projects/Old");
    let list = c.ok("LIST Projects/ *");
    assert!(list.contains("\"Projects/Old/Q1\""), "{list}");
    assert!(!list.contains("Projects/2024"), "{list}");
    c.ok("SUBSCRIBE Projects/Old");
    assert!(
        c.ok("LSUB \"\" Projects/*")
            .contains("* LSUB () \"/\" \"Projects/Old\"")
    );
    c.ok("UNSUBSCRIBE Projects/Old");
    c.ok("DELETE Projects/Old/Q1");
    let gone = c.cmd("SELECT Projects/Old/Q1");
    assert!(gone.contains("NO [NONEXISTENT]"), "{gone}");
    // SELECT failed: no mailbox is selected any more.
    assert!(c.cmd("FETCH 1 FLAGS").contains("BAD"));
}

#[test]
fn bounds_and_bad_input() {
    let server = Builder::default()
        .imap("max_bad_commands = 3\nline_length_limit = 1024")
        .start();
    server.add_user(USER, PASSWORD);
    let (mut c, _) = Imap::connect(server.ports.imap);
    // A literal above the pre-auth limit is refused before it is sent.
    let big = c.cmd("LOGIN {100000}");
    assert!(big.contains("t1 BAD"), "{big}");
    let long = format!("t9 NOOP {}\r\n", "x".repeat(5000));
    c.send(long.as_bytes());
    assert!(c.until("t9 ").contains("t9 BAD"));
    c.send(b"garbage\r\n");
    let bye = c.until("* BYE");
    assert!(bye.contains("* BYE"), "{bye}");
    let mut rest = String::new();
    let _ = c.reader.read_to_string(&mut rest);

    // Without loopback plaintext auth, LOGIN needs TLS.
    let server = Builder::default()
        .imap("plaintext_auth_on_loopback = false")
        .start();
    server.add_user(USER, PASSWORD);
    let (mut c, greeting) = Imap::connect(server.ports.imap);
    assert!(greeting.contains("LOGINDISABLED"), "{greeting}");
    let refused = c.cmd(&format!("LOGIN {USER} \"{PASSWORD}\""));
    assert!(refused.contains("NO [PRIVACYREQUIRED]"), "{refused}");
    let wrong = Imap::connect(server.ports.imap)
        .0
        .cmd("AUTHENTICATE PLAIN AGFsaWNlAHg=");
    assert!(wrong.contains("NO"), "{wrong}");
}

#[test]
fn authenticate_plain_and_wrong_password() {
    let server = server_with_user();
    let (mut c, _) = Imap::connect(server.ports.imap);
    let wrong = c.cmd("LOGIN alice nope");
    assert!(wrong.contains("NO [AUTHENTICATIONFAILED]"), "{wrong}");
    let token = merpati::auth::base64_encode(format!("\0{USER}\0{PASSWORD}").as_bytes());
    c.send(b"a1 AUTHENTICATE PLAIN\r\n");
    assert!(c.line().starts_with("+ "));
    c.send(format!("{token}\r\n").as_bytes());
    assert!(c.until("a1 ").contains("a1 OK"));
    let (mut d, _) = Imap::connect(server.ports.imap);
    assert!(
        d.cmd(&format!("AUTHENTICATE PLAIN {token}"))
            .contains("OK [CAPABILITY")
    );
}

fn python(script: &str, args: &[String]) -> std::process::Output {
    let mut child = Command::new("python3")
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for this test");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script");
    child.wait_with_output().expect("python3")
}

const IMAPLIB_SCRIPT: &str = r#"
import imaplib, ssl, sys
user, password, plain, tls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def exercise(M, tag):
    typ, _ = M.login(user, password); assert typ == 'OK'
    typ, data = M.list(); assert typ == 'OK' and any(b'\\Sent' in d for d in data), data
    msg = ('Subject: appended %s\r\nFrom: a@b.example\r\n\r\nbody text %s\r\n' % (tag, tag)).encode()
    typ, data = M.append('INBOX', '(\\Seen)', None, msg); assert typ == 'OK', data
    typ, data = M.select('INBOX'); assert typ == 'OK', data
    n = int(data[0])
    typ, data = M.search(None, 'BODY', '"text %s"' % tag); assert data[0].split()[-1] == str(n).encode(), data
    typ, data = M.fetch(str(n), '(FLAGS BODY.PEEK[])'); assert typ == 'OK'
    assert data[0][1] == msg, data
    typ, data = M.store(str(n), '+FLAGS', '\\Flagged'); assert typ == 'OK' and b'\\Flagged' in data[0], data
    typ, data = M.copy(str(n), 'Archive'); assert typ == 'OK', data
    typ, data = M.store(str(n), '+FLAGS', '\\Deleted'); assert typ == 'OK'
    typ, data = M.expunge(); assert typ == 'OK' and data[0] == str(n).encode(), data
    typ, data = M.status('Archive', '(MESSAGES)'); assert typ == 'OK', data
    M.close()
    M.logout()
    return data

exercise(imaplib.IMAP4('127.0.0.1', plain), 'plain')
M = imaplib.IMAP4('127.0.0.1', plain)
typ, _ = M.starttls(ssl_context=ctx); assert typ == 'OK'
exercise(M, 'starttls')
print(exercise(imaplib.IMAP4_SSL('127.0.0.1', tls, ssl_context=ctx), 'tls'))
"#;

#[test]
fn python_imaplib_plain_starttls_and_tls() {
    let server = server_with_user();
    let out = python(
        IMAPLIB_SCRIPT,
        &[
            USER.to_string(),
            PASSWORD.to_string(),
            server.ports.imap.to_string(),
            server.ports.imaps.to_string(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "imaplib failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert!(stdout.contains("\"Archive\" (MESSAGES 3)"), "{stdout}");
}

#[test]
fn curl_imap_and_imaps() {
    let server = server_with_user();
    deliver(&server, "for curl", "fetched by curl");
    let uids = server.wait_for_mail(USER, 1);
    let creds = format!("{USER}:{PASSWORD}");
    let fetch = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-u", &creds])
        .arg(format!(
            "imap://127.0.0.1:{}/INBOX;UID={}",
            server.ports.imap, uids[0]
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&fetch.stdout);
    assert!(
        fetch.status.success() && text.contains("fetched by curl"),
        "{text}{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    let list = Command::new("curl")
        .args(["-sSk", "--max-time", "30", "-u", &creds])
        .arg(format!("imaps://127.0.0.1:{}/", server.ports.imaps))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && text.contains("\\Sent") && text.contains("INBOX"),
        "{text}{}",
        String::from_utf8_lossy(&list.stderr)
    );
}

// ---- Extensions: AUTH=LOGIN, ESEARCH, SEARCHRES, WITHIN, LIST-EXTENDED,
// LIST-STATUS, MULTIAPPEND, QUOTA, BINARY ----------------------------------

/// The CAPABILITY line after login.
fn capabilities(c: &mut Imap) -> String {
    c.ok("CAPABILITY")
        .lines()
        .find(|l| l.starts_with("* CAPABILITY"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn authenticate_login_mechanism() {
    let server = server_with_user();
    let (mut c, greeting) = Imap::connect(server.ports.imap);
    assert!(greeting.contains("AUTH=LOGIN"), "{greeting}");
    c.send(b"a1 AUTHENTICATE LOGIN\r\n");
    assert_eq!(c.line(), "+ VXNlcm5hbWU6\r\n");
    c.send(format!("{}\r\n", merpati::auth::base64_encode(USER.as_bytes())).as_bytes());
    assert_eq!(c.line(), "+ UGFzc3dvcmQ6\r\n");
    c.send(format!("{}\r\n", merpati::auth::base64_encode(PASSWORD.as_bytes())).as_bytes());
    let done = c.until("a1 ");
    assert!(done.contains("a1 OK [CAPABILITY"), "{done}");
    let caps = capabilities(&mut c);
    for cap in [
        "ESEARCH",
        "SEARCHRES",
        "WITHIN",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "MULTIAPPEND",
        "QUOTA",
        "BINARY",
    ] {
        assert!(caps.split(' ').any(|c| c.trim() == cap), "{cap}: {caps}");
    }
    // SASL-IR carries the user name; a wrong password fails; `*` cancels.
    let (mut d, _) = Imap::connect(server.ports.imap);
    d.send(
        format!(
            "b1 AUTHENTICATE LOGIN {}\r\n",
            merpati::auth::base64_encode(USER.as_bytes())
        )
        .as_bytes(),
    );
    assert_eq!(d.line(), "+ UGFzc3dvcmQ6\r\n");
    d.send(format!("{}\r\n", merpati::auth::base64_encode(b"wrong")).as_bytes());
    assert!(d.until("b1 ").contains("b1 NO [AUTHENTICATIONFAILED]"));
    d.send(b"b2 AUTHENTICATE LOGIN\r\n");
    assert!(d.line().starts_with("+ "));
    d.send(b"*\r\n");
    assert!(d.until("b2 ").contains("b2 BAD"));
}

#[test]
fn esearch_searchres_and_within() {
    let server = server_with_user();
    for i in 1..=3 {
        deliver(&server, &format!("note {i}"), "body");
    }
    assert_eq!(server.wait_for_mail(USER, 3).len(), 3);
    let mut c = login(server.ports.imap);
    // An old message (internal date in 2001) for OLDER.
    let old = "Subject: old one\r\n\r\nold\r\n";
    let appended = c.ok(&format!(
        "APPEND INBOX \"01-Jan-2001 00:00:00 +0000\" {{{}+}}\r\n{old}",
        old.len()
    ));
    assert!(appended.contains("[APPENDUID "), "{appended}");
    c.ok("SELECT INBOX");

    let r = c.ok("SEARCH RETURN (MIN MAX COUNT ALL) ALL");
    assert!(
        r.contains("* ESEARCH (TAG \"t4\") MIN 1 MAX 4 ALL 1:4 COUNT 4\r\n"),
        "{r}"
    );
    assert!(!r.contains("* SEARCH"), "{r}");
    let r = c.ok("UID SEARCH RETURN () SUBJECT note");
    assert!(r.contains("* ESEARCH (TAG \"t5\") UID ALL 1:3\r\n"), "{r}");
    let r = c.ok("SEARCH RETURN (COUNT MIN) SUBJECT nothing-matches");
    assert!(r.contains("* ESEARCH (TAG \"t6\") COUNT 0\r\n"), "{r}");
    // WITHIN.
    let r = c.ok("SEARCH OLDER 86400");
    assert!(r.contains("* SEARCH 4\r\n"), "{r}");
    let r = c.ok("SEARCH YOUNGER 86400");
    assert!(r.contains("* SEARCH 1 2 3\r\n"), "{r}");
    // SEARCHRES: SAVE alone returns nothing; `$` in FETCH, STORE, SEARCH.
    let r = c.ok("UID SEARCH RETURN (SAVE) OR SUBJECT \"note 2\" SUBJECT \"note 3\"");
    assert!(!r.contains("ESEARCH") && !r.contains("* SEARCH"), "{r}");
    let r = c.ok("FETCH $ (UID)");
    assert!(
        r.contains("* 2 FETCH (UID 2)") && r.contains("* 3 FETCH (UID 3)"),
        "{r}"
    );
    assert!(!r.contains("* 1 FETCH"), "{r}");
    c.ok("UID STORE $ +FLAGS.SILENT (\\Flagged)");
    let r = c.ok("SEARCH FLAGGED");
    assert!(r.contains("* SEARCH 2 3\r\n"), "{r}");
    let r = c.ok("SEARCH RETURN (COUNT) NOT $");
    assert!(r.contains("COUNT 2\r\n"), "{r}");
    // SAVE with MIN keeps only the smallest match.
    c.ok("SEARCH RETURN (SAVE MIN) SUBJECT note");
    let r = c.ok("UID SEARCH $");
    assert!(r.contains("* SEARCH 1\r\n"), "{r}");
    // A failed SAVE search empties `$`.
    let r = c.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL");
    assert!(r.contains(" NO [BADCHARSET"), "{r}");
}

#[test]
fn list_extended_and_list_status() {
    let server = server_with_user();
    deliver(&server, "hello", "body");
    server.wait_for_mail(USER, 1);
    let mut c = login(server.ports.imap);
    c.ok("CREATE Projects/2024");
    c.ok("CREATE Projects/2025");
    c.ok("UNSUBSCRIBE Projects");
    c.ok("UNSUBSCRIBE Projects/2025");
    c.ok("SUBSCRIBE Projects/2024");
    // SUBSCRIBED selection: \Subscribed attribute, only subscribed ones.
    let r = c.ok("LIST (SUBSCRIBED) \"\" \"*\"");
    assert!(
        r.contains("* LIST (\\Subscribed \\HasNoChildren) \"/\" \"Projects/2024\""),
        "{r}"
    );
    assert!(r.contains("\\Sent \\Subscribed"), "{r}");
    assert!(
        !r.contains("Projects/2025") && !r.contains("\"Projects\"\r\n"),
        "{r}"
    );
    // RECURSIVEMATCH: the unsubscribed parent with CHILDINFO.
    let r = c.ok("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"");
    assert!(
        r.contains("* LIST (\\HasChildren) \"/\" \"Projects\" (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
        "{r}"
    );
    // SPECIAL-USE selection, multiple patterns, RETURN options.
    let r = c.ok("LIST (SPECIAL-USE) \"\" \"*\"");
    assert!(r.contains("\\Drafts") && r.contains("\\Trash"), "{r}");
    assert!(!r.contains("INBOX") && !r.contains("Projects"), "{r}");
    let r = c.ok("LIST \"\" (\"INBOX\" \"Projects/%\") RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)");
    assert!(
        r.contains("\"INBOX\"") && r.contains("\"Projects/2025\""),
        "{r}"
    );
    assert!(
        r.contains("(\\Subscribed \\HasNoChildren) \"/\" \"Projects/2024\""),
        "{r}"
    );
    assert!(!r.contains("Sent"), "{r}");
    // LIST-STATUS: one STATUS per selectable mailbox, after its LIST.
    let r = c.ok("LIST \"\" \"*\" RETURN (STATUS (MESSAGES UIDNEXT SIZE))");
    let inbox = r
        .find("* LIST (\\HasNoChildren) \"/\" \"INBOX\"")
        .expect(&r);
    let status = r
        .find("* STATUS \"INBOX\" (MESSAGES 1 UIDNEXT 2 SIZE ")
        .expect(&r);
    assert!(status > inbox, "{r}");
    assert!(
        r.contains("* STATUS \"Projects/2024\" (MESSAGES 0 UIDNEXT 1 SIZE 0)"),
        "{r}"
    );
    // An implied superior (\Noselect) gets no STATUS.
    c.ok("DELETE Projects");
    let r = c.ok("LIST \"\" \"P*\" RETURN (STATUS (MESSAGES))");
    assert!(
        r.contains("* LIST (\\Noselect \\HasChildren) \"/\" \"Projects\""),
        "{r}"
    );
    assert!(!r.contains("* STATUS \"Projects\" "), "{r}");
    // Old syntax still works, and bad options are BAD.
    assert!(c.ok("LIST \"\" %").contains("\"Projects\""));
    assert!(c.cmd("LIST (RECURSIVEMATCH) \"\" *").contains(" BAD "));
}

#[test]
fn multiappend_and_quota() {
    let server = server_with_user();
    server.cli_ok(&["user", "quota", USER, "20KiB"]);
    let mut c = login(server.ports.imap);
    let caps = capabilities(&mut c);
    assert!(caps.contains(" QUOTA ") && caps.contains("MULTIAPPEND"));
    let r = c.ok("GETQUOTAROOT INBOX");
    assert!(r.contains("* QUOTAROOT \"INBOX\" \"\"\r\n"), "{r}");
    assert!(r.contains("* QUOTA \"\" (STORAGE 0 20)\r\n"), "{r}");
    let m1 = "Subject: one\r\n\r\nfirst\r\n";
    let m2 = "Subject: two\r\n\r\nsecond\r\n";
    // MULTIAPPEND with a synchronising literal in the middle.
    c.send(
        format!(
            "m1 APPEND Drafts (\\Seen) {{{}+}}\r\n{m1} {{{}}}\r\n",
            m1.len(),
            m2.len()
        )
        .as_bytes(),
    );
    assert!(c.line().starts_with("+ "));
    c.send(format!("{m2}\r\n").as_bytes());
    let r = c.until("m1 ");
    assert!(r.contains("m1 OK [APPENDUID "), "{r}");
    assert!(r.contains(" 1:2] "), "{r}");
    let r = c.ok("STATUS Drafts (MESSAGES UNSEEN)");
    assert!(r.contains("(MESSAGES 2 UNSEEN 1)"), "{r}");
    let r = c.ok("GETQUOTA \"\"");
    assert!(r.contains("* QUOTA \"\" (STORAGE 1 20)"), "{r}");
    // Over quota: all or nothing.
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(12 * 1024));
    let r = c.cmd(&format!(
        "APPEND Drafts {{{}+}}\r\n{m1} {{{}+}}\r\n{big} {{{}+}}\r\n{big}",
        m1.len(),
        big.len(),
        big.len()
    ));
    assert!(r.contains(" NO [OVERQUOTA]"), "{r}");
    let r = c.ok("STATUS Drafts (MESSAGES)");
    assert!(r.contains("(MESSAGES 2)"), "{r}");
    let r = c.cmd(&format!(
        "APPEND INBOX {{{}+}}\r\n{big}{big}",
        2 * big.len()
    ));
    assert!(r.contains(" NO [OVERQUOTA]"), "{r}");
    // A missing mailbox anywhere in the batch: TRYCREATE, nothing stored.
    let r = c.cmd(&format!(
        "APPEND Nowhere {{{}+}}\r\n{m1} {{{}+}}\r\n{m2}",
        m1.len(),
        m2.len()
    ));
    assert!(r.contains(" NO [TRYCREATE]"), "{r}");
    let r = c.cmd("SETQUOTA \"\" (STORAGE 100)");
    assert!(r.contains(" NO "), "{r}");
    let r = c.cmd("GETQUOTA \"other\"");
    assert!(r.contains(" NO [NONEXISTENT]"), "{r}");
}

#[test]
fn binary_fetch_and_literal8_append() {
    let server = server_with_user();
    let mut c = login(server.ports.imap);
    let message: &[u8] = b"Subject: bin\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
caf=C3=A9 au =\r\nlait\r\n--XX\r\n\
Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
AAECAwD/\r\n--XX\r\n\
Content-Type: application/x-odd\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--XX--\r\n";
    let mut cmd = format!("t1 APPEND INBOX ~{{{}+}}\r\n", message.len()).into_bytes();
    cmd.extend_from_slice(message);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd);
    let r = c.until("t1 ");
    assert!(r.contains("t1 OK [APPENDUID"), "{r}");
    c.next_tag = 2;
    c.ok("SELECT INBOX");
    let r = c.ok("FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.PEEK[1])");
    assert!(
        r.contains("BINARY.SIZE[1] 13 BINARY.SIZE[2] 6 BINARY[1] {13}\r\ncafé au lait)"),
        "{r}"
    );
    // Literal8 for data with NUL; partial; not PEEK sets \Seen.
    c.send(b"f1 FETCH 1 (BINARY[2] BINARY[2]<4.10>)\r\n");
    let mut raw = Vec::new();
    loop {
        let mut line = Vec::new();
        c.reader.read_until(b'\n', &mut line).expect("read");
        assert!(!line.is_empty(), "closed");
        raw.extend_from_slice(&line);
        if line.starts_with(b"f1 ") {
            break;
        }
    }
    let want: &[u8] = b"BINARY[2] ~{6}\r\n\x00\x01\x02\x03\x00\xff BINARY[2]<4> ~{2}\r\n\x00\xff";
    assert!(
        raw.windows(want.len()).any(|w| w == want),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // Appended by this session before it selected: recent to it.
    assert!(String::from_utf8_lossy(&raw).contains("FLAGS (\\Seen \\Recent)"));
    let r = c.cmd("FETCH 1 (BINARY.PEEK[3])");
    assert!(r.contains(" NO [UNKNOWN-CTE]"), "{r}");
    let r = c.ok("FETCH 1 (BINARY.PEEK[] RFC822.SIZE)");
    assert!(r.contains(&format!("RFC822.SIZE {}", message.len())), "{r}");
}

// ---- Real clients: mutt in batch mode, an mbsync round trip -----------------

/// Whether a program is installed (these tests need Debian's `mutt`,
/// `isync` and util-linux `script`).
fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command with a timeout, returning its output (killed if late).
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn mutt_copies_inbox_over_imap_to_mbox() {
    assert!(
        have("mutt") && have("script"),
        "mutt and script are required"
    );
    let server = server_with_user();
    deliver(&server, "for mutt one", "first body for mutt");
    deliver(
        &server,
        "for mutt two",
        "second body for mutt\r\nFrom the start, a line mbox must quote",
    );
    server.wait_for_mail(USER, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("saved.mbox");
    let muttrc = dir.path().join("muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set imap_user=\"{USER}\"\nset imap_pass=\"{PASSWORD}\"\nset ssl_starttls=no\n\
set ssl_force_tls=no\nset imap_passive=no\nset confirmcreate=no\nset confirmappend=no\n\
set mbox_type=mbox\nset quit=yes\nset move=no\nset header_cache=\nset message_cachedir=\n\
set folder=\"imap://127.0.0.1:{}/\"\nset spoolfile=+INBOX\nset record=\nset mail_check=1\n\
set imap_authenticators=\"login\"\n\
push \"<tag-pattern>~A<enter><tag-prefix><copy-message>{}<enter><exit>\"\n",
            server.ports.imap,
            mbox.display()
        ),
    )
    .expect("muttrc");
    let home = dir.path().display().to_string();
    let out = run_with_timeout(
        Command::new("script")
            .args(["-qec"])
            .arg(format!(
                "mutt -n -F {} -f imap://127.0.0.1:{}/INBOX",
                muttrc.display(),
                server.ports.imap
            ))
            .arg("/dev/null")
            .env("TERM", "xterm")
            .env("HOME", &home)
            .env("MAIL", ""),
        Duration::from_secs(60),
    );
    let saved = std::fs::read_to_string(&mbox).unwrap_or_default();
    assert!(
        saved.contains("Subject: for mutt one") && saved.contains("second body for mutt"),
        "mutt did not save the messages:\n{}\n{}",
        text(&out),
        server.log()
    );
    // Two separator lines (mutt leaves a body line "From the..." as it
    // is: readers must tell it from a separator by its date).
    assert_eq!(
        saved.matches("\nFrom bob@example.com ").count()
            + usize::from(saved.starts_with("From bob@example.com ")),
        2,
        "{saved}"
    );

    // What mutt wrote comes back in with `merpati import mbox`, once.
    server.add_user("carol@localhost", "pw");
    let file = mbox.to_str().expect("path");
    let first = server.cli_ok(&["import", "mbox", file, "carol@localhost", "Archive"]);
    assert!(
        first.contains("2 imported, 0 already there, 0 failed (of 2)"),
        "{first}"
    );
    let again = server.cli_ok(&["import", "mbox", file, "carol@localhost", "Archive"]);
    assert!(again.contains("0 imported, 2 already there"), "{again}");
    let uids = server.cli_ok(&["mailbox", "list", "carol@localhost", "Archive"]);
    assert_eq!(uids.lines().count(), 2, "{uids}");
    let second: u32 = uids
        .lines()
        .nth(1)
        .and_then(|l| l.split('\t').next())
        .and_then(|u| u.parse().ok())
        .expect("uid");
    let body = server.cli_ok(&[
        "mailbox",
        "cat",
        "carol@localhost",
        &second.to_string(),
        "Archive",
    ]);
    assert!(body.contains("Subject: for mutt two"), "{body}");
    assert!(
        body.contains("\r\nFrom the start, a line mbox must quote\r\n"),
        "{body}"
    );
}

/// Runs `mbsync -c rc -a`, asserting success.
fn mbsync(rc: &std::path::Path, server: &Server) -> std::process::Output {
    let out = run_with_timeout(
        Command::new("mbsync").arg("-c").arg(rc).arg("-a"),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "mbsync failed:\n{}\n{}",
        text(&out),
        server.log()
    );
    out
}

/// Files of a Maildir folder (`cur` and `new`).
fn maildir_files(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(dir) = std::fs::read_dir(folder.join(sub)) {
            files.extend(dir.filter_map(|e| Some(e.ok()?.path())));
        }
    }
    files.sort();
    files
}

#[test]
fn mbsync_round_trip() {
    assert!(have("mbsync"), "mbsync (isync) is required");
    let server = server_with_user();
    deliver(&server, "sync me one", "first");
    deliver(&server, "sync me two", "second");
    server.wait_for_mail(USER, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir).expect("maildir");
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount merpati\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass \"{PASSWORD}\"\n\
SSLType None\nAuthMechs LOGIN\n\n\
IMAPStore remote\nAccount merpati\n\n\
MaildirStore local\nPath {md}/\nInbox {md}/INBOX\nSubFolders Verbatim\n\n\
Channel merpati\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\n\
SyncState *\n",
            port = server.ports.imap,
            md = maildir.display()
        ),
    )
    .expect("rc");

    // 1. Server -> Maildir: both messages, and the standard folders.
    mbsync(&rc, &server);
    let inbox = maildir.join("INBOX");
    let files = maildir_files(&inbox);
    assert_eq!(files.len(), 2, "{files:?}");
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    assert!(all.contains("Subject: sync me one") && all.contains("Subject: sync me two"));
    for folder in ["Sent", "Drafts", "Trash"] {
        assert!(maildir.join(folder).join("cur").is_dir(), "{folder}");
    }

    // The Maildir mbsync wrote comes in with `merpati import maildir`,
    // folders and all, once.
    server.add_user("carol@localhost", "pw");
    let md = maildir.to_str().expect("path");
    let first = server.cli_ok(&["import", "maildir", md, "carol@localhost"]);
    assert!(
        first.contains("2 imported, 0 already there, 0 failed (of 2)"),
        "{first}"
    );
    let again = server.cli_ok(&["import", "maildir", md, "carol@localhost"]);
    assert!(again.contains("0 imported, 2 already there"), "{again}");
    let listed = server.cli_ok(&["mailbox", "list", "carol@localhost"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.contains("sync me one") && listed.contains("sync me two"),
        "{listed}"
    );

    // 2. Maildir -> server: a new local message is APPENDed.
    let new = inbox.join("new").join("1700000000.merpati-test.localhost");
    std::fs::write(
        &new,
        "From: me@example.com\r\nSubject: written locally\r\n\r\nlocal body\r\n",
    )
    .expect("write");
    mbsync(&rc, &server);
    let uids = server.uids(USER);
    assert_eq!(uids.len(), 3, "{uids:?}");
    let mut c = login(server.ports.imap);
    let r = c.ok("SELECT INBOX");
    assert!(r.contains("* 3 EXISTS"), "{r}");
    let r = c.ok("UID SEARCH SUBJECT \"written locally\"");
    assert!(r.contains(&format!("* SEARCH {}\r\n", uids[2])), "{r}");
    c.ok("LOGOUT");

    // 3. Flag one message and delete another locally; sync; the server
    //    has the flag and the message is expunged.
    let files = maildir_files(&inbox);
    let find = |needle: &str| {
        files
            .iter()
            .find(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains(needle)
            })
            .cloned()
            .unwrap_or_else(|| panic!("{needle} not in {files:?}"))
    };
    let one = find("sync me one");
    let two = find("sync me two");
    let name = one.file_name().unwrap().to_string_lossy().into_owned();
    let flagged = match name.split_once(":2,") {
        Some((base, flags)) => format!("{base}:2,F{flags}"),
        None => format!("{name}:2,F"),
    };
    std::fs::rename(&one, inbox.join("cur").join(flagged)).expect("flag");
    std::fs::remove_file(&two).expect("delete");
    mbsync(&rc, &server);
    let mut c = login(server.ports.imap);
    let r = c.ok("SELECT INBOX");
    assert!(r.contains("* 2 EXISTS"), "{r}");
    let r = c.ok("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(!r.contains("sync me two"), "{r}");
    let line = r
        .split("* ")
        .find(|l| l.contains("sync me one"))
        .unwrap_or_else(|| panic!("{r}"));
    assert!(line.contains("\\Flagged"), "{r}");
    assert_eq!(server.uids(USER).len(), 2);
}

/// The commands Outlook (classic, IMAP account) sends at set-up and on a
/// send/receive cycle: AUTHENTICATE PLAIN with an initial response, LIST
/// and LSUB of everything, STATUS of each folder, SELECT with a full
/// header-and-size fetch, a copy to "Sent Items" it creates itself, and a
/// delete by flag and EXPUNGE.
#[test]
fn outlook_setup_and_send_receive_replay() {
    let server = server_with_user();
    deliver(&server, "for outlook", "first body");
    let (mut c, greeting) = Imap::connect(server.ports.imap);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let caps = c.ok("CAPABILITY");
    assert!(
        caps.contains("AUTH=PLAIN") && caps.contains("SASL-IR"),
        "{caps}"
    );
    let token = merpati::auth::base64_encode(format!("\0{USER}\0{PASSWORD}").as_bytes());
    c.ok(&format!("AUTHENTICATE PLAIN {token}"));
    let list = c.ok("LIST \"\" \"*\"");
    assert!(
        list.contains("\"INBOX\"") && list.contains("\\Sent"),
        "{list}"
    );
    let lsub = c.ok("LSUB \"\" \"*\"");
    assert!(lsub.contains("\"INBOX\""), "{lsub}");
    let status = c.ok("STATUS \"INBOX\" (MESSAGES UNSEEN RECENT UIDNEXT UIDVALIDITY)");
    assert!(
        status.contains("MESSAGES 1") && status.contains("UNSEEN 1"),
        "{status}"
    );
    // Outlook keeps its sent mail in a folder of its own.
    c.ok("CREATE \"Sent Items\"");
    c.ok("SUBSCRIBE \"Sent Items\"");
    let select = c.ok("SELECT \"INBOX\"");
    assert!(
        select.contains("* 1 EXISTS") && select.contains("[UIDVALIDITY "),
        "{select}"
    );
    let headers = c.ok(
        "UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (References X-Ref X-Priority X-MS-Has-Attach X-MS-TNEF-Correlator Newsgroups)])",
    );
    assert!(
        headers.contains("RFC822.SIZE ") && headers.contains("FLAGS (\\Recent)"),
        "{headers}"
    );
    let body = c.ok("UID FETCH 1 (UID BODY.PEEK[])");
    assert!(body.contains("first body"), "{body}");
    let seen = c.ok("UID STORE 1 +FLAGS (\\Seen)");
    assert!(seen.contains("\\Seen"), "{seen}");
    let sent = "From: alice\r\nSubject: sent by outlook\r\n\r\nhi\r\n";
    let appended = c.ok(&format!(
        "APPEND \"Sent Items\" (\\Seen) {{{}}}\r\n{sent}",
        sent.len()
    ));
    assert!(appended.contains("[APPENDUID "), "{appended}");
    c.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    let expunged = c.ok("EXPUNGE");
    assert!(expunged.contains("* 1 EXPUNGE"), "{expunged}");
    let status = c.ok("STATUS \"Sent Items\" (MESSAGES)");
    assert!(status.contains("MESSAGES 1"), "{status}");
    c.ok("NOOP");
    let bye = c.cmd("LOGOUT");
    assert!(bye.contains("* BYE"), "{bye}");
}

/// The number after `key` in an IMAP response, e.g. `HIGHESTMODSEQ 7`.
fn number_after(text: &str, key: &str) -> u64 {
    let rest = text
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {text}"));
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key} in {text}"))
}

#[test]
fn qresync_resynchronises_a_cached_mailbox() {
    let server = server_with_user();
    for n in 1..=4 {
        deliver(&server, &format!("m{n}"), "body");
    }
    let uids = server.uids(USER);
    assert_eq!(uids.len(), 4);

    // A client that cached the mailbox in this state...
    let mut a = login(server.ports.imap);
    assert!(a.ok("CAPABILITY").contains(" QRESYNC"));
    let bad = a.cmd("SELECT INBOX (QRESYNC (1 1))");
    assert!(bad.contains(" BAD "), "QRESYNC before ENABLE: {bad}");
    assert!(a.ok("ENABLE QRESYNC").contains("* ENABLED QRESYNC\r\n"));
    let select = a.ok("SELECT INBOX");
    let validity = number_after(&select, "UIDVALIDITY");
    let cached = number_after(&select, "HIGHESTMODSEQ");

    // ...while another session (no QRESYNC) flags one and expunges one.
    let mut b = login(server.ports.imap);
    b.ok("SELECT INBOX");
    b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)");
    b.ok("STORE 3 +FLAGS.SILENT (\\Deleted)");
    assert!(b.ok("EXPUNGE").contains("* 3 EXPUNGE\r\n"));

    // The QRESYNC session is told with VANISHED, never EXPUNGE.
    let noop = a.ok("NOOP");
    assert!(
        noop.contains(&format!("* VANISHED {}\r\n", uids[2])),
        "{noop}"
    );
    assert!(!noop.contains("EXPUNGE"), "{noop}");
    assert!(
        noop.contains(&format!("* 1 FETCH (UID {} FLAGS (\\Flagged", uids[0])),
        "{noop}"
    );

    // A new session resynchronises from the cached state in one SELECT.
    let mut c = login(server.ports.imap);
    c.ok("ENABLE QRESYNC");
    let known = format!("{}:{}", uids[0], uids[3]);
    let resync = c.ok(&format!(
        "SELECT INBOX (QRESYNC ({validity} {cached} {known}))"
    ));
    assert!(resync.contains("* 3 EXISTS"), "{resync}");
    assert!(
        resync.contains(&format!("* VANISHED (EARLIER) {}\r\n", uids[2])),
        "{resync}"
    );
    assert!(
        resync.contains(&format!("* 1 FETCH (UID {} FLAGS (\\Flagged", uids[0])),
        "{resync}"
    );
    // Unchanged messages are not sent again.
    assert_eq!(resync.matches(" FETCH (").count(), 1, "{resync}");
    // Selecting again closes the first mailbox with [CLOSED] first.
    let again = c.ok(&format!("EXAMINE INBOX (QRESYNC ({} 1))", validity + 1));
    assert!(again.starts_with("* OK [CLOSED]"), "{again}");
    assert!(
        !again.contains("VANISHED") && !again.contains("FETCH"),
        "another UIDVALIDITY: a full resync is the client's job: {again}"
    );

    // UID FETCH with CHANGEDSINCE and VANISHED.
    let fetch = c.ok(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {cached} VANISHED)"
    ));
    assert!(
        fetch.contains(&format!("* VANISHED (EARLIER) {}\r\n", uids[2])),
        "{fetch}"
    );
    assert_eq!(fetch.matches(" FETCH (").count(), 1, "{fetch}");
    let plain = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)");
    assert!(plain.contains(" BAD "), "VANISHED needs UID FETCH: {plain}");

    // This session's own EXPUNGE is reported as VANISHED too.
    c.ok("SELECT INBOX");
    c.ok(&format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", uids[3]));
    let expunge = c.ok(&format!("UID EXPUNGE {}", uids[3]));
    assert!(
        expunge.contains(&format!("* VANISHED {}\r\n", uids[3])),
        "{expunge}"
    );
    // ...with the new HIGHESTMODSEQ in the tagged OK (RFC 7162 §3.2.7).
    let after = number_after(&expunge, "OK [HIGHESTMODSEQ");
    assert!(after > cached, "{expunge}");
    // STORE and MOVE follow the same rules: UID in every FETCH, VANISHED.
    let store = c.ok("STORE 1 +FLAGS (\\Answered)");
    assert!(
        store.contains(&format!(
            "* 1 FETCH (FLAGS (\\Flagged \\Answered) UID {} MODSEQ (",
            uids[0]
        )),
        "{store}"
    );
    let moved = c.ok("MOVE 1 Archive");
    assert!(
        moved.contains(&format!("* VANISHED {}\r\n", uids[0])) && !moved.contains("EXPUNGE"),
        "{moved}"
    );
    assert!(moved.contains(" OK [HIGHESTMODSEQ "), "{moved}");

    // Without QRESYNC, a SELECT that replaces another still says CLOSED.
    b.ok("SELECT INBOX");
    let switched = b.ok("EXAMINE Archive");
    assert!(switched.starts_with("* OK [CLOSED]"), "{switched}");
}

#[test]
fn recent_goes_to_the_first_session_and_multiappend_is_atomic() {
    let server = server_with_user();
    server.cli_ok(&["user", "quota", USER, "2KiB"]);
    let mut a = login(server.ports.imap);
    let small = "Subject: s\r\n\r\nsmall\r\n";
    let big = format!("Subject: b\r\n\r\n{}\r\n", "x".repeat(4000));
    // MULTIAPPEND over quota as a whole: nothing is stored.
    a.send(
        format!(
            "m1 APPEND INBOX {{{}+}}\r\n{small} {{{}+}}\r\n{big}\r\n",
            small.len(),
            big.len()
        )
        .as_bytes(),
    );
    let refused = a.until("m1 ");
    assert!(refused.contains("m1 NO [OVERQUOTA]"), "{refused}");
    let status = a.ok("STATUS INBOX (MESSAGES RECENT)");
    assert!(status.contains("(MESSAGES 0 RECENT 0)"), "{status}");

    // Two messages appended at once: one APPENDUID range.
    a.send(
        format!(
            "m2 APPEND INBOX (\\Seen) {{{}+}}\r\n{small} (\\Seen) {{{}+}}\r\n{small}\r\n",
            small.len(),
            small.len()
        )
        .as_bytes(),
    );
    let appended = a.until("m2 ");
    assert!(appended.contains("m2 OK [APPENDUID "), "{appended}");
    assert!(appended.contains(" 1:2] "), "{appended}");
    let status = a.ok("STATUS INBOX (MESSAGES RECENT)");
    assert!(status.contains("(MESSAGES 2 RECENT 2)"), "{status}");

    // EXAMINE looks at \Recent without taking it...
    let examine = a.ok("EXAMINE INBOX");
    assert!(examine.contains("* 2 RECENT\r\n"), "{examine}");
    // ...SELECT takes it; a second session gets none.
    let select = a.ok("SELECT INBOX");
    assert!(select.contains("* 2 RECENT\r\n"), "{select}");
    let mut b = login(server.ports.imap);
    assert!(b.ok("SELECT INBOX").contains("* 0 RECENT\r\n"));
    let fetch = b.ok("FETCH 1 (FLAGS)");
    assert!(fetch.contains("FLAGS (\\Seen)"), "{fetch}");
    let fetch = a.ok("FETCH 1 (FLAGS)");
    assert!(fetch.contains("FLAGS (\\Seen \\Recent)"), "{fetch}");

    // New mail while idle goes to one of the two sessions only.
    server.cli_ok(&["user", "quota", USER, "0"]);
    deliver(&server, "new", "arrived");
    let a_noop = a.ok("NOOP");
    let b_noop = b.ok("NOOP");
    assert!(a_noop.contains("* 3 EXISTS") && b_noop.contains("* 3 EXISTS"));
    let recent_a = a_noop.contains("* 3 RECENT");
    let recent_b = b_noop.contains("* 1 RECENT");
    assert!(recent_a != recent_b, "a: {a_noop}\nb: {b_noop}");
    let newer = if recent_a { &mut a } else { &mut b };
    let search = newer.ok("SEARCH RECENT UNSEEN");
    assert!(search.contains("* SEARCH 3\r\n"), "{search}");
}

#[test]
fn imap4rev2_session_after_enable() {
    let server = server_with_user();
    deliver(&server, "one", "1");
    deliver(&server, "two", "2");
    let uids = server.uids(USER);
    let mut c = login(server.ports.imap);
    assert!(c.ok("CAPABILITY").contains("IMAP4rev1 IMAP4rev2 "));
    let enabled = c.ok("ENABLE IMAP4rev2");
    assert!(enabled.contains("* ENABLED IMAP4rev2\r\n"), "{enabled}");

    // RFC 9051 §6.3.2: no RECENT, no UNSEEN code, a LIST response.
    let select = c.ok("SELECT INBOX");
    assert!(select.contains("* 2 EXISTS\r\n"), "{select}");
    assert!(
        !select.contains("RECENT") && !select.contains("[UNSEEN"),
        "{select}"
    );
    assert!(
        select.contains("* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n"),
        "{select}"
    );
    let flags = c.ok("FETCH 1:* (FLAGS)");
    assert!(!flags.contains("\\Recent"), "{flags}");

    // SEARCH answers with ESEARCH (RFC 9051 §6.4.4).
    let search = c.cmd("SEARCH ALL");
    let tag = search.lines().last().unwrap().split(' ').next().unwrap();
    assert!(
        search.contains(&format!("* ESEARCH (TAG \"{tag}\") ALL 1:2\r\n")),
        "{search}"
    );
    let search = c.ok("UID SEARCH UNSEEN");
    assert!(
        search.contains(&format!(") UID ALL {}:{}\r\n", uids[0], uids[1])),
        "{search}"
    );
    let none = c.ok("SEARCH DELETED");
    assert!(
        none.contains(") \r\n") || none.contains("\")\r\n"),
        "{none}"
    );

    // STATUS DELETED.
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    let status = c.ok("STATUS INBOX (MESSAGES DELETED)");
    assert!(status.contains("(MESSAGES 2 DELETED 1)"), "{status}");

    // Selecting again reports the first mailbox CLOSED.
    let again = c.ok("EXAMINE Sent");
    assert!(again.starts_with("* OK [CLOSED]"), "{again}");
}

#[test]
fn idle_times_out_on_a_silent_client_but_not_on_new_mail() {
    let server = Builder::default().imap("idle_timeout = \"3s\"").start();
    server.add_user(USER, PASSWORD);
    let mut c = login(server.ports.imap);
    c.ok("SELECT INBOX");
    c.send(b"i1 IDLE\r\n");
    assert!(c.line().starts_with("+ "));
    // New mail is pushed, and does not count as the client's activity.
    let started = Instant::now();
    deliver(&server, "during idle", "x");
    c.until("* 1 EXISTS");
    let bye = c.until("* BYE");
    assert!(bye.contains("* BYE Autologout"), "{bye}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(20),
        "logged out after {waited:?}"
    );
}

/// The verified-credentials cache: a repeated login is accepted from it,
/// and a changed password ends the old one at once, cached or not.
#[test]
fn a_cached_login_ends_when_the_password_changes() {
    let server = server_with_user();
    for _ in 0..3 {
        let mut imap = login(server.ports.imap);
        imap.ok("LOGOUT");
    }
    let out = server.cli_with_input(&["user", "passwd", USER], b"brand new pw\n");
    assert_success(&out, "user passwd");
    let (mut imap, _) = Imap::connect(server.ports.imap);
    let reply = imap.cmd(&format!("LOGIN {USER} \"{PASSWORD}\""));
    assert!(reply.contains("NO [AUTHENTICATIONFAILED]"), "{reply}");
    let mut imap = Imap::login_as(server.ports.imap, USER, "brand new pw");
    imap.ok("LOGOUT");
    // A deleted account cannot log in from the cache either.
    server.cli_ok(&["user", "del", USER]);
    let (mut imap, _) = Imap::connect(server.ports.imap);
    let reply = imap.cmd(&format!("LOGIN {USER} \"brand new pw\""));
    assert!(reply.contains(" NO "), "{reply}");
}
