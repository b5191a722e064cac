//! Client autoconfiguration over the web listener, fetched with curl as
//! the clients fetch it: Thunderbird's config-v1.1.xml (both paths, by
//! address and by Host), Outlook's POX autodiscover and autodiscover.json
//! (ActiveSync refused the way Exchange refuses it), Apple's
//! mobileconfig; `/healthz`; HTTPS with HTTP/2; the plain port's redirect;
//! unknown domains and oversized bodies refused.

use crate::harness::{Builder, Server};
use std::process::Command;

/// curl's (status, headers + body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-k", "-i", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("curl is required: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn url(server: &Server, tls: bool, path: &str) -> String {
    if tls {
        format!("https://127.0.0.1:{}{path}", server.ports.https)
    } else {
        format!("http://127.0.0.1:{}{path}", server.ports.http)
    }
}

#[test]
fn clients_find_their_settings() {
    let server = Builder::default()
        .top("mydestination = [\"example.test\", \"localhost\"]")
        .start();
    let s = &server;
    // Thunderbird, by address and by the autoconfig.DOMAIN host name.
    let (code, body) = curl(&[&url(
        s,
        false,
        "/mail/config-v1.1.xml?emailaddress=fauzan%40example.test",
    )]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("content-type: application/xml"), "{body}");
    for needle in [
        "<domain>example.test</domain>",
        &format!(
            "<port>{}</port>\n      <socketType>SSL</socketType>",
            s.ports.imaps
        ),
        &format!(
            "<port>{}</port>\n      <socketType>STARTTLS</socketType>",
            s.ports.imap
        ),
        &format!("<port>{}</port>", s.ports.pop3s),
        &format!("<port>{}</port>", s.ports.submissions),
        "<username>%EMAILADDRESS%</username>",
    ] {
        assert!(body.contains(needle), "{needle}\n{body}");
    }
    let (code, body) = curl(&[
        "-H",
        "Host: autoconfig.example.test",
        &url(s, true, "/.well-known/autoconfig/mail/config-v1.1.xml"),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<domain>example.test</domain>"), "{body}");
    // Not our domain: nothing to say.
    let (code, _) = curl(&[&url(
        s,
        false,
        "/mail/config-v1.1.xml?emailaddress=a%40elsewhere.test",
    )]);
    assert_eq!(code, 404);

    // Outlook's POX request.
    let request = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>fauzan@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: text/xml",
        "--data-binary",
        request,
        &url(s, true, "/autodiscover/autodiscover.xml"),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("<Type>IMAP</Type>")
            && body.contains("<LoginName>fauzan@example.test</LoginName>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<Port>{}</Port>", s.ports.imaps)),
        "{body}"
    );
    // The new Outlook: AutodiscoverV1 points at the XML, ActiveSync is
    // refused as Exchange refuses it (and Outlook falls back to IMAP).
    let (code, body) = curl(&[&url(
        s,
        true,
        "/autodiscover/autodiscover.json/v1.0/fauzan@example.test?Protocol=AutodiscoverV1",
    )]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"Url\":\"https://mail.merpati.test/autodiscover/autodiscover.xml\""),
        "{body}"
    );
    let (code, body) = curl(&[&url(
        s,
        true,
        "/autodiscover/autodiscover.json?Email=fauzan%40example.test&Protocol=ActiveSync",
    )]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"ErrorCode\":\"InvalidProtocol\""), "{body}");

    // Apple: an unsigned profile.
    let (code, body) = curl(&[&url(
        s,
        true,
        "/email.mobileconfig?email=fauzan%40example.test",
    )]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("application/x-apple-aspen-config")
            && body.contains("com.apple.mail.managed"),
        "{body}"
    );

    // The MTA-STS policy, on mta-sts.DOMAIN over HTTPS only.
    let (code, body) = curl(&[
        "-H",
        "Host: mta-sts.example.test",
        &url(s, true, "/.well-known/mta-sts.txt"),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(
            "version: STSv1\r\nmode: testing\r\nmx: mail.merpati.test\r\nmax_age: 604800\r\n"
        ),
        "{body}"
    );
    let (code, _) = curl(&[
        "-H",
        "Host: mta-sts.elsewhere.test",
        &url(s, true, "/.well-known/mta-sts.txt"),
    ]);
    assert_eq!(code, 404);

    // Health over HTTP/2 (ALPN on the TLS port) and HTTP/1.1.
    let (code, body) = curl(&["--http2", &url(s, true, "/healthz")]);
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("HTTP/2 200"), "{body}");
    let (code, _) = curl(&[&url(s, false, "/healthz")]);
    assert_eq!(code, 200);
    // Anything else on the plain port goes to HTTPS; on HTTPS it is 404.
    let (code, body) = curl(&[&url(s, false, "/somewhere?x=1")]);
    assert_eq!(code, 301, "{body}");
    assert!(
        body.contains("location: https://mail.merpati.test/somewhere?x=1"),
        "{body}"
    );
    let (code, _) = curl(&[&url(s, true, "/somewhere")]);
    assert_eq!(code, 404);
    // Bodies are bounded.
    let big = "x".repeat(100_000);
    let (code, _) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &big,
        &url(s, true, "/autodiscover/autodiscover.xml"),
    ]);
    assert_eq!(code, 413);
}

#[test]
fn metrics_for_our_networks_only() {
    let server = crate::harness::server();
    server.add_user("bob@localhost", "pw");
    let mut c = server.connect();
    c.reply();
    c.cmd("EHLO client.test");
    let reply = c.send_mail(
        "alice@localhost",
        &["bob@localhost"],
        "Subject: m\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    c.cmd("QUIT");
    server.wait_for_mail("bob@localhost", 1);
    assert_eq!(curl(&[&url(&server, true, "/healthz")]).0, 200);
    let (code, body) = curl(&[&url(&server, true, "/metrics")]);
    assert_eq!(code, 200, "{body}");
    for needle in [
        "merpati_sessions_total{service=\"smtpd\"}",
        "merpati_messages_received_total{protocol=\"esmtp\"} 1",
        "merpati_deliveries_total{transport=\"local\",result=\"sent\"} 1",
        "merpati_delivery_seconds_count 1",
        "merpati_queue_messages{queue=\"deferred\"} 0",
        "merpati_tls_handshakes_total{result=\"ok\"}",
        "merpati_store_bytes ",
        "merpati_http_requests_total{class=\"2xx\"}",
    ] {
        assert!(body.contains(needle), "{needle}\n{body}");
    }
    // Outside mynetworks (and metrics_allow): refused.
    let closed = Builder::default()
        .top("mynetworks = [\"192.0.2.0/24\"]")
        .start();
    let (code, _) = curl(&[&url(&closed, false, "/metrics")]);
    assert_eq!(code, 403);
}
