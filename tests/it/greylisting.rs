//! Built-in greylisting (issue 9), with postgrey's semantics: a new
//! (client /24, sender, recipient) triplet gets 450, a retry after the
//! delay passes, and the table outlives a restart. Senders of allowlisted
//! domains skip it when SPF vouches for them (the loopback DNS server
//! publishes the SPF record). The delay is 2 s here instead of 300 s.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::{Builder, Server, Smtp};
use std::net::Ipv4Addr;
use std::time::Duration;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const SAME_NET: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);
const INSIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

fn world() -> (DnsServer, Server) {
    let dns = DnsServer::start(
        &["test."],
        vec![
            Rr::Txt("trusted.test.".into(), "v=spf1 ip4:127.0.0.2 ~all".into()),
            Rr::Txt("ok.test.".into(), "v=spf1 ?all".into()),
        ],
    );
    let server = Builder::default()
        .top("mydestination = [\"ours.test\"]\nmynetworks = [\"127.0.0.1/32\"]")
        .smtp("greet_pause = \"0s\"")
        .dns(&dns.config())
        .mailauth("verify = true\ngenerate_keys = false")
        .tail("[greylist]\nenabled = true\ndelay = \"2s\"\nallow_domains = [\"trusted.test\"]")
        .start();
    server.add_user("bob@ours.test", "bob-pw");
    (dns, server)
}

/// MAIL and RCPT from `source`; the RCPT reply, and the session still open.
fn rcpt(server: &Server, source: Ipv4Addr, sender: &str) -> (Smtp, String) {
    let mut c = Smtp::connect_from(server.port, source);
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO mx.sender.test").starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{sender}>")).starts_with("250"));
    let reply = c.cmd("RCPT TO:<bob@ours.test>");
    (c, reply)
}

fn data(c: &mut Smtp, subject: &str) -> String {
    assert!(c.cmd("DATA").starts_with("354"));
    c.cmd(&format!(
        "From: <a@x>\r\nSubject: {subject}\r\n\r\nhello\r\n."
    ))
}

#[test]
fn a_new_triplet_is_deferred_and_passes_on_retry_after_the_delay() {
    let (_dns, mut server) = world();
    let (_, first) = rcpt(&server, OUTSIDE, "a@ok.test");
    assert!(
        first.starts_with(
            "450 4.2.0 <bob@ours.test>: Recipient address rejected: Greylisted, try again in 2 seconds"
        ),
        "{first}"
    );
    // Too early: still deferred.
    let (_, early) = rcpt(&server, OUTSIDE, "a@ok.test");
    assert!(early.starts_with("450 4.2.0"), "{early}");
    // mynetworks is never greylisted.
    let (_, inside) = rcpt(&server, INSIDE, "a@ok.test");
    assert!(inside.starts_with("250"), "{inside}");
    std::thread::sleep(Duration::from_millis(2100));
    let (mut c, retry) = rcpt(&server, OUTSIDE, "a@ok.test");
    assert!(retry.starts_with("250"), "{retry}");
    assert!(data(&mut c, "after greylisting").starts_with("250"));
    c.cmd("QUIT");
    assert_eq!(server.wait_for_mail("bob@ours.test", 1).len(), 1);
    // Another host of the same /24, with an address extension: the same
    // triplet, already passed.
    let (_, neighbour) = rcpt(&server, SAME_NET, "a+list@ok.test");
    assert!(neighbour.starts_with("250"), "{neighbour}");
    let log = server.log();
    assert!(
        log.contains("greylist: action=greylist, reason=new, client_name=unknown, client_address=127.0.0.2, sender=a@ok.test, recipient=bob@ours.test"),
        "{log}"
    );
    assert!(log.contains("action=greylist, reason=early-retry"), "{log}");
    assert!(log.contains("action=pass, reason=delayed"), "{log}");
    // The table is saved at shutdown and read at start: no new delay.
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)));
    assert!(server.data_dir().join("greylist.tsv").exists());
    server.spawn();
    let (_, after_restart) = rcpt(&server, OUTSIDE, "a@ok.test");
    assert!(after_restart.starts_with("250"), "{after_restart}");
}

#[test]
fn an_allowlisted_domain_skips_greylisting_only_when_spf_passes() {
    let (_dns, server) = world();
    // SPF passes for trusted.test from 127.0.0.2: straight through.
    let (mut c, reply) = rcpt(&server, OUTSIDE, "news@trusted.test");
    assert!(reply.starts_with("250"), "{reply}");
    let end = data(&mut c, "vouched for");
    assert!(end.starts_with("250"), "{end}");
    c.cmd("QUIT");
    // From elsewhere SPF only softfails: greylisted at the end of DATA.
    let (mut c, reply) = rcpt(&server, Ipv4Addr::new(127, 0, 1, 2), "news@trusted.test");
    assert!(reply.starts_with("250"), "{reply}");
    let end = data(&mut c, "not vouched for");
    assert!(
        end.starts_with("450 4.7.1 Message greylisted, try again in 2 seconds"),
        "{end}"
    );
    c.cmd("QUIT");
    assert_eq!(server.wait_for_mail("bob@ours.test", 1).len(), 1);
    assert!(
        server
            .log()
            .contains("action=pass, reason=authenticated domain trusted.test")
    );
}
