//! Writing mail: a new message, a reply (to the sender or to all), a
//! forward (inline or as an attachment), with uploaded attachments. A
//! sent message takes the submission path — the sender must be the
//! user's own address, cleanup completes and DKIM-signs it and queues it
//! durably — and a copy goes to Sent; a draft goes to Drafts.

use super::mailbox::addresses;
use super::pages::Frame;
use super::{Shared, User, WebError, blocking, special};
use crate::address::Address;
use crate::cleanup::{Client, Submission};
use crate::http::Peer;
use crate::queue::qmgr::StoreAccounts;
use crate::rewrite::Route;
use crate::store::{MailStore, SpecialUse, Uid};
use axum::extract::{Extension, Multipart, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as MbAddress;
use minijinja::context;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ComposeQuery {
    #[serde(rename = "box")]
    mailbox: String,
    reply: Option<u32>,
    all: Option<String>,
    forward: Option<u32>,
    /// A draft to go on with.
    draft: Option<u32>,
    attach: Option<String>,
    to: String,
}

/// What the compose form holds.
#[derive(Default, Clone)]
struct Draft {
    from: String,
    to: String,
    cc: String,
    bcc: String,
    subject: String,
    body: String,
    in_reply_to: String,
    references: String,
    forward_box: String,
    forward_uid: Option<u32>,
    /// The draft this continues: replaced when saved again, gone once sent.
    draft_uid: Option<u32>,
    /// Send an HTML alternative made from the text's marks.
    formatted: bool,
    /// Names of the attachments a draft taken up again keeps.
    kept: Vec<String>,
    attachments: Vec<Upload>,
}

#[derive(Clone)]
struct Upload {
    name: String,
    content_type: String,
    data: Vec<u8>,
}

/// GET /compose: empty, or filled in from the message replied to or
/// forwarded.
pub async fn form(
    State(web): State<Shared>,
    user: User,
    Query(q): Query<ComposeQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let store = web2.store.as_ref();
        let signature = super::settings::identity(&web2, user.account())?.signature;
        let mut draft = Draft {
            from: user.session.address.clone(),
            to: q.to.clone(),
            // RFC 3676 §4.3: the signature follows "-- " on a line of its own.
            body: if signature.is_empty() {
                String::new()
            } else {
                format!("\n\n-- \n{signature}")
            },
            ..Draft::default()
        };
        let title = match (q.reply, q.forward) {
            (Some(uid), _) => {
                fill_reply(
                    store,
                    &user,
                    &q.mailbox,
                    Uid(uid),
                    q.all.is_some(),
                    &mut draft,
                )?;
                "Reply"
            }
            _ if q.draft.is_some() => {
                let uid = Uid(q.draft.unwrap_or_default());
                fill_draft(store, &user, uid, &mut draft)?;
                "Draft"
            }
            (None, Some(uid)) => {
                fill_forward(
                    store,
                    &user,
                    &q.mailbox,
                    Uid(uid),
                    q.attach.is_some(),
                    &mut draft,
                )?;
                "Forward"
            }
            _ => "New message",
        };
        page(&web2, &user, title, &draft, "")
    })
    .await
}

fn page(
    web: &Shared,
    user: &User,
    title: &str,
    d: &Draft,
    error: &str,
) -> Result<Response, WebError> {
    let frame = Frame::new(web.store.as_ref(), user, &d.forward_box)?;
    let book = super::contacts::load(web.store.as_ref(), user.account())?;
    let mut offered: Vec<String> = super::contacts::groups(&book);
    offered.extend(book.iter().map(|c| c.mailbox()));
    let ctx = frame.with(context! {
        contacts => offered,
        title,
        identities => identities(web, user)?,
        from => d.from.clone(),
        to => d.to.clone(),
        cc => d.cc.clone(),
        bcc => d.bcc.clone(),
        subject => d.subject.clone(),
        body => d.body.clone(),
        in_reply_to => d.in_reply_to.clone(),
        references => d.references.clone(),
        forward_uid => d.forward_uid,
        draft_uid => d.draft_uid,
        kept => d.kept.clone(),
        error,
    });
    web.pages.render("compose.html", ctx)
}

/// The From addresses offered: the login address, then those the user
/// added in the settings.
fn identities(web: &Shared, user: &User) -> Result<Vec<String>, WebError> {
    let mut all = vec![user.session.address.clone()];
    all.extend(super::settings::identity(web, user.account())?.addresses);
    Ok(all)
}

