//! The selected mailbox: this session's view of it (the UID of every
//! message sequence number) and how other sessions' changes reach the
//! client (RFC 3501 §5.2, §7.4.1).
//!
//! Store change events are collected as they arrive but applied only at
//! the points the RFC allows: EXISTS and FETCH FLAGS after any command,
//! EXPUNGE never while answering FETCH, STORE or SEARCH (their UID forms
//! are fine), and at once during IDLE. Until an EXPUNGE is reported the
//! message keeps its sequence number, so numbers never shift under the
//! client's feet.

use super::proto::response::flag_list;
use super::proto::{Qresync, SeqSet};
use super::session::{CmdError, CmdResult, Done, Session};
use crate::store::{MailStore, MailboxEvent, MailboxId, MessageMeta, StoreError, Uid};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// The system flags (RFC 3501 §2.3.2) a client may set.
pub const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// The session flag no client sets (RFC 3501 §2.3.2).
pub const RECENT: &str = "\\Recent";

pub(super) struct Selected {
    pub id: MailboxId,
    pub name: String,
    pub read_only: bool,
    /// UIDs in sequence-number order, as the client knows them.
    pub uids: Vec<Uid>,
    events: broadcast::Receiver<MailboxEvent>,
    /// Events arrived that the client has not been told about.
    dirty: bool,
    /// Some event was lost (`Lagged`): compare everything.
    lagged: bool,
    /// Messages whose flags another session changed.
    changed: BTreeSet<Uid>,
    /// New messages announced by events (UID, modseq), in arrival order.
    /// When nothing else is pending they are reported without reading
    /// the mailbox: IDLE fan-out to thousands of sessions stays cheap.
    appended: Vec<(Uid, u64)>,
    /// An event that needs the full comparison with the store (expunge,
    /// flag change); `sync` then reads the mailbox's message list.
    needs_full: bool,
    /// The UID the next new message should have (UIDNEXT as far as this
    /// session knows): new-mail events that continue from it exactly can
    /// be reported without reading the mailbox.
    next_uid: u32,
    /// Highest modseq the client has been told about (or caused).
    known_modseq: u64,
    /// Modseqs of this session's own flag changes, already reported.
    own: HashMap<Uid, u64>,
    /// The mailbox was deleted: no more events.
    closed: bool,
    /// SEARCHRES's saved result (`$`, RFC 5182), ascending UIDs.
    pub saved: Vec<Uid>,
    /// UID ranges `[from, to)` that are `\Recent` in this session: the
    /// ones it claimed from the store (see [`MailStore::claim_recent`]).
    pub recent: Vec<(u32, u32)>,
    /// `\Recent` exists in this session (not under IMAP4rev2, which
    /// dropped it).
    pub track_recent: bool,
    /// Lowest modseq of an expunge not yet reported (held back during
    /// FETCH, STORE, SEARCH): HIGHESTMODSEQ must stay below it meanwhile.
    held_expunge_modseq: Option<u64>,
    /// Keywords announced in FLAGS (and PERMANENTFLAGS) so far.
    keywords: Vec<String>,
}

