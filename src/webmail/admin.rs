//! The postmaster's pages under `/admin`, for accounts flagged admin
//! (`merpati user admin ADDRESS`): the server's status as charts, the
//! accounts, the queue (hold, release, delete, flush; a held message
//! shown), and the DNS records to publish.

use super::pages::{Frame, short_date, size};
use super::settings::{Fields, field};
use super::status::{self, History};
use super::{Shared, User, WebError, blocking};
use crate::queue::active::ActiveSet;
use crate::queue::id::QueueId;
use crate::queue::qmgr::Triggers;
use crate::queue::spool::{QueueName, Spool};
use crate::queue::{ActiveGuard, AdminOp};
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the admin pages work on besides the store.
pub struct QueueAccess {
    pub spool: Arc<Spool>,
    pub active: Arc<ActiveSet>,
    pub triggers: Arc<Triggers>,
    pub history: Arc<History>,
}

/// A logged-in user with the admin flag.
pub struct Admin(pub User);

impl FromRequestParts<Shared> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let user = <User as FromRequestParts<Shared>>::from_request_parts(parts, state).await?;
        match crate::control::is_admin(state.store.as_ref(), user.account()) {
            Ok(true) => Ok(Admin(user)),
            Ok(false) => {
                Err(WebError::Forbidden("These pages are for the postmaster.").into_response())
            }
            Err(e) => Err(WebError::from(e).into_response()),
        }
    }
}

fn queue(web: &Shared) -> Result<&QueueAccess, WebError> {
    web.queue
        .as_ref()
        .ok_or(WebError::NotFound("The queue is not reachable from here."))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AdminQuery {
    notice: String,
    id: String,
}

fn render(
    web: &Shared,
    user: &User,
    view: &str,
    notice: &str,
    page: minijinja::Value,
) -> Result<Response, WebError> {
    let mut frame = Frame::new(web.store.as_ref(), user, "")?;
    frame.notice = crate::rfc5322::one_line(notice, 200);
    web.pages.render(
        "admin.html",
        frame.with(minijinja::context! { view, title => "Administration", ..page }),
    )
}

/// GET /admin: the status page.
pub async fn status_page(
    State(web): State<Shared>,
    Admin(user): Admin,
    Query(q): Query<AdminQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let access = queue(&web2)?;
        let now = status::sample(&access.spool, web2.store.as_ref());
        let mut samples = access.history.all();
        samples.push(now.clone());
        let charts = status::charts(&samples);
        let queues: Vec<(String, usize)> = status::QUEUES
            .iter()
            .zip(now.queues)
            .map(|((_, n), c)| (n.to_string(), c))
            .collect();
        render(
            &web2,
            &user,
            "status",
            &q.notice,
            context! {
                charts,
                queues,
                sessions => now.sessions,
                store => size(now.store_bytes),
                received => now.received,
                delivered => now.delivered,
                deferred => now.deferred,
                bounced => now.bounced,
                minutes => samples.len().saturating_sub(1),
            },
        )
    })
    .await
}

#[derive(Serialize)]
struct AccountRow {
    name: String,
    used: String,
    quota: String,
    admin: bool,
}

/// GET /admin/accounts.
pub async fn accounts(
    State(web): State<Shared>,
    Admin(user): Admin,
    Query(q): Query<AdminQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let store = web2.store.as_ref();
        let rows = store
            .accounts()?
            .into_iter()
            .map(|a| {
                Ok(AccountRow {
                    admin: crate::control::is_admin(store, &a.name)?,
                    used: size(a.used_bytes),
                    quota: if a.quota_bytes == 0 {
                        "unlimited".into()
                    } else {
                        size(a.quota_bytes)
                    },
                    name: a.name,
                })
            })
            .collect::<Result<Vec<_>, crate::store::StoreError>>()?;
        let config = web2.config.get();
        let domains: Vec<String> = config
            .mydestination
            .iter()
            .chain(&config.virtual_mailbox_domains)
            .cloned()
            .collect();
        render(
            &web2,
            &user,
            "accounts",
            &q.notice,
            context! { accounts => rows, domains },
        )
    })
    .await
}

fn back(to: &str, notice: &str) -> Response {
    Redirect::to(&format!("{to}?notice={}", super::mailbox::url(notice))).into_response()
}

