//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; CONDSTORE RFC 7162
//! §3.1.4-3.1.5): FLAGS, INTERNALDATE, RFC822.SIZE (exact stored octets),
//! ENVELOPE, BODY/BODYSTRUCTURE, BODY[section]<partial> and BODY.PEEK,
//! RFC822, RFC822.HEADER, RFC822.TEXT, UID, MODSEQ.

use super::message;
use super::proto::date::format_date_time;
use super::proto::response::{flag_list, literal};
use super::proto::{FetchAtt, SeqSet};
use super::session::{CmdResult, Done, FLUSH_AT, Session};
use crate::store::{FlagOp, MessageMeta, Uid};
use std::collections::HashMap;

const SEEN: &str = "\\Seen";

impl Session {
    pub(super) async fn fetch(
        &mut self,
        by_uid: bool,
        set: &SeqSet,
        mut items: Vec<FetchAtt>,
        changed_since: Option<u64>,
    ) -> CmdResult {
        let sel = self.selected()?;
        let (id, read_only) = (sel.id, sel.read_only);
        let targets = sel.resolve(set, by_uid);
        if by_uid && !items.contains(&FetchAtt::Uid) {
            items.insert(0, FetchAtt::Uid);
        }
        // RFC 7162 §3.1.4: CHANGEDSINCE implies MODSEQ; asking for MODSEQ
        // enables CONDSTORE for the session.
        if changed_since.is_some() && !items.contains(&FetchAtt::ModSeq) {
            items.push(FetchAtt::ModSeq);
        }
        if items.contains(&FetchAtt::ModSeq) {
            self.condstore = true;
        }
        let metas = self.blocking(move |s| s.messages(id)).await?;
        let mut metas: HashMap<Uid, MessageMeta> = metas.into_iter().map(|m| (m.uid, m)).collect();

        // Reading a body section without PEEK sets \Seen (RFC 3501 §6.4.5).
        let sets_seen = !read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    FetchAtt::Rfc822 | FetchAtt::Rfc822Text | FetchAtt::Section { peek: false, .. }
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
        let needs_message = items.iter().any(|i| {
            matches!(
                i,
                FetchAtt::Envelope
                    | FetchAtt::Body
                    | FetchAtt::BodyStructure
                    | FetchAtt::Rfc822
                    | FetchAtt::Rfc822Header
                    | FetchAtt::Rfc822Text
                    | FetchAtt::Section { .. }
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
            FetchAtt::Section {
                section, partial, ..
            } => {
                let data = tree
                    .as_ref()
                    .and_then(|t| t.section(raw_bytes, section))
                    .unwrap_or_default();
                out.extend_from_slice(format!("BODY[{}]", section.spec()).as_bytes());
                let data: &[u8] = match partial {
                    Some((offset, len)) => {
                        out.extend_from_slice(format!("<{offset}>").as_bytes());
                        let start = usize::try_from(*offset).unwrap_or(usize::MAX);
                        let end = start.saturating_add(usize::try_from(*len).unwrap_or(usize::MAX));
                        data.get(start.min(data.len())..end.min(data.len()))
                            .unwrap_or_default()
                    }
                    None => &data,
                };
                out.push(b' ');
                literal(out, data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
