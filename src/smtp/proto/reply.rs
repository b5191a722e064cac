//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034,
//! RFC 3463).
//!
//! A [`Reply`] is a three-digit code, an optional enhanced status code and
//! one or more text lines. [`Reply::to_bytes`] renders the wire form: every
//! line but the last uses `code-`, the last `code ` (RFC 5321 §4.2.1), and
//! the enhanced code is repeated on every line (RFC 2034 §3). The greeting
//! and the HELO/EHLO responses carry no enhanced code (RFC 2034 §3), so
//! their constructors leave it out.

use std::fmt;

/// One SMTP reply, possibly spanning several lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (`250`, `354`, `550`, ...).
    pub code: u16,
    /// The RFC 3463 `class.subject.detail` code, e.g. `(2, 1, 0)`.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The text lines, without code prefixes or CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply with an enhanced code written as `"2.1.0"`.
    ///
    /// The enhanced code is a string so call sites read like the wire form;
    /// a malformed one is dropped (and trips a debug assertion), since a
    /// reply without an enhanced code is still a valid reply.
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        let parsed = parse_enhanced(enhanced);
        debug_assert!(parsed.is_some(), "bad enhanced status code {enhanced:?}");
        Reply {
            code,
            enhanced: parsed,
            lines: vec![text.into()],
        }
    }

    /// A single-line reply without an enhanced code (greeting, HELO, 334).
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced: None,
            lines: vec![text.into()],
        }
    }

    /// Appends a line, turning the reply into a multi-line one.
    pub fn with_line(mut self, text: impl Into<String>) -> Self {
        self.lines.push(text.into());
        self
    }

    /// The reply's first line without CRLF, as a log line quotes it.
    pub fn first_line(&self) -> String {
        let mut line = self.code.to_string();
        if let Some((class, subject, detail)) = self.enhanced {
            line.push_str(&format!(" {class}.{subject}.{detail}"));
        }
        if let Some(text) = self.lines.first() {
            line.push(' ');
            line.push_str(text);
        }
        line
    }

    /// Renders the reply for the wire, CRLF-terminated.
    ///
    /// CR and LF inside a text line are replaced by spaces: reply text can
    /// echo client input, and a stray line break would let it forge replies.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 16).sum());
        let last = self.lines.len().saturating_sub(1);
        if self.lines.is_empty() {
            self.write_line(&mut out, ' ', "");
        }
        for (i, text) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.write_line(&mut out, sep, text);
        }
        out
    }

    fn write_line(&self, out: &mut Vec<u8>, sep: char, text: &str) {
        let mut line = format!("{}", self.code);
        let mut body = String::new();
        if let Some((class, subject, detail)) = self.enhanced {
            body.push_str(&format!("{class}.{subject}.{detail}"));
            if !text.is_empty() {
                body.push(' ');
            }
        }
        body.extend(
            text.chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        );
        // RFC 5321 §4.2: `Reply-code [ SP textstring ] CRLF` - no trailing
        // separator when the last line has no text at all.
        if !body.is_empty() || sep == '-' {
            line.push(sep);
            line.push_str(&body);
        }
        line.push_str("\r\n");
        out.extend_from_slice(line.as_bytes());
    }

    /// 2xx and 3xx: the command was accepted (RFC 5321 §4.2.1).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 3xx: the server waits for more input (354, 334).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: temporary failure, the client should retry later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: permanent failure.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// `220 <host> ESMTP Merpati`: the connection greeting.
    pub fn greeting(hostname: &str) -> Self {
        Reply::plain(220, format!("{hostname} ESMTP Merpati"))
    }

    /// `250 <host>`: the HELO response.
    pub fn helo(hostname: &str) -> Self {
        Reply::plain(250, hostname)
    }

    /// `250-<host>` followed by one line per extension keyword.
    pub fn ehlo<I, S>(hostname: &str, keywords: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut reply = Reply::plain(250, hostname);
        reply.lines.extend(keywords.into_iter().map(Into::into));
        reply
    }

    /// `250 2.0.0 Ok` (NOOP, RSET).
    pub fn ok() -> Self {
        Reply::new(250, "2.0.0", "Ok")
    }

    /// `250 2.1.0 Ok`: MAIL FROM accepted.
    pub fn ok_sender() -> Self {
        Reply::new(250, "2.1.0", "Ok")
    }

    /// `250 2.1.5 Ok`: RCPT TO accepted.
    pub fn ok_recipient() -> Self {
        Reply::new(250, "2.1.5", "Ok")
    }

    /// `354 End data with <CR><LF>.<CR><LF>`: go ahead with DATA.
    /// No enhanced code: RFC 2034 §3 leaves it out of 354 as Postfix does.
    pub fn start_data() -> Self {
        Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
    }

    /// `250 2.0.0 Ok: queued as <id>`: the message is safely stored.
    pub fn queued(queue_id: &str) -> Self {
        Reply::new(250, "2.0.0", format!("Ok: queued as {queue_id}"))
    }

    /// `250 2.0.0 Ok: <n> octets`: a non-final BDAT chunk was received.
    pub fn chunk_received(octets: u64) -> Self {
        Reply::new(250, "2.0.0", format!("Ok: {octets} octets"))
    }

    /// `221 2.0.0 Bye`: answer to QUIT.
    pub fn bye() -> Self {
        Reply::new(221, "2.0.0", "Bye")
    }

    /// `220 2.0.0 Ready to start TLS`: answer to STARTTLS (RFC 3207 §4).
    pub fn ready_to_start_tls() -> Self {
        Reply::new(220, "2.0.0", "Ready to start TLS")
    }

    /// `334 <challenge>`: SASL continuation (RFC 4954 §4); the text is
    /// base64 only, so there is no enhanced code.
    pub fn auth_challenge(base64: &str) -> Self {
        Reply::plain(334, base64)
    }

    /// `235 2.7.0 Authentication successful` (RFC 4954 §6).
    pub fn auth_succeeded() -> Self {
        Reply::new(235, "2.7.0", "Authentication successful")
    }

    /// `214 2.0.0 ...`: answer to HELP.
    pub fn help() -> Self {
        Reply::new(
            214,
            "2.0.0",
            "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH ETRN",
        )
    }

    /// `252 2.0.0 ...`: VRFY answered without disclosing anything
    /// (RFC 5321 §3.5.3).
    pub fn cannot_verify() -> Self {
        Reply::new(252, "2.0.0", "Cannot VRFY user, but will accept message")
    }

    /// `503 5.5.1 Error: <what>`: command out of sequence.
    pub fn bad_sequence(what: &str) -> Self {
        Reply::new(503, "5.5.1", format!("Error: {what}"))
    }

    /// `502 5.5.1 Error: command not implemented`.
    pub fn not_implemented() -> Self {
        Reply::new(502, "5.5.1", "Error: command not implemented")
    }

    /// `421 4.3.2 <host> Service shutting down, closing transmission
    /// channel`: server is going away (RFC 5321 §3.8).
    pub fn shutting_down(hostname: &str) -> Self {
        Reply::new(
            421,
            "4.3.2",
            format!("{hostname} Service shutting down, closing transmission channel"),
        )
    }

    /// `421 4.7.0 <host> Error: too many errors`: the session gives up on a
    /// misbehaving client.
    pub fn too_many_errors(hostname: &str) -> Self {
        Reply::new(421, "4.7.0", format!("{hostname} Error: too many errors"))
    }
}

