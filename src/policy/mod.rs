//! SMTP access policy (Postfix's smtpd_check.c): the restriction lists of
//! `[restrictions]`, evaluated at their stage from the session's facts,
//! first decisive answer wins. In: [`Facts`]. Out: an [`Outcome`] that
//! `smtp::server` turns into its reply, plus the actions (HOLD, PREPEND,
//! REDIRECT, BCC, DISCARD) that apply to the message once accepted.
//!
//! Rooms: `restriction` (the lists as data), `access` (access(5) tables:
//! keys and results), `dnsbl` (DNS lists), `service` (the policy
//! delegation protocol, for postgrey and friends), `peer` (the client's
//! reverse DNS), `eval` (the evaluation), `greylist` (postgrey's
//! triplets, after the lists have permitted a recipient).

pub mod access;
pub mod dnsbl;
mod eval;
pub mod greylist;
pub mod peer;
pub mod postscreen;
pub mod restriction;
pub mod service;

pub use access::MessageAction;
pub use peer::PeerNames;

use crate::config::{Config, Problem, Restrictions};
use crate::dns::Resolver;
use crate::live::Live;
use crate::smtp::proto::reply::Reply;
use restriction::Restriction;
use std::net::IpAddr;
use std::sync::Arc;

/// Where in the SMTP dialogue a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    EndOfData,
}

impl Stage {
    /// The `protocol_state` of the policy protocol and of the log line.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "CONNECT",
            Stage::Helo => "HELO",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::EndOfData => "END-OF-MESSAGE",
        }
    }
}

/// What the session knows when it asks.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub stage: Stage,
    pub client_ip: IpAddr,
    pub names: &'a PeerNames,
    /// HELO/EHLO argument; empty before HELO.
    pub helo: &'a str,
    /// `SMTP` or `ESMTP`.
    pub protocol: &'a str,
    /// MAIL FROM; `None` before MAIL, `Some("")` for the null sender.
    pub sender: Option<&'a str>,
    /// The RCPT TO being checked (RCPT stage only).
    pub recipient: Option<&'a str>,
    /// Whether that recipient's domain is ours (mydestination, virtual).
    pub recipient_is_local: bool,
    /// Recipients accepted so far in this transaction.
    pub recipient_count: usize,
    /// The AUTH user, empty when not authenticated.
    pub sasl_username: &'a str,
    /// In mynetworks.
    pub trusted: bool,
    /// The client sent commands ahead without PIPELINING (DATA stage).
    pub unauth_pipelining: bool,
    /// The SIZE declared at MAIL, or the message size at end of data.
    pub size: u64,
    pub tls: bool,
}

/// The answer to one check.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `Some`: refuse the command with this reply (4xx or 5xx).
    pub refusal: Option<Reply>,
    /// To apply to the message if it is accepted.
    pub actions: Vec<MessageAction>,
    /// DISCARD: accept and drop, with this reason.
    pub discard: Option<String>,
}

/// The configured lists, parsed and with their tables loaded.
#[derive(Debug)]
pub struct Rules {
    client: Vec<Restriction>,
    helo: Vec<Restriction>,
    sender: Vec<Restriction>,
    relay: Vec<Restriction>,
    recipient: Vec<Restriction>,
    data: Vec<Restriction>,
    end_of_data: Vec<Restriction>,
    settings: Restrictions,
    delimiter: String,
    /// postscreen's DNS list zones and the networks it leaves alone.
    screen_sites: Vec<dnsbl::Site>,
    screen_allow: Vec<crate::config::net::Cidr>,
    /// The spam filter's DNS lists, parsed once per configuration.
    pub spam_client_sites: Vec<dnsbl::Site>,
    pub spam_uri_sites: Vec<dnsbl::Site>,
    /// `[greylist] allow_clients` and `[anvil]
    /// smtpd_client_event_limit_exceptions`, as networks.
    pub greylist_allow: Vec<crate::config::net::Cidr>,
    pub rate_exceptions: Vec<crate::config::net::Cidr>,
}

