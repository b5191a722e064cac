//! mbox files (mboxo and mboxrd, as mutt, Thunderbird and Dovecot write
//! them), sans-IO: split at `From ` separator lines (with a sender and a
//! date: an unquoted body line starting "From " is not one), each message's
//! `>From ` quoting undone one level (mboxrd; for mboxo this also unquotes
//! what the writer quoted), line ends made CRLF, the arrival date from
//! the separator line, the flags from `Status:`/`X-Status:`.

/// One message of an mbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub body: Vec<u8>,
    /// Seconds since the epoch, from the `From ` line (asctime form).
    pub internal_date: Option<i64>,
    pub flags: Vec<String>,
}

/// The messages of `data`, in order. Text before the first separator is
/// not a message and is skipped.
pub fn split(data: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut current: Option<(Option<i64>, Vec<u8>)> = None;
    for line in data.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        // A separator is `From ` with a sender and an asctime date; a body
        // line that merely starts with "From " (mboxo writers such as mutt
        // do not always quote it) is text.
        let separator = if content.starts_with(b"From ") {
            separator_date(content)
        } else {
            None
        };
        if let Some(date) = separator {
            if let Some((date, body)) = current.take() {
                out.push(finish(date, body));
            }
            current = Some((Some(date), Vec::new()));
            continue;
        }
        let Some((_, body)) = current.as_mut() else {
            continue;
        };
        // mboxrd: one level of `>` before `From ` comes off.
        let unquoted = match content.iter().position(|&b| b != b'>') {
            Some(n) if n > 0 && content.get(n..).is_some_and(|r| r.starts_with(b"From ")) => {
                content.get(1..).unwrap_or(content)
            }
            _ => content,
        };
        body.extend_from_slice(unquoted);
        body.extend_from_slice(b"\r\n");
    }
    if let Some((date, body)) = current {
        out.push(finish(date, body));
    }
    out
}

fn finish(date: Option<i64>, mut body: Vec<u8>) -> Message {
    // The blank line that separates messages belongs to the mbox.
    if body.ends_with(b"\r\n\r\n") {
        body.truncate(body.len() - 2);
    }
    let flags = flags_of(&body);
    Message {
        body,
        internal_date: date,
        flags,
    }
}

/// `Status: RO` and `X-Status: AF...` (mutt, Pine, Dovecot's mbox).
fn flags_of(message: &[u8]) -> Vec<String> {
    let end = crate::rfc5322::scan_headers(message).end;
    let header = String::from_utf8_lossy(message.get(..end).unwrap_or_default()).into_owned();
    let mut flags = Vec::new();
    for line in header.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") && value.contains('R') {
            flags.push("\\Seen".to_string());
        }
        if name.eq_ignore_ascii_case("x-status") {
            for (c, flag) in [
                ('A', "\\Answered"),
                ('F', "\\Flagged"),
                ('T', "\\Draft"),
                ('D', "\\Deleted"),
            ] {
                if value.contains(c) {
                    flags.push(flag.to_string());
                }
            }
        }
    }
    flags.dedup();
    flags
}

/// `From sender Thu Dec  3 12:00:00 2026` → seconds since the epoch (UTC).
/// Also the forms other writers use: a zone before the year (`... 00:00:00
/// +0000 2024`, Gmail's Takeout), and words after it (`remote from host`,
/// UUCP).
fn separator_date(line: &[u8]) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let text = std::str::from_utf8(line).ok()?;
    // From, the sender, then [weekday] month day time [zone] year.
    let words: Vec<&str> = text.split_whitespace().skip(2).collect();
    let (at, month) = words.iter().enumerate().find_map(|(i, w)| {
        let m = MONTHS.iter().position(|m| w.eq_ignore_ascii_case(m))?;
        Some((i, m))
    })?;
    let mut rest = words.get(at + 1..)?.iter();
    let day: u8 = rest.next()?.parse().ok()?;
    let mut time = rest.next()?.split(':').map(|p| p.parse::<u8>().ok());
    let (hour, minute, second) = (
        time.next()??,
        time.next()??,
        time.next().flatten().unwrap_or(0),
    );
    let mut year_word = rest.next()?;
    if year_word.starts_with(['+', '-']) {
        year_word = rest.next()?;
    }
    let year: u16 = year_word.parse().ok()?;
    let dt = mail_parser::DateTime {
        year,
        month: u8::try_from(month + 1).ok()?,
        day,
        hour,
        minute,
        second,
        tz_before_gmt: false,
        tz_hour: 0,
        tz_minute: 0,
    };
    dt.is_valid().then(|| dt.to_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_unquotes_and_reads_flags() {
        let mbox = b"junk before\nFrom alice@example.org Thu Dec  3 12:00:00 2026\nSubject: one\nStatus: RO\nX-Status: AF\n\nbody\n>From the start\n>>From deeper\nFrom here on, text\n\nFrom bob@example.org Fri Dec  4 01:02:03 2026\nSubject: two\n\nsecond\n";
        let got = split(mbox);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].body,
            b"Subject: one\r\nStatus: RO\r\nX-Status: AF\r\n\r\nbody\r\nFrom the start\r\n>From deeper\r\nFrom here on, text\r\n"
        );
        assert_eq!(got[0].flags, ["\\Seen", "\\Answered", "\\Flagged"]);
        assert_eq!(got[0].internal_date, Some(1_796_299_200));
        assert_eq!(got[1].body, b"Subject: two\r\n\r\nsecond\r\n");
        assert!(got[1].flags.is_empty());
        assert!(split(b"no separator at all\n").is_empty());
    }

    #[test]
    fn reads_the_separators_other_writers_make() {
        let mbox = b"From 1234567890@xxx Mon Jan 01 00:00:00 +0000 2024\nSubject: takeout\n\none\nFrom uucp!bob Tue Jan  2 10:00:00 2024 remote from gate\nSubject: uucp\n\ntwo\n";
        let got = split(mbox);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].internal_date, Some(1_704_067_200));
        assert_eq!(got[1].internal_date, Some(1_704_189_600));
        assert_eq!(got[1].body, b"Subject: uucp\r\n\r\ntwo\r\n");
    }
}
