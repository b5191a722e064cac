//! The message list of a folder (paged, sorted, searched) and the bulk
//! actions on selected messages (read/unread, flag, move, delete to
//! Trash, Junk / Not junk, which also teach the spam filter).

use super::pages::{Frame, short_date, size};
use super::{Shared, User, WebError, blocking, local_path, special};
use crate::store::{FlagOp, MailStore, MailboxInfo, MessageMeta, SpecialUse, Uid};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    #[serde(rename = "box")]
    mailbox: String,
    page: usize,
    sort: String,
    order: String,
    q: String,
    field: String,
    notice: String,
}

/// One row of the list.
#[derive(Serialize)]
struct Row {
    uid: u32,
    date: String,
    from: String,
    subject: String,
    size: String,
    seen: bool,
    flagged: bool,
    attachment: bool,
}

/// A sortable column header.
#[derive(Serialize)]
struct Column {
    label: &'static str,
    href: String,
    current: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Date,
    From,
    Subject,
    Size,
}

impl SortKey {
    fn parse(s: &str) -> SortKey {
        match s {
            "from" => SortKey::From,
            "subject" => SortKey::Subject,
            "size" => SortKey::Size,
            _ => SortKey::Date,
        }
    }
    fn name(self) -> &'static str {
        match self {
            SortKey::Date => "date",
            SortKey::From => "from",
            SortKey::Subject => "subject",
            SortKey::Size => "size",
        }
    }
}

/// How much of a message the list reads for its headers: the header
/// section, not a big attachment behind it.
const HEAD_BYTES: usize = 64 * 1024;

/// The headers a row and the sorts and searches read.
struct Summary {
    from: String,
    to: String,
    subject: String,
    attachment: bool,
}

fn summarize(message: &[u8]) -> Summary {
    match mail_parser::MessageParser::new().parse_headers(message) {
        Some(parsed) => summary_of(&parsed),
        None => Summary {
            from: String::new(),
            to: String::new(),
            subject: String::new(),
            attachment: false,
        },
    }
}

fn summary_of(parsed: &mail_parser::Message<'_>) -> Summary {
    let attachment = parsed
        .parts
        .first()
        .and_then(|p| mail_parser::MimeHeaders::content_type(p))
        .is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("mixed"))
        });
    Summary {
        from: addresses(parsed.from()),
        to: addresses(parsed.to()),
        subject: parsed.subject().unwrap_or_default().to_string(),
        attachment,
    }
}

/// `Name <a@b>, c@d` as the list shows it: names where given.
pub fn addresses(list: Option<&mail_parser::Address<'_>>) -> String {
    let Some(list) = list else {
        return String::new();
    };
    list.iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) if !n.is_empty() => format!("{} <{addr}>", display_name(n)),
            (_, Some(addr)) => addr.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A display name as it may be written back into an address field:
/// quoted when it holds a character that separates or delimits
/// addresses (`"Doe, John"`), so a reply does not split it.
pub fn display_name(name: &str) -> String {
    let name = crate::rfc5322::one_line(name, 200);
    if name.contains([',', ';', '<', '>', '"', '@', ':', '(', ')', '\\']) {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        name
    }
}

/// Splits an address field at `,` and `;` outside quoted names and
/// `<...>`: `"Doe, John" <j@x>, b@y` is two items.
pub fn split_addresses(text: &str) -> Vec<String> {
    let (mut items, mut current) = (Vec::new(), String::new());
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .into_iter()
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .collect()
}

/// GET /mail?box=NAME: a page of the folder's messages.
pub async fn list(
    State(web): State<Shared>,
    user: User,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let settings = web.config.get().webmail.clone();
    let store = web.store.clone();
    let web2 = web.clone();
    blocking(move || render_list(&web2, store.as_ref(), &user, q, &settings)).await
}