impl Selected {
    /// RFC 3501 §7.2.6: when messages carry a keyword the client has not
    /// been told about, FLAGS (and PERMANENTFLAGS, §7.1) are sent again,
    /// before the FETCH that shows it. Returns those lines, if any.
    pub fn announce_keywords<'a>(&mut self, flags: impl Iterator<Item = &'a String>) -> Vec<u8> {
        let mut fresh = false;
        for flag in flags {
            if flag.starts_with('\\') || self.keywords.iter().any(|k| k.eq_ignore_ascii_case(flag))
            {
                continue;
            }
            self.keywords.push(flag.clone());
            fresh = true;
        }
        if !fresh {
            return Vec::new();
        }
        let mut all: Vec<String> = SYSTEM_FLAGS.iter().map(|f| f.to_string()).collect();
        all.extend(self.keywords.iter().cloned());
        flags_lines(&all, self.read_only)
    }

    /// The highest modseq the client has been told about.
    pub fn known_modseq(&self) -> u64 {
        self.known_modseq
    }

    /// Sequence number of a UID in the view.
    pub fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.uids
            .binary_search(&uid)
            .ok()
            .and_then(|i| u32::try_from(i + 1).ok())
    }

    /// (sequence number, UID) of the messages a set names.
    pub fn resolve(&self, set: &SeqSet, by_uid: bool) -> Vec<(u32, Uid)> {
        if set.is_saved() {
            // `$`: the same messages whether by UID or not (RFC 5182 §2.1).
            return self
                .saved
                .iter()
                .filter_map(|&uid| Some((self.seq_of(uid)?, uid)))
                .collect();
        }
        let count = u32::try_from(self.uids.len()).unwrap_or(u32::MAX);
        let max_uid = self.uids.last().map_or(0, |u| u.0);
        self.uids
            .iter()
            .zip(1..=count)
            .filter(|&(uid, seq)| {
                if by_uid {
                    set.contains(uid.0, max_uid)
                } else {
                    set.contains(seq, count)
                }
            })
            .map(|(uid, seq)| (seq, *uid))
            .collect()
    }

    /// The highest UID this session knows of (for `*` in UID sets that
    /// name expunged messages).
    pub fn next_uid_seen(&self) -> u32 {
        self.next_uid.saturating_sub(1)
    }

    pub fn is_recent(&self, uid: Uid) -> bool {
        self.recent
            .iter()
            .any(|&(from, to)| from <= uid.0 && uid.0 < to)
    }

    /// Adds `\Recent` to the flags of this session's recent messages.
    pub fn mark_recent<'a>(&self, metas: impl IntoIterator<Item = &'a mut MessageMeta>) {
        if self.recent.is_empty() {
            return;
        }
        for meta in metas {
            if self.is_recent(meta.uid) {
                meta.flags.push(RECENT.to_owned());
            }
        }
    }

    /// A message's flags as this session shows them (with `\Recent`).
    pub fn flags_of<'m>(&self, meta: &'m MessageMeta) -> Cow<'m, [String]> {
        if self.is_recent(meta.uid) {
            let mut flags = meta.flags.clone();
            flags.push(RECENT.to_owned());
            Cow::Owned(flags)
        } else {
            Cow::Borrowed(&meta.flags)
        }
    }

    /// How many messages in the view are recent.
    pub fn recent_count(&self) -> usize {
        self.recent
            .iter()
            .map(|&(from, to)| {
                let start = self.uids.partition_point(|u| u.0 < from);
                let end = self.uids.partition_point(|u| u.0 < to);
                end.saturating_sub(start)
            })
            .sum()
    }

    /// Claims `\Recent` for the messages below `up_to` that no session
    /// has seen (a read-only session looks without claiming, RFC 3501
    /// §6.3.2). The claim is in memory: cheap enough for every IDLE wake.
    fn claim_recent(&mut self, store: &dyn MailStore, up_to: u32) {
        if !self.track_recent {
            return;
        }
        match claim_recent(store, self.id, self.read_only, up_to) {
            Ok(first) => self.add_recent(first, up_to),
            Err(e) => tracing::warn!("cannot claim \\Recent messages: {e}"),
        }
    }

    /// Records the claim `[first, up_to)` (for a read-only session every
    /// UID from `first` on).
    fn add_recent(&mut self, first: Uid, up_to: u32) {
        let first = first.0;
        let to = if self.read_only { u32::MAX } else { up_to };
        // Claims are disjoint; a read-only look covers the earlier ones.
        let covered = self.recent.iter().any(|&(a, b)| a <= first && to <= b);
        if first < to && !covered {
            self.recent.push((first, to));
        }
    }

    /// Records a flag change made by this session, so its echo from the
    /// store is not reported again.
    pub fn own_change(&mut self, uid: Uid, modseq: u64) {
        self.own.insert(uid, modseq);
    }

    fn take_event(&mut self, event: MailboxEvent) {
        match event {
            MailboxEvent::Appended { uid, modseq } => {
                if self.uids.last().is_none_or(|last| uid > *last) {
                    self.appended.push((uid, modseq));
                    self.dirty = true;
                }
            }
            MailboxEvent::FlagsChanged { uid, modseq } => {
                if self.own.get(&uid).is_none_or(|&own| modseq > own) {
                    self.changed.insert(uid);
                    self.needs_full = true;
                    self.dirty = true;
                }
            }
            MailboxEvent::Expunged { uid, modseq } => {
                let pending = self.appended.iter().any(|(u, _)| *u == uid);
                if pending || self.uids.binary_search(&uid).is_ok() {
                    self.needs_full = true;
                    self.dirty = true;
                    let held = self.held_expunge_modseq.get_or_insert(modseq);
                    *held = (*held).min(modseq);
                }
            }
        }
    }

    /// Collects the events that have arrived.
    pub fn drain(&mut self) {
        while !self.closed {
            match self.events.try_recv() {
                Ok(event) => self.take_event(event),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => {
                    self.lagged = true;
                    self.needs_full = true;
                    self.dirty = true;
                }
                Err(TryRecvError::Closed) => self.closed = true,
            }
        }
    }

    /// Waits for the next event (IDLE); never returns once closed.
    pub async fn wait(&mut self) {
        if self.closed {
            return std::future::pending().await;
        }
        match self.events.recv().await {
            Ok(event) => self.take_event(event),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                self.lagged = true;
                self.needs_full = true;
                self.dirty = true;
            }
            Err(broadcast::error::RecvError::Closed) => self.closed = true,
        }
    }
}

