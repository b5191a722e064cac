//! Postfix's SMTP restrictions under their own names (issue 9): client,
//! HELO, sender, relay and recipient lists, access tables in Postfix's own
//! file formats, a DNS blocklist and reverse DNS served by the loopback
//! DNS server, HOLD into the hold queue, and the real postgrey as a
//! check_policy_service. Clients connect from 127.0.0.x addresses outside
//! `mynetworks = ["127.0.0.1/32"]`.
//!
//! Reverse DNS of 127/8 never reaches a DNS server: hickory answers it
//! itself (`localhost`, RFC 6761), so every 127.0.0.x client has the PTR
//! name `localhost`, which does not resolve back to it: `client_name` is
//! `unknown`. The forward-confirmation logic itself is unit-tested in
//! `policy::peer`.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::{Builder, Server, Smtp, free_port, wait_until};
use std::net::Ipv4Addr;
use std::time::Duration;

const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const UNNAMED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3); // must have a name
const LISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5); // in zen.test
const BANNED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6); // in the cidr table

struct World {
    _dns: DnsServer,
    _tables: tempfile::TempDir,
    server: Server,
}

fn txt(owner: &str, value: &str) -> Rr {
    Rr::Txt(owner.to_string(), value.to_string())
}

fn world() -> World {
    let dns = DnsServer::start(
        &["test.", "zen.test."],
        vec![
            Rr::A("5.0.0.127.zen.test.", Ipv4Addr::new(127, 0, 0, 4)),
            txt(
                "5.0.0.127.zen.test.",
                "Listed for testing, see https://zen.test/5",
            ),
            Rr::A("ok.test.", Ipv4Addr::new(192, 0, 2, 1)),
            Rr::A("spammer.test.", Ipv4Addr::new(192, 0, 2, 2)),
        ],
    );
    let tables = tempfile::tempdir().expect("tempdir");
    let cidr = tables.path().join("clients.cidr");
    std::fs::write(
        &cidr,
        "# Postfix cidr_table(5)\n127.0.0.6/32   REJECT go away\n127.0.0.3/32   reject_unknown_client_hostname\n",
    )
    .expect("cidr");
    // A postmap source file, read as it is (no .db needed).
    let senders = tables.path().join("sender_access");
    std::fs::write(
        &senders,
        "spammer.test      REJECT no spam from you\nhold@ok.test      HOLD held by the test\ntag@ok.test       PREPEND X-Tagged: yes\ndrop@ok.test      DISCARD\n",
    )
    .expect("senders");
    let restrictions = format!(
        "[restrictions]\n\
         smtpd_client_restrictions = [\"check_client_access cidr:{}\", \"reject_rbl_client zen.test=127.0.0.[2..11]\"]\n\
         smtpd_helo_restrictions = [\"reject_invalid_helo_hostname\", \"reject_non_fqdn_helo_hostname\"]\n\
         smtpd_sender_restrictions = [\"reject_non_fqdn_sender\", \"reject_unknown_sender_domain\", \"check_sender_access hash:{}\"]\n",
        cidr.display(),
        senders.display()
    );
    let server = Builder::default()
        .top("mydestination = [\"ours.test\", \"localhost\"]\nmynetworks = [\"127.0.0.1/32\"]")
        .smtp("greet_pause = \"0s\"")
        .dns(&dns.config())
        .mailauth("verify = false\ngenerate_keys = false")
        .tail(&restrictions)
        .start();
    server.add_user("bob@ours.test", "bob-pw");
    World {
        _dns: dns,
        _tables: tables,
        server,
    }
}

impl World {
    /// EHLO and MAIL FROM from `source`; the RCPT reply for bob.
    fn rcpt(&self, source: Ipv4Addr, helo: &str, sender: &str) -> String {
        let mut c = Smtp::connect_from(self.server.port, source);
        assert!(c.reply().starts_with("220"));
        assert!(c.cmd(&format!("EHLO {helo}")).starts_with("250"));
        let mail = c.cmd(&format!("MAIL FROM:<{sender}>"));
        assert!(mail.starts_with("250"), "{mail}");
        let reply = c.cmd("RCPT TO:<bob@ours.test>");
        c.cmd("QUIT");
        reply
    }

    /// A whole message from a good client; the final reply.
    fn send(&self, sender: &str, subject: &str) -> String {
        let mut c = Smtp::connect_from(self.server.port, GOOD);
        assert!(c.reply().starts_with("220"));
        assert!(c.cmd("EHLO mx.good.test").starts_with("250"));
        let reply = c.send_mail(
            sender,
            &["bob@ours.test"],
            &format!("Subject: {subject}\r\n\r\nhello\r\n"),
        );
        c.cmd("QUIT");
        reply
    }
}

