//! The RFC points an independent IMAP conformance run found, each replayed
//! against the real server with the exchange the suite used.

use crate::harness::*;
use crate::imap_client::Imap;

const USER: &str = "alice@localhost";
const PASSWORD: &str = "pw";

fn setup() -> (Server, Imap) {
    let server = server();
    server.add_user(USER, PASSWORD);
    let imap = Imap::login_as(server.ports.imap, USER, PASSWORD);
    (server, imap)
}

fn append(imap: &mut Imap, mailbox: &str, message: &str) {
    let tag = imap.tag();
    imap.send(
        format!(
            "{tag} APPEND {mailbox} {{{}+}}\r\n{message}\r\n",
            message.len()
        )
        .as_bytes(),
    );
    let answer = imap.until(&format!("{tag} "));
    assert!(answer.contains(&format!("{tag} OK")), "{answer}");
}

/// RFC 7162 §3.1: the first CONDSTORE-enabling command with a mailbox
/// selected is followed by `* OK [HIGHESTMODSEQ n]`, once.
#[test]
fn the_first_condstore_enabling_fetch_reports_highestmodseq() {
    let (_server, mut imap) = setup();
    append(&mut imap, "INBOX", "Subject: a\r\n\r\na\r\n");
    imap.ok("SELECT INBOX");
    let first = imap.ok("FETCH 1 MODSEQ");
    assert!(first.contains("* OK [HIGHESTMODSEQ "), "{first}");
    let at = first.find("* OK [HIGHESTMODSEQ").unwrap();
    let fetch = first.find("* 1 FETCH").unwrap();
    assert!(at < fetch, "{first}");
    let again = imap.ok("FETCH 1 MODSEQ");
    assert!(!again.contains("HIGHESTMODSEQ"), "{again}");
}