/// Networks from a list that `Config::validate` has already checked.
fn networks(list: &[String]) -> Vec<crate::config::net::Cidr> {
    list.iter().filter_map(|n| n.parse().ok()).collect()
}

impl Rules {
    /// Parses every list of `[restrictions]`; every mistake is a problem
    /// of the configuration (check-config and reload report them).
    pub fn from_config(config: &Config) -> Result<Rules, Vec<Problem>> {
        let r = &config.restrictions;
        let mut problems = Vec::new();
        let mut parse = |key: &str, items: &[String]| match restriction::parse(items) {
            Ok(list) => list,
            Err(e) => {
                problems.push(Problem::new(&format!("restrictions.{key}"), e));
                Vec::new()
            }
        };
        let rules = Rules {
            client: parse("smtpd_client_restrictions", &r.smtpd_client_restrictions),
            helo: parse("smtpd_helo_restrictions", &r.smtpd_helo_restrictions),
            sender: parse("smtpd_sender_restrictions", &r.smtpd_sender_restrictions),
            relay: parse("smtpd_relay_restrictions", &r.smtpd_relay_restrictions),
            recipient: parse(
                "smtpd_recipient_restrictions",
                &r.smtpd_recipient_restrictions,
            ),
            data: parse("smtpd_data_restrictions", &r.smtpd_data_restrictions),
            end_of_data: parse(
                "smtpd_end_of_data_restrictions",
                &r.smtpd_end_of_data_restrictions,
            ),
            settings: r.clone(),
            delimiter: config.recipient_delimiter.clone(),
            screen_sites: match postscreen::sites(&config.postscreen) {
                Ok(sites) => sites,
                Err(e) => {
                    problems.push(Problem::new("postscreen.postscreen_dnsbl_sites", e));
                    Vec::new()
                }
            },
            screen_allow: config
                .postscreen
                .postscreen_access_list
                .iter()
                .filter_map(|n| match n.parse() {
                    Ok(cidr) => Some(cidr),
                    Err(e) => {
                        problems.push(Problem::new("postscreen.postscreen_access_list", e));
                        None
                    }
                })
                .collect(),
            // Checked by `Config::validate`, as the networks below.
            spam_client_sites: dnsbl::Site::parse_all(&config.spam.dnsbl_sites).unwrap_or_default(),
            spam_uri_sites: dnsbl::Site::parse_all(&config.spam.uribl_sites).unwrap_or_default(),
            greylist_allow: networks(&config.greylist.allow_clients),
            rate_exceptions: networks(&config.anvil.smtpd_client_event_limit_exceptions),
        };
        if rules.relay.is_empty() && rules.recipient.is_empty() && problems.is_empty() {
            // Postfix refuses this too: nothing would stop relaying.
            problems.push(Problem::new(
                "restrictions.smtpd_relay_restrictions",
                "smtpd_relay_restrictions and smtpd_recipient_restrictions are both empty: \
                 that is an open relay (add defer_unauth_destination or reject_unauth_destination)",
            ));
        }
        if problems.is_empty() {
            Ok(rules)
        } else {
            Err(problems)
        }
    }

    /// The lists that run at `stage`, in order.
    fn lists(&self, stage: Stage) -> Vec<(&'static str, &[Restriction])> {
        let delay = self.settings.smtpd_delay_reject;
        match stage {
            Stage::Connect if !delay => vec![("client", &self.client)],
            Stage::Helo if !delay => vec![("helo", &self.helo)],
            Stage::Mail if !delay => vec![("sender", &self.sender)],
            Stage::Connect | Stage::Helo | Stage::Mail => Vec::new(),
            Stage::Rcpt if delay => vec![
                ("client", &self.client),
                ("helo", &self.helo),
                ("sender", &self.sender),
                ("relay", &self.relay),
                ("recipient", &self.recipient),
            ],
            Stage::Rcpt => vec![("relay", &self.relay), ("recipient", &self.recipient)],
            Stage::Data => vec![("data", &self.data)],
            Stage::EndOfData => vec![("end_of_data", &self.end_of_data)],
        }
    }

