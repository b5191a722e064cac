//! SEARCH and UID SEARCH (RFC 3501 §6.4.4) with every RFC 3501 key, plus
//! MODSEQ (RFC 7162 §3.1.5), OLDER/YOUNGER (WITHIN, RFC 5032), ESEARCH
//! return options (RFC 4731) and the saved result `$` (SEARCHRES,
//! RFC 5182). TEXT and BODY match the decoded text
//! (transfer encoding and charset undone by mail-parser),
//! case-insensitively. The whole evaluation runs on a blocking thread,
//! loading a message only when a key needs its content.
//!
//! SORT and THREAD (RFC 5256) run the same evaluation, reading the header
//! fields their criteria need from each match in the same pass, then hand
//! the result to the sans-IO `sort` and `thread` modules. Like SEARCH,
//! their non-UID forms never cause an EXPUNGE response.

use super::message;
use super::proto::{SearchKey, SearchReturn, SeqSet, SortCriterion, ThreadAlgorithm};
use super::selected::RECENT;
use super::session::{CmdError, CmdResult, Done, Session};
use super::sort::{self, Fields, Needs};
use super::thread;
use crate::store::{MailStore, MailboxId, MessageMeta, StoreError, Uid};
use std::collections::{HashMap, HashSet};

impl Session {
    pub(super) async fn search(
        &mut self,
        tag: &str,
        by_uid: bool,
        key: &SearchKey,
        ret: Option<&[SearchReturn]>,
    ) -> CmdResult {
        let saves = ret.is_some_and(|r| r.contains(&SearchReturn::Save));
        let result = self.search_inner(tag, by_uid, key, ret).await;
        if saves
            && result.is_err()
            && let Some(sel) = self.selected.as_mut()
        {
            // RFC 5182 §2.1: a failed SEARCH ... SAVE empties `$`.
            sel.saved.clear();
        }
        result
    }

    async fn search_inner(
        &mut self,
        tag: &str,
        by_uid: bool,
        key: &SearchKey,
        ret: Option<&[SearchReturn]>,
    ) -> CmdResult {
        let sel = self.selected()?;
        let id = sel.id;
        let view = sel.uids.clone();
        let saved: HashSet<Uid> = sel.saved.iter().copied().collect();
        let recent = sel.recent.clone();
        let key = key.clone();
        let uses_modseq = mentions_modseq(&key);
        let (hits, modseqs) = self
            .blocking(move |s| {
                let metas = metas_with_recent(s, id, &recent)?;
                let (hits, max) = evaluate_all(s, id, &view, &metas, &key, &saved, &|_| (), false)?;
                let hits: Vec<(u32, Uid)> =
                    hits.into_iter().map(|(seq, uid, ())| (seq, uid)).collect();
                let of = |hit: Option<&(u32, Uid)>| {
                    hit.and_then(|(_, uid)| metas.get(uid))
                        .map_or(0, |m| m.modseq)
                };
                let modseqs = HitModseqs {
                    all: max,
                    first: of(hits.first()),
                    last: of(hits.last()),
                };
                Ok((hits, modseqs))
            })
            .await?;
        if uses_modseq {
            self.enable_condstore();
        }
        // IMAP4rev2 has no SEARCH response: ESEARCH with ALL by default
        // (RFC 9051 §6.4.4).
        let ret = ret.or(self.rev2.then_some(&[SearchReturn::All][..]));
        if let Some(ret) = ret {
            self.esearch(tag, by_uid, &hits, ret, uses_modseq.then_some(modseqs))?;
            return Ok(Done::ok("SEARCH completed"));
        }
        let mut line = String::from("SEARCH");
        for (seq, uid) in &hits {
            line.push(' ');
            line.push_str(&if by_uid { uid.0 } else { *seq }.to_string());
        }
        if uses_modseq && !hits.is_empty() {
            line.push_str(&format!(" (MODSEQ {})", modseqs.all));
        }
        self.untagged(&line);
        Ok(Done::ok("SEARCH completed"))
    }
}

