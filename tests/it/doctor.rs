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
}
