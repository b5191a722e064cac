//! Client autoconfiguration documents, sans-IO: what Thunderbird
//! (`config-v1.1.xml`), Outlook (the 2006a POX response and the
//! `autodiscover.json` v1.0 redirect) and Apple Mail (`.mobileconfig`)
//! read to set up an account without typing server names. Built from the
//! ports the daemon really listens on: a service without a listener is
//! left out, so nothing offered fails to connect.

use crate::escape::{json, xml};

/// How a client reaches one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (RFC 8314: 993, 995, 465).
    Implicit,
    /// STARTTLS / STLS on the plaintext port.
    StartTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Imap,
    Pop3,
    Smtp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub kind: Kind,
    pub port: u16,
    pub security: Security,
}

/// The server as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub hostname: String,
    /// Best first: implicit TLS before STARTTLS (RFC 8314 §5.1).
    pub endpoints: Vec<Endpoint>,
}

impl Server {
    /// The endpoints from the listen lists (the port of each list's first
    /// address).
    pub fn from_config(config: &crate::config::Config) -> Server {
        let port = |list: &[String]| {
            list.first()
                .and_then(|a| crate::config::parse_listen(a))
                .map(|a| a.port())
        };
        let mut endpoints = Vec::new();
        let mut add = |kind, list: &[String], security| {
            if let Some(port) = port(list) {
                endpoints.push(Endpoint {
                    kind,
                    port,
                    security,
                });
            }
        };
        add(Kind::Imap, &config.imap.tls_listen, Security::Implicit);
        add(Kind::Imap, &config.imap.listen, Security::StartTls);
        add(Kind::Pop3, &config.pop3.tls_listen, Security::Implicit);
        add(Kind::Pop3, &config.pop3.listen, Security::StartTls);
        add(
            Kind::Smtp,
            &config.submission.tls_listen,
            Security::Implicit,
        );
        add(Kind::Smtp, &config.submission.listen, Security::StartTls);
        Server {
            hostname: config.myhostname.clone(),
            endpoints,
        }
    }

    fn of(&self, kind: Kind) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter().filter(move |e| e.kind == kind)
    }
}

/// Thunderbird's autoconfig v1.1 for `domain`.
pub fn thunderbird(server: &Server, domain: &str) -> String {
    let d = xml(domain);
    let host = xml(&server.hostname);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n  <emailProvider id=\"{d}\">\n    <domain>{d}</domain>\n    <displayName>{d}</displayName>\n    <displayShortName>{d}</displayShortName>\n"
    );
    for e in &server.endpoints {
        let (open, close) = match e.kind {
            Kind::Imap => ("<incomingServer type=\"imap\">", "</incomingServer>"),
            Kind::Pop3 => ("<incomingServer type=\"pop3\">", "</incomingServer>"),
            Kind::Smtp => ("<outgoingServer type=\"smtp\">", "</outgoingServer>"),
        };
        let socket = match e.security {
            Security::Implicit => "SSL",
            Security::StartTls => "STARTTLS",
        };
        out.push_str(&format!(
            "    {open}\n      <hostname>{host}</hostname>\n      <port>{}</port>\n      <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>%EMAILADDRESS%</username>\n    {close}\n",
            e.port
        ));
    }
    out.push_str("  </emailProvider>\n</clientConfig>\n");
    out
}

/// The `EMailAddress` of an Outlook POX request, if it has one.
pub fn pox_address(request: &str) -> Option<String> {
    let start = request.find("<EMailAddress>")? + "<EMailAddress>".len();
    let end = start + request.get(start..)?.find("</EMailAddress>")?;
    let address = request.get(start..end)?.trim();
    (!address.is_empty() && address.len() <= 320).then(|| address.to_string())
}

/// Outlook's POX autodiscover response (the 2006a "outlook" schema):
/// one `Protocol` block per service, best endpoint of each.
pub fn outlook(server: &Server, address: &str) -> String {
    let a = xml(address);
    let host = xml(&server.hostname);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    <User>\n      <DisplayName>{a}</DisplayName>\n    </User>\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n"
    );
    for (kind, name) in [
        (Kind::Imap, "IMAP"),
        (Kind::Pop3, "POP3"),
        (Kind::Smtp, "SMTP"),
    ] {
        let Some(e) = server.of(kind).next() else {
            continue;
        };
        let security = match e.security {
            Security::Implicit => "<SSL>on</SSL>".to_string(),
            Security::StartTls => {
                "<SSL>off</SSL>\n        <Encryption>TLS</Encryption>".to_string()
            }
        };
        let auth = if kind == Kind::Smtp {
            "\n        <UsePOPAuth>off</UsePOPAuth>"
        } else {
            ""
        };
        out.push_str(&format!(
            "      <Protocol>\n        <Type>{name}</Type>\n        <Server>{host}</Server>\n        <Port>{}</Port>\n        <LoginName>{a}</LoginName>\n        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n        {security}\n        <AuthRequired>on</AuthRequired>{auth}\n      </Protocol>\n",
            e.port
        ));
    }
    out.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    out
}

