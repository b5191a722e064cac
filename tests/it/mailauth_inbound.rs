//! Inbound mail authentication end to end: messages signed by dkimpy (an
//! independent DKIM implementation) and sent over port 25 from a client
//! outside mynetworks, SPF and DMARC records served by the loopback DNS
//! server; the verdict read back from the delivered message's
//! Authentication-Results, the SMTP reply, or the Junk mailbox.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::*;
use std::path::Path;

const DKIMPY: &str = include_str!("dkimpy.py");
const AUTHSERV: &str = "mx.ours.test";

/// A DKIM key pair made by dkimpy's `dknewkey` (openssl underneath).
struct Key {
    private: std::path::PathBuf,
    /// The TXT record value (`v=DKIM1; k=...; p=...`).
    record: String,
}

fn dknewkey(dir: &Path, name: &str, ktype: &str) -> Key {
    let out = std::process::Command::new("dknewkey")
        .current_dir(dir)
        .args(["--ktype", ktype, name])
        .output()
        .expect("dknewkey (python3-dkim) is required");
    assert_success(&out, "dknewkey");
    let dns = std::fs::read_to_string(dir.join(format!("{name}.dns"))).expect("dns file");
    // `name._domainkey IN TXT ( "v=DKIM1; ..." )` or the bare record.
    let record = match (dns.find('"'), dns.rfind('"')) {
        (Some(a), Some(b)) if a < b => dns[a + 1..b].replace("\" \"", ""),
        _ => dns.trim().to_string(),
    };
    Key {
        private: dir.join(format!("{name}.key")),
        record,
    }
}

fn sign(
    message: &str,
    algo: &str,
    selector: &str,
    domain: &str,
    key: &Key,
    expired: bool,
) -> String {
    let mut args = vec![
        "sign",
        algo,
        selector,
        domain,
        key.private.to_str().expect("path"),
    ];
    if expired {
        args.push("expired");
    }
    let out = system_python(DKIMPY, &args, message.as_bytes());
    assert_success(&out, "dkimpy sign");
    String::from_utf8(out.stdout).expect("utf-8")
}

struct World {
    _keys: tempfile::TempDir,
    rsa: Key,
    ed: Key,
    _dns: DnsServer,
    server: Server,
}

fn txt(owner: &str, value: &str) -> Rr {
    Rr::Txt(owner.to_string(), value.to_string())
}

