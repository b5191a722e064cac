//! The templates (files under `templates/`, compiled into the binary and
//! autoescaped as HTML) and what every page of a logged-in user shows:
//! the folder list with unread counts, the quota.

use super::{User, WebError, icon};
use crate::store::MailStore;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};
use serde::Serialize;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("list.html", include_str!("templates/list.html")),
    ("message.html", include_str!("templates/message.html")),
    ("compose.html", include_str!("templates/compose.html")),
    ("settings.html", include_str!("templates/settings.html")),
    ("admin.html", include_str!("templates/admin.html")),
    ("contacts.html", include_str!("templates/contacts.html")),
    ("folders.html", include_str!("templates/folders.html")),
];

const STYLE: &str = include_str!("static/style.css");

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Pages {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates are ours and tested: one that does not parse
            // is a build mistake, shown on its page rather than a panic.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!("webmail template {name}: {e}");
            }
        }
        Pages { env }
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<Response, WebError> {
        let html = self
            .env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| WebError::Unavailable(format!("template {name}: {e:#}")))?;
        Ok(Html(html).into_response())
    }
}

/// One folder of the folder list.
#[derive(Serialize)]
pub struct Folder {
    pub name: String,
    /// The last part of the name, shown indented under its parent.
    pub label: String,
    /// How deep in the tree (0 at the top; classes stop at 4).
    pub depth: usize,
    pub unseen: u32,
    pub icon: &'static str,
}

/// What the frame of a logged-in page needs.
#[derive(Serialize)]
pub struct Frame {
    pub user: String,
    pub csrf: String,
    pub folders: Vec<Folder>,
    pub quota: String,
    #[serde(rename = "box")]
    pub mailbox: String,
    pub q: String,
    pub field: String,
    pub notice: String,
}

impl Frame {
    pub fn new(store: &dyn MailStore, user: &User, mailbox: &str) -> Result<Frame, WebError> {
        let account = user.account();
        let mut boxes = store.mailboxes(account)?;
        // INBOX (and its children) first, then the tree in name order.
        boxes.sort_by(|a, b| {
            let top = |n: &str| n != crate::store::INBOX && !n.starts_with("INBOX/");
            (top(&a.name), &a.name).cmp(&(top(&b.name), &b.name))
        });
        let folders = boxes
            .iter()
            .map(|m| Folder {
                name: m.name.clone(),
                label: m
                    .name
                    .rsplit(crate::store::SEPARATOR)
                    .next()
                    .unwrap_or(&m.name)
                    .to_string(),
                depth: m.name.matches(crate::store::SEPARATOR).count().min(4),
                unseen: m.unseen,
                icon: icon(m),
            })
            .collect();
        let quota = match store.account(account)? {
            Some(a) if a.quota_bytes > 0 => format!(
                "{} of {} used ({}%)",
                size(a.used_bytes),
                size(a.quota_bytes),
                a.used_bytes.saturating_mul(100) / a.quota_bytes
            ),
            Some(a) => format!("{} used", size(a.used_bytes)),
            None => String::new(),
        };
        Ok(Frame {
            user: user.session.address.clone(),
            csrf: user.session.csrf.clone(),
            folders,
            quota,
            mailbox: mailbox.to_string(),
            q: String::new(),
            field: "text".into(),
            notice: String::new(),
        })
    }

    /// The frame and a page's own values, for the template.
    pub fn with(&self, page: Value) -> Value {
        context! { ..Value::from_serialize(self), ..page }
    }
}

/// `12.3 KB`, `4.0 MB`: sizes as people read them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"GB"))
    }
}

/// `2026-12-04 20:31` (UTC) for a Unix time.
pub fn short_date(unix: i64) -> String {
    let (y, m, d) = crate::rfc5322::civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// An error page (without the folder list: it may be why we failed).
pub fn error_page(title: &str, message: &str) -> String {
    thread_local! {
        static PAGES: Pages = Pages::new();
    }
    PAGES.with(|p| {
        p.env
            .get_template("error.html")
            .and_then(|t| t.render(context! { title, message, user => "" }))
            .unwrap_or_else(|_| {
                format!(
                    "<!doctype html><title>{title}</title><p>{}",
                    crate::escape::xml(message)
                )
            })
    })
}

pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let pages = Pages::new();
        for (name, _) in TEMPLATES {
            assert!(pages.env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn sizes_and_dates_read_well() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(2048), "2.0 KB");
        assert_eq!(short_date(1_700_000_000), "2023-11-14 22:13");
    }

    #[test]
    fn values_are_escaped() {
        let page = error_page("t", "<script>alert(1)</script>");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
    }
}
