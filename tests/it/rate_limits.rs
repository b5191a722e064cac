//! anvil's rate limits (issue 9): connections, messages and recipients per
//! client per unit on port 25, in Postfix's words and log lines; failed
//! logins counted across IMAP, POP3 and SMTP AUTH together.

use crate::harness::{Builder, Smtp};
use crate::imap_client::Imap;
use std::net::Ipv4Addr;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

#[test]
fn connection_message_and_recipient_rates_answer_as_postfix_does() {
    let server = Builder::default()
        .top("mydestination = [\"ours.test\"]\nmynetworks = [\"127.0.0.1/32\"]")
        .smtp("greet_pause = \"0s\"")
        .mailauth("verify = false\ngenerate_keys = false")
        .tail(
            "[anvil]\nsmtpd_client_connection_rate_limit = 3\n\
             smtpd_client_message_rate_limit = 2\nsmtpd_client_recipient_rate_limit = 3",
        )
        .start();
    server.add_user("bob@ours.test", "pw");
    server.add_user("carol@ours.test", "pw");
    let mut c = Smtp::connect_from(server.port, OUTSIDE);
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO mx.example.test").starts_with("250"));
    // Recipients: the fourth in the unit is deferred.
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@ours.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<carol@ours.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob+x@ours.test>").starts_with("250"));
    let too_many = c.cmd("RCPT TO:<carol+x@ours.test>");
    assert_eq!(
        too_many.trim_end(),
        "450 4.7.1 Error: too many recipients from 127.0.0.2"
    );
    assert!(c.cmd("RSET").starts_with("250"));
    // Messages: the third MAIL in the unit is deferred.
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250"));
    assert!(c.cmd("RSET").starts_with("250"));
    let too_much = c.cmd("MAIL FROM:<a@example.test>");
    assert_eq!(
        too_much.trim_end(),
        "450 4.7.1 Error: too much mail from 127.0.0.2"
    );
    c.cmd("QUIT");
    // Connections: the fourth in the unit gets 421 and is closed.
    for _ in 0..2 {
        let mut c = Smtp::connect_from(server.port, OUTSIDE);
        assert!(c.reply().starts_with("220"));
        c.cmd("QUIT");
    }
    let mut c = Smtp::connect_from(server.port, OUTSIDE);
    let refused = c.read_to_close();
    assert!(
        refused
            .starts_with("421 4.7.0 mail.merpati.test Error: too many connections from 127.0.0.2"),
        "{refused}"
    );
    // mynetworks is not counted.
    for _ in 0..5 {
        let mut c = Smtp::connect_from(server.port, Ipv4Addr::LOCALHOST);
        assert!(c.reply().starts_with("220"));
        c.cmd("QUIT");
    }
    let log = server.log();
    for line in [
        "Connection rate limit exceeded: 4 from unknown[127.0.0.2] for service smtp",
        "Message delivery request rate limit exceeded: 3 from unknown[127.0.0.2] for service smtp",
        "Recipient address rate limit exceeded: 4 from unknown[127.0.0.2] for service smtp",
    ] {
        assert!(log.contains(line), "{line} not in\n{log}");
    }
}

#[test]
fn failed_logins_are_counted_across_imap_pop3_and_smtp_auth() {
    let server = Builder::default()
        .tail("[anvil]\nauth_failure_rate_limit = 3")
        .start();
    server.add_user("alice@localhost", "right-pw");
    let (mut imap, _) = Imap::connect(server.ports.imap);
    for _ in 0..2 {
        let no = imap.cmd("LOGIN alice@localhost wrong");
        assert!(no.contains("NO [AUTHENTICATIONFAILED]"), "{no}");
    }
    imap.cmd("LOGOUT");
    // The third failure is over POP3.
    let mut pop = Smtp::connect(server.ports.pop3);
    pop.reply();
    pop.send_raw(b"USER alice@localhost\r\nPASS wrong\r\n");
    assert!(pop.reply().starts_with("+OK"));
    assert!(pop.reply().starts_with("-ERR [AUTH]"));
    // Now even the right password is refused unchecked, on every service.
    pop.send_raw(b"USER alice@localhost\r\nPASS right-pw\r\n");
    assert!(pop.reply().starts_with("+OK"));
    let refused = pop.reply();
    assert!(
        refused.starts_with("-ERR [SYS/TEMP] Too many failed logins"),
        "{refused}"
    );
    pop.send_raw(b"QUIT\r\n");
    pop.read_to_close();
    let (mut imap, _) = Imap::connect(server.ports.imap);
    let no = imap.cmd("LOGIN alice@localhost right-pw");
    assert!(
        no.contains("NO [UNAVAILABLE] Too many failed logins"),
        "{no}"
    );
    imap.cmd("LOGOUT");
    let mut sub = Smtp::connect(server.ports.submission);
    sub.reply();
    sub.cmd("EHLO client.example.org");
    // alice@localhost / right-pw
    let refused = sub.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdAByaWdodC1wdw==");
    assert!(
        refused.starts_with(
            "421 4.7.0 mail.merpati.test Error: too many failed logins from 127.0.0.1"
        ),
        "{refused}"
    );
    let log = server.log();
    assert!(
        log.contains("AUTH failure rate limit exceeded: 3 from [127.0.0.1] for service imap"),
        "{log}"
    );
    assert!(log.contains("for service pop3"), "{log}");
}
