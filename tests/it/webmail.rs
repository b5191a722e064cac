//! The webmail over real HTTPS: curl for the security properties (cookie
//! attributes, CSRF, CSP, session end, no open redirect, hostile mail HTML
//! sanitised, downloads), and headless Chromium driven by Selenium for a
//! user's day (log in, read, reply, attach, download, Junk and back).

use crate::harness::{Builder, Server, assert_success, system_python};
use std::process::Command;

/// A curl session with its own cookie jar.
struct Browser {
    jar: std::path::PathBuf,
    base: String,
}

impl Browser {
    fn new(server: &Server, name: &str) -> Browser {
        Browser {
            jar: server.dir.path().join(format!("{name}.cookies")),
            base: format!("https://127.0.0.1:{}", server.ports.https),
        }
    }

    /// (status, headers and body) of a request; extra curl arguments.
    fn request(&self, path: &str, args: &[&str]) -> (u16, String) {
        let jar = self.jar.to_str().expect("path");
        let out = Command::new("curl")
            .args(["-s", "-k", "-i", "--max-time", "20", "-b", jar, "-c", jar])
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .arg(format!("{}{path}", self.base))
            .output()
            .unwrap_or_else(|e| panic!("curl is required: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request(path, &[])
    }

    fn post(&self, path: &str, form: &str) -> (u16, String) {
        self.request(path, &["--data", form])
    }

    fn login(&self, user: &str, password: &str) -> (u16, String) {
        let (_, page) = self.get("/login");
        let csrf = csrf(&page);
        self.post(
            "/login",
            &format!("user={user}&password={password}&csrf={csrf}"),
        )
    }
}

/// The CSRF token of the first form on a page.
fn csrf(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").map(|i| i + 19);
    start
        .and_then(|s| page.get(s..).and_then(|rest| rest.split('"').next()))
        .unwrap_or_default()
        .to_string()
}

fn header<'a>(response: &'a str, name: &str) -> Vec<&'a str> {
    response
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

const HOSTILE: &str = "From: mallory@evil.test\r\nTo: alice@localhost\r\nSubject: hostile\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><head><meta http-equiv=\"refresh\" content=\"0;url=https://evil.test/\"><base href=\"https://evil.test/\"><style>body{background:url(https://evil.test/css.png)}</style></head>\
<body onload=\"alert(1)\"><script>alert(2)</script><p>Dear user</p><img src=x onerror=\"alert(3)\">\
<a href=\"javascript:alert(4)\">click</a><svg><script>alert(5)</script></svg>\
<div style=\"width:expression(alert(6))\">x</div><img src=\"https://evil.test/track.gif\">\
<iframe src=\"https://evil.test/\"></iframe><form action=\"https://evil.test/\"><input name=p></form>\
<<script>script>alert(7)<</script>/script></body></html>\r\n";

#[test]
fn the_webmail_is_safe_by_construction() {
    let server = Builder::default().start();
    server.add_user("alice@localhost", "alice-pw");
    server.add_user("bob@localhost", "bob-pw");
    server.submit("mallory@evil.test", &["alice@localhost"], HOSTILE);
    server.wait_for_mail("alice@localhost", 1);
    let alice = Browser::new(&server, "alice");

    // The login page: a login CSRF cookie with every safe attribute, a
    // strict CSP with no script at all.
    let (code, page) = alice.get("/login");
    assert_eq!(code, 200, "{page}");
    let cookie = header(&page, "set-cookie").join("\n");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let csp = header(&page, "content-security-policy").join(" ");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("script-src") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(header(&page, "x-content-type-options"), ["nosniff"]);

    // A login without the form's token is refused; a wrong password is 401.
    let (code, _) = alice.post(
        "/login",
        "user=alice@localhost&password=alice-pw&csrf=forged",
    );
    assert_eq!(code, 403);
    let (code, page) = alice.login("alice@localhost", "wrong");
    assert_eq!(code, 401, "{page}");
    assert!(page.contains("Wrong address or password"));
    assert!(server.wait_for_log(
        "webmail: auth failed, user=<alice@localhost>, rip=127.0.0.1",
        1
    ));

    let (code, page) = alice.login("alice@localhost", "alice-pw");
    assert_eq!(code, 303, "{page}");
    let session = header(&page, "set-cookie").join("\n");
    assert!(
        session.contains("__Host-merpati=")
            && session.contains("HttpOnly")
            && session.contains("Secure"),
        "{session}"
    );
    let (code, list) = alice.get("/mail?box=INBOX");
    assert_eq!(code, 200, "{list}");
    assert!(list.contains(">hostile<"), "{list}");
    let token = csrf(&list);

    // The hostile message: the page frames it sandboxed; the frame's HTML
    // has nothing that runs or loads, and its own CSP forbids both.
    let (code, view) = alice.get("/message?box=INBOX&uid=1");
    assert_eq!(code, 200, "{view}");
    assert!(
        view.contains(
            "<iframe class=\"html\" sandbox=\"allow-popups allow-popups-to-escape-sandbox\""
        ),
        "{view}"
    );
    assert!(view.contains("Remote images are blocked"), "{view}");
    let (code, frame) = alice.get("/message/html?box=INBOX&uid=1");
    assert_eq!(code, 200);
    let body = frame.to_ascii_lowercase();
    // What the message gave: the frame's own <head> aside.
    let body = body.split_once("<body>").map_or(body.as_str(), |(_, b)| b);
    assert!(body.contains("dear user"), "{body}");
    for bad in [
        "<script",
        "onload",
        "onerror",
        "javascript:",
        "expression(",
        "<meta",
        "evil.test",
        "<iframe",
        "<form",
    ] {
        assert!(!body.contains(bad), "{bad} in {body}");
    }
    let frame_csp = header(&frame, "content-security-policy").join(" ");
    assert!(
        frame_csp.contains("default-src 'none'") && frame_csp.contains("sandbox"),
        "{frame_csp}"
    );
    assert!(!frame_csp.contains("script"), "{frame_csp}");

    // State changes need the session's CSRF token.
    let (code, _) = alice.post("/mail/bulk", "box=INBOX&uid=1&action=delete&csrf=forged");
    assert_eq!(code, 403);
    assert_eq!(server.uids("alice@localhost"), vec![1], "nothing deleted");
    // After a form, only our own paths: no open redirect.
    let (code, page) = alice.post(
        "/mail/bulk",
        &format!("box=INBOX&uid=1&action=flag&csrf={token}&back=//evil.test/x"),
    );
    assert_eq!(code, 303);
    assert!(
        header(&page, "location")
            .iter()
            .all(|l| l.starts_with("/mail?box=INBOX")),
        "{page}"
    );

    // Another user's session cannot read alice's mail by guessing.
    let bob = Browser::new(&server, "bob");
    assert_eq!(bob.login("bob@localhost", "bob-pw").0, 303);
    let (_, bobs) = bob.get("/mail?box=INBOX");
    assert!(!bobs.contains("hostile"));

    // Logout ends the session on the server: the old cookie is dead.
    let stolen = std::fs::read_to_string(&alice.jar).expect("jar");
    let (code, _) = alice.post("/logout", &format!("csrf={token}"));
    assert_eq!(code, 303);
    std::fs::write(&alice.jar, stolen).expect("restore jar");
    let (code, page) = alice.get("/mail?box=INBOX");
    assert_eq!(code, 303, "{page}");
    assert_eq!(header(&page, "location"), ["/login"]);

    // The plain port sends the webmail to HTTPS.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!("http://127.0.0.1:{}/login", server.ports.http))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("301 https://"), "{text}");
}

#[test]
fn a_user_reads_and_writes_in_chromium() {
    let server = Builder::default()
        .queue("min_backoff = \"1h\"\nmax_backoff = \"2h\"")
        .start();
    server.add_user("alice@localhost", "alice-pw");
    server.add_user("bob@localhost", "bob-pw");
    server.cli_ok(&["user", "admin", "alice@localhost"]);
    // Mail for the postmaster to hold and release (no DNS: deferred).
    let stuck = server.submit(
        "alice@localhost",
        &["someone@example.com"],
        "From: alice@localhost\r\nTo: someone@example.com\r\nSubject: stuck\r\n\r\nWaiting.\r\n",
    );
    assert!(crate::harness::wait_until(
        std::time::Duration::from_secs(30),
        || { server.queues_holding(&stuck) == ["deferred"] }
    ));
    server.submit(
        "bob@localhost",
        &["alice@localhost"],
        "From: Bob <bob@localhost>\r\nTo: alice@localhost\r\nSubject: Lunch on Friday?\r\nMessage-ID: <lunch@localhost>\r\n\r\nShall we meet at noon?\r\n",
    );
    server.submit("spammer@junk.test", &["alice@localhost"], "From: spammer@junk.test\r\nTo: alice@localhost\r\nSubject: Cheap watches\r\n\r\nBuy now.\r\n");
    server.submit("mallory@evil.test", &["alice@localhost"], HOSTILE);
    // A tracking image pointing at a trap that counts connections.
    let trap = crate::harness::free_port();
    server.submit(
        "tracker@ads.test",
        &["alice@localhost"],
        &format!("From: tracker@ads.test\r\nTo: alice@localhost\r\nSubject: newsletter\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<p>Deals</p><img src=\"http://127.0.0.1:{trap}/pixel.gif\">\r\n"),
    );
    server.wait_for_mail("alice@localhost", 4);
    let shots = server.dir.path().join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshots dir");
    let upload = server.dir.path().join("report.bin");
    let bytes: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&upload, &bytes).expect("upload file");
    let out = system_python(
        include_str!("webmail_browser.py"),
        &[
            &format!("https://127.0.0.1:{}", server.ports.https),
            shots.to_str().expect("path"),
            upload.to_str().expect("path"),
            &trap.to_string(),
        ],
        b"",
    );
    assert_success(&out, "the Selenium session");
    // The reply reached bob, threaded, and so did the attachment, whole.
    let uids = server.wait_for_mail("bob@localhost", 2);
    let reply = server.message("bob@localhost", uids[0]);
    assert!(reply.contains("Subject: Re: Lunch on Friday?"), "{reply}");
    assert!(reply.contains("In-Reply-To: <lunch@localhost>"), "{reply}");
    assert!(reply.contains("Noon is good."), "{reply}");
    let with_file = server.message("bob@localhost", uids[1]);
    assert!(with_file.contains("filename=\"report.bin\""), "{with_file}");
    // Alice keeps copies in Sent; Cheap watches went to Junk and back.
    let sent = server.cli_ok(&["mailbox", "list", "alice@localhost", "Sent"]);
    assert_eq!(sent.lines().count(), 2, "{sent}");
    assert!(server.wait_for_log("spam: learnt 1 message(s) as spam for alice", 1));
    assert!(server.wait_for_log("spam: learnt 1 message(s) as ham for alice", 1));
    // The vacation set in the browser answers; the account added there
    // exists; the released message is out of hold.
    server.submit(
        "bob@localhost",
        &["alice@localhost"],
        "From: bob@localhost\r\nTo: alice@localhost\r\nSubject: Are you in?\r\n\r\nQuestion.\r\n",
    );
    let bobs = server.wait_for_mail("bob@localhost", 3);
    let vacation = server.message("bob@localhost", bobs[2]);
    assert!(
        vacation.contains("Subject: Out of office") && vacation.contains("Back on Monday."),
        "{vacation}"
    );
    assert!(server.cli_ok(&["user", "list"]).contains("dave\t"));
    assert!(!server.queues_holding(&stuck).contains(&"hold"));
    let pngs = std::fs::read_dir(&shots).expect("shots").count();
    assert!(pngs >= 4, "{pngs} screenshots");
    // `MERPATI_SCREENSHOTS=docs/screenshots cargo test a_user_reads` keeps
    // them (the README's pictures are made so).
    if let Ok(keep) = std::env::var("MERPATI_SCREENSHOTS") {
        for entry in std::fs::read_dir(&shots).expect("shots").flatten() {
            let _ = std::fs::copy(
                entry.path(),
                std::path::Path::new(&keep).join(entry.file_name()),
            );
        }
    }
}

