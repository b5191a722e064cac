//! IMAP dates (RFC 3501 §9 `date`, `date-time`); the calendar arithmetic
//! is `rfc5322`'s, shared with the SMTP side.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub use crate::rfc5322::{civil_from_days, days_from_civil};

fn month_number(name: &str) -> Option<i64> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .and_then(|i| i64::try_from(i + 1).ok())
}

fn number(text: &str, min_len: usize, max_len: usize) -> Option<i64> {
    let ok = (min_len..=max_len).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    if ok { text.parse().ok() } else { None }
}

/// `1-Feb-1994` (SEARCH dates) as days since the epoch.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let day = number(parts.next()?.trim_start(), 1, 2)?;
    let month = month_number(parts.next()?)?;
    let year = number(parts.next()?, 4, 4)?;
    if parts.next().is_some() || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `17-Jul-1996 02:44:25 -0700` (APPEND) as unix seconds.
pub fn parse_date_time(text: &str) -> Option<i64> {
    let text = text.strip_prefix(' ').unwrap_or(text);
    let (date, rest) = text.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let days = parse_date(date)?;
    let mut hms = time.split(':');
    let h = number(hms.next()?, 2, 2)?;
    let m = number(hms.next()?, 2, 2)?;
    let s = number(hms.next()?, 2, 2)?;
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let (sign, zone) = match zone.split_at_checked(1)? {
        ("+", z) => (1, z),
        ("-", z) => (-1, z),
        _ => return None,
    };
    let zone = number(zone, 4, 4)?;
    let offset = sign * ((zone / 100) * 3600 + (zone % 100) * 60);
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

/// `"17-Jul-1996 09:44:25 +0000"` content (without quotes), in UTC.
pub fn format_date_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month = usize::try_from(m - 1)
        .ok()
        .and_then(|i| MONTHS.get(i))
        .unwrap_or(&"Jan");
    format!(
        "{d:02}-{month}-{y:04} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        for z in [-1000, 0, 59, 10_957, 19_000, 30_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(parse_date("1-Feb-1994"), Some(days_from_civil(1994, 2, 1)));
        assert_eq!(parse_date("01-feb-1994"), Some(days_from_civil(1994, 2, 1)));
        for bad in ["", "1-Foo-1994", "32-Jan-2000", "1-Jan-94", "1-Jan-1994-1"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        let t = parse_date_time("17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(format_date_time(t), "17-Jul-1996 09:44:25 +0000");
        assert_eq!(
            parse_date_time(" 7-Jul-1996 02:44:25 +0000"),
            parse_date_time("07-Jul-1996 02:44:25 +0000")
        );
        assert_eq!(parse_date_time("17-Jul-1996 02:44:25"), None);
        assert_eq!(parse_date_time("17-Jul-1996 25:44:25 +0000"), None);
    }
}
