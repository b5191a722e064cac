//! The outbound pieces against real peers: `merpati::dns::HickoryResolver`
//! against a DNS server started here with hickory-server, and
//! `merpati::smtp::client::send` against a Merpati instance, Postfix's
//! `smtp-sink`, and a small scripted SMTP server that answers per
//! recipient.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::{self, server};
use merpati::dns::{DnsError, HickoryResolver, MxAnswer, Resolver, address_literal};
use merpati::smtp::client::{
    ClientError, ClientOptions, Envelope, Recipient, SmtpConnection, TlsPolicy, Transcript,
    load_trust_anchors, send,
};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- DNS

type Dns = DnsServer;

/// Zone `relay.test.`:
/// - `mx`: MX 5 primary, MX 10 mx1, MX 10 mx2, MX 20 backup
/// - `nullmx`: MX 0 . (RFC 7505)
/// - `implicit`: A 127.0.0.4, AAAA ::1, no MX
/// - `mx1` A 127.0.0.2, `mx2` A 127.0.0.3
/// - anything else under `relay.test.`: NXDOMAIN; other zones: REFUSED.
async fn dns_server() -> Dns {
    DnsServer::start(
        &["relay.test."],
        vec![
            Rr::Mx("mx.relay.test.", 10, "mx1.relay.test."),
            Rr::Mx("mx.relay.test.", 20, "backup.relay.test."),
            Rr::Mx("mx.relay.test.", 10, "mx2.relay.test."),
            Rr::Mx("mx.relay.test.", 5, "primary.relay.test."),
            Rr::Mx("nullmx.relay.test.", 0, "."),
            Rr::A("implicit.relay.test.", Ipv4Addr::new(127, 0, 0, 4)),
            Rr::Aaaa("implicit.relay.test.", Ipv6Addr::LOCALHOST),
            Rr::A("mx1.relay.test.", Ipv4Addr::new(127, 0, 0, 2)),
            Rr::A("mx2.relay.test.", Ipv4Addr::new(127, 0, 0, 3)),
        ],
    )
}

fn resolver(dns: &Dns) -> HickoryResolver {
    HickoryResolver::new(&[dns.addr], Duration::from_secs(2)).expect("resolver")
}

fn hosts(answer: &MxAnswer) -> Vec<(u16, String)> {
    match answer {
        MxAnswer::Hosts(hosts) => hosts
            .iter()
            .map(|h| (h.preference, h.name.clone()))
            .collect(),
        other => panic!("expected MX hosts, got {other:?}"),
    }
}

#[tokio::test]
async fn dns_mx_sorted_by_preference_and_shuffled_among_equals() {
    let dns = dns_server().await;
    let resolver = resolver(&dns);
    let mut orders = std::collections::HashSet::new();
    for _ in 0..100 {
        let answer = resolver.mx("mx.relay.test").await.expect("mx");
        let hosts = hosts(&answer);
        let preferences: Vec<u16> = hosts.iter().map(|h| h.0).collect();
        assert_eq!(preferences, [5, 10, 10, 20], "{hosts:?}");
        assert_eq!(hosts[0].1, "primary.relay.test");
        assert_eq!(hosts[3].1, "backup.relay.test");
        orders.insert((hosts[1].1.clone(), hosts[2].1.clone()));
    }
    let expected: std::collections::HashSet<(String, String)> = [
        ("mx1.relay.test".to_string(), "mx2.relay.test".to_string()),
        ("mx2.relay.test".to_string(), "mx1.relay.test".to_string()),
    ]
    .into();
    assert_eq!(orders, expected, "both orders of the equal-preference pair");
    // A trailing dot and other letter case name the same domain.
    assert_eq!(
        hosts(&resolver.mx("MX.Relay.Test.").await.expect("mx")).len(),
        4
    );
    assert_eq!(
        resolver.addresses("mx1.relay.test").await,
        Ok(vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))])
    );
}

#[tokio::test]
async fn dns_null_mx_implicit_mx_and_nxdomain() {
    let dns = dns_server().await;
    let resolver = resolver(&dns);
    assert_eq!(resolver.mx("nullmx.relay.test").await, Ok(MxAnswer::NullMx));
    // Implicit MX: the domain exists, has no MX, and its A and AAAA
    // records are both returned (IPv6 first).
    assert_eq!(resolver.mx("implicit.relay.test").await, Ok(MxAnswer::NoMx));
    assert_eq!(
        resolver.addresses("implicit.relay.test").await,
        Ok(vec![
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4))
        ])
    );
    // NXDOMAIN is permanent, for MX and for addresses.
    assert_eq!(
        resolver.mx("nothing.relay.test").await,
        Err(DnsError::NoSuchDomain)
    );
    assert_eq!(
        resolver.addresses("nothing.relay.test").await,
        Err(DnsError::NoSuchDomain)
    );
    // A name with records, but no addresses: no error, no address.
    assert_eq!(resolver.addresses("mx.relay.test").await, Ok(vec![]));
    // The MX host of a null-MX lookup list is never looked up: address
    // literals bypass DNS entirely.
    assert_eq!(
        address_literal("[127.0.0.9]"),
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)))
    );
}

