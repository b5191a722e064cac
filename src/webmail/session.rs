//! Webmail sessions: a random token in a cookie names a session held in
//! the daemon's memory (who, when it began, when it was last used, its
//! CSRF token). Bounded in number; idle and absolute expiry; logout
//! removes it at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name. `__Host-` makes browsers insist on
/// `Secure`, `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2).
pub const COOKIE: &str = "__Host-merpati";
/// The cookie of the login form's CSRF token (double submit: the form
/// carries the same value), before any session exists.
pub const LOGIN_COOKIE: &str = "__Host-merpati-login";

#[derive(Clone, Debug)]
pub struct Session {
    pub account: String,
    /// The address the user logged in with (their From: by default).
    pub address: String,
    /// Hidden in every form; a state-changing request without it is refused.
    pub csrf: String,
    started: Instant,
    last_used: Instant,
}

/// Sessions one account may hold at once (browsers, phones, tabs).
const MAX_PER_ACCOUNT: usize = 50;

pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    idle: Duration,
    lifetime: Duration,
    max: usize,
}

impl Sessions {
    pub fn new(idle: Duration, lifetime: Duration, max: usize) -> Self {
        Sessions {
            by_token: Mutex::new(HashMap::new()),
            idle,
            lifetime,
            max: max.max(1),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_token.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session; returns its cookie token.
    pub fn start(&self, account: &str, address: &str) -> String {
        let token = random_token();
        let now = Instant::now();
        let session = Session {
            account: account.to_string(),
            address: address.to_string(),
            csrf: random_token(),
            started: now,
            last_used: now,
        };
        let mut map = self.map();
        map.retain(|_, s| self.alive(s, now));
        // One account's logins make room among its own sessions first, so
        // a script logging in in a loop cannot log everyone else out.
        let own: Vec<(String, Instant)> = map
            .iter()
            .filter(|(_, s)| s.account == account)
            .map(|(t, s)| (t.clone(), s.last_used))
            .collect();
        if own.len() >= MAX_PER_ACCOUNT
            && let Some((oldest, _)) = own.iter().min_by_key(|(_, at)| *at)
        {
            map.remove(oldest);
        }
        if map.len() >= self.max {
            // Full of live sessions: the one idle longest makes room.
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(t, _)| t.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(token.clone(), session);
        token
    }

    /// The live session of `token`, marked used now.
    pub fn get(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map();
        let alive = map.get(token).map(|s| self.alive(s, now))?;
        if !alive {
            map.remove(token);
            return None;
        }
        let session = map.get_mut(token)?;
        session.last_used = now;
        Some(session.clone())
    }

    pub fn end(&self, token: &str) {
        self.map().remove(token);
    }

    /// Ends every session of an account (its password changed, it was
    /// deleted).
    pub fn end_all(&self, account: &str) {
        self.map().retain(|_, s| s.account != account);
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_used) < self.idle && now.duration_since(s.started) < self.lifetime
    }
}

/// 32 random octets in hex, from the operating system's generator.
pub fn random_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Never seen on Linux (getrandom); a fixed value would be worse
        // than a weaker one, so mix the clock into fastrand's state.
        for b in &mut bytes {
            *b = fastrand::u8(..);
        }
    }
    crate::auth::hex(&bytes)
}

/// Compares two tokens without leaking where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    crate::login_cache::same(a.as_bytes(), b.as_bytes())
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, Secure, SameSite=Lax, whole site.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>) -> String {
    let age = match max_age {
        Some(d) => format!("; Max-Age={}", d.as_secs()),
        None => String::new(),
    };
    format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax{age}")
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_make_room() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(3600), 2);
        let a = sessions.start("alice", "alice@x.test");
        let b = sessions.start("bob", "bob@x.test");
        assert_eq!(sessions.get(&a).map(|s| s.account), Some("alice".into()));
        // `b` was used least recently: the third login takes its place.
        let c = sessions.start("carol", "carol@x.test");
        assert!(sessions.get(&b).is_none());
        assert!(sessions.get(&a).is_some() && sessions.get(&c).is_some());
        sessions.end(&a);
        assert!(sessions.get(&a).is_none());
        sessions.end_all("carol");
        assert!(sessions.get(&c).is_none());
        let many = Sessions::new(Duration::from_secs(60), Duration::from_secs(3600), 1000);
        let other = many.start("bob", "bob@x.test");
        for _ in 0..200 {
            many.start("mallory", "m@x.test");
        }
        assert!(
            many.get(&other).is_some(),
            "one account's logins stay among its own"
        );
        let idle = Sessions::new(Duration::ZERO, Duration::from_secs(3600), 2);
        let t = idle.start("alice", "alice@x.test");
        assert!(idle.get(&t).is_none(), "idle expiry");
    }

    #[test]
    fn cookies_are_read_and_written() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("cookie", "a=1; __Host-merpati=tok; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(COOKIE, "v", None);
        for part in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("a", "ab"));
    }
}
