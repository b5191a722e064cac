//! Byte encoding of the records kept as redb values.
//!
//! Hand-written rather than serde so the on-disk format is explicit and
//! versioned: every record starts with a version byte, integers are
//! little-endian, strings and byte strings are u32-length-prefixed.
//! Decoding never panics: short, oversized or malformed input is
//! [`StoreError::Corrupt`].

use super::{AccountInfo, MailboxId, MailboxInfo, MessageMeta, SpecialUse, StoreError, Uid};

const VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountRecord {
    pub password_hash: Option<String>,
    pub quota_bytes: u64,
    pub used_bytes: u64,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MailboxRecord {
    pub account: String,
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
    pub messages: u32,
    pub unseen: u32,
    pub size: u64,
    /// Messages from this UID on have not been announced to any IMAP
    /// session yet: they are `\Recent` for the next one to select the
    /// mailbox (RFC 3501 §2.3.2). Absent in records written before it
    /// existed, which then count nothing as recent.
    pub first_recent_uid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MessageRecord {
    pub blob: u64,
    /// prefix + blob octets.
    pub size: u64,
    pub internal_date: i64,
    pub modseq: u64,
    pub flags: Vec<String>,
    /// Per-recipient header lines, prepended to the blob when read.
    pub prefix: Vec<u8>,
    /// When the message was saved into this mailbox (RFC 8514 SAVEDATE);
    /// `None` for records written before it was kept.
    pub save_date: Option<i64>,
}

impl AccountRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.opt_str(self.password_hash.as_deref());
        w.u64(self.quota_bytes);
        w.u64(self.used_bytes);
        w.i64(self.created);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "account")?;
        let rec = AccountRecord {
            password_hash: r.opt_str()?,
            quota_bytes: r.u64()?,
            used_bytes: r.u64()?,
            created: r.i64()?,
        };
        r.finish()?;
        Ok(rec)
    }

    pub fn info(&self, name: &str) -> AccountInfo {
        AccountInfo {
            name: name.to_owned(),
            password_hash: self.password_hash.clone(),
            quota_bytes: self.quota_bytes,
            used_bytes: self.used_bytes,
            created: self.created,
        }
    }
}

impl MailboxRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.str(&self.account);
        w.str(&self.name);
        w.u32(self.uid_validity);
        w.u32(self.uid_next);
        w.u64(self.highest_modseq);
        w.u8(special_use_code(self.special_use));
        w.u8(u8::from(self.subscribed));
        w.u32(self.messages);
        w.u32(self.unseen);
        w.u64(self.size);
        w.u32(self.first_recent_uid);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "mailbox")?;
        let mut rec = MailboxRecord {
            account: r.str()?,
            name: r.str()?,
            uid_validity: r.u32()?,
            uid_next: r.u32()?,
            highest_modseq: r.u64()?,
            special_use: special_use_from_code(r.u8()?).ok_or_else(|| r.corrupt())?,
            subscribed: r.bool()?,
            messages: r.u32()?,
            unseen: r.u32()?,
            size: r.u64()?,
            first_recent_uid: 0,
        };
        rec.first_recent_uid = if r.remaining() == 0 {
            rec.uid_next
        } else {
            r.u32()?
        };
        r.finish()?;
        Ok(rec)
    }

    pub fn info(&self, id: MailboxId) -> MailboxInfo {
        MailboxInfo {
            id,
            account: self.account.clone(),
            name: self.name.clone(),
            uid_validity: self.uid_validity,
            uid_next: self.uid_next,
            highest_modseq: self.highest_modseq,
            special_use: self.special_use,
            subscribed: self.subscribed,
            messages: self.messages,
            unseen: self.unseen,
            size: self.size,
        }
    }
}

