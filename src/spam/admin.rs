//! `merpati spam ...`: training a mailbox in bulk and the per-user allow
//! and block lists. Carried out by the daemon over the control socket when
//! it runs (so its caches stay true), by the CLI itself when it does not.

use super::SpamFilter;
use super::lists::Which;
use crate::config::Spam as Settings;
use crate::store::MailStore;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpamOp {
    /// Learn every message of `mailbox` as spam or ham.
    Train {
        account: String,
        mailbox: String,
        spam: bool,
    },
    List {
        account: String,
        which: Which,
        entry: String,
    },
    Unlist {
        account: String,
        entry: String,
    },
    Show {
        account: String,
    },
}

impl SpamOp {
    pub fn to_words(&self) -> Vec<String> {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        match self {
            SpamOp::Train {
                account,
                mailbox,
                spam,
            } => w(&[
                "spam-train",
                account,
                mailbox,
                if *spam { "spam" } else { "ham" },
            ]),
            SpamOp::List {
                account,
                which,
                entry,
            } => w(&[
                "spam-list",
                account,
                match which {
                    Which::Allow => "allow",
                    Which::Block => "block",
                },
                entry,
            ]),
            SpamOp::Unlist { account, entry } => w(&["spam-unlist", account, entry]),
            SpamOp::Show { account } => w(&["spam-show", account]),
        }
    }

    pub fn from_words(words: &[String]) -> Option<SpamOp> {
        let s = |i: usize| words.get(i).cloned();
        Some(match words.first()?.as_str() {
            "spam-train" => SpamOp::Train {
                account: s(1)?,
                mailbox: s(2)?,
                spam: match s(3)?.as_str() {
                    "spam" => true,
                    "ham" => false,
                    _ => return None,
                },
            },
            "spam-list" => SpamOp::List {
                account: s(1)?,
                which: match s(2)?.as_str() {
                    "allow" => Which::Allow,
                    "block" => Which::Block,
                    _ => return None,
                },
                entry: s(3)?,
            },
            "spam-unlist" => SpamOp::Unlist {
                account: s(1)?,
                entry: s(2)?,
            },
            "spam-show" => SpamOp::Show { account: s(1)? },
            _ => return None,
        })
    }

    /// Carries the operation out; the output is what the CLI prints.
    pub fn execute(
        &self,
        store: &dyn MailStore,
        filter: &SpamFilter,
        settings: &Settings,
    ) -> Result<Vec<u8>, String> {
        match self {
            SpamOp::Train {
                account,
                mailbox,
                spam,
            } => train(store, filter, settings, account, mailbox, *spam),
            SpamOp::List {
                account,
                which,
                entry,
            } => {
                require(store, account)?;
                filter.change_lists(account, |l| l.add(*which, entry))?;
                let list = match which {
                    Which::Allow => "allow",
                    Which::Block => "block",
                };
                Ok(format!(
                    "{account}: {} added to the {list} list\n",
                    entry.to_ascii_lowercase()
                )
                .into_bytes())
            }
            SpamOp::Unlist { account, entry } => {
                require(store, account)?;
                let mut found = false;
                filter.change_lists(account, |l| {
                    found = l.remove(entry);
                    Ok(())
                })?;
                if !found {
                    return Err(format!("{entry} is on none of {account}'s lists"));
                }
                Ok(format!("{account}: {entry} removed\n").into_bytes())
            }
            SpamOp::Show { account } => {
                require(store, account)?;
                let lists = filter.lists(account);
                let (spam, ham, tokens) = filter.table_size(settings, account);
                let mut out = format!("learnt: {spam} spam, {ham} ham, {tokens} tokens\n");
                for e in &lists.allow {
                    out.push_str(&format!("allow {e}\n"));
                }
                for e in &lists.block {
                    out.push_str(&format!("block {e}\n"));
                }
                Ok(out.into_bytes())
            }
        }
    }
}

fn require(store: &dyn MailStore, account: &str) -> Result<(), String> {
    match store.account(account) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("no such account: {account}")),
        Err(e) => Err(e.to_string()),
    }
}

fn train(
    store: &dyn MailStore,
    filter: &SpamFilter,
    settings: &Settings,
    account: &str,
    mailbox: &str,
    spam: bool,
) -> Result<Vec<u8>, String> {
    let err = |e: crate::store::StoreError| e.to_string();
    require(store, account)?;
    let info = store
        .mailbox(account, mailbox)
        .map_err(err)?
        .ok_or_else(|| format!("{account} has no mailbox {mailbox}"))?;
    let metas = store.messages(info.id).map_err(err)?;
    let messages = metas
        .iter()
        .filter_map(|meta| match store.message(info.id, meta.uid) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("spam train: cannot read {mailbox} UID {}: {e}", meta.uid.0);
                None
            }
        });
    let counts = filter
        .learn_many(settings, account, messages, spam)
        .map_err(err)?;
    let (new, moved, already) = (counts.new, counts.moved, counts.already);
    let kind = if spam { "spam" } else { "ham" };
    Ok(format!(
        "{account}/{mailbox}: learnt {new} as {kind}, {moved} moved from the other kind, {already} already known\n"
    )
    .into_bytes())
}
