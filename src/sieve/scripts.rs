//! A user's scripts, kept with the account in the mail store: each one's
//! text (for GETSCRIPT and editing) and compiled form (for delivery),
//! the list of names, and which one is active. Compiled once, at upload.

use super::{Cmd, codec};
use crate::config::Sieve as Settings;
use crate::store::MailStore;

const INDEX: &str = "sieve/index";
const ACTIVE: &str = "sieve/active";

fn text_key(name: &str) -> String {
    format!("sieve/text/{name}")
}

fn compiled_key(name: &str) -> String {
    format!("sieve/compiled/{name}")
}

/// A script name (RFC 5804 §1.6: no control characters; we also keep
/// `/` out, and bound the length).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.chars().count() > 128
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(format!("\"{name}\" is not a valid script name"));
    }
    Ok(())
}

fn read_string(store: &dyn MailStore, account: &str, key: &str) -> Result<Option<String>, String> {
    store
        .account_data(account, key)
        .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .map_err(|e| e.to_string())
}

fn write(
    store: &dyn MailStore,
    account: &str,
    key: &str,
    value: Option<&[u8]>,
) -> Result<(), String> {
    store
        .set_account_data(account, key, value)
        .map_err(|e| e.to_string())
}

/// The script names, and the active one.
pub fn list(store: &dyn MailStore, account: &str) -> Result<(Vec<String>, Option<String>), String> {
    let names = read_string(store, account, INDEX)?
        .map(|t| {
            t.lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let active = read_string(store, account, ACTIVE)?.filter(|a| !a.is_empty());
    Ok((names, active))
}

/// Compiles and stores `text` as `name` (replacing one of that name).
/// The compile error, with its line and column, is the refusal.
pub fn put(
    store: &dyn MailStore,
    settings: &Settings,
    account: &str,
    name: &str,
    text: &str,
) -> Result<(), String> {
    check_name(name)?;
    if text.len() as u64 > settings.max_script_size.0 {
        return Err(format!(
            "the script is larger than sieve.max_script_size ({} octets)",
            settings.max_script_size.0
        ));
    }
    let program = super::compile(text).map_err(|e| e.to_string())?;
    let (mut names, _) = list(store, account)?;
    if !names.iter().any(|n| n == name) {
        if names.len() >= settings.max_scripts {
            return Err(format!(
                "at most {} scripts (sieve.max_scripts)",
                settings.max_scripts
            ));
        }
        names.push(name.to_string());
    }
    write(
        store,
        account,
        &compiled_key(name),
        Some(&codec::encode(&program)),
    )?;
    write(store, account, &text_key(name), Some(text.as_bytes()))?;
    write(store, account, INDEX, Some(names.join("\n").as_bytes()))
}

pub fn get(store: &dyn MailStore, account: &str, name: &str) -> Result<String, String> {
    read_string(store, account, &text_key(name))?.ok_or_else(|| format!("no script \"{name}\""))
}

/// Makes `name` the active script; `None` deactivates.
pub fn activate(store: &dyn MailStore, account: &str, name: Option<&str>) -> Result<(), String> {
    if let Some(name) = name {
        let (names, _) = list(store, account)?;
        if !names.iter().any(|n| n == name) {
            return Err(format!("no script \"{name}\""));
        }
    }
    write(store, account, ACTIVE, name.map(str::as_bytes))
}

/// Deletes `name`; the active script cannot be (RFC 5804 §2.10).
pub fn delete(store: &dyn MailStore, account: &str, name: &str) -> Result<(), String> {
    let (mut names, active) = list(store, account)?;
    if active.as_deref() == Some(name) {
        return Err(format!(
            "\"{name}\" is the active script; deactivate it first"
        ));
    }
    if !names.iter().any(|n| n == name) {
        return Err(format!("no script \"{name}\""));
    }
    names.retain(|n| n != name);
    write(store, account, &text_key(name), None)?;
    write(store, account, &compiled_key(name), None)?;
    write(store, account, INDEX, Some(names.join("\n").as_bytes()))
}

/// The active script's program, for delivery; `None` without one (or
/// when its compiled form cannot be read, which is logged: delivery then
/// keeps, as with no script).
pub fn active_program(store: &dyn MailStore, account: &str) -> Option<Vec<Cmd>> {
    let active = read_string(store, account, ACTIVE).ok()??;
    if active.is_empty() {
        return None;
    }
    let bytes = store.account_data(account, &compiled_key(&active)).ok()??;
    let program = codec::decode(&bytes);
    if program.is_none() {
        tracing::warn!(
            "sieve: the compiled script \"{active}\" of {account} cannot be read; keeping"
        );
    }
    program
}