impl MessageRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.blob);
        w.u64(self.size);
        w.i64(self.internal_date);
        w.u64(self.modseq);
        w.len(self.flags.len());
        for flag in &self.flags {
            w.str(flag);
        }
        w.bytes(&self.prefix);
        // A trailing field: older records end before it.
        if let Some(date) = self.save_date {
            w.i64(date);
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let (head, mut r) = MessageHead::read(bytes)?;
        let flags = head.flags(&mut r)?;
        let prefix = r.bytes()?.to_vec();
        let save_date = read_save_date(&mut r)?;
        r.finish()?;
        Ok(MessageRecord {
            blob: head.blob,
            size: head.size,
            internal_date: head.internal_date,
            modseq: head.modseq,
            flags,
            prefix,
            save_date,
        })
    }

    /// The [`MessageMeta`] of an encoded record, without copying the
    /// per-recipient prefix (listing a mailbox needs only this).
    pub fn decode_meta(bytes: &[u8], uid: Uid) -> Result<MessageMeta, StoreError> {
        let (head, mut r) = MessageHead::read(bytes)?;
        let flags = head.flags(&mut r)?;
        let prefix = r.bytes()?;
        let save_date = read_save_date(&mut r)?;
        r.finish()?;
        Ok(MessageMeta {
            uid,
            size: head.size,
            internal_date: head.internal_date,
            flags,
            modseq: head.modseq,
            email_id: email_id(head.blob, prefix),
            save_date,
        })
    }

    /// Calls `visit` with each flag of an encoded record, allocating
    /// nothing; returns the record's modseq. SELECT uses it to find the
    /// first unseen message and the keywords in use.
    pub fn visit_flags(bytes: &[u8], mut visit: impl FnMut(&str)) -> Result<u64, StoreError> {
        let (head, mut r) = MessageHead::read(bytes)?;
        for _ in 0..head.flag_count {
            let flag = r.bytes()?;
            visit(std::str::from_utf8(flag).map_err(|_| r.corrupt())?);
        }
        Ok(head.modseq)
    }

    #[cfg(test)]
    pub fn meta(&self, uid: Uid) -> MessageMeta {
        MessageMeta {
            uid,
            size: self.size,
            internal_date: self.internal_date,
            flags: self.flags.clone(),
            modseq: self.modseq,
            email_id: email_id(self.blob, &self.prefix),
            save_date: self.save_date,
        }
    }

    /// Size of the shared blob file this message points at.
    pub fn blob_size(&self) -> u64 {
        self.size.saturating_sub(self.prefix.len() as u64)
    }
}

/// The fixed-size fields that start a message record.
struct MessageHead {
    blob: u64,
    size: u64,
    internal_date: i64,
    modseq: u64,
    flag_count: u32,
}

impl MessageHead {
    /// The head, and a reader positioned at the flags.
    fn read(bytes: &[u8]) -> Result<(MessageHead, Reader<'_>), StoreError> {
        let mut r = Reader::new(bytes, "message")?;
        let head = MessageHead {
            blob: r.u64()?,
            size: r.u64()?,
            internal_date: r.i64()?,
            modseq: r.u64()?,
            flag_count: r.u32()?,
        };
        Ok((head, r))
    }

    fn flags(&self, r: &mut Reader<'_>) -> Result<Vec<String>, StoreError> {
        // Cap the pre-allocation by what the input could hold (4 bytes per
        // string at least) so a corrupt count cannot allocate gigabytes.
        let mut flags = Vec::with_capacity((self.flag_count as usize).min(r.remaining() / 4));
        for _ in 0..self.flag_count {
            flags.push(r.str()?);
        }
        Ok(flags)
    }
}

fn special_use_code(use_: Option<SpecialUse>) -> u8 {
    match use_ {
        None => 0,
        Some(SpecialUse::Drafts) => 1,
        Some(SpecialUse::Sent) => 2,
        Some(SpecialUse::Trash) => 3,
        Some(SpecialUse::Junk) => 4,
        Some(SpecialUse::Archive) => 5,
    }
}

/// `None` for an unknown code; `Some(None)` for "no special use".
fn special_use_from_code(code: u8) -> Option<Option<SpecialUse>> {
    match code {
        0 => Some(None),
        1 => Some(Some(SpecialUse::Drafts)),
        2 => Some(Some(SpecialUse::Sent)),
        3 => Some(Some(SpecialUse::Trash)),
        4 => Some(Some(SpecialUse::Junk)),
        5 => Some(Some(SpecialUse::Archive)),
        _ => None,
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Writer(vec![VERSION])
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Lengths are u32 on disk; inputs are bounded far below that (names
    /// ≤ 255 bytes, prefixes a few header lines), so saturating is only a
    /// guard, and the reader would then report the record corrupt.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks the version byte; `what` names the record in errors.
    fn new(bytes: &'a [u8], what: &'static str) -> Result<Self, StoreError> {
        let mut r = Reader { buf: bytes, what };
        match r.u8()? {
            VERSION => Ok(r),
            v => Err(StoreError::Corrupt(format!(
                "{what} record has unknown version {v}"
            ))),
        }
    }

    fn corrupt(&self) -> StoreError {
        StoreError::Corrupt(format!("malformed {} record", self.what))
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let (head, rest) = self.buf.split_at_checked(n).ok_or_else(|| self.corrupt())?;
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or_else(|| self.corrupt())?;
        self.buf = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn bool(&mut self) -> Result<bool, StoreError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.corrupt()),
        }
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<String, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| self.corrupt())
    }
    fn opt_str(&mut self) -> Result<Option<String>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(self.corrupt()),
        }
    }
    /// Trailing bytes mean the record is not what we think it is.
    fn finish(self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt())
        }
    }
}

