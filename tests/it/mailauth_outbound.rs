//! Outbound mail authentication end to end: instance A makes its DKIM keys
//! at first start, signs what its users submit (port 587 with AUTH, and
//! local `sendmail`), delivers one copy locally and relays one by MX to
//! instance B, which checks it. dkimpy verifies A's signatures with the
//! records `merpati dkim records` prints; B's own checks use the same
//! records, published on the loopback DNS server.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const DKIMPY: &str = include_str!("dkimpy.py");

/// `NAME. IN TXT "a" "b"` lines of `merpati dkim records` as (name, value).
fn zone_records(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let (name, rest) = l.split_once(" IN TXT ")?;
            let value: String = rest.split('"').skip(1).step_by(2).collect();
            Some((name.to_string(), value))
        })
        .collect()
}

fn dkimpy_verify(records: &str, message: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("records");
    std::fs::write(&path, records).expect("records");
    let out = system_python(
        DKIMPY,
        &["verify", path.to_str().expect("path")],
        message.as_bytes(),
    );
    assert_success(&out, "dkimpy verify");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    message
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .collect()
}

#[test]
fn signatures_verify_with_dkimpy_locally_and_after_relay() {
    let dns = DnsServer::start(
        &["test.", "a.test.", "b.test."],
        vec![
            Rr::Mx("b.test.", 10, "mx.b.test."),
            Rr::A("mx.b.test.", Ipv4Addr::LOCALHOST),
            Rr::Txt("a.test.".into(), "v=spf1 ip4:127.0.0.1 -all".into()),
            Rr::Txt("_dmarc.a.test.".into(), "v=DMARC1; p=reject".into()),
        ],
    );
    let b = Builder::default()
        .top("mydestination = [\"b.test\", \"localhost\"]\nmynetworks = []")
        .dns(&dns.config())
        .mailauth("authserv_id = \"mx.b.test\"")
        .start();
    b.add_user("bob@b.test", "bob-pw");
    let a = Builder::default()
        .top("mydestination = [\"a.test\", \"localhost\"]")
        .dns(&dns.config())
        .mailauth("generate_keys = true")
        .tail(&format!("[relay]\nport = {}\ntls = \"none\"", b.port))
        .start();
    a.add_user("alice@a.test", "alice-pw");

    // Zero edits: the keys exist shortly after the first start.
    assert!(
        wait_until(Duration::from_secs(30), || {
            a.cli_ok(&["dkim", "list"])
                .lines()
                .filter(|l| l.contains("signing"))
                .count()
                == 2
        }),
        "no keys: {}",
        a.cli_ok(&["dkim", "list"])
    );
    let records = a.cli_ok(&["dkim", "records", "a.test"]);
    let parsed = zone_records(&records);
    assert!(
        parsed
            .iter()
            .any(|(n, v)| n.ends_with("._domainkey.a.test.") && v.contains("k=rsa")),
        "{records}"
    );
    assert!(
        parsed
            .iter()
            .any(|(n, v)| n.ends_with("._domainkey.a.test.") && v.contains("k=ed25519")),
        "{records}"
    );
    for (name, value) in &parsed {
        if name.contains("._domainkey.") {
            dns.add(Rr::Txt(name.clone(), value.clone()));
        }
    }

    // A real client submits with AUTH on port 587.
    let script = format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {port})\ns.login('alice@a.test', 'alice-pw')\n\