#[tokio::test]
async fn dns_failures_are_temporary() {
    let dns = dns_server().await;
    let resolver = resolver(&dns);
    // A zone the server does not serve: REFUSED.
    assert!(
        matches!(
            resolver.mx("elsewhere.example").await,
            Err(DnsError::Temporary(_))
        ),
        "REFUSED must be temporary"
    );
    assert!(matches!(
        resolver.addresses("elsewhere.example").await,
        Err(DnsError::Temporary(_))
    ));
    // A server that never answers: a timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let silent_addr = silent.local_addr().expect("addr");
    let resolver =
        HickoryResolver::new(&[silent_addr], Duration::from_millis(200)).expect("resolver");
    let started = Instant::now();
    let answer = resolver.mx("mx.relay.test").await;
    assert!(matches!(answer, Err(DnsError::Temporary(_))), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------- SMTP helpers

fn recipient(address: &str) -> Recipient {
    Recipient {
        address: address.to_string(),
        ..Recipient::default()
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        helo_name: "client.relay.test".into(),
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(10),
        data_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

fn envelope<'a>(sender: &'a str, recipients: &'a [Recipient], message: &'a [u8]) -> Envelope<'a> {
    Envelope {
        sender,
        recipients,
        envid: "",
        ret: "",
        smtputf8: false,
        message,
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `(code, "x.y.z")` per recipient.
fn codes(transcript: &Transcript) -> Vec<(u16, String)> {
    transcript
        .results
        .iter()
        .map(|r| {
            let enhanced = r
                .reply
                .enhanced
                .map(|(a, b, c)| format!("{a}.{b}.{c}"))
                .unwrap_or_default();
            (r.reply.code, enhanced)
        })
        .collect()
}

fn code_list(transcript: &Transcript) -> Vec<u16> {
    transcript.results.iter().map(|r| r.reply.code).collect()
}

const MESSAGE: &[u8] = b"From: Sender <sender@relay.test>\r\nTo: rcpt@localhost\r\n\
Subject: relay client test\r\n\r\nhello from the relay client\r\n.leading dot\r\ncaf\xc3\xa9\r\n";

// ------------------------------------------------ against Merpati itself

#[tokio::test]
async fn merpati_peer_gets_per_recipient_results_over_starttls() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    server.add_user("bob@localhost", "pw");
    let recipients = [
        recipient("alice@localhost"),
        recipient("nobody@localhost"),
        recipient("bob@localhost"),
    ];
    let opts = options();
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let transcript = send(local(server.port), harness::HOSTNAME, &opts, &env)
        .await
        .expect("session");
    let results = codes(&transcript);
    assert_eq!(results[0], (250, "2.0.0".into()), "{transcript:?}");
    assert_eq!(results[1], (550, "5.1.1".into()), "{transcript:?}");
    assert_eq!(results[2], (250, "2.0.0".into()), "{transcript:?}");
    assert!(transcript.results.iter().all(|r| r.from_peer));
    assert!(
        transcript.results[1]
            .reply
            .to_string()
            .contains("nobody@localhost")
    );
    let tls = transcript.tls.as_deref().expect("STARTTLS used");
    assert!(
        tls.starts_with("TLSv1.3 ") && tls.ends_with(" unverified"),
        "{tls}"
    );
    assert!(transcript.peer_dsn);
    assert_eq!(
        transcript.remote,
        format!("{}[127.0.0.1]:{}", harness::HOSTNAME, server.port)
    );
    for user in ["alice@localhost", "bob@localhost"] {
        let uids = server.wait_for_mail(user, 1);
        assert_eq!(uids.len(), 1, "{user}");
        let message = server.message(user, uids[0]);
        assert!(
            message.contains("Subject: relay client test\r\n"),
            "{message}"
        );
        assert!(
            message
                .ends_with("\r\n\r\nhello from the relay client\r\n.leading dot\r\ncaf\u{e9}\r\n"),
            "{message}"
        );
        assert!(
            message.contains("client.relay.test"),
            "HELO name in Received: {message}"
        );
    }
    assert!(server.log().contains("STARTTLS with"), "{}", server.log());
}

#[tokio::test]
async fn merpati_peer_certificate_checks() {
    let server = server();
    server.add_user("alice@localhost", "pw");
    let recipients = [recipient("alice@localhost")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    // Required and verified against the system CA bundle: the self-signed
    // certificate fails, and there is no plaintext fallback.
    let strict = ClientOptions {
        tls: TlsPolicy::Encrypt,
        verify_certificates: true,
        ..options()
    };
    let error = send(local(server.port), harness::HOSTNAME, &strict, &env)
        .await
        .expect_err("self-signed certificate must not verify");
    let ClientError::Tls(why) = &error else {
        panic!("expected a TLS error, got {error:?}");
    };
    assert!(why.contains("certificate"), "{why}");
    assert!(!error.is_permanent() && error.try_next_host());
    // Required but unverified (Postfix "encrypt"): delivered.
    let encrypt = ClientOptions {
        tls: TlsPolicy::Encrypt,
        ..options()
    };
    let transcript = send(local(server.port), harness::HOSTNAME, &encrypt, &env)
        .await
        .expect("encrypt");
    assert_eq!(code_list(&transcript), [250]);
    assert!(
        transcript
            .tls
            .as_deref()
            .is_some_and(|t| t.ends_with(" unverified"))
    );
    // Verified against the server's own certificate as trust anchor.
    let anchors =
        load_trust_anchors(&server.data_dir().join("tls").join("cert.pem")).expect("anchors");
    let pinned = ClientOptions {
        trust_anchors: Some(Arc::new(anchors)),
        ..strict.clone()
    };
    let transcript = send(local(server.port), harness::HOSTNAME, &pinned, &env)
        .await
        .expect("verified");
    assert_eq!(code_list(&transcript), [250]);
    assert!(
        transcript
            .tls
            .as_deref()
            .is_some_and(|t| t.ends_with(" verified")),
        "{transcript:?}"
    );
    // ... but not under a name the certificate does not carry.
    let error = send(local(server.port), "mx.elsewhere.test", &pinned, &env)
        .await
        .expect_err("name mismatch");
    assert!(matches!(error, ClientError::Tls(_)), "{error:?}");
    assert_eq!(server.wait_for_mail("alice@localhost", 2).len(), 2);
    // TLS disabled: plaintext, still delivered.
    let plain = ClientOptions {
        tls: TlsPolicy::None,
        ..options()
    };
    let transcript = send(local(server.port), harness::HOSTNAME, &plain, &env)
        .await
        .expect("plaintext");
    assert_eq!((code_list(&transcript), transcript.tls), (vec![250], None));
}

#[tokio::test]
async fn merpati_submission_with_auth_and_recipient_limit() {
    let server = server();
    server.add_user("alice@localhost", "secret");
    server.add_user("bob@localhost", "pw");
    server.add_user("carol@localhost", "pw");
    let recipients = [
        recipient("bob@localhost"),
        recipient("nobody@localhost"),
        recipient("carol@localhost"),
    ];
    // Submission checks that the From: header belongs to the user too.
    let message =
        b"From: Alice <alice@localhost>\r\nTo: bob@localhost\r\nSubject: submitted\r\n\r\nhi\r\n";
    let env = envelope("alice@localhost", &recipients, message);
    let port = server.ports.submission;
    // Credentials are never sent without TLS.
    let plaintext = ClientOptions {
        tls: TlsPolicy::None,
        auth: Some(("alice@localhost".into(), "secret".into())),
        ..options()
    };
    let error = send(local(port), harness::HOSTNAME, &plaintext, &env)
        .await
        .expect_err("no AUTH without TLS");
    assert!(matches!(error, ClientError::Auth(_)), "{error:?}");
    // A wrong password: a temporary failure (soft bounce).
    let wrong = ClientOptions {
        tls: TlsPolicy::Encrypt,
        auth: Some(("alice@localhost".into(), "wrong".into())),
        ..options()
    };
    let error = send(local(port), harness::HOSTNAME, &wrong, &env)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(&error, ClientError::Auth(why) if why.contains("535")),
        "{error:?}"
    );
    assert!(!error.is_permanent());
    // Right password, one recipient per transaction: three transactions
    // on one connection (one of them refused at RCPT).
    let opts = ClientOptions {
        tls: TlsPolicy::Encrypt,
        auth: Some(("alice@localhost".into(), "secret".into())),
        max_recipients: 1,
        ..options()
    };
    let transcript = send(local(port), harness::HOSTNAME, &opts, &env)
        .await
        .expect("submission");
    assert_eq!(code_list(&transcript), [250, 550, 250], "{transcript:?}");
    for user in ["bob@localhost", "carol@localhost"] {
        assert_eq!(server.wait_for_mail(user, 1).len(), 1, "{user}");
    }
    let log = server.log();
    assert!(
        log.contains("sasl_method=PLAIN, sasl_username=alice"),
        "{log}"
    );
    assert!(!log.contains("secret"), "password in the server log");
}

// ------------------------------------------------------ Postfix smtp-sink

/// Postfix's `smtp-sink`, appending every transaction to a dump file.
struct Sink {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    fn start(flags: &[&str]) -> Sink {
        let binary = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "Postfix's smtp-sink is required for this test; install it \
                     (Debian/Ubuntu: apt-get install postfix)"
                )
            });
        let dir = tempfile::tempdir().expect("tempdir");
        // smtp-sink drops privileges to "nobody" when run as root; the
        // dump directory must stay writable for it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut command = Command::new(binary);
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .args(flags)
            .arg("-D")
            .arg(dir.path().join("dump"))
            .arg(format!("127.0.0.1:{port}"))
            .arg("10")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn smtp-sink");
        let mut sink = Sink { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("smtp-sink exited with {status}");
            }
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        sink
    }

    /// The dump file as it is now.
    fn dump_now(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dump")).unwrap_or_default()
    }

    /// The dump file once it holds `transactions` transactions.
    fn dump(&self, transactions: usize) -> String {
        let path = self.dir.path().join("dump");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.matches("X-Mail-Args:").count() >= transactions || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test]
async fn smtp_sink_with_pipelining_dsn_and_8bitmime() {
    let sink = Sink::start(&[]);
    let recipients = [
        Recipient {
            address: "one@sink.test".into(),
            notify: "success,failure".into(),
            orcpt: "rfc822;one+x@sink.test".into(),
        },
        Recipient {
            address: "two@sink.test".into(),
            notify: "NEVER".into(),
            orcpt: String::new(),
        },
        recipient("three@sink.test"),
    ];
    let env = Envelope {
        envid: "queue id=1",
        ret: "HDRS",
        ..envelope("sender@relay.test", &recipients, MESSAGE)
    };
    let transcript = send(local(sink.port), "sink.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(code_list(&transcript), [250, 250, 250], "{transcript:?}");
    assert!(transcript.peer_dsn);
    assert_eq!(transcript.tls, None, "smtp-sink has no STARTTLS");
    let dump = sink.dump(1);
    // smtp-sink announces no SIZE, so no SIZE parameter.
    assert!(
        dump.contains(
            "X-Mail-Args: <sender@relay.test> BODY=8BITMIME RET=HDRS ENVID=queue+20id+3D1\n"
        ),
        "{dump}"
    );
    assert!(
        dump.contains(
            "X-Rcpt-Args: <one@sink.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;one+2Bx@sink.test\n"
        ),
        "{dump}"
    );
    assert!(
        dump.contains("X-Rcpt-Args: <two@sink.test> NOTIFY=NEVER\n"),
        "{dump}"
    );
    assert!(dump.contains("X-Rcpt-Args: <three@sink.test>\n"), "{dump}");
    assert!(dump.contains("X-Helo-Args: client.relay.test\n"), "{dump}");
    assert!(
        dump.contains("\nhello from the relay client\n.leading dot\ncaf\u{e9}\n"),
        "{dump}"
    );
}

#[tokio::test]
async fn smtp_sink_without_esmtp_gets_helo_and_no_parameters() {
    // -e: no ESMTP, EHLO is answered "500 5.5.1": fall back to HELO, and
    // send no parameters at all.
    let sink = Sink::start(&["-e"]);
    let recipients = [Recipient {
        address: "one@sink.test".into(),
        notify: "SUCCESS".into(),
        orcpt: "rfc822;one@sink.test".into(),
    }];
    let env = Envelope {
        envid: "id",
        ret: "FULL",
        ..envelope("sender@relay.test", &recipients, MESSAGE)
    };
    let transcript = send(local(sink.port), "sink.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(code_list(&transcript), [250]);
    assert!(!transcript.peer_dsn);
    let dump = sink.dump(1);
    assert!(dump.contains("X-Client-Proto: SMTP\n"), "{dump}");
    assert!(
        dump.contains("X-Mail-Args: <sender@relay.test>\n"),
        "{dump}"
    );
    assert!(dump.contains("X-Rcpt-Args: <one@sink.test>\n"), "{dump}");
}

#[tokio::test]
async fn smtp_sink_refusals() {
    // Every RCPT refused (-f implies no PIPELINING): per-recipient 5xx,
    // RSET instead of DATA, no message.
    let sink = Sink::start(&["-f", "RCPT"]);
    let recipients = [recipient("one@sink.test"), recipient("two@sink.test")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let transcript = send(local(sink.port), "sink.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(
        codes(&transcript),
        [(500, "5.3.0".into()), (500, "5.3.0".into())]
    );
    assert!(!sink.dump_now().contains("relay client"), "no message sent");
    drop(sink);

    // MAIL FROM refused with 4xx: the whole transaction, temporarily.
    let sink = Sink::start(&["-r", "MAIL"]);
    let error = send(local(sink.port), "sink.test", &options(), &env)
        .await
        .expect_err("MAIL refused");
    assert!(
        matches!(&error, ClientError::Transaction(r) if r.code == 450),
        "{error:?}"
    );
    assert!(!error.is_permanent() && error.try_next_host());
    drop(sink);

    // 421 and disconnect at the first RCPT, with PIPELINING: every
    // recipient gets the 421.
    let sink = Sink::start(&["-Q", "RCPT"]);
    let transcript = send(local(sink.port), "sink.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(code_list(&transcript), [421, 421], "{transcript:?}");
    assert!(
        transcript
            .results
            .iter()
            .all(|r| r.from_peer && r.reply.is_transient())
    );
    drop(sink);

    // The connection dropped at DATA after accepted recipients: a made-up
    // 4.4.2 for each, marked as not from the peer.
    let sink = Sink::start(&["-q", "DATA"]);
    let transcript = send(local(sink.port), "sink.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(
        codes(&transcript),
        [(451, "4.4.2".into()), (451, "4.4.2".into())],
        "{transcript:?}"
    );
    assert!(transcript.results.iter().all(|r| !r.from_peer));
    assert!(
        transcript.results[0]
            .reply
            .to_string()
            .contains("lost connection with sink.test[127.0.0.1]"),
        "{transcript:?}"
    );
}

// ------------------------------------------------ scripted SMTP server

/// How the scripted server behaves.
#[derive(Clone)]
struct Script {
    greeting: &'static str,
    /// EHLO keywords; `None` answers EHLO with 502 (HELO only).
    ehlo: Option<Vec<&'static str>>,
    /// Never say anything (for timeouts).
    silent: bool,
    /// What to do after `220` to STARTTLS (offer STARTTLS in `ehlo`).
    starttls: Starttls,
    /// Close the connection, without a word, after one message.
    one_message_per_connection: bool,
}

/// The scripted server has no TLS; it only breaks the handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Starttls {
    /// `502` to STARTTLS.
    Refuse,
    /// `220`, then close the connection: the handshake fails.
    Close,
    /// `220` followed at once by a plaintext reply, then close (response
    /// injection).
    Inject,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            greeting: "220 scripted.test ESMTP",
            ehlo: Some(vec!["ENHANCEDSTATUSCODES", "SIZE 100000"]),
            silent: false,
            starttls: Starttls::Refuse,
            one_message_per_connection: false,
        }
    }
}

/// What the scripted server saw.
#[derive(Default, Debug)]
struct Seen {
    /// Command lines, in order, over all connections.
    commands: Vec<String>,
    /// DATA contents as received (dot-stuffed, up to and without the
    /// final ".").
    messages: Vec<Vec<u8>>,
    /// A command arrived while another was still unanswered.
    pipelined: bool,
    /// TCP connections accepted.
    connections: usize,
}

struct Scripted {
    port: u16,
    seen: Arc<Mutex<Seen>>,
}

impl Scripted {
    fn start(script: Script) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else {
                    return;
                };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                serve(stream, &script, &shared);
            }
        });
        Scripted { port, seen }
    }

    fn commands(&self) -> Vec<String> {
        self.seen.lock().unwrap().commands.clone()
    }

    fn verbs(&self) -> Vec<String> {
        self.commands()
            .iter()
            .map(|c| {
                c.split([' ', ':'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_uppercase()
            })
            .collect()
    }
}

/// One connection of the scripted server: `RCPT TO:<defer@…>` gets 450
/// 4.2.0, `RCPT TO:<reject@…>` 550 5.1.1, others 250.
fn serve(stream: TcpStream, script: &Script, seen: &Mutex<Seen>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    seen.lock().unwrap().connections += 1;
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    if script.silent {
        let mut sink = Vec::new();
        let _ = reader.read_until(0, &mut sink);
        return;
    }
    let mut say = |text: &str| out.write_all(format!("{text}\r\n").as_bytes()).is_ok();
    if !say(script.greeting) {
        return;
    }
    let refusing = !script.greeting.starts_with('2');
    let mut accepted = 0;
    let mut in_mail = false;
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        {
            let mut seen = seen.lock().unwrap();
            if !reader.buffer().is_empty() {
                seen.pipelined = true;
            }
            seen.commands.push(text.clone());
        }
        let reply: String = if upper == "QUIT" {
            say("221 2.0.0 Bye");
            return;
        } else if refusing {
            "503 5.5.1 Error: go away".into()
        } else if upper.starts_with("EHLO ") {
            match &script.ehlo {
                None => "502 5.5.2 Error: command not recognized".into(),
                Some(keywords) => {
                    let mut lines = vec!["250-scripted.test".to_string()];
                    lines.extend(keywords.iter().map(|k| format!("250-{k}")));
                    lines.push("250 HELP".into());
                    lines.join("\r\n")
                }
            }
        } else if upper.starts_with("HELO ") {
            "250 scripted.test".into()
        } else if upper == "STARTTLS" {
            match script.starttls {
                Starttls::Refuse => "502 5.5.2 Error: command not recognized".into(),
                Starttls::Close => {
                    say("220 2.0.0 Ready to start TLS");
                    return;
                }
                Starttls::Inject => {
                    say("220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected");
                    return;
                }
            }
        } else if upper.starts_with("MAIL FROM:") {
            in_mail = true;
            accepted = 0;
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            if !in_mail {
                "503 5.5.1 Error: need MAIL command".into()
            } else if upper.starts_with("RCPT TO:<DEFER@") {
                format!("450 4.2.0 {}: Mailbox busy, try again", &text[8..])
            } else if upper.starts_with("RCPT TO:<REJECT@") {
                format!(
                    "550-5.1.1 {}: Recipient address rejected:\r\n550 5.1.1 User unknown",
                    &text[8..]
                )
            } else {
                accepted += 1;
                "250 2.1.5 Ok".into()
            }
        } else if upper == "DATA" {
            if accepted == 0 {
                "554 5.5.1 Error: no valid recipients".into()
            } else {
                say("354 End data with <CR><LF>.<CR><LF>");
                let mut message = Vec::new();
                loop {
                    let mut line = Vec::new();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    message.extend_from_slice(&line);
                }
                seen.lock().unwrap().messages.push(message);
                in_mail = false;
                if script.one_message_per_connection {
                    say("250 2.0.0 Ok: queued as SCRIPTED");
                    return;
                }
                "250 2.0.0 Ok: queued as SCRIPTED".into()
            }
        } else if upper == "RSET" {
            in_mail = false;
            "250 2.0.0 Ok".into()
        } else {
            "502 5.5.2 Error: command not recognized".into()
        };
        if !say(&reply) {
            return;
        }
    }
}