impl Session {
    /// SORT and UID SORT (RFC 5256 §3): `* SORT` with the matches in
    /// order, and the highest modseq when the key used MODSEQ (RFC 7162
    /// §3.1.5).
    pub(super) async fn sort(
        &mut self,
        tag: &str,
        by_uid: bool,
        criteria: &[SortCriterion],
        key: &SearchKey,
        ret: Option<&[SearchReturn]>,
    ) -> CmdResult {
        let criteria = criteria.to_vec();
        let uses_modseq = mentions_modseq(key);
        let (numbers, max_modseq) = self
            .matching(key, Needs::for_sort(&criteria), move |mut hits| {
                sort::sort(&mut hits, &criteria);
                hits.iter()
                    .map(|f| if by_uid { f.uid } else { f.seq })
                    .collect::<Vec<u32>>()
            })
            .await?;
        if let Some(ret) = ret {
            let line = esort(
                tag,
                by_uid,
                &numbers,
                ret,
                uses_modseq.then_some(max_modseq),
            );
            self.out.extend_from_slice(line.as_bytes());
            return Ok(Done::ok("SORT completed"));
        }
        let mut line = String::from("SORT");
        for n in &numbers {
            line.push(' ');
            line.push_str(&n.to_string());
        }
        if uses_modseq && !numbers.is_empty() {
            line.push_str(&format!(" (MODSEQ {})", max_modseq));
        }
        self.untagged(&line);
        Ok(Done::ok("SORT completed"))
    }

    /// THREAD and UID THREAD (RFC 5256 §4): `* THREAD` with one
    /// parenthesised list per thread.
    pub(super) async fn thread(
        &mut self,
        by_uid: bool,
        algorithm: ThreadAlgorithm,
        key: &SearchKey,
    ) -> CmdResult {
        let references = algorithm == ThreadAlgorithm::References;
        let (lists, _) = self
            .matching(key, Needs::for_thread(references), move |hits| {
                let forest = if references {
                    thread::references(&hits)
                } else {
                    thread::ordered_subject(&hits)
                };
                forest.format(|m| {
                    hits.get(m)
                        .map_or(0, |f| if by_uid { f.uid } else { f.seq })
                })
            })
            .await?;
        if lists.is_empty() {
            self.untagged("THREAD");
        } else {
            self.untagged(&format!("THREAD {lists}"));
        }
        Ok(Done::ok("THREAD completed"))
    }

    /// The messages matching `key` with the fields `needs` asks for,
    /// given to `then` (which runs on the blocking thread too), and the
    /// highest modseq among them.
    async fn matching<T, F>(
        &mut self,
        key: &SearchKey,
        needs: Needs,
        then: F,
    ) -> Result<(T, u64), CmdError>
    where
        T: Send + 'static,
        F: FnOnce(Vec<Fields>) -> T + Send + 'static,
    {
        let sel = self.selected()?;
        let id = sel.id;
        let view = sel.uids.clone();
        let saved: HashSet<Uid> = sel.saved.iter().copied().collect();
        let recent = sel.recent.clone();
        let key = key.clone();
        if mentions_modseq(&key) {
            self.enable_condstore();
        }
        let result = self
            .blocking(move |s| {
                let metas = metas_with_recent(s, id, &recent)?;
                let read = |c: &mut Candidate<'_>| {
                    let mut fields = Fields::new(c.seq, c.meta);
                    if needs.header() {
                        fields.read_header(message::header_section(c.raw()), &needs);
                    }
                    fields
                };
                let (hits, max) =
                    evaluate_all(s, id, &view, &metas, &key, &saved, &read, needs.header())?;
                let fields = hits.into_iter().map(|(_, _, f)| f).collect();
                Ok((then(fields), max))
            })
            .await?;
        Ok(result)
    }
}

