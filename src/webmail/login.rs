//! Logging in and out. The login form has its own CSRF token (a cookie
//! and the same value in the form), so a stranger's page cannot log a
//! browser into an account of the stranger's choosing.

use super::session::{self, COOKIE, LOGIN_COOKIE};
use super::{Shared, User, WebError};
use crate::auth::AuthError;
use crate::http::Peer;
use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

/// GET /login: the form, with a fresh login token.
pub async fn form(State(web): State<Shared>, user: Option<User>) -> Response {
    if user.is_some() {
        return Redirect::to("/mail?box=INBOX").into_response();
    }
    login_page(&web, "", "", axum::http::StatusCode::OK)
}

fn login_page(web: &Shared, login: &str, error: &str, status: axum::http::StatusCode) -> Response {
    let token = session::random_token();
    let page = web.pages.render(
        "login.html",
        context! { title => "Log in", csrf => token.clone(), login, error, user => "" },
    );
    match page {
        Ok(page) => (
            status,
            [(
                header::SET_COOKIE,
                session::set_cookie(LOGIN_COOKIE, &token, None),
            )],
            page,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// POST /login: the same password check, failure delays and lockouts as
/// IMAP and SMTP AUTH (the client's address is the browser's).
pub async fn submit(
    State(web): State<Shared>,
    Extension(Peer(ip)): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_token(expected, &form.csrf) {
        return WebError::Forbidden("The login form had expired; please try again.")
            .into_response();
    }
    let login = form.user.trim();
    if login.is_empty() || login.len() > 320 || form.password.len() > 1024 {
        return login_page(
            &web,
            login,
            "Enter your address and password.",
            axum::http::StatusCode::BAD_REQUEST,
        );
    }
    match web.auth.login(ip, login, &form.password).await {
        Ok(account) => {
            let address = from_address(&web, login, &account);
            tracing::info!("webmail: login: user=<{account}>, rip={ip}");
            let token = web.sessions.start(&account, &address);
            (
                axum::response::AppendHeaders([
                    (
                        header::SET_COOKIE,
                        session::set_cookie(COOKIE, &token, None),
                    ),
                    (header::SET_COOKIE, session::clear_cookie(LOGIN_COOKIE)),
                ]),
                Redirect::to("/mail?box=INBOX"),
            )
                .into_response()
        }
        Err(e) => {
            // The line fail2ban's dovecot filter reads, as IMAP writes it.
            tracing::info!(
                "webmail: auth failed, user=<{}>, rip={ip}",
                crate::rfc5322::one_line(login, 256)
            );
            let (status, text) = match e {
                AuthError::Temporary => (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "The server cannot check passwords just now; try again.",
                ),
                AuthError::TooMany => (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed logins from your address; wait a while.",
                ),
                AuthError::Failed => (
                    axum::http::StatusCode::UNAUTHORIZED,
                    "Wrong address or password.",
                ),
            };
            login_page(&web, login, text, status)
        }
    }
}

/// The address a user's mail comes from: what they logged in with when
/// it is a full address, else the account at myorigin.
fn from_address(web: &Shared, login: &str, account: &str) -> String {
    if login.contains('@') {
        return login.to_lowercase();
    }
    if account.contains('@') {
        return account.to_string();
    }
    // A bare name is completed with myorigin, as every address is.
    let config = web.config.get();
    let origin = config.myorigin.replace("$myhostname", &config.myhostname);
    format!("{account}@{origin}")
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// POST /logout: the session ends on the server, not just in the browser.
pub async fn logout(
    State(web): State<Shared>,
    user: User,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&form.csrf) {
        return e.into_response();
    }
    web.sessions.end(&user.token);
    (
        [(header::SET_COOKIE, session::clear_cookie(COOKIE))],
        Redirect::to("/login"),
    )
        .into_response()
}
