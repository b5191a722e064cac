//! The recipient's Sieve script at local delivery: where the message goes
//! instead of (or besides) the mailbox it would go to. Runs per
//! recipient, after the spam verdict (`keep` means that mailbox: INBOX,
//! or Junk for spam). A script that cannot run keeps the message, with a
//! log line: a broken script never loses mail.

use crate::config::Sieve as Settings;
use crate::sieve::{Action, Input, eval, scripts};
use crate::store::{MailStore, SpecialUse};

/// Where one copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A mailbox of the recipient; `suffix` keeps the copies of one
    /// message in several mailboxes apart in the delivery records.
    Mailbox {
        name: String,
        special_use: Option<SpecialUse>,
        suffix: String,
    },
    /// `redirect`: to this address, as an alias would send it.
    Redirect(String),
    /// `discard`: delivered nowhere, on purpose.
    Discard,
    /// `reject`: refused; the sender gets a bounce with this reason.
    Reject(String),
}

/// The message as scripts see it, made once per message.
pub struct Prepared<'a> {
    message: &'a [u8],
    headers: Vec<(String, String)>,
}

impl<'a> Prepared<'a> {
    pub fn new(message: &'a [u8]) -> Prepared<'a> {
        Prepared {
            message,
            headers: Input::headers_of(message),
        }
    }
}

/// The targets for `account`; `default` is where the message goes
/// without a script (INBOX, or Junk).
#[allow(clippy::too_many_arguments)]
pub fn targets(
    store: &dyn MailStore,
    settings: &Settings,
    account: &str,
    message: &Prepared<'_>,
    sender: &str,
    recipient: &str,
    delimiter: &str,
    default: (String, Option<SpecialUse>),
) -> Vec<Target> {
    let keep = || Target::Mailbox {
        name: default.0.clone(),
        special_use: default.1,
        suffix: String::new(),
    };
    let Some(program) = scripts::active_program(store, account) else {
        return vec![keep()];
    };
    let input = Input {
        headers: message.headers.clone(),
        size: message.message.len() as u64,
        message: message.message,
        envelope_from: sender,
        envelope_to: recipient,
        delimiter,
    };
    let actions = match eval::run(&program, &input, settings.max_redirects) {
        Ok(actions) => actions,
        Err(e) => {
            tracing::warn!("sieve: {account}: {e}; the message is kept");
            return vec![keep()];
        }
    };
    let mut out = Vec::new();
    for action in actions {
        match action {
            Action::Keep => out.push(keep()),
            Action::Discard => out.push(Target::Discard),
            Action::Reject(reason) => out.push(Target::Reject(reason)),
            Action::Redirect(address) => {
                if address.eq_ignore_ascii_case(recipient) {
                    // To oneself: a loop by construction; keep instead.
                    out.push(keep());
                } else {
                    out.push(Target::Redirect(address));
                }
            }
            Action::FileInto { mailbox, create } => {
                out.push(
                    file_into(store, account, &mailbox, create).unwrap_or_else(|why| {
                        tracing::warn!(
                            "sieve: {account}: fileinto \"{mailbox}\": {why}; kept instead"
                        );
                        keep()
                    }),
                );
            }
        }
    }
    tracing::info!("sieve: {account}: {} action(s)", out.len());
    out
}

/// `fileinto`: the mailbox must exist, or be made with `:create`.
fn file_into(
    store: &dyn MailStore,
    account: &str,
    name: &str,
    create: bool,
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
    })
}