/// POST /admin/accounts: add, delete, password, quota, admin flag.
pub async fn account_action(
    State(web): State<Shared>,
    Admin(user): Admin,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    use crate::control::StoreOp;
    user.check_csrf(field(&form, "csrf"))?;
    let address = field(&form, "address").trim().to_string();
    let account = match crate::address::Address::parse(&address) {
        Ok(a) => web
            .resolver
            .get()
            .account_name(&a)
            .map_err(|e| WebError::BadRequest(e.to_string()))?,
        Err(e) => return Ok(back("/admin/accounts", &format!("{address}: {e}"))),
    };
    let password = field(&form, "password").to_string();
    let hash = if password.is_empty() {
        None
    } else if password.chars().count() < 8 {
        return Ok(back(
            "/admin/accounts",
            "A password needs 8 characters at least.",
        ));
    } else {
        let hashed = tokio::task::spawn_blocking(move || crate::password::hash(&password))
            .await
            .map_err(|e| WebError::Unavailable(e.to_string()))?
            .map_err(WebError::Unavailable)?;
        Some(hashed)
    };
    let quota = crate::config::Bytes::parse(field(&form, "quota")).map(|b| b.0);
    let op = match (field(&form, "action"), hash) {
        ("add", Some(hash)) => StoreOp::AddUser {
            account: account.clone(),
            hash: Some(hash),
            quota: quota.unwrap_or(web.config.get().store.default_quota.0),
        },
        ("add", None) => return Ok(back("/admin/accounts", "A new account needs a password.")),
        ("delete", _) if account == user.account() => {
            return Ok(back(
                "/admin/accounts",
                "You cannot delete your own account here.",
            ));
        }
        ("delete", _) => StoreOp::DeleteUser {
            account: account.clone(),
        },
        ("password", Some(hash)) => StoreOp::SetPassword {
            account: account.clone(),
            hash,
        },
        ("quota", _) => match quota {
            Ok(quota) => StoreOp::SetQuota {
                account: account.clone(),
                quota,
            },
            Err(e) => return Ok(back("/admin/accounts", &format!("Quota: {e}"))),
        },
        ("admin", _) => StoreOp::SetAdmin {
            account: account.clone(),
            admin: field(&form, "admin") == "on",
        },
        _ => return Err(WebError::BadRequest("Unknown action.".into())),
    };
    let web2 = web.clone();
    let ends_sessions = matches!(op, StoreOp::DeleteUser { .. } | StoreOp::SetPassword { .. });
    let result = blocking(move || {
        op.execute(web2.store.as_ref())
            .map_err(WebError::BadRequest)
    })
    .await;
    match result {
        Ok(out) => {
            if ends_sessions {
                web.sessions.end_all(&account);
            }
            tracing::info!(
                "webmail: admin {}: {}",
                user.account(),
                String::from_utf8_lossy(&out).trim()
            );
            Ok(back(
                "/admin/accounts",
                String::from_utf8_lossy(&out).trim(),
            ))
        }
        Err(WebError::BadRequest(why)) => Ok(back("/admin/accounts", &why)),
        Err(e) => Err(e),
    }
}

#[derive(Serialize)]
struct QueueRow {
    id: String,
    queue: &'static str,
    size: String,
    arrival: String,
    sender: String,
    recipients: Vec<(String, String)>,
    held: String,
}

/// GET /admin/queue: every queued message with its last reply.
pub async fn queue_page(
    State(web): State<Shared>,
    Admin(user): Admin,
    Query(q): Query<AdminQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let access = queue(&web2)?;
        let rows: Vec<QueueRow> = crate::queue::list(&access.spool)
            .map_err(|e| WebError::Unavailable(e.to_string()))?
            .into_iter()
            .map(|l| QueueRow {
                id: l.id.as_str().to_string(),
                queue: l.queue.dir_name(),
                size: size(l.size),
                arrival: short_date(l.arrival),
                sender: if l.sender.is_empty() {
                    "<>".into()
                } else {
                    l.sender
                },
                recipients: l
                    .recipients
                    .into_iter()
                    .map(|(a, r)| (a, crate::rfc5322::one_line(&r, 300)))
                    .collect(),
                held: crate::rfc5322::one_line(&l.held, 300),
            })
            .collect();
        render(
            &web2,
            &user,
            "queue",
            &q.notice,
            context! { messages => rows },
        )
    })
    .await
}

/// POST /admin/queue: hold, release, delete one message; flush all.
pub async fn queue_action(
    State(web): State<Shared>,
    Admin(user): Admin,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    user.check_csrf(field(&form, "csrf"))?;
    let action = field(&form, "action").to_string();
    let id = field(&form, "id").to_string();
    let web2 = web.clone();
    let notice = blocking(move || {
        let access = queue(&web2)?;
        if action == "flush" {
            let n = crate::queue::flush(&access.spool)
                .map_err(|e| WebError::Unavailable(e.to_string()))?;
            access.triggers.flush.notify_one();
            return Ok(format!("{n} deferred message(s) scheduled for delivery."));
        }
        let op =
            AdminOp::from_name(&action).ok_or(WebError::BadRequest("Unknown action.".into()))?;
        let id =
            QueueId::parse(&id).ok_or(WebError::BadRequest("That is not a queue ID.".into()))?;
        let done = crate::queue::admin(
            &access.spool,
            op,
            Some(&id),
            &ActiveGuard::Daemon(&access.active),
        )
        .map_err(|e| WebError::Unavailable(e.to_string()))?;
        access.triggers.wake.notify_one();
        if op == AdminOp::Release {
            access.triggers.flush.notify_one();
        }
        tracing::info!(
            "webmail: admin {}: queue {} {}",
            user.account(),
            op.name(),
            id.as_str()
        );
        Ok(match done.len() {
            0 => format!(
                "{}: nothing to {} (delivered or moved meanwhile).",
                id.as_str(),
                op.name()
            ),
            _ => format!("{}: {} done.", id.as_str(), op.name()),
        })
    })
    .await?;
    Ok(back("/admin/queue", &notice))
}

