//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; CONDSTORE RFC 7162
//! §3.1.4-3.1.5): FLAGS, INTERNALDATE, RFC822.SIZE (exact stored octets),
//! ENVELOPE, BODY/BODYSTRUCTURE, BODY[section]<partial> and BODY.PEEK,
//! RFC822, RFC822.HEADER, RFC822.TEXT, UID, MODSEQ, and BINARY[section],
//! BINARY.PEEK and BINARY.SIZE (RFC 3516: base64 and quoted-printable
//! undone).

use super::message;
use super::proto::date::format_date_time;
use super::proto::response::{flag_list, literal, literal8};
use super::proto::{FetchAtt, SeqSet};
use super::selected::vanished_line;
use super::session::{CmdResult, Done, FLUSH_AT, Session};
use crate::store::{FlagOp, MessageMeta, Uid};

const SEEN: &str = "\\Seen";

impl Session {
    pub(super) async fn fetch(
        &mut self,
        by_uid: bool,
        set: &SeqSet,
        mut items: Vec<FetchAtt>,
        changed_since: Option<u64>,
        vanished: bool,
    ) -> CmdResult {
        let sel = self.selected()?;
        let (id, read_only, in_view) = (sel.id, sel.read_only, sel.uids.len());
        let targets = sel.resolve(set, by_uid);
        // RFC 7162 §3.2.6: UIDs of the set expunged since CHANGEDSINCE.
        if vanished && let Some(since) = changed_since {
            let max_uid = sel.uids.last().map_or(0, |u| u.0).max(sel.next_uid_seen());
            let set = set.clone();
            let gone = self.blocking(move |s| s.vanished_since(id, since)).await?;
            let gone: Vec<Uid> = if set.is_saved() {
                Vec::new()
            } else {
                gone.into_iter()
                    .filter(|u| set.contains(u.0, max_uid))
                    .collect()
            };
            if !gone.is_empty() {
                let line = vanished_line(&gone, true);
                self.out.extend_from_slice(line.as_bytes());
            }
        }
        if by_uid && !items.contains(&FetchAtt::Uid) {
            items.insert(0, FetchAtt::Uid);
        }
        // RFC 7162 §3.1.4: CHANGEDSINCE implies MODSEQ; asking for MODSEQ
        // enables CONDSTORE for the session.
        if changed_since.is_some() && !items.contains(&FetchAtt::ModSeq) {
            items.push(FetchAtt::ModSeq);
        }
        if items.contains(&FetchAtt::ModSeq) {
            self.enable_condstore();
        }
        // A few messages out of many are looked up one by one; otherwise
        // one walk over the mailbox is cheaper.
        let wanted: Option<Vec<Uid>> = (targets.len().saturating_mul(8) < in_view)
            .then(|| targets.iter().map(|&(_, uid)| uid).collect());
        let metas = self
            .blocking(move |s| match wanted {
                Some(uids) => s.messages_by_uid(id, &uids),
                None => s.messages(id),
            })
            .await?;
        // Ascending UIDs from the store: looked up by binary search (a
        // hash map of 100,000 entries cost more than the whole walk).
        let mut metas = ByUid::new(metas);

        // Reading a body section without PEEK sets \Seen (RFC 3501 §6.4.5).
        let sets_seen = !read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    FetchAtt::Rfc822
                        | FetchAtt::Rfc822Text
                        | FetchAtt::Section { peek: false, .. }
                        | FetchAtt::Binary { peek: false, .. }
                )
            });
        let mut seen_now: Vec<Uid> = Vec::new();
        if sets_seen {
            let unseen: Vec<Uid> = targets
                .iter()
                .filter_map(|(_, uid)| metas.get(uid))
                .filter(|m| !has_flag(&m.flags, SEEN))
                .map(|m| m.uid)
                .collect();
            if !unseen.is_empty() {
                let flags = vec![SEEN.to_string()];
                let changed = self
                    .blocking(move |s| s.store_flags(id, &unseen, FlagOp::Add, &flags, None))
                    .await?;
                let sel = self.selected_mut()?;
                for (uid, flags, modseq) in changed {
                    sel.own_change(uid, modseq);
                    if let Some(m) = metas.get_mut(&uid) {
                        m.flags = flags;
                        m.modseq = modseq;
                    }
                    seen_now.push(uid);
                }
            }
        }
        if let Some(sel) = &self.selected {
            sel.mark_recent(metas.0.iter_mut());
        }
        // RFC 7162 §3.2.4: a FETCH that set \Seen reports UID and MODSEQ
        // under QRESYNC.
        if self.qresync && !seen_now.is_empty() {
            for item in [FetchAtt::Uid, FetchAtt::ModSeq] {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
        }
        let needs_message = items.iter().any(|i| {
            matches!(
                i,
                FetchAtt::Envelope
                    | FetchAtt::Preview
                    | FetchAtt::Body
                    | FetchAtt::BodyStructure
                    | FetchAtt::Rfc822
                    | FetchAtt::Rfc822Header
                    | FetchAtt::Rfc822Text
                    | FetchAtt::Section { .. }
                    | FetchAtt::Binary { .. }
                    | FetchAtt::BinarySize(_)
            )
        });
        for (seq, uid) in targets {
            // Expunged by another session and not yet reported: skip it.
            let Some(meta) = metas.get(&uid) else {
                continue;
            };
            if changed_since.is_some_and(|since| meta.modseq <= since) {
                continue;
            }
            let raw = if needs_message {
                match self.blocking(move |s| s.message(id, uid)).await {
                    Ok(raw) => Some(raw),
                    Err(crate::store::StoreError::NoSuchMessage) => continue,
                    Err(e) => return Err(e.into()),
                }
            } else {
                None
            };
            if let Some(raw) = &raw
                && unknown_cte(raw, &items)
            {
                return Err(super::session::CmdError::No(
                    Some("UNKNOWN-CTE"),
                    "Cannot decode the part's content transfer encoding".into(),
                ));
            }
            let with_flags = seen_now.contains(&uid) && !items.contains(&FetchAtt::Flags);
            let mut out = format!("* {seq} FETCH (").into_bytes();
            render(&mut out, &items, meta, raw.as_deref(), with_flags);
            out.extend_from_slice(b")\r\n");
            self.out.extend_from_slice(&out);
            if self.out.len() > FLUSH_AT {
                self.flush().await.map_err(super::session::CmdError::End)?;
            }
        }
        Ok(Done::ok("FETCH completed"))
    }
}

