//! `merpati doctor [DOMAIN]`: what receivers and mail clients will look
//! up for each local domain, checked through the daemon's own resolver
//! (`[dns]`), each item OK or the record to publish. The client-setup SRV
//! records (RFC 6186, RFC 8314) are printed for every domain.

use crate::config::Config;
use crate::dns::Resolver;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Wrong or missing: mail or clients will fail.
    Fail,
    /// Recommended, not required.
    Warn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub domain: String,
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// Zone-file lines to publish, if something is missing.
    pub publish: Vec<String>,
}

/// The domains to check: the one asked for, else every local domain but
/// `localhost` and its kin.
pub fn domains(config: &Config, asked: Option<&str>) -> Vec<String> {
    if let Some(d) = asked {
        return vec![d.trim_end_matches('.').to_ascii_lowercase()];
    }
    let mut out: Vec<String> = config
        .mydestination
        .iter()
        .chain(&config.virtual_mailbox_domains)
        .map(|d| d.to_ascii_lowercase())
        .filter(|d| d != "localhost" && !d.starts_with("localhost.") && d.contains('.'))
        .collect();
    out.sort();
    out.dedup();
    out
}

struct Checker<'a> {
    config: &'a Config,
    dns: &'a dyn Resolver,
    items: Vec<Item>,
    /// The certificate the TLS ports serve (DER), once read.
    served: Option<Vec<u8>>,
}

