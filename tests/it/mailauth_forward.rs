//! Forwarding between real instances: a message from orig.test (sent from
//! 127.0.0.2, the only address its SPF allows) reaches forwarder F, whose
//! alias sends it on to dest.test at instance D (from 127.0.0.1). F
//! rewrites the envelope sender with SRS, so SPF passes at D for F's
//! domain, and ARC-seals it; D validates the chain. A bounce to the SRS
//! address goes back through F to the original sender.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const DKIMPY: &str = include_str!("dkimpy.py");

fn txt(owner: &str, value: &str) -> Rr {
    Rr::Txt(owner.to_string(), value.to_string())
}

/// The unfolded Authentication-Results of `authserv`.
fn results_of(message: &str, authserv: &str) -> String {
    let unfolded = message.replace("\r\n\t", " ").replace("\n\t", " ");
    unfolded
        .lines()
        .take_while(|l| !l.is_empty())
        .find(|l| l.starts_with(&format!("Authentication-Results: {authserv}")))
        .unwrap_or_else(|| panic!("no results of {authserv}:\n{message}"))
        .to_string()
}

#[test]
fn srs_and_arc_through_a_forwarding_instance() {
    let keys = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new("dknewkey")
        .current_dir(keys.path())
        .args(["--ktype", "rsa", "orig"])
        .output()
        .expect("dknewkey");
    assert_success(&out, "dknewkey");
    let dns_text = std::fs::read_to_string(keys.path().join("orig.dns")).expect("dns");
    let record = dns_text.trim().to_string();
    let dns = DnsServer::start(
        &["test.", "orig.test.", "fwd.test.", "dest.test."],
        vec![
            txt("orig.test.", "v=spf1 ip4:127.0.0.2 -all"),
            txt("_dmarc.orig.test.", "v=DMARC1; p=reject"),
            txt("orig._domainkey.orig.test.", &record),
            txt("fwd.test.", "v=spf1 ip4:127.0.0.1 -all"),
            Rr::Mx("dest.test.", 10, "mx.dest.test."),
            Rr::Mx("orig.test.", 10, "mx.dest.test."),
            Rr::A("mx.dest.test.", Ipv4Addr::LOCALHOST),
        ],
    );
    // D: the final destination (and, for the bounce, orig.test's MX).
    let d = Builder::default()
        .top("mydestination = [\"dest.test\", \"orig.test\", \"localhost\"]\nmynetworks = []")
        .dns(&dns.config())
        .mailauth("authserv_id = \"mx.dest.test\"")
        .start();
    d.add_user("dave@dest.test", "dave-pw");
    d.add_user("alice@orig.test", "alice-pw");
    // F: forwards list@fwd.test to dave@dest.test.
    let f = Builder::default()
        .hostname("mx.fwd.test")
        .top("mydestination = [\"fwd.test\", \"localhost\"]\nmyorigin = \"fwd.test\"\nmynetworks = []")
        .dns(&dns.config())
        .mailauth("authserv_id = \"mx.fwd.test\"\ngenerate_keys = true")
        .tail(&format!(
            "[relay]\nport = {}\ntls = \"none\"\n[virtual_alias.map]\n\"list@fwd.test\" = [\"dave@dest.test\"]",
            d.port
        ))
        .start();
    assert!(wait_until(Duration::from_secs(30), || f
        .cli_ok(&["dkim", "list"])
        .contains("rsa\tsigning")));
    let records = f.cli_ok(&["dkim", "records", "fwd.test"]);
    for line in records.lines().filter(|l| l.contains("._domainkey.")) {
        let (name, rest) = line.split_once(" IN TXT ").expect("record line");
        let value: String = rest.split('"').skip(1).step_by(2).collect();
        dns.add(Rr::Txt(name.to_string(), value));
    }

    // alice@orig.test writes to the list, signed by her domain, from the
    // one address her SPF allows.
    let message = "From: Alice <alice@orig.test>\r\nTo: list@fwd.test\r\nSubject: via the list\r\nDate: Wed, 2 Dec 2026 08:00:00 +0000\r\nMessage-ID: <list-1@orig.test>\r\n\r\nHello list.\r\n";
    let key = keys.path().join("orig.key");
    let out = system_python(
        DKIMPY,
        &[
            "sign",
            "rsa-sha256",
            "orig",
            "orig.test",
            key.to_str().expect("path"),
        ],
        message.as_bytes(),
    );
    assert_success(&out, "dkimpy sign");
    let signed = String::from_utf8(out.stdout).expect("utf-8");
    let script = format!(
        "import smtplib, sys\ns = smtplib.SMTP('127.0.0.1', {port}, local_hostname='mail.orig.test', source_address=('127.0.0.2', 0))\n\
s.sendmail('alice@orig.test', ['list@fwd.test'], sys.stdin.buffer.read())\ns.quit()\n",
        port = f.port
    );
    let out = system_python(&script, &[], signed.as_bytes());
    assert_success(&out, "smtplib from 127.0.0.2");

    let uid = *d
        .wait_for_mail("dave@dest.test", 1)
        .first()
        .unwrap_or_else(|| panic!("not forwarded:\n{}\n---\n{}", f.log(), d.log()));
    let got = d.message("dave@dest.test", uid);
    // F checked it on the way in: SPF pass from 127.0.0.2.
    let at_f = results_of(&got, "mx.fwd.test");
    assert!(
        at_f.contains("spf=pass") && at_f.contains("dmarc=pass"),
        "{at_f}"
    );
    // The envelope sender D saw is F's SRS address, and SPF passes for it.
    let return_path = got
        .lines()
        .find_map(|l| l.strip_prefix("Return-Path: <"))
        .and_then(|l| l.strip_suffix('>'))
        .expect("Return-Path")
        .to_string();
    assert!(
        return_path.starts_with("SRS0=") && return_path.ends_with("=orig.test=alice@fwd.test"),
        "{return_path}"
    );
    let at_d = results_of(&got, "mx.dest.test");
    assert!(
        at_d.contains("spf=pass") && at_d.contains("smtp.mailfrom=\"SRS0="),
        "{at_d}"
    );
    // F's ARC set validates at D, and the author's DKIM still passes.
    assert!(
        got.contains("ARC-Seal: i=1;")
            && got.contains("ARC-Authentication-Results: i=1; mx.fwd.test"),
        "{got}"
    );
    assert!(at_d.contains("arc=pass"), "{at_d}");
    assert!(
        at_d.contains("dkim=pass") && at_d.contains("dmarc=pass header.from=orig.test"),
        "{at_d}"
    );

    // A later bounce to the SRS address reaches alice through F.
    let mut smtp = f.connect();
    smtp.reply();
    smtp.cmd("EHLO mx.dest.test");
    assert!(smtp.cmd("MAIL FROM:<>").starts_with("250"));
    let reply = smtp.cmd(&format!("RCPT TO:<{return_path}>"));
    assert!(reply.starts_with("250"), "{reply}");
    assert!(smtp.cmd("DATA").starts_with("354"));
    smtp.send_raw(b"From: MAILER-DAEMON@dest.test\r\nTo: alice@orig.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nlater bounce\r\n");
    let reply = smtp.cmd(".");
    assert!(reply.starts_with("250"), "{reply}");
    // A forged SRS address is refused.
    assert!(smtp.cmd("MAIL FROM:<>").starts_with("250"));
    let forged = return_path.replacen("=orig.test=", "=evil.test=", 1);
    let reply = smtp.cmd(&format!("RCPT TO:<{forged}>"));
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
    smtp.cmd("QUIT");
    let uid = *d
        .wait_for_mail("alice@orig.test", 1)
        .first()
        .unwrap_or_else(|| panic!("bounce home: {}", d.log()));
    let bounce = d.message("alice@orig.test", uid);
    assert!(bounce.contains("later bounce"), "{bounce}");
    assert!(bounce.contains("Return-Path: <>"), "{bounce}");
}
