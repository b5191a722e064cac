//! Address rewriting and resolution (Postfix's trivial-rewrite plus the
//! alias stages of cleanup and local): canonical form (`myorigin` appended),
//! recipient delimiter, virtual alias maps, aliases(5), and the final
//! decision for each address: a local account or a remote destination.

pub mod aliases;

use crate::address::Address;
use crate::config::Config;
pub use aliases::Aliases;
use std::collections::HashSet;

/// Alias expansion deeper than this is a loop (Postfix: 1000 in total,
/// we stop earlier; real alias chains are a few levels deep).
const MAX_DEPTH: usize = 20;
/// Most final addresses one recipient may expand to.
const MAX_EXPANSION: usize = 1000;

/// Where one final address goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A mailbox of this store: `account` is the store's account name,
    /// `address` the final address (for `Delivered-To`).
    Local { account: String, address: Address },
    /// Another domain: delivered by the relay agent.
    Remote(Address),
}

/// Why an address cannot be delivered (permanent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unroutable {
    #[error("5.1.1 <{0}>: User unknown in local recipient table")]
    UnknownUser(String),
    #[error("5.4.6 <{0}>: alias expansion loop or too deep")]
    Loop(String),
    #[error("5.3.0 <{0}>: alias expands to too many recipients")]
    TooMany(String),
}

/// How a domain is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainClass {
    /// `mydestination`: accounts are local parts.
    Local,
    /// `virtual_mailbox_domains`: accounts are full addresses.
    VirtualMailbox,
    /// `virtual_alias.domains`: only aliases exist.
    VirtualAlias,
    Remote,
}

/// Does an account exist? (The store answers; a trait keeps this module
/// free of storage details and easy to test.)
pub trait AccountDirectory: Send + Sync {
    fn account_exists(&self, account: &str) -> bool;
}

/// Everything needed to resolve addresses, rebuilt on reload.
pub struct Resolver {
    myorigin: String,
    mydestination: Vec<String>,
    virtual_mailbox_domains: Vec<String>,
    virtual_alias_domains: Vec<String>,
    virtual_map: Vec<(String, Vec<String>)>,
    delimiter: String,
    aliases: Aliases,
}

impl Resolver {
    pub fn new(config: &Config, aliases: Aliases) -> Self {
        let lower = |v: &[String]| v.iter().map(|d| d.to_lowercase()).collect::<Vec<_>>();
        Resolver {
            myorigin: config.myorigin.clone(),
            mydestination: lower(&config.mydestination),
            virtual_mailbox_domains: lower(&config.virtual_mailbox_domains),
            virtual_alias_domains: lower(&config.virtual_alias.domains),
            virtual_map: config
                .virtual_alias
                .map
                .iter()
                .map(|(k, v)| (k.to_lowercase(), v.clone()))
                .collect(),
            delimiter: config.recipient_delimiter.clone(),
            aliases,
        }
    }

    /// Canonical form: a bare local part gets `@myorigin`.
    pub fn canonical(&self, address: Address) -> Address {
        address.with_default_domain(&self.myorigin)
    }

    pub fn classify(&self, domain: &str) -> DomainClass {
        let domain = domain.to_lowercase();
        if self.mydestination.contains(&domain) {
            DomainClass::Local
        } else if self.virtual_mailbox_domains.contains(&domain) {
            DomainClass::VirtualMailbox
        } else if self.virtual_alias_domains.contains(&domain) {
            DomainClass::VirtualAlias
        } else {
            DomainClass::Remote
        }
    }

    /// Is mail for this address ours to deliver (not relaying)?
    pub fn is_local_domain(&self, address: &Address) -> bool {
        let address = self.canonical(address.clone());
        address
            .domain()
            .is_some_and(|d| self.classify(d) != DomainClass::Remote)
    }

    /// The store account an address names, for `merpati user add` and for
    /// logins: `fauzan@localhost` -> `fauzan`; `alice@example.net` (a
    /// virtual mailbox domain) -> `alice@example.net`.
    pub fn account_name(&self, address: &Address) -> Result<String, String> {
        let address = self.canonical(address.clone());
        let domain = address.domain().unwrap_or_default();
        match self.classify(domain) {
            DomainClass::Local => Ok(address.local().to_lowercase()),
            DomainClass::VirtualMailbox => Ok(address.key()),
            _ => Err(format!(
                "{domain} is not a local domain (see mydestination and virtual_mailbox_domains)"
            )),
        }
    }

