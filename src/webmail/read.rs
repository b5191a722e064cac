//! Reading a message: its headers and text, its HTML (sanitised, in a
//! sandboxed frame), its attachments (downloads), its source.

use super::mailbox::{addresses, is_junk};
use super::pages::{Frame, size};
use super::{Shared, User, WebError, blocking};
use crate::store::{FlagOp, MailStore, MailboxInfo, Uid};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mail_parser::MimeHeaders;
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct MessageQuery {
    #[serde(rename = "box")]
    mailbox: String,
    uid: u32,
    images: Option<String>,
    part: usize,
    notice: String,
}

#[derive(Serialize)]
struct Attachment {
    part: usize,
    name: String,
    content_type: String,
    size: String,
}

/// Inline `data:` images are bounded so a frame stays a sane size.
const MAX_INLINE_IMAGES: usize = 8 << 20;

fn load(
    store: &dyn MailStore,
    user: &User,
    q: &MessageQuery,
) -> Result<(MailboxInfo, Vec<u8>), WebError> {
    let mailbox = store
        .mailbox(user.account(), &q.mailbox)?
        .ok_or(WebError::NotFound("There is no such folder."))?;
    let body = store.message(mailbox.id, Uid(q.uid))?;
    Ok((mailbox, body))
}

pub(super) fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "text/plain".into(),
    }
}

/// GET /message?box=&uid=: the message, marked read.
pub async fn view(
    State(web): State<Shared>,
    user: User,
    Query(q): Query<MessageQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let store = web2.store.as_ref();
        let (mailbox, body) = load(store, &user, &q)?;
        let uid = Uid(q.uid);
        let flags = store
            .messages_by_uid(mailbox.id, &[uid])?
            .into_iter()
            .next()
            .map(|m| m.flags)
            .unwrap_or_default();
        if !crate::store::flags::is_seen(&flags) {
            store.store_flags(
                mailbox.id,
                &[uid],
                FlagOp::Add,
                &["\\Seen".to_string()],
                None,
            )?;
        }
        let parsed = super::parse(&body)?;
        let html = parsed
            .html_body
            .iter()
            .any(|&id| parsed.part(id).is_some_and(|p| p.is_text_html()));
        let texts: Vec<String> = if html {
            Vec::new()
        } else {
            (0..parsed.text_body.len())
                .filter_map(|i| parsed.body_text(i).map(|t| t.into_owned()))
                .collect()
        };
        let attachments: Vec<Attachment> = parsed
            .attachments
            .iter()
            .filter_map(|&id| parsed.part(id).map(|p| (id, p)))
            .map(|(id, p)| Attachment {
                part: id as usize,
                name: attachment_name(p, id as usize),
                content_type: content_type(p),
                size: size(p.len() as u64),
            })
            .collect();
        let images = q.images.is_some();
        // Whether the frame will drop remote images: ask the sanitiser.
        let blocked = html
            && !images
            && super::sanitize::clean(&html_of(&parsed), HashMap::new(), false).blocked_images;
        let mut frame = Frame::new(store, &user, &mailbox.name)?;
        frame.notice = crate::rfc5322::one_line(&q.notice, 200);
        let ctx = frame.with(context! {
            title => parsed.subject().unwrap_or("(no subject)").to_string(),
            subject => parsed.subject().unwrap_or_default().to_string(),
            from => addresses(parsed.from()),
            from_address => parsed.from().and_then(|f| f.first()).and_then(|a| a.address()).unwrap_or_default().to_string(),
            from_name => parsed.from().and_then(|f| f.first()).and_then(|a| a.name()).unwrap_or_default().to_string(),
            to => addresses(parsed.to()),
            cc => addresses(parsed.cc()),
            date => parsed.date().map(|d| d.to_rfc822()).unwrap_or_default(),
            uid => q.uid,
            html,
            images,
            blocked,
            texts,
            attachments,
            flagged => flags.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged")),
            is_junk => is_junk(&mailbox),
            is_drafts => mailbox.special_use == Some(crate::store::SpecialUse::Drafts),
        });
        web2.pages.render("message.html", ctx)
    })
    .await
}