fn render_list(
    web: &Shared,
    store: &dyn MailStore,
    user: &User,
    q: ListQuery,
    settings: &crate::config::Webmail,
) -> Result<Response, WebError> {
    let name = if q.mailbox.is_empty() {
        "INBOX".to_string()
    } else {
        q.mailbox.clone()
    };
    let mailbox = store
        .mailbox(user.account(), &name)?
        .ok_or(WebError::NotFound("There is no such folder."))?;
    let key = SortKey::parse(&q.sort);
    let ascending = q.order == "asc";
    let search = q.q.trim().to_string();
    let page_size = settings.page_size.max(1);
    let (rows, pages, page) = if search.is_empty() && key == SortKey::Date {
        arrival_page(store, &mailbox, ascending, q.page, page_size)?
    } else {
        (Vec::new(), 0, 0)
    };
    let fast = pages > 0;
    let mut metas = if fast {
        Vec::new()
    } else {
        store.messages(mailbox.id)?
    };
    let mut sorted_part = false;
    let (mut found, mut examined, mut truncated) = (0, 0, false);
    if !search.is_empty() {
        metas.sort_by_key(|m| std::cmp::Reverse(m.uid));
        truncated = metas.len() > settings.search_limit;
        metas.truncate(settings.search_limit);
        examined = metas.len();
        let needle = search.to_lowercase();
        let field = q.field.as_str();
        let mut kept = Vec::new();
        for meta in metas {
            let body = store.message(mailbox.id, meta.uid)?;
            if matches(&body, field, &needle) {
                kept.push(meta);
            }
        }
        metas = kept;
        found = metas.len();
    }
    match key {
        // By arrival: the order of UIDs.
        SortKey::Date => metas.sort_by_key(|m| m.uid),
        SortKey::Size => metas.sort_by_key(|m| (m.size, m.uid)),
        SortKey::From | SortKey::Subject => {
            // Each message's header is read: bounded like a search.
            if metas.len() > settings.search_limit {
                metas.sort_by_key(|m| std::cmp::Reverse(m.uid));
                metas.truncate(settings.search_limit);
                sorted_part = true;
            }
            let mut keyed: Vec<(String, MessageMeta)> = Vec::with_capacity(metas.len());
            for meta in metas {
                let s = summarize(&store.message_head(mailbox.id, meta.uid, HEAD_BYTES)?);
                let k = if key == SortKey::From {
                    s.from
                } else {
                    s.subject
                };
                keyed.push((k.to_lowercase(), meta));
            }
            keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.uid.cmp(&b.1.uid)));
            metas = keyed.into_iter().map(|(_, m)| m).collect();
        }
    }
    if !ascending {
        metas.reverse();
    }
    let (rows, pages, page) = if fast {
        (rows, pages, page)
    } else {
        let pages = metas.len().div_ceil(page_size).max(1);
        let page = q.page.clamp(1, pages);
        let rows: Vec<Row> = metas
            .iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .map(|meta| row(store, &mailbox, meta))
            .collect::<Result<_, WebError>>()?;
        (rows, pages, page)
    };
    let link = |page: usize, sort: SortKey, order: &str| {
        let mut href = format!(
            "/mail?box={}&sort={}&order={order}&page={page}",
            url(&name),
            sort.name()
        );
        if !search.is_empty() {
            href.push_str(&format!("&q={}&field={}", url(&search), url(&q.field)));
        }
        href
    };
    let order = if ascending { "asc" } else { "desc" };
    let columns: Vec<Column> = [
        ("Date", SortKey::Date),
        ("From", SortKey::From),
        ("Subject", SortKey::Subject),
        ("Size", SortKey::Size),
    ]
    .into_iter()
    .map(|(label, k)| Column {
        label,
        href: link(
            1,
            k,
            if k == key && !ascending {
                "asc"
            } else {
                "desc"
            },
        ),
        current: k == key,
    })
    .collect();
    let mut frame = Frame::new(store, user, &name)?;
    frame.q = search.clone();
    frame.field = if q.field.is_empty() {
        "text".into()
    } else {
        q.field.clone()
    };
    frame.notice = crate::rfc5322::one_line(&q.notice, 200);
    let ctx = frame.with(context! {
        title => name.clone(),
        total => mailbox.messages,
        unseen => mailbox.unseen,
        messages => rows,
        columns,
        order,
        page,
        pages,
        prev => (page > 1).then(|| link(page - 1, key, order)),
        next => (page < pages).then(|| link(page + 1, key, order)),
        here => link(page, key, order),
        found,
        examined,
        truncated,
        is_junk => is_junk(&mailbox),
        sorted_part,
        search_limit => settings.search_limit,
    });
    web.pages.render("list.html", ctx)
}

