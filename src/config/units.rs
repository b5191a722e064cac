//! Typed config units: durations ("30s", "5m", "2h", "5d") and byte sizes
//! ("10240000", "25MiB", "10MB"), accepted as strings or plain integers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written with a unit suffix: `ms`, `s`, `m`, `h`, `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// A byte count, written as an integer or with `KiB`/`MiB`/`GiB`/`KB`/`MB`/`GB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl Span {
    pub const fn secs(s: u64) -> Self {
        Span(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Span(Duration::from_millis(ms))
    }
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits_end);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 30s, 5m, 2h or 5d"))?;
        let ms = match unit.trim() {
            "ms" => Some(n),
            "" | "s" => n.checked_mul(1000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            other => return Err(format!("unknown duration unit `{other}` in `{text}`")),
        };
        ms.map(|ms| Span(Duration::from_millis(ms)))
            .ok_or_else(|| format!("duration `{text}` is too large"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1000, "s"),
        ];
        for (size, suffix) in units {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{}", ms / size, suffix);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Bytes {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits_end);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size like 10240000 or 25MiB"))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => return Err(format!("unknown size unit `{other}` in `{text}`")),
        };
        n.checked_mul(factor)
            .map(Bytes)
            .ok_or_else(|| format!("size `{text}` is too large"))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Both units accept a TOML integer (seconds / bytes) or a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrText {
    Int(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match IntOrText::deserialize(d)? {
            IntOrText::Int(s) => Ok(Span::secs(s)),
            IntOrText::Text(t) => Span::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match IntOrText::deserialize(d)? {
            IntOrText::Int(n) => Ok(Bytes(n)),
            IntOrText::Text(t) => Bytes::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(Span::parse("30s").unwrap(), Span::secs(30));
        assert_eq!(Span::parse("5m").unwrap(), Span::secs(300));
        assert_eq!(Span::parse("5d").unwrap(), Span::secs(432_000));
        assert_eq!(Span::parse("250ms").unwrap(), Span::millis(250));
        assert_eq!(Span::parse("12").unwrap(), Span::secs(12));
        assert!(Span::parse("5 weeks").is_err());
        assert!(Span::parse("").is_err());
        assert_eq!(Span::secs(4000).to_string(), "4000s");
        assert_eq!(Span::secs(300).to_string(), "5m");
    }

    #[test]
    fn sizes() {
        assert_eq!(Bytes::parse("10240000").unwrap(), Bytes(10_240_000));
        assert_eq!(Bytes::parse("25MiB").unwrap(), Bytes(25 << 20));
        assert_eq!(Bytes::parse("1KB").unwrap(), Bytes(1000));
        assert!(Bytes::parse("9999999999999GiB").is_err());
        assert!(Bytes::parse("lots").is_err());
    }
}
