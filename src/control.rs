//! The admin control socket. The embedded store can be open in only one
//! process, so while the daemon runs, `merpati user …` and `merpati
//! mailbox …` send their store operation here and the daemon carries it
//! out; when it does not run, the CLI opens the store itself. Either way
//! the same [`StoreOp::execute`] does the work. Queue admin operations
//! (`merpati queue hold|release|delete|requeue`) come here too while the
//! daemon runs, because only the queue manager knows which files in
//! `active` it is delivering right now ([`QueueRequest`]).
//!
//! Wire format: the request is the operation's words, NUL-separated, ended
//! by the client's half-close; the answer is `0` (success) or `1`
//! (failure) followed by the output text. The socket is mode 0600.

use crate::queue::active::ActiveSet;
use crate::queue::id::QueueId;
use crate::queue::spool::Spool;
use crate::queue::{ActiveGuard, AdminOp};
use crate::store::{ImportMessage, ImportOutcome, MailStore, StoreError, Uid};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const SOCKET: &str = "control.sock";
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Largest request accepted: a few names and a password hash, a Sieve
/// script (`sieve.max_script_size` is at most 1 MiB), or an import batch
/// in base64 (`merpati import` sends at most 16 MiB of messages at once,
/// or one bigger message alone).
const MAX_REQUEST: u64 = 96 << 20;

/// A store operation, already resolved to account names by the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    AddUser {
        account: String,
        hash: Option<String>,
        quota: u64,
    },
    DeleteUser {
        account: String,
    },
    SetPassword {
        account: String,
        hash: String,
    },
    SetQuota {
        account: String,
        quota: u64,
    },
    ListUsers,
    /// The web administration flag (see [`ADMIN_KEY`]).
    SetAdmin {
        account: String,
        admin: bool,
    },
    ListMessages {
        account: String,
        mailbox: String,
    },
    Cat {
        account: String,
        mailbox: String,
        uid: u32,
    },
    /// A batch of `merpati import`: each message appended unless already
    /// imported (see `crate::import::once_key`); mailboxes made if missing.
    Import {
        account: String,
        messages: Vec<ImportItem>,
    },
}

/// One message of [`StoreOp::Import`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportItem {
    pub mailbox: String,
    pub flags: Vec<String>,
    pub internal_date: i64,
    pub message: Vec<u8>,
    /// (UIDVALIDITY, UID) to keep, from Dovecot's `dovecot-uidlist`.
    pub uid: Option<(u32, u32)>,
}

/// The account-data key that lets an account use `/admin`.
pub const ADMIN_KEY: &str = "admin";

/// Whether the account may use the web administration.
pub fn is_admin(store: &dyn MailStore, account: &str) -> Result<bool, StoreError> {
    Ok(store
        .account_data(account, ADMIN_KEY)?
        .is_some_and(|v| v == b"1"))
}

/// Words per message in the `import` request.
const IMPORT_WORDS: usize = 5;

impl StoreOp {
    pub fn to_words(&self) -> Vec<String> {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        match self {
            StoreOp::AddUser {
                account,
                hash,
                quota,
            } => w(&[
                "add-user",
                account,
                hash.as_deref().unwrap_or(""),
                &quota.to_string(),
            ]),
            StoreOp::DeleteUser { account } => w(&["delete-user", account]),
            StoreOp::SetPassword { account, hash } => w(&["set-password", account, hash]),
            StoreOp::SetQuota { account, quota } => w(&["set-quota", account, &quota.to_string()]),
            StoreOp::ListUsers => w(&["list-users"]),
            StoreOp::SetAdmin { account, admin } => {
                w(&["set-admin", account, if *admin { "on" } else { "off" }])
            }
            StoreOp::ListMessages { account, mailbox } => w(&["list-messages", account, mailbox]),
            StoreOp::Cat {
                account,
                mailbox,
                uid,
            } => w(&["cat", account, mailbox, &uid.to_string()]),
            StoreOp::Import { account, messages } => {
                let mut words = w(&["import", account]);
                for m in messages {
                    words.extend([
                        m.mailbox.clone(),
                        m.flags.join(" "),
                        m.internal_date.to_string(),
                        // Words are text; a message is octets.
                        crate::auth::base64_encode(&m.message),
                        m.uid.map(|(v, u)| format!("{v}:{u}")).unwrap_or_default(),
                    ]);
                }
                words
            }
        }
    }