impl Session {
    /// The ESEARCH response (RFC 4731 §3.1) and SAVE (RFC 5182 §2.4).
    fn esearch(
        &mut self,
        tag: &str,
        by_uid: bool,
        hits: &[(u32, Uid)],
        ret: &[SearchReturn],
        modseq: Option<HitModseqs>,
    ) -> Result<(), super::session::CmdError> {
        let has = |r: SearchReturn| ret.contains(&r);
        if has(SearchReturn::Save) {
            // MIN and/or MAX alone save just those messages.
            let saved: Vec<Uid> = if has(SearchReturn::All) || has(SearchReturn::Count) {
                hits.iter().map(|&(_, u)| u).collect()
            } else if has(SearchReturn::Min) || has(SearchReturn::Max) {
                let mut v = Vec::new();
                if let (true, Some(&(_, u))) = (has(SearchReturn::Min), hits.first()) {
                    v.push(u);
                }
                if let (true, Some(&(_, u))) = (has(SearchReturn::Max), hits.last())
                    && !v.contains(&u)
                {
                    v.push(u);
                }
                v
            } else {
                hits.iter().map(|&(_, u)| u).collect()
            };
            self.selected_mut()?.saved = saved;
            if ret.iter().all(|r| *r == SearchReturn::Save) {
                return Ok(());
            }
        }
        let numbers: Vec<u32> = hits
            .iter()
            .map(|&(seq, uid)| if by_uid { uid.0 } else { seq })
            .collect();
        let partial = ret.iter().find_map(|r| match *r {
            SearchReturn::Partial { from, to } => Some((from, to)),
            _ => None,
        });
        let mut out = esearch_head(tag, by_uid);
        if let (true, Some(min)) = (has(SearchReturn::Min), numbers.first()) {
            out.push_str(&format!(" MIN {min}"));
        }
        if let (true, Some(max)) = (has(SearchReturn::Max), numbers.last()) {
            out.push_str(&format!(" MAX {max}"));
        }
        if has(SearchReturn::All) && !numbers.is_empty() {
            out.push_str(&format!(" ALL {}", SeqSet::compact(&numbers)));
        }
        if has(SearchReturn::Count) {
            out.push_str(&format!(" COUNT {}", numbers.len()));
        }
        if let Some((from, to)) = partial {
            let part = partial_slice(&numbers, from, to);
            let set = if part.is_empty() {
                "NIL".to_string()
            } else {
                SeqSet::compact(part)
            };
            out.push_str(&format!(" PARTIAL ({from}:{to} {set})"));
        }
        if let Some(m) = modseq
            && !numbers.is_empty()
        {
            // RFC 4731 §3.2 / RFC 7162 §3.1.5: the highest modseq of the
            // messages returned; with only MIN and/or MAX, those are just
            // the first and the last match.
            let returned_all = has(SearchReturn::All) || has(SearchReturn::Count);
            let value = if returned_all {
                m.all
            } else {
                let mut v = 0;
                if has(SearchReturn::Min) {
                    v = v.max(m.first);
                }
                if has(SearchReturn::Max) {
                    v = v.max(m.last);
                }
                if v == 0 { m.all } else { v }
            };
            out.push_str(&format!(" MODSEQ {value}"));
        }
        out.push_str("\r\n");
        self.out.extend_from_slice(out.as_bytes());
        Ok(())
    }
}

/// The ESEARCH answer of an ESORT (RFC 5267 §3.2): MIN and MAX are the
/// first and last in sort order, ALL and PARTIAL list the messages in
/// sort order (ranges only where consecutive numbers follow each other).
fn esort(
    tag: &str,
    by_uid: bool,
    sorted: &[u32],
    ret: &[SearchReturn],
    modseq: Option<u64>,
) -> String {
    let has = |r: SearchReturn| ret.contains(&r);
    let mut out = esearch_head(tag, by_uid);
    if let (true, Some(min)) = (has(SearchReturn::Min), sorted.first()) {
        out.push_str(&format!(" MIN {min}"));
    }
    if let (true, Some(max)) = (has(SearchReturn::Max), sorted.last()) {
        out.push_str(&format!(" MAX {max}"));
    }
    if has(SearchReturn::All) && !sorted.is_empty() {
        out.push_str(&format!(" ALL {}", in_order(sorted)));
    }
    if has(SearchReturn::Count) {
        out.push_str(&format!(" COUNT {}", sorted.len()));
    }
    for r in ret {
        if let SearchReturn::Partial { from, to } = *r {
            let part = partial_slice(sorted, from, to);
            let set = if part.is_empty() {
                "NIL".to_string()
            } else {
                in_order(part)
            };
            out.push_str(&format!(" PARTIAL ({from}:{to} {set})"));
        }
    }
    if let Some(m) = modseq
        && !sorted.is_empty()
    {
        out.push_str(&format!(" MODSEQ {m}"));
    }
    out.push_str("\r\n");
    out
}

