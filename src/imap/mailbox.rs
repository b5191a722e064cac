//! Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
//! LIST/LSUB (RFC 3501 §6.3; CHILDREN RFC 3348; SPECIAL-USE RFC 6154),
//! STATUS (with STATUS=SIZE, RFC 8438) and APPEND (UIDPLUS, RFC 4315).
//!
//! Names are used as the client sends them (modified UTF-7 stays
//! modified UTF-7); the hierarchy separator is `/`, the store's.

use super::proto::StatusItem;
use super::proto::response::{flag_list, mailbox as write_mailbox};
use super::session::{CmdError, CmdResult, Done, Session};
use crate::store::{MailboxInfo, SEPARATOR, StoreError};
use std::collections::BTreeMap;

impl Session {
    pub(super) async fn create(&mut self, name: &str) -> CmdResult {
        let account = self.account()?;
        let name = name.trim_end_matches(SEPARATOR).to_string();
        if name.is_empty() || name.eq_ignore_ascii_case("INBOX") {
            return Err(CmdError::No(Some("ALREADYEXISTS"), "Mailbox exists".into()));
        }
        self.blocking(move |s| {
            // RFC 3501 §6.3.3: create the missing superiors too.
            let parts: Vec<&str> = name.split(SEPARATOR).collect();
            for depth in 1..parts.len() {
                let parent = parts.get(..depth).unwrap_or_default().join("/");
                match s.create_mailbox(&account, &parent, None) {
                    Ok(_) | Err(StoreError::MailboxExists) => {}
                    Err(e) => return Err(e),
                }
            }
            s.create_mailbox(&account, &name, None).map(|_| ())
        })
        .await?;
        Ok(Done::ok("CREATE completed"))
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

    /// LIST and LSUB.
    pub(super) async fn list(
        &mut self,
        reference: &str,
        pattern: &str,
        subscribed_only: bool,
    ) -> CmdResult {
        let account = self.account()?;
        let verb = if subscribed_only { "LSUB" } else { "LIST" };
        if pattern.is_empty() {
            // RFC 3501 §6.3.8: the hierarchy delimiter and root.
            self.untagged(&format!("{verb} (\\Noselect) \"/\" \"\""));
            return Ok(Done::ok(format!("{verb} completed")));
        }
        let full = normalize_pattern(&format!("{reference}{pattern}"));
        let mailboxes = self.blocking(move |s| s.mailboxes(&account)).await?;
        let mut out = Vec::new();
        for (name, entry) in tree(&mailboxes) {
            if !matches(full.as_bytes(), name.as_bytes()) {
                continue;
            }
            let mut attrs: Vec<String> = Vec::new();
            match entry.info {
                Some(info) => {
                    if subscribed_only && !info.subscribed {
                        continue;
                    }
                    if let Some(special) = info.special_use
                        && !subscribed_only
                    {
                        attrs.push(special.attribute().into());
                    }
                }
                None => {
                    if subscribed_only {
                        continue;
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
            out.extend_from_slice(format!("* {verb} ").as_bytes());
            flag_list(&mut out, &attrs);
            out.extend_from_slice(b" \"/\" ");
            write_mailbox(&mut out, name);
            out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(&out);
        Ok(Done::ok(format!("{verb} completed")))
    }

    pub(super) async fn status(&mut self, name: &str, items: &[StatusItem]) -> CmdResult {
        let account = self.account()?;
        let mbox = name.to_string();
        let Some(info) = self.blocking(move |s| s.mailbox(&account, &mbox)).await? else {
            return Err(CmdError::No(Some("NONEXISTENT"), "No such mailbox".into()));
        };
        let values: Vec<String> = items
            .iter()
            .map(|item| {
                let value = match item {
                    StatusItem::Messages => u64::from(info.messages),
                    StatusItem::Recent => 0,
                    StatusItem::UidNext => u64::from(info.uid_next),
                    StatusItem::UidValidity => u64::from(info.uid_validity),
                    StatusItem::Unseen => u64::from(info.unseen),
                    StatusItem::HighestModSeq => info.highest_modseq.max(1),
                    StatusItem::Size => info.size,
                };
                format!("{} {value}", item.name())
            })
            .collect();
        let mut out = b"* STATUS ".to_vec();
        write_mailbox(&mut out, &info.name);
        out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        self.out.extend_from_slice(&out);
        Ok(Done::ok("STATUS completed"))
    }

    pub(super) async fn append(
        &mut self,
        name: &str,
        flags: &[String],
        date: Option<i64>,
        message: &[u8],
    ) -> CmdResult {
        let account = self.account()?;
        if message.is_empty() {
            return Err(CmdError::no("Empty message"));
        }
        let flags: Vec<String> = flags
            .iter()
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .cloned()
            .collect();
        let date = date.unwrap_or_else(crate::rfc5322::now_unix);
        let (mbox, message) = (name.to_string(), message.to_vec());
        let result = self
            .blocking(move |s| s.append(&account, &mbox, &message, &flags, date))
            .await;
        match result {
            Ok((_, uid_validity, uid)) => Ok(Done::with_code(
                format!("APPENDUID {uid_validity} {}", uid.0),
                "APPEND completed",
            )),
            Err(StoreError::NoSuchMailbox) => {
                Err(CmdError::No(Some("TRYCREATE"), "No such mailbox".into()))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// One name LIST may show: a real mailbox, or a superior that only
/// exists because it has children.
struct Entry<'a> {
    info: Option<&'a MailboxInfo>,
    children: bool,
}

/// Every mailbox plus implied superiors, sorted (INBOX first).
fn tree(mailboxes: &[MailboxInfo]) -> Vec<(&str, Entry<'_>)> {
    let mut map: BTreeMap<&str, Entry<'_>> = BTreeMap::new();
    for info in mailboxes {
        map.entry(info.name.as_str())
            .or_insert(Entry {
                info: None,
                children: false,
            })
            .info = Some(info);
        let mut name = info.name.as_str();
        while let Some((parent, _)) = name.rsplit_once(SEPARATOR) {
            map.entry(parent)
                .or_insert(Entry {
                    info: None,
                    children: false,
                })
                .children = true;
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
        let t = tree(&boxes);
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
