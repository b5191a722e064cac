//! The webmail: server-rendered pages on the HTTPS listener that read
//! and write mail through the store and cleanup directly (not through our
//! own IMAP port), as SquirrelMail did for its users, but in the daemon.
//!
//! - `session`: login sessions and CSRF tokens.
//! - `pages`: the templates (files in `templates/`) and the page frame.
//! - `mailbox`: the message list, search and bulk actions.
//! - `read`: a message, its parts, its sanitised HTML, its source.
//! - `sanitize`: mail HTML made harmless (ammonia).
//! - `richtext`: the compose form's light marks made into HTML.
//! - `compose`: writing, replying, forwarding; sending through cleanup.
//! - `settings`: password, vacation, filter rules and their Sieve script.
//! - `contacts`: the address book, vCard in and out.
//! - `folders`: creating, renaming and deleting folders.
//! - `admin`, `status`: the postmaster's pages and the charts' samples.
//!
//! Every page works without JavaScript; the pages carry a strict
//! Content-Security-Policy, every state-changing request a CSRF token.

pub mod admin;
mod compose;
mod contacts;
mod folders;
mod login;
mod mailbox;
mod pages;
mod read;
mod richtext;
mod sanitize;
pub mod session;
mod settings;
pub mod status;

use crate::auth::Authenticator;
use crate::cleanup::Cleanup;
use crate::config::Config;
use crate::live::Live;
use crate::rewrite::Resolver;
use crate::spam::SpamFilter;
use crate::store::{MailStore, MailboxInfo, StoreError};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use session::Sessions;
use std::sync::Arc;

/// What the webmail's handlers share.
pub struct Webmail {
    pub config: Arc<Live<Config>>,
    pub resolver: Arc<Live<Resolver>>,
    pub store: Arc<dyn MailStore>,
    pub auth: Arc<Authenticator>,
    pub cleanup: Arc<Cleanup>,
    pub spam: Arc<SpamFilter>,
    pub sessions: Sessions,
    /// The queue, for `/admin` (absent where there is none to reach).
    pub queue: Option<admin::QueueAccess>,
    pages: pages::Pages,
}

type Shared = Arc<Webmail>;

impl Webmail {
    pub fn new(
        config: Arc<Live<Config>>,
        resolver: Arc<Live<Resolver>>,
        store: Arc<dyn MailStore>,
        auth: Arc<Authenticator>,
        cleanup: Arc<Cleanup>,
        spam: Arc<SpamFilter>,
        queue: Option<admin::QueueAccess>,
    ) -> Webmail {
        let settings = config.get().webmail.clone();
        Webmail {
            config,
            resolver,
            store,
            auth,
            cleanup,
            spam,
            sessions: Sessions::new(
                settings.session_idle.0,
                settings.session_lifetime.0,
                settings.max_sessions,
            ),
            queue,
            pages: pages::Pages::new(),
        }
    }
}

/// The webmail's routes, for the HTTPS listener.
pub fn router(webmail: Shared) -> Router {
    let upload = webmail.config.get().webmail.max_upload.0;
    let upload = usize::try_from(upload).unwrap_or(usize::MAX);
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/mail", get(mailbox::list))
        .route("/mail/bulk", post(mailbox::bulk))
        .route("/message", get(read::view))
        .route("/message/html", get(read::html))
        .route("/message/part", get(read::part))
        .route("/message/source", get(read::source))
        .route(
            "/compose",
            get(compose::form)
                .post(compose::submit)
                .layer(DefaultBodyLimit::max(upload)),
        )
        .route("/settings", get(settings::page))
        .route("/settings/filters", post(settings::filters))
        .route("/settings/sieve", post(settings::sieve))
        .route("/settings/password", post(settings::password))
        .route("/settings/identity", post(settings::set_identity))
        .route("/settings/lists", post(settings::lists))
        .route(
            "/contacts",
            get(contacts::page)
                .post(contacts::action)
                .layer(DefaultBodyLimit::max(upload)),
        )
        .route("/contacts/export.vcf", get(contacts::export))
        .route("/folders", get(folders::page).post(folders::action))
        .route("/admin", get(admin::status_page))
        .route(
            "/admin/accounts",
            get(admin::accounts).post(admin::account_action),
        )
        .route(
            "/admin/queue",
            get(admin::queue_page).post(admin::queue_action),
        )
        .route("/admin/queue/message", get(admin::queue_message))
        .route("/admin/dns", get(admin::dns))
        .route(
            "/admin/aliases",
            get(admin::aliases).post(admin::save_aliases),
        )
        .route("/static/style.css", get(pages::style))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(webmail)
}

