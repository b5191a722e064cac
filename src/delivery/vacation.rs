//! Sieve `vacation` (RFC 5230, RFC 6131 `:seconds`) at delivery: whether
//! a reply is due, and the reply. Never to the null sender, mailing
//! lists, bulk or automatic mail, or the user's own addresses; only when
//! the user is addressed in To/Cc/Bcc; once per sender per period, the
//! per-sender record kept with the account in the store. The reply leaves
//! with the null sender through cleanup (so it is DKIM-signed) and
//! `Auto-Submitted: auto-replied` (RFC 3834), so it cannot start a loop.

use super::records::{Records, Seen};
use super::sieve::{Prepared, Recipient};
use crate::config::Sieve as Settings;
use crate::rfc5322::{encode_word, to_crlf};
use crate::sieve::compile::{Fcc, Vacation};
use crate::sieve::matching::addresses;
use crate::store::MailStore;

/// A message a script sends (a vacation reply, a notification), to
/// queue from the null sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub to: Vec<String>,
    pub message: Vec<u8>,
    /// RFC 8580: a copy for the user's own mailbox.
    pub fcc: Option<(String, Fcc)>,
}

/// The reply `v` asks for, if one is due; why not, in the log otherwise.
pub fn reply(
    store: &dyn MailStore,
    settings: &Settings,
    r: &Recipient<'_>,
    message: &Prepared<'_>,
    v: &Vacation,
    now: u64,
) -> Option<Reply> {
    if let Err(why) = due(r, message, v) {
        tracing::info!(
            "sieve: {}: no vacation reply to <{}>: {why}",
            r.account,
            r.sender
        );
        return None;
    }
    let period = period(settings, v.period);
    if !first_in_period(store, settings, r, v, now, period) {
        tracing::info!(
            "sieve: {}: no vacation reply to <{}>: already replied within {period}s",
            r.account,
            r.sender
        );
        return None;
    }
    tracing::info!("sieve: {}: vacation reply to <{}>", r.account, r.sender);
    Some(Reply {
        to: vec![r.sender.to_string()],
        message: build(r, message, v),
        fcc: v.fcc.clone().map(|f| (r.account.to_string(), f)),
    })
}

/// RFC 5230 §4.5–4.6 and RFC 3834 §2: the cases that never get a reply.
fn due(r: &Recipient<'_>, message: &Prepared<'_>, v: &Vacation) -> Result<(), &'static str> {
    if r.sender.is_empty() {
        return Err("null sender");
    }
    let local = r
        .sender
        .rsplit_once('@')
        .map_or(r.sender, |(l, _)| l)
        .to_ascii_lowercase();
    if local == "mailer-daemon"
        || local == "listserv"
        || local == "majordomo"
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-owner")
    {
        return Err("the sender is a list or a mailer");
    }
    let header = |name: &'static str| values(message, name);
    if header("auto-submitted").any(|v| !v.eq_ignore_ascii_case("no")) {
        return Err("Auto-Submitted");
    }
    if header("precedence").any(|v| {
        ["bulk", "list", "junk"]
            .iter()
            .any(|p| v.eq_ignore_ascii_case(p))
    }) {
        return Err("Precedence bulk/list/junk");
    }
    let list_fields = [
        "list-id",
        "list-help",
        "list-unsubscribe",
        "list-subscribe",
        "list-post",
        "list-owner",
        "list-archive",
    ];
    if list_fields.iter().any(|f| header(f).next().is_some()) {
        return Err("mailing-list mail");
    }
    if header("x-auto-response-suppress").any(|v| {
        let v = v.to_ascii_lowercase();
        v.contains("oof") || v.contains("all")
    }) {
        return Err("X-Auto-Response-Suppress");
    }
    let ours: Vec<String> = std::iter::once(r.address)
        .chain(v.addresses.iter().map(String::as_str))
        .map(|a| base(a, r.delimiter))
        .collect();
    if ours.contains(&base(r.sender, r.delimiter)) {
        return Err("the sender is the user");
    }
    let addressed = ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"]
        .iter()
        .flat_map(|f| header(f).flat_map(addresses).collect::<Vec<_>>())
        .any(|a| ours.contains(&base(&a, r.delimiter)));
    if !addressed {
        return Err("the user is not in To, Cc or Bcc");
    }
    Ok(())
}

fn values<'a>(message: &'a Prepared<'_>, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    message
        .headers()
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// An address without its extension, lower-cased, for comparing (the
/// same `local_base` routing uses).
fn base(address: &str, delimiter: &str) -> String {
    match crate::address::Address::parse(address) {
        Ok(a) => match a.domain() {
            Some(domain) => format!("{}@{domain}", a.local_base(delimiter)),
            None => a.local_base(delimiter).to_string(),
        }
        .to_lowercase(),
        Err(_) => address.to_lowercase(),
    }
}

/// The script's period within the configured bounds (RFC 5230 §4.1: the
/// site may enforce a minimum; RFC 6131 §2: 0 means every time, allowed
/// only if the minimum is 0).
fn period(settings: &Settings, asked: Option<u64>) -> u64 {
    let default = settings.vacation_default_period.0.as_secs();
    let min = settings.vacation_min_period.0.as_secs();
    let max = settings.vacation_max_period.0.as_secs().max(min);
    asked.unwrap_or(default).clamp(min, max)
}