/// RFC 4731 §3.2, RFC 7162 §3.1.5: with only MIN (or MAX), MODSEQ is that
/// message's, not the highest of all matches.
#[test]
fn esearch_min_reports_the_modseq_of_the_message_found() {
    let (_server, mut imap) = setup();
    for s in ["a", "b", "c"] {
        append(&mut imap, "INBOX", &format!("Subject: {s}\r\n\r\n{s}\r\n"));
    }
    imap.ok("SELECT INBOX");
    imap.ok("STORE 3 +FLAGS (\\Flagged)");
    let modseqs = imap.ok("FETCH 1:3 MODSEQ");
    let modseq_of = |seq: u32| -> u64 {
        let line = modseqs
            .lines()
            .find(|l| l.starts_with(&format!("* {seq} FETCH")))
            .unwrap_or_default();
        line.split("MODSEQ (")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (first, last) = (modseq_of(1), modseq_of(3));
    assert!(first < last, "{modseqs}");
    let min = imap.ok("SEARCH RETURN (MIN) MODSEQ 1");
    assert!(min.contains(&format!(" MIN 1 MODSEQ {first}\r\n")), "{min}");
    let max = imap.ok("SEARCH RETURN (MAX) MODSEQ 1");
    assert!(max.contains(&format!(" MAX 3 MODSEQ {last}\r\n")), "{max}");
    let all = imap.ok("SEARCH RETURN (MIN COUNT) MODSEQ 1");
    assert!(all.contains(&format!(" MODSEQ {last}\r\n")), "{all}");
}

/// RFC 3501 §7.4.2: a source route is the adl field; a comment in a group
/// is not a member.
#[test]
fn envelope_routes_and_group_comments() {
    let (_server, mut imap) = setup();
    append(
        &mut imap,
        "INBOX",
        "From: <@route:user@domain>\r\nTo: group2: (foo) ;\r\nSubject: env\r\n\r\nx\r\n",
    );
    imap.ok("SELECT INBOX");
    let env = imap.ok("FETCH 1 ENVELOPE");
    assert!(
        env.contains("((NIL \"@route\" \"user\" \"domain\"))"),
        "{env}"
    );
    assert!(
        env.contains("((NIL NIL \"group2\" NIL)(NIL NIL NIL NIL))"),
        "{env}"
    );
}

/// RFC 2971: 30 fields of 1,024-octet values (about 32 KB) fit.
#[test]
fn a_maximal_id_command_fits() {
    let server = server();
    let (mut imap, _) = Imap::connect(server.ports.imap);
    let fields: Vec<String> = (0..30)
        .map(|i| format!("\"field{i:02}\" \"{}\"", "v".repeat(1024)))
        .collect();
    let answer = imap.cmd(&format!("ID ({})", fields.join(" ")));
    assert!(
        answer.contains("* ID "),
        "{}",
        &answer[..answer.len().min(300)]
    );
    assert!(
        answer.lines().last().unwrap_or_default().contains(" OK"),
        "{answer}"
    );
    // Other commands keep the configured bound before login.
    let long = imap.cmd(&format!("NOOP {}", "x".repeat(20_000)));
    assert!(long.contains("BAD"), "{long}");
}

/// A LIST pattern is not a mailbox name: one that is not modified UTF-7
/// matches nothing and the answer is OK.
#[test]
fn list_patterns_are_not_mailbox_names() {
    let (_server, mut imap) = setup();
    let answer = imap.cmd("LIST \"\" \"!#$&'+,-.0123456789:;<=>?@^_`|[}%*\"");
    assert!(!answer.contains("* LIST"), "{answer}");
    assert!(
        answer.lines().last().unwrap_or_default().contains(" OK"),
        "{answer}"
    );
}

/// RFC 5256: SORT by an address field keys a group by its name.
#[test]
fn sort_keys_a_group_by_its_name() {
    let (_server, mut imap) = setup();
    append(&mut imap, "INBOX", "Cc: zulu@x\r\nSubject: 1\r\n\r\nx\r\n");
    append(
        &mut imap,
        "INBOX",
        "Cc: team: a@x;\r\nSubject: 2\r\n\r\nx\r\n",
    );
    append(&mut imap, "INBOX", "Cc: mike@x\r\nSubject: 3\r\n\r\nx\r\n");
    imap.ok("SELECT INBOX");
    let sorted = imap.ok("SORT (CC) US-ASCII ALL");
    // mike < team < zulu (the group is "team", not "a").
    assert!(sorted.contains("* SORT 3 2 1\r\n"), "{sorted}");
    let display = imap.ok("SORT (DISPLAYTO) US-ASCII ALL");
    assert!(display.contains("* SORT "), "{display}");
}

/// RFC 3501 §7.2.6: a STORE that introduces a keyword sends FLAGS and
/// PERMANENTFLAGS first, to this session and to every other one that has
/// the mailbox selected.
#[test]
fn a_new_keyword_is_announced_to_every_session() {
    let (server, mut imap) = setup();
    append(&mut imap, "INBOX", "Subject: k\r\n\r\nk\r\n");
    imap.ok("SELECT INBOX");
    let mut other = Imap::login_as(server.ports.imap, USER, PASSWORD);
    other.ok("SELECT INBOX");
    let stored = imap.ok("STORE 1 +FLAGS ($Important)");
    let flags = stored.find("* FLAGS (").expect(&stored);
    let permanent = stored.find("* OK [PERMANENTFLAGS (").expect(&stored);
    let fetch = stored.find("* 1 FETCH").expect(&stored);
    assert!(flags < fetch && permanent < fetch, "{stored}");
    assert!(
        stored[flags..]
            .lines()
            .next()
            .unwrap()
            .contains("$Important"),
        "{stored}"
    );
    let seen = other.ok("NOOP");
    let flags = seen.find("* FLAGS (").expect(&seen);
    let fetch = seen.find("* 1 FETCH").expect(&seen);
    assert!(flags < fetch, "{seen}");
    assert!(seen.contains("$Important"), "{seen}");
    // Known now: not announced again.
    let again = imap.ok("STORE 1 -FLAGS ($Important)");
    assert!(!again.contains("* FLAGS"), "{again}");
}

/// A NAT gateway carries many users: 50 clients from one address are all
/// served; one account from one address gets `max_userip_connections`
/// sessions (10), and every refusal is logged.
#[test]
fn connection_limits_a_nat_can_live_with() {
    let (server, _first) = setup();
    let port = server.ports.imap;
    let crowd: Vec<Imap> = (0..50)
        .map(|_| {
            let (imap, greeting) = Imap::connect(port);
            assert!(greeting.starts_with("* OK"), "{greeting}");
            imap
        })
        .collect();
    // The first session above is logged in; nine more fit.
    let mut sessions = Vec::new();
    for _ in 0..9 {
        sessions.push(Imap::login_as(port, USER, PASSWORD));
    }
    let (mut eleventh, _) = Imap::connect(port);
    let refused = eleventh.cmd(&format!("LOGIN {USER} {PASSWORD}"));
    assert!(refused.contains("NO [LIMIT]"), "{refused}");
    assert!(
        server.log().contains("login refused: user=<alice>"),
        "{}",
        server.log()
    );
    // One leaves: there is room again.
    drop(sessions.pop());
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        eleventh
            .cmd(&format!("LOGIN {USER} {PASSWORD}"))
            .contains(" OK")
    }));
    drop(crowd);
}

