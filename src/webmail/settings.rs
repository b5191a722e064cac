//! The settings page: password change, vacation reply, filter rules and
//! the Sieve script they make (also editable by hand, with the compiler's
//! error messages). The rules and the vacation are kept as a form in the
//! account's data and written as one Sieve script, `webmail`, which is
//! made the active one — the same script ManageSieve clients see.

use super::pages::Frame;
use super::session::{self, COOKIE};
use super::{Shared, User, WebError, blocking};
use crate::http::Peer;
use axum::extract::{Extension, Form, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The script the settings page writes.
pub const SCRIPT: &str = "webmail";
/// Where the form behind it is kept.
const FORM_KEY: &str = "webmail/filters";
/// Rules a user may keep on the form.
const MAX_RULES: usize = 50;

#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(default)]
pub struct Filters {
    pub vacation: bool,
    pub vacation_subject: String,
    pub vacation_body: String,
    pub vacation_days: u32,
    pub rules: Vec<Rule>,
    /// The script was edited by hand since the form last wrote it.
    pub by_hand: bool,
}

#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(default)]
pub struct Rule {
    /// `from`, `to` or `subject`.
    pub field: String,
    pub contains: String,
    /// `move`, `read` (mark as read) or `discard`.
    pub action: String,
    pub folder: String,
}

fn load(web: &Shared, account: &str) -> Result<Filters, WebError> {
    let raw = web.store.account_data(account, FORM_KEY)?;
    Ok(raw
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

fn save(web: &Shared, account: &str, filters: &Filters) -> Result<(), WebError> {
    let bytes = serde_json::to_vec(filters).map_err(|e| WebError::Unavailable(e.to_string()))?;
    web.store
        .set_account_data(account, FORM_KEY, Some(&bytes))?;
    Ok(())
}

/// A Sieve quoted string.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The script a form makes.
pub fn script(filters: &Filters, address: &str) -> String {
    let mut out = String::from(
        "require [\"fileinto\", \"imap4flags\", \"vacation\"];\n# Written by the webmail's settings page.\n",
    );
    for rule in &filters.rules {
        let test = match rule.field.as_str() {
            "to" => format!(
                "address :contains [\"to\", \"cc\"] {}",
                quoted(&rule.contains)
            ),
            "from" => format!("address :contains \"from\" {}", quoted(&rule.contains)),
            _ => format!("header :contains \"subject\" {}", quoted(&rule.contains)),
        };
        let action = match rule.action.as_str() {
            "discard" => "discard;\n    stop;".to_string(),
            "read" => "addflag \"\\\\Seen\";".to_string(),
            _ => format!("fileinto {};\n    stop;", quoted(&rule.folder)),
        };
        out.push_str(&format!("if {test} {{\n    {action}\n}}\n"));
    }
    if filters.vacation {
        out.push_str(&format!(
            "vacation :days {} :subject {} :addresses [{}] {};\n",
            filters.vacation_days.clamp(1, 30),
            quoted(&filters.vacation_subject),
            quoted(address),
            quoted(&filters.vacation_body)
        ));
    }
    out
}

/// GET /settings.
pub async fn page(State(web): State<Shared>, user: User) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || render(&web2, &user, "", "", None)).await
}

fn render(
    web: &Shared,
    user: &User,
    notice: &str,
    error: &str,
    text: Option<&str>,
) -> Result<Response, WebError> {
    let filters = load(web, user.account())?;
    let current =
        crate::sieve::scripts::get(web.store.as_ref(), user.account(), SCRIPT).unwrap_or_default();
    let mut frame = Frame::new(web.store.as_ref(), user, "")?;
    frame.notice = notice.to_string();
    let lists = web.spam.lists(user.account());
    let ctx = frame.with(context! {
        title => "Settings",
        identity => identity(web, user.account())?,
        allow => lists.allow.clone(),
        block => lists.block.clone(),
        filters => filters.clone(),
        script => text.map_or(current, str::to_string),
        error,
    });
    web.pages.render("settings.html", ctx)
}

/// A settings form: the session's token and its fields.
pub type Fields = HashMap<String, String>;

/// A form field, empty when absent.
pub(super) fn field<'f>(form: &'f Fields, name: &str) -> &'f str {
    form.get(name).map_or("", String::as_str)
}