/// The sender side's DNS and one Merpati that trusts no client (so
/// loopback mail is checked as mail from the internet).
fn world() -> World {
    let keys = tempfile::tempdir().expect("tempdir");
    let rsa = dknewkey(keys.path(), "rsa", "rsa");
    let ed = dknewkey(keys.path(), "ed", "ed25519");
    let mut records = vec![
        txt("sender.test.", "v=spf1 ip4:127.0.0.1 -all"),
        txt("_dmarc.sender.test.", "v=DMARC1; p=reject"),
        txt("rsa._domainkey.sender.test.", &rsa.record),
        txt("ed._domainkey.sender.test.", &ed.record),
        txt("_dmarc.monitor.test.", "v=DMARC1; p=none"),
        txt("rsa._domainkey.monitor.test.", &rsa.record),
        txt("fail.test.", "v=spf1 -all"),
        txt("softfail.test.", "v=spf1 ~all"),
        txt("neutral.test.", "v=spf1 ?all"),
        txt(
            "perm.test.",
            "v=spf1 a:a1.perm.test a:a2.perm.test a:a3.perm.test a:a4.perm.test a:a5.perm.test a:a6.perm.test a:a7.perm.test a:a8.perm.test a:a9.perm.test a:a10.perm.test a:a11.perm.test -all",
        ),
        txt("relaxed.test.", "v=spf1 -all"),
        txt("mail.relaxed.test.", "v=spf1 ip4:127.0.0.1 -all"),
        txt("_dmarc.relaxed.test.", "v=DMARC1; p=reject; aspf=r"),
        txt("strict.test.", "v=spf1 -all"),
        txt("mail.strict.test.", "v=spf1 ip4:127.0.0.1 -all"),
        txt("_dmarc.strict.test.", "v=DMARC1; p=reject; aspf=s"),
        txt("quar.test.", "v=spf1 -all"),
        txt("_dmarc.quar.test.", "v=DMARC1; p=quarantine"),
        txt("other.test.", "v=spf1 ip4:127.0.0.1 -all"),
        // DMARC p=reject whose SPF cannot be decided (its include is not
        // served: a temporary error) and no DKIM: retry, never reject.
        txt("tempspf.test.", "v=spf1 include:broken.tempspf.test -all"),
        txt("_dmarc.tempspf.test.", "v=DMARC1; p=reject"),
        Rr::ServFail("broken.tempspf.test."),
        // Names that do not exist before the match: two are allowed, the
        // third is one void lookup too many (RFC 7208 §4.6.4).
        txt(
            "void2.test.",
            "v=spf1 a:v1.void2.test mx:v2.void2.test ip4:127.0.0.1 -all",
        ),
        txt(
            "void3.test.",
            "v=spf1 a:v1.void3.test mx:v2.void3.test exists:v3.void3.test ip4:127.0.0.1 -all",
        ),
        Rr::ServFail("broken._domainkey.sender.test."),
    ];
    records.push(Rr::A(
        "a1.perm.test.",
        std::net::Ipv4Addr::new(192, 0, 2, 1),
    ));
    // `none.test` exists with no TXT at all; `temp.test` is not served
    // (the server answers REFUSED: a temporary error). `temp.invalid` is
    // outside every zone served: REFUSED, a temporary error.
    records.push(Rr::A("none.test.", std::net::Ipv4Addr::new(192, 0, 2, 1)));
    let dns = DnsServer::start(
        &[
            // The parent, so that names nobody defined are NXDOMAIN (as
            // the real root would answer), not REFUSED.
            "test.",
            "sender.test.",
            "monitor.test.",
            "fail.test.",
            "softfail.test.",
            "neutral.test.",
            "perm.test.",
            "relaxed.test.",
            "strict.test.",
            "quar.test.",
            "other.test.",
            "none.test.",
            "tempspf.test.",
        ],
        records,
    );
    let server = Builder::default()
        .top("mydestination = [\"ours.test\", \"localhost\"]\nmynetworks = []")
        .dns(&dns.config())
        .mailauth(&format!("authserv_id = \"{AUTHSERV}\""))
        .start();
    server.add_user("bob@ours.test", "bob-pw");
    World {
        _keys: keys,
        rsa,
        ed,
        _dns: dns,
        server,
    }
}

fn message(from: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: bob@ours.test\r\nSubject: {subject}\r\nDate: Wed, 2 Dec 2026 08:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n\r\nHello Bob,\r\nthis is {subject}.\r\n"
    )
}

/// Sends over port 25 with EHLO `helo`; the final reply.
fn send(server: &Server, helo: &str, mail_from: &str, data: &str) -> String {
    let mut smtp = server.connect();
    smtp.reply();
    assert!(smtp.cmd(&format!("EHLO {helo}")).starts_with("250"));
    assert!(
        smtp.cmd(&format!("MAIL FROM:<{mail_from}>"))
            .starts_with("250")
    );
    let rcpt = smtp.cmd("RCPT TO:<bob@ours.test>");
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(smtp.cmd("DATA").starts_with("354"));
    let mut body = data.replace("\r\n.", "\r\n..");
    if !body.ends_with("\r\n") {
        body.push_str("\r\n");
    }
    smtp.send_raw(body.as_bytes());
    let reply = smtp.cmd(".");
    smtp.cmd("QUIT");
    reply
}

/// The delivered message whose Subject is `subject`, from `mailbox`.
fn delivered(server: &Server, mailbox: &str, subject: &str) -> String {
    let mut found = None;
    wait_until(std::time::Duration::from_secs(20), || {
        let list = server.cli_ok(&["mailbox", "list", "bob@ours.test", mailbox]);
        found = list
            .lines()
            .find(|l| l.contains(subject))
            .and_then(|l| l.split('\t').next()?.parse::<u32>().ok());
        found.is_some()
    });
    let uid = found.unwrap_or_else(|| panic!("{subject} not delivered to {mailbox}"));
    server.cli_ok(&["mailbox", "cat", "bob@ours.test", &uid.to_string(), mailbox])
}

