//! postdrop: the way in for local users who may not write `maildrop`
//! (Postfix's setgid postdrop(1)). `merpati sendmail` run by an ordinary
//! user (cron, PHP `mail()`) cannot write into the queue (it is the
//! daemon's, mode 0750), so it hands the message to this socket instead,
//! world-writable in `<data_dir>/public/` (data_dir itself is 0751:
//! traversable, not listable). The daemon learns the caller's uid from the
//! kernel (SO_PEERCRED), records it in the Received: line and the log, and
//! passes the message to cleanup; the client's answer says `queued as ID`
//! only once cleanup has made the queue file durable.
//!
//! Wire format: the client sends one queue file ([`QueueFile::encode`])
//! and half-closes; the answer is `0` + queue ID, or `1` + a reason.

use super::file::QueueFile;
use super::spool::Spool;
use crate::cleanup::{Cleanup, Client, Submission};
use crate::config::Config;
use crate::live::Live;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const SOCKET: &str = "postdrop.sock";
/// The request for the queue listing (`mailq` by any user, as Postfix's
/// showq serves `postqueue -p`); anything else is a message.
pub const SHOWQ: &[u8] = b"SHOWQ\n";
/// How long a client may take to send its message.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Envelope and framing besides the message itself.
const OVERHEAD: u64 = 1 << 20;
/// Submissions handled at once: each may buffer a whole message.
const PARALLEL: usize = 16;

/// `<data_dir>/public/postdrop.sock`.
pub fn socket_path(config: &Config) -> PathBuf {
    config.data_dir.join("public").join(SOCKET)
}

/// Binds the socket (daemon side) and serves it until `stop`.
pub fn serve(
    config: Arc<Live<Config>>,
    cleanup: Arc<Cleanup>,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<()> {
    let snapshot = config.get();
    let public = snapshot.data_dir.join("public");
    std::fs::create_dir_all(&public)?;
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o755))?;
    // Traversable for everyone (to reach public/), listable by nobody else.
    std::fs::set_permissions(&snapshot.data_dir, std::fs::Permissions::from_mode(0o751))?;
    let path = socket_path(&snapshot);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    let inner = tracker.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stop.cancelled() => return,
            };
            let Ok((conn, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            // Local users share a few slots; the rest wait in the
            // kernel's backlog instead of in our memory.
            let slot = tokio::select! {
                s = slots.clone().acquire_owned() => s,
                _ = stop.cancelled() => return,
            };
            let Ok(slot) = slot else {
                return;
            };
            let cleanup = cleanup.clone();
            let config = config.get();
            inner.spawn(async move {
                let _ = handle(conn, &config, &cleanup).await;
                drop(slot);
            });
        }
    });
    Ok(())
}

async fn handle(
    mut conn: tokio::net::UnixStream,
    config: &Config,
    cleanup: &Cleanup,
) -> std::io::Result<()> {
    let uid = conn.peer_cred().map(|c| c.uid()).ok();
    let limit = config.smtp.message_size_limit.0.saturating_add(OVERHEAD);
    let mut bytes = Vec::new();
    let mut limited = (&mut conn).take(limit + 1);
    let read = limited.read_to_end(&mut bytes);
    let answer = match tokio::time::timeout(TIMEOUT, read).await {
        Err(_) => Err("timeout reading the message".to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(_)) if bytes.len() as u64 > limit => Err(format!(
            "message is larger than message_size_limit ({})",
            config.smtp.message_size_limit.0
        )),
        Ok(Ok(_)) if bytes == SHOWQ => {
            let spool = Spool::open(&config.queue_dir());
            let text =
                tokio::task::spawn_blocking(move || spool.and_then(|s| super::mailq_text(&s)))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
            text.map(|t| t.into_bytes())
        }
        Ok(Ok(_)) => accept(&bytes, uid, config, cleanup)
            .await
            .map(String::into_bytes),
    };
    let reply = match answer {
        Ok(mut out) => {
            out.insert(0, b'0');
            out
        }
        Err(why) => {
            tracing::warn!(
                "postdrop: refused a request from uid={}: {why}",
                uid_text(uid)
            );
            format!("1{why}").into_bytes()
        }
    };
    conn.write_all(&reply).await
}

fn uid_text(uid: Option<u32>) -> String {
    uid.map_or_else(|| "unknown".into(), |u| u.to_string())
}