#[test]
fn client_helo_and_sender_restrictions_refuse_with_postfix_replies() {
    let w = world();
    // A verified name, a good HELO, a sender domain that exists: accepted.
    assert!(w.rcpt(GOOD, "mx.good.test", "a@ok.test").starts_with("250"));
    // DNSBL, with the zone's reason.
    let reply = w.rcpt(LISTED, "x.ok.test", "a@ok.test");
    assert_eq!(
        reply.trim_end(),
        "554 5.7.1 Service unavailable; Client host [127.0.0.5] blocked using zen.test; Listed for testing, see https://zen.test/5"
    );
    // cidr table.
    let reply = w.rcpt(BANNED, "x.ok.test", "a@ok.test");
    assert!(
        reply.starts_with("554 5.7.1 <unknown[127.0.0.6]>: Client host rejected: go away"),
        "{reply}"
    );
    // A restriction named in a table result: the client has no
    // forward-confirmed name.
    let reply = w.rcpt(UNNAMED, "x.ok.test", "a@ok.test");
    assert!(
        reply
            .starts_with("450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.3]"),
        "{reply}"
    );
    // HELO.
    let reply = w.rcpt(GOOD, "localhost", "a@ok.test");
    assert!(
        reply.starts_with(
            "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"
        ),
        "{reply}"
    );
    let reply = w.rcpt(GOOD, "bad_name!.test", "a@ok.test");
    assert!(
        reply.starts_with("501 5.5.2 <bad_name!.test>: Helo command rejected: Invalid name"),
        "{reply}"
    );
    // Sender.
    let reply = w.rcpt(GOOD, "mx.good.test", "a@nowhere.test");
    assert!(
        reply.starts_with("450 4.1.8 <a@nowhere.test>: Sender address rejected: Domain not found"),
        "{reply}"
    );
    let reply = w.rcpt(GOOD, "mx.good.test", "x@spammer.test");
    assert!(
        reply.starts_with("554 5.7.1 <x@spammer.test>: Sender address rejected: no spam from you"),
        "{reply}"
    );
    // Relay: Postfix 3's default defer_unauth_destination.
    let mut c = Smtp::connect_from(w.server.port, GOOD);
    c.reply();
    c.cmd("EHLO mx.good.test");
    c.cmd("MAIL FROM:<a@ok.test>");
    let reply = c.cmd("RCPT TO:<x@elsewhere.test>");
    assert!(
        reply.starts_with("454 4.7.1 <x@elsewhere.test>: Relay access denied"),
        "{reply}"
    );
    // The log has Postfix's lines.
    let log = w.server.log();
    assert!(log.contains("connect from unknown[127.0.0.2]"), "{log}");
    assert!(
        log.contains(
            "NOQUEUE: reject: RCPT from unknown[127.0.0.5]: 554 5.7.1 Service unavailable"
        ),
        "{log}"
    );
}

#[test]
fn hold_prepend_and_discard_actions_apply_to_the_message() {
    let w = world();
    let s = &w.server;
    // PREPEND: delivered with the header on top.
    assert!(w.send("tag@ok.test", "tagged").starts_with("250"));
    let uids = s.wait_for_mail("bob@ours.test", 1);
    let message = s.message("bob@ours.test", uids[0]);
    assert!(message.contains("X-Tagged: yes\r\n"), "{message}");
    assert!(message.contains("(unknown [127.0.0.2])"), "{message}");
    // DISCARD: the client is told 250, nothing is delivered.
    let reply = w.send("drop@ok.test", "dropped");
    assert!(reply.starts_with("250"), "{reply}");
    // HOLD: into the hold queue, with the reason in the listing.
    let reply = w.send("hold@ok.test", "held");
    assert!(reply.starts_with("250"), "{reply}");
    let id = crate::harness::queue_id(&reply);
    assert!(
        wait_until(Duration::from_secs(20), || s.queues_holding(&id)
            == ["hold"]),
        "{:?}\n{}",
        s.queues_holding(&id),
        s.log()
    );
    let list = s.queue_list();
    assert!(list.contains(&format!("{id}!")), "{list}");
    assert!(list.contains("(held: held by the test)"), "{list}");
    // Not delivered while held; delivered once released.
    assert_eq!(s.uids("bob@ours.test").len(), 1);
    s.cli_ok(&["queue", "release", &id]);
    let uids = s.wait_for_mail("bob@ours.test", 2);
    let held = s.message("bob@ours.test", uids[1]);
    assert!(held.contains("Subject: held"), "{held}");
    assert!(!s.log().contains("Subject: dropped"));
    assert_eq!(s.uids("bob@ours.test").len(), 2);
}

#[test]
fn a_broken_table_refuses_the_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.pcre");
    std::fs::write(&bad, "/unclosed REJECT\n").expect("write");
    let config = dir.path().join("merpati.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nmyhostname = \"mx.ours.test\"\n[restrictions]\nsmtpd_sender_restrictions = [\"check_sender_access pcre:{}\"]\nsmtpd_recipient_restrictions = [\"permit_everything\"]\n",
            dir.path().join("data").display(),
            bad.display()
        ),
    )
    .expect("config");
    let out = crate::harness::run_cli(&config, &["check-config"], b"");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.pcre:1: pattern not closed"), "{text}");
    assert!(
        text.contains("unknown restriction `permit_everything`"),
        "{text}"
    );
}