/// Our Authentication-Results field, unfolded.
fn results(message: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in message.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if inside {
                out.push(' ');
                out.push_str(line.trim());
            }
            continue;
        }
        inside = line.starts_with(&format!("Authentication-Results: {AUTHSERV}"));
        if inside {
            assert!(
                out.is_empty(),
                "more than one of our Authentication-Results:\n{message}"
            );
            out.push_str(line);
        }
    }
    assert!(
        !out.is_empty(),
        "no Authentication-Results of ours:\n{message}"
    );
    out
}

#[test]
fn dkimpy_signatures_pass_and_tampering_fails() {
    let w = world();
    let s = &w.server;
    // Both algorithms on one message: two passes, DMARC pass.
    let m = message("Alice <alice@sender.test>", "both-algorithms");
    let m = sign(&m, "rsa-sha256", "rsa", "sender.test", &w.rsa, false);
    let m = sign(&m, "ed25519-sha256", "ed", "sender.test", &w.ed, false);
    let reply = send(s, "client.sender.test", "alice@sender.test", &m);
    assert!(reply.starts_with("250"), "{reply}");
    let ar = results(&delivered(s, "INBOX", "both-algorithms"));
    assert!(
        ar.contains("dkim=pass header.i=@sender.test header.s=rsa"),
        "{ar}"
    );
    assert!(
        ar.contains("dkim=pass header.i=@sender.test header.s=ed"),
        "{ar}"
    );
    assert!(ar.contains("spf=pass"), "{ar}");
    assert!(ar.contains("dmarc=pass header.from=sender.test"), "{ar}");

    // monitor.test publishes p=none: every failure is delivered and its
    // reason can be read in the header.
    let cases = [
        (
            "tampered-body",
            false,
            "dkim=neutral",
            "body hash did not verify",
        ),
        ("tampered-header", false, "dkim=fail", "verification failed"),
        ("expired", true, "dkim=neutral", "signature error"),
        ("missing-key", false, "dkim=permerror", "header.s=gone"),
    ];
    for (subject, expired, result, reason) in cases {
        let m = message("alice@monitor.test", subject);
        let selector = if subject == "missing-key" {
            "gone"
        } else {
            "rsa"
        };
        let mut m = sign(&m, "rsa-sha256", selector, "monitor.test", &w.rsa, expired);
        match subject {
            "tampered-body" => m = m.replace("Hello Bob", "Hello Eve"),
            "tampered-header" => {
                m = m.replacen("Subject: tampered-header", "Subject: tampered-header!", 1)
            }
            _ => {}
        }
        let reply = send(s, "client.other.test", "x@other.test", &m);
        assert!(reply.starts_with("250"), "{subject}: {reply}");
        let ar = results(&delivered(s, "INBOX", subject));
        assert!(!ar.contains("dkim=pass"), "{subject}: {ar}");
        assert!(
            ar.contains(result) && ar.contains(reason),
            "{subject}: {ar}"
        );
        assert!(
            ar.contains("dmarc=fail") && ar.contains("header.from=monitor.test policy.dmarc=none"),
            "{subject}: {ar}"
        );
    }
    // The same tampering under p=reject is refused at the end of DATA.
    let m = message("alice@sender.test", "tampered-reject");
    let m = sign(&m, "rsa-sha256", "rsa", "sender.test", &w.rsa, false)
        .replace("Hello Bob", "Hello Eve");
    let reply = send(s, "client.other.test", "x@other.test", &m);
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    assert!(
        s.cli_ok(&["mailbox", "list", "bob@ours.test"])
            .lines()
            .all(|l| !l.contains("tampered-reject"))
    );
}

#[test]
fn spf_results_are_recorded() {
    let w = world();
    let s = &w.server;
    let cases = [
        ("sender.test", "pass"),
        ("fail.test", "fail"),
        ("softfail.test", "softfail"),
        ("neutral.test", "neutral"),
        ("none.test", "none"),
        ("temp.invalid", "temperror"),
        ("perm.test", "permerror"),
        ("void2.test", "pass"),
        ("void3.test", "permerror"),
    ];
    for (domain, result) in cases {
        let subject = format!("spf-{domain}");
        // From: the same domain; only sender.test publishes DMARC, and it
        // passes, so every message is delivered with its SPF result.
        let m = message(&format!("x@{domain}"), &subject);
        let reply = send(s, "client.example", &format!("x@{domain}"), &m);
        assert!(reply.starts_with("250"), "{domain}: {reply}");
        let ar = results(&delivered(s, "INBOX", &subject));
        assert!(
            ar.contains(&format!("spf={result} "))
                && ar.contains(&format!("smtp.mailfrom=x@{domain}")),
            "{domain}: {ar}"
        );
    }
}

