//! cleanup: the only writer of queue files (Postfix's cleanup(8)).
//!
//! Takes a [`Submission`] from smtpd, pickup or bounce, completes the
//! header (Received, Message-Id, Date, From, To when missing), makes the
//! queue file durable (journal group commit) in `incoming`, wakes the queue
//! manager, and only then returns the queue ID that the caller may
//! acknowledge with 250.

use crate::checks::{Action, ContentChecks};
use crate::live::Live;
use crate::mailauth::sign::Signer;
use crate::queue::file::{QueueFile, QueuedRecipient};
use crate::queue::id::QueueId;
use crate::queue::journal::Journal;
use crate::queue::spool::{QueueName, Spool};
use crate::rfc5322::{compact_timestamp, format_date, now_unix, scan_headers};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::Notify;

/// A message ready to be queued, with its envelope.
#[derive(Clone, Debug, Default)]
pub struct Submission {
    /// Envelope sender; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<QueuedRecipient>,
    /// The message as received: CRLF line ends, no dot-stuffing.
    pub message: Vec<u8>,
    pub client: Client,
    /// `ESMTP`, `ESMTPS`, `SMTP`, `local`... (RFC 3848 `with` values).
    pub protocol: String,
    pub envid: String,
    pub ret: String,
    pub smtputf8: bool,
    /// Complete missing Message-Id/Date/From/To. Postfix does this only
    /// for its own clients (local_header_rewrite_clients): local
    /// submissions, mynetworks and authenticated users; mail from other
    /// servers is left as sent (adding headers could break signatures).
    pub complete_headers: bool,
    /// DMARC said quarantine: local recipients get it in their Junk mailbox.
    pub quarantine: bool,
    /// A HOLD action: the message goes to the hold queue, for this reason.
    pub hold: Option<String>,
    /// Run `[checks]` (header/body checks) on it: mail from SMTP clients
    /// and from local `sendmail`.
    pub content_checks: bool,
    /// A check's REJECT or DEFER holds the message instead (mail picked
    /// up from maildrop: there is no one to answer, and nothing may be
    /// lost).
    pub refusal_holds: bool,
    /// The spam filter's verdicts, per recipient.
    pub spam: Vec<crate::queue::file::SpamMark>,
}

/// Who handed us the message, for the Received: line.
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    /// The forward-confirmed DNS name of `ip` (`unknown` when none).
    pub name: Option<String>,
    pub helo: String,
    /// The local user who submitted it (postdrop), for `from userid N`.
    pub uid: Option<u32>,
}

impl Client {
    /// `localhost[127.0.0.1]`, Postfix's client notation. Without reverse
    /// DNS we only know the name of loopback.
    /// The client's name for logs and Received: (loopback is localhost
    /// even without DNS).
    fn name_of(&self, ip: IpAddr) -> &str {
        match &self.name {
            Some(name) if !name.is_empty() => name,
            _ if ip.is_loopback() => "localhost",
            _ => "unknown",
        }
    }

    pub fn describe(&self) -> String {
        match self.ip {
            Some(ip) => format!("{}[{ip}]", self.name_of(ip)),
            None => "local".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("no recipients")]
    NoRecipients,
    #[error("queue file write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("queue write task failed")]
    Join,
    /// A content check said REJECT (5xx) or DEFER (4xx): the client is told.
    #[error("{code} {status} {text}")]
    Refused {
        code: u16,
        status: &'static str,
        text: String,
    },
}

pub struct Cleanup {
    spool: Arc<Spool>,
    journal: Arc<Journal>,
    hostname: String,
    qmgr: Arc<Notify>,
    /// DKIM signatures for mail from our own users.
    signer: Option<Arc<Signer>>,
    /// header_checks / body_checks, swapped on reload.
    checks: Option<Arc<Live<ContentChecks>>>,
}

impl Cleanup {
    pub fn new(
        spool: Arc<Spool>,
        journal: Arc<Journal>,
        hostname: String,
        qmgr: Arc<Notify>,
    ) -> Self {
        Cleanup {
            spool,
            journal,
            hostname,
            qmgr,
            signer: None,
            checks: None,
        }
    }