/// Whether a BINARY item names a part whose encoding we cannot undo.
fn unknown_cte(raw: &[u8], items: &[FetchAtt]) -> bool {
    let paths = items.iter().filter_map(|i| match i {
        FetchAtt::Binary { path, .. } | FetchAtt::BinarySize(path) => Some(path),
        _ => None,
    });
    let mut tree = None;
    for path in paths {
        if path.is_empty() {
            continue;
        }
        let tree = tree.get_or_insert_with(|| message::parse(raw));
        if let Some(part) = tree.find(path)
            && decode_binary(part.encoding.as_deref(), b"").is_none()
        {
            return true;
        }
    }
    false
}

/// A part's content with its transfer encoding undone; `None` for an
/// encoding RFC 2045 does not define.
pub(super) fn decode_binary(encoding: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
    let encoding = encoding.unwrap_or("7bit").trim().to_ascii_lowercase();
    match encoding.as_str() {
        "7bit" | "8bit" | "binary" | "" => Some(body.to_vec()),
        "base64" => {
            let text: String = body
                .iter()
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
                .map(|&b| char::from(b))
                .collect();
            crate::auth::base64_decode(&text)
        }
        "quoted-printable" => Some(decode_qp(body)),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` escapes, soft line breaks,
/// trailing whitespace on lines dropped; malformed escapes kept literally.
fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let (content, eol) = match line.strip_suffix(b"\r\n") {
            Some(c) => (c, &b"\r\n"[..]),
            None => match line.strip_suffix(b"\n") {
                Some(c) => (c, &b"\r\n"[..]),
                None => (line, &b""[..]),
            },
        };
        let mut content = content;
        while let [rest @ .., b' ' | b'\t'] = content {
            content = rest;
        }
        let soft = content.last() == Some(&b'=');
        if soft {
            content = content.get(..content.len() - 1).unwrap_or_default();
        }
        let mut j = 0;
        while let Some(&b) = content.get(j) {
            if b == b'='
                && let Some(v) = content
                    .get(j + 1..j + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                j += 3;
                continue;
            }
            out.push(b);
            j += 1;
        }
        if !soft {
            out.extend_from_slice(eol);
        }
    }
    out
}

/// BINARY's data for a path: the whole message for `[]`, else the part's
/// decoded content (empty if the part does not exist).
fn binary_data(tree: Option<&message::Part>, raw: &[u8], path: &[u32]) -> Vec<u8> {
    if path.is_empty() {
        return raw.to_vec();
    }
    tree.and_then(|t| t.find(path))
        .and_then(|part| {
            let body = raw.get(part.body.clone())?;
            if part.children.is_empty() {
                decode_binary(part.encoding.as_deref(), body)
            } else {
                Some(body.to_vec())
            }
        })
        .unwrap_or_default()
}

fn path_spec(path: &[u32]) -> String {
    path.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn has_flag(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// The data items of one message's FETCH response.
fn render(
    out: &mut Vec<u8>,
    items: &[FetchAtt],
    meta: &MessageMeta,
    raw: Option<&[u8]>,
    with_flags: bool,
) {
    let raw_bytes = raw.unwrap_or_default();
    let tree = raw.map(message::parse);
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b' ');
        }
        first = false;
    };
    if with_flags {
        sep(out);
        out.extend_from_slice(b"FLAGS ");
        flag_list(out, &meta.flags);
    }
    for item in items {
        sep(out);
        match item {
            FetchAtt::Uid => out.extend_from_slice(format!("UID {}", meta.uid.0).as_bytes()),
            FetchAtt::Flags => {
                out.extend_from_slice(b"FLAGS ");
                flag_list(out, &meta.flags);
            }
            FetchAtt::InternalDate => out.extend_from_slice(
                format!("INTERNALDATE \"{}\"", format_date_time(meta.internal_date)).as_bytes(),
            ),
            FetchAtt::Rfc822Size => {
                out.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes())
            }
            FetchAtt::ModSeq => {
                out.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes())
            }
            FetchAtt::EmailId => out.extend_from_slice(
                format!("EMAILID ({})", super::proto::email_object_id(meta.email_id)).as_bytes(),
            ),
            FetchAtt::SaveDate => match meta.save_date {
                Some(date) => out.extend_from_slice(
                    format!("SAVEDATE \"{}\"", format_date_time(date)).as_bytes(),
                ),
                None => out.extend_from_slice(b"SAVEDATE NIL"),
            },
            // RFC 8474 §5.2: NIL when the server does not thread messages.
            FetchAtt::ThreadId => out.extend_from_slice(b"THREADID NIL"),
            FetchAtt::Preview => {
                out.extend_from_slice(b"PREVIEW ");
                let text = message::preview(raw_bytes);
                super::proto::response::string(out, text.as_bytes());
            }
            FetchAtt::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                let header = tree
                    .as_ref()
                    .and_then(|t| raw_bytes.get(t.header.clone()))
                    .unwrap_or_default();
                message::write_envelope(header, out);
            }
            FetchAtt::Body | FetchAtt::BodyStructure => {
                let extended = *item == FetchAtt::BodyStructure;
                out.extend_from_slice(if extended {
                    b"BODYSTRUCTURE "
                } else {
                    b"BODY "
                });
                match &tree {
                    Some(t) => t.write_structure(raw_bytes, out, extended),
                    None => out.extend_from_slice(b"NIL"),
                }
            }
            FetchAtt::Rfc822 => {
                out.extend_from_slice(b"RFC822 ");
                literal(out, raw_bytes);
            }
            FetchAtt::Rfc822Header => {
                out.extend_from_slice(b"RFC822.HEADER ");
                let header = tree
                    .as_ref()
                    .and_then(|t| raw_bytes.get(t.header.clone()))
                    .unwrap_or_default();
                literal(out, header);
            }
            FetchAtt::Rfc822Text => {
                out.extend_from_slice(b"RFC822.TEXT ");
                let body = tree
                    .as_ref()
                    .and_then(|t| raw_bytes.get(t.body.clone()))
                    .unwrap_or_default();
                literal(out, body);
            }
            FetchAtt::BinarySize(path) => {
                let data = binary_data(tree.as_ref(), raw_bytes, path);
                out.extend_from_slice(
                    format!("BINARY.SIZE[{}] {}", path_spec(path), data.len()).as_bytes(),
                );
            }
            FetchAtt::Binary { path, partial, .. } => {
                let data = binary_data(tree.as_ref(), raw_bytes, path);
                out.extend_from_slice(format!("BINARY[{}]", path_spec(path)).as_bytes());
                let data = partial_of(out, &data, *partial);
                out.push(b' ');
                if data.contains(&0) {
                    literal8(out, data);
                } else {
                    literal(out, data);
                }
            }
            FetchAtt::Section {
                section, partial, ..
            } => {
                let data = tree
                    .as_ref()
                    .and_then(|t| t.section(raw_bytes, section))
                    .unwrap_or_default();
                out.extend_from_slice(format!("BODY[{}]", section.spec()).as_bytes());
                let data = partial_of(out, &data, *partial);
                out.push(b' ');
                literal(out, data);
            }
        }
    }
}

/// The `<offset.length>` part of a section (RFC 3501 §6.4.5): writes the
/// `<offset>` origin to the response and returns the bytes it selects,
/// clamped to the data (never out of bounds).
fn partial_of<'a>(out: &mut Vec<u8>, data: &'a [u8], partial: Option<(u32, u32)>) -> &'a [u8] {
    let Some((offset, len)) = partial else {
        return data;
    };
    out.extend_from_slice(format!("<{offset}>").as_bytes());
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    data.get(start.min(data.len())..end.min(data.len()))
        .unwrap_or_default()
}

/// Message metadata in ascending UID order, as the store lists it.
/// FETCH asks in ascending order too, so each lookup first tries the
/// entry after the previous one.
struct ByUid(Vec<MessageMeta>, std::cell::Cell<usize>);

impl ByUid {
    fn new(metas: Vec<MessageMeta>) -> Self {
        ByUid(metas, std::cell::Cell::new(0))
    }

    fn position(&self, uid: &Uid) -> Option<usize> {
        let next = self.1.get();
        let found = match self.0.get(next) {
            Some(m) if m.uid == *uid => Some(next),
            _ => self.0.binary_search_by_key(uid, |m| m.uid).ok(),
        }?;
        self.1.set(found + 1);
        Some(found)
    }

    fn get(&self, uid: &Uid) -> Option<&MessageMeta> {
        self.0.get(self.position(uid)?)
    }

    fn get_mut(&mut self, uid: &Uid) -> Option<&mut MessageMeta> {
        let i = self.position(uid)?;
        self.0.get_mut(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_decoding() {
        assert_eq!(
            decode_binary(
                Some("Quoted-Printable"),
                b"caf=C3=A9 =\r\nau lait  \r\nx=3D1=\r\n"
            )
            .unwrap(),
            "café au lait\r\nx=1".as_bytes()
        );
        assert_eq!(
            decode_binary(Some("base64"), b"AAEC\r\n/w==\r\n").unwrap(),
            vec![0, 1, 2, 255]
        );
        assert_eq!(decode_binary(None, b"plain").unwrap(), b"plain");
        assert!(decode_binary(Some("x-uuencode"), b"").is_none());
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n";
        let meta = MessageMeta {
            uid: Uid(1),
            size: raw.len() as u64,
            internal_date: 0,
            flags: vec![],
            modseq: 1,
            email_id: 1,
            save_date: None,
        };
        let items = vec![
            FetchAtt::BinarySize(vec![2]),
            FetchAtt::Binary {
                peek: true,
                path: vec![2],
                partial: None,
            },
            FetchAtt::Binary {
                peek: true,
                path: vec![1],
                partial: Some((1, 5)),
            },
        ];
        let mut out = Vec::new();
        render(&mut out, &items, &meta, Some(raw), false);
        assert_eq!(
            out,
            b"BINARY.SIZE[2] 3 BINARY[2] ~{3}\r\n\x00\x01\x02 BINARY[1]<1> {1}\r\ni"
        );
    }
    use crate::imap::proto::{Section, SectionText};

    #[test]
    fn render_items() {
        let raw = b"Subject: hi\r\nFrom: a@b.c\r\n\r\nhello world\r\n";
        let meta = MessageMeta {
            uid: Uid(7),
            size: raw.len() as u64,
            internal_date: 0,
            flags: vec!["\\Seen".into()],
            modseq: 3,
            email_id: 1,
            save_date: None,
        };
        let items = vec![
            FetchAtt::Uid,
            FetchAtt::Flags,
            FetchAtt::Rfc822Size,
            FetchAtt::InternalDate,
            FetchAtt::ModSeq,
            FetchAtt::Section {
                peek: true,
                section: Section {
                    path: vec![],
                    text: Some(SectionText::HeaderFields {
                        not: false,
                        fields: vec!["SUBJECT".into()],
                    }),
                },
                partial: None,
            },
            FetchAtt::Section {
                peek: false,
                section: Section::default(),
                partial: Some((6, 100)),
            },
        ];
        let mut out = Vec::new();
        render(&mut out, &items, &meta, Some(raw), false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "UID 7 FLAGS (\\Seen) RFC822.SIZE 41 INTERNALDATE \"01-Jan-1970 00:00:00 +0000\" MODSEQ (3) \
BODY[HEADER.FIELDS (SUBJECT)] {15}\r\nSubject: hi\r\n\r\n BODY[]<6> {35}\r\nt: hi\r\nFrom: a@b.c\r\n\r\nhello world\r\n"
        );
    }
}
