//! Changing messages: STORE (RFC 3501 §6.4.6, UNCHANGEDSINCE RFC 7162
//! §3.1.3), COPY (COPYUID, RFC 4315) and MOVE (RFC 6851). EXPUNGE lives
//! with the selected-mailbox view (`selected.rs`).

use super::proto::SeqSet;
use super::proto::response::flag_list;
use super::selected::RECENT;
use super::session::{CmdError, CmdResult, Done, Session};
use crate::store::{FlagOp, MessageMeta, StoreError, Uid};
use std::collections::HashMap;

impl Session {
    pub(super) async fn store(
        &mut self,
        by_uid: bool,
        set: &SeqSet,
        op: FlagOp,
        silent: bool,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> CmdResult {
        let sel = self.writable()?;
        let id = sel.id;
        let targets = sel.resolve(set, by_uid);
        let in_view = sel.uids.len();
        if unchanged_since.is_some() {
            self.enable_condstore();
        }
        // \Recent cannot be set by clients (RFC 3501 §2.3.2).
        let flags: Vec<String> = flags
            .iter()
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .cloned()
            .collect();
        let uids: Vec<Uid> = targets.iter().map(|(_, u)| *u).collect();
        // A few messages out of many are read back one by one (as FETCH
        // does); otherwise one walk over the mailbox is cheaper.
        let few = uids.len().saturating_mul(8) < in_view;
        let (metas, changed) = self
            .blocking(move |s| {
                let changed = s.store_flags(id, &uids, op, &flags, unchanged_since)?;
                let listed = if few {
                    s.messages_by_uid(id, &uids)?
                } else {
                    s.messages(id)?
                };
                let metas: HashMap<Uid, MessageMeta> =
                    listed.into_iter().map(|m| (m.uid, m)).collect();
                Ok((metas, changed))
            })
            .await?;
        let changed: HashMap<Uid, (Vec<String>, u64)> = changed
            .into_iter()
            .map(|(uid, flags, modseq)| (uid, (flags, modseq)))
            .collect();
        let (condstore, qresync) = (self.condstore, self.qresync);
        let sel = self.selected_mut()?;
        for (uid, (_, modseq)) in &changed {
            sel.own_change(*uid, *modseq);
        }
        let mut out = sel.announce_keywords(changed.values().flat_map(|(flags, _)| flags.iter()));
        let mut modified = Vec::new();
        for (seq, uid) in targets {
            let Some(meta) = metas.get(&uid) else {
                continue;
            };
            let (flags, modseq) = match changed.get(&uid) {
                Some((flags, modseq)) => (flags, *modseq),
                None => {
                    // RFC 7162 §3.1.3: failed the UNCHANGEDSINCE test.
                    if unchanged_since.is_some_and(|since| meta.modseq > since) {
                        modified.push(if by_uid { uid.0 } else { seq });
                        continue;
                    }
                    (&meta.flags, meta.modseq)
                }
            };
            if silent && !(condstore && changed.contains_key(&uid)) {
                continue;
            }
            let mut items: Vec<Vec<u8>> = Vec::new();
            if !silent {
                let mut f = b"FLAGS ".to_vec();
                let mut flags = flags.clone();
                if sel.is_recent(uid) {
                    flags.push(RECENT.to_owned());
                }
                flag_list(&mut f, &flags);
                items.push(f);
            }
            // RFC 7162 §3.2.4: under QRESYNC every FETCH carries the UID.
            if by_uid || qresync {
                items.push(format!("UID {}", uid.0).into_bytes());
            }
            if condstore {
                items.push(format!("MODSEQ ({modseq})").into_bytes());
            }
            out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
            out.extend_from_slice(&items.join(&b' '));
            out.extend_from_slice(b")\r\n");
        }
        self.out.extend_from_slice(&out);
        if modified.is_empty() {
            Ok(Done::ok("STORE completed"))
        } else {
            modified.sort_unstable();
            Ok(Done::with_code(
                format!("MODIFIED {}", SeqSet::compact(&modified)),
                "Conditional STORE failed",
            ))
        }
    }

    /// COPY, MOVE and their UID forms.
    pub(super) async fn copy(
        &mut self,
        by_uid: bool,
        set: &SeqSet,
        mailbox: &str,
        remove: bool,
    ) -> CmdResult {
        let account = self.account()?;
        // COPY only reads the source; MOVE changes it.
        let sel = if remove {
            self.writable()?
        } else {
            self.selected()?
        };
        let id = sel.id;
        let uids: Vec<Uid> = sel
            .resolve(set, by_uid)
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        let verb = if remove { "MOVE" } else { "COPY" };
        if uids.is_empty() {
            // RFC 3501 §6.4.7 allows an empty set with UID COPY.
            return Ok(Done::ok(format!("{verb} completed (no messages)")));
        }
        let name = mailbox.to_string();
        let source_name = sel.name.clone();
        let owner = account.clone();
        let result = self
            .blocking(move |s| {
                let dest = s
                    .mailbox(&account, &name)?
                    .ok_or(StoreError::NoSuchMailbox)?;
                let source = s.mailbox(&account, &source_name)?;
                let lesson = super::learn::lesson(source.as_ref(), &dest);
                let pairs = s.copy(id, &uids, dest.id)?;
                let moved: Vec<Uid> = pairs.iter().map(|(from, _)| *from).collect();
                let expunged = if remove {
                    s.expunge_at(id, &moved)?
                } else {
                    (Vec::new(), 0)
                };
                Ok((dest.uid_validity, dest.id, lesson, pairs, expunged))
            })
            .await;
        let (uid_validity, dest_id, lesson, pairs, expunged) = match result {
            Ok(r) => r,
            Err(StoreError::NoSuchMailbox) => {
                return Err(CmdError::No(Some("TRYCREATE"), "No such mailbox".into()));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(spam) = lesson
            && self.config.spam.learn_from_moves
        {
            super::learn::learn_in_background(
                self.svc.store.clone(),
                self.svc.spam.clone(),
                self.config.spam.clone(),
                super::learn::Lesson {
                    account: owner,
                    mailbox: dest_id,
                    uids: pairs.iter().map(|(_, to)| *to).collect(),
                    spam,
                    via: "IMAP",
                },
            );
        }
        let from: Vec<u32> = pairs.iter().map(|(f, _)| f.0).collect();
        let to: Vec<u32> = pairs.iter().map(|(_, t)| t.0).collect();
        let code = if pairs.is_empty() {
            None
        } else {
            Some(format!(
                "COPYUID {uid_validity} {} {}",
                SeqSet::compact(&from),
                SeqSet::compact(&to)
            ))
        };
        if !remove {
            return Ok(match code {
                Some(code) => Done::with_code(code, "COPY completed"),
                None => Done::ok("COPY completed"),
            });
        }
        // RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        if let Some(code) = code {
            self.untagged(&format!("OK [{code}] Moved"));
        }
        Ok(self.expunged_by_us(&expunged, "MOVE completed"))
    }
}
