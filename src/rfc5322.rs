//! Small RFC 5322 helpers: the date format, line ends, RFC 2047 words for
//! header values we write, and a scan of a message's header section that
//! never panics on malformed input.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// LF or CRLF input to CRLF lines (a last line without one gets one);
/// with `dot_ends`, a line of one dot ends the input (sendmail without
/// `-i`).
pub fn to_crlf(input: &[u8], dot_ends: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    for line in input.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if dot_ends && body == b"." {
            break;
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Text made one line: control characters (CR and LF among them) become
/// spaces, at most `max` characters kept — for header values and reasons
/// that come from a script or a sender, which must not add a line.
pub fn one_line(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// RFC 5322 §3.6.8 `field-name`: printable ASCII but `:`, at most `max`
/// octets.
pub fn is_field_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// A header value as one RFC 2047 encoded word when it is not ASCII.
pub fn encode_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!(
            "=?utf-8?b?{}?=",
            crate::auth::base64_encode(text.as_bytes())
        )
    }
}

/// `Sun, 22 Nov 2026 07:54:10 +0000` (RFC 5322 §3.3), always in UTC.
pub fn format_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1).clamp(0, 11) as usize];
    format!(
        "{weekday}, {day} {month_name} {year} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYYMMDDhhmmss`, as Postfix uses in generated Message-IDs.
pub fn compact_timestamp(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

// Howard Hinnant's algorithms (proleptic Gregorian calendar).

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Where the header section ends, and which fields it has.
pub struct HeaderScan {
    /// Offset of the first body octet's line (or of the empty separator line).
    pub end: usize,
    /// True if the header section ends with an empty line.
    pub has_separator: bool,
    /// Lower-cased field names in order.
    pub names: Vec<String>,
}

impl HeaderScan {
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Scans the header section: it ends at an empty line, or at the first
/// line that is neither a field (`name:`) nor a continuation, as Postfix's
/// cleanup decides (so a telnet user who forgets the empty line still gets
/// their first line of text treated as body).
pub fn scan_headers(message: &[u8]) -> HeaderScan {
    let mut names = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let rest = message.get(pos..).unwrap_or(&[]);
        let line_len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = rest.get(..line_len).unwrap_or(rest);
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            return HeaderScan {
                end: pos,
                has_separator: true,
                names,
            };
        }
        let continuation = matches!(content.first(), Some(b' ' | b'\t')) && !names.is_empty();
        if !continuation {
            match field_name(content) {
                Some(name) => names.push(name),
                None => {
                    return HeaderScan {
                        end: pos,
                        has_separator: false,
                        names,
                    };
                }
            }
        }
        pos += line_len;
    }
    HeaderScan {
        end: message.len(),
        has_separator: false,
        names,
    }
}

/// RFC 5322 §2.2: a field name is printable ASCII except ':' and space.
fn field_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    // RFC 5322 §4.5.3 (obsolete syntax): white space before the colon.
    let name = line.get(..colon)?.trim_ascii_end();
    let valid = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b));
    valid.then(|| String::from_utf8_lossy(name).to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            format_date(1_277_732_233),
            "Mon, 28 Jun 2010 13:37:13 +0000"
        );
        assert_eq!(compact_timestamp(1_277_732_233), "20100628133713");
        assert_eq!(
            format_date(1_709_164_800),
            "Thu, 29 Feb 2024 00:00:00 +0000"
        );
    }

    #[test]
    fn header_scan() {
        let s = scan_headers(b"Subject: hi\r\nX-A: 1\r\n  more\r\n\r\nbody");
        assert_eq!(s.names, vec!["subject", "x-a"]);
        assert!(s.has_separator);
        assert_eq!(s.end, 29);
        let s = scan_headers(b"Subject: Praktikum\r\nAyo semangat buat semuanya:D\r\n");
        assert_eq!(s.names, vec!["subject"]);
        assert!(!s.has_separator);
        assert_eq!(s.end, 20);
        let s = scan_headers(b"Subject : old style\r\n\r\nbody");
        assert_eq!(s.names, vec!["subject"]);
        let s = scan_headers(b"just text\r\n");
        assert!(s.names.is_empty());
        assert_eq!(s.end, 0);
        let s = scan_headers(b"");
        assert_eq!(s.end, 0);
    }
}