fn original(
    store: &dyn MailStore,
    user: &User,
    mailbox: &str,
    uid: Uid,
) -> Result<Vec<u8>, WebError> {
    let mb = store
        .mailbox(user.account(), mailbox)?
        .ok_or(WebError::NotFound("There is no such folder."))?;
    Ok(store.message(mb.id, uid)?)
}

fn prefixed(subject: &str, prefix: &str) -> String {
    let lower = subject.trim_start().to_ascii_lowercase();
    if lower.starts_with(&format!("{}:", prefix.to_ascii_lowercase())) {
        subject.to_string()
    } else {
        format!("{prefix}: {subject}")
    }
}

fn fill_reply(
    store: &dyn MailStore,
    user: &User,
    mailbox: &str,
    uid: Uid,
    all: bool,
    d: &mut Draft,
) -> Result<(), WebError> {
    let raw = original(store, user, mailbox, uid)?;
    let m = super::parse(&raw)?;
    let reply_to = m.reply_to().or(m.from());
    d.to = addresses(reply_to);
    if all {
        let me = user.session.address.to_lowercase();
        let others: Vec<String> = [m.to(), m.cc()]
            .into_iter()
            .flatten()
            .flat_map(|list| list.iter())
            .filter_map(|a| {
                a.address()
                    .map(|x| (a.name().map(|n| n.to_string()), x.to_string()))
            })
            .filter(|(_, x)| x.to_lowercase() != me)
            .map(|(n, x)| match n {
                Some(n) if !n.is_empty() => format!("{n} <{x}>"),
                _ => x,
            })
            .collect();
        d.cc = others.join(", ");
    }
    d.subject = prefixed(m.subject().unwrap_or_default(), "Re");
    if let Some(id) = m.message_id() {
        d.in_reply_to = format!("<{id}>");
        let mut refs: Vec<String> = m
            .references()
            .as_text_list()
            .unwrap_or_default()
            .iter()
            .map(|r| format!("<{r}>"))
            .collect();
        refs.push(format!("<{id}>"));
        d.references = refs.join(" ");
    }
    let who = addresses(m.from());
    let when = m.date().map(|t| t.to_rfc822()).unwrap_or_default();
    let text = m.body_text(0).unwrap_or_default();
    let quoted: String = text.lines().map(|l| format!("> {l}\n")).collect();
    // Written above the quote, the signature between them.
    d.body = format!("{}\n\nOn {when}, {who} wrote:\n{quoted}", d.body);
    Ok(())
}

/// The attachments of a saved draft.
fn draft_attachments(
    store: &dyn MailStore,
    user: &User,
    uid: Uid,
) -> Result<Vec<Upload>, WebError> {
    let drafts = special(store, user.account(), SpecialUse::Drafts)?
        .ok_or(WebError::NotFound("There is no Drafts folder."))?;
    let raw = store.message(drafts.id, uid)?;
    let m = super::parse(&raw)?;
    Ok(m.attachments
        .iter()
        .filter_map(|&id| m.part(id).map(|p| (id, p)))
        .map(|(id, p)| Upload {
            name: super::read::attachment_name(p, id as usize),
            content_type: super::read::content_type(p),
            data: super::read::part_bytes(p),
        })
        .collect())
}

/// Fills the form from a saved draft (its Bcc: kept in the copy).
fn fill_draft(store: &dyn MailStore, user: &User, uid: Uid, d: &mut Draft) -> Result<(), WebError> {
    let drafts = special(store, user.account(), SpecialUse::Drafts)?
        .ok_or(WebError::NotFound("There is no Drafts folder."))?;
    let raw = store.message(drafts.id, uid)?;
    let m = super::parse(&raw)?;
    d.to = addresses(m.to());
    d.cc = addresses(m.cc());
    d.bcc = addresses(m.bcc());
    d.subject = m.subject().unwrap_or_default().to_string();
    d.body = m.body_text(0).unwrap_or_default().into_owned();
    d.draft_uid = Some(uid.0);
    d.kept = draft_attachments(store, user, uid)?
        .into_iter()
        .map(|a| a.name)
        .collect();
    Ok(())
}