    pub fn from_words(words: &[String]) -> Option<StoreOp> {
        let s = |i: usize| words.get(i).cloned();
        let n = |i: usize| words.get(i).and_then(|v| v.parse::<u64>().ok());
        Some(match words.first()?.as_str() {
            "add-user" => StoreOp::AddUser {
                account: s(1)?,
                hash: s(2).filter(|h| !h.is_empty()),
                quota: n(3)?,
            },
            "delete-user" => StoreOp::DeleteUser { account: s(1)? },
            "set-password" => StoreOp::SetPassword {
                account: s(1)?,
                hash: s(2)?,
            },
            "set-quota" => StoreOp::SetQuota {
                account: s(1)?,
                quota: n(2)?,
            },
            "list-users" => StoreOp::ListUsers,
            "set-admin" => StoreOp::SetAdmin {
                account: s(1)?,
                admin: match s(2)?.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return None,
                },
            },
            "list-messages" => StoreOp::ListMessages {
                account: s(1)?,
                mailbox: s(2)?,
            },
            "cat" => StoreOp::Cat {
                account: s(1)?,
                mailbox: s(2)?,
                uid: u32::try_from(n(3)?).ok()?,
            },
            "import" => {
                let items = words.get(2..)?;
                if items.len() % IMPORT_WORDS != 0 {
                    return None;
                }
                StoreOp::Import {
                    account: s(1)?,
                    messages: items
                        .chunks(IMPORT_WORDS)
                        .map(import_item)
                        .collect::<Option<_>>()?,
                }
            }
            _ => return None,
        })
    }

    /// Carries the operation out; output is what the CLI prints.
    pub fn execute(&self, store: &dyn MailStore) -> Result<Vec<u8>, String> {
        let err = |e: StoreError| e.to_string();
        match self {
            StoreOp::AddUser {
                account,
                hash,
                quota,
            } => {
                store
                    .create_account(account, hash.as_deref())
                    .map_err(err)?;
                if *quota > 0 {
                    store.set_quota(account, *quota).map_err(err)?;
                }
                Ok(format!("added {account}\n").into_bytes())
            }
            StoreOp::DeleteUser { account } => {
                store.delete_account(account).map_err(err)?;
                Ok(format!("deleted {account}\n").into_bytes())
            }
            StoreOp::SetPassword { account, hash } => {
                store.set_password(account, hash).map_err(err)?;
                Ok(format!("password changed for {account}\n").into_bytes())
            }
            StoreOp::SetQuota { account, quota } => {
                store.set_quota(account, *quota).map_err(err)?;
                Ok(format!("quota of {account} is now {quota} bytes\n").into_bytes())
            }
            StoreOp::SetAdmin { account, admin } => {
                if store.account(account).map_err(err)?.is_none() {
                    return Err(format!("no account {account}"));
                }
                let value = admin.then_some(b"1".as_slice());
                store
                    .set_account_data(account, ADMIN_KEY, value)
                    .map_err(err)?;
                let now = if *admin { "may" } else { "may no longer" };
                Ok(format!("{account} {now} use the web administration\n").into_bytes())
            }
            StoreOp::ListUsers => {
                let mut out = String::new();
                for a in store.accounts().map_err(err)? {
                    let quota = if a.quota_bytes == 0 {
                        "unlimited".to_string()
                    } else {
                        a.quota_bytes.to_string()
                    };
                    let mut login = if a.password_hash.is_some() {
                        ""
                    } else {
                        " (no password)"
                    }
                    .to_string();
                    if is_admin(store, &a.name).map_err(err)? {
                        login.push_str(" (admin)");
                    }
                    out.push_str(&format!(
                        "{}\tused={}\tquota={quota}{login}\n",
                        a.name, a.used_bytes
                    ));
                }
                Ok(out.into_bytes())
            }
            StoreOp::ListMessages { account, mailbox } => {
                let mb = store
                    .mailbox(account, mailbox)
                    .map_err(err)?
                    .ok_or_else(|| format!("{account} has no mailbox {mailbox}"))?;
                let mut out = String::new();
                for meta in store.messages(mb.id).map_err(err)? {
                    let bytes = store.message(mb.id, meta.uid).map_err(err)?;
                    let (from, subject) = summary(&bytes);
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{from}\t{subject}\n",
                        meta.uid.0,
                        meta.size,
                        crate::rfc5322::format_date(meta.internal_date),
                        meta.flags.join(" ")
                    ));
                }
                Ok(out.into_bytes())
            }
            StoreOp::Import { account, messages } => import(store, account, messages),
            StoreOp::Cat {
                account,
                mailbox,
                uid,
            } => {
                let mb = store
                    .mailbox(account, mailbox)
                    .map_err(err)?
                    .ok_or_else(|| format!("{account} has no mailbox {mailbox}"))?;
                store.message(mb.id, Uid(*uid)).map_err(err)
            }
        }
    }
}