async fn accept(
    bytes: &[u8],
    uid: Option<u32>,
    config: &Config,
    cleanup: &Cleanup,
) -> Result<String, String> {
    let Some(uid) = uid else {
        return Err("cannot tell who is sending (no peer credentials)".into());
    };
    let file = QueueFile::decode(bytes, true).map_err(|e| format!("malformed request: {e}"))?;
    if !super::pickup::envelope_is_sane(&file) {
        return Err("bad sender or recipient address".into());
    }
    if !crate::diskspace::has_room(
        &config.queue_dir(),
        config.queue.minfree.0,
        file.body.len() as u64,
    ) {
        return Err("insufficient system storage, try again later".into());
    }
    let recipients = trusted_recipients(&file)?;
    if !file.envid.bytes().all(|b| (0x21..0x7f).contains(&b)) || file.envid.len() > 100 {
        return Err("bad DSN envelope ID".into());
    }
    let ret = match file.ret.as_str() {
        "" | "FULL" | "HDRS" => file.ret.clone(),
        _ => return Err("bad DSN RET".into()),
    };
    if file.recipients.len() > config.smtp.max_recipients {
        return Err(format!(
            "too many recipients (smtp.max_recipients = {})",
            config.smtp.max_recipients
        ));
    }
    if file.body.len() as u64 > config.smtp.message_size_limit.0 {
        return Err("message is larger than message_size_limit".into());
    }
    let submission = Submission {
        sender: file.sender.clone(),
        recipients,
        message: file.body,
        client: Client {
            uid: Some(uid),
            ..Client::default()
        },
        protocol: "local".into(),
        complete_headers: true,
        envid: file.envid,
        ret,
        content_checks: true,
        ..Default::default()
    };
    match cleanup.submit(submission).await {
        Ok(id) => {
            tracing::info!(queue_id = %id, "{id}: uid={uid} from=<{}>", file.sender);
            Ok(id.to_string())
        }
        Err(crate::cleanup::CleanupError::Refused { code, status, text }) => {
            Err(format!("message refused: {code} {status} {text}"))
        }
        Err(e) => Err(format!("cannot queue the message, try again later: {e}")),
    }
}

/// The recipients as a local user may give them: the address (already
/// checked), DSN NOTIFY from its four words, ORCPT printable and without
/// CR/LF; the rest (`original`, `last_reply`) is the queue's to fill, so a
/// user cannot put text into the headers local delivery writes
/// (`X-Original-To:`) or into a DSN.
fn trusted_recipients(file: &QueueFile) -> Result<Vec<super::file::QueuedRecipient>, String> {
    file.recipients
        .iter()
        .map(|r| {
            let notify_ok = r.notify.is_empty()
                || r.notify
                    .split(',')
                    .all(|w| ["NEVER", "SUCCESS", "FAILURE", "DELAY"].contains(&w));
            let orcpt_ok =
                r.orcpt.len() <= 500 && r.orcpt.bytes().all(|b| (0x20..0x7f).contains(&b));
            if !notify_ok || !orcpt_ok {
                return Err(format!("bad DSN parameters for <{}>", r.address));
            }
            Ok(super::file::QueuedRecipient {
                address: r.address.clone(),
                notify: r.notify.clone(),
                orcpt: r.orcpt.clone(),
                ..Default::default()
            })
        })
        .collect()
}

/// Client side (`merpati sendmail` without write access to maildrop):
/// `Ok(None)` when no daemon listens; else the queue ID or the reason.
pub fn submit(path: &Path, file: &QueueFile) -> std::io::Result<Option<Result<String, String>>> {
    let answer = crate::control::exchange(path, &file.encode())?;
    Ok(answer.map(|a| a.map(|id| String::from_utf8_lossy(&id).into_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::file::QueuedRecipient;

    #[test]
    fn a_local_user_cannot_smuggle_text_into_headers() {
        let file = QueueFile {
            recipients: vec![QueuedRecipient {
                address: "alice@localhost".into(),
                original: "x\r\nAuthentication-Results: forged".into(),
                last_reply: "\u{1b}[2J".into(),
                notify: "SUCCESS,FAILURE".into(),
                orcpt: "rfc822;alice@localhost".into(),
            }],
            ..QueueFile::default()
        };
        let clean = trusted_recipients(&file).unwrap();
        assert_eq!(clean[0].original, "");
        assert_eq!(clean[0].last_reply, "");
        assert_eq!(clean[0].notify, "SUCCESS,FAILURE");
        let mut bad = file.clone();
        bad.recipients[0].orcpt = "rfc822;a\r\nX: y".into();
        assert!(trusted_recipients(&bad).is_err());
        bad.recipients[0].orcpt = String::new();
        bad.recipients[0].notify = "SOMETIMES".into();
        assert!(trusted_recipients(&bad).is_err());
    }
}
