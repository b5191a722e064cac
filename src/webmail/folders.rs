//! Folder management: create (at the top or under a parent), rename,
//! delete. New folders are subscribed, so IMAP clients see them too.

use super::pages::Frame;
use super::settings::{Fields, field};
use super::{Shared, User, WebError, blocking};
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FoldersQuery {
    notice: String,
}

/// GET /folders.
pub async fn page(
    State(web): State<Shared>,
    user: User,
    Query(q): Query<FoldersQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let mut frame = Frame::new(web2.store.as_ref(), &user, "")?;
        frame.notice = crate::rfc5322::one_line(&q.notice, 200);
        let boxes = web2.store.mailboxes(user.account())?;
        let rows: Vec<(String, u32, String, bool)> = boxes
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.messages,
                    super::pages::size(m.size),
                    m.name == crate::store::INBOX || m.special_use.is_some(),
                )
            })
            .collect();
        web2.pages.render(
            "folders.html",
            frame.with(context! { title => "Folders", rows }),
        )
    })
    .await
}

/// POST /folders: create, rename or delete.
pub async fn action(
    State(web): State<Shared>,
    user: User,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    let get = |k: &str| field(&form, k).trim().to_string();
    user.check_csrf(&get("csrf"))?;
    let (action, name, parent, to) = (get("action"), get("name"), get("parent"), get("to"));
    let web2 = web.clone();
    let notice = blocking(move || {
        let store = web2.store.as_ref();
        let account = user.account();
        let done = match action.as_str() {
            "create" => {
                let full = if parent.is_empty() {
                    name.clone()
                } else {
                    format!("{parent}{}{name}", crate::store::SEPARATOR)
                };
                store
                    .create_mailbox(account, &full, None)
                    .and_then(|_| store.set_subscribed(account, &full, true))
                    .map(|_| format!("{full} created."))
            }
            "rename" => store
                .rename_mailbox(account, &name, &to)
                .map(|_| format!("{name} is now {to}.")),
            "delete" => store
                .delete_mailbox(account, &name)
                .map(|_| format!("{name} and its messages deleted.")),
            _ => return Err(WebError::BadRequest("Unknown action.".into())),
        };
        Ok(match done {
            Ok(notice) => notice,
            Err(e) => format!("Not done: {e}."),
        })
    })
    .await?;
    Ok(Redirect::to(&format!("/folders?notice={}", super::mailbox::url(&notice))).into_response())
}