fn import_item(words: &[String]) -> Option<ImportItem> {
    let [mailbox, flags, date, message, uid] = words else {
        return None;
    };
    Some(ImportItem {
        mailbox: mailbox.clone(),
        flags: flags.split_whitespace().map(str::to_string).collect(),
        internal_date: date.parse().ok()?,
        message: crate::auth::base64_decode(message)?,
        uid: match uid.split_once(':') {
            Some((v, u)) => Some((v.parse().ok()?, u.parse().ok()?)),
            None if uid.is_empty() => None,
            None => return None,
        },
    })
}

/// Runs an import batch; one line per message: `imported UID`,
/// `skipped` or `failed: why`.
fn import(store: &dyn MailStore, account: &str, items: &[ImportItem]) -> Result<Vec<u8>, String> {
    let keys: Vec<String> = items
        .iter()
        .map(|m| crate::import::once_key(&m.mailbox, &m.message))
        .collect();
    let messages: Vec<ImportMessage<'_>> = items
        .iter()
        .zip(&keys)
        .map(|(m, key)| ImportMessage {
            mailbox: &m.mailbox,
            body: &m.message,
            flags: &m.flags,
            internal_date: m.internal_date,
            uid: m.uid.map(|(v, u)| (v, Uid(u))),
            once_key: key,
        })
        .collect();
    let outcomes = store
        .import_batch(account, &messages)
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    for outcome in outcomes {
        match outcome {
            ImportOutcome::Imported(uid) => out.push_str(&format!("imported {}\n", uid.0)),
            ImportOutcome::Skipped => out.push_str("skipped\n"),
            ImportOutcome::Failed(why) => out.push_str(&format!("failed: {why}\n")),
        }
    }
    Ok(out.into_bytes())
}

/// From and Subject, decoded (RFC 2047) by mail-parser.
fn summary(message: &[u8]) -> (String, String) {
    let Some(parsed) = mail_parser::MessageParser::new().parse_headers(message) else {
        return (String::new(), String::new());
    };
    let from = parsed
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    let subject = parsed
        .subject()
        .unwrap_or_default()
        .replace(['\t', '\r', '\n'], " ");
    (from, subject)
}

/// A queue admin operation on one message (`None`: all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRequest {
    pub op: AdminOp,
    pub only: Option<QueueId>,
}

impl QueueRequest {
    pub fn to_words(&self) -> Vec<String> {
        let target = self.only.as_ref().map_or("ALL", |id| id.as_str());
        vec!["queue".into(), self.op.name().into(), target.into()]
    }

    pub fn from_words(words: &[String]) -> Option<QueueRequest> {
        let [verb, op, target] = words else {
            return None;
        };
        if verb != "queue" {
            return None;
        }
        let op = AdminOp::from_name(op)?;
        let only = if target == "ALL" {
            None
        } else {
            Some(QueueId::parse(target)?)
        };
        Some(QueueRequest { op, only })
    }

    /// The IDs affected, one per line.
    pub fn execute(&self, spool: &Spool, active: &ActiveSet) -> Result<Vec<u8>, String> {
        let done = crate::queue::admin(
            spool,
            self.op,
            self.only.as_ref(),
            &ActiveGuard::Daemon(active),
        )
        .map_err(|e| e.to_string())?;
        let mut out = String::new();
        for id in done {
            out.push_str(id.as_str());
            out.push('\n');
        }
        Ok(out.into_bytes())
    }
}

/// What the daemon's control socket works on.
pub struct Context {
    pub store: Arc<dyn MailStore>,
    pub spool: Arc<Spool>,
    pub active: Arc<ActiveSet>,
    /// The daemon's spam filter: `merpati spam` goes through it so that
    /// its caches stay true.
    pub spam: Arc<crate::spam::SpamFilter>,
    pub config: Arc<crate::live::Live<crate::config::Config>>,
}