impl Checker<'_> {
    fn add(
        &mut self,
        domain: &str,
        check: &'static str,
        status: Status,
        detail: String,
        publish: Vec<String>,
    ) {
        self.items.push(Item {
            domain: domain.to_string(),
            check,
            status,
            detail,
            publish,
        });
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        self.dns.txt(name).await.map_err(|e| e.to_string())
    }

    async fn domain(&mut self, domain: &str) {
        let host = self.config.myhostname.clone();
        // MX: ours among the domain's mail exchangers.
        match self.dns.mx(domain).await {
            Ok(answer) => {
                let hosts: Vec<String> = match answer {
                    crate::dns::MxAnswer::Hosts(list) => {
                        list.iter().map(|h| h.name.clone()).collect()
                    }
                    _ => Vec::new(),
                };
                if hosts
                    .iter()
                    .any(|h| h.trim_end_matches('.').eq_ignore_ascii_case(&host))
                {
                    self.add(domain, "MX", Status::Ok, hosts.join(", "), vec![]);
                } else {
                    let detail = if hosts.is_empty() {
                        "no MX record".to_string()
                    } else {
                        format!("MX points elsewhere: {}", hosts.join(", "))
                    };
                    self.add(
                        domain,
                        "MX",
                        Status::Fail,
                        detail,
                        vec![format!("{domain}. IN MX 10 {host}.")],
                    );
                }
            }
            Err(e) => self.add(
                domain,
                "MX",
                Status::Fail,
                e.to_string(),
                vec![format!("{domain}. IN MX 10 {host}.")],
            ),
        }
        // SPF.
        match self.txt(domain).await {
            Ok(records) => match records
                .iter()
                .find(|r| r.to_ascii_lowercase().starts_with("v=spf1"))
            {
                Some(spf) => self.add(domain, "SPF", Status::Ok, spf.clone(), vec![]),
                None => self.add(
                    domain,
                    "SPF",
                    Status::Fail,
                    "no SPF record".into(),
                    vec![format!("{domain}. IN TXT \"v=spf1 mx a:{host} ~all\"")],
                ),
            },
            Err(e) => self.add(domain, "SPF", Status::Fail, e, vec![]),
        }
        // DMARC.
        let dmarc = format!("_dmarc.{domain}");
        let found = self.txt(&dmarc).await.map(|records| {
            records
                .into_iter()
                .find(|r| r.to_ascii_uppercase().starts_with("V=DMARC1"))
        });
        match found {
            Ok(Some(record)) => self.add(domain, "DMARC", Status::Ok, record, vec![]),
            Ok(None) => self.add(
                domain,
                "DMARC",
                Status::Fail,
                "no DMARC record".into(),
                vec![format!(
                    "{dmarc}. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@{domain}\""
                )],
            ),
            Err(e) => self.add(domain, "DMARC", Status::Fail, e, vec![]),
        }
        self.dkim(domain).await;
        // Client setup names, and the optional policies.
        for name in ["autoconfig", "autodiscover"] {
            let fqdn = format!("{name}.{domain}");
            match self.dns.addresses(&fqdn).await {
                Ok(a) if !a.is_empty() => {
                    let list: Vec<String> = a.iter().map(|ip| ip.to_string()).collect();
                    self.add(
                        domain,
                        "client setup",
                        Status::Ok,
                        format!("{fqdn} → {}", list.join(", ")),
                        vec![],
                    );
                }
                _ => self.add(
                    domain,
                    "client setup",
                    Status::Warn,
                    format!("{fqdn} has no address: clients cannot find the settings there"),
                    vec![format!("{fqdn}. IN CNAME {host}.")],
                ),
            }
        }
        for (name, what, record) in [
            ("_mta-sts", "MTA-STS", "v=STSv1; id=1".to_string()),
            (
                "_smtp._tls",
                "TLS-RPT",
                format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
            ),
        ] {
            let fqdn = format!("{name}.{domain}");
            match self.txt(&fqdn).await {
                Ok(r) if !r.is_empty() => self.add(domain, what, Status::Ok, r.join(" "), vec![]),
                _ => self.add(
                    domain,
                    what,
                    Status::Warn,
                    "not published (optional)".into(),
                    vec![format!("{fqdn}. IN TXT \"{record}\"")],
                ),
            }
        }
        let srv = self.srv_records(domain);
        self.add(
            domain,
            "SRV",
            Status::Ok,
            "client discovery (RFC 6186, RFC 8314)".into(),
            srv,
        );
    }

    /// Every DKIM key of the domain against what DNS publishes.
    async fn dkim(&mut self, domain: &str) {
        let keys =
            crate::mailauth::keys::list(&self.config.data_dir, Some(domain)).unwrap_or_default();
        if keys.is_empty() {
            self.add(
                domain,
                "DKIM",
                Status::Fail,
                format!("no signing key; make one with `merpati dkim generate {domain}`"),
                vec![],
            );
            return;
        }
        for key in keys {
            let name = format!("{}._domainkey.{domain}", key.selector);
            let Ok(wanted) = crate::mailauth::keys::record(&key) else {
                self.add(
                    domain,
                    "DKIM",
                    Status::Fail,
                    format!("{name}: the key file cannot be read"),
                    vec![],
                );
                continue;
            };
            let p = |r: &str| {
                r.split(';')
                    .map(str::trim)
                    .find_map(|t| t.strip_prefix("p="))
                    .map(|v| v.split_whitespace().collect::<String>())
            };
            let published = self.txt(&name).await.unwrap_or_default();
            if published
                .iter()
                .any(|r| p(r).is_some() && p(r) == p(&wanted))
            {
                self.add(
                    domain,
                    "DKIM",
                    Status::Ok,
                    format!("{name} matches our key"),
                    vec![],
                );
            } else {
                let detail = if published.is_empty() {
                    format!("{name}: not published")
                } else {
                    format!("{name}: published key differs from ours")
                };
                self.add(
                    domain,
                    "DKIM",
                    Status::Fail,
                    detail,
                    vec![crate::mailauth::keys::zone_line(&name, &wanted)],
                );
            }
        }
    }

    /// The RFC 6186/8314 records for the endpoints clients are offered
    /// (the same list autoconfig gives them).
    fn srv_records(&self, domain: &str) -> Vec<String> {
        use crate::http::autoconfig::{Kind, Security, Server};
        let server = Server::from_config(self.config);
        let host = &server.hostname;
        [
            ("_submissions", Kind::Smtp, Security::Implicit),
            ("_submission", Kind::Smtp, Security::StartTls),
            ("_imaps", Kind::Imap, Security::Implicit),
            ("_imap", Kind::Imap, Security::StartTls),
            ("_pop3s", Kind::Pop3, Security::Implicit),
            ("_pop3", Kind::Pop3, Security::StartTls),
        ]
        .iter()
        .map(|(name, kind, security)| {
            let offered = server
                .endpoints
                .iter()
                .find(|e| e.kind == *kind && e.security == *security);
            match offered {
                Some(e) => format!("{name}._tcp.{domain}. IN SRV 0 1 {} {host}.", e.port),
                // RFC 6186 §4: "." says the service is not offered.
                None => format!("{name}._tcp.{domain}. IN SRV 0 0 0 ."),
            }
        })
        .collect()
    }

    /// The server's own name: addresses, and reverse DNS that names it.
    async fn host(&mut self) {
        let host = self.config.myhostname.clone();
        match self.dns.addresses(&host).await {
            Ok(addresses) if !addresses.is_empty() => {
                let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                self.add(&host, "A/AAAA", Status::Ok, list.join(", "), vec![]);
                for ip in addresses {
                    let names = self.dns.reverse(ip).await.unwrap_or_default();
                    if names
                        .iter()
                        .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&host))
                    {
                        self.add(&host, "PTR", Status::Ok, format!("{ip} → {host}"), vec![]);
                    } else {
                        self.add(
                            &host,
                            "PTR",
                            Status::Fail,
                            format!("{ip} has reverse DNS {names:?}, not {host} (ask the address's provider)"),
                            vec![],
                        );
                    }
                }
            }
            _ => self.add(
                &host,
                "A/AAAA",
                Status::Fail,
                format!("{host} has no address"),
                vec![format!("{host}. IN A <this server's public IPv4 address>")],
            ),
        }
    }
}

