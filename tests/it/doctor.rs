//! `merpati doctor` against zones served by the loopback DNS server: a
//! good zone passes (exit 0) with every item OK and the SRV records to
//! publish; a broken one fails (exit non-zero) naming what is wrong and
//! the exact record to publish, in text and in JSON.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::*;
use std::net::Ipv4Addr;
use std::time::Duration;

#[test]
fn good_and_broken_zones() {
    let dns = DnsServer::start(
        &[
            "good.test.",
            "bad.test.",
            "merpati.test.",
            "2.0.192.in-addr.arpa.",
        ],
        vec![
            // Not loopback: a resolver answers "localhost" for 127/8 itself.
            Rr::A("mail.merpati.test.", Ipv4Addr::new(192, 0, 2, 10)),
            Rr::Mx("good.test.", 10, "mail.merpati.test."),
            Rr::A("autoconfig.good.test.", Ipv4Addr::LOCALHOST),
            Rr::A("autodiscover.good.test.", Ipv4Addr::LOCALHOST),
            Rr::Txt("good.test.".into(), "v=spf1 mx -all".into()),
            Rr::Txt("_dmarc.good.test.".into(), "v=DMARC1; p=reject".into()),
            Rr::Ptr("10.2.0.192.in-addr.arpa.", "mail.merpati.test."),
            Rr::Mx("bad.test.", 10, "mx.elsewhere.test."),
            Rr::Txt("bad.test.".into(), "v=spf1 -all".into()),
        ],
    );
    let server = Builder::default()
        .top("mydestination = [\"good.test\", \"bad.test\", \"localhost\"]")
        .dns(&dns.config())
        .mailauth("generate_keys = true")
        .start();
    assert!(wait_until(Duration::from_secs(30), || server
        .cli_ok(&["dkim", "list"])
        .contains("good.test")));
    // Publish good.test's DKIM keys as `merpati dkim records` prints them.
    let records = server.cli_ok(&["dkim", "records", "good.test"]);
    for line in records.lines().filter(|l| l.contains("._domainkey.")) {
        let (name, rest) = line.split_once(" IN TXT ").expect("record line");
        let value: String = rest.split('"').skip(1).step_by(2).collect();
        dns.add(Rr::Txt(name.to_string(), value));
    }

    let good = server.cli(&["doctor", "good.test"]);
    let out = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{}", text(&good));
    for needle in [
        "OK   MX           mail.merpati.test",
        "OK   SPF          v=spf1 mx -all",
        "OK   DMARC        v=DMARC1; p=reject",
        "matches our key",
        "OK   PTR          192.0.2.10 → mail.merpati.test",
        "publish: _imaps._tcp.good.test. IN SRV 0 1",
        "publish: _submissions._tcp.good.test. IN SRV 0 1",
        "WARN MTA-STS",
        "WARN certificate  self-signed",
        "WARN MTA-STS cert the certificate does not name mta-sts.good.test",
        "OK   open relay   192.0.2.1 may not relay: 454 4.7.1 <probe@relay-probe.example>: Relay access denied",
        "OK   open relay   2001:db8::1 may not relay: 454 4.7.1",
    ] {
        assert!(out.contains(needle), "{needle}\n{out}");
    }

    let bad = server.cli(&["doctor", "bad.test"]);
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success(), "{out}");
    for needle in [
        "FAIL MX           MX points elsewhere: mx.elsewhere.test",
        "publish: bad.test. IN MX 10 mail.merpati.test.",
        "FAIL DMARC        no DMARC record",
        "publish: _dmarc.bad.test. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@bad.test\"",
        "FAIL DKIM",
        "._domainkey.bad.test: not published",
    ] {
        assert!(out.contains(needle), "{needle}\n{out}");
    }
    let json = server.cli(&["doctor", "--json", "bad.test"]);
    let out = String::from_utf8_lossy(&json.stdout);
    assert!(!json.status.success());
    assert!(
        out.contains("{\"domain\":\"bad.test\",\"check\":\"DMARC\",\"status\":\"fail\",\"detail\":\"no DMARC record\""),
        "{out}"
    );

    // A careless config: everyone in mynetworks, and a CA-issued
    // certificate for another name that ends in five days.
    let dir = tempfile::tempdir().unwrap();
    let mut ca = rcgen::CertificateParams::new(vec![]).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Doctor Test CA");
    let issuer = rcgen::Issuer::new(ca, rcgen::KeyPair::generate().unwrap());
    let mut leaf = rcgen::CertificateParams::new(vec!["other.test".into()]).unwrap();
    let days = |d: i64| {
        let today = merpati::rfc5322::now_unix().div_euclid(86_400);
        let (y, m, d) = merpati::rfc5322::civil_from_days(today + d);
        rcgen::date_time_ymd(y as i32, m as u8, d as u8)
    };
    leaf.not_after = days(5);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
    let careless = std::fs::read_to_string(&server.config_path)
        .unwrap()
        .replacen(
            "mydestination = ",
            "mynetworks = [\"0.0.0.0/0\", \"::/0\"]\nmydestination = ",
            1,
        )
        + &format!(
            "\n[tls]\ncert = \"{d}/c.pem\"\nkey = \"{d}/k.pem\"\n",
            d = dir.path().display()
        );
    let path = dir.path().join("careless.toml");
    std::fs::write(&path, careless).unwrap();
    let out = run_cli(&path, &["doctor", "good.test"], b"");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    for needle in [
        "FAIL certificate  does not name mail.merpati.test",
        "FAIL open relay   mynetworks includes 192.0.2.1",
        "FAIL open relay   mynetworks includes 2001:db8::1",
    ] {
        assert!(report.contains(needle), "{needle}\n{report}");
    }
    // The right name, from a CA, ending soon: a warning.
    let mut leaf = rcgen::CertificateParams::new(vec!["mail.merpati.test".into()]).unwrap();
    leaf.not_after = days(5);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
    let out = run_cli(&path, &["doctor", "good.test"], b"");
    let report = String::from_utf8_lossy(&out.stdout);
    // 4 days and some hours, or 3 when the test runs across midnight UTC.
    assert!(
        report.contains("WARN certificate  ends in 4 days")
            || report.contains("WARN certificate  ends in 3 days"),
        "{report}"
    );
}
