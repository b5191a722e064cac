use super::*;
use std::sync::Arc;
use std::time::Instant;
use tempfile::TempDir;
use tokio::sync::broadcast::error::TryRecvError;

fn store() -> (TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    (dir, store)
}

fn with_accounts(names: &[&str]) -> (TempDir, RedbStore) {
    let (dir, store) = store();
    for name in names {
        store.create_account(name, None).unwrap();
    }
    (dir, store)
}

fn rcpt(account: &str) -> LocalRecipient {
    LocalRecipient {
        account: account.into(),
        mailbox: INBOX.into(),
        special_use: None,
        dedup_key: format!("{account}@example.org"),
        prefix: format!("Delivered-To: {account}@example.org\r\n").into_bytes(),
        flags: Vec::new(),
    }
}

fn delivery(queue_id: &str, body: &[u8], rcpts: Vec<LocalRecipient>) -> Delivery {
    Delivery {
        queue_id: queue_id.into(),
        body: Arc::new(body.to_vec()),
        internal_date: 1_700_000_000,
        recipients: rcpts,
    }
}

fn inbox(store: &RedbStore, account: &str) -> MailboxInfo {
    store.mailbox(account, "INBOX").unwrap().unwrap()
}

fn append(store: &RedbStore, account: &str, body: &[u8]) -> Uid {
    store.append(account, INBOX, body, &[], 0).unwrap().2
}

/// Stored bodies: blob files plus bodies kept inline in redb.
fn bodies(dir: &Path, store: &RedbStore) -> usize {
    let txn = store.db.begin_read().unwrap();
    let inline = txn
        .open_table(INLINE_BODIES)
        .unwrap()
        .iter()
        .unwrap()
        .count();
    inline + blob_files(dir)
}