/// A page of the list by arrival, no search: only its own messages'
/// records are read (the UIDs come from the mailbox snapshot), so the
/// page costs the same in a folder of 100 or of 100,000 messages.
fn arrival_page(
    store: &dyn MailStore,
    mailbox: &MailboxInfo,
    ascending: bool,
    asked: usize,
    page_size: usize,
) -> Result<(Vec<Row>, usize, usize), WebError> {
    let mut uids = store.snapshot(mailbox.id)?.uids;
    if !ascending {
        uids.reverse();
    }
    let pages = uids.len().div_ceil(page_size).max(1);
    let page = asked.clamp(1, pages);
    let wanted: Vec<crate::store::Uid> = uids
        .iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .copied()
        .collect();
    let mut metas = store.messages_by_uid(mailbox.id, &wanted)?;
    if !ascending {
        metas.reverse();
    }
    let rows = metas
        .iter()
        .map(|meta| row(store, mailbox, meta))
        .collect::<Result<Vec<_>, WebError>>()?;
    Ok((rows, pages, page))
}

fn row(store: &dyn MailStore, mailbox: &MailboxInfo, meta: &MessageMeta) -> Result<Row, WebError> {
    let s = summarize(&store.message_head(mailbox.id, meta.uid, HEAD_BYTES)?);
    Ok(Row {
        uid: meta.uid.0,
        date: short_date(meta.internal_date),
        from: s.from,
        subject: s.subject,
        size: size(meta.size),
        seen: crate::store::flags::is_seen(&meta.flags),
        flagged: meta
            .flags
            .iter()
            .any(|f| f.eq_ignore_ascii_case("\\Flagged")),
        attachment: s.attachment,
    })
}

/// Whether a message matches a search: headers by field, or its text.
fn matches(message: &[u8], field: &str, needle: &str) -> bool {
    let hit = |s: &str| s.to_lowercase().contains(needle);
    if field == "text" {
        let Some(parsed) = mail_parser::MessageParser::default().parse(message) else {
            return false;
        };
        let s = summary_of(&parsed);
        return hit(&s.subject)
            || hit(&s.from)
            || hit(&s.to)
            || (0..parsed.text_body.len()).any(|i| parsed.body_text(i).is_some_and(|t| hit(&t)));
    }
    let s = summarize(message);
    match field {
        "from" => hit(&s.from),
        "to" => hit(&s.to),
        _ => hit(&s.subject),
    }
}

pub(crate) use crate::imap::learn::is_junk;

pub fn url(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// POST /mail/bulk: an action on the selected messages, then back.
pub async fn bulk(
    State(web): State<Shared>,
    user: User,
    body: Bytes,
) -> Result<Response, WebError> {
    let mut csrf = String::new();
    let (mut mailbox, mut action, mut target, mut back) =
        (String::new(), String::new(), String::new(), String::new());
    let mut uids = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "box" => mailbox = v.into_owned(),
            "action" => action = v.into_owned(),
            "target" => target = v.into_owned(),
            "back" => back = v.into_owned(),
            "uid" => {
                if let Ok(uid) = v.parse::<u32>() {
                    uids.push(Uid(uid));
                }
            }
            _ => {}
        }
    }
    user.check_csrf(&csrf)?;
    let back = local_path(&back).to_string();
    if uids.is_empty() {
        return Ok(
            Redirect::to(&with_notice(&back, "Select some messages first.")).into_response(),
        );
    }
    let web2 = web.clone();
    let notice = blocking(move || apply(&web2, &user, &mailbox, &action, &target, &uids)).await?;
    Ok(Redirect::to(&with_notice(&back, &notice)).into_response())
}

fn with_notice(back: &str, notice: &str) -> String {
    let sep = if back.contains('?') { '&' } else { '?' };
    format!("{back}{sep}notice={}", url(notice))
}