/// RFC 3501 §6.3.9, RFC 5258: subscriptions are independent of mailboxes.
#[test]
fn subscriptions_outlive_their_mailboxes() {
    let (_server, mut imap) = setup();
    imap.ok("CREATE gone");
    imap.ok("SUBSCRIBE gone");
    imap.ok("DELETE gone");
    let list = imap.ok("LIST (SUBSCRIBED) \"\" \"*\"");
    assert!(
        list.contains("* LIST (\\Subscribed \\NonExistent"),
        "{list}"
    );
    assert!(list.contains("\"/\" \"gone\"\r\n"), "{list}");
    let lsub = imap.ok("LSUB \"\" \"*\"");
    assert!(
        lsub.contains("* LSUB (\\Noselect) \"/\" \"gone\"\r\n"),
        "{lsub}"
    );
    // A plain LIST does not show it.
    assert!(!imap.ok("LIST \"\" \"*\"").contains("gone"));
    // Created again, it is subscribed again.
    imap.ok("CREATE gone");
    let lsub = imap.ok("LSUB \"\" \"gone\"");
    assert!(lsub.contains("* LSUB () \"/\" \"gone\"\r\n"), "{lsub}");
    imap.ok("DELETE gone");
    imap.ok("UNSUBSCRIBE gone");
    assert!(!imap.ok("LSUB \"\" \"*\"").contains("gone"));
    // A mailbox renamed onto subscribed names takes their subscriptions,
    // children included.
    imap.ok("SUBSCRIBE \"b/x\"");
    imap.ok("CREATE a/x");
    imap.ok("RENAME a b");
    let lsub = imap.ok("LSUB \"\" \"b/*\"");
    assert!(lsub.contains("* LSUB () \"/\" \"b/x\"\r\n"), "{lsub}");
    // A name that never existed may be subscribed too.
    imap.ok("SUBSCRIBE \"never/made\"");
    let lsub = imap.ok("LSUB \"\" \"never/%\"");
    assert!(
        lsub.contains("* LSUB (\\Noselect) \"/\" \"never/made\"\r\n"),
        "{lsub}"
    );
}

/// LSUB with `%`: a superior of subscribed names that is not subscribed
/// itself is returned as \Noselect (RFC 3501 §6.3.9).
#[test]
fn lsub_percent_shows_unsubscribed_superiors_as_noselect() {
    let (_server, mut imap) = setup();
    imap.ok("CREATE parent/child/leaf");
    imap.ok("SUBSCRIBE parent/child/leaf");
    let lsub = imap.ok("LSUB \"\" \"parent/%\"");
    assert!(
        lsub.contains("* LSUB (\\Noselect) \"/\" \"parent/child\"\r\n"),
        "{lsub}"
    );
    let lsub = imap.ok("LSUB \"\" \"%\"");
    assert!(
        lsub.contains("* LSUB (\\Noselect) \"/\" \"parent\"\r\n"),
        "{lsub}"
    );
}

