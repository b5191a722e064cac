//! Certificates in service: ACME issuance, renewal and a failed challenge
//! against Debian's Pebble (the ACME test server, validating through a
//! loopback DNS server of the test), and an admin's certificate replaced
//! on disk and loaded by SIGHUP. Every TLS listener is asked with
//! openssl s_client which certificate it serves now, without a restart.

use crate::dns_server::{DnsServer, Rr};
use crate::harness::{Builder, Server, free_port, wait_until};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HOST: &str = "mail.acme.test";

/// A Pebble started for one test; killed on drop.
struct Pebble {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    management: u16,
}

impl Pebble {
    /// Validates HTTP-01 on `http` and TLS-ALPN-01 on `https` of
    /// 127.0.0.1, resolving names through `dns`; certificates live
    /// `validity` seconds.
    fn start(dns: &DnsServer, http: u16, https: u16, validity: u64) -> Pebble {
        let dir = tempfile::tempdir().expect("tempdir");
        // Pebble's own HTTPS certificate; the daemon trusts it by acme.ca_file.
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        let (port, management) = (free_port(), free_port());
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{port}", "managementListenAddress": "127.0.0.1:{management}",
"certificate": "{d}/cert.pem", "privateKey": "{d}/key.pem", "httpPort": {http}, "tlsPort": {https},
"ocspResponderURL": "", "externalAccountBindingRequired": false, "certificateValidityPeriod": {validity}}}}}"#,
            d = dir.path().display()
        );
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(dns.addr.to_string())
            // No random sleeps before validation, no rejected nonces, and
            // every order validated afresh (a renewal is a real one).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("pebble (Debian package pebble) is required: {e}"));
        let pebble = Pebble {
            child,
            dir,
            port,
            management,
        };
        assert!(
            wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "pebble did not start: {}",
            pebble.log()
        );
        pebble
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The `[acme]` table pointing at this Pebble.
    fn acme_table(&self, extra: &str) -> String {
        format!(
            "[acme]\ndirectory = \"https://127.0.0.1:{}/dir\"\nca_file = \"{}\"\nretry_min = \"1s\"\nretry_max = \"4s\"\norder_timeout = \"60s\"\n{extra}\n",
            self.port,
            self.ca_file().display()
        )
    }

    /// Pebble's root of the day (regenerated at each start), PEM.
    fn root(&self) -> PathBuf {
        let path = self.dir.path().join("root.pem");
        let out = Command::new("curl")
            .args(["-s", "-k", "--max-time", "10"])
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .expect("curl");
        assert!(out.status.success() && !out.stdout.is_empty());
        std::fs::write(&path, out.stdout).unwrap();
        path
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a port serves: `openssl x509` lines (issuer, serial, notAfter),
/// and whether it verified against `ca` when given.
fn served(port: u16, starttls: Option<&str>, ca: Option<&Path>) -> (String, bool) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", HOST, "-verify_hostname", HOST]);
    if let Some(protocol) = starttls {
        cmd.args(["-starttls", protocol]);
    }
    if let Some(ca) = ca {
        cmd.arg("-CAfile").arg(ca).arg("-verify_return_error");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl is required: {e}"));
    let verified = out.status.success()
        && String::from_utf8_lossy(&out.stdout).contains("Verify return code: 0 (ok)");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-issuer", "-serial", "-enddate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    use std::io::Write;
    let _ = x509.stdin.take().unwrap().write_all(&out.stdout);
    let out = x509.wait_with_output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), verified)
}

/// Every TLS port of `server`, with the STARTTLS protocol where it has one.
fn tls_ports(server: &Server) -> Vec<(u16, Option<&'static str>)> {
    let p = server.ports;
    vec![
        (server.port, Some("smtp")),
        (p.submission, Some("smtp")),
        (p.submissions, None),
        (p.imap, Some("imap")),
        (p.imaps, None),
        (p.pop3, Some("pop3")),
        (p.pop3s, None),
        (p.managesieve, Some("sieve")),
        (p.https, None),
    ]
}

fn acme_dns() -> DnsServer {
    DnsServer::start(
        &["acme.test."],
        vec![
            Rr::A("mail.acme.test.", Ipv4Addr::LOCALHOST),
            Rr::A("mta-sts.acme.test.", Ipv4Addr::LOCALHOST),
        ],
    )
}

/// A loopback DNS server, a Pebble validating on fresh web ports, and a
/// Merpati whose `[acme]` (plus `extra`) points at it.
fn with_pebble(validity: u64, extra: &str) -> (DnsServer, Pebble, Server) {
    let dns = acme_dns();
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(&dns, http, https, validity);
    let server = Builder::default()
        .hostname(HOST)
        .http_ports(http, https)
        .dns(&dns.config())
        .tail(&pebble.acme_table(extra))
        .start();
    (dns, pebble, server)
}