#[test]
fn settings_write_the_users_sieve_script_and_change_the_password() {
    let server = Builder::default().start();
    server.add_user("alice@localhost", "alice-pw");
    server.add_user("bob@localhost", "bob-pw");
    let alice = Browser::new(&server, "alice");
    assert_eq!(alice.login("alice@localhost", "alice-pw").0, 303);
    let (code, page) = alice.get("/settings");
    assert_eq!(code, 200, "{page}");
    let token = csrf(&page);
    let (code, page) = alice.post(
        "/settings/filters",
        &format!("csrf={token}&action=vacation&vacation=on&vacation_subject=Away&vacation_body=Back+on+Monday.&vacation_days=7"),
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Saved"), "{page}");
    let (code, page) = alice.post(
        "/settings/filters",
        &format!("csrf={token}&action=add&field=subject&contains=%5Bnews%5D&rule_action=move&folder=Archive"),
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("fileinto &quot;Archive&quot;"), "{page}");
    // What ManageSieve sees is what the page wrote, and it is active.
    let scripts = server.cli_ok(&["sieve", "list", "alice@localhost"]);
    assert!(scripts.contains("webmail ACTIVE"), "{scripts}");

    server.submit(
        "bob@localhost",
        &["alice@localhost"],
        "From: bob@localhost\r\nTo: alice@localhost\r\nSubject: [news] weekly\r\n\r\nNews.\r\n",
    );
    server.submit("bob@localhost", &["alice@localhost"], "From: bob@localhost\r\nTo: alice@localhost\r\nSubject: Hello\r\nMessage-ID: <hello@localhost>\r\n\r\nAre you there?\r\n");
    let replies = server.wait_for_mail("bob@localhost", 1);
    let reply = server.message("bob@localhost", replies[0]);
    assert!(
        reply.contains("Subject: Away") && reply.contains("Back on Monday."),
        "{reply}"
    );
    let archive = server.cli_ok(&["mailbox", "list", "alice@localhost", "Archive"]);
    assert!(archive.contains("[news] weekly"), "{archive}");
    let inbox = server.cli_ok(&["mailbox", "list", "alice@localhost", "INBOX"]);
    assert!(
        inbox.contains("Hello") && !inbox.contains("[news]"),
        "{inbox}"
    );

    // A script edited by hand is compiled; an error is shown, with its place.
    let (code, page) = alice.post(
        "/settings/sieve",
        &format!("csrf={token}&script=if+true+%7B%0Akeep%3B"),
    );
    assert_eq!(code, 400, "{page}");
    assert!(
        page.contains("The script has an error") && page.contains("line"),
        "{page}"
    );

    // The password: the current one is asked for; then only the new works.
    let (code, page) = alice.post(
        "/settings/password",
        &format!("csrf={token}&current=wrong&new=new-secret-1&again=new-secret-1"),
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("The current password is wrong"), "{page}");
    let (code, _) = alice.post(
        "/settings/password",
        &format!("csrf={token}&current=alice-pw&new=new-secret-1&again=new-secret-1"),
    );
    assert_eq!(code, 303);
    let (code, _) = alice.get("/settings");
    assert_eq!(code, 200, "this session goes on");
    let other = Browser::new(&server, "other");
    assert_eq!(other.login("alice@localhost", "alice-pw").0, 401);
    assert_eq!(other.login("alice@localhost", "new-secret-1").0, 303);
}

#[test]
fn the_postmaster_manages_accounts_and_the_queue_from_admin() {
    let server = Builder::default()
        .queue("min_backoff = \"1h\"\nmax_backoff = \"2h\"")
        .start();
    server.add_user("alice@localhost", "alice-pw");
    server.add_user("bob@localhost", "bob-pw");
    let made = server.cli_ok(&["user", "admin", "alice@localhost"]);
    assert!(made.contains("may use the web administration"), "{made}");
    assert!(
        server
            .cli_ok(&["user", "list"])
            .contains("alice\tused=0\tquota=unlimited (admin)")
    );

    // Not for other users.
    let bob = Browser::new(&server, "bob");
    assert_eq!(bob.login("bob@localhost", "bob-pw").0, 303);
    for path in ["/admin", "/admin/accounts", "/admin/queue", "/admin/dns"] {
        assert_eq!(bob.get(path).0, 403, "{path}");
    }

    let alice = Browser::new(&server, "alice");
    assert_eq!(alice.login("alice@localhost", "alice-pw").0, 303);
    let (code, page) = alice.get("/admin");
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("<svg class=\"chart\"") && page.contains("Messages per minute"),
        "{page}"
    );
    let token = csrf(&page);

    // Accounts: add carol, who can log in; bob's password changed.
    let (code, page) = alice.post(
        "/admin/accounts",
        &format!(
            "csrf={token}&action=add&address=carol%40localhost&password=carol-pw-1&quota=10MiB"
        ),
    );
    assert_eq!(code, 303, "{page}");
    let (_, page) = alice.get("/admin/accounts");
    assert!(
        page.contains("<td>carol</td>") && page.contains("10.0 MB"),
        "{page}"
    );
    assert_eq!(
        Browser::new(&server, "carol")
            .login("carol@localhost", "carol-pw-1")
            .0,
        303
    );
    let (code, _) = alice.post(
        "/admin/accounts",
        &format!("csrf={token}&action=password&address=bob%40localhost&password=bob-new-pw"),
    );
    assert_eq!(code, 303);
    assert_eq!(bob.get("/mail?box=INBOX").0, 303, "bob's sessions ended");
    assert_eq!(
        Browser::new(&server, "bob2")
            .login("bob@localhost", "bob-new-pw")
            .0,
        303
    );
    // Without the token nothing happens.
    let (code, _) = alice.post(
        "/admin/accounts",
        "csrf=forged&action=delete&address=carol%40localhost",
    );
    assert_eq!(code, 403);

    // The queue: a deferred message held, looked at, released, deleted.
    let id = server.submit(
        "alice@localhost",
        &["someone@example.com"],
        "From: alice@localhost\r\nTo: someone@example.com\r\nSubject: stuck\r\n\r\nWaiting for DNS.\r\n",
    );
    assert!(crate::harness::wait_until(
        std::time::Duration::from_secs(30),
        || { server.queues_holding(&id) == ["deferred"] }
    ));
    let (_, page) = alice.get("/admin/queue");
    assert!(
        page.contains(&id) && page.contains("someone@example.com"),
        "{page}"
    );
    let (code, _) = alice.post("/admin/queue", &format!("csrf={token}&action=hold&id={id}"));
    assert_eq!(code, 303);
    assert_eq!(server.queues_holding(&id), ["hold"]);
    let (code, page) = alice.get(&format!("/admin/queue/message?id={id}"));
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("Waiting for DNS.") && page.contains("In hold"),
        "{page}"
    );
    let (code, _) = alice.post(
        "/admin/queue",
        &format!("csrf={token}&action=release&id={id}"),
    );
    assert_eq!(code, 303);
    // Released means tried again at once: deferred a second time.
    assert!(server.wait_for_log("status=deferred", 2));
    assert!(crate::harness::wait_until(
        std::time::Duration::from_secs(30),
        || server.queues_holding(&id) == ["deferred"]
    ));
    let (code, _) = alice.post(
        "/admin/queue",
        &format!("csrf={token}&action=delete&id={id}"),
    );
    assert_eq!(code, 303);
    assert!(crate::harness::wait_until(
        std::time::Duration::from_secs(30),
        || { server.queues_holding(&id).is_empty() }
    ));
    let (code, page) = alice.get("/admin/dns");
    assert_eq!(code, 200, "{page}");

    // Aliases: a broken file is refused with its problem; a good one is
    // in use at once.
    let (code, page) = alice.post(
        "/admin/aliases",
        &format!("csrf={token}&aliases=sales+bob%40localhost"),
    );
    assert_eq!(code, 200);
    assert!(
        page.contains("missing &#x27;:&#x27;") || page.contains("missing ':'"),
        "{page}"
    );
    let (code, _) = alice.post(
        "/admin/aliases",
        &format!("csrf={token}&aliases=sales%3A+bob%40localhost%0A"),
    );
    assert_eq!(code, 303);
    let (_, page) = alice.get("/admin/aliases");
    assert!(page.contains("sales: bob@localhost"), "{page}");
    server.submit(
        "carol@localhost",
        &["sales@localhost"],
        "From: carol@localhost\r\nTo: sales@localhost\r\nSubject: an order\r\n\r\nTen boxes.\r\n",
    );
    let uids = server.wait_for_mail("bob@localhost", 1);
    assert!(
        server
            .message("bob@localhost", uids[0])
            .contains("Subject: an order")
    );
}