/// RFC 5258 §3.5: with RECURSIVEMATCH, CHILDINFO only for a parent whose
/// matching child the patterns do not list themselves.
#[test]
fn childinfo_only_for_children_not_listed() {
    let (_server, mut imap) = setup();
    imap.ok("CREATE Foo/Bar");
    imap.ok("SUBSCRIBE Foo/Bar");
    let star = imap.ok("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*\"");
    assert!(star.contains("\"/\" \"Foo/Bar\"\r\n"), "{star}");
    assert!(!star.contains("CHILDINFO"), "{star}");
    let percent = imap.ok("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"");
    assert!(
        percent.contains("\"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"),
        "{percent}"
    );
}

/// RFC 3501 §4.3: no NUL in a `{n}` literal. A part appended with NULs
/// (BINARY APPEND, RFC 3516) comes back with 0x80 in their place from
/// BODY[...] and RFC822 fetches, and as it is only in a `~{n}` literal8
/// from BINARY fetches.
#[test]
fn nul_octets_never_travel_in_a_plain_literal() {
    use std::io::BufRead;
    let (_server, mut imap) = setup();
    let message = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\x00c\r\n--b--\r\n";
    let tag = imap.tag();
    imap.send(format!("{tag} APPEND INBOX ~{{{}+}}\r\n", message.len()).as_bytes());
    imap.send(message);
    imap.send(b"\r\n");
    let answer = imap.until(&format!("{tag} "));
    assert!(answer.contains(&format!("{tag} OK")), "{answer}");
    imap.ok("SELECT INBOX");
    let raw = |imap: &mut Imap, command: &str| -> Vec<u8> {
        let tag = imap.tag();
        imap.send(format!("{tag} {command}\r\n").as_bytes());
        let mut all = Vec::new();
        loop {
            let mut line = Vec::new();
            imap.reader.read_until(b'\n', &mut line).unwrap();
            assert!(
                !line.is_empty(),
                "closed: {}",
                String::from_utf8_lossy(&all)
            );
            all.extend_from_slice(&line);
            if line.starts_with(format!("{tag} ").as_bytes()) {
                return all;
            }
        }
    };
    for command in [
        "FETCH 1 BODY.PEEK[1]",
        "FETCH 1 BODY.PEEK[]",
        "FETCH 1 RFC822.TEXT",
    ] {
        let got = raw(&mut imap, command);
        assert!(
            !got.contains(&0),
            "{command}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            got.windows(5).any(|w| w == b"a\x80b\x80c"),
            "{command}: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let got = raw(&mut imap, "FETCH 1 BINARY.PEEK[1]");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("BINARY[1] ~{5}\r\n"), "{text}");
    assert!(got.windows(5).any(|w| w == b"a\x00b\x00c"), "{text}");
}

/// RFC 7889 APPENDLIMIT: advertised, and an APPEND above it is refused
/// before the literal is sent.
#[test]
fn appendlimit_is_advertised_and_enforced() {
    let server = Builder::default().smtp("message_size_limit = 1000").start();
    server.add_user(USER, PASSWORD);
    let mut imap = Imap::login_as(server.ports.imap, USER, PASSWORD);
    let caps = imap.ok("CAPABILITY");
    assert!(caps.contains(" APPENDLIMIT=1000"), "{caps}");
    let tag = imap.tag();
    imap.send(format!("{tag} APPEND INBOX {{1001}}\r\n").as_bytes());
    let answer = imap.line();
    assert!(
        answer.starts_with(&format!("{tag} NO [TOOBIG]")),
        "{answer}"
    );
    let fits = format!("Subject: s\r\n\r\n{}\r\n", "x".repeat(900));
    append(&mut imap, "INBOX", &fits);
}

/// RFC 8970 PREVIEW: a short plain-text preview, without setting \Seen.
#[test]
fn preview_gives_the_start_of_the_text() {
    let (_server, mut imap) = setup();
    append(
        &mut imap,
        "INBOX",
        "Subject: p\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHalo   Fauzan,\r\n\r\nsampai jumpa besok.\r\n",
    );
    imap.ok("SELECT INBOX");
    let caps = imap.ok("CAPABILITY");
    assert!(caps.contains(" PREVIEW"), "{caps}");
    let got = imap.ok("FETCH 1 (PREVIEW)");
    assert!(
        got.contains("PREVIEW \"Halo Fauzan, sampai jumpa besok.\""),
        "{got}"
    );
    let lazy = imap.ok("FETCH 1 (FLAGS PREVIEW (LAZY))");
    assert!(lazy.contains("PREVIEW \"Halo"), "{lazy}");
    assert!(!lazy.contains("\\Seen"), "{lazy}");
}

/// RFC 8474 OBJECTID: MAILBOXID survives RENAME, EMAILID survives COPY,
/// SEARCH EMAILID finds the message; THREADID is NIL (no threads kept).
#[test]
fn object_ids_are_stable() {
    let (_server, mut imap) = setup();
    let caps = imap.ok("CAPABILITY");
    assert!(caps.contains(" OBJECTID"), "{caps}");
    let created = imap.ok("CREATE Projects");
    let id_of = |text: &str, key: &str| -> String {
        text.split(&format!("{key} ("))
            .nth(1)
            .and_then(|r| r.split(')').next())
            .unwrap_or_default()
            .to_string()
    };
    let mailbox_id = id_of(&created, "MAILBOXID");
    assert!(mailbox_id.starts_with('M'), "{created}");
    imap.ok("RENAME Projects Work");
    let status = imap.ok("STATUS Work (MAILBOXID MESSAGES)");
    assert_eq!(id_of(&status, "MAILBOXID"), mailbox_id, "{status}");
    append(&mut imap, "INBOX", "Subject: o\r\n\r\nobject\r\n");
    let selected = imap.ok("SELECT INBOX");
    assert!(selected.contains("* OK [MAILBOXID (M"), "{selected}");
    let fetched = imap.ok("FETCH 1 (EMAILID THREADID)");
    let email_id = id_of(&fetched, "EMAILID");
    assert!(email_id.starts_with('E'), "{fetched}");
    assert!(fetched.contains("THREADID NIL"), "{fetched}");
    imap.ok("COPY 1 Work");
    imap.ok("SELECT Work");
    let copied = imap.ok("FETCH 1 EMAILID");
    assert_eq!(id_of(&copied, "EMAILID"), email_id, "{copied}");
    let found = imap.ok(&format!("SEARCH EMAILID {email_id}"));
    assert!(found.contains("* SEARCH 1\r\n"), "{found}");
    let none = imap.ok("SEARCH THREADID T1");
    assert!(none.contains("* SEARCH\r\n"), "{none}");
}

/// RFC 9394 PARTIAL: a window of the results, counted from either end.
#[test]
fn partial_returns_a_window_of_the_results() {
    let (_server, mut imap) = setup();
    for i in 1..=6 {
        append(&mut imap, "INBOX", &format!("Subject: {i}\r\n\r\nx\r\n"));
    }
    imap.ok("SELECT INBOX");
    let first = imap.ok("UID SEARCH RETURN (PARTIAL 1:2) ALL");
    assert!(first.contains(" UID PARTIAL (1:2 1:2)\r\n"), "{first}");
    let last = imap.ok("SEARCH RETURN (PARTIAL -1:-3 COUNT) ALL");
    assert!(last.contains(" COUNT 6 PARTIAL (-1:-3 4:6)\r\n"), "{last}");
    let beyond = imap.ok("SEARCH RETURN (PARTIAL 10:20) ALL");
    assert!(beyond.contains(" PARTIAL (10:20 NIL)\r\n"), "{beyond}");
    let bad = imap.cmd("SEARCH RETURN (PARTIAL 0:5) ALL");
    assert!(bad.contains(" BAD"), "{bad}");
}

/// RFC 8508 REPLACE: the new message is saved (APPENDUID), the old one
/// expunged, in one command; into the same or another mailbox.
#[test]
fn replace_saves_the_new_message_and_expunges_the_old() {
    let (_server, mut imap) = setup();
    append(&mut imap, "INBOX", "Subject: draft 1\r\n\r\nfirst\r\n");
    append(&mut imap, "INBOX", "Subject: other\r\n\r\nx\r\n");
    imap.ok("CREATE Drafts2");
    imap.ok("SELECT INBOX");
    let caps = imap.ok("CAPABILITY");
    assert!(caps.contains(" REPLACE"), "{caps}");
    let new = "Subject: draft 2\r\n\r\nsecond\r\n";
    let tag = imap.tag();
    imap.send(format!("{tag} REPLACE 1 INBOX {{{}+}}\r\n{new}\r\n", new.len()).as_bytes());
    let answer = imap.until(&format!("{tag} "));
    let saved = answer.find("* OK [APPENDUID ").expect(&answer);
    let expunged = answer.find("* 1 EXPUNGE").expect(&answer);
    assert!(saved < expunged, "{answer}");
    assert!(answer.contains(&format!("{tag} OK")), "{answer}");
    let subjects = imap.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(subjects.contains("Subject: draft 2"), "{subjects}");
    assert!(!subjects.contains("draft 1"), "{subjects}");
    // UID REPLACE into another mailbox.
    let uid = imap.ok("FETCH 1 UID");
    let uid: u32 = uid
        .split("UID ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .expect("uid");
    let tag = imap.tag();
    imap.send(
        format!(
            "{tag} UID REPLACE {uid} Drafts2 {{{}+}}\r\n{new}\r\n",
            new.len()
        )
        .as_bytes(),
    );
    let answer = imap.until(&format!("{tag} "));
    assert!(answer.contains(&format!("{tag} OK")), "{answer}");
    let status = imap.ok("STATUS Drafts2 (MESSAGES)");
    assert!(status.contains("MESSAGES 1"), "{status}");
    let missing = imap.cmd(&format!("REPLACE 99 INBOX {{{}+}}\r\n{new}", new.len()));
    assert!(
        missing.contains(" BAD") || missing.contains(" NO"),
        "{missing}"
    );
}

/// RFC 4978 COMPRESS=DEFLATE against Python's zlib (raw DEFLATE): the
/// tagged OK in the clear, then both directions compressed, IDLE included.
#[test]
fn compress_deflate_with_a_real_zlib_peer() {
    let (server, mut imap) = setup();
    append(
        &mut imap,
        "INBOX",
        &format!("Subject: big\r\n\r\n{}\r\n", "compress me ".repeat(2000)),
    );
    let script = r#"
import socket, sys, zlib
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
f = s.makefile("rb")
f.readline()
s.sendall(b'a1 LOGIN alice@localhost pw\r\n')
while not f.readline().startswith(b'a1 '): pass
s.sendall(b'a2 CAPABILITY\r\n')
caps = b''
while True:
    line = f.readline(); caps += line
    if line.startswith(b'a2 '): break
assert b'COMPRESS=DEFLATE' in caps, caps
s.sendall(b'a3 COMPRESS DEFLATE\r\n')
ok = f.readline()
assert ok.startswith(b'a3 OK'), ok
comp = zlib.compressobj(6, zlib.DEFLATED, -15)
decomp = zlib.decompressobj(-15)
def send(text):
    s.sendall(comp.compress(text) + comp.flush(zlib.Z_SYNC_FLUSH))
buf = b''
raw_total = 0
def until(tag):
    global buf, raw_total
    while tag not in buf:
        chunk = s.recv(65536)
        if not chunk: raise SystemExit('closed: %r' % buf)
        raw_total += len(chunk)
        buf += decomp.decompress(chunk)
    out, buf = buf.split(tag, 1)
    rest, buf = buf.split(b'\r\n', 1) if b'\r\n' in buf else (buf, b'')
    return out + tag + rest
r = until(b'a4 OK') if send(b'a4 SELECT INBOX\r\n') is None else None
assert b'EXISTS' in r, r
r = until(b'a5 OK') if send(b'a5 FETCH 1 BODY.PEEK[]\r\n') is None else None
assert b'compress me compress me' in r, r[:200]
print('plain', len(r), 'wire', raw_total)
send(b'a6 COMPRESS DEFLATE\r\n')
r = until(b'a6 ')
assert b'COMPRESSIONACTIVE' in r, r
send(b'a7 LOGOUT\r\n')
r = until(b'a7 OK')
assert b'BYE' in r, r
"#;
    let out = python(script, &[&server.ports.imap.to_string()]);
    assert_success(&out, "python zlib COMPRESS client");
    let said = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<usize> = said
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(numbers.len() == 2 && numbers[1] * 5 < numbers[0], "{said}");
}

/// RFC 8514 SAVEDATE: when the message came into this mailbox, not the
/// date the client gave APPEND; a COPY is saved anew.
#[test]
fn savedate_is_when_the_message_was_saved() {
    let (_server, mut imap) = setup();
    let caps = imap.ok("CAPABILITY");
    assert!(caps.contains(" SAVEDATE"), "{caps}");
    let msg = "Subject: old\r\n\r\nfrom 2001\r\n";
    let tag = imap.tag();
    imap.send(
        format!(
            "{tag} APPEND INBOX \"01-Jan-2001 10:00:00 +0000\" {{{}+}}\r\n{msg}\r\n",
            msg.len()
        )
        .as_bytes(),
    );
    assert!(imap.until(&format!("{tag} ")).contains(" OK"));
    imap.ok("SELECT INBOX");
    let got = imap.ok("FETCH 1 (INTERNALDATE SAVEDATE)");
    assert!(
        got.contains("INTERNALDATE \"01-Jan-2001 10:00:00 +0000\""),
        "{got}"
    );
    let year = std::process::Command::new("date")
        .args(["-u", "+%Y"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(
        got.contains("SAVEDATE \"") && got.contains(&format!("-{year} ")),
        "{got}"
    );
    let found = imap.ok("SEARCH SAVEDSINCE 1-Jan-2020");
    assert!(found.contains("* SEARCH 1\r\n"), "{found}");
    let none = imap.ok("SEARCH SAVEDBEFORE 1-Jan-2020");
    assert!(none.contains("* SEARCH\r\n"), "{none}");
    let by_internal = imap.ok("SEARCH BEFORE 1-Jan-2020");
    assert!(by_internal.contains("* SEARCH 1\r\n"), "{by_internal}");
    let all = imap.ok("SEARCH SAVEDATESUPPORTED");
    assert!(all.contains("* SEARCH 1\r\n"), "{all}");
}
