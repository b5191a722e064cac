//! Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
//! LIST/LSUB (RFC 3501 §6.3; CHILDREN RFC 3348; SPECIAL-USE RFC 6154),
//! LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819), STATUS (with
//! STATUS=SIZE, RFC 8438), APPEND (UIDPLUS, RFC 4315; MULTIAPPEND,
//! RFC 3502), QUOTA (RFC 9208, read-only: the account's quota) and
//! CREATE-SPECIAL-USE (RFC 6154 §3).
//!
//! The store keeps names in UTF-8. Sessions that have not enabled
//! UTF8=ACCEPT (RFC 6855) send and receive them in modified UTF-7
//! (RFC 3501 §5.1.3): [`Session::decode_names`] converts what comes in,
//! [`write_mailbox`] what goes out. The hierarchy separator is `/`, the
//! store's.

use super::mutf7;
use super::proto::command::normalize_mailbox;
use super::proto::response::{flag_list, mailbox as write_mailbox};
use super::proto::sequence::SeqNum;
use super::proto::{AppendMessage, CommandKind, ListOptions, SeqSet, StatusItem};
use super::selected::is_deleted;
use super::session::{CmdError, CmdResult, Done, Session};
use crate::store::{
    MailStore, MailboxId, MailboxInfo, NewMessage, SEPARATOR, SpecialUse, StoreError,
};
use std::collections::{BTreeMap, HashMap};

impl Session {
    /// The command with every mailbox name (and LIST reference and
    /// pattern) as the store spells it: UTF-8 as sent under UTF8=ACCEPT,
    /// else decoded from modified UTF-7. 8-bit names without UTF8=ACCEPT
    /// are a protocol error (`BAD`); names that are not canonical modified
    /// UTF-7 are refused (`NO [CANNOT]`).
    pub(super) fn decode_names(&self, kind: CommandKind) -> Result<CommandKind, CmdError> {
        if self.utf8 {
            return Ok(kind);
        }
        let name = |raw: String| -> Result<String, CmdError> {
            Ok(normalize_mailbox(decode_mutf7(&raw)?))
        };
        Ok(match kind {
            CommandKind::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => CommandKind::Select {
                mailbox: name(mailbox)?,
                read_only,
                condstore,
                qresync,
            },
            CommandKind::Create {
                mailbox,
                special_use,
            } => CommandKind::Create {
                mailbox: name(mailbox)?,
                special_use,
            },
            CommandKind::Delete(mailbox) => CommandKind::Delete(name(mailbox)?),
            CommandKind::Rename(from, to) => CommandKind::Rename(name(from)?, name(to)?),
            CommandKind::Subscribe(mailbox) => CommandKind::Subscribe(name(mailbox)?),
            CommandKind::Unsubscribe(mailbox) => CommandKind::Unsubscribe(name(mailbox)?),
            CommandKind::List {
                reference,
                patterns,
                subscribed_only,
                options,
            } => CommandKind::List {
                reference: decode_pattern(&reference)?,
                patterns: patterns
                    .iter()
                    .map(|p| decode_pattern(p))
                    .collect::<Result<_, _>>()?,
                subscribed_only,
                options,
            },
            CommandKind::Status { mailbox, items } => CommandKind::Status {
                mailbox: name(mailbox)?,
                items,
            },
            CommandKind::Append { mailbox, messages } => CommandKind::Append {
                mailbox: name(mailbox)?,
                messages,
            },
            CommandKind::Replace {
                uid,
                target,
                mailbox,
                message,
            } => CommandKind::Replace {
                uid,
                target,
                mailbox: name(mailbox)?,
                message,
            },
            CommandKind::GetQuotaRoot(mailbox) => CommandKind::GetQuotaRoot(name(mailbox)?),
            CommandKind::Copy {
                uid,
                set,
                mailbox,
                remove,
            } => CommandKind::Copy {
                uid,
                set,
                mailbox: name(mailbox)?,
                remove,
            },
            other => other,
        })
    }

