//! The queue journal: group commit for new queue files.
//!
//! Postfix fsyncs every queue file before answering 250. Here cleanup
//! writes the queue file without fsync and appends the same bytes to an
//! append-only journal segment; concurrent sessions share one `fdatasync`
//! of that segment (group commit), and only then may 250 be sent. A
//! checkpoint (every second, and at shutdown) starts a new segment, calls
//! `syncfs` so every queue file written so far is durable, and deletes the
//! old segments. After a crash, start-up replays the segments that were not
//! checkpointed: any message whose queue file is missing or damaged is
//! written again from its journal record. Most queue files are delivered
//! and unlinked before the kernel would write them back, so they never
//! cost a disk write at all.
//!
//! When a message is finished (delivered, bounced, deleted by an admin) a
//! small "done" record is appended before its file is unlinked, so replay
//! never brings back finished mail. The done record is not fsynced: after
//! a kill -9 it is in the page cache and so in the file; only after a power
//! cut can a finished message come back, and then its redelivery is a
//! no-op because the store refuses a second copy for the same queue ID and
//! recipient.

use super::id::QueueId;
use super::spool::{QueueName, Spool};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

const MAGIC: &[u8; 4] = b"MQJ1";
const DONE_MAGIC: &[u8; 4] = b"MQD1";
/// Largest record accepted when replaying (a queue file is bounded by the
/// message size limit; this only guards against garbage lengths).
const MAX_RECORD: u64 = 1 << 31;

pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
    synced: Condvar,
}

struct State {
    file: File,
    segment: u64,
    bytes: u64,
    /// Records appended so far (tickets).
    appended: u64,
    /// Every record up to this ticket is durable.
    durable: u64,
    /// Every record up to this ticket may be lost: an fsync failed, and on
    /// Linux a retried fsync would falsely succeed. Tickets never restart,
    /// so this stays meaningful across segments.
    failed: u64,
    /// The current segment saw a failed fsync: no more appends to it
    /// until a checkpoint starts a new one.
    broken: bool,
    syncing: bool,
}