#[tokio::test]
async fn scripted_peer_answers_per_recipient() {
    let peer = Scripted::start(Script::default());
    let recipients = [
        Recipient {
            address: "ok@scripted.test".into(),
            notify: "SUCCESS".into(),
            orcpt: "rfc822;ok@scripted.test".into(),
        },
        recipient("defer@scripted.test"),
        recipient("reject@scripted.test"),
        recipient("also-ok@scripted.test"),
    ];
    let env = Envelope {
        envid: "id1",
        ret: "HDRS",
        ..envelope("sender@relay.test", &recipients, MESSAGE)
    };
    let transcript = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(
        codes(&transcript),
        [
            (250, "2.0.0".into()),
            (450, "4.2.0".into()),
            (550, "5.1.1".into()),
            (250, "2.0.0".into())
        ],
        "{transcript:?}"
    );
    assert_eq!(
        transcript.results[2].reply.lines,
        [
            "<reject@scripted.test>: Recipient address rejected:",
            "User unknown"
        ]
    );
    assert_eq!(transcript.tls, None);
    assert!(!transcript.peer_dsn);
    let commands = peer.commands();
    // SIZE is offered: SIZE= sent; no 8BITMIME, no DSN: nothing else,
    // although the message is 8-bit and the envelope has DSN fields.
    assert_eq!(
        commands,
        [
            "EHLO client.relay.test".to_string(),
            format!("MAIL FROM:<sender@relay.test> SIZE={}", MESSAGE.len()),
            "RCPT TO:<ok@scripted.test>".into(),
            "RCPT TO:<defer@scripted.test>".into(),
            "RCPT TO:<reject@scripted.test>".into(),
            "RCPT TO:<also-ok@scripted.test>".into(),
            "DATA".into(),
            "QUIT".into(),
        ]
    );
    let seen = peer.seen.lock().unwrap();
    assert!(!seen.pipelined, "no PIPELINING offered, none used");
    // Dot-stuffed on the wire.
    assert_eq!(seen.messages.len(), 1);
    assert!(
        seen.messages[0]
            .ends_with(b"\r\nhello from the relay client\r\n..leading dot\r\ncaf\xc3\xa9\r\n")
    );
}

