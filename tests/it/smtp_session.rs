//! The seed's telnet session (../shared/seeds/000, section 10.6), verbatim.

use crate::harness::*;

#[test]
fn seed_telnet_transcript_delivers_with_postfix_headers() {
    let server = server();
    server.add_user("fauzan@localhost", "rahasia");
    let mut c = server.connect();
    let greeting = c.reply();
    assert_eq!(greeting, format!("220 {HOSTNAME} ESMTP Merpati\r\n"));
    let ehlo = c.cmd("ehlo localhost");
    let expected = format!(
        "250-{HOSTNAME}\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
    );
    assert_eq!(ehlo, expected);
    assert_eq!(c.cmd("mail from:afau@localhost"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd("rcpt to:fauzan@localhost"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.cmd("Data"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: Praktikum Jarkom makin hot aja!!!\r\n");
    c.send_raw(b"Ayo semangat buat semuanya:D walaupun pusing, kita pasti bisa!!\r\n");
    let queued = c.cmd(".");
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    let id = queue_id(&queued);
    assert_eq!(c.cmd("quit"), "221 2.0.0 Bye\r\n");

    let uids = server.wait_for_mail("fauzan@localhost", 1);
    assert_eq!(uids, vec![1]);
    let listing = server.cli_ok(&["mailbox", "list", "fauzan@localhost"]);
    assert!(listing.starts_with("1\t"), "{listing}");
    assert!(
        listing.contains("Praktikum Jarkom makin hot aja!!!"),
        "{listing}"
    );
    let message = server.message("fauzan@localhost", 1);
    let lines: Vec<&str> = message.split("\r\n").collect();
    assert_eq!(lines[0], "Return-Path: <afau@localhost>");
    assert_eq!(lines[1], "X-Original-To: fauzan@localhost");
    assert_eq!(lines[2], "Delivered-To: fauzan@localhost");
    assert_eq!(lines[3], "Received: from localhost (localhost [127.0.0.1])");
    assert!(
        lines[4].contains(&format!("by {HOSTNAME} (Merpati) with ESMTP id {id}")),
        "{message}"
    );
    assert_eq!(lines[5].trim(), "for <fauzan@localhost>;");
    assert!(
        message.contains("Message-Id: <") && message.contains(&format!(".{id}@{HOSTNAME}>")),
        "{message}"
    );
    assert!(message.contains("\r\nDate: "), "{message}");
    assert!(
        message.contains("\r\nFrom: afau@localhost\r\n"),
        "{message}"
    );
    assert!(
        message.ends_with(
            "\r\n\r\nAyo semangat buat semuanya:D walaupun pusing, kita pasti bisa!!\r\n"
        ),
        "{message}"
    );
    let log = server.log();
    assert!(
        log.contains(&format!("{id}: from=<afau@localhost>, size=")),
        "{log}"
    );
    assert!(
        log.contains(&format!("{id}: to=<fauzan@localhost>"))
            && log.contains("relay=local")
            && log.contains("status=sent"),
        "{log}"
    );
}