/// Compiles and stores the script and makes it active; the compiler's
/// message (with line and column) when it does not compile.
fn install(web: &Shared, account: &str, text: &str) -> Result<(), String> {
    let settings = web.config.get().sieve.clone();
    crate::sieve::scripts::put(web.store.as_ref(), &settings, account, SCRIPT, text)
        .map_err(|e| e.message)?;
    crate::sieve::scripts::activate(web.store.as_ref(), account, Some(SCRIPT))
        .map_err(|e| e.message)
}

/// POST /settings/filters: the vacation and the rules.
pub async fn filters(
    State(web): State<Shared>,
    user: User,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    user.check_csrf(field(&form, "csrf"))?;
    let web2 = web.clone();
    blocking(move || {
        let account = user.account().to_string();
        let mut filters = load(&web2, &account)?;
        match field(&form, "action") {
            "vacation" => {
                filters.vacation = field(&form, "vacation") == "on";
                filters.vacation_subject =
                    crate::rfc5322::one_line(field(&form, "vacation_subject"), 200);
                filters.vacation_body =
                    field(&form, "vacation_body").chars().take(10_000).collect();
                filters.vacation_days = field(&form, "vacation_days").parse().unwrap_or(7);
            }
            "add" => {
                let contains = field(&form, "contains").trim();
                if contains.is_empty() {
                    return render(&web2, &user, "", "A rule needs the text to look for.", None);
                }
                if filters.rules.len() >= MAX_RULES {
                    return render(
                        &web2,
                        &user,
                        "",
                        "That is as many rules as the form keeps.",
                        None,
                    );
                }
                filters.rules.push(Rule {
                    field: field(&form, "field").to_string(),
                    contains: crate::rfc5322::one_line(contains, 200),
                    action: field(&form, "rule_action").to_string(),
                    folder: field(&form, "folder").to_string(),
                });
            }
            other => match other
                .strip_prefix("delete-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if n < filters.rules.len() => {
                    filters.rules.remove(n);
                }
                _ => return Err(WebError::BadRequest("Unknown action.".into())),
            },
        }
        let text = script(&filters, &user.session.address);
        if let Err(why) = install(&web2, &account, &text) {
            return render(&web2, &user, "", &format!("Not saved: {why}"), None);
        }
        filters.by_hand = false;
        save(&web2, &account, &filters)?;
        render(
            &web2,
            &user,
            "Saved; mail arriving from now on follows it.",
            "",
            None,
        )
    })
    .await
}

/// POST /settings/sieve: the script edited by hand.
pub async fn sieve(
    State(web): State<Shared>,
    user: User,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    user.check_csrf(field(&form, "csrf"))?;
    let web2 = web.clone();
    blocking(move || {
        let account = user.account().to_string();
        let text = field(&form, "script").replace("\r\n", "\n");
        if let Err(why) = install(&web2, &account, &text) {
            let mut page = render(
                &web2,
                &user,
                "",
                &format!("The script has an error: {why}"),
                Some(&text),
            )?;
            *page.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            return Ok(page);
        }
        let mut filters = load(&web2, &account)?;
        filters.by_hand = true;
        save(&web2, &account, &filters)?;
        render(&web2, &user, "Script saved and active.", "", None)
    })
    .await
}

/// The user's sending identities and signature.
#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(default)]
pub struct Identity {
    /// Further From addresses (each one the account owns).
    pub addresses: Vec<String>,
    pub signature: String,
}

const IDENTITY_KEY: &str = "webmail/identity";
/// From addresses a user may keep besides the login address.
const MAX_IDENTITIES: usize = 20;