/// Days left under which the certificate is worth a warning (ACME renews
/// at 30).
const CERT_WARN_DAYS: i64 = 14;

/// Documentation addresses (RFC 5737, RFC 3849): outside any sane
/// `mynetworks`.
const PROBE_CLIENTS: [&str; 2] = ["192.0.2.1", "2001:db8::1"];

impl Checker<'_> {
    /// The certificate the TLS ports serve: readable, for myhostname, not
    /// expired or about to, and from an authority rather than self-signed.
    fn certificate(&mut self) {
        let host = self.config.myhostname.clone();
        let (path, _) = crate::tls::cert_paths(self.config);
        let Some(der) = crate::tls::leaf_certificate(&path) else {
            let detail = format!(
                "cannot read {} (run doctor as the daemon's user or root)",
                path.display()
            );
            self.add(&host, "certificate", Status::Warn, detail, vec![]);
            return;
        };
        let Some(validity) = crate::tls::x509::validity(&der) else {
            let detail = format!("{}: unreadable validity", path.display());
            self.add(&host, "certificate", Status::Fail, detail, vec![]);
            return;
        };
        let days = (validity.not_after - crate::rfc5322::now_unix()).div_euclid(86_400);
        let until = crate::rfc5322::format_date(validity.not_after);
        let covers = |name: &str| covers(&der, name);
        let (status, detail) = if days < 0 {
            (Status::Fail, format!("expired on {until}"))
        } else if !covers(&host) {
            (
                Status::Fail,
                format!("does not name {host}; clients will refuse it"),
            )
        } else if crate::tls::x509::self_issued(&der) == Some(true) {
            (
                Status::Warn,
                format!(
                    "self-signed (clients warn; set [acme] directory = \"letsencrypt\"), until {until}"
                ),
            )
        } else if days < CERT_WARN_DAYS {
            (Status::Warn, format!("ends in {days} days ({until})"))
        } else {
            (Status::Ok, format!("valid until {until} ({days} days)"))
        };
        self.add(&host, "certificate", status, detail, vec![]);
        self.served = Some(der.to_vec());
    }

    /// Senders fetch the MTA-STS policy from `https://mta-sts.DOMAIN/`
    /// and believe it only with a valid certificate for that name.
    fn mta_sts_certificate(&mut self, domain: &str) {
        if self.config.http.mta_sts_mode == crate::config::http::MtaStsMode::None {
            return;
        }
        let Some(der) = &self.served else {
            return;
        };
        let name = format!("mta-sts.{domain}");
        if !covers(der, &name) {
            let detail = format!(
                "the certificate does not name {name}: senders cannot fetch the MTA-STS policy (add it to acme.names)"
            );
            self.add(domain, "MTA-STS cert", Status::Warn, detail, vec![]);
        }
    }

    /// Whether the restrictions refuse relaying for an outside client that
    /// has not logged in.
    async fn open_relay(&mut self) {
        let host = self.config.myhostname.clone();
        let rules = match crate::policy::Rules::from_config(self.config) {
            Ok(rules) => rules,
            Err(problems) => {
                let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                self.add(&host, "open relay", Status::Fail, text.join("; "), vec![]);
                return;
            }
        };
        let networks = self.config.networks();
        for client in PROBE_CLIENTS {
            let Ok(ip) = client.parse::<std::net::IpAddr>() else {
                continue;
            };
            let trusted = networks.iter().any(|n| n.contains(ip));
            let refusal = crate::policy::relay_probe(
                &rules,
                self.dns,
                ip,
                trusted,
                "probe@relay-probe.example",
            )
            .await;
            let (status, detail) = match refusal {
                Some(reply) => (
                    Status::Ok,
                    format!("{client} may not relay: {}", reply.first_line()),
                ),
                None if trusted => (
                    Status::Fail,
                    format!(
                        "mynetworks includes {client}: everyone there may relay (keep it to your own networks)"
                    ),
                ),
                None => (
                    Status::Fail,
                    format!(
                        "{client} may relay to any domain: add reject_unauth_destination to restrictions.smtpd_relay_restrictions"
                    ),
                ),
            };
            self.add(&host, "open relay", status, detail, vec![]);
        }
    }
}

