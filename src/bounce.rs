//! Delivery status notifications (RFC 3464), Postfix's bounce(8): builds a
//! multipart/report for recipients that failed (or, when they asked with
//! NOTIFY=SUCCESS, were delivered), to be queued through cleanup with the
//! null sender so that it can never cause a bounce of its own.

use crate::queue::file::QueueFile;
use crate::queue::id::QueueId;
use crate::rfc5322::{format_date, scan_headers};

/// RFC 3464 §2.3.3 action values we report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delivered,
    /// Handed to a next hop that cannot send DSNs itself (RFC 3464 §2.3.3).
    Relayed,
    /// Still being retried (a delay warning).
    Delayed,
}

/// One recipient's line in the report.
#[derive(Clone, Debug)]
pub struct Report {
    pub recipient: String,
    pub orcpt: String,
    pub action: Action,
    /// Enhanced status code (`5.1.1`) then text.
    pub reason: String,
    /// The remote host that gave the verdict (`mx.example.org[192.0.2.1]:25`),
    /// or empty for local decisions.
    pub remote_mta: String,
}

/// Does this recipient want a notice for this action (RFC 3461 §4.1)?
pub fn wanted(notify: &str, action: Action) -> bool {
    let notify = notify.to_ascii_uppercase();
    match action {
        _ if notify.contains("NEVER") => false,
        Action::Failed => notify.is_empty() || notify.contains("FAILURE"),
        Action::Delivered | Action::Relayed => notify.contains("SUCCESS"),
        // RFC 3461 §4.1: without NOTIFY the MTA may warn of delays.
        Action::Delayed => notify.is_empty() || notify.contains("DELAY"),
    }
}

/// Builds the notification message (headers and body, CRLF).
pub fn build(original: &QueueFile, id: &QueueId, hostname: &str, reports: &[Report]) -> Vec<u8> {
    let failed = reports.iter().any(|r| r.action == Action::Failed);
    let delayed = !failed && reports.iter().any(|r| r.action == Action::Delayed);
    let boundary = format!("{id}.{}/{hostname}", original.arrival);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else if delayed {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };
    // Reasons may quote remote servers: keep each on one line, so no text
    // from outside can start a header of its own.
    let one_line = |s: &str| s.replace(['\r', '\n'], " ");
    let reports: Vec<Report> = reports
        .iter()
        .map(|r| Report {
            reason: one_line(&r.reason),
            ..r.clone()
        })
        .collect();
    let reports = reports.as_slice();
    let mut m = String::with_capacity(2048);
    m.push_str(&format!(
        "From: MAILER-DAEMON@{hostname} (Mail Delivery System)\r\nTo: {}\r\nSubject: {subject}\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n",
        original.sender
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is the mail system at host {hostname}.\r\n\r\n"
    ));
    if failed {
        m.push_str("I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.\r\n\r\n");
    } else if delayed {
        m.push_str("Your message could not be delivered yet to the recipients below.\r\nIt is still being retried; you do not need to send it again.\r\n\r\n");
    } else {
        m.push_str("Your message was successfully delivered to the destination(s)\r\nlisted below.\r\n\r\n");
    }
    for r in reports {
        m.push_str(&format!("<{}>: {}\r\n", r.recipient, r.reason));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {hostname}\r\nX-Merpati-Queue-ID: {id}\r\nArrival-Date: {}\r\n",
        format_date(original.arrival)
    ));
    if !original.envid.is_empty() {
        m.push_str(&format!("Original-Envelope-Id: {}\r\n", original.envid));
    }
    for r in reports {
        let status = r.reason.split_whitespace().next().unwrap_or("5.0.0");
        m.push_str(&format!("\r\nFinal-Recipient: rfc822; {}\r\n", r.recipient));
        if let Some(orcpt) = r.orcpt.split_once(';').filter(|_| !r.orcpt.is_empty()) {
            m.push_str(&format!("Original-Recipient: {}; {}\r\n", orcpt.0, orcpt.1));
        }
        let action = match r.action {
            Action::Failed => "failed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Delayed => "delayed",
        };
        m.push_str(&format!("Action: {action}\r\nStatus: {status}\r\n"));
        if r.remote_mta.is_empty() {
            m.push_str(&format!("Diagnostic-Code: X-Merpati; {}\r\n", r.reason));
        } else {
            // RFC 3464 §2.3.5 and §2.3.6: the host's name, and its reply.
            let host = r.remote_mta.split('[').next().unwrap_or(&r.remote_mta);
            m.push_str(&format!(
                "Remote-MTA: dns; {host}\r\nDiagnostic-Code: smtp; {}\r\n",
                r.reason
            ));
        }
    }
    let headers_only = original.ret.eq_ignore_ascii_case("HDRS") || !failed;
    let (description, content_type, content) = if headers_only {
        let end = scan_headers(&original.body).end.min(original.body.len());
        (
            "Undelivered Message Headers",
            "text/rfc822-headers",
            &original.body[..end],
        )
    } else {
        (
            "Undelivered Message",
            "message/rfc822",
            original.body.as_slice(),
        )
    };
    let mut out = m.into_bytes();
    out.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Description: {description}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(content);
    if !content.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_rules() {
        assert!(wanted("", Action::Failed));
        assert!(!wanted("", Action::Delivered));
        assert!(wanted("SUCCESS,FAILURE", Action::Delivered));
        assert!(!wanted("NEVER", Action::Failed));
        assert!(!wanted("DELAY", Action::Failed));
    }

    #[test]
    fn report_shape() {
        let qf = QueueFile {
            sender: "a@x".into(),
            ret: "HDRS".into(),
            envid: "E1".into(),
            body: b"Subject: s\r\n\r\nsecret body\r\n".to_vec(),
            ..Default::default()
        };
        let id = QueueId::generate();
        let reports = [Report {
            recipient: "b@y".into(),
            orcpt: "rfc822;B@y".into(),
            action: Action::Failed,
            reason: "5.1.1 <b@y>: User unknown".into(),
            remote_mta: String::new(),
        }];
        let text = String::from_utf8(build(&qf, &id, "h", &reports)).unwrap();
        assert!(text.contains("Content-Type: message/delivery-status"));
        assert!(text.contains("Final-Recipient: rfc822; b@y\r\nOriginal-Recipient: rfc822; B@y\r\nAction: failed\r\nStatus: 5.1.1"));
        assert!(text.contains("Original-Envelope-Id: E1"));
        assert!(text.contains("text/rfc822-headers"));
        assert!(!text.contains("secret body"));
    }
}