impl Session {
    pub(super) fn selected(&self) -> Result<&Selected, CmdError> {
        self.selected
            .as_ref()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))
    }

    /// The selected mailbox, if the command may change it (not after
    /// EXAMINE).
    pub(super) fn writable(&self) -> Result<&Selected, CmdError> {
        let sel = self.selected()?;
        if sel.read_only {
            return Err(CmdError::No(
                Some("READ-ONLY"),
                "Mailbox is read-only".into(),
            ));
        }
        Ok(sel)
    }

    pub(super) fn selected_mut(&mut self) -> Result<&mut Selected, CmdError> {
        self.selected
            .as_mut()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))
    }

    /// Tells the client about changes by others (EXISTS, FETCH FLAGS and,
    /// when `expunge_allowed`, EXPUNGE).
    pub(super) async fn sync(&mut self, expunge_allowed: bool) -> Result<(), CmdError> {
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        sel.drain();
        if !sel.dirty {
            return Ok(());
        }
        let mut fresh: Vec<(Uid, u64)> = std::mem::take(&mut sel.appended);
        fresh.sort_unstable();
        fresh.dedup_by_key(|(uid, _)| *uid);
        // Events are published after their commits, so they may arrive out
        // of order: the fast path needs exactly the UIDs after our last one,
        // without gaps; anything else is settled by reading the mailbox.
        let last = sel.uids.last().copied();
        let next = sel.next_uid;
        let contiguous = fresh
            .iter()
            .zip(0u32..)
            .all(|((uid, _), n)| next.checked_add(n) == Some(uid.0));
        if !sel.needs_full && contiguous {
            // Only new messages, each announced with its UID: no need to
            // read the mailbox (the common case for IDLE).
            let before = sel.uids.len();
            for (uid, modseq) in fresh {
                if last.is_none_or(|l| uid > l) {
                    sel.uids.push(uid);
                    sel.known_modseq = sel.known_modseq.max(modseq);
                    sel.next_uid = uid.0.saturating_add(1);
                }
            }
            if sel.uids.len() != before {
                let next = sel.next_uid;
                sel.claim_recent(self.svc.store.as_ref(), next);
                let line = exists_lines(sel, self.rev2);
                self.out.extend_from_slice(line.as_bytes());
            }
            sel.dirty = false;
            return Ok(());
        }
        let id = sel.id;
        let metas = self.blocking(move |s| s.messages(id)).await?;
        let (condstore, qresync, rev2) = (self.condstore, self.qresync, self.rev2);
        let store = self.svc.store.clone();
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        let present: HashMap<Uid, &MessageMeta> = metas.iter().map(|m| (m.uid, m)).collect();
        let mut expunges_left = false;
        if expunge_allowed {
            let mut vanished = Vec::new();
            let mut i = 0;
            while let Some(uid) = sel.uids.get(i).copied() {
                if present.contains_key(&uid) {
                    i += 1;
                } else {
                    sel.uids.remove(i);
                    sel.own.remove(&uid);
                    vanished.push(uid);
                    if !qresync {
                        out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                    }
                }
            }
            if qresync && !vanished.is_empty() {
                out.extend_from_slice(vanished_line(&vanished, false).as_bytes());
            }
        } else {
            expunges_left = sel.uids.iter().any(|u| !present.contains_key(u));
        }
        let last = sel.uids.last().copied();
        let before = sel.uids.len();
        sel.uids.extend(
            metas
                .iter()
                .map(|m| m.uid)
                .filter(|u| last.is_none_or(|l| *u > l)),
        );
        if sel.uids.len() != before {
            let next = sel.uids.last().map_or(0, |u| u.0.saturating_add(1));
            sel.claim_recent(store.as_ref(), next);
        }
        if sel.uids.len() != before || !out.is_empty() {
            out.extend_from_slice(exists_lines(sel, rev2).as_bytes());
        }
        out.extend_from_slice(&sel.announce_keywords(metas.iter().flat_map(|m| m.flags.iter())));
        let changed: Vec<Uid> = if sel.lagged {
            metas
                .iter()
                .filter(|m| m.modseq > sel.known_modseq)
                .map(|m| m.uid)
                .collect()
        } else {
            std::mem::take(&mut sel.changed).into_iter().collect()
        };
        for uid in changed {
            let (Some(seq), Some(meta)) = (sel.seq_of(uid), present.get(&uid)) else {
                continue;
            };
            if uid > last.unwrap_or(Uid(0)) {
                continue; // new to the client: EXISTS covers it
            }
            if sel.own.get(&uid).is_some_and(|&own| own >= meta.modseq) {
                continue;
            }
            out.extend_from_slice(format!("* {seq} FETCH (UID {} FLAGS ", uid.0).as_bytes());
            flag_list(&mut out, &sel.flags_of(meta));
            if condstore {
                out.extend_from_slice(format!(" MODSEQ ({})", meta.modseq).as_bytes());
            }
            out.extend_from_slice(b")\r\n");
        }
        sel.known_modseq = metas
            .iter()
            .map(|m| m.modseq)
            .fold(sel.known_modseq, u64::max);
        let newest = metas
            .iter()
            .map(|m| m.uid.0)
            .chain(fresh.iter().map(|(u, _)| u.0))
            .max();
        if let Some(newest) = newest {
            sel.next_uid = sel.next_uid.max(newest.saturating_add(1));
        }
        sel.lagged = false;
        sel.changed.clear();
        // Still dirty (and needing the full comparison) while an expunge
        // waits for an allowed moment.
        sel.dirty = expunges_left;
        sel.needs_full = expunges_left;
        if !expunges_left {
            sel.held_expunge_modseq = None;
        } else if condstore && let Some(held) = sel.held_expunge_modseq {
            // RFC 7162 §3.2: MODSEQs were (or may have been) sent while an
            // expunge with a lower modseq waits; a client must not take
            // them as "in sync up to here".
            out.extend_from_slice(
                format!(
                    "* OK [HIGHESTMODSEQ {}] Expunges pending\r\n",
                    held.saturating_sub(1)
                )
                .as_bytes(),
            );
        }
        self.out.extend_from_slice(&out);
        Ok(())
    }

    pub(super) async fn select(
        &mut self,
        name: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    ) -> CmdResult {
        let account = self.account()?;
        // RFC 7162 §3.2.5: the parameter is an error unless enabled.
        if qresync.is_some() && !self.qresync {
            return Err(CmdError::bad("ENABLE QRESYNC first"));
        }
        // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected;
        // RFC 7162 §3.2.11 (a server offering CONDSTORE or QRESYNC) and
        // RFC 9051 §7.1: say so.
        if self.selected.take().is_some() {
            self.untagged("OK [CLOSED] Previous mailbox closed");
        }
        if condstore || qresync.is_some() {
            self.condstore = true;
        }
        let (acct, mbox) = (account, name.to_string());
        let Some(info) = self.blocking(move |s| s.mailbox(&acct, &mbox)).await? else {
            return Err(CmdError::No(Some("NONEXISTENT"), "No such mailbox".into()));
        };
        // Subscribe before reading the state, so no change falls between.
        let events = self.svc.store.subscribe(info.id);
        let id = info.id;
        let track_recent = !self.rev2;
        // The first claim of a mailbox may read the store: it is made here,
        // off the async threads; later ones are in memory.
        let snap = match self
            .blocking(move |s| {
                let snap = s.snapshot(id)?;
                let up_to = snap.info.uid_next;
                let first = if track_recent {
                    Some(claim_recent(s, id, read_only, up_to)?)
                } else {
                    None
                };
                Ok((snap, first))
            })
            .await
        {
            Err(StoreError::NoSuchMailbox) => {
                return Err(CmdError::No(Some("NONEXISTENT"), "No such mailbox".into()));
            }
            other => other?,
        };
        let (snap, first_recent) = snap;
        let mut flags: Vec<String> = SYSTEM_FLAGS.iter().map(|f| f.to_string()).collect();
        flags.extend(snap.keywords.iter().cloned());
        self.out.extend_from_slice(&flags_lines(&flags, read_only));
        let info = snap.info;
        let highest = snap.highest_modseq.max(1);
        let mut sel = Selected {
            id: info.id,
            name: info.name.clone(),
            read_only,
            uids: snap.uids,
            events,
            dirty: false,
            lagged: false,
            changed: BTreeSet::new(),
            appended: Vec::new(),
            needs_full: false,
            next_uid: info.uid_next,
            known_modseq: highest,
            own: HashMap::new(),
            closed: false,
            saved: Vec::new(),
            recent: Vec::new(),
            track_recent,
            held_expunge_modseq: None,
            keywords: snap.keywords.clone(),
        };
        if let Some(first) = first_recent {
            sel.add_recent(first, info.uid_next);
        }
        let exists = exists_lines(&sel, self.rev2);
        self.out.extend_from_slice(exists.as_bytes());
        if let Some(pos) = snap.first_unseen
            && !self.rev2
        {
            self.untagged(&format!("OK [UNSEEN {pos}] First unseen"));
        }
        self.untagged(&format!(
            "OK [UIDVALIDITY {}] UIDs valid",
            info.uid_validity
        ));
        self.untagged(&format!(
            "OK [UIDNEXT {}] Predicted next UID",
            info.uid_next
        ));
        self.untagged(&format!("OK [HIGHESTMODSEQ {highest}] Highest"));
        self.untagged(&format!(
            "OK [MAILBOXID ({})] Ok",
            super::proto::mailbox_object_id(info.id.0)
        ));
        // RFC 9051 §6.3.2: an IMAP4rev2 SELECT includes the mailbox's LIST
        // response (a name with wildcards would be a pattern, so those
        // are left out).
        if self.rev2 && !info.name.contains(['*', '%']) {
            let options = super::proto::ListOptions::default();
            self.list("", std::slice::from_ref(&info.name), false, &options)
                .await?;
        }
        if let Some(q) = qresync.filter(|q| q.uid_validity == info.uid_validity) {
            let out = self.qresync_changes(&sel, &q).await?;
            self.out.extend_from_slice(&out);
        }
        self.selected = Some(sel);
        let (code, verb) = if read_only {
            ("READ-ONLY", "EXAMINE")
        } else {
            ("READ-WRITE", "SELECT")
        };
        Ok(Done::with_code(code, format!("{verb} completed")))
    }

    /// What changed since the client's cached state (RFC 7162 §3.2.5.1):
    /// `VANISHED (EARLIER)` for expunged UIDs it knows, then FETCH for
    /// every message changed or added since its modseq.
    async fn qresync_changes(&mut self, sel: &Selected, q: &Qresync) -> Result<Vec<u8>, CmdError> {
        let (id, since) = (sel.id, q.modseq);
        let (vanished, metas) = self
            .blocking(move |s| Ok((s.vanished_since(id, since)?, s.messages(id)?)))
            .await?;
        let max_uid = sel.next_uid.saturating_sub(1);
        // A UID still in the view was expunged after the snapshot: it is
        // reported as VANISHED later, with the other sessions' changes.
        let vanished: Vec<Uid> = vanished
            .into_iter()
            .filter(|u| sel.seq_of(*u).is_none())
            .filter(|u| {
                q.known_uids
                    .as_ref()
                    .is_none_or(|k| k.contains(u.0, max_uid))
            })
            .collect();
        let mut out = Vec::new();
        if !vanished.is_empty() {
            out.extend_from_slice(vanished_line(&vanished, true).as_bytes());
        }
        for meta in metas.iter().filter(|m| m.modseq > since) {
            let Some(seq) = sel.seq_of(meta.uid) else {
                continue;
            };
            out.extend_from_slice(format!("* {seq} FETCH (UID {} FLAGS ", meta.uid.0).as_bytes());
            flag_list(&mut out, &sel.flags_of(meta));
            out.extend_from_slice(format!(" MODSEQ ({}))\r\n", meta.modseq).as_bytes());
        }
        Ok(out)
    }

    /// CLOSE (`expunge`: removes \Deleted messages silently) and UNSELECT.
    pub(super) async fn close(&mut self, expunge: bool) -> Result<(), CmdError> {
        let Some(sel) = self.selected.take() else {
            return Err(CmdError::bad("No mailbox selected"));
        };
        if expunge && !sel.read_only {
            let id = sel.id;
            self.blocking(move |s| {
                let deleted: Vec<Uid> = s
                    .messages(id)?
                    .into_iter()
                    .filter(is_deleted)
                    .map(|m| m.uid)
                    .collect();
                s.expunge(id, &deleted)
            })
            .await?;
        }
        Ok(())
    }

    /// EXPUNGE and UID EXPUNGE (RFC 4315 §2.1).
    pub(super) async fn expunge(&mut self, uids: Option<&SeqSet>) -> CmdResult {
        let sel = self.writable()?;
        let id = sel.id;
        let wanted: Option<BTreeSet<Uid>> =
            uids.map(|set| sel.resolve(set, true).into_iter().map(|(_, u)| u).collect());
        let removed = self
            .blocking(move |s| {
                let deleted: Vec<Uid> = s
                    .messages(id)?
                    .into_iter()
                    .filter(is_deleted)
                    .map(|m| m.uid)
                    .filter(|u| wanted.as_ref().is_none_or(|w| w.contains(u)))
                    .collect();
                s.expunge_at(id, &deleted)
            })
            .await?;
        Ok(self.expunged_by_us(&removed, "EXPUNGE completed"))
    }

    /// Takes messages this session expunged (EXPUNGE, MOVE) out of the
    /// view and tells the client: one EXPUNGE each, or one VANISHED under
    /// QRESYNC with the new HIGHESTMODSEQ in the tagged OK (RFC 7162
    /// §3.2.7, §3.2.10).
    pub(super) fn expunged_by_us(&mut self, removed: &(Vec<Uid>, u64), text: &str) -> Done {
        let (removed, modseq) = removed;
        let qresync = self.qresync;
        let Some(sel) = self.selected.as_mut() else {
            return Done::ok(text.to_owned());
        };
        let mut lines = String::new();
        let mut vanished = Vec::new();
        for &uid in removed {
            if let Ok(i) = sel.uids.binary_search(&uid) {
                sel.uids.remove(i);
                sel.own.remove(&uid);
                vanished.push(uid);
                if !qresync {
                    lines.push_str(&format!("* {} EXPUNGE\r\n", i + 1));
                }
            }
        }
        sel.known_modseq = sel.known_modseq.max(*modseq);
        if qresync && !vanished.is_empty() {
            lines = vanished_line(&vanished, false);
        }
        self.out.extend_from_slice(lines.as_bytes());
        if qresync && !removed.is_empty() {
            Done::with_code(format!("HIGHESTMODSEQ {modseq}"), text.to_owned())
        } else {
            Done::ok(text.to_owned())
        }
    }
}