/// `* ESEARCH (TAG "t")` and ` UID` for a UID command (RFC 4731 §3.1).
fn esearch_head(tag: &str, by_uid: bool) -> String {
    let mut out = String::from("* ESEARCH (TAG ");
    let mut quoted = Vec::new();
    super::proto::response::string(&mut quoted, tag.as_bytes());
    out.push_str(&String::from_utf8_lossy(&quoted));
    out.push(')');
    if by_uid {
        out.push_str(" UID");
    }
    out
}

/// A sequence set that keeps the given order: `3,1:2,7` for 3 1 2 7.
fn in_order(numbers: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&start) = numbers.get(i) {
        let mut end = start;
        while numbers
            .get(i + 1)
            .is_some_and(|&n| Some(n) == end.checked_add(1))
        {
            end += 1;
            i += 1;
        }
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

fn mentions_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(keys) => keys.iter().any(mentions_modseq),
        SearchKey::Or(a, b) => mentions_modseq(a) || mentions_modseq(b),
        SearchKey::Not(k) => mentions_modseq(k),
        _ => false,
    }
}

/// One message under evaluation; its content is loaded on first need.
struct Candidate<'a> {
    store: &'a dyn MailStore,
    mailbox: MailboxId,
    seq: u32,
    meta: &'a MessageMeta,
    /// Largest sequence number and UID, for `*`.
    max_seq: u32,
    max_uid: u32,
    raw: Option<Vec<u8>>,
    text: Option<(String, String)>,
    /// The saved result (`$`).
    saved: &'a HashSet<Uid>,
    now: i64,
}