pub(super) fn attachment_name(part: &mail_parser::MessagePart<'_>, id: usize) -> String {
    let name = part
        .attachment_name()
        .map(|n| crate::rfc5322::one_line(n, 200));
    match name {
        Some(n) if !n.trim().is_empty() => n,
        _ if content_type(part) == "message/rfc822" => format!("message-{id}.eml"),
        _ => format!("part-{id}"),
    }
}

/// A part's octets as the sender attached them (a forwarded message whole).
pub(super) fn part_bytes(part: &mail_parser::MessagePart<'_>) -> Vec<u8> {
    match &part.body {
        mail_parser::PartType::Message(m) => m.raw_message().to_vec(),
        _ => part.contents().to_vec(),
    }
}

/// GET /message/html: the HTML body, sanitised, for the sandboxed frame.
pub async fn html(
    State(web): State<Shared>,
    user: User,
    Query(q): Query<MessageQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let (_, body) = load(web2.store.as_ref(), &user, &q)?;
        let parsed = super::parse(&body)?;
        let html = html_of(&parsed);
        let mut inline = HashMap::new();
        let mut budget = MAX_INLINE_IMAGES;
        for part in &parsed.parts {
            let (Some(cid), ct) = (part.content_id(), content_type(part)) else { continue };
            if !ct.starts_with("image/") || ct.contains("svg") || part.contents().len() > budget {
                continue;
            }
            budget -= part.contents().len();
            let url = format!("data:{ct};base64,{}", crate::auth::base64_encode(part.contents()));
            inline.insert(cid.trim_matches(['<', '>']).to_string(), url);
        }
        let remote = q.images.is_some();
        let clean = super::sanitize::clean(&html, inline, remote);
        let page = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><base target=\"_blank\"></head><body>{}</body></html>",
            clean.html
        );
        let img = if remote { "img-src data: https: http:" } else { "img-src data:" };
        let csp = format!("default-src 'none'; style-src 'unsafe-inline'; {img}; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox");
        let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
        if let Ok(value) = HeaderValue::from_str(&csp) {
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
        }
        response.headers_mut().insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
        Ok(response)
    })
    .await
}

/// The HTML bodies of a message, one after the other.
fn html_of(parsed: &mail_parser::Message<'_>) -> String {
    let mut html = String::new();
    for i in 0..parsed.html_body.len() {
        if let Some(text) = parsed.body_html(i) {
            html.push_str(&text);
        }
    }
    html
}

/// GET /message/part: one attachment, as a download.
pub async fn part(
    State(web): State<Shared>,
    user: User,
    Query(q): Query<MessageQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let (_, body) = load(web2.store.as_ref(), &user, &q)?;
        let parsed = super::parse(&body)?;
        let id = u32::try_from(q.part).map_err(|_| WebError::NotFound("No such part."))?;
        if !parsed.attachments.contains(&id) {
            return Err(WebError::NotFound("No such part."));
        }
        let part = parsed.part(id).ok_or(WebError::NotFound("No such part."))?;
        let ct = content_type(part);
        // A type a browser would run or render as ours is served as bytes.
        let served = if ["html", "xml", "svg", "javascript", "xhtml"]
            .iter()
            .any(|t| ct.contains(t))
            || !ct.contains('/')
        {
            "application/octet-stream".to_string()
        } else {
            ct
        };
        let name = attachment_name(part, q.part);
        let disposition = format!(
            "attachment; filename=\"{}\"; filename*=UTF-8''{}",
            name.chars()
                .map(|c| if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                    c
                } else {
                    '_'
                })
                .collect::<String>(),
            super::mailbox::url(&name).replace('+', "%20")
        );
        let bytes = part_bytes(part);
        let mut response = bytes.into_response();
        let h = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&served) {
            h.insert(header::CONTENT_TYPE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        );
        Ok(response)
    })
    .await
}

/// GET /message/source: the message as stored, as text.
pub async fn source(
    State(web): State<Shared>,
    user: User,
    Query(q): Query<MessageQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let (_, body) = load(web2.store.as_ref(), &user, &q)?;
        Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            String::from_utf8_lossy(&body).into_owned(),
        )
            .into_response())
    })
    .await
}