/// The new Outlook's `autodiscover.json` v1.0: `AutodiscoverV1` points at
/// the POX document; every other protocol (ActiveSync, EWS...) gets
/// Exchange's own `InvalidProtocol` answer, on which Outlook falls back
/// to IMAP. (status, body)
pub fn outlook_json(hostname: &str, protocol: &str) -> (u16, String) {
    if protocol.eq_ignore_ascii_case("AutodiscoverV1") {
        let url = format!("https://{}/autodiscover/autodiscover.xml", json(hostname));
        return (
            200,
            format!("{{\"Protocol\":\"AutodiscoverV1\",\"Url\":\"{url}\"}}"),
        );
    }
    (
        400,
        format!(
            "{{\"ErrorCode\":\"InvalidProtocol\",\"ErrorMessage\":\"The given protocol value '{}' is invalid. Supported values are 'AutodiscoverV1'\"}}",
            json(protocol)
        ),
    )
}

/// An unsigned Apple configuration profile with one mail account (IMAP,
/// else POP3, and SMTP submission) for `address`. Apple's "UseSSL"
/// covers STARTTLS as well, so it is always on (implicit TLS comes first
/// in the endpoint list anyway).
pub fn mobileconfig(server: &Server, address: &str) -> Option<String> {
    let incoming = server
        .of(Kind::Imap)
        .next()
        .map(|e| ("EmailTypeIMAP", e))
        .or_else(|| server.of(Kind::Pop3).next().map(|e| ("EmailTypePOP", e)))?;
    let outgoing = server.of(Kind::Smtp).next()?;
    let a = xml(address);
    let host = xml(&server.hostname);
    let domain = address.rsplit_once('@').map_or(address, |(_, d)| d);
    let d = xml(domain);
    // Stable identifiers per address, so installing again replaces the
    // profile instead of adding a second one.
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        address.to_ascii_lowercase().as_bytes(),
    );
    let hex = crate::auth::hex(digest.as_ref().get(..16).unwrap_or_default());
    let uuid = |salt: &str| {
        let h = ring::digest::digest(&ring::digest::SHA256, format!("{salt}{hex}").as_bytes());
        let u = crate::auth::hex(h.as_ref().get(..16).unwrap_or_default()).to_ascii_uppercase();
        let part = |r: std::ops::Range<usize>| u.get(r).unwrap_or_default().to_string();
        format!(
            "{}-{}-{}-{}-{}",
            part(0..8),
            part(8..12),
            part(12..16),
            part(16..20),
            part(20..32)
        )
    };
    Some(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{a}</string>
      <key>EmailAccountName</key><string>{a}</string>
      <key>EmailAccountType</key><string>{incoming_type}</string>
      <key>EmailAddress</key><string>{a}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{host}</string>
      <key>IncomingMailServerPortNumber</key><integer>{in_port}</integer>
      <key>IncomingMailServerUseSSL</key><true/>
      <key>IncomingMailServerUsername</key><string>{a}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{host}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{out_port}</integer>
      <key>OutgoingMailServerUseSSL</key><true/>
      <key>OutgoingMailServerUsername</key><string>{a}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadDisplayName</key><string>{a}</string>
      <key>PayloadIdentifier</key><string>{host}.mail.{hex}</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{account_uuid}</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDescription</key><string>Mail account {a}</string>
  <key>PayloadDisplayName</key><string>{d} mail</string>
  <key>PayloadIdentifier</key><string>{host}.profile.{hex}</string>
  <key>PayloadOrganization</key><string>{d}</string>
  <key>PayloadRemovalDisallowed</key><false/>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{profile_uuid}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        incoming_type = incoming.0,
        in_port = incoming.1.port,
        out_port = outgoing.port,
        account_uuid = uuid("account"),
        profile_uuid = uuid("profile"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        let config = crate::config::Config {
            myhostname: "mail.example.org".into(),
            ..Default::default()
        };
        Server::from_config(&config)
    }

    #[test]
    fn documents_list_the_real_ports() {
        let s = server();
        let tb = thunderbird(&s, "example.org");
        for needle in [
            "<incomingServer type=\"imap\">\n      <hostname>mail.example.org</hostname>\n      <port>993</port>\n      <socketType>SSL</socketType>",
            "<port>143</port>\n      <socketType>STARTTLS</socketType>",
            "<incomingServer type=\"pop3\">",
            "<port>995</port>",
            "<outgoingServer type=\"smtp\">\n      <hostname>mail.example.org</hostname>\n      <port>465</port>",
            "<port>587</port>",
            "<username>%EMAILADDRESS%</username>",
            "<authentication>password-cleartext</authentication>",
        ] {
            assert!(tb.contains(needle), "{needle}\n{tb}");
        }
        let ol = outlook(&s, "a&b@example.org");
        assert!(
            ol.contains("<LoginName>a&amp;b@example.org</LoginName>"),
            "{ol}"
        );
        assert!(ol.contains("<Type>SMTP</Type>\n        <Server>mail.example.org</Server>\n        <Port>465</Port>"), "{ol}");
        assert_eq!(
            pox_address("<Request><EMailAddress> u@example.org </EMailAddress></Request>")
                .as_deref(),
            Some("u@example.org")
        );
        assert_eq!(outlook_json("mail.example.org", "autodiscoverv1").0, 200);
        let (status, body) = outlook_json("mail.example.org", "ActiveSync");
        assert_eq!(status, 400);
        assert!(body.contains("InvalidProtocol"), "{body}");
        let mc = mobileconfig(&s, "u@example.org").unwrap();
        assert!(
            mc.contains("<string>EmailTypeIMAP</string>") && mc.contains("<integer>993</integer>")
        );
        assert_eq!(mc, mobileconfig(&s, "u@example.org").unwrap());
    }
}
