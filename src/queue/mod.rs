//! The queue: IDs, the file format, the spool directories, the queue
//! manager and pickup, plus the admin operations behind `merpati queue`
//! (Postfix's postqueue/postsuper). The admin operations work on the files
//! directly, so they work whether the daemon runs or not.

pub mod active;
pub mod file;
pub mod id;
pub mod journal;
pub mod pickup;
pub mod postdrop;
pub mod qmgr;
pub mod spool;

use file::QueueFile;
use id::QueueId;
use spool::{QueueName, Spool};
use std::io;
use std::time::SystemTime;

/// One line of `merpati queue list`.
#[derive(Debug)]
pub struct Listing {
    pub id: QueueId,
    pub queue: QueueName,
    pub size: u64,
    pub arrival: i64,
    pub sender: String,
    pub recipients: Vec<(String, String)>,
    /// Why it is on hold (a HOLD action), if it is.
    pub held: String,
}

/// Everything in incoming, active, deferred and hold, listed in the
/// order files move (incoming -> active -> deferred) so that a file moving
/// during the listing is still seen.
pub fn list(spool: &Spool) -> io::Result<Vec<Listing>> {
    let mut out = Vec::new();
    for queue in [
        QueueName::Incoming,
        QueueName::Active,
        QueueName::Deferred,
        QueueName::Hold,
    ] {
        for entry in spool.list(queue)? {
            let Ok(Ok(qf)) = spool.read(queue, &entry.id) else {
                continue; // moved or removed meanwhile, or corrupt (qmgr will quarantine)
            };
            out.push(Listing {
                id: entry.id,
                queue,
                size: qf.size() as u64,
                arrival: qf.arrival,
                sender: qf.sender,
                recipients: qf
                    .recipients
                    .into_iter()
                    .map(|r| (r.address, r.last_reply))
                    .collect(),
                held: if queue == QueueName::Hold {
                    qf.held
                } else {
                    String::new()
                },
            });
        }
    }
    Ok(out)
}

/// The queue as `mailq` shows it, in Postfix's layout. Text that came
/// from outside (remote replies) is shown without control characters.
pub fn mailq_text(spool: &Spool) -> io::Result<String> {
    use std::fmt::Write as _;
    let listing = list(spool)?;
    if listing.is_empty() {
        return Ok("Mail queue is empty\n".into());
    }
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let mut out =
        String::from("-Queue ID-------- --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut total = 0;
    for item in &listing {
        total += item.size;
        let mark = match item.queue {
            QueueName::Active => "*",
            QueueName::Hold => "!",
            _ => " ",
        };
        let sender = if item.sender.is_empty() {
            "MAILER-DAEMON".to_string()
        } else {
            clean(&item.sender)
        };
        let _ = writeln!(
            out,
            "{}{mark} {:>8} {} {sender}",
            item.id,
            item.size,
            crate::rfc5322::format_date(item.arrival)
        );
        if !item.held.is_empty() {
            let _ = writeln!(out, "{:>48}(held: {})", "", clean(&item.held));
        }
        for (rcpt, reason) in &item.recipients {
            if !reason.is_empty() {
                let _ = writeln!(out, "{:>48}({})", "", clean(reason));
            }
            let _ = writeln!(out, "{:>48}{}", "", clean(rcpt));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "-- {} Kbytes in {} Requests.",
        total.div_ceil(1024),
        listing.len()
    );
    Ok(out)
}

/// What an admin operation may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminOp {
    Hold,
    Release,
    Delete,
    Requeue,
}

impl AdminOp {
    /// Queues a message may be taken from. A file in `active` is taken
    /// only when the [`ActiveGuard`] grants it (not while it is delivered).
    fn sources(self) -> &'static [QueueName] {
        match self {
            AdminOp::Hold => &[QueueName::Incoming, QueueName::Active, QueueName::Deferred],
            AdminOp::Release => &[QueueName::Hold],
            AdminOp::Delete => &[
                QueueName::Incoming,
                QueueName::Active,
                QueueName::Deferred,
                QueueName::Hold,
                QueueName::Corrupt,
            ],
            AdminOp::Requeue => &[
                QueueName::Deferred,
                QueueName::Hold,
                QueueName::Incoming,
                QueueName::Active,
            ],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AdminOp::Hold => "hold",
            AdminOp::Release => "release",
            AdminOp::Delete => "delete",
            AdminOp::Requeue => "requeue",
        }
    }

    pub fn from_name(name: &str) -> Option<AdminOp> {
        [
            AdminOp::Hold,
            AdminOp::Release,
            AdminOp::Delete,
            AdminOp::Requeue,
        ]
        .into_iter()
        .find(|op| op.name() == name)
    }
}

/// Who may take a file out of `active`.
pub enum ActiveGuard<'a> {
    /// No daemon runs: every file in `active` is left over, take it.
    Offline,
    /// Inside the daemon: ask the queue manager's [`active::ActiveSet`].
    Daemon(&'a active::ActiveSet),
}

/// Where an admin operation finds a message it may work on.
enum Taken {
    /// In the queue it was listed in.
    Here,
    /// Its unsettled file in `active` was settled first: now in deferred.
    Deferred,
    /// Gone meanwhile (its removal was all that was pending).
    Gone,
}