    /// Expands one envelope recipient into final routes, following virtual
    /// aliases and aliases(5). Each final address is routed or refused on
    /// its own, so one bad alias target does not sink the others.
    pub fn expand(
        &self,
        recipient: &Address,
        accounts: &dyn AccountDirectory,
    ) -> Vec<Result<Route, Unroutable>> {
        let mut out = Vec::new();
        let mut expanded = HashSet::new();
        let mut path = Vec::new();
        let start = self.canonical(recipient.clone());
        self.expand_into(start, accounts, &mut path, &mut expanded, &mut out);
        out
    }

    /// `path` holds the aliases being expanded above this address (a loop
    /// back to one of them delivers to it as it is, as aliases(5) does for
    /// "user: user, other"); `expanded` holds every alias already expanded,
    /// so an address reached twice (a diamond) is expanded once.
    fn expand_into(
        &self,
        address: Address,
        accounts: &dyn AccountDirectory,
        path: &mut Vec<String>,
        expanded: &mut HashSet<String>,
        out: &mut Vec<Result<Route, Unroutable>>,
    ) {
        if out.len() >= MAX_EXPANSION {
            out.push(Err(Unroutable::TooMany(address.to_string())));
            return;
        }
        if path.len() > MAX_DEPTH {
            out.push(Err(Unroutable::Loop(address.to_string())));
            return;
        }
        let key = address.key();
        if !path.contains(&key)
            && let Some(targets) = self.lookup_aliases(&address)
        {
            if !expanded.insert(key.clone()) {
                return; // reached before by another branch
            }
            path.push(key);
            for target in targets {
                match Address::parse(target) {
                    Ok(t) => self.expand_into(self.canonical(t), accounts, path, expanded, out),
                    Err(_) => out.push(Err(Unroutable::UnknownUser(target.clone()))),
                }
            }
            path.pop();
            return;
        }
        out.push(self.route(address, accounts));
    }

    /// Would mail to this address be accepted at RCPT time? True for
    /// accounts, aliases, virtual aliases and postmaster in our domains, as
    /// Postfix's local_recipient_maps check; remote addresses are not ours
    /// to judge (relay permission is checked separately).
    pub fn is_known(&self, recipient: &Address, accounts: &dyn AccountDirectory) -> bool {
        let address = self.canonical(recipient.clone());
        self.lookup_aliases(&address).is_some() || self.route(address, accounts).is_ok()
    }

    /// Virtual alias map first (Postfix's order: `user@domain`, then without
    /// the extension, then `@domain`), then aliases(5) for local domains.
    fn lookup_aliases(&self, address: &Address) -> Option<&[String]> {
        let domain = address.domain().unwrap_or_default();
        let base = address.local_base(&self.delimiter).to_lowercase();
        let keys = [
            address.key(),
            format!("{base}@{domain}"),
            format!("@{domain}"),
        ];
        for key in &keys {
            if let Some((_, targets)) = self.virtual_map.iter().find(|(k, _)| k == key) {
                return Some(targets);
            }
        }
        if self.classify(domain) == DomainClass::Local {
            return self
                .aliases
                .get(address.local())
                .or_else(|| self.aliases.get(&base));
        }
        None
    }