#[test]
fn dmarc_alignment_reject_and_quarantine() {
    let w = world();
    let s = &w.server;
    // Relaxed: SPF passes for mail.relaxed.test, which is aligned with
    // relaxed.test.
    let m = message("a@relaxed.test", "relaxed");
    let reply = send(s, "client.example", "bounce@mail.relaxed.test", &m);
    assert!(reply.starts_with("250"), "{reply}");
    let ar = results(&delivered(s, "INBOX", "relaxed"));
    assert!(ar.contains("dmarc=pass header.from=relaxed.test"), "{ar}");
    // Strict: the same shape is not aligned; p=reject refuses it.
    let m = message("a@strict.test", "strict");
    let reply = send(s, "client.example", "bounce@mail.strict.test", &m);
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    assert!(reply.contains("strict.test"), "{reply}");
    // p=quarantine: delivered, into Junk, not INBOX.
    let m = message("a@quar.test", "quarantined");
    let reply = send(s, "client.example", "a@quar.test", &m);
    assert!(reply.starts_with("250"), "{reply}");
    let ar = results(&delivered(s, "Junk", "quarantined"));
    assert!(
        ar.contains("dmarc=fail") && ar.contains("policy.dmarc=quarantine"),
        "{ar}"
    );
    let inbox = s.cli_ok(&["mailbox", "list", "bob@ours.test"]);
    assert!(!inbox.contains("quarantined"), "{inbox}");
    // The refusal is logged as Postfix logs a milter reject.
    assert!(
        s.log().contains("NOQUEUE: reject: END-OF-MESSAGE"),
        "{}",
        s.log()
    );
}

#[test]
fn forged_results_claiming_our_id_are_removed() {
    let w = world();
    let s = &w.server;
    let m = format!(
        "Authentication-Results: {AUTHSERV}; dkim=pass header.d=bank.test; dmarc=pass\r\nAuthentication-Results: elsewhere.test; spf=pass\r\n{}",
        message("x@sender.test", "forged-results")
    );
    let reply = send(s, "client.example", "x@sender.test", &m);
    assert!(reply.starts_with("250"), "{reply}");
    let got = delivered(s, "INBOX", "forged-results");
    let ar = results(&got);
    assert!(!ar.contains("bank.test"), "{ar}");
    assert!(
        got.contains("Authentication-Results: elsewhere.test; spf=pass"),
        "{got}"
    );
}

#[test]
fn dns_temperror_under_a_reject_policy_defers() {
    let w = world();
    let m = message("x@tempspf.test", "dmarc-temperror");
    let reply = send(&w.server, "client.example", "x@tempspf.test", &m);
    assert!(
        reply.starts_with("451 4.7.1"),
        "{reply}\n{}",
        w.server.log()
    );
    // A DKIM key lookup that fails (and SPF that does not align) under
    // p=reject: retry too, not 550.
    let m = message("alice@sender.test", "dkim-temperror");
    let m = sign(&m, "rsa-sha256", "broken", "sender.test", &w.rsa, false);
    let reply = send(&w.server, "client.other.test", "x@other.test", &m);
    assert!(
        reply.starts_with("451 4.7.1"),
        "{reply}\n{}",
        w.server.log()
    );
}

/// A resolver that never answers: every lookup of the message runs into
/// the per-message DNS budget, and the sender is asked to retry.
#[test]
fn a_silent_resolver_is_bounded_by_the_dns_budget() {
    let blackhole = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let addr = blackhole.local_addr().expect("addr");
    let server = Builder::default()
        .top("mydestination = [\"ours.test\", \"localhost\"]\nmynetworks = []")
        .dns(&format!("nameservers = [\"{addr}\"]\ntimeout = \"5s\""))
        .mailauth(&format!(
            "authserv_id = \"{AUTHSERV}\"\ndns_budget = \"1s\""
        ))
        .start();
    server.add_user("bob@ours.test", "bob-pw");
    let m = message("x@sender.test", "dns-budget");
    let reply = send(&server, "client.example", "x@sender.test", &m);
    assert!(reply.starts_with("451 4.7.1"), "{reply}");
    drop(blackhole);
}