pub fn identity(web: &Shared, account: &str) -> Result<Identity, WebError> {
    let raw = web.store.account_data(account, IDENTITY_KEY)?;
    Ok(raw
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// POST /settings/identity: signature, and From addresses to add or
/// remove (only addresses the account owns, as sending checks again).
pub async fn set_identity(
    State(web): State<Shared>,
    user: User,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    user.check_csrf(field(&form, "csrf"))?;
    let web2 = web.clone();
    blocking(move || {
        let account = user.account().to_string();
        let mut id = identity(&web2, &account)?;
        let action = field(&form, "action");
        if action == "signature" {
            id.signature = field(&form, "signature")
                .replace("\r\n", "\n")
                .chars()
                .take(2_000)
                .collect();
        } else if action == "add" {
            let address = field(&form, "address").trim().to_lowercase();
            let owned = crate::address::Address::parse(&address)
                .map(|a| super::compose::owns(&web2, &account, &a))
                .unwrap_or(false);
            if !owned {
                return render(
                    &web2,
                    &user,
                    "",
                    &format!("{address} is not one of your addresses."),
                    None,
                );
            }
            if id.addresses.len() >= MAX_IDENTITIES {
                return render(
                    &web2,
                    &user,
                    "",
                    "That is as many addresses as the page keeps.",
                    None,
                );
            }
            if !id.addresses.contains(&address) {
                id.addresses.push(address);
            }
        } else if let Some(address) = action.strip_prefix("remove:") {
            id.addresses.retain(|a| a != address);
        } else {
            return Err(WebError::BadRequest("Unknown action.".into()));
        }
        let bytes = serde_json::to_vec(&id).map_err(|e| WebError::Unavailable(e.to_string()))?;
        web2.store
            .set_account_data(&account, IDENTITY_KEY, Some(&bytes))?;
        render(&web2, &user, "Saved.", "", None)
    })
    .await
}

/// POST /settings/lists: the spam filter's allow and block lists.
pub async fn lists(
    State(web): State<Shared>,
    user: User,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    use crate::spam::lists::Which;
    user.check_csrf(field(&form, "csrf"))?;
    let web2 = web.clone();
    blocking(move || {
        let account = user.account().to_string();
        let entry = field(&form, "entry").to_string();
        let action = field(&form, "action").to_string();
        let result = web2
            .spam
            .change_lists(&account, |lists| match action.as_str() {
                "allow" => lists.add(Which::Allow, &entry),
                "block" => lists.add(Which::Block, &entry),
                other => match other.strip_prefix("remove:") {
                    Some(e) => {
                        lists.remove(e);
                        Ok(())
                    }
                    None => Err("unknown action".into()),
                },
            });
        match result {
            Ok(_) => render(&web2, &user, "Saved.", "", None),
            Err(why) => render(&web2, &user, "", &why, None),
        }
    })
    .await
}

/// POST /settings/password: the current password, then the new one
/// twice. Other sessions of the account end; this one goes on.
pub async fn password(
    State(web): State<Shared>,
    user: User,
    Extension(Peer(ip)): Extension<Peer>,
    Form(form): Form<Fields>,
) -> Result<Response, WebError> {
    user.check_csrf(field(&form, "csrf"))?;
    let (new, again) = (field(&form, "new"), field(&form, "again"));
    let problem = if new != again {
        Some("The new passwords differ.")
    } else if new.chars().count() < 8 || new.len() > 1024 {
        Some("A new password needs 8 characters at least.")
    } else {
        None
    };
    if let Some(problem) = problem {
        let web2 = web.clone();
        return blocking(move || render(&web2, &user, "", problem, None)).await;
    }
    if web
        .auth
        .login(ip, user.account(), field(&form, "current"))
        .await
        .is_err()
    {
        let web2 = web.clone();
        return blocking(move || render(&web2, &user, "", "The current password is wrong.", None))
            .await;
    }
    let new = new.to_string();
    let hash = tokio::task::spawn_blocking(move || crate::password::hash(&new))
        .await
        .map_err(|e| WebError::Unavailable(e.to_string()))?
        .map_err(WebError::Unavailable)?;
    let account = user.account().to_string();
    let web2 = web.clone();
    blocking(move || Ok(web2.store.set_password(&account, &hash)?)).await?;
    tracing::info!("webmail: password changed for {}", user.account());
    web.sessions.end_all(user.account());
    let token = web.sessions.start(user.account(), &user.session.address);
    Ok((
        [(
            header::SET_COOKIE,
            session::set_cookie(COOKIE, &token, None),
        )],
        Redirect::to("/settings?notice=Password+changed"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_makes_a_script_that_compiles() {
        let filters = Filters {
            vacation: true,
            vacation_subject: "Away \"till\" Monday".into(),
            vacation_body: "Back soon.\\o/".into(),
            vacation_days: 3,
            rules: vec![
                Rule {
                    field: "from".into(),
                    contains: "boss@".into(),
                    action: "move".into(),
                    folder: "Work".into(),
                },
                Rule {
                    field: "subject".into(),
                    contains: "[list]".into(),
                    action: "read".into(),
                    folder: String::new(),
                },
                Rule {
                    field: "to".into(),
                    contains: "spam".into(),
                    action: "discard".into(),
                    folder: String::new(),
                },
            ],
            by_hand: false,
        };
        let text = script(&filters, "alice@example.test");
        assert!(crate::sieve::scripts::check(&text).is_ok(), "{text}");
        assert!(text.contains("fileinto \"Work\""), "{text}");
        assert!(text.contains(":days 3"), "{text}");
    }
}