/// Whether a DER certificate is valid for `name` (wildcards as TLS clients
/// match them).
fn covers(der: &[u8], name: &str) -> bool {
    let cert = rustls::pki_types::CertificateDer::from(der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&cert) else {
        return false;
    };
    let Ok(name) = rustls::pki_types::ServerName::try_from(name) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

/// Runs every check; the items in order.
pub async fn check(config: &Config, dns: &dyn Resolver, asked: Option<&str>) -> Vec<Item> {
    let mut c = Checker {
        config,
        dns,
        items: Vec::new(),
        served: None,
    };
    let domains = domains(config, asked);
    c.host().await;
    c.certificate();
    c.open_relay().await;
    for domain in &domains {
        c.domain(domain).await;
        c.mta_sts_certificate(domain);
    }
    c.items
}

/// The report for people: one line per item, records to publish beneath.
pub fn text(items: &[Item]) -> String {
    let mut out = String::new();
    let mut current = "";
    for item in items {
        if item.domain != current {
            let _ = writeln!(out, "{}:", item.domain);
            current = &item.domain;
        }
        let mark = match item.status {
            Status::Ok => "OK  ",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
        };
        let _ = writeln!(out, "  {mark} {:<12} {}", item.check, item.detail);
        for line in &item.publish {
            let _ = writeln!(out, "       publish: {line}");
        }
    }
    out
}

/// The report for scripts (`--json`).
pub fn json(items: &[Item]) -> String {
    let esc = crate::escape::json;
    let rows: Vec<String> = items
        .iter()
        .map(|i| {
            let status = match i.status {
                Status::Ok => "ok",
                Status::Fail => "fail",
                Status::Warn => "warn",
            };
            let publish: Vec<String> = i.publish.iter().map(|p| format!("\"{}\"", esc(p))).collect();
            format!(
                "{{\"domain\":\"{}\",\"check\":\"{}\",\"status\":\"{status}\",\"detail\":\"{}\",\"publish\":[{}]}}",
                esc(&i.domain),
                esc(i.check),
                esc(&i.detail),
                publish.join(",")
            )
        })
        .collect();
    format!("[{}]\n", rows.join(",\n"))
}
