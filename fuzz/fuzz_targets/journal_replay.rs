//! Queue journal replay (`merpati::queue::journal::Journal::replay`).
//!
//! The journal's record decoder (`decode_all`/`decode_one`/`decode_done`)
//! is private, so this target goes through the public start-up path:
//! write the input as a journal segment in a scratch spool on tmpfs
//! (`/dev/shm` when present), replay it, and remove the spool again.
//! Slower than the pure parsers (a few syscalls per run) but real.
//!
//! Input: `[mode] ...`. Mode bit 0 clear: the rest is the raw segment.
//! Set: the rest describes records the harness encodes with valid FNV-1a
//! checksums (so the fuzzer gets past them), each `[kind] [id] [len]
//! body` (kind bit 0: a done record; id: one of four queue IDs), and the
//! input left over when a record runs short is appended raw as a torn tail.
//!
//! Checked: replay succeeds on any segment; every queued record that is
//! valid, before the first damaged one, and not marked done is restored
//! with the body of one of its records; nothing else is restored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::queue::id::QueueId;
use merpati::queue::journal::Journal;
use merpati::queue::spool::{QueueName, Spool};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

const IDS: [&str; 4] = [
    "6A1B2C3D00001001",
    "6A1B2C3D00002002",
    "0123456789ABCDEF0123456789ABCDEF",
    "DEADBEEF",
];

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn record(done: bool, id: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(if done { b"MQD1" } else { b"MQJ1" });
    out.push(id.len() as u8);
    out.extend_from_slice(id.as_bytes());
    if !done {
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(body);
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reference decoder from the format comment in journal.rs:
/// `MQJ1 idlen id len(8 LE) body fnv(8 LE)` / `MQD1 idlen id fnv(8 LE)`,
/// stopping at the first record that does not check out.
fn model(data: &[u8]) -> (BTreeMap<String, Vec<Vec<u8>>>, BTreeSet<String>) {
    let mut queued: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut done = BTreeSet::new();
    let mut rest = data;
    while let Some(magic) = rest.get(..4) {
        let is_done = magic == b"MQD1";
        if !is_done && magic != b"MQJ1" {
            break;
        }
        let Some(&id_len) = rest.get(4) else { break };
        let id_end = 5 + usize::from(id_len);
        let Some(id) = rest
            .get(5..id_end)
            .and_then(|b| std::str::from_utf8(b).ok())
        else {
            break;
        };
        if QueueId::parse(id).is_none() {
            break;
        }
        let (body, end) = if is_done {
            (&[][..], id_end)
        } else {
            let Some(len) = rest.get(id_end..id_end + 8) else {
                break;
            };
            let len = u64::from_le_bytes(len.try_into().unwrap());
            if len > 1 << 31 {
                break;
            }
            let body_end = id_end + 8 + len as usize;
            let Some(body) = rest.get(id_end + 8..body_end) else {
                break;
            };
            (body, body_end)
        };
        let Some(sum) = rest.get(end..end + 8) else {
            break;
        };
        if fnv1a(&rest[..end]) != u64::from_le_bytes(sum.try_into().unwrap()) {
            break;
        }
        if is_done {
            done.insert(id.to_string());
        } else {
            queued
                .entry(id.to_string())
                .or_default()
                .push(body.to_vec());
        }
        rest = &rest[end + 8..];
    }
    (queued, done)
}

fn scratch_root() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "merpati-fuzz-journal-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let segment = if mode & 1 == 0 {
        input.to_vec()
    } else {
        let mut out = Vec::new();
        let mut rest = input;
        while let [kind, id, len, tail @ ..] = rest {
            let len = usize::from(*len);
            if tail.len() < len {
                break;
            }
            let id = IDS[usize::from(*id) % IDS.len()];
            out.extend_from_slice(&record(kind & 1 == 1, id, &tail[..len]));
            rest = &tail[len..];
        }
        out.extend_from_slice(rest); // torn tail
        out
    };

    let root = scratch_root();
    let spool = Spool::open(&root).expect("scratch spool");
    let dir = spool.journal_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{:016}.journal", 1)), &segment).unwrap();

    let restored = Journal::replay(&dir, &spool).expect("replay of any segment must succeed");

    let (queued, done) = model(&segment);
    let expected: Vec<&String> = queued.keys().filter(|id| !done.contains(*id)).collect();
    let total: usize = queued
        .iter()
        .filter(|(id, _)| !done.contains(*id))
        .map(|(_, bodies)| bodies.len())
        .sum();
    assert!(
        restored >= expected.len() && restored <= total,
        "restored {restored}, expected {} ids / {total} records",
        expected.len()
    );
    for id in &expected {
        let qid = QueueId::parse(id).unwrap();
        let body = std::fs::read(spool.path(QueueName::Incoming, &qid)).expect("restored file");
        assert!(
            queued[*id].contains(&body),
            "{id}: restored body from no record"
        );
    }
    for id in IDS.iter().filter(|id| !expected.contains(&&id.to_string())) {
        let qid = QueueId::parse(id).unwrap();
        assert!(
            spool.locate(&qid).is_none(),
            "{id} restored but not expected"
        );
    }
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "replayed segment left behind"
    );
    drop(spool);
    std::fs::remove_dir_all(&root).unwrap();
});
