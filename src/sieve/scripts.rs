//! A user's scripts, kept with the account in the mail store: each one's
//! text (for GETSCRIPT and editing) and compiled form (for delivery),
//! the list of names, and which one is active. Compiled once, at upload.

use super::codec;
use super::compile::Program;
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

/// Why a script operation was refused; the kinds are ManageSieve's
/// response codes (RFC 5804 §1.3), the message is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The name or the script is not acceptable (a compile error).
    Invalid,
    NonExistent,
    AlreadyExists,
    Active,
    /// `QUOTA/MAXSIZE`.
    TooLarge,
    /// `QUOTA/MAXSCRIPTS`.
    TooMany,
    /// The store failed: try again later (`TRYLATER`).
    Store,
}

impl ScriptError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> ScriptError {
        ScriptError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ScriptError> for String {
    fn from(e: ScriptError) -> String {
        e.message
    }
}

fn store_error(e: crate::store::StoreError) -> ScriptError {
    ScriptError::new(ErrorKind::Store, e.to_string())
}

fn no_script(name: &str) -> ScriptError {
    ScriptError::new(ErrorKind::NonExistent, format!("no script \"{name}\""))
}

/// A script name (RFC 5804 §1.6: no control characters; we also keep
/// `/` out, and bound the length).
pub fn check_name(name: &str) -> Result<(), ScriptError> {
    if name.is_empty()
        || name.chars().count() > 128
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(ScriptError::new(
            ErrorKind::Invalid,
            format!("\"{name}\" is not a valid script name"),
        ));
    }
    Ok(())
}

fn read_string(
    store: &dyn MailStore,
    account: &str,
    key: &str,
) -> Result<Option<String>, ScriptError> {
    store
        .account_data(account, key)
        .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .map_err(store_error)
}

fn write(
    store: &dyn MailStore,
    account: &str,
    key: &str,
    value: Option<&[u8]>,
) -> Result<(), ScriptError> {
    store
        .set_account_data(account, key, value)
        .map_err(store_error)
}

/// The script names, and the active one.
pub fn list(
    store: &dyn MailStore,
    account: &str,
) -> Result<(Vec<String>, Option<String>), ScriptError> {
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
) -> Result<(), ScriptError> {
    let mut names = have_space(store, settings, account, name, text.len() as u64)?;
    let program = check(text)?;
    if !names.iter().any(|n| n == name) {
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

/// Compiles `text` without storing it (ManageSieve's CHECKSCRIPT).
pub fn check(text: &str) -> Result<Program, ScriptError> {
    super::compile(text).map_err(|e| ScriptError::new(ErrorKind::Invalid, e.to_string()))
}

/// Whether a script of `size` octets may be stored as `name` (the size
/// bound, and the count bound for a new name); the current names.
pub fn have_space(
    store: &dyn MailStore,
    settings: &Settings,
    account: &str,
    name: &str,
    size: u64,
) -> Result<Vec<String>, ScriptError> {
    check_name(name)?;
    if size > settings.max_script_size.0 {
        return Err(ScriptError::new(
            ErrorKind::TooLarge,
            format!(
                "the script is larger than sieve.max_script_size ({} octets)",
                settings.max_script_size.0
            ),
        ));
    }
    let (names, _) = list(store, account)?;
    if !names.iter().any(|n| n == name) && names.len() >= settings.max_scripts {
        return Err(ScriptError::new(
            ErrorKind::TooMany,
            format!(
                "at most {} scripts (sieve.max_scripts)",
                settings.max_scripts
            ),
        ));
    }
    Ok(names)
}

pub fn get(store: &dyn MailStore, account: &str, name: &str) -> Result<String, ScriptError> {
    read_string(store, account, &text_key(name))?.ok_or_else(|| no_script(name))
}

/// Renames `old` to `new` (RFC 5804 §2.11.1), keeping it active if it
/// was.
pub fn rename(
    store: &dyn MailStore,
    account: &str,
    old: &str,
    new: &str,
) -> Result<(), ScriptError> {
    check_name(new)?;
    let (mut names, active) = list(store, account)?;
    let Some(at) = names.iter().position(|n| n == old) else {
        return Err(no_script(old));
    };
    if names.iter().any(|n| n == new) {
        return Err(ScriptError::new(
            ErrorKind::AlreadyExists,
            format!("a script \"{new}\" exists already"),
        ));
    }
    let text = get(store, account, old)?;
    let compiled = store
        .account_data(account, &compiled_key(old))
        .map_err(store_error)?
        .ok_or_else(|| no_script(old))?;
    write(store, account, &compiled_key(new), Some(&compiled))?;
    write(store, account, &text_key(new), Some(text.as_bytes()))?;
    if let Some(slot) = names.get_mut(at) {
        *slot = new.to_string();
    }
    write(store, account, INDEX, Some(names.join("\n").as_bytes()))?;
    if active.as_deref() == Some(old) {
        write(store, account, ACTIVE, Some(new.as_bytes()))?;
    }
    write(store, account, &text_key(old), None)?;
    write(store, account, &compiled_key(old), None)
}

/// Makes `name` the active script; `None` deactivates.
pub fn activate(
    store: &dyn MailStore,
    account: &str,
    name: Option<&str>,
) -> Result<(), ScriptError> {
    if let Some(name) = name {
        let (names, _) = list(store, account)?;
        if !names.iter().any(|n| n == name) {
            return Err(no_script(name));
        }
    }
    write(store, account, ACTIVE, name.map(str::as_bytes))
}

/// Deletes `name`; the active script cannot be (RFC 5804 §2.10).
pub fn delete(store: &dyn MailStore, account: &str, name: &str) -> Result<(), ScriptError> {
    let (mut names, active) = list(store, account)?;
    if !names.iter().any(|n| n == name) {
        return Err(no_script(name));
    }
    if active.as_deref() == Some(name) {
        return Err(ScriptError::new(
            ErrorKind::Active,
            format!("\"{name}\" is the active script; deactivate it first"),
        ));
    }
    names.retain(|n| n != name);
    write(store, account, &text_key(name), None)?;
    write(store, account, &compiled_key(name), None)?;
    write(store, account, INDEX, Some(names.join("\n").as_bytes()))
}

/// The active script's program, for delivery; `None` without one.
pub fn active_program(store: &dyn MailStore, account: &str) -> Option<Program> {
    let active = read_string(store, account, ACTIVE).ok()??;
    if active.is_empty() {
        return None;
    }
    program(store, account, &active)
}

/// A stored script's program. A compiled form this version cannot read
/// (written by an older one, or damaged) is compiled again from the text
/// and stored, once, with a log line; a text that no longer compiles is
/// logged and gives `None` (delivery then keeps, as with no script).
pub fn program(store: &dyn MailStore, account: &str, name: &str) -> Option<Program> {
    let bytes = store.account_data(account, &compiled_key(name)).ok()??;
    if let Some(program) = codec::decode(&bytes) {
        return Some(program);
    }
    let text = read_string(store, account, &text_key(name)).ok()??;
    match super::compile(&text) {
        Ok(program) => {
            tracing::info!("sieve: recompiled the script \"{name}\" of {account}");
            let _ = write(
                store,
                account,
                &compiled_key(name),
                Some(&codec::encode(&program)),
            );
            Some(program)
        }
        Err(e) => {
            tracing::warn!(
                "sieve: the script \"{name}\" of {account} no longer compiles: {e}; keeping"
            );
            None
        }
    }
}