fn fill_forward(
    store: &dyn MailStore,
    user: &User,
    mailbox: &str,
    uid: Uid,
    attach: bool,
    d: &mut Draft,
) -> Result<(), WebError> {
    let raw = original(store, user, mailbox, uid)?;
    let m = super::parse(&raw)?;
    d.subject = prefixed(m.subject().unwrap_or_default(), "Fwd");
    if attach {
        d.forward_box = mailbox.to_string();
        d.forward_uid = Some(uid.0);
        return Ok(());
    }
    d.body = format!(
        "{}\n\n-------- Forwarded message --------\nFrom: {}\nDate: {}\nSubject: {}\nTo: {}\n\n{}",
        d.body,
        addresses(m.from()),
        m.date().map(|t| t.to_rfc822()).unwrap_or_default(),
        m.subject().unwrap_or_default(),
        addresses(m.to()),
        m.body_text(0).unwrap_or_default()
    );
    Ok(())
}

/// POST /compose (multipart): send, or save as a draft.
pub async fn submit(
    State(web): State<Shared>,
    user: User,
    Extension(Peer(ip)): Extension<Peer>,
    mut form: Multipart,
) -> Result<Response, WebError> {
    let mut d = Draft::default();
    let (mut csrf, mut action) = (String::new(), String::new());
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| WebError::BadRequest(format!("The form could not be read: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "attachment" {
            let file = field.file_name().unwrap_or_default().to_string();
            let ct = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_string();
            let data = field
                .bytes()
                .await
                .map_err(|e| WebError::BadRequest(format!("The upload failed: {e}")))?;
            if !file.is_empty() || !data.is_empty() {
                d.attachments.push(Upload {
                    name: crate::rfc5322::one_line(&file, 200),
                    content_type: ct,
                    data: data.to_vec(),
                });
            }
            continue;
        }
        let value = field
            .text()
            .await
            .map_err(|e| WebError::BadRequest(format!("The form could not be read: {e}")))?;
        match name.as_str() {
            "csrf" => csrf = value,
            "action" => action = value,
            "from" => d.from = value,
            "to" => d.to = value,
            "cc" => d.cc = value,
            "bcc" => d.bcc = value,
            "subject" => d.subject = value,
            "body" => d.body = value,
            "in_reply_to" => d.in_reply_to = value,
            "references" => d.references = value,
            "forward_box" => d.forward_box = value,
            "forward_uid" => d.forward_uid = value.parse().ok(),
            "draft_uid" => d.draft_uid = value.parse().ok(),
            "formatted" => d.formatted = value == "on",
            _ => {}
        }
    }
    user.check_csrf(&csrf)?;
    let web2 = web.clone();
    blocking(move || {
        let handle = tokio::runtime::Handle::current();
        match deliver(&web2, &user, ip, &d, action == "draft", &handle) {
            Ok(notice) => Ok(Redirect::to(&format!(
                "/mail?box=INBOX&notice={}",
                super::mailbox::url(&notice)
            ))
            .into_response()),
            Err(Refusal(why)) => {
                let title = if action == "draft" {
                    "Save draft"
                } else {
                    "New message"
                };
                let mut page = page(&web2, &user, title, &d, &why)?;
                *page.status_mut() = axum::http::StatusCode::BAD_REQUEST;
                Ok(page)
            }
        }
    })
    .await
}

/// Why a message was not sent: shown above the form, which keeps what
/// the user wrote.
struct Refusal(String);

impl From<crate::store::StoreError> for Refusal {
    fn from(e: crate::store::StoreError) -> Self {
        WebError::from(e).into()
    }
}

impl From<WebError> for Refusal {
    fn from(e: WebError) -> Self {
        Refusal(match e {
            WebError::NotFound(m) | WebError::Forbidden(m) => m.to_string(),
            WebError::BadRequest(m) => m,
            WebError::Unavailable(_) => {
                "The server could not take the message just now; nothing was sent. Try again."
                    .into()
            }
        })
    }
}

/// Sends or saves; then the draft it continued is no longer needed.
fn deliver(
    web: &Shared,
    user: &User,
    ip: std::net::IpAddr,
    d: &Draft,
    draft: bool,
    handle: &tokio::runtime::Handle,
) -> Result<String, Refusal> {
    let notice = send_or_save(web, user, ip, d, draft, handle)?;
    if let Some(uid) = d.draft_uid {
        let store = web.store.as_ref();
        match special(store, user.account(), SpecialUse::Drafts) {
            Ok(Some(drafts)) => {
                if let Err(e) = store.expunge(drafts.id, &[Uid(uid)]) {
                    tracing::warn!(
                        "webmail: the old draft {uid} of {} stays: {e}",
                        user.account()
                    );
                }
            }
            _ => tracing::warn!("webmail: no Drafts folder for {}", user.account()),
        }
    }
    Ok(notice)
}