s.sendmail('alice@a.test', ['alice@a.test', 'bob@b.test'], b'From: Alice <alice@a.test>\\r\\nTo: bob@b.test\\r\\nCc: alice@a.test\\r\\nSubject: signed by merpati\\r\\n\\r\\nHi Bob.\\r\\n')\ns.quit()\n",
        port = a.ports.submission
    );
    let out = python(&script, &[]);
    assert_success(&out, "smtplib submission");

    // The local copy: two signatures, dkimpy verifies both.
    let uid = *a
        .wait_for_mail("alice@a.test", 1)
        .first()
        .expect("local copy");
    let local = a.message("alice@a.test", uid);
    assert_eq!(field(&local, "DKIM-Signature").len(), 2, "{local}");
    let verdict = dkimpy_verify(&records, &local);
    assert!(
        verdict.contains("pass a=rsa-sha256 d=a.test"),
        "{verdict}\n{local}"
    );
    assert!(
        verdict.contains("pass a=ed25519-sha256 d=a.test"),
        "{verdict}\n{local}"
    );
    assert!(!verdict.contains("fail"), "{verdict}");

    // The relayed copy: B checks it through the DNS, and dkimpy agrees.
    let uid = *b
        .wait_for_mail("bob@b.test", 1)
        .first()
        .expect("relayed copy");
    let relayed = b.message("bob@b.test", uid);
    let verdict = dkimpy_verify(&records, &relayed);
    assert_eq!(verdict.matches(": pass").count(), 2, "{verdict}\n{relayed}");
    let ar = field(&relayed, "Authentication-Results").join("\n");
    let whole = relayed.replace("\r\n\t", " ").replace("\n\t", " ");
    let ours = whole
        .lines()
        .find(|l| l.starts_with("Authentication-Results: mx.b.test"))
        .unwrap_or_else(|| panic!("{ar}\n{relayed}"));
    assert_eq!(ours.matches("dkim=pass").count(), 2, "{ours}");
    assert!(ours.contains("spf=pass"), "{ours}");
    assert!(ours.contains("dmarc=pass header.from=a.test"), "{ours}");

    // Local sendmail is signed too (pickup → cleanup).
    let out = a.cli_with_input(
        &["sendmail", "-t", "-f", "alice@a.test"],
        b"From: alice@a.test\nTo: alice@a.test\nSubject: from cron\n\nnightly report\n",
    );
    assert_success(&out, "sendmail -t");
    let uids = a.wait_for_mail("alice@a.test", 2);
    let cron = a.message("alice@a.test", *uids.last().expect("uid"));
    assert!(cron.contains("from cron"), "{cron}");
    let verdict = dkimpy_verify(&records, &cron);
    assert_eq!(verdict.matches(": pass").count(), 2, "{verdict}\n{cron}");

    // A domain without keys goes out unsigned, and nothing breaks.
    let out = a.cli_with_input(
        &["sendmail", "-t", "-f", "root@localhost"],
        b"From: root@localhost\nTo: alice@a.test\nSubject: unsigned\n\nx\n",
    );
    assert_success(&out, "sendmail -t (no key)");
    let uids = a.wait_for_mail("alice@a.test", 3);
    let unsigned = a.message("alice@a.test", *uids.last().expect("uid"));
    assert!(field(&unsigned, "DKIM-Signature").is_empty(), "{unsigned}");
}

#[test]
fn rotation_with_the_cli() {
    let a = Builder::default()
        .top("mydestination = [\"rot.test\", \"localhost\"]")
        .start();
    let first = a.cli_ok(&["dkim", "generate", "rot.test", "--selector", "one"]);
    assert!(
        first.contains("one._domainkey.rot.test. IN TXT \"v=DKIM1; k=rsa; p="),
        "{first}"
    );
    assert!(first.contains("signing"), "{first}");
    let second = a.cli_ok(&["dkim", "generate", "rot.test", "--selector", "two"]);
    assert!(
        second.contains("merpati dkim activate rot.test two"),
        "{second}"
    );
    let out = a.cli(&["dkim", "retire", "rot.test", "one"]);
    assert!(!out.status.success(), "retiring the signing key must fail");
    let activated = a.cli_ok(&["dkim", "activate", "rot.test", "two"]);
    assert!(activated.contains("one is retired"), "{activated}");
    // Both records stay published while the old one retires.
    let records = a.cli_ok(&["dkim", "records", "rot.test"]);
    assert!(
        records.contains("one._domainkey.rot.test.")
            && records.contains("two._domainkey.rot.test."),
        "{records}"
    );
    a.cli_ok(&["dkim", "retire", "rot.test", "one"]);
    let list = a.cli_ok(&["dkim", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("rot.test\ttwo\trsa\tsigning"), "{list}");
    let bad = a.cli(&["dkim", "generate", "../etc", "--selector", "x"]);
    assert!(!bad.status.success());
}
