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
        match self.txt(&dmarc).await {
            Ok(records)
                if records
                    .iter()
                    .any(|r| r.to_ascii_uppercase().starts_with("V=DMARC1")) =>
            {
                let r = records
                    .iter()
                    .find(|r| r.to_ascii_uppercase().starts_with("V=DMARC1"))
                    .cloned();
                self.add(domain, "DMARC", Status::Ok, r.unwrap_or_default(), vec![]);
            }
            Ok(_) => self.add(
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

/// Runs every check; the items in order.
pub async fn check(config: &Config, dns: &dyn Resolver, asked: Option<&str>) -> Vec<Item> {
    let mut c = Checker {
        config,
        dns,
        items: Vec::new(),
    };
    c.host().await;
    for domain in domains(config, asked) {
        c.domain(&domain).await;
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
