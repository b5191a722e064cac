//! RFC 5260 `date` and `currentdate`: a date (from a header field, or
//! now) in a chosen zone, and the part a test compares.

use serde::{Deserialize, Serialize};

/// Which zone the date is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Zone {
    /// No `:zone`: the server's zone, which for us is UTC (§4.1 leaves
    /// "local" to the implementation; a mail server's clock runs in UTC).
    Local,
    /// `:originalzone`: the zone the header field gave.
    Original,
    /// `:zone "+hhmm"`, in seconds east of UTC.
    Fixed(i64),
}

impl Zone {
    /// `+hhmm` / `-hhmm` (§4.1).
    pub fn parse(text: &str) -> Option<Zone> {
        let (sign, digits) = match text.as_bytes().first()? {
            b'+' => (1, text.get(1..)?),
            b'-' => (-1, text.get(1..)?),
            _ => return None,
        };
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hours: i64 = digits.get(..2)?.parse().ok()?;
        let minutes: i64 = digits.get(2..)?.parse().ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(Zone::Fixed(sign * (hours * 3600 + minutes * 60)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatePart {
    Year,
    Month,
    Day,
    Date,
    Julian,
    Hour,
    Minute,
    Second,
    Time,
    Iso8601,
    Std11,
    Zone,
    Weekday,
}

impl DatePart {
    pub fn parse(text: &str) -> Option<DatePart> {
        Some(match text.to_ascii_lowercase().as_str() {
            "year" => DatePart::Year,
            "month" => DatePart::Month,
            "day" => DatePart::Day,
            "date" => DatePart::Date,
            "julian" => DatePart::Julian,
            "hour" => DatePart::Hour,
            "minute" => DatePart::Minute,
            "second" => DatePart::Second,
            "time" => DatePart::Time,
            "iso8601" => DatePart::Iso8601,
            "std11" => DatePart::Std11,
            "zone" => DatePart::Zone,
            "weekday" => DatePart::Weekday,
            _ => return None,
        })
    }
}

/// A header field's date (RFC 5322 syntax, with the obsolete forms
/// mail-parser accepts).
pub fn parse(value: &str) -> Option<mail_parser::DateTime> {
    let dt = mail_parser::DateTime::parse_rfc822(value.trim())?;
    dt.is_valid().then_some(dt)
}

/// Seconds since the epoch as a date in UTC.
pub fn from_timestamp(seconds: i64) -> mail_parser::DateTime {
    mail_parser::DateTime::from_timestamp(seconds)
}

/// `date` in `zone`, then the part asked for.
pub fn part(date: &mail_parser::DateTime, zone: Zone, part: DatePart) -> String {
    let d = match zone {
        Zone::Original => *date,
        Zone::Local => date.to_timezone(0),
        Zone::Fixed(offset) => date.to_timezone(offset),
    };
    let sign = if d.tz_before_gmt { '-' } else { '+' };
    let zone = format!("{sign}{:02}{:02}", d.tz_hour, d.tz_minute);
    match part {
        DatePart::Year => format!("{:04}", d.year),
        DatePart::Month => format!("{:02}", d.month),
        DatePart::Day => format!("{:02}", d.day),
        DatePart::Date => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
        // Modified Julian Day: days since 1858-11-17.
        DatePart::Julian => (d.julian_day() - 2_400_001).to_string(),
        DatePart::Hour => format!("{:02}", d.hour),
        DatePart::Minute => format!("{:02}", d.minute),
        DatePart::Second => format!("{:02}", d.second),
        DatePart::Time => format!("{:02}:{:02}:{:02}", d.hour, d.minute, d.second),
        DatePart::Iso8601 => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            d.year, d.month, d.day, d.hour, d.minute, d.second, d.tz_hour, d.tz_minute
        ),
        DatePart::Std11 => d.to_rfc822(),
        DatePart::Zone => zone,
        DatePart::Weekday => d.day_of_week().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_zones() {
        let d = parse("Thu, 3 Dec 2026 23:30:05 -0500").unwrap();
        assert_eq!(part(&d, Zone::Original, DatePart::Date), "2026-12-03");
        assert_eq!(part(&d, Zone::Local, DatePart::Date), "2026-12-04");
        assert_eq!(part(&d, Zone::Local, DatePart::Time), "04:30:05");
        assert_eq!(part(&d, Zone::Original, DatePart::Zone), "-0500");
        assert_eq!(part(&d, Zone::Original, DatePart::Weekday), "4");
        assert_eq!(
            part(&d, Zone::parse("+0100").unwrap(), DatePart::Hour),
            "05"
        );
        assert_eq!(
            part(&d, Zone::Original, DatePart::Iso8601),
            "2026-12-03T23:30:05-05:00"
        );
        let y2k = parse("Sat, 1 Jan 2000 00:00:00 +0000").unwrap();
        assert_eq!(part(&y2k, Zone::Local, DatePart::Julian), "51544");
        assert_eq!(Zone::parse("0100"), None);
        assert_eq!(Zone::parse("+2500"), None);
        assert!(parse("not a date").is_none());
    }
}