fn apply(
    web: &Shared,
    user: &User,
    mailbox: &str,
    action: &str,
    target: &str,
    uids: &[Uid],
) -> Result<String, WebError> {
    let store = web.store.as_ref();
    let account = user.account();
    let source = store
        .mailbox(account, mailbox)?
        .ok_or(WebError::NotFound("There is no such folder."))?;
    let flag =
        |op: FlagOp, flag: &str| store.store_flags(source.id, uids, op, &[flag.to_string()], None);
    let n = uids.len();
    let plural = if n == 1 { "message" } else { "messages" };
    Ok(match action {
        "read" => {
            flag(FlagOp::Add, "\\Seen")?;
            format!("{n} {plural} marked read.")
        }
        "unread" => {
            flag(FlagOp::Remove, "\\Seen")?;
            format!("{n} {plural} marked unread.")
        }
        "flag" => {
            flag(FlagOp::Add, "\\Flagged")?;
            format!("{n} {plural} flagged.")
        }
        "unflag" => {
            flag(FlagOp::Remove, "\\Flagged")?;
            format!("{n} {plural} unflagged.")
        }
        "delete" => {
            let trash = special(store, account, SpecialUse::Trash)?;
            match trash {
                Some(trash) if trash.id != source.id => {
                    move_messages(web, account, &source, &trash, uids, false)?;
                    format!("{n} {plural} moved to {}.", trash.name)
                }
                // In Trash (or with none): deleting deletes.
                _ => {
                    let gone = store.expunge(source.id, uids)?;
                    format!("{} {plural} deleted.", gone.len())
                }
            }
        }
        "move" => {
            let dest = store
                .mailbox(account, target)?
                .ok_or(WebError::NotFound("There is no such folder."))?;
            move_messages(web, account, &source, &dest, uids, false)?;
            format!("{n} {plural} moved to {}.", dest.name)
        }
        "junk" => {
            let junk = special(store, account, SpecialUse::Junk)?
                .ok_or(WebError::NotFound("There is no Junk folder."))?;
            move_messages(web, account, &source, &junk, uids, true)?;
            format!("{n} {plural} moved to {} (and learnt as spam).", junk.name)
        }
        "notjunk" => {
            let inbox = store
                .mailbox(account, crate::store::INBOX)?
                .ok_or(WebError::NotFound("There is no INBOX."))?;
            move_messages(web, account, &source, &inbox, uids, true)?;
            format!("{n} {plural} moved to INBOX (and learnt as not spam).")
        }
        _ => return Err(WebError::BadRequest("Unknown action.".into())),
    })
}

/// Moves messages (copy, then expunge the originals) and teaches the
/// spam filter what a move into or out of Junk means, as IMAP does.
pub fn move_messages(
    web: &Shared,
    account: &str,
    from: &MailboxInfo,
    to: &MailboxInfo,
    uids: &[Uid],
    explicit: bool,
) -> Result<(), WebError> {
    if from.id == to.id {
        return Ok(());
    }
    let store = web.store.as_ref();
    let pairs = store.copy(from.id, uids, to.id)?;
    let moved: Vec<Uid> = pairs.iter().map(|(old, _)| *old).collect();
    store.expunge(from.id, &moved)?;
    let settings = web.config.get().spam.clone();
    // The Junk buttons always teach; other moves as IMAP moves do.
    let lesson = crate::imap::learn::lesson(Some(from), to)
        .filter(|_| explicit || settings.learn_from_moves);
    if let Some(spam) = lesson {
        let copies: Vec<Uid> = pairs.iter().map(|(_, new)| *new).collect();
        crate::imap::learn::learn_in_background(
            web.store.clone() as Arc<dyn MailStore>,
            web.spam.clone(),
            settings,
            crate::imap::learn::Lesson {
                account: account.to_string(),
                mailbox: to.id,
                uids: copies,
                spam,
                via: "webmail",
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_commas_stay_whole() {
        assert_eq!(display_name("Doe, John"), "\"Doe, John\"");
        assert_eq!(display_name("Plain Name"), "Plain Name");
        let field = format!(
            "{} <j@x.test>, b@y.test; \"ceo@corp.example, x\" <a@evil.test>",
            display_name("Doe, John")
        );
        assert_eq!(
            split_addresses(&field),
            [
                "\"Doe, John\" <j@x.test>",
                "b@y.test",
                "\"ceo@corp.example, x\" <a@evil.test>"
            ]
        );
    }
}