/// A message's content identity: the body's blob, and the per-recipient
/// prefix hashed in (two recipients' copies of one delivery differ in
/// `Delivered-To:`). A blob id alone when there is no prefix (APPEND);
/// hashed values have the top bit set, so the two kinds never meet.
pub fn email_id(blob: u64, prefix: &[u8]) -> u64 {
    if prefix.is_empty() {
        return blob;
    }
    // FNV-1a, 64 bits.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in blob.to_le_bytes().iter().chain(prefix) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash | (1 << 63)
}

/// The optional trailing save date of a message record.
fn read_save_date(r: &mut Reader<'_>) -> Result<Option<i64>, StoreError> {
    if r.remaining() == 0 {
        Ok(None)
    } else {
        Ok(Some(r.i64()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> MessageRecord {
        MessageRecord {
            blob: 7,
            size: 1234,
            internal_date: -5,
            modseq: 99,
            flags: vec!["\\Seen".into(), "$Junk".into()],
            prefix: b"Return-Path: <a@b>\r\n".to_vec(),
            save_date: Some(1_700_000_000),
        }
    }

    fn mailbox() -> MailboxRecord {
        MailboxRecord {
            account: "alice".into(),
            name: "INBOX".into(),
            uid_validity: 1,
            uid_next: 2,
            highest_modseq: 3,
            special_use: Some(SpecialUse::Junk),
            subscribed: true,
            messages: 4,
            unseen: 5,
            size: 6,
            first_recent_uid: 2,
        }
    }

    #[test]
    fn records_round_trip() {
        let m = message();
        assert_eq!(MessageRecord::decode(&m.encode()).unwrap(), m);
        let mb = mailbox();
        assert_eq!(MailboxRecord::decode(&mb.encode()).unwrap(), mb);
        let a = AccountRecord {
            password_hash: Some("$argon2id$x".into()),
            quota_bytes: 1,
            used_bytes: 2,
            created: 3,
        };
        assert_eq!(AccountRecord::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn every_truncation_is_corrupt_not_a_panic() {
        let bytes = message().encode();
        // A record that ends before the save date is a legacy one.
        let legacy = bytes.len() - 8;
        for n in (0..bytes.len()).filter(|&n| n != legacy) {
            assert!(matches!(
                MessageRecord::decode(&bytes[..n]),
                Err(StoreError::Corrupt(_))
            ));
        }
        let old = MessageRecord::decode(&bytes[..legacy]).unwrap();
        assert_eq!(old.save_date, None);
        let bytes = mailbox().encode();
        // A record that ends where records ended before `first_recent_uid`
        // is a legacy one, not a truncated one.
        let legacy = bytes.len() - 4;
        for n in (0..bytes.len()).filter(|&n| n != legacy) {
            assert!(MailboxRecord::decode(&bytes[..n]).is_err(), "{n}");
        }
        let old = MailboxRecord::decode(&bytes[..legacy]).unwrap();
        assert_eq!(old.first_recent_uid, old.uid_next, "nothing is recent");
    }

    #[test]
    fn meta_and_flags_without_the_full_record() {
        let m = message();
        let bytes = m.encode();
        assert_eq!(
            MessageRecord::decode_meta(&bytes, Uid(3)).unwrap(),
            m.meta(Uid(3))
        );
        let mut seen = Vec::new();
        let modseq = MessageRecord::visit_flags(&bytes, |f| seen.push(f.to_owned())).unwrap();
        assert_eq!((modseq, seen), (99, m.flags.clone()));
        let legacy = bytes.len() - 8;
        for n in (0..bytes.len()).filter(|&n| n != legacy) {
            assert!(MessageRecord::decode_meta(&bytes[..n], Uid(3)).is_err());
        }
    }

    #[test]
    fn garbage_is_corrupt() {
        let mut bytes = message().encode();
        bytes.push(0);
        assert!(MessageRecord::decode(&bytes).is_err(), "trailing byte");
        assert!(MessageRecord::decode(&[9, 1, 2]).is_err(), "bad version");
        // A flag count of u32::MAX must not try to allocate or loop forever.
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&[0; 32]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(MessageRecord::decode(&huge).is_err());
        let mut bad_use = mailbox().encode();
        let pos = 1 + 4 + 5 + 4 + 5 + 4 + 4 + 8;
        bad_use[pos] = 42;
        assert!(MailboxRecord::decode(&bad_use).is_err());
    }
}