/// Records the reply to this sender (under this handle) unless one was
/// sent within `period`; true if this is the first.
fn first_in_period(
    store: &dyn MailStore,
    settings: &Settings,
    r: &Recipient<'_>,
    v: &Vacation,
    now: u64,
    period: u64,
) -> bool {
    let handle = v.handle.clone().unwrap_or_else(|| v.default_handle());
    let records = Records {
        store,
        account: r.account,
        kind: "sieve/vacation",
        horizon: settings.vacation_max_period.0.as_secs(),
        max: settings.vacation_max_senders,
    };
    let key = format!("{handle}\0{}", r.sender.to_ascii_lowercase());
    match records.check(&key, now, period, false) {
        Ok(seen) => seen == Seen::First,
        // No second reply rather than a possible repeat.
        Err(e) => {
            tracing::warn!("sieve: {}: {e}; no vacation reply", r.account);
            false
        }
    }
}

/// The reply: to the sender, from the user (or `:from`), threaded to the
/// original (RFC 5230 §5). Date and Message-ID come from cleanup.
fn build(r: &Recipient<'_>, message: &Prepared<'_>, v: &Vacation) -> Vec<u8> {
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let from = v
        .from
        .as_deref()
        .filter(|f| {
            let a = addresses(f);
            a.len() == 1 && a.iter().all(|a| crate::address::Address::parse(a).is_ok())
        })
        .map(clean)
        .unwrap_or_else(|| format!("<{}>", r.address));
    let subject = match &v.subject {
        Some(s) => clean(s),
        None => format!("Auto: {}", clean(&header("subject").unwrap_or_default())),
    };
    let mut out = format!(
        "From: {from}\r\nTo: <{}>\r\nSubject: {}\r\nAuto-Submitted: auto-replied (vacation)\r\n{}",
        r.sender,
        encode_word(subject.trim()),
        date_and_id(r.hostname)
    );
    // mail-parser gives a Message-ID without its angle brackets.
    let id = header("message-id")
        .map(|m| clean(&m))
        .filter(|m| !m.is_empty() && !m.contains(char::is_whitespace))
        .map(|m| {
            if m.starts_with('<') {
                m
            } else {
                format!("<{m}>")
            }
        });
    if let Some(id) = id {
        let references = header("references")
            .map(|r| clean(&r))
            .filter(|r| !r.is_empty());
        out.push_str(&format!("In-Reply-To: {id}\r\n"));
        match references {
            Some(refs) => out.push_str(&format!("References: {refs} {id}\r\n")),
            None => out.push_str(&format!("References: {id}\r\n")),
        }
    }
    out.push_str("MIME-Version: 1.0\r\n");
    let reason = String::from_utf8_lossy(&to_crlf(v.reason.as_bytes(), false)).into_owned();
    if v.mime {
        // §4.4: the reason is a MIME entity, its header section included.
        out.push_str(&reason);
    } else {
        out.push_str(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        );
        out.push_str(&reason);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// `Date:` and `Message-ID:`, made here rather than by cleanup so that
/// an `:fcc` copy is the message as sent.
pub fn date_and_id(hostname: &str) -> String {
    let now = crate::rfc5322::now_unix();
    format!(
        "Date: {}\r\nMessage-ID: <{:016x}.{now}@{hostname}>\r\n",
        crate::rfc5322::format_date(now),
        fastrand::u64(..)
    )
}

/// RFC 8580: files `message` (a reply just queued) into the user's
/// mailbox: the one with `:specialuse` if there is one, else `:fcc`'s,
/// made with `:create`. A failure is logged; the reply is sent anyway.
pub fn file_copy(store: &dyn MailStore, account: &str, fcc: &Fcc, message: &[u8]) {
    let by_use = fcc.special_use.as_deref().and_then(|u| {
        store.mailboxes(account).ok()?.into_iter().find_map(|m| {
            m.special_use
                .filter(|s| s.attribute().eq_ignore_ascii_case(u))
                .map(|_| m.name)
        })
    });
    let mailbox = by_use.unwrap_or_else(|| fcc.mailbox.clone());
    let exists = matches!(store.mailbox(account, &mailbox), Ok(Some(_)));
    if !exists {
        if !fcc.create {
            tracing::warn!("sieve: {account}: :fcc \"{mailbox}\": no such mailbox");
            return;
        }
        if let Err(e) = store.create_mailbox(account, &mailbox, None) {
            tracing::warn!("sieve: {account}: :fcc \"{mailbox}\": {e}");
            return;
        }
    }
    let flags = fcc.flags.clone().unwrap_or_default();
    let now = crate::rfc5322::now_unix();
    if let Err(e) = store.append(account, &mailbox, message, &flags, now) {
        tracing::warn!("sieve: {account}: :fcc \"{mailbox}\": {e}");
    }
}

/// A header value with no line breaks or controls (nothing a script or a
/// sender writes can add a header line).
pub fn clean(s: &str) -> String {
    crate::rfc5322::one_line(s, 998 - 20)
}