/// postgrey (Debian's package) as a check_policy_service: the first
/// attempt is greylisted, the retry after the delay is accepted; with the
/// policy server gone, mail is deferred, never accepted unchecked.
#[test]
fn postgrey_greylists_through_check_policy_service() {
    let db = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut postgrey = std::process::Command::new("postgrey")
        .args([
            &format!("--inet=127.0.0.1:{port}"),
            &format!("--dbdir={}", db.path().display()),
            "--delay=2",
            "--user=root",
            "--group=root",
            "--whitelist-clients=/dev/null",
            "--whitelist-recipients=/dev/null",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("postgrey (Debian package postgrey) is required");
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "postgrey did not start"
    );
    let server = Builder::default()
        .top("mydestination = [\"ours.test\", \"localhost\"]\nmynetworks = [\"127.0.0.1/32\"]")
        .smtp("greet_pause = \"0s\"")
        .mailauth("verify = false\ngenerate_keys = false")
        .tail(&format!(
            "[restrictions]\nsmtpd_recipient_restrictions = [\"check_policy_service inet:127.0.0.1:{port}\"]\nsmtpd_policy_service_timeout = \"5s\"\nsmtpd_peername_lookup = false\n"
        ))
        .start();
    server.add_user("bob@ours.test", "bob-pw");
    let attempt = || {
        let mut c = Smtp::connect_from(server.port, GOOD);
        c.reply();
        c.cmd("EHLO mx.good.test");
        c.cmd("MAIL FROM:<alice@ok.test>");
        let reply = c.cmd("RCPT TO:<bob@ours.test>");
        c.cmd("QUIT");
        reply
    };
    let first = attempt();
    assert!(
        first.starts_with("450 4.7.1 <bob@ours.test>: Recipient address rejected: Greylisted"),
        "{first}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let retry = attempt();
    assert!(retry.starts_with("250"), "{retry}");
    let _ = postgrey.kill();
    let _ = postgrey.wait();
    let down = attempt();
    assert!(
        down.starts_with(
            "451 4.3.5 <bob@ours.test>: Recipient address rejected: Server configuration problem"
        ),
        "{down}"
    );
}

/// postscreen's weighted DNS list test before the greeting: listed
/// clients get 550 at every RCPT (`enforce`), others pass and are
/// remembered (`PASS NEW`, then `PASS OLD` without new lookups).
#[test]
fn postscreen_scores_dns_lists_and_caches_the_result() {
    let dns = DnsServer::start(
        &["test.", "zen.test.", "extra.test."],
        vec![
            Rr::A("5.0.0.127.zen.test.", Ipv4Addr::new(127, 0, 0, 2)),
            Rr::A("5.0.0.127.extra.test.", Ipv4Addr::new(127, 0, 0, 2)),
            Rr::A("2.0.0.127.extra.test.", Ipv4Addr::new(127, 0, 0, 2)),
        ],
    );
    let server = Builder::default()
        .top("mydestination = [\"ours.test\", \"localhost\"]\nmynetworks = [\"127.0.0.1/32\"]")
        .smtp("greet_pause = \"0s\"")
        .dns(&dns.config())
        .mailauth("verify = false\ngenerate_keys = false")
        .tail("[postscreen]\npostscreen_dnsbl_sites = [\"zen.test*2\", \"extra.test*1\"]\npostscreen_dnsbl_threshold = 3\n")
        .start();
    server.add_user("bob@ours.test", "bob-pw");
    let rcpt = |source: Ipv4Addr| {
        let mut c = Smtp::connect_from(server.port, source);
        assert!(c.reply().starts_with("220"));
        assert!(c.cmd("EHLO client.ok.test").starts_with("250"));
        assert!(c.cmd("MAIL FROM:<a@ok.test>").starts_with("250"));
        let reply = c.cmd("RCPT TO:<bob@ours.test>");
        c.cmd("QUIT");
        reply
    };
    // 2 + 1 reaches the threshold of 3.
    let reply = rcpt(LISTED);
    assert!(
        reply.starts_with(
            "550 5.7.1 Service unavailable; client [127.0.0.5] blocked using zen.test"
        ),
        "{reply}"
    );
    // Listed by one zone only (weight 1): passes.
    assert!(rcpt(GOOD).starts_with("250"));
    assert!(rcpt(GOOD).starts_with("250"));
    let log = server.log();
    assert!(log.contains("DNSBL rank 3 for [127.0.0.5]:"), "{log}");
    assert!(log.contains("PASS NEW [127.0.0.2]:"), "{log}");
    assert!(log.contains("PASS OLD [127.0.0.2]:"), "{log}");
    // mynetworks is never screened.
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO localhost");
    c.cmd("MAIL FROM:<a@ok.test>");
    assert!(c.cmd("RCPT TO:<bob@ours.test>").starts_with("250"));
}