    fn route(
        &self,
        address: Address,
        accounts: &dyn AccountDirectory,
    ) -> Result<Route, Unroutable> {
        let domain = address.domain().unwrap_or_default().to_string();
        let base = address.local_base(&self.delimiter).to_lowercase();
        let account = match self.classify(&domain) {
            DomainClass::Remote => return Ok(Route::Remote(address)),
            DomainClass::Local => base.clone(),
            DomainClass::VirtualMailbox => format!("{base}@{domain}"),
            DomainClass::VirtualAlias => String::new(),
        };
        if !account.is_empty() && accounts.account_exists(&account) {
            return Ok(Route::Local { account, address });
        }
        // RFC 5321 §4.5.1: postmaster exists in every domain we serve.
        if base == "postmaster" {
            return Ok(Route::Local {
                account: "postmaster".into(),
                address,
            });
        }
        Err(Unroutable::UnknownUser(address.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Users(&'static [&'static str]);
    impl AccountDirectory for Users {
        fn account_exists(&self, account: &str) -> bool {
            self.0.contains(&account)
        }
    }

    fn resolver() -> Resolver {
        let mut config = Config {
            myhostname: "mail.example.org".into(),
            virtual_mailbox_domains: vec!["example.net".into()],
            ..Config::default()
        };
        config.virtual_alias.domains = vec!["alias.test".into()];
        config.virtual_alias.map.insert(
            "info@alias.test".into(),
            vec!["alice".into(), "far@remote.test".into()],
        );
        config
            .virtual_alias
            .map
            .insert("@alias.test".into(), vec!["bob@localhost".into()]);
        config.expand();
        let (aliases, _) = Aliases::parse(
            "staff: alice, bob\nloop1: loop2\nloop2: loop1\nself: self, alice\nghost: nobody\ndiamond: b1, c1\nb1: d1\nc1: d1\nd1: alice, bob\n",
        );
        Resolver::new(&config, aliases)
    }

    fn local(account: &str) -> impl Fn(&Result<Route, Unroutable>) -> bool + '_ {
        move |r| matches!(r, Ok(Route::Local { account: a, .. }) if a == account)
    }

    const USERS: Users = Users(&["alice", "bob", "self", "carol@example.net"]);

    #[test]
    fn local_users_delimiter_and_postmaster() {
        let r = resolver();
        let got = r.expand(&Address::parse("alice+news@localhost").unwrap(), &USERS);
        assert!(local("alice")(&got[0]), "{got:?}");
        let got = r.expand(&Address::parse("Alice@MAIL.example.org").unwrap(), &USERS);
        assert!(local("alice")(&got[0]));
        let got = r.expand(&Address::parse("postmaster@localhost").unwrap(), &USERS);
        assert!(local("postmaster")(&got[0]));
        let got = r.expand(&Address::parse("nobody@localhost").unwrap(), &USERS);
        assert!(matches!(got[0], Err(Unroutable::UnknownUser(_))));
        let got = r.expand(&Address::parse("bob").unwrap(), &USERS);
        assert!(local("bob")(&got[0]));
    }

    #[test]
    fn aliases_expand_and_loops_stop() {
        let r = resolver();
        let got = r.expand(&Address::parse("staff@localhost").unwrap(), &USERS);
        assert_eq!(got.len(), 2);
        let got = r.expand(&Address::parse("self@localhost").unwrap(), &USERS);
        assert!(local("self")(&got[0]) && local("alice")(&got[1]), "{got:?}");
        let got = r.expand(&Address::parse("loop1@localhost").unwrap(), &USERS);
        assert!(got.iter().all(|r| r.is_err()), "{got:?}");
        let got = r.expand(&Address::parse("diamond@localhost").unwrap(), &USERS);
        assert!(got.iter().all(|r| r.is_ok()), "{got:?}");
        assert_eq!(got.len(), 2, "d expanded once: {got:?}");
        let got = r.expand(&Address::parse("ghost@localhost").unwrap(), &USERS);
        assert!(matches!(got[0], Err(Unroutable::UnknownUser(_))));
    }

    #[test]
    fn virtual_domains() {
        let r = resolver();
        let got = r.expand(&Address::parse("info@alias.test").unwrap(), &USERS);
        assert!(local("alice")(&got[0]));
        assert!(matches!(&got[1], Ok(Route::Remote(a)) if a.to_string() == "far@remote.test"));
        let got = r.expand(&Address::parse("anything@alias.test").unwrap(), &USERS);
        assert!(local("bob")(&got[0]));
        let got = r.expand(&Address::parse("carol@example.net").unwrap(), &USERS);
        assert!(local("carol@example.net")(&got[0]));
        assert_eq!(
            r.account_name(&Address::parse("Carol@Example.net").unwrap()),
            Ok("carol@example.net".into())
        );
        assert_eq!(
            r.account_name(&Address::parse("fauzan@localhost").unwrap()),
            Ok("fauzan".into())
        );
        assert!(
            r.account_name(&Address::parse("x@remote.test").unwrap())
                .is_err()
        );
        assert!(!r.is_local_domain(&Address::parse("x@remote.test").unwrap()));
        assert!(r.is_local_domain(&Address::parse("x").unwrap()));
    }
}
