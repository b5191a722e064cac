use super::*;

#[test]
fn send_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let opts = ClientOptions::default();
    let recipients = [Recipient::default()];
    let env = Envelope {
        sender: "",
        recipients: &recipients,
        envid: "",
        ret: "",
        smtputf8: false,
        message: b"",
    };
    let future = send("127.0.0.1:1".parse().unwrap(), "x", &opts, &env);
    assert_send(&future);
    let future = SmtpConnection::open("127.0.0.1:1".parse().unwrap(), "x", &opts);
    assert_send(&future);
    fn deliver_is_send(connection: &mut SmtpConnection, env: &Envelope<'_>) {
        assert_send(&connection.deliver(env));
    }
    let _ = deliver_is_send;
}

#[test]
fn classifies_errors() {
    let r = |code, enhanced| Reply::new(code, enhanced, "x");
    let cases: &[(ClientError, bool, bool)] = &[
        // error, permanent, try next host
        (ClientError::Connect("refused".into()), false, true),
        (ClientError::Greeting(r(421, "4.3.2")), false, true),
        (ClientError::Greeting(r(554, "5.7.1")), true, true),
        (ClientError::Transaction(r(451, "4.3.0")), false, true),
        (ClientError::Transaction(r(553, "5.7.1")), true, false),
        (ClientError::Tls("handshake".into()), false, true),
        (ClientError::Auth("535".into()), false, true),
        (ClientError::Protocol("garbage".into()), false, true),
        (ClientError::Io("reset".into()), false, true),
        (ClientError::Timeout(GREETING), false, true),
    ];
    for (error, permanent, next) in cases {
        assert_eq!(error.is_permanent(), *permanent, "{error:?}");
        assert_eq!(error.try_next_host(), *next, "{error:?}");
        let reply = error.reply("mx[192.0.2.1]:25");
        assert_eq!(reply.is_permanent(), *permanent, "{error:?} {reply}");
        assert!(reply.enhanced.is_some(), "{reply}");
    }
}

#[test]
fn synthesized_replies_read_like_postfix() {
    let reply = synthesized(
        &ClientError::Io(format!("{END_OF_DATA}: reset")),
        "mx[192.0.2.1]:25",
    );
    assert_eq!(
        reply.to_string(),
        "451 4.4.2 lost connection with mx[192.0.2.1]:25 while sending end of data -- message may be sent more than once: reset"
    );
    let reply = synthesized(&ClientError::Timeout(RCPT), "mx[192.0.2.1]:25");
    assert_eq!(
        reply.to_string(),
        "451 4.4.2 conversation with mx[192.0.2.1]:25 timed out while sending RCPT TO"
    );
}

#[test]
fn helo_names() {
    assert!(valid_helo("mail.example.org"));
    assert!(valid_helo("[192.0.2.1]"));
    for bad in ["", "a b", "a\r\nRSET", "caf\u{e9}"] {
        assert!(!valid_helo(bad), "{bad:?}");
    }
}

#[test]
fn tls_names() {
    let addr: SocketAddr = "192.0.2.1:25".parse().unwrap();
    assert_eq!(
        tls_name("mx.example.org.", addr),
        ServerName::try_from("mx.example.org").unwrap()
    );
    assert_eq!(
        tls_name("not a name", addr),
        ServerName::IpAddress("192.0.2.1".parse::<std::net::IpAddr>().unwrap().into())
    );
}

#[test]
fn options_debug_hides_the_password() {
    let opts = ClientOptions {
        auth: Some(("user".into(), "hunter2".into())),
        ..ClientOptions::default()
    };
    let text = format!("{opts:?}");
    assert!(text.contains("user") && !text.contains("hunter2"), "{text}");
}

#[test]
fn tls_configs_build() {
    assert!(tls_config(false, None).is_ok());
    assert!(tls_config(true, Some(&Arc::new(RootCertStore::empty()))).is_ok());
}

#[test]
fn preflight_refusals() {
    let caps = Capabilities {
        esmtp: true,
        size: Some(10),
        ..Capabilities::default()
    };
    let recipients = [Recipient {
        address: "a@b".into(),
        ..Recipient::default()
    }];
    let env = Envelope {
        sender: "s@b",
        recipients: &recipients,
        envid: "",
        ret: "",
        smtputf8: false,
        message: b"0123456789",
    };
    assert_eq!(preflight(&env, &caps, "mx"), None);
    let big = Envelope {
        message: b"0123456789A",
        ..env
    };
    let refusal = preflight(&big, &caps, "mx").unwrap();
    assert_eq!((refusal.code, refusal.enhanced), (552, Some((5, 3, 4))));
    let utf8 = Envelope {
        sender: "j\u{f6}rg@b",
        ..env
    };
    let refusal = preflight(&utf8, &caps, "mx").unwrap();
    assert_eq!((refusal.code, refusal.enhanced), (550, Some((5, 6, 7))));
    let with_utf8 = Capabilities {
        smtputf8: true,
        ..caps.clone()
    };
    assert_eq!(preflight(&utf8, &with_utf8, "mx"), None);
    let injected = Envelope {
        sender: "a@b>\r\nRCPT TO:<x@y",
        ..env
    };
    assert_eq!(preflight(&injected, &caps, "mx").map(|r| r.code), Some(501));
}