impl fmt::Display for Reply {
    /// One log-friendly line: the wire form with line breaks shown as ` / `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = self.to_bytes();
        let text = String::from_utf8_lossy(&wire);
        let mut first = true;
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            if !first {
                f.write_str(" / ")?;
            }
            f.write_str(line)?;
            first = false;
        }
        Ok(())
    }
}

/// Parses `"class.subject.detail"` (RFC 3463 §2: class is 2, 4 or 5;
/// subject and detail are 1 to 3 digits).
fn parse_enhanced(text: &str) -> Option<(u8, u16, u16)> {
    let mut parts = text.split('.');
    let class: u8 = parse_digits(parts.next()?, 1)?;
    let subject: u16 = parse_digits(parts.next()?, 3)?;
    let detail: u16 = parse_digits(parts.next()?, 3)?;
    if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
        return None;
    }
    Some((class, subject, detail))
}

fn parse_digits<T: std::str::FromStr>(text: &str, max_len: usize) -> Option<T> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        String::from_utf8(reply.to_bytes()).unwrap()
    }

    #[test]
    fn renders_well_known_replies() {
        let cases: &[(Reply, &str)] = &[
            (Reply::ok(), "250 2.0.0 Ok\r\n"),
            (Reply::ok_sender(), "250 2.1.0 Ok\r\n"),
            (Reply::ok_recipient(), "250 2.1.5 Ok\r\n"),
            (
                Reply::start_data(),
                "354 End data with <CR><LF>.<CR><LF>\r\n",
            ),
            (Reply::bye(), "221 2.0.0 Bye\r\n"),
            (Reply::queued("4F2A"), "250 2.0.0 Ok: queued as 4F2A\r\n"),
            (
                Reply::ready_to_start_tls(),
                "220 2.0.0 Ready to start TLS\r\n",
            ),
            (
                Reply::greeting("mx.example"),
                "220 mx.example ESMTP Merpati\r\n",
            ),
            (Reply::helo("mx.example"), "250 mx.example\r\n"),
            (Reply::auth_challenge(""), "334\r\n"),
            (
                Reply::auth_challenge("VXNlcm5hbWU6"),
                "334 VXNlcm5hbWU6\r\n",
            ),
            (Reply::new(250, "2.0.0", ""), "250 2.0.0\r\n"),
            (
                Reply::bad_sequence("need MAIL command"),
                "503 5.5.1 Error: need MAIL command\r\n",
            ),
        ];
        for (reply, expected) in cases {
            assert_eq!(wire(reply), *expected, "{reply:?}");
        }
    }

    #[test]
    fn multiline_repeats_enhanced_code() {
        let reply = Reply::new(550, "5.7.1", "first")
            .with_line("second")
            .with_line("last");
        assert_eq!(
            wire(&reply),
            "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 last\r\n"
        );
    }

    #[test]
    fn ehlo_has_no_enhanced_code() {
        let reply = Reply::ehlo("mx.example", ["PIPELINING", "SIZE 10240000", "8BITMIME"]);
        assert_eq!(
            wire(&reply),
            "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
        );
        assert_eq!(wire(&Reply::ehlo("h", Vec::<String>::new())), "250 h\r\n");
    }

    #[test]
    fn empty_line_list_still_renders() {
        let reply = Reply {
            code: 250,
            enhanced: None,
            lines: vec![],
        };
        assert_eq!(wire(&reply), "250\r\n");
    }

    #[test]
    fn line_breaks_in_text_cannot_forge_replies() {
        let reply = Reply::new(501, "5.1.7", "bad <a>\r\n250 2.0.0 forged");
        assert_eq!(wire(&reply), "501 5.1.7 bad <a>  250 2.0.0 forged\r\n");
    }

    #[test]
    fn classifies_codes() {
        let cases: &[(u16, bool, bool, bool, bool)] = &[
            // code, positive, intermediate, transient, permanent
            (220, true, false, false, false),
            (250, true, false, false, false),
            (334, true, true, false, false),
            (354, true, true, false, false),
            (421, false, false, true, false),
            (452, false, false, true, false),
            (500, false, false, false, true),
            (555, false, false, false, true),
        ];
        for &(code, pos, inter, trans, perm) in cases {
            let r = Reply::plain(code, "x");
            assert_eq!(
                (
                    r.is_positive(),
                    r.is_intermediate(),
                    r.is_transient(),
                    r.is_permanent()
                ),
                (pos, inter, trans, perm),
                "{code}"
            );
        }
    }

    #[test]
    fn parses_enhanced_codes() {
        type Enhanced = (u8, u16, u16);
        let cases: &[(&str, Option<Enhanced>)] = &[
            ("2.1.0", Some((2, 1, 0))),
            ("5.7.1", Some((5, 7, 1))),
            ("4.3.2", Some((4, 3, 2))),
            ("5.123.999", Some((5, 123, 999))),
            ("3.0.0", None),
            ("2.1", None),
            ("2.1.0.0", None),
            ("2..0", None),
            ("x.1.0", None),
            ("2.1234.0", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_enhanced(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn display_is_one_line() {
        let reply = Reply::new(550, "5.7.1", "a").with_line("b");
        assert_eq!(reply.to_string(), "550-5.7.1 a / 550 5.7.1 b");
    }
}
