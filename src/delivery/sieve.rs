//! The recipient's Sieve script at local delivery: where the message goes
//! instead of (or besides) the mailbox it would go to. Runs per
//! recipient, after the spam verdict (`keep` means that mailbox: INBOX,
//! or Junk for spam). A script that cannot run keeps the message, with a
//! log line: a broken script never loses mail.

use super::vacation::Reply;
use crate::config::Sieve as Settings;
use crate::sieve::compile::{Location, Program};
use crate::sieve::eval::Fields;
use crate::sieve::{Action, Input, eval, scripts};
use crate::store::{MailStore, SpecialUse};
use std::sync::Arc;

/// Where one copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A mailbox of the recipient; `suffix` keeps the copies of one
    /// message in several mailboxes apart in the delivery records.
    Mailbox {
        name: String,
        special_use: Option<SpecialUse>,
        suffix: String,
        /// IMAP flags the script gave it (RFC 5232).
        flags: Vec<String>,
        /// The message as the script edited it (RFC 5293), if it did.
        edited: Option<Arc<Vec<u8>>>,
    },
    /// `redirect`: to this address, as an alias would send it.
    Redirect(String),
    /// `discard`: delivered nowhere, on purpose.
    Discard,
    /// `reject`: refused; the sender gets a bounce with this reason.
    Reject(String),
    /// `vacation` or `notify`: a message to queue (besides the message's
    /// own targets).
    Reply(Reply),
}

/// The message as scripts see it, made once per message.
pub struct Prepared<'a> {
    message: &'a [u8],
    fields: Fields,
}

impl<'a> Prepared<'a> {
    pub fn new(message: &'a [u8]) -> Prepared<'a> {
        Prepared {
            message,
            fields: Fields::of(message),
        }
    }

    /// Header fields in order, decoded and unfolded.
    pub fn headers(&self) -> &[(String, String)] {
        &self.fields.headers
    }
}

/// Whom the script runs for.
pub struct Recipient<'a> {
    pub account: &'a str,
    /// The envelope sender ("" for the null sender).
    pub sender: &'a str,
    /// The recipient's address, as delivered to.
    pub address: &'a str,
    pub delimiter: &'a str,
    /// The spam filter's score and threshold for this recipient, if it
    /// tested the message.
    pub spam: Option<(f64, f64)>,
    /// Our host name (`environment "host"`).
    pub hostname: &'a str,
}

/// The targets for `r`; `default` is where the message goes without a
/// script (INBOX, or Junk).
pub fn targets(
    store: &dyn MailStore,
    settings: &Settings,
    r: &Recipient<'_>,
    message: &Prepared<'_>,
    default: (String, Option<SpecialUse>),
) -> Vec<Target> {
    let plain = |flags: Vec<String>| Target::Mailbox {
        name: default.0.clone(),
        special_use: default.1,
        suffix: String::new(),
        flags,
        edited: None,
    };
    let max_size = settings.max_script_size.0;
    let admin = |paths: &[String]| -> Vec<Arc<Program>> {
        paths
            .iter()
            .filter_map(|p| crate::sieve::global::load(std::path::Path::new(p), max_size))
            .collect()
    };
    let before = admin(&settings.before);
    let after = admin(&settings.after);
    let personal = scripts::active_program(store, r.account).map(Arc::new);
    let programs: Vec<&Program> = before
        .iter()
        .chain(personal.iter())
        .chain(after.iter())
        .map(|p| p.as_ref())
        .collect();
    if programs.is_empty() {
        return vec![plain(Vec::new())];
    }
    let input = Input {
        headers: &message.fields.headers,
        starts: &message.fields.starts,
        message: message.message,
        envelope_from: r.sender,
        envelope_to: r.address,
        delimiter: r.delimiter,
    };
    let loader = Includes {
        store,
        r,
        global_dir: &settings.global_dir,
        max_size,
        settings,
        mailboxes: std::cell::OnceCell::new(),
    };
    let outcome = match eval::run_all(&programs, &input, settings.limits(), &loader) {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!("sieve: {}: {e}; the message is kept", r.account);
            return vec![plain(Vec::new())];
        }
    };
    let edited = outcome.edited.map(Arc::new);
    let keep = |flags: Vec<String>| Target::Mailbox {
        name: default.0.clone(),
        special_use: default.1,
        suffix: String::new(),
        flags,
        edited: edited.clone(),
    };
    let now = crate::rfc5322::now_unix().max(0) as u64;
    let mut out = Vec::new();
    for action in outcome.actions {
        match action {
            Action::Keep { flags } => out.push(keep(imap_flags(flags))),
            Action::Discard => out.push(Target::Discard),
            Action::Reject(reason) => out.push(Target::Reject(reason)),
            Action::Redirect(address) => {
                // To oneself, or to an address this message was already
                // delivered to (its Delivered-To fields, as Postfix's
                // local(8) checks): a loop; keep instead.
                let looped = address.eq_ignore_ascii_case(r.address)
                    || message.headers().iter().any(|(n, v)| {
                        n.eq_ignore_ascii_case("delivered-to")
                            && v.trim()
                                .trim_matches(['<', '>'])
                                .eq_ignore_ascii_case(&address)
                    });
                if looped {
                    tracing::warn!(
                        "sieve: {}: redirect to <{address}>: mail forwarding loop; kept instead",
                        r.account
                    );
                    out.push(keep(Vec::new()));
                } else {
                    out.push(Target::Redirect(address));
                }
            }
            Action::FileInto {
                mailbox,
                create,
                flags,
            } => {
                let account = r.account;
                out.push(
                    file_into(store, account, &mailbox, create, imap_flags(flags.clone()))
                        .map(|t| with_edits(t, &edited))
                        .unwrap_or_else(|why| {
                            tracing::warn!(
                                "sieve: {account}: fileinto \"{mailbox}\": {why}; kept instead"
                            );
                            keep(imap_flags(flags))
                        }),
                );
            }
            Action::Notify(n) => {
                if let Some(reply) = super::notify::notification(r, message, &n) {
                    out.push(Target::Reply(reply));
                }
            }
            Action::Vacation(v) => {
                if let Some(reply) = super::vacation::reply(store, settings, r, message, &v, now) {
                    out.push(Target::Reply(reply));
                }
            }
        }
    }
    tracing::info!("sieve: {}: {} action(s)", r.account, out.len());
    out
}