/// HTTP-01: issued at start for myhostname and a further name, served on
/// every TLS port (verifying against Pebble's root), and renewed when it
/// comes within renew_before of its end — a new serial on every port,
/// with no restart.
#[test]
fn acme_issues_and_renews_over_http_01() {
    // Lives an hour; due for renewal 30 s after issuance: time enough to
    // look at every port before it changes, on a busy machine too.
    let (_dns, pebble, server) = with_pebble(
        3600,
        "names = [\"mta-sts.acme.test\"]\nrenew_before = \"3570s\"\nchallenge = \"http-01\"",
    );
    assert!(
        server.wait_for_log(
            "acme: obtained a certificate for mail.acme.test, mta-sts.acme.test",
            1
        ),
        "{}\n{}",
        server.log(),
        pebble.log()
    );
    let root = pebble.root();
    let mut first_serial = String::new();
    for (port, starttls) in tls_ports(&server) {
        let (text, verified) = served(port, starttls, Some(&root));
        assert!(text.contains("Pebble Intermediate"), "port {port}: {text}");
        assert!(
            verified,
            "port {port} does not verify against Pebble's root: {text}"
        );
        let serial = text
            .lines()
            .find(|l| l.starts_with("serial="))
            .unwrap()
            .to_string();
        if first_serial.is_empty() {
            first_serial = serial;
        } else {
            assert_eq!(serial, first_serial, "port {port}");
        }
    }
    let data = server.data_dir();
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&data.join("acme/certificate.pem")), 0o600);
    assert_eq!(mode(&data.join("acme/account.json")), 0o600);
    // The renewal: a second order with the same account, a new serial.
    assert!(
        wait_until(Duration::from_secs(90), || server
            .log()
            .matches("acme: obtained a certificate")
            .count()
            >= 2),
        "{}",
        server.log()
    );
    assert_eq!(
        server.log().matches("acme: registered an account").count(),
        1
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            tls_ports(&server).iter().all(|&(port, starttls)| {
                let (text, _) = served(port, starttls, None);
                text.contains("Pebble Intermediate") && !text.contains(&first_serial)
            })
        }),
        "not every port serves the renewed certificate\n{}",
        server.log()
    );
    // /metrics tells when the certificate in service ends.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{}/metrics", server.ports.http))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics.contains("merpati_acme_orders_total{result=\"issued\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("merpati_tls_certificate_expiry_seconds "),
        "{metrics}"
    );
}

/// TLS-ALPN-01 (RFC 8737): validated on the HTTPS port, which serves the
/// validation certificate only to `acme-tls/1` and the issued one after.
#[test]
fn acme_issues_over_tls_alpn_01() {
    let (_dns, pebble, server) = with_pebble(86_400, "challenge = \"tls-alpn-01\"");
    assert!(
        server.wait_for_log("acme: obtained a certificate for mail.acme.test ", 1),
        "{}\n{}",
        server.log(),
        pebble.log()
    );
    let root = pebble.root();
    let (text, verified) = served(server.ports.imaps, None, Some(&root));
    assert!(text.contains("Pebble Intermediate") && verified, "{text}");
    // The HTTPS port itself serves the issued certificate (so what
    // follows fails for the protocol, not for the port)...
    let (text, verified) = served(server.ports.https, None, Some(&root));
    assert!(text.contains("Pebble Intermediate") && verified, "{text}");
    // ...and with no order open, acme-tls/1 gets no certificate at all.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", server.ports.https),
        ])
        .args(["-servername", HOST, "-alpn", "acme-tls/1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A name the authority cannot validate (no address in DNS): the order
/// fails with Pebble's reason in the log, is retried with a growing
/// wait, and the self-signed certificate keeps serving meanwhile.
#[test]
fn a_failed_challenge_keeps_the_self_signed_certificate_and_retries() {
    let (_dns, pebble, server) = with_pebble(86_400, "names = [\"nowhere.acme.test\"]");
    assert!(
        server.wait_for_log(
            "acme: no certificate for mail.acme.test, nowhere.acme.test",
            2
        ),
        "{}\n{}",
        server.log(),
        pebble.log()
    );
    let log = server.log();
    // Pebble's own reason, naming the name it could not reach.
    assert!(
        log.contains("could not resolve URL \"http://nowhere.acme.test:"),
        "{log}"
    );
    assert!(log.contains("next attempt in 1s"), "{log}");
    assert!(log.contains("next attempt in 2s"), "{log}");
    for (port, starttls) in tls_ports(&server) {
        let (text, _) = served(port, starttls, None);
        assert!(text.contains("Merpati self-signed"), "port {port}: {text}");
    }
    assert!(!server.data_dir().join("acme/certificate.pem").exists());
}

/// An admin's own certificate, replaced on disk (as certbot or another
/// tool renews it) and loaded by SIGHUP: every port serves the new one.
#[test]
fn sighup_loads_a_replaced_certificate_on_every_port() {
    let dir = tempfile::tempdir().unwrap();
    let write_pair = |organisation: &str| {
        let mut params = rcgen::CertificateParams::new(vec![HOST.into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organisation);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    };
    write_pair("First Admin Cert");
    let server = Builder::default()
        .hostname(HOST)
        .tail(&format!(
            "[tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n",
            d = dir.path().display()
        ))
        .start();
    for (port, starttls) in tls_ports(&server) {
        let (text, _) = served(port, starttls, None);
        assert!(text.contains("First Admin Cert"), "port {port}: {text}");
    }
    write_pair("Second Admin Cert");
    server.signal("HUP");
    assert!(
        server.wait_for_log("reloaded configuration", 1),
        "{}",
        server.log()
    );
    for (port, starttls) in tls_ports(&server) {
        let (text, _) = served(port, starttls, None);
        assert!(text.contains("Second Admin Cert"), "port {port}: {text}");
    }
}