/// GET /admin/queue/message?id=: a queued message as text (the review
/// of the hold queue).
pub async fn queue_message(
    State(web): State<Shared>,
    Admin(user): Admin,
    Query(q): Query<AdminQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let access = queue(&web2)?;
        let id = QueueId::parse(&q.id).ok_or(WebError::BadRequest("That is not a queue ID.".into()))?;
        for queue in [QueueName::Hold, QueueName::Deferred, QueueName::Incoming, QueueName::Active, QueueName::Corrupt] {
            if let Ok(Ok(file)) = access.spool.read(queue, &id) {
                let text = String::from_utf8_lossy(&file.body).into_owned();
                return render(&web2, &user, "queued", "", context! {
                    id => id.as_str(),
                    queue => queue.dir_name(),
                    sender => file.sender,
                    recipients => file.recipients.iter().map(|r| r.address.clone()).collect::<Vec<_>>(),
                    held => file.held,
                    text,
                });
            }
        }
        Err(WebError::NotFound("No such message in the queue (delivered or deleted?)."))
    })
    .await
}

/// GET /admin/dns: the records to publish (DKIM, SPF, DMARC).
pub async fn dns(State(web): State<Shared>, Admin(user): Admin) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let config = web2.config.get();
        let records =
            crate::mailauth::admin::records(&config, None).unwrap_or_else(|e| format!("; {e}"));
        render(&web2, &user, "dns", "", context! { records })
    })
    .await
}

/// The aliases file a form may hold, at most.
const MAX_ALIASES_FILE: usize = 1 << 20;

/// GET /admin/aliases: the domains, the virtual aliases of the
/// configuration (read-only here) and the aliases file, editable.
pub async fn aliases(
    State(web): State<Shared>,
    Admin(user): Admin,
    Query(q): Query<AdminQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let config = web2.config.get();
        let path = config.alias_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(WebError::Unavailable(format!("{}: {e}", path.display()))),
        };
        alias_page(&web2, &user, &q.notice, &text, &[])
    })
    .await
}

fn alias_page(
    web: &Shared,
    user: &User,
    notice: &str,
    text: &str,
    problems: &[String],
) -> Result<Response, WebError> {
    let config = web.config.get();
    let virtual_aliases: Vec<(String, String)> = config
        .virtual_alias
        .map
        .iter()
        .map(|(k, v)| (k.clone(), v.join(", ")))
        .collect();
    render(
        web,
        user,
        "aliases",
        notice,
        context! {
            mydestination => config.mydestination.clone(),
            virtual_domains => config.virtual_mailbox_domains.clone(),
            alias_domains => config.virtual_alias.domains.clone(),
            virtual_aliases,
            path => config.alias_path().display().to_string(),
            text,
            problems,
        },
    )
}

/// POST /admin/aliases: the aliases file checked, written (a new file
/// renamed over the old) and taken into use at once, as `newaliases`.
pub async fn save_aliases(
    State(web): State<Shared>,
    Admin(user): Admin,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    user.check_csrf(field(&form, "csrf"))?;
    let text = field(&form, "aliases").replace("\r\n", "\n");
    if text.len() > MAX_ALIASES_FILE {
        return Err(WebError::BadRequest(
            "The aliases file is too big for this page.".into(),
        ));
    }
    let web2 = web.clone();
    blocking(move || {
        let (_, problems) = crate::rewrite::Aliases::parse(&text);
        if !problems.is_empty() {
            return alias_page(&web2, &user, "", &text, &problems);
        }
        let config = web2.config.get();
        let path = config.alias_path();
        // A name of its own per save (two admins may save at once), the
        // old file's mode kept.
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fresh = path.with_extension(format!("webmail-{}-{n}", std::process::id()));
        let mode = std::fs::metadata(&path).map(|m| m.permissions()).ok();
        let written = std::fs::write(&fresh, &text)
            .and_then(|()| match &mode {
                Some(mode) => std::fs::set_permissions(&fresh, mode.clone()),
                None => Ok(()),
            })
            .and_then(|()| std::fs::File::open(&fresh).and_then(|f| f.sync_all()))
            .and_then(|()| std::fs::rename(&fresh, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&fresh);
            return alias_page(
                &web2,
                &user,
                "",
                &text,
                &[format!("{}: {e}", path.display())],
            );
        }
        web2.resolver.set(crate::rewrite::Resolver::new(
            &config,
            crate::app::load_aliases(&config),
        ));
        tracing::info!(
            "webmail: admin {}: {} rewritten and reloaded",
            user.account(),
            path.display()
        );
        Ok(back("/admin/aliases", "Aliases saved and in use."))
    })
    .await
}