impl Candidate<'_> {
    fn raw(&mut self) -> &[u8] {
        if self.raw.is_none() {
            // A message that vanished meanwhile matches no content key.
            self.raw = Some(
                self.store
                    .message(self.mailbox, self.meta.uid)
                    .unwrap_or_default(),
            );
        }
        self.raw.as_deref().unwrap_or_default()
    }

    fn text(&mut self) -> &(String, String) {
        if self.text.is_none() {
            let text = message::search_text(self.raw());
            self.text = Some(text);
        }
        self.text.get_or_insert_default()
    }

    fn saved_day(&self) -> Option<i64> {
        self.meta.save_date.map(|d| d.div_euclid(86_400))
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    fn matches(&mut self, key: &SearchKey) -> bool {
        let day = self.meta.internal_date.div_euclid(86_400);
        match key {
            SearchKey::All => true,
            SearchKey::And(keys) => keys.iter().all(|k| self.matches(k)),
            SearchKey::Or(a, b) => self.matches(a) || self.matches(b),
            SearchKey::Not(k) => !self.matches(k),
            SearchKey::Flag(f) => self.has_flag(f),
            SearchKey::NoFlag(f) => !self.has_flag(f),
            // `\Recent` was added to the flags by the session.
            SearchKey::Recent => self.has_flag(RECENT),
            SearchKey::New => self.has_flag(RECENT) && !self.has_flag("\\Seen"),
            SearchKey::Old => !self.has_flag(RECENT),
            SearchKey::Before(d) => day < *d,
            // Messages stored before save dates were kept have none and
            // match no SAVED* key (their FETCH SAVEDATE is NIL).
            SearchKey::SavedBefore(d) => self.saved_day().is_some_and(|s| s < *d),
            SearchKey::SavedOn(d) => self.saved_day().is_some_and(|s| s == *d),
            SearchKey::SavedSince(d) => self.saved_day().is_some_and(|s| s >= *d),
            SearchKey::SaveDateSupported => true,
            SearchKey::On(d) => day == *d,
            SearchKey::Since(d) => day >= *d,
            SearchKey::SentBefore(d) => message::sent_day(self.raw()).is_some_and(|s| s < *d),
            SearchKey::SentOn(d) => message::sent_day(self.raw()).is_some_and(|s| s == *d),
            SearchKey::SentSince(d) => message::sent_day(self.raw()).is_some_and(|s| s >= *d),
            SearchKey::Larger(n) => self.meta.size > *n,
            SearchKey::Smaller(n) => self.meta.size < *n,
            SearchKey::Header(name, needle) => {
                let needle = needle.to_lowercase();
                message::header_values(self.raw(), name)
                    .iter()
                    .any(|v| v.to_lowercase().contains(&needle))
            }
            SearchKey::Body(needle) => self.text().1.contains(&needle.to_lowercase()),
            SearchKey::Text(needle) => {
                // Most mail is plain text: then the raw bytes are the decoded
                // text, and a byte search gives the same answer without a
                // MIME parse (the expensive part of SEARCH TEXT).
                if needle.is_ascii() && message::is_plain(self.raw()) {
                    return message::contains_ignore_ascii_case(self.raw(), needle.as_bytes());
                }
                let needle = needle.to_lowercase();
                let (headers, body) = self.text();
                headers.contains(&needle) || body.contains(&needle)
            }
            SearchKey::Uid(set) | SearchKey::Seq(set) if set.is_saved() => {
                self.saved.contains(&self.meta.uid)
            }
            SearchKey::Uid(set) => set.contains(self.meta.uid.0, self.max_uid),
            SearchKey::Seq(set) => set.contains(self.seq, self.max_seq),
            SearchKey::Older(secs) => {
                self.now.saturating_sub(self.meta.internal_date) > secs_i64(*secs)
            }
            SearchKey::Younger(secs) => {
                self.now.saturating_sub(self.meta.internal_date) <= secs_i64(*secs)
            }
            SearchKey::ModSeq(m) => self.meta.modseq >= *m,
            SearchKey::EmailId(id) => *id == super::proto::email_object_id(self.meta.email_id),
            // No threads are computed (THREADID is NIL): nothing matches.
            SearchKey::ThreadId(_) => false,
        }
    }
}

/// What is kept of each match besides (seq, uid): nothing for SEARCH,
/// the sort fields for SORT and THREAD.
type Extract<'e, X> = dyn Fn(&mut Candidate<'_>) -> X + Sync + 'e;

/// (seq, uid, extract's value) of the matches, and the highest modseq
/// among them. `reads`: extract reads every match's content.
#[allow(clippy::too_many_arguments)]
fn evaluate_all<X: Send>(
    store: &dyn MailStore,
    mailbox: MailboxId,
    view: &[Uid],
    metas: &HashMap<Uid, MessageMeta>,
    key: &SearchKey,
    saved: &HashSet<Uid>,
    extract: &Extract<'_, X>,
    reads: bool,
) -> Result<PartResult<X>, StoreError> {
    let max_seq = u32::try_from(view.len()).unwrap_or(u32::MAX);
    let numbered: Vec<(u32, Uid)> = (1..=max_seq).zip(view.iter().copied()).collect();
    // Content keys read every message: split the work over the cores.
    // Each half keeps its order, so the hits stay sorted.
    let threads = if reads || needs_content(key) {
        SEARCH_THREADS
    } else {
        1
    };
    let chunk = numbered.len().div_ceil(threads).max(1);
    let parts: Vec<Option<PartResult<X>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = numbered
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    evaluate_part(store, mailbox, part, view, metas, key, saved, extract)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().ok()).collect()
    });
    let mut hits = Vec::new();
    let mut max_modseq = 0;
    for part in parts {
        // A worker that failed must fail the search, not shorten it.
        let Some((part_hits, part_max)) = part else {
            return Err(StoreError::Corrupt("search worker failed".into()));
        };
        hits.extend(part_hits);
        max_modseq = max_modseq.max(part_max);
    }
    Ok((hits, max_modseq))
}