#[test]
fn the_address_book_imports_exports_and_writes_to_groups() {
    let server = Builder::default().start();
    server.add_user("alice@localhost", "alice-pw");
    server.add_user("bob@localhost", "bob-pw");
    server.add_user("carol@localhost", "carol-pw");
    let alice = Browser::new(&server, "alice");
    assert_eq!(alice.login("alice@localhost", "alice-pw").0, 303);
    let (_, page) = alice.get("/contacts");
    let token = csrf(&page);
    let vcf = server.dir.path().join("team.vcf");
    std::fs::write(
        &vcf,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bob Budiman\r\nEMAIL:bob@localhost\r\nCATEGORIES:Team\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nFN:Carol\r\nEMAIL:carol@localhost\r\nCATEGORIES:Team\r\nEND:VCARD\r\n",
    )
    .expect("vcf");
    let (code, page) = alice.request(
        "/contacts",
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            "action=import",
            "-F",
            &format!("vcard=@{}", vcf.display()),
        ],
    );
    assert_eq!(code, 303, "{page}");
    assert!(page.contains("2+of+2+contacts+imported"), "{page}");
    let (code, _) = alice.request(
        "/contacts",
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            "action=add",
            "-F",
            "name=Dina",
            "-F",
            "email=dina@example.org",
            "-F",
            "groups=Friends",
        ],
    );
    assert_eq!(code, 303);
    let (_, page) = alice.get("/contacts?group=Team");
    assert!(
        page.contains("Bob Budiman") && page.contains("carol@localhost") && !page.contains("Dina"),
        "{page}"
    );
    let (code, vcards) = alice.get("/contacts/export.vcf");
    assert_eq!(code, 200);
    assert!(
        vcards.contains("text/vcard")
            && vcards.contains("FN:Dina\r\nEMAIL:dina@example.org\r\nCATEGORIES:Friends"),
        "{vcards}"
    );
    // Compose offers them, and a group name stands for its members.
    let (_, compose) = alice.get("/compose");
    assert!(
        compose.contains("<option value=\"Bob Budiman &lt;bob@localhost&gt;\">"),
        "{compose}"
    );
    assert!(compose.contains("<option value=\"Team\">"), "{compose}");
    let (code, page) = alice.request(
        "/compose",
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            "from=alice@localhost",
            "-F",
            "to=Team",
            "-F",
            "subject=Team meeting",
            "-F",
            "body=At ten.",
            "-F",
            "action=send",
        ],
    );
    assert_eq!(code, 303, "{page}");
    for who in ["bob@localhost", "carol@localhost"] {
        let uids = server.wait_for_mail(who, 1);
        assert!(
            server
                .message(who, uids[0])
                .contains("Subject: Team meeting")
        );
    }
}