async fn home(user: Option<User>) -> Response {
    match user {
        Some(_) => Redirect::to("/mail?box=INBOX").into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

/// The headers every webmail response carries; a handler that set its
/// own Content-Security-Policy (the mail HTML frame) keeps it.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Our pages: no script at all, styles and images only from us, forms
/// only to us, frames only ours (the mail HTML), framed by nobody.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
    form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A logged-in request: the session named by the cookie.
#[derive(Clone, Debug)]
pub struct User {
    pub token: String,
    pub session: session::Session,
}

impl User {
    pub fn account(&self) -> &str {
        &self.session.account
    }

    /// Refuses a state-changing request whose form lacks the session's
    /// CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), WebError> {
        if session::same_token(token, &self.session.csrf) {
            Ok(())
        } else {
            Err(WebError::Forbidden(
                "The form is stale or was not ours; reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<Shared> for User {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let token = session::cookie(&parts.headers, session::COOKIE).map(str::to_string);
        match token.and_then(|t| state.sessions.get(&t).map(|s| (t, s))) {
            Some((token, session)) => Ok(User { token, session }),
            None if parts.method == axum::http::Method::GET => {
                Err(Redirect::to("/login").into_response())
            }
            None => {
                Err(WebError::Forbidden("Your session has ended; log in again.").into_response())
            }
        }
    }
}

impl axum::extract::OptionalFromRequestParts<Shared> for User {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <User as FromRequestParts<Shared>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// What can go wrong in a handler, mapped to a status in one place.
#[derive(Debug)]
pub enum WebError {
    NotFound(&'static str),
    BadRequest(String),
    Forbidden(&'static str),
    /// The store failed: try again later.
    Unavailable(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchMailbox => WebError::NotFound("There is no such folder."),
            StoreError::NoSuchMessage => {
                WebError::NotFound("There is no such message (moved or deleted?).")
            }
            StoreError::OverQuota => WebError::BadRequest("The mailbox is full (quota).".into()),
            other => WebError::Unavailable(other.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m.to_string()),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Cannot do that", m),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Refused", m.to_string()),
            WebError::Unavailable(m) => {
                tracing::warn!("webmail: {m}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again later",
                    "The mail store did not answer; nothing was changed.".to_string(),
                )
            }
        };
        let body = pages::error_page(title, &message);
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

/// A local path to go back to after a form: only our own absolute paths
/// (`/mail?...`), never another site (`//evil`, `https://...`).
pub fn local_path(back: &str) -> &str {
    let ok = back.starts_with('/')
        && !back.starts_with("//")
        && !back.starts_with("/\\")
        && !back.chars().any(|c| c.is_control());
    if ok { back } else { "/mail?box=INBOX" }
}

/// The folder's icon class in the folder list.
fn icon(mailbox: &MailboxInfo) -> &'static str {
    use crate::store::SpecialUse;
    if mailbox.name == crate::store::INBOX {
        return "inbox";
    }
    match mailbox.special_use {
        Some(SpecialUse::Sent) => "sent",
        Some(SpecialUse::Drafts) => "drafts",
        Some(SpecialUse::Trash) => "trash",
        Some(SpecialUse::Junk) => "junk",
        Some(SpecialUse::Archive) => "archive",
        _ => "folder",
    }
}

/// The mailbox of a special use (Trash, Junk...), by use or usual name.
pub fn special(
    store: &dyn MailStore,
    account: &str,
    use_: crate::store::SpecialUse,
) -> Result<Option<MailboxInfo>, StoreError> {
    let boxes = store.mailboxes(account)?;
    Ok(boxes
        .iter()
        .find(|m| m.special_use == Some(use_))
        .or_else(|| {
            boxes
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(use_.default_name()))
        })
        .cloned())
}

/// A stored message, parsed (mail-parser reads anything, but an empty
/// message has no parts).
pub fn parse(raw: &[u8]) -> Result<mail_parser::Message<'_>, WebError> {
    mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or(WebError::BadRequest("The message cannot be read.".into()))
}

/// Runs store work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::Unavailable(e.to_string()))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_gone_back_to() {
        assert_eq!(
            super::local_path("/mail?box=Sent&page=2"),
            "/mail?box=Sent&page=2"
        );
        for bad in [
            "//evil.test/",
            "https://evil.test/",
            "/\\evil.test",
            "mail",
            "/x\r\nSet-Cookie: a=b",
        ] {
            assert_eq!(super::local_path(bad), "/mail?box=INBOX", "{bad:?}");
        }
    }
}