#[tokio::test]
async fn scripted_peer_without_ehlo_gets_helo() {
    let peer = Scripted::start(Script {
        ehlo: None,
        ..Script::default()
    });
    let recipients = [
        recipient("ok@scripted.test"),
        recipient("reject@scripted.test"),
    ];
    let env = envelope("", &recipients, MESSAGE);
    let transcript = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(code_list(&transcript), [250, 550]);
    assert_eq!(
        peer.commands(),
        [
            "EHLO client.relay.test",
            "HELO client.relay.test",
            "MAIL FROM:<>",
            "RCPT TO:<ok@scripted.test>",
            "RCPT TO:<reject@scripted.test>",
            "DATA",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn scripted_peer_refusing_every_recipient_gets_rset_not_data() {
    let peer = Scripted::start(Script::default());
    let recipients = [
        recipient("defer@scripted.test"),
        recipient("reject@scripted.test"),
    ];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let transcript = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(code_list(&transcript), [450, 550]);
    assert_eq!(
        peer.verbs(),
        ["EHLO", "MAIL", "RCPT", "RCPT", "RSET", "QUIT"]
    );
    assert!(peer.seen.lock().unwrap().messages.is_empty());
}

#[tokio::test]
async fn scripted_peer_too_small_for_the_message() {
    let peer = Scripted::start(Script {
        ehlo: Some(vec!["SIZE 100"]),
        ..Script::default()
    });
    let recipients = [recipient("ok@scripted.test")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    assert!(MESSAGE.len() > 100);
    let error = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect_err("SIZE");
    let ClientError::Transaction(reply) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        (reply.code, reply.enhanced),
        (552, Some((5, 3, 4))),
        "{reply}"
    );
    assert!(error.is_permanent() && !error.try_next_host());
    // Nothing sent: the check happens before MAIL FROM.
    assert_eq!(peer.verbs(), ["EHLO", "QUIT"]);
}

#[tokio::test]
async fn scripted_peer_without_smtputf8_or_starttls() {
    let peer = Scripted::start(Script::default());
    let recipients = [recipient("j\u{f6}rg@scripted.test")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let error = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect_err("SMTPUTF8");
    let ClientError::Transaction(reply) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(reply.enhanced, Some((5, 6, 7)), "{reply}");
    assert!(reply.is_permanent());
    assert_eq!(peer.verbs(), ["EHLO", "QUIT"]);

    let recipients = [recipient("ok@scripted.test")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let encrypt = ClientOptions {
        tls: TlsPolicy::Encrypt,
        ..options()
    };
    let error = send(local(peer.port), "scripted.test", &encrypt, &env)
        .await
        .expect_err("TLS required");
    assert!(
        matches!(&error, ClientError::Tls(why) if why.contains("not offered")),
        "{error:?}"
    );
    assert_eq!(peer.verbs(), ["EHLO", "QUIT", "EHLO", "QUIT"]);
}

#[tokio::test]
async fn scripted_peer_with_421_greeting() {
    let peer = Scripted::start(Script {
        greeting: "421 4.3.2 scripted.test Service not available",
        ..Script::default()
    });
    let recipients = [recipient("ok@scripted.test")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let error = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect_err("421");
    let ClientError::Greeting(reply) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(reply.code, 421);
    assert!(!error.is_permanent() && error.try_next_host());
    assert_eq!(peer.verbs(), ["QUIT"]);
}

#[tokio::test]
async fn scripted_peer_gets_several_transactions_when_over_the_limit() {
    let peer = Scripted::start(Script::default());
    let recipients = [
        recipient("a@scripted.test"),
        recipient("reject@scripted.test"),
        recipient("defer@scripted.test"),
        recipient("b@scripted.test"),
        recipient("c@scripted.test"),
    ];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let opts = ClientOptions {
        max_recipients: 2,
        ..options()
    };
    let transcript = send(local(peer.port), "scripted.test", &opts, &env)
        .await
        .expect("session");
    assert_eq!(code_list(&transcript), [250, 550, 450, 250, 250]);
    assert_eq!(
        peer.verbs(),
        [
            "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "MAIL", "RCPT", "RCPT", "DATA", "MAIL", "RCPT",
            "DATA", "QUIT"
        ]
    );
    assert_eq!(peer.seen.lock().unwrap().messages.len(), 3);
}

#[tokio::test]
async fn unreachable_and_silent_peers() {
    // Nobody listening: a connect error, worth trying the next host.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let recipients = [recipient("ok@scripted.test")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let error = send(local(port), "closed.test", &options(), &env)
        .await
        .expect_err("closed port");
    assert!(
        matches!(&error, ClientError::Connect(why) if why.contains("closed.test[127.0.0.1]")),
        "{error:?}"
    );
    assert!(error.try_next_host() && !error.is_permanent());
    // A peer that never greets: a timeout.
    let peer = Scripted::start(Script {
        silent: true,
        ..Script::default()
    });
    let opts = ClientOptions {
        command_timeout: Duration::from_millis(300),
        ..options()
    };
    let started = Instant::now();
    let error = send(local(peer.port), "silent.test", &opts, &env)
        .await
        .expect_err("silent");
    assert!(
        matches!(error, ClientError::Timeout(stage) if stage.contains("greeting")),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn scripted_peer_with_every_extension_gets_one_pipelined_batch() {
    let peer = Scripted::start(Script {
        ehlo: Some(vec![
            "PIPELINING",
            "SIZE 100000",
            "8BITMIME",
            "SMTPUTF8",
            "DSN",
            "ENHANCEDSTATUSCODES",
        ]),
        ..Script::default()
    });
    let recipients = [
        Recipient {
            address: "ok@scripted.test".into(),
            notify: "SUCCESS,DELAY".into(),
            orcpt: "rfc822;ok@scripted.test".into(),
        },
        Recipient {
            address: "j\u{f6}rg@scripted.test".into(),
            notify: String::new(),
            orcpt: "rfc822;j\u{f6}rg@scripted.test".into(),
        },
        recipient("reject@scripted.test"),
        recipient("defer@scripted.test"),
    ];
    let env = Envelope {
        envid: "id1",
        ret: "FULL",
        ..envelope("sender@relay.test", &recipients, MESSAGE)
    };
    let transcript = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(
        code_list(&transcript),
        [250, 250, 550, 450],
        "{transcript:?}"
    );
    assert!(transcript.peer_dsn);
    let expected: Vec<String> = vec![
        "EHLO client.relay.test".into(),
        format!(
            "MAIL FROM:<sender@relay.test> SIZE={} BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=id1",
            MESSAGE.len()
        ),
        "RCPT TO:<ok@scripted.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;ok@scripted.test".into(),
        "RCPT TO:<j\u{f6}rg@scripted.test> ORCPT=utf-8;j\\x{F6}rg@scripted.test".into(),
        "RCPT TO:<reject@scripted.test>".into(),
        "RCPT TO:<defer@scripted.test>".into(),
        "DATA".into(),
        "QUIT".into(),
    ];
    assert_eq!(peer.commands(), expected);
    assert!(
        peer.seen.lock().unwrap().pipelined,
        "MAIL, RCPTs and DATA in one batch"
    );

    // Pipelined with every recipient refused: DATA is answered 554, which
    // belongs to nobody; each recipient keeps its RCPT reply.
    let recipients = [
        recipient("reject@scripted.test"),
        recipient("defer@scripted.test"),
    ];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let transcript = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect("session");
    assert_eq!(
        codes(&transcript),
        [(550, "5.1.1".into()), (450, "4.2.0".into())]
    );
    let verbs = peer.verbs();
    assert_eq!(
        verbs[verbs.len() - 6..],
        ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    );
    assert_eq!(
        peer.seen.lock().unwrap().messages.len(),
        1,
        "only the first session's message"
    );
}

#[tokio::test]
async fn scripted_peer_with_broken_starttls() {
    // Opportunistic TLS: the handshake fails, the delivery is retried in
    // plaintext on a new connection.
    let peer = Scripted::start(Script {
        ehlo: Some(vec!["STARTTLS", "SIZE 100000"]),
        starttls: Starttls::Close,
        ..Script::default()
    });
    let recipients = [recipient("ok@scripted.test")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let transcript = send(local(peer.port), "scripted.test", &options(), &env)
        .await
        .expect("plaintext fallback");
    assert_eq!(
        (code_list(&transcript), transcript.tls.clone()),
        (vec![250], None)
    );
    assert_eq!(
        peer.verbs(),
        ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    );

    // Required TLS: no fallback.
    let encrypt = ClientOptions {
        tls: TlsPolicy::Encrypt,
        ..options()
    };
    let error = send(local(peer.port), "scripted.test", &encrypt, &env)
        .await
        .expect_err("handshake fails");
    assert!(
        matches!(&error, ClientError::Tls(why) if why.contains("handshake")),
        "{error:?}"
    );

    // Plaintext sent right after the 220 is never read as if it came
    // through TLS.
    let injecting = Scripted::start(Script {
        ehlo: Some(vec!["STARTTLS"]),
        starttls: Starttls::Inject,
        ..Script::default()
    });
    let error = send(local(injecting.port), "scripted.test", &encrypt, &env)
        .await
        .expect_err("injection");
    assert!(
        matches!(&error, ClientError::Tls(why) if why.contains("plaintext")),
        "{error:?}"
    );
    assert_eq!(injecting.verbs(), ["EHLO", "STARTTLS"]);
}

// ------------------------------------------------ connection reuse

#[tokio::test]
async fn scripted_peer_gets_two_messages_on_one_connection() {
    let peer = Scripted::start(Script::default());
    let first = [
        recipient("a@scripted.test"),
        recipient("reject@scripted.test"),
    ];
    let second = [recipient("b@scripted.test")];
    let mut connection = SmtpConnection::open(local(peer.port), "scripted.test", &options())
        .await
        .expect("open");
    assert!(connection.reusable());
    let transcript = connection
        .deliver(&envelope("one@relay.test", &first, MESSAGE))
        .await
        .expect("first message");
    assert_eq!(code_list(&transcript), [250, 550]);
    assert!(connection.reusable(), "{connection:?}");
    let transcript = connection
        .deliver(&envelope("two@relay.test", &second, MESSAGE))
        .await
        .expect("second message");
    assert_eq!(code_list(&transcript), [250]);
    assert_eq!(
        transcript.remote,
        "scripted.test[127.0.0.1]:".to_string() + &peer.port.to_string()
    );
    assert_eq!((connection.uses(), connection.reusable()), (2, true));
    connection.quit().await;
    let seen = peer.seen.lock().unwrap();
    assert_eq!(seen.connections, 1, "{:?}", seen.commands);
    assert_eq!(seen.messages.len(), 2);
    drop(seen);
    // A reused connection is checked with RSET before the next MAIL.
    assert_eq!(
        peer.verbs(),
        [
            "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA", "QUIT"
        ]
    );
}

#[tokio::test]
async fn connection_closed_by_the_peer_fails_before_any_recipient() {
    let peer = Scripted::start(Script {
        one_message_per_connection: true,
        ..Script::default()
    });
    let recipients = [recipient("a@scripted.test")];
    let env = envelope("sender@relay.test", &recipients, MESSAGE);
    let mut connection = SmtpConnection::open(local(peer.port), "scripted.test", &options())
        .await
        .expect("open");
    let transcript = connection.deliver(&env).await.expect("first message");
    assert_eq!(code_list(&transcript), [250]);
    // The peer has hung up meanwhile: the RSET check fails, nothing is
    // said about the recipients, and the connection is done.
    let error = connection.deliver(&env).await.expect_err("closed");
    assert!(
        matches!(error, ClientError::Io(_) | ClientError::Protocol(_)),
        "{error:?}"
    );
    assert!(!connection.reusable());
    connection.quit().await;
    assert_eq!(peer.seen.lock().unwrap().messages.len(), 1);
}

mod agent {
    use super::*;
    use merpati::config::Config;
    use merpati::delivery::Outcome;
    use merpati::delivery::relay::{CACHE_TIME_LIMIT, RelayAgent, RelayJob};
    use merpati::live::Live;

    /// A relay agent that sends `scripted.test` to `port` on loopback
    /// (a transport: no DNS lookup).
    async fn agent(port: u16) -> (RelayAgent, Dns) {
        let mut config = Config {
            myhostname: "client.relay.test".into(),
            ..Config::default()
        };
        config
            .relay
            .transports
            .insert("scripted.test".into(), format!("127.0.0.1:{port}"));
        let dns = dns_server().await;
        let agent = RelayAgent::new(Arc::new(Live::new(config)), Arc::new(resolver(&dns)));
        (agent, dns)
    }

    async fn relay(agent: &RelayAgent, to: &str) -> Vec<Outcome> {
        agent
            .deliver(RelayJob {
                domain: "scripted.test",
                sender: "sender@relay.test",
                recipients: vec![recipient(to)],
                message: MESSAGE,
                envid: "",
                ret: "",
                smtputf8: false,
            })
            .await
            .into_iter()
            .map(|r| r.outcome)
            .collect()
    }

    fn sent(outcomes: &[Outcome]) -> bool {
        outcomes.iter().all(|o| matches!(o, Outcome::Sent(_)))
    }

    #[tokio::test]
    async fn relay_agent_reuses_one_connection_for_a_backlog() {
        let peer = Scripted::start(Script::default());
        let (agent, _dns) = agent(peer.port).await;
        for to in ["a@scripted.test", "b@scripted.test", "c@scripted.test"] {
            let outcomes = relay(&agent, to).await;
            assert!(sent(&outcomes), "{to}: {outcomes:?}");
        }
        {
            let seen = peer.seen.lock().unwrap();
            assert_eq!(seen.messages.len(), 3);
            assert_eq!(seen.connections, 1, "{:?}", seen.commands);
        }
        assert!(!peer.verbs().contains(&"QUIT".to_string()), "still cached");
        // Idle for longer than the time limit: closed with QUIT; the next
        // message gets a new connection.
        tokio::time::sleep(CACHE_TIME_LIMIT + Duration::from_millis(500)).await;
        assert_eq!(peer.verbs().last().map(String::as_str), Some("QUIT"));
        assert!(sent(&relay(&agent, "d@scripted.test").await));
        assert_eq!(peer.seen.lock().unwrap().connections, 2);
        // Dropping the agent closes what it has cached: the scripted
        // server (one connection at a time) moves on to the next one.
        drop(agent);
        let _next = TcpStream::connect(local(peer.port)).expect("connect");
        let closed = harness::wait_until(Duration::from_secs(5), || {
            peer.seen.lock().unwrap().connections == 3
        });
        assert!(closed, "{:?}", peer.commands());
    }

    #[tokio::test]
    async fn relay_agent_replaces_a_connection_the_peer_closed() {
        let peer = Scripted::start(Script {
            one_message_per_connection: true,
            ..Script::default()
        });
        let (agent, _dns) = agent(peer.port).await;
        for to in ["a@scripted.test", "b@scripted.test"] {
            let outcomes = relay(&agent, to).await;
            assert!(sent(&outcomes), "{to}: {outcomes:?}");
        }
        let seen = peer.seen.lock().unwrap();
        assert_eq!(seen.messages.len(), 2);
        assert_eq!(seen.connections, 2, "{:?}", seen.commands);
    }
}
