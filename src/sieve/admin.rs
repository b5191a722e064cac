//! `merpati sieve list|get|put|activate|deactivate|delete`: a user's
//! scripts from the command line, through the daemon's control socket
//! when it runs (it holds the store), else on the store directly.

use super::scripts;
use crate::config::Sieve as Settings;
use crate::store::MailStore;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SieveOp {
    List {
        account: String,
    },
    Get {
        account: String,
        name: String,
    },
    Put {
        account: String,
        name: String,
        text: String,
    },
    Activate {
        account: String,
        name: Option<String>,
    },
    Delete {
        account: String,
        name: String,
    },
}

impl SieveOp {
    pub fn to_words(&self) -> Vec<String> {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        match self {
            SieveOp::List { account } => w(&["sieve-list", account]),
            SieveOp::Get { account, name } => w(&["sieve-get", account, name]),
            SieveOp::Put {
                account,
                name,
                text,
            } => w(&["sieve-put", account, name, text]),
            SieveOp::Activate { account, name } => {
                w(&["sieve-activate", account, name.as_deref().unwrap_or("")])
            }
            SieveOp::Delete { account, name } => w(&["sieve-delete", account, name]),
        }
    }

    pub fn from_words(words: &[String]) -> Option<SieveOp> {
        let s = |i: usize| words.get(i).cloned();
        Some(match words.first()?.as_str() {
            "sieve-list" => SieveOp::List { account: s(1)? },
            "sieve-get" => SieveOp::Get {
                account: s(1)?,
                name: s(2)?,
            },
            "sieve-put" => SieveOp::Put {
                account: s(1)?,
                name: s(2)?,
                text: s(3)?,
            },
            "sieve-activate" => SieveOp::Activate {
                account: s(1)?,
                name: s(2).filter(|n| !n.is_empty()),
            },
            "sieve-delete" => SieveOp::Delete {
                account: s(1)?,
                name: s(2)?,
            },
            _ => return None,
        })
    }

    pub fn execute(&self, store: &dyn MailStore, settings: &Settings) -> Result<Vec<u8>, String> {
        let account = match self {
            SieveOp::List { account }
            | SieveOp::Get { account, .. }
            | SieveOp::Put { account, .. }
            | SieveOp::Activate { account, .. }
            | SieveOp::Delete { account, .. } => account,
        };
        match store.account(account) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("no such account: {account}")),
            Err(e) => return Err(e.to_string()),
        }
        let out = match self {
            SieveOp::List { account } => {
                let (names, active) = scripts::list(store, account)?;
                names
                    .iter()
                    .map(|n| {
                        let mark = if active.as_deref() == Some(n.as_str()) {
                            " ACTIVE"
                        } else {
                            ""
                        };
                        format!("{n}{mark}\n")
                    })
                    .collect()
            }
            SieveOp::Get { account, name } => scripts::get(store, account, name)?,
            SieveOp::Put {
                account,
                name,
                text,
            } => {
                scripts::put(store, settings, account, name, text)?;
                format!("{account}: stored \"{name}\"\n")
            }
            SieveOp::Activate { account, name } => {
                scripts::activate(store, account, name.as_deref())?;
                match name {
                    Some(n) => format!("{account}: \"{n}\" is active\n"),
                    None => format!("{account}: no script is active\n"),
                }
            }
            SieveOp::Delete { account, name } => {
                scripts::delete(store, account, name)?;
                format!("{account}: deleted \"{name}\"\n")
            }
        };
        Ok(out.into_bytes())
    }
}