/// What a run sees of the user's account: scripts for `include` (the
/// user's own in the store, the administrator's in `sieve.global_dir`),
/// mailboxes, the spam verdict, the environment.
struct Includes<'a> {
    store: &'a dyn MailStore,
    r: &'a Recipient<'a>,
    global_dir: &'a str,
    max_size: u64,
    settings: &'a Settings,
    /// The account's mailboxes, read once if a test asks.
    mailboxes: std::cell::OnceCell<Vec<crate::store::MailboxInfo>>,
}

impl Includes<'_> {
    fn mailboxes(&self) -> &[crate::store::MailboxInfo] {
        self.mailboxes
            .get_or_init(|| self.store.mailboxes(self.r.account).unwrap_or_default())
    }
}

impl eval::Context for Includes<'_> {
    fn load(&self, location: Location, name: &str) -> Option<Arc<Program>> {
        match location {
            Location::Personal => scripts::program(self.store, self.r.account, name).map(Arc::new),
            Location::Global => crate::sieve::global::load(
                &crate::sieve::global::in_dir(self.global_dir, name)?,
                self.max_size,
            ),
        }
    }

    fn mailbox_exists(&self, name: &str) -> bool {
        self.mailboxes().iter().any(|m| {
            m.name == name
                || (m.name.eq_ignore_ascii_case("INBOX") && name.eq_ignore_ascii_case("INBOX"))
        })
    }

    fn special_use(&self, attribute: &str) -> Option<String> {
        self.mailboxes()
            .iter()
            .find(|m| {
                m.special_use
                    .is_some_and(|u| u.attribute().eq_ignore_ascii_case(attribute))
            })
            .map(|m| m.name.clone())
    }

    fn has_special_use(&self, mailbox: &str, attribute: &str) -> bool {
        self.mailboxes().iter().any(|m| {
            m.name == mailbox
                && m.special_use
                    .is_some_and(|u| u.attribute().eq_ignore_ascii_case(attribute))
        })
    }

    fn spam(&self) -> Option<(f64, f64)> {
        self.r.spam
    }

    fn duplicate(&self, handle: &str, id: &str, seconds: u64, last: bool) -> Result<bool, String> {
        let s = self.settings;
        let max = s.duplicate_max_period.0.as_secs();
        let period = match seconds {
            0 => s.duplicate_default_period.0.as_secs(),
            n => n,
        }
        .min(max);
        let records = super::records::Records {
            store: self.store,
            account: self.r.account,
            kind: "sieve/duplicate",
            horizon: max,
            max: s.duplicate_max_entries,
        };
        let now = crate::rfc5322::now_unix().max(0) as u64;
        records
            .check(&format!("{handle}\0{id}"), now, period, last)
            .map(|seen| seen == super::records::Seen::Again)
    }

    fn environment(&self, name: &str) -> Option<String> {
        match name {
            "host" => Some(self.r.hostname.to_string()),
            "domain" => self.r.address.rsplit_once('@').map(|(_, d)| d.to_string()),
            _ => None,
        }
    }
}

/// The flags a script set that IMAP can store — the store's own rule
/// (system flags but `\Recent`, in any case; keywords that are atoms) —
/// within what one script may set: at most 32, each at most 64 octets.
fn imap_flags(flags: Vec<String>) -> Vec<String> {
    crate::store::flags::normalize(&flags)
        .into_iter()
        .filter(|f| f.len() <= 64)
        .take(32)
        .collect()
}

fn with_edits(target: Target, edited: &Option<Arc<Vec<u8>>>) -> Target {
    match target {
        Target::Mailbox {
            name,
            special_use,
            suffix,
            flags,
            ..
        } => Target::Mailbox {
            name,
            special_use,
            suffix,
            flags,
            edited: edited.clone(),
        },
        other => other,
    }
}

/// `fileinto`: the mailbox must exist, or be made with `:create`.
fn file_into(
    store: &dyn MailStore,
    account: &str,
    name: &str,
    create: bool,
    flags: Vec<String>,
) -> Result<Target, String> {
    let exists = store
        .mailbox(account, name)
        .map_err(|e| e.to_string())?
        .is_some();
    if !exists {
        if !create {
            return Err("no such mailbox".into());
        }
        store
            .create_mailbox(account, name, None)
            .map_err(|e| e.to_string())?;
    }
    Ok(Target::Mailbox {
        name: name.to_string(),
        special_use: None,
        suffix: format!("\0sieve:{name}"),
        flags,
        edited: None,
    })
}