fn blob_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .filter(|f| {
            !f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

fn strings(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|s| s.to_string()).collect()
}

#[test]
fn accounts_come_with_default_mailboxes_and_go_away_entirely() {
    let (dir, store) = with_accounts(&["Bob", "alice"]);
    assert!(matches!(
        store.create_account("BOB", None),
        Err(StoreError::AccountExists)
    ));
    let names: Vec<String> = store
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    let boxes = store.mailboxes("alice").unwrap();
    let listed: Vec<(&str, Option<SpecialUse>, bool)> = boxes
        .iter()
        .map(|m| (m.name.as_str(), m.special_use, m.subscribed))
        .collect();
    assert_eq!(
        listed,
        [
            ("INBOX", None, true),
            ("Archive", Some(SpecialUse::Archive), true),
            ("Drafts", Some(SpecialUse::Drafts), true),
            ("Junk", Some(SpecialUse::Junk), true),
            ("Sent", Some(SpecialUse::Sent), true),
            ("Trash", Some(SpecialUse::Trash), true),
        ]
    );
    let validities: std::collections::HashSet<u32> = boxes.iter().map(|m| m.uid_validity).collect();
    assert_eq!(validities.len(), boxes.len(), "UIDVALIDITYs are distinct");

    append(&store, "alice", b"hello");
    store.set_password("alice", "$argon2id$hash").unwrap();
    store.set_quota("ALICE", 1000).unwrap();
    let alice = store.account("Alice").unwrap().unwrap();
    assert_eq!(alice.password_hash.as_deref(), Some("$argon2id$hash"));
    assert_eq!((alice.quota_bytes, alice.used_bytes), (1000, 5));

    store.delete_account("alice").unwrap();
    assert!(store.account("alice").unwrap().is_none());
    assert!(matches!(
        store.mailboxes("alice"),
        Err(StoreError::NoSuchAccount)
    ));
    assert!(matches!(
        store.delete_account("alice"),
        Err(StoreError::NoSuchAccount)
    ));
    assert_eq!(bodies(dir.path(), &store), 0, "blobs released");
    assert_eq!(store.mailboxes("bob").unwrap().len(), 6);
}

#[test]
fn one_body_for_two_recipients() {
    let (dir, store) = with_accounts(&["alice", "bob"]);
    let body = b"Subject: hi\r\n\r\nbody\r\n";
    let out = store
        .deliver(&[delivery("Q1", body, vec![rcpt("alice"), rcpt("Bob")])])
        .unwrap();
    assert_eq!(bodies(dir.path(), &store), 1);
    let [
        RecipientOutcome::Delivered(a_box, a_uid),
        RecipientOutcome::Delivered(b_box, b_uid),
    ] = out[0][..]
    else {
        panic!("{out:?}")
    };
    assert_ne!(a_box, b_box);
    let a = store.message(a_box, a_uid).unwrap();
    let b = store.message(b_box, b_uid).unwrap();
    assert_eq!(
        a,
        [&b"Delivered-To: alice@example.org\r\n"[..], body].concat()
    );
    assert_eq!(
        b,
        [&b"Delivered-To: Bob@example.org\r\n"[..], body].concat()
    );
    let meta = &store.messages(a_box).unwrap()[0];
    assert_eq!(meta.size, a.len() as u64);
    assert!(meta.flags.is_empty());
    let info = inbox(&store, "alice");
    assert_eq!(
        (info.messages, info.unseen, info.size),
        (1, 1, a.len() as u64)
    );
    assert_eq!(
        store.account("alice").unwrap().unwrap().used_bytes,
        a.len() as u64
    );
}

#[test]
fn redelivery_of_a_batch_is_idempotent() {
    let (dir, store) = with_accounts(&["alice", "bob"]);
    let batch = [
        delivery("Q1", b"one", vec![rcpt("alice"), rcpt("bob")]),
        delivery("Q2", b"two", vec![rcpt("alice")]),
    ];
    store.deliver(&batch).unwrap();
    let again = store.deliver(&batch).unwrap();
    assert!(
        again
            .iter()
            .flatten()
            .all(|o| *o == RecipientOutcome::AlreadyDelivered)
    );
    assert_eq!(inbox(&store, "alice").messages, 2);
    assert_eq!(inbox(&store, "bob").messages, 1);
    assert_eq!(
        bodies(dir.path(), &store),
        2,
        "duplicate bodies were not kept"
    );

    // Once pruned, the guard no longer applies.
    assert_eq!(store.prune_delivered(i64::MAX).unwrap(), 3);
    assert_eq!(store.prune_delivered(i64::MAX).unwrap(), 0);
    let out = store.deliver(&batch[1..]).unwrap();
    assert!(matches!(out[0][0], RecipientOutcome::Delivered(..)));
}

#[test]
fn quota_is_enforced_per_recipient() {
    let (dir, store) = with_accounts(&["alice", "bob"]);
    store.set_quota("alice", 50).unwrap();
    let body = vec![b'x'; 40];
    let out = store
        .deliver(&[delivery("Q1", &body, vec![rcpt("alice"), rcpt("bob")])])
        .unwrap();
    assert_eq!(out[0][0], RecipientOutcome::OverQuota);
    assert!(matches!(out[0][1], RecipientOutcome::Delivered(..)));
    assert_eq!(inbox(&store, "alice").messages, 0);
    assert_eq!(bodies(dir.path(), &store), 1);

    assert!(matches!(
        store.append("alice", INBOX, &[b'y'; 51], &[], 0),
        Err(StoreError::OverQuota)
    ));
    append(&store, "alice", &[b'y'; 50]);
    assert_eq!(
        bodies(dir.path(), &store),
        2,
        "rejected append left no blob"
    );
    let out = store
        .deliver(&[delivery("Q2", b"z", vec![rcpt("alice")])])
        .unwrap();
    assert_eq!(out[0][0], RecipientOutcome::OverQuota);
    assert_eq!(
        bodies(dir.path(), &store),
        2,
        "undelivered body was deleted"
    );
}

#[test]
fn unknown_account_and_mailbox() {
    let (dir, store) = with_accounts(&["alice"]);
    let mut other_box = rcpt("alice");
    other_box.mailbox = "Nope".into();
    let out = store
        .deliver(&[delivery(
            "Q1",
            b"x",
            vec![rcpt("carol"), rcpt("bad name"), other_box],
        )])
        .unwrap();
    assert_eq!(
        out[0],
        [
            RecipientOutcome::NoSuchAccount,
            RecipientOutcome::NoSuchAccount,
            RecipientOutcome::NoSuchMailbox
        ]
    );
    assert_eq!(bodies(dir.path(), &store), 0);
    assert!(matches!(
        store.append("carol", INBOX, b"x", &[], 0),
        Err(StoreError::NoSuchAccount)
    ));
    assert!(matches!(
        store.append("alice", "Nope", b"x", &[], 0),
        Err(StoreError::NoSuchMailbox)
    ));
    assert!(store.deliver(&[]).unwrap().is_empty());
    assert_eq!(
        store.deliver(&[delivery("Q2", b"x", vec![])]).unwrap(),
        [vec![]]
    );
}

#[test]
fn uids_ascend_and_are_never_reused() {
    let (dir, store) = with_accounts(&["alice"]);
    let uids: Vec<Uid> = (0..5).map(|_| append(&store, "alice", b"m")).collect();
    assert_eq!(uids, [Uid(1), Uid(2), Uid(3), Uid(4), Uid(5)]);
    let id = inbox(&store, "alice").id;
    assert_eq!(
        store.expunge(id, &[Uid(5), Uid(4), Uid(9)]).unwrap(),
        [Uid(4), Uid(5)]
    );
    assert_eq!(append(&store, "alice", b"m"), Uid(6));
    drop(store);
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(append(&store, "alice", b"m"), Uid(7));
    let listed: Vec<Uid> = store
        .messages(id)
        .unwrap()
        .into_iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(listed, [Uid(1), Uid(2), Uid(3), Uid(6), Uid(7)]);
    let modseqs: Vec<u64> = store
        .messages(id)
        .unwrap()
        .into_iter()
        .map(|m| m.modseq)
        .collect();
    assert!(modseqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn expunges_are_remembered_by_modseq_for_qresync() {
    let (dir, store) = with_accounts(&["alice"]);
    for _ in 0..4 {
        append(&store, "alice", b"m");
    }
    let id = inbox(&store, "alice").id;
    let before = inbox(&store, "alice").highest_modseq;
    store.expunge(id, &[Uid(2)]).unwrap();
    let middle = inbox(&store, "alice").highest_modseq;
    store.expunge(id, &[Uid(4), Uid(1)]).unwrap();
    assert_eq!(
        store.vanished_since(id, before).unwrap(),
        [Uid(1), Uid(2), Uid(4)]
    );
    assert_eq!(store.vanished_since(id, middle).unwrap(), [Uid(1), Uid(4)]);
    drop(store);
    let store = RedbStore::open(dir.path()).unwrap();
    let now = inbox(&store, "alice").highest_modseq;
    assert!(store.vanished_since(id, now).unwrap().is_empty());
    assert_eq!(store.vanished_since(id, middle).unwrap(), [Uid(1), Uid(4)]);
    // A deleted mailbox takes its history with it.
    store.create_mailbox("alice", "Tmp", None).unwrap();
    let tmp = store.mailbox("alice", "Tmp").unwrap().unwrap().id;
    store.append("alice", "Tmp", b"x", &[], 0).unwrap();
    store.expunge(tmp, &[Uid(1)]).unwrap();
    assert_eq!(store.vanished_since(tmp, 0).unwrap(), [Uid(1)]);
    store.delete_mailbox("alice", "Tmp").unwrap();
    assert!(store.vanished_since(tmp, 0).unwrap().is_empty());
}

#[test]
fn recent_is_claimed_once_and_survives_a_restart() {
    let (dir, store) = with_accounts(&["alice"]);
    append(&store, "alice", b"1");
    append(&store, "alice", b"2");
    let id = inbox(&store, "alice").id;
    assert_eq!(store.recent_count(id).unwrap(), 2);
    // The first session claims UIDs 1 and 2; the next gets none.
    assert_eq!(store.claim_recent(id, Uid(3)).unwrap(), Uid(1));
    assert_eq!(store.claim_recent(id, Uid(3)).unwrap(), Uid(3));
    assert_eq!(store.recent_count(id).unwrap(), 0);
    // A look without claiming (EXAMINE) changes nothing.
    append(&store, "alice", b"3");
    assert_eq!(store.claim_recent(id, Uid(0)).unwrap(), Uid(3));
    assert_eq!(store.recent_count(id).unwrap(), 1);
    // The claim reached the mailbox record with the last delivery.
    drop(store);
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.recent_count(id).unwrap(), 1);
    assert_eq!(store.claim_recent(id, Uid(4)).unwrap(), Uid(3));
}

#[test]
fn append_batch_is_all_or_nothing() {
    let (dir, store) = with_accounts(&["alice"]);
    store.set_quota("alice", 100).unwrap();
    let big = vec![b'x'; 200 * 1024];
    let seen = strings(&["\\Seen"]);
    let batch = [
        NewMessage {
            body: b"small",
            flags: &seen,
            internal_date: 5,
        },
        NewMessage {
            body: &big,
            flags: &[],
            internal_date: 6,
        },
    ];
    assert!(matches!(
        store.append_batch("alice", INBOX, &batch),
        Err(StoreError::OverQuota)
    ));
    assert_eq!(inbox(&store, "alice").messages, 0);
    assert_eq!(blob_files(dir.path()), 0, "no blob file left behind");
    store.set_quota("alice", 0).unwrap();
    let (id, _, uids) = store.append_batch("alice", INBOX, &batch).unwrap();
    assert_eq!(uids, [Uid(1), Uid(2)]);
    assert_eq!(store.message(id, Uid(2)).unwrap(), big);
    let snap = store.snapshot(id).unwrap();
    assert_eq!(snap.uids, [Uid(1), Uid(2)]);
    assert_eq!(snap.first_unseen, Some(2));
    assert_eq!(snap.info.messages, 2);
}

#[test]
fn cached_snapshots_of_big_mailboxes_follow_every_change() {
    let (_dir, store) = with_accounts(&["alice"]);
    let batch: Vec<NewMessage<'_>> = (0..SNAPSHOT_CACHE_MIN_MESSAGES)
        .map(|_| NewMessage {
            body: b"m",
            flags: &[],
            internal_date: 0,
        })
        .collect();
    let (id, _, _) = store.append_batch("alice", INBOX, &batch).unwrap();
    let first = store.snapshot(id).unwrap();
    assert_eq!(first.uids.len(), batch.len());
    assert_eq!(first.first_unseen, Some(1));
    assert_eq!(
        store.snapshot(id).unwrap().uids,
        first.uids,
        "from the cache"
    );
    store
        .store_flags(
            id,
            &[Uid(1)],
            FlagOp::Add,
            &strings(&["\\Seen", "$Hot"]),
            None,
        )
        .unwrap();
    let flagged = store.snapshot(id).unwrap();
    assert_eq!(flagged.first_unseen, Some(2));
    assert_eq!(flagged.keywords, strings(&["$Hot"]));
    assert!(flagged.highest_modseq > first.highest_modseq);
    store.expunge(id, &[Uid(2)]).unwrap();
    let expunged = store.snapshot(id).unwrap();
    assert_eq!(expunged.uids.len(), batch.len() - 1);
    assert_eq!(expunged.first_unseen, Some(2));
    assert_eq!(expunged.uids.get(1), Some(&Uid(3)));
    append(&store, "alice", b"new");
    let appended = store.snapshot(id).unwrap();
    assert_eq!(appended.uids.last(), Some(&Uid(1001)));
    assert_eq!(appended.info.messages as usize, appended.uids.len());
}

#[test]
fn snapshot_finds_first_unseen_and_keywords() {
    let (_dir, store) = with_accounts(&["alice"]);
    for flags in [
        &["\\Seen", "$Work"][..],
        &["\\Seen"],
        &["$work", "Todo"],
        &[],
    ] {
        store
            .append("alice", INBOX, b"m", &strings(flags), 0)
            .unwrap();
    }
    let id = inbox(&store, "alice").id;
    store.expunge(id, &[Uid(2)]).unwrap();
    let snap = store.snapshot(id).unwrap();
    assert_eq!(snap.uids, [Uid(1), Uid(3), Uid(4)]);
    assert_eq!(snap.first_unseen, Some(2));
    assert_eq!(snap.keywords, strings(&["$Work", "Todo"]));
    assert_eq!(snap.highest_modseq, inbox(&store, "alice").highest_modseq);
}

#[test]
fn copy_shares_the_blob_and_expunge_frees_it_with_the_last_reference() {
    let (dir, store) = with_accounts(&["alice"]);
    store
        .append("alice", INBOX, b"body", &strings(&["\\Seen", "$Work"]), 42)
        .unwrap();
    let src = inbox(&store, "alice").id;
    let dst = store.mailbox("alice", "Archive").unwrap().unwrap().id;
    assert_eq!(
        store.copy(src, &[Uid(1), Uid(7)], dst).unwrap(),
        [(Uid(1), Uid(1))]
    );
    assert_eq!(bodies(dir.path(), &store), 1);
    let copied = &store.messages(dst).unwrap()[0];
    assert_eq!(copied.flags, strings(&["\\Seen", "$Work"]));
    assert_eq!(copied.internal_date, 42);
    assert_eq!(store.message(dst, Uid(1)).unwrap(), b"body");
    assert_eq!(store.account("alice").unwrap().unwrap().used_bytes, 8);

    store.expunge(src, &[Uid(1)]).unwrap();
    assert_eq!(
        bodies(dir.path(), &store),
        1,
        "still referenced by the copy"
    );
    assert!(matches!(
        store.message(src, Uid(1)),
        Err(StoreError::NoSuchMessage)
    ));
    assert_eq!(store.message(dst, Uid(1)).unwrap(), b"body");
    store.expunge(dst, &[Uid(1)]).unwrap();
    assert_eq!(bodies(dir.path(), &store), 0);
    assert_eq!(store.account("alice").unwrap().unwrap().used_bytes, 0);
    let info = store.mailbox("alice", "Archive").unwrap().unwrap();
    assert_eq!((info.messages, info.unseen, info.size), (0, 0, 0));

    store.set_quota("alice", 5).unwrap();
    append(&store, "alice", b"four");
    assert!(matches!(
        store.copy(src, &[Uid(2)], dst),
        Err(StoreError::OverQuota)
    ));
}

#[test]
fn store_flags_honours_unchanged_since() {
    let (_dir, store) = with_accounts(&["alice"]);
    for _ in 0..3 {
        append(&store, "alice", b"m");
    }
    let id = inbox(&store, "alice").id;
    let start = inbox(&store, "alice").highest_modseq;
    let seen = strings(&["\\seen"]);
    let changed = store
        .store_flags(id, &[Uid(1)], FlagOp::Add, &seen, None)
        .unwrap();
    assert_eq!(changed, [(Uid(1), strings(&["\\Seen"]), start + 1)]);
    assert_eq!(inbox(&store, "alice").unseen, 2);

    // UID 1 changed after `start`: it fails UNCHANGEDSINCE and is skipped.
    let flagged = strings(&["\\Flagged"]);
    let changed = store
        .store_flags(
            id,
            &[Uid(1), Uid(2), Uid(3)],
            FlagOp::Add,
            &flagged,
            Some(start),
        )
        .unwrap();
    let uids: Vec<Uid> = changed.iter().map(|c| c.0).collect();
    assert_eq!(uids, [Uid(2), Uid(3)]);
    assert!(changed.iter().all(|c| c.2 == start + 2));
    assert_eq!(inbox(&store, "alice").highest_modseq, start + 2);

    // No-op changes do not bump the modseq.
    assert!(
        store
            .store_flags(id, &[Uid(2)], FlagOp::Add, &flagged, None)
            .unwrap()
            .is_empty()
    );
    let replaced = store
        .store_flags(id, &[Uid(1)], FlagOp::Replace, &strings(&["$A"]), None)
        .unwrap();
    assert_eq!(replaced[0].1, strings(&["$A"]));
    assert_eq!(inbox(&store, "alice").unseen, 3);
    store
        .store_flags(id, &[Uid(1)], FlagOp::Remove, &strings(&["$a"]), None)
        .unwrap();
    assert!(store.messages(id).unwrap()[0].flags.is_empty());
}

#[test]
fn renaming_inbox_moves_its_messages() {
    let (_dir, store) = with_accounts(&["alice"]);
    append(&store, "alice", b"one");
    append(&store, "alice", b"two");
    let before = inbox(&store, "alice");
    let mut events = store.subscribe(before.id);
    store.rename_mailbox("alice", "inbox", "Old").unwrap();

    let after = inbox(&store, "alice");
    assert_eq!(
        (after.id, after.uid_validity),
        (before.id, before.uid_validity)
    );
    assert_eq!((after.messages, after.size), (0, 0));
    assert_eq!(after.uid_next, 3, "INBOX UIDs are not reused");
    assert!(store.messages(after.id).unwrap().is_empty());
    assert!(matches!(
        events.try_recv().unwrap(),
        MailboxEvent::Expunged { uid: Uid(1), .. }
    ));

    let old = store.mailbox("alice", "Old").unwrap().unwrap();
    assert_ne!(old.uid_validity, before.uid_validity);
    assert_eq!((old.messages, old.unseen, old.uid_next), (2, 2, 3));
    assert_eq!(store.message(old.id, Uid(2)).unwrap(), b"two");
    assert_eq!(append(&store, "alice", b"three"), Uid(3));
    assert!(matches!(
        store.rename_mailbox("alice", "INBOX", "Old"),
        Err(StoreError::MailboxExists)
    ));
}

#[test]
fn renaming_a_folder_renames_its_children() {
    let (_dir, store) = with_accounts(&["alice"]);
    let parent = store.create_mailbox("alice", "Work", None).unwrap();
    let child = store.create_mailbox("alice", "Work/2024", None).unwrap();
    assert!(!parent.subscribed);
    store.rename_mailbox("alice", "Work", "Jobs").unwrap();
    assert!(store.mailbox("alice", "Work").unwrap().is_none());
    let moved = store.mailbox("alice", "Jobs/2024").unwrap().unwrap();
    assert_eq!(moved.id, child.id);
    assert!(moved.uid_validity > child.uid_validity);
    assert!(matches!(
        store.rename_mailbox("alice", "Jobs", "Jobs/x"),
        Err(StoreError::InvalidName)
    ));
    assert!(matches!(
        store.rename_mailbox("alice", "Jobs", "Sent"),
        Err(StoreError::MailboxExists)
    ));
    assert!(matches!(
        store.rename_mailbox("alice", "Nope", "X"),
        Err(StoreError::NoSuchMailbox)
    ));
}

#[test]
fn mailbox_management() {
    let (dir, store) = with_accounts(&["alice"]);
    assert_eq!(inbox(&store, "alice").name, "INBOX");
    assert!(store.mailbox("alice", "inBOX").unwrap().is_some());
    assert!(
        store.mailbox("alice", "sent").unwrap().is_none(),
        "case-sensitive"
    );
    assert!(matches!(
        store.create_mailbox("alice", "inbox", None),
        Err(StoreError::MailboxExists)
    ));
    assert!(matches!(
        store.create_mailbox("alice", "a//b", None),
        Err(StoreError::InvalidName)
    ));
    assert!(matches!(
        store.delete_mailbox("alice", "Inbox"),
        Err(StoreError::InvalidName)
    ));

    let trash = store.mailbox("alice", "Trash").unwrap().unwrap();
    store.append("alice", "Trash", b"bye", &[], 0).unwrap();
    store.set_subscribed("alice", "Trash", false).unwrap();
    assert!(!store.mailbox("alice", "Trash").unwrap().unwrap().subscribed);
    let mut events = store.subscribe(trash.id);
    store.delete_mailbox("alice", "Trash").unwrap();
    assert_eq!(events.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(bodies(dir.path(), &store), 0);
    assert!(matches!(
        store.messages(trash.id),
        Err(StoreError::NoSuchMailbox)
    ));
    let again = store
        .create_mailbox("alice", "Trash", Some(SpecialUse::Trash))
        .unwrap();
    assert_ne!(again.id, trash.id);
    assert!(again.uid_validity > trash.uid_validity);
}

#[test]
fn subscribers_hear_about_appends_flags_and_expunges() {
    let (_dir, store) = with_accounts(&["alice"]);
    let id = inbox(&store, "alice").id;
    let mut rx = store.subscribe(id);
    let out = store
        .deliver(&[delivery("Q1", b"x", vec![rcpt("alice")])])
        .unwrap();
    let RecipientOutcome::Delivered(_, uid) = out[0][0] else {
        panic!("{out:?}")
    };
    let MailboxEvent::Appended { uid: got, modseq } = rx.try_recv().unwrap() else {
        panic!("expected Appended")
    };
    assert_eq!(got, uid);
    assert_eq!(modseq, store.messages(id).unwrap()[0].modseq);
    store
        .store_flags(id, &[uid], FlagOp::Add, &strings(&["\\Deleted"]), None)
        .unwrap();
    assert!(matches!(
        rx.try_recv(),
        Ok(MailboxEvent::FlagsChanged { .. })
    ));
    store.expunge(id, &[uid]).unwrap();
    assert!(matches!(rx.try_recv(), Ok(MailboxEvent::Expunged { .. })));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn reopening_keeps_everything_and_a_second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    assert!(matches!(
        RedbStore::open(dir.path()),
        Err(StoreError::Locked)
    ));
    store.create_account("alice", Some("hash")).unwrap();
    store
        .append("alice", INBOX, b"kept", &strings(&["\\Seen"]), 7)
        .unwrap();
    let before = inbox(&store, "alice");
    drop(store);

    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(inbox(&store, "alice"), before);
    assert_eq!(store.message(before.id, Uid(1)).unwrap(), b"kept");
    assert_eq!(
        store.messages(before.id).unwrap()[0].flags,
        strings(&["\\Seen"])
    );
    // Blob ids continue after the persisted ones.
    append(&store, "alice", b"new");
    assert_eq!(bodies(dir.path(), &store), 2);
    assert_eq!(store.message(before.id, Uid(1)).unwrap(), b"kept");
}

#[test]
fn corrupt_records_are_errors_not_panics() {
    let (_dir, store) = with_accounts(&["alice"]);
    let id = inbox(&store, "alice").id;
    append(&store, "alice", b"x");
    let txn = store.db.begin_write().unwrap();
    txn.open_table(MESSAGES)
        .unwrap()
        .insert((id.0, 1), &[1u8, 2, 3][..])
        .unwrap();
    txn.commit().unwrap();
    assert!(matches!(store.messages(id), Err(StoreError::Corrupt(_))));
    assert!(matches!(
        store.message(id, Uid(1)),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn deliver_2000_messages_in_batches_of_50() {
    let (dir, store) = with_accounts(&["alice", "bob"]);
    let body = Arc::new(vec![b'x'; 4096]);
    let started = Instant::now();
    for batch_no in 0..40 {
        let batch: Vec<Delivery> = (0..50)
            .map(|i| Delivery {
                queue_id: format!("Q{batch_no}-{i}"),
                body: body.clone(),
                internal_date: 0,
                recipients: vec![if i % 2 == 0 {
                    rcpt("alice")
                } else {
                    rcpt("bob")
                }],
            })
            .collect();
        let out = store.deliver(&batch).unwrap();
        assert!(
            out.iter()
                .flatten()
                .all(|o| matches!(o, RecipientOutcome::Delivered(..)))
        );
    }
    let elapsed = started.elapsed();
    eprintln!(
        "delivered 2000 x 4 KiB in {elapsed:?} ({:.0} msgs/s)",
        2000.0 / elapsed.as_secs_f64()
    );
    let (a, b) = (inbox(&store, "alice"), inbox(&store, "bob"));
    assert_eq!((a.messages, b.messages), (1000, 1000));
    assert_eq!(a.uid_next, 1001);
    assert_eq!(store.messages(a.id).unwrap().len(), 1000);
    assert_eq!(bodies(dir.path(), &store), 2000);
}

#[test]
fn small_bodies_stay_inline_and_large_ones_go_to_files() {
    let (dir, store) = with_accounts(&["alice"]);
    let large = vec![b'L'; INLINE_LIMIT + 1];
    let out = store
        .deliver(&[
            delivery("Q-SMALL", b"small body", vec![rcpt("alice")]),
            delivery("Q-LARGE", &large, vec![rcpt("alice")]),
        ])
        .unwrap();
    assert!(
        out.iter()
            .flatten()
            .all(|o| matches!(o, RecipientOutcome::Delivered(..)))
    );
    assert_eq!(blob_files(dir.path()), 1, "only the large body is a file");
    assert_eq!(bodies(dir.path(), &store), 2);
    let mb = inbox(&store, "alice");
    let uids: Vec<Uid> = store
        .messages(mb.id)
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert!(
        store
            .message(mb.id, uids[0])
            .unwrap()
            .ends_with(b"small body")
    );
    assert_eq!(
        store.message(mb.id, uids[1]).unwrap().len(),
        large.len() + rcpt("alice").prefix.len()
    );
    store.expunge(mb.id, &uids).unwrap();
    assert_eq!(bodies(dir.path(), &store), 0);
}

#[test]
fn concurrent_deliveries_from_many_threads() {
    let (_dir, store) = with_accounts(&["alice"]);
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = &store;
            s.spawn(move || {
                for i in 0..10 {
                    let d = delivery(&format!("T{t}-{i}"), b"x", vec![rcpt("alice")]);
                    store.deliver(&[d]).unwrap();
                }
            });
        }
    });
    let info = inbox(&store, "alice");
    assert_eq!((info.messages, info.uid_next), (40, 41));
}

#[test]
fn account_data_is_kept_per_account_and_goes_with_it() {
    let (_dir, store) = with_accounts(&["alice", "albert"]);
    assert_eq!(store.account_data("alice", "spam.tokens").unwrap(), None);
    store
        .set_account_data("alice", "spam.tokens", Some(b"one"))
        .unwrap();
    store
        .set_account_data("albert", "spam.tokens", Some(b"two"))
        .unwrap();
    assert_eq!(
        store
            .account_data("Alice", "spam.tokens")
            .unwrap()
            .as_deref(),
        Some(&b"one"[..])
    );
    assert!(matches!(
        store.set_account_data("nobody", "k", Some(b"x")),
        Err(StoreError::NoSuchAccount)
    ));
    store.delete_account("alice").unwrap();
    store.create_account("alice", None).unwrap();
    assert_eq!(store.account_data("alice", "spam.tokens").unwrap(), None);
    assert_eq!(
        store
            .account_data("albert", "spam.tokens")
            .unwrap()
            .as_deref(),
        Some(&b"two"[..])
    );
    store
        .set_account_data("albert", "spam.tokens", None)
        .unwrap();
    assert_eq!(store.account_data("albert", "spam.tokens").unwrap(), None);
}

fn import_of<'a>(
    mailbox: &'a str,
    body: &'a [u8],
    key: &'a str,
) -> super::super::ImportMessage<'a> {
    super::super::ImportMessage {
        mailbox,
        body,
        flags: &[],
        internal_date: 1_700_000_000,
        uid: None,
        once_key: key,
    }
}

#[test]
fn an_import_batch_stores_each_message_once_with_its_key() {
    use super::super::ImportOutcome;
    let (dir, store) = with_accounts(&["alice"]);
    store.set_quota("alice", 300_000).unwrap();
    let big = vec![b'x'; 200 * 1024]; // a blob file, not inline
    let huge = vec![b'y'; 250 * 1024]; // does not fit after `big`
    let mut kept = import_of("Archive/2019", b"kept uid\r\n", "k1");
    kept.uid = Some((4242, Uid(17)));
    let batch = [
        kept,
        import_of("Archive/2019", b"second\r\n", "k2"),
        import_of("Archive/2019", b"second again\r\n", "k2"),
        import_of("INBOX", &big, "k3"),
        import_of("INBOX", &huge, "k4"),
    ];
    let out = store.import_batch("alice", &batch).unwrap();
    assert_eq!(out[0], ImportOutcome::Imported(Uid(17)));
    assert_eq!(out[1], ImportOutcome::Imported(Uid(18)));
    assert_eq!(out[2], ImportOutcome::Skipped, "same key within the batch");
    assert!(matches!(out[3], ImportOutcome::Imported(_)));
    assert!(matches!(out[4], ImportOutcome::Failed(_)), "{out:?}");
    let archive = store.mailbox("alice", "Archive/2019").unwrap().unwrap();
    assert_eq!(archive.uid_validity, 4242);
    assert_eq!(store.message(archive.id, Uid(18)).unwrap(), b"second\r\n");
    assert_eq!(store.account_data("alice", "k4").unwrap(), None);
    // The refused message's blob file went again: one file, `big`'s.
    let files = walk_files(&dir.path().join("blobs"));
    assert_eq!(files, 1, "blob files");
    // A second run skips all, writing nothing.
    let again = store.import_batch("alice", &batch[..4]).unwrap();
    assert!(
        again.iter().all(|o| *o == ImportOutcome::Skipped),
        "{again:?}"
    );
    assert_eq!(walk_files(&dir.path().join("blobs")), 1);
}

fn walk_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { walk_files(&path) } else { 1 }
        })
        .sum()
}

#[test]
fn message_head_reads_only_the_start() {
    let (_dir, store) = with_accounts(&["alice"]);
    let big = [b"Subject: big\r\n\r\n".as_slice(), &vec![b'x'; 300 * 1024]].concat();
    let (id, _, big_uid) = store.append("alice", INBOX, &big, &[], 1).unwrap();
    let (_, _, small_uid) = store
        .append("alice", INBOX, b"Subject: small\r\n\r\nhi\r\n", &[], 1)
        .unwrap();
    assert_eq!(store.message_head(id, big_uid, 16).unwrap(), &big[..16]);
    assert_eq!(
        store.message_head(id, small_uid, 1000).unwrap(),
        b"Subject: small\r\n\r\nhi\r\n"
    );
    let out = store
        .deliver(&[delivery("Q1", &big, vec![rcpt("alice")])])
        .unwrap();
    let RecipientOutcome::Delivered(_, uid) = out[0][0] else {
        panic!("{out:?}")
    };
    let head = store.message_head(id, uid, 40).unwrap();
    assert_eq!(head, store.message(id, uid).unwrap()[..40]);
    assert!(head.starts_with(b"Delivered-To: alice@example.org\r\n"));
}