pub(super) fn is_deleted(meta: &MessageMeta) -> bool {
    meta.flags
        .iter()
        .any(|f| f.eq_ignore_ascii_case("\\Deleted"))
}

/// `* n EXISTS`, and before IMAP4rev2 also `* n RECENT`.
fn exists_lines(sel: &Selected, rev2: bool) -> String {
    let mut lines = format!("* {} EXISTS\r\n", sel.uids.len());
    if !rev2 {
        lines.push_str(&format!("* {} RECENT\r\n", sel.recent_count()));
    }
    lines
}

/// `* VANISHED [(EARLIER)] uid-set` (RFC 7162 §3.2.10), `uids` ascending.
pub(super) fn vanished_line(uids: &[Uid], earlier: bool) -> String {
    let numbers: Vec<u32> = uids.iter().map(|u| u.0).collect();
    format!(
        "* VANISHED {}{}\r\n",
        if earlier { "(EARLIER) " } else { "" },
        SeqSet::compact(&numbers)
    )
}

/// Claims `\Recent` in the store for the UIDs below `up_to`; a read-only
/// session only looks (RFC 3501 §6.3.2: EXAMINE must not take `\Recent`).
/// Returns the first UID not claimed before.
fn claim_recent(
    store: &dyn MailStore,
    mailbox: MailboxId,
    read_only: bool,
    up_to: u32,
) -> Result<Uid, StoreError> {
    store.claim_recent(mailbox, Uid(if read_only { 0 } else { up_to }))
}

/// `* FLAGS (...)` and `* OK [PERMANENTFLAGS (... \\*)]` for `flags`.
fn flags_lines(flags: &[String], read_only: bool) -> Vec<u8> {
    let mut out = b"* FLAGS ".to_vec();
    flag_list(&mut out, flags);
    out.extend_from_slice(b"\r\n");
    if read_only {
        out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
    } else {
        let mut permanent = flags.to_vec();
        permanent.push("\\*".into());
        out.extend_from_slice(b"* OK [PERMANENTFLAGS ");
        flag_list(&mut out, &permanent);
        out.extend_from_slice(b"] Flags permitted\r\n");
    }
    out
}