#[test]
fn folders_drafts_signature_lists_and_idle_sessions() {
    let server = Builder::default()
        .tail("[webmail]\nsession_idle = \"2s\"")
        .start();
    server.add_user("alice@localhost", "alice-pw");
    server.add_user("bob@localhost", "bob-pw");
    let alice = Browser::new(&server, "alice");
    assert_eq!(alice.login("alice@localhost", "alice-pw").0, 303);
    let (_, page) = alice.get("/folders");
    let token = csrf(&page);

    // Folders: made (subscribed, so IMAP lists it), renamed, deleted.
    let (code, page) = alice.post(
        "/folders",
        &format!("csrf={token}&action=create&name=2026&parent=Archive"),
    );
    assert_eq!(code, 303, "{page}");
    assert!(page.contains("Archive%2F2026+created"), "{page}");
    let (code, _) = alice.post(
        "/folders",
        &format!("csrf={token}&action=rename&name=Archive%2F2026&to=Projects"),
    );
    assert_eq!(code, 303);
    let (_, page) = alice.get("/folders");
    assert!(
        page.contains(">Projects<") && !page.contains("Archive/2026"),
        "{page}"
    );
    let (code, _) = alice.post(
        "/folders",
        &format!("csrf={token}&action=delete&name=Projects"),
    );
    assert_eq!(code, 303);
    let (_, page) = alice.get("/folders");
    assert!(!page.contains(">Projects<"), "{page}");

    // A signature goes under new messages.
    let (code, _) = alice.post(
        "/settings/identity",
        &format!("csrf={token}&action=signature&signature=Alice+from+Finance"),
    );
    assert_eq!(code, 200);
    let (_, compose) = alice.get("/compose");
    assert!(compose.contains("-- \nAlice from Finance"), "{compose}");
    // An address the account does not own is refused as an identity.
    let (_, page) = alice.post(
        "/settings/identity",
        &format!("csrf={token}&action=add&address=bob%40localhost"),
    );
    assert!(page.contains("is not one of your addresses"), "{page}");

    // Allow and block lists are the spam filter's own.
    let (code, page) = alice.post(
        "/settings/lists",
        &format!("csrf={token}&action=block&entry=spam.example"),
    );
    assert_eq!(code, 200, "{page}");
    let lists = server.cli_ok(&["spam", "show", "alice@localhost"]);
    assert!(lists.contains("spam.example"), "{lists}");

    // A draft saved (with an attachment), then finished and sent: the
    // attachment goes along and the draft leaves Drafts.
    let notes = server.dir.path().join("notes.txt");
    std::fs::write(&notes, "kept from the draft").expect("notes");
    let (code, _) = alice.request(
        "/compose",
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            "from=alice@localhost",
            "-F",
            "to=bob@localhost",
            "-F",
            "subject=Plan",
            "-F",
            "body=First thoughts",
            "-F",
            &format!("attachment=@{}", notes.display()),
            "-F",
            "action=draft",
        ],
    );
    assert_eq!(code, 303);
    let drafts = server.cli_ok(&["mailbox", "list", "alice@localhost", "Drafts"]);
    let uid = drafts.split('\t').next().unwrap_or_default().to_string();
    assert!(drafts.contains("Plan"), "{drafts}");
    let (_, page) = alice.get(&format!("/compose?draft={uid}"));
    assert!(
        page.contains("First thoughts") && page.contains("name=\"draft_uid\""),
        "{page}"
    );
    assert!(
        page.contains("Attachments of the draft, which go along: notes.txt"),
        "{page}"
    );
    let (code, _) = alice.request(
        "/compose",
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            "from=alice@localhost",
            "-F",
            "to=bob@localhost",
            "-F",
            "subject=Plan",
            "-F",
            "body=Final plan",
            "-F",
            &format!("draft_uid={uid}"),
            "-F",
            "action=send",
        ],
    );
    assert_eq!(code, 303);
    let got = server.wait_for_mail("bob@localhost", 1);
    let sent = server.message("bob@localhost", got[0]);
    assert!(
        sent.contains("Final plan") && sent.contains("notes.txt"),
        "{sent}"
    );
    let (_, page) = alice.get("/mail?box=INBOX");
    assert!(!page.contains("Attachments of the draft"), "{page}");
    let drafts = server.cli_ok(&["mailbox", "list", "alice@localhost", "Drafts"]);
    assert!(drafts.trim().is_empty(), "{drafts}");

    // The rich-text mode: an HTML alternative made from the marks.
    let (code, _) = alice.request(
        "/compose",
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            "from=alice@localhost",
            "-F",
            "to=bob@localhost",
            "-F",
            "subject=Formatted",
            "-F",
            "body=Very **important**",
            "-F",
            "formatted=on",
            "-F",
            "action=send",
        ],
    );
    assert_eq!(code, 303);
    let got = server.wait_for_mail("bob@localhost", 2);
    let formatted = server.message("bob@localhost", got[1]);
    assert!(
        formatted.contains("multipart/alternative")
            && formatted.contains("<strong>important</strong>"),
        "{formatted}"
    );

    // Unused for longer than session_idle: the session is over.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (code, page) = alice.get("/mail?box=INBOX");
    assert_eq!(code, 303, "{page}");
}