impl Context {
    fn execute(&self, words: &[String]) -> Result<Vec<u8>, String> {
        if let Some(request) = QueueRequest::from_words(words) {
            return request.execute(&self.spool, &self.active);
        }
        match words {
            [verb, dir] if verb == "backup" => {
                let config = self.config.get();
                let dir = Path::new(dir);
                return crate::backup::backup(&config, self.store.as_ref(), &self.spool, dir)
                    .map(String::into_bytes);
            }
            [verb, account, dir] if verb == "export" => {
                return crate::backup::export(self.store.as_ref(), account, Path::new(dir))
                    .map(String::into_bytes);
            }
            _ => {}
        }
        if let Some(op) = crate::sieve::admin::SieveOp::from_words(words) {
            let settings = self.config.get().sieve.clone();
            return op.execute(self.store.as_ref(), &settings);
        }
        if let Some(op) = crate::spam::admin::SpamOp::from_words(words) {
            let settings = self.config.get().spam.clone();
            return op.execute(self.store.as_ref(), &self.spam, &settings);
        }
        match StoreOp::from_words(words) {
            Some(op) => {
                let done = op.execute(self.store.as_ref());
                if let StoreOp::DeleteUser { account } = &op {
                    self.spam.forget(account);
                }
                done
            }
            None => Err("malformed control request".to_string()),
        }
    }
}

/// Starts the control socket server (daemon side).
pub fn serve(
    path: &Path,
    context: Arc<Context>,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let inner = tracker.clone();
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stop.cancelled() => return,
            };
            let Ok((mut conn, _)) = accepted else {
                continue;
            };
            let context = context.clone();
            inner.spawn(async move {
                let mut request = Vec::new();
                // One octet more than allowed tells a request cut at the
                // limit from a whole one: a cut message must not be stored.
                let mut limited = (&mut conn).take(MAX_REQUEST + 1);
                let read = limited.read_to_end(&mut request);
                if !matches!(tokio::time::timeout(REQUEST_TIMEOUT, read).await, Ok(Ok(_))) {
                    return;
                }
                if request.len() as u64 > MAX_REQUEST {
                    let refusal = format!(
                        "1request over the control socket's {} MiB",
                        MAX_REQUEST >> 20
                    );
                    let _ = conn.write_all(refusal.as_bytes()).await;
                    return;
                }
                let words: Vec<String> = String::from_utf8_lossy(&request)
                    .split('\0')
                    .map(str::to_string)
                    .collect();
                let answer = tokio::task::spawn_blocking(move || context.execute(&words))
                    .await
                    .unwrap_or_else(|_| Err("operation failed".into()));
                let mut reply = Vec::new();
                match answer {
                    Ok(out) => {
                        reply.push(b'0');
                        reply.extend_from_slice(&out);
                    }
                    Err(e) => {
                        reply.push(b'1');
                        reply.extend_from_slice(e.as_bytes());
                    }
                }
                let _ = conn.write_all(&reply).await;
            });
        }
    });
    Ok(())
}

/// Client side: `Ok(None)` when no daemon listens (use the store directly).
pub fn request(path: &Path, op: &StoreOp) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    request_words(path, &op.to_words())
}

/// Client side of any request, as its words.
pub fn request_words(
    path: &Path,
    words: &[String],
) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    let request = words.join("\0");
    if request.len() as u64 > MAX_REQUEST {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "request over the control socket's {} MiB",
                MAX_REQUEST >> 20
            ),
        ));
    }
    exchange(path, request.as_bytes())
}

/// One request and its answer over a daemon's local socket, in the shape
/// the control and postdrop sockets share: the request, a half-close,
/// then `0` + output or `1` + the reason. `Ok(None)` when no daemon
/// listens.
pub fn exchange(path: &Path, request: &[u8]) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    use std::io::{Read, Write};
    let mut conn = match std::os::unix::net::UnixStream::connect(path) {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    conn.write_all(request)?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)?;
    Ok(Some(match answer.split_first() {
        Some((b'0', out)) => Ok(out.to_vec()),
        Some((_, err)) => Err(String::from_utf8_lossy(err).into_owned()),
        None => Err("the daemon closed the control connection".into()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let ops = [
            StoreOp::AddUser {
                account: "a".into(),
                hash: Some("$argon2id$x".into()),
                quota: 5,
            },
            StoreOp::AddUser {
                account: "a".into(),
                hash: None,
                quota: 0,
            },
            StoreOp::Cat {
                account: "a".into(),
                mailbox: "INBOX".into(),
                uid: 7,
            },
            StoreOp::ListUsers,
        ];
        for op in ops {
            assert_eq!(StoreOp::from_words(&op.to_words()), Some(op));
        }
        assert_eq!(StoreOp::from_words(&["cat".into()]), None);
        assert_eq!(StoreOp::from_words(&[]), None);
    }
}