fn send_or_save(
    web: &Shared,
    user: &User,
    ip: std::net::IpAddr,
    d: &Draft,
    draft: bool,
    handle: &tokio::runtime::Handle,
) -> Result<String, Refusal> {
    let store = web.store.as_ref();
    let config = web.config.get();
    let from = Address::parse(d.from.trim())
        .map_err(|_| Refusal("The From address is not valid.".into()))?;
    if !owns(web, user.account(), &from) {
        return Err(Refusal(format!("{from} is not one of your addresses.")));
    }
    let book = super::contacts::load(store, user.account())?;
    let to = parse_list(&d.to, &book)?;
    let cc = parse_list(&d.cc, &book)?;
    let bcc = parse_list(&d.bcc, &book)?;
    let limit = config.smtp.max_recipients.max(1);
    if to.len() + cc.len() + bcc.len() > limit {
        return Err(Refusal(format!("At most {limit} recipients.")));
    }
    let forwarded = match (d.forward_uid, d.forward_box.is_empty()) {
        (Some(uid), false) => Some(original(store, user, &d.forward_box, Uid(uid))?),
        _ => None,
    };
    // A draft taken up again keeps its attachments (the form cannot
    // hold them): they go along from the stored draft.
    let mut full = d.clone();
    if let Some(uid) = d.draft_uid {
        full.attachments
            .extend(draft_attachments(store, user, Uid(uid))?);
    }
    let message = build(
        &config.myhostname,
        &from,
        &full,
        &to,
        &cc,
        forwarded.as_deref(),
    )?;
    if message.len() as u64 > config.smtp.message_size_limit.0 {
        return Err(Refusal(
            "The message is bigger than the server accepts.".into(),
        ));
    }
    let bcc_line = if bcc.is_empty() {
        Vec::new()
    } else {
        format!(
            "Bcc: {}\r\n",
            bcc.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into_bytes()
    };
    let copy = [bcc_line.as_slice(), message.as_slice()].concat();
    let now = crate::rfc5322::now_unix();
    if draft {
        let drafts = special(store, user.account(), SpecialUse::Drafts)?
            .ok_or(Refusal("There is no Drafts folder.".into()))?;
        store
            .append(
                user.account(),
                &drafts.name,
                &copy,
                &["\\Draft".into(), "\\Seen".into()],
                now,
            )
            .map_err(WebError::from)?;
        return Ok(format!("Draft saved in {}.", drafts.name));
    }
    let recipients: Vec<_> = to
        .iter()
        .chain(&cc)
        .chain(&bcc)
        .map(|a| crate::queue::file::QueuedRecipient {
            address: a.to_string(),
            ..Default::default()
        })
        .collect();
    if recipients.is_empty() {
        return Err(Refusal("Give at least one recipient.".into()));
    }
    let submission = Submission {
        sender: from.to_string(),
        recipients,
        message,
        client: Client {
            ip: Some(ip),
            name: None,
            helo: "webmail".into(),
            uid: None,
        },
        protocol: "HTTPS".into(),
        complete_headers: true,
        content_checks: true,
        ..Submission::default()
    };
    let id = handle
        .block_on(web.cleanup.submit(submission))
        .map_err(|e| Refusal(format!("Not sent: {e}")))?;
    tracing::info!("webmail: {id}: sent by {} from {from}", user.account());
    // After the queue has it: a failure to keep the copy loses no mail.
    match special(store, user.account(), SpecialUse::Sent) {
        Ok(Some(sent)) => {
            if let Err(e) = store.append(user.account(), &sent.name, &copy, &["\\Seen".into()], now)
            {
                tracing::warn!("webmail: {id}: no copy in {}: {e}", sent.name);
                return Ok("Sent (no copy could be kept in Sent).".into());
            }
        }
        _ => return Ok("Sent (there is no Sent folder for a copy).".into()),
    }
    Ok("Message sent.".into())
}

/// `message` without its `Bcc:` header field (folded lines included).
fn without_bcc(message: &[u8]) -> Vec<u8> {
    let end = memchr::memmem::find(message, b"\r\n\r\n").map_or(message.len(), |i| i + 2);
    let (head, body) = message.split_at(end);
    let mut out = Vec::with_capacity(message.len());
    let mut skipping = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded {
            skipping = line.len() >= 4
                && line
                    .get(..4)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"bcc:"));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

/// Whether the account may send as `address` (its own, or an alias that
/// leads to it), as submission checks MAIL FROM.
pub fn owns(web: &Shared, account: &str, address: &Address) -> bool {
    let accounts = StoreAccounts(web.store.clone());
    web.resolver
        .get()
        .expand(address, &accounts)
        .iter()
        .any(|route| matches!(route, Ok(Route::Local { account: a, .. }) if a == account))
}

/// `a@x, Name <b@y>; c@z` → the addresses; the name of a contact group
/// stands for its members.
fn parse_list(text: &str, book: &[super::contacts::Contact]) -> Result<Vec<Address>, Refusal> {
    let mut out = Vec::new();
    for item in super::mailbox::split_addresses(text) {
        let item = item.as_str();
        let in_group = |c: &&super::contacts::Contact| c.groups.iter().any(|g| g == item);
        if !item.contains('@') && book.iter().any(|c| in_group(&c)) {
            out.extend(
                book.iter()
                    .filter(in_group)
                    .filter_map(|m| Address::parse(&m.email).ok()),
            );
            continue;
        }
        let spec = match (item.rfind('<'), item.rfind('>')) {
            (Some(a), Some(b)) if a < b => item.get(a + 1..b).unwrap_or_default(),
            _ => item,
        };
        let address = Address::parse(spec.trim())
            .map_err(|_| Refusal(format!("{item} is not an address.")))?;
        if address.domain().is_none() {
            return Err(Refusal(format!(
                "{item} has no domain (write user@domain)."
            )));
        }
        out.push(address);
    }
    Ok(out)
}

fn build(
    hostname: &str,
    from: &Address,
    d: &Draft,
    to: &[Address],
    cc: &[Address],
    forwarded: Option<&[u8]>,
) -> Result<Vec<u8>, Refusal> {
    let list = |v: &[Address]| {
        MbAddress::new_list(
            v.iter()
                .map(|a| MbAddress::new_address(None::<&str>, a.to_string()))
                .collect(),
        )
    };
    let mut b = MessageBuilder::new()
        .from(MbAddress::new_address(None::<&str>, from.to_string()))
        .message_id(format!(
            "{}@{hostname}",
            super::session::random_token().get(..24).unwrap_or("0")
        ))
        .subject(crate::rfc5322::one_line(&d.subject, 998))
        .header(
            "User-Agent",
            mail_builder::headers::raw::Raw::new("Merpati webmail"),
        )
        .text_body(d.body.replace("\r\n", "\n"));
    if d.formatted {
        b = b.html_body(super::richtext::to_html(&d.body));
    }
    if !to.is_empty() {
        b = b.to(list(to));
    }
    if !cc.is_empty() {
        b = b.cc(list(cc));
    }
    let ids = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|id| id.trim_matches(['<', '>']).to_string())
            .filter(|id| !id.is_empty() && id.len() < 250)
            .collect()
    };
    let reply = ids(&d.in_reply_to);
    if !reply.is_empty() {
        b = b.in_reply_to(reply);
        b = b.references(ids(&d.references));
    }
    for a in &d.attachments {
        let name = if a.name.is_empty() {
            "attachment".to_string()
        } else {
            a.name.clone()
        };
        b = b.attachment(a.content_type.clone(), name, a.data.clone());
    }
    if let Some(raw) = forwarded {
        // A Sent or Drafts copy keeps its Bcc: line; it must not travel.
        b = b.attachment("message/rfc822", "forwarded.eml", without_bcc(raw));
    }
    b.write_to_vec()
        .map_err(|e| Refusal(format!("The message could not be built: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_forwarded_copy_loses_its_bcc() {
        let copy = b"Bcc: secret@x.test,\r\n other@x.test\r\nFrom: a@x.test\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n";
        assert_eq!(
            super::without_bcc(copy),
            b"From: a@x.test\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n".to_vec()
        );
    }
}