impl Journal {
    /// Opens the journal directory, starting a fresh segment after any
    /// existing ones (which `replay` must have handled first).
    pub fn open(dir: &Path) -> io::Result<Journal> {
        fs::create_dir_all(dir)?;
        let next = segments(dir)?.last().map_or(1, |(n, _)| n + 1);
        let file = create_segment(dir, next)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                file,
                segment: next,
                bytes: 0,
                appended: 0,
                durable: 0,
                failed: 0,
                broken: false,
                syncing: false,
            }),
            synced: Condvar::new(),
        })
    }

    /// Appends one queue file's bytes and blocks until they are durable.
    /// Callers arriving while a sync runs are covered by the next one.
    pub fn append(&self, id: &QueueId, bytes: &[u8]) -> io::Result<()> {
        let record = encode(id, bytes);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.broken {
            return Err(io::Error::other(
                "queue journal failed; waiting for the next segment",
            ));
        }
        write_record(&mut state, &record)?;
        state.appended += 1;
        let ticket = state.appended;
        loop {
            if ticket <= state.failed {
                return Err(io::Error::other("queue journal fsync failed"));
            }
            if state.durable >= ticket {
                return Ok(());
            }
            if !state.syncing {
                state.syncing = true;
                let covers = state.appended;
                let file = state.file.try_clone()?;
                drop(state);
                let result = file.sync_data();
                state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                state.syncing = false;
                self.synced.notify_all();
                match result {
                    Ok(()) => state.durable = state.durable.max(covers),
                    Err(e) => {
                        tracing::error!("queue journal fsync failed: {e}");
                        state.failed = state.failed.max(covers);
                        state.broken = true;
                    }
                }
                continue;
            }
            state = self.synced.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Records that a message is finished; call before unlinking its file.
    pub fn finished(&self, id: &QueueId) -> io::Result<()> {
        let record = encode_done(id);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        write_record(&mut state, &record)
    }

    /// `finished` for another process (the admin CLI): appends to the
    /// newest segment, if any. O_APPEND keeps the small record whole.
    pub fn mark_finished_offline(dir: &Path, id: &QueueId) -> io::Result<()> {
        let Some((_, newest)) = segments(dir).ok().and_then(|s| s.last().cloned()) else {
            return Ok(());
        };
        match OpenOptions::new().append(true).open(newest) {
            Ok(mut file) => file.write_all(&encode_done(id)),
            // Retired by a checkpoint meanwhile: nothing left to replay.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes every queue file written so far durable (syncfs) and drops
    /// the journal segments that covered them.
    pub fn checkpoint(&self, spool: &Spool) -> io::Result<()> {
        let old = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.bytes == 0 && !state.broken {
                return Ok(());
            }
            while state.syncing {
                state = self.synced.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            // Records in the old segment that were not yet synced are made
            // durable here, so their writers can be released. After a failed
            // fsync the segment is abandoned instead (its waiters were told).
            if !state.broken {
                state.file.sync_data()?;
                state.durable = state.appended;
            }
            self.synced.notify_all();
            let next = state.segment + 1;
            state.file = create_segment(&self.dir, next)?;
            state.bytes = 0;
            state.segment = next;
            state.broken = false;
            next
        };
        syncfs(spool.root())?;
        for (n, path) in segments(&self.dir)? {
            if n < old {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// Start-up: rewrites from the journal every message whose queue file
    /// did not survive, then deletes the replayed segments. Returns how
    /// many messages were restored.
    pub fn replay(dir: &Path, spool: &Spool) -> io::Result<usize> {
        fs::create_dir_all(dir)?;
        let mut restored = 0;
        let list = segments(dir)?;
        let mut data = Vec::new();
        for (_, path) in &list {
            data.push(fs::read(path)?);
        }
        let records: Vec<Record> = data.iter().flat_map(|d| decode_all(d)).collect();
        let done: std::collections::HashSet<&QueueId> = records
            .iter()
            .filter_map(|r| match r {
                Record::Done(id) => Some(id),
                Record::Queued(..) => None,
            })
            .collect();
        for record in &records {
            let Record::Queued(id, bytes) = record else {
                continue;
            };
            if !done.contains(id) && needs_restore(spool, id) {
                tracing::warn!(queue_id = %id, "{id}: restored from the queue journal after a crash");
                if let Some(queue) = spool.locate(id) {
                    let _ = fs::remove_file(spool.path(queue, id));
                }
                spool.write_new(QueueName::Incoming, id, bytes)?;
                restored += 1;
            }
        }
        syncfs(spool.root())?;
        for (_, path) in list {
            fs::remove_file(path)?;
        }
        Ok(restored)
    }
}

/// A message not marked done needs restoring if no queue holds it, or if
/// its copy is unreadable: the first copy is written without fsync and may
/// have been moved (to hold, say) before a power cut emptied it.
fn needs_restore(spool: &Spool, id: &QueueId) -> bool {
    match spool.locate(id) {
        None => true,
        Some(QueueName::Corrupt) => false,
        Some(queue) => !matches!(spool.read(queue, id), Ok(Ok(_))),
    }
}

/// Appends a whole record or nothing: a partial write (disk full) is cut
/// off again so that later records stay readable.
fn write_record(state: &mut State, record: &[u8]) -> io::Result<()> {
    if let Err(e) = state.file.write_all(record) {
        let _ = state.file.set_len(state.bytes);
        return Err(e);
    }
    state.bytes += record.len() as u64;
    Ok(())
}

fn create_segment(dir: &Path, n: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{n:016}.journal")))?;
    // The new name must survive a crash for its records to be found.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".journal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((n, entry.path()));
    }
    out.sort();
    Ok(out)
}

fn syncfs(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    // SAFETY: syncfs(2) takes a valid open descriptor, which `dir` holds
    // for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `MQJ1`, id length (1 byte), id, body length (8 bytes LE), body,
/// FNV-1a 64 of everything before it (8 bytes LE).
fn encode(id: &QueueId, bytes: &[u8]) -> Vec<u8> {
    let id = id.as_str().as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + id.len() + 21);
    out.extend_from_slice(MAGIC);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// `MQD1`, id length (1 byte), id, FNV-1a 64 (8 bytes LE).
fn encode_done(id: &QueueId) -> Vec<u8> {
    let id = id.as_str().as_bytes();
    let mut out = Vec::with_capacity(id.len() + 13);
    out.extend_from_slice(DONE_MAGIC);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Record<'a> {
    Queued(QueueId, &'a [u8]),
    Done(QueueId),
}

/// Valid records in order; stops at the first damaged one (a torn tail
/// left by a crash was never acknowledged).
fn decode_all(data: &[u8]) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = data.get(pos..).unwrap_or(&[]);
        let decoded = match rest.get(..4) {
            Some(m) if m == DONE_MAGIC => {
                decode_done(rest).map(|(id, len)| (Record::Done(id), len))
            }
            _ => decode_one(rest).map(|(id, body, len)| (Record::Queued(id, body), len)),
        };
        let Some((record, len)) = decoded else {
            return out;
        };
        out.push(record);
        pos += len;
    }
}

fn decode_done(data: &[u8]) -> Option<(QueueId, usize)> {
    let id_len = usize::from(*data.get(4)?);
    let end = 5 + id_len;
    let id = QueueId::parse(std::str::from_utf8(data.get(5..end)?).ok()?)?;
    let sum = u64::from_le_bytes(data.get(end..end + 8)?.try_into().ok()?);
    (fnv1a(data.get(..end)?) == sum).then_some((id, end + 8))
}

fn decode_one(data: &[u8]) -> Option<(QueueId, &[u8], usize)> {
    if data.get(..4)? != MAGIC {
        return None;
    }
    let id_len = usize::from(*data.get(4)?);
    let id = std::str::from_utf8(data.get(5..5 + id_len)?).ok()?;
    let id = QueueId::parse(id)?;
    let len_at = 5 + id_len;
    let len = u64::from_le_bytes(data.get(len_at..len_at + 8)?.try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let body_at = len_at + 8;
    let end = body_at.checked_add(usize::try_from(len).ok()?)?;
    let body = data.get(body_at..end)?;
    let sum = u64::from_le_bytes(data.get(end..end + 8)?.try_into().ok()?);
    if fnv1a(data.get(..end)?) != sum {
        return None;
    }
    Some((id, body, end + 8))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_tails_stop() {
        let a = QueueId::generate();
        let b = QueueId::generate();
        let mut data = encode(&a, b"first");
        data.extend(encode(&b, b"second"));
        data.extend(encode_done(&a));
        let all = decode_all(&data);
        assert_eq!(
            all,
            vec![
                Record::Queued(a.clone(), &b"first"[..]),
                Record::Queued(b, &b"second"[..]),
                Record::Done(a)
            ]
        );
        for cut in 0..data.len() {
            assert!(decode_all(&data[..cut]).len() <= 3);
        }
        let mut flipped = data.clone();
        flipped[10] ^= 1;
        assert!(decode_all(&flipped).is_empty());
    }

    #[test]
    fn replay_restores_lost_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let jdir = tmp.path().join("journal");
        let journal = Journal::open(&jdir).unwrap();
        let file = crate::queue::file::QueueFile {
            recipients: vec![crate::queue::file::QueuedRecipient {
                address: "a@b".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let lost = QueueId::generate();
        let kept = QueueId::generate();
        let finished = QueueId::generate();
        journal.append(&lost, &file.encode()).unwrap();
        journal.append(&kept, &file.encode()).unwrap();
        journal.append(&finished, &file.encode()).unwrap();
        journal.finished(&finished).unwrap();
        spool
            .write_new(QueueName::Deferred, &kept, &file.encode())
            .unwrap();
        drop(journal);
        assert_eq!(Journal::replay(&jdir, &spool).unwrap(), 1);
        assert_eq!(spool.locate(&lost), Some(QueueName::Incoming));
        assert_eq!(spool.locate(&kept), Some(QueueName::Deferred));
        assert_eq!(spool.locate(&finished), None);
        assert!(segments(&jdir).unwrap().is_empty());
    }

    #[test]
    fn checkpoint_drops_old_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let jdir = tmp.path().join("journal");
        let journal = Journal::open(&jdir).unwrap();
        journal.append(&QueueId::generate(), b"x").unwrap();
        journal.checkpoint(&spool).unwrap();
        assert_eq!(segments(&jdir).unwrap().len(), 1);
        journal.append(&QueueId::generate(), b"y").unwrap();
        journal.checkpoint(&spool).unwrap();
        assert_eq!(segments(&jdir).unwrap().len(), 1);
    }
}
