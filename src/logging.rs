//! The daemon's log, in one of two shapes (`[log] format`):
//!
//! - `default`: tracing's own lines, with the connection's span and the
//!   event's fields (`queue_id=...`) for grepping.
//! - `postfix`: the syslog lines Postfix and Dovecot write,
//!   `Mon DD HH:MM:SS host merpati/smtpd[pid]: text`, with nothing after the
//!   text, so that the tools admins already run on mail logs work on ours:
//!   pflogsumm (`--syslog-name=merpati`), fail2ban's stock `postfix` and
//!   `dovecot` filters (with `_daemon="merpati(?:/\w+)*"`), logwatch.
//!
//! The program name after `merpati/` is the Postfix daemon whose job the
//! event belongs to: the connection's span (`smtpd`, `submission/smtpd`,
//! `imap`, `pop3`) or the delivery's (`local`, `smtp`), else the module.

use crate::config::LogFormat;
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Sets up the global subscriber; logs go to stderr (journald or a file).
pub fn init(level: &str, format: LogFormat, hostname: &str) {
    let level: Level = level.parse().unwrap_or(Level::INFO);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Default => builder.init(),
        LogFormat::Postfix => builder
            .event_format(PostfixFormat {
                hostname: short_hostname(hostname),
                pid: std::process::id(),
            })
            .init(),
    }
}

/// syslog uses the host name up to the first dot.
fn short_hostname(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_string()
}

pub struct PostfixFormat {
    hostname: String,
    pid: u32,
}

/// The program name for a span, if the span names one.
fn program_of_span(name: &str) -> Option<&'static str> {
    Some(match name {
        "smtpd" => "smtpd",
        "submission/smtpd" => "submission/smtpd",
        "smtps/smtpd" => "smtps/smtpd",
        "imapd" => "imap",
        "pop3d" => "pop3",
        "local" => "local",
        "cleanup" => "cleanup",
        "smtp" => "smtp",
        _ => return None,
    })
}

/// The program name for an event outside any such span, by module.
fn program_of_target(target: &str) -> &'static str {
    let module = target.strip_prefix("merpati::").unwrap_or(target);
    let first = module.split("::").next().unwrap_or(module);
    match first {
        "queue" if module.starts_with("queue::pickup") => "pickup",
        "queue" => "qmgr",
        "cleanup" => "cleanup",
        "bounce" => "bounce",
        "delivery" if module.starts_with("delivery::relay") => "smtp",
        "delivery" => "local",
        "smtp" if module.starts_with("smtp::client") => "smtp",
        "smtp" => "smtpd",
        "imap" => "imap",
        "pop3" => "pop3",
        "auth" | "password" => "auth",
        _ => "master",
    }
}

/// Collects the event's message and ignores every other field.
#[derive(Default)]
struct MessageOnly(String);

impl Visit for MessageOnly {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

impl<S, N> FormatEvent<S, N> for PostfixFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // The innermost span that names a program wins: a delivery inside
        // a connection is the delivery agent's.
        let program = ctx
            .event_scope()
            .and_then(|scope| {
                scope
                    .from_root()
                    .filter_map(|s| program_of_span(s.name()))
                    .last()
            })
            .unwrap_or_else(|| program_of_target(event.metadata().target()));
        let mut message = MessageOnly::default();
        event.record(&mut message);
        let severity = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        let text = message.0.replace(['\r', '\n'], " ");
        writeln!(
            writer,
            "{} {} merpati/{program}[{}]: {severity}{text}",
            syslog_time(),
            self.hostname,
            self.pid
        )
    }
}

/// The local time as syslog writes it: `Dec  2 05:59:11`.
fn syslog_time() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: localtime_r writes only into `tm`, which outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    if !ok {
        return "Jan  1 00:00:00".into();
    }
    let month = usize::try_from(tm.tm_mon)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_follow_postfix_names() {
        assert_eq!(program_of_target("merpati::queue::qmgr"), "qmgr");
        assert_eq!(program_of_target("merpati::queue::pickup"), "pickup");
        assert_eq!(program_of_target("merpati::cleanup"), "cleanup");
        assert_eq!(program_of_target("merpati::delivery::relay"), "smtp");
        assert_eq!(program_of_target("merpati::smtp::client"), "smtp");
        assert_eq!(program_of_target("merpati::smtp::server::session"), "smtpd");
        assert_eq!(program_of_target("merpati::app"), "master");
        assert_eq!(program_of_span("imapd"), Some("imap"));
        assert_eq!(
            program_of_span("submission/smtpd"),
            Some("submission/smtpd")
        );
        assert_eq!(short_hostname("mail.example.org"), "mail");
    }

    #[test]
    fn syslog_time_has_the_classic_shape() {
        let t = syslog_time();
        assert_eq!(t.len(), 15, "{t}");
        assert_eq!(t.as_bytes().get(9), Some(&b':'));
    }
}