    /// CREATE, with CREATE-SPECIAL-USE: at most one of the uses the store
    /// knows (`\Drafts`, `\Sent`, `\Trash`, `\Junk`, `\Archive`);
    /// anything else is `NO [USEATTR]` and nothing is created.
    pub(super) async fn create(&mut self, name: &str, uses: &[String]) -> CmdResult {
        let account = self.account()?;
        let special_use = special_use(uses)?;
        let name = name.trim_end_matches(SEPARATOR).to_string();
        if name.is_empty() || name.eq_ignore_ascii_case("INBOX") {
            return Err(CmdError::No(Some("ALREADYEXISTS"), "Mailbox exists".into()));
        }
        let created = self
            .blocking(move |s| {
                // RFC 3501 §6.3.3: create the missing superiors too.
                let parts: Vec<&str> = name.split(SEPARATOR).collect();
                for depth in 1..parts.len() {
                    let parent = parts.get(..depth).unwrap_or_default().join("/");
                    match s.create_mailbox(&account, &parent, None) {
                        Ok(_) | Err(StoreError::MailboxExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                s.create_mailbox(&account, &name, special_use)
            })
            .await?;
        // RFC 8474 §4.1: the new mailbox's MAILBOXID in the tagged OK.
        Ok(Done::with_code(
            format!(
                "MAILBOXID ({})",
                super::proto::mailbox_object_id(created.id.0)
            ),
            "CREATE completed",
        ))
    }

    pub(super) async fn delete(&mut self, name: &str) -> CmdResult {
        let account = self.account()?;
        if name == "INBOX" {
            return Err(CmdError::No(
                Some("CANNOT"),
                "INBOX cannot be deleted".into(),
            ));
        }
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            self.selected = None;
        }
        let name = name.to_string();
        self.blocking(move |s| s.delete_mailbox(&account, &name))
            .await?;
        Ok(Done::ok("DELETE completed"))
    }

    pub(super) async fn rename(&mut self, from: &str, to: &str) -> CmdResult {
        let account = self.account()?;
        let (from, to) = (from.to_string(), to.trim_end_matches(SEPARATOR).to_string());
        if to.is_empty() || to == "INBOX" {
            return Err(CmdError::No(Some("ALREADYEXISTS"), "Mailbox exists".into()));
        }
        self.blocking(move |s| s.rename_mailbox(&account, &from, &to))
            .await?;
        Ok(Done::ok("RENAME completed"))
    }

    pub(super) async fn subscribe(&mut self, name: &str, on: bool) -> CmdResult {
        let account = self.account()?;
        let name = name.to_string();
        self.blocking(move |s| s.set_subscribed(&account, &name, on))
            .await?;
        Ok(Done::ok(if on {
            "SUBSCRIBE completed"
        } else {
            "UNSUBSCRIBE completed"
        }))
    }

    /// LIST and LSUB, with LIST-EXTENDED options and LIST-STATUS.
    pub(super) async fn list(
        &mut self,
        reference: &str,
        patterns: &[String],
        subscribed_only: bool,
        options: &ListOptions,
    ) -> CmdResult {
        let account = self.account()?;
        let verb = if subscribed_only { "LSUB" } else { "LIST" };
        if let [pattern] = patterns
            && pattern.is_empty()
        {
            // RFC 3501 §6.3.8: the hierarchy delimiter and root.
            self.untagged(&format!("{verb} (\\Noselect) \"/\" \"\""));
            return Ok(Done::ok(format!("{verb} completed")));
        }
        let full: Vec<String> = patterns
            .iter()
            .map(|p| normalize_pattern(&format!("{reference}{p}")))
            .collect();
        let items = options.ret_status.clone().unwrap_or_default();
        let (mailboxes, orphans, counts) = self
            .blocking(move |s| {
                let mailboxes = s.mailboxes(&account)?;
                let orphans = s.subscriptions_without_mailbox(&account)?;
                let mut counts = HashMap::new();
                for info in &mailboxes {
                    counts.insert(info.id, Counted::read(s, info.id, &items)?);
                }
                Ok((mailboxes, orphans, counts))
            })
            .await?;
        let entries = tree(&mailboxes, &orphans);
        let percent = full.iter().any(|p| p.contains('%'));
        // RECURSIVEMATCH (RFC 5258 §3.5): CHILDINFO only for descendants
        // the patterns do not list themselves.
        let unlisted = |name: &str| !full.iter().any(|p| matches(p.as_bytes(), name.as_bytes()));
        let subscribed_attr = options.sel_subscribed || options.ret_subscribed;
        let utf8 = self.utf8;
        let mut out = Vec::new();
        for (name, entry) in &entries {
            if !full.iter().any(|p| matches(p.as_bytes(), name.as_bytes())) {
                continue;
            }
            let mut attrs: Vec<String> = Vec::new();
            let mut child_info = false;
            let selected_by_options = |e: &Entry<'_>| match e.info {
                Some(info) => {
                    (!options.sel_subscribed || info.subscribed)
                        && (!options.sel_special_use || info.special_use.is_some())
                }
                None => e.orphan && options.sel_subscribed && !options.sel_special_use,
            };
            let qualifies = |e: &Entry<'_>| selected_by_options(e);
            // RFC 3501 §6.3.9: LSUB with `%` shows a superior of subscribed
            // names that is not subscribed itself as \Noselect.
            let lsub_superior = subscribed_only && percent && entry.subscribed_below;
            match entry.info {
                Some(info) => {
                    if subscribed_only && !info.subscribed {
                        if lsub_superior {
                            attrs.push("\\Noselect".into());
                            write_list_line(&mut out, verb, &attrs, name, utf8, false);
                        }
                        continue;
                    }
                    if !selected_by_options(entry) {
                        // RECURSIVEMATCH (RFC 5258 §3): a parent whose
                        // descendants match is listed with CHILDINFO.
                        if options.recursive_match
                            && options.sel_subscribed
                            && has_matching_child(&entries, name, &qualifies, &unlisted)
                        {
                            child_info = true;
                        } else {
                            continue;
                        }
                    }
                    if let Some(special) = info.special_use
                        && !subscribed_only
                    {
                        attrs.push(special.attribute().into());
                    }
                    if subscribed_attr && info.subscribed {
                        attrs.push("\\Subscribed".into());
                    }
                }
                None if entry.orphan && (subscribed_only || options.sel_subscribed) => {
                    // Subscribed, but no such mailbox (deleted, or never
                    // created): RFC 5258 \NonExistent, LSUB \Noselect.
                    if options.sel_special_use {
                        continue;
                    }
                    if subscribed_only {
                        attrs.push("\\Noselect".into());
                    } else {
                        attrs.push("\\Subscribed".into());
                        attrs.push("\\NonExistent".into());
                    }
                }
                None => {
                    if subscribed_only {
                        if lsub_superior {
                            attrs.push("\\Noselect".into());
                            write_list_line(&mut out, verb, &attrs, name, utf8, false);
                        }
                        continue;
                    }
                    if options.sel_special_use || !entry.children {
                        continue;
                    }
                    if options.sel_subscribed {
                        if options.recursive_match
                            && has_matching_child(&entries, name, &qualifies, &unlisted)
                        {
                            child_info = true;
                        } else {
                            continue;
                        }
                    }
                    attrs.push("\\Noselect".into());
                }
            }
            if !subscribed_only {
                attrs.push(if entry.children {
                    "\\HasChildren".into()
                } else {
                    "\\HasNoChildren".into()
                });
            }
            write_list_line(&mut out, verb, &attrs, name, utf8, child_info);
            // LIST-STATUS (RFC 5819): STATUS for selectable mailboxes.
            if let (Some(items), Some(info)) = (&options.ret_status, entry.info) {
                let counted = counts.get(&info.id).copied().unwrap_or_default();
                status_line(&mut out, info, items, counted, utf8);
            }
        }
        self.out.extend_from_slice(&out);
        Ok(Done::ok(format!("{verb} completed")))
    }

    pub(super) async fn status(&mut self, name: &str, items: &[StatusItem]) -> CmdResult {
        let account = self.account()?;
        let mbox = name.to_string();
        let wanted = items.to_vec();
        let found = self
            .blocking(move |s| {
                let Some(info) = s.mailbox(&account, &mbox)? else {
                    return Ok(None);
                };
                let counted = Counted::read(s, info.id, &wanted)?;
                Ok(Some((info, counted)))
            })
            .await?;
        let Some((info, counted)) = found else {
            return Err(CmdError::No(Some("NONEXISTENT"), "No such mailbox".into()));
        };
        let mut out = Vec::new();
        status_line(&mut out, &info, items, counted, self.utf8);
        self.out.extend_from_slice(&out);
        Ok(Done::ok("STATUS completed"))
    }

    /// GETQUOTAROOT: one root, `""`, for the whole account, when it has a
    /// quota (RFC 9208 §4.2.2).
    pub(super) async fn get_quota_root(&mut self, name: &str) -> CmdResult {
        let account = self.account()?;
        let mbox = name.to_string();
        let (exists, info) = self
            .blocking(move |s| Ok((s.mailbox(&account, &mbox)?.is_some(), s.account(&account)?)))
            .await?;
        if !exists {
            return Err(CmdError::No(Some("NONEXISTENT"), "No such mailbox".into()));
        }
        let mut out = b"* QUOTAROOT ".to_vec();
        write_mailbox(&mut out, name, self.utf8);
        let quota = info.filter(|i| i.quota_bytes > 0);
        if quota.is_some() {
            out.extend_from_slice(b" \"\"");
        }
        out.extend_from_slice(b"\r\n");
        if let Some(info) = quota {
            out.extend_from_slice(quota_line(info.used_bytes, info.quota_bytes).as_bytes());
        }
        self.out.extend_from_slice(&out);
        Ok(Done::ok("GETQUOTAROOT completed"))
    }

    pub(super) async fn get_quota(&mut self, root: &str) -> CmdResult {
        let account = self.account()?;
        let info = self.blocking(move |s| s.account(&account)).await?;
        match info {
            Some(info) if root.is_empty() && info.quota_bytes > 0 => {
                let line = quota_line(info.used_bytes, info.quota_bytes);
                self.out.extend_from_slice(line.as_bytes());
                Ok(Done::ok("GETQUOTA completed"))
            }
            _ => Err(CmdError::No(
                Some("NONEXISTENT"),
                "No such quota root".into(),
            )),
        }
    }

    /// APPEND of one or more messages (MULTIAPPEND, RFC 3502): one store
    /// transaction, so all of them or none.
    /// REPLACE (RFC 8508): the new message is saved first (its APPENDUID
    /// in an untagged OK), then the old one is expunged; if the save
    /// fails, nothing is expunged.
    pub(super) async fn replace(
        &mut self,
        by_uid: bool,
        target: u32,
        mailbox: &str,
        message: AppendMessage,
    ) -> CmdResult {
        let sel = self.writable()?;
        let id = sel.id;
        let set = SeqSet(vec![(SeqNum::Value(target), SeqNum::Value(target))]);
        let Some(&(_, old)) = sel.resolve(&set, by_uid).first() else {
            return Err(CmdError::bad("No such message"));
        };
        let saved = self.append(mailbox, vec![message]).await?;
        if let Some(code) = &saved.code {
            self.untagged(&format!("OK [{code}] Replacement message saved"));
        }
        let removed = self.blocking(move |s| s.expunge_at(id, &[old])).await?;
        let done = self.expunged_by_us(&removed, "REPLACE completed");
        self.sync(true).await?;
        Ok(done)
    }

    pub(super) async fn append(&mut self, name: &str, messages: Vec<AppendMessage>) -> CmdResult {
        let account = self.account()?;
        if messages.iter().any(|m| m.message.is_empty()) {
            return Err(CmdError::no("Empty message"));
        }
        let now = crate::rfc5322::now_unix();
        let batch: Vec<(Vec<String>, i64, Vec<u8>)> = messages
            .into_iter()
            .map(|m| {
                let flags = m
                    .flags
                    .into_iter()
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .collect();
                (flags, m.date.unwrap_or(now), m.message)
            })
            .collect();
        let mbox = name.to_string();
        let result = self
            .blocking(move |s| {
                let messages: Vec<NewMessage<'_>> = batch
                    .iter()
                    .map(|(flags, date, body)| NewMessage {
                        body,
                        flags,
                        internal_date: *date,
                    })
                    .collect();
                s.append_batch(&account, &mbox, &messages)
            })
            .await;
        match result {
            Ok((_, uid_validity, uids)) => {
                let numbers: Vec<u32> = uids.iter().map(|u| u.0).collect();
                Ok(Done::with_code(
                    format!("APPENDUID {uid_validity} {}", SeqSet::compact(&numbers)),
                    "APPEND completed",
                ))
            }
            Err(StoreError::NoSuchMailbox) => {
                Err(CmdError::No(Some("TRYCREATE"), "No such mailbox".into()))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// STATUS values the mailbox record does not keep, read only when asked.
#[derive(Clone, Copy, Debug, Default)]
struct Counted {
    recent: u32,
    deleted: u32,
}

impl Counted {
    fn read(s: &dyn MailStore, id: MailboxId, items: &[StatusItem]) -> Result<Counted, StoreError> {
        let mut counted = Counted::default();
        if items.contains(&StatusItem::Recent) {
            counted.recent = s.recent_count(id)?;
        }
        if items.contains(&StatusItem::Deleted) {
            let deleted = s.messages(id)?.iter().filter(|m| is_deleted(m)).count();
            counted.deleted = u32::try_from(deleted).unwrap_or(u32::MAX);
        }
        Ok(counted)
    }
}

/// `* STATUS name (items)` with CRLF.
fn status_line(
    out: &mut Vec<u8>,
    info: &MailboxInfo,
    items: &[StatusItem],
    counted: Counted,
    utf8: bool,
) {
    let values: Vec<String> = items
        .iter()
        .map(|item| {
            if *item == StatusItem::MailboxId {
                return format!("MAILBOXID ({})", super::proto::mailbox_object_id(info.id.0));
            }
            let value = match item {
                StatusItem::MailboxId => 0,
                StatusItem::Messages => u64::from(info.messages),
                StatusItem::Recent => u64::from(counted.recent),
                StatusItem::Deleted => u64::from(counted.deleted),
                StatusItem::UidNext => u64::from(info.uid_next),
                StatusItem::UidValidity => u64::from(info.uid_validity),
                StatusItem::Unseen => u64::from(info.unseen),
                StatusItem::HighestModSeq => info.highest_modseq.max(1),
                StatusItem::Size => info.size,
            };
            format!("{} {value}", item.name())
        })
        .collect();
    out.extend_from_slice(b"* STATUS ");
    write_mailbox(out, &info.name, utf8);
    out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
}

/// A mailbox name or pattern from a session without UTF8=ACCEPT.
fn decode_mutf7(raw: &str) -> Result<String, CmdError> {
    if !raw.is_ascii() {
        return Err(CmdError::bad(
            "8-bit mailbox name: use modified UTF-7 (RFC 3501 5.1.3) or ENABLE UTF8=ACCEPT",
        ));
    }
    mutf7::decode(raw).map_err(|e| {
        CmdError::No(
            Some("CANNOT"),
            format!("Mailbox name is not valid modified UTF-7: {e}"),
        )
    })
}

/// A LIST reference or pattern: not a mailbox name, so text that is not
/// canonical modified UTF-7 (`&'` in `LIST "" "!#$&'+,-..."`) is matched
/// as it is (it then matches no stored name) instead of being refused.
fn decode_pattern(raw: &str) -> Result<String, CmdError> {
    match decode_mutf7(raw) {
        Err(CmdError::No(..)) => Ok(raw.to_string()),
        other => other,
    }
}

/// The special use CREATE asks for (RFC 6154 §3).
fn special_use(uses: &[String]) -> Result<Option<SpecialUse>, CmdError> {
    let mut found: Option<SpecialUse> = None;
    for attr in uses {
        let Some(use_) = SpecialUse::ALL
            .into_iter()
            .find(|u| u.attribute().eq_ignore_ascii_case(attr))
        else {
            return Err(CmdError::No(
                Some("USEATTR"),
                format!("{attr} is not a special use this server supports"),
            ));
        };
        match found {
            Some(other) if other != use_ => {
                return Err(CmdError::No(
                    Some("USEATTR"),
                    "A mailbox can have only one special use".into(),
                ));
            }
            _ => found = Some(use_),
        }
    }
    Ok(found)
}

/// `* QUOTA "" (STORAGE used limit)`, in units of 1024 octets.
fn quota_line(used: u64, limit: u64) -> String {
    format!(
        "* QUOTA \"\" (STORAGE {} {})\r\n",
        used.div_ceil(1024),
        limit / 1024
    )
}

/// Whether a mailbox below `parent` passes the selection options.
/// One `* LIST`/`* LSUB` line.
fn write_list_line(
    out: &mut Vec<u8>,
    verb: &str,
    attrs: &[String],
    name: &str,
    utf8: bool,
    child_info: bool,
) {
    out.extend_from_slice(format!("* {verb} ").as_bytes());
    flag_list(out, attrs);
    out.extend_from_slice(b" \"/\" ");
    write_mailbox(out, name, utf8);
    if child_info {
        out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    }
    out.extend_from_slice(b"\r\n");
}

/// A descendant of `parent` that meets the selection and that the
/// patterns do not list themselves.
fn has_matching_child(
    entries: &[(&str, Entry<'_>)],
    parent: &str,
    selected: &dyn Fn(&Entry<'_>) -> bool,
    unlisted: &dyn Fn(&str) -> bool,
) -> bool {
    entries.iter().any(|(name, e)| {
        name.strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with(SEPARATOR))
            && selected(e)
            && unlisted(name)
    })
}

/// One name LIST may show: a real mailbox, a superior that only exists
/// because it has children, or a subscribed name without a mailbox.
#[derive(Default)]
struct Entry<'a> {
    info: Option<&'a MailboxInfo>,
    /// Real mailboxes below it.
    children: bool,
    /// Subscribed, but there is no such mailbox.
    orphan: bool,
    /// Some name below it is subscribed (mailbox or not).
    subscribed_below: bool,
}

/// Every mailbox and subscribed name plus implied superiors, sorted
/// (INBOX first).
fn tree<'a>(mailboxes: &'a [MailboxInfo], orphans: &'a [String]) -> Vec<(&'a str, Entry<'a>)> {
    let mut map: BTreeMap<&str, Entry<'_>> = BTreeMap::new();
    for info in mailboxes {
        map.entry(info.name.as_str()).or_default().info = Some(info);
        let mut name = info.name.as_str();
        while let Some((parent, _)) = name.rsplit_once(SEPARATOR) {
            let entry = map.entry(parent).or_default();
            entry.children = true;
            entry.subscribed_below |= info.subscribed;
            name = parent;
        }
    }
    for orphan in orphans {
        let entry = map.entry(orphan.as_str()).or_default();
        if entry.info.is_none() {
            entry.orphan = true;
        }
        let mut name = orphan.as_str();
        while let Some((parent, _)) = name.rsplit_once(SEPARATOR) {
            map.entry(parent).or_default().subscribed_below = true;
            name = parent;
        }
    }
    let mut list: Vec<(&str, Entry<'_>)> = map.into_iter().collect();
    list.sort_by_key(|(name, _)| *name != "INBOX");
    list
}

/// `inbox` and `inbox/...` in a pattern match INBOX (RFC 3501 §5.1).
fn normalize_pattern(pattern: &str) -> String {
    match pattern.get(..5) {
        Some(head)
            if head.eq_ignore_ascii_case("INBOX")
                && matches!(pattern.as_bytes().get(5), None | Some(b'/')) =>
        {
            format!("INBOX{}", pattern.get(5..).unwrap_or_default())
        }
        _ => pattern.to_string(),
    }
}

/// LIST wildcards: `*` matches anything, `%` anything but the separator.
/// Dynamic programming over (pattern prefix, name prefix): linear in the
/// pattern times the name, whatever the number of wildcards.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // reach[j]: the pattern so far matches the first j bytes of the name.
    let mut reach = vec![false; name.len() + 1];
    if let Some(first) = reach.first_mut() {
        *first = true;
    }
    for &pc in pattern {
        let mut next = vec![false; name.len() + 1];
        let mut any = false;
        for (j, slot) in next.iter_mut().enumerate() {
            let here = reach.get(j).copied().unwrap_or(false);
            let prev_byte = j.checked_sub(1).and_then(|k| name.get(k)).copied();
            *slot = match pc {
                b'*' => {
                    any |= here;
                    any
                }
                b'%' => {
                    if prev_byte == Some(b'/') {
                        any = false;
                    }
                    any |= here;
                    any
                }
                c => {
                    prev_byte == Some(c)
                        && j.checked_sub(1)
                            .and_then(|k| reach.get(k))
                            .copied()
                            .unwrap_or(false)
                }
            };
        }
        reach = next;
    }
    reach.last().copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let table = [
            ("*", "INBOX", true),
            ("*", "a/b/c", true),
            ("%", "a/b", false),
            ("%", "Sent", true),
            ("a/%", "a/b", true),
            ("a/%", "a/b/c", false),
            ("a/*", "a/b/c", true),
            ("S*t", "Sent", true),
            ("S%", "Se/nt", false),
            ("INBOX", "INBOX", true),
            ("Trash", "trash", false),
        ];
        for (p, n, want) in table {
            assert_eq!(matches(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
        }
        assert_eq!(normalize_pattern("inbox/*"), "INBOX/*");
        assert_eq!(normalize_pattern("inboxes"), "inboxes");
    }

    #[test]
    fn names_from_legacy_clients() {
        assert_eq!(
            decode_mutf7("~peter/mail/&U,BTFw-/&ZeVnLIqe-")
                .ok()
                .as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(decode_mutf7("&ZeVnLA-*").ok().as_deref(), Some("日本*"));
        assert!(matches!(decode_mutf7("日本語"), Err(CmdError::Bad(_))));
        assert!(matches!(
            decode_mutf7("Tom & Jerry"),
            Err(CmdError::No(Some("CANNOT"), _))
        ));
        assert!(matches!(
            decode_mutf7("&AGE-"),
            Err(CmdError::No(Some("CANNOT"), _))
        ));
    }

    #[test]
    fn create_special_use() {
        let uses = |v: &[&str]| special_use(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(matches!(uses(&[]), Ok(None)));
        assert!(matches!(
            uses(&["\\archive"]),
            Ok(Some(SpecialUse::Archive))
        ));
        assert!(matches!(
            uses(&["\\Sent", "\\sent"]),
            Ok(Some(SpecialUse::Sent))
        ));
        for bad in [
            &["\\All"][..],
            &["\\Flagged"],
            &["\\Foo"],
            &["\\Sent", "\\Trash"],
        ] {
            assert!(
                matches!(uses(bad), Err(CmdError::No(Some("USEATTR"), _))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn implied_superiors() {
        let mk = |name: &str| MailboxInfo {
            id: crate::store::MailboxId(1),
            account: "a".into(),
            name: name.into(),
            uid_validity: 1,
            uid_next: 1,
            highest_modseq: 0,
            special_use: None,
            subscribed: true,
            messages: 0,
            unseen: 0,
            size: 0,
        };
        let boxes = vec![mk("Archive"), mk("INBOX"), mk("a/b/c"), mk("a")];
        let t = tree(&boxes, &[]);
        let names: Vec<(&str, bool, bool)> = t
            .iter()
            .map(|(n, e)| (*n, e.info.is_some(), e.children))
            .collect();
        assert_eq!(
            names,
            vec![
                ("INBOX", true, false),
                ("Archive", true, false),
                ("a", true, true),
                ("a/b", false, true),
                ("a/b/c", true, false)
            ]
        );
    }
}