    /// Runs `[checks]` on submissions that ask for it (SMTP clients).
    pub fn with_checks(mut self, checks: Arc<Live<ContentChecks>>) -> Self {
        self.checks = Some(checks);
        self
    }

    /// Signs what our own clients send (those whose headers cleanup
    /// completes: local, mynetworks, authenticated), as OpenDKIM signs
    /// for its internal hosts.
    pub fn with_signer(mut self, signer: Arc<Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Queues a message durably; the returned ID may be acknowledged.
    pub async fn submit(&self, submission: Submission) -> Result<QueueId, CleanupError> {
        let submission_protocol = submission.protocol.clone();
        if submission.recipients.is_empty() {
            return Err(CleanupError::NoRecipients);
        }
        let id = QueueId::generate();
        let arrival = now_unix();
        let message = complete_headers(&submission, &id, &self.hostname, arrival);
        let message_id = message_id_of(&message);
        let signer = self.signer.clone().filter(|_| submission.complete_headers);
        let checks = match &self.checks {
            Some(live) if submission.content_checks => Some(live.get()),
            _ => None,
        }
        .filter(|c| !c.is_empty());
        let context = format!(
            "from {}; from=<{}> to=<{}> proto={} helo=<{}>",
            submission.client.describe(),
            submission.sender,
            submission
                .recipients
                .first()
                .map(|r| r.address.as_str())
                .unwrap_or_default(),
            submission.protocol,
            submission.client.helo
        );
        let file = QueueFile {
            arrival,
            sender: submission.sender,
            client: submission.client.describe(),
            helo: submission.client.helo,
            protocol: submission.protocol,
            envid: submission.envid,
            ret: submission.ret,
            smtputf8: submission.smtputf8,
            quarantine: submission.quarantine,
            hold: submission.hold.unwrap_or_default(),
            spam: submission.spam,
            recipients: submission.recipients,
            body: message,
            ..QueueFile::default()
        };
        let spool = self.spool.clone();
        let journal = self.journal.clone();
        let write_id = id.clone();
        // The queue file first, then the journal record (durable, group-
        // committed). In this order a checkpoint can never retire the record
        // before the file it protects exists: one that rotates before our
        // append leaves the record in the new segment, one that rotates
        // after it syncs the file. See queue/journal.rs.
        let log_id = id.clone();
        let refusal_holds = submission.refusal_holds;
        let written = tokio::task::spawn_blocking(move || {
            let mut file = file;
            if let Some(checks) = checks {
                match apply_checks(&checks, &mut file, &log_id, &context, refusal_holds) {
                    Checked::Keep => {}
                    Checked::Discard => return Ok(false),
                    Checked::Refuse(e) => return Err(e),
                }
            }
            if let Some(signer) = signer {
                let signatures = signer.sign(&file.body);
                if !signatures.is_empty() {
                    let mut body = signatures.into_bytes();
                    body.extend_from_slice(&file.body);
                    file.body = body;
                }
            }
            let bytes = file.encode();
            spool.write_unsynced(QueueName::Incoming, &write_id, &bytes)?;
            journal.append(&write_id, &bytes)?;
            Ok(true)
        })
        .await
        .map_err(|_| CleanupError::Join)??;
        if !written {
            // DISCARD: the client is told it was queued, as Postfix does.
            return Ok(id);
        }
        tracing::info_span!("cleanup").in_scope(|| {
            tracing::info!(queue_id = %id, "{id}: message-id={message_id}");
        });
        self.qmgr.notify_one();
        crate::metrics::get().received(&protocol_of(&submission_protocol));
        Ok(id)
    }
}

enum Checked {
    Keep,
    Discard,
    Refuse(CleanupError),
}

/// header_checks / body_checks on the queue file being made: the message
/// as they leave it, HOLD, REDIRECT and BCC applied, and Postfix's log
/// line for every action (`ID: reject: header Subject: ... from ...`).
fn apply_checks(
    checks: &ContentChecks,
    file: &mut QueueFile,
    id: &QueueId,
    context: &str,
    refusal_holds: bool,
) -> Checked {
    let inspection = checks.inspect(&file.body);
    for (what, action) in &inspection.log {
        let (word, text) = action.split_once(": ").unwrap_or((action, ""));
        tracing::info!(queue_id = %id, "{id}: {word}: {what} {context}: {text}");
    }
    match inspection.final_action() {
        Some(Action::Reject(text) | Action::Defer(text)) if refusal_holds => {
            if file.hold.is_empty() {
                file.hold = format!("content check refused it: {text}");
            }
            return Checked::Keep;
        }
        Some(Action::Reject(text)) => {
            return Checked::Refuse(CleanupError::Refused {
                code: 550,
                status: "5.7.1",
                text: text.clone(),
            });
        }
        Some(Action::Defer(text)) => {
            return Checked::Refuse(CleanupError::Refused {
                code: 451,
                status: "4.7.1",
                text: text.clone(),
            });
        }
        Some(Action::Discard(_)) => return Checked::Discard,
        _ => {}
    }
    if let Some(reason) = inspection.hold()
        && file.hold.is_empty()
    {
        file.hold = reason.to_string();
    }
    for action in &inspection.actions {
        let rcpt = |address: &str| QueuedRecipient {
            address: address.to_string(),
            ..Default::default()
        };
        match action {
            Action::Redirect(to) => file.recipients = vec![rcpt(to)],
            Action::Bcc(to) if !file.recipients.iter().any(|r| r.address == *to) => {
                file.recipients.push(rcpt(to))
            }
            _ => {}
        }
    }
    if let Some(body) = inspection.rewritten {
        file.body = body;
    }
    Checked::Keep
}

/// Adds what Postfix's cleanup adds: a Received: line on top, and
/// Message-Id, Date, From and To at the end of the header when missing.
fn complete_headers(s: &Submission, id: &QueueId, hostname: &str, arrival: i64) -> Vec<u8> {
    let scan = scan_headers(&s.message);
    let date = format_date(arrival);
    let mut out = Vec::with_capacity(s.message.len() + 512);
    out.extend_from_slice(received_line(s, id, hostname, &date).as_bytes());
    let (head, body) = s.message.split_at(scan.end.min(s.message.len()));
    out.extend_from_slice(head);
    if !head.is_empty() && !head.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    let add = |name: &str| s.complete_headers && !scan.has(name);
    if add("message-id") {
        let stamp = compact_timestamp(arrival);
        out.extend_from_slice(format!("Message-Id: <{stamp}.{id}@{hostname}>\r\n").as_bytes());
    }
    if add("date") {
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if add("from") {
        let from = if s.sender.is_empty() {
            format!("MAILER-DAEMON@{hostname}")
        } else {
            s.sender.clone()
        };
        out.extend_from_slice(format!("From: {from}\r\n").as_bytes());
    }
    if add("to") && !scan.has("cc") && !scan.has("bcc") {
        out.extend_from_slice(b"To: undisclosed-recipients:;\r\n");
    }
    if !scan.has_separator {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(body);
    out
}

fn received_line(s: &Submission, id: &QueueId, hostname: &str, date: &str) -> String {
    let from = match s.client.ip {
        Some(ip) => {
            let helo = printable_helo(&s.client.helo);
            let name = s.client.name_of(ip);
            format!("from {helo} ({name} [{ip}])\r\n\tby {hostname} (Merpati)")
        }
        None => match s.client.uid {
            Some(uid) => format!("by {hostname} (Merpati, from userid {uid})"),
            None => format!("by {hostname} (Merpati, from userid local)"),
        },
    };
    let protocol = if s.protocol.is_empty() {
        "ESMTP"
    } else {
        &s.protocol
    };
    // RFC 5321 §4.4: name the recipient only when there is exactly one, so
    // a Received: line never discloses Bcc recipients.
    let for_clause = match s.recipients.as_slice() {
        [one] => format!("\r\n\tfor <{}>", one.address),
        _ => String::new(),
    };
    format!("Received: {from} with {protocol} id {id}{for_clause};\r\n\t{date}\r\n")
}

/// The HELO name as it may appear in a header: printable ASCII, at most
/// 255 octets (a domain's length), `unknown` when empty.
fn printable_helo(helo: &str) -> String {
    let clean: String = helo
        .chars()
        .take(255)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if clean.is_empty() {
        "unknown".into()
    } else {
        clean
    }
}

fn message_id_of(message: &[u8]) -> String {
    let head = &message[..scan_headers(message).end.min(message.len())];
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

/// The `with` value as a metrics label: `esmtpsa` and friends folded to
/// their family, so the label set stays small.
fn protocol_of(with: &str) -> String {
    let with = with.to_ascii_lowercase();
    match with.as_str() {
        "" => "unknown".into(),
        w if w.starts_with("esmtp") || w.starts_with("utf8") => "esmtp".into(),
        w if w.starts_with("smtp") => "smtp".into(),
        w if w.starts_with("lmtp") => "lmtp".into(),
        "local" => "local".into(),
        _ => "other".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(message: &[u8]) -> Submission {
        Submission {
            sender: "afau@localhost".into(),
            recipients: vec![QueuedRecipient {
                address: "fauzan@localhost".into(),
                ..Default::default()
            }],
            message: message.to_vec(),
            client: Client {
                ip: Some("127.0.0.1".parse().unwrap()),
                name: None,
                helo: "localhost".into(),
                uid: None,
            },
            protocol: "ESMTP".into(),
            complete_headers: true,
            ..Default::default()
        }
    }

    #[test]
    fn seed_message_gets_postfix_headers() {
        let s = submission(
            b"Subject: Praktikum Jarkom makin hot aja!!!\r\nAyo semangat buat semuanya:D\r\n",
        );
        let id = QueueId::parse("98AC3161ABF0").unwrap();
        let out =
            String::from_utf8(complete_headers(&s, &id, "afau-desktop", 1_277_732_233)).unwrap();
        assert!(out.starts_with("Received: from localhost (localhost [127.0.0.1])\r\n\tby afau-desktop (Merpati) with ESMTP id 98AC3161ABF0\r\n\tfor <fauzan@localhost>;"), "{out}");
        assert!(out.contains("\r\nSubject: Praktikum Jarkom makin hot aja!!!\r\nMessage-Id: <20100628133713.98AC3161ABF0@afau-desktop>\r\nDate: Mon, 28 Jun 2010 13:37:13 +0000\r\nFrom: afau@localhost\r\nTo: undisclosed-recipients:;\r\n\r\nAyo semangat"), "{out}");
        assert_eq!(
            message_id_of(out.as_bytes()),
            "<20100628133713.98AC3161ABF0@afau-desktop>"
        );
    }

    #[test]
    fn mail_from_other_servers_is_left_as_sent() {
        let s = Submission {
            complete_headers: false,
            ..submission(b"Subject: s\r\n\r\nbody\r\n")
        };
        let out = String::from_utf8(complete_headers(&s, &QueueId::generate(), "h", 0)).unwrap();
        assert!(out.starts_with("Received: "));
        assert!(out.ends_with("for <fauzan@localhost>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\nSubject: s\r\n\r\nbody\r\n"), "{out}");
    }

    #[test]
    fn existing_headers_are_kept() {
        let s = submission(b"From: a@b\r\nTo: c@d\r\nDate: x\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n");
        let id = QueueId::generate();
        let out = String::from_utf8(complete_headers(&s, &id, "h", 0)).unwrap();
        assert_eq!(out.matches("Message-I").count(), 1);
        assert_eq!(out.matches("Date:").count(), 1);
        assert!(
            out.ends_with("From: a@b\r\nTo: c@d\r\nDate: x\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n")
        );
    }
}