    pub fn settings(&self) -> &Restrictions {
        &self.settings
    }

    /// Whether postscreen leaves `ip` alone (postscreen_access_list).
    pub fn screen_allows(&self, ip: IpAddr) -> bool {
        self.screen_allow.iter().any(|n| n.contains(ip))
    }
}

/// The policy service every SMTP session shares.
pub struct Policy {
    rules: Live<Rules>,
    dns: Arc<dyn Resolver>,
    screen: postscreen::Postscreen,
    greylist: greylist::Greylist,
}

impl Policy {
    /// `greylist_path`: where the greylisting table is kept.
    pub fn new(rules: Rules, dns: Arc<dyn Resolver>, greylist_path: &std::path::Path) -> Self {
        Policy {
            rules: Live::new(rules),
            dns,
            screen: postscreen::Postscreen::default(),
            greylist: greylist::Greylist::open(greylist_path),
        }
    }

    pub fn greylist(&self) -> &greylist::Greylist {
        &self.greylist
    }

    /// New rules for checks that start after this (SIGHUP).
    pub fn reload(&self, rules: Rules) {
        self.rules.set(rules);
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.get()
    }

    pub fn dns(&self) -> &dyn Resolver {
        self.dns.as_ref()
    }

    /// The resolver, for lookups that run in tasks of their own.
    pub fn dns_handle(&self) -> Arc<dyn Resolver> {
        self.dns.clone()
    }

    /// postscreen's DNS list score for a new client.
    pub async fn screen(
        &self,
        config: &crate::config::Postscreen,
        ip: IpAddr,
    ) -> postscreen::Screened {
        let rules = self.rules.get();
        if rules.screen_allows(ip) {
            return postscreen::Screened::Pass {
                cached: true,
                rank: 0,
            };
        }
        self.screen
            .dnsbl(config, &rules.screen_sites, self.dns.as_ref(), ip)
            .await
    }

    /// postscreen's pregreet cache (`postscreen_greet_ttl`).
    pub fn screen_greeted(&self, ip: IpAddr, ttl: std::time::Duration) -> bool {
        self.screen.greeted(ip, ttl)
    }

    pub fn screen_remember_greeted(&self, ip: IpAddr, bound: usize) {
        self.screen.remember_greeted(ip, bound);
    }

    /// Runs the lists of `facts.stage`.
    pub async fn check(&self, facts: &Facts<'_>) -> Outcome {
        let rules = self.rules.get();
        eval::Evaluation::new(&rules, self.dns.as_ref(), facts)
            .run()
            .await
    }
}

/// `merpati doctor`'s open-relay probe: how the configured restrictions
/// answer `client`, not logged in, asking at RCPT to relay to
/// `recipient` in a domain that is not ours. `None`: they would relay.
pub async fn relay_probe(
    rules: &Rules,
    dns: &dyn Resolver,
    client: IpAddr,
    trusted: bool,
    recipient: &str,
) -> Option<Reply> {
    let names = PeerNames {
        name: peer::UNKNOWN.to_string(),
        reverse: peer::UNKNOWN.to_string(),
        tempfail: false,
    };
    let facts = Facts {
        stage: Stage::Rcpt,
        client_ip: client,
        names: &names,
        helo: "relay-probe.example",
        protocol: "ESMTP",
        sender: Some("doctor@relay-probe.example"),
        recipient: Some(recipient),
        recipient_is_local: false,
        recipient_count: 0,
        sasl_username: "",
        trusted,
        unauth_pipelining: false,
        size: 0,
        tls: false,
    };
    eval::Evaluation::new(rules, dns, &facts)
        .run()
        .await
        .refusal
}