/// Hits (sequence number, UID, extracted value) of one slice of the
/// mailbox, and their highest modseq.
type PartResult<X> = (Vec<(u32, Uid, X)>, u64);

/// Threads for a content search (this machine class has two cores).
const SEARCH_THREADS: usize = 2;

/// Does the key look inside messages (so each one must be read)?
fn needs_content(key: &SearchKey) -> bool {
    match key {
        SearchKey::And(keys) => keys.iter().any(needs_content),
        SearchKey::Or(a, b) => needs_content(a) || needs_content(b),
        SearchKey::Not(k) => needs_content(k),
        SearchKey::Text(_) | SearchKey::Body(_) => true,
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn evaluate_part<X>(
    store: &dyn MailStore,
    mailbox: MailboxId,
    part: &[(u32, Uid)],
    view: &[Uid],
    metas: &HashMap<Uid, MessageMeta>,
    key: &SearchKey,
    saved: &HashSet<Uid>,
    extract: &Extract<'_, X>,
) -> PartResult<X> {
    let now = crate::rfc5322::now_unix();
    let max_seq = u32::try_from(view.len()).unwrap_or(u32::MAX);
    let max_uid = view.last().map_or(0, |u| u.0);
    let mut hits = Vec::new();
    let mut max_modseq = 0;
    for &(seq, uid) in part {
        let uid = &uid;
        let Some(meta) = metas.get(uid) else {
            continue;
        };
        let mut c = Candidate {
            store,
            mailbox,
            seq,
            meta,
            max_seq,
            max_uid,
            raw: None,
            text: None,
            saved,
            now,
        };
        if c.matches(key) {
            hits.push((seq, *uid, extract(&mut c)));
            max_modseq = max_modseq.max(meta.modseq);
        }
    }
    (hits, max_modseq)
}

fn secs_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The mailbox's messages by UID, with `\Recent` added to the flags of
/// the session's recent ones (`recent`: its claimed UID ranges) so that
/// the RECENT, NEW and OLD keys see them.
/// RFC 9394 §3.1: the results at positions `from..=to` (1-based; negative
/// positions count from the end), clamped to what there is.
fn partial_slice(numbers: &[u32], from: i64, to: i64) -> &[u32] {
    let (from, to) = (from.min(to), from.max(to));
    let len = i64::try_from(numbers.len()).unwrap_or(i64::MAX);
    let (start, end) = if from < 0 {
        // -1 is the last: -to..=-from from the end.
        (len + from, len + to + 1)
    } else {
        (from - 1, to)
    };
    let start = usize::try_from(start.clamp(0, len)).unwrap_or(0);
    let end = usize::try_from(end.clamp(0, len)).unwrap_or(0);
    numbers.get(start..end.max(start)).unwrap_or_default()
}

/// Modseqs of a search's matches: the highest of all, and those of the
/// first and the last (for MIN/MAX).
#[derive(Clone, Copy, Debug)]
pub(super) struct HitModseqs {
    all: u64,
    first: u64,
    last: u64,
}

fn metas_with_recent(
    s: &dyn MailStore,
    id: MailboxId,
    recent: &[(u32, u32)],
) -> Result<HashMap<Uid, MessageMeta>, StoreError> {
    Ok(s.messages(id)?
        .into_iter()
        .map(|mut m| {
            if recent.iter().any(|&(a, b)| a <= m.uid.0 && m.uid.0 < b) {
                m.flags.push(RECENT.to_owned());
            }
            (m.uid, m)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_ranges_count_from_either_end() {
        let n = [2, 4, 6, 8, 10];
        assert_eq!(partial_slice(&n, 1, 2), &[2, 4]);
        assert_eq!(partial_slice(&n, 4, 100), &[8, 10]);
        assert_eq!(partial_slice(&n, 6, 9), &[] as &[u32]);
        assert_eq!(partial_slice(&n, -2, -1), &[8, 10]);
        assert_eq!(partial_slice(&n, -100, -5), &[2]);
        assert_eq!(partial_slice(&n, -9, -7), &[] as &[u32]);
    }
}