impl ActiveGuard<'_> {
    /// May the admin take `id` from `queue`? Inside the daemon a file the
    /// queue manager owns is left alone wherever it is (it may be between
    /// two queues); an unsettled file in `active` is settled first, so the
    /// operation works on its deferred copy (the recipients still waiting)
    /// and never redelivers the ones already done.
    fn take(&self, spool: &Spool, queue: QueueName, id: &QueueId) -> io::Result<Option<Taken>> {
        let ActiveGuard::Daemon(set) = self else {
            return Ok(Some(Taken::Here));
        };
        if queue != QueueName::Active {
            return Ok((!set.is_owned(id)).then_some(Taken::Here));
        }
        match set.take_for_admin(id) {
            active::AdminTake::Free => Ok(Some(Taken::Here)),
            active::AdminTake::Busy => Ok(None),
            active::AdminTake::Unsettled(job) => {
                // Due now: the admin acts on it at once.
                match qmgr::settle_file(spool, id, job.copy.as_ref(), std::time::Duration::ZERO) {
                    Ok(()) if job.copy.is_some() => Ok(Some(Taken::Deferred)),
                    Ok(()) => Ok(Some(Taken::Gone)),
                    Err(e) => {
                        set.unsettle(id, job.copy, job.backoff);
                        Err(e)
                    }
                }
            }
        }
    }

    fn done(&self, id: &QueueId) {
        if let ActiveGuard::Daemon(set) = self {
            set.admin_done(id);
        }
    }
}

/// Applies `op` to one message (or every message with `None`); returns the
/// IDs affected.
pub fn admin(
    spool: &Spool,
    op: AdminOp,
    only: Option<&QueueId>,
    guard: &ActiveGuard<'_>,
) -> io::Result<Vec<QueueId>> {
    // Snapshot every source first: an operation that writes into one of
    // its own sources (requeue into incoming) must not see its own output.
    let mut entries = Vec::new();
    for &queue in op.sources() {
        entries.extend(spool.list(queue)?);
    }
    let mut done = Vec::new();
    {
        for entry in entries {
            if only.is_some_and(|id| *id != entry.id) {
                continue;
            }
            let taken = guard.take(spool, entry.queue, &entry.id);
            let queue = match taken {
                Ok(Some(Taken::Here)) => entry.queue,
                Ok(Some(Taken::Deferred)) => QueueName::Deferred,
                Ok(Some(Taken::Gone)) => {
                    guard.done(&entry.id);
                    continue; // delivered meanwhile
                }
                // Someone else's (a delivery, or another admin command).
                Ok(None) => continue,
                Err(e) => {
                    guard.done(&entry.id);
                    return Err(e);
                }
            };
            let result = match op {
                AdminOp::Hold => spool.move_to(&entry.id, queue, QueueName::Hold, true),
                // Due now *before* the move: once in deferred the queue
                // manager may take the file at any moment, and a rename
                // keeps the mtime that says when it is due.
                AdminOp::Release => spool
                    .set_due(queue, &entry.id, SystemTime::now())
                    .and_then(|()| spool.move_to(&entry.id, queue, QueueName::Deferred, true)),
                AdminOp::Delete => spool.remove(queue, &entry.id).and_then(|()| {
                    journal::Journal::mark_finished_offline(&spool.journal_dir(), &entry.id)
                }),
                AdminOp::Requeue => requeue(spool, queue, &entry.id),
            };
            if entry.queue == QueueName::Active {
                guard.done(&entry.id);
            }
            match result {
                Ok(()) => done.push(entry.id),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}

/// Back to `incoming` with a fresh attempt count, as `postsuper -r`.
fn requeue(spool: &Spool, queue: QueueName, id: &QueueId) -> io::Result<()> {
    // Park the file in hold first, where the queue manager never looks:
    // reading it in place would race with qmgr taking it to active and
    // could leave the message queued twice. A crash after this step leaves
    // it held, never lost.
    if queue != QueueName::Hold {
        spool.move_to(id, queue, QueueName::Hold, false)?;
    }
    let qf = match spool.read(QueueName::Hold, id)? {
        Ok(qf) => qf,
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
    };
    let fresh = QueueFile {
        attempts: 0,
        recipients: qf
            .recipients
            .iter()
            .map(|r| file::QueuedRecipient {
                last_reply: String::new(),
                ..r.clone()
            })
            .collect(),
        ..qf
    };
    if let Err(e) = spool.write_new(QueueName::Incoming, id, &fresh.encode()) {
        // Back where it was (a full disk, say): a failed requeue must not
        // leave the message parked in hold.
        if queue != QueueName::Hold {
            let _ = spool.move_to(id, QueueName::Hold, queue, true);
        }
        return Err(e);
    }
    spool.remove(QueueName::Hold, id)
}

/// Makes all deferred mail due now (the daemon also needs a nudge).
pub fn flush(spool: &Spool) -> io::Result<usize> {
    let entries = spool.list(QueueName::Deferred)?;
    for entry in &entries {
        match spool.set_due(QueueName::Deferred, &entry.id, SystemTime::now()) {
            // Taken by the queue manager meanwhile: it is being retried.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(entries.len())
}

/// Writes a message into `maildrop` for pickup (`merpati sendmail`).
pub fn maildrop(spool: &Spool, file: &QueueFile) -> io::Result<QueueId> {
    let id = QueueId::generate();
    spool.write_new(QueueName::Maildrop, &id, &file.encode())?;
    Ok(id)
}
